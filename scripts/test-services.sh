#!/usr/bin/env bash
# Checks of scripts/services.sh's refusals: a taken port, a missing dependency and an unknown broker each
# give a message that names them and a non-zero exit; the mock broker starts, is named and stops, and
# stands in for tansu while tansu builds. Runs in
# scratch state directories; touches no running service.
# Then, of the running services' state directory: no log in it carries colour codes (ESC [), and a long
# step reports its progress (scripts/progress.sh).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRATCH=$(mktemp -d)
# shellcheck source=scripts/checks.sh
. "$REPO/scripts/checks.sh"
holder=

finish() {
    [ -n "$holder" ] && kill "$holder" 2>/dev/null
    rm -rf "$SCRATCH"
}
trap finish EXIT

expect_refusal() { # expect_refusal NAME EXPECTED-MESSAGE COMMAND...
    local name=$1 expected=$2 output status
    shift 2
    output=$("$@" 2>&1)
    status=$?
    if [ $status -ne 0 ] && grep -qF -- "$expected" <<<"$output"; then
        check_passed "$name"
    else
        check_failed "$name (exit $status, expected a message with: $expected)" "$output"
    fi
}

# A port someone else listens on.
port=$("$REPO/scripts/free-port.py")
python3 -c "import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', $port)); s.listen(); time.sleep(120)" &
holder=$!
for _ in $(seq 50); do ss -Hltn "sport = :$port" | grep -q . && break; sleep 0.1; done

expect_refusal "taken postgres port is named" "port $port for postgres is taken" \
    env -u DATABASE_URL CDCSTAR_STATE_DIR="$SCRATCH/state" CDCSTAR_PG_PORT="$port" "$REPO/scripts/services.sh" up postgres

# A machine without PostgreSQL, where installing is not allowed.
mkdir -p "$SCRATCH/bin"
for tool in bash env python3 ss cmake curl jq id mkdir cat tail grep cut head sed sleep seq dirname; do
    path=$(command -v "$tool") && ln -sf "$path" "$SCRATCH/bin/$tool"
done
expect_refusal "missing postgres is named" "missing system packages: postgresql-15" \
    env -u DATABASE_URL PATH="$SCRATCH/bin" CDCSTAR_INSTALL=0 CDCSTAR_STATE_DIR="$SCRATCH/state" "$REPO/scripts/services.sh" up postgres

expect_refusal "unknown service is named" "unknown service mysql" "$REPO/scripts/services.sh" up mysql

expect_refusal "unknown broker is named" "CDCSTAR_BROKER=redpanda: expected tansu, mock or tansu-or-mock" \
    env CDCSTAR_BROKER=redpanda "$REPO/scripts/services.sh" status

# The mock broker (CDCSTAR_BROKER=mock) in a scratch state directory on a free port: up, named by
# status, answering, and gone after down.
mock_port=$("$REPO/scripts/free-port.py")
mock_env=(env -u KAFKA_BROKERS CDCSTAR_BROKER=mock CDCSTAR_MOCK_BROKER_PROFILE=dev CDCSTAR_STATE_DIR="$SCRATCH/mock"
    CDCSTAR_KAFKA_PORT="$mock_port")
output=$("${mock_env[@]}" "$REPO/scripts/services.sh" up kafka 2>&1 \
    && "${mock_env[@]}" "$REPO/scripts/services.sh" status 2>&1)
"${mock_env[@]}" "$REPO/scripts/services.sh" down kafka >/dev/null 2>&1
if grep -qE "^kafka: up \(127\.0\.0\.1:$mock_port(,127\.0\.0\.1:[0-9]+)+, mock-broker\)$" <<<"$output" && ! ss -Hltn "sport = :$mock_port" | grep -q .; then
    check_passed "CDCSTAR_BROKER=mock starts the mock broker on the Kafka port, status names it, down stops it"
else
    check_failed "CDCSTAR_BROKER=mock up/status/down on port $mock_port" "$output"
fi

# CDCSTAR_BROKER=tansu-or-mock (make demo) on a machine without tansu (an empty CDCSTAR_TANSU_ROOT): the
# mock broker stands in and tansu's build starts in the background at the lowest priority; once a tansu
# binary is there (here the machine's own, linked in place of the build), `up` replaces the stand-in;
# until then each `up` starts the stand-in afresh.
standin_port=$("$REPO/scripts/free-port.py")
standin_state=$SCRATCH/standin
standin_env=(env -u KAFKA_BROKERS CDCSTAR_STATE_DIR="$standin_state" CDCSTAR_KAFKA_PORT="$standin_port"
    CDCSTAR_TANSU_ROOT="$SCRATCH/tansu-root")
