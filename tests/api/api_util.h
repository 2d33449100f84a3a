/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Helpers shared by the API tests: scratch paths, seeded randomness, the
 * size arithmetic of the contract, and a uniform way to run one test body
 * against both the default arena (shm_*) and an explicit one
 * (shm_arena_*).
 *
 * Everything here goes through include/shm_alloc.h only.
 */
#ifndef API_UTIL_H
#define API_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shm_alloc.h"
#include "common/arena_bytes.h"
#include "common/usable_model.h"

/* ---------------------------------------------------------------------
 * Scratch files
 * ------------------------------------------------------------------- */

/* Writes "$SHM_TEST_DIR/name" (or "./name") into buf. */
static inline void scratch_path(char *buf, size_t len, const char *name)
{
    const char *dir = getenv("SHM_TEST_DIR");
    if (dir == NULL || dir[0] == '\0')
        dir = ".";
    int n = snprintf(buf, len, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < len);
}

/* ---------------------------------------------------------------------
 * Seeded randomness: SHM_TEST_SEED repeats a run; the seed is printed
 * before the tests so that a failing run's log names it.
 * ------------------------------------------------------------------- */

static inline uint64_t test_seed(void)
{
    static uint64_t seed;
    if (seed == 0) {
        const char *s = getenv("SHM_TEST_SEED");
        if (s != NULL && s[0] != '\0')
            seed = strtoull(s, NULL, 0);
        else
            seed = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL);
        if (seed == 0)
            seed = 1;
        fprintf(stderr,
                "seed %" PRIu64 " (rerun with SHM_TEST_SEED=%" PRIu64 ")\n",
                seed, seed);
    }
    return seed;
}

/* xorshift64*: small, fast, good enough to pick sizes and orders. */
static inline uint64_t rng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static inline uint64_t rng_below(uint64_t *state, uint64_t bound)
{
    return rng_next(state) % bound;
}

static inline void shuffle_offsets(shm_offt *v, size_t n, uint64_t *rng)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(rng, i);
        shm_offt t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

/* ---------------------------------------------------------------------
 * The contract's arithmetic
 * ------------------------------------------------------------------- */

/* Smallest power of two >= max(n, 2^MIN), for n <= 2^MAX. */

static inline unsigned log2_size(size_t pow2)
{
    unsigned k = 0;
    while (((size_t)1 << k) < pow2)
        k++;
    return k;
}

/* A capacity small enough that filling it is quick, large enough to hold
 * several chunks of the largest class. */
static inline size_t small_capacity(void)
{
    size_t cap = (size_t)1 << 20;
    size_t max = get_shm_max_allocatable_size();
    if (cap < 4 * max)
        cap = 4 * max;
    return cap;
}

/* ---------------------------------------------------------------------
 * One test body, two ways in: the default arena through the global
 * functions, or an explicit arena through the shm_arena_* twins.
 * ------------------------------------------------------------------- */

struct target {
    const char *name; /* "global" or "arena", shown in failures */
    bool global;      /* true: the shm_* functions on the default arena */
    shm_arena *arena; /* the explicit arena when !global */
    char path[4096];  /* its file */
};

static inline uint8_t *t_base(const struct target *t)
{
    return t->global ? get_shm_user_base() : shm_arena_base(t->arena);
}

static inline size_t t_mapping_size(const struct target *t)
{
    return t->global ? get_mapping_size_needed_by_shm()
                     : shm_arena_mapping_size(t->arena);
}

static inline size_t t_capacity(const struct target *t)
{
    return shm_arena_capacity(t->global ? shm_default_arena() : t->arena);
}

static inline shm_offt t_malloc(const struct target *t, size_t n)
{
    return t->global ? shm_malloc(n) : shm_arena_malloc(t->arena, n);
}

static inline shm_offt t_calloc(const struct target *t, size_t c, size_t n)
{
    return t->global ? shm_calloc(c, n) : shm_arena_calloc(t->arena, c, n);
}

static inline void t_free(const struct target *t, shm_offt off)
{
    if (t->global)
        shm_free(off);
    else
        shm_arena_free(t->arena, off);
}

static inline size_t t_usable(const struct target *t, shm_offt off)
{
    return t->global ? shm_usable_size(off)
                     : shm_arena_usable_size(t->arena, off);
}

static inline size_t t_available(const struct target *t)
{
    return t->global ? shm_available() : shm_arena_available(t->arena);
}

static inline int t_check(const struct target *t)
{
    return t->global ? shm_check() : shm_arena_check(t->arena);
}

static inline void *t_ptr_malloc(const struct target *t, size_t n)
{
    return t->global ? ptr_malloc(n) : shm_arena_ptr_malloc(t->arena, n);
}

