/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * White-box tests of the buddy trees (src/tree.c) on real arena files:
 * pinning past the capacity, the hint invariant T4 after random work,
 * lazy retirement giving back whole blocks, the state a process killed
 * between the two steps of an activation leaves, and threads racing.
 */
#include <pthread.h>
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
#include "hint_index.h"
#include "tree.h"
#include "tree_inspect.h"

#define ACTIVE (UINT64_C(1) << 1)
#define MIN_CHUNK ((uint64_t)1 << SHM_MIN_ALLOC_POW2)
#define MAX_CHUNK ((uint64_t)1 << SHM_MAX_ALLOC_POW2)

static shmi_atomic_word *word_of(shm_arena *a, unsigned t, uint64_t j)
{
    return shmi_tree_word(&a->geo, t, j);
}

/* T4 in a quiescent arena. */
static void assert_hints_complete(shm_arena *a)
{
    for (unsigned t = 0; t < a->geo.layout.tiers; t++) {
        for (uint64_t j = 0; j < a->geo.layout.tier_words[t]; j++) {
            uint64_t w = shmi_atomic_load_relaxed(word_of(a, t, j));
            if (t > 0 && !(w & ACTIVE))
                continue;
            for (unsigned r = t ? 1 : a->geo.layout.top_first_row; r < 6; r++)
                if (shmi_word_find_free(w, r))
                    assert_true(shmi_index_test(&a->geo.hints[t][r], j));
            if (t > 0 && w == ACTIVE)
                assert_true(shmi_index_test(&a->geo.empty[t], j));
        }
    }
}

static void capacity_not_a_whole_block_is_pinned(void **state)
{
    (void)state;
    /* one page more than a few blocks: the last block straddles */
    size_t capacity = 3 * MAX_CHUNK + 4096;
    shm_arena *a = scratch_arena("pins.shm", capacity);
    assert_non_null(a);
    uint64_t cap = a->geo.capacity;
    assert_int_equal(shmi_tree_check(&a->geo), 0);
    assert_int_equal(shmi_tree_free_bytes(&a->geo), cap);
    uint64_t count = 0, x;
    while ((x = shmi_tree_alloc(&a->geo, 0)) != SHMI_NO_CHUNK) {
        assert_true(x < cap);
        count++;
    }
    assert_int_equal(count, cap / MIN_CHUNK);
    assert_int_equal(shmi_tree_free_bytes(&a->geo), 0);
    assert_int_equal(shmi_tree_check(&a->geo), 0);
    shm_arena_close(a);
}

static void hints_stay_complete_after_random_work(void **state)
{
    (void)state;
    shm_arena *a = scratch_arena("hints.shm", 1 << 20);
    assert_non_null(a);
    enum { LIVE = 2000 };
    static uint64_t live[LIVE];
    for (int i = 0; i < LIVE; i++)
        live[i] = SHMI_NO_CHUNK;
    unsigned seed = 4242;
    for (int op = 0; op < 100000; op++) {
        int i = rand_r(&seed) % LIVE;
        if (live[i] != SHMI_NO_CHUNK) {
            assert_int_equal(shmi_tree_free(&a->geo, live[i]), 0);
            live[i] = SHMI_NO_CHUNK;
        } else {
            live[i] = shmi_tree_alloc(&a->geo,
                                      (unsigned)rand_r(&seed) % SHMI_CLASSES);
        }
        if (op % 10000 == 0)
            assert_hints_complete(a);
    }
    assert_hints_complete(a);
    assert_int_equal(shmi_tree_check(&a->geo), 0);
    for (int i = 0; i < LIVE; i++)
        if (live[i] != SHMI_NO_CHUNK)
            assert_int_equal(shmi_tree_free(&a->geo, live[i]), 0);
    assert_int_equal(shmi_tree_free_bytes(&a->geo), a->geo.capacity);
    shm_arena_close(a);
}

/* Takes every smallest chunk, then frees them all: every lower-tier word
 * is left active and empty. */
static void fill_with_smallest_then_free(shm_arena *a)
{
    uint64_t n = a->geo.capacity / MIN_CHUNK;
    uint64_t *xs = malloc(n * sizeof *xs);
    assert_non_null(xs);
    for (uint64_t i = 0; i < n; i++)
        assert_true((xs[i] = shmi_tree_alloc(&a->geo, 0)) != SHMI_NO_CHUNK);
    for (uint64_t i = 0; i < n; i++)
        assert_int_equal(shmi_tree_free(&a->geo, xs[i]), 0);
    free(xs);
}

static void emptied_words_are_retired_for_large_chunks(void **state)
{
    (void)state;
    shm_arena *a = scratch_arena("retire.shm", 1 << 20);
    assert_non_null(a);
    fill_with_smallest_then_free(a);
    /* the words stay active but count as free space */
    assert_int_equal(shmi_tree_free_bytes(&a->geo), a->geo.capacity);
    uint64_t big = 0;
    while (shmi_tree_alloc(&a->geo, SHMI_CLASSES - 1) != SHMI_NO_CHUNK)
        big++;
    assert_int_equal(big, a->geo.capacity / MAX_CHUNK);
    assert_int_equal(shmi_tree_check(&a->geo), 0);
    shm_arena_close(a);
}

