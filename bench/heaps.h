/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The heaps the benchmark compares, behind one table of operations.
 *
 * A chunk is named by a 64-bit reference, 0 meaning "none": the offset
 * shm_alloc and Boost hand out (any process turns it into an address with
 * its own base), or the pointer glibc malloc, mimalloc, jemalloc and OSSP
 * mm return (mm's pool is mapped before fork, so a pointer means the same
 * in every process).
 *
 * The functions are static and the tables constant so that a workload
 * inlined with a table's address calls the allocator directly: the time
 * measured is the allocator's, not an indirect call's.
 *
 * Included by shm_bench.c only.
 */
#ifndef BENCH_HEAPS_H
#define BENCH_HEAPS_H

#include "boost_heap.h"
#include "shm_alloc.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <mm.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct heap {
    void *impl; /* shm_arena *, MM * or struct bench_boost * */
    unsigned char *base;
    size_t capacity;
    size_t start_free; /* free bytes reported right after creation */
    char path[256];
};

struct private_lib;

struct heap_ops {
    const char *name;  /* on the command line and in the results */
    const char *title; /* in the report */
    /* Has a capacity (fill runs apply) and is shared by forked processes. */
    bool shared;
    /* NULL when threads of one process may share one handle (the xmalloc
     * and larson workloads), else why they may not. */
    const char *threads_unsafe;
    /* A library opened at start (private_lib_load, below), or NULL. */
    struct private_lib *lib;
    /* In the process that runs the workload, or in the parent before fork;
     * 0 or an errno value. */
    int (*create)(struct heap *h);
    /* In a forked child: make the heap usable there as an unrelated process
     * would (open the file again), 0 or an errno value. */
    int (*attach)(struct heap *h);
    void (*detach)(struct heap *h);
    /* Where the heap was created, after every process has released its
     * chunks: 0 when the heap is consistent and everything is free again.
     * NULL: chunks are not released one by one at the end of a run, the
     * heap is destroyed whole. */
    int (*check)(struct heap *h);
    void (*destroy)(struct heap *h);
    uint64_t (*alloc)(struct heap *h, size_t size);
    void (*release)(struct heap *h, uint64_t ref);
    unsigned char *(*addr)(const struct heap *h, uint64_t ref);
};

/* ---- shm_alloc --------------------------------------------------------- */

static int shm_heap_create(struct heap *h)
{
    struct shm_arena_options opts = {.capacity = h->capacity,
                                     .flags = SHM_ARENA_EXCLUSIVE};
    unlink(h->path);
    shm_arena *arena = shm_arena_open(h->path, &opts);
    if (arena == NULL)
        return errno;
    h->impl = arena;
    h->base = shm_arena_base(arena);
    h->start_free = shm_arena_available(arena);
    return 0;
}

static int shm_heap_attach(struct heap *h)
{
    /* The handle inherited from the parent stays as it is: the child
     * works through its own mapping of the file. */
    struct shm_arena_options opts = {.flags = SHM_ARENA_NO_CREATE};
    shm_arena *arena = shm_arena_open(h->path, &opts);
    if (arena == NULL)
        return errno;
    h->impl = arena;
    h->base = shm_arena_base(arena);
    return 0;
}

static void shm_heap_detach(struct heap *h)
{
    shm_arena_close(h->impl);
}

static int shm_heap_check(struct heap *h)
{
    if (shm_arena_check(h->impl) != 0)
        return -1;
    return shm_arena_available(h->impl) == h->start_free ? 0 : -1;
}

static void shm_heap_destroy(struct heap *h)
{
    shm_arena_close(h->impl);
    unlink(h->path);
}

static uint64_t shm_heap_alloc(struct heap *h, size_t size)
{
    return shm_arena_malloc(h->impl, size);
}

static void shm_heap_release(struct heap *h, uint64_t ref)
{
    shm_arena_free(h->impl, ref);
}

