/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The table of attached processes: who has the arena open, so that dead
 * processes are told from live ones, statistics can count them, recovery
 * finds what the dead left, and the last process to leave may remove the
 * file.
 *
 * Layout: SHMI_PROCESS_TABLE_SIZE bytes of words.
 *
 *   word 0        the removal word (below)
 *   word 1        the attachment counter: attachment numbers come from it
 *   word 2        the recovery cursor (shmi_process_table_window)
 *   word 3        the tree's damage count (tree.c, T5)
 *   word 4        the sweep ticket (shmi_process_table_take_sweep):
 *                 CLOCK_MONOTONIC ms of the last full sweep << 24 | the
 *                 attachment counter's low 24 bits then; 0: none yet
 *   word 5..7     reserved, 0
 *   word 8..      one slot per attachment, 0 when free, else an identity:
 *
 *      63 62 61                                   22 21              0
 *     +-----+---------------------------------------+-----------------+
 *     | tag |       attachment number (40 bits)     |  pid (22 bits)  |
 *     +-----+---------------------------------------+-----------------+
 *
 *   tag 0: attached; EXITED: its process's destructor detached it (a
 *   normal exit); LEAVING: detaching and deciding whether to remove the
 *   file. The attachment number is taken from word 1 (fetch_add) and is
 *   never 0, so identities are unique per attachment: a process that
 *   detaches and attaches again writes another value. The pid is only
 *   shown to people; it is the attacher's, in its own pid namespace.
 *
 * Liveness comes from the kernel. Slot i has a lock byte in the file's
 * first page, SHMI_LOCK_SLOTS_AT + i (layout.h): an attachment holds an
 * open-file-description write lock on it (fcntl F_OFD_SETLK, never
 * waiting) on the descriptor its handle keeps open, and the kernel drops
 * that lock when the last descriptor of that open file description is
 * closed: by the process itself, or by its death, however it dies, in
 * any pid namespace, whatever pid the next process gets.
 *
 *   attach:  a1. lock byte i (another holder: try the next slot)
 *            a2. CAS slot i 0 -> identity (it failed: unlock, next slot)
 *            a3. the removal check (below)
 *   detach:  CAS slot i identity -> 0, then unlock byte i (or close the
 *            descriptor, which unlocks it)
 *   exit:    CAS slot i identity -> identity | EXITED; the lock stays
 *            until the kernel drops it with the process (other threads
 *            may still be inside an operation while destructors run)
 *   probe:   slot i nonzero and byte i unlocked (F_OFD_GETLK from another
 *            description): dead, or exited when tagged EXITED
 *   clear:   CAS slot i (the exact value the prober read) -> 0
 *
 * Invariants:
 * 1. A nonzero slot whose byte is unlocked belongs to no attached
 *    process: the lock is taken before the slot is written and dropped
 *    after it is cleared, and only the kernel drops it otherwise, when
 *    the holder is gone. So a probe that finds byte i unlocked after
 *    reading value v in slot i has found v abandoned.
 * 2. A value abandoned is never written again (attachment numbers are
 *    unique), so the clearing CAS of v fails if slot i was cleared and
 *    taken by another attachment meanwhile: clearing never removes a live
 *    entry (no ABA).
 * 3. A handle never probes its own slot (a description does not conflict
 *    with its own lock): it knows its slot index and its identity.
 * 4. Clearing an entry is the arena layer's job (arena_recover.c), after
 *    it has resolved the entry's thread records (pending.c); this file
 *    only reads, probes and clears on request.
 *
 * Removing the file when the last process detaches. The removal word:
 *
 *     0                  the file is in use
 *     CLAIMED | who      who found no live entry and may remove it
 *     COMMITTED | who    who is removing it
 *     REMOVED            the path no longer names this file
 *
 *   who = slot << 40 | attachment number of the detaching process.
 *
 *   A detaching process D:                A process A attaching:
 *   d1. tags its slot LEAVING (its        a1, a2 above, then
 *       lock stays: its liveness)         a3. reads the removal word:
 *   d2. a live entry left? stop               0: attached.
 *   d3. CAS 0 (or an abandoned value)         CLAIMED: CAS it to 0 (cancel
 *       -> CLAIMED|D, or stop                   the removal), attached.
 *   d4. a live entry now? CAS back to 0,      COMMITTED by a live process,
 *       stop                                    or REMOVED: clear the slot,
 *   d5. CAS CLAIMED|D -> COMMITTED|D, or        fail with ESTALE (the opener
 *       stop (an attacher cancelled)            opens the path again and
 *   d6. unlink the path if it still holds       gets a new file).
 *       this file; REMOVED on success,        Abandoned: CAS it to 0,
 *       0 on failure                            attached.
 *   d7. clears its slot, unlocks its byte
 *
 *   A LEAVING entry is not counted live (so that two processes leaving at
 *   once see each other gone, and the last one removes the file), but its
 *   lock vouches for the remover: a removal value is abandoned when the
 *   slot it names no longer holds that attachment LEAVING with its lock
 *   held (the remover was killed), or is a value no process writes.
 *
 * 5. d1, a2, d3/d4 and a3 are sequentially consistent (slot CAS, slot
 *    loads, removal-word operations): in their single total order either
 *    A's slot (a2) comes before D's scan (d4), which then sees it and
 *    undoes the claim, or D's claim (d3) comes before a3, which then sees
 *    CLAIMED and cancels it, or COMMITTED and backs out. So an attacher
 *    never stays attached to a file that is unlinked under it, except in
 *    the limit below. Two detaching processes likewise see each other's
 *    LEAVING tags: the last one to tag finds no live entry.
 *
 * Progress: every step is one CAS, load or non-blocking fcntl; a failed
 * CAS means another process changed that word, a refused lock that
 * another attachment holds that slot. Nobody waits.
 *
 * Limits: a process killed after unlinking but before writing REMOVED
 * leaves a process that had opened the path before the unlink and
 * attaches after the kill alone on the removed file. A read-only
 * attachment writes nothing, so it is not in the table (it holds the
 * attachment read lock, arena_open.c). A forked child shares its parent's
 * mapping but not its entry: the fork handler closes the child's copy of
 * the descriptor (arena_registry.c), so the parent's lock is the parent's
 * alone. The file system must support open-file-description locks (local
 * file systems and tmpfs do); where it does not, processes are not
 * entered and nobody is seen dead.
 */
