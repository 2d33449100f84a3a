/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm_cache shared by threads of one process through one handle: writers
 * replacing and deleting values that carry their key and a checksum,
 * readers checking every value they get, and a counter incremented by
 * every writer with no update lost. Run under ThreadSanitizer too (label
 * threads): the hazards and the one-CAS updates are all the
 * synchronisation there is.
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
#include <unistd.h>

#include <cmocka.h>

#include "shm_alloc.h"
#include "shm_cache.h"

#define KEYS 512
#define WRITERS 2
#define READERS 2
#define OPS 4000

static shm_cache *cache;

static uint64_t next_random(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A value: the key's number, a length and a sum of the bytes after. */
static size_t make_value(unsigned char *buf, uint32_t key, uint64_t seed)
{
    size_t len = 16 + seed % 200;
    memcpy(buf, &key, 4);
    uint32_t sum = 0;
    for (size_t i = 8; i < len; i++) {
        buf[i] = (unsigned char)(seed >> (i % 56));
        sum += buf[i];
    }
    memcpy(buf + 4, &sum, 4);
    return len;
}

static int value_ok(const unsigned char *buf, size_t len, uint32_t key)
{
    uint32_t k, sum, real = 0;
    if (len < 8)
        return 0;
    memcpy(&k, buf, 4);
    memcpy(&sum, buf + 4, 4);
    for (size_t i = 8; i < len; i++)
        real += buf[i];
    return k == key && sum == real;
}

static void *writer(void *arg)
{
    uint64_t seed = (uintptr_t)arg * 0x9e3779b97f4a7c15u | 1;
    unsigned char buf[256];
    char key[16];
    for (int i = 0; i < OPS; i++) {
        uint32_t k = (uint32_t)(next_random(&seed) % KEYS);
        int kl = snprintf(key, sizeof key, "k%u", k);
        int err =
            next_random(&seed) % 8 == 0
                ? shm_cache_delete(cache, key, (size_t)kl)
                : shm_cache_set(cache, key, (size_t)kl, buf,
                                make_value(buf, k, next_random(&seed)), 0);
        if (err && err != ENOENT)
            return (void *)1;
        if (shm_cache_incr(cache, "count", 5, 1, 1, 0, NULL) != 0)
            return (void *)2;
    }
    return NULL;
}

static void *reader(void *arg)
{
    uint64_t seed = (uintptr_t)arg * 0xc4ceb9fe1a85ec53u | 1;
    unsigned char buf[256];
    char key[16];
    for (int i = 0; i < OPS * 2; i++) {
        uint32_t k = (uint32_t)(next_random(&seed) % KEYS);
        int kl = snprintf(key, sizeof key, "k%u", k);
        size_t len;
        int err = shm_cache_get(cache, key, (size_t)kl, buf, sizeof buf, &len);
        if (err == ENOENT)
            continue;
        if (err || !value_ok(buf, len, k))
            return (void *)3;
    }
    return NULL;
}

struct sums {
    uint64_t items, bytes;
};

static int add_up(const void *key, size_t key_len, const void *value,
                  size_t value_len, void *ctx)
{
    (void)key;
    (void)value;
    struct sums *s = ctx;
    s->items++;
    s->bytes += key_len + value_len;
    return 0;
}

static void test_threads_share_a_cache(void **state)
{
    (void)state;
    if (get_shm_max_allocatable_size() < 512)
        skip();
    char path[512];
    const char *dir = getenv("SHM_TEST_DIR");
    snprintf(path, sizeof path, "%s/threads.shm", dir && *dir ? dir : ".");
    unlink(path);
    /* A small index at first: the threads grow it as they go. */
    struct shm_cache_options opts = {.capacity = 4 << 20, .expected_items = 1};
    cache = shm_cache_open(path, &opts);
    assert_non_null(cache);
    pthread_t t[WRITERS + READERS];
    for (uintptr_t i = 0; i < WRITERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, writer, (void *)(i + 1)),
                         0);
    for (uintptr_t i = 0; i < READERS; i++)
        assert_int_equal(
            pthread_create(&t[WRITERS + i], NULL, reader, (void *)(i + 7)), 0);
    for (int i = 0; i < WRITERS + READERS; i++) {
        void *ret;
        assert_int_equal(pthread_join(t[i], &ret), 0);
        assert_null(ret);
    }
    int64_t total;
    size_t len;
    assert_int_equal(
        shm_cache_get(cache, "count", 5, &total, sizeof total, &len), 0);
    assert_int_equal(total, WRITERS * OPS);
    struct shm_cache_stats st;
    assert_int_equal(shm_cache_stats(cache, &st), 0);
    struct shm_stats arena;
    assert_int_equal(shm_arena_stats(shm_cache_arena(cache), &arena), 0);
    assert_int_equal(st.memory, arena.bytes_in_use);
    /* Replacements of other lengths and deletes from every thread: the
     * counts are the entries' own. */
    struct sums sums = {0, 0};
    assert_int_equal(shm_cache_foreach(cache, add_up, &sums), 0);
    assert_int_equal(st.items, sums.items);
    assert_int_equal(st.bytes, sums.bytes);
    assert_int_equal(shm_cache_close(cache), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_share_a_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
