/*
 * Arenas: opening (attach or create), closing, and the shm_arena_* API.
 *
 * Creating a file, so that racing creators and attachers never see a
 * half-made one and exactly one creator wins:
 *   1. a file with no name (O_TMPFILE) in the target directory, mode as
 *      asked (0600 by default);
 *   2. sized, with disk space reserved (posix_fallocate) unless sparse;
 *   3. mapped, trees formatted, superblock written last;
 *   4. published with link(): EEXIST means another creator won, and this
 *      one attaches to the winner's file instead.
 * A creator killed before step 4 leaves nothing behind: an unnamed file
 * disappears with its last descriptor.
 *
 * Attaching to an existing file: opened with O_NOFOLLOW (no symlinks), must
 * be a regular file owned by the caller (or its group, when allowed); the
 * superblock is read with pread and validated (layout.c) against this
 * build and the file's real size before anything is mapped. A refused file
 * is never written.
 */
#include "arena.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "os.h"
#include "process_table.h"
#include "report.h"
#include "shared_header.h"
#include "tree.h"

#define KNOWN_FLAGS                                                            \
    (SHM_ARENA_NO_CREATE | SHM_ARENA_EXCLUSIVE | SHM_ARENA_SPARSE |            \
     SHM_ARENA_SHARED_GROUP | SHM_ARENA_READ_ONLY | SHM_ARENA_SAME_ADDRESS |   \
     SHM_ARENA_REMOVE_ON_LAST_CLOSE)
#define DEFAULT_MODE 0600u

static _Atomic(uint64_t) next_serial = 1;

static uint64_t data_alignment(const struct shmi_layout *layout)
{
    uint64_t a = UINT64_C(1) << SHM_MAX_ALLOC_POW2;
    return a > layout->page_size ? a : layout->page_size;
}

/* Fills the handle's derived fields from a validated layout. */
static void bind(shm_arena *arena, void *base, const struct shmi_layout *l)
{
    arena->base = base;
    arena->map_size = l->file_size;
    arena->layout = *l;
    arena->data_offset = l->data_offset;
    arena->capacity = l->capacity;
    arena->words = (shmi_atomic_word *)(arena->base + l->words_offset);
    shmi_atomic_word *index =
        (shmi_atomic_word *)(arena->base + l->index_offset);
    for (unsigned t = 0; t < l->tiers; t++) {
        struct shmi_tier *tier = &arena->tier[t];
        tier->words = arena->words + l->tier_first_word[t];
        tier->count = l->tier_words[t];
        tier->span_log2 = l->span_log2[t];
        tier->first_row = t == 0 ? l->top_first_row : 1;
        tier->eligible = shmi_word_rows_from(tier->first_row);
    }
    for (unsigned t = 0; t < l->tiers; t++) {
        uint64_t bits = l->tier_words[t];
        unsigned first = t == 0 ? l->top_first_row : 1;
        for (unsigned row = first; row < SHMI_WORD_ROWS; row++)
            shmi_index_bind(&arena->hints[t][row],
                            index + l->hint_index_at[t][row], bits);
        if (t > 0)
            shmi_index_bind(&arena->empty[t], index + l->empty_index_at[t],
                            bits);
    }
    arena->serial =
        atomic_fetch_add_explicit(&next_serial, 1, memory_order_relaxed);
}

static int attach(int fd, const struct shmi_file_info *info,
                  const struct shm_arena_options *opts, shm_arena **out)
{
    /* The owner check protects writers: whoever the kernel lets read the
     * file may inspect it through a read-only mapping. */
    if (!(opts->flags & SHM_ARENA_READ_ONLY) &&
        !shmi_os_may_adopt(info, opts->flags & SHM_ARENA_SHARED_GROUP))
        return EACCES;
    uint64_t page = shmi_os_page_size();
    struct shmi_superblock sb;
    if (info->size < sizeof sb)
        return EBADMSG;
    int err = shmi_os_read_at(fd, &sb, sizeof sb, 0);
    if (err)
        return err;
    struct shmi_layout layout;
    err = shmi_superblock_validate(&sb, info->size, page, &layout);
    if (err)
        return err;
    bool read_only = opts->flags & SHM_ARENA_READ_ONLY;
    void *address = opts->address;
    if (opts->flags & SHM_ARENA_SAME_ADDRESS) {
        /* The recorded address is a number from the file: it must be a
         * plausible, aligned user-space address before mmap sees it. */
        uint64_t want = sb.creator_base;
        if (want == 0 || want % data_alignment(&layout) != 0 ||
            want > UINTPTR_MAX - layout.file_size)
            return EBADMSG;
        address = (void *)(uintptr_t)want;
    }
    void *base;
    err = shmi_os_map(fd, layout.file_size, !read_only, address,
                      data_alignment(&layout), &base);
    if (err)
        return err;
    if (!read_only) {
        err = shmi_os_protect_read_only(base, page);
        if (err) {
            shmi_os_unmap(base, layout.file_size);
            return err;
        }
    }
    shm_arena *arena = calloc(1, sizeof *arena);
    if (!arena) {
        shmi_os_unmap(base, layout.file_size);
        return ENOMEM;
    }
    bind(arena, base, &layout);
    arena->read_only = read_only;
    *out = arena;
    return 0;
}

