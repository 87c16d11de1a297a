/*
 * Unit tests for the extract store (agent/store.c) and the steward's
 * control channel (agent/control.c), on a real SQLite source in a
 * temporary directory: build at open and map at reopen, refresh and the
 * files it keeps, a corrupt file refused and rebuilt, a failed refresh that
 * keeps the old extract, the memory limit, reconfigure, the schedule, and
 * the control protocol.
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "agent.h"
#include "control.h"
#include "extract.h"
#include "store.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <sys/stat.h>

struct fixture {
    char dir[64];
    char cfg_path[160];
    char db_path[160];
    char xdir[160];
    char err[1024];
    struct ag_config *cfg;
    struct ag_store *store;
};

#define COLUMNS                                                 \
    "    columns:\n"                                            \
    "      - {name: person_id, role: identifier, type: text}\n" \
    "      - {name: town, role: dimension, type: text,\n"       \
    "         domain: {codes: [T001, T002, T003]}}\n"           \
    "      - {name: year, role: dimension, type: integer,\n"    \
    "         domain: {min: 2000, max: 2030}}\n"

#define WAGES                                               \
    "      - {name: wages, role: measure, type: integer,\n" \
    "         bounds: {min: 0, max: 1000000000}}\n"

static void
sql(struct fixture *f, const char *text)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->db_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, text, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* Adds n rows of new persons, numbered from first. */
static void
add_rows(struct fixture *f, int first, int n)
{
    sqlite3 *db;
    sqlite3_stmt *st;

    assert_int_equal(sqlite3_open(f->db_path, &db), SQLITE_OK);
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO t VALUES(printf('P%07d', "
                                        "?1), 'T00' || (1 + ?1 % 3), "
                                        "2000 + ?1 % 20, ?1 * 10)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    for (int i = first; i < first + n; i++) {
        sqlite3_bind_int(st, 1, i);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
}

static void
write_config(struct fixture *f, const char *extra, const char *columns)
{
    char tmp[200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", f->cfg_path);
    FILE *fp = fopen(tmp, "w");
    assert_non_null(fp);
    fprintf(fp,
            "agency: dol\n"
            "federation: fedq.test\n"
            "run_dir: ../run\n"
            "tls: {ca: ca.crt, cert: a.crt, key: a.key}\n"
            "%s"
            "datasets:\n"
            "  - name: t\n"
            "    contributor: person_id\n"
            "    source: {sqlite: ../d.sqlite, table: t}\n"
            "%s"
            "cell_key_secret: ck.key\n",
            extra, columns);
    fclose(fp);
    assert_int_equal(rename(tmp, f->cfg_path), 0);
}

static struct ag_config *
load(struct fixture *f)
{
    struct ag_config *cfg = NULL;
    int rc = ag_config_load(f->cfg_path, &cfg, f->err, sizeof(f->err));
    if (rc < 0)
        fail_msg("%s", f->err);
    return cfg;
}

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char etc[128];

    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/fq-agstore-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(etc, sizeof(etc), "%s/etc", f->dir);
    mkdir(etc, 0755);
    snprintf(f->cfg_path, sizeof(f->cfg_path), "%s/agent.yaml", etc);
    snprintf(f->db_path, sizeof(f->db_path), "%s/d.sqlite", f->dir);
    snprintf(f->xdir, sizeof(f->xdir), "%s/extracts/dol", f->dir);
    sql(f, "CREATE TABLE t(person_id TEXT, town TEXT, year INTEGER, "
           "wages INTEGER)");
    add_rows(f, 0, 100);
    write_config(f, "", COLUMNS WAGES);
    f->cfg = load(f);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[160];

    ag_store_close(f->store);
    ag_config_free(f->cfg);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static bool
has_file(struct fixture *f, int seq)
{
    char path[200];
    snprintf(path, sizeof(path), "%s/t.%d.fqx", f->xdir, seq);
    return access(path, F_OK) == 0;
}

static void
open_store(struct fixture *f)
{
    if (ag_store_open(f->cfg, &f->store, f->err, sizeof(f->err)) < 0)
        fail_msg("ag_store_open: %s", f->err);
}

static uint64_t
rows_now(struct fixture *f)
{
    struct ag_extract *x = ag_store_get(f->store, "t");
    assert_non_null(x);
    uint64_t n = x->n_rows;
    ag_extract_unref(x);
    return n;
}

/* ---- tests ----------------------------------------------------------------
 */

static void
open_builds_then_maps(void **state)
{
    struct fixture *f = *state;
    struct stat sb;
    char vintage[AG_VINTAGE_MAX];

    open_store(f);
    struct ag_extract *x = ag_store_get(f->store, "t");
    assert_non_null(x);
    assert_int_equal(x->n_rows, 100);
    assert_int_equal(strlen(x->vintage), 20); /* 2026-11-25T01:40:00Z */
    assert_int_equal(x->vintage[19], 'Z');
    memcpy(vintage, x->vintage, sizeof(vintage));
    ag_extract_unref(x);
    assert_null(ag_store_get(f->store, "nope"));
    assert_true(has_file(f, 1));
    assert_int_equal(stat(f->xdir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    ag_store_close(f->store);
    f->store = NULL;

    /* Reopened: the same file is mapped, nothing is built. */
    add_rows(f, 100, 5);
    open_store(f);
    x = ag_store_get(f->store, "t");
    assert_int_equal(x->n_rows, 100);
    assert_string_equal(x->vintage, vintage);
    ag_extract_unref(x);
    assert_false(has_file(f, 2));
}

static void
refresh_swaps_and_keeps_two(void **state)
{
    struct fixture *f = *state;

    open_store(f);
    struct ag_extract *old = ag_store_get(f->store, "t");
    add_rows(f, 100, 10);
    assert_int_equal(ag_store_refresh(f->store, "t", f->err, sizeof(f->err)),
                     0);
    assert_int_equal(rows_now(f), 110);
    /* A query holding the old extract still reads it. */
    assert_int_equal(old->n_rows, 100);
    assert_non_null(old->cols[0].data);
    ag_extract_unref(old);
    assert_true(has_file(f, 1) && has_file(f, 2));
    assert_int_equal(ag_store_refresh(f->store, "t", f->err, sizeof(f->err)),
                     0);
    assert_true(!has_file(f, 1) && has_file(f, 2) && has_file(f, 3));
    assert_int_equal(ag_store_refresh(f->store, "nope", f->err, sizeof(f->err)),
                     FQ_ENOENT);
}

static void
corrupt_file_is_rebuilt(void **state)
{
    struct fixture *f = *state;
    char path[200];
    struct stat sb;

    open_store(f);
    ag_store_close(f->store);
    f->store = NULL;
    snprintf(path, sizeof(path), "%s/t.1.fqx", f->xdir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(truncate(path, sb.st_size / 2), 0);
    open_store(f);
    assert_int_equal(rows_now(f), 100);
    assert_true(has_file(f, 2));
}

static void
failed_refresh_keeps_old(void **state)
{
    struct fixture *f = *state;
    char moved[200];

    open_store(f);
    snprintf(moved, sizeof(moved), "%s.away", f->db_path);
    assert_int_equal(rename(f->db_path, moved), 0);
    assert_true(ag_store_refresh(f->store, "t", f->err, sizeof(f->err)) < 0);
    assert_non_null(strstr(f->err, "dataset 't'"));
    assert_int_equal(rows_now(f), 100);
    assert_false(has_file(f, 2)); /* no file left behind */
    assert_int_equal(rename(moved, f->db_path), 0);
    assert_int_equal(ag_store_refresh(f->store, "t", f->err, sizeof(f->err)),
                     0);
}

static void
memory_limit_keeps_old(void **state)
{
    struct fixture *f = *state;

    ag_config_free(f->cfg);
    write_config(f, "max_extract_memory: 1MiB\n", COLUMNS WAGES);
    f->cfg = load(f);
    open_store(f);
    add_rows(f, 100, 100000); /* 100k distinct persons: several MiB */
    assert_int_equal(ag_store_refresh(f->store, "t", f->err, sizeof(f->err)),
                     FQ_ETOOBIG);
    assert_non_null(strstr(f->err, "max_extract_memory"));
    assert_int_equal(rows_now(f), 100);
}

static void
reconfigure_rebuilds_what_changed(void **state)
{
    struct fixture *f = *state;

    open_store(f);
    struct ag_extract *before = ag_store_get(f->store, "t");

    /* The same configuration, loaded again: nothing is rebuilt. */
    struct ag_config *same = load(f);
    assert_int_equal(
        ag_store_reconfigure(f->store, same, f->err, sizeof(f->err)), 0);
    struct ag_extract *x = ag_store_get(f->store, "t");
    assert_ptr_equal(x, before);
    ag_extract_unref(x);
    ag_config_free(f->cfg);
    f->cfg = same;

    /* A column less: rebuilt for the new columns. */
    write_config(f, "", COLUMNS);
    struct ag_config *fewer = load(f);
    assert_int_equal(
        ag_store_reconfigure(f->store, fewer, f->err, sizeof(f->err)), 0);
    x = ag_store_get(f->store, "t");
    assert_ptr_not_equal(x, before);
    assert_int_equal(x->n_cols, 3);
    ag_extract_unref(x);
    ag_config_free(f->cfg);
    f->cfg = fewer;

    /* A rebuild that fails (the source is gone): nothing changes. */
    char moved[200];
    snprintf(moved, sizeof(moved), "%s.away", f->db_path);
    write_config(f, "", COLUMNS WAGES);
    struct ag_config *bad = load(f);
    assert_int_equal(rename(f->db_path, moved), 0);
    assert_true(ag_store_reconfigure(f->store, bad, f->err, sizeof(f->err)) <
                0);
    assert_int_equal(rename(moved, f->db_path), 0);
    assert_non_null(strstr(f->err, "dataset 't'"));
    ag_config_free(bad);
    x = ag_store_get(f->store, "t");
    assert_int_equal(x->n_cols, 3);
    ag_extract_unref(x);
    ag_extract_unref(before);
}

static void
schedule_refreshes(void **state)
{
    struct fixture *f = *state;

    ag_config_free(f->cfg);
    write_config(f, "", "    refresh: 1s\n" COLUMNS WAGES);
    f->cfg = load(f);
    open_store(f);
    add_rows(f, 100, 7);
    for (int i = 0; i < 100 && rows_now(f) != 107; i++)
        usleep(100 * 1000);
    assert_int_equal(rows_now(f), 107);
}

/* ---- control ------------------------------------------------------------ */

static struct ag_catalog *
fixture_catalog(void *app)
{
    struct ag_catalog *cat = app;
    ag_catalog_ref(cat);
    return cat;
}

static void
ask(const char *path, const char *line, char *buf, size_t len)
{
    char err[512];
    if (ag_control_request(path, line, buf, len, err, sizeof(err)) < 0)
        fail_msg("%s", err);
}

static void
control_protocol(void **state)
{
    struct fixture *f = *state;
    struct ag_catalog *cat;
    struct ag_control *ctl;
    char path[200], answer[4096], line[600];
    struct stat sb;

    open_store(f);
    assert_int_equal(ag_catalog_build(f->cfg, &cat, f->err, sizeof(f->err)), 0);
    assert_int_equal(
        ag_control_path(f->cfg, path, sizeof(path), f->err, sizeof(f->err)), 0);
    assert_non_null(strstr(path, "/run/agent-dol.ctl"));
    struct ag_control_ops ops = {
        .store = f->store, .catalog = fixture_catalog, .app = cat};
    assert_int_equal(ag_control_start(path, &ops, &ctl, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    /* A second agent on the same socket is refused. */
    struct ag_control *again = NULL;
    assert_true(ag_control_start(path, &ops, &again, f->err, sizeof(f->err)) <
                0);
    assert_non_null(strstr(f->err, "in use"));

    ask(path, "status\n", answer, sizeof(answer));
    assert_non_null(strstr(answer, "ok 1 datasets\n"));
    assert_non_null(strstr(answer, "t engine=extract rows=100 "));
    add_rows(f, 100, 3);
    ask(path, "refresh t\n", answer, sizeof(answer));
    assert_int_equal(strncmp(answer, "ok 20", 5), 0);
    assert_int_equal(rows_now(f), 103);
    ask(path, "refresh nope\n", answer, sizeof(answer));
    assert_string_equal(answer, "error no dataset 'nope' at this agency\n");
    ask(path, "refresh ../t\n", answer, sizeof(answer));
    assert_int_equal(strncmp(answer, "error ", 6), 0);
    ask(path, "bogus\n", answer, sizeof(answer));
    assert_int_equal(strncmp(answer, "error unknown command", 21), 0);
    memset(line, 'a', sizeof(line) - 2);
    line[sizeof(line) - 2] = '\n';
    line[sizeof(line) - 1] = '\0';
    ask(path, line, answer, sizeof(answer));
    assert_string_equal(answer, "error request line too long\n");
    ask(path, "status\nstatus\n", answer, sizeof(answer));
    assert_int_equal(strncmp(answer, "error ", 6), 0);

    ag_control_stop(ctl);
    assert_int_equal(access(path, F_OK), -1); /* removed */
    ag_catalog_unref(cat);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(open_builds_then_maps),   T(refresh_swaps_and_keeps_two),
        T(corrupt_file_is_rebuilt), T(failed_refresh_keeps_old),
        T(memory_limit_keeps_old),  T(reconfigure_rebuilds_what_changed),
        T(schedule_refreshes),      T(control_protocol),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
