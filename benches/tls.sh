#!/usr/bin/env bash
# HTTPS hello-world benchmark: eddy's `hello_tls` example vs hyper 1.x over tokio-rustls
# (`hyper_tls_hello`; both rustls with ring, the same Ed25519 fixture certificate, TLS 1.3),
# one thread each, under wrk.
#
# The server runs pinned to CPU 0, wrk (one thread) to CPU 1, one server at a time,
# alternating eddy/hyper, ROUNDS times (the table shows medians):
#   keepalive   50 persistent TLS connections
#   handshake   50 connections, `Connection: close`: a new TLS connection per request, so
#               requests/s is handshakes/s
# On 2 cores wrk (which also does TLS) saturates its core first, so the table reports the
# server's own CPU time per request (utime+stime from /proc/PID/stat over the run, divided
# by requests) next to requests/s, and eddy's figures as ratios of hyper's in the same run.
# Environment: SECS (per run, default 10), ROUNDS (1), CONNS (50), EDDY_DRIVER (mio|poll),
# CARGO_TARGET_DIR. Installs wrk with apt-get if missing. Loopback only; every run ends.
set -euo pipefail
. "$(dirname "$0")/common.sh"

SECS=${SECS:-10}
ROUNDS=${ROUNDS:-1}
CONNS=${CONNS:-50}
cert="$root/core/src/tls/fixture/server.pem"
key="$root/core/src/tls/fixture/server.key"

if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk..." >&2
    (apt-get install -y wrk || (apt-get update && apt-get install -y wrk)) >/dev/null
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "building (release)..." >&2
(cd "$root" && CARGO_TARGET_DIR="$target" cargo build --release --quiet --example hello_tls)
(cd "$root/benches/peers" && CARGO_TARGET_DIR="$target/peers" cargo build --release --quiet \
    --bin hyper_tls_hello)
eddy_bin="$target/release/examples/hello_tls"
hyper_bin="$target/peers/release/hyper_tls_hello"

start_server() { # name port -> pid
    case $1 in
        eddy) EDDY_CERT="$cert" EDDY_KEY="$key" taskset -c $server_cpu "$eddy_bin" \
            --port "$2" --threads 1 >/dev/null 2>&1 & ;;
        hyper) taskset -c $server_cpu "$hyper_bin" "$2" "$cert" "$key" >/dev/null 2>&1 & ;;
    esac
    echo $!
}

cpu_ticks() { awk '{print $14, $15}' "/proc/$1/stat"; } # utime stime

run_wrk() { # scenario port -> requests
    local url="https://127.0.0.1:$2/" extra=()
    [ "$1" = handshake ] && extra=(-H "Connection: close")
    taskset -c $load_cpu timeout $((SECS + 30)) wrk -t1 -c"$CONNS" -d"${SECS}s" "${extra[@]}" \
        "$url" | awk '/requests in/ {print $1}'
}

measure() { # server scenario -> "req_per_s cpu_us_per_req"
    local port pid t0 t1 reqs
    port=$(pick_port)
    pid=$(start_server "$1" "$port")
    wait_port "$port"
    t0=$(cpu_ticks "$pid")
    reqs=$(run_wrk "$2" "$port")
    t1=$(cpu_ticks "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    awk -v r="${reqs:-0}" -v s="$SECS" -v t0="$t0" -v t1="$t1" -v hz="$tick" 'BEGIN {
        split(t0, a, " "); split(t1, b, " "); c = (b[1] - a[1]) + (b[2] - a[2])
        printf "%.0f %.3f\n", r / s, (r > 0 ? c * 1e6 / hz / r : 0) }'
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
col() { cut -d' ' -f"$2" "$tmp/$1" | median; }
printf '%-10s %-6s %12s %10s %12s %10s\n' scenario server req/s req/hyper cpu_us/req cpu/hyper
for scenario in keepalive handshake; do
    for s in eddy hyper; do : >"$tmp/$s"; done
    for _ in $(seq 1 "$ROUNDS"); do
        for s in eddy hyper; do measure "$s" "$scenario" >>"$tmp/$s"; done
    done
    hr=$(col hyper 1); hc=$(col hyper 2)
    for s in eddy hyper; do
        awk -v sc="$scenario" -v s="$s" -v r="$(col "$s" 1)" -v c="$(col "$s" 2)" \
            -v hr="$hr" -v hc="$hc" 'BEGIN {
            printf "%-10s %-6s %12.0f %9.2fx %12.3f %9.2fx\n",
                sc, s, r, (hr ? r / hr : 0), c, (hc ? c / hc : 0) }'
    done
done
