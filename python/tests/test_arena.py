# SPDX-License-Identifier: BSD-2-Clause
"""The binding against the real library: data crosses processes through
the file, every failure is the library's errno, roots compare and swap as
the C API says, views follow their chunk and their arena's lifetime."""

import errno
import hashlib
import os
import subprocess
import sys
import textwrap

import pytest

import shm_alloc
from conftest import CAPACITY, run_python

# Tests that store more than one smallest chunk in a chunk (not in a build
# whose chunks are all of one size, such as 2^3..2^3).
needs_larger_chunks = pytest.mark.skipif(
    shm_alloc.MAX_CHUNK < max(128, 4 * shm_alloc.MIN_CHUNK),
    reason="this build's chunks are too small for the test's data",
)

# ---- sharing between processes -------------------------------------------


@needs_larger_chunks

def test_another_process_reads_what_this_one_wrote(arena, path):
    data = os.urandom(shm_alloc.MAX_CHUNK)
    blob = arena.memdup(data)
    name = arena.strdup("written by the parent")
    scratch = arena.calloc(1, 64)
    arena.root_set("blob", blob)
    arena.root_set("name", name)
    arena.root_set("scratch", scratch)

    out = run_python(
        """
        import hashlib, sys
        import shm_alloc
        with shm_alloc.Arena(sys.argv[1], flags=shm_alloc.NO_CREATE) as a:
            blob = a.root_get("blob")
            digest = hashlib.sha256(a.view(blob)[:a.usable_size(blob)]).hexdigest()
            name = bytes(a.view(a.root_get("name"))).split(b"\\0")[0].decode()
            a.view(a.root_get("scratch"))[:5] = b"child"
            a.root_set("reply", a.strdup(digest))
            print(name)
        """,
        path,
    )
    assert out == "written by the parent\n"
    reply = arena.root_get("reply")
    text = bytes(arena.view(reply)).split(b"\0")[0].decode()
    assert text == hashlib.sha256(data).hexdigest()
    assert bytes(arena.view(scratch, 6)) == b"child\0"
    assert arena.check() == 0


def test_two_arena_objects_share_the_bytes(arena, path):
    off = arena.malloc(4)
    with shm_alloc.Arena(path, flags=shm_alloc.NO_CREATE) as other:
        assert other.base != arena.base  # two mappings of one file
        arena.view(off)[:4] = b"ping"
        assert bytes(other.view(off, 4)) == b"ping"
        other.view(off)[:4] = b"pong"
        assert bytes(arena.view(off, 4)) == b"pong"
        assert other.usable_size(off) == arena.usable_size(off)
        other.free(off)
    with pytest.raises(OSError) as e:
        arena.usable_size(off)  # freed through the other object
    assert e.value.errno == errno.EINVAL


def test_one_of_many_processes_wins_a_root_cas(arena, path):
    code = """
        import sys
        import shm_alloc
        with shm_alloc.Arena(sys.argv[1], flags=shm_alloc.NO_CREATE) as a:
            mine = a.strdup("p%s" % sys.argv[2])
            won = a.root_cas("winner", shm_alloc.NULL, mine)
            if not won:
                a.free(mine)
            print("won" if won else "lost")
        """
    children = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), path, str(i)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    results = [c.communicate(timeout=60)[0].strip() for c in children]
    assert all(c.returncode == 0 for c in children)
    assert sorted(results) == ["lost"] * 5 + ["won"]
    winner = results.index("won")
    text = bytes(arena.view(arena.root_get("winner"))).split(b"\0")[0]
    assert text == b"p%d" % winner
    # the losers gave their chunk back: only the winner's is in use
    assert arena.stats().bytes_in_use == arena.usable_size(arena.root_get("winner"))


