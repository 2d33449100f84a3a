/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The geometry of a mapped arena: where its bitmap words, tiers and hint
 * indexes lie in this process's mapping, derived once from a validated
 * layout (layout.c) and never read back from the file. The tree, the hint
 * indexes and the inspection code work on this and on nothing above it.
 *
 * The fields the allocation fast path reads come first (base to tier[]),
 * so that malloc and free touch the first two cache lines of the struct
 * with the default size range (two tiers).
 */
#ifndef SHM_GEOMETRY_H
#define SHM_GEOMETRY_H

#include <stdint.h>

#include "atomics.h"
#include "layout.h"

#define SHMI_INDEX_MAX_LEVELS 8

/* Process-local view of one hint index stored in the file (hint_index.c). */
struct shmi_index {
    shmi_atomic_word *level[SHMI_INDEX_MAX_LEVELS]; /* [0]: one bit a word */
    uint64_t bits;                                  /* valid bits on [0] */
    unsigned levels;
};

/* One tier of bitmap words, as the fast paths use it. */
struct shmi_tier {
    shmi_atomic_word *words;
    uint64_t count;     /* words in the tier */
    uint64_t eligible;  /* nodes a word of this tier may allocate */
    unsigned span_log2; /* bytes covered by one word */
    unsigned first_row; /* first allocatable row */
};

struct shmi_geometry {
    uint8_t *base;        /* start of the mapping */
    uint64_t data_offset; /* of the data region, from base */
    uint64_t capacity;    /* bytes in the data region */
    uint64_t serial;      /* unique in this process: names the mapping for
                             per-thread state (tree.c's cursors) */
    /* What a free looks up first (tree.h's shmi_tree_find): the last
     * tier, and the words of the tier above it (NULL with one tier). */
    const struct shmi_tier *last;
    shmi_atomic_word *above_last;
    unsigned tiers;
    struct shmi_tier tier[SHMI_MAX_TIERS];
    /* The continuation bitmap (tree.c), one bit per 2^MIN bytes; NULL
     * without SHM_TRIM. */
    shmi_atomic_word *cont;
    struct shmi_index hints[SHMI_MAX_TIERS][SHMI_WORD_ROWS];
    struct shmi_index empty[SHMI_MAX_TIERS];
    struct shmi_layout layout;
    /* The owner value of this attachment's thread records (pending.c),
     * 0 when it has none (read-only, not entered, a forked child). */
    uint64_t record_owner;
    /* The thread caches (thread_cache.c): tcache_slots of
     * SHMI_TCACHE_SLOT_SIZE bytes each, the cache of thread record i at
     * tcache + i * SHMI_TCACHE_SLOT_SIZE. */
    uint8_t *tcache;
    uint64_t tcache_slots;
};

/* Binds `index` to `storage`, which holds shmi_layout_index_words(bits)
 * words. */
void shmi_index_bind(struct shmi_index *index, shmi_atomic_word *storage,
                     uint64_t bits);

/* Fills g for a file of layout l mapped at base, with a new serial. */
void shmi_geometry_bind(struct shmi_geometry *g, void *base,
                        const struct shmi_layout *l);

#endif /* SHM_GEOMETRY_H */
