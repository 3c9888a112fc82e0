#!/usr/bin/env bash
# End to end, as a cluster would run it but without one: api → Postgres → native capture → broker →
# sink → ClickHouse, each a pod of the operator's own plan run by scripts/kubelet.py from the binaries
# built as docker/Dockerfile builds them (E2E_BIN_DIR, default target/release: `make check-shipped`
# builds them), after the operator's own provisioning.
#
# Runs the demo (scripts/demo.sh: creates, updates and deletes across the four tables through the
# api pod) on a pipeline of its own (its own Postgres database, topics, slot and ClickHouse database),
# then checks that ClickHouse FINAL (without deleted rows) equals Postgres for every star-schema
# table, denormalised columns included, within a bounded wait; that the demo ends by naming what
# still runs and a ClickHouse query that works as printed; that a TRUNCATE reaches ClickHouse and a
# change after it still lands; and that the Redpanda Connect engine's
# Deployment resolves (its env, volumes and connect.yaml; its binary is not ours to run).
#
#   scripts/services.sh up && eval "$(scripts/services.sh env)" && scripts/test-pipeline-e2e.sh
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
# shellcheck source=scripts/checks.sh
. "$REPO/scripts/checks.sh"
SCRIPT=e2e
# shellcheck source=scripts/messages.sh
. "$REPO/scripts/messages.sh"
require_env

