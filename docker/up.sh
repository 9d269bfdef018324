#!/usr/bin/env bash
# Bring up the fedchain multi-organization demo (docker/compose.yaml), follow the training until
# the aggregator and every organization's client have finished, then audit the run as a member
# organization (org2) with the model files. Needs Docker with Compose v2; uses the
# hyperledger/fabric-* 2.5 images and builds the fedchain and chaincode images on first use.
#
# Usage: docker/up.sh [--detach]     (--detach: start and return; follow with
#                                      `docker compose -f docker/compose.yaml logs -f`)
# Exit status: 0 when the training finished and the audit passed; otherwise non-zero, after the
# end of the log of the step or service that failed (a one-shot step, the aggregator or any
# organization's client, or the audit).
# Tear down with docker/down.sh. Settings: docker/.env (see docker/.env.example).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=../fabric-network/topology.env
source ../fabric-network/topology.env

TAIL_LINES=${FEDCHAIN_UP_LOG_TAIL:-40}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# show_tail SERVICE: the end of SERVICE's log, on stderr.
show_tail() {
    printf -- '--- the last %s lines of %s ---\n' "$TAIL_LINES" "$1" >&2
    docker compose logs --no-color --no-log-prefix --tail "$TAIL_LINES" "$1" >&2 || true
    printf -- '--- end of %s ---\n' "$1" >&2
}

# report_failed_steps: every service that has exited non-zero, with the end of its log.
report_failed_steps() {
    local service code
    while read -r service code; do
        if [[ -n $service && $code != 0 ]]; then
            printf 'error: %s exited with status %s\n' "$service" "$code" >&2
            show_tail "$service"
        fi
    done < <(docker compose ps --all --status exited --format '{{.Service}} {{.ExitCode}}')
}

# stop_logs: end the log follower started below (its pid in logs_pid). A SIGTERM to the docker
# CLI reaches the compose plugin that does the work only once the plugin has connected back to
# the CLI (docker/cli#4402): a follower stopped just after it started lived on until every
# followed container had stopped, and up.sh, which is to fail at once, waited that long (9 min
# on a loaded machine). So the plugin is signalled too, the CLI again (it ends its plugin on the
# third), and whatever is left after 3 s gets SIGKILL.
stop_logs() {
    local plugins="" _
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        kill -0 "$logs_pid" 2>/dev/null || break
        plugins="$plugins $(pgrep -P "$logs_pid" | tr '\n' ' ' || true)"
        # shellcheck disable=SC2086 # a list of pids
        [[ -z ${plugins// /} ]] || kill $plugins 2>/dev/null || true
        kill "$logs_pid" 2>/dev/null || true
        sleep 0.3
    done
    # shellcheck disable=SC2086
    kill -KILL "$logs_pid" $plugins 2>/dev/null || true
    wait "$logs_pid" 2>/dev/null || true
}

detach=false
case "${1:-}" in
"") ;;
--detach | -d) detach=true ;;
*) die "usage: docker/up.sh [--detach]" ;;
esac

command -v docker >/dev/null 2>&1 || die "docker is not installed"
docker compose version >/dev/null 2>&1 || die "Docker Compose v2 ('docker compose') is required"
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable; is it running?"
[[ -f .env ]] || echo "note: no docker/.env, using the defaults (see docker/.env.example)"

if ! docker compose up --build --detach; then
    report_failed_steps
    die "docker compose up failed; see above (remove the demo with docker/down.sh)"
fi
if $detach; then
    echo "started; follow with: docker compose -f docker/compose.yaml logs -f aggregator"
    exit 0
fi

read -r -a orgs <<<"$ORGS"
followed=(aggregator "${orgs[@]}")
containers=() # in the order of followed (no associative arrays: bash 3 on macOS)
for service in "${followed[@]}"; do
    id=$(docker compose ps --all --quiet "$service")
    [[ -n $id ]] || die "the $service container was not created"
    containers+=("$id")
done

echo "following the training (Ctrl-C stops following; the demo keeps running)"
docker compose logs --follow "${followed[@]}" &
logs_pid=$!
trap stop_logs EXIT

# Until every followed container has exited; the first non-zero exit fails the run at once (an
# organization's client that dies does not stop the aggregator, which would wait for it).
running=("${!followed[@]}")
while ((${#running[@]})); do
    still=()
    for i in "${running[@]}"; do
        read -r state code < <(docker inspect --format '{{.State.Status}} {{.State.ExitCode}}' \
            "${containers[$i]}")
        if [[ $state != exited && $state != dead ]]; then
            still+=("$i")
        elif [[ $code != 0 ]]; then
            stop_logs
            printf '\nerror: %s exited with status %s\n' "${followed[$i]}" "$code" >&2
            show_tail "${followed[$i]}"
            echo "the demo keeps what still runs; remove it with docker/down.sh" >&2
            exit "$code"
        fi
    done
    running=(${still[@]+"${still[@]}"})
    ((${#running[@]} == 0)) || sleep 1
done
wait "$logs_pid" 2>/dev/null || true # it ends once every followed container has stopped

echo "training finished; auditing the channel and the model files as org2"
if ! docker compose run --rm --no-deps audit; then
    echo "error: the audit failed (above)" >&2
    exit 1
fi
echo "done; remove the demo with docker/down.sh (the models volume stays unless --models)"
