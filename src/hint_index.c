/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Hint indexes: a bitmap of N bits (level 0) with summary levels above it,
 * each bit of level k+1 standing for one 64-bit word of level k, up to a
 * single top word. A search reads one word per level, so finding a marked
 * bit costs O(log64 N) whatever N is.
 *
 *   level 2:            [.....1..........]          1 word
 *   level 1:   [..1..1....] [.......] ...           N/4096 words
 *   level 0:   [...1.....1.1....] [.....] ...       N/64 words
 *
 * Invariants, in a quiescent index (no operation in flight):
 *   I1  a summary bit is set iff the word it stands for is nonzero;
 *   I2  bits past N are never set by the library (a damaged file may set
 *       them: searches treat such a bit as stale and clear it).
 * Under concurrency a summary may briefly be set over an empty word (a
 * search that meets one clears it and goes on) or clear over a nonzero
 * word (only while the setter that made the word nonzero is in flight).
 *
 * Protocol:
 *   set(i):   nothing when bit i is already set; otherwise fetch_or it,
 *             then level by level make sure the summary bit is set (load,
 *             fetch_or when missing), which also repairs a chain left
 *             broken by a process killed midway through an earlier set.
 *   clear(i): fetch_and bit i away; if that emptied the word, clear the
 *             summary bit above it, then load the word again and set the
 *             summary back if a concurrent set refilled it.
 * The set and the clear each write one location and then read the other
 * (store-buffer pattern); all of them are seq_cst, so at least one of the
 * two sees the other and a summary is never lost.
 *
 * Lock-free: no operation waits; each RMW is a single instruction.
 * Hints are advisory: a marked bit only says "look here"; the bitmap word
 * it points to is the truth, checked with its own CAS.
 */
#include "hint_index.h"

#define WORD_BITS 64

static uint64_t bit_of(uint64_t i)
{
    return UINT64_C(1) << (i % WORD_BITS);
}

void shmi_index_mark(const struct shmi_index *index, uint64_t i)
{
    for (unsigned level = 0; level < index->levels; level++) {
        shmi_atomic_word *word = &index->level[level][i / WORD_BITS];
        /* seq_cst load and RMW: the set half of the store-buffer pair with
         * clear_at's fetch_and + reload. */
        if (!(shmi_atomic_load_seq_cst(word) & bit_of(i)))
            shmi_atomic_fetch_or_seq_cst(word, bit_of(i));
        i /= WORD_BITS;
    }
}

static void clear_at(const struct shmi_index *index, unsigned level, uint64_t i)
{
    shmi_atomic_word *word = &index->level[level][i / WORD_BITS];
    /* seq_cst: the clear half of the store-buffer pair with set. */
    uint64_t old = shmi_atomic_fetch_and_seq_cst(word, ~bit_of(i));
    if (!(old & bit_of(i)) || (old & ~bit_of(i)) || level + 1 == index->levels)
        return;
    /* This word just became empty: its summary bit goes, then a reload
     * catches a set that raced with us. */
    clear_at(index, level + 1, i / WORD_BITS);
    if (shmi_atomic_load_seq_cst(word) != 0) {
        uint64_t up = i / WORD_BITS;
        for (unsigned above = level + 1; above < index->levels; above++) {
            shmi_atomic_fetch_or_seq_cst(&index->level[above][up / WORD_BITS],
                                         bit_of(up));
            up /= WORD_BITS;
        }
    }
}

void shmi_index_clear(const struct shmi_index *index, uint64_t i)
{
    if (i < index->bits)
        clear_at(index, 0, i);
}

bool shmi_index_test(const struct shmi_index *index, uint64_t i)
{
    return i < index->bits &&
           (shmi_atomic_load_seq_cst(&index->level[0][i / WORD_BITS]) &
            bit_of(i));
}

/* Marked bits of a word at position >= `from` within it; relaxed: a hint
 * is checked against the bitmap word it names before anything is done. */
static uint64_t marked_from(const shmi_atomic_word *word, unsigned from)
{
    return shmi_atomic_load_relaxed(word) & (~UINT64_C(0) << from);
}

bool shmi_index_find_from(const struct shmi_index *index, uint64_t start,
                          uint64_t *found)
{
    while (start < index->bits) {
        /* Climb until some level has a marked bit at or after the
         * position covering `start`. */
        unsigned level = 0;
        uint64_t pos = start;
        uint64_t words = shmi_layout_index_level_words(index->bits);
        uint64_t marked;
        for (;;) {
            uint64_t w = pos / WORD_BITS;
            if (w >= words)
                return false;
            marked = marked_from(&index->level[level][w], pos % WORD_BITS);
            if (marked) {
                pos = w * WORD_BITS + (uint64_t)__builtin_ctzll(marked);
                break;
            }
            if (level + 1 == index->levels)
                return false;
            pos = w + 1;
            words = shmi_layout_index_level_words(words);
            level++;
        }
        /* Descend along first marked bits. */
        while (level > 0) {
            level--;
            marked = marked_from(&index->level[level][pos], 0);
            if (!marked) {
                /* A stale summary: clear it (clear_at re-checks) and go on
                 * after the part of level 0 it covers. */
                clear_at(index, level + 1, pos);
                uint64_t covered = pos + 1;
                for (unsigned l = 0; l <= level; l++)
                    covered *= WORD_BITS;
                start = covered;
                goto next;
            }
            pos = pos * WORD_BITS + (uint64_t)__builtin_ctzll(marked);
        }
        if (pos < index->bits) {
            *found = pos;
            return true;
        }
        /* I2 broken by a damaged file: drop the bit and stop here, since
         * nothing valid lies past the end. */
        clear_at(index, 0, pos);
        return false;
    next:;
    }
    return false;
}

bool shmi_index_find(const struct shmi_index *index, uint64_t start,
                     uint64_t *found)
{
    if (start >= index->bits)
        start = 0;
    if (shmi_index_find_from(index, start, found))
        return true;
    return start > 0 && shmi_index_find_from(index, 0, found);
}
