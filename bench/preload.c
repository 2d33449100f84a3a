/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * libshm_preload.so: runs an unmodified program with its malloc family
 * served by the default arena, so that real programs and allocator
 * benchmarks measure shm_alloc:
 *
 *   SHM_FILE=/dev/shm/heap SHM_SIZE=256M \
 *       LD_PRELOAD=build/bench/libshm_preload.so program ...
 *
 * It replaces the functions glibc's manual lists for a replacement malloc
 * (malloc, free, calloc, realloc, aligned_alloc, malloc_usable_size,
 * memalign, posix_memalign, pvalloc, valloc). A request the arena cannot
 * serve goes to glibc's own allocator (__libc_malloc and its siblings):
 * one larger than 2^MAX, an alignment above 2^MAX, any request made before
 * the library's constructor attached $SHM_FILE or when it could not, and
 * any request made while the calling thread is already inside the library
 * (the library's own few mallocs, which must not re-enter it). A free or
 * realloc goes to whichever allocator owns the pointer: the arena's when
 * it lies in the arena's mapping.
 *
 * Limits, by design of a shared heap: after fork() parent and child share
 * every chunk (the mapping is MAP_SHARED), so a program that forks and
 * keeps using its heap in both is not a fit; a program that execs after
 * fork is. A chunk a program frees twice is refused and reported (the
 * error handler), never freed twice. A request the arena cannot take
 * leaves errno ENOMEM even when glibc then serves it (a successful call
 * may change errno; this one does).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "shm_alloc.h"

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void __libc_free(void *ptr);
extern void *__libc_memalign(size_t alignment, size_t size);

#define EXPORT __attribute__((visibility("default")))

/* What glibc's malloc aligns every chunk to, and so does this one: with
 * 2^MIN below it a small request takes a larger chunk. */
#define MALLOC_ALIGNMENT _Alignof(max_align_t)

/* The default arena once it is attached, and its mapping: it is never
 * unmapped while the program runs (the library's destructor leaves it
 * mapped), so a pointer inside it stays the arena's. */
static _Atomic(shm_arena *) arena;
static _Atomic(uintptr_t) arena_begin, arena_end;
static size_t largest; /* 2^MAX, set with the arena */
/* Set while the calling thread is inside the library: a malloc the library
 * makes itself then goes to glibc instead of re-entering it. */
static _Thread_local int inside __attribute__((tls_model("initial-exec")));

/* The arena, noted on first sight; NULL while there is none. */
static shm_arena *arena_of_program(void)
{
    shm_arena *a = atomic_load_explicit(&arena, memory_order_acquire);
    if (__builtin_expect(a != NULL, 1))
        return a;
    if ((a = shm_default_arena()) == NULL)
        return NULL;
    uintptr_t begin = (uintptr_t)shm_arena_base(a);
    largest = get_shm_max_allocatable_size();
    atomic_store_explicit(&arena_begin, begin, memory_order_relaxed);
    atomic_store_explicit(&arena_end, begin + shm_arena_mapping_size(a),
                          memory_order_relaxed);
    atomic_store_explicit(&arena, a, memory_order_release);
    return a;
}

static int in_arena(const void *ptr)
{
    uintptr_t p = (uintptr_t)ptr;
    return p < atomic_load_explicit(&arena_end, memory_order_relaxed) &&
           p >= atomic_load_explicit(&arena_begin, memory_order_relaxed);
}

/* A chunk of `size` bytes aligned to `alignment` (a power of two) from the
 * arena, or NULL (then glibc serves the request). A chunk of 2^k bytes
 * starts on a multiple of 2^k from the data region's start, which is page
 * aligned: asking for at least the alignment aligns it. */
static void *arena_alloc(size_t size, size_t alignment)
{
    shm_arena *a = arena_of_program();
    if (__builtin_expect(a == NULL || inside, 0))
        return NULL;
    if (alignment < MALLOC_ALIGNMENT)
        alignment = MALLOC_ALIGNMENT;
    if (size < alignment)
        size = alignment;
    if (__builtin_expect(size > largest, 0))
        return NULL;
    inside = 1;
    shm_offt off = shm_arena_malloc(a, size);
    inside = 0;
    if (__builtin_expect(off == SHM_NULL, 0))
        return NULL; /* errno ENOMEM, though glibc may serve it */
    void *p =
        (uint8_t *)atomic_load_explicit(&arena_begin, memory_order_relaxed) +
        off;
    if (((uintptr_t)p & (alignment - 1)) != 0) {
        shm_arena_free(a, off);
        return NULL;
    }
    return p;
}

/* ptr lies in the arena's mapping. */
static void arena_free(void *ptr)
{
    shm_arena *a = atomic_load_explicit(&arena, memory_order_relaxed);
    inside = 1;
    shm_arena_free(a, (shm_offt)((uintptr_t)ptr -
                                 atomic_load_explicit(&arena_begin,
                                                      memory_order_relaxed)));
    inside = 0;
}

EXPORT void *malloc(size_t size)
{
    void *p = arena_alloc(size, 1);
    return p ? p : __libc_malloc(size);
}

EXPORT void free(void *ptr)
{
    if (in_arena(ptr))
        arena_free(ptr);
    else
        __libc_free(ptr);
}

EXPORT void *calloc(size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = arena_alloc(total, 1);
    if (!p)
        return __libc_calloc(count, size);
    memset(p, 0, total);
    return p;
}

/* ptr lies in the arena's mapping. */
static size_t arena_usable(void *ptr)
{
    shm_arena *a = atomic_load_explicit(&arena, memory_order_relaxed);
    inside = 1;
    size_t size = shm_arena_usable_size(
        a,
        (shm_offt)((uintptr_t)ptr -
                   atomic_load_explicit(&arena_begin, memory_order_relaxed)));
    inside = 0;
    return size;
}

EXPORT void *realloc(void *ptr, size_t size)
{
    if (!ptr)
        return malloc(size);
    if (!in_arena(ptr))
        return __libc_realloc(ptr, size);
    if (size == 0) { /* as glibc: frees, returns NULL */
        arena_free(ptr);
        return NULL;
    }
    size_t had = arena_usable(ptr);
    if (size <= had)
        return ptr;
    void *p = arena_alloc(size, 1);
    if (!p && !(p = __libc_malloc(size)))
        return NULL;
    memcpy(p, ptr, had);
    arena_free(ptr);
    return p;
}

EXPORT void *memalign(size_t alignment, size_t size)
{
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    void *p = arena_alloc(size, alignment);
    return p ? p : __libc_memalign(alignment, size);
}

EXPORT int posix_memalign(void **out, size_t alignment, size_t size)
{
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0)
        return EINVAL;
    int saved = errno;
    void *p = memalign(alignment, size);
    if (!p) {
        int err = errno;
        errno = saved;
        return err ? err : ENOMEM;
    }
    errno = saved;
    *out = p;
    return 0;
}

EXPORT void *aligned_alloc(size_t alignment, size_t size)
{
    return memalign(alignment, size);
}

EXPORT void *valloc(size_t size)
{
    return memalign((size_t)sysconf(_SC_PAGESIZE), size);
}

EXPORT void *pvalloc(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return memalign(page, (size + page - 1) & ~(page - 1));
}

EXPORT size_t malloc_usable_size(void *ptr)
{
    if (!ptr)
        return 0;
    if (in_arena(ptr))
        return arena_usable(ptr);
    /* glibc's own, found once; dlsym may allocate, which then goes to
     * glibc (inside is set). */
    static size_t (*_Atomic libc_usable)(void *);
    size_t (*usable)(void *) = libc_usable;
    if (!usable) {
        inside++;
        *(void **)&usable = dlsym(RTLD_NEXT, "malloc_usable_size");
        inside--;
        if (!usable)
            return 0;
        libc_usable = usable;
    }
    return usable(ptr);
}
