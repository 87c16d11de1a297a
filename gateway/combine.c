/*
 * Pooling partial aggregates: the agencies' groups are sorted by key and
 * equal keys merged, adding records, contributors, counts, sums, histogram
 * bins and quantile sketch bins, and pooling (n, mean, M2) exactly (an
 * integer sum that leaves int64 is an error, never a wrap). Every answer
 * is first checked for the plan's shape. On request each agency's own
 * group of every pooled key is kept beside it: the insider rule
 * (query.c) weighs the pooled cell against each agency's part, since
 * every agency knows its own. The result is in key order, which is also
 * the order rows are released in: ordering never looks at aggregate
 * values, so it cannot leak a suppressed one.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/plan.h"
#include "gateway.h"

#include "fedq/v1/agent.pb-c.h"

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

/* Bin counts add up bin by bin, and the bins' cell keys mod 2^32 (the
 * shapes were checked by gather). */
static int
merge_bins(Fedq__V1__AggregateState *d, const Fedq__V1__AggregateState *s)
{
    for (size_t b = 0; b < d->n_bins; b++) {
        if (add_checked(&d->bins[b], s->bins[b]) < 0 ||
            add_checked(&d->bin_contributors[b], s->bin_contributors[b]) < 0)
            return FQ_ETOOBIG;
        d->bin_cell_keys[b] += s->bin_cell_keys[b];
    }
    return 0;
}

/*
 * The disclosure fields: contributors and units add up (agencies hold
 * disjoint populations), cell keys add mod 2^32, and the pooled two
 * largest unit totals are the two largest of the agencies' (each agency's
 * units are its own), so the pooled dominance rule is exact.
 */
static int
merge_cells(Fedq__V1__AggregateState *d, const Fedq__V1__AggregateState *s)
{
    const double top[2] = {s->top1, s->top2};

    if (add_checked(&d->contributors, s->contributors) < 0 ||
        add_checked(&d->units, s->units) < 0)
        return FQ_ETOOBIG;
    d->cell_key += s->cell_key;
    d->abs_total += s->abs_total;
    for (int k = 0; k < 2; k++) {
        if (top[k] > d->top1) {
            d->top2 = d->top1;
            d->top1 = top[k];
        } else if (top[k] > d->top2) {
            d->top2 = top[k];
        }
    }
    return 0;
}

/* The union of two sparse sketches (indexes increasing), counts added,
 * into fresh arrays in a. */
static int
merge_sketch(struct fq_arena *a, Fedq__V1__AggregateState *d,
             const Fedq__V1__AggregateState *s)
{
    size_t cap = d->n_sketch_bins + s->n_sketch_bins, i = 0, j = 0, n = 0;
    uint32_t *bins = fq_arena_alloc(a, (cap + 1) * sizeof(*bins));
    int64_t *counts = fq_arena_alloc(a, (cap + 1) * sizeof(*counts));

    if (!bins || !counts)
        return FQ_ENOMEM;
    while (i < d->n_sketch_bins || j < s->n_sketch_bins) {
        bool take_d =
            j == s->n_sketch_bins ||
            (i < d->n_sketch_bins && d->sketch_bins[i] <= s->sketch_bins[j]);
        bool take_s =
            i == d->n_sketch_bins ||
            (j < s->n_sketch_bins && s->sketch_bins[j] <= d->sketch_bins[i]);
        bins[n] = take_d ? d->sketch_bins[i] : s->sketch_bins[j];
        counts[n] = 0;
        if (take_d)
            counts[n] = d->sketch_counts[i++];
        if (take_s && add_checked(&counts[n], s->sketch_counts[j++]) < 0)
            return FQ_ETOOBIG;
        n++;
    }
    d->sketch_bins = bins;
    d->sketch_counts = counts;
    d->n_sketch_bins = d->n_sketch_counts = n;
    return 0;
}

