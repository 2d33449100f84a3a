/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Reading the buddy trees without changing a chunk: census, the walk over
 * allocated chunks, free bytes, block usage, the consistency check, and
 * the hint repair that follows a death (tree_inspect.c).
 */
#ifndef SHM_TREE_INSPECT_H
#define SHM_TREE_INSPECT_H

#include <stdint.h>

#include "geometry.h"
#include "tree.h"

/* Maximal free chunks by class, counting empty active words as free (a
 * snapshot while others run). */
void shmi_tree_census(struct shmi_geometry *g,
                      uint64_t free_chunks[SHMI_CLASSES]);

/* Calls visit(x, size, ctx) for every allocated chunk: its data offset
 * and its size, in one pass over the words that hold chunks (tier 0, and
 * the active lower words the walk reaches through delegated nodes). Each
 * word is read once, before its chunks are visited, and the words below
 * it after that: visit may free the chunk it is given (a collection,
 * alone on the file), and is never handed a chunk twice. Nodes past the
 * capacity and damaged states are not chunks. A snapshot while others
 * run. */
typedef void shmi_chunk_visit(uint64_t x, uint64_t size, void *ctx);
void shmi_tree_foreach_chunk(struct shmi_geometry *g, shmi_chunk_visit *visit,
                             void *ctx);

/* Sets every hint the words' current values call for (restores T4 after
 * a process died between a free and its hint updates). Safe while others
 * run; O(words). */
void shmi_tree_repair_hints(struct shmi_geometry *g);

/* Bytes in free chunks (words retired or not). */
uint64_t shmi_tree_free_bytes(struct shmi_geometry *g);

/* Bytes in free chunks of each block of 2^MAX bytes from `first` on:
 * free_bytes[i] for block first + i, count blocks, all below the capacity
 * rounded up to a block (a snapshot while others run). */
void shmi_tree_block_free_bytes(struct shmi_geometry *g, uint64_t first,
                                uint64_t count, uint32_t *free_bytes);

/* Number of bitmap words that break an invariant, plus the continuation
 * bits (SHM_TRIM) that no allocation's tail pieces account for (exact
 * when quiescent). */
uint64_t shmi_tree_check(struct shmi_geometry *g);

#endif /* SHM_TREE_INSPECT_H */
