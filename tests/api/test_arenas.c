/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Explicit arenas: several open in one process are independent, the same
 * file opened twice is the same heap, a file keeps its allocations across
 * close and reopen, and shm_arena_open's flags and refusals.
 */
#define _GNU_SOURCE /* setenv, mmap flags, pthread barriers */
#include "api_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

static shm_arena *open_fresh(const char *name, size_t capacity, char *path,
                             size_t len)
{
    struct shm_arena_options opts = {.capacity = capacity};
    scratch_path(path, len, name);
    unlink(path);
    shm_arena *a = shm_arena_open(path, &opts);
    if (a == NULL)
        fail_msg("shm_arena_open(%s): %s", path, strerror(errno));
    assert_int_equal(shm_arena_capacity(a), capacity);
    assert_int_equal(shm_arena_available(a), capacity);
    return a;
}

/* The whole content of a file, to show that a refused open left it. */
static uint8_t *read_file(const char *path, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    close(fd);
    *len = got;
    return buf;
}

static void write_file(const char *path, const uint8_t *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        assert_true(w > 0);
        done += (size_t)w;
    }
    assert_int_equal(close(fd), 0);
}

static void assert_file_is(const char *path, const uint8_t *want, size_t len)
{
    size_t now_len;
    uint8_t *now = read_file(path, &now_len);
    assert_int_equal(now_len, len);
    assert_memory_equal(now, want, len);
    free(now);
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void test_arenas_are_independent(void **state)
{
    (void)state;
    char pa[4096], pb[4096];
    size_t cap_a = small_capacity(), cap_b = 2 * small_capacity();
    shm_arena *a = open_fresh("indep-a.shm", cap_a, pa, sizeof pa);
    shm_arena *b = open_fresh("indep-b.shm", cap_b, pb, sizeof pb);
    size_t max = get_shm_max_allocatable_size();

    assert_ptr_not_equal(shm_arena_base(a), shm_arena_base(b));

    /* Fill a completely: b does not notice. */
    size_t n = cap_a / max;
    shm_offt *offs = malloc(n * sizeof *offs);
    assert_non_null(offs);
    for (size_t i = 0; i < n; i++) {
        offs[i] = shm_arena_malloc(a, max);
        assert_int_not_equal(offs[i], SHM_NULL);
        memset((uint8_t *)shm_arena_base(a) + offs[i], 'a', max);
    }
    errno = 0;
    assert_int_equal(shm_arena_malloc(a, 1), SHM_NULL);
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(shm_arena_available(b), cap_b);

    shm_offt ob = shm_arena_malloc(b, max);
    assert_int_not_equal(ob, SHM_NULL);
    memset((uint8_t *)shm_arena_base(b) + ob, 'b', max);

    /* An offset live in a but not in b is refused by b, and the reverse. */
    for (size_t i = 0; i < n; i++) {
        if (offs[i] == ob)
            continue;
        errno = 0;
        shm_arena_free(b, offs[i]);
        assert_int_equal(errno, EINVAL);
        assert_int_equal(shm_arena_usable_size(a, offs[i]), max);
    }
    errno = 0;
    shm_arena_ptr_free(b, (uint8_t *)shm_arena_base(a) + offs[0]);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    shm_arena_ptr_free(a, (uint8_t *)shm_arena_base(b) + ob);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(shm_arena_usable_size(b, ob), max);

    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = (uint8_t *)shm_arena_base(a) + offs[i];
        for (size_t j = 0; j < max; j++)
            assert_int_equal(p[j], 'a');
        shm_arena_free(a, offs[i]);
    }
    const uint8_t *q = (uint8_t *)shm_arena_base(b) + ob;
    for (size_t j = 0; j < max; j++)
        assert_int_equal(q[j], 'b');
    shm_arena_free(b, ob);

    assert_int_equal(shm_arena_available(a), cap_a);
    assert_int_equal(shm_arena_available(b), cap_b);
    assert_int_equal(shm_arena_check(a), 0);
    assert_int_equal(shm_arena_check(b), 0);
    assert_int_equal(shm_arena_close(a), 0);
    assert_int_equal(shm_arena_close(b), 0);
    free(offs);
    unlink(pa);
    unlink(pb);
}

/* The default arena and an explicit one do not share anything. */
static void test_default_arena_is_separate(void **state)
{
    (void)state;
    char pd[4096], pe[4096];
    scratch_path(pd, sizeof pd, "default.shm");
    unlink(pd);
    assert_true(shm_init(NULL, pd));
    size_t start = shm_available();
    shm_arena *e = open_fresh("explicit.shm", small_capacity(), pe, sizeof pe);

    assert_ptr_not_equal(shm_arena_base(e), get_shm_user_base());
    assert_ptr_not_equal(e, shm_default_arena());
    shm_offt off = shm_arena_malloc(e, 1);
    assert_int_not_equal(off, SHM_NULL);
    assert_int_equal(shm_available(), start);
    errno = 0;
    assert_int_equal(shm_usable_size(off), 0);
    assert_int_equal(errno, EINVAL);

    shm_offt d = shm_malloc(1);
    assert_int_not_equal(d, SHM_NULL);
    assert_int_equal(shm_arena_available(e),
                     small_capacity() - get_shm_min_allocatable_size());
    shm_free(d);
    shm_arena_free(e, off);
    assert_int_equal(shm_available(), start);
    assert_int_equal(shm_arena_available(e), small_capacity());
    assert_int_equal(shm_arena_close(e), 0);
    shm_deinit();
    unlink(pd);
    unlink(pe);
}

