/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The process-local handle of an open arena, and the internal entry
 * points of the arena layer. Everything in the handle was derived from a
 * validated superblock (layout.c), never read back from the file.
 *
 *   arena_open.c    opening (attach or create), closing, reset, unlink,
 *                   the lock that makes a reset or a collection alone
 *   arena_recover.c recovery after dead and exited processes
 *   arena_collect.c the collector: frees what the program's trace does
 *                   not reach
 *   arena_alloc.c   malloc, calloc, free, usable size, realloc
 *   arena_stats.c   statistics, block usage, the process list, check
 *   global.c        the default arena and the old API over it
 *
 * The public shm_arena_* functions and the global ones call the hidden
 * shmi_arena_* functions below, so that calls inside the library bind
 * directly, without a PLT hop.
 */
#ifndef SHM_ARENA_H
#define SHM_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm_alloc.h"

#include "geometry.h"
#include "pending.h"
#include "process_table.h"
#include "tree.h"

/* The fields malloc and free read (read_only, then geo from base through
 * the tiers) share the handle's first two cache lines: the handle is
 * allocated 64-byte aligned. */
struct shm_arena {
    bool read_only;
    struct shmi_geometry geo;
    uint64_t map_size;
    struct shmi_process_table processes;
    char *remove_path; /* SHM_ARENA_REMOVE_ON_LAST_CLOSE: the file's path */
    int fd; /* the file, open while attached: the kernel's locks on it say
               that this attachment lives (process_table.c) */
    struct shmi_pending_binding pending;
    shm_arena *registry_next; /* the process's open handles */
    shm_arena *registry_prev;
    struct shmi_process_table late; /* an entry taken after the open, with
                                       its own descriptor, by a handle
                                       that had none when a mutex needed
                                       an owner key (arena_registry.c) */
};

_Static_assert(offsetof(struct shm_arena, geo) +
                       offsetof(struct shmi_geometry, tier) +
                       2 * sizeof(struct shmi_tier) <=
                   128,
               "malloc and free read the first two cache lines of a handle");

/* The default arena, or NULL with errno saying why there is none (the
 * errno of the failed automatic attach, or ENXIO): for the global forms
 * of the shm_arena_* functions defined outside global.c. */
shm_arena *shmi_current_arena(void);

/* The allocation API (arena_alloc.c): the public functions of the same
 * names without the i are aliases of these. The _as and `call` forms name
 * the public function in the error handler's message. */
shm_offt shmi_arena_malloc(shm_arena *arena, size_t size);
shm_offt shmi_arena_malloc_as(shm_arena *arena, size_t size, const char *call);
shm_offt shmi_arena_calloc(shm_arena *arena, size_t count, size_t size);
void shmi_arena_free(shm_arena *arena, shm_offt off);
/* shmi_arena_free that first takes the chunk's bytes (its usable size)
 * out of *counter, a word only the calling thread writes: the size is
 * what the free finds anyway, so a caller that accounts for its memory
 * (the cache) needs no usable-size lookup of its own. */
void shmi_arena_free_counted(shm_arena *arena, shm_offt off,
                             shmi_atomic_word *counter);
shm_offt shmi_arena_realloc(shm_arena *arena, shm_offt off, size_t size);
size_t shmi_arena_usable_size(shm_arena *arena, shm_offt off);
void shmi_arena_ptr_free(shm_arena *arena, void *ptr, const char *call);

/* Bytes of the chunk a request of `size` bytes (<= 2^MAX) gets from the
 * tree: the smallest power of two >= max(size, 2^MIN), trimmed (SHM_TRIM)
 * to the class's granule; known without reading the bitmaps. A thread
 * cache may hand out a longer chunk of the class (shmi_arena_usable_size
 * says). */
static inline size_t shmi_arena_chunk_size(size_t size)
{
    unsigned c = 0;
    if (size > (size_t)1 << SHM_MIN_ALLOC_POW2)
        c = 64u - (unsigned)__builtin_clzll((uint64_t)size - 1) -
            SHM_MIN_ALLOC_POW2;
    return (size_t)shmi_tree_trimmed_length(c, size);
}

/* Data offset of `off` when it can start a chunk; SHMI_NO_CHUNK (tree.h)
 * when it lies outside the data region or is misaligned. */
static inline uint64_t shmi_arena_data_position(const shm_arena *arena,
                                                shm_offt off)
{
    uint64_t x = off - arena->geo.data_offset; /* wraps below the region */
    if (x >= arena->geo.capacity ||
        (x & ((UINT64_C(1) << SHM_MIN_ALLOC_POW2) - 1)))
        return UINT64_MAX;
    return x;
}

