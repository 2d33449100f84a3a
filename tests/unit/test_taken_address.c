/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A new file asked for at an address range that is already mapped: the
 * open fails at once with EEXIST (not after rounds of retrying with
 * EAGAIN, as when the mapping's EEXIST was taken for a racing creator's),
 * and no file is left behind, through shm_arena_open with opts.address
 * (with and without SHM_ARENA_SAME_ADDRESS) and through shm_init.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/scratch.h"

enum { CAPACITY = 1 << 20 };

/* An address inside a mapping of ours, aligned as an arena's data would
 * be, with room for a whole arena file after it. */
static void *taken;
static size_t taken_size;

static void *taken_address(void)
{
    size_t align = get_shm_max_allocatable_size();
    if (align < (size_t)sysconf(_SC_PAGESIZE))
        align = (size_t)sysconf(_SC_PAGESIZE);
    taken_size = shm_mapping_size_for_capacity(CAPACITY) + 2 * align;
    taken =
        mmap(NULL, taken_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(taken != MAP_FAILED);
    uintptr_t p = ((uintptr_t)taken + align - 1) & ~(uintptr_t)(align - 1);
    return (void *)p;
}

static void release_taken(void)
{
    munmap(taken, taken_size);
}

/* Nothing but . and .. in the test's scratch directory. */
static void assert_directory_empty(void)
{
    char dir[4096];
    scratch_path(dir, sizeof dir, "");
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, ".."))
            fail_msg("%s left in %s", e->d_name, dir);
    closedir(d);
}

static void open_at(unsigned flags)
{
    void *addr = taken_address();
    char path[4096];
    scratch_path(path, sizeof path, "taken.shm");
    unlink(path);
    struct shm_arena_options opts = {
        .capacity = CAPACITY, .flags = flags, .address = addr};
    errno = 0;
    shm_arena *a = shm_arena_open(path, &opts);
    if (a != NULL)
        shm_arena_close(a);
    assert_null(a);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(access(path, F_OK), -1);
    assert_directory_empty();
    release_taken();
}

static void arena_open_at_a_taken_address(void **state)
{
    (void)state;
    open_at(0);
}

static void arena_open_same_address_at_a_taken_address(void **state)
{
    (void)state;
    open_at(SHM_ARENA_SAME_ADDRESS);
}

static void shm_init_at_a_taken_address(void **state)
{
    (void)state;
    void *addr = taken_address();
    char path[4096];
    scratch_path(path, sizeof path, "init-taken.shm");
    unlink(path);
    setenv("SHM_SIZE", "1M", 1);
    errno = 0;
    bool ok = shm_init(addr, path);
    unsetenv("SHM_SIZE");
    if (ok)
        shm_deinit();
    assert_false(ok);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(access(path, F_OK), -1);
    assert_directory_empty();
    /* Then the same call elsewhere works, and the file is there. */
    release_taken();
    assert_true(shm_init(NULL, path));
    assert_int_equal(access(path, F_OK), 0);
    shm_deinit();
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(arena_open_at_a_taken_address),
        cmocka_unit_test(arena_open_same_address_at_a_taken_address),
        cmocka_unit_test(shm_init_at_a_taken_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
