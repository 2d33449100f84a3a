/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A cache writer killed at each step of an update and of the index's
 * growth (cache_index.c, cache_split.c): a child that grows a small
 * index is stopped with SIGKILL at a test point; after the recovery
 * every entry it had set is read back whole, the one in flight is there
 * whole or not at all, the cache's memory is exactly the arena's bytes
 * in use, and later writers finish the split it left half done.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cache_internal.h"
#include "shm_alloc.h"
#include "shm_cache.h"

#define FIRST_KEYS 200  /* set by the parent before the child runs */
#define CHILD_KEYS 3000 /* the child's, enough to make new segments */
#define LAST_KEYS 4000  /* set by the parent after the recovery */

static char path[512];

static int key_of(int i, char *key)
{
    return snprintf(key, 32, "kill-key-%d", i);
}

/* A value that says which key it belongs to, and its length. */
static size_t value_of(int i, char *value)
{
    size_t len = 8 + (size_t)(i * 37) % 200;
    for (size_t k = 0; k < len; k++)
        value[k] = (char)('a' + (i + (int)k) % 26);
    return len;
}

static void set_keys(shm_cache *c, int from, int to)
{
    char key[32], value[256];
    for (int i = from; i < to; i++) {
        int kl = key_of(i, key);
        size_t vl = value_of(i, value);
        assert_int_equal(shm_cache_set(c, key, (size_t)kl, value, vl, 0), 0);
    }
}

/* Whether key i holds its whole value (1), nothing (0); fails on a torn
 * or wrong value. */
static int holds(shm_cache *c, int i)
{
    char key[32], value[256], got[256];
    int kl = key_of(i, key);
    size_t vl = value_of(i, value), len = 0;
    int err = shm_cache_get(c, key, (size_t)kl, got, sizeof got, &len);
    if (err == ENOENT)
        return 0;
    assert_int_equal(err, 0);
    assert_int_equal(len, vl);
    assert_memory_equal(got, value, vl);
    return 1;
}

static size_t arena_in_use(shm_cache *c)
{
    struct shm_stats st;
    assert_int_equal(shm_arena_stats(shm_cache_arena(c), &st), 0);
    return st.bytes_in_use;
}

#if SHM_TEST_HOOKS
static unsigned kill_point, kill_countdown;
static volatile int *done_sets; /* shared with the parent */

static void stop_at(unsigned point)
{
    if (point == kill_point && --kill_countdown == 0)
        raise(SIGKILL);
}

/* A new cache in the scratch file `name` (its path in `path`) holding
 * keys 0 .. FIRST_KEYS - 1, in an index sized for one item, so that it
 * grows and its blocks hold several entries. */
static shm_cache *cache_with_first_keys(const char *name)
{
    const char *dir = getenv("SHM_TEST_DIR");
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : ".", name);
    unlink(path);
    struct shm_cache_options opts = {.capacity = 8 << 20, .expected_items = 1};
    shm_cache *c = shm_cache_open(path, &opts);
    assert_non_null(c);
    set_keys(c, 0, FIRST_KEYS);
    return c;
}
#endif

