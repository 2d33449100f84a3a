/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What a test that damages bitmap words knows of a live chunk, shared by
 * tests/unit/test_damage.c and fuzz/fuzz_damage.c (both white box): where
 * the chunk's node lies, and whether a change to a word touches the bits
 * that say who owns the chunk. Damage there makes the chunk look free or
 * larger, which no check can tell from a real free, so such a chunk is
 * no longer counted on.
 */
#ifndef SHM_TEST_DAMAGE_MODEL_H
#define SHM_TEST_DAMAGE_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "geometry.h"
#include "tree.h"
#include "word.h"

struct damage_chunk {
    uint64_t x, size; /* data offset and bytes (usable: trimmed, SHM_TRIM) */
    unsigned tier, node;
    uint64_t word;
};

/* The node a chunk of `size` bytes lies in: the next power of two (a
 * trimmed chunk's pieces lie in its class's node, tree.c). */
static inline uint64_t damage_node_size(uint64_t size)
{
    uint64_t p = UINT64_C(1) << SHM_MIN_ALLOC_POW2;
    while (p < size)
        p <<= 1;
    return p;
}

/* Fills c's tier, word and node (its class's node: the owner bits of a
 * trimmed chunk's pieces and of its free tail, counted whole) from its
 * offset and size. */
static inline void damage_chunk_locate(const struct shmi_geometry *g,
                                       struct damage_chunk *c)
{
    unsigned cls = (unsigned)__builtin_ctzll(damage_node_size(c->size)) -
                   SHM_MIN_ALLOC_POW2;
    unsigned t = g->layout.class_tier[cls], row = g->layout.class_row[cls];
    unsigned span = g->tier[t].span_log2;
    c->tier = t;
    c->word = c->x >> span;
    c->node = (1u << row) +
              (unsigned)((c->x & ((UINT64_C(1) << span) - 1)) >> (span - row));
}

/* Whether the bits `changed` in word j of tier t say who owns chunk c:
 * its node's subtree and ancestors in its own word (ACTIVE excepted), and
 * every word of a deeper tier inside the chunk. */
static inline bool damage_chunk_owns(const struct shmi_geometry *g,
                                     const struct damage_chunk *c, unsigned t,
                                     uint64_t j, uint64_t changed)
{
    if (t == c->tier && j == c->word) {
        unsigned row = shmi_word_row_of(c->node);
        unsigned slot =
            (c->node << (SHMI_WORD_BOTTOM_ROW - row)) - SHMI_WORD_FIRST_SLOT;
        uint64_t mask = shmi_word_subtree(c->node) | shmi_word_path_masks[slot];
        if (t > 0)
            mask &= ~SHMI_TREE_ACTIVE;
        return (changed & mask) != 0;
    }
    if (t <= c->tier)
        return false;
    uint64_t start = j << g->tier[t].span_log2;
    return start >= c->x && start < c->x + c->size;
}

#endif /* SHM_TEST_DAMAGE_MODEL_H */
