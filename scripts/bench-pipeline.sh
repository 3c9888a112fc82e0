#!/usr/bin/env bash
# End-to-end benchmark of the local pipeline (issue 7): Postgres -> native capture -> broker -> sink ->
# ClickHouse. Prints, in one run:
#   0. the broker fixture's own share: produce -> ack / produce -> consume at BENCH_RATE msg/s, its
#      produce ceiling with the capture's producer (BENCH_CEILING_MESSAGES events) and its drain ceiling
#      (the same events read back by a bare consumer); both ceilings are printed again beside the
#      capture's rates below;
#   1. commit -> visible in ClickHouse FINAL latency p50/p95/p99 at BENCH_RATE mixed transactions/s
#      (inserts/updates/deletes) for BENCH_SECONDS, how long the backlog took to drain, and where the
#      time goes (capture read, broker ack, sink insert: the processes' own histograms) and the CPU
#      share of every fixture and process; repeated BENCH_LATENCY_RUNS times, each on fresh topics and
#      printed, then how many runs met p50 < 100 ms and p99 < 250 ms;
#   2. the maximum row-change rate the capture sustains (steps BENCH_STEPS, BENCH_STEP_SECONDS each);
#   3. the snapshot rate of a BENCH_SNAPSHOT_ROWS-row table and the capture's CPU per row (its own
#      threads apart from librdkafka's);
#   4. peak RSS (VmHWM) of the capture and the sink, in each phase apart.
#
#   scripts/services.sh up && eval "$(scripts/services.sh env)" && scripts/bench-pipeline.sh
#
# The broker is a private librdkafka mock cluster started for the run (scripts/bench-broker.sh; the
# script re-runs itself under it), or with BENCH_BROKER=env the KAFKA_BROKERS of the environment.
#
# Env: BENCH_RATE (1000), BENCH_SECONDS (60), BENCH_LATENCY_RUNS (5), BENCH_STEPS (25000,50000,60000),
# BENCH_STEP_SECONDS (60), BENCH_SNAPSHOT_ROWS (5000000), BENCH_CEILING_MESSAGES (300000), BENCH_SKIP
# (comma list of broker, latency, max-rate, snapshot). Uses its own database cdcstar_bench and ClickHouse database bench, both re-created.
# NB: the local ClickHouse is the chdb engine behind a Python adapter (parallel connections, but Python
# HTTP on the same 2 cores): the latency figures include its cost; run against a real server
# (CLICKHOUSE_URL) for production figures.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${CDCSTAR_BENCH_BROKER:-}" ]; then exec "$REPO/scripts/bench-broker.sh" "$0" "$@"; fi
cd "$REPO"
SCRIPT=bench
# shellcheck source=scripts/messages.sh
. "$REPO/scripts/messages.sh"
require_env
RATE=${BENCH_RATE:-1000}
SECONDS_OF_LOAD=${BENCH_SECONDS:-60}
LATENCY_RUNS=${BENCH_LATENCY_RUNS:-5}
STEPS=${BENCH_STEPS:-25000,50000,60000}
STEP_SECONDS=${BENCH_STEP_SECONDS:-60}
SNAPSHOT_ROWS=${BENCH_SNAPSHOT_ROWS:-5000000}
CEILING_MESSAGES=${BENCH_CEILING_MESSAGES:-300000}
SKIP=",${BENCH_SKIP:-},"
WORK=$REPO/.services/bench
CAPTURE_PORT=19465
SINK_PORT=19464
mkdir -p "$WORK"

log "building release binaries"
cargo build -q --release -p cdcstar-capture -p cdcstar-sink --bins
BIN=${CARGO_TARGET_DIR:-$REPO/target}/release

DB=cdcstar_bench
BENCH_URL="${DATABASE_URL%/*}/$DB"
psql "$DATABASE_URL" -qtAc "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '$DB' AND NOT active" >/dev/null
psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
psql "$DATABASE_URL" -qc "CREATE DATABASE $DB" >/dev/null
# The star tables start empty too: the source's ids start again at 1 each run, and rows a previous run
# left under the same ids (with higher sequence numbers, or deleted) would answer the latency probe
# before the new row arrived, and slow every statement as the runs piled up.
CH_DB=bench
curl -fsS "$CLICKHOUSE_URL/" --data-binary "DROP DATABASE IF EXISTS $CH_DB" >/dev/null \
    || die "ClickHouse at $CLICKHOUSE_URL refused to drop the database $CH_DB"
