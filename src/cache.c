/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm_cache: the public API (include/shm_cache.h) over the index
 * (cache_index.c) and its reclamation (cache_reclaim.c).
 *
 * A cache is found through the named root "shm_cache:NAME" of its arena.
 * Creating one: build the header, the bucket directory and segments and
 * the slot chunks, all zeroed, then publish the header with a root CAS
 * from SHM_NULL; a creator that loses the race frees what it built and
 * uses the winner's. Nothing of a cache is reachable before that CAS, so
 * a creator killed midway leaves only unreferenced chunks.
 *
 * Every operation on an entry is one bucket update (cache_index.c) made
 * inside a read section (cache_reclaim.c). When the arena cannot give a
 * chunk, the writer evicts: a clock hand walks the buckets, takes expired
 * entries first, clears the `used` bit of entries read since the hand last
 * passed and removes the first entry whose bit was already clear and
 * whose chunk is at least as large as the request that failed; a few
 * entries per round over at most EVICT_SCAN buckets each, and what they
 * held comes back once the readers that may see them have moved on. A
 * round that finds no entry that large takes any. Chunks are buddies:
 * evicting small entries to make room for a large one frees much more
 * than it needs (their buddies must go too), which is why the size
 * counts. In a full 64 MiB cache of 16 to 1000-byte values this holds
 * 184338 items of 300000 inserted (memcached -m 64: 181196).
 *
 * Small values: when the chunk missing is a bucket's next block (an
 * update copies the block, so it needs one), every item is smaller than
 * it and evicting items one at a time frees chunks whose buddies may
 * stay live, so no block-sized chunk need come of it. A round then
 * empties whole buckets whose block is large enough, none of their
 * entries read since the hand passed (shmi_cache_clear: one CAS to an
 * empty marker, which needs no chunk); after EVICT_OWN_AFTER tries, a set
 * or add empties its key's own bucket, after which the fresh item is the
 * bucket's direct head and needs no block. So a set of a value that fits
 * the arena never fails for lack of a block. Otherwise a set fails with
 * ENOMEM only after EVICT_ROUNDS rounds that found nothing to evict or
 * could not get the memory back.
 *
 * Expiry: items carry their expiry on CLOCK_MONOTONIC, which every process
 * of the machine shares. An expired item is never returned; it is removed
 * by the next set or delete of its key, or by the clock hand.
 */
#include "cache_internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "os.h"

#define ROOT_PREFIX "shm_cache:"
#define NAME_MAX_LEN (SHM_ROOT_NAME_MAX - (sizeof ROOT_PREFIX - 1))
#define EVICT_ROUNDS 256
#define EVICT_PER_ROUND 8
#define EVICT_SCAN 8 /* buckets a round reads per entry it wants */
#define UPDATE_TRIES 64
#define EVICT_OWN_AFTER 4 /* tries before a set empties its key's bucket */

static _Atomic(uint64_t) next_serial = 1;

static int fail(int err)
{
    if (err)
        errno = err;
    return err;
}

static unsigned log2_of(uint64_t power)
{
    return (unsigned)__builtin_ctzll(power);
}

/* The size of the cache's own chunks (segments, slot chunks, rings):
 * 4 KiB, or the largest chunk when that is smaller. */
static size_t unit_size(void)
{
#if SHM_MAX_ALLOC_POW2 < 12
    return (size_t)SHMI_CACHE_MAX_CHUNK;
#else
    return 4096;
#endif
}

/* ---- creating and binding --------------------------------------------- */

static shm_offt chunk_new(shm_arena *arena, size_t size)
{
    return shmi_arena_calloc(arena, 1, size);
}

/* Entries of the directory of an index that can grow to 2^max_log2
 * buckets in segments of 2^segment_log2. */
static uint64_t directory_entries(unsigned max_log2, unsigned segment_log2)
{
    return max_log2 > segment_log2 ? UINT64_C(1) << (max_log2 - segment_log2)
                                   : 1;
}

/* Frees what a creator that lost the race built. */
static void unbuild(shm_arena *arena, uint64_t header_off)
{
    struct shmi_cache_header *h = (void *)(arena->geo.base + header_off);
    if (h->directory) {
        const uint64_t *dir =
            (const uint64_t *)(arena->geo.base + h->directory);
        uint64_t entries = directory_entries(h->max_log2, h->segment_log2);
        for (uint64_t s = 0; s < entries; s++)
            if (dir[s])
                shmi_arena_free(arena, dir[s]);
        shmi_arena_free(arena, h->directory);
    }
    for (unsigned k = 0; k < h->slot_chunks; k++)
        shmi_arena_free(arena, h->slot_chunk[k]);
    shmi_arena_free(arena, header_off);
}

/* The smallest chunk an item takes: the most items, and so the most
 * buckets, an arena can hold is its capacity over this. */
#define SMALLEST_ITEM 64

