#!/usr/bin/env bash
# Local services for development and tests: PostgreSQL 15 with logical replication, a Kafka-protocol
# broker (tansu) and ClickHouse (the real engine from chdb behind scripts/clickhouse_http.py).
# CDCSTAR_BROKER=mock runs librdkafka's mock cluster (cdcstar-mock-broker) as the broker instead of
# tansu, on the same port: in memory, much faster, no CreateTopics (topics are auto-created), lost when it
# stops. For benchmarks; the tests use tansu (the default), which keeps its data across a restart.
# CDCSTAR_BROKER=tansu-or-mock (what `make demo` asks for): tansu once it is built; until then the mock
# broker stands in while tansu builds in the background at the lowest CPU priority (started afresh by
# each `up`), and the first `up` after the build (or any `up` that needs tansu, which waits for it)
# replaces the stand-in with tansu.
# tansu is built once per machine into ~/.cargo/bin (CDCSTAR_TANSU_ROOT/bin), unless one is on PATH.
#
#   scripts/services.sh up [SERVICE...]  install what is missing, start what is not running, wait until
#                                        ready (all of postgres, kafka, clickhouse unless named)
#   scripts/services.sh down [SERVICE...]  stop what `up` started (nothing else; all three unless named)
#   scripts/services.sh status   what runs where: exit 0 when all answer, 3 when one does not
#   scripts/services.sh env      the variables the tests and binaries read: eval "$(scripts/services.sh env)"
#
# Everything lives in $CDCSTAR_STATE_DIR (default: .services/ in the repository), on loopback ports
# that can be changed with CDCSTAR_PG_PORT, CDCSTAR_KAFKA_PORT and CDCSTAR_CLICKHOUSE_PORT.
# A service whose URL the caller already exported (DATABASE_URL, KAFKA_BROKERS, CLICKHOUSE_URL) is
# not started: the tests then run against that server instead. CDCSTAR_INSTALL=0 reports missing
# packages instead of installing them.
#
# Never silent: a step that takes long (apt-get, the broker's build, pip) says what it does and where its
# log is, and every 30 s that it is still running (scripts/progress.sh). Logs under $CDCSTAR_STATE_DIR
# carry no colour codes: the tools writing them are told not to colour (NO_COLOR, CARGO_TERM_COLOR).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${CDCSTAR_STATE_DIR:-$REPO/.services}
PG_PORT=${CDCSTAR_PG_PORT:-55432}
KAFKA_PORT=${CDCSTAR_KAFKA_PORT:-19092}
CLICKHOUSE_PORT=${CDCSTAR_CLICKHOUSE_PORT:-18123}
TANSU_VERSION=0.6.0
BROKER=${CDCSTAR_BROKER:-tansu}
TANSU_ROOT=${CDCSTAR_TANSU_ROOT:-${CARGO_HOME:-$HOME/.cargo}}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
# The mock broker is built in release for benchmarks; CDCSTAR_MOCK_BROKER_PROFILE=dev builds it with the
# workspace's debug build instead (what scripts/test-services.sh and a stand-in use: nothing extra to
# compile).
MOCK_BROKER_PROFILE=release
[ "$BROKER" = tansu-or-mock ] && MOCK_BROKER_PROFILE=dev
MOCK_BROKER_PROFILE=${CDCSTAR_MOCK_BROKER_PROFILE:-$MOCK_BROKER_PROFILE}
case $MOCK_BROKER_PROFILE in
    release) MOCK_BROKER_BIN=$TARGET_DIR/release/cdcstar-mock-broker; MOCK_BROKER_FLAGS=(--release) ;;
    dev) MOCK_BROKER_BIN=$TARGET_DIR/debug/cdcstar-mock-broker; MOCK_BROKER_FLAGS=() ;;
    *) printf 'services: error: CDCSTAR_MOCK_BROKER_PROFILE=%s: expected release or dev\n' "$MOCK_BROKER_PROFILE" >&2; exit 1 ;;
esac
PG_DB=cdcstar
VENV=$STATE/venv

log() { printf 'services: %s\n' "$*" >&2; }
die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }

PROGRESS_NAME=services
# shellcheck source=scripts/progress.sh
. "$REPO/scripts/progress.sh"

# Colour only on a terminal: what writes into $STATE is told so (tracing-subscriber, pip and others read
# NO_COLOR; cargo reads CARGO_TERM_COLOR).
export NO_COLOR=1 CARGO_TERM_COLOR=never

