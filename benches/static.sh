#!/usr/bin/env bash
# Static files: `eddy serve` against nginx (Debian's, `sendfile on`), one worker/thread each,
# under wrk. The server is pinned to CPU 0 and wrk (one thread) to CPU 1; servers alternate
# within each round, ROUNDS times (the table shows medians):
#   small   a 4 KiB file over 50 keep-alive connections: server CPU per request (utime+stime
#           from /proc/PID/stat over the run, divided by requests) — on 2 cores wrk saturates
#           its core first, so CPU per request is the fair comparison
#   large   a 100 MiB file over 4 keep-alive connections: throughput (bytes/s) and CPU per GiB
# Each eddy figure is also shown as a ratio of nginx's from the same run.
# Environment: SECS (per run, default 10), ROUNDS (1), SCENARIOS ("small large"),
# EDDY_DRIVER (mio|poll), CARGO_TARGET_DIR. Installs wrk and nginx with apt-get if missing.
# Loopback only; every run ends by itself.
set -euo pipefail
. "$(dirname "$0")/common.sh"

SECS=${SECS:-10}
ROUNDS=${ROUNDS:-1}

for tool in wrk nginx; do
    if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
        echo "installing $tool..." >&2
        (apt-get install -y "$tool" || (apt-get update && apt-get install -y "$tool")) >/dev/null
    fi
done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "building (release)..." >&2
(cd "$root" && CARGO_TARGET_DIR="$target" cargo build --release --quiet --bin eddy)
eddy_bin="$target/release/eddy"

tmp=$(mktemp -d)
cleanup() {
    [ -f "$tmp/nginx/nginx.pid" ] && kill "$(cat "$tmp/nginx/nginx.pid")" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$tmp/www" "$tmp/nginx"
head -c 4096 /dev/urandom >"$tmp/www/small.bin"
head -c $((100 << 20)) /dev/urandom >"$tmp/www/large.bin"
chmod -R a+rX "$tmp" # nginx's worker runs as an unprivileged user

nginx_conf() { # port
    cat <<CONF
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    client_body_temp_path $tmp/nginx;
    proxy_temp_path $tmp/nginx;
    fastcgi_temp_path $tmp/nginx;
    uwsgi_temp_path $tmp/nginx;
    scgi_temp_path $tmp/nginx;
    types { application/octet-stream bin; }
    server {
        listen 127.0.0.1:$1;
        root $tmp/www;
    }
}
CONF
}

start_server() { # name port -> pid of the process that serves
    case $1 in
        eddy)
            taskset -c $server_cpu "$eddy_bin" serve "$tmp/www" --port "$2" --threads 1 \
                --quiet >/dev/null 2>&1 &
            echo $!
            ;;
        nginx)
            nginx_conf "$2" >"$tmp/nginx/nginx.conf"
            taskset -c $server_cpu "$nginx_bin" -c "$tmp/nginx/nginx.conf" >/dev/null 2>&1 &
            wait_port "$2"
            pgrep -P "$(cat "$tmp/nginx/nginx.pid")" | head -1
            ;;
    esac
}

stop_server() { # name pid
    if [ "$1" = nginx ]; then
        local master
        master=$(cat "$tmp/nginx/nginx.pid")
        kill "$master"
        while kill -0 "$master" 2>/dev/null; do sleep 0.05; done
    else
        kill "$2"; wait "$2" 2>/dev/null || true
    fi
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

measure() { # server scenario -> "requests_per_s cpu_us_per_request bytes_per_s"
    local port pid t0 t1 out reqs path conns size
    case $2 in
        small) path=small.bin; conns=50; size=4096 ;;
        large) path=large.bin; conns=4; size=$((100 << 20)) ;;
    esac
    port=$(pick_port)
    pid=$(start_server "$1" "$port")
    wait_port "$port"
    local got
    got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:$port/$path")
    if [ "$got" != "200 $size" ]; then
        echo "$1 answered $got for /$path, not 200 $size" >&2
        stop_server "$1" "$pid"
        return 1
    fi
    t0=$(cpu_ticks "$pid")
    out=$(taskset -c $load_cpu wrk -t1 -c"$conns" -d"${SECS}s" "http://127.0.0.1:$port/$path")
    t1=$(cpu_ticks "$pid")
    stop_server "$1" "$pid"
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    awk -v r="$reqs" -v s="$SECS" -v t0="$t0" -v t1="$t1" -v hz="$tick" -v size="$size" 'BEGIN {
        printf "%.0f %.3f %.0f\n", r / s, (r > 0 ? (t1 - t0) * 1e6 / hz / r : 0), r * size / s }'
}

results=$(mktemp -d)
col() { cut -d' ' -f"$2" "$results/$1" | median; }
printf '%-7s %-6s %12s %14s %12s %10s\n' scenario server req/s cpu_us/req MiB/s cpu/nginx
for scenario in ${SCENARIOS:-small large}; do
    for s in eddy nginx; do : >"$results/$s"; done
    for _ in $(seq 1 "$ROUNDS"); do
        for s in eddy nginx; do measure "$s" "$scenario" >>"$results/$s"; done
    done
    nc=$(col nginx 2)
    for s in eddy nginx; do
        awk -v sc="$scenario" -v s="$s" -v r="$(col "$s" 1)" -v c="$(col "$s" 2)" \
            -v b="$(col "$s" 3)" -v nc="$nc" 'BEGIN {
            printf "%-7s %-6s %12.0f %14.3f %12.1f %9.2fx\n", sc, s, r, c, b / 1048576, (nc > 0 ? c / nc : 0) }'
    done
done
rm -rf "$results"
