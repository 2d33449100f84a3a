/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm_cache across processes: writers, readers and deleters on one cache
 * with values that carry their key, version and checksum, verified on
 * every get; counters incremented from several processes without a lost
 * update; and writers and readers killed with SIGKILL at random, after
 * which every entry is still whole, reclamation still goes on, and the
 * arena's bytes in use are what the cache says it holds.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "shm_alloc.h"
#include "shm_cache.h"

#define KEYS 300
#define COUNTER_ADDS 2000

static char path[512];

static void scratch(const char *name)
{
    const char *dir = getenv("SHM_TEST_DIR");
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : ".", name);
    unlink(path);
}

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A value: its key's number, a version, its length and a checksum of
 * the rest, so a reader can tell a whole value from a torn one. */
struct value_head {
    uint32_t key;
    uint32_t len;
    uint64_t version;
    uint64_t sum;
};

static uint64_t checksum(const unsigned char *p, size_t n, uint64_t seed)
{
    uint64_t h = seed ^ 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3u;
    return h;
}

static size_t make_value(unsigned char *buf, uint32_t key, uint64_t version,
                         size_t len)
{
    struct value_head h = {key, (uint32_t)len, version, 0};
    for (size_t i = sizeof h; i < len; i++)
        buf[i] = (unsigned char)(key * 31 + version + i);
    h.sum = checksum(buf + sizeof h, len - sizeof h, version ^ key);
    memcpy(buf, &h, sizeof h);
    return len;
}

/* 0 when the value is whole and belongs to key. */
static int check_value(const unsigned char *buf, size_t len, uint32_t key)
{
    struct value_head h;
    if (len < sizeof h)
        return 1;
    memcpy(&h, buf, sizeof h);
    if (h.key != key || h.len != len)
        return 2;
    if (checksum(buf + sizeof h, len - sizeof h, h.version ^ key) != h.sum)
        return 3;
    return 0;
}

static int key_of(uint32_t k, char *key)
{
    return snprintf(key, 32, "key:%u", k);
}

/* One writer: sets (sizes 24..900), deletes and counter increments. */
static int writer(uint64_t seed, unsigned ops, unsigned adds)
{
    shm_cache *c = shm_cache_open(path, NULL);
    if (!c)
        return 10;
    unsigned char buf[1024];
    char key[32];
    for (unsigned i = 0; ops == 0 || i < ops; i++) {
        uint32_t k = (uint32_t)(rng(&seed) % KEYS);
        int kl = key_of(k, key);
        unsigned what = (unsigned)(rng(&seed) % 10);
        if (what == 0) {
            int err = shm_cache_delete(c, key, (size_t)kl);
            if (err && err != ENOENT)
                return 11;
        } else {
            size_t len = 24 + rng(&seed) % 876;
            make_value(buf, k, rng(&seed), len);
            int err = shm_cache_set(c, key, (size_t)kl, buf, len, 0);
            if (err != 0)
                return 100 + err; /* the errno, for the report */
        }
        if (i < adds && shm_cache_incr(c, "counter", 7, 1, 1, 0, NULL) != 0)
            return 13;
    }
    return shm_cache_close(c) == 0 ? 0 : 14;
}

/* One reader: gets, and checks every value it finds. */
static int reader(uint64_t seed, unsigned ops)
{
    shm_cache *c = shm_cache_open(path, NULL);
    if (!c)
        return 20;
    unsigned char buf[1024];
    char key[32];
    for (unsigned i = 0; ops == 0 || i < ops; i++) {
        uint32_t k = (uint32_t)(rng(&seed) % KEYS);
        int kl = key_of(k, key);
        size_t len;
        int err = shm_cache_get(c, key, (size_t)kl, buf, sizeof buf, &len);
        if (err == ENOENT)
            continue;
        if (err || check_value(buf, len, k))
            return 21;
    }
    return shm_cache_close(c) == 0 ? 0 : 22;
}

/* Children still running, killed before a failure is reported so that
 * none outlives the test. */
static pid_t running[8];
static unsigned running_count;

static void kill_running(void)
{
    for (unsigned i = 0; i < running_count; i++) {
        if (running[i] > 0) {
            kill(running[i], SIGKILL);
            waitpid(running[i], NULL, 0);
        }
    }
    running_count = 0;
}

