#!/usr/bin/env python3
"""Offline checks of the Helm chart, the CRD and the dev-stack manifests.

Runs without a cluster or a Docker engine (helm-python-sdk bundles Helm's library; kubernetes-validate
bundles the API server's OpenAPI schemas):

- the chart copy of the CRD is identical to the generated crds/cdcpipeline.yaml;
- `helm lint --strict` with default and with non-default values;
- the chart renders with default values, with non-default values (namespaced RBAC, ServiceMonitor on, custom
  images and resources) and with the CRD left out; every rendered object, the CRD and deploy/dev/*.yaml
  validate with `kubernetes-validate --strict`; every container is non-root, read-only, unprivileged;
- the example pipelines validate against the CRD's openAPIV3Schema;
- the Deployments, Services and ConfigMaps the operator's build phase produces (its test fixtures under
  operator/tests/) validate strictly, and every container they run is hardened like the operator's own;
- bad values (wrong types, unknown keys, bad enums) are refused by values.schema.json with a message;
- the chart's RBAC covers every API call in operator/tests/api_calls.txt and grants nothing beyond it.

Usage: .services/venv/bin/python scripts/check-chart.py [--kube-version 1.33] [--verbose]
Prints one line per check and `chart checks: N passed, M failed`; exits 1 when anything failed.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import helm_python as helm
    import jsonschema
    import kubernetes_validate
    import yaml
except ImportError as error:  # pragma: no cover - environment problem, reported plainly
    sys.exit(
        f"check-chart: missing Python package ({error.name}); run it with the project venv: "
        ".services/venv/bin/python scripts/check-chart.py (scripts/services.sh up creates the venv)"
    )

# NB: Helm's toYaml writes the row filter's op `=` plain, which YAML 1.1 (PyYAML) reads as the obsolete
# !!value type and refuses; YAML 1.2 and Kubernetes' parsers read the string "=", and so does this script.
yaml.SafeLoader.add_constructor("tag:yaml.org,2002:value", yaml.SafeLoader.construct_yaml_str)

ROOT = Path(__file__).resolve().parent.parent
CHART_DIR = ROOT / "charts" / "cdcstar"
CRD_SOURCE = ROOT / "crds" / "cdcpipeline.yaml"
CRD_CHART_COPY = CHART_DIR / "files" / "cdcpipeline.crd.yaml"
DEV_STACK_DIR = ROOT / "deploy" / "dev"
EXAMPLES_DIR = ROOT / "examples"
API_CALLS = ROOT / "operator" / "tests" / "api_calls.txt"
# Where the operator's tests keep the objects its pure build phase produces (expected outputs, snapshots).
OPERATOR_TESTS_DIR = ROOT / "operator" / "tests"
# Kinds the operator builds for a pipeline; CdcPipeline inputs in the same folders may be hostile on purpose.
OPERATOR_BUILT_KINDS = {"Deployment", "Service", "ConfigMap"}
# The operator binary whose `plan --manifests-only` prints the build phase's objects: $CDCSTAR_OPERATOR, or the
# one `cargo test --workspace` / `cargo build` left (make test builds it before this script runs).
OPERATOR_BINARIES = [ROOT / "target" / "debug" / "cdcstar-operator", ROOT / "target" / "release" / "cdcstar-operator"]

RELEASE = "cdcstar"
NAMESPACE = "cdcstar-system"
WATCHED_NAMESPACE = "pipelines"

# Kinds whose schemas are not part of Kubernetes: they belong to CRDs of other projects.
FOREIGN_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "a prometheus-operator CRD, not in Kubernetes' OpenAPI",
    ("monitoring.coreos.com/v1", "PodMonitor"): "a prometheus-operator CRD, not in Kubernetes' OpenAPI",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "a prometheus-operator CRD, not in Kubernetes' OpenAPI",
}

# RBAC rules that no API call of the operator's tests can show, each with the reason it is granted anyway.
RBAC_NEEDED_WITHOUT_CALL = {
    ("update", "cdcstar.dev", "cdcpipelines/finalizers"): (
        "the API server itself checks it when a child's owner reference sets blockOwnerDeletion "
        "(OwnerReferencesPermissionEnforcement, on by default in OpenShift)"
    ),
}

VERBS = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}

# Values that exercise every optional branch of the templates.
NON_DEFAULT_VALUES: dict[str, Any] = {
    "fullnameOverride": "cdc-operator",
    "watchNamespace": WATCHED_NAMESPACE,
    "replicaCount": 2,
    "images": {
        "registry": "registry.example.com/data/",
        "tag": "1.2.3",
        "pullPolicy": "Always",
        "operator": "cdcstar-operator",
        "sink": "custom-sink",
        "api": "cdcstar-api",
        "capture": "cdcstar-capture",
    },
    "imagePullSecrets": [{"name": "registry-credentials"}],
    "leaderElection": {"enabled": True, "leaseName": "cdc-leader"},
    "logLevel": "info,cdcstar_operator=debug",
    "logFormat": "text",
    "serviceAccount": {"create": True, "name": "cdc-operator-sa", "annotations": {"team": "data"}},
    "metrics": {
        "port": 8081,
        "service": {"enabled": True, "type": "ClusterIP", "port": 8082, "annotations": {"a": "b"}},
        "serviceMonitor": {"enabled": True, "interval": "15s", "scrapeTimeout": "5s", "labels": {"release": "prom"}},
    },
    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": 1, "memory": "512Mi"}},
    "monitoring": {
        "podMonitor": {"enabled": True, "interval": "20s", "labels": {"release": "prom"}},
        "prometheusRule": {"enabled": True, "labels": {"release": "prom"}, "retainedWalBytes": 1073741824},
        "dashboard": {"enabled": True},
    },
    "extraEnv": [{"name": "EXTRA", "value": "1"}],
    "podAnnotations": {"example.com/note": "x"},
    "podLabels": {"team": "data"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "data", "effect": "NoSchedule"}],
    "affinity": {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "cdcstar"}},
                    },
                }
            ]
        }
    },
    "priorityClassName": "system-cluster-critical",
}

# Values the schema must refuse: (values, words the error message must contain).
BAD_VALUES: list[tuple[dict[str, Any], list[str]]] = [
    ({"replicaCount": "two"}, ["replicaCount"]),
    ({"replicaCount": -1}, ["replicaCount"]),
    ({"unknownTopLevel": True}, ["unknownTopLevel"]),
    ({"metrics": {"serviceMonitor": {"enabld": True}}}, ["enabld"]),
    ({"metrics": {"port": "8080"}}, ["port"]),
    ({"crds": {"install": "yes"}}, ["install"]),
    ({"images": {"tag": 5}}, ["tag"]),
    ({"images": {"pullPolicy": "Sometimes"}}, ["pullPolicy"]),
    ({"logFormat": "xml"}, ["logFormat"]),
    ({"watchNamespace": "Not_A_Namespace"}, ["watchNamespace"]),
    ({"resources": {"limits": {"memory": "lots"}}}, ["memory"]),
    ({"securityContext": {"allowPrivilegeEscalation": True}}, ["allowPrivilegeEscalation"]),
    ({"podLabels": {"team": 7}}, ["team"]),
]


@dataclass
class Report:
    """Collects check outcomes and prints them as they come."""

    verbose: bool = False
    passed: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    def ok(self, name: str, detail: str = "") -> None:
        self.passed += 1
        print(f"PASS {name}" + (f": {detail}" if detail else ""))

    def fail(self, name: str, detail: str) -> None:
        self.failed += 1
        self.failures.append(name)
        print(f"FAIL {name}: {detail}")

    def skip(self, name: str, reason: str) -> None:
        print(f"SKIP {name}: {reason}")

    def info(self, message: str) -> None:
        if self.verbose:
            print(f"     {message}")

    def run(self, name: str, check: Callable[[], str | None]) -> None:
        """Run one check; an AssertionError is its failure message, anything else a crash."""
        try:
            detail = check()
        except AssertionError as error:
            self.fail(name, str(error))
        except Exception as error:  # noqa: BLE001 - a crashing check is a failed check, with its cause
            self.fail(name, f"{type(error).__name__}: {error}")
            if self.verbose:
                traceback.print_exc()
        else:
            self.ok(name, detail or "")


# --- rendering -------------------------------------------------------------------------------------------


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Render the chart as `helm install` would and return its objects (NOTES.txt left out)."""
    chart = helm.Chart.load(str(CHART_DIR))
    manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("metadata", {}).setdefault("annotations", {})
                doc["metadata"]["annotations"].setdefault("check-chart/source", path)
                objects.append(doc)
    return objects


