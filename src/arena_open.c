/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Arenas: opening (attach or create), closing, reset and removal of the
 * file, the lock that makes a reset or a collection alone on the file,
 * and the handle's plain accessors.
 *
 * Creating a file, so that racing creators and attachers never see a
 * half-made one and exactly one creator wins:
 *   1. a file with no name (O_TMPFILE) in the target directory, mode as
 *      asked (0600 by default);
 *   2. sized, with disk space reserved (posix_fallocate) unless sparse;
 *   3. mapped, trees formatted, superblock written last;
 *   4. published with link(): EEXIST means another creator won, and this
 *      one attaches to the winner's file instead.
 * A creator killed before step 4 leaves nothing behind: an unnamed file
 * disappears with its last descriptor.
 *
 * Attaching to an existing file: opened with O_NOFOLLOW (no symlinks), must
 * be a regular file owned by the caller (or its group, when allowed); the
 * superblock is read with pread and validated (layout.c) against this
 * build and the file's real size before anything is mapped. A refused file
 * is never written.
 *
 * Attached means holding the file open, and a lock on it that the kernel
 * drops when the process dies. Every handle keeps its descriptor
 * (O_CLOEXEC) for as long as it is open. A writer entered in the process
 * table holds a write lock on its slot's byte (process_table.c); every
 * other handle (a reader, a writer the full table left out, a forked
 * child's copy) holds a read lock on the attachment byte,
 * SHMI_LOCK_ATTACH_AT. One lock per attachment keeps the kernel's lock
 * list, which every lock call walks, as short as it can be.
 *
 * A reset, and a collection (arena_collect.c), must be alone, and no open
 * may slip in while it runs (shmi_arena_lock_alone, for both):
 *   reset:  r1. write locks on every slot byte but its own: refused while
 *               any other writer holds its slot;
 *           r2. write lock on the attachment byte (converting its own read
 *               lock, atomically, if it holds one): refused while any
 *               reader holds its read lock;
 *           then it resets (or collects), and drops the locks of r2 and
 *           r1.
 *   writer: w1. takes a slot's lock: refused on every slot after r1 (the
 *               table looks full), and r1 refused after it;
 *           w2. only when no slot could be taken: the attachment read
 *               lock, before anything else (a recovery) is done: refused
 *               after r2 (EBUSY), and r2 refused after it.
 *   reader: its read lock is refused while a reset or a collection holds
 *           r2: EBUSY.
 * Locks are linearizable: a writer whose w1 succeeded came before r1,
 * which then fails; one whose w1 failed because of r1 takes its read lock
 * before r2 (which then fails) or after it (and fails). Nobody waits:
 * every lock call is non-blocking, and a refused open fails with EBUSY.
 * An open takes one lock, so the kernel's lock list, which every lock
 * call walks, stays as short as it can be.
 */
#include "arena.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "layout.h"
#include "memcheck.h"
#include "os.h"
#include "pending.h"
#include "process_table.h"
#include "report.h"
#include "shared_header.h"
#include "thread_cache.h"
#include "tree.h"

#define KNOWN_FLAGS                                                            \
    (SHM_ARENA_NO_CREATE | SHM_ARENA_EXCLUSIVE | SHM_ARENA_SPARSE |            \
     SHM_ARENA_SHARED_GROUP | SHM_ARENA_READ_ONLY | SHM_ARENA_SAME_ADDRESS |   \
     SHM_ARENA_REMOVE_ON_LAST_CLOSE)
#define DEFAULT_MODE 0600u

/* A handle for the file of layout l mapped at base; NULL when out of
 * memory. Aligned to a cache line: see struct shm_arena. */