static uint64_t build(shm_arena *arena, size_t expected_items)
{
    unsigned max_chunk_log2 = log2_of(SHMI_CACHE_MAX_CHUNK);
    size_t chunk = unit_size();
    unsigned segment_log2 = log2_of(chunk) - 3;
    /* The index can grow to a bucket per smallest item, as far as a
     * directory of one chunk goes. */
    unsigned max_log2 = 6;
    while (max_log2 < segment_log2 + max_chunk_log2 - 3 &&
           (UINT64_C(1) << max_log2) < arena->geo.capacity / SMALLEST_ITEM)
        max_log2++;
    if (expected_items == 0)
        expected_items = arena->geo.capacity / 256;
    unsigned bucket_log2 = 6;
    while (bucket_log2 < max_log2 &&
           (UINT64_C(1) << bucket_log2) < expected_items)
        bucket_log2++;
    uint64_t entries = directory_entries(max_log2, segment_log2);
    uint64_t segments = directory_entries(bucket_log2, segment_log2);
    unsigned per_chunk = (unsigned)(chunk / sizeof(struct shmi_cache_slot));
    unsigned slot_chunks = (SHMI_CACHE_SLOT_LIMIT + per_chunk - 1) / per_chunk;
    if (slot_chunks > SHMI_CACHE_SLOT_CHUNKS)
        slot_chunks = SHMI_CACHE_SLOT_CHUNKS;

    shm_offt header_off = chunk_new(arena, sizeof(struct shmi_cache_header));
    if (header_off == SHM_NULL)
        return 0;
    uint8_t *base = arena->geo.base;
    struct shmi_cache_header *h = (void *)(base + header_off);
    h->bucket_log2 = bucket_log2;
    h->max_log2 = max_log2;
    h->segment_log2 = segment_log2;
    h->slots_per_chunk = per_chunk;
    shmi_atomic_store_relaxed(&h->index_log2, bucket_log2);
    bool ok = (h->directory = chunk_new(arena, entries * sizeof(uint64_t)));
    for (uint64_t s = 0; ok && s < segments; s++) {
        uint64_t seg = chunk_new(arena, sizeof(uint64_t) << segment_log2);
        ((uint64_t *)(base + h->directory))[s] = seg;
        ok = seg != 0;
    }
    for (unsigned k = 0; ok && k < slot_chunks; k++) {
        h->slot_chunk[k] = chunk_new(arena, chunk);
        ok = h->slot_chunk[k] != 0;
        h->slot_chunks = k + 1;
    }
    if (!ok) {
        unbuild(arena, header_off);
        return 0;
    }
    /* Every chunk above counts as the cache's memory. */
    uint64_t memory = shmi_arena_usable_size(arena, header_off) +
                      shmi_arena_usable_size(arena, h->directory);
    for (uint64_t s = 0; s < segments; s++)
        memory += shmi_arena_usable_size(
            arena, ((uint64_t *)(base + h->directory))[s]);
    for (unsigned k = 0; k < h->slot_chunks; k++)
        memory += shmi_arena_usable_size(arena, h->slot_chunk[k]);
    shmi_atomic_store_relaxed(&h->memory, memory);
    h->version = SHMI_CACHE_VERSION;
    h->magic = SHMI_CACHE_MAGIC;
    return header_off;
}

/* Checks a header read from the file and binds a handle to it. */
static int bind(shm_cache *c, uint64_t header_off)
{
    shm_arena *arena = c->arena;
    uint64_t end = arena->map_size;
    uint64_t data = end - arena->geo.capacity;
    size_t chunk = unit_size();
    unsigned unit_log2 = log2_of(chunk);
    unsigned max_chunk_log2 = log2_of(SHMI_CACHE_MAX_CHUNK);
    if (header_off < data ||
        header_off > end - sizeof(struct shmi_cache_header))
        return EINVAL;
    c->base = arena->geo.base;
    c->data_start = data;
    c->data_end = end;
    c->header = (void *)(c->base + header_off);
    c->header_offset = header_off;
    const struct shmi_cache_header *h = c->header;
    unsigned per_chunk = (unsigned)(chunk / sizeof(struct shmi_cache_slot));
    if (h->magic != SHMI_CACHE_MAGIC || h->version != SHMI_CACHE_VERSION ||
        h->segment_log2 > unit_log2 - 3 || h->bucket_log2 > h->max_log2 ||
        h->max_log2 > h->segment_log2 + max_chunk_log2 - 3 ||
        h->slots_per_chunk != per_chunk || h->slot_chunks == 0 ||
        h->slot_chunks > SHMI_CACHE_SLOT_CHUNKS)
        return EINVAL;
    uint64_t entries = directory_entries(h->max_log2, h->segment_log2);
    if (h->directory < data || h->directory > end - entries * 8 ||
        h->directory % 8 != 0)
        return EINVAL;
    c->segment = calloc(entries, sizeof *c->segment);
    c->slot_chunk = calloc(h->slot_chunks, sizeof(struct shmi_cache_slot *));
    c->held = calloc((size_t)h->slot_chunks * per_chunk, sizeof *c->held);
    if (!c->segment || !c->slot_chunk || !c->held)
        return ENOMEM;
    c->directory = (shmi_atomic_word *)(c->base + h->directory);
    c->segments = entries;
    for (unsigned k = 0; k < h->slot_chunks; k++) {
        if (h->slot_chunk[k] < data || h->slot_chunk[k] > end - chunk)
            return EINVAL;
        c->slot_chunk[k] =
            (struct shmi_cache_slot *)(c->base + h->slot_chunk[k]);
    }
    c->segment_log2 = h->segment_log2;
    c->segment_mask = (UINT64_C(1) << h->segment_log2) - 1;
    c->initial_log2 = h->bucket_log2;
    c->max_log2 = h->max_log2;
    c->slot_chunks = h->slot_chunks;
    c->slots_per_chunk = per_chunk;
    /* The last chunk's slots past the limit are never used. */
    c->slot_count = h->slot_chunks * per_chunk;
    if (c->slot_count > SHMI_CACHE_SLOT_LIMIT)
        c->slot_count = SHMI_CACHE_SLOT_LIMIT;
    if (c->slot_count <= (h->slot_chunks - 1) * per_chunk)
        return EINVAL; /* more chunks than the limit needs */
    c->ring_entries = (unsigned)(chunk / sizeof(struct shmi_cache_retired));
    uint64_t fit = (SHMI_CACHE_MAX_CHUNK - sizeof(struct shmi_cache_block)) /
                   sizeof(struct shmi_cache_entry);
    c->max_entries =
        (unsigned)(fit < SHMI_CACHE_MAX_ENTRIES ? fit : SHMI_CACHE_MAX_ENTRIES);
    return 0;
}

