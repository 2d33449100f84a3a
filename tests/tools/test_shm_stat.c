/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm-stat, run as a separate program on arena files made here: its
 * figures (text and JSON, parsed back) are the library's statistics of the
 * same file, its map draws each block's usage, --check reports a damaged
 * bitmap word, a file the user may only read works and stays byte for
 * byte the same, hostile files are refused with one line on stderr and
 * exit status 1, and $SHM_FILE in its environment is ignored.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf, setgroups */
#endif

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "arena.h"
#include "tree.h"

#define BLOCK ((size_t)1 << SHM_MAX_ALLOC_POW2)
#define MIN_CHUNK ((size_t)1 << SHM_MIN_ALLOC_POW2)
#define NOBODY 65534

extern char **environ;

/* ---- files ------------------------------------------------------------- */

static const char *scratch(void)
{
    const char *dir = getenv("SHM_TEST_DIR");
    return dir && *dir ? dir : "/tmp";
}

static char *path_of(const char *name)
{
    char *path;
    assert_true(asprintf(&path, "%s/%s", scratch(), name) > 0);
    return path;
}

static char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *data = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = 2 * cap + 8192;
            char *grown = realloc(data, cap);
            assert_non_null(grown);
            data = grown;
        }
        size_t n = fread(data + len, 1, 4096, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    data[len] = '\0';
    if (size)
        *size = len;
    return data;
}

static shm_arena *create_arena(const char *path, size_t capacity)
{
    unlink(path);
    struct shm_arena_options opts = {.capacity = capacity};
    shm_arena *arena = shm_arena_open(path, &opts);
    assert_non_null(arena);
    return arena;
}

/* 1 MiB, or 16 blocks when they are large. */
static size_t test_capacity(void)
{
    return BLOCK >= 65536 ? 16 * BLOCK : (size_t)1 << 20;
}

/* ---- running the tool -------------------------------------------------- */

struct run {
    int status; /* exit status, or 128 + signal */
    char *out;
    char *err;
};

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

/*
 * Runs shm-stat with `args` (NULL-terminated, without argv[0]), the
 * environment plus `extra_env` (NULL or "NAME=value"), as `uid` when it
 * is not -1 (needs root), and collects its status and output.
 */
static struct run run_as(const char *const *args, const char *extra_env,
                         int uid)
{
    char *out_path = path_of("tool.out"), *err_path = path_of("tool.err");
    const char *argv[16] = {SHM_STAT_PATH};
    size_t argc = 1;
    while (args[argc - 1]) {
        assert_true(argc + 1 < sizeof argv / sizeof argv[0]);
        argv[argc] = args[argc - 1];
        argc++;
    }
    argv[argc] = NULL;
    size_t envc = 0;
    while (environ[envc])
        envc++;
    char **envp = calloc(envc + 2, sizeof *envp);
    assert_non_null(envp);
    size_t name_len = extra_env ? strcspn(extra_env, "=") + 1 : 0;
    size_t kept = 0;
    for (size_t i = 0; i < envc; i++)
        if (!extra_env || strncmp(environ[i], extra_env, name_len) != 0)
            envp[kept++] = environ[i];
    envp[kept] = (char *)extra_env;

    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
            _exit(126);
        if (uid >= 0 && (setgroups(0, NULL) != 0 || setgid((gid_t)uid) != 0 ||
                         setuid((uid_t)uid) != 0))
            _exit(126);
        execve(SHM_STAT_PATH, (char *const *)argv, envp);
        _exit(127);
    }
    int wstatus;
    assert_int_equal(waitpid(pid, &wstatus, 0), pid);
    struct run r;
    r.status =
        WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    r.out = read_file(out_path, NULL);
    r.err = read_file(err_path, NULL);
    unlink(out_path);
    unlink(err_path);
    free(out_path);
    free(err_path);
    free(envp);
    return r;
}

static struct run run_tool(const char *const *args)
{
    return run_as(args, NULL, -1);
}

/* ---- reading its output ------------------------------------------------ */

/* The number after the line that starts with `label` in text output. */
static double text_value(const char *out, const char *label)
{
    size_t len = strlen(label);
    for (const char *line = out; line && *line;) {
        if (strncmp(line, label, len) == 0 && line[len] == ' ')
            return strtod(line + len, NULL);
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    fail_msg("no line '%s' in:\n%s", label, out);
    return 0;
}

/* The number after "key": in JSON output. */
static double json_value(const char *out, const char *key)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *at = strstr(out, pattern);
    if (!at)
        fail_msg("no key '%s' in:\n%s", key, out);
    return strtod(at + strlen(pattern), NULL);
}

/* A strict JSON syntax check (RFC 8259), enough to know that a parser
 * would accept the output. */
static bool json_value_at(const char **p);

static void json_space(const char **p)
{
    while (**p == ' ' || **p == '\n' || **p == '\t' || **p == '\r')
        (*p)++;
}

