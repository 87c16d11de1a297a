/*
 * Unit tests for the process helpers of common/src/daemon.c: run files
 * (atomic replacement, the directory created on demand, no temporary file
 * left behind, removal) and the command line shared by fedq-agent and
 * fedq-gateway. --help and --version exit the process and are not tested.
 */
#include "fq/compat.h"
#include "fq/daemon.h"
#include "fq/error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

static char base[64];

static int
setup_dir(void **state)
{
    (void)state;
    snprintf(base, sizeof(base), "/tmp/fq-test-daemon-XXXXXX");
    return mkdtemp(base) ? 0 : -1;
}

/* Removes a tree of at most two levels (all the tests create). */
static void
remove_tree(const char *path, int depth)
{
    char sub[512];
    struct dirent *e;
    struct stat st;

    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        if (depth > 0 && lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(sub, depth - 1);
        else
            unlink(sub);
    }
    closedir(d);
    rmdir(path);
}

static int
teardown_dir(void **state)
{
    (void)state;
    remove_tree(base, 3);
    return 0;
}

/* A fresh, not yet existing directory under base. */
static void
new_dir_path(char *out, size_t outlen, const char *name)
{
    snprintf(out, outlen, "%s/%s", base, name);
}

static char *
read_all(const char *path)
{
    static char buf[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    assert_true(n >= 0);
    buf[n] = '\0';
    close(fd);
    return buf;
}

/* Number of entries in dir (without . and ..); the names go to names. */
static int
list_dir(const char *path, char *names, size_t nameslen)
{
    struct dirent *e;
    int n = 0;

    names[0] = '\0';
    DIR *d = opendir(path);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        size_t used = strlen(names);
        snprintf(names + used, nameslen - used, "%s%s", used ? " " : "",
                 e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

/* ---- run files --------------------------------------------------------- */

static void
test_write_creates_dir(void **state)
{
    char dir[128], path[192], names[512];
    struct stat st;

    (void)state;
    new_dir_path(dir, sizeof(dir), "run1");
    assert_int_equal(stat(dir, &st), -1);
    assert_int_equal(fq_daemon_write_runfile(dir, "agent.pid", "12345\n"), 0);
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    snprintf(path, sizeof(path), "%s/agent.pid", dir);
    assert_string_equal(read_all(path), "12345\n");
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, 6);
    /* Nothing else: the temporary file was renamed, not left behind. */
    assert_int_equal(list_dir(dir, names, sizeof(names)), 1);
    assert_string_equal(names, "agent.pid");
}

static void
test_write_existing_dir(void **state)
{
    char dir[128], path[192], names[512];

    (void)state;
    new_dir_path(dir, sizeof(dir), "run2");
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(fq_daemon_write_runfile(dir, "gw.addr", "127.0.0.1:1\n"),
                     0);
    assert_int_equal(fq_daemon_write_runfile(dir, "gw.pid", "1\n"), 0);
    snprintf(path, sizeof(path), "%s/gw.addr", dir);
    assert_string_equal(read_all(path), "127.0.0.1:1\n");
    snprintf(path, sizeof(path), "%s/gw.pid", dir);
    assert_string_equal(read_all(path), "1\n");
    assert_int_equal(list_dir(dir, names, sizeof(names)), 2);
}

/* Overwrite replaces the file (a new inode, through rename): a reader that
 * opened the old one still sees all of the old content. */
static void
test_overwrite_is_atomic(void **state)
{
    char dir[128], path[192], names[512], old[64];
    struct stat st1, st2;

    (void)state;
    new_dir_path(dir, sizeof(dir), "run3");
    snprintf(path, sizeof(path), "%s/x.addr", dir);
    assert_int_equal(fq_daemon_write_runfile(dir, "x.addr", "first content\n"),
                     0);
    assert_int_equal(stat(path, &st1), 0);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);

    assert_int_equal(fq_daemon_write_runfile(dir, "x.addr", "2nd\n"), 0);
    assert_string_equal(read_all(path), "2nd\n");
    assert_int_equal(stat(path, &st2), 0);
    assert_int_not_equal(st1.st_ino, st2.st_ino);
    assert_int_equal(st2.st_size, 4);

    ssize_t n = read(fd, old, sizeof(old) - 1);
    assert_int_equal(n, 14);
    old[n] = '\0';
    assert_string_equal(old, "first content\n");
    close(fd);

    /* Longer again, then empty. */
    assert_int_equal(
        fq_daemon_write_runfile(dir, "x.addr", "a much longer third one\n"), 0);
    assert_string_equal(read_all(path), "a much longer third one\n");
    assert_int_equal(fq_daemon_write_runfile(dir, "x.addr", ""), 0);
    assert_string_equal(read_all(path), "");
    assert_int_equal(stat(path, &st2), 0);
    assert_int_equal(st2.st_size, 0);
    assert_int_equal(list_dir(dir, names, sizeof(names)), 1);
    assert_string_equal(names, "x.addr");
}

static void
test_write_missing_parent(void **state)
{
    char dir[128];

    (void)state;
    /* Only the last level is created. */
    new_dir_path(dir, sizeof(dir), "no-such-parent/run");
    assert_int_equal(fq_daemon_write_runfile(dir, "a.pid", "1\n"), FQ_ENOENT);
    new_dir_path(dir, sizeof(dir), "no-such-parent");
    struct stat st;
    assert_int_equal(stat(dir, &st), -1);
}

/* A failed rename (a directory sits where the file goes) removes the
 * temporary file. */
static void
test_write_failure_cleans_up(void **state)
{
    char dir[128], path[192], names[512];

    (void)state;
    new_dir_path(dir, sizeof(dir), "run4");
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof(path), "%s/busy.pid", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/busy.pid/keep", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);

    assert_int_equal(fq_daemon_write_runfile(dir, "busy.pid", "1\n"), FQ_EIO);
    assert_int_equal(list_dir(dir, names, sizeof(names)), 1);
    assert_string_equal(names, "busy.pid");
}

static void
test_write_name_too_long(void **state)
{
    char name[5000];

    (void)state;
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    assert_int_equal(fq_daemon_write_runfile(base, name, "x"), FQ_ETOOBIG);
}

static void
test_remove_runfile(void **state)
{
    char dir[128], path[192], names[512];
    struct stat st;

    (void)state;
    new_dir_path(dir, sizeof(dir), "run5");
    assert_int_equal(fq_daemon_write_runfile(dir, "a.pid", "1\n"), 0);
    assert_int_equal(fq_daemon_write_runfile(dir, "a.addr", "h:1\n"), 0);
    fq_daemon_remove_runfile(dir, "a.pid");
    snprintf(path, sizeof(path), "%s/a.pid", dir);
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(errno, ENOENT);
    /* The other file and the directory stay. */
    assert_int_equal(list_dir(dir, names, sizeof(names)), 1);
    assert_string_equal(names, "a.addr");
    /* Removing again, or from a missing directory, is harmless. */
    fq_daemon_remove_runfile(dir, "a.pid");
    new_dir_path(path, sizeof(path), "never-created");
    fq_daemon_remove_runfile(path, "a.pid");
    assert_int_equal(list_dir(dir, names, sizeof(names)), 1);
}

/* ---- fq_daemon_parse_args ------------------------------------------------ */

/* Runs the parser with stderr captured into err (usage goes there). */
static int
parse(int argc, char **argv, struct fq_daemon_args *ret, char *err,
      size_t errlen)
{
    char path[128];

    snprintf(path, sizeof(path), "%s/stderr", base);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, STDERR_FILENO);
    int rc = fq_daemon_parse_args(argc, argv, "fedq-test", ret);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    ssize_t n = pread(fd, err, errlen - 1, 0);
    err[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return rc;
}

#define ARGC(a) ((int)FQ_ARRAY_LEN(a) - 1)

static void
assert_args(const struct fq_daemon_args *a, const char *config, bool check,
            const char *fmt, const char *level)
{
    assert_non_null(a->config);
    assert_string_equal(a->config, config);
    assert_int_equal(a->check, check);
    if (fmt)
        assert_string_equal(a->log_format, fmt);
    else
        assert_null(a->log_format);
    if (level)
        assert_string_equal(a->log_level, level);
    else
        assert_null(a->log_level);
}

static void
test_args_config(void **state)
{
    char a0[] = "fedq-test", a1[] = "--config", a2[] = "a.yaml";
    char *argv[] = {a0, a1, a2, NULL};
    struct fq_daemon_args args;
    char err[4096];

    (void)state;
    memset(&args, 0x5a, sizeof(args));
    assert_int_equal(parse(ARGC(argv), argv, &args, err, sizeof(err)), 0);
    assert_args(&args, "a.yaml", false, NULL, NULL);
    assert_string_equal(err, "");
}

static void
test_args_config_forms(void **state)
{
    char a0[] = "fedq-test", a1[] = "--config=b.yaml";
    char *argv[] = {a0, a1, NULL};
    char b0[] = "fedq-test", b1[] = "-c", b2[] = "c.yaml";
    char *argv2[] = {b0, b1, b2, NULL};
    struct fq_daemon_args args;
    char err[4096];

    (void)state;
    assert_int_equal(parse(ARGC(argv), argv, &args, err, sizeof(err)), 0);
    assert_args(&args, "b.yaml", false, NULL, NULL);
    assert_int_equal(parse(ARGC(argv2), argv2, &args, err, sizeof(err)), 0);
    assert_args(&args, "c.yaml", false, NULL, NULL);
}

static void
test_args_check(void **state)
{
    char a0[] = "fedq-test", a1[] = "--check", a2[] = "d.yaml";
    char *argv[] = {a0, a1, a2, NULL};
    struct fq_daemon_args args;
    char err[4096];

    (void)state;
    memset(&args, 0x5a, sizeof(args));
    assert_int_equal(parse(ARGC(argv), argv, &args, err, sizeof(err)), 0);
    assert_args(&args, "d.yaml", true, NULL, NULL);
}

static void
test_args_logging(void **state)
{
    char a0[] = "fedq-test", a1[] = "--log-format", a2[] = "json",
         a3[] = "--log-level", a4[] = "debug", a5[] = "--config",
         a6[] = "e.yaml";
    char *argv[] = {a0, a1, a2, a3, a4, a5, a6, NULL};
    struct fq_daemon_args args;
    char err[4096];

    (void)state;
    assert_int_equal(parse(ARGC(argv), argv, &args, err, sizeof(err)), 0);
    assert_args(&args, "e.yaml", false, "json", "debug");
    assert_string_equal(err, "");
}

static void
test_args_positional(void **state)
{
    char a0[] = "fedq-test", a1[] = "f.yaml";
    char *argv[] = {a0, a1, NULL};
    char b0[] = "fedq-test", b1[] = "g.yaml", b2[] = "--log-level",
         b3[] = "warn";
    char *argv2[] = {b0, b1, b2, b3, NULL};
    struct fq_daemon_args args;
    char err[4096];

    (void)state;
    assert_int_equal(parse(ARGC(argv), argv, &args, err, sizeof(err)), 0);
    assert_args(&args, "f.yaml", false, NULL, NULL);
    /* Options after the positional are still options. */
    assert_int_equal(parse(ARGC(argv2), argv2, &args, err, sizeof(err)), 0);
    assert_args(&args, "g.yaml", false, NULL, "warn");
}

/* Each refusal returns FQ_EINVAL, prints usage on stderr and leaves ret. */
static void
assert_args_rejected(int argc, char **argv)
{
    struct fq_daemon_args args, before;
    char err[4096];

    memset(&args, 0x5a, sizeof(args));
    memcpy(&before, &args, sizeof(args));
    assert_int_equal(parse(argc, argv, &args, err, sizeof(err)), FQ_EINVAL);
    assert_non_null(strstr(err, "usage: fedq-test "));
    assert_memory_equal(&args, &before, sizeof(args));
}

static void
test_args_missing_config(void **state)
{
    char a0[] = "fedq-test";
    char *argv[] = {a0, NULL};
    char b0[] = "fedq-test", b1[] = "--log-level", b2[] = "info";
    char *argv2[] = {b0, b1, b2, NULL};
    char c0[] = "fedq-test", c1[] = "--config";
    char *argv3[] = {c0, c1, NULL};

    (void)state;
    assert_args_rejected(ARGC(argv), argv);
    assert_args_rejected(ARGC(argv2), argv2);
    assert_args_rejected(ARGC(argv3), argv3); /* option without argument */
}

static void
test_args_unknown_option(void **state)
{
    char a0[] = "fedq-test", a1[] = "--bogus", a2[] = "--config",
         a3[] = "a.yaml";
    char *argv[] = {a0, a1, a2, a3, NULL};
    char b0[] = "fedq-test", b1[] = "-z", b2[] = "a.yaml";
    char *argv2[] = {b0, b1, b2, NULL};

    (void)state;
    assert_args_rejected(ARGC(argv), argv);
    assert_args_rejected(ARGC(argv2), argv2);
}

static void
test_args_extra_positional(void **state)
{
    char a0[] = "fedq-test", a1[] = "a.yaml", a2[] = "b.yaml";
    char *argv[] = {a0, a1, a2, NULL};
    char b0[] = "fedq-test", b1[] = "--config", b2[] = "a.yaml",
         b3[] = "b.yaml";
    char *argv2[] = {b0, b1, b2, b3, NULL};

    (void)state;
    assert_args_rejected(ARGC(argv), argv);
    assert_args_rejected(ARGC(argv2), argv2);
}

/*
 * The parser can be called again after a refusal that stopped in the
 * middle of a group of short options ("-zk"): the next call must start
 * from a clean state, not continue the old group.
 */
static void
test_args_reparse_after_error(void **state)
{
    char a0[] = "fedq-test", a1[] = "-zk", a2[] = "x.yaml";
    char *argv[] = {a0, a1, a2, NULL};
    char b0[] = "fedq-test", b1[] = "--config", b2[] = "y.yaml";
    char *argv2[] = {b0, b1, b2, NULL};
    struct fq_daemon_args args;
    char err[4096];

    (void)state;
    assert_args_rejected(ARGC(argv), argv);
    memset(&args, 0, sizeof(args));
    int rc = parse(ARGC(argv2), argv2, &args, err, sizeof(err));
    if (rc != 0)
        fail_msg("second parse failed with %d; stderr: %s", rc, err);
    assert_args(&args, "y.yaml", false, NULL, NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_creates_dir),
        cmocka_unit_test(test_write_existing_dir),
        cmocka_unit_test(test_overwrite_is_atomic),
        cmocka_unit_test(test_write_missing_parent),
        cmocka_unit_test(test_write_failure_cleans_up),
        cmocka_unit_test(test_write_name_too_long),
        cmocka_unit_test(test_remove_runfile),
        cmocka_unit_test(test_args_config),
        cmocka_unit_test(test_args_config_forms),
        cmocka_unit_test(test_args_check),
        cmocka_unit_test(test_args_logging),
        cmocka_unit_test(test_args_positional),
        cmocka_unit_test(test_args_missing_config),
        cmocka_unit_test(test_args_unknown_option),
        cmocka_unit_test(test_args_extra_positional),
        cmocka_unit_test(test_args_reparse_after_error),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
