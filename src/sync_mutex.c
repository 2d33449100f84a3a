/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm_mutex: a robust mutex in the arena.
 *
 * Layout (64 bytes, 8-byte aligned; offsets in bytes):
 *
 *     0        8                                        48      56      64
 *     +--------+----------------------------------------+-------+-------+
 *     | magic  | pthread_mutex_t (robust, normal kind,  | state | owner |
 *     |        | process-shared; 40 bytes in glibc)     |       |       |
 *     +--------+----------------------------------------+-------+-------+
 *
 *     state:  bit 0 OWNER_DIED (the holder was told EOWNERDEAD),
 *             bit 1 NOT_RECOVERABLE (it unlocked without repairing)
 *     owner:  shmi_sync_token() of the holding thread (0: none), so that
 *             an unlock by a non-holder is refused without handing glibc
 *             a mutex the thread does not hold
 *
 * The lock word is glibc's: a 32-bit futex holding the owner's thread id
 * (as the kernel's robust-futex protocol defines it) plus FUTEX_WAITERS
 * and FUTEX_OWNER_DIED. Every thread registers its list of held robust
 * mutexes with the kernel (set_robust_list); when a thread exits for any
 * reason the kernel walks that list, sets FUTEX_OWNER_DIED in each word
 * and wakes one waiter. That is the liveness source: the kernel vouches
 * for it, no process id is stored or compared by this library, so pid
 * reuse and pid namespaces cannot fool it. Our own robust-list-compatible
 * futex word was considered and rejected: a thread has one robust list,
 * glibc owns it, and every entry must share glibc's layout.
 *
 * Invariants:
 *  1. magic == MUTEX_LIVE exactly between the end of shm_mutex_init and
 *     the start of shm_mutex_destroy; it is published with a release store
 *     after pthread_mutex_init, and every call loads it with acquire first,
 *     so a call that sees it live sees an initialised pthread mutex.
 *  2. destroy flips magic only while holding the lock, so a thread that
 *     was blocked in lock and acquires after a destroy sees magic dead
 *     (the unlock/lock pair orders it) and backs out with EINVAL.
 *  3. state mirrors glibc's owner-died and not-recoverable states and is
 *     written only by the holder. Calls refuse a not-recoverable mutex
 *     from it without calling glibc: glibc 2.36's trylock of a
 *     not-recoverable robust mutex leaves the lock word owned by the
 *     caller (the release is keyed on the old value, which was 0), and
 *     every later lock by that thread then reports EDEADLK.
 *  4. pthread_mutex_destroy is never called: on Linux it releases nothing,
 *     and skipping it keeps a straggler that reaches the word after a
 *     destroy on defined ground (an initialised mutex that it unlocks).
 *
 * Progress: a blocking lock, not lock-free; a holder that dies releases it
 * (EOWNERDEAD to the next locker), so only a live holder can make others
 * wait. Timed and try forms bound the wait.
 *
 * What a crash leaves: a holder killed anywhere, including inside glibc's
 * lock or unlock (list_op_pending covers the window), is seen by the
 * kernel. A process killed inside shm_mutex_init leaves magic not live
 * (init may be called again). The protected data is whatever the dead
 * holder left, which is why EOWNERDEAD asks for shm_mutex_consistent.
 */
#include "shm_sync.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <time.h>

#include "atomics.h"
#include "os.h"
#include "sync_mutex.h"

#if defined(__SANITIZE_THREAD__)
#define THREAD_SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define THREAD_SANITIZER_BUILD 1
#endif
#endif

#define MUTEX_LIVE 0x53484d4d55544558ULL /* "SHMMUTEX" */
#define MUTEX_DEAD 0x646561646d757478ULL

#define MUTEX_OWNER_DIED 1u      /* the holder was told EOWNERDEAD */
#define MUTEX_NOT_RECOVERABLE 2u /* ... and unlocked without repair */

struct mutex_impl {
    shmi_atomic_word magic;
    pthread_mutex_t pm;
    shmi_atomic_word state;
    shmi_atomic_word owner;
};

_Static_assert(sizeof(struct mutex_impl) <= sizeof(shm_mutex),
               "shm_mutex is too small for this C library's mutex");
_Static_assert(_Alignof(struct mutex_impl) <= _Alignof(shm_mutex),
               "shm_mutex is not aligned enough for this C library's mutex");

/* initial-exec: read without a call to __tls_get_addr on every lock and
 * unlock (the library is linked, not dlopen'ed late, in the usual case;
 * one word of static TLS) */
static _Thread_local uint64_t my_token
    __attribute__((tls_model("initial-exec")));
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void forget_token(void)
{
    my_token = 0; /* the child's thread draws a new one */
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, forget_token);
}

