/*
 * The buddy trees of an arena: allocation, release and inspection of
 * chunks, all lock-free. See tree.c for the protocol.
 */
#ifndef SHM_TREE_H
#define SHM_TREE_H

#include <stdint.h>

#include "arena.h"

#define SHMI_NO_CHUNK UINT64_MAX

/* Builds the trees of a new, zeroed file: pins what lies past the
 * capacity and marks every word's hints. Single-threaded, before the file
 * is published. */
void shmi_tree_format(shm_arena *arena);

/* A chunk of 2^(MIN + class_index) bytes: its offset from the data
 * region's start, or SHMI_NO_CHUNK when none is free. */
uint64_t shmi_tree_alloc(shm_arena *arena, unsigned class_index);

/* Frees the chunk starting at data offset x (< capacity, a multiple of
 * 2^MIN); 0, or EINVAL when no live allocation starts there. */
int shmi_tree_free(shm_arena *arena, uint64_t x);

/* Size of the live allocation starting at x, 0 when there is none. */
uint64_t shmi_tree_usable(shm_arena *arena, uint64_t x);

/* Resizes the live allocation starting at x to class `class_index` without
 * moving it: 0, ENOMEM when that cannot be done in place (buddy in use,
 * or the size lives in another tier), EINVAL when x is not one. */
int shmi_tree_resize(shm_arena *arena, uint64_t x, unsigned class_index);

/* Maximal free chunks by class, counting empty active words as free (a
 * snapshot while others run). */
void shmi_tree_census(shm_arena *arena, uint64_t free_chunks[SHMI_CLASSES]);

/* Sets every hint the words' current values call for (restores T4 after
 * a process died between a free and its hint updates). Safe while others
 * run; O(words). */
void shmi_tree_repair_hints(shm_arena *arena);

/* Bytes in free chunks (words retired or not). */
uint64_t shmi_tree_free_bytes(shm_arena *arena);

/* Bytes in free chunks of each block of 2^MAX bytes from `first` on:
 * free_bytes[i] for block first + i, count blocks, all below the capacity
 * rounded up to a block (a snapshot while others run). */
void shmi_tree_block_free_bytes(shm_arena *arena, uint64_t first,
                                uint64_t count, uint32_t *free_bytes);

/* Number of bitmap words that break an invariant (exact when quiescent). */
uint64_t shmi_tree_check(shm_arena *arena);

#endif /* SHM_TREE_H */