/* A nonzero token naming this handle's entry in the arena's process
 * table (its owner key for records in the file); 0 when it has none: a
 * read-only handle, a full table, a forked child's copy of its parent's
 * handle. Bit 63 is clear. shmi_arena_owner_live tells whether the owner
 * is still attached and alive. */
uint64_t shmi_arena_owner_token(shm_arena *arena);
bool shmi_arena_owner_live(const shm_arena *arena, uint64_t token);

/* Live processes attached to the arena's file; writes nothing. */
size_t shmi_arena_live_processes(const shm_arena *arena);

/* The process's list of open handles (arena_registry.c): after fork() the
 * child's copies give up their parent's descriptors and entries, and a
 * normal exit marks every entry still held "exited". */
void shmi_arena_register(shm_arena *arena);
void shmi_arena_unregister(shm_arena *arena);

/* The synchronisation objects' view of the registry (arena_registry.c).
 *
 * shmi_arena_generation changes (relaxed increments) whenever a handle is
 * registered or unregistered, takes a late entry, or the process forks:
 * a thread that caches what shmi_arena_lock_owner told it keeps the cache
 * while the generation it read before asking is unchanged. */
extern shmi_atomic_word shmi_arena_generation;

struct shmi_arena_lock_owner {
    shm_arena *arena;
    uintptr_t base; /* the handle's mapping, base .. base + size */
    uintptr_t size;
    uint64_t key; /* the owner key the process's threads hold locks of
                     this mapping with: the handle's entry, else its
                     late entry (never 0) */
};

/* The open handle whose mapping holds the `size` bytes at p, and the
 * owner key the calling process locks with there: the handle's entry;
 * for a writable handle without one (a forked child's copy, a full table
 * at open), a late entry taken now through a new read-write description
 * of the file, kept until the handle closes, the process exits or forks
 * (the child's copy is dropped). Returns 0; EINVAL (no open handle maps
 * p); EPERM (a read-only handle, or no entry could be taken: a full
 * table, no permission to write, no open-file-description locks).
 * Takes the registry's mutex; errno untouched. */
int shmi_arena_lock_owner(const void *p, size_t size,
                          struct shmi_arena_lock_owner *out);

/* Calls fn(p, arg) with the registry's mutex held if an open handle maps
 * the `size` bytes at p (no handle can be closed and its mapping removed
 * meanwhile); returns whether it did. For a thread that exits holding a
 * mutex of a mapping that may be gone. */
bool shmi_arena_while_mapped(void *p, size_t size, void (*fn)(void *, void *),
                             void *arg);

/* Gives back the handle's late entry, if it holds one, and closes its
 * descriptor (at close, from handle_detach). With `remove_path`, removes
 * the file when it was the last process, as
 * shmi_process_table_detach_last. 0 or that call's errno. */
int shmi_arena_late_detach(shm_arena *arena, const char *remove_path);

/* Recovery (arena_recover.c): all of the table, or the next window of it
 * (a bounded part, at open). Both add to *report, which must be zeroed
 * first. 0 or an errno value, errno untouched. */
int shmi_arena_recover_all(shm_arena *arena, struct shm_recovery *report);
int shmi_arena_recover_window(shm_arena *arena, struct shm_recovery *report);
/* After a claim failed for want of space: all of the table when its sweep
 * ticket allows (arena_recover.c gives the bound), else nothing. */
int shmi_arena_recover_after_failure(shm_arena *arena,
                                     struct shm_recovery *report);

/* Taking the file alone, for a reset or a collection (arena_open.c has
 * the protocol): write locks on every other slot's byte and on the
 * attachment byte, never waiting. 0, or EBUSY when any other attachment
 * exists (nothing is then held beyond what the handle held before).
 * shmi_arena_unlock_alone gives back what shmi_arena_lock_alone took. */
struct shmi_alone {
    size_t own;       /* the handle's slot, or the slot count for none */
    bool reader_lock; /* the handle held the attachment read lock */
};
int shmi_arena_lock_alone(shm_arena *arena, struct shmi_alone *alone);
void shmi_arena_unlock_alone(shm_arena *arena, const struct shmi_alone *alone);

/* Slots a window covers. */
#define SHMI_RECOVER_WINDOW 8

/* A failed claim sweeps the whole table at most once per this many ms
 * (and once per attachment): shmi_arena_recover_after_failure. */
#define SHMI_RECOVER_INTERVAL_MS 10

#endif /* SHM_ARENA_H */
