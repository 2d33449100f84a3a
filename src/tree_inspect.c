/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Inspection of the buddy trees: counts and checks computed from the
 * bitmap words while other processes go on (snapshots), the walk over
 * every allocated chunk that a collection frees from (arena_collect.c),
 * and the hint repair that follows a death. Nothing here claims or
 * releases a chunk; the protocol these functions read is described in
 * tree.c.
 */
#include "tree_inspect.h"

#include <stdbool.h>
#include <stdlib.h>

#include "hint_index.h"
#include "word.h"

#define ACTIVE SHMI_TREE_ACTIVE

static shmi_atomic_word *word_at(const struct shmi_geometry *g, unsigned tier,
                                 uint64_t index)
{
    return shmi_tree_word(g, tier, index);
}

static unsigned first_row(const struct shmi_geometry *g, unsigned tier)
{
    return g->tier[tier].first_row;
}

/* ---- occupancy --------------------------------------------------------- */

/* Bottom-row occupancy of a word with every delegated slot whose child
 * word is logically empty (nothing allocated in it or below) counted as
 * free, recursively. */
static uint32_t logical_occupancy(struct shmi_geometry *g, unsigned tier,
                                  uint64_t index, uint64_t w)
{
    uint32_t occupied = (uint32_t)(w >> SHMI_WORD_FIRST_SLOT);
    if (tier + 1 >= g->tiers || tier + 1 >= SHMI_MAX_TIERS)
        return occupied;
    uint64_t eligible = g->tier[tier].eligible;
    for (unsigned slot = 0; slot < SHMI_WORD_SLOTS; slot++) {
        if (!(occupied >> slot & 1))
            continue;
        uint64_t above = shmi_word_path_masks[slot] & eligible &
                         ~(UINT64_C(1) << (SHMI_WORD_FIRST_SLOT + slot));
        if (w & above)
            continue; /* inside a larger allocation of this word */
        uint64_t child = index * SHMI_WORD_SLOTS + slot;
        if (child >= g->tier[tier + 1].count)
            continue; /* pinned: past the capacity */
        /* relaxed: a snapshot. */
        uint64_t cw = shmi_atomic_load_relaxed(word_at(g, tier + 1, child));
        if ((cw & ACTIVE) && logical_occupancy(g, tier + 1, child, cw) == 0)
            occupied &= ~(UINT32_C(1) << slot);
    }
    return occupied;
}

/* ---- the walk --------------------------------------------------------- */

/* What the walk hands its visitor for each word: the word's value as read
 * (each word is read once) and its bottom-row occupancy with the slots
 * over logically empty words counted as free. */
typedef void word_visit(struct shmi_geometry *g, unsigned tier, uint64_t index,
                        uint64_t w, uint32_t occupied, void *ctx);

/*
 * The one walk over the trees, shared by the census and the chunk walk:
 * visits word `index` of `tier` (tier 0, or an active lower word), then
 * the active words that its occupied slots delegate to. A logically empty
 * word is not entered: it holds neither a free chunk of its own (its
 * parent's slot counts it) nor an allocated one. The visitor runs before
 * the words below are read, so it may free chunks of the word it is given.
 */
static void walk_word(struct shmi_geometry *g, unsigned tier, uint64_t index,
                      word_visit *visit, void *ctx)
{
    /* relaxed: a snapshot. */
    uint64_t w = shmi_atomic_load_relaxed(word_at(g, tier, index));
    if (tier > 0 && !(w & ACTIVE))
        return;
    uint32_t occupied = logical_occupancy(g, tier, index, w);
    visit(g, tier, index, w, occupied, ctx);
    if (tier + 1 < g->tiers && tier + 1 < SHMI_MAX_TIERS) {
        for (unsigned slot = 0; slot < SHMI_WORD_SLOTS; slot++) {
            uint64_t child = index * SHMI_WORD_SLOTS + slot;
            if ((occupied >> slot & 1) && child < g->tier[tier + 1].count)
                walk_word(g, tier + 1, child, visit, ctx);
        }
    }
}

