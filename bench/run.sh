#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Runs the benchmark suite and writes a report with its plots.
#
#   bench/run.sh                 the full run (about 3 to 5 minutes on 2 cores)
#   bench/run.sh --quick         a smoke run: fewer operations and repetitions
#   bench/run.sh --update-docs   write the report into docs/ instead (the
#                                committed files); combines with --quick,
#                                though a quick run is not worth committing
#
# Installs what it needs with apt-get when missing (Debian 12), builds the
# `bench` preset (Release), runs shm_bench for the in-process figures and
# hyperfine for whole-process runs, bench/threads.sh for the thread figures
# and bench/cache.sh for the cache figures, and writes benchmarks.md,
# bench-processes.png and bench-fill.png next to the raw results in
# build-bench/bench-results/; only --update-docs writes them to docs/,
# whose files are tracked.
#
# Environment (defaults in brackets):
#   SHM_BENCH_OPS        timed operations, shm_alloc and glibc [1000000]
#   SHM_BENCH_OPS_BOOST  the same for Boost.Interprocess [100000]
#   SHM_BENCH_OPS_MM     the same for OSSP mm [20000]
#   SHM_BENCH_REPS       repetitions; medians are reported [7]
#   SHM_BENCH_HF_OPS     operations of each hyperfine run [100000]
#   SHM_BENCH_DIR        where heap files go [/dev/shm, else /tmp]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
started=$(date +%s)
# Before anything of ours runs: how busy the machine is with other work.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

ops=${SHM_BENCH_OPS:-1000000}
ops_boost=${SHM_BENCH_OPS_BOOST:-100000}
ops_mm=${SHM_BENCH_OPS_MM:-20000}
reps=${SHM_BENCH_REPS:-7}
hf_ops=${SHM_BENCH_HF_OPS:-100000}
hf_runs=5
update_docs=false
for arg in "$@"; do
    case $arg in
    --quick) ops=200000 ops_boost=20000 ops_mm=5000 reps=3 hf_ops=20000 hf_runs=3 ;;
    --update-docs) update_docs=true ;;
    *)
        sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'
        case $arg in -h | --help) exit 0 ;; *) exit 2 ;; esac
        ;;
    esac
done

say() { printf '\n== %s\n' "$*" >&2; }

# ---- packages ---------------------------------------------------------------
# SHM_BENCH_PACKAGES (scripts/common.sh) lists them, the cache figures'
# (bench/cache.sh) and the thread figures' (bench/threads.sh) included.
# shellcheck source=../scripts/common.sh
source scripts/common.sh
shm_install_packages "${SHM_BENCH_PACKAGES[@]}"

# ---- build ------------------------------------------------------------------
say "building (preset bench, Release)"
configure_cmd=(cmake --preset bench)
build_cmd=(cmake --build --preset bench -j2 --target shm_bench open_bench collect_bench)
"${configure_cmd[@]}" >/dev/null
"${build_cmd[@]}" >/dev/null

bin=build-bench/bench/shm_bench
out=build-bench/bench-results
mkdir -p "$out"
report=$out invocation=bench/run.sh
if $update_docs; then
    report=docs invocation="bench/run.sh --update-docs"
fi
heap_dir=${SHM_BENCH_DIR:-}
if [ -z "$heap_dir" ]; then
    heap_dir=/tmp
    [ -d /dev/shm ] && [ -w /dev/shm ] && heap_dir=/dev/shm
fi

# ---- in-process figures -----------------------------------------------------
# The heaps and workloads named, so that those bench/threads.sh measures
# (mimalloc, jemalloc; xmalloc, larson) are not run twice.
bench_cmd=("$bin" -a shm,glibc,mm,boost -n "$ops" -n "boost=$ops_boost"
           -n "mm=$ops_mm" -r "$reps" -d "$heap_dir" -f 30,60,80,90
           fill pair churn processes handoff meta)
say "in-process figures: ${bench_cmd[*]}"
"${bench_cmd[@]}" >"$out/results.tsv"

# The small-request fill: sizes 16..64 with 16-byte chunks, which needs a
# build of its own (MIN is fixed at compile time); its row is the
# workload "fill_min4" of the same table.
say "fill with MIN = 4: build-bench-min4"
cmake -S . -B build-bench-min4 -DCMAKE_BUILD_TYPE=Release -DSHM_BUILD_BENCH=ON \
    -DSHM_BUILD_TESTS=OFF -DSHM_BUILD_EXAMPLES=OFF -DSHM_BUILD_TOOLS=OFF \
    -DSHM_MIN_ALLOC_POW2=4 >/dev/null