static shm_arena *handle_new(void *base, const struct shmi_layout *l,
                             bool read_only, int fd)
{
    size_t size = (sizeof(shm_arena) + 63) / 64 * 64;
    shm_arena *arena = aligned_alloc(64, size);
    if (!arena)
        return NULL;
    memset(arena, 0, size);
    arena->read_only = read_only;
    shmi_geometry_bind(&arena->geo, base, l);
    arena->map_size = l->file_size;
    arena->fd = fd;
    uint64_t table_at = l->header_offset + SHMI_PROCESS_TABLE_OFFSET;
    shmi_process_table_bind(&arena->processes,
                            (shmi_atomic_word *)(arena->geo.base + table_at),
                            table_at, fd, read_only);
    shmi_process_table_bind(&arena->late, arena->processes.words, table_at, -1,
                            read_only); /* none yet (arena_registry.c) */
    return arena;
}

/* Unmaps and frees the handle and closes its descriptor, which drops its
 * locks. */
static void handle_free(shm_arena *arena)
{
    if (!arena)
        return;
    if (arena->geo.base)
        /* Nothing of the mapping stays marked once it is gone. */
        shmi_memcheck_release(arena->geo.base, arena->map_size);
    shmi_os_unmap(arena->geo.base, arena->map_size);
    shmi_os_close(arena->fd);
    free(arena->remove_path);
    free(arena);
}

static int attach(int fd, const struct shmi_file_info *info,
                  const struct shm_arena_options *opts, shm_arena **out)
{
    /* The owner check protects writers: whoever the kernel lets read the
     * file may inspect it through a read-only mapping. */
    if (!(opts->flags & SHM_ARENA_READ_ONLY) &&
        !shmi_os_may_adopt(info, opts->flags & SHM_ARENA_SHARED_GROUP))
        return EACCES;
    uint64_t page = shmi_os_page_size();
    struct shmi_superblock sb;
    if (info->size < sizeof sb)
        return EBADMSG;
    int err = shmi_os_read_at(fd, &sb, sizeof sb, 0);
    if (err)
        return err;
    struct shmi_layout layout;
    err = shmi_superblock_validate(&sb, info->size, page, &layout);
    if (err)
        return err;
    bool read_only = opts->flags & SHM_ARENA_READ_ONLY;
    void *address = opts->address;
    if (opts->flags & SHM_ARENA_SAME_ADDRESS) {
        /* The recorded address is a number from the file: it must be a
         * plausible, aligned user-space address before mmap sees it. */
        uint64_t want = sb.creator_base;
        if (want == 0 || want % shmi_layout_data_alignment(page) != 0 ||
            want > UINTPTR_MAX - layout.file_size)
            return EBADMSG;
        address = (void *)(uintptr_t)want;
    }
    void *base;
    err = shmi_os_map(fd, layout.file_size, !read_only, address,
                      shmi_layout_data_alignment(page), &base);
    if (err)
        return err;
    if (!read_only) {
        err = shmi_os_protect_read_only(base, page);
        if (err) {
            shmi_os_unmap(base, layout.file_size);
            return err;
        }
    }
    shm_arena *arena = handle_new(base, &layout, read_only, fd);
    if (!arena) {
        shmi_os_unmap(base, layout.file_size);
        return ENOMEM;
    }
    *out = arena;
    return 0;
}

/* The attachment read lock: EBUSY while a reset or a collection holds the
 * byte. A file system without open-file-description locks attaches
 * without it. */
static int lock_attachment(int fd)
{
    int err = shmi_os_lock_try(fd, SHMI_LOCK_ATTACH_AT, 1, false);
    return err == EAGAIN ? EBUSY : 0;
}

/* Creates the file at path and maps it. EEXIST means that another creator
 * published a file first; *refused is then false, and true for every
 * other failure (an EEXIST from mapping at a taken address included). */