static bool json_string(const char **p)
{
    if (**p != '"')
        return false;
    for ((*p)++; **p != '"'; (*p)++) {
        if ((unsigned char)**p < 0x20)
            return false;
        if (**p == '\\') {
            (*p)++;
            if (**p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", (*p)[i]) || !(*p)[i])
                        return false;
                *p += 4;
            } else if (!**p || !strchr("\"\\/bfnrt", **p)) {
                return false;
            }
        }
    }
    (*p)++;
    return true;
}

static bool json_number(const char **p)
{
    const char *s = *p;
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (*s >= '0' && *s <= '9')
            s++;
    else
        return false;
    if (*s == '.') {
        s++;
        if (!(*s >= '0' && *s <= '9'))
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    *p = s;
    return true;
}

static bool json_list(const char **p, char close, bool members)
{
    (*p)++;
    json_space(p);
    if (**p == close) {
        (*p)++;
        return true;
    }
    for (;;) {
        json_space(p);
        if (members) {
            if (!json_string(p))
                return false;
            json_space(p);
            if (**p != ':')
                return false;
            (*p)++;
        }
        if (!json_value_at(p))
            return false;
        json_space(p);
        if (**p == close) {
            (*p)++;
            return true;
        }
        if (**p != ',')
            return false;
        (*p)++;
    }
}

static bool json_value_at(const char **p)
{
    json_space(p);
    switch (**p) {
    case '{':
        return json_list(p, '}', true);
    case '[':
        return json_list(p, ']', false);
    case '"':
        return json_string(p);
    case 't':
        return strncmp(*p, "true", 4) == 0 && (*p += 4);
    case 'f':
        return strncmp(*p, "false", 5) == 0 && (*p += 5);
    case 'n':
        return strncmp(*p, "null", 4) == 0 && (*p += 4);
    default:
        return json_number(p);
    }
}

static void assert_valid_json(const char *text)
{
    const char *p = text;
    bool ok = json_value_at(&p);
    json_space(&p);
    if (!ok || *p != '\0')
        fail_msg("not valid JSON at offset %td:\n%s", p - text, text);
}

/* ---- building arenas with known contents ------------------------------- */

static uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * UINT64_C(2685821657736338717);
}

