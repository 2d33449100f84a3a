/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm_cache: a key-value cache shared by unrelated processes, kept in an
 * shm_alloc arena. Lock-free: no call waits for another process, and a
 * process killed at any instruction leaves every entry either as it was
 * or as its set made it.
 *
 *     shm_cache *c = shm_cache_open("/dev/shm/sessions", NULL);
 *     shm_cache_set(c, "user:42", 7, value, value_len, 300);
 *     size_t len;
 *     int err = shm_cache_get(c, "user:42", 7, buf, sizeof buf, &len);
 *
 * Errors: every call returns 0 or an errno value, and also sets errno to
 * it (the convention of shm_alloc.h):
 *   ENOENT   no live entry (missing, deleted or expired)
 *   ENOBUFS  get: the buffer is too small; *value_len says how much is
 *            needed and nothing is copied
 *   EEXIST   add: a live entry exists
 *   EAGAIN   cas: the entry changed since its version was read
 *   EINVAL   NULL cache or key, key_len 0 or > SHM_CACHE_KEY_MAX, incr on
 *            a value that is not 8 bytes, a file or name that holds no
 *            cache
 *   E2BIG    the entry can never fit one chunk of the arena
 *   ENOMEM   the arena is full and nothing is evictable
 *   EROFS    a write on a cache opened read-only
 * The library never prints, never exits and never aborts.
 *
 * Concurrency: every call except shm_cache_close may run at the same time
 * as any other, in any number of threads and processes. Each key is
 * linearizable: a get returns a complete value that some set stored, never
 * a mix, also while the writer is killed mid-set.
 */
#ifndef SHM_CACHE_H
#define SHM_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "shm_alloc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shm_cache shm_cache;

struct shm_cache_options {
    size_t capacity;       /* bytes for a new file's arena; 0: default */
    unsigned mode;         /* new file's permission bits; 0: 0600 */
    unsigned flags;        /* SHM_ARENA_* flags for the file */
    size_t expected_items; /* sizes the index at first (it grows with the
                              items); 0: derived from capacity */
};

#define SHM_CACHE_KEY_MAX 250

/*
 * Opens the cache kept in the arena file at path, creating the file (as
 * shm_arena_open) and the cache (named "default") when missing. opts may
 * be NULL. Returns the cache, or NULL with errno: the errors of
 * shm_arena_open, EINVAL (the file holds something else under the
 * cache's root), E2BIG (this build's chunks are too small to hold the
 * cache's index), ENOMEM. Concurrency: any; racing creators end with one
 * cache.
 */
SHM_API shm_cache *shm_cache_open(const char *path,
                                  const struct shm_cache_options *opts);

/*
 * The cache named `name` (1 to 37 bytes) in an arena the caller opened,
 * created when missing (opts->expected_items sizes it; the other fields
 * are ignored). The arena must outlive the cache handle. Returns NULL
 * with errno: EINVAL (NULL arena, a bad name, a root of that name that is
 * not a cache), E2BIG, ENOMEM, ENOSPC (no free root), EROFS (a read-only
 * arena holding no such cache). Concurrency: any.
 */
SHM_API shm_cache *shm_cache_attach(shm_arena *arena, const char *name,
                                    const struct shm_cache_options *opts);

/* Releases the handle (and the arena, when shm_cache_open opened it);
 * the entries stay in the file. 0 or an errno value. NULL: 0.
 * Concurrency: no other call on this handle. */
SHM_API int shm_cache_close(shm_cache *cache);

/* The arena holding the cache. Concurrency: any. */
SHM_API shm_arena *shm_cache_arena(shm_cache *cache);

/*
 * Stores value under key, replacing any entry; ttl_seconds 0 means no
 * expiry. When the arena is full, expired entries are evicted first, then
 * approximately least recently used ones, a few at a time. 0, or EINVAL,
 * E2BIG, ENOMEM, EROFS. Concurrency: any.
 */
SHM_API int shm_cache_set(shm_cache *c, const void *key, size_t key_len,
                          const void *value, size_t value_len,
                          uint32_t ttl_seconds);

/* As shm_cache_set, only when no live entry exists (EEXIST otherwise). */
SHM_API int shm_cache_add(shm_cache *c, const void *key, size_t key_len,
                          const void *value, size_t value_len,
                          uint32_t ttl_seconds);

/* As shm_cache_set, only when a live entry exists (ENOENT otherwise). */
SHM_API int shm_cache_replace(shm_cache *c, const void *key, size_t key_len,
                              const void *value, size_t value_len,
                              uint32_t ttl_seconds);

