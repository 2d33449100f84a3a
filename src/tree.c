/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The buddy trees: how chunks are claimed and released with single-word
 * CAS, across tiers of bitmap words.
 *
 * Words and tiers (layout.c, word.h). A tier-0 word holds the top rows of
 * a few blocks. Every bottom-row node u of a word U of tier t < last is
 * also the root of one word W of tier t+1. In W, node 1 is not a node but
 * the ACTIVE flag:
 *
 *   U (tier t)       . . . . u . . .      bottom row, one bit per node
 *                            |
 *   W (tier t+1)     [bit 1 = ACTIVE][rows 1..5: u's subtree]
 *
 *   u clear in U, W == 0            u is free
 *   u set,   W == 0                 u is allocated as one chunk
 *   u set,   W == ACTIVE | ...      u is delegated: W manages its subtree
 *   u set,   W == ACTIVE            delegated and empty (logically free)
 *
 * In a tier-0 word, node 1 is unused, except when the word holds all six
 * rows of one block (first_row 0: 32 B to 1 KiB, say): then it is a real
 * node, the whole block, and an ancestor of every other node of the word.
 *
 * Invariants (when no operation is in flight):
 *   T1  each word satisfies W1 (a set node's subtree is set);
 *   T2  a lower-tier word is either 0 or ACTIVE, and it is ACTIVE only
 *       while its parent node is set;
 *   T3  nodes past the capacity are set ("pinned") from formatting on;
 *   T4  hints (hint_index.c) are complete: a word with a free node on row
 *       r has its bit set in the (tier, r) index; an empty ACTIVE word
 *       has its bit set in the tier's empty index.
 *   T5  (at every instant, checked) what each operation reads agrees:
 *       a node being claimed has no set ancestor and no set node in its
 *       subtree in its word (W1; the search reads only the bottom row) and
 *       lies below the capacity (T3); when its tier is not the last,
 *       every child word below it is 0 (T2: a child word that is not 0
 *       means its parent node is delegated, not free). The words below a
 *       chunk's owner on its path are 0, the owner's word (lower tier) has
 *       its parent node set, and the child words under the chunk are 0.
 *       Only a damaged file (a stray write into the metadata) breaks T5;
 *       see "Damage" below for what is done then.
 * *
 * Claim (malloc) of a node on row r of tier t:
 *   1. try the word this thread last used for (t, r) (its cursor), then
 *      the words the (t, r) index names, starting from the cursor: load it,
 *      pick a free node, best fit (word.h), CAS in its subtree mask.
 *      A word found without a free node on row r has its hint cleared and
 *      is then loaded again: a free that raced with the clear re-sets it.
 *   2. no word has one: activate a new word W of tier t: claim a
 *      bottom-row node u of tier t-1 (recursively, same procedure), then
 *      CAS W from 0 to ACTIVE | the chosen node's mask, and set W's hints.
 *   3. still nothing: retire the empty words of deeper tiers (below) and
 *      try once more; then the arena has no free chunk that large.
 * Release (free) of the chunk at offset x: walk up x's path from the
 * deepest tier to the first ACTIVE word; the highest set node on the path
 * in it (W3) is the chunk (see find_owner for why no other word can hold
 * it).
 * CAS the chunk's mask away (seq_cst), then set the hints of the rows on
 * which the word just gained a free node, and the empty hint if the word
 * is now exactly ACTIVE.
 * Retire (lazy coalescing): an empty ACTIVE word stays active, so a free
 * and the next malloc of a small chunk cost one CAS each. When a claim
 * fails for want of larger nodes, step 3 drains the empty indexes of the
 * deeper tiers: CAS W from ACTIVE to 0, then clear u in U and set U's
 * hints, so the space coalesces upward.
 *
 * Races, and how each resolves:
 *   - claim vs claim on one word: the CAS fails for all but one; losers
 *     re-read and pick again. Every failed CAS means another succeeded.
 *   - claim in W vs retire of W: whoever CASes first wins. If the retire
 *     wins, W is 0 and the claimer sees it inactive and moves on; if the
 *     claim wins, W is no longer exactly ACTIVE and the retire fails.
 *   - two retirers of W: one CAS ACTIVE -> 0 succeeds; only it clears u.
 *   - activation vs anything: u is set before W, and nobody but the
 *     claimer of u writes W while it is 0, so the CAS 0 -> ACTIVE cannot
 *     fail except in a damaged file (then the claim fails, u stays set).
 *   - a free vs a hint clear: store-buffer pattern (free: CAS word, load
 *     hint; claim: clear hint, load word), all seq_cst, so one of them
 *     sees the other and T4 holds.
 *   - a retire emptying U: U is then exactly ACTIVE and gets its own
 *     empty hint, so coalescing continues upward on the next drain.
 *
 * Crashes. Each step is one CAS, so a process killed anywhere leaves
 * every word satisfying T1. What it can leave behind:
 *   - killed between claiming u and activating W (or between retiring W
 *     and clearing u): u stays set with W == 0, i.e. it reads as one
 *     allocated chunk of u's size that nobody owns, one node of the
 *     tier's root size (1 KiB with the default 32 B..4 KiB range). The
 *     thread recorded the operation (pending.c), so a recovery
 *     (arena_recover.c) gives the node back (shmi_tree_release_orphan).
 *   - killed between a free's CAS and its hint updates: the hint is lost
 *     until the next free in that word sets it again, or until a process
 *     that clears the dead one's process-table entry runs
 *     shmi_tree_repair_hints; meanwhile the memory is free but a search
 *     may not find it (T4 weakened, not T1).
 *   - killed inside malloc after its CAS, or inside free before its CAS:
 *     the chunk in flight stays allocated.
 *   - killed between the steps of a shrink across tiers (shmi_tree_resize):
 *     the chunk is left larger than asked, still starting where it did,
 *     and its owner's free releases all of it: nothing leaks. Between the
 *     steps of a trimmed resize: as a trimmed claim or free (Trimming).
 *
 * Damage. A co-process's stray write can put any value in any word. An
 * operation that finds T5 broken refuses to act on what it read: it
 * counts the event in the shared header (SHMI_DAMAGE_COUNT_OFFSET, so
 * every process and shm-stat see it; shm_check adds it to the words it
 * finds broken), reports it through the error handler, and
 *   - claim: the check runs after the claiming CAS, when the node is this
 *     claim's and the words below cannot change under it. A node inside
 *     a live chunk (under a set node 1 too, where node 1 is a node) or
 *     past the capacity stays set (that restores the bits the damage
 *     cleared, W1 or T3); a node over delegated bottom-row
 *     nodes keeps those set (restoring the delegation, so the chunks in
 *     their words are theirs again) and gives the rest back. Then the
 *     search goes on. Cost: one masked test of the value the CAS read on
 *     every claim, and one load per bottom-row node below the claimed one
 *     on claims in tiers above the last (large chunks only).
 *   - free, resize (and usable size, which reports but does not count: a
 *     query writes nothing): EINVAL, nothing changed. Cost: one load of
 *     the parent word on frees in lower tiers, one per bottom-row node of
 *     the chunk in tiers above the last.
 *   - activation or delegation finding the child word not 0 after the
 *     claim saw it 0, a retire finding its parent node clear: only a
 *     write concurrent with the operation gets there; the node stays set
 *     (leaked) or stays clear (the retired word was already 0).
 * Limits: a check sees only states that disagree. Damage that turns one
 * consistent state into another cannot be told from a real operation
 * without a header: a live chunk's own bits cleared (it reads as free),
 * an ancestor of it set in its word, a child word of a live chunk made
 * ACTIVE. A stray write concurrent with the operations can also slip
 * between a check and the next CAS, e.g. a claim of a node whose bit the
 * damage cleared, racing the retire of its child word: the retire clears
 * the node again after the claim found the child 0.
 *
 * Trimming (SHM_TRIM). A request of n bytes of class k still gets a node
 * of 2^k (its start aligned to 2^k) but takes only L = n rounded up to
 * the granule G of the node's word, G = the word's bottom-row node size
 * (2^MIN in the last tier, the last tier's word span in the tier above,
 * ...), so the allocation lies in one word. Its pieces are the binary
 * decomposition of L / G, largest first, left-aligned from x; the claim
 * CASes the union of their subtree masks, and the tail of the node is
 * never claimed (it stays free, for others). L = 2^k is one node.
 *
 *   node of 2^k = 8 G   [x          |x+4G |x+5G |x+6G      ]
 *   L = 5 G             [piece 4G   |1G   |free |free 2G   ]
 *   continuation bits    0 . . .     1     0     0 .
 *
 * Continuation bitmap (layout.c, one bit per 2^MIN bytes): the bit of the
 * first unit of every piece but the first is set, with one atomic OR per
 * continuation word (one in the last tier, whose word's 32 units share a
 * continuation word) after the claiming CAS, while the claimer owns the
 * pieces (never before: a free of the previous owner of those units could
 * read it as its own), and cleared before the freeing CAS. Invariant:
 *   K1  (at rest) a set bit is the first unit of a tail piece of a live
 *       allocation; no first piece has its bit set.
 * A free of x: the owner node at x (as above) is the first piece, of size
 * s; x's own bit must be clear (else x starts a tail piece: EINVAL); then
 * while the bit of the unit e after the current piece is set and e lies
 * inside the first piece's parent node (x .. x + 2s, in the same word;
 * none when s is on the word's first row), the owner node at e, which
 * must start at e, be smaller than the piece before it and fit in the
 * parent, is the next piece. Only those bits are read as ours, and K1
 * makes them ours: another allocation's tail piece cannot start at e,
 * since its pieces are contiguous from its start, which would lie before
 * x inside our pieces, or at e (a first piece, bit clear). All pieces are
 * freed with one CAS. Anything else the bits say is damage (T5): refused.
 * Batches (shmi_tree_alloc_batch) trim every node alike and set all their
 * bits with one OR. Costs: a free loads one continuation word (two above
 * the last tier when the pieces span words); a trimmed claim and free add
 * one locked OR/AND each. Crashes: a process killed between the claim CAS
 * and the OR, or between the AND and the free CAS, would leave the tail
 * pieces allocated with clear bits, reading as separate allocations
 * nobody owns. Both windows of a malloc's claim and a free are recorded
 * in the thread's record (pending.c, Q): recovery frees a killed claim's
 * tail pieces and all of a killed free's (shmi_tree_release_trim).
 * Unrecorded: the instants between the claim CAS and its record and
 * between the record's clear and the free CAS, batches (the thread
 * caches' refills and flushes), and a realloc in place (shmi_tree_resize,
 * "Resizing in place" below), which is made of the same two steps,
 * claim_tails and free_pieces, and so leaves at most what a killed claim
 * or free would; a collection frees what those leave. A double free that
 * races a new claim
 * of the same units can clear the new owner's bits (then its free gives
 * back only the first piece): a program error, not caught here.
 *
 * Lock-freedom: no operation waits for another. Every loop either makes
 * progress itself (CAS success, a hint cleared, a word retired) or retries
 * because a CAS failed, which means another operation on that word
 * succeeded. It is not wait-free: one thread can starve under contention.
 *
 * Memory order: the claiming CAS acquires (acq_rel) and the freeing CAS
 * releases (seq_cst, which includes release), so the next owner of a chunk sees
 * everything the previous owner wrote. Retire is acq_rel and the parent
 * release after it seq_cst, so that chain carries on through coalescing.
 */
