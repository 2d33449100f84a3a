# SPDX-License-Identifier: BSD-2-Clause
"""shm_alloc: a lock-free heap shared by unrelated processes, from Python.

An arena is a file mapped MAP_SHARED into every process that opens it;
allocations are offsets from the start of the mapping, the same in every
process, and ``Arena.view(offset)`` gives the chunk's bytes as a writable
memoryview::

    import shm_alloc

    with shm_alloc.Arena("/dev/shm/app.shm", capacity=1 << 20) as arena:
        off = arena.strdup("hello")
        arena.root_set("greeting", off)   # another process finds it by name
        print(bytes(arena.view(off, 5)))

Errors are raised as OSError with the errno the C library set
(FileNotFoundError for ENOENT, and so on). Importing the module never
attaches $SHM_FILE: arenas are opened explicitly.
"""

import ctypes
import dataclasses
import enum
import errno as _errno
import gc
import os
import weakref
from typing import Optional, Tuple, Union

from . import _native

__version__ = "0.1.0"

__all__ = [
    "Arena",
    "Flags",
    "Stats",
    "NO_CREATE",
    "EXCLUSIVE",
    "SPARSE",
    "SHARED_GROUP",
    "READ_ONLY",
    "SAME_ADDRESS",
    "REMOVE_ON_LAST_CLOSE",
    "MIN_CHUNK",
    "MAX_CHUNK",
    "NULL",
    "ROOT_NAME_MAX",
    "ROOT_COUNT",
    "mapping_size_for_capacity",
    "unlink",
]

_lib = _native.lib


class Flags(enum.IntFlag):
    """enum shm_arena_flags: options of Arena(..., flags=...)."""

    NO_CREATE = 1 << 0  # ENOENT instead of creating a missing file
    EXCLUSIVE = 1 << 1  # EEXIST when the file exists
    SPARSE = 1 << 2  # no disk space reserved for a new file
    SHARED_GROUP = 1 << 3  # accept a file of the caller's group
    READ_ONLY = 1 << 4  # map for reading: any file the caller may read
    SAME_ADDRESS = 1 << 5  # map where the creator mapped it
    REMOVE_ON_LAST_CLOSE = 1 << 6  # the last live process removes the file


NO_CREATE = Flags.NO_CREATE
EXCLUSIVE = Flags.EXCLUSIVE
SPARSE = Flags.SPARSE
SHARED_GROUP = Flags.SHARED_GROUP
READ_ONLY = Flags.READ_ONLY
SAME_ADDRESS = Flags.SAME_ADDRESS
REMOVE_ON_LAST_CLOSE = Flags.REMOVE_ON_LAST_CLOSE

NULL = 0  # SHM_NULL: never a valid offset
ROOT_NAME_MAX = 47  # SHM_ROOT_NAME_MAX
ROOT_COUNT = 64  # SHM_ROOT_COUNT
MIN_CHUNK = _lib.get_shm_min_allocatable_size()  # 2^MIN of this build
MAX_CHUNK = _lib.get_shm_max_allocatable_size()  # 2^MAX of this build


@dataclasses.dataclass(frozen=True)
class Stats:
    """struct shm_stats: a snapshot, computed without stopping anyone."""

    capacity: int
    mapping_size: int
    bytes_in_use: int
    bytes_free: int
    largest_free: int
    min_chunk: int
    max_chunk: int
    classes: int
    # free_chunks[i]: free chunks of min_chunk << i bytes, buddies coalesced
    free_chunks: Tuple[int, ...]
    attached_processes: int
    # inconsistent bitmap states refused since the file was made
    damage_refused: int
    # free chunks kept in thread caches (in neither bytes_free nor in use)
    bytes_cached: int


def _error(err: int, filename: Optional[str] = None) -> OSError:
    if err == 0:  # the library always sets errno; be safe all the same
        err = _errno.EIO
    if filename is None:
        return OSError(err, os.strerror(err))
    return OSError(err, os.strerror(err), filename)


def _check_offset(result: int) -> int:
    if result == NULL:
        raise _error(ctypes.get_errno())
    return result


def _name(name: Union[str, bytes]) -> bytes:
    data = name.encode() if isinstance(name, str) else bytes(name)
    if b"\0" in data:
        raise ValueError("a root name cannot hold a NUL byte")
    return data


def mapping_size_for_capacity(capacity: int = 0) -> int:
    """Size of the file of an arena with this capacity (0: the default)."""
    ctypes.set_errno(0)
    size = _lib.shm_mapping_size_for_capacity(capacity)
    if size == 0:
        raise _error(ctypes.get_errno())
    return size


