#!/usr/bin/env bash
# WebSocket echo benchmark: eddy-web's WebSocketHandler (examples/ws_echo.rs) against
# tokio-tungstenite on a tokio current-thread runtime (benches/peers tungstenite_echo).
#
# Each server is pinned to CPU 0, the load (benches/peers ws_load: CONNS connections, each
# sending a SIZE-byte binary message and awaiting its echo) to CPU 1; servers alternate
# ROUNDS times. CPU per message is the server's utime+stime over the run divided by the
# echoes it served (/proc/PID/stat), the figure to compare when both are CPU-bound.
# Then the memory of IDLE idle WebSocket sessions (default 10,000; 0 skips it): each server's
# resident memory growth divided by the session count.
# Environment: SECS (per run, default 5), ROUNDS (3), CONNS (50), SIZE (1024), IDLE,
# EDDY_DRIVER (mio|poll), CARGO_TARGET_DIR. Loopback only; every run ends by itself.
set -euo pipefail
. "$(dirname "$0")/common.sh"

SECS=${SECS:-5}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-50}
SIZE=${SIZE:-1024}

echo "building (release)..." >&2
(cd "$root" && CARGO_TARGET_DIR="$target" cargo build --release --quiet --example ws_echo)
(cd "$root/benches/peers" && CARGO_TARGET_DIR="$target/peers" cargo build --release --quiet \
    --bin tungstenite_echo --bin ws_load --bin idle_conns)
eddy_bin="$target/release/examples/ws_echo"
peer_bin="$target/peers/release/tungstenite_echo"
load_bin="$target/peers/release/ws_load"
idle_bin="$target/peers/release/idle_conns"
IDLE=${IDLE:-10000}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# cpu_ticks PID -> utime+stime in clock ticks
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# run_one SERVER -> prints "RATE US_PER_MSG"
run_one() {
    local server=$1 port pid rate ops t0 t1
    port=$(pick_port)
    case $server in
        eddy) taskset -c "$server_cpu" "$eddy_bin" --port "$port" --threads 1 >/dev/null & ;;
        tungstenite) taskset -c "$server_cpu" "$peer_bin" --port "$port" >/dev/null & ;;
    esac
    pid=$!
    wait_port "$port"
    t0=$(cpu_ticks "$pid")
    local out
    out=$(taskset -c "$load_cpu" "$load_bin" --url "ws://127.0.0.1:$port/ws" \
        --conns "$CONNS" --secs "$SECS" --size "$SIZE")
    t1=$(cpu_ticks "$pid")
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rate=$(echo "$out" | sed -n 's/^RESULT .*rate=\([0-9]*\).*/\1/p')
    ops=$(echo "$out" | sed -n 's/^RESULT ops=\([0-9]*\).*/\1/p')
    awk -v r="${rate:-0}" -v o="${ops:-0}" -v d="$((t1 - t0))" -v hz="$tick" \
        'BEGIN { printf "%s %.2f\n", r, (o > 0 ? d / hz * 1e6 / o : 0) }'
}

declare -A rates cpus
for round in $(seq 1 "$ROUNDS"); do
    for server in eddy tungstenite; do
        echo "round $round: $server ($CONNS conns, $SIZE B, ${SECS}s)..." >&2
        read -r rate cpu < <(run_one "$server")
        rates[$server]+=" $rate"
        cpus[$server]+=" $cpu"
        echo "  $rate echoes/s, $cpu us CPU/echo" >&2
    done
done

printf '\n%-14s %12s %18s %10s\n' "server" "echoes/s" "CPU us/echo" "CPU ratio"
e_cpu=$(echo "${cpus[eddy]}" | median)
for server in eddy tungstenite; do
    r=$(echo "${rates[$server]}" | median)
    c=$(echo "${cpus[$server]}" | median)
    t_cpu=$(echo "${cpus[tungstenite]}" | median)
    ratio=$(awk -v c="$c" -v t="$t_cpu" 'BEGIN { if (t > 0) printf "%.2fx", c / t; else print "n/a" }')
    printf '%-14s %12s %18s %10s\n' "$server" "$r" "$c" "$ratio"
done
echo "(medians of $ROUNDS alternating rounds; eddy driver: ${EDDY_DRIVER:-mio}; ratio = CPU per echo / tokio-tungstenite's, lower is better; eddy $e_cpu us)"

# idle_memory SERVER -> KiB per idle session
idle_memory() {
    local port pid before after fifo line probe
    port=$(pick_port)
    case $1 in
        eddy) taskset -c "$server_cpu" "$eddy_bin" --port "$port" --threads 1 >/dev/null & ;;
        tungstenite) taskset -c "$server_cpu" "$peer_bin" --port "$port" >/dev/null & ;;
    esac
    pid=$!
    wait_port "$port"
    sleep 0.2
    before=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
    fifo=$(mktemp -u); mkfifo "$fifo"
    "$idle_bin" "$port" "$IDLE" 8 ws >"$fifo" &
    probe=$!
    read -r line <"$fifo"
    [ "$line" = ready ] || { echo "idle probe failed against $1" >&2; kill "$pid"; return 1; }
    sleep 0.5
    after=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
    kill "$probe" 2>/dev/null || true; wait "$probe" 2>/dev/null || true
    rm -f "$fifo"
    kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    awk -v b="$before" -v a="$after" -v n="$IDLE" 'BEGIN { printf "%.2f\n", (a - b) / n }'
}

[ "$IDLE" -gt 0 ] || exit 0
printf '\nidle WebSocket sessions: %d\n' "$IDLE"
for server in eddy tungstenite; do
    printf 'KiB per session: %-12s %6.2f\n' "$server" "$(idle_memory "$server")"
done