# --- what the caller brings -------------------------------------------------------------------

pid_alive() { [ -f "$1" ] && kill -0 "$(head -1 "$1")" 2>/dev/null; }

LOCAL_DATABASE_URL=postgresql://postgres:postgres@127.0.0.1:$PG_PORT/$PG_DB
local_kafka_brokers() { # the fixed port; with the mock broker also its brokers' own addresses, which
    # its metadata names: a client that reaches this host only through forwarded ports (the demo's
    # pods, in network namespaces of their own: scripts/kubelet.py) must be able to reach those too.
    local brokers=127.0.0.1:$KAFKA_PORT
    if [ -f "$STATE/mock-broker.addresses" ] && pid_alive "$STATE/mock-broker.pid"; then
        brokers+=,$(cat "$STATE/mock-broker.addresses")
    fi
    echo "$brokers"
}
LOCAL_KAFKA_BROKERS=$(local_kafka_brokers)
LOCAL_CLICKHOUSE_URL=http://127.0.0.1:$CLICKHOUSE_PORT

external() { # external VAR: the caller exported VAR with another value than ours: use theirs, start nothing
    local local_var=LOCAL_$1
    [ -n "${!1:-}" ] && [ "${!1}" != "${!local_var}" ]
}

database_url() { echo "${DATABASE_URL:-$LOCAL_DATABASE_URL}"; }
kafka_brokers() { if external KAFKA_BROKERS; then echo "$KAFKA_BROKERS"; else local_kafka_brokers; fi; }
clickhouse_url() { echo "${CLICKHOUSE_URL:-$LOCAL_CLICKHOUSE_URL}"; }

# --- installation -----------------------------------------------------------------------------

pg_bindir() {
    command -v pg_config >/dev/null 2>&1 || return 1
    local dir
    dir=$(pg_config --bindir)
    [ -x "$dir/postgres" ] || return 1
    echo "$dir"
}

tansu_bin() { # the tansu binary: CDCSTAR_TANSU_ROOT's when set, else one on PATH, else ~/.cargo/bin's
    if [ -z "${CDCSTAR_TANSU_ROOT:-}" ] && command -v tansu >/dev/null 2>&1; then command -v tansu; return; fi
    if [ -x "$TANSU_ROOT/bin/tansu" ]; then echo "$TANSU_ROOT/bin/tansu"; fi
}

apt_install() {
    if [ "$(id -u)" != 0 ] || [ "${CDCSTAR_INSTALL:-1}" = 0 ]; then
        die "missing system packages: $* (install them: apt-get install $*)"
    fi
    if ! run_with_progress "installing system packages: $*" "$STATE/apt.log" \
        env DEBIAN_FRONTEND=noninteractive sh -c 'apt-get update -qq && apt-get install -y -qq "$@"' apt-get "$@"; then
        tail -20 "$STATE/apt.log" >&2
        die "could not install $* (see $STATE/apt.log)"
    fi
}

wanted() { [[ " $SERVICES " == *" $1 "* ]]; }

# promtool (scripts/check-monitoring.py) from Debian's prometheus package, extracted into $STATE/bin
# rather than installed: installing the package would also start a Prometheus server.
install_promtool() {
    command -v promtool >/dev/null 2>&1 && return 0
    [ -x "$STATE/bin/promtool" ] && return 0
    local download=$STATE/prometheus-deb
    rm -rf "$download" && mkdir -p "$download" "$STATE/bin"
    log "extracting promtool from Debian's prometheus package into $STATE/bin"
    (cd "$download" && { apt-get download prometheus || { apt-get update -qq && apt-get download prometheus; }; }) \
        >"$STATE/promtool.log" 2>&1 || { tail -5 "$STATE/promtool.log" >&2; die "could not download Debian's prometheus package"; }
    dpkg-deb -x "$download"/prometheus_*.deb "$download/root" || die "could not unpack the prometheus package"
    cp "$download/root/usr/bin/promtool" "$STATE/bin/promtool"
    rm -rf "$download"
}

