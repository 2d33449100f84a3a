/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm-cache, run as a separate program on a cache made here: what it sets
 * the library reads back and the other way round, get and delete of a
 * missing key exit 1 without output, dump lists every entry once with its
 * length and escapes what is not text, stats (text and JSON) are the
 * library's figures, a TTL expires, bad command lines exit 2, a file
 * without a cache is refused and left without one, and $SHM_FILE in its
 * environment is ignored.
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/whole_file.h"
#include "shm_alloc.h"
#include "shm_cache.h"

extern char **environ;

struct run {
    int status;
    char *out, *err;
    size_t out_len;
};

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

/* Runs shm-cache with args (NULL-terminated), stdin from `input` (NULL:
 * /dev/null) and `extra_env` ("NAME=value" or NULL) added. */
static struct run run_with(const char *const *args, const char *input,
                           const char *extra_env)
{
    char *out_path = path_of("tool.out"), *err_path = path_of("tool.err"),
         *in_path = path_of("tool.in");
    const char *argv[16] = {SHM_CACHE_PATH};
    size_t argc = 1;
    for (; args[argc - 1]; argc++) {
        assert_true(argc + 1 < 16);
        argv[argc] = args[argc - 1];
    }
    argv[argc] = NULL;
    FILE *in = fopen(in_path, "wb");
    assert_non_null(in);
    if (input)
        fputs(input, in);
    fclose(in);
    size_t envc = 0;
    while (environ[envc])
        envc++;
    char **envp = calloc(envc + 2, sizeof *envp);
    assert_non_null(envp);
    memcpy(envp, environ, envc * sizeof *envp);
    envp[envc] = (char *)extra_env;

    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int i = open(in_path, O_RDONLY);
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (i < 0 || o < 0 || e < 0 || dup2(i, 0) < 0 || dup2(o, 1) < 0 ||
            dup2(e, 2) < 0)
            _exit(126);
        execve(SHM_CACHE_PATH, (char *const *)argv, envp);
        _exit(127);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    struct run r;
    r.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    r.out = read_all(out_path, &r.out_len);
    r.err = read_all(err_path, NULL);
    unlink(out_path);
    unlink(err_path);
    unlink(in_path);
    free(out_path);
    free(err_path);
    free(in_path);
    free(envp);
    return r;
}

static struct run run_tool(const char *const *args)
{
    return run_with(args, NULL, NULL);
}

/* A new cache file at path with a few entries. */
static shm_cache *make_cache(const char *path)
{
    if (get_shm_max_allocatable_size() < 512)
        skip(); /* a cache needs chunks of 512 bytes */
    unlink(path);
    struct shm_cache_options opts = {.capacity = 4 << 20};
    shm_cache *c = shm_cache_open(path, &opts);
    assert_non_null(c);
    return c;
}

static void set_str(shm_cache *c, const char *k, const char *v)
{
    assert_int_equal(shm_cache_set(c, k, strlen(k), v, strlen(v), 0), 0);
}

/* The value the library holds for k, NUL-terminated; NULL when none. */
static char *get_str(shm_cache *c, const char *k)
{
    static char buf[4096];
    size_t len;
    int err = shm_cache_get(c, k, strlen(k), buf, sizeof buf - 1, &len);
    if (err == ENOENT)
        return NULL;
    assert_int_equal(err, 0);
    buf[len] = '\0';
    return buf;
}

