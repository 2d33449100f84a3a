/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Named roots: errors, the table's capacity, publishing a structure that
 * unrelated processes started later find, concurrent set/cas from several
 * processes, and a slot left half written by a killed process.
 *
 * The test program re-executes itself (/proc/self/exe) as the publisher
 * and the readers, so that those share nothing with it but the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
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
#include "arena.h"
#include "shared_header.h"

#define CAPACITY ((size_t)1 << 20)
#define PUBLISHED "published.structure"
#define FILL_PATTERN 0x9e3779b97f4a7c15ull

static int setup(void **state)
{
    return fixture_setup(state, "roots", CAPACITY);
}

static int teardown(void **state)
{
    return fixture_teardown(state);
}

static shm_arena *arena_open(const char *path)
{
    struct shm_arena_options opts = {.capacity = CAPACITY};
    return shm_arena_open(path, &opts);
}

/* A chunk stamped with who allocated it and why. */
struct stamp {
    uint64_t owner;
    uint64_t index;
    uint64_t next;
    uint64_t check;
};

static shm_offt stamp_new(shm_arena *arena, uint64_t owner, uint64_t index)
{
    shm_offt off = shm_arena_malloc(arena, sizeof(struct stamp));
    if (off != SHM_NULL) {
        struct stamp *s =
            (struct stamp *)((uint8_t *)shm_arena_base(arena) + off);
        *s = (struct stamp){owner, index, SHM_NULL,
                            (owner * 31 + index) ^ FILL_PATTERN};
    }
    return off;
}

static struct stamp *stamp_at(shm_arena *arena, shm_offt off)
{
    return (struct stamp *)((uint8_t *)shm_arena_base(arena) + off);
}

static bool stamp_ok(const struct stamp *s)
{
    return s->check == ((s->owner * 31 + s->index) ^ FILL_PATTERN);
}

/* The tests below store structures of a few words; a build whose largest
 * chunk is smaller skips them. */
static void need_chunk(size_t size)
{
    if (get_shm_max_allocatable_size() < size) {
        print_message("largest chunk below %zu bytes: skipped\n", size);
        skip();
    }
}

static void name_of(char *out, size_t size, const char *prefix, int i)
{
    snprintf(out, size, "%s-%03d", prefix, i);
}

static void test_errors(void **state)
{
    struct fixture *f = *state;
    char long_name[SHM_ROOT_NAME_MAX + 2];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    shm_offt chunk = shm_arena_malloc(f->arena, 1);
    assert_int_not_equal(chunk, SHM_NULL);

    errno = 0;
    assert_int_equal(shm_arena_root_get(f->arena, NULL), SHM_NULL);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(shm_arena_root_get(f->arena, ""), SHM_NULL);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(shm_arena_root_get(f->arena, long_name), SHM_NULL);
    assert_int_equal(errno, ENAMETOOLONG);
    errno = 0;
    assert_int_equal(shm_arena_root_get(f->arena, "missing"), SHM_NULL);
    assert_int_equal(errno, ENOENT);
    errno = 0;
    assert_int_equal(shm_arena_root_get(NULL, "missing"), SHM_NULL);
    assert_int_equal(errno, EINVAL);

    assert_int_equal(shm_arena_root_set(f->arena, NULL, chunk), EINVAL);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(shm_arena_root_set(f->arena, "", chunk), EINVAL);
    assert_int_equal(shm_arena_root_set(f->arena, long_name, chunk),
                     ENAMETOOLONG);
    assert_int_equal(errno, ENAMETOOLONG);
    assert_int_equal(shm_arena_root_set(NULL, "x", chunk), EINVAL);
    /* An offset past the end of the mapping is refused, e.g. a pointer
     * passed by mistake. */
    size_t end = shm_arena_mapping_size(f->arena);
    assert_int_equal(shm_arena_root_set(f->arena, "x", end), EINVAL);
    assert_int_equal(shm_arena_root_set(f->arena, "x", UINT64_MAX), EINVAL);
    errno = 0;
    assert_false(shm_arena_root_cas(f->arena, "x", SHM_NULL, end));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_false(shm_arena_root_cas(f->arena, long_name, SHM_NULL, chunk));
    assert_int_equal(errno, ENAMETOOLONG);
    errno = 0;
    assert_false(shm_arena_root_cas(NULL, "x", SHM_NULL, chunk));
    assert_int_equal(errno, EINVAL);

    /* None of the refused calls added a name. */
    errno = 0;
    assert_int_equal(shm_arena_root_get(f->arena, "x"), SHM_NULL);
    assert_int_equal(errno, ENOENT);

    /* The longest name is accepted, and differs from its own prefix. */
    long_name[SHM_ROOT_NAME_MAX] = '\0';
    assert_int_equal(shm_arena_root_set(f->arena, long_name, chunk), 0);
    assert_int_equal(shm_arena_root_get(f->arena, long_name), chunk);
    long_name[SHM_ROOT_NAME_MAX - 1] = '\0';
    errno = 0;
    assert_int_equal(shm_arena_root_get(f->arena, long_name), SHM_NULL);
    assert_int_equal(errno, ENOENT);
}

