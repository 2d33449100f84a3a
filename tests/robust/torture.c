/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * SIGKILL torture: worker processes allocate, fill and free at random while
 * a controller SIGKILLs them at random moments and starts new ones.
 *
 *   torture [--seconds S] [--kills N] [--min-kills M] [--workers W]
 *           [--capacity BYTES] [--seed X] [--dir D] [--keep]
 *
 * Runs until S seconds have passed or N kills were made (0: no limit), so
 * `torture --seconds 3600 --kills 0` runs for an hour. Chunks lost with
 * killed workers are never reclaimed, so the run goes through a series of
 * arenas (epochs): each ends, with all the checks below, once what was in
 * flight in killed workers could reach a quarter of its capacity. Exits 0 when
 * every check held, 1 on a failure (with the seed to rerun it), 77 when the
 * build's size range is too small for the ledger.
 *
 * The ledger lives inside the arena, in chunks the controller allocates at
 * the start: a record per worker slot (the operation in flight) and one
 * per chunk a worker may own. Each record is two words:
 *
 *   slot header   a: op (2 bits) | entry (16 bits) | requested size     b: ops
 *   entry         a: offset | state (2 low bits)   b: stamp << 8 | log2 size
 *
 *   malloc: header = MALLOC|i|size; malloc; entry = off|FILLING; fill;
 *           entry = off|LIVE; header = 0
 *   free:   verify; header = FREE|i; entry = off|FREEING; free;
 *           entry = 0; header = 0
 *
 * After a kill the controller reads the slot: a FILLING entry is the dead
 * worker's own chunk (refilled and kept); a FREEING entry, or a MALLOC in
 * the header whose entry is still empty, is a chunk in flight whose fate
 * is unknown: forgotten, and counted in the loss bound. The next worker on
 * the slot inherits every LIVE entry and verifies it before freeing it.
 *
 * At the end (workers stopped through a flag, which they must obey within
 * a deadline: nobody hung), every ledgered chunk must hold its stamp, be
 * live with its recorded size, overlap no other, shm_arena_check must be 0,
 * and the bytes neither ledgered nor free (lost) must be at most the chunks
 * in flight in killed workers plus, for each kill inside an operation, one
 * word's span (a kill in the few instructions between a step of
 * activating or retiring a lower bitmap word and its record may leak it;
 * no span exceeds 2^MAX).
 *
 * After each kill the controller runs shm_arena_recover, which gives back
 * what the killed worker's pending operations and thread caches held
 * (workers' own opens and failed allocations recover too); the figures
 * show the bytes the controller's recoveries gave back and the bytes still
 * lost after them. At the end of each epoch shm_arena_collect, with a
 * tracer that marks every ledgered chunk, frees the rest of what the
 * killed workers left: afterwards every byte must be ledgered or free,
 * and after the ledgered chunks are freed the arena must be empty.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm_alloc.h"

#include "common/usable_model.h"

enum { OP_NONE = 0, OP_MALLOC = 1, OP_FREE = 2 };
enum { EMPTY = 0, FILLING = 1, LIVE = 2, FREEING = 3 };
#define MAX_WORKERS 64
#define ENTRIES 48

struct record {
    _Atomic(uint64_t) a;
    _Atomic(uint64_t) b;
};

/* Set up by the controller before any fork, so workers inherit them. */
static struct {
    double seconds;
    long max_kills, min_kills;
    int workers;
    size_t capacity;
    uint64_t seed;
    const char *dir;
    bool keep;
    char path[1024];
    size_t min_chunk, max_chunk;
    size_t per_chunk; /* records per ledger chunk */
    int ledger_chunks;
    shm_offt ledger[4096];
} cfg;

static uint64_t rand_next(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9E3779B97F4A7C15u;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Du;
}

static struct record *record_at(uint8_t *base, size_t index)
{
    shm_offt chunk = cfg.ledger[index / cfg.per_chunk];
    return (struct record *)(base + chunk) + index % cfg.per_chunk;
}

static struct record *control(uint8_t *base)
{
    return record_at(base, 0); /* a: stop flag */
}

static struct record *slot_header(uint8_t *base, int slot)
{
    return record_at(base, 1 + (size_t)slot * (1 + ENTRIES));
}

static struct record *slot_entry(uint8_t *base, int slot, int i)
{
    return record_at(base, 1 + (size_t)slot * (1 + ENTRIES) + 1 + (size_t)i);
}

static uint64_t pattern_word(uint64_t stamp, size_t i)
{
    uint64_t x = stamp ^ (i * 0x9E3779B97F4A7C15u);
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9u;
    return x ^ (x >> 29);
}

static void fill(uint8_t *p, size_t size, uint64_t stamp)
{
    for (size_t i = 0; i < size / 8; i++) {
        uint64_t w = pattern_word(stamp, i);
        memcpy(p + 8 * i, &w, 8);
    }
}

/* Index of the first word that differs, or SIZE_MAX when intact. */
static size_t verify(const uint8_t *p, size_t size, uint64_t stamp)
{
    for (size_t i = 0; i < size / 8; i++) {
        uint64_t w;
        memcpy(&w, p + 8 * i, 8);
        if (w != pattern_word(stamp, i))
            return i;
    }
    return SIZE_MAX;
}

static unsigned log2_of(size_t pow2)
{
    unsigned k = 0;
    while (((size_t)1 << k) < pow2)
        k++;
    return k;
}

/* A ledger entry's second word: the stamp (40 bits) and the chunk's
 * usable size in units of the smallest chunk (24 bits; a trimmed chunk's
 * is not a power of two). */
static uint64_t entry_b(uint64_t stamp, size_t usable)
{
    return stamp << 24 | (uint64_t)(usable / cfg.min_chunk);
}

static size_t entry_size(uint64_t b)
{
    return (size_t)(b & 0xffffff) * cfg.min_chunk;
}

static uint64_t entry_stamp(uint64_t b)
{
    return b >> 24;
}

/* The most a request can take: its class's node (a bound on what a
 * trimmed chunk holds). */
static size_t class_size(size_t request)
{
    size_t s = cfg.min_chunk;
    while (s < request)
        s <<= 1;
    return s;
}

/* ------------------------------------------------------------------ */
/* Worker                                                              */
/* ------------------------------------------------------------------ */

static _Noreturn void worker_fail(int slot, const char *what, shm_offt off,
                                  uint64_t detail)
{
    fprintf(stderr,
            "torture: worker %d (pid %d): %s at offset %#" PRIx64 " (%#" PRIx64
            "), seed %#" PRIx64 "\n",
            slot, (int)getpid(), what, off, detail, cfg.seed);
    _exit(3);
}

static _Noreturn void worker(int slot, uint64_t seed)
{
    struct shm_arena_options opts = {.flags = SHM_ARENA_NO_CREATE};
    shm_arena *a = shm_arena_open(cfg.path, &opts);
    if (a == NULL) {
        fprintf(stderr, "torture: worker %d cannot attach: %s\n", slot,
                strerror(errno));
        _exit(4);
    }
    uint8_t *base = shm_arena_base(a);
    struct record *head = slot_header(base, slot);
    uint64_t rng = seed;
    unsigned max_log2 = log2_of(cfg.max_chunk);
    /* relaxed: the controller only reads it after waitpid or the stop */
    while (atomic_load_explicit(&control(base)->a, memory_order_relaxed) == 0) {
        uint64_t r = rand_next(&rng);
        int i = (int)(r % ENTRIES);
        struct record *e = slot_entry(base, slot, i);
        uint64_t ea = atomic_load_explicit(&e->a, memory_order_relaxed);
        if ((ea & 3) != EMPTY && (ea & 3) != LIVE)
            worker_fail(slot, "entry left half-done", ea & ~3ull, ea);
        if ((ea & 3) == EMPTY) {
            size_t size = (size_t)1 << ((r >> 8) % (max_log2 + 1));
            size = 1 + (size_t)(rand_next(&rng) % size);
            bool zeroed = (r >> 16) % 4 == 0;
            /* release: each ledger store below is ordered after the one
             * before it, for the controller reading after a kill */
            atomic_store_explicit(
                &head->a, OP_MALLOC | (uint64_t)i << 2 | (uint64_t)size << 18,
                memory_order_release);
            shm_offt off = zeroed ? shm_arena_calloc(a, 1, size)
                                  : shm_arena_malloc(a, size);
            if (off == SHM_NULL) {
                if (errno != ENOMEM)
                    worker_fail(slot, "malloc failed, not ENOMEM", 0,
                                (uint64_t)errno);
                atomic_store_explicit(&head->a, OP_NONE, memory_order_release);
                continue;
            }
            size_t usable = shm_arena_usable_size(a, off);
            if (!usable_fits(size, usable))
                worker_fail(slot, "usable size of a new chunk", off, usable);
            if (zeroed) /* the requested bytes; the rest is unspecified */
                for (size_t k = 0; k < size; k++)
                    if (base[off + k] != 0)
                        worker_fail(slot, "calloc chunk not zero", off, k);
            uint64_t stamp = rand_next(&rng) >> 24;
            atomic_store_explicit(&e->b, entry_b(stamp, usable),
                                  memory_order_relaxed);
            atomic_store_explicit(&e->a, off | FILLING, memory_order_release);
            fill(base + off, usable, stamp);
            atomic_store_explicit(&e->a, off | LIVE, memory_order_release);
            atomic_store_explicit(&head->a, OP_NONE, memory_order_release);
        } else {
            shm_offt off = ea & ~3ull;
            uint64_t eb = atomic_load_explicit(&e->b, memory_order_relaxed);
            size_t usable = entry_size(eb);
            size_t bad = verify(base + off, usable, entry_stamp(eb));
            if (bad != SIZE_MAX)
                worker_fail(slot, "pattern overwritten", off, bad);
            if (shm_arena_usable_size(a, off) != usable)
                worker_fail(slot, "live chunk lost its size", off, usable);
            if ((r >> 16) % 8 == 0) /* sometimes only look */
                continue;
            atomic_store_explicit(&head->a, OP_FREE | (uint64_t)i << 2,
                                  memory_order_release);
            atomic_store_explicit(&e->a, off | FREEING, memory_order_release);
            errno = 0;
            shm_arena_free(a, off);
            if (errno == EINVAL)
                worker_fail(slot, "free of an owned chunk refused", off, 0);
            atomic_store_explicit(&e->a, EMPTY, memory_order_release);
            atomic_store_explicit(&head->a, OP_NONE, memory_order_release);
        }
        /* relaxed: single writer, read after the worker is gone */
        atomic_store_explicit(
            &head->b, atomic_load_explicit(&head->b, memory_order_relaxed) + 1,
            memory_order_relaxed);
    }
    shm_arena_close(a);
    _exit(0);
}

/* ------------------------------------------------------------------ */
/* Controller                                                          */
/* ------------------------------------------------------------------ */

/* Figures of one epoch (one arena file), and of the whole run. */
struct figures {
    long kills, kills_in_op, spawns, epochs;
    uint64_t ops;
    uint64_t inflight_bytes; /* chunks in flight in killed workers */
    uint64_t span_bound;     /* one 2^MAX span per kill inside an op */
    int64_t lost;            /* after recovery */
    uint64_t recovered;      /* bytes the controller's recoveries gave back */
    uint64_t collected;      /* bytes the collector freed after them */
};
static struct figures stats;

static pid_t pids[MAX_WORKERS];

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void spawn(int slot, uint64_t *rng)
{
    uint64_t seed = rand_next(rng);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("torture: fork");
        exit(1);
    }
    if (pid == 0)
        worker(slot, seed);
    pids[slot] = pid;
    stats.spawns++;
}