/* Adds src into dst (same key); FQ_ETOOBIG on an integer overflow. */
static int
merge_into(struct fq_arena *a, Fedq__V1__PartialGroup *dst,
           const Fedq__V1__PartialGroup *src)
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
        if (rc == 0)
            rc = merge_cells(d, s);
        if (rc == 0 && d->n_bins)
            rc = merge_bins(d, s);
        if (rc == 0 && s->n_sketch_bins)
            rc = merge_sketch(a, d, s);
    }
    return rc;
}

static int64_t *
copy_counts(struct fq_arena *a, const int64_t *v, size_t n)
{
    int64_t *c = fq_arena_alloc(a, (n + 1) * sizeof(*c));
    if (c && n)
        memcpy(c, v, n * sizeof(*c));
    return c;
}

static uint32_t *
copy_keys(struct fq_arena *a, const uint32_t *v, size_t n)
{
    uint32_t *c = fq_arena_alloc(a, (n + 1) * sizeof(*c));
    if (c && n)
        memcpy(c, v, n * sizeof(*c));
    return c;
}

/* A fresh copy of g's counters (keys and sketches shared: a merge makes
 * new sketch arrays), to merge others into. */
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
        Fedq__V1__AggregateState *s = fq_arena_alloc(a, sizeof(*s));
        if (!s)
            return NULL;
        *s = *g->aggregates[i];
        if (s->n_bins &&
            (!(s->bins = copy_counts(a, s->bins, s->n_bins)) ||
             !(s->bin_contributors =
                   copy_counts(a, s->bin_contributors, s->n_bins)) ||
             !(s->bin_cell_keys = copy_keys(a, s->bin_cell_keys, s->n_bins))))
            return NULL;
        c->aggregates[i] = s;
    }
    return c;
}

/* A sketch from an agent: bins increasing and inside the column's sketch,
 * counts positive. */
static bool
sketch_ok(const Fedq__V1__AggregateState *s, const Fedq__V1__Column *col)
{
    int64_t w;
    uint32_t used;

    if (s->n_sketch_bins != s->n_sketch_counts ||
        fq_quantile_sketch(col, &w, &used) < 0 || s->n_sketch_bins > used)
        return false;
    for (size_t i = 0; i < s->n_sketch_bins; i++) {
        if (s->sketch_bins[i] >= used || s->sketch_counts[i] <= 0 ||
            (i && s->sketch_bins[i] <= s->sketch_bins[i - 1]))
            return false;
    }
    return true;
}

/* One aggregate state has the shape its plan aggregate calls for. */
static bool
state_ok(const Fedq__V1__AggregateState *s, const Fedq__V1__Aggregate *ag,
         const Fedq__V1__Dataset *ds)
{
    bool hist = ag->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM;
    bool quant = ag->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE;

    if (s->n_bins != (hist ? ag->n_edges + 1 : 0) ||
        s->n_bin_contributors != s->n_bins || s->n_bin_cell_keys != s->n_bins)
        return false;
    /* What the rules weigh must be sane, or a broken agent could make a
     * small cell look large. */
    if (s->contributors < 0 || s->units < 0 || !(s->top1 >= 0) ||
        !(s->top2 >= 0) || s->top2 > s->top1 || !(s->abs_total >= 0))
        return false;
    if (!quant)
        return s->n_sketch_bins == 0 && s->n_sketch_counts == 0;
    return ds && sketch_ok(s, fq_catalog_column(ds, ag->column));
}

static bool
group_ok(const Fedq__V1__PartialGroup *g, const Fedq__V1__Plan *plan,
         const Fedq__V1__Dataset *ds)
{
    if (g->n_key != plan->n_group_by || g->n_aggregates != plan->n_aggregates)
        return false;
    for (size_t i = 0; i < g->n_aggregates; i++) {
        if (!state_ok(g->aggregates[i], plan->aggregates[i], ds))
            return false;
    }
    return true;
}

/* One agency's group and the part (agency) it came from. */
struct entry {
    Fedq__V1__PartialGroup *g;
    size_t part;
};

/*
 * Key order, equal keys in part order: pooling then adds them in one
 * order whatever qsort does (decimal sums and moments are not
 * associative), and a part that sent one key twice is found next to
 * itself.
 */
