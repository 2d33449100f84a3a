/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm_rwlock: a robust reader-writer lock in the arena.
 *
 * Bounds: at most SHM_RWLOCK_READERS (16) shared holds at once; a 17th
 * reader waits for a place. Fairness: writer preference. A writer takes
 * the gate, raises WRITER, then takes every reader place in turn; readers
 * that arrive while WRITER is up leave their place and queue on the gate.
 * So a writer waits only for the readers already inside, and readers
 * cannot starve writers; between writers, the gate goes to whichever
 * waiter the kernel wakes (readers pass through it at once).
 *
 * Layout (1024 bytes, 8-byte aligned):
 *
 *     0      8      16      24     32                  128
 *     +------+------+-------+------+-------------------+---------------+
 *     |magic |state |writer | rsvd | gate (robust mtx) | places[16]    |
 *     +------+------+-------+------+-------------------+---------------+
 *     place: robust pthread mutex (40 bytes) + owner token (8 bytes)
 *
 *     state:  63                                      2   1    0
 *             +---------------------------------------+---+----+---+
 *             | 0                                     |NR |INC |WR |
 *             +---------------------------------------+---+----+---+
 *     WR  a writer holds the gate and owns (or is taking) every place
 *     INC a death was seen that nobody has yet been told of, or the
 *         holder told of it has not called shm_rwlock_consistent
 *     NR  not recoverable: a holder told of a death unlocked without
 *         marking it consistent
 *
 * Every hold is a robust mutex held by the holding thread: a shared hold
 * is one place, an exclusive hold is the gate plus all places. Liveness is
 * the kernel's: a thread that dies holding a place or the gate has its
 * robust futexes marked FUTEX_OWNER_DIED, and the next thread to lock one
 * gets EOWNERDEAD. No process id is used anywhere. The owner token of a
 * place is the per-thread random value of shmi_sync_token() that lets
 * unlock find its place without asking glibc who owns it.
 *
 * Invariants:
 *  1. Mutual exclusion comes from the place mutexes alone: an exclusive
 *     holder owns all of them, a shared holder one. WR only steers
 *     readers away (preference); its races cannot break exclusion.
 *  2. WR is set and cleared only by the gate's holder, so a thread that
 *     locks the gate with 0 sees WR clear, and one that locks it with
 *     EOWNERDEAD and sees WR set knows that a writer died inside.
 *  3. A reader publishes its place (the place's lock, then a seq_cst
 *     fence) before it loads state (seq_cst); the writer raises WR
 *     (seq_cst) before locking places. So a reader either sees WR and
 *     leaves, or holds a place that the writer then waits for.
 *  4. INC is raised by whoever meets a dead holder and cleared only by
 *     shm_rwlock_consistent of an exclusive holder; the writer checks it
 *     after owning every place, when nobody else can raise it.
 *  5. Whoever meets a dead writer through the gate becomes the exclusive
 *     holder and is told (EOWNERDEAD), even from rdlock: repairing data a
 *     writer left half-written needs exclusive access.
 *
 * Progress: blocking. Readers do not wait for readers (up to the bound);
 * writers wait for readers inside and for one another. A dead holder
 * never blocks anyone: its mutexes pass on with EOWNERDEAD.
 *
 * What a crash leaves: a dead reader's place (found by the next thread to
 * lock it; INC tells the next writer), a dead writer's gate and places
 * (found by the next to lock the gate). A holder killed after clearing WR
 * in unlock but before releasing the gate or its places is reported too
 * (conservatively: its data was complete). Limit: two threads with equal
 * tokens (chance 2^-64) would confuse a shared unlock; glibc's owner check
 * then refuses the wrong place (EPERM) and unlock goes on looking.
 */
#include "shm_sync.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>

#include "atomics.h"
#include "os.h"
#include "sync_mutex.h"

#define RW_LIVE 0x53484d52574c434bULL /* "SHMRWLCK" */
#define RW_DEAD 0x6465616472776c6bULL

#define RW_WRITER 1u
#define RW_INCONSISTENT 2u
#define RW_NOT_RECOVERABLE 4u

struct place {
    pthread_mutex_t pm;
    shmi_atomic_word owner; /* token of the holder, 0 when free */
};

struct rwlock_impl {
    shmi_atomic_word magic;
    shmi_atomic_word state;
    shmi_atomic_word writer; /* token of the exclusive holder, 0 */
    uint64_t reserved;
    pthread_mutex_t gate;
    unsigned char pad[128 - 32 - sizeof(pthread_mutex_t)];
    struct place places[SHM_RWLOCK_READERS];
};