#include "tree.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>

#include "hint_index.h"
#include "os.h"
#include "pending.h"
#include "report.h"
#include "shared_header.h"
#include "word.h"

#define ACTIVE SHMI_TREE_ACTIVE

/* ---- per-thread cursors ------------------------------------------------ */

/* Each thread starts its search for a size at the word it last claimed
 * that size from or freed that size into, so processes work in different
 * words instead of colliding on the first free one, and a freed hole is
 * the first place the next request of its size looks (a cached word, and
 * a snug fit: with one cursor per tier instead, small requests went into
 * the holes large frees left and split them, and 5% of requests failed
 * in churn at 90% full). The cursors belong to one arena (by serial, 0 for
 * none). A forked child starts afresh: the fork handler forgets the
 * cursors of the one thread a child has, so that it does not start where
 * its parent does.
 */
struct cursors {
    uint64_t arena_serial;
    uint64_t word[SHMI_MAX_TIERS][SHMI_WORD_ROWS];
};

static _Thread_local struct cursors thread_cursors
    __attribute__((tls_model("initial-exec")));
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void after_fork_in_child(void)
{
    thread_cursors.arena_serial = 0;
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, after_fork_in_child);
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    return x ^ (x >> 33);
}

static __attribute__((noinline)) void
cursors_reset(struct cursors *c, const struct shmi_geometry *g)
{
    pthread_once(&atfork_once, register_atfork);
    uint64_t seed = mix((uint64_t)(uintptr_t)c ^ shmi_os_seed());
    for (unsigned t = 0; t < g->tiers; t++)
        for (unsigned r = 0; r < SHMI_WORD_ROWS; r++)
            c->word[t][r] = mix(seed + t) % g->tier[t].count;
    c->arena_serial = g->serial;
}

static inline __attribute__((always_inline)) struct cursors *
cursors_for(const struct shmi_geometry *g)
{
    struct cursors *c = &thread_cursors;
    if (c->arena_serial != g->serial) /* once per thread, arena, fork */
        cursors_reset(c, g);
    return c;
}

/* ---- geometry helpers -------------------------------------------------- */

static shmi_atomic_word *word_at(const struct shmi_geometry *g, unsigned tier,
                                 uint64_t index)
{
    return shmi_tree_word(g, tier, index);
}

static unsigned first_row(const struct shmi_geometry *g, unsigned tier)
{
    return g->tier[tier].first_row;
}

/*
 * SHM_DEBUG >= 2: every CAS of the tree keeps what held before it. A word
 * that satisfied W1 still does after the CAS, and a lower-tier word that
 * was ACTIVE before a claim or a free still is (T2). Only transitions are
 * checked, never the words as read: a damaged file may break W1 by
 * itself, and that must not stop the library.
 */
static inline void check_transition(const struct shmi_geometry *g,
                                    unsigned tier, uint64_t before,
                                    uint64_t after)
{
    unsigned first = 1u << first_row(g, tier);
    SHMI_ASSERT_INTERNAL(!shmi_word_is_closed(before, first) ||
                         shmi_word_is_closed(after, first));
    SHMI_ASSERT_INTERNAL(tier == 0 || !(before & ACTIVE) || (after & ACTIVE));
    (void)g;
    (void)tier;
    (void)before;
    (void)after;
    (void)first;
}

/* ---- damage (T5) ------------------------------------------------------- */

static shmi_atomic_word *damage_counter(const struct shmi_geometry *g)
{
    return (shmi_atomic_word *)(shmi_shared_header(g) +
                                SHMI_DAMAGE_COUNT_OFFSET);
}

uint64_t shmi_tree_damage_count(const struct shmi_geometry *g)
{
    /* relaxed: a statistic; nothing is ordered by it. */
    return shmi_atomic_load_relaxed(damage_counter(g));
}

/* A state of the words that no sequence of operations produces (T5): it
 * is counted in the file and reported, and the caller refuses to act on
 * it. Only a damaged file gets here. */
static __attribute__((cold, noinline)) void
refuse_damage(const struct shmi_geometry *g, unsigned tier, uint64_t index,
              const char *what)
{
    /* relaxed: a statistic; nothing is ordered by it. */
    shmi_atomic_fetch_add_relaxed(damage_counter(g), 1);
    shmi_report("shm_alloc: damaged bitmap word %u/%" PRIu64 ": %s; refused",
                tier, index, what);
}

/* The bottom-row nodes under `node` of word `index` of `tier` (not the
 * last tier) whose child word is not 0, i.e. delegated (T2); 0 when there
 * is none, as T5 requires of a node being claimed or freed.
 *
 * relaxed loads: the caller holds `node` (it claimed it with an acquire
 * CAS, or owns the chunk), and every retire that zeroed one of these words
 * did so before the release CAS that cleared its parent node, which that
 * acquire read from or followed; so a load sees that zero or a later
 * value, and nobody but the holder of the node writes a word that is 0. */
static __attribute__((noinline)) uint64_t
delegated_below(const struct shmi_geometry *g, unsigned tier, uint64_t index,
                unsigned node)
{
    unsigned row = shmi_word_row_of(node);
    unsigned first =
        (node << (SHMI_WORD_BOTTOM_ROW - row)) - SHMI_WORD_FIRST_SLOT;
    unsigned count = 1u << (SHMI_WORD_BOTTOM_ROW - row);
    const struct shmi_tier *below = &g->tier[tier + 1];
    uint64_t delegated = 0;
    for (unsigned s = first; s < first + count; s++) {
        uint64_t child = index * SHMI_WORD_SLOTS + s;
        if (child >= below->count)
            break; /* past the capacity: no child word */
        if (shmi_atomic_load_relaxed(below->words + child) != 0)
            delegated |= UINT64_C(1) << (SHMI_WORD_FIRST_SLOT + s);
    }
    return delegated;
}

/* Whether any child word below the first `slots` bottom-row slots of
 * `node` of word `index` of `tier` (not the last tier) is not 0:
 * delegated_below without the mask, for the paths that only need the
 * answer. A trimmed claim asks about its pieces only: the rest of its
 * node is free, and another claim may delegate a slot of it at any time.
 * The child words of one node lie side by side; relaxed loads, for the
 * reason given at delegated_below. */
static inline __attribute__((always_inline)) bool
any_delegated_below(const struct shmi_geometry *g, unsigned tier,
                    uint64_t index, unsigned node, unsigned slots)
{
    unsigned row = shmi_word_row_of(node);
    unsigned count = 1u << (SHMI_WORD_BOTTOM_ROW - row);
    if (slots < count)
        count = slots;
    uint64_t first =
        index * SHMI_WORD_SLOTS +
        ((node << (SHMI_WORD_BOTTOM_ROW - row)) - SHMI_WORD_FIRST_SLOT);
    const struct shmi_tier *below = &g->tier[tier + 1];
    if (__builtin_expect(first + count > below->count, 0))
        count = first < below->count ? (unsigned)(below->count - first) : 0;
    uint64_t any = 0;
    for (unsigned s = 0; s < count; s++)
        any |= shmi_atomic_load_relaxed(below->words + first + s);
    return any != 0;
}

/* Whether the parent node of word `index` of `tier` (> 0) is set, as T2
 * requires of an ACTIVE word. relaxed: the parent was set before the word
 * was activated, which happens-before any chunk of the word reaching its
 * owner; it is cleared only after the word is retired, which a live chunk
 * in it prevents. */
static inline __attribute__((always_inline)) bool
parent_is_set(const struct shmi_geometry *g, unsigned tier, uint64_t index)
{
    uint64_t parent = shmi_atomic_load_relaxed(g->tier[tier - 1].words +
                                               index / SHMI_WORD_SLOTS);
    return parent >> (SHMI_WORD_FIRST_SLOT + index % SHMI_WORD_SLOTS) & 1;
}

