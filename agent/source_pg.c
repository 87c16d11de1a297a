/*
 * The PostgreSQL row source of the extract builder: the dataset's
 * configured columns, read from its table through libpq.
 *
 * The rows stream: a server-side cursor in one REPEATABLE READ, READ ONLY
 * transaction (one snapshot, however long the copy takes) is fetched
 * BATCH rows at a time, so ten million rows cost one batch of memory. The
 * values come as text and are typed by the column's PostgreSQL type:
 *   int2, int4, int8, bool        AG_V_INT
 *   float4, float8, numeric       AG_V_REAL
 *   text, varchar, char, name     AG_V_TEXT
 *   date                          AG_V_TEXT, 'YYYY-MM-DD' (datestyle ISO)
 *   NULL                          AG_V_NULL
 * Any other type fails at open, naming the column and the type. Messages
 * name the dataset and table, never the connection string's password.
 */
#include "fq/compat.h"
#include "fq/buf.h"
#include "fq/error.h"
#include "extract.h"
#include "pushdown.h"

#include <libpq-fe.h>

#define BATCH   "8192"      /* rows per FETCH */
#define SQL_MAX (64 * 1024) /* the SELECT of every configured column */
#define CURSOR  "fq_rows"

/* PostgreSQL type OIDs (pg_type.dat; stable across versions). */
enum {
    OID_BOOL = 16,
    OID_NAME = 19,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_TEXT = 25,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_BPCHAR = 1042,
    OID_VARCHAR = 1043,
    OID_DATE = 1082,
    OID_NUMERIC = 1700,
};

struct pg_source {
    const struct ag_dataset_conf *d;
    PGconn *conn;
    PGresult *batch; /* the rows fetched last; NULL before the first */
    int next_row, n_rows;
    uint64_t rows_read;
    bool done;
    int *kinds; /* malloc'd: per column, the ag_value kind it yields */
};

static int
value_kind(Oid type)
{
    switch (type) {
    case OID_BOOL:
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
        return AG_V_INT;
    case OID_FLOAT4:
    case OID_FLOAT8:
    case OID_NUMERIC:
        return AG_V_REAL;
    case OID_NAME:
    case OID_TEXT:
    case OID_BPCHAR:
    case OID_VARCHAR:
    case OID_DATE:
        return AG_V_TEXT;
    default:
        return -1;
    }
}

/* The failure of a command on the source, without its SQL text. */
static int
source_error(const struct pg_source *s, const PGresult *res, const char *what,
             char *err, size_t errlen)
{
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (!msg)
        msg = PQerrorMessage(s->conn);
    snprintf(err, errlen, "dataset '%s': PostgreSQL table '%s': %s: %.*s",
             s->d->name, s->d->source.table, what, (int)strcspn(msg, "\n"),
             msg);
    return FQ_EIO;
}

/* Runs a command that returns no rows. */
static int
command(struct pg_source *s, const char *sql, const char *what, char *err,
        size_t errlen)
{
    PGresult *res = PQexec(s->conn, sql);
    int rc = 0;

    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = source_error(s, res, what, err, errlen);
    PQclear(res);
    return rc;
}

/* "DECLARE fq_rows ... FOR SELECT "c1", "c2", ... FROM "table"". */
static int
declare_sql(const struct ag_dataset_conf *d, struct fq_buf *b)
{
    int rc =
        fq_buf_append_str(b, "DECLARE " CURSOR " NO SCROLL CURSOR FOR SELECT ");
    for (size_t i = 0; rc == 0 && i < d->n_columns; i++) {
        if (i)
            rc = fq_buf_append_str(b, ", ");
        if (rc == 0)
            rc = ag__pg_quote(b, d->columns[i].name);
    }
    if (rc == 0)
        rc = fq_buf_append_str(b, " FROM ");
    return rc ? rc : ag__pg_quote(b, d->source.table);
}

/* The next batch into s->batch; s->done when the cursor is exhausted. */
static int
fetch(struct pg_source *s, char *err, size_t errlen)
{
    PQclear(s->batch);
    s->batch = PQexec(s->conn, "FETCH FORWARD " BATCH " FROM " CURSOR);
    s->next_row = 0;
    s->n_rows = 0;
    if (PQresultStatus(s->batch) != PGRES_TUPLES_OK)
        return source_error(s, s->batch, "cannot read", err, errlen);
    s->n_rows = PQntuples(s->batch);
    s->done = s->n_rows == 0;
    return 0;
}

