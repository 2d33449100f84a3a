/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Files of tests that run programs: a path in the test's scratch
 * directory and a whole file read back (include after cmocka.h; both
 * fail the test rather than return an error).
 */
#ifndef SHM_TEST_WHOLE_FILE_H
#define SHM_TEST_WHOLE_FILE_H

#include <stdio.h>
#include <stdlib.h>

/* The path of `name` in $SHM_TEST_DIR (/tmp when run by hand), which the
 * caller frees. */
static inline char *path_of(const char *name)
{
    const char *dir = getenv("SHM_TEST_DIR");
    char *path;
    assert_true(asprintf(&path, "%s/%s", dir && *dir ? dir : "/tmp", name) > 0);
    return path;
}

/* The whole file at path, NUL-terminated, which the caller frees; its
 * length in *size when size is not NULL. */
static inline char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t cap = 1 << 16, len = 0, n;
    char *data = malloc(cap + 1);
    assert_non_null(data);
    while ((n = fread(data + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            char *grown = realloc(data, cap + 1);
            assert_non_null(grown);
            data = grown;
        }
    }
    fclose(f);
    data[len] = '\0';
    if (size)
        *size = len;
    return data;
}

#endif /* SHM_TEST_WHOLE_FILE_H */
