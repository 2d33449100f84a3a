/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Thread caches (src/thread_cache.c): double frees into a cache of this
 * thread or another, what statistics and shm_check say of cached chunks,
 * a thread's exit, a close and a fork, the flush before ENOMEM, a chunk
 * written after its free, and processes killed with full caches and at
 * each step of a refill and a flush, every byte accounted for.
 */
#include <errno.h>
#include <pthread.h>
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

#include "arena.h"
#include "thread_cache.h"

#define CAPACITY ((size_t)1 << 20)
#define MIN_CHUNK ((size_t)1 << SHM_MIN_ALLOC_POW2)
#define CHUNKS SHM_THREAD_CACHE_CHUNKS
/* A request of n bytes, or the largest chunk when that is smaller. */
#define FIT(n)                                                                 \
    ((size_t)(n) < ((size_t)1 << SHM_MAX_ALLOC_POW2)                           \
         ? (size_t)(n)                                                         \
         : ((size_t)1 << SHM_MAX_ALLOC_POW2))

static int setup(void **state)
{
    return fixture_setup(state, "tcache", CAPACITY);
}

static int teardown(void **state)
{
    return fixture_teardown(state);
}

static bool cached_build(void)
{
    if (SHMI_TCACHE_CLASSES > 0)
        return true;
    print_message("skipped: built with SHM_THREAD_CACHE=OFF\n");
    return false;
}

static size_t cached_bytes(shm_arena *a)
{
    struct shm_stats st;
    assert_int_equal(shm_arena_stats(a, &st), 0);
    return st.bytes_cached;
}

static size_t bitmap_free(shm_arena *a)
{
    struct shm_stats st;
    assert_int_equal(shm_arena_stats(a, &st), 0);
    return st.bytes_free;
}

static unsigned reports;
static void count_report(const char *message, void *ctx)
{
    (void)message;
    (void)ctx;
    reports++;
}

/* ---- double frees ------------------------------------------------------ */

static void double_free_into_own_cache_is_refused(void **state)
{
    struct fixture *f = *state;
    if (!cached_build())
        skip();
    shm_offt x = shm_arena_malloc(f->arena, FIT(40));
    assert_true(x != SHM_NULL);
    shm_arena_free(f->arena, x);
    size_t available = shm_arena_available(f->arena);
    size_t cached = cached_bytes(f->arena);
    assert_true(cached >= 2 * MIN_CHUNK);
    errno = 0;
    shm_arena_free(f->arena, x);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(shm_arena_available(f->arena), available);
    assert_int_equal(cached_bytes(f->arena), cached);
    /* Not a live chunk either. */
    errno = 0;
    assert_int_equal(shm_arena_usable_size(f->arena, x), 0);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(shm_arena_realloc(f->arena, x, 10), SHM_NULL);
    assert_int_equal(errno, EINVAL);
    /* Handed out once, not twice. */
    shm_offt a = shm_arena_malloc(f->arena, FIT(40));
    shm_offt b = shm_arena_malloc(f->arena, FIT(40));
    assert_int_equal(a, x);
    assert_true(b != x && b != SHM_NULL);
    shm_arena_free(f->arena, a);
    shm_arena_free(f->arena, b);
    assert_int_equal(shm_arena_check(f->arena), 0);
}

/* Every cached class, in each tier that holds one: a free goes to the
 * cache, and a second free, a free inside the chunk and a free of its
 * free buddy are refused and change nothing. */
static void every_cached_class_is_checked_on_free(void **state)
{
    struct fixture *f = *state;
    if (!cached_build())
        skip();
    for (unsigned c = 0; c < SHMI_TCACHE_CLASSES; c++) {
        size_t size = MIN_CHUNK << c;
        shm_offt x = shm_arena_malloc(f->arena, size);
        assert_true(x != SHM_NULL);
        size_t cached = cached_bytes(f->arena);
        shm_arena_free(f->arena, x);
        assert_int_equal(cached_bytes(f->arena), cached + size);
        size_t available = shm_arena_available(f->arena);
        cached += size;
        shm_offt wrong[] = {x, x + MIN_CHUNK, x ^ size};
        for (size_t i = 0; i < 3; i++) {
            if (i == 1 && c == 0)
                continue; /* x + MIN is another chunk of class 0 */
            errno = 0;
            shm_arena_free(f->arena, wrong[i]);
            assert_int_equal(errno, EINVAL);
            assert_int_equal(shm_arena_available(f->arena), available);
            assert_int_equal(cached_bytes(f->arena), cached);
        }
        /* The cached chunk comes back to the next request of its size. */
        assert_int_equal(shm_arena_malloc(f->arena, size), x);
        shm_arena_free(f->arena, x);
    }
    assert_int_equal(shm_arena_check(f->arena), 0);
}