static uint64_t test_seed(void)
{
    const char *text = getenv("SHM_TEST_SEED");
    if (text && *text)
        return strtoull(text, NULL, 0);
    return (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
}

/* Fills about a third of the arena with chunks of random sizes and frees
 * some of them again, so that every kind of partly used block exists. */
static void scatter(shm_arena *a, uint64_t *rng)
{
    size_t target = shm_arena_capacity(a) / 3, taken = 0;
    while (taken < target) {
        unsigned log2 = SHM_MIN_ALLOC_POW2 +
                        (unsigned)(next_random(rng) % (SHM_MAX_ALLOC_POW2 -
                                                       SHM_MIN_ALLOC_POW2 + 1));
        shm_offt off = shm_arena_malloc(a, (size_t)1 << log2);
        if (off == SHM_NULL) {
            /* Full for that size: the blocks are as mixed as needed. */
            assert_int_equal(errno, ENOMEM);
            break;
        }
        if (next_random(rng) % 4 == 0)
            shm_arena_free(a, off);
        else
            taken += (size_t)1 << log2;
    }
}

/* shm_arena_processes visitor: copies this process's entry and stops. */
static int find_me(const struct shm_process *p, void *context)
{
    if (p->pid != (uint32_t)getpid() || !p->live)
        return 0;
    *(struct shm_process *)context = *p;
    return 1;
}

static double expected_fragmentation(const struct shm_stats *s)
{
    if (s->bytes_free == 0)
        return 0;
    return 1.0 - (double)s->free_chunks[s->classes - 1] * (double)s->max_chunk /
                     (double)s->bytes_free;
}

/* ---- the tests --------------------------------------------------------- */

static void figures_are_the_librarys(void **state)
{
    (void)state;
    uint64_t seed = test_seed(), rng = seed | 1;
    print_message("seed %llu (SHM_TEST_SEED to repeat)\n",
                  (unsigned long long)seed);
    char *path = path_of("figures.shm");
    shm_arena *a = create_arena(path, test_capacity());
    scatter(a, &rng);
    struct shm_stats s;
    assert_int_equal(shm_arena_stats(a, &s), 0);
    assert_true(s.bytes_in_use > 0 && s.bytes_free > 0);

    const char *text_args[] = {path, NULL};
    struct run r = run_tool(text_args);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.err, "");
    assert_true(text_value(r.out, "capacity") == (double)s.capacity);
    assert_true(text_value(r.out, "mapping size") == (double)s.mapping_size);
    assert_true(text_value(r.out, "bytes in use") == (double)s.bytes_in_use);
    assert_true(text_value(r.out, "bytes free") == (double)s.bytes_free);
    assert_true(text_value(r.out, "bytes cached") == (double)s.bytes_cached);
    assert_true(text_value(r.out, "largest free") == (double)s.largest_free);
    assert_true(text_value(r.out, "attached processes") ==
                (double)s.attached_processes);
    double frag = text_value(r.out, "fragmentation");
    if (frag < expected_fragmentation(&s) - 0.00005 ||
        frag > expected_fragmentation(&s) + 0.00005)
        fail_msg("fragmentation %f, expected %f (seed %llu)", frag,
                 expected_fragmentation(&s), (unsigned long long)seed);
    /* no check line without --check (the path itself may say "check") */
    assert_null(strstr(r.out, "\ncheck "));
    /* this process has the file open for writing: it is listed */
    char pid_line[64];
    snprintf(pid_line, sizeof pid_line, "\n  pid %-10ld live", (long)getpid());
    if (!strstr(r.out, pid_line))
        fail_msg("no '%s' in:\n%s", pid_line + 1, r.out);
    run_free(&r);

    const char *json_args[] = {"--json", "--map", path, NULL};
    r = run_tool(json_args);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.err, "");
    assert_valid_json(r.out);
    assert_true(json_value(r.out, "capacity") == (double)s.capacity);
    assert_true(json_value(r.out, "mapping_size") == (double)s.mapping_size);
    assert_true(json_value(r.out, "bytes_in_use") == (double)s.bytes_in_use);
    assert_true(json_value(r.out, "bytes_free") == (double)s.bytes_free);
    assert_true(json_value(r.out, "bytes_cached") == (double)s.bytes_cached);
    assert_true(json_value(r.out, "largest_free") == (double)s.largest_free);
    assert_true(json_value(r.out, "min_chunk") == (double)s.min_chunk);
    assert_true(json_value(r.out, "max_chunk") == (double)s.max_chunk);
    assert_true(json_value(r.out, "attached_processes") ==
                (double)s.attached_processes);
    double jfrag = json_value(r.out, "fragmentation");
    assert_true(jfrag > expected_fragmentation(&s) - 0.000001 &&
                jfrag < expected_fragmentation(&s) + 0.000001);
    size_t blocks = (size_t)json_value(r.out, "blocks");
    char *path_json;
    assert_true(asprintf(&path_json, "\"file\": \"%s\"", path) > 0);
    assert_non_null(strstr(r.out, path_json));
    free(path_json);
    /* processes: this one, live, with the attachment number the library
     * keeps */
    const char *procs = strstr(r.out, "\"processes\": [");
    assert_non_null(procs);
    char pid_entry[64];
    snprintf(pid_entry, sizeof pid_entry,
             "{\"pid\": %ld, \"attachment\": ", (long)getpid());
    const char *mine = strstr(procs, pid_entry);
    if (!mine)
        fail_msg("no '%s' in:\n%s", pid_entry, r.out);
    unsigned long long attachment;
    char state_word[8];
    assert_int_equal(sscanf(mine + strlen(pid_entry),
                            "%llu, \"state\": \"%6[a-z]\"}", &attachment,
                            state_word),
                     2);
    assert_string_equal(state_word, "live");
    struct shm_process me = {0};
    assert_int_equal(shm_arena_processes(a, find_me, &me), 1);
    assert_int_equal(attachment, me.start_time);
    assert_true(json_value(r.out, "blocks_per_char") >= 1);
    assert_int_equal(blocks, (s.capacity + BLOCK - 1) / BLOCK);

    /* free_chunks: one {"size", "count"} per class, in order, the sizes
     * adding up to the free bytes. */
    const char *at = strstr(r.out, "\"free_chunks\":");
    assert_non_null(at);
    size_t free_total = 0;
    for (unsigned c = 0; c < s.classes; c++) {
        at = strstr(at, "{\"size\":");
        assert_non_null(at);
        unsigned long long size, count;
        assert_int_equal(
            sscanf(at, "{\"size\": %llu, \"count\": %llu}", &size, &count), 2);
        assert_int_equal(size, s.min_chunk << c);
        if (count != s.free_chunks[c])
            fail_msg("class %u: %llu free chunks, expected %zu (seed %llu)", c,
                     count, s.free_chunks[c], (unsigned long long)seed);
        free_total += (size_t)(size * count);
        at++;
    }
    assert_int_equal(free_total, s.bytes_free);

    /* block_used_bytes: the library's usage of every block. */
    uint32_t *used = calloc(blocks, sizeof *used);
    assert_non_null(used);
    assert_int_equal(shm_arena_block_usage(a, 0, blocks, used), 0);
    at = strstr(r.out, "\"block_used_bytes\": [");
    assert_non_null(at);
    at = strchr(at, '[') + 1;
    for (size_t b = 0; b < blocks; b++) {
        char *end;
        unsigned long long v = strtoull(at, &end, 10);
        assert_ptr_not_equal(end, at);
        if (v != used[b])
            fail_msg("block %zu: %llu in the JSON, %u from the library", b, v,
                     used[b]);
        at = end;
        while (*at == ',' || *at == ' ' || *at == '\n')
            at++;
    }
    assert_int_equal(*at, ']');
    free(used);
    run_free(&r);

    assert_int_equal(shm_arena_close(a), 0);
    unlink(path);
    free(path);
}