uint64_t shmi_sync_token(void)
{
    if (my_token == 0) {
        pthread_once(&atfork_once, register_atfork);
        uint64_t t = shmi_os_seed() ^ (uint64_t)(uintptr_t)&my_token;
        my_token = (t * 0x9E3779B97F4A7C15ULL) | 1; /* never 0 */
    }
    return my_token;
}

int shmi_robust_init(pthread_mutex_t *pm, bool error_check)
{
    pthread_mutexattr_t attr;
    int r = pthread_mutexattr_init(&attr);
    if (r != 0)
        return r;
    r = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (r == 0)
        r = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    if (r == 0)
        r = pthread_mutexattr_settype(&attr, error_check
                                                 ? PTHREAD_MUTEX_ERRORCHECK
                                                 : PTHREAD_MUTEX_NORMAL);
    if (r == 0)
        r = pthread_mutex_init(pm, &attr);
    pthread_mutexattr_destroy(&attr);
    return r;
}

int shmi_robust_lock(pthread_mutex_t *pm, uint64_t deadline)
{
    if (deadline == SHMI_DEADLINE_NEVER)
        return pthread_mutex_lock(pm);
    if (deadline == SHMI_DEADLINE_NOW)
        return pthread_mutex_trylock(pm);
    struct timespec ts;
#ifdef THREAD_SANITIZER_BUILD
    /* ThreadSanitizer (GCC 12) does not intercept pthread_mutex_clocklock,
     * and its pthread_mutex_timedlock does not count EOWNERDEAD as
     * locked; it would then report the unlock of a mutex it never saw
     * locked. Its builds poll trylock instead, which it fully knows. */
    (void)ts;
    for (;;) {
        int r = pthread_mutex_trylock(pm);
        if (r != EBUSY)
            return r;
        if (shmi_os_monotonic_ns() >= deadline)
            return ETIMEDOUT;
        struct timespec pause = {0, 100 * 1000};
        nanosleep(&pause, NULL);
    }
#else
    shmi_os_timespec_of(deadline, &ts);
    return pthread_mutex_clocklock(pm, CLOCK_MONOTONIC, &ts);
#endif
}

static struct mutex_impl *impl_of(shm_mutex *m)
{
    return (struct mutex_impl *)(void *)m;
}

static bool misaligned(const void *p)
{
    return ((uintptr_t)p & 7u) != 0;
}

static bool not_recoverable(struct mutex_impl *mi)
{
    /* acquire: pairs with the release store in shm_mutex_unlock */
    return (shmi_atomic_load_acquire(&mi->state) & MUTEX_NOT_RECOVERABLE) != 0;
}

/* Whether the calling thread holds the mutex: owner is written by holders
 * only, so it holds our token exactly when we wrote it and still hold. */
static bool held_by_caller(struct mutex_impl *mi)
{
    /* relaxed: see above; a stale value is never our token */
    return shmi_atomic_load_relaxed(&mi->owner) == shmi_sync_token();
}

/* The object when it is a live mutex, NULL otherwise. */
static struct mutex_impl *live(shm_mutex *m)
{
    if (m == NULL || misaligned(m))
        return NULL;
    struct mutex_impl *mi = impl_of(m);
    /* acquire: pairs with the release store that ends shm_mutex_init */
    return shmi_atomic_load_acquire(&mi->magic) == MUTEX_LIVE ? mi : NULL;
}

SHM_API int shm_mutex_init(shm_mutex *m)
{
    if (m == NULL || misaligned(m))
        return shmi_sync_result(EINVAL);
    struct mutex_impl *mi = impl_of(m);
    /* relaxed: init may not race with other calls on the object; this only
     * catches a second init of a live mutex */
    if (shmi_atomic_load_relaxed(&mi->magic) == MUTEX_LIVE)
        return shmi_sync_result(EBUSY);
    int r = shmi_robust_init(&mi->pm, false);
    if (r != 0)
        return shmi_sync_result(r);
    /* relaxed: published by the release store of the magic */
    shmi_atomic_store_relaxed(&mi->state, 0);
    shmi_atomic_store_relaxed(&mi->owner, 0);
    /* release: pairs with the acquire load in live() */
    shmi_atomic_store_release(&mi->magic, MUTEX_LIVE);
    return 0;
}

