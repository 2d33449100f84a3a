/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The growing index: which bucket holds a key, segments made on demand,
 * and buckets split from their parents (linear hashing, one bucket at a
 * time, every step one CAS of cache_index.c's update).
 *
 *   index_log2 = L        the buckets in use are 0 .. 2^L - 1; L grows by
 *                         one (a CAS) when the items outnumber the buckets
 *   directory[s]          0, or the segment of buckets s * 2^S .. ; made
 *                         by the first writer that needs one (CAS 0 -> seg)
 *   bucket j >= 2^L0      its parent is j without its top bit b
 *   (L0: made at creation)  word 0: not split off yet, its keys are still
 *                         in its parent's block; otherwise its own block
 *   block level l         the hash bits all its own keys share: a key of
 *                         hash h is the bucket's own when h mod 2^l == j
 *
 * A key of hash h is held by the bucket j = h mod 2^L if j is split off
 * (or j < 2^L0), else by the bucket that holds its parent's keys. Every
 * block's level is at least j's top bit + 1 (L0 for the first buckets),
 * and bucket j's children p + 2^k with k >= its level are not split off.
 *
 * Splitting child j = p + 2^b off its parent p (shmi_cache_install):
 *   0. make p first (recursively) and, while p's block is of a level l < b,
 *      split p + 2^l first: the children are split in order;
 *   1. raise: p's block at level b is replaced by the same entries at level
 *      b + 1 (an update; from now on no writer changes j's keys in p: they
 *      are not p's own any more, and a writer whose L is older than the
 *      block's level reads L again);
 *   2. split: a new block of p's entries that hash to j (h mod 2^(b+1) ==
 *      j), at level b + 1, CAS into j's word from 0.
 * The entries stay in p's block too; they are current there while j's
 * word is 0 and stale once it is not. Every update of p leaves stale
 * entries out without retiring their items, which are j's now (each item
 * is still retired once, by the bucket that holds its key: X2); every
 * writer, eviction included, changes only entries that are its bucket's
 * own. Anyone who finds the steps half done finishes them, and each step
 * is recorded like any update, so a writer killed between them leaves a
 * state the next writer completes.
 *
 * Readers (shmi_cache_find, in cache_index.c beside the lookup) walk from h mod
 * 2^L to the first bucket that is split off and look there; when they went down
 * through a child c, the entry they found (or its absence) counts only if c's
 * word still reads 0 after the item's hazard is set: a stale entry's item may
 * already be retired by c's writers, but only after c's word stopped being 0,
 * and the hazard was set before that was checked (cache_reclaim.c's H1). A
 * block whose level exceeds the reader's L means L was old: read it again.
 * Readers write nothing here, as before.
 *
 * Segments: a writer that needs bucket j whose segment is not made
 * allocates and zeroes one, records it in its slot (pending_segment),
 * CASes the directory from 0, clears the record and, if another writer's
 * segment won, frees its own. The recovery of a dead writer frees the
 * recorded segment unless the directory names it. A bucket whose segment
 * is not made reads as 0.
 *
 * No room to grow: a writer whose key's bucket cannot be made (no chunk
 * for a segment or a block, in a full cache) updates the bucket readers
 * look in instead, the first parent split off, if that bucket's level
 * still owns the key: a split that would move the key away raises that
 * bucket first, so the update's CAS fails and the writer reads again.
 * Eviction falls back to that bucket the same way, so that a full cache
 * still makes room.
 *
 * Cost: a lookup of a bucket split off is as before (one word, one block);
 * until a bucket is split, its readers read one word more per level.
 * Growth never moves an entry: a split copies (hash, item) pairs of one
 * block, and the old level's entries go with the parent's next update.
 */
#include "cache_internal.h"

#include <errno.h>
#include <string.h>

#if SHM_TEST_HOOKS
void (*shmi_cache_test_hook)(unsigned point);
#endif

shmi_atomic_word *shmi_cache_segment_load(const shm_cache *c, uint64_t s)
{
    if (s >= c->segments)
        return NULL;
    /* seq_cst: a reader that checks a bucket after setting a hazard must
     * not read an older directory than the writer that made the bucket
     * (see Readers); acquire: the segment was zeroed before the CAS. */
    uint64_t off = shmi_atomic_load_seq_cst(&c->directory[s]);
    uint64_t bytes = UINT64_C(8) << c->segment_log2;
    if (off < c->data_start || off > c->data_end - bytes || off % 8 != 0)
        return NULL; /* not made, or damaged */
    shmi_atomic_word *seg = (shmi_atomic_word *)(c->base + off);
    /* release: pairs with shmi_cache_bucket's acquire. */
    atomic_store_explicit(&c->segment[s], seg, memory_order_release);
    return seg;
}

