# SPDX-License-Identifier: BSD-2-Clause
# Compile-time configuration of shm_alloc.
#
# Every entry is a CMake cache variable: override it on the command line,
# e.g. `cmake -B build -DSHM_MIN_ALLOC_POW2=4 -DSHM_MAX_ALLOC_POW2=20`.
# The size range changes the file layout, so it is part of the fingerprint
# stored in every arena file: a file made by a build with another range is
# refused (EPROTO) instead of being misread.

set(SHM_MIN_ALLOC_POW2 5 CACHE STRING
    "log2 of the smallest chunk handed out (3..30); 5 = 32 bytes")
set(SHM_MAX_ALLOC_POW2 12 CACHE STRING
    "log2 of the largest chunk handed out (MIN..30); 12 = 4 KiB")
set(SHM_DEFAULT_CAPACITY 67108864 CACHE STRING
    "bytes available to allocations in a new file when neither $SHM_SIZE nor the arena options say (64 MiB)")
set(SHM_PATH_ENV_NAME "SHM_FILE" CACHE STRING
    "environment variable naming the file the constructor attaches")
set(SHM_SIZE_ENV_NAME "SHM_SIZE" CACHE STRING
    "environment variable giving the capacity of a new file (bytes, or with a K/M/G suffix)")
option(SHM_THREAD_CACHE "per-thread caches of free chunks, kept in the file (src/thread_cache.c); OFF: every malloc and free goes to the bitmaps" ON)
option(SHM_TRIM "chunks trimmed to the request: n bytes take n rounded up to 2^MIN (to the bottom-row node of their bitmap word), the rest of the 2^k block stays free; a continuation bitmap (one bit per 2^MIN bytes) in the file marks the pieces (src/tree.c); OFF: every request takes a whole power of two" OFF)
set(SHM_THREAD_CACHE_CHUNKS 32 CACHE STRING
    "thread caches: most chunks a thread keeps per size class (2..64)")
set(SHM_THREAD_CACHE_BYTES 131072 CACHE STRING
    "thread caches: most bytes one thread keeps in all; only sizes up to BYTES / (2 * CHUNKS) are cached, which makes the bound hold (4096..2^30)")
option(SHM_VALGRIND "valgrind memcheck client requests (needs valgrind's memcheck.h, Debian package valgrind): chunks in thread caches are reported when touched" OFF)
set(SHM_DEBUG 0 CACHE STRING
    "assertion level: 0 none, 1 cheap (arguments the library passed itself), 2 internal invariants (every bitmap transition)")
set(SHM_SANITIZE "" CACHE STRING
    "sanitizers to build with: empty, 'address,undefined' or 'thread'")
option(SHM_WERROR "treat compiler warnings as errors" OFF)
option(SHM_TEST_YIELD "test builds only: yield at random between a bitmap load and its CAS, to widen race windows" OFF)
option(SHM_BUILD_TESTS "build the cmocka test suite" ON)
option(SHM_TEST_HOOKS "test builds only: a hidden hook that white-box tests use to stop a process between the two steps of a recorded operation" ${SHM_BUILD_TESTS})
option(SHM_BUILD_BENCH "build the benchmark programs" OFF)
option(SHM_BUILD_EXAMPLES "build the example programs" ON)
option(SHM_BUILD_TOOLS "build the command-line tools" ON)
option(SHM_BUILD_FUZZ "build the libFuzzer targets in fuzz/ (needs CC=clang)" OFF)

if(NOT SHM_MIN_ALLOC_POW2 MATCHES "^[0-9]+$" OR NOT SHM_MAX_ALLOC_POW2 MATCHES "^[0-9]+$")
  message(FATAL_ERROR "SHM_MIN_ALLOC_POW2 and SHM_MAX_ALLOC_POW2 must be whole numbers")
endif()
if(SHM_MIN_ALLOC_POW2 LESS 3 OR SHM_MAX_ALLOC_POW2 GREATER 30
   OR SHM_MIN_ALLOC_POW2 GREATER SHM_MAX_ALLOC_POW2)
  message(FATAL_ERROR "need 3 <= SHM_MIN_ALLOC_POW2 <= SHM_MAX_ALLOC_POW2 <= 30, "
                      "got ${SHM_MIN_ALLOC_POW2} and ${SHM_MAX_ALLOC_POW2}")
endif()
if(NOT SHM_THREAD_CACHE_CHUNKS MATCHES "^[0-9]+$" OR SHM_THREAD_CACHE_CHUNKS LESS 2
   OR SHM_THREAD_CACHE_CHUNKS GREATER 64)
  message(FATAL_ERROR "SHM_THREAD_CACHE_CHUNKS must be 2..64, got '${SHM_THREAD_CACHE_CHUNKS}'")
endif()
if(NOT SHM_THREAD_CACHE_BYTES MATCHES "^[0-9]+$" OR SHM_THREAD_CACHE_BYTES LESS 4096
   OR SHM_THREAD_CACHE_BYTES GREATER 1073741824)
  message(FATAL_ERROR "SHM_THREAD_CACHE_BYTES must be 4096..2^30, got '${SHM_THREAD_CACHE_BYTES}'")
endif()
if(NOT SHM_DEBUG MATCHES "^[0-2]$")
  message(FATAL_ERROR "SHM_DEBUG must be 0, 1 or 2, got '${SHM_DEBUG}'")
endif()