cmake --build build-bench-min4 -j2 --target shm_bench >/dev/null
build-bench-min4/bench/shm_bench -q -a shm -r 1 -s 16:64 -d "$heap_dir" fill |
    awk -F'\t' 'NR > 1 { $1 = "fill_min4"; print }' OFS='\t' >>"$out/results.tsv"

# ---- whole-process runs -----------------------------------------------------
# The same work for every heap, from exec to exit: creating the heap, the
# two processes of the handoff, tearing down.
hf_cmd=(hyperfine -N -w 1 -r "$hf_runs" --export-json "$out/hyperfine.json"
        --export-markdown "$out/hyperfine.md")
for h in shm glibc mm boost; do
    hf_cmd+=(-n "$h" "$bin -q -r 1 -a $h -n $hf_ops -d $heap_dir handoff")
done
say "whole-process runs: hyperfine"
"${hf_cmd[@]}" >&2
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report -----------------------------------------------------------------
say "writing $report/benchmarks.md"
tables=$(awk -v cpus="$(nproc)" -v procdat="$out/processes.dat" -v filldat="$out/fill.dat" \
             -f bench/report.awk "$out/results.tsv")

# Whole-process medians from hyperfine, as ratios to glibc malloc's.
whole=$(awk '
    /"command":/ { gsub(/[",]/, "", $2); name = $2 }
    /"median":/  { gsub(/,/, "", $2); med[name] = $2; order[++n] = name }
    END {
        title["shm"] = "shm_alloc"; title["glibc"] = "glibc malloc"
        title["mm"] = "OSSP mm"; title["boost"] = "Boost.Interprocess"
        print "| heap | median wall time | ratio to glibc malloc |"
        print "|---|---|---|"
        for (i = 1; i <= n; i++) {
            h = order[i]
            ratio = (med["glibc"] > 0) ? med[h] / med["glibc"] : 0
            printf "| %s | %.1f ms | %.2fx |\n", title[h], med[h] * 1000, ratio
        }
    }' "$out/hyperfine.json")

gnuplot <<EOF
set terminal pngcairo size 820,480 font ',10' noenhanced
set key outside right top autotitle columnheader
set logscale y
set grid ytics
set ylabel 'million operations per second (log scale)'

set output '$report/bench-processes.png'
set title 'churn at 60%: aggregate throughput against processes (2 cores)'
set xlabel 'processes on one heap'
set xtics (1, 2, 4)
plot for [i=2:5] '$out/processes.dat' using 1:i with linespoints lw 2 pt 7

set output '$report/bench-fill.png'
set title 'churn, 1 process: throughput against fill'
set xlabel 'fill (% of what the heap received in its own fill run)'
set xtics (30, 60, 90)
plot for [i=2:5] '$out/fill.dat' using 1:i with linespoints lw 2 pt 7
EOF

cpu=$(lscpu | sed -n 's/^Model name: *//p' | sed -n 1p)
cpus=$(nproc)
cores=$(lscpu | sed -n 's/^Core(s) per socket: *//p' | sed -n 1p)
sockets=$(lscpu | sed -n 's/^Socket(s): *//p' | sed -n 1p)
min_pow2=$(sed -n 's/^SHM_MIN_ALLOC_POW2:[A-Z]*=//p' build-bench/CMakeCache.txt)
max_pow2=$(sed -n 's/^SHM_MAX_ALLOC_POW2:[A-Z]*=//p' build-bench/CMakeCache.txt)
compiler=$(cc --version | sed -n 1p)
libc=$(ldd --version 2>&1 | sed -n 1p)
boost=$(sed -n 's/^#define BOOST_LIB_VERSION "\(.*\)"/\1/p' \
            /usr/include/boost/version.hpp)
mm=$(mm-config --version 2>/dev/null || echo unknown)
elapsed=$(($(date +%s) - started))
busy=
if awk -v n="$cpus" -v l="${load_before%% *}" 'BEGIN { exit !(l > n / 2) }'; then
    busy="**The machine was busy** (load average above half its $cpus CPUs
when the script started): other processes took cores and caches, so the times are
inflated and the scaling with processes understates what an idle machine
shows. The ratios within a round are fairer than the absolute figures."
fi
# Arguments as a shell would need them typed.
quote() {
    local a sep=
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z0-9_./=:,+-]+$ ]]; then
            printf '%s%s' "$sep" "$a"
        else
            printf "%s'%s'" "$sep" "$a"
        fi
        sep=' '
    done
}

