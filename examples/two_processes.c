/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Two processes sharing a linked list through one arena file.
 *
 *     two_processes FILE [TEXT...]
 *
 * The writer creates FILE, builds a list of strings in it with
 * shm_arena_malloc, publishes the list's head under the named root
 * "two_processes.board", and starts a second program (this one again, by
 * exec, so it shares nothing with the writer but the file). The reader is
 * given the file through $SHM_FILE, which the library attaches before
 * main(), and finds the list by the root's name. It prints the list,
 * allocates a reply in the same file and hangs it on the list's head. The
 * writer prints the reply, frees everything, clears the root and checks
 * that the arena is back where it started. FILE is left for the caller to
 * remove.
 *
 * Offsets, not pointers, are stored in the file: each process maps the file
 * at an address of its own and turns an offset into a pointer with its
 * base.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shm_alloc.h>

/* The name both programs know the list by. */
#define BOARD_ROOT "two_processes.board"

/* What the writer publishes: the head of the list and the reader's reply. */
struct board {
    uint64_t count;
    shm_offt first;
    shm_offt reply;
};

struct entry {
    shm_offt next;
    shm_offt text;
};

static const char *const default_texts[] = {
    "offsets, not pointers, live in the file",
    "each process maps the file where it likes",
    "a block freed here can be reused there",
};

static int fail(const char *what)
{
    fprintf(stderr, "two_processes: %s: %s\n", what, strerror(errno));
    return EXIT_FAILURE;
}

static shm_offt store_text(shm_arena *arena, const char *text)
{
    size_t len = strlen(text) + 1;
    shm_offt off = shm_arena_malloc(arena, len);
    if (off != SHM_NULL)
        memcpy((char *)shm_arena_base(arena) + off, text, len);
    return off;
}

/* Builds the list in order; returns the board's offset or SHM_NULL. */
static shm_offt build_list(shm_arena *arena, const char *const *texts,
                           size_t count)
{
    char *base = shm_arena_base(arena);
    shm_offt board_off = shm_arena_calloc(arena, 1, sizeof(struct board));
    if (board_off == SHM_NULL)
        return SHM_NULL;
    struct board *board = (struct board *)(base + board_off);
    shm_offt *link = &board->first;
    for (size_t i = 0; i < count; i++) {
        shm_offt entry_off = shm_arena_calloc(arena, 1, sizeof(struct entry));
        if (entry_off == SHM_NULL)
            return SHM_NULL;
        struct entry *entry = (struct entry *)(base + entry_off);
        entry->text = store_text(arena, texts[i]);
        if (entry->text == SHM_NULL)
            return SHM_NULL;
        *link = entry_off;
        link = &entry->next;
        board->count++;
    }
    return board_off;
}

static void free_list(shm_arena *arena, shm_offt board_off)
{
    char *base = shm_arena_base(arena);
    struct board *board = (struct board *)(base + board_off);
    shm_offt next;
    for (shm_offt off = board->first; off != SHM_NULL; off = next) {
        struct entry *entry = (struct entry *)(base + off);
        next = entry->next;
        shm_arena_free(arena, entry->text);
        shm_arena_free(arena, off);
    }
    shm_arena_free(arena, board->reply);
    shm_arena_free(arena, board_off);
}

/* Starts this program again as the reader and waits for it. */
static int run_reader(const char *path)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return fail("fork");
    if (pid == 0) {
        setenv("SHM_FILE", path, 1);
        execl("/proc/self/exe", "two_processes", "--read", (char *)NULL);
        fail("exec");
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return fail("waitpid");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "two_processes: the reader failed\n");
        return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
}

