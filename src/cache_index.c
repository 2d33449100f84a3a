/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The cache's index: buckets, blocks and items, and the one-CAS update.
 *
 *   bucket word:  0 (never written), the offset of its current block, an
 *                 empty marker naming the update that emptied it, or a
 *                 direct item, the bucket's only entry (see below)
 *   block:        origin | count | level | (hash, item) x count
 *                 never changed
 *   item:         origin | expiry, key length | value length | used |
 *                 key value; never changed but for `used`, the eviction
 *                 hint, after the update that publishes it wrote origin
 *   slot record:  state = number << 2 | IDLE, PENDING or INSTALLED, and
 *                 (bucket, B, R, B', I) of the update numbered `number`
 *
 * Update of a bucket by writer W (set, add, replace, cas, incr, delete,
 * eviction), with the bucket's current block B protected (a hazard):
 *   1. make B': B without the entry at pos (item R), plus the new item I
 *      if any; B'.origin names W's slot and the update's number n (a B'
 *      with no entry is an empty marker, which names them itself);
 *   2. record (bucket, B, R, B', I), then state = (n, PENDING);
 *   3. mark B's own update installed (below), then CAS the bucket word
 *      B -> B' (the linearization point of the operation);
 *   4. failure: retire B' (no one else ever saw it), clear the record,
 *      start again from reading the bucket;
 *   5. success: retire B and R, then set the state IDLE. No reclaim
 *      runs between 5's retires and the IDLE store, so whatever the
 *      record names is either not yet retired or still in W's ring. The
 *      state is not marked installed here: until B' is replaced the
 *      bucket word says the CAS happened, and whoever replaces B' marks
 *      it first (3), so a recoverer learns it either way.
 * A clear (eviction when the arena has no chunk for a block) is the same
 * update with B' an empty marker and R recorded as REMOVED_OWN: every
 * entry of B that the bucket owns at B's level leaves, all retired in 5
 * before B; B, immutable and not freed before the record is idle, says
 * which they are to a recoverer as well.
 * Marking installed (3): before replacing B, every writer CASes the state
 * of the slot B.origin names from (its number, PENDING) to (number,
 * INSTALLED); it fails harmlessly when that update was marked already or
 * its slot moved on. So a block stops being a bucket's current block only
 * after its update was marked installed.
 *
 * Invariants:
 *   X1  a bucket word only ever names a complete block: B' and its item
 *       are written before the CAS that publishes them (release), and
 *       readers load the word with acquire;
 *   X2  every chunk that becomes unreachable is retired exactly once: B'
 *       of a failed update by W (private), B and R of an installed one by
 *       W, or by the recovery of W, which holds W's slot alone;
 *   X3  an item is referenced by blocks of one bucket only, and once the
 *       bucket's current block does not reference it, no later block will.
 *
 * Readers never write to a block or a bucket: a get protects the bucket's
 * block and the item (cache_reclaim.c), and writes only `used`, once.
 * Writers read only the block they protected and the item at pos.
 *
 * Progress: an update retries only when its CAS failed, i.e. when another
 * update of the same bucket succeeded. Lock-free, not wait-free.
 *
 * Crashes. The recovery of W's slot (cache_reclaim.c) reads its record:
 *   - IDLE with an item recorded: I was never published: retire it;
 *   - INSTALLED: the CAS happened: retire B and R (those not already in
 *     W's ring; for REMOVED_OWN, each own item of B);
 *   - PENDING: load the bucket word, then the state again. If the word is
 *     B', or the state became INSTALLED, the CAS happened: as above.
 *     Otherwise it never happened (a writer that replaced B' would have
 *     marked it installed before its CAS, and that CAS came before this
 *     load): retire B' and I, which no one else saw.
 * What a kill can still leak is a chunk between the allocator handing it
 * out and the record naming it, or one being freed (a few instructions,
 * as inside shm_malloc and shm_free themselves).
 */
#include "cache_internal.h"

#include <errno.h>
#include <string.h>

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

static inline uint64_t load32(const unsigned char *p)
{
    uint32_t w;
    memcpy(&w, p, 4);
    return w;
}

static inline uint64_t hash_step(uint64_t h, uint64_t w)
{
    h = (h ^ (w * UINT64_C(0xc4ceb9fe1a85ec53))) * UINT64_C(0x100000001b3);
    return h ^ (h >> 29);
}

/* Words of 8 bytes, the last one overlapping the one before when the
 * length is not a multiple of 8 (the length is mixed in first, so keys
 * that share those bytes still differ); shorter keys in two overlapping
 * loads. No call, no loop over bytes. */
uint64_t shmi_cache_hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h =
        UINT64_C(0x9e3779b97f4a7c15) ^ (len * UINT64_C(0xff51afd7ed558ccd));
    if (len >= 8) {
        const unsigned char *last = p + len - 8;
        for (; p < last; p += 8)
            h = hash_step(h, load64(p));
        h = hash_step(h, load64(last));
    } else if (len >= 4) {
        h = hash_step(h, load32(p) | load32(p + len - 4) << 32);
    } else if (len > 0) {
        h = hash_step(h, (uint64_t)p[0] | (uint64_t)p[len / 2] << 8 |
                             (uint64_t)p[len - 1] << 16);
    }
    h ^= h >> 32;
    h *= UINT64_C(0xd6e8feb86659fd93);
    return h ^ (h >> 32);
}

/* Whether off can be a chunk of `size` bytes of this arena: offsets read
 * from the file are checked before they are followed. */
static bool chunk_fits(const shm_cache *c, uint64_t off, uint64_t size)
{
    return off >= c->data_start && off < c->data_end &&
           size <= c->data_end - off && size <= SHMI_CACHE_MAX_CHUNK &&
           off % SHMI_CACHE_MIN_CHUNK == 0;
}

const struct shmi_cache_block *shmi_cache_block_at(const shm_cache *c,
                                                   uint64_t off)
{
    if (off == 0 || !chunk_fits(c, off, sizeof(struct shmi_cache_block)))
        return NULL;
    const struct shmi_cache_block *b = shmi_cache_at(c, off);
    if (b->count > c->max_entries || b->level > c->max_log2 ||
        b->level < c->initial_log2 ||
        !chunk_fits(c, off,
                    sizeof *b + b->count * sizeof(struct shmi_cache_entry)))
        return NULL; /* damaged */
    return b;
}

/* Empty markers: a bucket left empty by an update holds no block but a
 * word of its own that no other update makes (bit 0 set; chunks are
 * aligned, so no block's offset has it):
 *
 *    63     48 47      39 38             7 6       1 0
 *   +---------+----------+----------------+---------+---+
 *   |    0    | slot + 1 |  update number | level   | 1 |
 *   +---------+----------+----------------+---------+---+
 *
 * It names its update as a block's origin does, so the protocol above
 * (marking installed, recovery's head == made) holds for it unchanged;
 * there is nothing to retire when it is replaced. */
#define MARKER_LEVEL_SHIFT 1
#define MARKER_NUMBER_SHIFT 7
#define MARKER_SLOT_SHIFT 39

static uint64_t marker_make(uint64_t origin, unsigned level)
{
    return (origin >> 32) << MARKER_SLOT_SHIFT |
           (origin & UINT32_MAX) << MARKER_NUMBER_SHIFT |
           (uint64_t)level << MARKER_LEVEL_SHIFT | 1;
}

/* Direct heads: a bucket whose only entry is an item made by the update
 * that publishes it names the item itself (tag SHMI_CACHE_HEAD_DIRECT),
 * with the update's origin and the bucket's level written in the item
 * before the CAS: a get then reads one chunk, not a block and an item.
 * Only a fresh item becomes a direct head, once, so a direct word is as
 * unique as a block's offset (an item is freed only when retired and no
 * hazard names it); an update that leaves one older entry alone makes a
 * block of one. The item is the bucket's entry and its "block": it is
 * retired once, as the entry removed, never as a replaced block. */
static unsigned direct_level(const struct shmi_cache_item *item)
{
    return (unsigned)((item->origin & SHMI_CACHE_ITEM_LEVEL_MASK) >>
                      SHMI_CACHE_ITEM_LEVEL_SHIFT);
}

/* Update numbers: 48 bits in a slot's state and an item's origin, their
 * low 32 bits in a block's origin and a marker, which is what marking
 * installed compares. */
#define NUMBER_MASK ((UINT64_C(1) << SHMI_CACHE_ITEM_NUMBER_BITS) - 1)

static bool level_fits(const shm_cache *c, uint64_t level)
{
    return level >= c->initial_log2 && level <= c->max_log2;
}

bool shmi_cache_view_of(const shm_cache *c, uint64_t head, bool with_hash,
                        struct shmi_cache_view *v)
{
    v->count = 0;
    v->entry = NULL;
    v->level = c->initial_log2;
    if (head == 0)
        return true;
    if (shmi_cache_is_marker(head)) {
        uint64_t level = (head >> MARKER_LEVEL_SHIFT) & 63;
        v->level = (unsigned)level;
        return level_fits(c, level) &&
               (head >> MARKER_SLOT_SHIFT) <= c->slot_count;
    }
    if (shmi_cache_is_direct(head)) {
        uint64_t off = shmi_cache_head_chunk(head);
        const struct shmi_cache_item *item = shmi_cache_item_at(c, off);
        if (!item)
            return false;
        unsigned level = direct_level(item);
        if (!level_fits(c, level))
            return false;
        v->level = level;
        v->one.item = off;
        v->one.hash = with_hash ? shmi_cache_hash(item->bytes,
                                                  shmi_cache_item_key_len(item))
                                : 0;
        v->entry = &v->one;
        v->count = 1;
        return true;
    }
    const struct shmi_cache_block *b = shmi_cache_block_at(c, head);
    if (!b)
        return false;
    v->count = b->count;
    v->level = b->level;
    v->entry = b->entry;
    return true;
}

/* The origin a word names (0: none, or damaged). */
static uint64_t origin_of(const shm_cache *c, uint64_t head)
{
    if (shmi_cache_is_marker(head))
        return (head >> MARKER_SLOT_SHIFT) << 32 |
               ((head >> MARKER_NUMBER_SHIFT) & UINT32_MAX);
    if (shmi_cache_is_direct(head)) {
        const struct shmi_cache_item *item =
            shmi_cache_item_at(c, shmi_cache_head_chunk(head));
        return item ? (item->origin >> SHMI_CACHE_ITEM_SLOT_SHIFT) << 32 |
                          (item->origin & UINT32_MAX)
                    : 0;
    }
    const struct shmi_cache_block *b = shmi_cache_block_at(c, head);
    return b ? b->origin : 0;
}

bool shmi_cache_head_valid(const shm_cache *c, uint64_t head)
{
    struct shmi_cache_view v;
    return shmi_cache_view_of(c, head, false, &v);
}

unsigned shmi_cache_level_of(const shm_cache *c, uint64_t head)
{
    struct shmi_cache_view v;
    return shmi_cache_view_of(c, head, false, &v) ? v.level : c->initial_log2;
}

const struct shmi_cache_item *shmi_cache_item_at(const shm_cache *c,
                                                 uint64_t off)
{
    if (!chunk_fits(c, off, sizeof(struct shmi_cache_item)))
        return NULL;
    const struct shmi_cache_item *item = shmi_cache_at(c, off);
    if (!chunk_fits(c, off,
                    sizeof *item + shmi_cache_item_key_len(item) +
                        item->value_len))
        return NULL; /* damaged */
    return item;
}

/* Whether a bucket below that had not been split when the lookup began
 * still is not (cache_split.c: entries taken from its parent are current
 * only while it is not). seq_cst: after the hazard stores. */
static bool still_unsplit(const shm_cache *c, uint64_t unsplit)
{
    if (unsplit == UINT64_MAX)
        return true;
    const shmi_atomic_word *word = shmi_cache_bucket(c, unsplit);
    return !word || shmi_atomic_load_seq_cst(word) == 0;
}

static inline __attribute__((always_inline)) uint64_t
lookup(const shm_cache *c, struct shmi_cache_slot *slot,
       const shmi_atomic_word *word, uint64_t unsplit, unsigned levels,
       uint64_t hash, const void *key, size_t key_len, uint64_t *head,
       uint64_t *pos)
{
    *pos = UINT64_MAX;
    *head = 0;
    if (!word)
        return 0; /* its segment is not made: empty */
again:
    /* acquire (in protect, seq_cst): pairs with the CAS that published
     * the block (X1). */
    *head = slot ? shmi_cache_protect_block(slot, word)
                 : shmi_atomic_load_acquire(word);
    if (shmi_cache_is_direct(*head)) {
        /* The item is the head: protected with it. */
        uint64_t off = shmi_cache_head_chunk(*head);
        const struct shmi_cache_item *item = shmi_cache_item_at(c, off);
        if (!item)
            return 0; /* damaged */
        if (direct_level(item) > levels)
            return SHMI_CACHE_RESTART;
        if (!still_unsplit(c, unsplit))
            return SHMI_CACHE_RESTART;
        if (shmi_cache_item_key_len(item) != key_len ||
            memcmp(item->bytes, key, key_len) != 0)
            return 0;
        *pos = 0;
        return off;
    }
    const struct shmi_cache_block *b = shmi_cache_block_at(c, *head);
    if ((b && b->level > levels) ||
        (!b && *head != 0 && shmi_cache_level_of(c, *head) > levels))
        return SHMI_CACHE_RESTART; /* the index grew since levels was read */
    for (uint64_t i = 0; b && i < b->count; i++) {
        if (b->entry[i].hash != hash)
            continue;
        uint64_t off = b->entry[i].item;
        if (slot && !shmi_cache_protect_item(slot, word, *head, off))
            goto again; /* the bucket changed: its block may be gone */
        if (!still_unsplit(c, unsplit))
            return SHMI_CACHE_RESTART; /* the key's bucket was split off */
        const struct shmi_cache_item *item = shmi_cache_item_at(c, off);
        if (item && shmi_cache_item_key_len(item) == key_len &&
            memcmp(item->bytes, key, key_len) == 0) {
            *pos = i;
            return off;
        }
    }
    /* A miss counts only if the key's entries were still here. */
    return still_unsplit(c, unsplit) ? 0 : SHMI_CACHE_RESTART;
}

uint64_t shmi_cache_lookup(const shm_cache *c, struct shmi_cache_slot *slot,
                           const shmi_atomic_word *word, uint64_t unsplit,
                           unsigned levels, uint64_t hash, const void *key,
                           size_t key_len, uint64_t *head, uint64_t *pos)
{
    return lookup(c, slot, word, unsplit, levels, hash, key, key_len, head,
                  pos);
}

/* The readers' walk of cache_split.c (Readers), beside the lookup it
 * ends with so that a get makes one call. */
uint64_t shmi_cache_home(const shm_cache *c, uint64_t hash, unsigned levels,
                         uint64_t *unsplit)
{
    uint64_t index = hash & ((UINT64_C(1) << levels) - 1);
    uint64_t below = UINT64_MAX;
    while (index >= shmi_cache_first_buckets(c) &&
           !shmi_cache_split_off(c, index)) {
        below = index;
        index ^= UINT64_C(1) << (63 - __builtin_clzll(index));
    }
    if (unsplit)
        *unsplit = below;
    return index;
}

uint64_t shmi_cache_find(const shm_cache *c, struct shmi_cache_slot *slot,
                         uint64_t hash, const void *key, size_t key_len)
{
    for (;;) {
        unsigned levels = shmi_cache_levels(c);
        uint64_t unsplit;
        uint64_t index = shmi_cache_home(c, hash, levels, &unsplit);
        uint64_t head, pos;
        uint64_t found = lookup(c, slot, shmi_cache_bucket(c, index), unsplit,
                                levels, hash, key, key_len, &head, &pos);
        if (found != SHMI_CACHE_RESTART)
            return found;
    }
}

/* Bytes of key and value of the item at off (0 when off holds none). */
static uint64_t item_bytes(const shm_cache *c, uint64_t off)
{
    const struct shmi_cache_item *item = shmi_cache_item_at(c, off);
    return item ? shmi_cache_item_key_len(item) + item->value_len : 0;
}

/* The statistics after an update that added `added` items of
 * `bytes_added` bytes and removed `removed` items of `bytes_removed`: a
 * replacement leaves the item count alone and moves the byte count once. */
static void count_items(shm_cache *c, struct shmi_cache_slot *slot,
                        unsigned added, uint64_t bytes_added, unsigned removed,
                        uint64_t bytes_removed)
{
    /* relaxed: statistics. */
    if (added > removed) {
        uint64_t items = atomic_fetch_add_explicit(&c->header->items, 1,
                                                   memory_order_relaxed);
        shmi_cache_grow(c, items + 1);
    } else if (added < removed) {
        atomic_fetch_sub_explicit(&c->header->items, 1, memory_order_relaxed);
    }
    /* Unsigned arithmetic wraps: a net loss subtracts. The slot's own
     * counter: no locked instruction on a line every writer shares. */
    shmi_cache_slot_count(&slot->bytes, bytes_added - bytes_removed);
}

#define STATE_IDLE 0u
#define STATE_PENDING 1u
#define STATE_INSTALLED 2u
#define STATE_MASK 3u

/* Step 3: the update that made head (a block or a marker) is marked
 * installed. */
static void mark_installed(shm_cache *c, uint64_t head)
{
    uint64_t origin = origin_of(c, head);
    uint64_t index = origin >> 32;
    if (index == 0 || index > c->slot_count)
        return; /* made by creation, or damaged */
    struct shmi_cache_slot *maker = shmi_cache_slot_at(c, (unsigned)index - 1);
    /* seq_cst: before this writer's bucket CAS, so that a recoverer that
     * sees the bucket changed then sees the mark (see Crashes). The
     * origin holds the number's low 32 bits. */
    uint64_t expected = shmi_atomic_load_seq_cst(&maker->pending_state);
    if ((expected & STATE_MASK) == STATE_PENDING &&
        ((expected >> 2) & UINT32_MAX) == (origin & UINT32_MAX))
        shmi_atomic_cas_seq_cst(&maker->pending_state, &expected,
                                (expected & ~(uint64_t)STATE_MASK) |
                                    STATE_INSTALLED);
}

static void record_clear(struct shmi_cache_slot *slot, uint64_t number,
                         bool keep_item)
{
    /* relaxed: read only by a recoverer, after the owner died; the state
     * says whether the rest holds anything. An item kept stays recorded:
     * the writer tries again with it. */
    if (!keep_item)
        shmi_atomic_store_relaxed(&slot->pending_item, 0);
    shmi_atomic_store_relaxed(&slot->pending_block, 0);
    shmi_atomic_store_relaxed(&slot->pending_bucket, 0);
    shmi_atomic_store_seq_cst(&slot->pending_state, number << 2 | STATE_IDLE);
}

/* Steps 2 to 5 of an update: new_block is made (its origin names this
 * writer's update `number`); it replaces old_block in the bucket, and
 * `removed` (0: none) leaves the bucket with it. */
/* Whether a bucket word names a block (a chunk to retire with it). */
static bool is_block(uint64_t head)
{
    return head != 0 && (head & SHMI_CACHE_HEAD_TAGS) == 0;
}

/* A record's `removed` for a clear: every entry the bucket owns in the
 * replaced block (no item's offset: chunks are aligned). */
#define REMOVED_OWN UINT64_C(1)

uint64_t shmi_cache_block_bytes(const shm_cache *c, uint64_t head,
                                unsigned extra)
{
    struct shmi_cache_view v;
    if (!shmi_cache_view_of(c, head, false, &v))
        v.count = 0;
    return sizeof(struct shmi_cache_block) +
           (v.count + extra) * sizeof(struct shmi_cache_entry);
}

/* Retires the items a clear of `bucket` removed from `block` (those it
 * owns at the block's level), skipping those `done` already holds in its
 * ring (NULL: none), and counts them out of the statistics. Returns how
 * many it retired. */
static unsigned retire_own(shm_cache *c, struct shmi_cache_slot *into,
                           const struct shmi_cache_slot *done, uint64_t bucket,
                           uint64_t block)
{
    const struct shmi_cache_block *b = shmi_cache_block_at(c, block);
    unsigned n = 0;
    uint64_t bytes = 0;
    for (uint64_t i = 0; b && i < b->count; i++) {
        uint64_t item = b->entry[i].item;
        if (!shmi_cache_entry_own(bucket, b->level, b->entry[i].hash) ||
            !shmi_cache_item_at(c, item) ||
            (done && shmi_cache_ring_holds(c, done, item)))
            continue;
        bytes += item_bytes(c, item);
        shmi_cache_retire(c, into, item);
        n++;
    }
    /* relaxed: statistics. Unsigned: subtracting by adding. */
    if (n > 0) {
        atomic_fetch_sub_explicit(&c->header->items, n, memory_order_relaxed);
        shmi_cache_slot_count(&into->bytes, 0 - bytes);
    }
    return n;
}

/* As change() below, with the bytes of the item it adds (new_item_bytes,
 * 0 when it adds none: only an item has bytes). */
static int publish(shm_cache *c, struct shmi_cache_slot *slot, uint64_t bucket,
                   uint64_t old_block, uint64_t removed, uint64_t new_block,
                   uint64_t new_item, uint64_t new_item_bytes, uint64_t number)
{
    uint64_t item_bytes_removed =
        removed && removed != REMOVED_OWN ? item_bytes(c, removed) : 0;
    shmi_atomic_store_relaxed(&slot->pending_bucket, bucket + 1);
    shmi_atomic_store_relaxed(&slot->pending_old, old_block);
    shmi_atomic_store_relaxed(&slot->pending_removed, removed);
    shmi_atomic_store_seq_cst(&slot->pending_state,
                              number << 2 | STATE_PENDING);
    if (old_block)
        mark_installed(c, old_block);
    SHMI_CACHE_TEST_POINT(SHMI_CACHE_AT_RECORDED);
    uint64_t expected = old_block;
    /* seq_cst: release publishes the new block and item to readers
     * (their acquire load of the bucket word, X1), acquire orders this
     * writer after the update it replaces, and the total order puts it
     * after mark_installed for a recoverer (see Crashes). */
    if (!shmi_atomic_cas_seq_cst(shmi_cache_bucket(c, bucket), &expected,
                                 new_block)) {
        if (is_block(new_block)) /* a direct item is the caller's still */
            shmi_cache_retire(c, slot, new_block);
        record_clear(slot, number, true);
        return EAGAIN;
    }
    SHMI_CACHE_TEST_POINT(SHMI_CACHE_AT_PUBLISHED);
    /* The state stays PENDING until the IDLE store: a recoverer learns
     * that the CAS happened from the bucket word (B') or, once B' is
     * replaced, from the mark its replacer made first (see Crashes). */
    if (removed == REMOVED_OWN) {
        /* The items first, read from B, which goes last. */
        retire_own(c, slot, NULL, bucket, old_block);
        shmi_cache_retire(c, slot, old_block);
        return 0;
    }
    if (is_block(old_block)) /* a direct item goes as `removed`, if at all */
        shmi_cache_retire(c, slot, old_block);
    if (removed)
        shmi_cache_retire(c, slot, removed);
    count_items(c, slot, new_item != 0, new_item_bytes, removed != 0,
                item_bytes_removed);
    return 0;
}

/* Step 1's allocation: the new head for `count` entries at `level`: an
 * empty marker for none, the fresh item `direct` itself when it is the
 * only one, else a block (*block, NULL for the other two); recorded in
 * the slot, its origin the writer's next update number (*number). */
static int head_new(shm_cache *c, struct shmi_cache_slot *slot, uint64_t count,
                    unsigned level, uint64_t direct, uint64_t *head,
                    uint64_t *number, struct shmi_cache_block **block)
{
    *number = ((shmi_atomic_load_relaxed(&slot->pending_state) >> 2) + 1) &
              NUMBER_MASK;
    uint64_t slot_plus_one = shmi_cache_slot_index(c, slot) + 1;
    uint64_t origin = slot_plus_one << 32 | (*number & UINT32_MAX);
    *block = NULL;
    if (direct) {
        /* The fresh item's version, and its level as a direct head; still
         * the writer's alone: written before the CAS publishes it. */
        struct shmi_cache_item *item = shmi_cache_at(c, direct);
        item->origin = slot_plus_one << SHMI_CACHE_ITEM_SLOT_SHIFT |
                       (uint64_t)level << SHMI_CACHE_ITEM_LEVEL_SHIFT | *number;
    }
    if (count == 0) {
        *head = marker_make(origin, level);
    } else if (count == 1 && direct) {
        *head = direct | SHMI_CACHE_HEAD_DIRECT;
    } else {
        size_t size = sizeof(struct shmi_cache_block) +
                      count * sizeof(struct shmi_cache_entry);
        *head = shmi_cache_chunk_new(c, slot, size);
        if (*head == SHM_NULL)
            return ENOMEM;
        *block = shmi_cache_at(c, *head);
        (*block)->origin = origin;
        (*block)->count = (uint32_t)count;
        (*block)->level = level;
    }
    /* relaxed: the record is read only by a recoverer; its state, stored
     * last with seq_cst, says the rest is there. */
    shmi_atomic_store_relaxed(&slot->pending_block, *head);
    return 0;
}

/* An update of `bucket`, whose protected word is old_head: the entry at
 * pos replaced by new_item or removed, the level raised by `raise`. The
 * entries of buckets below that were split off are left out (their
 * items belong to those buckets now: they are not retired here). */
static int change(shm_cache *c, struct shmi_cache_slot *slot, uint64_t bucket,
                  uint64_t old_head, uint64_t pos, uint64_t new_item,
                  uint64_t new_hash, unsigned raise)
{
    /* Only the protected word is read here, and the item at pos, never
     * the other items of the bucket: they may be retired at any time (a
     * direct head's item is the protected chunk itself). */
    struct shmi_cache_view old;
    /* A direct head's hash is computed only if its entry is kept. */
    if (!shmi_cache_view_of(c, old_head, pos != 0, &old))
        old.count = 0; /* damaged: replaced, nothing of it kept */
    uint64_t n = old.count;
    unsigned level = old.level;
    if (!shmi_cache_ring_has_room(c, slot, 3))
        return EBUSY; /* the caller reclaims and tries again */
    uint64_t removed = pos < n ? old.entry[pos].item : 0;
    uint64_t kept[SHMI_CACHE_MAX_ENTRIES];
    uint64_t count = 0;
    for (uint64_t i = 0; i < n; i++)
        if (i != pos &&
            shmi_cache_entry_current(c, bucket, level, old.entry[i].hash))
            kept[count++] = i;
    if (count + (new_item ? 1 : 0) > c->max_entries)
        return ENOMEM;
    uint64_t new_head, number;
    struct shmi_cache_block *b;
    if (head_new(c, slot, count + (new_item ? 1 : 0), level + raise, new_item,
                 &new_head, &number, &b))
        return ENOMEM;
    uint64_t k = 0;
    uint64_t item_bytes_added = new_item ? item_bytes(c, new_item) : 0;
    if (b && new_item) {
        b->entry[k].hash = new_hash;
        b->entry[k++].item = new_item;
    }
    for (uint64_t i = 0; b && i < count; i++)
        b->entry[k++] = old.entry[kept[i]];
    int err = publish(c, slot, bucket, old_head, removed, new_head, new_item,
                      item_bytes_added, number);
    if (err)
        return err;
    record_clear(slot, number, false);
    return 0;
}

int shmi_cache_update(shm_cache *c, struct shmi_cache_slot *slot,
                      uint64_t bucket, uint64_t old_block, uint64_t pos,
                      uint64_t new_item, uint64_t new_hash)
{
    return change(c, slot, bucket, old_block, pos, new_item, new_hash, 0);
}

int shmi_cache_raise(shm_cache *c, struct shmi_cache_slot *slot,
                     uint64_t bucket, uint64_t old_block)
{
    return change(c, slot, bucket, old_block, UINT64_MAX, 0, 0, 1);
}

int shmi_cache_clear(shm_cache *c, struct shmi_cache_slot *slot,
                     uint64_t bucket, uint64_t old_block, unsigned *removed)
{
    *removed = 0;
    const struct shmi_cache_block *old =
        is_block(old_block) ? shmi_cache_block_at(c, old_block) : NULL;
    if (!old)
        return EINVAL; /* not a block: an update removes a direct item */
    unsigned own = 0;
    for (uint64_t i = 0; i < old->count; i++) {
        uint64_t hash = old->entry[i].hash;
        if (shmi_cache_entry_own(bucket, old->level, hash))
            own++;
        else if (shmi_cache_entry_current(c, bucket, old->level, hash))
            return EEXIST; /* a bucket below still keeps it here */
    }
    if (!shmi_cache_ring_has_room(c, slot, own + 1))
        return EBUSY;
    uint64_t marker, number;
    struct shmi_cache_block *none;
    (void)head_new(c, slot, 0, old->level, 0, &marker, &number, &none);
    int err =
        publish(c, slot, bucket, old_block, REMOVED_OWN, marker, 0, 0, number);
    if (err)
        return err;
    record_clear(slot, number, false);
    *removed = own;
    return 0;
}

int shmi_cache_split(shm_cache *c, struct shmi_cache_slot *slot, uint64_t child,
                     uint64_t parent_head)
{
    struct shmi_cache_view parent;
    if (!shmi_cache_view_of(c, parent_head, true, &parent))
        return EIO;
    unsigned level = 64 - (unsigned)__builtin_clzll(child); /* top bit + 1 */
    uint64_t n = parent.count;
    if (!shmi_cache_ring_has_room(c, slot, 3))
        return EBUSY;
    uint64_t count = 0;
    for (uint64_t i = 0; i < n; i++)
        count += shmi_cache_entry_own(child, level, parent.entry[i].hash);
    uint64_t new_block, number;
    struct shmi_cache_block *b;
    /* No item here is fresh: one entry makes a block of one. */
    if (head_new(c, slot, count, level, 0, &new_block, &number, &b))
        return ENOMEM;
    uint64_t k = 0;
    for (uint64_t i = 0; b && i < n; i++)
        if (shmi_cache_entry_own(child, level, parent.entry[i].hash))
            b->entry[k++] = parent.entry[i];
    /* The items stay referenced by the parent's block too, until its next
     * update leaves them out; from now on they are the child's (X2). */
    int err = publish(c, slot, child, 0, 0, new_block, 0, 0, number);
    if (!err)
        record_clear(slot, number, false);
    return err;
}

unsigned shmi_cache_pending_retires(const shm_cache *c,
                                    const struct shmi_cache_slot *dead)
{
    /* relaxed: the recoverer holds the slot, or is about to take it. */
    return shmi_atomic_load_relaxed(&dead->pending_removed) == REMOVED_OWN
               ? c->max_entries + 3
               : 3;
}

void shmi_cache_resolve_pending(shm_cache *c, struct shmi_cache_slot *mine,
                                struct shmi_cache_slot *dead)
{
    /* seq_cst: the state, then the bucket, then the state again (see
     * Crashes). */
    uint64_t state = shmi_atomic_load_seq_cst(&dead->pending_state);
    uint64_t bucket = shmi_atomic_load_relaxed(&dead->pending_bucket);
    uint64_t old = shmi_atomic_load_relaxed(&dead->pending_old);
    uint64_t removed = shmi_atomic_load_relaxed(&dead->pending_removed);
    uint64_t made = shmi_atomic_load_relaxed(&dead->pending_block);
    uint64_t item = shmi_atomic_load_relaxed(&dead->pending_item);
    uint64_t number = state >> 2;
    bool installed = (state & STATE_MASK) == STATE_INSTALLED;
    const shmi_atomic_word *word =
        bucket != 0 && bucket - 1 < UINT64_C(1) << c->max_log2
            ? shmi_cache_bucket(c, bucket - 1)
            : NULL;
    if ((state & STATE_MASK) == STATE_PENDING && word) {
        uint64_t head = shmi_atomic_load_seq_cst(word);
        installed =
            head == made || (shmi_atomic_load_seq_cst(&dead->pending_state) &
                             STATE_MASK) == STATE_INSTALLED;
        if (!installed && shmi_cache_block_at(c, made) &&
            !shmi_cache_ring_holds(c, dead, made))
            shmi_cache_retire(c, mine, made); /* never published */
    }
    if (installed) {
        /* A clear's items are read from B before B is retired. */
        if (removed == REMOVED_OWN && bucket != 0)
            retire_own(c, mine, dead, bucket - 1, old);
        if (old && shmi_cache_block_at(c, old) &&
            !shmi_cache_ring_holds(c, dead, old))
            shmi_cache_retire(c, mine, old);
        if (removed && shmi_cache_item_at(c, removed) &&
            !shmi_cache_ring_holds(c, dead, removed)) {
            count_items(c, mine, 0, 0, 1, item_bytes(c, removed));
            shmi_cache_retire(c, mine, removed);
        }
    } else if (item && shmi_cache_item_at(c, item) &&
               !shmi_cache_ring_holds(c, dead, item)) {
        shmi_cache_retire(c, mine, item); /* never published */
    }
    record_clear(dead, number, false);
}
