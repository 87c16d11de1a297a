/*
 * The gateway's side of the differencing ledger (agent/ledger.h): which
 * cells of a table the agents weigh, and the decision on their answers.
 *
 * Each agency reports, for a pair of cells (a candidate and an earlier
 * released cell, or two candidates of one group), its own persons with
 * records in one but not the other, whenever both counts are below k.
 * Agencies hold disjoint populations, so the pooled difference is the sum
 * of the agencies' parts. An agency that did not report a pair either
 * holds no part of one of the two cells (its part of the difference is
 * then the other cell's persons there, known from the counts) or found
 * one of its differences at k or more (the pooled one is then too: the
 * pair is safe). The agents also weigh cells released from earlier data
 * vintages, by persons (a refresh must not let an analyst difference the
 * persons it added or removed): there too an unreported pair is safe.
 *
 * A candidate within k - 1 persons of another cell both ways (one nested
 * in the other with a small rest, or near copies), pooled, is answered
 * with the earlier cell's value under perturbation, or suppressed (reason
 * ledger); of two candidates, the later in the table is suppressed.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "disclose.h"
#include "gateway.h"
#include "gwledger.h"

#include "fedq/v1/agent.pb-c.h"
#include "fedq/v1/gateway.pb-c.h"

/* Whether the ledger records the cells of a column (ledger.h: COUNT(*),
 * COUNT(DISTINCT) and HISTOGRAM bins, and the magnitudes). */
static bool
ledgered(const struct gw_column *col)
{
    return col->stat == GW_STAT_RECORDS || col->stat == GW_STAT_DISTINCT ||
           col->stat == GW_STAT_SUM || col->stat == GW_STAT_MEAN ||
           col->stat == GW_STAT_SPREAD;
}

static bool
has_value(const struct gw_cell *c)
{
    return c->out->status != FEDQ__V1__CELL_STATUS__CELL_STATUS_SUPPRESSED &&
           c->out->status != FEDQ__V1__CELL_STATUS__CELL_STATUS_NOT_APPLICABLE;
}

static Fedq__V1__CellRef *
cell_ref(struct fq_arena *a, Fedq__V1__PartialGroup *g,
         const struct gw_column *col)
{
    Fedq__V1__CellRef *r = fq_arena_alloc(a, sizeof(*r));
    if (!r)
        return NULL;
    fedq__v1__cell_ref__init(r);
    r->key = g->key;
    r->n_key = g->n_key;
    r->aggregate = (uint32_t)col->agg;
    r->bin = (uint32_t)col->bin;
    return r;
}

int
gw_ledger_collect(const struct gw_table *t, const struct gw_column *cols,
                  Fedq__V1__PartialGroup *const *groups, const bool *rows,
                  struct fq_arena *a, struct gw_ledger_cells *ret)
{
    size_t cap = t->n_rows * t->n_cols + 1;
    struct gw_ledger_cells lc = {0, fq_arena_alloc(a, cap * sizeof(size_t)),
                                 fq_arena_alloc(a, cap * sizeof(void *))};

    if (!lc.cell || !lc.refs)
        return FQ_ENOMEM;
    for (size_t i = 0; i < t->n_rows; i++) {
        if (rows && !rows[i])
            continue;
        for (size_t j = 0; j < t->n_cols; j++) {
            const struct gw_cell *c = &t->cells[i * t->n_cols + j];
            if (!ledgered(&cols[j]) || !has_value(c))
                continue;
            if (!(lc.refs[lc.n] = cell_ref(a, groups[i], &cols[j])))
                return FQ_ENOMEM;
            lc.cell[lc.n++] = i * t->n_cols + j;
        }
    }
    *ret = lc;
    return 0;
}

/* ---- deciding ------------------------------------------------------------ */

/* One agency's report of one pair. */
struct report {
    size_t cell;
    const char *released; /* NULL: another candidate */
    size_t other;
    size_t agency;
    const Fedq__V1__CellPair *p;
};

static int
report_cmp(const void *pa, const void *pb)
{
    const struct report *a = pa, *b = pb;
    if (a->cell != b->cell)
        return a->cell < b->cell ? -1 : 1;
    if (!a->released != !b->released)
        return a->released ? 1 : -1;
    if (a->released)
        return strcmp(a->released, b->released);
    return (a->other > b->other) - (a->other < b->other);
}

/* Everything the decision weighs, per call. */
struct decide {
    const struct gw_ledger_cells *lc;
    const struct gw_ledger_answers *ans;
    int64_t k;
};

