/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Hostile files: shm_arena_open must refuse each with the documented errno,
 * print nothing, leave the file byte for byte as it was (contents, size,
 * times, inode, mode, owner) and leave nothing else in the directory.
 *
 * Damaged files are made by creating a valid arena with the library and
 * corrupting chosen fields of a copy (layout in robust_util.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include "robust_util.h"

#define NOBODY 65534

/* The valid arena every damaged copy starts from. */
static uint8_t *valid;
static size_t valid_len;
static uint64_t valid_capacity, valid_file_size, valid_data_offset;
static uint32_t valid_page_size;
static size_t block; /* 2^MAX */

static int setup(void **state)
{
    (void)state;
    char path[1024];
    robust_clean_dir();
    block = get_shm_max_allocatable_size();
    size_t capacity = 16 * block < 65536 ? 65536 : 16 * block;
    robust_path(path, sizeof path, "template.shm");
    if (!robust_make_arena(path, capacity)) {
        fprintf(stderr, "cannot create %s: %s\n", path, strerror(errno));
        return -1;
    }
    valid = robust_read_file(path, &valid_len);
    if (valid == NULL || valid_len < 48)
        return -1;
    unlink(path);
    valid_page_size = robust_get32(valid + SB_PAGE_SIZE);
    valid_capacity = robust_get64(valid + SB_CAPACITY);
    valid_file_size = robust_get64(valid + SB_FILE_SIZE);
    valid_data_offset = robust_get64(valid + SB_DATA_OFFSET);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(valid);
    return 0;
}

static int clean(void **state)
{
    (void)state;
    robust_clean_dir();
    return 0;
}

static bool errno_in(int err, const int *allowed, int n)
{
    for (int i = 0; i < n; i++)
        if (err == allowed[i])
            return true;
    return false;
}

/*
 * Opens path twice (create-if-missing defaults, then NO_CREATE) and checks
 * that both are refused with one of the allowed errnos, that nothing was
 * printed, that path (and watch, when not NULL) are untouched and that
 * the directory holds the same names as before.
 */
static void expect_refused_opts(const char *path, const char *watch,
                                const struct shm_arena_options *first,
                                const char *what, int nallowed, ...)
{
    int allowed[4];
    va_list ap;
    va_start(ap, nallowed);
    for (int i = 0; i < nallowed && i < 4; i++)
        allowed[i] = va_arg(ap, int);
    va_end(ap);

    struct robust_snapshot snap, watched;
    robust_snapshot_take(path, &snap);
    if (watch != NULL)
        robust_snapshot_take(watch, &watched);
    char before[4096], after[4096], printed[512], why[512];
    robust_dir_list(robust_dir(), before, sizeof before);

    struct shm_arena_options no_create = {.flags = SHM_ARENA_NO_CREATE};
    const struct shm_arena_options *tries[2] = {first, &no_create};
    for (int t = 0; t < 2; t++) {
        struct robust_quiet q;
        robust_quiet_begin(&q);
        errno = 0;
        shm_arena *a = shm_arena_open(path, tries[t]);
        int err = errno;
        size_t noise = robust_quiet_end(&q, printed, sizeof printed);
        if (a != NULL) {
            shm_arena_close(a);
            fail_msg("%s: shm_arena_open(%s) accepted it", what,
                     t ? "NO_CREATE" : "defaults");
        }
        if (!errno_in(err, allowed, nallowed))
            fail_msg("%s: errno %d (%s), expected %s", what, err, strerror(err),
                     strerror(allowed[0]));
        if (noise != 0)
            fail_msg("%s: the library printed: %s", what, printed);
    }
    if (!robust_snapshot_same(path, &snap, why, sizeof why))
        fail_msg("%s: %s", what, why);
    if (watch != NULL &&
        !robust_snapshot_same(watch, &watched, why, sizeof why))
        fail_msg("%s: %s", what, why);
    robust_dir_list(robust_dir(), after, sizeof after);
    if (strcmp(before, after) != 0)
        fail_msg("%s: directory was [%s], now [%s]", what, before, after);
    robust_snapshot_free(&snap);
    if (watch != NULL)
        robust_snapshot_free(&watched);
}

#define expect_refused(path, what, ...)                                        \
    expect_refused_opts(path, NULL, NULL, what, __VA_ARGS__)

/* Writes a copy of the valid arena, changed by one field write. */
enum field_width { W32 = 4, W64 = 8 };
static void write_with_field(const char *path, size_t at, enum field_width w,
                             uint64_t value)
{
    uint8_t *copy = malloc(valid_len);
    assert_non_null(copy);
    memcpy(copy, valid, valid_len);
    if (w == W32)
        robust_put32(copy + at, (uint32_t)value);
    else
        robust_put64(copy + at, value);
    assert_int_equal(robust_write_file(path, copy, valid_len), 0);
    free(copy);
}

/* The starting point must itself be acceptable, or every refusal below
 * would prove nothing. */
static void test_valid_copy_opens(void **state)
{
    (void)state;
    char path[1024];
    robust_path(path, sizeof path, "copy.shm");
    assert_int_equal(robust_write_file(path, valid, valid_len), 0);
    struct shm_arena_options opts = {.flags = SHM_ARENA_NO_CREATE};
    shm_arena *a = shm_arena_open(path, &opts);
    if (a == NULL)
        fail_msg("a byte copy of a valid arena is refused: %s",
                 strerror(errno));
    assert_int_equal(shm_arena_check(a), 0);
    assert_int_equal(shm_arena_capacity(a), valid_capacity);
    assert_int_equal(shm_arena_available(a), valid_capacity);
    assert_int_equal(shm_arena_mapping_size(a), valid_len);
    assert_int_equal(shm_arena_close(a), 0);
    /* the superblock fields sit where the tests below expect them */
    assert_memory_equal(valid, "SHMALLOC", 8);
    assert_int_equal(valid_file_size, valid_len);
    assert_true(valid_data_offset > 0 && valid_data_offset < valid_len);
    assert_true(valid_data_offset + valid_capacity <= valid_len);
    assert_int_equal(valid_page_size, (uint32_t)sysconf(_SC_PAGESIZE));
}

static void test_symlink_to_arena(void **state)
{
    (void)state;
    char target[1024], link_path[1024];
    robust_path(target, sizeof target, "real.shm");
    robust_path(link_path, sizeof link_path, "link.shm");
    assert_int_equal(robust_write_file(target, valid, valid_len), 0);
    assert_int_equal(symlink(target, link_path), 0);
    expect_refused_opts(link_path, target, NULL, "symlink to a valid arena", 1,
                        ELOOP);
    /* a relative link too */
    robust_remove(link_path);
    assert_int_equal(symlink("real.shm", link_path), 0);
    expect_refused_opts(link_path, target, NULL, "relative symlink", 1, ELOOP);
}

/* The classic temporary-file attack: a link planted where the arena will
 * be created must not make the library create (or truncate) its target. */
static void test_dangling_symlink(void **state)
{
    (void)state;
    char target[1024], link_path[1024];
    robust_path(target, sizeof target, "victim");
    robust_path(link_path, sizeof link_path, "planted.shm");
    assert_int_equal(symlink(target, link_path), 0);
    expect_refused_opts(link_path, target, NULL, "dangling symlink", 1, ELOOP);
    struct shm_arena_options excl = {.flags = SHM_ARENA_EXCLUSIVE};
    expect_refused_opts(link_path, target, &excl, "dangling symlink, EXCLUSIVE",
                        2, ELOOP, EEXIST);
    /* and a link to an existing file of someone else's */
    assert_int_equal(robust_write_file(target, "precious", 8), 0);
    expect_refused_opts(link_path, target, NULL, "symlink to a plain file", 1,
                        ELOOP);
}

static void test_directory(void **state)
{
    (void)state;
    char path[1024];
    robust_path(path, sizeof path, "dir.shm");
    assert_int_equal(mkdir(path, 0700), 0);
    expect_refused(path, "directory", 1, EINVAL);
}

/* Runs open in a child so that a blocking open fails the test instead of
 * hanging it; returns the child's errno, or -1 when it had to be killed. */
static int open_in_child(const char *path, unsigned flags)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(20);
        struct shm_arena_options opts = {.flags = flags};
        errno = 0;
        shm_arena *a = shm_arena_open(path, &opts);
        _exit(a != NULL ? 0 : (errno > 0 && errno < 255 ? errno : 255));
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        return -1;
    return WEXITSTATUS(status);
}