def test_import_does_not_attach_an_inherited_shm_file(tmp_path):
    inherited = tmp_path / "inherited.shm"
    own = tmp_path / "own.shm"
    out = run_python(
        """
        import os, sys
        import shm_alloc
        with shm_alloc.Arena(sys.argv[1], capacity=1 << 20) as a:
            a.malloc(1)
        print(os.environ["SHM_FILE"])
        """,
        own,
        env={"SHM_FILE": str(inherited)},
    )
    assert out.strip() == str(inherited)  # still in the environment
    assert own.exists()
    assert not inherited.exists()


# ---- roots -------------------------------------------------------------------


def test_root_cas_semantics(arena):
    x = arena.strdup("x")
    y = arena.strdup("y")
    # a name never set holds NULL: cas from NULL publishes once
    assert arena.root_cas("r", shm_alloc.NULL, x) is True
    assert arena.root_cas("r", shm_alloc.NULL, y) is False
    assert arena.root_get("r") == x
    assert arena.root_cas("r", y, x) is False  # not the value
    assert arena.root_cas("r", x, y) is True
    assert arena.root_get("r") == y
    arena.root_set("r", shm_alloc.NULL)
    with pytest.raises(FileNotFoundError) as e:
        arena.root_get("r")
    assert e.value.errno == errno.ENOENT
    assert arena.root_cas("r", shm_alloc.NULL, x) is True
    assert arena.root_get(b"r") == x  # bytes names are the same names


def test_root_errors(arena):
    with pytest.raises(OSError) as e:
        arena.root_get("never set")
    assert e.value.errno == errno.ENOENT
    with pytest.raises(OSError) as e:
        arena.root_set("n" * (shm_alloc.ROOT_NAME_MAX + 1), 0)
    assert e.value.errno == errno.ENAMETOOLONG
    arena.root_set("n" * shm_alloc.ROOT_NAME_MAX, arena.malloc(1))
    with pytest.raises(OSError) as e:
        arena.root_set("", 0)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        arena.root_set("past the end", arena.mapping_size + 1)
    assert e.value.errno == errno.EINVAL
    for i in range(shm_alloc.ROOT_COUNT - 1):
        arena.root_set("root %d" % i, arena.malloc(1))
    with pytest.raises(OSError) as e:
        arena.root_set("one too many", arena.malloc(1))
    assert e.value.errno == errno.ENOSPC
    with pytest.raises(OSError) as e:
        arena.root_cas("one too many", shm_alloc.NULL, arena.malloc(1))
    assert e.value.errno == errno.ENOSPC
    with pytest.raises(ValueError):
        arena.root_get("nul\0inside")


# ---- allocation and errno ----------------------------------------------------


@needs_larger_chunks
def test_allocation_round_trip(arena):
    start = arena.available()
    off = arena.malloc(1)
    assert arena.usable_size(off) == shm_alloc.MIN_CHUNK
    view = arena.view(off)
    assert len(view) == shm_alloc.MIN_CHUNK and not view.readonly
    view[:] = b"\xab" * len(view)
    grown = arena.realloc(off, shm_alloc.MIN_CHUNK * 3)
    # A power of two, or trimmed to the request (SHM_TRIM builds).
    assert arena.usable_size(grown) in (shm_alloc.MIN_CHUNK * 3, shm_alloc.MIN_CHUNK * 4)
    assert bytes(arena.view(grown, shm_alloc.MIN_CHUNK)) == b"\xab" * shm_alloc.MIN_CHUNK
    zeroed = arena.calloc(3, shm_alloc.MIN_CHUNK)
    assert bytes(arena.view(zeroed, 3 * shm_alloc.MIN_CHUNK)) == bytes(3 * shm_alloc.MIN_CHUNK)
    s = arena.strdup("héllo")
    assert bytes(arena.view(s, 7)) == "héllo".encode() + b"\0"
    m = arena.memdup(bytearray(b"\0\1\2"))
    assert bytes(arena.view(m, 3)) == b"\0\1\2"
    for o in (grown, zeroed, s, m):
        arena.free(o)
    arena.free(shm_alloc.NULL)  # does nothing
    assert arena.available() == start
    assert arena.check() == 0


