/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * How the shared header (SHMI_SHARED_HEADER_SIZE bytes at the layout's
 * header_offset, page aligned, zeroed when the file is created) is
 * divided:
 *
 *   offset 0       4096 bytes    named roots          (roots.c)
 *   offset 4096    12288 bytes   attached processes   (process_table.c)
 *   offset 16384   the rest      thread records       (pending.c)
 *                  (the process table's header holds, at
 *                  SHMI_DAMAGE_COUNT_OFFSET, the count of damaged states
 *                  the tree refused: tree.c, T5)
 *
 * Both parts hold only shmi_atomic_word (lock-free, address-free 64-bit
 * atomics, see atomics.h): the file is mapped at a different address in
 * every process and may be written by any of them.
 */
#ifndef SHM_SHARED_HEADER_H
#define SHM_SHARED_HEADER_H

#include <stdint.h>

#include "geometry.h"

#define SHMI_ROOTS_OFFSET 0
#define SHMI_ROOTS_SIZE 4096
#define SHMI_PROCESS_TABLE_OFFSET SHMI_ROOTS_SIZE
#define SHMI_PROCESS_TABLE_SIZE 12288
#define SHMI_THREAD_RECORDS_OFFSET                                             \
    (SHMI_PROCESS_TABLE_OFFSET + SHMI_PROCESS_TABLE_SIZE)
#define SHMI_THREAD_RECORD_SIZE 64
#define SHMI_THREAD_RECORDS                                                    \
    ((SHMI_SHARED_HEADER_SIZE - SHMI_THREAD_RECORDS_OFFSET) /                  \
     SHMI_THREAD_RECORD_SIZE)

#define SHMI_DAMAGE_COUNT_OFFSET (SHMI_PROCESS_TABLE_OFFSET + 24)

_Static_assert(SHMI_SHARED_HEADER_SIZE >= 2 * SHMI_ROOTS_SIZE,
               "the process table needs at least one page");
_Static_assert(SHMI_THREAD_RECORDS >= 256, "room for the thread records");
_Static_assert(SHMI_TCACHE_MAX_SLOTS <= SHMI_THREAD_RECORDS,
               "a thread cache belongs to the thread record of its index");

/* The shared header in this process's mapping. */
static inline uint8_t *shmi_shared_header(const struct shmi_geometry *g)
{
    return g->base + g->layout.header_offset;
}

#endif /* SHM_SHARED_HEADER_H */
