/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The default arena and the global API of the old shm_alloc: thin
 * wrappers that forward to the shm_arena_* functions.
 *
 * A constructor attaches the file named by $SHM_FILE before main(), unless
 * the program defines shm_no_auto_attach. When the variable is unset or
 * empty the library stays inert; when the file cannot be used, the errno
 * of that failure is kept and reported by every allocation until an
 * attach succeeds. The program always starts: nothing
 * here prints, exits or aborts.
 *
 * The default arena is one atomic pointer. shm_init opens an arena and
 * installs it with a CAS; a thread that loses the race closes its own and
 * uses the winner's, so shm_init is idempotent and thread-safe without a
 * lock. After fork() the child inherits the mapping and the pointer.
 */
#include <errno.h>
#include <stdlib.h>

#include "arena.h"
#include "config.h"
#include "os.h"

static _Atomic(shm_arena *) default_arena;
static _Atomic(int) attach_error;

/* Parses a capacity, exactly this grammar (docs/how_to_use.md):
 *   size   = digits [ unit [ "B" | "iB" ] ]
 *   digits = one or more of 0-9
 *   unit   = "K" | "M" | "G" | "T"       powers of 1024
 * Nothing before or after it (no space, sign, lower case). 0 for
 * anything else, for a size of 0 and for one that does not fit a size_t:
 * the caller refuses those with EINVAL. */
static size_t parse_size(const char *text)
{
    const char *p = text;
    uint64_t value = 0;
    if (*p < '0' || *p > '9')
        return 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned digit = (unsigned)(*p - '0');
        if (value > (UINT64_MAX - digit) / 10)
            return 0;
        value = value * 10 + digit;
    }
    unsigned shift = 0;
    switch (*p) {
    case 'K':
        shift = 10;
        break;
    case 'M':
        shift = 20;
        break;
    case 'G':
        shift = 30;
        break;
    case 'T':
        shift = 40;
        break;
    default:
        break;
    }
    if (shift) {
        p++;
        if (p[0] == 'B')
            p++;
        else if (p[0] == 'i' && p[1] == 'B')
            p += 2;
    }
    if (*p != '\0' || value > (SIZE_MAX >> shift))
        return 0;
    return (size_t)(value << shift);
}

bool shm_init(void *optional_addr, const char *shm_filename)
{
    if (atomic_load_explicit(&default_arena, memory_order_acquire))
        return true;
    const char *path = shm_filename ? shm_filename : getenv(SHM_PATH_ENV_NAME);
    if (!path || !*path) {
        errno = EINVAL;
        atomic_store_explicit(&attach_error, EINVAL, memory_order_relaxed);
        return false;
    }
    struct shm_arena_options opts = {0};
    opts.address = optional_addr;
    const char *size = getenv(SHM_SIZE_ENV_NAME);
    if (size && *size && (opts.capacity = parse_size(size)) == 0) {
        errno = EINVAL;
        atomic_store_explicit(&attach_error, EINVAL, memory_order_relaxed);
        return false;
    }
    shm_arena *arena = shm_arena_open(path, &opts);
    if (!arena) {
        atomic_store_explicit(&attach_error, errno, memory_order_relaxed);
        return false;
    }
    shm_arena *expected = NULL;
    /* acq_rel: release publishes the arena handle to threads that load it
     * with acquire; acquire (on failure too, via the reload below) gives
     * us the winner's handle. */
    if (!atomic_compare_exchange_strong_explicit(&default_arena, &expected,
                                                 arena, memory_order_acq_rel,
                                                 memory_order_acquire))
        shm_arena_close(arena);
    atomic_store_explicit(&attach_error, 0, memory_order_relaxed);
    return true;
}

void shm_deinit(void)
{
    /* acq_rel: takes the handle out so no later caller reaches it. */
    shm_arena *arena =
        atomic_exchange_explicit(&default_arena, NULL, memory_order_acq_rel);
    shm_arena_close(arena);
}

/* Defined by a program that opens its arenas itself (shm_alloc.h); weak,
 * so that its address is NULL in every other program. */
extern const int shm_no_auto_attach __attribute__((weak));

__attribute__((constructor)) static void attach_from_environment(void)
{
    if (&shm_no_auto_attach != NULL && shm_no_auto_attach != 0)
        return;
    const char *path = getenv(SHM_PATH_ENV_NAME);
    if (!path || !*path)
        return;
    int saved = errno;
    shm_init(NULL, path);
    errno = saved;
}

shm_arena *shm_default_arena(void)
{
    /* acquire: pairs with shm_init's CAS that installed the handle. */
    return atomic_load_explicit(&default_arena, memory_order_acquire);
}

/* The default arena, or NULL with errno saying why there is none. */
static shm_arena *current(void)
{
    shm_arena *arena = shm_default_arena();
    if (!arena) {
        int err = atomic_load_explicit(&attach_error, memory_order_relaxed);
        errno = err ? err : ENXIO;
    }
    return arena;
}

