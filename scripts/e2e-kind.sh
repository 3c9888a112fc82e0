#!/usr/bin/env bash
# End-to-end run of cdcstar on a local kind cluster, for users (it needs docker, kind, kubectl, helm, curl
# and jq; the project's CI has no Docker engine and does not run it).
#
#   scripts/e2e-kind.sh            # create/reuse the cluster, build and load images, run, keep the cluster
#   DELETE_CLUSTER=1 scripts/e2e-kind.sh   # delete the cluster at the end
#   SKIP_BUILD=1 scripts/e2e-kind.sh       # reuse images already loaded into the cluster
#
# Steps: create the kind cluster (kind-config.yaml), build the four images and load them, install the dev
# stack (deploy/dev/: Postgres with logical replication, Redpanda, ClickHouse, the example's Secret, the
# shop tables), `helm install` the chart, apply examples/shop-pipeline.yaml, wait for Ready, drive the shop
# API through a port-forward, check the star schema in ClickHouse. Prints a pass/fail summary; on failure
# dumps describe output, events and logs. Exit status 0 only when every step passed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CLUSTER="${KIND_CLUSTER:-cdcstar}"
NAMESPACE="${PIPELINE_NAMESPACE:-shop}"
OPERATOR_NAMESPACE="${OPERATOR_NAMESPACE:-cdcstar-system}"
RELEASE="${HELM_RELEASE:-cdcstar}"
PIPELINE="shop"
PIPELINE_FILE="examples/shop-pipeline.yaml"
# The Service the operator creates for a pipeline's api (spec.api.enabled), and its port.
API_SERVICE="${API_SERVICE:-${PIPELINE}-api}"
API_PORT="${API_PORT:-3002}"
CLICKHOUSE_DATABASE="local"
TIMEOUT="${TIMEOUT:-300s}"
LOCAL_API_PORT="${LOCAL_API_PORT:-13002}"
LOCAL_CLICKHOUSE_PORT="${LOCAL_CLICKHOUSE_PORT:-18123}"
IMAGE_TAG="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/cdcstar/Chart.yaml)"

declare -a STEP_NAMES=() STEP_RESULTS=()
FAILED=""
RUN_ID="$(date +%s)"
# Steps run in subshells (so that `set -e` holds inside them); what they pass on goes through files here.
STATE_DIR="$(mktemp -d)"

log() { printf '==> %s\n' "$*" >&2; }
save() { printf '%s' "$2" >"$STATE_DIR/$1"; }
load() { cat "$STATE_DIR/$1"; }

cleanup() {
  local pid
  if [[ -f "$STATE_DIR/port-forward.pids" ]]; then
    while read -r pid; do
      kill "$pid" 2>/dev/null || true
    done <"$STATE_DIR/port-forward.pids"
  fi
  rm -rf "$STATE_DIR"
  if [[ "${DELETE_CLUSTER:-0}" == "1" ]]; then
    kind delete cluster --name "$CLUSTER" || true
  fi
}
trap cleanup EXIT

# step NAME FUNCTION: runs FUNCTION unless an earlier step failed, and records the outcome.
# NB: a function called as an `if` condition runs with `set -e` off, even in a subshell; running the
# subshell as a plain command keeps `set -e` on, so the first failing command fails the step.
step() {
  local name="$1" status
  shift
  STEP_NAMES+=("$name")
  if [[ -n "$FAILED" ]]; then
    STEP_RESULTS+=("SKIP")
    return 0
  fi
  log "$name"
  set +e
  (
    set -e
    "$@"
  )
  status=$?
  set -e
  if ((status == 0)); then
    STEP_RESULTS+=("PASS")
  else
    STEP_RESULTS+=("FAIL")
    FAILED="$name"
  fi
}

