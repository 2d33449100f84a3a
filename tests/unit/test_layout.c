/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests of the file layout and superblock validation (src/layout.c):
 * tiers add up to the configured size range, parts do not overlap and sit
 * inside the file, data is aligned, metadata stays small, and every kind
 * of damaged superblock is refused with the right errno.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hint_index.h"
#include "layout.h"

#define PAGE 4096u

static void tiers_cover_the_size_range(void **state)
{
    (void)state;
    struct shmi_layout l;
    assert_int_equal(shmi_layout_compute(64u << 20, PAGE, &l), 0);
    unsigned levels = (SHMI_WORD_ROWS - l.top_first_row) + 5 * (l.tiers - 1);
    assert_int_equal(levels, SHMI_CLASSES);
    assert_true(l.tiers >= 1 && l.tiers <= SHMI_MAX_TIERS);
    /* the bottom row of the last tier is the smallest chunk */
    assert_int_equal(l.span_log2[l.tiers - 1] - 5, SHM_MIN_ALLOC_POW2);
    /* every class sits on an allocatable row of its tier */
    for (unsigned c = 0; c < SHMI_CLASSES; c++) {
        unsigned t = l.class_tier[c], r = l.class_row[c];
        assert_true(r >= (t == 0 ? l.top_first_row : 1) && r <= 5);
        assert_int_equal(l.span_log2[t] - r, SHM_MIN_ALLOC_POW2 + c);
    }
}

static void parts_are_ordered_and_aligned(void **state)
{
    (void)state;
    const uint64_t capacities[] = {PAGE * 4,  1u << 20, 3u << 20,
                                   64u << 20, 1u << 30, UINT64_C(1) << 40};
    for (size_t i = 0; i < sizeof capacities / sizeof capacities[0]; i++) {
        uint64_t cap = shmi_layout_round_capacity(capacities[i], PAGE);
        struct shmi_layout l;
        assert_int_equal(shmi_layout_compute(cap, PAGE, &l), 0);
        assert_true(sizeof(struct shmi_superblock) <= l.header_offset);
        assert_true(l.header_offset + SHMI_SHARED_HEADER_SIZE <=
                    l.index_offset);
        assert_true(l.index_offset + 8 * l.index_words <= l.words_offset);
        assert_true(l.words_offset + 8 * l.total_words == l.cont_offset);
        assert_true(l.cont_offset + 8 * l.cont_words == l.metadata_end);
        assert_true(l.cont_words ==
                    (SHM_TRIM ? ((cap >> SHM_MIN_ALLOC_POW2) + 63) / 64 : 0));
        assert_true(l.metadata_end <= l.data_offset);
        assert_int_equal(l.data_offset % PAGE, 0);
        assert_int_equal(l.data_offset % (UINT64_C(1) << SHM_MAX_ALLOC_POW2),
                         0);
        assert_int_equal(l.file_size, l.data_offset + cap);
        /* indexes fit their region */
        for (unsigned t = 0; t < l.tiers; t++)
            for (unsigned r = (t ? 1 : l.top_first_row); r < 6; r++)
                assert_true(l.hint_index_at[t][r] +
                                shmi_layout_index_words(l.tier_words[t]) <=
                            l.index_words);
    }
}

static void metadata_is_small(void **state)
{
    (void)state;
    struct shmi_layout l;
    assert_int_equal(shmi_layout_compute(64u << 20, PAGE, &l), 0);
    uint64_t meta = l.metadata_end;
    print_message("metadata: %llu bytes for %llu (%.2f%%)\n",
                  (unsigned long long)meta, (unsigned long long)l.capacity,
                  100.0 * (double)meta / (double)l.capacity);
    /* DESIGN: at MIN = 5 the metadata is within 2% of the capacity, 2.5%
     * with the continuation bitmap of trimming (1/256 of it) */
    if (SHM_MIN_ALLOC_POW2 >= 5)
        assert_true(meta * (SHM_TRIM ? 40 : 50) <= l.capacity);
}

static void bad_capacities(void **state)
{
    (void)state;
    struct shmi_layout l;
    assert_int_equal(shmi_layout_compute(0, PAGE, &l), EINVAL);
    assert_int_equal(shmi_layout_compute(PAGE + 8, PAGE, &l), EINVAL);
    assert_int_equal(shmi_layout_compute(SHMI_MAX_CAPACITY * 2, PAGE, &l),
                     EINVAL);
    assert_int_equal(shmi_layout_compute(1u << 20, 1000, &l), EINVAL);
    assert_int_equal(shmi_layout_round_capacity(SHMI_MAX_CAPACITY + 1, PAGE),
                     0);
    assert_int_equal(shmi_layout_round_capacity(0, PAGE) % PAGE, 0);
}

static void superblock_validation(void **state)
{
    (void)state;
    struct shmi_layout l, got;
    assert_int_equal(shmi_layout_compute(1u << 20, PAGE, &l), 0);
    struct shmi_superblock good, sb;
    shmi_superblock_fill(&good, &l, 1000, 0, 0);
    assert_int_equal(shmi_superblock_validate(&good, l.file_size, PAGE, &got),
                     0);
    assert_int_equal(got.file_size, l.file_size);

    sb = good;
    sb.magic[0] = 'X';
    assert_int_equal(shmi_superblock_validate(&sb, l.file_size, PAGE, &got),
                     EPROTO);
    sb = good;
    sb.version++;
    assert_int_equal(shmi_superblock_validate(&sb, l.file_size, PAGE, &got),
                     EPROTO);
    sb = good;
    sb.fingerprint ^= 1;
    assert_int_equal(shmi_superblock_validate(&sb, l.file_size, PAGE, &got),
                     EPROTO);
    sb = good;
    sb.max_alloc_pow2++;
    assert_int_equal(shmi_superblock_validate(&sb, l.file_size, PAGE, &got),
                     EPROTO);
    assert_int_equal(
        shmi_superblock_validate(&good, l.file_size, PAGE * 4, &got), EPROTO);
    /* ours, but damaged or truncated */
    assert_int_equal(
        shmi_superblock_validate(&good, l.file_size - 1, PAGE, &got), EBADMSG);
    sb = good;
    sb.capacity = UINT64_MAX;
    assert_int_equal(shmi_superblock_validate(&sb, l.file_size, PAGE, &got),
                     EBADMSG);
    sb = good;
    sb.capacity = 0;
    assert_int_equal(shmi_superblock_validate(&sb, l.file_size, PAGE, &got),
                     EBADMSG);
    sb = good;
    sb.capacity *= 2; /* consistent with nothing else */
    assert_int_equal(shmi_superblock_validate(&sb, UINT64_MAX, PAGE, &got),
                     EBADMSG);
    sb = good;
    sb.data_offset += PAGE;
    assert_int_equal(shmi_superblock_validate(&sb, l.file_size, PAGE, &got),
                     EBADMSG);
    sb = good;
    sb.words_offset = 8;
    assert_int_equal(shmi_superblock_validate(&sb, l.file_size, PAGE, &got),
                     EBADMSG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tiers_cover_the_size_range),
        cmocka_unit_test(parts_are_ordered_and_aligned),
        cmocka_unit_test(metadata_is_small),
        cmocka_unit_test(bad_capacities),
        cmocka_unit_test(superblock_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
