/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The first program: attach an arena file, put a string in it, read it back
 * through its offset, give the memory back.
 *
 * Build it against an installed shm_alloc with either of
 *     cc first_program.c -lshm_alloc
 *     cc first_program.c $(pkg-config --cflags --libs shm_alloc)
 * and run it as `./a.out /tmp/first.shm`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shm_alloc.h>

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "first_program.shm";
    const char *text = "hello from shared memory";

    /* Maps the file, creating it (mode 0600) when it does not exist; the
     * capacity of a new file comes from $SHM_SIZE or the built-in default.
     * Without this call the library attaches $SHM_FILE by itself. */
    if (!shm_init(NULL, path)) {
        fprintf(stderr, "shm_init(%s): %s\n", path, strerror(errno));
        return EXIT_FAILURE;
    }

    /* Allocations are offsets into the file: the same offset means the same
     * bytes in every process that maps the file, wherever it is mapped. */
    shm_offt off = shm_malloc(strlen(text) + 1);
    if (off == SHM_NULL) {
        fprintf(stderr, "shm_malloc: %s\n", strerror(errno));
        shm_deinit();
        return EXIT_FAILURE;
    }
    char *p = SHM_OFFT_TO_ADDR(off);
    strcpy(p, text);

    printf("%s: \"%s\" at offset %" PRIu_shm_offt " (%zu usable bytes)\n", path,
           p, off, shm_usable_size(off));

    shm_free(off);
    shm_deinit();
    /* The file outlives the program: other processes may attach it later.
     * This one was only for the example. */
    remove(path);
    return EXIT_SUCCESS;
}
