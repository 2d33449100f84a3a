/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The input is a sequence of calls on one arena, each an op byte followed
 * by its operands:
 *
 *   0 malloc(u16 size, huge when its top bit is set)
 *   1 calloc(u8 count, u16 size << u8 shift)
 *   2 free(live chunk u8)            3 free(u64 offset)
 *   4 free(live chunk u8 + s8 delta) 5 usable_size(u64 offset)
 *   6 check, available exact         7 ptr_free(base + u64 offset)
 *   8 verify every live chunk        9 usable_size(live chunk u8 + s8 delta)
 *  10 realloc(live chunk u8, u16 size, huge when its top bit is set)
 *  11 roots: u8 name (4 names), u8 op (set/get/cas/bad), u64 offset
 *  12 strndup(u8 n bytes from the input)
 *  13 stats, exact               14 block usage of every block, exact
 *
 * The harness keeps its own list of live chunks and checks every answer
 * against it: new chunks are aligned, of the right size, inside the data
 * and overlap no live chunk; an offset that is not a live chunk's start is
 * refused with EINVAL and changes nothing; available is exactly the
 * capacity minus the live chunks; the bytes written into a chunk stay
 * until it is freed; realloc keeps the contents up to the smaller size
 * and shrinks in place; the named roots hold what was last stored; and
 * after each input everything is freed again (the roots stay: the model
 * of them lives as long as the arena).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "shm_alloc.h"

#define MAX_LIVE 256

struct live {
    shm_offt off;
    size_t size;
};

static shm_arena *arena;
static uint8_t *base;
static size_t capacity, mapping, min_chunk, max_chunk;
static struct live live[MAX_LIVE];
static int nlive;
static size_t in_use;

struct input {
    const uint8_t *p;
    size_t left;
};

static uint64_t take(struct input *in, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes && in->left > 0; i++, in->left--)
        v |= (uint64_t)*in->p++ << (8 * i);
    return v;
}

static uint8_t tag_of(shm_offt off, size_t i)
{
    return (uint8_t)((off >> 3) ^ (i * 131u) ^ 0x5A);
}

static void verify(const struct live *l)
{
    for (size_t i = 0; i < l->size; i++)
        FUZZ_REQUIRE(base[l->off + i] == tag_of(l->off, i),
                     "chunk %#llx byte %zu overwritten",
                     (unsigned long long)l->off, i);
}

static size_t class_size(size_t n)
{
    size_t s = min_chunk;
    while (s < n)
        s <<= 1;
    return s;
}

static void adopt(shm_offt off, size_t request, int zeroed)
{
    size_t size = class_size(request);
    FUZZ_REQUIRE(shm_arena_usable_size(arena, off) == size,
                 "usable size of a %zu-byte request", request);
    FUZZ_REQUIRE(off % size == 0, "chunk %#llx not aligned to %zu",
                 (unsigned long long)off, size);
    FUZZ_REQUIRE(off < mapping && size <= mapping - off,
                 "chunk %#llx outside the mapping", (unsigned long long)off);
    for (int i = 0; i < nlive; i++)
        FUZZ_REQUIRE(off + size <= live[i].off ||
                         live[i].off + live[i].size <= off,
                     "chunk %#llx overlaps live %#llx", (unsigned long long)off,
                     (unsigned long long)live[i].off);
    if (zeroed)
        for (size_t i = 0; i < request; i++)
            FUZZ_REQUIRE(base[off + i] == 0, "calloc byte %zu not zero", i);
    for (size_t i = 0; i < size; i++)
        base[off + i] = tag_of(off, i);
    live[nlive++] = (struct live){off, size};
    in_use += size;
}

static void release(int i)
{
    verify(&live[i]);
    errno = 0;
    shm_arena_free(arena, live[i].off);
    FUZZ_REQUIRE(errno != EINVAL, "free of a live chunk refused");
    in_use -= live[i].size;
    live[i] = live[--nlive];
}

