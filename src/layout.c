/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * File layout.
 *
 *   offset 0        superblock (one page, read-only once published)
 *   header_offset   shared header: named roots, process table, records
 *   tcache_offset   thread caches (thread_cache.c), tcache_slots of them
 *   index_offset    hint indexes (hint_index.c), 64-bit words
 *   words_offset    bitmap words, tier 0 first, then tier 1, ...
 *   cont_offset     continuation bitmap (SHM_TRIM): one bit per 2^MIN
 *                   bytes of data, set at the start of every piece of a
 *                   trimmed allocation but its first (tree.c)
 *   data_offset     capacity bytes of chunks, aligned to 2^MAX
 *
 * Trees. The data region is cut into blocks of 2^MAX bytes, each the root
 * of a buddy tree with L = MAX - MIN + 1 levels. The trees are stored in
 * 6-row bitmap words (word.h) arranged in tiers. A tier-0 word holds the
 * top h0 levels of 2^(6-h0) neighbouring blocks (its rows above
 * top_first_row are unused); every bottom-row node of a word of tier t
 * is also the root (node 1) of one word of tier t+1, which adds 5 levels.
 * So L = h0 + 5 (tiers - 1) with 1 <= h0 <= 6. With the default 32 B to
 * 4 KiB (L = 8): tier 0 holds 4 KiB, 2 KiB and 1 KiB nodes of 8 blocks
 * per word, tier 1 the 1 KiB node's subtree down to 32 B.
 *
 * Only the words that cover some byte below the capacity exist; nodes past
 * the capacity are pinned (permanently allocated) when the file is made.
 *
 * Everything here is computed from the capacity and this build's
 * constants, so a superblock is validated by recomputing its layout and
 * comparing, never by trusting a stored offset.
 */
#include "layout.h"

#include <errno.h>
#include <string.h>

static uint64_t align_up(uint64_t value, uint64_t alignment)
{
    return (value + alignment - 1) / alignment * alignment;
}

uint64_t shmi_layout_index_words(uint64_t bits)
{
    uint64_t total = 0;
    while (bits > 0) {
        uint64_t words = shmi_layout_index_level_words(bits);
        total += words;
        if (words == 1)
            break;
        bits = words;
    }
    return total;
}

uint64_t shmi_layout_data_alignment(uint64_t page_size)
{
    uint64_t block = UINT64_C(1) << SHM_MAX_ALLOC_POW2;
    return block > page_size ? block : page_size;
}

uint64_t shmi_layout_granule(uint64_t page_size)
{
    uint64_t min_chunk = UINT64_C(1) << SHM_MIN_ALLOC_POW2;
    return page_size > min_chunk ? page_size : min_chunk;
}

uint64_t shmi_layout_round_capacity(uint64_t requested, uint64_t page_size)
{
    if (requested == 0)
        requested = SHM_DEFAULT_CAPACITY;
    if (requested > SHMI_MAX_CAPACITY)
        return 0;
    return align_up(requested, shmi_layout_granule(page_size));
}

/* Thread caches a file of `capacity` bytes has: none without them, else
 * as many as fit 1% of the capacity, between SHMI_TCACHE_MIN_SLOTS and
 * SHMI_TCACHE_MAX_SLOTS (threads whose record has no cache use none). */
static uint64_t tcache_slots_for(uint64_t capacity)
{
    if (SHMI_TCACHE_CLASSES == 0)
        return 0;
    /* The divisor is never 0: a slot has a size when there are caches. */
    uint64_t slots =
        capacity / 100 / (SHMI_TCACHE_SLOT_SIZE + (SHMI_TCACHE_SLOT_SIZE == 0));
    if (slots < SHMI_TCACHE_MIN_SLOTS)
        return SHMI_TCACHE_MIN_SLOTS;
    return slots > SHMI_TCACHE_MAX_SLOTS ? SHMI_TCACHE_MAX_SLOTS : slots;
}

static void place_classes(struct shmi_layout *l, unsigned top_levels)
{
    for (unsigned level = 0; level < SHMI_CLASSES; level++) {
        /* level 0 is 2^MAX; class index counts from 2^MIN */
        unsigned class_index = SHMI_CLASSES - 1 - level;
        if (level < top_levels) {
            l->class_tier[class_index] = 0;
            l->class_row[class_index] = l->top_first_row + level;
        } else {
            unsigned below = level - top_levels;
            l->class_tier[class_index] = 1 + below / 5;
            l->class_row[class_index] = 1 + below % 5;
        }
    }
}

int shmi_layout_compute(uint64_t capacity, uint64_t page_size,
                        struct shmi_layout *out)
{
    struct shmi_layout l;
    memset(&l, 0, sizeof l);
    if (page_size < 4096 || (page_size & (page_size - 1)) ||
        page_size > (UINT64_C(1) << 20))
        return EINVAL;
    uint64_t granule = shmi_layout_granule(page_size);
    if (capacity == 0 || capacity > SHMI_MAX_CAPACITY || capacity % granule)
        return EINVAL;
    l.page_size = page_size;
    l.capacity = capacity;

    l.tiers = SHMI_LAYOUT_TIERS;
    l.top_first_row = SHMI_LAYOUT_TOP_FIRST_ROW;
    place_classes(&l, SHMI_WORD_ROWS - l.top_first_row);

