/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm_arena_block_usage: the bytes in use per block of 2^MAX bytes match
 * the live allocations placed in each block, sum to capacity minus
 * shm_arena_available, fall back to zero when everything is freed, count
 * only the part of a last block below the capacity, and refuse bad
 * arguments with EINVAL without writing anything.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "shm_alloc.h"

#define MIN_LOG2 SHM_MIN_ALLOC_POW2
#define MAX_LOG2 SHM_MAX_ALLOC_POW2
#define BLOCK ((size_t)1 << MAX_LOG2)

static char arena_path[4096];

static shm_arena *open_fresh(const char *name, size_t capacity)
{
    const char *dir = getenv("SHM_TEST_DIR");
    snprintf(arena_path, sizeof arena_path, "%s/%s", dir && *dir ? dir : "/tmp",
             name);
    unlink(arena_path);
    struct shm_arena_options opts = {.capacity = capacity};
    shm_arena *arena = shm_arena_open(arena_path, &opts);
    assert_non_null(arena);
    return arena;
}

static size_t block_count(shm_arena *a)
{
    return (shm_arena_capacity(a) + BLOCK - 1) / BLOCK;
}

static size_t data_start(shm_arena *a)
{
    return shm_arena_mapping_size(a) - shm_arena_capacity(a);
}

/* xorshift64*: reproducible from the printed seed. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * UINT64_C(2685821657736338717);
}

static uint64_t test_seed(void)
{
    const char *text = getenv("SHM_TEST_SEED");
    if (text && *text)
        return strtoull(text, NULL, 0);
    return (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
}

static void assert_usage(shm_arena *a, const uint64_t *expected, size_t blocks,
                         uint64_t seed)
{
    uint32_t *used = calloc(blocks, sizeof *used);
    assert_non_null(used);
    assert_int_equal(shm_arena_block_usage(a, 0, blocks, used), 0);
    uint64_t total = 0;
    for (size_t b = 0; b < blocks; b++) {
        if (used[b] != expected[b])
            fail_msg("block %zu: %u bytes in use, expected %llu (seed %llu)", b,
                     used[b], (unsigned long long)expected[b],
                     (unsigned long long)seed);
        total += used[b];
    }
    assert_int_equal(total, shm_arena_capacity(a) - shm_arena_available(a));
    /* A window in the middle reads the same numbers. */
    if (blocks > 2) {
        assert_int_equal(shm_arena_block_usage(a, 1, blocks - 2, used), 0);
        for (size_t b = 1; b + 1 < blocks; b++)
            assert_int_equal(used[b - 1], expected[b]);
    }
    free(used);
}

static void usage_follows_allocations(void **state)
{
    (void)state;
    uint64_t seed = test_seed();
    uint64_t rng = seed | 1;
    print_message("seed %llu (SHM_TEST_SEED to repeat)\n",
                  (unsigned long long)seed);
    /* 16 blocks, or 1 MiB of chunks when blocks are small. */
    size_t capacity = BLOCK >= 16384 ? 16 * BLOCK : (size_t)1 << 20;
    shm_arena *a = open_fresh("usage.shm", capacity);
    size_t blocks = block_count(a);
    size_t start = data_start(a);
    uint64_t *expected = calloc(blocks, sizeof *expected);
    assert_non_null(expected);
    assert_usage(a, expected, blocks, seed);

    enum { N = 2000 };
    shm_offt *live = calloc(N, sizeof *live);
    assert_non_null(live);
    for (size_t i = 0; i < N; i++) {
        unsigned log2 = MIN_LOG2 + (unsigned)(next_random(&rng) %
                                              (MAX_LOG2 - MIN_LOG2 + 1));
        size_t size = ((size_t)1 << log2) - next_random(&rng) % 3;
        live[i] = shm_arena_malloc(a, size);
        if (live[i] == SHM_NULL) {
            assert_int_equal(errno, ENOMEM);
            continue;
        }
        expected[(live[i] - start) / BLOCK] +=
            shm_arena_usable_size(a, live[i]);
    }
    assert_usage(a, expected, blocks, seed);

    /* Free a random half. */
    for (size_t i = 0; i < N; i++) {
        if (live[i] == SHM_NULL || next_random(&rng) % 2)
            continue;
        expected[(live[i] - start) / BLOCK] -=
            shm_arena_usable_size(a, live[i]);
        shm_arena_free(a, live[i]);
        live[i] = SHM_NULL;
    }
    assert_usage(a, expected, blocks, seed);

    for (size_t i = 0; i < N; i++)
        shm_arena_free(a, live[i]);
    memset(expected, 0, blocks * sizeof *expected);
    assert_usage(a, expected, blocks, seed);
    assert_int_equal(shm_arena_check(a), 0);
    assert_int_equal(shm_arena_available(a), shm_arena_capacity(a));
    free(live);
    free(expected);
    assert_int_equal(shm_arena_close(a), 0);
    unlink(arena_path);
}