static int find(shm_offt off)
{
    for (int i = 0; i < nlive; i++)
        if (live[i].off == off)
            return i;
    return -1;
}

static void expect_available(void)
{
    FUZZ_REQUIRE(shm_arena_available(arena) == capacity - in_use,
                 "available %zu, expected %zu", shm_arena_available(arena),
                 capacity - in_use);
}

/* Free of an arbitrary offset: a live start is a real free, SHM_NULL a
 * no-op, anything else EINVAL with nothing changed. */
static void free_any(shm_offt off)
{
    int i = find(off);
    if (i >= 0) {
        release(i);
        return;
    }
    errno = 0;
    shm_arena_free(arena, off);
    if (off != SHM_NULL)
        FUZZ_REQUIRE(errno == EINVAL, "free(%#llx): errno %d",
                     (unsigned long long)off, errno);
    expect_available();
}

static void usable_any(shm_offt off)
{
    int i = find(off);
    errno = 0;
    size_t n = shm_arena_usable_size(arena, off);
    if (i >= 0) {
        FUZZ_REQUIRE(n == live[i].size, "usable size of a live chunk");
    } else {
        FUZZ_REQUIRE(n == 0 && errno == EINVAL,
                     "usable_size(%#llx) = %zu, errno %d",
                     (unsigned long long)off, n, errno);
    }
}

/* The chunk of live[i] resized to n bytes (reported or not). */
static void realloc_live(int i, size_t n)
{
    struct live old = live[i];
    verify(&old);
    errno = 0;
    shm_offt off = shm_arena_realloc(arena, old.off, n);
    if (off == SHM_NULL) {
        FUZZ_REQUIRE(errno == ENOMEM, "realloc failed with errno %d", errno);
        FUZZ_REQUIRE(n > max_chunk || in_use > old.size,
                     "realloc to %zu failed in an otherwise empty arena", n);
        verify(&old);
        expect_available();
        return;
    }
    FUZZ_REQUIRE(n <= max_chunk, "realloc to %zu bytes succeeded", n);
    size_t size = class_size(n);
    if (size <= old.size)
        FUZZ_REQUIRE(off == old.off, "a shrink moved the chunk");
    size_t kept = size < old.size ? size : old.size;
    for (size_t k = 0; k < kept; k++)
        FUZZ_REQUIRE(base[off + k] == tag_of(old.off, k),
                     "realloc lost byte %zu", k);
    live[i] = live[--nlive];
    in_use -= old.size;
    adopt(off, n, 0);
    expect_available();
}

/* The named roots: a model of four names, kept across inputs. */
static const char *const root_names[4] = {"r0", "root-one", "r2", "r3"};
static shm_offt root_model[4];

static void roots_op(unsigned name, unsigned op, uint64_t off)
{
    const char *n = root_names[name % 4];
    shm_offt *model = &root_model[name % 4];
    off %= 2 * (uint64_t)mapping;
    errno = 0;
    switch (op % 4) {
    case 0: {
        int err = shm_arena_root_set(arena, n, off);
        if (off >= mapping) {
            FUZZ_REQUIRE(err == EINVAL, "root_set past the mapping: %d", err);
        } else {
            FUZZ_REQUIRE(err == 0, "root_set failed: %d", err);
            *model = off;
        }
        break;
    }
    case 1: {
        shm_offt got = shm_arena_root_get(arena, n);
        FUZZ_REQUIRE(got == *model, "root %s holds %#llx, expected %#llx", n,
                     (unsigned long long)got, (unsigned long long)*model);
        if (got == SHM_NULL)
            FUZZ_REQUIRE(errno == ENOENT, "empty root: errno %d", errno);
        break;
    }
    case 2: {
        shm_offt desired = off < mapping ? off : SHM_NULL;
        bool right = off & 1;
        shm_offt expected = right ? *model : *model + 8;
        bool done = shm_arena_root_cas(arena, n, expected, desired);
        FUZZ_REQUIRE(done == right, "root_cas with %s expectation: %d",
                     right ? "the right" : "a wrong", done);
        if (done)
            *model = desired;
        else
            FUZZ_REQUIRE(errno == EAGAIN, "failed root_cas: errno %d", errno);
        break;
    }
    default:
        FUZZ_REQUIRE(shm_arena_root_set(arena, "", 64) == EINVAL &&
                         shm_arena_root_get(arena, NULL) == SHM_NULL &&
                         errno == EINVAL,
                     "bad root names accepted");
        break;
    }
}