    uint64_t first_word = 0;
    for (unsigned t = 0; t < l.tiers; t++) {
        l.span_log2[t] = SHMI_LAYOUT_SPAN_LOG2(t);
        uint64_t span = UINT64_C(1) << l.span_log2[t];
        l.tier_words[t] = (capacity + span - 1) / span;
        l.tier_first_word[t] = first_word;
        first_word += l.tier_words[t];
    }
    l.total_words = first_word;

    uint64_t index_word = 0;
    for (unsigned t = 0; t < l.tiers; t++) {
        unsigned first_row = t == 0 ? l.top_first_row : 1;
        uint64_t words = shmi_layout_index_words(l.tier_words[t]);
        for (unsigned row = first_row; row < SHMI_WORD_ROWS; row++) {
            l.hint_index_at[t][row] = index_word;
            index_word += words;
        }
        if (t > 0) {
            l.empty_index_at[t] = index_word;
            index_word += words;
        }
    }
    l.index_words = index_word;

    l.header_offset = page_size;
    l.tcache_offset = l.header_offset + SHMI_SHARED_HEADER_SIZE;
    l.tcache_slots = tcache_slots_for(capacity);
    l.index_offset = align_up(
        l.tcache_offset + l.tcache_slots * SHMI_TCACHE_SLOT_SIZE, page_size);
    l.words_offset = align_up(l.index_offset + 8 * l.index_words, 64);
    l.cont_offset = l.words_offset + 8 * l.total_words;
    l.cont_words = SHM_TRIM ? ((capacity >> SHM_MIN_ALLOC_POW2) + 63) / 64 : 0;
    l.metadata_end = l.cont_offset + 8 * l.cont_words;
    l.data_offset =
        align_up(l.metadata_end, shmi_layout_data_alignment(page_size));
    l.file_size = l.data_offset + capacity;
    *out = l;
    return 0;
}

uint64_t shmi_layout_fingerprint(uint64_t page_size)
{
    const uint32_t byte_order = 0x01020304u;
    uint64_t facts[] = {
        SHM_MIN_ALLOC_POW2,
        SHM_MAX_ALLOC_POW2,
        sizeof(void *),
        sizeof(uint64_t),
        page_size,
        SHMI_SHARED_HEADER_SIZE,
        SHMI_WORD_ROWS,
        SHMI_WORD_SLOTS,
        sizeof(struct shmi_superblock),
        SHMI_TCACHE_CLASSES,
        SHM_THREAD_CACHE_CHUNKS,
        SHMI_TCACHE_SLOT_SIZE,
    };
    /* FNV-1a over the facts and the byte order as stored in memory. */
    uint64_t hash = UINT64_C(14695981039346656037);
    const unsigned char *bytes = (const unsigned char *)facts;
    for (size_t i = 0; i < sizeof facts; i++)
        /* The analyzer does not follow byte reads of a uint64_t array it
         * saw initialised whole. */
        /* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult) */
        hash = (hash ^ bytes[i]) * UINT64_C(1099511628211);
    bytes = (const unsigned char *)&byte_order;
    for (size_t i = 0; i < sizeof byte_order; i++)
        hash = (hash ^ bytes[i]) * UINT64_C(1099511628211);
    /* Trimming adds the continuation bitmap and changes what the bits
     * mean; without it the file is the one earlier builds make. */
    if (SHM_TRIM)
        hash = (hash ^ UINT64_C(0x54)) * UINT64_C(1099511628211);
    return hash;
}

void shmi_superblock_fill(struct shmi_superblock *sb,
                          const struct shmi_layout *layout, uint32_t uid,
                          uint64_t creator_base, uint64_t created_ns)
{
    memset(sb, 0, sizeof *sb);
    memcpy(sb->magic, SHMI_MAGIC, sizeof sb->magic);
    sb->version = SHMI_FORMAT_VERSION;
    sb->page_size = (uint32_t)layout->page_size;
    sb->fingerprint = shmi_layout_fingerprint(layout->page_size);
    sb->capacity = layout->capacity;
    sb->file_size = layout->file_size;
    sb->data_offset = layout->data_offset;
    sb->header_offset = layout->header_offset;
    sb->index_offset = layout->index_offset;
    sb->words_offset = layout->words_offset;
    sb->min_alloc_pow2 = SHM_MIN_ALLOC_POW2;
    sb->max_alloc_pow2 = SHM_MAX_ALLOC_POW2;
    sb->creator_uid = uid;
    sb->creator_base = creator_base;
    sb->created_ns = created_ns;
}

int shmi_superblock_validate(const struct shmi_superblock *sb,
                             uint64_t file_size, uint64_t page_size,
                             struct shmi_layout *out)
{
    if (memcmp(sb->magic, SHMI_MAGIC, sizeof sb->magic) != 0 ||
        sb->version != SHMI_FORMAT_VERSION || sb->page_size != page_size ||
        sb->min_alloc_pow2 != SHM_MIN_ALLOC_POW2 ||
        sb->max_alloc_pow2 != SHM_MAX_ALLOC_POW2 ||
        sb->fingerprint != shmi_layout_fingerprint(page_size))
        return EPROTO;
    struct shmi_layout l;
    if (shmi_layout_compute(sb->capacity, page_size, &l) != 0)
        return EBADMSG;
    if (sb->file_size != l.file_size || sb->data_offset != l.data_offset ||
        sb->header_offset != l.header_offset ||
        sb->index_offset != l.index_offset ||
        sb->words_offset != l.words_offset || file_size < l.file_size)
        return EBADMSG;
    *out = l;
    return 0;
}
