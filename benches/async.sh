#!/usr/bin/env bash
# Async vs callback, in one run: what writing the server with async/await costs.
#
#   echo   examples/echo_async vs examples/echo: CONNS connections doing 64-byte round trips
#          (benches/peers `load`), server CPU per round trip from /proc/PID/stat
#   hello  examples/hello_async vs examples/hello: wrk keep-alive, CONNS connections,
#          server CPU per request
# Servers run one at a time pinned to CPU 0, the load on CPU 1, alternating per round; the
# table shows medians over ROUNDS (default 3). Environment: SECS (5), ROUNDS (3), CONNS (50),
# EDDY_DRIVER, CARGO_TARGET_DIR. Loopback only; every run ends by itself.
set -euo pipefail
. "$(dirname "$0")/common.sh"

SECS=${SECS:-5}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-50}

echo "building (release)..." >&2
(cd "$root" && CARGO_TARGET_DIR="$target" cargo build --release --quiet \
    --example echo --example echo_async --example hello --example hello_async)
(cd "$root/benches/peers" && CARGO_TARGET_DIR="$target/peers" cargo build --release --quiet --bin load)
load_bin="$target/peers/release/load"
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# measure EXAMPLE KIND -> "ops_per_s cpu_us_per_op"
measure() {
    local example=$1 kind=$2 port pid t0 t1 ops
    port=$(pick_port)
    taskset -c "$server_cpu" "$target/release/examples/$example" --port "$port" --threads 1 \
        >/dev/null 2>&1 &
    pid=$!
    wait_port "$port"
    t0=$(cpu_ticks "$pid")
    case $kind in
        echo) ops=$(taskset -c "$load_cpu" "$load_bin" --addr "127.0.0.1:$port" --mode echo \
                  --conns "$CONNS" --secs "$SECS" | sed -n 's/^RESULT .* ops=\([0-9]*\).*/\1/p') ;;
        hello) ops=$(taskset -c "$load_cpu" wrk -t1 -c"$CONNS" -d"${SECS}s" \
                  "http://127.0.0.1:$port/" | awk '/requests in/ {print $1}') ;;
    esac
    t1=$(cpu_ticks "$pid")
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    awk -v n="${ops:-0}" -v s="$SECS" -v t0="$t0" -v t1="$t1" -v hz="$tick" 'BEGIN {
        printf "%.0f %.3f\n", n / s, (n > 0 ? (t1 - t0) * 1e6 / hz / n : 0) }'
}

declare -A rate cpu
for round in $(seq 1 "$ROUNDS"); do
    for pair in "echo echo" "echo echo_async" "hello hello" "hello hello_async"; do
        set -- $pair
        echo "round $round: $2 ($1, $CONNS conns, ${SECS}s)..." >&2
        read -r r c < <(measure "$2" "$1")
        rate[$2]+=" $r"; cpu[$2]+=" $c"
    done
done

printf '\n%-28s %12s %12s %14s %14s %8s\n' "scenario (1 core)" "callback/s" "async/s" \
    "callback us/op" "async us/op" "cpu x"
for pair in "echo round trips:echo:echo_async" "hello keep-alive requests:hello:hello_async"; do
    IFS=: read -r label cb as <<<"$pair"
    rc=$(echo "${rate[$cb]}" | median); ra=$(echo "${rate[$as]}" | median)
    cc=$(echo "${cpu[$cb]}" | median); ca=$(echo "${cpu[$as]}" | median)
    x=$(awk -v a="$ca" -v c="$cc" 'BEGIN { if (c > 0) printf "%.2f", a / c; else print "n/a" }')
    printf '%-28s %12s %12s %14s %14s %8s\n' "$label" "$rc" "$ra" "$cc" "$ca" "$x"
    echo "  runs $cb cpu:${cpu[$cb]}  $as cpu:${cpu[$as]}" >&2
done
echo "(cpu x = async CPU per op / callback CPU per op; lower is better; driver ${EDDY_DRIVER:-mio})"
