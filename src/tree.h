/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The buddy trees of an arena: claiming and releasing chunks, lock-free.
 * See tree.c for the protocol; tree_inspect.h reads the same words.
 */
#ifndef SHM_TREE_H
#define SHM_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atomics.h"
#include "geometry.h"
#include "word.h"

#define SHMI_NO_CHUNK UINT64_MAX

/* Node 1 of a lower-tier word: the word manages its parent node's
 * subtree (tree.c). */
#define SHMI_TREE_ACTIVE (UINT64_C(1) << 1)

/* Word `index` of `tier`. */
static inline shmi_atomic_word *shmi_tree_word(const struct shmi_geometry *g,
                                               unsigned tier, uint64_t index)
{
    return g->tier[tier].words + index;
}

/* Builds the trees of a new, zeroed file: pins what lies past the
 * capacity and marks every word's hints. Single-threaded, before the file
 * is published. */
void shmi_tree_format(struct shmi_geometry *g);

/* A chunk of 2^(MIN + class_index) bytes: its offset from the data
 * region's start, or SHMI_NO_CHUNK when none is free. */
uint64_t shmi_tree_alloc(struct shmi_geometry *g, unsigned class_index);

/* log2 of the granularity G of class class_index's trimmed lengths: the
 * bottom-row node size of the words that hold the class's nodes (2^MIN
 * in the last tier, the last tier's word span in the tier above, ...),
 * as layout.c places the classes: the lowest five in the last tier, the
 * next five in the tier above it, and so on up to tier 0. */
static inline unsigned shmi_tree_granule_log2(unsigned class_index)
{
    unsigned levels = SHMI_CLASSES;
    unsigned above = levels <= SHMI_WORD_ROWS ? 0 : (levels - 6 + 4) / 5;
    unsigned depth = class_index / 5 < above ? class_index / 5 : above;
    return SHM_MIN_ALLOC_POW2 + 5 * depth;
}

/* Bytes an allocation of `size` bytes of class class_index takes when
 * trimmed (SHM_TRIM): size rounded up to the class's granularity, at
 * least one granule; 2^(MIN + class_index) without SHM_TRIM. */
static inline uint64_t shmi_tree_trimmed_length(unsigned class_index,
                                                uint64_t size)
{
    uint64_t node = UINT64_C(1) << (SHM_MIN_ALLOC_POW2 + class_index);
    if (!SHM_TRIM)
        return node;
    uint64_t g = UINT64_C(1) << shmi_tree_granule_log2(class_index);
    uint64_t length = size == 0 ? g : (size + g - 1) & ~(g - 1);
    return length < node ? length : node;
}

/* A chunk of class class_index trimmed to `length` bytes (a multiple of
 * the class's granule, at most the class's size; see tree.c's pieces):
 * its offset, or SHMI_NO_CHUNK when no node of the class is free. */
uint64_t shmi_tree_alloc_trimmed(struct shmi_geometry *g, unsigned class_index,
                                 uint64_t length);

/* A chunk of class class_index trimmed to `length`, as
 * shmi_tree_alloc_trimmed, and up to `more` (< 32) others alike from the
 * same word and CAS when it lies in the last tier: their offsets | code
 * are stored in list[base..] before the claiming CAS and *count is set to
 * base + their number (release) after it and their continuation bits, so
 * that a process killed in between leaves them unlisted (thread_cache.c).
 * *count is not written when there are none. */
uint64_t shmi_tree_alloc_batch(struct shmi_geometry *g, unsigned class_index,
                               uint64_t length, unsigned more,
                               shmi_atomic_word *list, shmi_atomic_word *count,
                               uint64_t base, uint64_t code);

/* Frees the chunk starting at data offset x (< capacity, a multiple of
 * 2^MIN); 0, or EINVAL when no live allocation starts there. */
int shmi_tree_free(struct shmi_geometry *g, uint64_t x);