static char expected_char(uint64_t used, uint64_t size)
{
    if (used == 0)
        return ' ';
    if (used * 4 < size)
        return '.';
    if (used * 2 < size)
        return ':';
    if (used * 4 < size * 3)
        return '*';
    return '#';
}

/* The character for the blocks first .. first + per_char - 1 (those that
 * exist), from the library's usage of each. */
static char expected_cell(const uint32_t *used, size_t blocks, size_t capacity,
                          size_t first, size_t per_char)
{
    uint64_t in_use = 0, size = 0;
    for (size_t b = first; b < first + per_char && b < blocks; b++) {
        in_use += used[b];
        size_t start = b * BLOCK;
        size += capacity - start < BLOCK ? capacity - start : BLOCK;
    }
    return expected_char(in_use, size);
}

/* Runs --map with `width` and `height` (0: the default, 32) and checks
 * every character of it against the library's block usage, the legend's
 * blocks per character and the number of rows. Returns the blocks per
 * character. */
static size_t check_map(const char *path, const uint32_t *used, size_t blocks,
                        size_t capacity, unsigned width, unsigned height,
                        size_t full_block, uint64_t seed)
{
    char w[16], h[16];
    snprintf(w, sizeof w, "%u", width);
    snprintf(h, sizeof h, "%u", height);
    const char *args[] = {"--map", "--width", w, "--height", h, path, NULL};
    if (height == 0) {
        args[3] = path;
        args[4] = NULL;
        height = 32;
    }
    struct run r = run_tool(args);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "'#' >= 75% in use"));
    /* The map fits width x height characters: one block per character
     * when the arena is small enough, the fewest per character otherwise. */
    size_t cells = (size_t)width * height;
    size_t per_char = blocks > cells ? (blocks + cells - 1) / cells : 1;
    char legend[128];
    if (per_char == 1)
        snprintf(legend, sizeof legend, "one character per block of ");
    else
        snprintf(legend, sizeof legend, "one character per %zu blocks of ",
                 per_char);
    if (!strstr(r.out, legend))
        fail_msg("no '%s' in:\n%s", legend, r.out);
    const char *row = strstr(r.out, "     block\n");
    assert_non_null(row);
    row = strchr(row, '\n') + 1;
    size_t b = 0, rows = 0, seen_full = 0, seen_free = 0;
    while (b < blocks) {
        unsigned long long label;
        int skip = 0;
        assert_int_equal(sscanf(row, "%llu |%n", &label, &skip), 1);
        assert_int_equal(label, b);
        const char *cells_at = row + skip;
        for (unsigned col = 0; col < width; col++, b += per_char) {
            char want = b < blocks
                            ? expected_cell(used, blocks, capacity, b, per_char)
                            : ' ';
            if (cells_at[col] != want)
                fail_msg("blocks from %zu: '%c' on the map, expected '%c' "
                         "(%zu per character; seed %llu)",
                         b, cells_at[col], want, per_char,
                         (unsigned long long)seed);
            if (per_char == 1 && b == full_block)
                seen_full = cells_at[col] == '#';
            seen_free += b < blocks && cells_at[col] == ' ';
        }
        assert_int_equal(cells_at[width], '|');
        assert_int_equal(cells_at[width + 1], '\n');
        row = cells_at + width + 2;
        rows++;
    }
    assert_int_equal(*row, '\0');
    assert_true(rows <= height);
    assert_int_equal(rows,
                     ((blocks + per_char - 1) / per_char + width - 1) / width);
    if (per_char == 1) {
        assert_true(seen_full);
        assert_true(seen_free > 0);
    }
    run_free(&r);
    return per_char;
}

