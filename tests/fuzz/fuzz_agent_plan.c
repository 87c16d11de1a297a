/*
 * Fuzz target for plan decoding at the agent: arbitrary bytes are decoded
 * as a fedq.v1.ExecuteRequest and handed to the executor exactly as the
 * Execute handler does (check against the catalog, compile to SQL with
 * bound parameters, run on a read-only SQLite file). Whatever a gateway
 * sends, the agent must refuse it cleanly or answer with partial groups;
 * never crash, leak, or run SQL text it did not build from its catalog.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "agent.h"

#include <sqlite3.h>

#include "fedq/v1/agent.pb-c.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ag_catalog *catalog;
static char workdir[] = "/tmp/fq-fuzz-agent-XXXXXX";

/* The fixture files go when the fuzzer exits. */
static void
cleanup(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/fz.sqlite", workdir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/agent.yaml", workdir);
    unlink(path);
    rmdir(workdir);
}

static const char config[] =
    "agency: fz\nfederation: fuzz.test\n"
    "tls: {ca: x, cert: x, key: x}\n"
    "cell_key_secret: x\n"
    "datasets:\n"
    "  - name: t\n"
    "    contributor: person_id\n"
    "    source: {sqlite: fz.sqlite, table: t}\n"
    "    columns:\n"
    "      - {name: person_id, role: identifier, type: text}\n"
    "      - {name: town, role: dimension, type: text,\n"
    "         domain: {codes: [A, B, C]}}\n"
    "      - {name: year, role: dimension, type: integer,\n"
    "         domain: {min: 2000, max: 2030}}\n"
    "      - {name: q, role: dimension, type: quarter,\n"
    "         domain: {codes: [2024Q1, 2024Q2]}}\n"
    "      - {name: amount, role: measure, type: integer,\n"
    "         bounds: {min: 0, max: 1000000}, quantile_bins: 50}\n"
    "      - {name: rate, role: measure, type: decimal,\n"
    "         bounds: {min: 0, max: 1}}\n";

static int
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static int
make_db(const char *path)
{
    sqlite3 *db;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(
            db,
            "CREATE TABLE t(person_id TEXT, town TEXT, year INTEGER, q TEXT, "
            "amount INTEGER, rate REAL);"
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
            "WHERE i < 500) INSERT INTO t SELECT 'P' || (i % 97), "
            "char(65 + i % 3), 2000 + i % 7, '2024Q' || (1 + i % 2), "
            "CASE WHEN i % 11 = 0 THEN NULL ELSE i * 13 END, (i % 10) / 10.0 "
            "FROM n;",
            NULL, NULL, NULL);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char path[128], err[512];
    struct ag_config *cfg = NULL;

    (void)argc;
    (void)argv;
    if (!mkdtemp(workdir))
        abort();
    atexit(cleanup);
    snprintf(path, sizeof(path), "%s/fz.sqlite", workdir);
    if (make_db(path) < 0)
        abort();
    snprintf(path, sizeof(path), "%s/agent.yaml", workdir);
    if (write_file(path, config) < 0 ||
        ag_config_load(path, &cfg, err, sizeof(err)) < 0 ||
        ag_catalog_build(cfg, &catalog, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz setup: %s\n", err);
        abort();
    }
    ag_catalog_adopt_config(catalog, cfg); /* its sources point into it */
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fq_arena *a = fq_arena_new(16 * 1024 * 1024);
    Fedq__V1__ExecuteResponse resp = FEDQ__V1__EXECUTE_RESPONSE__INIT;
    char err[512];

    if (!a)
        return 0;
    Fedq__V1__ExecuteRequest *req =
        fedq__v1__execute_request__unpack(fq_arena_pb_allocator(a), size, data);
    if (req && req->plan)
        ag_execute(catalog, req->plan, 1000, a, &resp, err, sizeof(err));
    fq_arena_free(a);
    return 0;
}
