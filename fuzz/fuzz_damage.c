/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Damaged metadata under a live arena: the input is a sequence of calls
 * on one arena (reset at the start of every input) mixed with stray
 * writes into its bitmap words and hint indexes, as a co-process with a
 * wild pointer would make them:
 *
 *   0 malloc(u8 class)                 1 free(live chunk u8)
 *   2 damage: u16 word selector, u8 kind (clear a set bit, set a bit, xor
 *     u32 garbage, zero the word, all ones), u8 bit, u32 garbage
 *   3 realloc(live chunk u8, u8 class)  4 free(u64 offset)
 *   5 damage a hint-index word (u16 selector, u64 value)
 *   6 check and stats (must not crash; counts are not checked)
 *
 * The harness tracks the live chunks and requires that no call crashes,
 * every chunk handed out lies in the data region, aligned, and overlaps
 * no live chunk, and the bytes of a live chunk stay as written. A chunk
 * whose own bits a stray write changed (its node's subtree or ancestors
 * in its word, or any word of a deeper tier inside it) is dropped from
 * the tracking: without a header no allocator can tell such a write from
 * a free (tree.c, "Damage"). A free the library refuses keeps the chunk
 * live: it is still allocated and must not be handed out again.
 *
 * White box: it includes src/ to find the words (arena.h, tree.h).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "shm_alloc.h"

#include "arena.h"
#include "tree.h"
#include "common/damage_model.h"
#include "word.h"

#define MAX_LIVE 256

static shm_arena *arena;
static struct shmi_geometry *geo;
static struct damage_chunk live[MAX_LIVE];
static int nlive;

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

static uint8_t *data(void)
{
    return geo->base + geo->data_offset;
}

static uint8_t tag_of(uint64_t x, uint64_t i)
{
    return (uint8_t)((x >> 4) ^ (i * 131u) ^ 0x3C);
}

static void stamp(const struct damage_chunk *c)
{
    for (uint64_t i = 0; i < c->size; i++)
        data()[c->x + i] = tag_of(c->x, i);
}

static void verify(const struct damage_chunk *c)
{
    for (uint64_t i = 0; i < c->size; i++)
        FUZZ_REQUIRE(data()[c->x + i] == tag_of(c->x, i),
                     "chunk %#llx byte %llu overwritten",
                     (unsigned long long)c->x, (unsigned long long)i);
}

/* A chunk the library just handed out at offset off, of `size` bytes. */
static void adopt(shm_offt off, uint64_t size, int skip)
{
    uint64_t x = off - geo->data_offset;
    FUZZ_REQUIRE(off >= geo->data_offset && x < geo->capacity &&
                     size <= geo->capacity - x,
                 "chunk %#llx outside the data", (unsigned long long)off);
    FUZZ_REQUIRE(x % damage_node_size(size) == 0, "chunk %#llx misaligned",
                 (unsigned long long)off);
    for (int i = 0; i < nlive; i++)
        FUZZ_REQUIRE(
            i == skip || x + size <= live[i].x || live[i].x + live[i].size <= x,
            "chunk %#llx+%llu overlaps live %#llx+%llu", (unsigned long long)x,
            (unsigned long long)size, (unsigned long long)live[i].x,
            (unsigned long long)live[i].size);
    struct damage_chunk c = {.x = x, .size = size};
    damage_chunk_locate(geo, &c);
    if (skip >= 0) {
        live[skip] = c;
    } else {
        live[nlive++] = c;
    }
    stamp(&c);
}

static void drop(int i)
{
    live[i] = live[--nlive];
}

static void damage_word(struct input *in)
{
    uint64_t pick = take(in, 2);
    unsigned kind = (unsigned)take(in, 1) % 5;
    unsigned bit = (unsigned)take(in, 1) % 64;
    uint64_t garbage = take(in, 4);
    unsigned t = (unsigned)(pick % geo->tiers);
    uint64_t j = (pick / geo->tiers) % geo->tier[t].count;
    shmi_atomic_word *word = shmi_tree_word(geo, t, j);
    uint64_t w = shmi_atomic_load_relaxed(word), was = w;
    switch (kind) {
    case 0: /* clear the first set bit from `bit` on */
        for (unsigned k = 0; k < 64; k++)
            if (w >> ((bit + k) % 64) & 1) {
                w &= ~(UINT64_C(1) << ((bit + k) % 64));
                break;
            }
        break;
    case 1:
        w |= UINT64_C(1) << bit;
        break;
    case 2:
        w ^= garbage << (bit % 33);
        break;
    case 3:
        w = 0;
        break;
    default:
        w = ~UINT64_C(0);
        break;
    }
    shmi_atomic_store_relaxed(word, w);
    /* The chunks of the thread cache go back to the bitmaps now: a cached
     * chunk is allocated there, and damage to its bits is damage to a
     * live chunk's, which the model below drops for the chunks it tracks. */
    shm_arena_flush_thread_cache(arena);
    for (int i = 0; i < nlive;)
        if (damage_chunk_owns(geo, &live[i], t, j, w ^ was))
            drop(i);
        else
            i++;
}

