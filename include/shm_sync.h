/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm_sync: locks and events that live in an arena.
 *
 * The objects are plain memory: embed them in a struct of your own that
 * lives in the arena, or shm_malloc(sizeof(shm_mutex)) one, and give the
 * offset to other processes (a named root, or any structure they can
 * reach). They hold no pointers and work between unrelated processes that
 * map the file at different addresses. Each has a fixed size and needs
 * 8-byte alignment (every shm_malloc chunk of at least 8 bytes has it):
 *
 *     object       size   fits a chunk of 2^MAX when
 *     shm_mutex      64   MAX >= 6
 *     shm_event      32   MAX >= 5
 *     shm_rwlock   1024   MAX >= 10
 *
 * Create an object with its *_init function before anyone uses it, and
 * destroy it with *_destroy once nobody does. A call on memory that was
 * never initialised, or on a destroyed object, is refused with EINVAL
 * (each object starts with a magic word; memory that happens to hold the
 * magic by chance is not detected).
 *
 * Every function returns 0 or an errno value, and also sets errno to that
 * value when it is not 0. None of them prints, exits or aborts.
 *
 * A holder that dies. Locks are held by threads, and the library learns
 * from the kernel when a holder dies, SIGKILL included. The next thread to
 * acquire the lock gets it together with EOWNERDEAD: the data the lock
 * protected may be half updated. That thread repairs the data (or decides
 * it is fine) and calls *_consistent before it unlocks; unlocking without
 * doing so makes the lock unrecoverable, and every later acquire returns
 * ENOTRECOVERABLE until the object is destroyed and initialised again. No
 * process ids are involved: pid reuse and pid namespaces do not fool it.
 * The reader-writer lock holds Linux robust futexes, which the kernel
 * releases when a thread exits for any reason. A mutex names its holder's
 * entry in the arena's process table, whose lock the kernel drops when
 * the process dies: a thread waiting for a mutex checks that entry when
 * it has waited 2 ms for the same holder, then at intervals doubling up
 * to 100 ms, so a dead holder is found within 100 ms of its death at most.
 *
 * Holds are per thread: the thread that acquired a lock must release it
 * (EPERM otherwise), and a thread that exits holding a lock counts as dead
 * even when its process lives on. A process that closes the arena while
 * one of its threads holds a mutex in it gives that mutex up (the next
 * locker is told EOWNERDEAD).
 *
 * Timeouts are relative, in nanoseconds, measured on CLOCK_MONOTONIC. The
 * library turns a timeout into an absolute monotonic deadline once, on
 * entry, so that retries after spurious wake-ups never stretch it, and a
 * change of the wall clock neither shortens nor extends it. Relative
 * because the callers' own deadlines are usually "so much from now", and
 * because an absolute time would have to name a clock; monotonic because
 * CLOCK_REALTIME may jump. A timeout of 0 tries once.
 */
#ifndef SHM_SYNC_H
#define SHM_SYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "shm_alloc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------
 * Mutex
 * ------------------------------------------------------------------- */

typedef struct shm_mutex {
    uint64_t opaque[8];
} shm_mutex;

/*
 * Initialises a robust, error-checking mutex at m (unlocked). m must lie
 * in an arena the process has open (a mutex names its holder by the
 * holder's entry in that arena's process table). Returns 0; EINVAL when m
 * is NULL, not 8-byte aligned, or in no arena the process has open; EPERM
 * (the process cannot lock mutexes there: see shm_mutex_lock); EBUSY when
 * m already holds a live mutex (destroy it first). Must not run
 * concurrently with any other call on the same object.
 */
SHM_API int shm_mutex_init(shm_mutex *m);

/*
 * Destroys an unlocked mutex (or one whose holder died): later calls on it
 * return EINVAL. Returns 0; EINVAL (not a mutex); EPERM (as
 * shm_mutex_lock); EBUSY (locked by a live holder, also by the caller). A
 * thread blocked in shm_mutex_lock when the mutex is destroyed returns
 * EINVAL.
 */
SHM_API int shm_mutex_destroy(shm_mutex *m);