/* Agency j's persons in candidate c, from its CheckCells answer. */
static int64_t
persons(const struct decide *d, size_t j, size_t c)
{
    const Fedq__V1__CheckCellsResponse *r = d->ans->resps[j];
    return c < r->n_contributors ? r->contributors[c] : 0;
}

static const Fedq__V1__CellPart *
part_at(const Fedq__V1__CellPair *p, const char *agency)
{
    for (size_t i = 0; p && i < p->n_released_parts; i++) {
        if (strcmp(p->released_parts[i]->agency, agency) == 0)
            return p->released_parts[i];
    }
    return NULL;
}

/* Two cells within k - 1 persons of each other, either way, and not
 * the same: one nested in the other with a small rest, or near copies.
 * (A pair with one difference of k or more implies no small cell from
 * the two values alone.) */
static bool
near(int64_t d1, int64_t d2, int64_t k)
{
    return d1 < k && d2 < k && (d1 > 0 || d2 > 0);
}

/*
 * The pooled differences of the pair whose reports are r[0..n): false if
 * the pair is safe or not comparable, else true with d1 (persons only in
 * the candidate) and d2 (only in the other).
 */
static bool
pooled(const struct decide *d, const struct report *r, size_t n, int64_t *d1,
       int64_t *d2)
{
    const struct gw_ledger_answers *ans = d->ans;
    const Fedq__V1__CellPair *any = r[0].p;
    *d1 = *d2 = 0;

    for (size_t j = 0; j < ans->n; j++) {
        const struct report *mine = NULL;
        for (size_t i = 0; i < n && !mine; i++)
            mine = r[i].agency == j ? &r[i] : NULL;
        if (mine) {
            *d1 += mine->p->only_here;
            *d2 += mine->p->only_there;
            continue;
        }
        int64_t here = persons(d, j, r[0].cell), there;
        if (r[0].released) {
            const Fedq__V1__CellPart *pt = part_at(any, ans->agencies[j]);
            if (pt && strcmp(pt->data_vintage, ans->vintages[j]) != 0)
                return false; /* j weighed it across vintages: safe */
            there = pt ? pt->contributors : 0;
        } else {
            there = persons(d, j, r[0].other);
        }
        if (here > 0 && there > 0)
            return false; /* j found a difference of k or more */
        *d1 += here;
        *d2 += there;
    }
    /* An earlier cell's parts at agencies this table does not pool: all of
     * them lies outside the candidate. */
    for (size_t i = 0; r[0].released && i < any->n_released_parts; i++) {
        bool pooled_here = false;
        for (size_t j = 0; j < ans->n && !pooled_here; j++)
            pooled_here =
                strcmp(any->released_parts[i]->agency, ans->agencies[j]) == 0;
        if (!pooled_here)
            *d2 += any->released_parts[i]->contributors;
    }
    return true;
}

static int
gather(const struct decide *d, struct fq_arena *a, struct report **ret,
       size_t *ret_n)
{
    size_t n = 0, total = 0;

    for (size_t j = 0; j < d->ans->n; j++)
        total += d->ans->resps[j]->n_pairs;
    struct report *r = fq_arena_alloc(a, (total + 1) * sizeof(*r));
    if (!r)
        return FQ_ENOMEM;
    for (size_t j = 0; j < d->ans->n; j++) {
        const Fedq__V1__CheckCellsResponse *resp = d->ans->resps[j];
        for (size_t i = 0; i < resp->n_pairs; i++) {
            const Fedq__V1__CellPair *p = resp->pairs[i];
            if (p->cell >= d->lc->n || (!p->released[0] && p->other >= p->cell))
                return FQ_EPROTO;
            r[n++] = (struct report){
                p->cell, p->released[0] ? p->released : NULL, p->other, j, p};
        }
    }
    qsort(r, n, sizeof(*r), report_cmp);
    *ret = r;
    *ret_n = n;
    return 0;
}

/* The published value of a released cell's pair (NULL if none: a cell
 * recorded without one). */
static Fedq__V1__PublishedValue *
pair_value(const Fedq__V1__CellPair *p, struct fq_arena *a, int *rc)
{
    Fedq__V1__PublishedValue *v;

    *rc = 0;
    if (!p->released_value.len)
        return NULL;
    if (!(v = fedq__v1__published_value__unpack(fq_arena_pb_allocator(a),
                                                p->released_value.len,
                                                p->released_value.data)))
        *rc = FQ_EPROTO;
    return v;
}

