/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Stress: STRESS_PROCESSES forked processes x STRESS_THREADS threads on one
 * arena file, started together, each making its share of at least 10^6
 * calls to shm_malloc, shm_calloc and shm_free in all.
 *
 * - Sizes cover every class from the smallest to the largest; classes
 *   above 4 KiB are drawn less often, halving per class, so that writing
 *   and checking every byte stays cheap for wide size ranges.
 * - Every chunk is filled, all of its usable bytes, with a pattern stamped
 *   with its owner (process, thread, size class, serial number); the
 *   pattern is checked before the chunk is freed, so a chunk handed out
 *   twice, or a free that released too much, shows as a foreign stamp.
 * - Some chunks change hands: a ring of slots kept in the arena itself
 *   carries offsets from the thread that allocated them to any thread of
 *   any process, which checks and frees them.
 * - At the end the ring is drained, shm_check() must be 0 and
 *   shm_available() its value before the run.
 *
 * Randomness is seeded (SHM_TEST_SEED repeats a run) and the seed is in
 * every failure message. SHM_STRESS_SCALE multiplies the number of calls
 * (e.g. 0.05 for sanitizer builds).
 *
 * Built twice: with processes (fork) and threads only (for TSan).
 */
#define _GNU_SOURCE /* setenv, mmap flags, pthread barriers */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm_alloc.h"
#include "common/usable_model.h"

#ifndef STRESS_PROCESSES
#define STRESS_PROCESSES 8
#endif
#ifndef STRESS_THREADS
#define STRESS_THREADS 4
#endif
#define TOTAL_THREADS (STRESS_PROCESSES * STRESS_THREADS)

/* ThreadSanitizer sees the synchronisation inside one process only: a
 * chunk freed in one process and allocated in another looks like a race
 * to it. Its builds run the threads-only variant. */
#if defined(__SANITIZE_THREAD__)
#define STRESS_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STRESS_UNDER_TSAN 1
#endif
#endif
#ifndef STRESS_UNDER_TSAN
#define STRESS_UNDER_TSAN 0
#endif
#define BASE_CALLS 1000000.0
#define HELD_MAX 32    /* chunks one thread holds at most */
#define RING_SLOTS 256 /* offsets in flight between threads */
#define RING_PROBES 4  /* slots tried per hand-over */
#define CHEAP_CLASS 12 /* classes above 2^12 are drawn less often */

/* Shared by every process (an anonymous shared mapping): the start
 * barrier, the failure flag and the totals. Not part of the arena. */
struct control {
    _Atomic uint64_t ready;
    _Atomic uint64_t failed;
    _Atomic uint64_t calls;
    _Atomic uint64_t allocated;
    _Atomic uint64_t freed;
    _Atomic uint64_t enomem;
    _Atomic uint64_t handed;
    _Atomic uint64_t taken;
    _Atomic uint64_t taken_cross_process;
};

static struct control *ctl;
static uint64_t seed;
static uint64_t calls_per_thread;
static size_t budget_per_thread; /* bytes one thread holds at most */

/* The ring lives in the arena, in chunks of the largest size: their
 * offsets are fixed before the fork, so every process knows them. */
static shm_offt *ring_chunks;
static size_t ring_chunk_count, slots_per_chunk;

static _Atomic uint64_t *ring_slot(size_t i)
{
    uint8_t *chunk = SHM_OFFT_TO_ADDR(ring_chunks[i / slots_per_chunk]);
    return (_Atomic uint64_t *)chunk + i % slots_per_chunk;
}

/* ---------------------------------------------------------------------
 * Randomness and stamps
 * ------------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t rnd(uint64_t *state, uint64_t bound)
{
    return splitmix(state) % bound;
}

/* tag: process (8 bits) | thread (8) | usable size in units of 2^MIN
 * (24; not a power of two when trimmed) | serial (24) */
static unsigned min_class, max_class;

static uint64_t make_tag(unsigned proc, unsigned thread, size_t size,
                         uint64_t serial)
{
    return (uint64_t)proc << 56 | (uint64_t)thread << 48 |
           (uint64_t)(size >> min_class) << 24 | (serial & ((1ULL << 24) - 1));
}

static unsigned tag_proc(uint64_t tag)
{
    return (unsigned)(tag >> 56);
}

