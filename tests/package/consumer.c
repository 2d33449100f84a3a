/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A program built against an installed shm_alloc, as a user builds it:
 * opens an arena, stores a string, lets a forked child read it and answer,
 * then frees everything. SHM_EXPECT_MIN_POW2 / SHM_EXPECT_MAX_POW2 are the
 * size range the package says it was built with. The library it runs with
 * must report the version of the header it was compiled with.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shm_alloc.h>

static int fail(const char *what)
{
    fprintf(stderr, "consumer: %s: %s\n", what, strerror(errno));
    return EXIT_FAILURE;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: consumer FILE\n");
        return EXIT_FAILURE;
    }
    int major = -1, minor = -1, patch = -1;
    const char *version = shm_version(&major, &minor, &patch);
    if (version == NULL || strcmp(version, SHM_ALLOC_VERSION_STRING) != 0 ||
        major != SHM_ALLOC_VERSION_MAJOR || minor != SHM_ALLOC_VERSION_MINOR ||
        patch != SHM_ALLOC_VERSION_PATCH ||
        SHM_ALLOC_VERSION != major * 10000 + minor * 100 + patch) {
        fprintf(stderr,
                "consumer: the library is version %s (%d.%d.%d), the "
                "header %s\n",
                version ? version : "(null)", major, minor, patch,
                SHM_ALLOC_VERSION_STRING);
        return EXIT_FAILURE;
    }
    if (get_shm_min_allocatable_size() != (size_t)1 << SHM_EXPECT_MIN_POW2 ||
        get_shm_max_allocatable_size() != (size_t)1 << SHM_EXPECT_MAX_POW2) {
        fprintf(stderr,
                "consumer: the library handles %zu..%zu bytes, the "
                "package says 2^%d..2^%d\n",
                get_shm_min_allocatable_size(), get_shm_max_allocatable_size(),
                SHM_EXPECT_MIN_POW2, SHM_EXPECT_MAX_POW2);
        return EXIT_FAILURE;
    }

    struct shm_arena_options opts = {.capacity = 1u << 20,
                                     .flags = SHM_ARENA_EXCLUSIVE};
    shm_arena *arena = shm_arena_open(argv[1], &opts);
    if (arena == NULL)
        return fail("shm_arena_open");
    char *base = shm_arena_base(arena);
    size_t start = shm_arena_available(arena);

    const char *text = "written by the parent";
    shm_offt msg = shm_arena_malloc(arena, strlen(text) + 1);
    if (msg == SHM_NULL)
        return fail("shm_arena_malloc");
    strcpy(base + msg, text);

    int pipefd[2];
    if (pipe(pipefd) != 0)
        return fail("pipe");
    pid_t pid = fork();
    if (pid < 0)
        return fail("fork");
    if (pid == 0) {
        /* The child checks the parent's string and answers with an
         * allocation of its own, sent back as an offset. */
        shm_offt answer = SHM_NULL;
        if (strcmp(base + msg, text) == 0) {
            answer = shm_arena_malloc(arena, 64);
            if (answer != SHM_NULL)
                strcpy(base + answer, "answered by the child");
        }
        _exit(write(pipefd[1], &answer, sizeof answer) == sizeof answer ? 0
                                                                        : 1);
    }
    shm_offt answer = SHM_NULL;
    int status;
    if (read(pipefd[0], &answer, sizeof answer) != sizeof answer ||
        waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0 || answer == SHM_NULL ||
        strcmp(base + answer, "answered by the child") != 0) {
        fprintf(stderr, "consumer: no answer from the child\n");
        return EXIT_FAILURE;
    }

    shm_arena_free(arena, answer);
    shm_arena_free(arena, msg);
    if (shm_arena_available(arena) != start || shm_arena_check(arena) != 0) {
        fprintf(stderr, "consumer: the arena did not return to its start\n");
        return EXIT_FAILURE;
    }
    shm_arena_close(arena);
    printf("consumer: ok\n");
    return EXIT_SUCCESS;
}
