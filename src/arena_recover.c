/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Recovery: what the dead and the exited left behind, given back while
 * others keep allocating and freeing.
 *
 * The table is walked in batches of slots. For each batch:
 *   1. read and probe every entry (process_table.c); keep those DEAD or
 *      EXITED, whose lock the kernel has dropped: their processes are
 *      gone, so no thread of theirs writes the file any more;
 *   2. one pass over the thread records (pending.c): each record owned by
 *      a kept entry is taken (a CAS on its owner word, so two recoveries
 *      never resolve one record), its thread cache drained back to the
 *      tree (thread_cache.c), emptied, and its operations resolved by
 *      the tree (shmi_tree_release_orphan: pending.c argues why that never
 *      frees a chunk somebody holds);
 *   3. clear each kept entry with a CAS of the value read in 1: its
 *      records were all taken in 2, since no new record gets the owner
 *      value of an attachment that is gone, and the value is never written
 *      again (attachment numbers are unique), so the CAS cannot clear a
 *      newer attachment of the same slot.
 * Once anything was cleared, the hints are repaired (a death between a
 * free and its hint updates may have lost some).
 *
 * At open only one window of SHMI_RECOVER_WINDOW slots is done, taken from
 * a cursor in the table that every opener advances, so an open costs the
 * same however full the table is, and openers together sweep all of it.
 *
 * A claim that failed for want of space (arena_alloc.c) sweeps the whole
 * table only when the table's sweep ticket says a death may have gone
 * unseen (shmi_process_table_take_sweep): an attachment was made since
 * the last full sweep, or SHMI_RECOVER_INTERVAL_MS passed since it (a
 * process live at that sweep may have died since; nothing the dead write
 * can tell sooner, and no probe of the kernel's locks counts them). One
 * caller wins the ticket. Bound: over the whole file, full sweeps after
 * failures number at most the attachments made plus one per interval,
 * however many claims fail, each one load per slot and one lock probe per
 * occupied slot; any other failed claim costs a clock read and two loads.
 * The price: the death of a process live at the last sweep is found by a
 * failing claim up to one interval late (or by shm_arena_recover, or an
 * opener's window, at once).
 *
 * Lock-free: every step is a load, a lock probe (a non-blocking system
 * call) or a CAS; nobody waits for another recovery.
 */
#include <errno.h>

#include "arena.h"
#include "os.h"
#include "pending.h"
#include "process_table.h"
#include "tree.h"
#include "tree_inspect.h"

#define BATCH 64

_Static_assert(SHMI_RECOVER_WINDOW <= BATCH, "a window fits a batch");

static bool gone(const struct shmi_process_info *info)
{
    return info->state == SHMI_ENTRY_DEAD || info->state == SHMI_ENTRY_EXITED;
}

/* One operation of a dead thread's record (pending.c argues each). */
static uint64_t resolve(struct shmi_geometry *g,
                        const struct shmi_pending_op *op)
{
    switch (op->op) {
    case SHMI_PENDING_ACTIVATE:
    case SHMI_PENDING_RETIRE:
        return shmi_tree_release_orphan(g, op->tier, op->index);
    case SHMI_PENDING_TRIM:
        return shmi_tree_release_trim(g, op->tier, op->index, op->slots,
                                      op->freeing);
    case SHMI_PENDING_REALLOC: {
        /* The new chunk of a realloc, never handed to its caller. */
        if (op->index >= g->capacity ||
            op->index % ((uint64_t)1 << SHM_MIN_ALLOC_POW2) != 0)
            return 0;
        uint64_t size = shmi_tree_usable(g, op->index);
        return size != 0 && shmi_tree_free(g, op->index) == 0 ? size : 0;
    }
    default:
        return 0; /* not an operation this library records: damage */
    }
}

/* Steps 1 to 3 for `count` slots from `first`; whether an entry was
 * cleared. */
static bool recover_batch(shm_arena *arena, size_t first, size_t count,
                          struct shm_recovery *report)
{
    size_t slots = shmi_process_table_slots();
    struct shmi_process_info kept[BATCH];
    size_t n = 0;
    for (size_t k = 0; k < count && k < BATCH; k++) {
        struct shmi_process_info info;
        shmi_process_table_entry(&arena->processes, (first + k) % slots, &info);
        if (gone(&info))
            kept[n++] = info;
    }
    if (n == 0)
        return false;
    struct shmi_geometry *g = &arena->geo;
    for (size_t r = 0; r < shmi_pending_records(); r++) {
        uint64_t owner = shmi_pending_owner(g, r);
        if (owner == 0)
            continue;
        for (size_t i = 0; i < n; i++) {
            if (kept[i].owner != owner)
                continue;
            struct shmi_pending_op ops[SHMI_PENDING_MAX_OPS];
            unsigned count_ops;
            uint64_t cached;
            if (shmi_pending_take(g, r, owner, ops, &count_ops, &cached)) {
                report->records++;
                report->bytes += (size_t)cached;
                for (unsigned o = 0; o < count_ops; o++)
                    report->bytes += (size_t)resolve(g, &ops[o]);
            }
            break;
        }
    }
    bool cleared = false;
    for (size_t i = 0; i < n; i++) {
        if (shmi_process_table_clear(&arena->processes, &kept[i])) {
            report->entries++;
            cleared = true;
        }
    }
    return cleared;
}

int shmi_arena_recover_all(shm_arena *arena, struct shm_recovery *report)
{
    if (arena->read_only)
        return EROFS;
    size_t slots = shmi_process_table_slots();
    bool cleared = false;
    for (size_t first = 0; first < slots; first += BATCH)
        cleared |= recover_batch(arena, first,
                                 slots - first < BATCH ? slots - first : BATCH,
                                 report);
    if (cleared)
        shmi_tree_repair_hints(&arena->geo);
    return 0;
}

int shmi_arena_recover_after_failure(shm_arena *arena,
                                     struct shm_recovery *report)
{
    if (arena->read_only)
        return EROFS;
    if (!shmi_process_table_take_sweep(&arena->processes,
                                       shmi_os_monotonic_ms(),
                                       SHMI_RECOVER_INTERVAL_MS))
        return 0;
    return shmi_arena_recover_all(arena, report);
}

int shmi_arena_recover_window(shm_arena *arena, struct shm_recovery *report)
{
    if (arena->read_only)
        return EROFS;
    size_t first =
        shmi_process_table_window(&arena->processes, SHMI_RECOVER_WINDOW);
    if (recover_batch(arena, first, SHMI_RECOVER_WINDOW, report))
        shmi_tree_repair_hints(&arena->geo);
    return 0;
}

int shm_arena_recover(shm_arena *arena, struct shm_recovery *report)
{
    struct shm_recovery r = {0, 0, 0};
    int saved = errno;
    int err = arena ? shmi_arena_recover_all(arena, &r) : EINVAL;
    if (report)
        *report = r;
    errno = err ? err : saved;
    return err;
}
