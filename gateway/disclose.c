/*
 * The primary, insider and derived-statistic rules and the perturbation of
 * a pooled table (disclose.h; docs/disclosure-control.md). Rules weigh the
 * pooled true values the agents sent (contributors per cell, per agency;
 * units and largest contributions per magnitude); nothing here is
 * released unless it passes.
 *
 * Noise is keyed, never drawn: a cell's draw is SHA-256 over the
 * statistic, the column, the pooled cell key and the true value, so the
 * same contributors, aggregate and data give the same released value
 * however the query is written or repeated. The true value is in the draw
 * so that two cells of the same contributors but different records (a
 * quarter, and two quarters, of the same persons) are not perturbed alike,
 * which would let their difference, then their noise, be solved.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/plan.h"
#include "fq/policy.h"
#include "fq/ptable.h"
#include "disclose.h"
#include "gateway.h"

#include <math.h>

#include <openssl/evp.h>

#include "fedq/v1/agent.pb-c.h"
#include "fedq/v1/gateway.pb-c.h"

#define DRAW_DOMAIN "fedq noise v1"

static const char *const reason_names[GW_REASON_COUNT] = {
    "released", "primary", "zero",   "dominance",
    "derived",  "insider", "ledger", "secondary",
};

const char *
gw_reason_name(int reason)
{
    return reason >= 0 && reason < GW_REASON_COUNT ? reason_names[reason]
                                                   : "unknown";
}

/* ---- rules --------------------------------------------------------------- */

void
gw_rules_init(struct gw_rules *r, int64_t floor_k)
{
    /* The most lenient values: each agreement tightens them. */
    *r = (struct gw_rules){.k = floor_k,
                           .min_units = 1,
                           .top_percent = 100,
                           .rounding_base = 1,
                           .decimals = 6};
}

static void
raise_to(int64_t *v, int64_t to)
{
    if (to > *v)
        *v = to;
}

void
gw_rules_tighten(struct gw_rules *r, const struct fq_policy_release *rel)
{
    raise_to(&r->k, rel->min_cell_count);
    r->suppress_zero |= rel->zero_cells == FQ_POLICY_ZERO_SUPPRESS;
    raise_to(&r->min_units, rel->dominance_min_units);
    if (rel->dominance_top_percent < r->top_percent)
        r->top_percent = rel->dominance_top_percent;
    raise_to(&r->p_percent, rel->p_percent);
    raise_to(&r->protection, rel->protection_level);
    raise_to(&r->protection_pct, rel->protection_percent);
    r->perturb |= rel->perturbation == FQ_POLICY_PERTURB_CELL_KEY;
    raise_to(&r->rounding_base, rel->rounding_base);
    if (rel->decimals < r->decimals)
        r->decimals = rel->decimals;
    r->ledger |= rel->differencing_ledger == FQ_POLICY_LEDGER_ON;
}

int
gw_rules_ready(struct gw_rules *r, const struct gw_perturb_conf *pc, char *err,
               size_t errlen)
{
    struct fq_ptable_params p = {.max_deviation = (int)pc->max_deviation,
                                 .variance = pc->variance,
                                 .threshold = r->k};
    int rc = fq_ptable_build(&p, &r->counts, err, errlen);

    p.threshold = 1;
    if (rc == 0)
        rc = fq_ptable_build(&p, &r->distinct, err, errlen);
    r->magnitude_noise = r->perturb ? (double)pc->magnitude_percent / 100 : 0;
    return rc;
}

void
gw_rules_release(struct gw_rules *r)
{
    fq_ptable_free(r->counts);
    fq_ptable_free(r->distinct);
    r->counts = r->distinct = NULL;
}

Fedq__V1__DisclosureRules *
gw_rules_publish(const struct gw_rules *r, const struct gw_perturb_conf *pc,
                 struct fq_arena *a)
{
    Fedq__V1__DisclosureRules *d = fq_arena_alloc(a, sizeof(*d));

