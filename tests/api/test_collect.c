/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The collector (shm_arena_collect, shm_collect) through the public
 * header: a structure published under a named root survives with every
 * byte, garbage of this process and chunks of a SIGKILLed child are
 * freed, down to the free byte count the structure's sizes call for;
 * refused with EBUSY, the file unchanged, while another process is
 * attached; no open gets in while it runs; bad marks are refused; a
 * failing trace frees nothing.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <sys/wait.h>

#include "api_util.h"

#define ROOT "collect:list"

/* A list node in the arena: the next node (the last one points back at
 * the first, so tracers meet a cycle) and a stamped data chunk. */
struct node {
    shm_offt next;
    shm_offt data;
    uint64_t size; /* bytes asked for the data chunk */
};

/* n, or the largest chunk when that is smaller: every size range the
 * build may be configured with (down to 8-byte chunks) runs the tests. */
static size_t fit(size_t n)
{
    size_t max = get_shm_max_allocatable_size();
    return n < max ? n : max;
}

/* The list's nodes need chunks of sizeof(struct node) bytes. */
#define REQUIRE_LIST_FITS()                                                    \
    do {                                                                       \
        if (get_shm_max_allocatable_size() < sizeof(struct node)) {            \
            print_message("skipped: chunks of at most %zu bytes cannot hold "  \
                          "a list node\n",                                     \
                          get_shm_max_allocatable_size());                     \
            skip();                                                            \
        }                                                                      \
    } while (0)

struct arena_file {
    char path[4096];
    shm_arena *arena;
};

static void open_fresh(struct arena_file *f, const char *name)
{
    scratch_path(f->path, sizeof f->path, name);
    unlink(f->path);
    struct shm_arena_options opts = {.capacity = small_capacity()};
    f->arena = shm_arena_open(f->path, &opts);
    assert_non_null(f->arena);
}

static void close_and_remove(struct arena_file *f)
{
    assert_int_equal(shm_arena_close(f->arena), 0);
    unlink(f->path);
}

static uint8_t *base_of(const struct arena_file *f)
{
    return shm_arena_base(f->arena);
}

/* ---- the structure and its tracer -------------------------------------- */

struct list {
    size_t count;
    shm_offt nodes[64];
    size_t live_bytes; /* chunk bytes of nodes and data, by the contract */
};

/* Builds a ring of `count` nodes under ROOT, data of random sizes. */
static void build_list(struct arena_file *f, struct list *l, size_t count,
                       uint64_t *rng)
{
    uint8_t *base = base_of(f);
    assert_true(count <= sizeof l->nodes / sizeof l->nodes[0]);
    l->count = count;
    l->live_bytes = 0;
    for (size_t i = 0; i < count; i++) {
        shm_offt n = shm_arena_malloc(f->arena, sizeof(struct node));
        assert_int_not_equal(n, SHM_NULL);
        size_t size = 1 + (size_t)rng_below(rng, fit(3000));
        shm_offt data = shm_arena_malloc(f->arena, size);
        assert_int_not_equal(data, SHM_NULL);
        stamp_chunk(base + data, size, data);
        struct node *node = (struct node *)(base + n);
        node->data = data;
        node->size = size;
        node->next = SHM_NULL;
        if (i > 0)
            ((struct node *)(base + l->nodes[i - 1]))->next = n;
        l->nodes[i] = n;
        l->live_bytes += shm_arena_usable_size(f->arena, n) +
                         shm_arena_usable_size(f->arena, data);
    }
    ((struct node *)(base + l->nodes[count - 1]))->next = l->nodes[0];
    assert_int_equal(shm_arena_root_set(f->arena, ROOT, l->nodes[0]), 0);
}

