/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm-stat: what an arena file holds, read without changing it.
 *
 *     shm-stat [--json] [--check] [--map] [--width N] FILE
 *     shm-stat --recover FILE
 *
 * The file is opened with SHM_ARENA_READ_ONLY | SHM_ARENA_NO_CREATE, so
 * any file the user may read works (also another user's: the library's
 * owner check guards writers only), a missing file is not created, and a
 * file the library would refuse (a symlink, not a regular file, another
 * format or build, damaged geometry) is refused the same way: one line on
 * stderr, exit status 1. Everything shown is computed
 * from the bitmaps while other processes go on: a snapshot.
 *
 * The tool is linked with the static library and calls only the
 * shm_arena_* functions, so the constructor that attaches $SHM_FILE is not
 * part of it: the environment of the caller cannot make it open, let
 * alone create, another file.
 *
 * --recover is the one mode that writes: it opens the file for writing
 * (never creating it) and runs shm_arena_recover (recover_file below).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <shm_alloc.h>

/* The superblock's layout, to say why a file was refused. */
#include "layout.h"

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
/* Rows of the map at most: a larger arena gets several blocks per
 * character. */
#define DEFAULT_HEIGHT 32u
#define MAX_HEIGHT 4096u
/* Blocks read from the arena per call of shm_arena_block_usage. */
#define USAGE_BATCH 4096u

static const char usage_text[] =
    "usage: shm-stat [--json] [--check] [--map] [--width N] [--height N] "
    "FILE\n"
    "       shm-stat --recover FILE\n"
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
    "               block of the largest chunk size, or per several blocks\n"
    "               when the arena has more than fit (the legend says how\n"
    "               many): ' ' free, '.' under 25% in use, ':' under 50%,\n"
    "               '*' under 75%, '#' 75% or more\n"
    "  --width N    characters per line of the map (default 64, at most\n"
    "               4096)\n"
    "  --height N   lines of the map at most (default 32, at most 4096):\n"
    "               the map of any arena fits width x height characters\n"
    "  --recover    WRITES to the file (the only mode that does): opens it\n"
    "               for writing and runs a recovery, which clears the\n"
    "               entries of dead and exited processes and gives back\n"
    "               what their pending operations held; prints what it did\n"
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
    bool recover;
    bool json;
    bool check;
    bool map;
    unsigned width;
    unsigned height;
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

/* A number in 1..max. */
static bool parse_count(const char *text, unsigned max, unsigned *count)
{
    char *end;
    errno = 0;
    unsigned long value = strtoul(text, &end, 10);
    if (errno || end == text || *end != '\0' || *text == '-' || value == 0 ||
        value > max)
        return false;
    *count = (unsigned)value;
    return true;
}

/* "--name=VALUE" or "--name VALUE" at argv[*i] into *count: 1 when it
 * was that option, 0 when not, -1 after a usage error (*status set). */
static int count_option(int argc, char **argv, int *i, const char *name,
                        unsigned max, unsigned *count, int *status)
{
    const char *arg = argv[*i];
    size_t len = strlen(name);
    const char *value;
    if (strncmp(arg, name, len) != 0)
        return 0;
    if (arg[len] == '=') {
        value = arg + len + 1;
    } else if (arg[len] == '\0') {
        value = *i + 1 < argc ? argv[++*i] : NULL;
    } else {
        return 0;
    }
    if (!value || !parse_count(value, max, count)) {
        char what[64];
        (void)snprintf(what, sizeof what, "bad %s (1..%u)", name + 2, max);
        *status = usage_error(what, value);
        return -1;
    }
    return 1;
}