static void handle_free(shm_cache *c)
{
    pthread_mutex_destroy(&c->held_lock);
    free(c->segment);
    free(c->slot_chunk);
    free(c->held);
    free(c);
}

shm_cache *shm_cache_attach(shm_arena *arena, const char *name,
                            const struct shm_cache_options *opts)
{
    size_t len = name ? strnlen(name, NAME_MAX_LEN + 1) : 0;
    if (!arena || len == 0 || len > NAME_MAX_LEN) {
        errno = EINVAL;
        return NULL;
    }
    /* The index, the rings and the blocks need chunks of 512 bytes. */
    if (SHMI_CACHE_MAX_CHUNK < 512 ||
        SHMI_CACHE_MAX_CHUNK < sizeof(struct shmi_cache_header)) {
        errno = E2BIG;
        return NULL;
    }
    char root[SHM_ROOT_NAME_MAX + 1];
    memcpy(root, ROOT_PREFIX, sizeof ROOT_PREFIX - 1);
    memcpy(root + sizeof ROOT_PREFIX - 1, name, len + 1);
    shm_offt off = shm_arena_root_get(arena, root);
    if (off == SHM_NULL && errno != ENOENT)
        return NULL;
    if (off == SHM_NULL) {
        uint64_t built = build(arena, opts ? opts->expected_items : 0);
        if (built == 0)
            return NULL; /* errno of the allocation, EROFS for a reader */
        if (!shm_arena_root_cas(arena, root, SHM_NULL, built)) {
            int err = errno;
            unbuild(arena, built);
            if (err != EAGAIN) {
                errno = err;
                return NULL;
            }
            off = shm_arena_root_get(arena, root);
            if (off == SHM_NULL)
                return NULL;
        } else {
            off = built;
        }
    }
    shm_cache *c = calloc(1, sizeof *c);
    if (!c) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&c->held_lock, NULL);
    c->arena = arena;
    c->read_only = arena->read_only;
    c->serial =
        atomic_fetch_add_explicit(&next_serial, 1, memory_order_relaxed);
    int err = bind(c, off);
    if (!err)
        err = shmi_cache_register(c);
    if (err) {
        handle_free(c);
        errno = err;
        return NULL;
    }
    return c;
}

shm_cache *shm_cache_open(const char *path,
                          const struct shm_cache_options *opts)
{
    struct shm_arena_options aopts = {0};
    if (opts) {
        aopts.capacity = opts->capacity;
        aopts.mode = opts->mode;
        aopts.flags = opts->flags;
    }
    shm_arena *arena = shm_arena_open(path, &aopts);
    if (!arena)
        return NULL;
    shm_cache *c = shm_cache_attach(arena, "default", opts);
    if (!c) {
        int err = errno;
        shm_arena_close(arena);
        errno = err;
        return NULL;
    }
    c->own_arena = true;
    return c;
}

int shm_cache_close(shm_cache *c)
{
    if (!c)
        return 0;
    shmi_cache_slots_release(c);
    shm_arena *arena = c->own_arena ? c->arena : NULL;
    handle_free(c);
    return arena ? shm_arena_close(arena) : 0;
}

shm_arena *shm_cache_arena(shm_cache *c)
{
    return c ? c->arena : NULL;
}

/* ---- entries ---------------------------------------------------------- */

static bool key_valid(const void *key, size_t key_len)
{
    return key && key_len > 0 && key_len <= SHM_CACHE_KEY_MAX;
}

/* The power of two a request of `size` bytes is taken from. */
static uint64_t class_size(uint64_t size)
{
    return size <= 1 ? 1 : UINT64_C(1) << (64 - __builtin_clzll(size - 1));
}

/* Whether freeing a chunk of `bytes` bytes may make room for a request
 * of class wanted_class: its node is of that class or larger. With
 * trimming too, the class and not the length counts: a trimmed chunk's
 * tail is free already, so freeing it frees its whole node unless a
 * smaller chunk took part of that tail. */
