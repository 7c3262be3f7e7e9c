#!/usr/bin/env bash
# HTTP hello-world benchmark: eddy's `hello` example vs a hyper 1.x server (tokio
# current-thread) and the floor (`floor_hello`: a no-work epoll server that only recv()s,
# counts request heads and send()s one fixed response per head), one thread each, under wrk.
#
# The server runs pinned to CPU 0, wrk (one thread) to CPU 1, one server at a time,
# alternating eddy/hyper/floor within each scenario, ROUNDS times (the table shows medians):
#   keepalive   50 persistent connections
#   pipelined   50 connections, 16 requests per write (benches/pipeline.lua)
#   close       50 connections, `Connection: close` (one request per connection)
# On 2 cores wrk saturates its core before a fast server does, so the table reports both
# requests/s and the server's own CPU time per request (utime+stime from /proc/PID/stat over
# the run, divided by requests served) — the fair comparison — split into user and system
# time, and each server's figures as a ratio of the floor's in the same round set: the floor
# is what the kernel work alone costs, so `cpu/floor` is what a server adds on top of it.
# Then the memory of 10,000 idle keep-alive connections (after one request each): server
# RSS growth divided by the connection count.
# Environment: SECS (per run, default 10), ROUNDS (1), CONNS (50), IDLE (10000; 0 skips it),
# SCENARIOS ("keepalive pipelined close"), SERVERS ("eddy hyper floor"; `parse` adds the
# floor with httparse run on every head: the least a server built on httparse pays),
# EDDY_DRIVER (mio|poll), CARGO_TARGET_DIR. Installs wrk with apt-get if missing.
# Loopback only; every run ends by itself.
set -euo pipefail
. "$(dirname "$0")/common.sh"

SECS=${SECS:-10}
ROUNDS=${ROUNDS:-1}
CONNS=${CONNS:-50}
IDLE=${IDLE:-10000}

if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk..." >&2
    (apt-get install -y wrk || (apt-get update && apt-get install -y wrk)) >/dev/null
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "building (release)..." >&2
(cd "$root" && CARGO_TARGET_DIR="$target" cargo build --release --quiet --example hello)
(cd "$root/benches/peers" && CARGO_TARGET_DIR="$target/peers" cargo build --release --quiet)
eddy_bin="$target/release/examples/hello"
hyper_bin="$target/peers/release/hyper_hello"
floor_bin="$target/peers/release/floor_hello"
idle_bin="$target/peers/release/idle_conns"
servers=${SERVERS:-eddy hyper floor}

start_server() { # name port [scenario] -> pid
    case $1 in
        eddy) taskset -c $server_cpu "$eddy_bin" --port "$2" --threads 1 >/dev/null 2>&1 & ;;
        hyper) taskset -c $server_cpu "$hyper_bin" "$2" >/dev/null 2>&1 & ;;
        # The floor does not read headers: it is told to answer `Connection: close`.
        floor) taskset -c $server_cpu "$floor_bin" "$2" \
            $([ "${3:-}" = close ] && echo close) >/dev/null 2>&1 & ;;
        # The floor plus httparse on every head: what parsing alone adds (not in `close`).
        parse) taskset -c $server_cpu "$floor_bin" "$2" \
            $([ "${3:-}" = close ] && echo close || echo parse) >/dev/null 2>&1 & ;;
    esac
    echo $!
}

cpu_ticks() { awk '{print $14, $15}' "/proc/$1/stat"; } # utime stime
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

run_wrk() { # scenario port -> "requests seconds"
    local url="http://127.0.0.1:$2/" extra=()
    case $1 in
        pipelined) extra=(-s "$root/benches/pipeline.lua") ;;
        close) extra=(-H "Connection: close") ;;
    esac
    taskset -c $load_cpu wrk -t1 -c"$CONNS" -d"${SECS}s" "${extra[@]}" "$url" \
        | awk '/requests in/ {print $1}'
}

measure() { # server scenario -> "req_per_s cpu_us_per_req user_us_per_req sys_us_per_req"
    local port pid t0 t1 reqs
    port=$(pick_port)
    pid=$(start_server "$1" "$port" "$2")
    wait_port "$port"
    t0=$(cpu_ticks "$pid")
    reqs=$(run_wrk "$2" "$port")
    t1=$(cpu_ticks "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    awk -v r="$reqs" -v s="$SECS" -v t0="$t0" -v t1="$t1" -v hz="$tick" 'BEGIN {
        split(t0, a, " "); split(t1, b, " "); u = b[1] - a[1]; k = b[2] - a[2]
        per = (r > 0 ? 1e6 / hz / r : 0)
        printf "%.0f %.3f %.3f %.3f\n", r / s, (u + k) * per, u * per, k * per }'
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
col() { cut -d' ' -f"$2" "$tmp/$1" | median; } # file field -> median
printf '%-10s %-6s %12s %10s %14s %15s %10s\n' scenario server req/s req/floor cpu_us/req \
    usr+sys_us cpu/floor
for scenario in ${SCENARIOS:-keepalive pipelined close}; do
    for s in $servers; do : >"$tmp/$s"; done
    for _ in $(seq 1 "$ROUNDS"); do
        for s in $servers; do measure "$s" "$scenario" >>"$tmp/$s"; done
    done
    fr=0; fc=0
    case " $servers " in *" floor "*) fr=$(col floor 1); fc=$(col floor 2) ;; esac
    for s in $servers; do
        awk -v sc="$scenario" -v s="$s" -v r="$(col "$s" 1)" -v c="$(col "$s" 2)" \
            -v u="$(col "$s" 3)" -v k="$(col "$s" 4)" -v fr="$fr" -v fc="$fc" 'BEGIN {
            printf "%-10s %-6s %12.0f %9.2fx %14.3f %7.2f+%-7.2f %9.2fx\n",
                sc, s, r, (fr ? r / fr : 0), c, u, k, (fc ? c / fc : 0) }'
    done
done

idle_memory() { # server -> KiB per idle connection
    local port pid before after fifo
    port=$(pick_port)
    pid=$(start_server "$1" "$port")
    wait_port "$port"
    sleep 0.2
    before=$(rss_kib "$pid")
    fifo=$(mktemp -u); mkfifo "$fifo"
    "$idle_bin" "$port" "$IDLE" 8 >"$fifo" &
    local probe=$!
    read -r line <"$fifo"
    [ "$line" = ready ] || { echo "idle probe failed against $1" >&2; kill "$pid"; return 1; }
    sleep 0.5
    after=$(rss_kib "$pid")
    kill "$probe" 2>/dev/null || true; wait "$probe" 2>/dev/null || true
    rm -f "$fifo"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    awk -v b="$before" -v a="$after" -v n="$IDLE" 'BEGIN { printf "%.2f\n", (a - b) / n }'
}

[ "$IDLE" -gt 0 ] || exit 0
printf '\nidle keep-alive connections: %d\n' "$IDLE"
for s in $servers; do
    printf 'KiB per connection: %-6s %6.2f\n' "$s" "$(idle_memory "$s")"
done