static int writer(const char *path, const char *const *texts, size_t count)
{
    struct shm_arena_options opts = {
        .capacity = 1u << 20,
        .flags = SHM_ARENA_EXCLUSIVE,
    };
    shm_arena *arena = shm_arena_open(path, &opts);
    if (arena == NULL)
        return fail(path);
    size_t start = shm_arena_available(arena);
    printf("writer %ld: created %s (%zu bytes free), mapped at %p\n",
           (long)getpid(), path, start, shm_arena_base(arena));

    shm_offt board_off = build_list(arena, texts, count);
    if (board_off == SHM_NULL) {
        fail("shm_arena_malloc");
        shm_arena_close(arena);
        return EXIT_FAILURE;
    }
    /* The root is stored after the list is complete: a process that finds
     * it sees everything written before. */
    if (shm_arena_root_set(arena, BOARD_ROOT, board_off) != 0) {
        fail("shm_arena_root_set");
        free_list(arena, board_off);
        shm_arena_close(arena);
        return EXIT_FAILURE;
    }
    printf("writer %ld: stored %zu strings, published as root \"%s\" "
           "(offset %" PRIu_shm_offt ")\n",
           (long)getpid(), count, BOARD_ROOT, board_off);

    int result = run_reader(path);
    if (result == EXIT_SUCCESS) {
        char *base = shm_arena_base(arena);
        struct board *board = (struct board *)(base + board_off);
        printf("writer %ld: the reader answered \"%s\"\n", (long)getpid(),
               board->reply == SHM_NULL ? "" : base + board->reply);
        if (board->reply == SHM_NULL)
            result = EXIT_FAILURE;
    }

    shm_arena_root_set(arena, BOARD_ROOT, SHM_NULL);
    free_list(arena, board_off);
    size_t end = shm_arena_available(arena);
    int problems = shm_arena_check(arena);
    printf("writer %ld: freed everything: %zu bytes free, consistency "
           "check %s\n",
           (long)getpid(), end, problems == 0 ? "passed" : "FAILED");
    if (end != start || problems != 0)
        result = EXIT_FAILURE;
    shm_arena_close(arena);
    if (result == EXIT_SUCCESS)
        printf("two processes shared the list, and the arena is as it "
               "started\n");
    return result;
}

/* The reader: the library has attached $SHM_FILE before main(). */
static int reader(void)
{
    shm_arena *arena = shm_default_arena();
    if (arena == NULL) {
        /* Attach again explicitly to learn why the automatic attach
         * failed. */
        if (!shm_init(NULL, NULL))
            return fail("attaching $SHM_FILE");
        arena = shm_default_arena();
    }
    shm_offt board_off = shm_root_get(BOARD_ROOT);
    if (board_off == SHM_NULL)
        return fail("shm_root_get(\"" BOARD_ROOT "\")");
    if (board_off > shm_arena_mapping_size(arena) - sizeof(struct board)) {
        fprintf(stderr, "two_processes: bad offset %" PRIu_shm_offt "\n",
                board_off);
        return EXIT_FAILURE;
    }
    printf("reader %ld: attached %s through $SHM_FILE, mapped at %p; root "
           "\"%s\" is offset %" PRIu_shm_offt "\n",
           (long)getpid(), getenv("SHM_FILE"), get_shm_user_base(), BOARD_ROOT,
           board_off);

    struct board *board = SHM_OFFT_TO_ADDR(board_off);
    uint64_t seen = 0;
    for (shm_offt off = board->first; off != SHM_NULL && seen < board->count;
         off = ((struct entry *)SHM_OFFT_TO_ADDR(off))->next) {
        struct entry *entry = SHM_OFFT_TO_ADDR(off);
        printf("reader %ld:   [%" PRIu64 "] \"%s\" (offset %" PRIu_shm_offt
               ")\n",
               (long)getpid(), seen, (char *)SHM_OFFT_TO_ADDR(entry->text),
               entry->text);
        seen++;
    }
    if (seen != board->count) {
        fprintf(stderr, "two_processes: read %" PRIu64 " of %" PRIu64 "\n",
                seen, board->count);
        return EXIT_FAILURE;
    }

    char reply[96];
    snprintf(reply, sizeof reply, "process %ld read %" PRIu64 " strings",
             (long)getpid(), seen);
    shm_offt reply_off = shm_malloc(strlen(reply) + 1);
    if (reply_off == SHM_NULL)
        return fail("shm_malloc");
    strcpy(SHM_OFFT_TO_ADDR(reply_off), reply);
    board->reply = reply_off;
    return EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--read") == 0)
        return reader();
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: two_processes FILE [TEXT...]\n");
        return EXIT_FAILURE;
    }
    if (argc > 2)
        return writer(argv[1], (const char *const *)argv + 2, (size_t)argc - 2);
    return writer(argv[1], default_texts,
                  sizeof default_texts / sizeof default_texts[0]);
}
