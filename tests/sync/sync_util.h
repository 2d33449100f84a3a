/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Helpers for the tests of the locks and events: an arena for each test,
 * children that report through pipes, and the skip when the objects do
 * not fit a chunk of this build's size range. Public headers only.
 */
#ifndef SYNC_UTIL_H
#define SYNC_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/scratch.h"
#include "shm_alloc.h"
#include "shm_sync.h"

/* The arena every test of the file uses, and its path. */
static shm_arena *sync_arena;
static char arena_path[512];

static inline int sync_setup(void **state)
{
    (void)state;
    static int counter;
    char name[64];
    snprintf(name, sizeof name, "sync-%d-%d.shm", (int)getpid(), counter++);
    scratch_path(arena_path, sizeof arena_path, name);
    unlink(arena_path);
    size_t cap = (size_t)1 << 20;
    if (cap < 16 * get_shm_max_allocatable_size())
        cap = 16 * get_shm_max_allocatable_size();
    struct shm_arena_options opts = {.capacity = cap};
    sync_arena = shm_arena_open(arena_path, &opts);
    return sync_arena ? 0 : -1;
}

static inline int sync_teardown(void **state)
{
    (void)state;
    shm_arena_close(sync_arena);
    unlink(arena_path);
    return 0;
}

/* A zeroed chunk of `size` bytes in the arena; skips the test when this
 * build's chunks are smaller. */
static inline void *sync_alloc(size_t size)
{
    if (get_shm_max_allocatable_size() < size) {
        fprintf(stderr, "chunks of %zu bytes cannot hold %zu: skipped\n",
                get_shm_max_allocatable_size(), size);
        skip();
    }
    void *p = shm_arena_ptr_calloc(sync_arena, 1, size);
    assert_non_null(p);
    return p;
}

static inline void sync_free(void *p)
{
    shm_arena_ptr_free(sync_arena, p);
}

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One byte through a pipe: how children say "I am there". */
static inline void pipe_put(int fd, char c)
{
    while (write(fd, &c, 1) != 1 && errno == EINTR) {
    }
}

static inline char pipe_get(int fd)
{
    char c = 0;
    ssize_t n;
    do
        n = read(fd, &c, 1);
    while (n < 0 && errno == EINTR);
    return n == 1 ? c : 0;
}

/* Waits for a child and returns its exit status (-signal when killed). */
static inline int child_wait(pid_t pid)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(st))
        return -WTERMSIG(st);
    return WEXITSTATUS(st);
}

/* Kills a child that holds something and reaps it. */
static inline void child_kill(pid_t pid)
{
    kill(pid, SIGKILL);
    assert_int_equal(child_wait(pid), -SIGKILL);
}

/* Runs body(arg) in `threads` threads of each of `procs` forked
 * processes, all at once, and asserts that every process exited 0: a
 * process exits nonzero when a thread could not start or returned
 * non-NULL. At most 8 processes and 8 threads each. */
static inline void run_in_processes(int procs, int threads,
                                    void *(*body)(void *), void *arg)
{
    pid_t pids[8];
    assert_true(procs <= 8 && threads <= 8);
    for (int p = 0; p < procs; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            pthread_t t[8];
            int bad = 0;
            for (int i = 0; i < threads; i++)
                bad |= pthread_create(&t[i], NULL, body, arg) != 0;
            for (int i = 0; i < threads; i++) {
                void *r = NULL;
                pthread_join(t[i], &r);
                bad |= r != NULL;
            }
            _exit(bad);
        }
    }
    for (int p = 0; p < procs; p++)
        assert_int_equal(child_wait(pids[p]), 0);
}

#endif /* SYNC_UTIL_H */
