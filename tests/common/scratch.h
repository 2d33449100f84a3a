/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Scratch files for tests: every test has its own directory in
 * $SHM_TEST_DIR (tests/CMakeLists.txt), /tmp when run by hand.
 */
#ifndef SHM_TEST_SCRATCH_H
#define SHM_TEST_SCRATCH_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "shm_alloc.h"

/* The path of `name` in the test's scratch directory. */
static inline void scratch_path(char *buf, size_t size, const char *name)
{
    const char *dir = getenv("SHM_TEST_DIR");
    snprintf(buf, size, "%s/%s", dir && *dir ? dir : "/tmp", name);
}

/* A new arena of `capacity` bytes in the scratch directory, its file
 * already unlinked (the mapping keeps it alive); NULL on failure. */
static inline shm_arena *scratch_arena(const char *name, size_t capacity)
{
    char path[4096];
    scratch_path(path, sizeof path, name);
    unlink(path);
    struct shm_arena_options opts = {.capacity = capacity};
    shm_arena *arena = shm_arena_open(path, &opts);
    unlink(path);
    return arena;
}

/* A cmocka fixture: a fresh arena file in the scratch directory. */
struct fixture {
    char path[512];
    shm_arena *arena;
};

/* Setup for a group state: opens prefix-N.shm (N counts the calls) with
 * `capacity` bytes. Returns 0, or -1 when the open fails. */
static inline int fixture_setup(void **state, const char *prefix,
                                size_t capacity)
{
    static int counter;
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    char name[64];
    snprintf(name, sizeof name, "%s-%d.shm", prefix, counter++);
    scratch_path(f->path, sizeof f->path, name);
    unlink(f->path);
    struct shm_arena_options opts = {.capacity = capacity};
    f->arena = shm_arena_open(f->path, &opts);
    if (f->arena == NULL) {
        fprintf(stderr, "open %s failed\n", f->path);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static inline int fixture_teardown(void **state)
{
    struct fixture *f = *state;
    shm_arena_close(f->arena);
    unlink(f->path);
    free(f);
    return 0;
}

#endif /* SHM_TEST_SCRATCH_H */