    if (!d)
        return NULL;
    fedq__v1__disclosure_rules__init(d);
    d->min_cell_count = (uint32_t)r->k;
    d->zeros_suppressed = r->suppress_zero;
    d->dominance_min_units = (uint32_t)r->min_units;
    d->dominance_top_percent = (uint32_t)r->top_percent;
    d->p_percent = (uint32_t)r->p_percent;
    d->perturbed = r->perturb;
    if (r->perturb) {
        d->max_deviation = (uint32_t)pc->max_deviation;
        d->noise_variance = pc->variance;
        d->magnitude_percent = (uint32_t)pc->magnitude_percent;
    }
    d->rounding_base = (uint32_t)r->rounding_base;
    d->protection_level = (uint32_t)r->protection;
    d->protection_percent = (uint32_t)r->protection_pct;
    d->decimals = (uint32_t)r->decimals;
    return d;
}

/* ---- the analyst's cells --------------------------------------------------
 */

static Fedq__V1__Cell *
new_cell(struct fq_arena *a, Fedq__V1__CellStatus status)
{
    Fedq__V1__Cell *c = fq_arena_alloc(a, sizeof(*c));
    if (c) {
        fedq__v1__cell__init(c);
        c->status = status;
    }
    return c;
}

static Fedq__V1__Cell *
key_cell(struct fq_arena *a, const Fedq__V1__Literal *k)
{
    Fedq__V1__Cell *c = new_cell(a, FEDQ__V1__CELL_STATUS__CELL_STATUS_EXACT);
    if (!c)
        return NULL;
    switch (k->value_case) {
    case FEDQ__V1__LITERAL__VALUE_INT_VALUE:
        c->value_case = FEDQ__V1__CELL__VALUE_INT_VALUE;
        c->int_value = k->int_value;
        break;
    case FEDQ__V1__LITERAL__VALUE_DECIMAL_VALUE:
        c->value_case = FEDQ__V1__CELL__VALUE_DECIMAL_VALUE;
        c->decimal_value = k->decimal_value;
        break;
    case FEDQ__V1__LITERAL__VALUE_TEXT_VALUE:
        c->value_case = FEDQ__V1__CELL__VALUE_TEXT_VALUE;
        c->text_value = k->text_value;
        break;
    default:
        c->status = FEDQ__V1__CELL_STATUS__CELL_STATUS_NOT_APPLICABLE;
    }
    return c;
}

void
gw_cell_suppress(struct gw_cell *c, int reason)
{
    c->reason = reason;
    c->out->status = FEDQ__V1__CELL_STATUS__CELL_STATUS_SUPPRESSED;
    c->out->value_case = FEDQ__V1__CELL__VALUE__NOT_SET;
}

static void
set_int(struct gw_cell *c, int64_t v, Fedq__V1__CellStatus status)
{
    c->out->status = status;
    c->out->value_case = FEDQ__V1__CELL__VALUE_INT_VALUE;
    c->out->int_value = v;
}

static void
set_decimal(struct gw_cell *c, double v, Fedq__V1__CellStatus status)
{
    c->out->status = status;
    c->out->value_case = FEDQ__V1__CELL__VALUE_DECIMAL_VALUE;
    c->out->decimal_value = v;
}

static void
not_applicable(struct gw_cell *c)
{
    c->out->status = FEDQ__V1__CELL_STATUS__CELL_STATUS_NOT_APPLICABLE;
    c->out->value_case = FEDQ__V1__CELL__VALUE__NOT_SET;
    c->lo = c->hi = c->truth;
}

/* ---- keyed draws ----------------------------------------------------------
 */

static const char *const stat_names[] = {
    [GW_STAT_KEY] = "key",           [GW_STAT_RECORDS] = "records",
    [GW_STAT_DISTINCT] = "distinct", [GW_STAT_SUM] = "sum",
    [GW_STAT_MEAN] = "mean",         [GW_STAT_SPREAD] = "spread",
    [GW_STAT_QUANTILE] = "quantile",
};

/* 32 bits of SHA-256(domain, stream, statistic, column, cell key, true
 * value): the cell's own uniform draw. A count of records is the same
 * statistic whichever column defined it (a HISTOGRAM bin, a filtered
 * COUNT(*)), so its draw names none: the same records get the same noise
 * however they were asked for. 0 if hashing fails (never seen; the value
 * is then perturbed by the table's u = 0 entry, within the published
 * bounds). */