"$BIN/cdcstar-capture-bench" --database-url "$BENCH_URL" setup

RUN=$(date +%s)
dimension() { # dimension TABLE: the star schema entry of a benchmark table
    case $1 in
        bench_event) dimension_entry bench_dim bench_event id:UInt64 seq:Int64 note:String \
            'amount:"Decimal(12, 2)"' 'at:DateTime64(6)' ;;
        bench_snapshot) dimension_entry snapshot_dim bench_snapshot id:UInt64 v:Int64 note:String ;;
    esac
}
dimension_entry() { # dimension_entry NAME SOURCE COLUMN:TYPE...: keyed by id, each column copied
    printf '      - name: %s\n        source: %s\n        key: id\n        columns:\n' "$1" "$2"
    shift 2
    local column
    for column in "$@"; do
        printf '          - {name: %s, source: %s, type: %s}\n' "${column%%:*}" "${column%%:*}" "${column#*:}"
    done
}
pipeline() { # pipeline NAME TABLE SNAPSHOT
    cat >"$WORK/$1.yaml" <<EOF
apiVersion: cdcstar.dev/v1alpha1
kind: CdcPipeline
metadata:
  name: $1
spec:
  source:
    connectionSecretRef: {name: unused, key: dsn}
    tables:
      - name: $2
  capture:
    engine: native
    snapshot: $3
  kafka:
    brokers: ["$KAFKA_BROKERS"]
    topics: {mode: perTable, prefix: $1-$RUN, partitions: 3}
  clickhouse:
    url: $CLICKHOUSE_URL
    database: $CH_DB
  starSchema:
    dimensions:
$(dimension "$2")
EOF
    echo "$WORK/$1.yaml"
}

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    psql "$BENCH_URL" -qtAc "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database() AND NOT active" >/dev/null 2>&1 || true
}
trap cleanup EXIT

