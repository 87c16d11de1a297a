/*
 * The agent's executor on SQLite: a checked plan in, partial aggregates
 * out. The plan is compiled to one parameterised statement: identifiers
 * come only from the catalog (and are quoted), every literal is a bound
 * parameter, and the statement is prepared on a read-only connection. What
 * leaves is one row per group: the group's key, its record and contributor
 * counts, and each aggregate's mergeable state. Never a record.
 *
 * Kept behind ag_execute() alone, so that a later issue can move it into a
 * separate unprivileged process (typed plan in, partial out).
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/buf.h"
#include "fq/error.h"
#include "fq/plan.h"
#include "agent.h"
#include "cellkey.h"
#include "cellstats.h"
#include "engine.h"
#include "ledger.h"

#include <sqlite3.h>

#include "fedq/v1/agent.pb-c.h"

#define SQL_MAX   (256 * 1024)
#define SKETCH_FN "fq_sketch"
/* A sketch blob entry: bin index (4 bytes) and count (8), little-endian. */
#define SKETCH_ENTRY 12

struct compiled {
    struct fq_buf sql;
    const Fedq__V1__Literal **binds; /* in placeholder order */
    size_t n_binds, cap_binds;
};

static int
bind_push(struct compiled *c, struct fq_arena *a, const Fedq__V1__Literal *lit)
{
    if (c->n_binds == c->cap_binds) {
        size_t cap = c->cap_binds ? c->cap_binds * 2 : 16;
        const Fedq__V1__Literal **n = fq_arena_alloc(a, cap * sizeof(*n));
        if (!n)
            return FQ_ENOMEM;
        if (c->n_binds)
            memcpy(n, c->binds, c->n_binds * sizeof(*n));
        c->binds = n;
        c->cap_binds = cap;
    }
    c->binds[c->n_binds++] = lit;
    return fq_buf_append_str(&c->sql, "?");
}

static const char *
compare_sql(Fedq__V1__CompareOp op)
{
    static const char *const ops[] = {"?", "=", "<>", "<", "<=", ">", ">="};
    return (size_t)op < FQ_ARRAY_LEN(ops) ? ops[op] : "?";
}

static int compile_predicate(struct compiled *c, struct fq_arena *a,
                             const Fedq__V1__Predicate *p);

/* "(t1 AND t2 ...)" or "(t1 OR t2 ...)". */
static int
compile_terms(struct compiled *c, struct fq_arena *a,
              Fedq__V1__Predicate *const *terms, size_t n, const char *op)
{
    int rc = fq_buf_append_str(&c->sql, "(");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i)
            rc = fq_buf_append_str(&c->sql, op);
        if (rc == 0)
            rc = compile_predicate(c, a, terms[i]);
    }
    return rc ? rc : fq_buf_append_str(&c->sql, ")");
}

static int
compile_in(struct compiled *c, struct fq_arena *a, const Fedq__V1__InList *in)
{
    int rc = fq_buf_printf(&c->sql, "\"%s\" IN (", in->column);
    for (size_t i = 0; rc == 0 && i < in->n_values; i++) {
        if (i)
            rc = fq_buf_append_str(&c->sql, ", ");
        if (rc == 0)
            rc = bind_push(c, a, in->values[i]);
    }
    return rc ? rc : fq_buf_append_str(&c->sql, ")");
}

static int
compile_predicate(struct compiled *c, struct fq_arena *a,
                  const Fedq__V1__Predicate *p)
{
    int rc;

    switch (p->node_case) {
    case FEDQ__V1__PREDICATE__NODE_ALL:
        return compile_terms(c, a, p->all->terms, p->all->n_terms, " AND ");
    case FEDQ__V1__PREDICATE__NODE_ANY:
        return compile_terms(c, a, p->any->terms, p->any->n_terms, " OR ");
    case FEDQ__V1__PREDICATE__NODE_NOT:
        /* No parentheses of our own: NOT binds looser than a comparison
         * and tighter than AND and OR, and lists bring their own. SQLite's
         * parser stack (100 deep in 3.40) is the limit on nesting. */
        if ((rc = fq_buf_append_str(&c->sql, "NOT ")) < 0)
            return rc;
        return compile_predicate(c, a, p->not_->term);
    case FEDQ__V1__PREDICATE__NODE_IS_NULL:
        return fq_buf_printf(&c->sql, "\"%s\" IS %sNULL", p->is_null->column,
                             p->is_null->negated ? "NOT " : "");
    case FEDQ__V1__PREDICATE__NODE_COMPARE:
        if ((rc = fq_buf_printf(&c->sql, "\"%s\" %s ", p->compare->column,
                                compare_sql(p->compare->op))) < 0)
            return rc;
        return bind_push(c, a, p->compare->value);
    case FEDQ__V1__PREDICATE__NODE_BETWEEN:
        if ((rc = fq_buf_printf(&c->sql, "\"%s\" BETWEEN ",
                                p->between->column)) < 0 ||
            (rc = bind_push(c, a, p->between->low)) < 0 ||
            (rc = fq_buf_append_str(&c->sql, " AND ")) < 0)
            return rc;
        return bind_push(c, a, p->between->high);
    case FEDQ__V1__PREDICATE__NODE_IN:
        return compile_in(c, a, p->in);
    default:
        return FQ_EINVAL; /* fq_plan_check refuses it first */
    }
}

