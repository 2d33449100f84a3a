/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The cache benchmark: shm_cache against a process-private chained hash
 * table, LMDB, memcached (over a unix socket) and a Boost.Interprocess
 * map under one mutex, on the same keys and values. bench/run.sh
 * (cache_figures) runs it under hyperfine and reports ratios.
 *
 *   cache_bench [options] STORE TASK
 *     STORE  shm | private | lmdb | memcached | boost
 *     TASK   fill    make the store anew and set every key once
 *            get     OPS gets of random keys (hits), each value checked
 *            view    (shm only) the same gets through shm_cache_view, each
 *                    value checked where it lies, no copy
 *            set     OPS replacements of random keys by new values
 *            mixed   OPS operations per process, 90% get and 10% set
 *            items   set keys 0..KEYS-1 once (no reading in between), then
 *                    print how many of them a get still finds and how
 *                    many sets failed with ENOMEM
 *   -n OPS     timed operations per process [1000000]
 *   -k KEYS    keys [100000]
 *   -p PROCS   processes for mixed, each opening the store itself [1]
 *   -c MIB     capacity of the shm, LMDB and Boost files [256]
 *   -d DIR     where the files go [/dev/shm]
 *   -s SOCKET  memcached's unix socket [DIR/cache_bench.memcached]
 *   -S SEED    seed of the access sequence [1]
 *   -V LEN     every value LEN bytes (16..1000) instead of log-uniform
 *
 * get, set and mixed open what fill left (the private table, which no
 * process can leave behind, is filled by every run); so a figure per
 * operation is (time of a run with -n OPS - time of a run with -n 0) / OPS,
 * which is how run.sh uses hyperfine's medians.
 *
 * Key i is "k" and i's digits padded with '.' to 16..64 bytes (a length
 * fixed by i). A value is 16..1000 bytes, log-uniform (-V LEN: every one
 * LEN bytes, 16..1000):
 *   u32 key index | u32 length | bytes from a random pool | u64 checksum
 * and every get checks all three, so that a value of another key, a
 * truncated one or a mix of two sets is caught (the run exits 1).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <lmdb.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libmemcached/memcached.h>

#include "cache_boost.h"
#include "shm_alloc.h"
#include "shm_cache.h"

#define KEY_MIN 16
#define KEY_MAX 64
#define VALUE_MIN 16
#define VALUE_MAX 1000
#define POOL_BYTES 8192

static const char *dir = "/dev/shm";
static const char *socket_path;
static size_t capacity_mib = 256;
static uint64_t keys = 100000;
static unsigned char pool[POOL_BYTES];

static void die(const char *what, int err)
{
    fprintf(stderr, "cache_bench: %s: %s\n", what, strerror(err));
    exit(1);
}

/* ---- keys, values, randomness ------------------------------------------ */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    r->s += 0x9e3779b97f4a7c15ULL;
    return mix64(r->s);
}

static size_t make_key(uint64_t i, char *out)
{
    size_t len = KEY_MIN + mix64(i ^ 0x5eed) % (KEY_MAX - KEY_MIN + 1);
    char digits[20];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + i % 10);
        i /= 10;
    } while (i != 0);
    out[0] = 'k';
    for (size_t d = 0; d < n; d++)
        out[1 + d] = digits[n - 1 - d];
    memset(out + 1 + n, '.', len - 1 - n);
    return len;
}

/* Log-uniform in VALUE_MIN..VALUE_MAX, or all value_fixed bytes (-V);
 * the table is built once. */
static uint16_t value_lengths[4096];
static unsigned value_fixed;

static void init_tables(void)
{
    for (size_t i = 0; i < 4096; i++) {
        double f = ((double)i + 0.5) / 4096.0;
        value_lengths[i] =
            value_fixed
                ? (uint16_t)value_fixed
                : (uint16_t)(VALUE_MIN * pow((double)VALUE_MAX / VALUE_MIN, f));
    }
    struct rng r = {42};
    for (size_t i = 0; i < POOL_BYTES; i += 8) {
        uint64_t w = rng_next(&r);
        memcpy(pool + i, &w, 8);
    }
}

