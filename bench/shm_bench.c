/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm_bench: the same workloads against shm_alloc, glibc malloc, OSSP mm
 * and Boost.Interprocess, with mimalloc and jemalloc as further private
 * references (heaps.h says how they are kept apart from glibc's malloc),
 * printed as tab-separated results (one line per figure: the median of the
 * repetitions, with their minimum and maximum).
 *
 * Workloads (docs/benchmarks.md says why each exists):
 *   fill       allocate until the first failure; the share of the capacity
 *              that requests received (requested bytes / capacity)
 *   pair       malloc then free at once
 *   churn      keep live chunks at a fill fraction and replace a random one
 *              per operation
 *   processes  churn in P forked processes on one heap, started together;
 *              throughput from the common start to the last finisher
 *   handoff    one process allocates and passes references through a
 *              shared ring, another frees them
 *   xmalloc    producer/consumer in threads of one process on one heap
 *              handle: P producers allocate and pass chunks through
 *              single-producer, single-consumer rings (one per producer and
 *              consumer) to C consumers, which free them; time per pair
 *   larson     server simulation in T threads on one heap handle: each
 *              thread replaces random chunks of a slot array, then passes
 *              the array to the next thread and takes the previous one's,
 *              so most chunks are freed by a thread that did not allocate
 *              them; time per replacement
 *   meta       shm_alloc's metadata as a share of the capacity
 *
 * The thread workloads start every thread in this process, the common
 * start and end as for processes; a heap whose handle threads cannot share
 * (OSSP mm: see heaps.h) is skipped with a message. With more threads than
 * cores (2 producers + 2 consumers on 2 cores) waiting threads yield.
 *
 * Fill fraction: f is measured against what the same heap received in its
 * own fill run (same capacity, same size sequence): at f, the live chunks'
 * requested bytes are f times that amount. Every heap is therefore equally
 * "full" at the same f, and f = 90% is reachable by a power-of-two
 * allocator, which a share of the raw capacity would not be. glibc malloc
 * has no capacity: it holds the live set shm_alloc holds at the same f, so
 * that the ratio between the two compares the same work.
 *
 * Sizes are drawn before timing (log-uniform between two bounds, from a
 * seeded generator), so the timed loops measure the allocators; every chunk
 * gets its first and last byte written.
 */
#include "heaps.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BENCH_INLINE static inline __attribute__((always_inline))

enum {
    SIZE_TABLE = 1 << 18, /* more than a fill run of 32 MiB needs */
    PICK_TABLE = 1 << 16,
    RING_SLOTS = 1024,
    MAX_PROCS = 16,
    MAX_LIST = 8,
};

enum heap_kind {
    HEAP_SHM,
    HEAP_GLIBC,
    HEAP_MM,
    HEAP_BOOST,
    HEAP_MIMALLOC,
    HEAP_JEMALLOC,
    HEAP_KINDS
};

static const struct heap_ops *const heap_table[HEAP_KINDS] = {
    [HEAP_SHM] = &shm_heap_ops,
    [HEAP_GLIBC] = &glibc_heap_ops,
    [HEAP_MM] = &mm_heap_ops,
    [HEAP_BOOST] = &boost_heap_ops,
    [HEAP_MIMALLOC] = &mimalloc_heap_ops,
    [HEAP_JEMALLOC] = &jemalloc_heap_ops,
};

/*
 * Runs LOOP(ops, ...) with ops the constant table of heap KIND, so that
 * the inlined loop calls that heap's functions directly.
 */
#define HEAP_DISPATCH(result, kind, loop, ...)                                 \
    do {                                                                       \
        switch (kind) {                                                        \
        case HEAP_SHM:                                                         \
            result = loop(&shm_heap_ops, __VA_ARGS__);                         \
            break;                                                             \
        case HEAP_GLIBC:                                                       \
            result = loop(&glibc_heap_ops, __VA_ARGS__);                       \
            break;                                                             \
        case HEAP_MM:                                                          \
            result = loop(&mm_heap_ops, __VA_ARGS__);                          \
            break;                                                             \
        case HEAP_BOOST:                                                       \
            result = loop(&boost_heap_ops, __VA_ARGS__);                       \
            break;                                                             \
        case HEAP_MIMALLOC:                                                    \
            result = loop(&mimalloc_heap_ops, __VA_ARGS__);                    \
            break;                                                             \
        default:                                                               \
            result = loop(&jemalloc_heap_ops, __VA_ARGS__);                    \
            break;                                                             \
        }                                                                      \
    } while (0)

struct config {
    bool heaps[HEAP_KINDS];
    /* Timed operations per measurement (and per process), by heap: the
     * slow heaps may do fewer, their time per operation is the figure. */
    size_t ops[HEAP_KINDS];
    unsigned reps;   /* repetitions of each measurement; the median counts */
    size_t capacity; /* bytes of every heap */
    uint32_t size_lo, size_hi;
    uint64_t seed;
    unsigned fills[MAX_LIST], nfills; /* churn fill fractions, % */
    unsigned procs[MAX_LIST], nprocs; /* process counts */
    unsigned proc_fill;               /* fill of the processes runs */
    unsigned producers, consumers;    /* threads of the xmalloc runs */
    unsigned larson_threads;          /* threads of the larson runs */
    size_t larson_slots;              /* live chunks of each larson array */
    char dir[200];                    /* where heap files go */
    bool quiet;
};

/* The sizes and victim choices of one process, drawn before timing. */
struct sequence {
    uint32_t sizes[SIZE_TABLE];
    uint32_t picks[PICK_TABLE]; /* scaled to the live count at use */
};

struct stats {
    double median, min, max;
    uint64_t failures; /* allocations that failed (setup, warm-up, timed) */
    uint64_t allocs;   /* allocations attempted, the failed ones included */
    uint64_t errors;   /* data not seen, inconsistent heap, failed setup */
};

/* ---- small helpers ----------------------------------------------------- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void sequence_draw(struct sequence *s, uint64_t seed, uint32_t lo,
                          uint32_t hi)
{
    uint64_t state = seed;
    double llo = log((double)lo), lhi = log1p((double)hi);
    for (size_t i = 0; i < SIZE_TABLE; i++) {
        double u = (double)(splitmix64(&state) >> 11) * 0x1.0p-53;
        double v = floor(exp(llo + u * (lhi - llo)));
        s->sizes[i] = v > hi ? hi : (v < lo ? lo : (uint32_t)v);
    }
    for (size_t i = 0; i < PICK_TABLE; i++)
        s->picks[i] = (uint32_t)(splitmix64(&state) >> 32);
}

/* The seed of process number index (0 for single-process runs). */
static uint64_t process_seed(uint64_t seed, unsigned index)
{
    return seed ^ ((uint64_t)index * 0xd1b54a32d192ed03u);
}

/* How many leading requests of s sum to at most bytes. */
static size_t live_count(const struct sequence *s, uint64_t bytes)
{
    uint64_t sum = 0;
    size_t n = 0;
    while (sum + s->sizes[n % SIZE_TABLE] <= bytes) {
        sum += s->sizes[n % SIZE_TABLE];
        n++;
    }
    return n;
}

static uint64_t clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void stats_from(struct stats *st, double *v, unsigned n)
{
    qsort(v, n, sizeof *v, compare_double);
    st->min = v[0];
    st->max = v[n - 1];
    st->median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL) {
        perror("shm_bench: calloc");
        exit(2);
    }
    return p;
}

static void *shared_zeroed(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("shm_bench: mmap");
        exit(2);
    }
    return p;
}