/* After slot's worker died: adopt what it surely owned, forget (and
 * count) what was in flight. */
static void recover(uint8_t *base, int slot)
{
    struct record *head = slot_header(base, slot);
    uint64_t h = atomic_load_explicit(&head->a, memory_order_acquire);
    unsigned op = (unsigned)(h & 3);
    int idx = (int)((h >> 2) & 0xffff);
    for (int i = 0; i < ENTRIES; i++) {
        struct record *e = slot_entry(base, slot, i);
        uint64_t ea = atomic_load_explicit(&e->a, memory_order_acquire);
        uint64_t eb = atomic_load_explicit(&e->b, memory_order_relaxed);
        shm_offt off = ea & ~3ull;
        size_t usable = entry_size(eb);
        if ((ea & 3) == FILLING) {
            fill(base + off, usable, entry_stamp(eb));
            atomic_store_explicit(&e->a, off | LIVE, memory_order_relaxed);
        } else if ((ea & 3) == FREEING) {
            stats.inflight_bytes += usable;
            atomic_store_explicit(&e->a, EMPTY, memory_order_relaxed);
        }
    }
    if (op == OP_MALLOC && idx < ENTRIES) {
        uint64_t ea = atomic_load_explicit(&slot_entry(base, slot, idx)->a,
                                           memory_order_relaxed);
        if ((ea & 3) == EMPTY)
            stats.inflight_bytes += class_size((size_t)(h >> 18));
    }
    if (op != OP_NONE) {
        stats.kills_in_op++;
        stats.span_bound += cfg.max_chunk;
    }
    atomic_store_explicit(&head->a, OP_NONE, memory_order_relaxed);
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "torture: FAILED: the run hung (overall "
                              "deadline passed)\n";
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0)
        _exit(2);
    _exit(2);
}

