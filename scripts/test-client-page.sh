#!/usr/bin/env bash
# The test client page in a real browser (part of `make test`): the operator's own pods for a
# pipeline of its own (its own Postgres database, topics, slot and ClickHouse database, derived from
# examples/shop-pipeline.yaml as scripts/test-pipeline-e2e.sh derives its) run through
# scripts/kubelet.py, and scripts/test-client-page.py drives the api pod's /client/ page in headless
# Debian chromium through chromium-driver: create customer, create order with items, change status,
# rename customer, delete order, each asserted in the page's star-schema view.
#
#   scripts/services.sh up && eval "$(scripts/services.sh env)" && scripts/test-client-page.sh
#
# Installs chromium and chromium-driver with apt-get when chromedriver is missing (root). Uses the
# debug binaries (`cargo build --workspace --bins`; CLIENT_PAGE_BIN_DIR for others). SCREENSHOT=PATH
# writes a PNG of the page after the rename (docs/client-page.png is one).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
SCRIPT=client-page
# shellcheck source=scripts/messages.sh
. "$REPO/scripts/messages.sh"
require_env
[ "$(id -u)" = 0 ] || die "the pods run in Linux namespaces of their own: needs root"
PYTHON=${CDCSTAR_PYTHON:-$REPO/.services/venv/bin/python}
[ -x "$PYTHON" ] || die "$PYTHON is missing: run scripts/services.sh up"

if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
    mkdir -p "$REPO/.services"
    # shellcheck source=scripts/progress.sh
    . "$REPO/scripts/progress.sh"
    PROGRESS_NAME=client-page run_with_progress "installing chromium and chromium-driver (apt-get)" "$REPO/.services/apt-chromium.log" \
        env DEBIAN_FRONTEND=noninteractive sh -c 'apt-get update -qq && apt-get install -y -qq chromium chromium-driver' \
        || { tail -20 "$REPO/.services/apt-chromium.log" >&2; die "could not install chromium chromium-driver"; }
fi

BIN_DIR=${CLIENT_PAGE_BIN_DIR:-${CARGO_TARGET_DIR:-$REPO/target}/debug}
for binary in cdcstar-operator cdcstar-api cdcstar-capture cdcstar-sink; do
    [ -x "$BIN_DIR/$binary" ] || die "$BIN_DIR/$binary is not built: cargo build --workspace --bins"
done

RUN=page_$(date +%s)_$$
WORK=$(mktemp -d)
PG_URL="${DATABASE_URL%/*}/$RUN"
cleanup() {
    curl -fsS "$CLICKHOUSE_URL/" --data-binary "DROP DATABASE IF EXISTS $RUN" >/dev/null 2>&1 || true
    psql "$DATABASE_URL" -X -q -c "DROP DATABASE IF EXISTS $RUN WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
sed -e "s/^  name: shop$/  name: ${RUN//_/-}/" -e "s/prefix: shop$/prefix: $RUN/" -e "s/database: local$/database: $RUN/" \
    examples/shop-pipeline.yaml >"$WORK/pipeline.yaml"
grep -q "database: $RUN" "$WORK/pipeline.yaml" || die "could not derive a pipeline from examples/shop-pipeline.yaml"
psql "$DATABASE_URL" -X -q -c "CREATE DATABASE $RUN" >/dev/null
PORT=$(scripts/free-port.py)

echo "client-page: pipeline $RUN through scripts/kubelet.py, the page at http://127.0.0.1:$PORT/client/"
status=0
API=http://127.0.0.1:$PORT CH_DATABASE=$RUN "$PYTHON" scripts/kubelet.py --pipeline "$WORK/pipeline.yaml" \
    --bin-dir "$BIN_DIR" --logs "$WORK/logs" --source-dsn "$PG_URL" --port-forward "${RUN//_/-}-api=$PORT" \
    -- python3 scripts/test-client-page.py >"$WORK/out" 2>&1 || status=$?
grep -v '^kubelet: provision: ' "$WORK/out" | grep -v '^kubelet: .* ready (' || true
if [ "$status" -ne 0 ]; then
    for log in "$WORK"/logs/*.log; do [ -e "$log" ] && { echo "--- $log"; tail -30 "$log"; }; done
    echo "client-page: 0 passed, 1 failed"
    exit 1
fi
echo "client-page: 1 passed, 0 failed"
