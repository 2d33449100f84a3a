/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm_mutex: a robust mutex in the arena, on a futex word of its own.
 *
 * Layout (64 bytes, 8-byte aligned):
 *
 *     0        8        16       24                               64
 *     +--------+--------+--------+--------------------------------+
 *     | magic  | lock   | state  | reserved, 0                    |
 *     +--------+--------+--------+--------------------------------+
 *
 *     lock:  63  62    57 56                          17 16       1  0
 *           +---+--------+-----------------------------+----------+---+
 *           | D |   0    | attachment number (40 bits) |   slot   | W |
 *           +---+--------+-----------------------------+----------+---+
 *
 *     0             FREE
 *     key << 1      HELD by attachment `key`, nobody asleep on the word
 *     key << 1 | W  HELD, and a waiter may be asleep on the word
 *     D             DESTROYED (that bit alone)
 *
 *     state: OWNER_DIED (the holder was told EOWNERDEAD), NOT_RECOVERABLE
 *     (it unlocked without shm_mutex_consistent), ABANDONED (a thread
 *     exited holding the mutex while its process lives on)
 *
 * key is the owner key of an attachment in the arena's process table
 * (process_table.c: slot | attachment number << 16, never 0): the kernel
 * holds a lock for the attachment as long as it is attached and its
 * process lives, and drops it when the process dies, however it dies, so
 * any process can ask the table whether the holder named by the word
 * lives. Attachment numbers are never reused in a file, so a key found
 * dead stays dead. The futex is the low half of the lock word: it holds W
 * and changes with every transition a sleeper must notice.
 *
 * Which thread holds it. Threads of one process lock with the same key
 * (their handle's), so the word names a process; each thread keeps in its
 * own memory the list of the mutexes it holds, with the word it wrote
 * and whether it was told EOWNERDEAD (so that unlock reads no state).
 * Relocking (EDEADLK), unlocking (EPERM for a non-holder) and
 * shm_mutex_consistent consult that list; another thread of the holder's
 * process sees its own key in the word, finds the mutex missing from its
 * list, and waits like anyone else (its process being alive, it never
 * probes). A pthread key destructor releases what an exiting thread still
 * holds, with ABANDONED set, so that the next holder is told EOWNERDEAD as
 * after a dead process. Keeping the thread in the word instead (a second
 * word, or bits of the first) would cost a store and a load on every lock
 * and unlock and would still need the list for the thread's exit.
 *
 * Where the key comes from: the open handle whose mapping holds the mutex
 * (shmi_arena_lock_owner, arena_registry.c; a forked child's copy of its
 * parent's handle takes a late entry of its own there), cached per thread
 * with the registry's generation: the fast path checks the address
 * against the cached mapping and never takes a lock.
 *
 * Transitions:
 *   T1 lock         FREE -> key<<1 (one CAS, acquire)
 *   T2 lock         FREE -> key<<1 | W, by a thread that set W or slept
 *   T3 wait         k<<1 -> k<<1 | W (CAS), then futex_wait on the value
 *   T4 take over    k<<1 [| W] -> key<<1 | W, after the table said k is
 *                   dead (CAS, acquire); the taker gets EOWNERDEAD
 *   T5 unlock       key<<1 -> FREE (CAS, release); the CAS fails when
 *                   W is set: then key<<1 | W -> FREE (exchange,
 *                   release) and FUTEX_WAKE of one thread
 *   T6 destroy      FREE, or k<<1 [| W] with k dead, -> D (CAS); magic
 *                   dead; FUTEX_WAKE of all
 *   T7 thread exit  ABANDONED into state (unless NOT_RECOVERABLE), T5
 *
 * Invariants:
 *  1. Only the holder's process moves HELD(k) anywhere but to HELD(k)|W
 *     (T3), except T4 and T6 after a probe found k dead. Since a dead key
 *     is dead forever, its value in the word can be taken with one CAS
 *     (no ABA): two waiters that find the holder dead at once race for
 *     one CAS, and the loser reads the winner's key and waits on it.
 *  2. A thread sleeps only in futex_wait(low half, v) with W set in v; the
 *     kernel compares the word with v under its own lock, so a word that
 *     changed (T5, T4, T6) before the sleep makes it return at once.
 *  3. Unlock against a waiter registering (T5 against T3): both are
 *     read-modify-writes of the word. If T3 comes first, T5's CAS fails on
 *     W and it exchanges and wakes; if T5 comes first, T3's CAS fails and the
 * waiter looks again. A thread that set W or slept takes the lock by T2,
 * keeping W, since it cannot know whether others still sleep: the wake passes
 * on.
 *  4. Every sleep is bounded by the liveness interval (LIVENESS_FIRST_NS,
 *     doubling to LIVENESS_MAX_NS, from the moment a waiter first sees a
 *     holder): at its end the waiter probes the holder, and takes the
 *     lock over (T4) if it is dead. So a dead holder is found within one
 *     interval, and a wake taken by a waiter that then gave up or died
 *     costs the others at most one interval (a waiter that times out
 *     after sleeping passes a wake on when the word is FREE).
 *  5. state is written only by the holder (the exiting thread in T7, the
 *     taker after T4), before the release of T5 and read after the
 *     acquire of T1, T2 or T4, which order it. NOT_RECOVERABLE stays until
 *     init; an acquirer that finds it releases again (ENOTRECOVERABLE).
 *  6. D is never FREE, so T1 and T2 fail on a destroyed mutex, and a
 *     waiter that reads D returns EINVAL: no thread can acquire a mutex
 *     after its destroy.
 *
 * Progress: blocking; a live holder makes others wait, a dead one (or a
 * thread that exited holding it) for at most one liveness interval. The
 * uncontended lock is one CAS, the unlock one more, no system call.
 * A waiter does not spin before it sleeps: with the holder relocking at
 * once (no hand-over), a spinner mostly steals the holder's cache line
 * (bench/sync_run.sh measured 0, 100 and 1000 spins: 0 was fastest).
 *
 * What a crash leaves:
 *  - a holder killed between T1 and anything else: the word already names
 *    its attachment, and the state is whatever the previous holder left;
 *    the taker sets OWNER_DIED whatever it was (but NOT_RECOVERABLE);
 *  - a holder killed in unlock after writing NOT_RECOVERABLE: the taker
 *    finds it and refuses (ENOTRECOVERABLE); killed after taking the
 *    mutex off its list but before T5: reported as a death although its
 *    data was complete (conservative);
 *  - a waiter killed: perhaps W with nobody asleep (one futile wake), or
 *    a consumed wake (invariant 4);
 *  - a process killed in destroy between T6 and the magic: D with a live
 *    magic; calls return EINVAL and init may make a mutex there again.
 * The protected data is whatever the dead holder left, which is why
 * EOWNERDEAD asks for shm_mutex_consistent.
 *
 * Limits: the takeover relies on the process table. A thread that locks
 * one mutex through two handles of the same file (two mappings) uses two
 * keys and deadlocks itself instead of getting EDEADLK. A handle closed
 * while one of its threads holds a mutex gives the mutex up (its entry
 * is gone: the next locker takes it over with EOWNERDEAD). A thread that
 * ends without running its pthread key destructors (a raw exit system
 * call) holds its mutexes until its process ends.
 */
#include "shm_sync.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "atomics.h"
#include "config.h"
#include "os.h"
#include "sync_atomics.h"
#include "sync_mutex.h"

#define MUTEX_LIVE 0x53484d4d55545832ULL /* "SHMMUTX2" */
#define MUTEX_DEAD 0x646561646d757478ULL

#define LOCK_W 1u
#define LOCK_DESTROYED (UINT64_C(1) << 63)

#define MUTEX_OWNER_DIED 1u
#define MUTEX_NOT_RECOVERABLE 2u
#define MUTEX_ABANDONED 4u

#define LIVENESS_FIRST_NS (UINT64_C(2) * 1000 * 1000)
#define LIVENESS_MAX_NS (UINT64_C(100) * 1000 * 1000)

#define CACHED_OWNERS 4
#define HELD_INLINE 8
#define NOT_HELD UINT32_MAX

struct mutex_impl {
    shmi_atomic_word magic;
    shmi_atomic_word lock;
    shmi_atomic_word state;
    uint64_t reserved[5];
};

_Static_assert(sizeof(struct mutex_impl) == sizeof(shm_mutex),
               "shm_mutex is the size of its implementation");
_Static_assert(_Alignof(struct mutex_impl) <= _Alignof(shm_mutex),
               "shm_mutex is aligned enough for its implementation");

/* A mapping the thread asked shmi_arena_lock_owner about. Empty: base
 * UINTPTR_MAX, which no aligned object matches. */
struct cached_owner {
    uintptr_t base;
    uintptr_t last; /* the last offset a whole mutex may start at */
    uint64_t key;
    shm_arena *arena;
};

/* A mutex the thread holds: the word it wrote (key << 1), | HOLD_TOLD
 * while it holds the mutex after an EOWNERDEAD not yet followed by
 * shm_mutex_consistent (so that unlock knows without reading state). */
struct hold {
    struct mutex_impl *mi;
    uint64_t word;
};

#define HOLD_TOLD 1u

/* Per thread, on the heap (one word of static TLS points to it): the
 * owners it looked up, valid while the registry's generation is the one
 * read before the lookup, and the mutexes it holds. */
struct thread_state {
    struct cached_owner owner[CACHED_OWNERS]; /* [0]: the latest */
    uint64_t generation;
    struct hold *held; /* held_inline, or a larger heap array */
    uint32_t held_count;
    uint32_t held_cap;
    struct hold held_inline[HELD_INLINE];
};

/* initial-exec: read without a call to __tls_get_addr on every lock and
 * unlock (one word of static TLS, as sync_robust.c's token) */
static _Thread_local struct thread_state *me
    __attribute__((tls_model("initial-exec")));
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;
static bool exit_key_made;

static struct mutex_impl *impl_of(shm_mutex *m)
{
    return (struct mutex_impl *)(void *)m;
}

static bool misaligned(const void *p)
{
    return ((uintptr_t)p & 7u) != 0;
}

/* The object when it is a live mutex, NULL otherwise. */
static inline struct mutex_impl *live(shm_mutex *m)
{
    if (m == NULL || misaligned(m))
        return NULL;
    struct mutex_impl *mi = impl_of(m);
    /* acquire: pairs with the release store that ends shm_mutex_init */
    return shmi_atomic_load_acquire(&mi->magic) == MUTEX_LIVE ? mi : NULL;
}

/* The futex: the low half of the lock word. */
static void *futex_of(struct mutex_impl *mi)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (char *)&mi->lock + 4;
#else
    return (void *)&mi->lock;
#endif
}

/* ---- the thread's state --------------------------------------------- */

static void forget_owners(struct thread_state *ts)
{
    for (int i = 0; i < CACHED_OWNERS; i++)
        ts->owner[i] = (struct cached_owner){.base = UINTPTR_MAX};
    ts->generation = UINT64_MAX;
}

/* With the registry's mutex held: T7 for one mutex, if the exiting
 * thread still holds it (its handle was not closed and reopened). */
static void release_abandoned(void *p, void *arg)
{
    struct mutex_impl *mi = p;
    const uint64_t *word = arg;
    /* relaxed: our own hold; T3 may only have added W */
    if ((shmi_atomic_load_relaxed(&mi->lock) >> 1) != (*word >> 1))
        return;
    /* relaxed: ordered by the release exchange below (invariant 5) */
    if (!(shmi_atomic_load_relaxed(&mi->state) & MUTEX_NOT_RECOVERABLE))
        shmi_atomic_store_relaxed(&mi->state, MUTEX_ABANDONED);
    /* release: pairs with the acquiring CAS of the next holder */
    if (shmi_atomic_exchange_release(&mi->lock, 0) & LOCK_W)
        shmi_os_futex_wake(futex_of(mi), 1);
}

/* The pthread key destructor: the thread exits holding what it holds. */
static void thread_exit(void *arg)
{
    struct thread_state *ts = arg;
    while (ts->held_count > 0) {
        struct hold h = ts->held[--ts->held_count];
        /* only while a handle maps it: a closed arena's mutex is gone */
        shmi_arena_while_mapped(h.mi, sizeof *h.mi, release_abandoned, &h.word);
    }
    if (ts->held != ts->held_inline)
        free(ts->held);
    if (me == ts)
        me = NULL; /* a later destructor that locks starts afresh */
    free(ts);
}

/* In the child of a fork, whose one thread holds none of its parent's
 * mutexes (the words name the parent's attachment) and must look its
 * owner up again (the child's handles have other entries). */
static void after_fork_in_child(void)
{
    struct thread_state *ts = me;
    if (ts != NULL) {
        ts->held_count = 0;
        forget_owners(ts);
    }
}

static void setup(void)
{
    exit_key_made = pthread_key_create(&exit_key, thread_exit) == 0;
    pthread_atfork(NULL, NULL, after_fork_in_child);
}

/* The calling thread's state with room for one more hold, or NULL (out
 * of memory). */
static struct thread_state *thread_ready(void)
{
    struct thread_state *ts = me;
    if (ts == NULL) {
        pthread_once(&setup_once, setup);
        if (!exit_key_made || (ts = calloc(1, sizeof *ts)) == NULL)
            return NULL;
        forget_owners(ts);
        ts->held = ts->held_inline;
        ts->held_cap = HELD_INLINE;
        if (pthread_setspecific(exit_key, ts) != 0) {
            free(ts);
            return NULL;
        }
        me = ts;
    }
    if (ts->held_count == ts->held_cap) {
        if (ts->held_cap > UINT32_MAX / 4)
            return NULL;
        struct hold *bigger = malloc((size_t)2 * ts->held_cap * sizeof *bigger);
        if (bigger == NULL)
            return NULL;
        struct hold *old = ts->held;
        memcpy(bigger, old, ts->held_count * sizeof *bigger);
        ts->held = bigger;
        ts->held_cap *= 2;
        if (old != ts->held_inline)
            free(old);
    }
    return ts;
}

/* Where the thread's list has mi, or NOT_HELD. */
static uint32_t hold_of(const struct thread_state *ts,
                        const struct mutex_impl *mi)
{
    if (ts == NULL)
        return NOT_HELD;
    for (uint32_t i = ts->held_count; i-- > 0;)
        if (ts->held[i].mi == mi)
            return i;
    return NOT_HELD;
}

static void hold_drop(struct thread_state *ts, uint32_t i)
{
    /* the usual case, the latest hold, without copying an entry onto
     * itself (a load of the two stores of the lock: no forwarding) */
    if (i != --ts->held_count)
        ts->held[i] = ts->held[ts->held_count];
}

/* The cached owner of the mapping that holds mi, or NULL. */
static inline const struct cached_owner *cached(const struct thread_state *ts,
                                                const struct mutex_impl *mi)
{
    /* relaxed: a handle the thread may use was registered before the
     * thread learnt of it (arena.h) */
    if (ts->generation != shmi_atomic_load_relaxed(&shmi_arena_generation))
        return NULL;
    const struct cached_owner *o = &ts->owner[0];
    return (uintptr_t)mi - o->base <= o->last ? o : NULL;
}

/* The owner for mi, looked up when not cached: 0; EINVAL (no open handle
 * maps it); EPERM (this process cannot lock there). */
static int owner_for(struct thread_state *ts, struct mutex_impl *mi,
                     struct cached_owner *out)
{
    const struct cached_owner *hit = cached(ts, mi);
    if (hit != NULL) {
        *out = *hit;
        return 0;
    }
    /* relaxed: as in cached(); read before the lookup, so that a change
     * during it leaves the cache stale, never wrong */
    uint64_t gen = shmi_atomic_load_relaxed(&shmi_arena_generation);
    int slot = CACHED_OWNERS - 1;
    if (gen != ts->generation) {
        forget_owners(ts);
        ts->generation = gen;
    } else {
        for (int i = 1; i < CACHED_OWNERS; i++)
            if ((uintptr_t)mi - ts->owner[i].base <= ts->owner[i].last) {
                slot = i;
                break;
            }
    }
    struct cached_owner found = ts->owner[slot];
    if ((uintptr_t)mi - found.base > found.last) {
        struct shmi_arena_lock_owner o;
        int err = shmi_arena_lock_owner(mi, sizeof *mi, &o);
        if (err != 0)
            return err;
        found = (struct cached_owner){
            .base = o.base,
            .last = o.size - sizeof *mi,
            .key = o.key,
            .arena = o.arena,
        };
    }
    memmove(&ts->owner[1], &ts->owner[0], (size_t)slot * sizeof found);
    ts->owner[0] = found;
    *out = found;
    return 0;
}

/* ---- lock and unlock ------------------------------------------------ */

/* T5 */
static void release(struct mutex_impl *mi)
{
    /* release: pairs with the acquiring CAS of T1, T2, T4 or T6 */
    if (shmi_atomic_exchange_release(&mi->lock, 0) & LOCK_W)
        shmi_os_futex_wake(futex_of(mi), 1);
}

static int acquired_unusual(struct thread_state *ts, struct mutex_impl *mi,
                            uint64_t word, bool holder_died)
{
    /* relaxed: ordered by the acquire that took the lock (invariant 5) */
    uint64_t s = shmi_atomic_load_relaxed(&mi->state);
    if (s & MUTEX_NOT_RECOVERABLE) {
        release(mi);
        return ENOTRECOVERABLE;
    }
    bool told = holder_died || s != 0;
    /* The analyzer takes the array thread_ready freed for this one; it
     * freed the old one after storing the new. */
    /* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
    ts->held[ts->held_count++] =
        (struct hold){mi, word | (told ? HOLD_TOLD : 0)};
    if (!told)
        return 0;
    /* relaxed: as above */
    shmi_atomic_store_relaxed(&mi->state, MUTEX_OWNER_DIED);
    return EOWNERDEAD;
}

/* After T1, T2 or T4; the caller made room in the list. */
static inline int acquired(struct thread_state *ts, struct mutex_impl *mi,
                           uint64_t word, bool holder_died)
{
    /* relaxed: as in acquired_unusual */
    if (!holder_died && shmi_atomic_load_relaxed(&mi->state) == 0) {
        /* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): as above */
        ts->held[ts->held_count++] = (struct hold){mi, word};
        return 0;
    }
    return acquired_unusual(ts, mi, word, holder_died);
}

/* T1 on a free word, with everything the thread needs at hand; -1 when
 * the slow path must decide. */
static inline int lock_fast(shm_mutex *m)
{
    struct mutex_impl *mi = live(m);
    struct thread_state *ts = me;
    if (mi == NULL || ts == NULL || ts->held_count == ts->held_cap)
        return -1;
    const struct cached_owner *o = cached(ts, mi);
    if (o == NULL)
        return -1;
    uint64_t expected = 0;
    /* acquire: pairs with the release of the last unlock (T5) */
    if (!shmi_atomic_cas_acquire(&mi->lock, &expected, o->key << 1))
        return -1;
    return acquired(ts, mi, o->key << 1, false);
}

/* Whether the attachment `key` holds no lock of the table any more. */
static bool holder_dead(const struct cached_owner *o, uint64_t key)
{
    return key != o->key && !shmi_arena_owner_live(o->arena, key);
}

/* Gives up waiting: passes on a wake this thread may have taken. */
static int give_up(struct mutex_impl *mi, uint64_t take)
{
    /* relaxed: only decides whether to make a spare wake call */
    if ((take & LOCK_W) && shmi_atomic_load_relaxed(&mi->lock) == 0)
        shmi_os_futex_wake(futex_of(mi), 1);
    return ETIMEDOUT;
}

/* The contended path: T2, T3, T4 until the deadline. EBUSY when the
 * deadline is SHMI_DEADLINE_NOW, ETIMEDOUT after another one. */
static int wait_for(struct thread_state *ts, struct mutex_impl *mi,
                    const struct cached_owner *o, uint64_t deadline)
{
    const uint64_t mine = o->key << 1;
    uint64_t take = mine; /* | W once this thread set W or slept */
    uint64_t holder = 0;  /* the key the liveness timer runs for */
    uint64_t interval = 0, probe_at = 0;
    for (;;) {
        /* relaxed: every decision below is taken by a CAS on the word,
         * or by the kernel's comparison (invariant 2) */
        uint64_t w = shmi_atomic_load_relaxed(&mi->lock);
        if (w == 0) {
            SHMI_TEST_YIELD();
            /* acquire: pairs with the release of T5 */
            if (shmi_atomic_cas_acquire(&mi->lock, &w, take))
                return acquired(ts, mi, mine, false);
            continue;
        }
        if (w & LOCK_DESTROYED)
            return EINVAL;
        uint64_t key = w >> 1;
        if (deadline == SHMI_DEADLINE_NOW) {
            if (!holder_dead(o, key))
                return EBUSY;
            SHMI_TEST_YIELD();
            /* acquire: the dead holder's stores precede its death, which
             * the probe's system call saw (T4) */
            if (shmi_atomic_cas_acquire(&mi->lock, &w, mine | (w & LOCK_W)))
                return acquired(ts, mi, mine, true);
            continue;
        }
        uint64_t now = shmi_os_monotonic_ns();
        if (key != holder) {
            holder = key;
            interval = LIVENESS_FIRST_NS;
            probe_at = now + interval;
        }
        if (now >= deadline)
            return give_up(mi, take);
        if (now >= probe_at) {
            if (holder_dead(o, key)) {
                SHMI_TEST_YIELD();
                /* acquire: as in the trylock's takeover above */
                if (shmi_atomic_cas_acquire(&mi->lock, &w, mine | LOCK_W))
                    return acquired(ts, mi, mine, true);
                continue;
            }
            interval = interval >= LIVENESS_MAX_NS / 2 ? LIVENESS_MAX_NS
                                                       : 2 * interval;
            probe_at = now + interval;
        }
        if (!(w & LOCK_W)) {
            uint64_t expected = w;
            /* relaxed: W carries no data; the kernel's comparison orders
             * the sleep (invariant 2), and fails the unlock's CAS */
            if (!shmi_atomic_cas_relaxed(&mi->lock, &expected, w | LOCK_W))
                continue;
            w |= LOCK_W;
        }
        take = mine | LOCK_W;
        shmi_os_futex_wait(futex_of(mi), (uint32_t)w,
                           probe_at < deadline ? probe_at : deadline);
    }
}

/* Every lock call once the fast path declined. */
static int lock_until(shm_mutex *m, uint64_t deadline)
{
    struct mutex_impl *mi = live(m);
    if (mi == NULL)
        return EINVAL;
    struct thread_state *ts = thread_ready();
    if (ts == NULL)
        return ENOMEM;
    struct cached_owner o;
    int err = owner_for(ts, mi, &o);
    if (err != 0)
        return err;
    if (hold_of(ts, mi) != NOT_HELD)
        return EDEADLK;
    /* relaxed: an early refusal; acquired() checks again (invariant 5) */
    if (shmi_atomic_load_relaxed(&mi->state) & MUTEX_NOT_RECOVERABLE)
        return ENOTRECOVERABLE;
    return wait_for(ts, mi, &o, deadline);
}

SHM_API int shm_mutex_lock(shm_mutex *m)
{
    int r = lock_fast(m);
    if (r == 0)
        return 0;
    return shmi_sync_result(r > 0 ? r : lock_until(m, SHMI_DEADLINE_NEVER));
}

SHM_API int shm_mutex_trylock(shm_mutex *m)
{
    int r = lock_fast(m);
    if (r == 0)
        return 0;
    return shmi_sync_result(r > 0 ? r : lock_until(m, SHMI_DEADLINE_NOW));
}

SHM_API int shm_mutex_timedlock(shm_mutex *m, uint64_t timeout_ns)
{
    int r = lock_fast(m);
    if (r == 0)
        return 0;
    if (r < 0) {
        uint64_t deadline = timeout_ns == 0
                                ? SHMI_DEADLINE_NOW
                                : shmi_os_deadline_after(timeout_ns);
        r = lock_until(m, deadline);
    }
    return shmi_sync_result(r == EBUSY ? ETIMEDOUT : r);
}

SHM_API int shm_mutex_unlock(shm_mutex *m)
{
    struct mutex_impl *mi = live(m);
    if (mi == NULL)
        return shmi_sync_result(EINVAL);
    struct thread_state *ts = me;
    if (ts == NULL)
        return shmi_sync_result(EPERM); /* holds nothing */
    uint32_t i = ts->held_count > 0 && ts->held[ts->held_count - 1].mi == mi
                     ? ts->held_count - 1
                     : hold_of(ts, mi);
    if (i == NOT_HELD)
        return shmi_sync_result(EPERM);
    uint64_t word = ts->held[i].word;
    hold_drop(ts, i);
    if (word & HOLD_TOLD)
        /* relaxed: ordered by the release of T5 below (invariant 5) */
        shmi_atomic_store_relaxed(&mi->state, MUTEX_NOT_RECOVERABLE);
    uint64_t expected = word & ~(uint64_t)HOLD_TOLD;
    /* release: pairs with the acquiring CAS of T1, T2, T4 or T6 (T5 for
     * a word without W: no wake) */
    if (shmi_atomic_cas_release(&mi->lock, &expected, 0))
        return 0;
    /* W was set (T3), or the hold was taken over: another key means this
     * process's handle was closed meanwhile and its entry is gone */
    if ((expected >> 1) != (word >> 1))
        return shmi_sync_result(EPERM);
    release(mi);
    return 0;
}

SHM_API int shm_mutex_consistent(shm_mutex *m)
{
    struct mutex_impl *mi = live(m);
    uint32_t i = mi != NULL ? hold_of(me, mi) : NOT_HELD;
    if (i == NOT_HELD || !(me->held[i].word & HOLD_TOLD))
        return shmi_sync_result(EINVAL);
    me->held[i].word &= ~(uint64_t)HOLD_TOLD;
    /* relaxed: state is the holder's (invariant 5) */
    shmi_atomic_store_relaxed(&mi->state, 0);
    return 0;
}

/* ---- init and destroy ----------------------------------------------- */

SHM_API int shm_mutex_init(shm_mutex *m)
{
    if (m == NULL || misaligned(m))
        return shmi_sync_result(EINVAL);
    struct mutex_impl *mi = impl_of(m);
    struct shmi_arena_lock_owner o;
    int err = shmi_arena_lock_owner(mi, sizeof *mi, &o);
    if (err != 0)
        return shmi_sync_result(err);
    /* relaxed: init may not race with other calls on the object; this only
     * catches a second init of a live mutex (a destroy killed after T6
     * left D under a live magic: not live) */
    if (shmi_atomic_load_relaxed(&mi->magic) == MUTEX_LIVE &&
        shmi_atomic_load_relaxed(&mi->lock) != LOCK_DESTROYED)
        return shmi_sync_result(EBUSY);
    /* relaxed: published by the release store of the magic */
    shmi_atomic_store_relaxed(&mi->lock, 0);
    shmi_atomic_store_relaxed(&mi->state, 0);
    memset(mi->reserved, 0, sizeof mi->reserved);
    /* release: pairs with the acquire load in live() */
    shmi_atomic_store_release(&mi->magic, MUTEX_LIVE);
    return 0;
}

SHM_API int shm_mutex_destroy(shm_mutex *m)
{
    struct mutex_impl *mi = live(m);
    if (mi == NULL)
        return shmi_sync_result(EINVAL);
    struct shmi_arena_lock_owner lo;
    int err = shmi_arena_lock_owner(mi, sizeof *mi, &lo);
    if (err != 0)
        return shmi_sync_result(err);
    if (hold_of(me, mi) != NOT_HELD)
        return shmi_sync_result(EBUSY);
    struct cached_owner o = {.key = lo.key, .arena = lo.arena};
    /* relaxed: the CAS below decides */
    uint64_t w = shmi_atomic_load_relaxed(&mi->lock);
    for (;;) {
        if (w & LOCK_DESTROYED)
            return shmi_sync_result(EINVAL);
        if (w != 0 && !holder_dead(&o, w >> 1))
            return shmi_sync_result(EBUSY);
        /* acquire: as a lock (T1 or T4); pairs with the last release */
        if (shmi_atomic_cas_acquire(&mi->lock, &w, LOCK_DESTROYED))
            break;
    }
    /* release: pairs with the acquire load in live() */
    shmi_atomic_store_release(&mi->magic, MUTEX_DEAD);
    shmi_os_futex_wake(futex_of(mi), INT32_MAX); /* invariant 6 */
    return 0;
}
