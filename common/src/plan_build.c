/*
 * From a parsed fedq SQL query to a typed plan, against the catalog entry
 * of the dataset it names; see fq/plan.h. Every error points at the SQL
 * text ("line L, column C: ...") so the analyst can fix the query; the
 * finished plan then goes through fq_plan_check, the same check the agent
 * applies.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/plan.h"
#include "fq/sql.h"

struct build {
    const Fedq__V1__Dataset *ds;
    struct fq_arena *a;
    struct fq_sql_error *err;
};

static int build_fail(struct build *b, struct fq_sql_pos pos, int rc,
                      const char *fmt, ...) FQ_PRINTF(4, 5);

static int
build_fail(struct build *b, struct fq_sql_pos pos, int rc, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    b->err->pos = pos;
    snprintf(b->err->msg, sizeof(b->err->msg), "line %d, column %d: %s",
             pos.line, pos.column, msg);
    return rc;
}

/* The catalog column a name refers to, usable in a query. */
static const Fedq__V1__Column *
resolve(struct build *b, const struct fq_sql_name *n, int *rc)
{
    const Fedq__V1__Column *col = fq_catalog_column(b->ds, n->name);
    if (!col)
        *rc = build_fail(b, n->pos, FQ_EINVAL, "unknown column '%s' in %s.%s",
                         n->name, b->ds->agency, b->ds->name);
    else if (col->role == FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_IDENTIFIER)
        *rc = build_fail(b, n->pos, FQ_EINVAL,
                         "column '%s' is an identifier: it serves linkage "
                         "only and cannot appear in a query",
                         n->name);
    else
        return col;
    return NULL;
}

static Fedq__V1__Literal *
typed_literal(struct build *b, const Fedq__V1__Column *col,
              const struct fq_sql_literal *l, int *rc)
{
    Fedq__V1__Literal *lit = fq_arena_alloc(b->a, sizeof(*lit));
    char why[96];

    if (!lit) {
        *rc = FQ_ENOMEM;
        return NULL;
    }
    fedq__v1__literal__init(lit);
    if (l->kind == FQ_SQL_LIT_STRING) {
        lit->value_case = FEDQ__V1__LITERAL__VALUE_TEXT_VALUE;
        lit->text_value = (char *)l->s;
    } else if (col->type == FEDQ__V1__VALUE_TYPE__VALUE_TYPE_DECIMAL) {
        lit->value_case = FEDQ__V1__LITERAL__VALUE_DECIMAL_VALUE;
        lit->decimal_value = l->kind == FQ_SQL_LIT_INT ? (double)l->i : l->d;
    } else if (l->kind == FQ_SQL_LIT_INT) {
        lit->value_case = FEDQ__V1__LITERAL__VALUE_INT_VALUE;
        lit->int_value = l->i;
    } else {
        lit->value_case = FEDQ__V1__LITERAL__VALUE_DECIMAL_VALUE;
        lit->decimal_value = l->d;
    }
    if (fq_literal_check(lit, col->type, why, sizeof(why)) < 0) {
        *rc = build_fail(b, l->pos, FQ_EINVAL, "column '%s': %s, found %s",
                         col->name, why, l->text);
        return NULL;
    }
    return lit;
}

/* The leaf's literals, typed; NULL (rc set) on failure. */
static Fedq__V1__Literal **
typed_literals(struct build *b, const struct fq_sql_pred *p,
               const Fedq__V1__Column *col, int *rc)
{
    Fedq__V1__Literal **out =
        fq_arena_alloc(b->a, (p->n_lits + 1) * sizeof(*out));
    if (!out) {
        *rc = FQ_ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < p->n_lits; i++) {
        if (!(out[i] = typed_literal(b, col, &p->lits[i], rc)))
            return NULL;
    }
    return out;
}

static Fedq__V1__Predicate *build_pred(struct build *b,
                                       const struct fq_sql_pred *p, int *rc);

