/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The old shm_alloc's multi-process test, as its users wrote it: NPROCS
 * forked processes x NTHREADS threads. Every thread calls
 * shm_init(NULL, NULL) with $SHM_FILE set, so that they all race to create
 * the file; each allocates strings of random length, up to the largest
 * request, with ptr_calloc(strlen + 1), and hands their offsets to another
 * thread, which checks and frees them. Exits non-zero, naming the seed,
 * when a string came back wrong.
 */
#include "shm_alloc.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/wait.h>

#define NPROCS 4
#define NTHREADS 4
#define NSTRINGS 4
#define NROUNDS 25
#define SHM_FILE_NAME "compat_multiproc_file"

struct passed_string {
    shm_offt offset;
    size_t len;
    size_t first;
};

static struct passed_string strings[NTHREADS][NSTRINGS];
static pthread_barrier_t barrier;
static unsigned int seed;
static int proc_no;

static char letter(size_t first, size_t i)
{
    return (char)('a' + (first + i) % 26);
}

static long check_string(const struct passed_string *p, long thread_no)
{
    const char *s = SHM_OFFT_TO_ADDR(p->offset);
    size_t i;

    if (strlen(s) != p->len) {
        fprintf(stderr,
                "process %d thread %ld: string at %" PRIu_shm_offt
                " has length %zu, expected %zu\n",
                proc_no, thread_no, p->offset, strlen(s), p->len);
        return 1;
    }
    for (i = 0; i < p->len; i++) {
        if (s[i] != letter(p->first, i)) {
            fprintf(stderr,
                    "process %d thread %ld: string at %" PRIu_shm_offt
                    " differs at %zu\n",
                    proc_no, thread_no, p->offset, i);
            return 1;
        }
    }
    return 0;
}

static void *thread_main(void *arg)
{
    long thread_no = (long)arg;
    unsigned int my_seed =
        seed + (unsigned int)(proc_no * NTHREADS + thread_no);
    size_t max_len;
    long errors = 0;
    int round, i;

    if (!shm_init(NULL, NULL)) {
        fprintf(stderr, "process %d thread %ld: shm_init() failed\n", proc_no,
                thread_no);
        errors++;
    }
    max_len = get_shm_max_allocatable_size() - get_sizeof_block_header();

    for (round = 0; round < NROUNDS; round++) {
        for (i = 0; i < NSTRINGS; i++) {
            struct passed_string *mine = &strings[thread_no][i];
            size_t len = (size_t)rand_r(&my_seed) % max_len;
            size_t first = (size_t)rand_r(&my_seed) % 26;
            size_t j;
            char *s = ptr_calloc(len + 1, sizeof(char));

            mine->offset = SHM_NULL;
            if (s == NULL) {
                fprintf(stderr,
                        "process %d thread %ld: ptr_calloc(%zu) failed\n",
                        proc_no, thread_no, len + 1);
                errors++;
                continue;
            }
            for (j = 0; j < len; j++)
                s[j] = letter(first, j);
            mine->offset = SHM_ADDR_TO_OFFT(s);
            mine->len = len;
            mine->first = first;
        }

        /* Every thread checks and frees another thread's strings, a
         * different one each round. */
        pthread_barrier_wait(&barrier);
        long peer = (thread_no + 1 + round) % NTHREADS;
        for (i = 0; i < NSTRINGS; i++) {
            struct passed_string *theirs = &strings[peer][i];
            if (theirs->offset == SHM_NULL)
                continue;
            errors += check_string(theirs, thread_no);
            shm_free(theirs->offset);
        }
        pthread_barrier_wait(&barrier);
    }
    return (void *)errors;
}

static int run_process(void)
{
    pthread_t threads[NTHREADS];
    long errors = 0;
    long t;

    pthread_barrier_init(&barrier, NULL, NTHREADS);
    for (t = 0; t < NTHREADS; t++) {
        if (pthread_create(&threads[t], NULL, thread_main, (void *)t) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            exit(EXIT_FAILURE);
        }
    }
    for (t = 0; t < NTHREADS; t++) {
        void *ret;
        pthread_join(threads[t], &ret);
        errors += (long)ret;
    }
    return errors == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

int main(void)
{
    const char *seed_text = getenv("SHM_TEST_SEED");
    size_t capacity;
    char size_text[32];
    pid_t pids[NPROCS];
    int failed = 0;
    int p;

    seed = (seed_text != NULL && seed_text[0] != '\0')
               ? (unsigned int)strtoul(seed_text, NULL, 0)
               : (unsigned int)getpid() * 2654435761u;

    /* Room for every string alive at once, twice over. */
    capacity =
        2 * NPROCS * NTHREADS * NSTRINGS * get_shm_max_allocatable_size();
    if (capacity < 4 << 20)
        capacity = 4 << 20;
    snprintf(size_text, sizeof size_text, "%zu", capacity);
    setenv("SHM_SIZE", size_text, 1);
    setenv("SHM_FILE", SHM_FILE_NAME, 1);
    remove(SHM_FILE_NAME);

    fflush(stdout);
    for (p = 0; p < NPROCS; p++) {
        pids[p] = fork();
        if (pids[p] < 0) {
            fprintf(stderr, "fork failed\n");
            exit(EXIT_FAILURE);
        }
        if (pids[p] == 0) {
            proc_no = p;
            exit(run_process());
        }
    }
    for (p = 0; p < NPROCS; p++) {
        int status;
        if (waitpid(pids[p], &status, 0) != pids[p] || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
            fprintf(stderr, "process %d failed\n", p);
            failed = 1;
        }
    }

    /* Every string was freed: the arena is whole again. */
    if (!shm_init(NULL, NULL)) {
        fprintf(stderr, "shm_init() failed in the parent\n");
        failed = 1;
    } else if (shm_check() != 0 ||
               shm_available() != shm_arena_capacity(shm_default_arena())) {
        fprintf(stderr, "the arena is not whole: check %d, %zu bytes free\n",
                shm_check(), shm_available());
        failed = 1;
    }
    shm_deinit();
    remove(SHM_FILE_NAME);

    if (failed) {
        fprintf(stderr, "failed with seed %u (rerun with SHM_TEST_SEED=%u)\n",
                seed, seed);
        return EXIT_FAILURE;
    }
    printf("%d processes x %d threads: every string came back intact\n", NPROCS,
           NTHREADS);
    return EXIT_SUCCESS;
}
