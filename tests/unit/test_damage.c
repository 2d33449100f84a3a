/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Damaged bitmap words (a co-process's stray write into the metadata):
 * the allocator must never hand one byte to two owners. A state that
 * breaks the tree's invariants is refused (tree.c, T5..T7): reported to
 * the error handler, counted in the file, and never acted upon.
 *
 * The targeted cases clear the parent bit of a live chunk's word; the
 * random ones damage random words of a half-full arena over several
 * seeds, then go on allocating and freeing, and check that no two live
 * chunks overlap. Chunks whose own bits the damage changed are dropped:
 * no allocator without headers can tell that a cleared bit of a live
 * chunk was not a free (see struct damage_model).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/scratch.h"

#include "arena.h"
#include "tree.h"
#include "tree_inspect.h"
#include "common/damage_model.h"
#include "word.h"

#define ACTIVE SHMI_TREE_ACTIVE
#define MIN_CHUNK ((uint64_t)1 << SHM_MIN_ALLOC_POW2)

static int reports;
static char last_report[256];

static void count_report(const char *message, void *context)
{
    (void)context;
    reports++;
    snprintf(last_report, sizeof last_report, "%s", message);
}

static void setup_handler(void)
{
    reports = 0;
    last_report[0] = '\0';
    shm_set_error_handler(count_report, NULL);
}

static uint64_t damage_count(shm_arena *a)
{
    struct shm_stats stats;
    assert_int_equal(shm_arena_stats(a, &stats), 0);
    return stats.damage_refused;
}

static bool overlaps(uint64_t a, uint64_t as, uint64_t b, uint64_t bs)
{
    return a < b + bs && b < a + as;
}

/* The parent bit of the last-tier word holding data offset x. */
static void clear_parent_bit(shm_arena *a, uint64_t x)
{
    const struct shmi_geometry *g = &a->geo;
    unsigned last = g->tiers - 1;
    uint64_t index = x >> g->tier[last].span_log2;
    shmi_atomic_word *parent =
        shmi_tree_word(g, last - 1, index / SHMI_WORD_SLOTS);
    uint64_t bit = UINT64_C(1)
                   << (SHMI_WORD_FIRST_SLOT + index % SHMI_WORD_SLOTS);
    uint64_t w = shmi_atomic_load_relaxed(parent);
    assert_true(w & bit);
    shmi_atomic_store_relaxed(parent, w & ~bit);
}

static bool has_two_tiers(shm_arena *a)
{
    return a->geo.tiers >= 2;
}

static void cleared_parent_bit_is_refused_by_the_next_claim(void **state)
{
    (void)state;
    shm_arena *a = scratch_arena("parent-claim.shm", 1 << 20);
    assert_non_null(a);
    if (!has_two_tiers(a)) {
        shm_arena_close(a);
        skip(); /* one tier: no word has a parent */
        return;
    }
    setup_handler();
    uint64_t data = a->geo.data_offset;
    shm_offt x = shm_arena_malloc(a, 1);
    assert_true(x != SHM_NULL);
    clear_parent_bit(a, x - data);
    /* The node the cleared bit stood for: the size of a last-tier word. */
    uint64_t node = UINT64_C(1) << a->geo.tier[a->geo.tiers - 1].span_log2;
    shm_offt y = shm_arena_malloc(a, (size_t)node);
    assert_true(y != SHM_NULL);
    assert_false(overlaps(y, node, x, MIN_CHUNK));
    shm_offt small[4];
    for (int i = 0; i < 4; i++) {
        small[i] = shm_arena_malloc(a, 1);
        assert_true(small[i] != SHM_NULL);
        assert_false(overlaps(small[i], MIN_CHUNK, y, node));
        assert_true(small[i] != x);
    }
    assert_int_equal(damage_count(a), 1);
    assert_true(reports >= 1);
    assert_non_null(strstr(last_report, "damaged"));
    /* The claim kept the node set, which is what the damage had cleared:
     * the word is consistent again and x can be freed. */
    assert_int_equal(shm_arena_check(a), 1); /* the count, no bad word */
    errno = 0;
    shm_arena_free(a, x);
    assert_int_equal(errno, 0);
    shm_set_error_handler(NULL, NULL);
    shm_arena_close(a);
}

static void free_under_a_cleared_parent_bit_is_refused(void **state)
{
    (void)state;
    shm_arena *a = scratch_arena("parent-free.shm", 1 << 20);
    assert_non_null(a);
    if (!has_two_tiers(a)) {
        shm_arena_close(a);
        skip();
        return;
    }
    setup_handler();
    shm_offt x = shm_arena_malloc(a, 1);
    assert_true(x != SHM_NULL);
    clear_parent_bit(a, x - a->geo.data_offset);
    size_t before = shm_arena_available(a);
    errno = 0;
    shm_arena_free(a, x);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(shm_arena_available(a), before);
    assert_int_equal(damage_count(a), 1);
    /* The word whose parent is clear, and the refusal. */
    assert_int_equal(shm_arena_check(a), 2);
    shm_set_error_handler(NULL, NULL);
    shm_arena_close(a);
}

/* In a tier-0 word that holds a whole block (first_row 0), node 1 is the
 * block itself, not the ACTIVE flag of a lower tier. Damage that sets it
 * in a free word makes the block read as one chunk nobody owns, with its
 * subtree clear (W1 broken): a claim below it must be refused. Otherwise
 * the halves went to two callers, and a free of the first then found
 * node 1 as the owner (the word full again) and freed the whole block,
 * which the next malloc of that size handed out over the second half. */
static void set_root_bit_is_refused_by_the_next_claim(void **state)
{
    (void)state;
    uint64_t block = get_shm_max_allocatable_size();
    shm_arena *a = scratch_arena("root-claim.shm", 4 * block);
    assert_non_null(a);
    if (a->geo.tier[0].first_row != 0) {
        shm_arena_close(a);
        skip(); /* node 1 of a tier-0 word is not a node here */
        return;
    }
    setup_handler();
    /* Every block allocated whole, then one freed: the only free space
     * is that block's word, now 0. */
    shm_offt blocks[4];
    for (int i = 0; i < 4; i++) {
        blocks[i] = shm_arena_malloc(a, (size_t)block);
        assert_true(blocks[i] != SHM_NULL);
    }
    assert_int_equal(shm_arena_malloc(a, 1), SHM_NULL);
    shm_offt x = blocks[2];
    shm_arena_free(a, x);
    /* Out of the thread cache, back to its word. */
    assert_int_equal(shm_arena_flush_thread_cache(a), 0);
    uint64_t index = (x - a->geo.data_offset) >> a->geo.tier[0].span_log2;
    shmi_atomic_word *word = shmi_tree_word(&a->geo, 0, index);
    assert_int_equal(shmi_atomic_load_relaxed(word), 0);
    shmi_atomic_store_relaxed(word, UINT64_C(1) << 1);
    /* The block reads as allocated: neither half is handed out, and the
     * claims that found the bit restore the subtree it stood for. */
    errno = 0;
    shm_offt y = shm_arena_malloc(a, (size_t)(block / 2));
    assert_int_equal(y, SHM_NULL);
    assert_int_equal(errno, ENOMEM);
    assert_true(damage_count(a) >= 1);
    assert_true(reports >= 1);
    assert_non_null(strstr(last_report, "damaged"));
    assert_int_equal(shmi_atomic_load_relaxed(word), shmi_word_subtree(1));
    shm_set_error_handler(NULL, NULL);
    shm_arena_close(a);
}

/* ---- random damage ----------------------------------------------------- */

enum { MAX_LIVE = 4096 };

struct damage_model {
    shm_arena *a;
    struct damage_chunk live[MAX_LIVE];
    int nlive;
    unsigned seed, first_seed;
};

static void check_no_overlap(const struct damage_model *m, uint64_t x,
                             uint64_t size, int skip_index)
{
    for (int i = 0; i < m->nlive; i++)
        if (i != skip_index && overlaps(x, size, m->live[i].x, m->live[i].size))
            fail_msg("seed %u: chunk %#llx+%llu overlaps live %#llx+%llu",
                     m->first_seed, (unsigned long long)x,
                     (unsigned long long)size, (unsigned long long)m->live[i].x,
                     (unsigned long long)m->live[i].size);
}

static void try_malloc(struct damage_model *m, uint64_t size)
{
    if (m->nlive == MAX_LIVE)
        return;
    shm_offt off = shm_arena_malloc(m->a, (size_t)size);
    if (off == SHM_NULL)
        return;
    uint64_t x = off - m->a->geo.data_offset;
    /* A trimmed chunk holds its length (SHM_TRIM; a cached one may be
     * longer, within its node): the model holds that much, what the
     * library promised, not what the damaged words may say. */
    size = shmi_arena_chunk_size((size_t)size);
    assert_true(x < m->a->geo.capacity && size <= m->a->geo.capacity - x);
    assert_int_equal(x % damage_node_size(size), 0);
    check_no_overlap(m, x, size, -1);
    struct damage_chunk c = {.x = x, .size = size};
    damage_chunk_locate(&m->a->geo, &c);
    m->live[m->nlive++] = c;
}

/* Frees live chunk i; a refused free keeps it live (still allocated). */
static void try_free(struct damage_model *m, int i)
{
    errno = 0;
    shm_arena_free(m->a, m->a->geo.data_offset + m->live[i].x);
    if (errno == 0)
        m->live[i] = m->live[--m->nlive];
}

static void damage_one_word(struct damage_model *m)
{
    const struct shmi_geometry *g = &m->a->geo;
    unsigned t = (unsigned)rand_r(&m->seed) % g->tiers;
    uint64_t j = (uint64_t)rand_r(&m->seed) % g->tier[t].count;
    shmi_atomic_word *word = shmi_tree_word(g, t, j);
    uint64_t w = shmi_atomic_load_relaxed(word), bit;
    switch (rand_r(&m->seed) % 3) {
    case 0: /* clear a set bit */
        if (w == 0)
            return;
        do
            bit = UINT64_C(1) << (rand_r(&m->seed) % 64);
        while (!(w & bit));
        w &= ~bit;
        break;
    case 1: /* set a bit */
        w |= UINT64_C(1) << (rand_r(&m->seed) % 64);
        break;
    default: /* garbage */
        w ^= (uint64_t)rand_r(&m->seed) << 32 ^ (uint64_t)rand_r(&m->seed);
        break;
    }
    uint64_t changed = w ^ shmi_atomic_load_relaxed(word);
    shmi_atomic_store_relaxed(word, w);
    /* As in fuzz_damage.c: the thread cache's chunks are allocated in the
     * bitmaps, so damage to their bits is damage to a live chunk's; they
     * go back now, and the model drops the tracked chunks it touched. */
    shm_arena_flush_thread_cache(m->a);
    for (int i = 0; i < m->nlive;)
        if (damage_chunk_owns(g, &m->live[i], t, j, changed))
            m->live[i] = m->live[--m->nlive];
        else
            i++;
}

/* A power of two, or (half the time) a size just above its half, which
 * trimming (SHM_TRIM) gives a length of pieces. */
static uint64_t random_size(struct damage_model *m)
{
    uint64_t node = MIN_CHUNK << (rand_r(&m->seed) % SHMI_CLASSES);
    if (node > MIN_CHUNK && rand_r(&m->seed) % 2)
        return node - (uint64_t)rand_r(&m->seed) % (node / 2);
    return node;
}

static void random_damage_never_gives_a_byte_to_two_owners(void **state)
{
    (void)state;
    static struct damage_model m;
    for (unsigned seed = 1; seed <= 12; seed++) {
        m.a = scratch_arena("random-damage.shm",
                            64 * get_shm_max_allocatable_size());
        assert_non_null(m.a);
        m.nlive = 0;
        m.seed = m.first_seed = seed;
        /* Half full, with holes. */
        while (m.nlive < MAX_LIVE &&
               shm_arena_available(m.a) > m.a->geo.capacity / 2)
            try_malloc(&m, random_size(&m));
        for (int i = 0; i < m.nlive; i++)
            if (rand_r(&m.seed) % 3 == 0)
                try_free(&m, i);
        for (int k = 0; k < 24; k++)
            damage_one_word(&m);
        for (int op = 0; op < 20000; op++) {
            if (m.nlive > 0 && rand_r(&m.seed) % 2)
                try_free(&m, rand_r(&m.seed) % m.nlive);
            else
                try_malloc(&m, random_size(&m));
        }
        /* Everything still tracked can be freed or is refused: nothing
         * crashes, and nothing freed twice overlaps. */
        while (m.nlive > 0) {
            int before = m.nlive;
            try_free(&m, m.nlive - 1);
            if (m.nlive == before)
                m.nlive--; /* refused: leaked by the damage */
        }
        shm_arena_close(m.a);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cleared_parent_bit_is_refused_by_the_next_claim),
        cmocka_unit_test(free_under_a_cleared_parent_bit_is_refused),
        cmocka_unit_test(set_root_bit_is_refused_by_the_next_claim),
        cmocka_unit_test(random_damage_never_gives_a_byte_to_two_owners),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