SHM_API int shm_mutex_destroy(shm_mutex *m)
{
    struct mutex_impl *mi = live(m);
    if (mi == NULL)
        return shmi_sync_result(EINVAL);
    int r =
        not_recoverable(mi) ? ENOTRECOVERABLE : pthread_mutex_trylock(&mi->pm);
    if (r == EBUSY || r == EDEADLK)
        return shmi_sync_result(EBUSY);
    if (r != 0 && r != EOWNERDEAD && r != ENOTRECOVERABLE)
        return shmi_sync_result(r);
    /* release: pairs with the acquire load in live() of a thread that
     * acquires the mutex after this (invariant 2) */
    shmi_atomic_store_release(&mi->magic, MUTEX_DEAD);
    if (r != ENOTRECOVERABLE) /* not acquired then */
        pthread_mutex_unlock(&mi->pm);
    return 0;
}

/* After pthread acquired the mutex: backs out of a destroyed one. */
static int acquired(struct mutex_impl *mi, int r)
{
    if (r != 0 && r != EOWNERDEAD)
        return shmi_sync_result(r);
    /* acquire: pairs with the release store in shm_mutex_destroy */
    if (shmi_atomic_load_acquire(&mi->magic) != MUTEX_LIVE) {
        pthread_mutex_unlock(&mi->pm);
        return shmi_sync_result(EINVAL);
    }
    /* relaxed: state and owner are written by holders only, ordered by
     * the mutex itself */
    shmi_atomic_store_relaxed(&mi->owner, shmi_sync_token());
    if (r == EOWNERDEAD)
        shmi_atomic_store_relaxed(&mi->state, MUTEX_OWNER_DIED);
    return shmi_sync_result(r);
}

/* The mutex a lock call may try to take, or NULL with *err set: EINVAL
 * (not a live mutex), ENOTRECOVERABLE, EDEADLK (the caller holds it). */
static struct mutex_impl *lockable(shm_mutex *m, int *err)
{
    struct mutex_impl *mi = live(m);
    *err = mi == NULL            ? EINVAL
           : not_recoverable(mi) ? ENOTRECOVERABLE
           : held_by_caller(mi)  ? EDEADLK
                                 : 0;
    return *err ? NULL : mi;
}

SHM_API int shm_mutex_lock(shm_mutex *m)
{
    int err;
    struct mutex_impl *mi = lockable(m, &err);
    if (mi == NULL)
        return shmi_sync_result(err);
    return acquired(mi, pthread_mutex_lock(&mi->pm));
}

SHM_API int shm_mutex_trylock(shm_mutex *m)
{
    int err;
    struct mutex_impl *mi = lockable(m, &err);
    if (mi == NULL)
        return shmi_sync_result(err);
    return acquired(mi, pthread_mutex_trylock(&mi->pm));
}

SHM_API int shm_mutex_timedlock(shm_mutex *m, uint64_t timeout_ns)
{
    int err;
    struct mutex_impl *mi = lockable(m, &err);
    if (mi == NULL)
        return shmi_sync_result(err);
    uint64_t deadline = timeout_ns == 0 ? SHMI_DEADLINE_NOW
                                        : shmi_os_deadline_after(timeout_ns);
    int r = shmi_robust_lock(&mi->pm, deadline);
    return acquired(mi, r == EBUSY ? ETIMEDOUT : r);
}

SHM_API int shm_mutex_unlock(shm_mutex *m)
{
    struct mutex_impl *mi = live(m);
    if (mi == NULL)
        return shmi_sync_result(EINVAL);
    if (!held_by_caller(mi))
        return shmi_sync_result(EPERM);
    shmi_atomic_store_relaxed(&mi->owner, 0);
    if (shmi_atomic_load_relaxed(&mi->state) & MUTEX_OWNER_DIED)
        /* release: pairs with the acquire load in not_recoverable() */
        shmi_atomic_store_release(&mi->state, MUTEX_NOT_RECOVERABLE);
    return shmi_sync_result(pthread_mutex_unlock(&mi->pm));
}

SHM_API int shm_mutex_consistent(shm_mutex *m)
{
    struct mutex_impl *mi = live(m);
    if (mi == NULL)
        return shmi_sync_result(EINVAL);
    int r = pthread_mutex_consistent(&mi->pm);
    if (r == 0)
        /* relaxed: as in acquired() */
        shmi_atomic_store_relaxed(&mi->state, 0);
    return shmi_sync_result(r);
}
