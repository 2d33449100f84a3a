/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The process-local handle of a cache and the calls its three files share:
 *
 *   cache_reclaim.c thread slots, hazards, retired chunks, reclamation,
 *                   and the recovery of a dead owner's slot
 *   cache_index.c   buckets, blocks and items: lookup and the one-CAS
 *                   update of a bucket
 *   cache_split.c   the growing index: which bucket holds a key, segments
 *                   made on demand, buckets split from their parents
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
#include "os.h"

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
    /* Buckets: segment[i >> segment_log2][i & segment_mask]; a segment is
     * looked up in the file's directory on first use (cache_split.c). */
    _Atomic(shmi_atomic_word *) *segment;
    shmi_atomic_word *directory;
    uint64_t segments; /* entries of directory and of segment */
    unsigned segment_log2;
    uint64_t segment_mask;
    unsigned initial_log2; /* buckets made at creation */
    unsigned max_log2;     /* buckets the index can grow to */
    /* Thread slots. */
    struct shmi_cache_slot **slot_chunk;
    unsigned slot_chunks; /* entries of slot_chunk */
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

/* The segment s from the directory, NULL while it has none (or a damaged
 * one); remembered in the handle once found. */
shmi_atomic_word *shmi_cache_segment_load(const shm_cache *c, uint64_t s);

/* The word of bucket `index` (< 2^max_log2), NULL while its segment is
 * not made: such a bucket reads as 0. */
static inline shmi_atomic_word *shmi_cache_bucket(const shm_cache *c,
                                                  uint64_t index)
{
    uint64_t s = index >> c->segment_log2;
    /* acquire: the segment's words were zeroed before the directory named
     * it (shmi_cache_segment_load). */
    shmi_atomic_word *seg =
        atomic_load_explicit(&c->segment[s], memory_order_acquire);
    if (__builtin_expect(seg == NULL, 0))
        seg = shmi_cache_segment_load(c, s);
    return seg ? seg + (index & c->segment_mask) : NULL;
}

static inline struct shmi_cache_slot *shmi_cache_slot_at(const shm_cache *c,
                                                         unsigned index)
{
    return c->slot_chunk[index / c->slots_per_chunk] +
           index % c->slots_per_chunk;
}

/* Adds n to one of a slot's counters: only the slot's owner calls it. */
static inline void shmi_cache_slot_count(shmi_atomic_word *counter, uint64_t n)
{
    /* relaxed: only the owner writes it; shm_cache_stats sums it. */
    shmi_atomic_store_relaxed(counter, shmi_atomic_load_relaxed(counter) + n);
}

