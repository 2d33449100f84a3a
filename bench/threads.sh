#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# The thread figures: pair, churn at 60%, producer/consumer (xmalloc) and
# server simulation (larson) for shm_alloc, glibc malloc, mimalloc,
# jemalloc, Boost.Interprocess and OSSP mm, in one shm_bench run (the heaps
# measured in interleaved rounds). bench/run.sh runs it (thread_figures)
# and appends the section to its report; alone:
#
#   bench/threads.sh                 writes build-bench/bench-results/threads.md
#   bench/threads.sh --quick         fewer operations and repetitions
#   bench/threads.sh --update-docs   also puts the section into
#                                    docs/benchmarks.md (replacing its old one)
#
# Expects what bench/run.sh installs (libmimalloc-dev and libjemalloc-dev
# among them; without one, shm_bench skips that heap and says so) and
# builds build-bench/bench/shm_bench with the `bench` preset.
#
# Environment, as for bench/run.sh: SHM_BENCH_OPS [1000000],
# SHM_BENCH_OPS_BOOST [100000], SHM_BENCH_OPS_MM [20000], SHM_BENCH_REPS [7],
# SHM_BENCH_DIR [/dev/shm, else /tmp].
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ops=${SHM_BENCH_OPS:-1000000}
ops_boost=${SHM_BENCH_OPS_BOOST:-100000}
ops_mm=${SHM_BENCH_OPS_MM:-20000}
reps=${SHM_BENCH_REPS:-7}
update_docs=false
for arg in "$@"; do
    case $arg in
    --quick) ops=200000 ops_boost=20000 ops_mm=5000 reps=3 ;;
    --update-docs) update_docs=true ;;
    *)
        sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'
        case $arg in -h | --help) exit 0 ;; *) exit 2 ;; esac
        ;;
    esac
done
say() { printf '\n== %s\n' "$*" >&2; }

cmake --preset bench >/dev/null
cmake --build --preset bench -j2 --target shm_bench >/dev/null
bin=build-bench/bench/shm_bench
out=build-bench/bench-results
mkdir -p "$out"
dir=${SHM_BENCH_DIR:-}
if [ -z "$dir" ]; then
    dir=/tmp
    [ -d /dev/shm ] && [ -w /dev/shm ] && dir=/dev/shm
fi

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date +%s)
cmd=("$bin" -a shm,glibc,mimalloc,jemalloc,boost,mm -n "$ops"
     -n "boost=$ops_boost" -n "mm=$ops_mm" -r "$reps" -f 60 -x 2:2 -l 2:5000
     -d "$dir" pair churn xmalloc larson)
say "thread figures: ${cmd[*]}"
# Progress to the terminal; the lines that say which library served which
# heap, and which heaps were skipped, also go into the report.
"${cmd[@]}" 2>&1 >"$out/results-threads.tsv" | tee "$out/threads.log" >&2
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed=$(($(date +%s) - started))

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src include bench 2>/dev/null ||
    commit="$commit (with uncommitted changes)"
version() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo unknown; }
served=$(sed -n 's/^shm_bench: \(.* serves the .*\)$/- \1/p' "$out/threads.log")
skipped=$(sed -n 's/^shm_bench: \(skipping .*\)$/- \1/p' "$out/threads.log")
tables=$(awk -f bench/threads.awk "$out/results-threads.tsv")
quoted=
for a in "${cmd[@]}"; do quoted+="${quoted:+ }$a"; done

cat >"$out/threads.md" <<EOF
## Threads, and other private-memory allocators

Measured by \`bench/threads.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') at
commit $commit; load average when it started / ended: $load_before /
$load_after ($(nproc) CPUs); it took ${elapsed} s. mimalloc
$(version libmimalloc-dev), jemalloc $(version libjemalloc-dev) (Debian
packages). Median of $reps repetitions; timed operations per repetition:
$ops for shm_alloc, glibc, mimalloc and jemalloc, $ops_boost for Boost,
$ops_mm for OSSP mm. Same capacity, sizes and touching as above.

- **pair** and **churn at 60%**: as above, one thread; here beside
  mimalloc and jemalloc.
- **producer/consumer (xmalloc)**: 2 producer threads allocate and pass
  each chunk, round robin, through a single-producer, single-consumer ring
  of 1024 slots (one per producer and consumer) to one of 2 consumer
  threads, which checks its first byte and frees it. Four threads on
  $(nproc) CPUs: oversubscribed on purpose, a waiting thread yields. Time
  per malloc + free pair, from the common start to the last thread's end.
- **server simulation (larson)**: 2 threads each hold an array of 5000
  live chunks; a step frees the chunk in a random slot and allocates the
  next request into it. After 5000 steps a thread passes its array to the
  next thread and takes the one passed to it, so chunks are mostly freed
  by a thread that did not allocate them. Time per replacement.

All threads of a run are in one process and share one heap handle (the
shm_alloc arena, the Boost segment). mimalloc and jemalloc are opened
with \`dlopen(RTLD_LOCAL | RTLD_DEEPBIND)\` beside glibc's malloc rather
than linked, since either would replace malloc in the whole program
(bench/heaps.h says how); at start shm_bench checks who serves the calls:

$served

${skipped:+Skipped:

$skipped
}
$tables

\`\`\`sh
$quoted > $out/results-threads.tsv
\`\`\`
EOF
say "wrote $out/threads.md"
if $update_docs; then
    # shellcheck source=doc_section.sh
    source bench/doc_section.sh
    bench_put_section docs/benchmarks.md \
        '^## Threads, and other private-memory allocators' "$out/threads.md" \
        '^## Cache \(shm_cache\)'
    say "updated docs/benchmarks.md"
fi