/*
 * The result columns of one aggregate (aggregate i of the plan), read back
 * by read_state():
 *   COUNT(*)          none (the group's record count)
 *   COUNT(DISTINCT c) COUNT(DISTINCT c)
 *   SUM, AVG          COUNT(m), SUM(m) (TOTAL for decimals)
 *   VAR, STDDEV       COUNT(m), AVG(m), TOTAL(d * d)
 *   HISTOGRAM         per bin: values in it, distinct contributors in it
 *   QUANTILE          fq_sketch(m, min, w, bins): the sketch as a blob
 * where d is the record's deviation from its group's mean, computed by a
 * window over the group in the FROM clause (compile_from): two passes, so
 * M2 keeps its precision however far the values are from zero. Sums of
 * squares stay at the agency; only (n, mean, M2) leave.
 */
/* "m >= ?e_b AND m < ?e_b+1" for bin b (open-ended at both ends). */
static int
compile_bin_test(struct compiled *c, struct fq_arena *a,
                 const Fedq__V1__Aggregate *ag, size_t b)
{
    int rc = 0;
    if (b > 0 && (rc = fq_buf_printf(&c->sql, "\"%s\" >= ", ag->column)) == 0)
        rc = bind_push(c, a, ag->edges[b - 1]);
    if (rc == 0 && b > 0 && b < ag->n_edges)
        rc = fq_buf_append_str(&c->sql, " AND ");
    if (rc == 0 && b < ag->n_edges &&
        (rc = fq_buf_printf(&c->sql, "\"%s\" < ", ag->column)) == 0)
        rc = bind_push(c, a, ag->edges[b]);
    return rc;
}

/* Bin b of a HISTOGRAM: its value count, then its distinct contributors
 * (the disclosure rules count these, bin by bin; without a contributor
 * every record is one, so the count again). */
static int
compile_bin(struct compiled *c, struct fq_arena *a,
            const Fedq__V1__Aggregate *ag, size_t b, const char *contributor)
{
    int rc = 0;

    for (int twice = 0; rc == 0 && twice < (contributor ? 1 : 2); twice++) {
        rc = fq_buf_append_str(&c->sql, ", SUM(CASE WHEN ");
        if (rc == 0)
            rc = compile_bin_test(c, a, ag, b);
        if (rc == 0)
            rc = fq_buf_append_str(&c->sql, " THEN 1 ELSE 0 END)");
    }
    if (rc < 0 || !contributor)
        return rc;
    rc = fq_buf_append_str(&c->sql, ", COUNT(DISTINCT CASE WHEN ");
    if (rc == 0)
        rc = compile_bin_test(c, a, ag, b);
    if (rc == 0)
        rc = fq_buf_printf(&c->sql, " THEN \"%s\" END)", contributor);
    return rc;
}

static int
compile_aggregate(struct compiled *c, struct fq_arena *a,
                  const Fedq__V1__Aggregate *ag, size_t i,
                  const Fedq__V1__Dataset *ds, const struct ag_source *src)
{
    const Fedq__V1__Column *col =
        ag->column[0] ? fq_catalog_column(ds, ag->column) : NULL;
    const char *m = ag->column;

    switch (ag->kind) {
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT_DISTINCT:
        return fq_buf_printf(&c->sql, ", COUNT(DISTINCT \"%s\")", m);
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_AVG:
        /* TOTAL is SQLite's floating sum; SUM stays integer and reports
         * an overflow as an error instead of wrapping. */
        return fq_buf_printf(
            &c->sql, ", COUNT(\"%s\"), %s(\"%s\")", m,
            col->type == FEDQ__V1__VALUE_TYPE__VALUE_TYPE_DECIMAL ? "TOTAL"
                                                                  : "SUM",
            m);
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_VAR:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_STDDEV:
        return fq_buf_printf(&c->sql,
                             ", COUNT(\"%s\"), AVG(\"%s\"), "
                             "TOTAL(\"fq_dev_%zu\" * \"fq_dev_%zu\")",
                             m, m, i, i);
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM:
        for (size_t b = 0; b <= ag->n_edges; b++) {
            int rc = compile_bin(c, a, ag, b, src->contributor);
            if (rc < 0)
                return rc;
        }
        return 0;
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE: {
        int64_t w;
        uint32_t used;
        if (fq_quantile_sketch(col, &w, &used) < 0)
            return FQ_EINVAL;
        return fq_buf_printf(&c->sql,
                             ", " SKETCH_FN "(\"%s\", %" PRId64 ", %" PRId64
                             ", %" PRIu32 ")",
                             m, col->bounds->min, w, used);
    }
    default:
        return 0; /* COUNT(*): the record count */
    }
}

static bool
needs_deviations(const Fedq__V1__Plan *plan)
{
    for (size_t i = 0; i < plan->n_aggregates; i++) {
        Fedq__V1__AggregateKind k = plan->aggregates[i]->kind;
        if (k == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_VAR ||
            k == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_STDDEV)
            return true;
    }
    return false;
}

/* " PARTITION BY g1, g2" for the group's window; "" without GROUP BY. */
static int
compile_partition(struct compiled *c, const Fedq__V1__Plan *plan)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < plan->n_group_by; i++)
        rc = fq_buf_printf(&c->sql, "%s\"%s\"", i ? ", " : "PARTITION BY ",
                           plan->group_by[i]);
    return rc;
}

/*
 * FROM the table with the filter applied, plus, for VAR and STDDEV, each
 * record's deviation from its group's mean as column fq_dev_I.
 */