static void test_fifo(void **state)
{
    (void)state;
    char path[1024];
    robust_path(path, sizeof path, "fifo.shm");
    assert_int_equal(mkfifo(path, 0600), 0);
    /* first in a child: a blocked open would otherwise hang the test */
    int err = open_in_child(path, 0);
    if (err == -1)
        fail_msg("shm_arena_open blocked on a FIFO");
    assert_int_equal(err, EINVAL);
    err = open_in_child(path, SHM_ARENA_NO_CREATE);
    if (err == -1)
        fail_msg("shm_arena_open blocked on a FIFO (NO_CREATE)");
    assert_int_equal(err, EINVAL);
    expect_refused(path, "FIFO", 1, EINVAL);
}

static void test_devices(void **state)
{
    (void)state;
    const char *devices[] = {"/dev/null", "/dev/zero"};
    for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++) {
        struct stat st;
        if (stat(devices[i], &st) != 0 || !S_ISCHR(st.st_mode))
            continue;
        int err = open_in_child(devices[i], 0);
        if (err == -1)
            fail_msg("shm_arena_open blocked on %s", devices[i]);
        expect_refused(devices[i], devices[i], 1, EINVAL);
    }
}

static void test_socket(void **state)
{
    (void)state;
    char path[1024];
    robust_path(path, sizeof path, "sock.shm");
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path)
        skip();
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    /* open(2) itself refuses a socket with ENXIO */
    expect_refused(path, "socket", 2, EINVAL, ENXIO);
    close(fd);
}

