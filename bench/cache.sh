#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# The cache figures: shm_cache against a private hash table, LMDB,
# memcached and a Boost.Interprocess map, timed by hyperfine. bench/run.sh
# runs it last (cache_figures); alone:
#
#   bench/cache.sh                 writes build-bench/bench-results/cache.md
#   bench/cache.sh --quick         fewer operations and runs
#   bench/cache.sh --update-docs   also puts the section into
#                                  docs/benchmarks.md (replacing its old one)
#   bench/cache.sh --report-only   measure nothing: write the report again
#                                  from the results of the last run
#
# Expects what bench/run.sh installs (hyperfine, memcached, liblmdb-dev,
# libmemcached-dev, libboost-dev) and builds build-bench/bench/cache_bench
# with the `bench` preset. Starts memcached on a unix socket and stops it.
#
# Environment: SHM_BENCH_DIR (where the files go, default /dev/shm, else
# /tmp), SHM_BENCH_CACHE_OPS (gets, sets and mixed operations of the fast
# stores per run [300000]), SHM_BENCH_CACHE_OPS_MC (the same for memcached
# [20000]), SHM_BENCH_CACHE_ITEMS (keys inserted for the items figure
# [300000]).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ops=${SHM_BENCH_CACHE_OPS:-300000}
ops_mc=${SHM_BENCH_CACHE_OPS_MC:-20000}
items=${SHM_BENCH_CACHE_ITEMS:-300000}
runs=5
update_docs=false
report_only=false
for arg in "$@"; do
    case $arg in
    --quick) ops=100000 ops_mc=5000 items=150000 runs=3 ;;
    --update-docs) update_docs=true ;;
    --report-only) report_only=true ;;
    *)
        sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'
        case $arg in -h | --help) exit 0 ;; *) exit 2 ;; esac
        ;;
    esac
done
say() { printf '\n== %s\n' "$*" >&2; }

cmake --preset bench >/dev/null
cmake --build --preset bench -j2 --target cache_bench >/dev/null
bin=build-bench/bench/cache_bench
out=build-bench/bench-results
mkdir -p "$out"
dir=${SHM_BENCH_DIR:-}
if [ -z "$dir" ]; then
    dir=/tmp
    [ -d /dev/shm ] && [ -w /dev/shm ] && dir=/dev/shm
fi
work=$(mktemp -d "$dir/cache_bench.XXXXXX")
chmod 777 "$work" # memcached, run as nobody under root, makes its socket here
sock=$work/memcached.sock
mc_pid=
stop_memcached() {
    if [ -n "$mc_pid" ]; then
        kill "$mc_pid" 2>/dev/null || true
        wait "$mc_pid" 2>/dev/null || true
        mc_pid=
    fi
    rm -f "$sock"
}
cleanup() {
    stop_memcached
    rm -rf "$work"
}
trap cleanup EXIT
start_memcached() { # megabytes
    local user=()
    [ "$(id -u)" -ne 0 ] || user=(-u nobody)
    memcached "${user[@]}" -s "$sock" -a 0777 -m "$1" &
    mc_pid=$!
    for _ in $(seq 50); do
        [ -S "$sock" ] && return 0
        sleep 0.1
    done
    echo "cache.sh: memcached did not start" >&2
    return 1
}

if ! $report_only; then
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date +%s)
cb=("$bin" -d "$work" -s "$sock")
start_memcached 1024
say "filling the stores (100000 keys each)"
for s in shm lmdb memcached boost; do
    "${cb[@]}" "$s" fill
done

# Each figure is the difference of two medians: a run doing OPS operations
# and one doing none (opening the store; the private table fills itself in
# both), divided by OPS.
hf=(hyperfine -N -w 1 -r "$runs" --style basic)
cmds=()
add() { # name, command...
    cmds+=(-n "$1" "${*:2}")
}
for task in get set; do
    for s in shm private lmdb boost memcached; do
        n=$ops
        [ "$s" != memcached ] || n=$ops_mc
        add "$task/$s/0" "${cb[*]} -n 0 $s $task"
        add "$task/$s/$n" "${cb[*]} -n $n $s $task"
    done
