/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Lock/unlock pairs of shm_mutex against a plain process-shared pthread
 * mutex (PTHREAD_PROCESS_SHARED, not robust) and, for comparison, a robust
 * process-shared one; all in the same arena:
 *
 *   sync_bench uncontended|contended shm|pthread|robust PAIRS [DIR]
 *
 * uncontended: one thread, PAIRS lock/unlock pairs. contended: two forked
 * processes, PAIRS pairs each, on one mutex, incrementing a shared counter
 * inside (checked at the end). Prints the time per pair; bench/sync_run.sh
 * runs it under hyperfine for the whole-process figures.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm_alloc.h"
#include "shm_sync.h"

struct shared {
    shm_mutex m;
    pthread_mutex_t pm;
    pthread_mutex_t robust;
    atomic_int ready;
    uint64_t counter;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int run(struct shared *s, int impl, uint64_t pairs)
{
    pthread_mutex_t *pm = impl == 'r' ? &s->robust : &s->pm;
    for (uint64_t i = 0; i < pairs; i++) {
        if (impl == 's') {
            if (shm_mutex_lock(&s->m) != 0)
                return 1;
            s->counter++;
            shm_mutex_unlock(&s->m);
        } else {
            if (pthread_mutex_lock(pm) != 0)
                return 1;
            s->counter++;
            pthread_mutex_unlock(pm);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[1], "uncontended") != 0 &&
                     strcmp(argv[1], "contended") != 0)) {
        fprintf(stderr, "usage: sync_bench uncontended|contended "
                        "shm|pthread|robust PAIRS [DIR]\n");
        return 2;
    }
    bool contended = strcmp(argv[1], "contended") == 0;
    int impl = argv[2][0]; /* 's'hm, 'p'thread, 'r'obust */
    uint64_t pairs = strtoull(argv[3], NULL, 0);
    const char *dir = argc > 4 ? argv[4] : "/tmp";

    char path[4096];
    snprintf(path, sizeof path, "%s/sync_bench-%d.shm", dir, (int)getpid());
    struct shm_arena_options opts = {.capacity = 1u << 20};
    shm_arena *arena = shm_arena_open(path, &opts);
    unlink(path);
    if (arena == NULL) {
        fprintf(stderr, "sync_bench: %s: %s\n", path, strerror(errno));
        return 1;
    }
    struct shared *s = shm_arena_ptr_calloc(arena, 1, sizeof *s);
    if (s == NULL || shm_mutex_init(&s->m) != 0)
        return 1;
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&s->pm, &attr);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&s->robust, &attr);
    pthread_mutexattr_destroy(&attr);

    pid_t child = -1;
    if (contended) {
        child = fork();
        if (child < 0)
            return 1;
        if (child == 0) {
            atomic_fetch_add(&s->ready, 1);
            while (atomic_load(&s->ready) < 2) {
            }
            _exit(run(s, impl, pairs));
        }
        atomic_fetch_add(&s->ready, 1);
        while (atomic_load(&s->ready) < 2) {
        }
    }
    uint64_t t0 = now_ns();
    int bad = run(s, impl, pairs);
    if (contended) {
        int st = 0;
        waitpid(child, &st, 0);
        bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    uint64_t took = now_ns() - t0;
    uint64_t want = contended ? 2 * pairs : pairs;
    if (bad || s->counter != want) {
        fprintf(stderr,
                "sync_bench: counter %" PRIu64 ", expected %" PRIu64 "\n",
                s->counter, want);
        return 1;
    }
    printf("%s %s %.1f ns per pair\n", argv[1], argv[2],
           (double)took / (double)pairs);
    shm_mutex_destroy(&s->m);
    shm_arena_close(arena);
    return 0;
}
