/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Copies of process-local strings and buffers into an arena: the usual way
 * to share a key or a message is to duplicate it and publish its offset.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "shm_alloc.h"

#include "arena.h"

shm_offt shm_arena_memdup(shm_arena *arena, const void *p, size_t n)
{
    if (arena == NULL || p == NULL) {
        errno = EINVAL;
        return SHM_NULL;
    }
    shm_offt off = shmi_arena_malloc_as(arena, n, "shm_memdup");
    if (off != SHM_NULL && n > 0)
        memcpy(arena->geo.base + off, p, n);
    return off;
}

/* A copy of at most n bytes of s and a NUL; `call` names the caller in
 * the error handler's message. */
static shm_offt copy_string(shm_arena *arena, const char *s, size_t n,
                            const char *call)
{
    if (arena == NULL || s == NULL) {
        errno = EINVAL;
        return SHM_NULL;
    }
    size_t len = strnlen(s, n);
    shm_offt off = shmi_arena_malloc_as(arena, len + 1, call);
    if (off != SHM_NULL) {
        char *copy = (char *)arena->geo.base + off;
        memcpy(copy, s, len);
        copy[len] = '\0';
    }
    return off;
}

shm_offt shm_arena_strndup(shm_arena *arena, const char *s, size_t n)
{
    return copy_string(arena, s, n, "shm_strndup");
}

shm_offt shm_arena_strdup(shm_arena *arena, const char *s)
{
    return copy_string(arena, s, SIZE_MAX, "shm_strdup");
}

shm_offt shm_memdup(const void *p, size_t n)
{
    shm_arena *arena = shmi_current_arena();
    return arena == NULL ? SHM_NULL : shm_arena_memdup(arena, p, n);
}

shm_offt shm_strndup(const char *s, size_t n)
{
    shm_arena *arena = shmi_current_arena();
    return arena == NULL ? SHM_NULL : shm_arena_strndup(arena, s, n);
}

shm_offt shm_strdup(const char *s)
{
    shm_arena *arena = shmi_current_arena();
    return arena == NULL ? SHM_NULL : shm_arena_strdup(arena, s);
}
