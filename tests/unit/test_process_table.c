/*
 * The process table: entries for each open, dead processes (exited,
 * killed, zombie, pid reused) told from live ones and cleared, a full
 * table, and removing the file when the last process detaches, also
 * against processes attaching at that moment.
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/scratch.h"

#include "arena.h"
#include "process_table.h"
#include "shared_header.h"

/* The table's layout, as process_table.c keeps it. */
#define HEADER_WORDS 8
#define SLOT_COUNT (SHMI_PROCESS_TABLE_SIZE / 8 - HEADER_WORDS)
#define PID_BITS 22
#define REMOVAL_CLAIMED ((uint64_t)1 << 62)
#define REMOVAL_COMMITTED ((uint64_t)2 << 62)
#define REMOVAL_REMOVED ((uint64_t)3 << 62)

static int setup(void **state)
{
    return fixture_setup(state, "table", (size_t)1 << 20);
}

static int teardown(void **state)
{
    return fixture_teardown(state);
}

static shm_arena *arena_open(const char *path)
{
    struct shm_arena_options opts = {.capacity = (size_t)1 << 20};
    return shm_arena_open(path, &opts);
}

static shmi_atomic_word *table_words(shm_arena *arena)
{
    return arena->processes.words;
}

static shmi_atomic_word *removal_word(shm_arena *arena)
{
    return &table_words(arena)[0];
}

static shmi_atomic_word *slot_word(shm_arena *arena, size_t i)
{
    return &table_words(arena)[HEADER_WORDS + i];
}

struct census {
    size_t entries;
    size_t live;
    size_t mine; /* live entries with this process's pid */
    uint64_t my_start;
};

static int count_entry(const struct shmi_process_info *info, void *ctx)
{
    struct census *c = ctx;
    c->entries++;
    c->live += info->live;
    if (info->live && info->pid == (uint32_t)getpid()) {
        c->mine++;
        c->my_start = info->start_time;
    }
    return 0;
}

static struct census census_of(shm_arena *arena)
{
    struct census c = {0};
    assert_int_equal(
        shmi_process_table_foreach(&arena->processes, count_entry, &c), 0);
    return c;
}

/* This process's identity, as the table stores it. */
static uint64_t my_identity(shm_arena *arena)
{
    struct census c = census_of(arena);
    assert_true(c.mine > 0);
    return (uint64_t)getpid() | c.my_start << PID_BITS;
}

static uint64_t identity_of(pid_t pid, uint64_t start)
{
    return (uint64_t)pid | start << PID_BITS;
}

