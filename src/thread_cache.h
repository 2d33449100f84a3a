/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Thread caches kept in the file (thread_cache.c): each thread that has a
 * thread record (pending.c) with a cache keeps a few free chunks of every
 * small size class there, so that most mallocs and frees are plain loads
 * and stores. The fast paths are here, inline; the rest is in
 * thread_cache.c, whose top comment gives the protocol.
 */
#ifndef SHM_THREAD_CACHE_H
#define SHM_THREAD_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atomics.h"
#include "config.h"
#include "geometry.h"
#include "memcheck.h"
#include "tree.h"

/* The high half of the tag a cached chunk carries in its first 8 bytes;
 * the low half names where it is cached (thread_cache.c). */
#define SHMI_TCACHE_TAG_MAGIC UINT64_C(0x5ca7c4ed)

/* One size class of one cache, in the file. */
struct shmi_tcache_bin {
    shmi_atomic_word count; /* entries in use, 0..SHM_THREAD_CACHE_CHUNKS */
    shmi_atomic_word entry[SHM_THREAD_CACHE_CHUNKS]; /* offset | code */
};

/* Where a tag (thread_cache.c) holds an entry's length code. */
#define SHMI_TCACHE_TAG_CODE_SHIFT 21

/* The length code of `length` bytes in class class_index: length / G - 1,
 * G the class's granule (tree.h); < 32, and below the chunk's alignment,
 * so an entry holds it in its low bits (length 0 counts as 1). 0 without
 * SHM_TRIM. */
static inline uint64_t shmi_tcache_code(unsigned class_index, uint64_t length)
{
    if (!SHM_TRIM)
        return 0;
    unsigned granule_log2 = class_index < 5
                                ? SHM_MIN_ALLOC_POW2
                                : shmi_tree_granule_log2(class_index);
    return (length - (length != 0)) >> granule_log2;
}

/* The length an entry's code stands for. */
static inline uint64_t shmi_tcache_code_length(unsigned class_index,
                                               uint64_t code)
{
    if (!SHM_TRIM)
        return (uint64_t)1 << (SHM_MIN_ALLOC_POW2 + class_index);
    return (code + 1) << shmi_tree_granule_log2(class_index);
}

/* The calling thread's cache in the arena it used last. */
struct shmi_tcache_thread {
    uint64_t serial;              /* the arena's geometry serial; 0: none */
    struct shmi_tcache_bin *bins; /* SHMI_TCACHE_CLASSES of them */
    uint64_t tag;                 /* tag of entry 0 of class 0 */
};

extern _Thread_local struct shmi_tcache_thread shmi_tcache_self
    __attribute__((tls_model("initial-exec")));

static inline shmi_atomic_word *shmi_tcache_chunk_word(struct shmi_geometry *g,
                                                       uint64_t x)
{
    return (shmi_atomic_word *)(g->base + g->data_offset + x);
}

/*
 * A chunk of class class_index (< SHMI_TCACHE_CLASSES) of at least the
 * length of code `want` from the calling thread's cache when it has one
 * at hand; SHMI_NO_CHUNK otherwise (the thread is not bound to the arena
 * yet or has no cache, the bin is empty, its top entry is shorter, or it
 * fails its checks): then shmi_tcache_pop_slow.
 */
static inline __attribute__((always_inline)) uint64_t
shmi_tcache_try_pop(struct shmi_geometry *g, unsigned class_index,
                    uint64_t want)
{
    struct shmi_tcache_thread *self = &shmi_tcache_self;
    if (__builtin_expect(self->serial != g->serial, 0))
        return SHMI_NO_CHUNK;
    struct shmi_tcache_bin *bin = &self->bins[class_index];
    /* relaxed: only this thread writes its bins. */
    uint64_t n = shmi_atomic_load_relaxed(&bin->count);
    if (__builtin_expect(n - 1 >= SHM_THREAD_CACHE_CHUNKS, 0))
        return SHMI_NO_CHUNK; /* empty, or damaged */
    uint64_t e = shmi_atomic_load_relaxed(&bin->entry[n - 1]);
    uint64_t size = (uint64_t)1 << (SHM_MIN_ALLOC_POW2 + class_index);
    /* Without SHM_TRIM every code is 0: an entry is its chunk's offset. */
    uint64_t x = e, code = 0;
    if (SHM_TRIM)
        x = e & ~(size - 1), code = e & (size - 1);
    /* The entry and the chunk's tag are the file's: checked before use;
     * the tag names the length too, so a damaged code is refused. */
    if (__builtin_expect(x >= g->capacity || code < want ||
                             (!SHM_TRIM && (e & (size - 1)) != 0),
                         0))
        return SHMI_NO_CHUNK;
    shmi_atomic_word *first = shmi_tcache_chunk_word(g, x);
    if (__builtin_expect(shmi_atomic_load_relaxed(first) !=
                             self->tag + (class_index << 6) + (n - 1) +
                                 (code << SHMI_TCACHE_TAG_CODE_SHIFT),
                         0))
        return SHMI_NO_CHUNK;
    /* release: the entry leaves the cache before the chunk is handed out
     * (a survivor never frees a chunk given to the program). */
    shmi_atomic_store_release(&bin->count, n - 1);
    /* The tag goes, so that the chunk's next free does not look cached. */
    shmi_atomic_store_relaxed(first, 0);
    shmi_memcheck_show((uint8_t *)first + SHMI_MEMCHECK_KEPT,
                       shmi_tcache_code_length(class_index, code) -
                           SHMI_MEMCHECK_KEPT);
    return x;
}

/* The rest of a pop: binds the thread to its cache, refuses a bad top
 * entry, takes the shortest entry of at least the length of code `want`,
 * or refills the bin with chunks of exactly that length; SHMI_NO_CHUNK
 * when the thread has no cache or nothing is free. */
