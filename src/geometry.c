/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Binding a mapped file's layout to process-local pointers (geometry.h).
 * Pure arithmetic over a validated layout: nothing is read from the file.
 */
#include "geometry.h"

#include <stdatomic.h>
#include <stddef.h>

static _Atomic(uint64_t) next_serial = 1;

void shmi_index_bind(struct shmi_index *index, shmi_atomic_word *storage,
                     uint64_t bits)
{
    index->bits = bits;
    index->levels = 0;
    uint64_t level_bits = bits;
    while (level_bits > 0 && index->levels < SHMI_INDEX_MAX_LEVELS) {
        uint64_t words = shmi_layout_index_level_words(level_bits);
        index->level[index->levels++] = storage;
        storage += words;
        if (words == 1)
            break;
        level_bits = words;
    }
}

void shmi_geometry_bind(struct shmi_geometry *g, void *base,
                        const struct shmi_layout *l)
{
    g->base = base;
    g->data_offset = l->data_offset;
    g->capacity = l->capacity;
    g->tiers = l->tiers;
    g->layout = *l;
    g->tcache = g->base + l->tcache_offset;
    g->tcache_slots = l->tcache_slots;
    shmi_atomic_word *words = (shmi_atomic_word *)(g->base + l->words_offset);
    shmi_atomic_word *index = (shmi_atomic_word *)(g->base + l->index_offset);
    for (unsigned t = 0; t < l->tiers; t++) {
        struct shmi_tier *tier = &g->tier[t];
        tier->words = words + l->tier_first_word[t];
        tier->count = l->tier_words[t];
        tier->span_log2 = l->span_log2[t];
        tier->first_row = t == 0 ? l->top_first_row : 1;
        tier->eligible = shmi_word_rows_from(tier->first_row);
        for (unsigned row = tier->first_row; row < SHMI_WORD_ROWS; row++)
            shmi_index_bind(&g->hints[t][row], index + l->hint_index_at[t][row],
                            tier->count);
        if (t > 0)
            shmi_index_bind(&g->empty[t], index + l->empty_index_at[t],
                            tier->count);
    }
    g->cont =
        l->cont_words ? (shmi_atomic_word *)(g->base + l->cont_offset) : NULL;
    g->last = &g->tier[l->tiers - 1];
    g->above_last = l->tiers > 1 ? g->tier[l->tiers - 2].words : NULL;
    /* relaxed: only uniqueness matters, not order. */
    g->serial =
        atomic_fetch_add_explicit(&next_serial, 1, memory_order_relaxed);
}