struct holder {
    shm_arena *arena;
    shm_offt chunk;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int step; /* 1: chunk freed into the holder's cache; 2: may go */
};

static void *hold_a_cached_chunk(void *arg)
{
    struct holder *h = arg;
    h->chunk = shm_arena_malloc(h->arena, FIT(100));
    shm_arena_free(h->arena, h->chunk);
    pthread_mutex_lock(&h->lock);
    h->step = 1;
    pthread_cond_broadcast(&h->cond);
    while (h->step != 2)
        pthread_cond_wait(&h->cond, &h->lock);
    pthread_mutex_unlock(&h->lock);
    /* Still cached here, once: the next malloc of the size gets it. */
    shm_offt again = shm_arena_malloc(h->arena, FIT(100));
    return (void *)(uintptr_t)(again == h->chunk);
}

static void double_free_into_another_threads_cache_is_refused(void **state)
{
    struct fixture *f = *state;
    if (!cached_build())
        skip();
    struct holder h = {.arena = f->arena,
                       .lock = PTHREAD_MUTEX_INITIALIZER,
                       .cond = PTHREAD_COND_INITIALIZER};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, hold_a_cached_chunk, &h), 0);
    pthread_mutex_lock(&h.lock);
    while (h.step != 1)
        pthread_cond_wait(&h.cond, &h.lock);
    pthread_mutex_unlock(&h.lock);
    assert_true(h.chunk != SHM_NULL);
    size_t available = shm_arena_available(f->arena);
    errno = 0;
    shm_arena_free(f->arena, h.chunk);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(shm_arena_available(f->arena), available);
    /* Nor does this thread get it. */
    shm_offt mine = shm_arena_malloc(f->arena, FIT(100));
    assert_true(mine != h.chunk);
    pthread_mutex_lock(&h.lock);
    h.step = 2;
    pthread_cond_broadcast(&h.cond);
    pthread_mutex_unlock(&h.lock);
    void *got;
    assert_int_equal(pthread_join(t, &got), 0);
    assert_true(got == (void *)1);
    shm_arena_free(f->arena, mine);
    shm_arena_free(f->arena, h.chunk);
    assert_int_equal(shm_arena_check(f->arena), 0);
}

/* ---- statistics, check, damage ----------------------------------------- */

