/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What the synchronisation objects share: deadlines, the errno of a
 * public call, and the robust process-shared pthread mutex of the
 * reader-writer lock (sync_robust.c; shm_mutex has its own futex word,
 * sync_mutex.c).
 */
#ifndef SHM_SYNC_MUTEX_H
#define SHM_SYNC_MUTEX_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* Deadlines: absolute CLOCK_MONOTONIC nanoseconds, or one of these. */
#define SHMI_DEADLINE_NOW 0u /* try once */
#define SHMI_DEADLINE_NEVER UINT64_MAX

/* A robust, process-shared pthread mutex, error-checking when asked
 * (EDEADLK on a relock by its holder; otherwise the caller checks). 0 or
 * errno. */
int shmi_robust_init(pthread_mutex_t *pm, bool error_check);

/* Locks by the deadline: 0, EOWNERDEAD, ENOTRECOVERABLE, EDEADLK, EBUSY
 * (deadline SHMI_DEADLINE_NOW) or ETIMEDOUT. */
int shmi_robust_lock(pthread_mutex_t *pm, uint64_t deadline);

/* A random value of the calling thread, never 0, drawn again in the
 * child of a fork: names the holder of a lock without a process id. */
uint64_t shmi_sync_token(void);

/* Records the errno of a public call and returns it. */
static inline int shmi_sync_result(int r)
{
    if (r != 0)
        errno = r;
    return r;
}

#endif /* SHM_SYNC_MUTEX_H */
