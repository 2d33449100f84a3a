/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shm_strdup, shm_strndup, shm_memdup and their arena twins: copies read
 * back byte for byte (also by another process), truncation, the NUL,
 * errors.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/scratch.h"

#include "shm_alloc.h"

/* Room for a few of the largest chunks, whatever the build's range. */
static size_t dup_capacity(void)
{
    size_t capacity = 4 * get_shm_max_allocatable_size();
    return capacity > ((size_t)1 << 20) ? capacity : (size_t)1 << 20;
}

static int setup(void **state)
{
    return fixture_setup(state, "dup", dup_capacity());
}

static int teardown(void **state)
{
    return fixture_teardown(state);
}

static char *at(shm_arena *arena, shm_offt off)
{
    return (char *)shm_arena_base(arena) + off;
}

static void test_strdup(void **state)
{
    struct fixture *f = *state;
    char text[16]; /* "shared text", cut to fit the largest chunk */
    size_t max = get_shm_max_allocatable_size();
    snprintf(text, max < sizeof text ? max : sizeof text, "shared text");
    shm_offt off = shm_arena_strdup(f->arena, text);
    assert_int_not_equal(off, SHM_NULL);
    assert_string_equal(at(f->arena, off), text);
    assert_ptr_not_equal(at(f->arena, off), text);
    assert_true(shm_arena_usable_size(f->arena, off) >= strlen(text) + 1);

    shm_offt empty = shm_arena_strdup(f->arena, "");
    assert_int_not_equal(empty, SHM_NULL);
    assert_int_not_equal(empty, off);
    assert_string_equal(at(f->arena, empty), "");

    /* The longest string that fits the largest chunk with its NUL. */
    char *big = malloc(max + 1);
    memset(big, 'b', max);
    big[max - 1] = '\0';
    shm_offt fits = shm_arena_strdup(f->arena, big);
    assert_int_not_equal(fits, SHM_NULL);
    assert_memory_equal(at(f->arena, fits), big, max);
    big[max - 1] = 'b';
    big[max] = '\0';
    errno = 0;
    assert_int_equal(shm_arena_strdup(f->arena, big), SHM_NULL);
    assert_int_equal(errno, ENOMEM);
    free(big);

    shm_arena_free(f->arena, off);
    shm_arena_free(f->arena, empty);
    shm_arena_free(f->arena, fits);
    assert_int_equal(shm_arena_check(f->arena), 0);
}

static void test_strndup(void **state)
{
    struct fixture *f = *state;
    shm_offt off = shm_arena_strndup(f->arena, "abcdef", 3);
    assert_int_not_equal(off, SHM_NULL);
    assert_memory_equal(at(f->arena, off), "abc", 4);
    shm_arena_free(f->arena, off);

    off = shm_arena_strndup(f->arena, "ab", 100);
    assert_int_not_equal(off, SHM_NULL);
    assert_memory_equal(at(f->arena, off), "ab", 3);
    shm_arena_free(f->arena, off);

    off = shm_arena_strndup(f->arena, "abc", 0);
    assert_int_not_equal(off, SHM_NULL);
    assert_int_equal(at(f->arena, off)[0], '\0');
    shm_arena_free(f->arena, off);

    /* Only n bytes are read: the source need not be terminated. */
    char unterminated[4] = {'w', 'x', 'y', 'z'};
    off = shm_arena_strndup(f->arena, unterminated, sizeof unterminated);
    assert_int_not_equal(off, SHM_NULL);
    assert_memory_equal(at(f->arena, off), "wxyz", 5);
    shm_arena_free(f->arena, off);
    assert_int_equal(shm_arena_check(f->arena), 0);
}

static void test_memdup(void **state)
{
    struct fixture *f = *state;
    unsigned char bytes[300];
    size_t len = sizeof bytes;
    if (len > get_shm_max_allocatable_size())
        len = get_shm_max_allocatable_size();
    for (size_t i = 0; i < len; i++)
        bytes[i] = (unsigned char)(i * 7 + 1);
    bytes[len / 2] = 0; /* embedded NULs are copied like any byte */
    shm_offt off = shm_arena_memdup(f->arena, bytes, len);
    assert_int_not_equal(off, SHM_NULL);
    assert_memory_equal(at(f->arena, off), bytes, len);
    assert_true(shm_arena_usable_size(f->arena, off) >= len);

    /* Another process reads the copy through its own mapping. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        shm_arena *other = shm_arena_open(f->path, NULL);
        _exit(other != NULL && memcmp(at(other, off), bytes, len) == 0 ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    shm_offt none = shm_arena_memdup(f->arena, bytes, 0);
    assert_int_not_equal(none, SHM_NULL);
    assert_int_not_equal(none, off);

    size_t max = get_shm_max_allocatable_size();
    unsigned char *big = calloc(1, max + 1);
    errno = 0;
    assert_int_equal(shm_arena_memdup(f->arena, big, max + 1), SHM_NULL);
    assert_int_equal(errno, ENOMEM);
    free(big);

    shm_arena_free(f->arena, off);
    shm_arena_free(f->arena, none);
    assert_int_equal(shm_arena_check(f->arena), 0);
}

static void test_errors(void **state)
{
    struct fixture *f = *state;
    size_t before = shm_arena_available(f->arena);
    errno = 0;
    assert_int_equal(shm_arena_strdup(f->arena, NULL), SHM_NULL);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(shm_arena_strndup(f->arena, NULL, 4), SHM_NULL);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(shm_arena_memdup(f->arena, NULL, 4), SHM_NULL);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(shm_arena_memdup(f->arena, NULL, 0), SHM_NULL);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(shm_arena_strdup(NULL, "x"), SHM_NULL);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(shm_arena_memdup(NULL, "x", 1), SHM_NULL);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(shm_arena_available(f->arena), before);
    assert_int_equal(shm_arena_check(f->arena), 0);
}

static void test_default_arena(void **state)
{
    (void)state;
    if (shm_default_arena() == NULL) {
        errno = 0;
        assert_int_equal(shm_strdup("x"), SHM_NULL);
        assert_int_equal(errno, ENXIO);
        errno = 0;
        assert_int_equal(shm_strndup("x", 1), SHM_NULL);
        assert_int_equal(errno, ENXIO);
        errno = 0;
        assert_int_equal(shm_memdup("x", 1), SHM_NULL);
        assert_int_equal(errno, ENXIO);
    }
    char path[512];
    scratch_path(path, sizeof path, "dup-default.shm");
    unlink(path);
    setenv("SHM_SIZE", "1M", 1); /* capacity of the new file */
    assert_true(shm_init(NULL, path));
    size_t before = shm_available();

    shm_offt s = shm_strdup("global");
    shm_offt n = shm_strndup("global", 4);
    shm_offt m = shm_memdup("\x01\x00\x02", 3);
    assert_int_not_equal(s, SHM_NULL);
    assert_int_not_equal(n, SHM_NULL);
    assert_int_not_equal(m, SHM_NULL);
    assert_string_equal(SHM_OFFT_TO_ADDR(s), "global");
    assert_string_equal(SHM_OFFT_TO_ADDR(n), "glob");
    assert_memory_equal(SHM_OFFT_TO_ADDR(m), "\x01\x00\x02", 3);
    errno = 0;
    assert_int_equal(shm_strdup(NULL), SHM_NULL);
    assert_int_equal(errno, EINVAL);

    shm_free(s);
    shm_free(n);
    shm_free(m);
    assert_int_equal(shm_available(), before);
    assert_int_equal(shm_check(), 0);
    shm_deinit();
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_strdup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strndup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memdup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test(test_default_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
