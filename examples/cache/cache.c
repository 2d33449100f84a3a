/*
 * A string-keyed cache shared by unrelated processes.
 *
 *     cache demo FILE            one writer and three readers, each a
 *                                separate program attached to FILE
 *     cache writer FILE ROUNDS   store every key ROUNDS times over
 *     cache reader FILE          look keys up until the writer is done
 *
 * Everything lives in the arena and is reached from one named root:
 *
 *   root "example.cache" --> struct cache
 *                             epoch, reader slots
 *                             bucket[0..n) --> entry --> entry --> ...
 *                                               key, hash
 *                                               value --> struct value
 *                                                         len, bytes
 *
 * Entries are pushed on the head of their bucket with one CAS and are
 * never removed, so a reader may walk a chain at any time. A value is
 * replaced with one atomic exchange in its entry, and the old value must
 * then be freed: but a reader may be copying it at that very moment.
 *
 * What this example does about a reader holding a value that a writer
 * frees: epoch-based reclamation across processes. The cache holds a
 * global epoch and one slot per reader process (its pid and the epoch it
 * is reading in, 0 when not reading).
 *   - A reader announces the current epoch in its slot before it looks
 *     anything up, and clears the slot when it is done with what it read.
 *   - The writer does not free a value it replaced; it notes it with the
 *     epoch of the moment ("retired"). It advances the epoch only when
 *     every reading reader has announced the current one, and frees a
 *     value once the epoch is two past its retirement: by then every
 *     reader that could have seen the value has left its read section.
 *   - A reader killed inside a read section would hold the epoch back for
 *     ever; the writer checks that pid and frees the slot of a dead
 *     reader. (A dead reader whose pid was reused only delays freeing.)
 *   - Readers never wait for the writer and the writer never waits for a
 *     reader: a slow reader only makes retired values pile up, and the
 *     writer keeps working (it fails with ENOMEM if the arena runs out).
 *   - The retired list lives in the writer's own memory: a writer that is
 *     killed leaks the values it had retired but not yet freed.
 * The epoch and the reader slots are accessed sequentially consistent
 * (the default of atomic_load/atomic_store): a reader stores its epoch
 * then reloads the global one, the writer advances the global one then
 * scans the slots, and that pair is only sound in a single total order.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm_alloc.h"

#define CACHE_ROOT "example.cache"
#define DONE_ROOT "example.writer-done"
#define READERS 16
#define KEYS 200

typedef _Atomic(uint64_t) word_t;

struct cache {
    word_t epoch; /* starts at 1; a reader slot holds 0 when not reading */
    word_t reader_pid[READERS];
    word_t reader_epoch[READERS];
    uint64_t bucket_count; /* a power of two, fixed at creation */
    word_t bucket[];       /* offset of the first entry, or SHM_NULL */
};

struct entry {
    word_t next;  /* offset of the next entry in the bucket */
    word_t value; /* offset of the current struct value */
    uint64_t hash;
    char key[]; /* NUL terminated */
};

struct value {
    uint64_t len;
    char bytes[];
};

static void *at(shm_offt off)
{
    return SHM_OFFT_TO_ADDR(off);
}

static uint64_t hash_of(const char *key)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (; *key; key++)
        h = (h ^ (unsigned char)*key) * 1099511628211ull;
    return h;
}