static pid_t spawn(int (*body)(uint64_t, unsigned, unsigned), uint64_t seed,
                   unsigned ops, unsigned adds)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(body(seed, ops, adds));
    running[running_count++] = pid;
    return pid;
}

/* Waits for child i of `pids`; returns its status. */
static int reap(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    for (unsigned i = 0; i < running_count; i++)
        if (running[i] == pid)
            running[i] = 0;
    return status;
}

static int writer_body(uint64_t seed, unsigned ops, unsigned adds)
{
    return writer(seed, ops, adds);
}

static int reader_body(uint64_t seed, unsigned ops, unsigned adds)
{
    (void)adds;
    return reader(seed, ops);
}

static int verify_visit(const void *key, size_t key_len, const void *value,
                        size_t value_len, void *ctx)
{
    unsigned *bad = ctx;
    char name[32];
    if (key_len >= sizeof name)
        return 1;
    memcpy(name, key, key_len);
    name[key_len] = '\0';
    unsigned k;
    if (sscanf(name, "key:%u", &k) == 1 && check_value(value, value_len, k))
        (*bad)++;
    return 0;
}

static size_t in_use(shm_cache *c)
{
    struct shm_stats st;
    assert_int_equal(shm_arena_stats(shm_cache_arena(c), &st), 0);
    return st.bytes_in_use;
}

static void test_writers_and_readers(void **state)
{
    (void)state;
    if (get_shm_max_allocatable_size() < 1024)
        skip(); /* values up to 900 bytes */
    scratch("share.shm");
    /* A small index at first: it grows while the children use it. */
    struct shm_cache_options opts = {.capacity = 8 << 20, .expected_items = 1};
    shm_cache *c = shm_cache_open(path, &opts);
    assert_non_null(c);
    uint64_t seed = (uint64_t)time(NULL) | 1;
    print_message("seed %llu\n", (unsigned long long)seed);
    pid_t pids[4];
    pids[0] = spawn(writer_body, seed, 20000, COUNTER_ADDS);
    pids[1] = spawn(writer_body, seed * 3, 20000, COUNTER_ADDS);
    pids[2] = spawn(reader_body, seed * 5, 40000, 0);
    pids[3] = spawn(reader_body, seed * 7, 40000, 0);
    for (int i = 0; i < 4; i++) {
        int status = reap(pids[i]);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            kill_running();
            fail_msg("child %d: status %d (seed %llu)", i, status,
                     (unsigned long long)seed);
        }
    }
    running_count = 0;
    int64_t total = 0;
    size_t len;
    assert_int_equal(shm_cache_get(c, "counter", 7, &total, sizeof total, &len),
                     0);
    assert_int_equal(total, 2 * COUNTER_ADDS);
    unsigned bad = 0;
    assert_int_equal(shm_cache_foreach(c, verify_visit, &bad), 0);
    assert_int_equal(bad, 0);
    assert_int_equal(shm_arena_check(shm_cache_arena(c)), 0);
    struct shm_cache_stats st;
    assert_int_equal(shm_cache_recover(c, NULL), 0);
    assert_int_equal(shm_cache_stats(c, &st), 0);
    assert_int_equal(st.memory, in_use(c));
    assert_int_equal(shm_cache_close(c), 0);
}

/* A child that opens the cache (taking a slot of its own) and stores
 * `value` under "versioned" `sets` times; its exit status says how it
 * went. */
static int set_in_child(int value, int sets)
{
    shm_cache *mine = shm_cache_open(path, NULL);
    if (!mine)
        return 2;
    for (int i = 0; i < sets; i++)
        if (shm_cache_set(mine, "versioned", 9, &value, sizeof value, 0))
            return 3;
    return shm_cache_close(mine) ? 4 : 0;
}

/* Versions are unique across slots: every slot counts its own from the
 * same start, yet a version this process read is refused after another
 * process stored the key as often, and a current one is taken. */