uint64_t shmi_tcache_pop_slow(struct shmi_geometry *g, unsigned class_index,
                              uint64_t want);

/*
 * Keeps the chunk at x (a live allocation of class class_index <
 * SHMI_TCACHE_CLASSES and length code `code`, not cached) in the calling
 * thread's cache when there is room at hand; false otherwise: then
 * shmi_tcache_push_slow.
 */
static inline __attribute__((always_inline)) bool
shmi_tcache_try_push(struct shmi_geometry *g, unsigned class_index, uint64_t x,
                     uint64_t code)
{
    struct shmi_tcache_thread *self = &shmi_tcache_self;
    if (__builtin_expect(self->serial != g->serial, 0))
        return false;
    struct shmi_tcache_bin *bin = &self->bins[class_index];
    /* relaxed: only this thread writes its bins. */
    uint64_t n = shmi_atomic_load_relaxed(&bin->count);
    if (__builtin_expect(n >= SHM_THREAD_CACHE_CHUNKS, 0))
        return false;
    /* relaxed, then release: the tag and the entry are written before
     * the count that makes them part of the cache. */
    shmi_atomic_store_relaxed(shmi_tcache_chunk_word(g, x),
                              self->tag + (class_index << 6) + n +
                                  (code << SHMI_TCACHE_TAG_CODE_SHIFT));
    shmi_atomic_store_relaxed(&bin->entry[n], x | code);
    shmi_atomic_store_release(&bin->count, n + 1);
    /* Untouchable by the program until a pop (memcheck.h). */
    shmi_memcheck_hide(
        (uint8_t *)shmi_tcache_chunk_word(g, x) + SHMI_MEMCHECK_KEPT,
        shmi_tcache_code_length(class_index, code) - SHMI_MEMCHECK_KEPT);
    return true;
}

/* The rest of a push: binds the thread, flushes half of a full bin, then
 * pushes; false when the thread has no cache (the caller frees x to the
 * tree). */
bool shmi_tcache_push_slow(struct shmi_geometry *g, unsigned class_index,
                           uint64_t x, uint64_t code);

/* Installs what the caches need in this process (pending.c's release
 * hook, the fork handler); every open calls it before it may recover. */
void shmi_tcache_prepare(void);

/* Whether the chunk at x, whose first word is `first_word`, sits in a
 * thread cache (of any thread): a free of it is a double free. */
bool shmi_tcache_holds(struct shmi_geometry *g, uint64_t x,
                       uint64_t first_word);

static inline __attribute__((always_inline)) bool
shmi_tcache_is_cached(struct shmi_geometry *g, uint64_t x)
{
    /* relaxed: a tag is confirmed against the cache it names. */
    uint64_t first = shmi_atomic_load_relaxed(shmi_tcache_chunk_word(g, x));
    return __builtin_expect(first >> 32 == SHMI_TCACHE_TAG_MAGIC, 0) &&
           shmi_tcache_holds(g, x, first);
}

/* Whether the live allocation of `size` bytes at x (as the tree sees it)
 * is in fact free, sitting in a thread cache. */
static inline bool shmi_tcache_is_cached_chunk(struct shmi_geometry *g,
                                               uint64_t x, uint64_t size)
{
    return SHMI_TCACHE_CLASSES > 0 &&
           size <= (UINT64_C(1) << SHMI_TCACHE_MAX_POW2) &&
           shmi_tcache_is_cached(g, x);
}

/* Gives every chunk of the calling thread's cache in g back to the tree
 * (before an ENOMEM, at exit). */
void shmi_tcache_flush_own(struct shmi_geometry *g);

/* Gives every chunk of every thread cache back to the tree: for a caller
 * alone on the file whose other threads do not use it meanwhile (the
 * collector). */
void shmi_tcache_drain_all(struct shmi_geometry *g);

/* Bytes in every thread cache of g. A query: writes nothing. */
uint64_t shmi_tcache_bytes(const struct shmi_geometry *g);

/* Adds to bytes[i] the bytes cached in block first_block + i, for i <
 * count. A query: writes nothing. */
void shmi_tcache_block_bytes(const struct shmi_geometry *g, size_t first_block,
                             size_t count, uint32_t *bytes);

/* Entries of the thread caches that are not a live allocation of their
 * class, or are cached twice, counts out of range, and caches holding
 * chunks without an owner: 0 in a consistent file at rest, dead owners'
 * caches included. A query: writes nothing. */
uint64_t shmi_tcache_check(struct shmi_geometry *g);

/* Empties every cache without freeing its chunks (a reset, alone on the
 * file, which reformats the trees). */
void shmi_tcache_clear_all(struct shmi_geometry *g);

/* SHM_TEST_HOOKS builds: called at the points of a refill and a flush
 * where a kill tests invariant C (a test stops the process there). */
#define SHMI_TCACHE_AT_FLUSH_COUNTED 1u /* flush: count lowered, none freed */
#define SHMI_TCACHE_AT_FLUSH_WORD 2u    /* flush: one word's chunks freed */
#define SHMI_TCACHE_AT_REFILL_COUNTED                                          \
    3u /* refill: counted, tags not written                                    \
        */
#if SHM_TEST_HOOKS
extern void (*shmi_tcache_test_hook)(unsigned point);
#define SHMI_TCACHE_TEST_POINT(point)                                          \
    do {                                                                       \
        if (shmi_tcache_test_hook)                                             \
            shmi_tcache_test_hook(point);                                      \
    } while (0)
#else
#define SHMI_TCACHE_TEST_POINT(point) ((void)0)
#endif

#endif /* SHM_THREAD_CACHE_H */
