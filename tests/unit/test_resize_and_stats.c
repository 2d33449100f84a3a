/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm_arena_realloc (in place when it can, moved otherwise, old chunk
 * intact on failure), statistics (the census partitions the free space;
 * the largest free chunk really is the largest a malloc gets), and the
 * error handler (a message per refused call, nothing printed).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/scratch.h"

#include "arena.h"
#include "tree.h"

#define MIN_CHUNK ((size_t)1 << SHM_MIN_ALLOC_POW2)
#define MAX_CHUNK ((size_t)1 << SHM_MAX_ALLOC_POW2)

static void fill(shm_arena *a, shm_offt off, size_t n, unsigned char seed)
{
    unsigned char *p = (unsigned char *)shm_arena_base(a) + off;
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 7);
}

static int same(shm_arena *a, shm_offt off, size_t n, unsigned char seed)
{
    unsigned char *p = (unsigned char *)shm_arena_base(a) + off;
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 7))
            return 0;
    return 1;
}

static void realloc_grows_and_shrinks_in_place(void **state)
{
    (void)state;
    shm_arena *a = scratch_arena("resize.shm", 1 << 20);
    assert_non_null(a);
    size_t avail = shm_arena_available(a);
    shm_offt off = shm_arena_malloc(a, MIN_CHUNK);
    /* The chunks a thread-cache refill took with it go back: the buddies
     * are free in the bitmaps. */
    assert_int_equal(shm_arena_flush_thread_cache(a), 0);
    fill(a, off, MIN_CHUNK, 1);
    /* a fresh arena has the buddies free: growing stays put */
    size_t grow_to = MIN_CHUNK * 2 <= MAX_CHUNK ? MIN_CHUNK * 2 : MIN_CHUNK;
    shm_offt grown = shm_arena_realloc(a, off, grow_to);
    assert_int_equal(grown, off);
    assert_int_equal(shm_arena_usable_size(a, off), grow_to);
    assert_true(same(a, off, MIN_CHUNK, 1));
    /* shrinking gives the tail back */
    shm_offt shrunk = shm_arena_realloc(a, off, 1);
    assert_int_equal(shrunk, off);
    assert_int_equal(shm_arena_usable_size(a, off), MIN_CHUNK);
    assert_int_equal(shm_arena_available(a), avail - MIN_CHUNK);
    assert_true(same(a, off, MIN_CHUNK, 1));
    shm_arena_free(a, off);
    assert_int_equal(shm_arena_available(a), avail);
    assert_int_equal(shm_arena_check(a), 0);
    shm_arena_close(a);
}

static void realloc_moves_when_the_buddy_is_taken(void **state)
{
    (void)state;
    if (MIN_CHUNK == MAX_CHUNK) {
        skip();
        return;
    }
    shm_arena *a = scratch_arena("move.shm", 4 * MAX_CHUNK);
    assert_non_null(a);
    size_t avail = shm_arena_available(a);
    shm_offt first = shm_arena_malloc(a, MIN_CHUNK);
    assert_int_equal(shm_arena_flush_thread_cache(a), 0); /* as above */
    shm_offt buddy = shm_arena_malloc(a, MIN_CHUNK);
    assert_int_equal(shm_arena_flush_thread_cache(a), 0);
    assert_int_equal(buddy, first + MIN_CHUNK); /* leftmost-first policy */
    fill(a, first, MIN_CHUNK, 9);
    shm_offt moved = shm_arena_realloc(a, first, MAX_CHUNK);
    assert_true(moved != SHM_NULL && moved != first);
    assert_true(same(a, moved, MIN_CHUNK, 9));
    assert_int_equal(shm_arena_usable_size(a, moved), MAX_CHUNK);
    errno = 0;
    assert_int_equal(shm_arena_usable_size(a, first), 0); /* freed */
    assert_int_equal(errno, EINVAL);
    shm_arena_free(a, moved);
    shm_arena_free(a, buddy);
    assert_int_equal(shm_arena_available(a), avail);
    shm_arena_close(a);
}

static void realloc_failures_leave_the_chunk(void **state)
{
    (void)state;
    shm_arena *a = scratch_arena("refuse.shm", 1 << 20);
    assert_non_null(a);
    shm_offt off = shm_arena_realloc(a, SHM_NULL, MIN_CHUNK); /* malloc */
    assert_true(off != SHM_NULL);
    fill(a, off, MIN_CHUNK, 3);
    size_t avail = shm_arena_available(a);
    errno = 0;
    assert_int_equal(shm_arena_realloc(a, off, MAX_CHUNK + 1), SHM_NULL);
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    assert_int_equal(shm_arena_realloc(a, off + MIN_CHUNK / 2, 8), SHM_NULL);
    assert_int_equal(errno, EINVAL);
    assert_true(same(a, off, MIN_CHUNK, 3));
    assert_int_equal(shm_arena_available(a), avail);
    /* arena full: a move fails with ENOMEM and the chunk stays */
    while (shm_arena_malloc(a, MIN_CHUNK) != SHM_NULL)
        ;
    if (MIN_CHUNK < MAX_CHUNK) {
        errno = 0;
        assert_int_equal(shm_arena_realloc(a, off, MAX_CHUNK), SHM_NULL);
        assert_int_equal(errno, ENOMEM);
        assert_true(same(a, off, MIN_CHUNK, 3));
    }
    assert_int_equal(shm_arena_check(a), 0);
    shm_arena_close(a);
}

