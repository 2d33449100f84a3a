/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Shared by the fuzz targets: a private scratch directory and a way to
 * report a broken property so that libFuzzer records the input.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_made_dir[512];

static void fuzz_remove_dir(void)
{
    rmdir(fuzz_made_dir);
}

/* $SHM_FUZZ_DIR, else a new directory under /tmp (made once, removed at
 * exit when the target left it empty). */
static const char *fuzz_dir(void)
{
    static char dir[512];
    if (dir[0] == '\0') {
        const char *env = getenv("SHM_FUZZ_DIR");
        if (env != NULL && env[0] != '\0') {
            snprintf(dir, sizeof dir, "%s", env);
        } else {
            snprintf(dir, sizeof dir, "/tmp/shm_fuzz.XXXXXX");
            if (mkdtemp(dir) == NULL) {
                perror("mkdtemp");
                abort();
            }
            memcpy(fuzz_made_dir, dir, sizeof dir);
            atexit(fuzz_remove_dir);
        }
    }
    return dir;
}

/* A property does not hold: print it and crash so that libFuzzer keeps
 * the input as a reproducer. */
#define FUZZ_REQUIRE(cond, ...)                                                \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz: property broken: " __VA_ARGS__);            \
            fprintf(stderr, "\n");                                             \
            abort();                                                           \
        }                                                                      \
    } while (0)

#endif /* FUZZ_COMMON_H */
