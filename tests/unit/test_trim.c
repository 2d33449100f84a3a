/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Chunks trimmed to the request (SHM_TRIM, src/tree.c "Trimming"): every
 * size takes its length, no more; the start of a tail piece is no
 * allocation; data survives across the pieces; frees give every piece
 * back; the density a fill reaches; realloc of a trimmed chunk, in place
 * and moved.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/scratch.h"

#include "arena.h"
#include "thread_cache.h"
#include "tree.h"

#define CAPACITY ((size_t)4 << 20)
#define MIN_CHUNK ((size_t)1 << SHM_MIN_ALLOC_POW2)
#define MAX_CHUNK ((size_t)1 << SHM_MAX_ALLOC_POW2)

static int setup(void **state)
{
    return fixture_setup(state, "trim", CAPACITY);
}

static int teardown(void **state)
{
    return fixture_teardown(state);
}

static unsigned class_of(size_t n)
{
    unsigned c = 0;
    while ((MIN_CHUNK << c) < n)
        c++;
    return c;
}

/* The length the design gives n bytes, computed from the arena's layout
 * rather than from the library's helpers: the node, or with trimming n
 * rounded up to the bottom-row node size of the class's tier (a thread
 * cache may give a longer chunk of the class when it holds one). */
static size_t length_of(shm_arena *a, size_t n)
{
    unsigned c = class_of(n);
    size_t node = MIN_CHUNK << c;
    if (!SHM_TRIM)
        return node;
    unsigned t = a->geo.layout.class_tier[c];
    size_t granule = (size_t)1 << (a->geo.layout.span_log2[t] - 5);
    size_t length = n == 0 ? granule : (n + granule - 1) / granule * granule;
    return length < node ? length : node;
}

static void fill_pattern(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 7 + (i >> 8));
}

static void assert_pattern(const uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)(seed + i * 7 + (i >> 8)))
            fail_msg("byte %zu of %zu overwritten", i, n);
}

/* A step that gives 64 sizes per power of two from n on. */
static size_t model_step(size_t n)
{
    size_t p = 1;
    while (p * 2 <= n)
        p *= 2;
    return p / 64 > 0 ? p / 64 : 1;
}

static unsigned reports;
static void count_report(const char *message, void *ctx)
{
    (void)message;
    (void)ctx;
    reports++;
}

/* Every size from 1 to 2^MAX: usable == its length, aligned to its node;
 * the bytes taken are the length; every tail piece's start (and every
 * 2^MIN unit inside the chunk) is refused by free and usable size and
 * changes nothing; the data reads back; the free gives all back. */
static void every_size_takes_its_length(void **state)
{
    struct fixture *f = *state;
    shm_arena *a = f->arena;
    shm_set_error_handler(count_report, NULL);
    size_t step = MIN_CHUNK / 2 > 0 ? MIN_CHUNK / 2 : 1;
    size_t start = shm_arena_available(a);
    unsigned trimmed = 0;
    /* Every size up to 64 chunks of 2^MIN, then 64 sizes per power of
     * two (the wide ranges would take minutes otherwise). */
    for (size_t n = 1; n <= MAX_CHUNK; n += n < 4 * MIN_CHUNK ? 1
                                            : n < 64 * MIN_CHUNK
                                                ? step
                                                : model_step(n)) {
        shm_offt off = shm_arena_malloc(a, n);
        assert_int_not_equal(off, SHM_NULL);
        size_t length = length_of(a, n);
        size_t node = MIN_CHUNK << class_of(n);
        assert_int_equal(shm_arena_usable_size(a, off), length);
        assert_int_equal(shmi_arena_chunk_size(n), length);
        assert_int_equal((off - a->geo.data_offset) % node, 0);
        assert_int_equal(shm_arena_available(a), start - length);
        trimmed += length != node;
        uint8_t *p = (uint8_t *)shm_arena_base(a) + off;
        fill_pattern(p, length, (uint8_t)n);
        /* Nothing inside the chunk but its start is an allocation: every
         * unit of a short one, the tail pieces' starts and a few units of
         * a long one. */
        size_t probes[72], nprobes = 0;
        for (size_t in = MIN_CHUNK; in < length && nprobes < 64;
             in += MIN_CHUNK)
            probes[nprobes++] = in;
        for (size_t at = 0, b = 64; b-- > 0;)
            if (length >> b & 1) {
                if (at != 0 && at >= 64 * MIN_CHUNK)
                    probes[nprobes++] = at;
                at += (size_t)1 << b;
            }
        if (length > 64 * MIN_CHUNK)
            probes[nprobes++] = length - MIN_CHUNK;
        for (size_t k = 0; k < nprobes; k++) {
            size_t in = probes[k];
            reports = 0;
            errno = 0;
            shm_arena_free(a, off + in);
            assert_int_equal(errno, EINVAL);
            assert_int_equal(reports, 1);
            errno = 0;
            assert_int_equal(shm_arena_usable_size(a, off + in), 0);
            assert_int_equal(errno, EINVAL);
            errno = 0;
            assert_int_equal(shm_arena_realloc(a, off + in, 1), SHM_NULL);
            assert_int_equal(errno, EINVAL);
        }
        assert_int_equal(shm_arena_available(a), start - length);
        assert_int_equal(shm_arena_usable_size(a, off), length);
        assert_pattern(p, length, (uint8_t)n);
        shm_arena_free(a, off);
        assert_int_equal(shm_arena_available(a), start);
    }
    shm_set_error_handler(NULL, NULL);
    assert_int_equal(shm_arena_check(a), 0);
    /* Every class above the cached ones has trimmed sizes (but those
     * whose granule is their node: the bottom row of a tier). */
    if (SHM_TRIM && SHMI_TCACHE_CLASSES < SHMI_CLASSES &&
        SHMI_CLASSES - SHMI_TCACHE_CLASSES > 1)
        assert_true(trimmed > 0);
    if (!SHM_TRIM)
        assert_int_equal(trimmed, 0);
}