static void heap_setup(struct heap *h, const struct config *cfg,
                       enum heap_kind kind)
{
    memset(h, 0, sizeof *h);
    h->capacity = cfg->capacity;
    snprintf(h->path, sizeof h->path, "%s/shm_bench.%ld.%s", cfg->dir,
             (long)getpid(), heap_table[kind]->name);
}

/* Writes the first and last byte, so that no heap is credited for memory
 * nobody uses. */
BENCH_INLINE void touch(unsigned char *p, size_t size, unsigned char tag)
{
    volatile unsigned char *v = p;
    v[0] = tag;
    v[size - 1] = tag;
}

/* Waiting for another process: spin a little, then give the core away
 * (there may be more processes than cores). */
static void pause_for(unsigned *spins)
{
    if (++*spins >= 64) {
        *spins = 0;
        sched_yield();
    }
}

/* ---- the timed loops (inlined once per heap) --------------------------- */

/* Allocates sizes in order until the first failure (or until refs is
 * full); returns the count, *bytes the requested bytes received. */
BENCH_INLINE size_t fill_loop(const struct heap_ops *ops, struct heap *h,
                              const struct sequence *s, uint64_t *refs,
                              size_t max, uint64_t *bytes)
{
    size_t n = 0;
    uint64_t sum = 0;
    while (n < max) {
        size_t size = s->sizes[n % SIZE_TABLE];
        uint64_t ref = ops->alloc(h, size);
        if (ref == 0)
            break;
        touch(ops->addr(h, ref), size, (unsigned char)n);
        refs[n++] = ref;
        sum += size;
    }
    *bytes = sum;
    return n;
}

/* Untimed teardown: frees every chunk so that the heap can be checked.
 * A heap without a check is destroyed whole instead. */
BENCH_INLINE size_t release_loop(const struct heap_ops *ops, struct heap *h,
                                 uint64_t *refs, size_t n)
{
    if (ops->check == NULL)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (refs[i] != 0)
            ops->release(h, refs[i]);
        refs[i] = 0;
    }
    return n;
}

/* Returns the failed allocations. */
BENCH_INLINE uint64_t pair_loop(const struct heap_ops *ops, struct heap *h,
                                const struct sequence *s, size_t n)
{
    uint64_t failures = 0;
    for (size_t i = 0; i < n; i++) {
        size_t size = s->sizes[i % SIZE_TABLE];
        uint64_t ref = ops->alloc(h, size);
        if (ref == 0) {
            failures++;
            continue;
        }
        touch(ops->addr(h, ref), size, (unsigned char)i);
        ops->release(h, ref);
    }
    return failures;
}

/* A churn position: the live chunks and the next request to make. */
struct churn_state {
    uint64_t *refs;
    size_t live;
    size_t next; /* index into the size table (wraps) */
};

/* Replaces a random live chunk by a new request, n times; returns the
 * failed allocations (the slot then stays empty until picked again). */
BENCH_INLINE uint64_t churn_loop(const struct heap_ops *ops, struct heap *h,
                                 const struct sequence *s,
                                 struct churn_state *c, size_t n)
{
    uint64_t failures = 0;
    size_t next = c->next;
    for (size_t i = 0; i < n; i++, next++) {
        uint64_t pick = s->picks[next % PICK_TABLE];
        size_t slot = (size_t)((pick * c->live) >> 32);
        if (c->refs[slot] != 0)
            ops->release(h, c->refs[slot]);
        size_t size = s->sizes[next % SIZE_TABLE];
        uint64_t ref = ops->alloc(h, size);
        if (ref != 0)
            touch(ops->addr(h, ref), size, (unsigned char)next);
        else
            failures++;
        c->refs[slot] = ref;
    }
    c->next = next;
    return failures;
}

/* Allocates the first `count` requests of s, touched, into refs[];
 * returns the failures. */
BENCH_INLINE uint64_t fill_refs(const struct heap_ops *ops, struct heap *h,
                                const struct sequence *s, uint64_t *refs,
                                size_t count)
{
    uint64_t failures = 0;
    for (size_t i = 0; i < count; i++) {
        size_t size = s->sizes[i % SIZE_TABLE];
        uint64_t ref = ops->alloc(h, size);
        if (ref != 0)
            touch(ops->addr(h, ref), size, (unsigned char)i);
        else
            failures++;
        refs[i] = ref;
    }
    return failures;
}

/* Allocates the first c->live requests; returns the failures. */
BENCH_INLINE uint64_t churn_fill(const struct heap_ops *ops, struct heap *h,
                                 const struct sequence *s,
                                 struct churn_state *c)
{
    c->next = c->live;
    return fill_refs(ops, h, s, c->refs, c->live);
}

/* The shared part of the multi-process runs. */
struct control {
    _Alignas(64) _Atomic uint64_t head; /* written by the producer only */
    _Alignas(64) _Atomic uint64_t tail; /* written by the consumer only */
    _Alignas(64) uint64_t ring[RING_SLOTS];
    struct {
        uint64_t end_ns;
        uint64_t cpu_ns; /* CPU time of the timed loop */
        uint64_t allocs;
        uint64_t failures;
        uint64_t errors;
    } worker[MAX_PROCS];
};

BENCH_INLINE uint64_t produce_loop(const struct heap_ops *ops, struct heap *h,
                                   const struct sequence *s,
                                   struct control *ctl, size_t n)
{
    uint64_t failures = 0, head = 0, tail = 0;
    unsigned spins = 0;
    for (size_t i = 0; i < n; i++) {
        size_t size = s->sizes[i % SIZE_TABLE];
        uint64_t ref = ops->alloc(h, size);
        if (ref != 0)
            touch(ops->addr(h, ref), size, (unsigned char)i);
        else
            failures++;
        while (head - tail == RING_SLOTS) {
            /* Pairs with the consumer's release store of tail: the slot
             * has been read before it is reused. */
            tail = atomic_load_explicit(&ctl->tail, memory_order_acquire);
            if (head - tail == RING_SLOTS)
                pause_for(&spins);
        }
        ctl->ring[head % RING_SLOTS] = ref;
        /* Pairs with the consumer's acquire load of head. */
        atomic_store_explicit(&ctl->head, ++head, memory_order_release);
    }
    return failures;
}

/* Returns the chunks whose first byte was not what the producer wrote. */
BENCH_INLINE uint64_t consume_loop(const struct heap_ops *ops, struct heap *h,
                                   struct control *ctl, size_t n)
{
    uint64_t errors = 0, head = 0, tail = 0;
    unsigned spins = 0;
    for (size_t i = 0; i < n; i++) {
        while (tail == head) {
            /* Pairs with the producer's release store of head: the slot
             * and the chunk's bytes are visible. */
            head = atomic_load_explicit(&ctl->head, memory_order_acquire);
            if (tail == head)
                pause_for(&spins);
        }
        uint64_t ref = ctl->ring[tail % RING_SLOTS];
        /* Pairs with the producer's acquire load of tail. */
        atomic_store_explicit(&ctl->tail, ++tail, memory_order_release);
        if (ref == 0)
            continue;
        const volatile unsigned char *p = ops->addr(h, ref);
        if (p[0] != (unsigned char)i)
            errors++;
        ops->release(h, ref);
    }
    return errors;
}

/* ---- xmalloc: producer and consumer threads ---------------------------- */

/* One single-producer, single-consumer ring of the xmalloc runs. */
struct xring {
    _Alignas(64) _Atomic uint64_t head; /* written by its producer only */
    _Alignas(64) _Atomic uint64_t tail; /* written by its consumer only */
    _Alignas(64) uint64_t slot[RING_SLOTS];
};

