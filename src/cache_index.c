/*
 * The cache's index: buckets, blocks and items, and the one-CAS update.
 *
 *   bucket word:  0, or the offset of the bucket's current block
 *   block:        claim | count | (hash, item) x count     never changed
 *   item:         claim | version | expiry | used | lengths | key value
 *                 never changed but for `used`, the eviction hint
 *
 * Update of a bucket (set, add, replace, cas, incr, delete, eviction):
 *   1. read the current block B (inside a read section, cache_epoch.c);
 *   2. make a new block B' with the entry replaced, added or removed and
 *      the expired entries dropped, record (bucket, B, B', item) in the
 *      writer's slot;
 *   3. CAS the bucket word B -> B' (the linearization point of the
 *      operation); on failure retire B' (never seen by anyone) and start
 *      again from 1;
 *   4. retire B and every item B held that B' does not;
 *   5. clear the record (item first, bucket last).
 *
 * Invariants:
 *   X1  a bucket word only ever names a complete block: B' and its items
 *       are written before the CAS that publishes them (release), and
 *       readers load the word with acquire;
 *   X2  a block or item no bucket word reaches is retired exactly once:
 *       whoever retires it first wins the CAS on its claim word
 *       (cache_epoch.c), whether that is the writer that unlinked it or
 *       the recovery of a writer that died;
 *   X3  an item is referenced by blocks of one bucket only, and once the
 *       bucket's current block does not reference it, no later block
 *       will: every new block is made from the current one.
 *
 * Readers never write to a block or a bucket: a get is one acquire load of
 * the bucket word and reads of immutable chunks (and one store of `used`
 * when it is clear). A value read is always one that a set stored whole.
 *
 * Progress: an update retries only when its CAS failed, i.e. when another
 * update of the same bucket succeeded. Lock-free, not wait-free.
 *
 * Crashes. A writer killed at any point leaves its record; the recovery of
 * its slot (cache_epoch.c, resolve_pending here) decides with the bucket's
 * current block H:
 *   - B' == H: the CAS happened: retire B and the items H lacks;
 *   - B' != H: B' was never published, or was and has been replaced since:
 *     retire B' and the items of it that H lacks (X2 makes this safe in
 *     both cases), and retire B unless it is still H;
 *   - no bucket recorded yet: the block and item it names were never
 *     published: retire them.
 * Retiring instead of freeing keeps each decision safe for readers that
 * may still hold the chunk. What a kill can still leak is a chunk between
 * the allocator handing it out and the record naming it (a few
 * instructions, as inside shm_malloc itself).
 */
#include "cache_internal.h"

#include <errno.h>
#include <string.h>

uint64_t shmi_cache_hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h =
        UINT64_C(0x9e3779b97f4a7c15) ^ (len * UINT64_C(0xff51afd7ed558ccd));
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ (w * UINT64_C(0xc4ceb9fe1a85ec53))) * UINT64_C(0x100000001b3);
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, len);
    h = (h ^ (w * UINT64_C(0xc4ceb9fe1a85ec53))) * UINT64_C(0x100000001b3);
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
    if (b->count > c->max_entries ||
        !chunk_fits(c, off,
                    sizeof *b + b->count * sizeof(struct shmi_cache_entry)))
        return NULL; /* damaged */
    return b;
}

const struct shmi_cache_item *shmi_cache_item_at(const shm_cache *c,
                                                 uint64_t off)
{
    if (!chunk_fits(c, off, sizeof(struct shmi_cache_item)))
        return NULL;
    const struct shmi_cache_item *item = shmi_cache_at(c, off);
    if (!chunk_fits(c, off,
                    sizeof *item + (uint64_t)item->key_len + item->value_len))
        return NULL; /* damaged */
    return item;
}

