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
[ -n "${DATABASE_URL:-}" ] || { echo "check-api-schema: DATABASE_URL is not set: run scripts/services.sh up && eval \"\$(scripts/services.sh env)\"" >&2; exit 1; }
SCHEMATHESIS=${SCHEMATHESIS:-$REPO/.services/venv/bin/schemathesis}
[ -x "$SCHEMATHESIS" ] || { echo "check-api-schema: $SCHEMATHESIS is missing: scripts/services.sh up installs it (scripts/requirements-services.txt)" >&2; exit 1; }
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
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
METRICS_PORT=$(free_port)
WORK=$(mktemp -d)
api_pid=
cleanup() {
    if [ -n "$api_pid" ]; then kill -TERM "$api_pid" 2>/dev/null || true; wait "$api_pid" 2>/dev/null || true; fi
    psql "${DATABASE_URL%%\?*}" -X -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$API" init-db --drop --database-url "$DB_URL" >/dev/null
"$API" serve --database-url "$DB_URL" --host 127.0.0.1 --port "$PORT" --metrics-port "$METRICS_PORT" \
    >"$WORK/api.log" 2>&1 &
api_pid=$!
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
    kill -0 "$api_pid" 2>/dev/null || { cat "$WORK/api.log"; echo "check-api-schema: the API exited before it was ready" >&2; exit 1; }
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