static void walk(struct shmi_geometry *g, word_visit *visit, void *ctx)
{
    for (uint64_t i = 0; i < g->tier[0].count; i++)
        walk_word(g, 0, i, visit, ctx);
}

/* Counts the maximal free nodes of one word into ctx, by size class. A
 * word still occupied holds partial free space, counted in the words
 * below it (a free top-row node of such a word is maximal, since both
 * would make the word empty). */
static void census_word(struct shmi_geometry *g, unsigned tier, uint64_t index,
                        uint64_t w, uint32_t occupied, void *ctx)
{
    (void)index;
    (void)w;
    uint64_t *free_chunks = ctx;
    uint64_t logical = (uint64_t)occupied << SHMI_WORD_FIRST_SLOT;
    unsigned first = first_row(g, tier);
    unsigned span = g->tier[tier].span_log2;
    uint32_t parent_free = 0;
    for (unsigned row = first; row < SHMI_WORD_ROWS; row++) {
        uint32_t free_here = shmi_word_free_starts(logical, row);
        /* maximal: the parent (same first slot, or the one `gap` slots
         * left) is not free */
        unsigned gap = 1u << (SHMI_WORD_BOTTOM_ROW - row);
        uint32_t covered =
            (uint32_t)(parent_free | (uint64_t)parent_free << gap);
        uint32_t maximal = free_here & ~covered;
        free_chunks[span - row - SHM_MIN_ALLOC_POW2] +=
            (uint64_t)__builtin_popcount(maximal);
        parent_free = free_here;
    }
}

void shmi_tree_census(struct shmi_geometry *g,
                      uint64_t free_chunks[SHMI_CLASSES])
{
    for (unsigned c = 0; c < SHMI_CLASSES; c++)
        free_chunks[c] = 0;
    walk(g, census_word, free_chunks);
}

/* ---- allocated chunks -------------------------------------------------- */

struct chunk_walk {
    shmi_chunk_visit *visit;
    void *ctx;
};

/*
 * The allocated chunks of one word: its highest set nodes (W1: a chunk
 * sets its node and the node's subtree, so a set node under another set
 * node is part of that one), in node order. Not chunks: a bottom-row node
 * whose child word is not 0 (delegated: the walk enters that word, or it
 * is damaged and left alone), a node past the capacity (pinned, T3), a
 * set node whose subtree is not all set (damaged, W1).
 */
static void chunks_of_word(struct shmi_geometry *g, unsigned tier,
                           uint64_t index, uint64_t w, uint32_t occupied,
                           void *ctx)
{
    (void)occupied;
    const struct chunk_walk *cw = ctx;
    const struct shmi_tier *t = &g->tier[tier];
    bool has_children = tier + 1 < g->tiers && tier + 1 < SHMI_MAX_TIERS;
    uint64_t covered = 0;
    for (uint64_t set = w & t->eligible; set; set &= set - 1) {
        unsigned node = (unsigned)__builtin_ctzll(set);
        if (covered >> node & 1)
            continue;
        uint64_t subtree = shmi_word_subtree(node);
        covered |= subtree;
        if ((w & subtree) != subtree)
            continue;
        unsigned row = shmi_word_row_of(node);
        unsigned size_log2 = t->span_log2 - row;
        uint64_t start = (index << t->span_log2) +
                         ((uint64_t)(node - (1u << row)) << size_log2);
        if (start >= g->capacity)
            continue;
        if (row == SHMI_WORD_BOTTOM_ROW && has_children) {
            uint64_t child =
                index * SHMI_WORD_SLOTS + node - SHMI_WORD_FIRST_SLOT;
            /* relaxed: a snapshot, as the walk's. */
            if (child >= g->tier[tier + 1].count ||
                shmi_atomic_load_relaxed(word_at(g, tier + 1, child)) != 0)
                continue;
        }
        uint64_t size = UINT64_C(1) << size_log2;
        if (SHM_TRIM) {
            /* A trimmed allocation is visited once, at its first piece,
             * with its length; its tail pieces are not allocations. */
            struct shmi_tree_chunk chunk = {tier, node, index, w, 0, 0, 0};
            if (shmi_tree_pieces(g, start, &chunk) != SHMI_PIECES_OK)
                continue;
            size = chunk.length;
        }
        cw->visit(start, size, cw->ctx);
    }
}

