/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm_event: auto- and manual-reset events on a futex word in the arena.
 *
 * Layout (32 bytes, 8-byte aligned):
 *
 *     0        8       12      16        20             32
 *     +--------+-------+-------+---------+--------------+
 *     | magic  | flags | state | waiters | reserved     |
 *     +--------+-------+-------+---------+--------------+
 *
 *     state (the futex word):  31                     1   0
 *                              +----------------------+---+
 *                              | generation           |SET|
 *                              +----------------------+---+
 *
 * SET is the event's state. The generation counts broadcasts (and
 * destroys): a waiter remembers it on entry and is released when it
 * changes. `waiters` counts threads between "about to sleep" and "awake";
 * signalers use it only to skip the wake-up system call.
 *
 * Why a futex and not a process-shared condition variable: a condition
 * variable needs a mutex and glibc's keeps per-group reference counts in
 * the object; a waiter killed at the wrong instruction leaves a count that
 * makes later signalers wait for it forever. Here nobody holds anything:
 * every change is one atomic operation on the word, and sleeping is the
 * kernel comparing the word under its own lock.
 *
 * Invariants:
 *  1. A waiter sleeps only in futex_wait(state, s) where s is a value it
 *     loaded with SET clear and its own generation: if the word changed
 *     since (set, broadcast, destroy), the kernel refuses to sleep
 *     (EAGAIN) and the waiter looks again.
 *  2. No lost wake-up: the waiter increments `waiters` (seq_cst) before
 *     futex_wait; a signaler changes `state` (seq_cst) before it loads
 *     `waiters` (seq_cst). If the signaler reads 0, its change precedes
 *     the increment in the single total order, hence precedes the kernel's
 *     comparison, which then fails (invariant 1).
 *  3. Auto-reset: SET is cleared only by the CAS of the waiter it
 *     releases, so one setting releases exactly one waiter; a wake-up that
 *     finds SET already taken goes back to sleep.
 *  4. The generation only grows (modulo 2^31); a waiter is released by a
 *     broadcast only if it loaded the old generation before it, i.e. it
 *     was waiting when the broadcast happened.
 *
 * Progress: signal, broadcast and reset are wait-free (one atomic
 * operation and at most one system call). A waiter waits, by definition.
 *
 * Limits and what a crash leaves: a waiter killed while counted leaves
 * `waiters` one too high forever (signals then make a futile wake-up
 * call; auto-reset broadcasts with nobody else waiting do not set the
 * event). An auto-reset waiter killed after being woken but before its CAS
 * leaves SET for the next waiter while the others keep sleeping until the
 * next signal or their timeout. A generation wrap during one sleep (2^31
 * broadcasts) would hide a broadcast from that sleeper.
 */
#include "shm_sync.h"

#include <errno.h>
#include <stddef.h>

#include "atomics.h"
#include "os.h"
#include "sync_atomics.h"
#include "sync_mutex.h"

#define EVENT_LIVE 0x53484d4556454e54ULL /* "SHMEVENT" */
#define EVENT_DEAD 0x646561646576656eULL

#define EV_SET 1u
#define EV_GENERATION 2u /* one step of the generation */

struct event_impl {
    shmi_atomic_word magic;
    uint32_t flags; /* written before the magic is published */
    shmi_atomic_word32 state;
    shmi_atomic_word32 waiters;
};

_Static_assert(sizeof(struct event_impl) <= sizeof(shm_event),
               "shm_event too small");
_Static_assert(offsetof(struct event_impl, state) % 4 == 0,
               "a futex word must be 4-byte aligned");

static struct event_impl *live(const shm_event *e)
{
    if (e == NULL || ((uintptr_t)e & 7u) != 0)
        return NULL;
    struct event_impl *ev = (struct event_impl *)(void *)e;
    /* acquire: pairs with the release store that ends shm_event_init */
    return shmi_atomic_load_acquire(&ev->magic) == EVENT_LIVE ? ev : NULL;
}

SHM_API int shm_event_init(shm_event *e, unsigned flags)
{
    if (e == NULL || ((uintptr_t)e & 7u) != 0 ||
        (flags & ~(SHM_EVENT_MANUAL_RESET | SHM_EVENT_INITIALLY_SET)) != 0)
        return shmi_sync_result(EINVAL);
    struct event_impl *ev = (struct event_impl *)(void *)e;
    /* relaxed: init may not race with other calls on the object */
    if (shmi_atomic_load_relaxed(&ev->magic) == EVENT_LIVE)
        return shmi_sync_result(EBUSY);
    ev->flags = flags & SHM_EVENT_MANUAL_RESET;
    /* relaxed: published by the release store of the magic below */
    shmi_atomic32_store_relaxed(&ev->state,
                                (flags & SHM_EVENT_INITIALLY_SET) ? EV_SET : 0);
    shmi_atomic32_store_relaxed(&ev->waiters, 0);
    /* release: pairs with the acquire load in live() */
    shmi_atomic_store_release(&ev->magic, EVENT_LIVE);
    return 0;
}

