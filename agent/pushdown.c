/*
 * Pushdown: for a dataset whose records stay in the agency's PostgreSQL
 * (engine: pushdown), the checked plan compiles to one parameterised
 * statement that runs there, and the rows that come back are the same
 * partial aggregates execute.c gives on SQLite. Never a record.
 *
 * The statement: identifiers only from the catalog, quoted; every literal
 * of the plan a $n parameter sent as text (int8, float8, or untyped text
 * that takes the column's type); text compared for order with COLLATE "C",
 * which is byte order like SQLite's BINARY. It runs in a READ ONLY
 * transaction with a statement timeout, in single-row mode so that a query
 * of too many groups stops at max_groups + 1 instead of filling memory.
 *
 *   SELECT keys, COUNT(*), COUNT(DISTINCT contributor), aggregates...,
 *          NULL AS fq_bin_0, ...                (QUANTILE only)
 *   FROM (SELECT *, m - AVG(m) OVER (PARTITION BY keys) AS fq_dev_I
 *         FROM table WHERE filter) AS fq_t      (VAR, STDDEV)
 *   GROUP BY keys
 *   UNION ALL SELECT keys, COUNT(*), NULL, ..., fq_bin_J   (per QUANTILE
 *   FROM (SELECT *, <sketch bin of m> AS fq_bin_J           column J)
 *         FROM table WHERE filter) AS fq_b
 *   GROUP BY keys, fq_bin_J
 *   ORDER BY keys, fq_bin_0 NULLS FIRST, ...    (QUANTILE only)
 *
 * VAR and STDDEV: M2 sums squared deviations from the group's mean (a
 * window), two passes as on SQLite; only (n, mean, M2) leave. QUANTILE:
 * the sketch's bin of each value is computed in SQL with the integer
 * arithmetic of fq_sketch_bin and counted per (group, bin) by a branch of
 * its own (so that no other aggregate is computed per bin); the ORDER BY
 * brings each group's row first with its bin rows right behind it, bins
 * increasing.
 *
 * Connections are kept in a small pool per connection string: a query
 * costs one round trip more than its statement, not a new backend.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/buf.h"
#include "fq/error.h"
#include "fq/plan.h"
#include "cellkey.h"
#include "cellstats.h"
#include "engine.h"
#include "ledger.h"
#include "pushdown.h"

#include <pthread.h>

#include <libpq-fe.h>

#include "fedq/v1/agent.pb-c.h"

#define SQL_MAX           (256 * 1024)
#define STATEMENT_TIMEOUT "30s"
#define CONNECT_TIMEOUT   "10"
#define POOL_MAX          8 /* idle connections kept, all datasets together */
#define OID_INT8          20
#define OID_FLOAT8        701

/* READ ONLY: a pushed-down query can never write, whatever the role may
 * do. REPEATABLE READ: the answer and its disclosure fields (two more
 * statements) see one snapshot. Dates print as YYYY-MM-DD; floats print
 * exactly. */
#define BEGIN_SQL                                             \
    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "       \
    "SET LOCAL statement_timeout = '" STATEMENT_TIMEOUT "'; " \
    "SET LOCAL datestyle = 'ISO, YMD'; SET LOCAL extra_float_digits = 3"

/* ---- connections --------------------------------------------------------- */

/* Replaces every occurrence of secret in s (in place) with '*'. */
static void
redact(char *s, const char *secret)
{
    size_t n = secret ? strlen(secret) : 0;

    for (char *p = s; n && (p = strstr(p, secret)); p += n)
        memset(p, '*', n);
}

/* The first line of libpq's message, after "... failed: " if present. */
static void
connect_reason(const PGconn *conn, char *out, size_t outlen)
{
    const char *m = conn ? PQerrorMessage(conn) : "out of memory";
    const char *f = strstr(m, "failed: ");
    size_t n;

    if (f)
        m = f + strlen("failed: ");
    n = strcspn(m, "\n");
    snprintf(out, outlen, "%.*s", (int)n, m);
}

static const char *
or_unknown(const char *s)
{
    return s && *s ? s : "?";
}

int
ag__pg_connect(const struct ag_dataset_conf *d, PGconn **ret, char *err,
               size_t errlen)
{
    /* Keywords apply in order: the connection string (expanded from
     * dbname) overrides our defaults before it. */
    const char *const keys[] = {"connect_timeout", "application_name",
                                "client_encoding", "dbname", NULL};
    const char *const vals[] = {CONNECT_TIMEOUT, "fedq-agent", "UTF8",
                                d->source.postgres, NULL};
    char *perr = NULL, reason[256];
    PQconninfoOption *opts = PQconninfoParse(d->source.postgres, &perr);
    bool parsed = opts != NULL;

    PQconninfoFree(opts);
    /* libpq's parse errors quote the string, which may hold a password. */
    if (!parsed) {
        PQfreemem(perr);
        snprintf(err, errlen,
                 "dataset '%s': the postgres connection string is malformed",
                 d->name);
        return FQ_EINVAL;
    }
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (conn && PQstatus(conn) == CONNECTION_OK) {
        *ret = conn;
        return 0;
    }
    connect_reason(conn, reason, sizeof(reason));
    snprintf(err, errlen,
             "dataset '%s': cannot connect to its PostgreSQL database "
             "(host %s, port %s, database %s): %s",
             d->name, or_unknown(PQhost(conn)), or_unknown(PQport(conn)),
             or_unknown(PQdb(conn)), reason);
    if (conn)
        redact(err, PQpass(conn));
    PQfinish(conn);
    return conn ? FQ_EUNAVAIL : FQ_ENOMEM;
}

int
ag__pg_quote(struct fq_buf *b, const char *name)
{
    int rc = fq_buf_append_str(b, "\"");
    for (const char *p = name; rc == 0 && *p; p++)
        rc = *p == '"' ? fq_buf_append_str(b, "\"\"") : fq_buf_append(b, p, 1);
    return rc ? rc : fq_buf_append_str(b, "\"");
}

/* Idle connections, by connection string (the dataset's). */
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pool_entry {
    char *conninfo; /* malloc'd */
    PGconn *conn;
} pool[POOL_MAX];
static size_t pool_n;

/* An idle connection to conninfo, the caller's; or NULL. */
static PGconn *
pool_take(const char *conninfo)
{
    PGconn *conn = NULL;

    pthread_mutex_lock(&pool_mu);
    for (size_t i = pool_n; i-- > 0;) {
        if (strcmp(pool[i].conninfo, conninfo) != 0)
            continue;
        conn = pool[i].conn;
        free(pool[i].conninfo);
        pool[i] = pool[--pool_n];
        break;
    }
    pthread_mutex_unlock(&pool_mu);
    return conn;
}

/* Keeps conn for the next query if it is healthy and idle; the oldest
 * idle connection goes when the pool is full. Takes conn. */
static void
pool_give(const char *conninfo, PGconn *conn)
{
    char *key = strdup(conninfo);
    PGconn *drop = NULL;

    if (!key || PQstatus(conn) != CONNECTION_OK ||
        PQtransactionStatus(conn) != PQTRANS_IDLE) {
        free(key);
        PQfinish(conn);
        return;
    }
    pthread_mutex_lock(&pool_mu);
    if (pool_n == POOL_MAX) {
        drop = pool[0].conn;
        free(pool[0].conninfo);
        memmove(pool, pool + 1, (POOL_MAX - 1) * sizeof(pool[0]));
        pool_n--;
    }
    pool[pool_n++] = (struct pool_entry){key, conn};
    pthread_mutex_unlock(&pool_mu);
    PQfinish(drop);
}

static bool
begin(PGconn *conn)
{
    PGresult *r = PQexec(conn, BEGIN_SQL);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok;
}

