/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm_mutex: mutual exclusion between forked processes and their threads,
 * a holder SIGKILLed inside its critical section (the next locker, waiting
 * already or coming later, is told EOWNERDEAD, within the liveness
 * interval; two waiters at once: one is told), a holder killed while
 * other processes contend, ENOTRECOVERABLE after an unlock without
 * shm_mutex_consistent, a holder started as a separate program that finds
 * the mutex through a named root, a forked child's holder whose own child
 * outlives it, a handle closed while holding, and the refusals (a
 * read-only handle, memory outside every arena).
 */
#define _GNU_SOURCE
#include "sync_util.h"

#include <pthread.h>
#include <stdatomic.h>

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

/* How long after the holder's death a blocked locker may take to be told:
 * the longest liveness interval (100 ms) and room for a loaded machine. */
#define TOLD_WITHIN_NS (400ull * 1000 * 1000)

struct timed_waiter {
    struct shared *s;
    atomic_int result; /* -1 while blocked */
    uint64_t returned_at;
};

static void *timed_wait_lock(void *arg)
{
    struct timed_waiter *w = arg;
    int r = shm_mutex_lock(&w->s->m);
    w->returned_at = now_ns();
    atomic_store(&w->result, r);
    if (r == EOWNERDEAD) {
        shm_mutex_consistent(&w->s->m);
        shm_mutex_unlock(&w->s->m);
    }
    return NULL;
}

/* A locker that has waited long (its liveness interval at the longest)
 * is told within that interval of the kill, not at its next whim. */
static void test_blocked_locker_told_within_interval(void **state)
{
    (void)state;
    struct shared *s = new_shared();
    pid_t pid = holder_in_critical_section(s);
    struct timed_waiter w = {.s = s};
    atomic_init(&w.result, -1);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, timed_wait_lock, &w), 0);
    struct timespec ts = {1, 500 * 1000 * 1000}; /* 2+4+...+100 ms and on */
    nanosleep(&ts, NULL);
    /* still blocked: the holder lives */
    assert_int_equal(atomic_load(&w.result), -1);
    uint64_t killed_at = now_ns();
    child_kill(pid);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(atomic_load(&w.result), EOWNERDEAD);
    uint64_t took = w.returned_at - killed_at;
    fprintf(stderr, "told %.1f ms after the kill\n", (double)took / 1e6);
    assert_true(took < TOLD_WITHIN_NS);
    assert_int_equal(shm_mutex_destroy(&s->m), 0);
    sync_free(s);
}

/* A child that locks (0 or EOWNERDEAD), repairs, reports its result as
 * one byte through fd, and unlocks. */
static pid_t waiter_process(struct shared *s, int fd)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int r = shm_mutex_lock(&s->m);
        if (r == EOWNERDEAD) {
            if (s->half_written != 1)
                _exit(2);
            s->half_written = 0;
            if (shm_mutex_consistent(&s->m) != 0)
                _exit(3);
        }
        pipe_put(fd, r == 0 ? '0' : r == EOWNERDEAD ? 'D' : 'E');
        _exit(shm_mutex_unlock(&s->m) == 0 ? 0 : 4);
    }
    return pid;
}

/* Two processes blocked on a holder that is killed: both find it dead,
 * one takes it over (EOWNERDEAD) and the other gets it after, normally. */
static void test_two_waiters_one_told(void **state)
{
    (void)state;
    struct shared *s = new_shared();
    pid_t holder = holder_in_critical_section(s);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t a = waiter_process(s, fds[1]);
    pid_t b = waiter_process(s, fds[1]);
    close(fds[1]);
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    child_kill(holder);
    char first = pipe_get(fds[0]);
    char second = pipe_get(fds[0]);
    close(fds[0]);
    assert_int_equal(child_wait(a), 0);
    assert_int_equal(child_wait(b), 0);
    assert_int_equal(first, 'D');
    assert_int_equal(second, '0');
    assert_int_equal(s->half_written, 0);
    assert_int_equal(shm_mutex_lock(&s->m), 0);
    assert_int_equal(shm_mutex_unlock(&s->m), 0);
    assert_int_equal(shm_mutex_destroy(&s->m), 0);
    sync_free(s);
}