static bool frees_room(uint64_t bytes, uint64_t wanted_class)
{
    return class_size(bytes) >= wanted_class;
}

/* Removes up to `want` entries, expired ones first, then ones not read
 * since the clock hand last passed whose chunk is at least as large as
 * `room` (the request that failed; 0: any), so that what is evicted
 * makes room for it rather than for nothing: freeing small chunks to make
 * a large one takes their buddies too. A bucket with no entry that large
 * but whose block is, none of its entries read since the hand last
 * passed, is emptied at once (shmi_cache_clear): a block is the larger
 * chunk when values are small, and evicting its entries one by one would
 * need a new block each time. Returns how many it removed. */
static unsigned evict(shm_cache *c, struct shmi_cache_slot *slot, unsigned want,
                      uint64_t room)
{
    uint64_t wanted_class = room ? class_size(room) : 0;
    unsigned removed = 0;
    uint64_t now = shmi_os_monotonic_ms();
    for (unsigned k = 0; k < EVICT_SCAN * want && removed < want; k++) {
        /* relaxed: only spreads the work; any bucket will do. */
        unsigned levels = shmi_cache_levels(c);
        uint64_t bucket = atomic_fetch_add_explicit(&c->header->clock_hand, 1,
                                                    memory_order_relaxed) &
                          ((UINT64_C(1) << levels) - 1);
        /* A bucket not split off yet is split now: its entries are its
         * parent's to keep but only its own to evict. With no room for
         * that, the parent that holds them evicts its own instead (a full
         * cache must still make room). */
        int err = shmi_cache_install(c, slot, bucket);
        if (err == ENOMEM) {
            bucket = shmi_cache_home(c, bucket, levels, NULL);
        } else if (err) {
            continue;
        }
        const shmi_atomic_word *word = shmi_cache_bucket(c, bucket);
        uint64_t head = shmi_cache_protect_block(slot, word);
        struct shmi_cache_view b;
        if (!shmi_cache_view_of(c, head, true, &b))
            b.count = 0;
        uint64_t victim = UINT64_MAX;
        bool expired = false, read = false, changed = false;
        for (uint64_t i = 0; i < b.count; i++) {
            if (!shmi_cache_entry_own(bucket, b.level, b.entry[i].hash))
                continue; /* another bucket's: never read, never removed */
            if (!shmi_cache_protect_item(slot, word, head, b.entry[i].item)) {
                changed = true;
                break; /* the bucket changed: its turn comes again */
            }
            struct shmi_cache_item *item =
                (struct shmi_cache_item *)shmi_cache_item_at(c,
                                                             b.entry[i].item);
            if (!item)
                continue;
            if (shmi_cache_expired(item, now)) {
                victim = i;
                expired = true;
                break;
            }
            /* relaxed: a hint for eviction only. */
            if (atomic_load_explicit(&item->used, memory_order_relaxed)) {
                atomic_store_explicit(&item->used, 0, memory_order_relaxed);
                read = true;
            } else if (victim == UINT64_MAX &&
                       frees_room(sizeof *item + shmi_cache_item_key_len(item) +
                                      item->value_len,
                                  wanted_class)) {
                victim = i;
            }
        }
        unsigned cleared = 0;
        if (victim == UINT64_MAX && room && !changed && !read && b.count > 1 &&
            frees_room(shmi_cache_block_bytes(c, head, 0), wanted_class) &&
            shmi_cache_clear(c, slot, bucket, head, &cleared) == 0) {
            removed += cleared;
            shmi_cache_slot_count(&slot->evictions, cleared);
        } else if (victim != UINT64_MAX &&
                   shmi_cache_protect_item(slot, word, head,
                                           b.entry[victim].item) &&
                   shmi_cache_update(c, slot, bucket, head, victim, 0, 0) ==
                       0) {
            /* The victim was protected again: update reads its size. */
            removed++;
            shmi_cache_slot_count(
                expired ? &slot->expirations : &slot->evictions, 1);
        }
        shmi_cache_unprotect(slot);
        shmi_cache_maybe_reclaim(c, slot);
    }
    return removed;
}

/* A chunk of `size` bytes for the cache, evicting to make room. */
static shm_offt cache_alloc(shm_cache *c, struct shmi_cache_slot *slot,
                            size_t size)
{
    for (unsigned round = 0; round <= EVICT_ROUNDS; round++) {
        shm_offt off = shmi_cache_chunk_new(c, slot, size);
        if (off != SHM_NULL)
            return off;
        if (errno != ENOMEM || round == EVICT_ROUNDS)
            break;
        /* Large enough victims first; any, when a round found none. */
        if (evict(c, slot, EVICT_PER_ROUND, size) == 0)
            evict(c, slot, EVICT_PER_ROUND, 0);
        shmi_cache_reclaim(c, slot);
    }
    errno = ENOMEM;
    return SHM_NULL;
}