/* A pid that belonged to a process now gone (and reaped). */
static pid_t dead_pid(void)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    assert_true(pid > 0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    return pid;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void test_entries_follow_open_and_close(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(shmi_process_table_live(&f->arena->processes), 1);
    struct census c = census_of(f->arena);
    assert_int_equal(c.entries, 1);
    assert_int_equal(c.mine, 1);
    assert_true(c.my_start != 0); /* /proc is mounted here */

    shm_arena *second = arena_open(f->path);
    assert_non_null(second);
    assert_int_equal(shmi_process_table_live(&f->arena->processes), 2);
    assert_int_equal(census_of(second).mine, 2);

    /* A read-only attachment writes nothing, so it is not entered. */
    struct shm_arena_options ro = {.flags = SHM_ARENA_READ_ONLY};
    shm_arena *reader = shm_arena_open(f->path, &ro);
    assert_non_null(reader);
    assert_int_equal(shmi_process_table_live(&reader->processes), 2);
    assert_int_equal(shmi_process_table_attach(&reader->processes), EROFS);
    assert_int_equal(
        shmi_process_table_detach_last(&reader->processes, f->path), EROFS);
    shm_arena_close(reader);
    assert_int_equal(shmi_process_table_live(&f->arena->processes), 2);

    shm_arena_close(second);
    assert_int_equal(shmi_process_table_live(&f->arena->processes), 1);
    assert_int_equal(census_of(f->arena).entries, 1);
}

static void test_dead_children_cleared(void **state)
{
    struct fixture *f = *state;
    enum { CHILDREN = 3 };
    int ready[2], go[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    pid_t pids[CHILDREN];
    for (int i = 0; i < CHILDREN; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(go[1]);
            shm_arena *mine = arena_open(f->path);
            char byte = mine != NULL ? 'r' : 'x';
            if (write(ready[1], &byte, 1) != 1)
                _exit(2);
            if (read(go[0], &byte, 1) != 0)
                _exit(3);
            _exit(shm_arena_close(mine) == 0 ? 0 : 4);
        }
    }
    close(ready[1]);
    close(go[0]);
    for (int i = 0; i < CHILDREN; i++) {
        char byte = 0;
        assert_int_equal(read(ready[0], &byte, 1), 1);
        assert_int_equal(byte, 'r');
    }
    assert_int_equal(shmi_process_table_live(&f->arena->processes),
                     1 + CHILDREN);

    /* Killed and not yet reaped: a zombie, no longer attached. */
    assert_int_equal(kill(pids[0], SIGKILL), 0);
    for (int tries = 0; tries < 2000; tries++) {
        struct census c = census_of(f->arena);
        if (c.live == CHILDREN)
            break;
        usleep(1000);
    }
    struct census c = census_of(f->arena);
    assert_int_equal(c.entries, 1 + CHILDREN); /* foreach changes nothing */
    assert_int_equal(c.live, CHILDREN);
    assert_int_equal(shmi_process_table_live(&f->arena->processes), CHILDREN);
    assert_int_equal(census_of(f->arena).entries, 1 + CHILDREN); /* a query */
    assert_int_equal(shmi_process_table_clear_dead(&f->arena->processes), 1);
    assert_int_equal(census_of(f->arena).entries, CHILDREN); /* cleared */
    int status;
    assert_int_equal(waitpid(pids[0], &status, 0), pids[0]);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(shmi_process_table_live(&f->arena->processes), CHILDREN);

    close(go[1]); /* the others close their arenas and exit */
    for (int i = 1; i < CHILDREN; i++) {
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    close(ready[0]);
    assert_int_equal(shmi_process_table_live(&f->arena->processes), 1);
    shmi_process_table_clear_dead(&f->arena->processes);
    assert_int_equal(census_of(f->arena).entries, 1);
}

static void test_pid_reuse_and_garbage(void **state)
{
    struct fixture *f = *state;
    uint64_t me = my_identity(f->arena);
    uint64_t start = me >> PID_BITS;
    pid_t gone = dead_pid();

    /* Entries written where open would not put them: own pid with another
     * start time (the pid reused by this process), own identity (live),
     * a reaped child, pid 0. */
    uint64_t fakes[] = {identity_of(getpid(), start + 1), me,
                        identity_of(gone, 0), identity_of(0, start)};
    /* Free slots from the end of the table: never the one that holds this
     * process's real entry (where that is depends on the pid). */
    size_t at[4], n = 0;
    for (size_t i = SLOT_COUNT; i-- > 0 && n < 4;)
        if (atomic_load(slot_word(f->arena, i)) == 0)
            at[n++] = i;
    assert_int_equal(n, 4);
    for (size_t i = 0; i < 4; i++)
        atomic_store(slot_word(f->arena, at[i]), fakes[i]);
    struct census c = census_of(f->arena);
    assert_int_equal(c.entries, 5);
    assert_int_equal(c.live, 2);
    assert_int_equal(shmi_process_table_live(&f->arena->processes), 2);
    assert_int_equal(census_of(f->arena).entries, 5); /* a query */
    assert_int_equal(shmi_process_table_clear_dead(&f->arena->processes), 3);
    assert_int_equal(census_of(f->arena).entries, 2);
    assert_int_equal(atomic_load(slot_word(f->arena, at[1])), me);
    atomic_store(slot_word(f->arena, at[1]), 0);
}

static void test_full_table(void **state)
{
    struct fixture *f = *state;
    uint64_t me = my_identity(f->arena);
    uint64_t dead = identity_of(getpid(), (me >> PID_BITS) + 1);
    size_t filled = 0;
    for (size_t i = 0; i < SLOT_COUNT; i++) {
        if (atomic_load(slot_word(f->arena, i)) == 0) {
            atomic_store(slot_word(f->arena, i), me);
            filled++;
        }
    }
    assert_int_equal(filled, SLOT_COUNT - 1);
    assert_int_equal(shmi_process_table_attach(&f->arena->processes), ENOSPC);
    /* Opening still works; the process just is not entered. */
    shm_arena *extra = arena_open(f->path);
    assert_non_null(extra);
    assert_int_equal(shm_arena_close(extra), 0);
    assert_int_equal(shmi_process_table_live(&f->arena->processes), SLOT_COUNT);

    /* Entries of dead processes are reused when no slot is free. */
    for (size_t i = 0; i < SLOT_COUNT; i++)
        if (atomic_load(slot_word(f->arena, i)) == me)
            atomic_store(slot_word(f->arena, i), dead);
    assert_int_equal(census_of(f->arena).live, 0);
    assert_int_equal(shmi_process_table_attach(&f->arena->processes), 0);
    assert_int_equal(census_of(f->arena).live, 1);
    assert_int_equal(shmi_process_table_live(&f->arena->processes), 1);
    shmi_process_table_clear_dead(&f->arena->processes);
    assert_int_equal(census_of(f->arena).entries, 1);
}

static void test_removal_word_states(void **state)
{
    struct fixture *f = *state;
    uint64_t me = my_identity(f->arena);
    uint64_t dead = identity_of(dead_pid(), 0);
    shmi_atomic_word *removal = removal_word(f->arena);

    /* A removal only claimed is cancelled by an attacher. */
    atomic_store(removal, REMOVAL_CLAIMED | me);
    assert_int_equal(shmi_process_table_attach(&f->arena->processes), 0);
    assert_int_equal(atomic_load(removal), 0);
    assert_int_equal(shmi_process_table_live(&f->arena->processes), 2);

    /* Committed by a live process: the attacher backs out. */
    atomic_store(removal, REMOVAL_COMMITTED | me);
    assert_int_equal(shmi_process_table_attach(&f->arena->processes), ESTALE);
    assert_int_equal(shmi_process_table_live(&f->arena->processes), 2);
    assert_int_equal(atomic_load(removal), REMOVAL_COMMITTED | me);

    /* Committed by a process that died before unlinking: cleared. */
    atomic_store(removal, REMOVAL_COMMITTED | dead);
    assert_int_equal(shmi_process_table_attach(&f->arena->processes), 0);
    assert_int_equal(atomic_load(removal), 0);
    assert_int_equal(shmi_process_table_live(&f->arena->processes), 3);

    atomic_store(removal, REMOVAL_REMOVED);
    assert_int_equal(shmi_process_table_attach(&f->arena->processes), ESTALE);
    assert_int_equal(shmi_process_table_live(&f->arena->processes), 3);

    /* Values no process writes (a damaged file) are cleared. */
    uint64_t damaged[] = {UINT64_MAX, REMOVAL_REMOVED | 1, 12345};
    for (size_t i = 0; i < 3; i++) {
        atomic_store(removal, damaged[i]);
        assert_int_equal(shmi_process_table_attach(&f->arena->processes), 0);
        assert_int_equal(atomic_load(removal), 0);
        shmi_process_table_detach(&f->arena->processes);
    }
    assert_int_equal(shmi_process_table_live(&f->arena->processes), 3);

    /* While other processes are attached, detaching leaves the file. */
    atomic_store(removal, 0);
    assert_int_equal(
        shmi_process_table_detach_last(&f->arena->processes, f->path), 0);
    assert_true(file_exists(f->path));
    assert_int_equal(shmi_process_table_live(&f->arena->processes), 2);
    assert_int_equal(atomic_load(removal), 0);

    /* Nobody attached, but another process is removing the file: it is
     * left to that one. */
    shmi_process_table_detach(&f->arena->processes);
    shmi_process_table_detach(&f->arena->processes);
    assert_int_equal(shmi_process_table_live(&f->arena->processes), 0);
    atomic_store(removal, REMOVAL_CLAIMED | me);
    assert_int_equal(
        shmi_process_table_detach_last(&f->arena->processes, f->path), 0);
    assert_true(file_exists(f->path));
    assert_int_equal(atomic_load(removal), REMOVAL_CLAIMED | me);

    /* A removal abandoned by a killed process is taken over. */
    atomic_store(removal, REMOVAL_CLAIMED | dead);
    assert_int_equal(
        shmi_process_table_detach_last(&f->arena->processes, f->path), 0);
    assert_false(file_exists(f->path));
    assert_int_equal(atomic_load(removal), REMOVAL_REMOVED);
}

static void test_last_process_removes_file(void **state)
{
    struct fixture *f = *state;
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        shm_arena *mine = arena_open(f->path);
        if (mine == NULL)
            _exit(1);
        /* The parent is still attached: the file stays. */
        int err = shmi_process_table_detach_last(&mine->processes, f->path);
        _exit(err == 0 && file_exists(f->path) ? 0 : 2);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(file_exists(f->path));
    assert_int_equal(shmi_process_table_live(&f->arena->processes), 1);

    assert_int_equal(
        shmi_process_table_detach_last(&f->arena->processes, f->path), 0);
    assert_false(file_exists(f->path));
    assert_int_equal(atomic_load(removal_word(f->arena)), REMOVAL_REMOVED);
    /* The next open makes a new file. */
    shm_arena *fresh = arena_open(f->path);
    assert_non_null(fresh);
    assert_int_equal(shmi_process_table_live(&fresh->processes), 1);
    assert_int_equal(atomic_load(removal_word(fresh)), 0);
    shm_arena_close(fresh);
}

static void test_removal_checks_the_path(void **state)
{
    struct fixture *f = *state;
    char other_path[512];
    scratch_path(other_path, sizeof other_path, "table-other.shm");
    unlink(other_path);
    shm_arena *other = arena_open(other_path);
    assert_non_null(other);
    shm_arena_close(other); /* nobody attached to it */

    /* A path naming another arena file is left alone, and the file of
     * this arena stays usable. */
    assert_int_equal(
        shmi_process_table_detach_last(&f->arena->processes, other_path), 0);
    assert_true(file_exists(other_path));
    assert_true(file_exists(f->path));
    assert_int_equal(atomic_load(removal_word(f->arena)), 0);
    assert_int_equal(shmi_process_table_attach(&f->arena->processes), 0);
    assert_int_equal(shmi_process_table_live(&f->arena->processes), 1);

    assert_int_equal(
        shmi_process_table_detach_last(&f->arena->processes, "/nonexistent"),
        ENOENT);
    assert_int_equal(atomic_load(removal_word(f->arena)), 0);
    assert_true(file_exists(f->path));
    assert_int_equal(shmi_process_table_attach(&f->arena->processes), 0);
    unlink(other_path);
}

/* Every child attaches, then all detach with removal at once: exactly
 * one of them removes the file. */
static void test_concurrent_last_detach(void **state)
{
    (void)state;
    enum { CHILDREN = 6, ROUNDS = 5 };
    char path[512];
    scratch_path(path, sizeof path, "table-concurrent.shm");
    for (int round = 0; round < ROUNDS; round++) {
        unlink(path);
        shm_arena *made = arena_open(path);
        assert_non_null(made);
        shm_arena_close(made);
        int ready[2], go[2];
        assert_int_equal(pipe(ready), 0);
        assert_int_equal(pipe(go), 0);
        pid_t pids[CHILDREN];
        for (int i = 0; i < CHILDREN; i++) {
            pids[i] = fork();
            assert_true(pids[i] >= 0);
            if (pids[i] == 0) {
                close(go[1]);
                shm_arena *mine = arena_open(path);
                char byte = 'r';
                if (mine == NULL || write(ready[1], &byte, 1) != 1)
                    _exit(1);
                if (read(go[0], &byte, 1) != 0)
                    _exit(2);
                _exit(shmi_process_table_detach_last(&mine->processes, path) ==
                              0
                          ? 0
                          : 3);
            }
        }
        close(ready[1]);
        close(go[0]);
        char byte;
        for (int i = 0; i < CHILDREN; i++)
            assert_int_equal(read(ready[0], &byte, 1), 1);
        close(go[1]);
        for (int i = 0; i < CHILDREN; i++) {
            int status;
            assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
            assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        close(ready[0]);
        assert_false(file_exists(path));
    }
}

static void spin(unsigned n)
{
    for (volatile unsigned i = 0; i < n; i++) {
    }
}

/* One process detaches with removal while another attaches: the attacher
 * ends attached to a file that is still at the path, or refused (ESTALE)
 * and the file gone; never attached to a removed file. */
static void test_attach_races_removal(void **state)
{
    (void)state;
    enum { ROUNDS = 300 };
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    srand(seed);
    char path[512];
    scratch_path(path, sizeof path, "table-race.shm");
    int outcomes[2] = {0, 0};
    for (int round = 0; round < ROUNDS; round++) {
        unsigned parent_spin = (unsigned)rand() % 20000;
        unsigned child_spin = (unsigned)rand() % 20000;
        unlink(path);
        shm_arena *arena = arena_open(path);
        assert_non_null(arena);
        shmi_process_table_detach(&arena->processes); /* mapped, not entered */
        int ready[2], go[2];
        assert_int_equal(pipe(ready), 0);
        assert_int_equal(pipe(go), 0);
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0) {
            close(go[1]);
            char byte = 'r';
            if (shmi_process_table_attach(&arena->processes) != 0 ||
                write(ready[1], &byte, 1) != 1 || read(go[0], &byte, 1) != 0)
                _exit(1);
            spin(child_spin);
            _exit(shmi_process_table_detach_last(&arena->processes, path) == 0
                      ? 0
                      : 2);
        }
        close(ready[1]);
        close(go[0]);
        char byte;
        assert_int_equal(read(ready[0], &byte, 1), 1);
        close(go[1]);
        spin(parent_spin);
        int err = shmi_process_table_attach(&arena->processes);
        int status;
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        close(ready[0]);
        if (err != 0 && err != ESTALE)
            fail_msg("attach: %s (seed %u)", strerror(err), seed);
        if (err == 0 && !file_exists(path))
            fail_msg("attached to a removed file, round %d (seed %u)", round,
                     seed);
        if (err == ESTALE && file_exists(path))
            fail_msg("refused but the file stays, round %d (seed %u)", round,
                     seed);
        outcomes[err == 0]++;
        shm_arena_close(arena);
    }
    unlink(path);
    print_message("attached %d, refused %d (seed %u)\n", outcomes[1],
                  outcomes[0], seed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_entries_follow_open_and_close,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_children_cleared, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pid_reuse_and_garbage, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_full_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removal_word_states, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_last_process_removes_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_removal_checks_the_path, setup,
                                        teardown),
        cmocka_unit_test(test_concurrent_last_detach),
        cmocka_unit_test(test_attach_races_removal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
