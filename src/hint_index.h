/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Hint indexes: lock-free bitmaps with summary levels, kept in the arena
 * file, that say which bitmap words may hold a free chunk of some size.
 * See hint_index.c for the protocol.
 */
#ifndef SHM_HINT_INDEX_H
#define SHM_HINT_INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "atomics.h"
#include "geometry.h"

/* Marks bit i, and makes sure every summary above it is marked too. */
void shmi_index_mark(const struct shmi_index *index, uint64_t i);

/* As shmi_index_mark, returning at once when bit i is already set (its
 * summaries are then set, or their setter is still in flight). The load
 * is seq_cst: the set half of the store-buffer pair described in
 * hint_index.c. */
static inline void shmi_index_set(const struct shmi_index *index, uint64_t i)
{
    if (!(shmi_atomic_load_seq_cst(&index->level[0][i / 64]) &
          (UINT64_C(1) << (i % 64))))
        shmi_index_mark(index, i);
}

/* Unmarks bit i, and its summaries that no longer cover a marked bit. */
void shmi_index_clear(const struct shmi_index *index, uint64_t i);

/* Whether bit i is marked (a seq_cst load: see the protocol). */
bool shmi_index_test(const struct shmi_index *index, uint64_t i);

/* A marked bit at or after `start`, wrapping around to the beginning;
 * false when none is marked. */
bool shmi_index_find(const struct shmi_index *index, uint64_t start,
                     uint64_t *found);

/* A marked bit at or after `start`, without wrapping. */
bool shmi_index_find_from(const struct shmi_index *index, uint64_t start,
                          uint64_t *found);

#endif /* SHM_HINT_INDEX_H */