static void statistics_and_check_see_cached_chunks(void **state)
{
    struct fixture *f = *state;
    if (!cached_build())
        skip();
    assert_int_equal(shm_arena_flush_thread_cache(f->arena), 0);
    assert_int_equal(cached_bytes(f->arena), 0);
    shm_offt x[SHMI_TCACHE_CLASSES > 0 ? SHMI_TCACHE_CLASSES : 1];
    size_t expect = 0;
    for (unsigned c = 0; c < SHMI_TCACHE_CLASSES; c++) {
        x[c] = shm_arena_malloc(f->arena, MIN_CHUNK << c);
        assert_true(x[c] != SHM_NULL);
    }
    /* What the refills took beside the chunks handed out. */
    size_t before = cached_bytes(f->arena);
    for (unsigned c = 0; c < SHMI_TCACHE_CLASSES; c++) {
        shm_arena_free(f->arena, x[c]);
        expect += MIN_CHUNK << c;
    }
    struct shm_stats st;
    assert_int_equal(shm_arena_stats(f->arena, &st), 0);
    assert_int_equal(st.bytes_cached, before + expect);
    assert_int_equal(st.bytes_free + st.bytes_cached, st.capacity);
    assert_int_equal(st.bytes_in_use, 0);
    assert_int_equal(shm_arena_available(f->arena), st.capacity);
    assert_int_equal(shm_arena_check(f->arena), 0);
    /* Per block too: nothing is in use. */
    size_t blocks = CAPACITY >> SHM_MAX_ALLOC_POW2;
    uint32_t *used = calloc(blocks, sizeof *used);
    assert_non_null(used);
    assert_int_equal(shm_arena_block_usage(f->arena, 0, blocks, used), 0);
    for (size_t b = 0; b < blocks; b++)
        assert_int_equal(used[b], 0);
    free(used);

    /* A damaged entry: shm_check counts it, a pop refuses it. */
    struct shmi_tcache_bin *bin = &shmi_tcache_self.bins[0];
    uint64_t n = shmi_atomic_load_relaxed(&bin->count);
    assert_true(n > 0);
    uint64_t kept = shmi_atomic_load_relaxed(&bin->entry[n - 1]);
    shmi_atomic_store_relaxed(&bin->entry[n - 1], kept + MIN_CHUNK / 2);
    assert_true(shm_arena_check(f->arena) >= 1);
    reports = 0;
    shm_set_error_handler(count_report, NULL);
    shm_offt y = shm_arena_malloc(f->arena, 1);
    shm_set_error_handler(NULL, NULL);
    assert_true(y != SHM_NULL);
    assert_true(y != f->arena->geo.data_offset + kept + MIN_CHUNK / 2);
    assert_true(reports >= 1);
    shm_arena_free(f->arena, y);
    /* The refused entry's chunk stays allocated, nobody's: one chunk. */
    assert_int_equal(shm_arena_flush_thread_cache(f->arena), 0);
    assert_int_equal(bitmap_free(f->arena), CAPACITY - MIN_CHUNK);
    errno = 0;
    shm_arena_free(f->arena, f->arena->geo.data_offset + kept);
    assert_int_equal(errno, 0);
    assert_int_equal(shm_arena_flush_thread_cache(f->arena), 0);
    assert_int_equal(bitmap_free(f->arena), CAPACITY);
}

static void chunk_written_after_free_is_not_handed_out(void **state)
{
    struct fixture *f = *state;
    if (!cached_build())
        skip();
    shm_offt x = shm_arena_malloc(f->arena, FIT(64));
    assert_true(x != SHM_NULL);
    shm_arena_free(f->arena, x);
    /* A use after free in the first 8 bytes, the tag's (the rest of a
     * cached chunk is poisoned for ASan and memcheck). */
    memset((unsigned char *)shm_arena_base(f->arena) + x, 0xab, 8);
    reports = 0;
    shm_set_error_handler(count_report, NULL);
    shm_offt y = shm_arena_malloc(f->arena, FIT(64));
    shm_set_error_handler(NULL, NULL);
    assert_true(y != SHM_NULL && y != x);
    assert_int_equal(reports, 1);
    /* x is left allocated (the collector's to find), and can be freed by
     * whoever owns it. */
    assert_int_equal(shm_arena_usable_size(f->arena, x), FIT(64));
    shm_arena_free(f->arena, x);
    shm_arena_free(f->arena, y);
    assert_int_equal(shm_arena_flush_thread_cache(f->arena), 0);
    assert_int_equal(bitmap_free(f->arena), CAPACITY);
}

/* ---- when caches go back ----------------------------------------------- */

static void *churn_and_leave(void *arg)
{
    shm_arena *a = arg;
    shm_offt x[64];
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 64; i++)
            x[i] = shm_arena_malloc(
                a, MIN_CHUNK << (unsigned)(i % (SHMI_TCACHE_CLASSES > 0
                                                    ? (int)SHMI_TCACHE_CLASSES
                                                    : 1)));
        for (int i = 0; i < 64; i++)
            shm_arena_free(a, x[i]);
    }
    return NULL;
}

static void thread_exit_gives_its_cache_back(void **state)
{
    struct fixture *f = *state;
    if (!cached_build())
        skip();
    assert_int_equal(shm_arena_flush_thread_cache(f->arena), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, churn_and_leave, f->arena), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(cached_bytes(f->arena), 0);
    assert_int_equal(bitmap_free(f->arena), CAPACITY);
    assert_int_equal(shm_arena_check(f->arena), 0);
}

