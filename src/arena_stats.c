/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Statistics of an arena: free and used bytes, free chunks by size, block
 * usage, the consistency check and the list of attached processes. Every
 * function here is a query: it reads the bitmaps and the process table
 * while others go on (a snapshot) and writes nothing to the file, so a
 * monitoring loop may call it as often as it likes. Cleaning up after
 * dead processes happens when a process attaches (arena_open.c).
 */
#include "arena.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "process_table.h"
#include "thread_cache.h"
#include "tree_inspect.h"

/* Returns err, and sets errno to it when it is nonzero. */
static int fail(int err)
{
    if (err)
        errno = err;
    return err;
}

/* Largest free chunk in a census, 0 when there is none. */
static size_t largest_of(const uint64_t counts[SHMI_CLASSES])
{
    for (unsigned c = SHMI_CLASSES; c-- > 0;)
        if (counts[c])
            return (size_t)1 << (SHM_MIN_ALLOC_POW2 + c);
    return 0;
}

int shm_arena_stats(shm_arena *arena, struct shm_stats *stats)
{
    if (!arena || !stats)
        return fail(EINVAL);
    memset(stats, 0, sizeof *stats);
    struct shmi_geometry *g = &arena->geo;
    stats->capacity = (size_t)g->capacity;
    stats->mapping_size = (size_t)arena->map_size;
    stats->bytes_free = (size_t)shmi_tree_free_bytes(g);
    stats->bytes_cached = (size_t)shmi_tcache_bytes(g);
    size_t not_used = stats->bytes_free + stats->bytes_cached;
    stats->bytes_in_use =
        stats->capacity > not_used ? stats->capacity - not_used : 0;
    stats->min_chunk = (size_t)1 << SHM_MIN_ALLOC_POW2;
    stats->max_chunk = (size_t)1 << SHM_MAX_ALLOC_POW2;
    stats->classes = SHMI_CLASSES;
    uint64_t counts[SHMI_CLASSES];
    shmi_tree_census(g, counts);
    for (unsigned c = 0; c < SHMI_CLASSES; c++)
        stats->free_chunks[c] = (size_t)counts[c];
    stats->largest_free = largest_of(counts);
    stats->attached_processes = shmi_arena_live_processes(arena);
    stats->damage_refused = (size_t)shmi_tree_damage_count(g);
    return 0;
}

size_t shm_arena_maxsize(shm_arena *arena)
{
    if (!arena) {
        errno = EINVAL;
        return 0;
    }
    uint64_t counts[SHMI_CLASSES];
    shmi_tree_census(&arena->geo, counts);
    return largest_of(counts);
}

size_t shm_arena_available(shm_arena *arena)
{
    if (!arena) {
        errno = EINVAL;
        return 0;
    }
    /* Chunks in thread caches are free to the program too. */
    return (size_t)(shmi_tree_free_bytes(&arena->geo) +
                    shmi_tcache_bytes(&arena->geo));
}

int shm_arena_check(shm_arena *arena)
{
    if (!arena) {
        errno = EINVAL;
        return -1;
    }
    /* The words broken now, and the damage refused before (which a claim
     * may have mended since: the file was damaged all the same). */
    uint64_t bad =
        shmi_tree_check(&arena->geo) + shmi_tcache_check(&arena->geo);
    uint64_t refused = shmi_tree_damage_count(&arena->geo);
    bad = bad + refused < bad ? UINT64_MAX : bad + refused;
    return bad > INT_MAX ? INT_MAX : (int)bad;
}

int shm_arena_block_usage(shm_arena *arena, size_t first_block, size_t count,
                          uint32_t *used_bytes)
{
    if (!arena || (count && !used_bytes))
        return fail(EINVAL);
    const uint64_t block = UINT64_C(1) << SHM_MAX_ALLOC_POW2;
    uint64_t capacity = arena->geo.capacity;
    uint64_t blocks = (capacity + block - 1) >> SHM_MAX_ALLOC_POW2;
    if (first_block > blocks || count > blocks - first_block)
        return fail(EINVAL);
    if (count == 0)
        return 0;
    shmi_tree_block_free_bytes(&arena->geo, first_block, count, used_bytes);
    /* Cached chunks are free to the program, as in shm_arena_available. */
    shmi_tcache_block_bytes(&arena->geo, first_block, count, used_bytes);
    for (size_t i = 0; i < count; i++) {
        /* The last block may be cut by the capacity: only its part below
         * the capacity counts. */
        uint64_t start = (uint64_t)(first_block + i) << SHM_MAX_ALLOC_POW2;
        uint64_t size = capacity - start < block ? capacity - start : block;
        uint64_t free_bytes = used_bytes[i] < size ? used_bytes[i] : size;
        used_bytes[i] = (uint32_t)(size - free_bytes);
    }
    return 0;
}

struct process_visit {
    int (*visit)(const struct shm_process *, void *);
    void *context;
};

static int visit_process(const struct shmi_process_info *info, void *ctx)
{
    const struct process_visit *pv = ctx;
    enum shm_process_state state = SHM_PROCESS_LIVE;
    if (info->state == SHMI_ENTRY_DEAD)
        state = SHM_PROCESS_DEAD;
    else if (info->state == SHMI_ENTRY_EXITING ||
             info->state == SHMI_ENTRY_EXITED)
        state = SHM_PROCESS_EXITED;
    struct shm_process p = {info->pid, info->sequence,
                            state == SHM_PROCESS_LIVE, state};
    return pv->visit(&p, pv->context);
}

int shm_arena_processes(shm_arena *arena,
                        int (*visit)(const struct shm_process *, void *),
                        void *context)
{
    if (!arena || !visit)
        return fail(EINVAL);
    struct process_visit pv = {visit, context};
    return shmi_process_table_foreach(&arena->processes, visit_process, &pv);
}