static uint32_t
draw(const char *stream, int stat, const char *column, uint32_t cell_key,
     double truth)
{
    if (stat == GW_STAT_RECORDS)
        column = "";
    unsigned char buf[256], md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    uint64_t bits;
    int len;

    memcpy(&bits, &truth, sizeof(bits));
    len = snprintf((char *)buf, sizeof(buf) - 12, "%s|%s|%s|%s|", DRAW_DOMAIN,
                   stream, stat_names[stat], column);
    if (len < 0 || (size_t)len >= sizeof(buf) - 12)
        return 0;
    for (int i = 0; i < 4; i++)
        buf[len++] = (unsigned char)(cell_key >> (24 - 8 * i));
    for (int i = 0; i < 8; i++)
        buf[len++] = (unsigned char)(bits >> (56 - 8 * i));
    if (EVP_Digest(buf, (size_t)len, md, &n, EVP_sha256(), NULL) != 1)
        return 0;
    return (uint32_t)md[0] << 24 | (uint32_t)md[1] << 16 |
           (uint32_t)md[2] << 8 | md[3];
}

/* ---- one table ------------------------------------------------------------
 */

struct ctx {
    const struct gw_disclose_in *in;
    const struct gw_rules *r;
    struct fq_arena *a;
};

/* What a cell weighs, from one agency's (or the pooled) group. */
struct weights {
    int64_t contributors;
    uint32_t cell_key;
    double truth;
    int64_t units;
    double top1, top2, abs_total;
};

static bool
is_decimal_column(const struct ctx *x, const Fedq__V1__Aggregate *ag)
{
    const Fedq__V1__Column *col =
        ag->column[0] ? fq_catalog_column(x->in->ds, ag->column) : NULL;
    return col && col->type == FEDQ__V1__VALUE_TYPE__VALUE_TYPE_DECIMAL;
}

static double
state_sum(const struct ctx *x, const Fedq__V1__Aggregate *ag,
          const Fedq__V1__AggregateState *s)
{
    return is_decimal_column(x, ag) ? s->decimal_sum : (double)s->int_sum;
}

/* The weights of column c of group g (NULL: an agency without it). */
static struct weights
weigh(const struct ctx *x, const struct gw_column *c,
      const Fedq__V1__PartialGroup *g)
{
    struct weights w = {0};
    const Fedq__V1__Aggregate *ag = x->in->plan->aggregates[c->agg];
    const Fedq__V1__AggregateState *s;

    if (!g)
        return w;
    s = g->aggregates[c->agg];
    if (c->is_bin) {
        w.contributors = s->bin_contributors[c->bin];
        w.cell_key = s->bin_cell_keys[c->bin];
        w.truth = (double)s->bins[c->bin];
        return w;
    }
    w.contributors = s->contributors;
    w.cell_key = s->cell_key;
    w.units = s->units;
    w.top1 = s->top1;
    w.top2 = s->top2;
    w.abs_total = s->abs_total;
    switch (c->stat) {
    case GW_STAT_SUM:
        w.truth = state_sum(x, ag, s);
        break;
    case GW_STAT_MEAN:
        w.truth = s->count ? state_sum(x, ag, s) / (double)s->count : 0;
        break;
    case GW_STAT_SPREAD:
        w.truth = s->count > 1 ? s->m2 / (double)(s->count - 1) : 0;
        break;
    default:
        w.truth = (double)s->count;
    }
    return w;
}

static bool
small(int64_t n, int64_t k)
{
    return n > 0 && n < k;
}

/* Dominance on a magnitude's units: too few, the largest too large, or
 * (p% rule) the rest less the second largest telling the largest within
 * p %. A cell without units (no values) is a zero, not dominated. */
static bool
dominated(const struct gw_rules *r, int64_t units, double top1, double top2,
          double total)
{
    if (units == 0)
        return false;
    if (units < r->min_units)
        return true;
    if (total > 0 && top1 * 100 >= (double)r->top_percent * total)
        return true;
    return r->p_percent > 0 &&
           (total - top1 - top2) * 100 < (double)r->p_percent * top1;
}