/*
 * Opens path with SHM_ARENA_READ_ONLY (and `flags`) and expects it to be
 * accepted, whoever owns it: the owner check guards writers only. The
 * arena shows the valid file's figures, refuses every write with EROFS,
 * and the file and the directory stay as they were.
 */
static void expect_inspectable(const char *path, const char *what,
                               unsigned flags)
{
    struct robust_snapshot snap;
    robust_snapshot_take(path, &snap);
    char before[4096], after[4096], why[512];
    robust_dir_list(robust_dir(), before, sizeof before);
    struct shm_arena_options ro = {.flags = SHM_ARENA_READ_ONLY | flags};
    errno = 0;
    shm_arena *a = shm_arena_open(path, &ro);
    if (a == NULL)
        fail_msg("%s: read-only open refused: %s", what, strerror(errno));
    assert_int_equal(shm_arena_check(a), 0);
    assert_int_equal(shm_arena_capacity(a), valid_capacity);
    assert_int_equal(shm_arena_available(a), valid_capacity);
    struct shm_stats s;
    assert_int_equal(shm_arena_stats(a, &s), 0);
    assert_int_equal(s.mapping_size, valid_len);
    assert_int_equal(s.attached_processes, 0); /* inspectors do not count */
    errno = 0;
    assert_int_equal(shm_arena_malloc(a, 1), SHM_NULL);
    assert_int_equal(errno, EROFS);
    assert_int_equal(shm_arena_root_set(a, "inspector", SHM_NULL), EROFS);
    assert_int_equal(shm_arena_reset(a), EROFS);
    assert_int_equal(shm_arena_close(a), 0);
    if (!robust_snapshot_same(path, &snap, why, sizeof why))
        fail_msg("%s: %s", what, why);
    robust_dir_list(robust_dir(), after, sizeof after);
    if (strcmp(before, after) != 0)
        fail_msg("%s: directory was [%s], now [%s]", what, before, after);
    robust_snapshot_free(&snap);
}

static void test_other_owner(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        print_message("skipped: chown to another uid needs root\n");
        skip();
    }
    char path[1024];
    robust_path(path, sizeof path, "theirs.shm");
    assert_int_equal(robust_write_file(path, valid, valid_len), 0);
    assert_int_equal(chown(path, NOBODY, NOBODY), 0);
    expect_refused(path, "owned by another uid", 2, EACCES, EPERM);
    /* their group, even with the shared-group option */
    struct shm_arena_options group = {.flags = SHM_ARENA_SHARED_GROUP};
    expect_refused_opts(path, NULL, &group,
                        "another uid and group, SHARED_GROUP", 2, EACCES,
                        EPERM);
    /* but anyone who may read it may inspect it */
    expect_inspectable(path, "another uid, READ_ONLY", SHM_ARENA_NO_CREATE);
    expect_inspectable(path, "another uid, READ_ONLY | SHARED_GROUP",
                       SHM_ARENA_SHARED_GROUP);
    /* world-writable does not make it ours */
    assert_int_equal(chmod(path, 0666), 0);
    expect_refused(path, "another uid, mode 0666", 2, EACCES, EPERM);
    expect_inspectable(path, "another uid, mode 0666, READ_ONLY", 0);
}

static void test_shared_group(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        print_message("skipped: chown to another uid needs root\n");
        skip();
    }
    char path[1024];
    robust_path(path, sizeof path, "group.shm");
    assert_int_equal(robust_write_file(path, valid, valid_len), 0);
    assert_int_equal(chown(path, NOBODY, getegid()), 0);
    assert_int_equal(chmod(path, 0660), 0);
    /* without the option another owner is refused even in our group */
    expect_refused(path, "another uid, our group", 2, EACCES, EPERM);
    struct shm_arena_options group = {.flags = SHM_ARENA_SHARED_GROUP |
                                               SHM_ARENA_NO_CREATE};
    shm_arena *a = shm_arena_open(path, &group);
    if (a == NULL)
        fail_msg("SHARED_GROUP refused a 0660 file of our group: %s",
                 strerror(errno));
    assert_int_equal(shm_arena_check(a), 0);
    assert_int_equal(shm_arena_close(a), 0);
}

/* A file the caller may only read: as root the kernel would let it write,
 * so a child drops to another uid that owns a mode 0400 file. Writable
 * opens fail with EACCES, read-only ones work; so does a read-only open
 * of a 0644 file of another user (root's), which is refused for writing. */
