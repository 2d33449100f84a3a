/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The old shm_alloc's example, as its users wrote it: attach a file by
 * name, calloc a string, print it, free it, detach, remove the file.
 * Only the old API and its header; exits non-zero when something is off.
 */
#include "shm_alloc.h"
#include <stdlib.h>
#include <string.h>

#define MESSAGE "Hello from shared memory!"

/* the same as ptr_calloc() */
void *my_calloc(size_t count, size_t size)
{
    shm_offt offt_in_shm = shm_calloc(count, size);

    if (offt_in_shm == SHM_NULL)
        return NULL;
    return SHM_OFFT_TO_ADDR(offt_in_shm);
}

/* the same as ptr_free() */
void my_free(void *ptr)
{
    shm_offt offt_in_shm = SHM_NULL;

    if (ptr != NULL)
        offt_in_shm = SHM_ADDR_TO_OFFT(ptr);
    shm_free(offt_in_shm);
}

int main(void)
{
    char *shm_file_name = "shm_example_file";
    size_t string_len = 100;
    size_t message_len;
    uint8_t *shm_base;
    shm_offt str;
    char *copy;
    size_t i;

    /* a file left by an interrupted run */
    remove(shm_file_name);

    if (!shm_init(NULL, shm_file_name)) {
        fprintf(stderr, "shm_init() failed!\n");
        exit(EXIT_FAILURE);
    }
    shm_base = get_shm_user_base();

    /* no more than the largest chunk this build hands out */
    if (string_len > get_shm_max_allocatable_size())
        string_len = get_shm_max_allocatable_size();
    message_len = strlen(MESSAGE);
    if (message_len > string_len - 1)
        message_len = string_len - 1;

    /* shm_calloc returns an offset from the start of the mapping */
    str = shm_calloc(string_len, sizeof(char));
    if (str == SHM_NULL) {
        fprintf(stderr, "Out of memory\n");
        exit(EXIT_FAILURE);
    }
    for (i = 0; i < string_len; i++) {
        if (shm_base[str + i] != 0) {
            fprintf(stderr, "shm_calloc() did not zero byte %zu\n", i);
            exit(EXIT_FAILURE);
        }
    }
    memcpy(shm_base + str, MESSAGE, message_len);
    printf("String in shared memory: %s\n", (char *)(shm_base + str));
    if (strlen((char *)SHM_OFFT_TO_ADDR(str)) != message_len ||
        memcmp(SHM_OFFT_TO_ADDR(str), MESSAGE, message_len) != 0) {
        fprintf(stderr, "the string did not stay\n");
        exit(EXIT_FAILURE);
    }
    shm_free(str);

    /* the same through pointers */
    copy = my_calloc(message_len + 1, sizeof(char));
    if (copy == NULL) {
        fprintf(stderr, "Out of memory\n");
        exit(EXIT_FAILURE);
    }
    memcpy(copy, MESSAGE, message_len);
    printf("Copied to offset %" PRIu_shm_offt ": %s\n", SHM_ADDR_TO_OFFT(copy),
           copy);
    my_free(copy);
    my_free(NULL);

    /* everything went back */
    if (shm_check() != 0 ||
        shm_available() != shm_arena_capacity(shm_default_arena())) {
        fprintf(stderr, "the arena is not empty again\n");
        exit(EXIT_FAILURE);
    }

    shm_deinit();
    if (remove(shm_file_name) != 0) {
        fprintf(stderr, "could not remove %s\n", shm_file_name);
        exit(EXIT_FAILURE);
    }
    return 0;
}