/* The tail pieces of live trimmed chunks are never handed out, and the
 * free tail of their nodes is: many chunks of one trimmed size, then
 * chunks of the sizes that fit their tails, none overlapping, all data
 * intact; then all freed, the arena whole again. */
static void tails_are_free_and_pieces_are_not(void **state)
{
    struct fixture *f = *state;
    shm_arena *a = f->arena;
    size_t start = shm_arena_available(a);
    enum { COUNT = 4096 };
    static shm_offt offs[COUNT];
    static size_t lens[COUNT];
    size_t live = 0;
    uint8_t *base = (uint8_t *)shm_arena_base(a);
    /* A size of the top class just above its half: trimmed when the
     * class is not cached, and its node's tail fits smaller chunks. */
    size_t big = MAX_CHUNK / 2 + 1;
    for (unsigned round = 0; round < 8 && live < COUNT; round++) {
        size_t sizes[] = {big, big + MIN_CHUNK, MIN_CHUNK, 3 * MIN_CHUNK,
                          MAX_CHUNK / 8 + 1};
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            for (unsigned i = 0; i < 64 && live < COUNT; i++) {
                shm_offt off = shm_arena_malloc(a, sizes[s]);
                if (off == SHM_NULL)
                    break;
                lens[live] = shm_arena_usable_size(a, off);
                assert_int_equal(lens[live], length_of(a, sizes[s]));
                fill_pattern(base + off, lens[live], (uint8_t)live);
                offs[live++] = off;
            }
        }
    }
    for (size_t i = 0; i < live; i++)
        assert_pattern(base + offs[i], lens[i], (uint8_t)i);
    assert_int_equal(shm_arena_check(a), 0);
    for (size_t i = 0; i < live; i++)
        shm_arena_free(a, offs[i]);
    assert_int_equal(shm_arena_flush_thread_cache(a), 0);
    assert_int_equal(shm_arena_available(a), start);
    assert_int_equal(shm_arena_check(a), 0);
}

/* The tree's own calls: a trimmed chunk's pieces are one allocation. */
static void tree_frees_every_piece(void **state)
{
    struct fixture *f = *state;
    struct shmi_geometry *g = &f->arena->geo;
    unsigned c = SHMI_CLASSES - 1;
    uint64_t node = (uint64_t)MAX_CHUNK;
    uint64_t length = shmi_tree_trimmed_length(c, node / 2 + 1);
    uint64_t before = shm_arena_available(f->arena);
    uint64_t x = shmi_tree_alloc_trimmed(g, c, length);
    assert_int_not_equal(x, SHMI_NO_CHUNK);
    assert_int_equal(shmi_tree_usable(g, x), length);
    assert_int_equal(shm_arena_available(f->arena), before - length);
    if (length < node) {
        /* The free tail is there for others: a chunk of its size lands
         * right after the pieces when asked for. */
        uint64_t granule = UINT64_C(1) << shmi_tree_granule_log2(c);
        assert_int_equal(length % granule, 0);
        assert_int_equal(shmi_tree_free(g, x + node / 2), EINVAL);
        assert_int_equal(shmi_tree_usable(g, x + node / 2), 0);
    }
    assert_int_equal(shmi_tree_free(g, x), 0);
    assert_int_equal(shmi_tree_free(g, x), EINVAL);
    assert_int_equal(shm_arena_available(f->arena), before);
    assert_int_equal(shm_arena_check(f->arena), 0);
}