uint64_t shmi_cache_lookup(const shm_cache *c, struct shmi_cache_slot *slot,
                           uint64_t bucket, uint64_t hash, const void *key,
                           size_t key_len, uint64_t *head, uint64_t *pos)
{
    const shmi_atomic_word *word = shmi_cache_bucket(c, bucket);
again:
    /* acquire (in protect, seq_cst): pairs with the CAS that published
     * the block (X1). */
    *head = slot ? shmi_cache_protect_block(slot, word)
                 : shmi_atomic_load_acquire(word);
    const struct shmi_cache_block *b = shmi_cache_block_at(c, *head);
    for (uint64_t i = 0; b && i < b->count; i++) {
        if (b->entry[i].hash != hash)
            continue;
        uint64_t off = b->entry[i].item;
        if (slot && !shmi_cache_protect_item(slot, word, *head, off))
            goto again; /* the bucket changed: its block may be gone */
        const struct shmi_cache_item *item = shmi_cache_item_at(c, off);
        if (item && item->key_len == key_len &&
            memcmp(item->bytes, key, key_len) == 0) {
            *pos = i;
            return off;
        }
    }
    *pos = UINT64_MAX;
    return 0;
}

static bool block_references(const struct shmi_cache_block *b, uint64_t item)
{
    for (uint64_t i = 0; b && i < b->count; i++)
        if (b->entry[i].item == item)
            return true;
    return false;
}

/* Bytes of key and value of the item at off (0 when off holds none). */
static uint64_t item_bytes(const shm_cache *c, uint64_t off)
{
    const struct shmi_cache_item *item = shmi_cache_item_at(c, off);
    return item ? (uint64_t)item->key_len + item->value_len : 0;
}

/* Adds an item to the statistics, or takes it away. */
static void count_item(shm_cache *c, uint64_t bytes, int sign)
{
    /* relaxed: statistics. */
    if (sign > 0) {
        atomic_fetch_add_explicit(&c->header->items, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->header->bytes, bytes,
                                  memory_order_relaxed);
    } else {
        atomic_fetch_sub_explicit(&c->header->items, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&c->header->bytes, bytes,
                                  memory_order_relaxed);
    }
}

/* Retires an item no block references any more, and takes it out of the
 * statistics when this call won its claim. Its size is read first: once
 * retired, a reclaim may free it. */
static void retire_item(shm_cache *c, struct shmi_cache_slot *slot,
                        uint64_t off)
{
    uint64_t bytes = item_bytes(c, off);
    if (shmi_cache_item_at(c, off) && shmi_cache_retire(c, slot, off))
        count_item(c, bytes, -1);
}

static void clear_record(struct shmi_cache_slot *slot, bool with_item)
{
    /* Item first, bucket last (see Crashes). relaxed: read only by a
     * recoverer, after the owner died. */
    if (with_item)
        shmi_atomic_store_relaxed(&slot->pending_item, 0);
    shmi_atomic_store_relaxed(&slot->pending_block, 0);
    shmi_atomic_store_relaxed(&slot->pending_old, 0);
    shmi_atomic_store_release(&slot->pending_bucket, 0);
}

