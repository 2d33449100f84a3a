/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests of the bitmap word operations (src/word.h), checked against
 * direct definitions: a node's subtree by walking children, "free" as
 * "no set bit in the subtree" (W1/W2), the owner as the highest set node
 * on a path (W3).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "word.h"

static uint64_t subtree_by_walk(unsigned node)
{
    if (node >= 64)
        return 0;
    return (UINT64_C(1) << node) | subtree_by_walk(2 * node) |
           subtree_by_walk(2 * node + 1);
}

static int node_is_free(uint64_t word, unsigned node)
{
    return (word & subtree_by_walk(node)) == 0;
}

/* A random word satisfying W1: a few random nodes allocated. */
static uint64_t random_closed_word(unsigned *seed)
{
    uint64_t w = 0;
    unsigned count = (unsigned)rand_r(seed) % 12;
    for (unsigned i = 0; i < count; i++) {
        unsigned node = 1 + (unsigned)rand_r(seed) % 63;
        if (node_is_free(w, node))
            w |= subtree_by_walk(node);
    }
    return w;
}

static void subtree_masks_match_the_tree(void **state)
{
    (void)state;
    assert_int_equal(shmi_word_subtree(0), 0);
    for (unsigned node = 1; node < 64; node++)
        assert_true(shmi_word_subtree(node) == subtree_by_walk(node));
    assert_true(shmi_word_subtree(1) == ~UINT64_C(1));
    assert_true(shmi_word_subtree(63) == UINT64_C(1) << 63);
}

static void rows_of_nodes(void **state)
{
    (void)state;
    assert_int_equal(shmi_word_row_of(1), 0);
    assert_int_equal(shmi_word_row_of(2), 1);
    assert_int_equal(shmi_word_row_of(3), 1);
    assert_int_equal(shmi_word_row_of(31), 4);
    assert_int_equal(shmi_word_row_of(32), 5);
    assert_int_equal(shmi_word_row_of(63), 5);
}

static void path_masks_hold_one_node_per_row(void **state)
{
    (void)state;
    for (unsigned slot = 0; slot < SHMI_WORD_SLOTS; slot++) {
        uint64_t path = shmi_word_path_masks[slot];
        assert_int_equal(__builtin_popcountll(path), SHMI_WORD_ROWS);
        /* each node on it is the parent of the next one down */
        unsigned node = SHMI_WORD_FIRST_SLOT + slot;
        while (node >= 1) {
            assert_true(path >> node & 1);
            node /= 2;
        }
    }
}

static void find_free_agrees_with_definition(void **state)
{
    (void)state;
    unsigned seed = 12345;
    for (int trial = 0; trial < 20000; trial++) {
        uint64_t w = random_closed_word(&seed);
        unsigned top = SHMI_WORD_ROWS;
        for (unsigned row = 0; row < SHMI_WORD_ROWS; row++) {
            /* best fit: the leftmost free node whose buddy is in use,
             * else the leftmost free node */
            unsigned any = 0, snug = 0;
            for (unsigned n = 1u << row; n < 2u << row; n++) {
                if (!node_is_free(w, n))
                    continue;
                if (!any)
                    any = n;
                if (!snug && row > 0 && !node_is_free(w, n ^ 1))
                    snug = n;
            }
            unsigned expect = snug ? snug : any;
            assert_int_equal(shmi_word_find_free(w, row), expect);
            if (expect && top == SHMI_WORD_ROWS)
                top = row;
        }
        assert_int_equal(shmi_word_top_free_row(w), top);
    }
}

static void full_and_empty_words(void **state)
{
    (void)state;
    assert_int_equal(shmi_word_top_free_row(0), 0);
    assert_int_equal(shmi_word_top_free_row(~UINT64_C(1)), SHMI_WORD_ROWS);
    assert_int_equal(shmi_word_find_free(0, 0), 1);
    assert_int_equal(shmi_word_find_free(0, 5), 32);
    for (unsigned row = 0; row < SHMI_WORD_ROWS; row++)
        assert_int_equal(shmi_word_find_free(~UINT64_C(1), row), 0);
    /* only the last slot free: rows 0..4 full, row 5 offers node 63 */
    uint64_t w = ~UINT64_C(1) & ~(UINT64_C(1) << 63);
    assert_int_equal(shmi_word_find_free(w, 5), 63);
    assert_int_equal(shmi_word_top_free_row(w), 5);
}

static void owner_is_highest_set_node_on_path(void **state)
{
    (void)state;
    unsigned seed = 777;
    for (int trial = 0; trial < 20000; trial++) {
        uint64_t w = random_closed_word(&seed);
        unsigned first_row = (unsigned)rand_r(&seed) % SHMI_WORD_ROWS;
        uint64_t eligible = shmi_word_rows_from(first_row);
        for (unsigned slot = 0; slot < SHMI_WORD_SLOTS; slot++) {
            unsigned expect = 0;
            for (unsigned row = first_row; row < SHMI_WORD_ROWS && !expect;
                 row++) {
                unsigned n = (1u << row) + (slot >> (5 - row));
                if (w >> n & 1)
                    expect = n;
            }
            assert_int_equal(shmi_word_owner(w, slot, eligible), expect);
        }
    }
}

static void closure_check(void **state)
{
    (void)state;
    assert_true(shmi_word_is_closed(0, 1));
    assert_true(shmi_word_is_closed(shmi_word_subtree(5), 1));
    assert_false(shmi_word_is_closed(UINT64_C(1) << 5, 1));
    assert_false(shmi_word_is_closed(1, 1)); /* bit 0 must stay clear */
    /* lower-tier words: node 1 is the ACTIVE flag, not a node */
    assert_true(shmi_word_is_closed(UINT64_C(2) | shmi_word_subtree(3), 2));
    assert_false(shmi_word_is_closed(UINT64_C(2), 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(subtree_masks_match_the_tree),
        cmocka_unit_test(rows_of_nodes),
        cmocka_unit_test(path_masks_hold_one_node_per_row),
        cmocka_unit_test(find_free_agrees_with_definition),
        cmocka_unit_test(full_and_empty_words),
        cmocka_unit_test(owner_is_highest_set_node_on_path),
        cmocka_unit_test(closure_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
