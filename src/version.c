/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The library's own version, fixed when it is built: project(VERSION) in
 * CMakeLists.txt reaches this file as SHM_LIBRARY_VERSION_* definitions,
 * not through the header, so that a program compiled against one version
 * and run with another sees the difference.
 */
#include <stddef.h>

#include "shm_alloc.h"

#if !defined(SHM_LIBRARY_VERSION_MAJOR) ||                                     \
    !defined(SHM_LIBRARY_VERSION_MINOR) ||                                     \
    !defined(SHM_LIBRARY_VERSION_PATCH) ||                                     \
    !defined(SHM_LIBRARY_VERSION_STRING)
#error "the build defines SHM_LIBRARY_VERSION_MAJOR, _MINOR, _PATCH, _STRING"
#endif

const char *shm_version(int *major, int *minor, int *patch)
{
    if (major != NULL)
        *major = SHM_LIBRARY_VERSION_MAJOR;
    if (minor != NULL)
        *minor = SHM_LIBRARY_VERSION_MINOR;
    if (patch != NULL)
        *patch = SHM_LIBRARY_VERSION_PATCH;
    return SHM_LIBRARY_VERSION_STRING;
}