static void assert_list_intact(const struct arena_file *f, const struct list *l)
{
    uint8_t *base = base_of(f);
    assert_int_equal(shm_arena_root_get(f->arena, ROOT), l->nodes[0]);
    for (size_t i = 0; i < l->count; i++) {
        const struct node *node = (const struct node *)(base + l->nodes[i]);
        assert_true(usable_fits(sizeof(struct node),
                                shm_arena_usable_size(f->arena, l->nodes[i])));
        assert_int_equal(node->next, l->nodes[(i + 1) % l->count]);
        assert_true(usable_fits(node->size,
                                shm_arena_usable_size(f->arena, node->data)));
        assert_chunk_stamped(base + node->data, node->size, node->data);
    }
}

/* What the tracer saw: counted, never asserted inside the trace (a failed
 * assertion there would jump over the end of the collection). */
struct tracer {
    size_t nodes;       /* nodes marked */
    size_t already;     /* EALREADY answers (the cycle) */
    int first_error;    /* the first unexpected mark result */
    size_t extent_errs; /* extents that disagreed with the node */
    int calls;
};

static int trace_list(shm_collector *col, void *context)
{
    struct tracer *t = context;
    t->calls++;
    shm_arena *arena = shm_collect_arena(col);
    uint8_t *base = shm_arena_base(arena);
    shm_offt off = shm_arena_root_get(arena, ROOT);
    while (off != SHM_NULL) {
        int r = shm_collect_mark(col, off);
        if (r == EALREADY) {
            t->already++;
            break;
        }
        if (r != 0) {
            t->first_error = r;
            return r;
        }
        const struct node *node = (const struct node *)(base + off);
        size_t size = 0;
        if (shm_collect_extent(col, node->data, &size) != 0 ||
            !usable_fits(node->size, size))
            t->extent_errs++;
        r = shm_collect_mark(col, node->data);
        if (r != 0) {
            t->first_error = r;
            return r;
        }
        t->nodes++;
        off = node->next;
    }
    return 0;
}

/* ---- children ---------------------------------------------------------- */

/* A child that opens the file anew (as an unrelated program would),
 * allocates `count` chunks of random sizes that it links nowhere, sends
 * their total chunk bytes, and waits to be killed. */
static pid_t start_allocator(const char *path, size_t count, uint64_t seed,
                             size_t *bytes)
{
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        shm_arena *a = shm_arena_open(path, NULL);
        uint64_t rng = seed, total = 0;
        for (size_t i = 0; a && i < count; i++) {
            size_t size = 1 + (size_t)rng_below(&rng, fit(4000));
            shm_offt off = shm_arena_malloc(a, size);
            if (off == SHM_NULL)
                _exit(2);
            memset((uint8_t *)shm_arena_base(a) + off, 0x5a, size);
            total += shm_arena_usable_size(a, off);
        }
        if (!a || write(ready[1], &total, sizeof total) != sizeof total)
            _exit(3);
        for (;;)
            pause();
    }
    close(ready[1]);
    uint64_t total = 0;
    assert_int_equal(read(ready[0], &total, sizeof total), sizeof total);
    close(ready[0]);
    *bytes = (size_t)total;
    return pid;
}

static void kill_and_reap(pid_t pid)
{
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
}

/* A child that stays attached until its pipe closes: through a handle of
 * its own (reopen) or through the copy of the parent's that fork gave it. */
static pid_t start_holder(const char *path, bool reopen, int *release)
{
    int ready[2], hold[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(hold), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        close(hold[1]);
        shm_arena *a = reopen ? shm_arena_open(path, NULL) : NULL;
        char ok = !reopen || a ? 'y' : 'n';
        if (write(ready[1], &ok, 1) != 1)
            _exit(2);
        char c;
        while (read(hold[0], &c, 1) > 0)
            ;
        _exit(shm_arena_close(a) == 0 ? 0 : 3);
    }
    close(ready[1]);
    close(hold[0]);
    char ok = 0;
    assert_int_equal(read(ready[0], &ok, 1), 1);
    assert_int_equal(ok, 'y');
    close(ready[0]);
    *release = hold[1];
    return pid;
}

