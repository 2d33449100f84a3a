/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm_mutex: mutual exclusion between forked processes and their threads,
 * a holder SIGKILLed inside its critical section (the next locker, waiting
 * already or coming later, is told EOWNERDEAD), ENOTRECOVERABLE after an
 * unlock without shm_mutex_consistent, a holder started as a separate
 * program that finds the mutex through a named root, and the refusals.
 */
#define _GNU_SOURCE
#include "sync_util.h"

#include <pthread.h>

#define PROCS 4
#define THREADS 2
#define ROUNDS 5000

struct shared {
    shm_mutex m;
    uint64_t counter;      /* protected by m */
    uint64_t half_written; /* protected by m */
};

static struct shared *new_shared(void)
{
    struct shared *s = sync_alloc(sizeof *s);
    assert_int_equal(shm_mutex_init(&s->m), 0);
    return s;
}

static void *bump(void *arg)
{
    struct shared *s = arg;
    for (int i = 0; i < ROUNDS; i++) {
        if (shm_mutex_lock(&s->m) != 0)
            return (void *)1;
        uint64_t c = s->counter; /* a lost update shows as a short count */
        s->counter = c + 1;
        if (shm_mutex_unlock(&s->m) != 0)
            return (void *)1;
    }
    return NULL;
}

/* 4 processes x 2 threads increment one counter without losing any. */
static void test_counter_exact(void **state)
{
    (void)state;
    struct shared *s = new_shared();
    run_in_processes(PROCS, THREADS, bump, s);
    assert_int_equal(s->counter, (uint64_t)PROCS * THREADS * ROUNDS);
    assert_int_equal(shm_mutex_destroy(&s->m), 0);
    sync_free(s);
}

/* A child that locks, writes half of an update, says so, and waits to be
 * killed. */
static pid_t holder_in_critical_section(struct shared *s)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        if (shm_mutex_lock(&s->m) != 0)
            _exit(1);
        s->half_written = 1;
        pipe_put(fds[1], 'L');
        for (;;)
            pause();
    }
    close(fds[1]);
    assert_int_equal(pipe_get(fds[0]), 'L');
    close(fds[0]);
    return pid;
}

static void test_killed_holder_next_locker_told(void **state)
{
    (void)state;
    struct shared *s = new_shared();
    pid_t pid = holder_in_critical_section(s);
    assert_int_equal(shm_mutex_trylock(&s->m), EBUSY);
    child_kill(pid);
    errno = 0;
    assert_int_equal(shm_mutex_lock(&s->m), EOWNERDEAD);
    assert_int_equal(errno, EOWNERDEAD);
    assert_int_equal(s->half_written, 1); /* what the dead holder left */
    s->half_written = 0;                  /* the repair */
    assert_int_equal(shm_mutex_consistent(&s->m), 0);
    assert_int_equal(shm_mutex_unlock(&s->m), 0);
    /* repaired: handed on normally */
    assert_int_equal(shm_mutex_lock(&s->m), 0);
    assert_int_equal(shm_mutex_unlock(&s->m), 0);
    assert_int_equal(shm_mutex_destroy(&s->m), 0);
    sync_free(s);
}

struct waiter {
    struct shared *s;
    int result;
};

static void *wait_lock(void *arg)
{
    struct waiter *w = arg;
    w->result = shm_mutex_lock(&w->s->m);
    if (w->result == EOWNERDEAD) {
        shm_mutex_consistent(&w->s->m);
        shm_mutex_unlock(&w->s->m);
    }
    return NULL;
}

/* A thread already blocked in lock is woken by the holder's death. */
static void test_killed_holder_wakes_blocked_locker(void **state)
{
    (void)state;
    struct shared *s = new_shared();
    pid_t pid = holder_in_critical_section(s);
    struct waiter w = {.s = s, .result = -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, wait_lock, &w), 0);
    /* the waiter may or may not be asleep yet: both must end the same */
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    child_kill(pid);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(w.result, EOWNERDEAD);
    assert_int_equal(shm_mutex_destroy(&s->m), 0);
    sync_free(s);
}

static void test_unlock_without_consistent_is_unrecoverable(void **state)
{
    (void)state;
    struct shared *s = new_shared();
    child_kill(holder_in_critical_section(s));
    assert_int_equal(shm_mutex_lock(&s->m), EOWNERDEAD);
    assert_int_equal(shm_mutex_unlock(&s->m), 0); /* no repair */
    errno = 0;
    assert_int_equal(shm_mutex_lock(&s->m), ENOTRECOVERABLE);
    assert_int_equal(errno, ENOTRECOVERABLE);
    assert_int_equal(shm_mutex_trylock(&s->m), ENOTRECOVERABLE);
    assert_int_equal(shm_mutex_timedlock(&s->m, 1000000), ENOTRECOVERABLE);
    /* the way out: destroy and initialise again */
    assert_int_equal(shm_mutex_destroy(&s->m), 0);
    assert_int_equal(shm_mutex_init(&s->m), 0);
    assert_int_equal(shm_mutex_lock(&s->m), 0);
    assert_int_equal(shm_mutex_unlock(&s->m), 0);
    assert_int_equal(shm_mutex_destroy(&s->m), 0);
    sync_free(s);
}

static void *exit_holding(void *arg)
{
    struct shared *s = arg;
    shm_mutex_lock(&s->m);
    return NULL; /* the thread ends holding the mutex */
}

/* Holds are per thread: a thread that ends holding the mutex is dead to
 * it even though its process lives on. */
static void test_thread_exit_counts_as_death(void **state)
{
    (void)state;
    struct shared *s = new_shared();
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, exit_holding, s), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(shm_mutex_lock(&s->m), EOWNERDEAD);
    assert_int_equal(shm_mutex_consistent(&s->m), 0);
    assert_int_equal(shm_mutex_unlock(&s->m), 0);
    assert_int_equal(shm_mutex_destroy(&s->m), 0);
    sync_free(s);
}