static int
compile_from(struct compiled *c, struct fq_arena *a, const Fedq__V1__Plan *plan,
             const struct ag_source *src)
{
    bool dev = needs_deviations(plan);
    int rc = fq_buf_append_str(&c->sql, dev ? " FROM (SELECT *" : " FROM ");

    for (size_t i = 0; dev && rc == 0 && i < plan->n_aggregates; i++) {
        Fedq__V1__AggregateKind k = plan->aggregates[i]->kind;
        if (k != FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_VAR &&
            k != FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_STDDEV)
            continue;
        const char *m = plan->aggregates[i]->column;
        rc = fq_buf_printf(&c->sql, ", \"%s\" - AVG(\"%s\") OVER (", m, m);
        if (rc == 0)
            rc = compile_partition(c, plan);
        if (rc == 0)
            rc = fq_buf_printf(&c->sql, ") AS \"fq_dev_%zu\"", i);
    }
    if (rc == 0)
        rc =
            fq_buf_printf(&c->sql, "%s\"%s\"", dev ? " FROM " : "", src->table);
    if (rc == 0 && plan->filter) {
        rc = fq_buf_append_str(&c->sql, " WHERE ");
        if (rc == 0)
            rc = compile_predicate(c, a, plan->filter);
    }
    return rc == 0 && dev ? fq_buf_append_str(&c->sql, ")") : rc;
}

/* SELECT keys..., COUNT(*), contributors, then each aggregate's columns. */
static int
compile_select(struct compiled *c, struct fq_arena *a,
               const Fedq__V1__Plan *plan, const Fedq__V1__Dataset *ds,
               const struct ag_source *src)
{
    int rc = fq_buf_append_str(&c->sql, "SELECT ");
    for (size_t i = 0; rc == 0 && i < plan->n_group_by; i++)
        rc = fq_buf_printf(&c->sql, "\"%s\", ", plan->group_by[i]);
    if (rc == 0 && src->contributor)
        rc = fq_buf_printf(&c->sql, "COUNT(*), COUNT(DISTINCT \"%s\")",
                           src->contributor);
    else if (rc == 0)
        rc = fq_buf_append_str(&c->sql, "COUNT(*), COUNT(*)");
    for (size_t i = 0; rc == 0 && i < plan->n_aggregates; i++)
        rc = compile_aggregate(c, a, plan->aggregates[i], i, ds, src);
    return rc;
}

static int
compile(struct compiled *c, struct fq_arena *a, const Fedq__V1__Plan *plan,
        const Fedq__V1__Dataset *ds, const struct ag_source *src)
{
    int rc = compile_select(c, a, plan, ds, src);
    if (rc == 0)
        rc = compile_from(c, a, plan, src);
    for (size_t i = 0; rc == 0 && i < plan->n_group_by; i++)
        rc = fq_buf_printf(&c->sql, "%s\"%s\"", i ? ", " : " GROUP BY ",
                           plan->group_by[i]);
    return rc;
}

/* ---- the disclosure fields (cellstats.h) ------------------------------- */

/* " WHERE filter [AND extra]" over the table itself. */
static int
compile_where(struct compiled *c, struct fq_arena *a,
              const Fedq__V1__Plan *plan, const struct ag_source *src,
              const char *extra)
{
    int rc = fq_buf_printf(&c->sql, " FROM \"%s\"", src->table);

    if (rc == 0 && (plan->filter || extra))
        rc = fq_buf_append_str(&c->sql, " WHERE ");
    if (rc == 0 && plan->filter) {
        rc = fq_buf_append_str(&c->sql, "(");
        if (rc == 0)
            rc = compile_predicate(c, a, plan->filter);
        if (rc == 0)
            rc = fq_buf_append_str(&c->sql, extra ? ") AND " : ")");
    }
    if (rc == 0 && extra)
        rc = fq_buf_append_str(&c->sql, extra);
    return rc;
}

static int
compile_keys(struct compiled *c, const Fedq__V1__Plan *plan, const char *lead)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < plan->n_group_by; i++)
        rc = fq_buf_printf(&c->sql, "%s\"%s\"", i ? ", " : lead,
                           plan->group_by[i]);
    return rc;
}

/* Per aggregate its column's count and total (COUNT(*): the records),
 * then every HISTOGRAM's bin counts. */
static int
compile_person_values(struct compiled *c, struct fq_arena *a,
                      const Fedq__V1__Plan *plan)
{
    int rc = 0;

    for (size_t k = 0; rc == 0 && k < plan->n_aggregates; k++) {
        const char *m = plan->aggregates[k]->column;
        rc = m[0] ? fq_buf_printf(&c->sql, ", COUNT(\"%s\"), TOTAL(\"%s\")", m,
                                  m)
                  : fq_buf_append_str(&c->sql, ", COUNT(*), 0");
    }
    for (size_t k = 0; rc == 0 && k < plan->n_aggregates; k++) {
        const Fedq__V1__Aggregate *ag = plan->aggregates[k];
        if (ag->kind != FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM)
            continue;
        for (size_t b = 0; rc == 0 && b <= ag->n_edges; b++) {
            rc = fq_buf_append_str(&c->sql, ", SUM(CASE WHEN ");
            if (rc == 0)
                rc = compile_bin_test(c, a, ag, b);
            if (rc == 0)
                rc = fq_buf_append_str(&c->sql, " THEN 1 ELSE 0 END)");
        }
    }
    return rc;
}

/* "SELECT keys..., who AS fq_who": the contributor's identifier as text
 * (without a contributor each record is one: its rowid); notnull gets the
 * contributor's IS NOT NULL test ("" without one). */
static int
select_keys_and_who(struct compiled *c, const Fedq__V1__Plan *plan,
                    const struct ag_source *src, char *notnull, size_t len)
{
    int rc = fq_buf_append_str(&c->sql, "SELECT ");

    notnull[0] = '\0';
    if (src->contributor)
        snprintf(notnull, len, "\"%s\" IS NOT NULL", src->contributor);
    for (size_t i = 0; rc == 0 && i < plan->n_group_by; i++)
        rc = fq_buf_printf(&c->sql, "\"%s\", ", plan->group_by[i]);
    if (rc == 0 && src->contributor)
        rc = fq_buf_printf(&c->sql, "CAST(\"%s\" AS TEXT) AS fq_who",
                           src->contributor);
    else if (rc == 0)
        rc = fq_buf_append_str(&c->sql, "CAST(rowid AS TEXT) AS fq_who");
    return rc;
}

