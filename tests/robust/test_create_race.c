/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Racing and dying creators.
 *
 * - 32 processes released at once (a pipe closed under their blocked
 *   reads) open one missing file: exactly one file results, all 32 are
 *   attached to it (each one's chunk, stamped with its pid, is found in the
 *   file afterwards), and no temporary file is left in the directory.
 * - Creators SIGKILLed at random moments during the open, many rounds:
 *   the directory then holds the arena file or nothing, never a temporary
 *   file, and a new open succeeds on a consistent arena.
 * - Attachers SIGKILLed during the open of an existing arena: its chunks
 *   and their bytes survive and it stays consistent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include "robust_util.h"

#define RACERS 32
#define STAMP 0x5EED5EED00000000ull

/* Words in a racer's stamp: two where a chunk holds them, else one. */
static size_t stamp_words(void)
{
    return get_shm_max_allocatable_size() >= 2 * sizeof(uint64_t) ? 2 : 1;
}

/* A request size that fits the configured range. */
static size_t fitting(size_t size)
{
    size_t max = get_shm_max_allocatable_size();
    return size < max ? size : max;
}

struct report {
    pid_t pid;
    int err;
    shm_offt off;
    ino_t ino;
};

static size_t capacity(void)
{
    return 64 * get_shm_max_allocatable_size();
}

