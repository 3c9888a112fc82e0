#!/usr/bin/env bash
# The whole pipeline on one machine, as a cluster would run it: the operator's own plan for
# examples/shop-pipeline.yaml (its api, native capture and sink Deployments) runs through the small
# kubelet (scripts/kubelet.py: each pod in network and mount namespaces of its own, probes, env from
# Secrets and ConfigMaps, volumes at their paths), after the operator's own provisioning of Postgres
# and ClickHouse. The reference client's flow then goes through the api pod (scripts/demo-flow.sh),
# timing each change until ClickHouse (FINAL) shows it. At the end the pods stop and the finalizer's
# cleanup drops the slot.
#
#   scripts/services.sh up && eval "$(scripts/services.sh env)" && scripts/demo.sh
#
# Assumes the services are up (DATABASE_URL, KAFKA_BROKERS, CLICKHOUSE_URL exported) and root (the
# pods' namespaces). The demo uses its own database (DEMO_DATABASE, default cdcstar_demo) on the
# DATABASE_URL server; it is created when missing and reused by later runs (new rows get new ids).
# DEMO_API_PORT (3002) is where the api Service is forwarded. DEMO_PIPELINE runs another pipeline file.
# DEMO_KEEP_RUNNING=1 (make demo-ui) keeps the pipeline running after the flow, with the test client page
# at http://127.0.0.1:$DEMO_API_PORT/client/ (Ctrl-C stops it). DEMO_SCRAPE_METRICS=DIR saves each pod's
# /metrics there before the pods stop.
# DEMO_RUN_JOBS=1 runs the pipeline's Jobs and CronJobs (verification, resync) once after the flow.
# PROFILE=release builds optimised binaries; DEMO_BIN_DIR uses binaries built elsewhere (no build).
# Pod logs go to $DEMO_LOG_DIR (default .services/demo-logs/).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

SCRIPT=demo
# shellcheck source=scripts/messages.sh
. "$REPO/scripts/messages.sh"
require_env
for tool in curl jq psql; do
    command -v "$tool" >/dev/null || die "$tool is needed (apt-get install $tool)"
done
[ "$(id -u)" = 0 ] || die "the demo runs the pods in Linux namespaces of their own and needs root"
PYTHON=$REPO/.services/venv/bin/python
[ -x "$PYTHON" ] || die "$PYTHON is missing: run scripts/services.sh up"

PROFILE=${PROFILE:-debug}
DEMO_DATABASE=${DEMO_DATABASE:-cdcstar_demo}
API_PORT=${DEMO_API_PORT:-3002}
LOG_DIR=${DEMO_LOG_DIR:-$REPO/.services/demo-logs}
PIPELINE=${DEMO_PIPELINE:-$REPO/examples/shop-pipeline.yaml}
PIPELINE_NAME=$(awk '/^metadata:/{m=1} m && /^  name:/{print $2; exit}' "$PIPELINE")
CH_DATABASE=$(awk '/^  clickhouse:/{f=1} f && /database:/{print $2; exit}' "$PIPELINE")
mkdir -p "$LOG_DIR"

DEMO_URL="${DATABASE_URL%/*}/$DEMO_DATABASE"
if ! psql "$DATABASE_URL" -tAc "SELECT 1 FROM pg_database WHERE datname = '$DEMO_DATABASE'" | grep -q 1; then
    psql "$DATABASE_URL" -qc "CREATE DATABASE $DEMO_DATABASE" >/dev/null
    log "created database $DEMO_DATABASE"
fi

if [ -n "${DEMO_BIN_DIR:-}" ]; then
    BIN=$DEMO_BIN_DIR
else
    log "building the operator, api, capture and sink ($PROFILE)"
    # NB: --workspace, so the features are those of `cargo build --workspace` and nothing recompiles.
    cargo_flags=(--workspace --bin cdcstar-operator --bin cdcstar-api --bin cdcstar-capture --bin cdcstar-sink)
    [ "$PROFILE" = release ] && cargo_flags+=(--release)
    cargo build "${cargo_flags[@]}"
    BIN=${CARGO_TARGET_DIR:-$REPO/target}/$PROFILE
fi

kubelet_flags=(--pipeline "$PIPELINE" --bin-dir "$BIN" --logs "$LOG_DIR" --source-dsn "$DEMO_URL"
    --port-forward "$PIPELINE_NAME-api=$API_PORT")
[ "${DEMO_KEEP_SLOT:-0}" = 1 ] && kubelet_flags+=(--keep-slot)
[ "${DEMO_KEEP_RUNNING:-0}" = 1 ] && kubelet_flags+=(--keep-running)
[ -n "${DEMO_SCRAPE_METRICS:-}" ] && kubelet_flags+=(--scrape-metrics "$DEMO_SCRAPE_METRICS")
[ "${DEMO_RUN_JOBS:-0}" = 1 ] && kubelet_flags+=(--run-jobs)
log "running the operator's plan for $PIPELINE_NAME through scripts/kubelet.py"
API=http://127.0.0.1:$API_PORT CH_DATABASE=$CH_DATABASE PIPELINE=$PIPELINE \
    "$PYTHON" scripts/kubelet.py "${kubelet_flags[@]}" -- scripts/demo-flow.sh

ch_url="$CLICKHOUSE_URL/?database=$CH_DATABASE"
services=$(scripts/services.sh status 2>&1 || true)
standin=
if grep -q 'standing in while tansu builds' <<<"$services"; then
    standin="
The broker is the in-memory mock broker until tansu is built; the first make demo or make test after the
build replaces it with tansu (make test waits for the build)."
fi
cat <<END

The pipeline's pods have stopped and its replication slot is dropped; their logs are in $LOG_DIR.
The local services, still running (scripts/services.sh status):
$(sed 's/^/  /' <<<"$services")$standin
stop them with: make services-down

Next:
  make test                                  every test, on the same local services
  make demo-ui                               the same, and the pipeline keeps running with the test client
                                             page at http://127.0.0.1:$API_PORT/client/ until Ctrl-C
  curl -sS '$ch_url' --data-binary 'SELECT order_id, customer_name, status, total FROM order_fact FINAL ORDER BY order_id DESC LIMIT 5 FORMAT PrettyCompact'
                                             the newest orders in the star schema
END