void shmi_tree_foreach_chunk(struct shmi_geometry *g, shmi_chunk_visit *visit,
                             void *ctx)
{
    struct chunk_walk cw = {visit, ctx};
    walk(g, chunks_of_word, &cw);
}

/* ---- repair ------------------------------------------------------------ */

/*
 * A process killed between a free's CAS and its hint updates leaves a word
 * with free space that no hint names (T4 weakened): the space is free but
 * searches may not find it. Walking every word and setting the hints its
 * current value calls for restores T4. It only ever sets hints, so it is
 * safe while others run (an extra hint costs one look); callers run it
 * when they learn that an attached process died.
 */
void shmi_tree_repair_hints(struct shmi_geometry *g)
{
    for (unsigned t = 0; t < g->tiers; t++) {
        for (uint64_t i = 0; i < g->tier[t].count; i++) {
            /* seq_cst: as publish_free's, after the CAS it stands for. */
            uint64_t w = shmi_atomic_load_seq_cst(word_at(g, t, i));
            if (t > 0 && !(w & ACTIVE))
                continue;
            unsigned row = shmi_word_top_free_row(w);
            if (row < first_row(g, t))
                row = first_row(g, t);
            for (; row < SHMI_WORD_ROWS; row++)
                shmi_index_set(&g->hints[t][row], i);
            if (t > 0 && w == ACTIVE)
                shmi_index_set(&g->empty[t], i);
        }
    }
}

/* ---- inspection -------------------------------------------------------- */

/* The free bottom-row slots of word i of tier t whose value is w: none
 * when the word is inactive, and only slots below the capacity, whatever
 * a damaged file says about the pinned ones. */
static uint32_t free_slots_of(const struct shmi_geometry *g, unsigned t,
                              uint64_t i, uint64_t w)
{
    if (t > 0 && !(w & ACTIVE))
        return 0;
    unsigned slot_log2 = g->tier[t].span_log2 - SHMI_WORD_BOTTOM_ROW;
    uint64_t start = i << g->tier[t].span_log2;
    uint64_t slots =
        start >= g->capacity ? 0 : ((g->capacity - start - 1) >> slot_log2) + 1;
    uint32_t real =
        slots >= SHMI_WORD_SLOTS ? UINT32_MAX : (UINT32_C(1) << slots) - 1;
    return ~(uint32_t)(w >> SHMI_WORD_FIRST_SLOT) & real;
}

uint64_t shmi_tree_free_bytes(struct shmi_geometry *g)
{
    uint64_t free_bytes = 0;
    for (unsigned t = 0; t < g->tiers; t++) {
        unsigned slot_log2 = g->tier[t].span_log2 - SHMI_WORD_BOTTOM_ROW;
        for (uint64_t i = 0; i < g->tier[t].count; i++) {
            /* relaxed: a snapshot; each word is read once. */
            uint64_t w = shmi_atomic_load_relaxed(word_at(g, t, i));
            free_bytes +=
                (uint64_t)__builtin_popcount(free_slots_of(g, t, i, w))
                << slot_log2;
        }
    }
    return free_bytes < g->capacity ? free_bytes : g->capacity;
}

/* The same count as shmi_tree_free_bytes, split by block of 2^MAX bytes:
 * every free bottom-row slot lies inside one block, since a slot is at
 * most 2^MAX bytes. */