static unsigned tag_thread(uint64_t tag)
{
    return (unsigned)(tag >> 48) & 0xff;
}

static size_t tag_size(uint64_t tag)
{
    return (size_t)((tag >> 24) & 0xffffff) << min_class;
}

static uint64_t pattern(uint64_t tag, size_t word)
{
    return tag ^ ((uint64_t)word * 0x9E3779B97F4A7C15ULL);
}

static void stamp(shm_offt off, size_t size, uint64_t tag)
{
    uint64_t *w = SHM_OFFT_TO_ADDR(off);
    for (size_t i = 0; i < size / 8; i++)
        w[i] = pattern(tag, i);
}

/* ---------------------------------------------------------------------
 * One worker thread
 * ------------------------------------------------------------------- */

struct held {
    shm_offt off;
    size_t size;
    uint64_t tag;
};

struct worker {
    unsigned proc, thread;
    uint64_t rng;
    uint64_t serial;
    struct held held[HELD_MAX];
    size_t nheld;
    size_t bytes;
    /* totals, added to ctl at the end */
    uint64_t calls, allocated, freed, enomem, handed, taken, cross;
};

static bool stop(void)
{
    /* Relaxed: only makes the others give up early after a failure. */
    return atomic_load_explicit(&ctl->failed, memory_order_relaxed) != 0;
}

static void fail_worker(const struct worker *w, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr,
            "stress: FAILED in process %u thread %u: %s (seed %" PRIu64
            ", rerun with SHM_TEST_SEED=%" PRIu64 ")\n",
            w->proc, w->thread, msg, seed, seed);
    atomic_store(&ctl->failed, 1);
}

/* Checks the stamp of a chunk about to be freed. tag 0: read it from the
 * chunk (one taken from the ring). */
static bool check_chunk(struct worker *w, shm_offt off, size_t size,
                        uint64_t tag)
{
    const uint64_t *words = SHM_OFFT_TO_ADDR(off);
    if (tag == 0) {
        tag = words[0];
        size = tag_size(tag);
        if (tag_proc(tag) >= STRESS_PROCESSES ||
            tag_thread(tag) >= STRESS_THREADS || size == 0 ||
            size > (size_t)1 << max_class) {
            fail_worker(w,
                        "chunk %" PRIu_shm_offt
                        " from the ring has a foreign stamp %#" PRIx64,
                        off, tag);
            return false;
        }
    }
    size_t usable = shm_usable_size(off);
    if (usable != size) {
        fail_worker(w, "chunk %" PRIu_shm_offt " of %zu bytes: usable size %zu",
                    off, size, usable);
        return false;
    }
    for (size_t i = 0; i < size / 8; i++) {
        if (words[i] != pattern(tag, i)) {
            fail_worker(w,
                        "chunk %" PRIu_shm_offt " of %zu bytes (stamp %#" PRIx64
                        ") overwritten at byte %zu: %#" PRIx64,
                        off, size, tag, i * 8, words[i]);
            return false;
        }
    }
    return true;
}

static bool free_chunk(struct worker *w, shm_offt off)
{
    errno = 0;
    shm_free(off);
    w->calls++;
    if (errno == EINVAL) {
        fail_worker(w, "shm_free(%" PRIu_shm_offt ") of a live chunk refused",
                    off);
        return false;
    }
    w->freed++;
    return true;
}

/* A size in class k: classes up to 2^CHEAP_CLASS equally likely, each
 * larger one half as likely as the one below. */
static size_t pick_size(struct worker *w)
{
    unsigned k;
    for (;;) {
        k = min_class + (unsigned)rnd(&w->rng, max_class - min_class + 1);
        if (k <= CHEAP_CLASS || rnd(&w->rng, 1ULL << (k - CHEAP_CLASS)) == 0)
            break;
    }
    if (k == min_class)
        return (size_t)rnd(&w->rng, ((size_t)1 << k) + 1);
    size_t half = (size_t)1 << (k - 1);
    return half + 1 + (size_t)rnd(&w->rng, half);
}

/* One call to shm_malloc or shm_calloc. Returns the new chunk, stamped,
 * or SHM_NULL (ENOMEM, or a failure already reported). */