done
add "view/shm/0" "${cb[*]} -n 0 shm view"
add "view/shm/$ops" "${cb[*]} -n $ops shm view"
for s in shm boost; do
    for p in 1 2; do
        add "mixed/$s-p$p/0" "${cb[*]} -p $p -n 0 $s mixed"
        add "mixed/$s-p$p/$ops" "${cb[*]} -p $p -n $ops $s mixed"
    done
done
say "hyperfine: ${#cmds[@]} arguments"
"${hf[@]}" --export-json "$out/cache-hyperfine.json" "${cmds[@]}" >&2
stop_memcached

say "items held in 64 MiB: $items keys inserted"
held_shm=$("${cb[@]}" -c 64 -k "$items" shm items)
start_memcached 64
held_mc=$("${cb[@]}" -k "$items" memcached items)
stop_memcached
# The same after three times as many keys: a full cache that has churned
# long (memcached's slabs hold about as many; its socket makes it too slow
# to fill three times over here).
held_shm_long=$("${cb[@]}" -c 64 -k $((3 * items)) shm items)
# held and failed sets of each, the keys inserted, then the long run's
echo "$held_shm $held_mc $items $held_shm_long" >"$out/cache-items.txt"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed=$(($(date +%s) - started))

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src include bench 2>/dev/null || commit="$commit (with uncommitted changes)"
printf '%s\n' "$load_before" "$load_after" "$elapsed" "$commit" \
    "$(date -u '+%Y-%m-%d %H:%M UTC')" "$ops $ops_mc $runs" >"$out/cache-run.txt"
fi
{
    read -r load_before
    read -r load_after
    read -r elapsed
    read -r commit
    read -r measured
    read -r ops ops_mc runs
} <"$out/cache-run.txt"
lmdb_version=$(dpkg-query -W -f '${Version}' liblmdb-dev 2>/dev/null || echo unknown)
mc_version=$(memcached -V | sed 's/^memcached //')
boost_version=$(sed -n 's/^#define BOOST_LIB_VERSION "\(.*\)"/\1/p' \
    /usr/include/boost/version.hpp)
read -r held_shm failed_shm held_mc failed_mc items held_long failed_long \
    <"$out/cache-items.txt"
