#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# The installed package as its users see it: builds shm_alloc, installs it
# under a temporary prefix, moves the installed tree elsewhere (the package
# files must not depend on where it was installed), then builds and runs a
# consumer four ways (find_package and pkg-config, shared and static) and
# compiles a program written for the old API with plain `cc -lshm_alloc`.
# It also checks the manual pages: one for every exported function, found
# by `man` through MANPATH.
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
# Exactly the headers of include/ are public.
installed_headers=$(cd "$prefix/include" && find . -type f | sort)
public_headers=$(cd "$root/include" && find . -type f | sort)
[[ $installed_headers == "$public_headers" ]] ||
    fail "installed headers: $(echo $installed_headers), include/ has: $(echo $public_headers)"
soname=$(readelf -d "$libdir/libshm_alloc.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ $soname =~ ^libshm_alloc\.so\.[0-9]+$ ]] || fail "SONAME is '$soname'"
[[ -e $libdir/$soname ]] || fail "$soname is not installed"
step "installed: header, $soname, libshm_alloc.a, CMake package, pkg-config files"

# The tool runs from the moved tree and needs no library path.
[[ -x $prefix/bin/shm-stat ]] || fail "bin/shm-stat is not installed"
"$prefix/bin/shm-stat" --version >/dev/null || fail "bin/shm-stat does not run"
step "installed: bin/shm-stat"

# Manual pages: one per man/*.scd, and a link for every exported function.
for f in share/man/man3/shm_alloc.3 share/man/man3/shm_malloc.3 \
    share/man/man3/shm_arena_open.3 share/man/man3/shm_version.3 \
    share/man/man1/shm-stat.1; do
    [[ -e $prefix/$f ]] || fail "$f is not installed"
done
for src in "$root"/man/*.scd; do
    page=$(basename "$src" .scd)
    [[ -f $prefix/share/man/man${page##*.}/$page ]] ||
        fail "share/man/man${page##*.}/$page is not installed"
done
missing_pages=()
while read -r _ type name; do
    if [[ $type == T && ! -e $prefix/share/man/man3/$name.3 ]]; then
        missing_pages+=("$name")
    fi
done < <(nm -D --defined-only "$libdir/libshm_alloc.so")
((${#missing_pages[@]} == 0)) || fail "no manual page for: ${missing_pages[*]}"
if command -v man >/dev/null 2>&1; then
    # As a user finds them: by name through MANPATH, no man-db index needed.
    for name in shm_malloc shm-stat; do
        page=$(MANPATH=$prefix/share/man man -w "$name") ||
            fail "MANPATH=$prefix/share/man man -w $name finds nothing"
        MANPATH=$prefix/share/man MANPAGER=cat man "$name" 2>/dev/null |
            grep -q "^NAME" || fail "man $name does not render ($page)"
    done
    step "man shm_malloc and man shm-stat work with MANPATH=$prefix/share/man"
else
    step "installed: the manual pages (man is not installed: not rendered)"
fi

# shellcheck source=consumers.sh
source "$here/consumers.sh"
check_consumers "$prefix" "$libdir" "$work"

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
