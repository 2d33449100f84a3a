/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Allocation through the public API: the sizes handed out, their
 * alignment, requests that must be refused, calloc, the pointer forms,
 * filling the arena and getting every byte back.
 *
 * Every test runs twice: on the default arena (shm_malloc, ...) and on an
 * explicit one (shm_arena_malloc, ...), each on a fresh small file.
 */
#define _GNU_SOURCE /* setenv, mmap flags, pthread barriers */
#include "api_util.h"

#include <sys/stat.h>

static struct target global_target = {.name = "global", .global = true};
static struct target arena_target = {.name = "arena", .global = false};

static int attach(void **state)
{
    struct target *t = *state;
    target_attach(t, t->global ? "alloc-global.shm" : "alloc-arena.shm");
    return 0;
}

static int detach(void **state)
{
    target_detach(*state);
    return 0;
}

static size_t min_size(void)
{
    return get_shm_min_allocatable_size();
}

static size_t max_size(void)
{
    return get_shm_max_allocatable_size();
}

/* Asserts everything the contract says about a fresh allocation of n
 * bytes at off, then writes all of its bytes. */
static void assert_fresh_chunk(const struct target *t, shm_offt off, size_t n)
{
    if (off == SHM_NULL)
        fail_msg("[%s] allocation of %zu bytes failed: %s", t->name, n,
                 strerror(errno));
    size_t usable = t_usable(t, off);
    if (!usable_fits(n, usable))
        fail_msg("[%s] %zu bytes: usable size %zu, expected %zu", t->name, n,
                 usable, expected_usable(n));
    size_t align = model_node_size(n);
    if (off % align != 0)
        fail_msg("[%s] %zu bytes at offset %" PRIu_shm_offt
                 " not aligned to %zu",
                 t->name, n, off, align);
    if ((uintptr_t)t_addr(t, off) % align != 0)
        fail_msg("[%s] %zu bytes at address %p not aligned to %zu", t->name, n,
                 t_addr(t, off), align);
    /* The superblock page is never handed out, nor anything past the end. */
    assert_true(off >= (shm_offt)sysconf(_SC_PAGESIZE));
    assert_true(off + usable <= t_mapping_size(t));
    memset(t_addr(t, off), 0xa5, usable);
}

static void test_sizes_round_up_to_their_class(void **state)
{
    const struct target *t = *state;
    size_t start = t_available(t);
    size_t sizes[3 * 64 + 8];
    size_t count = 0;

    sizes[count++] = 0;
    sizes[count++] = 1;
    for (size_t p = min_size(); p <= max_size(); p <<= 1) {
        sizes[count++] = p - 1;
        sizes[count++] = p;
        if (p < max_size())
            sizes[count++] = p + 1;
    }
    for (size_t i = 0; i < count; i++) {
        shm_offt off = t_malloc(t, sizes[i]);
        assert_fresh_chunk(t, off, sizes[i]);
        assert_int_equal(t_available(t), start - t_usable(t, off));
        t_free(t, off);
        assert_int_equal(t_available(t), start);
    }
    assert_int_equal(t_check(t), 0);
}

static void test_size_zero_gives_distinct_chunks(void **state)
{
    const struct target *t = *state;
    size_t start = t_available(t);

    shm_offt a = t_malloc(t, 0);
    shm_offt b = t_malloc(t, 0);
    shm_offt c = t_calloc(t, 0, 0);
    assert_fresh_chunk(t, a, 0);
    assert_fresh_chunk(t, b, 0);
    assert_fresh_chunk(t, c, 0);
    assert_true(a != b && b != c && a != c);
    assert_int_equal(t_available(t), start - 3 * min_size());
    t_free(t, a);
    t_free(t, b);
    t_free(t, c);
    assert_int_equal(t_available(t), start);
    assert_int_equal(t_check(t), 0);
}

