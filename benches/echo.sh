#!/usr/bin/env bash
# Echo benchmark: eddy's echo example vs a tokio current-thread echo server.
#
# Each server runs pinned to CPU 0 (taskset), the load program to CPU 1, one server at a
# time, alternating eddy/tokio per scenario. Scenarios:
#   echo    CONNS persistent connections doing 64-byte round trips   -> round trips/s
#   accept  ACCEPT_CONNS workers doing connect + 1 round trip + close -> connections/s
# With ROUNDS > 1 each scenario alternates eddy/tokio ROUNDS times and the table shows the
# median of each (a shared machine is noisy; the median of alternating runs resists drift).
# Environment: SECS (per run, default 10), ROUNDS (1), CONNS (50), ACCEPT_CONNS (8),
# EDDY_DRIVER (mio|poll), CARGO_TARGET_DIR. Loopback only; every run ends by itself.
set -euo pipefail
. "$(dirname "$0")/common.sh"

SECS=${SECS:-10}
ROUNDS=${ROUNDS:-1}
CONNS=${CONNS:-50}
ACCEPT_CONNS=${ACCEPT_CONNS:-8}

echo "building (release)..." >&2
(cd "$root" && CARGO_TARGET_DIR="$target" cargo build --release --quiet --example echo)
(cd "$root/benches/peers" && CARGO_TARGET_DIR="$target/peers" cargo build --release --quiet)
eddy_bin="$target/release/examples/echo"
tokio_bin="$target/peers/release/tokio_echo"
load_bin="$target/peers/release/load"



# run_one SERVER MODE CONNS -> prints the rate
run_one() {
    local server=$1 mode=$2 conns=$3 port pid rate
    port=$(pick_port)
    case $server in
        eddy) taskset -c "$server_cpu" "$eddy_bin" --port "$port" --threads 1 >/dev/null & ;;
        tokio) taskset -c "$server_cpu" "$tokio_bin" --port "$port" >/dev/null & ;;
    esac
    pid=$!
    wait_port "$port"
    rate=$(taskset -c "$load_cpu" "$load_bin" --addr "127.0.0.1:$port" --mode "$mode" \
        --conns "$conns" --secs "$SECS" | sed -n 's/^RESULT .*rate=\([0-9]*\).*/\1/p')
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "${rate:-0}"
}


declare -A result runs
for scenario in echo accept; do
    conns=$CONNS
    [[ $scenario == accept ]] && conns=$ACCEPT_CONNS
    for round in $(seq 1 "$ROUNDS"); do
        for server in eddy tokio; do
            echo "round $round: $scenario on $server ($conns conns, ${SECS}s)..." >&2
            runs[$scenario,$server]+=" $(run_one "$server" "$scenario" "$conns")"
        done
    done
    for server in eddy tokio; do
        result[$scenario,$server]=$(echo "${runs[$scenario,$server]}" | median)
        echo "  $scenario $server runs:${runs[$scenario,$server]}" >&2
    done
done

printf '\n%-34s %12s %12s %8s\n' "scenario (server on 1 core)" "eddy" "tokio" "ratio"
for scenario in echo accept; do
    case $scenario in
        echo) label="64 B round trips/s, $CONNS conns" ;;
        accept) label="connections/s, $ACCEPT_CONNS workers" ;;
    esac
    e=${result[$scenario,eddy]}
    t=${result[$scenario,tokio]}
    ratio=$(awk -v e="$e" -v t="$t" 'BEGIN { if (t > 0) printf "%.2f", e / t; else print "n/a" }')
    printf '%-34s %12s %12s %8s\n' "$label" "$e" "$t" "$ratio"
done
echo "(eddy driver: ${EDDY_DRIVER:-mio}; ratio = eddy / tokio, higher is better for eddy)"
