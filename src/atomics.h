/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The atomic operations the library uses on shared memory, each named by
 * its memory order so that a reader sees the order at the call site. Only
 * 64-bit words are shared, and they must be lock-free (an address-free
 * lock-free atomic works between processes that map the same file at
 * different addresses; a lock-based one would not).
 *
 * Callers say in a comment what each non-relaxed operation pairs with.
 */
#ifndef SHM_ATOMICS_H
#define SHM_ATOMICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef _Atomic(uint64_t) shmi_atomic_word;

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2,
               "64-bit atomics must be lock-free to be shared by processes");
_Static_assert(sizeof(shmi_atomic_word) == sizeof(uint64_t),
               "an atomic word must have the size of a plain one");

static inline uint64_t shmi_atomic_load_relaxed(const shmi_atomic_word *p)
{
    return atomic_load_explicit((shmi_atomic_word *)p, memory_order_relaxed);
}

static inline uint64_t shmi_atomic_load_acquire(const shmi_atomic_word *p)
{
    return atomic_load_explicit((shmi_atomic_word *)p, memory_order_acquire);
}

static inline uint64_t shmi_atomic_load_seq_cst(const shmi_atomic_word *p)
{
    return atomic_load_explicit((shmi_atomic_word *)p, memory_order_seq_cst);
}

static inline void shmi_atomic_store_relaxed(shmi_atomic_word *p, uint64_t v)
{
    atomic_store_explicit(p, v, memory_order_relaxed);
}

static inline void shmi_atomic_store_seq_cst(shmi_atomic_word *p, uint64_t v)
{
    atomic_store_explicit(p, v, memory_order_seq_cst);
}

static inline void shmi_atomic_store_release(shmi_atomic_word *p, uint64_t v)
{
    atomic_store_explicit(p, v, memory_order_release);
}

/* Compare-and-swap: on failure *expected receives the current value
 * (loaded relaxed; the caller re-validates it before acting on it). */
static inline bool shmi_atomic_cas_acq_rel(shmi_atomic_word *p,
                                           uint64_t *expected, uint64_t desired)
{
    return atomic_compare_exchange_strong_explicit(
        p, expected, desired, memory_order_acq_rel, memory_order_relaxed);
}

static inline bool shmi_atomic_cas_seq_cst(shmi_atomic_word *p,
                                           uint64_t *expected, uint64_t desired)
{
    return atomic_compare_exchange_strong_explicit(
        p, expected, desired, memory_order_seq_cst, memory_order_relaxed);
}

static inline uint64_t shmi_atomic_fetch_or_seq_cst(shmi_atomic_word *p,
                                                    uint64_t bits)
{
    return atomic_fetch_or_explicit(p, bits, memory_order_seq_cst);
}

static inline uint64_t shmi_atomic_fetch_and_seq_cst(shmi_atomic_word *p,
                                                     uint64_t bits)
{
    return atomic_fetch_and_explicit(p, bits, memory_order_seq_cst);
}

static inline uint64_t shmi_atomic_fetch_add_relaxed(shmi_atomic_word *p,
                                                     uint64_t v)
{
    return atomic_fetch_add_explicit(p, v, memory_order_relaxed);
}

#endif /* SHM_ATOMICS_H */
