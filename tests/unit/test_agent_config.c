/*
 * Unit tests for the agent's configuration checks (agent/agent_config.c)
 * and catalog (agent/catalog.c): every semantic rule with the line it is
 * reported at, the example configurations shipped in deploy/examples, and
 * the Describe reply built from a real SQLite file.
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "agent.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "fedq/v1/agent.pb-c.h"

struct fixture {
    char dir[64];
    char path[128];
    char err[1024];
};

/* A config prefix that is valid up to its datasets. */
#define HEAD                  \
    "agency: dol\n"           \
    "federation: fedq.test\n" \
    "tls: {ca: ca.crt, cert: a.crt, key: a.key}\n"

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    sqlite3 *db;

    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/fq-agcfg-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/agent.yaml", f->dir);
    char db_path[128];
    snprintf(db_path, sizeof(db_path), "%s/d.sqlite", f->dir);
    if (sqlite3_open(db_path, &db) != SQLITE_OK ||
        sqlite3_exec(db,
                     "CREATE TABLE t(person_id TEXT, town TEXT, "
                     "year INTEGER, wages INTEGER);"
                     "INSERT INTO t VALUES('P1', 'T001', 2020, 100);",
                     NULL, NULL, NULL) != SQLITE_OK)
        return -1;
    sqlite3_close(db);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[160];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static int
load_text(struct fixture *f, const char *text, struct ag_config **ret)
{
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    /* Every config needs the secret; last, so that no line moves. */
    fputs("cell_key_secret: ck.key\n", fp);
    fclose(fp);
    f->err[0] = '\0';
    return ag_config_load(f->path, ret, f->err, sizeof(f->err));
}

/* Asserts that text fails with "PATH:LINE: msg". */
static void
expect_error(struct fixture *f, const char *text, int line, const char *msg)
{
    struct ag_config *cfg = NULL;
    char want[1024];

    snprintf(want, sizeof(want), "%s:%d: %s", f->path, line, msg);
    assert_int_equal(load_text(f, text, &cfg), FQ_EINVAL);
    assert_null(cfg);
    assert_string_equal(f->err, want);
}

static const char good[] =
    HEAD "datasets:\n"
         "  - name: wages\n"
         "    source: {sqlite: d.sqlite, table: t}\n"
         "    columns:\n"
         "      - {name: person_id, role: identifier, type: text}\n"
         "      - name: town\n"
         "        role: dimension\n"
         "        type: text\n"
         "        domain: {codes: [T001, T002]}\n"
         "      - {name: year, role: dimension, type: integer,\n"
         "         domain: {min: 2000, max: 2030}}\n"
         "      - {name: wages, role: measure, type: integer, unit: cents,\n"
         "         bounds: {min: 0, max: 1000000}}\n";

static void
test_good_config(void **state)
{
    struct fixture *f = *state;
    struct ag_config *cfg = NULL;
    char want[160];

    assert_int_equal(load_text(f, good, &cfg), 0);
    assert_string_equal(cfg->agency, "dol");
    /* derived default: the federation's gateway */
    assert_string_equal(cfg->gateway_identity, "spiffe://fedq.test/gateway");
    /* relative paths resolve against the file's directory */
    snprintf(want, sizeof(want), "%s/d.sqlite", f->dir);
    assert_string_equal(cfg->datasets[0].source.sqlite, want);
    assert_int_equal(cfg->datasets[0].n_columns, 4);
    assert_int_equal(cfg->datasets[0].columns[2].domain.min, 2000);
    assert_int_equal(cfg->datasets[0].columns[3].bounds.max, 1000000);
    assert_int_equal(cfg->datasets[0].columns[0].domain.min, AG_UNSET);
    assert_int_equal(cfg->server.threads, 2);
    ag_config_free(cfg);
}

static void
test_column_rules(void **state)
{
    struct fixture *f = *state;
#define DS                                            \
    HEAD "datasets:\n"                                \
         "  - name: wages\n"                          \
         "    source: {sqlite: d.sqlite, table: t}\n" \
         "    columns:\n"                             \
         "      - {name: person_id, role: identifier, type: text}\n"

    expect_error(f, DS "      - {name: town, role: dimension, type: text}\n", 9,
                 "dimension 'town' needs a domain (codes, or min and max)");
    expect_error(f,
                 DS "      - {name: town, role: dimension, type: text,\n"
                    "         domain: {min: 1, max: 3}}\n",
                 9,
                 "dimension 'town': min/max domain needs an integer column "
                 "and min <= max");
    expect_error(f,
                 DS "      - {name: year, role: dimension, type: integer,\n"
                    "         domain: {min: 5, max: 3}}\n",
                 9,
                 "dimension 'year': min/max domain needs an integer column "
                 "and min <= max");
    expect_error(f,
                 DS "      - {name: town, role: dimension, type: text,\n"
                    "         domain: {codes: [a, b, a]}}\n",
                 9, "dimension 'town': code 'a' listed twice");
    expect_error(f, DS "      - {name: wages, role: measure, type: integer}\n",
                 9, "measure 'wages' needs bounds with min <= max");
    expect_error(f,
                 DS "      - {name: wages, role: measure, type: text,\n"
                    "         bounds: {min: 0, max: 1}}\n",
                 9, "measure 'wages' must be integer or decimal");
    expect_error(f,
                 DS "      - {name: town, role: date, type: date,\n"
                    "         bounds: {min: 0, max: 1}}\n",
                 9, "column 'town': only a measure has bounds");
    expect_error(f,
                 DS "      - {name: town, role: date, type: date,\n"
                    "         domain: {codes: [x]}}\n",
                 9, "column 'town': only a dimension has a domain");
    expect_error(f, DS "      - {name: \"to wn\", role: date, type: date}\n", 9,
                 "column name 'to wn' must be letters, digits and '_'");
#undef DS
}

