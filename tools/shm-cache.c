/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm-cache: look into and change the shm_cache kept in an arena file, as
 * memcached-tool and redis-cli do for their servers.
 *
 *     shm-cache [--json] [--name NAME] FILE COMMAND [ARG...]
 *       get KEY                 the value, as it is
 *       set KEY VALUE [TTL]     VALUE "-": standard input
 *       delete KEY
 *       stats                   the counters (--json: one object)
 *       dump                    every live entry: key, value length, value
 *
 * The file must exist and hold the cache (named "default" unless --name):
 * the tool never creates either. get and dump open the file for writing
 * when the user may, and then read as any client does (each value read is
 * one a set stored whole); on a file the user may only read they read it
 * read-only, which never writes the file but may show a value replaced
 * at that very moment from a chunk already reused. stats only reads.
 *
 * Exit status: 0 done, 1 not found (get, delete) or refused (the file,
 * the cache, the arena full...: one line on stderr), 2 usage.
 *
 * Linked with the static library, as shm-stat is: $SHM_FILE in the
 * caller's environment cannot make it open another file.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <shm_alloc.h>
#include <shm_cache.h>

#ifndef SHM_CACHE_TOOL_VERSION
#define SHM_CACHE_TOOL_VERSION "unknown"
#endif

enum exit_status { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2 };

static const char usage_text[] =
    "usage: shm-cache [--json] [--name NAME] FILE get KEY\n"
    "       shm-cache [--name NAME] FILE set KEY VALUE [TTL]\n"
    "       shm-cache [--name NAME] FILE delete KEY\n"
    "       shm-cache [--json] [--name NAME] FILE stats | dump\n"
    "       shm-cache --help | --version\n";

static const char help_text[] =
    "\n"
    "  get KEY              print the value of KEY as stored (a newline\n"
    "                       follows only on a terminal)\n"
    "  set KEY VALUE [TTL]  store VALUE (\"-\": standard input), expiring\n"
    "                       after TTL seconds (0 or none: never)\n"
    "  delete KEY           remove KEY\n"
    "  stats                the cache's counters, one per line\n"
    "  dump                 every live entry: key, value length, value\n"
    "                       (quoted and escaped, or hex when not text)\n"
    "  --json               stats as one JSON object\n"
    "  --name NAME          the cache NAME of the arena (default: default)\n"
    "\n"
    "Exit status: 0 done, 1 not found or refused, 2 usage.\n";

static const char *file_name = "";

static void complain(const char *fmt, const char *a, const char *b)
{
    (void)fprintf(stderr, "shm-cache: ");
    (void)fprintf(stderr, fmt, a, b);
    (void)fputc('\n', stderr);
}

static int usage_error(const char *what, const char *arg)
{
    (void)fprintf(stderr, "shm-cache: %s%s%s\n%s", what, arg ? ": " : "",
                  arg ? arg : "", usage_text);
    return EXIT_USAGE;
}

/* ---- opening ------------------------------------------------------------ */

struct handle {
    shm_arena *arena;
    shm_cache *cache;
};

/* 0, or the exit status after a message. A write opens the file for
 * writing; a read that should read as a client does (client_read) opens
 * it for writing when the user may, read-only otherwise; other reads open
 * it read-only. */
static int open_cache(struct handle *h, const char *name, bool write,
                      bool client_read)
{
    char root[64];
    (void)snprintf(root, sizeof root, "shm_cache:%s", name);
    unsigned flags = SHM_ARENA_NO_CREATE;
    if (!write && !(client_read && access(file_name, W_OK) == 0))
        flags |= SHM_ARENA_READ_ONLY;
    struct shm_arena_options opts = {.flags = flags};
    h->arena = shm_arena_open(file_name, &opts);
    if (h->arena == NULL) {
        complain("%s: %s", file_name, strerror(errno));
        return EXIT_REFUSED;
    }
    /* shm_cache_attach would make a cache in an arena without one. */
    if (shm_arena_root_get(h->arena, root) == SHM_NULL) {
        complain("%s: no cache named %s", file_name, name);
        shm_arena_close(h->arena);
        return EXIT_REFUSED;
    }
    h->cache = shm_cache_attach(h->arena, name, NULL);
    if (h->cache == NULL) {
        complain("%s: %s", file_name, strerror(errno));
        shm_arena_close(h->arena);
        return EXIT_REFUSED;
    }
    return 0;
}

static int close_cache(struct handle *h)
{
    int err = shm_cache_close(h->cache);
    int err2 = shm_arena_close(h->arena);
    if (err == 0)
        err = err2;
    if (err != 0) {
        complain("%s: close: %s", file_name, strerror(err));
        return EXIT_REFUSED;
    }
    return 0;
}

