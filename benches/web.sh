#!/usr/bin/env bash
# Web layer: `GET /user/42` → JSON on eddy-web (examples/web, the demo app) against the same
# route on axum 0.8 (hyper + tokio current-thread), one thread each, in one run.
#
# Each server runs pinned to CPU 0, wrk (1 thread, CONNS keep-alive connections) on CPU 1,
# servers alternating over ROUNDS rounds of SECS seconds; the table shows medians. CPU per
# request is the server's utime+stime over the run divided by the requests it served.
#
# Two reference servers run in the same rounds (answering `GET /`) to show how much of that CPU
# no web layer can remove: eddy's bare `HttpServer` (examples/hello: no routing, handler,
# JSON or entity tag) and the floor (benches/peers floor_hello: a fixed answer written
# straight back, no HTTP work at all; what the kernel costs per request).
# Environment: SECS (5), ROUNDS (3), CONNS (50), SERVERS ("eddy axum hello floor"; axum is
# needed: every figure is a ratio of its), EDDY_DRIVER, CARGO_TARGET_DIR.
# Loopback only; every run ends by itself.
set -euo pipefail
. "$(dirname "$0")/common.sh"

SECS=${SECS:-5}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-50}
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }

echo "building (release)..." >&2
(cd "$root" && CARGO_TARGET_DIR="$target" cargo build --release --quiet --example web --example hello)
(cd "$root/benches/peers" && CARGO_TARGET_DIR="$target/peers" cargo build --release --quiet \
    --bin axum_user --bin floor_hello)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

measure() { # server -> "req_per_s cpu_us_per_req"
    local port pid t0 t1 reqs
    port=$(pick_port)
    case $1 in
        eddy) EDDY_COOKIE_SECRET=bench taskset -c "$server_cpu" "$target/release/examples/web" \
                  --port "$port" --threads 1 >/dev/null 2>&1 & ;;
        axum) taskset -c "$server_cpu" "$target/peers/release/axum_user" "$port" >/dev/null 2>&1 & ;;
        hello) taskset -c "$server_cpu" "$target/release/examples/hello" \
                  --port "$port" --threads 1 >/dev/null 2>&1 & ;;
        floor) taskset -c "$server_cpu" "$target/peers/release/floor_hello" "$port" >/dev/null 2>&1 & ;;
    esac
    pid=$!
    local path=/user/42
    case $1 in hello | floor) path=/ ;; esac # their 200 answer: `Hello, world`
    wait_port "$port"
    t0=$(cpu_ticks "$pid")
    reqs=$(taskset -c "$load_cpu" wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$port$path" \
        | awk '/requests in/ {print $1}')
    t1=$(cpu_ticks "$pid")
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    awk -v n="${reqs:-0}" -v s="$SECS" -v t0="$t0" -v t1="$t1" -v hz="$tick" 'BEGIN {
        printf "%.0f %.3f\n", n / s, (n > 0 ? (t1 - t0) * 1e6 / hz / n : 0) }'
}

servers=${SERVERS:-"eddy axum hello floor"}
declare -A rate cpu
for round in $(seq 1 "$ROUNDS"); do
    for server in $servers; do
        echo "round $round: $server ($CONNS conns, ${SECS}s)..." >&2
        read -r r c < <(measure "$server")
        rate[$server]+=" $r"; cpu[$server]+=" $c"
    done
done

ca=$(echo "${cpu[axum]}" | median)
for server in $servers; do echo "  runs $server cpu:${cpu[$server]}" >&2; done
printf '\n%-34s %12s %12s %8s\n' "1 core, keep-alive" "req/s" "us/req" "cpu x"
for server in $servers; do
    case $server in
        eddy) what="eddy-web, GET /user/42" ;;
        axum) what="axum 0.8, GET /user/42" ;;
        hello) what="eddy HttpServer, GET /" ;;
        floor) what="floor, GET /" ;;
    esac
    c=$(echo "${cpu[$server]}" | median)
    x=$(awk -v e="$c" -v a="$ca" 'BEGIN { if (a > 0) printf "%.2f", e / a; else print "n/a" }')
    printf '%-34s %12s %12s %8s\n' "$what" "$(echo "${rate[$server]}" | median)" "$c" "$x"
done
echo "(cpu x = CPU per request / axum's; lower is better; medians; driver ${EDDY_DRIVER:-mio})"
