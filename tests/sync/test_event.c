/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm_event: timeouts within bounds, broadcast waking every one of N
 * waiters, auto-reset releasing exactly one waiter per signal, manual
 * reset releasing all until reset, a signal from another process, and the
 * refusals of a never-initialised or destroyed event.
 */
#define _GNU_SOURCE
#include "sync_util.h"

#include <pthread.h>
#include <stdatomic.h>

#define WAITERS 8
#define MS (1000u * 1000u)

struct waiters {
    shm_event *e;
    uint64_t timeout_ns; /* 0: wait forever */
    atomic_int started;
    atomic_int released;
    atomic_int timed_out;
    atomic_int other;
    pthread_t t[WAITERS];
};

static void *waiter(void *arg)
{
    struct waiters *w = arg;
    atomic_fetch_add(&w->started, 1);
    int r = w->timeout_ns ? shm_event_timedwait(w->e, w->timeout_ns)
                          : shm_event_wait(w->e);
    if (r == 0)
        atomic_fetch_add(&w->released, 1);
    else if (r == ETIMEDOUT)
        atomic_fetch_add(&w->timed_out, 1);
    else
        atomic_fetch_add(&w->other, 1);
    return NULL;
}

static void start(struct waiters *w, shm_event *e, uint64_t timeout_ns)
{
    memset(w, 0, sizeof *w);
    w->e = e;
    w->timeout_ns = timeout_ns;
    for (int i = 0; i < WAITERS; i++)
        assert_int_equal(pthread_create(&w->t[i], NULL, waiter, w), 0);
    while (atomic_load(&w->started) < WAITERS)
        sched_yield();
    /* started is not yet asleep; give them time to reach the futex (a
     * late sleeper only makes the checks below pass for another reason:
     * the outcome counts are the same) */
    struct timespec ts = {0, 20 * MS};
    nanosleep(&ts, NULL);
}

static void join(struct waiters *w)
{
    for (int i = 0; i < WAITERS; i++)
        assert_int_equal(pthread_join(w->t[i], NULL), 0);
}

static void wait_released(struct waiters *w, int n)
{
    uint64_t end = now_ns() + 2000u * MS;
    while (atomic_load(&w->released) < n && now_ns() < end)
        sched_yield();
}

static void test_timeout_within_bounds(void **state)
{
    (void)state;
    shm_event *e = sync_alloc(sizeof *e);
    assert_int_equal(shm_event_init(e, SHM_EVENT_AUTO_RESET), 0);
    uint64_t t0 = now_ns();
    errno = 0;
    assert_int_equal(shm_event_timedwait(e, 50 * MS), ETIMEDOUT);
    assert_int_equal(errno, ETIMEDOUT);
    uint64_t took = now_ns() - t0;
    assert_true(took >= 50 * MS);
    assert_true(took < 1000 * MS);
    assert_int_equal(shm_event_timedwait(e, 0), ETIMEDOUT);
    assert_int_equal(shm_event_signal(e), 0);
    assert_true(shm_event_is_set(e));
    assert_int_equal(shm_event_timedwait(e, 0), 0); /* consumes it */
    assert_false(shm_event_is_set(e));
    assert_int_equal(shm_event_timedwait(e, 0), ETIMEDOUT);
    assert_int_equal(shm_event_destroy(e), 0);
    sync_free(e);
}

static void test_broadcast_wakes_all(void **state)
{
    (void)state;
    shm_event *e = sync_alloc(sizeof *e);
    assert_int_equal(shm_event_init(e, SHM_EVENT_AUTO_RESET), 0);
    struct waiters w;
    start(&w, e, 3000 * MS); /* bounded, so that a failure cannot hang */
    assert_int_equal(atomic_load(&w.released), 0);
    assert_int_equal(shm_event_broadcast(e), 0);
    join(&w);
    assert_int_equal(atomic_load(&w.released), WAITERS);
    assert_int_equal(atomic_load(&w.other), 0);
    /* nobody waiting: the broadcast is kept as a setting */
    assert_int_equal(shm_event_broadcast(e), 0);
    assert_int_equal(shm_event_timedwait(e, 0), 0);
    assert_int_equal(shm_event_destroy(e), 0);
    sync_free(e);
}

static void test_auto_reset_wakes_exactly_one(void **state)
{
    (void)state;
    shm_event *e = sync_alloc(sizeof *e);
    assert_int_equal(shm_event_init(e, SHM_EVENT_AUTO_RESET), 0);
    struct waiters w;
    start(&w, e, 1500 * MS);
    for (int k = 1; k <= 3; k++) {
        assert_int_equal(shm_event_signal(e), 0);
        wait_released(&w, k);
        /* a while for a second, wrong, release to show */
        struct timespec ts = {0, 30 * MS};
        nanosleep(&ts, NULL);
        assert_int_equal(atomic_load(&w.released), k);
        assert_false(shm_event_is_set(e)); /* the released one reset it */
    }
    join(&w);
    assert_int_equal(atomic_load(&w.released), 3);
    assert_int_equal(atomic_load(&w.timed_out), WAITERS - 3);
    assert_int_equal(atomic_load(&w.other), 0);
    assert_int_equal(shm_event_destroy(e), 0);
    sync_free(e);
}

