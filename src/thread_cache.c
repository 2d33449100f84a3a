/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Thread caches kept in the file: a few free chunks of each small size
 * class per thread, so that a malloc and a free are a few plain loads and
 * stores, and a process killed anywhere loses none of them.
 *
 * Where they live. The cache of thread record i (pending.c) is slot i of
 * the cache region (layout.c: tcache_slots of SHMI_TCACHE_SLOT_SIZE
 * bytes); whoever holds record i owns cache i, and nobody else writes it.
 * A slot is
 *
 *   word 0       flush: 0, or a flush in progress (FLUSH | class << 16 |
 *                lo << 8 | hi: entries lo..hi-1 of that class leaving)
 *   then per cached class c (size 2^(MIN+c) <= BYTES / (2 * CHUNKS)):
 *     count      entries in use, 0..CHUNKS
 *     entry[]    x | code: a chunk's data offset x (aligned to 2^(MIN+c))
 *                and its length code L / G - 1 (< 32, G the class's
 *                granule, tree.h; 0 for a whole node without SHM_TRIM),
 *                CHUNKS of them
 *
 * A cached chunk is allocated in the bitmaps, as a live one is (all its
 * pieces, continuation bits set: tree.c, "Trimming"): the tree never
 * hands it out. Its first 8 bytes hold its tag, MAGIC << 32 | code << 21
 * | slot << 12 | class << 6 | position, rewritten on every push; the code
 * in the tag confirms the entry's, so a damaged code is refused.
 *
 * The owner's steps (only the owner writes its slot; plain stores, the
 * count's release-ordered; on x86 every one is a plain mov):
 *   pop      (a request of length L') n = count; x | code = entry[n-1];
 *            code's L >= L'; check x; count = n-1; return x (usable: L)
 *   scan     (top too short) the entry i nearest the top with L >= L':
 *            count = n-1; entry[i] = entry[n-1]; its tag; return entry i's
 *   push     tag(x) = ...; entry[n] = x | code; count = n+1
 *   refill   (no entry long enough) the tree claims up to CHUNKS/2 + 1
 *            chunks of exactly L' from one word with one CAS
 *            (shmi_tree_alloc_batch): the extra ones are written to
 *            entry[n..] before the CAS, their continuation bits set and
 *            the count stored after it; then their tags; the first is
 *            returned
 *   flush    (full bin, or all of them) flush = {c, lo, hi}; count = lo;
 *            then, word by word, entry[i] = NONE for the chunks of the
 *            word, and one CAS frees them; flush = 0
 *
 * Invariant C: every chunk listed in a bin below its count, or listed in
 * the flush range with an entry other than NONE while count <= lo, is
 * allocated in the bitmaps and held by nobody but the cache. So a
 * survivor that finds the owner dead (the record's owner gone, through the
 * kernel's lock) frees exactly those and never one that was handed out:
 *   - a pop lowers the count before the chunk reaches the program;
 *   - a push counts a chunk only after its entry is written;
 *   - a flush takes the chunks out of the count before any is freed, and
 *     marks each NONE before the CAS that frees it;
 *   - a scan lowers the count before it moves the top entry down, so the
 *     top chunk is never listed twice (a kill in between leaks it);
 *   - a refill lists its chunks before the claiming CAS, and counts them
 *     after it and their continuation bits, so a listed chunk is freed
 *     whole.
 * What a kill can still leak: the chunk in flight (popped and not yet
 * returned, or freed and not yet pushed), as without caches; a refill's
 * chunks when the kill falls between its CAS and the count store (two
 * instructions, and the continuation OR); the top chunk when it falls
 * inside a scan's two stores; the chunks of one word when it falls between
 * their NONE stores and the CAS. Recovery (arena_recover.c) takes a dead
 * owner's record and, before giving it back, drains its cache (the release hook
 * of pending.c): it first finishes a flush in progress (when count <= lo:
 * the count store was done), then flushes every bin, itself recorded in
 * the same way, so a recoverer killed in the middle leaves the rest to
 * the next one.
 *
 * Checked free. A free of a chunk that sits in a cache (a double free, by
 * the same thread or any other) finds the chunk allocated in the bitmaps;
 * its first word then matches a tag, which is confirmed against the bin
 * it names (position below the count, entry equal to the chunk) before
 * the free is refused with EINVAL. A chunk whose tag does not confirm is
 * not cached, whatever its bytes say. Limits: a program that writes into
 * a chunk after freeing it (a use after free) can erase the tag, and then
 * a second free of it is not caught; a pop finds such a chunk's tag wrong
 * and never hands it out (it is reported and stays allocated, for the
 * collector). A double free racing the first free's push in another
 * thread may also be missed.
 *
 * Bounds. CHUNKS per class and classes up to BYTES / (2 * CHUNKS): a
 * thread caches less than BYTES (config.cmake). A thread's cache is
 * flushed when it exits (pending.c gives its record back), when its
 * attachment closes, when it calls exit(), and before a malloc reports
 * ENOMEM. A forked child starts without a cache (its copy of the parent's
 * handle has no record); the fork handler forgets the parent's.
 */
#include "thread_cache.h"

#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>

#include "pending.h"
#include "report.h"

#define CHUNKS SHM_THREAD_CACHE_CHUNKS
#define FLUSH (UINT64_C(1) << 63)
#define NONE UINT64_MAX

_Thread_local struct shmi_tcache_thread shmi_tcache_self
    __attribute__((tls_model("initial-exec")));

#if SHM_TEST_HOOKS
void (*shmi_tcache_test_hook)(unsigned point);
#endif

struct slot {
    shmi_atomic_word flush;
    struct shmi_tcache_bin
        bin[SHMI_TCACHE_CLASSES > 0 ? SHMI_TCACHE_CLASSES : 1];
};

_Static_assert(SHMI_TCACHE_CLASSES == 0 ||
                   sizeof(struct slot) <= SHMI_TCACHE_SLOT_SIZE,
               "a cache fits its slot");
_Static_assert(SHMI_TCACHE_CLASSES <= 64 && CHUNKS <= 64,
               "class and position fit 6 bits of a tag");
_Static_assert(SHMI_TCACHE_MAX_SLOTS <= (1u << 9), "slot fits a tag");

static struct slot *slot_at(const struct shmi_geometry *g, uint64_t i)
{
    return (struct slot *)(g->tcache + i * SHMI_TCACHE_SLOT_SIZE);
}

static uint8_t *chunk_bytes(const struct shmi_geometry *g, uint64_t x)
{
    return g->base + g->data_offset + x;
}

static uint64_t chunk_size(unsigned class_index)
{
    return UINT64_C(1) << (SHM_MIN_ALLOC_POW2 + class_index);
}

static uint64_t tag_base(uint64_t slot)
{
    return SHMI_TCACHE_TAG_MAGIC << 32 | slot << 12;
}

/* ---- flushing ----------------------------------------------------------- */

/* Frees the chunks of entries lo..hi-1 of `bin` (class c) that are not
 * NONE, one CAS per word they share; each entry becomes NONE just before
 * its word's CAS (invariant C). The caller has recorded the flush and
 * lowered the count to lo. */
static uint64_t free_range(struct shmi_geometry *g, struct shmi_tcache_bin *bin,
                           unsigned c, uint64_t lo, uint64_t hi)
{
    uint64_t xs[CHUNKS], lengths[CHUNKS];
    unsigned pos[CHUNKS];
    unsigned n = 0;
    for (uint64_t i = lo; i < hi; i++) {
        /* relaxed: this thread holds the record (see above). */
        uint64_t x = shmi_atomic_load_relaxed(&bin->entry[i]);
        if (x == NONE)
            continue;
        x &= ~(chunk_size(c) - 1); /* the length code goes */
        if (x >= g->capacity) {
            shmi_report("shm_alloc: thread cache entry %" PRIu64
                        " is not a chunk of %" PRIu64 " bytes; left alone",
                        x, chunk_size(c));
            shmi_atomic_store_relaxed(&bin->entry[i], NONE);
            continue;
        }
        uint64_t length = shmi_tcache_code_length(
            c, shmi_atomic_load_relaxed(&bin->entry[i]) & (chunk_size(c) - 1));
        /* Insertion sort by offset: the chunks of one word lie together. */
        unsigned k = n++;
        for (; k > 0 && xs[k - 1] > x; k--) {
            xs[k] = xs[k - 1];
            lengths[k] = lengths[k - 1];
            pos[k] = pos[k - 1];
        }
        xs[k] = x;
        lengths[k] = length;
        pos[k] = (unsigned)i;
    }
    unsigned span = g->tier[g->layout.class_tier[c]].span_log2;
    uint64_t bytes = 0;
    for (unsigned i = 0; i < n;) {
        unsigned j = i + 1;
        while (j < n && xs[j] >> span == xs[i] >> span)
            j++;
        for (unsigned k = i; k < j; k++) {
            /* release: after the flush record and the count (C). */
            shmi_atomic_store_release(&bin->entry[pos[k]], NONE);
            shmi_memcheck_release(chunk_bytes(g, xs[k]), lengths[k]);
        }
        unsigned freed = shmi_tree_free_batch(g, c, xs + i, j - i);
        if (i == 0)
            SHMI_TCACHE_TEST_POINT(SHMI_TCACHE_AT_FLUSH_WORD);
        if (freed != j - i)
            shmi_report("shm_alloc: %u cached chunks of %" PRIu64
                        " bytes were not allocated; left alone",
                        j - i - freed, chunk_size(c));
        uint64_t word_bytes = 0;
        for (unsigned k = i; k < j; k++)
            word_bytes += lengths[k];
        /* When some were not freed (a damaged cache), which ones is not
         * known: their share, by count. */
        bytes += freed == j - i ? word_bytes : word_bytes / (j - i) * freed;
        i = j;
    }
    return bytes;
}

/* Flushes entries lo.. of class c of slot s to the tree (C); returns the
 * bytes freed. */
static uint64_t flush_bin(struct shmi_geometry *g, struct slot *s, unsigned c,
                          uint64_t lo)
{
    struct shmi_tcache_bin *bin = &s->bin[c];
    /* relaxed: this thread holds the record. */
    uint64_t n = shmi_atomic_load_relaxed(&bin->count);
    if (n > CHUNKS) {
        shmi_report("shm_alloc: thread cache count %" PRIu64
                    " out of range; its chunks are left allocated",
                    n);
        shmi_atomic_store_release(&bin->count, 0);
        return 0;
    }
    if (n <= lo)
        return 0;
    /* release: the record, then the count, then the frees (C). */
    shmi_atomic_store_release(&s->flush,
                              FLUSH | (uint64_t)c << 16 | lo << 8 | n);
    shmi_atomic_store_release(&bin->count, lo);
    SHMI_TCACHE_TEST_POINT(SHMI_TCACHE_AT_FLUSH_COUNTED);
    uint64_t bytes = free_range(g, bin, c, lo, n);
    shmi_atomic_store_release(&s->flush, 0);
    return bytes;
}

/* Finishes the flush a dead owner (or a recoverer) left in s, if its count
 * store was done; otherwise the chunks are still counted in their bin. */
static uint64_t finish_flush(struct shmi_geometry *g, struct slot *s)
{
    /* relaxed: the caller holds the record, taken with an acquire CAS. */
    uint64_t f = shmi_atomic_load_relaxed(&s->flush);
    uint64_t bytes = 0;
    if (f == 0)
        return 0;
    unsigned c = (unsigned)(f >> 16 & 0xff);
    uint64_t lo = f >> 8 & 0xff, hi = f & 0xff;
    if ((f & ~(FLUSH | 0xffffffu)) == 0 && c < SHMI_TCACHE_CLASSES && lo < hi &&
        hi <= CHUNKS && shmi_atomic_load_relaxed(&s->bin[c].count) <= lo)
        bytes = free_range(g, &s->bin[c], c, lo, hi);
    shmi_atomic_store_release(&s->flush, 0);
    return bytes;
}

/* Empties slot s, whose record the caller holds; returns the bytes. */
static uint64_t drain(struct shmi_geometry *g, struct slot *s)
{
    uint64_t bytes = finish_flush(g, s);
    for (unsigned c = 0; c < SHMI_TCACHE_CLASSES; c++)
        bytes += flush_bin(g, s, c, 0);
    return bytes;
}

/* pending.c's release hook: record i is about to be given back. */
static uint64_t before_record_release(struct shmi_geometry *g, size_t record)
{
    if (record >= g->tcache_slots)
        return 0;
    struct slot *s = slot_at(g, record);
    uint64_t bytes = drain(g, s);
    struct shmi_tcache_thread *self = &shmi_tcache_self;
    if (self->serial == g->serial && self->bins == s->bin)
        self->serial = 0;
    return bytes;
}

/* ---- binding a thread to its cache -------------------------------------- */

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void after_fork_in_child(void)
{
    shmi_tcache_self.serial = 0;
}

static void init_once(void)
{
    shmi_pending_set_release_hook(before_record_release);
    pthread_atfork(NULL, NULL, after_fork_in_child);
}

void shmi_tcache_prepare(void)
{
    pthread_once(&once, init_once);
}

/* Binds the calling thread to its cache in g; false when it has none. */
static bool bind(struct shmi_geometry *g)
{
    if (SHMI_TCACHE_CLASSES == 0 || g->record_owner == 0 ||
        g->tcache_slots == 0)
        return false;
    pthread_once(&once, init_once);
    long record = shmi_pending_thread_record(g);
    if (record < 0 || (uint64_t)record >= g->tcache_slots)
        return false;
    struct shmi_tcache_thread *self = &shmi_tcache_self;
    self->bins = slot_at(g, (uint64_t)record)->bin;
    self->tag = tag_base((uint64_t)record);
    self->serial = g->serial;
    return true;
}

/* ---- the slow halves of pop and push ------------------------------------ */

static struct slot *own_slot(const struct shmi_tcache_thread *self)
{
    return (struct slot *)((uint8_t *)self->bins - offsetof(struct slot, bin));
}

/* Whether entry i of bin (class c) is well formed and confirmed by its
 * chunk's tag; its offset and code then. */
static bool entry_at(struct shmi_geometry *g,
                     const struct shmi_tcache_thread *self,
                     struct shmi_tcache_bin *bin, unsigned c, uint64_t i,
                     uint64_t *x, uint64_t *code)
{
    /* relaxed: only this thread writes its bins. */
    uint64_t e = shmi_atomic_load_relaxed(&bin->entry[i]);
    *x = e & ~(chunk_size(c) - 1);
    *code = e & (chunk_size(c) - 1);
    return *x < g->capacity &&
           shmi_atomic_load_relaxed(shmi_tcache_chunk_word(g, *x)) ==
               self->tag + ((uint64_t)c << 6) + i +
                   (*code << SHMI_TCACHE_TAG_CODE_SHIFT);
}

/* Takes the entry nearest the top (the most recently freed) of at least
 * code `want` out of the bin (n entries): the top entry moves into its
 * place. Only the codes are compared while scanning; the entry taken and
 * the top are then confirmed by their tags. The count goes first, then
 * the entry: a kill in between leaves the top chunk unlisted (leaked,
 * never listed twice, invariant C). */
static uint64_t take_fitting(struct shmi_geometry *g,
                             const struct shmi_tcache_thread *self,
                             struct shmi_tcache_bin *bin, unsigned c,
                             uint64_t n, uint64_t want)
{
    uint64_t best = n, x, code;
    for (uint64_t i = n - 1; i-- > 0;)
        /* relaxed: only this thread writes its bins. */
        if ((shmi_atomic_load_relaxed(&bin->entry[i]) & (chunk_size(c) - 1)) >=
            want) {
            best = i;
            break;
        }
    uint64_t top_x, top_code;
    if (best == n || !entry_at(g, self, bin, c, best, &x, &code) ||
        !entry_at(g, self, bin, c, n - 1, &top_x, &top_code))
        return SHMI_NO_CHUNK;
    /* release: as try_pop's; then the top entry takes the place. */
    shmi_atomic_store_release(&bin->count, n - 1);
    shmi_atomic_store_release(&bin->entry[best], top_x | top_code);
    shmi_atomic_store_relaxed(shmi_tcache_chunk_word(g, top_x),
                              self->tag + ((uint64_t)c << 6) + best +
                                  (top_code << SHMI_TCACHE_TAG_CODE_SHIFT));
    shmi_atomic_store_relaxed(shmi_tcache_chunk_word(g, x), 0);
    shmi_memcheck_show(chunk_bytes(g, x) + SHMI_MEMCHECK_KEPT,
                       shmi_tcache_code_length(c, code) - SHMI_MEMCHECK_KEPT);
    return x;
}

uint64_t shmi_tcache_pop_slow(struct shmi_geometry *g, unsigned class_index,
                              uint64_t want)
{
    struct shmi_tcache_thread *self = &shmi_tcache_self;
    if (self->serial != g->serial && !bind(g))
        return SHMI_NO_CHUNK;
    uint64_t n;
    for (;;) {
        uint64_t x = shmi_tcache_try_pop(g, class_index, want);
        if (x != SHMI_NO_CHUNK)
            return x;
        struct shmi_tcache_bin *bin = &self->bins[class_index];
        /* relaxed: only this thread writes its bins. */
        n = shmi_atomic_load_relaxed(&bin->count);
        if (n == 0)
            break;
        uint64_t top, code;
        if (n <= CHUNKS &&
            entry_at(g, self, bin, class_index, n - 1, &top, &code)) {
            /* A sound top entry, shorter than asked for. */
            x = take_fitting(g, self, bin, class_index, n, want);
            if (x != SHMI_NO_CHUNK)
                return x;
            break;
        }
        if (n > CHUNKS) {
            shmi_report("shm_alloc: thread cache count %" PRIu64
                        " out of range; its chunks are left allocated",
                        n);
        } else {
            /* The top entry failed try_pop's checks: out of the cache,
             * and never handed out. */
            shmi_report("shm_alloc: a cached chunk of %" PRIu64
                        " bytes was written after its free (or its entry "
                        "was damaged); it is not handed out and stays "
                        "allocated",
                        chunk_size(class_index));
            n--;
            uint64_t e = shmi_atomic_load_relaxed(&bin->entry[n]);
            uint64_t dropped = e & ~(chunk_size(class_index) - 1);
            if (dropped < g->capacity) /* out of the cache: unmarked */
                shmi_memcheck_release(
                    chunk_bytes(g, dropped),
                    shmi_tcache_code_length(class_index,
                                            e & (chunk_size(class_index) - 1)));
        }
        shmi_atomic_store_release(&bin->count, n > CHUNKS ? 0 : n);
    }
    /* Refill with chunks of exactly the length asked for, after the
     * entries the bin keeps. */
    struct shmi_tcache_bin *bin = &self->bins[class_index];
    uint64_t more = CHUNKS - n < CHUNKS / 2 ? CHUNKS - n : CHUNKS / 2;
    uint64_t length = shmi_tcache_code_length(class_index, want);
    uint64_t x = shmi_tree_alloc_batch(g, class_index, length, (unsigned)more,
                                       bin->entry, &bin->count, n, want);
    if (x == SHMI_NO_CHUNK)
        return x;
    uint64_t now = shmi_atomic_load_relaxed(&bin->count);
    SHMI_TCACHE_TEST_POINT(SHMI_TCACHE_AT_REFILL_COUNTED);
    for (uint64_t i = n; i < now && i < CHUNKS; i++) {
        uint64_t cached = shmi_atomic_load_relaxed(&bin->entry[i]) &
                          ~(chunk_size(class_index) - 1);
        shmi_atomic_store_relaxed(shmi_tcache_chunk_word(g, cached),
                                  self->tag + (class_index << 6) + i +
                                      (want << SHMI_TCACHE_TAG_CODE_SHIFT));
        shmi_memcheck_hide(chunk_bytes(g, cached) + SHMI_MEMCHECK_KEPT,
                           shmi_tcache_code_length(class_index, want) -
                               SHMI_MEMCHECK_KEPT);
    }
    return x;
}

bool shmi_tcache_push_slow(struct shmi_geometry *g, unsigned class_index,
                           uint64_t x, uint64_t code)
{
    struct shmi_tcache_thread *self = &shmi_tcache_self;
    if (self->serial != g->serial && !bind(g))
        return false;
    struct slot *s = own_slot(self);
    /* relaxed: only this thread writes its bins. */
    if (shmi_atomic_load_relaxed(&s->bin[class_index].count) >= CHUNKS)
        /* A full bin keeps its older half: the chunks most recently freed
         * go back first, the rest stay for the next mallocs. */
        flush_bin(g, s, class_index, CHUNKS / 2);
    return shmi_tcache_try_push(g, class_index, x, code);
}

void shmi_tcache_flush_own(struct shmi_geometry *g)
{
    struct shmi_tcache_thread *self = &shmi_tcache_self;
    if (self->serial != g->serial)
        return;
    drain(g, own_slot(self));
}

void shmi_tcache_drain_all(struct shmi_geometry *g)
{
    for (uint64_t i = 0; i < g->tcache_slots; i++)
        drain(g, slot_at(g, i));
}

/* ---- double frees ---------------------------------------------------------
 */

bool shmi_tcache_holds(struct shmi_geometry *g, uint64_t x, uint64_t first_word)
{
    uint64_t slot = first_word >> 12 & 0x1ff;
    unsigned c = (unsigned)(first_word >> 6 & 63);
    uint64_t pos = first_word & 63;
    uint64_t code = first_word >> SHMI_TCACHE_TAG_CODE_SHIFT & 31;
    if (slot >= g->tcache_slots || c >= SHMI_TCACHE_CLASSES || pos >= CHUNKS ||
        (first_word & 0xfc000000u) != 0)
        return false;
    struct shmi_tcache_bin *bin = &slot_at(g, slot)->bin[c];
    /* acquire: pairs with the count's release in push, so the entry read
     * is at least as new as the count. */
    return pos < shmi_atomic_load_acquire(&bin->count) &&
           shmi_atomic_load_relaxed(&bin->entry[pos]) == (x | code);
}

/* ---- queries and reset ----------------------------------------------------
 */

uint64_t shmi_tcache_bytes(const struct shmi_geometry *g)
{
    uint64_t bytes = 0;
    for (uint64_t i = 0; i < g->tcache_slots; i++) {
        struct slot *s = slot_at(g, i);
        for (unsigned c = 0; c < SHMI_TCACHE_CLASSES; c++) {
            /* relaxed: a statistic. */
            uint64_t n = shmi_atomic_load_relaxed(&s->bin[c].count);
            for (uint64_t k = 0; k < n && n <= CHUNKS; k++)
                bytes += shmi_tcache_code_length(
                    c, shmi_atomic_load_relaxed(&s->bin[c].entry[k]) &
                           (chunk_size(c) - 1) & 31);
        }
    }
    return bytes;
}

void shmi_tcache_block_bytes(const struct shmi_geometry *g, size_t first_block,
                             size_t count, uint32_t *bytes)
{
    for (uint64_t i = 0; i < g->tcache_slots; i++) {
        struct slot *s = slot_at(g, i);
        for (unsigned c = 0; c < SHMI_TCACHE_CLASSES; c++) {
            /* relaxed: a statistic. */
            uint64_t n = shmi_atomic_load_relaxed(&s->bin[c].count);
            for (uint64_t k = 0; k < n && n <= CHUNKS; k++) {
                uint64_t e = shmi_atomic_load_relaxed(&s->bin[c].entry[k]);
                uint64_t x = e & ~(chunk_size(c) - 1);
                uint64_t block = x >> SHM_MAX_ALLOC_POW2;
                if (x < g->capacity && block >= first_block &&
                    block - first_block < count)
                    bytes[block - first_block] +=
                        (uint32_t)shmi_tcache_code_length(
                            c, e & (chunk_size(c) - 1) & 31);
            }
        }
    }
}

static int compare_offsets(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

uint64_t shmi_tcache_check(struct shmi_geometry *g)
{
    uint64_t bad = 0, listed = 0;
    uint64_t *all = NULL;
    if (g->tcache_slots > 0)
        all = malloc(g->tcache_slots * SHMI_TCACHE_CLASSES * CHUNKS *
                     sizeof *all);
    for (uint64_t i = 0; i < g->tcache_slots; i++) {
        struct slot *s = slot_at(g, i);
        bool owned = shmi_pending_owner(g, (size_t)i) != 0;
        /* relaxed: a snapshot, meaningful at rest. A flush in progress
         * and entries whose tags are not written yet are states a killed
         * owner leaves (the recovery finishes them): not damage. */
        for (unsigned c = 0; c < SHMI_TCACHE_CLASSES; c++) {
            uint64_t n = shmi_atomic_load_relaxed(&s->bin[c].count);
            if (n > CHUNKS || (n > 0 && !owned)) {
                bad++;
                continue;
            }
            for (uint64_t k = 0; k < n; k++) {
                uint64_t e = shmi_atomic_load_relaxed(&s->bin[c].entry[k]);
                uint64_t x = e & ~(chunk_size(c) - 1);
                uint64_t usable = x < g->capacity ? shmi_tree_usable(g, x) : 0;
                if (usable == 0 ||
                    (e & (chunk_size(c) - 1)) != shmi_tcache_code(c, usable) ||
                    usable !=
                        shmi_tcache_code_length(c, e & (chunk_size(c) - 1))) {
                    bad++;
                    continue;
                }
                if (all)
                    all[listed++] = x;
            }
        }
    }
    if (all) {
        qsort(all, (size_t)listed, sizeof *all, compare_offsets);
        for (uint64_t k = 1; k < listed; k++)
            bad += all[k] == all[k - 1];
        free(all);
    }
    return bad;
}

void shmi_tcache_clear_all(struct shmi_geometry *g)
{
    for (uint64_t i = 0; i < g->tcache_slots; i++) {
        struct slot *s = slot_at(g, i);
        /* relaxed: the caller is alone on the file. */
        shmi_atomic_store_relaxed(&s->flush, 0);
        for (unsigned c = 0; c < SHMI_TCACHE_CLASSES; c++)
            shmi_atomic_store_relaxed(&s->bin[c].count, 0);
    }
    shmi_tcache_self.serial = 0;
    /* The trees are new: nothing of this process's caches is marked. */
    shmi_memcheck_release(g->base + g->data_offset, g->capacity);
}
