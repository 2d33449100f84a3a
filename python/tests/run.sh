#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Runs the binding's pytest suite (ctest's python_binding) with the first
# interpreter that has pytest: $SHM_PYTHON, /usr/bin/python3 (Debian's,
# where apt's python3-pytest goes), then python3 on PATH. The library and
# the package come from $SHM_ALLOC_LIBRARY and $PYTHONPATH (set by ctest).
#
# Without any such interpreter it says so and exits 77, which ctest counts
# as skipped; under CI (CI=true) that is a failure instead, since
# scripts/common.sh installs python3-pytest.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=
for candidate in "${SHM_PYTHON:-}" /usr/bin/python3 python3; do
    if [[ -n $candidate ]] && command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import pytest' >/dev/null 2>&1; then
        python=$candidate
        break
    fi
done
if [[ -z $python ]]; then
    echo "python_binding: no python3 with pytest found (apt-get install" \
        "python3-pytest, or set SHM_PYTHON): the binding is not tested"
    [[ ${CI:-} == true ]] && exit 1
    exit 77
fi
echo "python_binding: $("$python" --version 2>&1) ($(command -v "$python")), library ${SHM_ALLOC_LIBRARY:-?}"
basetemp=${SHM_TEST_DIR:-${TMPDIR:-/tmp}}/pytest
exec env PYTHONDONTWRITEBYTECODE=1 "$python" -m pytest -p no:cacheprovider \
    -q --basetemp="$basetemp" "$here"
