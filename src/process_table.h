/*
 * The table of processes attached to an arena (process_table.c): a
 * self-contained module over its own region of the shared header. It
 * tells live entries from dead ones; what to do about the dead (repair
 * the hints, count them) is the arena layer's decision.
 */
#ifndef SHM_PROCESS_TABLE_H
#define SHM_PROCESS_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atomics.h"

/* This process's view of one arena's table. */
struct shmi_process_table {
    shmi_atomic_word *words; /* SHMI_PROCESS_TABLE_SIZE bytes, mapped */
    uint64_t file_offset;    /* where they lie in the file */
    unsigned entries;        /* entries this handle holds */
    unsigned slot;           /* the last one it took, and its identity */
    uint64_t identity;
    bool read_only; /* a read-only mapping: never written */
};

/* Binds t to the table at `words`, which lies at file_offset in the file;
 * the handle holds no entry yet. */
void shmi_process_table_bind(struct shmi_process_table *t,
                             shmi_atomic_word *words, uint64_t file_offset,
                             bool read_only);

/*
 * Registers the calling process (pid and start time) in the table; called
 * once per successful open. Returns 0, or: ENOSPC (the table is full of
 * live processes), EOVERFLOW (a pid wider than the table stores), ESTALE
 * (the file is being removed by its last process, see
 * shmi_process_table_detach_last: open the path again), EROFS (a
 * read-only table: it is not entered, and its detach does nothing).
 * Lock-free; may run concurrently with every table call in any process.
 */
int shmi_process_table_attach(struct shmi_process_table *t);

/* Removes one registration of the calling process (called once per
 * close, instead of shmi_process_table_detach_last). Lock-free. */
void shmi_process_table_detach(struct shmi_process_table *t);

/*
 * As shmi_process_table_detach, then, if no live process is left
 * registered, removes the file at path (which must name this arena's file;
 * a path that no longer does is left alone). Returns 0 (removed, or other
 * processes remain, or another detaching process removes it), EROFS (a
 * read-only table), or the errno of opening, reading or unlinking path.
 * Lock-free; see process_table.c for the race with processes attaching.
 */
int shmi_process_table_detach_last(struct shmi_process_table *t,
                                   const char *path);

/* Number of live processes registered (a process attached twice counts
 * twice). Writes nothing. */
size_t shmi_process_table_live(const struct shmi_process_table *t);

/* Clears the entries of dead processes; returns how many it cleared (0
 * for a read-only table). Lock-free. */
size_t shmi_process_table_clear_dead(struct shmi_process_table *t);

/* A nonzero number that names this process's entry in the table (the
 * one this handle took, in this process; 0 when it holds none, e.g. in a
 * forked child), for structures that record who owns them. Bit 63 is
 * always clear. */
uint64_t shmi_process_table_token(const struct shmi_process_table *t);

/* Whether the entry a token names is still the same process and live. */
bool shmi_process_table_token_live(const struct shmi_process_table *t,
                                   uint64_t token);

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
int shmi_process_table_foreach(const struct shmi_process_table *t,
                               int (*visit)(const struct shmi_process_info *,
                                            void *),
                               void *ctx);

#endif /* SHM_PROCESS_TABLE_H */
