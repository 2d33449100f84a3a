/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A C interface to the Boost.Interprocess map of cache_boost.cpp, for
 * cache_bench.c. No function throws; errors are NULL or -1.
 */
#ifndef BENCH_CACHE_BOOST_H
#define BENCH_CACHE_BOOST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CACHE_BOOST_KEY_MAX 64

struct cache_boost;

/* Creates the file at path (replacing any) holding size bytes and an empty
 * map with buckets for `items` entries. */
struct cache_boost *cache_boost_create(const char *path, size_t size,
                                       size_t items);
/* Maps a file made by cache_boost_create. */
struct cache_boost *cache_boost_open(const char *path);
void cache_boost_close(struct cache_boost *b);

/* 0, or -1 when the key is missing or buf_size is below *value_len. */
int cache_boost_get(struct cache_boost *b, const void *key, size_t key_len,
                    void *buf, size_t buf_size, size_t *value_len);
/* Inserts or replaces; 0, or -1 when the segment is full. key_len is at
 * most CACHE_BOOST_KEY_MAX. */
int cache_boost_set(struct cache_boost *b, const void *key, size_t key_len,
                    const void *value, size_t value_len);

/* The hash of the benchmark's private table, shared with Boost's map
 * (defined in cache_bench.c). */
size_t cache_boost_hash(const void *key, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* BENCH_CACHE_BOOST_H */
