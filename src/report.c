/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The error handler: a process-wide callback the library calls, in the
 * calling thread, when it refuses a call because of its input. It never
 * prints anything itself.
 */
#include "report.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#include "shm_alloc.h"

static _Atomic(shm_error_handler) current_handler;
static _Atomic(void *) current_context;

void shm_set_error_handler(shm_error_handler handler, void *context)
{
    /* release: a reader that sees the new handler sees its context. */
    atomic_store_explicit(&current_context, context, memory_order_relaxed);
    atomic_store_explicit(&current_handler, handler, memory_order_release);
}

void shmi_report(const char *format, ...)
{
    /* acquire: pairs with the release in shm_set_error_handler. */
    shm_error_handler handler =
        atomic_load_explicit(&current_handler, memory_order_acquire);
    if (!handler)
        return;
    int saved = errno;
    char message[256];
    va_list args;
    va_start(args, format);
    /* A longer message is cut: the handler gets its first 255 bytes. */
    (void)vsnprintf(message, sizeof message, format, args);
    va_end(args);
    handler(message,
            atomic_load_explicit(&current_context, memory_order_relaxed));
    errno = saved;
}
