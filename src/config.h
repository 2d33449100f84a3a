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