/*
 * Acquires the mutex, waiting as long as it takes. Returns 0; EOWNERDEAD
 * (the caller holds the mutex, its previous holder died holding it: repair
 * the data, then shm_mutex_consistent); ENOTRECOVERABLE (a holder told of
 * a death unlocked without marking it consistent; not acquired); EDEADLK
 * (the calling thread holds it already); EINVAL (not a mutex, or in no
 * arena the process has open); EPERM (the process cannot lock there: its
 * handle is read-only, or it has no entry in the arena's process table
 * and could not take one: a full table, no write permission on the file,
 * a file system without open-file-description locks); ENOMEM (the
 * thread's list of held mutexes could not grow). The uncontended lock
 * makes no system call; a forked child's first lock in an arena enters it
 * in that arena's process table. May run concurrently with every call on
 * the object but init/destroy.
 */
SHM_API int shm_mutex_lock(shm_mutex *m);

/* As shm_mutex_lock, but EBUSY instead of waiting. When the mutex is held
 * by another process, asks the process table whether the holder lives
 * (one system call), so that a dead holder's mutex is taken over at once
 * (EOWNERDEAD). */
SHM_API int shm_mutex_trylock(shm_mutex *m);

/* As shm_mutex_lock, but gives up after timeout_ns with ETIMEDOUT. */
SHM_API int shm_mutex_timedlock(shm_mutex *m, uint64_t timeout_ns);

/*
 * Releases the mutex. Returns 0; EPERM (the calling thread does not hold
 * it); EINVAL (not a mutex). After an EOWNERDEAD not followed by
 * shm_mutex_consistent, the mutex becomes unrecoverable.
 */
SHM_API int shm_mutex_unlock(shm_mutex *m);

/*
 * Marks the state protected by a mutex consistent again after an
 * EOWNERDEAD, so that shm_mutex_unlock hands it on normally. Returns 0;
 * EINVAL (not a mutex, or not in the owner-died state held by the caller).
 */
SHM_API int shm_mutex_consistent(shm_mutex *m);

/* ---------------------------------------------------------------------
 * Reader-writer lock
 *
 * At most SHM_RWLOCK_READERS threads hold it shared at once; one more
 * waits until a reader leaves. Writer preference: once a writer has taken
 * the writer gate, no new reader enters; the writer waits only for the
 * readers already inside. Between writers, waiting readers and writers
 * compete for the gate in the order the kernel wakes them (not FIFO).
 * Readers never wait for each other (up to the bound). A thread may hold
 * several shared holds on one lock (each takes a reader place) but not a
 * shared and an exclusive hold together (EDEADLK).
 *
 * A dead reader or writer is found by the next writer (a dead writer also
 * by the next reader), its hold released, and reported as EOWNERDEAD by
 * the acquire that found it. An EOWNERDEAD acquire always holds the lock
 * exclusively, even from shm_rwlock_rdlock, so that the repair can write;
 * release it with shm_rwlock_unlock as any other hold.
 * ------------------------------------------------------------------- */

#define SHM_RWLOCK_READERS 16

typedef struct shm_rwlock {
    uint64_t opaque[128];
} shm_rwlock;

/* Initialises an unlocked reader-writer lock. Returns 0; EINVAL (NULL or
 * misaligned); EBUSY (already a live lock). Not concurrent with any call
 * on the object. */
SHM_API int shm_rwlock_init(shm_rwlock *rw);

/* Destroys an unheld lock. Returns 0; EINVAL (not a lock); EBUSY (held,
 * also by the caller). */
SHM_API int shm_rwlock_destroy(shm_rwlock *rw);

/*
 * Acquires the lock shared. Returns 0; EOWNERDEAD (a writer died holding
 * the lock: the caller now holds it exclusively, repairs, then calls
 * shm_rwlock_consistent); ENOTRECOVERABLE; EDEADLK (the caller holds it
 * exclusively); EINVAL (not a lock). Concurrent with every call on the
 * object but init/destroy.
 */