/* A new item, recorded in the slot as the writer's. */
static int item_new(shm_cache *c, struct shmi_cache_slot *slot, const void *key,
                    size_t key_len, const void *value, size_t value_len,
                    uint64_t expires_ms, uint64_t *out)
{
    uint64_t size = sizeof(struct shmi_cache_item) + key_len + value_len;
    if (value_len > UINT32_MAX || size > SHMI_CACHE_MAX_CHUNK)
        return E2BIG;
    shm_offt off = cache_alloc(c, slot, (size_t)size);
    if (off == SHM_NULL)
        return ENOMEM;
    /* Recorded at once: a recoverer retires what the record names
     * (cache_index.c). relaxed: read by a recoverer only. */
    struct shmi_cache_item *item = shmi_cache_at(c, off);
    shmi_atomic_store_relaxed(&slot->pending_item, off);
    item->origin = 0; /* written by the update that publishes it */
    item->expiry_key = shmi_cache_item_expiry_key(expires_ms, key_len);
    atomic_store_explicit(&item->used, 0, memory_order_relaxed);
    item->value_len = (uint32_t)value_len;
    memcpy(item->bytes, key, key_len);
    if (value_len)
        memcpy(item->bytes + key_len, value, value_len);
    *out = off;
    return 0;
}

/* Gives back an item that was never published. */
static void item_drop(shm_cache *c, struct shmi_cache_slot *slot, uint64_t item)
{
    shmi_cache_retire(c, slot, item);
    shmi_atomic_store_relaxed(&slot->pending_item, 0);
}

/* Milliseconds of CLOCK_MONOTONIC at which a TTL ends (0: never); far
 * below 2^56, the room an item has for it (cache_layout.h). */
static uint64_t expiry_of(uint32_t ttl_seconds)
{
    return ttl_seconds ? shmi_os_monotonic_ms() + (uint64_t)ttl_seconds * 1000
                       : 0;
}

/* A writer's view of one key: its slot, hash and bucket, and what the
 * bucket holds for the key when last read (protected until the attempt
 * ends). */
struct keyed {
    struct shmi_cache_slot *slot;
    uint64_t hash, bucket;
    uint64_t head, pos; /* the bucket's block, the key's position in it */
    const struct shmi_cache_item *old; /* the key's item, or NULL */
    bool live;                         /* old is there and not expired */
};

/* Checks a writer's arguments and takes its slot: 0 or an errno value. */
static int keyed_begin(shm_cache *c, const void *key, size_t key_len,
                       struct keyed *k)
{
    if (!c || !key_valid(key, key_len))
        return EINVAL;
    if (c->read_only)
        return EROFS;
    k->slot = shmi_cache_slot_mine(c);
    if (!k->slot)
        return errno;
    k->hash = shmi_cache_hash(key, key_len);
    return 0;
}

/* Reads the key's bucket (made first if it is not: cache_split.c),
 * protecting its block and the key's item: 0, ENOMEM, EBUSY, EIO. */
static int keyed_read(shm_cache *c, struct keyed *k, const void *key,
                      size_t key_len)
{
    k->old = NULL;
    k->live = false;
    for (;;) {
        unsigned levels = shmi_cache_levels(c);
        k->bucket = k->hash & ((UINT64_C(1) << levels) - 1);
        int err = shmi_cache_install(c, k->slot, k->bucket);
        bool at_home = false;
        if (err == ENOMEM) {
            /* No room to grow the index there (a segment or a block):
             * the key stays where readers find it, in a parent not split
             * yet, while that bucket still owns it (checked below). A
             * split that would move the key away raises that bucket
             * first (cache_split.c), so the update's CAS then fails and
             * the writer comes back here. */
            k->bucket = shmi_cache_home(c, k->hash, levels, NULL);
            at_home = true;
        } else if (err) {
            return err;
        }
        uint64_t found = shmi_cache_lookup(
            c, k->slot, shmi_cache_bucket(c, k->bucket), UINT64_MAX, levels,
            k->hash, key, key_len, &k->head, &k->pos);
        if (found == SHMI_CACHE_RESTART)
            continue; /* the index grew: the key's bucket may be another */
        if (at_home &&
            !shmi_cache_entry_own(k->bucket, shmi_cache_level_of(c, k->head),
                                  k->hash)) {
            /* A split of the key's way is half made: only finishing it,
             * which needs the memory that just failed, may move on. */
            shmi_cache_unprotect(k->slot);
            return ENOMEM;
        }
        k->old = found ? shmi_cache_item_at(c, found) : NULL;
        k->live = k->old && !shmi_cache_expired_now(k->old);
        return 0;
    }
}

/* Ends an attempt that returned err: whether to make another (the bucket
 * changed, or the ring of retired chunks had to be emptied first). */
static bool keyed_again(shm_cache *c, struct keyed *k, int err)
{
    shmi_cache_unprotect(k->slot);
    if (err == EBUSY)
        shmi_cache_reclaim(c, k->slot);
    return err == EAGAIN || err == EBUSY;
}

/* The errno an operation reports for an update's result. */
static int reported(int err)
{
    return err == ECANCELED ? EAGAIN : err == EBUSY ? ENOMEM : err;
}

/* Removes every entry of the key's bucket (its head protected): what a
 * set does last when the arena has no chunk for the bucket's next block,
 * since an empty bucket takes a fresh item as it is. Whether it did. */
