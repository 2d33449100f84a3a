/*
 * shm-stat: what an arena file holds, read without changing it.
 *
 *     shm-stat [--json] [--check] [--map] [--width N] FILE
 *
 * The file is opened with SHM_ARENA_READ_ONLY | SHM_ARENA_NO_CREATE, so a
 * file the user may only read works, a missing file is not created, and a
 * file the library would refuse (another owner, a symlink, not a regular
 * file, another format or build, damaged geometry) is refused the same
 * way: one line on stderr, exit status 1. Everything shown is computed
 * from the bitmaps while other processes go on: a snapshot.
 *
 * The tool is linked with the static library and calls only the
 * shm_arena_* functions, so the constructor that attaches $SHM_FILE is not
 * part of it: the environment of the caller cannot make it open, let
 * alone create, another file.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <shm_alloc.h>

/* From the build (tools/CMakeLists.txt): the version and the size range
 * of the library linked in. */
#ifndef SHM_STAT_VERSION
#define SHM_STAT_VERSION "unknown"
#endif
#ifndef SHM_STAT_MIN_POW2
#define SHM_STAT_MIN_POW2 0
#endif
#ifndef SHM_STAT_MAX_POW2
#define SHM_STAT_MAX_POW2 0
#endif

enum exit_status {
    EXIT_OK = 0,
    EXIT_REFUSED = 1, /* the file cannot be read as an arena */
    EXIT_USAGE = 2,
    EXIT_INCONSISTENT = 3, /* --check found inconsistent bitmap words */
};

#define DEFAULT_WIDTH 64u
#define MAX_WIDTH 4096u
/* Blocks read from the arena per call of shm_arena_block_usage. */
#define USAGE_BATCH 4096u

static const char usage_text[] =
    "usage: shm-stat [--json] [--check] [--map] [--width N] FILE\n"
    "       shm-stat --help | --version\n";

static const char help_text[] =
    "Shows what an shm_alloc arena file holds: capacity, bytes in use and\n"
    "free, the largest free chunk, the free chunks of each size class, the\n"
    "processes attached and a fragmentation figure. The file is opened\n"
    "read-only and never changed; a file the library would refuse is\n"
    "refused with a one-line message.\n"
    "\n"
    "  --json       print the same as one JSON object\n"
    "  --check      also check the bitmaps' invariants (exact only while\n"
    "               nobody allocates or frees); exit status 3 when a word\n"
    "               breaks one\n"
    "  --map        draw the occupancy of the arena, one character per\n"
    "               block of the largest chunk size:\n"
    "               ' ' free, '.' under 25% in use, ':' under 50%,\n"
    "               '*' under 75%, '#' 75% or more\n"
    "  --width N    blocks per line of the map (default 64)\n"
    "  --help       this text\n"
    "  --version    the version of shm-stat and its size range\n"
    "\n"
    "fragmentation = 1 - (free bytes in whole free blocks) / (free bytes):\n"
    "the share of the free memory that a request of the largest chunk size\n"
    "cannot use. 0 when every free byte lies in a completely free block,\n"
    "near 1 when the free space is scattered in smaller chunks; 0 when\n"
    "nothing is free.\n"
    "\n"
    "Exit status: 0 success, 1 the file cannot be read as an arena (the\n"
    "message says why), 2 bad command line, 3 --check found a problem.\n";

struct options {
    const char *path;
    bool json;
    bool check;
    bool map;
    unsigned width;
};

/* A message on stderr, "shm-stat: " first. Nothing more can be done when
 * stderr itself fails. */
__attribute__((format(printf, 1, 2))) static void complain(const char *format,
                                                           ...)
{
    va_list args;
    va_start(args, format);
    (void)fputs("shm-stat: ", stderr);
    (void)vfprintf(stderr, format, args);
    va_end(args);
}

/* ---- command line ------------------------------------------------------ */

static int usage_error(const char *what, const char *arg)
{
    complain("%s%s%s\n%s", what, arg ? ": " : "", arg ? arg : "", usage_text);
    return EXIT_USAGE;
}

static bool parse_width(const char *text, unsigned *width)
{
    char *end;
    errno = 0;
    unsigned long value = strtoul(text, &end, 10);
    if (errno || end == text || *end != '\0' || *text == '-' || value == 0 ||
        value > MAX_WIDTH)
        return false;
    *width = (unsigned)value;
    return true;
}