struct contended {
    struct shared sh;
    /* 1 inside the critical section; volatile: every store must reach the
     * memory, where a survivor of a killed holder reads it */
    volatile uint64_t dirty;
    atomic_int told; /* EOWNERDEAD results seen */
    atomic_int bad;  /* anything else unexpected */
};

#define VICTIM_ROUNDS 500

static void *bump_and_repair(void *arg)
{
    struct contended *c = arg;
    for (int i = 0; i < ROUNDS; i++) {
        int r = shm_mutex_lock(&c->sh.m);
        if (r == EOWNERDEAD) {
            if (c->dirty != 1)
                atomic_fetch_add(&c->bad, 1);
            c->dirty = 0; /* the victim died before its increment */
            atomic_fetch_add(&c->told, 1);
            if (shm_mutex_consistent(&c->sh.m) != 0)
                atomic_fetch_add(&c->bad, 1);
        } else if (r != 0) {
            return (void *)1;
        }
        if (c->dirty != 0)
            atomic_fetch_add(&c->bad, 1);
        c->dirty = 1;
        c->sh.counter++;
        c->dirty = 0;
        if (shm_mutex_unlock(&c->sh.m) != 0)
            return (void *)1;
    }
    return NULL;
}

/* 3 processes x 2 threads contend while a fourth process dies inside its
 * critical section: exactly one survivor is told, nothing is lost. */
static void test_holder_killed_under_contention(void **state)
{
    (void)state;
    struct contended *c = sync_alloc(sizeof *c);
    assert_int_equal(shm_mutex_init(&c->sh.m), 0);
    pid_t victim = fork();
    assert_true(victim >= 0);
    if (victim == 0) {
        for (int i = 0; i < VICTIM_ROUNDS; i++) {
            if (shm_mutex_lock(&c->sh.m) != 0)
                _exit(1);
            c->sh.counter++;
            shm_mutex_unlock(&c->sh.m);
        }
        if (shm_mutex_lock(&c->sh.m) != 0)
            _exit(1);
        c->dirty = 1;
        raise(SIGKILL);
    }
    run_in_processes(PROCS - 1, THREADS, bump_and_repair, c);
    assert_int_equal(child_wait(victim), -SIGKILL);
    /* the victim may have died before the others were done: or after */
    int r = shm_mutex_lock(&c->sh.m);
    if (r == EOWNERDEAD) {
        assert_int_equal(atomic_load(&c->told), 0);
        c->dirty = 0;
        atomic_fetch_add(&c->told, 1);
        assert_int_equal(shm_mutex_consistent(&c->sh.m), 0);
    } else {
        assert_int_equal(r, 0);
    }
    assert_int_equal(shm_mutex_unlock(&c->sh.m), 0);
    assert_int_equal(atomic_load(&c->told), 1);
    assert_int_equal(atomic_load(&c->bad), 0);
    assert_int_equal(c->dirty, 0);
    assert_int_equal(c->sh.counter,
                     (uint64_t)VICTIM_ROUNDS +
                         (uint64_t)(PROCS - 1) * THREADS * ROUNDS);
    assert_int_equal(shm_mutex_destroy(&c->sh.m), 0);
    sync_free(c);
}

/* A forked child locks (it enters the table for that), forks a child of
 * its own that outlives it, and is killed: the grandchild's copy of the
 * child's descriptor must not keep the dead holder alive. */
static void test_forked_holder_outlived_by_its_child(void **state)
{
    (void)state;
    struct shared *s = new_shared();
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        if (shm_mutex_lock(&s->m) != 0)
            _exit(1);
        s->half_written = 3;
        pid_t grandchild = fork();
        if (grandchild < 0)
            _exit(1);
        if (grandchild == 0) {
            /* not the holder: its unlock is refused */
            if (shm_mutex_unlock(&s->m) != EPERM)
                _exit(1);
            for (;;)
                pause();
        }
        pipe_put(fds[1], 'A');
        if (write(fds[1], &grandchild, sizeof grandchild) !=
            (ssize_t)sizeof grandchild)
            _exit(1);
        for (;;)
            pause();
    }
    close(fds[1]);
    assert_int_equal(pipe_get(fds[0]), 'A');
    pid_t grandchild = 0;
    assert_int_equal(read(fds[0], &grandchild, sizeof grandchild),
                     (ssize_t)sizeof grandchild);
    close(fds[0]);
    child_kill(pid);
    int r = shm_mutex_timedlock(&s->m, 3000ull * 1000 * 1000);
    kill(grandchild, SIGKILL); /* not our child: reaped by init */
    assert_int_equal(r, EOWNERDEAD);
    assert_int_equal(s->half_written, 3);
    assert_int_equal(shm_mutex_consistent(&s->m), 0);
    assert_int_equal(shm_mutex_unlock(&s->m), 0);
    assert_int_equal(shm_mutex_destroy(&s->m), 0);
    sync_free(s);
}