static void map_draws_every_block(void **state)
{
    (void)state;
    uint64_t seed = test_seed(), rng = seed | 1;
    print_message("seed %llu (SHM_TEST_SEED to repeat)\n",
                  (unsigned long long)seed);
    char *path = path_of("map.shm");
    shm_arena *a = create_arena(path, test_capacity());
    shm_offt full = shm_arena_malloc(a, BLOCK);
    assert_int_not_equal(full, SHM_NULL);
    scatter(a, &rng);
    size_t capacity = shm_arena_capacity(a);
    size_t blocks = (capacity + BLOCK - 1) / BLOCK;
    size_t data_start = shm_arena_mapping_size(a) - capacity;
    size_t full_block = (full - data_start) / BLOCK;
    uint32_t *used = calloc(blocks, sizeof *used);
    assert_non_null(used);
    assert_int_equal(shm_arena_block_usage(a, 0, blocks, used), 0);

    /* As many rows as it takes, when they fit. */
    check_map(path, used, blocks, capacity, 10, 4096, full_block, seed);
    /* The default height, and a map much smaller than the arena: several
     * blocks per character, and no more rows than asked for. */
    check_map(path, used, blocks, capacity, 10, 0, full_block, seed);
    size_t per_char =
        check_map(path, used, blocks, capacity, 7, 3, full_block, seed);
    assert_true(blocks <= 21 || per_char > 1);
    check_map(path, used, blocks, capacity, 1, 1, full_block, seed);

    /* The JSON map is the same drawing. */
    const char *json_args[] = {"--json",   "--map", "--width", "7",
                               "--height", "3",     path,      NULL};
    struct run r = run_tool(json_args);
    assert_int_equal(r.status, 0);
    assert_valid_json(r.out);
    assert_true(json_value(r.out, "width") == 7);
    assert_true(json_value(r.out, "blocks_per_char") == (double)per_char);
    const char *at = strstr(r.out, "\"rows\": [");
    assert_non_null(at);
    at += strlen("\"rows\": [");
    size_t chars = (blocks + per_char - 1) / per_char;
    for (size_t c = 0; c < chars; c += 7) {
        at = strchr(at, '"');
        assert_non_null(at);
        at++;
        for (size_t i = 0; i < 7 && c + i < chars; i++)
            assert_int_equal(at[i],
                             expected_cell(used, blocks, capacity,
                                           (c + i) * per_char, per_char));
        at = strchr(at, '"') + 1;
    }
    run_free(&r);

    free(used);
    assert_int_equal(shm_arena_close(a), 0);
    unlink(path);
    free(path);
}

static void check_reports_a_damaged_word(void **state)
{
    (void)state;
    char *path = path_of("check.shm");
    shm_arena *a = create_arena(path, test_capacity());
    const char *args[] = {"--check", path, NULL};
    struct run r = run_tool(args);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "check               consistent\n"));
    run_free(&r);

    /* Node 1 of the first tier-0 word set without its subtree (or on a
     * row that word does not use): one word breaks an invariant. */
    uint64_t before = shmi_atomic_load_relaxed(shmi_tree_word(&a->geo, 0, 0));
    shmi_atomic_store_relaxed(shmi_tree_word(&a->geo, 0, 0), before | 2u);
    assert_int_equal(shm_arena_check(a), 1);
    r = run_tool(args);
    assert_int_equal(r.status, 3);
    assert_non_null(strstr(r.out, "1 inconsistent bitmap words"));
    run_free(&r);
    const char *json_args[] = {"--json", "--check", path, NULL};
    r = run_tool(json_args);
    assert_int_equal(r.status, 3);
    assert_valid_json(r.out);
    assert_non_null(strstr(r.out, "\"consistent\": false"));
    assert_true(json_value(r.out, "inconsistent_words") == 1);
    run_free(&r);
    /* Without --check the figures are shown and the status is 0. */
    const char *plain[] = {path, NULL};
    r = run_tool(plain);
    assert_int_equal(r.status, 0);
    run_free(&r);

    shmi_atomic_store_relaxed(shmi_tree_word(&a->geo, 0, 0), before);
    r = run_tool(json_args);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "\"consistent\": true"));
    run_free(&r);
    assert_int_equal(shm_arena_close(a), 0);
    unlink(path);
    free(path);
}

/* A file its user may only read: mode 0400, and when the test runs as
 * root, owned by and read as another user, for whom 0400 really means
 * read-only. */
static void read_only_file_is_read(void **state)
{
    (void)state;
    char *path = path_of("readonly.shm");
    shm_arena *a = create_arena(path, test_capacity());
    shm_offt off = shm_arena_malloc(a, MIN_CHUNK);
    assert_int_not_equal(off, SHM_NULL);
    struct shm_stats s;
    assert_int_equal(shm_arena_stats(a, &s), 0);
    assert_int_equal(shm_arena_close(a), 0);

    int uid = -1;
    if (geteuid() == 0) {
        uid = NOBODY;
        assert_int_equal(chown(path, NOBODY, NOBODY), 0);
    }
    assert_int_equal(chmod(path, 0400), 0);
    size_t size_before;
    char *before = read_file(path, &size_before);
    struct stat st_before;
    assert_int_equal(stat(path, &st_before), 0);

    const char *args[] = {"--json", "--check", "--map", path, NULL};
    struct run r = run_as(args, NULL, uid);
    if (r.status != 0)
        fail_msg("status %d, stderr: %s", r.status, r.err);
    assert_valid_json(r.out);
    assert_true(json_value(r.out, "bytes_in_use") == (double)s.bytes_in_use);
    assert_non_null(strstr(r.out, "\"consistent\": true"));
    run_free(&r);

    size_t size_after;
    char *after = read_file(path, &size_after);
    struct stat st_after;
    assert_int_equal(stat(path, &st_after), 0);
    assert_int_equal(size_after, size_before);
    assert_memory_equal(after, before, size_before);
    assert_int_equal(st_after.st_mtim.tv_sec, st_before.st_mtim.tv_sec);
    assert_int_equal(st_after.st_mtim.tv_nsec, st_before.st_mtim.tv_nsec);
    assert_int_equal(st_after.st_mode & 07777, 0400);
    free(before);
    free(after);
    unlink(path);
    free(path);
}