static bool empty_bucket(shm_cache *c, struct keyed *k)
{
    unsigned removed = 0;
    if (shmi_cache_is_direct(k->head)) {
        if (shmi_cache_update(c, k->slot, k->bucket, k->head, 0, 0, 0) == 0)
            removed = 1;
    } else if (shmi_cache_clear(c, k->slot, k->bucket, k->head, &removed) !=
               0) {
        removed = 0;
    }
    shmi_cache_slot_count(&k->slot->evictions, removed);
    return removed > 0;
}

enum store_kind { STORE_SET, STORE_ADD, STORE_REPLACE, STORE_CAS };

/* Inline: each public call gets its own copy, the kind a constant. */
static inline __attribute__((always_inline)) int
store(shm_cache *c, const void *key, size_t key_len, const void *value,
      size_t value_len, uint32_t ttl, enum store_kind kind, uint64_t version)
{
    struct keyed k = {0};
    int err = !value && value_len ? EINVAL : keyed_begin(c, key, key_len, &k);
    uint64_t item = 0;
    if (!err)
        err = item_new(c, k.slot, key, key_len, value, value_len,
                       expiry_of(ttl), &item);
    if (err)
        return fail(err);
    bool replaced_expired = false;
    for (unsigned tries = 0; tries < UPDATE_TRIES; tries++) {
        uint64_t room = 0;
        err = keyed_read(c, &k, key, key_len);
        replaced_expired = k.old && !k.live;
        if (err)
            ; /* the bucket could not be made: see keyed_again */
        else if (kind == STORE_ADD && k.live)
            err = EEXIST;
        else if ((kind == STORE_REPLACE || kind == STORE_CAS) && !k.live)
            err = ENOENT;
        else if (kind == STORE_CAS && k.old &&
                 shmi_cache_item_version(k.old) != version)
            err = ECANCELED; /* reported as EAGAIN */
        else {
            err = shmi_cache_update(c, k.slot, k.bucket, k.head, k.pos, item,
                                    k.hash);
            /* No chunk for the bucket's new block (the head is still
             * protected): the size that would hold one; after a few
             * rounds of eviction that made none, a set or add empties the
             * key's own bucket, which then needs none. */
            if (err == ENOMEM) {
                room = shmi_cache_block_bytes(c, k.head, k.old ? 0 : 1);
                if (tries >= EVICT_OWN_AFTER &&
                    (kind == STORE_SET || kind == STORE_ADD) &&
                    empty_bucket(c, &k))
                    err = EAGAIN;
            }
        }
        if (keyed_again(c, &k, err))
            continue;
        if (err == ENOMEM && tries + 1 < UPDATE_TRIES &&
            ((room && evict(c, k.slot, EVICT_PER_ROUND, room) > 0) ||
             evict(c, k.slot, EVICT_PER_ROUND, 0) > 0)) {
            shmi_cache_reclaim(c, k.slot);
            continue;
        }
        break;
    }
    if (err)
        item_drop(c, k.slot, item);
    shmi_cache_maybe_reclaim(c, k.slot);
    if (err)
        return fail(reported(err));
    shmi_cache_slot_count(&k.slot->sets, 1);
    shmi_cache_slot_count(&k.slot->expirations, replaced_expired);
    return 0;
}

int shm_cache_set(shm_cache *c, const void *key, size_t key_len,
                  const void *value, size_t value_len, uint32_t ttl_seconds)
{
    return store(c, key, key_len, value, value_len, ttl_seconds, STORE_SET, 0);
}

int shm_cache_add(shm_cache *c, const void *key, size_t key_len,
                  const void *value, size_t value_len, uint32_t ttl_seconds)
{
    return store(c, key, key_len, value, value_len, ttl_seconds, STORE_ADD, 0);
}

int shm_cache_replace(shm_cache *c, const void *key, size_t key_len,
                      const void *value, size_t value_len, uint32_t ttl_seconds)
{
    return store(c, key, key_len, value, value_len, ttl_seconds, STORE_REPLACE,
                 0);
}

int shm_cache_cas(shm_cache *c, const void *key, size_t key_len,
                  const void *value, size_t value_len, uint32_t ttl_seconds,
                  uint64_t version)
{
    return store(c, key, key_len, value, value_len, ttl_seconds, STORE_CAS,
                 version);
}

static void count_lookup(struct shmi_cache_slot *slot, bool hit)
{
    if (!slot)
        return;
    shmi_cache_slot_count(hit ? &slot->hits : &slot->misses, 1);
}

/* The live item of key, protected in slot (NULL: a read-only handle's
 * unprotected read), or NULL when there is none or it expired. The
 * lookup checked the item (shmi_cache_item_at) before it compared its
 * key; protected, it stays as it was. */
static struct shmi_cache_item *live_item(shm_cache *c,
                                         struct shmi_cache_slot *slot,
                                         const void *key, size_t key_len)
{
    uint64_t found =
        shmi_cache_find(c, slot, shmi_cache_hash(key, key_len), key, key_len);
    struct shmi_cache_item *item = found ? shmi_cache_at(c, found) : NULL;
    return item && !shmi_cache_expired_now(item) ? item : NULL;
}

/* The eviction hint of a read. relaxed: written only when clear, so a hot
 * entry's line is not written on every hit. */