/* Bottom-row slot (0..31) of x's path in a word of `tier`. */
static unsigned slot_of(const struct shmi_tier *tier, uint64_t x)
{
    return (unsigned)(x >> (tier->span_log2 - SHMI_WORD_BOTTOM_ROW)) &
           (SHMI_WORD_SLOTS - 1);
}

/* Whether `word` of `tier` can hand out a node on `row` right now. */
static bool has_free(unsigned tier, uint64_t word, unsigned row)
{
    return (tier == 0 || (word & ACTIVE)) &&
           shmi_word_find_free(word, row) != 0;
}

struct claim {
    unsigned tier;
    uint64_t word;
    unsigned node;
    uint32_t tails; /* tail pieces' first slots, counted from node's */
};

static uint64_t offset_of(const struct shmi_geometry *g, const struct claim *c)
{
    unsigned span = g->tier[c->tier].span_log2;
    unsigned row = shmi_word_row_of(c->node);
    uint64_t in_row = c->node - (1u << row);
    return (c->word << span) + (in_row << (span - row));
}

static uint64_t node_size(const struct shmi_geometry *g, const struct claim *c)
{
    return UINT64_C(1) << (g->tier[c->tier].span_log2 -
                           shmi_word_row_of(c->node));
}

/* ---- trimming ---------------------------------------------------------- */

/* The pieces of the first `slots` bottom-row slots of `node`: the binary
 * decomposition of slots, largest first, left-aligned from the node's
 * first slot. Returns the union of their subtree masks; *tails gets the
 * first slot (counted from the node's) of every piece but the first. */
static inline __attribute__((always_inline)) uint64_t
pieces_of(unsigned node, unsigned slots, uint32_t *tails)
{
    unsigned row = shmi_word_row_of(node);
    *tails = 0;
    if (slots >= 1u << (SHMI_WORD_BOTTOM_ROW - row))
        return shmi_word_subtree(node);
    unsigned first =
        (node << (SHMI_WORD_BOTTOM_ROW - row)) - SHMI_WORD_FIRST_SLOT;
    uint64_t mask = 0;
    unsigned at = 0;
    for (unsigned b = SHMI_WORD_BOTTOM_ROW - row; b-- > 0;) {
        if (!(slots >> b & 1))
            continue;
        mask |= shmi_word_subtree((1u << (SHMI_WORD_BOTTOM_ROW - b)) +
                                  ((first + at) >> b));
        if (at != 0)
            *tails |= UINT32_C(1) << at;
        at += 1u << b;
    }
    return mask;
}

/* The continuation bits of the tail pieces `tails` of the chunk at x in
 * a word of `tier`: set (after the claiming CAS) or cleared (before the
 * freeing CAS). One RMW in the last tier, whose words' units share one
 * continuation word; one per tail piece above it.
 *
 * seq_cst, though relaxed would do (it is the same locked instruction on
 * x86): a set bit is read by the chunk's owner (who got the chunk after
 * this claim, through whatever handed it over) or by a recovery (through
 * the dead owner's record); the clear comes before the release CAS that
 * frees the pieces, so the next claimer of a unit (acquire) sees its bit
 * clear, and its own set follows its acquiring CAS. */
static void cont_update(struct shmi_geometry *g, unsigned tier, uint64_t x,
                        uint32_t tails, bool set)
{
    unsigned units_log2 =
        g->tier[tier].span_log2 - SHMI_WORD_BOTTOM_ROW - SHM_MIN_ALLOC_POW2;
    uint64_t u = x >> SHM_MIN_ALLOC_POW2;
    if (units_log2 == 0) {
        uint64_t bits = (uint64_t)tails << (u & 63);
        if (set)
            shmi_atomic_fetch_or_seq_cst(g->cont + (u >> 6), bits);
        else
            shmi_atomic_fetch_and_seq_cst(g->cont + (u >> 6), ~bits);
        return;
    }
    for (uint32_t t = tails; t; t &= t - 1) {
        uint64_t v = u + ((uint64_t)__builtin_ctz(t) << units_log2);
        uint64_t bit = UINT64_C(1) << (v & 63);
        if (set)
            shmi_atomic_fetch_or_seq_cst(g->cont + (v >> 6), bit);
        else
            shmi_atomic_fetch_and_seq_cst(g->cont + (v >> 6), ~bit);
    }
}

/* ---- hints ------------------------------------------------------------- */

/* After `word` of (tier, index) went from `before` to `after` by clearing
 * bits: mark the rows on which it gained a free node, and the word as
 * empty when only ACTIVE is left. */
static inline __attribute__((always_inline)) void
publish_free(struct shmi_geometry *g, unsigned tier, uint64_t index,
             uint64_t before, uint64_t after)
{
    unsigned first = first_row(g, tier);
    /* Usually the word already had room on its top row, so on every row:
     * nothing to publish. */
    if (shmi_word_free_starts(before, first) == 0) {
        unsigned had_from = shmi_word_top_free_row(before);
        unsigned gained_from = shmi_word_top_free_row(after);
        if (gained_from < first)
            gained_from = first;
        for (unsigned row = gained_from; row < had_from; row++)
            shmi_index_set(&g->hints[tier][row], index);
    }
    if (tier > 0 && after == ACTIVE)
        shmi_index_set(&g->empty[tier], index);
}

/* ---- the steps of a trimmed claim and free ----------------------------- */

/* The second step of every claim of a trimmed chunk (malloc, a batch, an
 * activation, a realloc that grows or shrinks one in place): right after
 * the CAS that claimed the pieces, sets the continuation bits of the tail
 * pieces `tails` of the chunk at x. A process killed before it leaves
 * those pieces allocated with clear bits (see "Trimming"). */
static inline __attribute__((always_inline)) void
claim_tails(struct shmi_geometry *g, unsigned tier, uint64_t x, uint32_t tails)
{
    if (SHM_TRIM && tails != 0)
        cont_update(g, tier, x, tails, true);
}

/* Every free of a trimmed chunk's pieces (shm_free, a realloc that gives
 * pieces back): clears the continuation bits `tails` of the chunk at x
 * (its first piece `node` of the word `index` of `tier`, read as *value),
 * then one CAS clears `mask` from the word, provided it still holds
 * `hold` (which covers mask) with `node` the owner of x's slot; the
 * hints follow. Returns 0, or EINVAL (the chunk is not there any more;
 * the word is left as it is). mask 0: only the bits, checked. */
static int free_pieces(struct shmi_geometry *g, unsigned tier, uint64_t index,
                       uint64_t x, unsigned node, uint64_t *value,
                       uint64_t hold, uint64_t mask, uint32_t tails)
{
    shmi_atomic_word *word = word_at(g, tier, index);
    if (SHM_TRIM && tails != 0)
        cont_update(g, tier, x, tails, false);
    if (mask == 0)
        return 0;
    SHMI_TEST_YIELD();
    /* seq_cst: release pairs with the acquire CAS of the next claimer of
     * these nodes; seq_cst orders it before publish_free's hint loads
     * (store-buffer pair with claim_in_tier). */
    while (!shmi_atomic_cas_seq_cst(word, value, *value & ~mask)) {
        /* The word changed since it was read: the chunk must still be the
         * allocation here, with its whole subtree set. */
        const struct shmi_tier *t = &g->tier[tier];
        if ((*value & hold) != hold ||
            shmi_word_owner(*value, slot_of(t, x), t->eligible) != node)
            return EINVAL;
    }
    check_transition(g, tier, *value, *value & ~mask);
    publish_free(g, tier, index, *value, *value & ~mask);
    return 0;
}

/* ---- claim ------------------------------------------------------------- */

/* Clears the (tier, row) hint of a word found without a free node on that
 * row, then loads the word again: a free that raced with the clear is not
 * lost, its hint is set back. Returns whether it was. */
static bool drop_hint(struct shmi_geometry *g, unsigned tier, unsigned row,
                      uint64_t index)
{
    const struct shmi_index *hints = &g->hints[tier][row];
    shmi_index_clear(hints, index);
    /* seq_cst: the claim half of the store-buffer pair with publish_free
     * (CAS word, then load hint). */
    uint64_t value = shmi_atomic_load_seq_cst(word_at(g, tier, index));
    if (!has_free(tier, value, row))
        return false;
    shmi_index_set(hints, index);
    return true;
}

/* The ancestors of each node on rows 1..4 (node 1, the ACTIVE flag of a
 * lower-tier word, left out; ancestors_in adds it where it is a node): a
 * free node has none of them set (W1). */
