/*
 * The table of processes attached to an arena (process_table.c).
 */
#ifndef SHM_PROCESS_TABLE_H
#define SHM_PROCESS_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm_alloc.h"

/*
 * Registers the calling process (pid and start time) in the arena's table;
 * called once per successful open. Returns 0, or: ENOSPC (the table is
 * full of live processes), EOVERFLOW (a pid wider than the table stores),
 * ESTALE (the file is being removed by its last process, see
 * shmi_process_table_detach_last: open the path again), EROFS (a
 * read-only arena: it is not entered, and its detach does nothing).
 * Lock-free; may run concurrently with every table call in any process.
 */
int shmi_process_table_attach(shm_arena *arena);

/* Removes one registration of the calling process (called once per
 * close, instead of shmi_process_table_detach_last). Lock-free. */
void shmi_process_table_detach(shm_arena *arena);

/*
 * As shmi_process_table_detach, then, if no live process is left
 * registered, removes the file at path (which must name this arena's file;
 * a path that no longer does is left alone). Returns 0 (removed, or other
 * processes remain, or another detaching process removes it), EROFS (a
 * read-only arena), or the errno of opening, reading or unlinking path.
 * Lock-free; see process_table.c for the race with processes attaching.
 */
int shmi_process_table_detach_last(shm_arena *arena, const char *path);

/* Number of live processes registered (a process attached twice counts
 * twice); clears the entries of dead processes on the way (unless the
 * arena is read-only). */
size_t shmi_process_table_live(shm_arena *arena);

struct shmi_process_info {
    uint32_t pid;
    uint64_t start_time; /* /proc/PID/stat field 22 (clock ticks after
                            boot, low 40 bits); 0 when it was unknown */
    bool live;
};

/*
 * Calls visit once per registered entry, live or dead, in slot order;
 * changes nothing. Stops at the first nonzero return of visit and returns
 * it; returns 0 after the last entry. Entries may come and go during the
 * walk (a snapshot per slot, not of the table).
 */
int shmi_process_table_foreach(shm_arena *arena,
                               int (*visit)(const struct shmi_process_info *,
                                            void *),
                               void *ctx);

#endif /* SHM_PROCESS_TABLE_H */