static shm_offt allocate(struct worker *w, struct held *out)
{
    size_t n = pick_size(w);
    bool zeroed = rnd(&w->rng, 4) == 0;
    size_t count = 1, each = n;
    if (zeroed && n >= 2 && rnd(&w->rng, 2)) {
        count = 1 + (size_t)rnd(&w->rng, 4);
        each = n / count;
    }
    size_t request = count * each;

    errno = 0;
    shm_offt off = zeroed ? shm_calloc(count, each) : shm_malloc(n);
    w->calls++;
    if (off == SHM_NULL) {
        if (errno != ENOMEM)
            fail_worker(w, "allocation of %zu bytes failed with errno %d (%s)",
                        request, errno, strerror(errno));
        w->enomem++;
        return SHM_NULL;
    }
    w->allocated++;
    size_t size = shm_usable_size(off);
    if (!usable_fits(request, size) || off % model_node_size(request) != 0) {
        fail_worker(w,
                    "%zu bytes at %" PRIu_shm_offt
                    ": usable %zu, expected %zu, aligned to its class",
                    request, off, size, expected_usable(request));
        return SHM_NULL;
    }
    if (zeroed) {
        const uint8_t *p = SHM_OFFT_TO_ADDR(off);
        for (size_t i = 0; i < request; i++) {
            if (p[i] != 0) {
                fail_worker(w,
                            "calloc(%zu, %zu) at %" PRIu_shm_offt
                            ": byte %zu is %#x",
                            count, each, off, i, p[i]);
                return SHM_NULL;
            }
        }
    }
    out->off = off;
    out->size = size;
    out->tag = make_tag(w->proc, w->thread, size, ++w->serial);
    stamp(off, size, out->tag);
    return off;
}

static bool free_held(struct worker *w, size_t i)
{
    struct held h = w->held[i];
    w->held[i] = w->held[--w->nheld];
    w->bytes -= h.size;
    return check_chunk(w, h.off, h.size, h.tag) && free_chunk(w, h.off);
}

/* Puts an offset into an empty ring slot; false when the probed slots
 * were all taken. */
static bool ring_put(struct worker *w, shm_offt off)
{
    for (int probe = 0; probe < RING_PROBES; probe++) {
        _Atomic uint64_t *slot = ring_slot((size_t)rnd(&w->rng, RING_SLOTS));
        uint64_t empty = 0;
        /* Release: the stamp written before is visible to the thread whose
         * exchange in ring_take() acquires this offset. */
        if (atomic_compare_exchange_strong_explicit(
                slot, &empty, off, memory_order_release, memory_order_relaxed))
            return true;
    }
    return false;
}

static shm_offt ring_take(struct worker *w)
{
    for (int probe = 0; probe < RING_PROBES; probe++) {
        _Atomic uint64_t *slot = ring_slot((size_t)rnd(&w->rng, RING_SLOTS));
        /* Relaxed peek, then acquire exchange: pairs with the release CAS
         * in ring_put() that stored the offset. */
        if (atomic_load_explicit(slot, memory_order_relaxed) == 0)
            continue;
        uint64_t off = atomic_exchange_explicit(slot, 0, memory_order_acquire);
        if (off != 0)
            return off;
    }
    return SHM_NULL;
}