wait_http() { # wait_http URL WHAT PID
    for _ in $(seq 1 600); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || die "$2 exited; see $WORK/$2.log"
        sleep 0.1
    done
    die "$2 not ready at $1; see $WORK/$2.log"
}
peak_mib() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
peak_rss() { echo "$(peak_mib "$1") MiB"; }
cpu_split() { # cpu_split PID -> "librdkafka_ns other_ns": CPU time of the process's threads, by owner
    local rdk=0 other=0 task ns
    for task in /proc/"$1"/task/*; do
        ns=$(cut -d' ' -f1 "$task/schedstat" 2>/dev/null) || continue
        if [[ $(cat "$task/comm" 2>/dev/null) == rdk:* ]]; then rdk=$((rdk + ns)); else other=$((other + ns)); fi
    done
    echo "$rdk $other"
}
cpu_ticks_by_role() { # cpu_ticks_by_role -> "machine busy clickhouse broker postgres load capture sink" CPU ticks so far
    local clickhouse_pid; clickhouse_pid=$(head -1 "${CDCSTAR_STATE_DIR:-$REPO/.services}/clickhouse.pid" 2>/dev/null || echo none)
    {
        awk '/^cpu / {print "machine", $2 + $3 + $4 + $7 + $8}' /proc/stat
        local p line comm role fields
        for p in /proc/[0-9]*; do
            read -r line <"$p/stat" 2>/dev/null || continue
            comm=${line#*(}; comm=${comm%%)*}
            case ${p#/proc/}:$comm in
                "$clickhouse_pid":*) role=clickhouse ;;
                *:cdcstar-mock-br* | *:tansu*) role=broker ;;
                *:postgres) role=postgres ;;
                "$CAPTURE":*) role=capture ;;
                "$SINK":*) role=sink ;;
                "$$":*) role=load ;;
                *) continue ;;
            esac
            read -ra fields <<<"${line##*) }"
            # Own time, and (for the postmaster and this script) that of the children it reaped: the
            # load's Postgres backend and the benchmark process end with the run.
            echo "$role $(( fields[11] + fields[12] + fields[13] + fields[14] ))"
        done
    } | awk '{t[$1] += $2} END {printf "%d %d %d %d %d %d %d\n", t["machine"], t["clickhouse"], t["broker"], t["postgres"], t["load"], t["capture"], t["sink"]}'
}
cpu_share() { # cpu_share BEFORE AFTER SECONDS: where the machine's CPU went between two cpu_ticks_by_role
    awk -v before="$1" -v after="$2" -v seconds="$3" -v cores="$(nproc)" -v hz="$(getconf CLK_TCK)" 'BEGIN {
        split(before, b, " "); split(after, a, " ");
        split("busy,ClickHouse fixture,broker fixture,Postgres,load generator and probe,capture,sink", name, ",");
        line = sprintf("CPU over the run (%d cores = %d %%):", cores, cores * 100);
        for (i = 1; i <= 7; i++) line = line sprintf(" %s %.0f %%%s", name[i], (a[i] - b[i]) / hz / seconds * 100, i == 1 ? ";" : ",");
        print substr(line, 1, length(line) - 1)
    }'
}
metric_total() { # metric_total PORT NAME -> the sum of the metric's samples over its labels
    curl -fsS "http://127.0.0.1:$1/metrics" | awk -v m="$2" 'index($0, m) == 1 {s += $NF} END {printf "%d", s}'
}
metric() { # metric NAME_AND_LABELS -> value
    curl -fsS "http://127.0.0.1:$CAPTURE_PORT/metrics" | awk -v m="$1" 'index($0, m) == 1 {print $NF}' | head -1
}

CEILINGS="broker ceilings not measured (BENCH_SKIP=broker)"
if [[ $SKIP != *,broker,* ]]; then
    log "broker fixture alone ($CDCSTAR_BENCH_BROKER): round trip at $RATE msg/s, produce and drain ceilings"
    "$BIN/cdcstar-capture-bench" --database-url "$BENCH_URL" broker-round-trip --rate "$RATE" --seconds 10
    "$BIN/cdcstar-capture-bench" --database-url "$BENCH_URL" broker-ceiling --messages "$CEILING_MESSAGES" \
        | tee "$WORK/ceiling.txt"
    rate_of() { sed -n "s/^broker $1 ceiling (fixture): .* = \([0-9]*\) events\/s.*/\1/p" "$WORK/ceiling.txt"; }
    CEILINGS="$CDCSTAR_BENCH_BROKER's own ceilings in this run: produce $(rate_of produce) events/s, drain $(rate_of drain) events/s"
fi

# Each latency run and the max-rate phase stream through a capture and a sink of their own, on
# fresh topics: librdkafka's mock broker finds a fetch's offset by walking the partition's log from
# its start (up to 100 000 record batches), so on a log kept from the runs before, every fetch costs
# more (measured: the broker's share of the CPU grew from 26 % in the first minute to 75 % in the
# third), which is the fixture's cost, not the pipeline's. The star table stays: ClickHouse's work
# on a growing table is real.
STREAMS=0
CHANGES=0 FLUSHED=0 CAPTURE_OWN=0 CAPTURE_RDK=0 SINK_OWN=0 SINK_RDK=0
start_stream() { # start_stream: a capture and a sink of bench_event on fresh topics
    STREAMS=$((STREAMS + 1))
    local pipe; pipe=$(pipeline "bench-stream-$STREAMS" bench_event false)
    DATABASE_URL=$BENCH_URL METRICS_HOST=127.0.0.1 METRICS_PORT=$CAPTURE_PORT \
        "$BIN/cdcstar-capture" --pipeline "$pipe" --create-slot >"$WORK/capture-$STREAMS.log" 2>&1 &
    CAPTURE=$!; PIDS+=($CAPTURE)
    wait_http "http://127.0.0.1:$CAPTURE_PORT/ready" "capture-$STREAMS" $CAPTURE
    "$BIN/cdcstar-sink" --pipeline "$pipe" --create-topics --create-tables \
        --metrics-addr "127.0.0.1:$SINK_PORT" >"$WORK/sink-$STREAMS.log" 2>&1 &
    SINK=$!; PIDS+=($SINK)
    wait_http "http://127.0.0.1:$SINK_PORT/ready" "sink-$STREAMS" $SINK
    read -r capture_rdk_start capture_own_start <<<"$(cpu_split $CAPTURE)"
    read -r sink_rdk_start sink_own_start <<<"$(cpu_split $SINK)"
}
stop_stream() { # stop_stream: adds the stream's events and CPU to the totals, then stops it
    local capture_rdk capture_own sink_rdk sink_own
    read -r capture_rdk capture_own <<<"$(cpu_split $CAPTURE)"
    read -r sink_rdk sink_own <<<"$(cpu_split $SINK)"
    CAPTURE_RDK=$((CAPTURE_RDK + capture_rdk - capture_rdk_start)) CAPTURE_OWN=$((CAPTURE_OWN + capture_own - capture_own_start))
    SINK_RDK=$((SINK_RDK + sink_rdk - sink_rdk_start)) SINK_OWN=$((SINK_OWN + sink_own - sink_own_start))
    CHANGES=$((CHANGES + $(metric_total $CAPTURE_PORT cdcstar_capture_events_total)))
    FLUSHED=$((FLUSHED + $(metric_total $SINK_PORT cdcstar_sink_events_flushed_total)))
    cleanup; PIDS=()
}

if [[ $SKIP != *,latency,* ]]; then
    : >"$WORK/latency-runs.txt"
    capture_peak=0 sink_peak=0
    for run in $(seq 1 "$LATENCY_RUNS"); do
        start_stream
        log "latency run $run/$LATENCY_RUNS: $RATE transactions/s for $SECONDS_OF_LOAD s"
        echo "latency run $run/$LATENCY_RUNS:"
        cpu_before=$(cpu_ticks_by_role); run_started=$(date +%s%3N)
        "$BIN/cdcstar-capture-bench" --database-url "$BENCH_URL" latency \
            --rate "$RATE" --seconds "$SECONDS_OF_LOAD" --clickhouse-url "$CLICKHOUSE_URL" --clickhouse-database "$CH_DB" \
            --capture-metrics "http://127.0.0.1:$CAPTURE_PORT/metrics" \
            --sink-metrics "http://127.0.0.1:$SINK_PORT/metrics" | tee -a "$WORK/latency-runs.txt"
        # The machine is shared by the pipeline, its fixtures and the benchmark's own load and
        # probe: how busy it was says how much of a figure's tail is waiting for a core.
        cpu_share "$cpu_before" "$(cpu_ticks_by_role)" "$(( $(date +%s%3N) - run_started ))e-3" | tee -a "$WORK/latency-runs.txt"
        read -r capture_mib sink_mib <<<"$(peak_mib $CAPTURE) $(peak_mib $SINK)"
        capture_peak=$(( capture_mib > capture_peak ? capture_mib : capture_peak ))
        sink_peak=$(( sink_mib > sink_peak ? sink_mib : sink_peak ))
        stop_stream
    done
    # The goal of issue 14: p50 < 100 ms and p99 < 250 ms in every run.
    awk '/^commit -> visible/ {
             for (i = 1; i <= NF; i++) { if ($i == "p50") p50 = $(i + 1) + 0; if ($i == "p99") p99 = $(i + 1) + 0 }
             runs++; line = line sprintf(" p50 %d / p99 %d ms;", p50, p99); if (p50 < 100 && p99 < 250) met++ }
         END { printf "latency over %d runs:%s p50 < 100 ms and p99 < 250 ms in %d of %d\n", runs, line, met, runs }' \
        "$WORK/latency-runs.txt"
    printf 'peak RSS in the latency runs (the highest of the runs): capture %s MiB, sink %s MiB\n' "$capture_peak" "$sink_peak"