#include "process_table.h"

#include <errno.h>
#include <stddef.h>

#include "layout.h"
#include "os.h"
#include "shared_header.h"

#define HEADER_WORDS 8
#define SLOT_COUNT (SHMI_PROCESS_TABLE_SIZE / 8 - HEADER_WORDS)

#define PID_BITS 22
#define SEQ_BITS 40
#define PID_MASK (((uint64_t)1 << PID_BITS) - 1)
#define SEQ_MASK (((uint64_t)1 << SEQ_BITS) - 1)
#define ID_MASK (((uint64_t)1 << (PID_BITS + SEQ_BITS)) - 1)
#define TAG_MASK ((uint64_t)3 << 62)
#define TAG_EXITED ((uint64_t)1 << 62)
#define TAG_LEAVING ((uint64_t)2 << 62)

#define REMOVAL_CLAIMED ((uint64_t)1 << 62)
#define REMOVAL_COMMITTED ((uint64_t)2 << 62)
#define REMOVAL_REMOVED ((uint64_t)3 << 62)
#define REMOVAL_STATE ((uint64_t)3 << 62)
#define REMOVAL_SLOT_SHIFT 40
#define REMOVAL_SLOT_MASK (((uint64_t)1 << 22) - 1)

struct process_table {
    shmi_atomic_word removal;
    shmi_atomic_word counter;
    shmi_atomic_word cursor;
    shmi_atomic_word damage_count; /* tree.c's, SHMI_DAMAGE_COUNT_OFFSET */
    shmi_atomic_word sweep;
    shmi_atomic_word reserved[HEADER_WORDS - 5];
    shmi_atomic_word slot[SLOT_COUNT];
};

_Static_assert(sizeof(struct process_table) == SHMI_PROCESS_TABLE_SIZE,
               "the table fills its part of the shared header");
_Static_assert(SHMI_LOCK_SLOTS_AT + SLOT_COUNT <= 4096,
               "the lock bytes lie in the first page of the smallest size");
_Static_assert(SLOT_COUNT < (1u << 16), "a record owner holds the slot");
_Static_assert(offsetof(struct process_table, damage_count) ==
                   SHMI_DAMAGE_COUNT_OFFSET - SHMI_PROCESS_TABLE_OFFSET,
               "the damage count sits where shared_header.h says");