/* The statistic a published value answers for (a HISTOGRAM bin counts
 * records as COUNT(*) does). */
static uint32_t
statistic_of(const Fedq__V1__Plan *plan, const struct gw_cell *c)
{
    Fedq__V1__AggregateKind k = plan->aggregates[c->agg]->kind;
    return (uint32_t)(k == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM
                          ? FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT
                          : k);
}

/* Of two published values, whether a was released first (then by ref). */
static bool
earlier(const Fedq__V1__PublishedValue *a, const char *aref,
        const Fedq__V1__PublishedValue *b, const char *bref)
{
    int c = strcmp(a->released_at, b->released_at);
    return c < 0 || (c == 0 && strcmp(aref, bref) < 0);
}

int
gw_ledger_decide(struct gw_table *t, const struct gw_ledger_cells *lc,
                 const struct gw_ledger_answers *ans,
                 const struct gw_ledger_rules *lr, struct fq_arena *a,
                 size_t *ret_suppressed, size_t *ret_reused)
{
    struct decide d = {lc, ans, lr->k};
    struct report *r;
    size_t n, hidden = 0, reused = 0;
    int rc = gather(&d, a, &r, &n);

    if (rc < 0)
        return rc;
    /* Reports are sorted by candidate: each candidate's pairs together. */
    for (size_t i = 0; i < n;) {
        size_t cell = r[i].cell;
        struct gw_cell *c = &t->cells[lc->cell[cell]];
        const Fedq__V1__PublishedValue *best = NULL;
        const char *best_ref = NULL;
        bool hide = false;
        for (; i < n && r[i].cell == cell;) {
            size_t j = i + 1;
            int64_t d1, d2;
            while (j < n && report_cmp(&r[i], &r[j]) == 0)
                j++;
            /* a candidate already hidden releases nothing to differ from */
            bool gone = !r[i].released &&
                        t->cells[lc->cell[r[i].other]].reason != GW_REASON_NONE;
            if (!gone && pooled(&d, r + i, j - i, &d1, &d2) &&
                near(d1, d2, lr->k)) {
                Fedq__V1__PublishedValue *v = lr->reuse && r[i].released
                                                  ? pair_value(r[i].p, a, &rc)
                                                  : NULL;
                if (rc < 0)
                    return rc;
                /* only the same statistic's value answers for this one;
                 * a COUNT(DISTINCT) is hidden (its column may differ) */
                if (!v || v->statistic != statistic_of(lr->plan, c) ||
                    v->statistic ==
                        FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT_DISTINCT)
                    hide = true;
                else if (!best || earlier(v, r[i].released, best, best_ref)) {
                    best = v;
                    best_ref = r[i].released;
                }
            }
            i = j;
        }
        if (c->reason != GW_REASON_NONE)
            continue;
        if (hide) {
            gw_cell_suppress(c, GW_REASON_LEDGER);
            hidden++;
        } else if (best) {
            if ((rc = gw_cell_reuse(c, best, lr->rules)) < 0)
                return rc;
            reused++;
        }
    }
    *ret_suppressed = hidden;
    *ret_reused = reused;
    return 0;
}

uint8_t *
gw_ledger_pack_value(const struct gw_cell *c, const Fedq__V1__Plan *plan,
                     const char *released_at, struct fq_arena *a,
                     size_t *ret_len)
{
    Fedq__V1__PublishedValue v = FEDQ__V1__PUBLISHED_VALUE__INIT;
    uint8_t *b;

    v.status = (uint32_t)c->out->status;
    v.released_at = (char *)released_at;
    v.statistic = statistic_of(plan, c);
    if (c->out->value_case == FEDQ__V1__CELL__VALUE_INT_VALUE) {
        v.value_case = FEDQ__V1__PUBLISHED_VALUE__VALUE_INT_VALUE;
        v.int_value = c->out->int_value;
    } else if (c->out->value_case == FEDQ__V1__CELL__VALUE_DECIMAL_VALUE) {
        v.value_case = FEDQ__V1__PUBLISHED_VALUE__VALUE_DECIMAL_VALUE;
        v.decimal_value = c->out->decimal_value;
    }
    *ret_len = fedq__v1__published_value__get_packed_size(&v);
    if ((b = fq_arena_alloc(a, *ret_len + 1)))
        fedq__v1__published_value__pack(&v, b);
    return b;
}
