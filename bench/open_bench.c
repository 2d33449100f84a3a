/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * How long an open takes with many processes attached.
 *
 *   open_bench hold FILE N     creates FILE, starts N processes that each
 *                              open it and stay attached, prints "ready"
 *                              and waits until its standard input closes
 *   open_bench open FILE M     opens and closes FILE M times, prints the
 *                              median and the mean of one open + close
 *   open_bench run FILE N M    both at once: holds N, times M
 *
 * bench/run.sh (open_benchmark) drives it with hyperfine.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm_alloc.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int compare(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Starts n holders; returns their pids (the caller kills them). */
static pid_t *hold(const char *path, long n)
{
    struct shm_arena_options opts = {.capacity = 16u << 20};
    shm_arena *made = shm_arena_open(path, &opts);
    if (made == NULL) {
        fprintf(stderr, "open_bench: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    shm_arena_close(made);
    pid_t *pids = calloc((size_t)n, sizeof *pids);
    int ready[2];
    if (pids == NULL || pipe(ready) != 0)
        exit(1);
    for (long i = 0; i < n; i++) {
        fflush(NULL);
        pids[i] = fork();
        if (pids[i] < 0) {
            perror("open_bench: fork");
            exit(1);
        }
        if (pids[i] == 0) {
            shm_arena *a = shm_arena_open(path, NULL);
            char byte = a ? 'r' : 'x';
            if (write(ready[1], &byte, 1) != 1)
                _exit(1);
            pause();
            _exit(0);
        }
    }
    for (long i = 0; i < n; i++) {
        char byte;
        if (read(ready[0], &byte, 1) != 1 || byte != 'r') {
            fprintf(stderr, "open_bench: a holder could not attach\n");
            exit(1);
        }
    }
    close(ready[0]);
    close(ready[1]);
    return pids;
}

static void time_opens(const char *path, long m)
{
    double *t = calloc((size_t)m + 1, sizeof *t);
    if (t == NULL)
        exit(1);
    struct shm_arena_options opts = {.flags = SHM_ARENA_NO_CREATE};
    double sum = 0;
    for (long i = 0; i < m; i++) {
        double start = now_us();
        shm_arena *a = shm_arena_open(path, &opts);
        if (a == NULL) {
            fprintf(stderr, "open_bench: %s: %s\n", path, strerror(errno));
            exit(1);
        }
        shm_arena_close(a);
        t[i] = now_us() - start;
        sum += t[i];
    }
    if (m > 0) {
        qsort(t, (size_t)m, sizeof *t, compare);
        printf("open_bench: %ld opens: median %.1f us, mean %.1f us\n", m,
               t[m / 2], sum / (double)m);
    }
    free(t);
}

static void stop(pid_t *pids, long n)
{
    for (long i = 0; i < n; i++)
        kill(pids[i], SIGTERM);
    for (long i = 0; i < n; i++)
        waitpid(pids[i], NULL, 0);
    free(pids);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "hold") == 0) {
        long n = strtol(argv[3], NULL, 10);
        pid_t *pids = hold(argv[2], n);
        printf("ready\n");
        fflush(stdout);
        char buf[64];
        while (read(STDIN_FILENO, buf, sizeof buf) > 0) {
        }
        stop(pids, n);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "open") == 0) {
        time_opens(argv[2], strtol(argv[3], NULL, 10));
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "run") == 0) {
        long n = strtol(argv[3], NULL, 10);
        pid_t *pids = hold(argv[2], n);
        time_opens(argv[2], strtol(argv[4], NULL, 10));
        stop(pids, n);
        unlink(argv[2]);
        return 0;
    }
    fprintf(stderr, "usage: open_bench hold FILE N | open FILE M | "
                    "run FILE N M\n");
    return 2;
}
