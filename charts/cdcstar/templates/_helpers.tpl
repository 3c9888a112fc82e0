{{/*
Chart name, truncated to 63 characters (the DNS label limit some name fields have).
*/}}
{{- define "cdcstar.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name, plus the chart name unless the release name already holds it.
*/}}
{{- define "cdcstar.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, as used by the helm.sh/chart label.
*/}}
{{- define "cdcstar.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "cdcstar.labels" -}}
helm.sh/chart: {{ include "cdcstar.chart" . }}
{{ include "cdcstar.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cdcstar
{{- end }}

{{/*
Selector labels: stable for the life of a release (a Deployment's selector is immutable).
*/}}
{{- define "cdcstar.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cdcstar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
Name of the operator's ServiceAccount.
*/}}
{{- define "cdcstar.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cdcstar.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Name of the Lease the operator replicas compete for.
*/}}
{{- define "cdcstar.leaseName" -}}
{{- default (printf "%s-leader" (include "cdcstar.fullname" .)) .Values.leaderElection.leaseName | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full reference of one of the project's images: (dict "root" $ "image" "operator").
The tag defaults to the chart's appVersion, so every component runs the same release.
*/}}
{{- define "cdcstar.image" -}}
{{- $images := .root.Values.images }}
{{- $repository := get $images .image }}
{{- $tag := default .root.Chart.AppVersion $images.tag }}
{{- printf "%s%s:%s" $images.registry $repository $tag }}
{{- end }}

{{/*
Whether the operator watches a single namespace (namespaced RBAC) or the whole cluster.
*/}}
{{- define "cdcstar.namespaced" -}}
{{- if .Values.watchNamespace }}true{{ end }}
{{- end }}
