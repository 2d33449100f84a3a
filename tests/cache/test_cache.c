/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm_cache through its public header, in one process: every call and
 * every error, expiry, eviction in a full arena, a cache that outlives its
 * handles, and the memory it accounts for.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "shm_alloc.h"
#include "shm_cache.h"

static char *scratch(const char *name)
{
    static char path[512];
    const char *dir = getenv("SHM_TEST_DIR");
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : ".", name);
    unlink(path);
    return path;
}

/* The cache needs chunks of 512 bytes: smaller builds refuse it. */
static bool cache_fits(void)
{
    return get_shm_max_allocatable_size() >= 512;
}

/* The path of a scratch file, left as it is. */
static char *scratch_keep(const char *name)
{
    static char path[512];
    const char *dir = getenv("SHM_TEST_DIR");
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : ".", name);
    return path;
}

static shm_cache *open_cache(const char *name, size_t capacity)
{
    struct shm_cache_options opts = {.capacity = capacity};
    shm_cache *c = shm_cache_open(scratch(name), &opts);
    assert_non_null(c);
    return c;
}

/* A second, read-only handle on the scratch file `name`, left as it is. */
static shm_cache *open_read_only(const char *name)
{
    struct shm_cache_options ro = {.flags = SHM_ARENA_READ_ONLY};
    shm_cache *c = shm_cache_open(scratch_keep(name), &ro);
    assert_non_null(c);
    return c;
}

/* Arena bytes in use, which for a file holding only the cache must be
 * what the cache says it holds. */
static size_t arena_in_use(shm_cache *c)
{
    struct shm_stats st;
    assert_int_equal(shm_arena_stats(shm_cache_arena(c), &st), 0);
    return st.bytes_in_use;
}

static void test_refused_without_room(void **state)
{
    (void)state;
    if (cache_fits())
        skip();
    errno = 0;
    assert_null(shm_cache_open(scratch("small.shm"), NULL));
    assert_int_equal(errno, E2BIG);
}