/* The live allocation starting at x, found as shmi_tree_free finds it:
 * where its first piece's node lies, the word's value as read, and its
 * pieces (tree.c): the union of their subtree masks, the bottom-row slots
 * (counted from x's) where its tail pieces start, and its length. */
struct shmi_tree_chunk {
    unsigned tier;
    unsigned node;
    uint64_t word;
    uint64_t value;
    uint64_t mask;
    uint32_t tails;
    uint64_t length;
};

/* The continuation bit of the 2^MIN unit at data offset y (SHM_TRIM). */
static inline uint64_t shmi_tree_cont_word(const struct shmi_geometry *g,
                                           uint64_t y)
{
    /* relaxed: see tree.c, "Trimming": the bits a free reads are its own
     * allocation's, set by its claimer before the chunk reached it. */
    return shmi_atomic_load_relaxed(g->cont + (y >> (SHM_MIN_ALLOC_POW2 + 6)));
}

enum shmi_pieces { SHMI_PIECES_OK, SHMI_PIECES_NONE, SHMI_PIECES_DAMAGED };

/*
 * Completes *chunk, whose first piece's node, word and value are filled
 * in, with the tail pieces that follow it (tree.c, "Trimming"): NONE when
 * x is the start of a tail piece (not an allocation), DAMAGED when the
 * continuation bits name a piece the word does not hold. A tail piece
 * lies inside the first piece's parent node, in the same word, and is
 * smaller than the piece before it; only those are read as ours.
 */
static inline __attribute__((always_inline)) enum shmi_pieces
shmi_tree_pieces(const struct shmi_geometry *g, uint64_t x,
                 struct shmi_tree_chunk *chunk)
{
    const struct shmi_tier *t = &g->tier[chunk->tier];
    unsigned row = shmi_word_row_of(chunk->node);
    chunk->mask = shmi_word_subtree(chunk->node);
    chunk->tails = 0;
    chunk->length = UINT64_C(1) << (t->span_log2 - row);
    if (!SHM_TRIM)
        return SHMI_PIECES_OK;
    uint64_t u = x >> SHM_MIN_ALLOC_POW2;
    uint64_t bits = shmi_tree_cont_word(g, x);
    if (__builtin_expect((bits >> (u & 63) & 1) != 0, 0))
        return SHMI_PIECES_NONE;
    if (row == t->first_row)
        return SHMI_PIECES_OK; /* its parent is not in the word */
    unsigned slot_log2 = t->span_log2 - SHMI_WORD_BOTTOM_ROW;
    unsigned slot0 = (unsigned)(x >> slot_log2) & (SHMI_WORD_SLOTS - 1);
    unsigned piece = 1u << (SHMI_WORD_BOTTOM_ROW - row);
    /* The tails lie in the first piece's parent, which follows it only
     * when it is the left half: a right half (the last slots of the word
     * among them) has none, whatever the bits after it say (a set one is
     * damage, which shmi_tree_check counts). */
    unsigned end = (slot0 & piece) != 0 ? piece : 2 * piece, at = piece;
    while (at < end) {
        uint64_t y = x + ((uint64_t)at << slot_log2);
        if (y >= g->capacity)
            break; /* past the last continuation bit: pinned slots */
        uint64_t v = y >> SHM_MIN_ALLOC_POW2;
        if ((v >> 6) != (u >> 6))
            bits = shmi_tree_cont_word(g, y);
        if (!(bits >> (v & 63) & 1))
            break;
        unsigned s = slot0 + at;
        unsigned node = shmi_word_owner(chunk->value, s, t->eligible);
        unsigned size =
            node ? 1u << (SHMI_WORD_BOTTOM_ROW - shmi_word_row_of(node)) : 0;
        if (node == 0 || size >= piece || (s & (size - 1)) != 0 ||
            at + size > end ||
            (chunk->value & shmi_word_subtree(node)) != shmi_word_subtree(node))
            return SHMI_PIECES_DAMAGED;
        chunk->mask |= shmi_word_subtree(node);
        chunk->tails |= UINT32_C(1) << at;
        at += size;
        piece = size;
    }
    chunk->length = (uint64_t)at << slot_log2;
    return SHMI_PIECES_OK;
}