static void test_read_only_file(void **state)
{
    (void)state;
    char path[1024], theirs[1024];
    robust_path(path, sizeof path, "readonly.shm");
    robust_path(theirs, sizeof theirs, "roots.shm");
    assert_int_equal(robust_write_file(path, valid, valid_len), 0);
    assert_int_equal(chmod(path, 0400), 0);
    if (geteuid() != 0) {
        expect_refused(path, "read-only file", 1, EACCES);
        expect_inspectable(path, "read-only file, READ_ONLY", 0);
        return;
    }
    assert_int_equal(chown(path, NOBODY, NOBODY), 0);
    assert_int_equal(robust_write_file(theirs, valid, valid_len), 0);
    assert_int_equal(chmod(theirs, 0644), 0);
    /* the child must reach the file as NOBODY */
    if (access(robust_dir(), X_OK) != 0) {
        print_message("skipped: scratch dir not reachable by uid %d\n", NOBODY);
        skip();
    }
    struct robust_snapshot snap, snap_theirs;
    robust_snapshot_take(path, &snap);
    robust_snapshot_take(theirs, &snap_theirs);
    char before[4096], after[4096], why[512];
    robust_dir_list(robust_dir(), before, sizeof before);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        /* [0] -1: no switch, 1: a writable open succeeded; [1] the first
         * writable errno other than EACCES (else EACCES); [2], [3] errno
         * of the read-only opens of path and theirs (0: opened, and the
         * check and capacity right); [4] errno of a writable open of
         * theirs. */
        int result[5] = {-1, 0, -1, -1, 0};
        if (setgid(NOBODY) == 0 && setuid(NOBODY) == 0) {
            unsigned flags[2] = {0, SHM_ARENA_NO_CREATE};
            result[0] = 0;
            for (int t = 0; t < 2; t++) {
                struct shm_arena_options opts = {.flags = flags[t]};
                errno = 0;
                shm_arena *a = shm_arena_open(path, &opts);
                if (a != NULL)
                    result[0] = 1;
                else if (result[1] == 0 || errno != EACCES)
                    result[1] = errno;
            }
            const char *ro_paths[2] = {path, theirs};
            for (int t = 0; t < 2; t++) {
                struct shm_arena_options ro = {.flags = SHM_ARENA_READ_ONLY};
                errno = 0;
                shm_arena *a = shm_arena_open(ro_paths[t], &ro);
                result[2 + t] = a == NULL ? errno
                                : shm_arena_check(a) == 0 &&
                                        shm_arena_capacity(a) == valid_capacity
                                    ? 0
                                    : EBADMSG;
                shm_arena_close(a);
            }
            struct shm_arena_options rw = {.flags = SHM_ARENA_NO_CREATE};
            errno = 0;
            shm_arena *a = shm_arena_open(theirs, &rw);
            result[4] = a == NULL ? errno : 0;
            shm_arena_close(a);
        }
        if (write(fds[1], result, sizeof result) != sizeof result)
            _exit(2);
        _exit(0);
    }
    close(fds[1]);
    int result[5];
    assert_int_equal(read(fds[0], result, sizeof result), sizeof result);
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (result[0] < 0) {
        print_message("skipped: cannot switch to uid %d\n", NOBODY);
        skip();
    }
    if (result[0] == 1)
        fail_msg("a read-only file was opened for writing");
    assert_int_equal(result[1], EACCES);
    if (result[2] != 0)
        fail_msg("own 0400 file, READ_ONLY: %s", strerror(result[2]));
    if (result[3] != 0)
        fail_msg("another user's 0644 file, READ_ONLY: %s",
                 strerror(result[3]));
    assert_int_equal(result[4], EACCES);
    if (!robust_snapshot_same(path, &snap, why, sizeof why))
        fail_msg("read-only file: %s", why);
    if (!robust_snapshot_same(theirs, &snap_theirs, why, sizeof why))
        fail_msg("another user's file: %s", why);
    robust_dir_list(robust_dir(), after, sizeof after);
    assert_string_equal(before, after);
    robust_snapshot_free(&snap);
    robust_snapshot_free(&snap_theirs);
}

static void test_empty_file(void **state)
{
    (void)state;
    char path[1024];
    robust_path(path, sizeof path, "empty.shm");
    assert_int_equal(robust_write_file(path, "", 0), 0);
    expect_refused(path, "empty file", 1, EBADMSG);
}

