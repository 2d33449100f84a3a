/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Reclamation for the cache: when a chunk that readers may still be
 * reading (a replaced block, a deleted item) can go back to the arena.
 * Hazard offsets (Michael's hazard pointers, with offsets), with every
 * piece of state in the file so that a process killed anywhere leaves
 * nothing that only it knew.
 *
 * State (cache_layout.h), per thread slot:
 *   owner       0 (free), the owner's token (the process-table entry of
 *               the process whose thread holds the slot), or
 *               RECOVERING | the recoverer's token
 *   hazard[2]   the block and the item the thread is reading, 0 for none
 *   ring        chunks the owner retired and nobody has freed yet:
 *               entries ring_head .. ring_tail - 1 of a chunk of
 *               (offset, 0) pairs; an entry whose offset is 0 is done
 * and in the header, slots_used: one more than the highest slot ever
 * taken, raised (seq_cst) by a thread that takes a slot above it before
 * the slot's first hazard; reclaimers read the slots below it only.
 *
 * Protocol:
 *   protect:  h = bucket word; hazard[0] = the chunk h names (its block,
 *             or its item when h is a direct head, cache_index.c)
 *             (seq_cst); read the bucket
 *             again: if it still holds h, h stays allocated until the
 *             hazard is cleared (H1). An item of block h is protected the
 *             same way: hazard[1] = item, then the bucket must still hold
 *             h (the item is then still referenced, so not yet retired).
 *   retire:   after a chunk became unreachable (a CAS replaced it), write
 *             ring[tail] = chunk, then tail = tail + 1. Who retires what,
 *             exactly once, is the index's protocol (cache_index.c).
 *   reclaim:  read every live owner's hazards (seq_cst), then free every
 *             ring entry no hazard names: its offset is set to 0 first,
 *             then the chunk freed; head moves past the entries done.
 *
 * Invariants:
 *   H1  a chunk retired after a reader's re-check saw it reachable is
 *       named by that reader's hazard when the reclaimer reads the
 *       hazards (store-buffer pattern: the reader stores the hazard then
 *       loads the bucket; the writer CASes the bucket then, later, the
 *       reclaimer loads the hazards; all seq_cst, so either the reader
 *       sees the chunk unlinked and retries, or the reclaimer sees the
 *       hazard);
 *   H2  so a freed chunk is being read by no reader that protected it.
 *
 * Progress: readers never wait, and a writer never waits for a reader.
 * What a live reader that stalls (preempted, stopped) holds back is the
 * two chunks its hazards name, whatever it was doing. A dead reader holds
 * back nothing: the hazards of owners that are not live are not read.
 *
 * Crashes. The owner's state is its slot: a survivor that finds the owner
 * dead (its token no longer live) takes the slot with a CAS, resolves its
 * update in flight (cache_index.c: it retires only what is not already in
 * the dead slot's ring), and frees the slot, keeping its ring for the next
 * owner. A process killed between zeroing a ring entry and freeing that
 * chunk leaks the chunk: the entry is zeroed first, since a second free of
 * a chunk already handed out again would be worse.
 */
#include "cache_internal.h"

#include "os.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define RECOVERING (UINT64_C(1) << 63)
#define TLS_CACHES 8
#define RECLAIM_EVERY 32

/* ---- this thread's slots ---------------------------------------------- */

struct held_slot {
    uint64_t serial; /* cache handle, 0: none */
    unsigned index;
    struct shmi_cache_slot *slot; /* slot `index`, found once */
};

/* initial-exec: a load from the thread pointer on every call, as the
 * allocator's own thread state (thread_cache.c). */
static _Thread_local struct held_slot thread_slots[TLS_CACHES]
    __attribute__((tls_model("initial-exec")));
static _Thread_local unsigned retires_since_reclaim
    __attribute__((tls_model("initial-exec")));
/* Set while a recovery reclaims to make room in its ring: the reclaim
 * then skips the dead readers it meets instead of recovering them. */
static _Thread_local bool making_room
    __attribute__((tls_model("initial-exec")));

/* Open caches, so that a thread leaving finds the handles of the slots it
 * holds (handles may be closed first). */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t thread_exit_key;
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;

struct registered {
    shm_cache *cache;
    struct registered *next;
};
static struct registered *registry;

static void slot_release(shm_cache *c, unsigned index)
{
    struct shmi_cache_slot *slot = shmi_cache_slot_at(c, index);
    shmi_atomic_store_relaxed(&slot->hazard[0], 0);
    shmi_atomic_store_relaxed(&slot->hazard[1], 0);
    /* release: the next owner sees the ring as this one left it. */
    shmi_atomic_store_release(&slot->owner, 0);
}

static shm_cache *registered_cache(uint64_t serial)
{
    for (struct registered *r = registry; r; r = r->next)
        if (r->cache->serial == serial)
            return r->cache;
    return NULL;
}

static void forget_held(shm_cache *c, unsigned index)
{
    for (unsigned i = 0; i < c->held_count; i++) {
        if (c->held[i] == index) {
            c->held[i] = c->held[--c->held_count];
            return;
        }
    }
}

/* A thread leaves: give back the slots it holds in caches still open. */
static void on_thread_exit(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&registry_lock);
    for (unsigned i = 0; i < TLS_CACHES; i++) {
        shm_cache *c = thread_slots[i].serial
                           ? registered_cache(thread_slots[i].serial)
                           : NULL;
        if (c) {
            pthread_mutex_lock(&c->held_lock);
            forget_held(c, thread_slots[i].index);
            pthread_mutex_unlock(&c->held_lock);
            slot_release(c, thread_slots[i].index);
        }
        thread_slots[i].serial = 0;
    }
    pthread_mutex_unlock(&registry_lock);
}

