# SPDX-License-Identifier: BSD-2-Clause
"""The C library, loaded with ctypes, and the prototypes of what the
binding calls (include/shm_alloc.h)."""

import ctypes
import ctypes.util
import os
import threading

# The variable the library's constructor attaches; a build may rename it
# (SHM_PATH_ENV_NAME), then set SHM_ALLOC_PATH_ENV_NAME to match.
_PATH_ENV = os.environ.get("SHM_ALLOC_PATH_ENV_NAME", "SHM_FILE")

shm_offt = ctypes.c_uint64


class ArenaOptions(ctypes.Structure):
    """struct shm_arena_options"""

    _fields_ = [
        ("capacity", ctypes.c_size_t),
        ("mode", ctypes.c_uint),
        ("flags", ctypes.c_uint),
        ("address", ctypes.c_void_p),
    ]


class StatsStruct(ctypes.Structure):
    """struct shm_stats"""

    _fields_ = [
        ("capacity", ctypes.c_size_t),
        ("mapping_size", ctypes.c_size_t),
        ("bytes_in_use", ctypes.c_size_t),
        ("bytes_free", ctypes.c_size_t),
        ("largest_free", ctypes.c_size_t),
        ("min_chunk", ctypes.c_size_t),
        ("max_chunk", ctypes.c_size_t),
        ("classes", ctypes.c_uint),
        ("free_chunks", ctypes.c_size_t * 31),
        ("attached_processes", ctypes.c_size_t),
        ("damage_refused", ctypes.c_size_t),
        ("bytes_cached", ctypes.c_size_t),
    ]


def _library_path():
    path = os.environ.get("SHM_ALLOC_LIBRARY")
    if path:
        return path
    found = ctypes.util.find_library("shm_alloc")
    if found:
        return found
    raise ImportError(
        "shm_alloc: libshm_alloc.so not found; install the C library "
        "(cmake --install) or set SHM_ALLOC_LIBRARY to its path"
    )


_load_lock = threading.Lock()


def _load():
    """Loads the library without letting its constructor attach an
    inherited $SHM_FILE: this binding opens its arenas explicitly, as a C
    program that defines shm_no_auto_attach does."""
    path = _library_path()
    with _load_lock:
        hidden = os.environ.pop(_PATH_ENV, None)
        try:
            return ctypes.CDLL(path, use_errno=True)
        except OSError as err:
            raise ImportError(f"shm_alloc: cannot load {path}: {err}") from err
        finally:
            if hidden is not None:
                os.environ[_PATH_ENV] = hidden


lib = _load()
library_path = lib._name

_c = ctypes
_arena_p = _c.c_void_p
_prototypes = {
    "shm_arena_open": (_arena_p, [_c.c_char_p, _c.POINTER(ArenaOptions)]),
    "shm_arena_close": (_c.c_int, [_arena_p]),
    "shm_arena_unlink": (_c.c_int, [_c.c_char_p]),
    "shm_arena_base": (_c.c_void_p, [_arena_p]),
    "shm_arena_capacity": (_c.c_size_t, [_arena_p]),
    "shm_arena_mapping_size": (_c.c_size_t, [_arena_p]),
    "shm_arena_malloc": (shm_offt, [_arena_p, _c.c_size_t]),
    "shm_arena_calloc": (shm_offt, [_arena_p, _c.c_size_t, _c.c_size_t]),
    "shm_arena_free": (None, [_arena_p, shm_offt]),
    "shm_arena_realloc": (shm_offt, [_arena_p, shm_offt, _c.c_size_t]),
    "shm_arena_usable_size": (_c.c_size_t, [_arena_p, shm_offt]),
    "shm_arena_available": (_c.c_size_t, [_arena_p]),
    "shm_arena_maxsize": (_c.c_size_t, [_arena_p]),
    "shm_arena_check": (_c.c_int, [_arena_p]),
    "shm_arena_flush_thread_cache": (_c.c_int, [_arena_p]),
    "shm_arena_stats": (_c.c_int, [_arena_p, _c.POINTER(StatsStruct)]),
    "shm_arena_reset": (_c.c_int, [_arena_p]),
    "shm_arena_root_get": (shm_offt, [_arena_p, _c.c_char_p]),
    "shm_arena_root_set": (_c.c_int, [_arena_p, _c.c_char_p, shm_offt]),
    "shm_arena_root_cas": (_c.c_bool, [_arena_p, _c.c_char_p, shm_offt, shm_offt]),
    "shm_arena_strdup": (shm_offt, [_arena_p, _c.c_char_p]),
    "shm_arena_memdup": (shm_offt, [_arena_p, _c.c_void_p, _c.c_size_t]),
    "shm_mapping_size_for_capacity": (_c.c_size_t, [_c.c_size_t]),
    "get_shm_min_allocatable_size": (_c.c_size_t, []),
    "get_shm_max_allocatable_size": (_c.c_size_t, []),
}
for _name, (_restype, _argtypes) in _prototypes.items():
    _fn = getattr(lib, _name)
    _fn.restype = _restype
    _fn.argtypes = _argtypes
