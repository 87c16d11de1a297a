/*
 * A row source over a SQLite table: the dataset's configured columns, in
 * configuration order, read through one read-only statement. SQLite's
 * storage classes map one to one onto ag_value kinds, so the builder sees
 * each value exactly as the SQLite path compares it (a BLOB, which no
 * configured type can hold, is refused here).
 */
#include "fq/compat.h"
#include "fq/buf.h"
#include "fq/error.h"
#include "extract.h"

#include <sqlite3.h>

#define SQL_MAX (64 * 1024)

struct sqlite_src {
    const struct ag_dataset_conf *d;
    sqlite3 *db;
    sqlite3_stmt *st;
    uint64_t row; /* rows returned so far */
};

static int
sqlite_next(void *self, struct ag_value *vals, char *err, size_t errlen)
{
    struct sqlite_src *s = self;
    int step = sqlite3_step(s->st);

    if (step == SQLITE_DONE)
        return 0;
    if (step != SQLITE_ROW) {
        snprintf(err, errlen, "'%s': table '%s', row %" PRIu64 ": %s",
                 s->d->source.sqlite, s->d->source.table, s->row + 1,
                 sqlite3_errmsg(s->db));
        return FQ_EIO;
    }
    s->row++;
    for (size_t i = 0; i < s->d->n_columns; i++) {
        struct ag_value *v = &vals[i];
        int col = (int)i;
        switch (sqlite3_column_type(s->st, col)) {
        case SQLITE_NULL:
            v->kind = AG_V_NULL;
            break;
        case SQLITE_INTEGER:
            v->kind = AG_V_INT;
            v->i = sqlite3_column_int64(s->st, col);
            break;
        case SQLITE_FLOAT:
            v->kind = AG_V_REAL;
            v->d = sqlite3_column_double(s->st, col);
            break;
        case SQLITE_TEXT:
            v->kind = AG_V_TEXT;
            v->s = (const char *)sqlite3_column_text(s->st, col);
            v->len = (size_t)sqlite3_column_bytes(s->st, col);
            if (!v->s)
                goto nomem;
            break;
        default:
            snprintf(err, errlen,
                     "'%s': table '%s', row %" PRIu64 ", column '%s': a BLOB "
                     "value, which no column type holds",
                     s->d->source.sqlite, s->d->source.table, s->row,
                     s->d->columns[i].name);
            return FQ_EINVAL;
        }
    }
    return 1;
nomem:
    snprintf(err, errlen, "'%s': out of memory", s->d->source.sqlite);
    return FQ_ENOMEM;
}

static void
sqlite_close(void *self)
{
    struct sqlite_src *s = self;

    if (!s)
        return;
    sqlite3_finalize(s->st);
    sqlite3_close(s->db);
    free(s);
}

/* SELECT "c1", "c2", ... FROM "table": the names are checked identifiers
 * (agent_config.c), quoted so that none is read as a keyword. */
static int
select_sql(const struct ag_dataset_conf *d, struct fq_buf *sql)
{
    int rc = fq_buf_append_str(sql, "SELECT ");

    for (size_t i = 0; i < d->n_columns && !rc; i++)
        rc = fq_buf_printf(sql, "%s\"%s\"", i ? ", " : "", d->columns[i].name);
    if (!rc)
        rc = fq_buf_printf(sql, " FROM \"%s\"", d->source.table);
    return rc;
}

int
ag_source_sqlite_open(const struct ag_dataset_conf *d,
                      struct ag_row_source *ret, char *err, size_t errlen)
{
    struct sqlite_src *s = calloc(1, sizeof(*s));
    struct fq_buf sql;
    int rc = FQ_ENOMEM;

    fq_buf_init(&sql, SQL_MAX);
    if (!s || !d->source.sqlite || !d->source.table) {
        snprintf(err, errlen, "dataset '%s': %s", d->name,
                 s ? "not a SQLite source" : "out of memory");
        rc = s ? FQ_EINVAL : FQ_ENOMEM;
        goto out;
    }
    s->d = d;
    if (sqlite3_open_v2(d->source.sqlite, &s->db,
                        SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open SQLite file '%s': %s",
                 d->source.sqlite,
                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
        rc = FQ_EIO;
        goto out;
    }
    if ((rc = select_sql(d, &sql)))
        goto out;
    if (sqlite3_prepare_v2(s->db, fq_buf_str(&sql), -1, &s->st, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "'%s': cannot read table '%s': %s",
                 d->source.sqlite, d->source.table, sqlite3_errmsg(s->db));
        rc = FQ_EIO;
        goto out;
    }
    *ret = (struct ag_row_source){s, sqlite_next, sqlite_close};
    s = NULL;
out:
    if (rc == FQ_ENOMEM || rc == FQ_ETOOBIG)
        snprintf(err, errlen, "dataset '%s': out of memory", d->name);
    fq_buf_release(&sql);
    sqlite_close(s);
    return rc;
}