/* A process that closes its handle while holding gives the mutex up: the
 * next locker is told, though that process lives on. */
static void test_handle_closed_while_holding(void **state)
{
    (void)state;
    struct shared *s = new_shared();
    shm_offt off = (shm_offt)((char *)s - (char *)shm_arena_base(sync_arena));
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        shm_arena *a = shm_arena_open(arena_path, NULL);
        if (a == NULL)
            _exit(1);
        struct shared *mine =
            (struct shared *)((char *)shm_arena_base(a) + off);
        if (shm_mutex_lock(&mine->m) != 0)
            _exit(1);
        shm_arena_close(a);
        pipe_put(fds[1], 'C');
        for (;;)
            pause();
    }
    close(fds[1]);
    assert_int_equal(pipe_get(fds[0]), 'C');
    close(fds[0]);
    assert_int_equal(shm_mutex_timedlock(&s->m, 3000ull * 1000 * 1000),
                     EOWNERDEAD);
    child_kill(pid);
    assert_int_equal(shm_mutex_consistent(&s->m), 0);
    assert_int_equal(shm_mutex_unlock(&s->m), 0);
    assert_int_equal(shm_mutex_destroy(&s->m), 0);
    sync_free(s);
}

/* A read-only handle cannot lock (EPERM, not a crash on its read-only
 * mapping); memory outside every open arena is not a usable mutex. */
static void test_who_cannot_lock(void **state)
{
    (void)state;
    struct shared *s = new_shared();
    shm_offt off = (shm_offt)((char *)s - (char *)shm_arena_base(sync_arena));
    struct shm_arena_options ro = {.flags = SHM_ARENA_READ_ONLY};
    shm_arena *reader = shm_arena_open(arena_path, &ro);
    assert_non_null(reader);
    shm_mutex *seen =
        &((struct shared *)((char *)shm_arena_base(reader) + off))->m;
    errno = 0;
    assert_int_equal(shm_mutex_lock(seen), EPERM);
    assert_int_equal(errno, EPERM);
    assert_int_equal(shm_mutex_trylock(seen), EPERM);
    assert_int_equal(shm_mutex_timedlock(seen, 1000), EPERM);
    assert_int_equal(shm_mutex_unlock(seen), EPERM);
    assert_int_equal(shm_mutex_destroy(seen), EPERM);
    assert_int_equal(shm_mutex_init(seen), EPERM);
    /* the writer's view is untouched and works */
    assert_int_equal(shm_mutex_lock(&s->m), 0);
    assert_int_equal(shm_mutex_unlock(&s->m), 0);
    assert_int_equal(shm_arena_close(reader), 0);

    shm_mutex *outside = aligned_alloc(64, sizeof *outside);
    assert_non_null(outside);
    memset(outside, 0, sizeof *outside);
    assert_int_equal(shm_mutex_init(outside), EINVAL);
    assert_int_equal(shm_mutex_lock(outside), EINVAL);
    free(outside);
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
        cmocka_unit_test(test_blocked_locker_told_within_interval),
        cmocka_unit_test(test_two_waiters_one_told),
        cmocka_unit_test(test_holder_killed_under_contention),
        cmocka_unit_test(test_forked_holder_outlived_by_its_child),
        cmocka_unit_test(test_handle_closed_while_holding),
        cmocka_unit_test(test_who_cannot_lock),
    };
    return cmocka_run_group_tests(tests, sync_setup, sync_teardown);
}
