/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A C interface to a Boost.Interprocess managed_mapped_file, so that the
 * C benchmark drives Boost through the same calls as the other heaps.
 * Every function returns NULL (or does nothing) instead of throwing.
 */
#ifndef BENCH_BOOST_HEAP_H
#define BENCH_BOOST_HEAP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct bench_boost;

/* Creates the file at path (which must not exist) holding size bytes. */
struct bench_boost *bench_boost_create(const char *path, size_t size);
/* Maps an existing file created by bench_boost_create. */
struct bench_boost *bench_boost_open(const char *path);
/* Unmaps; the file stays. */
void bench_boost_close(struct bench_boost *b);
/* Removes the file. */
void bench_boost_remove(const char *path);

void *bench_boost_base(const struct bench_boost *b);
void *bench_boost_malloc(struct bench_boost *b, size_t size);
void bench_boost_free(struct bench_boost *b, void *p);
/* True when the segment's internal structures are consistent and every
 * allocation has been returned. */
int bench_boost_all_free(struct bench_boost *b);

#ifdef __cplusplus
}
#endif

#endif /* BENCH_BOOST_HEAP_H */