/* ln(v) for 1 <= v < 100, by bisection on exp_series. */
static double exp_series(double x);
static double ln(double v)
{
    double lo = 0, hi = 5;
    for (int i = 0; i < 60; i++) {
        double mid = (lo + hi) / 2;
        if (exp_series(mid) < v)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* e^x for 0 <= x < 5, by its series (the test links no libm). */
static double exp_series(double x)
{
    double sum = 1, term = 1;
    for (int i = 1; i < 40; i++) {
        term *= x / i;
        sum += term;
    }
    return sum;
}

/* Fill until the first failure with sizes log-uniform in 16..hi bytes:
 * the share of the capacity that requests received. */
static double fill_density(shm_arena *a, uint64_t seed, double hi)
{
    size_t cap = shm_arena_capacity(a);
    size_t max_live = cap / 16 + 1;
    shm_offt *offs = malloc(max_live * sizeof *offs);
    assert_non_null(offs);
    size_t live = 0, requested = 0;
    uint64_t s = seed;
    for (;;) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        double u = (double)(s >> 11) / (double)(1ULL << 53);
        size_t n = (size_t)(16.0 * exp_series(u * ln(hi / 16.0)));
        shm_offt off = shm_arena_malloc(a, n);
        if (off == SHM_NULL || live == max_live)
            break;
        offs[live++] = off;
        requested += n;
    }
    for (size_t i = 0; i < live; i++)
        shm_arena_free(a, offs[i]);
    free(offs);
    return (double)requested / (double)cap;
}

static void fill_reaches_its_density(void **state)
{
    struct fixture *f = *state;
    if (MAX_CHUNK < 1024) {
        skip(); /* the sizes do not fit the range */
        return;
    }
    shm_set_error_handler(count_report, NULL);
    double d = fill_density(f->arena, 12345, 1000);
    assert_int_equal(shm_arena_flush_thread_cache(f->arena), 0);
    double small = fill_density(f->arena, 54321, 512);
    shm_set_error_handler(NULL, NULL);
    print_message("fill 16..1000 B: %.1f%%, 16..512 B: %.1f%% of %zu bytes "
                  "(trim %d, cached classes %d)\n",
                  100.0 * d, 100.0 * small, shm_arena_capacity(f->arena),
                  SHM_TRIM, SHMI_TCACHE_CLASSES);
    /* Powers of two reach about 72% with these sizes. Trimmed, requests
     * of the classes in the last tier (up to 2^(MIN+4)) waste under 2^MIN
     * each; a class above it rounds to its granule (2^(MIN+5)), so the
     * default range's 1 KiB class is not trimmed. */
    assert_true(d > 0.65 && small > 0.65);
    if (SHM_TRIM && SHM_MIN_ALLOC_POW2 == 5 && SHM_MAX_ALLOC_POW2 >= 9) {
        assert_true(small >= 0.80);
        assert_true(d >= 0.76);
    }
    assert_int_equal(shm_arena_check(f->arena), 0);
}

/* realloc of a trimmed chunk: a size that fits stays in place with its
 * contents; a larger one moves them. */
static void realloc_of_a_trimmed_chunk(void **state)
{
    struct fixture *f = *state;
    shm_arena *a = f->arena;
    size_t n = MAX_CHUNK / 2 + 1;
    shm_offt off = shm_arena_malloc(a, n);
    assert_int_not_equal(off, SHM_NULL);
    size_t length = shm_arena_usable_size(a, off);
    uint8_t *base = (uint8_t *)shm_arena_base(a);
    fill_pattern(base + off, length, 9);
    assert_int_equal(shm_arena_realloc(a, off, length), off);
    assert_int_equal(shm_arena_usable_size(a, off), length);
    assert_pattern(base + off, length, 9);
    shm_offt grown = shm_arena_realloc(a, off, MAX_CHUNK);
    assert_int_not_equal(grown, SHM_NULL);
    assert_int_equal(shm_arena_usable_size(a, grown), MAX_CHUNK);
    assert_pattern(base + grown, length, 9);
    shm_arena_free(a, grown);
    assert_int_equal(shm_arena_check(a), 0);
}

static size_t in_use(shm_arena *a)
{
    struct shm_stats st;
    assert_int_equal(shm_arena_stats(a, &st), 0);
    return st.bytes_in_use;
}

/* The realloc of a chunk of the last tier's top class resized to `n`:
 * in place, its length what a malloc of n gets, the bytes in use changed
 * by the difference, its first `keep` bytes intact, the file checked. */
static void resize_in_place(shm_arena *a, shm_offt off, size_t n, size_t keep)
{
    uint8_t *base = (uint8_t *)shm_arena_base(a);
    size_t before = shm_arena_usable_size(a, off), used = in_use(a);
    assert_int_equal(shm_arena_realloc(a, off, n), off);
    size_t length = shm_arena_usable_size(a, off);
    assert_int_equal(length, length_of(a, n));
    assert_int_equal(in_use(a), used - before + length);
    assert_pattern(base + off, keep, 5);
    fill_pattern(base + off, length, 5);
    assert_int_equal(shm_arena_check(a), 0);
}

/* realloc of a trimmed chunk in place (a node of 16 units of 2^MIN, the
 * top class of the last tier): growing takes its free tail back, in
 * pieces and up to the whole node; shrinking gives pieces back, to a
 * smaller class too, and growing from there takes them again. Every
 * step keeps the offset and the data, and changes the bytes in use by
 * exactly the length's change. */
static void realloc_grows_and_shrinks_in_place(void **state)
{
    struct fixture *f = *state;
    shm_arena *a = f->arena;
    size_t u = MIN_CHUNK;
    if (SHMI_CLASSES < 5 || a->geo.layout.class_tier[4] + 1 != a->geo.tiers) {
        skip(); /* no class of 16 units in the last tier */
        return;
    }
    shm_offt off = shm_arena_malloc(a, 9 * u + 1);
    assert_int_not_equal(off, SHM_NULL);
    assert_int_equal((off - a->geo.data_offset) % (16 * u), 0);
    size_t length = shm_arena_usable_size(a, off);
    assert_int_equal(length, length_of(a, 9 * u + 1));
    fill_pattern((uint8_t *)shm_arena_base(a) + off, length, 5);
    if (SHM_TRIM)
        assert_int_equal(length, 10 * u); /* 8 + 2 units */
    size_t steps[] = {15 * u,             /* 8 + 4 + 2 + 1: two tails more */
                      16 * u,             /* the whole node: no tail */
                      5 * u + 1,  /* 4 + 2 of the class below: a new tail */
                      10 * u,     /* 8 + 2, the class above again */
                      10 * u - 3, /* the same length */
                      u + 1,      /* one node of 2 units */
                      16 * u};
    size_t keep = length;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        resize_in_place(a, off, steps[i], keep);
        keep = shm_arena_usable_size(a, off);
    }
    size_t used = in_use(a);
    shm_arena_free(a, off);
    assert_int_equal(in_use(a) + 16 * u, used);
    assert_int_equal(shm_arena_check(a), 0);
}

