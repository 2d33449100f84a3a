/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The default arena's life: inert until attached, shm_init idempotent and
 * safe from many threads at once, shm_deinit then shm_init again, forked
 * children on the parent's mapping, and a mapping at a chosen address.
 *
 * The tests run in order and share the process's default arena; each
 * leaves it detached.
 */
#define _GNU_SOURCE /* setenv, mmap flags, pthread barriers */
#include "api_util.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char arena_path[4096];

static void attach_fresh(void)
{
    char size[32];
    scratch_path(arena_path, sizeof arena_path, "lifecycle.shm");
    unlink(arena_path);
    snprintf(size, sizeof size, "%zu", small_capacity());
    assert_int_equal(setenv("SHM_SIZE", size, 1), 0);
    assert_true(shm_init(NULL, arena_path));
    assert_int_equal(unsetenv("SHM_SIZE"), 0);
    assert_non_null(get_shm_user_base());
    assert_int_equal(shm_available(), small_capacity());
}

/* Nothing attached: allocation fails with want_errno (ENXIO, or the errno
 * of the attach that failed last), the rest refuses quietly. */
static void assert_detached_with(int want_errno)
{
    assert_null(get_shm_user_base());
    assert_null(shm_default_arena());

    errno = 0;
    assert_int_equal(shm_malloc(1), SHM_NULL);
    assert_int_equal(errno, want_errno);
    errno = 0;
    assert_int_equal(shm_calloc(1, 1), SHM_NULL);
    assert_int_equal(errno, want_errno);
    errno = 0;
    assert_null(ptr_malloc(1));
    assert_int_equal(errno, want_errno);
    errno = 0;
    assert_null(ptr_calloc(1, 1));
    assert_int_equal(errno, want_errno);
    assert_int_equal(shm_available(), 0);
    errno = 0;
    assert_int_equal(shm_check(), -1);
    assert_int_not_equal(errno, 0);
    errno = 0;
    assert_int_equal(shm_usable_size(4096), 0);
    assert_int_not_equal(errno, 0);
    errno = 0;
    shm_free(4096);
    assert_int_not_equal(errno, 0);
    shm_free(SHM_NULL);
    ptr_free(NULL);
}

static void assert_detached(void)
{
    assert_detached_with(ENXIO);
}

static void test_inert_until_attached(void **state)
{
    (void)state;
    const char *env = getenv("SHM_FILE");
    if (env != NULL && env[0] != '\0')
        skip(); /* run by hand with an arena attached */

    assert_detached();
    /* The sizes are known without an arena. */
    assert_true(get_shm_min_allocatable_size() >= 8);
    assert_true(get_shm_max_allocatable_size() >=
                get_shm_min_allocatable_size());
    assert_int_equal(get_sizeof_block_header(), 0);
    assert_int_equal(get_mapping_size_needed_by_shm(),
                     shm_mapping_size_for_capacity(0));

    /* No file named, none in the environment: attaching fails. */
    errno = 0;
    assert_false(shm_init(NULL, NULL));
    assert_int_not_equal(errno, 0);
    errno = 0;
    assert_false(shm_init(NULL, ""));
    int err = errno;
    assert_int_not_equal(err, 0);
    assert_detached_with(err);
    shm_deinit(); /* nothing attached: harmless */
    assert_detached_with(err);
}

static void test_init_is_idempotent(void **state)
{
    (void)state;
    attach_fresh();
    void *base = get_shm_user_base();
    shm_arena *arena = shm_default_arena();

    shm_offt off = shm_malloc(7);
    assert_int_not_equal(off, SHM_NULL);

    assert_true(shm_init(NULL, arena_path));
    assert_true(shm_init(NULL, NULL));
    char other[4096];
    scratch_path(other, sizeof other, "lifecycle-other.shm");
    assert_true(shm_init(NULL, other));
    assert_ptr_equal(get_shm_user_base(), base);
    assert_ptr_equal(shm_default_arena(), arena);
    assert_int_equal(shm_usable_size(off),
                     expected_usable(7)); /* the same arena */

    shm_free(off);
    assert_int_equal(shm_available(), small_capacity());
    shm_deinit();
    assert_detached();
    unlink(other);
}

#define INIT_THREADS 16

struct init_race {
    pthread_barrier_t go;
    void *base[INIT_THREADS];
    bool ok[INIT_THREADS];
    int err[INIT_THREADS];
    shm_offt mine[INIT_THREADS];
};