static void finish_holder(pid_t pid, int release)
{
    close(release);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- tests ------------------------------------------------------------- */

/* Fills every free byte with chunks from the largest size down, stamps
 * them, and frees them again: nothing the collection freed is still in
 * use by the structure (its stamps would be overwritten). */
static void fill_and_release(struct arena_file *f, const struct list *l)
{
    size_t cap = shm_arena_capacity(f->arena) / get_shm_min_allocatable_size();
    shm_offt *fill = malloc(cap * sizeof *fill);
    assert_non_null(fill);
    size_t n = 0, bytes = 0;
    for (size_t size = get_shm_max_allocatable_size();
         size >= get_shm_min_allocatable_size(); size /= 2) {
        shm_offt off;
        while ((off = shm_arena_malloc(f->arena, size)) != SHM_NULL) {
            assert_true(n < cap);
            memset(base_of(f) + off, 0xee, size);
            fill[n++] = off;
            bytes += size;
        }
    }
    assert_int_equal(shm_arena_available(f->arena), 0);
    assert_int_equal(bytes + l->live_bytes, shm_arena_capacity(f->arena));
    assert_list_intact(f, l);
    for (size_t i = 0; i < n; i++)
        shm_arena_free(f->arena, fill[i]);
    free(fill);
}

static void test_garbage_and_a_killed_childs_chunks_are_freed(void **state)
{
    (void)state;
    REQUIRE_LIST_FITS();
    uint64_t rng = test_seed();
    struct arena_file f;
    open_fresh(&f, "collect.shm");
    size_t cap = shm_arena_capacity(f.arena);
    struct list l;
    build_list(&f, &l, 40, &rng);
    /* Garbage of this process: allocated, linked nowhere. */
    size_t garbage_bytes = 0, garbage_count = 100;
    shm_offt garbage[100];
    for (size_t i = 0; i < garbage_count; i++) {
        size_t size = 1 + (size_t)rng_below(&rng, fit(2000));
        garbage[i] = shm_arena_malloc(f.arena, size);
        assert_int_not_equal(garbage[i], SHM_NULL);
        garbage_bytes += shm_arena_usable_size(f.arena, garbage[i]);
    }
    /* A child allocates and is killed before linking anything. */
    size_t child_bytes = 0, child_count = 50;
    pid_t child =
        start_allocator(f.path, child_count, rng_next(&rng), &child_bytes);
    kill_and_reap(child);
    assert_int_equal(shm_arena_available(f.arena),
                     cap - l.live_bytes - garbage_bytes - child_bytes);

    struct tracer t = {0};
    struct shm_collection r;
    assert_int_equal(shm_arena_collect(f.arena, trace_list, &t, &r), 0);
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.first_error, 0);
    assert_int_equal(t.nodes, l.count);
    assert_int_equal(t.already, 1); /* the ring closed on the first node */
    assert_int_equal(t.extent_errs, 0);
    assert_int_equal(r.recovery.entries, 1); /* the killed child's */
    assert_int_equal(r.freed_chunks, garbage_count + child_count);
    assert_int_equal(r.freed_bytes, garbage_bytes + child_bytes);
    assert_int_equal(r.kept_chunks, 2 * l.count);
    assert_int_equal(r.kept_bytes, l.live_bytes);
    assert_int_equal(shm_arena_available(f.arena), cap - l.live_bytes);
    assert_int_equal(shm_arena_check(f.arena), 0);
    assert_list_intact(&f, &l);
    for (size_t i = 0; i < garbage_count; i++) {
        errno = 0;
        assert_int_equal(shm_arena_usable_size(f.arena, garbage[i]), 0);
        assert_int_equal(errno, EINVAL);
    }
    fill_and_release(&f, &l);
    assert_int_equal(shm_arena_available(f.arena), cap - l.live_bytes);

    /* A second collection finds nothing more to free. */
    memset(&t, 0, sizeof t);
    assert_int_equal(shm_arena_collect(f.arena, trace_list, &t, &r), 0);
    assert_int_equal(r.freed_chunks, 0);
    assert_int_equal(r.freed_bytes, 0);
    assert_int_equal(r.recovery.entries, 0);
    assert_int_equal(r.kept_chunks, 2 * l.count);
    assert_list_intact(&f, &l);
    assert_int_equal(shm_arena_check(f.arena), 0);
    close_and_remove(&f);
}

