/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The constant tables of the bitmap word operations (see word.h).
 */
#include "word.h"

/* Bits [start, start + len) of a word; empty when start is past bit 63. */
#define RUN(start, len)                                                        \
    ((start) < 64 ? ((((UINT64_C(1) << ((len)&31)) - 1) |                      \
                      ((len) == 32 ? UINT64_C(0xffffffff) : 0))                \
                     << ((start)&63))                                          \
                  : 0)
/* Node n and its descendants on the rows below it: 2^k nodes starting at
 * n * 2^k on the k-th row down. */
#define SUBTREE(n)                                                             \
    ((n) == 0 ? 0                                                              \
              : RUN(n, 1) | RUN(2 * (n), 2) | RUN(4 * (n), 4) |                \
                    RUN(8 * (n), 8) | RUN(16 * (n), 16) | RUN(32 * (n), 32))
#define S4(n) SUBTREE(n), SUBTREE((n) + 1), SUBTREE((n) + 2), SUBTREE((n) + 3)
#define S16(n) S4(n), S4((n) + 4), S4((n) + 8), S4((n) + 12)

const uint64_t shmi_word_subtree_masks[64] = {S16(0), S16(16), S16(32),
                                              S16(48)};

/* The node of each row above bottom-row slot s: (2^row) + (s >> (5-row)). */
#define PATH(s)                                                                \
    (UINT64_C(1) << 1 | UINT64_C(1) << (2 + ((s) >> 4)) |                      \
     UINT64_C(1) << (4 + ((s) >> 3)) | UINT64_C(1) << (8 + ((s) >> 2)) |       \
     UINT64_C(1) << (16 + ((s) >> 1)) | UINT64_C(1) << (32 + (s)))
#define P4(s) PATH(s), PATH((s) + 1), PATH((s) + 2), PATH((s) + 3)

const uint64_t shmi_word_path_masks[SHMI_WORD_SLOTS] = {
    P4(0), P4(4), P4(8), P4(12), P4(16), P4(20), P4(24), P4(28)};

int shmi_word_is_closed(uint64_t word, unsigned first_node)
{
    if (word & 1)
        return 0;
    for (unsigned node = first_node; node < SHMI_WORD_FIRST_SLOT; node++) {
        uint64_t children = UINT64_C(3) << (2 * node);
        if ((word >> node & 1) && (word & children) != children)
            return 0;
    }
    return 1;
}
