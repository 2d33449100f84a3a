/* SPDX-License-Identifier: BSD-2-Clause */
// The cache benchmark's Boost.Interprocess contender: a boost::unordered_map
// of fixed-size keys to vectors of bytes in a managed_mapped_file, every
// access under one interprocess_mutex kept in the same file. That is the
// shared map a Boost user writes; cache_bench.c drives it through the C
// interface of cache_boost.h.
#include "cache_boost.h"

#include <boost/interprocess/allocators/allocator.hpp>
#include <boost/interprocess/containers/vector.hpp>
#include <boost/interprocess/managed_mapped_file.hpp>
#include <boost/interprocess/sync/interprocess_mutex.hpp>
#include <boost/interprocess/sync/scoped_lock.hpp>
#include <boost/unordered_map.hpp>

#include <cstring>
#include <functional>
#include <new>

namespace bip = boost::interprocess;

namespace
{

using segment = bip::managed_mapped_file;
using manager = segment::segment_manager;

struct key {
    unsigned char len;
    char bytes[CACHE_BOOST_KEY_MAX];

    bool operator==(const key &o) const
    {
        return len == o.len && std::memcmp(bytes, o.bytes, len) == 0;
    }
};

struct key_hash {
    std::size_t operator()(const key &k) const
    {
        return cache_boost_hash(k.bytes, k.len);
    }
};

using bytes = bip::vector<char, bip::allocator<char, manager>>;
using entry = std::pair<const key, bytes>;
using map = boost::unordered_map<key, bytes, key_hash, std::equal_to<key>,
                                 bip::allocator<entry, manager>>;

struct shared {
    bip::interprocess_mutex lock;
    map items;

    shared(std::size_t buckets, manager *m)
        : items(buckets, key_hash(), std::equal_to<key>(),
                bip::allocator<entry, manager>(m))
    {
    }
};

key make_key(const void *k, std::size_t len)
{
    key out;
    out.len = static_cast<unsigned char>(len);
    std::memcpy(out.bytes, k, len);
    return out;
}

} // namespace

struct cache_boost {
    segment file;
    shared *data;

    cache_boost(bip::create_only_t, const char *path, std::size_t size,
                std::size_t buckets)
        : file(bip::create_only, path, size),
          data(file.construct<shared>("cache")(buckets,
                                               file.get_segment_manager()))
    {
    }
    cache_boost(bip::open_only_t, const char *path)
        : file(bip::open_only, path), data(file.find<shared>("cache").first)
    {
    }
};

extern "C" struct cache_boost *cache_boost_create(const char *path, size_t size,
                                                  size_t items)
{
    try {
        bip::file_mapping::remove(path);
        return new cache_boost(bip::create_only, path, size, items);
    } catch (...) {
        return nullptr;
    }
}

extern "C" struct cache_boost *cache_boost_open(const char *path)
{
    try {
        cache_boost *b = new cache_boost(bip::open_only, path);
        if (b->data == nullptr) {
            delete b;
            return nullptr;
        }
        return b;
    } catch (...) {
        return nullptr;
    }
}

extern "C" void cache_boost_close(struct cache_boost *b)
{
    delete b;
}

extern "C" int cache_boost_get(struct cache_boost *b, const void *k,
                               size_t key_len, void *buf, size_t buf_size,
                               size_t *value_len)
{
    key wanted = make_key(k, key_len);
    bip::scoped_lock<bip::interprocess_mutex> hold(b->data->lock);
    map::const_iterator it = b->data->items.find(wanted);
    if (it == b->data->items.end())
        return -1;
    *value_len = it->second.size();
    if (it->second.size() > buf_size)
        return -1;
    std::memcpy(buf, it->second.data(), it->second.size());
    return 0;
}

extern "C" int cache_boost_set(struct cache_boost *b, const void *k,
                               size_t key_len, const void *value,
                               size_t value_len)
{
    try {
        key wanted = make_key(k, key_len);
        const char *v = static_cast<const char *>(value);
        bip::scoped_lock<bip::interprocess_mutex> hold(b->data->lock);
        map::iterator it = b->data->items.find(wanted);
        if (it != b->data->items.end()) {
            it->second.assign(v, v + value_len);
            return 0;
        }
        bytes copy(v, v + value_len, b->file.get_segment_manager());
        b->data->items.emplace(wanted, boost::move(copy));
        return 0;
    } catch (...) {
        return -1;
    }
}
