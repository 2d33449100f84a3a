/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * SHM_ARENA_SAME_ADDRESS: an unrelated process (this test run again with
 * exec, so with its own address-space layout) maps the file where its
 * creator did and follows plain pointers the creator stored; a second
 * mapping of the same range in one process is refused with EEXIST, never
 * placed over the first.
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

struct node {
    struct node *next; /* a plain pointer, valid at the same address */
    int value;
};

static char self_path[4096];

/* The exec'd side: prints the sum of the list it finds through the
 * pointer stored at the start of the first chunk. */
static int child_main(const char *path, const char *head_text)
{
    struct shm_arena_options opts = {.flags = SHM_ARENA_SAME_ADDRESS |
                                              SHM_ARENA_NO_CREATE};
    shm_arena *a = shm_arena_open(path, &opts);
    if (!a)
        return 10;
    struct node *head = (struct node *)(uintptr_t)strtoull(head_text, 0, 16);
    int sum = 0;
    for (struct node *n = head; n; n = n->next)
        sum += n->value;
    shm_arena_close(a);
    return sum == 55 ? 0 : 11;
}

static void pointers_work_in_an_exec_d_process(void **state)
{
    (void)state;
    if (get_shm_max_allocatable_size() < sizeof(struct node)) {
        skip(); /* a list node does not fit the largest chunk */
        return;
    }
    char path[4096];
    scratch_path(path, sizeof path, "same.shm");
    unlink(path);
    struct shm_arena_options opts = {.capacity = 1 << 20};
    shm_arena *a = shm_arena_open(path, &opts);
    assert_non_null(a);
    struct node *head = NULL;
    for (int v = 10; v >= 1; v--) {
        struct node *n = shm_arena_ptr_malloc(a, sizeof *n);
        assert_non_null(n);
        n->value = v;
        n->next = head;
        head = n;
    }
    char head_text[32];
    snprintf(head_text, sizeof head_text, "%llx",
             (unsigned long long)(uintptr_t)head);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* exec drops every mapping: the new image maps the file again
         * by itself, at the recorded address. */
        execl(self_path, self_path, "--child", path, head_text, (char *)0);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    shm_arena_close(a);
    unlink(path);
}

static void an_occupied_range_is_refused(void **state)
{
    (void)state;
    char path[4096];
    scratch_path(path, sizeof path, "taken.shm");
    unlink(path);
    struct shm_arena_options opts = {.capacity = 1 << 20};
    shm_arena *first = shm_arena_open(path, &opts);
    assert_non_null(first);
    uint8_t before = *(uint8_t *)shm_arena_base(first);
    opts.flags = SHM_ARENA_SAME_ADDRESS;
    errno = 0;
    assert_null(shm_arena_open(path, &opts));
    assert_int_equal(errno, EEXIST);
    /* the first mapping is intact */
    assert_int_equal(*(uint8_t *)shm_arena_base(first), before);
    assert_int_equal(shm_arena_check(first), 0);
    shm_arena_close(first);
    /* once the range is free again, the same address is granted */
    shm_arena *again = shm_arena_open(path, &opts);
    assert_non_null(again);
    shm_arena_close(again);
    unlink(path);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--child") == 0)
        return child_main(argv[2], argv[3]);
    if (!realpath("/proc/self/exe", self_path))
        snprintf(self_path, sizeof self_path, "%s", argv[0]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pointers_work_in_an_exec_d_process),
        cmocka_unit_test(an_occupied_range_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
