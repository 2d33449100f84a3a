/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The allocation API of an arena: malloc, calloc, free, usable size and
 * realloc, as offsets and as pointers. Each public function is a thin
 * wrapper over a hidden shmi_arena_* one, which global.c's functions call
 * too, so that no call inside the library goes through the PLT.
 *
 * What is checked here, before the tree (tree.c) sees a request: the
 * handle (NULL: EINVAL; read-only: EROFS), the size (over 2^MAX: ENOMEM,
 * reported), and that an offset handed back lies in the data region on a
 * 2^MIN boundary (otherwise EINVAL, reported). The tree checks the rest:
 * whether a live allocation starts there.
 */
#include "arena.h"

#include <errno.h>
#include <string.h>

#include "pending.h"
#include "report.h"
#include "thread_cache.h"
#include "tree.h"

/* Index of the size class serving `size` (which is <= 2^MAX). Without a
 * branch, which a program's mixed sizes would mispredict: the bit length
 * of (size - 1) | (2^MIN - 1) is log2 of max(size, 2^MIN) rounded up
 * (size 0 counts as 1). */
static inline unsigned class_of(size_t size)
{
    uint64_t below = ((uint64_t)size - (size != 0)) |
                     ((UINT64_C(1) << SHM_MIN_ALLOC_POW2) - 1);
    return 64u - (unsigned)__builtin_clzll(below) - SHM_MIN_ALLOC_POW2;
}

/* A chunk for `size` bytes from the tree: trimmed to the request
 * (SHM_TRIM), a whole node of the class otherwise. */
static inline uint64_t tree_alloc(struct shmi_geometry *g, size_t size)
{
    unsigned c = class_of(size);
    return shmi_tree_alloc_trimmed(g, c, shmi_tree_trimmed_length(c, size));
}

/* Arena usable for writing, or errno set. */
static inline bool writable(const shm_arena *arena)
{
    if (__builtin_expect(arena && !arena->read_only, 1))
        return true;
    errno = arena ? EROFS : EINVAL;
    return false;
}

/* Whether size exceeds the largest chunk; if so reports it and sets
 * ENOMEM. */
static bool too_large(const char *call, size_t size)
{
    if (__builtin_expect(size <= (size_t)1 << SHM_MAX_ALLOC_POW2, 1))
        return false;
    shmi_report("%s: %zu bytes is more than the largest chunk (%zu)", call,
                size, (size_t)1 << SHM_MAX_ALLOC_POW2);
    errno = ENOMEM;
    return true;
}

_Static_assert(SHMI_NO_CHUNK == UINT64_MAX,
               "shmi_arena_data_position's refusal is the tree's no-chunk");

/* Reports an offset that is not the start of a live allocation. */
static void not_live(const char *call, shm_offt off)
{
    shmi_report("%s: %" PRIu64 " is not the start of a live allocation", call,
                off);
    errno = EINVAL;
}

/* Data offset and size of the live allocation starting at off; reports
 * and sets EINVAL (returning false) when there is none (a chunk in a
 * thread cache is free, whatever the bitmaps say). */
static bool live_chunk(shm_arena *arena, shm_offt off, const char *call,
                       uint64_t *x, uint64_t *size)
{
    *x = shmi_arena_data_position(arena, off);
    *size = *x == SHMI_NO_CHUNK ? 0 : shmi_tree_usable(&arena->geo, *x);
    if (*size != 0 && shmi_tcache_is_cached_chunk(&arena->geo, *x, *size))
        *size = 0;
    if (*size == 0) {
        not_live(call, off);
        return false;
    }
    return true;
}

/* No chunk was free: give back the caller's thread cache, then recover
 * what dead processes left (arena_recover.c, at most once per attachment
 * or interval over the file), and claim again after each step that may
 * have freed something. */
static __attribute__((noinline)) uint64_t alloc_after_recovery(shm_arena *arena,
                                                               size_t size)
{
    if (SHMI_TCACHE_CLASSES > 0) {
        shmi_tcache_flush_own(&arena->geo);
        uint64_t x = tree_alloc(&arena->geo, size);
        if (x != SHMI_NO_CHUNK)
            return x;
    }
    struct shm_recovery report = {0, 0, 0};
    shmi_arena_recover_after_failure(arena, &report); /* bounded */
    if (report.entries == 0 && report.records == 0)
        return SHMI_NO_CHUNK;
    return tree_alloc(&arena->geo, size);
}

