/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A program built for the sizes of its values: a cache whose values are
 * VALUE_MIN_BYTES to VALUE_MAX_BYTES long (40 to 700 unless defined
 * otherwise) stores a few thousand of them in an arena file and reports
 * what they cost.
 *
 *     value_sizes FILE
 *
 * shm_alloc's chunk sizes are fixed when the library is built. For these
 * values, 32 B .. 1 KiB fits (six sizes: one tier of bitmap words, and no
 * value above the largest chunk):
 *
 *     cmake -S shm_alloc -B build -DSHM_MIN_ALLOC_POW2=5
 * -DSHM_MAX_ALLOC_POW2=10
 *
 * The program is compiled with the range the library was built with, so
 * that a library too small for the values fails the build, not the cache:
 *
 *     find_package(shm_alloc 0.1 CONFIG REQUIRED)
 *     add_executable(value_sizes value_sizes.c)
 *     target_link_libraries(value_sizes PRIVATE shm_alloc::shm_alloc)
 *     target_compile_definitions(value_sizes PRIVATE
 *       SHM_MIN_POW2=${shm_alloc_MIN_ALLOC_POW2}
 *       SHM_MAX_POW2=${shm_alloc_MAX_ALLOC_POW2})
 *
 * or with pkg-config:
 *
 *     cc value_sizes.c $(pkg-config --cflags --libs shm_alloc) \
 *        -DSHM_MIN_POW2=$(pkg-config --variable=min_alloc_pow2 shm_alloc) \
 *        -DSHM_MAX_POW2=$(pkg-config --variable=max_alloc_pow2 shm_alloc)
 *
 * At run time it checks that the library it is linked with has that range
 * (a shared library may have been replaced since).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shm_alloc.h>

#ifndef VALUE_MIN_BYTES
#define VALUE_MIN_BYTES 40
#endif
#ifndef VALUE_MAX_BYTES
#define VALUE_MAX_BYTES 700
#endif
#if VALUE_MIN_BYTES < 1 || VALUE_MIN_BYTES > VALUE_MAX_BYTES
#error "need 1 <= VALUE_MIN_BYTES <= VALUE_MAX_BYTES"
#endif

#if !defined(SHM_MIN_POW2) || !defined(SHM_MAX_POW2)
#error "compile with -DSHM_MIN_POW2=... -DSHM_MAX_POW2=..., the size range " \
       "shm_alloc was built with (see the top of this file)"
#endif
#if VALUE_MAX_BYTES > (1L << SHM_MAX_POW2)
#error "the largest value does not fit the largest chunk: build shm_alloc " \
       "with a larger SHM_MAX_ALLOC_POW2"
#endif

enum { VALUES = 4000 };

/* A deterministic spread of sizes, so that every run reports the same. */
static size_t value_size(unsigned i)
{
    unsigned long long x = (i + 1) * 0x9e3779b97f4a7c15ULL;
    x ^= x >> 29;
    return VALUE_MIN_BYTES +
           (size_t)(x % (VALUE_MAX_BYTES - VALUE_MIN_BYTES + 1));
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "value_sizes.shm";
    size_t min_chunk = get_shm_min_allocatable_size();
    size_t max_chunk = get_shm_max_allocatable_size();
    if (min_chunk != (size_t)1 << SHM_MIN_POW2 ||
        max_chunk != (size_t)1 << SHM_MAX_POW2) {
        fprintf(stderr,
                "value_sizes: built for chunks of 2^%d..2^%d bytes, linked "
                "with a library of %zu..%zu\n",
                SHM_MIN_POW2, SHM_MAX_POW2, min_chunk, max_chunk);
        return EXIT_FAILURE;
    }
    printf("values of %d to %d bytes in chunks of %zu to %zu bytes\n",
           VALUE_MIN_BYTES, VALUE_MAX_BYTES, min_chunk, max_chunk);
    if (2 * min_chunk <= VALUE_MIN_BYTES)
        printf("(a larger SHM_MIN_ALLOC_POW2 would take less metadata: no "
               "value needs chunks of %zu bytes)\n",
               min_chunk);

    struct shm_arena_options opts = {.capacity = 4u << 20,
                                     .flags = SHM_ARENA_EXCLUSIVE};
    shm_arena *arena = shm_arena_open(path, &opts);
    if (!arena) {
        fprintf(stderr, "value_sizes: %s: %s\n", path, strerror(errno));
        return EXIT_FAILURE;
    }
    char *base = shm_arena_base(arena);
    size_t start = shm_arena_available(arena);

    static shm_offt values[VALUES];
    size_t stored = 0, requested = 0, taken = 0;
    for (unsigned i = 0; i < VALUES; i++) {
        size_t size = value_size(i);
        values[i] = shm_arena_malloc(arena, size);
        if (values[i] == SHM_NULL)
            break; /* the arena is full: a cache would evict here */
        memset(base + values[i], (int)(i & 0xff), size);
        stored++;
        requested += size;
        taken += shm_arena_usable_size(arena, values[i]);
    }
    size_t metadata = shm_arena_mapping_size(arena) - shm_arena_capacity(arena);
    printf("%zu values: %zu bytes asked for, %zu taken (%.1f%% lost to "
           "rounding up to powers of two)\n",
           stored, requested, taken,
           taken ? 100.0 * (double)(taken - requested) / (double)taken : 0.0);
    printf("file: %zu bytes of chunks, %zu of metadata (%.2f%%)\n",
           shm_arena_capacity(arena), metadata,
           100.0 * (double)metadata / (double)shm_arena_capacity(arena));

    int intact = stored > 0;
    for (unsigned i = 0; i < stored; i++) {
        const unsigned char *p = (const unsigned char *)base + values[i];
        for (size_t k = 0; k < value_size(i); k++)
            intact &= p[k] == (unsigned char)(i & 0xff);
        shm_arena_free(arena, values[i]);
    }
    int back =
        shm_arena_available(arena) == start && shm_arena_check(arena) == 0;
    shm_arena_close(arena);
    remove(path);
    if (!intact || !back) {
        fprintf(stderr, "value_sizes: %s\n",
                !intact ? "a value was overwritten" : "the arena is not empty");
        return EXIT_FAILURE;
    }
    printf("value_sizes: ok\n");
    return EXIT_SUCCESS;
}
