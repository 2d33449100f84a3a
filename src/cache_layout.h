/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What a cache keeps in its arena (cache_index.c, cache_reclaim.c and
 * cache.c implement the protocols). Everything is an arena chunk reached
 * from the cache's named root, and every word that more than one process
 * writes is a shmi_atomic_word; offsets, never pointers.
 *
 *   root "shm_cache:NAME" ──► header ──► directory ──► segment ... segment
 *                               │          (grows)     [bucket words]
 *                               └──► slot chunks [thread slots]
 *
 *   bucket word ──► block (immutable once published)
 *                     origin | count | level | (hash, item) * count
 *                                             └──► item (immutable)
 *                     origin | expiry, key length | value length | used
 *                     | key value
 *
 * A bucket word holds 0 (empty, or not split off yet: cache_split.c), the
 * offset of its current block, an empty marker (cache_index.c), or an
 * item of its own that is its only entry; every change to a bucket
 * publishes a new block, marker or item with one CAS.
 */
#ifndef SHM_CACHE_LAYOUT_H
#define SHM_CACHE_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "atomics.h"

#define SHMI_CACHE_MAGIC UINT64_C(0x4548434143485348) /* "SHMCACHE" */
#define SHMI_CACHE_VERSION 5u
#define SHMI_CACHE_SLOT_CHUNKS 16
#define SHMI_CACHE_SLOT_LIMIT 256 /* thread slots a cache has at most */
#define SHMI_CACHE_LINE 64

struct shmi_cache_header {
    uint64_t magic;
    uint32_t version;
    uint32_t bucket_log2;  /* buckets made at creation (cache_split.c) */
    uint32_t segment_log2; /* buckets per segment */
    uint32_t slot_chunks;  /* used entries of slot_chunk */
    uint32_t slots_per_chunk;
    uint32_t max_log2;  /* buckets the directory can address */
    uint64_t directory; /* chunk of segment offsets, 0: not made yet */
    uint64_t slot_chunk[SHMI_CACHE_SLOT_CHUNKS];
    /* The buckets in use, log2: grows by one, never shrinks; read on
     * every lookup, written only when the index grows. */
    shmi_atomic_word index_log2;
    /* One more than the highest slot ever taken (0 in files made before
     * it was kept: all of them): raised before the slot's first use, so
     * that a reclaimer reads the hazards of these slots only
     * (cache_reclaim.c); written once per new slot. */
    shmi_atomic_word slots_used;
    /* Written by writers, on lines of their own: the eviction hand, the
     * entries (the index grows with them), and the memory the cache took
     * at creation; each slot counts the rest (`bytes` here is 0: the
     * slots count them). */
    uint8_t line_pad[3 * SHMI_CACHE_LINE - 184];
    shmi_atomic_word clock_hand;
    shmi_atomic_word items;
    shmi_atomic_word bytes;
    shmi_atomic_word memory;
};

/* One thread's slot, on cache lines of its own: the chunks it is reading
 * (hazards), its counters, its list of retired chunks and the record of
 * the update it is making, so that whoever finds the owner dead finishes
 * or undoes it (cache_reclaim.c). */
struct shmi_cache_slot {
    shmi_atomic_word owner;     /* 0 free, else the owner's token */
    shmi_atomic_word hazard[2]; /* the block and item being read */
    shmi_atomic_word hits;
    shmi_atomic_word misses;
    shmi_atomic_word ring; /* chunk of retired entries, 0 none yet */
    shmi_atomic_word ring_head;
    shmi_atomic_word ring_tail;
    /* The update in flight (cache_index.c): its state and number, its
     * bucket + 1, the block it replaces and the item that block holds and
     * the new one will not, the block and the item it made. */
    shmi_atomic_word pending_state; /* number << 2 | IDLE/PENDING/INSTALLED */
    shmi_atomic_word pending_bucket;
    shmi_atomic_word pending_old;
    shmi_atomic_word pending_removed;
    shmi_atomic_word pending_block;
    shmi_atomic_word pending_item;
    /* A segment made for the directory (cache_split.c) and its index + 1,
     * until the directory names it or it was given back. */
    shmi_atomic_word pending_segment;
    shmi_atomic_word pending_segment_index;
    /* Counted by the owner alone, with plain stores, and summed over the
     * slots by shm_cache_stats: its share of the statistics. `memory` is
     * the net of what the slot's owners allocated and freed, so one
     * slot's share may be negative (unsigned, wrapping: the sum is
     * right). */
    shmi_atomic_word memory;
    shmi_atomic_word sets;
    shmi_atomic_word deletes;
    shmi_atomic_word evictions;
    shmi_atomic_word expirations;
    shmi_atomic_word bytes; /* of keys and values, net, as `memory` */
    uint64_t spare[2];
};

_Static_assert(sizeof(struct shmi_cache_slot) == (size_t)3 * SHMI_CACHE_LINE,
               "a slot is three cache lines");
_Static_assert(offsetof(struct shmi_cache_header, clock_hand) %
                       SHMI_CACHE_LINE ==
                   0,
               "what writers write starts a cache line");

/* A retired chunk waiting until no hazard names it (0: done). */
struct shmi_cache_retired {
    shmi_atomic_word offset;
};

/* A bucket's entries. */
struct shmi_cache_entry {
    uint64_t hash;
    uint64_t item;
};

struct shmi_cache_block {
    uint64_t origin; /* (slot + 1) << 32 | the number of the update that
                        made it (cache_index.c) */
    uint32_t count;
    uint32_t level; /* hash bits the bucket's keys share (cache_split.c) */
    struct shmi_cache_entry entry[];
};

/* An item's `origin`: the update that published it (cache_index.c),
 * written before the CAS that publishes it, then never again. Its slot
 * and number are the item's version, unique in the cache: a slot's
 * update numbers grow by one per update, kept in the slot across its
 * owners, and come round again only after 2^48 updates of that slot.
 * The level is the bucket's while the item is a direct head, and means
 * nothing after. */
#define SHMI_CACHE_ITEM_NUMBER_BITS 48
#define SHMI_CACHE_ITEM_LEVEL_SHIFT 48 /* 6 bits */
#define SHMI_CACHE_ITEM_SLOT_SHIFT 54  /* slot index + 1, 9 bits */
#define SHMI_CACHE_ITEM_LEVEL_MASK (UINT64_C(63) << SHMI_CACHE_ITEM_LEVEL_SHIFT)
/* `expiry_key`: expires_ms << 8 | key_len (a key is at most 250 bytes). */
#define SHMI_CACHE_ITEM_KEY_BITS 8

struct shmi_cache_item {
    uint64_t origin;
    uint64_t expiry_key; /* CLOCK_MONOTONIC milliseconds (0: never) << 8
                            | key_len */
    uint32_t value_len;
    _Atomic(uint32_t) used; /* set by readers, cleared by eviction */
    unsigned char bytes[];  /* key, then value */
};

_Static_assert(sizeof(struct shmi_cache_item) == 24,
               "an item's header is three words");
_Static_assert(SHMI_CACHE_SLOT_LIMIT + 1 <
                   1 << (63 - SHMI_CACHE_ITEM_SLOT_SHIFT),
               "a slot's index + 1 fits an item's origin");

#endif /* SHM_CACHE_LAYOUT_H */
