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
 * Late entries. A handle without an entry (a forked child's copy, or a
 * writer the full table left out) needs one when a thread locks a
 * shm_mutex in its mapping: the lock word names its holder by an owner
 * key of the process table, whose liveness the kernel vouches for
 * (sync_mutex.c). shmi_arena_lock_owner then enters the process through
 * a new read-write description of the file, the handle's `late` entry,
 * kept as the handle's own entry would be: given back at close
 * (shmi_arena_late_detach), marked exited at a normal exit, dropped by
 * the child after fork (its copy of the description would keep the
 * parent's entry alive). Allocations go on unrecorded in such a handle
 * (its record owner stays 0): the late entry is only the lock's owner.
 *
 * The generation (shmi_arena_generation) tells the threads that cache an
 * answer of shmi_arena_lock_owner that the answer may be stale: every
 * change of the list, of a late entry, and fork bump it.
 *
 * The mutex is process-local and taken only by open, close, fork, exit,
 * a thread's first lock of a shm_mutex in a mapping, and a thread that
 * exits holding one; never by an allocation.
 */
#include <errno.h>
#include <pthread.h>

#include "arena.h"
#include "layout.h"
#include "os.h"
#include "thread_cache.h"

shmi_atomic_word shmi_arena_generation;

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
    /* Relaxed: read by this thread only, the child's one thread. */
    shmi_atomic_fetch_add_relaxed(&shmi_arena_generation, 1);
    for (shm_arena *a = registry_head; a; a = a->registry_next) {
        if (a->late.fd >= 0)
            shmi_os_close(a->late.fd); /* the parent's description */
        a->late.fd = -1;
        shmi_process_table_forget(&a->late);
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
    /* Relaxed: a thread learns of a new handle through whoever opened it,
     * which ordered this increment before (see arena.h). */
    shmi_atomic_fetch_add_relaxed(&shmi_arena_generation, 1);
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
    /* Relaxed: as in shmi_arena_register; a thread still using a handle
     * that another thread closes is a caller's error. */
    shmi_atomic_fetch_add_relaxed(&shmi_arena_generation, 1);
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
        shmi_process_table_mark_exited(&a->late); /* its lock stays too */
    }
    pthread_mutex_unlock(&registry_lock);
}

/* The registered handle whose mapping holds [p, p + size); the caller
 * holds registry_lock. */
static shm_arena *find_locked(const void *p, size_t size)
{
    uintptr_t at = (uintptr_t)p;
    for (shm_arena *a = registry_head; a; a = a->registry_next) {
        uintptr_t base = (uintptr_t)a->geo.base;
        if (at >= base && at - base <= a->map_size &&
            size <= a->map_size - (at - base))
            return a;
    }
    return NULL;
}

/* A late entry for a writable handle that has no entry: 0, or the errno
 * of the reopen or of the attach. The caller holds registry_lock. */
static int late_enter(shm_arena *a)
{
    int fd = shmi_os_reopen_read_write(a->fd);
    if (fd < 0)
        return errno;
    shmi_process_table_bind(&a->late, a->processes.words,
                            a->processes.file_offset, fd, false);
    int err = shmi_process_table_attach(&a->late);
    if (err != 0) {
        shmi_os_close(fd);
        a->late.fd = -1;
        return err;
    }
    /* Relaxed: see shmi_arena_register. */
    shmi_atomic_fetch_add_relaxed(&shmi_arena_generation, 1);
    return 0;
}

int shmi_arena_lock_owner(const void *p, size_t size,
                          struct shmi_arena_lock_owner *out)
{
    int saved = errno;
    int err = 0;
    pthread_mutex_lock(&registry_lock);
    shm_arena *a = find_locked(p, size);
    uint64_t key = 0;
    if (a == NULL)
        err = EINVAL;
    else if (a->read_only)
        err = EPERM;
    else if ((key = shmi_process_table_owner(&a->processes)) == 0 &&
             (key = shmi_process_table_owner(&a->late)) == 0)
        err = late_enter(a) == 0 ? 0 : EPERM;
    if (err == 0 && key == 0)
        key = shmi_process_table_owner(&a->late);
    if (err == 0)
        *out = (struct shmi_arena_lock_owner){
            .arena = a,
            .base = (uintptr_t)a->geo.base,
            .size = (uintptr_t)a->map_size,
            .key = key,
        };
    pthread_mutex_unlock(&registry_lock);
    errno = saved;
    return err;
}

bool shmi_arena_while_mapped(void *p, size_t size, void (*fn)(void *, void *),
                             void *arg)
{
    pthread_mutex_lock(&registry_lock);
    bool mapped = find_locked(p, size) != NULL;
    if (mapped)
        fn(p, arg);
    pthread_mutex_unlock(&registry_lock);
    return mapped;
}

int shmi_arena_late_detach(shm_arena *arena, const char *remove_path)
{
    if (arena->late.fd < 0)
        return 0;
    int err = 0;
    if (remove_path)
        err = shmi_process_table_detach_last(&arena->late, remove_path);
    else
        shmi_process_table_leave(&arena->late); /* the close unlocks */
    shmi_os_close(arena->late.fd);
    arena->late.fd = -1;
    return err;
}