static int never_called(shm_collector *col, void *context)
{
    (void)col;
    (*(int *)context)++;
    return 0;
}

/* EBUSY while another process is attached, whichever way; the file is
 * unchanged byte for byte and the trace is never called. */
static void test_busy_while_another_process_is_attached(void **state)
{
    (void)state;
    REQUIRE_LIST_FITS();
    uint64_t rng = test_seed();
    struct arena_file f;
    open_fresh(&f, "busy.shm");
    struct list l;
    build_list(&f, &l, 8, &rng);
    shm_offt garbage = shm_arena_malloc(f.arena, fit(100));
    assert_int_not_equal(garbage, SHM_NULL);
    /* A thread cache may hand out a longer chunk of the class. */
    size_t garbage_usable = shm_arena_usable_size(f.arena, garbage);
    assert_true(usable_fits(fit(100), garbage_usable));
    for (int reopen = 1; reopen >= 0; reopen--) {
        int release;
        pid_t pid = start_holder(f.path, reopen, &release);
        size_t size = shm_arena_mapping_size(f.arena);
        uint8_t *before = malloc(size);
        assert_non_null(before);
        arena_bytes_copy(before, base_of(&f), size);
        size_t available = shm_arena_available(f.arena);
        int calls = 0;
        struct shm_collection r = {.freed_chunks = 99};
        errno = 0;
        assert_int_equal(shm_arena_collect(f.arena, never_called, &calls, &r),
                         EBUSY);
        assert_int_equal(errno, EBUSY);
        assert_int_equal(calls, 0);
        assert_int_equal(r.freed_chunks, 0);
        assert_int_equal(arena_bytes_differ(base_of(&f), before, size), size);
        assert_int_equal(shm_arena_available(f.arena), available);
        free(before);
        finish_holder(pid, release);
    }
    /* A reader, and a second handle in this process, also count. */
    struct shm_arena_options ro = {.flags = SHM_ARENA_READ_ONLY};
    shm_arena *reader = shm_arena_open(f.path, &ro);
    assert_non_null(reader);
    int calls = 0;
    assert_int_equal(shm_arena_collect(f.arena, never_called, &calls, NULL),
                     EBUSY);
    assert_int_equal(shm_arena_close(reader), 0);
    shm_arena *second = shm_arena_open(f.path, NULL);
    assert_non_null(second);
    assert_int_equal(shm_arena_collect(f.arena, never_called, &calls, NULL),
                     EBUSY);
    assert_int_equal(shm_arena_close(second), 0);
    assert_int_equal(calls, 0);
    assert_int_equal(shm_arena_usable_size(f.arena, garbage), garbage_usable);
    /* Alone again: the collection runs. */
    struct tracer t = {0};
    struct shm_collection r;
    assert_int_equal(shm_arena_collect(f.arena, trace_list, &t, &r), 0);
    assert_int_equal(r.freed_chunks, 1);
    assert_int_equal(r.freed_bytes, garbage_usable);
    assert_list_intact(&f, &l);
    close_and_remove(&f);
}

/* While the trace runs, an open of the file in another process fails at
 * once with EBUSY, for writing and for reading. */
struct open_probe {
    const char *path;
    int writer_errno, reader_errno;
};

