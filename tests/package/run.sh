#!/usr/bin/env bash
# The installed package as its users see it: builds shm_alloc, installs it
# under a temporary prefix, moves the installed tree elsewhere (the package
# files must not depend on where it was installed), then builds and runs a
# consumer four ways (find_package and pkg-config, shared and static) and
# compiles a program written for the old API with plain `cc -lshm_alloc`.
#
#   bash tests/package/run.sh WORK_DIR [CMAKE_OPTION...]
#
# Everything is created under WORK_DIR, which is emptied first.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
if (($# < 1)); then
    echo "usage: $0 WORK_DIR [CMAKE_OPTION...]" >&2
    exit 2
fi
work=$1
shift
jobs=${SHM_JOBS:-2}
cc=${CC:-cc}
# Arena files of the programs below must not come from the environment.
unset SHM_FILE SHM_SIZE

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
installed=$work/installed
prefix=$work/prefix

fail() {
    echo "package test: $*" >&2
    exit 1
}
step() {
    printf -- '--> %s\n' "$*"
}

step "building and installing into $installed"
cmake -S "$root" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
    -DSHM_BUILD_TESTS=OFF -DSHM_BUILD_EXAMPLES=OFF "$@" >"$work/configure.log"
cmake --build "$work/build" -j "$jobs" >"$work/build.log"
cmake --install "$work/build" --prefix "$installed" >"$work/install.log"
mv "$installed" "$prefix"
step "installed tree moved to $prefix"

pc=$(find "$prefix" -name shm_alloc.pc -path '*/pkgconfig/*')
[[ -n $pc ]] || fail "no shm_alloc.pc installed"
libdir=$(dirname "$(dirname "$pc")")
for f in include/shm_alloc.h; do
    [[ -f $prefix/$f ]] || fail "$f is not installed"
done
for f in libshm_alloc.so libshm_alloc.a pkgconfig/shm_alloc-static.pc \
    cmake/shm_alloc/shm_alloc-config.cmake \
    cmake/shm_alloc/shm_alloc-config-version.cmake \
    cmake/shm_alloc/shm_alloc-targets.cmake; do
    [[ -e $libdir/$f ]] || fail "${libdir#"$prefix"/}/$f is not installed"
done
headers=$(find "$prefix/include" -type f | wc -l)
((headers == 1)) || fail "$headers headers installed, only shm_alloc.h is public"
soname=$(readelf -d "$libdir/libshm_alloc.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ $soname =~ ^libshm_alloc\.so\.[0-9]+$ ]] || fail "SONAME is '$soname'"
[[ -e $libdir/$soname ]] || fail "$soname is not installed"
step "installed: header, $soname, libshm_alloc.a, CMake package, pkg-config files"

# The tool runs from the moved tree and needs no library path.
[[ -x $prefix/bin/shm-stat ]] || fail "bin/shm-stat is not installed"
"$prefix/bin/shm-stat" --version >/dev/null || fail "bin/shm-stat does not run"
step "installed: bin/shm-stat"

# needs_shared EXE yes|no: whether EXE loads libshm_alloc.so at run time.
needs_shared() {
    local needed=no
    if readelf -d "$1" | grep -q "(NEEDED).*\[libshm_alloc\.so"; then
        needed=yes
    fi
    [[ $needed == "$2" ]] || fail "$1: NEEDED libshm_alloc.so is '$needed', expected '$2'"
}
# run NAME EXE: runs EXE on a fresh arena file and checks that it worked.
run() {
    local out
    rm -f "$work/$1.shm"
    out=$(LD_LIBRARY_PATH=$libdir "$2" "$work/$1.shm") ||
        fail "$1 failed: $out"
    [[ $out == "consumer: ok" ]] || fail "$1 printed '$out'"
    rm -f "$work/$1.shm"
    step "$1: ok"
}

step "find_package(shm_alloc CONFIG)"
cmake -S "$here" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_FLAGS="-Wall -Wextra -Wpedantic -Werror" >"$work/consumer.log"
cmake --build "$work/consumer" -j "$jobs" >>"$work/consumer.log"
needs_shared "$work/consumer/consumer_shared" yes
needs_shared "$work/consumer/consumer_static" no
run cmake-shared "$work/consumer/consumer_shared"
run cmake-static "$work/consumer/consumer_static"

step "pkg-config"
export PKG_CONFIG_PATH=$libdir/pkgconfig
[[ $(pkg-config --variable=libdir shm_alloc) -ef $libdir ]] ||
    fail "pkg-config's libdir is $(pkg-config --variable=libdir shm_alloc)"
range=(-DSHM_EXPECT_MIN_POW2="$(pkg-config --variable=min_alloc_pow2 shm_alloc)"
    -DSHM_EXPECT_MAX_POW2="$(pkg-config --variable=max_alloc_pow2 shm_alloc)")
flags=(-std=c11 -Wall -Wextra -Wpedantic -Werror)
# shellcheck disable=SC2046 # pkg-config's output is a list of words
$cc "${flags[@]}" "${range[@]}" "$here/consumer.c" -o "$work/pc_shared" \
    $(pkg-config --cflags --libs shm_alloc)
# shellcheck disable=SC2046
$cc "${flags[@]}" "${range[@]}" "$here/consumer.c" -o "$work/pc_static" \
    $(pkg-config --cflags --libs shm_alloc-static)
needs_shared "$work/pc_shared" yes
needs_shared "$work/pc_static" no
run pkg-config-shared "$work/pc_shared"
run pkg-config-static "$work/pc_static"

step "a program written for the old API: cc old_api_example.c -lshm_alloc"
mkdir -p "$work/old_api"
(
    cd "$work/old_api"
    CPATH=$prefix/include LIBRARY_PATH=$libdir \
        $cc "$here/old_api_example.c" -o old_api_example -lshm_alloc
    out=$(LD_LIBRARY_PATH=$libdir ./old_api_example) ||
        fail "old_api_example failed: $out"
    [[ $out =~ ^offset\ [1-9][0-9]*:\ a\ string\ in\ shared\ memory$ ]] ||
        fail "old_api_example printed '$out'"
    [[ ! -e old_api_example.shm ]] || fail "old_api_example left its file"
)
step "old_api_example: ok"

if command -v c++ >/dev/null 2>&1; then
    echo '#include <shm_alloc.h>' |
        c++ -x c++ -fsyntax-only -Wall -Wextra -Werror -I"$prefix/include" - ||
        fail "shm_alloc.h does not compile as C++"
    step "shm_alloc.h compiles as C++"
fi
echo "package test: passed"
