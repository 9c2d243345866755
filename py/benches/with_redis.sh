#!/usr/bin/env bash
# Runs COMMAND with a throwaway redis-server beside it, for the limits + RedisStorage rows of
# compare.py (`make py-bench` runs `with_redis.sh python compare.py ...`).
#
#   with_redis.sh COMMAND [ARGS...]
#
# Installs redis-server with apt-get if it is missing (as root, or through passwordless
# sudo), starts it on a free loopback port with no persistence (no RDB snapshots, no AOF,
# its files in a temporary directory), waits for PING (bounded), runs COMMAND with
# FASTBREAKER_BENCH_REDIS_URL=redis://127.0.0.1:PORT/0, and stops the server when COMMAND
# ends, fails or is interrupted. When redis-server cannot be installed or started, COMMAND
# still runs, with FASTBREAKER_BENCH_REDIS_SKIP saying why (compare.py prints
# "skipped: <why>" for the redis rows). FASTBREAKER_BENCH_REDIS=0 skips redis altogether;
# FASTBREAKER_BENCH_PING_TIMEOUT_S (default 10) bounds the wait for PING, for each of up to
# three ports tried.
# Exits with COMMAND's status.
set -u -o pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

PING_TIMEOUT_S=${FASTBREAKER_BENCH_PING_TIMEOUT_S:-10}
APT_TIMEOUT_S=600

log() { echo "with_redis: $*" >&2; }

# run_without REASON COMMAND [ARGS...]: runs COMMAND without a server, telling it why.
run_without() {
    local reason="$1"
    shift
    log "redis rows skipped: $reason"
    unset FASTBREAKER_BENCH_REDIS_URL
    export FASTBREAKER_BENCH_REDIS_SKIP="$reason"
    exec "$@"
}

if [ "${FASTBREAKER_BENCH_REDIS:-1}" = "0" ]; then
    run_without "disabled by FASTBREAKER_BENCH_REDIS=0" "$@"
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/fastbreaker-redis.XXXXXX")" ||
    run_without "cannot make a temporary directory" "$@"
server_pid=""

stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null
        for _ in $(seq 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
        log "redis-server (pid $server_pid) stopped"
    fi
    server_pid=""
    rm -rf "$tmp"
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The reason redis-server is not there and cannot be installed, or "" once it is there.
install_redis() {
    command -v redis-server >/dev/null 2>&1 && return 0
    local sudo=()
    if [ "$(id -u)" != "0" ]; then
        if sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            echo "redis-server is not installed, and installing it needs root or passwordless sudo"
            return 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "redis-server is not installed, and there is no apt-get to install it"
        return 1
    fi
    log "installing redis-server with apt-get (log: $tmp/apt.log)"
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive timeout "$APT_TIMEOUT_S" \
        apt-get update -q >"$tmp/apt.log" 2>&1 ||
        ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive timeout "$APT_TIMEOUT_S" \
            apt-get install -y -q --no-install-recommends redis-server >>"$tmp/apt.log" 2>&1; then
        echo "apt-get could not install redis-server: $(tail -n 1 "$tmp/apt.log")"
        return 1
    fi
    if ! command -v redis-server >/dev/null 2>&1; then
        echo "apt-get installed redis-server, but it is not on PATH"
        return 1
    fi
}

if ! why="$(install_redis)"; then
    rm -rf "$tmp"
    trap - EXIT
    run_without "$why" "$@"
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Whether the server on port $1 answers PING with PONG.
pong() {
    local reply=""
    if command -v redis-cli >/dev/null 2>&1; then
        reply="$(timeout 2 redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)"
    else
        reply="$(timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "PING\r\n" >&3 &&
            IFS= read -r line <&3 && printf "%s" "$line"' _ "$1" 2>/dev/null)"
        reply="${reply%$'\r'}"
        reply="${reply#+}"
    fi
    [ "$reply" = "PONG" ]
}

# Up to three ports: another process may take a free port before the server binds it.
port=""
why="redis-server did not start"
for attempt in 1 2 3; do
    candidate="$(free_port)" || { why="no free loopback port"; break; }
    redis-server --port "$candidate" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no --dir "$tmp" --logfile "$tmp/redis.log" >"$tmp/redis.out" 2>&1 &
    server_pid=$!
    for _ in $(seq $((PING_TIMEOUT_S * 10))); do
        if pong "$candidate"; then
            port="$candidate"
            break
        fi
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$port" ] && break
    if kill -0 "$server_pid" 2>/dev/null; then
        why="redis-server on 127.0.0.1:$candidate did not answer PING within ${PING_TIMEOUT_S} s"
    else
        why="redis-server exited at start: $(cat "$tmp/redis.out" "$tmp/redis.log" 2>/dev/null |
            tail -n 1)"
    fi
    log "attempt $attempt: $why"
    stop_server
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/fastbreaker-redis.XXXXXX")" || break
done

if [ -z "$port" ]; then
    stop_server
    trap - EXIT
    run_without "$why" "$@"
fi

log "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') (pid $server_pid) on 127.0.0.1:$port, no persistence"
export FASTBREAKER_BENCH_REDIS_URL="redis://127.0.0.1:$port/0"
unset FASTBREAKER_BENCH_REDIS_SKIP
"$@"
status=$?
exit "$status"