/* AND or OR: a list of sub-predicates. */
static int
build_list(struct build *b, const struct fq_sql_pred *p, Fedq__V1__Predicate *n)
{
    Fedq__V1__Predicate **terms =
        fq_arena_alloc(b->a, (p->n_kids + 1) * sizeof(*terms));
    int rc = 0;

    if (!terms)
        return FQ_ENOMEM;
    for (size_t i = 0; i < p->n_kids; i++) {
        if (!(terms[i] = build_pred(b, p->kids[i], &rc)))
            return rc;
    }
    if (p->kind == FQ_SQL_PRED_AND) {
        Fedq__V1__Conjunction *all = fq_arena_alloc(b->a, sizeof(*all));
        if (!all)
            return FQ_ENOMEM;
        fedq__v1__conjunction__init(all);
        all->terms = terms;
        all->n_terms = p->n_kids;
        n->node_case = FEDQ__V1__PREDICATE__NODE_ALL;
        n->all = all;
        return 0;
    }
    Fedq__V1__Disjunction *any = fq_arena_alloc(b->a, sizeof(*any));
    if (!any)
        return FQ_ENOMEM;
    fedq__v1__disjunction__init(any);
    any->terms = terms;
    any->n_terms = p->n_kids;
    n->node_case = FEDQ__V1__PREDICATE__NODE_ANY;
    n->any = any;
    return 0;
}

static int
build_not(struct build *b, const struct fq_sql_pred *p, Fedq__V1__Predicate *n)
{
    Fedq__V1__Negation *neg = fq_arena_alloc(b->a, sizeof(*neg));
    int rc = 0;

    if (!neg)
        return FQ_ENOMEM;
    fedq__v1__negation__init(neg);
    if (!(neg->term = build_pred(b, p->kids[0], &rc)))
        return rc;
    n->node_case = FEDQ__V1__PREDICATE__NODE_NOT;
    n->not_ = neg;
    return 0;
}

static int
build_is_null(struct build *b, const struct fq_sql_pred *p,
              Fedq__V1__Predicate *n)
{
    int rc = FQ_ENOMEM;
    Fedq__V1__IsNull *isn = NULL;

    if (!resolve(b, &p->column, &rc))
        return rc;
    if (!(isn = fq_arena_alloc(b->a, sizeof(*isn))))
        return FQ_ENOMEM;
    fedq__v1__is_null__init(isn);
    isn->column = (char *)p->column.name;
    isn->negated = p->negated;
    n->node_case = FEDQ__V1__PREDICATE__NODE_IS_NULL;
    n->is_null = isn;
    return 0;
}

static int
build_leaf(struct build *b, const struct fq_sql_pred *p, Fedq__V1__Predicate *n)
{
    int rc = FQ_ENOMEM;
    const Fedq__V1__Column *col = resolve(b, &p->column, &rc);
    Fedq__V1__Literal **lits = col ? typed_literals(b, p, col, &rc) : NULL;

    if (!lits)
        return rc;
    char *name = (char *)p->column.name;
    if (p->kind == FQ_SQL_PRED_CMP) {
        Fedq__V1__Comparison *c = fq_arena_alloc(b->a, sizeof(*c));
        if (!c)
            return FQ_ENOMEM;
        fedq__v1__comparison__init(c);
        c->column = name;
        c->op =
            (Fedq__V1__CompareOp)(p->op + FEDQ__V1__COMPARE_OP__COMPARE_OP_EQ);
        c->value = lits[0];
        n->node_case = FEDQ__V1__PREDICATE__NODE_COMPARE;
        n->compare = c;
    } else if (p->kind == FQ_SQL_PRED_BETWEEN) {
        Fedq__V1__Between *bw = fq_arena_alloc(b->a, sizeof(*bw));
        if (!bw)
            return FQ_ENOMEM;
        fedq__v1__between__init(bw);
        bw->column = name;
        bw->low = lits[0];
        bw->high = lits[1];
        n->node_case = FEDQ__V1__PREDICATE__NODE_BETWEEN;
        n->between = bw;
    } else {
        Fedq__V1__InList *in = fq_arena_alloc(b->a, sizeof(*in));
        if (!in)
            return FQ_ENOMEM;
        fedq__v1__in_list__init(in);
        in->column = name;
        in->values = lits;
        in->n_values = p->n_lits;
        n->node_case = FEDQ__V1__PREDICATE__NODE_IN;
        n->in = in;
    }
    return 0;
}

static Fedq__V1__Predicate *
build_pred(struct build *b, const struct fq_sql_pred *p, int *rc)
{
    Fedq__V1__Predicate *n = fq_arena_alloc(b->a, sizeof(*n));
    if (!n) {
        *rc = FQ_ENOMEM;
        return NULL;
    }
    fedq__v1__predicate__init(n);
    switch (p->kind) {
    case FQ_SQL_PRED_AND:
    case FQ_SQL_PRED_OR:
        *rc = build_list(b, p, n);
        break;
    case FQ_SQL_PRED_NOT:
        *rc = build_not(b, p, n);
        break;
    case FQ_SQL_PRED_IS_NULL:
        *rc = build_is_null(b, p, n);
        break;
    default:
        *rc = build_leaf(b, p, n);
    }
    return *rc < 0 ? NULL : n;
}

