/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The heaps the benchmark compares, behind one table of operations.
 *
 * A chunk is named by a 64-bit reference, 0 meaning "none": the offset
 * shm_alloc and Boost hand out (any process turns it into an address with
 * its own base), or the pointer glibc malloc and OSSP mm return (mm's pool
 * is mapped before fork, so a pointer means the same in every process).
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

#include <errno.h>
#include <mm.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

struct heap {
    void *impl; /* shm_arena *, MM * or struct bench_boost * */
    unsigned char *base;
    size_t capacity;
    size_t start_free; /* free bytes reported right after creation */
    char path[256];
};

struct heap_ops {
    const char *name;  /* on the command line and in the results */
    const char *title; /* in the report */
    /* Has a capacity (fill runs apply) and is shared by forked processes. */
    bool shared;
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

#endif /* BENCH_HEAPS_H */
