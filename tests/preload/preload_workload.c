/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A program that knows nothing of shm_alloc: it uses the malloc family
 * as any program does, from several threads, and checks every byte it
 * gets. test_preload.c runs it under libshm_preload.so. Only to report
 * does it look for the library, with dlsym, and then it says how many of
 * its requests the arena served and how many bytes its run left in use.
 *
 *   preload_workload THREADS ROUNDS LEAKS
 * prints "requests R small S in_arena A leaked L delta D in_use U" and
 * exits 0, or exits 1 naming the first check that failed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm_alloc.h"

#define LIVE 64
/* malloc's alignment, which the preload keeps: it serves a request of
 * max(size, alignment, this) bytes up to 2^MAX. */
#define MALLOC_ALIGNMENT _Alignof(max_align_t)

/* The library's functions, found with dlsym (NULL without the preload):
 * the program links only its header, for the types. */
static __typeof__(shm_default_arena) *default_arena;
static __typeof__(shm_arena_base) *arena_base;
static __typeof__(shm_arena_mapping_size) *mapping_size;
static __typeof__(shm_arena_stats) *arena_stats;
static size_t largest; /* 2^MAX; 0 without the library */

static atomic_ulong requests, small, in_arena;

static void fail(const char *what)
{
    fprintf(stderr, "preload_workload: %s\n", what);
    exit(1);
}

static int is_arena(const void *p)
{
    shm_arena *a = default_arena ? default_arena() : NULL;
    if (!a)
        return 0;
    uintptr_t base = (uintptr_t)arena_base(a);
    return (uintptr_t)p >= base && (uintptr_t)p - base < mapping_size(a);
}

static void count(const void *p, size_t size, size_t alignment)
{
    atomic_fetch_add(&requests, 1);
    size_t served = size;
    if (served < alignment)
        served = alignment;
    if (served < MALLOC_ALIGNMENT)
        served = MALLOC_ALIGNMENT;
    if (served <= largest) {
        atomic_fetch_add(&small, 1);
        atomic_fetch_add(&in_arena, (unsigned long)is_arena(p));
    }
}

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

struct block {
    unsigned char *p;
    size_t size;
    unsigned char fill;
};

static void check_block(const struct block *b)
{
    for (size_t i = 0; i < b->size; i++)
        if (b->p[i] != b->fill)
            fail("a block's bytes changed while it was live");
    if (malloc_usable_size(b->p) < b->size)
        fail("malloc_usable_size is below the request");
}

/* A new block of about `size` bytes made by one of the family's calls. */
static void make_block(struct block *b, uint64_t *s, size_t size)
{
    size_t alignment = 1;
    switch (next(s) % 6) {
    case 0:
        b->p = malloc(size);
        break;
    case 1:
        b->p = calloc(1, size);
        if (b->p)
            for (size_t i = 0; i < size; i++)
                if (b->p[i] != 0)
                    fail("calloc returned bytes that are not zero");
        break;
    case 2: {
        alignment = (size_t)16 << next(s) % 8; /* 16..2048 */
        void *p = NULL;
        if (posix_memalign(&p, alignment, size) != 0)
            p = NULL;
        b->p = p;
        break;
    }
    case 3:
        alignment = (size_t)64 << next(s) % 7; /* 64..4096 */
        size = (size + alignment - 1) & ~(alignment - 1);
        b->p = aligned_alloc(alignment, size);
        break;
    case 4: { /* grown by realloc from a small start */
        b->p = malloc(8);
        if (b->p) {
            memset(b->p, 0x5a, 8);
            unsigned char *q = realloc(b->p, size);
            if (q && memcmp(q, "\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a",
                            size < 8 ? size : 8) != 0)
                fail("realloc lost the bytes it moved");
            b->p = q;
        }
        break;
    }
    default: {
        char text[64];
        size = 1 + next(s) % 60;
        memset(text, 'a', size - 1);
        text[size - 1] = '\0';
        b->p = (unsigned char *)strdup(text);
        break;
    }
    }
    if (!b->p)
        fail("a request failed");
    if (((uintptr_t)b->p & (alignment - 1)) != 0 || ((uintptr_t)b->p & 15) != 0)
        fail("a block is not aligned as asked");
    count(b->p, size, alignment);
    b->size = size;
    b->fill = (unsigned char)next(s);
    memset(b->p, b->fill, size);
}

