# shellcheck shell=bash
# Never silent: run a long step in the background and say, every PROGRESS_SECONDS (default 30), that it
# is still running, for how long, and where its log is. Sourced by scripts that install or build things.
#
#   . scripts/progress.sh
#   run_with_progress STEP LOG COMMAND...
#
# prints to standard error, prefixed with $PROGRESS_NAME (default: the calling script's name):
#   services: STEP (log: LOG)
#   services: STEP: 1m30s elapsed (log: LOG): <the log's last line>
#   services: STEP: done in 2m05s
# and returns COMMAND's exit status. COMMAND is an executable (not a shell function): it runs in a session
# of its own with its output in LOG and no input, and an interrupt of the caller stops all of it.
# progress_while_running and progress_outcome do the same for a process started earlier (by another run).

PROGRESS_SECONDS=${PROGRESS_SECONDS:-30}
PROGRESS_NAME=${PROGRESS_NAME:-$(basename "$0" .sh)}

progress_duration() { # progress_duration SECONDS: 45s, 1m30s, 1h02m05s
    local s=$1
    if [ "$s" -ge 3600 ]; then
        printf '%dh%02dm%02ds' $((s / 3600)) $((s % 3600 / 60)) $((s % 60))
    elif [ "$s" -ge 60 ]; then
        printf '%dm%02ds' $((s / 60)) $((s % 60))
    else
        printf '%ds' "$s"
    fi
}

run_with_progress() { # run_with_progress STEP LOG COMMAND...
    local step=$1 logfile=$2 start pid status=0
    shift 2
    start=$(date +%s)
    printf '%s: %s (log: %s)\n' "$PROGRESS_NAME" "$step" "$logfile" >&2
    # NB: setsid gives the command its own process group, so that an interrupt can stop the whole of it
    # (cargo's rustc children included); a background job of a script would otherwise ignore SIGINT.
    # (-w: should setsid have to fork, it still waits for the command and returns its status.)
    setsid -w "$@" >"$logfile" 2>&1 </dev/null &
    pid=$!
    # shellcheck disable=SC2064 # the pid is meant to be expanded now
    trap "kill -TERM -- -$pid 2>/dev/null; exit 130" INT TERM
    progress_while_running "$step" "$logfile" "$pid" "$start"
    wait "$pid" || status=$?
    trap - INT TERM
    progress_outcome "$step" "$logfile" "$status" "$start"
    return $status
}

progress_while_running() { # progress_while_running STEP LOG PID START: returns when PID (any process) ends
    local step=$1 logfile=$2 pid=$3 start=$4 next last
    next=$(($(date +%s) + PROGRESS_SECONDS))
    while kill -0 "$pid" 2>/dev/null; do
        sleep 0.5
        if [ "$(date +%s)" -ge $next ] && kill -0 "$pid" 2>/dev/null; then
            last=$(tail -n 1 "$logfile" 2>/dev/null | tr -d '\r' | sed 's/^[[:space:]]*//' | cut -c 1-80)
            printf '%s: %s: %s elapsed (log: %s)%s\n' "$PROGRESS_NAME" "$step" \
                "$(progress_duration $(($(date +%s) - start)))" "$logfile" "${last:+: $last}" >&2
            next=$((next + PROGRESS_SECONDS))
        fi
    done
}

progress_outcome() { # progress_outcome STEP LOG STATUS START
    local step=$1 logfile=$2 status=$3 elapsed
    elapsed=$(progress_duration $(($(date +%s) - $4)))
    if [ "$status" -eq 0 ]; then
        printf '%s: %s: done in %s\n' "$PROGRESS_NAME" "$step" "$elapsed" >&2
    else
        printf '%s: %s: failed (exit %d) after %s (log: %s)\n' "$PROGRESS_NAME" "$step" "$status" "$elapsed" "$logfile" >&2
    fi
}