struct owned {
    shm_offt off;
    size_t size;
};

/* The collector's tracer: the ledger is the program's one structure, so
 * every chunk it names is reachable (and each is marked once). */
struct ledger_view {
    const struct owned *owned;
    size_t n;
    size_t refused;
};

static int trace_ledger(shm_collector *col, void *context)
{
    struct ledger_view *v = context;
    for (size_t i = 0; i < v->n; i++)
        if (shm_collect_mark(col, v->owned[i].off) != 0)
            v->refused++;
    return 0;
}

static int compare_owned(const void *x, const void *y)
{
    const struct owned *a = x, *b = y;
    return a->off < b->off ? -1 : a->off > b->off;
}

static void usage(void)
{
    fprintf(stderr, "usage: torture [--seconds S] [--kills N] [--min-kills M]"
                    " [--workers W] [--capacity BYTES] [--seed X] [--dir D]"
                    " [--keep]\n");
    exit(1);
}

static void parse(int argc, char **argv)
{
    cfg.seconds = 10;
    cfg.max_kills = 0;
    cfg.min_kills = 0;
    cfg.workers = 6;
    cfg.capacity = 0;
    cfg.seed = 0;
    cfg.dir = getenv("SHM_TEST_DIR");
    if (cfg.dir == NULL || cfg.dir[0] == '\0')
        cfg.dir = ".";
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--keep") == 0) {
            cfg.keep = true;
            continue;
        }
        if (val == NULL)
            usage();
        i++;
        if (strcmp(arg, "--seconds") == 0)
            cfg.seconds = strtod(val, NULL);
        else if (strcmp(arg, "--kills") == 0)
            cfg.max_kills = strtol(val, NULL, 0);
        else if (strcmp(arg, "--min-kills") == 0)
            cfg.min_kills = strtol(val, NULL, 0);
        else if (strcmp(arg, "--workers") == 0)
            cfg.workers = (int)strtol(val, NULL, 0);
        else if (strcmp(arg, "--capacity") == 0)
            cfg.capacity = (size_t)strtoull(val, NULL, 0);
        else if (strcmp(arg, "--seed") == 0)
            cfg.seed = strtoull(val, NULL, 0);
        else if (strcmp(arg, "--dir") == 0)
            cfg.dir = val;
        else
            usage();
    }
    if (cfg.workers < 1 || cfg.workers > MAX_WORKERS || cfg.seconds <= 0)
        usage();
}

