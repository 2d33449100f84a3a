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
 * Concurrency: allocation, release and the queries may run at the same time
 * in any number of threads and processes; none of them takes a lock or
 * waits for another. Opening and closing are thread-safe; closing an arena
 * (or shm_deinit) while other threads of the same process still use it is
 * undefined.
 *
 * Errors follow malloc: SHM_NULL (or NULL) and errno. The library never
 * prints, never exits and never aborts on bad input.
 */
#ifndef SHM_ALLOC_H
#define SHM_ALLOC_H

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h> /* programs written for the old API use printf from here */

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
 * Thread-safe; may race with the same call in other threads and processes.
 */
SHM_API bool shm_init(void *optional_addr, const char *shm_filename);

/* Unmaps the default arena; the file stays. No other thread may be using
 * the arena. Attaching again afterwards is allowed. */
SHM_API void shm_deinit(void);

/* Base address of the default arena's mapping (NULL when not attached):
 * address = base + offset. */
SHM_API void *get_shm_user_base(void);

/*
 * Allocates the smallest power of two >= max(size, the minimum chunk),
 * aligned to its size; every byte of it is the caller's. size 0 gets a
 * minimum chunk. Returns SHM_NULL with errno = ENOMEM when size exceeds
 * get_shm_max_allocatable_size() or no free chunk is large enough, and
 * errno = ENXIO when no arena is attached (or the errno of the failed
 * automatic attach).
 */
SHM_API shm_offt shm_malloc(size_t size);

/* As shm_malloc for count * size bytes, and those bytes zeroed (the rest
 * of the chunk, up to shm_usable_size, is not cleared). ENOMEM when the
 * product overflows. */
SHM_API shm_offt shm_calloc(size_t count, size_t size);

/*
 * Returns a chunk to the arena. SHM_NULL does nothing. An offset that is
 * not the start of a live allocation (out of range, in the metadata,
 * misaligned, inside a chunk, already free) changes nothing and sets
 * errno = EINVAL.
 */
SHM_API void shm_free(shm_offt off);

/* Bytes usable in the live allocation starting at off; 0 with
 * errno = EINVAL when off is not the start of one. */
SHM_API size_t shm_usable_size(shm_offt off);

/* Bytes in free chunks right now (a snapshot while others run). */
SHM_API size_t shm_available(void);

/*
 * Walks every bitmap word and checks the invariants of the buddy trees.
 * Returns 0 when they hold and no call ever met damaged bitmaps in this
 * file; otherwise the number of inconsistent words plus the number of
 * damaged states calls refused since the file was created or reset
 * (struct shm_stats.damage_refused: a refusal may have mended the word,
 * the file was damaged all the same). -1 with errno when no arena is
 * attached. The word count is exact only while no other thread or
 * process allocates or frees.
 */
SHM_API int shm_check(void);

/* The same as pointers into this process's mapping; NULL on failure.
 * ptr_free of a pointer outside the mapping sets EINVAL. */
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
 * EINVAL (off is not a live allocation; nothing changes).
 */
SHM_API shm_offt shm_realloc(shm_offt off, size_t size);
SHM_API void *ptr_realloc(void *ptr, size_t size);

/* Statistics of an arena, computed from the bitmaps without stopping
 * anyone: a snapshot that concurrent calls may already have changed. */
struct shm_stats {
    size_t capacity;     /* bytes available to allocations in all */
    size_t mapping_size; /* size of the file and of the mapping */
    size_t bytes_in_use; /* capacity - bytes_free */
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
};

/* Fills *stats for the default arena; 0, or an errno value (EINVAL for a
 * NULL pointer, ENXIO when no arena is attached). */
SHM_API int shm_stats(struct shm_stats *stats);

/* Largest chunk shm_malloc could return right now (0 when full). */
SHM_API size_t shm_maxsize(void);

/*
 * Receives a one-line message for every call the library refuses because
 * of its input (an invalid free, an oversized request, a file it will not
 * attach), in addition to the errno. NULL (the default) for none. The
 * handler runs in the calling thread, possibly several at once; it must
 * not call back into the library. Process-wide.
 */
typedef void (*shm_error_handler)(const char *message, void *context);
SHM_API void shm_set_error_handler(shm_error_handler handler, void *context);

#define SHM_OFFT_TO_ADDR(offset)                                               \
    ((void *)((uint8_t *)get_shm_user_base() + (offset)))
#define SHM_ADDR_TO_OFFT(address)                                              \
    ((shm_offt)((uint8_t *)(address) - (uint8_t *)get_shm_user_base()))

SHM_API size_t get_shm_max_allocatable_size(void); /* 2^MAX */
SHM_API size_t get_shm_min_allocatable_size(void); /* 2^MIN */
SHM_API size_t get_sizeof_block_header(void);      /* 0: chunks have none */
/* Size of the default arena's file (capacity plus metadata); when nothing
 * is attached, the size a new file with the default capacity would have. */
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
    /* Open an existing file for reading only (a file the caller may only
     * read, e.g. for inspection tools). Calls that would write fail with
     * EROFS. */
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
 * never modified. Thread-safe.
 */
SHM_API shm_arena *shm_arena_open(const char *path,
                                  const struct shm_arena_options *opts);

/* Unmaps the arena and frees its handle; 0 or an errno value. NULL: 0. */
SHM_API int shm_arena_close(shm_arena *arena);

/*
 * Frees every chunk at once and empties the named-root table, for a cache
 * that is rebuilt from scratch. Only safe while no other process or thread
 * uses the arena: refused with EBUSY when the process table shows another
 * live attached process (or another open handle in this process), EROFS
 * for a read-only arena. Returns 0 or the errno value (also in errno).
 */
SHM_API int shm_reset(void);
SHM_API int shm_arena_reset(shm_arena *arena);

/* Removes an arena file (as unlink(2)): processes that have it open keep
 * using it; the next open creates a new one. 0 or an errno value. Refuses
 * (EINVAL) anything that is not a regular file, and follows no symlink. */
SHM_API int shm_arena_unlink(const char *path);

/* The default arena (NULL when none is attached). */
SHM_API shm_arena *shm_default_arena(void);

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
 * from the bitmaps without stopping anyone: a snapshot. Works on arenas
 * opened with SHM_ARENA_READ_ONLY.
 */
SHM_API int shm_arena_block_usage(shm_arena *arena, size_t first_block,
                                  size_t count, uint32_t *used_bytes);

/* One entry of an arena's table of attached processes. */
struct shm_process {
    uint32_t pid;
    uint64_t start_time; /* /proc/PID/stat field 22; 0 when unknown */
    bool live;           /* false: the process died without detaching */
};

/* Calls visit for every entry of the process table, live or dead, and
 * changes nothing; stops at the first nonzero return of visit and returns
 * it. 0 after the last entry, EINVAL for a NULL arena or visit. Entries may
 * come and go during the walk. */
SHM_API int shm_arena_processes(shm_arena *arena,
                                int (*visit)(const struct shm_process *,
                                             void *),
                                void *context);

/* Size of the file holding an arena of the given capacity (0: default),
 * rounded as shm_arena_open rounds it; 0 with EINVAL when too large. */
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
 * Thread-safe, as shm_malloc; the source must not change during the copy.
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