/* A connection inside a fresh read-only transaction: a pooled one if it
 * still works, else a new one. */
static int
session_open(const struct ag_dataset_conf *d, PGconn **ret, char *err,
             size_t errlen)
{
    PGconn *conn = pool_take(d->source.postgres);
    int rc;

    if (conn && begin(conn)) {
        *ret = conn;
        return 0;
    }
    PQfinish(conn); /* the server restarted, or the link broke */
    if ((rc = ag__pg_connect(d, &conn, err, errlen)) < 0)
        return rc;
    if (!begin(conn)) {
        snprintf(err, errlen,
                 "dataset '%s': the agency's database refused a read-only "
                 "transaction",
                 d->name);
        PQfinish(conn);
        return FQ_EIO;
    }
    *ret = conn;
    return 0;
}

static void
session_close(const struct ag_dataset_conf *d, PGconn *conn)
{
    PGresult *r = PQexec(conn, "ROLLBACK");
    PQclear(r);
    pool_give(d->source.postgres, conn);
}

/* ---- compiling ----------------------------------------------------------- */

struct pd_sql {
    struct fq_buf sql;
    struct fq_arena *arena;
    const Fedq__V1__Dataset *ds;
    const Fedq__V1__Literal **binds; /* $1, $2, ... */
    size_t n_binds, cap_binds;
    /* QUANTILE: the measures sketched, bin column fq_bin_J for each */
    const char *sketched[FQ_PLAN_MAX_AGGREGATES];
    size_t n_sketched;
};

static int
ident(struct pd_sql *c, const char *name)
{
    return ag__pg_quote(&c->sql, name);
}

/* arr, of n entries of size bytes and room for *cap, with room for one
 * more: arr itself, or a copy twice as large in a (*cap updated). NULL if
 * out of memory. */
static void *
reserve(struct fq_arena *a, void *arr, size_t n, size_t *cap, size_t size)
{
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p;

    if (n < *cap)
        return arr;
    if (!(p = fq_arena_alloc(a, ncap * size)))
        return NULL;
    if (n)
        memcpy(p, arr, n * size);
    *cap = ncap;
    return p;
}

static int
param(struct pd_sql *c, const Fedq__V1__Literal *lit)
{
    const Fedq__V1__Literal **b =
        reserve(c->arena, c->binds, c->n_binds, &c->cap_binds, sizeof(*b));
    if (!b)
        return FQ_ENOMEM;
    c->binds = b;
    c->binds[c->n_binds++] = lit;
    return fq_buf_printf(&c->sql, "$%zu", c->n_binds);
}

static bool
text_like(const struct pd_sql *c, const char *column)
{
    const Fedq__V1__Column *col = fq_catalog_column(c->ds, column);
    return col && col->type != FEDQ__V1__VALUE_TYPE__VALUE_TYPE_INTEGER &&
           col->type != FEDQ__V1__VALUE_TYPE__VALUE_TYPE_DECIMAL;
}

/* A column as an operand of an order comparison: text in byte order (and a
 * column the agency keeps as a date read as its ISO text). */
static int
ordered(struct pd_sql *c, const char *column)
{
    int rc;
    if (!text_like(c, column))
        return ident(c, column);
    if ((rc = fq_buf_append_str(&c->sql, "(")) < 0 ||
        (rc = ident(c, column)) < 0)
        return rc;
    return fq_buf_append_str(&c->sql, ")::text COLLATE \"C\"");
}

static const char *
op_sql(Fedq__V1__CompareOp op)
{
    static const char *const ops[] = {"?",    " = ", " <> ", " < ",
                                      " <= ", " > ", " >= "};
    return (size_t)op < FQ_ARRAY_LEN(ops) ? ops[op] : "?";
}

static int predicate(struct pd_sql *c, const Fedq__V1__Predicate *p);

/* "(t1 AND t2 ...)" or "(t1 OR t2 ...)". */
static int
junction(struct pd_sql *c, Fedq__V1__Predicate *const *terms, size_t n,
         const char *op)
{
    int rc = fq_buf_append_str(&c->sql, "(");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i)
            rc = fq_buf_append_str(&c->sql, op);
        if (rc == 0)
            rc = predicate(c, terms[i]);
    }
    return rc ? rc : fq_buf_append_str(&c->sql, ")");
}

static int
in_list(struct pd_sql *c, const Fedq__V1__InList *in)
{
    int rc;
    if (in->n_values == 0)
        return fq_buf_append_str(&c->sql, "FALSE");
    if ((rc = ident(c, in->column)) < 0 ||
        (rc = fq_buf_append_str(&c->sql, " IN (")) < 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < in->n_values; i++) {
        if (i)
            rc = fq_buf_append_str(&c->sql, ", ");
        if (rc == 0)
            rc = param(c, in->values[i]);
    }
    return rc ? rc : fq_buf_append_str(&c->sql, ")");
}

static int
compare(struct pd_sql *c, const Fedq__V1__Comparison *cmp)
{
    bool eq = cmp->op == FEDQ__V1__COMPARE_OP__COMPARE_OP_EQ ||
              cmp->op == FEDQ__V1__COMPARE_OP__COMPARE_OP_NE;
    int rc = eq ? ident(c, cmp->column) : ordered(c, cmp->column);
    if (rc == 0)
        rc = fq_buf_append_str(&c->sql, op_sql(cmp->op));
    return rc ? rc : param(c, cmp->value);
}

static int
between(struct pd_sql *c, const Fedq__V1__Between *b)
{
    int rc;
    if ((rc = ordered(c, b->column)) < 0 ||
        (rc = fq_buf_append_str(&c->sql, " BETWEEN ")) < 0 ||
        (rc = param(c, b->low)) < 0 ||
        (rc = fq_buf_append_str(&c->sql, " AND ")) < 0)
        return rc;
    return param(c, b->high);
}

static int
predicate(struct pd_sql *c, const Fedq__V1__Predicate *p)
{
    int rc;

    switch (p->node_case) {
    case FEDQ__V1__PREDICATE__NODE_ALL:
        return junction(c, p->all->terms, p->all->n_terms, " AND ");
    case FEDQ__V1__PREDICATE__NODE_ANY:
        return junction(c, p->any->terms, p->any->n_terms, " OR ");
    case FEDQ__V1__PREDICATE__NODE_NOT:
        if ((rc = fq_buf_append_str(&c->sql, "NOT (")) < 0 ||
            (rc = predicate(c, p->not_->term)) < 0)
            return rc;
        return fq_buf_append_str(&c->sql, ")");
    case FEDQ__V1__PREDICATE__NODE_IS_NULL:
        if ((rc = ident(c, p->is_null->column)) < 0)
            return rc;
        return fq_buf_append_str(&c->sql, p->is_null->negated ? " IS NOT NULL"
                                                              : " IS NULL");
    case FEDQ__V1__PREDICATE__NODE_COMPARE:
        return compare(c, p->compare);
    case FEDQ__V1__PREDICATE__NODE_BETWEEN:
        return between(c, p->between);
    case FEDQ__V1__PREDICATE__NODE_IN:
        return in_list(c, p->in);
    default:
        return FQ_EINVAL; /* fq_plan_check refuses it first */
    }
}

/* "m >= $e_b AND m < $e_b+1" for HISTOGRAM bin b, open at both ends. */
static int
bin_test(struct pd_sql *c, const Fedq__V1__Aggregate *ag, size_t b)
{
    int rc = 0;
    if (ag->n_edges == 0) {
        if ((rc = ident(c, ag->column)) < 0)
            return rc;
        return fq_buf_append_str(&c->sql, " IS NOT NULL");
    }
    if (b > 0 && (rc = ident(c, ag->column)) == 0 &&
        (rc = fq_buf_append_str(&c->sql, " >= ")) == 0)
        rc = param(c, ag->edges[b - 1]);
    if (rc == 0 && b > 0 && b < ag->n_edges)
        rc = fq_buf_append_str(&c->sql, " AND ");
    if (rc == 0 && b < ag->n_edges && (rc = ident(c, ag->column)) == 0 &&
        (rc = fq_buf_append_str(&c->sql, " < ")) == 0)
        rc = param(c, ag->edges[b]);
    return rc;
}

