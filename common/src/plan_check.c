/*
 * Plan checks shared by the gateway and the agents; see fq/plan.h. The
 * agent runs this on every plan it receives, so nothing here trusts the
 * gateway: names come from the catalog, roles decide what a column may do,
 * and literals must have their column's type and form.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/plan.h"

#include <ctype.h>

const Fedq__V1__Column *
fq_catalog_column(const Fedq__V1__Dataset *ds, const char *name)
{
    for (size_t i = 0; i < ds->n_columns; i++) {
        if (strcmp(ds->columns[i]->name, name) == 0)
            return ds->columns[i];
    }
    return NULL;
}

static bool
digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

static bool
valid_date(const char *s)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-' || !digits(s, 4) ||
        !digits(s + 5, 2) || !digits(s + 8, 2))
        return false;
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 +
            (s[3] - '0');
    int m = (s[5] - '0') * 10 + (s[6] - '0');
    int d = (s[8] - '0') * 10 + (s[9] - '0');
    if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return !(m == 2 && d == 29 && !leap);
}

static bool
valid_month(const char *s)
{
    return strlen(s) == 7 && s[4] == '-' && digits(s, 4) && digits(s + 5, 2) &&
           ((s[5] == '0' && s[6] >= '1') || (s[5] == '1' && s[6] <= '2'));
}

static bool
valid_quarter(const char *s)
{
    return strlen(s) == 6 && digits(s, 4) && s[4] == 'Q' && s[5] >= '1' &&
           s[5] <= '4';
}

/* The text forms of DATE, MONTH and QUARTER; NULL for other types. */
static const char *
text_form(Fedq__V1__ValueType type, bool (**ret_valid)(const char *))
{
    switch (type) {
    case FEDQ__V1__VALUE_TYPE__VALUE_TYPE_DATE:
        *ret_valid = valid_date;
        return "a date like '2024-01-31'";
    case FEDQ__V1__VALUE_TYPE__VALUE_TYPE_MONTH:
        *ret_valid = valid_month;
        return "a month like '2024-01'";
    case FEDQ__V1__VALUE_TYPE__VALUE_TYPE_QUARTER:
        *ret_valid = valid_quarter;
        return "a quarter like '2024Q1'";
    default:
        return NULL;
    }
}

int
fq_literal_check(const Fedq__V1__Literal *lit, Fedq__V1__ValueType type,
                 char *why, size_t whylen)
{
    bool (*valid)(const char *) = NULL;
    const char *form = text_form(type, &valid);
    Fedq__V1__Literal__ValueCase k = lit->value_case;

    if (type == FEDQ__V1__VALUE_TYPE__VALUE_TYPE_INTEGER &&
        k == FEDQ__V1__LITERAL__VALUE_INT_VALUE)
        return 0;
    if (type == FEDQ__V1__VALUE_TYPE__VALUE_TYPE_DECIMAL &&
        (k == FEDQ__V1__LITERAL__VALUE_INT_VALUE ||
         k == FEDQ__V1__LITERAL__VALUE_DECIMAL_VALUE))
        return 0;
    if (type == FEDQ__V1__VALUE_TYPE__VALUE_TYPE_TEXT &&
        k == FEDQ__V1__LITERAL__VALUE_TEXT_VALUE)
        return 0;
    if (form && k == FEDQ__V1__LITERAL__VALUE_TEXT_VALUE &&
        valid(lit->text_value))
        return 0;
    if (form)
        snprintf(why, whylen, "expected %s", form);
    else if (type == FEDQ__V1__VALUE_TYPE__VALUE_TYPE_INTEGER)
        snprintf(why, whylen, "expected an integer");
    else if (type == FEDQ__V1__VALUE_TYPE__VALUE_TYPE_DECIMAL)
        snprintf(why, whylen, "expected a number");
    else
        snprintf(why, whylen, "expected a quoted string");
    return FQ_EINVAL;
}

/* ---- the checks -----------------------------------------------------------
 */

