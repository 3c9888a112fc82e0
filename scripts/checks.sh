# shellcheck shell=bash
# The counted checks of the test scripts: each check prints `ok: NAME` or `FAILED: NAME` and is counted
# in $passed or $failed, and the script ends with the counts. Sourced by the scripts that check things.
#
#   . scripts/checks.sh
#   check_passed NAME
#   check_failed NAME [DETAIL]   # DETAIL (a command's output) indented below the FAILED line
#   checks_done WHAT             # "WHAT: 3 passed, 1 failed"; its status is 0 only when none failed

passed=${passed:-0}
failed=${failed:-0}

check_passed() { # check_passed NAME
    echo "ok: $1"
    passed=$((passed + 1))
}

check_failed() { # check_failed NAME [DETAIL]
    echo "FAILED: $1"
    [ $# -lt 2 ] || sed 's/^/    /' <<<"${2%$'\n'}"
    failed=$((failed + 1))
}

checks_done() { # checks_done WHAT
    echo "$1: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
