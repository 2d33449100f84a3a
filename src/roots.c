/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Named roots: a table of (name, offset) pairs in the shared header, so
 * that a process that just attached can find the structures others built.
 *
 * Layout: SHMI_ROOTS_SIZE bytes, SHM_ROOT_COUNT slots of eight words.
 *
 *   word 0..6  the name, 7 bytes a word, NUL padded, tagged in the top byte:
 *
 *              63      56 55                                          0
 *              +---------+----+----+----+----+----+----+----+
 *              |  0x01   | b6 | b5 | b4 | b3 | b2 | b1 | b0 |   bytes 7w..7w+6
 *              +---------+----+----+----+----+----+----+----+
 *
 *              The tag makes every written word nonzero, so 0 means "not
 *              written yet". 7 words hold 49 bytes: a name of up to 47
 *              bytes always ends in NUL padding.
 *   word 7     the value, an offset; SHM_NULL until set.
 *
 * Finding or adding name N (slot_claim): visit the slots in index order;
 * in each, go through N's words in order 0..6: a word that is 0 is written
 * with CAS 0 -> N's word; a word equal to N's word (written by us or by
 * anyone else adding N, or a name sharing that part) is passed; a word that
 * differs means the slot belongs to another name, so go to the next slot.
 * The slot where all seven words match is N's. Looking up without adding
 * (slot_find) does the same reading only, and stops with "absent" at the
 * first word that is 0.
 *
 * Invariants:
 * 1. A name word is written once, 0 -> nonzero, and never changes again;
 *    names are never removed.
 * 2. Word w of a slot is written only by a process that found words
 *    0..w-1 equal to its own name, so the written words of a slot are
 *    always the first words of one name (the name the slot will hold).
 * 3. A process visits slot s+1 only after finding in slot s a word that
 *    differs from its name: so whenever word 0 of slot s+1 is written,
 *    word 0 of slot s is too, and the table fills from slot 0 upwards.
 * 4. Whether slot s differs from N is decided by words that never change
 *    (1), so every process adding N makes the same decision at every slot
 *    and they all end in the same slot: a name is never in two slots, even
 *    when many processes add it at once.
 * 5. A lookup of N may stop at the first slot that does not differ from N
 *    (fully written or not): by 4, N cannot be complete further up.
 *
 * Progress: each of the 64 * 7 name words is written at most once, and a
 * CAS on one fails only because that word was just written; so adding a
 * name takes at most 64 * 7 CAS and a lookup at most 64 * 7 loads whatever
 * other processes do (wait-free). The value word is a plain atomic store
 * or one CAS.
 *
 * Crashes: a process killed while adding a name leaves a slot whose first
 * words are written and the rest 0. Nothing waits for it: other names
 * differ from it at some written word and pass it (or, when a name starts
 * with the same words, complete it and take it), and the next process that
 * adds the same name completes it. What a crash can cost is that slot, for
 * as long as no process adds that name again.
 *
 * Memory order: the value is stored with release and read with acquire, so
 * whoever gets an offset from a root sees what was written into the
 * structure before it was published. Name words are written with release
 * and read with acquire for invariant 3: a lookup that reads word 0 of slot
 * s+1 then also sees word 0 of slot s written.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "shm_alloc.h"

#include "arena.h"
#include "atomics.h"
#include "shared_header.h"

#define NAME_WORDS 7
#define BYTES_PER_WORD 7
#define NAME_TAG ((uint64_t)0x01 << 56)

struct root_slot {
    shmi_atomic_word name[NAME_WORDS];
    shmi_atomic_word value;
};

_Static_assert(sizeof(struct root_slot) == 64, "a slot is eight words");
_Static_assert(SHM_ROOT_COUNT * sizeof(struct root_slot) == SHMI_ROOTS_SIZE,
               "the slots fill the roots part of the shared header");
_Static_assert(NAME_WORDS *BYTES_PER_WORD > SHM_ROOT_NAME_MAX,
               "a name of the longest length still ends in padding");

enum slot_visit {
    SLOT_NAME,  /* the slot holds the name (all words match) */
    SLOT_OTHER, /* a written word differs: the slot holds another name */
    SLOT_OPEN,  /* no word differs but one is not written yet */
};

static struct root_slot *roots_of(shm_arena *arena)
{
    uint8_t *header = shmi_shared_header(&arena->geo);
    return (struct root_slot *)(header + SHMI_ROOTS_OFFSET);
}

/* Checks the name and encodes it as the seven words a slot holds. */
static int name_encode(const char *name, uint64_t words[NAME_WORDS])
{
    if (name == NULL || name[0] == '\0')
        return EINVAL;
    size_t len = strnlen(name, SHM_ROOT_NAME_MAX + 1);
    if (len > SHM_ROOT_NAME_MAX)
        return ENAMETOOLONG;
    for (size_t w = 0; w < NAME_WORDS; w++) {
        uint64_t word = NAME_TAG;
        for (size_t b = 0; b < BYTES_PER_WORD; b++) {
            size_t i = w * BYTES_PER_WORD + b;
            if (i < len)
                word |= (uint64_t)(unsigned char)name[i] << (8 * b);
        }
        words[w] = word;
    }
    return 0;
}

