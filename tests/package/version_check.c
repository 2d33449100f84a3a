/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The library a program runs with reports the version of the header the
 * program was compiled with: shm_version() against SHM_ALLOC_VERSION_*.
 * Built and run by ctest (version_library_matches_header) and by the
 * package test against the installed library. Prints "version: ok" and
 * exits 0 when they agree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shm_alloc.h>

int main(void)
{
    int major = -1, minor = -1, patch = -1;
    const char *text = shm_version(&major, &minor, &patch);
    char expected[32];
    (void)snprintf(expected, sizeof expected, "%d.%d.%d",
                   SHM_ALLOC_VERSION_MAJOR, SHM_ALLOC_VERSION_MINOR,
                   SHM_ALLOC_VERSION_PATCH);
    if (text == NULL || major != SHM_ALLOC_VERSION_MAJOR ||
        minor != SHM_ALLOC_VERSION_MINOR || patch != SHM_ALLOC_VERSION_PATCH ||
        strcmp(text, SHM_ALLOC_VERSION_STRING) != 0 ||
        strcmp(text, expected) != 0 ||
        SHM_ALLOC_VERSION != major * 10000 + minor * 100 + patch) {
        fprintf(stderr,
                "version: the library is %s (%d.%d.%d), the header %s "
                "(%d)\n",
                text ? text : "(null)", major, minor, patch,
                SHM_ALLOC_VERSION_STRING, SHM_ALLOC_VERSION);
        return EXIT_FAILURE;
    }
    /* Every pointer may be NULL. */
    if (shm_version(NULL, NULL, NULL) == NULL) {
        fprintf(stderr, "version: shm_version(NULL, NULL, NULL) is NULL\n");
        return EXIT_FAILURE;
    }
    printf("version: ok, %s\n", text);
    return EXIT_SUCCESS;
}