static bool
is_magnitude(int stat)
{
    return stat == GW_STAT_SUM || stat == GW_STAT_MEAN ||
           stat == GW_STAT_SPREAD;
}

/* The rest of the pooled cell besides agency p's part, for the insider
 * rule: counts and totals subtract; the two largest of the others'. */
static struct weights
rest_of(const struct ctx *x, const struct gw_column *c, size_t i, size_t p,
        const struct weights *pooled)
{
    const struct gw_disclose_in *in = x->in;
    struct weights own = weigh(x, c, in->own[i * in->n_parts + p]), w = {0};

    w.contributors = pooled->contributors - own.contributors;
    w.units = pooled->units - own.units;
    w.abs_total = pooled->abs_total - own.abs_total;
    for (size_t q = 0; q < in->n_parts; q++) {
        struct weights o;
        if (q == p)
            continue;
        o = weigh(x, c, in->own[i * in->n_parts + q]);
        const double tops[2] = {o.top1, o.top2};
        for (int t = 0; t < 2; t++) {
            if (tops[t] > w.top1) {
                w.top2 = w.top1;
                w.top1 = tops[t];
            } else if (tops[t] > w.top2) {
                w.top2 = tops[t];
            }
        }
    }
    return w;
}

/* The insider rule: every agency knows its own part of a pooled cell, so
 * what the others hold must pass the primary rules or be nothing. An
 * agency without the group holds 0 (the primary rule then weighs the
 * rest); a single agency's rest is always 0. */
static bool
insider(const struct ctx *x, const struct gw_column *c, size_t i,
        const struct weights *pooled)
{
    for (size_t p = 0; x->in->n_parts > 1 && p < x->in->n_parts; p++) {
        if (!x->in->own[i * x->in->n_parts + p])
            continue;
        struct weights w = rest_of(x, c, i, p, pooled);
        if (small(w.contributors, x->r->k))
            return true;
        if (is_magnitude(c->stat) &&
            dominated(x->r, w.units, w.top1, w.top2, w.abs_total))
            return true;
    }
    return false;
}

/* A mean or variance that tells every contributor's value: a mean at the
 * column's declared bound (all at it: a 0% or 100% share), or no spread. */
static bool
derived_leak(const struct ctx *x, const struct gw_column *c,
             const struct weights *w)
{
    const Fedq__V1__Aggregate *ag = x->in->plan->aggregates[c->agg];
    const Fedq__V1__Column *col = fq_catalog_column(x->in->ds, ag->column);

    if (c->stat == GW_STAT_SPREAD)
        return w->truth <= 0;
    if (c->stat != GW_STAT_MEAN || !col || !col->bounds)
        return false;
    return w->truth <= (double)col->bounds->min ||
           w->truth >= (double)col->bounds->max;
}

/* A HISTOGRAM bin wholly outside its column's declared bounds holds no
 * value by definition: a structural zero, not a released count. */
static bool
structural_zero(const struct ctx *x, const struct gw_column *c)
{
    const Fedq__V1__Aggregate *ag = x->in->plan->aggregates[c->agg];
    const Fedq__V1__Column *col = fq_catalog_column(x->in->ds, ag->column);
    const Fedq__V1__Literal *lo = c->bin > 0 ? ag->edges[c->bin - 1] : NULL;
    const Fedq__V1__Literal *hi =
        c->bin < ag->n_edges ? ag->edges[c->bin] : NULL;

    if (!c->is_bin || !col || !col->bounds)
        return false;
    /* [lo, hi) misses [min, max] when hi <= min or lo > max */
    if (hi && hi->value_case == FEDQ__V1__LITERAL__VALUE_INT_VALUE &&
        hi->int_value <= col->bounds->min)
        return true;
    return lo && lo->value_case == FEDQ__V1__LITERAL__VALUE_INT_VALUE &&
           lo->int_value > col->bounds->max;
}

