/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The constructor: the test runs itself again (/proc/self/exe) with
 * $SHM_FILE and $SHM_SIZE set as each case needs, and the child reports
 * what it saw before calling anything but the queries. Whatever happens,
 * the library prints nothing: the child's stdout and stderr are captured
 * and must be empty; the child reports through descriptor 3 instead.
 *
 * The same source is also built as api_autoattach_opted_out, a program
 * that defines shm_no_auto_attach (SHM_TEST_OPTED_OUT) with hidden
 * visibility by default, as a program built with -fvisibility=hidden is;
 * this test runs it as the child "opted-out".
 */
#define _GNU_SOURCE /* setenv, mmap flags, pthread barriers */
#include "api_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#ifdef SHM_TEST_OPTED_OUT
/* This program opens its arenas itself: no attach before main(). */
const int shm_no_auto_attach = 1;
#endif

#define REPORT_FD 3
#define CHILD_MESSAGE "child" /* fits the largest chunk of any build */

/* ---------------------------------------------------------------------
 * The child side: main() with "--child ROLE"
 * ------------------------------------------------------------------- */

static void report(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0 && write(REPORT_FD, buf, (size_t)n) != n)
        _exit(96);
}

/* Attached before main(): allocate, leave a message in the file, report
 * where, the capacity and the file size. */
static int child_attached(void)
{
    void *base = get_shm_user_base();
    if (base == NULL || shm_default_arena() == NULL) {
        report("not attached\n");
        return 10;
    }
    shm_offt off = shm_malloc(sizeof CHILD_MESSAGE);
    if (off == SHM_NULL) {
        report("shm_malloc: %s\n", strerror(errno));
        return 11;
    }
    strcpy(SHM_OFFT_TO_ADDR(off), CHILD_MESSAGE);
    shm_offt tmp = shm_calloc(2, get_shm_min_allocatable_size() / 2);
    if (tmp == SHM_NULL) {
        report("shm_calloc: %s\n", strerror(errno));
        return 12;
    }
    shm_free(tmp);
    /* Already attached: shm_init is a no-op that succeeds. */
    /* shm_init may change what get_shm_user_base returns (it is pure, not
     * const), which cppcheck does not know. */
    // cppcheck-suppress knownConditionTrueFalse
    if (!shm_init(NULL, NULL) || get_shm_user_base() != base) {
        report("shm_init after the constructor\n");
        return 13;
    }
    if (shm_check() != 0) {
        report("shm_check\n");
        return 14;
    }
    report("%" PRIu_shm_offt " %zu %zu\n", off,
           shm_arena_capacity(shm_default_arena()),
           get_mapping_size_needed_by_shm());
    return 0;
}

/* Nothing to attach: inert, ENXIO. */
static int child_inert(void)
{
    if (get_shm_user_base() != NULL || shm_default_arena() != NULL) {
        report("attached\n");
        return 20;
    }
    errno = 0;
    if (shm_malloc(1) != SHM_NULL || errno != ENXIO) {
        report("shm_malloc: errno %d\n", errno);
        return 21;
    }
    errno = 0;
    if (ptr_calloc(1, 1) != NULL || errno != ENXIO) {
        report("ptr_calloc: errno %d\n", errno);
        return 22;
    }
    report("inert\n");
    return 0;
}

/* An unusable file: the program runs, allocation fails with an errno. */
static int child_unusable(void)
{
    errno = 0;
    shm_offt off = shm_malloc(1);
    int err = errno;
    if (off != SHM_NULL) {
        report("shm_malloc succeeded\n");
        return 30;
    }
    if (err == 0) {
        report("shm_malloc failed without errno\n");
        return 31;
    }
    errno = 0;
    if (ptr_malloc(1) != NULL || errno == 0) {
        report("ptr_malloc\n");
        return 32;
    }
    report("errno %d\n", err);
    return 0;
}

/* A program that defines shm_no_auto_attach, started with $SHM_FILE and
 * $SHM_SIZE set: nothing attached or created before main(), ENXIO, explicit
 * arenas work, and shm_init() attaches $SHM_FILE when asked to. Then as
 * child_attached, so that the parent finds the message in the file. */
static int child_opted_out(void)
{
    const char *path = getenv("SHM_FILE");
    if (path == NULL || path[0] == '\0') {
        report("no SHM_FILE\n");
        return 40;
    }
    if (get_shm_user_base() != NULL || shm_default_arena() != NULL) {
        report("attached before main\n");
        return 41;
    }
    if (access(path, F_OK) == 0 || errno != ENOENT) {
        report("%s exists before main\n", path);
        return 42;
    }
    errno = 0;
    if (shm_malloc(1) != SHM_NULL || errno != ENXIO) {
        report("shm_malloc: errno %d\n", errno);
        return 43;
    }
    char explicit_path[4096];
    snprintf(explicit_path, sizeof explicit_path, "%s.explicit", path);
    struct shm_arena_options opts = {.capacity = small_capacity()};
    shm_arena *arena = shm_arena_open(explicit_path, &opts);
    if (arena == NULL || shm_arena_malloc(arena, 1) == SHM_NULL) {
        report("explicit arena: %s\n", strerror(errno));
        return 44;
    }
    shm_arena_close(arena);
    shm_arena_unlink(explicit_path);
    if (access(path, F_OK) == 0) {
        report("%s created by an explicit arena\n", path);
        return 45;
    }
    if (!shm_init(NULL, NULL)) {
        report("shm_init: %s\n", strerror(errno));
        return 46;
    }
    return child_attached();
}