/* The index of a slot of c (UINT32_MAX for a pointer that is none). */
static inline unsigned shmi_cache_slot_index(const shm_cache *c,
                                             const struct shmi_cache_slot *slot)
{
    for (unsigned k = 0; k < c->slot_chunks; k++) {
        const struct shmi_cache_slot *first = c->slot_chunk[k];
        if (slot >= first && slot < first + c->slots_per_chunk)
            return k * c->slots_per_chunk + (unsigned)(slot - first);
    }
    return UINT32_MAX;
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

/* The item of key in the bucket whose word is `word` (NULL: a bucket not
 * made, empty), 0 when none: protects the bucket's block (whose offset
 * goes to *head, the item's position in it to *pos) and the item. With
 * slot NULL (a read-only cache) nothing is protected. `unsplit`, when not
 * UINT64_MAX, is a bucket below this one whose word must still read 0
 * once the item is protected (cache_split.c): if it does not, or the
 * block is of a level above `levels`, SHMI_CACHE_RESTART. */
#define SHMI_CACHE_RESTART UINT64_C(1)
uint64_t shmi_cache_lookup(const shm_cache *c, struct shmi_cache_slot *slot,
                           const shmi_atomic_word *word, uint64_t unsplit,
                           unsigned levels, uint64_t hash, const void *key,
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
 * as the share of `slot`, which the caller holds (freed by reclamation,
 * which takes it out again); SHM_NULL with errno. */
shm_offt shmi_cache_chunk_new(shm_cache *c, struct shmi_cache_slot *slot,
                              size_t size);

/* Gives back a chunk, taking it out of the cache's memory (the share of
 * `slot`, which the caller holds). */
void shmi_cache_chunk_free(shm_cache *c, struct shmi_cache_slot *slot,
                           uint64_t off);

/* ---- cache_index.c ---- */

uint64_t shmi_cache_hash(const void *key, size_t len);

/* The block at off, or NULL when off cannot hold one. */
const struct shmi_cache_block *shmi_cache_block_at(const shm_cache *c,
                                                   uint64_t off);

/* The item at off, or NULL when off cannot hold one (offsets and lengths
 * read from the file are checked before they are followed). */
const struct shmi_cache_item *shmi_cache_item_at(const shm_cache *c,
                                                 uint64_t off);

/* An item's fields packed in its header (cache_layout.h). */
static inline uint64_t shmi_cache_item_expiry_key(uint64_t expires_ms,
                                                  size_t key_len)
{
    return expires_ms << SHMI_CACHE_ITEM_KEY_BITS | key_len;
}

static inline size_t shmi_cache_item_key_len(const struct shmi_cache_item *item)
{
    return (size_t)(item->expiry_key &
                    ((UINT64_C(1) << SHMI_CACHE_ITEM_KEY_BITS) - 1));
}

static inline uint64_t
shmi_cache_item_expires(const struct shmi_cache_item *item)
{
    return item->expiry_key >> SHMI_CACHE_ITEM_KEY_BITS;
}

static inline const unsigned char *
shmi_cache_item_value(const struct shmi_cache_item *item)
{
    return item->bytes + shmi_cache_item_key_len(item);
}

/* The version shm_cache_gets reports: the slot and number of the update
 * that published the item. */
static inline uint64_t
shmi_cache_item_version(const struct shmi_cache_item *item)
{
    return item->origin & ~SHMI_CACHE_ITEM_LEVEL_MASK;
}

/* Whether an item has expired at now_ms. */
static inline bool shmi_cache_expired(const struct shmi_cache_item *item,
                                      uint64_t now_ms)
{
    uint64_t expires = shmi_cache_item_expires(item);
    return expires != 0 && expires <= now_ms;
}

/* Whether an item has expired now; the clock is read only for an item
 * that has an expiry. */
static inline bool shmi_cache_expired_now(const struct shmi_cache_item *item)
{
    uint64_t expires = shmi_cache_item_expires(item);
    return expires != 0 && expires <= shmi_os_monotonic_ms();
}

/*
 * One update of one bucket: replaces the entry at `pos` of the bucket's
 * current block `old_block` (pos == UINT64_MAX: adds one) by new_item, of
 * key hash new_hash, or removes it (new_item 0), in a new block published with
 * one CAS. The caller has protected old_block (and the item at pos). Returns 0,
 * EAGAIN (the bucket changed since old_block was read: read it again), ENOMEM,
 * EBUSY (this writer's ring of retired chunks is full: call
 * shmi_cache_reclaim and try again). On success the replaced block and
 * the item no longer referenced are retired.
 */
int shmi_cache_update(shm_cache *c, struct shmi_cache_slot *slot,
                      uint64_t bucket, uint64_t old_block, uint64_t pos,
                      uint64_t new_item, uint64_t new_hash);

/* How many chunks resolving the update a dead writer's slot records may
 * retire (shmi_cache_resolve_pending): its block, item and the one it
 * made, or, for a clear, the cleared block's entries too. */
unsigned shmi_cache_pending_retires(const shm_cache *c,
                                    const struct shmi_cache_slot *dead);

/* An update that empties bucket `bucket` of its own entries: its
 * protected block old_block is replaced by an empty marker, which needs
 * no chunk, and every entry the bucket owns leaves with it (*removed
 * gets how many). For eviction when the arena has no chunk for a block:
 * the block itself comes back. Returns 0, EAGAIN, EBUSY as an update
 * does, or EEXIST when the block also holds entries of a bucket below
 * not split off yet (they would need a block of their own). */
int shmi_cache_clear(shm_cache *c, struct shmi_cache_slot *slot,
                     uint64_t bucket, uint64_t old_block, unsigned *removed);

/* The bytes of a block of the entries of head (a bucket word) and
 * `extra` more: what an update adding one needs. */
uint64_t shmi_cache_block_bytes(const shm_cache *c, uint64_t head,
                                unsigned extra);

/* The same update with the entries unchanged and the block's level raised
 * by one: the first step of splitting bucket + 2^level (cache_split.c). */
int shmi_cache_raise(shm_cache *c, struct shmi_cache_slot *slot,
                     uint64_t bucket, uint64_t old_block);

/* The second step: bucket `child` (word 0) gets a block of the entries of
 * its parent's protected block `parent_block` that hash to it, with one
 * CAS from 0. 0, EAGAIN (the child was made by another), ENOMEM, EBUSY. */
int shmi_cache_split(shm_cache *c, struct shmi_cache_slot *slot, uint64_t child,
                     uint64_t parent_block);

/* Bucket words (cache_index.c): bit 0 an empty marker, bit 1 an item
 * that is the bucket's only entry (a "direct" head), neither a block. */
#define SHMI_CACHE_HEAD_MARKER 1u
#define SHMI_CACHE_HEAD_DIRECT 2u
#define SHMI_CACHE_HEAD_TAGS 3u

static inline bool shmi_cache_is_marker(uint64_t head)
{
    return (head & SHMI_CACHE_HEAD_MARKER) != 0;
}

static inline bool shmi_cache_is_direct(uint64_t head)
{
    return (head & SHMI_CACHE_HEAD_TAGS) == SHMI_CACHE_HEAD_DIRECT;
}

/* The chunk a bucket word names: the block, or the direct item. */
static inline uint64_t shmi_cache_head_chunk(uint64_t head)
{
    return shmi_cache_is_direct(head) ? head & ~(uint64_t)SHMI_CACHE_HEAD_TAGS
                                      : head;
}

/* A bucket's entries as one sees them through its word, whatever kind
 * of word it is; `entry` may point at `one`. */
struct shmi_cache_view {
    uint64_t count;
    unsigned level;
    const struct shmi_cache_entry *entry;
    struct shmi_cache_entry one;
};

/* Reads the bucket word `head` (protected) into v; false when it is
 * damaged. A direct item's hash is computed only `with_hash`. */
bool shmi_cache_view_of(const shm_cache *c, uint64_t head, bool with_hash,
                        struct shmi_cache_view *v);

/* Whether a word read from the file is 0, a marker, a block or an item
 * that checks out. */
bool shmi_cache_head_valid(const shm_cache *c, uint64_t head);

/* The level of the block at head of `bucket` (head 0: the level a bucket
 * made at creation starts with). */
unsigned shmi_cache_level_of(const shm_cache *c, uint64_t head);

/* ---- cache_split.c ---- */

/* The buckets made at creation: below it, a bucket word 0 is empty. */
static inline uint64_t shmi_cache_first_buckets(const shm_cache *c)
{
    return UINT64_C(1) << c->initial_log2;
}

/* Whether bucket `index` has a block of its own (cache_split.c). */
static inline bool shmi_cache_split_off(const shm_cache *c, uint64_t index)
{
    const shmi_atomic_word *word = shmi_cache_bucket(c, index);
    /* seq_cst: see cache_split.c, Readers. */
    return word && shmi_atomic_load_seq_cst(word) != 0;
}

/* The buckets in use, log2 (read from the file, checked). */
static inline unsigned shmi_cache_levels(const shm_cache *c)
{
    /* relaxed: an old value is safe (blocks of a higher level send the
     * caller back here, cache_split.c). */
    uint64_t l = shmi_atomic_load_relaxed(&c->header->index_log2);
    if (__builtin_expect(l > c->max_log2, 0))
        return c->max_log2; /* damaged: as far as the directory goes */
    return l < c->initial_log2 ? c->initial_log2 : (unsigned)l;
}

/* Whether an entry of hash `hash` in a block of `bucket` at `level` is
 * current: its own, or one of a bucket below not yet split off. */
bool shmi_cache_entry_current(const shm_cache *c, uint64_t bucket,
                              unsigned level, uint64_t hash);

/* Whether it is the bucket's own (hash & (2^level - 1) == bucket). */
static inline bool shmi_cache_entry_own(uint64_t bucket, unsigned level,
                                        uint64_t hash)
{
    return (hash & ((UINT64_C(1) << level) - 1)) == bucket;
}

/* Makes bucket `index` (its segment, its parents, its own block), so
 * that a writer may update it: 0, ENOMEM, EBUSY (reclaim and call
 * again), EIO (a damaged index). */
int shmi_cache_install(shm_cache *c, struct shmi_cache_slot *slot,
                       uint64_t index);

/* The bucket readers look in for `hash` under `levels`: hash mod
 * 2^levels, or the first of its parents that is split off; *unsplit, when
 * unsplit is not NULL, is the bucket it went down through last
 * (UINT64_MAX: none). */
uint64_t shmi_cache_home(const shm_cache *c, uint64_t hash, unsigned levels,
                         uint64_t *unsplit);

/* A reader's lookup of key: the bucket that holds it under the current
 * levels, through the parents of buckets not yet split (cache_index.c). */
uint64_t shmi_cache_find(const shm_cache *c, struct shmi_cache_slot *slot,
                         uint64_t hash, const void *key, size_t key_len);

/* Grows the index by one level when `items` exceeds its buckets. */
void shmi_cache_grow(shm_cache *c, uint64_t items);

/* Gives back a segment a dead writer made and the directory never got. */
void shmi_cache_resolve_segment(shm_cache *c, struct shmi_cache_slot *dead);

/* SHM_TEST_HOOKS builds: called at the steps of an update and of the
 * index's growth where a kill must leave a state the recovery and the
 * next writer finish (a test stops the process there). */
#define SHMI_CACHE_AT_SEGMENT_RECORDED 1u /* segment made, not in directory */
#define SHMI_CACHE_AT_RAISED 2u           /* parent raised, child not split */
#define SHMI_CACHE_AT_RECORDED 3u         /* update recorded, before its CAS */
#define SHMI_CACHE_AT_PUBLISHED 4u        /* CAS done, not marked installed */
#if SHM_TEST_HOOKS
extern void (*shmi_cache_test_hook)(unsigned point);
#define SHMI_CACHE_TEST_POINT(point)                                           \
    do {                                                                       \
        if (shmi_cache_test_hook)                                              \
            shmi_cache_test_hook(point);                                       \
    } while (0)
#else
#define SHMI_CACHE_TEST_POINT(point) ((void)0)
#endif

/* Finishes or undoes the update recorded in a dead owner's slot. */
void shmi_cache_resolve_pending(shm_cache *c, struct shmi_cache_slot *mine,
                                struct shmi_cache_slot *dead);

#endif /* SHM_CACHE_INTERNAL_H */