/*
 * One row per group and contributor: keys..., the contributor's
 * identifier as text (without a contributor each record is one: its rowid),
 * then compile_person_values. Rows of no contributor (NULL) are left out,
 * as everywhere.
 */
static int
compile_persons(struct compiled *c, struct fq_arena *a,
                const Fedq__V1__Plan *plan, const struct ag_source *src)
{
    char notnull[96];
    int rc = select_keys_and_who(c, plan, src, notnull, sizeof(notnull));

    if (rc == 0)
        rc = compile_person_values(c, a, plan);
    if (rc == 0)
        rc = compile_where(c, a, plan, src, src->contributor ? notnull : NULL);
    if (rc == 0)
        rc = compile_keys(c, plan, " GROUP BY ");
    return rc == 0 ? fq_buf_append_str(&c->sql, plan->n_group_by
                                                    ? ", fq_who"
                                                    : " GROUP BY fq_who")
                   : rc;
}

/* One row per group and unit of aggregate k's column: keys..., the total
 * of the unit's values (rows of no unit are one unit, as GROUP BY has it). */
static int
compile_units(struct compiled *c, struct fq_arena *a,
              const Fedq__V1__Plan *plan, const struct ag_source *src,
              const char *m, const char *unit)
{
    char notnull[96];
    int rc = fq_buf_append_str(&c->sql, "SELECT ");

    snprintf(notnull, sizeof(notnull), "\"%s\" IS NOT NULL", m);
    for (size_t i = 0; rc == 0 && i < plan->n_group_by; i++)
        rc = fq_buf_printf(&c->sql, "\"%s\", ", plan->group_by[i]);
    if (rc == 0)
        rc = fq_buf_printf(&c->sql, "TOTAL(\"%s\")", m);
    if (rc == 0)
        rc = compile_where(c, a, plan, src, notnull);
    if (rc == 0)
        rc = compile_keys(c, plan, " GROUP BY ");
    return rc == 0 ? fq_buf_printf(&c->sql, "%s\"%s\"",
                                   plan->n_group_by ? ", " : " GROUP BY ", unit)
                   : rc;
}

/* ---- the quantile sketch as an SQLite aggregate ------------------------- */

struct sketch {
    int64_t *counts; /* sqlite3_malloc'd, used entries; freed by final */
    uint32_t used;
};

/* fq_sketch(value, min, width, used): counts the non-NULL integer values
 * per bin. Only one group's sketch is live at a time (SQLite finishes a
 * group before starting the next), so a dense array is cheap. */
static void
sketch_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct sketch *sk = sqlite3_aggregate_context(ctx, sizeof(*sk));
    (void)argc;
    if (!sk)
        goto nomem;
    if (!sk->counts) {
        sk->used = (uint32_t)sqlite3_value_int64(argv[3]);
        if (sk->used == 0 || sk->used > FQ_QUANTILE_MAX_BINS) {
            sqlite3_result_error(ctx, "bad sketch size", -1);
            return;
        }
        sk->counts = sqlite3_malloc64(sk->used * sizeof(int64_t));
        if (!sk->counts)
            goto nomem;
        memset(sk->counts, 0, sk->used * sizeof(int64_t));
    }
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL)
        return;
    sk->counts[fq_sketch_bin(sqlite3_value_int64(argv[1]),
                             sqlite3_value_int64(argv[2]), sk->used,
                             sqlite3_value_int64(argv[0]))]++;
    return;
nomem:
    sqlite3_result_error_nomem(ctx);
}

static void
put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* The non-empty bins as SKETCH_ENTRY-byte entries; an empty blob if the
 * group had no value. */
static void
sketch_final(sqlite3_context *ctx)
{
    struct sketch *sk = sqlite3_aggregate_context(ctx, 0);
    unsigned char *blob;
    size_t n = 0;

    if (!sk || !sk->counts) {
        sqlite3_result_zeroblob(ctx, 0);
        return;
    }
    for (uint32_t i = 0; i < sk->used; i++)
        n += sk->counts[i] != 0;
    if (!(blob = sqlite3_malloc64(n * SKETCH_ENTRY + 1))) {
        sqlite3_free(sk->counts);
        sqlite3_result_error_nomem(ctx);
        return;
    }
    n = 0;
    for (uint32_t i = 0; i < sk->used; i++) {
        if (!sk->counts[i])
            continue;
        put_le(blob + n * SKETCH_ENTRY, i, 4);
        put_le(blob + n * SKETCH_ENTRY + 4, (uint64_t)sk->counts[i], 8);
        n++;
    }
    sqlite3_free(sk->counts);
    sqlite3_result_blob64(ctx, blob, n * SKETCH_ENTRY, sqlite3_free);
}

static uint64_t
get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* The sketch blob of result column col into s. */
static int
read_sketch(struct fq_arena *a, sqlite3_stmt *st, int col,
            Fedq__V1__AggregateState *s)
{
    const unsigned char *blob = sqlite3_column_blob(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col) / SKETCH_ENTRY;

    s->sketch_bins = fq_arena_alloc(a, (n + 1) * sizeof(*s->sketch_bins));
    s->sketch_counts = fq_arena_alloc(a, (n + 1) * sizeof(*s->sketch_counts));
    if (!s->sketch_bins || !s->sketch_counts)
        return FQ_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        s->sketch_bins[i] = (uint32_t)get_le(blob + i * SKETCH_ENTRY, 4);
        s->sketch_counts[i] = (int64_t)get_le(blob + i * SKETCH_ENTRY + 4, 8);
        s->count += s->sketch_counts[i];
    }
    s->n_sketch_bins = s->n_sketch_counts = n;
    return 0;
}