SHM_API int shm_event_destroy(shm_event *e)
{
    struct event_impl *ev = live(e);
    if (ev == NULL)
        return shmi_sync_result(EINVAL);
    /* release: pairs with the acquire load in live() of a woken waiter */
    shmi_atomic_store_release(&ev->magic, EVENT_DEAD);
    /* seq_cst: a new generation after the magic, so that every sleeper
     * wakes (invariant 1) and then sees the magic gone */
    shmi_atomic32_fetch_add_seq_cst(&ev->state, EV_GENERATION);
    shmi_os_futex_wake(&ev->state, INT32_MAX);
    return 0;
}

static int wait_until(shm_event *e, uint64_t deadline)
{
    struct event_impl *ev = live(e);
    if (ev == NULL)
        return shmi_sync_result(EINVAL);
    bool manual = (ev->flags & SHM_EVENT_MANUAL_RESET) != 0;
    /* seq_cst: pairs with the read-modify-writes of signal, broadcast and
     * the CAS of other waiters (invariants 2, 3) */
    uint32_t s = shmi_atomic32_load_seq_cst(&ev->state);
    uint32_t generation = s >> 1;
    for (;;) {
        if (s & EV_SET) {
            if (manual)
                return 0;
            /* seq_cst: the CAS that consumes one setting (invariant 3) */
            if (shmi_atomic32_cas_seq_cst(&ev->state, &s, s & ~EV_SET))
                return 0;
            continue;
        }
        if ((s >> 1) != generation)
            return live(e) ? 0 : shmi_sync_result(EINVAL);
        if (deadline == SHMI_DEADLINE_NOW ||
            (deadline != SHMI_DEADLINE_NEVER &&
             shmi_os_monotonic_ns() >= deadline))
            return shmi_sync_result(ETIMEDOUT);
        /* seq_cst: before the kernel's comparison (invariant 2) */
        shmi_atomic32_fetch_add_seq_cst(&ev->waiters, 1);
        shmi_os_futex_wait(&ev->state, s, deadline);
        /* seq_cst: as the increment */
        shmi_atomic32_fetch_sub_seq_cst(&ev->waiters, 1);
        if (live(e) == NULL) /* destroyed while we slept */
            return shmi_sync_result(EINVAL);
        /* seq_cst: as the first load */
        s = shmi_atomic32_load_seq_cst(&ev->state);
    }
}

SHM_API int shm_event_wait(shm_event *e)
{
    return wait_until(e, SHMI_DEADLINE_NEVER);
}

SHM_API int shm_event_timedwait(shm_event *e, uint64_t timeout_ns)
{
    return wait_until(e, timeout_ns == 0 ? SHMI_DEADLINE_NOW
                                         : shmi_os_deadline_after(timeout_ns));
}

SHM_API int shm_event_signal(shm_event *e)
{
    struct event_impl *ev = live(e);
    if (ev == NULL)
        return shmi_sync_result(EINVAL);
    /* seq_cst: the change of state before the load of waiters
     * (invariant 2); pairs with the waiters' loads and CAS */
    uint32_t old = shmi_atomic32_fetch_or_seq_cst(&ev->state, EV_SET);
    /* seq_cst: pairs with the waiter's increment (invariant 2) */
    if ((old & EV_SET) == 0 && shmi_atomic32_load_seq_cst(&ev->waiters) != 0)
        shmi_os_futex_wake(
            &ev->state, (ev->flags & SHM_EVENT_MANUAL_RESET) ? INT32_MAX : 1);
    return 0;
}

SHM_API int shm_event_broadcast(shm_event *e)
{
    struct event_impl *ev = live(e);
    if (ev == NULL)
        return shmi_sync_result(EINVAL);
    /* seq_cst: pairs with the waiter's increment (invariant 2) */
    if ((ev->flags & SHM_EVENT_MANUAL_RESET) ||
        shmi_atomic32_load_seq_cst(&ev->waiters) == 0)
        return shm_event_signal(e);
    /* seq_cst: a new generation releases everyone waiting (invariant 4) */
    shmi_atomic32_fetch_add_seq_cst(&ev->state, EV_GENERATION);
    shmi_os_futex_wake(&ev->state, INT32_MAX);
    return 0;
}

SHM_API int shm_event_reset(shm_event *e)
{
    struct event_impl *ev = live(e);
    if (ev == NULL)
        return shmi_sync_result(EINVAL);
    /* seq_cst: ordered with the signalers' fetch_or and waiters' CAS */
    shmi_atomic32_fetch_and_seq_cst(&ev->state, ~EV_SET);
    return 0;
}

SHM_API bool shm_event_is_set(const shm_event *e)
{
    struct event_impl *ev = live(e);
    if (ev == NULL) {
        shmi_sync_result(EINVAL);
        return false;
    }
    /* relaxed: a snapshot, ordering nothing */
    return (shmi_atomic32_load_relaxed(&ev->state) & EV_SET) != 0;
}