def strip_check_annotations(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as rendered, without the bookkeeping annotation `render` adds."""
    clean = copy.deepcopy(obj)
    annotations = clean["metadata"]["annotations"]
    annotations.pop("check-chart/source", None)
    if not annotations:
        del clean["metadata"]["annotations"]
    return clean


def source_of(obj: dict[str, Any]) -> str:
    return obj["metadata"]["annotations"].get("check-chart/source", "?")


def describe(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def of_kind(objects: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") == kind]


def one(objects: Iterable[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(objects, kind)
    assert len(found) == 1, f"expected exactly one {kind}, found {len(found)}"
    return found[0]


# --- kubernetes-validate ---------------------------------------------------------------------------------


def validate_objects(objects: list[dict[str, Any]], kube_version: str, origin: str, report: Report) -> str:
    """kubernetes-validate --strict every object; foreign kinds are skipped with their reason."""
    errors = []
    validated = 0
    for obj in objects:
        key = (obj.get("apiVersion"), obj.get("kind"))
        if key in FOREIGN_KINDS:
            report.skip(f"{origin}: validate {describe(obj)}", f"not validated: {FOREIGN_KINDS[key]}")
            continue
        try:
            kubernetes_validate.validate(strip_check_annotations(obj), kube_version, strict=True)
            validated += 1
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            errors.append(f"{describe(obj)}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{describe(obj)}: no schema for {key[0]} {key[1]} in Kubernetes {kube_version}")
    assert not errors, "; ".join(errors)
    assert validated, "nothing was validated"
    return f"{validated} objects valid (strict) against Kubernetes {kube_version}"


# --- security and workload assertions --------------------------------------------------------------------


def assert_hardened(deployment: dict[str, Any], *, probes_and_resources: bool = True) -> None:
    """Every container: non-root, read-only root, no privilege escalation, no capabilities, seccomp; and
    (for the chart's own Deployment) probes, requests and a memory limit."""
    pod = deployment["spec"]["template"]["spec"]
    pod_context = pod.get("securityContext", {})
    name = describe(deployment)
    containers = pod.get("containers", []) + pod.get("initContainers", [])
    assert containers, f"{name} has no containers"
    for container in containers:
        where = f"{name} container {container['name']}"
        ctx = container.get("securityContext", {})
        non_root = ctx.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        assert non_root is True, f"{where}: runAsNonRoot is not true"
        assert ctx.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem is not true"
        assert ctx.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation is not false"
        assert ctx.get("privileged") in (None, False), f"{where}: privileged"
        assert "ALL" in ctx.get("capabilities", {}).get("drop", []), f"{where}: capabilities do not drop ALL"
        assert not ctx.get("capabilities", {}).get("add"), f"{where}: adds capabilities"
        seccomp = ctx.get("seccompProfile", pod_context.get("seccompProfile", {}))
        assert seccomp.get("type") == "RuntimeDefault", f"{where}: seccompProfile is not RuntimeDefault"
        if not probes_and_resources:
            continue
        assert container.get("resources", {}).get("requests"), f"{where}: no resource requests"
        assert container.get("resources", {}).get("limits", {}).get("memory"), f"{where}: no memory limit"
        for probe in ("livenessProbe", "readinessProbe"):
            assert probe in container, f"{where}: no {probe}"


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


# --- RBAC ------------------------------------------------------------------------------------------------

Triple = tuple[str, str, str]  # (verb, apiGroup, resource)


def parse_api_calls(path: Path) -> dict[Triple, int]:
    """operator/tests/api_calls.txt: `verb group resource` per line (group `core` for ""), `#` comments."""
    calls: dict[Triple, int] = {}
    problems = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) != 3:
            problems.append(f"line {number}: expected `verb group resource`, got {line.strip()!r}")
            continue
        verb, group, resource = parts
        if verb not in VERBS:
            problems.append(f"line {number}: unknown verb {verb!r} (one of {', '.join(sorted(VERBS))})")
            continue
        if "*" in (verb + group + resource):
            problems.append(f"line {number}: wildcards are not API calls: {line.strip()!r}")
            continue
        calls.setdefault((verb, "" if group == "core" else group, resource), number)
    assert not problems, f"{path.relative_to(ROOT)} is malformed: " + "; ".join(problems)
    assert calls, f"{path.relative_to(ROOT)} lists no API calls"
    return calls


def granted_triples(objects: list[dict[str, Any]]) -> dict[Triple, str]:
    """Every (verb, group, resource) the chart's Roles and ClusterRoles grant, mapped to where."""
    granted: dict[Triple, str] = {}
    wildcards = []
    for role in of_kind(objects, "Role") + of_kind(objects, "ClusterRole"):
        for index, rule in enumerate(role.get("rules", [])):
            where = f"{describe(role)} rule {index}"
            if rule.get("nonResourceURLs"):
                wildcards.append(f"{where} grants nonResourceURLs")
            for field_name in ("verbs", "apiGroups", "resources"):
                if any("*" in value for value in rule.get(field_name, [])):
                    wildcards.append(f"{where} has a wildcard in {field_name}")
            for verb in rule.get("verbs", []):
                for group in rule.get("apiGroups", []):
                    for resource in rule.get("resources", []):
                        granted.setdefault((verb, group, resource), where)
    assert not wildcards, "; ".join(wildcards)
    return granted


def show(triple: Triple) -> str:
    verb, group, resource = triple
    return f"{verb} {group or 'core'} {resource}"


def check_rbac(objects: list[dict[str, Any]], calls: dict[Triple, int]) -> str:
    granted = granted_triples(objects)
    missing = [f"{show(t)} (api_calls.txt line {line})" for t, line in calls.items() if t not in granted]
    unjustified = [
        f"{show(t)} ({where})" for t, where in granted.items() if t not in calls and t not in RBAC_NEEDED_WITHOUT_CALL
    ]
    problems = []
    if missing:
        problems.append("calls the chart does not allow: " + ", ".join(missing))
    if unjustified:
        problems.append("rules no operator call needs (remove them, or add the call): " + ", ".join(unjustified))
    assert not problems, "; ".join(problems)
    extra = [show(t) for t in granted if t in RBAC_NEEDED_WITHOUT_CALL]
    return f"{len(calls)} calls covered, {len(granted)} grants, no wildcard" + (
        f"; granted without a call: {', '.join(extra)}" if extra else ""
    )


# --- the checks ------------------------------------------------------------------------------------------


def check_crd_copy() -> str:
    assert CRD_SOURCE.exists(), (
        f"waiting for {CRD_SOURCE.relative_to(ROOT)}: generate it with "
        "`cargo run -p cdcstar-crds --bin crdgen > crds/cdcpipeline.yaml`, then `make chart-crd`"
    )
    assert CRD_CHART_COPY.exists(), f"{CRD_CHART_COPY.relative_to(ROOT)} is missing: run `make chart-crd`"
    assert CRD_SOURCE.read_bytes() == CRD_CHART_COPY.read_bytes(), (
        f"{CRD_CHART_COPY.relative_to(ROOT)} differs from {CRD_SOURCE.relative_to(ROOT)}: run `make chart-crd`"
    )
    return f"{CRD_CHART_COPY.relative_to(ROOT)} is identical to {CRD_SOURCE.relative_to(ROOT)}"


def check_lint(values: dict[str, Any] | None, kube_version: str) -> Callable[[], str]:
    def check() -> str:
        result = helm.lint(str(CHART_DIR), values, strict=True, kube_version=f"v{kube_version}.0")
        # Severity: 1 info, 2 warning, 3 error; strict turns warnings into failures, as `helm lint --strict`.
        bad = [f"{m['path']}: {m['error']}" for m in result.get("messages", []) if m.get("severity", 0) >= 2]
        bad += [e for e in result.get("errors", []) if e not in " ".join(bad)]
        assert not bad, "; ".join(bad)
        infos = [m["error"] for m in result.get("messages", []) if m.get("severity") == 1]
        return "no warnings" + (f" (info: {'; '.join(infos)})" if infos else "")

    return check


def check_default_render(objects: list[dict[str, Any]]) -> str:
    kinds = sorted({o["kind"] for o in objects})
    expected = {
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    }
    assert expected <= set(kinds), f"missing kinds: {sorted(expected - set(kinds))}"
    assert not of_kind(objects, "ServiceMonitor"), "ServiceMonitor rendered although metrics.serviceMonitor is off"
    for kind in ("PodMonitor", "PrometheusRule"):
        assert not of_kind(objects, kind), f"{kind} rendered although monitoring is off by default"

    deployment = one(objects, "Deployment")
    assert_hardened(deployment)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "cdcstar-operator:0.1.0", f"operator image {container['image']!r}"
    env = env_of(container)
    for name, value in {
        "SINK_IMAGE": "cdcstar-sink:0.1.0",
        "API_IMAGE": "cdcstar-api:0.1.0",
        "CAPTURE_IMAGE": "cdcstar-capture:0.1.0",
        "WATCH_NAMESPACE": "",
    }.items():
        assert env.get(name) == value, f"env {name} is {env.get(name)!r}, expected {value!r}"

    crd = one(objects, "CustomResourceDefinition")
    assert crd["metadata"]["name"] == "cdcpipelines.cdcstar.dev", f"CRD name {crd['metadata']['name']}"
    annotations = crd["metadata"].get("annotations", {})
    assert annotations.get("helm.sh/resource-policy") == "keep", "the CRD lacks helm.sh/resource-policy: keep"
    source = yaml.safe_load(CRD_CHART_COPY.read_text())
    assert crd["spec"] == source["spec"], "the rendered CRD's spec differs from files/cdcpipeline.crd.yaml"

    for obj in objects:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"):
            assert obj["metadata"].get("namespace") == NAMESPACE, f"{describe(obj)} is not in {NAMESPACE}"
    bindings = of_kind(objects, "ClusterRoleBinding") + of_kind(objects, "RoleBinding")
    for binding in bindings:
        subjects = binding["subjects"]
        assert subjects == [{"kind": "ServiceAccount", "name": "cdcstar", "namespace": NAMESPACE}], (
            f"{describe(binding)} binds {subjects}"
        )
    return f"{len(objects)} objects: {', '.join(kinds)}"


def check_non_default_render(objects: list[dict[str, Any]]) -> str:
    assert not of_kind(objects, "ClusterRole") and not of_kind(objects, "ClusterRoleBinding"), (
        "watchNamespace is set but the chart still grants cluster-wide permissions"
    )
    pipeline_roles = [r for r in of_kind(objects, "Role") if r["metadata"]["namespace"] == WATCHED_NAMESPACE]
    assert len(pipeline_roles) == 1, f"expected one Role in {WATCHED_NAMESPACE}, found {len(pipeline_roles)}"
    binding = [b for b in of_kind(objects, "RoleBinding") if b["metadata"]["namespace"] == WATCHED_NAMESPACE]
    assert len(binding) == 1 and binding[0]["subjects"] == [
        {"kind": "ServiceAccount", "name": "cdc-operator-sa", "namespace": NAMESPACE}
    ], f"RoleBinding in {WATCHED_NAMESPACE} does not bind the operator's ServiceAccount"
    lease_role = [r for r in of_kind(objects, "Role") if r["metadata"]["namespace"] == NAMESPACE]
    assert len(lease_role) == 1, "no leader-election Role in the release namespace"
    names = [n for rule in lease_role[0]["rules"] for n in rule.get("resourceNames", [])]
    assert names == ["cdc-leader"], f"leader-election Role names {names}, expected the lease cdc-leader"

    monitor = one(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"].get("release") == "prom", "ServiceMonitor lacks the extra label"
    assert monitor["spec"]["endpoints"][0]["interval"] == "15s", "ServiceMonitor interval not applied"
    service = one(objects, "Service")
    assert service["spec"]["ports"][0]["port"] == 8082, "metrics Service port not applied"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items(), (
        "the ServiceMonitor does not select the metrics Service"
    )

    deployment = one(objects, "Deployment")
    assert_hardened(deployment)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["spec"]["replicas"] == 2, "replicaCount not applied"
    assert container["image"] == "registry.example.com/data/cdcstar-operator:1.2.3", f"image {container['image']}"
    assert container["imagePullPolicy"] == "Always", "pullPolicy not applied"
    assert container["resources"]["limits"]["memory"] == "512Mi", "resources not applied"
    assert container["ports"][0]["containerPort"] == 8081, "metrics.port not applied"
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}], "imagePullSecrets not applied"
    assert pod["serviceAccountName"] == "cdc-operator-sa", "serviceAccount.name not applied"
    env = env_of(container)
    expected_env = {
        "WATCH_NAMESPACE": WATCHED_NAMESPACE,
        "SINK_IMAGE": "registry.example.com/data/custom-sink:1.2.3",
        "LEASE_NAME": "cdc-leader",
        "LOG_FORMAT": "text",
        "EXTRA": "1",
    }
    for name, value in expected_env.items():
        assert env.get(name) == value, f"env {name} is {env.get(name)!r}, expected {value!r}"
    pods = one(objects, "PodMonitor")
    assert pods["spec"]["namespaceSelector"] == {"matchNames": [WATCHED_NAMESPACE]}, "PodMonitor watches other namespaces"
    rule = one(objects, "PrometheusRule")
    slot = next(r for r in rule["spec"]["groups"][0]["rules"] if r["alert"] == "CdcstarSlotRetainsWal")
    assert slot["expr"].endswith("> 1073741824"), f"retainedWalBytes not applied: {slot['expr']}"
    dashboard = next(c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard"))
    assert dashboard["metadata"]["labels"].get("grafana_dashboard") == "1", "dashboard lacks the sidecar label"
    json.loads(dashboard["data"]["cdcstar-pipelines.json"])
    return (f"{len(objects)} objects; namespaced RBAC in {WATCHED_NAMESPACE}, ServiceMonitor, PodMonitor, "
            "PrometheusRule, dashboard, custom images")


MINIMAL_VALUES: dict[str, Any] = {
    "crds": {"install": False},
    "rbac": {"create": False},
    "serviceAccount": {"create": False, "name": "platform-managed"},
    "leaderElection": {"enabled": False},
    "metrics": {"service": {"enabled": False}},
}


def check_minimal_render(objects: list[dict[str, Any]]) -> str:
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == ["Deployment"], f"with everything optional off, expected only the Deployment, got {kinds}"
    deployment = objects[0]
    assert_hardened(deployment)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "platform-managed", "serviceAccount.name not used when create=false"
    assert env_of(pod["containers"][0]).get("LEADER_ELECTION") == "false", "leader election not switched off"
    return "only the Deployment, with the existing ServiceAccount"


def check_without_crd(objects: list[dict[str, Any]]) -> str:
    assert not of_kind(objects, "CustomResourceDefinition"), "crds.install=false still renders the CRD"
    return f"{len(objects)} objects, no CRD"


def check_bad_values() -> str:
    chart = helm.Chart.load(str(CHART_DIR))
    chart.validate_schema(NON_DEFAULT_VALUES)  # the good values pass, so refusals below are meaningful
    problems = []
    for values, words in BAD_VALUES:
        try:
            chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
        except helm.HelmError as error:
            message = str(error)
            if not all(word in message for word in words):
                problems.append(f"{values}: refused, but the message does not name {words}: {message}")
        else:
            problems.append(f"{values}: accepted")
    assert not problems, "; ".join(problems)
    return f"{len(BAD_VALUES)} bad value sets refused with a message naming the key"


def crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_SOURCE.read_text())
    versions = crd["spec"]["versions"]
    served = [v for v in versions if v.get("storage")] or versions
    return served[0]["schema"]["openAPIV3Schema"]


