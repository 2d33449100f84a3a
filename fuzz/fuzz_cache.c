/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The input is a mode byte and then a sequence of calls on one new cache,
 * each an op byte followed by its operands (a key number 0..15, a value
 * length byte):
 *
 *   0 set   1 add   2 replace   3 cas (with the version a gets read)
 *   4 get   5 gets  6 delete    7 incr (keys 12..15 only hold counters)
 *   8 foreach, every entry checked   9 stats
 *
 * Mode bit 0 clear: a 4 MiB arena that the 16 keys can never fill, so
 * nothing is evicted and the cache must agree with the model exactly.
 * Set: a small arena where evictions happen; then a key the model holds
 * may be missing, but a get returns either ENOENT or the last value set,
 * never an older one or another key's, and a key the model knows absent
 * (deleted) stays absent until it is set again. Values carry their key
 * and a serial number, so any mix-up shows.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "shm_cache.h"

#define KEYS 16
#define COUNTER_FIRST 12
#define VALUE_MAX 600

struct model {
    bool held;       /* a set succeeded since the last delete */
    uint64_t serial; /* of the last value set (counters: the number) */
    size_t len;
};

static struct model model[KEYS];
static bool strict;

struct input {
    const uint8_t *p;
    size_t left;
};

static unsigned take(struct input *in)
{
    if (in->left == 0)
        return 0;
    in->left--;
    return *in->p++;
}

static size_t key_of(unsigned k, char *out)
{
    /* Lengths 1 to 31 (and keys that share prefixes). */
    size_t len = 1 + (k * 7) % 31;
    for (size_t i = 0; i < len; i++)
        out[i] = (char)('a' + (k + i) % 26);
    out[0] = (char)('A' + k);
    return len;
}

/* key number | serial | filler derived from both. */
static size_t value_of(unsigned k, uint64_t serial, size_t len, uint8_t *out)
{
    if (len < 9)
        len = 9;
    out[0] = (uint8_t)k;
    memcpy(out + 1, &serial, 8);
    for (size_t i = 9; i < len; i++)
        out[i] = (uint8_t)(serial * 31 + i + k);
    return len;
}

static void check_value(unsigned k, const uint8_t *v, size_t len)
{
    uint8_t want[VALUE_MAX];
    FUZZ_REQUIRE(model[k].held, "key %u: a value of a key never set", k);
    if (k >= COUNTER_FIRST) {
        int64_t n;
        FUZZ_REQUIRE(len == 8, "counter %u: %zu bytes", k, len);
        memcpy(&n, v, 8);
        FUZZ_REQUIRE((uint64_t)n == model[k].serial,
                     "counter %u: %lld, the model %llu", k, (long long)n,
                     (unsigned long long)model[k].serial);
        return;
    }
    size_t n = value_of(k, model[k].serial, model[k].len, want);
    FUZZ_REQUIRE(len == n && memcmp(v, want, n) == 0,
                 "key %u: not the last value set (%zu bytes, want %zu)", k, len,
                 n);
}

/* A get's answer: err and the value read. */
static void check_get(unsigned k, int err, const uint8_t *v, size_t len)
{
    if (err == ENOENT) {
        FUZZ_REQUIRE(!strict || !model[k].held, "key %u: lost", k);
        model[k].held = false; /* evicted: absent until set again */
        return;
    }
    FUZZ_REQUIRE(err == 0, "key %u: get: %d", k, err);
    check_value(k, v, len);
}

static int visit(const void *key, size_t key_len, const void *value,
                 size_t value_len, void *ctx)
{
    unsigned *seen = ctx;
    char want[32];
    for (unsigned k = 0; k < KEYS; k++) {
        if (key_of(k, want) == key_len && memcmp(key, want, key_len) == 0) {
            check_value(k, value, value_len);
            seen[k]++;
            return 0;
        }
    }
    FUZZ_REQUIRE(false, "foreach: a key that was never set");
    return 1;
}