static int
entry_cmp(const void *pa, const void *pb)
{
    const struct entry *a = pa, *b = pb;
    int c = fq_group_key_cmp(&a->g, &b->g);

    if (c)
        return c;
    return (a->part > b->part) - (a->part < b->part);
}

/* Every group of every part, checked for the plan's shape. */
static int
gather(struct fq_arena *a, Fedq__V1__ExecuteResponse *const *parts,
       size_t nparts, const Fedq__V1__Plan *plan, const Fedq__V1__Dataset *ds,
       struct entry **ret, size_t *ret_n)
{
    size_t total = 0, n = 0;

    for (size_t p = 0; p < nparts; p++)
        total += parts[p]->n_groups;
    struct entry *all = fq_arena_alloc(a, (total + 1) * sizeof(*all));
    if (!all)
        return FQ_ENOMEM;
    for (size_t p = 0; p < nparts; p++) {
        for (size_t g = 0; g < parts[p]->n_groups; g++) {
            Fedq__V1__PartialGroup *grp = parts[p]->groups[g];
            if (!group_ok(grp, plan, ds))
                return FQ_EPROTO;
            all[n].g = grp;
            all[n++].part = p;
        }
    }
    *ret = all;
    *ret_n = n;
    return 0;
}

/*
 * The number of distinct keys in sorted all[0..n), or FQ_ETOOBIG past max;
 * FQ_EPROTO if one part holds a key twice: its part of the pooled cell
 * would then be unknown (an agent groups each key once).
 */
static int
count_keys(const struct entry *all, size_t n, size_t max, size_t *ret)
{
    size_t keys = 0;

    for (size_t i = 0; i < n; i++) {
        if (i > 0 && entry_cmp(&all[i - 1], &all[i]) == 0)
            return FQ_EPROTO;
        if (i > 0 && fq_group_key_cmp(&all[i - 1].g, &all[i].g) == 0)
            continue;
        if (keys++ == max)
            return FQ_ETOOBIG;
    }
    *ret = keys;
    return 0;
}

/* The one group of a table without GROUP BY over no records: counts of
 * 0 (SQL's answer), each HISTOGRAM with its bins, all empty. */
static Fedq__V1__PartialGroup *
empty_group(struct fq_arena *a, const Fedq__V1__Plan *plan)
{
    Fedq__V1__PartialGroup *g = fq_arena_alloc(a, sizeof(*g));

    if (!g)
        return NULL;
    fedq__v1__partial_group__init(g);
    if (!(g->aggregates = fq_arena_alloc(a, (plan->n_aggregates + 1) *
                                                sizeof(*g->aggregates))))
        return NULL;
    for (size_t i = 0; i < plan->n_aggregates; i++) {
        const Fedq__V1__Aggregate *ag = plan->aggregates[i];
        Fedq__V1__AggregateState *s = fq_arena_alloc(a, sizeof(*s));
        size_t nb =
            ag->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM
                ? ag->n_edges + 1
                : 0;
        if (!s)
            return NULL;
        fedq__v1__aggregate_state__init(s);
        s->bins = fq_arena_alloc(a, (nb + 1) * sizeof(*s->bins));
        s->bin_contributors =
            fq_arena_alloc(a, (nb + 1) * sizeof(*s->bin_contributors));
        s->bin_cell_keys =
            fq_arena_alloc(a, (nb + 1) * sizeof(*s->bin_cell_keys));
        if (!s->bins || !s->bin_contributors || !s->bin_cell_keys)
            return NULL;
        memset(s->bins, 0, (nb + 1) * sizeof(*s->bins));
        memset(s->bin_contributors, 0, (nb + 1) * sizeof(*s->bin_contributors));
        memset(s->bin_cell_keys, 0, (nb + 1) * sizeof(*s->bin_cell_keys));
        s->n_bins = s->n_bin_contributors = s->n_bin_cell_keys = nb;
        g->aggregates[g->n_aggregates++] = s;
    }
    return g;
}