shm_arena *shmi_current_arena(void)
{
    return current();
}

void *get_shm_user_base(void)
{
    shm_arena *arena = shm_default_arena();
    return arena ? arena->geo.base : NULL;
}

shm_offt shm_malloc(size_t size)
{
    shm_arena *arena = current();
    return arena ? shmi_arena_malloc(arena, size) : SHM_NULL;
}

shm_offt shm_calloc(size_t count, size_t size)
{
    shm_arena *arena = current();
    return arena ? shmi_arena_calloc(arena, count, size) : SHM_NULL;
}

void shm_free(shm_offt off)
{
    if (off == SHM_NULL)
        return;
    shm_arena *arena = current(); /* or errno says why there is none */
    if (arena)
        shmi_arena_free(arena, off);
}

size_t shm_usable_size(shm_offt off)
{
    shm_arena *arena = current();
    return arena ? shmi_arena_usable_size(arena, off) : 0;
}

size_t shm_available(void)
{
    shm_arena *arena = current();
    return arena ? shm_arena_available(arena) : 0;
}

int shm_check(void)
{
    shm_arena *arena = current();
    return arena ? shm_arena_check(arena) : -1;
}

void *ptr_malloc(size_t size)
{
    shm_arena *arena = current();
    shm_offt off = arena ? shmi_arena_malloc_as(arena, size, "ptr_malloc") : 0;
    return off == SHM_NULL ? NULL : arena->geo.base + off;
}

void *ptr_calloc(size_t count, size_t size)
{
    shm_arena *arena = current();
    shm_offt off = arena ? shmi_arena_calloc(arena, count, size) : SHM_NULL;
    return off == SHM_NULL ? NULL : arena->geo.base + off;
}

void ptr_free(void *ptr)
{
    if (!ptr)
        return;
    shm_arena *arena = current(); /* or errno says why there is none */
    if (arena)
        shmi_arena_ptr_free(arena, ptr, "ptr_free");
}

shm_offt shm_realloc(shm_offt off, size_t size)
{
    shm_arena *arena = current();
    return arena ? shmi_arena_realloc(arena, off, size) : SHM_NULL;
}

void *ptr_realloc(void *ptr, size_t size)
{
    shm_arena *arena = current();
    return arena ? shm_arena_ptr_realloc(arena, ptr, size) : NULL;
}

int shm_stats(struct shm_stats *stats)
{
    shm_arena *arena = current();
    return arena ? shm_arena_stats(arena, stats) : errno;
}

size_t shm_maxsize(void)
{
    shm_arena *arena = current();
    return arena ? shm_arena_maxsize(arena) : 0;
}

int shm_recover(struct shm_recovery *report)
{
    shm_arena *arena = current();
    if (!arena) {
        int err = errno;
        if (report)
            *report = (struct shm_recovery){0, 0, 0};
        return err;
    }
    return shm_arena_recover(arena, report);
}

int shm_flush_thread_cache(void)
{
    shm_arena *arena = current();
    return arena ? shm_arena_flush_thread_cache(arena) : errno;
}

int shm_collect(shm_trace_fn trace, void *context,
                struct shm_collection *report)
{
    shm_arena *arena = current();
    if (!arena) {
        int err = errno;
        if (report)
            *report = (struct shm_collection){0, 0, 0, 0, {0, 0, 0}};
        return err;
    }
    return shm_arena_collect(arena, trace, context, report);
}

int shm_reset(void)
{
    shm_arena *arena = current();
    return arena ? shm_arena_reset(arena) : errno;
}

/* The named roots of the current arena (roots.c holds the arena's; these
 * stay here so that a program calling only shm_arena_* and shm_cache_*
 * functions, linked statically, leaves this file and its constructor
 * out). */
shm_offt shm_root_get(const char *name)
{
    shm_arena *arena = shmi_current_arena();
    return arena == NULL ? SHM_NULL : shm_arena_root_get(arena, name);
}

int shm_root_set(const char *name, shm_offt off)
{
    shm_arena *arena = shmi_current_arena();
    return arena == NULL ? errno : shm_arena_root_set(arena, name, off);
}

bool shm_root_cas(const char *name, shm_offt expected, shm_offt desired)
{
    shm_arena *arena = shmi_current_arena();
    return arena != NULL && shm_arena_root_cas(arena, name, expected, desired);
}

size_t get_shm_max_allocatable_size(void)
{
    return (size_t)1 << SHM_MAX_ALLOC_POW2;
}

size_t get_shm_min_allocatable_size(void)
{
    return (size_t)1 << SHM_MIN_ALLOC_POW2;
}

size_t get_sizeof_block_header(void)
{
    return 0;
}

size_t get_mapping_size_needed_by_shm(void)
{
    shm_arena *arena = shm_default_arena();
    if (arena)
        return shm_arena_mapping_size(arena);
    const char *size = getenv(SHM_SIZE_ENV_NAME);
    size_t capacity = size && *size ? parse_size(size) : 0;
    return shm_mapping_size_for_capacity(capacity);
}