static int finish(struct handle *h, int status)
{
    int closed = close_cache(h);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        complain("%s: %s", "standard output", strerror(errno));
        return EXIT_REFUSED;
    }
    return status != 0 ? status : closed;
}

static bool key_ok(const char *key)
{
    size_t len = strlen(key);
    if (len == 0 || len > SHM_CACHE_KEY_MAX) {
        (void)fprintf(stderr, "shm-cache: a key is 1 to %d bytes\n",
                      SHM_CACHE_KEY_MAX);
        return false;
    }
    return true;
}

/* ---- printing ----------------------------------------------------------- */

static bool is_text(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((p[i] < 0x20 || p[i] > 0x7e) && p[i] != '\t' && p[i] != '\n' &&
            p[i] != '\r')
            return false;
    return true;
}

/* Quoted, with C escapes; bytes outside printable ASCII as \xNN. */
static void print_quoted(const unsigned char *p, size_t len)
{
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        switch (p[i]) {
        case '"':
            (void)fputs("\\\"", stdout);
            break;
        case '\\':
            (void)fputs("\\\\", stdout);
            break;
        case '\t':
            (void)fputs("\\t", stdout);
            break;
        case '\n':
            (void)fputs("\\n", stdout);
            break;
        case '\r':
            (void)fputs("\\r", stdout);
            break;
        default:
            if (p[i] < 0x20 || p[i] > 0x7e)
                printf("\\x%02x", p[i]);
            else
                putchar(p[i]);
        }
    }
    putchar('"');
}

static void print_json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static int dump_entry(const void *key, size_t key_len, const void *value,
                      size_t value_len, void *ctx)
{
    (void)ctx;
    const unsigned char *v = value;
    print_quoted(key, key_len);
    printf(" %zu ", value_len);
    if (is_text(v, value_len)) {
        print_quoted(v, value_len);
    } else {
        (void)fputs("0x", stdout);
        for (size_t i = 0; i < value_len; i++)
            printf("%02x", v[i]);
    }
    putchar('\n');
    return ferror(stdout) ? EIO : 0;
}

/* ---- commands ----------------------------------------------------------- */

static int cmd_get(struct handle *h, const char *key)
{
    size_t len = 0;
    int err = shm_cache_get(h->cache, key, strlen(key), NULL, 0, &len);
    if (err == ENOBUFS)
        err = 0; /* the length is known */
    unsigned char *buf = NULL;
    /* The value may grow between asking its length and reading it. */
    for (int tries = 0; err == 0 && tries < 8; tries++) {
        unsigned char *grown = realloc(buf, len ? len : 1);
        if (grown == NULL) {
            err = ENOMEM;
            break;
        }
        buf = grown;
        err =
            shm_cache_get(h->cache, key, strlen(key), buf, len ? len : 1, &len);
        if (err != ENOBUFS)
            break;
        err = 0;
    }
    if (err == ENOENT) {
        free(buf);
        return EXIT_REFUSED; /* not found: no message, as a failed grep */
    }
    if (err != 0) {
        complain("get: %s%s", strerror(err), "");
        free(buf);
        return EXIT_REFUSED;
    }
    (void)fwrite(buf, 1, len, stdout);
    if (isatty(STDOUT_FILENO))
        putchar('\n');
    free(buf);
    return 0;
}

/* The whole of standard input; NULL on an error. */
static char *read_stdin(size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) {
            if (ferror(stdin)) {
                free(buf);
                return NULL;
            }
            *len = n;
            return buf;
        }
        if (n == cap) {
            char *grown = realloc(buf, cap *= 2);
            if (grown == NULL)
                free(buf);
            buf = grown;
        }
    }
    return NULL;
}

static int cmd_set(struct handle *h, const char *key, const char *value,
                   uint32_t ttl)
{
    size_t len = strlen(value);
    char *input = NULL;
    if (strcmp(value, "-") == 0) {
        input = read_stdin(&len);
        if (input == NULL) {
            complain("%s: %s", "standard input", strerror(errno));
            return EXIT_REFUSED;
        }
        value = input;
    }
    int err = shm_cache_set(h->cache, key, strlen(key), value, len, ttl);
    free(input);
    if (err != 0) {
        complain("set: %s%s", strerror(err), "");
        return EXIT_REFUSED;
    }
    return 0;
}

static int cmd_delete(struct handle *h, const char *key)
{
    int err = shm_cache_delete(h->cache, key, strlen(key));
    if (err == ENOENT)
        return EXIT_REFUSED;
    if (err != 0) {
        complain("delete: %s%s", strerror(err), "");
        return EXIT_REFUSED;
    }
    return 0;
}

