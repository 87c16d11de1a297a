/*
 * The steward's preview of a held query (ag_review_preview): this agency's
 * own part of the answer, finished as the gateway would finish it and
 * rendered as text, after the agreement's minimum cell count. The gateway
 * pools the contributors of every agency before the rule; the preview can
 * only count this agency's, so it never shows a cell the pooled answer
 * would hide for lack of contributors here.
 *
 * The rule, as the gateway applies it: a group with fewer than k
 * contributors shows none of its aggregates; a HISTOGRAM bin with 1 to k-1
 * contributors is hidden on its own (an empty bin is released). Group-by
 * values are always shown: they come from the published domains.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/plan.h"
#include "review.h"

#include <math.h>

#define SUPPRESSED     "suppressed"
#define NOT_APPLICABLE "n/a"

/* A key value as the CLI prints it. */
static char *
key_text(const Fedq__V1__Literal *k, struct fq_arena *a)
{
    switch (k ? k->value_case : FEDQ__V1__LITERAL__VALUE__NOT_SET) {
    case FEDQ__V1__LITERAL__VALUE_INT_VALUE:
        return fq_arena_printf(a, "%" PRId64, k->int_value);
    case FEDQ__V1__LITERAL__VALUE_DECIMAL_VALUE:
        return fq_arena_printf(a, "%.2f", k->decimal_value);
    case FEDQ__V1__LITERAL__VALUE_TEXT_VALUE:
        return fq_arena_strdup(a, k->text_value);
    default:
        return fq_arena_strdup(a, NOT_APPLICABLE);
    }
}

static bool
is_decimal(const Fedq__V1__Dataset *ds, const Fedq__V1__Aggregate *ag)
{
    const Fedq__V1__Column *col = ds && ag->column && ag->column[0]
                                      ? fq_catalog_column(ds, ag->column)
                                      : NULL;
    return col && col->type == FEDQ__V1__VALUE_TYPE__VALUE_TYPE_DECIMAL;
}

/* QUANTILE from this agency's sketch, as the gateway picks it. */
static char *
quantile_text(const Fedq__V1__Dataset *ds, const Fedq__V1__Aggregate *ag,
              const Fedq__V1__AggregateState *s, struct fq_arena *a)
{
    const Fedq__V1__Column *col = ds ? fq_catalog_column(ds, ag->column) : NULL;
    struct fq_quantile q;

    if (!col || s->n_sketch_bins != s->n_sketch_counts ||
        fq_quantile_pick(col, ag->fraction, s->sketch_bins, s->sketch_counts,
                         s->n_sketch_bins, &q) < 0)
        return fq_arena_strdup(a, NOT_APPLICABLE);
    return fq_arena_printf(a, "%" PRId64, q.value);
}

/* One aggregate's value (not a HISTOGRAM) from its partial state. */
static char *
value_text(const Fedq__V1__Dataset *ds, const Fedq__V1__Aggregate *ag,
           const Fedq__V1__AggregateState *s, struct fq_arena *a)
{
    bool decimal = is_decimal(ds, ag);

    switch (ag->kind) {
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT_DISTINCT:
        return fq_arena_printf(a, "%" PRId64, s->count);
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM:
        return decimal ? fq_arena_printf(a, "%.2f", s->decimal_sum)
                       : fq_arena_printf(a, "%" PRId64, s->int_sum);
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_AVG:
        if (s->count == 0)
            return fq_arena_strdup(a, NOT_APPLICABLE);
        return fq_arena_printf(a, "%.2f",
                               (decimal ? s->decimal_sum : (double)s->int_sum) /
                                   (double)s->count);
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_VAR:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_STDDEV: {
        if (s->count < 2) /* a sample variance needs two values */
            return fq_arena_strdup(a, NOT_APPLICABLE);
        double var = s->m2 / (double)(s->count - 1);
        return fq_arena_printf(
            a, "%.2f",
            ag->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_VAR
                ? var
                : sqrt(var));
    }
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE:
        return quantile_text(ds, ag, s, a);
    default:
        return fq_arena_strdup(a, NOT_APPLICABLE);
    }
}

/* Columns one aggregate takes: a HISTOGRAM one per bin. */
static size_t
width(const Fedq__V1__Aggregate *ag)
{
    return ag->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM
               ? ag->n_edges + 1
               : 1;
}