/* ", COUNT(*) FILTER (WHERE <bin b>)": the values in HISTOGRAM bin b. */
static int
bin_count(struct pd_sql *c, const Fedq__V1__Aggregate *ag, size_t b)
{
    int rc = fq_buf_append_str(&c->sql, ", COUNT(*) FILTER (WHERE ");
    if (rc == 0)
        rc = bin_test(c, ag, b);
    return rc ? rc : fq_buf_append_str(&c->sql, ")");
}

/* Per bin: its values, then its distinct contributors (without a
 * contributor every record is one: the values again, as on SQLite). */
static int
histogram(struct pd_sql *c, const Fedq__V1__Aggregate *ag,
          const char *contributor)
{
    int rc = 0;
    for (size_t b = 0; rc == 0 && b <= ag->n_edges; b++) {
        if ((rc = bin_count(c, ag, b)) < 0)
            break;
        if (!contributor) {
            rc = bin_count(c, ag, b);
            continue;
        }
        if ((rc = fq_buf_append_str(&c->sql, ", COUNT(DISTINCT ")) < 0 ||
            (rc = ident(c, contributor)) < 0 ||
            (rc = fq_buf_append_str(&c->sql, ") FILTER (WHERE ")) < 0 ||
            (rc = bin_test(c, ag, b)) < 0)
            break;
        rc = fq_buf_append_str(&c->sql, ")");
    }
    return rc;
}

/* ", FN(m)" with m quoted; pre and post wrap m ("COUNT(", ")"). */
static int
call(struct pd_sql *c, const char *pre, const char *m, const char *post)
{
    int rc = fq_buf_append_str(&c->sql, pre);
    if (rc == 0)
        rc = ident(c, m);
    return rc ? rc : fq_buf_append_str(&c->sql, post);
}

/*
 * The result columns of aggregate i, read back by read_state():
 *   COUNT(*)          none (the group's record count)
 *   COUNT(DISTINCT c) COUNT(DISTINCT c)
 *   SUM, AVG          COUNT(m), SUM(m)
 *   VAR, STDDEV       COUNT(m), AVG(m), SUM(d * d), d from the window
 *   HISTOGRAM         per bin: values, distinct contributors
 *   QUANTILE          none (the bin rows)
 */
static int
aggregate(struct pd_sql *c, const Fedq__V1__Aggregate *ag, size_t i,
          const char *contributor)
{
    const char *m = ag->column;
    int rc;

    switch (ag->kind) {
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT_DISTINCT:
        return call(c, ", COUNT(DISTINCT ", m, ")");
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_AVG:
        if ((rc = call(c, ", COUNT(", m, ")")) < 0)
            return rc;
        return call(c, ", SUM(", m, ")");
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_VAR:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_STDDEV:
        if ((rc = call(c, ", COUNT(", m, ")")) < 0 ||
            (rc = call(c, ", AVG(", m, ")")) < 0)
            return rc;
        return fq_buf_printf(&c->sql, ", SUM(\"fq_dev_%zu\" * \"fq_dev_%zu\")",
                             i, i);
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM:
        return histogram(c, ag, contributor);
    default:
        return 0; /* COUNT(*), QUANTILE */
    }
}

static bool
is_var(const Fedq__V1__Aggregate *ag)
{
    return ag->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_VAR ||
           ag->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_STDDEV;
}

/* The bin column index of sketched measure m, added if new. */
static size_t
sketch_slot(struct pd_sql *c, const char *m)
{
    for (size_t j = 0; j < c->n_sketched; j++) {
        if (strcmp(c->sketched[j], m) == 0)
            return j;
    }
    c->sketched[c->n_sketched] = m;
    return c->n_sketched++;
}

static int
list_sketched(struct pd_sql *c, const Fedq__V1__Plan *plan)
{
    for (size_t i = 0; i < plan->n_aggregates; i++) {
        const Fedq__V1__Aggregate *ag = plan->aggregates[i];
        if (ag->kind != FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE)
            continue;
        if (c->n_sketched == FQ_ARRAY_LEN(c->sketched))
            return FQ_ETOOBIG;
        sketch_slot(c, ag->column);
    }
    return 0;
}

/*
 * fq_sketch_bin(min, w, used, v) in SQL: 0 at or below min, used - 1 from
 * top = min + (used - 1) * w on, else (v - min) / w; -1 for NULL. top is
 * at most the column's max, and the configuration keeps max - min below
 * 2^62, so int8 holds every term.
 */
static int
sketch_bin(struct pd_sql *c, const char *m)
{
    const Fedq__V1__Column *col = fq_catalog_column(c->ds, m);
    int64_t w;
    uint32_t used;
    int rc;

    if (!col || !col->bounds || fq_quantile_sketch(col, &w, &used) < 0)
        return FQ_EINVAL;
    int64_t min = col->bounds->min;
    uint64_t span = (uint64_t)(used - 1) * (uint64_t)w;
    if (span > INT64_MAX)
        return FQ_EINVAL;
    int64_t top = (int64_t)((uint64_t)min + span);
    if ((rc = call(c, ", CASE WHEN ", m, " IS NULL THEN -1")) < 0 ||
        (rc = call(c, " WHEN (", m, ")::int8")) < 0 ||
        (rc = fq_buf_printf(&c->sql, " <= '%" PRId64 "'::int8 THEN 0", min)) <
            0 ||
        (rc = call(c, " WHEN (", m, ")::int8")) < 0 ||
        (rc = fq_buf_printf(&c->sql, " >= '%" PRId64 "'::int8 THEN %" PRIu32,
                            top, used - 1)) < 0 ||
        (rc = call(c, " ELSE ((", m, ")::int8")) < 0)
        return rc;
    return fq_buf_printf(&c->sql, " - '%" PRId64 "'::int8) / %" PRId64 " END",
                         min, w);
}

/* PARTITION BY / GROUP BY / ORDER BY list of the keys, after lead. */
static int
key_list(struct pd_sql *c, const Fedq__V1__Plan *plan, const char *lead)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < plan->n_group_by; i++) {
        if ((rc = fq_buf_append_str(&c->sql, i ? ", " : lead)) == 0)
            rc = ident(c, plan->group_by[i]);
    }
    return rc;
}

static int
where(struct pd_sql *c, const Fedq__V1__Plan *plan)
{
    int rc;
    if (!plan->filter)
        return 0;
    if ((rc = fq_buf_append_str(&c->sql, " WHERE ")) < 0)
        return rc;
    return predicate(c, plan->filter);
}

/* FROM the table, filtered, with each record's deviations from its
 * group's mean (VAR, STDDEV) when the plan needs them. */
static int
from(struct pd_sql *c, const Fedq__V1__Plan *plan, const char *table)
{
    bool dev = false;
    int rc = 0;

    for (size_t i = 0; i < plan->n_aggregates; i++)
        dev = dev || is_var(plan->aggregates[i]);
    if (!dev) {
        if ((rc = fq_buf_append_str(&c->sql, " FROM ")) < 0 ||
            (rc = ident(c, table)) < 0)
            return rc;
        return where(c, plan);
    }
    rc = fq_buf_append_str(&c->sql, " FROM (SELECT *");
    for (size_t i = 0; rc == 0 && i < plan->n_aggregates; i++) {
        const char *m = plan->aggregates[i]->column;
        if (!is_var(plan->aggregates[i]))
            continue;
        if ((rc = call(c, ", (", m, ")::float8 - AVG((")) < 0 ||
            (rc = call(c, "", m, ")::float8) OVER (")) < 0 ||
            (rc = key_list(c, plan, "PARTITION BY ")) < 0)
            break;
        rc = fq_buf_printf(&c->sql, ") AS \"fq_dev_%zu\"", i);
    }
    if (rc < 0 || (rc = fq_buf_append_str(&c->sql, " FROM ")) < 0 ||
        (rc = ident(c, table)) < 0 || (rc = where(c, plan)) < 0)
        return rc;
    return fq_buf_append_str(&c->sql, ") AS \"fq_t\"");
}

