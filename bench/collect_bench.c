/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What a collection costs, against one pass over the bitmap words of the
 * same arena measured in the same run (shm_arena_available reads every
 * word once).
 *
 *   collect_bench FILE [CHUNKS [REPS [CAPACITY_MIB]]]
 *
 * For each repetition: a new arena of CAPACITY_MIB (64) MiB at FILE,
 * CHUNKS (1000000) chunks of 1..64 bytes, every other one reachable
 * (the trace marks it from a list kept in this process), the rest
 * garbage. Times shm_arena_available, then shm_arena_collect (which frees
 * the garbage), then a second collection that frees nothing; prints the
 * medians and the ratios to the pass. bench/run.sh runs it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shm_alloc.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int compare(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct kept {
    shm_offt *offsets;
    size_t count;
    double trace_ms; /* time spent inside the trace: the marks */
};

static int trace(shm_collector *col, void *ctx)
{
    struct kept *k = ctx;
    double start = now_ms();
    for (size_t i = 0; i < k->count; i++) {
        int err = shm_collect_mark(col, k->offsets[i]);
        if (err != 0 && err != EALREADY)
            return err;
    }
    k->trace_ms = now_ms() - start;
    return 0;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, compare);
    return v[n / 2];
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 5) {
        fprintf(stderr, "usage: collect_bench FILE [CHUNKS [REPS [MIB]]]\n");
        return 2;
    }
    const char *path = argv[1];
    size_t chunks = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000000;
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    size_t mib = argc > 4 ? strtoul(argv[4], NULL, 10) : 64;
    if (reps < 1 || reps > 100 || chunks == 0) {
        fprintf(stderr, "collect_bench: bad arguments\n");
        return 2;
    }
    double *pass = calloc((size_t)reps, sizeof *pass);
    double *collect = calloc((size_t)reps, sizeof *collect);
    double *again = calloc((size_t)reps, sizeof *again);
    double *marking = calloc((size_t)reps, sizeof *marking);
    struct kept k = {calloc(chunks, sizeof(shm_offt)), 0, 0};
    if (!pass || !collect || !again || !marking || !k.offsets)
        return 1;
    size_t freed = 0, kept = 0;
    uint64_t rng = 88172645463325252u;
    for (int r = 0; r < reps; r++) {
        unlink(path);
        struct shm_arena_options opts = {.capacity = mib << 20,
                                         .flags = SHM_ARENA_EXCLUSIVE};
        shm_arena *a = shm_arena_open(path, &opts);
        if (a == NULL) {
            fprintf(stderr, "collect_bench: %s: %s\n", path, strerror(errno));
            return 1;
        }
        k.count = 0;
        for (size_t i = 0; i < chunks; i++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            shm_offt off = shm_arena_malloc(a, 1 + rng % 64);
            if (off == SHM_NULL) {
                fprintf(stderr, "collect_bench: full after %zu chunks\n", i);
                return 1;
            }
            if (i % 2 == 0)
                k.offsets[k.count++] = off;
        }
        double t0 = now_ms();
        size_t available = shm_arena_available(a);
        double t1 = now_ms();
        struct shm_collection report;
        int err = shm_arena_collect(a, trace, &k, &report);
        double t2 = now_ms();
        marking[r] = k.trace_ms;
        struct shm_collection second;
        err = err ? err : shm_arena_collect(a, trace, &k, &second);
        double t3 = now_ms();
        if (err != 0 || second.freed_chunks != 0 ||
            report.kept_chunks != k.count ||
            shm_arena_available(a) != available + report.freed_bytes) {
            fprintf(stderr, "collect_bench: collection failed (%d)\n", err);
            return 1;
        }
        pass[r] = t1 - t0;
        collect[r] = t2 - t1;
        again[r] = t3 - t2;
        freed = report.freed_chunks;
        kept = report.kept_chunks;
        shm_arena_close(a);
        unlink(path);
    }
    double c = median(pass, reps), g = median(collect, reps),
           s = median(again, reps), m = median(marking, reps);
    printf("collect_bench: %zu MiB, %zu chunks of 1..64 B, %d runs "
           "(medians)\n",
           mib, chunks, reps);
    printf("  one pass (shm_arena_available)     %8.2f ms  1.00\n", c);
    printf("  collect: %zu kept, %zu freed   %8.2f ms  %5.2f x pass\n", kept,
           freed, g, g / c);
    printf("  collect again: nothing to free     %8.2f ms  %5.2f x pass\n", s,
           s / c);
    printf("  of which the trace's %zu marks   %8.2f ms\n", kept, m);
    printf("  marks: %zu KiB of this process's memory\n",
           (mib << 20) / get_shm_min_allocatable_size() / 8 / 1024);
    free(pass);
    free(collect);
    free(again);
    free(marking);
    free(k.offsets);
    return 0;
}