static void test_every_call(void **state)
{
    (void)state;
    if (!cache_fits())
        skip();
    shm_cache *c = open_cache("calls.shm", 4 << 20);
    char buf[64];
    size_t len = 0;

    assert_int_equal(shm_cache_get(c, "a", 1, buf, sizeof buf, &len), ENOENT);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(shm_cache_set(c, "a", 1, "hello", 5, 0), 0);
    assert_int_equal(shm_cache_get(c, "a", 1, buf, sizeof buf, &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "hello", 5);

    /* Too small a buffer: the length, nothing copied. */
    memset(buf, 'x', sizeof buf);
    assert_int_equal(shm_cache_get(c, "a", 1, buf, 3, &len), ENOBUFS);
    assert_int_equal(errno, ENOBUFS);
    assert_int_equal(len, 5);
    assert_int_equal(buf[0], 'x');
    /* Asking the length alone is a buffer too small as well. */
    len = 0;
    assert_int_equal(shm_cache_get(c, "a", 1, NULL, 0, &len), ENOBUFS);
    assert_int_equal(len, 5);

    /* add, replace */
    assert_int_equal(shm_cache_add(c, "a", 1, "other", 5, 0), EEXIST);
    assert_int_equal(shm_cache_add(c, "b", 1, "bee", 3, 0), 0);
    assert_int_equal(shm_cache_replace(c, "zz", 2, "x", 1, 0), ENOENT);
    assert_int_equal(shm_cache_replace(c, "b", 1, "bumble", 6, 0), 0);
    assert_int_equal(shm_cache_get(c, "b", 1, buf, sizeof buf, &len), 0);
    assert_memory_equal(buf, "bumble", 6);

    /* gets and cas */
    uint64_t v1, v2;
    assert_int_equal(shm_cache_gets(c, "a", 1, buf, sizeof buf, &len, &v1), 0);
    assert_int_equal(shm_cache_cas(c, "a", 1, "first", 5, 0, v1), 0);
    assert_int_equal(shm_cache_gets(c, "a", 1, buf, sizeof buf, &len, &v2), 0);
    assert_true(v2 != v1);
    assert_int_equal(shm_cache_cas(c, "a", 1, "stale", 5, 0, v1), EAGAIN);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(shm_cache_get(c, "a", 1, buf, sizeof buf, &len), 0);
    assert_memory_equal(buf, "first", 5);
    assert_int_equal(shm_cache_cas(c, "none", 4, "x", 1, 0, v2), ENOENT);

    /* delete */
    assert_int_equal(shm_cache_delete(c, "a", 1), 0);
    assert_int_equal(shm_cache_delete(c, "a", 1), ENOENT);
    assert_int_equal(shm_cache_get(c, "a", 1, buf, sizeof buf, &len), ENOENT);

    /* incr */
    int64_t n = 0;
    assert_int_equal(shm_cache_incr(c, "n", 1, 5, 100, 0, &n), 0);
    assert_int_equal(n, 100);
    assert_int_equal(shm_cache_incr(c, "n", 1, -3, 100, 0, &n), 0);
    assert_int_equal(n, 97);
    assert_int_equal(shm_cache_incr(c, "b", 1, 1, 0, 0, &n), EINVAL);

    /* bad arguments */
    char key[SHM_CACHE_KEY_MAX + 1];
    memset(key, 'k', sizeof key);
    assert_int_equal(shm_cache_set(NULL, "a", 1, "x", 1, 0), EINVAL);
    assert_int_equal(shm_cache_set(c, NULL, 1, "x", 1, 0), EINVAL);
    assert_int_equal(shm_cache_set(c, "a", 0, "x", 1, 0), EINVAL);
    assert_int_equal(shm_cache_set(c, key, sizeof key, "x", 1, 0), EINVAL);
    assert_int_equal(shm_cache_set(c, key, SHM_CACHE_KEY_MAX, "x", 1, 0), 0);
    assert_int_equal(shm_cache_get(c, key, 0, buf, sizeof buf, &len), EINVAL);
    assert_int_equal(shm_cache_delete(c, NULL, 1), EINVAL);
    size_t huge = get_shm_max_allocatable_size();
    char *big = calloc(1, huge);
    assert_int_equal(shm_cache_set(c, "big", 3, big, huge, 0), E2BIG);
    assert_int_equal(errno, E2BIG);
    free(big);

    /* foreach sees the live entries */
    struct shm_cache_stats st;
    assert_int_equal(shm_cache_stats(c, &st), 0);
    assert_int_equal(st.items, 3); /* b, n, key */
    assert_int_equal(st.bytes, 1 + 6 + 1 + 8 + SHM_CACHE_KEY_MAX + 1);
    assert_int_equal(st.hits, 7);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.deletes, 1);
    assert_int_equal(shm_cache_stats(c, NULL), EINVAL);
    assert_int_equal(shm_cache_close(c), 0);
}

static int count_visit(const void *key, size_t key_len, const void *value,
                       size_t value_len, void *ctx)
{
    (void)key;
    (void)value;
    size_t *sum = ctx;
    *sum += key_len + value_len;
    return 0;
}

static int stop_visit(const void *key, size_t key_len, const void *value,
                      size_t value_len, void *ctx)
{
    (void)key;
    (void)key_len;
    (void)value;
    (void)value_len;
    (void)ctx;
    return 42;
}

static void test_foreach_and_persistence(void **state)
{
    (void)state;
    if (!cache_fits())
        skip();
    shm_cache *c = open_cache("persist.shm", 2 << 20);
    char key[32], value[64];
    size_t expect = 0;
    for (int i = 0; i < 500; i++) {
        int kl = snprintf(key, sizeof key, "key-%d", i);
        int vl = snprintf(value, sizeof value, "value of %d", i * 7);
        assert_int_equal(
            shm_cache_set(c, key, (size_t)kl, value, (size_t)vl, 0), 0);
        expect += (size_t)(kl + vl);
    }
    size_t sum = 0;
    assert_int_equal(shm_cache_foreach(c, count_visit, &sum), 0);
    assert_int_equal(sum, expect);
    assert_int_equal(shm_cache_foreach(c, stop_visit, NULL), 42);
    assert_int_equal(shm_cache_close(c), 0);

    /* The entries outlive the handle. */
    struct shm_cache_options opts = {.capacity = 2 << 20};
    const char *path = scratch("unused.shm");
    (void)path;
    char again[512];
    const char *dir = getenv("SHM_TEST_DIR");
    snprintf(again, sizeof again, "%s/persist.shm", dir && *dir ? dir : ".");
    c = shm_cache_open(again, &opts);
    assert_non_null(c);
    for (int i = 0; i < 500; i++) {
        int kl = snprintf(key, sizeof key, "key-%d", i);
        int vl = snprintf(value, sizeof value, "value of %d", i * 7);
        char got[64];
        size_t len;
        assert_int_equal(
            shm_cache_get(c, key, (size_t)kl, got, sizeof got, &len), 0);
        assert_int_equal(len, (size_t)vl);
        assert_memory_equal(got, value, len);
    }
    struct shm_cache_stats st;
    assert_int_equal(shm_cache_stats(c, &st), 0);
    assert_int_equal(st.items, 500);
    assert_int_equal(shm_cache_close(c), 0);
}