_Static_assert(sizeof(struct rwlock_impl) <= sizeof(shm_rwlock),
               "shm_rwlock too small");

/* ---- helpers -------------------------------------------------------- */

static struct rwlock_impl *live(shm_rwlock *rw)
{
    if (rw == NULL || ((uintptr_t)rw & 7u) != 0)
        return NULL;
    struct rwlock_impl *ri = (struct rwlock_impl *)(void *)rw;
    /* acquire: pairs with the release store that ends shm_rwlock_init */
    return shmi_atomic_load_acquire(&ri->magic) == RW_LIVE ? ri : NULL;
}

static bool holds_exclusive(struct rwlock_impl *ri, uint64_t me)
{
    /* relaxed: only this thread can have written its own token there, and
     * it did so before (program order) */
    return (shmi_atomic_load_relaxed(&ri->state) & RW_WRITER) &&
           shmi_atomic_load_relaxed(&ri->writer) == me;
}

static bool holds_shared(struct rwlock_impl *ri, uint64_t me)
{
    for (int i = 0; i < SHM_RWLOCK_READERS; i++)
        /* relaxed: as in holds_exclusive */
        if (shmi_atomic_load_relaxed(&ri->places[i].owner) == me)
            return true;
    return false;
}

/* Locks a place by the deadline; a dead holder's place is taken over and
 * the death recorded in INC (invariant 4). 0, EBUSY, ETIMEDOUT, EDEADLK. */
static int lock_place(struct rwlock_impl *ri, int i, uint64_t deadline)
{
    int r = shmi_robust_lock(&ri->places[i].pm, deadline);
    if (r == EOWNERDEAD) {
        pthread_mutex_consistent(&ri->places[i].pm);
        /* seq_cst: read by the writer after it owns every place */
        shmi_atomic_fetch_or_seq_cst(&ri->state, RW_INCONSISTENT);
        r = 0;
    }
    return r;
}

/* Called holding the gate: raises WR and takes every place. On failure
 * gives back what it took, the gate included. */
static int take_places(struct rwlock_impl *ri, uint64_t me, uint64_t deadline,
                       bool writer_died)
{
    /* seq_cst: before locking the places (invariant 3); pairs with the
     * readers' seq_cst load of state */
    shmi_atomic_fetch_or_seq_cst(&ri->state, RW_WRITER);
    shmi_atomic_store_relaxed(&ri->writer, me); /* read by this thread */
    int i = 0;
    int r = 0;
    for (; i < SHM_RWLOCK_READERS; i++) {
        r = lock_place(ri, i, deadline);
        if (r != 0)
            break;
        /* relaxed: a dead reader's token must not look like a holder */
        shmi_atomic_store_relaxed(&ri->places[i].owner, 0);
    }
    if (r != 0) {
        shmi_atomic_store_relaxed(&ri->writer, 0);
        /* seq_cst: readers queued on the gate look again after it */
        shmi_atomic_fetch_and_seq_cst(&ri->state, ~(uint64_t)RW_WRITER);
        while (i-- > 0)
            pthread_mutex_unlock(&ri->places[i].pm);
        pthread_mutex_unlock(&ri->gate);
        return r == EBUSY ? EBUSY : r;
    }
    if (writer_died)
        /* seq_cst: as in lock_place */
        shmi_atomic_fetch_or_seq_cst(&ri->state, RW_INCONSISTENT);
    /* seq_cst: nobody else can raise INC now (invariant 4) */
    uint64_t s = shmi_atomic_load_seq_cst(&ri->state);
    if (s & RW_NOT_RECOVERABLE) {
        shmi_atomic_store_relaxed(&ri->writer, 0);
        shmi_atomic_fetch_and_seq_cst(&ri->state, ~(uint64_t)RW_WRITER);
        for (i = 0; i < SHM_RWLOCK_READERS; i++)
            pthread_mutex_unlock(&ri->places[i].pm);
        pthread_mutex_unlock(&ri->gate);
        return ENOTRECOVERABLE;
    }
    return (s & RW_INCONSISTENT) ? EOWNERDEAD : 0;
}

/* Locks the gate: 0, EOWNERDEAD-with-a-dead-writer as *writer_died, or
 * the error. */
static int lock_gate(struct rwlock_impl *ri, uint64_t deadline,
                     bool *writer_died)
{
    int r = shmi_robust_lock(&ri->gate, deadline);
    *writer_died = false;
    if (r == EOWNERDEAD) {
        pthread_mutex_consistent(&ri->gate);
        /* seq_cst: WR is written only under the gate (invariant 2) */
        *writer_died = (shmi_atomic_load_seq_cst(&ri->state) & RW_WRITER) != 0;
        r = 0;
    }
    return r;
}