static void mark_used(struct shmi_cache_item *item)
{
    if (!atomic_load_explicit(&item->used, memory_order_relaxed))
        atomic_store_explicit(&item->used, 1, memory_order_relaxed);
}

int shm_cache_gets(shm_cache *c, const void *key, size_t key_len, void *buf,
                   size_t buf_size, size_t *value_len, uint64_t *version)
{
    if (!c || !key_valid(key, key_len) || (!buf && buf_size))
        return fail(EINVAL);
    /* A read-only cache has no slot: its reads protect nothing, so a value
     * being replaced at that moment may be read from a chunk already
     * reused (a tool's view, not a client's). */
    struct shmi_cache_slot *slot =
        c->read_only ? NULL : shmi_cache_slot_mine(c);
    if (!slot && !c->read_only)
        return fail(errno);
    struct shmi_cache_item *item = live_item(c, slot, key, key_len);
    int err = 0;
    if (!item) {
        err = ENOENT;
    } else {
        if (value_len)
            *value_len = item->value_len;
        if (version)
            *version = shmi_cache_item_version(item);
        if (buf_size < item->value_len) {
            err = ENOBUFS;
        } else {
            if (item->value_len)
                memcpy(buf, shmi_cache_item_value(item), item->value_len);
        }
        if (!c->read_only)
            mark_used(item);
    }
    if (slot)
        shmi_cache_unprotect(slot);
    count_lookup(slot, err != ENOENT);
    return fail(err);
}

int shm_cache_get(shm_cache *c, const void *key, size_t key_len, void *buf,
                  size_t buf_size, size_t *value_len)
{
    return shm_cache_gets(c, key, key_len, buf, buf_size, value_len, NULL);
}

/* A view is a get that leaves its hazards set (cache_reclaim.c): the
 * item stays allocated until they are cleared, by view_end or by the
 * thread's next call, which sets them anew. */
int shm_cache_view(shm_cache *c, const void *key, size_t key_len,
                   struct shm_cache_view *view)
{
    if (!c || !view || !key_valid(key, key_len))
        return fail(EINVAL);
    view->value = NULL;
    view->value_len = 0;
    view->version = 0;
    if (c->read_only)
        return fail(EROFS);
    struct shmi_cache_slot *slot = shmi_cache_slot_mine(c);
    if (!slot)
        return fail(errno);
    struct shmi_cache_item *item = live_item(c, slot, key, key_len);
    count_lookup(slot, item != NULL);
    if (!item) {
        shmi_cache_unprotect(slot);
        return fail(ENOENT);
    }
    view->value = shmi_cache_item_value(item);
    view->value_len = item->value_len;
    view->version = shmi_cache_item_version(item);
    mark_used(item);
    return 0;
}

void shm_cache_view_end(shm_cache *c, struct shm_cache_view *view)
{
    if (view) {
        view->value = NULL;
        view->value_len = 0;
    }
    if (!c || c->read_only)
        return;
    struct shmi_cache_slot *slot = shmi_cache_slot_mine(c);
    if (slot)
        shmi_cache_unprotect(slot);
}

int shm_cache_delete(shm_cache *c, const void *key, size_t key_len)
{
    struct keyed k = {0};
    int err = keyed_begin(c, key, key_len, &k);
    if (err)
        return fail(err);
    bool was_live = false;
    for (unsigned tries = 0; tries < UPDATE_TRIES; tries++) {
        err = keyed_read(c, &k, key, key_len);
        was_live = k.live;
        if (!err && k.old)
            err = shmi_cache_update(c, k.slot, k.bucket, k.head, k.pos, 0, 0);
        if (!keyed_again(c, &k, err))
            break;
    }
    shmi_cache_maybe_reclaim(c, k.slot);
    if (err)
        return fail(reported(err));
    if (!was_live)
        return fail(ENOENT); /* an expired entry is removed all the same */
    shmi_cache_slot_count(&k.slot->deletes, 1);
    return 0;
}

int shm_cache_incr(shm_cache *c, const void *key, size_t key_len, int64_t delta,
                   int64_t initial, uint32_t ttl_seconds, int64_t *result)
{
    struct keyed k = {0};
    int err = keyed_begin(c, key, key_len, &k);
    /* The new item is made once, before any read (making it may evict),
     * and rewritten on every try: it is this writer's alone until the
     * update publishes it. */
    uint64_t item = 0;
    int64_t value = initial;
    if (!err)
        err = item_new(c, k.slot, key, key_len, &value, sizeof value,
                       expiry_of(ttl_seconds), &item);
    if (err)
        return fail(err);
    struct shmi_cache_item *mine = shmi_cache_at(c, item);
    for (unsigned tries = 0; tries < UPDATE_TRIES * 4; tries++) {
        err = keyed_read(c, &k, key, key_len);
        value = initial;
        uint64_t expires = expiry_of(ttl_seconds);
        if (err) {
            ; /* the bucket could not be made: see keyed_again */
        } else if (k.live && k.old->value_len != sizeof value) {
            err = EINVAL;
        } else {
            if (k.live) {
                int64_t current;
                memcpy(&current, shmi_cache_item_value(k.old), sizeof current);
                value = (int64_t)((uint64_t)current + (uint64_t)delta);
                expires = shmi_cache_item_expires(k.old);
            }
            mine->expiry_key = shmi_cache_item_expiry_key(expires, key_len);
            memcpy(mine->bytes + key_len, &value, sizeof value);
            err = shmi_cache_update(c, k.slot, k.bucket, k.head, k.pos, item,
                                    k.hash);
        }
        if (!keyed_again(c, &k, err))
            break;
    }
    if (err)
        item_drop(c, k.slot, item);
    shmi_cache_maybe_reclaim(c, k.slot);
    if (err)
        return fail(reported(err));
    shmi_cache_slot_count(&k.slot->sets, 1);
    if (result)
        *result = value;
    return 0;
}

