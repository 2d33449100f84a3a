/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Bitmap words: pure functions on one uint64_t, no atomics, no syscalls.
 *
 * A word holds a complete binary tree of six rows in heap order. Node n
 * (1 <= n <= 63) is bit n; its children are 2n and 2n+1; row r holds the
 * nodes 2^r .. 2^(r+1)-1. Bit 0 is unused and always clear.
 *
 *   bit:  63 ............ 32 31 ...... 16 15 .. 8 7 . 4 3 2  1  0
 *   row:  5 (32 slots)        4 (16)       3 (8)   2    1    0  -
 *
 * Meaning of a set bit: node n is allocated, or lies inside an allocated
 * ancestor. Allocating n sets n and all its descendants (its subtree mask)
 * in one CAS that fails if any of them is set; freeing clears the same
 * mask. Hence:
 *   W1  if n is set, its whole subtree is set;
 *   W2  a node is free iff every bottom-row (row 5) slot below it is clear,
 *       so the bottom row alone answers "is there a free node at row r";
 *   W3  the allocation covering a slot is the highest set node on the
 *       slot's path: that is how a free finds the size without a header.
 *
 * How a word sits in the arena's trees is tree.c's business; the words of
 * lower tiers use node 1 as their ACTIVE flag (see tree.c).
 */
#ifndef SHM_WORD_H
#define SHM_WORD_H

#include <stdint.h>

#define SHMI_WORD_ROWS 6u
#define SHMI_WORD_BOTTOM_ROW 5u
#define SHMI_WORD_SLOTS 32u /* nodes on the bottom row */
#define SHMI_WORD_FIRST_SLOT 32u
#define SHMI_WORD_ROOT (UINT64_C(1) << 1) /* node 1 */

/* Subtree masks of every node, indexed by node (entry 0 is 0). */
extern const uint64_t shmi_word_subtree_masks[64];

static inline unsigned shmi_word_row_of(unsigned node)
{
    return 31u - (unsigned)__builtin_clz(node);
}

static inline uint64_t shmi_word_subtree(unsigned node)
{
    return shmi_word_subtree_masks[node];
}

/* Free-node starts, row by row: bit i*g (g = 2^(5-row)) of the result is
 * set iff node i of `row` is free, i.e. all g bottom-row slots below it
 * are clear (W2). Each step up keeps a start bit only when its right-hand
 * neighbour group is free too; the steps stop at the row asked for. */
/* Bits at the first slot of every node of `row`. */
static inline uint32_t shmi_word_row_starts_of(unsigned row)
{
    static const uint32_t starts[SHMI_WORD_ROWS] = {0x00000001u, 0x00010001u,
                                                    0x01010101u, 0x11111111u,
                                                    0x55555555u, 0xffffffffu};
    return starts[row];
}

static inline uint32_t shmi_word_free_starts(uint64_t word, unsigned row)
{
    uint32_t z = ~(uint32_t)(word >> SHMI_WORD_FIRST_SLOT);
    if (row < 5)
        z &= (z >> 1) & 0x55555555u;
    if (row < 4)
        z &= (z >> 2) & 0x11111111u;
    if (row < 3)
        z &= (z >> 4) & 0x01010101u;
    if (row < 2)
        z &= (z >> 8) & 0x00010001u;
    if (row < 1)
        z &= z >> 16;
    return z;
}

/* A free node on `row`, or 0 when the row has none. Best fit within the
 * word: a node whose buddy is in use comes first (leftmost of those), so
 * a request fills an existing hole before it splits a larger free node;
 * only when every free node's buddy is free too is a larger one split. */
static inline unsigned shmi_word_find_free(uint64_t word, unsigned row)
{
    uint32_t free_starts = shmi_word_free_starts(word, row);
    if (free_starts == 0)
        return 0;
    if (row > 0) {
        unsigned g = 1u << (SHMI_WORD_BOTTOM_ROW - row);
        /* parents (row - 1) that are free: both children free */
        uint32_t free_parents = free_starts & (free_starts >> g);
        free_parents &= shmi_word_row_starts_of(row - 1);
        uint32_t snug =
            free_starts &
            ~(free_parents | (uint32_t)((uint64_t)free_parents << g));
        if (snug)
            free_starts = snug;
    }
    unsigned slot = (unsigned)__builtin_ctz(free_starts);
    return (1u << row) + (slot >> (SHMI_WORD_BOTTOM_ROW - row));
}

/* The highest row that has a free node (free nodes on row r imply free
 * nodes on every lower row), or SHMI_WORD_ROWS when the word is full.
 * Branch-free: one bit per row that has a free node, then the lowest. */
static inline unsigned shmi_word_top_free_row(uint64_t word)
{
    uint32_t z5 = ~(uint32_t)(word >> SHMI_WORD_FIRST_SLOT);
    uint32_t z4 = z5 & (z5 >> 1) & 0x55555555u;
    uint32_t z3 = z4 & (z4 >> 2) & 0x11111111u;
    uint32_t z2 = z3 & (z3 >> 4) & 0x01010101u;
    uint32_t z1 = z2 & (z2 >> 8) & 0x00010001u;
    uint32_t z0 = z1 & (z1 >> 16);
    unsigned rows = (unsigned)(z0 != 0) | (unsigned)(z1 != 0) << 1 |
                    (unsigned)(z2 != 0) << 2 | (unsigned)(z3 != 0) << 3 |
                    (unsigned)(z4 != 0) << 4 | (unsigned)(z5 != 0) << 5 |
                    1u << SHMI_WORD_ROWS;
    return (unsigned)__builtin_ctz(rows);
}

/* Nodes on the path from the root to each bottom-row slot. */
extern const uint64_t shmi_word_path_masks[SHMI_WORD_SLOTS];

/* The highest node among `eligible` that is set on the path to `slot`
 * (W3), or 0 when none is. */
static inline unsigned shmi_word_owner(uint64_t word, unsigned slot,
                                       uint64_t eligible)
{
    uint64_t hits = word & shmi_word_path_masks[slot] & eligible;
    return hits ? (unsigned)__builtin_ctzll(hits) : 0;
}

/* The nodes of rows first_row..5: the ones a word may allocate. */
static inline uint64_t shmi_word_rows_from(unsigned first_row)
{
    return ~((UINT64_C(1) << (1u << first_row)) - 1);
}

/* Whether bit 0 is clear and every set node from `first_node` on has both
 * children set (W1). */
int shmi_word_is_closed(uint64_t word, unsigned first_node);

#endif /* SHM_WORD_H */
