/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What AddressSanitizer and valgrind's memcheck see of the arena
 * (src/memcheck.h), run by tests/robust/CMakeLists.txt:
 *
 *   memcheck_uaf clean   allocates, frees, reuses, flushes, and reads a
 *                        chunk another thread allocated: no report, 0
 *   memcheck_uaf write   writes into a chunk after freeing it (it sits
 *                        in the thread's cache): the tool must report it
 *   memcheck_uaf read    reads a freed chunk: the same
 *
 * The test expects the tool's error for write and read (ASan's exit code
 * or valgrind --error-exitcode) and nothing for clean.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm_alloc.h"

static shm_arena *arena;

static void *other_thread(void *arg)
{
    shm_offt *out = arg;
    *out = shm_arena_malloc(arena, 100);
    if (*out != SHM_NULL)
        memset((char *)shm_arena_base(arena) + *out, 7, 100);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    struct shm_arena_options opts = {.capacity = 1 << 20};
    unlink(argv[2]);
    arena = shm_arena_open(argv[2], &opts);
    unlink(argv[2]);
    if (arena == NULL)
        return 2;
    char *base = shm_arena_base(arena);
    shm_offt x = shm_arena_malloc(arena, 200);
    if (x == SHM_NULL)
        return 2;
    memset(base + x, 1, 200);
    shm_arena_free(arena, x);
    volatile char *p = base + x;
    if (strcmp(argv[1], "write") == 0) {
        p[64] = 2; /* after the free: reported */
        return 0;
    }
    if (strcmp(argv[1], "read") == 0)
        return p[100]; /* after the free: reported */
    if (strcmp(argv[1], "clean") != 0)
        return 2;
    /* Reused: the program's again, wholly. */
    shm_offt y = shm_arena_malloc(arena, 200);
    memset(base + y, 3, 200);
    shm_arena_free(arena, y);
    /* A chunk flushed to the bitmaps, then handed out by another thread
     * and read here. */
    shm_arena_flush_thread_cache(arena);
    shm_offt z = SHM_NULL;
    pthread_t t;
    if (pthread_create(&t, NULL, other_thread, &z) != 0 ||
        pthread_join(t, NULL) != 0 || z == SHM_NULL)
        return 2;
    int sum = 0;
    for (int i = 0; i < 100; i++)
        sum += base[z + (shm_offt)i];
    shm_arena_free(arena, z);
    shm_arena_close(arena);
    return sum == 700 ? 0 : 3;
}