/* Producer p sends its i-th chunk to consumer i % consumers, through ring
 * p * consumers + that consumer. */
struct xmalloc_shared {
    unsigned producers, consumers;
    struct xring *ring;
};

/* What a producer writes into a chunk's bytes, from the reference alone,
 * so that any consumer can check it. */
BENCH_INLINE unsigned char stamp(uint64_t ref)
{
    return (unsigned char)((ref >> 4) ^ (ref >> 12));
}

/* How many of n chunks go to consumer c of a producer. */
static size_t xmalloc_share(size_t n, unsigned consumers, unsigned c)
{
    return n / consumers + (c < n % consumers);
}

/* Producer p: n chunks, sizes from s; returns the failed allocations
 * (passed on as 0, which the consumer skips). */
BENCH_INLINE uint64_t xproduce_loop(const struct heap_ops *ops, struct heap *h,
                                    const struct sequence *s,
                                    struct xmalloc_shared *x, unsigned p,
                                    size_t n)
{
    uint64_t failures = 0, head[MAX_PROCS] = {0}, tail[MAX_PROCS] = {0};
    unsigned spins = 0, c = 0;
    struct xring *rings = &x->ring[p * x->consumers];
    for (size_t i = 0; i < n; i++) {
        size_t size = s->sizes[i % SIZE_TABLE];
        uint64_t ref = ops->alloc(h, size);
        if (ref != 0)
            touch(ops->addr(h, ref), size, stamp(ref));
        else
            failures++;
        struct xring *r = &rings[c];
        while (head[c] - tail[c] == RING_SLOTS) {
            /* Pairs with the consumer's release store of tail: the slot
             * has been read before it is reused. */
            tail[c] = atomic_load_explicit(&r->tail, memory_order_acquire);
            if (head[c] - tail[c] == RING_SLOTS)
                pause_for(&spins);
        }
        r->slot[head[c] % RING_SLOTS] = ref;
        /* Pairs with the consumer's acquire load of head: the slot and
         * the chunk's bytes are visible with it. */
        atomic_store_explicit(&r->head, ++head[c], memory_order_release);
        if (++c == x->consumers)
            c = 0;
    }
    return failures;
}

/* Consumer c: takes n chunks from its rings, whichever has some, checks
 * each chunk's first byte and frees it. Returns the chunks whose byte was
 * not the producer's. */
BENCH_INLINE uint64_t xconsume_loop(const struct heap_ops *ops, struct heap *h,
                                    struct xmalloc_shared *x, unsigned c,
                                    size_t n)
{
    uint64_t errors = 0, head[MAX_PROCS] = {0}, tail[MAX_PROCS] = {0};
    unsigned spins = 0;
    size_t got = 0;
    while (got < n) {
        bool took = false;
        for (unsigned p = 0; p < x->producers; p++) {
            struct xring *r = &x->ring[p * x->consumers + c];
            if (tail[p] == head[p])
                /* Pairs with the producer's release store of head. */
                head[p] = atomic_load_explicit(&r->head, memory_order_acquire);
            while (tail[p] != head[p]) {
                uint64_t ref = r->slot[tail[p] % RING_SLOTS];
                /* Pairs with the producer's acquire load of tail. */
                atomic_store_explicit(&r->tail, ++tail[p],
                                      memory_order_release);
                got++;
                took = true;
                if (ref == 0)
                    continue;
                const volatile unsigned char *b = ops->addr(h, ref);
                if (b[0] != stamp(ref))
                    errors++;
                ops->release(h, ref);
            }
        }
        if (!took)
            pause_for(&spins);
    }
    return errors;
}

/* ---- larson: threads passing their working sets around ----------------- */

/*
 * Thread t owns one slot array at a time. After each round it puts the
 * array into the mailbox of thread t + 1 (waiting until that mailbox is
 * empty) and takes the array in its own (waiting until one arrives). Every
 * thread runs the same number of rounds, so every put is matched by a take
 * in the same round; a thread waiting to put into a full mailbox waits for
 * a thread one round behind it, so the wait cannot go round the ring.
 */
struct larson_shared {
    unsigned threads;
    struct {
        _Alignas(64) _Atomic(uint64_t *) set;
    } box[MAX_PROCS];
};

static uint64_t *larson_pass(struct larson_shared *l, unsigned t,
                             uint64_t *mine)
{
    unsigned to = t + 1 == l->threads ? 0 : t + 1, spins = 0;
    /* Pairs with the receiver's release store of NULL: it has taken the
     * array that was there. */
    while (atomic_load_explicit(&l->box[to].set, memory_order_acquire) != NULL)
        pause_for(&spins);
    /* Pairs with the receiver's acquire load: the array's references and
     * the bytes of its chunks are visible with it. */
    atomic_store_explicit(&l->box[to].set, mine, memory_order_release);
    uint64_t *got;
    /* Pairs with the sender's release store of the array. */
    while ((got = atomic_load_explicit(&l->box[t].set, memory_order_acquire)) ==
           NULL)
        pause_for(&spins);
    /* Pairs with the next sender's acquire load of the empty mailbox. */
    atomic_store_explicit(&l->box[t].set, NULL, memory_order_release);
    return got;
}

/* A larson thread's position: the array it holds and its next request. */
struct larson_state {
    uint64_t *refs;
    size_t slots;
    size_t next; /* index into the size and pick tables (wraps) */
};

/* rounds rounds of steps replacements each, passing the array on after
 * every round; returns the failed allocations (the slot stays empty). */
BENCH_INLINE uint64_t larson_loop(const struct heap_ops *ops, struct heap *h,
                                  const struct sequence *s,
                                  struct larson_shared *l, unsigned t,
                                  struct larson_state *st, size_t steps,
                                  size_t rounds)
{
    uint64_t failures = 0;
    size_t next = st->next;
    uint64_t *refs = st->refs;
    for (size_t r = 0; r < rounds; r++) {
        for (size_t i = 0; i < steps; i++, next++) {
            uint64_t pick = s->picks[next % PICK_TABLE];
            size_t slot = (size_t)((pick * st->slots) >> 32);
            if (refs[slot] != 0)
                ops->release(h, refs[slot]);
            size_t size = s->sizes[next % SIZE_TABLE];
            uint64_t ref = ops->alloc(h, size);
            if (ref != 0)
                touch(ops->addr(h, ref), size, (unsigned char)next);
            else
                failures++;
            refs[slot] = ref;
        }
        refs = larson_pass(l, t, refs);
    }
    st->refs = refs;
    st->next = next;
    return failures;
}

/* Fills the thread's first array; returns the failures. */
BENCH_INLINE uint64_t larson_fill(const struct heap_ops *ops, struct heap *h,
                                  const struct sequence *s,
                                  struct larson_state *st)
{
    st->next = st->slots;
    return fill_refs(ops, h, s, st->refs, st->slots);
}

/* ---- workers (forked processes, or threads) ---------------------------- */

enum role {
    ROLE_CHURN,
    ROLE_PRODUCE,
    ROLE_CONSUME,
    ROLE_XPRODUCE,
    ROLE_XCONSUME,
    ROLE_LARSON
};

struct worker {
    enum heap_kind kind;
    enum role role;
    unsigned index;
    bool forked;
    struct heap heap; /* a copy: a forked worker attaches its own */
    const struct sequence *seq;
    uint64_t live_bytes;  /* churn: the requested bytes kept live */
    size_t ops;           /* xconsume: chunks to take; larson: rounds */
    size_t slots, steps;  /* larson: array size, replacements per round */
    void *shared;         /* struct xmalloc_shared or struct larson_shared */
    uint64_t *larson_set; /* larson: the array the thread starts with */
    struct control *ctl;
    int ready_fd; /* written once set up */
    int go_fd;    /* reads end of file when every worker may start */
};