int shm_cache_foreach(shm_cache *c,
                      int (*visit)(const void *key, size_t key_len,
                                   const void *value, size_t value_len,
                                   void *ctx),
                      void *ctx)
{
    if (!c || !visit)
        return fail(EINVAL);
    struct shmi_cache_slot *slot =
        c->read_only ? NULL : shmi_cache_slot_mine(c);
    if (!slot && !c->read_only)
        return fail(errno);
    uint64_t now = shmi_os_monotonic_ms();
    uint64_t buckets = UINT64_C(1) << shmi_cache_levels(c);
    for (uint64_t bucket = 0; bucket < buckets; bucket++) {
        /* Items visited in this bucket, so that a bucket that changes
         * during the visit is read again without visiting one twice. */
        uint64_t seen[SHMI_CACHE_MAX_ENTRIES];
        unsigned seen_count = 0;
        const shmi_atomic_word *word = shmi_cache_bucket(c, bucket);
        if (!word)
            continue; /* not made: its keys are its parent's */
        int ret = 0;
        bool again = true;
        while (again && !ret) {
            again = false;
            /* acquire: pairs with the CAS that published the block (X1). */
            uint64_t head = slot ? shmi_cache_protect_block(slot, word)
                                 : shmi_atomic_load_acquire(word);
            struct shmi_cache_view b;
            if (!shmi_cache_view_of(c, head, true, &b))
                b.count = 0;
            for (uint64_t i = 0; i < b.count && !ret && !again; i++) {
                uint64_t off = b.entry[i].item;
                bool visited = false;
                for (unsigned k = 0; k < seen_count; k++)
                    visited |= seen[k] == off;
                if (visited)
                    continue;
                if (slot && !shmi_cache_protect_item(slot, word, head, off)) {
                    again = true;
                    break;
                }
                /* After the hazard: an entry of a bucket split off since
                 * may have a retired item (cache_split.c, Readers). */
                if (!shmi_cache_entry_current(c, bucket, b.level,
                                              b.entry[i].hash))
                    continue;
                const struct shmi_cache_item *item = shmi_cache_item_at(c, off);
                if (seen_count < SHMI_CACHE_MAX_ENTRIES)
                    seen[seen_count++] = off;
                if (item && !shmi_cache_expired(item, now))
                    ret = visit(item->bytes, shmi_cache_item_key_len(item),
                                shmi_cache_item_value(item), item->value_len,
                                ctx);
            }
        }
        if (slot)
            shmi_cache_unprotect(slot);
        if (ret)
            return ret;
    }
    return 0;
}

int shm_cache_stats(shm_cache *c, struct shm_cache_stats *stats)
{
    if (!c || !stats)
        return fail(EINVAL);
    memset(stats, 0, sizeof *stats);
    const struct shmi_cache_header *h = c->header;
    /* relaxed: a snapshot of statistics. */
    stats->items = shmi_atomic_load_relaxed(&h->items);
    uint64_t bytes = shmi_atomic_load_relaxed(&h->bytes);
    uint64_t memory = shmi_atomic_load_relaxed(&h->memory);
    stats->buckets = UINT64_C(1) << shmi_cache_levels(c);
    for (unsigned i = 0; i < c->slot_count; i++) {
        const struct shmi_cache_slot *s = shmi_cache_slot_at(c, i);
        stats->hits += shmi_atomic_load_relaxed(&s->hits);
        stats->misses += shmi_atomic_load_relaxed(&s->misses);
        stats->sets += shmi_atomic_load_relaxed(&s->sets);
        stats->deletes += shmi_atomic_load_relaxed(&s->deletes);
        stats->evictions += shmi_atomic_load_relaxed(&s->evictions);
        stats->expirations += shmi_atomic_load_relaxed(&s->expirations);
        memory += shmi_atomic_load_relaxed(&s->memory);
        bytes += shmi_atomic_load_relaxed(&s->bytes);
    }
    stats->memory = (size_t)memory;
    stats->bytes = (size_t)bytes;
    return 0;
}

int shm_cache_recover(shm_cache *c, unsigned *recovered)
{
    if (!c)
        return fail(EINVAL);
    if (c->read_only)
        return fail(EROFS);
    struct shmi_cache_slot *slot = shmi_cache_slot_mine(c);
    if (!slot)
        return fail(errno);
    unsigned n = shmi_cache_recover_slots(c, slot);
    shmi_cache_reclaim(c, slot);
    if (recovered)
        *recovered = n;
    return 0;
}