/* A forked child holds no slot: its parent's threads do. */
static void after_fork_in_child(void)
{
    memset(thread_slots, 0, sizeof thread_slots);
    pthread_mutex_init(&registry_lock, NULL);
}

static void setup(void)
{
    pthread_key_create(&thread_exit_key, on_thread_exit);
    pthread_atfork(NULL, NULL, after_fork_in_child);
}

int shmi_cache_register(shm_cache *c)
{
    pthread_once(&setup_once, setup);
    struct registered *r = malloc(sizeof *r);
    if (!r)
        return ENOMEM;
    r->cache = c;
    pthread_mutex_lock(&registry_lock);
    r->next = registry;
    registry = r;
    pthread_mutex_unlock(&registry_lock);
    return 0;
}

void shmi_cache_slots_release(shm_cache *c)
{
    pthread_mutex_lock(&registry_lock);
    for (struct registered **p = &registry; *p; p = &(*p)->next) {
        if ((*p)->cache == c) {
            struct registered *gone = *p;
            *p = gone->next;
            free(gone);
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    pthread_mutex_lock(&c->held_lock);
    for (unsigned i = 0; i < c->held_count; i++)
        slot_release(c, c->held[i]);
    c->held_count = 0;
    pthread_mutex_unlock(&c->held_lock);
    for (unsigned i = 0; i < TLS_CACHES; i++)
        if (thread_slots[i].serial == c->serial)
            thread_slots[i].serial = 0;
}

/* A free entry of this thread's list, forgetting caches closed since. */
static struct held_slot *tls_free_entry(void)
{
    for (unsigned i = 0; i < TLS_CACHES; i++)
        if (thread_slots[i].serial == 0)
            return &thread_slots[i];
    struct held_slot *found = NULL;
    pthread_mutex_lock(&registry_lock);
    for (unsigned i = 0; i < TLS_CACHES; i++) {
        if (!registered_cache(thread_slots[i].serial)) {
            thread_slots[i].serial = 0;
            found = found ? found : &thread_slots[i];
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return found;
}

/* ---- the ring of retired chunks --------------------------------------- */

static struct shmi_cache_retired *ring_of(const shm_cache *c,
                                          const struct shmi_cache_slot *slot)
{
    /* relaxed: only the slot's owner (or its recoverer, after a CAS on
     * owner that acquired) writes it. */
    return shmi_cache_at(c, shmi_atomic_load_relaxed(&slot->ring));
}

/* Whether an offset from the file can be a chunk of this arena. */
static bool plausible_chunk(const shm_cache *c, uint64_t off)
{
    return off >= c->data_start && off < c->data_end &&
           off % SHMI_CACHE_MIN_CHUNK == 0;
}

void shmi_cache_retire(shm_cache *c, struct shmi_cache_slot *slot, uint64_t off)
{
    uint64_t tail = shmi_atomic_load_relaxed(&slot->ring_tail);
    struct shmi_cache_retired *r = &ring_of(c, slot)[tail % c->ring_entries];
    shmi_atomic_store_relaxed(&r->offset, off);
    /* release: a recoverer that reads the new tail sees the entry. */
    shmi_atomic_store_release(&slot->ring_tail, tail + 1);
    retires_since_reclaim++;
}

bool shmi_cache_ring_holds(const shm_cache *c,
                           const struct shmi_cache_slot *slot, uint64_t off)
{
    if (shmi_atomic_load_relaxed(&slot->ring) == 0)
        return false;
    const struct shmi_cache_retired *ring = ring_of(c, slot);
    uint64_t head = shmi_atomic_load_relaxed(&slot->ring_head);
    uint64_t tail = shmi_atomic_load_relaxed(&slot->ring_tail);
    if (tail - head > c->ring_entries)
        return false; /* damaged */
    for (uint64_t i = head; i < tail; i++)
        if (shmi_atomic_load_relaxed(&ring[i % c->ring_entries].offset) == off)
            return true;
    return false;
}

void shmi_cache_maybe_reclaim(shm_cache *c, struct shmi_cache_slot *slot)
{
    if (retires_since_reclaim >= RECLAIM_EVERY ||
        !shmi_cache_ring_has_room(c, slot, c->ring_entries / 2))
        shmi_cache_reclaim(c, slot);
}

bool shmi_cache_ring_has_room(const shm_cache *c,
                              const struct shmi_cache_slot *slot,
                              unsigned needed)
{
    uint64_t used = shmi_atomic_load_relaxed(&slot->ring_tail) -
                    shmi_atomic_load_relaxed(&slot->ring_head);
    return used + needed <= c->ring_entries;
}

shm_offt shmi_cache_chunk_new(shm_cache *c, struct shmi_cache_slot *slot,
                              size_t size)
{
    shm_offt off = shmi_arena_malloc(c->arena, size);
    /* Without trimming a request's chunk size is known from the request;
     * with it, a thread cache may hand out a longer one. */
    if (off != SHM_NULL) {
        size_t got = SHM_TRIM ? shmi_arena_usable_size(c->arena, off)
                              : shmi_arena_chunk_size(size);
        shmi_cache_slot_count(&slot->memory, got);
    }
    return off;
}

void shmi_cache_chunk_free(shm_cache *c, struct shmi_cache_slot *slot,
                           uint64_t off)
{
    /* Taken out of the slot's memory by the free itself, before the chunk
     * goes, so that a kill in between leaves the memory counted below the
     * arena's bytes in use, never above (the kill test of
     * cache_processes); the free knows the size without a lookup. */
    shmi_arena_free_counted(c->arena, off, &slot->memory);
}

/* ---- hazards --------------------------------------------------------- */

uint64_t shmi_cache_protect_block(struct shmi_cache_slot *slot,
                                  const shmi_atomic_word *bucket)
{
    for (;;) {
        /* seq_cst load, store and load: the reader's half of H1. */
        uint64_t head = shmi_atomic_load_seq_cst(bucket);
        /* A word naming an item carries a tag: the hazard is the chunk. */
        atomic_store_explicit(&slot->hazard[0], shmi_cache_head_chunk(head),
                              memory_order_seq_cst);
        if (shmi_atomic_load_seq_cst(bucket) == head)
            return head;
    }
}

bool shmi_cache_protect_item(struct shmi_cache_slot *slot,
                             const shmi_atomic_word *bucket, uint64_t head,
                             uint64_t item)
{
    /* seq_cst: as in shmi_cache_protect_block (H1). */
    atomic_store_explicit(&slot->hazard[1], item, memory_order_seq_cst);
    return shmi_atomic_load_seq_cst(bucket) == head;
}

void shmi_cache_unprotect(struct shmi_cache_slot *slot)
{
    /* release: the reads of the protected chunks happen before a
     * reclaimer sees the hazards cleared. */
    shmi_atomic_store_release(&slot->hazard[0], 0);
    shmi_atomic_store_release(&slot->hazard[1], 0);
}

static bool recover_slot(shm_cache *c, struct shmi_cache_slot *mine,
                         struct shmi_cache_slot *dead, uint64_t owner);

static int compare_offsets(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The slots that may have been taken: those below the high-water mark,
 * checked (a file's number), or all of them in a file without one. */
static unsigned slots_in_use(const shm_cache *c)
{
    /* seq_cst: after the reclaimer's bucket CAS; see slot_take. */
    uint64_t used = shmi_atomic_load_seq_cst(&c->header->slots_used);
    return used == 0 || used > c->slot_count ? c->slot_count : (unsigned)used;
}

/* The hazards of every live owner, sorted; returns how many. Slots of
 * dead owners are recovered on the way when there is room. */
static size_t hazards_read(shm_cache *c, struct shmi_cache_slot *mine,
                           uint64_t *out)
{
    size_t n = 0;
    unsigned slots = slots_in_use(c);
    for (unsigned i = 0; i < slots; i++) {
        struct shmi_cache_slot *s = shmi_cache_slot_at(c, i);
        uint64_t owner = shmi_atomic_load_seq_cst(&s->owner);
        if (owner == 0)
            continue;
        /* seq_cst: the reclaimer's half of H1. */
        uint64_t h0 = shmi_atomic_load_seq_cst(&s->hazard[0]);
        uint64_t h1 = shmi_atomic_load_seq_cst(&s->hazard[1]);
        if ((h0 || h1) &&
            !shmi_arena_owner_live(c->arena, owner & ~RECOVERING)) {
            /* A dead reader reads nothing. Not while this thread makes
             * room for a recovery: that would recover again, and again. */
            if (!making_room)
                recover_slot(c, mine, s, owner);
            continue;
        }
        if (h0)
            out[n++] = h0;
        if (h1)
            out[n++] = h1;
    }
    if (n > 1)
        qsort(out, n, sizeof *out, compare_offsets);
    return n;
}

static bool hazarded(const uint64_t *hazards, size_t n, uint64_t off)
{
    return bsearch(&off, hazards, n, sizeof off, compare_offsets) != NULL;
}

void shmi_cache_reclaim(shm_cache *c, struct shmi_cache_slot *slot)
{
    retires_since_reclaim = 0;
    uint64_t hazards[2 * SHMI_CACHE_SLOT_LIMIT];
    size_t n = hazards_read(c, slot, hazards);
    struct shmi_cache_retired *ring = ring_of(c, slot);
    uint64_t head = shmi_atomic_load_relaxed(&slot->ring_head);
    uint64_t tail = shmi_atomic_load_relaxed(&slot->ring_tail);
    for (uint64_t i = head; i < tail; i++) {
        struct shmi_cache_retired *r = &ring[i % c->ring_entries];
        uint64_t off = shmi_atomic_load_relaxed(&r->offset);
        if (off == 0 || hazarded(hazards, n, off))
            continue;
        /* The entry is marked done before the chunk is freed (see
         * Crashes). relaxed: the owner's own entry; a recoverer reads it
         * only after the owner died. */
        shmi_atomic_store_relaxed(&r->offset, 0);
        if (plausible_chunk(c, off))
            shmi_cache_chunk_free(c, slot, off);
    }
    /* Past the entries done. A hazarded entry at the head is moved to the
     * tail when the ring is short of room, so that one stalled reader
     * cannot stop its ring; each entry at most once per call. */
    for (uint64_t end = tail; head < end; head++) {
        struct shmi_cache_retired *r = &ring[head % c->ring_entries];
        uint64_t off = shmi_atomic_load_relaxed(&r->offset);
        if (off != 0) {
            if (shmi_cache_ring_has_room(c, slot, c->ring_entries / 4))
                break;
            shmi_atomic_store_relaxed(&r->offset, 0);
            struct shmi_cache_retired *t = &ring[tail % c->ring_entries];
            shmi_atomic_store_relaxed(&t->offset, off);
            /* release: a recoverer that reads the tail sees the entry. */
            shmi_atomic_store_release(&slot->ring_tail, ++tail);
        }
        /* release: as the tail. */
        shmi_atomic_store_release(&slot->ring_head, head + 1);
    }
}

/* ---- slots ------------------------------------------------------------ */

/* Recovers the slot of a dead owner. With `mine`, the survivor's own
 * slot receives what the recovery retires and the dead slot is freed;
 * without, the survivor takes the dead slot over as its own (its ring then
 * receives them) and keeps it. Returns whether it did. */
static bool recover_slot(shm_cache *c, struct shmi_cache_slot *mine,
                         struct shmi_cache_slot *dead, uint64_t owner)
{
    uint64_t me = shmi_arena_owner_token(c->arena);
    if (me == 0 || shmi_atomic_load_relaxed(&dead->ring) == 0)
        return false;
    struct shmi_cache_slot *into = mine ? mine : dead;
    /* What the update in flight may retire (cache_index.c). */
    unsigned needed = shmi_cache_pending_retires(c, dead);
    if (!shmi_cache_ring_has_room(c, into, needed)) {
        if (making_room)
            return false;
        making_room = true;
        shmi_cache_reclaim(c, into);
        making_room = false;
        if (!shmi_cache_ring_has_room(c, into, needed))
            return false; /* later: readers hold the ring full */
    }
    uint64_t next = mine ? RECOVERING | me : me;
    /* acq_rel: acquire the dead owner's last stores to its slot; the
     * CAS makes this recoverer the only one. */
    if (!shmi_atomic_cas_acq_rel(&dead->owner, &owner, next))
        return false;
    shmi_cache_resolve_pending(c, mine ? mine : dead, dead);
    shmi_cache_resolve_segment(c, dead);
    shmi_atomic_store_relaxed(&dead->hazard[0], 0);
    shmi_atomic_store_relaxed(&dead->hazard[1], 0);
    if (mine) {
        /* release: the next owner sees the slot as recovered. */
        atomic_compare_exchange_strong_explicit(
            &dead->owner, &next, 0, memory_order_release, memory_order_relaxed);
    }
    return true;
}

unsigned shmi_cache_recover_slots(shm_cache *c, struct shmi_cache_slot *mine)
{
    unsigned recovered = 0;
    for (unsigned i = 0; i < c->slot_count; i++) {
        struct shmi_cache_slot *s = shmi_cache_slot_at(c, i);
        uint64_t owner = shmi_atomic_load_seq_cst(&s->owner);
        if (s == mine || owner == 0 ||
            shmi_arena_owner_live(c->arena, owner & ~RECOVERING))
            continue;
        if (recover_slot(c, mine, s, owner))
            recovered++;
    }
    return recovered;
}

/* Takes slot index for token; false when another thread took it first. */
static bool slot_take(shm_cache *c, unsigned index, uint64_t token)
{
    struct shmi_cache_slot *s = shmi_cache_slot_at(c, index);
    uint64_t expected = 0;
    /* acquire: pairs with the release that freed the slot, so its ring
     * and counters are seen as the last owner left them. */
    if (!atomic_compare_exchange_strong_explicit(&s->owner, &expected, token,
                                                 memory_order_acquire,
                                                 memory_order_relaxed))
        return false;
    /* The high-water mark covers the slot before its first hazard.
     * seq_cst: a reclaimer that reads the mark too low read it before
     * this store, so before this thread's first hazard store and its
     * bucket load, which then see the reclaimer's CAS (H1 holds). */
    uint64_t used = shmi_atomic_load_seq_cst(&c->header->slots_used);
    while (used < (uint64_t)index + 1 &&
           !shmi_atomic_cas_seq_cst(&c->header->slots_used, &used,
                                    (uint64_t)index + 1))
        ;
    if (shmi_atomic_load_relaxed(&s->ring) == 0) {
        size_t size =
            (size_t)c->ring_entries * sizeof(struct shmi_cache_retired);
        shm_offt ring = shmi_cache_chunk_new(c, s, size);
        if (ring == SHM_NULL) {
            slot_release(c, index);
            return false;
        }
        shmi_atomic_store_relaxed(&s->ring_head, 0);
        shmi_atomic_store_relaxed(&s->ring_tail, 0);
        shmi_atomic_store_relaxed(&s->ring, ring);
    }
    return true;
}

static struct held_slot *tls_entry(const shm_cache *c)
{
    for (unsigned i = 0; i < TLS_CACHES; i++)
        if (thread_slots[i].serial == c->serial)
            return &thread_slots[i];
    return NULL;
}

/* A slot for a thread that holds none of c's yet. */
static __attribute__((noinline)) struct shmi_cache_slot *
slot_first_use(shm_cache *c)
{
    if (c->read_only) {
        errno = EROFS;
        return NULL;
    }
    uint64_t token = shmi_arena_owner_token(c->arena);
    struct held_slot *free_entry = tls_free_entry();
    if (token == 0 || !free_entry) {
        errno = ENOSPC;
        return NULL;
    }
    pthread_once(&setup_once, setup);
    /* A free slot, or else one whose owner died, taken over. */
    unsigned taken = UINT32_MAX;
    for (unsigned i = 0; i < c->slot_count && taken == UINT32_MAX; i++)
        if (slot_take(c, i, token))
            taken = i;
    for (unsigned i = 0; i < c->slot_count && taken == UINT32_MAX; i++) {
        struct shmi_cache_slot *s = shmi_cache_slot_at(c, i);
        uint64_t owner = shmi_atomic_load_seq_cst(&s->owner);
        if (owner != 0 &&
            !shmi_arena_owner_live(c->arena, owner & ~RECOVERING) &&
            recover_slot(c, NULL, s, owner))
            taken = i;
    }
    if (taken != UINT32_MAX) {
        pthread_mutex_lock(&c->held_lock);
        c->held[c->held_count++] = taken;
        pthread_mutex_unlock(&c->held_lock);
        free_entry->serial = c->serial;
        free_entry->index = taken;
        struct shmi_cache_slot *s = shmi_cache_slot_at(c, taken);
        free_entry->slot = s;
        pthread_setspecific(thread_exit_key, c); /* any non-NULL value */
        shmi_cache_reclaim(c, s);                /* what the last owner left */
        return s;
    }
    errno = ENOSPC;
    return NULL;
}

struct shmi_cache_slot *shmi_cache_slot_mine(shm_cache *c)
{
    struct held_slot *held = tls_entry(c);
    return held ? held->slot : slot_first_use(c);
}