static struct process_table *table_of(const struct shmi_process_table *t)
{
    return (struct process_table *)t->words;
}

static uint64_t sequence_of(uint64_t value)
{
    return (value >> PID_BITS) & SEQ_MASK;
}

static uint64_t owner_key(size_t slot, uint64_t value)
{
    return sequence_of(value) << 16 | (uint64_t)slot;
}

static uint64_t lock_byte(size_t slot)
{
    return SHMI_LOCK_SLOTS_AT + (uint64_t)slot;
}

static uint64_t new_identity(struct process_table *table)
{
    uint64_t seq;
    do {
        /* Relaxed: only uniqueness matters, which the RMW gives; nothing
         * is published through the counter. */
        seq = (atomic_fetch_add_explicit(&table->counter, 1,
                                         memory_order_relaxed) +
               1) &
              SEQ_MASK;
    } while (seq == 0);
    return ((uint64_t)shmi_os_pid() & PID_MASK) | seq << PID_BITS;
}

/* State of `value` read from slot i. */
static enum shmi_entry_state state_of(const struct shmi_process_table *t,
                                      size_t i, uint64_t value)
{
    if (value == 0)
        return SHMI_ENTRY_FREE;
    uint64_t tag = value & TAG_MASK;
    bool held;
    if (i == t->slot) {
        /* Our own lock does not show: we know what we wrote. */
        held = (value & ID_MASK) == (t->identity & ID_MASK);
    } else if (shmi_os_lock_probe(t->fd, lock_byte(i), true, &held) != 0) {
        return SHMI_ENTRY_LIVE; /* cannot tell: never clear what may live */
    }
    if (tag == TAG_EXITED)
        return held ? SHMI_ENTRY_EXITING : SHMI_ENTRY_EXITED;
    if (!held)
        return SHMI_ENTRY_DEAD;
    return tag == TAG_LEAVING ? SHMI_ENTRY_LEAVING : SHMI_ENTRY_LIVE;
}

static size_t slot_first(uint64_t id)
{
    uint64_t x = id * UINT64_C(0x9e3779b97f4a7c15);
    return (size_t)((x >> 32) % SLOT_COUNT);
}

/* Steps a1 and a2: a free slot for id. */
static int slot_take(struct shmi_process_table *t, uint64_t id)
{
    struct process_table *table = table_of(t);
    size_t first = slot_first(id);
    for (size_t k = 0; k < SLOT_COUNT; k++) {
        size_t i = (first + k) % SLOT_COUNT;
        /* Relaxed: only a filter; the CAS below decides. */
        if (shmi_atomic_load_relaxed(&table->slot[i]) != 0)
            continue;
        int err = shmi_os_lock_try(t->fd, lock_byte(i), 1, true);
        if (err == EAGAIN)
            continue; /* an attacher or a detacher between its steps */
        if (err != 0)
            return err;
        uint64_t expected = 0;
        /* Seq_cst: step a2, ordered against the scans d2/d4 of detaching
         * processes (invariant 5). */
        if (shmi_atomic_cas_seq_cst(&table->slot[i], &expected, id)) {
            t->slot = i;
            t->identity = id;
            return 0;
        }
        shmi_os_lock_release(t->fd, lock_byte(i), 1);
    }
    return ENOSPC;
}

/* Clears the handle's slot if it holds `value`, and drops its lock unless
 * the caller closes the descriptor next (which drops it, one walk of the
 * kernel's lock list fewer). */
static void slot_give_back_as(struct shmi_process_table *t, uint64_t value,
                              bool unlock)
{
    if (t->slot == SHMI_PROCESS_NO_SLOT)
        return;
    uint64_t expected = value;
    /* Seq_cst: as every slot update (invariant 5); the lock is dropped
     * after it (invariant 1). */
    shmi_atomic_cas_seq_cst(&table_of(t)->slot[t->slot], &expected, 0);
    if (unlock)
        shmi_os_lock_release(t->fd, lock_byte(t->slot), 1);
    t->slot = SHMI_PROCESS_NO_SLOT;
    t->identity = 0;
}

static void slot_give_back(struct shmi_process_table *t, uint64_t value)
{
    slot_give_back_as(t, value, true);
}

