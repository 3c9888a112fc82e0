#!/usr/bin/env bash
# The whole pipeline on one machine, no Kubernetes: the api, the native capture and the sink for
# examples/shop-pipeline.yaml, driven through the API like the reference test client (customers,
# products, an order with items, status and dimension updates, deletes). Prints how long each change
# took to become visible in ClickHouse (FINAL), then what the four star tables hold.
#
#   scripts/services.sh up && eval "$(scripts/services.sh env)" && scripts/demo.sh
#
# Assumes the services are up (DATABASE_URL, KAFKA_BROKERS, CLICKHOUSE_URL exported). The demo uses
# its own database (DEMO_DATABASE, default cdcstar_demo) on the DATABASE_URL server; it is created when
# missing and reused by later runs (new rows get new ids). Ports: DEMO_API_PORT (3002),
# DEMO_CAPTURE_METRICS_PORT (9465), DEMO_SINK_METRICS_PORT (9464), DEMO_API_METRICS_PORT (9102).
# DEMO_PIPELINE runs another pipeline file than examples/shop-pipeline.yaml.
# The replication slot is dropped on exit (DEMO_KEEP_SLOT=1 keeps it).
# PROFILE=release builds optimised binaries. Logs go to $DEMO_LOG_DIR (default .services/demo-logs/).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'demo: %s\n' "$*" >&2; }

for var in DATABASE_URL KAFKA_BROKERS CLICKHOUSE_URL; do
    [ -n "${!var:-}" ] || die "$var is not set: run scripts/services.sh up && eval \"\$(scripts/services.sh env)\""
done
for tool in curl jq psql; do
    command -v "$tool" >/dev/null || die "$tool is needed (apt-get install $tool)"
done

PROFILE=${PROFILE:-debug}
DEMO_DATABASE=${DEMO_DATABASE:-cdcstar_demo}
API_PORT=${DEMO_API_PORT:-3002}
API=http://127.0.0.1:$API_PORT
LOG_DIR=${DEMO_LOG_DIR:-$REPO/.services/demo-logs}
PIPELINE=${DEMO_PIPELINE:-$REPO/examples/shop-pipeline.yaml}
CH_DATABASE=$(awk '/^  clickhouse:/{f=1} f && /database:/{print $2; exit}' "$PIPELINE")
mkdir -p "$LOG_DIR"

DEMO_URL="${DATABASE_URL%/*}/$DEMO_DATABASE"
if ! psql "$DATABASE_URL" -tAc "SELECT 1 FROM pg_database WHERE datname = '$DEMO_DATABASE'" | grep -q 1; then
    psql "$DATABASE_URL" -qc "CREATE DATABASE $DEMO_DATABASE" >/dev/null
    log "created database $DEMO_DATABASE"
fi

log "building api, capture and sink ($PROFILE)"
cargo_flags=(-q -p cdcstar-api -p cdcstar-capture -p cdcstar-sink)
[ "$PROFILE" = release ] && cargo_flags+=(--release)
cargo build "${cargo_flags[@]}"
BIN=$REPO/target/$PROFILE

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    # An unread slot retains WAL forever: drop it unless asked to keep it (the next run then
    # re-creates it and snapshots the existing rows again, which the star schema absorbs).
    if [ "${DEMO_KEEP_SLOT:-0}" != 1 ]; then
        psql "$DEMO_URL" -qtAc "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
            WHERE database = current_database() AND NOT active" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

wait_http() { # wait_http URL WHAT PID
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || die "$2 exited; see $LOG_DIR"
        sleep 0.2
    done
    die "$2 not ready at $1 after 60 s; see $LOG_DIR"
}

log "starting the api on $API"
DATABASE_URL=$DEMO_URL AUTO_INIT_DB=true HOST=127.0.0.1 PORT=$API_PORT \
    METRICS_PORT=${DEMO_API_METRICS_PORT:-9102} \
    "$BIN/cdcstar-api" serve >"$LOG_DIR/api.log" 2>&1 &