cat >"$report/benchmarks.md" <<EOF
# Benchmarks

Written by \`$invocation\` on $(date -u '+%Y-%m-%d %H:%M UTC'); run
\`bash bench/run.sh\` to measure your machine (it writes its report to
\`$out/benchmarks.md\` and leaves docs/ alone).
shm_alloc against glibc malloc (private
memory: the speed to get close to), OSSP mm and Boost.Interprocess, on
the same workloads, in the same run. Threads that free what other threads
allocated, and mimalloc and jemalloc as further private references, are
in "Threads, and other private-memory allocators" below.

## Machine

- CPU: $cpu; $cpus CPUs ($sockets socket(s) of $cores core(s))
- Linux $(uname -r), $compiler, $libc
- Boost $boost, OSSP mm $mm
- shm_alloc built with MIN = $min_pow2, MAX = $max_pow2 (chunks of
  $((1 << min_pow2)) to $((1 << max_pow2)) bytes), Release
- load average (1, 5, 15 min) when the script started / ended:
  $load_before / $load_after. Other work on the machine shows up as
  noise; the heaps are measured in interleaved rounds so that it falls on
  all of them alike.
- the whole script took ${elapsed} s

$busy

## What is measured

Every heap has a capacity of 32 MiB (shm_alloc: the bytes available to
allocations, its metadata comes on top; OSSP mm: \`mm_create(32 MiB)\`;
Boost: a 32 MiB \`managed_mapped_file\`). Heap files live in
\`$heap_dir\`; OSSP mm uses System V shared memory and fcntl locks, as
Debian builds it. Requests are 16 to 1000 bytes, log-uniform, drawn from
a seeded generator before the timed loops; each process has its own
sequence. Every chunk gets its first and last byte written.

- **pair**: malloc, touch, free at once; time per pair.
- **churn**: the heap holds live chunks at a fill fraction and each
  operation frees a random one and allocates the next request in its
  place; time per operation, after a warm-up of a quarter as many.
- **processes**: churn in 1, 2 and 4 forked processes on one heap, the
  live set (at 60%) split between them; they set up, then start together,
  and the throughput is all their operations over the span from the
  common start to the last finisher. shm_alloc and Boost processes open
  the file themselves, as unrelated processes would; OSSP mm's pool can
  only be inherited. glibc's processes each have a private heap.
- **handoff**: one process allocates and passes references through a
  shared ring of 1024 slots, another reads each chunk's first byte and
  frees it (the cache pattern); time per chunk. glibc, whose memory cannot
  cross processes, hands off between two threads of one process.
- **fill**: allocate until the first failure; the requested bytes received
  as a share of the capacity.
- **metadata**: what shm_alloc's file holds beyond the capacity, as a share
  of the capacity.

**Fill fraction.** A fraction of the raw capacity would not mean the same
for every heap: a power-of-two allocator cannot hold requests worth 90% of
its capacity at all, and each heap spends a different overhead per chunk.
So the fill fraction f is measured against what the same heap received in
its own fill run (same capacity, same request sequence): at f, the live
chunks' requested bytes are f times that. At 90% every heap is equally
close to full, and every fraction is reachable by construction. glibc
malloc has no capacity; it holds exactly the live set shm_alloc holds at
the same f, so the ratio between the two compares the same work.

**Ratios** are a heap's time per operation divided by glibc malloc's on
the same workload in the same run (lower is better; throughputs are turned
into time per operation). Each figure is the median of $reps repetitions
(min and max are in \`build-bench/bench-results/results.tsv\`). Timed
operations per repetition and process: $ops for shm_alloc and glibc,
$ops_boost for Boost, $ops_mm for OSSP mm (the slow heaps do fewer; their
time per operation is the figure).

$tables

### Whole-process runs (hyperfine)

Each command runs the handoff workload with $hf_ops chunks in a new
process: creating the heap, starting the two processes, tearing down.
Median of $hf_runs runs after a warm-up run.

$whole

$(cat bench/profile.md 2>/dev/null)

## Plots

![throughput against processes](bench-processes.png)

![throughput against fill](bench-fill.png)

## Commands

\`\`\`sh
$(quote "${configure_cmd[@]}")
$(quote "${build_cmd[@]}")
mkdir -p $out
$(quote "${bench_cmd[@]}") > $out/results.tsv
$(quote "${hf_cmd[@]}")
\`\`\`

\`$bin -h\` lists the options (heaps, workloads, sizes, capacity, seed,
fills, process counts).
EOF


# ---- locks ------------------------------------------------------------------
# shm_mutex against a process-shared pthread mutex, in the same run.
sync_figures() {
    say "locks: bench/sync_run.sh"
    {
        echo
        SYNC_BENCH_RUNS=$hf_runs bash bench/sync_run.sh $((hf_ops * 20))
    } >>"$report/benchmarks.md"
}
sync_figures

# ---- opening with many processes attached -----------------------------------
# open_benchmark N M: N child processes hold the arena open, then
# `open_bench open FILE M` opens and closes it M times and prints the median
# of one open + close; hyperfine times that whole process as well. Results
# go to build-bench/bench-results/open.txt and open.json.
#   SHM_BENCH_OPEN_ATTACHED [1000]   SHM_BENCH_OPEN_COUNT [1000]
open_benchmark() {
    local attached=$1 count=$2
    local ob=build-bench/bench/open_bench file=$heap_dir/open-bench.shm
    local results=build-bench/bench-results
    mkdir -p "$results"
    rm -f "$file"
    say "open with $attached processes attached ($count opens)"
    coproc holder { "$ob" hold "$file" "$attached"; }
    local line
    read -r line <&"${holder[0]}"
    [ "$line" = ready ] || { echo "open_bench: holders not ready" >&2; return 1; }
    "$ob" open "$file" "$count" | tee "$results/open.txt"
    hyperfine --warmup 1 --runs "$hf_runs" --export-json "$results/open.json" \
        "$ob open $file $count"
    eval "exec ${holder[1]}>&-"
    wait "$holder_PID" || true
    rm -f "$file"
}

open_benchmark "${SHM_BENCH_OPEN_ATTACHED:-1000}" "${SHM_BENCH_OPEN_COUNT:-1000}"

# ---- collection -------------------------------------------------------------
# collect_bench: shm_arena_collect of a 64 MiB arena holding
# SHM_BENCH_COLLECT_CHUNKS [1000000] small chunks, half of them reachable,
# against one pass over the same bitmap words (shm_arena_available) in the
# same run. Results go to build-bench/bench-results/collect.txt.
collect_benchmark() {
    local chunks=$1 results=build-bench/bench-results
    mkdir -p "$results"
    say "collect: 64 MiB, $chunks chunks"
    build-bench/bench/collect_bench "$heap_dir/collect-bench.shm" "$chunks" \
        "$reps" 64 | tee "$results/collect.txt"
}
collect_benchmark "${SHM_BENCH_COLLECT_CHUNKS:-1000000}"

# ---- threads and other private allocators -----------------------------------
# pair, churn, xmalloc and larson beside mimalloc and jemalloc, by
# bench/threads.sh: build-bench/bench-results/threads.md, appended here.
thread_figures() {
    say "thread figures: bench/threads.sh"
    SHM_BENCH_OPS=$ops SHM_BENCH_OPS_BOOST=$ops_boost SHM_BENCH_OPS_MM=$ops_mm \
        SHM_BENCH_REPS=$reps SHM_BENCH_DIR=$heap_dir bash bench/threads.sh
    {
        echo
        cat "$out/threads.md"
    } >>"$report/benchmarks.md"
}
thread_figures

# ---- end ------------------------------------------------------------------
say "done in ${elapsed} s: $report/benchmarks.md, $report/bench-processes.png, $report/bench-fill.png"

# ---- cache figures ----------------------------------------------------------
# shm_cache against a private hash table, LMDB, memcached and Boost, by
# bench/cache.sh (hyperfine): build-bench/bench-results/cache.md, and a
# section of docs/benchmarks.md with --update-docs.
cache_figures() {
    say "cache figures: bench/cache.sh $*"
    bash bench/cache.sh "$@"
}
cache_figures "$@"