/* A child that opens the file, churns, and ends as `how` says: 0 closes
 * the arena, 1 returns from main (exit), 2 is killed with its caches
 * full. */
static void child_churns(const char *path, int how)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct shm_arena_options opts = {.flags = SHM_ARENA_NO_CREATE};
        shm_arena *a = shm_arena_open(path, &opts);
        if (a == NULL)
            _exit(2);
        churn_and_leave(a);
        if (how == 0)
            _exit(shm_arena_close(a) == 0 ? 0 : 3);
        if (how == 1)
            exit(0);
        raise(SIGKILL);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (how < 2)
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    else
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void close_and_exit_give_the_cache_back(void **state)
{
    struct fixture *f = *state;
    if (!cached_build())
        skip();
    assert_int_equal(shm_arena_flush_thread_cache(f->arena), 0);
    child_churns(f->path, 0);
    assert_int_equal(cached_bytes(f->arena), 0);
    assert_int_equal(bitmap_free(f->arena), CAPACITY);
    child_churns(f->path, 1);
    assert_int_equal(cached_bytes(f->arena), 0);
    assert_int_equal(bitmap_free(f->arena), CAPACITY);
}

static void killed_process_loses_nothing_it_cached(void **state)
{
    struct fixture *f = *state;
    if (!cached_build())
        skip();
    assert_int_equal(shm_arena_flush_thread_cache(f->arena), 0);
    child_churns(f->path, 2);
    size_t cached = cached_bytes(f->arena);
    assert_true(cached > 0);
    assert_int_equal(bitmap_free(f->arena) + cached, CAPACITY);
    struct shm_recovery r;
    assert_int_equal(shm_arena_recover(f->arena, &r), 0);
    assert_int_equal(r.entries, 1);
    assert_int_equal(r.bytes, cached);
    assert_int_equal(cached_bytes(f->arena), 0);
    assert_int_equal(bitmap_free(f->arena), CAPACITY);
    assert_int_equal(shm_arena_check(f->arena), 0);
}

#if SHM_TEST_HOOKS
static unsigned kill_point;

static void stop_at(unsigned point)
{
    if (point == kill_point)
        raise(SIGKILL);
}
#endif

/* A child killed at `point` of a refill or a flush: after the recovery,
 * every byte is free again but the chunk a refill was about to return. */
