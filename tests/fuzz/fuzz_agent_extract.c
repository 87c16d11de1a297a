/*
 * Fuzz target for extract files (agent/extract.c) and the engine behind
 * them: arbitrary bytes are written as an extract file, opened as the
 * agent opens one at start (every offset, width, code and dictionary
 * checked), and whatever opens is queried by the engine (agent/engine.c)
 * with a plan using every aggregate. A file that passes the checks must
 * never make the engine read or write out of bounds.
 *
 * The seed corpus (tests/fuzz/corpus/agent_extract/) holds a valid
 * extract of the fixture below; FQ_FUZZ_EXTRACT_SEED=PATH makes the
 * target write a fresh one there and exit.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/plan.h"
#include "fq/sql.h"
#include "engine.h"
#include "extract.h"

#include "fedq/v1/agent.pb-c.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ag_column_conf columns[] = {
    {.name = (char *)"person_id",
     .role = AG_ROLE_IDENTIFIER,
     .type = AG_TYPE_TEXT},
    {.name = (char *)"town", .role = AG_ROLE_DIMENSION, .type = AG_TYPE_TEXT},
    {.name = (char *)"year",
     .role = AG_ROLE_DIMENSION,
     .type = AG_TYPE_INTEGER},
    {.name = (char *)"q", .role = AG_ROLE_DIMENSION, .type = AG_TYPE_QUARTER},
    {.name = (char *)"amount",
     .role = AG_ROLE_MEASURE,
     .type = AG_TYPE_INTEGER},
    {.name = (char *)"rate", .role = AG_ROLE_MEASURE, .type = AG_TYPE_DECIMAL},
};

static const struct ag_dataset_conf dataset = {
    .name = (char *)"fz",
    .source = {.csv = (char *)"fz.csv"},
    .columns = columns,
    .n_columns = FQ_ARRAY_LEN(columns),
    .contributor = (char *)"person_id",
};

static const char seed_csv[] = "person_id,town,year,q,amount,rate\n"
                               "P1,A,2001,2024Q1,10,0.5\n"
                               "P1,B,2002,2024Q2,,0.25\n"
                               "P2,A,,2024Q1,700,\n"
                               "P3,C,2003,,5000,1\n"
                               "P3,C,2003,2024Q2,-3,0\n"
                               "P4,,2001,2024Q1,999999,0.75\n";

static const char query[] =
    "SELECT town, year, COUNT(*), SUM(amount), AVG(rate), VAR(amount), "
    "STDDEV(rate), COUNT(DISTINCT person_id), COUNT(DISTINCT q), "
    "HISTOGRAM(amount, 0, 100, 1000), QUANTILE(amount, 0.5) FROM fz.fz "
    "WHERE q >= '2024Q1' OR NOT (year IS NULL OR amount BETWEEN 5 AND 50) "
    "OR town IN ('A', 'C') GROUP BY town, year";

static char workdir[] = "/tmp/fq-fuzz-extract-XXXXXX";
static char file[128];
static struct fq_arena *plan_arena;
static Fedq__V1__Plan *plan;
static Fedq__V1__Dataset catalog;

/* The catalog entry the plan is checked against: the fixture's columns
 * with domains and bounds. */
static void
make_catalog(void)
{
    static Fedq__V1__Column c[FQ_ARRAY_LEN(columns)];
    static Fedq__V1__Column *cp[FQ_ARRAY_LEN(columns)];
    static Fedq__V1__IntRange amount = FEDQ__V1__INT_RANGE__INIT;
    static Fedq__V1__IntRange rate = FEDQ__V1__INT_RANGE__INIT;
    static const Fedq__V1__ColumnRole roles[] = {
        FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_IDENTIFIER,
        FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_DIMENSION,
        FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_DIMENSION,
        FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_DIMENSION,
        FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_MEASURE,
        FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_MEASURE};
    static const Fedq__V1__ValueType types[] = {
        FEDQ__V1__VALUE_TYPE__VALUE_TYPE_TEXT,
        FEDQ__V1__VALUE_TYPE__VALUE_TYPE_TEXT,
        FEDQ__V1__VALUE_TYPE__VALUE_TYPE_INTEGER,
        FEDQ__V1__VALUE_TYPE__VALUE_TYPE_QUARTER,
        FEDQ__V1__VALUE_TYPE__VALUE_TYPE_INTEGER,
        FEDQ__V1__VALUE_TYPE__VALUE_TYPE_DECIMAL};

    amount.min = 0;
    amount.max = 1000000;
    rate.min = 0;
    rate.max = 1;
    for (size_t i = 0; i < FQ_ARRAY_LEN(c); i++) {
        fedq__v1__column__init(&c[i]);
        c[i].name = columns[i].name;
        c[i].role = roles[i];
        c[i].type = types[i];
        cp[i] = &c[i];
    }
    c[4].bounds = &amount;
    c[4].quantile_bins = 50;
    c[5].bounds = &rate;
    fedq__v1__dataset__init(&catalog);
    catalog.agency = "fz";
    catalog.name = "fz";
    catalog.columns = cp;
    catalog.n_columns = FQ_ARRAY_LEN(c);
}

static void
cleanup(void)
{
    unlink(file);
    rmdir(workdir);
}

static void
fail(const char *what, const char *err)
{
    fprintf(stderr, "fuzz setup: %s: %s\n", what, err);
    abort();
}

/* Builds the fixture's extract at path (the seed). */
static void
write_seed(const char *path)
{
    struct ag_row_source src;
    char err[512];

    if (ag_source_csv_buffer(&dataset, seed_csv, sizeof(seed_csv) - 1, ',',
                             &src, err, sizeof(err)) < 0)
        fail("csv", err);
    int rc = ag_extract_build(&dataset, &src, "2026-01-01T00:00:00Z", path, err,
                              sizeof(err));
    src.close(src.self);
    if (rc < 0)
        fail("build", err);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct fq_sql_query *q = NULL;
    struct fq_sql_error serr;
    const char *seed = getenv("FQ_FUZZ_EXTRACT_SEED");

    (void)argc;
    (void)argv;
    if (seed) {
        write_seed(seed);
        exit(0);
    }
    if (!mkdtemp(workdir))
        abort();
    snprintf(file, sizeof(file), "%s/fz.fqx", workdir);
    atexit(cleanup);
    make_catalog();
    plan_arena = fq_arena_new(FQ_SQL_PARSE_MEMORY_MAX);
    if (!plan_arena ||
        fq_sql_parse(query, strlen(query), plan_arena, &q, &serr) < 0 ||
        fq_plan_from_sql(q, &catalog, plan_arena, &plan, &serr) < 0)
        fail("plan", serr.msg);
    return 0;
}

static int
write_file(const uint8_t *data, size_t size)
{
    FILE *f = fopen(file, "wb");
    if (!f)
        return -1;
    size_t n = fwrite(data, 1, size, f);
    return fclose(f) == 0 && n == size ? 0 : -1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ag_engine_limits lim = {
        .max_groups = 1000, .threads = 2, .max_memory = 64 << 20};
    struct ag_extract *x = NULL;
    char err[512];

    if (write_file(data, size) < 0 ||
        ag_extract_open(file, &dataset, &x, err, sizeof(err)) < 0)
        return 0;
    struct fq_arena *a = fq_arena_new(16 << 20);
    Fedq__V1__ExecuteResponse resp = FEDQ__V1__EXECUTE_RESPONSE__INIT;
    if (a)
        ag_engine_execute(x, &catalog, plan, &lim, a, &resp, err, sizeof(err));
    fq_arena_free(a);
    ag_extract_unref(x);
    return 0;
}