int shmi_cache_update(shm_cache *c, struct shmi_cache_slot *slot,
                      uint64_t bucket, uint64_t old_block, uint64_t pos,
                      uint64_t new_item, uint64_t now_ms, unsigned *expired)
{
    const struct shmi_cache_block *old = shmi_cache_block_at(c, old_block);
    uint64_t n = old ? old->count : 0;
    *expired = 0;
    if (!shmi_cache_ring_has_room(c, slot, (unsigned)n + 3))
        return EBUSY; /* the caller reclaims outside its section */
    uint64_t kept = 0;
    for (uint64_t i = 0; i < n; i++) {
        const struct shmi_cache_item *item =
            shmi_cache_item_at(c, old->entry[i].item);
        if (i == pos || !item)
            continue;
        if (shmi_cache_expired(item, now_ms))
            (*expired)++;
        else
            kept++;
    }
    uint64_t count = kept + (new_item ? 1 : 0);
    if (count > c->max_entries)
        return ENOMEM;
    uint64_t new_block = 0;
    if (count > 0) {
        size_t size = sizeof(struct shmi_cache_block) +
                      count * sizeof(struct shmi_cache_entry);
        new_block = shm_arena_malloc(c->arena, size);
        if (new_block == SHM_NULL)
            return ENOMEM;
        shmi_cache_account(c, new_block, true);
        struct shmi_cache_block *b = shmi_cache_at(c, new_block);
        shmi_atomic_store_relaxed(&b->claim, 0);
        /* Recorded at once: a writer killed before its CAS leaves a block
         * that its recovery retires. relaxed: read by a recoverer only. */
        shmi_atomic_store_relaxed(&slot->pending_block, new_block);
        b->count = count;
        uint64_t k = 0;
        if (new_item) {
            const struct shmi_cache_item *item = shmi_cache_at(c, new_item);
            b->entry[k].hash = shmi_cache_hash(item->bytes, item->key_len);
            b->entry[k++].item = new_item;
        }
        for (uint64_t i = 0; i < n; i++) {
            const struct shmi_cache_item *item =
                shmi_cache_item_at(c, old->entry[i].item);
            if (i != pos && item && !shmi_cache_expired(item, now_ms))
                b->entry[k++] = old->entry[i];
        }
    }
    /* The record: read by a recoverer only; the bucket, stored last with
     * release, says the rest is there. */
    shmi_atomic_store_relaxed(&slot->pending_old, old_block);
    shmi_atomic_store_relaxed(&slot->pending_block, new_block);
    shmi_atomic_store_release(&slot->pending_bucket, bucket + 1);
    uint64_t expected = old_block;
    /* acq_rel: release publishes the new block and item to readers
     * (their acquire load of the bucket word, X1); acquire orders this
     * writer after the update it replaces. */
    if (!shmi_atomic_cas_acq_rel(shmi_cache_bucket(c, bucket), &expected,
                                 new_block)) {
        if (new_block)
            shmi_cache_retire(c, slot, new_block);
        clear_record(slot, false);
        return EAGAIN;
    }
    if (old_block)
        shmi_cache_retire(c, slot, old_block);
    const struct shmi_cache_block *now = shmi_cache_block_at(c, new_block);
    if (new_item)
        count_item(c, item_bytes(c, new_item), +1);
    for (uint64_t i = 0; i < n; i++)
        if (!block_references(now, old->entry[i].item))
            retire_item(c, slot, old->entry[i].item);
    clear_record(slot, true);
    return 0;
}

/* Retires a block found unreachable, and the items of it that the
 * bucket's current block lacks (X2, X3). */
static void retire_block(shm_cache *c, struct shmi_cache_slot *mine,
                         uint64_t block, uint64_t bucket)
{
    const struct shmi_cache_block *b = shmi_cache_block_at(c, block);
    if (!b || !shmi_cache_retire(c, mine, block))
        return;
    /* acquire: pairs with the CAS that published the current block. */
    uint64_t head = shmi_atomic_load_acquire(shmi_cache_bucket(c, bucket));
    const struct shmi_cache_block *h = shmi_cache_block_at(c, head);
    for (uint64_t i = 0; i < b->count; i++)
        if (!block_references(h, b->entry[i].item))
            retire_item(c, mine, b->entry[i].item);
}

void shmi_cache_resolve_pending(shm_cache *c, struct shmi_cache_slot *mine,
                                struct shmi_cache_slot *dead)
{
    /* acquire: pairs with the release store of the bucket in the record. */
    uint64_t bucket = shmi_atomic_load_acquire(&dead->pending_bucket);
    uint64_t old = shmi_atomic_load_relaxed(&dead->pending_old);
    uint64_t made = shmi_atomic_load_relaxed(&dead->pending_block);
    uint64_t item = shmi_atomic_load_relaxed(&dead->pending_item);
    if (bucket != 0 && bucket - 1 <= c->bucket_mask) {
        bucket--;
        uint64_t head = shmi_atomic_load_acquire(shmi_cache_bucket(c, bucket));
        if (made != 0 && made == head) {
            if (old != 0)
                retire_block(c, mine, old, bucket);
        } else {
            if (made != 0)
                retire_block(c, mine, made, bucket);
            if (old != 0 && old != head)
                retire_block(c, mine, old, bucket);
        }
        head = shmi_atomic_load_acquire(shmi_cache_bucket(c, bucket));
        if (item != 0 &&
            !block_references(shmi_cache_block_at(c, head), item) &&
            shmi_cache_item_at(c, item))
            shmi_cache_retire(c, mine, item);
    } else {
        /* No bucket recorded: nothing was published. */
        if (made != 0 && shmi_cache_block_at(c, made))
            shmi_cache_retire(c, mine, made);
        if (item != 0 && shmi_cache_item_at(c, item))
            shmi_cache_retire(c, mine, item);
    }
    clear_record(dead, true);
}
