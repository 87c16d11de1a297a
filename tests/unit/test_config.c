/*
 * Unit tests for the YAML configuration loader (common/src/config.c):
 * every directive type with its bounds and defaults, every error message
 * with its exact line, the input caps, YAML features that are refused,
 * and the Markdown reference. Runs under ASan, so a leak fails the test.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/config.h"
#include "fq/error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sys/stat.h>

#define ARENA_MAX (16u * 1024 * 1024)

/* ---- the tables under test ---------------------------------------------- */

struct column {
    char *name;
    int type;
    bool nullable;
    int line;
};

struct dataset {
    char *name;
    char *file;
    struct column *columns;
    size_t ncolumns;
    char **tags;
    size_t ntags;
    int line;
};

struct tls {
    char *ca;
    char *cert;
    bool verify;
    int line;
};

struct cfg {
    char *listen;
    int64_t threads;
    int64_t offset;
    bool debug;
    int log_format;
    int64_t timeout_ms;
    int64_t max_body;
    char **peers;
    size_t npeers;
    struct tls tls;
    struct dataset *datasets;
    size_t ndatasets;
    char *name;
    int line;
};

static const char *const formats[] = {"text", "json", NULL};
static const char *const col_types[] = {"int", "text", "real", NULL};

/* Cross-field rule: a real column cannot be nullable. err->line left 0 so
 * the loader reports the column's own mapping. */
static int
column_check(void *obj, struct fq_cfg_error *err)
{
    struct column *col = obj;

    if (col->type == 2 && col->nullable) {
        snprintf(err->msg, sizeof(err->msg),
                 "column '%s': real columns cannot be nullable", col->name);
        return FQ_EINVAL;
    }
    return 0;
}

static int
dataset_check(void *obj, struct fq_cfg_error *err)
{
    struct dataset *ds = obj;

    if (strcmp(ds->name, "reserved") == 0) {
        snprintf(err->msg, sizeof(err->msg), "dataset name '%s' is reserved",
                 ds->name);
        return FQ_EINVAL;
    }
    return 0;
}

static int
tls_check(void *obj, struct fq_cfg_error *err)
{
    struct tls *tls = obj;

    if (tls->verify && !tls->ca) {
        snprintf(err->msg, sizeof(err->msg),
                 "'tls.ca' is required when 'tls.verify' is true");
        return FQ_EINVAL;
    }
    return 0;
}

/* Sets err->line itself, so the loader must keep it. */
static int
top_check(void *obj, struct fq_cfg_error *err)
{
    struct cfg *cfg = obj;

    if (strcmp(cfg->name, "line-seven") == 0) {
        err->line = 7;
        snprintf(err->msg, sizeof(err->msg), "name rejected at line 7");
        return FQ_EINVAL;
    }
    if (strcmp(cfg->name, "no-line") == 0) {
        snprintf(err->msg, sizeof(err->msg), "name rejected");
        return FQ_EPERM;
    }
    return 0;
}

static const struct fq_cfg_directive column_table[] = {
    {.key = "name",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct column, name),
     .min = 1,
     .max = 64,
     .doc = "column name"},
    {.key = "type",
     .type = FQ_CFG_ENUM,
     .offset = offsetof(struct column, type),
     .names = col_types,
     .def = "text",
     .doc = "column type"},
    {.key = "nullable",
     .type = FQ_CFG_BOOL,
     .offset = offsetof(struct column, nullable),
     .def = "false",
     .doc = "may hold NULL"},
    {.type = FQ_CFG_LINE, .offset = offsetof(struct column, line)},
    {0},
};

static const struct fq_cfg_directive dataset_table[] = {
    {.key = "name",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct dataset, name),
     .doc = "dataset name"},
    {.key = "file",
     .type = FQ_CFG_PATH,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct dataset, file),
     .doc = "sqlite file"},
    {.key = "columns",
     .type = FQ_CFG_LIST,
     .offset = offsetof(struct dataset, columns),
     .count_offset = offsetof(struct dataset, ncolumns),
     .min = 1,
     .max = 4,
     .sub = column_table,
     .elem_size = sizeof(struct column),
     .check = column_check,
     .doc = "exported columns"},
    {.key = "tags",
     .type = FQ_CFG_STRLIST,
     .offset = offsetof(struct dataset, tags),
     .count_offset = offsetof(struct dataset, ntags),
     .doc = "free tags"},
    {.type = FQ_CFG_LINE, .offset = offsetof(struct dataset, line)},
    {0},
};

static const struct fq_cfg_directive tls_table[] = {
    {.key = "ca",
     .type = FQ_CFG_PATH,
     .offset = offsetof(struct tls, ca),
     .doc = "CA bundle"},
    {.key = "cert",
     .type = FQ_CFG_PATH,
     .offset = offsetof(struct tls, cert),
     .def = "cert.pem",
     .doc = "certificate"},
    {.key = "verify",
     .type = FQ_CFG_BOOL,
     .offset = offsetof(struct tls, verify),
     .def = "false",
     .doc = "verify peers"},
    {.type = FQ_CFG_LINE, .offset = offsetof(struct tls, line)},
    {0},
};

static const struct fq_cfg_directive table[] = {
    {.key = "listen",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct cfg, listen),
     .min = 3,
     .max = 64,
     .doc = "address to listen on"},
    {.key = "threads",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct cfg, threads),
     .min = 1,
     .max = 64,
     .def = "4",
     .doc = "worker threads"},
    {.key = "offset",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct cfg, offset),
     .def = "-5",
     .doc = "unbounded integer"},
    {.key = "debug",
     .type = FQ_CFG_BOOL,
     .offset = offsetof(struct cfg, debug),
     .def = "false",
     .doc = "debug mode"},
    {.key = "log_format",
     .type = FQ_CFG_ENUM,
     .offset = offsetof(struct cfg, log_format),
     .names = formats,
     .def = "text",
     .doc = "log line format"},
    {.key = "timeout",
     .type = FQ_CFG_DURATION,
     .offset = offsetof(struct cfg, timeout_ms),
     .min = 100,
     .max = 3600000,
     .def = "5s",
     .doc = "request timeout"},
    {.key = "max_body",
     .type = FQ_CFG_SIZE,
     .offset = offsetof(struct cfg, max_body),
     .min = 1024,
     .max = INT64_C(1) << 30,
     .def = "4MiB",
     .doc = "largest body"},
    {.key = "peers",
     .type = FQ_CFG_STRLIST,
     .offset = offsetof(struct cfg, peers),
     .count_offset = offsetof(struct cfg, npeers),
     .max = 3,
     .doc = "peer addresses"},
    {.key = "tls",
     .type = FQ_CFG_SECTION,
     .offset = offsetof(struct cfg, tls),
     .sub = tls_table,
     .check = tls_check,
     .doc = "TLS | settings"},
    {.key = "datasets",
     .type = FQ_CFG_LIST,
     .offset = offsetof(struct cfg, datasets),
     .count_offset = offsetof(struct cfg, ndatasets),
     .max = 3,
     .sub = dataset_table,
     .elem_size = sizeof(struct dataset),
     .check = dataset_check,
     .doc = "served datasets"},
    {.key = "name",
     .type = FQ_CFG_STRING,
     .offset = offsetof(struct cfg, name),
     .def = "fedq",
     .doc = "instance name"},
    {.type = FQ_CFG_LINE, .offset = offsetof(struct cfg, line)},
    {0},
};

/* ---- fixture ------------------------------------------------------------ */

struct fixture {
    struct fq_arena *arena;
    struct cfg cfg;
    char err[600];
};

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (!f)
        return -1;
    f->arena = fq_arena_new(ARENA_MAX);
    if (!f->arena) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    fq_arena_free(f->arena);
    free(f);
    return 0;
}

/* Loads text as "x.yaml" from directory "/etc/fedq" into a fresh struct. */
static int
load(struct fixture *f, const char *text)
{
    memset(&f->cfg, 0, sizeof(f->cfg));
    return fq_cfg_load_buf("x.yaml", "/etc/fedq", text, strlen(text), table,
                           top_check, &f->cfg, f->arena, f->err,
                           sizeof(f->err));
}

static void
expect_error(struct fixture *f, const char *text, int rc, const char *msg)
{
    int got = load(f, text);

    if (got != rc || strcmp(f->err, msg) != 0)
        print_error("input:\n%s\nwant %d \"%s\"\ngot  %d \"%s\"\n", text, rc,
                    msg, got, f->err);
    assert_int_equal(got, rc);
    assert_string_equal(f->err, msg);
}