static void test_set_get_cas(void **state)
{
    struct fixture *f = *state;
    shm_offt a = shm_arena_malloc(f->arena, 1);
    shm_offt b = shm_arena_malloc(f->arena, 1);
    assert_int_not_equal(a, SHM_NULL);
    assert_int_not_equal(b, SHM_NULL);

    assert_int_equal(shm_arena_root_set(f->arena, "one", a), 0);
    assert_int_equal(shm_arena_root_get(f->arena, "one"), a);
    assert_int_equal(shm_arena_root_set(f->arena, "one", b), 0);
    assert_int_equal(shm_arena_root_get(f->arena, "one"), b);

    /* A name that is absent holds SHM_NULL. */
    errno = 0;
    assert_false(shm_arena_root_cas(f->arena, "two", a, b));
    assert_int_equal(errno, EAGAIN);
    assert_true(shm_arena_root_cas(f->arena, "two", SHM_NULL, SHM_NULL));
    assert_true(shm_arena_root_cas(f->arena, "two", SHM_NULL, a));
    errno = 0;
    assert_false(shm_arena_root_cas(f->arena, "two", SHM_NULL, b));
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(shm_arena_root_get(f->arena, "two"), a);
    assert_true(shm_arena_root_cas(f->arena, "two", a, b));
    assert_int_equal(shm_arena_root_get(f->arena, "two"), b);
    assert_true(shm_arena_root_cas(f->arena, "two", b, b));
    errno = 0;
    assert_false(shm_arena_root_cas(f->arena, "two", a, a));
    assert_int_equal(errno, EAGAIN);

    /* SHM_NULL clears the value; the name stays and reads as absent. */
    assert_int_equal(shm_arena_root_set(f->arena, "one", SHM_NULL), 0);
    errno = 0;
    assert_int_equal(shm_arena_root_get(f->arena, "one"), SHM_NULL);
    assert_int_equal(errno, ENOENT);
    assert_true(shm_arena_root_cas(f->arena, "one", SHM_NULL, a));
    assert_int_equal(shm_arena_root_get(f->arena, "one"), a);

    /* Names are compared whole: prefixes and extensions are other names,
     * also across the 7-byte words a slot stores. */
    const char *similar[] = {
        "o",       "on",      "one!",     "onE",
        "one\x7f", "0123456", "01234567", "012345678901234"};
    for (size_t i = 0; i < sizeof similar / sizeof similar[0]; i++) {
        errno = 0;
        assert_int_equal(shm_arena_root_get(f->arena, similar[i]), SHM_NULL);
        assert_int_equal(errno, ENOENT);
        assert_int_equal(shm_arena_root_set(f->arena, similar[i], b), 0);
    }
    assert_int_equal(shm_arena_root_get(f->arena, "one"), a);
    for (size_t i = 0; i < sizeof similar / sizeof similar[0]; i++)
        assert_int_equal(shm_arena_root_get(f->arena, similar[i]), b);
}

