/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Pending-operation records (pending.c): each thread that runs a
 * multi-step operation on the trees records it in a record of the file
 * first, so that a survivor can complete or undo it after a death.
 */
#ifndef SHM_PENDING_H
#define SHM_PENDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "geometry.h"

/* The multi-step operations of tree.c, and a realloc that moves
 * (arena_alloc.c). */
#define SHMI_PENDING_ACTIVATE 1u
#define SHMI_PENDING_RETIRE 2u
#define SHMI_PENDING_TRIM 3u
#define SHMI_PENDING_REALLOC 4u

/* At most this many operations per record: one per tier, and a realloc. */
#define SHMI_PENDING_MAX_OPS (SHMI_MAX_TIERS + 1)

/* A pending operation read back from a record. ACTIVATE, RETIRE: word
 * `index` of `tier`. TRIM: the trimmed allocation of `slots` bottom-row
 * slots of a word of `tier` starting at data position `index`, being
 * claimed (`freeing` false) or freed. REALLOC: the new chunk at data
 * position `index`, not yet handed to the caller. */
struct shmi_pending_op {
    unsigned op;
    unsigned tier;
    uint64_t index;
    unsigned slots;
    bool freeing;
};

/*
 * Records in the calling thread's record for g that the first step of
 * `op` on word `index` of `tier` (> 0) is done; shmi_pending_end clears
 * it. Takes a record on the thread's first use of g (none when the
 * attachment has no owner value or every record is taken: the operation
 * then runs unrecorded). Lock-free but for the first use by a thread that
 * already holds records of several other arenas (a process-local mutex).
 */
void shmi_pending_begin(struct shmi_geometry *g, unsigned op, unsigned tier,
                        uint64_t index);
void shmi_pending_end(struct shmi_geometry *g, unsigned tier);

/* Records in the calling thread's record that the trimmed allocation of
 * `slots` slots at data position x in a word of `tier` is between its
 * claiming CAS and its continuation bits (freeing false), or between
 * the clearing of its bits and its freeing CAS (freeing true);
 * shmi_pending_end(g, tier) clears it. As shmi_pending_begin otherwise. */
void shmi_pending_begin_trim(struct shmi_geometry *g, unsigned tier, uint64_t x,
                             unsigned slots, bool freeing);

/* Records that the chunk at data position x was allocated by a realloc
 * that moves and is not yet the caller's; shmi_pending_end_realloc clears
 * it (after the old chunk was freed). */
void shmi_pending_begin_realloc(struct shmi_geometry *g, uint64_t x);
void shmi_pending_end_realloc(struct shmi_geometry *g);

/* Index of the calling thread's record for g, taking one on first use
 * (records with a thread cache first); -1 when it has none. */
long shmi_pending_thread_record(struct shmi_geometry *g);

/* Called with g and a record's index just before the record is given back
 * (by its thread at exit, by its attachment at detach, by a recovery that
 * took it from a dead owner), while the caller still holds it: the thread
 * caches (thread_cache.c) empty the record's cache there, and return the
 * bytes that gave back. Set once. */
typedef uint64_t shmi_pending_release_fn(struct shmi_geometry *g,
                                         size_t record);
void shmi_pending_set_release_hook(shmi_pending_release_fn *hook);

/* A handle's link in the process's list of attachments whose records its
 * threads may hold (so that a thread that exits gives back only records
 * of arenas still mapped). */
struct shmi_pending_binding {
    struct shmi_pending_binding *next;
    struct shmi_geometry *geo;
};

/* Adds g (with its record_owner set) to the list; b lives as long as the
 * mapping. */
void shmi_pending_bind(struct shmi_pending_binding *b, struct shmi_geometry *g);

/* Removes b from the list and gives back every record of g's owner value
 * (at detach; no thread of the process is inside an operation on g). */
void shmi_pending_unbind(struct shmi_pending_binding *b);

/* After fork(), in the child: forgets the records the forking thread
 * held (they are its parent's). */
void shmi_pending_forget_after_fork(void);

/* Number of records in a file. */
size_t shmi_pending_records(void);

/* The owner value of record i (a snapshot; 0: free). */
uint64_t shmi_pending_owner(const struct shmi_geometry *g, size_t i);

/*
 * Takes record i from `dead` (the owner value of an attachment found dead
 * or exited), empties it and gives it back: its operations go to ops
 * (*count of them, at most SHMI_PENDING_MAX_OPS), for the caller to
 * resolve (trimmed pieces before the rest);
 * what the record's thread cache held is given back before the record is,
 * its bytes in *cached_bytes. Returns false when the record no longer belongs
 * to `dead` (another recovery took it). Lock-free.
 */
bool shmi_pending_take(struct shmi_geometry *g, size_t i, uint64_t dead,
                       struct shmi_pending_op ops[SHMI_PENDING_MAX_OPS],
                       unsigned *count, uint64_t *cached_bytes);

/* Empties every record whose owner is not `keep` (a reset, alone on the
 * file). */
void shmi_pending_clear_others(struct shmi_geometry *g, uint64_t keep);

/* SHM_TEST_HOOKS builds: called right after a record is written, with the
 * operation and its tier (a test stops the process there, between the two
 * steps of the operation), and at the points below, between a step and
 * the clearing of its record. */
#define SHMI_PENDING_AT_TRIM_MARKED 16u    /* claim: bits set, recorded */
#define SHMI_PENDING_AT_TRIM_FREEING 17u   /* free: recorded, bits set */
#define SHMI_PENDING_AT_TRIM_UNMARKED 18u  /* free: bits clear, not freed */
#define SHMI_PENDING_AT_REALLOC_COPIED 19u /* realloc: copied, old live */
#define SHMI_PENDING_AT_REALLOC_FREED 20u  /* realloc: old freed, recorded */
#if SHM_TEST_HOOKS
extern void (*shmi_pending_test_hook)(unsigned op, unsigned tier);
#define SHMI_PENDING_TEST_POINT(point, tier)                                   \
    do {                                                                       \
        if (shmi_pending_test_hook)                                            \
            shmi_pending_test_hook(point, tier);                               \
    } while (0)
#else
#define SHMI_PENDING_TEST_POINT(point, tier) ((void)0)
#endif

#endif /* SHM_PENDING_H */
