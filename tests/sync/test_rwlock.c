/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm_rwlock: readers and writers of 4 processes x 2 threads (writers
 * never lose an update, readers never see one half done), readers that
 * share, writer preference, the reader bound, a reader SIGKILLed while
 * holding a shared lock (the writer gets in and is told, also when it was
 * already waiting), a dead writer found by a reader, ENOTRECOVERABLE, and
 * the refusals.
 */
#define _GNU_SOURCE
#include "sync_util.h"

#include <pthread.h>
#include <stdatomic.h>

#define PROCS 4
#define THREADS 2
#define ROUNDS 4000
#define MS (1000u * 1000u)

/* The lock alone fills a chunk of 2^10 bytes, so that the tests run with
 * MAX = 10 too: the data it protects is a chunk of its own. Forked
 * children inherit the mapping at the same address. */
struct shared {
    shm_rwlock rw;
};

struct data {
    uint64_t a, b; /* protected by rw: equal outside a write */
};

static struct data *data;

static struct shared *new_shared(void)
{
    struct shared *s = sync_alloc(sizeof *s);
    assert_int_equal(shm_rwlock_init(&s->rw), 0);
    if (data == NULL)
        data = sync_alloc(sizeof *data);
    data->a = data->b = 0;
    return s;
}

static void *mixed(void *arg)
{
    struct shared *s = arg;
    for (int i = 0; i < ROUNDS; i++) {
        if (i % 4 == 0) {
            if (shm_rwlock_wrlock(&s->rw) != 0)
                return (void *)1;
            uint64_t a = data->a;
            data->a = a + 1;
            data->b = a + 1;
        } else {
            if (shm_rwlock_rdlock(&s->rw) != 0)
                return (void *)1;
            if (data->a != data->b)
                return (void *)2;
        }
        if (shm_rwlock_unlock(&s->rw) != 0)
            return (void *)3;
    }
    return NULL;
}

static void test_readers_and_writers(void **state)
{
    (void)state;
    struct shared *s = new_shared();
    run_in_processes(PROCS, THREADS, mixed, s);
    assert_int_equal(data->a, (uint64_t)PROCS * THREADS * (ROUNDS / 4));
    assert_int_equal(data->b, data->a);
    assert_int_equal(shm_rwlock_destroy(&s->rw), 0);
    sync_free(s);
}

struct call {
    struct shared *s;
    int op; /* 'r' tryrdlock, 'w' trywrlock, 'R' rdlock, 'W' wrlock */
    int result;
    atomic_int done;
};

static void *do_call(void *arg)
{
    struct call *c = arg;
    int r = -1;
    switch (c->op) {
    case 'r':
        r = shm_rwlock_tryrdlock(&c->s->rw);
        break;
    case 'w':
        r = shm_rwlock_trywrlock(&c->s->rw);
        break;
    case 'R':
        r = shm_rwlock_rdlock(&c->s->rw);
        break;
    case 'W':
        r = shm_rwlock_wrlock(&c->s->rw);
        break;
    }
    c->result = r;
    if (r == EOWNERDEAD)
        shm_rwlock_consistent(&c->s->rw);
    if (r == 0 || r == EOWNERDEAD)
        shm_rwlock_unlock(&c->s->rw);
    atomic_store(&c->done, 1);
    return NULL;
}

/* Runs one call in another thread and returns its result. */
static int other_thread(struct shared *s, int op)
{
    struct call c = {.s = s, .op = op};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, do_call, &c), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    return c.result;
}

static void test_shared_and_exclusive(void **state)
{
    (void)state;
    struct shared *s = new_shared();
    assert_int_equal(shm_rwlock_rdlock(&s->rw), 0);
    assert_int_equal(other_thread(s, 'r'), 0); /* readers share */
    assert_int_equal(other_thread(s, 'w'), EBUSY);
    assert_int_equal(shm_rwlock_timedwrlock(&s->rw, 10 * MS), EDEADLK);
    assert_int_equal(shm_rwlock_unlock(&s->rw), 0);
    assert_int_equal(shm_rwlock_unlock(&s->rw), EPERM);

    assert_int_equal(shm_rwlock_wrlock(&s->rw), 0);
    assert_int_equal(other_thread(s, 'r'), EBUSY);
    assert_int_equal(other_thread(s, 'w'), EBUSY);
    assert_int_equal(shm_rwlock_rdlock(&s->rw), EDEADLK);
    assert_int_equal(shm_rwlock_wrlock(&s->rw), EDEADLK);
    assert_int_equal(shm_rwlock_consistent(&s->rw), EINVAL); /* no death */
    assert_int_equal(shm_rwlock_destroy(&s->rw), EBUSY);
    assert_int_equal(shm_rwlock_unlock(&s->rw), 0);
    assert_int_equal(other_thread(s, 'w'), 0);
    assert_int_equal(shm_rwlock_destroy(&s->rw), 0);
    sync_free(s);
}

