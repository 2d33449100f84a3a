/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm_alloc: a lock-free heap shared by unrelated processes.
 *
 * A file is mapped MAP_SHARED into every process that uses it; allocations
 * are handed out as offsets from the start of the mapping, so any process
 * turns an offset into a pointer with its own base:
 *
 *     shm_offt off = shm_malloc(100);
 *     char *p = SHM_OFFT_TO_ADDR(off);
 *
 * The global functions (shm_malloc, ...) work on the default arena: the
 * file named by $SHM_FILE, attached by a constructor before main(), or
 * the one given to shm_init(). Each has an shm_arena_* twin that takes an
 * explicit arena from shm_arena_open(); several arenas may be open at once.
 *
 * Errors, one convention for the whole API:
 *   - calls that allocate (shm_malloc, ..., shm_strdup) follow malloc:
 *     SHM_NULL (or NULL) on failure, with errno saying why;
 *   - every other call that can fail returns 0 or an errno value, and
 *     also sets errno to that value (LMDB's convention); the old API's
 *     bool and size_t results (shm_init, shm_usable_size, ...) keep their
 *     type and set errno when they fail;
 *   - errno is left alone by calls that succeed.
 * The library never prints, never exits and never aborts on what a caller
 * or a file hands it; an optional handler receives a message for every
 * refused call (shm_set_error_handler).
 *
 * Concurrency: each prototype says which calls may run at the same time as
 * it. In short: allocation, release, roots and the queries may run at the
 * same time in any number of threads and processes, and none of them takes
 * a lock or waits for another ("any"). Opening is thread-safe. Closing an
 * arena (or shm_deinit) while other threads of the same process still use
 * that handle is undefined ("no other call on the handle").
 *
 * Source compatibility: programs written for the old shm_alloc API used
 * printf after including only this header, so it includes <stdio.h>
 * unless SHM_ALLOC_NO_STDIO is defined before it (new programs may define
 * it; the library itself is built with it).
 */
#ifndef SHM_ALLOC_H
#define SHM_ALLOC_H

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#ifndef SHM_ALLOC_NO_STDIO
#include <stdio.h> /* for programs written for the old API: see above */
#endif

#include "shm_alloc_version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SHM_API __attribute__((visibility("default")))
#else
#define SHM_API
#endif

/* An offset from the start of the mapping; 0 is never a valid allocation. */
typedef uint64_t shm_offt;
#define PRIu_shm_offt PRIu64
#define SHM_NULL ((shm_offt)0)

/*
 * The version of the library running, fixed when it was built (the
 * header's is SHM_ALLOC_VERSION_MAJOR, ... in shm_alloc_version.h): stores
 * its parts in *major, *minor and *patch, each pointer may be NULL, and
 * returns it as a string, "MAJOR.MINOR.PATCH". Never fails; thread-safe.
 */
SHM_API const char *shm_version(int *major, int *minor, int *patch);

/* ---------------------------------------------------------------------
 * The default arena (source-compatible with the old shm_alloc API)
 * ------------------------------------------------------------------- */

/*
 * Attaches the default arena: maps shm_filename (NULL: $SHM_FILE), creating
 * it with capacity $SHM_SIZE (or the built-in default) when it is missing.
 * optional_addr, when not NULL, asks for the mapping at that address
 * (refused with EEXIST rather than replacing another mapping; a file it
 * would have created is then not left behind).
 * $SHM_SIZE is exactly digits with an optional unit K, M, G or T (powers
 * of 1024, upper case) optionally followed by "B" or "iB": "64M", "64MiB",
 * "1T". Unset or empty: the built-in default. Anything else (a space, a
 * sign, lower case, 0, more than a size_t holds) fails with EINVAL and
 * creates nothing.
 * Returns true on success and when an arena is already attached; false
 * with errno set otherwise (see docs/how_to_use.md for every errno).
 * Concurrency: any; it may race with itself in other threads and processes.
 */
SHM_API bool shm_init(void *optional_addr, const char *shm_filename);

/*
 * Opting out of the automatic attach. A program that uses only explicit
 * arenas (shm_arena_open) and does not want an inherited $SHM_FILE to make
 * the constructor map, or create, a file before main() defines, in one of
 * its source files after including this header:
 *
 *     const int shm_no_auto_attach = 1;
 *
 * Nonzero: the constructor does nothing, the global functions fail with
 * ENXIO until shm_init() is called explicitly (which still reads
 * $SHM_FILE when given no path). The library declares the symbol weak, so
 * programs that do not define it attach as before. It is a property of
 * the program, not of its environment: it reaches neither the processes
 * it starts nor other programs.
 */
SHM_API extern const int shm_no_auto_attach;

/* Unmaps the default arena; the file stays. Attaching again afterwards is
 * allowed. Concurrency: no other call on the default arena in this
 * process. */
SHM_API void shm_deinit(void);

/* Base address of the default arena's mapping (NULL when not attached):
 * address = base + offset. Pure: it changes only through shm_init and
 * shm_deinit, so the compiler may keep one result across the uses of
 * SHM_OFFT_TO_ADDR between other calls. Concurrency: any. */
SHM_API void *get_shm_user_base(void) __attribute__((pure));

/*
 * Allocates the smallest power of two >= max(size, the minimum chunk),
 * aligned to its size; every byte of it is the caller's. size 0 gets a
 * minimum chunk. Returns SHM_NULL with errno = ENOMEM when size exceeds
 * get_shm_max_allocatable_size() or no free chunk is large enough, and
 * errno = ENXIO when no arena is attached (or the errno of the failed
 * automatic attach), EROFS on a read-only arena. Concurrency: any.
 */
SHM_API shm_offt shm_malloc(size_t size);

/* As shm_malloc for count * size bytes, and those bytes zeroed (the rest
 * of the chunk, up to shm_usable_size, is not cleared). ENOMEM when the
 * product overflows. Concurrency: any. */
SHM_API shm_offt shm_calloc(size_t count, size_t size);

/*
 * Returns a chunk to the arena. SHM_NULL does nothing. An offset that is
 * not the start of a live allocation (out of range, in the metadata,
 * misaligned, inside a chunk, already free) changes nothing and sets
 * errno = EINVAL; with no arena attached, errno says why (as shm_malloc).
 * Concurrency: any, except a free of the same chunk.
 */
SHM_API void shm_free(shm_offt off);

/* Bytes usable in the live allocation starting at off; 0 with
 * errno = EINVAL when off is not the start of one. Concurrency: any. */
SHM_API size_t shm_usable_size(shm_offt off);

/* Bytes in free chunks right now, those that threads keep in their caches
 * included (a snapshot while others run); 0 with errno when no arena is
 * attached. Concurrency: any; writes nothing. */
SHM_API size_t shm_available(void);

/*
 * Walks every bitmap word and checks the invariants of the buddy trees.
 * Returns 0 when they hold and no call ever met damaged bitmaps in this
 * file; otherwise the number of inconsistent words plus the number of
 * damaged states calls refused since the file was created or reset
 * (struct shm_stats.damage_refused: a refusal may have mended the word,
 * the file was damaged all the same). -1 with errno when no arena is
 * attached. The word count is exact only while no other thread or
 * process allocates or frees. Concurrency: any, writes
 * nothing.
 */
SHM_API int shm_check(void);

/* The same as pointers into this process's mapping; NULL on failure.
 * ptr_free of a pointer outside the mapping sets EINVAL. Concurrency: as
 * the offset forms. */
SHM_API void *ptr_malloc(size_t size);
SHM_API void *ptr_calloc(size_t count, size_t size);
SHM_API void ptr_free(void *ptr);

/*
 * Resizes the allocation at off to hold size bytes, keeping its contents up
 * to the smaller of the two sizes. In place when the new size fits the
 * chunk's power of two, when shrinking (the unused buddies are freed), or
 * when growing can take the free buddies next to it; otherwise a new chunk
 * is allocated, the bytes copied and the old chunk freed. off SHM_NULL acts
 * as shm_malloc(size). Returns the (possibly new) offset, or SHM_NULL with
 * errno ENOMEM (size too large, or no space; the old chunk is intact) or
 * EINVAL (off is not a live allocation; nothing changes). Concurrency: any,
 * except another call that frees or resizes the same chunk.
 */
SHM_API shm_offt shm_realloc(shm_offt off, size_t size);
SHM_API void *ptr_realloc(void *ptr, size_t size);

/* Statistics of an arena, computed from the bitmaps without stopping
 * anyone: a snapshot that concurrent calls may already have changed. */
struct shm_stats {
    size_t capacity;     /* bytes available to allocations in all */
    size_t mapping_size; /* size of the file and of the mapping */
    size_t bytes_in_use; /* capacity - bytes_free - bytes_cached */
    size_t bytes_free;   /* bytes in free chunks */
    size_t largest_free; /* largest chunk a malloc could get now */
    size_t min_chunk;    /* 2^MIN */
    size_t max_chunk;    /* 2^MAX */
    unsigned classes;    /* number of size classes, MAX - MIN + 1 */
    /* free_chunks[i]: free chunks of 2^(MIN+i) bytes that are not part of
     * a larger free chunk (buddies coalesced as far as they can). */
    size_t free_chunks[31];
    size_t attached_processes; /* live processes attached to the file */
    /* Inconsistent bitmap states refused since the file was created (a
     * stray write damaged the metadata): see shm_check. */
    size_t damage_refused;
    /* Bytes in thread caches: free chunks that threads keep for their next
     * mallocs (at most SHM_THREAD_CACHE_BYTES per thread, config.cmake),
     * counted neither in bytes_free nor in bytes_in_use. */
    size_t bytes_cached;
};

/* Fills *stats for the default arena; 0, or an errno value, also in errno
 * (EINVAL for a NULL pointer, ENXIO when no arena is attached). A query: it
 * writes nothing to the file, and costs one pass over the bitmap words
 * and one look at each process-table entry. Concurrency: any. */
SHM_API int shm_stats(struct shm_stats *stats);

/* Largest chunk shm_malloc could return right now (0 when full, or with
 * errno when no arena is attached). Writes nothing. Concurrency: any. */
SHM_API size_t shm_maxsize(void);

/*
 * Receives a one-line message for every call the library refuses because
 * of its input (an invalid free, an oversized request, a file it will not
 * attach), in addition to the errno. NULL (the default) for none. The
 * handler runs in the calling thread, possibly several at once; it must
 * not call back into the library. Process-wide. Concurrency: any; a
 * handler being replaced may still receive a message already under way.
 */
typedef void (*shm_error_handler)(const char *message, void *context);
SHM_API void shm_set_error_handler(shm_error_handler handler, void *context);

#define SHM_OFFT_TO_ADDR(offset)                                               \
    ((void *)((uint8_t *)get_shm_user_base() + (offset)))
#define SHM_ADDR_TO_OFFT(address)                                              \
    ((shm_offt)((uint8_t *)(address) - (uint8_t *)get_shm_user_base()))

/* Constants of the build, and the file size of the default arena (capacity
 * plus metadata; when nothing is attached, the size a new file with the
 * default capacity would have). Concurrency: any. */
SHM_API size_t get_shm_max_allocatable_size(void); /* 2^MAX */
SHM_API size_t get_shm_min_allocatable_size(void); /* 2^MIN */
SHM_API size_t get_sizeof_block_header(void);      /* 0: chunks have none */
SHM_API size_t get_mapping_size_needed_by_shm(void);

/* ---------------------------------------------------------------------
 * Explicit arenas
 * ------------------------------------------------------------------- */

typedef struct shm_arena shm_arena;

enum shm_arena_flags {
    /* Fail with ENOENT instead of creating a missing file. */
    SHM_ARENA_NO_CREATE = 1u << 0,
    /* Fail with EEXIST when the file already exists. */
    SHM_ARENA_EXCLUSIVE = 1u << 1,
    /* Do not reserve disk space for a new file (posix_fallocate): the
     * file is sparse and a full disk shows later as SIGBUS. */
    SHM_ARENA_SPARSE = 1u << 2,
    /* Accept a file owned by another user when its group is the caller's
     * effective group (for arenas shared by a group; create with mode
     * 0660). */
    SHM_ARENA_SHARED_GROUP = 1u << 3,
    /* Open an existing file for reading only, e.g. for inspection tools:
     * any arena file the caller may read, also one owned by another user
     * (the ownership check guards writers only; the mapping is read-only
     * and the process is not entered in the file's process table). Calls
     * that would write fail with EROFS. */
    SHM_ARENA_READ_ONLY = 1u << 4,
    /* Map an existing file at the address its creator mapped it at, so
     * that plain pointers (ptr_malloc) mean the same in every process.
     * Never replaces another mapping: EEXIST when that range is taken in
     * this process. A new file is mapped at `address` when given. */
    SHM_ARENA_SAME_ADDRESS = 1u << 5,
    /* Remove the file when the last live process attached to it closes
     * it (processes that died count as gone). A process opening the file
     * at that moment either keeps it alive or opens a new one. */
    SHM_ARENA_REMOVE_ON_LAST_CLOSE = 1u << 6,
};

struct shm_arena_options {
    size_t capacity; /* bytes for allocations in a new file; 0: default */
    unsigned mode;   /* permission bits of a new file, within 0666 (else
                        EINVAL), applied exactly (no umask); 0: 0600 */
    unsigned flags;  /* enum shm_arena_flags, or-ed */
    void *address;   /* map here (never replacing a mapping); NULL: any */
};

/*
 * Opens (and when missing creates) the arena file at path. opts may be
 * NULL for the defaults. Returns the arena, or NULL with errno: ENOENT,
 * EEXIST (see the flags), EACCES/EPERM (another owner), ELOOP (symlink),
 * EINVAL (not a regular file, or bad options), EPROTO (wrong magic,
 * version or build fingerprint), EBADMSG (geometry that does not fit the
 * file), ENOSPC, ENOMEM, or any errno of open/mmap. A refused file is
 * never modified; EBUSY while another process resets or collects the
 * file (shm_arena_reset, shm_arena_collect). Concurrency: any; it may
 * race with opens, closes and removals of the same file in other threads
 * and processes. Its cost does not depend on how many processes are
 * attached.
 */
SHM_API shm_arena *shm_arena_open(const char *path,
                                  const struct shm_arena_options *opts);

/* Unmaps the arena and frees its handle; 0 or an errno value, also in errno
 * (the errno of removing the file with SHM_ARENA_REMOVE_ON_LAST_CLOSE; the
 * handle is freed all the same). NULL: 0. Concurrency: no other call on
 * this handle; any call on other handles. */
SHM_API int shm_arena_close(shm_arena *arena);

/*
 * Frees every chunk at once and empties the named-root table, for a cache
 * that is rebuilt from scratch. Only safe while no other process or thread
 * uses the arena, which it makes sure of through a lock the kernel holds
 * for every attachment: refused with EBUSY when any other attachment
 * exists (another process, readers and forked children included, or
 * another open handle in this process), EROFS for a read-only arena.
 * While a reset runs, shm_arena_open of the file fails with EBUSY at once
 * rather than waiting. Returns 0 or the errno value (also in errno).
 * Concurrency: none on this arena in this process; opens elsewhere fail.
 */
SHM_API int shm_reset(void);
SHM_API int shm_arena_reset(shm_arena *arena);

/* Removes an arena file (as unlink(2)): processes that have it open keep
 * using it; the next open creates a new one. 0 or an errno value, also in
 * errno. Refuses (EINVAL) anything that is not a regular file, and follows
 * no symlink. Concurrency: any. */
SHM_API int shm_arena_unlink(const char *path);

/* The default arena (NULL when none is attached). Concurrency: any. */
SHM_API shm_arena *shm_default_arena(void);

/* The explicit-arena twins of the calls above: the same results, errors
 * and concurrency, on `arena` (NULL: EINVAL, or 0 for the accessors that
 * return a size). shm_arena_base, _capacity and _mapping_size read the
 * handle only. */
SHM_API void *shm_arena_base(const shm_arena *arena);
SHM_API size_t shm_arena_capacity(const shm_arena *arena);
SHM_API size_t shm_arena_mapping_size(const shm_arena *arena);
SHM_API shm_offt shm_arena_malloc(shm_arena *arena, size_t size);
SHM_API shm_offt shm_arena_calloc(shm_arena *arena, size_t count, size_t size);
SHM_API void shm_arena_free(shm_arena *arena, shm_offt off);
SHM_API size_t shm_arena_usable_size(shm_arena *arena, shm_offt off);
SHM_API size_t shm_arena_available(shm_arena *arena);
SHM_API int shm_arena_check(shm_arena *arena);
SHM_API void *shm_arena_ptr_malloc(shm_arena *arena, size_t size);
SHM_API void *shm_arena_ptr_calloc(shm_arena *arena, size_t count, size_t size);
SHM_API void shm_arena_ptr_free(shm_arena *arena, void *ptr);
SHM_API shm_offt shm_arena_realloc(shm_arena *arena, shm_offt off, size_t size);
SHM_API void *shm_arena_ptr_realloc(shm_arena *arena, void *ptr, size_t size);
SHM_API int shm_arena_stats(shm_arena *arena, struct shm_stats *stats);
SHM_API size_t shm_arena_maxsize(shm_arena *arena);

/*
 * Occupancy by block: the data region is cut into blocks of 2^MAX bytes
 * (get_shm_max_allocatable_size()), block i starting at offset
 * shm_arena_mapping_size(arena) - shm_arena_capacity(arena) + i * 2^MAX;
 * there are ceil(capacity / 2^MAX) of them. Stores in used_bytes[i] the
 * bytes of block first_block + i that are not free (allocated, or lost to
 * a process killed mid-call), for count blocks; a last block cut short by
 * the capacity counts only its part below it. Returns 0, or EINVAL (NULL
 * arena, NULL used_bytes with count > 0, blocks past the last). Computed
 * from the bitmaps without stopping anyone: a snapshot that writes
 * nothing. Works on arenas opened with SHM_ARENA_READ_ONLY. Concurrency:
 * any.
 */
SHM_API int shm_arena_block_usage(shm_arena *arena, size_t first_block,
                                  size_t count, uint32_t *used_bytes);

/* What became of an attached process. Liveness comes from a lock the
 * kernel holds for each attachment, so it is right across pid namespaces
 * and pid reuse. */
enum shm_process_state {
    SHM_PROCESS_LIVE = 0,   /* attached */
    SHM_PROCESS_DEAD = 1,   /* died (killed) without detaching */
    SHM_PROCESS_EXITED = 2, /* exited normally without closing: the
                               library's destructor detached it */
};

/* One entry of an arena's table of attached processes. */
struct shm_process {
    uint32_t pid;        /* in the attacher's pid namespace; display only */
    uint64_t start_time; /* the attachment's number, unique in the file
                            (no longer a start time from /proc) */
    bool live;           /* state == SHM_PROCESS_LIVE */
    enum shm_process_state state;
};

/* Calls visit for every entry of the process table, live or dead, and
 * changes nothing; stops at the first nonzero return of visit and returns
 * it (as it is, not in errno). 0 after the last entry, EINVAL (also in
 * errno) for a NULL arena or visit. Entries may come and go during the
 * walk. Concurrency: any. */
SHM_API int shm_arena_processes(shm_arena *arena,
                                int (*visit)(const struct shm_process *,
                                             void *),
                                void *context);

/* What a recovery did. */
struct shm_recovery {
    size_t entries; /* table entries of dead or exited processes cleared */
    size_t records; /* their thread records resolved */
    size_t bytes;   /* bytes their pending operations gave back */
};

/*
 * Cleans up after processes that died or exited without closing: resolves
 * the operations their threads had in flight inside the allocator
 * (completing or undoing them, so that no byte the allocator held for
 * them stays lost), repairs the search hints they may have left stale,
 * and clears their table entries. What the program itself had allocated
 * is not touched. report may be NULL. Returns 0, or an errno value (also
 * in errno): EINVAL (NULL arena), EROFS (read-only arena), ENXIO (no
 * default arena, for shm_recover). Opening a file already runs a bounded
 * part of it, and an allocation that finds no space runs it all once
 * before failing. Lock-free; concurrency: any, in any process, other
 * recoveries included.
 */
SHM_API int shm_recover(struct shm_recovery *report);
SHM_API int shm_arena_recover(shm_arena *arena, struct shm_recovery *report);

/*
 * Gives the chunks the calling thread keeps in its cache for the arena
 * back to the bitmaps (see bytes_cached in struct shm_stats): for a thread
 * about to sleep for long, or before inspecting where the free space lies.
 * A thread's cache is also given back when the thread ends, when the arena
 * is closed, at exit(), and by a malloc that would otherwise fail.
 * Returns 0, or an errno value (also in errno): EINVAL (NULL arena), EROFS
 * (read-only arena), ENXIO (no default arena). Concurrency: any.
 */
SHM_API int shm_flush_thread_cache(void);
SHM_API int shm_arena_flush_thread_cache(shm_arena *arena);

/* ---------------------------------------------------------------------
 * Collection: freeing what no structure of the program reaches
 * ------------------------------------------------------------------- */

/* The state of one collection, handed to its trace function. */
typedef struct shm_collector shm_collector;

/* The trace function: marks every chunk the program can reach
 * (shm_collect_mark), starting from its named roots (shm_arena_root_get
 * on shm_collect_arena(col)). 0 to let the collection free the rest; any
 * other value aborts it. */
typedef int (*shm_trace_fn)(shm_collector *col, void *context);

/* What a collection did. */
struct shm_collection {
    size_t freed_chunks;          /* allocated chunks no trace marked, freed */
    size_t freed_bytes;           /* their bytes */
    size_t kept_chunks;           /* allocated chunks marked, kept */
    size_t kept_bytes;            /* their bytes */
    struct shm_recovery recovery; /* the recovery run first */
};

/*
 * Frees every allocated chunk that the program's trace function does not
 * mark: what a process killed between allocating a chunk and linking it
 * into a structure left behind, which no recovery can tell from a chunk
 * in use. Steps: takes the file alone (the lock shm_arena_reset takes),
 * recovers the dead and the exited (shm_arena_recover, whose report goes
 * to report->recovery), calls trace(col, context) once, then walks the
 * bitmaps once and frees every allocated chunk whose start was not
 * marked. trace must mark every chunk the program still uses, its roots'
 * chunks included: whatever is unmarked when it returns is freed, also a
 * chunk it allocated itself. It may read the arena, the roots, and call
 * shm_collect_mark and shm_collect_extent; it must not close, reset or
 * collect the arena.
 * Cost: a bitmap of one bit per 2^MIN bytes of capacity (capacity / 2^MIN
 * / 8 bytes: 256 KiB for 64 MiB with 32-byte chunks), allocated with
 * malloc in the calling process, never in the file; one pass over the
 * bitmap words; and one call of shm_collect_mark per reachable chunk.
 * The arena is unavailable to other processes meanwhile.
 * report may be NULL. Returns 0, or an errno value (also in errno):
 * EINVAL (NULL arena or trace), EROFS (read-only arena), EBUSY (another
 * attachment exists: another process, a reader, a forked child, another
 * handle in this process; nothing is changed), ENOMEM (no memory for the
 * marks; nothing changed), ENXIO (no default arena, for shm_collect); or
 * the nonzero value trace returned, as it is and not in errno: nothing
 * is freed then (the recovery has been done). While it runs,
 * shm_arena_open of the file fails with EBUSY at once rather than
 * waiting. An arena that holds an shm_cache cannot be collected: its
 * chunks are reachable only through the cache's own structures.
 * Concurrency: none on this arena in this process; opens elsewhere fail.
 */
SHM_API int shm_collect(shm_trace_fn trace, void *context,
                        struct shm_collection *report);
SHM_API int shm_arena_collect(shm_arena *arena, shm_trace_fn trace,
                              void *context, struct shm_collection *report);

/*
 * For trace functions only: marks the allocated chunk starting at off as
 * reachable. Returns 0 when it was not marked before, EALREADY when it
 * was (a success: errno untouched; a tracer stops there, which also ends
 * cycles), EINVAL (also in errno, and reported to the error handler) when
 * off is not the start of a live allocation or col is NULL: nothing is
 * marked. Concurrency: only inside the trace of col.
 */
SHM_API int shm_collect_mark(shm_collector *col, shm_offt off);

/* For trace functions only: stores in *size the bytes of the allocated
 * chunk starting at off (as shm_arena_usable_size) and returns 0, or
 * EINVAL (also in errno) when off is not the start of a live allocation,
 * col or size is NULL. Concurrency: only inside the trace of col. */
SHM_API int shm_collect_extent(shm_collector *col, shm_offt off, size_t *size);

/* For trace functions only: the arena being collected (its base for
 * SHM_OFFT_TO_ADDR-style arithmetic, its roots); NULL for NULL. */
SHM_API shm_arena *shm_collect_arena(shm_collector *col);

/* Size of the file holding an arena of the given capacity (0: default),
 * rounded as shm_arena_open rounds it; 0 with EINVAL when too large.
 * Concurrency: any. */
SHM_API size_t shm_mapping_size_for_capacity(size_t capacity);

/* ---------------------------------------------------------------------
 * Named roots: how a process that just attached finds what others built
 * ------------------------------------------------------------------- */

/* A root name is 1 to SHM_ROOT_NAME_MAX bytes (not counting the NUL); an
 * arena holds SHM_ROOT_COUNT names. Names are never removed: setting a root
 * to SHM_NULL keeps its name in the table. */
#define SHM_ROOT_NAME_MAX 47
#define SHM_ROOT_COUNT 64

/*
 * Returns the offset stored under name, or SHM_NULL with errno: ENOENT (no
 * root of that name, or its value is SHM_NULL), EINVAL (name NULL or
 * empty; arena NULL), ENAMETOOLONG; for the global form, the errno of
 * shm_malloc when no default arena is attached (ENXIO, ...).
 * Everything written before the shm_root_set/shm_root_cas that stored the
 * offset is visible to the caller once it has the offset.
 * Lock-free; may run concurrently with every root call in any process.
 */
SHM_API shm_offt shm_root_get(const char *name);
SHM_API shm_offt shm_arena_root_get(shm_arena *arena, const char *name);

/*
 * Stores off under name, adding the name when it is new (setting SHM_NULL
 * under a new name adds nothing). Returns 0, or an errno value that errno
 * also holds: ENOSPC (the table holds SHM_ROOT_COUNT other names),
 * ENAMETOOLONG, EINVAL (name NULL or empty, off past the end of the
 * mapping, arena NULL), EROFS (arena opened SHM_ARENA_READ_ONLY), or as
 * shm_root_get when no default arena is attached.
 * Lock-free; two processes adding the same new name at once end with one
 * root, holding the value of the later store.
 */
SHM_API int shm_root_set(const char *name, shm_offt off);
SHM_API int shm_arena_root_set(shm_arena *arena, const char *name,
                               shm_offt off);

/*
 * Atomically replaces the value of name by desired if it is expected; a
 * name not in the table holds SHM_NULL, so shm_root_cas(name, SHM_NULL, x)
 * publishes x only if nobody published first. Returns true when replaced;
 * false with errno = EAGAIN when the value was not expected (read it again
 * with shm_root_get), or with the errors of shm_root_set.
 * Lock-free; may run concurrently with every root call in any process.
 */
SHM_API bool shm_root_cas(const char *name, shm_offt expected,
                          shm_offt desired);
SHM_API bool shm_arena_root_cas(shm_arena *arena, const char *name,
                                shm_offt expected, shm_offt desired);

/* ---------------------------------------------------------------------
 * Copies into the arena
 * ------------------------------------------------------------------- */

/*
 * shm_strdup copies the string s with its NUL; shm_strndup copies at most
 * n bytes of s and adds a NUL; shm_memdup copies n bytes from p (n == 0
 * gets a minimum chunk, as shm_malloc(0)). Return the offset of the copy,
 * or SHM_NULL with errno: EINVAL (s or p NULL; arena NULL), the errno of
 * shm_malloc (ENOMEM when the copy exceeds get_shm_max_allocatable_size()).
 * Concurrency: any, as shm_malloc; the source must not change during the
 * copy.
 */
SHM_API shm_offt shm_strdup(const char *s);
SHM_API shm_offt shm_strndup(const char *s, size_t n);
SHM_API shm_offt shm_memdup(const void *p, size_t n);
SHM_API shm_offt shm_arena_strdup(shm_arena *arena, const char *s);
SHM_API shm_offt shm_arena_strndup(shm_arena *arena, const char *s, size_t n);
SHM_API shm_offt shm_arena_memdup(shm_arena *arena, const void *p, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* SHM_ALLOC_H */
