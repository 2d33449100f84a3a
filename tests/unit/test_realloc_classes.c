/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm_realloc between every pair of size classes of the build (derived
 * from get_shm_min/max_allocatable_size, so the test covers every range
 * CI builds): a shrink stays in place and frees exactly the bytes it no
 * longer needs, also when the new size lives in a deeper tier of words;
 * a grow keeps the contents; the trees stay consistent and everything
 * comes back when the chunks are freed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/scratch.h"

static unsigned char stamp(shm_offt off, size_t i)
{
    return (unsigned char)((off >> 4) ^ (i * 131u) ^ 0xA5);
}

static void fill(unsigned char *base, shm_offt off, size_t n)
{
    for (size_t i = 0; i < n; i++)
        base[off + i] = stamp(off, i);
}

/* The first n bytes of `now` are what was written at `was`. */
static void assert_kept(const unsigned char *base, shm_offt was, shm_offt now,
                        size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (base[now + i] != stamp(was, i))
            fail_msg("byte %zu of the chunk changed", i);
}

/* One resize of a fresh chunk of `from` bytes to `to` bytes (to_request
 * asks for it: 0 for the smallest class). */
static void resize_once(shm_arena *a, size_t from, size_t to, size_t to_request)
{
    unsigned char *base = shm_arena_base(a);
    shm_offt off = shm_arena_malloc(a, from);
    assert_true(off != SHM_NULL);
    fill(base, off, from);
    size_t before = shm_arena_available(a);
    shm_offt now = shm_arena_realloc(a, off, to_request);
    if (now == SHM_NULL)
        fail_msg("realloc %zu -> %zu failed", from, to);
    if (shm_arena_usable_size(a, now) != to)
        fail_msg("realloc %zu -> %zu: usable %zu", from, to,
                 shm_arena_usable_size(a, now));
    size_t after = shm_arena_available(a);
    if (to <= from) {
        assert_true(now == off);
        if (after != before + (from - to))
            fail_msg("shrink %zu -> %zu freed %zd bytes", from, to,
                     (ssize_t)(after - before));
    } else if (before - after != to - from) {
        fail_msg("grow %zu -> %zu took %zd bytes", from, to,
                 (ssize_t)(before - after));
    }
    assert_kept(base, off, now, to < from ? to : from);
    assert_int_equal(shm_arena_check(a), 0);
    shm_arena_free(a, now);
}

static void every_pair_of_classes(void **state)
{
    (void)state;
    size_t min = get_shm_min_allocatable_size();
    size_t max = get_shm_max_allocatable_size();
    shm_arena *a = scratch_arena("classes.shm", 8 * max);
    assert_non_null(a);
    size_t capacity = shm_arena_available(a);
    int pairs = 0;
    for (size_t from = min; from <= max; from *= 2) {
        for (size_t to = min; to <= max; to *= 2) {
            resize_once(a, from, to, to);
            assert_int_equal(shm_arena_available(a), capacity);
            pairs++;
        }
        resize_once(a, from, min, 0); /* realloc to 0 bytes */
    }
    size_t classes = (size_t)__builtin_ctzll(max) - __builtin_ctzll(min) + 1;
    assert_int_equal(pairs, classes * classes);
    assert_int_equal(shm_arena_check(a), 0);
    shm_arena_close(a);
}

/* Shrunk chunks are chunks like any other: many of them, shrunk across
 * tiers next to each other, freed in another order. */
static void shrunk_chunks_free_cleanly(void **state)
{
    (void)state;
    size_t min = get_shm_min_allocatable_size();
    size_t max = get_shm_max_allocatable_size();
    shm_arena *a = scratch_arena("shrunk.shm", 8 * max);
    assert_non_null(a);
    size_t capacity = shm_arena_available(a);
    enum { N = 8 };
    shm_offt chunks[N];
    for (int i = 0; i < N; i++) {
        chunks[i] = shm_arena_malloc(a, max);
        assert_true(chunks[i] != SHM_NULL);
        assert_true(shm_arena_realloc(a, chunks[i], min) == chunks[i]);
    }
    assert_int_equal(shm_arena_available(a), capacity - N * min);
    assert_int_equal(shm_arena_check(a), 0);
    for (int i = N - 1; i >= 0; i -= 2)
        shm_arena_free(a, chunks[i]);
    for (int i = 0; i < N; i += 2)
        shm_arena_free(a, chunks[i]);
    assert_int_equal(shm_arena_available(a), capacity);
    /* and the whole arena can be taken in chunks of the largest size */
    for (int i = 0; i < N; i++)
        assert_true(shm_arena_malloc(a, max) != SHM_NULL);
    assert_int_equal(shm_arena_check(a), 0);
    shm_arena_close(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_pair_of_classes),
        cmocka_unit_test(shrunk_chunks_free_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