/* A HISTOGRAM's bins: values and contributors, column pairs per bin. */
static int
read_bins(struct fq_arena *a, sqlite3_stmt *st, int *col,
          const Fedq__V1__Aggregate *ag, Fedq__V1__AggregateState *s)
{
    size_t n = ag->n_edges + 1;

    s->bins = fq_arena_alloc(a, n * sizeof(*s->bins));
    s->bin_contributors = fq_arena_alloc(a, n * sizeof(*s->bin_contributors));
    if (!s->bins || !s->bin_contributors)
        return FQ_ENOMEM;
    for (size_t b = 0; b < n; b++) {
        s->bins[b] = sqlite3_column_int64(st, (*col)++);
        s->bin_contributors[b] = sqlite3_column_int64(st, (*col)++);
        s->count += s->bins[b];
    }
    s->n_bins = s->n_bin_contributors = n;
    return 0;
}

/* ---- running ----------------------------------------------------------- */

static int
bind_all(sqlite3_stmt *st, const struct compiled *c)
{
    for (size_t i = 0; i < c->n_binds; i++) {
        const Fedq__V1__Literal *l = c->binds[i];
        int idx = (int)i + 1, rc;
        switch (l->value_case) {
        case FEDQ__V1__LITERAL__VALUE_INT_VALUE:
            rc = sqlite3_bind_int64(st, idx, l->int_value);
            break;
        case FEDQ__V1__LITERAL__VALUE_DECIMAL_VALUE:
            rc = sqlite3_bind_double(st, idx, l->decimal_value);
            break;
        case FEDQ__V1__LITERAL__VALUE_TEXT_VALUE:
            rc = sqlite3_bind_text(st, idx, l->text_value, -1, SQLITE_STATIC);
            break;
        default:
            rc = sqlite3_bind_null(st, idx);
        }
        if (rc != SQLITE_OK)
            return FQ_EIO;
    }
    return 0;
}

/* The group key value in result column i, typed like its catalog column. */
static Fedq__V1__Literal *
read_key(struct fq_arena *a, sqlite3_stmt *st, int i,
         const Fedq__V1__Column *col)
{
    Fedq__V1__Literal *l = fq_arena_alloc(a, sizeof(*l));
    if (!l)
        return NULL;
    fedq__v1__literal__init(l);
    int t = sqlite3_column_type(st, i);
    if (t == SQLITE_NULL)
        return l; /* no value: the group of records where it is NULL */
    if (col->type == FEDQ__V1__VALUE_TYPE__VALUE_TYPE_INTEGER &&
        t == SQLITE_INTEGER) {
        l->value_case = FEDQ__V1__LITERAL__VALUE_INT_VALUE;
        l->int_value = sqlite3_column_int64(st, i);
        return l;
    }
    const unsigned char *txt = sqlite3_column_text(st, i);
    l->value_case = FEDQ__V1__LITERAL__VALUE_TEXT_VALUE;
    l->text_value = fq_arena_strdup(a, txt ? (const char *)txt : "");
    return l->text_value ? l : NULL;
}

static Fedq__V1__AggregateState *
read_state(struct fq_arena *a, sqlite3_stmt *st, int *col, int64_t records,
           const Fedq__V1__Aggregate *ag)
{
    Fedq__V1__AggregateState *s = fq_arena_alloc(a, sizeof(*s));
    if (!s)
        return NULL;
    fedq__v1__aggregate_state__init(s);
    switch (ag->kind) {
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT:
        s->count = records;
        break;
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT_DISTINCT:
        s->count = sqlite3_column_int64(st, (*col)++);
        break;
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_VAR:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_STDDEV:
        s->count = sqlite3_column_int64(st, (*col)++);
        s->mean = sqlite3_column_double(st, (*col)++);
        s->m2 = sqlite3_column_double(st, (*col)++);
        break;
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM:
        if (read_bins(a, st, col, ag, s) < 0)
            return NULL;
        break;
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE:
        if (read_sketch(a, st, (*col)++, s) < 0)
            return NULL;
        break;
    default:
        s->count = sqlite3_column_int64(st, (*col)++);
        if (sqlite3_column_type(st, *col) == SQLITE_FLOAT)
            s->decimal_sum = sqlite3_column_double(st, *col);
        else
            s->int_sum = sqlite3_column_int64(st, *col);
        (*col)++;
    }
    return s;
}

static Fedq__V1__PartialGroup *
read_group(struct fq_arena *a, sqlite3_stmt *st, const Fedq__V1__Plan *plan,
           const Fedq__V1__Dataset *ds)
{
    Fedq__V1__PartialGroup *g = fq_arena_alloc(a, sizeof(*g));
    int k = (int)plan->n_group_by;

    if (!g)
        return NULL;
    fedq__v1__partial_group__init(g);
    g->n_key = plan->n_group_by;
    g->key = fq_arena_alloc(a, (g->n_key + 1) * sizeof(*g->key));
    g->n_aggregates = plan->n_aggregates;
    g->aggregates =
        fq_arena_alloc(a, (g->n_aggregates + 1) * sizeof(*g->aggregates));
    if (!g->key || !g->aggregates)
        return NULL;
    for (int i = 0; i < k; i++) {
        const Fedq__V1__Column *col = fq_catalog_column(ds, plan->group_by[i]);
        if (!(g->key[i] = read_key(a, st, i, col)))
            return NULL;
    }
    g->records = sqlite3_column_int64(st, k);
    g->contributors = sqlite3_column_int64(st, k + 1);
    int col = k + 2;
    for (size_t i = 0; i < plan->n_aggregates; i++) {
        g->aggregates[i] =
            read_state(a, st, &col, g->records, plan->aggregates[i]);
        if (!g->aggregates[i])
            return NULL;
    }
    return g;
}

