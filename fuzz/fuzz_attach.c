/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The input is the whole arena file. shm_arena_open must either refuse it
 * with EBADMSG or EPROTO, leaving the bytes as they were, or accept it;
 * an accepted arena then takes a few allocations, frees (valid and not),
 * size queries and the checker, none of which may crash or trip a
 * sanitizer, whatever the metadata says.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "shm_alloc.h"

static char path[600];

static void remove_input(void)
{
    unlink(path);
}

static void write_input(const uint8_t *data, size_t size)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    FUZZ_REQUIRE(fd >= 0, "cannot create %s", path);
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, data + done, size - done);
        FUZZ_REQUIRE(w > 0, "cannot write %s", path);
        done += (size_t)w;
    }
    close(fd);
}

static int file_equals(const uint8_t *data, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat st;
    int same = fstat(fd, &st) == 0 && (size_t)st.st_size == size;
    uint8_t buf[4096];
    for (size_t at = 0; same && at < size;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0 || memcmp(buf, data + at, (size_t)n) != 0)
            same = 0;
        at += n > 0 ? (size_t)n : 0;
    }
    close(fd);
    return same;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (path[0] == '\0') {
        snprintf(path, sizeof path, "%s/attach.%d.shm", fuzz_dir(),
                 (int)getpid());
        atexit(remove_input);
    }
    write_input(data, size);
    struct shm_arena_options opts = {.flags = SHM_ARENA_NO_CREATE};
    errno = 0;
    shm_arena *a = shm_arena_open(path, &opts);
    if (a == NULL) {
        int err = errno;
        FUZZ_REQUIRE(err == EBADMSG || err == EPROTO,
                     "refused with errno %d (%s)", err, strerror(err));
        FUZZ_REQUIRE(file_equals(data, size), "a refused file was modified");
        return 0;
    }
    size_t mapping = shm_arena_mapping_size(a);
    FUZZ_REQUIRE(mapping <= size, "mapping %zu larger than the file %zu",
                 mapping, size);
    shm_offt got[16];
    size_t max = get_shm_max_allocatable_size();
    for (int i = 0; i < 16; i++) {
        got[i] = shm_arena_malloc(a, (max >> (i % 8)) - (size_t)i);
        if (got[i] != SHM_NULL) {
            size_t usable = shm_arena_usable_size(a, got[i]);
            FUZZ_REQUIRE(got[i] < mapping && usable <= mapping - got[i],
                         "chunk %#llx+%zu outside the mapping",
                         (unsigned long long)got[i], usable);
            memset((uint8_t *)shm_arena_base(a) + got[i], 0xA5, usable);
        }
    }
    /* offsets from the input itself, as a damaged index would hold */
    for (size_t i = 0; i + 8 <= size && i < 512; i += 8) {
        uint64_t off;
        memcpy(&off, data + i, 8);
        (void)shm_arena_usable_size(a, off);
        (void)shm_arena_usable_size(a, off % (mapping + 1));
    }
    for (int i = 0; i < 16; i += 2)
        shm_arena_free(a, got[i]);
    (void)shm_arena_available(a);
    (void)shm_arena_check(a);
    for (int i = 1; i < 16; i += 2)
        shm_arena_free(a, got[i]);
    (void)shm_arena_check(a);
    FUZZ_REQUIRE(shm_arena_close(a) == 0, "close failed");
    return 0;
}
