#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Installs what is missing, builds shm_alloc and runs the demo: one process
# writes a list of strings into an arena file, a second process attaches the
# same file, prints the list and answers through the same file.
#
#   bash scripts/demo.sh [TEXT...]
#
# The build goes to $SHM_BUILD_DIR (default: build/ in the source tree).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=common.sh
source "$root/scripts/common.sh"
build=${SHM_BUILD_DIR:-$root/build}
jobs=${SHM_JOBS:-2}

shm_install_packages "${SHM_BUILD_PACKAGES[@]}"

shm_say "configuring in $build"
shm_quietly cmake -S "$root" -B "$build" -DSHM_BUILD_EXAMPLES=ON
shm_say "building"
shm_quietly cmake --build "$build" -j "$jobs" --target two_processes

dir=$(mktemp -d "${TMPDIR:-/tmp}/shm-demo.XXXXXX")
trap 'rm -rf "$dir"' EXIT
file=$dir/demo.shm
shm_say "running the demo on $file"
echo
env -u SHM_FILE -u SHM_SIZE "$build/examples/two_processes" "$file" "$@"
echo
rm -f "$file"
shm_say "removed $file"