static int create(const char *path, const struct shm_arena_options *opts,
                  shm_arena **out, bool *refused)
{
    *refused = true;
    uint64_t page = shmi_os_page_size();
    uint64_t capacity = shmi_layout_round_capacity(opts->capacity, page);
    struct shmi_layout layout;
    if (capacity == 0 || shmi_layout_compute(capacity, page, &layout) != 0)
        return EINVAL;
    int fd;
    char temp_path[PATH_MAX];
    unsigned mode = opts->mode ? opts->mode : DEFAULT_MODE;
    int err = shmi_os_create_unpublished(path, mode, &fd, temp_path,
                                         sizeof temp_path);
    if (err)
        return err;
    void *base = NULL;
    shm_arena *arena = NULL;
    err = shmi_os_reserve(fd, layout.file_size, layout.metadata_end,
                          layout.data_offset, opts->flags & SHM_ARENA_SPARSE);
    if (!err)
        err = shmi_os_map(fd, layout.file_size, true, opts->address,
                          shmi_layout_data_alignment(page), &base);
    if (!err && !(arena = handle_new(base, &layout, false, fd)))
        err = ENOMEM;
    if (!err) {
        shmi_tree_format(&arena->geo);
        struct shmi_superblock sb;
        shmi_superblock_fill(&sb, &layout, (uint32_t)geteuid(),
                             (uint64_t)(uintptr_t)base, shmi_os_now_ns());
        memcpy(base, &sb, sizeof sb);
        err = shmi_os_protect_read_only(base, page);
    }
    if (!err) {
        err = shmi_os_publish(fd, temp_path, path);
        *refused = err != EEXIST;
    } else {
        shmi_os_discard(temp_path);
    }
    if (err) {
        if (arena) {
            handle_free(arena); /* closes fd */
        } else {
            shmi_os_unmap(base, layout.file_size);
            shmi_os_close(fd);
        }
        return err;
    }
    *out = arena;
    return 0;
}

/* The last step of every successful open: enters the process in the
 * file's process table (after a full recovery when the table is full),
 * binds its thread records, and on a file that others used, recovers one
 * window of the table (arena_recover.c): bounded work, whatever the
 * table holds. Not being entered does not fail the open: only ESTALE, a
 * file being removed by its last process, does, and ENOMEM; the handle
 * is then dropped. */
static int finish_open(shm_arena *arena, const char *path,
                       const struct shm_arena_options *opts, bool created)
{
    if ((opts->flags & SHM_ARENA_REMOVE_ON_LAST_CLOSE) && !arena->read_only &&
        !(arena->remove_path = strdup(path))) {
        handle_free(arena);
        return ENOMEM;
    }
    struct shm_recovery report = {0, 0, 0};
    int err = shmi_process_table_attach(&arena->processes); /* w1 */
    if (err != 0 && err != ESTALE && err != EROFS) {
        err = lock_attachment(arena->fd); /* w2: not entered, as a reader */
        if (err == 0) {
            shmi_arena_recover_all(arena, &report);
            err = shmi_process_table_attach(&arena->processes);
            if (err == 0) /* entered after all: its slot lock suffices */
                shmi_os_lock_release(arena->fd, SHMI_LOCK_ATTACH_AT, 1);
            err = err == ESTALE ? ESTALE : 0;
        }
    } else if (err == EROFS) {
        err = 0; /* a reader took its read lock before mapping */
    }
    if (err) {
        handle_free(arena);
        return err;
    }
    arena->geo.record_owner = shmi_process_table_owner(&arena->processes);
    shmi_pending_bind(&arena->pending, &arena->geo);
    /* Before any recovery this process runs: a dead owner's record is
     * given back only after its thread cache is drained. */
    shmi_tcache_prepare();
    if (!created && !arena->read_only)
        shmi_arena_recover_window(arena, &report);
    shmi_arena_register(arena);
    return 0;
}

/* Everything a handle holds in the file, given back: its thread records,
 * then its entry (removing the file when asked and last). */
static int handle_detach(shm_arena *arena)
{
    shmi_arena_unregister(arena);
    shmi_pending_unbind(&arena->pending);
    if (arena->late.fd >= 0) /* a late entry, and then no other */
        return shmi_arena_late_detach(arena, arena->remove_path);
    if (arena->remove_path)
        return shmi_process_table_detach_last(&arena->processes,
                                              arena->remove_path);
    shmi_process_table_leave(&arena->processes); /* handle_free closes */
    return 0;
}