static int wrlock_until(shm_rwlock *rw, uint64_t deadline)
{
    struct rwlock_impl *ri = live(rw);
    if (ri == NULL)
        return EINVAL;
    uint64_t me = shmi_sync_token();
    if (holds_exclusive(ri, me) || holds_shared(ri, me))
        return EDEADLK;
    /* relaxed: an early refusal; take_places checks again */
    if (shmi_atomic_load_relaxed(&ri->state) & RW_NOT_RECOVERABLE)
        return ENOTRECOVERABLE;
    bool writer_died;
    int r = lock_gate(ri, deadline, &writer_died);
    if (r != 0)
        return r;
    return take_places(ri, me, deadline, writer_died);
}

static int rdlock_until(shm_rwlock *rw, uint64_t deadline)
{
    struct rwlock_impl *ri = live(rw);
    if (ri == NULL)
        return EINVAL;
    uint64_t me = shmi_sync_token();
    if (holds_exclusive(ri, me))
        return EDEADLK;
    int start = (int)(me % SHM_RWLOCK_READERS);
    for (;;) {
        /* relaxed: an early refusal, checked again below */
        if (shmi_atomic_load_relaxed(&ri->state) & RW_NOT_RECOVERABLE)
            return ENOTRECOVERABLE;
        int got = -1;
        int own = 0;
        for (int k = 0; k < SHM_RWLOCK_READERS && got < 0; k++) {
            int i = (start + k) % SHM_RWLOCK_READERS;
            int r = lock_place(ri, i, SHMI_DEADLINE_NOW);
            if (r == 0)
                got = i;
            else if (r == EDEADLK)
                own++;
        }
        if (got < 0) {
            if (own == SHM_RWLOCK_READERS)
                return EAGAIN;
            /* seq_cst: pairs with the writer's raising of WR */
            if (!(shmi_atomic_load_seq_cst(&ri->state) & RW_WRITER)) {
                /* all places taken by readers: wait for one */
                int i = start;
                /* relaxed: our own token, written by us */
                while (shmi_atomic_load_relaxed(&ri->places[i].owner) == me)
                    i = (i + 1) % SHM_RWLOCK_READERS;
                int r = lock_place(ri, i, deadline);
                if (r != 0)
                    return r == EBUSY ? EBUSY : r;
                got = i;
            }
        }
        if (got >= 0) {
            /* relaxed: read only by this thread (unlock) */
            shmi_atomic_store_relaxed(&ri->places[got].owner, me);
            /* seq_cst fence: our place before our load of state
             * (invariant 3) */
            atomic_thread_fence(memory_order_seq_cst);
            /* seq_cst: pairs with the writer's raising of WR */
            uint64_t s = shmi_atomic_load_seq_cst(&ri->state);
            if (!(s & (RW_WRITER | RW_NOT_RECOVERABLE)))
                return 0;
            shmi_atomic_store_relaxed(&ri->places[got].owner, 0);
            pthread_mutex_unlock(&ri->places[got].pm);
            if (s & RW_NOT_RECOVERABLE)
                return ENOTRECOVERABLE;
        }
        /* a writer is in: queue on the gate behind it */
        bool writer_died;
        int r = lock_gate(ri, deadline, &writer_died);
        if (r != 0)
            return r;
        if (writer_died) /* invariant 5 */
            return take_places(ri, me, deadline, true);
        pthread_mutex_unlock(&ri->gate);
    }
}

static uint64_t deadline_of(uint64_t timeout_ns)
{
    return timeout_ns == 0 ? SHMI_DEADLINE_NOW
                           : shmi_os_deadline_after(timeout_ns);
}

static int timed(int r)
{
    return shmi_sync_result(r == EBUSY ? ETIMEDOUT : r);
}

/* ---- the API -------------------------------------------------------- */

SHM_API int shm_rwlock_init(shm_rwlock *rw)
{
    if (rw == NULL || ((uintptr_t)rw & 7u) != 0)
        return shmi_sync_result(EINVAL);
    struct rwlock_impl *ri = (struct rwlock_impl *)(void *)rw;
    /* relaxed: init may not race with other calls on the object */
    if (shmi_atomic_load_relaxed(&ri->magic) == RW_LIVE)
        return shmi_sync_result(EBUSY);
    int r = shmi_robust_init(&ri->gate, true);
    for (int i = 0; r == 0 && i < SHM_RWLOCK_READERS; i++) {
        r = shmi_robust_init(&ri->places[i].pm, true);
        /* relaxed: published by the release store of the magic */
        shmi_atomic_store_relaxed(&ri->places[i].owner, 0);
    }
    if (r != 0)
        return shmi_sync_result(r);
    shmi_atomic_store_relaxed(&ri->state, 0);
    shmi_atomic_store_relaxed(&ri->writer, 0);
    /* release: pairs with the acquire load in live() */
    shmi_atomic_store_release(&ri->magic, RW_LIVE);
    return 0;
}