install_missing() {
    mkdir -p "$STATE"
    local packages=()
    pg_bindir >/dev/null || packages+=(postgresql-15)
    command -v cmake >/dev/null 2>&1 || packages+=(cmake)
    [ -e /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -e /usr/include/curl/curl.h ] || packages+=(libcurl4-openssl-dev)
    python3 -c 'import ensurepip' >/dev/null 2>&1 || packages+=(python3-venv)
    command -v curl >/dev/null 2>&1 || packages+=(curl)
    command -v jq >/dev/null 2>&1 || packages+=(jq)
    command -v ss >/dev/null 2>&1 || packages+=(iproute2)
    if [ ${#packages[@]} -gt 0 ]; then apt_install "${packages[@]}"; fi
    pg_bindir >/dev/null || die "postgresql-15 is installed but pg_config --bindir has no postgres binary"

    if wanted kafka && ! external KAFKA_BROKERS && [ "$(broker_to_start)" = mock-broker ]; then
        command -v cargo >/dev/null 2>&1 || die "cargo is missing: it is needed to build cdcstar-mock-broker"
        [ "$BROKER" = tansu-or-mock ] && tansu_build_in_background
        # NB: always asked, so the binary follows the checkout (a no-op when it is up to date).
        run_with_progress "building cdcstar-mock-broker" "$STATE/mock-broker-build.log" \
            cargo build "${MOCK_BROKER_FLAGS[@]}" --manifest-path "$REPO/Cargo.toml" --workspace --bin cdcstar-mock-broker \
            || { tail -30 "$STATE/mock-broker-build.log" >&2; die "could not build cdcstar-mock-broker"; }
    fi
    if wanted kafka && ! external KAFKA_BROKERS && [ "$(broker_to_start)" = tansu ]; then tansu_built; fi

    install_promtool

    local requirements=$REPO/scripts/requirements-services.txt
    local stamp=$VENV/.requirements
    wanted clickhouse || return 0
    if [ ! -x "$VENV/bin/python" ] || ! cmp -s "$requirements" "$stamp"; then
        python3 -m venv "$VENV" || die "python3 -m venv failed"
        run_with_progress "installing the Python tools (chdb, helm and kubernetes validators) into $VENV" \
            "$STATE/pip.log" \
            "$VENV/bin/pip" install --no-color --progress-bar off --disable-pip-version-check -r "$requirements" \
            || { tail -20 "$STATE/pip.log" >&2; die "pip install -r $requirements failed"; }
        cp "$requirements" "$stamp"
    fi
}

# --- the tansu build: in the foreground, or in the background while the mock broker stands in --

TANSU_BUILD_LOG=$STATE/tansu-install.log
TANSU_BUILD_PID=$STATE/tansu-build.pid
TANSU_BUILD_STATUS=$STATE/tansu-build.status
TANSU_BUILD_STEP="building the tansu broker $TANSU_VERSION (once per machine, about 7 minutes on 2 idle cores)"

tansu_building() { pid_alive "$TANSU_BUILD_PID"; }
tansu_build_pid() { head -1 "$TANSU_BUILD_PID"; }
tansu_build_started() { stat -c %Y "$TANSU_BUILD_PID"; } # seconds since the epoch

tansu_build_start() { # tansu_build_start NICENESS: scripts/install-tansu.sh, detached from this run
    command -v cargo >/dev/null 2>&1 || die "cargo is missing: it is needed to build the tansu broker"
    mkdir -p "$STATE"
    rm -f "$TANSU_BUILD_STATUS"
    # NB: started from a script, setsid does not fork: $! is the build's process and process group.
    # A session of its own is also a scheduling group of its own where the kernel groups sessions
    # (autogroup), and niceness then only ranks processes inside the group: the group gets the same
    # niceness, set from inside it once setsid has made it.
    setsid nice -n "$1" bash -c 'echo "$3" >/proc/self/autogroup 2>/dev/null
        "${@:4}" >"$1" 2>&1 </dev/null; echo $? >"$2"' tansu-build "$TANSU_BUILD_LOG" "$TANSU_BUILD_STATUS" "$1" \
        "$REPO/scripts/install-tansu.sh" "$TANSU_VERSION" "$TANSU_ROOT" "$STATE/tansu-build" \
        </dev/null >/dev/null 2>&1 &
    echo $! >"$TANSU_BUILD_PID"
}

tansu_last_build_failed() { [ -f "$TANSU_BUILD_STATUS" ] && [ "$(cat "$TANSU_BUILD_STATUS")" != 0 ]; }

tansu_build_in_background() {
    [ -n "$(tansu_bin)" ] && return 0
    if tansu_building; then
        log "tansu is still building in the background (log: $TANSU_BUILD_LOG)"
        return 0
    fi
    if tansu_last_build_failed; then
        log "the last tansu build failed (exit $(cat "$TANSU_BUILD_STATUS")); its log ends with:"
        tail -5 "$TANSU_BUILD_LOG" | sed 's/^/    /' >&2
    fi
    tansu_build_start 19
    log "$TANSU_BUILD_STEP: in the background at the lowest CPU priority (log: $TANSU_BUILD_LOG)"
}

tansu_built() { # tansu installed: built now, or the background build waited for at normal priority
    [ -n "$(tansu_bin)" ] && return 0
    local pid started status
    if tansu_building; then
        log "waiting for the tansu build started in the background, now at normal priority"
        pid=$(tansu_build_pid)
        renice -n 0 -g "$pid" >/dev/null 2>&1 || true
        echo 0 >"/proc/$pid/autogroup" 2>/dev/null || true
    else
        tansu_build_start 0
        pid=$(tansu_build_pid)
    fi
    started=$(tansu_build_started)
    printf '%s: %s (log: %s)\n' "$PROGRESS_NAME" "$TANSU_BUILD_STEP" "$TANSU_BUILD_LOG" >&2
    # shellcheck disable=SC2064 # the pid is meant to be expanded now
    trap "kill -TERM -- -$pid 2>/dev/null; exit 130" INT TERM
    progress_while_running "$TANSU_BUILD_STEP" "$TANSU_BUILD_LOG" "$pid" "$started"
    trap - INT TERM
    status=$(cat "$TANSU_BUILD_STATUS" 2>/dev/null || echo 1)
    progress_outcome "$TANSU_BUILD_STEP" "$TANSU_BUILD_LOG" "$status" "$started"
    [ "$status" = 0 ] && [ -n "$(tansu_bin)" ] || { tail -30 "$TANSU_BUILD_LOG" >&2; die "could not build tansu"; }
}

# --- ports and processes ----------------------------------------------------------------------

port_taken() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }


check_port_free() { # check_port_free PORT NAME
    if port_taken "$1"; then
        local owner
        owner=$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(("[^"]*"' | head -1 | cut -d'"' -f2)
        die "port $1 for $2 is taken${owner:+ by $owner}; stop it or choose another port with the CDCSTAR_*_PORT variables"
    fi
}

wait_until() { # wait_until SECONDS DESCRIPTION LOG COMMAND...
    local start=$SECONDS deadline=$((SECONDS + $1)) what=$2 logfile=$3
    local next=$((SECONDS + PROGRESS_SECONDS))
    shift 3
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || return 1
        if [ $SECONDS -ge $next ]; then
            log "waiting for $what: $(progress_duration $((SECONDS - start))) elapsed (log: $logfile)"
            next=$((next + PROGRESS_SECONDS))
        fi
        sleep 0.2
    done
    log "$what is ready"
}

mark_started() { touch "$STATE/$1.started"; }

# --- PostgreSQL -------------------------------------------------------------------------------

as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_ready() { "$(pg_bindir)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }

postgres_up() {
    local bindir data=$STATE/postgres sock=$STATE/postgres-socket
    bindir=$(pg_bindir)
    if [ -f "$data/postmaster.pid" ] && as_postgres "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        log "postgres already running on 127.0.0.1:$PG_PORT"
        return
    fi
    check_port_free "$PG_PORT" postgres
    mkdir -p "$data" "$sock"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$data" "$sock" && chmod 700 "$data"
    if [ ! -f "$data/PG_VERSION" ]; then
        as_postgres "$bindir/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 >"$STATE/initdb.log" 2>&1 \
            || { cat "$STATE/initdb.log" >&2; die "initdb failed"; }
    fi
    # NB: pg_ctl hands -o to a shell: it must stay on one line.
    local options="-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$sock"
    options+=" -c wal_level=logical -c max_replication_slots=64 -c max_wal_senders=64 -c max_connections=400"
    options+=" -c fsync=off -c full_page_writes=off -c shared_buffers=256MB"
    as_postgres "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start -o "$options" >/dev/null \
        || { tail -20 "$data/server.log" >&2; die "postgres did not start"; }
    mark_started postgres
    wait_until 30 "postgres on 127.0.0.1:$PG_PORT" "$data/server.log" pg_ready || die "postgres does not answer on $PG_PORT"
    psql -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<SQL
ALTER USER postgres PASSWORD 'postgres';
SELECT 'CREATE DATABASE $PG_DB' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB')\gexec
SQL
}

postgres_down() {
    local data=$STATE/postgres
    [ -f "$STATE/postgres.started" ] || return 0
    as_postgres "$(pg_bindir)/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
    rm -f "$STATE/postgres.started"
    log "postgres stopped"
}

# --- tansu (Kafka protocol) -------------------------------------------------------------------

kafka_ready() { (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null; }

running_broker() { # the broker `up` started and that still runs: tansu, mock-broker or nothing
    local name
    for name in tansu mock-broker; do
        if pid_alive "$STATE/$name.pid"; then echo "$name"; return; fi
    done
}

broker_to_start() { # tansu or mock-broker, as CDCSTAR_BROKER and the tansu build decide
    case $BROKER in
        tansu) echo tansu ;;
        mock) echo mock-broker ;;
        tansu-or-mock) if [ -n "$(tansu_bin)" ]; then echo tansu; else echo mock-broker; fi ;;
    esac
}

standing_in() { [ -f "$STATE/mock-broker.standin" ] && pid_alive "$STATE/mock-broker.pid"; }

kafka_up() {
    local running wanted_process
    running=$(running_broker)
    wanted_process=$(broker_to_start)
    if [ "$running" = mock-broker ] && [ "$wanted_process" = mock-broker ] && standing_in; then
        # NB: librdkafka's mock keeps a departed static member of a consumer group (the last demo's
        # sink) until its session times out, 45 s later, and a new sink waits for it; a demo loses
        # nothing with an empty broker: it creates its slot anew and snapshots.
        log "restarting the stand-in mock broker, so that this demo starts from an empty one"
        stop_pidfile mock-broker
        running=
    elif [ -n "$running" ] && [ "$running" != "$wanted_process" ]; then
        if [ "$wanted_process" = tansu ] && standing_in; then
            log "tansu is built: it replaces the mock broker that stood in while it built (what that held is gone)"
            stop_pidfile mock-broker
            running=
        else
            die "$running runs on 127.0.0.1:$KAFKA_PORT, not $wanted_process: stop it first (scripts/services.sh down kafka)"
        fi
    fi
    if [ -n "$running" ]; then
        log "$running already running on 127.0.0.1:$KAFKA_PORT"
    elif [ "$wanted_process" = mock-broker ]; then
        mock_broker_up
        if [ "$BROKER" = tansu-or-mock ]; then
            touch "$STATE/mock-broker.standin"
            log "the mock broker (in memory) stands in on 127.0.0.1:$KAFKA_PORT until tansu is built"
        fi
    else
        tansu_up
    fi
}

mock_broker_listed() { kafka_ready && grep -q '^brokers ' "$STATE/mock-broker.log"; }

mock_broker_up() {
    local pidfile=$STATE/mock-broker.pid
    check_port_free "$KAFKA_PORT" mock-broker
    rm -f "$STATE/mock-broker.addresses"
    setsid "$MOCK_BROKER_BIN" --port "$KAFKA_PORT" >"$STATE/mock-broker.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    mark_started mock-broker
    wait_until 30 "mock broker on 127.0.0.1:$KAFKA_PORT" "$STATE/mock-broker.log" mock_broker_listed \
        || { tail -20 "$STATE/mock-broker.log" >&2; die "the mock broker does not answer on $KAFKA_PORT"; }
    sed -n 's/^brokers //p' "$STATE/mock-broker.log" >"$STATE/mock-broker.addresses"
}

tansu_up() {
    local pidfile=$STATE/tansu.pid
    check_port_free "$KAFKA_PORT" tansu
    mkdir -p "$STATE/tansu"
    # NB: tansu reads the path of a sqlite:// URL as relative, so it runs inside its data directory.
    (cd "$STATE/tansu" && exec setsid "$(tansu_bin)" broker \
        --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --storage-engine "sqlite://tansu.db" \
        >"$STATE/tansu.log" 2>&1 </dev/null) &
    echo $! >"$pidfile"
    mark_started tansu
    wait_until 60 "tansu on 127.0.0.1:$KAFKA_PORT" "$STATE/tansu.log" kafka_ready || { tail -20 "$STATE/tansu.log" >&2; die "tansu does not answer on $KAFKA_PORT"; }
}

# --- ClickHouse (chdb behind the HTTP adapter) ------------------------------------------------

clickhouse_ready() { curl -fsS "http://127.0.0.1:$CLICKHOUSE_PORT/ping"; }

clickhouse_up() {
    local pidfile=$STATE/clickhouse.pid
    if pid_alive "$pidfile"; then log "clickhouse already running on 127.0.0.1:$CLICKHOUSE_PORT"; return; fi
    check_port_free "$CLICKHOUSE_PORT" clickhouse
    mkdir -p "$STATE/clickhouse"
    setsid "$VENV/bin/python" "$REPO/scripts/clickhouse_http.py" \
        --host 127.0.0.1 --port "$CLICKHOUSE_PORT" --data-dir "$STATE/clickhouse" \
        >"$STATE/clickhouse.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    mark_started clickhouse
    wait_until 120 "clickhouse on 127.0.0.1:$CLICKHOUSE_PORT" "$STATE/clickhouse.log" clickhouse_ready \
        || { tail -20 "$STATE/clickhouse.log" >&2; die "clickhouse does not answer on $CLICKHOUSE_PORT"; }
}

stop_pidfile() { # stop_pidfile NAME
    local pidfile=$STATE/$1.pid
    [ -f "$STATE/$1.started" ] || return 0
    if pid_alive "$pidfile"; then
        local pid
        pid=$(head -1 "$pidfile")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile" "$STATE/$1.started" "$STATE/$1.standin" "$STATE/$1.addresses"
    log "$1 stopped"
}

# --- commands ---------------------------------------------------------------------------------

cmd_up() {
    install_missing
    if wanted postgres; then
        if external DATABASE_URL; then log "using DATABASE_URL from the environment"; else postgres_up; fi
    fi
    if wanted kafka; then
        if external KAFKA_BROKERS; then log "using KAFKA_BROKERS from the environment"; else kafka_up; fi
    fi
    if wanted clickhouse; then
        if external CLICKHOUSE_URL; then log "using CLICKHOUSE_URL from the environment"; else clickhouse_up; fi
    fi
    cmd_env
}

cmd_down() {
    if wanted clickhouse; then stop_pidfile clickhouse; fi
    if wanted kafka; then stop_pidfile tansu; stop_pidfile mock-broker; fi
    if wanted postgres; then postgres_down; fi
}

cmd_env() {
    echo "export DATABASE_URL='$(database_url)'"
    echo "export KAFKA_BROKERS='$(kafka_brokers)'"
    echo "export CLICKHOUSE_URL='$(clickhouse_url)'"
}

cmd_status() { # exit 0: every service answers; 3 (as an init script's status): one does not
    local down=0
    report() { # report NAME URL CHECK...
        local name=$1 url=$2
        shift 2
        if "$@" >/dev/null 2>&1; then echo "$name: up ($url)"; else echo "$name: down ($url)"; down=3; fi
    }
    report postgres "$(database_url)" pg_ready
    local broker
    broker=$(running_broker)
    if standing_in; then broker+=" standing in while tansu builds"; fi
    report kafka "$(kafka_brokers)${broker:+, $broker}" kafka_ready
    if tansu_building; then
        echo "tansu build: running in the background for $(progress_duration $(($(date +%s) - $(tansu_build_started)))) (log: $TANSU_BUILD_LOG)"
    elif tansu_last_build_failed; then
        echo "tansu build: failed (log: $TANSU_BUILD_LOG)"
    fi
    report clickhouse "$(clickhouse_url)" curl -fsS "$(clickhouse_url)/ping"
    return $down
}

case $BROKER in tansu | mock | tansu-or-mock) ;; *) die "CDCSTAR_BROKER=$BROKER: expected tansu, mock or tansu-or-mock" ;; esac
command=${1:-}
[ $# -gt 0 ] && shift
SERVICES=" ${*:-postgres kafka clickhouse} "
for service in $SERVICES; do
    case $service in postgres | kafka | clickhouse) ;; *) die "unknown service $service (postgres, kafka, clickhouse)" ;; esac
done

case "$command" in
    up) cmd_up ;;
    down) cmd_down ;;
    env) cmd_env ;;
    status) cmd_status ;;
    *) echo "usage: $0 up|down|status|env [postgres|kafka|clickhouse...]" >&2; exit 2 ;;
esac