static void test_too_large_is_enomem_and_changes_nothing(void **state)
{
    const struct target *t = *state;
    const size_t huge[] = {
        max_size() + 1,
        2 * max_size(),
        SIZE_MAX,
        SIZE_MAX - 1,
        SIZE_MAX - 7,
        SIZE_MAX - max_size(),
        SIZE_MAX - max_size() + 1,
        SIZE_MAX / 2,
        (size_t)PTRDIFF_MAX,
        (size_t)PTRDIFF_MAX + 1,
    };
    /* A live chunk, to see that a refusal leaves it alone. */
    shm_offt keep = t_malloc(t, max_size());
    assert_fresh_chunk(t, keep, max_size());
    stamp_chunk(t_addr(t, keep), max_size(), keep);

    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        struct refusal r;
        char what[96];
        int err;

        snprintf(what, sizeof what, "malloc(%zu)", huge[i]);
        refusal_begin(&r, t);
        shm_offt off = t_malloc(t, huge[i]);
        err = errno;
        assert_int_equal(off, SHM_NULL);
        refusal_end(&r, t, err, ENOMEM, what);

        snprintf(what, sizeof what, "calloc(1, %zu)", huge[i]);
        refusal_begin(&r, t);
        off = t_calloc(t, 1, huge[i]);
        err = errno;
        assert_int_equal(off, SHM_NULL);
        refusal_end(&r, t, err, ENOMEM, what);

        snprintf(what, sizeof what, "calloc(%zu, 1)", huge[i]);
        refusal_begin(&r, t);
        off = t_calloc(t, huge[i], 1);
        err = errno;
        assert_int_equal(off, SHM_NULL);
        refusal_end(&r, t, err, ENOMEM, what);

        snprintf(what, sizeof what, "ptr_malloc(%zu)", huge[i]);
        refusal_begin(&r, t);
        void *p = t_ptr_malloc(t, huge[i]);
        err = errno;
        assert_null(p);
        refusal_end(&r, t, err, ENOMEM, what);

        snprintf(what, sizeof what, "ptr_calloc(1, %zu)", huge[i]);
        refusal_begin(&r, t);
        p = t_ptr_calloc(t, 1, huge[i]);
        err = errno;
        assert_null(p);
        refusal_end(&r, t, err, ENOMEM, what);
    }
    assert_int_equal(t_usable(t, keep), max_size());
    assert_chunk_stamped(t_addr(t, keep), max_size(), keep);
    t_free(t, keep);
    assert_int_equal(t_available(t), t_capacity(t));
}

static void test_calloc_overflow_is_enomem_in_both_orders(void **state)
{
    const struct target *t = *state;
    const size_t pairs[][2] = {
        {SIZE_MAX, 2},
        {SIZE_MAX, SIZE_MAX},
        {SIZE_MAX / 2 + 1, 2},
        {SIZE_MAX / 3 + 1, 3},
        {(size_t)1 << (sizeof(size_t) * 4), (size_t)1 << (sizeof(size_t) * 4)},
        {SIZE_MAX / max_size() + 1, max_size()},
        {(size_t)PTRDIFF_MAX, 3},
        /* no overflow, but the product is one byte too large */
        {max_size() + 1, 1},
        {(max_size() + 1) / 2 + 1, 2},
    };

    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        for (int order = 0; order < 2; order++) {
            size_t count = pairs[i][order];
            size_t size = pairs[i][1 - order];
            struct refusal r;
            char what[96];
            int err;

            snprintf(what, sizeof what, "calloc(%zu, %zu)", count, size);
            refusal_begin(&r, t);
            shm_offt off = t_calloc(t, count, size);
            err = errno;
            assert_int_equal(off, SHM_NULL);
            refusal_end(&r, t, err, ENOMEM, what);

            snprintf(what, sizeof what, "ptr_calloc(%zu, %zu)", count, size);
            refusal_begin(&r, t);
            void *p = t_ptr_calloc(t, count, size);
            err = errno;
            assert_null(p);
            refusal_end(&r, t, err, ENOMEM, what);
        }
    }
}

/* A zero count or size is a product of 0, however large the other. */
static void test_calloc_of_zero_bytes(void **state)
{
    const struct target *t = *state;
    const size_t other[] = {0, 1, max_size(), SIZE_MAX};

    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        shm_offt a = t_calloc(t, 0, other[i]);
        shm_offt b = t_calloc(t, other[i], 0);
        assert_fresh_chunk(t, a, 0);
        assert_fresh_chunk(t, b, 0);
        assert_true(a != b);
        t_free(t, a);
        t_free(t, b);
    }
    assert_int_equal(t_available(t), t_capacity(t));
    assert_int_equal(t_check(t), 0);
}

