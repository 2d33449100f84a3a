/*
 * The table of attached processes: who has the arena open, so that dead
 * processes are told from live ones, statistics can count them, and the
 * last process to leave may remove the file.
 *
 * Layout: SHMI_PROCESS_TABLE_SIZE bytes of words.
 *
 *   word 0        the removal word (below)
 *   word 1..7     reserved, 0
 *   word 8..      one slot per attachment, 0 when free, else an identity:
 *
 *      63 62 61                                   22 21              0
 *     +-----+---------------------------------------+-----------------+
 *     | tag |  start time (low 40 bits, clock ticks) |       pid       |
 *     +-----+---------------------------------------+-----------------+
 *
 *   The start time is field 22 of /proc/PID/stat: a pid reused by another
 *   process comes with another start time. 0 when /proc could not be read
 *   (then only the pid is checked). The tag is 0 in a slot.
 *
 * A slot is taken with one CAS 0 -> identity and given back with one CAS
 * identity -> 0. A process attached twice holds two slots with the same
 * identity; they are interchangeable, so detaching clears any one of them.
 * The handle counts the entries it took (process_entries), so that a
 * handle that was not entered (a full table) gives back none, and a
 * forked child closing its parent's handle finds no slot of its own.
 *
 * An entry is dead when kill(pid, 0) fails with ESRCH, when the process is
 * a zombie, or when its start time differs from the recorded one. A dead
 * entry is cleared with CAS identity -> 0 by whoever finds it (a new
 * process that finds the table full, the arena layer when a process
 * attaches, a last process leaving). Counting and listing never clear
 * anything. The CAS clears only
 * that exact value, which no live process holds, so clearing never
 * removes a live entry.
 *
 * Removing the file when the last process detaches. The removal word:
 *
 *     0                  the file is in use
 *     CLAIMED | id       process id found no live entry and may remove it
 *     COMMITTED | id     process id is removing it
 *     REMOVED            the path no longer names this file
 *
 *   A detaching process D:                A process A attaching:
 *   d1. clears its slot                   a1. takes a slot
 *   d2. a live entry left? stop           a2. reads the removal word:
 *   d3. CAS 0 (or an abandoned value)         0: attached.
 *       -> CLAIMED|D, or stop
 *   d4. a live entry now? CAS back to 0,      CLAIMED: CAS it to 0 (cancel
 *       stop                                    the removal), attached.
 *   d5. CAS CLAIMED|D -> COMMITTED|D, or      COMMITTED by a live process,
 *       stop (an attacher cancelled)            or REMOVED: clear the slot,
 *   d6. unlink the path if it still holds       fail with ESTALE (the opener
 *       this file; REMOVED on success,          opens the path again and
 *       0 on failure                            gets a new file).
 *                                             Abandoned: CAS it to 0,
 *                                               attached.
 *
 *   Abandoned: CLAIMED or COMMITTED by a dead process (killed while
 *   removing), or a value no process writes (a damaged file).
 *
 * Invariants:
 * 1. Slots hold 0 or the identity of a process that attached and has not
 *    detached; a dead process's identity is never written again.
 * 2. The file is unlinked only by the one process whose CAS d5 succeeded,
 *    after d4 found no live entry.
 * 3. d1, a1, d3/d4 and a2 are sequentially consistent (slot CAS, slot
 *    loads, removal-word operations): in their single total order either
 *    A's slot (a1) comes before D's scan (d4), which then sees it and
 *    undoes the claim, or D's claim (d3) comes before a2, which then sees
 *    CLAIMED and cancels it, or COMMITTED and backs out. So an attacher
 *    never stays attached to a file that is unlinked under it, except in
 *    the limit below. Two detaching processes likewise see each other's
 *    cleared slots: the last one to clear finds the table empty.
 *
 * Progress: every step is one CAS or load; a failed CAS means another
 * process changed that word. Nobody waits: an attacher that finds a
 * removal in progress either cancels it or reports ESTALE at once.
 *
 * Limits: a process killed between d5 and d6 leaves COMMITTED with a dead
 * id; the next process takes it for "not removed" and clears it. If the
 * process was killed after unlinking but before writing REMOVED, a
 * process that had opened the path before the unlink and attaches after
 * the kill stays alone on the removed file. Pids are compared in the pid
 * namespace of the caller: all processes sharing an arena must share one.
 * A read-only attachment writes nothing, so it is not in the table. A
 * forked child shares its parent's mapping but not its entry.
 * /proc must be mounted for pid reuse to be recognised.
 */
#include "process_table.h"

#include <errno.h>
#include <stddef.h>

#include "os.h"
#include "shared_header.h"

#define HEADER_WORDS 8
#define SLOT_COUNT (SHMI_PROCESS_TABLE_SIZE / 8 - HEADER_WORDS)

#define PID_BITS 22
#define START_BITS 40
#define PID_MASK (((uint64_t)1 << PID_BITS) - 1)
#define START_MASK (((uint64_t)1 << START_BITS) - 1)
#define ID_MASK (((uint64_t)1 << (PID_BITS + START_BITS)) - 1)