static void test_truncated(void **state)
{
    (void)state;
    char path[1024], what[128];
    robust_path(path, sizeof path, "short.shm");
    size_t lengths[] = {valid_len - 1,
                        valid_len - valid_page_size,
                        (size_t)valid_data_offset + block,
                        (size_t)valid_data_offset,
                        valid_page_size + 1,
                        valid_page_size,
                        valid_page_size - 1,
                        64,
                        48,
                        8,
                        1};
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        if (lengths[i] >= valid_len)
            continue;
        assert_int_equal(robust_write_file(path, valid, lengths[i]), 0);
        snprintf(what, sizeof what, "truncated to %zu of %zu bytes", lengths[i],
                 valid_len);
        expect_refused(path, what, 1, EBADMSG);
    }
}

static void test_wrong_magic(void **state)
{
    (void)state;
    char path[1024];
    robust_path(path, sizeof path, "magic.shm");
    const char *magics[] = {"shmalloc", "SHMALLOD", "XHMALLOC", "SHMALLO\n"};
    for (size_t i = 0; i < sizeof magics / sizeof magics[0]; i++) {
        uint8_t *copy = malloc(valid_len);
        assert_non_null(copy);
        memcpy(copy, valid, valid_len);
        memcpy(copy, magics[i], 8);
        assert_int_equal(robust_write_file(path, copy, valid_len), 0);
        free(copy);
        expect_refused(path, magics[i], 1, EPROTO);
    }
    /* a whole superblock of zeros: a file someone else created */
    uint8_t *copy = calloc(1, valid_len);
    assert_non_null(copy);
    assert_int_equal(robust_write_file(path, copy, valid_len), 0);
    free(copy);
    expect_refused(path, "all zeros", 2, EPROTO, EBADMSG);
}

static void test_wrong_version(void **state)
{
    (void)state;
    char path[1024], what[64];
    robust_path(path, sizeof path, "version.shm");
    uint32_t version = robust_get32(valid + SB_VERSION);
    uint32_t versions[] = {version + 1, version - 1, 0, UINT32_MAX,
                           __builtin_bswap32(version)};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        if (versions[i] == version)
            continue;
        write_with_field(path, SB_VERSION, W32, versions[i]);
        snprintf(what, sizeof what, "version %" PRIu32 " (ours %" PRIu32 ")",
                 versions[i], version);
        expect_refused(path, what, 1, EPROTO);
    }
}

static void test_other_fingerprint(void **state)
{
    (void)state;
    char path[1024], what[64];
    robust_path(path, sizeof path, "fingerprint.shm");
    uint64_t fp = robust_get64(valid + SB_FINGERPRINT);
    int bits[] = {0, 1, 7, 8, 31, 32, 63};
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++) {
        write_with_field(path, SB_FINGERPRINT, W64, fp ^ (1ull << bits[i]));
        snprintf(what, sizeof what, "fingerprint bit %d flipped", bits[i]);
        expect_refused(path, what, 1, EPROTO);
    }
    write_with_field(path, SB_FINGERPRINT, W64, 0);
    expect_refused(path, "fingerprint 0", 1, EPROTO);
    write_with_field(path, SB_FINGERPRINT, W64, __builtin_bswap64(fp));
    expect_refused(path, "fingerprint byte-swapped", 1, EPROTO);
}

/* A file of another size range (MIN, MAX) is another build's. */
static void test_other_size_range(void **state)
{
    (void)state;
    char path[1024], what[64];
    robust_path(path, sizeof path, "range.shm");
    uint32_t min = robust_get32(valid + SB_MIN_POW2);
    uint32_t max = robust_get32(valid + SB_MAX_POW2);
    assert_int_equal((size_t)1 << max, block);
    const struct {
        size_t at;
        uint32_t value;
    } cases[] = {{SB_MIN_POW2, min + 1}, {SB_MIN_POW2, min - 1},
                 {SB_MIN_POW2, 0},       {SB_MIN_POW2, 64},
                 {SB_MAX_POW2, max + 1}, {SB_MAX_POW2, max - 1},
                 {SB_MAX_POW2, 63},      {SB_MAX_POW2, UINT32_MAX}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_with_field(path, cases[i].at, W32, cases[i].value);
        snprintf(what, sizeof what, "size range field @%zu = %" PRIu32,
                 cases[i].at, cases[i].value);
        expect_refused(path, what, 2, EPROTO, EBADMSG);
    }
}

/* The page size is part of the build fingerprint and of the geometry:
 * either errno tells the caller that the file is not for this build. */
static void test_page_size(void **state)
{
    (void)state;
    char path[1024], what[64];
    robust_path(path, sizeof path, "page.shm");
    uint32_t sizes[] = {
        0, 1, valid_page_size / 2, 3000, valid_page_size * 2, UINT32_MAX};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        write_with_field(path, SB_PAGE_SIZE, W32, sizes[i]);
        snprintf(what, sizeof what, "page size %" PRIu32, sizes[i]);
        expect_refused(path, what, 2, EPROTO, EBADMSG);
    }
}

struct field_case {
    size_t at;
    uint64_t value;
    const char *what;
};