static uint64_t checksum(const unsigned char *v, size_t len)
{
    uint64_t sum = len * 0x9e3779b97f4a7c15ULL;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, v + i, 8);
        sum += w;
    }
    for (; i < len; i++)
        sum += (uint64_t)v[i] << (8 * (i & 7));
    return sum;
}

static size_t make_value(uint64_t key, struct rng *r, unsigned char *out)
{
    uint64_t x = rng_next(r);
    uint32_t len = value_lengths[x & 4095];
    uint32_t k = (uint32_t)key;
    memcpy(out, &k, 4);
    memcpy(out + 4, &len, 4);
    memcpy(out + 8, pool + (x >> 32) % (POOL_BYTES - VALUE_MAX), len - 16);
    uint64_t sum = checksum(out, len - 8);
    memcpy(out + len - 8, &sum, 8);
    return len;
}

static void check_value(uint64_t key, const unsigned char *v, size_t len)
{
    uint32_t k, l;
    uint64_t sum;
    if (len >= VALUE_MIN && len <= VALUE_MAX) {
        memcpy(&k, v, 4);
        memcpy(&l, v + 4, 4);
        memcpy(&sum, v + len - 8, 8);
        if (k == (uint32_t)key && l == len && sum == checksum(v, len - 8))
            return;
    }
    fprintf(stderr, "cache_bench: key %llu: a wrong value of %zu bytes\n",
            (unsigned long long)key, len);
    exit(1);
}

/* ---- the private table -------------------------------------------------- */

size_t cache_boost_hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ULL;
    }
    for (; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return (size_t)mix64(h);
}

struct entry {
    struct entry *next;
    size_t hash;
    uint32_t key_len, value_len;
    unsigned char bytes[]; /* key then value */
};

struct table {
    struct entry **bucket;
    size_t mask;
};

static void table_init(struct table *t, size_t items)
{
    size_t n = 16;
    while (n < items + items / 4)
        n *= 2;
    t->bucket = calloc(n, sizeof *t->bucket);
    if (t->bucket == NULL)
        die("calloc", ENOMEM);
    t->mask = n - 1;
}

static struct entry **table_find(struct table *t, const void *key,
                                 size_t key_len, size_t hash)
{
    struct entry **at = &t->bucket[hash & t->mask];
    for (; *at != NULL; at = &(*at)->next)
        if ((*at)->hash == hash && (*at)->key_len == key_len &&
            memcmp((*at)->bytes, key, key_len) == 0)
            break;
    return at;
}

static int table_get(struct table *t, const void *key, size_t key_len,
                     void *buf, size_t buf_size, size_t *value_len)
{
    struct entry *e =
        *table_find(t, key, key_len, cache_boost_hash(key, key_len));
    if (e == NULL)
        return ENOENT;
    *value_len = e->value_len;
    if (e->value_len > buf_size)
        return ENOBUFS;
    memcpy(buf, e->bytes + key_len, e->value_len);
    return 0;
}

static int table_set(struct table *t, const void *key, size_t key_len,
                     const void *value, size_t value_len)
{
    size_t hash = cache_boost_hash(key, key_len);
    struct entry *e = malloc(sizeof *e + key_len + value_len);
    if (e == NULL)
        return ENOMEM;
    e->hash = hash;
    e->key_len = (uint32_t)key_len;
    e->value_len = (uint32_t)value_len;
    memcpy(e->bytes, key, key_len);
    memcpy(e->bytes + key_len, value, value_len);
    struct entry **at = table_find(t, key, key_len, hash);
    struct entry *old = *at;
    e->next = old ? old->next : NULL;
    *at = e;
    free(old);
    return 0;
}

/* ---- the stores --------------------------------------------------------- */

enum kind { SHM, PRIVATE, LMDB, MEMCACHED, BOOST };