/* Two handles on one file are two views of the same heap. */
static void test_same_file_opened_twice(void **state)
{
    (void)state;
    char path[4096];
    shm_arena *a = open_fresh("twice.shm", small_capacity(), path, sizeof path);
    shm_arena *b = shm_arena_open(path, NULL);
    assert_non_null(b);
    assert_int_equal(shm_arena_capacity(b), small_capacity());

    /* Texts fit the smallest build's largest chunk (8 bytes). */
    static const char text[] = "via a";
    shm_offt off = shm_arena_malloc(a, sizeof text);
    assert_int_not_equal(off, SHM_NULL);
    strcpy((char *)shm_arena_base(a) + off, text);
    assert_string_equal((char *)shm_arena_base(b) + off, text);
    assert_int_equal(shm_arena_usable_size(b, off),
                     expected_usable(sizeof text));
    assert_int_equal(shm_arena_available(b),
                     small_capacity() - expected_usable(sizeof text));

    shm_arena_free(b, off);
    assert_int_equal(shm_arena_available(a), small_capacity());
    errno = 0;
    shm_arena_free(a, off);
    assert_int_equal(errno, EINVAL);

    assert_int_equal(shm_arena_close(b), 0);
    assert_int_equal(shm_arena_check(a), 0);
    assert_int_equal(shm_arena_close(a), 0);
    unlink(path);
}

/* Allocations live in the file, not in the process. */
static void test_allocations_survive_close_and_reopen(void **state)
{
    (void)state;
    char path[4096];
    shm_arena *a =
        open_fresh("persist.shm", small_capacity(), path, sizeof path);
    static const char text[] = "kept";
    shm_offt off = shm_arena_calloc(a, 1, sizeof text);
    assert_int_not_equal(off, SHM_NULL);
    strcpy((char *)shm_arena_base(a) + off, text);
    assert_int_equal(shm_arena_close(a), 0);

    /* The capacity option only applies to a new file. */
    struct shm_arena_options bigger = {.capacity = 4 * small_capacity()};
    a = shm_arena_open(path, &bigger);
    assert_non_null(a);
    assert_int_equal(shm_arena_capacity(a), small_capacity());
    assert_string_equal((char *)shm_arena_base(a) + off, text);
    assert_int_equal(shm_arena_usable_size(a, off),
                     expected_usable(sizeof text));
    assert_int_equal(shm_arena_available(a),
                     small_capacity() - expected_usable(sizeof text));
    shm_arena_free(a, off);
    assert_int_equal(shm_arena_available(a), small_capacity());
    assert_int_equal(shm_arena_check(a), 0);
    assert_int_equal(shm_arena_close(a), 0);
    unlink(path);
}

static void test_open_flags(void **state)
{
    (void)state;
    char path[4096];
    struct stat st;
    scratch_path(path, sizeof path, "flags.shm");
    unlink(path);

    struct shm_arena_options no_create = {.flags = SHM_ARENA_NO_CREATE};
    errno = 0;
    assert_null(shm_arena_open(path, &no_create));
    assert_int_equal(errno, ENOENT);
    assert_int_equal(stat(path, &st), -1);

    struct shm_arena_options exclusive = {.capacity = small_capacity(),
                                          .flags = SHM_ARENA_EXCLUSIVE};
    shm_arena *a = shm_arena_open(path, &exclusive);
    assert_non_null(a);
    shm_offt off = shm_arena_malloc(a, 1);
    assert_int_not_equal(off, SHM_NULL);
    assert_int_equal(shm_arena_close(a), 0);

    size_t len;
    uint8_t *before = read_file(path, &len);
    errno = 0;
    assert_null(shm_arena_open(path, &exclusive));
    assert_int_equal(errno, EEXIST);
    assert_file_is(path, before, len);

    a = shm_arena_open(path, &no_create);
    assert_non_null(a);
    assert_int_equal(shm_arena_usable_size(a, off),
                     get_shm_min_allocatable_size());
    shm_arena_free(a, off);
    assert_int_equal(shm_arena_close(a), 0);
    free(before);
    unlink(path);
}

