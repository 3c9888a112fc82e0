#!/usr/bin/env bash
# The time of each step of a make recipe, as a table at the end, also when a step fails.
#
#   scripts/time-steps.sh run COMMAND...   runs COMMAND (a make invocation) and prints, at its end, the
#                                          steps recorded meanwhile with their times; exits as COMMAND did
#   scripts/time-steps.sh step FLAGS...    make's shell for the timed recipes (see `test-steps` in the
#                                          Makefile: .SHELLFLAGS := step -euo pipefail -c): runs the recipe
#                                          line with bash FLAGS and records its time and exit status
#
# Steps are recorded in the file $TIME_STEPS_FILE, which `run` creates; `step` without it only runs.
set -uo pipefail

duration() { # duration SECONDS: 45s, 3m07s
    local s=$1
    if [ "$s" -ge 60 ]; then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi
}

case "${1:-}" in
    step)
        shift
        start=$SECONDS
        bash "$@"
        status=$?
        if [ -n "${TIME_STEPS_FILE:-}" ]; then
            # The recipe line is the last argument, on one line for the table (continuations joined).
            line=$(printf '%s' "${!#}" | tr '\n\t' '  ' | sed -e 's/\\ \{1,\}/ /g' -e 's/  */ /g')
            printf '%d\t%d\t%s\n' $((SECONDS - start)) "$status" "$line" >>"$TIME_STEPS_FILE"
        fi
        exit $status
        ;;
    run)
        shift
        TIME_STEPS_FILE=$(mktemp)
        export TIME_STEPS_FILE
        start=$SECONDS
        "$@"
        status=$?
        total=$((SECONDS - start))
        times=() lines=() results=() width=0
        while IFS=$'\t' read -r seconds code line; do
            # Shorter: without the `eval "$(scripts/services.sh env)" &&` of the steps that need it.
            line=${line#eval \"\$(scripts/services.sh env)\" && }
            [ ${#line} -gt 90 ] && line="${line:0:87}..."
            [ ${#line} -gt "$width" ] && width=${#line}
            times+=("$(duration "$seconds")") lines+=("$line")
            if [ "$code" = 0 ]; then results+=(ok); else results+=("FAILED (exit $code)"); fi
        done <"$TIME_STEPS_FILE"
        echo
        echo "time of each step:"
        for i in "${!lines[@]}"; do
            printf '  %7s  %-*s  %s\n' "${times[$i]}" "$width" "${lines[$i]}" "${results[$i]}"
        done
        printf '  %7s  %-*s  %s\n' "$(duration "$total")" "$width" "in all" \
            "$([ $status -eq 0 ] && echo ok || echo "FAILED (exit $status)")"
        rm -f "$TIME_STEPS_FILE"
        exit $status
        ;;
    *)
        echo "usage: $0 run COMMAND... | step BASH-FLAGS... -c LINE" >&2
        exit 2
        ;;
esac
