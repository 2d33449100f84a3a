/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What shm_usable_size says of a fresh allocation of n bytes, as the
 * build's configuration decides it (tests/CMakeLists.txt passes it as
 * SHM_TEST_* definitions): the next power of two >= max(n, 2^MIN), the class's
 * node; with SHM_TRIM, in the classes no thread cache holds, n rounded up to
 * the class's granule instead: the bottom-row node of the bitmap word that
 * holds the class (2^MIN for the five smallest classes, 2^(MIN+5) for the
 * next five, and so on up to the top tier). The start is aligned to the
 * node either way.
 */
#ifndef SHM_TEST_USABLE_MODEL_H
#define SHM_TEST_USABLE_MODEL_H

#include <stddef.h>

#include "shm_alloc.h"

/* The class's node: the alignment of the chunk's start. */
static inline size_t model_node_size(size_t n)
{
    size_t p = get_shm_min_allocatable_size();
    while (p < n)
        p <<= 1;
    return p;
}

/* The largest size thread caches hold (0: none), as src/config.h. */
static inline size_t model_cached_limit(void)
{
#if SHM_TEST_THREAD_CACHE
    size_t limit = (size_t)SHM_TEST_THREAD_CACHE_BYTES /
                   (2 * (size_t)SHM_TEST_THREAD_CACHE_CHUNKS);
    size_t p = 1;
    while (p * 2 <= limit)
        p *= 2;
    return p;
#else
    return 0;
#endif
}

/* The class's granule: the bottom-row node of its bitmap word. */
static inline size_t model_granule(size_t n)
{
    size_t node = model_node_size(n);
    size_t min = get_shm_min_allocatable_size();
    size_t max = get_shm_max_allocatable_size();
    unsigned levels = 1, c = 0;
    for (size_t p = min; p < max; p <<= 1)
        levels++;
    for (size_t p = min; p < node; p <<= 1)
        c++;
    unsigned above = levels <= 6 ? 0 : (levels - 6 + 4) / 5;
    unsigned depth = c / 5 < above ? c / 5 : above;
    return min << (5 * depth);
}

/* The least that shm_usable_size says: a thread cache may hand out a
 * longer chunk of the class that it holds (see usable_fits). */
static inline size_t expected_usable(size_t n)
{
    size_t node = model_node_size(n);
#if SHM_TEST_TRIM
    size_t granule = model_granule(n);
    size_t length = n == 0 ? granule : (n + granule - 1) / granule * granule;
    return length < node ? length : node;
#else
    return node;
#endif
}

/* Whether `usable` is what a fresh allocation of n bytes may say: exactly
 * expected_usable(n), or with thread caches in a cached class a longer
 * length of the class, a multiple of the class's granule. */
static inline int usable_fits(size_t n, size_t usable)
{
    size_t least = expected_usable(n), node = model_node_size(n);
    if (usable == least)
        return 1;
    return node <= model_cached_limit() && usable > least && usable <= node &&
           usable % model_granule(n) == 0;
}

#endif /* SHM_TEST_USABLE_MODEL_H */