static void test_new_file_mode(void **state)
{
    (void)state;
    char path[4096];
    struct stat st;
    mode_t old = umask(022);
    scratch_path(path, sizeof path, "mode.shm");

    unlink(path);
    shm_arena *a = shm_arena_open(path, NULL);
    assert_non_null(a);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(shm_arena_close(a), 0);

    unlink(path);
    struct shm_arena_options opts = {.capacity = small_capacity(),
                                     .mode = 0640};
    a = shm_arena_open(path, &opts);
    assert_non_null(a);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(shm_arena_close(a), 0);
    unlink(path);
    umask(old);
}

/* Refused files are left exactly as they were, and a refused creation
 * leaves nothing behind in the directory. */
static void test_open_refusals(void **state)
{
    (void)state;
    char dir[4096], path[4096], link_path[4096];
    size_t len;
    scratch_path(dir, sizeof dir, "refusals");
    mkdir(dir, 0700);
    scratch_path(path, sizeof path, "refusals/valid.shm");
    scratch_path(link_path, sizeof link_path, "refusals/link.shm");
    unlink(path);
    unlink(link_path);

    /* A directory. */
    errno = 0;
    assert_null(shm_arena_open(dir, NULL));
    assert_int_equal(errno, EINVAL);

    /* A symbolic link, even to a valid arena. */
    struct shm_arena_options opts = {.capacity = small_capacity()};
    shm_arena *a = shm_arena_open(path, &opts);
    assert_non_null(a);
    assert_int_equal(shm_arena_close(a), 0);
    assert_int_equal(symlink(path, link_path), 0);
    uint8_t *valid = read_file(path, &len);
    errno = 0;
    assert_null(shm_arena_open(link_path, NULL));
    assert_int_equal(errno, ELOOP);
    assert_file_is(path, valid, len);
    unlink(link_path);

    /* Not an arena: wrong magic. */
    char garbage_path[4096];
    scratch_path(garbage_path, sizeof garbage_path, "refusals/garbage.shm");
    uint8_t *garbage = malloc(len);
    assert_non_null(garbage);
    memset(garbage, 0x5a, len);
    write_file(garbage_path, garbage, len);
    errno = 0;
    assert_null(shm_arena_open(garbage_path, NULL));
    assert_int_equal(errno, EPROTO);
    assert_file_is(garbage_path, garbage, len);
    unlink(garbage_path);

    /* An empty file. */
    write_file(garbage_path, garbage, 0);
    errno = 0;
    assert_null(shm_arena_open(garbage_path, NULL));
    assert_true(errno == EPROTO || errno == EBADMSG);
    assert_file_is(garbage_path, garbage, 0);
    unlink(garbage_path);

    /* A valid arena cut short: its superblock claims more than there is. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    write_file(garbage_path, valid, len - page);
    errno = 0;
    assert_null(shm_arena_open(garbage_path, NULL));
    assert_int_equal(errno, EBADMSG);
    assert_file_is(garbage_path, valid, len - page);
    unlink(garbage_path);

    /* Impossible options create nothing. */
    size_t entries = count_entries(dir);
    char new_path[4096];
    scratch_path(new_path, sizeof new_path, "refusals/new.shm");
    struct shm_arena_options huge = {.capacity = SIZE_MAX};
    errno = 0;
    assert_null(shm_arena_open(new_path, &huge));
    assert_int_equal(errno, EINVAL);
    struct shm_arena_options unknown_flag = {.flags = 1u << 30};
    errno = 0;
    assert_null(shm_arena_open(new_path, &unknown_flag));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(count_entries(dir), entries);

    /* A NULL path. */
    errno = 0;
    assert_null(shm_arena_open(NULL, NULL));
    assert_int_equal(errno, EINVAL);

    assert_file_is(path, valid, len);
    free(valid);
    free(garbage);
    unlink(path);
    rmdir(dir);
}

static void test_close_and_sizes(void **state)
{
    (void)state;
    assert_int_equal(shm_arena_close(NULL), 0);

    size_t cap = small_capacity();
    size_t one = shm_mapping_size_for_capacity(cap);
    size_t two = shm_mapping_size_for_capacity(2 * cap);
    assert_true(one >= cap);
    assert_true(two >= 2 * cap);
    assert_true(two > one);
    assert_true(shm_mapping_size_for_capacity(0) > 0);

    errno = 0;
    assert_int_equal(shm_mapping_size_for_capacity(SIZE_MAX), 0);
    assert_int_equal(errno, EINVAL);

    /* The size of a default-capacity file, with nothing attached. */
    assert_null(shm_default_arena());
    assert_int_equal(get_mapping_size_needed_by_shm(),
                     shm_mapping_size_for_capacity(0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_close_and_sizes),
        cmocka_unit_test(test_arenas_are_independent),
        cmocka_unit_test(test_default_arena_is_separate),
        cmocka_unit_test(test_same_file_opened_twice),
        cmocka_unit_test(test_allocations_survive_close_and_reopen),
        cmocka_unit_test(test_open_flags),
        cmocka_unit_test(test_new_file_mode),
        cmocka_unit_test(test_open_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
