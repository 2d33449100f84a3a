/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The collector: frees every allocated chunk that the program's trace
 * function does not reach from its roots. A chunk that a process
 * allocated and was killed before linking anywhere looks exactly like a
 * chunk in use; only the program knows which chunks its structures hold,
 * so it says so by marking them, and everything else goes.
 *
 *   1. take the file alone (shmi_arena_lock_alone, arena_open.c: the lock
 *      a reset takes): EBUSY while any other attachment exists, and every
 *      open fails with EBUSY until step 7;
 *   2. recover the dead and the exited (arena_recover.c): their pending
 *      records are resolved, so the nodes the allocator held for them are
 *      free again before anything is counted, and their entries cleared;
 *   3. call the trace once; it marks chunk starts in a private bitmap,
 *      one bit per 2^MIN bytes of capacity (bit x >> MIN for the chunk at
 *      data offset x), after checking that a live allocation starts there;
 *   4. the trace failed: stop, nothing freed, nothing else changed;
 *   5. give back the chunks held in thread caches (give_back_cached_chunks):
 *      in the bitmaps they are allocated, but no program holds them (a
 *      chunk the trace marked there is freed all the same: it is free);
 *   6. empty every thread record but this attachment's (as a reset does:
 *      after 2 they belong to nobody), then one walk over the bitmaps
 *      (shmi_tree_foreach_chunk, tree_inspect.c) frees every allocated
 *      chunk whose start bit is clear;
 *   7. drop the locks of 1.
 *
 * Invariants:
 * C1. From 1 to 7 no other process or handle reads or writes the file:
 *     every other attachment was refused at 1 (its lock conflicts with
 *     ours), and no new one is let in (arena_open.c). Nobody allocates or
 *     frees behind the trace's back, so the set of allocated chunks the
 *     sweep sees is the one the trace saw, plus what the trace allocated
 *     itself and minus what it freed.
 * C2. A mark names the start of a chunk that was live when it was set:
 *     a mark elsewhere is refused (EINVAL) and sets nothing. A mark left
 *     on a chunk the trace freed afterwards names no chunk at the sweep;
 *     a chunk that the trace allocates there afterwards is kept (a start
 *     bit says only "keep what starts here").
 * C3. The sweep frees only allocated chunks, through the tree's own free
 *     (tree.c), and only unmarked ones: a chunk any trace marked is never
 *     freed, and its bytes are not touched (the bitmaps alone change).
 * C4. Nothing the allocator holds for itself is seen as a chunk: pending
 *     operations were resolved in 2 (and the records emptied in 6 hold
 *     nothing a later recovery could act on), cached chunks given back in
 *     3. Nodes past the capacity are not chunks (tree_inspect.c).
 *
 * Cost: the mark bitmap, capacity / 2^MIN / 8 bytes of the caller's
 * memory (malloc; 256 KiB for 64 MiB of 32-byte chunks), taken before
 * the lock so that ENOMEM changes nothing; one recovery; the trace (one
 * tree lookup per mark); one pass over the bitmap words, the same walk
 * as the census of shm_arena_stats, and one free per chunk freed.
 *
 * Not lock-free, by design: it excludes everyone instead of racing them.
 * It never waits either: step 1 fails at once with EBUSY.
 *
 * Limits: an arena holding an shm_cache cannot be collected (its chunks
 * are reachable only through the cache's own structures, which no trace
 * function can follow through the public API); a chunk reachable only
 * through an offset into its middle must be marked at its start, which
 * the program has to know.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "arena.h"
#include "pending.h"
#include "report.h"
#include "thread_cache.h"
#include "tree.h"
#include "tree_inspect.h"

struct shm_collector {
    shm_arena *arena;
    uint64_t *marks; /* one bit per 2^MIN bytes of capacity */
};

struct sweep {
    shm_arena *arena;
    const uint64_t *marks;
    struct shm_collection *report;
};

/* Thread caches keep chunks that are allocated in the bitmaps but belong
 * to no program. The recovery of 2 drained the caches of the dead; what
 * is left are this process's (its threads do not use the arena while the
 * collection runs). Left in place, the sweep would free them while a
 * cache still lists them, and the cache would hand them out a second
 * time: they go back to the bitmaps first. */