RUN=e2e_$(date +%s)_$$
RUN_NAME=${RUN//_/-}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PIPELINE=$WORK/pipeline.yaml
# With a resync of customer_dim requested: after the flow, the kubelet runs its Job, then the scheduled
# verification's job template (--run-jobs); each must exit 0 (no mismatch).
sed -e "s/^  name: shop$/  name: ${RUN//_/-}\n  annotations: {cdcstar.dev\/resync: customer_dim}/" -e "s/prefix: shop$/prefix: $RUN/" -e "s/database: local$/database: $RUN/" \
    -e 's/{ name: order_date, source: orderDate, type: DateTime64(6) }/{ name: order_date, source: orderDate, type: DateTime64(6), onUnrepresentable: deadLetter }/' \
    examples/shop-pipeline.yaml >"$PIPELINE"
grep -q "database: $RUN" "$PIPELINE" && grep -q "onUnrepresentable: deadLetter" "$PIPELINE" && grep -q "cdcstar.dev/resync" "$PIPELINE" && grep -q "schedule:" "$PIPELINE" || die "could not derive a pipeline from examples/shop-pipeline.yaml"

echo "e2e: running the reference flow through the API on pipeline $RUN"
# After the flow, while the pods run: a TRUNCATE of orderitem must empty orderitem_fact, and an order
# item created afterwards must still land, looked up (compared with Postgres below).
cat >"$WORK/after-flow.sh" <<'END'
#!/usr/bin/env bash
set -euo pipefail
pg() { psql "$PG_URL" -X -q -t -A -c "$1" | head -1; }
ch() { curl -fsS "$CLICKHOUSE_URL/?database=$CH_DATABASE" --data-binary "$1 FORMAT TabSeparated"; }
until_ch() { # until_ch WHAT SQL EXPECTED
    local deadline=$((SECONDS + 60))
    until [ "$(ch "$2")" = "$3" ]; do
        [ $SECONDS -lt $deadline ] || { echo "e2e: $1: ClickHouse answers '$(ch "$2")', not '$3', after 60 s" >&2; exit 1; }
        sleep 0.2
    done
    echo "e2e: $1"
}
customer=$(pg 'SELECT min(id) FROM customer')
# A value customer_dim.created_at (DateTime64(6), up to 2299) cannot hold: clamped, the default policy,
# and a later valid change still lands.
pg "UPDATE customer SET \"createdAt\" = '2400-01-01' WHERE id = $customer" >/dev/null
until_ch "a createdAt in 2400 is clamped to 2299 in customer_dim" \
    "SELECT toYear(created_at) FROM customer_dim FINAL WHERE customer_id = $customer" 2299
pg "UPDATE customer SET \"createdAt\" = '2020-02-02' WHERE id = $customer" >/dev/null
until_ch "a valid createdAt after it lands" \
    "SELECT toYear(created_at) FROM customer_dim FINAL WHERE customer_id = $customer" 2020
# One order_fact.order_date cannot hold, under its declared policy deadLetter: the event goes to the
# dead-letter topic, and the order's next valid change lands.
order=$(pg "INSERT INTO \"order\" (\"customerId\", status, total, \"orderDate\") VALUES ($customer, 'pending', 12.34, '2500-01-01') RETURNING id")
pg "UPDATE \"order\" SET \"orderDate\" = '2021-03-03' WHERE id = $order" >/dev/null
until_ch "an order dated 2500 is dead-lettered and its valid change after it lands" \
    "SELECT toYear(order_date) FROM order_fact FINAL WHERE order_id = $order" 2021
pg 'TRUNCATE orderitem'
until_ch "TRUNCATE orderitem emptied orderitem_fact" \
    'SELECT count() FROM orderitem_fact FINAL WHERE is_deleted = 0' 0
curl -fsS -X POST "$API/api/order-items" -H 'content-type: application/json' \
    --data "{\"orderId\":$(pg 'SELECT min(id) FROM "order"'),\"productId\":$(pg 'SELECT min(id) FROM product'),\"quantity\":1,\"price\":1.5}" >/dev/null
# One librdkafka statistics interval (5 s): the sink's consumer_lag is then exported when the kubelet
# saves the pods' /metrics for scripts/check-monitoring.py.
sleep 6
END
chmod +x "$WORK/after-flow.sh"
export PG_URL="${DATABASE_URL%/*}/$RUN"

BIN_DIR=${E2E_BIN_DIR:-${CARGO_TARGET_DIR:-$REPO/target}/release}
# What the pods export, for scripts/check-monitoring.py.
METRICS_DIR=${CDCSTAR_METRICS_DIR:-$REPO/.services/exported-metrics}
[ -x "$BIN_DIR/cdcstar-operator" ] || die "no binaries in $BIN_DIR: run make check-shipped first"
if ! DEMO_RUN_JOBS=1 DEMO_PIPELINE=$PIPELINE DEMO_DATABASE=$RUN DEMO_LOG_DIR=$WORK/logs DEMO_BIN_DIR=$BIN_DIR DEMO_AFTER_FLOW=$WORK/after-flow.sh DEMO_SCRAPE_METRICS=$METRICS_DIR DEMO_API_PORT=$(scripts/free-port.py) \
    scripts/demo.sh >"$WORK/demo.out" 2>&1; then
    cat "$WORK/demo.out"
    for log in "$WORK"/logs/*.log; do echo "--- $log"; tail -30 "$log"; done
    echo "e2e: 0 passed, 1 failed"
    exit 1
fi
sed -n '/^Time from the API call/,/^$/p' "$WORK/demo.out"
# The resync Job and the scheduled verification ran as the operator builds them, after the flow.
for job in resync verify; do
    if grep -qE "job $RUN_NAME-$job[-a-z0-9]*: $job succeeded" "$WORK/demo.out"; then
        check_passed "the $job run exited 0 (no mismatch with Postgres after the flow)"
    else
        check_failed "the $job run did not succeed:"
        grep -E "job |error" "$WORK/demo.out" | tail -20
    fi
done
# A step the flow does not report done fails without a line of its own (demo.out shows the flow).
for step in "a createdAt in 2400 is clamped to 2299 in customer_dim" "a valid createdAt after it lands" \
    "an order dated 2500 is dead-lettered and its valid change after it lands" "TRUNCATE orderitem emptied orderitem_fact"; do
    if grep -qxF "e2e: $step" "$WORK/demo.out"; then
        check_passed "$step"
    else
        failed=$((failed + 1))
    fi
done

pg() { psql "$PG_URL" -X -q -t -A -F $'\t' -c "$1"; }
ch() { curl -fsS "$CLICKHOUSE_URL/?database=$RUN" --data-binary "$1 FORMAT TabSeparated"; }
ts() { echo "to_char($1, 'YYYY-MM-DD HH24:MI:SS.US')"; }

# table | Postgres query (the expected star-schema rows) | ClickHouse query (the same columns)
CHECKS=(
    "customer_dim|SELECT id, email, name, country, city, $(ts '"createdAt"') FROM customer ORDER BY id|SELECT customer_id, email, name, country, city, toString(created_at) FROM customer_dim FINAL WHERE is_deleted = 0 ORDER BY customer_id"
    "product_dim|SELECT id, name, category, price, $(ts '"createdAt"') FROM product ORDER BY id|SELECT product_id, name, category, price, toString(created_at) FROM product_dim FINAL WHERE is_deleted = 0 ORDER BY product_id"
    "order_fact|SELECT o.id, o.\"customerId\", o.status, o.total, $(ts 'o."orderDate"'), c.name, c.email FROM \"order\" o JOIN customer c ON c.id = o.\"customerId\" ORDER BY o.id|SELECT order_id, customer_id, status, total, toString(order_date), customer_name, customer_email FROM order_fact FINAL WHERE is_deleted = 0 ORDER BY order_id"
    "orderitem_fact|SELECT i.id, i.\"orderId\", i.\"productId\", i.quantity, i.price, p.name, p.category, o.status, $(ts 'o."orderDate"'), c.country, c.city FROM orderitem i JOIN product p ON p.id = i.\"productId\" JOIN \"order\" o ON o.id = i.\"orderId\" JOIN customer c ON c.id = o.\"customerId\" ORDER BY i.id|SELECT orderitem_id, order_id, product_id, quantity, price, product_name, product_category, order_status, toString(order_date), customer_country, customer_city FROM orderitem_fact FINAL WHERE is_deleted = 0 ORDER BY orderitem_id"
)

for check in "${CHECKS[@]}"; do
    IFS='|' read -r table pg_sql ch_sql <<<"$check"
    pg "$pg_sql" >"$WORK/expected"
    deadline=$((SECONDS + 60))
    until ch "$ch_sql" >"$WORK/actual" 2>"$WORK/ch.err" && cmp -s "$WORK/expected" "$WORK/actual"; do
        [ $SECONDS -lt $deadline ] || break
        sleep 0.5
    done
    if cmp -s "$WORK/expected" "$WORK/actual" && [ -s "$WORK/expected" ]; then
        check_passed "$table equals Postgres ($(wc -l <"$WORK/expected") rows)"
    else
        check_failed "$table differs from Postgres after 60 s (< Postgres, > ClickHouse FINAL):"
        diff "$WORK/expected" "$WORK/actual" | head -20 || true
        cat "$WORK/ch.err"
    fi
done

# The demo's last lines: what still runs, how to stop it, and a ClickHouse query that works as printed.
if [ "$(grep -cE '^  (postgres|kafka|clickhouse): up \(' "$WORK/demo.out")" -eq 3 ] \
    && grep -q '^stop them with: make services-down$' "$WORK/demo.out" \
    && query=$(grep -o "^  curl -sS '[^']*' --data-binary '[^']*'" "$WORK/demo.out") \
    && rows=$(eval "${query# }") && [ "$(grep -c '│' <<<"$rows")" -ge 1 ]; then
    check_passed "the demo ends with the services still running, the stop command and a ClickHouse query that returns rows"
else
    check_failed "the demo's last lines do not name the stop command and a working ClickHouse query:"
    tail -12 "$WORK/demo.out"
fi

# Pod logs are plain text when they do not go to a terminal (a log collector, a file).
if ! grep -l $'\x1b\[' "$WORK"/logs/*.log >/dev/null 2>&1 && ls "$WORK"/logs/*.log >/dev/null 2>&1; then
    check_passed "the pods' logs have no colour codes"
else
    check_failed "colour codes in the pods' logs (or no logs): $(grep -l $'\x1b\[' "$WORK"/logs/*.log 2>&1 | tr '\n' ' ')"
fi

# The Redpanda Connect engine: every manifest resolves (its binary is not built here).
sed -e 's/^    engine: native$/    engine: redpandaConnect\n    redpandaConnect: { licenseSecretRef: { name: rpcn, key: license } }/' "$PIPELINE" >"$WORK/connect.yaml"
if "$REPO/.services/venv/bin/python" scripts/kubelet.py --pipeline "$WORK/connect.yaml" --bin-dir "$BIN_DIR" \
    --source-dsn "$PG_URL" --secret rpcn/license=resolved-not-used --resolve-only >"$WORK/connect.out" 2>&1 \
    && grep -q "deployment ${RUN//_/-}-capture/capture: not run (image .* is not built by docker/Dockerfile)" "$WORK/connect.out"; then
    check_passed "the Redpanda Connect Deployment resolves (env, volumes, connect config)"
else
    check_failed "the Redpanda Connect Deployment does not resolve:"
    cat "$WORK/connect.out"
fi

# The demo drops its replication slot on exit: none may be left behind for this pipeline.
if [ -z "$(pg "SELECT slot_name FROM pg_replication_slots WHERE database = '$RUN'")" ]; then
    check_passed "no replication slot left behind"
else
    check_failed "a replication slot of $RUN is left behind"
fi

# Leave nothing of this run behind.
curl -fsS "$CLICKHOUSE_URL/" --data-binary "DROP DATABASE IF EXISTS $RUN" >/dev/null || true
psql "$DATABASE_URL" -X -q -c "DROP DATABASE IF EXISTS $RUN" >/dev/null 2>&1 || true

checks_done "e2e"
