/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Bad calls leave the arena exactly as it was: each is refused with its
 * errno, prints nothing (stdout and stderr are redirected into a file that
 * must stay empty), and afterwards shm_arena_available, shm_arena_check,
 * the usable size and the bytes of every live chunk are what they were.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include "robust_util.h"

#define LIVE 12

static shm_arena *arena;
static uint8_t *base;
static size_t capacity, mapping, min_chunk, max_chunk;
static uint64_t data_offset;
static shm_offt live[LIVE];
static size_t live_size[LIVE];
static size_t baseline_available;

static uint64_t stamp_word(shm_offt off, size_t i)
{
    return (off * 0x9E3779B97F4A7C15u) ^ (i * 0xC2B2AE3D27D4EB4Fu);
}

static void stamp(shm_offt off, size_t size)
{
    for (size_t i = 0; i + 8 <= size; i += 8) {
        uint64_t w = stamp_word(off, i);
        memcpy(base + off + i, &w, 8);
    }
}

static bool stamp_intact(shm_offt off, size_t size)
{
    for (size_t i = 0; i + 8 <= size; i += 8) {
        uint64_t w;
        memcpy(&w, base + off + i, 8);
        if (w != stamp_word(off, i))
            return false;
    }
    return true;
}

static int setup(void **state)
{
    (void)state;
    char path[1024];
    robust_clean_dir();
    robust_path(path, sizeof path, "bad_calls.shm");
    min_chunk = get_shm_min_allocatable_size();
    max_chunk = get_shm_max_allocatable_size();
    struct shm_arena_options opts = {.capacity = 64 * max_chunk};
    arena = shm_arena_open(path, &opts);
    if (arena == NULL) {
        fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    base = shm_arena_base(arena);
    capacity = shm_arena_capacity(arena);
    mapping = shm_arena_mapping_size(arena);
    data_offset = robust_get64(base + SB_DATA_OFFSET);
    /* live chunks of every size class, the largest first */
    for (int i = 0; i < LIVE; i++) {
        size_t want = max_chunk >> (i % 8);
        if (want < min_chunk)
            want = min_chunk;
        live[i] = shm_arena_malloc(arena, want);
        if (live[i] == SHM_NULL)
            return -1;
        live_size[i] = shm_arena_usable_size(arena, live[i]);
        stamp(live[i], live_size[i]);
    }
    baseline_available = shm_arena_available(arena);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < LIVE; i++)
        shm_arena_free(arena, live[i]);
    bool whole =
        shm_arena_available(arena) == capacity && shm_arena_check(arena) == 0;
    shm_arena_close(arena);
    return whole ? 0 : -1;
}

/* The arena is as setup left it. */
static void assert_unchanged(const char *what)
{
    size_t avail = shm_arena_available(arena);
    if (avail != baseline_available)
        fail_msg("%s: available %zu, was %zu", what, avail, baseline_available);
    int check = shm_arena_check(arena);
    if (check != 0)
        fail_msg("%s: shm_arena_check = %d", what, check);
    for (int i = 0; i < LIVE; i++) {
        if (shm_arena_usable_size(arena, live[i]) != live_size[i])
            fail_msg("%s: live chunk %d lost its size", what, i);
        if (!stamp_intact(live[i], live_size[i]))
            fail_msg("%s: live chunk %d was written", what, i);
    }
}

/*
 * Runs `call` with output captured, then checks errno (when expected is
 * not 0), silence and an unchanged arena.
 */
#define BAD_CALL(expected, call, ...)                                          \
    do {                                                                       \
        char what_[256], printed_[512];                                        \
        snprintf(what_, sizeof what_, __VA_ARGS__);                            \
        struct robust_quiet q_;                                                \
        robust_quiet_begin(&q_);                                               \
        errno = 0;                                                             \
        call;                                                                  \
        int err_ = errno;                                                      \
        size_t noise_ = robust_quiet_end(&q_, printed_, sizeof printed_);      \
        if ((expected) != 0 && err_ != (expected))                             \
            fail_msg("%s: errno %d (%s), expected %d (%s)", what_, err_,       \
                     strerror(err_), (expected), strerror(expected));          \
        if (noise_ != 0)                                                       \
            fail_msg("%s: the library printed: %s", what_, printed_);          \
        assert_unchanged(what_);                                               \
    } while (0)

