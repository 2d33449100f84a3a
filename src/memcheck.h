/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Telling AddressSanitizer and valgrind's memcheck which bytes of the
 * arena a program may not touch, so that they report a use after free
 * inside the arena as they do for malloc.
 *
 * What is marked, and why no more. Both tools keep their view of memory
 * per process, while a chunk freed in one process may be allocated by
 * another and its offset handed back to the first: a chunk marked
 * inaccessible at its free would then be reported when that process
 * reads it legitimately. So only chunks that no other process can be
 * handed are marked: those in the calling thread's cache (thread_cache.c),
 * which stay allocated in the bitmaps until their own thread pops them
 * (the pop marks them accessible again, as malloc's memory: undefined for
 * memcheck) or flushes them (accessible again before the bitmaps free
 * them). The first 8 bytes of a cached chunk hold its tag and stay
 * accessible to the library; a write there after the free is caught by
 * the tag check instead (the pop reports it and never hands the chunk
 * out). Chunks freed straight to the bitmaps (without a cache, or too
 * large for one) are not marked.
 *
 * Built with -fsanitize=address, the ASan calls are made; built with
 * SHM_VALGRIND=ON (valgrind's memcheck.h), the client requests, which
 * cost a few instructions when the program does not run under valgrind.
 * Otherwise both are nothing.
 */
#ifndef SHM_MEMCHECK_H
#define SHM_MEMCHECK_H

#include <stddef.h>

#include "config.h"

#if defined(__SANITIZE_ADDRESS__)
#define SHMI_MEMCHECK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SHMI_MEMCHECK_ASAN 1
#endif
#endif
#ifndef SHMI_MEMCHECK_ASAN
#define SHMI_MEMCHECK_ASAN 0
#endif
#ifndef SHM_VALGRIND
#define SHM_VALGRIND 0
#endif

#if SHMI_MEMCHECK_ASAN
#include <sanitizer/asan_interface.h>
#endif
#if SHM_VALGRIND
#include <valgrind/memcheck.h>
#endif

/* Bytes of a cached chunk the library keeps accessible (its tag). */
#define SHMI_MEMCHECK_KEPT 8u

/* The program may not touch [p, p + size) until shmi_memcheck_show. */
static inline void shmi_memcheck_hide(void *p, size_t size)
{
#if SHMI_MEMCHECK_ASAN
    ASAN_POISON_MEMORY_REGION(p, size);
#endif
#if SHM_VALGRIND
    (void)VALGRIND_MAKE_MEM_NOACCESS(p, size);
#endif
    (void)p;
    (void)size;
}

/* [p, p + size) is the program's again, its contents undefined (as
 * malloc's memory): a pop from the thread's cache. */
static inline void shmi_memcheck_show(void *p, size_t size)
{
#if SHMI_MEMCHECK_ASAN
    ASAN_UNPOISON_MEMORY_REGION(p, size);
#endif
#if SHM_VALGRIND
    (void)VALGRIND_MAKE_MEM_UNDEFINED(p, size);
#endif
    (void)p;
    (void)size;
}

/* [p, p + size) leaves the thread's cache for the bitmaps: accessible and
 * defined, since another process may write it next and this one read it
 * (memcheck does not see the other process's writes). */
static inline void shmi_memcheck_release(void *p, size_t size)
{
#if SHMI_MEMCHECK_ASAN
    ASAN_UNPOISON_MEMORY_REGION(p, size);
#endif
#if SHM_VALGRIND
    (void)VALGRIND_MAKE_MEM_DEFINED(p, size);
#endif
    (void)p;
    (void)size;
}

#endif /* SHM_MEMCHECK_H */