/* Counts live entries; stops at the first one when first_only is set. */
static size_t live_count(const struct shmi_process_table *t, bool first_only)
{
    struct process_table *table = table_of(t);
    size_t live = 0;
    for (size_t i = 0; i < SLOT_COUNT; i++) {
        /* Seq_cst: steps d2/d4, ordered against a2 (invariant 5). */
        uint64_t cur = shmi_atomic_load_seq_cst(&table->slot[i]);
        if (cur == 0 || state_of(t, i, cur) != SHMI_ENTRY_LIVE)
            continue;
        live++;
        if (first_only)
            break;
    }
    return live;
}

/* A removal word left by a process killed while removing, or damaged. */
static bool removal_abandoned(const struct shmi_process_table *t, uint64_t word)
{
    uint64_t state = word & REMOVAL_STATE;
    if (word == 0 || word == REMOVAL_REMOVED)
        return false;
    if (state != REMOVAL_CLAIMED && state != REMOVAL_COMMITTED)
        return true;
    size_t i = (size_t)((word >> REMOVAL_SLOT_SHIFT) & REMOVAL_SLOT_MASK);
    if (i >= SLOT_COUNT)
        return true;
    /* Seq_cst, as every slot load of the removal protocol. */
    uint64_t cur = shmi_atomic_load_seq_cst(&table_of(t)->slot[i]);
    if ((cur & TAG_MASK) != TAG_LEAVING ||
        sequence_of(cur) != (word & SEQ_MASK))
        return true;
    return state_of(t, i, cur) != SHMI_ENTRY_LEAVING;
}

/* Step a3: 0, or ESTALE when the file is being removed or is removed. */
static int removal_check(const struct shmi_process_table *t)
{
    struct process_table *table = table_of(t);
    for (;;) {
        /* Seq_cst: a3, ordered against d3 of a detaching process
         * (invariant 5); reloaded after a failed CAS so that the decision
         * is always taken on a seq_cst read. */
        uint64_t word = shmi_atomic_load_seq_cst(&table->removal);
        uint64_t state = word & REMOVAL_STATE;
        if (word == 0)
            return 0;
        if (state != REMOVAL_CLAIMED && !removal_abandoned(t, word))
            return ESTALE; /* REMOVED, or COMMITTED by a live process */
        /* Seq_cst: cancels d3, or clears an abandoned value; d5 then
         * fails. */
        if (shmi_atomic_cas_seq_cst(&table->removal, &word, 0))
            return 0;
    }
}

int shmi_process_table_attach(struct shmi_process_table *t)
{
    if (t == NULL)
        return EINVAL;
    if (t->read_only)
        return EROFS;
    if (t->slot != SHMI_PROCESS_NO_SLOT)
        return EBUSY;
    int saved = errno;
    uint64_t id = new_identity(table_of(t));
    int err = slot_take(t, id);
    if (err == 0) {
        err = removal_check(t);
        if (err != 0)
            slot_give_back(t, id);
    }
    errno = saved;
    return err;
}

void shmi_process_table_detach(struct shmi_process_table *t)
{
    if (t == NULL || t->slot == SHMI_PROCESS_NO_SLOT)
        return;
    int saved = errno;
    slot_give_back(t, t->identity);
    errno = saved;
}

void shmi_process_table_leave(struct shmi_process_table *t)
{
    if (t == NULL || t->slot == SHMI_PROCESS_NO_SLOT)
        return;
    int saved = errno;
    slot_give_back_as(t, t->identity, false);
    errno = saved;
}

void shmi_process_table_mark_exited(struct shmi_process_table *t)
{
    if (t == NULL || t->slot == SHMI_PROCESS_NO_SLOT)
        return;
    uint64_t expected = t->identity;
    /* Seq_cst: as every slot update (invariant 5). The lock stays: the
     * kernel drops it when the process is gone. */
    shmi_atomic_cas_seq_cst(&table_of(t)->slot[t->slot], &expected,
                            t->identity | TAG_EXITED);
    t->slot = SHMI_PROCESS_NO_SLOT;
    t->identity = 0;
}

void shmi_process_table_forget(struct shmi_process_table *t)
{
    t->slot = SHMI_PROCESS_NO_SLOT;
    t->identity = 0;
}

