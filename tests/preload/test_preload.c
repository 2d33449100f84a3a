/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * libshm_preload.so (bench/preload.c), which sends a program's malloc
 * family to the default arena: a program that knows nothing of the
 * library (preload_workload.c) runs under it from several threads with
 * every byte checked; the arena serves every request it can, and after
 * the program exits the file holds exactly what the program left
 * allocated, nothing cached and a clean check. A real program (Python,
 * sort) gives the same output with the preload as without.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/skip_because.h"
#include "common/whole_file.h"
#include "shm_alloc.h"

extern char **environ;

/* Runs argv (NULL-terminated), stdin from `input` (NULL: /dev/null),
 * under the preload on `arena_path` when it is not NULL; the exit status
 * (128 + signal when killed) and stdout, which the caller frees. */
static int run(const char *const *argv, const char *input,
               const char *arena_path, char **out)
{
    char *out_path = path_of("run.out"), *in_path = path_of("run.in");
    FILE *in = fopen(in_path, "wb");
    assert_non_null(in);
    if (input)
        fputs(input, in);
    fclose(in);
    size_t envc = 0;
    while (environ[envc])
        envc++;
    char **envp = calloc(envc + 4, sizeof *envp);
    assert_non_null(envp);
    size_t n = 0;
    for (size_t i = 0; i < envc; i++)
        if (strncmp(environ[i], "SHM_FILE=", 9) != 0 &&
            strncmp(environ[i], "SHM_SIZE=", 9) != 0 &&
            strncmp(environ[i], "LD_PRELOAD=", 11) != 0)
            envp[n++] = environ[i];
    char *file = NULL, *preload = NULL;
    if (arena_path) {
        assert_true(asprintf(&file, "SHM_FILE=%s", arena_path) > 0);
        assert_true(asprintf(&preload, "LD_PRELOAD=%s", PRELOAD_PATH) > 0);
        envp[n++] = file;
        envp[n++] = preload;
        envp[n++] = "SHM_SIZE=64M";
    }
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int i = open(in_path, O_RDONLY);
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (i < 0 || o < 0 || dup2(i, 0) < 0 || dup2(o, 1) < 0)
            _exit(126);
        execve(argv[0], (char *const *)argv, envp);
        _exit(127);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    *out = read_all(out_path, NULL);
    unlink(out_path);
    unlink(in_path);
    free(out_path);
    free(in_path);
    free(file);
    free(preload);
    free(envp);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

/* The arena file a run left: its check and statistics. */
static void inspect(const char *path, struct shm_stats *st)
{
    shm_arena *arena = shm_arena_open(path, NULL);
    assert_non_null(arena);
    assert_int_equal(shm_arena_check(arena), 0);
    assert_int_equal(shm_arena_stats(arena, st), 0);
    assert_int_equal(shm_arena_close(arena), 0);
}

/* As inspect, after a recovery of the processes that used the file: a
 * real program may still have threads ending when it exits (Python's
 * join returns before its thread's last frees), whose caches go to the
 * recovery; after it none is left, and the file is consistent. */
static void inspect_recovered(const char *path, struct shm_stats *st)
{
    shm_arena *arena = shm_arena_open(path, NULL);
    assert_non_null(arena);
    struct shm_stats before;
    assert_int_equal(shm_arena_stats(arena, &before), 0);
    assert_int_equal(shm_arena_recover(arena, NULL), 0);
    assert_int_equal(shm_arena_check(arena), 0);
    assert_int_equal(shm_arena_stats(arena, st), 0);
    /* What was cached is free now, not lost. */
    assert_int_equal(st->bytes_cached, 0);
    assert_int_equal(st->bytes_in_use, before.bytes_in_use);
    assert_int_equal(shm_arena_close(arena), 0);
}

static void test_workload_is_served_by_the_arena(void **state)
{
    (void)state;
    char *path = path_of("workload.heap");
    unlink(path);
    const char *argv[] = {WORKLOAD_PATH, "4", "300", "500", NULL};
    char *out;
    assert_int_equal(run(argv, NULL, path, &out), 0);
    unsigned long requests, small, in_arena;
    size_t leaked, in_use;
    long delta;
    assert_int_equal(sscanf(out,
                            "requests %lu small %lu in_arena %lu leaked %zu "
                            "delta %ld in_use %zu",
                            &requests, &small, &in_arena, &leaked, &delta,
                            &in_use),
                     6);
    /* Every request the arena can serve (up to 2^MAX, at malloc's
     * alignment) went to it; the larger ones went to glibc and were
     * checked all the same. */
    if (get_shm_max_allocatable_size() < _Alignof(max_align_t)) {
        assert_int_equal(small, 0);
        assert_int_equal(in_arena, 0);
        free(out);
        unlink(path);
        free(path);
        skip_because("chunks below malloc's alignment: glibc serves all");
    }
    assert_true(small > requests / 2);
    /* Some requests (up to 20000 bytes) exceed 2^MAX unless it is large. */
    if (get_shm_max_allocatable_size() < 20000)
        assert_true(small < requests);
    else
        assert_int_equal(small, requests);
    assert_int_equal(in_arena, small);
    /* The run took back every chunk it freed: what it left in use is
     * exactly what it leaked on purpose. */
    assert_true(leaked > 0);
    assert_int_equal(delta, (long)leaked);
    /* After the exit: nothing cached (every thread's cache flushed), the
     * same bytes in use, a consistent file. */
    struct shm_stats st;
    inspect(path, &st);
    assert_int_equal(st.bytes_cached, 0);
    assert_int_equal(st.bytes_in_use, in_use);
    free(out);
    unlink(path);
    free(path);
}

/* The same workload without the preload: its own checks pass on glibc's
 * malloc, so a failure of them under the preload is the preload's. (Its
 * counts here are 0 by construction: without the library it knows no
 * 2^MAX and no arena.) */
static void test_workload_without_the_preload_uses_glibc(void **state)
{
    (void)state;
    const char *argv[] = {WORKLOAD_PATH, "2", "50", "10", NULL};
    char *out;
    assert_int_equal(run(argv, NULL, NULL, &out), 0);
    unsigned long requests, small, in_arena;
    assert_int_equal(sscanf(out, "requests %lu small %lu in_arena %lu",
                            &requests, &small, &in_arena),
                     3);
    assert_true(requests > 0);
    assert_int_equal(small, 0); /* no library: nothing it could serve */
    assert_int_equal(in_arena, 0);
    free(out);
}

/* A real program, run with and without the preload on the same input:
 * the same output, and a consistent file that it used. */
static void same_output(const char *const *argv, const char *input)
{
    if (access(argv[0], X_OK) != 0)
        skip();
    char *path = path_of("program.heap");
    unlink(path);
    char *plain, *preloaded;
    assert_int_equal(run(argv, input, NULL, &plain), 0);
    assert_int_equal(run(argv, input, path, &preloaded), 0);
    assert_true(strlen(plain) > 0);
    assert_string_equal(preloaded, plain);
    struct shm_stats st;
    inspect_recovered(path, &st);
    free(plain);
    free(preloaded);
    unlink(path);
    free(path);
}

static void test_python_runs_the_same(void **state)
{
    (void)state;
    const char *argv[] = {
        "/usr/bin/python3", "-S", "-c",
        "import json, threading\n"
        "d = {str(i): [i] * (i % 17) for i in range(40000)}\n"
        "s = json.dumps(d, sort_keys=True)\n"
        "out = []\n"
        "def work(k):\n"
        "    out.append(sum(len(v) for v in json.loads(s).values()) + k)\n"
        "ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]\n"
        "[t.start() for t in ts]\n"
        "[t.join() for t in ts]\n"
        "print(len(s), sorted(out))\n",
        NULL};
    same_output(argv, NULL);
}

static void test_sort_runs_the_same(void **state)
{
    (void)state;
    size_t lines = 30000, cap = lines * 24, len = 0;
    char *input = malloc(cap);
    assert_non_null(input);
    uint64_t x = 88172645463325252u;
    for (size_t i = 0; i < lines; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        len += (size_t)snprintf(input + len, cap - len, "%llu %zu\n",
                                (unsigned long long)(x % 1000000007u), i);
    }
    const char *argv[] = {"/usr/bin/sort", "-n", NULL};
    same_output(argv, input);
    free(input);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workload_is_served_by_the_arena),
        cmocka_unit_test(test_workload_without_the_preload_uses_glibc),
        cmocka_unit_test(test_python_runs_the_same),
        cmocka_unit_test(test_sort_runs_the_same),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