def test_errno_of_each_failure(arena):
    off = arena.malloc(1)
    cases = [
        (lambda: arena.malloc(shm_alloc.MAX_CHUNK + 1), errno.ENOMEM),
        (lambda: arena.calloc(2**63, 4), errno.ENOMEM),
        (lambda: arena.free(off + 1), errno.EINVAL),
        (lambda: arena.free(8), errno.EINVAL),
        (lambda: arena.usable_size(off + shm_alloc.MIN_CHUNK), errno.EINVAL),
        (lambda: arena.realloc(off + 1, 10), errno.EINVAL),
        (lambda: arena.realloc(off, shm_alloc.MAX_CHUNK + 1), errno.ENOMEM),
        (lambda: arena.memdup(bytes(shm_alloc.MAX_CHUNK + 1)), errno.ENOMEM),
    ]
    for call, expected in cases:
        before = arena.available()
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == expected, call
        assert e.value.strerror == os.strerror(expected)
        assert arena.available() == before  # nothing changed
    arena.free(off)
    with pytest.raises(OSError) as e:
        arena.free(off)  # a double free
    assert e.value.errno == errno.EINVAL
    with pytest.raises(ValueError):
        arena.strdup("nul\0inside")
    assert arena.check() == 0


def test_a_full_arena_is_enomem(tmp_path):
    with shm_alloc.Arena(tmp_path / "full.shm", capacity=CAPACITY) as a:
        taken = []
        with pytest.raises(OSError) as e:
            while True:
                taken.append(a.malloc(shm_alloc.MAX_CHUNK))
        assert e.value.errno == errno.ENOMEM
        assert len(taken) * shm_alloc.MAX_CHUNK == a.capacity
        assert a.available() == 0 and a.maxsize() == 0
        for off in taken:
            a.free(off)
        assert a.available() == a.capacity


def test_open_errors(tmp_path, path):
    missing = tmp_path / "missing.shm"
    with pytest.raises(FileNotFoundError) as e:
        shm_alloc.Arena(missing, flags=shm_alloc.NO_CREATE)
    assert e.value.errno == errno.ENOENT and e.value.filename == str(missing)
    assert not missing.exists()
    with pytest.raises(OSError) as e:
        shm_alloc.Arena(missing, flags=shm_alloc.READ_ONLY)
    assert e.value.errno == errno.ENOENT
    with pytest.raises(OSError) as e:
        shm_alloc.Arena(tmp_path)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        shm_alloc.Arena(path, flags=shm_alloc.READ_ONLY | shm_alloc.EXCLUSIVE)
    assert e.value.errno == errno.EINVAL
    shm_alloc.Arena(path, capacity=CAPACITY).close()
    with pytest.raises(FileExistsError):
        shm_alloc.Arena(path, flags=shm_alloc.EXCLUSIVE)
    link = tmp_path / "link.shm"
    link.symlink_to(path)
    with pytest.raises(OSError) as e:
        shm_alloc.Arena(link)
    assert e.value.errno == errno.ELOOP
    garbage = tmp_path / "garbage.shm"
    garbage.write_bytes(os.urandom(65536))
    with pytest.raises(OSError) as e:
        shm_alloc.Arena(garbage)
    assert e.value.errno == errno.EPROTO
    empty = tmp_path / "empty.shm"
    empty.write_bytes(b"")
    with pytest.raises(OSError) as e:
        shm_alloc.Arena(empty)
    assert e.value.errno == errno.EBADMSG


