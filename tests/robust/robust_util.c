/* SPDX-License-Identifier: BSD-2-Clause */
#define _GNU_SOURCE
#include "robust_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

const char *robust_dir(void)
{
    static char dir[512];
    if (dir[0] != '\0')
        return dir;
    const char *env = getenv("SHM_TEST_DIR");
    if (env != NULL && env[0] != '\0') {
        if (snprintf(dir, sizeof dir, "%s", env) >= (int)sizeof dir)
            fail_msg("SHM_TEST_DIR too long");
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            fail_msg("mkdir %s: %s", dir, strerror(errno));
    } else {
        snprintf(dir, sizeof dir, "/tmp/shm_robust.XXXXXX");
        if (mkdtemp(dir) == NULL)
            fail_msg("mkdtemp: %s", strerror(errno));
    }
    return dir;
}

void robust_path(char *buf, size_t size, const char *name)
{
    int n = snprintf(buf, size, "%s/%s", robust_dir(), name);
    if (n < 0 || (size_t)n >= size)
        fail_msg("path too long for %s", name);
}

void robust_remove(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode))
        rmdir(path);
    else
        unlink(path);
}

void robust_clean_dir(void)
{
    DIR *d = opendir(robust_dir());
    if (d == NULL)
        fail_msg("opendir %s: %s", robust_dir(), strerror(errno));
    struct dirent *e;
    char path[1024];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        robust_path(path, sizeof path, e->d_name);
        robust_remove(path);
    }
    closedir(d);
}

uint8_t *robust_read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        errno = EINVAL;
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n + 1);
    size_t got = 0;
    while (buf != NULL && got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0) {
            free(buf);
            buf = NULL;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    if (buf != NULL)
        *len = n;
    return buf;
}

int robust_write_file(const char *path, const void *data, size_t len)
{
    robust_remove(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno;
    const uint8_t *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w <= 0) {
            int err = errno;
            close(fd);
            return err;
        }
        done += (size_t)w;
    }
    return close(fd) == 0 ? 0 : errno;
}

bool robust_make_arena(const char *path, size_t capacity)
{
    struct shm_arena_options opts = {.capacity = capacity,
                                     .flags = SHM_ARENA_EXCLUSIVE};
    shm_arena *a = shm_arena_open(path, &opts);
    if (a == NULL)
        return false;
    int err = shm_arena_close(a);
    if (err != 0) {
        errno = err;
        return false;
    }
    return true;
}

void robust_snapshot_take(const char *path, struct robust_snapshot *snap)
{
    memset(snap, 0, sizeof *snap);
    if (lstat(path, &snap->st) != 0)
        return;
    snap->exists = true;
    if (S_ISREG(snap->st.st_mode)) {
        snap->bytes = robust_read_file(path, &snap->len);
        if (snap->bytes == NULL)
            fail_msg("cannot read %s: %s", path, strerror(errno));
    } else if (S_ISLNK(snap->st.st_mode)) {
        snap->bytes = malloc(4097);
        ssize_t n = readlink(path, (char *)snap->bytes, 4096);
        if (n < 0)
            fail_msg("readlink %s: %s", path, strerror(errno));
        snap->len = (size_t)n;
    }
}

static bool differ(char *why, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, size, fmt, ap);
    va_end(ap);
    return false;
}