static void strndup_op(struct input *in)
{
    size_t n = (size_t)take(in, 1);
    char text[256];
    size_t got = 0;
    for (; got < n && in->left > 0; got++)
        text[got] = (char)take(in, 1);
    if (nlive == MAX_LIVE)
        release(0);
    shm_offt off = shm_arena_strndup(arena, text, got);
    if (off == SHM_NULL) {
        FUZZ_REQUIRE(errno == ENOMEM, "strndup failed with errno %d", errno);
        return;
    }
    size_t len = strnlen(text, got);
    FUZZ_REQUIRE(memcmp(base + off, text, len) == 0 && base[off + len] == 0,
                 "strndup copied something else");
    adopt(off, len + 1, 0);
}

static void stats_op(void)
{
    struct shm_stats st;
    FUZZ_REQUIRE(shm_arena_stats(arena, &st) == 0, "stats failed");
    FUZZ_REQUIRE(st.capacity == capacity &&
                     st.bytes_free + st.bytes_cached == capacity - in_use &&
                     st.bytes_in_use == in_use && st.damage_refused == 0 &&
                     st.min_chunk == min_chunk && st.max_chunk == max_chunk,
                 "stats: free %zu cached %zu in use %zu, expected %zu",
                 st.bytes_free, st.bytes_cached, st.bytes_in_use, in_use);
    size_t sum = 0;
    for (unsigned c = 0; c < st.classes; c++)
        sum += st.free_chunks[c] * (min_chunk << c);
    FUZZ_REQUIRE(sum == st.bytes_free, "free chunks sum to %zu of %zu", sum,
                 st.bytes_free);
    FUZZ_REQUIRE(st.largest_free <= st.bytes_free &&
                     (st.bytes_free == 0 || st.largest_free > 0),
                 "largest free %zu", st.largest_free);
}

static void block_usage_op(void)
{
    size_t blocks = (capacity + max_chunk - 1) / max_chunk;
    uint32_t used[256];
    FUZZ_REQUIRE(blocks <= 256, "too many blocks for the harness");
    FUZZ_REQUIRE(shm_arena_block_usage(arena, 0, blocks, used) == 0,
                 "block usage failed");
    size_t sum = 0;
    for (size_t b = 0; b < blocks; b++)
        sum += used[b];
    FUZZ_REQUIRE(sum == in_use, "blocks use %zu, expected %zu", sum, in_use);
    FUZZ_REQUIRE(shm_arena_block_usage(arena, blocks, 1, used) == EINVAL,
                 "a block past the last accepted");
}