static void assert_zero(const struct target *t, shm_offt off, size_t n,
                        size_t count, size_t size)
{
    const uint8_t *p = t_addr(t, off);
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            fail_msg("[%s] calloc(%zu, %zu) at offset %" PRIu_shm_offt
                     ": byte %zu is 0x%02x",
                     t->name, count, size, off, i, p[i]);
}

/* Fills the arena with minimum chunks; returns how many, in *offs. */
static size_t fill_with_min_chunks(const struct target *t, shm_offt **offs)
{
    size_t cap = t_capacity(t) / min_size() + 1;
    size_t n = 0;
    *offs = malloc(cap * sizeof **offs);
    assert_non_null(*offs);
    for (;;) {
        errno = 0;
        shm_offt off = t_malloc(t, min_size());
        if (off == SHM_NULL) {
            assert_int_equal(errno, ENOMEM);
            break;
        }
        assert_true(n < cap);
        (*offs)[n++] = off;
    }
    return n;
}

/* Every byte of the data region is dirtied and freed first, so whatever
 * calloc hands out afterwards is a reused chunk. */
static void test_calloc_zeroes_reused_chunks(void **state)
{
    const struct target *t = *state;
    uint64_t rng = test_seed() ^ 0xca11;
    shm_offt *offs;
    size_t n = fill_with_min_chunks(t, &offs);

    for (size_t i = 0; i < n; i++)
        memset(t_addr(t, offs[i]), 0xff, min_size());
    shuffle_offsets(offs, n, &rng);
    for (size_t i = 0; i < n; i++)
        t_free(t, offs[i]);
    assert_int_equal(t_available(t), t_capacity(t));

    /* Several rounds: calloc, check zero, dirty, free half, again. */
    size_t live = 0;
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 2000 && live < n; i++) {
            size_t bytes = (size_t)rng_below(&rng, max_size() + 1);
            size_t count = 1 + (size_t)rng_below(&rng, 4);
            size_t size = bytes / count;
            shm_offt off;
            if (rng_below(&rng, 2)) {
                void *p = t_ptr_calloc(t, count, size);
                off = p ? (shm_offt)((uint8_t *)p - t_base(t)) : SHM_NULL;
            } else {
                off = t_calloc(t, count, size);
            }
            if (off == SHM_NULL) {
                assert_int_equal(errno, ENOMEM);
                break;
            }
            assert_true(usable_fits(count * size, t_usable(t, off)));
            assert_zero(t, off, count * size, count, size);
            memset(t_addr(t, off), 0xff, t_usable(t, off));
            offs[live++] = off;
        }
        shuffle_offsets(offs, live, &rng);
        for (size_t half = live / 2; live > half; live--)
            t_free(t, offs[live - 1]);
    }
    while (live > 0)
        t_free(t, offs[--live]);
    free(offs);
    assert_int_equal(t_available(t), t_capacity(t));
    assert_int_equal(t_check(t), 0);
}

struct chunk {
    shm_offt off;
    size_t size;
};

static int by_offset(const void *a, const void *b)
{
    const struct chunk *x = a, *y = b;
    return (x->off > y->off) - (x->off < y->off);
}

/* A size whose class is uniform over MIN..MAX. */
static size_t random_size(uint64_t *rng)
{
    unsigned lo = log2_size(min_size()), hi = log2_size(max_size());
    unsigned k = lo + (unsigned)rng_below(rng, hi - lo + 1);
    if (k == lo)
        return (size_t)rng_below(rng, min_size() + 1);
    size_t half = (size_t)1 << (k - 1);
    return half + 1 + (size_t)rng_below(rng, half);
}

static void test_live_chunks_never_overlap(void **state)
{
    const struct target *t = *state;
    uint64_t rng = test_seed() ^ 0x0e1a;
    size_t cap = 20000;
    struct chunk *c = malloc(cap * sizeof *c);
    size_t n = 0;
    assert_non_null(c);

    while (n < cap) {
        size_t size = random_size(&rng);
        shm_offt off = t_malloc(t, size);
        if (off == SHM_NULL) {
            assert_int_equal(errno, ENOMEM);
            break;
        }
        assert_fresh_chunk(t, off, size);
        c[n].off = off;
        c[n].size = t_usable(t, off);
        stamp_chunk(t_addr(t, off), c[n].size, off);
        n++;
    }
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++)
        assert_chunk_stamped(t_addr(t, c[i].off), c[i].size, c[i].off);
    qsort(c, n, sizeof *c, by_offset);
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        used += c[i].size;
        if (i + 1 < n && c[i].off + c[i].size > c[i + 1].off)
            fail_msg("[%s] chunks overlap: [%" PRIu_shm_offt
                     ", +%zu) and %" PRIu_shm_offt,
                     t->name, c[i].off, c[i].size, c[i + 1].off);
    }
    assert_int_equal(t_available(t), t_capacity(t) - used);
    assert_int_equal(t_check(t), 0);

    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(&rng, i);
        struct chunk tmp = c[i - 1];
        c[i - 1] = c[j];
        c[j] = tmp;
    }
    for (size_t i = 0; i < n; i++)
        t_free(t, c[i].off);
    free(c);
    assert_int_equal(t_available(t), t_capacity(t));
    assert_int_equal(t_check(t), 0);
}