static int create(const char *path, const struct shm_arena_options *opts,
                  shm_arena **out)
{
    uint64_t page = shmi_os_page_size();
    uint64_t capacity = shmi_layout_round_capacity(opts->capacity, page);
    struct shmi_layout layout;
    if (capacity == 0 || shmi_layout_compute(capacity, page, &layout) != 0)
        return EINVAL;
    int fd;
    char temp_path[PATH_MAX];
    unsigned mode = opts->mode ? opts->mode : DEFAULT_MODE;
    int err = shmi_os_create_unpublished(path, mode, &fd, temp_path,
                                         sizeof temp_path);
    if (err)
        return err;
    void *base = NULL;
    shm_arena *arena = NULL;
    err = shmi_os_reserve(fd, layout.file_size, layout.metadata_end,
                          layout.data_offset, opts->flags & SHM_ARENA_SPARSE);
    if (!err)
        err = shmi_os_map(fd, layout.file_size, true, opts->address,
                          data_alignment(&layout), &base);
    if (!err && !(arena = calloc(1, sizeof *arena)))
        err = ENOMEM;
    if (!err) {
        bind(arena, base, &layout);
        shmi_tree_format(arena);
        struct shmi_superblock sb;
        shmi_superblock_fill(&sb, &layout, (uint32_t)geteuid(),
                             (uint64_t)(uintptr_t)base, shmi_os_now_ns());
        memcpy(base, &sb, sizeof sb);
        err = shmi_os_protect_read_only(base, page);
    }
    if (!err)
        err = shmi_os_publish(fd, temp_path, path);
    else
        shmi_os_discard(temp_path);
    shmi_os_close(fd);
    if (err) {
        shmi_os_unmap(base, layout.file_size);
        free(arena);
        return err;
    }
    *out = arena;
    return 0;
}

/* Enters the process in the file's process table. Not being entered
 * (a full table) does not fail the open: only ESTALE, a file being
 * removed by its last process, does; the handle is then dropped. */
static int register_process(shm_arena *arena, const char *path,
                            const struct shm_arena_options *opts)
{
    if ((opts->flags & SHM_ARENA_REMOVE_ON_LAST_CLOSE) && !arena->read_only &&
        !(arena->remove_path = strdup(path))) {
        shmi_os_unmap(arena->base, arena->map_size);
        free(arena);
        return ENOMEM;
    }
    int err = shmi_process_table_attach(arena);
    if (err == ESTALE) {
        shmi_os_unmap(arena->base, arena->map_size);
        free(arena->remove_path);
        free(arena);
    }
    return err;
}