uint64_t shmi_process_table_owner(const struct shmi_process_table *t)
{
    if (t == NULL || t->slot == SHMI_PROCESS_NO_SLOT)
        return 0;
    return owner_key(t->slot, t->identity);
}

/* Unlinks path if it still names the arena's file: the file at path must
 * hold `expected` in its removal word (a value only this process wrote,
 * in the file it has mapped). */
static int path_unlink_if_ours(const struct shmi_process_table *t,
                               const char *path, uint64_t expected)
{
    int fd;
    struct shmi_file_info info;
    int err = shmi_os_open_existing(path, true, &fd, &info);
    if (err != 0)
        return err;
    uint64_t word = 0;
    err = shmi_os_read_at(fd, &word, sizeof word, t->file_offset);
    shmi_os_close(fd);
    if (err == EBADMSG || (err == 0 && word != expected))
        return ESTALE; /* shorter, or another file */
    return err != 0 ? err : shmi_os_remove(path);
}

int shmi_process_table_detach_last(struct shmi_process_table *t,
                                   const char *path)
{
    if (t == NULL || path == NULL)
        return EINVAL;
    if (t->read_only)
        return EROFS;
    if (t->slot == SHMI_PROCESS_NO_SLOT)
        return 0; /* not entered: nothing vouches for a removal */
    int saved = errno;
    int err = 0;
    struct process_table *table = table_of(t);
    uint64_t leaving = t->identity | TAG_LEAVING;
    uint64_t expected = t->identity;
    /* Seq_cst: d1, ordered before this process's own scan d2 and against
     * the scans of other detaching processes (invariant 5). */
    if (!shmi_atomic_cas_seq_cst(&table->slot[t->slot], &expected, leaving))
        goto out; /* cleared by someone who took us for dead: damage */
    t->identity = leaving;
    if (live_count(t, true) > 0) /* d2 */
        goto out;
    uint64_t who =
        (uint64_t)t->slot << REMOVAL_SLOT_SHIFT | sequence_of(t->identity);
    uint64_t claimed = REMOVAL_CLAIMED | who;
    expected = 0;
    /* Seq_cst: d3, ordered against a3 (invariant 5); likewise when it
     * takes over an abandoned value. */
    if (!shmi_atomic_cas_seq_cst(&table->removal, &expected, claimed) &&
        (!removal_abandoned(t, expected) ||
         !shmi_atomic_cas_seq_cst(&table->removal, &expected, claimed)))
        goto out; /* another process is removing it, or it is removed */
    if (live_count(t, true) > 0) { /* d4 */
        expected = claimed;
        /* Seq_cst: undoes d3; fails harmlessly if an attacher did. */
        shmi_atomic_cas_seq_cst(&table->removal, &expected, 0);
        goto out;
    }
    uint64_t committed = REMOVAL_COMMITTED | who;
    expected = claimed;
    /* Seq_cst: d5, ordered against the cancelling CAS of a3. */
    if (!shmi_atomic_cas_seq_cst(&table->removal, &expected, committed))
        goto out; /* an attacher cancelled the removal */
    err = path_unlink_if_ours(t, path, committed); /* d6 */
    /* Seq_cst, as every access to the removal word (invariant 5). Only
     * this process changes COMMITTED|who while it lives. A path that no
     * longer names this file (ESTALE) leaves the file usable. */
    expected = committed;
    shmi_atomic_cas_seq_cst(&table->removal, &expected,
                            err == 0 ? REMOVAL_REMOVED : 0);
    if (err == ESTALE)
        err = 0;
out:
    slot_give_back(t, t->identity); /* d7 */
    errno = saved;
    return err;
}

size_t shmi_process_table_live(const struct shmi_process_table *t)
{
    if (t == NULL)
        return 0;
    int saved = errno;
    size_t live = live_count(t, false);
    errno = saved;
    return live;
}

size_t shmi_process_table_slots(void)
{
    return SLOT_COUNT;
}

void shmi_process_table_entry(const struct shmi_process_table *t, size_t slot,
                              struct shmi_process_info *out)
{
    int saved = errno;
    /* Seq_cst: a recovery's read of an entry, ordered as the scans of the
     * removal protocol; the probe after it decides (invariant 1). */
    uint64_t cur = shmi_atomic_load_seq_cst(&table_of(t)->slot[slot]);
    *out = (struct shmi_process_info){
        .slot = slot,
        .value = cur,
        .owner = cur ? owner_key(slot, cur) : 0,
        .pid = (uint32_t)(cur & PID_MASK),
        .sequence = sequence_of(cur),
        .state = state_of(t, slot, cur),
    };
    errno = saved;
}