static uint64_t serial;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = {data, size};
    unsigned mode = take(&in);
    strict = (mode & 1) == 0;
    char path[600];
    snprintf(path, sizeof path, "%s/cache.shm", fuzz_dir());
    unlink(path);
    struct shm_cache_options opts = {.capacity = strict ? (size_t)4 << 20
                                                        : (size_t)64 << 10,
                                     .flags = SHM_ARENA_SPARSE,
                                     .expected_items = strict ? 0 : 64};
    shm_cache *c = shm_cache_open(path, &opts);
    FUZZ_REQUIRE(c != NULL, "open: %d", errno);
    memset(model, 0, sizeof model);
    uint64_t version[KEYS] = {0};
    bool version_current[KEYS] = {
        false}; /* read by gets since the last change */

    while (in.left > 0) {
        unsigned op = take(&in) % 10;
        unsigned k = take(&in) % KEYS;
        size_t vlen = 9 + take(&in) * 2; /* 9..519 */
        char key[32];
        size_t klen = key_of(k, key);
        uint8_t value[VALUE_MAX], buf[VALUE_MAX];
        size_t len = 0;
        int err;
        bool counter = k >= COUNTER_FIRST;
        switch (op) {
        case 0:
        case 1:
        case 2:
        case 3: {
            if (counter)
                break;
            uint64_t s = ++serial;
            size_t n = value_of(k, s, vlen, value);
            if (op == 0)
                err = shm_cache_set(c, key, klen, value, n, 0);
            else if (op == 1)
                err = shm_cache_add(c, key, klen, value, n, 0);
            else if (op == 2)
                err = shm_cache_replace(c, key, klen, value, n, 0);
            else
                err = shm_cache_cas(c, key, klen, value, n, 0, version[k]);
            FUZZ_REQUIRE(op != 3 || !strict || !version_current[k] || err == 0,
                         "cas with the current version of key %u: %d", k, err);
            if (err == 0) {
                version_current[k] = false;
                FUZZ_REQUIRE(op != 1 || !strict || !model[k].held,
                             "add over a live key %u", k);
                FUZZ_REQUIRE(op != 2 || model[k].held,
                             "replace of an absent key %u", k);
                model[k] = (struct model){true, s, n};
            } else if (err == EEXIST && op == 1) {
                FUZZ_REQUIRE(model[k].held, "add: EEXIST on absent key %u", k);
            } else if (err == ENOENT && (op == 2 || op == 3)) {
                FUZZ_REQUIRE(!strict || !model[k].held,
                             "replace/cas: ENOENT on a live key %u", k);
                model[k].held = false;
            } else if (err == EAGAIN && op == 3) {
                /* the version is stale (or was never read) */
            } else {
                FUZZ_REQUIRE(!strict && err == ENOMEM, "op %u key %u: error %d",
                             op, k, err);
                /* evictions may have taken this key too */
                err = shm_cache_get(c, key, klen, buf, sizeof buf, &len);
                check_get(k, err, buf, len);
            }
            break;
        }
        case 4:
        case 5: {
            uint64_t v = 0;
            if (op == 4 && (vlen & 2)) {
                /* A zero-copy view, read in place, then ended. */
                struct shm_cache_view view;
                err = shm_cache_view(c, key, klen, &view);
                len = view.value_len;
                FUZZ_REQUIRE(err != 0 || len <= sizeof buf, "view: %zu bytes",
                             len);
                if (err == 0)
                    memcpy(buf, view.value, len);
                shm_cache_view_end(c, &view);
            } else {
                err = op == 4
                          ? shm_cache_get(c, key, klen, buf, sizeof buf, &len)
                          : shm_cache_gets(c, key, klen, buf, sizeof buf, &len,
                                           &v);
            }
            check_get(k, err, buf, len);
            if (err == 0 && op == 5) {
                version[k] = v;
                version_current[k] = true;
            }
            break;
        }
        case 6:
            err = shm_cache_delete(c, key, klen);
            FUZZ_REQUIRE(err == 0 || err == ENOENT, "delete: %d", err);
            FUZZ_REQUIRE(err == 0 || !strict || !model[k].held,
                         "delete: ENOENT on live key %u", k);
            FUZZ_REQUIRE(err == ENOENT || model[k].held,
                         "delete: found absent key %u", k);
            model[k].held = false;
            version_current[k] = false;
            break;
        case 7: {
            if (!counter)
                break;
            int64_t delta = (int64_t)vlen - 200, result = 0;
            err = shm_cache_incr(c, key, klen, delta, 1000, 0, &result);
            if (err == ENOMEM && !strict) {
                err = shm_cache_get(c, key, klen, buf, sizeof buf, &len);
                check_get(k, err, buf, len);
                break;
            }
            FUZZ_REQUIRE(err == 0, "incr: %d", err);
            if (model[k].held && result != 1000)
                FUZZ_REQUIRE((uint64_t)result ==
                                 model[k].serial + (uint64_t)delta,
                             "incr %u: %lld", k, (long long)result);
            FUZZ_REQUIRE(model[k].held || result == 1000,
                         "incr %u: created as %lld", k, (long long)result);
            FUZZ_REQUIRE(!strict || !model[k].held ||
                             (uint64_t)result ==
                                 model[k].serial + (uint64_t)delta,
                         "incr %u: %lld", k, (long long)result);
            model[k] = (struct model){true, (uint64_t)result, 8};
            version_current[k] = false;
            break;
        }
        case 8: {
            unsigned seen[KEYS] = {0};
            FUZZ_REQUIRE(shm_cache_foreach(c, visit, seen) == 0, "foreach");
            for (unsigned i = 0; i < KEYS; i++) {
                FUZZ_REQUIRE(seen[i] <= 1, "foreach: key %u twice", i);
                FUZZ_REQUIRE(!strict || seen[i] == (model[i].held ? 1u : 0u),
                             "foreach: key %u seen %u times", i, seen[i]);
                if (!seen[i])
                    model[i].held = false;
            }
            break;
        }
        case 9: {
            struct shm_cache_stats s;
            FUZZ_REQUIRE(shm_cache_stats(c, &s) == 0, "stats");
            unsigned held = 0;
            for (unsigned i = 0; i < KEYS; i++)
                held += model[i].held;
            FUZZ_REQUIRE(!strict || s.items == held,
                         "stats: %llu items, the model %u",
                         (unsigned long long)s.items, held);
            FUZZ_REQUIRE(s.items <= KEYS, "stats: %llu items",
                         (unsigned long long)s.items);
            break;
        }
        }
    }
    FUZZ_REQUIRE(shm_cache_close(c) == 0, "close");
    unlink(path);
    return 0;
}