static void test_pointer_forms(void **state)
{
    const struct target *t = *state;
    size_t start = t_available(t);
    size_t n = max_size() / 2 + 1;

    void *p = t_ptr_malloc(t, n);
    assert_non_null(p);
    shm_offt off = (shm_offt)((uint8_t *)p - t_base(t));
    assert_fresh_chunk(t, off, n);

    size_t count = max_size() >= 4 * min_size() ? 3 : 1;
    void *q = t_ptr_calloc(t, count, min_size());
    assert_non_null(q);
    shm_offt qoff = (shm_offt)((uint8_t *)q - t_base(t));
    assert_true(usable_fits(count * min_size(), t_usable(t, qoff)));
    assert_zero(t, qoff, count * min_size(), count, min_size());

    if (t->global) {
        /* The old API's conversions work on the default arena. */
        assert_ptr_equal(SHM_OFFT_TO_ADDR(off), p);
        assert_int_equal(SHM_ADDR_TO_OFFT(q), qoff);
    }
    assert_int_equal(t_available(t),
                     start - t_usable(t, off) - t_usable(t, qoff));
    t_ptr_free(t, p);
    t_ptr_free(t, q);
    assert_int_equal(t_available(t), start);

    /* Chunks from the offset API go back through ptr_free and the other
     * way round. */
    off = t_malloc(t, 1);
    assert_fresh_chunk(t, off, 1);
    t_ptr_free(t, t_addr(t, off));
    p = t_ptr_malloc(t, 1);
    assert_non_null(p);
    t_free(t, (shm_offt)((uint8_t *)p - t_base(t)));
    assert_int_equal(t_available(t), start);
    assert_int_equal(t_check(t), 0);
}

/* A quiescent arena: filling it with the smallest chunks uses every byte,
 * and once they are all back the largest chunk is available again. */
static void test_fill_then_free_everything(void **state)
{
    const struct target *t = *state;
    uint64_t rng = test_seed() ^ 0xf111;
    size_t start = t_available(t);
    shm_offt *offs;
    size_t n = fill_with_min_chunks(t, &offs);

    assert_int_equal(n * min_size(), start);
    assert_int_equal(t_available(t), 0);
    assert_int_equal(t_check(t), 0);
    errno = 0;
    assert_int_equal(t_malloc(t, 0), SHM_NULL);
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    assert_int_equal(t_calloc(t, 1, 1), SHM_NULL);
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    assert_null(t_ptr_malloc(t, 1));
    assert_int_equal(errno, ENOMEM);

    shuffle_offsets(offs, n, &rng);
    for (size_t i = 0; i < n; i++)
        t_free(t, offs[i]);
    assert_int_equal(t_available(t), start);
    assert_int_equal(t_check(t), 0);

    /* Everything merged back: the arena holds capacity / max largest
     * chunks, no fewer. */
    size_t m = 0;
    for (;;) {
        errno = 0;
        shm_offt off = t_malloc(t, max_size());
        if (off == SHM_NULL) {
            assert_int_equal(errno, ENOMEM);
            break;
        }
        offs[m++] = off;
    }
    assert_int_equal(m, start / max_size());
    assert_int_equal(t_available(t), 0);
    for (size_t i = 0; i < m; i++)
        t_free(t, offs[i]);
    free(offs);
    assert_int_equal(t_available(t), start);
    assert_int_equal(t_check(t), 0);
}

/*
 * Buddies: with every second minimum chunk free, no chunk of twice the
 * minimum exists and the request fails although half the arena is free;
 * free one buddy and that exact pair is handed out. Then free every
 * chunk of one block of the largest size: that block is what a request
 * of the largest size gets.
 */