static void test_capacity(void **state)
{
    struct fixture *f = *state;
    shm_offt chunk = shm_arena_malloc(f->arena, 1);
    char name[SHM_ROOT_NAME_MAX + 1];

    /* Storing SHM_NULL under a new name takes no slot. */
    for (int i = 0; i < 2 * SHM_ROOT_COUNT; i++) {
        name_of(name, sizeof name, "never-set", i);
        assert_int_equal(shm_arena_root_set(f->arena, name, SHM_NULL), 0);
    }
    for (int i = 0; i < SHM_ROOT_COUNT; i++) {
        /* Long names sharing 40 bytes: they differ only in the last word */
        name_of(name, sizeof name, "a-long-common-prefix-of-forty-bytes-----",
                i);
        assert_int_equal(strlen(name), SHM_ROOT_NAME_MAX - 3);
        assert_int_equal(shm_arena_root_set(f->arena, name, chunk + i), 0);
    }
    assert_int_equal(shm_arena_root_set(f->arena, "one-more", chunk), ENOSPC);
    assert_int_equal(errno, ENOSPC);
    errno = 0;
    assert_false(shm_arena_root_cas(f->arena, "one-more", SHM_NULL, chunk));
    assert_int_equal(errno, ENOSPC);
    errno = 0;
    assert_int_equal(shm_arena_root_get(f->arena, "one-more"), SHM_NULL);
    assert_int_equal(errno, ENOENT);
    /* A full table still serves and updates the names it holds. */
    for (int i = 0; i < SHM_ROOT_COUNT; i++) {
        name_of(name, sizeof name, "a-long-common-prefix-of-forty-bytes-----",
                i);
        assert_int_equal(shm_arena_root_get(f->arena, name), chunk + i);
        assert_true(
            shm_arena_root_cas(f->arena, name, chunk + i, chunk + i + 1));
    }
}

static void test_read_only(void **state)
{
    struct fixture *f = *state;
    shm_offt chunk = shm_arena_malloc(f->arena, 1);
    assert_int_equal(shm_arena_root_set(f->arena, "kept", chunk), 0);

    struct shm_arena_options opts = {.flags = SHM_ARENA_READ_ONLY};
    shm_arena *reader = shm_arena_open(f->path, &opts);
    assert_non_null(reader);
    assert_int_equal(shm_arena_root_get(reader, "kept"), chunk);
    assert_int_equal(shm_arena_root_set(reader, "kept", SHM_NULL), EROFS);
    assert_int_equal(errno, EROFS);
    assert_int_equal(shm_arena_root_set(reader, "new", chunk), EROFS);
    errno = 0;
    assert_false(shm_arena_root_cas(reader, "kept", chunk, SHM_NULL));
    assert_int_equal(errno, EROFS);
    shm_arena_close(reader);
    assert_int_equal(shm_arena_root_get(f->arena, "kept"), chunk);
    errno = 0;
    assert_int_equal(shm_arena_root_get(f->arena, "new"), SHM_NULL);
    assert_int_equal(errno, ENOENT);
}

/* The structure the publisher builds: values derived from its pid. */
struct published {
    uint64_t pid;
    uint64_t count;
    uint64_t values[];
};

static uint64_t published_value(uint64_t pid, uint64_t i)
{
    return (pid << 20 ^ i) * FILL_PATTERN;
}

static int run_publisher(const char *path)
{
    shm_arena *arena = arena_open(path);
    if (arena == NULL)
        return 10;
    size_t count = 32;
    shm_offt off = shm_arena_malloc(arena, sizeof(struct published) +
                                               count * sizeof(uint64_t));
    if (off == SHM_NULL)
        return 11;
    struct published *p =
        (struct published *)((uint8_t *)shm_arena_base(arena) + off);
    p->pid = (uint64_t)getpid();
    p->count = count;
    for (size_t i = 0; i < count; i++)
        p->values[i] = published_value(p->pid, i);
    if (shm_arena_root_set(arena, PUBLISHED, off) != 0)
        return 12;
    shm_arena_close(arena);
    return 0;
}

static int run_reader(const char *path, const char *publisher)
{
    shm_arena *arena = arena_open(path);
    if (arena == NULL)
        return 20;
    shm_offt off = shm_arena_root_get(arena, PUBLISHED);
    if (off == SHM_NULL)
        return 21;
    const struct published *p =
        (const struct published *)((uint8_t *)shm_arena_base(arena) + off);
    if (p->pid != strtoull(publisher, NULL, 10) || p->pid == (uint64_t)getpid())
        return 22;
    if (p->count != 32)
        return 23;
    for (size_t i = 0; i < p->count; i++)
        if (p->values[i] != published_value(p->pid, i))
            return 24;
    shm_arena_close(arena);
    return 0;
}

