/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What a new file may be asked to be: its mode holds read and write bits
 * only (0666), applied exactly whatever the umask; its size in $SHM_SIZE
 * follows exactly the grammar of docs/how_to_use.md (digits, an optional
 * K/M/G/T, then optionally B or iB). Anything else is EINVAL with no file
 * created.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/scratch.h"

static void refused_modes_create_nothing(void **state)
{
    (void)state;
    static const unsigned modes[] = {04755, 02600, 01600, 0777,   0700,
                                     0755,  0100,  0001,  010000, 04000};
    char path[4096];
    scratch_path(path, sizeof path, "mode.shm");
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
        unlink(path);
        struct shm_arena_options opts = {.capacity = 1 << 20, .mode = modes[i]};
        errno = 0;
        shm_arena *a = shm_arena_open(path, &opts);
        if (a != NULL) {
            shm_arena_close(a);
            fail_msg("mode %04o accepted", modes[i]);
        }
        assert_int_equal(errno, EINVAL);
        assert_int_equal(access(path, F_OK), -1);
    }
}

static void accepted_modes_are_exact_whatever_the_umask(void **state)
{
    (void)state;
    static const unsigned modes[] = {0666, 0660, 0644, 0640, 0600, 0400};
    char path[4096];
    scratch_path(path, sizeof path, "mode.shm");
    mode_t old = umask(077);
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
        unlink(path);
        struct shm_arena_options opts = {.capacity = 1 << 20, .mode = modes[i]};
        shm_arena *a = shm_arena_open(path, &opts);
        assert_non_null(a);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, modes[i]);
        shm_arena_close(a);
    }
    unlink(path);
    umask(old);
}

/* shm_init with $SHM_SIZE = text on a missing file: refused with EINVAL
 * and nothing created. */
static void assert_size_refused(const char *text)
{
    char path[4096];
    scratch_path(path, sizeof path, "size.shm");
    unlink(path);
    setenv("SHM_SIZE", text, 1);
    errno = 0;
    bool ok = shm_init(NULL, path);
    int err = errno;
    unsetenv("SHM_SIZE");
    if (ok) {
        shm_deinit();
        unlink(path);
        fail_msg("SHM_SIZE=\"%s\" accepted", text);
    }
    if (err != EINVAL)
        fail_msg("SHM_SIZE=\"%s\": errno %d", text, err);
    assert_int_equal(access(path, F_OK), -1);
}

static void sizes_outside_the_grammar_are_refused(void **state)
{
    (void)state;
    static const char *bad[] = {
        " 8M",
        "8M ",
        "+8M",
        "-8M",
        "8 M",
        "8m",
        "8k",
        "8g",
        "8t",
        "8Mb",
        "8MIB",
        "8Mi",
        "8MiBB",
        "8B",
        "8KM",
        "M",
        "0",
        "0K",
        "0x10",
        "1e6",
        "1.5M",
        "8\n",
        "\t8",
        "99999999999999999999",
        "18446744073709551616",
        "17179869184G",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_size_refused(bad[i]);
}

/* The mapping size get_mapping_size_needed_by_shm computes for $SHM_SIZE
 * = text, which parses it as shm_init does (no file is made). */
static size_t mapping_for(const char *text)
{
    setenv("SHM_SIZE", text, 1);
    size_t n = get_mapping_size_needed_by_shm();
    unsetenv("SHM_SIZE");
    return n;
}

static void sizes_in_the_grammar_are_read_exactly(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t bytes;
    } good[] = {
        {"1048576", 1 << 20},
        {"1024K", 1 << 20},
        {"1024KB", 1 << 20},
        {"1024KiB", 1 << 20},
        {"1M", 1 << 20},
        {"1MB", 1 << 20},
        {"1MiB", 1 << 20},
        {"0001M", 1 << 20},
        {"3M", 3 << 20},
        {"1G", UINT64_C(1) << 30},
        {"2GiB", UINT64_C(2) << 30},
        {"1T", UINT64_C(1) << 40},
        {"16TiB", UINT64_C(16) << 40},
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        size_t want = shm_mapping_size_for_capacity((size_t)good[i].bytes);
        assert_true(want > good[i].bytes);
        if (mapping_for(good[i].text) != want)
            fail_msg("SHM_SIZE=\"%s\" not read as %llu bytes", good[i].text,
                     (unsigned long long)good[i].bytes);
    }
    /* and a file made with one gets that capacity */
    char path[4096];
    scratch_path(path, sizeof path, "size.shm");
    unlink(path);
    setenv("SHM_SIZE", "2MiB", 1);
    assert_true(shm_init(NULL, path));
    unsetenv("SHM_SIZE");
    assert_int_equal(shm_arena_capacity(shm_default_arena()), 2 << 20);
    shm_deinit();
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refused_modes_create_nothing),
        cmocka_unit_test(accepted_modes_are_exact_whatever_the_umask),
        cmocka_unit_test(sizes_outside_the_grammar_are_refused),
        cmocka_unit_test(sizes_in_the_grammar_are_read_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
