/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The table of processes attached to an arena (process_table.c): a
 * self-contained module over its own region of the shared header and the
 * lock bytes of the file's first page. It tells live entries from dead and
 * exited ones; what to do about those (resolve their pending operations,
 * clear them, repair the hints) is the arena layer's decision.
 */
#ifndef SHM_PROCESS_TABLE_H
#define SHM_PROCESS_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atomics.h"

#define SHMI_PROCESS_NO_SLOT SIZE_MAX

/* This process's view of one arena's table, through one handle. */
struct shmi_process_table {
    shmi_atomic_word *words; /* SHMI_PROCESS_TABLE_SIZE bytes, mapped */
    uint64_t file_offset;    /* where they lie in the file */
    int fd;                  /* the handle's descriptor of the file: its
                                locks and probes; -1 for none */
    size_t slot;             /* the handle's entry, or SHMI_PROCESS_NO_SLOT */
    uint64_t identity;       /* the value of that entry */
    bool read_only;          /* a read-only mapping: never written */
};

/* What an entry says, from its value and its lock byte. */
enum shmi_entry_state {
    SHMI_ENTRY_FREE,    /* 0 */
    SHMI_ENTRY_LIVE,    /* attached, its lock held */
    SHMI_ENTRY_LEAVING, /* detaching and deciding whether to remove the
                           file (lock held): attached, not counted live */
    SHMI_ENTRY_EXITING, /* marked exited by its process's destructor, the
                           process not gone yet (lock held) */
    SHMI_ENTRY_EXITED,  /* exited cleanly, lock dropped: to be cleared */
    SHMI_ENTRY_DEAD,    /* lock dropped without detaching: to be cleared */
};

struct shmi_process_info {
    size_t slot;
    uint64_t value;    /* the entry as read (for shmi_process_table_clear) */
    uint64_t owner;    /* the attachment's key for thread records
                          (pending.h) */
    uint64_t sequence; /* the attachment's number, unique in the file */
    uint32_t pid;      /* in the attacher's pid namespace: display only */
    enum shmi_entry_state state;
};

/* Binds t to the table at `words`, which lies at file_offset in the file
 * that fd (kept by the caller, -1 for none) has open; the handle holds no
 * entry yet. */
void shmi_process_table_bind(struct shmi_process_table *t,
                             shmi_atomic_word *words, uint64_t file_offset,
                             int fd, bool read_only);

/* Number of slots in a table. */
size_t shmi_process_table_slots(void);

/*
 * Enters the handle in the table: takes the lock byte of a free slot, then
 * the slot, with a new attachment number. Called once per successful open.
 * Returns 0, or: ENOSPC (no free slot: the caller may clear dead entries
 * and try again), ESTALE (the file is being removed by its last process,
 * see shmi_process_table_detach_last: open the path again), EROFS (a
 * read-only table: it is not entered, and its detach does nothing), the
 * errno of fcntl (a file system without open-file-description locks).
 * Lock-free; may run concurrently with every table call in any process.
 */
int shmi_process_table_attach(struct shmi_process_table *t);

/* Gives back the handle's entry and drops its lock (called once per close,
 * instead of shmi_process_table_detach_last). Lock-free. */
void shmi_process_table_detach(struct shmi_process_table *t);

/* As shmi_process_table_detach, for a handle whose descriptor the caller
 * closes next: the close drops the lock. */
void shmi_process_table_leave(struct shmi_process_table *t);

/*
 * As shmi_process_table_detach, then, if no live process is left
 * registered, removes the file at path (which must name this arena's file;
 * a path that no longer does is left alone). Returns 0 (removed, or other
 * processes remain, or another detaching process removes it, or the
 * handle held no entry), EROFS (a read-only table), or the errno of
 * opening, reading or unlinking path. Lock-free; see process_table.c for
 * the race with processes attaching.
 */
int shmi_process_table_detach_last(struct shmi_process_table *t,
                                   const char *path);

/* Marks the handle's entry "exited cleanly" and forgets it, keeping its
 * lock: the kernel drops that when the process is gone (the library's
 * destructor, arena_registry.c). Lock-free. */
void shmi_process_table_mark_exited(struct shmi_process_table *t);

/* Forgets the handle's entry without touching the file (a forked child's
 * copy of its parent's handle). */
void shmi_process_table_forget(struct shmi_process_table *t);

/* The handle's key for thread records, 0 when it holds no entry. */
uint64_t shmi_process_table_owner(const struct shmi_process_table *t);

/* Whether the attachment an owner key names is still there and its
 * process alive (live, leaving or exiting: its lock is held). One lock
 * probe. */
bool shmi_process_table_owner_live(const struct shmi_process_table *t,
                                   uint64_t owner);

/* Number of live processes registered (a process attached twice counts
 * twice). Writes nothing; one lock probe per entry. */
size_t shmi_process_table_live(const struct shmi_process_table *t);

/* Reads and probes the entry in `slot` (< shmi_process_table_slots()).
 * Writes nothing. */
void shmi_process_table_entry(const struct shmi_process_table *t, size_t slot,
                              struct shmi_process_info *out);

/* Clears an EXITED or DEAD entry read by shmi_process_table_entry, if it
 * still holds that value: whether it did. The caller has resolved the
 * entry's thread records first. Lock-free. */
bool shmi_process_table_clear(struct shmi_process_table *t,
                              const struct shmi_process_info *info);

/* Whether the caller should sweep the whole table now (a failed claim,
 * arena_recover.c): yes when an attachment was made since the last full
 * sweep (that attacher may have died since), or when at least
 * interval_ms passed since it; then the ticket is this caller's, and
 * other callers are told no until the next attachment or interval. The
 * time is CLOCK_MONOTONIC in ms. One load of two words and a CAS;
 * lock-free. */
bool shmi_process_table_take_sweep(struct shmi_process_table *t,
                                   uint64_t now_ms, uint64_t interval_ms);

/* The first slot of the next window of `count` slots, from a cursor in
 * the table's header that every attacher advances: successive calls, in
 * any process, sweep the whole table. */
size_t shmi_process_table_window(struct shmi_process_table *t, size_t count);

/*
 * Calls visit once per registered entry in slot order; changes nothing.
 * Stops at the first nonzero return of visit and returns it; returns 0
 * after the last entry. Entries may come and go during the walk (a
 * snapshot per slot, not of the table).
 */
int shmi_process_table_foreach(const struct shmi_process_table *t,
                               int (*visit)(const struct shmi_process_info *,
                                            void *),
                               void *ctx);

#endif /* SHM_PROCESS_TABLE_H */