/* The reason a cell fails the rules, or GW_REASON_NONE. */
static int
judge(const struct ctx *x, const struct gw_column *c, size_t i,
      const struct weights *w)
{
    if (small(w->contributors, x->r->k))
        return GW_REASON_PRIMARY;
    if (w->contributors == 0)
        return x->r->suppress_zero && !structural_zero(x, c) &&
                       (c->stat == GW_STAT_RECORDS ||
                        c->stat == GW_STAT_DISTINCT || c->stat == GW_STAT_SUM)
                   ? GW_REASON_ZERO
                   : GW_REASON_NONE;
    if (is_magnitude(c->stat) &&
        dominated(x->r, w->units, w->top1, w->top2, w->abs_total))
        return GW_REASON_DOMINANCE;
    if (derived_leak(x, c, w))
        return GW_REASON_DERIVED;
    return insider(x, c, i, w) ? GW_REASON_INSIDER : GW_REASON_NONE;
}

/* ---- releasing ------------------------------------------------------------
 */

/* What an analyst can tell of a count's true value from its release
 * (published w): the true values the table (and rounding) can publish as
 * w. */
static void
count_interval(const struct fq_ptable *t, int64_t base, int64_t w, double *lo,
               double *hi)
{
    int64_t l = INT64_MAX, h = -1;

    for (int64_t v = w - (base - 1); v <= w + (base - 1); v++) {
        int64_t a = v, b = v;
        if (v < 0 || (t && fq_ptable_preimage(t, v, &a, &b) < 0))
            continue;
        l = a < l ? a : l;
        h = b > h ? b : h;
    }
    *lo = h < 0 ? 0 : (double)l;
    *hi = h < 0 ? INFINITY : (double)h;
}

/* A count (records, or distinct values) through the table and rounding. */
static void
release_count(const struct ctx *x, struct gw_cell *c, const char *column)
{
    const struct gw_rules *r = x->r;
    const struct fq_ptable *t = c->stat == GW_STAT_DISTINCT && c->truth < r->k
                                    ? r->distinct
                                    : r->counts;
    int64_t v = (int64_t)c->truth;
    Fedq__V1__CellStatus st = FEDQ__V1__CELL_STATUS__CELL_STATUS_EXACT;

    if (r->perturb && v > 0 &&
        fq_ptable_perturb(t, v,
                          draw("noise", c->stat, column, c->cell_key, c->truth),
                          &v) == 0)
        st = FEDQ__V1__CELL_STATUS__CELL_STATUS_PERTURBED;
    if (r->rounding_base > 1 && v > 0) {
        v = fq_round_random(
            v, (uint32_t)r->rounding_base,
            draw("round", c->stat, column, c->cell_key, c->truth), r->k);
        st = FEDQ__V1__CELL_STATUS__CELL_STATUS_ROUNDED;
    }
    set_int(c, v, st);
    count_interval(st == FEDQ__V1__CELL_STATUS__CELL_STATUS_EXACT ? NULL : t,
                   r->rounding_base, v, &c->lo, &c->hi);
    if (!r->perturb && r->rounding_base == 1)
        c->lo = c->hi = c->truth;
}

/* A sum's noise: up to the published share of its largest unit total,
 * in either direction, keyed like every draw. */
static double
sum_noise(const struct ctx *x, const struct gw_cell *c, const char *column,
          double top1)
{
    uint32_t u = draw("noise", GW_STAT_SUM, column, c->cell_key, c->truth);
    double eta = (double)u / 4294967296.0 * 2.0 - 1.0;
    return x->r->magnitude_noise * top1 * eta;
}

static void
release_sum(const struct ctx *x, struct gw_cell *c, const char *column,
            const struct weights *w, bool decimal)
{
    double m = x->r->magnitude_noise, v = c->truth;
    bool moved = m > 0 && w->contributors > 0;

    if (moved)
        v += sum_noise(x, c, column, w->top1);
    if (decimal)
        set_decimal(c, v,
                    moved ? FEDQ__V1__CELL_STATUS__CELL_STATUS_PERTURBED
                          : FEDQ__V1__CELL_STATUS__CELL_STATUS_EXACT);
    else
        set_int(c, llround(v),
                moved ? FEDQ__V1__CELL_STATUS__CELL_STATUS_PERTURBED
                      : FEDQ__V1__CELL_STATUS__CELL_STATUS_EXACT);
    /* |noise| <= m * top1 <= m * |total| (top1 is one part of it) */
    double spread = m * fabs(v) / (1 - m);
    c->lo = moved ? v - spread : c->truth;
    c->hi = moved ? v + spread : c->truth;
}

