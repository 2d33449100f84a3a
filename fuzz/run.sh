#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# Builds the libFuzzer targets with clang and runs each for a bounded time.
#   fuzz/run.sh [SECONDS]      total time, split between the four targets
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_JOBS (default 2),
# SHM_FUZZ_SEED (the seed of every target's mutations, default 1).
# Prints the executions of each target; exits non-zero on any finding.
set -eu
seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=${FUZZ_JOBS:-2}

if ! command -v clang >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get install -y -q clang >/dev/null
    else
        echo "fuzz/run.sh: needs clang (apt-get install clang)" >&2
        exit 1
    fi
fi

CC=clang cmake -S "$root" -B "$build" -DSHM_BUILD_FUZZ=ON \
    -DSHM_BUILD_TESTS=OFF -DSHM_BUILD_EXAMPLES=OFF -DSHM_BUILD_TOOLS=OFF \
    -DSHM_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$jobs" \
    --target fuzz_attach fuzz_api fuzz_damage fuzz_cache fuzz_make_seed \
    >/dev/null

work=$build/fuzz-work
mkdir -p "$work/attach" "$work/api" "$work/damage" "$work/cache" \
    "$work/seeds-attach" "$work/seeds-api" "$work/seeds-cache" \
    "$work/scratch" "$work/crashes"
unset SHM_FILE SHM_SIZE
export SHM_FUZZ_DIR="$work/scratch"
"$build/fuzz/fuzz_make_seed" "$work/seeds-attach" "$work/seeds-api"
max_len=$(wc -c <"$work/seeds-attach/valid-larger.shm")

each=$((seconds / 4))
[ "$each" -ge 1 ] || each=1
status=0
# Each target's mutations start from a fixed seed ($SHM_FUZZ_SEED, default
# 1), so that what a run found can be found again; another seed explores
# elsewhere.
seed=${SHM_FUZZ_SEED:-1}
run() { # name, max_len, corpus, seeds
    log=$work/$1.log
    if "$build/fuzz/$1" -seed="$seed" -max_total_time="$each" -max_len="$2" \
        -print_final_stats=1 -artifact_prefix="$work/crashes/$1-" \
        "$3" "$4" >"$log" 2>&1; then
        result=ok
    else
        result=FAILED
        status=1
        tail -n 40 "$log" >&2
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    echo "$1: $result, ${execs:-0} executions in ${each} s" \
        "(corpus $(ls "$3" | wc -l) inputs, log $log)"
}
run fuzz_attach "$max_len" "$work/attach" "$work/seeds-attach"
run fuzz_api 4096 "$work/api" "$work/seeds-api"
run fuzz_damage 4096 "$work/damage" "$work/seeds-api"
run fuzz_cache 4096 "$work/cache" "$work/seeds-cache"
exit $status