/* Children block in read() until the parent closes the write end. */
static void wait_for_start(int go[2])
{
    char c;
    close(go[1]);
    while (read(go[0], &c, 1) < 0 && errno == EINTR)
        ;
    close(go[0]);
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void racer(const char *path, int go[2], int out)
{
    struct report r = {.pid = getpid()};
    wait_for_start(go);
    struct shm_arena_options opts = {.capacity = capacity()};
    shm_arena *a = shm_arena_open(path, &opts);
    if (a == NULL) {
        r.err = errno;
    } else {
        r.off = shm_arena_malloc(a, sizeof(uint64_t) * stamp_words());
        if (r.off == SHM_NULL) {
            r.err = errno;
        } else {
            uint64_t *p = (uint64_t *)((uint8_t *)shm_arena_base(a) + r.off);
            p[0] = STAMP | (uint64_t)r.pid;
            if (stamp_words() == 2)
                p[1] = ~p[0];
        }
        struct stat st;
        if (stat(path, &st) == 0)
            r.ino = st.st_ino;
        shm_arena_close(a);
    }
    _exit(write(out, &r, sizeof r) == sizeof r ? 0 : 1);
}

static void test_32_creators(void **state)
{
    (void)state;
    char path[1024], names[4096];
    for (int round = 0; round < 4; round++) {
        robust_clean_dir();
        robust_path(path, sizeof path, "raced.shm");
        int go[2], res[2];
        assert_int_equal(pipe(go), 0);
        assert_int_equal(pipe(res), 0);
        pid_t pids[RACERS];
        for (int i = 0; i < RACERS; i++) {
            pids[i] = fork();
            assert_true(pids[i] >= 0);
            if (pids[i] == 0) {
                close(res[0]);
                racer(path, go, res[1]);
            }
        }
        close(go[0]);
        close(res[1]);
        close(go[1]); /* everyone starts now */
        struct report reports[RACERS];
        size_t got = 0;
        while (got < sizeof reports) {
            ssize_t n =
                read(res[0], (char *)reports + got, sizeof reports - got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        close(res[0]);
        for (int i = 0; i < RACERS; i++) {
            int status;
            assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
            assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        assert_int_equal(got, sizeof reports);

        int count = robust_dir_list(robust_dir(), names, sizeof names);
        if (count != 1 || strcmp(names, "raced.shm") != 0)
            fail_msg("round %d: directory holds [%s]", round, names);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);

        struct shm_arena_options opts = {.flags = SHM_ARENA_NO_CREATE};
        shm_arena *a = shm_arena_open(path, &opts);
        assert_non_null(a);
        uint8_t *base = shm_arena_base(a);
        size_t used = 0;
        for (int i = 0; i < RACERS; i++) {
            const struct report *r = &reports[i];
            if (r->err != 0)
                fail_msg("round %d: racer %d failed: %s", round, (int)r->pid,
                         strerror(r->err));
            if (r->ino != st.st_ino)
                fail_msg("round %d: racer %d saw inode %lu, the file is %lu",
                         round, (int)r->pid, (unsigned long)r->ino,
                         (unsigned long)st.st_ino);
            size_t usable = shm_arena_usable_size(a, r->off);
            if (usable == 0)
                fail_msg("round %d: racer %d's chunk is not in the file", round,
                         (int)r->pid);
            uint64_t w[2];
            memcpy(w, base + r->off, sizeof w);
            if (w[0] != (STAMP | (uint64_t)r->pid) ||
                (stamp_words() == 2 && w[1] != ~w[0]))
                fail_msg("round %d: racer %d's chunk holds %#" PRIx64, round,
                         (int)r->pid, w[0]);
            used += usable;
        }
        assert_int_equal(shm_arena_check(a), 0);
        assert_int_equal(shm_arena_available(a), shm_arena_capacity(a) - used);
        for (int i = 0; i < RACERS; i++)
            shm_arena_free(a, reports[i].off);
        assert_int_equal(shm_arena_available(a), shm_arena_capacity(a));
        assert_int_equal(shm_arena_check(a), 0);
        assert_int_equal(shm_arena_close(a), 0);
    }
}

/*
 * Starts `n` children released together that open path (with flags) and
 * exit, and SIGKILLs each after its own random delay below max_us.
 * Returns how many were killed before they finished.
 */
static int open_and_kill(const char *path, unsigned flags, int n, long max_us,
                         uint64_t *rng)
{
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t pids[16];
    long delay[16];
    for (int i = 0; i < n; i++) {
        delay[i] = (long)(robust_rand(rng) % (uint64_t)max_us);
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            wait_for_start(go);
            /* large enough that creating it takes milliseconds */
            struct shm_arena_options opts = {.capacity = 64 * capacity(),
                                             .flags = flags};
            shm_arena *a = shm_arena_open(path, &opts);
            _exit(a != NULL ? 0 : 1);
        }
    }
    close(go[0]);
    close(go[1]);
    /* kill in order of delay */
    long now = 0;
    int killed = 0;
    for (int done = 0; done < n; done++) {
        int next = -1;
        for (int i = 0; i < n; i++)
            if (pids[i] > 0 && (next < 0 || delay[i] < delay[next]))
                next = i;
        if (next < 0)
            break;
        if (delay[next] > now)
            sleep_us(delay[next] - now);
        now = delay[next];
        kill(pids[next], SIGKILL);
        int status;
        assert_int_equal(waitpid(pids[next], &status, 0), pids[next]);
        if (WIFSIGNALED(status))
            killed++;
        else if (WEXITSTATUS(status) != 0)
            fail_msg("an open that was not killed failed");
        pids[next] = 0;
    }
    return killed;
}

static void test_killed_creators(void **state)
{
    (void)state;
    char path[1024], names[4096];
    uint64_t seed = robust_seed(), rng = seed;
    int rounds = 80, killed = 0, published = 0;
    for (int round = 0; round < rounds; round++) {
        robust_clean_dir();
        robust_path(path, sizeof path, "victim.shm");
        /* delays from "before the open starts" to a little after a
         * creation of this size ends (a few milliseconds) */
        long max_us = 100 + (long)(robust_rand(&rng) % 12000);
        /* a lone creator, or four racing ones */
        killed += open_and_kill(path, 0, round % 2 ? 4 : 1, max_us, &rng);
        int count = robust_dir_list(robust_dir(), names, sizeof names);
        if (count > 1 || (count == 1 && strcmp(names, "victim.shm") != 0))
            fail_msg("round %d (seed %#" PRIx64 "): left behind [%s]", round,
                     seed, names);
        published += count;
        struct shm_arena_options opts = {.capacity = 64 * capacity()};
        shm_arena *a = shm_arena_open(path, &opts);
        if (a == NULL)
            fail_msg("round %d (seed %#" PRIx64 "): reopen failed: %s", round,
                     seed, strerror(errno));
        assert_int_equal(shm_arena_check(a), 0);
        assert_int_equal(shm_arena_available(a), shm_arena_capacity(a));
        shm_offt off = shm_arena_malloc(a, 1);
        assert_true(off != SHM_NULL);
        shm_arena_free(a, off);
        assert_int_equal(shm_arena_close(a), 0);
        count = robust_dir_list(robust_dir(), names, sizeof names);
        assert_int_equal(count, 1);
        assert_string_equal(names, "victim.shm");
    }
    print_message("killed creators: %d kills in %d rounds, file already "
                  "published in %d, seed %#" PRIx64 "\n",
                  killed, rounds, published, seed);
    assert_true(killed > 0);
}

static void test_killed_attachers(void **state)
{
    (void)state;
    char path[1024], names[4096];
    uint64_t seed = robust_seed(), rng = seed;
    robust_clean_dir();
    robust_path(path, sizeof path, "attached.shm");
    struct shm_arena_options opts = {.capacity = capacity()};
    shm_arena *a = shm_arena_open(path, &opts);
    assert_non_null(a);
    shm_offt chunks[8];
    for (int i = 0; i < 8; i++) {
        chunks[i] = shm_arena_malloc(a, fitting((size_t)100 * (i + 1)));
        assert_true(chunks[i] != SHM_NULL);
        memset((uint8_t *)shm_arena_base(a) + chunks[i], 0xA0 + i,
               shm_arena_usable_size(a, chunks[i]));
    }
    size_t available = shm_arena_available(a);
    assert_int_equal(shm_arena_close(a), 0);
    int killed = 0;
    for (int round = 0; round < 60; round++)
        killed += open_and_kill(path, SHM_ARENA_NO_CREATE, 4,
                                1 + (long)(robust_rand(&rng) % 600), &rng);
    int count = robust_dir_list(robust_dir(), names, sizeof names);
    if (count != 1)
        fail_msg("left behind [%s]", names);
    opts.flags = SHM_ARENA_NO_CREATE;
    a = shm_arena_open(path, &opts);
    assert_non_null(a);
    assert_int_equal(shm_arena_check(a), 0);
    assert_int_equal(shm_arena_available(a), available);
    for (int i = 0; i < 8; i++) {
        size_t usable = shm_arena_usable_size(a, chunks[i]);
        assert_true(usable >= fitting((size_t)100 * (i + 1)));
        const uint8_t *p = (uint8_t *)shm_arena_base(a) + chunks[i];
        for (size_t j = 0; j < usable; j++)
            if (p[j] != 0xA0 + i)
                fail_msg("chunk %d byte %zu changed", i, j);
        shm_arena_free(a, chunks[i]);
    }
    assert_int_equal(shm_arena_available(a), shm_arena_capacity(a));
    assert_int_equal(shm_arena_close(a), 0);
    print_message("killed attachers: %d kills, seed %#" PRIx64 "\n", killed,
                  seed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_32_creators),
        cmocka_unit_test(test_killed_creators),
        cmocka_unit_test(test_killed_attachers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
