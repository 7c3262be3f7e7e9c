#!/usr/bin/env bash
# Simulator benchmark: eddy-sim (`cargo bench -p eddy-sim`) against turmoil 0.7 on the same
# workload: an echo server and 50 clients doing 64-byte round trips, without link latency
# and with 1-10 ms of it. Prints simulated round trips per wall-clock second for both and
# the ratio, then eddy's wall time for 9 idle virtual hours (turmoil advances 1 ms ticks, so
# that is hours of wall time there and is not run).
#
# Both run on one core, alternately, ROUNDS times; the table shows medians. The turmoil
# peer is built with its own target directory so its tokio features never leak into the
# HTTP and echo baselines (benches/peers, feature `turmoil`).
# Environment: ROUNDS (default 3), CARGO_TARGET_DIR. Everything ends by itself.
set -euo pipefail
. "$(dirname "$0")/common.sh"

ROUNDS=${ROUNDS:-3}
cpu=$(( $(nproc) > 1 ? 1 : 0 ))

echo "building (release)..." >&2
eddy_bin=$(cd "$root" && CARGO_TARGET_DIR="$target" cargo bench -p eddy-sim --no-run 2>&1 |
    sed -n 's/.*(\(.*roundtrip-[0-9a-f]*\)).*/\1/p' | tail -1)
(cd "$root/benches/peers" && CARGO_TARGET_DIR="$target/peers-turmoil" \
    cargo build --release --quiet --features turmoil --bin turmoil_echo)
turmoil_bin="$target/peers-turmoil/release/turmoil_echo"

rate() { # "scenario name" < bench output -> round trips/s
    awk -v name="$1" 'index($0, name) == 1 && match($0, /\( *[0-9]+ round trips\/s\)/) {
        s = substr($0, RSTART + 1, RLENGTH - 2); sub(/ round trips\/s/, "", s); print s + 0 }'
}

: >/tmp/eddy_sim_e.$$; : >/tmp/eddy_sim_t.$$
for _ in $(seq 1 "$ROUNDS"); do
    taskset -c "$cpu" "$eddy_bin" >>/tmp/eddy_sim_e.$$
    taskset -c "$cpu" "$turmoil_bin" >>/tmp/eddy_sim_t.$$
done

printf '%-18s %16s %16s %9s\n' scenario eddy_rt/s turmoil_rt/s ratio
for scenario in "no latency" "1-10 ms latency"; do
    e=$(rate "$scenario" </tmp/eddy_sim_e.$$ | median)
    t=$(rate "$scenario" </tmp/eddy_sim_t.$$ | median)
    awk -v s="$scenario" -v e="$e" -v t="$t" \
        'BEGIN { printf "%-18s %16.0f %16.0f %8.1fx\n", s, e, t, (t ? e / t : 0) }'
done
grep '^idle' /tmp/eddy_sim_e.$$ | tail -1
rm -f /tmp/eddy_sim_e.$$ /tmp/eddy_sim_t.$$