/* Every plain select item is grouped on, and every grouped column shown. */
static int
check_select_dims(struct build *b, const struct fq_sql_query *q)
{
    for (size_t i = 0; i < q->n_items; i++) {
        const struct fq_sql_item *it = &q->items[i];
        bool grouped = false;
        for (size_t g = 0; !it->is_aggregate && g < q->n_group_by; g++)
            grouped |= strcmp(q->group_by[g].name, it->column.name) == 0;
        if (!it->is_aggregate && !grouped)
            return build_fail(b, it->pos, FQ_EINVAL,
                              "column '%s' must be in GROUP BY or inside an "
                              "aggregate",
                              it->column.name);
    }
    for (size_t g = 0; g < q->n_group_by; g++) {
        bool shown = false;
        for (size_t i = 0; i < q->n_items; i++)
            shown |= !q->items[i].is_aggregate &&
                     strcmp(q->items[i].column.name, q->group_by[g].name) == 0;
        if (!shown)
            return build_fail(b, q->group_by[g].pos, FQ_EINVAL,
                              "grouped column '%s' must also be selected",
                              q->group_by[g].name);
    }
    return 0;
}

static int
build_group_by(struct build *b, const struct fq_sql_query *q,
               Fedq__V1__Plan *plan)
{
    int rc = 0;

    plan->group_by = fq_arena_alloc(b->a, (q->n_group_by + 1) * sizeof(char *));
    if (!plan->group_by)
        return FQ_ENOMEM;
    for (size_t g = 0; g < q->n_group_by; g++) {
        const Fedq__V1__Column *col = resolve(b, &q->group_by[g], &rc);
        if (!col)
            return rc;
        if (col->role != FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_DIMENSION)
            return build_fail(b, q->group_by[g].pos, FQ_EINVAL,
                              "column '%s' is not a dimension: only "
                              "dimensions with a published domain can be "
                              "grouped on",
                              col->name);
        plan->group_by[plan->n_group_by++] = (char *)q->group_by[g].name;
    }
    return check_select_dims(b, q);
}

/* COUNT(DISTINCT c) counts persons (an identifier) or dimension values;
 * nothing of either is released but the count. */
static int
build_count_distinct(struct build *b, const struct fq_sql_item *it,
                     Fedq__V1__Aggregate *ag)
{
    const Fedq__V1__Column *col = fq_catalog_column(b->ds, it->column.name);

    if (!col)
        return build_fail(b, it->column.pos, FQ_EINVAL,
                          "unknown column '%s' in %s.%s", it->column.name,
                          b->ds->agency, b->ds->name);
    if (col->role != FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_IDENTIFIER &&
        col->role != FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_DIMENSION)
        return build_fail(b, it->column.pos, FQ_EINVAL,
                          "COUNT(DISTINCT) takes an identifier or a "
                          "dimension, and '%s' is neither",
                          col->name);
    ag->column = (char *)it->column.name;
    return 0;
}

/* HISTOGRAM's edges, typed like the measure (the parser has checked
 * that they increase). */
static int
build_edges(struct build *b, const struct fq_sql_item *it,
            const Fedq__V1__Column *col, Fedq__V1__Aggregate *ag)
{
    int rc = 0;

    ag->edges = fq_arena_alloc(b->a, (it->n_args + 1) * sizeof(*ag->edges));
    if (!ag->edges)
        return FQ_ENOMEM;
    for (size_t i = 0; i < it->n_args; i++) {
        if (!(ag->edges[i] = typed_literal(b, col, &it->args[i], &rc)))
            return rc;
        ag->n_edges++;
    }
    return 0;
}

/* QUANTILE only where the agency's catalog publishes a sketch for it. */
static int
build_quantile(struct build *b, const struct fq_sql_item *it,
               const Fedq__V1__Column *col, Fedq__V1__Aggregate *ag)
{
    if (col->quantile_bins == 0)
        return build_fail(b, it->column.pos, FQ_EINVAL,
                          "QUANTILE is not enabled on '%s' in %s.%s: the "
                          "agency's catalog gives it no quantile_bins",
                          col->name, b->ds->agency, b->ds->name);
    ag->fraction = it->args[0].d;
    return 0;
}