shm_arena *shm_arena_open(const char *path,
                          const struct shm_arena_options *options)
{
    static const struct shm_arena_options defaults = {0};
    const struct shm_arena_options *opts = options ? options : &defaults;
    if (!path || !*path || (opts->flags & ~KNOWN_FLAGS) ||
        (opts->mode & ~07777u) ||
        ((opts->flags & SHM_ARENA_READ_ONLY) &&
         (opts->flags & SHM_ARENA_EXCLUSIVE))) {
        errno = EINVAL;
        return NULL;
    }
    bool read_only = opts->flags & SHM_ARENA_READ_ONLY;
    /* A file can vanish between a failed link and the next open (its owner
     * removed it): a few rounds settle that. */
    for (unsigned round = 0; round < 16; round++) {
        int fd;
        struct shmi_file_info info;
        int err = shmi_os_open_existing(path, read_only, &fd, &info);
        if (err == 0) {
            shm_arena *arena = NULL;
            err = (opts->flags & SHM_ARENA_EXCLUSIVE)
                      ? EEXIST
                      : attach(fd, &info, opts, &arena);
            shmi_os_close(fd);
            if (err) {
                shmi_report("shm_arena_open: refusing %s: %s", path,
                            strerror(err));
                errno = err;
                return NULL;
            }
            err = register_process(arena, path, opts);
            if (err == ESTALE)
                continue; /* its last process is removing it: open anew */
            if (err == ENOMEM) {
                errno = ENOMEM;
                return NULL;
            }
            if (!read_only)
                shmi_process_table_live(arena); /* clears the dead, and
                                                   repairs after them */
            return arena;
        }
        if (err != ENOENT || (opts->flags & SHM_ARENA_NO_CREATE) || read_only) {
            errno = err;
            return NULL;
        }
        shm_arena *arena = NULL;
        err = create(path, opts, &arena);
        if (err == 0) {
            err = register_process(arena, path, opts);
            if (err == ESTALE)
                continue;
            if (err == ENOMEM) {
                errno = ENOMEM;
                return NULL;
            }
            return arena;
        }
        if (err != EEXIST || (opts->flags & SHM_ARENA_EXCLUSIVE)) {
            shmi_report("shm_arena_open: cannot create %s: %s", path,
                        strerror(err));
            errno = err;
            return NULL;
        }
    }
    errno = EAGAIN;
    return NULL;
}

int shm_arena_close(shm_arena *arena)
{
    if (!arena)
        return 0;
    int err = 0;
    if (arena->remove_path)
        err = shmi_process_table_detach_last(arena, arena->remove_path);
    else
        shmi_process_table_detach(arena);
    shmi_os_unmap(arena->base, arena->map_size);
    free(arena->remove_path);
    free(arena);
    return err;
}

int shm_arena_reset(shm_arena *arena)
{
    int err = 0;
    if (!arena)
        err = EINVAL;
    else if (arena->read_only)
        err = EROFS;
    else if (shmi_process_table_live(arena) > 1)
        err = EBUSY;
    if (err) {
        errno = err;
        return err;
    }
    const struct shmi_layout *l = &arena->layout;
    memset(shmi_arena_shared_header(arena), 0, SHMI_ROOTS_SIZE);
    memset(arena->base + l->index_offset, 0, l->metadata_end - l->index_offset);
    shmi_tree_format(arena);
    return 0;
}

int shm_arena_unlink(const char *path)
{
    int fd;
    struct shmi_file_info info;
    int err =
        path && *path ? shmi_os_open_existing(path, true, &fd, &info) : EINVAL;
    if (err == 0) {
        shmi_os_close(fd);
        err = shmi_os_remove(path);
    }
    if (err)
        errno = err;
    return err;
}

void *shm_arena_base(const shm_arena *arena)
{
    return arena ? arena->base : NULL;
}

size_t shm_arena_capacity(const shm_arena *arena)
{
    return arena ? (size_t)arena->capacity : 0;
}

size_t shm_arena_mapping_size(const shm_arena *arena)
{
    return arena ? (size_t)arena->map_size : 0;
}

size_t shm_mapping_size_for_capacity(size_t capacity)
{
    uint64_t page = shmi_os_page_size();
    uint64_t rounded = shmi_layout_round_capacity(capacity, page);
    struct shmi_layout layout;
    if (rounded == 0 || shmi_layout_compute(rounded, page, &layout) != 0) {
        errno = EINVAL;
        return 0;
    }
    return (size_t)layout.file_size;
}

/* ---- allocation -------------------------------------------------------- */

/* Index of the size class serving `size` (which is <= 2^MAX). */
static unsigned class_of(size_t size)
{
    if (size <= (size_t)1 << SHM_MIN_ALLOC_POW2)
        return 0;
    unsigned log2 = 64u - (unsigned)__builtin_clzll((uint64_t)size - 1);
    return log2 - SHM_MIN_ALLOC_POW2;
}

/* Arena usable for writing, or errno set. */
static bool writable(const shm_arena *arena)
{
    if (!arena) {
        errno = EINVAL;
        return false;
    }
    if (arena->read_only) {
        errno = EROFS;
        return false;
    }
    return true;
}

/* Whether size exceeds the largest chunk; if so reports it and sets
 * ENOMEM. */
static bool too_large(const char *call, size_t size)
{
    if (size <= (size_t)1 << SHM_MAX_ALLOC_POW2)
        return false;
    shmi_report("%s: %zu bytes is more than the largest chunk (%zu)", call,
                size, (size_t)1 << SHM_MAX_ALLOC_POW2);
    errno = ENOMEM;
    return true;
}