PIDS+=($!)
wait_http "$API/health" api $!

log "starting the native capture"
CAPTURE_METRICS=http://127.0.0.1:${DEMO_CAPTURE_METRICS_PORT:-9465}
DATABASE_URL=$DEMO_URL METRICS_HOST=127.0.0.1 METRICS_PORT=${DEMO_CAPTURE_METRICS_PORT:-9465} \
    "$BIN/cdcstar-capture" --pipeline "$PIPELINE" --create-slot --heartbeat-seconds 5 \
    >"$LOG_DIR/capture.log" 2>&1 &
PIDS+=($!)
wait_http "$CAPTURE_METRICS/ready" capture $!

log "starting the sink"
SINK_METRICS=127.0.0.1:${DEMO_SINK_METRICS_PORT:-9464}
"$BIN/cdcstar-sink" --pipeline "$PIPELINE" --create-topics --create-tables \
    --metrics-addr "$SINK_METRICS" >"$LOG_DIR/sink.log" 2>&1 &
PIDS+=($!)
wait_http "http://$SINK_METRICS/ready" sink $!

# --- the reference client's flow ---------------------------------------------------------------

call() { # call METHOD PATH [JSON] -> response body
    local args=(-fsS -X "$1" "$API$2" -H 'content-type: application/json')
    [ $# -ge 3 ] && args+=(--data "$3")
    curl "${args[@]}" || die "$1 $2 failed"
}

ch() { # ch SQL -> TabSeparated result
    curl -fsS "$CLICKHOUSE_URL/?database=$CH_DATABASE" --data-binary "$1 FORMAT TabSeparated"
}

now_ms() { date +%s%3N; }

declare -a REPORT=()
# visible WHAT SQL EXPECTED START_MS: waits until SQL answers EXPECTED, records the delay
visible() {
    local deadline=$(( $(now_ms) + 60000 )) answer
    while true; do
        answer=$(ch "$2" 2>/dev/null || true)
        [ "$answer" = "$3" ] && break
        [ "$(now_ms)" -lt "$deadline" ] || die "$1: ClickHouse still answers '${answer}' instead of '$3' after 60 s"
        sleep 0.05
    done
    REPORT+=("$(printf '%6d ms  %s' $(( $(now_ms) - $4 )) "$1")")
}

RUN=$(date +%s)
t=$(now_ms); c1=$(call POST /api/customers "{\"email\":\"ada.$RUN@example.com\",\"name\":\"Ada Lovelace\",\"country\":\"UK\",\"city\":\"London\"}" | jq -r .data.id)
visible "customer $c1 created" "SELECT name FROM customer_dim FINAL WHERE customer_id = $c1" "Ada Lovelace" "$t"
t=$(now_ms); c2=$(call POST /api/customers "{\"email\":\"alan.$RUN@example.com\",\"name\":\"Alan Turing\",\"country\":\"UK\",\"city\":\"Wilmslow\"}" | jq -r .data.id)
visible "customer $c2 created" "SELECT name FROM customer_dim FINAL WHERE customer_id = $c2" "Alan Turing" "$t"
t=$(now_ms); p1=$(call POST /api/products '{"name":"Analytical Engine","category":"machines","price":19.99}' | jq -r .data.id)
visible "product $p1 created" "SELECT name FROM product_dim FINAL WHERE product_id = $p1" "Analytical Engine" "$t"
t=$(now_ms); p2=$(call POST /api/products '{"name":"Punched Cards","category":"supplies","price":2.5}' | jq -r .data.id)
visible "product $p2 created" "SELECT name FROM product_dim FINAL WHERE product_id = $p2" "Punched Cards" "$t"
t=$(now_ms); o1=$(call POST /api/orders "{\"customerId\":$c1,\"status\":\"pending\",\"total\":44.98}" | jq -r .data.id)
visible "order $o1 created (with customer name)" "SELECT customer_name FROM order_fact FINAL WHERE order_id = $o1" "Ada Lovelace" "$t"
t=$(now_ms); i1=$(call POST /api/order-items "{\"orderId\":$o1,\"productId\":$p1,\"quantity\":2,\"price\":19.99}" | jq -r .data.id)
visible "order item $i1 created (product, order, customer looked up)" \
    "SELECT concat(product_name, '/', order_status, '/', customer_city) FROM orderitem_fact FINAL WHERE orderitem_id = $i1" \
    "Analytical Engine/pending/London" "$t"
t=$(now_ms); i2=$(call POST /api/order-items "{\"orderId\":$o1,\"productId\":$p2,\"quantity\":2,\"price\":2.5}" | jq -r .data.id)
visible "order item $i2 created" "SELECT product_name FROM orderitem_fact FINAL WHERE orderitem_id = $i2" "Punched Cards" "$t"
t=$(now_ms); call PUT "/api/orders/$o1" "{\"customerId\":$c1,\"status\":\"shipped\",\"total\":44.98}" >/dev/null
visible "order $o1 shipped (status in order_fact)" "SELECT status FROM order_fact FINAL WHERE order_id = $o1" "shipped" "$t"
visible "order $o1 shipped (order_status in its items)" "SELECT groupUniqArray(order_status) FROM orderitem_fact FINAL WHERE order_id = $o1" "['shipped']" "$t"
t=$(now_ms); call PUT "/api/customers/$c1" "{\"email\":\"ada.$RUN@example.com\",\"name\":\"Ada King\",\"country\":\"UK\",\"city\":\"Ockham\"}" >/dev/null
visible "customer $c1 renamed and moved (dimension)" "SELECT concat(name, '/', city) FROM customer_dim FINAL WHERE customer_id = $c1" "Ada King/Ockham" "$t"
visible "customer $c1 renamed (denormalised into order_fact)" "SELECT customer_name FROM order_fact FINAL WHERE order_id = $o1" "Ada King" "$t"
visible "customer $c1 moved (denormalised into orderitem_fact)" "SELECT groupUniqArray(customer_city) FROM orderitem_fact FINAL WHERE order_id = $o1" "['Ockham']" "$t"
t=$(now_ms); call PUT "/api/products/$p2" '{"name":"Punched Cards","category":"supplies","price":3.0}' >/dev/null
visible "product $p2 price changed" "SELECT price FROM product_dim FINAL WHERE product_id = $p2" "3" "$t"
t=$(now_ms); call DELETE "/api/order-items/$i2" >/dev/null
visible "order item $i2 deleted" "SELECT count() FROM orderitem_fact FINAL WHERE orderitem_id = $i2" "0" "$t"
t=$(now_ms); call DELETE "/api/customers/$c2" >/dev/null
visible "customer $c2 deleted" "SELECT count() FROM customer_dim FINAL WHERE customer_id = $c2" "0" "$t"

printf '\nTime from the API call to the change being visible in ClickHouse (FINAL):\n'
printf '  %s\n' "${REPORT[@]}"
for table in customer_dim product_dim order_fact orderitem_fact; do
    key=$(awk -v t="$table" '$0 ~ "name: "t"$" {f=1} f && /key:/ {print $2; exit}' "$PIPELINE")
    printf '\n%s (FINAL, this run and earlier ones):\n' "$table"
    curl -fsS "$CLICKHOUSE_URL/?database=$CH_DATABASE" \
        --data-binary "SELECT * FROM $table FINAL ORDER BY $key FORMAT PrettyCompactMonoBlock"
done
printf '\ncapture metrics: %s/metrics   sink metrics: http://%s/metrics   logs: %s\n' \
    "$CAPTURE_METRICS" "$SINK_METRICS" "$LOG_DIR"
