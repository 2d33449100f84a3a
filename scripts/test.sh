#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Installs what is missing, builds shm_alloc with its tests and runs the
# whole suite with ctest.
#
#   bash scripts/test.sh [CMAKE_OPTION...]
#
# Options are passed to cmake, e.g. -DSHM_MIN_ALLOC_POW2=4. The build goes
# to $SHM_BUILD_DIR (default: build/ in the source tree); $SHM_JOBS sets
# the parallelism (default 2).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=common.sh
source "$root/scripts/common.sh"
build=${SHM_BUILD_DIR:-$root/build}
jobs=${SHM_JOBS:-2}

shm_install_packages "${SHM_BUILD_PACKAGES[@]}"

shm_say "configuring in $build"
cmake -S "$root" -B "$build" -DSHM_BUILD_TESTS=ON "$@"
shm_say "building"
cmake --build "$build" -j "$jobs"
shm_say "running the tests"
# A user's own arena settings must not reach the tests.
env -u SHM_FILE -u SHM_SIZE \
    ctest --test-dir "$build" -j "$jobs" --output-on-failure --no-tests=error