static void signal_ready_and_wait(const struct worker *w)
{
    char byte = 1;
    if (write(w->ready_fd, &byte, 1) != 1)
        w->ctl->worker[w->index].errors++;
    /* A process closes its end, so that one that dies before this point
     * cannot leave the parent waiting for its byte. */
    if (w->forked)
        close(w->ready_fd);
    while (read(w->go_fd, &byte, 1) < 0 && errno == EINTR)
        ;
}

static void worker_churn(struct worker *w)
{
    struct churn_state c = {0};
    uint64_t setup = 0, warm = 0, timed = 0;
    c.live = live_count(w->seq, w->live_bytes);
    c.refs = xcalloc(c.live + 1, sizeof *c.refs);
    HEAP_DISPATCH(setup, w->kind, churn_fill, &w->heap, w->seq, &c);
    HEAP_DISPATCH(warm, w->kind, churn_loop, &w->heap, w->seq, &c, w->ops / 4);
    signal_ready_and_wait(w);
    uint64_t cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    HEAP_DISPATCH(timed, w->kind, churn_loop, &w->heap, w->seq, &c, w->ops);
    w->ctl->worker[w->index].end_ns = now_ns();
    w->ctl->worker[w->index].cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu;
    w->ctl->worker[w->index].failures = setup + warm + timed;
    w->ctl->worker[w->index].allocs = c.live + w->ops / 4 + w->ops;
    size_t done;
    HEAP_DISPATCH(done, w->kind, release_loop, &w->heap, c.refs, c.live);
    (void)done;
    free(c.refs);
}

static void worker_larson(struct worker *w)
{
    struct larson_shared *l = w->shared;
    struct larson_state st = {.refs = w->larson_set, .slots = w->slots};
    uint64_t setup = 0, warm = 0, timed = 0;
    size_t warm_rounds = w->ops / 4 > 0 ? w->ops / 4 : 1;
    HEAP_DISPATCH(setup, w->kind, larson_fill, &w->heap, w->seq, &st);
    HEAP_DISPATCH(warm, w->kind, larson_loop, &w->heap, w->seq, l, w->index,
                  &st, w->steps, warm_rounds);
    signal_ready_and_wait(w);
    uint64_t cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    HEAP_DISPATCH(timed, w->kind, larson_loop, &w->heap, w->seq, l, w->index,
                  &st, w->steps, w->ops);
    w->ctl->worker[w->index].end_ns = now_ns();
    w->ctl->worker[w->index].cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu;
    w->ctl->worker[w->index].failures = setup + warm + timed;
    w->ctl->worker[w->index].allocs =
        st.slots + (warm_rounds + w->ops) * w->steps;
    /* Each thread frees what the array it ended with holds. */
    size_t done;
    HEAP_DISPATCH(done, w->kind, release_loop, &w->heap, st.refs, st.slots);
    (void)done;
}

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    struct control *ctl = w->ctl;
    if (w->forked && heap_table[w->kind]->attach(&w->heap) != 0) {
        ctl->worker[w->index].errors++;
        signal_ready_and_wait(w);
        return NULL;
    }
    uint64_t r = 0;
    switch (w->role) {
    case ROLE_CHURN:
        worker_churn(w);
        break;
    case ROLE_PRODUCE:
        signal_ready_and_wait(w);
        HEAP_DISPATCH(r, w->kind, produce_loop, &w->heap, w->seq, ctl, w->ops);
        ctl->worker[w->index].end_ns = now_ns();
        ctl->worker[w->index].failures = r;
        break;
    case ROLE_CONSUME:
        signal_ready_and_wait(w);
        HEAP_DISPATCH(r, w->kind, consume_loop, &w->heap, ctl, w->ops);
        ctl->worker[w->index].end_ns = now_ns();
        ctl->worker[w->index].errors += r;
        break;
    case ROLE_XPRODUCE:
        signal_ready_and_wait(w);
        HEAP_DISPATCH(r, w->kind, xproduce_loop, &w->heap, w->seq, w->shared,
                      w->index, w->ops);
        ctl->worker[w->index].end_ns = now_ns();
        ctl->worker[w->index].failures = r;
        ctl->worker[w->index].allocs = w->ops;
        break;
    case ROLE_XCONSUME: {
        struct xmalloc_shared *x = w->shared;
        signal_ready_and_wait(w);
        HEAP_DISPATCH(r, w->kind, xconsume_loop, &w->heap, x,
                      w->index - x->producers, w->ops);
        ctl->worker[w->index].end_ns = now_ns();
        ctl->worker[w->index].errors += r;
        break;
    }
    case ROLE_LARSON:
        worker_larson(w);
        break;
    }
    if (w->forked)
        heap_table[w->kind]->detach(&w->heap);
    return NULL;
}

/*
 * Starts n workers (forked, or threads when !fork), waits until each is
 * set up, releases them together and waits for all. Returns the span in
 * ns from the common start to the last finisher, 0 on failure.
 */
static uint64_t run_workers(struct worker *w, unsigned n, bool fork_them)
{
    int ready[2], go[2];
    pid_t pids[MAX_PROCS];
    pthread_t threads[MAX_PROCS];
    if (pipe(ready) != 0 || pipe(go) != 0) {
        perror("shm_bench: pipe");
        exit(2);
    }
    fflush(NULL);
    for (unsigned i = 0; i < n; i++) {
        w[i].forked = fork_them;
        w[i].ready_fd = ready[1];
        w[i].go_fd = go[0];
        if (fork_them) {
            pids[i] = fork();
            if (pids[i] < 0) {
                perror("shm_bench: fork");
                exit(2);
            }
            if (pids[i] == 0) {
                close(go[1]);
                close(ready[0]);
                worker_run(&w[i]);
                _exit(0);
            }
        } else if (pthread_create(&threads[i], NULL, worker_run, &w[i]) != 0) {
            perror("shm_bench: pthread_create");
            exit(2);
        }
    }
    if (fork_them)
        close(ready[1]);
    char byte;
    for (unsigned got = 0; got < n;) {
        ssize_t r = read(ready[0], &byte, 1);
        if (r == 1)
            got++;
        else if (r == 0 || errno != EINTR)
            break;
    }
    uint64_t start = now_ns();
    close(go[1]); /* every worker's read returns: the common start */
    bool ok = true;
    for (unsigned i = 0; i < n; i++) {
        if (fork_them) {
            int status;
            if (waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) ||
                WEXITSTATUS(status) != 0)
                ok = false;
        } else {
            pthread_join(threads[i], NULL);
        }
    }
    close(go[0]);
    close(ready[0]);
    if (!fork_them)
        close(ready[1]);
    uint64_t end = start;
    for (unsigned i = 0; i < n; i++) {
        if (w[i].ctl->worker[i].end_ns > end)
            end = w[i].ctl->worker[i].end_ns;
        if (w[i].ctl->worker[i].end_ns == 0)
            ok = false;
    }
    return ok ? end - start : 0;
}

/* ---- measurements ------------------------------------------------------ */

enum workload {
    W_FILL,
    W_PAIR,
    W_CHURN,
    W_PROCESSES,
    W_HANDOFF,
    W_XMALLOC,
    W_LARSON,
    W_META,
    W_N
};

static const char *const workload_names[W_N] = {
    "fill",    "pair",    "churn",  "processes",
    "handoff", "xmalloc", "larson", "meta",
};

static const char *const workload_metrics[W_N] = {
    "pct_capacity", "ns_per_op", "ns_per_op", "mops",
    "ns_per_op",    "ns_per_op", "ns_per_op", "pct_capacity",
};