SHM_API int shm_rwlock_destroy(shm_rwlock *rw)
{
    struct rwlock_impl *ri = live(rw);
    if (ri == NULL)
        return shmi_sync_result(EINVAL);
    int r = wrlock_until(rw, SHMI_DEADLINE_NOW);
    if (r == EDEADLK || r == EBUSY)
        return shmi_sync_result(EBUSY);
    /* release: later calls see the object gone */
    shmi_atomic_store_release(&ri->magic, RW_DEAD);
    if (r == 0 || r == EOWNERDEAD) {
        shmi_atomic_store_relaxed(&ri->writer, 0);
        shmi_atomic_store_relaxed(&ri->state, 0);
        for (int i = 0; i < SHM_RWLOCK_READERS; i++)
            pthread_mutex_unlock(&ri->places[i].pm);
        pthread_mutex_unlock(&ri->gate);
    }
    return 0;
}

SHM_API int shm_rwlock_rdlock(shm_rwlock *rw)
{
    return shmi_sync_result(rdlock_until(rw, SHMI_DEADLINE_NEVER));
}

SHM_API int shm_rwlock_tryrdlock(shm_rwlock *rw)
{
    return shmi_sync_result(rdlock_until(rw, SHMI_DEADLINE_NOW));
}

SHM_API int shm_rwlock_timedrdlock(shm_rwlock *rw, uint64_t timeout_ns)
{
    return timed(rdlock_until(rw, deadline_of(timeout_ns)));
}

SHM_API int shm_rwlock_wrlock(shm_rwlock *rw)
{
    return shmi_sync_result(wrlock_until(rw, SHMI_DEADLINE_NEVER));
}

SHM_API int shm_rwlock_trywrlock(shm_rwlock *rw)
{
    return shmi_sync_result(wrlock_until(rw, SHMI_DEADLINE_NOW));
}

SHM_API int shm_rwlock_timedwrlock(shm_rwlock *rw, uint64_t timeout_ns)
{
    return timed(wrlock_until(rw, deadline_of(timeout_ns)));
}

SHM_API int shm_rwlock_unlock(shm_rwlock *rw)
{
    struct rwlock_impl *ri = live(rw);
    if (ri == NULL)
        return shmi_sync_result(EINVAL);
    uint64_t me = shmi_sync_token();
    if (holds_exclusive(ri, me)) {
        shmi_atomic_store_relaxed(&ri->writer, 0);
        /* seq_cst: WR down before the places go (readers then stay);
         * INC still up means the holder told of a death did not repair */
        uint64_t s = shmi_atomic_load_seq_cst(&ri->state);
        if (s & RW_INCONSISTENT)
            shmi_atomic_fetch_or_seq_cst(&ri->state, RW_NOT_RECOVERABLE);
        shmi_atomic_fetch_and_seq_cst(&ri->state, ~(uint64_t)RW_WRITER);
        for (int i = 0; i < SHM_RWLOCK_READERS; i++)
            pthread_mutex_unlock(&ri->places[i].pm);
        pthread_mutex_unlock(&ri->gate);
        return 0;
    }
    for (int i = 0; i < SHM_RWLOCK_READERS; i++) {
        struct place *p = &ri->places[i];
        /* relaxed: our own token, written by this thread */
        if (shmi_atomic_load_relaxed(&p->owner) != me)
            continue;
        shmi_atomic_store_relaxed(&p->owner, 0);
        if (pthread_mutex_unlock(&p->pm) == 0)
            return 0;
        shmi_atomic_store_relaxed(&p->owner, me); /* not ours after all */
    }
    return shmi_sync_result(EPERM);
}

SHM_API int shm_rwlock_consistent(shm_rwlock *rw)
{
    struct rwlock_impl *ri = live(rw);
    if (ri == NULL || !holds_exclusive(ri, shmi_sync_token()))
        return shmi_sync_result(EINVAL);
    /* seq_cst: as every change of state */
    uint64_t old =
        shmi_atomic_fetch_and_seq_cst(&ri->state, ~(uint64_t)RW_INCONSISTENT);
    return (old & RW_INCONSISTENT) ? 0 : shmi_sync_result(EINVAL);
}