#define REMOVAL_CLAIMED ((uint64_t)1 << 62)
#define REMOVAL_COMMITTED ((uint64_t)2 << 62)
#define REMOVAL_REMOVED ((uint64_t)3 << 62)
#define REMOVAL_STATE ((uint64_t)3 << 62)

struct process_table {
    shmi_atomic_word removal;
    shmi_atomic_word damage_count; /* tree.c's, SHMI_DAMAGE_COUNT_OFFSET */
    shmi_atomic_word reserved[HEADER_WORDS - 2];
    shmi_atomic_word slot[SLOT_COUNT];
};

_Static_assert(sizeof(struct process_table) == SHMI_PROCESS_TABLE_SIZE,
               "the table fills its part of the shared header");
_Static_assert(offsetof(struct process_table, damage_count) ==
                   SHMI_DAMAGE_COUNT_OFFSET - SHMI_PROCESS_TABLE_OFFSET,
               "the damage count sits where shared_header.h says");

static struct process_table *table_of(const struct shmi_process_table *t)
{
    return (struct process_table *)t->words;
}

static int self_identity(uint64_t *id)
{
    uint32_t pid = shmi_os_pid();
    if ((uint64_t)pid > PID_MASK)
        return EOVERFLOW;
    char state;
    uint64_t start = 0;
    if (shmi_os_process_stat(pid, &state, &start) != 0)
        start = 0;
    *id = (uint64_t)pid | (start & START_MASK) << PID_BITS;
    return 0;
}

static bool identity_live(uint64_t id)
{
    uint32_t pid = (uint32_t)(id & PID_MASK);
    uint64_t start = (id >> PID_BITS) & START_MASK;
    if (pid == 0)
        return false; /* not an identity we write: clear it */
    int probe = shmi_os_process_signal_probe(pid);
    bool signalable = probe == 0;
    if (probe == ESRCH)
        return false;
    char state = '\0';
    uint64_t now = 0;
    int err = shmi_os_process_stat(pid, &state, &now);
    if (err == ENOENT && signalable)
        return false; /* exited since kill() */
    if (err != 0)
        return true; /* cannot tell (another user's process under
                        hidepid, no /proc): never clear what may live */
    if (state == 'Z' || state == 'X')
        return false; /* exited, not yet reaped: its mappings are gone */
    return start == 0 || (now & START_MASK) == start;
}

static size_t slot_first(uint64_t id)
{
    return (size_t)((id & PID_MASK) % SLOT_COUNT);
}

/* Clears a dead entry. Seq_cst as every slot update, though nothing pairs
 * with it: the word carries no data, and the value it removes is never
 * written again (invariant 1). */
static bool slot_clear_dead(struct process_table *table, size_t i,
                            uint64_t dead)
{
    return shmi_atomic_cas_seq_cst(&table->slot[i], &dead, 0);
}

/* Takes a slot for id: first a free one, then one of a dead process. */
static int slot_take(struct process_table *table, uint64_t id)
{
    size_t first = slot_first(id);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t k = 0; k < SLOT_COUNT; k++) {
            size_t i = (first + k) % SLOT_COUNT;
            /* Relaxed: only a hint; the CAS below decides. */
            uint64_t cur = shmi_atomic_load_relaxed(&table->slot[i]);
            if (cur != 0) {
                if (pass == 0 || identity_live(cur))
                    continue;
                slot_clear_dead(table, i, cur);
            }
            uint64_t expected = 0;
            /* Seq_cst: step a1, ordered against the scans d2/d4 of
             * detaching processes (invariant 3). */
            if (shmi_atomic_cas_seq_cst(&table->slot[i], &expected, id))
                return 0;
        }
    }
    return ENOSPC;
}

/* Gives back one slot holding id; false when there is none. */
static bool slot_give_back(struct process_table *table, uint64_t id)
{
    size_t first = slot_first(id);
    for (size_t k = 0; k < SLOT_COUNT; k++) {
        size_t i = (first + k) % SLOT_COUNT;
        uint64_t expected = id;
        /* Relaxed load: only a filter for the CAS. Seq_cst CAS: step d1,
         * ordered before this process's own scan d2 and against the scans
         * of other detaching processes (invariant 3). */
        if (shmi_atomic_load_relaxed(&table->slot[i]) == id &&
            shmi_atomic_cas_seq_cst(&table->slot[i], &expected, 0))
            return true;
    }
    return false;
}

/* Counts live entries, clearing dead ones when clear is set (adding the
 * number cleared here to *cleared, when given); stops at the first live
 * one when first_only is set. */
static size_t live_count(struct process_table *table, bool first_only,
                         bool clear, size_t *cleared)
{
    size_t live = 0;
    for (size_t i = 0; i < SLOT_COUNT; i++) {
        /* Seq_cst: steps d2/d4, ordered against a1 (invariant 3). */
        uint64_t cur = shmi_atomic_load_seq_cst(&table->slot[i]);
        if (cur == 0)
            continue;
        if (!identity_live(cur)) {
            if (clear && slot_clear_dead(table, i, cur) && cleared)
                (*cleared)++;
            continue;
        }
        live++;
        if (first_only)
            break;
    }
    return live;
}