SHM_API int shm_rwlock_rdlock(shm_rwlock *rw);
/* As shm_rwlock_rdlock, EBUSY instead of waiting. */
SHM_API int shm_rwlock_tryrdlock(shm_rwlock *rw);
/* As shm_rwlock_rdlock, ETIMEDOUT after timeout_ns. */
SHM_API int shm_rwlock_timedrdlock(shm_rwlock *rw, uint64_t timeout_ns);

/*
 * Acquires the lock exclusively. Returns 0; EOWNERDEAD (a reader or a
 * writer died holding it: its hold is gone, the caller holds the lock
 * exclusively and calls shm_rwlock_consistent once the data is right);
 * ENOTRECOVERABLE; EDEADLK (the caller holds it, shared or exclusive);
 * EINVAL.
 */
SHM_API int shm_rwlock_wrlock(shm_rwlock *rw);
/* As shm_rwlock_wrlock, EBUSY instead of waiting. */
SHM_API int shm_rwlock_trywrlock(shm_rwlock *rw);
/* As shm_rwlock_wrlock, ETIMEDOUT after timeout_ns. */
SHM_API int shm_rwlock_timedwrlock(shm_rwlock *rw, uint64_t timeout_ns);

/* Releases the calling thread's hold (exclusive, else one shared hold).
 * Returns 0; EPERM (the thread holds none); EINVAL. */
SHM_API int shm_rwlock_unlock(shm_rwlock *rw);

/* After EOWNERDEAD, marks the protected state consistent. Returns 0;
 * EINVAL (not a lock, or not held exclusively in the owner-died state by
 * the caller). */
SHM_API int shm_rwlock_consistent(shm_rwlock *rw);

/* ---------------------------------------------------------------------
 * Event
 *
 * An event is set or not set. A manual-reset event stays set until
 * shm_event_reset, and releases every waiter while set. An auto-reset
 * event releases one waiter per setting and is reset by the waiter it
 * releases; setting an event that is already set changes nothing (it is a
 * state, not a counter). No thread holds an event, so a dead process
 * cannot block one; see shm_event_wait for what a dead waiter costs.
 * ------------------------------------------------------------------- */

typedef struct shm_event {
    uint64_t opaque[4];
} shm_event;

#define SHM_EVENT_AUTO_RESET 0u
#define SHM_EVENT_MANUAL_RESET 1u
/* Or'ed into the flags: the event starts set. */
#define SHM_EVENT_INITIALLY_SET 2u

/* Initialises an event. Returns 0; EINVAL (NULL, misaligned, unknown
 * flags); EBUSY (already a live event). Not concurrent with any call on
 * the object. */
SHM_API int shm_event_init(shm_event *e, unsigned flags);

/* Destroys an event; later calls return EINVAL, and threads waiting in it
 * are woken and return EINVAL. Returns 0 or EINVAL. */
SHM_API int shm_event_destroy(shm_event *e);

/*
 * Waits until the event is set (auto-reset: and resets it). Returns 0;
 * EINVAL (not an event). A waiter killed while waiting leaves a count
 * behind that only costs later signals a futile wake-up system call.
 * Concurrent with every call on the object but init/destroy.
 */
SHM_API int shm_event_wait(shm_event *e);
/* As shm_event_wait, ETIMEDOUT after timeout_ns (0: just test). */
SHM_API int shm_event_timedwait(shm_event *e, uint64_t timeout_ns);

/* Sets the event: manual-reset releases every waiter, auto-reset exactly
 * one (or the next to wait when none waits). Returns 0 or EINVAL. */
SHM_API int shm_event_signal(shm_event *e);

/* Releases every thread waiting now. On a manual-reset event the same as
 * shm_event_signal. An auto-reset event's state is left alone, unless
 * nobody was waiting: then it is set as by shm_event_signal, so that a
 * broadcast is never lost. Returns 0 or EINVAL. */
SHM_API int shm_event_broadcast(shm_event *e);

/* Resets the event. Returns 0 or EINVAL. */
SHM_API int shm_event_reset(shm_event *e);

/* Whether the event is set now (a snapshot); false for a non-event, with
 * errno = EINVAL. */
SHM_API bool shm_event_is_set(const shm_event *e);

#ifdef __cplusplus
}
#endif

#endif /* SHM_SYNC_H */
