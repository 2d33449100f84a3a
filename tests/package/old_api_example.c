/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A program written for the old shm_alloc API: it includes only
 * "shm_alloc.h", <stdlib.h> and <string.h> (the header brings printf, bool
 * and uint8_t), and is built with `cc old_api_example.c -lshm_alloc`.
 * It attaches a file by name, stores a string, prints it, frees it,
 * detaches and removes the file.
 */
#include "shm_alloc.h"
#include <stdlib.h>
#include <string.h>

int main()
{
    char *file_name = "old_api_example.shm";

    if (shm_init(NULL, file_name) == false) {
        fprintf(stderr, "shm_init() failed\n");
        exit(EXIT_FAILURE);
    }

    uint8_t *base = get_shm_user_base();
    shm_offt str = shm_calloc(100, sizeof(char));
    if (str == SHM_NULL) {
        fprintf(stderr, "shm_calloc() failed\n");
        exit(EXIT_FAILURE);
    }

    strcpy((char *)(base + str), "a string in shared memory");
    printf("offset %" PRIu_shm_offt ": %s\n", str, (char *)(base + str));

    shm_free(str);
    shm_deinit();
    remove(file_name);
    return 0;
}