/* Frees and size queries of one offset that is not a live chunk start. */
static void refuse_offset(shm_offt off, const char *kind)
{
    size_t usable = 1;
    BAD_CALL(EINVAL, shm_arena_free(arena, off), "free(%s %#" PRIx64 ")", kind,
             off);
    BAD_CALL(EINVAL, usable = shm_arena_usable_size(arena, off),
             "usable_size(%s %#" PRIx64 ")", kind, off);
    assert_int_equal(usable, 0);
}

static void test_double_free(void **state)
{
    (void)state;
    size_t sizes[] = {min_chunk, max_chunk, max_chunk / 2 + 1, 1, 0};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        shm_offt off = shm_arena_malloc(arena, sizes[i]);
        assert_true(off != SHM_NULL);
        shm_arena_free(arena, off);
        assert_unchanged("a plain malloc and free");
        refuse_offset(off, "freed");
        refuse_offset(off, "freed twice");
    }
    /* two buddies freed, so that they merge; then each freed again */
    shm_offt a = shm_arena_malloc(arena, min_chunk);
    shm_offt b = shm_arena_malloc(arena, min_chunk);
    assert_true(a != SHM_NULL && b != SHM_NULL);
    shm_arena_free(arena, a);
    shm_arena_free(arena, b);
    assert_unchanged("two small chunks freed");
    refuse_offset(a, "merged buddy");
    refuse_offset(b, "merged buddy");
    /* a chunk freed, its space taken by a larger chunk, old offset freed
     * (needs a size range of at least three classes) */
    if (4 * min_chunk > max_chunk)
        return;
    shm_offt small = shm_arena_malloc(arena, min_chunk);
    assert_true(small != SHM_NULL);
    shm_arena_free(arena, small);
    shm_offt big[4];
    bool covered = false;
    for (int i = 0; i < 4; i++) {
        big[i] = shm_arena_malloc(arena, 4 * min_chunk);
        assert_true(big[i] != SHM_NULL);
        covered |= small > big[i] && small < big[i] + 4 * min_chunk;
    }
    baseline_available -= 4 * (4 * min_chunk);
    if (covered)
        refuse_offset(small, "inside a newer chunk");
    for (int i = 0; i < 4; i++)
        shm_arena_free(arena, big[i]);
    baseline_available += 4 * (4 * min_chunk);
    assert_unchanged("larger chunks freed");
}

static void test_free_inside_chunk(void **state)
{
    (void)state;
    shm_offt big = live[0]; /* a 2^MAX chunk */
    assert_int_equal(live_size[0], max_chunk);
    for (size_t at = min_chunk; at < max_chunk; at *= 2) {
        refuse_offset(big + at, "inside a chunk");
        refuse_offset(big + max_chunk - at, "inside a chunk");
    }
    for (int i = 1; i < LIVE; i++)
        if (live_size[i] > min_chunk)
            refuse_offset(live[i] + live_size[i] / 2, "middle of a chunk");
}

static void test_misaligned(void **state)
{
    (void)state;
    size_t deltas[] = {1, 2, 3, 4, 7, 8, 15, 16, 31};
    for (int i = 0; i < LIVE; i++)
        for (size_t d = 0; d < sizeof deltas / sizeof deltas[0]; d++)
            if (deltas[d] < min_chunk) {
                refuse_offset(live[i] + deltas[d], "misaligned");
                refuse_offset(live[i] - deltas[d], "misaligned");
            }
}

static void test_in_metadata(void **state)
{
    (void)state;
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t offsets[] = {1,
                          8,
                          16,
                          24,
                          40,
                          min_chunk,
                          page - min_chunk,
                          page,
                          page + min_chunk,
                          2 * page,
                          data_offset / 2,
                          data_offset - page,
                          data_offset - min_chunk,
                          data_offset - 1,
                          max_chunk};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++)
        if (offsets[i] > 0 && offsets[i] < data_offset)
            refuse_offset(offsets[i], "metadata");
}

