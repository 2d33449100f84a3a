# SPDX-License-Identifier: BSD-2-Clause
# Sourced by scripts/*.sh and .ci/run: installing what a build needs.

# The packages a build with tests needs on Debian: scdoc converts
# man/*.scd (a build without it skips the pages, see man/); python3 and
# pytest run the binding's tests in python/.
SHM_BUILD_PACKAGES=(cmake make gcc libc6-dev pkg-config libcmocka-dev scdoc
    python3 python3-pytest)

# What bench/ needs beyond a build (bench/run.sh installs them): the
# compared heaps (OSSP mm, Boost.Interprocess; mimalloc and jemalloc, which
# shm_bench opens with dlopen and skips when missing), the cache
# benchmark's stores (LMDB, libmemcached and the memcached server), and the
# tools that time runs and draw the plots.
SHM_BENCH_PACKAGES=(cmake build-essential libmm-dev libboost-dev
    libmimalloc-dev libjemalloc-dev liblmdb-dev libmemcached-dev memcached
    hyperfine gnuplot-nox util-linux)

shm_say() {
    printf '==> %s\n' "$*"
}

# shm_install_packages PKG...: installs with apt-get those of the Debian
# packages that are missing (with sudo when not root).
shm_install_packages() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        shm_say "not a Debian system: make sure these are installed: $*"
        return 0
    fi
    local missing=() pkg
    for pkg in "$@"; do
        if [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null) != ii* ]]; then
            missing+=("$pkg")
        fi
    done
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    local sudo=()
    if [[ $(id -u) != 0 ]]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "error: need root or sudo to install: ${missing[*]}" >&2
            return 1
        fi
        sudo=(sudo)
    fi
    shm_say "installing ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# shm_quietly CMD...: runs CMD with its output kept aside; shows the output
# only when CMD fails.
shm_quietly() {
    local log rc=0
    log=$(mktemp "${TMPDIR:-/tmp}/shm-log.XXXXXX")
    "$@" >"$log" 2>&1 || rc=$?
    if ((rc != 0)); then
        cat "$log" >&2
    fi
    rm -f "$log"
    return "$rc"
}