/*
 * One epoch: a fresh arena, workers killed and restarted until the time or
 * kill budget is spent or the chunks lost in flight could reach a quarter
 * of the capacity (leaked chunks are never reclaimed, so a long run works
 * through a series of arenas), then every check. Returns false on a
 * failure.
 */
static bool epoch(double end_time, long kills_left, uint64_t *rng)
{
    memset(&stats, 0, sizeof stats);
    unlink(cfg.path);
    struct shm_arena_options opts = {.capacity = cfg.capacity,
                                     .flags = SHM_ARENA_EXCLUSIVE};
    shm_arena *a = shm_arena_open(cfg.path, &opts);
    if (a == NULL) {
        fprintf(stderr, "torture: cannot create %s: %s\n", cfg.path,
                strerror(errno));
        return false;
    }
    size_t capacity = shm_arena_capacity(a);
    uint8_t *base = shm_arena_base(a);
    for (int i = 0; i < cfg.ledger_chunks; i++) {
        cfg.ledger[i] = shm_arena_calloc(a, 1, cfg.max_chunk);
        if (cfg.ledger[i] == SHM_NULL) {
            fprintf(stderr, "torture: no room for the ledger\n");
            return false;
        }
    }
    for (int s = 0; s < cfg.workers; s++)
        spawn(s, rng);
    bool failed = false;
    while (now_seconds() < end_time &&
           (kills_left == 0 || stats.kills < kills_left) &&
           stats.inflight_bytes < capacity / 4) {
        uint64_t r = rand_next(rng);
        /* a quarter of the kills come almost at once: during fork and
         * attach; the rest at any point of the work */
        long delay =
            r % 4 == 0 ? (long)((r >> 8) % 200) : (long)((r >> 8) % 3000);
        sleep_us(delay);
        int slot = (int)((r >> 40) % (uint64_t)cfg.workers);
        kill(pids[slot], SIGKILL);
        int status;
        if (waitpid(pids[slot], &status, 0) != pids[slot]) {
            perror("torture: waitpid");
            return false;
        }
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
            fprintf(stderr, "torture: worker %d ended by itself (status %#x)\n",
                    slot, (unsigned)status);
            failed = true;
            break;
        }
        stats.kills++;
        recover(base, slot);
        struct shm_recovery rec;
        if (shm_arena_recover(a, &rec) != 0) {
            perror("torture: shm_arena_recover");
            failed = true;
            break;
        }
        stats.recovered += rec.bytes;
        spawn(slot, rng);
    }

    /* Stop: every worker must see the flag and leave on its own. */
    atomic_store_explicit(&control(base)->a, 1, memory_order_relaxed);
    double deadline = now_seconds() + 30;
    for (int s = 0; s < cfg.workers; s++) {
        int status = 0;
        pid_t got = 0;
        while ((got = waitpid(pids[s], &status, WNOHANG)) == 0 &&
               now_seconds() < deadline)
            sleep_us(1000);
        if (got == 0) {
            fprintf(stderr, "torture: worker %d hung\n", s);
            kill(pids[s], SIGKILL);
            waitpid(pids[s], &status, 0);
            failed = true;
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "torture: worker %d failed (status %#x)\n", s,
                    (unsigned)status);
            failed = true;
        }
        recover(base, s); /* a worker that failed may have left an op */
    }
    struct shm_recovery rec;
    if (shm_arena_recover(a, &rec) == 0)
        stats.recovered += rec.bytes;

    /* Every ledgered chunk: live, its size, its stamp, no overlap. */
    size_t cap_owned = (size_t)cfg.workers * ENTRIES + 4096;
    struct owned *owned = malloc(cap_owned * sizeof *owned);
    size_t n = 0;
    uint64_t live_bytes = 0;
    for (int i = 0; i < cfg.ledger_chunks; i++) {
        owned[n++] = (struct owned){cfg.ledger[i], cfg.max_chunk};
        live_bytes += cfg.max_chunk;
    }
    for (int s = 0; s < cfg.workers; s++) {
        stats.ops += atomic_load_explicit(&slot_header(base, s)->b,
                                          memory_order_relaxed);
        for (int i = 0; i < ENTRIES; i++) {
            struct record *e = slot_entry(base, s, i);
            uint64_t ea = atomic_load_explicit(&e->a, memory_order_relaxed);
            uint64_t eb = atomic_load_explicit(&e->b, memory_order_relaxed);
            if ((ea & 3) == EMPTY)
                continue;
            shm_offt off = ea & ~3ull;
            size_t size = entry_size(eb);
            if ((ea & 3) != LIVE) {
                fprintf(stderr, "torture: slot %d entry %d in state %u\n", s, i,
                        (unsigned)(ea & 3));
                failed = true;
                continue;
            }
            if (shm_arena_usable_size(a, off) != size) {
                fprintf(stderr,
                        "torture: chunk %#" PRIx64 " is not live with "
                        "size %zu\n",
                        off, size);
                failed = true;
            }
            size_t bad = verify(base + off, size, entry_stamp(eb));
            if (bad != SIZE_MAX) {
                fprintf(stderr,
                        "torture: chunk %#" PRIx64 " (%zu bytes) overwritten "
                        "at word %zu\n",
                        off, size, bad);
                failed = true;
            }
            owned[n++] = (struct owned){off, size};
            live_bytes += size;
        }
    }
    qsort(owned, n, sizeof *owned, compare_owned);
    for (size_t i = 1; i < n; i++)
        if (owned[i - 1].off + owned[i - 1].size > owned[i].off) {
            fprintf(stderr,
                    "torture: chunks %#" PRIx64 "+%zu and %#" PRIx64
                    " overlap\n",
                    owned[i - 1].off, owned[i - 1].size, owned[i].off);
            failed = true;
        }
    int check = shm_arena_check(a);
    if (check != 0) {
        fprintf(stderr, "torture: shm_arena_check = %d\n", check);
        failed = true;
    }
    uint64_t in_use = capacity - shm_arena_available(a);
    stats.lost = (int64_t)in_use - (int64_t)live_bytes;
    uint64_t bound = stats.inflight_bytes + stats.span_bound;

    /* The collector over the ledger frees what was lost, and only that:
     * afterwards every byte is ledgered or free. */
    struct ledger_view view = {owned, n, 0};
    struct shm_collection col;
    int collected = shm_arena_collect(a, trace_ledger, &view, &col);
    uint64_t in_use_after = capacity - shm_arena_available(a);
    if (collected != 0 || view.refused != 0 || in_use_after != live_bytes) {
        fprintf(stderr,
                "torture: collection: %d, %zu marks refused, %" PRIu64
                " bytes in use for %" PRIu64 " ledgered\n",
                collected, view.refused, in_use_after, live_bytes);
        failed = true;
    }
    uint64_t collected_bytes = collected == 0 ? col.freed_bytes : 0;
    stats.collected += collected_bytes;

    /* Hand everything back: what remains in use is exactly the loss. */
    for (size_t i = 0; i < n; i++)
        shm_arena_free(a, owned[i].off);
    size_t left_in_use = capacity - shm_arena_available(a);
    int final_check = shm_arena_check(a);

    printf("torture: epoch: %ld kills (%ld inside malloc/free), %" PRIu64
           " operations, %zu chunks live at the end, bytes lost %" PRId64
           " after recovery (%" PRIu64 " given back by it), in flight in "
           "killed workers %" PRIu64 ", bound %" PRIu64
           "; the collector freed %" PRIu64 ", lost after it %" PRIu64 "\n",
           stats.kills, stats.kills_in_op, stats.ops,
           n - (size_t)cfg.ledger_chunks, stats.lost, stats.recovered,
           stats.inflight_bytes, bound, collected_bytes,
           in_use_after - live_bytes);
    if (stats.lost < 0) {
        fprintf(stderr, "torture: available counts ledgered bytes as free\n");
        failed = true;
    } else if ((uint64_t)stats.lost > bound) {
        fprintf(stderr, "torture: lost more than was in flight\n");
        failed = true;
    }
    if (left_in_use != 0) {
        fprintf(stderr,
                "torture: after the collection and freeing every ledgered "
                "chunk %zu bytes stay in use\n",
                left_in_use);
        failed = true;
    }
    if (final_check != 0) {
        fprintf(stderr, "torture: shm_arena_check = %d after freeing all\n",
                final_check);
        failed = true;
    }
    if (stats.ops == 0) {
        fprintf(stderr, "torture: no operation completed\n");
        failed = true;
    }
    free(owned);
    shm_arena_close(a);
    if (!cfg.keep)
        unlink(cfg.path);
    return !failed;
}