static void killed_at(struct fixture *f, unsigned point, size_t lost)
{
#if SHM_TEST_HOOKS
    assert_int_equal(shm_arena_flush_thread_cache(f->arena), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct shm_arena_options opts = {.flags = SHM_ARENA_NO_CREATE};
        shm_arena *a = shm_arena_open(f->path, &opts);
        if (a == NULL)
            _exit(2);
        shm_offt x[3 * CHUNKS];
        kill_point = point;
        /* A refill first; the flushes once the child holds no chunk of
         * its own (a live chunk of a killed process is the collector's). */
        if (point == SHMI_TCACHE_AT_REFILL_COUNTED)
            shmi_tcache_test_hook = stop_at;
        for (int i = 0; i < 3 * CHUNKS; i++)
            x[i] = shm_arena_malloc(a, MIN_CHUNK);
        for (int i = 0; i < 3 * CHUNKS; i++)
            shm_arena_free(a, x[i]);
        shmi_tcache_test_hook = stop_at;
        shm_arena_flush_thread_cache(a);
        _exit(3);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    struct shm_recovery r;
    assert_int_equal(shm_arena_recover(f->arena, &r), 0);
    assert_int_equal(r.entries, 1);
    assert_int_equal(cached_bytes(f->arena), 0);
    assert_int_equal(bitmap_free(f->arena), CAPACITY - lost);
    assert_int_equal(shm_arena_check(f->arena), 0);
    if (lost)
        /* The one in flight, handed to nobody: found by its offset. */
        for (uint64_t x = 0; x < CAPACITY; x += MIN_CHUNK)
            if (shmi_tree_usable(&f->arena->geo, x) == MIN_CHUNK) {
                assert_int_equal(shmi_tree_free(&f->arena->geo, x), 0);
                break;
            }
    assert_int_equal(bitmap_free(f->arena), CAPACITY);
#else
    (void)f;
    (void)point;
    (void)lost;
    print_message("skipped: built without SHM_TEST_HOOKS\n");
    skip();
#endif
}

static void killed_inside_a_refill(void **state)
{
    if (!cached_build())
        skip();
    killed_at(*state, SHMI_TCACHE_AT_REFILL_COUNTED, MIN_CHUNK);
}

static void killed_inside_a_flush_before_any_free(void **state)
{
    if (!cached_build())
        skip();
    killed_at(*state, SHMI_TCACHE_AT_FLUSH_COUNTED, 0);
}

static void killed_inside_a_flush_after_one_word(void **state)
{
    if (!cached_build())
        skip();
    killed_at(*state, SHMI_TCACHE_AT_FLUSH_WORD, 0);
}

/* ---- fork and ENOMEM --------------------------------------------------- */

static void forked_child_does_not_use_the_parents_cache(void **state)
{
    struct fixture *f = *state;
    if (!cached_build())
        skip();
    shm_offt x = shm_arena_malloc(f->arena, FIT(200));
    assert_true(x != SHM_NULL);
    shm_arena_free(f->arena, x); /* in this thread's cache */
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The inherited handle: no record, no cache. */
        shm_offt y = shm_arena_malloc(f->arena, FIT(200));
        errno = 0;
        shm_arena_free(f->arena, x); /* the parent's cached chunk */
        int refused = errno == EINVAL;
        shm_arena_free(f->arena, y);
        _exit(y != SHM_NULL && y != x && refused ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(shm_arena_malloc(f->arena, FIT(200)), x);
    shm_arena_free(f->arena, x);
    assert_int_equal(shm_arena_check(f->arena), 0);
}

static void malloc_gives_its_own_cache_back_before_enomem(void **state)
{
    struct fixture *f = *state;
    if (!cached_build() || SHMI_TCACHE_CLASSES < 4)
        skip();
    assert_int_equal(shm_arena_flush_thread_cache(f->arena), 0);
    size_t n = CAPACITY / MIN_CHUNK;
    shm_offt *x = calloc(n, sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) {
        x[i] = shm_arena_malloc(f->arena, MIN_CHUNK);
        assert_true(x[i] != SHM_NULL);
    }
    assert_int_equal(shm_arena_malloc(f->arena, 1), SHM_NULL);
    /* Eight neighbours (one 8-chunk buddy block), all into the cache. */
    shm_offt lowest = x[0];
    for (size_t i = 0; i < n; i++)
        if (x[i] < lowest)
            lowest = x[i];
    size_t freed = 0;
    for (size_t i = 0; i < n; i++)
        if (x[i] >= lowest && x[i] < lowest + 8 * MIN_CHUNK) {
            shm_arena_free(f->arena, x[i]);
            x[i] = SHM_NULL;
            freed++;
        }
    assert_int_equal(freed, 8);
    assert_true(cached_bytes(f->arena) >=
                (CHUNKS < 8 ? CHUNKS : 8) * MIN_CHUNK);
    /* Only those coalesced make room for 8 chunks' worth. */
    shm_offt big = shm_arena_malloc(f->arena, 8 * MIN_CHUNK);
    assert_int_equal(big, lowest);
    shm_arena_free(f->arena, big);
    for (size_t i = 0; i < n; i++)
        shm_arena_free(f->arena, x[i]);
    free(x);
    assert_int_equal(shm_arena_flush_thread_cache(f->arena), 0);
    assert_int_equal(bitmap_free(f->arena), CAPACITY);
    assert_int_equal(shm_arena_check(f->arena), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(double_free_into_own_cache_is_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            double_free_into_another_threads_cache_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(every_cached_class_is_checked_on_free,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(statistics_and_check_see_cached_chunks,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            chunk_written_after_free_is_not_handed_out, setup, teardown),
        cmocka_unit_test_setup_teardown(thread_exit_gives_its_cache_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(close_and_exit_give_the_cache_back,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(killed_process_loses_nothing_it_cached,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(killed_inside_a_refill, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(killed_inside_a_flush_before_any_free,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(killed_inside_a_flush_after_one_word,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            forked_child_does_not_use_the_parents_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(
            malloc_gives_its_own_cache_back_before_enomem, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