/* A trimmed chunk whose free tail another allocation took: the realloc
 * that needs it moves the data, and gives the old pieces back. */
static void realloc_moves_when_the_tail_is_taken(void **state)
{
    struct fixture *f = *state;
    shm_arena *a = f->arena;
    struct shmi_geometry *g = &a->geo;
    size_t u = MIN_CHUNK;
    if (!SHM_TRIM || SHMI_CLASSES < 5 ||
        g->layout.class_tier[4] + 1 != g->tiers) {
        skip(); /* untrimmed chunks have no free tail */
        return;
    }
    uint8_t *base = (uint8_t *)shm_arena_base(a);
    shm_offt off = shm_arena_malloc(a, 9 * u + 1);
    assert_int_not_equal(off, SHM_NULL);
    assert_int_equal(shm_arena_usable_size(a, off), 10 * u);
    fill_pattern(base + off, 10 * u, 3);
    /* Chunks of one unit from the tree until one lies in the tail. */
    uint64_t x = off - g->data_offset;
    size_t max = CAPACITY / u, count = 0;
    uint64_t *blockers = malloc(max * sizeof *blockers);
    assert_non_null(blockers);
    uint64_t in_tail = SHMI_NO_CHUNK;
    while (count < max) {
        uint64_t y = shmi_tree_alloc_trimmed(g, 0, u);
        assert_int_not_equal(y, SHMI_NO_CHUNK);
        if (y >= x + 10 * u && y < x + 16 * u) {
            in_tail = y;
            break;
        }
        blockers[count++] = y;
    }
    assert_int_not_equal(in_tail, SHMI_NO_CHUNK);
    for (size_t i = 0; i < count; i++)
        assert_int_equal(shmi_tree_free(g, blockers[i]), 0);
    free(blockers);
    /* A length that fits before the blocker still grows in place. */
    size_t room = (size_t)(in_tail - x);
    assert_int_equal(shm_arena_realloc(a, off, room), off);
    assert_int_equal(shm_arena_usable_size(a, off), room);
    assert_pattern(base + off, 10 * u, 3);
    shm_offt moved = shm_arena_realloc(a, off, 16 * u);
    assert_int_not_equal(moved, SHM_NULL);
    assert_int_not_equal(moved, off);
    assert_int_equal(shm_arena_usable_size(a, moved), 16 * u);
    assert_pattern(base + moved, 10 * u, 3);
    /* The old pieces are free: a free of them is refused. */
    shm_set_error_handler(count_report, NULL);
    errno = 0;
    shm_arena_free(a, off);
    assert_int_equal(errno, EINVAL);
    shm_set_error_handler(NULL, NULL);
    assert_int_equal(shm_arena_check(a), 0);
    assert_int_equal(shmi_tree_free(g, in_tail), 0);
    shm_arena_free(a, moved);
    assert_int_equal(shm_arena_check(a), 0);
}