static unsigned rounds;

static void *work(void *arg)
{
    uint64_t s = 0x9e3779b97f4a7c15u ^ (uintptr_t)arg;
    struct block live[LIVE] = {{0}};
    for (unsigned r = 0; r < rounds; r++) {
        for (unsigned i = 0; i < LIVE; i++) {
            struct block *b = &live[next(&s) % LIVE];
            if (b->p) {
                check_block(b);
                free(b->p);
            }
            /* Mostly small sizes, a few past the arena's largest chunk. */
            size_t size =
                next(&s) % 16 == 0 ? 1 + next(&s) % 20000 : 1 + next(&s) % 1024;
            make_block(b, &s, size);
        }
    }
    for (unsigned i = 0; i < LIVE; i++)
        if (live[i].p) {
            check_block(&live[i]);
            free(live[i].p);
        }
    return NULL;
}

static void *idle(void *arg)
{
    return arg;
}

static size_t in_use(void)
{
    struct shm_stats st;
    shm_arena *a = default_arena ? default_arena() : NULL;
    return a && arena_stats(a, &st) == 0 ? st.bytes_in_use : 0;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        fail("usage: preload_workload THREADS ROUNDS LEAKS");
    setvbuf(stdout, NULL, _IONBF, 0); /* no buffer to allocate */
    unsigned threads = (unsigned)atoi(argv[1]);
    rounds = (unsigned)atoi(argv[2]);
    unsigned leaks = (unsigned)atoi(argv[3]);
    *(void **)&default_arena = dlsym(RTLD_DEFAULT, "shm_default_arena");
    *(void **)&arena_base = dlsym(RTLD_DEFAULT, "shm_arena_base");
    *(void **)&mapping_size = dlsym(RTLD_DEFAULT, "shm_arena_mapping_size");
    *(void **)&arena_stats = dlsym(RTLD_DEFAULT, "shm_arena_stats");
    __typeof__(get_shm_max_allocatable_size) *max_size;
    *(void **)&max_size = dlsym(RTLD_DEFAULT, "get_shm_max_allocatable_size");
    if (default_arena &&
        (!arena_base || !mapping_size || !arena_stats || !max_size))
        fail("the library is there in part");
    largest = max_size ? max_size() : 0;

    pthread_t t[64];
    if (threads > 64)
        threads = 64;
    /* glibc keeps a joined thread's stack, and with it a block it
     * allocated for the thread's TLS, for the next thread: threads made
     * and joined first have those blocks in use before the count. */
    for (unsigned i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, idle, NULL) != 0)
            fail("pthread_create");
    for (unsigned i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    size_t before = in_use();
    for (unsigned i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, work, (void *)(uintptr_t)(i + 1)) != 0)
            fail("pthread_create");
    work(NULL);
    for (unsigned i = 0; i < threads; i++)
        pthread_join(t[i], NULL);

    /* What the run leaves allocated on purpose, counted as the arena
     * counts it. */
    size_t leaked = 0;
    for (unsigned i = 0; i < leaks; i++) {
        char *p = malloc(1 + i % 700);
        if (!p)
            fail("a leak's malloc failed");
        memset(p, 'L', 1 + i % 700);
        if (is_arena(p))
            leaked += malloc_usable_size(p);
    }
    size_t after = in_use();
    printf("requests %lu small %lu in_arena %lu leaked %zu delta %zd "
           "in_use %zu\n",
           atomic_load(&requests), atomic_load(&small), atomic_load(&in_arena),
           leaked, (ssize_t)(after - before), after);
    return 0;
}
