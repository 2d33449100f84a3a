#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Compiles and runs one C block of a Markdown guide, so that the guide
# cannot drift from the library.
#
#   run_block.sh GUIDE INDEX WORK_DIR CC LIBRARY INCLUDE_DIR [CC_FLAG...]
#
# INDEX counts the guide's C blocks from 1. A block fenced as ```c is a
# whole program; one fenced as ```c fragment is a list of statements, run
# inside main() with the default arena attached to a fresh file, and must
# give back everything it allocated (shm_available() as before,
# shm_check() == 0). Either must exit with status 0. Compiler messages
# point at the guide's own lines (#line). The program runs in an empty
# directory with $SHM_FILE unset and $SHM_SIZE=4M.
set -euo pipefail

if (($# < 6)); then
    echo "usage: $0 GUIDE INDEX WORK_DIR CC LIBRARY INCLUDE_DIR [CC_FLAG...]" >&2
    exit 2
fi
guide=$1 index=$2 work=$3 cc=$4 library=$5 include=$6
shift 6

rm -rf "$work"
mkdir -p "$work/run"
block=$work/block.txt
info=$(awk -v want="$index" -v out="$block" '
    !inside && /^```c( |$)/ { n++; inside = 1
                              if (n == want) { print NR " " $2; found = 1 }
                              next }
    inside && /^```[ \t]*$/ { inside = 0; next }
    inside && n == want     { print > out }
    END { if (!found) exit 1 }' "$guide") || {
    echo "$guide has no C block number $index" >&2
    exit 1
}
read -r fence kind <<<"$info"
first=$((fence + 1))
name=$(basename "$guide")
src=$work/block.c

case $kind in
"")
    {
        printf '#line %d "%s"\n' "$first" "$name"
        cat "$block"
    } >"$src"
    ;;
fragment)
    {
        cat <<'WRAP'
#define _POSIX_C_SOURCE 200809L
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <shm_alloc.h>

int main(void)
{
    if (!shm_init(NULL, "guide.shm")) {
        perror("shm_init");
        return 1;
    }
    size_t available_before = shm_available();
    {
WRAP
        printf '#line %d "%s"\n' "$first" "$name"
        cat "$block"
    } >"$src"
    # The rest of the wrapper is reported under its own name and lines.
    printf '#line %d "fragment-wrapper.c"\n' $(($(wc -l <"$src") + 2)) >>"$src"
    {
        cat <<'WRAP'
    }
    int bad_words = shm_check();
    size_t available_after = shm_available();
    shm_deinit();
    remove("guide.shm");
    if (bad_words != 0 || available_after != available_before) {
        fprintf(stderr, "the fragment left the arena changed: shm_check() "
                        "%d, %zu bytes free instead of %zu\n",
                bad_words, available_after, available_before);
        return 1;
    }
    return 0;
}
WRAP
    } >>"$src"
    ;;
*)
    echo "$name:$fence: unknown kind of C block '$kind'" >&2
    exit 1
    ;;
esac

echo "$name:$fence: ${kind:-program}, $(wc -l <"$block") lines"
"$cc" -std=c11 -Wall -Wextra -Wpedantic -Wundef -Wshadow -Werror \
    -I"$include" "$@" "$src" -o "$work/block" \
    "$library" -Wl,-rpath,"$(dirname "$library")" -pthread
cd "$work/run"
status=0
env -u SHM_FILE SHM_SIZE=4M "$work/block" || status=$?
if ((status != 0)); then
    echo "$name:$fence: the block exited with status $status" >&2
    exit 1
fi
leftover=$(ls -A)
if [[ -n $leftover ]]; then
    echo "$name:$fence: the block left files behind: $leftover" >&2
    exit 1
fi