/*
 * Copies the value of key into buf and its length into *value_len.
 * ENOENT (no live entry), ENOBUFS (buf_size too small: *value_len says
 * what is needed, nothing is copied), EINVAL. buf may be NULL when
 * buf_size is 0, to learn the length: ENOBUFS then, unless the value is
 * empty. Concurrency: any; it writes no
 * shared cache line but its own thread's slot and, once per entry and
 * eviction round, the entry's recently-used bit.
 */
SHM_API int shm_cache_get(shm_cache *c, const void *key, size_t key_len,
                          void *buf, size_t buf_size, size_t *value_len);

/* As shm_cache_get, and *version receives the entry's version, for
 * shm_cache_cas. */
SHM_API int shm_cache_gets(shm_cache *c, const void *key, size_t key_len,
                           void *buf, size_t buf_size, size_t *value_len,
                           uint64_t *version);

/*
 * Zero-copy read: finds the live entry of key and points view->value at
 * its value in the mapping (view->value_len, view->version as gets), with
 * no copy. The value stays valid and unchanged until shm_cache_view_end,
 * or until the calling thread's next call on c, which ends the view
 * (a thread holds one view of a cache at a time); a set or delete by
 * anyone meanwhile replaces the entry, not the bytes the view reads. 0,
 * ENOENT (no live entry; the view is empty), EINVAL, EROFS (a read-only
 * handle has no slot to guard the view with: use shm_cache_get). A view
 * left open holds back the reclamation of that one entry, no more.
 * Concurrency: as shm_cache_get.
 */
struct shm_cache_view {
    const void *value;
    size_t value_len;
    uint64_t version;
};
SHM_API int shm_cache_view(shm_cache *c, const void *key, size_t key_len,
                           struct shm_cache_view *view);

/* Ends the calling thread's view of c (nothing when it holds none); the
 * value it pointed to may then be freed at any time. */
SHM_API void shm_cache_view_end(shm_cache *c, struct shm_cache_view *view);

/* Stores value under key only if the live entry still has `version`:
 * 0, EAGAIN (it changed, or was deleted: ENOENT when none is live), or the
 * errors of shm_cache_set. */
SHM_API int shm_cache_cas(shm_cache *c, const void *key, size_t key_len,
                          const void *value, size_t value_len,
                          uint32_t ttl_seconds, uint64_t version);

/* Removes the entry of key: 0, ENOENT (none was live), EINVAL, EROFS. */
SHM_API int shm_cache_delete(shm_cache *c, const void *key, size_t key_len);

/*
 * Adds delta to the 8-byte signed integer stored under key (in the
 * machine's byte order), storing `initial` when no live entry exists;
 * *result (may be NULL) receives the new value. No update is lost under
 * concurrency. The ttl applies when the entry is created. 0, EINVAL (a
 * value that is not 8 bytes), ENOMEM, EROFS.
 */
SHM_API int shm_cache_incr(shm_cache *c, const void *key, size_t key_len,
                           int64_t delta, int64_t initial, uint32_t ttl_seconds,
                           int64_t *result);

/*
 * Calls visit for every live entry (a snapshot per bucket, not of the
 * cache: entries set during the walk may or may not be seen). Stops at
 * the first nonzero return of visit and returns it; 0 after the last.
 * The pointers are valid during the call only. visit must not call back
 * into the cache.
 */
SHM_API int shm_cache_foreach(shm_cache *c,
                              int (*visit)(const void *key, size_t key_len,
                                           const void *value, size_t value_len,
                                           void *ctx),
                              void *ctx);

struct shm_cache_stats {
    uint64_t items;        /* live entries (expired ones not yet removed
                              count until they are) */
    uint64_t hits, misses; /* gets that found a live entry, and not */
    uint64_t sets;         /* successful set, add, replace, cas, incr */
    uint64_t deletes;      /* successful deletes */
    uint64_t evictions;    /* entries removed to make room */
    uint64_t expirations;  /* expired entries removed */
    size_t bytes;          /* bytes of keys and values of the items */
    size_t memory;         /* every arena byte the cache holds: entries,
                              index, its metadata, retired memory not yet
                              reclaimed */
    uint64_t buckets;      /* buckets of the index in use: one per item,
                              the index grows with the items */
};

/* Fills *stats; 0 or EINVAL. A snapshot; writes nothing. */
SHM_API int shm_cache_stats(shm_cache *c, struct shm_cache_stats *stats);

/*
 * Recovers now what threads of dead processes held in the cache: their
 * updates in flight are finished or undone, their slots freed, and what
 * they had retired is freed once readers allow. This also happens by
 * itself when a thread takes a slot and when reclamation meets a dead
 * reader. *recovered (may be NULL) receives how many slots were
 * recovered. 0, EINVAL, EROFS. Concurrency: any.
 */
SHM_API int shm_cache_recover(shm_cache *c, unsigned *recovered);

#ifdef __cplusplus
}
#endif

#endif /* SHM_CACHE_H */
