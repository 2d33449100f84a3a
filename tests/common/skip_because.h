/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Skipping a cmocka test with the reason printed, so that a skip in a
 * ctest log says why (include after cmocka.h).
 */
#ifndef SHM_TEST_SKIP_BECAUSE_H
#define SHM_TEST_SKIP_BECAUSE_H

#define skip_because(why)                                                      \
    do {                                                                       \
        print_message("skipped: %s\n", why);                                   \
        skip();                                                                \
    } while (0)

#endif /* SHM_TEST_SKIP_BECAUSE_H */