output=$("${standin_env[@]}" CDCSTAR_BROKER=tansu-or-mock "$REPO/scripts/services.sh" up kafka 2>&1 \
    && "${standin_env[@]}" "$REPO/scripts/services.sh" status 2>&1)
build_pid=$(head -1 "$standin_state/tansu-build.pid" 2>/dev/null)
build_niceness=$(ps -o ni= -p "$build_pid" 2>/dev/null | tr -d ' ')
# Where the kernel schedules sessions as groups (autogroup), the build's group must be niced too.
[ -e "/proc/$build_pid/autogroup" ] && build_niceness+=/$(awk '{print $NF}' "/proc/$build_pid/autogroup")
# A second `up` while tansu still builds starts the stand-in afresh (a new process).
first_standin=$(head -1 "$standin_state/mock-broker.pid" 2>/dev/null)
restarted=$("${standin_env[@]}" CDCSTAR_BROKER=tansu-or-mock "$REPO/scripts/services.sh" up kafka 2>&1)
second_standin=$(head -1 "$standin_state/mock-broker.pid" 2>/dev/null)
kill -TERM -- -"$(head -1 "$standin_state/tansu-build.pid" 2>/dev/null)" 2>/dev/null
machine_tansu=$(command -v tansu || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu")
mkdir -p "$SCRATCH/tansu-root/bin" && ln -sf "$machine_tansu" "$SCRATCH/tansu-root/bin/tansu"
replaced=$("${standin_env[@]}" CDCSTAR_BROKER=tansu-or-mock "$REPO/scripts/services.sh" up kafka 2>&1 \
    && "${standin_env[@]}" "$REPO/scripts/services.sh" status 2>&1)
"${standin_env[@]}" "$REPO/scripts/services.sh" down kafka >/dev/null 2>&1
if grep -qE "^kafka: up \(127\.0\.0\.1:$standin_port(,127\.0\.0\.1:[0-9]+)+, mock-broker standing in while tansu builds\)$" <<<"$output" \
    && grep -q '^tansu build: running in the background' <<<"$output" && [[ $build_niceness == 19 || $build_niceness == 19/19 ]] \
    && grep -qF 'restarting the stand-in mock broker' <<<"$restarted" && [ "$first_standin" != "$second_standin" ] \
    && grep -qF 'tansu is built: it replaces the mock broker' <<<"$replaced" \
    && grep -qxF "kafka: up (127.0.0.1:$standin_port, tansu)" <<<"$replaced"; then
    check_passed "CDCSTAR_BROKER=tansu-or-mock: the mock broker stands in (afresh at each up) while tansu builds at low priority, then tansu replaces it"
else
    check_failed "CDCSTAR_BROKER=tansu-or-mock on port $standin_port (build niceness: ${build_niceness:-none})" \
        "$output"$'\n'"$restarted"$'\n'"$replaced"
fi

# The logs of the services `up` started (and of what it installed): plain text, no colour codes.
state=${CDCSTAR_STATE_DIR:-$REPO/.services}
logs=$(find "$state" -path "$state/venv" -prune -o -type f -name '*.log' -print 2>/dev/null)
coloured=$(xargs -r grep -l $'\x1b\\[' <<<"$logs")
if [ -z "$coloured" ]; then
    check_passed "no colour codes in the $(grep -c . <<<"$logs") logs under $state"
else
    check_failed "logs under $state with colour codes (ESC [): tell what writes them not to colour"
    while read -r log; do
        echo "    $log (written $(date -r "$log" '+%F %T')): $(grep -c $'\x1b\\[' "$log") lines, e.g." \
            "$(grep -m1 $'\x1b\\[' "$log" | cat -v | cut -c 1-100)"
    done <<<"$coloured"
    echo "    (a log written before its writer was told not to colour is stale: delete it, or restart the"
    echo "    services with make services-down services)"
fi

# A long step says, every PROGRESS_SECONDS, what it does, for how long, and where its log is, and its
# exit status is the command's.
output=$(
    # shellcheck source=scripts/progress.sh
    . "$REPO/scripts/progress.sh"
    PROGRESS_NAME=services PROGRESS_SECONDS=1
    run_with_progress "sleeping" "$SCRATCH/step.log" sh -c 'echo working; sleep 2.5; exit 7' 2>&1
    echo "exit $?"
)
expected="services: sleeping: 1s elapsed (log: $SCRATCH/step.log): working"
if grep -qxF "$expected" <<<"$output" && grep -q '^services: sleeping: 2s elapsed' <<<"$output" \
    && grep -qx 'exit 7' <<<"$output"; then
    check_passed "a long step reports its progress and keeps its exit status"
else
    check_failed "a long step reports its progress and keeps its exit status (expected a line: $expected)" "$output"
fi

checks_done "services script checks"