static void test_geometry(void **state)
{
    (void)state;
    char path[1024], what[160];
    robust_path(path, sizeof path, "geometry.shm");
    uint64_t cap = valid_capacity, size = valid_file_size;
    uint64_t data = valid_data_offset, page = valid_page_size;
    const struct field_case cases[] = {
        {SB_CAPACITY, 0, "capacity 0"},
        {SB_CAPACITY, cap + block, "capacity one block more than the file"},
        {SB_CAPACITY, cap - block, "capacity one block less than the file"},
        {SB_CAPACITY, cap + 1, "capacity not a whole number of blocks"},
        {SB_CAPACITY, cap * 2, "capacity doubled"},
        {SB_CAPACITY, UINT64_MAX, "capacity UINT64_MAX"},
        {SB_CAPACITY, 1ull << 63, "capacity 2^63"},
        {SB_CAPACITY, (UINT64_MAX / block) * block, "capacity max blocks"},
        {SB_FILE_SIZE, size + page, "file_size one page past the file"},
        {SB_FILE_SIZE, size - page, "file_size one page short"},
        {SB_FILE_SIZE, size + 1, "file_size one byte past the file"},
        {SB_FILE_SIZE, 0, "file_size 0"},
        {SB_FILE_SIZE, UINT64_MAX, "file_size UINT64_MAX"},
        {SB_DATA_OFFSET, 0, "data_offset 0"},
        {SB_DATA_OFFSET, 1, "data_offset 1"},
        {SB_DATA_OFFSET, data + 1, "data_offset misaligned"},
        {SB_DATA_OFFSET, data + page, "data_offset one page late"},
        {SB_DATA_OFFSET, data - page, "data_offset one page early"},
        {SB_DATA_OFFSET, size, "data_offset at the end of the file"},
        {SB_DATA_OFFSET, UINT64_MAX, "data_offset UINT64_MAX"},
        {SB_DATA_OFFSET, 1ull << 63, "data_offset 2^63"},
        {SB_DATA_OFFSET, (uint64_t)0 - cap, "data_offset + capacity wraps"},
        {SB_HEADER_OFFSET, 0, "header_offset 0"},
        {SB_HEADER_OFFSET, data, "header_offset at the data"},
        {SB_HEADER_OFFSET, UINT64_MAX, "header_offset UINT64_MAX"},
        {SB_INDEX_OFFSET, 0, "index_offset 0"},
        {SB_INDEX_OFFSET, size, "index_offset at the end"},
        {SB_INDEX_OFFSET, UINT64_MAX - 7, "index_offset UINT64_MAX - 7"},
        {SB_WORDS_OFFSET, 0, "words_offset 0"},
        {SB_WORDS_OFFSET, data, "words_offset at the data"},
        {SB_WORDS_OFFSET, 1ull << 63, "words_offset 2^63"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct field_case *c = &cases[i];
        write_with_field(path, c->at, W64, c->value);
        snprintf(what, sizeof what, "%s (field @%zu = %#" PRIx64 ")", c->what,
                 c->at, c->value);
        expect_refused(path, what, 1, EBADMSG);
    }
    /* consistent with each other but not with the real size: capacity and
     * file size both one block larger than the bytes on disk */
    uint8_t *copy = malloc(valid_len);
    assert_non_null(copy);
    memcpy(copy, valid, valid_len);
    robust_put64(copy + SB_CAPACITY, cap + block);
    robust_put64(copy + SB_FILE_SIZE, size + block);
    assert_int_equal(robust_write_file(path, copy, valid_len), 0);
    expect_refused(path, "capacity and file_size both past the file", 1,
                   EBADMSG);
    /* a huge arena claimed by a small file */
    robust_put64(copy + SB_CAPACITY, 1ull << 40);
    robust_put64(copy + SB_FILE_SIZE, data + (1ull << 40));
    assert_int_equal(robust_write_file(path, copy, valid_len), 0);
    expect_refused(path, "a 1 TiB arena in a small file", 1, EBADMSG);
    free(copy);
}

/* Every other 8-byte word of the superblock page: the geometry fields that
 * follow data_offset. Setting one to an absurd value must be refused, or,
 * if the word is unused padding, the file must still open and check clean.
 */
static void test_superblock_words(void **state)
{
    (void)state;
    char path[1024], what[128], printed[512];
    robust_path(path, sizeof path, "words.shm");
    const uint64_t absurd[] = {UINT64_MAX, 1ull << 63, 0x8000000000000001ull};
    struct shm_arena_options no_create = {.flags = SHM_ARENA_NO_CREATE};
    for (size_t at = 48; at + 8 <= valid_page_size && at + 8 <= valid_len;
         at += 8) {
        for (size_t v = 0; v < sizeof absurd / sizeof absurd[0]; v++) {
            if (robust_get64(valid + at) == absurd[v])
                continue;
            write_with_field(path, at, W64, absurd[v]);
            struct robust_snapshot snap;
            robust_snapshot_take(path, &snap);
            struct robust_quiet q;
            robust_quiet_begin(&q);
            errno = 0;
            shm_arena *a = shm_arena_open(path, &no_create);
            int err = errno;
            int check = a != NULL ? shm_arena_check(a) : 0;
            size_t noise = robust_quiet_end(&q, printed, sizeof printed);
            snprintf(what, sizeof what, "superblock word @%zu = %#" PRIx64, at,
                     absurd[v]);
            if (noise != 0)
                fail_msg("%s: the library printed: %s", what, printed);
            if (a != NULL) {
                /* unused word: the arena must be whole */
                if (check != 0)
                    fail_msg("%s: accepted, but check = %d", what, check);
                shm_arena_close(a);
            } else {
                /* a damaged creator uid may read as another owner */
                if (err != EBADMSG && err != EPROTO && err != EACCES &&
                    err != EPERM)
                    fail_msg("%s: errno %d (%s)", what, err, strerror(err));
                char why[512];
                if (!robust_snapshot_same(path, &snap, why, sizeof why))
                    fail_msg("%s: %s", what, why);
            }
            robust_snapshot_free(&snap);
        }
    }
}

/* Random bytes of random lengths, bare or behind a valid magic, or behind
 * the valid identity fields (magic, version, page size, fingerprint). */
static void test_random_garbage(void **state)
{
    (void)state;
    char path[1024], what[160];
    robust_path(path, sizeof path, "garbage.shm");
    uint64_t seed = robust_seed();
    uint64_t rng = seed;
    size_t max_len = 3 * (size_t)valid_page_size;
    uint8_t *buf = malloc(valid_len > max_len ? valid_len : max_len);
    assert_non_null(buf);
    for (int round = 0; round < 60; round++) {
        int kind = round % 3;
        size_t len =
            kind == 2 ? valid_len : (size_t)(robust_rand(&rng) % (max_len + 1));
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)robust_rand(&rng);
        if (kind >= 1 && len >= 8)
            memcpy(buf, "SHMALLOC", 8);
        if (kind == 2) {
            memcpy(buf, valid, 24);
            memcpy(buf + valid_page_size, valid + valid_page_size,
                   valid_len - valid_page_size);
        }
        assert_int_equal(robust_write_file(path, buf, len), 0);
        snprintf(what, sizeof what,
                 "garbage round %d (%zu bytes, kind %d), seed %#" PRIx64
                 " (rerun with ROBUST_SEED)",
                 round, len, kind, seed);
        expect_refused(path, what, 2, EBADMSG, EPROTO);
    }
    free(buf);
}