static void damage_hint(struct input *in)
{
    uint64_t pick = take(in, 2);
    uint64_t value = take(in, 8);
    uint64_t words = geo->layout.index_words;
    if (words == 0)
        return;
    shmi_atomic_word *w =
        (shmi_atomic_word *)(geo->base + geo->layout.index_offset) +
        pick % words;
    shmi_atomic_store_relaxed(w, value);
}

static uint64_t class_bytes(unsigned cls)
{
    return UINT64_C(1) << (SHM_MIN_ALLOC_POW2 + cls % SHMI_CLASSES);
}

static void open_arena(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/damage.%d.shm", fuzz_dir(), (int)getpid());
    unlink(path);
    struct shm_arena_options opts = {.capacity =
                                         64 * get_shm_max_allocatable_size(),
                                     .flags = SHM_ARENA_EXCLUSIVE};
    arena = shm_arena_open(path, &opts);
    FUZZ_REQUIRE(arena != NULL, "cannot create %s", path);
    unlink(path);
    geo = &arena->geo;
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size)
{
    if (arena == NULL)
        open_arena();
    FUZZ_REQUIRE(shm_arena_reset(arena) == 0, "reset failed");
    nlive = 0;
    struct input in = {bytes, size};
    while (in.left > 0) {
        switch ((unsigned)take(&in, 1) % 7) {
        case 0: {
            uint64_t n = class_bytes((unsigned)take(&in, 1));
            /* A size below the power of two, which trimming (SHM_TRIM)
             * gives a length of pieces. */
            if (n > (UINT64_C(1) << SHM_MIN_ALLOC_POW2))
                n -= take(&in, 2) % (n / 2);
            if (nlive == MAX_LIVE)
                drop(0);
            shm_offt off = shm_arena_malloc(arena, (size_t)n);
            /* The model holds what the library promised (the trimmed
             * length), not what the damaged words may say. */
            if (off != SHM_NULL)
                adopt(off, shmi_arena_chunk_size((size_t)n), -1);
            else
                FUZZ_REQUIRE(errno == ENOMEM, "malloc: errno %d", errno);
            break;
        }
        case 1:
            if (nlive > 0) {
                int i = (int)(take(&in, 1) % (uint64_t)nlive);
                verify(&live[i]);
                errno = 0;
                shm_arena_free(arena, geo->data_offset + live[i].x);
                if (errno == 0)
                    drop(i);
                else
                    FUZZ_REQUIRE(errno == EINVAL, "free: errno %d", errno);
            }
            break;
        case 2:
            damage_word(&in);
            break;
        case 3:
            if (nlive > 0) {
                int i = (int)(take(&in, 1) % (uint64_t)nlive);
                uint64_t n = class_bytes((unsigned)take(&in, 1));
                struct damage_chunk old = live[i];
                verify(&old);
                errno = 0;
                shm_offt off = shm_arena_realloc(
                    arena, geo->data_offset + old.x, (size_t)n);
                if (off == SHM_NULL) {
                    FUZZ_REQUIRE(errno == ENOMEM || errno == EINVAL,
                                 "realloc: errno %d", errno);
                    break;
                }
                uint64_t kept = n < old.size ? n : old.size;
                for (uint64_t k = 0; k < kept; k++)
                    FUZZ_REQUIRE(
                        data()[off - geo->data_offset + k] == tag_of(old.x, k),
                        "realloc lost byte %llu", (unsigned long long)k);
                /* Moved: the old chunk was freed (or its free refused:
                 * then it is leaked, and no longer ours either). */
                adopt(off, shmi_arena_chunk_size((size_t)n), i);
            }
            break;
        case 4: {
            /* An arbitrary offset: must not crash; a live start frees. */
            shm_offt off = take(&in, 8) % (2 * shm_arena_mapping_size(arena));
            for (int i = 0; i < nlive; i++)
                if (geo->data_offset + live[i].x == off)
                    drop(i);
            shm_arena_free(arena, off);
            break;
        }
        case 5:
            damage_hint(&in);
            break;
        default: {
            struct shm_stats st;
            (void)shm_arena_check(arena);
            FUZZ_REQUIRE(shm_arena_stats(arena, &st) == 0, "stats failed");
            uint32_t used[64];
            (void)shm_arena_block_usage(arena, 0, 64, used);
            break;
        }
        }
    }
    for (int i = 0; i < nlive; i++)
        verify(&live[i]);
    return 0;
}