/* How many result columns aggregate() gives ag. */
static size_t
aggregate_width(const Fedq__V1__Aggregate *ag)
{
    switch (ag->kind) {
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT_DISTINCT:
        return 1;
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_AVG:
        return 2;
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_VAR:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_STDDEV:
        return 3;
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM:
        return 2 * (ag->n_edges + 1);
    default:
        return 0;
    }
}

/* ", NULL::int8 AS "fq_bin_0", ..., "fq_bin_J", ..." : the bin columns,
 * all NULL but J's (none when only is n_sketched). */
static int
bin_columns(struct pd_sql *c, size_t only)
{
    int rc = 0;
    for (size_t j = 0; rc == 0 && j < c->n_sketched; j++)
        rc = fq_buf_printf(&c->sql,
                           j == only ? ", \"fq_bin_%zu\""
                                     : ", NULL::int8 AS \"fq_bin_%zu\"",
                           j);
    return rc;
}

/* One row per group and value bin of sketched column j: the keys, the
 * values in the bin, NULL for the group row's columns, and the bin. */
static int
bin_rows(struct pd_sql *c, const Fedq__V1__Plan *plan,
         const struct ag_dataset_conf *d, size_t j)
{
    size_t nulls = 1; /* the contributors */
    int rc = fq_buf_append_str(&c->sql, " UNION ALL SELECT ");

    for (size_t i = 0; i < plan->n_aggregates; i++)
        nulls += aggregate_width(plan->aggregates[i]);
    for (size_t i = 0; rc == 0 && i < plan->n_group_by; i++) {
        if ((rc = ident(c, plan->group_by[i])) == 0)
            rc = fq_buf_append_str(&c->sql, ", ");
    }
    if (rc == 0)
        rc = fq_buf_append_str(&c->sql, "COUNT(*)");
    for (size_t i = 0; rc == 0 && i < nulls; i++)
        rc = fq_buf_append_str(&c->sql, ", NULL");
    if (rc < 0 || (rc = bin_columns(c, j)) < 0 ||
        (rc = fq_buf_append_str(&c->sql, " FROM (SELECT *")) < 0 ||
        (rc = sketch_bin(c, c->sketched[j])) < 0 ||
        (rc = fq_buf_printf(&c->sql, " AS \"fq_bin_%zu\" FROM ", j)) < 0 ||
        (rc = ident(c, d->source.table)) < 0 || (rc = where(c, plan)) < 0 ||
        (rc = fq_buf_append_str(&c->sql, ") AS \"fq_b\"")) < 0 ||
        (rc = key_list(c, plan, " GROUP BY ")) < 0)
        return rc;
    return fq_buf_printf(&c->sql, "%s\"fq_bin_%zu\"",
                         plan->n_group_by ? ", " : " GROUP BY ", j);
}

/* A group's bin rows right after its row, bins increasing. */
static int
order_by(struct pd_sql *c, const Fedq__V1__Plan *plan)
{
    int rc = fq_buf_append_str(&c->sql, " ORDER BY ");
    for (size_t i = 0; rc == 0 && i < plan->n_group_by; i++)
        rc = fq_buf_printf(&c->sql, "%zu, ", i + 1);
    for (size_t j = 0; rc == 0 && j < c->n_sketched; j++)
        rc = fq_buf_printf(&c->sql, "%s\"fq_bin_%zu\" NULLS FIRST",
                           j ? ", " : "", j);
    return rc;
}

static int
compile(struct pd_sql *c, const Fedq__V1__Plan *plan,
        const struct ag_dataset_conf *d)
{
    const char *who = d->contributor;
    int rc = list_sketched(c, plan);

    if (rc == 0)
        rc = fq_buf_append_str(&c->sql, "SELECT ");
    for (size_t i = 0; rc == 0 && i < plan->n_group_by; i++) {
        if ((rc = ident(c, plan->group_by[i])) == 0)
            rc = fq_buf_append_str(&c->sql, ", ");
    }
    if (rc == 0)
        rc = who ? call(c, "COUNT(*), COUNT(DISTINCT ", who, ")")
                 : fq_buf_append_str(&c->sql, "COUNT(*), COUNT(*)");
    for (size_t i = 0; rc == 0 && i < plan->n_aggregates; i++)
        rc = aggregate(c, plan->aggregates[i], i, who);
    if (rc < 0 || (rc = bin_columns(c, c->n_sketched)) < 0 ||
        (rc = from(c, plan, d->source.table)) < 0 ||
        (rc = key_list(c, plan, " GROUP BY ")) < 0)
        return rc;
    for (size_t j = 0; rc == 0 && j < c->n_sketched; j++)
        rc = bin_rows(c, plan, d, j);
    return rc || c->n_sketched == 0 ? rc : order_by(c, plan);
}

/* ---- reading the rows ---------------------------------------------------- */

/* One QUANTILE sketch of the current group: bins in increasing order. */
struct pd_sketch {
    uint32_t *bins;
    int64_t *counts;
    size_t n, cap;
    int64_t total;
};

struct pd_cells;
struct pd_members;

struct pd_run {
    const Fedq__V1__Plan *plan;
    const Fedq__V1__Dataset *ds;
    struct pd_sql *c;
    size_t max_groups, cap_groups;
    struct fq_arena *arena;
    Fedq__V1__ExecuteResponse *resp;
    Fedq__V1__PartialGroup *cur; /* the last group row, for its bin rows */
    struct pd_sketch sketches[FQ_PLAN_MAX_AGGREGATES];
    struct pd_cells *cells;     /* the disclosure fields' statements */
    struct pd_members *members; /* the ledger's members statement */
    const struct ag_cell_secret *secret;
    char *err;
    size_t errlen;
};

/* An integer result; a numeric with a zero fraction is one too. 0,
 * FQ_ETOOBIG outside int64, FQ_EPROTO if not an integer. */
static int
parse_int(const char *s, int64_t *ret)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s)
        return FQ_EPROTO;
    if (errno == ERANGE)
        return FQ_ETOOBIG;
    if (*end == '.') {
        while (*++end == '0')
            ;
    }
    if (*end)
        return FQ_EPROTO;
    *ret = v;
    return 0;
}

static int
bad_value(struct pd_run *r)
{
    snprintf(r->err, r->errlen,
             "the agency's database returned a value of an unexpected type");
    return FQ_EIO;
}

/* Integer column col of the row (NULL: 0). */
static int
get_int(struct pd_run *r, const PGresult *res, int col, int64_t *ret)
{
    int rc;
    *ret = 0;
    if (PQgetisnull(res, 0, col))
        return 0;
    if ((rc = parse_int(PQgetvalue(res, 0, col), ret)) == FQ_ETOOBIG) {
        snprintf(r->err, r->errlen, "a sum overflows 64-bit integers");
        return rc;
    }
    return rc < 0 ? bad_value(r) : 0;
}

/* Floating column col of the row (NULL: 0, as SQLite reads it). */
static int
get_double(struct pd_run *r, const PGresult *res, int col, double *ret)
{
    char *end;
    *ret = 0;
    if (PQgetisnull(res, 0, col))
        return 0;
    *ret = strtod(PQgetvalue(res, 0, col), &end);
    return *end ? bad_value(r) : 0;
}