/* Kills a child at the `nth` time it reaches `point`. */
static void killed_at(unsigned point, unsigned nth)
{
#if SHM_TEST_HOOKS
    shm_cache *c = cache_with_first_keys("cache_kill.shm");
    done_sets = mmap(NULL, sizeof *done_sets, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(done_sets != MAP_FAILED);
    *done_sets = FIRST_KEYS;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        shm_cache *mine = shm_cache_open(path, NULL);
        if (!mine)
            _exit(2);
        kill_point = point;
        kill_countdown = nth;
        shmi_cache_test_hook = stop_at;
        char key[32], value[256];
        for (int i = FIRST_KEYS; i < CHILD_KEYS; i++) {
            int kl = key_of(i, key);
            size_t vl = value_of(i, value);
            if (shm_cache_set(mine, key, (size_t)kl, value, vl, 0) != 0)
                _exit(3);
            *done_sets = i + 1;
        }
        _exit(4); /* the point was never reached */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    int done = *done_sets;
    munmap((void *)done_sets, sizeof *done_sets);

    /* What the dead writer's slot records, read before the recovery. */
    struct shmi_cache_slot *mine = shmi_cache_slot_mine(c);
    struct shmi_cache_slot *dead = NULL;
    for (unsigned i = 0; i < c->slot_count; i++) {
        struct shmi_cache_slot *s = shmi_cache_slot_at(c, i);
        if (s != mine && atomic_load(&s->owner) != 0)
            dead = s;
    }
    assert_non_null(dead);
    uint64_t item = atomic_load(&dead->pending_item);
    uint64_t block = atomic_load(&dead->pending_block);
    uint64_t segment = atomic_load(&dead->pending_segment);
    uint64_t segment_index = atomic_load(&dead->pending_segment_index);

    struct shm_recovery r;
    assert_int_equal(shm_arena_recover(shm_cache_arena(c), &r), 0);
    unsigned recovered = 0;
    assert_int_equal(shm_cache_recover(c, &recovered), 0);
    assert_int_equal(recovered, 1);
    for (int i = 0; i < done; i++)
        assert_int_equal(holds(c, i), 1);
    int in_flight = holds(c, done); /* all or nothing */
    shm_arena *arena = shm_cache_arena(c);
    if (point == SHMI_CACHE_AT_SEGMENT_RECORDED) {
        /* Made, recorded, never in the directory: given back. */
        assert_int_not_equal(segment, 0);
        assert_int_equal(atomic_load(&c->directory[segment_index - 1]), 0);
        assert_int_equal(shm_arena_usable_size(arena, segment), 0);
    }
    if (point == SHMI_CACHE_AT_RECORDED) {
        /* The CAS never happened: the new block and item are freed. */
        assert_int_not_equal(block, 0);
        assert_int_equal(shm_arena_usable_size(arena, block), 0);
        assert_int_equal(in_flight, 0);
        if (item)
            assert_int_equal(shm_arena_usable_size(arena, item), 0);
    }
    if (point == SHMI_CACHE_AT_PUBLISHED && !shmi_cache_is_marker(block))
        assert_int_not_equal(shm_arena_usable_size(arena, block), 0);
    for (int i = done + 1; i < CHILD_KEYS; i++)
        assert_int_equal(holds(c, i), 0);
    struct shm_cache_stats st;
    assert_int_equal(shm_cache_stats(c, &st), 0);
    assert_int_equal(st.items, (uint64_t)(done + in_flight));
    assert_int_equal(st.memory, arena_in_use(c));
    assert_int_equal(shm_arena_check(shm_cache_arena(c)), 0);

    /* Later writers go on through what the child left. */
    set_keys(c, done, LAST_KEYS);
    for (int i = 0; i < LAST_KEYS; i++)
        assert_int_equal(holds(c, i), 1);
    assert_int_equal(shm_cache_stats(c, &st), 0);
    assert_int_equal(st.items, LAST_KEYS);
    assert_true(st.buckets >= LAST_KEYS / 2);
    assert_int_equal(shm_cache_recover(c, NULL), 0);
    assert_int_equal(shm_cache_stats(c, &st), 0);
    assert_int_equal(st.memory, arena_in_use(c));
    assert_int_equal(shm_arena_check(shm_cache_arena(c)), 0);
    assert_int_equal(shm_cache_close(c), 0);
    unlink(path);
#else
    (void)point;
    (void)nth;
    print_message("skipped: built without SHM_TEST_HOOKS\n");
    skip();
#endif
}

/* A writer killed inside a clear (the eviction that empties a bucket,
 * cache_index.c) at `point`: after the recovery the bucket's entries are
 * all there (before the CAS) or all gone (after it), every other key is
 * whole, and the memory is exactly the arena's bytes in use. */
static void killed_clearing(unsigned point)
{
#if SHM_TEST_HOOKS
    shm_cache *c = cache_with_first_keys("cache_clear.shm");
    volatile int *cleared = mmap(NULL, sizeof *cleared, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(cleared != MAP_FAILED);
    *cleared = -1;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        shm_cache *mine = shm_cache_open(path, NULL);
        struct shmi_cache_slot *slot = mine ? shmi_cache_slot_mine(mine) : NULL;
        if (!slot)
            _exit(2);
        unsigned levels = shmi_cache_levels(mine);
        for (uint64_t b = 0; b < UINT64_C(1) << levels; b++) {
            const shmi_atomic_word *word = shmi_cache_bucket(mine, b);
            uint64_t head = word ? shmi_cache_protect_block(slot, word) : 0;
            struct shmi_cache_view v;
            if (head == 0 || shmi_cache_is_direct(head) ||
                shmi_cache_is_marker(head) ||
                !shmi_cache_view_of(mine, head, false, &v) || v.count < 2)
                continue;
            *cleared = (int)v.count;
            kill_point = point;
            kill_countdown = 1;
            shmi_cache_test_hook = stop_at;
            unsigned removed;
            shmi_cache_clear(mine, slot, b, head, &removed);
            _exit(4); /* the point was never reached */
        }
        _exit(3); /* no block of two entries */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    int in_block = *cleared;
    munmap((void *)cleared, sizeof *cleared);
    assert_true(in_block >= 2);

    struct shm_recovery r;
    assert_int_equal(shm_arena_recover(shm_cache_arena(c), &r), 0);
    unsigned recovered = 0;
    assert_int_equal(shm_cache_recover(c, &recovered), 0);
    assert_int_equal(recovered, 1);
    int held = 0;
    for (int i = 0; i < FIRST_KEYS; i++)
        held += holds(c, i);
    int expected =
        point == SHMI_CACHE_AT_RECORDED ? FIRST_KEYS : FIRST_KEYS - in_block;
    assert_int_equal(held, expected);
    struct shm_cache_stats st;
    assert_int_equal(shm_cache_stats(c, &st), 0);
    assert_int_equal(st.items, (uint64_t)held);
    assert_int_equal(st.memory, arena_in_use(c));
    assert_int_equal(shm_arena_check(shm_cache_arena(c)), 0);
    /* The bucket takes new entries again. */
    set_keys(c, 0, FIRST_KEYS);
    for (int i = 0; i < FIRST_KEYS; i++)
        assert_int_equal(holds(c, i), 1);
    assert_int_equal(shm_cache_recover(c, NULL), 0);
    assert_int_equal(shm_cache_stats(c, &st), 0);
    assert_int_equal(st.items, FIRST_KEYS);
    assert_int_equal(st.memory, arena_in_use(c));
    assert_int_equal(shm_cache_close(c), 0);
    unlink(path);
#else
    (void)point;
    print_message("skipped: built without SHM_TEST_HOOKS\n");
    skip();
#endif
}

static bool cache_fits(void)
{
    return get_shm_max_allocatable_size() >= 512;
}

static void killed_making_a_segment(void **state)
{
    (void)state;
    if (!cache_fits())
        skip();
    killed_at(SHMI_CACHE_AT_SEGMENT_RECORDED, 1);
}

static void killed_between_raise_and_split(void **state)
{
    (void)state;
    if (!cache_fits())
        skip();
    killed_at(SHMI_CACHE_AT_RAISED, 5);
}

static void killed_before_an_update_cas(void **state)
{
    (void)state;
    if (!cache_fits())
        skip();
    killed_at(SHMI_CACHE_AT_RECORDED, 300);
}

static void killed_after_an_update_cas(void **state)
{
    (void)state;
    if (!cache_fits())
        skip();
    killed_at(SHMI_CACHE_AT_PUBLISHED, 300);
}

static void killed_before_a_clear_cas(void **state)
{
    (void)state;
    if (!cache_fits())
        skip();
    killed_clearing(SHMI_CACHE_AT_RECORDED);
}

static void killed_after_a_clear_cas(void **state)
{
    (void)state;
    if (!cache_fits())
        skip();
    killed_clearing(SHMI_CACHE_AT_PUBLISHED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(killed_making_a_segment),
        cmocka_unit_test(killed_between_raise_and_split),
        cmocka_unit_test(killed_before_an_update_cas),
        cmocka_unit_test(killed_after_an_update_cas),
        cmocka_unit_test(killed_before_a_clear_cas),
        cmocka_unit_test(killed_after_a_clear_cas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