int
gw_combine_parts(struct fq_arena *a, Fedq__V1__ExecuteResponse *const *parts,
                 size_t nparts, const Fedq__V1__Plan *plan,
                 const Fedq__V1__Dataset *ds, size_t max_groups,
                 Fedq__V1__PartialGroup ***ret, size_t *ret_n,
                 const Fedq__V1__PartialGroup ***own_ret)
{
    struct entry *all;
    size_t n, keys, cells, out = 0;
    int rc = gather(a, parts, nparts, plan, ds, &all, &n);

    if (rc < 0)
        return rc;
    qsort(all, n, sizeof(*all), entry_cmp);
    if ((rc = count_keys(all, n, max_groups, &keys)) < 0)
        return rc;
    if (__builtin_mul_overflow(keys, nparts, &cells))
        return FQ_ETOOBIG;
    Fedq__V1__PartialGroup **groups =
        fq_arena_alloc(a, (keys + 1) * sizeof(*groups));
    const Fedq__V1__PartialGroup **own =
        own_ret ? fq_arena_alloc(a, (cells + 1) * sizeof(*own)) : NULL;
    if (!groups || (own_ret && !own))
        return FQ_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (out > 0 && fq_group_key_cmp(&groups[out - 1], &all[i].g) == 0) {
            if ((rc = merge_into(a, groups[out - 1], all[i].g)) < 0)
                return rc;
        } else if (!(groups[out++] = group_copy(a, all[i].g))) {
            return FQ_ENOMEM;
        }
        if (own)
            own[(out - 1) * nparts + all[i].part] = all[i].g;
    }
    /* No records at all: without GROUP BY the table still has its row,
     * or a missing row would tell a zero from a suppressed count. */
    if (out == 0 && plan->n_group_by == 0) {
        if (!(groups[0] = empty_group(a, plan)))
            return FQ_ENOMEM;
        out = 1;
        if (own && !(own = fq_arena_alloc(a, (nparts + 1) * sizeof(*own))))
            return FQ_ENOMEM;
        for (size_t p = 0; own && p < nparts; p++)
            own[p] = NULL;
    }
    *ret = groups;
    *ret_n = out;
    if (own_ret)
        *own_ret = own;
    return 0;
}

int
gw_combine(struct fq_arena *a, Fedq__V1__ExecuteResponse *const *parts,
           size_t nparts, const Fedq__V1__Plan *plan,
           const Fedq__V1__Dataset *ds, size_t max_groups,
           Fedq__V1__PartialGroup ***ret, size_t *ret_n)
{
    return gw_combine_parts(a, parts, nparts, plan, ds, max_groups, ret, ret_n,
                            NULL);
}

/* ---- the full shape --------------------------------------------------------
 */

/* The published values of dimension c, as literals (in a). */
static int
domain_values(struct fq_arena *a, const Fedq__V1__Column *c,
              Fedq__V1__Literal ***ret, size_t *ret_n, size_t max)
{
    const Fedq__V1__Domain *d = c ? c->domain : NULL;
    size_t n = 0;
    int64_t lo = 0, hi = -1;

    if (!d)
        return FQ_EINVAL;
    if (d->kind_case == FEDQ__V1__DOMAIN__KIND_CODES)
        n = d->codes->n_codes;
    else if (d->kind_case == FEDQ__V1__DOMAIN__KIND_RANGE) {
        lo = d->range->min;
        hi = d->range->max;
        uint64_t span = (uint64_t)hi - (uint64_t)lo; /* no overflow */
        n = hi < lo ? 0 : span >= max ? max + 1 : (size_t)span + 1;
    } else {
        return FQ_EINVAL;
    }
    if (n > max)
        return FQ_ETOOBIG;
    Fedq__V1__Literal **v = fq_arena_alloc(a, (n + 1) * sizeof(*v));
    if (!v)
        return FQ_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!(v[i] = fq_arena_alloc(a, sizeof(*v[i]))))
            return FQ_ENOMEM;
        fedq__v1__literal__init(v[i]);
        if (d->kind_case == FEDQ__V1__DOMAIN__KIND_CODES) {
            v[i]->value_case = FEDQ__V1__LITERAL__VALUE_TEXT_VALUE;
            v[i]->text_value = d->codes->codes[i];
        } else {
            v[i]->value_case = FEDQ__V1__LITERAL__VALUE_INT_VALUE;
            v[i]->int_value = lo + (int64_t)i;
        }
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

