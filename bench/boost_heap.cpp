/* SPDX-License-Identifier: BSD-2-Clause */
// Boost.Interprocess managed_mapped_file behind the C interface of
// boost_heap.h: its default segment manager (rbtree_best_fit guarded by a
// process-shared mutex), the configuration a Boost user gets out of the box.
#include "boost_heap.h"

#include <boost/interprocess/managed_mapped_file.hpp>

#include <new>

namespace bip = boost::interprocess;

struct bench_boost {
    bip::managed_mapped_file file;

    bench_boost(bip::create_only_t, const char *path, std::size_t size)
        : file(bip::create_only, path, size)
    {
    }
    bench_boost(bip::open_only_t, const char *path) : file(bip::open_only, path)
    {
    }
};

extern "C" struct bench_boost *bench_boost_create(const char *path, size_t size)
{
    try {
        return new bench_boost(bip::create_only, path, size);
    } catch (...) {
        return nullptr;
    }
}

extern "C" struct bench_boost *bench_boost_open(const char *path)
{
    try {
        return new bench_boost(bip::open_only, path);
    } catch (...) {
        return nullptr;
    }
}

extern "C" void bench_boost_close(struct bench_boost *b)
{
    delete b;
}

extern "C" void bench_boost_remove(const char *path)
{
    bip::file_mapping::remove(path);
}

extern "C" void *bench_boost_base(const struct bench_boost *b)
{
    return b->file.get_address();
}

extern "C" void *bench_boost_malloc(struct bench_boost *b, size_t size)
{
    return b->file.allocate(size, std::nothrow);
}

extern "C" void bench_boost_free(struct bench_boost *b, void *p)
{
    b->file.deallocate(p);
}

extern "C" int bench_boost_all_free(struct bench_boost *b)
{
    return b->file.check_sanity() && b->file.all_memory_deallocated();
}