fi
if [[ $SKIP != *,max-rate,* ]]; then
    start_stream
    log "max sustained capture rate: steps $STEPS, $STEP_SECONDS s each"
    "$BIN/cdcstar-capture-bench" --database-url "$BENCH_URL" max-rate \
        --steps "$STEPS" --step-seconds "$STEP_SECONDS" \
        --capture-metrics "http://127.0.0.1:$CAPTURE_PORT/metrics"
    echo "max-rate: beside it, the $CEILINGS"
    printf 'peak RSS in the max-rate steps (the sink behind, on a backlog): capture %s, sink %s\n' \
        "$(peak_rss $CAPTURE)" "$(peak_rss $SINK)"
    stop_stream
fi
if [ "$STREAMS" -gt 0 ]; then
    # CPU per change over both phases, for sizing (README): idle time between them costs little
    # (heartbeats), so this is close to the cost of the changes themselves.
    awk -v changes="$CHANGES" -v flushed="$FLUSHED" -v c_own=$CAPTURE_OWN -v c_rdk=$CAPTURE_RDK \
        -v s_own=$SINK_OWN -v s_rdk=$SINK_RDK \
        'BEGIN {c = (c_own + c_rdk) / 1000 / changes; s = (s_own + s_rdk) / 1000 / flushed;
                printf "streaming CPU per row change (%d captured, %d applied): capture %.1f us (our threads %.1f, librdkafka %.1f) = %.0f changes per CPU-second; sink %.1f us (our threads %.1f, librdkafka %.1f) = %.0f events per CPU-second (its ClickHouse statements are the server'"'"'s CPU, not counted here)\n",
                       changes, flushed, c, c_own / 1000 / changes, c_rdk / 1000 / changes, 1e6 / c,
                       s, s_own / 1000 / flushed, s_rdk / 1000 / flushed, 1e6 / s}'