static int
preview_columns(const Fedq__V1__Plan *plan, struct fq_arena *a,
                Fedq__V1__GetReviewResponse *resp, size_t *ret_n)
{
    size_t n = plan->n_group_by;

    for (size_t i = 0; i < plan->n_aggregates; i++)
        n += width(plan->aggregates[i]);
    if (!(resp->columns = fq_arena_alloc(a, (n + 1) * sizeof(char *))))
        return FQ_ENOMEM;
    for (size_t i = 0; i < plan->n_group_by; i++)
        resp->columns[resp->n_columns++] = plan->group_by[i];
    for (size_t i = 0; i < plan->n_aggregates; i++) {
        const Fedq__V1__Aggregate *ag = plan->aggregates[i];
        for (size_t b = 0; b < width(ag); b++) {
            char *name =
                ag->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM
                    ? fq_histogram_bin_name(ag, b, a)
                    : (char *)fq_plan_aggregate_name(ag, a);
            if (!name)
                return FQ_ENOMEM;
            resp->columns[resp->n_columns++] = name;
        }
    }
    *ret_n = n;
    return 0;
}

/* The cells of aggregate ag of a group into vals from *at. */
static int
aggregate_cells(const Fedq__V1__Dataset *ds, const Fedq__V1__Aggregate *ag,
                const Fedq__V1__AggregateState *s, bool hide, int64_t k,
                struct fq_arena *a, char **vals, size_t *at)
{
    static const Fedq__V1__AggregateState empty =
        FEDQ__V1__AGGREGATE_STATE__INIT;

    if (!s)
        s = &empty;
    if (ag->kind != FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM) {
        vals[(*at)++] =
            hide ? fq_arena_strdup(a, SUPPRESSED) : value_text(ds, ag, s, a);
        return vals[*at - 1] ? 0 : FQ_ENOMEM;
    }
    for (size_t b = 0; b < width(ag); b++) {
        int64_t v = b < s->n_bins ? s->bins[b] : 0;
        int64_t who = b < s->n_bin_contributors ? s->bin_contributors[b] : 0;
        bool h = hide || (who > 0 && who < k);
        if (!(vals[(*at)++] = h ? fq_arena_strdup(a, SUPPRESSED)
                                : fq_arena_printf(a, "%" PRId64, v)))
            return FQ_ENOMEM;
    }
    return 0;
}

static Fedq__V1__ReviewRow *
preview_row(const Fedq__V1__Plan *plan, const Fedq__V1__PartialGroup *g,
            const Fedq__V1__Dataset *ds, int64_t k, size_t n_cols,
            struct fq_arena *a)
{
    Fedq__V1__ReviewRow *row = fq_arena_alloc(a, sizeof(*row));
    bool hide = g->contributors < k;
    size_t at = 0;

    if (!row)
        return NULL;
    fedq__v1__review_row__init(row);
    if (!(row->values = fq_arena_alloc(a, (n_cols + 1) * sizeof(char *))))
        return NULL;
    for (size_t i = 0; i < plan->n_group_by; i++) {
        if (!(row->values[at++] = key_text(i < g->n_key ? g->key[i] : NULL, a)))
            return NULL;
    }
    for (size_t i = 0; i < plan->n_aggregates; i++) {
        if (aggregate_cells(ds, plan->aggregates[i],
                            i < g->n_aggregates ? g->aggregates[i] : NULL, hide,
                            k, a, row->values, &at) < 0)
            return NULL;
    }
    row->n_values = at;
    return row;
}

int
ag_review_preview(const Fedq__V1__Plan *plan,
                  const Fedq__V1__ExecuteResponse *answer,
                  const Fedq__V1__Dataset *ds, uint32_t k,
                  struct fq_arena *arena, Fedq__V1__GetReviewResponse *resp)
{
    size_t n = answer->n_groups, n_cols = 0;
    Fedq__V1__PartialGroup **groups;

    resp->min_cell_count = k;
    if (!plan)
        return 0;
    if (preview_columns(plan, arena, resp, &n_cols) < 0 ||
        !(resp->rows = fq_arena_alloc(arena, (n + 1) * sizeof(void *))) ||
        !(groups = fq_arena_alloc(arena, (n + 1) * sizeof(*groups))))
        return FQ_ENOMEM;
    /* A copy: the answer stays as the agent computed it. */
    if (n)
        memcpy(groups, answer->groups, n * sizeof(*groups));
    qsort(groups, n, sizeof(*groups), fq_group_key_cmp);
    for (size_t i = 0; i < n; i++) {
        if (!(resp->rows[resp->n_rows++] =
                  preview_row(plan, groups[i], ds, k, n_cols, arena)))
            return FQ_ENOMEM;
    }
    return 0;
}
