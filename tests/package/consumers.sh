# SPDX-License-Identifier: BSD-2-Clause
# Sourced by tests/package/run.sh and deb.sh: builds consumer.c against an
# installed shm_alloc four ways (find_package and pkg-config, shared and
# static) and runs each. Needs fail, step, $here, $jobs and $cc.

# needs_shared EXE yes|no: whether EXE loads libshm_alloc.so at run time.
needs_shared() {
    local needed=no
    if readelf -d "$1" | grep -q "(NEEDED).*\[libshm_alloc\.so"; then
        needed=yes
    fi
    [[ $needed == "$2" ]] || fail "$1: NEEDED libshm_alloc.so is '$needed', expected '$2'"
}

# run_consumer NAME EXE LIBDIR: runs EXE on a fresh arena file and checks
# that it worked.
run_consumer() {
    local out file
    file=$(dirname "$2")/$1.shm
    rm -f "$file"
    out=$(LD_LIBRARY_PATH=$3 "$2" "$file") || fail "$1 failed: $out"
    [[ $out == "consumer: ok" ]] || fail "$1 printed '$out'"
    rm -f "$file"
    step "$1: ok"
}

# check_consumers PREFIX LIBDIR OUT_DIR: the installed tree at PREFIX, its
# libraries in LIBDIR; everything built goes to OUT_DIR.
check_consumers() {
    local prefix=$1 libdir=$2 out=$3
    mkdir -p "$out"
    step "find_package(shm_alloc CONFIG)"
    cmake -S "$here" -B "$out/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_C_FLAGS="-Wall -Wextra -Wpedantic -Werror" >"$out/consumer.log"
    cmake --build "$out/consumer" -j "$jobs" >>"$out/consumer.log"
    needs_shared "$out/consumer/consumer_shared" yes
    needs_shared "$out/consumer/consumer_static" no
    run_consumer cmake-shared "$out/consumer/consumer_shared" "$libdir"
    run_consumer cmake-static "$out/consumer/consumer_static" "$libdir"

    step "pkg-config"
    local PKG_CONFIG_PATH=$libdir/pkgconfig
    export PKG_CONFIG_PATH
    [[ $(pkg-config --variable=libdir shm_alloc) -ef $libdir ]] ||
        fail "pkg-config's libdir is $(pkg-config --variable=libdir shm_alloc)"
    local range flags
    range=(-DSHM_EXPECT_MIN_POW2="$(pkg-config --variable=min_alloc_pow2 shm_alloc)"
        -DSHM_EXPECT_MAX_POW2="$(pkg-config --variable=max_alloc_pow2 shm_alloc)")
    flags=(-std=c11 -Wall -Wextra -Wpedantic -Werror)
    # shellcheck disable=SC2046 # pkg-config's output is a list of words
    $cc "${flags[@]}" "${range[@]}" "$here/consumer.c" -o "$out/pc_shared" \
        $(pkg-config --cflags --libs shm_alloc)
    # shellcheck disable=SC2046
    $cc "${flags[@]}" "${range[@]}" "$here/consumer.c" -o "$out/pc_static" \
        $(pkg-config --cflags --libs shm_alloc-static)
    needs_shared "$out/pc_shared" yes
    needs_shared "$out/pc_static" no
    run_consumer pkg-config-shared "$out/pc_shared" "$libdir"
    run_consumer pkg-config-static "$out/pc_static" "$libdir"
}