int main(int argc, char **argv)
{
    parse(argc, argv);
    if (cfg.seed == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        cfg.seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
                   (uint64_t)getpid();
    }
    cfg.min_chunk = get_shm_min_allocatable_size();
    cfg.max_chunk = get_shm_max_allocatable_size();
    cfg.per_chunk = cfg.max_chunk / sizeof(struct record);
    if (cfg.per_chunk < 1) {
        printf("torture: skipped: chunks of %zu bytes cannot hold the "
               "ledger\n",
               cfg.max_chunk);
        return 77;
    }
    size_t records = 1 + (size_t)cfg.workers * (1 + ENTRIES);
    cfg.ledger_chunks = (int)((records + cfg.per_chunk - 1) / cfg.per_chunk);
    if (cfg.ledger_chunks > 4096) {
        printf("torture: skipped: the ledger needs %d chunks\n",
               cfg.ledger_chunks);
        return 77;
    }
    if (cfg.capacity == 0) {
        /* about half of what the workers could own: ENOMEM happens */
        cfg.capacity = (size_t)cfg.workers * ENTRIES * cfg.max_chunk / 4 +
                       (size_t)cfg.ledger_chunks * cfg.max_chunk;
        if (cfg.capacity < ((size_t)1 << 20))
            cfg.capacity = (size_t)1 << 20;
    }
    snprintf(cfg.path, sizeof cfg.path, "%s/torture.shm", cfg.dir);
    printf("torture: seed %#" PRIx64 ", %d workers, capacity %zu, %g s, "
           "kills %ld (min %ld), file %s\n",
           cfg.seed, cfg.workers, cfg.capacity, cfg.seconds, cfg.max_kills,
           cfg.min_kills, cfg.path);
    fflush(stdout);

    signal(SIGALRM, on_alarm);
    alarm((unsigned)cfg.seconds + 120);
    uint64_t rng = cfg.seed;
    struct figures total = {0};
    double start = now_seconds(), end_time = start + cfg.seconds;
    bool ok = true;
    while (ok && now_seconds() < end_time &&
           (cfg.max_kills == 0 || total.kills < cfg.max_kills)) {
        long kills_left = cfg.max_kills ? cfg.max_kills - total.kills : 0;
        ok = epoch(end_time, kills_left, &rng);
        total.epochs++;
        total.kills += stats.kills;
        total.kills_in_op += stats.kills_in_op;
        total.spawns += stats.spawns;
        total.ops += stats.ops;
        total.inflight_bytes += stats.inflight_bytes;
        total.lost += stats.lost;
        total.recovered += stats.recovered;
        total.collected += stats.collected;
        fflush(stdout);
    }
    alarm(0);

    printf("torture: %.1f s, %ld epochs, %ld kills (%ld inside malloc/free), "
           "%ld workers started, %" PRIu64 " operations\n",
           now_seconds() - start, total.epochs, total.kills, total.kills_in_op,
           total.spawns, total.ops);
    printf("torture: bytes lost %" PRId64 " after recovery (%.1f per kill), "
           "at least %" PRIu64 " before it (%" PRIu64 " given back by the "
           "controller's recoveries), in flight in killed workers %" PRIu64
           "; %" PRIu64 " freed by the collector, 0 lost after it\n",
           total.lost,
           total.kills ? (double)total.lost / (double)total.kills : 0.0,
           (uint64_t)total.lost + total.recovered, total.recovered,
           total.inflight_bytes, total.collected);
    if (ok && total.kills < cfg.min_kills) {
        fprintf(stderr, "torture: only %ld kills, %ld required\n", total.kills,
                cfg.min_kills);
        ok = false;
    }
    if (!ok) {
        fprintf(stderr, "torture: FAILED (rerun with --seed %#" PRIx64 ")\n",
                cfg.seed);
        return 1;
    }
    printf("torture: passed\n");
    return 0;
}