/* The group key value in column i without allocating: text points into
 * the statement's row, valid until the next step. */
static void
peek_key(sqlite3_stmt *st, int i, const Fedq__V1__Column *col,
         Fedq__V1__Literal *l)
{
    int t = sqlite3_column_type(st, i);

    fedq__v1__literal__init(l);
    if (t == SQLITE_NULL)
        return;
    if (col->type == FEDQ__V1__VALUE_TYPE__VALUE_TYPE_INTEGER &&
        t == SQLITE_INTEGER) {
        l->value_case = FEDQ__V1__LITERAL__VALUE_INT_VALUE;
        l->int_value = sqlite3_column_int64(st, i);
        return;
    }
    const unsigned char *txt = sqlite3_column_text(st, i);
    l->value_case = FEDQ__V1__LITERAL__VALUE_TEXT_VALUE;
    l->text_value = (char *)(txt ? (const char *)txt : "");
}

/* A row's group key (the first n_group_by columns) into lits/ptrs. */
static void
peek_keys(sqlite3_stmt *st, const Fedq__V1__Plan *plan,
          const Fedq__V1__Dataset *ds, Fedq__V1__Literal *lits,
          Fedq__V1__Literal **ptrs)
{
    for (size_t i = 0; i < plan->n_group_by; i++) {
        peek_key(st, (int)i, fq_catalog_column(ds, plan->group_by[i]),
                 &lits[i]);
        ptrs[i] = &lits[i];
    }
}

struct run {
    const Fedq__V1__Plan *plan;
    const Fedq__V1__Dataset *ds;
    size_t max_groups;
    struct fq_arena *arena;
    Fedq__V1__ExecuteResponse *resp;
    char *err;
    size_t errlen;
};

static int
add_group(struct run *r, Fedq__V1__PartialGroup *g, size_t *cap)
{
    Fedq__V1__ExecuteResponse *resp = r->resp;
    if (resp->n_groups == r->max_groups) {
        snprintf(r->err, r->errlen, "query produces more than %zu groups",
                 r->max_groups);
        return FQ_ETOOBIG;
    }
    if (resp->n_groups == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        Fedq__V1__PartialGroup **n =
            fq_arena_alloc(r->arena, ncap * sizeof(*n));
        if (!n)
            return FQ_ENOMEM;
        if (resp->n_groups)
            memcpy(n, resp->groups, resp->n_groups * sizeof(*n));
        resp->groups = n;
        *cap = ncap;
    }
    resp->groups[resp->n_groups++] = g;
    return 0;
}

static int
step_all(struct run *r, sqlite3 *db, sqlite3_stmt *st)
{
    size_t cap = 0;
    int s, rc;

    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        Fedq__V1__PartialGroup *g = read_group(r->arena, st, r->plan, r->ds);
        if (!g) {
            snprintf(r->err, r->errlen, "out of memory reading groups");
            return FQ_ENOMEM;
        }
        /* SQLite answers an aggregate without GROUP BY with one row even
         * when no record matches; a group without records does not exist. */
        if (g->records == 0)
            continue;
        if ((rc = add_group(r, g, &cap)) < 0)
            return rc;
    }
    if (s == SQLITE_DONE)
        return 0;
    /* SQLite's SUM reports an integer overflow rather than wrapping. */
    bool overflow = strstr(sqlite3_errmsg(db), "overflow") != NULL;
    snprintf(r->err, r->errlen, "%s",
             overflow ? "a sum overflows 64-bit integers"
                      : "the agency's database failed");
    return overflow ? FQ_ETOOBIG : FQ_EIO;
}

static int
prepare(sqlite3 *db, const struct compiled *c, sqlite3_stmt **ret)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(db, fq_buf_str(&c->sql), -1, &st, NULL) !=
            SQLITE_OK ||
        bind_all(st, c) < 0) {
        sqlite3_finalize(st);
        return FQ_EIO;
    }
    *ret = st;
    return 0;
}

/* Hists' bins in a persons row, after the aggregates' pairs. */
static size_t
person_bins(const Fedq__V1__Plan *plan)
{
    size_t n = 0;
    for (size_t k = 0; k < plan->n_aggregates; k++) {
        const Fedq__V1__Aggregate *ag = plan->aggregates[k];
        if (ag->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM)
            n += ag->n_edges + 1;
    }
    return n;
}

/* One persons row into cs (vals: scratch of n_aggregates + bins). */
static int
feed_person(struct run *r, struct ag_cellstats *cs, sqlite3_stmt *st,
            int64_t *counts, double *totals, int64_t *bins, size_t nb)
{
    const Fedq__V1__Plan *plan = r->plan;
    Fedq__V1__Literal lits[FQ_PLAN_MAX_GROUP_BY + 1];
    Fedq__V1__Literal *key[FQ_PLAN_MAX_GROUP_BY + 1];
    int col = (int)plan->n_group_by;
    const char *who = (const char *)sqlite3_column_text(st, col);
    size_t len = (size_t)sqlite3_column_bytes(st, col++);

    peek_keys(st, plan, r->ds, lits, key);
    for (size_t k = 0; k < plan->n_aggregates; k++) {
        counts[k] = sqlite3_column_int64(st, col++);
        totals[k] = sqlite3_column_double(st, col++);
    }
    for (size_t b = 0; b < nb; b++)
        bins[b] = sqlite3_column_int64(st, col++);
    return ag_cellstats_person(cs, key, who ? who : "", len, counts, totals,
                               bins);
}

/* Steps st to the end through fn; FQ_EIO on a database error. */
static int
feed_rows(sqlite3_stmt *st, int (*fn)(void *, sqlite3_stmt *), void *arg)
{
    int s, rc;

    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = fn(arg, st)) < 0)
            return rc;
    }
    return s == SQLITE_DONE ? 0 : FQ_EIO;
}

