/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Pending-operation records: what a thread is in the middle of, kept in
 * the file, so that after a death a survivor completes or undoes it (the
 * kernel's robust-futex list_op_pending is the model).
 *
 * Records: SHMI_THREAD_RECORDS of 64 bytes in the shared header
 * (shared_header.h), each
 *
 *   word 0      owner: 0 when free, else the owner value of the attachment
 *               whose thread holds it (process slot | attachment number <<
 *               16, process_table.c), unique per attachment
 *   word 1..6   one operation word per tier t (word 1 + t), 0 when none:
 *
 *      63 62 61          48 47                                    0
 *     +-----+--------------+---------------------------------------+
 *     | op  |      0       |         index of word W in tier t      |  1, 2
 *     +-----+--+--+--------+---------------------------------------+
 *     | 3   |0 |F | slots  |   x >> MIN: first unit of the chunk    |  trim
 *     +-----+--+--+--------+---------------------------------------+
 *      op 1 ACTIVATE, 2 RETIRE, 3 TRIM (F, bit 54: freeing; slots,
 *      bits 48..53: the allocation's bottom-row slots in its word)
 *
 *   word 7      a realloc that moves: bit 63 | the new chunk's data
 *               position x, 0 when none (files before it held 0 here)
 *
 * A thread takes a record on its first multi-step operation on an arena
 * (CAS owner 0 -> its attachment's owner value), keeps it in a
 * thread-local cache, and gives it back when it exits (a pthread key
 * destructor), or its attachment gives back all its records at detach.
 * One word per tier suffices: an activation of a tier-t word nests only
 * activations of shallower tiers, and a retire never nests.
 *
 * The two multi-step operations of tree.c, on a lower-tier word W of tier
 * t whose parent node u lies in word U of tier t-1:
 *
 *   activate:  1. claim u in U            retire:  1. CAS W ACTIVE -> 0
 *              r. record {ACTIVATE, W}             r. record {RETIRE, W}
 *              2. CAS W 0 -> ACTIVE|n              c. clear the record
 *              c. clear the record                 2. clear u in U
 *
 * Invariant P: while a record names W, u is set and W is 0 only because
 * of its owner's step 1, so nobody else may write u or W:
 *   - activate, between 1 and 2: u is set (this thread claimed it), and
 *     nobody writes W while it is 0 but the owner of u (tree.c);
 *   - activate, after 2 and before c: W is ACTIVE with n set. n is the
 *     chunk the thread was about to return; the thread is stopped before
 *     returning it, so nobody frees n, W never becomes empty, is never
 *     retired, and u stays delegated: W is never 0 again while recorded;
 *   - retire, between r and c: this thread's CAS made W 0 with u set;
 *     only the retirer whose CAS succeeded releases u.
 * Recovery of a dead owner's record therefore does one thing for both
 * operations: if W == 0 and u is set, clear u (an undone activation, a
 * completed retire) and publish its hints; otherwise nothing (W active:
 * the activation was complete, and is the dead thread's leaked chunk to
 * the collector). It never frees a node that was handed out: by P, the
 * state it acts on is one nobody else could have reached.
 *
 * Trimmed allocations (tree.c, "Trimming"), in a word of tier t, whose
 * pieces after the first are marked by continuation bits:
 *
 *   claim:  1. CAS the pieces in        free:  r. record {TRIM, F, x}
 *           r. record {TRIM, x}                1. AND the bits away
 *           2. OR the tails' bits              c. clear the record
 *           c. clear the record                2. CAS the pieces out
 *
 * Invariant Q: while a trim record names x, every piece of the
 * allocation at x is set in its word and is the recording thread's
 * alone: a claim's pieces are its CAS's (the thread has not returned x
 * yet, so nobody can free them), a free's are still those of a live
 * allocation its owner is freeing (the record is cleared before the CAS
 * that lets others claim them). Recovery of a claim frees the tail pieces
 * (their bits cleared first, K1) and keeps the first, the chunk in
 * flight, as an untrimmed malloc killed after its CAS does (a collection
 * judges it); recovery of a free frees every piece. The op word of tier
 * t is free for it: an activation of tier t is cleared before its chunk's
 * bits are set, and an activation's own claims one level up take whole
 * nodes (no tails). Recovery checks that the pieces are set, not inside
 * another chunk and not delegated, and acts with one CAS, or does nothing.
 *
 * A realloc that moves (arena_alloc.c):
 *
 *   1. x = malloc   r. record {x}   2. copy, free the old chunk   c. clear
 *
 * Invariant R: while word 7 names x, x is a live chunk that only the
 * recording thread knows: malloc handed it to this thread alone, and the
 * thread gives it to its caller only after c. So recovery frees x (the
 * caller, dead, never received it) and no one else can hold it. The old
 * chunk is not recovery's: before 2 it is the dead program's allocation
 * (for a collection), after 2 it is free (or in the thread cache that the
 * taker drains). A double free of x by another thread, a program error,
 * is the only way around R, as around Q.
 *
 * Why the record comes after step 1 and, for a retire, is cleared before
 * step 2: a record written before a CAS that then failed (another thread
 * retired W first and released u, and a third claimed u as a chunk),
 * or still present after u was released (and claimed again), would show
 * W == 0 with u set by someone else: recovery would free a live chunk.
 * The same holds for a trimmed free and a realloc: their records are
 * cleared before the pieces, or x, could be another's.
 * The price: a SIGKILL in the few instructions between a step-1 CAS and
 * the record store, or between the clear and a retire's step 2, still
 * leaks one node (as before records existed), never more; between a
 * trimmed claim's CAS and its record, or a trimmed free's clear and its
 * CAS, one allocation's tail pieces; between malloc and a realloc's
 * record, its new chunk; no test yield lies in those windows.
 *
 * Taking a dead owner's record (shmi_pending_take): CAS owner dead ->
 * the taker's own owner value, read and clear the operation words, give
 * the record back; only then does the caller resolve the operations. A
 * taker killed before clearing leaves the record under its own owner
 * value, so the next recovery resolves the same operations for it; a
 * taker killed after clearing leaks (never repeats) them. Two recoveries
 * never resolve one record: one CAS on its owner wins.
 *
 * Memory order: a thread's stores to its own record are release, so a
 * record is written after the step it follows and cleared after the step
 * before it (compiler and processor keep the order); a reader reads a
 * record only after its owner was found dead through the kernel's lock
 * (a system call), or after taking it with an acquire CAS.
 *
 * Limits: the windows above; a batch (a thread cache's refill or flush
 * of several trimmed chunks with one CAS) is not trim-recorded, and a
 * kill between its CAS and its bits leaks those chunks' tails; with
 * three tiers or more, a kill between a
 * nested activation's last step and the outer activation's record leaks
 * the inner chunk; a thread that finds every record taken runs its
 * operations unrecorded; a taker that holds no table entry marks a record
 * TAKEN, and if it dies there, that record stays taken.
 */
#include "pending.h"

#include <pthread.h>
#include <stdatomic.h>

#include "atomics.h"
#include "shared_header.h"

#define OP_SHIFT 62
#define INDEX_MASK ((UINT64_C(1) << 48) - 1)
#define SLOTS_SHIFT 48
#define SLOTS_MASK UINT64_C(63)
#define FREEING (UINT64_C(1) << 54)
#define TAKEN (UINT64_C(1) << 63)
#define MOVED (UINT64_C(1) << 63)
#define HELD_MAX 4

struct record {
    shmi_atomic_word owner;
    shmi_atomic_word op[SHMI_MAX_TIERS];
    shmi_atomic_word moved; /* a realloc's new chunk: MOVED | x, or 0 */
};

_Static_assert(sizeof(struct record) == SHMI_THREAD_RECORD_SIZE,
               "a record fills its 64 bytes");
_Static_assert(SHMI_MAX_TIERS <= 6, "one operation word per tier");

#if SHM_TEST_HOOKS
void (*shmi_pending_test_hook)(unsigned op, unsigned tier);
#endif

/* Set once by the thread caches (thread_cache.c), read before a record is
 * given back; an atomic pointer so that a thread giving back a record
 * while another sets it reads either value. */
static _Atomic(shmi_pending_release_fn *) release_hook;

void shmi_pending_set_release_hook(shmi_pending_release_fn *hook)
{
    atomic_store_explicit(&release_hook, hook, memory_order_release);
}

/* What a record holds besides its operations (its thread cache) is given
 * back while the record is still the caller's. */
static uint64_t before_release(struct shmi_geometry *g, size_t record)
{
    shmi_pending_release_fn *hook =
        atomic_load_explicit(&release_hook, memory_order_acquire);
    return hook ? hook(g, record) : 0;
}

static struct record *records_of(const struct shmi_geometry *g)
{
    return (struct record *)(g->base + g->layout.header_offset +
                             SHMI_THREAD_RECORDS_OFFSET);
}

/* ---- the process's bindings and the thread's cache ---------------------- */

struct held {
    uint64_t serial; /* the geometry's; 0: unused */
    uint32_t record;
};

static _Thread_local struct held thread_held[HELD_MAX];
static pthread_mutex_t bindings_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shmi_pending_binding *bindings;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;

/* Gives back one held record if its arena is still mapped. */
static void give_back(struct held *h)
{
    pthread_mutex_lock(&bindings_lock);
    for (struct shmi_pending_binding *b = bindings; b; b = b->next) {
        struct shmi_geometry *g = b->geo;
        if (g->serial != h->serial || g->record_owner == 0)
            continue;
        struct record *r = &records_of(g)[h->record];
        /* Relaxed: only this thread writes a record it holds. */
        if (shmi_atomic_load_relaxed(&r->owner) == g->record_owner) {
            (void)before_release(g, h->record);
            /* Release: pairs with the acquiring CAS of the next taker;
             * the operation words it sees are 0, its cache empty. */
            shmi_atomic_store_release(&r->owner, 0);
        }
        break;
    }
    pthread_mutex_unlock(&bindings_lock);
    h->serial = 0;
}

static void at_thread_exit(void *unused)
{
    (void)unused;
    for (unsigned i = 0; i < HELD_MAX; i++)
        if (thread_held[i].serial != 0)
            give_back(&thread_held[i]);
}

static void before_fork(void)
{
    pthread_mutex_lock(&bindings_lock);
}

static void after_fork_in_parent(void)
{
    pthread_mutex_unlock(&bindings_lock);
}

void shmi_pending_forget_after_fork(void)
{
    for (unsigned i = 0; i < HELD_MAX; i++)
        thread_held[i].serial = 0;
}

/* The child's one thread forgets its parent's records (the child holds no
 * entry, so its handles have no owner value and take no record). */
static void after_fork_in_child(void)
{
    shmi_pending_forget_after_fork();
    pthread_mutex_unlock(&bindings_lock);
}

static void init_once(void)
{
    pthread_key_create(&exit_key, at_thread_exit);
    pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}

void shmi_pending_bind(struct shmi_pending_binding *b, struct shmi_geometry *g)
{
    pthread_once(&once, init_once);
    b->geo = g;
    pthread_mutex_lock(&bindings_lock);
    b->next = bindings;
    bindings = b;
    pthread_mutex_unlock(&bindings_lock);
}

void shmi_pending_unbind(struct shmi_pending_binding *b)
{
    if (b->geo == NULL)
        return;
    pthread_mutex_lock(&bindings_lock);
    for (struct shmi_pending_binding **p = &bindings; *p; p = &(*p)->next) {
        if (*p == b) {
            *p = b->next;
            break;
        }
    }
    pthread_mutex_unlock(&bindings_lock);
    struct shmi_geometry *g = b->geo;
    b->geo = NULL;
    if (g->record_owner == 0)
        return;
    struct record *r = records_of(g);
    for (size_t i = 0; i < SHMI_THREAD_RECORDS; i++) {
        uint64_t owner = g->record_owner;
        /* Relaxed load: a filter. Seq_cst CAS (a release): as give_back.
         * A record still holding an operation would be a thread inside a
         * call on a handle being closed. */
        if (shmi_atomic_load_relaxed(&r[i].owner) == owner) {
            (void)before_release(g, i);
            shmi_atomic_cas_seq_cst(&r[i].owner, &owner, 0);
        }
    }
}

/* The calling thread's record for g, taken on first use; NULL if none. */
static struct record *thread_record(struct shmi_geometry *g, bool take)
{
    struct held *free_slot = NULL;
    for (unsigned i = 0; i < HELD_MAX; i++) {
        if (thread_held[i].serial == g->serial)
            return &records_of(g)[thread_held[i].record];
        if (thread_held[i].serial == 0 && free_slot == NULL)
            free_slot = &thread_held[i];
    }
    if (!take || g->record_owner == 0)
        return NULL;
    pthread_once(&once, init_once);
    if (free_slot == NULL) {
        free_slot = &thread_held[0]; /* many arenas: make room */
        give_back(free_slot);
    }
    pthread_setspecific(exit_key, (void *)1);
    struct record *r = records_of(g);
    /* The records that have a thread cache (the first tcache_slots) are
     * tried first, from a place that differs by thread and attachment. */
    size_t cached = (size_t)g->tcache_slots;
    size_t spread = cached ? cached : SHMI_THREAD_RECORDS;
    size_t first =
        (size_t)(((uintptr_t)thread_held >> 6) ^ g->record_owner) % spread;
    for (size_t k = 0; k < SHMI_THREAD_RECORDS; k++) {
        size_t i = k < spread ? (first + k) % spread : k;
        uint64_t expected = 0;
        /* Relaxed load: a filter. Acq_rel CAS: acquire pairs with the
         * release that gave the record back (its words are 0). */
        if (shmi_atomic_load_relaxed(&r[i].owner) == 0 &&
            shmi_atomic_cas_acq_rel(&r[i].owner, &expected, g->record_owner)) {
            free_slot->serial = g->serial;
            free_slot->record = (uint32_t)i;
            return &r[i];
        }
    }
    return NULL;
}

long shmi_pending_thread_record(struct shmi_geometry *g)
{
    struct record *r = thread_record(g, true);
    return r ? (long)(r - records_of(g)) : -1;
}

/* ---- recording ---------------------------------------------------------- */

void shmi_pending_begin(struct shmi_geometry *g, unsigned op, unsigned tier,
                        uint64_t index)
{
    struct record *r = thread_record(g, true);
    if (r == NULL)
        return;
    /* Release: the record follows step 1 (the claim or the retiring CAS)
     * in every order a survivor may see it in. */
    shmi_atomic_store_release(&r->op[tier],
                              (uint64_t)op << OP_SHIFT | (index & INDEX_MASK));
    SHMI_PENDING_TEST_POINT(op, tier);
}

void shmi_pending_begin_trim(struct shmi_geometry *g, unsigned tier, uint64_t x,
                             unsigned slots, bool freeing)
{
    uint64_t unit = x >> SHM_MIN_ALLOC_POW2;
    struct record *r = thread_record(g, true);
    if (r == NULL || unit > INDEX_MASK || slots > SLOTS_MASK)
        return;
    /* Release: a claim's record follows its claiming CAS; a free's comes
     * before its first clearing AND, and both before the freeing CAS. */
    shmi_atomic_store_release(&r->op[tier],
                              (uint64_t)SHMI_PENDING_TRIM << OP_SHIFT |
                                  (freeing ? FREEING : 0) |
                                  (uint64_t)slots << SLOTS_SHIFT | unit);
    SHMI_PENDING_TEST_POINT(
        freeing ? SHMI_PENDING_AT_TRIM_FREEING : SHMI_PENDING_TRIM, tier);
}

void shmi_pending_begin_realloc(struct shmi_geometry *g, uint64_t x)
{
    struct record *r = thread_record(g, true);
    if (r == NULL)
        return;
    /* Release: after the malloc that returned x (its claiming CAS). */
    shmi_atomic_store_release(&r->moved, MOVED | x);
    SHMI_PENDING_TEST_POINT(SHMI_PENDING_REALLOC, 0);
}

void shmi_pending_end_realloc(struct shmi_geometry *g)
{
    struct record *r = thread_record(g, false);
    if (r != NULL)
        /* Release: cleared after the old chunk's free (its CAS or its
         * push to the thread cache). */
        shmi_atomic_store_release(&r->moved, 0);
}

void shmi_pending_end(struct shmi_geometry *g, unsigned tier)
{
    struct record *r = thread_record(g, false);
    if (r != NULL)
        /* Release: cleared after the activation's step 2 (invariant P). */
        shmi_atomic_store_release(&r->op[tier], 0);
}

/* ---- recovery ----------------------------------------------------------- */

size_t shmi_pending_records(void)
{
    return SHMI_THREAD_RECORDS;
}

uint64_t shmi_pending_owner(const struct shmi_geometry *g, size_t i)
{
    /* Relaxed: a filter; shmi_pending_take decides with a CAS. */
    return shmi_atomic_load_relaxed(&records_of(g)[i].owner);
}

bool shmi_pending_take(struct shmi_geometry *g, size_t i, uint64_t dead,
                       struct shmi_pending_op ops[SHMI_PENDING_MAX_OPS],
                       unsigned *count, uint64_t *cached_bytes)
{
    struct record *r = &records_of(g)[i];
    uint64_t taker = g->record_owner ? g->record_owner : TAKEN;
    uint64_t expected = dead;
    *count = 0;
    *cached_bytes = 0;
    /* Acq_rel: acquire pairs with the dead thread's release stores of its
     * operation words; release orders nothing but is harmless. */
    if (dead == 0 || !shmi_atomic_cas_acq_rel(&r->owner, &expected, taker))
        return false;
    for (unsigned t = 0; t < SHMI_MAX_TIERS; t++) {
        /* Relaxed: after the acquire above, and this taker alone writes
         * the record now. */
        uint64_t word = shmi_atomic_load_relaxed(&r->op[t]);
        if (word == 0)
            continue;
        unsigned op = (unsigned)(word >> OP_SHIFT);
        uint64_t index = word & INDEX_MASK;
        if (op == SHMI_PENDING_TRIM)
            index <<= SHM_MIN_ALLOC_POW2;
        ops[*count] = (struct shmi_pending_op){
            op, t, index, (unsigned)(word >> SLOTS_SHIFT & SLOTS_MASK),
            (word & FREEING) != 0};
        (*count)++;
        shmi_atomic_store_relaxed(&r->op[t], 0);
    }
    /* Relaxed: as the operation words. */
    uint64_t moved = shmi_atomic_load_relaxed(&r->moved);
    if (moved != 0) {
        ops[(*count)++] = (struct shmi_pending_op){SHMI_PENDING_REALLOC, 0,
                                                   moved & ~MOVED, 0, false};
        shmi_atomic_store_relaxed(&r->moved, 0);
    }
    *cached_bytes = before_release(g, i); /* the dead thread's cache */
    /* Release: the cleared words are published before the record is
     * free (pairs with the acquiring CAS of the next taker), and before
     * the caller resolves anything. */
    shmi_atomic_store_release(&r->owner, 0);
    return true;
}

void shmi_pending_clear_others(struct shmi_geometry *g, uint64_t keep)
{
    struct record *r = records_of(g);
    for (size_t i = 0; i < SHMI_THREAD_RECORDS; i++) {
        /* Relaxed: the caller is alone on the file (a reset). */
        if (keep != 0 && shmi_atomic_load_relaxed(&r[i].owner) == keep)
            continue;
        for (unsigned t = 0; t < SHMI_MAX_TIERS; t++)
            shmi_atomic_store_relaxed(&r[i].op[t], 0);
        shmi_atomic_store_relaxed(&r[i].moved, 0);
        shmi_atomic_store_relaxed(&r[i].owner, 0);
    }
}