static inline void *t_ptr_calloc(const struct target *t, size_t c, size_t n)
{
    return t->global ? ptr_calloc(c, n) : shm_arena_ptr_calloc(t->arena, c, n);
}

static inline void t_ptr_free(const struct target *t, void *p)
{
    if (t->global)
        ptr_free(p);
    else
        shm_arena_ptr_free(t->arena, p);
}

static inline void *t_addr(const struct target *t, shm_offt off)
{
    return t_base(t) + off;
}

/*
 * Attaches the target to a fresh file of small_capacity() in the scratch
 * directory: the default arena through shm_init() with $SHM_SIZE, or an
 * explicit arena through shm_arena_open() with the capacity option.
 */
static inline void target_attach(struct target *t, const char *file)
{
    scratch_path(t->path, sizeof t->path, file);
    unlink(t->path); /* a file left by an earlier run or another build */
    if (t->global) {
        char size[32];
        snprintf(size, sizeof size, "%zu", small_capacity());
        assert_int_equal(setenv("SHM_SIZE", size, 1), 0);
        assert_true(shm_init(NULL, t->path));
        assert_int_equal(unsetenv("SHM_SIZE"), 0);
        t->arena = NULL;
        assert_non_null(get_shm_user_base());
    } else {
        struct shm_arena_options opts = {.capacity = small_capacity()};
        t->arena = shm_arena_open(t->path, &opts);
        assert_non_null(t->arena);
    }
    assert_int_equal(t_capacity(t), small_capacity());
    assert_int_equal(t_available(t), t_capacity(t));
    assert_int_equal(t_check(t), 0);
}

static inline void target_detach(struct target *t)
{
    if (t->global) {
        shm_deinit();
    } else {
        assert_int_equal(shm_arena_close(t->arena), 0);
        t->arena = NULL;
    }
    unlink(t->path);
}

/* ---------------------------------------------------------------------
 * "Changes nothing": a copy of the whole mapping compared byte for byte
 * ------------------------------------------------------------------- */

struct snapshot {
    uint8_t *bytes;
    size_t size;
};

static inline void snapshot_take(struct snapshot *s, const struct target *t)
{
    s->size = t_mapping_size(t);
    s->bytes = malloc(s->size);
    assert_non_null(s->bytes);
    arena_bytes_copy(s->bytes, t_base(t), s->size);
}

/* Fails, naming the first changed offset, when the mapping differs. */
static inline void snapshot_assert_same(const struct snapshot *s,
                                        const struct target *t,
                                        const char *what)
{
    const uint8_t *now = t_base(t);
    assert_int_equal(t_mapping_size(t), s->size);
    size_t i = arena_bytes_differ(now, s->bytes, s->size);
    if (i != s->size) {
        fail_msg("%s changed the arena: byte at offset %zu was 0x%02x, is "
                 "0x%02x",
                 what, i, s->bytes[i], now[i]);
    }
}

static inline void snapshot_release(struct snapshot *s)
{
    free(s->bytes);
    s->bytes = NULL;
}

/*
 * A call that must be refused: refusal_begin() records the arena,
 * refusal_end() asserts the errno the call left (captured right after it)
 * and that the arena is byte for byte what it was, its free bytes too.
 */
struct refusal {
    size_t available;
    struct snapshot snap;
};

static inline void refusal_begin(struct refusal *r, const struct target *t)
{
    assert_int_equal(t_check(t), 0);
    r->available = t_available(t);
    snapshot_take(&r->snap, t);
    errno = 0;
}

static inline void refusal_end(struct refusal *r, const struct target *t,
                               int got_errno, int want_errno, const char *what)
{
    if (got_errno != want_errno)
        fail_msg("%s [%s]: errno %d (%s), expected %d (%s)", what, t->name,
                 got_errno, strerror(got_errno), want_errno,
                 strerror(want_errno));
    snapshot_assert_same(&r->snap, t, what);
    snapshot_release(&r->snap);
    if (t_available(t) != r->available)
        fail_msg("%s [%s]: available %zu, was %zu", what, t->name,
                 t_available(t), r->available);
    assert_int_equal(t_check(t), 0);
}

/* Stamps a chunk with a pattern derived from its offset. */
static inline void stamp_chunk(uint8_t *p, size_t len, shm_offt off)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)((off >> 3) * 31 + i * 7 + 1);
}

static inline void assert_chunk_stamped(const uint8_t *p, size_t len,
                                        shm_offt off)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t want = (uint8_t)((off >> 3) * 31 + i * 7 + 1);
        if (p[i] != want)
            fail_msg("chunk at offset %" PRIu_shm_offt
                     " overwritten at byte %zu: 0x%02x, expected 0x%02x",
                     off, i, p[i], want);
    }
}

#endif /* API_UTIL_H */