static void give_back_cached_chunks(shm_arena *arena)
{
    shmi_tcache_drain_all(&arena->geo);
}

/* Data offset and size of the live allocation starting at off; false with
 * EINVAL in errno, reported as `call`'s, when there is none. */
static bool live_chunk(shm_collector *col, shm_offt off, const char *call,
                       uint64_t *x, uint64_t *size)
{
    *x = col ? shmi_arena_data_position(col->arena, off) : SHMI_NO_CHUNK;
    *size = *x == SHMI_NO_CHUNK ? 0 : shmi_tree_usable(&col->arena->geo, *x);
    /* A chunk in a thread cache is free. */
    if (*size != 0 && !shmi_tcache_is_cached_chunk(&col->arena->geo, *x, *size))
        return true;
    if (col)
        shmi_report("%s: %" PRIu64 " is not the start of a live allocation",
                    call, off);
    errno = EINVAL;
    return false;
}

int shm_collect_mark(shm_collector *col, shm_offt off)
{
    uint64_t x, size;
    if (!live_chunk(col, off, "shm_collect_mark", &x, &size))
        return EINVAL;
    uint64_t bit = x >> SHM_MIN_ALLOC_POW2;
    uint64_t mask = UINT64_C(1) << (bit % 64);
    if (col->marks[bit / 64] & mask)
        return EALREADY;
    col->marks[bit / 64] |= mask;
    return 0;
}

int shm_collect_extent(shm_collector *col, shm_offt off, size_t *size)
{
    uint64_t x, bytes;
    if (!size) {
        errno = EINVAL;
        return EINVAL;
    }
    if (!live_chunk(col, off, "shm_collect_extent", &x, &bytes))
        return EINVAL;
    *size = (size_t)bytes;
    return 0;
}

shm_arena *shm_collect_arena(shm_collector *col)
{
    return col ? col->arena : NULL;
}

/* Step 6 for one chunk of the walk. */
static void sweep_chunk(uint64_t x, uint64_t size, void *ctx)
{
    struct sweep *s = ctx;
    uint64_t bit = x >> SHM_MIN_ALLOC_POW2;
    if (s->marks[bit / 64] >> (bit % 64) & 1) {
        s->report->kept_chunks++;
        s->report->kept_bytes += (size_t)size;
    } else if (shmi_tree_free(&s->arena->geo, x) == 0) {
        s->report->freed_chunks++;
        s->report->freed_bytes += (size_t)size;
    }
}

int shm_arena_collect(shm_arena *arena, shm_trace_fn trace, void *context,
                      struct shm_collection *report)
{
    struct shm_collection r = {0, 0, 0, 0, {0, 0, 0}};
    if (report)
        *report = r;
    int err = !arena || !trace ? EINVAL : arena->read_only ? EROFS : 0;
    uint64_t *marks = NULL;
    if (!err) {
        uint64_t bits = arena->geo.capacity >> SHM_MIN_ALLOC_POW2;
        marks = calloc((size_t)((bits + 63) / 64), sizeof *marks);
        err = marks ? 0 : ENOMEM;
    }
    struct shmi_alone alone;
    if (!err)
        err = shmi_arena_lock_alone(arena, &alone); /* 1 */
    if (err) {
        free(marks);
        errno = err;
        return err;
    }
    shmi_arena_recover_all(arena, &r.recovery); /* 2 */
    shm_collector col = {arena, marks};
    int traced = trace(&col, context); /* 3 */
    if (traced == 0) {
        give_back_cached_chunks(arena); /* 5 */
        shmi_pending_clear_others(&arena->geo, arena->geo.record_owner);
        struct sweep s = {arena, marks, &r};
        shmi_tree_foreach_chunk(&arena->geo, sweep_chunk, &s); /* 6 */
    }
    shmi_arena_unlock_alone(arena, &alone); /* 7 */
    free(marks);
    if (report)
        *report = r;
    return traced; /* 4: the trace's value as it is */
}