static void test_get_set_delete(void **state)
{
    (void)state;
    char *path = path_of("cache.shm");
    shm_cache *c = make_cache(path);
    set_str(c, "from-library", "hello, tool");

    struct run r = run_tool((const char *[]){path, "get", "from-library", 0});
    assert_int_equal(r.status, 0);
    /* Exactly the value: no newline when stdout is not a terminal. */
    assert_int_equal(r.out_len, strlen("hello, tool"));
    assert_memory_equal(r.out, "hello, tool", r.out_len);
    run_free(&r);

    r = run_tool((const char *[]){path, "set", "from-tool", "a value", 0});
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "");
    run_free(&r);
    assert_non_null(get_str(c, "from-tool"));
    assert_string_equal(get_str(c, "from-tool"), "a value");

    /* "-" reads the value from standard input, bytes as they are. */
    r = run_with((const char *[]){path, "set", "piped", "-", 0},
                 "line one\nline two\n", NULL);
    assert_int_equal(r.status, 0);
    run_free(&r);
    assert_string_equal(get_str(c, "piped"), "line one\nline two\n");

    r = run_tool((const char *[]){path, "delete", "from-library", 0});
    assert_int_equal(r.status, 0);
    run_free(&r);
    assert_null(get_str(c, "from-library"));

    /* Not found: exit 1, nothing on stdout or stderr. */
    r = run_tool((const char *[]){path, "get", "from-library", 0});
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "");
    run_free(&r);
    r = run_tool((const char *[]){path, "delete", "from-library", 0});
    assert_int_equal(r.status, 1);
    run_free(&r);

    assert_int_equal(shm_cache_close(c), 0);
    unlink(path);
    free(path);
}

static void test_ttl_expires(void **state)
{
    (void)state;
    char *path = path_of("ttl.shm");
    shm_cache *c = make_cache(path);
    struct run r =
        run_tool((const char *[]){path, "set", "brief", "soon gone", "1", 0});
    assert_int_equal(r.status, 0);
    run_free(&r);
    r = run_tool((const char *[]){path, "get", "brief", 0});
    assert_int_equal(r.status, 0);
    run_free(&r);
    struct timespec t = {1, 200 * 1000 * 1000};
    nanosleep(&t, NULL);
    r = run_tool((const char *[]){path, "get", "brief", 0});
    assert_int_equal(r.status, 1);
    run_free(&r);
    assert_null(get_str(c, "brief"));
    assert_int_equal(shm_cache_close(c), 0);
    unlink(path);
    free(path);
}

static void test_dump(void **state)
{
    (void)state;
    char *path = path_of("dump.shm");
    shm_cache *c = make_cache(path);
    enum { N = 50 };
    for (int i = 0; i < N; i++) {
        char k[32], v[32];
        snprintf(k, sizeof k, "key%02d", i);
        snprintf(v, sizeof v, "value %d", i);
        set_str(c, k, v);
    }
    set_str(c, "say \"hi\"", "tab\there");
    const unsigned char bin[] = {0x00, 0xff, 0x10, 'a'};
    assert_int_equal(shm_cache_set(c, "bin", 3, bin, sizeof bin, 0), 0);

    struct run r = run_tool((const char *[]){path, "dump", 0});
    assert_int_equal(r.status, 0);
    int lines = 0;
    for (const char *p = r.out; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    assert_int_equal(lines, N + 2);
    for (int i = 0; i < N; i++) {
        char line[64];
        snprintf(line, sizeof line, "\"key%02d\" %zu \"value %d\"\n", i,
                 strlen("value ") + (i < 10 ? 1 : 2), i);
        const char *at = strstr(r.out, line);
        assert_non_null(at);
        assert_null(strstr(at + 1, line)); /* once */
    }
    assert_non_null(strstr(r.out, "\"say \\\"hi\\\"\" 8 \"tab\\there\"\n"));
    assert_non_null(strstr(r.out, "\"bin\" 4 0x00ff1061\n"));
    run_free(&r);
    assert_int_equal(shm_cache_close(c), 0);
    unlink(path);
    free(path);
}

static unsigned long long text_stat(const char *out, const char *name)
{
    size_t len = strlen(name);
    for (const char *line = out; *line;) {
        if (strncmp(line, name, len) == 0 && line[len] == ' ')
            return strtoull(line + len, NULL, 10);
        const char *next = strchr(line, '\n');
        if (!next)
            break;
        line = next + 1;
    }
    fail_msg("no %s in:\n%s", name, out);
    return 0;
}

static unsigned long long json_stat(const char *out, const char *name)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\": ", name);
    const char *at = strstr(out, pattern);
    if (!at)
        fail_msg("no %s in:\n%s", name, out);
    return strtoull(at + strlen(pattern), NULL, 10);
}