static void census_partitions_the_free_space(void **state)
{
    (void)state;
    shm_arena *a = scratch_arena("census.shm", 1 << 20);
    assert_non_null(a);
    enum { LIVE = 1500 };
    static shm_offt live[LIVE];
    unsigned seed = 5;
    for (int round = 0; round < 20; round++) {
        for (int op = 0; op < 3000; op++) {
            int i = rand_r(&seed) % LIVE;
            if (live[i]) {
                shm_arena_free(a, live[i]);
                live[i] = 0;
            } else {
                live[i] = shm_arena_malloc(
                    a, (size_t)1 << (SHM_MIN_ALLOC_POW2 +
                                     rand_r(&seed) % SHMI_CLASSES));
            }
        }
        /* The free space where the census sees it: in the bitmaps. */
        assert_int_equal(shm_arena_flush_thread_cache(a), 0);
        struct shm_stats st;
        assert_int_equal(shm_arena_stats(a, &st), 0);
        size_t sum = 0;
        for (unsigned c = 0; c < st.classes; c++)
            sum += st.free_chunks[c] * (st.min_chunk << c);
        assert_int_equal(sum, st.bytes_free);
        assert_int_equal(st.bytes_free + st.bytes_cached + st.bytes_in_use,
                         st.capacity);
        /* the largest free chunk can be had, and nothing larger */
        if (st.largest_free) {
            shm_offt big = shm_arena_malloc(a, st.largest_free);
            assert_true(big != SHM_NULL);
            if (st.largest_free < MAX_CHUNK)
                assert_int_equal(shm_arena_malloc(a, st.largest_free * 2),
                                 SHM_NULL);
            shm_arena_free(a, big);
        }
    }
    for (int i = 0; i < LIVE; i++)
        if (live[i])
            shm_arena_free(a, live[i]);
    struct shm_stats st;
    assert_int_equal(shm_arena_stats(a, &st), 0);
    assert_int_equal(st.bytes_free + st.bytes_cached, st.capacity);
    assert_int_equal(shm_arena_flush_thread_cache(a), 0);
    assert_int_equal(shm_arena_stats(a, &st), 0);
    assert_int_equal(st.bytes_cached, 0);
    assert_int_equal(st.bytes_free, st.capacity);
    assert_int_equal(st.largest_free, MAX_CHUNK);
    assert_int_equal(st.free_chunks[st.classes - 1], st.capacity / MAX_CHUNK);
    assert_int_equal(shm_arena_stats(a, NULL), EINVAL);
    shm_arena_close(a);
}

static char last_message[256];
static int messages;

static void remember(const char *message, void *context)
{
    assert_ptr_equal(context, &messages);
    snprintf(last_message, sizeof last_message, "%s", message);
    messages++;
}

static void refused_calls_reach_the_error_handler(void **state)
{
    (void)state;
    shm_arena *a = scratch_arena("handler.shm", 1 << 20);
    assert_non_null(a);
    shm_set_error_handler(remember, &messages);
    shm_offt off = shm_arena_malloc(a, 1);
    shm_arena_free(a, off);
    assert_int_equal(messages, 0);
    errno = 0;
    shm_arena_free(a, off); /* double free */
    assert_int_equal(errno, EINVAL);
    assert_int_equal(messages, 1);
    assert_non_null(strstr(last_message, "shm_free"));
    assert_int_equal(shm_arena_malloc(a, MAX_CHUNK + 1), SHM_NULL);
    assert_int_equal(messages, 2);
    assert_int_equal(shm_arena_calloc(a, SIZE_MAX, 2), SHM_NULL);
    assert_int_equal(messages, 3);
    shm_set_error_handler(NULL, NULL);
    shm_arena_free(a, off);
    assert_int_equal(messages, 3);
    shm_arena_close(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(realloc_grows_and_shrinks_in_place),
        cmocka_unit_test(realloc_moves_when_the_buddy_is_taken),
        cmocka_unit_test(realloc_failures_leave_the_chunk),
        cmocka_unit_test(census_partitions_the_free_space),
        cmocka_unit_test(refused_calls_reach_the_error_handler),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