/* A malloc that its thread cache did not serve: checks and reports, the
 * cache's slow path, then the tree, then the last resorts. */
static __attribute__((noinline)) shm_offt
alloc_slow(shm_arena *arena, size_t size, const char *call)
{
    if (!writable(arena) || too_large(call, size))
        return SHM_NULL;
    unsigned c = class_of(size);
    uint64_t x = SHMI_NO_CHUNK;
    if (c < SHMI_TCACHE_CLASSES)
        x = shmi_tcache_pop_slow(&arena->geo, c, shmi_tcache_code(c, size));
    if (x == SHMI_NO_CHUNK)
        x = tree_alloc(&arena->geo, size);
    if (__builtin_expect(x == SHMI_NO_CHUNK, 0) &&
        (x = alloc_after_recovery(arena, size)) == SHMI_NO_CHUNK) {
        errno = ENOMEM;
        return SHM_NULL;
    }
    return arena->geo.data_offset + x;
}

/* The fast path only tail-calls: a chunk from the thread cache, or
 * alloc_slow for everything else (refusals included). */
static inline __attribute__((always_inline)) shm_offt
alloc_named(shm_arena *arena, size_t size, const char *call)
{
    if (SHMI_TCACHE_CLASSES > 0 && __builtin_expect(arena != NULL, 1) &&
        !arena->read_only &&
        size <= ((size_t)1 << (SHM_MIN_ALLOC_POW2 + SHMI_TCACHE_CLASSES - 1))) {
        unsigned c = class_of(size);
        uint64_t x =
            shmi_tcache_try_pop(&arena->geo, c, shmi_tcache_code(c, size));
        if (__builtin_expect(x != SHMI_NO_CHUNK, 1))
            return arena->geo.data_offset + x;
    }
    return alloc_slow(arena, size, call);
}

shm_offt shmi_arena_malloc(shm_arena *arena, size_t size)
{
    return alloc_named(arena, size, "shm_malloc");
}

shm_offt shmi_arena_malloc_as(shm_arena *arena, size_t size, const char *call)
{
    return alloc_named(arena, size, call);
}

shm_offt shmi_arena_calloc(shm_arena *arena, size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        if (writable(arena)) {
            shmi_report("shm_calloc: %zu * %zu overflows", count, size);
            errno = ENOMEM;
        }
        return SHM_NULL;
    }
    shm_offt off = shmi_arena_malloc_as(arena, total, "shm_calloc");
    if (off != SHM_NULL)
        memset(arena->geo.base + off, 0, total);
    return off;
}

/* Takes the bytes of a chunk about to be freed out of a counter of the
 * caller's (shmi_arena_free_counted): before the free, so that a process
 * killed in between leaves the counter below the bytes in use. */
static inline void uncount(shmi_atomic_word *counter, uint64_t bytes)
{
    /* relaxed: only the calling thread writes it. Unsigned: subtracting
     * by adding. */
    if (counter)
        shmi_atomic_store_relaxed(counter,
                                  shmi_atomic_load_relaxed(counter) - bytes);
}

/* Every free but the common one: the checks, a double free into a cache,
 * the cache's slow path, the tree. */
static __attribute__((noinline)) void free_slow(shm_arena *arena, shm_offt off,
                                                shmi_atomic_word *counter)
{
    if (off == SHM_NULL || !writable(arena))
        return;
    uint64_t x = shmi_arena_data_position(arena, off);
    struct shmi_tree_chunk chunk;
    if (x == SHMI_NO_CHUNK || !shmi_tree_find(&arena->geo, x, &chunk)) {
        not_live("shm_free", off);
        return;
    }
    unsigned c = shmi_tree_chunk_class(&arena->geo, &chunk);
    if (c < SHMI_TCACHE_CLASSES) {
        /* A chunk in a thread cache is free already: a double free. */
        if (shmi_tcache_is_cached(&arena->geo, x)) {
            not_live("shm_free", off);
            return;
        }
        uncount(counter, chunk.length);
        uint64_t code = shmi_tcache_code(c, chunk.length);
        if (shmi_tcache_try_push(&arena->geo, c, x, code) ||
            shmi_tcache_push_slow(&arena->geo, c, x, code))
            return;
    } else {
        uncount(counter, chunk.length);
    }
    if (shmi_tree_free_found(&arena->geo, x, &chunk) != 0)
        not_live("shm_free", off);
}

