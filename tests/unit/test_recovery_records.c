/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A process killed at each recorded point of a realloc that moves and of
 * a trimmed claim or free (pending.c), recovered to the byte: after
 * shm_arena_recover (and a collection for the chunk the dead process held
 * as its own), every byte is free again and shm_arena_check finds
 * nothing. Built with SHM_TEST_HOOKS; the trimming points need SHM_TRIM.
 */
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
#include <unistd.h>

#include <cmocka.h>

#include "common/scratch.h"
#include "common/skip_because.h"

#include "arena.h"
#include "pending.h"
#include "tree.h"

/* Room for a chunk of the largest class beside the arena's own. */
#define CAPACITY                                                               \
    ((size_t)1 << (SHM_MAX_ALLOC_POW2 + 2 > 20 ? SHM_MAX_ALLOC_POW2 + 2 : 20))

static int setup(void **state)
{
    return fixture_setup(state, "records", CAPACITY);
}

static int teardown(void **state)
{
    return fixture_teardown(state);
}

#if SHM_TEST_HOOKS
static unsigned kill_at;

static void stop_here(unsigned point, unsigned tier)
{
    (void)tier;
    if (point == kill_at)
        raise(SIGKILL);
}

enum action { MALLOC, MALLOC_FREE, REALLOC };

/* A child that opens the file, runs `action` and is killed by the hook at
 * `point`; for REALLOC it first sends the parent the offset and usable
 * size of the chunk it reallocates (*old, *old_size). */
