#!/usr/bin/env bash
# Checks of scripts/services.sh's refusals: a taken port and a missing dependency each give a message
# that names them and a non-zero exit. Runs in a scratch state directory; touches no running service.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRATCH=$(mktemp -d)
passed=0
failed=0
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
        echo "ok: $name"
        passed=$((passed + 1))
    else
        echo "FAILED: $name (exit $status, expected a message with: $expected)"
        sed 's/^/    /' <<<"$output"
        failed=$((failed + 1))
    fi
}

# A port someone else listens on.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -c "import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', $port)); s.listen(); time.sleep(120)" &
holder=$!
for _ in $(seq 50); do ss -Hltn "sport = :$port" | grep -q . && break; sleep 0.1; done

expect_refusal "taken postgres port is named" "port $port for postgres is taken" \
    env -u DATABASE_URL CDCSTAR_STATE_DIR="$SCRATCH/state" CDCSTAR_PG_PORT="$port" "$REPO/scripts/services.sh" up postgres

# A machine without PostgreSQL, where installing is not allowed.
mkdir -p "$SCRATCH/bin"
for tool in bash env python3 ss cmake curl jq id mkdir cat tail grep cut head sed sleep seq; do
    path=$(command -v "$tool") && ln -sf "$path" "$SCRATCH/bin/$tool"
done
expect_refusal "missing postgres is named" "missing system packages: postgresql-15" \
    env -u DATABASE_URL PATH="$SCRATCH/bin" CDCSTAR_INSTALL=0 CDCSTAR_STATE_DIR="$SCRATCH/state" "$REPO/scripts/services.sh" up postgres

expect_refusal "unknown service is named" "unknown service mysql" "$REPO/scripts/services.sh" up mysql

echo "services script checks: $passed passed, $failed failed"
[ $failed -eq 0 ]