static struct init_race race;

static size_t race_size(size_t id)
{
    return 1 + id % get_shm_max_allocatable_size();
}

static void *init_racer(void *arg)
{
    size_t id = (size_t)arg;
    pthread_barrier_wait(&race.go);
    race.ok[id] = shm_init(NULL, arena_path);
    race.err[id] = errno;
    race.base[id] = get_shm_user_base();
    if (race.ok[id]) {
        race.mine[id] = shm_malloc(race_size(id));
        if (race.mine[id] != SHM_NULL)
            memset((uint8_t *)race.base[id] + race.mine[id], (int)id,
                   race_size(id));
    }
    return NULL;
}

static void test_init_from_many_threads_at_once(void **state)
{
    (void)state;
    char size[32];
    pthread_t th[INIT_THREADS];

    /* A missing file: the threads race to create it, too. */
    scratch_path(arena_path, sizeof arena_path, "lifecycle.shm");
    unlink(arena_path);
    snprintf(size, sizeof size, "%zu", small_capacity());
    assert_int_equal(setenv("SHM_SIZE", size, 1), 0);
    memset(&race, 0, sizeof race);
    assert_int_equal(pthread_barrier_init(&race.go, NULL, INIT_THREADS), 0);
    for (size_t i = 0; i < INIT_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, init_racer, (void *)i),
                         0);
    for (size_t i = 0; i < INIT_THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&race.go);
    assert_int_equal(unsetenv("SHM_SIZE"), 0);

    void *base = get_shm_user_base();
    assert_non_null(base);
    for (size_t i = 0; i < INIT_THREADS; i++) {
        if (!race.ok[i])
            fail_msg("thread %zu: shm_init failed: %s", i,
                     strerror(race.err[i]));
        assert_ptr_equal(race.base[i], base);
        assert_int_not_equal(race.mine[i], SHM_NULL);
    }
    for (size_t i = 0; i < INIT_THREADS; i++) {
        const uint8_t *p = (uint8_t *)base + race.mine[i];
        for (size_t j = 0; j < race_size(i); j++)
            assert_int_equal(p[j], (uint8_t)i);
        shm_free(race.mine[i]);
    }
    assert_int_equal(shm_available(), small_capacity());
    assert_int_equal(shm_check(), 0);
    shm_deinit();
    assert_detached();
}

static void test_deinit_then_init_again(void **state)
{
    (void)state;
    attach_fresh();
    shm_offt off = shm_calloc(1, sizeof "kept");
    assert_int_not_equal(off, SHM_NULL);
    strcpy(SHM_OFFT_TO_ADDR(off), "kept");

    shm_deinit();
    assert_detached();
    shm_deinit();
    assert_detached();

    assert_true(shm_init(NULL, arena_path));
    assert_string_equal((char *)SHM_OFFT_TO_ADDR(off), "kept");
    assert_int_equal(shm_usable_size(off), expected_usable(sizeof "kept"));
    shm_free(off);
    assert_int_equal(shm_available(), small_capacity());
    assert_int_equal(shm_check(), 0);
    shm_deinit();
    assert_detached();
}

/* Short enough for the smallest build's largest chunk (8 bytes). */
#define PARENT_TEXT "parent"
#define CHILD_TEXT "child"

/* Runs in a forked child: 0 when everything it saw was right. */
static int child_side(shm_offt from_parent, const void *parent_base, int out)
{
    if (get_shm_user_base() != parent_base)
        return 1;
    if (strcmp(SHM_OFFT_TO_ADDR(from_parent), PARENT_TEXT) != 0)
        return 2;
    shm_offt mine = shm_malloc(sizeof CHILD_TEXT);
    if (mine == SHM_NULL)
        return 3;
    strcpy(SHM_OFFT_TO_ADDR(mine), CHILD_TEXT);
    /* The child frees what the parent allocated. */
    shm_free(from_parent);
    if (shm_usable_size(from_parent) != 0)
        return 4;
    if (write(out, &mine, sizeof mine) != (ssize_t)sizeof mine)
        return 5;
    return 0;
}