/* A writer waiting for a reader keeps new readers out. */
static void test_writer_preference(void **state)
{
    (void)state;
    struct shared *s = new_shared();
    assert_int_equal(shm_rwlock_rdlock(&s->rw), 0);
    struct call w = {.s = s, .op = 'W'};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, do_call, &w), 0);
    /* once the writer is in, readers are refused */
    uint64_t end = now_ns() + 2000u * MS;
    int r;
    while ((r = other_thread(s, 'r')) == 0 && now_ns() < end)
        sched_yield();
    assert_int_equal(r, EBUSY);
    assert_int_equal(atomic_load(&w.done), 0);
    assert_int_equal(shm_rwlock_unlock(&s->rw), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(w.result, 0);
    assert_int_equal(other_thread(s, 'r'), 0);
    assert_int_equal(shm_rwlock_destroy(&s->rw), 0);
    sync_free(s);
}

static void test_reader_bound(void **state)
{
    (void)state;
    struct shared *s = new_shared();
    for (int i = 0; i < SHM_RWLOCK_READERS; i++)
        assert_int_equal(shm_rwlock_rdlock(&s->rw), 0);
    assert_int_equal(shm_rwlock_rdlock(&s->rw), EAGAIN);
    assert_int_equal(other_thread(s, 'r'), EBUSY);
    assert_int_equal(shm_rwlock_timedrdlock(&s->rw, 10 * MS), EAGAIN);
    for (int i = 0; i < SHM_RWLOCK_READERS; i++)
        assert_int_equal(shm_rwlock_unlock(&s->rw), 0);
    assert_int_equal(shm_rwlock_unlock(&s->rw), EPERM);
    assert_int_equal(other_thread(s, 'w'), 0);
    assert_int_equal(shm_rwlock_destroy(&s->rw), 0);
    sync_free(s);
}

/* A child that takes the lock ('r' shared, 'w' exclusive), says so and
 * waits to be killed. */
static pid_t child_holding(struct shared *s, char mode)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        int r =
            mode == 'r' ? shm_rwlock_rdlock(&s->rw) : shm_rwlock_wrlock(&s->rw);
        if (r != 0)
            _exit(1);
        if (mode == 'w')
            data->a++; /* half an update */
        pipe_put(fds[1], 'L');
        for (;;)
            pause();
    }
    close(fds[1]);
    assert_int_equal(pipe_get(fds[0]), 'L');
    close(fds[0]);
    return pid;
}

static void test_dead_reader_writer_told(void **state)
{
    (void)state;
    struct shared *s = new_shared();
    child_kill(child_holding(s, 'r'));
    errno = 0;
    assert_int_equal(shm_rwlock_wrlock(&s->rw), EOWNERDEAD);
    assert_int_equal(errno, EOWNERDEAD);
    assert_int_equal(shm_rwlock_consistent(&s->rw), 0);
    assert_int_equal(shm_rwlock_unlock(&s->rw), 0);
    assert_int_equal(shm_rwlock_wrlock(&s->rw), 0); /* told once */
    assert_int_equal(shm_rwlock_unlock(&s->rw), 0);
    assert_int_equal(shm_rwlock_destroy(&s->rw), 0);
    sync_free(s);
}

/* The writer is already waiting for the reader when the reader dies. */
static void test_dead_reader_wakes_waiting_writer(void **state)
{
    (void)state;
    struct shared *s = new_shared();
    pid_t pid = child_holding(s, 'r');
    struct call w = {.s = s, .op = 'W'};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, do_call, &w), 0);
    uint64_t end = now_ns() + 2000u * MS;
    while (other_thread(s, 'r') == 0 && now_ns() < end)
        sched_yield(); /* until the writer is in */
    assert_int_equal(atomic_load(&w.done), 0);
    child_kill(pid);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(w.result, EOWNERDEAD);
    assert_int_equal(other_thread(s, 'w'), 0); /* repaired by the call */
    assert_int_equal(shm_rwlock_destroy(&s->rw), 0);
    sync_free(s);
}

static void test_dead_writer_reader_told(void **state)
{
    (void)state;
    struct shared *s = new_shared();
    child_kill(child_holding(s, 'w'));
    assert_int_equal(shm_rwlock_rdlock(&s->rw), EOWNERDEAD);
    /* the reader told of it holds the lock exclusively for the repair */
    assert_int_equal(other_thread(s, 'r'), EBUSY);
    assert_int_equal(data->a, 1);
    data->b = data->a;
    assert_int_equal(shm_rwlock_consistent(&s->rw), 0);
    assert_int_equal(shm_rwlock_unlock(&s->rw), 0);
    assert_int_equal(shm_rwlock_rdlock(&s->rw), 0);
    assert_int_equal(other_thread(s, 'r'), 0);
    assert_int_equal(shm_rwlock_unlock(&s->rw), 0);
    assert_int_equal(shm_rwlock_destroy(&s->rw), 0);
    sync_free(s);
}