/* shmi_tree_find for every case (tree.c): the walk of find_owner. */
bool shmi_tree_find_slow(struct shmi_geometry *g, uint64_t x,
                         struct shmi_tree_chunk *chunk);

/* shmi_tree_find_fast when the last tier's word on x's path is 0 and
 * there are two tiers: a bottom-row chunk of tier 0, whose only child
 * word is that 0 word (no delegation to check). */
static inline __attribute__((always_inline)) bool
shmi_tree_find_fast_above(struct shmi_geometry *g, uint64_t x,
                          struct shmi_tree_chunk *chunk)
{
    const struct shmi_tier *tier = &g->tier[0];
    if (g->tiers != 2)
        return false;
    uint64_t index = x >> tier->span_log2;
    /* relaxed: as in find_owner. */
    uint64_t w = shmi_atomic_load_relaxed(tier->words + index);
    unsigned slot = (unsigned)(x >> (tier->span_log2 - SHMI_WORD_BOTTOM_ROW)) &
                    (SHMI_WORD_SLOTS - 1);
    unsigned node = SHMI_WORD_FIRST_SLOT + slot;
    uint64_t hits = w & shmi_word_path_masks[slot] & tier->eligible;
    /* The chunk is the bottom-row node itself: the only set node on the
     * path (W3), so x must start it. */
    if (hits != UINT64_C(1) << node ||
        (x & ((UINT64_C(1) << (tier->span_log2 - SHMI_WORD_BOTTOM_ROW)) - 1)))
        return false;
    chunk->tier = 0;
    chunk->node = node;
    chunk->word = index;
    chunk->value = w;
    /* Tail pieces above the last tier have child words to check: the
     * slow path does it. */
    return shmi_tree_pieces(g, x, chunk) == SHMI_PIECES_OK && chunk->tails == 0;
}

/*
 * The common case of shmi_tree_find, inline: a chunk of the last tier in
 * an ACTIVE word whose parent node is set (tree.c's find_owner says why
 * that suffices). true when it found the chunk starting at x; false when
 * it cannot tell (another tier, x not a chunk's start, any doubt), for
 * shmi_tree_find to decide.
 */
static inline __attribute__((always_inline)) bool
shmi_tree_find_fast(struct shmi_geometry *g, uint64_t x,
                    struct shmi_tree_chunk *chunk)
{
    const struct shmi_tier *tier = g->last;
    uint64_t index = x >> tier->span_log2;
    /* relaxed: as in find_owner. */
    uint64_t w = shmi_atomic_load_relaxed(tier->words + index);
    if (g->above_last == NULL)
        return false;
    if (!(w & SHMI_TREE_ACTIVE))
        return w == 0 && shmi_tree_find_fast_above(g, x, chunk);
    unsigned slot = (unsigned)(x >> (tier->span_log2 - SHMI_WORD_BOTTOM_ROW)) &
                    (SHMI_WORD_SLOTS - 1);
    uint64_t hits = w & shmi_word_path_masks[slot] & tier->eligible;
    unsigned node = (unsigned)__builtin_ctzll(hits | UINT64_C(1) << 63);
    uint64_t mask = shmi_word_subtree(node);
    unsigned size_log2 = tier->span_log2 - shmi_word_row_of(node);
    uint64_t parent =
        shmi_atomic_load_relaxed(g->above_last + index / SHMI_WORD_SLOTS);
    if (hits == 0 || (w & mask) != mask ||
        !(parent >> (SHMI_WORD_FIRST_SLOT + index % SHMI_WORD_SLOTS) & 1) ||
        (x & ((UINT64_C(1) << size_log2) - 1)))
        return false;
    chunk->tier = g->tiers - 1;
    chunk->node = node;
    chunk->word = index;
    chunk->value = w;
    if (!SHM_TRIM)
        return shmi_tree_pieces(g, x, chunk) == SHMI_PIECES_OK;
    /* The last tier's granule is 2^MIN and a node's parent spans at most
     * 16 units, aligned: x's bit and the bit after the first piece lie in
     * one continuation word. The common case, no tail, costs one load. */
    unsigned row = shmi_word_row_of(node);
    unsigned units = 1u << (SHMI_WORD_BOTTOM_ROW - row);
    uint64_t bits =
        shmi_tree_cont_word(g, x) >> ((x >> SHM_MIN_ALLOC_POW2) & 63);
    if (__builtin_expect((bits & 1) != 0, 0))
        return false; /* the start of a tail piece */
    if (row == tier->first_row || !(bits >> units & 1)) {
        chunk->mask = mask;
        chunk->tails = 0;
        chunk->length = (uint64_t)1 << size_log2;
        return true;
    }
    return shmi_tree_pieces(g, x, chunk) == SHMI_PIECES_OK;
}

