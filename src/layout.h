/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The arena file's layout: where each part starts, computed from the
 * capacity alone, and the superblock that records it. See layout.c.
 */
#ifndef SHM_LAYOUT_H
#define SHM_LAYOUT_H

#include <stdint.h>

#include "config.h"
#include "word.h"

/* 2: lock bytes in the first page, attachment identities with a
 * sequence number, thread records in the shared header.
 * 3: thread caches after the shared header. */
#define SHMI_FORMAT_VERSION 3u
#define SHMI_MAGIC "SHMALLOC"
#define SHMI_MAX_TIERS 6

/* The tiers of bitmap words, the first allocatable row of tier 0 and the
 * bytes a word of tier t spans: fixed by MIN and MAX alone, whatever the
 * capacity (layout.c), so the fast paths know them at compile time. The
 * last tier's word always spans 32 chunks of 2^MIN. */
#define SHMI_LAYOUT_TIERS                                                      \
    (SHMI_CLASSES <= SHMI_WORD_ROWS ? 1u : 1u + (SHMI_CLASSES - 6u + 4u) / 5u)
#define SHMI_LAYOUT_TOP_FIRST_ROW                                              \
    (SHMI_WORD_ROWS - (SHMI_CLASSES - 5u * (SHMI_LAYOUT_TIERS - 1u)))
#define SHMI_LAYOUT_SPAN_LOG2(t)                                               \
    (SHM_MAX_ALLOC_POW2 + SHMI_LAYOUT_TOP_FIRST_ROW - 5u * (t))
_Static_assert(SHMI_LAYOUT_TIERS <= SHMI_MAX_TIERS, "tiers fit the layout");
_Static_assert(SHMI_LAYOUT_SPAN_LOG2(SHMI_LAYOUT_TIERS - 1) ==
                   SHM_MIN_ALLOC_POW2 + SHMI_WORD_BOTTOM_ROW,
               "the last tier's bottom row is 2^MIN");
#define SHMI_SHARED_HEADER_SIZE 49152u
/* Bytes of the first page that attachments lock (fcntl open-file-description
 * locks, which never touch the bytes: the page stays read-only). Every
 * attachment holds a read lock on SHMI_LOCK_ATTACH_AT while attached, and a
 * reset takes a write lock there (arena_open.c); the attachment in slot i of
 * the process table holds a write lock on SHMI_LOCK_SLOTS_AT + i
 * (process_table.c). The superblock is shorter than SHMI_LOCK_SLOTS_AT, but
 * that does not matter: the locks and the bytes are independent. */
#define SHMI_LOCK_ATTACH_AT 0u
#define SHMI_LOCK_SLOTS_AT 64u
/* Thread caches (thread_cache.c): one per thread record that can have
 * one, each a word for a flush in progress, then a count and
 * SHM_THREAD_CACHE_CHUNKS offsets per cached class, in whole cache lines. The
 * file has at most one per thread record, and at most as many as keep them
 * within 1% of the capacity (at least 4). */
#define SHMI_TCACHE_SLOT_SIZE                                                  \
    (SHMI_TCACHE_CLASSES == 0                                                  \
         ? 0                                                                   \
         : (8 + SHMI_TCACHE_CLASSES * (SHM_THREAD_CACHE_CHUNKS + 1) * 8 +      \
            63) /                                                              \
               64 * 64)
#define SHMI_TCACHE_MIN_SLOTS 4u
#define SHMI_TCACHE_MAX_SLOTS 512u
/* Largest capacity a file may claim (16 TiB): keeps every computed size
 * far from overflow whatever a damaged superblock says. */
#define SHMI_MAX_CAPACITY (UINT64_C(1) << 44)