static void
expect_ok(struct fixture *f, const char *text)
{
    int rc = load(f, text);

    if (rc != 0)
        print_error("input:\n%s\nerror: %s\n", text, f->err);
    assert_int_equal(rc, 0);
    assert_string_equal(f->err, "");
}

/* Builds "listen: abc\n" + extra into the fixture-independent buffer. */
static const char *
with_listen(char *buf, size_t len, const char *extra)
{
    snprintf(buf, len, "listen: abc\n%s", extra);
    return buf;
}

/* ---- happy paths -------------------------------------------------------- */

static void
test_full_config(void **state)
{
    struct fixture *f = *state;
    const char *text = "# gateway\n"
                       "listen: 0.0.0.0:7443\n"
                       "threads: 8\n"
                       "offset: -12\n"
                       "debug: true\n"
                       "log_format: json\n"
                       "timeout: 250ms\n"
                       "max_body: 64KiB\n"
                       "peers: [a.example:1, b.example:2]\n"
                       "tls:\n"
                       "  ca: /abs/ca.pem\n"
                       "  cert: certs/gw.pem\n"
                       "  verify: true\n"
                       "datasets:\n"
                       "  - name: births\n"
                       "    file: data/births.db\n"
                       "    tags: [public]\n"
                       "    columns:\n"
                       "      - name: year\n"
                       "        type: int\n"
                       "      - {name: weight, type: real}\n"
                       "  - name: deaths\n"
                       "    file: /srv/deaths.db\n"
                       "    columns: [{name: cause, nullable: true}]\n"
                       "name: gw1\n";

    expect_ok(f, text);
    struct cfg *c = &f->cfg;
    assert_string_equal(c->listen, "0.0.0.0:7443");
    assert_int_equal(c->threads, 8);
    assert_int_equal(c->offset, -12);
    assert_true(c->debug);
    assert_int_equal(c->log_format, 1);
    assert_int_equal(c->timeout_ms, 250);
    assert_int_equal(c->max_body, 65536);
    assert_int_equal(c->npeers, 2);
    assert_string_equal(c->peers[0], "a.example:1");
    assert_string_equal(c->peers[1], "b.example:2");
    assert_string_equal(c->tls.ca, "/abs/ca.pem");
    assert_string_equal(c->tls.cert, "/etc/fedq/certs/gw.pem");
    assert_true(c->tls.verify);
    assert_int_equal(c->tls.line, 11);
    assert_int_equal(c->ndatasets, 2);
    assert_string_equal(c->name, "gw1");
    assert_int_equal(c->line, 2);

    struct dataset *d = &c->datasets[0];
    assert_string_equal(d->name, "births");
    assert_string_equal(d->file, "/etc/fedq/data/births.db");
    assert_int_equal(d->line, 15);
    assert_int_equal(d->ntags, 1);
    assert_string_equal(d->tags[0], "public");
    assert_int_equal(d->ncolumns, 2);
    assert_string_equal(d->columns[0].name, "year");
    assert_int_equal(d->columns[0].type, 0);
    assert_false(d->columns[0].nullable);
    assert_int_equal(d->columns[0].line, 19);
    assert_string_equal(d->columns[1].name, "weight");
    assert_int_equal(d->columns[1].type, 2);
    assert_int_equal(d->columns[1].line, 21);

    d = &c->datasets[1];
    assert_string_equal(d->file, "/srv/deaths.db");
    assert_int_equal(d->line, 22);
    assert_int_equal(d->ntags, 0);
    assert_null(d->tags);
    assert_int_equal(d->ncolumns, 1);
    assert_int_equal(d->columns[0].type, 1);
    assert_true(d->columns[0].nullable);
    assert_int_equal(d->columns[0].line, 24);
}

static void
test_defaults(void **state)
{
    struct fixture *f = *state;

    expect_ok(f, "\n\nlisten: abc\n");
    struct cfg *c = &f->cfg;
    assert_string_equal(c->listen, "abc");
    assert_int_equal(c->threads, 4);
    assert_int_equal(c->offset, -5);
    assert_false(c->debug);
    assert_int_equal(c->log_format, 0);
    assert_int_equal(c->timeout_ms, 5000);
    assert_int_equal(c->max_body, 4 * 1024 * 1024);
    assert_null(c->peers);
    assert_int_equal(c->npeers, 0);
    assert_null(c->datasets);
    assert_int_equal(c->ndatasets, 0);
    assert_string_equal(c->name, "fedq");
    assert_int_equal(c->line, 3);
    /* The absent section still gets its defaults and its LINE (the line
     * of the mapping that would have held it). */
    assert_null(c->tls.ca);
    assert_string_equal(c->tls.cert, "/etc/fedq/cert.pem");
    assert_false(c->tls.verify);
    assert_int_equal(c->tls.line, 3);
}

static int
no_required_table_load(struct fixture *f, const char *text, int64_t *ret)
{
    static const struct fq_cfg_directive t[] = {
        {.key = "n", .type = FQ_CFG_INT, .def = "3", .offset = 0},
        {0},
    };

    *ret = 0;
    return fq_cfg_load_buf("e.yaml", NULL, text, strlen(text), t, NULL, ret,
                           f->arena, f->err, sizeof(f->err));
}