static const uint64_t ancestors_of[64] = {
    UINT64_C(0x0),        UINT64_C(0x0),        UINT64_C(0x0),
    UINT64_C(0x0),        UINT64_C(0x4),        UINT64_C(0x4),
    UINT64_C(0x8),        UINT64_C(0x8),        UINT64_C(0x14),
    UINT64_C(0x14),       UINT64_C(0x24),       UINT64_C(0x24),
    UINT64_C(0x48),       UINT64_C(0x48),       UINT64_C(0x88),
    UINT64_C(0x88),       UINT64_C(0x114),      UINT64_C(0x114),
    UINT64_C(0x214),      UINT64_C(0x214),      UINT64_C(0x424),
    UINT64_C(0x424),      UINT64_C(0x824),      UINT64_C(0x824),
    UINT64_C(0x1048),     UINT64_C(0x1048),     UINT64_C(0x2048),
    UINT64_C(0x2048),     UINT64_C(0x4088),     UINT64_C(0x4088),
    UINT64_C(0x8088),     UINT64_C(0x8088),     UINT64_C(0x10114),
    UINT64_C(0x10114),    UINT64_C(0x20114),    UINT64_C(0x20114),
    UINT64_C(0x40214),    UINT64_C(0x40214),    UINT64_C(0x80214),
    UINT64_C(0x80214),    UINT64_C(0x100424),   UINT64_C(0x100424),
    UINT64_C(0x200424),   UINT64_C(0x200424),   UINT64_C(0x400824),
    UINT64_C(0x400824),   UINT64_C(0x800824),   UINT64_C(0x800824),
    UINT64_C(0x1001048),  UINT64_C(0x1001048),  UINT64_C(0x2001048),
    UINT64_C(0x2001048),  UINT64_C(0x4002048),  UINT64_C(0x4002048),
    UINT64_C(0x8002048),  UINT64_C(0x8002048),  UINT64_C(0x10004088),
    UINT64_C(0x10004088), UINT64_C(0x20004088), UINT64_C(0x20004088),
    UINT64_C(0x40008088), UINT64_C(0x40008088), UINT64_C(0x80008088),
    UINT64_C(0x80008088),
};

/* Whether node 1 of a tier-0 word is a node, not an unused bit: when the
 * top word holds all six rows of one block (first_row 0). With L levels,
 * L = h0 + 5 (tiers - 1) (layout.c), so that is when h0 = 6: L = 6, 11,
 * 16, ... Known when the library is built, as is whether tier 0 is the
 * only tier (L <= 6), so other builds pay nothing and one-tier builds
 * no test of the tier. */
#define TOP_ROOT_IS_A_NODE (SHMI_CLASSES >= 6 && SHMI_CLASSES % 5 == 1)
#define ONE_TIER (SHMI_CLASSES <= 6)

/* The ancestors of `node` in a word of `tier` (node 1 itself too): those
 * of the table, and node 1 where it is a node, since find_owner takes a
 * set node 1 there for the chunk that covers the whole word. */
static inline __attribute__((always_inline)) uint64_t
ancestors_in(const struct shmi_geometry *g, unsigned tier, unsigned node)
{
    SHMI_ASSERT_INTERNAL(TOP_ROOT_IS_A_NODE == (first_row(g, 0) == 0) &&
                         ONE_TIER == (g->tiers == 1));
    (void)g;
    return ancestors_of[node] |
           (TOP_ROOT_IS_A_NODE && (ONE_TIER || tier == 0) ? SHMI_WORD_ROOT : 0);
}

/* After the CAS that claimed `node` (the word was `value` before it) found
 * the claim inconsistent (T5): keeps set what must stay set, gives back
 * the rest, counts and reports. Returns the word as this claim left it
 * (the next value to search). */
static __attribute__((cold, noinline)) uint64_t
keep_inconsistent(struct shmi_geometry *g, const struct claim *c,
                  uint64_t value, uint64_t mask, uint64_t above,
                  bool past_capacity)
{
    uint64_t now = value | mask;
    if (above || past_capacity) {
        /* Inside a live chunk of this word (W1 broken: the damage cleared
         * part of its subtree), or past the capacity (a lost pin, T3):
         * keeping the node set restores what the damage cleared. */
        refuse_damage(g, c->tier, c->word,
                      above ? "a free node under an allocated one"
                            : "a free node past the capacity");
        return now;
    }
    /* Delegated bottom-row nodes under the node read as free (their bit
     * cleared while the child word is active): keep those set, which is
     * what the damage cleared, and give back the rest of the subtree. */
    uint64_t delegated = delegated_below(g, c->tier, c->word, c->node);
    uint64_t give_back = mask & ~delegated;
    refuse_damage(g, c->tier, c->word,
                  "a free node whose child word is in use");
    /* A trimmed claim took only its pieces: the delegated nodes of the
     * rest of the node are set too (else the node still looks free and
     * the search comes back to it). */
    if (give_back == 0 && (delegated & ~now) == 0)
        return now;
    shmi_atomic_word *word = word_at(g, c->tier, c->word);
    /* seq_cst: a free of what this claim took (see shmi_tree_free). */
    while (!shmi_atomic_cas_seq_cst(word, &now, (now | delegated) & ~give_back))
        ;
    publish_free(g, c->tier, c->word, now, (now | delegated) & ~give_back);
    return (now | delegated) & ~give_back;
}

/* A batch (shmi_tree_alloc_batch): up to want - 1 more free nodes on
 * `row` of `value` beside those in *mask, into extra[], their subtrees
 * added to *mask. */
static inline __attribute__((always_inline)) unsigned
pick_more(uint64_t value, unsigned row, unsigned want, unsigned slots,
          uint64_t *mask, unsigned *extra, uint32_t *tails)
{
    unsigned k = 0;
    while (k + 1 < want) {
        unsigned node = shmi_word_find_free(value | *mask, row);
        if (node == 0)
            break;
        extra[k++] = node;
        uint32_t t;
        *mask |= pieces_of(node, slots, &t);
        /* The tails of every node, as slots of the word. */
        *tails |= t << ((node << (SHMI_WORD_BOTTOM_ROW - row)) -
                        SHMI_WORD_FIRST_SLOT);
    }
    return k;
}

/* After the CAS that claimed a batch's extra nodes (the word was `value`
 * before it), T5 for each: one inside a live chunk or past the capacity
 * stays set (as keep_inconsistent does); the others are given back, so
 * the batch is just the first node. Returns the word as left. */
static __attribute__((cold, noinline)) uint64_t
drop_extras(struct shmi_geometry *g, unsigned tier, uint64_t index,
            uint64_t value, uint64_t claimed, const unsigned *extra,
            unsigned count, unsigned slots)
{
    uint64_t give_back = 0;
    for (unsigned i = 0; i < count; i++) {
        struct claim c = {tier, index, extra[i], 0};
        bool past = offset_of(g, &c) + node_size(g, &c) > g->capacity;
        if ((value &
             (ancestors_in(g, tier, extra[i]) | shmi_word_subtree(extra[i]))) ||
            past)
            refuse_damage(g, tier, index, "a free node inside a chunk");
        else {
            uint32_t tails;
            give_back |= pieces_of(extra[i], slots, &tails);
        }
    }
    uint64_t now = value | claimed;
    if (give_back == 0)
        return now;
    /* seq_cst: a free of what this claim took (see shmi_tree_free). */
    while (!shmi_atomic_cas_seq_cst(word_at(g, tier, index), &now,
                                    now & ~give_back))
        ;
    publish_free(g, tier, index, now, now & ~give_back);
    return now & ~give_back;
}

/* A claim of several nodes of one row and word (shmi_tree_alloc_batch):
 * the first is the claim's own; the others, up to want - 1, are listed in
 * the caller's list[base..] (their offsets | code) before the claiming
 * CAS, and *count is set to base + their number right after it and their
 * continuation bits, so that a process killed in between leaves them
 * allocated, unlisted: a leak of one refill, never a chunk listed that a
 * survivor would free in part. */
struct batch {
    uint64_t code;
    unsigned want;
    unsigned extras;
    unsigned extra[SHMI_WORD_SLOTS];
    shmi_atomic_word *list;
    shmi_atomic_word *count;
    uint64_t base;
};

/* One word: claims a free node on `row` or reports that it has none; of
 * the node, the pieces of its first `slots` bottom-row slots (all of it
 * when slots covers it). With a batch b (the last tier only, whose nodes
 * have no child words), the same CAS claims its extra nodes, trimmed the
 * same way. The continuation bits are set after the CAS. */