bool robust_snapshot_same(const char *path, const struct robust_snapshot *snap,
                          char *why, size_t why_size)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return snap->exists ? differ(why, why_size, "%s disappeared", path)
                            : true;
    if (!snap->exists)
        return differ(why, why_size, "%s was created", path);
    const struct stat *o = &snap->st;
    if (st.st_ino != o->st_ino || st.st_dev != o->st_dev)
        return differ(why, why_size, "%s was replaced (inode)", path);
    if (st.st_mode != o->st_mode)
        return differ(why, why_size, "%s mode %o -> %o", path,
                      (unsigned)o->st_mode, (unsigned)st.st_mode);
    if (st.st_uid != o->st_uid || st.st_gid != o->st_gid)
        return differ(why, why_size, "%s owner changed", path);
    if (st.st_size != o->st_size)
        return differ(why, why_size, "%s size %lld -> %lld", path,
                      (long long)o->st_size, (long long)st.st_size);
    /* device nodes are shared with the whole system: their times move */
    bool device = S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode);
    if (device && st.st_rdev != o->st_rdev)
        return differ(why, why_size, "%s device changed", path);
    if (!device && (st.st_mtim.tv_sec != o->st_mtim.tv_sec ||
                    st.st_mtim.tv_nsec != o->st_mtim.tv_nsec))
        return differ(why, why_size, "%s mtime changed", path);
    if (!device && (st.st_ctim.tv_sec != o->st_ctim.tv_sec ||
                    st.st_ctim.tv_nsec != o->st_ctim.tv_nsec))
        return differ(why, why_size, "%s ctime changed", path);
    if (S_ISREG(st.st_mode)) {
        size_t len = 0;
        uint8_t *now = robust_read_file(path, &len);
        if (now == NULL)
            return differ(why, why_size, "%s unreadable", path);
        bool same = len == snap->len && memcmp(now, snap->bytes, len) == 0;
        size_t at = 0;
        while (!same && at < len && at < snap->len &&
               now[at] == snap->bytes[at])
            at++;
        free(now);
        if (!same)
            return differ(why, why_size, "%s bytes changed at %zu", path, at);
    }
    if (S_ISLNK(st.st_mode)) {
        char target[4097];
        ssize_t n = readlink(path, target, 4096);
        if (n < 0 || (size_t)n != snap->len ||
            memcmp(target, snap->bytes, snap->len) != 0)
            return differ(why, why_size, "%s link target changed", path);
    }
    return true;
}

void robust_snapshot_free(struct robust_snapshot *snap)
{
    free(snap->bytes);
    memset(snap, 0, sizeof *snap);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int robust_dir_list(const char *dir, char *buf, size_t size)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        fail_msg("opendir %s: %s", dir, strerror(errno));
    char *names[256] = {0};
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (count < 256)
            names[count] = strdup(e->d_name);
        count++;
    }
    closedir(d);
    int kept = count < 256 ? count : 256;
    qsort(names, (size_t)kept, sizeof names[0], compare_names);
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < kept; i++) {
        int n =
            snprintf(buf + used, size - used, "%s%s", i ? " " : "", names[i]);
        if (n > 0 && (size_t)n < size - used)
            used += (size_t)n;
        free(names[i]);
    }
    return count;
}

void robust_quiet_begin(struct robust_quiet *q)
{
    fflush(stdout);
    fflush(stderr);
    /* a file with no name: it must not show in the directory listings */
    q->fd = memfd_create("captured-output", MFD_CLOEXEC);
    q->saved_out = dup(STDOUT_FILENO);
    q->saved_err = dup(STDERR_FILENO);
    if (q->fd < 0 || q->saved_out < 0 || q->saved_err < 0)
        fail_msg("cannot capture output: %s", strerror(errno));
    dup2(q->fd, STDOUT_FILENO);
    dup2(q->fd, STDERR_FILENO);
}

size_t robust_quiet_end(struct robust_quiet *q, char *text, size_t size)
{
    fflush(stdout);
    fflush(stderr);
    dup2(q->saved_out, STDOUT_FILENO);
    dup2(q->saved_err, STDERR_FILENO);
    close(q->saved_out);
    close(q->saved_err);
    off_t len = lseek(q->fd, 0, SEEK_END);
    ssize_t n = pread(q->fd, text, size - 1, 0);
    text[n > 0 ? (size_t)n : 0] = '\0';
    close(q->fd);
    return len > 0 ? (size_t)len : 0;
}

uint64_t robust_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

uint32_t robust_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

void robust_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void robust_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t robust_seed(void)
{
    const char *env = getenv("ROBUST_SEED");
    if (env != NULL && env[0] != '\0')
        return strtoull(env, NULL, 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^
           ((uint64_t)getpid() << 32);
}

uint64_t robust_rand(uint64_t *state)
{
    /* xorshift64*; a zero state would stay zero */
    uint64_t x = *state ? *state : 0x9E3779B97F4A7C15u;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Du;
}