/* A new file's mode may hold read and write bits only (0666): the file is
 * data, so execute, setuid, setgid and sticky bits are refused, not
 * dropped. The mode is applied exactly, umask aside (os.c fchmods it), so
 * that which of several racing creators wins does not change who may
 * open the file. */
static bool options_valid(const struct shm_arena_options *opts)
{
    return !(opts->flags & ~KNOWN_FLAGS) && !(opts->mode & ~0666u) &&
           !((opts->flags & SHM_ARENA_READ_ONLY) &&
             (opts->flags & SHM_ARENA_EXCLUSIVE));
}

static shm_arena *open_failed(const char *what, const char *path, int err)
{
    if (what)
        shmi_report("shm_arena_open: %s %s: %s", what, path, strerror(err));
    errno = err;
    return NULL;
}

shm_arena *shm_arena_open(const char *path,
                          const struct shm_arena_options *options)
{
    static const struct shm_arena_options defaults = {0};
    const struct shm_arena_options *opts = options ? options : &defaults;
    if (!path || !*path || !options_valid(opts))
        return open_failed(NULL, path, EINVAL);
    bool read_only = opts->flags & SHM_ARENA_READ_ONLY;
    /* A file can vanish between a failed link and the next open (its owner
     * removed it), and a file being removed by its last process sends the
     * opener round again (ESTALE): a few rounds settle that. */
    for (unsigned round = 0; round < 16; round++) {
        int fd;
        struct shmi_file_info info;
        shm_arena *arena = NULL;
        bool created = false;
        int err = shmi_os_open_existing(path, read_only, &fd, &info);
        if (err == 0) {
            err = (opts->flags & SHM_ARENA_EXCLUSIVE) ? EEXIST
                  : read_only                         ? lock_attachment(fd)
                                                      : 0;
            if (!err)
                err = attach(fd, &info, opts, &arena); /* keeps fd */
            if (err)
                shmi_os_close(fd);
            if (err == EBUSY)
                return open_failed(NULL, path, err); /* being reset */
            if (err)
                return open_failed("refusing", path, err);
        } else if (err != ENOENT || (opts->flags & SHM_ARENA_NO_CREATE) ||
                   read_only) {
            return open_failed(NULL, path, err);
        } else {
            bool refused;
            err = create(path, opts, &arena, &refused);
            if (err && (refused || (opts->flags & SHM_ARENA_EXCLUSIVE)))
                return open_failed("cannot create", path, err);
            if (err)
                continue; /* another creator won: attach to its file */
            created = true;
        }
        err = finish_open(arena, path, opts, created);
        if (err == ESTALE)
            continue; /* its last process is removing it: open anew */
        if (err == EBUSY)
            return open_failed(NULL, path, err); /* being reset */
        if (err)
            return open_failed(NULL, path, err);
        return arena;
    }
    return open_failed(NULL, path, EAGAIN);
}

int shm_arena_close(shm_arena *arena)
{
    if (!arena)
        return 0;
    int err = handle_detach(arena);
    handle_free(arena);
    if (err)
        errno = err;
    return err;
}

int shmi_arena_lock_alone(shm_arena *arena, struct shmi_alone *alone)
{
    size_t slots = shmi_process_table_slots();
    size_t own = arena->processes.slot;
    alone->reader_lock = own == SHMI_PROCESS_NO_SLOT;
    if (alone->reader_lock)
        own = slots;
    alone->own = own;
    /* r1 on the slot bytes below and above our own (refused: another
     * writer), then r2 (refused: a reader, a forked child, a writer not
     * entered). */
    if ((own > 0 &&
         shmi_os_lock_try(arena->fd, SHMI_LOCK_SLOTS_AT, own, true)) ||
        (own + 1 < slots &&
         shmi_os_lock_try(arena->fd, SHMI_LOCK_SLOTS_AT + own + 1,
                          slots - own - 1, true)) ||
        shmi_os_lock_try(arena->fd, SHMI_LOCK_ATTACH_AT, 1, true) != 0) {
        shmi_arena_unlock_alone(arena, alone);
        return EBUSY;
    }
    return 0;
}