static inline __attribute__((always_inline)) bool
try_claim_in_word(struct shmi_geometry *g, unsigned tier, uint64_t index,
                  unsigned row, unsigned slots, struct claim *out,
                  struct batch *b)
{
    shmi_atomic_word *word = word_at(g, tier, index);
    /* relaxed: the CAS below re-validates the value it acts on. */
    uint64_t value = shmi_atomic_load_relaxed(word);
    for (;;) {
        if (tier > 0 && !(value & ACTIVE))
            return false;
        unsigned node = shmi_word_find_free(value, row);
        if (node == 0)
            return false;
        SHMI_TEST_YIELD();
        uint32_t tails;
        uint64_t mask = pieces_of(node, slots, &tails);
        uint64_t first_mask = mask;
        uint32_t extra_tails = 0;
        unsigned more = 0;
        if (b) {
            more = pick_more(value, row, b->want, slots, &mask, b->extra,
                             &extra_tails);
            for (unsigned i = 0; i < more; i++) {
                struct claim e = {tier, index, b->extra[i], 0};
                /* relaxed: past *count, read by nobody until the count
                 * store below releases them. */
                shmi_atomic_store_relaxed(b->list + b->base + i,
                                          offset_of(g, &e) | b->code);
            }
        }
        /* acquire: pairs with the seq_cst CAS of the free (or the retire)
         * that last cleared these bits, so the chunk's previous writes
         * are visible to its new owner. The release half is free on x86
         * and keeps the chain explicit for ThreadSanitizer, which does not
         * follow release sequences through acquire-only RMWs. */
        if (!shmi_atomic_cas_acq_rel(word, &value, value | mask))
            continue;
        check_transition(g, tier, value, value | mask);
        out->tier = tier;
        out->word = index;
        out->node = node;
        /* T5: what the claim relied on, now that the node is ours. An
         * ancestor set in the word, or a node of its subtree above the
         * bottom row, means the node lies inside a live chunk (W1, which
         * the bottom-row search does not see broken); only a tier's last
         * word reaches past the capacity;
         * above the last tier, every child word below its pieces must be 0
         * (the rest of a trimmed node is free: others may delegate it). */
        const struct shmi_tier *t = &g->tier[tier];
        uint64_t above =
            value & (ancestors_in(g, tier, node) | shmi_word_subtree(node));
        bool past = index + 1 == t->count &&
                    offset_of(g, out) + node_size(g, out) > g->capacity;
        bool consistent = __builtin_expect(!above && !past, 1) &&
                          (tier + 1 == g->tiers ||
                           !any_delegated_below(g, tier, index, node, slots));
        if (b) {
            /* The same for the extra nodes, checked one by one only when
             * their masks meet a set bit, in the tier's last word (which
             * may reach past the capacity), or when the first failed:
             * then they leave the list before any is given back. */
            uint64_t bad = 0;
            for (unsigned i = 0; i < more; i++)
                bad |= ancestors_in(g, tier, b->extra[i]) |
                       shmi_word_subtree(b->extra[i]);
            if (more > 0 &&
                ((value & bad) || index + 1 == t->count || !consistent)) {
                drop_extras(g, tier, index, value | first_mask,
                            mask & ~first_mask, b->extra, more, slots);
                more = 0;
                extra_tails = 0;
            }
            b->extras = more;
        }
        if (consistent) {
            out->tails = tails;
            if (SHM_TRIM && (tails | extra_tails) != 0) {
                /* The last tier: every node's tails as slots of the word
                 * (one continuation word); above it, only the node. */
                if (extra_tails != 0) {
                    uint32_t all =
                        extra_tails |
                        tails << ((node << (SHMI_WORD_BOTTOM_ROW - row)) -
                                  SHMI_WORD_FIRST_SLOT);
                    claim_tails(g, tier, index << t->span_log2, all);
                } else {
                    /* Recorded: a kill before the record is cleared
                     * leaves tails that recovery frees (pending.c). */
                    uint64_t x = offset_of(g, out);
                    shmi_pending_begin_trim(g, tier, x, slots, false);
                    claim_tails(g, tier, x, tails);
                    SHMI_PENDING_TEST_POINT(SHMI_PENDING_AT_TRIM_MARKED, tier);
                    shmi_pending_end(g, tier);
                }
            }
            if (b && more > 0)
                /* release: the list entries above, and the continuation
                 * bits, come first: a survivor frees a listed chunk whole
                 * (thread_cache.c, C). */
                shmi_atomic_store_release(b->count, b->base + more);
            return true;
        }
        value = keep_inconsistent(g, out, value, first_mask, above, past);
    }
}

static bool claim_in_tier(struct shmi_geometry *g, unsigned tier, unsigned row,
                          unsigned slots, struct claim *out, struct batch *b);

/* Step 2: a new word of `tier` under a freshly claimed parent node; its
 * first chunk is the pieces of `slots` slots of a node on `row`. */
static bool activate_word(struct shmi_geometry *g, unsigned tier, unsigned row,
                          unsigned slots, struct claim *out)
{
    struct claim parent;
    if (!claim_in_tier(g, tier - 1, SHMI_WORD_BOTTOM_ROW, 1, &parent, NULL))
        return false;
    uint64_t index =
        parent.word * SHMI_WORD_SLOTS + (parent.node - SHMI_WORD_FIRST_SLOT);
    if (index >= g->tier[tier].count)
        return false; /* damaged file: a free node past the capacity */
    unsigned node = 1u << row;
    uint32_t tails;
    uint64_t mask = pieces_of(node, slots, &tails);
    uint64_t expected = 0;
    shmi_pending_begin(g, SHMI_PENDING_ACTIVATE, tier, index); /* pending.c */
    SHMI_TEST_YIELD(); /* between the two steps of an activation */
    /* acquire: pairs with the retire (acq_rel) that zeroed this word and
     * the parent release after it; release as in try_claim_in_word. */
    bool activated = shmi_atomic_cas_acq_rel(word_at(g, tier, index), &expected,
                                             ACTIVE | mask);
    shmi_pending_end(g, tier);
    if (!activated) {
        /* The claim of u saw this word 0 (T5), so only a stray write since
         * then gets here: u stays claimed. */
        refuse_damage(g, tier, index, "a word written under its claimer");
        return false;
    }
    SHMI_ASSERT_INTERNAL(shmi_word_is_closed(ACTIVE | mask, 2));
    publish_free(g, tier, index, ~UINT64_C(0) & ~UINT64_C(1), ACTIVE | mask);
    out->tier = tier;
    out->word = index;
    out->node = node;
    out->tails = tails;
    if (SHM_TRIM && tails != 0) {
        uint64_t x = offset_of(g, out); /* recorded as in try_claim_in_word */
        shmi_pending_begin_trim(g, tier, x, slots, false);
        claim_tails(g, tier, x, tails);
        SHMI_PENDING_TEST_POINT(SHMI_PENDING_AT_TRIM_MARKED, tier);
        shmi_pending_end(g, tier);
    }
    return true;
}

/* Steps 1 and 2 of a claim in `tier` (b: as for try_claim_in_word; an
 * activation claims one node). */
static bool claim_in_tier(struct shmi_geometry *g, unsigned tier, unsigned row,
                          unsigned slots, struct claim *out, struct batch *b)
{
    const struct shmi_index *hints = &g->hints[tier][row];
    uint64_t *cursor = &cursors_for(g)->word[tier][row];
    uint64_t index, start = *cursor;
    if (b)
        b->extras = 0;
    while (shmi_index_find(hints, start, &index)) {
        if (try_claim_in_word(g, tier, index, row, slots, out, b)) {
            *cursor = index;
            return true;
        }
        if (drop_hint(g, tier, row, index)) {
            start = index;
        } else {
            start = index + 1;
        }
    }
    if (tier == 0 || !activate_word(g, tier, row, slots, out))
        return false;
    *cursor = out->word;
    return true;
}

/* ---- retire ------------------------------------------------------------ */

/* Clears the parent node of word `index` of `tier` after the word was
 * retired, and publishes the space it frees. */
static bool release_parent(struct shmi_geometry *g, unsigned tier,
                           uint64_t index)
{
    uint64_t parent_index = index / SHMI_WORD_SLOTS;
    uint64_t bit = UINT64_C(1)
                   << (SHMI_WORD_FIRST_SLOT + index % SHMI_WORD_SLOTS);
    shmi_atomic_word *parent = word_at(g, tier - 1, parent_index);
    /* relaxed: the CAS re-validates. */
    uint64_t value = shmi_atomic_load_relaxed(parent);
    do {
        if (!(value & bit) ||
            (value &
             ancestors_in(g, tier - 1,
                          SHMI_WORD_FIRST_SLOT + index % SHMI_WORD_SLOTS))) {
            /* Free already, or inside a larger allocation (W1): the node
             * stays as it is (set: read as one chunk nobody owns). */
            refuse_damage(g, tier - 1, parent_index,
                          "a retired word's parent node was free or covered");
            return false;
        }
        /* seq_cst: as a free (release to the next claimer of the node;
         * ordered before publish_free's hint loads). */
    } while (!shmi_atomic_cas_seq_cst(parent, &value, value & ~bit));
    check_transition(g, tier - 1, value, value & ~bit);
    publish_free(g, tier - 1, parent_index, value, value & ~bit);
    return true;
}

uint64_t shmi_tree_release_orphan(struct shmi_geometry *g, unsigned tier,
                                  uint64_t index)
{
    if (tier == 0 || tier >= g->tiers || index >= g->tier[tier].count)
        return 0; /* not an operation this file can hold: damage */
    /* acquire: pairs with the retiring CAS (acq_rel) that zeroed it. */
    if (shmi_atomic_load_acquire(word_at(g, tier, index)) != 0)
        return 0;
    /* A delegated parent node has no ancestor set in its word (W1), and a
     * lower-tier parent word is active (T2): anything else is damage that
     * clearing the node would only make worse. Relaxed: only a filter;
     * release_parent's CAS acts. */
    unsigned slot = (unsigned)(index % SHMI_WORD_SLOTS);
    uint64_t parent =
        shmi_atomic_load_relaxed(word_at(g, tier - 1, index / SHMI_WORD_SLOTS));
    uint64_t ancestors = shmi_word_path_masks[slot] &
                         ~(UINT64_C(1) << (SHMI_WORD_FIRST_SLOT + slot)) &
                         g->tier[tier - 1].eligible;
    if ((parent & ancestors) != 0 || (tier - 1 > 0 && !(parent & ACTIVE)))
        return 0;
    return release_parent(g, tier, index)
               ? UINT64_C(1) << g->tier[tier].span_log2
               : 0;
}