static pid_t spawn_self(const char *role, const char *path, const char *arg)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl("/proc/self/exe", "test_roots", role, path, arg, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int wait_status(pid_t pid)
{
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_publish_to_later_processes(void **state)
{
    (void)state;
    need_chunk(sizeof(struct published) + 32 * sizeof(uint64_t));
    char path[512];
    scratch_path(path, sizeof path, "published.shm");
    unlink(path);

    /* This process never maps the file: the publisher creates it, exits,
     * and readers started afterwards find the structure by its name. */
    pid_t publisher = spawn_self("--publish", path, "-");
    assert_true(publisher > 0);
    assert_int_equal(wait_status(publisher), 0);

    char pid_text[32];
    snprintf(pid_text, sizeof pid_text, "%d", (int)publisher);
    pid_t readers[3];
    for (int i = 0; i < 3; i++) {
        readers[i] = spawn_self("--read", path, pid_text);
        assert_true(readers[i] > 0);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(wait_status(readers[i]), 0);
    unlink(path);
}

enum { WORKERS = 4, SHARED_NAMES = 16, PUSHES = 300 };

/* One worker: every worker races to publish each shared name first, then
 * pushes stamped nodes onto a stack whose head is a root. Exit status:
 * how many names this worker published first. */
static int concurrent_worker(const char *path, int id, int go_fd)
{
    char byte;
    shm_arena *arena = arena_open(path);
    if (arena == NULL)
        return 100;
    if (read(go_fd, &byte, 1) != 0) /* released when the parent closes */
        return 101;
    int won = 0;
    char name[SHM_ROOT_NAME_MAX + 1];
    for (int i = 0; i < SHARED_NAMES; i++) {
        name_of(name, sizeof name, "shared name spanning several words", i);
        shm_offt mine = stamp_new(arena, (uint64_t)id, (uint64_t)i);
        if (mine == SHM_NULL)
            return 102;
        if (shm_arena_root_cas(arena, name, SHM_NULL, mine))
            won++;
        else if (errno != EAGAIN)
            return 103;
        if (shm_arena_root_set(arena, "last writer", mine) != 0)
            return 104;
        shm_offt winner = shm_arena_root_get(arena, name);
        if (winner == SHM_NULL)
            return 105;
        const struct stamp *s = stamp_at(arena, winner);
        if (!stamp_ok(s) || s->index != (uint64_t)i || s->owner >= WORKERS)
            return 106;
    }
    for (int k = 0; k < PUSHES; k++) {
        shm_offt node = stamp_new(arena, (uint64_t)id, (uint64_t)k);
        if (node == SHM_NULL)
            return 107;
        for (;;) {
            shm_offt head = shm_arena_root_get(arena, "stack");
            if (head == SHM_NULL && errno != ENOENT)
                return 108;
            stamp_at(arena, node)->next = head;
            if (shm_arena_root_cas(arena, "stack", head, node))
                break;
            if (errno != EAGAIN)
                return 109;
        }
    }
    shm_arena_close(arena);
    return won;
}

static void test_concurrent_processes(void **state)
{
    struct fixture *f = *state;
    need_chunk(sizeof(struct stamp));
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t pids[WORKERS];
    for (int w = 0; w < WORKERS; w++) {
        pids[w] = fork();
        assert_true(pids[w] >= 0);
        if (pids[w] == 0) {
            close(go[1]);
            _exit(concurrent_worker(f->path, w, go[0]));
        }
    }
    close(go[0]);
    close(go[1]); /* all workers start together */
    int won = 0;
    for (int w = 0; w < WORKERS; w++) {
        int status = wait_status(pids[w]);
        assert_in_range(status, 0, SHARED_NAMES);
        won += status;
    }
    /* Exactly one worker published each name first. */
    assert_int_equal(won, SHARED_NAMES);

    /* No push was lost or doubled. */
    bool seen[WORKERS][PUSHES] = {{false}};
    size_t nodes = 0;
    for (shm_offt off = shm_arena_root_get(f->arena, "stack"); off != SHM_NULL;
         off = stamp_at(f->arena, off)->next) {
        const struct stamp *s = stamp_at(f->arena, off);
        assert_true(stamp_ok(s));
        assert_in_range(s->owner, 0, WORKERS - 1);
        assert_in_range(s->index, 0, PUSHES - 1);
        assert_false(seen[s->owner][s->index]);
        seen[s->owner][s->index] = true;
        nodes++;
    }
    assert_int_equal(nodes, WORKERS * PUSHES);
    shm_offt last = shm_arena_root_get(f->arena, "last writer");
    assert_int_not_equal(last, SHM_NULL);
    assert_true(stamp_ok(stamp_at(f->arena, last)));

    /* The racing workers used one slot per name: SHARED_NAMES + 2 in all,
     * so exactly the rest of the table is still free. */
    char name[SHM_ROOT_NAME_MAX + 1];
    int free_slots = SHM_ROOT_COUNT - SHARED_NAMES - 2;
    for (int i = 0; i < free_slots; i++) {
        name_of(name, sizeof name, "filler", i);
        assert_int_equal(shm_arena_root_set(f->arena, name, last), 0);
    }
    assert_int_equal(shm_arena_root_set(f->arena, "filler-last", last), ENOSPC);
}

/* Slot layout, as roots.c writes it. */
static uint64_t name_word(const char *name, size_t w)
{
    uint64_t word = (uint64_t)0x01 << 56;
    size_t len = strlen(name);
    for (size_t b = 0; b < 7; b++)
        if (w * 7 + b < len)
            word |= (uint64_t)(unsigned char)name[w * 7 + b] << (8 * b);
    return word;
}

static void test_half_written_slot(void **state)
{
    struct fixture *f = *state;
    const char *victim = "name whose claimer was killed";
    shm_offt chunk = shm_arena_malloc(f->arena, 1);

    /* A process killed after writing two of the seven words of slot 0. */
    shmi_atomic_word *slot0 =
        (shmi_atomic_word *)(shmi_shared_header(&f->arena->geo) +
                             SHMI_ROOTS_OFFSET);
    atomic_store(&slot0[0], name_word(victim, 0));
    atomic_store(&slot0[1], name_word(victim, 1));

    errno = 0;
    assert_int_equal(shm_arena_root_get(f->arena, victim), SHM_NULL);
    assert_int_equal(errno, ENOENT);
    /* Other names pass the half-written slot... */
    assert_int_equal(shm_arena_root_set(f->arena, "other", chunk), 0);
    assert_int_equal(shm_arena_root_get(f->arena, "other"), chunk);
    /* ...and the same name completes it rather than taking a new slot. */
    assert_int_equal(shm_arena_root_set(f->arena, victim, chunk + 32), 0);
    assert_int_equal(shm_arena_root_get(f->arena, victim), chunk + 32);
    assert_int_equal(atomic_load(&slot0[6]), name_word(victim, 6));

    char name[SHM_ROOT_NAME_MAX + 1];
    for (int i = 0; i < SHM_ROOT_COUNT - 2; i++) {
        name_of(name, sizeof name, "filler", i);
        assert_int_equal(shm_arena_root_set(f->arena, name, chunk), 0);
    }
    assert_int_equal(shm_arena_root_set(f->arena, "filler-last", chunk),
                     ENOSPC);
}

static void test_default_arena(void **state)
{
    (void)state;
    char path[512];
    scratch_path(path, sizeof path, "default.shm");
    unlink(path);
    setenv("SHM_SIZE", "1M", 1); /* capacity of the new file */

    /* No default arena ($SHM_FILE is empty in tests). */
    if (shm_default_arena() == NULL) {
        errno = 0;
        assert_int_equal(shm_root_get("x"), SHM_NULL);
        assert_int_equal(errno, ENXIO);
        assert_int_equal(shm_root_set("x", SHM_NULL), ENXIO);
        errno = 0;
        assert_false(shm_root_cas("x", SHM_NULL, SHM_NULL));
        assert_int_equal(errno, ENXIO);
    }

    assert_true(shm_init(NULL, path));
    shm_offt chunk = shm_malloc(1);
    assert_int_not_equal(chunk, SHM_NULL);
    assert_int_equal(shm_root_set("global", chunk), 0);
    assert_int_equal(shm_root_get("global"), chunk);
    assert_true(shm_root_cas("global", chunk, SHM_NULL));
    errno = 0;
    assert_int_equal(shm_root_get("global"), SHM_NULL);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(shm_arena_root_set(shm_default_arena(), "global", chunk),
                     0);
    assert_int_equal(shm_root_get("global"), chunk);
    shm_free(chunk);
    shm_deinit();
    unlink(path);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--publish") == 0)
        return run_publisher(argv[2]);
    if (argc == 4 && strcmp(argv[1], "--read") == 0)
        return run_reader(argv[2], argv[3]);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_get_cas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capacity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
        cmocka_unit_test(test_publish_to_later_processes),
        cmocka_unit_test_setup_teardown(test_concurrent_processes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_half_written_slot, setup,
                                        teardown),
        cmocka_unit_test(test_default_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
