/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The process's open handles: what fork() and a normal exit must do to
 * the attachments of a process.
 *
 * Fork. A child inherits every descriptor, and with it the open file
 * description that holds its parent's lock on the process-table slot
 * (process_table.c): were it kept, a dead parent would look alive for as
 * long as the child lives. The child handler therefore replaces each
 * handle's descriptor by a new read-only description of the same file,
 * which holds only the attachment read lock, as a reader does (a forked
 * child still uses the mapping, so a reset must see it), and forgets the
 * parent's entry and record owner: the child shares the mapping, not the entry,
 * as before. The registry's mutex is taken in the prepare handler and released
 * in the parent and the child, so that the child never finds it held by a
 * thread that does not exist there.
 *
 * Exit. A process that returns from main or calls exit() without closing
 * its arenas is not dead: the destructor marks each entry it still holds
 * "exited cleanly". It neither unmaps nor closes: other destructors, and
 * threads still running until the process is gone, may still use the
 * arena, so the lock stays until the kernel drops it with the process and
 * only then may a recovery clear the entry and resolve its records.
 *
 * The mutex is process-local and taken only by open, close, fork and exit,
 * never by an allocation.
 */
#include <pthread.h>

#include "arena.h"
#include "layout.h"
#include "os.h"
#include "thread_cache.h"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static shm_arena *registry_head;
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;

static void before_fork(void)
{
    pthread_mutex_lock(&registry_lock);
}

static void after_fork_in_parent(void)
{
    pthread_mutex_unlock(&registry_lock);
}

/* Async-signal-safe calls only: the parent may have had threads. */
static void after_fork_in_child(void)
{
    for (shm_arena *a = registry_head; a; a = a->registry_next) {
        int fd = shmi_os_reopen_read_only(a->fd);
        if (fd >= 0)
            (void)shmi_os_lock_try(fd, SHMI_LOCK_ATTACH_AT, 1, false);
        shmi_os_close(a->fd);
        a->fd = fd;
        a->processes.fd = fd;
        shmi_process_table_forget(&a->processes);
        a->geo.record_owner = 0;
    }
    pthread_mutex_unlock(&registry_lock);
}

static void registry_init(void)
{
    pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}

void shmi_arena_register(shm_arena *arena)
{
    pthread_once(&registry_once, registry_init);
    pthread_mutex_lock(&registry_lock);
    arena->registry_prev = NULL;
    arena->registry_next = registry_head;
    if (registry_head)
        registry_head->registry_prev = arena;
    registry_head = arena;
    pthread_mutex_unlock(&registry_lock);
}

void shmi_arena_unregister(shm_arena *arena)
{
    pthread_mutex_lock(&registry_lock);
    if (arena->registry_prev)
        arena->registry_prev->registry_next = arena->registry_next;
    else if (registry_head == arena)
        registry_head = arena->registry_next;
    if (arena->registry_next)
        arena->registry_next->registry_prev = arena->registry_prev;
    arena->registry_next = arena->registry_prev = NULL;
    pthread_mutex_unlock(&registry_lock);
}

__attribute__((destructor)) static void mark_exited_at_exit(void)
{
    pthread_mutex_lock(&registry_lock);
    for (shm_arena *a = registry_head; a; a = a->registry_next) {
        /* The exiting thread's cache goes back now; the others' when
         * their threads end, or to the recovery after the process. */
        if (!a->read_only)
            shmi_tcache_flush_own(&a->geo);
        shmi_process_table_mark_exited(&a->processes);
    }
    pthread_mutex_unlock(&registry_lock);
}