uint64_t shmi_tree_release_trim(struct shmi_geometry *g, unsigned tier,
                                uint64_t x, unsigned slots, bool freeing)
{
    if (tier >= g->tiers || x >= g->capacity || slots < 2 ||
        slots >= SHMI_WORD_SLOTS)
        return 0; /* no trimmed allocation has tails there: damage */
    const struct shmi_tier *t = &g->tier[tier];
    unsigned slot_log2 = t->span_log2 - SHMI_WORD_BOTTOM_ROW;
    unsigned first = slot_of(t, x);
    /* The smallest node that holds the pieces; x is aligned to it, since
     * to the allocation's own node, which is at least as large. */
    unsigned height = 32u - (unsigned)__builtin_clz(slots - 1);
    if ((x & ((UINT64_C(1) << slot_log2) - 1)) != 0 ||
        (first & ((1u << height) - 1)) != 0)
        return 0;
    uint64_t index = x >> t->span_log2;
    unsigned row = SHMI_WORD_BOTTOM_ROW - height;
    unsigned node = (1u << row) + (first >> height);
    uint32_t tails;
    uint64_t mask = pieces_of(node, slots, &tails);
    unsigned lead = 1u << (31u - (unsigned)__builtin_clz(slots));
    uint32_t unused;
    uint64_t give = freeing ? mask : mask & ~pieces_of(node, lead, &unused);
    /* What recovery relies on (P in pending.c): the pieces all set, no
     * ancestor of them set (they are not inside another chunk), the word
     * active, no piece delegated. Anything else is damage: nothing done. */
    shmi_atomic_word *word = word_at(g, tier, index);
    /* acquire: pairs with the dead thread's claiming CAS. */
    uint64_t value = shmi_atomic_load_acquire(word);
    if ((value & mask) != mask || (value & ancestors_in(g, tier, node)) ||
        (tier > 0 && !(value & ACTIVE)))
        return 0;
    if (tier + 1 < g->tiers) {
        for (uint32_t p = tails | 1u; p; p &= p - 1) {
            unsigned slot = first + (unsigned)__builtin_ctz(p);
            unsigned owner = shmi_word_owner(value, slot, t->eligible);
            if (any_delegated_below(g, tier, index, owner, SHMI_WORD_SLOTS))
                return 0;
        }
    }
    /* The bits first (K1: a set bit is a live allocation's tail), as a
     * free clears them before its CAS. */
    cont_update(g, tier, x, tails, false);
    /* seq_cst: as shmi_tree_free_found. */
    while (!shmi_atomic_cas_seq_cst(word, &value, value & ~give))
        if ((value & give) != give)
            return 0;
    check_transition(g, tier, value, value & ~give);
    publish_free(g, tier, index, value, value & ~give);
    return (uint64_t)(freeing ? slots : slots - lead) << slot_log2;
}

/* Step 3: retires every empty word of the tiers below `tier`, deepest
 * first so that coalescing carries upward. Returns whether any was. */
static bool retire_empty_below(struct shmi_geometry *g, unsigned tier)
{
    bool retired = false;
    for (unsigned t = g->tiers - 1; t > tier; t--) {
        const struct shmi_index *empty = &g->empty[t];
        uint64_t start = 0, index;
        while (shmi_index_find_from(empty, start, &index)) {
            shmi_index_clear(empty, index);
            start = index + 1;
            uint64_t expected = ACTIVE;
            /* acq_rel: acquire pairs with the frees that emptied the word;
             * release hands their writes on through the parent. */
            if (!shmi_atomic_cas_acq_rel(word_at(g, t, index), &expected, 0))
                continue;
            shmi_pending_begin(g, SHMI_PENDING_RETIRE, t, index);
            SHMI_TEST_YIELD();      /* between the two steps of a retire */
            shmi_pending_end(g, t); /* before step 2: pending.c, P */
            release_parent(g, t, index);
            retired = true;
        }
    }
    return retired;
}

/* Bottom-row slots of class class_index's node that `length` bytes
 * take (at least one). */
static unsigned slots_for(const struct shmi_geometry *g, unsigned class_index,
                          uint64_t length)
{
    unsigned tier = g->layout.class_tier[class_index];
    unsigned slot_log2 = g->tier[tier].span_log2 - SHMI_WORD_BOTTOM_ROW;
    SHMI_ASSERT_INTERNAL(slot_log2 == shmi_tree_granule_log2(class_index));
    if (length >= (uint64_t)SHMI_WORD_SLOTS << slot_log2)
        return SHMI_WORD_SLOTS;
    uint64_t slots = (length + (UINT64_C(1) << slot_log2) - 1) >> slot_log2;
    return slots == 0 ? 1 : (unsigned)slots;
}

uint64_t shmi_tree_alloc_trimmed(struct shmi_geometry *g, unsigned class_index,
                                 uint64_t length)
{
    SHMI_ASSERT(class_index < SHMI_CLASSES);
    unsigned tier = g->layout.class_tier[class_index];
    unsigned row = g->layout.class_row[class_index];
    unsigned slots =
        SHM_TRIM ? slots_for(g, class_index, length) : SHMI_WORD_SLOTS;
    struct claim c;
    /* Fast path: the word this thread last used for this size. */
    if (try_claim_in_word(g, tier, cursors_for(g)->word[tier][row], row, slots,
                          &c, NULL) ||
        claim_in_tier(g, tier, row, slots, &c, NULL) ||
        (retire_empty_below(g, tier) &&
         claim_in_tier(g, tier, row, slots, &c, NULL)))
        return offset_of(g, &c);
    return SHMI_NO_CHUNK;
}

uint64_t shmi_tree_alloc(struct shmi_geometry *g, unsigned class_index)
{
    return shmi_tree_alloc_trimmed(g, class_index, UINT64_C(1) << 40);
}

uint64_t shmi_tree_alloc_batch(struct shmi_geometry *g, unsigned class_index,
                               uint64_t length, unsigned more,
                               shmi_atomic_word *list, shmi_atomic_word *count,
                               uint64_t base, uint64_t code)
{
    SHMI_ASSERT(class_index < SHMI_CLASSES && more < SHMI_WORD_SLOTS);
    unsigned tier = g->layout.class_tier[class_index];
    unsigned row = g->layout.class_row[class_index];
    struct batch batch = {.code = code,
                          .want = more + 1,
                          .extras = 0,
                          .list = list,
                          .count = count,
                          .base = base};
    /* Nodes with child words come one at a time. */
    struct batch *b = tier + 1 == g->tiers && more > 0 ? &batch : NULL;
    struct claim c;
    uint64_t cursor = cursors_for(g)->word[tier][row];
    unsigned slots =
        SHM_TRIM ? slots_for(g, class_index, length) : SHMI_WORD_SLOTS;
    if (try_claim_in_word(g, tier, cursor, row, slots, &c, b) ||
        claim_in_tier(g, tier, row, slots, &c, b) ||
        (retire_empty_below(g, tier) &&
         claim_in_tier(g, tier, row, slots, &c, b)))
        return offset_of(g, &c);
    return SHMI_NO_CHUNK;
}

/* ---- release and lookup ------------------------------------------------ */

/* What find_owner found on x's path. */
enum owner { OWNER_NONE, OWNER_FOUND, OWNER_DAMAGED };

/* find_owner above the last tier: the walk goes on from the last tier's
 * word on x's path, which was `w` and not ACTIVE. */
static inline __attribute__((always_inline)) enum owner
find_owner_above(struct shmi_geometry *g, uint64_t x, struct claim *out,
                 uint64_t *value, uint64_t w)
{
    for (unsigned t = g->tiers - 1;; t--) {
        const struct shmi_tier *tier = &g->tier[t];
        uint64_t index = x >> tier->span_log2;
        out->tier = t;
        out->word = index;
        if (t < g->tiers - 1)
            /* relaxed: as in find_owner. */
            w = shmi_atomic_load_relaxed(tier->words + index);
        if (t > 0 && !(w & ACTIVE)) {
            if (w != 0)
                return OWNER_DAMAGED; /* T2: neither 0 nor ACTIVE */
            continue;
        }
        unsigned node = shmi_word_owner(w, slot_of(tier, x), tier->eligible);
        if (node == 0 ||
            (w & shmi_word_subtree(node)) != shmi_word_subtree(node))
            return OWNER_NONE;
        out->node = node;
        *value = w;
        if (t > 0 && !parent_is_set(g, t, index))
            return OWNER_DAMAGED; /* an active word under a free node */
        /* The child word on x's path was just seen 0: a bottom-row node
         * has no other. */
        if (shmi_word_row_of(node) < SHMI_WORD_BOTTOM_ROW &&
            any_delegated_below(g, t, index, node, SHMI_WORD_SLOTS))
            return OWNER_DAMAGED; /* a chunk over active words */
        return OWNER_FOUND;
    }
}

/* Finds the allocation covering x: its word and node, and the word's
 * value as read. OWNER_NONE when x is not covered by one, OWNER_DAMAGED
 * when the words on its path disagree (T5), with *out naming the word.
 *
 * The walk goes up from the deepest tier: the first ACTIVE word on x's
 * path holds the allocation, if any. Below it the words are inactive
 * (nothing there); above it no node on the path can be allocated, since
 * an ACTIVE word's parent node is set as a delegation (T2) and a claim of
 * an ancestor would have needed that bit clear (W1). Small chunks, the
 * common ones, are found with one load, and their parent node checked
 * with one more. */
static inline __attribute__((always_inline)) enum owner
find_owner(struct shmi_geometry *g, uint64_t x, struct claim *out,
           uint64_t *value)
{
    unsigned t = g->tiers - 1;
    const struct shmi_tier *tier = &g->tier[t];
    uint64_t index = x >> tier->span_log2;
    /* relaxed: the caller owns the chunk (or is mistaken, which the final
     * CAS catches); the words on its path are stable. */
    uint64_t w = shmi_atomic_load_relaxed(tier->words + index);
    if (__builtin_expect(t > 0 && !(w & ACTIVE), 0))
        return find_owner_above(g, x, out, value, w);
    out->tier = t;
    out->word = index;
    unsigned node = shmi_word_owner(w, slot_of(tier, x), tier->eligible);
    if (node == 0 || (w & shmi_word_subtree(node)) != shmi_word_subtree(node))
        return OWNER_NONE; /* not allocated, or a damaged word (W1) */
    out->node = node;
    *value = w;
    if (t > 0 && __builtin_expect(!parent_is_set(g, t, index), 0))
        return OWNER_DAMAGED; /* an active word under a free node */
    return OWNER_FOUND;
}

