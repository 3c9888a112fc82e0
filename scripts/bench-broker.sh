#!/usr/bin/env bash
# Runs a benchmark command with the broker the benchmarks use (the `make bench-*` recipes wrap theirs):
#
#   BENCH_BROKER=mock (default)  a private librdkafka mock cluster (cdcstar-mock-broker) started for this
#                                command on a port the kernel picks, KAFKA_BROKERS pointing at it, stopped
#                                afterwards: in memory and far faster than tansu, so the figures are
#                                cdcstar's rather than the test broker's. Never a durability test.
#   BENCH_BROKER=env             the KAFKA_BROKERS of the environment as it is (tansu from
#                                scripts/services.sh, or a real Kafka/Redpanda cluster).
#
#   scripts/bench-broker.sh COMMAND [ARG...]
#
# Each benchmark still measures the broker's own produce and drain ceilings in the same run and prints
# them beside its figures.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT=bench
# shellcheck source=scripts/messages.sh
. "$REPO/scripts/messages.sh"
[ $# -gt 0 ] || die "usage: $0 COMMAND [ARG...]"

case ${BENCH_BROKER:-mock} in
    env)
        [ -n "${KAFKA_BROKERS:-}" ] || die "BENCH_BROKER=env but KAFKA_BROKERS is not set"
        log "broker: KAFKA_BROKERS=$KAFKA_BROKERS from the environment (BENCH_BROKER=env)"
        CDCSTAR_BENCH_BROKER="the broker at $KAFKA_BROKERS" exec "$@"
        ;;
    mock) ;;
    *) die "BENCH_BROKER=$BENCH_BROKER: expected mock or env" ;;
esac

cargo build -q --release --manifest-path "$REPO/Cargo.toml" -p cdcstar-runtime --bin cdcstar-mock-broker
BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/cdcstar-mock-broker
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cdcstar-bench-broker.XXXXXX")
touch "$WORK/stdout" # NB: the broker's redirection happens in the background: the file may not exist yet below
"$BIN" >"$WORK/stdout" 2>"$WORK/log" </dev/null &
BROKER_PID=$!
stop() {
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap stop EXIT
for _ in $(seq 1 300); do
    bootstrap=$(sed -n 's/^bootstrap //p' "$WORK/stdout")
    [ -n "$bootstrap" ] && break
    kill -0 "$BROKER_PID" 2>/dev/null || { cat "$WORK/log" >&2; die "cdcstar-mock-broker exited"; }
    sleep 0.1
done
[ -n "$bootstrap" ] || { cat "$WORK/log" >&2; die "cdcstar-mock-broker printed no bootstrap address in 30 s"; }
export KAFKA_BROKERS=$bootstrap
# What the benchmark is told it runs on (scripts/bench-pipeline.sh re-runs itself under this script unless set).
export CDCSTAR_BENCH_BROKER="mock broker"
log "broker: librdkafka's mock cluster at $KAFKA_BROKERS for this run (in memory; BENCH_BROKER=env for \$KAFKA_BROKERS)"
status=0
"$@" || status=$?
exit $status