static void killed_at(const char *path, unsigned point, enum action action,
                      size_t size, size_t new_size, shm_offt *old,
                      size_t *old_size)
{
    int report[2];
    assert_int_equal(pipe(report), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(report[0]);
        struct shm_arena_options opts = {.capacity = CAPACITY};
        shm_arena *mine = shm_arena_open(path, &opts);
        if (mine == NULL)
            _exit(2);
        if (action != MALLOC) {
            shm_offt off = shm_arena_malloc(mine, size);
            if (off == SHM_NULL)
                _exit(4);
            memset((char *)shm_arena_base(mine) + off, 0x5a, size);
            uint64_t msg[2] = {off, shm_arena_usable_size(mine, off)};
            if (write(report[1], msg, sizeof msg) != (ssize_t)sizeof msg)
                _exit(5);
            kill_at = point;
            shmi_pending_test_hook = stop_here;
            if (action == MALLOC_FREE)
                shm_arena_free(mine, off);
            else
                shm_arena_realloc(mine, off, new_size);
        } else {
            kill_at = point;
            shmi_pending_test_hook = stop_here;
            shm_arena_malloc(mine, size);
        }
        _exit(3); /* the hook did not fire */
    }
    close(report[1]);
    if (action != MALLOC) {
        uint64_t msg[2];
        assert_int_equal(read(report[0], msg, sizeof msg), sizeof msg);
        *old = msg[0];
        *old_size = (size_t)msg[1];
    }
    close(report[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* The realloc's new chunk is of another tier than its old one, so that it
 * moves, and larger than every cached class. */
static void realloc_killed(void **state, unsigned point, bool old_freed)
{
    struct fixture *f = *state;
    if (SHMI_CLASSES < 2)
        skip_because("one size class: a realloc never moves");
    size_t full = shm_arena_available(f->arena);
    size_t max = (size_t)1 << SHM_MAX_ALLOC_POW2;
    shm_offt old;
    size_t old_size;
    /* From the smallest class, which every size range has. */
    killed_at(f->path, point, REALLOC, 1, max - 1, &old, &old_size);
    struct shm_recovery r;
    assert_int_equal(shm_arena_recover(f->arena, &r), 0);
    assert_int_equal(r.entries, 1);
    assert_true(r.records >= 1);
    /* The new chunk came back (and the child's cache, if any). */
    assert_true(r.bytes >= max - 1);
    assert_int_equal(shm_arena_check(f->arena), 0);
    if (old_freed) {
        assert_int_equal(shm_arena_available(f->arena), full);
        assert_int_equal(shm_arena_usable_size(f->arena, old), 0);
    } else {
        /* The old chunk is the dead process's own live allocation. */
        assert_int_equal(shm_arena_usable_size(f->arena, old), old_size);
        assert_int_equal(shm_arena_available(f->arena), full - old_size);
        shm_arena_free(f->arena, old);
        assert_int_equal(shm_arena_available(f->arena), full);
    }
    assert_int_equal(shm_arena_check(f->arena), 0);
    assert_int_equal(shm_arena_maxsize(f->arena), max);
    assert_int_equal(shm_arena_recover(f->arena, &r), 0);
    assert_int_equal(r.entries + r.records + r.bytes, 0);
}
#endif

static void test_realloc_killed_named(void **state)
{
#if SHM_TEST_HOOKS
    realloc_killed(state, SHMI_PENDING_REALLOC, false);
#else
    (void)state;
    skip_because("built without SHM_TEST_HOOKS");
#endif
}

static void test_realloc_killed_copied(void **state)
{
#if SHM_TEST_HOOKS
    realloc_killed(state, SHMI_PENDING_AT_REALLOC_COPIED, false);
#else
    (void)state;
    skip_because("built without SHM_TEST_HOOKS");
#endif
}

static void test_realloc_killed_old_freed(void **state)
{
#if SHM_TEST_HOOKS
    realloc_killed(state, SHMI_PENDING_AT_REALLOC_FREED, true);
#else
    (void)state;
    skip_because("built without SHM_TEST_HOOKS");
#endif
}

#if SHM_TEST_HOOKS
static int mark_nothing(shm_collector *col, void *ctx)
{
    (void)col;
    (void)ctx;
    return 0;
}

/* For class c, above every cached one (its mallocs and frees reach the
 * tree) and with room for a trimmed allocation of 3 granules or more: a
 * request's size (*size) and the bytes of its first piece (*lead). False
 * when c is not such a class. */
static bool trimmed_request(unsigned c, size_t *size, size_t *lead)
{
    if (c < SHMI_TCACHE_CLASSES || c >= SHMI_CLASSES)
        return false;
    size_t granule = (size_t)1 << shmi_tree_granule_log2(c);
    size_t node = (size_t)1 << (SHM_MIN_ALLOC_POW2 + c);
    size_t slots = node / granule;
    if (slots < 4)
        return false;
    slots = slots >= 8 ? slots * 5 / 8 : 3; /* 20 of 32: pieces 16 + 4 */
    *size = slots * granule - granule / 2;
    size_t top = 1;
    while (top * 2 <= slots)
        top *= 2;
    *lead = top * granule;
    return true;
}

/* One kill at `point` for class c; in_free: in the free of the chunk. */
static void trim_killed_in_class(struct fixture *f, unsigned c, unsigned point,
                                 bool in_free)
{
    size_t size = 0, lead = 0;
    assert_true(trimmed_request(c, &size, &lead));
    size_t full = shm_arena_available(f->arena);
    shm_offt off = SHM_NULL;
    size_t usable = 0;
    killed_at(f->path, point, in_free ? MALLOC_FREE : MALLOC, size, 0, &off,
              &usable);
    struct shm_recovery r;
    assert_int_equal(shm_arena_recover(f->arena, &r), 0);
    assert_int_equal(r.entries, 1);
    assert_int_equal(r.records, 1);
    assert_int_equal(shm_arena_check(f->arena), 0);
    if (in_free) {
        /* Every piece: the chunk being freed. */
        assert_true(usable >= size && usable > lead);
        assert_int_equal(r.bytes, usable);
        assert_int_equal(shm_arena_usable_size(f->arena, off), 0);
        assert_int_equal(shm_arena_available(f->arena), full);
    } else {
        /* The tail pieces; the first stays, the chunk in flight, which
         * only a collection can judge. */
        assert_true(r.bytes > 0 && r.bytes < lead);
        assert_int_equal(shm_arena_available(f->arena), full - lead);
        struct shm_collection col;
        assert_int_equal(shm_arena_collect(f->arena, mark_nothing, NULL, &col),
                         0);
        assert_int_equal(col.freed_chunks, 1);
        assert_int_equal(col.freed_bytes, lead);
        assert_int_equal(shm_arena_available(f->arena), full);
    }
    assert_int_equal(shm_arena_check(f->arena), 0);
    assert_int_equal(shm_arena_maxsize(f->arena),
                     (size_t)1 << SHM_MAX_ALLOC_POW2);
    assert_int_equal(shm_arena_recover(f->arena, &r), 0);
    assert_int_equal(r.entries + r.records + r.bytes, 0);
}

/* The largest class, and the smallest trimmed one past the caches (in
 * another tier when there are several). */
static void trim_killed(void **state, unsigned point, bool in_free)
{
    struct fixture *f = *state;
    if (!SHM_TRIM)
        skip_because("built without SHM_TRIM");
    size_t size, lead;
    unsigned low = SHMI_TCACHE_CLASSES;
    while (low < SHMI_CLASSES && !trimmed_request(low, &size, &lead))
        low++;
    if (low == SHMI_CLASSES)
        skip_because("no trimmed class past the thread caches");
    trim_killed_in_class(f, low, point, in_free);
    if (SHMI_CLASSES - 1 != low)
        trim_killed_in_class(f, SHMI_CLASSES - 1, point, in_free);
}
#endif

static void test_trim_claim_killed_before_bits(void **state)
{
#if SHM_TEST_HOOKS
    trim_killed(state, SHMI_PENDING_TRIM, false);
#else
    (void)state;
    skip_because("built without SHM_TEST_HOOKS");
#endif
}

static void test_trim_claim_killed_after_bits(void **state)
{
#if SHM_TEST_HOOKS
    trim_killed(state, SHMI_PENDING_AT_TRIM_MARKED, false);
#else
    (void)state;
    skip_because("built without SHM_TEST_HOOKS");
#endif
}

static void test_trim_free_killed_before_bits(void **state)
{
#if SHM_TEST_HOOKS
    trim_killed(state, SHMI_PENDING_AT_TRIM_FREEING, true);
#else
    (void)state;
    skip_because("built without SHM_TEST_HOOKS");
#endif
}

static void test_trim_free_killed_after_bits(void **state)
{
#if SHM_TEST_HOOKS
    trim_killed(state, SHMI_PENDING_AT_TRIM_UNMARKED, true);
#else
    (void)state;
    skip_because("built without SHM_TEST_HOOKS");
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_realloc_killed_named, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_realloc_killed_copied, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_realloc_killed_old_freed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_trim_claim_killed_before_bits,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_claim_killed_after_bits,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_free_killed_before_bits,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_free_killed_after_bits, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