struct store {
    enum kind kind;
    shm_cache *shm;
    struct table table;
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *reader;
    memcached_st *mc;
    struct cache_boost *boost;
};

static void path_of(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/cache_bench.%s", dir, name);
}

static void store_open(struct store *s, bool fresh)
{
    char path[512];
    size_t capacity = capacity_mib << 20;
    switch (s->kind) {
    case SHM: {
        path_of(path, sizeof path, "shm");
        if (fresh)
            unlink(path);
        struct shm_cache_options opts = {.capacity = capacity,
                                         .flags = SHM_ARENA_SPARSE,
                                         .expected_items = keys};
        s->shm = shm_cache_open(path, &opts);
        if (s->shm == NULL)
            die(path, errno);
        break;
    }
    case PRIVATE:
        table_init(&s->table, keys);
        break;
    case LMDB: {
        path_of(path, sizeof path, "lmdb");
        if (fresh) {
            unlink(path);
            char lock[600];
            snprintf(lock, sizeof lock, "%s-lock", path);
            unlink(lock);
        }
        MDB_txn *txn;
        int err;
        if ((err = mdb_env_create(&s->env)) != 0 ||
            (err = mdb_env_set_mapsize(s->env, capacity)) != 0 ||
            (err = mdb_env_open(s->env, path,
                                MDB_NOSUBDIR | MDB_NOSYNC | MDB_WRITEMAP,
                                0600)) != 0 ||
            (err = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0 ||
            (err = mdb_dbi_open(txn, NULL, 0, &s->dbi)) != 0 ||
            (err = mdb_txn_commit(txn)) != 0 ||
            (err = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->reader)) != 0)
            die(mdb_strerror(err), 0);
        mdb_txn_reset(s->reader);
        break;
    }
    case MEMCACHED:
        s->mc = memcached_create(NULL);
        if (s->mc == NULL || memcached_server_add_unix_socket(
                                 s->mc, socket_path) != MEMCACHED_SUCCESS)
            die("memcached", ENOMEM);
        if (fresh && memcached_flush(s->mc, 0) != MEMCACHED_SUCCESS)
            die("memcached flush (is memcached running on -s SOCKET?)", EIO);
        break;
    case BOOST:
        path_of(path, sizeof path, "boost");
        s->boost = fresh ? cache_boost_create(path, capacity, keys)
                         : cache_boost_open(path);
        if (s->boost == NULL)
            die(path, EINVAL);
        break;
    }
}

static void store_close(struct store *s)
{
    switch (s->kind) {
    case SHM:
        shm_cache_close(s->shm);
        break;
    case PRIVATE:
        break; /* freed at exit */
    case LMDB:
        mdb_txn_abort(s->reader);
        mdb_env_close(s->env);
        break;
    case MEMCACHED:
        memcached_free(s->mc);
        break;
    case BOOST:
        cache_boost_close(s->boost);
        break;
    }
}

/* 0, ENOENT or another errno value. */
static int store_get(struct store *s, const char *key, size_t key_len,
                     unsigned char *buf, size_t *len)
{
    switch (s->kind) {
    case SHM:
        return shm_cache_get(s->shm, key, key_len, buf, VALUE_MAX, len);
    case PRIVATE:
        return table_get(&s->table, key, key_len, buf, VALUE_MAX, len);
    case LMDB: {
        MDB_val k = {key_len, (void *)key}, v;
        int err = mdb_txn_renew(s->reader);
        if (err != 0)
            die(mdb_strerror(err), 0);
        err = mdb_get(s->reader, s->dbi, &k, &v);
        if (err == 0) {
            *len = v.mv_size;
            if (v.mv_size <= VALUE_MAX)
                memcpy(buf, v.mv_data, v.mv_size);
        }
        mdb_txn_reset(s->reader);
        return err == MDB_NOTFOUND ? ENOENT : err;
    }
    case MEMCACHED: {
        uint32_t flags;
        memcached_return_t rc;
        char *v = memcached_get(s->mc, key, key_len, len, &flags, &rc);
        if (v == NULL)
            return rc == MEMCACHED_NOTFOUND ? ENOENT : EIO;
        if (*len <= VALUE_MAX)
            memcpy(buf, v, *len);
        free(v);
        return 0;
    }
    case BOOST:
        return cache_boost_get(s->boost, key, key_len, buf, VALUE_MAX, len)
                   ? ENOENT
                   : 0;
    }
    return EINVAL;
}