/* Drops the locks of r1 and r2 (those not taken were not held); a handle
 * that held the attachment read lock gets it back by conversion (never
 * unlocked in between). */
void shmi_arena_unlock_alone(shm_arena *arena, const struct shmi_alone *alone)
{
    size_t slots = shmi_process_table_slots();
    size_t own = alone->own;
    if (own > 0)
        shmi_os_lock_release(arena->fd, SHMI_LOCK_SLOTS_AT, own);
    if (own + 1 < slots)
        shmi_os_lock_release(arena->fd, SHMI_LOCK_SLOTS_AT + own + 1,
                             slots - own - 1);
    if (alone->reader_lock)
        shmi_os_lock_try(arena->fd, SHMI_LOCK_ATTACH_AT, 1, false);
    else
        shmi_os_lock_release(arena->fd, SHMI_LOCK_ATTACH_AT, 1);
}

int shm_arena_reset(shm_arena *arena)
{
    int err = 0;
    if (!arena)
        err = EINVAL;
    else if (arena->read_only)
        err = EROFS;
    struct shmi_alone alone;
    if (!err)
        err = shmi_arena_lock_alone(arena, &alone);
    if (err) {
        errno = err;
        return err;
    }
    size_t slots = shmi_process_table_slots();
    /* Alone on the file: every other entry is dead or exited, and every
     * record but this attachment's is theirs. */
    for (size_t i = 0; i < slots; i++) {
        struct shmi_process_info info;
        shmi_process_table_entry(&arena->processes, i, &info);
        shmi_process_table_clear(&arena->processes, &info);
    }
    shmi_pending_clear_others(&arena->geo, arena->geo.record_owner);
    shmi_tcache_clear_all(&arena->geo); /* their chunks go with the trees */
    const struct shmi_layout *l = &arena->geo.layout;
    memset(shmi_shared_header(&arena->geo), 0, SHMI_ROOTS_SIZE);
    memset(arena->geo.base + l->index_offset, 0,
           l->metadata_end - l->index_offset);
    shmi_tree_format(&arena->geo);
    shmi_arena_unlock_alone(arena, &alone);
    return 0;
}

int shm_arena_unlink(const char *path)
{
    int fd;
    struct shmi_file_info info;
    int err =
        path && *path ? shmi_os_open_existing(path, true, &fd, &info) : EINVAL;
    if (err == 0) {
        shmi_os_close(fd);
        err = shmi_os_remove(path);
    }
    if (err)
        errno = err;
    return err;
}

void *shm_arena_base(const shm_arena *arena)
{
    return arena ? arena->geo.base : NULL;
}

size_t shm_arena_capacity(const shm_arena *arena)
{
    return arena ? (size_t)arena->geo.capacity : 0;
}

size_t shm_arena_mapping_size(const shm_arena *arena)
{
    return arena ? (size_t)arena->map_size : 0;
}

size_t shm_mapping_size_for_capacity(size_t capacity)
{
    uint64_t page = shmi_os_page_size();
    uint64_t rounded = shmi_layout_round_capacity(capacity, page);
    struct shmi_layout layout;
    if (rounded == 0 || shmi_layout_compute(rounded, page, &layout) != 0) {
        errno = EINVAL;
        return 0;
    }
    return (size_t)layout.file_size;
}

uint64_t shmi_arena_owner_token(shm_arena *arena)
{
    return shmi_process_table_owner(&arena->processes);
}

bool shmi_arena_owner_live(const shm_arena *arena, uint64_t token)
{
    return shmi_process_table_owner_live(&arena->processes, token);
}

size_t shmi_arena_live_processes(const shm_arena *arena)
{
    return shmi_process_table_live(&arena->processes);
}