static void step(struct worker *w)
{
    unsigned r = (unsigned)rnd(&w->rng, 100);
    bool room = w->nheld < HELD_MAX &&
                w->bytes + get_shm_max_allocatable_size() <= budget_per_thread;

    if (r < 10) {
        /* Allocate for someone else. */
        struct held h;
        if (allocate(w, &h) == SHM_NULL)
            return;
        if (ring_put(w, h.off)) {
            w->handed++;
        } else if (room) {
            w->held[w->nheld++] = h;
            w->bytes += h.size;
        } else if (check_chunk(w, h.off, h.size, h.tag)) {
            free_chunk(w, h.off);
        }
        return;
    }
    if (r < 20) {
        /* Free what someone else allocated. */
        shm_offt off = ring_take(w);
        if (off != SHM_NULL) {
            w->taken++;
            const uint64_t *words = SHM_OFFT_TO_ADDR(off);
            if (tag_proc(words[0]) != w->proc)
                w->cross++;
            if (check_chunk(w, off, 0, 0))
                free_chunk(w, off);
            return;
        }
    }
    if ((r < 60 && room) || w->nheld == 0) {
        struct held h;
        if (allocate(w, &h) != SHM_NULL) {
            if (w->nheld < HELD_MAX) {
                w->held[w->nheld++] = h;
                w->bytes += h.size;
            } else if (check_chunk(w, h.off, h.size, h.tag)) {
                free_chunk(w, h.off);
            }
        }
        return;
    }
    free_held(w, (size_t)rnd(&w->rng, w->nheld));
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    /* Everyone starts at once: all processes forked, all threads up. */
    atomic_fetch_add(&ctl->ready, 1);
    while (atomic_load(&ctl->ready) < TOTAL_THREADS && !stop())
        sched_yield();

    while (w->calls < calls_per_thread && !stop())
        step(w);
    while (w->nheld > 0 && !stop())
        free_held(w, w->nheld - 1);

    atomic_fetch_add(&ctl->calls, w->calls);
    atomic_fetch_add(&ctl->allocated, w->allocated);
    atomic_fetch_add(&ctl->freed, w->freed);
    atomic_fetch_add(&ctl->enomem, w->enomem);
    atomic_fetch_add(&ctl->handed, w->handed);
    atomic_fetch_add(&ctl->taken, w->taken);
    atomic_fetch_add(&ctl->taken_cross_process, w->cross);
    return NULL;
}

/* The threads of one process; returns 0 when none failed. */
static int run_process(unsigned proc)
{
    pthread_t th[STRESS_THREADS];
    static struct worker workers[STRESS_THREADS];

    for (unsigned t = 0; t < STRESS_THREADS; t++) {
        struct worker *w = &workers[t];
        memset(w, 0, sizeof *w);
        w->proc = proc;
        w->thread = t;
        w->rng = seed ^ ((uint64_t)proc << 32 | t) * 0xD1B54A32D192ED03ULL;
        if (pthread_create(&th[t], NULL, worker_main, w) != 0) {
            fail_worker(w, "pthread_create failed");
            return 1;
        }
    }
    for (unsigned t = 0; t < STRESS_THREADS; t++)
        pthread_join(th[t], NULL);
    return atomic_load(&ctl->failed) != 0;
}

/* ---------------------------------------------------------------------
 * The test
 * ------------------------------------------------------------------- */

static double scale(void)
{
    const char *s = getenv("SHM_STRESS_SCALE");
    if (s == NULL || s[0] == '\0')
        return 1.0;
    char *end;
    double v = strtod(s, &end);
    if (*end != '\0' || !(v > 0.0))
        fail_msg("SHM_STRESS_SCALE=%s: expected a positive number", s);
    return v;
}

static void setup_run(char *path, size_t len)
{
    const char *s = getenv("SHM_TEST_SEED");
    if (s != NULL && s[0] != '\0')
        seed = strtoull(s, NULL, 0);
    else
        seed = (uint64_t)time(NULL) << 20 ^ (uint64_t)getpid();
    uint64_t total = (uint64_t)(BASE_CALLS * scale());
    calls_per_thread = (total + TOTAL_THREADS - 1) / TOTAL_THREADS;
    print_message("stress: %d processes x %d threads, %" PRIu64
                  " calls, seed %" PRIu64 " (SHM_TEST_SEED repeats it)\n",
                  STRESS_PROCESSES, STRESS_THREADS,
                  calls_per_thread * TOTAL_THREADS, seed);

    size_t max = get_shm_max_allocatable_size();
    min_class = (unsigned)__builtin_ctzll(get_shm_min_allocatable_size());
    max_class = (unsigned)__builtin_ctzll(max);

    /* Small enough that threads meet on the same bitmap words and the
     * arena runs full now and then; every thread may hold the largest
     * chunk twice over. */
    size_t capacity = 32 * max;
    if (capacity < (512u << 10))
        capacity = 512u << 10;
    budget_per_thread = capacity / TOTAL_THREADS;
    if (budget_per_thread < 2 * max)
        budget_per_thread = 2 * max;

    const char *dir = getenv("SHM_TEST_DIR");
    snprintf(path, len, "%s/stress.shm", dir && dir[0] ? dir : ".");
    unlink(path);
    char size[32];
    snprintf(size, sizeof size, "%zu", capacity);
    assert_int_equal(setenv("SHM_SIZE", size, 1), 0);
    assert_true(shm_init(NULL, path));
    assert_int_equal(unsetenv("SHM_SIZE"), 0);
    assert_int_equal(shm_arena_capacity(shm_default_arena()), capacity);

    ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(ctl != MAP_FAILED);
}