static void *try_unlock(void *arg)
{
    struct shared *s = arg;
    return (void *)(intptr_t)shm_mutex_unlock(&s->m);
}

static void test_errors(void **state)
{
    (void)state;
    struct shared *s = sync_alloc(sizeof *s);
    /* never initialised */
    errno = 0;
    assert_int_equal(shm_mutex_lock(&s->m), EINVAL);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(shm_mutex_trylock(&s->m), EINVAL);
    assert_int_equal(shm_mutex_timedlock(&s->m, 1), EINVAL);
    assert_int_equal(shm_mutex_unlock(&s->m), EINVAL);
    assert_int_equal(shm_mutex_consistent(&s->m), EINVAL);
    assert_int_equal(shm_mutex_destroy(&s->m), EINVAL);
    assert_int_equal(shm_mutex_init(NULL), EINVAL);
    assert_int_equal(shm_mutex_lock(NULL), EINVAL);
    assert_int_equal(shm_mutex_init((shm_mutex *)((char *)s + 4)), EINVAL);

    assert_int_equal(shm_mutex_init(&s->m), 0);
    assert_int_equal(shm_mutex_init(&s->m), EBUSY);
    assert_int_equal(shm_mutex_unlock(&s->m), EPERM); /* not held */
    assert_int_equal(shm_mutex_consistent(&s->m), EINVAL);
    assert_int_equal(shm_mutex_lock(&s->m), 0);
    assert_int_equal(shm_mutex_lock(&s->m), EDEADLK);
    assert_int_equal(shm_mutex_trylock(&s->m), EDEADLK);
    assert_int_equal(shm_mutex_destroy(&s->m), EBUSY);
    pthread_t t;
    void *r = NULL;
    assert_int_equal(pthread_create(&t, NULL, try_unlock, s), 0);
    assert_int_equal(pthread_join(t, &r), 0);
    assert_int_equal((intptr_t)r, EPERM); /* another thread's hold */
    assert_int_equal(shm_mutex_unlock(&s->m), 0);

    /* destroyed */
    assert_int_equal(shm_mutex_destroy(&s->m), 0);
    assert_int_equal(shm_mutex_lock(&s->m), EINVAL);
    assert_int_equal(shm_mutex_unlock(&s->m), EINVAL);
    assert_int_equal(shm_mutex_destroy(&s->m), EINVAL);
    sync_free(s);
}

static void test_timedlock_times_out(void **state)
{
    (void)state;
    struct shared *s = new_shared();
    pid_t pid = holder_in_critical_section(s);
    uint64_t t0 = now_ns();
    assert_int_equal(shm_mutex_timedlock(&s->m, 50 * 1000 * 1000), ETIMEDOUT);
    uint64_t took = now_ns() - t0;
    assert_true(took >= 50 * 1000 * 1000);
    assert_true(took < 1000 * 1000 * 1000);
    assert_int_equal(shm_mutex_timedlock(&s->m, 0), ETIMEDOUT);
    child_kill(pid);
    assert_int_equal(shm_mutex_timedlock(&s->m, 1000 * 1000 * 1000),
                     EOWNERDEAD);
    assert_int_equal(shm_mutex_consistent(&s->m), 0);
    assert_int_equal(shm_mutex_unlock(&s->m), 0);
    assert_int_equal(shm_mutex_timedlock(&s->m, 0), 0);
    assert_int_equal(shm_mutex_unlock(&s->m), 0);
    assert_int_equal(shm_mutex_destroy(&s->m), 0);
    sync_free(s);
}

/* An unrelated program (this one, run again with exec) opens the file by
 * name, finds the mutex through a named root, locks it and is killed. */
static int run_as_holder(const char *path)
{
    shm_arena *a = shm_arena_open(path, NULL);
    if (a == NULL)
        return 2;
    shm_offt off = shm_arena_root_get(a, "sync-mutex");
    if (off == SHM_NULL)
        return 3;
    struct shared *s = (struct shared *)((char *)shm_arena_base(a) + off);
    if (shm_mutex_lock(&s->m) != 0)
        return 4;
    s->half_written = 7;
    pipe_put(1, 'L'); /* stdout is the pipe */
    for (;;)
        pause();
}

static void test_unrelated_process_killed(void **state)
{
    (void)state;
    struct shared *s = new_shared();
    shm_offt off = (shm_offt)((char *)s - (char *)shm_arena_base(sync_arena));
    assert_int_equal(shm_arena_root_set(sync_arena, "sync-mutex", off), 0);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        execl("/proc/self/exe", "test_mutex", "--holder", arena_path,
              (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    assert_int_equal(pipe_get(fds[0]), 'L');
    close(fds[0]);
    child_kill(pid);
    assert_int_equal(shm_mutex_lock(&s->m), EOWNERDEAD);
    assert_int_equal(s->half_written, 7);
    assert_int_equal(shm_mutex_consistent(&s->m), 0);
    assert_int_equal(shm_mutex_unlock(&s->m), 0);
    assert_int_equal(shm_mutex_destroy(&s->m), 0);
    sync_free(s);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--holder") == 0)
        return run_as_holder(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_exact),
        cmocka_unit_test(test_killed_holder_next_locker_told),
        cmocka_unit_test(test_killed_holder_wakes_blocked_locker),
        cmocka_unit_test(test_unlock_without_consistent_is_unrecoverable),
        cmocka_unit_test(test_thread_exit_counts_as_death),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_timedlock_times_out),
        cmocka_unit_test(test_unrelated_process_killed),
    };
    return cmocka_run_group_tests(tests, sync_setup, sync_teardown);
}