def unlink(path: Union[str, os.PathLike]) -> None:
    """Removes an arena file (regular files only, no symlinks)."""
    fspath = os.fsencode(path)
    if _lib.shm_arena_unlink(fspath) != 0:
        raise _error(ctypes.get_errno(), os.fsdecode(fspath))


class Arena:
    """An arena file, opened (and when missing created) at ``path``.

    ``capacity`` is the bytes for allocations of a new file (0: the
    library's default), ``mode`` its permission bits, ``flags`` a
    combination of ``Flags``. Raises OSError with the library's errno
    (FileNotFoundError, PermissionError for another owner's file unless
    READ_ONLY, EPROTO for a file of another build, ...).

    Use it as a context manager or call close(). Views (``view()``) stay
    usable until then; close() releases them, and refuses with BufferError
    while something derived from one (a slice, a NumPy array) still holds
    the memory.
    """

    def __init__(
        self,
        path: Union[str, os.PathLike],
        capacity: int = 0,
        mode: int = 0o600,
        flags: int = 0,
    ):
        self._handle = None
        self._views = []  # weak references: (memoryview, ctypes array)
        self._prune_at = 64
        self.path = os.fsdecode(os.fspath(path))
        self.flags = Flags(flags)
        opts = _native.ArenaOptions(capacity=capacity, mode=mode, flags=int(flags))
        handle = _lib.shm_arena_open(os.fsencode(self.path), ctypes.byref(opts))
        if not handle:
            raise _error(ctypes.get_errno(), self.path)
        self._handle = handle

    # ---- lifetime ---------------------------------------------------

    def close(self) -> None:
        """Unmaps the arena; the file stays. Idempotent."""
        if self._handle is None:
            return
        if self._release_views():
            raise BufferError(
                "views of this arena are still in use (slices or objects "
                "made from them): release them before closing"
            )
        handle, self._handle = self._handle, None
        err = _lib.shm_arena_close(handle)
        if err != 0:
            raise _error(err, self.path)

    def _release_views(self) -> bool:
        """Releases every view handed out; True when some memory of the
        mapping is still exported after that."""
        for view_ref, _ in self._views:
            view = view_ref()
            if view is not None:
                try:
                    view.release()
                except BufferError:
                    pass  # exported further: counted below
        if any(array_ref() is not None for _, array_ref in self._views):
            gc.collect()
        alive = [(v, a) for v, a in self._views if a() is not None]
        self._views = alive
        return bool(alive)

    @property
    def closed(self) -> bool:
        return self._handle is None

    def __enter__(self) -> "Arena":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        # Views keep their arena alive, so none is left when this runs.
        if getattr(self, "_handle", None) is not None:
            handle, self._handle = self._handle, None
            _lib.shm_arena_close(handle)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"capacity={self.capacity}"
        return f"<shm_alloc.Arena {self.path!r} {state}>"

    def _h(self):
        if self._handle is None:
            raise ValueError("operation on a closed arena")
        return self._handle

    # ---- the mapping ------------------------------------------------

    @property
    def base(self) -> int:
        """Address of the mapping in this process: base + offset."""
        return _lib.shm_arena_base(self._h())

    @property
    def capacity(self) -> int:
        """Bytes available to allocations in all."""
        return _lib.shm_arena_capacity(self._h())

    @property
    def mapping_size(self) -> int:
        """Size of the file and of the mapping."""
        return _lib.shm_arena_mapping_size(self._h())

    @property
    def read_only(self) -> bool:
        return bool(self.flags & Flags.READ_ONLY)

    def view(self, offset: int, size: Optional[int] = None) -> memoryview:
        """The bytes of the live chunk at ``offset`` as a memoryview
        (format 'B'), writable unless the arena is READ_ONLY. ``size``
        defaults to the chunk's usable size and may not exceed it."""
        usable = self.usable_size(offset)
        if size is None:
            size = usable
        elif not 0 <= size <= usable:
            raise ValueError(f"size {size} outside the chunk of {usable} bytes")
        array = (ctypes.c_ubyte * size).from_address(self.base + offset)
        array._arena = self  # the mapping outlives every view of it
        view = memoryview(array).cast("B")
        if self.read_only:
            view = view.toreadonly()
        if len(self._views) >= self._prune_at:
            self._views = [(v, a) for v, a in self._views if a() is not None]
            self._prune_at = max(64, 2 * len(self._views))
        self._views.append((weakref.ref(view), weakref.ref(array)))
        return view

    # ---- allocation -------------------------------------------------

    def malloc(self, size: int) -> int:
        """Offset of a chunk of at least ``size`` bytes (ENOMEM, EROFS)."""
        return _check_offset(_lib.shm_arena_malloc(self._h(), size))

    def calloc(self, count: int, size: int) -> int:
        """As malloc(count * size), those bytes zeroed."""
        return _check_offset(_lib.shm_arena_calloc(self._h(), count, size))

    def realloc(self, offset: int, size: int) -> int:
        """The chunk resized, contents kept; possibly a new offset."""
        return _check_offset(_lib.shm_arena_realloc(self._h(), offset, size))

    def free(self, offset: int) -> None:
        """Gives the chunk back; NULL does nothing. EINVAL when offset is
        not the start of a live allocation (nothing changes)."""
        handle = self._h()
        ctypes.set_errno(0)
        _lib.shm_arena_free(handle, offset)
        err = ctypes.get_errno()
        if err != 0:
            raise _error(err)

    def usable_size(self, offset: int) -> int:
        """Bytes of the live chunk at offset (EINVAL when there is none)."""
        size = _lib.shm_arena_usable_size(self._h(), offset)
        if size == 0:
            raise _error(ctypes.get_errno())
        return size

    def available(self) -> int:
        """Bytes in free chunks (a snapshot)."""
        return _lib.shm_arena_available(self._h())

    def maxsize(self) -> int:
        """Largest chunk a malloc could get now (0 when full)."""
        return _lib.shm_arena_maxsize(self._h())

    def check(self) -> int:
        """0 when every bitmap word keeps its invariants, else the number
        of words that do not. Exact only while nobody allocates or frees."""
        result = _lib.shm_arena_check(self._h())
        if result < 0:
            raise _error(ctypes.get_errno())
        return result

    def stats(self) -> Stats:
        raw = _native.StatsStruct()
        err = _lib.shm_arena_stats(self._h(), ctypes.byref(raw))
        if err != 0:
            raise _error(err)
        return Stats(
            capacity=raw.capacity,
            mapping_size=raw.mapping_size,
            bytes_in_use=raw.bytes_in_use,
            bytes_free=raw.bytes_free,
            largest_free=raw.largest_free,
            min_chunk=raw.min_chunk,
            max_chunk=raw.max_chunk,
            classes=raw.classes,
            free_chunks=tuple(raw.free_chunks[: raw.classes]),
            attached_processes=raw.attached_processes,
            damage_refused=raw.damage_refused,
            bytes_cached=raw.bytes_cached,
        )

    def flush_thread_cache(self) -> None:
        """Gives the chunks this thread keeps in its cache back to the
        bitmaps (they count as free in available() either way)."""
        err = _lib.shm_arena_flush_thread_cache(self._h())
        if err != 0:
            raise _error(err)

    def reset(self) -> None:
        """Frees every chunk and empties the roots (EBUSY while another
        process is attached)."""
        err = _lib.shm_arena_reset(self._h())
        if err != 0:
            raise _error(err)

    # ---- copies -----------------------------------------------------

    def strdup(self, text: Union[str, bytes]) -> int:
        """A copy of the string (UTF-8 for str) with its NUL."""
        data = text.encode() if isinstance(text, str) else bytes(text)
        if b"\0" in data:
            raise ValueError("strdup of a string that holds a NUL byte")
        return _check_offset(_lib.shm_arena_strdup(self._h(), data))

    def memdup(self, data) -> int:
        """A copy of the bytes of a bytes-like object."""
        source = bytes(data)
        return _check_offset(_lib.shm_arena_memdup(self._h(), source, len(source)))

    # ---- named roots ------------------------------------------------

    def root_get(self, name: Union[str, bytes]) -> int:
        """The offset stored under name; FileNotFoundError (ENOENT) when
        there is none."""
        return _check_offset(_lib.shm_arena_root_get(self._h(), _name(name)))

    def root_set(self, name: Union[str, bytes], offset: int) -> None:
        """Stores offset under name (ENOSPC, ENAMETOOLONG, EINVAL, EROFS)."""
        err = _lib.shm_arena_root_set(self._h(), _name(name), offset)
        if err != 0:
            raise _error(err)

    def root_cas(self, name: Union[str, bytes], expected: int, desired: int) -> bool:
        """Replaces the value of name by desired if it is expected (a name
        never set holds NULL). True when replaced, False when the value was
        another; other failures raise as root_set."""
        handle = self._h()
        ctypes.set_errno(0)
        if _lib.shm_arena_root_cas(handle, _name(name), expected, desired):
            return True
        err = ctypes.get_errno()
        if err == _errno.EAGAIN:
            return False
        raise _error(err)