/* Fills *opts; returns -1 to go on, or the exit status to end with. */
static int parse_arguments(int argc, char **argv, struct options *opts)
{
    opts->width = DEFAULT_WIDTH;
    opts->height = DEFAULT_HEIGHT;
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int status = 0, found = 0;
        if (!options_done && arg[0] == '-')
            found = count_option(argc, argv, &i, "--width", MAX_WIDTH,
                                 &opts->width, &status);
        if (!options_done && arg[0] == '-' && found == 0)
            found = count_option(argc, argv, &i, "--height", MAX_HEIGHT,
                                 &opts->height, &status);
        if (found < 0)
            return status;
        if (found > 0)
            continue;
        if (options_done || arg[0] != '-' || strcmp(arg, "-") == 0) {
            if (opts->path)
                return usage_error("more than one file", arg);
            opts->path = arg;
        } else if (strcmp(arg, "--") == 0) {
            options_done = true;
        } else if (strcmp(arg, "--recover") == 0) {
            opts->recover = true;
        } else if (strcmp(arg, "--json") == 0) {
            opts->json = true;
        } else if (strcmp(arg, "--check") == 0) {
            opts->check = true;
        } else if (strcmp(arg, "--map") == 0) {
            opts->map = true;
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
        return "not readable by this user";
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

/* Why a file refused with EPROTO (not an arena of this build) or EBADMSG
 * (damaged, or cut short) was refused, from its superblock read here with
 * pread: what differs from this build, or how short the file is. Writes
 * the reason into why and returns it, or NULL when the superblock does
 * not say more than the errno. Reads only; the file is not mapped. */
static const char *diagnose(const char *path, int err, char *why, size_t size)
{
    if (err != EPROTO && err != EBADMSG)
        return NULL;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return NULL;
    struct stat st;
    struct shmi_superblock sb;
    ssize_t got = -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        got = pread(fd, &sb, sizeof sb, 0);
    close(fd);
    if (got < 0)
        return NULL;
    unsigned long long file_size = (unsigned long long)st.st_size;
    long page = sysconf(_SC_PAGESIZE);
    if (file_size == 0) {
        (void)snprintf(why, size, "an empty file");
    } else if ((size_t)got < sizeof sb) {
        (void)snprintf(why, size,
                       "truncated: %llu bytes, shorter than a superblock",
                       file_size);
    } else if (memcmp(sb.magic, SHMI_MAGIC, sizeof sb.magic) != 0) {
        (void)snprintf(why, size, "not an arena file: no shm_alloc magic");
    } else if (sb.version != SHMI_FORMAT_VERSION &&
               __builtin_bswap32(sb.version) == SHMI_FORMAT_VERSION) {
        (void)snprintf(why, size, "made on a machine of the other byte order");
    } else if (sb.version != SHMI_FORMAT_VERSION) {
        (void)snprintf(why, size,
                       "format version %" PRIu32 ", this build reads %u",
                       sb.version, SHMI_FORMAT_VERSION);
    } else if (page > 0 && sb.page_size != (uint64_t)page) {
        (void)snprintf(why, size,
                       "made for pages of %" PRIu32 " bytes, this machine's "
                       "are %ld",
                       sb.page_size, page);
    } else if (sb.min_alloc_pow2 != SHM_MIN_ALLOC_POW2 ||
               sb.max_alloc_pow2 != SHM_MAX_ALLOC_POW2) {
        (void)snprintf(why, size,
                       "made for chunks of 2^%" PRIu32 "..2^%" PRIu32
                       ", this build serves 2^%d..2^%d",
                       sb.min_alloc_pow2, sb.max_alloc_pow2, SHM_MIN_ALLOC_POW2,
                       SHM_MAX_ALLOC_POW2);
    } else if (err == EPROTO) {
        (void)snprintf(why, size,
                       "made by a build with another word size or layout "
                       "(build fingerprint %#" PRIx64 ", this build's %#" PRIx64
                       ")",
                       sb.fingerprint, shmi_layout_fingerprint((uint64_t)page));
    } else if (sb.file_size > file_size) {
        (void)snprintf(why, size,
                       "truncated: %llu bytes, the superblock says %" PRIu64,
                       file_size, sb.file_size);
    } else {
        (void)snprintf(why, size, "%s", explain(err));
    }
    return why;
}

/* For the SIGBUS handler: the file, still open, and the size it had. */
static const char *sigbus_path = "";
static int sigbus_fd = -1;
static uint64_t sigbus_size;

static void write_all(const char *p, size_t left)
{
    while (left > 0) {
        ssize_t n = write(STDERR_FILENO, p, left);
        if (n <= 0)
            break;
        p += n;
        left -= (size_t)n;
    }
}

/* Async-signal-safe: the decimal digits of v. */
static void write_number(uint64_t v)
{
    char digits[24];
    size_t at = sizeof digits;
    do {
        digits[--at] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    write_all(digits + at, sizeof digits - at);
}

/* The file was cut short by someone else after it was validated: reading
 * past its new end raises SIGBUS. One line and out, as for any refusal. */
static void on_sigbus(int sig)
{
    (void)sig;
    struct stat st;
    write_all("shm-stat: ", 10);
    write_all(sigbus_path, strlen(sigbus_path));
    if (sigbus_fd >= 0 && fstat(sigbus_fd, &st) == 0 &&
        (uint64_t)st.st_size < sigbus_size) {
        write_all(": truncated while it was read: ", 31);
        write_number((uint64_t)st.st_size);
        write_all(" bytes, the superblock says ", 28);
        write_number(sigbus_size);
        write_all("\n", 1);
    } else {
        static const char shrank[] = ": the file shrank while it was read\n";
        write_all(shrank, sizeof shrank - 1);
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
        char detail[256];
        const char *why = diagnose(path, err, detail, sizeof detail);
        if (!why)
            why = explain(err);
        complain("%s: %s%s%s%s\n", path, strerror(err), why ? " (" : "",
                 why ? why : "", why ? ")" : "");
        return NULL;
    }
    sigbus_path = path;
    sigbus_size = shm_arena_mapping_size(arena);
    sigbus_fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
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

static const char *state_name(const struct shm_process *p)
{
    switch (p->state) {
    case SHM_PROCESS_LIVE:
        return "live";
    case SHM_PROCESS_DEAD:
        return "dead";
    case SHM_PROCESS_EXITED:
        return "exited cleanly";
    }
    return "unknown";
}

static int print_process(const struct shm_process *p, void *context)
{
    size_t *recoverable = context;
    if (p->state != SHM_PROCESS_LIVE)
        (*recoverable)++;
    printf("  pid %-10" PRIu32 " %s (attachment %" PRIu64 ")\n", p->pid,
           state_name(p), p->start_time);
    return 0;
}

static int print_process_json(const struct shm_process *p, void *context)
{
    size_t *seen = context;
    printf("%s\n    {\"pid\": %" PRIu32 ", \"attachment\": %" PRIu64
           ", \"state\": \"%s\"}",
           (*seen)++ ? "," : "", p->pid, p->start_time,
           p->state == SHM_PROCESS_EXITED ? "exited" : state_name(p));
    return 0;
}

static int count_recoverable(const struct shm_process *p, void *context)
{
    if (p->state != SHM_PROCESS_LIVE)
        ++*(size_t *)context;
    return 0;
}

/* --recover: the one mode that writes to the file. */
static int recover_file(const char *path)
{
    struct shm_arena_options opts = {.flags = SHM_ARENA_NO_CREATE};
    shm_arena *arena = shm_arena_open(path, &opts);
    if (!arena) {
        complain("%s: %s\n", path, strerror(errno));
        return EXIT_REFUSED;
    }
    struct shm_recovery r;
    int err = shm_arena_recover(arena, &r);
    shm_arena_close(arena);
    if (err) {
        complain("%s: recovery: %s\n", path, strerror(err));
        return EXIT_REFUSED;
    }
    printf("recovered %s (this mode writes to the file): %zu entries of "
           "dead or exited processes cleared, %zu thread records resolved, "
           "%zu bytes given back\n",
           path, r.entries, r.records, r.bytes);
    return EXIT_OK;
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
    printf("bytes cached        %zu (%.1f%%, free chunks in thread caches)\n",
           s->bytes_cached, percent(s->bytes_cached, s->capacity));
    printf("largest free        %zu bytes\n", s->largest_free);
    printf("fragmentation       %.4f (1 - free bytes in whole free blocks / "
           "free bytes)\n",
           f->fragmentation);
    printf("attached processes  %zu\n", s->attached_processes);
    printf("damage refused      %zu\n", s->damage_refused);
    size_t recoverable = 0;
    (void)shm_arena_processes(arena, print_process, &recoverable);
    printf("to recover          %zu (entries of dead or exited processes)\n",
           recoverable);
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

static char map_char(uint64_t used, uint64_t size)
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

/* Size of block b below the capacity (the last one may be cut short). */
static size_t block_size(const struct shm_stats *s, size_t b)
{
    size_t start = b * s->max_chunk;
    return s->capacity - start < s->max_chunk ? s->capacity - start
                                              : s->max_chunk;
}

/* The blocks' usage, read from the arena USAGE_BATCH blocks at a time as
 * a walk from the first block to the last asks for it. */
struct usage_cursor {
    shm_arena *arena;
    size_t blocks; /* in all */
    size_t first;  /* the block of used[0] */
    size_t count;  /* entries of used[] read */
    uint32_t used[USAGE_BATCH];
};

/* Bytes in use of block b (b >= every block asked for before); false
 * after saying why it could not be read. */
static bool usage_of(struct usage_cursor *c, size_t b, uint32_t *used)
{
    if (b < c->first || b >= c->first + c->count) {
        size_t count = c->blocks - b;
        if (count > USAGE_BATCH)
            count = USAGE_BATCH;
        int err = shm_arena_block_usage(c->arena, b, count, c->used);
        if (err) {
            complain("block usage: %s\n", strerror(err));
            return false;
        }
        c->first = b;
        c->count = count;
    }
    *used = c->used[b - c->first];
    return true;
}

/* The map: one character per `per_char` blocks, rows of `width`. */
struct map {
    size_t per_char; /* blocks per character */
    size_t chars;
    unsigned width;
    char *cells; /* chars of them, no terminator */
};

/* Draws the map of at most width x height characters; false after saying
 * why it could not. */
static bool draw_map(shm_arena *arena, const struct figures *f, unsigned width,
                     unsigned height, struct map *m)
{
    const struct shm_stats *s = &f->stats;
    size_t cells = (size_t)width * height;
    m->width = width;
    m->per_char = f->blocks > cells ? (f->blocks + cells - 1) / cells : 1;
    m->chars = (f->blocks + m->per_char - 1) / m->per_char;
    m->cells = malloc(m->chars ? m->chars : 1);
    struct usage_cursor *cursor = calloc(1, sizeof *cursor);
    if (!m->cells || !cursor) {
        complain("%s\n", strerror(ENOMEM));
        free(cursor);
        return false;
    }
    cursor->arena = arena;
    cursor->blocks = f->blocks;
    for (size_t c = 0; c < m->chars; c++) {
        uint64_t used = 0, size = 0;
        size_t end = (c + 1) * m->per_char;
        for (size_t b = c * m->per_char; b < end && b < f->blocks; b++) {
            uint32_t u;
            if (!usage_of(cursor, b, &u)) {
                free(cursor);
                return false;
            }
            used += u;
            size += block_size(s, b);
        }
        m->cells[c] = map_char(used, size);
    }
    free(cursor);
    return true;
}

static void print_legend(const struct figures *f, const struct map *m)
{
    char a[32];
    if (m->per_char == 1) {
        printf("\noccupancy, one character per block of %s:\n",
               human(f->stats.max_chunk, a));
    } else {
        char b[32];
        printf("\noccupancy, one character per %zu blocks of %s (%s):\n",
               m->per_char, human(f->stats.max_chunk, a),
               human(m->per_char * f->stats.max_chunk, b));
    }
    printf("  ' ' free  '.' < 25%%  ':' < 50%%  '*' < 75%%  '#' >= 75%% in "
           "use\n");
}

static void print_map(const struct figures *f, const struct map *m)
{
    print_legend(f, m);
    printf("%10s\n", "block");
    for (size_t row = 0; row * m->width < m->chars; row++) {
        size_t first = row * m->width;
        size_t n = m->chars - first < m->width ? m->chars - first : m->width;
        printf("%10zu |%.*s%*s|\n", first * m->per_char, (int)n,
               m->cells + first, (int)(m->width - n), "");
    }
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
                      const struct figures *f, const struct map *m)
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
    printf("  \"bytes_cached\": %zu,\n", s->bytes_cached);
    printf("  \"largest_free\": %zu,\n", s->largest_free);
    printf("  \"fragmentation\": %.6f,\n", f->fragmentation);
    printf("  \"attached_processes\": %zu,\n", s->attached_processes);
    size_t seen = 0, recoverable = 0;
    printf("  \"processes\": [");
    (void)shm_arena_processes(arena, print_process_json, &seen);
    printf("%s],\n", seen ? "\n  " : "");
    (void)shm_arena_processes(arena, count_recoverable, &recoverable);
    printf("  \"recoverable_entries\": %zu,\n", recoverable);
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
    if (m) {
        printf(",\n  \"map\": {\"width\": %u, \"blocks_per_char\": %zu, "
               "\"rows\": [",
               m->width, m->per_char);
        for (size_t first_char = 0; first_char < m->chars;
             first_char += m->width) {
            size_t n = m->chars - first_char < m->width ? m->chars - first_char
                                                        : m->width;
            printf("%s\n    \"%.*s\"", first_char ? "," : "", (int)n,
                   m->cells + first_char);
        }
        printf("\n  ]},\n  \"block_used_bytes\": [");
        struct usage_cursor *cursor = calloc(1, sizeof *cursor);
        if (!cursor) {
            complain("%s\n", strerror(ENOMEM));
            return EXIT_REFUSED;
        }
        cursor->arena = arena;
        cursor->blocks = f->blocks;
        for (size_t b = 0; b < f->blocks; b++) {
            uint32_t used;
            if (!usage_of(cursor, b, &used)) {
                free(cursor);
                return EXIT_REFUSED;
            }
            printf("%s%s%u", b > 0 ? "," : "", b % 16 ? " " : "\n    ", used);
        }
        free(cursor);
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
    if (opts.recover)
        return recover_file(opts.path);

    shm_arena *arena = open_arena(opts.path);
    if (!arena)
        return EXIT_REFUSED;
    struct figures f;
    compute_figures(arena, opts.check, &f);
    struct map m = {0};
    status = EXIT_OK;
    if (opts.map && !draw_map(arena, &f, opts.width, opts.height, &m))
        status = EXIT_REFUSED;
    else if (opts.json)
        status = print_json(arena, opts.path, &f, opts.map ? &m : NULL);
    else
        print_text(arena, opts.path, &f);
    if (status == EXIT_OK && opts.map && !opts.json)
        print_map(&f, &m);
    free(m.cells);
    shm_arena_close(arena);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        complain("writing the output: %s\n", strerror(errno));
        return EXIT_REFUSED;
    }
    if (status == EXIT_OK && f.inconsistent > 0)
        status = EXIT_INCONSISTENT;
    return status;
}