static void test_expiry(void **state)
{
    (void)state;
    if (!cache_fits())
        skip();
    shm_cache *c = open_cache("ttl.shm", 1 << 20);
    char buf[8];
    size_t len;
    assert_int_equal(shm_cache_set(c, "short", 5, "s", 1, 1), 0);
    assert_int_equal(shm_cache_set(c, "long", 4, "l", 1, 0), 0);
    assert_int_equal(shm_cache_get(c, "short", 5, buf, sizeof buf, &len), 0);
    struct timespec nap = {1, 100 * 1000 * 1000};
    nanosleep(&nap, NULL);
    assert_int_equal(shm_cache_get(c, "short", 5, buf, sizeof buf, &len),
                     ENOENT);
    assert_int_equal(shm_cache_replace(c, "short", 5, "x", 1, 0), ENOENT);
    assert_int_equal(shm_cache_add(c, "short", 5, "again", 5, 0), 0);
    assert_int_equal(shm_cache_get(c, "long", 4, buf, sizeof buf, &len), 0);
    assert_int_equal(shm_cache_close(c), 0);
}

/* A cache far smaller than what is stored in it: every set succeeds,
 * old entries are evicted, recent ones stay, and the memory the cache
 * reports is what the arena has in use. */
static void test_eviction(void **state)
{
    (void)state;
    if (!cache_fits())
        skip();
    shm_cache *c = open_cache("evict.shm", 2 << 20);
    char key[32], value[1000];
    memset(value, 'v', sizeof value);
    /* Values of 16 to 1000 bytes, log-uniform: chunks of every size, so
     * that making room takes evicting until a large enough one is free. */
    uint64_t r = 88172645463325252u;
    size_t largest = get_shm_max_allocatable_size() - 64 - 16;
    for (int i = 0; i < 40000; i++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        size_t len = (size_t)16 << (r % 7);
        len += (size_t)(r >> 8) % len;
        if (len > 1000)
            len = 1000;
        if (len > largest)
            len = largest;
        int kl = snprintf(key, sizeof key, "key-%d", i);
        int err = shm_cache_set(c, key, (size_t)kl, value, len, 0);
        if (err)
            fail_msg("set %d (%zu bytes) failed: %s", i, len, strerror(err));
    }
    struct shm_cache_stats st;
    assert_int_equal(shm_cache_stats(c, &st), 0);
    assert_true(st.evictions > 0);
    assert_true(st.items > 100);
    assert_true(st.items < 40000);
    /* The latest entry is there. */
    char buf[1000];
    size_t len;
    int kl = snprintf(key, sizeof key, "key-%d", 39999);
    assert_int_equal(shm_cache_get(c, key, (size_t)kl, buf, sizeof buf, &len),
                     0);
    assert_int_equal(shm_arena_check(shm_cache_arena(c)), 0);
    assert_int_equal(shm_cache_recover(c, NULL), 0);
    assert_int_equal(shm_cache_stats(c, &st), 0);
    assert_int_equal(st.memory, arena_in_use(c));
    assert_int_equal(shm_cache_close(c), 0);
}

static int count_items(const void *key, size_t key_len, const void *value,
                       size_t value_len, void *ctx)
{
    (void)key;
    (void)key_len;
    (void)value;
    (void)value_len;
    ++*(size_t *)ctx;
    return 0;
}