fi

if [[ $SKIP != *,snapshot,* ]]; then
    log "snapshot: seeding $SNAPSHOT_ROWS rows"
    "$BIN/cdcstar-capture-bench" --database-url "$BENCH_URL" seed --rows "$SNAPSHOT_ROWS"
    PIPE=$(pipeline bench-snapshot bench_snapshot true)
    launched=$(date +%s%3N)
    DATABASE_URL=$BENCH_URL METRICS_HOST=127.0.0.1 METRICS_PORT=$CAPTURE_PORT \
        "$BIN/cdcstar-capture" --pipeline "$PIPE" --create-slot >"$WORK/capture-snapshot.log" 2>&1 &
    CAPTURE=$!; PIDS+=($CAPTURE)
    wait_http "http://127.0.0.1:$CAPTURE_PORT/health" capture-snapshot $CAPTURE
    # NB: the rate and CPU are taken over the window in which the script saw the snapshot running
    # (rows counted in that window only): on a fast broker the rows done before the first sample would
    # otherwise count without their time.
    started=""
    rows_started=0
    while true; do
        kill -0 $CAPTURE 2>/dev/null || die "capture exited during the snapshot; see $WORK/capture-snapshot.log"
        rows=$(metric 'cdcstar_capture_snapshot_rows_total{table="bench_snapshot"}' || true)
        state=$(metric 'cdcstar_capture_snapshot_state{table="bench_snapshot"}' || true)
        if [ -z "$started" ] && [ "${state:-0}" = 1 ]; then
            started=$(date +%s%3N); cpu_started=$(cpu_split $CAPTURE); rows_started=${rows:-0}
        fi
        [ "${state:-0}" = 2 ] && break
        sleep 0.05
    done
    ended=$(date +%s%3N)
    read -r rdk_end other_end <<<"$(cpu_split $CAPTURE)"
    read -r rdk_start other_start <<<"${cpu_started:-0 0}"
    rows=$(metric 'cdcstar_capture_snapshot_rows_total{table="bench_snapshot"}')
    awk -v total="$rows" -v r=$(( rows - rows_started )) -v ms=$(( ended - ${started:-$launched} )) \
        -v rdk=$(( rdk_end - rdk_start )) -v own=$(( other_end - other_start )) \
        -v ceilings="$CEILINGS" \
        'BEGIN {printf "snapshot: %d rows acknowledged by the broker; %d of them in %.2f s while sampled = %.0f rows/s (the %s)\n", total, r, ms / 1000, r / (ms / 1000), ceilings;
                printf "snapshot CPU of the capture: our threads (Postgres reads, JSON encoding, enqueueing) %.1f us per row = %.0f rows per CPU-second; librdkafka threads %.1f us per row\n",
                       own / 1000 / r, r / (own / 1e9), rdk / 1000 / r}'
    printf 'peak RSS: capture during snapshot %s\n' "$(peak_rss $CAPTURE)"
fi