/* shmi_tree_find_class_fast's answer when it cannot tell. */
#define SHMI_TREE_NO_CLASS UINT32_MAX

/*
 * What a free needs of shmi_tree_find_fast without SHM_TRIM: the size
 * class of the chunk starting at x, or SHMI_TREE_NO_CLASS when it cannot
 * tell (then shmi_tree_find decides). The same tests as find_fast and
 * find_fast_above, and both are made: which of the two cases holds (a
 * chunk of the last tier, or a bottom-row chunk of tier 0 when there are
 * two tiers) is the chunk's size, and a program freeing mixed sizes would
 * mispredict a branch on it, so the answer is selected instead. The two
 * share a test: the last tier's word `index` is the child of tier 0's
 * bottom-row node FIRST_SLOT + index % SLOTS, which must be set in both
 * (the parent of an ACTIVE word, or the chunk itself over a 0 word).
 */
static inline __attribute__((always_inline)) unsigned
shmi_tree_find_class_fast(struct shmi_geometry *g, uint64_t x)
{
    enum {
        LAST = SHMI_LAYOUT_TIERS - 1,
        SPAN = SHM_MIN_ALLOC_POW2 + SHMI_WORD_BOTTOM_ROW, /* the last tier's */
    };
    if (SHM_TRIM || LAST == 0)
        return SHMI_TREE_NO_CLASS;
    uint64_t index = x >> SPAN;
    /* relaxed, both: as in find_owner. */
    uint64_t w = shmi_atomic_load_relaxed(g->tier[LAST].words + index);
    uint64_t above = shmi_atomic_load_relaxed(g->tier[LAST - 1].words +
                                              index / SHMI_WORD_SLOTS);
    unsigned slot = (unsigned)(x >> SHM_MIN_ALLOC_POW2) & (SHMI_WORD_SLOTS - 1);
    uint64_t hits = w & shmi_word_path_masks[slot] & shmi_word_rows_from(1);
    uint64_t top = -(uint64_t)(w == 0); /* all ones: the tier 0 case */
    unsigned node = (unsigned)__builtin_ctzll(hits | UINT64_C(1) << 63);
    uint64_t mask = shmi_word_subtree(node);
    /* Over a 0 word, the word's whole span: tier 0's bottom-row node. */
    unsigned size_log2 = SPAN - (shmi_word_row_of(node) & ~(unsigned)top);
    unsigned up_slot = (unsigned)(index % SHMI_WORD_SLOTS);
    /* Each test is a word that is 0 when it passes, so that they combine
     * without branches. In the last tier: an ACTIVE word holding the
     * node whole. */
    uint64_t in_last =
        (~w & SHMI_TREE_ACTIVE) | (uint64_t)(hits == 0) | ((w & mask) ^ mask);
    /* In tier 0 over a 0 word: the bottom-row node is the only set node
     * on its path (W3), so there is no child word to check. */
    uint64_t in_top = LAST != 1
                          ? UINT64_MAX
                          : above & shmi_word_path_masks[up_slot] &
                                shmi_word_rows_from(SHMI_LAYOUT_TOP_FIRST_ROW) &
                                ~shmi_word_rows_from(SHMI_WORD_BOTTOM_ROW);
    /* Both: the bottom-row node of tier 0 above x is set. */
    uint64_t fails = (in_last & ~top) | (in_top & top) |
                     (~above >> (SHMI_WORD_FIRST_SLOT + up_slot) & 1) |
                     (x & ((UINT64_C(1) << size_log2) - 1));
    return fails == 0 ? size_log2 - SHM_MIN_ALLOC_POW2 : SHMI_TREE_NO_CLASS;
}

