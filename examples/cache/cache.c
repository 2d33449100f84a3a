/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Worker processes sharing a cache of computed results.
 *
 *     cache demo FILE           three workers, each a separate program,
 *                               over overlapping ranges; then expiry
 *     cache worker FILE FROM TO factor FROM..TO, asking the cache first
 *
 * Each worker factors the numbers of its range. Before computing one it
 * looks the number up in the cache kept in FILE; after computing it, it
 * stores the answer for 2 seconds. A number another worker factored a
 * moment ago is a hit. The cache does the sharing: no locks, no
 * reclamation, and a worker killed at any point leaves every entry whole.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm_cache.h"

#define TTL_SECONDS 2

/* "2 2 3 5" for 60: the slow computation the cache saves. */
static void factor(uint64_t n, char *out, size_t size)
{
    size_t len = 0;
    out[0] = '\0';
    for (uint64_t d = 2; d * d <= n && len < size; d++)
        for (; n % d == 0; n /= d)
            len += (size_t)snprintf(out + len, size - len, "%s%" PRIu64,
                                    len ? " " : "", d);
    if (n > 1 && len < size)
        snprintf(out + len, size - len, "%s%" PRIu64, len ? " " : "", n);
}

static int worker(const char *file, uint64_t from, uint64_t to)
{
    shm_cache *c = shm_cache_open(file, NULL);
    if (!c) {
        perror(file);
        return 1;
    }
    unsigned hits = 0, computed = 0;
    for (uint64_t n = from; n <= to; n++) {
        char key[32], answer[256];
        int key_len = snprintf(key, sizeof key, "factors:%" PRIu64, n);
        size_t len;
        if (shm_cache_get(c, key, (size_t)key_len, answer, sizeof answer - 1,
                          &len) == 0) {
            hits++;
            continue;
        }
        factor(n, answer, sizeof answer);
        int err = shm_cache_set(c, key, (size_t)key_len, answer, strlen(answer),
                                TTL_SECONDS);
        if (err) {
            fprintf(stderr, "set: %s\n", strerror(err));
            return 1;
        }
        computed++;
    }
    printf("worker %d: %" PRIu64 "..%" PRIu64 ": %u computed, %u from the "
           "cache\n",
           (int)getpid(), from, to, computed, hits);
    return shm_cache_close(c) == 0 ? 0 : 1;
}

static int demo(const char *self, const char *file)
{
    unlink(file);
    struct shm_cache_options opts = {.capacity = 8 << 20};
    shm_cache *c = shm_cache_open(file, &opts);
    if (!c) {
        perror(file);
        return 1;
    }
    /* Overlapping ranges, started one after the other. */
    static const char *const ranges[][2] = {
        {"1000000", "1004000"}, {"1002000", "1006000"}, {"1000000", "1006000"}};
    for (int w = 0; w < 3; w++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            execl(self, self, "worker", file, ranges[w][0], ranges[w][1],
                  (char *)NULL);
            _exit(127);
        }
        int status;
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0)
            return 1;
    }
    char answer[256];
    size_t len;
    if (shm_cache_get(c, "factors:1001000", 15, answer, sizeof answer - 1,
                      &len) != 0)
        return 1;
    answer[len] = '\0';
    printf("1001000 = %s, as a worker stored it\n", answer);
    struct shm_cache_stats s;
    shm_cache_stats(c, &s);
    printf("the cache holds %" PRIu64 " results; %" PRIu64 " hits, %" PRIu64
           " misses\n",
           s.items, s.hits, s.misses);

    struct timespec wait = {TTL_SECONDS, 300 * 1000 * 1000};
    nanosleep(&wait, NULL);
    int err =
        shm_cache_get(c, "factors:1001000", 15, answer, sizeof answer, &len);
    printf("after %d s: %s\n", TTL_SECONDS,
           err == ENOENT ? "expired" : "still there");
    shm_cache_close(c);
    unlink(file);
    return err == ENOENT ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "demo") == 0)
        return demo(argv[0], argv[2]);
    if (argc == 5 && strcmp(argv[1], "worker") == 0)
        return worker(argv[2], strtoull(argv[3], NULL, 10),
                      strtoull(argv[4], NULL, 10));
    fprintf(stderr, "usage: %s demo FILE | worker FILE FROM TO\n", argv[0]);
    return 2;
}