void shmi_tree_block_free_bytes(struct shmi_geometry *g, uint64_t first,
                                uint64_t count, uint32_t *free_bytes)
{
    for (uint64_t b = 0; b < count; b++)
        free_bytes[b] = 0;
    uint64_t start = first << SHM_MAX_ALLOC_POW2;
    uint64_t end = (first + count) << SHM_MAX_ALLOC_POW2;
    for (unsigned t = 0; t < g->tiers; t++) {
        unsigned span = g->tier[t].span_log2;
        unsigned slot_log2 = span - SHMI_WORD_BOTTOM_ROW;
        uint64_t last = (end - 1) >> span;
        if (last >= g->tier[t].count)
            last = g->tier[t].count - 1;
        for (uint64_t i = start >> span; i <= last; i++) {
            /* relaxed: a snapshot; each word is read once. */
            uint64_t w = shmi_atomic_load_relaxed(word_at(g, t, i));
            for (uint32_t free_slots = free_slots_of(g, t, i, w); free_slots;
                 free_slots &= free_slots - 1) {
                unsigned s = (unsigned)__builtin_ctz(free_slots);
                uint64_t at = (i << span) + ((uint64_t)s << slot_log2);
                if (at >= start && at < end)
                    free_bytes[(at - start) >> SHM_MAX_ALLOC_POW2] +=
                        UINT32_C(1) << slot_log2;
            }
        }
    }
}

static bool word_is_consistent(struct shmi_geometry *g, unsigned tier,
                               uint64_t index, uint64_t w)
{
    const struct shmi_layout *l = &g->layout;
    unsigned row = first_row(g, tier);
    if (tier > 0) {
        if (!(w & ACTIVE))
            return w == 0;
        uint64_t parent = shmi_atomic_load_relaxed(
            word_at(g, tier - 1, index / SHMI_WORD_SLOTS));
        if (!(parent >> (SHMI_WORD_FIRST_SLOT + index % SHMI_WORD_SLOTS) & 1))
            return false;
    } else if (w & ~shmi_word_rows_from(row)) {
        return false;
    }
    if (!shmi_word_is_closed(w, 1u << row))
        return false;
    /* T3: bottom-row slots past the capacity are set. */
    uint64_t slot_size = UINT64_C(1)
                         << (l->span_log2[tier] - SHMI_WORD_BOTTOM_ROW);
    uint64_t start = index << l->span_log2[tier];
    for (unsigned s = 0; s < SHMI_WORD_SLOTS; s++)
        if (start + s * slot_size >= g->capacity &&
            !(w >> (SHMI_WORD_FIRST_SLOT + s) & 1))
            return false;
    return true;
}

/* Marks in explained[] the continuation bits the allocation at x of
 * `length` bytes stands for: the first unit of every piece but the first,
 * the pieces being the binary decomposition of length from x. */
static void explain_chunk(uint64_t x, uint64_t length, void *ctx)
{
    uint64_t *explained = ctx;
    uint64_t at = 0;
    for (unsigned b = 64; b-- > 0;) {
        if (!(length >> b & 1))
            continue;
        if (at != 0) {
            uint64_t u = (x + at) >> SHM_MIN_ALLOC_POW2;
            explained[u / 64] |= UINT64_C(1) << (u % 64);
        }
        at += UINT64_C(1) << b;
    }
}

/* Continuation bits (tree.c, K1) that are not the start of a tail piece
 * of an allocation whose earlier pieces are allocated: each counts as a
 * broken word. The allocations are the walk's (shmi_tree_foreach_chunk),
 * which reads a tail piece's start as no allocation; a bit it does not
 * explain is one that no allocation's pieces account for. */
static uint64_t stray_cont_bits(struct shmi_geometry *g)
{
    if (!SHM_TRIM || g->layout.cont_words == 0)
        return 0;
    uint64_t words = g->layout.cont_words;
    uint64_t *explained = calloc((size_t)words, sizeof *explained);
    if (!explained)
        return 0; /* no memory for the check: nothing claimed */
    shmi_tree_foreach_chunk(g, explain_chunk, explained);
    uint64_t bad = 0;
    for (uint64_t i = 0; i < words; i++)
        /* relaxed: a snapshot, meaningful at rest. */
        bad += (uint64_t)__builtin_popcountll(
            shmi_atomic_load_relaxed(g->cont + i) & ~explained[i]);
    free(explained);
    return bad;
}

uint64_t shmi_tree_check(struct shmi_geometry *g)
{
    uint64_t bad = 0;
    for (unsigned t = 0; t < g->tiers; t++)
        for (uint64_t i = 0; i < g->tier[t].count; i++)
            if (!word_is_consistent(g, t, i,
                                    shmi_atomic_load_relaxed(word_at(g, t, i))))
                bad++;
    return bad + stray_cont_bits(g);
}