/* Runs shm-stat as `uid` (-1: as the test) on a file of another user and
 * expects the figures of `s`, with the file byte for byte the same. */
static void expect_inspection(const char *path, int uid,
                              const struct shm_stats *s)
{
    size_t size_before, size_after;
    char *before = read_file(path, &size_before);
    const char *args[] = {"--json", "--check", path, NULL};
    struct run r = run_as(args, NULL, uid);
    if (r.status != 0)
        fail_msg("%s as uid %d: status %d, stderr: %s", path, uid, r.status,
                 r.err);
    assert_string_equal(r.err, "");
    assert_valid_json(r.out);
    assert_true(json_value(r.out, "capacity") == (double)s->capacity);
    assert_true(json_value(r.out, "bytes_in_use") == (double)s->bytes_in_use);
    assert_non_null(strstr(r.out, "\"consistent\": true"));
    run_free(&r);
    char *after = read_file(path, &size_after);
    assert_int_equal(size_after, size_before);
    assert_memory_equal(after, before, size_before);
    free(before);
    free(after);
}

/* Read-only inspection needs no ownership: root inspects a file of
 * another user, and another user inspects a 0644 file of root's. */
static void another_users_file_is_inspected(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        print_message("skipped: files of another user need root\n");
        skip();
    }
    char *path = path_of("theirs.shm");
    shm_arena *a = create_arena(path, test_capacity());
    assert_int_not_equal(shm_arena_malloc(a, BLOCK), SHM_NULL);
    struct shm_stats s;
    assert_int_equal(shm_arena_stats(a, &s), 0);
    assert_int_equal(shm_arena_close(a), 0);
    /* The writers' check is still there: the library refuses to write. */
    assert_int_equal(chown(path, NOBODY, NOBODY), 0);
    struct shm_arena_options rw = {.flags = SHM_ARENA_NO_CREATE};
    errno = 0;
    assert_null(shm_arena_open(path, &rw));
    assert_int_equal(errno, EACCES);
    expect_inspection(path, -1, &s);

    assert_int_equal(chown(path, 0, 0), 0);
    assert_int_equal(chmod(path, 0644), 0);
    expect_inspection(path, NOBODY, &s);
    unlink(path);
    free(path);
}

static void write_bytes(const char *path, const char *data, size_t size);

/* Runs shm-stat on `path` and expects exit status 1, nothing on stdout
 * and exactly one line on stderr naming the file and strerror(err), and
 * holding `detail` when not NULL. */
static void expect_refusal_saying(const char *path, int err, const char *detail)
{
    const char *args[] = {path, NULL};
    struct run r = run_tool(args);
    if (r.status != 1)
        fail_msg("%s: status %d, expected 1; stderr: %s", path, r.status,
                 r.err);
    assert_string_equal(r.out, "");
    char *prefix;
    assert_true(asprintf(&prefix, "shm-stat: %s: %s", path, strerror(err)) > 0);
    if (strncmp(r.err, prefix, strlen(prefix)) != 0)
        fail_msg("stderr '%s' does not start with '%s'", r.err, prefix);
    char *newline = strchr(r.err, '\n');
    assert_non_null(newline);
    assert_int_equal(newline[1], '\0');
    if (detail && !strstr(r.err, detail))
        fail_msg("stderr '%s' does not say '%s'", r.err, detail);
    free(prefix);
    run_free(&r);
}

static void expect_refusal(const char *path, int err)
{
    expect_refusal_saying(path, err, NULL);
}

/* A copy of the arena file `from` at `to` with the 32-bit superblock
 * field at `at` set to value. */
static void copy_with_field(const char *from, const char *to, size_t at,
                            uint32_t value)
{
    size_t size;
    char *bytes = read_file(from, &size);
    assert_true(size >= sizeof(struct shmi_superblock));
    memcpy(bytes + at, &value, sizeof value);
    write_bytes(to, bytes, size);
    free(bytes);
}

static void write_bytes(const char *path, const char *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, 0600), 0);
}