/* Tiny values: every item takes the smallest chunks, while a bucket's
 * block of entries needs a larger one. Evicting items one by one frees
 * small chunks that need not make a block's (their buddies may be live),
 * so a full cache must evict whole buckets to make one: a set never
 * fails. */
static void test_eviction_of_tiny_values(void **state)
{
    (void)state;
    if (!cache_fits())
        skip();
    const size_t sizes[] = {256 << 10, 2 << 20};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        shm_cache *c = open_cache("tiny.shm", sizes[s]);
        size_t sets = sizes[s] / 4; /* several times what fits */
        char key[32];
        for (size_t i = 0; i < sets; i++) {
            int kl = snprintf(key, sizeof key, "k%zu", i);
            char value = (char)('a' + i % 26);
            int err = shm_cache_set(c, key, (size_t)kl, &value, 1, 0);
            if (err)
                fail_msg("set %zu of %zu into %zu bytes failed: %s", i, sets,
                         sizes[s], strerror(err));
        }
        struct shm_cache_stats st;
        assert_int_equal(shm_cache_stats(c, &st), 0);
        assert_true(st.evictions > 0);
        assert_true(st.items > 100);
        /* The latest entry is there, with its value. */
        int kl = snprintf(key, sizeof key, "k%zu", sets - 1);
        char got = 0;
        size_t len = 0;
        assert_int_equal(shm_cache_get(c, key, (size_t)kl, &got, 1, &len), 0);
        assert_int_equal(len, 1);
        assert_int_equal(got, (char)('a' + (sets - 1) % 26));
        assert_int_equal(shm_arena_check(shm_cache_arena(c)), 0);
        assert_int_equal(shm_cache_recover(c, NULL), 0);
        assert_int_equal(shm_cache_stats(c, &st), 0);
        assert_int_equal(st.memory, arena_in_use(c));
        size_t counted = 0;
        assert_int_equal(shm_cache_foreach(c, count_items, &counted), 0);
        assert_int_equal(counted, st.items);
        assert_int_equal(shm_cache_close(c), 0);
    }
}

/* An index sized for one item takes 40000: it grows (a block holds at
 * most 64 entries, so a fixed index of 64 buckets would refuse most of
 * them), every entry stays readable through the growth, from this handle
 * and from a new one, once each in foreach, and the memory the index took
 * is accounted for. */
static void test_index_grows(void **state)
{
    (void)state;
    if (!cache_fits())
        skip();
    struct shm_cache_options opts = {.capacity = 16 << 20, .expected_items = 1};
    shm_cache *c = shm_cache_open(scratch("grow.shm"), &opts);
    assert_non_null(c);
    struct shm_cache_stats st;
    assert_int_equal(shm_cache_stats(c, &st), 0);
    uint64_t first_buckets = st.buckets;
    assert_true(first_buckets <= 64);
    enum { N = 40000 };
    char key[32], value[32], got[32];
    size_t len;
    for (int i = 0; i < N; i++) {
        int kl = snprintf(key, sizeof key, "grow-%d", i);
        int vl = snprintf(value, sizeof value, "v%d", i * 3);
        assert_int_equal(
            shm_cache_set(c, key, (size_t)kl, value, (size_t)vl, 0), 0);
        /* An earlier key, read back while the index grows. */
        int j = i / 2;
        kl = snprintf(key, sizeof key, "grow-%d", j);
        vl = snprintf(value, sizeof value, "v%d", j * 3);
        assert_int_equal(
            shm_cache_get(c, key, (size_t)kl, got, sizeof got, &len), 0);
        assert_int_equal(len, (size_t)vl);
        assert_memory_equal(got, value, len);
    }
    assert_int_equal(shm_cache_stats(c, &st), 0);
    assert_int_equal(st.items, N);
    /* At most a bucket per 64 B of capacity and a directory of one
     * chunk: with 1 KiB chunks, 16384 buckets. */
    assert_true(st.buckets >= N / 4);
    assert_true(st.buckets > first_buckets);
    size_t visited = 0;
    assert_int_equal(shm_cache_foreach(c, count_items, &visited), 0);
    assert_int_equal(visited, N);
    /* Deleting every other key leaves the rest. */
    for (int i = 0; i < N; i += 2) {
        int kl = snprintf(key, sizeof key, "grow-%d", i);
        assert_int_equal(shm_cache_delete(c, key, (size_t)kl), 0);
    }
    assert_int_equal(shm_cache_recover(c, NULL), 0);
    assert_int_equal(shm_cache_stats(c, &st), 0);
    assert_int_equal(st.items, N / 2);
    assert_int_equal(st.memory, arena_in_use(c));
    assert_int_equal(shm_arena_check(shm_cache_arena(c)), 0);
    assert_int_equal(shm_cache_close(c), 0);

    /* A later handle sees the grown index and every entry. */
    c = shm_cache_open(scratch_keep("grow.shm"), NULL);
    assert_non_null(c);
    for (int i = 0; i < N; i++) {
        int kl = snprintf(key, sizeof key, "grow-%d", i);
        int vl = snprintf(value, sizeof value, "v%d", i * 3);
        int err = shm_cache_get(c, key, (size_t)kl, got, sizeof got, &len);
        if (i % 2 == 0) {
            assert_int_equal(err, ENOENT);
        } else {
            assert_int_equal(err, 0);
            assert_memory_equal(got, value, (size_t)vl);
        }
    }
    visited = 0;
    assert_int_equal(shm_cache_foreach(c, count_items, &visited), 0);
    assert_int_equal(visited, N / 2);
    assert_int_equal(shm_cache_close(c), 0);
}