static void test_forked_children_share_the_mapping(void **state)
{
    (void)state;
    enum { CHILDREN = 3 };
    attach_fresh();
    size_t start = shm_available();
    shm_offt got[CHILDREN];

    for (int c = 0; c < CHILDREN; c++) {
        int fds[2];
        shm_offt from_parent = shm_malloc(sizeof PARENT_TEXT);
        assert_int_not_equal(from_parent, SHM_NULL);
        strcpy(SHM_OFFT_TO_ADDR(from_parent), PARENT_TEXT);
        assert_int_equal(pipe(fds), 0);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            _exit(child_side(from_parent, get_shm_user_base(), fds[1]));
        }
        close(fds[1]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) != 0)
            fail_msg("child %d failed at step %d", c, WEXITSTATUS(status));
        assert_int_equal(read(fds[0], &got[c], sizeof got[c]), sizeof got[c]);
        close(fds[0]);

        assert_string_equal((char *)SHM_OFFT_TO_ADDR(got[c]), CHILD_TEXT);
        assert_int_equal(shm_usable_size(got[c]),
                         expected_usable(sizeof CHILD_TEXT));
        errno = 0;
        assert_int_equal(shm_usable_size(from_parent), 0);
        assert_int_equal(errno, EINVAL);
    }
    assert_int_equal(shm_available(),
                     start - CHILDREN * expected_usable(sizeof CHILD_TEXT));
    for (int c = 0; c < CHILDREN; c++)
        shm_free(got[c]);
    assert_int_equal(shm_available(), start);
    assert_int_equal(shm_check(), 0);
    shm_deinit();
    assert_detached();
}

static void test_init_at_a_chosen_address(void **state)
{
    (void)state;
    attach_fresh();
    size_t size = get_mapping_size_needed_by_shm();
    shm_offt off = shm_malloc(sizeof "any");
    assert_int_not_equal(off, SHM_NULL);
    strcpy(SHM_OFFT_TO_ADDR(off), "any");
    shm_deinit();

    /* Addresses aligned to the largest chunk as well as to a page, so that
     * only the range itself can be the reason for a refusal. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t align = get_shm_max_allocatable_size();
    if (align < page)
        align = page;

    /* A free range: the arena is mapped exactly there. */
    uint8_t *hole =
        mmap(NULL, size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(hole != MAP_FAILED);
    assert_int_equal(munmap(hole, size + align), 0);
    void *want =
        (void *)(((uintptr_t)hole + align - 1) & ~(uintptr_t)(align - 1));
    assert_true(shm_init(want, arena_path));
    assert_ptr_equal(get_shm_user_base(), want);
    assert_string_equal((char *)SHM_OFFT_TO_ADDR(off), "any");
    shm_deinit();

    /* A range with another mapping in its middle: refused, and that
     * mapping is left as it was. */
    uint8_t *all = mmap(NULL, size + align, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(all != MAP_FAILED);
    uint8_t *range =
        (uint8_t *)(((uintptr_t)all + align - 1) & ~(uintptr_t)(align - 1));
    uint8_t *middle = range + ((size / 2) & ~(page - 1));
    memset(middle, 0x77, page);
    assert_int_equal(munmap(all, (size_t)(middle - all)), 0);
    assert_int_equal(
        munmap(middle + page, (size_t)(all + size + align - middle - page)), 0);
    errno = 0;
    assert_false(shm_init(range, arena_path));
    assert_int_equal(errno, EEXIST);
    assert_null(get_shm_user_base());
    for (size_t i = 0; i < page; i++)
        assert_int_equal(middle[i], 0x77);
    assert_int_equal(munmap(middle, page), 0);

    /* Anywhere again. */
    assert_true(shm_init(NULL, arena_path));
    shm_free(off);
    assert_int_equal(shm_available(), small_capacity());
    assert_int_equal(shm_check(), 0);
    shm_deinit();
    assert_detached();
    unlink(arena_path);
}

/* A failed test leaves the arena attached; the next starts detached. */
static int detach(void **state)
{
    (void)state;
    shm_deinit();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_inert_until_attached, detach),
        cmocka_unit_test_teardown(test_init_is_idempotent, detach),
        cmocka_unit_test_teardown(test_init_from_many_threads_at_once, detach),
        cmocka_unit_test_teardown(test_deinit_then_init_again, detach),
        cmocka_unit_test_teardown(test_forked_children_share_the_mapping,
                                  detach),
        cmocka_unit_test_teardown(test_init_at_a_chosen_address, detach),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