/* Key column i, typed like its catalog column; no value for NULL. */
static Fedq__V1__Literal *
read_key(struct pd_run *r, const PGresult *res, int i, int *rc)
{
    const Fedq__V1__Column *col =
        fq_catalog_column(r->ds, r->plan->group_by[i]);
    Fedq__V1__Literal *l = fq_arena_alloc(r->arena, sizeof(*l));

    if (!l || !col)
        return NULL;
    fedq__v1__literal__init(l);
    if (PQgetisnull(res, 0, i))
        return l;
    if (col->type == FEDQ__V1__VALUE_TYPE__VALUE_TYPE_INTEGER) {
        l->value_case = FEDQ__V1__LITERAL__VALUE_INT_VALUE;
        if ((*rc = get_int(r, res, i, &l->int_value)) < 0)
            return NULL;
        return l;
    }
    l->value_case = FEDQ__V1__LITERAL__VALUE_TEXT_VALUE;
    l->text_value = fq_arena_strdup(r->arena, PQgetvalue(res, 0, i));
    return l->text_value ? l : NULL;
}

static int
read_bins(struct pd_run *r, const PGresult *res, int *col,
          const Fedq__V1__Aggregate *ag, Fedq__V1__AggregateState *s)
{
    size_t n = ag->n_edges + 1;
    int rc = 0;

    s->bins = fq_arena_alloc(r->arena, n * sizeof(*s->bins));
    s->bin_contributors =
        fq_arena_alloc(r->arena, n * sizeof(*s->bin_contributors));
    if (!s->bins || !s->bin_contributors)
        return FQ_ENOMEM;
    for (size_t b = 0; rc == 0 && b < n; b++) {
        if ((rc = get_int(r, res, (*col)++, &s->bins[b])) == 0)
            rc = get_int(r, res, (*col)++, &s->bin_contributors[b]);
        s->count += s->bins[b];
    }
    s->n_bins = s->n_bin_contributors = n;
    return rc;
}

static int
read_state(struct pd_run *r, const PGresult *res, int *col, int64_t records,
           const Fedq__V1__Aggregate *ag, Fedq__V1__AggregateState *s)
{
    const Fedq__V1__Column *m = fq_catalog_column(r->ds, ag->column);
    int rc;

    switch (ag->kind) {
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT:
        s->count = records;
        return 0;
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT_DISTINCT:
        return get_int(r, res, (*col)++, &s->count);
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_VAR:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_STDDEV:
        if ((rc = get_int(r, res, (*col)++, &s->count)) < 0 ||
            (rc = get_double(r, res, (*col)++, &s->mean)) < 0)
            return rc;
        return get_double(r, res, (*col)++, &s->m2);
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM:
        return read_bins(r, res, col, ag, s);
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE:
        return 0; /* filled from the bin rows */
    default:
        if ((rc = get_int(r, res, (*col)++, &s->count)) < 0)
            return rc;
        if (m && m->type == FEDQ__V1__VALUE_TYPE__VALUE_TYPE_DECIMAL)
            return get_double(r, res, (*col)++, &s->decimal_sum);
        return get_int(r, res, (*col)++, &s->int_sum);
    }
}

static Fedq__V1__PartialGroup *
new_group(struct pd_run *r)
{
    Fedq__V1__PartialGroup *g = fq_arena_alloc(r->arena, sizeof(*g));
    const Fedq__V1__Plan *plan = r->plan;

    if (!g)
        return NULL;
    fedq__v1__partial_group__init(g);
    g->n_key = plan->n_group_by;
    g->key = fq_arena_alloc(r->arena, (g->n_key + 1) * sizeof(*g->key));
    g->n_aggregates = plan->n_aggregates;
    g->aggregates = fq_arena_alloc(r->arena, (g->n_aggregates + 1) *
                                                 sizeof(*g->aggregates));
    if (!g->key || !g->aggregates)
        return NULL;
    for (size_t i = 0; i < g->n_aggregates; i++) {
        Fedq__V1__AggregateState *s = fq_arena_alloc(r->arena, sizeof(*s));
        if (!(g->aggregates[i] = s))
            return NULL;
        fedq__v1__aggregate_state__init(s);
    }
    return g;
}

/* The row of a group: its key, counts and aggregate states. */
static int
read_group(struct pd_run *r, const PGresult *res, Fedq__V1__PartialGroup **ret)
{
    Fedq__V1__PartialGroup *g = new_group(r);
    int k = (int)r->plan->n_group_by, col = k + 2, rc = 0;

    if (!g)
        return FQ_ENOMEM;
    for (int i = 0; i < k; i++) {
        if (!(g->key[i] = read_key(r, res, i, &rc)))
            return rc < 0 ? rc : FQ_ENOMEM;
    }
    if ((rc = get_int(r, res, k, &g->records)) < 0 ||
        (rc = get_int(r, res, k + 1, &g->contributors)) < 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < g->n_aggregates; i++)
        rc = read_state(r, res, &col, g->records, r->plan->aggregates[i],
                        g->aggregates[i]);
    if (rc == 0)
        *ret = g;
    return rc;
}

/* Hands the current group's sketches to its QUANTILE states. */
static void
finish_group(struct pd_run *r)
{
    Fedq__V1__PartialGroup *g = r->cur;

    for (size_t i = 0; g && i < r->plan->n_aggregates; i++) {
        const Fedq__V1__Aggregate *ag = r->plan->aggregates[i];
        if (ag->kind != FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE)
            continue;
        const struct pd_sketch *sk = NULL;
        for (size_t j = 0; j < r->c->n_sketched; j++) {
            if (strcmp(r->c->sketched[j], ag->column) == 0)
                sk = &r->sketches[j];
        }
        Fedq__V1__AggregateState *s = g->aggregates[i];
        if (!sk)
            continue; /* cannot be: compile() listed every QUANTILE */
        s->sketch_bins = sk->bins;
        s->sketch_counts = sk->counts;
        s->n_sketch_bins = s->n_sketch_counts = sk->n;
        s->count = sk->total;
    }
    memset(r->sketches, 0, r->c->n_sketched * sizeof(r->sketches[0]));
    r->cur = NULL;
}

static int
add_group(struct pd_run *r, Fedq__V1__PartialGroup *g)
{
    Fedq__V1__ExecuteResponse *resp = r->resp;

    if (resp->n_groups == r->max_groups) {
        snprintf(r->err, r->errlen, "query produces more than %zu groups",
                 r->max_groups);
        return FQ_ETOOBIG;
    }
    Fedq__V1__PartialGroup **n = reserve(r->arena, resp->groups, resp->n_groups,
                                         &r->cap_groups, sizeof(*n));
    if (!n)
        return FQ_ENOMEM;
    resp->groups = n;
    resp->groups[resp->n_groups++] = g;
    r->cur = g;
    return 0;
}

static int
sketch_push(struct pd_run *r, struct pd_sketch *sk, uint32_t bin, int64_t count)
{
    size_t cap_counts = sk->cap;
    uint32_t *b = reserve(r->arena, sk->bins, sk->n, &sk->cap, sizeof(*b));
    int64_t *c = reserve(r->arena, sk->counts, sk->n, &cap_counts, sizeof(*c));
    if (!b || !c)
        return FQ_ENOMEM;
    sk->bins = b;
    sk->counts = c;
    sk->bins[sk->n] = bin;
    sk->counts[sk->n++] = count;
    sk->total += count;
    return 0;
}

