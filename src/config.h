/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Compile-time configuration. CMake passes the values chosen in
 * config.cmake as definitions; the defaults here keep a bare compiler
 * invocation working. Test with #if so that -Wundef catches typos.
 */
#ifndef SHM_CONFIG_H
#define SHM_CONFIG_H

#ifndef SHM_MIN_ALLOC_POW2
#define SHM_MIN_ALLOC_POW2 5
#endif
#ifndef SHM_MAX_ALLOC_POW2
#define SHM_MAX_ALLOC_POW2 12
#endif
#ifndef SHM_DEFAULT_CAPACITY
#define SHM_DEFAULT_CAPACITY (64ULL << 20)
#endif
#ifndef SHM_PATH_ENV_NAME
#define SHM_PATH_ENV_NAME "SHM_FILE"
#endif
#ifndef SHM_SIZE_ENV_NAME
#define SHM_SIZE_ENV_NAME "SHM_SIZE"
#endif
#ifndef SHM_DEBUG
#define SHM_DEBUG 0
#endif
#ifndef SHM_THREAD_CACHE
#define SHM_THREAD_CACHE 1
#endif
#ifndef SHM_TRIM
#define SHM_TRIM 0
#endif
#ifndef SHM_THREAD_CACHE_CHUNKS
#define SHM_THREAD_CACHE_CHUNKS 32
#endif
#ifndef SHM_THREAD_CACHE_BYTES
#define SHM_THREAD_CACHE_BYTES 131072
#endif
#ifndef SHM_TEST_YIELD
#define SHM_TEST_YIELD 0
#endif
#ifndef SHM_TEST_HOOKS
#define SHM_TEST_HOOKS 0
#endif

#if SHM_MIN_ALLOC_POW2 < 3 || SHM_MAX_ALLOC_POW2 > 30 ||                       \
    SHM_MIN_ALLOC_POW2 > SHM_MAX_ALLOC_POW2
#error "need 3 <= SHM_MIN_ALLOC_POW2 <= SHM_MAX_ALLOC_POW2 <= 30"
#endif

/* Number of size classes, 2^MIN .. 2^MAX. */
#define SHMI_CLASSES (SHM_MAX_ALLOC_POW2 - SHM_MIN_ALLOC_POW2 + 1)

/* Thread caches (thread_cache.c): a class is cached when K chunks of it
 * and of every smaller class fit half the byte limit each way, i.e. when
 * its chunks are at most BYTES / (2 * K): then K * (sum of the cached
 * sizes) < K * 2 * that <= BYTES, the bound config.cmake states. */
#if SHM_THREAD_CACHE_CHUNKS < 2 || SHM_THREAD_CACHE_CHUNKS > 64
#error "SHM_THREAD_CACHE_CHUNKS must be 2..64"
#endif
/* floor(log2(v)) for 8 <= v, as a constant expression (0 below 8). */
#define SHMI_LOG2_FLOOR(v)                                                     \
    ((v) >= (1ULL << 30)   ? 30                                                \
     : (v) >= (1ULL << 29) ? 29                                                \
     : (v) >= (1ULL << 28) ? 28                                                \
     : (v) >= (1ULL << 27) ? 27                                                \
     : (v) >= (1ULL << 26) ? 26                                                \
     : (v) >= (1ULL << 25) ? 25                                                \
     : (v) >= (1ULL << 24) ? 24                                                \
     : (v) >= (1ULL << 23) ? 23                                                \
     : (v) >= (1ULL << 22) ? 22                                                \
     : (v) >= (1ULL << 21) ? 21                                                \
     : (v) >= (1ULL << 20) ? 20                                                \
     : (v) >= (1ULL << 19) ? 19                                                \
     : (v) >= (1ULL << 18) ? 18                                                \
     : (v) >= (1ULL << 17) ? 17                                                \
     : (v) >= (1ULL << 16) ? 16                                                \
     : (v) >= (1ULL << 15) ? 15                                                \
     : (v) >= (1ULL << 14) ? 14                                                \
     : (v) >= (1ULL << 13) ? 13                                                \
     : (v) >= (1ULL << 12) ? 12                                                \
     : (v) >= (1ULL << 11) ? 11                                                \
     : (v) >= (1ULL << 10) ? 10                                                \
     : (v) >= (1ULL << 9)  ? 9                                                 \
     : (v) >= (1ULL << 8)  ? 8                                                 \
     : (v) >= (1ULL << 7)  ? 7                                                 \
     : (v) >= (1ULL << 6)  ? 6                                                 \
     : (v) >= (1ULL << 5)  ? 5                                                 \
     : (v) >= (1ULL << 4)  ? 4                                                 \
     : (v) >= (1ULL << 3)  ? 3                                                 \
                           : 0)
#define SHMI_TCACHE_MAX_POW2                                                   \
    SHMI_LOG2_FLOOR(SHM_THREAD_CACHE_BYTES / (2ULL * SHM_THREAD_CACHE_CHUNKS))
/* A constant expression, never used in #if (some preprocessors, as the
 * analyzers', do not evaluate the 1ULL shifts of SHMI_LOG2_FLOOR there). */
#define SHMI_TCACHE_CLASSES                                                    \
    (!SHM_THREAD_CACHE || SHMI_TCACHE_MAX_POW2 < SHM_MIN_ALLOC_POW2 ? 0u       \
     : SHMI_TCACHE_MAX_POW2 >= SHM_MAX_ALLOC_POW2                              \
         ? (unsigned)SHMI_CLASSES                                              \
         : (unsigned)(SHMI_TCACHE_MAX_POW2 - SHM_MIN_ALLOC_POW2 + 1))

/* Assertions: level 1 cheap, 2 internal invariants. They check the
 * library's own state, never input from callers or the file (a damaged
 * file must not stop the library). */
#if SHM_DEBUG >= 1
#include <assert.h>
#define SHMI_ASSERT(cond) assert(cond)
#else
#define SHMI_ASSERT(cond) ((void)0)
#endif
#if SHM_DEBUG >= 2
#define SHMI_ASSERT_INTERNAL(cond) assert(cond)
#else
#define SHMI_ASSERT_INTERNAL(cond) ((void)0)
#endif

/* Test builds (SHM_TEST_YIELD) give up the processor at random between a
 * load of a shared word and the CAS that acts on it, so that stress tests
 * meet the interleavings a preempted process would cause. */
#if SHM_TEST_YIELD
void shmi_test_yield(void);
#define SHMI_TEST_YIELD() shmi_test_yield()
#else
#define SHMI_TEST_YIELD() ((void)0)
#endif

#endif /* SHM_CONFIG_H */
