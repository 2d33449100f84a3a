/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Operating-system calls (see os.h). Linux first; the O_TMPFILE path
 * falls back to a named temporary file elsewhere.
 */
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t shmi_os_page_size(void)
{
    long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? (uint64_t)page : 4096;
}

uint64_t shmi_os_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t shmi_os_monotonic_ms(void)
{
    return shmi_os_monotonic_ns() / 1000000u;
}

void shmi_os_yield(void)
{
    sched_yield();
}

uint64_t shmi_os_seed(void)
{
    return shmi_os_now_ns() ^ ((uint64_t)getpid() << 32);
}

int shmi_os_open_existing(const char *path, bool read_only, int *fd,
                          struct shmi_file_info *info)
{
    int flags = (read_only ? O_RDONLY : O_RDWR) | O_NOFOLLOW | O_CLOEXEC |
                O_NONBLOCK | O_NOCTTY;
    int f = open(path, flags);
    if (f < 0) /* a directory, or a socket (ENXIO): not a regular file */
        return errno == EISDIR || errno == ENXIO ? EINVAL : errno;
    struct stat st;
    if (fstat(f, &st) != 0) {
        int err = errno;
        close(f);
        return err;
    }
    if (!S_ISREG(st.st_mode)) {
        close(f);
        return EINVAL;
    }
    /* O_NONBLOCK only guarded the open against FIFOs. */
    int fl = fcntl(f, F_GETFL);
    if (fl >= 0)
        fcntl(f, F_SETFL, fl & ~O_NONBLOCK);
    info->size = (uint64_t)st.st_size;
    info->uid = st.st_uid;
    info->gid = st.st_gid;
    info->mode = st.st_mode;
    *fd = f;
    return 0;
}

bool shmi_os_may_adopt(const struct shmi_file_info *info, bool allow_group)
{
    if (info->uid == geteuid())
        return true;
    if (!allow_group)
        return false;
    if (info->gid == getegid())
        return true;
    gid_t groups[NGROUPS_MAX];
    int count = getgroups(NGROUPS_MAX, groups);
    for (int i = 0; i < count; i++)
        if (groups[i] == info->gid)
            return true;
    return false;
}

/* The directory part of path, in buf; "." when it has none. */
static int directory_of(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return snprintf(buf, size, ".") < (int)size ? 0 : ENAMETOOLONG;
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    if (len >= size)
        return ENAMETOOLONG;
    memcpy(buf, path, len);
    buf[len] = '\0';
    return 0;
}

