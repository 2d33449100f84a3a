/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Helpers shared by the robustness tests: scratch paths, byte-exact file
 * snapshots, directory listings, capture of anything printed, and the
 * superblock fields that the hostile-file tests corrupt.
 */
#ifndef ROBUST_UTIL_H
#define ROBUST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "shm_alloc.h"

/* Superblock fields (little-endian, at offset 0 of the file). */
#define SB_MAGIC 0
#define SB_VERSION 8
#define SB_PAGE_SIZE 12
#define SB_FINGERPRINT 16
#define SB_CAPACITY 24
#define SB_FILE_SIZE 32
#define SB_DATA_OFFSET 40
#define SB_HEADER_OFFSET 48
#define SB_INDEX_OFFSET 56
#define SB_WORDS_OFFSET 64
#define SB_MIN_POW2 72
#define SB_MAX_POW2 76

/* The scratch directory of this test ($SHM_TEST_DIR, else a new one in
 * /tmp); created on first use. */
const char *robust_dir(void);

/* buf = robust_dir()/name; aborts the test when it does not fit. */
void robust_path(char *buf, size_t size, const char *name);

/* Removes path (file, symlink, FIFO, socket or empty directory) if it is
 * there. */
void robust_remove(const char *path);

/* Empties robust_dir() (not recursive: the tests create flat files). */
void robust_clean_dir(void);

/* Whole file into a malloc'd buffer; NULL on error. */
uint8_t *robust_read_file(const char *path, size_t *len);
/* Writes len bytes as a new file (replacing it), mode 0600; 0 or errno. */
int robust_write_file(const char *path, const void *data, size_t len);

/* Creates a valid arena file at path with the library and closes it;
 * returns false with errno set on failure. */
bool robust_make_arena(const char *path, size_t capacity);

/* What is at a path: lstat data, and the bytes of a regular file or the
 * target of a symlink. */
struct robust_snapshot {
    bool exists;
    struct stat st;
    uint8_t *bytes;
    size_t len;
};
void robust_snapshot_take(const char *path, struct robust_snapshot *snap);
/* true when path still matches snap byte for byte (size, mtime, ctime,
 * inode, mode, owner, contents); describes the first difference in why. */
bool robust_snapshot_same(const char *path, const struct robust_snapshot *snap,
                          char *why, size_t why_size);
void robust_snapshot_free(struct robust_snapshot *snap);

/* Names in dir other than "." and "..", sorted, joined by ' ' into buf;
 * returns how many. */
int robust_dir_list(const char *dir, char *buf, size_t size);

/* Redirects stdout and stderr (the file descriptors) into a capture file
 * until robust_quiet_end, which restores them and returns how many bytes
 * were written meanwhile (copied into text, NUL-terminated). */
struct robust_quiet {
    int saved_out, saved_err, fd;
};
void robust_quiet_begin(struct robust_quiet *q);
size_t robust_quiet_end(struct robust_quiet *q, char *text, size_t size);

/* Little-endian field access on a byte buffer. */
uint64_t robust_get64(const uint8_t *p);
uint32_t robust_get32(const uint8_t *p);
void robust_put64(uint8_t *p, uint64_t v);
void robust_put32(uint8_t *p, uint32_t v);

/* A seeded xorshift generator; the seed comes from $ROBUST_SEED when set. */
uint64_t robust_seed(void);
uint64_t robust_rand(uint64_t *state);

#endif /* ROBUST_UTIL_H */