static void hostile_files_are_refused(void **state)
{
    (void)state;
    uint64_t seed = test_seed(), rng = seed | 1;
    print_message("seed %llu (SHM_TEST_SEED to repeat)\n",
                  (unsigned long long)seed);

    /* Random bytes: refused, and left as they were. */
    char *garbage = path_of("garbage.shm");
    size_t size = 65536;
    char *bytes = malloc(size);
    assert_non_null(bytes);
    for (size_t i = 0; i < size; i++)
        bytes[i] = (char)next_random(&rng);
    write_bytes(garbage, bytes, size);
    expect_refusal_saying(garbage, EPROTO, "no shm_alloc magic");
    size_t size_after;
    char *after = read_file(garbage, &size_after);
    assert_int_equal(size_after, size);
    assert_memory_equal(after, bytes, size);
    free(after);

    /* An arena whose file was cut short after its first page. */
    char *good = path_of("good.shm");
    assert_int_equal(shm_arena_close(create_arena(good, test_capacity())), 0);
    char *cut = path_of("cut.shm");
    char *whole = read_file(good, &size);
    write_bytes(cut, whole, 4096);
    char truncated[128];
    snprintf(truncated, sizeof truncated,
             "truncated: 4096 bytes, the superblock says %zu", size);
    expect_refusal_saying(cut, EBADMSG, truncated);
    /* Cut short by one page only: the same. */
    write_bytes(cut, whole, size - 4096);
    snprintf(truncated, sizeof truncated,
             "truncated: %zu bytes, the superblock says %zu", size - 4096,
             size);
    expect_refusal_saying(cut, EBADMSG, truncated);
    free(whole);

    /* Another build's file says what differs. */
    char *foreign = path_of("foreign.shm");
    char differs[128];
    copy_with_field(good, foreign,
                    offsetof(struct shmi_superblock, min_alloc_pow2),
                    SHM_MIN_ALLOC_POW2 + 1);
    copy_with_field(foreign, foreign,
                    offsetof(struct shmi_superblock, max_alloc_pow2),
                    SHM_MAX_ALLOC_POW2 + 1);
    snprintf(differs, sizeof differs,
             "made for chunks of 2^%d..2^%d, this build serves 2^%d..2^%d",
             SHM_MIN_ALLOC_POW2 + 1, SHM_MAX_ALLOC_POW2 + 1, SHM_MIN_ALLOC_POW2,
             SHM_MAX_ALLOC_POW2);
    expect_refusal_saying(foreign, EPROTO, differs);
    copy_with_field(good, foreign, offsetof(struct shmi_superblock, version),
                    SHMI_FORMAT_VERSION + 6);
    snprintf(differs, sizeof differs, "format version %u, this build reads %u",
             SHMI_FORMAT_VERSION + 6, SHMI_FORMAT_VERSION);
    expect_refusal_saying(foreign, EPROTO, differs);
    copy_with_field(good, foreign, offsetof(struct shmi_superblock, version),
                    __builtin_bswap32(SHMI_FORMAT_VERSION));
    expect_refusal_saying(foreign, EPROTO, "the other byte order");
    copy_with_field(good, foreign, offsetof(struct shmi_superblock, page_size),
                    (uint32_t)sysconf(_SC_PAGESIZE) * 4);
    snprintf(differs, sizeof differs,
             "made for pages of %ld bytes, this machine's are %ld",
             sysconf(_SC_PAGESIZE) * 4, sysconf(_SC_PAGESIZE));
    expect_refusal_saying(foreign, EPROTO, differs);

    char *empty = path_of("empty.shm");
    write_bytes(empty, "", 0);
    expect_refusal_saying(empty, EBADMSG, "an empty file");

    expect_refusal(scratch(), EINVAL);

    char *link = path_of("link.shm");
    unlink(link);
    assert_int_equal(symlink(good, link), 0);
    expect_refusal(link, ELOOP);

    char *fifo = path_of("fifo.shm");
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    expect_refusal(fifo, EINVAL);

    char *sock = path_of("sock.shm");
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(sock) < sizeof addr.sun_path) {
        unlink(sock);
        strcpy(addr.sun_path, sock);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
        expect_refusal(sock, EINVAL);
        close(fd);
    }

    /* Missing: refused, and not created. */
    char *missing = path_of("missing.shm");
    unlink(missing);
    expect_refusal(missing, ENOENT);
    assert_int_equal(access(missing, F_OK), -1);

    const char *paths[] = {garbage, good, cut,     empty,  link,
                           fifo,    sock, missing, foreign};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        unlink(paths[i]);
        free((char *)paths[i]);
    }
    free(bytes);
}

static void environment_is_ignored(void **state)
{
    (void)state;
    char *path = path_of("env-arena.shm");
    assert_int_equal(shm_arena_close(create_arena(path, test_capacity())), 0);
    char *other = path_of("env-other.shm");
    unlink(other);
    char *assignment;
    assert_true(asprintf(&assignment, "SHM_FILE=%s", other) > 0);
    const char *args[] = {path, NULL};
    struct run r = run_as(args, assignment, -1);
    assert_int_equal(r.status, 0);
    assert_int_equal(access(other, F_OK), -1);
    run_free(&r);
    free(assignment);
    free(other);
    unlink(path);
    free(path);
}