/* Whether key column i of the row is the current group's key i. */
static bool
same_key(struct pd_run *r, const PGresult *res, int i)
{
    const Fedq__V1__Literal *k = r->cur->key[i];
    int64_t v;

    if (PQgetisnull(res, 0, i))
        return k->value_case == FEDQ__V1__LITERAL__VALUE__NOT_SET;
    if (k->value_case == FEDQ__V1__LITERAL__VALUE_INT_VALUE)
        return parse_int(PQgetvalue(res, 0, i), &v) == 0 && v == k->int_value;
    return k->value_case == FEDQ__V1__LITERAL__VALUE_TEXT_VALUE &&
           strcmp(PQgetvalue(res, 0, i), k->text_value) == 0;
}

/* A bin row of sketched column j: (bin, values in it) for the current
 * group, whose row came just before (ORDER BY). */
static int
read_bin_row(struct pd_run *r, const PGresult *res, int bin_col, size_t j)
{
    int64_t bin, count;
    int rc;

    if ((rc = get_int(r, res, bin_col, &bin)) < 0 ||
        (rc = get_int(r, res, (int)r->plan->n_group_by, &count)) < 0)
        return rc;
    if (bin < 0 || count == 0)
        return 0; /* the records where the measure is NULL */
    for (int i = 0; r->cur && i < (int)r->plan->n_group_by; i++) {
        if (!same_key(r, res, i))
            r->cur = NULL;
    }
    if (!r->cur || bin > UINT32_MAX) {
        snprintf(r->err, r->errlen,
                 "the agency's database returned sketch rows out of order");
        return FQ_EIO;
    }
    return sketch_push(r, &r->sketches[j], (uint32_t)bin, count);
}

static int
read_row(struct pd_run *r, const PGresult *res)
{
    int bin_col = PQnfields(res) - (int)r->c->n_sketched;
    Fedq__V1__PartialGroup *g = NULL;
    int rc;

    for (size_t j = 0; j < r->c->n_sketched; j++) {
        if (!PQgetisnull(res, 0, bin_col + (int)j))
            return read_bin_row(r, res, bin_col + (int)j, j);
    }
    finish_group(r);
    if ((rc = read_group(r, res, &g)) < 0)
        return rc;
    /* An aggregate without GROUP BY gives one row even when no record
     * matches; a group without records does not exist. */
    return g->records == 0 ? 0 : add_group(r, g);
}

/* The failure of a statement, without its SQL text. */
static int
db_error(struct pd_run *r, const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

    if (state && strcmp(state, "22003") == 0) {
        snprintf(r->err, r->errlen, "a sum overflows 64-bit integers");
        return FQ_ETOOBIG;
    }
    if (state && strcmp(state, "57014") == 0) {
        snprintf(r->err, r->errlen,
                 "the agency's database did not answer within %s",
                 STATEMENT_TIMEOUT);
        return FQ_ETIMEDOUT;
    }
    if (!msg) /* libpq's own, e.g. a connection lost */
        msg = PQresultErrorMessage(res);
    snprintf(r->err, r->errlen, "the agency's database failed: %.*s",
             (int)strcspn(msg, "\n"), msg);
    return FQ_EIO;
}

/* Stops the statement on the server: we need no more of its rows. */
static void
cancel(PGconn *conn)
{
    char buf[256];
    PGcancel *cn = PQgetCancel(conn);
    if (cn) {
        PQcancel(cn, buf, sizeof(buf));
        PQfreeCancel(cn);
    }
}

static int
params(struct pd_sql *c, const char ***ret_vals, Oid **ret_types)
{
    const char **vals =
        fq_arena_alloc(c->arena, (c->n_binds + 1) * sizeof(*vals));
    Oid *types = fq_arena_alloc(c->arena, (c->n_binds + 1) * sizeof(*types));

    if (!vals || !types)
        return FQ_ENOMEM;
    for (size_t i = 0; i < c->n_binds; i++) {
        const Fedq__V1__Literal *l = c->binds[i];
        types[i] = 0; /* text: the type of the column it meets */
        switch (l->value_case) {
        case FEDQ__V1__LITERAL__VALUE_INT_VALUE:
            types[i] = OID_INT8;
            vals[i] = fq_arena_printf(c->arena, "%" PRId64, l->int_value);
            break;
        case FEDQ__V1__LITERAL__VALUE_DECIMAL_VALUE:
            types[i] = OID_FLOAT8;
            vals[i] = fq_arena_printf(c->arena, "%.17g", l->decimal_value);
            break;
        case FEDQ__V1__LITERAL__VALUE_TEXT_VALUE:
            vals[i] = l->text_value;
            break;
        default:
            vals[i] = NULL; /* SQL NULL */
            continue;
        }
        if (!vals[i])
            return FQ_ENOMEM;
    }
    *ret_vals = vals;
    *ret_types = types;
    return 0;
}

/* Runs c's statement, each row through fn (single-row mode). */
static int
run(struct pd_run *r, PGconn *conn, struct pd_sql *c,
    int (*fn)(struct pd_run *, const PGresult *))
{
    const char **vals;
    Oid *types;
    PGresult *res;
    int rc = params(c, &vals, &types);

    if (rc < 0)
        return rc;
    if (!PQsendQueryParams(conn, fq_buf_str(&c->sql), (int)c->n_binds, types,
                           vals, NULL, NULL, 0) ||
        !PQsetSingleRowMode(conn)) {
        snprintf(r->err, r->errlen, "the agency's database failed: %.200s",
                 PQerrorMessage(conn));
        return FQ_EIO;
    }
    while ((res = PQgetResult(conn))) {
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_SINGLE_TUPLE && rc == 0) {
            if ((rc = fn(r, res)) < 0)
                cancel(conn);
        } else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK &&
                   rc == 0) {
            rc = db_error(r, res);
        }
        PQclear(res);
    }
    return rc;
}

/* ---- the disclosure fields (cellstats.h) -------------------------------- */

/* " FROM table WHERE (filter) AND col IS NOT NULL" (col may be NULL). */
static int
from_plain(struct pd_sql *c, const Fedq__V1__Plan *plan, const char *table,
           const char *col)
{
    int rc = fq_buf_append_str(&c->sql, " FROM ");

    if (rc == 0)
        rc = ident(c, table);
    if (rc == 0 && (plan->filter || col))
        rc = fq_buf_append_str(&c->sql, " WHERE ");
    if (rc == 0 && plan->filter) {
        if ((rc = fq_buf_append_str(&c->sql, "(")) == 0 &&
            (rc = predicate(c, plan->filter)) == 0)
            rc = fq_buf_append_str(&c->sql, col ? ") AND " : ")");
    }
    if (rc == 0 && col && (rc = ident(c, col)) == 0)
        rc = fq_buf_append_str(&c->sql, " IS NOT NULL");
    return rc;
}

/* Per aggregate: its column's non-NULL values and, for a magnitude, their
 * total (COUNT(*): the records); then every HISTOGRAM's bin counts. */
static int
person_values(struct pd_sql *c, const Fedq__V1__Plan *plan)
{
    int rc = 0;

    for (size_t k = 0; rc == 0 && k < plan->n_aggregates; k++) {
        const Fedq__V1__Aggregate *ag = plan->aggregates[k];
        if (!ag->column[0])
            rc = fq_buf_append_str(&c->sql, ", COUNT(*), 0");
        else if ((rc = call(c, ", COUNT(", ag->column, ")")) == 0)
            rc = ag_cellstats_is_magnitude(ag->kind)
                     ? call(c, ", COALESCE(SUM((", ag->column, ")::float8), 0)")
                     : fq_buf_append_str(&c->sql, ", 0");
    }
    for (size_t k = 0; rc == 0 && k < plan->n_aggregates; k++) {
        const Fedq__V1__Aggregate *ag = plan->aggregates[k];
        if (ag->kind != FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM)
            continue;
        for (size_t b = 0; rc == 0 && b <= ag->n_edges; b++)
            rc = bin_count(c, ag, b);
    }
    return rc;
}

