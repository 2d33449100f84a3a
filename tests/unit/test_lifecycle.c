/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Arena lifecycle: shm_arena_reset (everything freed, roots emptied,
 * refused with EBUSY while another process is attached), removal of the
 * file by the last process to close it (also when the others died), and
 * shm_arena_unlink.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/scratch.h"

#include "shm_alloc.h"

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* A child that opens path with flags, says so through a pipe, then waits
 * for its stdin-like pipe to close (or is killed). */
static pid_t start_holder(const char *path, unsigned flags, int *release)
{
    int ready[2], hold[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(hold), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        close(hold[1]);
        struct shm_arena_options opts = {.flags = flags};
        shm_arena *a = shm_arena_open(path, &opts);
        char ok = a ? 'y' : 'n';
        if (write(ready[1], &ok, 1) != 1)
            _exit(2);
        char c;
        while (read(hold[0], &c, 1) > 0)
            ;
        _exit(shm_arena_close(a) == 0 ? 0 : 3);
    }
    close(ready[1]);
    close(hold[0]);
    char ok = 0;
    assert_int_equal(read(ready[0], &ok, 1), 1);
    assert_int_equal(ok, 'y');
    close(ready[0]);
    *release = hold[1];
    return pid;
}

static void finish_holder(pid_t pid, int release)
{
    close(release);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void reset_frees_everything_and_empties_roots(void **state)
{
    (void)state;
    char path[4096];
    scratch_path(path, sizeof path, "reset.shm");
    unlink(path);
    struct shm_arena_options opts = {.capacity = 1 << 20};
    shm_arena *a = shm_arena_open(path, &opts);
    assert_non_null(a);
    size_t start = shm_arena_available(a);
    for (size_t i = 0; i < 100; i++)
        assert_true(shm_arena_malloc(
                        a, (i * 3) % (get_shm_max_allocatable_size() + 1)) !=
                    SHM_NULL);
    shm_offt keep = shm_arena_malloc(a, 8);
    assert_int_equal(shm_arena_root_set(a, "table", keep), 0);
    assert_true(shm_arena_available(a) < start);

    assert_int_equal(shm_arena_reset(a), 0);
    assert_int_equal(shm_arena_available(a), start);
    assert_int_equal(shm_arena_check(a), 0);
    errno = 0;
    assert_int_equal(shm_arena_root_get(a, "table"), SHM_NULL);
    assert_int_equal(errno, ENOENT);
    /* and it allocates as a new arena does */
    size_t max = get_shm_max_allocatable_size(), got = 0;
    while (shm_arena_malloc(a, max) != SHM_NULL)
        got += max;
    assert_int_equal(got, shm_arena_capacity(a));
    shm_arena_close(a);
    unlink(path);
}

static void reset_is_refused_while_another_process_is_attached(void **state)
{
    (void)state;
    char path[4096];
    scratch_path(path, sizeof path, "busy.shm");
    unlink(path);
    struct shm_arena_options opts = {.capacity = 1 << 20};
    shm_arena *a = shm_arena_open(path, &opts);
    assert_non_null(a);
    shm_offt off = shm_arena_malloc(a, 1);
    size_t avail = shm_arena_available(a);
    int release;
    pid_t pid = start_holder(path, 0, &release);
    errno = 0;
    assert_int_equal(shm_arena_reset(a), EBUSY);
    assert_int_equal(errno, EBUSY);
    assert_int_equal(shm_arena_available(a), avail); /* nothing changed */
    assert_int_equal(shm_arena_usable_size(a, off),
                     get_shm_min_allocatable_size());
    finish_holder(pid, release);
    assert_int_equal(shm_arena_reset(a), 0);
    shm_arena_close(a);
    unlink(path);
}

static void last_close_removes_the_file(void **state)
{
    (void)state;
    char path[4096];
    scratch_path(path, sizeof path, "last.shm");
    unlink(path);
    struct shm_arena_options opts = {.capacity = 1 << 20,
                                     .flags = SHM_ARENA_REMOVE_ON_LAST_CLOSE};
    shm_arena *a = shm_arena_open(path, &opts);
    assert_non_null(a);
    int release;
    pid_t pid = start_holder(path, SHM_ARENA_REMOVE_ON_LAST_CLOSE, &release);
    assert_int_equal(shm_arena_close(a), 0);
    assert_true(exists(path)); /* the child still has it */
    finish_holder(pid, release);
    assert_false(exists(path));
}

struct seen {
    pid_t pid;
    int live, dead;
};

static int note_process(const struct shm_process *p, void *context)
{
    struct seen *seen = context;
    if ((pid_t)p->pid == seen->pid) {
        if (p->live)
            seen->live++;
        else
            seen->dead++;
    }
    return 0;
}

static void dead_processes_do_not_keep_the_file(void **state)
{
    (void)state;
    char path[4096];
    scratch_path(path, sizeof path, "dead.shm");
    unlink(path);
    struct shm_arena_options opts = {.capacity = 1 << 20,
                                     .flags = SHM_ARENA_REMOVE_ON_LAST_CLOSE};
    shm_arena *a = shm_arena_open(path, &opts);
    assert_non_null(a);
    int release;
    pid_t pid = start_holder(path, SHM_ARENA_REMOVE_ON_LAST_CLOSE, &release);
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    close(release);
    /* the table still lists the killed child, as dead, and us as live */
    struct seen child = {pid, 0, 0}, self = {getpid(), 0, 0};
    assert_int_equal(shm_arena_processes(a, note_process, &child), 0);
    assert_int_equal(shm_arena_processes(a, note_process, &self), 0);
    assert_int_equal(child.dead, 1);
    assert_int_equal(child.live, 0);
    assert_int_equal(self.live, 1);
    assert_int_equal(shm_arena_processes(NULL, note_process, &self), EINVAL);
    struct shm_stats st;
    assert_int_equal(shm_arena_stats(a, &st), 0);
    assert_int_equal(st.attached_processes, 1);
    assert_int_equal(shm_arena_close(a), 0);
    assert_false(exists(path));
}

static void unlink_removes_only_regular_files(void **state)
{
    (void)state;
    char path[4096], dir[4096];
    scratch_path(path, sizeof path, "gone.shm");
    scratch_path(dir, sizeof dir, "a_directory");
    unlink(path);
    shm_arena *a = shm_arena_open(path, NULL);
    assert_non_null(a);
    assert_int_equal(shm_arena_unlink(path), 0);
    assert_false(exists(path));
    assert_true(shm_arena_malloc(a, 1) != SHM_NULL); /* still mapped */
    shm_arena_close(a);
    assert_int_equal(shm_arena_unlink(path), ENOENT);
    mkdir(dir, 0700);
    errno = 0;
    assert_int_equal(shm_arena_unlink(dir), EINVAL);
    assert_int_equal(errno, EINVAL);
    assert_true(exists(dir));
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reset_frees_everything_and_empties_roots),
        cmocka_unit_test(reset_is_refused_while_another_process_is_attached),
        cmocka_unit_test(last_close_removes_the_file),
        cmocka_unit_test(dead_processes_do_not_keep_the_file),
        cmocka_unit_test(unlink_removes_only_regular_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