static void test_attach_by_name(void **state)
{
    (void)state;
    if (!cache_fits())
        skip();
    struct shm_arena_options opts = {.capacity = 2 << 20};
    shm_arena *arena = shm_arena_open(scratch("named.shm"), &opts);
    assert_non_null(arena);
    shm_cache *one = shm_cache_attach(arena, "one", NULL);
    shm_cache *two = shm_cache_attach(arena, "two", NULL);
    assert_non_null(one);
    assert_non_null(two);
    assert_ptr_equal(shm_cache_arena(one), arena);
    assert_int_equal(shm_cache_set(one, "k", 1, "1", 1, 0), 0);
    char buf[4];
    size_t len;
    assert_int_equal(shm_cache_get(two, "k", 1, buf, sizeof buf, &len), ENOENT);
    shm_cache *again = shm_cache_attach(arena, "one", NULL);
    assert_non_null(again);
    assert_int_equal(shm_cache_get(again, "k", 1, buf, sizeof buf, &len), 0);

    /* A root of that name that is no cache, bad names. */
    shm_offt junk = shm_arena_calloc(arena, 1, 64);
    assert_int_equal(shm_arena_root_set(arena, "shm_cache:junk", junk), 0);
    errno = 0;
    assert_null(shm_cache_attach(arena, "junk", NULL));
    assert_int_equal(errno, EINVAL);
    assert_null(shm_cache_attach(arena, "", NULL));
    assert_int_equal(errno, EINVAL);
    assert_null(shm_cache_attach(NULL, "x", NULL));
    assert_int_equal(errno, EINVAL);
    char long_name[64];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_null(shm_cache_attach(arena, long_name, NULL));
    assert_int_equal(errno, EINVAL);

    assert_int_equal(shm_cache_close(again), 0);
    assert_int_equal(shm_cache_close(one), 0);
    assert_int_equal(shm_cache_close(two), 0);
    assert_int_equal(shm_arena_close(arena), 0);
}

static void test_read_only(void **state)
{
    (void)state;
    if (!cache_fits())
        skip();
    shm_cache *c = open_cache("ro.shm", 1 << 20);
    assert_int_equal(shm_cache_set(c, "k", 1, "v", 1, 0), 0);
    shm_cache *r = open_read_only("ro.shm");
    char buf[4];
    size_t len;
    assert_int_equal(shm_cache_get(r, "k", 1, buf, sizeof buf, &len), 0);
    assert_int_equal(buf[0], 'v');
    assert_int_equal(shm_cache_set(r, "k", 1, "w", 1, 0), EROFS);
    assert_int_equal(shm_cache_delete(r, "k", 1), EROFS);
    assert_int_equal(shm_cache_close(r), 0);
    assert_int_equal(shm_cache_close(c), 0);
}

struct replacer {
    shm_cache *c;
    size_t len;
    int sets;
};