struct shmi_layout {
    uint64_t page_size;
    uint64_t capacity; /* bytes of the data region, a multiple of granule */
    unsigned tiers;
    /* Words of tier t cover 2^span_log2[t] bytes of data each; tier 0's
     * words start allocating at row top_first_row, lower tiers at row 1. */
    unsigned span_log2[SHMI_MAX_TIERS];
    unsigned top_first_row;
    uint64_t tier_words[SHMI_MAX_TIERS];
    uint64_t tier_first_word[SHMI_MAX_TIERS];
    uint64_t total_words;
    /* Where each size class lives: tier and row of its nodes. */
    unsigned class_tier[SHMI_CLASSES];
    unsigned class_row[SHMI_CLASSES];
    /* Hint indexes, as word offsets within the index region: one per
     * (tier, allocatable row), and for lower tiers one of empty words. */
    uint64_t hint_index_at[SHMI_MAX_TIERS][SHMI_WORD_ROWS];
    uint64_t empty_index_at[SHMI_MAX_TIERS];
    uint64_t index_words;
    /* Byte offsets in the file. */
    uint64_t header_offset; /* shared header, SHMI_SHARED_HEADER_SIZE */
    uint64_t tcache_offset; /* thread caches, tcache_slots of them */
    uint64_t tcache_slots;
    uint64_t index_offset;
    uint64_t words_offset;
    /* Continuation bitmap (SHM_TRIM, tree.c): one bit per 2^MIN bytes of
     * capacity, cont_words 64-bit words after the bitmap words. */
    uint64_t cont_offset;
    uint64_t cont_words;
    uint64_t metadata_end;
    uint64_t data_offset; /* aligned to 2^MAX and to the page */
    uint64_t file_size;
};

/* The superblock: the first page of the file, written once before the
 * file is published and mapped read-only afterwards. Little or big endian
 * as the machine is (the fingerprint says which). */
struct shmi_superblock {
    char magic[8]; /* SHMI_MAGIC, without terminator */
    uint32_t version;
    uint32_t page_size;
    uint64_t fingerprint;
    uint64_t capacity;
    uint64_t file_size;
    uint64_t data_offset;
    uint64_t header_offset;
    uint64_t index_offset;
    uint64_t words_offset;
    uint32_t min_alloc_pow2;
    uint32_t max_alloc_pow2;
    uint32_t creator_uid;
    uint32_t flags;
    uint64_t creator_base; /* address the creator mapped the file at */
    uint64_t created_ns;   /* CLOCK_REALTIME at creation */
};

/* Words on one level of a hint index (hint_index.c) whose level below
 * has `bits` bits: one bit per word of that level. */
static inline uint64_t shmi_layout_index_level_words(uint64_t bits)
{
    return (bits + 63) / 64;
}

/* Words of storage a hint index over `bits` bits needs, all its levels
 * together (0 for 0 bits). */
uint64_t shmi_layout_index_words(uint64_t bits);

/* Alignment of the data region in the file and of every mapping of it:
 * 2^MAX or the page, whichever is larger, so that every chunk's address
 * is aligned to its size. */
uint64_t shmi_layout_data_alignment(uint64_t page_size);

/* Smallest unit of capacity: the page or the smallest chunk. */
uint64_t shmi_layout_granule(uint64_t page_size);

/* `requested` (0: the configured default) rounded up to the granule;
 * 0 when it exceeds SHMI_MAX_CAPACITY. */
uint64_t shmi_layout_round_capacity(uint64_t requested, uint64_t page_size);

/* Fills `out` for a capacity that is a nonzero multiple of the granule,
 * at most SHMI_MAX_CAPACITY. Returns 0 or EINVAL. */
int shmi_layout_compute(uint64_t capacity, uint64_t page_size,
                        struct shmi_layout *out);

/* Hash of every build option that changes the layout. */
uint64_t shmi_layout_fingerprint(uint64_t page_size);

void shmi_superblock_fill(struct shmi_superblock *sb,
                          const struct shmi_layout *layout, uint32_t uid,
                          uint64_t creator_base, uint64_t created_ns);

/* Checks a superblock read from a file of `file_size` bytes against this
 * build, recomputes the layout from its capacity and checks every stored
 * offset against it. Returns 0 and fills `out`, EPROTO (not ours: magic,
 * version, fingerprint, page size, size range) or EBADMSG (ours but
 * inconsistent, or larger than the file). */
int shmi_superblock_validate(const struct shmi_superblock *sb,
                             uint64_t file_size, uint64_t page_size,
                             struct shmi_layout *out);

#endif /* SHM_LAYOUT_H */