static void test_past_the_end(void **state)
{
    (void)state;
    uint64_t end = data_offset + capacity;
    uint64_t offsets[] = {end,
                          end + min_chunk,
                          end + max_chunk,
                          mapping,
                          mapping + min_chunk,
                          2 * (uint64_t)mapping,
                          1ull << 32,
                          1ull << 40,
                          1ull << 62,
                          1ull << 63,
                          UINT64_MAX,
                          UINT64_MAX - min_chunk + 1,
                          UINT64_MAX - max_chunk + 1,
                          (UINT64_MAX / max_chunk) * max_chunk,
                          (uint64_t)0 - mapping};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++)
        refuse_offset(offsets[i], "past the end");
}

/* Offsets in the data area that are well aligned but belong to no live
 * chunk: a free chunk's start, never handed out. */
static void test_never_allocated(void **state)
{
    (void)state;
    int tried = 0;
    for (uint64_t off = data_offset + capacity - max_chunk;
         off >= data_offset && tried < 8; off -= max_chunk) {
        bool inside = false;
        for (int i = 0; i < LIVE; i++)
            inside |= off + max_chunk > live[i] && off < live[i] + live_size[i];
        if (inside)
            continue;
        refuse_offset(off, "never allocated");
        refuse_offset(off + min_chunk, "never allocated");
        tried++;
    }
    assert_true(tried > 0);
}

static void test_null_is_a_no_op(void **state)
{
    (void)state;
    BAD_CALL(0, shm_arena_free(arena, SHM_NULL), "free(SHM_NULL)");
    BAD_CALL(0, shm_arena_ptr_free(arena, NULL), "ptr_free(NULL)");
}

static void test_huge_sizes(void **state)
{
    (void)state;
    const size_t sizes[] = {SIZE_MAX,
                            SIZE_MAX - 1,
                            SIZE_MAX - 7,
                            SIZE_MAX - min_chunk,
                            SIZE_MAX - max_chunk,
                            SIZE_MAX - max_chunk + 1,
                            SIZE_MAX / 2,
                            (size_t)PTRDIFF_MAX,
                            (size_t)PTRDIFF_MAX + 1,
                            (size_t)1 << (sizeof(size_t) * 8 - 1),
                            ((size_t)1 << 32) + 1,
                            capacity + 1,
                            capacity,
                            max_chunk * 2,
                            max_chunk + min_chunk,
                            max_chunk + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        shm_offt off = 1;
        void *p = &off;
        BAD_CALL(ENOMEM, off = shm_arena_malloc(arena, n), "malloc(%zu)", n);
        assert_true(off == SHM_NULL);
        BAD_CALL(ENOMEM, p = shm_arena_ptr_malloc(arena, n), "ptr_malloc(%zu)",
                 n);
        assert_null(p);
        off = 1;
        BAD_CALL(ENOMEM, off = shm_arena_calloc(arena, 1, n), "calloc(1, %zu)",
                 n);
        assert_true(off == SHM_NULL);
        off = 1;
        BAD_CALL(ENOMEM, off = shm_arena_calloc(arena, n, 1), "calloc(%zu, 1)",
                 n);
        assert_true(off == SHM_NULL);
    }
}

static void test_calloc_overflow(void **state)
{
    (void)state;
    const size_t half = SIZE_MAX / 2 + 1;
    /* products that wrap: to 0, to small values, and far beyond */
    const size_t pairs[][2] = {
        {half, 2},
        {half + 1, 2},
        {SIZE_MAX, SIZE_MAX},
        {SIZE_MAX, 2},
        {(size_t)1 << 32, (size_t)1 << 32},
        {(size_t)1 << 33, (size_t)1 << 31},
        {max_chunk, (SIZE_MAX / max_chunk) + 1},
        {SIZE_MAX / 3 + 1, 3},
        {((size_t)1 << 32) + 1, ((size_t)1 << 32) - 1},
        {min_chunk, SIZE_MAX / min_chunk + 2},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        for (int order = 0; order < 2; order++) {
            size_t count = pairs[i][order], size = pairs[i][1 - order];
            shm_offt off = 1;
            void *p = &off;
            BAD_CALL(ENOMEM, off = shm_arena_calloc(arena, count, size),
                     "calloc(%zu, %zu)", count, size);
            assert_true(off == SHM_NULL);
            BAD_CALL(ENOMEM, p = shm_arena_ptr_calloc(arena, count, size),
                     "ptr_calloc(%zu, %zu)", count, size);
            assert_null(p);
        }
    }
}