struct person_feed {
    struct run *r;
    struct ag_cellstats *cs;
    int64_t *counts, *bins;
    double *totals;
    size_t nb;
};

static int
person_row(void *arg, sqlite3_stmt *st)
{
    struct person_feed *p = arg;
    return feed_person(p->r, p->cs, st, p->counts, p->totals, p->bins, p->nb);
}

struct unit_feed {
    struct run *r;
    struct ag_cellstats *cs;
    size_t k;
};

static int
unit_row(void *arg, sqlite3_stmt *st)
{
    struct unit_feed *u = arg;
    Fedq__V1__Literal lits[FQ_PLAN_MAX_GROUP_BY + 1];
    Fedq__V1__Literal *key[FQ_PLAN_MAX_GROUP_BY + 1];

    peek_keys(st, u->r->plan, u->r->ds, lits, key);
    return ag_cellstats_unit(
        u->cs, key, u->k,
        sqlite3_column_double(st, (int)u->r->plan->n_group_by));
}

/* Runs one compiled statement through fn. */
static int
run_feed(struct run *r, sqlite3 *db, int (*build)(struct compiled *, void *),
         void *barg, int (*fn)(void *, sqlite3_stmt *), void *arg)
{
    struct compiled c = {0};
    sqlite3_stmt *st = NULL;
    int rc;

    fq_buf_init(&c.sql, SQL_MAX);
    if ((rc = build(&c, barg)) < 0 || (rc = prepare(db, &c, &st)) < 0 ||
        (rc = feed_rows(st, fn, arg)) < 0)
        snprintf(r->err, r->errlen, "%s",
                 rc == FQ_EPROTO ? "the agency's database changed during "
                                   "the query"
                                 : "the agency's database failed");
    sqlite3_finalize(st);
    fq_buf_release(&c.sql);
    return rc;
}

struct build_arg {
    struct run *r;
    const struct ag_source *src;
    const char *m, *unit;
};

static int
build_persons(struct compiled *c, void *arg)
{
    struct build_arg *b = arg;
    return compile_persons(c, b->r->arena, b->r->plan, b->src);
}

static int
build_units(struct compiled *c, void *arg)
{
    struct build_arg *b = arg;
    return compile_units(c, b->r->arena, b->r->plan, b->src, b->m, b->unit);
}

/* The disclosure fields of r's answer (cellstats.h): units first, so
 * that the persons' rows know which magnitudes they do not feed. */
static int
disclosure_fields(struct run *r, sqlite3 *db, const struct ag_source *src,
                  const struct ag_cell_secret *secret)
{
    const Fedq__V1__Plan *plan = r->plan;
    struct ag_cellstats *cs;
    size_t nb = person_bins(plan);
    int rc = ag_cellstats_new(plan, r->resp, secret, r->arena, &cs);

    for (size_t k = 0; rc == 0 && k < plan->n_aggregates; k++) {
        const Fedq__V1__Aggregate *ag = plan->aggregates[k];
        const Fedq__V1__Column *col =
            ag->column[0] ? fq_catalog_column(r->ds, ag->column) : NULL;
        if (!ag_cellstats_is_magnitude(ag->kind) || !col ||
            !col->contributor_unit[0])
            continue;
        ag_cellstats_set_unit_fed(cs, k);
        struct build_arg b = {r, src, ag->column, col->contributor_unit};
        struct unit_feed u = {r, cs, k};
        rc = run_feed(r, db, build_units, &b, unit_row, &u);
    }
    if (rc < 0) {
        if (rc == FQ_ENOMEM)
            snprintf(r->err, r->errlen, "out of memory");
        return rc;
    }
    struct person_feed p = {
        r,
        cs,
        fq_arena_alloc(r->arena, (plan->n_aggregates + 1) * 8),
        fq_arena_alloc(r->arena, (nb + 1) * 8),
        fq_arena_alloc(r->arena, (plan->n_aggregates + 1) * 8),
        nb};
    if (!p.counts || !p.bins || !p.totals) {
        snprintf(r->err, r->errlen, "out of memory");
        return FQ_ENOMEM;
    }
    struct build_arg b = {r, src, NULL, NULL};
    return run_feed(r, db, build_persons, &b, person_row, &p);
}