static void *replace_many(void *arg)
{
    struct replacer *r = arg;
    char value[64];
    for (int i = 0; i < r->sets; i++) {
        memset(value, 'a' + i % 26, r->len);
        if (shm_cache_set(r->c, "viewed", 6, value, r->len, 0) != 0)
            return (void *)1;
    }
    return NULL;
}

/* A view points into the mapping and keeps its bytes while other threads
 * replace the entry (far more often than a ring of retired chunks holds,
 * so reclamation runs meanwhile); ending it lets them go. */
static void test_zero_copy_view(void **state)
{
    (void)state;
    if (!cache_fits())
        skip();
    shm_cache *c = open_cache("view.shm", 1 << 20);
    const char first[] = "the first value, 32 bytes long!";
    size_t len = sizeof first - 1;
    assert_int_equal(shm_cache_set(c, "viewed", 6, first, len, 0), 0);
    uint64_t version = 0;
    char buf[64];
    size_t got_len;
    assert_int_equal(
        shm_cache_gets(c, "viewed", 6, buf, sizeof buf, &got_len, &version), 0);

    struct shm_cache_view v;
    assert_int_equal(shm_cache_view(c, "viewed", 6, &v), 0);
    assert_int_equal(v.value_len, len);
    assert_int_equal(v.version, version);
    assert_memory_equal(v.value, first, len);
    shm_arena *arena = shm_cache_arena(c);
    /* The value lies in the arena's mapping: no copy. */
    const char *base = shm_arena_base(arena);
    assert_true((const char *)v.value > base &&
                (const char *)v.value < base + shm_arena_mapping_size(arena));

    struct replacer r = {c, len, 2000};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, replace_many, &r), 0);
    void *ret;
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_null(ret);
    /* Replaced 2000 times, same size: the viewed bytes are untouched. */
    assert_memory_equal(v.value, first, len);
    shm_cache_view_end(c, &v);
    assert_null(v.value);

    /* The entry now holds the last replacement. */
    assert_int_equal(shm_cache_view(c, "viewed", 6, &v), 0);
    assert_int_equal(v.value_len, len);
    assert_int_equal(((const char *)v.value)[0], 'a' + (2000 - 1) % 26);
    assert_int_not_equal(v.version, version);
    shm_cache_view_end(c, &v);

    /* Misses and refusals leave an empty view. */
    v.value = first;
    assert_int_equal(shm_cache_view(c, "missing", 7, &v), ENOENT);
    assert_null(v.value);
    assert_int_equal(v.value_len, 0);
    errno = 0;
    assert_int_equal(shm_cache_view(c, NULL, 1, &v), EINVAL);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(shm_cache_view(c, "viewed", 6, NULL), EINVAL);
    assert_int_equal(shm_cache_view(c, "viewed", 0, &v), EINVAL);
    assert_int_equal(shm_cache_view(NULL, "viewed", 6, &v), EINVAL);
    shm_cache_view_end(NULL, NULL); /* nothing to end: nothing done */
    assert_int_equal(shm_cache_set(c, "short", 5, "x", 1, 1), 0);
    struct timespec pause = {1, 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
    assert_int_equal(shm_cache_view(c, "short", 5, &v), ENOENT); /* expired */

    shm_cache *reader = open_read_only("view.shm");
    assert_int_equal(shm_cache_view(reader, "viewed", 6, &v), EROFS);
    assert_null(v.value);
    shm_cache_view_end(reader, &v);
    assert_int_equal(shm_cache_close(reader), 0);

    /* Everything viewed went back: the memory is the arena's in use. */
    assert_int_equal(shm_cache_recover(c, NULL), 0);
    struct shm_cache_stats st;
    assert_int_equal(shm_cache_stats(c, &st), 0);
    assert_int_equal(st.memory, arena_in_use(c));
    assert_int_equal(shm_arena_check(arena), 0);
    assert_int_equal(shm_cache_close(c), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_without_room),
        cmocka_unit_test(test_every_call),
        cmocka_unit_test(test_foreach_and_persistence),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_eviction),
        cmocka_unit_test(test_eviction_of_tiny_values),
        cmocka_unit_test(test_index_grows),
        cmocka_unit_test(test_attach_by_name),
        cmocka_unit_test(test_read_only),
        cmocka_unit_test(test_zero_copy_view),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
