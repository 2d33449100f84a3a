/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Hooks compiled into test builds only.
 *
 * SHM_TEST_YIELD: shmi_test_yield() gives up the processor at random
 * (one call in eight) between a load of a shared word and the CAS that
 * acts on it (SHMI_TEST_YIELD() in config.h), so that stress tests meet
 * the interleavings a preempted process would cause.
 */
#include "config.h"

#if SHM_TEST_YIELD
#include <sched.h>
#include <stdint.h>

void shmi_test_yield(void)
{
    static _Thread_local uint64_t state = 0x9e3779b97f4a7c15u;
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    if ((state & 7) == 0)
        sched_yield();
}
#else
/* ISO C wants a translation unit to declare something. */
typedef int shmi_test_hooks_unused;
#endif