/* Whatever the library refuses during the run is damage it found (the
 * workload makes no bad call): each message is printed, and counted by
 * shm_check after the run. */
static void print_refusal(const char *message, void *context)
{
    (void)context;
    fprintf(stderr, "stress: the library refused: %s\n", message);
}

static void test_stress(void **state)
{
    (void)state;
    if (STRESS_PROCESSES > 1 && STRESS_UNDER_TSAN) {
        print_message("stress: skipped under ThreadSanitizer, which does not "
                      "follow processes; stress_threads covers it\n");
        skip();
    }
    char path[4096];
    setup_run(path, sizeof path);
    shm_set_error_handler(print_refusal, NULL);
    size_t start = shm_available();
    assert_int_equal(shm_check(), 0);

    /* The ring, in the arena. */
    size_t max = get_shm_max_allocatable_size();
    slots_per_chunk = max / sizeof(uint64_t);
    ring_chunk_count = (RING_SLOTS + slots_per_chunk - 1) / slots_per_chunk;
    ring_chunks = calloc(ring_chunk_count, sizeof *ring_chunks);
    assert_non_null(ring_chunks);
    for (size_t i = 0; i < ring_chunk_count; i++) {
        ring_chunks[i] = shm_calloc(1, max);
        assert_int_not_equal(ring_chunks[i], SHM_NULL);
    }

    fflush(NULL);
    if (STRESS_PROCESSES == 1) {
        assert_int_equal(run_process(0), 0);
    } else {
        pid_t pids[STRESS_PROCESSES];
        for (unsigned p = 0; p < STRESS_PROCESSES; p++) {
            pids[p] = fork();
            assert_true(pids[p] >= 0);
            if (pids[p] == 0)
                _exit(run_process(p));
        }
        for (unsigned p = 0; p < STRESS_PROCESSES; p++) {
            int status;
            assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("process %u ended with status %#x (seed %" PRIu64 ")",
                         p, status, seed);
        }
    }
    if (atomic_load(&ctl->failed))
        fail_msg("a worker failed (see above), seed %" PRIu64, seed);

    /* Whatever is still in the ring goes back now. */
    struct worker drain = {.proc = STRESS_PROCESSES};
    for (size_t i = 0; i < RING_SLOTS; i++) {
        shm_offt off = atomic_exchange(ring_slot(i), 0);
        if (off == SHM_NULL)
            continue;
        if (!check_chunk(&drain, off, 0, 0) || !free_chunk(&drain, off))
            fail_msg("ring slot %zu, seed %" PRIu64, i, seed);
    }
    for (size_t i = 0; i < ring_chunk_count; i++)
        shm_free(ring_chunks[i]);
    free(ring_chunks);

    uint64_t calls = atomic_load(&ctl->calls);
    uint64_t allocated = atomic_load(&ctl->allocated);
    uint64_t freed = atomic_load(&ctl->freed) + drain.freed;
    print_message("stress: %" PRIu64 " calls, %" PRIu64 " allocated, %" PRIu64
                  " ENOMEM, %" PRIu64 " handed over, %" PRIu64
                  " taken (%" PRIu64 " from another process)\n",
                  calls, allocated, atomic_load(&ctl->enomem),
                  atomic_load(&ctl->handed), atomic_load(&ctl->taken),
                  atomic_load(&ctl->taken_cross_process));

    assert_true(calls >= (uint64_t)(BASE_CALLS * scale()));
    assert_int_equal(allocated, freed);
    assert_true(allocated > calls / 4);
    assert_true(atomic_load(&ctl->taken) > 0);
    if (STRESS_PROCESSES > 1)
        assert_true(atomic_load(&ctl->taken_cross_process) > 0);

    int bad = shm_check();
    if (bad != 0)
        fail_msg("shm_check() = %d after the run (seed %" PRIu64 ")", bad,
                 seed);
    if (shm_available() != start)
        fail_msg("shm_available() = %zu after the run, %zu before (seed "
                 "%" PRIu64 ")",
                 shm_available(), start, seed);
    shm_deinit();
    unlink(path);
    munmap(ctl, sizeof *ctl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