/* Whether a live allocation starts at data offset x (as for
 * shmi_tree_free); a disagreement of the words is counted (T5). */
static inline bool shmi_tree_find(struct shmi_geometry *g, uint64_t x,
                                  struct shmi_tree_chunk *chunk)
{
    return shmi_tree_find_fast(g, x, chunk) || shmi_tree_find_slow(g, x, chunk);
}

/* Its size class: its first piece's, or the next when it is trimmed
 * (the first piece of a trimmed allocation is half its node). */
static inline unsigned
shmi_tree_chunk_class(const struct shmi_geometry *g,
                      const struct shmi_tree_chunk *chunk)
{
    return g->tier[chunk->tier].span_log2 - shmi_word_row_of(chunk->node) -
           SHM_MIN_ALLOC_POW2 + (chunk->tails != 0);
}

/* Frees the chunk shmi_tree_find found at x: 0, or EINVAL when it is no
 * longer there. */
int shmi_tree_free_found(struct shmi_geometry *g, uint64_t x,
                         const struct shmi_tree_chunk *chunk);

/* Frees `count` chunks of class `class_index`, sorted by offset, one CAS
 * per word they share; returns how many were freed (a chunk that is not
 * a live allocation of the class is left alone and not counted). */
unsigned shmi_tree_free_batch(struct shmi_geometry *g, unsigned class_index,
                              const uint64_t *xs, unsigned count);

/* Size of the live allocation starting at x (its trimmed length), 0 when
 * there is none. */
uint64_t shmi_tree_usable(struct shmi_geometry *g, uint64_t x);

/* Resizes the live allocation starting at x to class `class_index`,
 * trimmed to `length` (as shmi_tree_alloc_trimmed), without moving it:
 * 0, ENOMEM when that cannot be done in place (a node it needs is in use,
 * the size lives in a tier above, or a trimmed allocation would shrink
 * into a deeper one), EINVAL when x is not one. */
int shmi_tree_resize(struct shmi_geometry *g, uint64_t x, unsigned class_index,
                     uint64_t length);

/* Recovery of a dead thread's pending operation on word `index` of
 * `tier` (pending.c): when that word is 0 and its parent node is set,
 * clears the parent node and publishes its hints. Returns the bytes given
 * back (0 when there was nothing to do). Lock-free. */
uint64_t shmi_tree_release_orphan(struct shmi_geometry *g, unsigned tier,
                                  uint64_t index);

/* Recovery of a dead thread's pending trim record (pending.c): the
 * allocation of `slots` bottom-row slots at x in a word of `tier`, killed
 * in its claim (freeing false: its tail pieces are freed, its first piece
 * stays, the chunk in flight) or in its free (every piece is freed). Its
 * continuation bits are cleared first. Returns the bytes given back, 0
 * when the word does not hold those pieces (damage). Lock-free. */
uint64_t shmi_tree_release_trim(struct shmi_geometry *g, unsigned tier,
                                uint64_t x, unsigned slots, bool freeing);

/* Inconsistent states the tree refused (T5, tree.c) since the file was
 * formatted, counted in the shared header by every process. */
uint64_t shmi_tree_damage_count(const struct shmi_geometry *g);

#endif /* SHM_TREE_H */
