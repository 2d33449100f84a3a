/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * 32-bit atomic words for the synchronisation objects: a futex is a
 * 32-bit word, so the events and the reader-writer lock's gate word are
 * 32 bits wide, unlike everything else in the file. And the 64-bit
 * operations that only the mutex's lock word needs (atomics.h has the
 * rest). As in atomics.h, the memory order is in the name and callers say
 * what each non-relaxed operation pairs with.
 */
#ifndef SHM_SYNC_ATOMICS_H
#define SHM_SYNC_ATOMICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "atomics.h"

typedef _Atomic(uint32_t) shmi_atomic_word32;

_Static_assert(ATOMIC_INT_LOCK_FREE == 2,
               "32-bit atomics must be lock-free to be shared by processes");
_Static_assert(sizeof(shmi_atomic_word32) == sizeof(uint32_t),
               "a futex word must have the size of a plain one");

static inline uint32_t shmi_atomic32_load_relaxed(const shmi_atomic_word32 *p)
{
    return atomic_load_explicit((shmi_atomic_word32 *)p, memory_order_relaxed);
}

static inline uint32_t shmi_atomic32_load_seq_cst(const shmi_atomic_word32 *p)
{
    return atomic_load_explicit((shmi_atomic_word32 *)p, memory_order_seq_cst);
}

static inline void shmi_atomic32_store_relaxed(shmi_atomic_word32 *p,
                                               uint32_t v)
{
    atomic_store_explicit(p, v, memory_order_relaxed);
}

static inline void shmi_atomic32_store_seq_cst(shmi_atomic_word32 *p,
                                               uint32_t v)
{
    atomic_store_explicit(p, v, memory_order_seq_cst);
}

static inline bool shmi_atomic32_cas_seq_cst(shmi_atomic_word32 *p,
                                             uint32_t *expected,
                                             uint32_t desired)
{
    return atomic_compare_exchange_strong_explicit(
        p, expected, desired, memory_order_seq_cst, memory_order_relaxed);
}

static inline uint32_t shmi_atomic32_fetch_or_seq_cst(shmi_atomic_word32 *p,
                                                      uint32_t bits)
{
    return atomic_fetch_or_explicit(p, bits, memory_order_seq_cst);
}

static inline uint32_t shmi_atomic32_fetch_and_seq_cst(shmi_atomic_word32 *p,
                                                       uint32_t bits)
{
    return atomic_fetch_and_explicit(p, bits, memory_order_seq_cst);
}

static inline uint32_t shmi_atomic32_fetch_add_seq_cst(shmi_atomic_word32 *p,
                                                       uint32_t v)
{
    return atomic_fetch_add_explicit(p, v, memory_order_seq_cst);
}

static inline uint32_t shmi_atomic32_fetch_sub_seq_cst(shmi_atomic_word32 *p,
                                                       uint32_t v)
{
    return atomic_fetch_sub_explicit(p, v, memory_order_seq_cst);
}

/* Compare-and-swap, acquire on success: *expected receives the current
 * value (relaxed) on failure. */
static inline bool shmi_atomic_cas_acquire(shmi_atomic_word *p,
                                           uint64_t *expected, uint64_t desired)
{
    return atomic_compare_exchange_strong_explicit(
        p, expected, desired, memory_order_acquire, memory_order_relaxed);
}

static inline bool shmi_atomic_cas_relaxed(shmi_atomic_word *p,
                                           uint64_t *expected, uint64_t desired)
{
    return atomic_compare_exchange_strong_explicit(
        p, expected, desired, memory_order_relaxed, memory_order_relaxed);
}

static inline bool shmi_atomic_cas_release(shmi_atomic_word *p,
                                           uint64_t *expected, uint64_t desired)
{
    return atomic_compare_exchange_strong_explicit(
        p, expected, desired, memory_order_release, memory_order_relaxed);
}

static inline uint64_t shmi_atomic_exchange_release(shmi_atomic_word *p,
                                                    uint64_t v)
{
    return atomic_exchange_explicit(p, v, memory_order_release);
}

#endif /* SHM_SYNC_ATOMICS_H */