/* A removal word left by a process killed while removing, or damaged. */
static bool removal_abandoned(uint64_t word)
{
    uint64_t state = word & REMOVAL_STATE;
    if (word == 0 || word == REMOVAL_REMOVED)
        return false;
    if (state == REMOVAL_CLAIMED || state == REMOVAL_COMMITTED)
        return !identity_live(word & ID_MASK);
    return true;
}

/* Step a2: 0, or ESTALE when the file is being removed or is removed. */
static int removal_check(struct process_table *table)
{
    for (;;) {
        /* Seq_cst: a2, ordered against d3 of a detaching process
         * (invariant 3); reloaded after a failed CAS so that the decision
         * is always taken on a seq_cst read. */
        uint64_t word = shmi_atomic_load_seq_cst(&table->removal);
        uint64_t state = word & REMOVAL_STATE;
        if (word == 0)
            return 0;
        if (state != REMOVAL_CLAIMED && !removal_abandoned(word))
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
    int saved = errno;
    uint64_t id;
    int err = self_identity(&id);
    struct process_table *table = table_of(t);
    if (err == 0)
        err = slot_take(table, id);
    if (err == 0) {
        err = removal_check(table);
        if (err != 0)
            slot_give_back(table, id);
        else
            t->entries++;
    }
    errno = saved;
    return err;
}

void shmi_process_table_detach(struct shmi_process_table *t)
{
    if (t == NULL || t->entries == 0)
        return;
    t->entries--;
    int saved = errno;
    uint64_t id;
    if (self_identity(&id) == 0)
        slot_give_back(table_of(t), id);
    errno = saved;
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
    int saved = errno;
    struct process_table *table = table_of(t);
    uint64_t id;
    int err = self_identity(&id);
    if (err != 0)
        goto out;
    if (t->entries > 0) { /* d1 */
        t->entries--;
        slot_give_back(table, id);
    }
    if (live_count(table, true, true, NULL) > 0) /* d2 */
        goto out;
    uint64_t claimed = REMOVAL_CLAIMED | id;
    uint64_t expected = 0;
    /* Seq_cst: d3, ordered against a2 (invariant 3); likewise when it
     * takes over an abandoned value. */
    if (!shmi_atomic_cas_seq_cst(&table->removal, &expected, claimed) &&
        (!removal_abandoned(expected) ||
         !shmi_atomic_cas_seq_cst(&table->removal, &expected, claimed)))
        goto out; /* another process is removing it, or it is removed */
    if (live_count(table, true, true, NULL) > 0) { /* d4 */
        expected = claimed;
        /* Seq_cst: undoes d3; fails harmlessly if an attacher did. */
        shmi_atomic_cas_seq_cst(&table->removal, &expected, 0);
        goto out;
    }
    uint64_t committed = REMOVAL_COMMITTED | id;
    expected = claimed;
    /* Seq_cst: d5, ordered against the cancelling CAS of a2. */
    if (!shmi_atomic_cas_seq_cst(&table->removal, &expected, committed))
        goto out; /* an attacher cancelled the removal */
    err = path_unlink_if_ours(t, path, committed); /* d6 */
    /* Seq_cst, as every access to the removal word (invariant 3). Only
     * this process changes COMMITTED|id while it lives. A path that no
     * longer names this file (ESTALE) leaves the file usable. */
    expected = committed;
    shmi_atomic_cas_seq_cst(&table->removal, &expected,
                            err == 0 ? REMOVAL_REMOVED : 0);
    if (err == ESTALE)
        err = 0;
out:
    errno = saved;
    return err;
}

size_t shmi_process_table_live(const struct shmi_process_table *t)
{
    if (t == NULL)
        return 0;
    int saved = errno;
    size_t live = live_count(table_of(t), false, false, NULL);
    errno = saved;
    return live;
}

size_t shmi_process_table_clear_dead(struct shmi_process_table *t)
{
    if (t == NULL || t->read_only)
        return 0;
    int saved = errno;
    size_t cleared = 0;
    live_count(table_of(t), false, true, &cleared);
    errno = saved;
    return cleared;
}

void shmi_process_table_bind(struct shmi_process_table *t,
                             shmi_atomic_word *words, uint64_t file_offset,
                             bool read_only)
{
    t->words = words;
    t->file_offset = file_offset;
    t->entries = 0;
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
        /* Relaxed: a snapshot for display; nothing is read through it. */
        uint64_t cur = shmi_atomic_load_relaxed(&table->slot[i]);
        if (cur == 0)
            continue;
        struct shmi_process_info info = {
            .pid = (uint32_t)(cur & PID_MASK),
            .start_time = (cur >> PID_BITS) & START_MASK,
            .live = identity_live(cur),
        };
        ret = visit(&info, ctx);
    }
    errno = saved;
    return ret;
}