static unsigned char *shm_heap_addr(const struct heap *h, uint64_t ref)
{
    return h->base + ref;
}

static const struct heap_ops shm_heap_ops = {
    .name = "shm",
    .title = "shm_alloc",
    .shared = true,
    .create = shm_heap_create,
    .attach = shm_heap_attach,
    .detach = shm_heap_detach,
    .check = shm_heap_check,
    .destroy = shm_heap_destroy,
    .alloc = shm_heap_alloc,
    .release = shm_heap_release,
    .addr = shm_heap_addr,
};

/* ---- glibc malloc (private memory: each process has its own heap) ------ */

static int glibc_heap_create(struct heap *h)
{
    (void)h;
    return 0;
}

static int glibc_heap_attach(struct heap *h)
{
    (void)h;
    return 0;
}

static void glibc_heap_detach(struct heap *h)
{
    (void)h;
}

static int glibc_heap_check(struct heap *h)
{
    (void)h;
    return 0;
}

static void glibc_heap_destroy(struct heap *h)
{
    (void)h;
}

static uint64_t glibc_heap_alloc(struct heap *h, size_t size)
{
    (void)h;
    return (uint64_t)(uintptr_t)malloc(size);
}

static void glibc_heap_release(struct heap *h, uint64_t ref)
{
    (void)h;
    free((void *)(uintptr_t)ref);
}

static unsigned char *glibc_heap_addr(const struct heap *h, uint64_t ref)
{
    (void)h;
    return (unsigned char *)(uintptr_t)ref;
}

static const struct heap_ops glibc_heap_ops = {
    .name = "glibc",
    .title = "glibc malloc",
    .shared = false,
    .create = glibc_heap_create,
    .attach = glibc_heap_attach,
    .detach = glibc_heap_detach,
    .check = glibc_heap_check,
    .destroy = glibc_heap_destroy,
    .alloc = glibc_heap_alloc,
    .release = glibc_heap_release,
    .addr = glibc_heap_addr,
};

/* ---- OSSP mm (its pool must exist before fork) ------------------------- */

static int mm_heap_create(struct heap *h)
{
    unlink(h->path);
    MM *mm = mm_create(h->capacity, h->path);
    if (mm == NULL)
        return ENOMEM;
    h->impl = mm;
    return 0;
}

static int mm_heap_attach(struct heap *h)
{
    (void)h;
    return 0;
}

static void mm_heap_detach(struct heap *h)
{
    (void)h;
}

static void mm_heap_destroy(struct heap *h)
{
    mm_destroy(h->impl);
}

static uint64_t mm_heap_alloc(struct heap *h, size_t size)
{
    return (uint64_t)(uintptr_t)mm_malloc(h->impl, size);
}

static void mm_heap_release(struct heap *h, uint64_t ref)
{
    mm_free(h->impl, (void *)(uintptr_t)ref);
}

static unsigned char *mm_heap_addr(const struct heap *h, uint64_t ref)
{
    (void)h;
    return (unsigned char *)(uintptr_t)ref;
}

static const struct heap_ops mm_heap_ops = {
    .name = "mm",
    .title = "OSSP mm",
    .shared = true,
    /* Debian builds mm with fcntl record locks, which belong to a process:
     * a second thread of the process holding the lock gets it too. */
    .threads_unsafe = "its lock (an fcntl record lock) does not exclude "
                      "threads of one process",
    .create = mm_heap_create,
    .attach = mm_heap_attach,
    .detach = mm_heap_detach,
    /* mm keeps its free list sorted by address, so freeing a hundred
     * thousand chunks one by one at the end of a run takes quadratic time
     * (seconds) that nobody measures. */
    .check = NULL,
    .destroy = mm_heap_destroy,
    .alloc = mm_heap_alloc,
    .release = mm_heap_release,
    .addr = mm_heap_addr,
};

/* ---- Boost.Interprocess managed_mapped_file ----------------------------- */