bool shmi_cache_entry_current(const shm_cache *c, uint64_t bucket,
                              unsigned level, uint64_t hash)
{
    if (shmi_cache_entry_own(bucket, level, hash))
        return true;
    uint64_t below = (hash & ((UINT64_C(1) << level) - 1)) ^ bucket;
    unsigned base = bucket < shmi_cache_first_buckets(c)
                        ? c->initial_log2
                        : 64 - (unsigned)__builtin_clzll(bucket);
    if (below & ((UINT64_C(1) << base) - 1))
        return false; /* damaged: it never belonged to this bucket */
    /* The child of `bucket` on the way to the entry's bucket. */
    uint64_t child = bucket | (below & -below);
    return !shmi_cache_split_off(c, child);
}

/* Makes segment s of the directory: 0, ENOMEM, EIO. */
static int segment_make(shm_cache *c, struct shmi_cache_slot *slot, uint64_t s)
{
    if (s >= c->segments)
        return EIO;
    if (shmi_atomic_load_seq_cst(&c->directory[s]) == 0) {
        size_t bytes = (size_t)8 << c->segment_log2;
        shm_offt off = shmi_cache_chunk_new(c, slot, bytes);
        if (off == SHM_NULL)
            return ENOMEM;
        /* relaxed: read by a recoverer only, after this thread died. */
        shmi_atomic_store_relaxed(&slot->pending_segment_index, s + 1);
        shmi_atomic_store_relaxed(&slot->pending_segment, off);
        memset(c->base + off, 0, bytes);
        SHMI_CACHE_TEST_POINT(SHMI_CACHE_AT_SEGMENT_RECORDED);
        uint64_t expected = 0;
        /* seq_cst: publishes the zeroed words (release); see Readers. */
        bool won = shmi_atomic_cas_seq_cst(&c->directory[s], &expected, off);
        /* The record goes before the free: a recoverer must never free
         * it again once it may be someone else's. */
        shmi_atomic_store_relaxed(&slot->pending_segment, 0);
        shmi_atomic_store_relaxed(&slot->pending_segment_index, 0);
        if (!won)
            shmi_cache_chunk_free(c, slot, off);
    }
    return shmi_cache_segment_load(c, s) ? 0 : EIO;
}

int shmi_cache_install(shm_cache *c, struct shmi_cache_slot *slot,
                       uint64_t index)
{
    if (index >> c->max_log2)
        return EIO;
    shmi_atomic_word *word = shmi_cache_bucket(c, index);
    if (!word) {
        int err = segment_make(c, slot, index >> c->segment_log2);
        if (err)
            return err;
        word = shmi_cache_bucket(c, index);
    }
    if (index < shmi_cache_first_buckets(c))
        return 0;
    unsigned top = 63 - (unsigned)__builtin_clzll(index);
    uint64_t parent = index ^ (UINT64_C(1) << top);
    /* Each round either finds the bucket made or makes one step of it;
     * a step fails (EAGAIN) only when another writer made one. */
    for (;;) {
        /* acquire: pairs with the CAS that made it (X1). */
        if (shmi_atomic_load_acquire(word) != 0)
            return 0;
        int err = shmi_cache_install(c, slot, parent);
        if (err)
            return err;
        const shmi_atomic_word *parent_word = shmi_cache_bucket(c, parent);
        uint64_t head = shmi_cache_protect_block(slot, parent_word);
        if (!shmi_cache_head_valid(c, head)) {
            shmi_cache_unprotect(slot);
            return EIO; /* damaged */
        }
        unsigned level = shmi_cache_level_of(c, head);
        if (level < top) {
            shmi_cache_unprotect(slot);
            err = shmi_cache_install(c, slot, parent | (UINT64_C(1) << level));
        } else if (level == top) {
            err = shmi_cache_raise(c, slot, parent, head);
            shmi_cache_unprotect(slot);
            if (!err)
                SHMI_CACHE_TEST_POINT(SHMI_CACHE_AT_RAISED);
        } else {
            err = shmi_cache_split(c, slot, index, head);
            shmi_cache_unprotect(slot);
        }
        if (err && err != EAGAIN)
            return err;
    }
}

void shmi_cache_grow(shm_cache *c, uint64_t items)
{
    unsigned levels = shmi_cache_levels(c);
    uint64_t expected = levels;
    /* relaxed: nothing is published with it (see shmi_cache_levels). A
     * lost CAS means another writer grew it. */
    if (items > UINT64_C(1) << levels && levels < c->max_log2)
        atomic_compare_exchange_strong_explicit(
            &c->header->index_log2, &expected, expected + 1,
            memory_order_relaxed, memory_order_relaxed);
}

void shmi_cache_resolve_segment(shm_cache *c, struct shmi_cache_slot *dead)
{
    uint64_t off = shmi_atomic_load_relaxed(&dead->pending_segment);
    uint64_t s = shmi_atomic_load_relaxed(&dead->pending_segment_index);
    if (off != 0 && s != 0 && s - 1 < c->segments &&
        shmi_atomic_load_seq_cst(&c->directory[s - 1]) != off &&
        off >= c->data_start && off < c->data_end)
        shmi_cache_chunk_free(c, dead, off); /* never published */
    shmi_atomic_store_relaxed(&dead->pending_segment, 0);
    shmi_atomic_store_relaxed(&dead->pending_segment_index, 0);
}
