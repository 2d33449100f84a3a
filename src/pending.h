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

/* The multi-step operations of tree.c. */
#define SHMI_PENDING_ACTIVATE 1u
#define SHMI_PENDING_RETIRE 2u

/* A pending operation read back from a record: word `index` of `tier`. */
struct shmi_pending_op {
    unsigned op;
    unsigned tier;
    uint64_t index;
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
 * (*count of them, at most SHMI_MAX_TIERS), for the caller to resolve;
 * what the record's thread cache held is given back before the record is,
 * its bytes in *cached_bytes. Returns false when the record no longer belongs
 * to `dead` (another recovery took it). Lock-free.
 */
bool shmi_pending_take(struct shmi_geometry *g, size_t i, uint64_t dead,
                       struct shmi_pending_op ops[SHMI_MAX_TIERS],
                       unsigned *count, uint64_t *cached_bytes);

/* Empties every record whose owner is not `keep` (a reset, alone on the
 * file). */
void shmi_pending_clear_others(struct shmi_geometry *g, uint64_t keep);

/* SHM_TEST_HOOKS builds: called right after a record is written, with the
 * operation and its tier (a test stops the process there, between the two
 * steps of the operation). */
#if SHM_TEST_HOOKS
extern void (*shmi_pending_test_hook)(unsigned op, unsigned tier);
#endif

#endif /* SHM_PENDING_H */