static int boost_heap_create(struct heap *h)
{
    bench_boost_remove(h->path);
    struct bench_boost *b = bench_boost_create(h->path, h->capacity);
    if (b == NULL)
        return ENOMEM;
    h->impl = b;
    h->base = bench_boost_base(b);
    return 0;
}

static int boost_heap_attach(struct heap *h)
{
    /* As for shm_alloc: the inherited mapping is left alone. */
    struct bench_boost *b = bench_boost_open(h->path);
    if (b == NULL)
        return ENOENT;
    h->impl = b;
    h->base = bench_boost_base(b);
    return 0;
}

static void boost_heap_detach(struct heap *h)
{
    bench_boost_close(h->impl);
}

static int boost_heap_check(struct heap *h)
{
    return bench_boost_all_free(h->impl) ? 0 : -1;
}

static void boost_heap_destroy(struct heap *h)
{
    bench_boost_close(h->impl);
    bench_boost_remove(h->path);
}

static uint64_t boost_heap_alloc(struct heap *h, size_t size)
{
    unsigned char *p = bench_boost_malloc(h->impl, size);
    return p == NULL ? 0 : (uint64_t)(p - h->base);
}

static void boost_heap_release(struct heap *h, uint64_t ref)
{
    bench_boost_free(h->impl, h->base + ref);
}

static unsigned char *boost_heap_addr(const struct heap *h, uint64_t ref)
{
    return h->base + ref;
}

static const struct heap_ops boost_heap_ops = {
    .name = "boost",
    .title = "Boost.Interprocess",
    .shared = true,
    .create = boost_heap_create,
    .attach = boost_heap_attach,
    .detach = boost_heap_detach,
    .check = boost_heap_check,
    .destroy = boost_heap_destroy,
    .alloc = boost_heap_alloc,
    .release = boost_heap_release,
    .addr = boost_heap_addr,
};

/* ---- mimalloc and jemalloc (private memory, opened with dlopen) ---------
 *
 * Both libraries define malloc and free themselves. Linked into shm_bench,
 * the dynamic linker would bind every malloc of the process to the first
 * library that defines it: the glibc heap, the benchmark's own tables and
 * libstdc++ would all run on mimalloc or jemalloc, and the "glibc" figures
 * would not be glibc's. So neither is linked; each is opened with
 *
 *   dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND)
 *
 * RTLD_LOCAL keeps its symbols out of the global scope, so the process's
 * malloc stays glibc's; RTLD_DEEPBIND binds the library's calls to its own
 * exported names (jemalloc calls its public malloc and free in places) to
 * itself rather than to glibc. libstdc++, which jemalloc needs, is already
 * loaded (Boost) and keeps glibc's malloc. The heap calls the library
 * through pointers from dlsym: mimalloc's prefixed API (mi_malloc,
 * mi_free); Debian's jemalloc has no prefix, so its "malloc" and "free" are
 * looked up in its own handle. A glibc call through the PLT is an indirect
 * jump as well, so no heap pays more for the call.
 *
 * private_lib_load checks once that each pointer is served by the library
 * meant and that glibc's malloc is still glibc's: mimalloc's
 * mi_is_in_heap_region claims its chunk and not glibc's; jemalloc's
 * per-thread count of allocated bytes (mallctl "thread.allocated") grows
 * with its malloc and not with glibc's; glibc's bytes in use (mallinfo2)
 * grow with glibc's malloc and not with either library's.
 *
 * jemalloc's thread-local data (2.6 KB, initial-exec model) is more than
 * the static TLS glibc keeps for libraries opened later; its dlopen fails
 * unless the process started with a larger reserve, which shm_bench then
 * gets by running itself again with GLIBC_TUNABLES set
 * (exec_with_static_tls in shm_bench.c).
 *
 * The paths come from CMake (BENCH_MIMALLOC_PATH, BENCH_JEMALLOC_PATH);
 * without them the heap is reported unavailable and skipped.
 */

