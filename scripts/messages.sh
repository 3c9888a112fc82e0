# shellcheck shell=bash
# How the scripts speak: `log` and `die` lines on standard error that start with the script's name,
# and the check that the local services' environment is set. Sourced after setting SCRIPT:
#
#   SCRIPT=demo; . scripts/messages.sh
#   log TEXT...                    # "demo: TEXT"
#   die TEXT...                    # "demo: error: TEXT", exit 1
#   require_env [VAR...]           # dies naming the first unset VAR (default: the three services'
#                                  # variables) and how to set it

log() { printf '%s: %s\n' "$SCRIPT" "$*" >&2; }

die() { printf '%s: error: %s\n' "$SCRIPT" "$*" >&2; exit 1; }

require_env() { # require_env [VAR...]
    local var
    [ $# -gt 0 ] || set -- DATABASE_URL KAFKA_BROKERS CLICKHOUSE_URL
    for var in "$@"; do
        [ -n "${!var:-}" ] || die "$var is not set: run scripts/services.sh up && eval \"\$(scripts/services.sh env)\""
    done
}