static int
build_aggregate(struct build *b, const struct fq_sql_item *it,
                Fedq__V1__Aggregate *ag)
{
    static const Fedq__V1__AggregateKind kinds[] = {
        [FQ_SQL_AGG_COUNT_STAR] =
            FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT,
        [FQ_SQL_AGG_SUM] = FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM,
        [FQ_SQL_AGG_AVG] = FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_AVG,
        [FQ_SQL_AGG_COUNT_DISTINCT] =
            FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT_DISTINCT,
        [FQ_SQL_AGG_VAR] = FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_VAR,
        [FQ_SQL_AGG_STDDEV] = FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_STDDEV,
        [FQ_SQL_AGG_HISTOGRAM] =
            FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM,
        [FQ_SQL_AGG_QUANTILE] =
            FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE,
    };
    int rc = 0;

    fedq__v1__aggregate__init(ag);
    ag->kind = kinds[it->agg];
    if (it->agg == FQ_SQL_AGG_COUNT_STAR)
        return 0;
    if (it->agg == FQ_SQL_AGG_COUNT_DISTINCT)
        return build_count_distinct(b, it, ag);
    const Fedq__V1__Column *col = resolve(b, &it->column, &rc);
    if (!col)
        return rc;
    if (col->role != FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_MEASURE)
        return build_fail(b, it->column.pos, FQ_EINVAL,
                          "column '%s' is not a measure: %s takes a measure",
                          col->name, fq_sql_agg_name(it->agg));
    ag->column = (char *)it->column.name;
    if (it->agg == FQ_SQL_AGG_HISTOGRAM)
        return build_edges(b, it, col, ag);
    if (it->agg == FQ_SQL_AGG_QUANTILE)
        return build_quantile(b, it, col, ag);
    return 0;
}

static int
build_aggregates(struct build *b, const struct fq_sql_query *q,
                 Fedq__V1__Plan *plan)
{
    plan->aggregates = fq_arena_alloc(b->a, (q->n_items + 1) * sizeof(void *));
    if (!plan->aggregates)
        return FQ_ENOMEM;
    size_t bins = 0;
    for (size_t i = 0; i < q->n_items; i++) {
        if (!q->items[i].is_aggregate)
            continue;
        Fedq__V1__Aggregate *ag = fq_arena_alloc(b->a, sizeof(*ag));
        if (!ag)
            return FQ_ENOMEM;
        int rc = build_aggregate(b, &q->items[i], ag);
        if (rc < 0)
            return rc;
        plan->aggregates[plan->n_aggregates++] = ag;
        /* Refused where the limit is crossed, not at the end. */
        if (ag->n_edges && (bins += ag->n_edges + 1) > FQ_PLAN_MAX_BINS)
            return build_fail(b, q->items[i].pos, FQ_EINVAL,
                              "the HISTOGRAMs of one query have more than "
                              "%d bins",
                              FQ_PLAN_MAX_BINS);
    }
    if (plan->n_aggregates == 0)
        return build_fail(b, q->items[0].pos, FQ_EINVAL,
                          "a query needs at least one aggregate: COUNT(*), "
                          "SUM(measure) or AVG(measure)");
    return 0;
}

int
fq_plan_from_sql(const struct fq_sql_query *q, const Fedq__V1__Dataset *ds,
                 struct fq_arena *arena, Fedq__V1__Plan **ret,
                 struct fq_sql_error *err)
{
    struct build b = {ds, arena, err};
    Fedq__V1__Plan *plan = fq_arena_alloc(arena, sizeof(*plan));
    char why[256];
    int rc;

    if (!plan)
        return FQ_ENOMEM;
    fedq__v1__plan__init(plan);
    plan->dataset = (char *)ds->name;
    if ((rc = build_group_by(&b, q, plan)) < 0 ||
        (rc = build_aggregates(&b, q, plan)) < 0)
        return rc;
    if (q->where && !(plan->filter = build_pred(&b, q->where, &rc)))
        return rc;
    if ((rc = fq_plan_check(plan, ds, why, sizeof(why))) < 0)
        return build_fail(&b, q->source.pos, rc, "%s", why);
    *ret = plan;
    return 0;
}