/* Fills *opts; returns -1 to go on, or the exit status to end with. */
static int parse_arguments(int argc, char **argv, struct options *opts)
{
    opts->width = DEFAULT_WIDTH;
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (options_done || arg[0] != '-' || strcmp(arg, "-") == 0) {
            if (opts->path)
                return usage_error("more than one file", arg);
            opts->path = arg;
        } else if (strcmp(arg, "--") == 0) {
            options_done = true;
        } else if (strcmp(arg, "--json") == 0) {
            opts->json = true;
        } else if (strcmp(arg, "--check") == 0) {
            opts->check = true;
        } else if (strcmp(arg, "--map") == 0) {
            opts->map = true;
        } else if (strncmp(arg, "--width=", 8) == 0) {
            if (!parse_width(arg + 8, &opts->width))
                return usage_error("bad width (1..4096)", arg + 8);
        } else if (strcmp(arg, "--width") == 0) {
            if (i + 1 >= argc || !parse_width(argv[i + 1], &opts->width))
                return usage_error("bad width (1..4096)",
                                   i + 1 < argc ? argv[i + 1] : NULL);
            i++;
        } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            printf("%s\n%s", usage_text, help_text);
            return EXIT_OK;
        } else if (strcmp(arg, "--version") == 0) {
            printf("shm-stat %s (arenas with chunks of 2^%d to 2^%d bytes)\n",
                   SHM_STAT_VERSION, SHM_STAT_MIN_POW2, SHM_STAT_MAX_POW2);
            return EXIT_OK;
        } else {
            return usage_error("unknown option", arg);
        }
    }
    if (!opts->path)
        return usage_error("no file given", NULL);
    return -1;
}

/* ---- opening ----------------------------------------------------------- */

/* What an errno of shm_arena_open means for an arena file, beyond
 * strerror's words; NULL when strerror says enough. */
static const char *explain(int err)
{
    switch (err) {
    case EACCES:
    case EPERM:
        return "not readable, or owned by another user";
    case ELOOP:
        return "a symbolic link: arena files are opened only directly";
    case EINVAL:
        return "not a regular file";
    case EPROTO:
        return "not an arena of this build: magic, format version or size "
               "range differ";
    case EBADMSG:
        return "a damaged arena: its geometry does not fit the file";
    default:
        return NULL;
    }
}

static const char *sigbus_path = "";

/* The file was cut short by someone else after it was validated: reading
 * past its new end raises SIGBUS. One line and out, as for any refusal. */
static void on_sigbus(int sig)
{
    (void)sig;
    const char *parts[] = {"shm-stat: ", sigbus_path,
                           ": the file shrank while it was read\n"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        const char *p = parts[i];
        size_t left = strlen(p);
        while (left > 0) {
            ssize_t n = write(STDERR_FILENO, p, left);
            if (n <= 0)
                break;
            p += n;
            left -= (size_t)n;
        }
    }
    _exit(EXIT_REFUSED);
}

static shm_arena *open_arena(const char *path)
{
    struct shm_arena_options opts = {
        .flags = SHM_ARENA_READ_ONLY | SHM_ARENA_NO_CREATE,
    };
    shm_arena *arena = shm_arena_open(path, &opts);
    if (!arena) {
        int err = errno;
        const char *why = explain(err);
        complain("%s: %s%s%s%s\n", path, strerror(err), why ? " (" : "",
                 why ? why : "", why ? ")" : "");
        return NULL;
    }
    sigbus_path = path;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigbus;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
    return arena;
}

/* ---- figures ----------------------------------------------------------- */

struct figures {
    struct shm_stats stats;
    size_t blocks;
    double fragmentation;
    int inconsistent; /* -1: not checked */
};

static void compute_figures(shm_arena *arena, bool check, struct figures *f)
{
    /* Cannot fail for an open arena and a non-NULL pointer. */
    (void)shm_arena_stats(arena, &f->stats);
    const struct shm_stats *s = &f->stats;
    f->blocks = (s->capacity + s->max_chunk - 1) / s->max_chunk;
    size_t in_blocks = s->classes ? s->free_chunks[s->classes - 1] : 0;
    f->fragmentation = s->bytes_free
                           ? 1.0 - (double)in_blocks * (double)s->max_chunk /
                                       (double)s->bytes_free
                           : 0.0;
    if (f->fragmentation < 0.0)
        f->fragmentation = 0.0; /* the snapshot moved between the counts */
    f->inconsistent = check ? shm_arena_check(arena) : -1;
}

