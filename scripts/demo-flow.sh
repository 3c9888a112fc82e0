#!/usr/bin/env bash
# The reference client's flow through the API (customers, products, an order with items, status and
# dimension updates, deletes), each change timed until ClickHouse (FINAL) shows it; then what the four
# star tables hold. scripts/demo.sh runs it against the pipeline's pods (scripts/kubelet.py).
# DEMO_AFTER_FLOW names a script run after the flow while the pipeline runs (the end-to-end test's).
#
#   API=http://127.0.0.1:3002 CLICKHOUSE_URL=... CH_DATABASE=local PIPELINE=examples/shop-pipeline.yaml \
#       scripts/demo-flow.sh
set -euo pipefail

die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }
for var in API CLICKHOUSE_URL CH_DATABASE PIPELINE; do
    [ -n "${!var:-}" ] || die "$var is not set"
done

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
# The end-to-end test's own steps, run while the pipeline still runs.
if [ -n "${DEMO_AFTER_FLOW:-}" ]; then
    "$DEMO_AFTER_FLOW" || die "$DEMO_AFTER_FLOW failed"
fi
for table in customer_dim product_dim order_fact orderitem_fact; do
    key=$(awk -v t="$table" '$0 ~ "name: "t"$" {f=1} f && /key:/ {print $2; exit}' "$PIPELINE")
    printf '\n%s (FINAL, this run and earlier ones):\n' "$table"
    curl -fsS "$CLICKHOUSE_URL/?database=$CH_DATABASE" \
        --data-binary "SELECT * FROM $table FINAL ORDER BY $key FORMAT PrettyCompactMonoBlock"
done

if [ "${DEMO_KEEP_RUNNING:-0}" = 1 ]; then
    printf '\nThe pipeline keeps running: the test client page is at %s/client/ and the API docs at %s/docs;\nCtrl-C stops it.\n' "$API" "$API"
fi