static double
round_to(double v, int64_t decimals)
{
    double scale = pow(10, (double)decimals);
    return round(v * scale) / scale;
}

/* A mean from the perturbed sum and perturbed count of the same values,
 * as SUM and a count of them would be released; rounded. */
static void
release_mean(const struct ctx *x, struct gw_cell *c, const char *column,
             const struct weights *w, const Fedq__V1__AggregateState *s,
             bool decimal)
{
    const struct gw_rules *r = x->r;
    double sum = decimal ? s->decimal_sum : (double)s->int_sum;
    int64_t n = s->count;

    if (r->perturb) {
        struct gw_cell tmp = *c;
        tmp.stat = GW_STAT_SUM;
        tmp.truth = sum;
        sum += r->magnitude_noise > 0 ? sum_noise(x, &tmp, column, w->top1) : 0;
        if (n >= r->k)
            fq_ptable_perturb(
                r->counts, n,
                draw("noise", GW_STAT_RECORDS, column, c->cell_key, (double)n),
                &n);
    }
    set_decimal(c, round_to(sum / (double)n, r->decimals),
                r->perturb ? FEDQ__V1__CELL_STATUS__CELL_STATUS_PERTURBED
                           : FEDQ__V1__CELL_STATUS__CELL_STATUS_ROUNDED);
    c->lo = -INFINITY;
    c->hi = INFINITY;
}

/* A variance moved by up to the published share of itself; STDDEV is the
 * root of the same perturbed variance. */
static void
release_spread(const struct ctx *x, struct gw_cell *c, const char *column,
               bool stddev)
{
    const struct gw_rules *r = x->r;
    double var = c->truth;

    if (r->perturb) {
        uint32_t u = draw("noise", GW_STAT_SPREAD, column, c->cell_key, var);
        var *= 1 + r->magnitude_noise * ((double)u / 4294967296.0 * 2 - 1);
    }
    set_decimal(c, round_to(stddev ? sqrt(var) : var, r->decimals),
                r->perturb ? FEDQ__V1__CELL_STATUS__CELL_STATUS_PERTURBED
                           : FEDQ__V1__CELL_STATUS__CELL_STATUS_ROUNDED);
    c->lo = -INFINITY;
    c->hi = INFINITY;
}

/* QUANTILE from the pooled sketch: the middle of the bin holding the
 * q-quantile, a rounded value within the column's error bound. */
static void
release_quantile(const struct ctx *x, struct gw_cell *c,
                 const Fedq__V1__Aggregate *ag,
                 const Fedq__V1__AggregateState *s)
{
    struct fq_quantile qt;

    if (fq_quantile_pick(fq_catalog_column(x->in->ds, ag->column), ag->fraction,
                         s->sketch_bins, s->sketch_counts, s->n_sketch_bins,
                         &qt) < 0) {
        not_applicable(c); /* no value (the shape was checked) */
        return;
    }
    set_int(c, qt.value, FEDQ__V1__CELL_STATUS__CELL_STATUS_ROUNDED);
    c->lo = (double)qt.lo;
    c->hi = (double)qt.hi;
}

/* A released cell's value (it passed the rules). */
static void
release(const struct ctx *x, struct gw_cell *c, const struct gw_column *col,
        const Fedq__V1__PartialGroup *g, const struct weights *w)
{
    const Fedq__V1__Aggregate *ag = x->in->plan->aggregates[col->agg];
    const Fedq__V1__AggregateState *s = g->aggregates[col->agg];
    bool decimal = is_decimal_column(x, ag);
    const char *column = ag->column;

    switch (c->stat) {
    case GW_STAT_RECORDS:
    case GW_STAT_DISTINCT:
        if (w->contributors == 0 && structural_zero(x, col))
            not_applicable(c);
        else
            release_count(x, c, column);
        return;
    case GW_STAT_SUM:
        release_sum(x, c, column, w, decimal);
        return;
    case GW_STAT_MEAN:
        if (s->count == 0)
            not_applicable(c);
        else
            release_mean(x, c, column, w, s, decimal);
        return;
    case GW_STAT_SPREAD:
        if (s->count < 2) /* a sample variance needs two values */
            not_applicable(c);
        else
            release_spread(x, c, column,
                           ag->kind ==
                               FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_STDDEV);
        return;
    case GW_STAT_QUANTILE:
        release_quantile(x, c, ag, s);
        return;
    default:
        return;
    }
}