static void test_free_chunks_merge_with_their_buddies(void **state)
{
    const struct target *t = *state;
    uint64_t rng = test_seed() ^ 0xb0dd;
    size_t min = min_size(), max = max_size();
    if (min == max)
        skip();

    shm_offt *offs;
    size_t n = fill_with_min_chunks(t, &offs);
    size_t live = 0;
    for (size_t i = 0; i < n; i++) {
        if (offs[i] & min)
            t_free(t, offs[i]);
        else
            offs[live++] = offs[i];
    }
    assert_int_equal(live * 2, n);
    assert_int_equal(t_available(t), t_capacity(t) / 2);
    assert_int_equal(t_check(t), 0);

    errno = 0;
    assert_int_equal(t_malloc(t, 2 * min), SHM_NULL);
    assert_int_equal(errno, ENOMEM);
    shm_offt one = t_malloc(t, min);
    assert_fresh_chunk(t, one, min);
    assert_true(one & min);
    t_free(t, one);

    size_t pick = (size_t)rng_below(&rng, live);
    shm_offt lower = offs[pick];
    offs[pick] = offs[--live];
    t_free(t, lower);
    shm_offt pair = t_malloc(t, 2 * min);
    assert_int_equal(pair, lower);
    assert_int_equal(t_usable(t, pair), 2 * min);
    offs[live++] = pair;

    /* Empty one whole block of the largest size. */
    shm_offt block = offs[rng_below(&rng, live)] & ~(shm_offt)(max - 1);
    size_t kept = 0;
    for (size_t i = 0; i < live; i++) {
        if ((offs[i] & ~(shm_offt)(max - 1)) == block)
            t_free(t, offs[i]);
        else
            offs[kept++] = offs[i];
    }
    errno = 0;
    assert_int_equal(t_malloc(t, max), block);
    offs[kept++] = block;
    errno = 0;
    assert_int_equal(t_malloc(t, max), SHM_NULL);
    assert_int_equal(errno, ENOMEM);

    for (size_t i = 0; i < kept; i++)
        t_free(t, offs[i]);
    free(offs);
    assert_int_equal(t_available(t), t_capacity(t));
    assert_int_equal(t_check(t), 0);
}

static bool is_power_of_two(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

static void test_getters(void **state)
{
    const struct target *t = *state;
    struct stat st;

    assert_int_equal(get_sizeof_block_header(), 0);
    assert_true(is_power_of_two(min_size()));
    assert_true(is_power_of_two(max_size()));
    assert_true(min_size() >= 8);
    assert_true(min_size() <= max_size());

    assert_non_null(t_base(t));
    assert_true(t_mapping_size(t) >= t_capacity(t));
    assert_int_equal(stat(t->path, &st), 0);
    assert_int_equal((size_t)st.st_size, t_mapping_size(t));
    assert_int_equal(shm_mapping_size_for_capacity(t_capacity(t)),
                     t_mapping_size(t));

    if (t->global) {
        shm_arena *a = shm_default_arena();
        assert_non_null(a);
        assert_ptr_equal(shm_arena_base(a), get_shm_user_base());
        assert_int_equal(shm_arena_mapping_size(a),
                         get_mapping_size_needed_by_shm());
    }

    errno = 0;
    assert_int_equal(shm_mapping_size_for_capacity(SIZE_MAX), 0);
    assert_int_equal(errno, EINVAL);
}

#define BOTH(f)                                                                \
    cmocka_unit_test_prestate_setup_teardown(f, attach, detach,                \
                                             &global_target),                  \
        cmocka_unit_test_prestate_setup_teardown(f, attach, detach,            \
                                                 &arena_target)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_getters),
        BOTH(test_sizes_round_up_to_their_class),
        BOTH(test_size_zero_gives_distinct_chunks),
        BOTH(test_too_large_is_enomem_and_changes_nothing),
        BOTH(test_calloc_overflow_is_enomem_in_both_orders),
        BOTH(test_calloc_of_zero_bytes),
        BOTH(test_calloc_zeroes_reused_chunks),
        BOTH(test_live_chunks_never_overlap),
        BOTH(test_pointer_forms),
        BOTH(test_fill_then_free_everything),
        BOTH(test_free_chunks_merge_with_their_buddies),
    };
    test_seed();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