/* Compares a slot with a name; when claim is set, writes the words that
 * are still 0 (invariant 2: in order, each only after the previous
 * matched). */
static enum slot_visit slot_visit(struct root_slot *slot,
                                  const uint64_t words[NAME_WORDS], bool claim)
{
    for (size_t w = 0; w < NAME_WORDS; w++) {
        /* Acquire: pairs with the release CAS below that wrote the word
         * (in this slot, or in a lower one: invariant 3). */
        uint64_t have = shmi_atomic_load_acquire(&slot->name[w]);
        if (have == 0) {
            if (!claim)
                return SLOT_OPEN;
            /* Release: pairs with the acquire loads above of processes
             * that read this word later. On failure the word another
             * process just wrote is only compared: going on to the next
             * slot after a mismatch needs no more than coherence on it. */
            if (shmi_atomic_cas_acq_rel(&slot->name[w], &have, words[w]))
                continue;
        }
        if (have != words[w])
            return SLOT_OTHER;
    }
    return SLOT_NAME;
}

/* The slot holding the name, adding the name when claim is set; NULL with
 * ENOENT (absent) or ENOSPC (full) in *err otherwise. */
static struct root_slot *slot_get(shm_arena *arena,
                                  const uint64_t words[NAME_WORDS], bool claim,
                                  int *err)
{
    struct root_slot *slots = roots_of(arena);
    for (size_t s = 0; s < SHM_ROOT_COUNT; s++) {
        switch (slot_visit(&slots[s], words, claim)) {
        case SLOT_NAME:
            return &slots[s];
        case SLOT_OTHER:
            continue;
        case SLOT_OPEN:
            *err = ENOENT; /* invariant 5 */
            return NULL;
        }
    }
    *err = claim ? ENOSPC : ENOENT;
    return NULL;
}

/* Checks that the arena may be written and off is an offset in it. */
static int value_check(shm_arena *arena, shm_offt off)
{
    if (arena->read_only)
        return EROFS;
    return off >= arena->map_size ? EINVAL : 0;
}

shm_offt shm_arena_root_get(shm_arena *arena, const char *name)
{
    uint64_t words[NAME_WORDS];
    int err = arena == NULL ? EINVAL : name_encode(name, words);
    struct root_slot *slot = NULL;
    if (err == 0)
        slot = slot_get(arena, words, false, &err);
    if (slot == NULL) {
        errno = err;
        return SHM_NULL;
    }
    /* Acquire: pairs with the release store in shm_arena_root_set and the
     * CAS in shm_arena_root_cas that published the offset. */
    shm_offt off = shmi_atomic_load_acquire(&slot->value);
    if (off == SHM_NULL)
        errno = ENOENT;
    return off;
}

int shm_arena_root_set(shm_arena *arena, const char *name, shm_offt off)
{
    uint64_t words[NAME_WORDS];
    int err = arena == NULL ? EINVAL : name_encode(name, words);
    if (err == 0)
        err = value_check(arena, off);
    if (err == 0) {
        struct root_slot *slot = slot_get(arena, words, off != SHM_NULL, &err);
        if (slot != NULL) {
            /* Release: pairs with the acquire loads in shm_arena_root_get
             * and shm_arena_root_cas: what the caller wrote before
             * publishing off is seen by whoever reads off. */
            shmi_atomic_store_release(&slot->value, off);
        } else if (err == ENOENT) {
            err = 0; /* SHM_NULL under a name that is not there: done */
        }
    }
    if (err != 0)
        errno = err;
    return err;
}

bool shm_arena_root_cas(shm_arena *arena, const char *name, shm_offt expected,
                        shm_offt desired)
{
    uint64_t words[NAME_WORDS];
    int err = arena == NULL ? EINVAL : name_encode(name, words);
    if (err == 0)
        err = value_check(arena, desired);
    struct root_slot *slot = NULL;
    if (err == 0) {
        /* A name that is absent holds SHM_NULL: add it only when that is
         * what the caller expects and something is to be stored. */
        bool claim = expected == SHM_NULL && desired != SHM_NULL;
        slot = slot_get(arena, words, claim, &err);
        if (slot == NULL && err == ENOENT) {
            if (expected == SHM_NULL)
                return true; /* SHM_NULL replaced by SHM_NULL */
            err = EAGAIN;
        }
    }
    if (slot == NULL) {
        errno = err;
        return false;
    }
    if (expected == desired) {
        /* Nothing to write; report whether the value is the expected one,
         * with the same acquire as shm_arena_root_get. */
        if (shmi_atomic_load_acquire(&slot->value) == expected)
            return true;
        errno = EAGAIN;
        return false;
    }
    /* Release: pairs with the acquire loads of later readers of desired.
     * Acquire: pairs with the release of the store or CAS that wrote the
     * value replaced, so the caller may take over what it published. A
     * failure reads nothing through the value (the caller reads it again
     * with shm_root_get). */
    if (shmi_atomic_cas_acq_rel(&slot->value, &expected, desired))
        return true;
    errno = EAGAIN;
    return false;
}