/* The pieces of the allocation whose first piece find_owner found at x
 * (tree.h's shmi_tree_pieces), with T5 for the tail pieces of a tier
 * above the last: their child words must be 0, as the first piece's. */
static enum owner owner_pieces(struct shmi_geometry *g, uint64_t x,
                               const struct claim *c, uint64_t value,
                               struct shmi_tree_chunk *chunk)
{
    chunk->tier = c->tier;
    chunk->node = c->node;
    chunk->word = c->word;
    chunk->value = value;
    switch (shmi_tree_pieces(g, x, chunk)) {
    case SHMI_PIECES_NONE:
        return OWNER_NONE;
    case SHMI_PIECES_DAMAGED:
        return OWNER_DAMAGED;
    default:
        break;
    }
    if (chunk->tails != 0 && c->tier + 1 < g->tiers) {
        unsigned first = (unsigned)(x >> (g->tier[c->tier].span_log2 -
                                          SHMI_WORD_BOTTOM_ROW)) &
                         (SHMI_WORD_SLOTS - 1);
        for (uint32_t t = chunk->tails; t; t &= t - 1) {
            unsigned node =
                shmi_word_owner(value, first + (unsigned)__builtin_ctz(t),
                                g->tier[c->tier].eligible);
            if (any_delegated_below(g, c->tier, c->word, node, SHMI_WORD_SLOTS))
                return OWNER_DAMAGED;
        }
    }
    return OWNER_FOUND;
}

/* find_owner for a call that acts on the chunk: a disagreement is counted
 * and reported. Returns whether a chunk covering x was found. */
static inline __attribute__((always_inline)) bool
owner_to_act_on(struct shmi_geometry *g, uint64_t x, struct claim *out,
                uint64_t *value)
{
    enum owner found = find_owner(g, x, out, value);
    if (__builtin_expect(found == OWNER_FOUND, 1))
        return true;
    if (found == OWNER_DAMAGED)
        refuse_damage(g, out->tier, out->word, "a chunk whose words disagree");
    return false;
}

bool shmi_tree_find_slow(struct shmi_geometry *g, uint64_t x,
                         struct shmi_tree_chunk *chunk)
{
    SHMI_ASSERT_INTERNAL(x < g->capacity &&
                         x % ((uint64_t)1 << SHM_MIN_ALLOC_POW2) == 0);
    struct claim c;
    uint64_t value;
    /* The chunk must start at x: x is on the node's path, so that holds
     * iff x is aligned to the node's size. */
    if (!owner_to_act_on(g, x, &c, &value) || (x & (node_size(g, &c) - 1)) != 0)
        return false;
    enum owner found = owner_pieces(g, x, &c, value, chunk);
    if (found == OWNER_DAMAGED)
        refuse_damage(g, c.tier, c.word, "continuation bits the word denies");
    return found == OWNER_FOUND;
}

int shmi_tree_free_found(struct shmi_geometry *g, uint64_t x,
                         const struct shmi_tree_chunk *chunk)
{
    uint64_t value = chunk->value;
    if (SHM_TRIM && chunk->tails != 0) {
        /* Recorded, and the record cleared before the freeing CAS: after
         * it the pieces may be another's (pending.c). free_pieces with no
         * mask clears the bits only. */
        unsigned slot_log2 =
            g->tier[chunk->tier].span_log2 - SHMI_WORD_BOTTOM_ROW;
        shmi_pending_begin_trim(g, chunk->tier, x,
                                (unsigned)(chunk->length >> slot_log2), true);
        (void)free_pieces(g, chunk->tier, chunk->word, x, chunk->node, &value,
                          chunk->mask, 0, chunk->tails);
        SHMI_PENDING_TEST_POINT(SHMI_PENDING_AT_TRIM_UNMARKED, chunk->tier);
        shmi_pending_end(g, chunk->tier);
    }
    int err = free_pieces(g, chunk->tier, chunk->word, x, chunk->node, &value,
                          chunk->mask, chunk->mask, 0);
    if (err)
        return err;
    /* The word has a hole of this size now: this thread's next claim of
     * the size looks here first (a cached word, and a snug fit). */
    cursors_for(g)->word[chunk->tier][shmi_word_row_of(chunk->node)] =
        chunk->word;
    return 0;
}

int shmi_tree_free(struct shmi_geometry *g, uint64_t x)
{
    struct shmi_tree_chunk chunk;
    if (!shmi_tree_find(g, x, &chunk))
        return EINVAL;
    return shmi_tree_free_found(g, x, &chunk);
}

unsigned shmi_tree_free_batch(struct shmi_geometry *g, unsigned class_index,
                              const uint64_t *xs, unsigned count)
{
    unsigned freed = 0;
    for (unsigned i = 0; i < count;) {
        /* The chunks of xs[i..j) that lie in one word: one CAS. */
        struct shmi_tree_chunk first;
        if (!shmi_tree_find(g, xs[i], &first) ||
            shmi_tree_chunk_class(g, &first) != class_index) {
            i++;
            continue;
        }
        uint64_t mask = first.mask;
        unsigned j = i + 1;
        for (; j < count; j++) {
            struct shmi_tree_chunk next;
            if (!shmi_tree_find(g, xs[j], &next) || next.tier != first.tier ||
                next.word != first.word ||
                shmi_tree_chunk_class(g, &next) != class_index ||
                (mask & next.mask))
                break;
            mask |= next.mask;
            if (SHM_TRIM && next.tails != 0)
                cont_update(g, next.tier, xs[j], next.tails, false);
        }
        if (SHM_TRIM && first.tails != 0)
            cont_update(g, first.tier, xs[i], first.tails, false);
        shmi_atomic_word *word = word_at(g, first.tier, first.word);
        uint64_t value = first.value;
        SHMI_TEST_YIELD();
        /* seq_cst: as shmi_tree_free. Every node of the batch was found
         * set with its subtree (the chunk of its own slot, W3); a change
         * since must leave them so, or the batch is freed one by one. */
        bool done = true;
        while (!shmi_atomic_cas_seq_cst(word, &value, value & ~mask)) {
            if ((value & mask) != mask) {
                done = false;
                break;
            }
        }
        if (!done) {
            for (; i < j; i++)
                freed += shmi_tree_free(g, xs[i]) == 0;
            continue;
        }
        check_transition(g, first.tier, value, value & ~mask);
        publish_free(g, first.tier, first.word, value, value & ~mask);
        cursors_for(g)->word[first.tier][shmi_word_row_of(first.node)] =
            first.word;
        freed += j - i;
        i = j;
    }
    return freed;
}

uint64_t shmi_tree_usable(struct shmi_geometry *g, uint64_t x)
{
    struct claim c;
    uint64_t value;
    struct shmi_tree_chunk chunk;
    /* A query: a disagreement reads as no chunk and is not counted. */
    if (find_owner(g, x, &c, &value) != OWNER_FOUND || offset_of(g, &c) != x ||
        owner_pieces(g, x, &c, value, &chunk) != OWNER_FOUND)
        return 0;
    return chunk.length;
}

/* ---- resizing in place ------------------------------------------------ */

/* Shrinks the chunk c (word value `value`) inside its word to its first
 * descendant `keep`: one CAS frees the rest of its subtree, so no moment
 * exists at which the chunk is not allocated. */
static int shrink_in_word(struct shmi_geometry *g, struct claim *c,
                          uint64_t value, unsigned keep)
{
    shmi_atomic_word *word = word_at(g, c->tier, c->word);
    uint64_t old_mask = shmi_word_subtree(c->node);
    uint64_t released = old_mask & ~shmi_word_subtree(keep);
    do {
        if ((value & old_mask) != old_mask)
            return EINVAL;
        /* seq_cst: a free of the released part (see shmi_tree_free). */
    } while (!shmi_atomic_cas_seq_cst(word, &value, value & ~released));
    check_transition(g, c->tier, value, value & ~released);
    publish_free(g, c->tier, c->word, value, value & ~released);
    c->node = keep;
    return 0;
}

/* Hands the chunk c, a bottom-row node of a tier above the last, to its
 * child word W, which keeps only its first descendant `keep`: one CAS of
 * W from 0 (c allocated whole) to ACTIVE | mask(keep) (c delegated, its
 * first part allocated, the rest free in W). */
static int delegate_chunk(struct shmi_geometry *g, struct claim *c,
                          unsigned keep)
{
    uint64_t index =
        c->word * SHMI_WORD_SLOTS + (c->node - SHMI_WORD_FIRST_SLOT);
    uint64_t expected = 0, now = ACTIVE | shmi_word_subtree(keep);
    /* acq_rel: as activate_word's CAS (acquire from the retire that last
     * zeroed W; release to the claimers of the nodes it frees, so that
     * they see the chunk's writes, as after a free). Nobody but the
     * chunk's owner writes W while it is 0, so only damage fails it. */
    if (!shmi_atomic_cas_acq_rel(word_at(g, c->tier + 1, index), &expected,
                                 now)) {
        refuse_damage(g, c->tier + 1, index, "the word under a chunk in use");
        return ENOMEM;
    }
    publish_free(g, c->tier + 1, index, ~UINT64_C(0) & ~UINT64_C(1), now);
    c->tier++;
    c->word = index;
    c->node = keep;
    return 0;
}

/* Shrinks the chunk c (word value `value`) to 2^want_log2 bytes, less
 * than it has: within its word, then tier by tier down (see below). */