static void
test_dataset_rules(void **state)
{
    struct fixture *f = *state;

    expect_error(f,
                 HEAD "datasets:\n"
                      "  - name: w\n"
                      "    source: {sqlite: d.sqlite, table: t}\n"
                      "    columns:\n"
                      "      - {name: person_id, role: identifier, "
                      "type: text}\n",
                 5, "dataset 'w' exposes no dimension, measure or date");
    expect_error(f,
                 HEAD "datasets:\n"
                      "  - name: w\n"
                      "    source: {sqlite: d.sqlite, table: t}\n"
                      "    columns:\n"
                      "      - {name: year, role: date, type: integer}\n"
                      "      - {name: year, role: date, type: integer}\n",
                 9, "column 'year' listed twice");
    expect_error(f,
                 HEAD "datasets:\n"
                      "  - name: w\n"
                      "    source:\n"
                      "      sqlite: d.sqlite\n"
                      "      table: \"t; DROP TABLE t\"\n"
                      "    columns:\n"
                      "      - {name: year, role: date, type: integer}\n",
                 7,
                 "table name 't; DROP TABLE t' must be letters, digits "
                 "and '_'");
    /* sources: exactly one, with what it needs, and a matching engine */
    static const struct {
        const char *source, *extra, *msg;
    } bad_sources[] = {
        {"{sqlite: d.sqlite, csv: d.csv, table: t}", "",
         "dataset 'w': source needs exactly one of sqlite, csv and postgres"},
        {"{postgres: \"dbname=x\"}", "", "dataset 'w': source needs a table"},
        {"{csv: d.csv, table: t}", "",
         "dataset 'w': a csv source has no table"},
        {"{sqlite: d.sqlite, table: t, delimiter: \";\"}", "",
         "dataset 'w': delimiter is for csv sources"},
        {"{csv: d.csv}", "    engine: sqlite\n",
         "dataset 'w': engine sqlite needs a sqlite source"},
        {"{sqlite: d.sqlite, table: t}", "    engine: pushdown\n",
         "dataset 'w': engine pushdown needs a postgres source"},
        {"{sqlite: d.sqlite, table: t}",
         "    engine: sqlite\n    refresh: 1h\n",
         "dataset 'w': refresh is for the extract engine"},
    };
    for (size_t i = 0; i < FQ_ARRAY_LEN(bad_sources); i++) {
        char text[1024];
        snprintf(text, sizeof(text),
                 HEAD "datasets:\n"
                      "  - name: w\n"
                      "%s"
                      "    source: %s\n"
                      "    columns:\n"
                      "      - {name: year, role: date, type: integer}\n",
                 bad_sources[i].extra, bad_sources[i].source);
        int line = 6; /* the source line, after the extra lines */
        for (const char *c = bad_sources[i].extra; *c; c++)
            line += *c == '\n';
        expect_error(f, text, line, bad_sources[i].msg);
    }
    expect_error(f,
                 HEAD "datasets:\n"
                      "  - name: w\n"
                      "    source: {sqlite: d.sqlite, table: t}\n"
                      "    columns:\n"
                      "      - {name: year, role: date, type: integer}\n"
                      "  - name: w\n"
                      "    source: {sqlite: d.sqlite, table: t}\n"
                      "    columns:\n"
                      "      - {name: year, role: date, type: integer}\n",
                 9, "dataset 'w' listed twice");
}

static void
test_top_rules(void **state)
{
    struct fixture *f = *state;

    expect_error(f,
                 "agency: DOL\nfederation: fedq.test\n"
                 "tls: {ca: a, cert: b, key: c}\n",
                 1, "agency 'DOL' must match [a-z0-9][a-z0-9_-]*");
    expect_error(f,
                 "agency: dol\nfederation: fedq_test\n"
                 "tls: {ca: a, cert: b, key: c}\n",
                 1, "federation 'fedq_test' must match [a-z0-9][a-z0-9.-]*");
    expect_error(f, HEAD "gateway_identity: spiffe://fedq.test/analyst/eve\n",
                 1,
                 "gateway_identity 'spiffe://fedq.test/analyst/eve' is not a "
                 "gateway of federation 'fedq.test'");
    expect_error(f, HEAD "gateway_identity: spiffe://other.fed/gateway\n", 1,
                 "gateway_identity 'spiffe://other.fed/gateway' is not a "
                 "gateway of federation 'fedq.test'");
    expect_error(f, HEAD "default_deadline: 2m\nmax_deadline: 1m\n", 1,
                 "default_deadline exceeds max_deadline");
    expect_error(f, HEAD "treads: 4\n", 4, "unknown key 'treads'");
}

