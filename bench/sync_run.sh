#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# shm_mutex against a plain PTHREAD_PROCESS_SHARED pthread mutex, whole
# processes timed by hyperfine in one run: uncontended lock/unlock pairs
# in one thread, and two processes contending for one mutex. Prints a
# Markdown section with the medians and the ratios (bench/run.sh appends
# it to docs/benchmarks.md).
#
#   bench/sync_run.sh [PAIRS]       (default 2000000 pairs per process)
#
# Environment: SYNC_BENCH_BIN, a sync_bench already built (otherwise the
# `bench` preset is built); SHM_BENCH_DIR, where the arena file goes.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
pairs=${1:-2000000}
runs=${SYNC_BENCH_RUNS:-7}
bin=${SYNC_BENCH_BIN:-}
if [ -z "$bin" ]; then
    cmake --preset bench >/dev/null
    cmake --build --preset bench -j2 --target sync_bench >/dev/null
    bin=build-bench/bench/sync_bench
fi
dir=${SHM_BENCH_DIR:-}
if [ -z "$dir" ]; then
    dir=/tmp
    [ -d /dev/shm ] && [ -w /dev/shm ] && dir=/dev/shm
fi
json=$(mktemp)
trap 'rm -f "$json"' EXIT

hyperfine -N -w 1 -r "$runs" --export-json "$json" \
    -n shm-uncontended "$bin uncontended shm $pairs $dir" \
    -n pthread-uncontended "$bin uncontended pthread $pairs $dir" \
    -n robust-uncontended "$bin uncontended robust $pairs $dir" \
    -n shm-contended "$bin contended shm $pairs $dir" \
    -n pthread-contended "$bin contended pthread $pairs $dir" \
    -n robust-contended "$bin contended robust $pairs $dir" >&2

awk -v pairs="$pairs" '
    /"command":/ { gsub(/[",]/, "", $2); name = $2 }
    /"median":/  { gsub(/,/, "", $2); med[name] = $2 }
    END {
        print "## Locks"
        print ""
        print "`bench/sync_run.sh " pairs "`: whole processes (hyperfine medians),"
        print "each doing " pairs " lock/unlock pairs; contended is two processes"
        print "on one mutex, " pairs " pairs each. shm_mutex is robust on a"
        print "futex word of its own (the holder'"'"'s process-table key: one CAS"
        print "to lock, one to unlock); the reference is a plain"
        print "PTHREAD_PROCESS_SHARED pthread mutex in the same arena; a robust"
        print "process-shared pthread mutex (the kernel'"'"'s robust-futex list,"
        print "what the rwlock is built on) is shown for comparison."
        print ""
        print "| case | shm_mutex | pthread mutex | ratio | robust pthread mutex | ratio |"
        print "|---|---|---|---|---|---|"
        n = split("uncontended contended", cases, " ")
        for (i = 1; i <= n; i++) {
            c = cases[i]; a = med["shm-" c]; b = med["pthread-" c]
            r = med["robust-" c]
            printf "| %s | %.1f ms (%.1f ns/pair) | %.1f ms (%.1f ns/pair) | %.2fx | %.1f ms | %.2fx |\n",
                c, a * 1000, a * 1e9 / pairs, b * 1000, b * 1e9 / pairs,
                (b > 0 ? a / b : 0), r * 1000, (r > 0 ? a / r : 0)
        }
    }' "$json"