/* "SELECT keys..., who AS fq_who": the contributor's identifier as text
 * (without a contributor each record is one, named by its ctid). */
static int
select_keys_and_who(struct pd_sql *c, const Fedq__V1__Plan *plan,
                    const struct ag_dataset_conf *d)
{
    int rc = fq_buf_append_str(&c->sql, "SELECT ");

    for (size_t i = 0; rc == 0 && i < plan->n_group_by; i++) {
        if ((rc = ident(c, plan->group_by[i])) == 0)
            rc = fq_buf_append_str(&c->sql, ", ");
    }
    if (rc == 0)
        rc = d->contributor
                 ? call(c, "(", d->contributor, ")::text AS \"fq_who\"")
                 : fq_buf_append_str(&c->sql, "ctid::text AS \"fq_who\"");
    return rc;
}

/* One row per group and contributor (its identifier as text; without a
 * contributor each record is one, named by its ctid). */
static int
compile_persons(struct pd_sql *c, const Fedq__V1__Plan *plan,
                const struct ag_dataset_conf *d)
{
    int rc = select_keys_and_who(c, plan, d);

    if (rc < 0 || (rc = person_values(c, plan)) < 0 ||
        (rc = from_plain(c, plan, d->source.table, d->contributor)) < 0 ||
        (rc = key_list(c, plan, " GROUP BY ")) < 0)
        return rc;
    return fq_buf_append_str(
        &c->sql, plan->n_group_by ? ", \"fq_who\"" : " GROUP BY \"fq_who\"");
}

/* One row per group and unit of column m: keys..., the unit's total
 * (rows without a unit are one unit, as GROUP BY has it). */
static int
compile_units(struct pd_sql *c, const Fedq__V1__Plan *plan,
              const struct ag_dataset_conf *d, const char *m, const char *unit)
{
    int rc = fq_buf_append_str(&c->sql, "SELECT ");

    for (size_t i = 0; rc == 0 && i < plan->n_group_by; i++) {
        if ((rc = ident(c, plan->group_by[i])) == 0)
            rc = fq_buf_append_str(&c->sql, ", ");
    }
    if (rc < 0 || (rc = call(c, "COALESCE(SUM((", m, ")::float8), 0)")) < 0 ||
        (rc = from_plain(c, plan, d->source.table, m)) < 0 ||
        (rc = key_list(c, plan, " GROUP BY ")) < 0 ||
        (rc = fq_buf_append_str(&c->sql,
                                plan->n_group_by ? ", " : " GROUP BY ")) < 0)
        return rc;
    return ident(c, unit);
}

/* Key column i of the row without allocating (text points into res). */
static int
peek_key(struct pd_run *r, const PGresult *res, int i, Fedq__V1__Literal *l)
{
    const Fedq__V1__Column *col =
        fq_catalog_column(r->ds, r->plan->group_by[i]);

    fedq__v1__literal__init(l);
    if (PQgetisnull(res, 0, i))
        return 0;
    if (col && col->type == FEDQ__V1__VALUE_TYPE__VALUE_TYPE_INTEGER) {
        l->value_case = FEDQ__V1__LITERAL__VALUE_INT_VALUE;
        return get_int(r, res, i, &l->int_value);
    }
    l->value_case = FEDQ__V1__LITERAL__VALUE_TEXT_VALUE;
    l->text_value = PQgetvalue(res, 0, i);
    return 0;
}

struct pd_cells {
    struct ag_cellstats *cs;
    int64_t *counts, *bins;
    double *totals;
    size_t n_bins, unit_agg;
};

static int
peek_keys(struct pd_run *r, const PGresult *res, Fedq__V1__Literal *lits,
          Fedq__V1__Literal **key)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < r->plan->n_group_by; i++) {
        key[i] = &lits[i];
        rc = peek_key(r, res, (int)i, &lits[i]);
    }
    return rc;
}

static int
changed(struct pd_run *r, int rc)
{
    if (rc == FQ_EPROTO)
        snprintf(r->err, r->errlen,
                 "the agency's database gave the disclosure statements a group "
                 "its answer does not have");
    return rc;
}

static int
person_row(struct pd_run *r, const PGresult *res)
{
    struct pd_cells *pc = r->cells;
    Fedq__V1__Literal lits[FQ_PLAN_MAX_GROUP_BY + 1];
    Fedq__V1__Literal *key[FQ_PLAN_MAX_GROUP_BY + 1];
    int col = (int)r->plan->n_group_by;
    const char *who = PQgetvalue(res, 0, col);
    size_t len = (size_t)PQgetlength(res, 0, col++);
    int rc = peek_keys(r, res, lits, key);

    for (size_t k = 0; rc == 0 && k < r->plan->n_aggregates; k++) {
        if ((rc = get_int(r, res, col++, &pc->counts[k])) == 0)
            rc = get_double(r, res, col++, &pc->totals[k]);
    }
    for (size_t b = 0; rc == 0 && b < pc->n_bins; b++)
        rc = get_int(r, res, col++, &pc->bins[b]);
    if (rc == 0)
        rc = ag_cellstats_person(pc->cs, key, who, len, pc->counts, pc->totals,
                                 pc->bins);
    return changed(r, rc);
}

static int
unit_row(struct pd_run *r, const PGresult *res)
{
    struct pd_cells *pc = r->cells;
    Fedq__V1__Literal lits[FQ_PLAN_MAX_GROUP_BY + 1];
    Fedq__V1__Literal *key[FQ_PLAN_MAX_GROUP_BY + 1];
    double total;
    int rc = peek_keys(r, res, lits, key);

    if (rc == 0 &&
        (rc = get_double(r, res, (int)r->plan->n_group_by, &total)) == 0)
        rc = ag_cellstats_unit(pc->cs, key, pc->unit_agg, total);
    return changed(r, rc);
}

/* A statement of its own, built by the caller into c (reset here). */
static int
run_cells(struct pd_run *r, PGconn *conn, struct pd_sql *c,
          int (*fn)(struct pd_run *, const PGresult *))
{
    int rc = run(r, conn, c, fn);
    fq_buf_release(&c->sql);
    fq_buf_init(&c->sql, SQL_MAX);
    c->n_binds = 0;
    return rc;
}

static int
disclosure_fields(struct pd_run *r, PGconn *conn,
                  const struct ag_dataset_conf *d,
                  const struct ag_cell_secret *secret)
{
    const Fedq__V1__Plan *plan = r->plan;
    struct pd_sql c = {.arena = r->arena, .ds = r->ds};
    struct pd_cells pc = {0};
    int rc = ag_cellstats_new(plan, r->resp, secret, r->arena, &pc.cs);

    fq_buf_init(&c.sql, SQL_MAX);
    r->cells = &pc;
    for (size_t k = 0; rc == 0 && k < plan->n_aggregates; k++) {
        const Fedq__V1__Aggregate *ag = plan->aggregates[k];
        const Fedq__V1__Column *col =
            ag->column[0] ? fq_catalog_column(r->ds, ag->column) : NULL;
        if (ag->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM)
            pc.n_bins += ag->n_edges + 1;
        if (!ag_cellstats_is_magnitude(ag->kind) || !col ||
            !col->contributor_unit[0])
            continue;
        ag_cellstats_set_unit_fed(pc.cs, k);
        pc.unit_agg = k;
        if ((rc = compile_units(&c, plan, d, ag->column,
                                col->contributor_unit)) == 0)
            rc = run_cells(r, conn, &c, unit_row);
    }
    pc.counts = fq_arena_alloc(r->arena, (plan->n_aggregates + 1) * 8);
    pc.totals = fq_arena_alloc(r->arena, (plan->n_aggregates + 1) * 8);
    pc.bins = fq_arena_alloc(r->arena, (pc.n_bins + 1) * 8);
    if (rc == 0 && (!pc.counts || !pc.totals || !pc.bins))
        rc = FQ_ENOMEM;
    if (rc == 0 && (rc = compile_persons(&c, plan, d)) == 0)
        rc = run_cells(r, conn, &c, person_row);
    if (rc == FQ_ENOMEM)
        snprintf(r->err, r->errlen, "out of memory");
    fq_buf_release(&c.sql);
    return rc;
}