struct check {
    const Fedq__V1__Dataset *ds;
    char *err;
    size_t errlen;
    size_t terms;
};

#define FAIL(c, rc, ...)                              \
    do {                                              \
        snprintf((c)->err, (c)->errlen, __VA_ARGS__); \
        return (rc);                                  \
    } while (0)

/* A column any part of a plan may name: present, and not an identifier. */
static const Fedq__V1__Column *
usable_column(struct check *c, const char *name)
{
    const Fedq__V1__Column *col = fq_catalog_column(c->ds, name);
    if (!col)
        snprintf(c->err, c->errlen, "unknown column '%s' in %s.%s", name,
                 c->ds->agency, c->ds->name);
    else if (col->role == FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_IDENTIFIER)
        snprintf(c->err, c->errlen,
                 "column '%s' is an identifier: it serves linkage only and "
                 "cannot appear in a query",
                 name);
    else
        return col;
    return NULL;
}

static int
check_literal(struct check *c, const Fedq__V1__Column *col,
              const Fedq__V1__Literal *lit)
{
    char why[80];
    if (!lit || fq_literal_check(lit, col->type, why, sizeof(why)) < 0)
        FAIL(c, FQ_EINVAL, "column '%s': %s", col->name,
             lit ? why : "missing value");
    return 0;
}

static int check_predicate(struct check *c, const Fedq__V1__Predicate *p,
                           int depth);

