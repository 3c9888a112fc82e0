#!/usr/bin/env bash
# Checks of the Makefile's own help: `make help` names every target the Makefile defines (a recipe
# without a `## description` would be missing from it), its text has no unexpanded `$(VAR)`, and
# `make services-status` treats a service that is down as information (exit 0), not as an error.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 1
MAKE=${MAKE:-make}
# shellcheck source=scripts/checks.sh
. "$REPO/scripts/checks.sh"

check() { # check NAME PROBLEM: PROBLEM empty means passed
    if [ -z "$2" ]; then
        check_passed "$1"
    else
        check_failed "$1" "$2"
    fi
}

help=$("$MAKE" -s --no-print-directory help 2>&1) || check "make help runs" "$help"

# Every target: `name:` or `name other:` at the start of a line, not a variable assignment (`:=`, `::=`),
# not a special target (.PHONY) nor a pattern rule.
targets=$(grep -hE '^[A-Za-z0-9][A-Za-z0-9_./ -]*:([^=]|$)' Makefile \
    | grep -vE '^[^:]*::?=' | cut -d: -f1 | tr ' ' '\n' | grep -v '%' | sed '/^$/d' | sort -u)
missing=
for target in $targets; do
    grep -qE "^  make $target( |$)" <<<"$help" || missing+="$target is not in make help"$'\n'
done
check "make help names every target of the Makefile ($(wc -w <<<"$targets") targets)" "$missing"

# shellcheck disable=SC2016 # a literal $(
check "make help has no unexpanded \$(...)" "$(grep -F '$(' <<<"$help")"

# A service that does not answer: a port nothing listens on (the services' URLs are read from the
# environment, so this touches none of the running ones).
port=$("$REPO/scripts/free-port.py")
output=$(DATABASE_URL="postgresql://postgres:postgres@127.0.0.1:$port/none" CDCSTAR_KAFKA_PORT=$port \
    KAFKA_BROKERS="127.0.0.1:$port" CLICKHOUSE_URL="http://127.0.0.1:$port" CDCSTAR_PG_PORT=$port \
    "$MAKE" -s --no-print-directory services-status 2>&1)
status=$?
problem=
[ $status -eq 0 ] || problem="exit $status"$'\n'
grep -q '^postgres: down' <<<"$output" || problem+="no 'postgres: down' line"$'\n'
check "make services-status reports services that are down and exits 0" "${problem:+$problem$output}"

checks_done "make checks"
