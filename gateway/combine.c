/*
 * Pooling partial aggregates: the agencies' groups are sorted by key and
 * equal keys merged, adding records, contributors, counts and sums (an
 * integer sum that leaves int64 is an error, never a wrap). The result is
 * in key order, which is also the order rows are released in: ordering
 * never looks at aggregate values, so it cannot leak a suppressed one.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "gateway.h"

#include "fedq/v1/agent.pb-c.h"

/* Total order on literals: no value first, then integers, decimals, text. */
static int
literal_cmp(const Fedq__V1__Literal *a, const Fedq__V1__Literal *b)
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

static int
group_cmp(const void *pa, const void *pb)
{
    const Fedq__V1__PartialGroup *a = *(Fedq__V1__PartialGroup *const *)pa;
    const Fedq__V1__PartialGroup *b = *(Fedq__V1__PartialGroup *const *)pb;
    size_t n = a->n_key < b->n_key ? a->n_key : b->n_key;

    for (size_t i = 0; i < n; i++) {
        int c = literal_cmp(a->key[i], b->key[i]);
        if (c)
            return c;
    }
    return (a->n_key > b->n_key) - (a->n_key < b->n_key);
}

static int
add_checked(int64_t *acc, int64_t v)
{
    return __builtin_add_overflow(*acc, v, acc) ? FQ_ETOOBIG : 0;
}

/*
 * Pools (n, mean, M2) exactly (Chan, Golub and LeVeque): the merged M2 is
 * the two M2s plus delta^2 * na * nb / n. Runs before the counts are
 * added; for states without moments both means are 0 and nothing moves.
 */
static void
merge_moments(Fedq__V1__AggregateState *d, const Fedq__V1__AggregateState *s)
{
    double na = (double)d->count, nb = (double)s->count, n = na + nb;
    if (nb == 0)
        return;
    double delta = s->mean - d->mean;
    d->m2 += s->m2 + delta * delta * na * nb / n;
    d->mean += delta * nb / n;
}

/* Adds src into dst (same key); FQ_ETOOBIG on an integer overflow. */
static int
merge_into(Fedq__V1__PartialGroup *dst, const Fedq__V1__PartialGroup *src)
{
    int rc = add_checked(&dst->records, src->records);
    if (rc == 0)
        rc = add_checked(&dst->contributors, src->contributors);
    for (size_t i = 0; rc == 0 && i < dst->n_aggregates; i++) {
        Fedq__V1__AggregateState *d = dst->aggregates[i];
        const Fedq__V1__AggregateState *s = src->aggregates[i];
        merge_moments(d, s);
        d->decimal_sum += s->decimal_sum;
        if ((rc = add_checked(&d->count, s->count)) == 0)
            rc = add_checked(&d->int_sum, s->int_sum);
    }
    return rc;
}

/* A fresh copy of g's counters (keys shared), to merge others into. */
static Fedq__V1__PartialGroup *
group_copy(struct fq_arena *a, const Fedq__V1__PartialGroup *g)
{
    Fedq__V1__PartialGroup *c = fq_arena_alloc(a, sizeof(*c));
    if (!c)
        return NULL;
    *c = *g;
    c->aggregates = fq_arena_alloc(a, (g->n_aggregates + 1) * sizeof(void *));
    if (!c->aggregates)
        return NULL;
    for (size_t i = 0; i < g->n_aggregates; i++) {
        c->aggregates[i] = fq_arena_alloc(a, sizeof(*c->aggregates[i]));
        if (!c->aggregates[i])
            return NULL;
        *c->aggregates[i] = *g->aggregates[i];
    }
    return c;
}

/* Every group of every part, checked for the plan's shape. */
static int
gather(struct fq_arena *a, Fedq__V1__ExecuteResponse *const *parts,
       size_t nparts, size_t n_keys, size_t n_aggs,
       Fedq__V1__PartialGroup ***ret, size_t *ret_n)
{
    size_t total = 0, n = 0;

    for (size_t p = 0; p < nparts; p++)
        total += parts[p]->n_groups;
    Fedq__V1__PartialGroup **all =
        fq_arena_alloc(a, (total + 1) * sizeof(*all));
    if (!all)
        return FQ_ENOMEM;
    for (size_t p = 0; p < nparts; p++) {
        for (size_t g = 0; g < parts[p]->n_groups; g++) {
            Fedq__V1__PartialGroup *grp = parts[p]->groups[g];
            if (grp->n_key != n_keys || grp->n_aggregates != n_aggs)
                return FQ_EPROTO;
            all[n++] = grp;
        }
    }
    *ret = all;
    *ret_n = n;
    return 0;
}

int
gw_combine(struct fq_arena *a, Fedq__V1__ExecuteResponse *const *parts,
           size_t nparts, size_t n_keys, size_t n_aggs, size_t max_groups,
           Fedq__V1__PartialGroup ***ret, size_t *ret_n)
{
    Fedq__V1__PartialGroup **all;
    size_t n, out = 0;
    int rc = gather(a, parts, nparts, n_keys, n_aggs, &all, &n);

    if (rc < 0)
        return rc;
    qsort(all, n, sizeof(*all), group_cmp);
    for (size_t i = 0; i < n; i++) {
        if (out > 0 && group_cmp(&all[out - 1], &all[i]) == 0) {
            if ((rc = merge_into(all[out - 1], all[i])) < 0)
                return rc;
            continue;
        }
        if (out == max_groups)
            return FQ_ETOOBIG;
        if (!(all[out++] = group_copy(a, all[i])))
            return FQ_ENOMEM;
    }
    *ret = all;
    *ret_n = out;
    return 0;
}
