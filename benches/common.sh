# Shell helpers and settings shared by the load benchmarks (sourced by every benches/*.sh).

# The checkout, the cargo target directory, and the CPUs: the server on 0, the load on 1
# (both on 0 on a one-core machine); the kernel's clock tick for /proc/PID/stat times.
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
ncpu=$(nproc)
server_cpu=0
load_cpu=$(( ncpu > 1 ? 1 : 0 ))
tick=$(getconf CLK_TCK)

# A free loopback port.
pick_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits (5 s at most) until something accepts on 127.0.0.1:PORT.
wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "server did not start on port $1" >&2
    return 1
}

# Median of the numbers on stdin (whitespace or newline separated).
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