int shmi_os_create_unpublished(const char *path, unsigned mode, int *fd,
                               char *temp_path, size_t temp_path_size)
{
    char dir[PATH_MAX];
    int err = directory_of(path, dir, sizeof dir);
    if (err)
        return err;
    temp_path[0] = '\0';
    int f = -1;
#ifdef O_TMPFILE
    f = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
    if (f < 0 && errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
        return errno;
#endif
    if (f < 0) {
        /* No O_TMPFILE here: a unique name that a killed creator may leave
         * behind (it never becomes the arena: publishing is a link). */
        for (unsigned attempt = 0; attempt < 100; attempt++) {
            if (snprintf(temp_path, temp_path_size, "%s.%ld.%u.%llx.tmp", path,
                         (long)getpid(), attempt,
                         (unsigned long long)shmi_os_now_ns()) >=
                (int)temp_path_size)
                return ENAMETOOLONG;
            f = open(temp_path,
                     O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
            if (f >= 0 || errno != EEXIST)
                break;
        }
        if (f < 0) {
            temp_path[0] = '\0';
            return errno;
        }
    }
    if (fchmod(f, (mode_t)mode) != 0) {
        err = errno;
        close(f);
        shmi_os_discard(temp_path);
        return err;
    }
    *fd = f;
    return 0;
}

int shmi_os_reserve(int fd, uint64_t size, uint64_t meta_end,
                    uint64_t data_start, bool sparse)
{
    if (size > (uint64_t)INT64_MAX)
        return EFBIG;
    if (ftruncate(fd, (off_t)size) != 0)
        return errno;
    if (sparse)
        return 0;
    int err = posix_fallocate(fd, 0, (off_t)meta_end);
    if (err == 0 && size > data_start)
        err =
            posix_fallocate(fd, (off_t)data_start, (off_t)(size - data_start));
    return err;
}

int shmi_os_publish(int fd, const char *temp_path, const char *path)
{
    int err = 0;
    if (temp_path[0] != '\0') {
        if (link(temp_path, path) != 0)
            err = errno;
        shmi_os_discard(temp_path);
        return err;
    }
    char proc_path[64];
    /* Fits: "/proc/self/fd/" and at most 11 characters of an int. */
    (void)snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", fd);
    if (linkat(AT_FDCWD, proc_path, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0)
        return 0;
    err = errno;
    if (err == ENOENT) {
        /* No /proc: linking by descriptor needs CAP_DAC_READ_SEARCH. */
        if (linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH) == 0)
            return 0;
        err = errno;
    }
    return err;
}

void shmi_os_discard(const char *temp_path)
{
    if (temp_path && temp_path[0] != '\0')
        unlink(temp_path);
}

int shmi_os_map(int fd, uint64_t size, bool writable, void *address,
                uint64_t alignment, void **base)
{
    int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    if (size == 0 || size > (uint64_t)SIZE_MAX / 2)
        return ENOMEM;
    if (address) {
        void *p = mmap(address, (size_t)size, prot,
                       MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
        if (p == MAP_FAILED)
            return errno;
        if (p != address) {
            /* A kernel that ignores MAP_FIXED_NOREPLACE placed it
             * elsewhere because the range is taken. */
            munmap(p, (size_t)size);
            return EEXIST;
        }
        *base = p;
        return 0;
    }
    uint64_t page = shmi_os_page_size();
    if (alignment <= page) {
        void *p = mmap(NULL, (size_t)size, prot, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            return errno;
        *base = p;
        return 0;
    }
    /* Reserve room for an aligned start, then map the file over it. */
    size_t span = (size_t)(size + alignment);
    void *reserve = mmap(NULL, span, PROT_NONE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (reserve == MAP_FAILED)
        return errno;
    uintptr_t start =
        ((uintptr_t)reserve + alignment - 1) & ~(uintptr_t)(alignment - 1);
    void *p =
        mmap((void *)start, (size_t)size, prot, MAP_SHARED | MAP_FIXED, fd, 0);
    if (p == MAP_FAILED) {
        int err = errno;
        munmap(reserve, span);
        return err;
    }
    size_t head = start - (uintptr_t)reserve;
    if (head)
        munmap(reserve, head);
    size_t tail = span - head - (size_t)size;
    if (tail)
        munmap((void *)(start + size), tail);
    *base = p;
    return 0;
}

int shmi_os_protect_read_only(void *address, uint64_t size)
{
    return mprotect(address, (size_t)size, PROT_READ) == 0 ? 0 : errno;
}

void shmi_os_unmap(void *address, uint64_t size)
{
    if (address)
        munmap(address, (size_t)size);
}

int shmi_os_read_at(int fd, void *buffer, size_t size, uint64_t offset)
{
    size_t done = 0;
    while (done < size) {
        ssize_t n = pread(fd, (char *)buffer + done, size - done,
                          (off_t)(offset + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (n == 0)
            return EBADMSG;
        done += (size_t)n;
    }
    return 0;
}

void shmi_os_close(int fd)
{
    if (fd >= 0)
        close(fd);
}

int shmi_os_remove(const char *path)
{
    return unlink(path) == 0 ? 0 : errno;
}

/* ---- processes and locks ------------------------------------------- */

uint32_t shmi_os_pid(void)
{
    return (uint32_t)getpid();
}

static struct flock lock_of(short type, uint64_t offset, uint64_t len)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = (off_t)offset;
    fl.l_len = (off_t)len;
    fl.l_pid = 0; /* required for the F_OFD_* commands */
    return fl;
}

int shmi_os_lock_try(int fd, uint64_t offset, uint64_t len, bool exclusive)
{
    struct flock fl = lock_of(exclusive ? F_WRLCK : F_RDLCK, offset, len);
    while (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
        if (errno == EINTR)
            continue;
        return errno == EACCES ? EAGAIN : errno;
    }
    return 0;
}

/* ---------------------------------------------------------------------
 * Synchronisation objects (sync_*.c): the monotonic clock and futexes.
 * ------------------------------------------------------------------- */

uint64_t shmi_os_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t shmi_os_deadline_after(uint64_t timeout_ns)
{
    uint64_t now = shmi_os_monotonic_ns();
    return timeout_ns >= UINT64_MAX - now ? UINT64_MAX : now + timeout_ns;
}

void shmi_os_timespec_of(uint64_t deadline_ns, struct timespec *ts)
{
    uint64_t sec = deadline_ns / 1000000000u;
    /* time_t is 64-bit here; a deadline beyond it is "never" anyway */
    if (sec > (uint64_t)INT64_MAX)
        sec = (uint64_t)INT64_MAX;
    ts->tv_sec = (time_t)sec;
    ts->tv_nsec = (long)(deadline_ns % 1000000000u);
}

int shmi_os_futex_wait(void *word, uint32_t expected, uint64_t deadline_ns)
{
    struct timespec ts;
    struct timespec *tsp = NULL;
    if (deadline_ns != UINT64_MAX) {
        shmi_os_timespec_of(deadline_ns, &ts);
        tsp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline;
     * without FUTEX_PRIVATE_FLAG the futex is keyed by the file page, so
     * other processes' wakes reach it. */
    long r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected, tsp, NULL,
                     FUTEX_BITSET_MATCH_ANY);
    if (r == 0)
        return 0;
    return errno == EAGAIN || errno == ETIMEDOUT || errno == EINTR ? errno
                                                                   : EINTR;
}

void shmi_os_futex_wake(void *word, int32_t count)
{
    syscall(SYS_futex, word, FUTEX_WAKE, count, NULL, NULL, 0);
}

void shmi_os_lock_release(int fd, uint64_t offset, uint64_t len)
{
    struct flock fl = lock_of(F_UNLCK, offset, len);
    while (fcntl(fd, F_OFD_SETLK, &fl) != 0 && errno == EINTR) {
    }
}

int shmi_os_lock_probe(int fd, uint64_t offset, bool exclusive, bool *held)
{
    struct flock fl = lock_of(exclusive ? F_WRLCK : F_RDLCK, offset, 1);
    while (fcntl(fd, F_OFD_GETLK, &fl) != 0) {
        if (errno != EINTR)
            return errno;
    }
    *held = fl.l_type != F_UNLCK;
    return 0;
}

/* Opens /proc/self/fd/<fd> with `flags`. */
static int reopen(int fd, int flags)
{
    /* "/proc/self/fd/" and the digits, built by hand: snprintf is not
     * async-signal-safe. */
    char path[32] = "/proc/self/fd/";
    char digits[12];
    size_t n = 0, at = 14;
    unsigned value = fd < 0 ? 0 : (unsigned)fd;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0 && n < sizeof digits);
    while (n > 0)
        path[at++] = digits[--n];
    path[at] = '\0';
    return open(path, flags | O_CLOEXEC);
}

int shmi_os_reopen_read_only(int fd)
{
    return reopen(fd, O_RDONLY);
}

int shmi_os_reopen_read_write(int fd)
{
    return reopen(fd, O_RDWR);
}