def test_read_only_arena(arena, path):
    off = arena.strdup("kept")
    arena.root_set("kept", off)
    with shm_alloc.Arena(path, flags=shm_alloc.READ_ONLY) as ro:
        assert ro.read_only
        view = ro.view(ro.root_get("kept"))
        assert view.readonly and bytes(view[:5]) == b"kept\0"
        with pytest.raises(TypeError):
            view[0] = 0
        for call in (
            lambda: ro.malloc(1),
            lambda: ro.root_set("x", off),
            lambda: ro.strdup("x"),
            lambda: ro.reset(),
        ):
            with pytest.raises(OSError) as e:
                call()
            assert e.value.errno == errno.EROFS
        assert ro.check() == 0
        assert ro.stats().bytes_in_use == arena.stats().bytes_in_use


@pytest.mark.skipif(os.geteuid() != 0, reason="a file of another user needs root")
def test_another_users_file_opens_read_only(path):
    with shm_alloc.Arena(path, capacity=CAPACITY) as a:
        a.root_set("x", a.strdup("theirs"))
    os.chown(path, 65534, 65534)
    with pytest.raises(PermissionError) as e:
        shm_alloc.Arena(path)
    assert e.value.errno == errno.EACCES
    with shm_alloc.Arena(path, flags=shm_alloc.READ_ONLY) as ro:
        assert bytes(ro.view(ro.root_get("x"), 7)) == b"theirs\0"


# ---- statistics --------------------------------------------------------------


def test_stats_add_up(arena):
    sizes = (1, shm_alloc.MIN_CHUNK + 1, shm_alloc.MAX_CHUNK, 3 * shm_alloc.MIN_CHUNK)
    offs = [arena.malloc(min(n, shm_alloc.MAX_CHUNK)) for n in sizes]
    s = arena.stats()
    assert s.capacity == arena.capacity == CAPACITY
    assert s.mapping_size == arena.mapping_size == shm_alloc.mapping_size_for_capacity(CAPACITY)
    assert os.path.getsize(arena.path) == s.mapping_size
    assert s.min_chunk == shm_alloc.MIN_CHUNK and s.max_chunk == shm_alloc.MAX_CHUNK
    assert len(s.free_chunks) == s.classes
    assert s.bytes_free + s.bytes_cached == arena.available()
    assert s.bytes_in_use + s.bytes_free + s.bytes_cached == s.capacity
    assert s.bytes_in_use == sum(arena.usable_size(o) for o in offs)
    assert sum(c * (s.min_chunk << i) for i, c in enumerate(s.free_chunks)) == s.bytes_free
    assert s.attached_processes == 1
    assert s.largest_free == arena.maxsize()
    for o in offs:
        arena.free(o)
    arena.flush_thread_cache()
    s = arena.stats()
    assert s.bytes_cached == 0 and s.bytes_free == s.capacity


# ---- views and lifetime ------------------------------------------------------


def test_view_bounds(arena):
    off = arena.malloc(min(100, shm_alloc.MAX_CHUNK))
    assert len(arena.view(off)) == arena.usable_size(off)
    assert len(arena.view(off, 3)) == 3
    with pytest.raises(ValueError):
        arena.view(off, arena.usable_size(off) + 1)
    with pytest.raises(OSError) as e:
        arena.view(off + 1)
    assert e.value.errno == errno.EINVAL


def test_close_releases_views(path):
    a = shm_alloc.Arena(path, capacity=CAPACITY)
    view = a.view(a.malloc(4))
    view[0] = 1
    part = view[2:4]
    with pytest.raises(BufferError):
        a.close()  # a slice still holds the memory
    assert not a.closed
    del part
    a.close()
    assert a.closed
    with pytest.raises(ValueError):
        view[0]  # released, not a dangling pointer
    with pytest.raises(ValueError):
        a.malloc(1)
    a.close()  # idempotent


def test_context_manager_closes(path):
    with shm_alloc.Arena(path, capacity=CAPACITY) as a:
        assert not a.closed
        assert a.base != 0
    assert a.closed
    with pytest.raises(ValueError):
        a.available()
    shm_alloc.unlink(path)
    assert not os.path.exists(path)
    with pytest.raises(FileNotFoundError):
        shm_alloc.unlink(path)