/* The common free, which only tail-calls: a chunk of the last tier whose
 * first word is no tag goes to a bin with room; everything else, and
 * every doubt, to free_slow. Inlined into both frees, the counter a
 * constant NULL in shmi_arena_free. */
static inline __attribute__((always_inline)) void
free_core(shm_arena *arena, shm_offt off, shmi_atomic_word *counter)
{
    if (SHMI_TCACHE_CLASSES == 0 || __builtin_expect(arena == NULL, 0) ||
        arena->read_only) {
        free_slow(arena, off, counter);
        return;
    }
    struct shmi_geometry *g = &arena->geo;
    uint64_t x = off - g->data_offset; /* wraps below the region */
    if (__builtin_expect(x >= g->capacity ||
                             (x & ((UINT64_C(1) << SHM_MIN_ALLOC_POW2) - 1)) !=
                                 0,
                         0)) {
        free_slow(arena, off, counter);
        return;
    }
    unsigned c;
    uint64_t code = 0;
    if (!SHM_TRIM) {
        c = shmi_tree_find_class_fast(g, x); /* NO_CLASS: not cached */
    } else {
        struct shmi_tree_chunk chunk;
        if (__builtin_expect(!shmi_tree_find_fast(g, x, &chunk), 0)) {
            free_slow(arena, off, counter);
            return;
        }
        c = shmi_tree_chunk_class(g, &chunk);
        code = shmi_tcache_code(c, chunk.length);
    }
    /* relaxed: a tag is confirmed in free_slow. */
    if (__builtin_expect(c >= SHMI_TCACHE_CLASSES, 0) ||
        shmi_atomic_load_relaxed(shmi_tcache_chunk_word(g, x)) >> 32 ==
            SHMI_TCACHE_TAG_MAGIC) {
        free_slow(arena, off, counter);
        return;
    }
    /* A live chunk of class c, not cached: its bytes leave the counter
     * before it goes (free_slow then does not count it again). */
    uncount(counter, shmi_tcache_code_length(c, code));
    if (!shmi_tcache_try_push(g, c, x, code))
        free_slow(arena, off, NULL);
}

void shmi_arena_free(shm_arena *arena, shm_offt off)
{
    free_core(arena, off, NULL);
}

void shmi_arena_free_counted(shm_arena *arena, shm_offt off,
                             shmi_atomic_word *counter)
{
    free_core(arena, off, counter);
}

size_t shmi_arena_usable_size(shm_arena *arena, shm_offt off)
{
    if (!arena) {
        errno = EINVAL;
        return 0;
    }
    uint64_t x, size;
    return live_chunk(arena, off, "shm_usable_size", &x, &size) ? (size_t)size
                                                                : 0;
}