static int probe_child_open(const char *path, unsigned flags)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        struct shm_arena_options opts = {.flags = flags};
        errno = 0;
        shm_arena *a = shm_arena_open(path, &opts);
        _exit(a ? 0 : errno);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static int trace_while_probing(shm_collector *col, void *context)
{
    (void)col;
    struct open_probe *p = context;
    p->writer_errno = probe_child_open(p->path, 0);
    p->reader_errno = probe_child_open(p->path, SHM_ARENA_READ_ONLY);
    return 0;
}

static void test_no_open_gets_in_while_it_runs(void **state)
{
    (void)state;
    struct arena_file f;
    open_fresh(&f, "no-open.shm");
    struct open_probe p = {f.path, -1, -1};
    assert_int_equal(shm_arena_collect(f.arena, trace_while_probing, &p, NULL),
                     0);
    assert_int_equal(p.writer_errno, EBUSY);
    assert_int_equal(p.reader_errno, EBUSY);
    /* Afterwards opens work again. */
    assert_int_equal(probe_child_open(f.path, 0), 0);
    assert_int_equal(probe_child_open(f.path, SHM_ARENA_READ_ONLY), 0);
    close_and_remove(&f);
}

/* Marks of what is not the start of a live allocation are refused and
 * keep nothing. */
struct bad_marks {
    shm_offt live, inside, freed;
    size_t refused, wrong;
    int first_mark, second_mark;
    size_t extent;
};

static int trace_bad_marks(shm_collector *col, void *context)
{
    struct bad_marks *b = context;
    shm_arena *a = shm_collect_arena(col);
    size_t data_start = shm_arena_mapping_size(a) - shm_arena_capacity(a);
    const shm_offt bad[] = {
        SHM_NULL,
        1,                                   /* the superblock */
        (shm_offt)data_start - 64,           /* the metadata */
        b->live + 1,                         /* misaligned */
        b->inside,                           /* inside a chunk */
        b->inside + 1,                       /* inside, misaligned */
        b->freed,                            /* freed */
        (shm_offt)shm_arena_mapping_size(a), /* past the end */
        (shm_offt)shm_arena_mapping_size(a) * 4,
        UINT64_MAX,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        int r = shm_collect_mark(col, bad[i]);
        if (r == EINVAL && errno == EINVAL)
            b->refused++;
        else
            b->wrong++;
        size_t size = 12345;
        errno = 0;
        r = shm_collect_extent(col, bad[i], &size);
        if (r != EINVAL || errno != EINVAL || size != 12345)
            b->wrong++;
    }
    if (shm_collect_mark(NULL, b->live) != EINVAL ||
        shm_collect_extent(NULL, b->live, &b->extent) != EINVAL ||
        shm_collect_extent(col, b->live, NULL) != EINVAL ||
        shm_collect_arena(NULL) != NULL)
        b->wrong++;
    errno = 0;
    b->first_mark = shm_collect_mark(col, b->live);
    b->second_mark = shm_collect_mark(col, b->live);
    if (errno != 0) /* EALREADY is not a failure */
        b->wrong++;
    if (shm_collect_extent(col, b->live, &b->extent) != 0)
        b->wrong++;
    return 0;
}