/* shm_check sees a continuation bit that no allocation accounts for: on
 * a free unit, or on the start of a live chunk (which then reads as no
 * allocation, and its free is refused, changing nothing). */
static void check_sees_stray_continuation_bits(void **state)
{
    struct fixture *f = *state;
    shm_arena *a = f->arena;
    struct shmi_geometry *g = &a->geo;
    if (!SHM_TRIM) {
        skip();
        return;
    }
    shm_offt off = shm_arena_malloc(a, MAX_CHUNK / 2 + 1);
    assert_int_not_equal(off, SHM_NULL);
    assert_int_equal(shm_arena_check(a), 0);
    uint64_t x = off - g->data_offset;
    uint64_t u = x >> SHM_MIN_ALLOC_POW2;
    /* A bit on the chunk's own start. */
    shmi_atomic_word *w = g->cont + u / 64;
    uint64_t bit = UINT64_C(1) << (u % 64);
    shmi_atomic_store_relaxed(w, shmi_atomic_load_relaxed(w) | bit);
    assert_true(shm_arena_check(a) >= 1);
    size_t before = shm_arena_available(a);
    shm_set_error_handler(count_report, NULL);
    errno = 0;
    shm_arena_free(a, off);
    assert_int_equal(errno, EINVAL);
    shm_set_error_handler(NULL, NULL);
    assert_int_equal(shm_arena_available(a), before);
    shmi_atomic_store_relaxed(w, shmi_atomic_load_relaxed(w) & ~bit);
    assert_int_equal(shm_arena_check(a), 0);
    /* A bit on a free unit, past the end of the data's first half. */
    uint64_t v = (g->capacity / 2) >> SHM_MIN_ALLOC_POW2;
    shmi_atomic_word *fw = g->cont + v / 64;
    uint64_t fbit = UINT64_C(1) << (v % 64);
    shmi_atomic_store_relaxed(fw, shmi_atomic_load_relaxed(fw) | fbit);
    assert_int_equal(shm_arena_check(a), 1);
    shmi_atomic_store_relaxed(fw, shmi_atomic_load_relaxed(fw) & ~fbit);
    shm_arena_free(a, off);
    assert_int_equal(shm_arena_check(a), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(every_size_takes_its_length, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(tails_are_free_and_pieces_are_not,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(tree_frees_every_piece, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(fill_reaches_its_density, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(realloc_of_a_trimmed_chunk, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(realloc_grows_and_shrinks_in_place,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(realloc_moves_when_the_tail_is_taken,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(check_sees_stray_continuation_bits,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