require_tools() {
  local tool missing=()
  for tool in docker kind kubectl helm curl jq; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  if ((${#missing[@]})); then
    echo "missing tools: ${missing[*]}" >&2
    return 1
  fi
  docker info >/dev/null 2>&1 || { echo "the Docker engine does not answer (docker info failed)" >&2; return 1; }
}

create_cluster() {
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "reusing kind cluster $CLUSTER"
  else
    kind create cluster --name "$CLUSTER" --config kind-config.yaml --wait 120s
  fi
  kubectl config use-context "kind-$CLUSTER" >/dev/null
}

build_and_load_images() {
  if [[ "${SKIP_BUILD:-0}" == "1" ]]; then
    log "SKIP_BUILD=1: using the images already in the cluster"
    return 0
  fi
  make images IMAGE_TAG="$IMAGE_TAG"
  make kind-load IMAGE_TAG="$IMAGE_TAG" KIND_CLUSTER="$CLUSTER"
}

install_dev_stack() {
  kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
  kubectl -n "$NAMESPACE" apply -f deploy/dev/
  local deployment
  for deployment in postgres redpanda clickhouse; do
    kubectl -n "$NAMESPACE" rollout status "deployment/$deployment" --timeout="$TIMEOUT"
  done
  kubectl -n "$NAMESPACE" wait job/shop-init-db --for=condition=Complete --timeout="$TIMEOUT"
}

install_chart() {
  helm upgrade --install "$RELEASE" charts/cdcstar \
    --namespace "$OPERATOR_NAMESPACE" --create-namespace \
    --set logFormat=text \
    --wait --timeout "$TIMEOUT"
  kubectl get crd cdcpipelines.cdcstar.dev >/dev/null
}

apply_pipeline() {
  kubectl -n "$NAMESPACE" apply -f "$PIPELINE_FILE"
  kubectl -n "$NAMESPACE" wait "cdcpipeline/$PIPELINE" --for=condition=Ready --timeout="$TIMEOUT"
  kubectl -n "$NAMESPACE" get cdcpipelines
}

# port_forward RESOURCE LOCAL:REMOTE URL: forwards in the background and waits until URL answers.
port_forward() {
  local resource="$1" ports="$2" url="$3" attempt
  kubectl -n "$NAMESPACE" port-forward "$resource" "$ports" >/dev/null 2>&1 &
  echo "$!" >>"$STATE_DIR/port-forward.pids"
  for attempt in $(seq 1 30); do
    if curl -fsS -o /dev/null "$url"; then
      return 0
    fi
    sleep 1
  done
  echo "port-forward to $resource ($ports) never answered at $url (tried $attempt times)" >&2
  return 1
}

open_port_forwards() {
  kubectl -n "$NAMESPACE" rollout status "deployment/$API_SERVICE" --timeout="$TIMEOUT" 2>/dev/null || true
  port_forward "svc/$API_SERVICE" "$LOCAL_API_PORT:$API_PORT" "http://127.0.0.1:$LOCAL_API_PORT/health"
  port_forward "svc/clickhouse" "$LOCAL_CLICKHOUSE_PORT:8123" "http://127.0.0.1:$LOCAL_CLICKHOUSE_PORT/ping"
}

# api METHOD PATH [BODY]: one call to the shop API; prints the response body, fails on a non-2xx status.
api() {
  local method="$1" path="$2" body="${3:-}"
  local args=(-fsS -X "$method" -H 'Content-Type: application/json' "http://127.0.0.1:$LOCAL_API_PORT$path")
  [[ -n "$body" ]] && args+=(--data "$body")
  curl "${args[@]}"
}

CUSTOMER_EMAIL="e2e-$RUN_ID@example.com"

run_api_flow() {
  local customer product order item
  customer="$(api POST /api/customers \
    "{\"email\":\"$CUSTOMER_EMAIL\",\"name\":\"Ada Lovelace\",\"country\":\"UK\",\"city\":\"London\"}" \
    | jq -er '.data.id')"
  product="$(api POST /api/products '{"name":"Analytical Engine","category":"machines","price":99.5}' \
    | jq -er '.data.id')"
  order="$(api POST /api/orders "{\"customerId\":$customer,\"status\":\"pending\",\"total\":199.00}" \
    | jq -er '.data.id')"
  item="$(api POST /api/order-items \
    "{\"orderId\":$order,\"productId\":$product,\"quantity\":2,\"price\":99.5}" \
    | jq -er '.data.id')"
  # A dimension change after the facts exist: the facts' looked-up columns must follow it.
  api PUT "/api/customers/$customer" \
    "{\"email\":\"$CUSTOMER_EMAIL\",\"name\":\"Ada King\",\"country\":\"UK\",\"city\":\"Ockham\"}" >/dev/null
  api GET "/api/orders/$order" | jq -e '.data.items | length == 1' >/dev/null
  save customer "$customer"
  save product "$product"
  save order "$order"
  save item "$item"
  log "customer $customer, product $product, order $order, order item $item"
}

# clickhouse SQL: runs a query over the HTTP interface; prints TSV.
clickhouse() {
  curl -fsS "http://127.0.0.1:$LOCAL_CLICKHOUSE_PORT/?database=$CLICKHOUSE_DATABASE" --data-binary "$1"
}

# expect_clickhouse DESCRIPTION SQL EXPECTED: polls until the query prints EXPECTED (the sink is asynchronous).
expect_clickhouse() {
  local description="$1" sql="$2" expected="$3" actual="" attempt
  for attempt in $(seq 1 60); do
    actual="$(clickhouse "$sql" 2>/dev/null || true)"
    if [[ "$actual" == "$expected" ]]; then
      log "clickhouse: $description"
      return 0
    fi
    sleep 2
  done
  echo "clickhouse: $description: expected '$expected', got '$actual' after $attempt attempts: $sql" >&2
  return 1
}

check_star_schema() {
  local customer product order item
  customer="$(load customer)" product="$(load product)" order="$(load order)" item="$(load item)"
  expect_clickhouse "customer_dim has the updated customer" \
    "SELECT name, city FROM customer_dim FINAL WHERE customer_id = $customer AND is_deleted = 0 FORMAT TSV" \
    "$(printf 'Ada King\tOckham')"
  expect_clickhouse "product_dim has the product" \
    "SELECT name, category FROM product_dim FINAL WHERE product_id = $product FORMAT TSV" \
    "$(printf 'Analytical Engine\tmachines')"
  expect_clickhouse "order_fact follows the customer's new name" \
    "SELECT customer_name, customer_email FROM order_fact FINAL WHERE order_id = $order FORMAT TSV" \
    "$(printf 'Ada King\t%s' "$CUSTOMER_EMAIL")"
  expect_clickhouse "orderitem_fact carries product and customer lookups through the order" \
    "SELECT product_name, customer_country, customer_city FROM orderitem_fact FINAL WHERE orderitem_id = $item FORMAT TSV" \
    "$(printf 'Analytical Engine\tUK\tOckham')"
}

check_delete() {
  local item
  item="$(load item)"
  api DELETE "/api/order-items/$item" >/dev/null
  expect_clickhouse "a deleted order item disappears from orderitem_fact" \
    "SELECT count() FROM orderitem_fact FINAL WHERE orderitem_id = $item AND is_deleted = 0 FORMAT TSV" \
    "0"
}

dump_diagnostics() {
  echo
  echo "===== diagnostics (first failed step: $FAILED) ====="
  local ns
  set +e
  kubectl -n "$NAMESPACE" get cdcpipelines -o wide
  kubectl -n "$NAMESPACE" describe cdcpipeline "$PIPELINE"
  for ns in "$OPERATOR_NAMESPACE" "$NAMESPACE"; do
    echo "----- namespace $ns: pods, deployments, services -----"
    kubectl -n "$ns" get pods,deployments,services,jobs -o wide
    echo "----- namespace $ns: events -----"
    kubectl -n "$ns" get events --sort-by=.lastTimestamp
    echo "----- namespace $ns: describe pods not ready -----"
    kubectl -n "$ns" describe pods
  done
  echo "----- operator logs -----"
  kubectl -n "$OPERATOR_NAMESPACE" logs "deployment/$RELEASE" --all-containers --tail=300
  echo "----- pipeline pod logs -----"
  local pod
  for pod in $(kubectl -n "$NAMESPACE" get pods -o name); do
    echo "--- $pod ---"
    kubectl -n "$NAMESPACE" logs "$pod" --all-containers --tail=200
  done
  set -e
}

print_summary() {
  local i passed=0 failed=0 skipped=0
  echo
  echo "===== e2e summary (kind cluster $CLUSTER) ====="
  for i in "${!STEP_NAMES[@]}"; do
    printf '%-5s %s\n' "${STEP_RESULTS[$i]}" "${STEP_NAMES[$i]}"
    case "${STEP_RESULTS[$i]}" in
      PASS) passed=$((passed + 1)) ;;
      FAIL) failed=$((failed + 1)) ;;
      *) skipped=$((skipped + 1)) ;;
    esac
  done
  echo "e2e: $passed passed, $failed failed, $skipped skipped"
  if [[ "${DELETE_CLUSTER:-0}" != "1" ]]; then
    echo "the cluster stays up: kubectl --context kind-$CLUSTER -n $NAMESPACE get cdcpipelines;" \
      "delete it with: kind delete cluster --name $CLUSTER"
  fi
}

main() {
  step "tools: docker, kind, kubectl, helm, curl, jq" require_tools
  step "kind cluster $CLUSTER" create_cluster
  step "images cdcstar-*:$IMAGE_TAG built and loaded" build_and_load_images
  step "dev stack in namespace $NAMESPACE (Postgres, Redpanda, ClickHouse, shop tables)" install_dev_stack
  step "helm install $RELEASE in $OPERATOR_NAMESPACE" install_chart
  step "pipeline $PIPELINE Ready" apply_pipeline
  step "port-forwards to the api and ClickHouse" open_port_forwards
  step "API flow: customer, product, order, item, customer update" run_api_flow
  step "ClickHouse star schema reflects the API flow" check_star_schema
  step "a delete reaches the star schema" check_delete

  if [[ -n "$FAILED" && "$FAILED" != tools:* ]]; then
    dump_diagnostics
  fi
  print_summary
  [[ -z "$FAILED" ]]
}

main "$@"
