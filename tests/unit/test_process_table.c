/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The process table: entries for each open, dead processes (killed, pid
 * reused, in another pid namespace) told from live ones by the kernel's
 * locks and cleared by a recovery, processes that exit without closing
 * told from dead ones, a full table, and removing the file when the last
 * process detaches, also against processes attaching at that moment.
 */
#include <fcntl.h>
#include <sched.h>
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
#include "os.h"
#include "process_table.h"
#include "shared_header.h"

/* The table's layout, as process_table.c keeps it. */
#define HEADER_WORDS 8
#define SLOT_COUNT (SHMI_PROCESS_TABLE_SIZE / 8 - HEADER_WORDS)
#define PID_BITS 22
#define TAG_LEAVING ((uint64_t)2 << 62)
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
    size_t dead;
    size_t exited;
    size_t mine; /* live entries with this process's pid */
    uint64_t my_sequence;
};

static int count_entry(const struct shmi_process_info *info, void *ctx)
{
    struct census *c = ctx;
    bool live = info->state == SHMI_ENTRY_LIVE;
    c->entries++;
    c->live += live;
    c->dead += info->state == SHMI_ENTRY_DEAD;
    c->exited += info->state == SHMI_ENTRY_EXITED;
    if (live && info->pid == (uint32_t)getpid()) {
        c->mine++;
        c->my_sequence = info->sequence;
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

/* This handle's identity, as the table stores it. */
static uint64_t my_identity(shm_arena *arena)
{
    assert_true(arena->processes.slot != SHMI_PROCESS_NO_SLOT);
    return arena->processes.identity;
}

static uint64_t identity_of(pid_t pid, uint64_t sequence)
{
    return (uint64_t)pid | sequence << PID_BITS;
}

static size_t recover(shm_arena *arena)
{
    struct shm_recovery r;
    assert_int_equal(shm_arena_recover(arena, &r), 0);
    return r.entries;
}

/* An open-file-description write lock on `len` lock bytes of slots from
 * `slot`, through fd: what an attachment in those slots holds. */
static int lock_slots(int fd, size_t slot, size_t len, short type)
{
    struct flock fl = {.l_type = type,
                       .l_whence = SEEK_SET,
                       .l_start = (off_t)(SHMI_LOCK_SLOTS_AT + slot),
                       .l_len = (off_t)len};
    return fcntl(fd, F_OFD_SETLK, &fl);
}

/* A second view of the table through its own descriptor, as another
 * attachment (in another process) would have. */
static void other_table(struct fixture *f, struct shmi_process_table *t,
                        int *fd)
{
    *fd = open(f->path, O_RDWR | O_CLOEXEC);
    assert_true(*fd >= 0);
    shmi_process_table_bind(t, f->arena->processes.words,
                            f->arena->processes.file_offset, *fd, false);
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
    assert_true(c.my_sequence != 0);

    shm_arena *second = arena_open(f->path);
    assert_non_null(second);
    assert_int_equal(shmi_process_table_live(&f->arena->processes), 2);
    assert_int_equal(census_of(second).mine, 2);
    /* Each attachment has its own number, so its own identity. */
    assert_true(second->processes.identity != f->arena->processes.identity);

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
    assert_int_equal(c.dead, 1);
    assert_int_equal(c.exited, 0);
    assert_int_equal(shmi_process_table_live(&f->arena->processes), CHILDREN);
    assert_int_equal(census_of(f->arena).entries, 1 + CHILDREN); /* a query */
    assert_int_equal(recover(f->arena), 1);
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
    assert_int_equal(recover(f->arena), 0);
    assert_int_equal(census_of(f->arena).entries, 1);
}

static void test_pid_reuse_and_garbage(void **state)
{
    struct fixture *f = *state;
    uint64_t me = my_identity(f->arena);
    pid_t gone = dead_pid();

    /* Entries written where open would not put them, with no lock held on
     * their bytes: this process's own pid with another attachment number
     * (a pid reused, or an attachment of this process that died), a copy
     * of this handle's identity in another slot, a reaped child, pid 0.
     * All dead: the pid proves nothing, only the lock does. One more with
     * its lock held by another description is live, whatever its pid. */
    uint64_t fakes[] = {identity_of(getpid(), 77), me, identity_of(gone, 5),
                        identity_of(0, 9), identity_of(gone, 11)};
    /* Free slots from the end of the table: never the one that holds this
     * process's real entry (where that is depends on the hash). */
    size_t at[5], n = 0;
    for (size_t i = SLOT_COUNT; i-- > 0 && n < 5;)
        if (atomic_load(slot_word(f->arena, i)) == 0)
            at[n++] = i;
    assert_int_equal(n, 5);
    for (size_t i = 0; i < 5; i++)
        atomic_store(slot_word(f->arena, at[i]), fakes[i]);
    int holder = open(f->path, O_RDWR | O_CLOEXEC);
    assert_true(holder >= 0);
    assert_int_equal(lock_slots(holder, at[4], 1, F_WRLCK), 0);
    struct census c = census_of(f->arena);
    assert_int_equal(c.entries, 6);
    assert_int_equal(c.live, 2);
    assert_int_equal(c.dead, 4);
    assert_int_equal(shmi_process_table_live(&f->arena->processes), 2);
    assert_int_equal(census_of(f->arena).entries, 6); /* a query */
    assert_int_equal(recover(f->arena), 4);
    assert_int_equal(census_of(f->arena).entries, 2);
    assert_int_equal(atomic_load(slot_word(f->arena, at[4])), fakes[4]);
    /* The holder goes: the kernel drops its lock, the entry is dead. */
    close(holder);
    assert_int_equal(census_of(f->arena).dead, 1);
    assert_int_equal(recover(f->arena), 1);
    assert_int_equal(census_of(f->arena).entries, 1);
    assert_int_equal(my_identity(f->arena), me);
}

static void test_full_table(void **state)
{
    struct fixture *f = *state;
    size_t mine = f->arena->processes.slot;
    uint64_t fake = identity_of(getpid(), 1234);
    size_t filled = 0;
    for (size_t i = 0; i < SLOT_COUNT; i++) {
        if (atomic_load(slot_word(f->arena, i)) == 0) {
            atomic_store(slot_word(f->arena, i), fake + ((uint64_t)i << 50));
            filled++;
        }
    }
    assert_int_equal(filled, SLOT_COUNT - 1);
    /* Every other slot's lock held, as by live attachments. */
    int holder = open(f->path, O_RDWR | O_CLOEXEC);
    assert_true(holder >= 0);
    if (mine > 0)
        assert_int_equal(lock_slots(holder, 0, mine, F_WRLCK), 0);
    if (mine + 1 < SLOT_COUNT)
        assert_int_equal(
            lock_slots(holder, mine + 1, SLOT_COUNT - mine - 1, F_WRLCK), 0);
    struct shmi_process_table extra;
    int fd;
    other_table(f, &extra, &fd);
    assert_int_equal(shmi_process_table_attach(&extra), ENOSPC);
    /* Opening still works; the process just is not entered. */
    shm_arena *outside = arena_open(f->path);
    assert_non_null(outside);
    assert_true(outside->processes.slot == SHMI_PROCESS_NO_SLOT);
    assert_int_equal(shm_arena_close(outside), 0);
    assert_int_equal(shmi_process_table_live(&f->arena->processes), SLOT_COUNT);

    /* Their holder gone, the entries are dead, and an open that finds no
     * free slot recovers them first. */
    close(holder);
    assert_int_equal(census_of(f->arena).live, 1);
    shm_arena *inside = arena_open(f->path);
    assert_non_null(inside);
    assert_true(inside->processes.slot != SHMI_PROCESS_NO_SLOT);
    assert_int_equal(census_of(f->arena).entries, 2);
    assert_int_equal(shmi_process_table_live(&f->arena->processes), 2);
    shm_arena_close(inside);
    close(fd);
}

/* The remover's reference in the removal word. */
static uint64_t who_of(const struct shmi_process_table *t)
{
    return (uint64_t)t->slot << 40 |
           ((t->identity >> PID_BITS) & ((UINT64_C(1) << 40) - 1));
}

static void test_removal_word_states(void **state)
{
    struct fixture *f = *state;
    shmi_atomic_word *removal = removal_word(f->arena);
    struct shmi_process_table a, remover;
    int fd_a, fd_r;
    other_table(f, &a, &fd_a);
    other_table(f, &remover, &fd_r);

    /* A removal only claimed is cancelled by an attacher. */
    atomic_store(removal, REMOVAL_CLAIMED | who_of(&f->arena->processes));
    assert_int_equal(shmi_process_table_attach(&a), 0);
    assert_int_equal(atomic_load(removal), 0);
    assert_int_equal(shmi_process_table_live(&f->arena->processes), 2);
    shmi_process_table_detach(&a);

    /* Committed by a live process (its entry LEAVING, its lock held): the
     * attacher backs out. */
    assert_int_equal(shmi_process_table_attach(&remover), 0);
    atomic_store(slot_word(f->arena, remover.slot),
                 remover.identity | TAG_LEAVING);
    remover.identity |= TAG_LEAVING;
    uint64_t live_commit = REMOVAL_COMMITTED | who_of(&remover);
    atomic_store(removal, live_commit);
    assert_int_equal(shmi_process_table_attach(&a), ESTALE);
    assert_int_equal(a.slot, SHMI_PROCESS_NO_SLOT);
    assert_int_equal(atomic_load(removal), live_commit);

    /* The same, its process killed before unlinking (its lock dropped):
     * abandoned, cleared. */
    shmi_os_lock_release(fd_r, SHMI_LOCK_SLOTS_AT + remover.slot, 1);
    assert_int_equal(shmi_process_table_attach(&a), 0);
    assert_int_equal(atomic_load(removal), 0);
    shmi_process_table_detach(&a);
    atomic_store(slot_word(f->arena, remover.slot), 0);
    shmi_process_table_forget(&remover);

    atomic_store(removal, REMOVAL_REMOVED);
    assert_int_equal(shmi_process_table_attach(&a), ESTALE);
    assert_int_equal(shmi_process_table_live(&f->arena->processes), 1);

    /* Values no process writes (a damaged file) are cleared. */
    uint64_t damaged[] = {UINT64_MAX, REMOVAL_REMOVED | 1, 12345,
                          REMOVAL_CLAIMED | (UINT64_C(4000) << 40)};
    for (size_t i = 0; i < 4; i++) {
        atomic_store(removal, damaged[i]);
        assert_int_equal(shmi_process_table_attach(&a), 0);
        assert_int_equal(atomic_load(removal), 0);
        shmi_process_table_detach(&a);
    }

    /* While another process is attached, detaching leaves the file. */
    assert_int_equal(shmi_process_table_attach(&a), 0);
    assert_int_equal(
        shmi_process_table_detach_last(&f->arena->processes, f->path), 0);
    assert_true(file_exists(f->path));
    assert_int_equal(shmi_process_table_live(&a), 1);
    assert_int_equal(atomic_load(removal), 0);

    /* Nobody attached, but another live process is removing the file: it
     * is left to that one. */
    assert_int_equal(shmi_process_table_attach(&remover), 0);
    atomic_store(slot_word(f->arena, remover.slot),
                 remover.identity | TAG_LEAVING);
    remover.identity |= TAG_LEAVING;
    atomic_store(removal, REMOVAL_CLAIMED | who_of(&remover));
    assert_int_equal(shmi_process_table_detach_last(&a, f->path), 0);
    assert_true(file_exists(f->path));
    assert_int_equal(atomic_load(removal), REMOVAL_CLAIMED | who_of(&remover));

    /* A removal abandoned by a killed process is taken over. */
    close(fd_r); /* the remover dies: its lock goes */
    assert_int_equal(shmi_process_table_attach(&a), 0);
    assert_int_equal(atomic_load(removal), 0); /* the attacher cleared it */
    atomic_store(removal, REMOVAL_CLAIMED | who_of(&remover));
    assert_int_equal(shmi_process_table_detach_last(&a, f->path), 0);
    assert_false(file_exists(f->path));
    assert_int_equal(atomic_load(removal), REMOVAL_REMOVED);
    close(fd_a);
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
        fflush(NULL);
        int ready[2], go[2];
        assert_int_equal(pipe(ready), 0);
        assert_int_equal(pipe(go), 0);
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0) {
            close(go[1]);
            char byte = 'r';
            /* Its own attachment: a forked child holds no entry. */
            shm_arena *mine = arena_open(path);
            if (mine == NULL || write(ready[1], &byte, 1) != 1 ||
                read(go[0], &byte, 1) != 0)
                _exit(1);
            spin(child_spin);
            _exit(shmi_process_table_detach_last(&mine->processes, path) == 0
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
