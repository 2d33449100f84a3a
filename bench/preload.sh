#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Whole programs with their malloc replaced by LD_PRELOAD: glibc's own,
# jemalloc, mimalloc and shm_alloc (libshm_preload.so, bench/preload.c:
# the default arena serves every request up to 2^MAX), timed by hyperfine.
# The programs are Python on a JSON workload, sort on 600000 lines, and
# shm_bench's pair, xmalloc and larson workloads run with its glibc heap,
# whose malloc the preload replaces. Alone:
#
#   bench/preload.sh                 writes build-bench/bench-results/preload.md
#   bench/preload.sh --quick         fewer runs
#   bench/preload.sh --update-docs   also puts the section into
#                                    docs/benchmarks.md (replacing its old one)
#
# Expects what bench/run.sh installs (hyperfine, libjemalloc-dev,
# libmimalloc-dev; a missing one is skipped and said so) and builds the
# `bench` preset. Environment: SHM_BENCH_DIR [/dev/shm, else /tmp].
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs=7
update_docs=false
for arg in "$@"; do
    case $arg in
    --quick) runs=3 ;;
    --update-docs) update_docs=true ;;
    *)
        sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'
        case $arg in -h | --help) exit 0 ;; *) exit 2 ;; esac
        ;;
    esac
done
say() { printf '\n== %s\n' "$*" >&2; }

cmake --preset bench >/dev/null
cmake --build --preset bench -j2 --target shm_bench shm_preload >/dev/null
bench=$root/build-bench/bench/shm_bench
shim=$root/build-bench/libshm_preload.so
out=build-bench/bench-results
mkdir -p "$out"
dir=${SHM_BENCH_DIR:-}
if [ -z "$dir" ]; then
    dir=/tmp
    [ -d /dev/shm ] && [ -w /dev/shm ] && dir=/dev/shm
fi
heap=$dir/preload_bench.heap
python=$(command -v python3.11 || command -v python3 || true)
[ -x /usr/bin/python3 ] && python=/usr/bin/python3

# The allocators: name and what LD_PRELOAD gets ("" for glibc's own).
names=(glibc) preloads=("")
for lib in jemalloc mimalloc; do
    so=$(ls /usr/lib/*-linux-gnu/lib$lib.so.2 2>/dev/null | head -1 || true)
    if [ -n "$so" ]; then
        names+=("$lib") preloads+=("$so")
    else
        say "no lib$lib.so.2: skipped (apt-get install lib$lib-dev)"
    fi
done
names+=(shm_alloc) preloads+=("$shim")

# The programs: name and command line.
sort_input=$out/preload-sort.txt
awk 'BEGIN { srand(1); for (i = 0; i < 600000; i++) printf "%d %d\n", int(rand() * 1e9), i }' \
    >"$sort_input"
programs=() commands=()
if [ -n "$python" ]; then
    programs+=(python-json)
    commands+=("$python -S -c 'import json; d = {str(i): [i] * (i % 17) for i in range(150000)}; s = json.dumps(d); assert len(json.loads(s)) == 150000'")
fi
programs+=(sort pair xmalloc larson)
commands+=("sort -n -o /dev/null $sort_input"
           "$bench -q -a glibc -r 1 -n 10000000 -d $dir pair"
           "$bench -q -a glibc -r 1 -n 3000000 -x 2:2 -d $dir xmalloc"
           "$bench -q -a glibc -r 1 -n 4000000 -l 2:5000 -d $dir larson")

# shm_alloc's heap file is made before each run (hyperfine --prepare),
# not timed: 64 MiB, as a program's heap.
prepare=$out/preload-prepare.sh
cat >"$prepare" <<EOF
#!/bin/sh
rm -f $heap
SHM_FILE=$heap SHM_SIZE=64M LD_PRELOAD=$shim /bin/true
EOF
chmod +x "$prepare"

started=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
json=$out/preload-hyperfine.json
args=()
for p in "${!programs[@]}"; do
    for a in "${!names[@]}"; do
        env="env"
        if [ -n "${preloads[a]}" ]; then
            env+=" LD_PRELOAD=${preloads[a]}"
            [ "${names[a]}" = shm_alloc ] && env+=" SHM_FILE=$heap"
        fi
        args+=(--prepare "$prepare" -n "${programs[p]} ${names[a]}"
               "$env ${commands[p]}")
    done
done
say "hyperfine: ${#programs[@]} programs x ${#names[@]} allocators"
hyperfine -w 1 -r "$runs" --style basic --export-json "$json" "${args[@]}" >&2
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed=$(($(date +%s) - started))

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src include bench 2>/dev/null ||
    commit="$commit (with uncommitted changes)"
table=$(python3 - "$json" "${names[*]}" <<'EOF'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
names = sys.argv[2].split()
median = {r["command"]: r["median"] for r in results}
programs = []
for r in results:
    p = r["command"].rsplit(" ", 1)[0]
    if p not in programs:
        programs.append(p)
print("| program | " + " | ".join(f"{n} (s)" for n in names) +
      " | shm_alloc / glibc |")
print("|---|" + "---|" * (len(names) + 1))
for p in programs:
    t = [median[f"{p} {n}"] for n in names]
    print(f"| {p} | " + " | ".join(f"{x:.3f}" for x in t) +
          f" | {t[-1] / t[0]:.2f}x |")
EOF
)

cat >"$out/preload.md" <<EOF
## Whole programs, malloc replaced by LD_PRELOAD

Measured by \`bench/preload.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') at
commit $commit; load average when it started / ended: $load_before /
$load_after ($(nproc) CPUs); it took ${elapsed} s. Wall time of the whole
program, median of $runs runs after a warm-up (hyperfine). jemalloc and
mimalloc are Debian's shared libraries; shm_alloc is
\`build-bench/libshm_preload.so\` (bench/preload.c) on a 64 MiB heap file
made before each run, untimed: it serves every request up to 2^MAX and
passes larger ones to glibc.

- **python-json**: Python builds a dict of 150000 lists, dumps it to JSON
  and loads it back (small objects, one thread).
- **sort**: \`sort -n\` of 200000 lines (one thread).
- **pair**, **xmalloc**, **larson**: shm_bench's workloads with its glibc
  heap (as in the thread figures), whose malloc the preload replaces;
  whole-program time, setup included.

$table

\`\`\`sh
bash bench/preload.sh   # raw: $json
\`\`\`
EOF
say "wrote $out/preload.md"
if $update_docs; then
    # shellcheck source=doc_section.sh
    source bench/doc_section.sh
    bench_put_section docs/benchmarks.md \
        '^## Whole programs, malloc replaced by LD_PRELOAD' "$out/preload.md" \
        '^## Cache \(shm_cache\)'
    say "updated docs/benchmarks.md"
fi
