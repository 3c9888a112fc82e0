#!/usr/bin/env bash
# schemathesis against the running API (`make check-api-schema`, part of `make test`): builds
# cdcstar-api, starts it on a free loopback port against a fresh database of its own on the local
# Postgres, runs schemathesis (from the services venv) with every check on every operation, bounded
# (100 examples per operation, a fixed seed), and requires 0 failures. The API and its database are
# removed afterwards. Its settings (checks, expected statuses) are in api/schemathesis.toml.
#
#   scripts/services.sh up && eval "$(scripts/services.sh env)" && scripts/check-api-schema.sh
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
SCRIPT=check-api-schema
# shellcheck source=scripts/messages.sh
. "$REPO/scripts/messages.sh"
require_env DATABASE_URL
SCHEMATHESIS=${SCHEMATHESIS:-$REPO/.services/venv/bin/schemathesis}
[ -x "$SCHEMATHESIS" ] || die "$SCHEMATHESIS is missing: scripts/services.sh up installs it (scripts/requirements-services.txt)"
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-100}
SEED=${SCHEMATHESIS_SEED:-20261204}

# NB: --workspace, not -p cdcstar-api: cargo unifies features over the packages it is asked for, so a
# build of the api package alone resolves ~90 of its dependencies with other features than the
# workspace build of `make test` and compiles them again; with --workspace this step compiles nothing new.
cargo build -q --workspace --bin cdcstar-api
API="${CARGO_TARGET_DIR:-$REPO/target}/debug/cdcstar-api"

DB=cdcstar_api_schema_$$
DB_URL="${DATABASE_URL%%\?*}"
DB_URL="${DB_URL%/*}/$DB"
free_port() { "$REPO/scripts/free-port.py"; }
PORT=$(free_port)
METRICS_PORT=$(free_port)
WORK=$(mktemp -d)
api_pid=
cleanup() {
    if [ -n "$api_pid" ]; then kill -TERM "$api_pid" 2>/dev/null || true; wait "$api_pid" 2>/dev/null || true; fi
    psql "${DATABASE_URL%%\?*}" -X -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    [ -z "${CLICKHOUSE_URL:-}" ] || curl -fsS "$CLICKHOUSE_URL/" --data-binary "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$API" init-db --drop --database-url "$DB_URL" >/dev/null
# The star-schema view (GET /api/star/{table}) reads a ClickHouse database of its own holding the four
# star tables (a row each, the columns the filters name), so its 200 answers are checked too; without
# CLICKHOUSE_URL it answers 404 (not configured).
star_flags=()
if [ -n "${CLICKHOUSE_URL:-}" ]; then
    ch() { curl -fsS "$CLICKHOUSE_URL/" --data-binary "$1" >/dev/null || die "ClickHouse refused: $1"; }
    engine="lsn UInt64, is_deleted UInt8) ENGINE = ReplacingMergeTree(lsn, is_deleted)"
    ch "CREATE DATABASE $DB"
    ch "CREATE TABLE $DB.customer_dim (customer_id UInt64, name String, created_at DateTime64(6), $engine ORDER BY customer_id"
    ch "CREATE TABLE $DB.product_dim (product_id UInt64, name String, price Float64, $engine ORDER BY product_id"
    ch "CREATE TABLE $DB.order_fact (order_id UInt64, customer_id UInt64, total Decimal(12, 2), $engine ORDER BY order_id"
    ch "CREATE TABLE $DB.orderitem_fact (orderitem_id UInt64, order_id UInt64, product_id UInt64, $engine ORDER BY orderitem_id"
    ch "INSERT INTO $DB.customer_dim VALUES (1, 'Ada', '2024-05-01 12:30:00', 1, 0)"
    ch "INSERT INTO $DB.product_dim VALUES (1, 'Mouse', 29.99, 2, 0)"
    ch "INSERT INTO $DB.order_fact VALUES (1, 1, 59.98, 3, 0)"
    ch "INSERT INTO $DB.orderitem_fact VALUES (1, 1, 1, 4, 0)"
    star_flags=(--clickhouse-url "$CLICKHOUSE_URL" --clickhouse-database "$DB")
fi
"$API" serve --database-url "$DB_URL" --host 127.0.0.1 --port "$PORT" --metrics-port "$METRICS_PORT" \
    "${star_flags[@]}" >"$WORK/api.log" 2>&1 &
api_pid=$!
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
    kill -0 "$api_pid" 2>/dev/null || { cat "$WORK/api.log"; die "the API exited before it was ready"; }
    sleep 0.1
done

echo "check-api-schema: schemathesis on http://127.0.0.1:$PORT/openapi.json, $EXAMPLES examples per operation, seed $SEED"
status=0
(cd api && "$SCHEMATHESIS" --config-file schemathesis.toml run "http://127.0.0.1:$PORT/openapi.json" \
    --checks all --max-examples "$EXAMPLES" --seed "$SEED" \
    --workers 1 --no-color) || status=$?
if [ "$status" -ne 0 ]; then
    echo "--- API log (last 30 lines)"; tail -30 "$WORK/api.log"
    echo "check-api-schema: 0 passed, 1 failed"
    exit 1
fi
echo "check-api-schema: 1 passed, 0 failed"