static void test_stats(void **state)
{
    (void)state;
    char *path = path_of("stats.shm");
    shm_cache *c = make_cache(path);
    for (int i = 0; i < 7; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        set_str(c, k, "v");
    }
    assert_int_equal(shm_cache_delete(c, "k0", 2), 0);
    assert_non_null(get_str(c, "k1"));
    assert_null(get_str(c, "k0"));
    struct shm_cache_stats s;
    assert_int_equal(shm_cache_stats(c, &s), 0);

    struct run r = run_tool((const char *[]){path, "stats", 0});
    assert_int_equal(r.status, 0);
    assert_int_equal(text_stat(r.out, "items"), 6);
    assert_int_equal(text_stat(r.out, "sets"), 7);
    assert_int_equal(text_stat(r.out, "deletes"), 1);
    assert_int_equal(text_stat(r.out, "hits"), s.hits);
    assert_int_equal(text_stat(r.out, "misses"), s.misses);
    assert_int_equal(text_stat(r.out, "bytes"), s.bytes);
    assert_int_equal(text_stat(r.out, "memory"), s.memory);
    run_free(&r);

    r = run_tool((const char *[]){"--json", path, "stats", 0});
    assert_int_equal(r.status, 0);
    assert_true(r.out[0] == '{');
    assert_non_null(strstr(r.out, "}\n"));
    assert_int_equal(json_stat(r.out, "items"), 6);
    assert_int_equal(json_stat(r.out, "sets"), 7);
    assert_int_equal(json_stat(r.out, "memory"), s.memory);
    run_free(&r);
    assert_int_equal(shm_cache_close(c), 0);
    unlink(path);
    free(path);
}

static void test_refusals(void **state)
{
    (void)state;
    char *path = path_of("plain.shm"), *missing = path_of("missing.shm");
    unlink(path);
    unlink(missing);
    struct shm_arena_options opts = {.capacity = 1 << 20};
    shm_arena *a = shm_arena_open(path, &opts);
    assert_non_null(a);

    /* An arena without a cache: refused, and none is made in it. */
    struct run r = run_tool((const char *[]){path, "set", "k", "v", 0});
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "no cache"));
    run_free(&r);
    assert_int_equal(shm_arena_root_get(a, "shm_cache:default"), SHM_NULL);

    /* A missing file is not created. */
    r = run_tool((const char *[]){missing, "stats", 0});
    assert_int_equal(r.status, 1);
    assert_string_not_equal(r.err, "");
    run_free(&r);
    assert_int_equal(access(missing, F_OK), -1);

    /* Usage errors: exit 2. */
    static const char *const bad[][6] = {
        {0},
        {"f", 0},
        {"f", "frobnicate", 0},
        {"f", "get", 0},
        {"f", "get", "a", "b", 0},
        {"f", "set", "k", "v", "soon"},
        {"--bogus", "f", "stats", 0},
        {"f", "get", "", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = run_tool(bad[i]);
        assert_int_equal(r.status, 2);
        assert_string_not_equal(r.err, "");
        run_free(&r);
    }

    /* $SHM_FILE does not make the tool open (or create) another file. */
    if (get_shm_max_allocatable_size() < 512) {
        shm_arena_close(a);
        skip(); /* a cache needs chunks of 512 bytes */
    }
    shm_cache *c = shm_cache_attach(a, "default", NULL);
    assert_non_null(c);
    set_str(c, "k", "v");
    char *other = path_of("other.shm"), *assignment;
    unlink(other);
    assert_true(asprintf(&assignment, "SHM_FILE=%s", other) > 0);
    r = run_with((const char *[]){path, "get", "k", 0}, NULL, assignment);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "v");
    run_free(&r);
    assert_int_equal(access(other, F_OK), -1);

    assert_int_equal(shm_cache_close(c), 0);
    assert_int_equal(shm_arena_close(a), 0);
    unlink(path);
    free(assignment);
    free(other);
    free(path);
    free(missing);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_set_delete),
        cmocka_unit_test(test_ttl_expires),
        cmocka_unit_test(test_dump),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