static void test_versions_differ_across_processes(void **state)
{
    (void)state;
    if (get_shm_max_allocatable_size() < 512)
        skip();
    scratch("versions.shm");
    struct shm_cache_options opts = {.capacity = 2 << 20};
    shm_cache *c = shm_cache_open(path, &opts);
    assert_non_null(c);
    int one = 1, got;
    size_t len;
    uint64_t mine, theirs;
    assert_int_equal(shm_cache_set(c, "versioned", 9, &one, sizeof one, 0), 0);
    assert_int_equal(
        shm_cache_gets(c, "versioned", 9, &got, sizeof got, &len, &mine), 0);
    for (int sets = 1; sets <= 3; sets++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(set_in_child(2, sets));
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_int_equal(
            shm_cache_gets(c, "versioned", 9, &got, sizeof got, &len, &theirs),
            0);
        assert_int_equal(got, 2);
        assert_int_not_equal(theirs, mine);
        /* The version read before the other process's sets is stale. */
        assert_int_equal(
            shm_cache_cas(c, "versioned", 9, &one, sizeof one, 0, mine),
            EAGAIN);
        assert_int_equal(
            shm_cache_cas(c, "versioned", 9, &one, sizeof one, 0, theirs), 0);
        assert_int_equal(
            shm_cache_gets(c, "versioned", 9, &got, sizeof got, &len, &mine),
            0);
        assert_int_equal(got, 1);
    }
    assert_int_equal(shm_cache_close(c), 0);
}

static void test_killed_writers_and_readers(void **state)
{
    (void)state;
    if (get_shm_max_allocatable_size() < 1024)
        skip();
    scratch("kill.shm");
    struct shm_cache_options opts = {.capacity = 4 << 20, .expected_items = 1};
    shm_cache *c = shm_cache_open(path, &opts);
    assert_non_null(c);
    uint64_t seed = (uint64_t)time(NULL) * 2654435761u | 1;
    print_message("seed %llu\n", (unsigned long long)seed);
    unsigned kills = 0, writer_kills = 0;
    for (int round = 0; round < 40; round++) {
        pid_t pids[3];
        pids[0] = spawn(writer_body, rng(&seed), 0, 0);
        pids[1] = spawn(writer_body, rng(&seed), 0, 0);
        pids[2] = spawn(reader_body, rng(&seed), 0, 0);
        struct timespec nap = {0, (long)(2 + rng(&seed) % 15) * 1000000L};
        nanosleep(&nap, NULL);
        for (int i = 0; i < 3; i++)
            kill(pids[i], SIGKILL);
        for (int i = 0; i < 3; i++) {
            int status = reap(pids[i]);
            if (WIFSIGNALED(status)) {
                kills++;
                writer_kills += i < 2;
            } else {
                kill_running();
                fail_msg("child %d exited %d before the kill (seed %llu)", i,
                         WEXITSTATUS(status), (unsigned long long)seed);
            }
        }
        running_count = 0;
    }
    print_message("%u processes killed\n", kills);
    /* Every entry is whole. */
    unsigned bad = 0;
    assert_int_equal(shm_cache_foreach(c, verify_visit, &bad), 0);
    assert_int_equal(bad, 0);
    /* Dead readers do not hold reclamation back: far more replacements
     * than a ring of retired chunks holds all succeed. */
    unsigned char buf[1024];
    for (unsigned i = 0; i < 5000; i++) {
        size_t len = make_value(buf, 0, i, 100);
        assert_int_equal(shm_cache_set(c, "key:0", 5, buf, len, 0), 0);
    }
    unsigned recovered = 0;
    assert_int_equal(shm_cache_recover(c, &recovered), 0);
    struct shm_cache_stats st;
    assert_int_equal(shm_cache_stats(c, &st), 0);
    print_message("recovered %u slots; memory %zu, arena in use %zu\n",
                  recovered, st.memory, in_use(c));
    assert_int_equal(shm_arena_check(shm_cache_arena(c)), 0);
    /* What the cache holds is accounted for, but for the chunks a killed
     * writer had in flight inside shm_malloc or shm_free, or between the
     * allocator and its record: at most one per killed writer. */
    size_t arena_bytes = in_use(c);
    assert_true(arena_bytes >= st.memory);
    assert_true(arena_bytes - st.memory <=
                (size_t)writer_kills * get_shm_max_allocatable_size());
    assert_int_equal(shm_cache_close(c), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writers_and_readers),
        cmocka_unit_test(test_versions_differ_across_processes),
        cmocka_unit_test(test_killed_writers_and_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