struct private_lib {
    const char *name;
    const char *path;    /* NULL: not found when shm_bench was built */
    const char *package; /* the Debian package that provides it */
    void *handle;
    void *(*alloc)(size_t);
    void (*release)(void *);
    bool (*mi_is_in_heap_region)(const void *p);
    int (*mallctl)(const char *name, void *old, size_t *oldlen, void *new_value,
                   size_t newlen);
};

#ifndef BENCH_MIMALLOC_PATH
#define BENCH_MIMALLOC_PATH NULL
#endif
/* A sanitizer's runtime takes over malloc and aborts on RTLD_DEEPBIND. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BENCH_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define BENCH_SANITIZED 1
#endif
#endif
#ifndef BENCH_SANITIZED
#define BENCH_SANITIZED 0
#endif
#ifndef BENCH_JEMALLOC_PATH
#define BENCH_JEMALLOC_PATH NULL
#endif

static struct private_lib mimalloc_lib = {
    .name = "mimalloc",
    .path = BENCH_MIMALLOC_PATH,
    .package = "libmimalloc-dev",
};

static struct private_lib jemalloc_lib = {
    .name = "jemalloc",
    .path = BENCH_JEMALLOC_PATH,
    .package = "libjemalloc-dev",
};

/* dlsym's result as a function pointer (ISO C has no cast between the two;
 * POSIX guarantees the representations agree). */
static bool private_sym(void *handle, const char *name, void *fn, size_t size)
{
    void *sym = dlsym(handle, name);
    if (sym == NULL)
        return false;
    memcpy(fn, &sym, size);
    return true;
}

static size_t glibc_in_use(void)
{
    return mallinfo2().uordblks;
}

static uint64_t jemalloc_thread_allocated(struct private_lib *lib)
{
    uint64_t v = 0;
    size_t len = sizeof v;
    if (lib->mallctl("thread.allocated", &v, &len, NULL, 0) != 0)
        return UINT64_MAX;
    return v;
}

/* Which allocator serves lib->alloc and glibc's malloc: true when each is
 * the one meant; *why says what was checked or what failed. */
static bool private_lib_verify(struct private_lib *lib, const char **why)
{
    /* Above glibc's thread cache and below its mmap threshold: a glibc
     * malloc of this size takes bytes from an arena, which mallinfo2
     * counts as in use. */
    enum { PROBE = 40000 };
    size_t before = glibc_in_use();
    uint64_t je0 = lib->mallctl ? jemalloc_thread_allocated(lib) : 0;
    unsigned char *mine = lib->alloc(PROBE);
    size_t after_mine = glibc_in_use();
    uint64_t je1 = lib->mallctl ? jemalloc_thread_allocated(lib) : 0;
    unsigned char *theirs = malloc(PROBE);
    size_t after_theirs = glibc_in_use();
    uint64_t je2 = lib->mallctl ? jemalloc_thread_allocated(lib) : 0;
    bool ok = mine != NULL && theirs != NULL;
    *why = "an allocation failed";
    if (ok && after_mine >= before + PROBE) {
        ok = false;
        *why = "glibc's bytes in use grew with the library's malloc";
    } else if (ok && after_theirs < after_mine + PROBE) {
        ok = false;
        *why = "glibc's bytes in use did not grow with glibc's malloc";
    } else if (ok && lib->mi_is_in_heap_region != NULL) {
        ok = lib->mi_is_in_heap_region(mine) &&
             !lib->mi_is_in_heap_region(theirs);
        *why = ok ? "mi_is_in_heap_region and mallinfo2 agree"
                  : "mi_is_in_heap_region disowns its chunk or claims glibc's";
    } else if (ok && lib->mallctl != NULL) {
        ok = je0 != UINT64_MAX && je1 - je0 >= PROBE && je2 == je1;
        *why = ok ? "jemalloc's thread.allocated and mallinfo2 agree"
                  : "jemalloc's thread.allocated does not follow its malloc";
    } else if (ok) {
        ok = false;
        *why = "no way to ask the library what it owns";
    }
    free(theirs);
    if (mine != NULL)
        lib->release(mine);
    return ok;
}