/* One figure: a workload on a heap with a parameter (fill %, processes),
 * and its samples, one per repetition. The processes runs also record the
 * CPU time per operation (cpu): unlike the throughput, it does not depend
 * on whether the machine had a core free for every process. */
struct figure {
    enum workload workload;
    enum heap_kind kind;
    unsigned param;  /* 0: none; xmalloc: producers; larson: threads */
    unsigned param2; /* xmalloc: consumers */
    double samples[64];
    double cpu[64];
    unsigned nsamples;
    struct stats st;
};

struct bench {
    struct config cfg;
    struct sequence *seq[MAX_PROCS]; /* one per process index */
    uint64_t fill_bytes[HEAP_KINDS]; /* what each heap's fill run received */
    uint64_t mark_ns;                /* when progress was last reported */
};

static bool heap_create_or_report(struct heap *h, enum heap_kind kind)
{
    int err = heap_table[kind]->create(h);
    if (err != 0) {
        fprintf(stderr, "shm_bench: cannot create %s heap at %s: %s\n",
                heap_table[kind]->name, h->path, strerror(err));
        return false;
    }
    return true;
}

/* After a repetition: everything released, the heap must agree. */
static uint64_t heap_finish(struct heap *h, enum heap_kind kind)
{
    int bad = heap_table[kind]->check ? heap_table[kind]->check(h) : 0;
    if (bad != 0)
        fprintf(stderr, "shm_bench: %s heap inconsistent after a run\n",
                heap_table[kind]->name);
    heap_table[kind]->destroy(h);
    return bad != 0;
}

/* The requested bytes live at fill percent f for this heap. */
static uint64_t live_bytes_at(const struct bench *b, enum heap_kind kind,
                              unsigned f)
{
    enum heap_kind basis = heap_table[kind]->shared ? kind : HEAP_SHM;
    return b->fill_bytes[basis] * f / 100;
}

/* Each sample_* runs one repetition on a new heap and returns its figure;
 * failures and errors are added to st. */

static double sample_fill(struct bench *b, enum heap_kind kind,
                          struct stats *st, uint64_t *bytes)
{
    const struct config *cfg = &b->cfg;
    size_t max = cfg->capacity / cfg->size_lo + 1;
    uint64_t *refs = xcalloc(max, sizeof *refs);
    struct heap h;
    size_t n = 0;
    heap_setup(&h, cfg, kind);
    if (!heap_create_or_report(&h, kind))
        exit(2);
    HEAP_DISPATCH(n, kind, fill_loop, &h, b->seq[0], refs, max, bytes);
    HEAP_DISPATCH(n, kind, release_loop, &h, refs, n);
    st->errors += heap_finish(&h, kind);
    free(refs);
    return 100.0 * (double)*bytes / (double)cfg->capacity;
}

static double sample_pair(struct bench *b, enum heap_kind kind,
                          struct stats *st)
{
    const struct config *cfg = &b->cfg;
    size_t ops = cfg->ops[kind];
    struct heap h;
    uint64_t warm = 0, timed = 0;
    heap_setup(&h, cfg, kind);
    if (!heap_create_or_report(&h, kind))
        exit(2);
    HEAP_DISPATCH(warm, kind, pair_loop, &h, b->seq[0], ops / 10);
    uint64_t t0 = now_ns();
    HEAP_DISPATCH(timed, kind, pair_loop, &h, b->seq[0], ops);
    uint64_t t1 = now_ns();
    st->failures += warm + timed;
    st->allocs += ops / 10 + ops;
    st->errors += heap_finish(&h, kind);
    return (double)(t1 - t0) / (double)ops;
}

static double sample_churn(struct bench *b, enum heap_kind kind, unsigned fill,
                           struct stats *st)
{
    const struct config *cfg = &b->cfg;
    size_t ops = cfg->ops[kind];
    struct churn_state c = {0};
    struct heap h;
    uint64_t setup = 0, warm = 0, timed = 0;
    size_t done;
    c.live = live_count(b->seq[0], live_bytes_at(b, kind, fill));
    c.refs = xcalloc(c.live + 1, sizeof *c.refs);
    heap_setup(&h, cfg, kind);
    if (!heap_create_or_report(&h, kind))
        exit(2);
    HEAP_DISPATCH(setup, kind, churn_fill, &h, b->seq[0], &c);
    HEAP_DISPATCH(warm, kind, churn_loop, &h, b->seq[0], &c, ops / 4);
    uint64_t t0 = now_ns();
    HEAP_DISPATCH(timed, kind, churn_loop, &h, b->seq[0], &c, ops);
    uint64_t t1 = now_ns();
    st->failures += setup + warm + timed;
    st->allocs += c.live + ops / 4 + ops;
    HEAP_DISPATCH(done, kind, release_loop, &h, c.refs, c.live);
    (void)done;
    st->errors += heap_finish(&h, kind);
    free(c.refs);
    return (double)(t1 - t0) / (double)ops;
}

static double sample_processes(struct bench *b, enum heap_kind kind,
                               unsigned procs, struct stats *st,
                               double *cpu_ns_per_op)
{
    const struct config *cfg = &b->cfg;
    size_t ops = cfg->ops[kind];
    struct worker w[MAX_PROCS];
    struct control *ctl = shared_zeroed(sizeof *ctl);
    struct heap h;
    heap_setup(&h, cfg, kind);
    if (!heap_create_or_report(&h, kind))
        exit(2);
    for (unsigned i = 0; i < procs; i++) {
        w[i] = (struct worker){
            .kind = kind,
            .role = ROLE_CHURN,
            .index = i,
            .heap = h,
            .seq = b->seq[i],
            .live_bytes = live_bytes_at(b, kind, cfg->proc_fill) / procs,
            .ops = ops,
            .ctl = ctl,
        };
    }
    uint64_t span = run_workers(w, procs, true);
    uint64_t cpu = 0;
    for (unsigned i = 0; i < procs; i++) {
        st->failures += ctl->worker[i].failures;
        st->allocs += ctl->worker[i].allocs;
        st->errors += ctl->worker[i].errors;
        cpu += ctl->worker[i].cpu_ns;
    }
    *cpu_ns_per_op = (double)cpu / ((double)ops * procs);
    st->errors += span == 0;
    st->errors += heap_finish(&h, kind);
    munmap(ctl, sizeof *ctl);
    return span == 0 ? 0.0 : (double)ops * procs * 1e3 / (double)span;
}

static double sample_handoff(struct bench *b, enum heap_kind kind,
                             struct stats *st)
{
    const struct config *cfg = &b->cfg;
    size_t ops = cfg->ops[kind];
    struct worker w[2];
    struct control *ctl = shared_zeroed(sizeof *ctl);
    struct heap h;
    heap_setup(&h, cfg, kind);
    if (!heap_create_or_report(&h, kind))
        exit(2);
    for (unsigned i = 0; i < 2; i++) {
        w[i] = (struct worker){
            .kind = kind,
            .role = i == 0 ? ROLE_PRODUCE : ROLE_CONSUME,
            .index = i,
            .heap = h,
            .seq = b->seq[0],
            .ops = ops,
            .ctl = ctl,
        };
    }
    /* Private memory cannot cross processes: glibc hands off between two
     * threads of one process instead. */
    uint64_t span = run_workers(w, 2, heap_table[kind]->shared);
    st->failures += ctl->worker[0].failures;
    st->allocs += ops;
    st->errors += ctl->worker[0].errors + ctl->worker[1].errors;
    st->errors += span == 0;
    st->errors += heap_finish(&h, kind);
    munmap(ctl, sizeof *ctl);
    return (double)span / (double)ops;
}

