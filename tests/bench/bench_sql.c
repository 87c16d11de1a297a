/*
 * The SQL engines: SQLite through its C API (one read-only connection,
 * default settings) and PostgreSQL through libpq (one connection). A run
 * is the whole statement: prepare (SQLite) or send, execute, and every
 * result row in the client.
 */
#include "bench.h"

#include "fq/error.h"

#include <libpq-fe.h>
#include <sqlite3.h>

#define SQL_TEXT_MAX 1024

/* "T001|SNAP|3": the first n columns of a row, as text. */
static void
key_join(char *out, size_t outlen, const char *const *cols, size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        bench_key_part(out, outlen, &len, i, cols[i], false, 0);
}

/* ---- SQLite -------------------------------------------------------------- */

struct sqlite_ctx {
    sqlite3 *db;
};

static int
sqlite_run(void *vctx, const struct bench_query *q, struct bench_result *res,
           char *err, size_t errlen)
{
    struct sqlite_ctx *c = vctx;
    sqlite3_stmt *st = NULL;
    char sql[SQL_TEXT_MAX], key[BENCH_KEY_MAX];
    const char *cols[BENCH_MAX_COLS];
    int rc;

    if ((rc = bench_query_text(q->sql, "enrollment", sql, sizeof(sql))) < 0)
        return rc;
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "prepare: %s", sqlite3_errmsg(c->db));
        return FQ_EIO;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!res)
            continue;
        for (size_t i = 0; i < q->n_keys; i++)
            cols[i] = (const char *)sqlite3_column_text(st, (int)i);
        key_join(key, sizeof(key), cols, q->n_keys);
        bench_result_add(
            res, key, sqlite3_column_int64(st, (int)q->n_keys),
            q->has_sum ? sqlite3_column_int64(st, (int)q->n_keys + 1) : 0);
    }
    if (rc != SQLITE_DONE)
        snprintf(err, errlen, "step: %s", sqlite3_errmsg(c->db));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : FQ_EIO;
}

int
bench_cmd_sqlite(int argc, char **argv)
{
    static const char *const names[] = {"db", "engine", NULL};
    const char *vals[2] = {NULL, "sqlite"};
    struct bench_opts o;
    struct sqlite_ctx c = {0};
    int rc;

    if ((rc = bench_parse_opts(argc, argv, &o, names, vals)) != 0)
        return rc;
    if (!vals[0]) {
        fprintf(stderr, "fedq-bench sqlite: --db FILE is required\n");
        return 2;
    }
    if (sqlite3_open_v2(vals[0], &c.db, SQLITE_OPEN_READONLY, NULL) !=
        SQLITE_OK) {
        fprintf(stderr, "fedq-bench sqlite: %s: %s\n", vals[0],
                sqlite3_errmsg(c.db));
        rc = 1;
        goto out;
    }
    for (size_t i = 0; i < bench_n_queries; i++) {
        if (bench_selected(&o, &bench_queries[i]) &&
            bench_measure(&o, vals[1], 1, &bench_queries[i], sqlite_run, &c) <
                0) {
            rc = 1;
            goto out;
        }
    }
out:
    sqlite3_close(c.db);
    return rc;
}

/* ---- PostgreSQL ------------------------------------------------------------
 */

struct pg_ctx {
    PGconn *conn;
    const char *table;
};

static int
pg_run(void *vctx, const struct bench_query *q, struct bench_result *res,
       char *err, size_t errlen)
{
    struct pg_ctx *c = vctx;
    char sql[SQL_TEXT_MAX], key[BENCH_KEY_MAX];
    const char *cols[BENCH_MAX_COLS];
    PGresult *r;
    int rc;

    if ((rc = bench_query_text(q->sql, c->table, sql, sizeof(sql))) < 0)
        return rc;
    r = PQexec(c->conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQerrorMessage(c->conn));
        PQclear(r);
        return FQ_EIO;
    }
    for (int row = 0; res && row < PQntuples(r); row++) {
        int nk = (int)q->n_keys;
        for (int i = 0; i < nk; i++)
            cols[i] = PQgetisnull(r, row, i) ? NULL : PQgetvalue(r, row, i);
        key_join(key, sizeof(key), cols, q->n_keys);
        bench_result_add(
            res, key, strtoll(PQgetvalue(r, row, nk), NULL, 10),
            q->has_sum ? strtoll(PQgetvalue(r, row, nk + 1), NULL, 10) : 0);
    }
    PQclear(r);
    return 0;
}

int
bench_cmd_pg(int argc, char **argv)
{
    static const char *const names[] = {"conninfo", "table", NULL};
    const char *vals[2] = {NULL, NULL};
    struct bench_opts o;
    struct pg_ctx c = {0};
    int rc;

    if ((rc = bench_parse_opts(argc, argv, &o, names, vals)) != 0)
        return rc;
    if (!vals[0] || !vals[1]) {
        fprintf(stderr, "fedq-bench pg: --conninfo and --table are required\n");
        return 2;
    }
    c.table = vals[1];
    c.conn = PQconnectdb(vals[0]);
    if (PQstatus(c.conn) != CONNECTION_OK) {
        fprintf(stderr, "fedq-bench pg: %s", PQerrorMessage(c.conn));
        rc = 1;
        goto out;
    }
    for (size_t i = 0; i < bench_n_queries; i++) {
        if (bench_selected(&o, &bench_queries[i]) &&
            bench_measure(&o, "postgres", 2, &bench_queries[i], pg_run, &c) <
                0) {
            rc = 1;
            goto out;
        }
    }
out:
    PQfinish(c.conn);
    return rc;
}