static int cmd_stats(struct handle *h, bool json)
{
    struct shm_cache_stats s;
    int err = shm_cache_stats(h->cache, &s);
    if (err != 0) {
        complain("stats: %s%s", strerror(err), "");
        return EXIT_REFUSED;
    }
    static const char *const names[] = {
        "items",     "hits",        "misses", "sets",   "deletes",
        "evictions", "expirations", "bytes",  "memory", "buckets"};
    const uint64_t values[] = {s.items,
                               s.hits,
                               s.misses,
                               s.sets,
                               s.deletes,
                               s.evictions,
                               s.expirations,
                               (uint64_t)s.bytes,
                               (uint64_t)s.memory,
                               s.buckets};
    if (json) {
        printf("{\"file\": ");
        print_json_string(file_name);
        for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
            printf(", \"%s\": %llu", names[i], (unsigned long long)values[i]);
        printf("}\n");
    } else {
        for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
            printf("%-12s %llu\n", names[i], (unsigned long long)values[i]);
    }
    return 0;
}

static int cmd_dump(struct handle *h)
{
    int err = shm_cache_foreach(h->cache, dump_entry, NULL);
    if (err != 0) {
        complain("dump: %s%s", strerror(err), "");
        return EXIT_REFUSED;
    }
    return 0;
}

/* ---- main --------------------------------------------------------------- */

static bool parse_ttl(const char *s, uint32_t *ttl)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || v > UINT32_MAX)
        return false;
    *ttl = (uint32_t)v;
    return true;
}

int main(int argc, char **argv)
{
    bool json = false;
    const char *name = "default";
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        } else if (strcmp(arg, "--json") == 0) {
            json = true;
        } else if (strcmp(arg, "--name") == 0) {
            if (++i == argc)
                return usage_error("--name needs a name", NULL);
            name = argv[i];
        } else if (strncmp(arg, "--name=", 7) == 0) {
            name = arg + 7;
        } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            printf("%s%s", usage_text, help_text);
            return fflush(stdout) == 0 ? EXIT_OK : EXIT_REFUSED;
        } else if (strcmp(arg, "--version") == 0) {
            printf("shm-cache %s\n", SHM_CACHE_TOOL_VERSION);
            return fflush(stdout) == 0 ? EXIT_OK : EXIT_REFUSED;
        } else {
            return usage_error("unknown option", arg);
        }
    }
    size_t name_len = strlen(name);
    if (name_len == 0 || name_len > 40)
        return usage_error("a cache name is 1 to 40 bytes", name);
    if (argc - i < 2)
        return usage_error(argc - i < 1 ? "no file given" : "no command given",
                           NULL);
    file_name = argv[i];
    const char *cmd = argv[i + 1];
    char **args = argv + i + 2;
    int nargs = argc - i - 2;

    enum { GET, SET, DELETE, STATS, DUMP } op;
    int min_args, max_args;
    if (strcmp(cmd, "get") == 0)
        op = GET, min_args = max_args = 1;
    else if (strcmp(cmd, "set") == 0)
        op = SET, min_args = 2, max_args = 3;
    else if (strcmp(cmd, "delete") == 0)
        op = DELETE, min_args = max_args = 1;
    else if (strcmp(cmd, "stats") == 0)
        op = STATS, min_args = max_args = 0;
    else if (strcmp(cmd, "dump") == 0)
        op = DUMP, min_args = max_args = 0;
    else
        return usage_error("unknown command", cmd);
    if (nargs < min_args || nargs > max_args)
        return usage_error("wrong number of arguments for", cmd);
    uint32_t ttl = 0;
    if (op == SET && nargs == 3 && !parse_ttl(args[2], &ttl))
        return usage_error("bad TTL (seconds, 0 to 4294967295)", args[2]);
    if ((op == GET || op == SET || op == DELETE) && !key_ok(args[0]))
        return EXIT_USAGE;

    struct handle h;
    int status = open_cache(&h, name, op == SET || op == DELETE,
                            op == GET || op == DUMP);
    if (status != 0)
        return status;
    switch (op) {
    case GET:
        status = cmd_get(&h, args[0]);
        break;
    case SET:
        status = cmd_set(&h, args[0], args[1], ttl);
        break;
    case DELETE:
        status = cmd_delete(&h, args[0]);
        break;
    case STATS:
        status = cmd_stats(&h, json);
        break;
    case DUMP:
        status = cmd_dump(&h);
        break;
    }
    return finish(&h, status);
}