/* Threads run on private heaps too: they cannot be shared by processes. */
static void require_threads_ok(enum heap_kind kind)
{
    if (heap_table[kind]->threads_unsafe != NULL) {
        fprintf(stderr, "shm_bench: %s cannot run threaded: %s\n",
                heap_table[kind]->name, heap_table[kind]->threads_unsafe);
        exit(2);
    }
}

/* P producers and C consumers, threads of this process on one heap; the
 * time per pair from the common start to the last finisher. */
static double sample_xmalloc(struct bench *b, enum heap_kind kind,
                             struct stats *st)
{
    const struct config *cfg = &b->cfg;
    unsigned np = cfg->producers, nc = cfg->consumers;
    size_t per_producer = cfg->ops[kind] / np;
    struct worker w[MAX_PROCS];
    struct control *ctl = shared_zeroed(sizeof *ctl);
    struct xring *rings = shared_zeroed(sizeof *rings * np * nc);
    struct xmalloc_shared x = {.producers = np, .consumers = nc, .ring = rings};
    struct heap h;
    require_threads_ok(kind);
    heap_setup(&h, cfg, kind);
    if (!heap_create_or_report(&h, kind))
        exit(2);
    for (unsigned i = 0; i < np + nc; i++) {
        bool producer = i < np;
        size_t expect = 0;
        for (unsigned p = 0; !producer && p < np; p++)
            expect += xmalloc_share(per_producer, nc, i - np);
        w[i] = (struct worker){
            .kind = kind,
            .role = producer ? ROLE_XPRODUCE : ROLE_XCONSUME,
            .index = i,
            .heap = h,
            .seq = b->seq[producer ? i : 0],
            .ops = producer ? per_producer : expect,
            .shared = &x,
            .ctl = ctl,
        };
    }
    uint64_t span = run_workers(w, np + nc, false);
    for (unsigned i = 0; i < np + nc; i++) {
        st->failures += ctl->worker[i].failures;
        st->allocs += ctl->worker[i].allocs;
        st->errors += ctl->worker[i].errors;
    }
    st->errors += span == 0;
    st->errors += heap_finish(&h, kind);
    munmap(rings, sizeof *rings * np * nc);
    munmap(ctl, sizeof *ctl);
    return (double)span / ((double)per_producer * np);
}

/* T threads of this process on one heap, passing their arrays around; the
 * time per replacement from the common start to the last finisher. */
static double sample_larson(struct bench *b, enum heap_kind kind,
                            struct stats *st)
{
    const struct config *cfg = &b->cfg;
    unsigned nt = cfg->larson_threads;
    size_t per_thread = cfg->ops[kind] / nt;
    size_t steps =
        per_thread < cfg->larson_slots ? per_thread : cfg->larson_slots;
    size_t rounds = steps == 0 ? 0 : per_thread / steps;
    struct worker w[MAX_PROCS];
    uint64_t *sets[MAX_PROCS];
    struct control *ctl = shared_zeroed(sizeof *ctl);
    struct larson_shared *l = shared_zeroed(sizeof *l);
    struct heap h;
    require_threads_ok(kind);
    l->threads = nt;
    heap_setup(&h, cfg, kind);
    if (!heap_create_or_report(&h, kind))
        exit(2);
    for (unsigned i = 0; i < nt; i++) {
        sets[i] = xcalloc(cfg->larson_slots, sizeof *sets[i]);
        w[i] = (struct worker){
            .kind = kind,
            .role = ROLE_LARSON,
            .index = i,
            .heap = h,
            .seq = b->seq[i],
            .ops = rounds,
            .slots = cfg->larson_slots,
            .steps = steps,
            .shared = l,
            .larson_set = sets[i],
            .ctl = ctl,
        };
    }
    uint64_t span = run_workers(w, nt, false);
    for (unsigned i = 0; i < nt; i++) {
        st->failures += ctl->worker[i].failures;
        st->allocs += ctl->worker[i].allocs;
        st->errors += ctl->worker[i].errors;
        free(sets[i]);
    }
    st->errors += span == 0;
    st->errors += heap_finish(&h, kind);
    munmap(l, sizeof *l);
    munmap(ctl, sizeof *ctl);
    return (double)span / ((double)rounds * steps * nt);
}

/* shm_alloc's metadata (what the file holds beyond the capacity) as a
 * share of the capacity. */
static double sample_meta(struct bench *b)
{
    size_t mapping = shm_mapping_size_for_capacity(b->cfg.capacity);
    if (mapping == 0) {
        fprintf(stderr, "shm_bench: shm_mapping_size_for_capacity: %s\n",
                strerror(errno));
        exit(2);
    }
    return 100.0 * (double)(mapping - b->cfg.capacity) /
           (double)b->cfg.capacity;
}

/* The parameter column: "-", a number, or producers:consumers. */
static const char *figure_param(const struct figure *f, char *buf, size_t len)
{
    if (f->workload == W_XMALLOC)
        snprintf(buf, len, "%u:%u", f->param, f->param2);
    else if (f->param != 0)
        snprintf(buf, len, "%u", f->param);
    else
        snprintf(buf, len, "-");
    return buf;
}

static void figure_sample(struct bench *b, struct figure *f)
{
    double v = 0.0;
    uint64_t bytes = 0;
    switch (f->workload) {
    case W_FILL:
        v = sample_fill(b, f->kind, &f->st, &bytes);
        break;
    case W_PAIR:
        v = sample_pair(b, f->kind, &f->st);
        break;
    case W_CHURN:
        v = sample_churn(b, f->kind, f->param, &f->st);
        break;
    case W_PROCESSES:
        v = sample_processes(b, f->kind, f->param, &f->st,
                             &f->cpu[f->nsamples]);
        break;
    case W_HANDOFF:
        v = sample_handoff(b, f->kind, &f->st);
        break;
    case W_XMALLOC:
        v = sample_xmalloc(b, f->kind, &f->st);
        break;
    case W_LARSON:
        v = sample_larson(b, f->kind, &f->st);
        break;
    case W_META:
        v = sample_meta(b);
        break;
    case W_N:
        break;
    }
    f->samples[f->nsamples++] = v;
    uint64_t t = now_ns();
    if (!b->cfg.quiet) {
        char param[24];
        fprintf(stderr, "  %-9s %-8s %3s: %10.4g %-12s (%.2f s)\n",
                workload_names[f->workload], heap_table[f->kind]->name,
                figure_param(f, param, sizeof param), v,
                workload_metrics[f->workload], (double)(t - b->mark_ns) * 1e-9);
    }
    b->mark_ns = t;
}

static void print_row(const char *workload, const struct figure *f,
                      const char *metric, const double *samples)
{
    struct stats st = f->st;
    double v[64] = {0};
    memcpy(v, samples, f->nsamples * sizeof *v);
    stats_from(&st, v, f->nsamples);
    char param[24];
    figure_param(f, param, sizeof param);
    printf("%s\t%s\t%s\t%s\t%.4g\t%.4g\t%.4g\t%u\t%" PRIu64 "\t%" PRIu64
           "\t%" PRIu64 "\n",
           workload, heap_table[f->kind]->name, param, metric, st.median,
           st.min, st.max, f->nsamples, st.failures, st.allocs, st.errors);
}

static void figure_print(const struct figure *f)
{
    print_row(workload_names[f->workload], f, workload_metrics[f->workload],
              f->samples);
    if (f->workload == W_PROCESSES)
        print_row("processes_cpu", f, "cpu_ns_per_op", f->cpu);
}