static void test_unrepaired_is_unrecoverable(void **state)
{
    (void)state;
    struct shared *s = new_shared();
    child_kill(child_holding(s, 'w'));
    assert_int_equal(shm_rwlock_wrlock(&s->rw), EOWNERDEAD);
    assert_int_equal(shm_rwlock_unlock(&s->rw), 0); /* no repair */
    errno = 0;
    assert_int_equal(shm_rwlock_rdlock(&s->rw), ENOTRECOVERABLE);
    assert_int_equal(errno, ENOTRECOVERABLE);
    assert_int_equal(shm_rwlock_wrlock(&s->rw), ENOTRECOVERABLE);
    assert_int_equal(shm_rwlock_tryrdlock(&s->rw), ENOTRECOVERABLE);
    assert_int_equal(shm_rwlock_timedwrlock(&s->rw, MS), ENOTRECOVERABLE);
    assert_int_equal(shm_rwlock_destroy(&s->rw), 0);
    assert_int_equal(shm_rwlock_init(&s->rw), 0);
    assert_int_equal(shm_rwlock_wrlock(&s->rw), 0);
    assert_int_equal(shm_rwlock_unlock(&s->rw), 0);
    assert_int_equal(shm_rwlock_destroy(&s->rw), 0);
    sync_free(s);
}

static void test_timeouts(void **state)
{
    (void)state;
    struct shared *s = new_shared();
    pid_t pid = child_holding(s, 'r');
    uint64_t t0 = now_ns();
    assert_int_equal(shm_rwlock_timedwrlock(&s->rw, 50 * MS), ETIMEDOUT);
    uint64_t took = now_ns() - t0;
    assert_true(took >= 50 * MS && took < 1000 * MS);
    assert_int_equal(shm_rwlock_timedrdlock(&s->rw, 0), 0); /* shares */
    assert_int_equal(shm_rwlock_unlock(&s->rw), 0);
    child_kill(pid);
    assert_int_equal(shm_rwlock_timedwrlock(&s->rw, 1000 * MS), EOWNERDEAD);
    assert_int_equal(shm_rwlock_consistent(&s->rw), 0);
    assert_int_equal(shm_rwlock_unlock(&s->rw), 0);
    pid = child_holding(s, 'w');
    t0 = now_ns();
    assert_int_equal(shm_rwlock_timedrdlock(&s->rw, 50 * MS), ETIMEDOUT);
    took = now_ns() - t0;
    assert_true(took >= 50 * MS && took < 1000 * MS);
    child_kill(pid);
    assert_int_equal(shm_rwlock_timedwrlock(&s->rw, 1000 * MS), EOWNERDEAD);
    assert_int_equal(shm_rwlock_consistent(&s->rw), 0);
    assert_int_equal(shm_rwlock_unlock(&s->rw), 0);
    assert_int_equal(shm_rwlock_destroy(&s->rw), 0);
    sync_free(s);
}

static void test_errors(void **state)
{
    (void)state;
    struct shared *s = sync_alloc(sizeof *s);
    errno = 0;
    assert_int_equal(shm_rwlock_rdlock(&s->rw), EINVAL);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(shm_rwlock_wrlock(&s->rw), EINVAL);
    assert_int_equal(shm_rwlock_tryrdlock(&s->rw), EINVAL);
    assert_int_equal(shm_rwlock_trywrlock(&s->rw), EINVAL);
    assert_int_equal(shm_rwlock_timedrdlock(&s->rw, 1), EINVAL);
    assert_int_equal(shm_rwlock_timedwrlock(&s->rw, 1), EINVAL);
    assert_int_equal(shm_rwlock_unlock(&s->rw), EINVAL);
    assert_int_equal(shm_rwlock_consistent(&s->rw), EINVAL);
    assert_int_equal(shm_rwlock_destroy(&s->rw), EINVAL);
    assert_int_equal(shm_rwlock_init(NULL), EINVAL);
    assert_int_equal(shm_rwlock_init(&s->rw), 0);
    assert_int_equal(shm_rwlock_init(&s->rw), EBUSY);
    assert_int_equal(shm_rwlock_unlock(&s->rw), EPERM);
    assert_int_equal(shm_rwlock_destroy(&s->rw), 0);
    assert_int_equal(shm_rwlock_rdlock(&s->rw), EINVAL);
    assert_int_equal(shm_rwlock_destroy(&s->rw), EINVAL);
    sync_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readers_and_writers),
        cmocka_unit_test(test_shared_and_exclusive),
        cmocka_unit_test(test_writer_preference),
        cmocka_unit_test(test_reader_bound),
        cmocka_unit_test(test_dead_reader_writer_told),
        cmocka_unit_test(test_dead_reader_wakes_waiting_writer),
        cmocka_unit_test(test_dead_writer_reader_told),
        cmocka_unit_test(test_unrepaired_is_unrecoverable),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, sync_setup, sync_teardown);
}