bool shmi_process_table_clear(struct shmi_process_table *t,
                              const struct shmi_process_info *info)
{
    if (t == NULL || t->read_only || info->slot >= SLOT_COUNT ||
        (info->state != SHMI_ENTRY_DEAD && info->state != SHMI_ENTRY_EXITED))
        return false;
    uint64_t expected = info->value;
    /* Seq_cst as every slot update, though nothing pairs with it: the
     * word carries no data, and the value it removes is never written
     * again (invariant 2). */
    return shmi_atomic_cas_seq_cst(&table_of(t)->slot[info->slot], &expected,
                                   0);
}

size_t shmi_process_table_window(struct shmi_process_table *t, size_t count)
{
    /* Relaxed: the cursor only spreads the work; any value is correct. */
    uint64_t c = atomic_fetch_add_explicit(&table_of(t)->cursor, count,
                                           memory_order_relaxed);
    return (size_t)(c % SLOT_COUNT);
}

#define SWEEP_COUNT_BITS 24
#define SWEEP_COUNT_MASK ((UINT64_C(1) << SWEEP_COUNT_BITS) - 1)

bool shmi_process_table_take_sweep(struct shmi_process_table *t,
                                   uint64_t now_ms, uint64_t interval_ms)
{
    struct process_table *table = table_of(t);
    /* Relaxed: a stale counter only asks for one sweep too many; the
     * ticket's CAS decides who sweeps. */
    uint64_t count =
        shmi_atomic_load_relaxed(&table->counter) & SWEEP_COUNT_MASK;
    uint64_t ticket = shmi_atomic_load_relaxed(&table->sweep);
    uint64_t last_ms = ticket >> SWEEP_COUNT_BITS;
    /* now_ms < last_ms (a clock of another time namespace) reads as a
     * long time: the unsigned difference wraps. */
    if (ticket != 0 && (ticket & SWEEP_COUNT_MASK) == count &&
        now_ms - last_ms < interval_ms)
        return false;
    uint64_t next = now_ms << SWEEP_COUNT_BITS | count;
    /* Relaxed CAS: the ticket orders nothing; the sweep reads the slots
     * with its own loads and probes. */
    return atomic_compare_exchange_strong_explicit(
        &table->sweep, &ticket, next == 0 ? 1 : next, memory_order_relaxed,
        memory_order_relaxed);
}

void shmi_process_table_bind(struct shmi_process_table *t,
                             shmi_atomic_word *words, uint64_t file_offset,
                             int fd, bool read_only)
{
    t->words = words;
    t->file_offset = file_offset;
    t->fd = fd;
    t->slot = SHMI_PROCESS_NO_SLOT;
    t->identity = 0;
    t->read_only = read_only;
}

int shmi_process_table_foreach(const struct shmi_process_table *t,
                               int (*visit)(const struct shmi_process_info *,
                                            void *),
                               void *ctx)
{
    if (t == NULL || visit == NULL)
        return EINVAL;
    struct process_table *table = table_of(t);
    int saved = errno;
    int ret = 0;
    for (size_t i = 0; i < SLOT_COUNT && ret == 0; i++) {
        /* Relaxed: a filter; the entry is read again below. */
        if (shmi_atomic_load_relaxed(&table->slot[i]) == 0)
            continue;
        struct shmi_process_info info;
        shmi_process_table_entry(t, i, &info);
        if (info.state != SHMI_ENTRY_FREE)
            ret = visit(&info, ctx);
    }
    errno = saved;
    return ret;
}

bool shmi_process_table_owner_live(const struct shmi_process_table *t,
                                   uint64_t owner)
{
    size_t slot = (size_t)(owner & 0xffff);
    if (t == NULL || owner == 0 || slot >= SLOT_COUNT)
        return false;
    struct shmi_process_info info;
    shmi_process_table_entry(t, slot, &info);
    return info.owner == owner && info.state != SHMI_ENTRY_FREE &&
           info.state != SHMI_ENTRY_DEAD && info.state != SHMI_ENTRY_EXITED;
}