def check_examples_against_crd() -> str:
    schema = crd_schema()
    validator = jsonschema.Draft7Validator(schema)
    checked = []
    for path in sorted(EXAMPLES_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CdcPipeline":
                continue
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
            assert not errors, f"{path.relative_to(ROOT)}: " + "; ".join(
                f"{'.'.join(str(p) for p in e.path)}: {e.message}" for e in errors
            )
            checked.append(path.name)
    assert checked, f"no CdcPipeline found in {EXAMPLES_DIR.relative_to(ROOT)}"
    return f"valid against the CRD schema: {', '.join(checked)}"


def load_manifests(paths: Iterable[Path]) -> list[dict[str, Any]]:
    objects = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                doc.setdefault("metadata", {}).setdefault("annotations", {})["check-chart/source"] = str(
                    path.relative_to(ROOT)
                )
                objects.append(doc)
    return objects


def check_dev_stack_images(objects: list[dict[str, Any]]) -> str:
    """deploy/dev runs the project's own images at the chart's appVersion, the tag `make images` builds."""
    app_version = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["appVersion"]
    own = []
    for obj in objects:
        pod = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            image = container["image"]
            if image.startswith("cdcstar-"):
                assert image.endswith(f":{app_version}"), (
                    f"{describe(obj)} runs {image}, but the chart's appVersion (the tag `make images` builds) "
                    f"is {app_version}"
                )
                own.append(image)
    return f"cdcstar images at {app_version}: {', '.join(sorted(set(own))) or 'none'}"


def operator_built_objects() -> list[dict[str, Any]]:
    """Deployments, Services and ConfigMaps found in the YAML files under operator/tests/."""
    objects = []
    for path in sorted(OPERATOR_TESTS_DIR.rglob("*.yaml")) + sorted(OPERATOR_TESTS_DIR.rglob("*.yml")):
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError:
            continue  # hostile input fixtures may be broken on purpose; they are not build output
        for doc in docs:
            items = doc.get("items", []) if isinstance(doc, dict) and doc.get("kind") == "List" else [doc]
            for item in items:
                if isinstance(item, dict) and item.get("kind") in OPERATOR_BUILT_KINDS and "apiVersion" in item:
                    item.setdefault("metadata", {}).setdefault("annotations", {})["check-chart/source"] = str(
                        path.relative_to(ROOT)
                    )
                    objects.append(item)
    return objects


def operator_binary() -> Path | None:
    if os.environ.get("CDCSTAR_OPERATOR"):
        return Path(os.environ["CDCSTAR_OPERATOR"])
    present = [path for path in OPERATOR_BINARIES if path.exists()]
    return max(present, key=lambda path: path.stat().st_mtime) if present else None


def planned_pipelines() -> list[tuple[str, str]]:
    """The example pipelines, each also on the Redpanda Connect engine (its own Deployment) and with the
    verifier's CronJob and a resync Job."""
    pipelines = []
    for path in sorted(EXAMPLES_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CdcPipeline":
                pipelines.append((str(path.relative_to(ROOT)), yaml.safe_dump(doc)))
                if doc["spec"].get("capture", {}).get("engine", "native") == "native":
                    connect = copy.deepcopy(doc)
                    connect["spec"]["capture"]["engine"] = "redpandaConnect"
                    connect["spec"]["capture"]["redpandaConnect"] = {
                        "licenseSecretRef": {"name": "redpanda-license", "key": "license"}
                    }
                    pipelines.append((f"{path.relative_to(ROOT)} (engine redpandaConnect)", yaml.safe_dump(connect)))
                # The verifier's runs: the scheduled CronJob and a requested resync's Job.
                verified = copy.deepcopy(doc)
                verified["spec"]["verify"] = {"schedule": "@hourly", "repair": True}
                verified["metadata"].setdefault("annotations", {})["cdcstar.dev/resync"] = ",".join(
                    d["name"] for d in doc["spec"]["starSchema"].get("dimensions") or [])
                if verified["metadata"]["annotations"]["cdcstar.dev/resync"] and \
                        doc["spec"].get("capture", {}).get("engine", "native") == "native":
                    pipelines.append((f"{path.relative_to(ROOT)} (verify and resync)", yaml.safe_dump(verified)))
    return pipelines


def operator_env_names(binary: Path) -> set[str]:
    """The env vars the operator's own command line reads (clap lists each as `[env: NAME=...]`)."""
    help_text = subprocess.run([str(binary), "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"\[env: ([A-Z0-9_]+)[=\]]", help_text))


# Read by the operator although not through its command line: the log filter of the runtime's logging.
OPERATOR_ENV_OUTSIDE_CLI = {"RUST_LOG"}


def check_operator_settings(objects: list[dict[str, Any]], values: dict[str, Any], binary: Path) -> str:
    """The chart's operator container against the operator binary: every env var it sets (but the
    user's extraEnv) is one the binary reads, the values parse with the binary's own parser, and the
    metrics port the binary listens on is the one the container, its probes, the Service and the
    ServiceMonitor name."""
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    users = {e["name"] for e in values.get("extraEnv", [])}
    placeholders = {"metadata.name": "cdcstar-operator-0", "metadata.namespace": NAMESPACE}
    env: dict[str, str] = {}
    for var in container.get("env", []):
        if var["name"] in users:
            continue
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            env[var["name"]] = placeholders[var["valueFrom"]["fieldRef"]["fieldPath"]]
    unknown = set(env) - operator_env_names(binary) - OPERATOR_ENV_OUTSIDE_CLI
    assert not unknown, f"the chart sets env the operator does not read: {sorted(unknown)}"
    parsed = subprocess.run([str(binary), "crd"], env={"PATH": os.environ["PATH"], **env},
                            capture_output=True, text=True)
    assert parsed.returncode == 0, f"the operator refuses the chart's env: {parsed.stderr.strip()}"

    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    listens_on = int(env.get("METRICS_PORT", "9090"))
    assert ports.get("metrics") == listens_on, (
        f"containerPort metrics is {ports.get('metrics')}, the operator listens on {listens_on}")
    for probe in ("livenessProbe", "readinessProbe"):
        port = container[probe]["httpGet"]["port"]
        assert ports.get(port, port) == listens_on, f"{probe} targets {port}, not the metrics port"
    checked = ["env", "metrics port"]
    for service in of_kind(objects, "Service"):
        labels = pod["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items(), f"{describe(service)} selects no operator pod"
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            assert ports.get(target, target) == listens_on, f"{describe(service)} targets {target}"
        checked.append("Service")
        for monitor in of_kind(objects, "ServiceMonitor"):
            selector = monitor["spec"]["selector"]["matchLabels"]
            assert selector.items() <= service["metadata"]["labels"].items(), f"{describe(monitor)} selects no Service"
            names = {p.get("name") for p in service["spec"]["ports"]}
            for endpoint in monitor["spec"]["endpoints"]:
                assert endpoint["port"] in names, f"{describe(monitor)} scrapes port {endpoint['port']}, not one of {names}"
            checked.append("ServiceMonitor")
    return ", ".join(checked) + " match the binary"


def check_component_resources(objects: list[dict[str, Any]], binary: Path) -> str:
    """The chart's componentResources reach the operator, and its defaults are the binary's own: a pipeline
    that sizes nothing is planned by the binary with no env and with the chart's, with the same resources,
    those of values.yaml."""
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["componentResources"]
    env = env_of(one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0])
    chart_env = {f"{name.upper()}_RESOURCES": env[f"{name.upper()}_RESOURCES"] for name in values}
    for name, value in values.items():
        assert json.loads(chart_env[f"{name.upper()}_RESOURCES"]) == value, f"componentResources.{name} not passed as given"
    pipeline = yaml.safe_load((ROOT / "examples" / "shop-pipeline.yaml").read_text())
    pipeline["spec"]["verify"] = {"schedule": "@hourly"}
    for label, extra_env in (("its defaults", {}), ("the chart's env", chart_env)):
        result = subprocess.run([str(binary), "plan", "-", "--manifests-only"], input=yaml.safe_dump(pipeline),
                                env={"PATH": os.environ["PATH"], **extra_env}, capture_output=True, text=True)
        assert result.returncode == 0, f"plan with {label} failed: {result.stderr.strip()}"
        planned: dict[str, Any] = {}
        for doc in yaml.safe_load_all(result.stdout):
            if not doc:
                continue
            component = doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")
            template = {"Deployment": lambda d: d["spec"]["template"],
                        "CronJob": lambda d: d["spec"]["jobTemplate"]["spec"]["template"]}.get(doc["kind"])
            if template and component:
                planned[component] = template(doc)["spec"]["containers"][0].get("resources")
        for name, value in values.items():
            assert planned.get(name) == value, (
                f"with {label} the operator gives {name} {planned.get(name)!r}, values.yaml {value!r}")
    return f"{', '.join(values)}: values.yaml = the operator's defaults = what it plans"


def check_operator_plan(binary: Path, kube_version: str, report: Report) -> str:
    objects = []
    for label, pipeline in planned_pipelines():
        result = subprocess.run(
            [str(binary), "plan", "-", "--manifests-only"],
            input=pipeline,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"`{binary.name} plan` failed for {label}: {result.stderr.strip()}"
        docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        assert docs, f"`{binary.name} plan` printed no manifest for {label}"
        for doc in docs:
            doc.setdefault("metadata", {}).setdefault("annotations", {})["check-chart/source"] = f"plan {label}"
        objects += docs
    kinds = sorted({doc["kind"] for doc in objects})
    assert {"CronJob", "Job"} <= set(kinds), f"no plan has the verifier's CronJob and a resync Job: {kinds}"
    return f"{check_operator_built(objects, kube_version, report)} ({', '.join(kinds)}; {binary})"


def check_operator_built(objects: list[dict[str, Any]], kube_version: str, report: Report) -> str:
    validated = validate_objects(objects, kube_version, "operator build", report)
    deployments = of_kind(objects, "Deployment")
    for deployment in deployments:
        # The issue asks the security context of every container the operator creates; probes and resources
        # of those are the operator's tests' business (resources come from the pipeline when set).
        assert_hardened(deployment, probes_and_resources=False)
    # The verifier's pods: a CronJob's job template, a Job.
    jobs = of_kind(objects, "Job") + [
        {"metadata": c["metadata"], "spec": c["spec"]["jobTemplate"]["spec"]} for c in of_kind(objects, "CronJob")]
    for job in jobs:
        assert_hardened(job, probes_and_resources=False)
    return f"{validated}; {len(deployments)} Deployments and {len(jobs)} Job templates hardened"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kube-version", default="1.33", help="Kubernetes minor version to validate against")
    parser.add_argument("--verbose", action="store_true", help="print tracebacks of crashing checks")
    args = parser.parse_args()
    report = Report(verbose=args.verbose)
    kube = args.kube_version

    report.run("crd: chart copy matches crds/cdcpipeline.yaml", check_crd_copy)
    crd_ready = CRD_SOURCE.exists() and CRD_CHART_COPY.exists()
    if crd_ready:
        report.run(
            f"crd: validates (strict, Kubernetes {kube})",
            lambda: validate_objects(load_manifests([CRD_SOURCE]), kube, "crd", report),
        )
        report.run("crd: examples/*.yaml validate against its schema", check_examples_against_crd)
    else:
        report.skip("crd: validation and examples", "no CRD yet (see the failure above)")

    # Without the CRD copy the chart can only render with crds.install=false; say so rather than crash.
    base: dict[str, Any] = {} if crd_ready else {"crds": {"install": False}}
    scenarios: dict[str, tuple[dict[str, Any], Callable[[list[dict[str, Any]]], str] | None]] = {
        "default values": (base, check_default_render if crd_ready else None),
        "non-default values": ({**NON_DEFAULT_VALUES, **base}, check_non_default_render),
        "crds.install=false": ({"crds": {"install": False}}, check_without_crd),
        "everything optional off": (MINIMAL_VALUES, check_minimal_render),
    }

    report.run("lint --strict: default values", check_lint(base or None, kube))
    report.run("lint --strict: non-default values", check_lint({**NON_DEFAULT_VALUES, **base}, kube))

    rendered: dict[str, list[dict[str, Any]]] = {}
    for label, (values, specific) in scenarios.items():
        try:
            rendered[label] = render(values)
        except helm.HelmError as error:
            report.fail(f"render: {label}", str(error))
            continue
        objects = rendered[label]
        report.ok(f"render: {label}", f"{len(objects)} objects")
        report.run(f"validate: {label}", lambda o=objects, l=label: validate_objects(o, kube, l, report))
        if specific is not None:
            report.run(f"assert: {label}", lambda o=objects, s=specific: s(o))
        else:
            report.skip(f"assert: {label}", "needs the CRD copy (see the failure above)")

    dev_files = sorted(DEV_STACK_DIR.glob("*.yaml"))
    if dev_files:
        dev_objects = load_manifests(dev_files)
        report.run(
            "validate: deploy/dev/*.yaml",
            lambda: validate_objects(dev_objects, kube, "deploy/dev", report),
        )
        report.run("deploy/dev: image tags match the chart", lambda: check_dev_stack_images(dev_objects))
    else:
        report.fail("validate: deploy/dev/*.yaml", f"no manifests in {DEV_STACK_DIR.relative_to(ROOT)}")

    report.run("values.schema.json refuses bad values", check_bad_values)

    binary = operator_binary()
    if binary is not None:
        report.run(
            "operator plan of the examples: objects validate, containers hardened",
            lambda: check_operator_plan(binary, kube, report),
        )
    else:
        report.skip(
            "operator plan of the examples: objects validate, containers hardened",
            "no cdcstar-operator binary in target/ (make test builds it first; or set CDCSTAR_OPERATOR)",
        )

    for label in ("default values", "non-default values"):
        name = f"operator settings: the chart's env and ports are the binary's ({label})"
        if binary is None or label not in rendered:
            report.skip(name, "no cdcstar-operator binary in target/ or no render")
        else:
            values = scenarios[label][0]
            report.run(name, lambda o=rendered[label], v=values: check_operator_settings(o, v, binary))

    name = "component resources: the chart's defaults are the operator's"
    if binary is None or "default values" not in rendered:
        report.skip(name, "no cdcstar-operator binary in target/ or no render")
    else:
        report.run(name, lambda: check_component_resources(rendered["default values"], binary))

    built = operator_built_objects() if OPERATOR_TESTS_DIR.exists() else []
    if built:
        report.run(
            "operator build phase: objects validate, containers hardened",
            lambda: check_operator_built(built, kube, report),
        )
    else:
        report.skip(
            "operator build phase: objects validate, containers hardened",
            f"no Deployment/Service/ConfigMap YAML under {OPERATOR_TESTS_DIR.relative_to(ROOT)} yet "
            "(the operator's build-phase fixtures)",
        )

    if not API_CALLS.exists():
        report.fail(
            "rbac: chart rules == operator API calls",
            f"waiting for {API_CALLS.relative_to(ROOT)} (written by the operator's mock-apiserver tests; "
            "format in docs/chart.md): the RBAC check cannot run without it",
        )
    else:
        for label in ("default values", "non-default values"):
            if label in rendered:
                report.run(
                    f"rbac: chart rules == operator API calls ({label})",
                    lambda o=rendered[label]: check_rbac(o, parse_api_calls(API_CALLS)),
                )

    print(f"chart checks: {report.passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
