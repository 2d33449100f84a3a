#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# The Debian packages as their users see them: builds shm_alloc for the
# prefix /usr, makes the three packages with `cpack -G DEB`, checks their
# names, contents and dependencies, unpacks them with `dpkg -x` into a
# scratch root (nothing is installed on the machine), then builds and runs
# the consumer against the unpacked dev package with find_package and
# pkg-config, runs the unpacked shm-stat, and renders the manual pages.
#
#   bash tests/package/deb.sh WORK_DIR [CMAKE_OPTION...]
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
unset SHM_FILE SHM_SIZE

fail() {
    echo "deb test: $*" >&2
    exit 1
}
step() {
    printf -- '--> %s\n' "$*"
}

# shellcheck source=../../scripts/common.sh
source "$root/scripts/common.sh"
# dpkg-shlibdeps (dpkg-dev) and file find the packages' dependencies.
shm_install_packages "${SHM_BUILD_PACKAGES[@]}" dpkg-dev file binutils

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
version=$(sed -n 's/^project(shm_alloc VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
major=${version%%.*}
[[ -n $version ]] || fail "no project(VERSION) in CMakeLists.txt"

step "building for /usr and packaging (version $version)"
cmake -S "$root" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX=/usr -DSHM_BUILD_TESTS=OFF \
    -DSHM_BUILD_EXAMPLES=OFF "$@" >"$work/configure.log"
cmake --build "$work/build" -j "$jobs" >"$work/build.log"
(cd "$work/build" && cpack -G DEB) >"$work/cpack.log" 2>&1 || {
    cat "$work/cpack.log" >&2
    fail "cpack failed"
}
arch=$(dpkg --print-architecture)
runtime=libshm-alloc$major
declare -A debs=(
    [$runtime]=$work/build/${runtime}_${version}_$arch.deb
    [libshm-alloc-dev]=$work/build/libshm-alloc-dev_${version}_$arch.deb
    [shm-alloc-tools]=$work/build/shm-alloc-tools_${version}_$arch.deb
)
for name in "${!debs[@]}"; do
    deb=${debs[$name]}
    [[ -f $deb ]] || fail "no $(basename "$deb") (see $work/cpack.log)"
    [[ $(dpkg-deb -f "$deb" Package) == "$name" ]] || fail "$deb is not $name"
    [[ $(dpkg-deb -f "$deb" Version) == "$version" ]] || fail "$name is not $version"
done
step "built: ${!debs[*]}"

# contents PACKAGE: the paths it holds, one a line, without the leading ./
contents() {
    dpkg-deb -c "${debs[$1]}" | awk '{ print $6 }' | sed 's|^\./||'
}
# holds PACKAGE REGEX...: fails unless the package holds a path for each.
holds() {
    local pkg=$1 list
    shift
    list=$(contents "$pkg")
    for re in "$@"; do
        grep -Eq "$re" <<<"$list" || fail "$pkg holds nothing matching $re"
    done
}
# holds_none PACKAGE REGEX: fails when the package holds a matching path.
holds_none() {
    if contents "$1" | grep -Eq "$2"; then
        fail "$1 holds $(contents "$1" | grep -E "$2" | head -1)"
    fi
}
multiarch='usr/lib/[a-z0-9_]+-linux-gnu[a-z0-9_]*/'
holds "$runtime" "^${multiarch}libshm_alloc\.so\.$major\$" \
    "^${multiarch}libshm_alloc\.so\.$version\$" \
    "^usr/share/doc/$runtime/copyright\$"
holds_none "$runtime" '\.a$|\.h$|\.so$|/pkgconfig/|/cmake/|/man/|^usr/bin/'
holds libshm-alloc-dev '^usr/include/shm_alloc\.h$' \
    '^usr/include/shm_alloc_version\.h$' "^${multiarch}libshm_alloc\.so\$" \
    "^${multiarch}libshm_alloc\.a\$" "^${multiarch}pkgconfig/shm_alloc\.pc\$" \
    "^${multiarch}pkgconfig/shm_alloc-static\.pc\$" \
    "^${multiarch}cmake/shm_alloc/shm_alloc-config\.cmake\$" \
    '^usr/share/man/man3/shm_alloc\.3$' '^usr/share/man/man3/shm_malloc\.3$'
holds_none libshm-alloc-dev "\.so\.[0-9]|^usr/bin/|/man1/"
holds shm-alloc-tools '^usr/bin/shm-stat$' '^usr/share/man/man1/shm-stat\.1$'
holds_none shm-alloc-tools 'libshm_alloc|^usr/include/|/man3/'
step "contents: runtime library / dev files and man3 / shm-stat and man1"

dev_depends=$(dpkg-deb -f "${debs[libshm-alloc-dev]}" Depends)
[[ $dev_depends == *"$runtime (= $version)"* ]] ||
    fail "libshm-alloc-dev depends on '$dev_depends', not on $runtime (= $version)"
tools_depends=$(dpkg-deb -f "${debs[shm-alloc-tools]}" Depends)
[[ $tools_depends != *libshm-alloc* ]] ||
    fail "shm-alloc-tools depends on '$tools_depends': it is linked statically"
for name in "$runtime" shm-alloc-tools; do
    [[ $(dpkg-deb -f "${debs[$name]}" Depends) == *libc6* ]] ||
        fail "$name does not depend on libc6"
done
shlibs=$(dpkg-deb --ctrl-tarfile "${debs[$runtime]}" | tar -xOf - ./shlibs)
[[ $shlibs == "libshm_alloc $major $runtime"* ]] ||
    fail "$runtime's shlibs file says '$shlibs'"
step "dependencies: dev on $runtime (= $version); tools on libc only; shlibs '$shlibs'"

step "unpacking into $work/root with dpkg -x"
for name in "${!debs[@]}"; do
    dpkg -x "${debs[$name]}" "$work/root"
done
pc=$(find "$work/root" -name shm_alloc.pc -path '*/pkgconfig/*')
libdir=$(dirname "$(dirname "$pc")")
[[ -e $libdir/libshm_alloc.so.$major ]] || fail "the unpacked runtime has no libshm_alloc.so.$major"
[[ $(readlink "$libdir/libshm_alloc.so") == "libshm_alloc.so.$major" ]] ||
    fail "libshm_alloc.so links to '$(readlink "$libdir/libshm_alloc.so")'"

# shellcheck source=consumers.sh
source "$here/consumers.sh"
check_consumers "$work/root/usr" "$libdir" "$work/consumers"

"$work/root/usr/bin/shm-stat" --version | grep -q "^shm-stat $version " ||
    fail "the unpacked shm-stat does not report version $version"
if readelf -d "$work/root/usr/bin/shm-stat" | grep -q 'NEEDED.*libshm_alloc'; then
    fail "shm-stat needs libshm_alloc.so"
fi
step "shm-stat runs from the unpacked package, without libshm_alloc.so"

if command -v man >/dev/null 2>&1; then
    for name in shm_malloc shm_arena_open shm_version shm-stat; do
        MANPATH=$work/root/usr/share/man MANPAGER=cat man "$name" 2>/dev/null |
            grep -q "^NAME" || fail "man $name does not render from the package"
    done
    step "man shm_malloc, shm_arena_open, shm_version, shm-stat render from the package"
fi
echo "deb test: passed"
