/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The version of the shm_alloc headers a program is compiled against.
 *
 * shm_version() (in shm_alloc.h) returns the version of the library the
 * program runs with; compare the two to catch a shared library replaced
 * since the build:
 *
 *     int major;
 *     shm_version(&major, NULL, NULL);
 *     if (major != SHM_ALLOC_VERSION_MAJOR)
 *         ... built for another major version ...
 *
 * The numbers follow project(VERSION) in CMakeLists.txt; the test
 * version_header_matches_project fails when they drift apart. The major
 * version is the shared library's SONAME (libshm_alloc.so.MAJOR). The
 * format of arena files has a version of its own, stored in each file's
 * superblock (see docs/how_to_use.md, "Versions").
 */
#ifndef SHM_ALLOC_VERSION_H
#define SHM_ALLOC_VERSION_H

#define SHM_ALLOC_VERSION_MAJOR 0
#define SHM_ALLOC_VERSION_MINOR 1
#define SHM_ALLOC_VERSION_PATCH 0

/* MAJOR * 10000 + MINOR * 100 + PATCH, for #if: 0.1.0 is 100. */
#define SHM_ALLOC_VERSION                                                      \
    (SHM_ALLOC_VERSION_MAJOR * 10000 + SHM_ALLOC_VERSION_MINOR * 100 +         \
     SHM_ALLOC_VERSION_PATCH)

#define SHM_ALLOC_VERSION_STRING "0.1.0"

#endif /* SHM_ALLOC_VERSION_H */