/* A pooled group and its agencies' own groups, for sorting together. */
struct slot {
    Fedq__V1__PartialGroup *g;
    const Fedq__V1__PartialGroup **own;
};

static int
slot_cmp(const void *pa, const void *pb)
{
    const struct slot *a = pa, *b = pb;
    return fq_group_key_cmp(&a->g, &b->g);
}

/* Whether the sorted groups hold key. */
static bool
has_key(Fedq__V1__PartialGroup *const *groups, size_t n,
        Fedq__V1__PartialGroup *probe)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = fq_group_key_cmp(&groups[mid], &probe);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* The combinations' count, saturated above max. */
static size_t
combinations(const size_t *nv, size_t k, size_t max)
{
    size_t total = 1;
    for (size_t i = 0; i < k; i++) {
        if (nv[i] == 0)
            return 0;
        if (__builtin_mul_overflow(total, nv[i], &total) || total > max)
            return max + 1;
    }
    return total;
}

int
gw_combine_fill(struct fq_arena *a, const Fedq__V1__Plan *plan,
                const Fedq__V1__Dataset *ds, size_t max_groups, size_t nparts,
                Fedq__V1__PartialGroup ***groups, size_t *n,
                const Fedq__V1__PartialGroup ***own, size_t *too_many)
{
    size_t k = plan->n_group_by, nv[FQ_PLAN_MAX_GROUP_BY + 1], total, out;
    Fedq__V1__Literal **vals[FQ_PLAN_MAX_GROUP_BY + 1];
    int rc;

    *too_many = 0;
    if (k == 0 || k > FQ_PLAN_MAX_GROUP_BY)
        return 0;
    for (size_t i = 0; i < k; i++) {
        if ((rc = domain_values(a, fq_catalog_column(ds, plan->group_by[i]),
                                &vals[i], &nv[i], max_groups)) < 0) {
            *too_many = max_groups + 1;
            return rc == FQ_EINVAL ? FQ_ETOOBIG : rc;
        }
    }
    if ((total = combinations(nv, k, max_groups)) > max_groups) {
        *too_many = total;
        return FQ_ETOOBIG;
    }
    struct slot *s = fq_arena_alloc(a, (*n + total + 1) * sizeof(*s));
    if (!s)
        return FQ_ENOMEM;
    for (out = 0; out < *n; out++)
        s[out] = (struct slot){(*groups)[out], *own + out * nparts};
    for (size_t c = 0; c < total; c++) {
        Fedq__V1__PartialGroup *g = empty_group(a, plan);
        if (!g || !(g->key = fq_arena_alloc(a, (k + 1) * sizeof(*g->key))))
            return FQ_ENOMEM;
        g->n_key = k;
        for (size_t i = k, rest = c; i-- > 0; rest /= nv[i])
            g->key[i] = vals[i][rest % nv[i]];
        if (has_key(*groups, *n, g))
            continue;
        const Fedq__V1__PartialGroup **none =
            fq_arena_alloc(a, (nparts + 1) * sizeof(*none));
        if (!none)
            return FQ_ENOMEM;
        memset(none, 0, (nparts + 1) * sizeof(*none));
        s[out++] = (struct slot){g, none};
    }
    qsort(s, out, sizeof(*s), slot_cmp);
    Fedq__V1__PartialGroup **ng = fq_arena_alloc(a, (out + 1) * sizeof(*ng));
    const Fedq__V1__PartialGroup **no =
        fq_arena_alloc(a, (out * nparts + 1) * sizeof(*no));
    if (!ng || !no)
        return FQ_ENOMEM;
    for (size_t i = 0; i < out; i++) {
        ng[i] = s[i].g;
        memcpy(no + i * nparts, s[i].own, nparts * sizeof(*no));
    }
    *groups = ng;
    *own = no;
    *n = out;
    return 0;
}