static int shrink(struct shmi_geometry *g, struct claim *c, uint64_t value,
                  unsigned want_log2)
{
    for (;;) {
        unsigned span = g->tier[c->tier].span_log2;
        unsigned row = shmi_word_row_of(c->node);
        unsigned want_row = span - want_log2;
        if (want_row <= SHMI_WORD_BOTTOM_ROW) {
            if (want_row == row)
                return 0;
            return shrink_in_word(g, c, value, c->node << (want_row - row));
        }
        if (row < SHMI_WORD_BOTTOM_ROW) {
            int err = shrink_in_word(g, c, value,
                                     c->node << (SHMI_WORD_BOTTOM_ROW - row));
            if (err)
                return err;
        }
        /* The child word's rows hold nodes of span - 5 - row' bytes: the
         * size wanted is on row want_row - 5 (>= 1), or below it. */
        unsigned next_row = want_row - SHMI_WORD_BOTTOM_ROW;
        if (next_row > SHMI_WORD_BOTTOM_ROW)
            next_row = SHMI_WORD_BOTTOM_ROW;
        int err = delegate_chunk(g, c, 1u << next_row);
        if (err)
            return err;
        value = ACTIVE | shmi_word_subtree(c->node);
    }
}

/*
 * Resizing in place. Within the chunk's word (the new size's class lives
 * in the chunk's tier, and x is the first slot of a node N of that class
 * in the word), the new allocation is the pieces of its length in N
 * (pieces_of; all of N untrimmed): a grow adds the nodes those pieces
 * cover beyond the old ones, a shrink clears the old ones they do not
 * (the old pieces' masks cover the new ones', or the reverse: the binary
 * decomposition's blocks are maximal aligned blocks, so an aligned block
 * inside [x, x + L) lies inside one of them). The start never moves. The
 * steps are those of a trimmed free and claim, in this order:
 *   1. free_pieces clears the continuation bits of the tail pieces that
 *      end (old tail starts that the new pieces cover from inside) and,
 *      on a shrink, in the same call CASes away what is given back;
 *   2. a grow CASes in what it takes (an acquire, as a claim; it fails,
 *      ENOMEM, when a node it needs is in use: step 1's bits are set
 *      again and the chunk is as it was);
 *   3. claim_tails sets the bits of the new tail starts.
 * So a continuation bit is only ever set where the word holds a piece of
 * the chunk that begins there, and K1 holds at every step; a process
 * killed between two steps leaves the chunk starting at x with its first
 * pieces and its later pieces allocated with clear bits, as a trimmed
 * claim or free killed midway does (see "Trimming"); an untrimmed resize
 * is one CAS.
 * Across tiers: shrinking an untrimmed chunk (node n on row r) to 2^k
 * bytes in a deeper tier keeps its first bottom-row node u, then
 * delegates it to u's child word W (CAS 0 -> ACTIVE | mask(d')), and so
 * on down. Each step is one CAS from one consistent state to another in
 * which the chunk still starts at x and is at least 2^k bytes: a process
 * killed between two steps leaves a chunk larger than asked (its owner's
 * free of x frees all of it), never a node that nobody owns, so the crash
 * notes at the top gain nothing. Growing across a tier boundary, or
 * shrinking a trimmed chunk into a deeper tier: ENOMEM, the caller moves
 * the chunk or keeps it.
 */
static int resize_in_word(struct shmi_geometry *g, uint64_t x,
                          const struct shmi_tree_chunk *chunk,
                          unsigned want_row, unsigned slots)
{
    unsigned tier = chunk->tier;
    unsigned slot0 = slot_of(&g->tier[tier], x);
    unsigned node =
        (1u << want_row) + (slot0 >> (SHMI_WORD_BOTTOM_ROW - want_row));
    if ((node << (SHMI_WORD_BOTTOM_ROW - want_row)) - SHMI_WORD_FIRST_SLOT !=
        slot0)
        return ENOMEM; /* x is not the start of a node that large */
    uint32_t tails;
    uint64_t mask = pieces_of(node, slots, &tails);
    uint64_t old_mask = chunk->mask;
    if (mask == old_mask)
        return 0;
    uint64_t taken = mask & ~old_mask, released = old_mask & ~mask;
    uint32_t ended = chunk->tails & ~tails, started = tails & ~chunk->tails;
    uint64_t value = chunk->value;
    SHMI_ASSERT_INTERNAL(taken == 0 || released == 0);
    if (taken == 0) {
        /* A shrink: steps 1 and 3. */
        int err = free_pieces(g, tier, chunk->word, x, chunk->node, &value,
                              old_mask, released, ended);
        if (err)
            return err;
        claim_tails(g, tier, x, started);
        return 0;
    }
    /* A grow. The new first piece's ancestors in the word must be clear
     * (W1; they are, but in a damaged word), and what it takes free. */
    uint64_t ancestors =
        shmi_word_path_masks[slot0] & ~mask & g->tier[tier].eligible;
    if ((value & (taken | ancestors)) != 0)
        return ENOMEM; /* a buddy is in use */
    int err = free_pieces(g, tier, chunk->word, x, chunk->node, &value,
                          old_mask, 0, ended);
    if (err)
        return err;
    shmi_atomic_word *word = word_at(g, tier, chunk->word);
    bool grown = false;
    for (;;) {
        if ((value & old_mask) != old_mask) {
            claim_tails(g, tier, x, ended);
            return EINVAL;
        }
        if ((value & (taken | ancestors)) != 0)
            break;
        /* acq_rel: a claim of the buddies (see try_claim_in_word). */
        if (shmi_atomic_cas_acq_rel(word, &value, value | taken)) {
            grown = true;
            break;
        }
    }
    if (!grown) {
        claim_tails(g, tier, x, ended); /* the chunk as it was */
        return ENOMEM;
    }
    check_transition(g, tier, value, value | taken);
    if (tier + 1 < g->tiers &&
        (delegated_below(g, tier, chunk->word, node) & taken) != 0) {
        /* T5, as for a claim: keep the delegated nodes the damage cleared
         * set, give the rest of the buddies back, keep the chunk. */
        uint64_t give_back =
            taken & ~delegated_below(g, tier, chunk->word, node);
        uint64_t now = value | taken;
        refuse_damage(g, tier, chunk->word,
                      "a free buddy whose child word is in use");
        /* seq_cst: a free of the buddies (see shmi_tree_free). */
        while (!shmi_atomic_cas_seq_cst(word, &now, now & ~give_back))
            ;
        publish_free(g, tier, chunk->word, now, now & ~give_back);
        claim_tails(g, tier, x, ended);
        return ENOMEM;
    }
    claim_tails(g, tier, x, started);
    return 0;
}

int shmi_tree_resize(struct shmi_geometry *g, uint64_t x, unsigned class_index,
                     uint64_t length)
{
    struct claim c;
    uint64_t value;
    struct shmi_tree_chunk chunk;
    if (!owner_to_act_on(g, x, &c, &value) || offset_of(g, &c) != x)
        return EINVAL;
    switch (owner_pieces(g, x, &c, value, &chunk)) {
    case OWNER_FOUND:
        break;
    case OWNER_DAMAGED:
        refuse_damage(g, c.tier, c.word, "continuation bits the word denies");
        return EINVAL;
    default:
        return EINVAL; /* the start of a tail piece */
    }
    if (g->layout.class_tier[class_index] == c.tier)
        return resize_in_word(g, x, &chunk, g->layout.class_row[class_index],
                              SHM_TRIM ? slots_for(g, class_index, length)
                                       : SHMI_WORD_SLOTS);
    unsigned want_log2 = SHM_MIN_ALLOC_POW2 + class_index;
    if (chunk.tails != 0 ||
        want_log2 > g->tier[c.tier].span_log2 - shmi_word_row_of(c.node))
        return ENOMEM; /* the caller moves it or keeps it */
    return shrink(g, &c, value, want_log2);
}

/* ---- formatting -------------------------------------------------------- */

static void format_word(struct shmi_geometry *g, unsigned tier, uint64_t index,
                        uint64_t value);

/* Pins the part of `node` (in word `index` of `tier`) past the capacity
 * into *value, delegating a straddling bottom-row node to its child. */
static void pin_node(struct shmi_geometry *g, unsigned tier, uint64_t index,
                     unsigned node, uint64_t *value)
{
    struct claim c = {tier, index, node, 0};
    uint64_t start = offset_of(g, &c), size = node_size(g, &c);
    if (start >= g->capacity) {
        *value |= shmi_word_subtree(node);
    } else if (start + size > g->capacity) {
        if (shmi_word_row_of(node) < SHMI_WORD_BOTTOM_ROW) {
            pin_node(g, tier, index, 2 * node, value);
            pin_node(g, tier, index, 2 * node + 1, value);
        } else {
            /* The capacity is a multiple of 2^MIN, so only a node with a
             * child word can straddle it. */
            *value |= UINT64_C(1) << node;
            format_word(g, tier + 1,
                        index * SHMI_WORD_SLOTS + node - SHMI_WORD_FIRST_SLOT,
                        ACTIVE);
        }
    }
}

static void format_word(struct shmi_geometry *g, unsigned tier, uint64_t index,
                        uint64_t value)
{
    unsigned row = first_row(g, tier);
    for (unsigned node = 1u << row; node < 2u << row; node++)
        pin_node(g, tier, index, node, &value);
    shmi_atomic_store_relaxed(word_at(g, tier, index), value);
    publish_free(g, tier, index, ~UINT64_C(1), value);
}

void shmi_tree_format(struct shmi_geometry *g)
{
    shmi_atomic_store_relaxed(damage_counter(g), 0);
    for (uint64_t i = 0; i < g->tier[0].count; i++)
        format_word(g, 0, i, 0);
}
