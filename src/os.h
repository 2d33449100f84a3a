/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Operating-system calls: files, mappings, time. The only file that
 * includes <sys/mman.h>. Every function returns 0 or an errno value.
 */
#ifndef SHM_OS_H
#define SHM_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct shmi_file_info {
    uint64_t size;
    uid_t uid;
    gid_t gid;
    mode_t mode;
};

uint64_t shmi_os_page_size(void);
uint64_t shmi_os_now_ns(void);
/* CLOCK_MONOTONIC in milliseconds: one clock for every process of the
 * machine (of one time namespace). */
uint64_t shmi_os_monotonic_ms(void);
/* Gives the processor to another runnable thread, if any. */
void shmi_os_yield(void);
/* A value that differs between processes and between calls. */
uint64_t shmi_os_seed(void);

/* Opens an existing file without following a final symlink (ELOOP) and
 * without blocking on a FIFO; refuses anything but a regular file with
 * EINVAL. Read-only when `read_only`. */
int shmi_os_open_existing(const char *path, bool read_only, int *fd,
                          struct shmi_file_info *info);

/* Whether the caller's effective uid owns the file, or (when
 * `allow_group`) one of the caller's groups does. */
bool shmi_os_may_adopt(const struct shmi_file_info *info, bool allow_group);

/* A new file with no name yet in the directory of `path` (O_TMPFILE), or,
 * where the file system cannot do that, under a unique temporary name
 * stored in `temp_path` (empty otherwise). Permission bits are `mode`
 * exactly (umask does not apply). */
int shmi_os_create_unpublished(const char *path, unsigned mode, int *fd,
                               char *temp_path, size_t temp_path_size);

/* Sizes the file to `size` and, unless `sparse`, reserves disk space for
 * the ranges [0, meta_end) and [data_start, size) so that a full disk
 * fails here (ENOSPC) rather than as SIGBUS later. */
int shmi_os_reserve(int fd, uint64_t size, uint64_t meta_end,
                    uint64_t data_start, bool sparse);

/* Gives the unpublished file its name `path`, atomically: EEXIST when
 * another file got there first. Either way the temporary name is gone. */
int shmi_os_publish(int fd, const char *temp_path, const char *path);

/* Removes the temporary name of a file that will not be published. */
void shmi_os_discard(const char *temp_path);

/* Maps `size` bytes of fd shared. With `address`, exactly there and never
 * over an existing mapping (EEXIST); otherwise anywhere aligned to
 * `alignment` (a power of two). */
int shmi_os_map(int fd, uint64_t size, bool writable, void *address,
                uint64_t alignment, void **base);

int shmi_os_protect_read_only(void *address, uint64_t size);
void shmi_os_unmap(void *address, uint64_t size);

/* Reads exactly `size` bytes at `offset`; EBADMSG when the file is
 * shorter. */
int shmi_os_read_at(int fd, void *buffer, size_t size, uint64_t offset);

void shmi_os_close(int fd);

/* unlink(2): 0 or errno. */
int shmi_os_remove(const char *path);

/* ---- processes and locks ---- */

uint32_t shmi_os_pid(void);

/* Open-file-description locks (fcntl F_OFD_*) on `len` bytes of fd's file
 * from `offset`. They belong to the open file description: the kernel
 * drops them when its last descriptor is closed, which a killed process's
 * exit does, in any pid namespace; two descriptions conflict even inside
 * one process, while a description never conflicts with its own locks.
 *
 * shmi_os_lock_try takes a write lock (`exclusive`) or a read lock, never
 * waiting: 0, EAGAIN when another description holds a conflicting lock,
 * or the errno of fcntl (EBADF: a write lock on a read-only descriptor).
 * A lock already held by this description is converted atomically, and
 * stays as it was when the conversion fails. */
int shmi_os_lock_try(int fd, uint64_t offset, uint64_t len, bool exclusive);

/* Drops this description's locks on those bytes. */
void shmi_os_lock_release(int fd, uint64_t offset, uint64_t len);

/* Whether another description holds a lock on the byte at offset that
 * would conflict with a write lock (`exclusive`: any lock) or with a read
 * lock (a write lock): 0 and *held, or the errno of fcntl. Changes
 * nothing. */
int shmi_os_lock_probe(int fd, uint64_t offset, bool exclusive, bool *held);

/* Opens again, read-only, the file fd refers to (through /proc/self/fd),
 * as a new open file description: a descriptor, or -1. Async-signal-safe
 * (for a fork handler). */
int shmi_os_reopen_read_only(int fd);

/* As shmi_os_reopen_read_only, read-write (the kernel checks the file's
 * permissions again); errno is set when it returns -1. */
int shmi_os_reopen_read_write(int fd);

/* ---------------------------------------------------------------------
 * Synchronisation objects (sync_*.c): the monotonic clock and futexes.
 * ------------------------------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t shmi_os_monotonic_ns(void);

/* A monotonic deadline `timeout_ns` from now, saturating. */
uint64_t shmi_os_deadline_after(uint64_t timeout_ns);

/* Sleeps while the 32-bit word at `word` holds `expected`, until woken or
 * until the absolute CLOCK_MONOTONIC time `deadline_ns` (UINT64_MAX:
 * none). A shared (not process-private) futex, so that it works between
 * processes mapping the word at different addresses. Returns 0 (woken, or
 * spuriously), EAGAIN (the word did not hold `expected`), ETIMEDOUT or
 * EINTR. */
int shmi_os_futex_wait(void *word, uint32_t expected, uint64_t deadline_ns);

/* Wakes up to `count` threads sleeping on `word` (INT32_MAX: all). */
void shmi_os_futex_wake(void *word, int32_t count);

/* The absolute CLOCK_MONOTONIC time `deadline_ns` as a timespec (what
 * pthread_mutex_clocklock takes). */
struct timespec;
void shmi_os_timespec_of(uint64_t deadline_ns, struct timespec *ts);

#endif /* SHM_OS_H */
