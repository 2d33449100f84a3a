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

#endif /* SHM_TEST_SCRATCH_H */