/* Finds the cache through its root, creating it if nobody has yet. */
static struct cache *cache_attach(const char *path)
{
    if (!shm_init(NULL, path)) {
        perror("shm_init");
        return NULL;
    }
    shm_offt off = shm_root_get(CACHE_ROOT);
    if (off != SHM_NULL)
        return at(off);
    /* The cache takes the largest chunk: the header and as many buckets
     * as fit, rounded down to a power of two. */
    size_t size = get_shm_max_allocatable_size();
    if (size < sizeof(struct cache) + 8 * sizeof(word_t)) {
        fprintf(stderr, "chunks of %zu bytes are too small\n", size);
        return NULL;
    }
    size_t buckets = (size - sizeof(struct cache)) / sizeof(word_t);
    while (buckets & (buckets - 1))
        buckets &= buckets - 1;
    shm_offt mine = shm_calloc(1, size);
    if (mine == SHM_NULL) {
        perror("shm_calloc");
        return NULL;
    }
    struct cache *cache = at(mine);
    cache->bucket_count = buckets;
    atomic_store_explicit(&cache->epoch, 1, memory_order_relaxed);
    /* Publishes the initialised cache (the root's release); a process that
     * lost the race uses the winner's cache. */
    if (shm_root_cas(CACHE_ROOT, SHM_NULL, mine))
        return cache;
    shm_free(mine);
    off = shm_root_get(CACHE_ROOT);
    return off != SHM_NULL ? at(off) : NULL;
}

/* ---- readers ----------------------------------------------------------- */

static int reader_slot = -1;

