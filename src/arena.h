/*
 * The process-local handle of an open arena. Everything in it was derived
 * from a validated superblock (layout.c), never read back from the file.
 */
#ifndef SHM_ARENA_H
#define SHM_ARENA_H

#include <stdbool.h>
#include <stdint.h>

#include "shm_alloc.h"

#include "atomics.h"
#include "hint_index.h"
#include "layout.h"

/* One tier of bitmap words, as the fast paths use it. */
struct shmi_tier {
    shmi_atomic_word *words;
    uint64_t count;     /* words in the tier */
    uint64_t eligible;  /* nodes a word of this tier may allocate */
    unsigned span_log2; /* bytes covered by one word */
    unsigned first_row; /* first allocatable row */
};

struct shm_arena {
    uint8_t *base;
    uint64_t map_size;
    uint64_t data_offset; /* copies of layout fields the fast path reads */
    uint64_t capacity;
    struct shmi_layout layout;
    shmi_atomic_word *words;
    struct shmi_tier tier[SHMI_MAX_TIERS];
    struct shmi_index hints[SHMI_MAX_TIERS][SHMI_WORD_ROWS];
    struct shmi_index empty[SHMI_MAX_TIERS];
    uint64_t serial; /* unique in this process, names the arena for caches */
    unsigned process_entries; /* entries this handle holds in the process
                                 table (process_table.c) */
    bool read_only;
    char *remove_path; /* SHM_ARENA_REMOVE_ON_LAST_CLOSE: the file's path */
};

/* The shared header: SHMI_SHARED_HEADER_SIZE bytes, page aligned, zero in
 * a new file; named roots in the first 4096 bytes, the process table in
 * the rest. */
static inline void *shmi_arena_shared_header(shm_arena *arena)
{
    return arena->base + arena->layout.header_offset;
}

/* Live processes attached to the arena's file (process_table.c). */
size_t shmi_arena_live_processes(shm_arena *arena);

/* The default arena, or NULL with errno saying why there is none (the
 * errno of the failed automatic attach, or ENXIO): for the global forms
 * of the shm_arena_* functions defined outside global.c. */
shm_arena *shmi_current_arena(void);

#endif /* SHM_ARENA_H */