/* ---- command line ------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: shm_bench [options] [workload...]\n"
            "workloads: fill pair churn processes handoff xmalloc larson\n"
            "           meta (default: all)\n"
            "  -a LIST   heaps: shm,glibc,mm,boost,mimalloc,jemalloc\n"
            "            (default: all; one not available is skipped)\n"
            "  -n [HEAP=]OPS  timed operations per measurement and process,\n"
            "            for every heap or one (500000; repeatable)\n"
            "  -r REPS   repetitions; the median is reported (5)\n"
            "  -c BYTES  capacity of every heap, K/M/G suffix (32M)\n"
            "  -s LO:HI  request sizes, log-uniform (16:1000)\n"
            "  -S SEED   seed of the size and victim sequences (1)\n"
            "  -f LIST   churn fill fractions in %% (30,60,90)\n"
            "  -p LIST   process counts (1,2,4)\n"
            "  -F PCT    fill fraction of the processes runs (60)\n"
            "  -x P:C    xmalloc producer and consumer threads (2:2)\n"
            "  -l T[:N]  larson threads, live chunks per thread (2:5000)\n"
            "  -d DIR    where heap files are created (/dev/shm or /tmp)\n"
            "  -q        no progress on stderr\n"
            "Output: workload heap param metric median min max reps "
            "failures allocs errors\n"
            "(processes_cpu: CPU time per operation of the processes runs)\n");
}

static size_t parse_size(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift != 0)
        end++;
    if (errno != 0 || end == s || *end != '\0' || v == 0) {
        fprintf(stderr, "shm_bench: bad size '%s'\n", s);
        exit(2);
    }
    return (size_t)(v << shift);
}

static unsigned parse_list(const char *s, unsigned *out, unsigned lo,
                           unsigned hi)
{
    unsigned n = 0;
    char *end;
    while (*s != '\0') {
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || v < lo || v > hi || n == MAX_LIST ||
            (*end != ',' && *end != '\0')) {
            fprintf(stderr, "shm_bench: bad list '%s' (%u..%u)\n", s, lo, hi);
            exit(2);
        }
        out[n++] = (unsigned)v;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

static void parse_heaps(const char *s, bool *heaps)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    memset(heaps, 0, HEAP_KINDS * sizeof *heaps);
    for (char *save, *t = strtok_r(buf, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        int k = 0;
        while (k < HEAP_KINDS && strcmp(heap_table[k]->name, t) != 0)
            k++;
        if (k == HEAP_KINDS) {
            fprintf(stderr, "shm_bench: unknown heap '%s'\n", t);
            exit(2);
        }
        heaps[k] = true;
    }
}

/* "OPS" sets every heap's count, "HEAP=OPS" one heap's. */
static void parse_ops(const char *s, size_t *ops)
{
    const char *eq = strchr(s, '=');
    if (eq == NULL) {
        size_t n = parse_size(s);
        for (int k = 0; k < HEAP_KINDS; k++)
            ops[k] = n;
        return;
    }
    for (int k = 0; k < HEAP_KINDS; k++) {
        const char *name = heap_table[k]->name;
        if (strlen(name) == (size_t)(eq - s) &&
            strncmp(name, s, (size_t)(eq - s)) == 0) {
            ops[k] = parse_size(eq + 1);
            return;
        }
    }
    fprintf(stderr, "shm_bench: unknown heap in '%s'\n", s);
    exit(2);
}