static void test_bad_marks_are_refused(void **state)
{
    (void)state;
    struct arena_file f;
    open_fresh(&f, "marks.shm");
    size_t cap = shm_arena_capacity(f.arena);
    size_t min = get_shm_min_allocatable_size();
    struct bad_marks b = {0};
    b.live = shm_arena_malloc(f.arena, fit(100));
    shm_offt big = shm_arena_malloc(f.arena, fit(4 * min));
    b.freed = shm_arena_malloc(f.arena, fit(10));
    assert_int_not_equal(b.live, SHM_NULL);
    assert_int_not_equal(big, SHM_NULL);
    assert_int_not_equal(b.freed, SHM_NULL);
    shm_arena_free(f.arena, b.freed);
    /* Inside a chunk: only where a chunk is larger than the smallest. */
    b.inside = fit(4 * min) > min ? big + min : big + 1;
    struct shm_collection r;
    assert_int_equal(shm_arena_collect(f.arena, trace_bad_marks, &b, &r), 0);
    assert_int_equal(b.wrong, 0);
    assert_int_equal(b.refused, 10);
    assert_int_equal(b.first_mark, 0);
    assert_int_equal(b.second_mark, EALREADY);
    assert_int_equal(b.extent, expected_usable(fit(100)));
    /* Only the marked chunk is left: the refused marks kept nothing. */
    assert_int_equal(r.kept_chunks, 1);
    assert_int_equal(r.freed_chunks, 1);
    assert_int_equal(r.freed_bytes, fit(4 * min));
    assert_int_equal(shm_arena_usable_size(f.arena, big), 0);
    assert_int_equal(shm_arena_available(f.arena),
                     cap - expected_usable(fit(100)));
    assert_int_equal(shm_arena_check(f.arena), 0);
    close_and_remove(&f);
}

/* A trace that fails aborts the collection: its value comes back as it
 * is and nothing is freed, the file unchanged byte for byte. */
static int trace_then_fail(shm_collector *col, void *context)
{
    struct tracer *t = context;
    trace_list(col, t);
    return 4242;
}

static void test_a_failing_trace_frees_nothing(void **state)
{
    (void)state;
    REQUIRE_LIST_FITS();
    uint64_t rng = test_seed();
    struct arena_file f;
    open_fresh(&f, "abort.shm");
    struct list l;
    build_list(&f, &l, 10, &rng);
    shm_offt garbage[10];
    size_t garbage_usable[10];
    for (size_t i = 0; i < 10; i++) {
        garbage[i] = shm_arena_malloc(f.arena, fit(64 * (i + 1)));
        assert_int_not_equal(garbage[i], SHM_NULL);
        /* A thread cache may hand out a longer chunk of the class. */
        garbage_usable[i] = shm_arena_usable_size(f.arena, garbage[i]);
        assert_true(usable_fits(fit(64 * (i + 1)), garbage_usable[i]));
    }
    size_t size = shm_arena_mapping_size(f.arena);
    uint8_t *before = malloc(size);
    assert_non_null(before);
    arena_bytes_copy(before, base_of(&f), size);
    size_t available = shm_arena_available(f.arena);
    struct tracer t = {0};
    struct shm_collection r;
    errno = 0;
    assert_int_equal(shm_arena_collect(f.arena, trace_then_fail, &t, &r), 4242);
    assert_int_equal(errno, 0);
    assert_int_equal(t.nodes, l.count);
    assert_int_equal(r.freed_chunks, 0);
    assert_int_equal(r.freed_bytes, 0);
    assert_int_equal(r.kept_chunks, 0);
    assert_int_equal(arena_bytes_differ(base_of(&f), before, size), size);
    assert_int_equal(shm_arena_available(f.arena), available);
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(shm_arena_usable_size(f.arena, garbage[i]),
                         garbage_usable[i]);
    free(before);
    /* The lock was given back: another process may open the file. */
    int release;
    pid_t pid = start_holder(f.path, true, &release);
    finish_holder(pid, release);
    close_and_remove(&f);
}

static int mark_nothing(shm_collector *col, void *context)
{
    (void)col;
    (void)context;
    return 0;
}