shm_offt shm_arena_malloc(shm_arena *arena, size_t size)
{
    if (!writable(arena))
        return SHM_NULL;
    if (too_large("shm_malloc", size))
        return SHM_NULL;
    uint64_t x = shmi_tree_alloc(arena, class_of(size));
    if (x == SHMI_NO_CHUNK) {
        errno = ENOMEM;
        return SHM_NULL;
    }
    return arena->data_offset + x;
}

shm_offt shm_arena_calloc(shm_arena *arena, size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        if (writable(arena)) {
            shmi_report("shm_calloc: %zu * %zu overflows", count, size);
            errno = ENOMEM;
        }
        return SHM_NULL;
    }
    shm_offt off = shm_arena_malloc(arena, total);
    if (off != SHM_NULL)
        memset(arena->base + off, 0, total);
    return off;
}

/* Data offset of `off` when it can start a chunk; SHMI_NO_CHUNK when it
 * lies outside the data region or is misaligned. */
static uint64_t data_position(const shm_arena *arena, shm_offt off)
{
    if (off < arena->data_offset || off - arena->data_offset >= arena->capacity)
        return SHMI_NO_CHUNK;
    uint64_t x = off - arena->data_offset;
    if (x & ((UINT64_C(1) << SHM_MIN_ALLOC_POW2) - 1))
        return SHMI_NO_CHUNK;
    return x;
}

void shm_arena_free(shm_arena *arena, shm_offt off)
{
    if (off == SHM_NULL)
        return;
    if (!writable(arena))
        return;
    uint64_t x = data_position(arena, off);
    if (x == SHMI_NO_CHUNK || shmi_tree_free(arena, x) != 0) {
        shmi_report("shm_free: %" PRIu64 " is not the start of a live "
                    "allocation",
                    off);
        errno = EINVAL;
    }
}

size_t shm_arena_usable_size(shm_arena *arena, shm_offt off)
{
    if (!arena) {
        errno = EINVAL;
        return 0;
    }
    uint64_t x = data_position(arena, off);
    uint64_t size = x == SHMI_NO_CHUNK ? 0 : shmi_tree_usable(arena, x);
    if (size == 0) {
        shmi_report("shm_usable_size: %" PRIu64 " is not the start of a "
                    "live allocation",
                    off);
        errno = EINVAL;
    }
    return (size_t)size;
}

size_t shm_arena_available(shm_arena *arena)
{
    return arena ? (size_t)shmi_tree_free_bytes(arena) : 0;
}

int shm_arena_check(shm_arena *arena)
{
    if (!arena) {
        errno = EINVAL;
        return -1;
    }
    uint64_t bad = shmi_tree_check(arena);
    return bad > INT_MAX ? INT_MAX : (int)bad;
}

void *shm_arena_ptr_malloc(shm_arena *arena, size_t size)
{
    shm_offt off = shm_arena_malloc(arena, size);
    return off == SHM_NULL ? NULL : arena->base + off;
}

void *shm_arena_ptr_calloc(shm_arena *arena, size_t count, size_t size)
{
    shm_offt off = shm_arena_calloc(arena, count, size);
    return off == SHM_NULL ? NULL : arena->base + off;
}

void shm_arena_ptr_free(shm_arena *arena, void *ptr)
{
    if (!ptr)
        return;
    if (!arena) {
        errno = EINVAL;
        return;
    }
    uintptr_t p = (uintptr_t)ptr, base = (uintptr_t)arena->base;
    if (p < base || p - base >= arena->map_size) {
        shmi_report("ptr_free: %p is outside the arena's mapping", ptr);
        errno = EINVAL;
        return;
    }
    shm_arena_free(arena, (shm_offt)(p - base));
}

shm_offt shm_arena_realloc(shm_arena *arena, shm_offt off, size_t size)
{
    if (off == SHM_NULL)
        return shm_arena_malloc(arena, size);
    if (!writable(arena))
        return SHM_NULL;
    uint64_t x = data_position(arena, off);
    uint64_t old_size = x == SHMI_NO_CHUNK ? 0 : shmi_tree_usable(arena, x);
    if (old_size == 0) {
        shmi_report("shm_realloc: %" PRIu64 " is not the start of a live "
                    "allocation",
                    off);
        errno = EINVAL;
        return SHM_NULL;
    }
    if (too_large("shm_realloc", size))
        return SHM_NULL;
    unsigned wanted = class_of(size);
    int err = shmi_tree_resize(arena, x, wanted);
    if (err == EINVAL) {
        errno = EINVAL;
        return SHM_NULL;
    }
    /* Done in place, or a shrink that must cross a tier: the chunk it has
     * is large enough, so it stays. */
    if (err == 0 || ((uint64_t)1 << (SHM_MIN_ALLOC_POW2 + wanted)) <= old_size)
        return off;
    shm_offt moved = shm_arena_malloc(arena, size);
    if (moved == SHM_NULL)
        return SHM_NULL;
    memcpy(arena->base + moved, arena->base + off, (size_t)old_size);
    shm_arena_free(arena, off);
    return moved;
}

