# SPDX-License-Identifier: BSD-2-Clause
"""Fixtures of the binding's tests: a fresh arena file per test, and a way
to run Python code in another process (a new interpreter, so that it
shares nothing with the test but the file)."""

import os
import subprocess
import sys
import textwrap

import pytest

import shm_alloc

# Small, but with several blocks of the largest chunk whatever the build.
CAPACITY = max(1 << 20, 16 * shm_alloc.MAX_CHUNK)


@pytest.fixture
def path(tmp_path):
    """Path of an arena file that does not exist yet."""
    return str(tmp_path / "test.shm")


@pytest.fixture
def arena(path):
    with shm_alloc.Arena(path, capacity=CAPACITY) as a:
        yield a


def run_python(code, *args, env=None, timeout=60):
    """Runs `code` in a new interpreter with args in sys.argv[1:]; returns
    its stdout, failing the test with its stderr when it fails."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *[str(a) for a in args]],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        pytest.fail(
            "child exited with %d\nstdout: %s\nstderr: %s"
            % (result.returncode, result.stdout, result.stderr)
        )
    return result.stdout