static void test_ptr_free_outside(void **state)
{
    (void)state;
    int on_stack = 0;
    void *on_heap = malloc(64);
    assert_non_null(on_heap);
    uintptr_t b = (uintptr_t)base;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t addrs[] = {(uintptr_t)&on_stack,
                               (uintptr_t)on_heap,
                               (uintptr_t)&arena,
                               (uintptr_t)test_ptr_free_outside,
                               b - 1,
                               b - min_chunk,
                               b - page,
                               b + mapping,
                               b + mapping + min_chunk,
                               b + mapping + page,
                               1,
                               (uintptr_t)min_chunk,
                               UINTPTR_MAX,
                               UINTPTR_MAX - min_chunk + 1};
    for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++)
        BAD_CALL(EINVAL, shm_arena_ptr_free(arena, (void *)addrs[i]),
                 "ptr_free(%#" PRIxPTR ") outside the mapping", addrs[i]);
    /* inside the mapping but not a chunk start */
    BAD_CALL(EINVAL, shm_arena_ptr_free(arena, base + 8),
             "ptr_free(superblock)");
    if (max_chunk > min_chunk) /* else live[0] + min_chunk is a chunk */
        BAD_CALL(EINVAL, shm_arena_ptr_free(arena, base + live[0] + min_chunk),
                 "ptr_free(inside a chunk)");
    BAD_CALL(EINVAL, shm_arena_ptr_free(arena, base + live[1] + 1),
             "ptr_free(misaligned)");
    free(on_heap);
}

static void test_bad_open_options(void **state)
{
    (void)state;
    char path[1024], before[4096], after[4096];
    robust_path(path, sizeof path, "too_big.shm");
    robust_dir_list(robust_dir(), before, sizeof before);
    const size_t capacities[] = {SIZE_MAX, SIZE_MAX - 4095,
                                 (size_t)1 << (sizeof(size_t) * 8 - 1)};
    for (size_t i = 0; i < sizeof capacities / sizeof capacities[0]; i++) {
        struct shm_arena_options opts = {.capacity = capacities[i]};
        shm_arena *a = NULL;
        size_t size = 1;
        BAD_CALL(EINVAL, a = shm_arena_open(path, &opts),
                 "open with capacity %zu", capacities[i]);
        assert_null(a);
        BAD_CALL(EINVAL, size = shm_mapping_size_for_capacity(capacities[i]),
                 "mapping_size_for_capacity(%zu)", capacities[i]);
        assert_int_equal(size, 0);
    }
    /* larger than any file may be: refused now, not with SIGBUS later.
     * Only where the filesystem refuses such a size up front (ext4's
     * 16 TiB, tmpfs's block limit); elsewhere the attempt could fill the
     * disk before it fails. */
    struct statfs fs;
    shm_arena *a = NULL;
    if (statfs(robust_dir(), &fs) == 0 &&
        (fs.f_type == 0xEF53 || fs.f_type == 0x01021994)) {
        struct shm_arena_options huge = {.capacity = (size_t)1 << 60};
        BAD_CALL(0, a = shm_arena_open(path, &huge), "open with 2^60 bytes");
        int err = errno;
        if (a != NULL) {
            shm_arena_close(a);
            unlink(path);
            fail_msg("a 2^60-byte arena was created");
        }
        if (err != ENOSPC && err != EFBIG && err != EINVAL && err != ENOMEM)
            fail_msg("open with capacity 2^60: errno %d (%s)", err,
                     strerror(err));
    }
    BAD_CALL(0, a = shm_arena_open(NULL, NULL), "open(NULL)");
    assert_null(a);
    BAD_CALL(0, a = shm_arena_open("", NULL), "open(\"\")");
    assert_null(a);
    robust_dir_list(robust_dir(), after, sizeof after);
    assert_string_equal(before, after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_double_free),
        cmocka_unit_test(test_free_inside_chunk),
        cmocka_unit_test(test_misaligned),
        cmocka_unit_test(test_in_metadata),
        cmocka_unit_test(test_past_the_end),
        cmocka_unit_test(test_never_allocated),
        cmocka_unit_test(test_null_is_a_no_op),
        cmocka_unit_test(test_huge_sizes),
        cmocka_unit_test(test_calloc_overflow),
        cmocka_unit_test(test_ptr_free_outside),
        cmocka_unit_test(test_bad_open_options),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