/*
 * In a child: opens a damaged file and, if it is accepted, runs
 * allocations (writing every byte handed out), frees of its own chunks and
 * of random offsets, size queries and the checker. Exit status: 0 accepted
 * and survived, 10 refused with EBADMSG/EPROTO, 11 refused with another
 * errno, 12 a chunk outside the data region, 13 more available than the
 * capacity. A crash shows as a signal.
 */
enum { DAMAGED_OK = 0, DAMAGED_REFUSED = 10 };
static const char *const damaged_what[] = {
    [11] = "refused with an undocumented errno",
    [12] = "malloc returned a chunk outside the data region",
    [13] = "available reports more than the capacity",
};

static int run_damaged(const char *path, uint64_t seed)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(60);
        struct shm_arena_options opts = {.flags = SHM_ARENA_NO_CREATE};
        shm_arena *a = shm_arena_open(path, &opts);
        if (a == NULL)
            _exit(errno == EBADMSG || errno == EPROTO ? DAMAGED_REFUSED : 11);
        uint8_t *base = shm_arena_base(a);
        uint64_t data = robust_get64(base + SB_DATA_OFFSET);
        uint64_t end = data + shm_arena_capacity(a);
        uint64_t r = seed;
        shm_offt got[64] = {0};
        for (int i = 0; i < 2000; i++) {
            uint64_t x = robust_rand(&r);
            shm_offt *slot = &got[x % 64];
            switch ((x >> 8) % 4) {
            case 0:
                if (*slot != SHM_NULL)
                    break;
                size_t n = (size_t)(x >> 16) % (2 * block);
                *slot = shm_arena_malloc(a, n);
                if (*slot == SHM_NULL)
                    break;
                if (*slot < data || *slot >= end || end - *slot < n)
                    _exit(12);
                memset(base + *slot, 0x5A, n);
                break;
            case 1:
                shm_arena_free(a, *slot);
                *slot = SHM_NULL;
                break;
            case 2:
                shm_arena_free(a, (x >> 16) % (2 * valid_len));
                break;
            default:
                (void)shm_arena_usable_size(a, (x >> 16) % valid_len);
                if (shm_arena_available(a) > shm_arena_capacity(a))
                    _exit(13);
            }
        }
        (void)shm_arena_check(a);
        shm_arena_close(a);
        _exit(DAMAGED_OK);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        return -WTERMSIG(status);
    return WEXITSTATUS(status);
}