/* A full block reads as 2^MAX, and a read-only view of the same file
 * reads the same numbers. */
static void full_block_and_read_only_view(void **state)
{
    (void)state;
    shm_arena *a =
        open_fresh("full.shm", 4 * BLOCK < 65536 ? 65536 : 4 * BLOCK);
    shm_offt off = shm_arena_malloc(a, BLOCK);
    assert_int_not_equal(off, SHM_NULL);
    size_t b = (off - data_start(a)) / BLOCK;
    uint32_t used = 0;
    assert_int_equal(shm_arena_block_usage(a, b, 1, &used), 0);
    assert_int_equal(used, BLOCK);

    struct shm_arena_options ro = {.flags = SHM_ARENA_READ_ONLY |
                                            SHM_ARENA_NO_CREATE};
    shm_arena *view = shm_arena_open(arena_path, &ro);
    assert_non_null(view);
    used = 0;
    assert_int_equal(shm_arena_block_usage(view, b, 1, &used), 0);
    assert_int_equal(used, BLOCK);
    assert_int_equal(shm_arena_close(view), 0);

    shm_arena_free(a, off);
    assert_int_equal(shm_arena_block_usage(a, b, 1, &used), 0);
    assert_int_equal(used, 0);
    assert_int_equal(shm_arena_close(a), 0);
    unlink(arena_path);
}

/* When a block is larger than a page, a capacity of two blocks and a page
 * leaves a last block cut short: it counts as empty when nothing is in it
 * and as the page when that is allocated. */
static void last_block_cut_by_the_capacity(void **state)
{
    (void)state;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (BLOCK <= page || page < ((size_t)1 << MIN_LOG2)) {
        skip();
        return;
    }
    shm_arena *a = open_fresh("cut.shm", 2 * BLOCK + page);
    assert_int_equal(shm_arena_capacity(a), 2 * BLOCK + page);
    assert_int_equal(block_count(a), 3);
    uint32_t used[3] = {1, 1, 1};
    assert_int_equal(shm_arena_block_usage(a, 0, 3, used), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(used[i], 0);
    /* Fill everything that is left with chunks of a page. */
    size_t taken = 0;
    while (shm_arena_malloc(a, page) != SHM_NULL)
        taken += page;
    assert_int_equal(taken, 2 * BLOCK + page);
    assert_int_equal(shm_arena_block_usage(a, 0, 3, used), 0);
    assert_int_equal(used[0], BLOCK);
    assert_int_equal(used[1], BLOCK);
    assert_int_equal(used[2], page);
    assert_int_equal(shm_arena_close(a), 0);
    unlink(arena_path);
}

static void bad_arguments_are_refused(void **state)
{
    (void)state;
    shm_arena *a = open_fresh("bad.shm", 65536);
    size_t blocks = block_count(a);
    uint32_t used[2] = {7, 7};
    assert_int_equal(shm_arena_block_usage(NULL, 0, 1, used), EINVAL);
    assert_int_equal(shm_arena_block_usage(a, 0, 1, NULL), EINVAL);
    assert_int_equal(shm_arena_block_usage(a, blocks, 1, used), EINVAL);
    assert_int_equal(shm_arena_block_usage(a, blocks - 1, 2, used), EINVAL);
    assert_int_equal(shm_arena_block_usage(a, 1, SIZE_MAX, used), EINVAL);
    assert_int_equal(shm_arena_block_usage(a, SIZE_MAX, 1, used), EINVAL);
    assert_int_equal(used[0], 7);
    assert_int_equal(used[1], 7);
    /* Nothing asked, nothing written. */
    assert_int_equal(shm_arena_block_usage(a, blocks, 0, NULL), 0);
    assert_int_equal(shm_arena_close(a), 0);
    unlink(arena_path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(usage_follows_allocations),
        cmocka_unit_test(full_block_and_read_only_view),
        cmocka_unit_test(last_block_cut_by_the_capacity),
        cmocka_unit_test(bad_arguments_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
