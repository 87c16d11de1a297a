/*
 * The disclosure fields of the SQL engines' answers, from per-contributor
 * rows (see cellstats.h). Groups are found by key through a sorted index
 * (the order of fq_group_key_cmp); each row updates its group's states in
 * place.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/plan.h"
#include "cellkey.h"
#include "cellstats.h"

#include <math.h>

#include "fedq/v1/agent.pb-c.h"

struct ag_cellstats {
    const Fedq__V1__Plan *plan;
    const struct ag_cell_secret *secret;
    Fedq__V1__PartialGroup **sorted; /* resp's groups by key */
    size_t n;
    bool *unit_fed; /* per aggregate */
};

bool
ag_cellstats_is_magnitude(int kind)
{
    return kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM ||
           kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_AVG ||
           kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_VAR ||
           kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_STDDEV;
}

static bool
is_histogram(const Fedq__V1__Aggregate *ag)
{
    return ag->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM;
}

/* Every histogram state gets its bin keys, zeroed. */
static int
prepare(struct ag_cellstats *cs, struct fq_arena *a)
{
    for (size_t i = 0; i < cs->n; i++) {
        Fedq__V1__PartialGroup *g = cs->sorted[i];
        for (size_t k = 0; k < cs->plan->n_aggregates; k++) {
            Fedq__V1__AggregateState *s = g->aggregates[k];
            if (!is_histogram(cs->plan->aggregates[k]))
                continue;
            s->n_bin_cell_keys = s->n_bins;
            s->bin_cell_keys =
                fq_arena_alloc(a, (s->n_bins + 1) * sizeof(*s->bin_cell_keys));
            if (!s->bin_cell_keys)
                return FQ_ENOMEM;
        }
    }
    return 0;
}

int
ag_cellstats_new(const Fedq__V1__Plan *plan, Fedq__V1__ExecuteResponse *resp,
                 const struct ag_cell_secret *secret, struct fq_arena *arena,
                 struct ag_cellstats **ret)
{
    struct ag_cellstats *cs = fq_arena_alloc(arena, sizeof(*cs));

    if (!cs)
        return FQ_ENOMEM;
    cs->plan = plan;
    cs->secret = secret;
    cs->n = resp->n_groups;
    cs->sorted = fq_arena_alloc(arena, (cs->n + 1) * sizeof(*cs->sorted));
    cs->unit_fed =
        fq_arena_alloc(arena, (plan->n_aggregates + 1) * sizeof(bool));
    if (!cs->sorted || !cs->unit_fed)
        return FQ_ENOMEM;
    if (cs->n)
        memcpy(cs->sorted, resp->groups, cs->n * sizeof(*cs->sorted));
    qsort(cs->sorted, cs->n, sizeof(*cs->sorted), fq_group_key_cmp);
    int rc = prepare(cs, arena);
    if (rc == 0)
        *ret = cs;
    return rc;
}

void
ag_cellstats_set_unit_fed(struct ag_cellstats *cs, size_t k)
{
    cs->unit_fed[k] = true;
}

static Fedq__V1__PartialGroup *
find(const struct ag_cellstats *cs, struct Fedq__V1__Literal *const *key)
{
    Fedq__V1__PartialGroup want = FEDQ__V1__PARTIAL_GROUP__INIT;
    const Fedq__V1__PartialGroup *pw = &want;

    want.key = (Fedq__V1__Literal **)key;
    want.n_key = cs->plan->n_group_by;
    Fedq__V1__PartialGroup **hit =
        bsearch(&pw, cs->sorted, cs->n, sizeof(*cs->sorted), fq_group_key_cmp);
    return hit ? *hit : NULL;
}

/* One unit's total into the two largest and the sum of absolute values. */
static void
add_unit(Fedq__V1__AggregateState *s, double total)
{
    double v = fabs(total);

    s->units++;
    s->abs_total += v;
    if (v > s->top1) {
        s->top2 = s->top1;
        s->top1 = v;
    } else if (v > s->top2) {
        s->top2 = v;
    }
}

int
ag_cellstats_person(struct ag_cellstats *cs,
                    struct Fedq__V1__Literal *const *key, const char *id,
                    size_t len, const int64_t *counts, const double *totals,
                    const int64_t *bins)
{
    Fedq__V1__PartialGroup *g = find(cs, key);
    uint32_t rk = ag_record_key(cs->secret, id, len);
    size_t b0 = 0;

    if (!g)
        return FQ_EPROTO;
    for (size_t k = 0; k < cs->plan->n_aggregates; k++) {
        const Fedq__V1__Aggregate *ag = cs->plan->aggregates[k];
        Fedq__V1__AggregateState *s = g->aggregates[k];
        if (counts[k] > 0) {
            s->contributors++;
            s->cell_key += rk; /* mod 2^32 */
            if (ag_cellstats_is_magnitude(ag->kind) && !cs->unit_fed[k])
                add_unit(s, totals[k]);
        }
        if (!is_histogram(ag))
            continue;
        for (size_t b = 0; b < s->n_bin_cell_keys; b++)
            s->bin_cell_keys[b] += bins[b0 + b] > 0 ? rk : 0;
        b0 += ag->n_edges + 1;
    }
    return 0;
}

int
ag_cellstats_unit(struct ag_cellstats *cs, struct Fedq__V1__Literal *const *key,
                  size_t k, double total)
{
    Fedq__V1__PartialGroup *g = find(cs, key);

    if (!g || k >= cs->plan->n_aggregates)
        return FQ_EPROTO;
    add_unit(g->aggregates[k], total);
    return 0;
}