/* What an analyst can tell of a suppressed cell's value: at least one
 * contributor below k (the primary rule is published), nothing more
 * otherwise but its sign. */
static void
hidden_interval(const struct ctx *x, struct gw_cell *c)
{
    const Fedq__V1__Aggregate *ag = x->in->plan->aggregates[c->agg];
    const Fedq__V1__Column *col =
        ag->column[0] ? fq_catalog_column(x->in->ds, ag->column) : NULL;
    bool counts = c->stat == GW_STAT_RECORDS || c->stat == GW_STAT_DISTINCT;

    /* a small group hides all its cells, an empty bin among them */
    c->lo =
        counts || (col && col->bounds && col->bounds->min >= 0)
            ? (counts && c->reason == GW_REASON_PRIMARY && c->contributors > 0
                   ? 1
                   : 0)
            : -INFINITY;
    c->hi = INFINITY;
}

/* Cell j of row i: its value, or why it is hidden. */
static int
aggregate_cell(const struct ctx *x, size_t i, const struct gw_column *col,
               bool group_small, bool group_insider, struct gw_cell *c)
{
    const Fedq__V1__PartialGroup *g = x->in->groups[i];
    struct weights w = weigh(x, col, g);

    c->stat = col->stat;
    c->agg = col->agg;
    c->contributors = w.contributors;
    c->cell_key = w.cell_key;
    c->truth = w.truth;
    if (!(c->out = new_cell(x->a, FEDQ__V1__CELL_STATUS__CELL_STATUS_EXACT)))
        return FQ_ENOMEM;
    c->reason = group_small     ? GW_REASON_PRIMARY
                : group_insider ? GW_REASON_INSIDER
                                : judge(x, col, i, &w);
    if (c->reason != GW_REASON_NONE) {
        gw_cell_suppress(c, c->reason);
        hidden_interval(x, c);
        return 0;
    }
    release(x, c, col, g, &w);
    return 0;
}

/* Whether g holds no record (a table's row over none, or a combination
 * of its groups' domains that no agency holds). */
static bool
empty_group(const Fedq__V1__PartialGroup *g)
{
    if (g->contributors != 0)
        return false;
    for (size_t i = 0; i < g->n_aggregates; i++) {
        const Fedq__V1__AggregateState *s = g->aggregates[i];
        if (s->count != 0)
            return false;
        for (size_t b = 0; b < s->n_bins; b++) {
            if (s->bins[b] != 0)
                return false;
        }
    }
    return true;
}

/* The group as a whole: fewer than k contributors, or the rest besides
 * one agency's part, hides every aggregate of the row. */
static void
judge_group(const struct ctx *x, size_t i, bool *is_small, bool *is_insider)
{
    const struct gw_disclose_in *in = x->in;
    const Fedq__V1__PartialGroup *g = in->groups[i];

    /* a group of no records at all (a zero: its own rule) is not small;
     * records without a contributor are */
    *is_small = g->contributors < x->r->k && !empty_group(g);
    *is_insider = false;
    for (size_t p = 0; !*is_small && in->n_parts > 1 && p < in->n_parts; p++) {
        const Fedq__V1__PartialGroup *own = in->own[i * in->n_parts + p];
        if (own && small(g->contributors - own->contributors, x->r->k))
            *is_insider = true;
    }
}