static bool process_gone(uint64_t pid)
{
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

static bool reader_register(struct cache *cache)
{
    uint64_t me = (uint64_t)getpid();
    for (int i = 0; i < READERS; i++) {
        uint64_t owner = atomic_load(&cache->reader_pid[i]);
        if ((owner == 0 || process_gone(owner)) &&
            atomic_compare_exchange_strong(&cache->reader_pid[i], &owner, me)) {
            atomic_store(&cache->reader_epoch[i], 0);
            reader_slot = i;
            return true;
        }
    }
    return false;
}

static void reader_unregister(struct cache *cache)
{
    atomic_store(&cache->reader_epoch[reader_slot], 0);
    atomic_store(&cache->reader_pid[reader_slot], 0);
}

/* Enters a read section: announce the epoch, then check it is still the
 * current one, so that the writer's scan (seq_cst, like these) either
 * sees the announcement or advanced the epoch before it, and then the
 * check fails and the reader announces the new epoch. */
static void read_begin(struct cache *cache)
{
    for (;;) {
        uint64_t e = atomic_load(&cache->epoch);
        atomic_store(&cache->reader_epoch[reader_slot], e);
        if (atomic_load(&cache->epoch) == e)
            return;
    }
}

static void read_end(struct cache *cache)
{
    /* Release: everything read in the section happens before the writer
     * sees the slot quiescent and frees what was read. */
    atomic_store_explicit(&cache->reader_epoch[reader_slot], 0,
                          memory_order_release);
}

/* Copies the value of key into buf; returns its length, or -1. */
static long cache_get(struct cache *cache, const char *key, char *buf,
                      size_t size)
{
    uint64_t h = hash_of(key);
    long len = -1;
    read_begin(cache);
    /* Acquire on bucket heads, next and value: pairs with the release of
     * the writer that published the entry or the value. */
    shm_offt off = atomic_load_explicit(
        &cache->bucket[h & (cache->bucket_count - 1)], memory_order_acquire);
    while (off != SHM_NULL) {
        struct entry *e = at(off);
        if (e->hash == h && strcmp(e->key, key) == 0) {
            shm_offt v = atomic_load_explicit(&e->value, memory_order_acquire);
            const struct value *value = at(v);
            len = (long)(value->len < size ? value->len : size);
            memcpy(buf, value->bytes, (size_t)len);
            break;
        }
        off = atomic_load_explicit(&e->next, memory_order_acquire);
    }
    read_end(cache);
    return len;
}

/* ---- the writer -------------------------------------------------------- */

struct retired {
    shm_offt off;
    uint64_t epoch;
};

static struct retired *retired;
static size_t retired_count, retired_size;

/* Advances the epoch if every reading reader is in the current one, then
 * frees what no reader can hold any more. */
static void reclaim(struct cache *cache)
{
    uint64_t e = atomic_load(&cache->epoch);
    bool all_current = true;
    for (int i = 0; i < READERS; i++) {
        uint64_t pid = atomic_load(&cache->reader_pid[i]);
        uint64_t re = atomic_load(&cache->reader_epoch[i]);
        if (pid == 0 || re == 0 || re == e)
            continue;
        if (process_gone(pid)) { /* killed while reading */
            atomic_store(&cache->reader_epoch[i], 0);
            atomic_compare_exchange_strong(&cache->reader_pid[i], &pid, 0);
            continue;
        }
        all_current = false;
    }
    if (all_current)
        atomic_compare_exchange_strong(&cache->epoch, &e, e + 1);
    uint64_t now = atomic_load(&cache->epoch);
    size_t kept = 0;
    for (size_t i = 0; i < retired_count; i++) {
        if (retired[i].epoch + 2 <= now)
            shm_free(retired[i].off);
        else
            retired[kept++] = retired[i];
    }
    retired_count = kept;
}

static int retire(struct cache *cache, shm_offt off)
{
    if (retired_count == retired_size) {
        size_t size = retired_size ? 2 * retired_size : 64;
        struct retired *grown = realloc(retired, size * sizeof *grown);
        if (grown == NULL)
            return -1;
        retired = grown;
        retired_size = size;
    }
    /* Seq_cst, after the exchange that unlinked the value: a reader that
     * announces a later epoch cannot reach it any more. */
    retired[retired_count++] =
        (struct retired){off, atomic_load(&cache->epoch)};
    reclaim(cache);
    return 0;
}

/* Stores a copy of bytes under key. 0, or -1 with errno. */
static int cache_put(struct cache *cache, const char *key, const char *bytes,
                     size_t len)
{
    shm_offt v = shm_malloc(sizeof(struct value) + len);
    if (v == SHM_NULL)
        return -1;
    struct value *value = at(v);
    value->len = len;
    memcpy(value->bytes, bytes, len);

    uint64_t h = hash_of(key);
    word_t *head = &cache->bucket[h & (cache->bucket_count - 1)];
    shm_offt fresh = SHM_NULL;
    for (;;) {
        shm_offt first = atomic_load_explicit(head, memory_order_acquire);
        for (shm_offt off = first; off != SHM_NULL;
             off = atomic_load_explicit(&((struct entry *)at(off))->next,
                                        memory_order_acquire)) {
            struct entry *e = at(off);
            if (e->hash == h && strcmp(e->key, key) == 0) {
                if (fresh != SHM_NULL)
                    shm_free(fresh); /* another writer added the key */
                /* Acq_rel: releases the new value to readers, acquires the
                 * old one from the writer that stored it. */
                shm_offt old = atomic_exchange_explicit(&e->value, v,
                                                        memory_order_acq_rel);
                return retire(cache, old);
            }
        }
        if (fresh == SHM_NULL) {
            size_t key_size = strlen(key) + 1;
            fresh = shm_malloc(sizeof(struct entry) + key_size);
            if (fresh == SHM_NULL) {
                shm_free(v);
                return -1;
            }
            struct entry *e = at(fresh);
            e->hash = h;
            memcpy(e->key, key, key_size);
            atomic_store_explicit(&e->value, v, memory_order_relaxed);
        }
        atomic_store_explicit(&((struct entry *)at(fresh))->next, first,
                              memory_order_relaxed);
        /* Release: the entry's key, hash and value are visible to whoever
         * finds it from the bucket head. */
        if (atomic_compare_exchange_strong_explicit(head, &first, fresh,
                                                    memory_order_release,
                                                    memory_order_relaxed))
            return 0;
    }
}

/* ---- the programs ------------------------------------------------------ */

/* Values say which key they belong to and carry a checksum, so a reader
 * notices a value that was freed and reused under it. */
static int value_format(char *buf, size_t size, const char *key,
                        unsigned version)
{
    unsigned sum = version * 2654435761u;
    for (const char *p = key; *p; p++)
        sum = sum * 31 + (unsigned char)*p;
    return snprintf(buf, size, "%s|version %u|check %u", key, version, sum);
}

static bool value_valid(const char *key, const char *value, size_t len)
{
    char copy[128];
    if (len >= sizeof copy)
        return false;
    memcpy(copy, value, len);
    copy[len] = '\0';
    unsigned version;
    const char *bar = strchr(copy, '|');
    if (bar == NULL || sscanf(bar, "|version %u|", &version) != 1)
        return false;
    char expected[128];
    value_format(expected, sizeof expected, key, version);
    return strcmp(copy, expected) == 0;
}

static int run_writer(const char *path, unsigned rounds)
{
    struct cache *cache = cache_attach(path);
    if (cache == NULL)
        return 1;
    char key[32], value[128];
    for (unsigned round = 0; round < rounds; round++) {
        for (int k = 0; k < KEYS; k++) {
            snprintf(key, sizeof key, "key-%d", k);
            int len = value_format(value, sizeof value, key, round);
            if (cache_put(cache, key, value, (size_t)len) != 0) {
                perror("cache_put");
                return 1;
            }
        }
    }
    /* Tell the readers, then free the rest once they have left. */
    shm_root_set(DONE_ROOT, shm_root_get(CACHE_ROOT));
    for (int tries = 0; retired_count > 0 && tries < 5000; tries++) {
        reclaim(cache);
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
    printf("writer: %u rounds of %d keys, %zu values left retired\n", rounds,
           KEYS, retired_count);
    free(retired);
    shm_deinit();
    return 0;
}

static int run_reader(const char *path)
{
    struct cache *cache = cache_attach(path);
    if (cache == NULL || !reader_register(cache))
        return 1;
    unsigned long lookups = 0, hits = 0, bad = 0;
    unsigned seed = (unsigned)getpid();
    char key[32], value[128];
    for (;;) {
        bool done = shm_root_get(DONE_ROOT) != SHM_NULL;
        for (int i = 0; i < 1000; i++) {
            snprintf(key, sizeof key, "key-%d", rand_r(&seed) % KEYS);
            long len = cache_get(cache, key, value, sizeof value);
            lookups++;
            if (len >= 0) {
                hits++;
                bad += !value_valid(key, value, (size_t)len);
            }
        }
        if (done)
            break;
    }
    reader_unregister(cache);
    printf("reader %d: %lu lookups, %lu hits, %lu bad values\n", (int)getpid(),
           lookups, hits, bad);
    shm_deinit();
    return bad == 0 ? 0 : 2;
}

static pid_t start(const char *self, const char *role, const char *path,
                   const char *arg)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl(self, self, role, path, arg, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int run_demo(const char *self, const char *path)
{
    enum { READER_PROCESSES = 3 };
    unlink(path);
    const char *size = getenv("SHM_SIZE");
    if (size == NULL || size[0] == '\0')
        setenv("SHM_SIZE", "8M", 1); /* capacity of the new file */
    pid_t pids[1 + READER_PROCESSES];
    for (int i = 0; i < READER_PROCESSES; i++)
        pids[1 + i] = start(self, "reader", path, NULL);
    pids[0] = start(self, "writer", path, "200");
    int failed = 0;
    for (int i = 0; i < 1 + READER_PROCESSES; i++) {
        int status;
        if (pids[i] < 0 || waitpid(pids[i], &status, 0) != pids[i] ||
            !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
    }
    struct cache *cache = cache_attach(path);
    if (cache == NULL || !reader_register(cache))
        return 1;
    char value[128];
    long len = cache_get(cache, "key-7", value, sizeof value - 1);
    reader_unregister(cache);
    if (len >= 0) {
        value[len] = '\0';
        printf("key-7 = \"%s\"\n", value);
    }
    int check = shm_check();
    printf("%d processes failed, shm_check() = %d\n", failed, check);
    shm_deinit();
    unlink(path);
    return failed == 0 && check == 0 && len >= 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "demo") == 0)
        return run_demo("/proc/self/exe", argv[2]);
    if (argc == 4 && strcmp(argv[1], "writer") == 0)
        return run_writer(argv[2], (unsigned)strtoul(argv[3], NULL, 10));
    if (argc == 3 && strcmp(argv[1], "reader") == 0)
        return run_reader(argv[2]);
    fprintf(stderr, "usage: %s demo FILE | writer FILE ROUNDS | reader FILE\n",
            argv[0]);
    return 2;
}