/* The answer and its disclosure fields, in one session (one snapshot). */
static int
answer_in_session(const struct ag_dataset_conf *d, struct pd_run *r,
                  PGconn *conn)
{
    int rc = run(r, conn, r->c, read_row);

    if (rc == 0) {
        finish_group(r);
        rc = disclosure_fields(r, conn, d, r->secret);
    }
    return rc;
}

/* Compiles r->plan into r->c with compile_fn, then runs fn in a session
 * of d's database. */
static int
in_session(const struct ag_dataset_conf *d, struct pd_run *r,
           int (*compile_fn)(struct pd_sql *, const Fedq__V1__Plan *,
                             const struct ag_dataset_conf *),
           int (*fn)(const struct ag_dataset_conf *, struct pd_run *, PGconn *))
{
    PGconn *conn = NULL;
    int rc;

    fq_buf_init(&r->c->sql, SQL_MAX);
    if ((rc = compile_fn(r->c, r->plan, d)) < 0) {
        snprintf(r->err, r->errlen, "cannot compile the plan for PostgreSQL");
        goto out;
    }
    if ((rc = session_open(d, &conn, r->err, r->errlen)) < 0)
        goto out;
    rc = fn(d, r, conn);
    session_close(d, conn);
out:
    fq_buf_release(&r->c->sql);
    return rc;
}

int
ag_pushdown_execute(const struct ag_dataset_conf *d,
                    const Fedq__V1__Dataset *ds, const Fedq__V1__Plan *plan,
                    size_t max_groups, const struct ag_cell_secret *secret,
                    struct fq_arena *arena, Fedq__V1__ExecuteResponse *resp,
                    char *err, size_t errlen)
{
    struct pd_sql c = {.arena = arena, .ds = ds};
    struct pd_run r = {.plan = plan,
                       .ds = ds,
                       .c = &c,
                       .max_groups = max_groups,
                       .arena = arena,
                       .resp = resp,
                       .secret = secret,
                       .err = err,
                       .errlen = errlen};

    return in_session(d, &r, compile, answer_in_session);
}

/* ---- members (the differencing ledger) ---------------------------------- */

/* A record's place in its table, as one integer: block and offset of
 * its ctid (stable within a snapshot; a live dataset's ledger says so). */
#define CTID_INT                                 \
    "((ctid::text::point)[0]::bigint * 65536 + " \
    "(ctid::text::point)[1]::bigint)"

/*
 * SELECT keys..., the contributor's identifier as text (or the ctid),
 * the record, then per plan aggregate: 1 (COUNT(*)), the HISTOGRAM bin of
 * the value (NULL outside every bin), or 1 when the value is not NULL.
 */
static int
compile_members(struct pd_sql *c, const Fedq__V1__Plan *plan,
                const struct ag_dataset_conf *d)
{
    int rc = select_keys_and_who(c, plan, d);

    if (rc == 0)
        rc = fq_buf_append_str(&c->sql, ", " CTID_INT);
    for (size_t k = 0; rc == 0 && k < plan->n_aggregates; k++) {
        const Fedq__V1__Aggregate *ag = plan->aggregates[k];
        if (!ag->column[0]) {
            rc = fq_buf_append_str(&c->sql, ", 1");
        } else if (ag->kind !=
                   FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM) {
            rc = call(c, ", CASE WHEN ", ag->column, " IS NOT NULL THEN 1 END");
        } else {
            rc = fq_buf_append_str(&c->sql, ", CASE");
            for (size_t b = 0; rc == 0 && b <= ag->n_edges; b++) {
                if ((rc = fq_buf_append_str(&c->sql, " WHEN ")) == 0 &&
                    (rc = bin_test(c, ag, b)) == 0)
                    rc = fq_buf_printf(&c->sql, " THEN %zu", b);
            }
            if (rc == 0)
                rc = fq_buf_append_str(&c->sql, " END");
        }
    }
    return rc == 0 ? from_plain(c, plan, d->source.table, d->contributor) : rc;
}

struct pd_members {
    const struct ag_cell_secret *secret;
    const struct ag_member_ref *refs;
    struct ag_cell_index ix;
    struct ag_cellset *out;
    size_t *cap;
};

static int
member_row(struct pd_run *r, const PGresult *res)
{
    struct pd_members *pm = r->members;
    Fedq__V1__Literal lits[FQ_PLAN_MAX_GROUP_BY + 1];
    Fedq__V1__Literal *key[FQ_PLAN_MAX_GROUP_BY + 1];
    int col = (int)r->plan->n_group_by;
    int64_t rec;
    int rc = peek_keys(r, res, lits, key);
    size_t first, n;

    if (rc < 0 || (rc = get_int(r, res, col + 1, &rec)) < 0)
        return rc;
    struct ag_member m = {ag_person_tag(pm->secret, PQgetvalue(res, 0, col),
                                        (size_t)PQgetlength(res, 0, col)),
                          (uint64_t)rec};
    n = ag_cell_index_find(&pm->ix, key, &first);
    for (size_t s = first; s < first + n; s++) {
        size_t i = pm->ix.sorted[s].ref;
        const struct ag_member_ref *ref = &pm->refs[i];
        int vcol = col + 2 + (int)ref->agg;
        int64_t v;
        if (PQgetisnull(res, 0, vcol))
            continue;
        if ((rc = get_int(r, res, vcol, &v)) < 0)
            return rc;
        bool hist = r->plan->aggregates[ref->agg]->kind ==
                    FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM;
        if ((hist ? v == (int64_t)ref->bin : v == 1) &&
            (rc = ag_cellset_push(&pm->out[i], &pm->cap[i], m)) < 0)
            return rc;
    }
    return 0;
}

static int
members_in_session(const struct ag_dataset_conf *d, struct pd_run *r,
                   PGconn *conn)
{
    (void)d;
    return run(r, conn, r->c, member_row);
}

int
ag_pushdown_members(const struct ag_dataset_conf *d,
                    const Fedq__V1__Dataset *ds, const Fedq__V1__Plan *plan,
                    const struct ag_cell_secret *secret,
                    const struct ag_member_ref *refs, size_t n,
                    struct fq_arena *arena, struct ag_cellset *out, char *err,
                    size_t errlen)
{
    struct pd_sql c = {.arena = arena, .ds = ds};
    size_t *cap = fq_arena_alloc(arena, (n + 1) * sizeof(*cap));
    struct pd_members pm = {secret, refs, {0}, out, cap};
    int rc;

    memset(out, 0, n * sizeof(*out));
    if (!cap ||
        ag_cell_index_build(&pm.ix, refs, n, plan->n_group_by, arena) < 0) {
        snprintf(err, errlen, "out of memory");
        return FQ_ENOMEM;
    }
    struct pd_run r = {.plan = plan,
                       .ds = ds,
                       .c = &c,
                       .arena = arena,
                       .members = &pm,
                       .err = err,
                       .errlen = errlen};
    rc = in_session(d, &r, compile_members, members_in_session);
    for (size_t i = 0; i < n; i++) {
        if (rc < 0) {
            free(out[i].m);
            out[i] = (struct ag_cellset){0};
        } else {
            ag_cellset_finish(&out[i]);
        }
    }
    return rc;
}