static void test_manual_reset_releases_all_until_reset(void **state)
{
    (void)state;
    shm_event *e = sync_alloc(sizeof *e);
    assert_int_equal(shm_event_init(e, SHM_EVENT_MANUAL_RESET), 0);
    struct waiters w;
    start(&w, e, 0);
    assert_int_equal(shm_event_signal(e), 0);
    join(&w);
    assert_int_equal(atomic_load(&w.released), WAITERS);
    assert_true(shm_event_is_set(e));
    assert_int_equal(shm_event_wait(e), 0); /* stays set */
    assert_int_equal(shm_event_reset(e), 0);
    assert_int_equal(shm_event_timedwait(e, 10 * MS), ETIMEDOUT);
    assert_int_equal(shm_event_destroy(e), 0);
    /* initially set */
    assert_int_equal(
        shm_event_init(e, SHM_EVENT_MANUAL_RESET | SHM_EVENT_INITIALLY_SET), 0);
    assert_int_equal(shm_event_timedwait(e, 0), 0);
    assert_int_equal(shm_event_destroy(e), 0);
    sync_free(e);
}

/* Producer and consumers in different processes: each of 3 children
 * waits on an auto-reset event and reports on a pipe; the parent signals
 * three times and each signal releases one child. */
static void test_across_processes(void **state)
{
    (void)state;
    struct pair {
        shm_event go;
        shm_event ready;
    } *p = sync_alloc(sizeof(struct pair));
    assert_int_equal(shm_event_init(&p->go, SHM_EVENT_AUTO_RESET), 0);
    assert_int_equal(shm_event_init(&p->ready, SHM_EVENT_AUTO_RESET), 0);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pids[3];
    for (int i = 0; i < 3; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(fds[0]);
            int r = shm_event_timedwait(&p->go, 5000 * MS);
            pipe_put(fds[1], r == 0 ? 'R' : 'T');
            shm_event_signal(&p->ready);
            _exit(0);
        }
    }
    close(fds[1]);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(shm_event_signal(&p->go), 0);
        assert_int_equal(pipe_get(fds[0]), 'R');
        assert_int_equal(shm_event_timedwait(&p->ready, 5000 * MS), 0);
    }
    close(fds[0]);
    for (int i = 0; i < 3; i++)
        assert_int_equal(child_wait(pids[i]), 0);
    assert_int_equal(shm_event_destroy(&p->go), 0);
    assert_int_equal(shm_event_destroy(&p->ready), 0);
    sync_free(p);
}

/* A waiter killed while asleep costs nothing but a stale count. */
static void test_killed_waiter(void **state)
{
    (void)state;
    shm_event *e = sync_alloc(sizeof *e);
    assert_int_equal(shm_event_init(e, SHM_EVENT_AUTO_RESET), 0);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        pipe_put(fds[1], 'W');
        shm_event_wait(e);
        _exit(1);
    }
    assert_int_equal(pipe_get(fds[0]), 'W');
    close(fds[0]);
    close(fds[1]);
    child_kill(pid);
    assert_int_equal(shm_event_signal(e), 0);
    assert_int_equal(shm_event_timedwait(e, 1000 * MS), 0);
    assert_int_equal(shm_event_destroy(e), 0);
    sync_free(e);
}

static void test_destroy_wakes_waiters(void **state)
{
    (void)state;
    shm_event *e = sync_alloc(sizeof *e);
    assert_int_equal(shm_event_init(e, SHM_EVENT_AUTO_RESET), 0);
    struct waiters w;
    start(&w, e, 0);
    assert_int_equal(shm_event_destroy(e), 0);
    join(&w);
    assert_int_equal(atomic_load(&w.other), WAITERS);
    sync_free(e);
}

static void test_errors(void **state)
{
    (void)state;
    shm_event *e = sync_alloc(sizeof *e);
    errno = 0;
    assert_int_equal(shm_event_wait(e), EINVAL);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(shm_event_timedwait(e, 1), EINVAL);
    assert_int_equal(shm_event_signal(e), EINVAL);
    assert_int_equal(shm_event_broadcast(e), EINVAL);
    assert_int_equal(shm_event_reset(e), EINVAL);
    assert_int_equal(shm_event_destroy(e), EINVAL);
    errno = 0;
    assert_false(shm_event_is_set(e));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(shm_event_init(NULL, 0), EINVAL);
    assert_int_equal(shm_event_init(e, 8), EINVAL);
    assert_int_equal(shm_event_init(e, 0), 0);
    assert_int_equal(shm_event_init(e, 0), EBUSY);
    assert_int_equal(shm_event_destroy(e), 0);
    assert_int_equal(shm_event_signal(e), EINVAL);
    assert_int_equal(shm_event_wait(e), EINVAL);
    assert_int_equal(shm_event_destroy(e), EINVAL);
    sync_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeout_within_bounds),
        cmocka_unit_test(test_broadcast_wakes_all),
        cmocka_unit_test(test_auto_reset_wakes_exactly_one),
        cmocka_unit_test(test_manual_reset_releases_all_until_reset),
        cmocka_unit_test(test_across_processes),
        cmocka_unit_test(test_killed_waiter),
        cmocka_unit_test(test_destroy_wakes_waiters),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, sync_setup, sync_teardown);
}