static struct ag_catalog *
build_catalog(struct fixture *f, const char *text, int want_rc)
{
    struct ag_config *cfg = NULL;
    struct ag_catalog *cat = NULL;

    assert_int_equal(load_text(f, text, &cfg), 0);
    assert_int_equal(ag_catalog_build(cfg, &cat, f->err, sizeof(f->err)),
                     want_rc);
    /* The catalog's sources point into the config: it keeps it. */
    if (cat)
        ag_catalog_adopt_config(cat, cfg);
    else
        ag_config_free(cfg);
    return cat;
}

static void
test_catalog_describe(void **state)
{
    struct fixture *f = *state;
    struct ag_catalog *cat = build_catalog(f, good, 0);
    const Fedq__V1__DescribeResponse *r = ag_catalog_describe(cat);

    assert_string_equal(r->agency, "dol");
    assert_int_equal(r->n_datasets, 1);
    const Fedq__V1__Dataset *d = r->datasets[0];
    assert_string_equal(d->name, "wages");
    assert_int_equal(d->n_columns, 4);
    assert_int_equal(d->columns[0]->role,
                     FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_IDENTIFIER);
    assert_null(d->columns[0]->domain);
    assert_int_equal(d->columns[1]->domain->kind_case,
                     FEDQ__V1__DOMAIN__KIND_CODES);
    assert_int_equal(d->columns[1]->domain->codes->n_codes, 2);
    assert_string_equal(d->columns[1]->domain->codes->codes[1], "T002");
    assert_int_equal(d->columns[2]->domain->kind_case,
                     FEDQ__V1__DOMAIN__KIND_RANGE);
    assert_int_equal(d->columns[2]->domain->range->max, 2030);
    assert_int_equal(d->columns[3]->type,
                     FEDQ__V1__VALUE_TYPE__VALUE_TYPE_INTEGER);
    assert_string_equal(d->columns[3]->unit, "cents");
    assert_int_equal(d->columns[3]->bounds->max, 1000000);
    assert_int_equal(ag_catalog_datasets(cat), 1);
    ag_catalog_ref(cat);
    ag_catalog_unref(cat);
    ag_catalog_unref(cat);
}

static void
test_catalog_sources(void **state)
{
    struct fixture *f = *state;
    char want[512];

    assert_null(build_catalog(f,
                              HEAD "datasets:\n"
                                   "  - name: w\n"
                                   "    source: {sqlite: d.sqlite, table: u}\n"
                                   "    columns:\n"
                                   "      - {name: year, role: date, "
                                   "type: integer}\n",
                              FQ_EINVAL));
    snprintf(want, sizeof(want),
             "%s:6: dataset 'w': no table 'u' in '%s/d.sqlite'", f->path,
             f->dir);
    assert_string_equal(f->err, want);

    assert_null(build_catalog(f,
                              HEAD "datasets:\n"
                                   "  - name: w\n"
                                   "    source: {sqlite: d.sqlite, table: t}\n"
                                   "    columns:\n"
                                   "      - {name: year, role: date, "
                                   "type: integer}\n"
                                   "      - {name: age, role: date, "
                                   "type: integer}\n",
                              FQ_EINVAL));
    snprintf(want, sizeof(want),
             "%s:9: dataset 'w': table 't' has no column 'age'", f->path);
    assert_string_equal(f->err, want);

    assert_null(build_catalog(f,
                              HEAD "datasets:\n"
                                   "  - name: w\n"
                                   "    source: {sqlite: nope.sqlite, "
                                   "table: t}\n"
                                   "    columns:\n"
                                   "      - {name: year, role: date, "
                                   "type: integer}\n",
                              FQ_EIO));
    snprintf(want, sizeof(want), "%s:6: dataset 'w': cannot open SQLite file",
             f->path);
    assert_memory_equal(f->err, want, strlen(want));
}

/* The configurations the quickstart ships must load as they are. */
static void
test_example_configs(void **state)
{
    static const char *const agencies[] = {"dol", "dss", "doe",
                                           "uhs", "csu", "ccs"};
    struct fixture *f = *state;

    for (size_t i = 0; i < FQ_ARRAY_LEN(agencies); i++) {
        char path[512];
        struct ag_config *cfg = NULL;
        snprintf(path, sizeof(path), "%s/deploy/examples/etc/agent-%s.yaml",
                 FQ_SOURCE_DIR, agencies[i]);
        if (ag_config_load(path, &cfg, f->err, sizeof(f->err)) != 0)
            print_error("%s\n", f->err);
        assert_non_null(cfg);
        assert_string_equal(cfg->agency, agencies[i]);
        assert_true(cfg->n_datasets >= 1);
        ag_config_free(cfg);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_good_config),      T(test_column_rules),
        T(test_dataset_rules),    T(test_top_rules),
        T(test_catalog_describe), T(test_catalog_sources),
        T(test_example_configs),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
