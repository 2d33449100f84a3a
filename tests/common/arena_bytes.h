/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Reading a whole mapping's bytes in tests that check a call changed
 * nothing: the chunks in thread caches are poisoned for AddressSanitizer
 * (src/memcheck.h), and a copy or comparison of all of the file would be
 * reported, so these two are not instrumented.
 */
#ifndef SHM_TEST_ARENA_BYTES_H
#define SHM_TEST_ARENA_BYTES_H

#include <stddef.h>
#include <stdint.h>

#if defined(__has_attribute)
#if __has_attribute(no_sanitize)
#define ARENA_BYTES_UNCHECKED __attribute__((no_sanitize("address")))
#endif
#endif
#ifndef ARENA_BYTES_UNCHECKED
#define ARENA_BYTES_UNCHECKED
#endif

/* memcpy of n bytes of a mapping. */
static inline ARENA_BYTES_UNCHECKED void
arena_bytes_copy(void *dst, const void *src, size_t n)
{
    volatile uint8_t *d = dst;
    const volatile uint8_t *s = src;
    for (size_t i = 0; i < n; i++)
        d[i] = s[i];
}

/* The first offset at which the n bytes of a and b differ, n when none. */
static inline ARENA_BYTES_UNCHECKED size_t arena_bytes_differ(const void *a,
                                                              const void *b,
                                                              size_t n)
{
    const volatile uint8_t *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return i;
    return n;
}

#endif /* SHM_TEST_ARENA_BYTES_H */