void *shm_arena_ptr_realloc(shm_arena *arena, void *ptr, size_t size)
{
    if (!ptr)
        return shm_arena_ptr_malloc(arena, size);
    if (!arena) {
        errno = EINVAL;
        return NULL;
    }
    uintptr_t p = (uintptr_t)ptr, base = (uintptr_t)arena->base;
    if (p < base || p - base >= arena->map_size) {
        shmi_report("ptr_realloc: %p is outside the arena's mapping", ptr);
        errno = EINVAL;
        return NULL;
    }
    shm_offt off = shm_arena_realloc(arena, (shm_offt)(p - base), size);
    return off == SHM_NULL ? NULL : arena->base + off;
}

/* ---- statistics -------------------------------------------------------- */

int shm_arena_stats(shm_arena *arena, struct shm_stats *stats)
{
    if (!arena || !stats)
        return EINVAL;
    memset(stats, 0, sizeof *stats);
    stats->capacity = (size_t)arena->capacity;
    stats->mapping_size = (size_t)arena->map_size;
    stats->bytes_free = (size_t)shmi_tree_free_bytes(arena);
    stats->bytes_in_use = stats->capacity > stats->bytes_free
                              ? stats->capacity - stats->bytes_free
                              : 0;
    stats->min_chunk = (size_t)1 << SHM_MIN_ALLOC_POW2;
    stats->max_chunk = (size_t)1 << SHM_MAX_ALLOC_POW2;
    stats->classes = SHMI_CLASSES;
    uint64_t counts[SHMI_CLASSES];
    shmi_tree_census(arena, counts);
    for (unsigned c = 0; c < SHMI_CLASSES; c++) {
        stats->free_chunks[c] = (size_t)counts[c];
        if (counts[c])
            stats->largest_free = (size_t)1 << (SHM_MIN_ALLOC_POW2 + c);
    }
    stats->attached_processes = shmi_arena_live_processes(arena);
    return 0;
}

int shm_arena_block_usage(shm_arena *arena, size_t first_block, size_t count,
                          uint32_t *used_bytes)
{
    if (!arena || (count && !used_bytes))
        return EINVAL;
    const uint64_t block = UINT64_C(1) << SHM_MAX_ALLOC_POW2;
    uint64_t blocks = (arena->capacity + block - 1) >> SHM_MAX_ALLOC_POW2;
    if (first_block > blocks || count > blocks - first_block)
        return EINVAL;
    if (count == 0)
        return 0;
    shmi_tree_block_free_bytes(arena, first_block, count, used_bytes);
    for (size_t i = 0; i < count; i++) {
        /* The last block may be cut by the capacity: only its part below
         * the capacity counts. */
        uint64_t start = (uint64_t)(first_block + i) << SHM_MAX_ALLOC_POW2;
        uint64_t size =
            arena->capacity - start < block ? arena->capacity - start : block;
        uint64_t free_bytes = used_bytes[i] < size ? used_bytes[i] : size;
        used_bytes[i] = (uint32_t)(size - free_bytes);
    }
    return 0;
}

size_t shm_arena_maxsize(shm_arena *arena)
{
    struct shm_stats stats;
    return shm_arena_stats(arena, &stats) == 0 ? stats.largest_free : 0;
}

size_t shmi_arena_live_processes(shm_arena *arena)
{
    return shmi_process_table_live(arena);
}

struct process_visit {
    int (*visit)(const struct shm_process *, void *);
    void *context;
};

static int visit_process(const struct shmi_process_info *info, void *ctx)
{
    const struct process_visit *pv = ctx;
    struct shm_process p = {info->pid, info->start_time, info->live};
    return pv->visit(&p, pv->context);
}

int shm_arena_processes(shm_arena *arena,
                        int (*visit)(const struct shm_process *, void *),
                        void *context)
{
    if (!arena || !visit)
        return EINVAL;
    struct process_visit pv = {visit, context};
    return shmi_process_table_foreach(arena, visit_process, &pv);
}