static int run_child(const char *role)
{
    if (strcmp(role, "opted-out") == 0)
        return child_opted_out();
    if (strcmp(role, "attached") == 0)
        return child_attached();
    if (strcmp(role, "inert") == 0)
        return child_inert();
    if (strcmp(role, "unusable") == 0)
        return child_unusable();
    return 99;
}

/* ---------------------------------------------------------------------
 * The parent side
 * ------------------------------------------------------------------- */

struct run {
    int status;
    char report[512];
    char out[512];
    char err[512];
};

static void read_all(int fd, char *buf, size_t len)
{
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, buf + got, len - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got == len - 1)
            break;
    }
    buf[got] = '\0';
    close(fd);
}

/* Runs program as "--child role" with SHM_FILE and SHM_SIZE set to the
 * given values (NULL: unset). */
static void run_program(struct run *r, const char *program, const char *role,
                        const char *file, const char *size)
{
    int rep[2], out[2], err[2];
    assert_int_equal(pipe(rep), 0);
    assert_int_equal(pipe(out), 0);
    assert_int_equal(pipe(err), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (dup2(out[1], STDOUT_FILENO) < 0 ||
            dup2(err[1], STDERR_FILENO) < 0 || dup2(rep[1], REPORT_FD) < 0)
            _exit(97);
        for (int fd = REPORT_FD + 1; fd < 64; fd++)
            close(fd);
        if (file)
            setenv("SHM_FILE", file, 1);
        else
            unsetenv("SHM_FILE");
        if (size)
            setenv("SHM_SIZE", size, 1);
        else
            unsetenv("SHM_SIZE");
        execl(program, "test_autoattach", "--child", role, (char *)NULL);
        _exit(98);
    }
    close(rep[1]);
    close(out[1]);
    close(err[1]);
    read_all(rep[0], r->report, sizeof r->report);
    read_all(out[0], r->out, sizeof r->out);
    read_all(err[0], r->err, sizeof r->err);
    assert_int_equal(waitpid(pid, &r->status, 0), pid);

    if (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != 0)
        fail_msg("child %s (SHM_FILE=%s SHM_SIZE=%s) status 0x%x: %s", role,
                 file ? file : "(unset)", size ? size : "(unset)", r->status,
                 r->report);
    if (r->out[0] != '\0' || r->err[0] != '\0')
        fail_msg("child %s printed: stdout \"%s\", stderr \"%s\"", role, r->out,
                 r->err);
}

/* Runs this program as the child. */
static void run(struct run *r, const char *role, const char *file,
                const char *size)
{
    run_program(r, "/proc/self/exe", role, file, size);
}

struct attached_report {
    shm_offt off;
    size_t capacity;
    size_t mapping;
};

static struct attached_report parse_attached(const struct run *r)
{
    struct attached_report a;
    if (sscanf(r->report, "%" SCNu64 " %zu %zu", &a.off, &a.capacity,
               &a.mapping) != 3)
        fail_msg("unexpected report: %s", r->report);
    return a;
}

static struct attached_report run_attached(const char *file, const char *size)
{
    struct run r;
    run(&r, "attached", file, size);
    return parse_attached(&r);
}

/* The child's message is in the file, readable by another process. */
static void assert_child_left_message(const char *path,
                                      const struct attached_report *a)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal((size_t)st.st_size, a->mapping);

    shm_arena *arena = shm_arena_open(path, NULL);
    assert_non_null(arena);
    assert_int_equal(shm_arena_capacity(arena), a->capacity);
    assert_string_equal((char *)shm_arena_base(arena) + a->off, CHILD_MESSAGE);
    assert_int_equal(shm_arena_usable_size(arena, a->off),
                     expected_usable(sizeof CHILD_MESSAGE));
    shm_arena_free(arena, a->off);
    assert_int_equal(shm_arena_available(arena), a->capacity);
    assert_int_equal(shm_arena_check(arena), 0);
    assert_int_equal(shm_arena_close(arena), 0);
}

static void test_constructor_attaches_before_main(void **state)
{
    (void)state;
    char path[4096], size[32];
    scratch_path(path, sizeof path, "auto.shm");
    unlink(path);
    snprintf(size, sizeof size, "%zu", small_capacity());

    struct attached_report a = run_attached(path, size);
    assert_int_equal(a.capacity, small_capacity());
    assert_child_left_message(path, &a);

    /* The file exists now: it is attached as it is, $SHM_SIZE is only for
     * a new file. */
    snprintf(size, sizeof size, "%zu", 2 * small_capacity());
    a = run_attached(path, size);
    assert_int_equal(a.capacity, small_capacity());
    assert_child_left_message(path, &a);
    unlink(path);
}