static void killed_activation_leaks_one_node_and_stays_consistent(void **state)
{
    (void)state;
    if (SHMI_CLASSES <= 6) {
        skip(); /* one tier: no activation step exists */
        return;
    }
    shm_arena *a = scratch_arena("orphan.shm", 1 << 20);
    assert_non_null(a);
    uint64_t before = shmi_tree_free_bytes(&a->geo);
    /* The first step of an activation, as a killed process leaves it:
     * the parent node claimed in tier 0, the child word still 0. */
    shmi_atomic_word *top = word_of(a, 0, 0);
    uint64_t slot_bit = UINT64_C(1) << SHMI_WORD_FIRST_SLOT;
    shmi_atomic_store_relaxed(top, shmi_atomic_load_relaxed(top) | slot_bit);
    assert_int_equal(shmi_tree_check(&a->geo), 0);
    uint64_t node_bytes = UINT64_C(1) << a->geo.layout.span_log2[1];
    assert_int_equal(shmi_tree_free_bytes(&a->geo), before - node_bytes);
    /* Everything else keeps working and never hands out that node. */
    uint64_t x, count = 0;
    while ((x = shmi_tree_alloc(&a->geo, 0)) != SHMI_NO_CHUNK) {
        assert_true(x >= node_bytes);
        count++;
    }
    assert_int_equal(count, (a->geo.capacity - node_bytes) / MIN_CHUNK);
    assert_int_equal(shmi_tree_check(&a->geo), 0);
    shm_arena_close(a);
}

static void lost_hints_are_repaired(void **state)
{
    (void)state;
    shm_arena *a = scratch_arena("repair.shm", 1 << 20);
    assert_non_null(a);
    fill_with_smallest_then_free(a);
    /* As if every freeing process died before its hint updates: wipe all
     * hints. The space is free, but searches cannot see it. */
    memset(a->geo.base + a->geo.layout.index_offset, 0,
           8 * a->geo.layout.index_words);
    unsigned top_tier = a->geo.layout.class_tier[SHMI_CLASSES - 1];
    unsigned top_row = a->geo.layout.class_row[SHMI_CLASSES - 1];
    uint64_t found;
    assert_false(shmi_index_find(&a->geo.hints[top_tier][top_row], 0, &found));
    shmi_tree_repair_hints(&a->geo);
    assert_hints_complete(a);
    uint64_t big = 0;
    while (shmi_tree_alloc(&a->geo, SHMI_CLASSES - 1) != SHMI_NO_CHUNK)
        big++;
    assert_int_equal(big, a->geo.capacity / MAX_CHUNK);
    shm_arena_close(a);
}

struct worker {
    shm_arena *arena;
    unsigned seed;
    int failures;
};

static void *churn(void *arg)
{
    struct worker *w = arg;
    enum { LIVE = 256 };
    uint64_t live[LIVE];
    unsigned char stamp[LIVE];
    for (int i = 0; i < LIVE; i++)
        live[i] = SHMI_NO_CHUNK;
    uint8_t *data = w->arena->geo.base + w->arena->geo.data_offset;
    for (int op = 0; op < 100000; op++) {
        int i = rand_r(&w->seed) % LIVE;
        if (live[i] != SHMI_NO_CHUNK) {
            uint64_t size = shmi_tree_usable(&w->arena->geo, live[i]);
            if (size == 0 || data[live[i]] != stamp[i] ||
                data[live[i] + size - 1] != stamp[i])
                w->failures++;
            if (shmi_tree_free(&w->arena->geo, live[i]) != 0)
                w->failures++;
            live[i] = SHMI_NO_CHUNK;
        } else {
            unsigned c = (unsigned)rand_r(&w->seed) % SHMI_CLASSES;
            live[i] = shmi_tree_alloc(&w->arena->geo, c);
            if (live[i] != SHMI_NO_CHUNK) {
                stamp[i] = (unsigned char)rand_r(&w->seed);
                memset(data + live[i], stamp[i], MIN_CHUNK << c);
            }
        }
    }
    for (int i = 0; i < LIVE; i++)
        if (live[i] != SHMI_NO_CHUNK && shmi_tree_free(&w->arena->geo, live[i]))
            w->failures++;
    return NULL;
}

static void threads_race_on_one_arena(void **state)
{
    (void)state;
    shm_arena *a = scratch_arena("threads.shm", 4 << 20);
    assert_non_null(a);
    pthread_t threads[4];
    struct worker workers[4];
    for (int t = 0; t < 4; t++) {
        workers[t] = (struct worker){a, (unsigned)t * 31 + 7, 0};
        pthread_create(&threads[t], NULL, churn, &workers[t]);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(threads[t], NULL);
        assert_int_equal(workers[t].failures, 0);
    }
    assert_int_equal(shmi_tree_check(&a->geo), 0);
    assert_int_equal(shmi_tree_free_bytes(&a->geo), a->geo.capacity);
    assert_hints_complete(a);
    shm_arena_close(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(capacity_not_a_whole_block_is_pinned),
        cmocka_unit_test(hints_stay_complete_after_random_work),
        cmocka_unit_test(emptied_words_are_retired_for_large_chunks),
        cmocka_unit_test(killed_activation_leaks_one_node_and_stays_consistent),
        cmocka_unit_test(lost_hints_are_repaired),
        cmocka_unit_test(threads_race_on_one_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