static void test_an_empty_arena(void **state)
{
    (void)state;
    struct arena_file f;
    open_fresh(&f, "empty.shm");
    size_t cap = shm_arena_capacity(f.arena);
    struct shm_collection r;
    assert_int_equal(shm_arena_collect(f.arena, mark_nothing, NULL, &r), 0);
    assert_int_equal(r.freed_chunks + r.kept_chunks, 0);
    assert_int_equal(r.freed_bytes + r.kept_bytes, 0);
    assert_int_equal(shm_arena_available(f.arena), cap);
    assert_int_equal(shm_arena_check(f.arena), 0);
    /* The tracer over a list whose root was never set marks nothing. */
    struct tracer t = {0};
    assert_int_equal(shm_arena_collect(f.arena, trace_list, &t, NULL), 0);
    assert_int_equal(t.nodes, 0);
    /* Everything allocated and nothing marked: all of it goes. */
    for (size_t i = 0; i < 200; i++)
        assert_int_not_equal(shm_arena_malloc(f.arena, fit(1 + i * 13)),
                             SHM_NULL);
    assert_int_equal(shm_arena_collect(f.arena, mark_nothing, NULL, &r), 0);
    assert_int_equal(r.freed_chunks, 200);
    assert_int_equal(r.kept_chunks, 0);
    assert_int_equal(shm_arena_available(f.arena), cap);
    assert_int_equal(shm_arena_maxsize(f.arena),
                     get_shm_max_allocatable_size());
    assert_int_equal(shm_arena_check(f.arena), 0);
    close_and_remove(&f);
}

static void test_refused_calls(void **state)
{
    (void)state;
    struct arena_file f;
    open_fresh(&f, "refused.shm");
    struct shm_collection r = {.freed_chunks = 7};
    errno = 0;
    assert_int_equal(shm_arena_collect(NULL, mark_nothing, NULL, &r), EINVAL);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(r.freed_chunks, 0);
    assert_int_equal(shm_arena_collect(f.arena, NULL, NULL, NULL), EINVAL);
    assert_int_equal(shm_arena_close(f.arena), 0);
    struct shm_arena_options ro = {.flags = SHM_ARENA_READ_ONLY};
    f.arena = shm_arena_open(f.path, &ro);
    assert_non_null(f.arena);
    errno = 0;
    assert_int_equal(shm_arena_collect(f.arena, mark_nothing, NULL, NULL),
                     EROFS);
    assert_int_equal(errno, EROFS);
    close_and_remove(&f);
    /* No default arena. */
    errno = 0;
    assert_int_equal(shm_collect(mark_nothing, NULL, &r), ENXIO);
    assert_int_equal(errno, ENXIO);
}

/* The global twin works on the default arena. */
static int mark_root(shm_collector *col, void *context)
{
    (void)context;
    return shm_collect_mark(col, shm_root_get("kept"));
}

static void test_the_global_twin(void **state)
{
    (void)state;
    char path[4096];
    scratch_path(path, sizeof path, "global.shm");
    unlink(path);
    assert_true(shm_init(NULL, path));
    size_t available = shm_available();
    shm_offt kept = shm_strdup("kept");
    assert_int_not_equal(kept, SHM_NULL);
    assert_int_equal(shm_root_set("kept", kept), 0);
    for (int i = 0; i < 20; i++)
        assert_int_not_equal(shm_malloc(fit(300)), SHM_NULL);
    struct shm_collection r;
    assert_int_equal(shm_collect(mark_root, NULL, &r), 0);
    assert_int_equal(r.freed_chunks, 20);
    assert_int_equal(r.freed_bytes, 20 * expected_usable(fit(300)));
    assert_int_equal(r.kept_chunks, 1);
    assert_int_equal(shm_available(), available - shm_usable_size(kept));
    assert_string_equal(SHM_OFFT_TO_ADDR(kept), "kept");
    assert_int_equal(shm_check(), 0);
    shm_deinit();
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_garbage_and_a_killed_childs_chunks_are_freed),
        cmocka_unit_test(test_busy_while_another_process_is_attached),
        cmocka_unit_test(test_no_open_gets_in_while_it_runs),
        cmocka_unit_test(test_bad_marks_are_refused),
        cmocka_unit_test(test_a_failing_trace_frees_nothing),
        cmocka_unit_test(test_an_empty_arena),
        cmocka_unit_test(test_refused_calls),
        cmocka_unit_test(test_the_global_twin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