static int store_set(struct store *s, const char *key, size_t key_len,
                     const unsigned char *value, size_t len)
{
    switch (s->kind) {
    case SHM:
        return shm_cache_set(s->shm, key, key_len, value, len, 0);
    case PRIVATE:
        return table_set(&s->table, key, key_len, value, len);
    case LMDB: {
        MDB_txn *txn;
        MDB_val k = {key_len, (void *)key}, v = {len, (void *)value};
        int err = mdb_txn_begin(s->env, NULL, 0, &txn);
        if (err != 0)
            return err;
        err = mdb_put(txn, s->dbi, &k, &v, 0);
        if (err != 0) {
            mdb_txn_abort(txn);
            return err;
        }
        return mdb_txn_commit(txn);
    }
    case MEMCACHED: {
        memcached_return_t rc =
            memcached_set(s->mc, key, key_len, (const char *)value, len, 0, 0);
        return rc == MEMCACHED_SUCCESS                            ? 0
               : rc == MEMCACHED_SERVER_MEMORY_ALLOCATION_FAILURE ? ENOMEM
                                                                  : EIO;
    }
    case BOOST:
        return cache_boost_set(s->boost, key, key_len, value, len) ? ENOMEM : 0;
    }
    return EINVAL;
}

/* ---- tasks -------------------------------------------------------------- */

/* Sets every key once; returns how many sets failed with ENOMEM (only
 * when may_fail: the items task, whose store is full). */
static uint64_t fill(struct store *s, bool may_fail)
{
    struct rng r = {7};
    char key[KEY_MAX + 1];
    unsigned char value[VALUE_MAX];
    uint64_t failed = 0;
    for (uint64_t i = 0; i < keys; i++) {
        size_t klen = make_key(i, key);
        size_t vlen = make_value(i, &r, value);
        int err = store_set(s, key, klen, value, vlen);
        if (err == ENOMEM && may_fail)
            failed++;
        else if (err != 0)
            die("fill", err);
    }
    return failed;
}

/* Gets through shm_cache_view: the value checked where it lies. */
static bool zero_copy;

/* ops operations, set_per_mille of them sets. */
static void run(struct store *s, uint64_t ops, unsigned set_per_mille,
                uint64_t seed)
{
    struct rng r = {seed};
    char key[KEY_MAX + 1];
    unsigned char value[VALUE_MAX];
    for (uint64_t n = 0; n < ops; n++) {
        uint64_t x = rng_next(&r);
        uint64_t i = x % keys;
        size_t klen = make_key(i, key);
        size_t vlen;
        int err;
        if ((x >> 40) % 1000 < set_per_mille) {
            vlen = make_value(i, &r, value);
            err = store_set(s, key, klen, value, vlen);
            if (err != 0)
                die("set", err);
        } else if (zero_copy) {
            struct shm_cache_view v;
            err = shm_cache_view(s->shm, key, klen, &v);
            if (err != 0)
                die("view (the store must hold every key)", err);
            check_value(i, v.value, v.value_len);
            shm_cache_view_end(s->shm, &v);
        } else {
            err = store_get(s, key, klen, value, &vlen);
            if (err != 0)
                die("get (the store must hold every key)", err);
            check_value(i, value, vlen);
        }
    }
}