static void open_arena(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/api.%d.shm", fuzz_dir(), (int)getpid());
    unlink(path);
    min_chunk = get_shm_min_allocatable_size();
    max_chunk = get_shm_max_allocatable_size();
    struct shm_arena_options opts = {.capacity = 64 * max_chunk,
                                     .flags = SHM_ARENA_EXCLUSIVE};
    arena = shm_arena_open(path, &opts);
    FUZZ_REQUIRE(arena != NULL, "cannot create %s", path);
    unlink(path); /* the mapping stays */
    base = shm_arena_base(arena);
    capacity = shm_arena_capacity(arena);
    mapping = shm_arena_mapping_size(arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (arena == NULL)
        open_arena();
    FUZZ_REQUIRE(nlive == 0 && shm_arena_available(arena) == capacity,
                 "the previous input leaked");
    struct input in = {data, size};
    while (in.left > 0) {
        unsigned op = (unsigned)take(&in, 1) % 15;
        switch (op) {
        case 0:
        case 1: {
            if (nlive == MAX_LIVE)
                release(0);
            size_t count = 1, n;
            if (op == 0) {
                uint64_t v = take(&in, 2);
                n = v & 0x8000 ? SIZE_MAX - (v & 0x7fff)
                               : (size_t)(v % (2 * max_chunk + 2));
            } else {
                count = (size_t)take(&in, 1);
                n = (size_t)take(&in, 2);
                unsigned shift = (unsigned)take(&in, 1) % 64;
                n = n <= (SIZE_MAX >> shift) ? n << shift : SIZE_MAX >> shift;
            }
            errno = 0;
            shm_offt off = op == 0 ? shm_arena_malloc(arena, n)
                                   : shm_arena_calloc(arena, count, n);
            size_t total;
            int overflow = __builtin_mul_overflow(count, n, &total);
            if (off == SHM_NULL) {
                FUZZ_REQUIRE(errno == ENOMEM, "malloc failed with errno %d",
                             errno);
                if (!overflow && total <= max_chunk && in_use == 0)
                    FUZZ_REQUIRE(0, "an empty arena refused %zu bytes", total);
                expect_available();
            } else {
                FUZZ_REQUIRE(!overflow && total <= max_chunk,
                             "%zu x %zu bytes handed out", count, n);
                adopt(off, total, op == 1);
            }
            break;
        }
        case 2:
            if (nlive > 0)
                release((int)(take(&in, 1) % (uint64_t)nlive));
            break;
        case 3:
            free_any(take(&in, 8));
            break;
        case 4:
        case 9:
            if (nlive > 0) {
                shm_offt off = live[take(&in, 1) % (uint64_t)nlive].off;
                off += (uint64_t)(int64_t)(int8_t)take(&in, 1);
                if (op == 4)
                    free_any(off);
                else
                    usable_any(off);
            }
            break;
        case 5:
            usable_any(take(&in, 8));
            break;
        case 6:
            FUZZ_REQUIRE(shm_arena_check(arena) == 0, "check failed");
            expect_available();
            break;
        case 7: {
            uint64_t off = take(&in, 8) % (2 * (uint64_t)mapping + 1);
            uintptr_t p = (uintptr_t)base + (uintptr_t)off;
            int i = off < mapping ? find(off) : -1;
            if (i >= 0) {
                verify(&live[i]);
                shm_arena_ptr_free(arena, (void *)p);
                in_use -= live[i].size;
                live[i] = live[--nlive];
            } else if (off != 0) {
                errno = 0;
                shm_arena_ptr_free(arena, (void *)p);
                FUZZ_REQUIRE(errno == EINVAL, "ptr_free(base + %#llx)",
                             (unsigned long long)off);
            }
            expect_available();
            break;
        }
        case 10:
            if (nlive > 0) {
                int i = (int)(take(&in, 1) % (uint64_t)nlive);
                uint64_t v = take(&in, 2);
                realloc_live(i, v & 0x8000 ? SIZE_MAX - (v & 0x7fff)
                                           : (size_t)(v % (2 * max_chunk + 2)));
            }
            break;
        case 11: {
            unsigned name = (unsigned)take(&in, 1);
            unsigned rop = (unsigned)take(&in, 1);
            roots_op(name, rop, take(&in, 8));
            break;
        }
        case 12:
            strndup_op(&in);
            break;
        case 13:
            stats_op();
            break;
        case 14:
            block_usage_op();
            break;
        default:
            for (int i = 0; i < nlive; i++)
                verify(&live[i]);
        }
    }
    while (nlive > 0)
        release(nlive - 1);
    FUZZ_REQUIRE(shm_arena_available(arena) == capacity,
                 "freeing everything left %zu of %zu available",
                 shm_arena_available(arena), capacity);
    FUZZ_REQUIRE(shm_arena_check(arena) == 0, "check failed at the end");
    return 0;
}