shm_offt shmi_arena_realloc(shm_arena *arena, shm_offt off, size_t size)
{
    if (off == SHM_NULL)
        return shmi_arena_malloc_as(arena, size, "shm_realloc");
    if (!writable(arena))
        return SHM_NULL;
    uint64_t x, old_size;
    if (!live_chunk(arena, off, "shm_realloc", &x, &old_size) ||
        too_large("shm_realloc", size))
        return SHM_NULL;
    unsigned wanted = class_of(size);
    int err = shmi_tree_resize(&arena->geo, x, wanted,
                               shmi_tree_trimmed_length(wanted, size));
    if (err == EINVAL) {
        errno = EINVAL;
        return SHM_NULL;
    }
    /* Done in place, or a shrink that cannot be (into a deeper tier, of
     * a trimmed chunk): the chunk it has is large enough, so it stays. */
    if (err == 0 || size <= old_size)
        return off;
    shm_offt moved = shmi_arena_malloc_as(arena, size, "shm_realloc");
    if (moved == SHM_NULL)
        return SHM_NULL;
    /* Named until the old chunk is freed: a survivor of this thread frees
     * the new one, which the caller never received (pending.c). */
    shmi_pending_begin_realloc(&arena->geo, moved - arena->geo.data_offset);
    memcpy(arena->geo.base + moved, arena->geo.base + off, (size_t)old_size);
    SHMI_PENDING_TEST_POINT(SHMI_PENDING_AT_REALLOC_COPIED, 0);
    shmi_arena_free(arena, off);
    SHMI_PENDING_TEST_POINT(SHMI_PENDING_AT_REALLOC_FREED, 0);
    shmi_pending_end_realloc(&arena->geo);
    return moved;
}

int shm_arena_flush_thread_cache(shm_arena *arena)
{
    if (!writable(arena))
        return errno;
    shmi_tcache_flush_own(&arena->geo);
    return 0;
}

/* Offset of ptr in the arena's mapping; SHM_NULL (reported, EINVAL) when
 * it lies outside. */
static shm_offt offset_of_pointer(const shm_arena *arena, const void *ptr,
                                  const char *call)
{
    uintptr_t p = (uintptr_t)ptr, base = (uintptr_t)arena->geo.base;
    if (p < base || p - base >= arena->map_size) {
        shmi_report("%s: %p is outside the arena's mapping", call, ptr);
        errno = EINVAL;
        return SHM_NULL;
    }
    return (shm_offt)(p - base);
}

void shmi_arena_ptr_free(shm_arena *arena, void *ptr, const char *call)
{
    if (!ptr)
        return;
    if (!arena) {
        errno = EINVAL;
        return;
    }
    shm_offt off = offset_of_pointer(arena, ptr, call);
    if (off != SHM_NULL)
        shmi_arena_free(arena, off);
}

static void *pointer_of(const shm_arena *arena, shm_offt off)
{
    return off == SHM_NULL ? NULL : arena->geo.base + off;
}

/* ---- the public shm_arena_* forms ------------------------------------- */

/* The public names of the functions above: the same code (an alias, so
 * neither a call nor a jump is added), exported. */
#define SHM_EXPORT_AS(internal)                                                \
    __attribute__((alias(#internal), visibility("default")))
extern __typeof__(shmi_arena_malloc)
    shm_arena_malloc SHM_EXPORT_AS(shmi_arena_malloc);
extern __typeof__(shmi_arena_calloc)
    shm_arena_calloc SHM_EXPORT_AS(shmi_arena_calloc);
extern __typeof__(shmi_arena_free)
    shm_arena_free SHM_EXPORT_AS(shmi_arena_free);
extern __typeof__(shmi_arena_usable_size)
    shm_arena_usable_size SHM_EXPORT_AS(shmi_arena_usable_size);
extern __typeof__(shmi_arena_realloc)
    shm_arena_realloc SHM_EXPORT_AS(shmi_arena_realloc);

void *shm_arena_ptr_malloc(shm_arena *arena, size_t size)
{
    return pointer_of(arena, shmi_arena_malloc_as(arena, size, "ptr_malloc"));
}

void *shm_arena_ptr_calloc(shm_arena *arena, size_t count, size_t size)
{
    return pointer_of(arena, shmi_arena_calloc(arena, count, size));
}

void shm_arena_ptr_free(shm_arena *arena, void *ptr)
{
    shmi_arena_ptr_free(arena, ptr, "ptr_free");
}

void *shm_arena_ptr_realloc(shm_arena *arena, void *ptr, size_t size)
{
    if (!ptr)
        return shm_arena_ptr_malloc(arena, size);
    if (!arena) {
        errno = EINVAL;
        return NULL;
    }
    shm_offt off = offset_of_pointer(arena, ptr, "ptr_realloc");
    return off == SHM_NULL
               ? NULL
               : pointer_of(arena, shmi_arena_realloc(arena, off, size));
}