static uint64_t count_items(struct store *s)
{
    char key[KEY_MAX + 1];
    unsigned char value[VALUE_MAX];
    uint64_t found = 0;
    for (uint64_t i = 0; i < keys; i++) {
        size_t klen = make_key(i, key), vlen;
        int err = store_get(s, key, klen, value, &vlen);
        if (err == 0) {
            check_value(i, value, vlen);
            found++;
        } else if (err != ENOENT) {
            die("get", err);
        }
    }
    return found;
}

static void usage(void)
{
    fprintf(stderr, "usage: cache_bench [-n OPS] [-k KEYS] [-p PROCS] [-c MIB] "
                    "[-d DIR] [-s SOCKET] [-S SEED] [-V LEN]\n"
                    "       shm|private|lmdb|memcached|boost "
                    "fill|get|set|mixed|items|view (shm only)\n");
    exit(2);
}

int main(int argc, char **argv)
{
    uint64_t ops = 1000000, seed = 1;
    unsigned procs = 1;
    int opt;
    while ((opt = getopt(argc, argv, "n:k:p:c:d:s:S:V:")) != -1) {
        switch (opt) {
        case 'n':
            ops = strtoull(optarg, NULL, 10);
            break;
        case 'k':
            keys = strtoull(optarg, NULL, 10);
            break;
        case 'p':
            procs = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'c':
            capacity_mib = strtoull(optarg, NULL, 10);
            break;
        case 'd':
            dir = optarg;
            break;
        case 's':
            socket_path = optarg;
            break;
        case 'S':
            seed = strtoull(optarg, NULL, 10);
            break;
        case 'V':
            value_fixed = (unsigned)strtoul(optarg, NULL, 10);
            if (value_fixed < VALUE_MIN || value_fixed > VALUE_MAX)
                usage();
            break;
        default:
            usage();
        }
    }
    if (argc - optind != 2 || keys == 0 || procs == 0)
        usage();
    static const char *const names[] = {"shm", "private", "lmdb", "memcached",
                                        "boost"};
    struct store s = {0};
    size_t k = 0;
    while (k < 5 && strcmp(argv[optind], names[k]) != 0)
        k++;
    if (k == 5)
        usage();
    s.kind = (enum kind)k;
    const char *task = argv[optind + 1];
    char default_socket[512];
    if (socket_path == NULL) {
        path_of(default_socket, sizeof default_socket, "memcached");
        socket_path = default_socket;
    }
    init_tables();

    if (strcmp(task, "fill") == 0 || strcmp(task, "items") == 0) {
        bool items = strcmp(task, "items") == 0;
        store_open(&s, true);
        uint64_t failed = fill(&s, items);
        if (items)
            printf("%llu %llu\n", (unsigned long long)count_items(&s),
                   (unsigned long long)failed);
        store_close(&s);
        return 0;
    }
    unsigned set_per_mille;
    zero_copy = strcmp(task, "view") == 0;
    if (zero_copy && s.kind != SHM)
        usage(); /* a zero-copy read is shm_cache's alone */
    if (strcmp(task, "get") == 0 || zero_copy)
        set_per_mille = 0;
    else if (strcmp(task, "set") == 0)
        set_per_mille = 1000;
    else if (strcmp(task, "mixed") == 0)
        set_per_mille = 100;
    else
        usage();
    if (procs == 1 || s.kind == PRIVATE) {
        store_open(&s, false);
        if (s.kind == PRIVATE)
            fill(&s, false);
        run(&s, ops, set_per_mille, seed);
        store_close(&s);
        return 0;
    }
    /* Each process opens the store itself, as an unrelated one would. */
    for (unsigned p = 0; p < procs; p++) {
        pid_t pid = fork();
        if (pid < 0)
            die("fork", errno);
        if (pid == 0) {
            store_open(&s, false);
            run(&s, ops, set_per_mille, seed + 1000 * (p + 1));
            store_close(&s);
            _exit(0);
        }
    }
    int status = 0, wstatus;
    while (wait(&wstatus) > 0)
        if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0)
            status = 1;
    return status;
}
