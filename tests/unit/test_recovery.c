/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Recovery after deaths: liveness through the kernel's locks (killed,
 * exited without closing, across pid namespaces), the operations a thread
 * killed between two steps leaves (given back by shm_arena_recover, and
 * by the recovery a collection runs first), a reset that cannot race an
 * attacher, and the bounded recovery of an open.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
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
#include "common/skip_because.h"

#include "arena.h"
#include "os.h"
#include "pending.h"
#include "process_table.h"

#define CAPACITY ((size_t)1 << 20)

static int setup(void **state)
{
    return fixture_setup(state, "recovery", CAPACITY);
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

struct states {
    size_t live, dead, exited;
};

static int count_state(const struct shm_process *p, void *ctx)
{
    struct states *s = ctx;
    if (p->state == SHM_PROCESS_LIVE)
        s->live++;
    else if (p->state == SHM_PROCESS_DEAD)
        s->dead++;
    else if (p->state == SHM_PROCESS_EXITED)
        s->exited++;
    if (p->live != (p->state == SHM_PROCESS_LIVE))
        s->live += 1000; /* inconsistent: fails the test */
    return 0;
}

static struct states states_of(shm_arena *arena)
{
    struct states s = {0, 0, 0};
    assert_int_equal(shm_arena_processes(arena, count_state, &s), 0);
    return s;
}

/* A child that opens the file and then, after the parent's byte, either
 * returns from main without closing ('x') or waits to be killed ('k'). */
static pid_t start_child(const char *path, char how, int *go)
{
    int ready[2], gate[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(gate), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(gate[1]);
        shm_arena *mine = arena_open(path);
        char byte = mine ? 'r' : 'x';
        if (write(ready[1], &byte, 1) != 1 || read(gate[0], &byte, 1) < 0)
            _exit(2);
        if (how == 'x')
            exit(0); /* destructors run: a normal exit */
        pause();
        _exit(3);
    }
    close(gate[0]);
    close(ready[1]);
    char byte = 0;
    assert_int_equal(read(ready[0], &byte, 1), 1);
    assert_int_equal(byte, 'r');
    close(ready[0]);
    *go = gate[1];
    return pid;
}

static void test_killed_dead_exited_exited(void **state)
{
    struct fixture *f = *state;
    int go_k, go_x;
    pid_t killed = start_child(f->path, 'k', &go_k);
    pid_t leaver = start_child(f->path, 'x', &go_x);
    struct states s = states_of(f->arena);
    assert_int_equal(s.live, 3);
    assert_int_equal(kill(killed, SIGKILL), 0);
    assert_int_equal(write(go_x, "g", 1), 1);
    int status;
    assert_int_equal(waitpid(killed, &status, 0), killed);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(waitpid(leaver, &status, 0), leaver);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    s = states_of(f->arena);
    assert_int_equal(s.live, 1);
    assert_int_equal(s.dead, 1);
    assert_int_equal(s.exited, 1);
    struct shm_stats stats;
    assert_int_equal(shm_arena_stats(f->arena, &stats), 0);
    assert_int_equal(stats.attached_processes, 1);
    struct shm_recovery r;
    assert_int_equal(shm_arena_recover(f->arena, &r), 0);
    assert_int_equal(r.entries, 2);
    s = states_of(f->arena);
    assert_int_equal(s.dead + s.exited, 0);
    assert_int_equal(s.live, 1);
    close(go_k);
    close(go_x);
}

/* A process in another pid namespace and one outside see each other live,
 * and dead once killed. Needs CLONE_NEWPID (root): skipped otherwise. */
static void test_other_pid_namespace(void **state)
{
    struct fixture *f = *state;
    int go_h;
    pid_t helper = start_child(f->path, 'k', &go_h);
    int report[2], cmd[2], pid_pipe[2];
    assert_int_equal(pipe(report), 0);
    assert_int_equal(pipe(cmd), 0);
    assert_int_equal(pipe(pid_pipe), 0);
    fflush(NULL);
    pid_t middle = fork();
    assert_true(middle >= 0);
    if (middle == 0) {
        close(report[0]);
        close(cmd[1]);
        close(pid_pipe[0]);
        int32_t outer_pid = -1;
        if (unshare(CLONE_NEWPID) != 0) {
            if (write(pid_pipe[1], &outer_pid, sizeof outer_pid) !=
                (ssize_t)sizeof outer_pid)
                _exit(2);
            _exit(0);
        }
        pid_t inner = fork(); /* pid 1 of the new namespace */
        if (inner < 0)
            _exit(2);
        if (inner == 0) {
            shm_arena *mine = arena_open(f->path);
            if (mine == NULL)
                _exit(4);
            struct states s = states_of(mine);
            char byte = (char)('0' + s.live); /* the test, the helper, itself */
            if (getpid() != 1 || write(report[1], &byte, 1) != 1)
                _exit(5);
            if (read(cmd[0], &byte, 1) != 1) /* the helper was killed */
                _exit(6);
            s = states_of(mine);
            byte = (char)('0' + s.dead);
            if (write(report[1], &byte, 1) != 1)
                _exit(7);
            pause();
            _exit(8);
        }
        /* The middle process tells the test the inner one's pid. */
        outer_pid = inner;
        if (write(pid_pipe[1], &outer_pid, sizeof outer_pid) !=
            (ssize_t)sizeof outer_pid)
            _exit(9);
        int status;
        waitpid(inner, &status, 0);
        _exit(0);
    }
    close(report[1]);
    close(cmd[0]);
    close(pid_pipe[1]);
    int32_t inner = 0;
    assert_int_equal(read(pid_pipe[0], &inner, sizeof inner), sizeof inner);
    close(pid_pipe[0]);
    if (inner < 0) {
        waitpid(middle, NULL, 0);
        kill(helper, SIGKILL);
        waitpid(helper, NULL, 0);
        close(go_h);
        skip_because("unshare(CLONE_NEWPID) not permitted here");
    }
    char count = 0, byte = 0;
    assert_int_equal(read(report[0], &count, 1), 1);
    assert_int_equal(count, '3');
    assert_int_equal(states_of(f->arena).live, 3);
    /* The helper is killed: the inner process sees it dead. */
    assert_int_equal(kill(helper, SIGKILL), 0);
    assert_int_equal(waitpid(helper, NULL, 0), helper);
    assert_int_equal(write(cmd[1], "k", 1), 1);
    assert_int_equal(read(report[0], &byte, 1), 1);
    assert_int_equal(byte, '1');
    /* The inner one is killed: the test sees it dead. */
    assert_int_equal(kill(inner, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(middle, &status, 0), middle);
    struct states s = states_of(f->arena);
    assert_int_equal(s.live, 1);
    assert_int_equal(s.dead, 2);
    close(report[0]);
    close(cmd[1]);
    close(go_h);
}

#if SHM_TEST_HOOKS
static unsigned kill_at;

static void stop_here(unsigned op, unsigned tier)
{
    (void)tier;
    if (op == kill_at)
        raise(SIGKILL);
}

/* A child that opens the file and runs one malloc of `size`, killed by
 * the hook between the two steps of `op`. */
static void kill_child_inside(const char *path, unsigned op, size_t size)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        shm_arena *mine = arena_open(path);
        if (mine == NULL)
            _exit(2);
        kill_at = op;
        shmi_pending_test_hook = stop_here;
        shm_arena_malloc(mine, size);
        _exit(3); /* the hook did not fire */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}
#endif

static void test_activation_killed_between_steps(void **state)
{
#if SHM_TEST_HOOKS
    struct fixture *f = *state;
    if (f->arena->geo.tiers < 2)
        skip_because("one tier: no activation in this size range");
    size_t full = shm_arena_available(f->arena);
    kill_child_inside(f->path, SHMI_PENDING_ACTIVATE,
                      (size_t)1 << SHM_MIN_ALLOC_POW2);
    size_t node = (size_t)1 << f->arena->geo.tier[1].span_log2;
    /* Without the recovery, the parent node is lost. */
    assert_int_equal(shm_arena_available(f->arena), full - node);
    struct shm_recovery r;
    assert_int_equal(shm_arena_recover(f->arena, &r), 0);
    assert_int_equal(r.entries, 1);
    assert_int_equal(r.records, 1);
    assert_int_equal(r.bytes, node);
    assert_int_equal(shm_arena_available(f->arena), full);
    assert_int_equal(shm_arena_check(f->arena), 0);
    assert_int_equal(shm_arena_maxsize(f->arena),
                     (size_t)1 << SHM_MAX_ALLOC_POW2);
#else
    (void)state;
    skip_because("built without SHM_TEST_HOOKS");
#endif
}

static void test_retire_killed_between_steps(void **state)
{
#if SHM_TEST_HOOKS
    struct fixture *f = *state;
    if (f->arena->geo.tiers < 2)
        skip_because("one tier: no retire in this size range");
    size_t full = shm_arena_available(f->arena);
    size_t max = (size_t)1 << SHM_MAX_ALLOC_POW2;
    /* One word of tier 1 activated and emptied, every other block taken:
     * the child's malloc of a whole block must retire it. */
    shm_offt small = shm_arena_malloc(f->arena, 1);
    assert_true(small != SHM_NULL);
    shm_arena_free(f->arena, small);
    /* The chunk (and whatever the cache took with it) back to the word. */
    assert_int_equal(shm_arena_flush_thread_cache(f->arena), 0);
    size_t blocks = CAPACITY / max - 1;
    shm_offt *taken = calloc(blocks, sizeof *taken);
    for (size_t i = 0; i < blocks; i++) {
        taken[i] = shm_arena_malloc(f->arena, max);
        assert_true(taken[i] != SHM_NULL);
    }
    kill_child_inside(f->path, SHMI_PENDING_RETIRE, max);
    for (size_t i = 0; i < blocks; i++)
        shm_arena_free(f->arena, taken[i]);
    free(taken);
    /* The retire cut short is the first, of the deepest word: the one the
     * small chunk was in. */
    unsigned deepest = f->arena->geo.tiers - 1;
    size_t node = (size_t)1 << f->arena->geo.tier[deepest].span_log2;
    assert_int_equal(shm_arena_available(f->arena), full - node);
    struct shm_recovery r;
    assert_int_equal(shm_arena_recover(f->arena, &r), 0);
    assert_int_equal(r.records, 1);
    assert_int_equal(r.bytes, node);
    assert_int_equal(shm_arena_available(f->arena), full);
    assert_int_equal(shm_arena_check(f->arena), 0);
    /* Recovering again finds nothing. */
    assert_int_equal(shm_arena_recover(f->arena, &r), 0);
    assert_int_equal(r.entries + r.records + r.bytes, 0);
#else
    (void)state;
    skip_because("built without SHM_TEST_HOOKS");
#endif
}

static int mark_nothing(shm_collector *col, void *ctx)
{
    (void)col;
    (void)ctx;
    return 0;
}

/* A collection recovers before it sweeps: the node a child held between
 * the two steps of an activation comes back through its record, and the
 * sweep finds no chunk to free. */
static void test_collect_recovers_first(void **state)
{
#if SHM_TEST_HOOKS
    struct fixture *f = *state;
    if (f->arena->geo.tiers < 2)
        skip_because("one tier: no activation in this size range");
    size_t full = shm_arena_available(f->arena);
    kill_child_inside(f->path, SHMI_PENDING_ACTIVATE,
                      (size_t)1 << SHM_MIN_ALLOC_POW2);
    size_t node = (size_t)1 << f->arena->geo.tier[1].span_log2;
    assert_int_equal(shm_arena_available(f->arena), full - node);
    struct shm_collection r;
    assert_int_equal(shm_arena_collect(f->arena, mark_nothing, NULL, &r), 0);
    assert_int_equal(r.recovery.entries, 1);
    assert_int_equal(r.recovery.records, 1);
    assert_int_equal(r.recovery.bytes, node);
    assert_int_equal(r.freed_chunks, 0);
    assert_int_equal(shm_arena_available(f->arena), full);
    assert_int_equal(shm_arena_check(f->arena), 0);
    for (size_t i = 0; i < shmi_pending_records(); i++) {
        uint64_t owner = shmi_pending_owner(&f->arena->geo, i);
        assert_true(owner == 0 || owner == f->arena->geo.record_owner);
    }
#else
    (void)state;
    skip_because("built without SHM_TEST_HOOKS");
#endif
}

static void test_reset_against_attachers(void **state)
{
    struct fixture *f = *state;
    struct shm_arena_options ro = {.flags = SHM_ARENA_READ_ONLY};
    shm_arena *reader = shm_arena_open(f->path, &ro);
    assert_non_null(reader);
    errno = 0;
    assert_int_equal(shm_arena_reset(f->arena), EBUSY);
    assert_int_equal(errno, EBUSY);
    shm_arena_close(reader);
    assert_int_equal(shm_arena_reset(f->arena), 0);
    /* Its read lock is back: another writer's reset is refused. */
    shm_arena *other = arena_open(f->path);
    assert_non_null(other);
    assert_int_equal(shm_arena_reset(other), EBUSY);
    shm_arena_close(other);

    /* A reset in progress (its write locks on every slot byte and on the
     * attachment byte, held here by hand): opens fail at once with EBUSY,
     * then work again. */
    shm_arena_close(f->arena);
    f->arena = NULL;
    int fd = open(f->path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    struct flock slots = {.l_type = F_WRLCK,
                          .l_whence = SEEK_SET,
                          .l_start = SHMI_LOCK_SLOTS_AT,
                          .l_len = (off_t)shmi_process_table_slots()};
    assert_int_equal(fcntl(fd, F_OFD_SETLK, &slots), 0);
    struct flock fl = {.l_type = F_WRLCK,
                       .l_whence = SEEK_SET,
                       .l_start = SHMI_LOCK_ATTACH_AT,
                       .l_len = 1};
    assert_int_equal(fcntl(fd, F_OFD_SETLK, &fl), 0);
    errno = 0;
    assert_null(arena_open(f->path));
    assert_int_equal(errno, EBUSY);
    assert_null(shm_arena_open(f->path, &ro));
    assert_int_equal(errno, EBUSY);
    close(fd);
    f->arena = arena_open(f->path);
    assert_non_null(f->arena);
}

static void test_open_recovers_a_bounded_window(void **state)
{
    struct fixture *f = *state;
    shmi_atomic_word *slots = f->arena->processes.words + 8;
    size_t count = shmi_process_table_slots(), planted = 0;
    for (size_t i = 0; i < count && planted < 1000; i++) {
        if (atomic_load(&slots[i]) == 0) {
            /* A dead entry: nobody holds its lock. */
            atomic_store(&slots[i], (uint64_t)getpid() | (i + 1000) << 22);
            planted++;
        }
    }
    assert_int_equal(states_of(f->arena).dead, planted);
    shm_arena *next = arena_open(f->path);
    assert_non_null(next);
    size_t cleared = planted - states_of(f->arena).dead;
    assert_true(cleared >= 1);
    assert_true(cleared <= SHMI_RECOVER_WINDOW);
    struct shm_recovery r;
    assert_int_equal(shm_arena_recover(next, &r), 0);
    assert_int_equal(r.entries, planted - cleared);
    assert_int_equal(states_of(f->arena).dead, 0);
    assert_int_equal(states_of(f->arena).live, 2);
    shm_arena_close(next);
}

/* A failed malloc sweeps the table only when a death may have gone
 * unseen: after an attachment, or an interval after the last sweep. An
 * entry abandoned without either (planted here) waits for the interval;
 * a child that attached and was killed is recovered at once. */
static void test_failed_malloc_sweeps_boundedly(void **state)
{
    struct fixture *f = *state;
    size_t max = (size_t)1 << SHM_MAX_ALLOC_POW2;
    size_t blocks = CAPACITY / max;
    shm_offt *taken = calloc(blocks + 1, sizeof *taken);
    size_t n = 0;
    while (n <= blocks && (taken[n] = shm_arena_malloc(f->arena, max)))
        n++;
    assert_true(n > 0 && n <= blocks);
    assert_int_equal(shm_arena_malloc(f->arena, max), SHM_NULL); /* swept */
    shmi_atomic_word *slots = f->arena->processes.words + 8;
    size_t planted = SIZE_MAX;
    for (size_t i = 0; i < shmi_process_table_slots(); i++) {
        if (atomic_load(&slots[i]) == 0) {
            atomic_store(&slots[i], (uint64_t)getpid() | (i + 7000) << 22);
            planted = i;
            break;
        }
    }
    assert_true(planted != SIZE_MAX);
    assert_int_equal(states_of(f->arena).dead, 1);
    /* Within the interval and no attachment since: no sweep. */
    uint64_t start = shmi_os_monotonic_ms();
    assert_int_equal(shm_arena_malloc(f->arena, max), SHM_NULL);
    if (shmi_os_monotonic_ms() - start < SHMI_RECOVER_INTERVAL_MS)
        assert_int_equal(states_of(f->arena).dead, 1);
    /* A child attaches and is killed holding nothing: the next failure
     * sweeps (an attachment was made), and clears what is dead. */
    int go;
    pid_t child = start_child(f->path, 'k', &go);
    assert_int_equal(kill(child, SIGKILL), 0);
    assert_int_equal(waitpid(child, NULL, 0), child);
    close(go);
    /* (The child's open may have cleared the planted one in its window.) */
    assert_true(states_of(f->arena).dead >= 1);
    assert_int_equal(shm_arena_malloc(f->arena, max), SHM_NULL);
    assert_int_equal(states_of(f->arena).dead, 0);
    /* Planted again: found once the interval has passed. */
    atomic_store(&slots[planted], (uint64_t)getpid() | (planted + 9000) << 22);
    assert_int_equal(shm_arena_malloc(f->arena, max), SHM_NULL);
    usleep((SHMI_RECOVER_INTERVAL_MS + 2) * 1000);
    assert_int_equal(shm_arena_malloc(f->arena, max), SHM_NULL);
    assert_int_equal(states_of(f->arena).dead, 0);
    for (size_t i = 0; i < n; i++)
        shm_arena_free(f->arena, taken[i]);
    free(taken);
    assert_int_equal(shm_arena_check(f->arena), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_killed_dead_exited_exited, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_other_pid_namespace, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_activation_killed_between_steps,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_retire_killed_between_steps, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_collect_recovers_first, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reset_against_attachers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_open_recovers_a_bounded_window,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_malloc_sweeps_boundedly,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