/* "64 MiB", "1.5 KiB", "32 B". */
static const char *human(size_t bytes, char buf[32])
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    unsigned u = 0;
    double value = (double)bytes;
    while (value >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        value /= 1024.0;
        u++;
    }
    if (value == (double)(uint64_t)value)
        (void)snprintf(buf, 32, "%llu %s", (unsigned long long)value, units[u]);
    else
        (void)snprintf(buf, 32, "%.1f %s", value, units[u]);
    return buf;
}

static double percent(size_t part, size_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

/* ---- text -------------------------------------------------------------- */

static int print_process(const struct shm_process *p, void *context)
{
    (void)context;
    printf("  pid %-10" PRIu32 " %s (started at tick %" PRIu64 ")\n", p->pid,
           p->live ? "live" : "dead", p->start_time);
    return 0;
}

static void print_text(shm_arena *arena, const char *path,
                       const struct figures *f)
{
    const struct shm_stats *s = &f->stats;
    char a[32], b[32];
    printf("file                %s\n", path);
    printf("capacity            %zu bytes (%s)\n", s->capacity,
           human(s->capacity, a));
    printf("mapping size        %zu bytes (%s, with the metadata)\n",
           s->mapping_size, human(s->mapping_size, a));
    printf("blocks              %zu of %s\n", f->blocks,
           human(s->max_chunk, a));
    printf("chunk sizes         %s to %s (%u classes)\n",
           human(s->min_chunk, a), human(s->max_chunk, b), s->classes);
    printf("bytes in use        %zu (%.1f%%)\n", s->bytes_in_use,
           percent(s->bytes_in_use, s->capacity));
    printf("bytes free          %zu (%.1f%%)\n", s->bytes_free,
           percent(s->bytes_free, s->capacity));
    printf("largest free        %zu bytes\n", s->largest_free);
    printf("fragmentation       %.4f (1 - free bytes in whole free blocks / "
           "free bytes)\n",
           f->fragmentation);
    printf("attached processes  %zu\n", s->attached_processes);
    printf("damage refused      %zu\n", s->damage_refused);
    (void)shm_arena_processes(arena, print_process, NULL);
    if (f->inconsistent == 0)
        printf("check               consistent\n");
    else if (f->inconsistent > 0)
        printf("check               %d inconsistent bitmap words\n",
               f->inconsistent);

    printf("\nfree chunks by size (buddies coalesced as far as they go)\n");
    printf("%12s %12s %16s\n", "size", "count", "bytes");
    size_t total_count = 0, total_bytes = 0;
    for (unsigned c = 0; c < s->classes; c++) {
        size_t size = s->min_chunk << c;
        size_t count = s->free_chunks[c];
        printf("%12s %12zu %16zu\n", human(size, a), count, count * size);
        total_count += count;
        total_bytes += count * size;
    }
    printf("%12s %12zu %16zu\n", "total", total_count, total_bytes);
}

static char map_char(uint32_t used, size_t size)
{
    if (used == 0)
        return ' ';
    if ((uint64_t)used * 4 < size)
        return '.';
    if ((uint64_t)used * 2 < size)
        return ':';
    if ((uint64_t)used * 4 < (uint64_t)size * 3)
        return '*';
    return '#';
}

/* Size of block b below the capacity (the last one may be cut short). */
static size_t block_size(const struct shm_stats *s, size_t b)
{
    size_t start = b * s->max_chunk;
    return s->capacity - start < s->max_chunk ? s->capacity - start
                                              : s->max_chunk;
}

/* Reads the usage of the blocks from `first` on, at most USAGE_BATCH of
 * them: how many it read, 0 after saying why it could not. */
static size_t read_usage(shm_arena *arena, size_t blocks, size_t first,
                         uint32_t used[USAGE_BATCH])
{
    size_t count = blocks - first;
    if (count > USAGE_BATCH)
        count = USAGE_BATCH;
    int err = shm_arena_block_usage(arena, first, count, used);
    if (err) {
        complain("block usage: %s\n", strerror(err));
        return 0;
    }
    return count;
}

static int print_map(shm_arena *arena, const struct figures *f, unsigned width)
{
    const struct shm_stats *s = &f->stats;
    char a[32];
    printf("\noccupancy, one character per block of %s:\n",
           human(s->max_chunk, a));
    printf("  ' ' free  '.' < 25%%  ':' < 50%%  '*' < 75%%  '#' >= 75%% in "
           "use\n");
    printf("%10s\n", "block");
    uint32_t used[USAGE_BATCH];
    size_t column = 0;
    for (size_t first = 0; first < f->blocks; first += USAGE_BATCH) {
        size_t count = read_usage(arena, f->blocks, first, used);
        if (count == 0)
            return EXIT_REFUSED;
        for (size_t i = 0; i < count; i++) {
            if (column == 0)
                printf("%10zu |", first + i);
            putchar(map_char(used[i], block_size(s, first + i)));
            if (++column == width) {
                puts("|");
                column = 0;
            }
        }
    }
    if (column != 0)
        printf("%*s|\n", (int)(width - column), "");
    return EXIT_OK;
}

/* ---- JSON -------------------------------------------------------------- */

static void print_json_string(const char *text)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static int print_json(shm_arena *arena, const char *path,
                      const struct figures *f, bool map)
{
    const struct shm_stats *s = &f->stats;
    printf("{\n  \"file\": ");
    print_json_string(path);
    printf(",\n  \"capacity\": %zu,\n", s->capacity);
    printf("  \"mapping_size\": %zu,\n", s->mapping_size);
    printf("  \"block_size\": %zu,\n", s->max_chunk);
    printf("  \"blocks\": %zu,\n", f->blocks);
    printf("  \"min_chunk\": %zu,\n", s->min_chunk);
    printf("  \"max_chunk\": %zu,\n", s->max_chunk);
    printf("  \"classes\": %u,\n", s->classes);
    printf("  \"bytes_in_use\": %zu,\n", s->bytes_in_use);
    printf("  \"bytes_free\": %zu,\n", s->bytes_free);
    printf("  \"largest_free\": %zu,\n", s->largest_free);
    printf("  \"fragmentation\": %.6f,\n", f->fragmentation);
    printf("  \"attached_processes\": %zu,\n", s->attached_processes);
    printf("  \"damage_refused\": %zu,\n", s->damage_refused);
    printf("  \"free_chunks\": [");
    for (unsigned c = 0; c < s->classes; c++)
        printf("%s\n    {\"size\": %zu, \"count\": %zu}", c ? "," : "",
               s->min_chunk << c, s->free_chunks[c]);
    printf("\n  ]");
    if (f->inconsistent >= 0)
        printf(",\n  \"check\": {\"consistent\": %s, "
               "\"inconsistent_words\": %d}",
               f->inconsistent == 0 ? "true" : "false", f->inconsistent);
    if (map) {
        printf(",\n  \"block_used_bytes\": [");
        uint32_t used[USAGE_BATCH];
        for (size_t first = 0; first < f->blocks; first += USAGE_BATCH) {
            size_t count = read_usage(arena, f->blocks, first, used);
            if (count == 0)
                return EXIT_REFUSED;
            for (size_t i = 0; i < count; i++) {
                size_t b = first + i;
                printf("%s%s%u", b > 0 ? "," : "", b % 16 ? " " : "\n    ",
                       used[i]);
            }
        }
        printf("\n  ]");
    }
    printf("\n}\n");
    return EXIT_OK;
}

/* ---- main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct options opts;
    memset(&opts, 0, sizeof opts);
    int status = parse_arguments(argc, argv, &opts);
    if (status >= 0)
        return status;

    shm_arena *arena = open_arena(opts.path);
    if (!arena)
        return EXIT_REFUSED;
    struct figures f;
    compute_figures(arena, opts.check, &f);
    if (opts.json) {
        status = print_json(arena, opts.path, &f, opts.map);
    } else {
        print_text(arena, opts.path, &f);
        status = opts.map ? print_map(arena, &f, opts.width) : EXIT_OK;
    }
    shm_arena_close(arena);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        complain("writing the output: %s\n", strerror(errno));
        return EXIT_REFUSED;
    }
    if (status == EXIT_OK && f.inconsistent > 0)
        status = EXIT_INCONSISTENT;
    return status;
}
