/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Freeing through the public API: SHM_NULL does nothing, anything that is
 * not the start of a live allocation is refused with EINVAL and leaves the
 * arena byte for byte as it was, and shm_usable_size refuses the same
 * offsets. Run on the default arena and on an explicit one.
 */
#define _GNU_SOURCE /* setenv, mmap flags, pthread barriers */
#include "api_util.h"

static struct target global_target = {.name = "global", .global = true};
static struct target arena_target = {.name = "arena", .global = false};

static int attach(void **state)
{
    struct target *t = *state;
    target_attach(t, t->global ? "free-global.shm" : "free-arena.shm");
    return 0;
}

static int detach(void **state)
{
    target_detach(*state);
    return 0;
}

static void test_free_null_does_nothing(void **state)
{
    const struct target *t = *state;
    struct refusal r;

    shm_offt keep = t_malloc(t, 1);
    assert_int_not_equal(keep, SHM_NULL);

    refusal_begin(&r, t);
    t_free(t, SHM_NULL);
    refusal_end(&r, t, errno, 0, "free(SHM_NULL)");

    refusal_begin(&r, t);
    t_ptr_free(t, NULL);
    refusal_end(&r, t, errno, 0, "ptr_free(NULL)");

    t_free(t, keep);
    assert_int_equal(t_available(t), t_capacity(t));
}

struct bad_offset {
    const char *what;
    shm_offt off;
};

static void assert_free_refused(const struct target *t, shm_offt off,
                                const char *what)
{
    struct refusal r;
    char label[160];

    snprintf(label, sizeof label, "free(%s = %" PRIu_shm_offt ")", what, off);
    refusal_begin(&r, t);
    t_free(t, off);
    refusal_end(&r, t, errno, EINVAL, label);

    snprintf(label, sizeof label, "usable_size(%s = %" PRIu_shm_offt ")", what,
             off);
    refusal_begin(&r, t);
    size_t usable = t_usable(t, off);
    int err = errno;
    if (usable != 0)
        fail_msg("%s [%s]: %zu, expected 0", label, t->name, usable);
    refusal_end(&r, t, err, EINVAL, label);
}

static void test_free_of_what_is_not_a_live_chunk(void **state)
{
    const struct target *t = *state;
    size_t min = get_shm_min_allocatable_size();
    size_t max = get_shm_max_allocatable_size();
    shm_offt end = t_mapping_size(t);
    size_t start = t_available(t);

    /* Live: one largest chunk and one smallest, stamped. Freed: one
     * smallest (the double free) and one chunk of twice the smallest. */
    shm_offt big = t_malloc(t, max);
    shm_offt small = t_malloc(t, min);
    shm_offt gone = t_malloc(t, min);
    assert_int_not_equal(big, SHM_NULL);
    assert_int_not_equal(small, SHM_NULL);
    assert_int_not_equal(gone, SHM_NULL);
    stamp_chunk(t_addr(t, big), max, big);
    stamp_chunk(t_addr(t, small), min, small);
    t_free(t, gone);
    shm_offt gone_pair = SHM_NULL;
    if (2 * min <= max) {
        gone_pair = t_malloc(t, 2 * min);
        assert_int_not_equal(gone_pair, SHM_NULL);
        t_free(t, gone_pair);
    }

    struct bad_offset bad[40];
    size_t n = 0;
#define BAD(w, o) (bad[n++] = (struct bad_offset){(w), (o)})
    BAD("double free", gone);
    if (gone_pair != SHM_NULL) {
        BAD("double free of a merged chunk", gone_pair);
        BAD("upper half of a freed pair", gone_pair + min);
    }
    BAD("misaligned, inside the largest chunk", big + 1);
    BAD("last byte of the largest chunk", big + max - 1);
    BAD("misaligned, inside the smallest chunk", small + 1);
    BAD("middle of the smallest chunk", small + min / 2);
    BAD("last byte of the smallest chunk", small + min - 1);
    if (min < max) {
        /* Aligned like a smaller chunk, but inside a larger one. */
        BAD("second small slot of the largest chunk", big + min);
        BAD("upper half of the largest chunk", big + max / 2);
        BAD("last small slot of the largest chunk", big + max - min);
    }
    BAD("metadata, offset 1", 1);
    BAD("metadata, offset 8", 8);
    BAD("metadata, offset 64", 64);
    BAD("metadata, offset 4095", 4095);
    BAD("metadata, offset 4096", 4096);
    BAD("metadata, offset 4096 + min", 4096 + min);
    BAD("the end of the mapping", end);
    BAD("a smallest chunk past the end", (end + min) & ~(shm_offt)(min - 1));
    BAD("a largest chunk past the end", (end + 2 * max) & ~(shm_offt)(max - 1));
    BAD("1 TiB", (shm_offt)1 << 40);
    BAD("2^63", (shm_offt)1 << 63);
    BAD("UINT64_MAX", UINT64_MAX);
    BAD("UINT64_MAX rounded down to the largest size",
        UINT64_MAX & ~(shm_offt)(max - 1));
    BAD("UINT64_MAX rounded down to the smallest size",
        UINT64_MAX & ~(shm_offt)(min - 1));
#undef BAD

    for (size_t i = 0; i < n; i++)
        assert_free_refused(t, bad[i].off, bad[i].what);

    /* The live chunks are still live and intact. */
    assert_int_equal(t_usable(t, big), max);
    assert_int_equal(t_usable(t, small), min);
    assert_chunk_stamped(t_addr(t, big), max, big);
    assert_chunk_stamped(t_addr(t, small), min, small);
    t_free(t, big);
    t_free(t, small);
    assert_int_equal(t_available(t), start);
    assert_int_equal(t_check(t), 0);

    /* And once freed, they too are refused. */
    assert_free_refused(t, big, "freed largest chunk");
    assert_free_refused(t, small, "freed smallest chunk");
}

