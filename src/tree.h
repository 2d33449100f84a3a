/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The buddy trees of an arena: claiming and releasing chunks, lock-free.
 * See tree.c for the protocol; tree_inspect.h reads the same words.
 */
#ifndef SHM_TREE_H
#define SHM_TREE_H

#include <stdint.h>

#include "atomics.h"
#include "geometry.h"

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

/* Frees the chunk starting at data offset x (< capacity, a multiple of
 * 2^MIN); 0, or EINVAL when no live allocation starts there. */
int shmi_tree_free(struct shmi_geometry *g, uint64_t x);

/* Size of the live allocation starting at x, 0 when there is none. */
uint64_t shmi_tree_usable(struct shmi_geometry *g, uint64_t x);

/* Resizes the live allocation starting at x to class `class_index` without
 * moving it: 0, ENOMEM when that cannot be done in place (buddy in use,
 * or the size lives in another tier), EINVAL when x is not one. */
int shmi_tree_resize(struct shmi_geometry *g, uint64_t x, unsigned class_index);

/* Recovery of a dead thread's pending operation on word `index` of
 * `tier` (pending.c): when that word is 0 and its parent node is set,
 * clears the parent node and publishes its hints. Returns the bytes given
 * back (0 when there was nothing to do). Lock-free. */
uint64_t shmi_tree_release_orphan(struct shmi_geometry *g, unsigned tier,
                                  uint64_t index);

/* Inconsistent states the tree refused (T5, tree.c) since the file was
 * formatted, counted in the shared header by every process. */
uint64_t shmi_tree_damage_count(const struct shmi_geometry *g);

#endif /* SHM_TREE_H */