static void expect_damaged_survives(const char *path, const char *what,
                                    uint64_t seed)
{
    int result = run_damaged(path, seed);
    if (result < 0)
        fail_msg("%s (seed %#" PRIx64 "): killed by signal %d", what, seed,
                 -result);
    if (result != DAMAGED_OK && result != DAMAGED_REFUSED)
        fail_msg("%s (seed %#" PRIx64 "): %s", what, seed,
                 result < 14 && damaged_what[result] ? damaged_what[result]
                                                     : "unexpected status");
}

/*
 * A valid superblock in front of garbage metadata (shared header and
 * bitmaps). The attach path may refuse it or accept it, but nothing may
 * crash and no chunk may lie outside the data region.
 */
static void test_garbage_metadata(void **state)
{
    (void)state;
    char path[1024], what[64];
    robust_path(path, sizeof path, "metadata.shm");
    uint64_t seed = robust_seed();
    uint64_t rng = seed;
    uint8_t *copy = malloc(valid_len);
    assert_non_null(copy);
    for (int round = 0; round < 12; round++) {
        memcpy(copy, valid, valid_len);
        for (size_t i = valid_page_size; i < valid_data_offset; i++) {
            uint64_t r = robust_rand(&rng);
            /* ones, sparse bits, random: all plausible damage */
            copy[i] = round % 3 == 0   ? 0xff
                      : round % 3 == 1 ? (uint8_t)(r & 0x81)
                                       : (uint8_t)r;
        }
        assert_int_equal(robust_write_file(path, copy, valid_len), 0);
        snprintf(what, sizeof what, "garbage metadata round %d", round);
        expect_damaged_survives(path, what, robust_rand(&rng));
    }
    free(copy);
}

/*
 * The bitmap words with every bit cleared, one word at a time: nodes past
 * the capacity (set from formatting on) then read as free. Still no chunk
 * may be handed out past the data region.
 */
static void test_cleared_bitmap_words(void **state)
{
    (void)state;
    char path[1024], what[128];
    robust_path(path, sizeof path, "cleared.shm");
    /* capacities that leave part of a bitmap word past the end */
    const size_t blocks[] = {1, 3, 5, 17};
    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
        robust_remove(path);
        assert_true(robust_make_arena(path, blocks[b] * block));
        size_t len;
        uint8_t *file = robust_read_file(path, &len);
        assert_non_null(file);
        uint64_t words = robust_get64(file + SB_WORDS_OFFSET);
        uint64_t data = robust_get64(file + SB_DATA_OFFSET);
        assert_true(words >= valid_page_size && words < data);
        for (uint64_t at = words; at < data && at < words + 64 * 8; at += 8) {
            uint64_t was = robust_get64(file + at);
            if (was == 0)
                continue;
            robust_put64(file + at, 0);
            assert_int_equal(robust_write_file(path, file, len), 0);
            robust_put64(file + at, was);
            snprintf(what, sizeof what,
                     "%zu-block arena, bitmap word @%" PRIu64 " (%#" PRIx64
                     ") cleared",
                     blocks[b], at, was);
            expect_damaged_survives(path, what, at);
        }
        free(file);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_valid_copy_opens, clean),
        cmocka_unit_test_setup(test_symlink_to_arena, clean),
        cmocka_unit_test_setup(test_dangling_symlink, clean),
        cmocka_unit_test_setup(test_directory, clean),
        cmocka_unit_test_setup(test_fifo, clean),
        cmocka_unit_test_setup(test_devices, clean),
        cmocka_unit_test_setup(test_socket, clean),
        cmocka_unit_test_setup(test_other_owner, clean),
        cmocka_unit_test_setup(test_shared_group, clean),
        cmocka_unit_test_setup(test_read_only_file, clean),
        cmocka_unit_test_setup(test_empty_file, clean),
        cmocka_unit_test_setup(test_truncated, clean),
        cmocka_unit_test_setup(test_wrong_magic, clean),
        cmocka_unit_test_setup(test_wrong_version, clean),
        cmocka_unit_test_setup(test_other_fingerprint, clean),
        cmocka_unit_test_setup(test_other_size_range, clean),
        cmocka_unit_test_setup(test_page_size, clean),
        cmocka_unit_test_setup(test_geometry, clean),
        cmocka_unit_test_setup(test_superblock_words, clean),
        cmocka_unit_test_setup(test_random_garbage, clean),
        cmocka_unit_test_setup(test_garbage_metadata, clean),
        cmocka_unit_test_setup(test_cleared_bitmap_words, clean),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
