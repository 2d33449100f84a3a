/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The process-local handle of a cache and the calls its three files share:
 *
 *   cache_reclaim.c thread slots, hazards, retired chunks, reclamation,
 *                   and the recovery of a dead owner's slot
 *   cache_index.c   buckets, blocks and items: lookup and the one-CAS
 *                   update of a bucket
 *   cache.c         the public API: open, get, set, delete, incr, cas,
 *                   eviction, expiry, statistics
 */
#ifndef SHM_CACHE_INTERNAL_H
#define SHM_CACHE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm_cache.h"

#include "arena.h"
#include "cache_layout.h"

struct shm_cache {
    shm_arena *arena;
    bool own_arena; /* opened by shm_cache_open: closed with the cache */
    bool read_only;
    uint8_t *base;
    /* The arena's chunks lie in [data_start, data_end): its geometry is
     * fixed while it is open, so offsets read from the file are checked
     * against these without a call. */
    uint64_t data_start, data_end;
    struct shmi_cache_header *header;
    uint64_t header_offset;
    uint64_t serial; /* unique in this process */
    /* Buckets: segment[i >> segment_log2][i & segment_mask]. */
    shmi_atomic_word **segment;
    unsigned segment_log2;
    uint64_t segment_mask;
    uint64_t bucket_mask;
    /* Thread slots. */
    struct shmi_cache_slot **slot_chunk;
    unsigned slots_per_chunk;
    unsigned slot_count;
    unsigned ring_entries; /* retired entries a ring chunk holds */
    unsigned max_entries;  /* entries a block may hold */
    /* Slots this handle gave to threads of this process (guarded). */
    pthread_mutex_t held_lock;
    unsigned *held;
    unsigned held_count;
};

static inline void *shmi_cache_at(const shm_cache *c, uint64_t off)
{
    return c->base + off;
}

static inline shmi_atomic_word *shmi_cache_bucket(const shm_cache *c,
                                                  uint64_t index)
{
    return c->segment[index >> c->segment_log2] + (index & c->segment_mask);
}

static inline struct shmi_cache_slot *shmi_cache_slot_at(const shm_cache *c,
                                                         unsigned index)
{
    return c->slot_chunk[index / c->slots_per_chunk] +
           index % c->slots_per_chunk;
}

/* The chunk sizes of the arena, fixed by the build (config.h). */
#define SHMI_CACHE_MIN_CHUNK ((uint64_t)1 << SHM_MIN_ALLOC_POW2)
#define SHMI_CACHE_MAX_CHUNK ((uint64_t)1 << SHM_MAX_ALLOC_POW2)

/* Entries a block may hold: a bucket that would need more refuses the
 * update (a key hashing there is refused with ENOMEM). */
#define SHMI_CACHE_MAX_ENTRIES 64

/* ---- cache_reclaim.c ---- */

/* Enters a new handle in the process's list of open caches (for threads
 * that leave after it closed); 0 or ENOMEM. */
int shmi_cache_register(shm_cache *c);

/* Whether the slot's ring can take `needed` more retired chunks. */
bool shmi_cache_ring_has_room(const shm_cache *c,
                              const struct shmi_cache_slot *slot,
                              unsigned needed);

/* The calling thread's slot in c, taken on first use (recovering a dead
 * owner's slot when no free one is left); NULL with ENOSPC when every
 * slot is held by a live thread, EROFS on a read-only cache, ENOMEM. */
struct shmi_cache_slot *shmi_cache_slot_mine(shm_cache *c);

/* Gives back every slot this handle holds (at close). */
void shmi_cache_slots_release(shm_cache *c);

/* Hazards (cache_reclaim.c): the current block of a bucket, protected
 * until shmi_cache_unprotect; an item of that block, protected when this
 * returns true (false: the bucket changed, protect its block again). */
uint64_t shmi_cache_protect_block(struct shmi_cache_slot *slot,
                                  const shmi_atomic_word *bucket);
bool shmi_cache_protect_item(struct shmi_cache_slot *slot,
                             const shmi_atomic_word *bucket, uint64_t head,
                             uint64_t item);
void shmi_cache_unprotect(struct shmi_cache_slot *slot);

/* The item of key in bucket, 0 when none: protects the bucket's block
 * (whose offset goes to *head, the item's position in it to *pos) and the
 * item. With slot NULL (a read-only cache) nothing is protected. */
uint64_t shmi_cache_lookup(const shm_cache *c, struct shmi_cache_slot *slot,
                           uint64_t bucket, uint64_t hash, const void *key,
                           size_t key_len, uint64_t *head, uint64_t *pos);

/* Hands a chunk that is no longer reachable to reclamation: it is freed
 * once no hazard names it. Reclaims nothing itself: the caller calls
 * shmi_cache_maybe_reclaim when its operation is done. */
void shmi_cache_retire(shm_cache *c, struct shmi_cache_slot *slot,
                       uint64_t off);

/* Whether a slot's ring holds off, retired and not yet freed. */
bool shmi_cache_ring_holds(const shm_cache *c,
                           const struct shmi_cache_slot *slot, uint64_t off);

/* Reclaims when enough was retired since the last time, or the ring is
 * half full. */
void shmi_cache_maybe_reclaim(shm_cache *c, struct shmi_cache_slot *slot);

/* Frees what can be freed now; tries to move the epoch on first. */
void shmi_cache_reclaim(shm_cache *c, struct shmi_cache_slot *slot);

/* Recovers the slots of dead owners (their updates in flight and their
 * retired chunks); returns how many. */
unsigned shmi_cache_recover_slots(shm_cache *c, struct shmi_cache_slot *mine);

/* A chunk of `size` bytes from the arena, counted in the cache's memory
 * (freed by reclamation, which takes it out again); SHM_NULL with errno. */
shm_offt shmi_cache_chunk_new(shm_cache *c, size_t size);

/* ---- cache_index.c ---- */

uint64_t shmi_cache_hash(const void *key, size_t len);

/* The block at off, or NULL when off cannot hold one. */
const struct shmi_cache_block *shmi_cache_block_at(const shm_cache *c,
                                                   uint64_t off);

/* The item at off, or NULL when off cannot hold one (offsets and lengths
 * read from the file are checked before they are followed). */
const struct shmi_cache_item *shmi_cache_item_at(const shm_cache *c,
                                                 uint64_t off);

/* Whether an item has expired at now_ms. */
static inline bool shmi_cache_expired(const struct shmi_cache_item *item,
                                      uint64_t now_ms)
{
    return item->expires_ms != 0 && item->expires_ms <= now_ms;
}

/*
 * One update of one bucket: replaces the entry at `pos` of the bucket's
 * current block `old_block` (pos == UINT64_MAX: adds one) by new_item, or
 * removes it (new_item 0), in a new block published with one CAS. The
 * caller has protected old_block (and the item at pos). Returns 0, EAGAIN
 * (the bucket changed since old_block was read: read it again), ENOMEM,
 * EBUSY (this writer's ring of retired chunks is full: call
 * shmi_cache_reclaim and try again). On success the replaced block and
 * the item no longer referenced are retired.
 */
int shmi_cache_update(shm_cache *c, struct shmi_cache_slot *slot,
                      uint64_t bucket, uint64_t old_block, uint64_t pos,
                      uint64_t new_item);

/* Finishes or undoes the update recorded in a dead owner's slot. */
void shmi_cache_resolve_pending(shm_cache *c, struct shmi_cache_slot *mine,
                                struct shmi_cache_slot *dead);

#endif /* SHM_CACHE_INTERNAL_H */