static int
check_leaf(struct check *c, const char *column, Fedq__V1__Literal *const *lits,
           size_t n)
{
    const Fedq__V1__Column *col = usable_column(c, column);
    if (!col)
        return FQ_EINVAL;
    for (size_t i = 0; i < n; i++) {
        int rc = check_literal(c, col, lits[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The terms of an AND or an OR: at least one, each checked. */
static int
check_terms(struct check *c, Fedq__V1__Predicate *const *terms, size_t n,
            int depth)
{
    if (n == 0)
        FAIL(c, FQ_EINVAL, "empty AND or OR in the filter");
    for (size_t i = 0; i < n; i++) {
        int rc = check_predicate(c, terms[i], depth + 1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int
check_predicate(struct check *c, const Fedq__V1__Predicate *p, int depth)
{
    if (depth > FQ_PLAN_MAX_DEPTH)
        FAIL(c, FQ_ETOOBIG, "filter nested deeper than %d", FQ_PLAN_MAX_DEPTH);
    bool leaf = p->node_case != FEDQ__V1__PREDICATE__NODE_ALL &&
                p->node_case != FEDQ__V1__PREDICATE__NODE_ANY &&
                p->node_case != FEDQ__V1__PREDICATE__NODE_NOT;
    if (leaf && ++c->terms > FQ_PLAN_MAX_TERMS)
        FAIL(c, FQ_ETOOBIG, "filter has more than %d terms", FQ_PLAN_MAX_TERMS);
    switch (p->node_case) {
    case FEDQ__V1__PREDICATE__NODE_ALL:
        return check_terms(c, p->all->terms, p->all->n_terms, depth);
    case FEDQ__V1__PREDICATE__NODE_ANY:
        return check_terms(c, p->any->terms, p->any->n_terms, depth);
    case FEDQ__V1__PREDICATE__NODE_NOT:
        if (!p->not_->term)
            FAIL(c, FQ_EINVAL, "NOT without a term in the filter");
        return check_predicate(c, p->not_->term, depth + 1);
    case FEDQ__V1__PREDICATE__NODE_IS_NULL:
        return check_leaf(c, p->is_null->column, NULL, 0);
    case FEDQ__V1__PREDICATE__NODE_COMPARE:
        if (p->compare->op < FEDQ__V1__COMPARE_OP__COMPARE_OP_EQ ||
            p->compare->op > FEDQ__V1__COMPARE_OP__COMPARE_OP_GE)
            FAIL(c, FQ_EINVAL, "unknown comparison operator");
        return check_leaf(c, p->compare->column, &p->compare->value, 1);
    case FEDQ__V1__PREDICATE__NODE_BETWEEN: {
        Fedq__V1__Literal *pair[2] = {p->between->low, p->between->high};
        return check_leaf(c, p->between->column, pair, 2);
    }
    case FEDQ__V1__PREDICATE__NODE_IN:
        if (p->in->n_values == 0 || p->in->n_values > FQ_PLAN_MAX_IN_VALUES)
            FAIL(c, FQ_EINVAL, "IN list must have 1 to %d values",
                 FQ_PLAN_MAX_IN_VALUES);
        return check_leaf(c, p->in->column, p->in->values, p->in->n_values);
    default:
        FAIL(c, FQ_EINVAL, "empty or unknown filter node");
    }
}

static int
check_group_by(struct check *c, const Fedq__V1__Plan *plan)
{
    if (plan->n_group_by > FQ_PLAN_MAX_GROUP_BY)
        FAIL(c, FQ_ETOOBIG, "GROUP BY has more than %d columns",
             FQ_PLAN_MAX_GROUP_BY);
    for (size_t i = 0; i < plan->n_group_by; i++) {
        const Fedq__V1__Column *col = usable_column(c, plan->group_by[i]);
        if (!col)
            return FQ_EINVAL;
        if (col->role != FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_DIMENSION)
            FAIL(c, FQ_EINVAL,
                 "column '%s' is not a dimension: only dimensions with a "
                 "published domain can be grouped on",
                 col->name);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(plan->group_by[i], plan->group_by[j]) == 0)
                FAIL(c, FQ_EINVAL, "column '%s' grouped on twice", col->name);
        }
    }
    return 0;
}

static int
check_count_distinct(struct check *c, const Fedq__V1__Aggregate *a)
{
    const Fedq__V1__Column *col = fq_catalog_column(c->ds, a->column);
    if (!col)
        FAIL(c, FQ_EINVAL, "unknown column '%s' in %s.%s", a->column,
             c->ds->agency, c->ds->name);
    if (col->role != FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_IDENTIFIER &&
        col->role != FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_DIMENSION)
        FAIL(c, FQ_EINVAL,
             "COUNT(DISTINCT) takes an identifier or a dimension, and '%s' "
             "is neither",
             col->name);
    return 0;
}

static double
edge_value(const Fedq__V1__Literal *e)
{
    return e->value_case == FEDQ__V1__LITERAL__VALUE_INT_VALUE
               ? (double)e->int_value
               : e->decimal_value;
}

/* HISTOGRAM: 1 to FQ_PLAN_MAX_EDGES edges of the measure's type, strictly
 * increasing (integers compared exactly). */
static int
check_edges(struct check *c, const Fedq__V1__Aggregate *a,
            const Fedq__V1__Column *col)
{
    char why[96];

    if (a->n_edges == 0 || a->n_edges > FQ_PLAN_MAX_EDGES)
        FAIL(c, FQ_EINVAL, "HISTOGRAM(%s) needs 1 to %d edges", col->name,
             FQ_PLAN_MAX_EDGES);
    for (size_t i = 0; i < a->n_edges; i++) {
        const Fedq__V1__Literal *e = a->edges[i], *p = i ? a->edges[i - 1] : 0;
        if (fq_literal_check(e, col->type, why, sizeof(why)) < 0 ||
            e->value_case == FEDQ__V1__LITERAL__VALUE_TEXT_VALUE)
            FAIL(c, FQ_EINVAL, "HISTOGRAM(%s) edge %zu: %s", col->name, i + 1,
                 "expected a number of the measure's type");
        bool ints = p && p->value_case == FEDQ__V1__LITERAL__VALUE_INT_VALUE &&
                    e->value_case == FEDQ__V1__LITERAL__VALUE_INT_VALUE;
        if (p && (ints ? p->int_value >= e->int_value
                       : !(edge_value(p) < edge_value(e))))
            FAIL(c, FQ_EINVAL,
                 "HISTOGRAM(%s) edges must be strictly increasing (edge %zu)",
                 col->name, i + 1);
    }
    return 0;
}

/* QUANTILE: only on a measure whose catalog entry publishes a sketch. */
static int
check_quantile(struct check *c, const Fedq__V1__Aggregate *a,
               const Fedq__V1__Column *col)
{
    if (col->quantile_bins == 0 ||
        fq_quantile_width(col->bounds ? col->bounds->min : 0,
                          col->bounds ? col->bounds->max : -1,
                          col->quantile_bins) <= 0)
        FAIL(c, FQ_EINVAL,
             "QUANTILE is not enabled on '%s' in %s.%s: the agency's catalog "
             "gives it no quantile_bins",
             col->name, c->ds->agency, c->ds->name);
    if (!(a->fraction > 0 && a->fraction < 1))
        FAIL(c, FQ_EINVAL, "QUANTILE(%s, q) needs 0 < q < 1", col->name);
    return 0;
}

/* Edges and q belong to HISTOGRAM and QUANTILE only. */
static int
check_aggregate_args(struct check *c, const Fedq__V1__Aggregate *a)
{
    if (a->n_edges &&
        a->kind != FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM)
        FAIL(c, FQ_EINVAL, "only HISTOGRAM takes edges");
    if (a->fraction != 0 &&
        a->kind != FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE)
        FAIL(c, FQ_EINVAL, "only QUANTILE takes a fraction");
    return 0;
}

static int
check_aggregate(struct check *c, const Fedq__V1__Aggregate *a)
{
    if (check_aggregate_args(c, a) < 0)
        return FQ_EINVAL;
    switch (a->kind) {
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT:
        if (a->column[0])
            FAIL(c, FQ_EINVAL, "COUNT takes * or DISTINCT");
        return 0;
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT_DISTINCT:
        return check_count_distinct(c, a);
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_AVG:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_VAR:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_STDDEV:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE:
        break;
    default:
        FAIL(c, FQ_EINVAL, "unknown aggregate");
    }
    const Fedq__V1__Column *col = usable_column(c, a->column);
    if (!col)
        return FQ_EINVAL;
    if (col->role != FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_MEASURE)
        FAIL(c, FQ_EINVAL, "column '%s' is not a measure: %s takes measures",
             col->name, fq_plan_aggregate_name(a, NULL));
    if (a->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM)
        return check_edges(c, a, col);
    if (a->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE)
        return check_quantile(c, a, col);
    return 0;
}

static int
check_aggregates(struct check *c, const Fedq__V1__Plan *plan)
{
    if (plan->n_aggregates == 0 || plan->n_aggregates > FQ_PLAN_MAX_AGGREGATES)
        FAIL(c, FQ_EINVAL, "a query needs 1 to %d aggregates",
             FQ_PLAN_MAX_AGGREGATES);
    size_t bins = 0;
    for (size_t i = 0; i < plan->n_aggregates; i++) {
        int rc = check_aggregate(c, plan->aggregates[i]);
        if (rc < 0)
            return rc;
        if (plan->aggregates[i]->n_edges)
            bins += plan->aggregates[i]->n_edges + 1;
    }
    /* Each bin is two result columns at the agent (values, contributors). */
    if (bins > FQ_PLAN_MAX_BINS)
        FAIL(c, FQ_EINVAL,
             "the HISTOGRAMs of one query have %zu bins; at "
             "most %d",
             bins, FQ_PLAN_MAX_BINS);
    return 0;
}

int
fq_plan_check(const Fedq__V1__Plan *plan, const Fedq__V1__Dataset *ds,
              char *err, size_t errlen)
{
    struct check c = {ds, err, errlen, 0};
    int rc;

    if (strcmp(plan->dataset, ds->name) != 0)
        FAIL(&c, FQ_EINVAL, "plan is for dataset '%s', not '%s'", plan->dataset,
             ds->name);
    if ((rc = check_group_by(&c, plan)) < 0 ||
        (rc = check_aggregates(&c, plan)) < 0)
        return rc;
    if (plan->filter && (rc = check_predicate(&c, plan->filter, 0)) < 0)
        return rc;
    return 0;
}

int
fq_plan_check_group_by_limit(const Fedq__V1__Plan *plan, size_t max, char *err,
                             size_t errlen)
{
    if (plan->n_group_by <= max)
        return 0;
    snprintf(err, errlen,
             "GROUP BY has %zu columns; at most %zu are allowed here "
             "(max_group_by)",
             plan->n_group_by, max);
    return FQ_EINVAL;
}

/* "HISTOGRAM(wages, 0, 1000)": the aggregate as written. */
static const char *
histogram_name(const Fedq__V1__Aggregate *agg, struct fq_arena *a)
{
    char *s = fq_arena_printf(a, "HISTOGRAM(%s", agg->column);
    for (size_t i = 0; s && i < agg->n_edges; i++) {
        const Fedq__V1__Literal *e = agg->edges[i];
        s = e->value_case == FEDQ__V1__LITERAL__VALUE_INT_VALUE
                ? fq_arena_printf(a, "%s, %" PRId64, s, e->int_value)
                : fq_arena_printf(a, "%s, %g", s, e->decimal_value);
    }
    return s ? fq_arena_printf(a, "%s)", s) : NULL;
}

const char *
fq_plan_aggregate_name(const Fedq__V1__Aggregate *agg, struct fq_arena *arena)
{
    static const char *const names[] = {
        [FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM] = "SUM",
        [FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_AVG] = "AVG",
        [FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_VAR] = "VAR",
        [FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_STDDEV] = "STDDEV",
        [FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT_DISTINCT] =
            "COUNT(DISTINCT",
        [FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM] = "HISTOGRAM",
        [FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE] = "QUANTILE",
    };
    size_t k = (size_t)agg->kind;

    if (agg->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT)
        return "COUNT(*)";
    if (k >= FQ_ARRAY_LEN(names) || !names[k])
        return "?";
    if (!arena) /* a name for messages: no column */
        return names[k];
    if (agg->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE)
        return fq_arena_printf(arena, "QUANTILE(%s, %g)", agg->column,
                               agg->fraction);
    if (agg->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM)
        return histogram_name(agg, arena);
    bool distinct =
        agg->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT_DISTINCT;
    return fq_arena_printf(arena, "%s%s%s)", names[k], distinct ? " " : "(",
                           agg->column);
}

int
fq_literal_cmp(const Fedq__V1__Literal *a, const Fedq__V1__Literal *b)
{
    if (a->value_case != b->value_case)
        return a->value_case < b->value_case ? -1 : 1;
    switch (a->value_case) {
    case FEDQ__V1__LITERAL__VALUE_INT_VALUE:
        return (a->int_value > b->int_value) - (a->int_value < b->int_value);
    case FEDQ__V1__LITERAL__VALUE_DECIMAL_VALUE:
        return (a->decimal_value > b->decimal_value) -
               (a->decimal_value < b->decimal_value);
    case FEDQ__V1__LITERAL__VALUE_TEXT_VALUE:
        return strcmp(a->text_value, b->text_value);
    default:
        return 0;
    }
}

int
fq_group_key_cmp(const void *pa, const void *pb)
{
    const Fedq__V1__PartialGroup *a =
        *(const Fedq__V1__PartialGroup *const *)pa;
    const Fedq__V1__PartialGroup *b =
        *(const Fedq__V1__PartialGroup *const *)pb;

    for (size_t i = 0; i < a->n_key && i < b->n_key; i++) {
        int c = fq_literal_cmp(a->key[i], b->key[i]);
        if (c)
            return c;
    }
    return (a->n_key > b->n_key) - (a->n_key < b->n_key);
}
