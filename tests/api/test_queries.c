/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Queries write nothing: statistics, the largest free chunk, available
 * bytes, block usage, the check and the process list, called on a
 * writable handle of a file whose process table holds a dead process's
 * entry, leave every byte of the file as it was. (Cleaning up after the
 * dead is the job of the next open, which the last test shows.)
 */
#define _POSIX_C_SOURCE 200809L

#include "api_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* The whole file, read through a descriptor of its own. */
static unsigned char *file_bytes(const char *path, size_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    unsigned char *buf = malloc((size_t)st.st_size);
    assert_non_null(buf);
    size_t done = 0;
    while (done < (size_t)st.st_size) {
        ssize_t n =
            pread(fd, buf + done, (size_t)st.st_size - done, (off_t)done);
        assert_true(n > 0);
        done += (size_t)n;
    }
    close(fd);
    *size = done;
    return buf;
}

struct listing {
    size_t live, dead;
};

static int count_process(const struct shm_process *p, void *ctx)
{
    struct listing *l = ctx;
    if (p->live)
        l->live++;
    else
        l->dead++;
    return 0;
}

static struct listing listing_of(shm_arena *arena)
{
    struct listing l = {0, 0};
    assert_int_equal(shm_arena_processes(arena, count_process, &l), 0);
    return l;
}

/* A child opens the file writable, allocates, and is killed holding it. */
static void leave_a_dead_entry(const char *path)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        shm_arena *mine = shm_arena_open(path, NULL);
        if (mine == NULL || shm_arena_malloc(mine, 1) == SHM_NULL)
            _exit(2);
        raise(SIGKILL);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void test_queries_leave_the_file_untouched(void **state)
{
    (void)state;
    char path[512];
    scratch_path(path, sizeof path, "queries.shm");
    unlink(path);
    struct shm_arena_options opts = {
        .capacity = 4 * get_shm_max_allocatable_size() + (1 << 20)};
    shm_arena *arena = shm_arena_open(path, &opts);
    assert_non_null(arena);
    shm_offt kept = shm_arena_malloc(arena, get_shm_max_allocatable_size());
    assert_true(kept != SHM_NULL);
    leave_a_dead_entry(path);
    struct listing before_listing = listing_of(arena);
    assert_int_equal(before_listing.live, 1);
    assert_int_equal(before_listing.dead, 1);

    size_t size_before, size_after;
    unsigned char *before = file_bytes(path, &size_before);
    struct shm_stats stats;
    assert_int_equal(shm_arena_stats(arena, &stats), 0);
    assert_int_equal(stats.attached_processes, 1);
    assert_true(stats.bytes_in_use >= get_shm_max_allocatable_size() +
                                          get_shm_min_allocatable_size());
    assert_true(shm_arena_maxsize(arena) > 0);
    assert_true(shm_arena_available(arena) > 0);
    uint32_t used[4];
    assert_int_equal(shm_arena_block_usage(arena, 0, 1, used), 0);
    assert_int_equal(shm_arena_check(arena), 0);
    struct listing again = listing_of(arena);
    assert_int_equal(again.dead, 1);
    unsigned char *after = file_bytes(path, &size_after);
    assert_int_equal(size_before, size_after);
    assert_memory_equal(before, after, size_before);
    free(before);
    free(after);

    /* A recovery clears the dead entry (an open recovers only a window of
     * the table, which may or may not hold it). */
    shm_arena *second = shm_arena_open(path, NULL);
    assert_non_null(second);
    assert_int_equal(shm_arena_recover(second, NULL), 0);
    struct listing cleaned = listing_of(arena);
    assert_int_equal(cleaned.live, 2);
    assert_int_equal(cleaned.dead, 0);
    assert_int_equal(shm_arena_close(second), 0);
    shm_arena_free(arena, kept);
    assert_int_equal(shm_arena_close(arena), 0);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queries_leave_the_file_untouched),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