/* Maps each result column's type to the kind of value it yields. */
static int
check_types(struct pg_source *s, char *err, size_t errlen)
{
    const struct ag_dataset_conf *d = s->d;

    if ((size_t)PQnfields(s->batch) != d->n_columns) {
        snprintf(err, errlen,
                 "dataset '%s': PostgreSQL table '%s' gave %d "
                 "columns, expected %zu",
                 d->name, d->source.table, PQnfields(s->batch), d->n_columns);
        return FQ_EIO;
    }
    for (size_t i = 0; i < d->n_columns; i++) {
        Oid t = PQftype(s->batch, (int)i);
        if ((s->kinds[i] = value_kind(t)) >= 0)
            continue;
        snprintf(err, errlen,
                 "dataset '%s': PostgreSQL table '%s': column '%s' has a "
                 "type fedq cannot read (type oid %u); cast it in a view",
                 d->name, d->source.table, d->columns[i].name, (unsigned)t);
        return FQ_EINVAL;
    }
    return 0;
}

static int
parse_value(struct pg_source *s, int row, int col, struct ag_value *v,
            char *err, size_t errlen)
{
    const char *text = PQgetvalue(s->batch, row, col);
    char *end = NULL;

    memset(v, 0, sizeof(*v));
    if (PQgetisnull(s->batch, row, col))
        return 0; /* AG_V_NULL */
    v->kind = s->kinds[col];
    errno = 0;
    if (v->kind == AG_V_TEXT) {
        v->s = text;
        v->len = (size_t)PQgetlength(s->batch, row, col);
        return 0;
    }
    if (v->kind == AG_V_INT && (text[0] == 't' || text[0] == 'f') && !text[1]) {
        v->i = text[0] == 't'; /* bool */
        return 0;
    }
    if (v->kind == AG_V_INT)
        v->i = strtoll(text, &end, 10);
    else
        v->d = strtod(text, &end);
    if (end != text && !*end && errno != ERANGE)
        return 0;
    snprintf(err, errlen,
             "dataset '%s': PostgreSQL table '%s': row %" PRIu64
             ", column '%s': unreadable value",
             s->d->name, s->d->source.table, s->rows_read + 1,
             s->d->columns[col].name);
    return FQ_EINVAL;
}

static int
pg_next(void *self, struct ag_value *vals, char *err, size_t errlen)
{
    struct pg_source *s = self;
    int rc;

    if (s->next_row == s->n_rows && !s->done &&
        (rc = fetch(s, err, errlen)) < 0)
        return rc;
    if (s->done)
        return 0;
    for (size_t i = 0; i < s->d->n_columns; i++) {
        if ((rc = parse_value(s, s->next_row, (int)i, &vals[i], err, errlen)) <
            0)
            return rc;
    }
    s->next_row++;
    s->rows_read++;
    return 1;
}

static void
pg_close(void *self)
{
    struct pg_source *s = self;

    if (!s)
        return;
    PQclear(s->batch);
    PQfinish(s->conn); /* ends the read-only transaction with it */
    free(s->kinds);
    free(s);
}

/* The transaction, the cursor and its first batch (which carries the
 * column types, even when the table is empty). */
static int
start(struct pg_source *s, char *err, size_t errlen)
{
    struct fq_buf sql;
    int rc;

    fq_buf_init(&sql, SQL_MAX);
    if ((rc = command(s,
                      "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; "
                      "SET LOCAL datestyle = 'ISO, YMD'; "
                      "SET LOCAL extra_float_digits = 3",
                      "cannot start a read-only transaction", err, errlen)) < 0)
        goto out;
    if ((rc = declare_sql(s->d, &sql)) < 0) {
        snprintf(err, errlen, "dataset '%s': too many columns to read",
                 s->d->name);
        goto out;
    }
    if ((rc = command(s, fq_buf_str(&sql), "cannot read", err, errlen)) < 0 ||
        (rc = fetch(s, err, errlen)) < 0)
        goto out;
    rc = check_types(s, err, errlen);
out:
    fq_buf_release(&sql);
    return rc;
}

int
ag_source_pg_open(const struct ag_dataset_conf *d, struct ag_row_source *ret,
                  char *err, size_t errlen)
{
    struct pg_source *s = calloc(1, sizeof(*s));
    int rc;

    if (!s || !(s->kinds = calloc(d->n_columns + 1, sizeof(*s->kinds)))) {
        snprintf(err, errlen, "dataset '%s': out of memory", d->name);
        rc = FQ_ENOMEM;
        goto fail;
    }
    s->d = d;
    if (!d->source.postgres || !d->source.table) {
        snprintf(err, errlen, "dataset '%s': no postgres source", d->name);
        rc = FQ_EINVAL;
        goto fail;
    }
    if ((rc = ag__pg_connect(d, &s->conn, err, errlen)) < 0 ||
        (rc = start(s, err, errlen)) < 0)
        goto fail;
    *ret = (struct ag_row_source){s, pg_next, pg_close};
    return 0;
fail:
    pg_close(s);
    return rc;
}