static void
test_empty_file(void **state)
{
    struct fixture *f = *state;
    int64_t n;

    expect_error(f, "", FQ_EINVAL, "x.yaml:1: missing required key 'listen'");
    expect_error(f, "# only\n\n# comments\n", FQ_EINVAL,
                 "x.yaml:1: missing required key 'listen'");
    expect_error(f, "---\n", FQ_EINVAL,
                 "x.yaml:1: missing required key 'listen'");
    expect_error(f, "~\n", FQ_EINVAL,
                 "x.yaml:1: missing required key 'listen'");

    assert_int_equal(no_required_table_load(f, "", &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(no_required_table_load(f, "# nothing\n", &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(no_required_table_load(f, "n: 9\n", &n), 0);
    assert_int_equal(n, 9);
}

/* ---- scalar types ------------------------------------------------------- */

static void
test_int(void **state)
{
    struct fixture *f = *state;
    char b[256];

    expect_ok(f, with_listen(b, sizeof(b), "threads: 1\n"));
    assert_int_equal(f->cfg.threads, 1);
    expect_ok(f, with_listen(b, sizeof(b), "threads: 64\n"));
    assert_int_equal(f->cfg.threads, 64);
    expect_ok(f, with_listen(b, sizeof(b), "threads: \"7\"\n"));
    assert_int_equal(f->cfg.threads, 7);
    expect_ok(f, with_listen(b, sizeof(b), "threads: 007\n"));
    assert_int_equal(f->cfg.threads, 7);
    expect_error(f, with_listen(b, sizeof(b), "threads: 0\n"), FQ_EINVAL,
                 "x.yaml:2: 'threads' must be between 1 and 64, found 0");
    expect_error(f, with_listen(b, sizeof(b), "threads: 65\n"), FQ_EINVAL,
                 "x.yaml:2: 'threads' must be between 1 and 64, found 65");
    expect_error(f, with_listen(b, sizeof(b), "threads: -1\n"), FQ_EINVAL,
                 "x.yaml:2: 'threads' must be between 1 and 64, found -1");
    expect_error(f, with_listen(b, sizeof(b), "\n\nthreads: 100\n"), FQ_EINVAL,
                 "x.yaml:4: 'threads' must be between 1 and 64, found 100");
    expect_error(f, with_listen(b, sizeof(b), "threads: abc\n"), FQ_EINVAL,
                 "x.yaml:2: 'threads' must be an integer, found 'abc'");
    static const struct {
        const char *yaml, *shown;
    } bad[] = {
        {"+5", "+5"},       {"0x10", "0x10"}, {"1e3", "1e3"},
        {"5.0", "5.0"},     {"'-'", "-"},     {"'5 '", "5 "},
        {"1_000", "1_000"}, {"'-0-'", "-0-"}, {"\"\"", ""},
    };
    for (size_t i = 0; i < FQ_ARRAY_LEN(bad); i++) {
        char want[128];
        char text[128];
        snprintf(text, sizeof(text), "threads: %s\n", bad[i].yaml);
        snprintf(want, sizeof(want),
                 "x.yaml:2: 'threads' must be an integer, found '%s'",
                 bad[i].shown);
        expect_error(f, with_listen(b, sizeof(b), text), FQ_EINVAL, want);
    }
    expect_error(f, with_listen(b, sizeof(b), "threads: [1]\n"), FQ_EINVAL,
                 "x.yaml:2: 'threads' must be an integer, found a sequence");
    expect_error(f, with_listen(b, sizeof(b), "threads:\n"), FQ_EINVAL,
                 "x.yaml:2: 'threads' needs a value");
    /* Overflow on a bounded key is reported against the bounds. */
    expect_error(f,
                 with_listen(b, sizeof(b), "threads: 99999999999999999999\n"),
                 FQ_EINVAL,
                 "x.yaml:2: 'threads' must be between 1 and 64, found "
                 "'99999999999999999999'");
}

static void
test_int_unbounded(void **state)
{
    struct fixture *f = *state;
    char b[256];

    expect_ok(f, with_listen(b, sizeof(b), "offset: 9223372036854775807\n"));
    assert_true(f->cfg.offset == INT64_MAX);
    expect_ok(f, with_listen(b, sizeof(b), "offset: -9223372036854775808\n"));
    assert_true(f->cfg.offset == INT64_MIN);
    expect_ok(f, with_listen(b, sizeof(b), "offset: 0\n"));
    assert_int_equal(f->cfg.offset, 0);
    expect_error(f, with_listen(b, sizeof(b), "offset: 9223372036854775808\n"),
                 FQ_EINVAL,
                 "x.yaml:2: 'offset' is out of range, found "
                 "'9223372036854775808'");
    expect_error(f, with_listen(b, sizeof(b), "offset: -9223372036854775809\n"),
                 FQ_EINVAL,
                 "x.yaml:2: 'offset' is out of range, found "
                 "'-9223372036854775809'");
}

static void
test_bool(void **state)
{
    struct fixture *f = *state;
    char b[256];

    expect_ok(f, with_listen(b, sizeof(b), "debug: true\n"));
    assert_true(f->cfg.debug);
    expect_ok(f, with_listen(b, sizeof(b), "debug: false\n"));
    assert_false(f->cfg.debug);
    expect_error(f, with_listen(b, sizeof(b), "debug: yes\n"), FQ_EINVAL,
                 "x.yaml:2: 'debug' must be true or false, found 'yes'");
    expect_error(f, with_listen(b, sizeof(b), "debug: True\n"), FQ_EINVAL,
                 "x.yaml:2: 'debug' must be true or false, found 'True'");
    expect_error(f, with_listen(b, sizeof(b), "debug: 1\n"), FQ_EINVAL,
                 "x.yaml:2: 'debug' must be true or false, found '1'");
    expect_error(f, with_listen(b, sizeof(b), "debug: {}\n"), FQ_EINVAL,
                 "x.yaml:2: 'debug' must be true or false, found a mapping");
}

static void
test_enum(void **state)
{
    struct fixture *f = *state;
    char b[256];

    expect_ok(f, with_listen(b, sizeof(b), "log_format: json\n"));
    assert_int_equal(f->cfg.log_format, 1);
    expect_ok(f, with_listen(b, sizeof(b), "log_format: text\n"));
    assert_int_equal(f->cfg.log_format, 0);
    expect_error(f, with_listen(b, sizeof(b), "\nlog_format: xml\n"), FQ_EINVAL,
                 "x.yaml:3: 'log_format' must be one of text, json, found "
                 "'xml'");
    expect_error(f, with_listen(b, sizeof(b), "log_format: JSON\n"), FQ_EINVAL,
                 "x.yaml:2: 'log_format' must be one of text, json, found "
                 "'JSON'");
}

static void
test_duration(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *text;
        int64_t ms;
    } ok[] = {
        {"100", 100},         {"100ms", 100},   {"250ms", 250},
        {"5s", 5000},         {"2m", 120000},   {"1h", 3600000},
        {"3600000", 3600000}, {"60m", 3600000}, {"3600s", 3600000},
    };
    char b[256], text[64];

    for (size_t i = 0; i < FQ_ARRAY_LEN(ok); i++) {
        snprintf(text, sizeof(text), "timeout: %s\n", ok[i].text);
        expect_ok(f, with_listen(b, sizeof(b), text));
        assert_int_equal(f->cfg.timeout_ms, ok[i].ms);
    }
    expect_error(f, with_listen(b, sizeof(b), "timeout: 99\n"), FQ_EINVAL,
                 "x.yaml:2: 'timeout' must be between 100ms and 1h, found "
                 "99ms");
    expect_error(f, with_listen(b, sizeof(b), "timeout: 3600001ms\n"),
                 FQ_EINVAL,
                 "x.yaml:2: 'timeout' must be between 100ms and 1h, found "
                 "3600001ms");
    expect_error(f, with_listen(b, sizeof(b), "timeout: 61m\n"), FQ_EINVAL,
                 "x.yaml:2: 'timeout' must be between 100ms and 1h, found "
                 "61m");
    const char *bad[] = {"5 s", "5S", "-5s", "s", "1.5s", "5sec", "1h30m"};
    for (size_t i = 0; i < FQ_ARRAY_LEN(bad); i++) {
        char want[160];
        snprintf(text, sizeof(text), "timeout: %s\n", bad[i]);
        snprintf(want, sizeof(want),
                 "x.yaml:2: 'timeout' must be a duration such as 250ms, 5s, "
                 "2m or 1h, found '%s'",
                 bad[i]);
        expect_error(f, with_listen(b, sizeof(b), text), FQ_EINVAL, want);
    }
    expect_error(f, with_listen(b, sizeof(b), "timeout: 9999999999999999h\n"),
                 FQ_EINVAL,
                 "x.yaml:2: 'timeout' must be between 100ms and 1h, found "
                 "'9999999999999999h'");
}

static void
test_size(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *text;
        int64_t bytes;
    } ok[] = {
        {"1024", 1024},
        {"1KiB", 1024},
        {"4MiB", 4 << 20},
        {"1GiB", INT64_C(1) << 30},
        {"1073741824", INT64_C(1) << 30},
        {"1024MiB", INT64_C(1) << 30},
    };
    char b[256], text[64];

    for (size_t i = 0; i < FQ_ARRAY_LEN(ok); i++) {
        snprintf(text, sizeof(text), "max_body: %s\n", ok[i].text);
        expect_ok(f, with_listen(b, sizeof(b), text));
        assert_int_equal(f->cfg.max_body, ok[i].bytes);
    }
    expect_error(f, with_listen(b, sizeof(b), "max_body: 1023\n"), FQ_EINVAL,
                 "x.yaml:2: 'max_body' must be between 1KiB and 1GiB, found "
                 "1023");
    expect_error(f, with_listen(b, sizeof(b), "max_body: 1073741825\n"),
                 FQ_EINVAL,
                 "x.yaml:2: 'max_body' must be between 1KiB and 1GiB, found "
                 "1073741825");
    expect_error(f, with_listen(b, sizeof(b), "max_body: 2GiB\n"), FQ_EINVAL,
                 "x.yaml:2: 'max_body' must be between 1KiB and 1GiB, found "
                 "2GiB");
    const char *bad[] = {"1KB", "1kib", "1 KiB", "-1KiB", "KiB", "1TiB"};
    for (size_t i = 0; i < FQ_ARRAY_LEN(bad); i++) {
        char want[160];
        snprintf(text, sizeof(text), "max_body: %s\n", bad[i]);
        snprintf(want, sizeof(want),
                 "x.yaml:2: 'max_body' must be a size such as 512, 64KiB, "
                 "4MiB or 1GiB, found '%s'",
                 bad[i]);
        expect_error(f, with_listen(b, sizeof(b), text), FQ_EINVAL, want);
    }
    expect_error(
        f, with_listen(b, sizeof(b), "max_body: 9223372036854775807GiB\n"),
        FQ_EINVAL,
        "x.yaml:2: 'max_body' must be between 1KiB and 1GiB, found "
        "'9223372036854775807GiB'");
    /* Just over INT64_MAX once multiplied. */
    expect_error(f, with_listen(b, sizeof(b), "max_body: 8589934592GiB\n"),
                 FQ_EINVAL,
                 "x.yaml:2: 'max_body' must be between 1KiB and 1GiB, found "
                 "'8589934592GiB'");
}

static void
test_string(void **state)
{
    struct fixture *f = *state;
    char b[6000], text[5000];

    expect_ok(f, "listen: abc\n");
    expect_ok(f, "listen: 8080\n");
    assert_string_equal(f->cfg.listen, "8080");
    expect_ok(f, "listen: \"a: b\"\n");
    assert_string_equal(f->cfg.listen, "a: b");
    expect_error(f, "listen: ab\n", FQ_EINVAL,
                 "x.yaml:1: 'listen' must be at least 3 bytes long, found 2");
    expect_error(f, "listen: \"\"\n", FQ_EINVAL,
                 "x.yaml:1: 'listen' must not be empty");
    expect_error(f, "listen:\n", FQ_EINVAL, "x.yaml:1: 'listen' needs a value");
    expect_error(f, "listen: ~\n", FQ_EINVAL,
                 "x.yaml:1: 'listen' needs a value");
    expect_error(f, "listen: null\n", FQ_EINVAL,
                 "x.yaml:1: 'listen' needs a value");
    expect_ok(f, "listen: 'null'\n");
    assert_string_equal(f->cfg.listen, "null");
    expect_error(f, "listen: \"a\\0b\"\n", FQ_EINVAL,
                 "x.yaml:1: 'listen' must not contain NUL bytes");
    expect_error(f, "listen: [a, b]\n", FQ_EINVAL,
                 "x.yaml:1: 'listen' must be a string, found a sequence");
    expect_error(f, "listen:\n  host: a\n", FQ_EINVAL,
                 "x.yaml:2: 'listen' must be a string, found a mapping");

    /* max 64, and FQ_CFG_STRING_MAX when the table leaves max at 0 */
    snprintf(text, sizeof(text), "listen: %064d\n", 0);
    expect_ok(f, text);
    assert_int_equal(strlen(f->cfg.listen), 64);
    snprintf(text, sizeof(text), "listen: %065d\n", 0);
    expect_error(f, text, FQ_EINVAL,
                 "x.yaml:1: 'listen' must be at most 64 bytes long, found 65");
    snprintf(text, sizeof(text), "name: %0*d\n", FQ_CFG_STRING_MAX, 0);
    expect_ok(f, with_listen(b, sizeof(b), text));
    assert_int_equal(strlen(f->cfg.name), FQ_CFG_STRING_MAX);
    snprintf(text, sizeof(text), "name: %0*d\n", FQ_CFG_STRING_MAX + 1, 0);
    expect_error(f, with_listen(b, sizeof(b), text), FQ_EINVAL,
                 "x.yaml:2: 'name' must be at most 4096 bytes long, found "
                 "4097");
}

/* Long or hostile values are cut and control bytes masked in messages. */
static void
test_found_is_sanitized(void **state)
{
    struct fixture *f = *state;
    char b[512];

    expect_error(f, with_listen(b, sizeof(b), "debug: \"a\\nb\\tc\"\n"),
                 FQ_EINVAL,
                 "x.yaml:2: 'debug' must be true or false, found 'a?b?c'");
    expect_error(f,
                 with_listen(b, sizeof(b),
                             "debug: abcdefghijklmnopqrstuvwxyzabcdefghij"
                             "klmnopqrstuvwxyz\n"),
                 FQ_EINVAL,
                 "x.yaml:2: 'debug' must be true or false, found "
                 "'abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuv...'");
    expect_error(f, with_listen(b, sizeof(b), "\"bad\\u0007key\": 1\n"),
                 FQ_EINVAL, "x.yaml:2: unknown key 'bad?key'");
}

static void
test_path(void **state)
{
    struct fixture *f = *state;
    const char *text = "listen: abc\n"
                       "tls: {ca: ca.pem, cert: /abs/c.pem}\n"
                       "datasets: [{name: a, file: ../d/a.db, columns: "
                       "[{name: x}]}]\n";
    struct cfg cfg;

    expect_ok(f, text);
    assert_string_equal(f->cfg.tls.ca, "/etc/fedq/ca.pem");
    assert_string_equal(f->cfg.tls.cert, "/abs/c.pem");
    assert_string_equal(f->cfg.datasets[0].file, "/etc/fedq/../d/a.db");

    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(fq_cfg_load_buf("x.yaml", NULL, text, strlen(text), table,
                                     NULL, &cfg, f->arena, f->err,
                                     sizeof(f->err)),
                     0);
    assert_string_equal(cfg.tls.ca, "ca.pem");
    assert_string_equal(cfg.tls.cert, "/abs/c.pem");
    assert_string_equal(cfg.datasets[0].file, "../d/a.db");

    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(fq_cfg_load_buf("x.yaml", "/", text, strlen(text), table,
                                     NULL, &cfg, f->arena, f->err,
                                     sizeof(f->err)),
                     0);
    assert_string_equal(cfg.tls.ca, "/ca.pem");

    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(fq_cfg_load_buf("x.yaml", "rel/dir/", text, strlen(text),
                                     table, NULL, &cfg, f->arena, f->err,
                                     sizeof(f->err)),
                     0);
    assert_string_equal(cfg.tls.ca, "rel/dir/ca.pem");
    assert_string_equal(cfg.tls.cert, "/abs/c.pem");
}

/* ---- collections -------------------------------------------------------- */

static void
test_strlist(void **state)
{
    struct fixture *f = *state;
    char b[512];

    expect_ok(f, with_listen(b, sizeof(b), "peers:\n  - a\n  - b\n  - c\n"));
    assert_int_equal(f->cfg.npeers, 3);
    assert_string_equal(f->cfg.peers[2], "c");
    assert_null(f->cfg.peers[3]);
    expect_ok(f, with_listen(b, sizeof(b), "peers: []\n"));
    assert_int_equal(f->cfg.npeers, 0);
    assert_null(f->cfg.peers);
    expect_ok(f, with_listen(b, sizeof(b), "peers:\n"));
    assert_int_equal(f->cfg.npeers, 0);
    expect_ok(f, with_listen(b, sizeof(b), "peers: ['', 1, true]\n"));
    assert_string_equal(f->cfg.peers[0], "");
    assert_string_equal(f->cfg.peers[1], "1");
    assert_string_equal(f->cfg.peers[2], "true");
    expect_error(f,
                 with_listen(b, sizeof(b),
                             "peers:\n  - a\n  - b\n  - c\n  - d\n  - e\n"),
                 FQ_ETOOBIG, "x.yaml:6: 'peers' may have at most 3 items");
    expect_error(f, with_listen(b, sizeof(b), "peers: a\n"), FQ_EINVAL,
                 "x.yaml:2: 'peers' must be a sequence of strings, found "
                 "'a'");
    expect_error(f, with_listen(b, sizeof(b), "peers: {a: 1}\n"), FQ_EINVAL,
                 "x.yaml:2: 'peers' must be a sequence of strings, found a "
                 "mapping");
    expect_error(f, with_listen(b, sizeof(b), "peers:\n  - a\n  - [b]\n"),
                 FQ_EINVAL,
                 "x.yaml:4: 'peers[1]' must be a string, found a sequence");
    expect_error(f, with_listen(b, sizeof(b), "peers:\n  - a\n  -\n"),
                 FQ_EINVAL, "x.yaml:4: 'peers[1]' needs a value");
    expect_error(f, with_listen(b, sizeof(b), "peers: [\"a\\0\"]\n"), FQ_EINVAL,
                 "x.yaml:2: 'peers[0]' must not contain NUL bytes");
}

/* A STRLIST with max 0 takes any count up to the node cap; each item is
 * bounded by FQ_CFG_STRING_MAX. */
static void
test_strlist_unbounded(void **state)
{
    struct fixture *f = *state;
    struct {
        char **items;
        size_t n;
    } obj;
    static const struct fq_cfg_directive t[] = {
        {.key = "items",
         .type = FQ_CFG_STRLIST,
         .offset = 0,
         .count_offset = sizeof(char **)},
        {0},
    };
    size_t len = 8 + 2 * 5000 + 8 + FQ_CFG_STRING_MAX + 8;
    char *text = malloc(len);

    assert_non_null(text);
    size_t o = (size_t)snprintf(text, len, "items: [");
    for (int i = 0; i < 5000; i++)
        o += (size_t)snprintf(text + o, len - o, "x,");
    o += (size_t)snprintf(text + o, len - o, "%0*d]", FQ_CFG_STRING_MAX, 0);
    memset(&obj, 0, sizeof(obj));
    assert_int_equal(fq_cfg_load_buf("u.yaml", NULL, text, o, t, NULL, &obj,
                                     f->arena, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(obj.n, 5001);
    assert_int_equal(strlen(obj.items[5000]), FQ_CFG_STRING_MAX);

    /* One byte longer than the cap on the last item. */
    o -= 1;
    o += (size_t)snprintf(text + o, len - o, "0]");
    assert_int_equal(fq_cfg_load_buf("u.yaml", NULL, text, o, t, NULL, &obj,
                                     f->arena, f->err, sizeof(f->err)),
                     FQ_EINVAL);
    assert_string_equal(f->err, "u.yaml:1: 'items[5000]' must be at most "
                                "4096 bytes long, found 4097");
    free(text);
}

static void
test_section(void **state)
{
    struct fixture *f = *state;
    char b[512];

    expect_ok(f, with_listen(b, sizeof(b), "tls:\n  ca: /c\n  verify: true\n"));
    assert_string_equal(f->cfg.tls.ca, "/c");
    assert_string_equal(f->cfg.tls.cert, "/etc/fedq/cert.pem");
    assert_true(f->cfg.tls.verify);
    assert_int_equal(f->cfg.tls.line, 3);
    /* "tls:" alone is an empty section: defaults, LINE at the key. */
    expect_ok(f, with_listen(b, sizeof(b), "tls:\nthreads: 2\n"));
    assert_string_equal(f->cfg.tls.cert, "/etc/fedq/cert.pem");
    assert_int_equal(f->cfg.tls.line, 2);
    expect_ok(f, with_listen(b, sizeof(b), "tls: {}\n"));
    assert_int_equal(f->cfg.tls.line, 2);
    expect_error(f, with_listen(b, sizeof(b), "tls: 5\n"), FQ_EINVAL,
                 "x.yaml:2: 'tls' must be a mapping, found '5'");
    expect_error(f, with_listen(b, sizeof(b), "tls:\n  - ca\n"), FQ_EINVAL,
                 "x.yaml:3: 'tls' must be a mapping, found a sequence");
    expect_error(f,
                 with_listen(b, sizeof(b), "tls:\n  ca: /c\n\n  treads: 4\n"),
                 FQ_EINVAL, "x.yaml:5: unknown key 'treads' in 'tls'");
    expect_error(f, with_listen(b, sizeof(b), "tls:\n  verify: maybe\n"),
                 FQ_EINVAL,
                 "x.yaml:3: 'tls.verify' must be true or false, found "
                 "'maybe'");
    expect_error(f, with_listen(b, sizeof(b), "tls:\n  ca:\n"), FQ_EINVAL,
                 "x.yaml:3: 'tls.ca' needs a value");
}

static void
test_list(void **state)
{
    struct fixture *f = *state;
    char b[1024];

    expect_ok(f, with_listen(b, sizeof(b), "datasets:\n"));
    assert_int_equal(f->cfg.ndatasets, 0);
    assert_null(f->cfg.datasets);
    expect_ok(f, with_listen(b, sizeof(b), "datasets: []\n"));
    assert_int_equal(f->cfg.ndatasets, 0);
    expect_error(f, with_listen(b, sizeof(b), "datasets: x\n"), FQ_EINVAL,
                 "x.yaml:2: 'datasets' must be a sequence of mappings, "
                 "found 'x'");
    expect_error(f, with_listen(b, sizeof(b), "datasets:\n  - x\n"), FQ_EINVAL,
                 "x.yaml:3: 'datasets[0]' must be a mapping, found 'x'");
    expect_error(f, with_listen(b, sizeof(b), "datasets:\n  -\n"), FQ_EINVAL,
                 "x.yaml:3: 'datasets[0]' must be a mapping, found nothing");
    expect_error(f,
                 with_listen(b, sizeof(b),
                             "datasets:\n"
                             "  - name: a\n"
                             "    file: a.db\n"
                             "    columns: [{name: x}]\n"
                             "  - file: b.db\n"
                             "    columns: [{name: x}]\n"),
                 FQ_EINVAL,
                 "x.yaml:6: missing required key 'name' in 'datasets[1]'");
    expect_error(f,
                 with_listen(b, sizeof(b),
                             "datasets:\n"
                             "  - name: a\n"
                             "    file: a.db\n"
                             "    columns:\n"
                             "      - name: x\n"
                             "        colour: red\n"),
                 FQ_EINVAL,
                 "x.yaml:7: unknown key 'colour' in 'datasets[0].columns[0]'");
    expect_error(f,
                 with_listen(b, sizeof(b),
                             "datasets:\n"
                             "  - name: a\n"
                             "    file: a.db\n"
                             "    columns:\n"
                             "      - name: x\n"
                             "      - name: y\n"
                             "        type: blob\n"),
                 FQ_EINVAL,
                 "x.yaml:8: 'datasets[0].columns[1].type' must be one of "
                 "int, text, real, found 'blob'");
    /* min 1 on columns */
    expect_error(f,
                 with_listen(b, sizeof(b),
                             "datasets:\n"
                             "  - name: a\n"
                             "    file: a.db\n"
                             "    columns: []\n"),
                 FQ_EINVAL,
                 "x.yaml:5: 'datasets[0].columns' must have at least 1 item, "
                 "found 0");
    /* max 4 on columns: reported at the fifth */
    expect_error(f,
                 with_listen(b, sizeof(b),
                             "datasets:\n"
                             "  - name: a\n"
                             "    file: a.db\n"
                             "    columns:\n"
                             "      - name: a\n"
                             "      - name: b\n"
                             "      - name: c\n"
                             "      - name: d\n"
                             "      - name: e\n"),
                 FQ_ETOOBIG,
                 "x.yaml:10: 'datasets[0].columns' may have at most 4 items");
    expect_ok(f, with_listen(b, sizeof(b),
                             "datasets:\n"
                             "  - name: a\n"
                             "    file: a.db\n"
                             "    columns:\n"
                             "      - name: a\n"
                             "      - name: b\n"
                             "      - name: c\n"
                             "      - name: d\n"));
    assert_int_equal(f->cfg.datasets[0].ncolumns, 4);
    assert_int_equal(f->cfg.datasets[0].columns[3].line, 9);
}

static void
test_list_max_items(void **state)
{
    struct fixture *f = *state;
    char b[1024];
    const char *ds = "  - {name: a, file: f, columns: [{name: c}]}\n";
    char text[512];

    snprintf(text, sizeof(text), "datasets:\n%s%s%s", ds, ds, ds);
    expect_ok(f, with_listen(b, sizeof(b), text));
    assert_int_equal(f->cfg.ndatasets, 3);
    assert_int_equal(f->cfg.datasets[2].line, 5);
    snprintf(text, sizeof(text), "datasets:\n%s%s%s%s", ds, ds, ds, ds);
    expect_error(f, with_listen(b, sizeof(b), text), FQ_ETOOBIG,
                 "x.yaml:6: 'datasets' may have at most 3 items");
}

/* ---- keys --------------------------------------------------------------- */

static void
test_unknown_key(void **state)
{
    struct fixture *f = *state;
    char b[256];

    expect_error(f, with_listen(b, sizeof(b), "treads: 4\n"), FQ_EINVAL,
                 "x.yaml:2: unknown key 'treads'");
    /* A LINE directive is not a key a user may write. */
    expect_error(f, with_listen(b, sizeof(b), "tls: {line: 4}\n"), FQ_EINVAL,
                 "x.yaml:2: unknown key 'line' in 'tls'");
    expect_error(f, with_listen(b, sizeof(b), "? [a, b]\n: 1\n"), FQ_EINVAL,
                 "x.yaml:2: mapping keys must be strings");
    expect_error(f, with_listen(b, sizeof(b), "\"\": 1\n"), FQ_EINVAL,
                 "x.yaml:2: unknown key ''");
}

static void
test_duplicate_key(void **state)
{
    struct fixture *f = *state;
    char b[256];

    expect_error(f, "listen: abc\nthreads: 2\n\nlisten: def\n", FQ_EINVAL,
                 "x.yaml:4: duplicate key 'listen'");
    expect_error(f, "listen: abc\n\"listen\": def\n", FQ_EINVAL,
                 "x.yaml:2: duplicate key 'listen'");
    expect_error(f, with_listen(b, sizeof(b), "tls:\n  ca: a\n  ca: b\n"),
                 FQ_EINVAL, "x.yaml:4: duplicate key 'ca' in 'tls'");
}

static void
test_required(void **state)
{
    struct fixture *f = *state;

    expect_error(f, "\n# header\nthreads: 2\n", FQ_EINVAL,
                 "x.yaml:3: missing required key 'listen'");
    expect_error(f,
                 "listen: abc\n"
                 "datasets:\n"
                 "  - name: a\n"
                 "    columns: [{name: c}]\n",
                 FQ_EINVAL,
                 "x.yaml:3: missing required key 'file' in 'datasets[0]'");
    expect_error(f,
                 "listen: abc\n"
                 "datasets:\n"
                 "  - name: a\n"
                 "    file: a\n"
                 "    columns: [{type: int}]\n",
                 FQ_EINVAL,
                 "x.yaml:5: missing required key 'name' in "
                 "'datasets[0].columns[0]'");
}

struct db {
    char *url;
    int64_t pool;
};

struct req_cfg {
    struct db db;
};

/* Required keys of an absent section are still required, and reported at
 * the mapping that lacks the section. */
static void
test_required_in_absent_section(void **state)
{
    struct fixture *f = *state;
    static const struct fq_cfg_directive db_table[] = {
        {.key = "url",
         .type = FQ_CFG_STRING,
         .flags = FQ_CFG_REQUIRED,
         .offset = offsetof(struct db, url)},
        {.key = "pool",
         .type = FQ_CFG_INT,
         .def = "8",
         .offset = offsetof(struct db, pool)},
        {0},
    };
    static const struct fq_cfg_directive t[] = {
        {.key = "db",
         .type = FQ_CFG_SECTION,
         .offset = offsetof(struct req_cfg, db),
         .sub = db_table},
        {.key = "x", .type = FQ_CFG_BOOL, .offset = 0},
        {0},
    };
    struct req_cfg cfg;
    const char *text = "\nx: true\n";

    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(fq_cfg_load_buf("r.yaml", NULL, "", 0, t, NULL, &cfg,
                                     f->arena, f->err, sizeof(f->err)),
                     FQ_EINVAL);
    assert_string_equal(f->err, "r.yaml:1: missing required key 'url' in 'db'");
    assert_int_equal(fq_cfg_load_buf("r.yaml", NULL, text, strlen(text), t,
                                     NULL, &cfg, f->arena, f->err,
                                     sizeof(f->err)),
                     FQ_EINVAL);
    assert_string_equal(f->err, "r.yaml:2: missing required key 'url' in 'db'");

    text = "db: {url: sqlite://x}\n";
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(fq_cfg_load_buf("r.yaml", NULL, text, strlen(text), t,
                                     NULL, &cfg, f->arena, f->err,
                                     sizeof(f->err)),
                     0);
    assert_string_equal(cfg.db.url, "sqlite://x");
    assert_int_equal(cfg.db.pool, 8);
}

/* A SECTION whose table has no sub-table accepts no keys at all. */
static void
test_section_without_table(void **state)
{
    struct fixture *f = *state;
    static const struct fq_cfg_directive t[] = {
        {.key = "opaque", .type = FQ_CFG_SECTION, .offset = 0},
        {0},
    };
    char obj[16];
    const char *ok = "opaque: {}\n";
    const char *bad = "opaque:\n  anything: 1\n";

    assert_int_equal(fq_cfg_load_buf("s.yaml", NULL, ok, strlen(ok), t, NULL,
                                     obj, f->arena, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(fq_cfg_load_buf("s.yaml", NULL, bad, strlen(bad), t, NULL,
                                     obj, f->arena, f->err, sizeof(f->err)),
                     FQ_EINVAL);
    assert_string_equal(f->err, "s.yaml:2: unknown key 'anything' in 'opaque'");
}

/* ---- check hooks -------------------------------------------------------- */

static void
test_check_hooks(void **state)
{
    struct fixture *f = *state;
    char b[512];

    /* section check, err->line 0: the section mapping's line */
    expect_error(f, with_listen(b, sizeof(b), "tls:\n\n  verify: true\n"),
                 FQ_EINVAL,
                 "x.yaml:4: 'tls.ca' is required when 'tls.verify' is true");
    /* the same check runs on an absent section's defaults (passes here) */
    expect_ok(f, "listen: abc\n");
    /* list element checks: each element's own line */
    expect_error(f,
                 with_listen(b, sizeof(b),
                             "datasets:\n"
                             "  - {name: ok, file: f, columns: [{name: c}]}\n"
                             "  - name: reserved\n"
                             "    file: f\n"
                             "    columns: [{name: c}]\n"),
                 FQ_EINVAL, "x.yaml:4: dataset name 'reserved' is reserved");
    expect_error(f,
                 with_listen(b, sizeof(b),
                             "datasets:\n"
                             "  - name: d\n"
                             "    file: f\n"
                             "    columns:\n"
                             "      - name: a\n"
                             "      - name: w\n"
                             "        type: real\n"
                             "        nullable: true\n"),
                 FQ_EINVAL,
                 "x.yaml:7: column 'w': real columns cannot be nullable");
    /* top check: its own line, or the top mapping's; its error code */
    expect_error(f, with_listen(b, sizeof(b), "name: line-seven\n"), FQ_EINVAL,
                 "x.yaml:7: name rejected at line 7");
    expect_error(f, "# c\nlisten: abc\nname: no-line\n", FQ_EPERM,
                 "x.yaml:2: name rejected");
}

/* A default that breaks its own bounds is a table bug; say so. */
static void
test_bad_default(void **state)
{
    struct fixture *f = *state;
    static const struct fq_cfg_directive t[] = {
        {.key = "n",
         .type = FQ_CFG_INT,
         .min = 1,
         .max = 64,
         .def = "100",
         .offset = 0},
        {0},
    };
    static const struct fq_cfg_directive t2[] = {
        {.key = "l",
         .type = FQ_CFG_STRLIST,
         .def = "a",
         .offset = 0,
         .count_offset = sizeof(char **)},
        {0},
    };
    char obj[64];

    memset(obj, 0, sizeof(obj));
    assert_int_equal(fq_cfg_load_buf("d.yaml", NULL, "", 0, t, NULL, obj,
                                     f->arena, f->err, sizeof(f->err)),
                     FQ_EINVAL);
    assert_string_equal(f->err, "d.yaml:1: bad default: 'n' must be between "
                                "1 and 64, found 100");
    assert_int_equal(fq_cfg_load_buf("d.yaml", NULL, "n: 5", 4, t, NULL, obj,
                                     f->arena, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(fq_cfg_load_buf("d.yaml", NULL, "", 0, t2, NULL, obj,
                                     f->arena, f->err, sizeof(f->err)),
                     FQ_EINVAL);
    assert_string_equal(f->err,
                        "d.yaml:1: bad table: 'l' cannot have a default");
}

/* ---- YAML features and syntax ------------------------------------------- */

static void
test_top_level_not_mapping(void **state)
{
    struct fixture *f = *state;

    expect_error(f, "- a\n- b\n", FQ_EINVAL,
                 "x.yaml:1: the top level must be a mapping, found a "
                 "sequence");
    expect_error(f, "\nhello\n", FQ_EINVAL,
                 "x.yaml:2: the top level must be a mapping, found 'hello'");
}

static void
test_syntax_error(void **state)
{
    struct fixture *f = *state;

    expect_error(f, "listen: abc\nthreads: [1, 2\ndebug: true\n", FQ_EINVAL,
                 "x.yaml:3: did not find expected ',' or ']'");
    expect_error(f, "listen: abc\n  threads: 2\n", FQ_EINVAL,
                 "x.yaml:2: mapping values are not allowed in this context");
    expect_error(f, "listen: abc\nname: \"open\n", FQ_EINVAL,
                 "x.yaml:3: found unexpected end of stream");
    expect_error(f, "listen: abc\n\tthreads: 2\n", FQ_EINVAL,
                 "x.yaml:2: found a tab character that violates indentation");
}

/* libyaml reports encoding errors by byte offset; we still give a line. */
static void
test_reader_error_line(void **state)
{
    struct fixture *f = *state;

    expect_error(f, "listen: abc\nname: x\nthreads: \xff\n", FQ_EINVAL,
                 "x.yaml:3: invalid leading UTF-8 octet");
    char text[] = "listen: abc\n\nname: a\x01"
                  "b\n";
    expect_error(f, text, FQ_EINVAL,
                 "x.yaml:3: control characters are not allowed");
}

static void
test_anchors_aliases_tags(void **state)
{
    struct fixture *f = *state;

    expect_error(f, "listen: &a abc\nname: *a\n", FQ_EINVAL,
                 "x.yaml:1: anchors and aliases are not supported");
    expect_error(f, "listen: abc\ntls: &t {}\n", FQ_EINVAL,
                 "x.yaml:2: anchors and aliases are not supported");
    expect_error(f, "listen: abc\npeers: &p [a]\n", FQ_EINVAL,
                 "x.yaml:2: anchors and aliases are not supported");
    /* An alias whose anchor we never saw still names its own line. */
    expect_error(f, "listen: abc\n\nname: *nowhere\n", FQ_EINVAL,
                 "x.yaml:3: anchors and aliases are not supported");
    expect_error(f, "listen: !!str abc\n", FQ_EINVAL,
                 "x.yaml:1: tags are not supported");
    expect_error(f, "listen: abc\ntls: !x {}\n", FQ_EINVAL,
                 "x.yaml:2: tags are not supported");
}

static void
test_multiple_documents(void **state)
{
    struct fixture *f = *state;

    expect_error(f, "listen: abc\n---\nlisten: def\n", FQ_EINVAL,
                 "x.yaml:2: multiple documents are not supported");
    expect_ok(f, "---\nlisten: abc\n...\n");
    assert_int_equal(f->cfg.line, 2);
}

/* ---- caps --------------------------------------------------------------- */

static void
test_too_large(void **state)
{
    struct fixture *f = *state;
    size_t len = FQ_CFG_MAX_BYTES + 1;
    char *text = malloc(len);

    assert_non_null(text);
    memset(text, '#', len);
    memset(&f->cfg, 0, sizeof(f->cfg));
    assert_int_equal(fq_cfg_load_buf("x.yaml", NULL, text, len, table, NULL,
                                     &f->cfg, f->arena, f->err, sizeof(f->err)),
                     FQ_ETOOBIG);
    assert_string_equal(f->err, "x.yaml: file too large (limit 1048576 "
                                "bytes)");
    /* Exactly at the cap it is read (and here fails only on content). */
    memcpy(text, "listen: abc\n", 12);
    assert_int_equal(fq_cfg_load_buf("x.yaml", NULL, text, len - 1, table, NULL,
                                     &f->cfg, f->arena, f->err, sizeof(f->err)),
                     0);
    free(text);
}

/* "x: " and depth levels of flow sequences under the top mapping. */
static void
nested_text(char *buf, size_t len, int levels)
{
    size_t o = (size_t)snprintf(buf, len, "listen: abc\nx: ");
    for (int i = 0; i < levels; i++)
        buf[o++] = '[';
    for (int i = 0; i < levels; i++)
        buf[o++] = ']';
    buf[o++] = '\n';
    buf[o] = '\0';
    assert_true(o < len);
}

static void
test_too_deep(void **state)
{
    struct fixture *f = *state;
    char text[1024];

    /* The top mapping is level 1: 15 more levels are allowed, and the
     * load fails only later on the unknown key. */
    nested_text(text, sizeof(text), FQ_CFG_MAX_DEPTH - 1);
    expect_error(f, text, FQ_EINVAL, "x.yaml:2: unknown key 'x'");
    nested_text(text, sizeof(text), FQ_CFG_MAX_DEPTH);
    expect_error(f, text, FQ_ETOOBIG,
                 "x.yaml:2: nesting deeper than 16 levels");
    nested_text(text, sizeof(text), 200);
    expect_error(f, text, FQ_ETOOBIG,
                 "x.yaml:2: nesting deeper than 16 levels");
    expect_error(f,
                 "listen: abc\n"
                 "a:\n b:\n  c:\n   d:\n    e:\n     f:\n      g:\n"
                 "       h:\n        i:\n         j:\n          k:\n"
                 "           l:\n            m:\n             n:\n"
                 "              o:\n               p:\n"
                 "                q: 1\n",
                 FQ_ETOOBIG, "x.yaml:18: nesting deeper than 16 levels");
}

/* The tree is capped at 100000 nodes: the top mapping, the "peers" key,
 * the sequence and its items count. */
static void
test_too_many_nodes(void **state)
{
    struct fixture *f = *state;
    size_t len = 16 + 2 * 100000;
    char *text = malloc(len);

    assert_non_null(text);
    size_t o = (size_t)snprintf(text, len, "peers: [");
    for (int i = 0; i < 99997; i++)
        o += (size_t)snprintf(text + o, len - o, "a,");
    snprintf(text + o, len - o, "]\n");
    expect_error(f, text, FQ_ETOOBIG,
                 "x.yaml:1: 'peers' may have at most 3 "
                 "items");
    snprintf(text + o, len - o, "b]\n");
    expect_error(f, text, FQ_ETOOBIG, "x.yaml:1: more than 100000 yaml nodes");
    free(text);
}

/* ---- files -------------------------------------------------------------- */

static void
write_file(const char *path, const char *text, size_t len)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static void
test_load_file(void **state)
{
    struct fixture *f = *state;
    char dir[] = "/tmp/fq_cfg_test_XXXXXX";
    char path[128], big[128];
    const char *text = "listen: abc\ntls:\n  ca: ca.pem\n";

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/gw.yaml", dir);
    write_file(path, text, strlen(text));
    memset(&f->cfg, 0, sizeof(f->cfg));
    assert_int_equal(fq_cfg_load_file(path, table, top_check, &f->cfg, f->arena,
                                      f->err, sizeof(f->err)),
                     0);
    char want[300];
    snprintf(want, sizeof(want), "%s/ca.pem", dir);
    assert_string_equal(f->cfg.tls.ca, want);

    write_file(path, "listen: abc\nthreads: 100\n", 25);
    assert_int_equal(fq_cfg_load_file(path, table, top_check, &f->cfg, f->arena,
                                      f->err, sizeof(f->err)),
                     FQ_EINVAL);
    snprintf(want, sizeof(want),
             "%s:2: 'threads' must be between 1 and 64, found 100", path);
    assert_string_equal(f->err, want);

    snprintf(big, sizeof(big), "%s/big.yaml", dir);
    char *blob = malloc(FQ_CFG_MAX_BYTES + 1);
    assert_non_null(blob);
    memset(blob, '#', FQ_CFG_MAX_BYTES + 1);
    write_file(big, blob, FQ_CFG_MAX_BYTES + 1);
    free(blob);
    assert_int_equal(fq_cfg_load_file(big, table, NULL, &f->cfg, f->arena,
                                      f->err, sizeof(f->err)),
                     FQ_ETOOBIG);
    snprintf(want, sizeof(want), "%s: file too large (limit 1048576 bytes)",
             big);
    assert_string_equal(f->err, want);

    unlink(big);
    unlink(path);
    assert_int_equal(fq_cfg_load_file(path, table, NULL, &f->cfg, f->arena,
                                      f->err, sizeof(f->err)),
                     FQ_ENOENT);
    snprintf(want, sizeof(want), "%s: cannot read: not found", path);
    assert_string_equal(f->err, want);
    assert_int_equal(rmdir(dir), 0);
}

/* A bare file name resolves relative paths against the working dir, i.e.
 * leaves them alone. */
static void
test_load_file_bare_name(void **state)
{
    struct fixture *f = *state;
    char dir[] = "/tmp/fq_cfg_test_XXXXXX";
    char cwd[4096];

    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_non_null(mkdtemp(dir));
    assert_int_equal(chdir(dir), 0);
    write_file("gw.yaml", "listen: abc\ntls: {ca: ca.pem}\n", 30);
    memset(&f->cfg, 0, sizeof(f->cfg));
    int rc = fq_cfg_load_file("gw.yaml", table, NULL, &f->cfg, f->arena, f->err,
                              sizeof(f->err));
    unlink("gw.yaml");
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rmdir(dir), 0);
    assert_int_equal(rc, 0);
    assert_string_equal(f->cfg.tls.ca, "ca.pem");
}

/* ---- error buffer ------------------------------------------------------- */

static void
test_errbuf_edges(void **state)
{
    struct fixture *f = *state;
    char small[12];
    const char *text = "threads: 1\n";

    memset(&f->cfg, 0, sizeof(f->cfg));
    assert_int_equal(fq_cfg_load_buf("x.yaml", NULL, text, strlen(text), table,
                                     NULL, &f->cfg, f->arena, small,
                                     sizeof(small)),
                     FQ_EINVAL);
    assert_string_equal(small, "x.yaml:1: m");
    assert_int_equal(fq_cfg_load_buf("x.yaml", NULL, text, strlen(text), table,
                                     NULL, &f->cfg, f->arena, NULL, 0),
                     FQ_EINVAL);
    /* success clears a stale message */
    snprintf(f->err, sizeof(f->err), "stale");
    expect_ok(f, "listen: abc\n");
    /* NULL data with length 0 is an empty file */
    assert_int_equal(fq_cfg_load_buf(NULL, NULL, NULL, 0, table, NULL, &f->cfg,
                                     f->arena, f->err, sizeof(f->err)),
                     FQ_EINVAL);
    assert_string_equal(f->err, "<config>:1: missing required key 'listen'");
}

/* The config lives in the caller's arena and nothing else: a tight arena
 * makes the load fail cleanly with FQ_ENOMEM. */
static void
test_arena_exhausted(void **state)
{
    struct fixture *f = *state;
    struct fq_arena *tiny = fq_arena_new(32);
    const char *text = "listen: abcdefghijklmnopqrstuvwxyz0123456789\n";

    assert_non_null(tiny);
    memset(&f->cfg, 0, sizeof(f->cfg));
    assert_int_equal(fq_cfg_load_buf("x.yaml", NULL, text, strlen(text), table,
                                     NULL, &f->cfg, tiny, f->err,
                                     sizeof(f->err)),
                     FQ_ENOMEM);
    assert_string_equal(f->err, "x.yaml:1: out of memory");
    fq_arena_free(tiny);
}

/* ---- reference ---------------------------------------------------------- */

static void
test_write_reference(void **state)
{
    char *out = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&out, &len);

    (void)state;
    assert_non_null(fp);
    fq_cfg_write_reference(fp, "Gateway", table);
    assert_int_equal(fclose(fp), 0);

    static const char *const rows[] = {
        "## Gateway\n\n| key | type | default | required | description |\n",
        "\n| listen | string (3..64 bytes) |  | yes | address to listen on "
        "|\n",
        "\n| threads | integer (1..64) | `4` | no | worker threads |\n",
        "\n| offset | integer | `-5` | no | unbounded integer |\n",
        "\n| debug | boolean | `false` | no | debug mode |\n",
        "\n| log_format | one of text, json | `text` | no | log line format "
        "|\n",
        "\n| timeout | duration (100ms..1h) | `5s` | no | request timeout |\n",
        "\n| max_body | size (1KiB..1GiB) | `4MiB` | no | largest body |\n",
        "\n| peers | list of strings (max 3 items) |  | no | peer addresses "
        "|\n",
        "\n| tls | mapping |  | no | TLS \\| settings |\n",
        "\n| tls.ca | path |  | no | CA bundle |\n",
        "\n| tls.cert | path | `cert.pem` | no | certificate |\n",
        "\n| datasets | list of mappings (max 3 items) |  | no | served "
        "datasets |\n",
        "\n| datasets[].name | string |  | yes | dataset name |\n",
        "\n| datasets[].columns | list of mappings (1..4 items) |  | no | "
        "exported columns |\n",
        "\n| datasets[].columns[].name | string (1..64 bytes) |  | yes | "
        "column name |\n",
        "\n| datasets[].columns[].type | one of int, text, real | `text` | no "
        "| column type |\n",
        "\n| datasets[].tags | list of strings |  | no | free tags |\n",
        "\n| name | string | `fedq` | no | instance name |\n",
    };
    for (size_t i = 0; i < FQ_ARRAY_LEN(rows); i++) {
        if (!strstr(out, rows[i]))
            print_error("missing row:\n%s\nin:\n%s", rows[i], out);
        assert_non_null(strstr(out, rows[i]));
    }
    /* rows come in table order, sub-tables right after their key */
    assert_true(strstr(out, "| tls |") < strstr(out, "| tls.ca |"));
    assert_true(strstr(out, "| tls.verify |") < strstr(out, "| datasets |"));
    assert_null(strstr(out, "(null)"));
    free(out);
}

/* ---- INLINE: a shared table whose keys sit at the including level ---- */

struct shared_part {
    int64_t port;
    char *host;
};

struct with_inline {
    char *name;
    struct shared_part part;
    int64_t after;
};

static const struct fq_cfg_directive shared_part_table[] = {
    {.key = "port",
     .type = FQ_CFG_INT,
     .min = 1,
     .max = 65535,
     .def = "80",
     .offset = offsetof(struct shared_part, port),
     .doc = "shared port"},
    {.key = "host",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct shared_part, host),
     .doc = "shared host"},
    {0},
};

static const struct fq_cfg_directive with_inline_table[] = {
    {.key = "name",
     .type = FQ_CFG_STRING,
     .offset = offsetof(struct with_inline, name),
     .doc = "own name"},
    {.type = FQ_CFG_INLINE,
     .offset = offsetof(struct with_inline, part),
     .sub = shared_part_table},
    {.key = "after",
     .type = FQ_CFG_INT,
     .def = "7",
     .offset = offsetof(struct with_inline, after),
     .doc = "own int"},
    {0},
};

static int
inline_load(struct fixture *f, const char *text, struct with_inline *w)
{
    memset(w, 0, sizeof(*w));
    return fq_cfg_load_buf("i.yaml", NULL, text, strlen(text),
                           with_inline_table, NULL, w, f->arena, f->err,
                           sizeof(f->err));
}

static void
test_inline_keys(void **state)
{
    struct fixture *f = *state;
    struct with_inline w;

    assert_int_equal(inline_load(f, "name: a\nhost: h\nport: 443\n", &w), 0);
    assert_string_equal(w.name, "a");
    assert_string_equal(w.part.host, "h");
    assert_int_equal(w.part.port, 443);
    assert_int_equal(w.after, 7);
    /* the inlined table's defaults apply too */
    assert_int_equal(inline_load(f, "host: h\n", &w), 0);
    assert_int_equal(w.part.port, 80);
}

static void
test_inline_errors(void **state)
{
    struct fixture *f = *state;
    struct with_inline w;

    assert_int_equal(inline_load(f, "name: a\n", &w), FQ_EINVAL);
    assert_string_equal(f->err, "i.yaml:1: missing required key 'host'");
    assert_int_equal(inline_load(f, "host: h\nport: 0\n", &w), FQ_EINVAL);
    assert_string_equal(
        f->err, "i.yaml:2: 'port' must be between 1 and 65535, found 0");
    assert_int_equal(inline_load(f, "host: h\nhost: g\n", &w), FQ_EINVAL);
    assert_string_equal(f->err, "i.yaml:2: duplicate key 'host'");
    assert_int_equal(inline_load(f, "host: h\npart: 1\n", &w), FQ_EINVAL);
    assert_string_equal(f->err, "i.yaml:2: unknown key 'part'");
}

static void
test_inline_reference(void **state)
{
    char *out = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&out, &len);

    (void)state;
    assert_non_null(fp);
    fq_cfg_write_reference(fp, "Inline", with_inline_table);
    assert_int_equal(fclose(fp), 0);
    /* inlined keys are listed at the top level, in table order */
    char *name = strstr(out, "\n| name |");
    char *host = strstr(out, "\n| host | string |  | yes | shared host |");
    char *after = strstr(out, "\n| after |");
    assert_non_null(name);
    assert_non_null(host);
    assert_non_null(after);
    assert_true(name < host && host < after);
    free(out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_full_config),
        T(test_inline_keys),
        T(test_inline_errors),
        T(test_inline_reference),
        T(test_defaults),
        T(test_empty_file),
        T(test_int),
        T(test_int_unbounded),
        T(test_bool),
        T(test_enum),
        T(test_duration),
        T(test_size),
        T(test_string),
        T(test_found_is_sanitized),
        T(test_path),
        T(test_strlist),
        T(test_strlist_unbounded),
        T(test_section),
        T(test_list),
        T(test_list_max_items),
        T(test_unknown_key),
        T(test_duplicate_key),
        T(test_required),
        T(test_required_in_absent_section),
        T(test_section_without_table),
        T(test_check_hooks),
        T(test_bad_default),
        T(test_top_level_not_mapping),
        T(test_syntax_error),
        T(test_reader_error_line),
        T(test_anchors_aliases_tags),
        T(test_multiple_documents),
        T(test_too_large),
        T(test_too_deep),
        T(test_too_many_nodes),
        T(test_load_file),
        T(test_load_file_bare_name),
        T(test_errbuf_edges),
        T(test_arena_exhausted),
        T(test_write_reference),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