static void command_line_errors(void **state)
{
    (void)state;
    const char *none[] = {NULL};
    const char *unknown[] = {"--frobnicate", "x", NULL};
    const char *two[] = {"a.shm", "b.shm", NULL};
    const char *zero_width[] = {"--map", "--width", "0", "x", NULL};
    const char *no_width[] = {"--width", NULL};
    const char *zero_height[] = {"--map", "--height=0", "x", NULL};
    const char *big_height[] = {"--map", "--height", "4097", "x", NULL};
    const char *no_height[] = {"x", "--height", NULL};
    const char *const *bad[] = {none,     unknown,     two,        zero_width,
                                no_width, zero_height, big_height, no_height};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct run r = run_tool(bad[i]);
        assert_int_equal(r.status, 2);
        assert_string_equal(r.out, "");
        assert_non_null(strstr(r.err, "usage: shm-stat"));
        run_free(&r);
    }
    const char *help[] = {"--help", NULL};
    struct run r = run_tool(help);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "fragmentation = 1 - "));
    assert_non_null(strstr(r.out, "--height N"));
    run_free(&r);
    const char *version[] = {"--version", NULL};
    r = run_tool(version);
    assert_int_equal(r.status, 0);
    char expected[64];
    snprintf(expected, sizeof expected, "chunks of 2^%d to 2^%d bytes",
             SHM_MIN_ALLOC_POW2, SHM_MAX_ALLOC_POW2);
    assert_non_null(strstr(r.out, expected));
    run_free(&r);
}

/* Two children attached to path at once: one is then killed, the other
 * exits without closing. Both are attached before either ends, so that
 * neither's open recovers the other (an open recovers a window of the
 * table, which may hold the slot of a process that ended before it). */
static void leave_dead_and_exited(const char *path)
{
    int ready[2], go[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    fflush(NULL);
    pid_t pids[2];
    for (int k = 0; k < 2; k++) {
        pids[k] = fork();
        assert_true(pids[k] >= 0);
        if (pids[k] == 0) {
            struct shm_arena_options opts = {.flags = SHM_ARENA_NO_CREATE};
            char byte = shm_arena_open(path, &opts) ? 'y' : 'n';
            if (write(ready[1], &byte, 1) != 1 || read(go[0], &byte, 1) != 1)
                _exit(3);
            if (k == 0)
                raise(SIGKILL);
            exit(0);
        }
    }
    for (int k = 0; k < 2; k++) {
        char byte = 0;
        assert_int_equal(read(ready[0], &byte, 1), 1);
        assert_int_equal(byte, 'y');
    }
    assert_int_equal(write(go[1], "gg", 2), 2);
    int status;
    assert_int_equal(waitpid(pids[0], &status, 0), pids[0]);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_int_equal(waitpid(pids[1], &status, 0), pids[1]);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(ready[0]);
    close(ready[1]);
    close(go[0]);
    close(go[1]);
}

static void dead_and_exited_are_shown_and_recovered(void **state)
{
    (void)state;
    char *path = path_of("recover.shm");
    shm_arena *a = create_arena(path, test_capacity());
    assert_int_equal(shm_arena_close(a), 0);
    leave_dead_and_exited(path);

    const char *text[] = {path, NULL};
    struct run r = run_tool(text);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, " dead (attachment "));
    assert_non_null(strstr(r.out, " exited cleanly (attachment "));
    assert_true(text_value(r.out, "to recover") == 2);
    run_free(&r);
    const char *json[] = {"--json", path, NULL};
    r = run_tool(json);
    assert_int_equal(r.status, 0);
    assert_valid_json(r.out);
    assert_true(json_value(r.out, "recoverable_entries") == 2);
    assert_non_null(strstr(r.out, "\"state\": \"dead\""));
    assert_non_null(strstr(r.out, "\"state\": \"exited\""));
    run_free(&r);

    const char *recover[] = {"--recover", path, NULL};
    r = run_tool(recover);
    if (r.status != 0)
        fail_msg("status %d, stderr: %s", r.status, r.err);
    assert_non_null(strstr(r.out, "this mode writes to the file"));
    run_free(&r);
    r = run_tool(text);
    assert_int_equal(r.status, 0);
    assert_true(text_value(r.out, "to recover") == 0);
    assert_null(strstr(r.out, " dead (attachment "));
    run_free(&r);
    unlink(path);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(figures_are_the_librarys),
        cmocka_unit_test(map_draws_every_block),
        cmocka_unit_test(check_reports_a_damaged_word),
        cmocka_unit_test(read_only_file_is_read),
        cmocka_unit_test(another_users_file_is_inspected),
        cmocka_unit_test(hostile_files_are_refused),
        cmocka_unit_test(environment_is_ignored),
        cmocka_unit_test(command_line_errors),
        cmocka_unit_test(dead_and_exited_are_shown_and_recovered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
