/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The robust process-shared pthread mutexes of the reader-writer lock
 * (its writer gate and its reader places, sync_rwlock.c), and the
 * per-thread token that names their holders.
 *
 * Liveness is the kernel's: every thread registers its list of held
 * robust mutexes (glibc's set_robust_list); when a thread exits for any
 * reason the kernel walks that list, sets FUTEX_OWNER_DIED in each word
 * and wakes one waiter, and the next locker gets EOWNERDEAD. shm_mutex
 * has its own futex word instead (sync_mutex.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "os.h"
#include "sync_mutex.h"

#if defined(__SANITIZE_THREAD__)
#define THREAD_SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define THREAD_SANITIZER_BUILD 1
#endif
#endif

/* initial-exec: read without a call to __tls_get_addr (the library is
 * linked, not dlopen'ed late, in the usual case; one word of static TLS) */
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