static void parse_args(struct config *cfg, int argc, char **argv)
{
    *cfg = (struct config){
        .reps = 5,
        .capacity = 32u << 20,
        .size_lo = 16,
        .size_hi = 1000,
        .seed = 1,
        .fills = {30, 60, 90},
        .nfills = 3,
        .procs = {1, 2, 4},
        .nprocs = 3,
        .proc_fill = 60,
        .producers = 2,
        .consumers = 2,
        .larson_threads = 2,
        .larson_slots = 5000,
    };
    for (int k = 0; k < HEAP_KINDS; k++) {
        cfg->heaps[k] = true;
        cfg->ops[k] = 500000;
    }
    struct stat sb;
    snprintf(cfg->dir, sizeof cfg->dir, "%s",
             stat("/dev/shm", &sb) == 0 && access("/dev/shm", W_OK) == 0
                 ? "/dev/shm"
                 : "/tmp");
    int opt;
    unsigned one[MAX_LIST];
    while ((opt = getopt(argc, argv, "a:n:r:c:s:S:f:p:F:x:l:d:qh")) != -1) {
        switch (opt) {
        case 'a':
            parse_heaps(optarg, cfg->heaps);
            break;
        case 'n':
            parse_ops(optarg, cfg->ops);
            break;
        case 'r':
            parse_list(optarg, one, 1, 64);
            cfg->reps = one[0];
            break;
        case 'c':
            cfg->capacity = parse_size(optarg);
            break;
        case 's':
            if (sscanf(optarg, "%" SCNu32 ":%" SCNu32, &cfg->size_lo,
                       &cfg->size_hi) != 2 ||
                cfg->size_lo == 0 || cfg->size_lo > cfg->size_hi) {
                fprintf(stderr, "shm_bench: bad sizes '%s'\n", optarg);
                exit(2);
            }
            break;
        case 'S':
            cfg->seed = strtoull(optarg, NULL, 0);
            break;
        case 'f':
            cfg->nfills = parse_list(optarg, cfg->fills, 1, 100);
            break;
        case 'p':
            cfg->nprocs = parse_list(optarg, cfg->procs, 1, MAX_PROCS);
            break;
        case 'F':
            parse_list(optarg, one, 1, 100);
            cfg->proc_fill = one[0];
            break;
        case 'x':
            if (sscanf(optarg, "%u:%u", &cfg->producers, &cfg->consumers) !=
                    2 ||
                cfg->producers == 0 || cfg->consumers == 0 ||
                cfg->producers + cfg->consumers > MAX_PROCS) {
                fprintf(
                    stderr,
                    "shm_bench: bad threads '%s' (P:C, at most %d in all)\n",
                    optarg, MAX_PROCS);
                exit(2);
            }
            break;
        case 'l': {
            char *end;
            unsigned long t = strtoul(optarg, &end, 10);
            if (*end == ':')
                cfg->larson_slots = parse_size(end + 1);
            else if (*end != '\0')
                t = 0;
            if (t == 0 || t > MAX_PROCS) {
                fprintf(stderr, "shm_bench: bad larson threads '%s' (1..%d)\n",
                        optarg, MAX_PROCS);
                exit(2);
            }
            cfg->larson_threads = (unsigned)t;
            break;
        }
        case 'd':
            snprintf(cfg->dir, sizeof cfg->dir, "%s", optarg);
            break;
        case 'q':
            cfg->quiet = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
}

/*
 * jemalloc's dlopen needs more static TLS than glibc reserves by default
 * (heaps.h): the process runs itself again, once, with a larger reserve.
 * The tunable only sizes that reserve; nothing else changes for the other
 * heaps. Returns only when the exec failed or was already done.
 */
static void exec_with_static_tls(char **argv)
{
    static const char tunable[] = "glibc.rtld.optional_static_tls=";
    const char *old = getenv("GLIBC_TUNABLES");
    if (old != NULL && strstr(old, tunable) != NULL)
        return;
    char value[1024];
    snprintf(value, sizeof value, "%s%s%s65536", old != NULL ? old : "",
             old != NULL && *old != '\0' ? ":" : "", tunable);
    if (setenv("GLIBC_TUNABLES", value, 1) != 0)
        return;
    fflush(NULL);
    execv("/proc/self/exe", argv);
    perror("shm_bench: execv /proc/self/exe");
}

/* Opens the libraries of the private heaps asked for; a heap that cannot
 * be used is dropped from cfg->heaps with a message. Nothing is printed
 * before the exec, so that a run prints its messages once. */
static void private_heaps_load(struct config *cfg, char **argv)
{
    static char msg[HEAP_KINDS][1024];
    bool ok[HEAP_KINDS] = {false}, retry = false;
    for (int k = 0; k < HEAP_KINDS; k++) {
        struct private_lib *lib = heap_table[k]->lib;
        if (!cfg->heaps[k] || lib == NULL)
            continue;
        ok[k] = private_lib_load(lib, msg[k], sizeof msg[k]);
        retry |= !ok[k] && lib->path != NULL && !BENCH_SANITIZED;
    }
    if (retry)
        exec_with_static_tls(argv); /* returns if the reserve was larger */
    for (int k = 0; k < HEAP_KINDS; k++) {
        if (!cfg->heaps[k] || heap_table[k]->lib == NULL)
            continue;
        if (!ok[k]) {
            fprintf(stderr, "shm_bench: skipping heap %s: %s\n",
                    heap_table[k]->name, msg[k]);
            cfg->heaps[k] = false;
        } else if (!cfg->quiet) {
            fprintf(stderr, "shm_bench: %s\n", msg[k]);
        }
    }
}

static void *no_work(void *arg)
{
    return arg;
}

/*
 * Fill runs come first: the churn targets are fractions of what they
 * received (glibc borrows shm_alloc's, so shm_alloc's runs whenever glibc
 * churns). The other figures are then sampled in rounds, each round taking
 * one sample of every figure, so that a burst of load from elsewhere on
 * the machine falls on every heap alike and the ratios stay fair.
 */
int main(int argc, char **argv)
{
    static struct bench b;
    static struct figure figs[256];
    unsigned nfigs = 0;
    bool want[W_N] = {false};
    parse_args(&b.cfg, argc, argv);
    private_heaps_load(&b.cfg, argv);
    const struct config *cfg = &b.cfg;
    if (optind == argc)
        memset(want, 1, sizeof want);
    for (int i = optind; i < argc; i++) {
        int w = 0;
        while (w < W_N && strcmp(workload_names[w], argv[i]) != 0)
            w++;
        if (w == W_N) {
            fprintf(stderr, "shm_bench: unknown workload '%s'\n", argv[i]);
            return 2;
        }
        want[w] = true;
    }
    bool any_private = false;
    for (int k = 0; k < HEAP_KINDS; k++)
        any_private |= cfg->heaps[k] && !heap_table[k]->shared;
    /* glibc's malloc takes a faster path until the process starts its
     * first thread: if any run will start threads here, start one now, so
     * that every round measures the same malloc. */
    if (want[W_XMALLOC] || want[W_LARSON] || (want[W_HANDOFF] && any_private)) {
        pthread_t t;
        if (pthread_create(&t, NULL, no_work, NULL) != 0 ||
            pthread_join(t, NULL) != 0) {
            perror("shm_bench: pthread_create");
            return 2;
        }
    }

    unsigned nseq = 1;
    for (unsigned i = 0; i < cfg->nprocs; i++)
        nseq = cfg->procs[i] > nseq ? cfg->procs[i] : nseq;
    nseq = cfg->producers > nseq ? cfg->producers : nseq;
    nseq = cfg->larson_threads > nseq ? cfg->larson_threads : nseq;
    for (unsigned i = 0; i < nseq; i++) {
        b.seq[i] = xcalloc(1, sizeof *b.seq[i]);
        sequence_draw(b.seq[i], process_seed(cfg->seed, i), cfg->size_lo,
                      cfg->size_hi);
    }
    if (!cfg->quiet)
        fprintf(stderr,
                "shm_bench: capacity %zu, sizes %" PRIu32 "..%" PRIu32
                ", seed %" PRIu64 ", %u reps, files in %s\n",
                cfg->capacity, cfg->size_lo, cfg->size_hi, cfg->seed, cfg->reps,
                cfg->dir);

    bool need_fill = want[W_FILL] || want[W_CHURN] || want[W_PROCESSES];
    for (int k = 0; k < HEAP_KINDS; k++) {
        /* The private heaps churn at shm_alloc's fill. */
        bool basis = k == HEAP_SHM && any_private;
        if (need_fill && heap_table[k]->shared && (cfg->heaps[k] || basis))
            figs[nfigs++] = (struct figure){.workload = W_FILL, .kind = k};
    }
    unsigned nfill = nfigs;
    for (int k = 0; k < HEAP_KINDS; k++) {
        if (!cfg->heaps[k])
            continue;
        if (want[W_PAIR])
            figs[nfigs++] = (struct figure){.workload = W_PAIR, .kind = k};
        for (unsigned i = 0; want[W_CHURN] && i < cfg->nfills; i++)
            figs[nfigs++] = (struct figure){
                .workload = W_CHURN, .kind = k, .param = cfg->fills[i]};
        for (unsigned i = 0; want[W_PROCESSES] && i < cfg->nprocs; i++)
            figs[nfigs++] = (struct figure){
                .workload = W_PROCESSES, .kind = k, .param = cfg->procs[i]};
        if (want[W_HANDOFF])
            figs[nfigs++] = (struct figure){.workload = W_HANDOFF, .kind = k};
        const char *unsafe = heap_table[k]->threads_unsafe;
        if ((want[W_XMALLOC] || want[W_LARSON]) && unsafe != NULL) {
            fprintf(stderr,
                    "shm_bench: skipping %s for xmalloc and larson: %s\n",
                    heap_table[k]->name, unsafe);
            continue;
        }
        if (want[W_XMALLOC])
            figs[nfigs++] = (struct figure){.workload = W_XMALLOC,
                                            .kind = k,
                                            .param = cfg->producers,
                                            .param2 = cfg->consumers};
        if (want[W_LARSON])
            figs[nfigs++] = (struct figure){
                .workload = W_LARSON, .kind = k, .param = cfg->larson_threads};
    }
    if (want[W_META])
        figs[nfigs++] = (struct figure){.workload = W_META, .kind = HEAP_SHM};

    b.mark_ns = now_ns();
    for (unsigned i = 0; i < nfill; i++) {
        double bytes[64] = {0};
        for (unsigned r = 0; r < cfg->reps; r++) {
            uint64_t got = 0;
            figs[i].samples[r] =
                sample_fill(&b, figs[i].kind, &figs[i].st, &got);
            bytes[r] = (double)got;
        }
        figs[i].nsamples = cfg->reps;
        struct stats st;
        stats_from(&st, bytes, cfg->reps);
        b.fill_bytes[figs[i].kind] = (uint64_t)st.median;
        if (!cfg->quiet)
            fprintf(stderr, "  fill      %-8s    : %10.4g pct_capacity\n",
                    heap_table[figs[i].kind]->name, figs[i].samples[0]);
    }
    for (unsigned r = 0; r < cfg->reps; r++) {
        if (!cfg->quiet)
            fprintf(stderr, "shm_bench: round %u of %u\n", r + 1, cfg->reps);
        for (unsigned i = nfill; i < nfigs; i++)
            figure_sample(&b, &figs[i]);
    }

    printf("workload\theap\tparam\tmetric\tmedian\tmin\tmax\treps\tfailures"
           "\tallocs\terrors\n");
    for (unsigned i = 0; i < nfigs; i++)
        figure_print(&figs[i]);
    for (unsigned i = 0; i < nseq; i++)
        free(b.seq[i]);
    return 0;
}