section=$(awk -v held_shm="$held_shm" -v held_mc="$held_mc" -v items="$items" \
    -v failed_shm="$failed_shm" -v failed_mc="$failed_mc" \
    -v held_long="${held_long:-0}" -v failed_long="${failed_long:-0}" '
    /"command":/ { name = $0; sub(/.*"command": *"/, "", name); sub(/".*/, "", name) }
    /"median":/  { v = $2; gsub(/,/, "", v); med[name] = v }
    # per operation, in ns: (median with n ops - median with none) / n
    function per_op(task, s,    k, n) {
        for (k in med) {
            if (index(k, task "/" s "/") == 1 && k != task "/" s "/0") {
                n = substr(k, length(task "/" s "/") + 1)
                return (med[k] - med[task "/" s "/0"]) / n * 1e9
            }
        }
        return 0
    }
    function ops_of(task, s,    k) {
        for (k in med)
            if (index(k, task "/" s "/") == 1 && k != task "/" s "/0")
                return substr(k, length(task "/" s "/") + 1)
    }
    END {
        split("shm private lmdb boost memcached", order, " ")
        title["shm"] = "shm_cache"; title["private"] = "private hash table"
        title["lmdb"] = "LMDB"; title["boost"] = "Boost.Interprocess map"
        title["memcached"] = "memcached (unix socket)"
        print "| store | get: ns per op | get: time / shm_cache | set: ns per op | set: time / shm_cache |"
        print "|---|---|---|---|---|"
        for (i = 1; i <= 5; i++) {
            s = order[i]
            g = per_op("get", s); w = per_op("set", s)
            g0 = per_op("get", "shm"); w0 = per_op("set", "shm")
            printf "| %s | %.0f | %.2fx | %.0f | %.2fx |\n", title[s], g,
                   (g0 > 0 ? g / g0 : 0), w, (w0 > 0 ? w / w0 : 0)
        }
        print ""
        gp = per_op("get", "private"); wp = per_op("set", "private")
        gs = per_op("get", "shm"); ws = per_op("set", "shm")
        printf "Against the goals: get %.2fx the private table'"'"'s time (goal <= 1.1x), ", gs / gp
        printf "%.1fx LMDB'"'"'s throughput (>= 2x), %.0fx memcached'"'"'s (>= 40x); ", per_op("get", "lmdb") / gs, per_op("get", "memcached") / gs
        printf "set %.2fx the private table'"'"'s time (<= 1.3x), %.1fx LMDB'"'"'s throughput (>= 6x).\n", ws / wp, per_op("set", "lmdb") / ws
        print ""
        gv = per_op("view", "shm")
        if (gv > 0) {
            printf "A zero-copy get (`shm_cache_view`, the value checked where it lies, then `shm_cache_view_end`): %.0f ns, %.2fx the private table'"'"'s copying get.\n", gv, gv / gp
            print ""
        }
        print "| 90% get, 10% set | 1 process: Mops/s | 2 processes: Mops/s (aggregate) | 2 vs 1 |"
        print "|---|---|---|---|"
        split("shm boost", mix, " ")
        for (i = 1; i <= 2; i++) {
            s = mix[i]
            t1 = per_op("mixed", s "-p1"); t2 = per_op("mixed", s "-p2")
            # t2 is the span per operation of each process; two ran
            m1 = 1e3 / t1; m2 = 2e3 / t2
            printf "| %s | %.2f | %.2f | %.2fx |\n", title[s], m1, m2, m2 / m1
        }
        print ""
        printf "Items held in 64 MiB, of %d keys inserted once each: shm_cache %d (%.0f%%), memcached -m 64 %d (%.0f%%): %.2fx. ",
               items, held_shm, 100 * held_shm / items, held_mc, 100 * held_mc / items, (held_mc > 0 ? held_shm / held_mc : 0)
        printf "Sets refused with ENOMEM by the full store: shm_cache %d, memcached %d.\n", failed_shm, failed_mc
        if (held_long > 0) {
            print ""
            printf "After %d keys, a cache that has churned long: shm_cache holds %d (%.2fx memcached'"'"'s figure above), %d sets refused.\n",
                   3 * items, held_long, (held_mc > 0 ? held_long / held_mc : 0), failed_long
        }
    }' "$out/cache-hyperfine.json")

cat >"$out/cache.md" <<EOF
## Cache (shm_cache)

Measured by \`bench/cache.sh\` on $measured at commit
$commit; load average when it started / ended: $load_before /
$load_after ($(nproc) CPUs); it took ${elapsed} s. LMDB $lmdb_version,
memcached $mc_version, Boost $boost_version.

100000 keys of 16 to 64 bytes, values of 16 to 1000 bytes (log-uniform,
about 28 MB of keys and values), uniformly random accesses to keys that
are all present; every get checks the value's key, length and checksum.
shm_cache: a 256 MiB arena (\`SHM_ARENA_SPARSE\`), \`expected_items\`
100000. Private table: chained, one malloc per entry, a get copies the
value out. LMDB: one read transaction reset and renewed per get, one write
transaction per set, \`MDB_NOSYNC | MDB_WRITEMAP\`. memcached: started
with \`-s SOCKET -m 1024\`, libmemcached's \`memcached_get\`/\`memcached_set\`.
Boost.Interprocess: a \`boost::unordered_map\` in a managed_mapped_file,
every call under one \`interprocess_mutex\`. A set replaces the value of a
present key with a new one of a new random length.

Each figure is (median wall time of a run doing N operations - median of
a run doing none) / N, hyperfine, $runs runs after a warm-up; N = $ops,
$ops_mc for memcached. Wall time: on a busy machine the figures are
inflated alike for all stores, and the ratios within the run are the
figures to read.

$section

$(cat bench/cache_profile.md 2>/dev/null)

\`\`\`sh
bash bench/cache.sh        # as bench/run.sh runs it; raw: $out/cache-hyperfine.json
$bin                       # no arguments: its usage; see bench/cache_bench.c
\`\`\`
EOF
say "wrote $out/cache.md"
if $update_docs; then
    # shellcheck source=doc_section.sh
    source bench/doc_section.sh
    bench_put_section docs/benchmarks.md '^## Cache \(shm_cache\)' "$out/cache.md"
    say "updated docs/benchmarks.md"
fi
