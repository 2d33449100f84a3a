/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests of the hint index (src/hint_index.c): set/clear/find against
 * a plain bitmap model, summary invariant I1 after every operation, stale
 * summaries and out-of-range bits (a damaged file) handled, and
 * concurrent set/clear from threads leaving I1 intact.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hint_index.h"

struct fixture {
    struct shmi_index index;
    shmi_atomic_word *storage;
    uint64_t bits;
};

static struct fixture make(uint64_t bits)
{
    struct fixture f;
    f.bits = bits;
    uint64_t words = shmi_layout_index_words(bits);
    f.storage = calloc(words ? words : 1, sizeof *f.storage);
    assert_non_null(f.storage);
    shmi_index_bind(&f.index, f.storage, bits);
    return f;
}

/* I1: a summary bit is set iff the word below it is nonzero. */
static void assert_summaries_exact(const struct fixture *f)
{
    const struct shmi_index *ix = &f->index;
    uint64_t words = (f->bits + 63) / 64;
    for (unsigned level = 0; level + 1 < ix->levels; level++) {
        for (uint64_t w = 0; w < words; w++) {
            uint64_t below = shmi_atomic_load_relaxed(&ix->level[level][w]);
            uint64_t above =
                shmi_atomic_load_relaxed(&ix->level[level + 1][w / 64]);
            assert_int_equal(below != 0, (above >> (w % 64)) & 1);
        }
        words = (words + 63) / 64;
    }
}

static void sizes_of_levels(void **state)
{
    (void)state;
    assert_int_equal(shmi_layout_index_words(0), 0);
    assert_int_equal(shmi_layout_index_words(1), 1);
    assert_int_equal(shmi_layout_index_words(64), 1);
    assert_int_equal(shmi_layout_index_words(65), 3);
    assert_int_equal(shmi_layout_index_words(4096), 65);
    assert_int_equal(shmi_layout_index_words(4097), 65 + 2 + 1);
    struct fixture f = make(300000);
    assert_int_equal(f.index.levels, 4);
    free(f.storage);
}

static void model_check(void **state)
{
    (void)state;
    const uint64_t sizes[] = {1, 63, 64, 65, 4095, 4096, 4097, 270000};
    unsigned seed = 99;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        struct fixture f = make(sizes[s]);
        unsigned char *model = calloc(f.bits, 1);
        for (int op = 0; op < 4000; op++) {
            uint64_t i = (uint64_t)rand_r(&seed) % f.bits;
            if (rand_r(&seed) % 2) {
                shmi_index_set(&f.index, i);
                model[i] = 1;
            } else {
                shmi_index_clear(&f.index, i);
                model[i] = 0;
            }
            assert_int_equal(shmi_index_test(&f.index, i), model[i]);
            uint64_t start = (uint64_t)rand_r(&seed) % f.bits, found;
            uint64_t expect = f.bits;
            for (uint64_t k = start; k < f.bits && expect == f.bits; k++)
                if (model[k])
                    expect = k;
            bool got = shmi_index_find_from(&f.index, start, &found);
            assert_int_equal(got, expect != f.bits);
            if (got)
                assert_int_equal(found, expect);
            /* wrapping search finds the first at/after start, else the
             * first from 0 */
            if (expect == f.bits)
                for (uint64_t k = 0; k < start && expect == f.bits; k++)
                    if (model[k])
                        expect = k;
            got = shmi_index_find(&f.index, start, &found);
            assert_int_equal(got, expect != f.bits);
            if (got)
                assert_int_equal(found, expect);
        }
        assert_summaries_exact(&f);
        free(model);
        free(f.storage);
    }
}

static void stale_summary_is_skipped_and_cleared(void **state)
{
    (void)state;
    struct fixture f = make(10000);
    shmi_index_set(&f.index, 9000);
    /* a summary left set over an empty word, as a killed clearer would */
    shmi_atomic_store_relaxed(&f.index.level[1][0], UINT64_C(1) << 3);
    uint64_t found;
    assert_true(shmi_index_find(&f.index, 0, &found));
    assert_int_equal(found, 9000);
    assert_summaries_exact(&f);
    free(f.storage);
}

static void bits_past_the_end_are_ignored(void **state)
{
    (void)state;
    struct fixture f = make(70); /* two leaf words, 58 padding bits */
    shmi_atomic_store_relaxed(&f.index.level[0][1], UINT64_C(1) << 40);
    shmi_atomic_store_relaxed(&f.index.level[1][0], UINT64_C(2));
    uint64_t found;
    assert_false(shmi_index_find(&f.index, 0, &found));
    assert_int_equal(shmi_atomic_load_relaxed(&f.index.level[0][1]), 0);
    free(f.storage);
}

struct racer {
    struct fixture *f;
    unsigned seed;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    for (int op = 0; op < 200000; op++) {
        /* few bits in few words, so summaries flip often */
        uint64_t i = ((uint64_t)rand_r(&r->seed) % 8) * 64 * 64 +
                     (uint64_t)rand_r(&r->seed) % 2;
        if (rand_r(&r->seed) % 2)
            shmi_index_set(&r->f->index, i);
        else
            shmi_index_clear(&r->f->index, i);
    }
    return NULL;
}

static void concurrent_set_and_clear_keep_summaries(void **state)
{
    (void)state;
    struct fixture f = make(8 * 64 * 64);
    pthread_t threads[4];
    struct racer racers[4];
    for (int t = 0; t < 4; t++) {
        racers[t] = (struct racer){&f, (unsigned)t + 1};
        pthread_create(&threads[t], NULL, race, &racers[t]);
    }
    for (int t = 0; t < 4; t++)
        pthread_join(threads[t], NULL);
    assert_summaries_exact(&f);
    free(f.storage);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sizes_of_levels),
        cmocka_unit_test(model_check),
        cmocka_unit_test(stale_summary_is_skipped_and_cleared),
        cmocka_unit_test(bits_past_the_end_are_ignored),
        cmocka_unit_test(concurrent_set_and_clear_keep_summaries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
