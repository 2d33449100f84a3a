/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Writes the seed corpora of the fuzz targets:
 *   make_seed ATTACH_DIR API_DIR
 * ATTACH_DIR gets a valid arena file of this build (the smallest and a
 * larger one) and a few damaged copies; API_DIR a few call sequences.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm_alloc.h"

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int spill(const char *dir, const char *name, const void *data,
                 size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len) {
        fprintf(stderr, "make_seed: cannot write %s\n", path);
        return -1;
    }
    return fclose(f);
}

/* A valid file of the given capacity, read back into memory. */
static uint8_t *valid_file(const char *dir, size_t capacity, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/.seed.shm", dir);
    unlink(path);
    struct shm_arena_options opts = {.capacity = capacity,
                                     .flags = SHM_ARENA_EXCLUSIVE};
    shm_arena *a = shm_arena_open(path, &opts);
    if (a == NULL) {
        fprintf(stderr, "make_seed: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    /* a few live chunks, so that the bitmaps are not all zero */
    for (size_t s = 1; s <= get_shm_max_allocatable_size(); s *= 4)
        (void)shm_arena_malloc(a, s);
    shm_arena_close(a);
    uint8_t *bytes = slurp(path, len);
    unlink(path);
    return bytes;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: make_seed ATTACH_DIR API_DIR\n");
        return 2;
    }
    size_t len;
    uint8_t *small = valid_file(argv[1], 1, &len);
    if (small == NULL)
        return 1;
    int err = spill(argv[1], "valid-small.shm", small, len);
    uint8_t *copy = malloc(len);
    memcpy(copy, small, len);
    copy[24] ^= 1; /* capacity */
    err |= spill(argv[1], "bad-capacity.shm", copy, len);
    err |= spill(argv[1], "truncated.shm", small, len / 2);
    free(copy);
    free(small);
    size_t big_len;
    uint8_t *big = valid_file(argv[1],
                              8 * get_shm_max_allocatable_size() +
                                  (size_t)sysconf(_SC_PAGESIZE),
                              &big_len);
    if (big == NULL)
        return 1;
    err |= spill(argv[1], "valid-larger.shm", big, big_len);
    free(big);

    /* fuzz_api: op bytes followed by their operands (see fuzz_api.c) */
    static const uint8_t alloc_free[] = {0, 10, 0, 0, 200, 1, 2, 0, 2, 1, 6};
    static const uint8_t many[] = {0, 1, 0, 0, 2, 0, 0, 3, 0, 1, 4, 4,
                                   5, 3, 0, 0, 0, 0, 0, 0, 0, 1, 6, 8,
                                   0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1};
    static const uint8_t bad[] = {3,   1,   0,   0, 0,   0,   0,   0,   0,
                                  4,   0,   7,   3, 255, 255, 255, 255, 255,
                                  255, 255, 255, 9, 0,   1,   6};
    err |= spill(argv[2], "alloc-free", alloc_free, sizeof alloc_free);
    err |= spill(argv[2], "many", many, sizeof many);
    err |= spill(argv[2], "bad", bad, sizeof bad);
    return err ? 1 : 0;
}