static int
build_row(const struct ctx *x, size_t i, struct gw_table *t)
{
    const struct gw_disclose_in *in = x->in;
    Fedq__V1__Row *row = fq_arena_alloc(x->a, sizeof(*row));
    struct gw_cell *cells = t->cells + i * t->n_cols;
    bool group_small, group_insider;

    if (!row)
        return FQ_ENOMEM;
    fedq__v1__row__init(row);
    if (!(row->cells =
              fq_arena_alloc(x->a, (in->n_cols + 1) * sizeof(*row->cells))))
        return FQ_ENOMEM;
    judge_group(x, i, &group_small, &group_insider);
    for (size_t j = 0; j < in->n_cols; j++) {
        const struct gw_column *col = &in->cols[j];
        struct gw_cell *c = &cells[j];
        if (col->stat == GW_STAT_KEY) {
            c->stat = GW_STAT_KEY;
            if (!(c->out = key_cell(x->a, in->groups[i]->key[col->key])))
                return FQ_ENOMEM;
        } else if (aggregate_cell(x, i, col, group_small, group_insider, c) <
                   0) {
            return FQ_ENOMEM;
        }
        row->cells[row->n_cells++] = c->out;
    }
    t->rows[i] = row;
    return 0;
}

int
gw_disclose(const struct gw_disclose_in *in, struct fq_arena *a,
            struct gw_table *ret)
{
    struct ctx x = {in, in->rules, a};
    struct gw_table t = {.n_rows = in->n_groups, .n_cols = in->n_cols};

    t.rows = fq_arena_alloc(a, (t.n_rows + 1) * sizeof(*t.rows));
    t.cells = fq_arena_alloc(a, (t.n_rows * t.n_cols + 1) * sizeof(*t.cells));
    if (!t.rows || !t.cells)
        return FQ_ENOMEM;
    for (size_t i = 0; i < t.n_rows; i++) {
        int rc = build_row(&x, i, &t);
        if (rc < 0)
            return rc;
    }
    *ret = t;
    return 0;
}

void
gw_table_reasons(const struct gw_table *t, size_t *counts)
{
    memset(counts, 0, GW_REASON_COUNT * sizeof(*counts));
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++) {
        if (t->cells[i].stat != GW_STAT_KEY)
            counts[t->cells[i].reason]++;
    }
}

/* ---- answers from the ledger --------------------------------------------- */

int
gw_cell_reuse(struct gw_cell *c, const Fedq__V1__PublishedValue *v,
              const struct gw_rules *r)
{
    /* under perturbation every count and sum is perturbed or rounded: an
     * earlier exact one (another policy then) is no longer exact here */
    Fedq__V1__CellStatus st =
        v->status == FEDQ__V1__CELL_STATUS__CELL_STATUS_ROUNDED
            ? FEDQ__V1__CELL_STATUS__CELL_STATUS_ROUNDED
            : FEDQ__V1__CELL_STATUS__CELL_STATUS_PERTURBED;
    double value;

    if (v->value_case == FEDQ__V1__PUBLISHED_VALUE__VALUE_INT_VALUE) {
        set_int(c, v->int_value, st);
        value = (double)v->int_value;
    } else if (v->value_case ==
                   FEDQ__V1__PUBLISHED_VALUE__VALUE_DECIMAL_VALUE &&
               isfinite(v->decimal_value)) {
        set_decimal(c, v->decimal_value, st);
        value = v->decimal_value;
    } else {
        return FQ_EPROTO;
    }
    c->reused = true;
    /*
     * An analyst cannot tell this value from the cell's own perturbed
     * one, so may take it for that: what it allows as such, joined with
     * the truth (the cells are within k - 1 persons, but a person may
     * hold many records and values, so the value itself bounds the truth
     * by nothing the rules publish). Narrower than what the analyst can
     * rule out, so secondary suppression errs on the protected side, and
     * never infeasible.
     */
    if (c->stat == GW_STAT_RECORDS || c->stat == GW_STAT_DISTINCT) {
        count_interval(r->counts, r->rounding_base, (int64_t)value, &c->lo,
                       &c->hi);
    } else if (c->stat == GW_STAT_SUM) {
        double spread =
            r->magnitude_noise * fabs(value) / (1 - r->magnitude_noise);
        c->lo = value - spread;
        c->hi = value + spread;
    } else {
        c->lo = -INFINITY;
        c->hi = INFINITY;
        return 0;
    }
    c->lo = fmin(c->lo, c->truth);
    c->hi = fmax(c->hi, c->truth);
    return 0;
}