int
ag_execute(const struct ag_catalog *cat, const Fedq__V1__Plan *plan,
           size_t max_groups, struct fq_arena *arena,
           Fedq__V1__ExecuteResponse *resp, char *err, size_t errlen)
{
    const struct ag_source *src;
    const Fedq__V1__Dataset *ds = ag_catalog_find(cat, plan->dataset, &src);
    struct compiled c = {0};
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc;

    if (!ds) {
        snprintf(err, errlen, "no dataset '%s' at this agency", plan->dataset);
        return FQ_ENOENT;
    }
    if ((rc = fq_plan_check(plan, ds, err, errlen)) < 0)
        return rc;
    fq_buf_init(&c.sql, SQL_MAX);
    if ((rc = compile(&c, arena, plan, ds, src)) < 0) {
        snprintf(err, errlen, "cannot compile the plan");
        goto out;
    }
    rc = FQ_EIO;
    if (sqlite3_open_v2(src->sqlite, &db,
                        SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK ||
        sqlite3_create_function_v2(
            db, SKETCH_FN, 4, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, NULL,
            sketch_step, sketch_final, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, fq_buf_str(&c.sql), -1, &st, NULL) !=
            SQLITE_OK ||
        bind_all(st, &c) < 0) {
        snprintf(err, errlen, "the agency's database cannot run the plan");
        goto out;
    }
    struct run r = {plan, ds, max_groups, arena, resp, err, errlen};
    if ((rc = step_all(&r, db, st)) == 0)
        rc = disclosure_fields(&r, db, src, ag_catalog_secret(cat));
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    fq_buf_release(&c.sql);
    return rc;
}

/* ---- members (the differencing ledger) ---------------------------------- */

/*
 * SELECT keys..., the contributor's identifier as text (or the rowid),
 * rowid, then per plan aggregate: 1 (COUNT(*)), the HISTOGRAM bin of the
 * value (NULL outside every bin), or whether the value is not NULL.
 */
static int
compile_members(struct compiled *c, struct fq_arena *a,
                const Fedq__V1__Plan *plan, const struct ag_source *src)
{
    char notnull[96];
    int rc = select_keys_and_who(c, plan, src, notnull, sizeof(notnull));

    if (rc == 0)
        rc = fq_buf_append_str(&c->sql, ", rowid");
    for (size_t k = 0; rc == 0 && k < plan->n_aggregates; k++) {
        const Fedq__V1__Aggregate *ag = plan->aggregates[k];
        if (!ag->column[0]) {
            rc = fq_buf_append_str(&c->sql, ", 1");
            continue;
        }
        if (ag->kind != FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM) {
            rc = fq_buf_printf(&c->sql, ", \"%s\" IS NOT NULL", ag->column);
            continue;
        }
        rc = fq_buf_append_str(&c->sql, ", CASE");
        for (size_t b = 0; rc == 0 && b <= ag->n_edges; b++) {
            rc = fq_buf_append_str(&c->sql, " WHEN ");
            if (rc == 0)
                rc = compile_bin_test(c, a, ag, b);
            if (rc == 0)
                rc = fq_buf_printf(&c->sql, " THEN %zu", b);
        }
        if (rc == 0)
            rc = fq_buf_append_str(&c->sql, " END");
    }
    return rc == 0 ? compile_where(c, a, plan, src,
                                   src->contributor ? notnull : NULL)
                   : rc;
}

struct member_feed {
    const Fedq__V1__Plan *plan;
    const Fedq__V1__Dataset *ds;
    const struct ag_cell_secret *secret;
    const struct ag_member_ref *refs;
    struct ag_cell_index ix;
    struct ag_cellset *out;
    size_t *cap;
};

/* Whether the row (aggregate columns from col) is in cell r: a HISTOGRAM
 * column holds the value's bin, the others 1 for a member. */
static bool
row_in(sqlite3_stmt *st, int col, const Fedq__V1__Plan *plan,
       const struct ag_member_ref *r)
{
    int i = col + (int)r->agg;
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return false;
    int64_t v = sqlite3_column_int64(st, i);
    return plan->aggregates[r->agg]->kind ==
                   FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM
               ? v == (int64_t)r->bin
               : v == 1;
}

static int
member_row(void *arg, sqlite3_stmt *st)
{
    struct member_feed *f = arg;
    Fedq__V1__Literal lits[FQ_PLAN_MAX_GROUP_BY + 1];
    Fedq__V1__Literal *key[FQ_PLAN_MAX_GROUP_BY + 1];
    int col = (int)f->plan->n_group_by;
    const char *who = (const char *)sqlite3_column_text(st, col);
    size_t len = (size_t)sqlite3_column_bytes(st, col);
    struct ag_member m = {ag_person_tag(f->secret, who ? who : "", len),
                          (uint64_t)sqlite3_column_int64(st, col + 1)};
    size_t first, n;

    peek_keys(st, f->plan, f->ds, lits, key);
    n = ag_cell_index_find(&f->ix, key, &first);
    for (size_t s = first; s < first + n; s++) {
        size_t r = f->ix.sorted[s].ref;
        int rc;
        if (row_in(st, col + 2, f->plan, &f->refs[r]) &&
            (rc = ag_cellset_push(&f->out[r], &f->cap[r], m)) < 0)
            return rc;
    }
    return 0;
}

static int
build_members(struct compiled *c, void *arg)
{
    struct build_arg *b = arg;
    return compile_members(c, b->r->arena, b->r->plan, b->src);
}

int
ag_execute_members(const struct ag_catalog *cat, const Fedq__V1__Plan *plan,
                   const struct ag_member_ref *refs, size_t n,
                   struct fq_arena *arena, struct ag_cellset *out, char *err,
                   size_t errlen)
{
    const struct ag_source *src;
    const Fedq__V1__Dataset *ds = ag_catalog_find(cat, plan->dataset, &src);
    size_t *cap = fq_arena_alloc(arena, (n + 1) * sizeof(*cap));
    struct member_feed f = {plan, ds, ag_catalog_secret(cat), refs, {0},
                            out,  cap};
    sqlite3 *db = NULL;
    int rc = FQ_ENOMEM;

    memset(out, 0, n * sizeof(*out));
    if (!ds) {
        snprintf(err, errlen, "no dataset '%s' at this agency", plan->dataset);
        return FQ_ENOENT;
    }
    if (!ag_catalog_secret(cat)) {
        snprintf(err, errlen, "members need the cell-key secret");
        return FQ_EINVAL;
    }
    if (!cap ||
        ag_cell_index_build(&f.ix, refs, n, plan->n_group_by, arena) < 0) {
        snprintf(err, errlen, "out of memory");
        return FQ_ENOMEM;
    }
    if (sqlite3_open_v2(src->sqlite, &db,
                        SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "the agency's database cannot be opened");
        sqlite3_close(db);
        return FQ_EIO;
    }
    struct run r = {plan, ds, 0, arena, NULL, err, errlen};
    struct build_arg b = {&r, src, NULL, NULL};
    rc = run_feed(&r, db, build_members, &b, member_row, &f);
    sqlite3_close(db);
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
