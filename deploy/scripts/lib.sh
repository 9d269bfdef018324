# shellcheck shell=bash
# Shared by deploy/run.sh and the admin scripts (sourced, never run): logging and bounded waits.

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# wait_for SECONDS WHAT COMMAND...: run COMMAND until it succeeds, polling every half second,
# at most SECONDS; on timeout, print COMMAND's last output and fail naming WHAT.
wait_for() {
    local seconds=$1 what=$2 output deadline
    shift 2
    deadline=$((SECONDS + seconds))
    until output=$("$@" 2>&1); do
        if ((SECONDS >= deadline)); then
            printf '%s\n' "$output" | tail -n 20 >&2
            printf 'error: timed out after %ss waiting for %s\n' "$seconds" "$what" >&2
            return 1
        fi
        sleep 0.5 # the polling interval of a bounded wait on a condition
    done
    printf '%s\n' "$output"
}