static void test_size_suffixes(void **state)
{
    (void)state;
    /* Multiples of the page and of the largest chunk, written with each
     * suffix, are the capacity exactly; another size is rounded up as
     * shm_mapping_size_for_capacity() says. */
    size_t unit = get_shm_max_allocatable_size();
    if (unit < (size_t)sysconf(_SC_PAGESIZE))
        unit = (size_t)sysconf(_SC_PAGESIZE);
    size_t k = 3 * (unit > 1024 ? unit / 1024 : 1);
    size_t m = 3 * (unit > (1u << 20) ? unit >> 20 : 1);
    struct {
        char text[32];
        size_t bytes;
        bool exact;
    } cases[] = {
        {"", 16 * unit, true},         {"", k << 10, true},
        {"", m << 20, true},           {"1G", (size_t)1 << 30, true},
        {"", 16 * unit + 1000, false},
    };
    snprintf(cases[0].text, sizeof cases[0].text, "%zu", cases[0].bytes);
    snprintf(cases[1].text, sizeof cases[1].text, "%zuK", k);
    snprintf(cases[2].text, sizeof cases[2].text, "%zuM", m);
    snprintf(cases[4].text, sizeof cases[4].text, "%zu", cases[4].bytes);

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[4096];
        scratch_path(path, sizeof path, "suffix.shm");
        unlink(path);
        struct attached_report a = run_attached(path, cases[i].text);
        if (cases[i].exact ? a.capacity != cases[i].bytes
                           : a.capacity < cases[i].bytes)
            fail_msg("SHM_SIZE=%s: capacity %zu, expected %zu", cases[i].text,
                     a.capacity, cases[i].bytes);
        assert_int_equal(a.mapping,
                         shm_mapping_size_for_capacity(cases[i].bytes));
        assert_child_left_message(path, &a);
        unlink(path);
    }
}

#ifdef SHM_OPTED_OUT_PROGRAM
static void test_opting_out_attaches_nothing(void **state)
{
    (void)state;
    char path[4096], size[32];
    scratch_path(path, sizeof path, "opted-out.shm");
    unlink(path);
    snprintf(size, sizeof size, "%zu", small_capacity());
    struct run r;
    run_program(&r, SHM_OPTED_OUT_PROGRAM, "opted-out", path, size);
    /* The file exists only because the child called shm_init(). */
    struct attached_report a = parse_attached(&r);
    assert_int_equal(a.capacity, small_capacity());
    assert_child_left_message(path, &a);
    unlink(path);
}
#endif

static void run_inert(const char *file)
{
    struct run r;
    run(&r, "inert", file, NULL);
    assert_string_equal(r.report, "inert\n");
}

static void test_unset_or_empty_stays_inert(void **state)
{
    (void)state;
    run_inert(NULL);
    run_inert("");
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void run_unusable(const char *file, const char *size)
{
    struct run r;
    run(&r, "unusable", file, size);
    assert_true(strncmp(r.report, "errno ", 6) == 0);
}

static void test_unusable_file_starts_normally(void **state)
{
    (void)state;
    char dir[4096], missing[4096], garbage[4096];

    /* A directory: nothing is created in it. */
    scratch_path(dir, sizeof dir, "a-directory");
    mkdir(dir, 0700);
    size_t entries = count_entries(dir);
    run_unusable(dir, NULL);
    assert_int_equal(count_entries(dir), entries);

    /* A file in a directory that does not exist. */
    scratch_path(missing, sizeof missing, "no-such-dir/file.shm");
    run_unusable(missing, NULL);
    assert_int_equal(access(missing, F_OK), -1);

    /* A file that is not an arena: left as it was. */
    scratch_path(garbage, sizeof garbage, "not-an-arena.shm");
    static const char text[] = "this file is not an arena, leave it alone\n";
    FILE *f = fopen(garbage, "w");
    assert_non_null(f);
    for (int i = 0; i < 200; i++)
        fputs(text, f);
    assert_int_equal(fclose(f), 0);
    run_unusable(garbage, NULL);
    f = fopen(garbage, "r");
    assert_non_null(f);
    char line[sizeof text + 1];
    int lines = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        assert_string_equal(line, text);
        lines++;
    }
    fclose(f);
    assert_int_equal(lines, 200);
    unlink(garbage);

    /* A size that means nothing. */
    char path[4096];
    scratch_path(path, sizeof path, "bad-size.shm");
    unlink(path);
    run_unusable(path, "12 apples");
    run_unusable(path, "-1");
    run_unusable(path, "99999999999999999999999G");
    assert_int_equal(access(path, F_OK), -1);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--child") == 0)
        return run_child(argv[2]);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constructor_attaches_before_main),
        cmocka_unit_test(test_size_suffixes),
        cmocka_unit_test(test_unset_or_empty_stays_inert),
#ifdef SHM_OPTED_OUT_PROGRAM
        cmocka_unit_test(test_opting_out_attaches_nothing),
#endif
        cmocka_unit_test(test_unusable_file_starts_normally),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
