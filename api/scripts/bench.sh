#!/usr/bin/env bash
# The API benchmark (`make bench-api`): starts the release API on its own database of the local
# Postgres (cdcstar_api_bench, dropped and recreated), runs cdcstar-api-load against it with the
# peak RSS read from the API's /proc entry, then stops the API. Extra arguments go to
# cdcstar-api-load (e.g. --duration 10s --connections 32).
set -euo pipefail

if [[ -z "${DATABASE_URL:-}" ]]; then
  echo "DATABASE_URL is not set: run scripts/services.sh up and eval \"\$(scripts/services.sh env)\"" >&2
  exit 1
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/target/release"
base_url="${DATABASE_URL%%\?*}"
bench_db_url="${base_url%/*}/cdcstar_api_bench"
port="${API_BENCH_PORT:-3992}"
metrics_port="${API_BENCH_METRICS_PORT:-9992}"
# NB: on 2 cores shared with Postgres and the load generator, a small pool beats a large one
# (6 connections gave ~10 % more req/s than 16 here).
db_connections="${API_BENCH_DB_CONNECTIONS:-6}"

"$bin/cdcstar-api" init-db --drop --database-url "$bench_db_url"
"$bin/cdcstar-api" serve --database-url "$bench_db_url" --host 127.0.0.1 \
  --port "$port" --metrics-port "$metrics_port" --db-max-connections "$db_connections" &
api_pid=$!
trap 'kill -TERM "$api_pid" 2>/dev/null || true; wait "$api_pid" 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$api_pid" 2>/dev/null; then echo "the API exited before it was ready" >&2; exit 1; fi
  sleep 0.1
done

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), api pool $db_connections connections"
"$bin/cdcstar-api-load" --api-url "http://127.0.0.1:$port" --api-pid "$api_pid" "$@"