/* Opens lib and checks which allocator serves its calls; true when it is
 * usable. msg says what was checked, or why the heap cannot be used. */
static bool private_lib_load(struct private_lib *lib, char *msg, size_t len)
{
    if (lib->path == NULL) {
        snprintf(msg, len,
                 "not found when shm_bench was built (apt-get install %s, "
                 "then configure again)",
                 lib->package);
        return false;
    }
    if (BENCH_SANITIZED) {
        snprintf(msg, len,
                 "not measured in a sanitizer build (its runtime "
                 "replaces malloc and refuses RTLD_DEEPBIND)");
        return false;
    }
    void *h = dlopen(lib->path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (h == NULL) {
        snprintf(msg, len, "dlopen: %s", dlerror());
        return false;
    }
    bool mi = lib == &mimalloc_lib;
    bool ok = private_sym(h, mi ? "mi_malloc" : "malloc", &lib->alloc,
                          sizeof lib->alloc) &&
              private_sym(h, mi ? "mi_free" : "free", &lib->release,
                          sizeof lib->release);
    if (ok && mi)
        ok = private_sym(h, "mi_is_in_heap_region", &lib->mi_is_in_heap_region,
                         sizeof lib->mi_is_in_heap_region);
    else if (ok)
        ok = private_sym(h, "mallctl", &lib->mallctl, sizeof lib->mallctl);
    if (!ok) {
        snprintf(msg, len, "%s lacks a function the benchmark calls",
                 lib->path);
        dlclose(h);
        return false;
    }
    const char *why;
    /* Left open when the check fails: the probe's chunk may remain. */
    if (!private_lib_verify(lib, &why)) {
        snprintf(msg, len, "%s does not serve the calls as meant: %s",
                 lib->path, why);
        return false;
    }
    lib->handle = h;
    snprintf(msg, len, "%s serves the %s heap, glibc still serves malloc (%s)",
             lib->path, lib->name, why);
    return true;
}

static uint64_t mimalloc_heap_alloc(struct heap *h, size_t size)
{
    (void)h;
    return (uint64_t)(uintptr_t)mimalloc_lib.alloc(size);
}

static void mimalloc_heap_release(struct heap *h, uint64_t ref)
{
    (void)h;
    mimalloc_lib.release((void *)(uintptr_t)ref);
}

static uint64_t jemalloc_heap_alloc(struct heap *h, size_t size)
{
    (void)h;
    return (uint64_t)(uintptr_t)jemalloc_lib.alloc(size);
}

static void jemalloc_heap_release(struct heap *h, uint64_t ref)
{
    (void)h;
    jemalloc_lib.release((void *)(uintptr_t)ref);
}

/* Private memory as glibc's: nothing to create, check or destroy. */
static const struct heap_ops mimalloc_heap_ops = {
    .name = "mimalloc",
    .title = "mimalloc",
    .shared = false,
    .lib = &mimalloc_lib,
    .create = glibc_heap_create,
    .attach = glibc_heap_attach,
    .detach = glibc_heap_detach,
    .check = glibc_heap_check,
    .destroy = glibc_heap_destroy,
    .alloc = mimalloc_heap_alloc,
    .release = mimalloc_heap_release,
    .addr = glibc_heap_addr,
};

static const struct heap_ops jemalloc_heap_ops = {
    .name = "jemalloc",
    .title = "jemalloc",
    .shared = false,
    .lib = &jemalloc_lib,
    .create = glibc_heap_create,
    .attach = glibc_heap_attach,
    .detach = glibc_heap_detach,
    .check = glibc_heap_check,
    .destroy = glibc_heap_destroy,
    .alloc = jemalloc_heap_alloc,
    .release = jemalloc_heap_release,
    .addr = glibc_heap_addr,
};

#endif /* BENCH_HEAPS_H */