static void assert_ptr_free_refused(const struct target *t, void *p,
                                    const char *what)
{
    struct refusal r;
    char label[160];

    snprintf(label, sizeof label, "ptr_free(%s = %p)", what, p);
    refusal_begin(&r, t);
    t_ptr_free(t, p);
    refusal_end(&r, t, errno, EINVAL, label);
}

static void test_ptr_free_of_a_pointer_outside_the_mapping(void **state)
{
    const struct target *t = *state;
    size_t max = get_shm_max_allocatable_size();
    uintptr_t base = (uintptr_t)t_base(t);
    uintptr_t end = base + t_mapping_size(t);
    int on_stack = 0;
    void *on_heap = malloc(64);
    static const char in_rodata[] = "not in the arena";
    assert_non_null(on_heap);

    shm_offt keep = t_malloc(t, max);
    assert_int_not_equal(keep, SHM_NULL);
    stamp_chunk(t_addr(t, keep), max, keep);

    assert_ptr_free_refused(t, &on_stack, "a stack variable");
    assert_ptr_free_refused(t, on_heap, "a malloc'd block");
    assert_ptr_free_refused(t, (void *)in_rodata, "a string constant");
    assert_ptr_free_refused(t, (void *)(base - max), "below the mapping");
    assert_ptr_free_refused(t, (void *)(base - 1), "just below the mapping");
    assert_ptr_free_refused(t, (void *)end, "the end of the mapping");
    assert_ptr_free_refused(t, (void *)(end + max), "past the mapping");
    assert_ptr_free_refused(t, (void *)(uintptr_t)1, "address 1");
    assert_ptr_free_refused(t, (void *)UINTPTR_MAX, "UINTPTR_MAX");
    assert_ptr_free_refused(t, (void *)(base + 8), "the superblock");
    assert_ptr_free_refused(t, (uint8_t *)t_addr(t, keep) + 1,
                            "inside a live chunk");

    /* The base is SHM_NULL's address: freeing it is freeing SHM_NULL. */
    struct refusal r;
    refusal_begin(&r, t);
    t_ptr_free(t, t_base(t));
    refusal_end(&r, t, errno, 0, "ptr_free(base)");

    assert_int_equal(t_usable(t, keep), max);
    assert_chunk_stamped(t_addr(t, keep), max, keep);
    t_ptr_free(t, t_addr(t, keep));
    assert_int_equal(t_available(t), t_capacity(t));
    assert_int_equal(t_check(t), 0);
    free(on_heap);
}

#define BOTH(f)                                                                \
    cmocka_unit_test_prestate_setup_teardown(f, attach, detach,                \
                                             &global_target),                  \
        cmocka_unit_test_prestate_setup_teardown(f, attach, detach,            \
                                                 &arena_target)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_free_null_does_nothing),
        BOTH(test_free_of_what_is_not_a_live_chunk),
        BOTH(test_ptr_free_of_a_pointer_outside_the_mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
