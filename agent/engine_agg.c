/*
 * The extract engine's aggregates: per-group state in flat arrays (one per
 * quantity, indexed by group), updated a block at a time by one loop per
 * aggregate over the selected rows and their groups, merged across
 * threads by adding, and rendered as the partial aggregates execute.c
 * returns for the same data.
 *
 * Distinct contributors: rows are sorted by the contributor's code, and the
 * extract's run bitmap marks where each contributor's rows start. A
 * selected row's run number is how many runs of its slice up to it have a
 * selected row (0 for the NULL rows before the first run: no contributor),
 * so a group (or a histogram bin) counts a contributor when the last run
 * number it saw changes, and the codes are never read; threads own whole
 * runs, so their counts add up.
 * Integer sums add stored offsets in 128 bits and are checked against 64
 * bits once, at the end. VAR and STDDEV take two passes: count and sum,
 * then, with the merged means, the squared deviations from them.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/plan.h"
#include "cellstats.h"
#include "engine_internal.h"

#include <math.h>

#include "fedq/v1/agent.pb-c.h"

#define PAIRS_FIRST      1024 /* entries of a fresh distinct-pair set */
#define BITMAP_MAX_DOM   4096 /* COUNT(DISTINCT) as bits up to here */
#define LINEAR_MAX_EDGES 8    /* histogram bins by counting edges */

typedef unsigned __int128 en_u128;
typedef __int128 en_i128;

/* An integer measure's sum of stored values in 128 bits. */
struct en_sum {
    uint64_t lo, hi;
};

/* ---- compiling ---------------------------------------------------------- */

static int
arr_add(struct en_query *q, size_t elem, size_t per_group, enum en_merge merge,
        int fill, int phase)
{
    if (q->n_arrs == q->cap_arrs) {
        size_t cap = q->cap_arrs ? q->cap_arrs * 2 : 16;
        struct en_arr *n = en_qalloc(q, cap * sizeof(*n));
        if (!n)
            return FQ_ENOMEM;
        if (q->n_arrs)
            memcpy(n, q->arrs, q->n_arrs * sizeof(*n));
        q->arrs = n;
        q->cap_arrs = cap;
    }
    q->arrs[q->n_arrs] = (struct en_arr){elem, per_group, merge, fill, phase};
    return (int)q->n_arrs++;
}

/* Thresholds in the stored domain: v >= edge iff stored >= threshold. */
static int
edges_compile(struct en_query *q, struct en_agg *a,
              const Fedq__V1__Aggregate *ag)
{
    const struct ag_xcol *c = a->col;

    a->n_bins = ag->n_edges + 1;
    a->uedges = en_qalloc(q, ag->n_edges * sizeof(*a->uedges));
    a->dedges = en_qalloc(q, ag->n_edges * sizeof(*a->dedges));
    if (!a->uedges || !a->dedges)
        return FQ_ENOMEM;
    for (size_t k = 0; k < ag->n_edges; k++) {
        const Fedq__V1__Literal *e = ag->edges[k];
        bool is_int = e->value_case == FEDQ__V1__LITERAL__VALUE_INT_VALUE;
        if (c->kind == AG_COL_INT) {
            if (!is_int)
                return en_fail(q, FQ_EINVAL,
                               "HISTOGRAM(%s): integer edges "
                               "expected",
                               c->name);
            a->uedges[k] = e->int_value <= c->base
                               ? 0
                               : (uint64_t)e->int_value - (uint64_t)c->base;
        } else if (is_int) {
            /* the smallest double >= the integer */
            double d = (double)e->int_value;
            bool below = d < 9223372036854775808.0 && (int64_t)d < e->int_value;
            a->dedges[k] = below ? nextafter(d, INFINITY) : d;
        } else {
            a->dedges[k] = e->decimal_value;
            /* m >= NULL is never TRUE: SQLite's bins stay empty */
            a->void_bins |= isnan(e->decimal_value);
        }
    }
    return 0;
}

/* An earlier SUM, AVG, VAR or STDDEV of a's column (a VAR or STDDEV if
 * var): its state serves a too. */
static const struct en_agg *
measure_twin(const struct en_query *q, const struct en_agg *a, bool var)
{
    for (const struct en_agg *o = q->aggs; o < a; o++) {
        if (o->col == a->col && o->a_sum >= 0 && (!var || o->a_m2 >= 0))
            return o;
    }
    return NULL;
}

static bool
is_var_kind(int kind)
{
    return kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_VAR ||
           kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_STDDEV;
}

static int
measure_compile(struct en_query *q, struct en_agg *a)
{
    bool is_int = a->col->kind == AG_COL_INT;
    const struct en_agg *o = measure_twin(q, a, false);

    if (a->col->kind == AG_COL_DICT)
        return en_fail(q, FQ_EINVAL, "column '%s' is not a number",
                       a->col->name);
    if (o) {
        a->a_cnt = o->a_cnt;
        a->a_sum = o->a_sum;
        a->sum_shared = true;
    } else if ((a->col->nulls &&
                (a->a_cnt = arr_add(q, 8, 1, EN_M_I64, 0, 1)) < 0) ||
               (a->a_sum = arr_add(q, is_int ? sizeof(struct en_sum) : 8, 1,
                                   is_int ? EN_M_U128 : EN_M_F64, 0, 1)) < 0) {
        return FQ_ENOMEM; /* without NULLs the count is the records */
    }
    if (!is_var_kind(a->kind))
        return 0;
    q->pass2 = true;
    if ((o = measure_twin(q, a, true))) {
        a->a_mean = o->a_mean;
        a->a_m2 = o->a_m2;
        a->dev_shared = true;
        return 0;
    }
    if ((a->a_mean = arr_add(q, 8, 1, EN_M_NONE, 0, 1)) < 0 ||
        (a->a_m2 = arr_add(q, 8, 1, EN_M_F64, 0, 2)) < 0)
        return FQ_ENOMEM;
    return 0;
}

static int
histogram_compile(struct en_query *q, struct en_agg *a,
                  const Fedq__V1__Aggregate *ag)
{
    int rc = edges_compile(q, a, ag);
    if (rc < 0)
        return rc;
    if ((a->a_bins = arr_add(q, 8, a->n_bins, EN_M_I64, 0, 1)) < 0)
        return FQ_ENOMEM;
    if (q->contrib &&
        ((a->a_binc = arr_add(q, 8, a->n_bins, EN_M_I64, 0, 1)) < 0 ||
         (a->a_binlast = arr_add(q, 8, a->n_bins, EN_M_NONE, 0, 1)) < 0))
        return FQ_ENOMEM;
    return 0;
}

static int
quantile_compile(struct en_query *q, struct en_agg *a,
                 const Fedq__V1__Aggregate *ag)
{
    const Fedq__V1__Column *col = fq_catalog_column(q->ds, ag->column);

    if (!col || a->col->kind != AG_COL_INT ||
        fq_quantile_sketch(col, &a->qw, &a->qused) < 0)
        return en_fail(q, FQ_EINVAL, "QUANTILE is not enabled on '%s'",
                       ag->column);
    a->qmin = col->bounds->min;
    if ((a->a_q = arr_add(q, 8, a->qused, EN_M_I64, 0, 1)) < 0)
        return FQ_ENOMEM;
    return 0;
}

/* Stored values of c lie in [0, dom); 0 if the domain is too wide. */
static uint64_t
bitmap_domain(const struct ag_xcol *c)
{
    if (c->kind == AG_COL_DICT)
        return c->dict_size;
    if (c->kind == AG_COL_INT && c->min <= c->max &&
        (uint64_t)c->max - (uint64_t)c->base < BITMAP_MAX_DOM)
        return (uint64_t)c->max - (uint64_t)c->base + 1;
    return 0;
}

static int
distinct_compile(struct en_query *q, struct en_agg *a)
{
    if (a->col == q->contrib) {
        a->distinct = EN_D_CONTRIB;
        return 0;
    }
    a->dom = bitmap_domain(a->col);
    if (a->dom && a->dom <= BITMAP_MAX_DOM) {
        a->distinct = EN_D_BITMAP;
        a->words = (a->dom + 63) / 64;
        a->a_bits = arr_add(q, 8, a->words, EN_M_OR64, 0, 1);
        return a->a_bits < 0 ? FQ_ENOMEM : 0;
    }
    a->distinct = EN_D_SET;
    a->a_cnt = arr_add(q, 8, 1, EN_M_NONE, 0, 1); /* filled when emitting */
    return a->a_cnt < 0 ? FQ_ENOMEM : 0;
}

static int
agg_compile(struct en_query *q, struct en_agg *a, const Fedq__V1__Aggregate *ag)
{
    a->kind = ag->kind;
    a->a_cnt = a->a_sum = a->a_mean = a->a_m2 = -1;
    a->a_bins = a->a_binc = a->a_binlast = a->a_q = a->a_bits = -1;
    a->a_pcnt = a->a_plast = a->a_pck = a->a_binck = -1;
    a->a_top = a->a_abs = a->a_units = a->a_ucur = a->a_usum = -1;
    if (ag->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT)
        return 0;
    if (!(a->col = en_column(q, ag->column)))
        return en_fail(q, FQ_EINVAL, "column '%s' is not in the extract",
                       ag->column);
    switch (ag->kind) {
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT_DISTINCT:
        return distinct_compile(q, a);
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_AVG:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_VAR:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_STDDEV:
        return measure_compile(q, a);
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM:
        if (a->col->kind == AG_COL_DICT)
            break;
        return histogram_compile(q, a, ag);
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE:
        return quantile_compile(q, a, ag);
    default:
        break;
    }
    return en_fail(q, FQ_EINVAL, "unknown aggregate on '%s'", ag->column);
}

/* The disclosure fields' state (cellstats.h): an aggregate's own
 * contributors where its column has NULLs, bins' cell keys, and a
 * magnitude's units with its unit column, if the catalog declares one. */
static int
cells_compile(struct en_query *q, struct en_agg *a)
{
    if (a->col && a->col->nulls && a->distinct != EN_D_CONTRIB &&
        ((a->a_pcnt = arr_add(q, 8, 1, EN_M_I64, 0, 1)) < 0 ||
         (a->a_plast = arr_add(q, 8, 1, EN_M_NONE, 0, 1)) < 0 ||
         (a->a_pck = arr_add(q, 4, 1, EN_M_U32, 0, 1)) < 0))
        return FQ_ENOMEM;
    if (a->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM &&
        (a->a_binck = arr_add(q, 4, a->n_bins, EN_M_U32, 0, 1)) < 0)
        return FQ_ENOMEM;
    if (!ag_cellstats_is_magnitude(a->kind))
        return 0;
    const Fedq__V1__Column *col = fq_catalog_column(q->ds, a->col->name);
    if (col && col->contributor_unit[0] &&
        !(a->unit = en_column(q, col->contributor_unit)))
        return en_fail(q, FQ_EINVAL, "unit column '%s' is not in the extract",
                       col->contributor_unit);
    if ((a->a_top = arr_add(q, 8, 2, EN_M_TOP2, 0, 1)) < 0 ||
        (a->a_abs = arr_add(q, 8, 1, EN_M_F64, 0, 1)) < 0 ||
        (a->a_units = arr_add(q, 8, 1, EN_M_I64, 0, 1)) < 0)
        return FQ_ENOMEM;
    if (!a->unit && q->contrib &&
        ((a->a_ucur = arr_add(q, 8, 1, EN_M_NONE, 0, 1)) < 0 ||
         (a->a_usum = arr_add(q, 8, 1, EN_M_NONE, 0, 1)) < 0))
        return FQ_ENOMEM;
    return 0;
}

int
en_agg_compile(struct en_query *q)
{
    const Fedq__V1__Plan *plan = q->plan;
    const struct ag_extract *x = q->x;

    q->contrib = NULL;
    if (x->contributor >= 0 && (size_t)x->contributor < x->n_cols) {
        q->contrib = &x->cols[x->contributor];
        if (!x->contributor_runs)
            return en_fail(q, FQ_EINVAL,
                           "the extract has no contributor run bitmap");
    }
    if ((q->a_rec = arr_add(q, 8, 1, EN_M_I64, 0, 1)) < 0)
        return FQ_ENOMEM;
    q->a_contrib = q->a_last = -1;
    /* last-seen run numbers start at 0: no run yet */
    if (q->contrib && ((q->a_contrib = arr_add(q, 8, 1, EN_M_I64, 0, 1)) < 0 ||
                       (q->a_last = arr_add(q, 8, 1, EN_M_NONE, 0, 1)) < 0))
        return FQ_ENOMEM;
    if ((q->a_ck = arr_add(q, 4, 1, EN_M_U32, 0, 1)) < 0)
        return FQ_ENOMEM;
    q->n_aggs = plan->n_aggregates;
    if (!(q->aggs = en_qalloc(q, (q->n_aggs + 1) * sizeof(*q->aggs))))
        return FQ_ENOMEM;
    q->counting = q->n_keys == 0;
    for (size_t i = 0; i < q->n_aggs; i++) {
        struct en_agg *a = &q->aggs[i];
        int rc = agg_compile(q, a, plan->aggregates[i]);
        if (rc == 0)
            rc = cells_compile(q, a);
        if (rc < 0)
            return rc;
        q->counting &= !a->col || a->distinct == EN_D_CONTRIB;
    }
    q->narrow_sums = x->n_rows < (uint64_t)1 << 32;
    return 0;
}

size_t
en_agg_group_bytes(const struct en_query *q)
{
    size_t n = 0;
    for (size_t i = 0; i < q->n_arrs; i++)
        n += q->arrs[i].elem * q->arrs[i].per_group;
    return n;
}

/* ---- state -------------------------------------------------------------- */

static size_t
arr_bytes(const struct en_arr *a, size_t groups)
{
    return a->elem * a->per_group * groups;
}

static int
pairs_init(struct en_query *q, struct en_pairset *ps, size_t entries)
{
    void *p;
    int rc = en_alloc(&q->budget, entries * sizeof(struct en_pair), &p);
    if (rc < 0)
        return rc;
    ps->slots = p;
    ps->mask = entries - 1;
    ps->n = 0;
    for (size_t i = 0; i < entries; i++)
        ps->slots[i].g = UINT32_MAX;
    return 0;
}

static int
units_init(struct en_query *q, struct en_unitset *us, size_t entries)
{
    void *p;
    int rc = en_alloc(&q->budget, entries * sizeof(struct en_unitsum), &p);
    if (rc < 0)
        return rc;
    us->slots = p;
    us->mask = entries - 1;
    us->n = 0;
    for (size_t i = 0; i < entries; i++)
        us->slots[i].g = UINT32_MAX;
    return 0;
}

int
en_state_init(struct en_query *q, struct en_state *st, size_t cap)
{
    int rc;

    st->cap = cap;
    st->n_groups = 0;
    st->p = en_qalloc(q, (q->n_arrs + 1) * sizeof(*st->p));
    st->pairs = en_qalloc(q, (q->n_aggs + 1) * sizeof(*st->pairs));
    st->units = en_qalloc(q, (q->n_aggs + 1) * sizeof(*st->units));
    if (!st->p || !st->pairs || !st->units)
        return FQ_ENOMEM;
    for (size_t i = 0; i < q->n_arrs; i++) {
        size_t n = arr_bytes(&q->arrs[i], cap);
        if ((rc = en_alloc(&q->budget, n, &st->p[i])) < 0)
            return rc;
        if (q->arrs[i].fill)
            memset(st->p[i], q->arrs[i].fill, n);
    }
    for (size_t i = 0; i < q->n_aggs; i++) {
        if (q->aggs[i].kind ==
                FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT_DISTINCT &&
            q->aggs[i].distinct == EN_D_SET &&
            (rc = pairs_init(q, &st->pairs[i], PAIRS_FIRST)) < 0)
            return rc;
        if (q->aggs[i].unit &&
            (rc = units_init(q, &st->units[i], PAIRS_FIRST)) < 0)
            return rc;
    }
    return 0;
}

int
en_state_grow(struct en_query *q, struct en_state *st, size_t cap)
{
    for (size_t i = 0; i < q->n_arrs; i++) {
        int rc = en_grow(&q->budget, &st->p[i], arr_bytes(&q->arrs[i], st->cap),
                         arr_bytes(&q->arrs[i], cap), q->arrs[i].fill);
        if (rc < 0)
            return rc;
    }
    st->cap = cap;
    return 0;
}

void
en_state_release(struct en_query *q, struct en_state *st)
{
    for (size_t i = 0; st->p && i < q->n_arrs; i++)
        en_free(&q->budget, st->p[i], arr_bytes(&q->arrs[i], st->cap));
    for (size_t i = 0; st->pairs && i < q->n_aggs; i++) {
        if (st->pairs[i].slots)
            en_free(&q->budget, st->pairs[i].slots,
                    (st->pairs[i].mask + 1) * sizeof(struct en_pair));
    }
    for (size_t i = 0; st->units && i < q->n_aggs; i++) {
        if (st->units[i].slots)
            en_free(&q->budget, st->units[i].slots,
                    (st->units[i].mask + 1) * sizeof(struct en_unitsum));
    }
    st->p = NULL;
    st->pairs = NULL;
    st->units = NULL;
}

/* ---- the distinct-pair set ---------------------------------------------- */

static size_t
pair_slot(const struct en_pairset *ps, uint32_t g, uint64_t v)
{
    uint64_t h = (v ^ ((uint64_t)g << 32 | g)) * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h ^ h >> 29) & ps->mask;
}

static int
pairs_rehash(struct en_query *q, struct en_pairset *ps)
{
    struct en_pairset old = *ps;
    int rc = pairs_init(q, ps, (old.mask + 1) * 2);

    if (rc < 0) {
        *ps = old;
        return rc;
    }
    for (size_t i = 0; i <= old.mask; i++) {
        if (old.slots[i].g == UINT32_MAX)
            continue;
        size_t j = pair_slot(ps, old.slots[i].g, old.slots[i].v);
        while (ps->slots[j].g != UINT32_MAX)
            j = (j + 1) & ps->mask;
        ps->slots[j] = old.slots[i];
    }
    ps->n = old.n;
    en_free(&q->budget, old.slots, (old.mask + 1) * sizeof(struct en_pair));
    return 0;
}

static int
pairs_add(struct en_query *q, struct en_pairset *ps, uint32_t g, uint64_t v)
{
    size_t i = pair_slot(ps, g, v);
    for (; ps->slots[i].g != UINT32_MAX; i = (i + 1) & ps->mask) {
        if (ps->slots[i].g == g && ps->slots[i].v == v)
            return 0;
    }
    ps->slots[i] = (struct en_pair){v, g};
    if (++ps->n * 2 > ps->mask + 1)
        return pairs_rehash(q, ps);
    return 0;
}

/* ---- the unit totals ------------------------------------------------------
 */

static size_t
unit_slot(const struct en_unitset *us, uint32_t g, uint64_t u)
{
    uint64_t h = (u ^ ((uint64_t)g << 32 | g)) * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h ^ h >> 29) & us->mask;
}

static int
units_rehash(struct en_query *q, struct en_unitset *us)
{
    struct en_unitset old = *us;
    int rc = units_init(q, us, (old.mask + 1) * 2);

    if (rc < 0) {
        *us = old;
        return rc;
    }
    for (size_t i = 0; i <= old.mask; i++) {
        if (old.slots[i].g == UINT32_MAX)
            continue;
        size_t j = unit_slot(us, old.slots[i].g, old.slots[i].unit);
        while (us->slots[j].g != UINT32_MAX)
            j = (j + 1) & us->mask;
        us->slots[j] = old.slots[i];
    }
    us->n = old.n;
    en_free(&q->budget, old.slots, (old.mask + 1) * sizeof(struct en_unitsum));
    return 0;
}

/* Adds x to unit u's total in group g. */
static int
units_add(struct en_query *q, struct en_unitset *us, uint32_t g, uint64_t u,
          double x)
{
    size_t i = unit_slot(us, g, u);
    for (; us->slots[i].g != UINT32_MAX; i = (i + 1) & us->mask) {
        if (us->slots[i].g == g && us->slots[i].unit == u) {
            us->slots[i].total += x;
            return 0;
        }
    }
    us->slots[i] = (struct en_unitsum){u, g, x};
    if (++us->n * 2 > us->mask + 1)
        return units_rehash(q, us);
    return 0;
}

/* ---- per block ---------------------------------------------------------- */

#define ARR(t, i, T) ((T *)(t)->st.p[i])

/* Rows [b, b + n) of the contributor run bitmap as words w[0..⌈n/64⌉),
 * the last one padded with 0. Blocks start anywhere: bits are shifted
 * down, never read past the block's last word. */
static void
run_bits(const struct en_thread *t, uint64_t b, size_t n, uint64_t *w)
{
    const uint64_t *runs = t->q->x->contributor_runs + (b >> 6);
    size_t words = (n + 63) / 64, last = (size_t)(((b & 63) + n - 1) >> 6);
    unsigned s = (unsigned)(b & 63);

    for (size_t i = 0; i < words; i++) {
        w[i] = runs[i] >> s;
        if (s && i + 1 <= last)
            w[i] |= runs[i + 1] << (64 - s);
    }
    if (n % 64)
        w[words - 1] &= ((uint64_t)1 << (n % 64)) - 1;
}

/*
 * The selected rows that are the first selected row of their contributor
 * run, among rows whose selection is S (bit words sw, replaced by the
 * answer) and run starts R: the selected run starts, and the selected rows
 * whose nearest run start or selected row below them (in U = S | R) is an
 * unselected run start (in A = R & ~S). For each bit of A, the lowest bit
 * of U above it is U & ~(U - (A << 1)); the borrow stops there. The carry
 * brings an unselected run start from the words before.
 */
static void
first_selected(uint64_t *sw, const uint64_t *rw, size_t words, uint64_t *carry)
{
    for (size_t w = 0; w < words; w++) {
        uint64_t u = sw[w] | rw[w], a = rw[w] & ~sw[w];
        uint64_t next = u & ~(u - (a << 1 | *carry));
        sw[w] &= rw[w] | next;
        if (u)
            *carry = a >> (63 - __builtin_clzll(u)) & 1;
    }
}

/* Does a contributor run start among rows [from, to)? */
static bool
any_run_start(const struct en_thread *t, uint64_t from, uint64_t to)
{
    const uint64_t *runs = t->q->x->contributor_runs;

    while (from < to) {
        uint64_t w = runs[from >> 6] >> (from & 63);
        uint64_t len = 64 - (from & 63);
        if (len > to - from)
            len = to - from;
        if (len < 64)
            w &= ((uint64_t)1 << len) - 1;
        if (w)
            return true;
        from += len;
    }
    return false;
}

/*
 * The run number of each selected row idx[0..n) of block b into s.runs:
 * how many runs of the slice up to the row have a selected row (0 for the
 * NULL rows before the first run: no contributor). Rows of one run share a
 * number, and numbers grow, so a group sees a new contributor when the
 * number changes. t->runs and t->run_carry (the last run start seen has no
 * selected row) cover the rows before t->runs_upto; blocks with no
 * selected row were skipped, so a run start there sets the carry.
 */
static void
run_numbers(struct en_thread *t, uint64_t b, const uint32_t *idx, size_t n)
{
    size_t rows = (size_t)idx[n - 1] + 1, words = (rows + 63) / 64;
    uint64_t sw[EN_BLOCK / 64], rw[EN_BLOCK / 64], *out = t->s.runs;
    uint64_t k = t->runs;

    if (t->runs_upto < b && any_run_start(t, t->runs_upto, b))
        t->run_carry = 1;
    run_bits(t, b, rows, rw);
    /* the selection as en_filter_select left it: bits past idx[n - 1]
     * are 0 */
    memcpy(sw, t->s.sel, words * sizeof(*sw));
    first_selected(sw, rw, words, &t->run_carry);
    for (size_t j = 0; j < n; j++) {
        k += sw[idx[j] >> 6] >> (idx[j] & 63) & 1;
        out[j] = k;
    }
    t->runs = k;
    t->runs_upto = b + rows;
}

/* Each selected row's record key into s.rkj: its contributor's, or its
 * own without a contributor (a NULL contributor's row gets a key never
 * used: such rows count for no contributor). */
static void
record_keys(struct en_thread *t, uint64_t b, const uint32_t *idx, size_t n)
{
    const struct en_query *q = t->q;
    uint32_t *rkj = t->s.rkj;

    if (!q->tags) {
        memset(rkj, 0, n * sizeof(*rkj));
        return;
    }
    if (q->rk_by_row) {
        for (size_t j = 0; j < n; j++)
            rkj[j] = (uint32_t)(q->tags[b + idx[j]] >> 32);
        return;
    }
    en_gather_u64(q->contrib, b, idx, n, t->s.pcode);
    for (size_t j = 0; j < n; j++)
        rkj[j] = (uint32_t)(q->tags[t->s.pcode[j]] >> 32);
}

/* Records per group, distinct contributors and their cell key: run
 * numbers and record keys are left in s.runs and s.rkj for the
 * aggregates. */
static void
count_rows(struct en_thread *t, uint64_t b, const uint32_t *idx,
           const uint32_t *g, size_t n)
{
    const struct en_query *q = t->q;
    int64_t *rec = ARR(t, q->a_rec, int64_t);
    uint32_t *ck = ARR(t, q->a_ck, uint32_t);
    const uint32_t *rkj = t->s.rkj;

    record_keys(t, b, idx, n);
    if (!q->contrib) { /* every record is a contributor */
        for (size_t j = 0; j < n; j++) {
            rec[g[j]]++;
            ck[g[j]] += rkj[j];
        }
        return;
    }
    run_numbers(t, b, idx, n);
    const uint64_t *run = t->s.runs;
    uint64_t *last = ARR(t, q->a_last, uint64_t);
    int64_t *cnt = ARR(t, q->a_contrib, int64_t);
    for (size_t j = 0; j < n; j++) {
        uint32_t gg = g[j];
        uint64_t v = run[j];
        bool fresh = v != last[gg];
        rec[gg]++;
        cnt[gg] += fresh;
        ck[gg] += fresh ? rkj[j] : 0;
        last[gg] = v;
    }
}

#define SUM_NARROW(T)                             \
    do {                                          \
        const T *p = (const T *)a->col->data + b; \
        for (size_t j = 0; j < n; j++)            \
            sum[g[j]].lo += p[idx[j]];            \
    } while (0)

/* Integer sums of stored values. Values of at most 4 bytes, fewer than
 * 2^32 of them: the low word cannot wrap. NULL rows count nothing. */
static void
sum_int(struct en_thread *t, const struct en_agg *a, uint64_t b,
        const uint32_t *idx, const uint32_t *g, size_t n)
{
    struct en_sum *sum = ARR(t, a->a_sum, struct en_sum);
    const struct ag_xcol *c = a->col;

    if (!c->nulls && c->width <= 4 && t->q->narrow_sums) {
        if (c->width == 1)
            SUM_NARROW(uint8_t);
        else if (c->width == 2)
            SUM_NARROW(uint16_t);
        else
            SUM_NARROW(uint32_t);
        return;
    }
    uint64_t *v = t->s.u64;
    const uint8_t *ok = t->s.ok;
    en_gather_u64(c, b, idx, n, v);
    en_gather_ok(c, b, idx, n, t->s.ok);
    for (size_t j = 0; j < n; j++) {
        struct en_sum *s = &sum[g[j]];
        uint64_t x = v[j] & -(uint64_t)ok[j];
        s->lo += x;
        s->hi += s->lo < x;
    }
    if (c->nulls) {
        int64_t *cnt = ARR(t, a->a_cnt, int64_t);
        for (size_t j = 0; j < n; j++)
            cnt[g[j]] += ok[j];
    }
}

/* Decimal sums, in row order within a thread (as SQLite's TOTAL). */
static void
sum_double(struct en_thread *t, const struct en_agg *a, uint64_t b,
           const uint32_t *idx, const uint32_t *g, size_t n)
{
    const double *v = t->s.dbl;
    const uint8_t *ok = t->s.ok;
    double *sum = ARR(t, a->a_sum, double);

    en_gather_f64(a->col, b, idx, n, t->s.dbl);
    if (!a->col->nulls) {
        for (size_t j = 0; j < n; j++)
            sum[g[j]] += v[j];
        return;
    }
    int64_t *cnt = ARR(t, a->a_cnt, int64_t);
    en_gather_ok(a->col, b, idx, n, t->s.ok);
    for (size_t j = 0; j < n; j++) {
        cnt[g[j]] += ok[j];
        sum[g[j]] += ok[j] ? v[j] : 0.0;
    }
}

/* The bin of each value: the number of thresholds at or below it. */
static void
bin_values(struct en_thread *t, const struct en_agg *a, size_t n)
{
    size_t ne = a->n_bins - 1;
    uint32_t *bin = t->s.bin;
    const uint64_t *u = t->s.u64;
    const double *d = t->s.dbl;
    bool is_int = a->col->kind == AG_COL_INT;

    memset(bin, 0, n * sizeof(*bin));
    if (ne <= LINEAR_MAX_EDGES) {
        for (size_t k = 0; k < ne; k++) {
            for (size_t j = 0; is_int && j < n; j++)
                bin[j] += u[j] >= a->uedges[k];
            for (size_t j = 0; !is_int && j < n; j++)
                bin[j] += d[j] >= a->dedges[k];
        }
        return;
    }
    for (size_t j = 0; j < n; j++) {
        size_t lo = 0, hi = ne;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            bool ge = is_int ? u[j] >= a->uedges[mid] : d[j] >= a->dedges[mid];
            if (ge)
                lo = mid + 1;
            else
                hi = mid;
        }
        bin[j] = (uint32_t)lo;
    }
}

static void
histogram(struct en_thread *t, const struct en_agg *a, const uint32_t *g,
          size_t n)
{
    const uint32_t *bin = t->s.bin;
    const uint64_t *run = t->s.runs;
    const uint8_t *ok = t->s.ok;
    size_t nb = a->n_bins;
    int64_t *bins = ARR(t, a->a_bins, int64_t);

    const uint32_t *rkj = t->s.rkj;
    uint32_t *ck = ARR(t, a->a_binck, uint32_t);

    if (a->void_bins)
        return;
    bin_values(t, a, n);
    for (size_t j = 0; j < n; j++)
        bins[g[j] * nb + bin[j]] += ok[j];
    if (a->a_binc < 0) { /* every record is a contributor */
        for (size_t j = 0; j < n; j++)
            ck[g[j] * nb + bin[j]] += ok[j] ? rkj[j] : 0;
        return;
    }
    int64_t *cnt = ARR(t, a->a_binc, int64_t);
    uint64_t *last = ARR(t, a->a_binlast, uint64_t);
    for (size_t j = 0; j < n; j++) {
        size_t i = g[j] * nb + bin[j];
        if (ok[j] && run[j] != last[i]) { /* run 0 (NULL) never counts */
            cnt[i]++;
            ck[i] += rkj[j];
            last[i] = run[j];
        }
    }
}

static void
quantile(struct en_thread *t, const struct en_agg *a, const uint32_t *g,
         size_t n)
{
    const uint64_t *v = t->s.u64;
    const uint8_t *ok = t->s.ok;
    int64_t *counts = ARR(t, a->a_q, int64_t);
    uint64_t base = (uint64_t)a->col->base;

    for (size_t j = 0; j < n; j++) {
        if (!ok[j])
            continue;
        uint32_t bin =
            fq_sketch_bin(a->qmin, a->qw, a->qused, (int64_t)(base + v[j]));
        counts[(size_t)g[j] * a->qused + bin]++;
    }
}

static void
distinct_bits(struct en_thread *t, const struct en_agg *a, const uint32_t *g,
              size_t n)
{
    const uint64_t *v = t->s.u64;
    const uint8_t *ok = t->s.ok;
    uint64_t *bits = ARR(t, a->a_bits, uint64_t);

    for (size_t j = 0; j < n; j++) {
        uint64_t x = v[j] < a->dom ? v[j] : a->dom - 1;
        bits[g[j] * a->words + x / 64] |= (uint64_t)ok[j] << (x % 64);
    }
}

static int
distinct_pairs(struct en_thread *t, struct en_pairset *ps, const uint32_t *g,
               size_t n, bool dbl)
{
    for (size_t j = 0; j < n; j++) {
        if (!t->s.ok[j])
            continue;
        uint64_t v = dbl ? en_double_order(t->s.dbl[j]) : t->s.u64[j];
        int rc = pairs_add(t->q, ps, g[j], v);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* VAR's second pass: squared deviations from the merged group means. */
static void
deviations(struct en_thread *t, const struct en_agg *a, const uint32_t *g,
           size_t n)
{
    const uint8_t *ok = t->s.ok;
    const double *mean = ARR(t, a->a_mean, double);
    double *m2 = ARR(t, a->a_m2, double), *x = t->s.dbl;

    if (a->col->kind == AG_COL_INT) {
        uint64_t base = (uint64_t)a->col->base;
        for (size_t j = 0; j < n; j++)
            x[j] = (double)(int64_t)(base + t->s.u64[j]);
    }
    for (size_t j = 0; j < n; j++) {
        double d = x[j] - mean[g[j]];
        m2[g[j]] += ok[j] ? d * d : 0.0;
    }
}

/* The aggregate's column at the selected rows into s.u64 or s.dbl. */
static void
gather_column(struct en_thread *t, const struct ag_xcol *c, uint64_t b,
              const uint32_t *idx, size_t n)
{
    if (c->kind == AG_COL_DOUBLE)
        en_gather_f64(c, b, idx, n, t->s.dbl);
    else
        en_gather_u64(c, b, idx, n, t->s.u64);
    en_gather_ok(c, b, idx, n, t->s.ok);
}

static bool
is_var(const struct en_agg *a)
{
    return is_var_kind(a->kind);
}

/* ---- disclosure fields, per block ---------------------------------------- */

/* An aggregate's own contributors: those with a non-NULL value. */
static void
agg_contributors(struct en_thread *t, const struct en_agg *a, const uint32_t *g,
                 size_t n)
{
    const uint8_t *ok = t->s.ok;
    const uint32_t *rkj = t->s.rkj;
    const uint64_t *run = t->s.runs;
    int64_t *cnt = ARR(t, a->a_pcnt, int64_t);
    uint32_t *ck = ARR(t, a->a_pck, uint32_t);

    if (!t->q->contrib) {
        for (size_t j = 0; j < n; j++) {
            cnt[g[j]] += ok[j];
            ck[g[j]] += ok[j] ? rkj[j] : 0;
        }
        return;
    }
    uint64_t *last = ARR(t, a->a_plast, uint64_t);
    for (size_t j = 0; j < n; j++) {
        uint32_t gg = g[j];
        if (ok[j] && run[j] != last[gg]) { /* run 0 (NULL) never counts */
            cnt[gg]++;
            ck[gg] += rkj[j];
            last[gg] = run[j];
        }
    }
}

/* One unit's total into group g's two largest, absolute total and units. */
static void
unit_push(struct en_thread *t, const struct en_agg *a, size_t g, double total)
{
    double *top = ARR(t, a->a_top, double) + 2 * g, v = fabs(total);

    ARR(t, a->a_units, int64_t)[g]++;
    ARR(t, a->a_abs, double)[g] += v;
    if (v > top[0]) {
        top[1] = top[0];
        top[0] = v;
    } else if (v > top[1]) {
        top[1] = v;
    }
}

/* The gathered values of a magnitude's column as doubles in s.dbl. */
static void
values_as_double(struct en_thread *t, const struct en_agg *a, size_t n)
{
    if (a->col->kind != AG_COL_INT)
        return;
    uint64_t base = (uint64_t)a->col->base;
    for (size_t j = 0; j < n; j++)
        t->s.dbl[j] = (double)(int64_t)(base + t->s.u64[j]);
}

/* Per-person totals: rows of one person are adjacent (the same run), so a
 * group's running total is pushed when its person changes (and at the
 * slice's end). Without a contributor each record is a unit. */
static void
person_units(struct en_thread *t, const struct en_agg *a, const uint32_t *g,
             size_t n)
{
    const uint8_t *ok = t->s.ok;
    const double *x = t->s.dbl;
    const uint64_t *run = t->s.runs;

    if (!t->q->contrib) {
        for (size_t j = 0; j < n; j++) {
            if (ok[j])
                unit_push(t, a, g[j], x[j]);
        }
        return;
    }
    uint64_t *cur = ARR(t, a->a_ucur, uint64_t);
    double *sum = ARR(t, a->a_usum, double);
    for (size_t j = 0; j < n; j++) {
        uint32_t gg = g[j];
        if (!ok[j] || run[j] == 0)
            continue;
        if (run[j] != cur[gg]) {
            if (cur[gg])
                unit_push(t, a, gg, sum[gg]);
            cur[gg] = run[j];
            sum[gg] = 0;
        }
        sum[gg] += x[j];
    }
}

/* Totals per (group, unit) of the unit column; rows without a unit are
 * one unit, as SQL's GROUP BY has it. */
static int
column_units(struct en_thread *t, const struct en_agg *a, size_t i, uint64_t b,
             const uint32_t *idx, const uint32_t *g, size_t n)
{
    const uint8_t *ok = t->s.ok;
    const double *x = t->s.dbl;
    uint64_t *u = t->s.pcode; /* the contributor codes are used up */

    en_gather_u64(a->unit, b, idx, n, u);
    for (size_t j = 0; j < n; j++) {
        if (!ok[j])
            continue;
        uint64_t unit =
            ag_xcol_is_null(a->unit, b + idx[j]) ? UINT64_MAX : u[j];
        int rc = units_add(t->q, &t->st.units[i], g[j], unit, x[j]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int
cells_block(struct en_thread *t, size_t i, uint64_t b, const uint32_t *idx,
            const uint32_t *g, size_t n)
{
    const struct en_agg *a = &t->q->aggs[i];

    if (a->a_pcnt < 0 && a->a_top < 0)
        return 0;
    gather_column(t, a->col, b, idx, n);
    if (a->a_pcnt >= 0)
        agg_contributors(t, a, g, n);
    if (a->a_top < 0)
        return 0;
    values_as_double(t, a, n);
    if (a->unit)
        return column_units(t, a, i, b, idx, g, n);
    person_units(t, a, g, n);
    return 0;
}

static int
agg_block(struct en_thread *t, size_t i, uint64_t b, const uint32_t *idx,
          const uint32_t *g, size_t n)
{
    const struct en_agg *a = &t->q->aggs[i];

    switch (a->kind) {
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT_DISTINCT:
        gather_column(t, a->col, b, idx, n);
        if (a->distinct == EN_D_BITMAP)
            distinct_bits(t, a, g, n);
        else if (a->distinct == EN_D_SET)
            return distinct_pairs(t, &t->st.pairs[i], g, n,
                                  a->col->kind == AG_COL_DOUBLE);
        return 0;
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM:
        gather_column(t, a->col, b, idx, n);
        histogram(t, a, g, n);
        return 0;
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE:
        gather_column(t, a->col, b, idx, n);
        quantile(t, a, g, n);
        return 0;
    default: /* SUM, AVG, and VAR's first pass */
        if (a->col->kind == AG_COL_DOUBLE)
            sum_double(t, a, b, idx, g, n);
        else
            sum_int(t, a, b, idx, g, n);
        return 0;
    }
}

int
en_agg_block(struct en_thread *t, uint64_t b, const uint32_t *idx, size_t n)
{
    const struct en_query *q = t->q;
    const uint32_t *g = t->s.g;

    if (t->phase == 1)
        count_rows(t, b, idx, g, n);
    for (size_t i = 0; i < q->n_aggs; i++) {
        const struct en_agg *a = &q->aggs[i];
        if (!a->col || (t->phase == 2 && !is_var(a)) ||
            a->distinct == EN_D_CONTRIB ||
            (t->phase == 1 ? a->sum_shared : a->dev_shared))
            continue;
        if (t->phase == 2) {
            gather_column(t, a->col, b, idx, n);
            deviations(t, a, g, n);
            continue;
        }
        int rc = agg_block(t, i, b, idx, g, n);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; t->phase == 1 && i < q->n_aggs; i++) {
        int rc = cells_block(t, i, b, idx, g, n);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void
en_agg_slice_end(struct en_thread *t)
{
    const struct en_query *q = t->q;
    size_t groups = q->dense ? q->slots : t->st.n_groups;

    for (size_t i = 0; i < q->n_aggs; i++) {
        const struct en_agg *a = &q->aggs[i];
        if (a->a_ucur < 0)
            continue;
        uint64_t *cur = ARR(t, a->a_ucur, uint64_t);
        const double *sum = ARR(t, a->a_usum, double);
        for (size_t g = 0; g < groups; g++) {
            if (cur[g])
                unit_push(t, a, g, sum[g]);
            cur[g] = 0;
        }
    }
}

/* ---- counting plans ----------------------------------------------------- */

/* The sum of the record keys of the rows b + i whose bit i is set in
 * sw: their contributors' (by), or their own. */
static uint32_t
selected_keys(const struct en_query *q, uint64_t b, const uint64_t *sw,
              size_t words, bool by_contributor)
{
    uint32_t sum = 0;

    for (size_t w = 0; q->tags && w < words; w++) {
        for (uint64_t bits = sw[w]; bits; bits &= bits - 1) {
            uint64_t r = b + w * 64 + (uint64_t)__builtin_ctzll(bits);
            sum += (uint32_t)(q->tags[by_contributor && !q->rk_by_row
                                          ? ag_xcol_stored(q->contrib, r)
                                          : r] >>
                              32);
        }
    }
    return sum;
}

void
en_agg_count_block(struct en_thread *t, uint64_t b, size_t n,
                   const uint8_t *mask)
{
    const struct en_query *q = t->q;
    uint64_t *sw = t->s.u64, *rw = sw + EN_BLOCK / 64;
    size_t words = (n + 63) / 64;
    int64_t k = 0;

    if (mask) {
        en_mask_bits(mask, n, sw);
    } else {
        memset(sw, 0xFF, words * 8);
        if (n % 64)
            sw[words - 1] = ((uint64_t)1 << (n % 64)) - 1;
    }
    for (size_t w = 0; w < words; w++)
        k += en_popcount(sw[w]);
    ARR(t, q->a_rec, int64_t)[0] += k;
    if (!q->contrib) {
        ARR(t, q->a_ck, uint32_t)[0] += selected_keys(q, b, sw, words, false);
        return;
    }
    run_bits(t, b, n, rw);
    first_selected(sw, rw, words, &t->run_carry);
    k = 0;
    for (size_t w = 0; w < words; w++)
        k += en_popcount(sw[w]);
    ARR(t, q->a_contrib, int64_t)[0] += k;
    ARR(t, q->a_ck, uint32_t)[0] += selected_keys(q, b, sw, words, true);
}

/* ---- merging ------------------------------------------------------------ */

/* The two largest of d's and x's two largest, into d. */
static void
top2_merge(double *d, const double *x)
{
    for (int k = 0; k < 2; k++) {
        if (x[k] > d[0]) {
            d[1] = d[0];
            d[0] = x[k];
        } else if (x[k] > d[1]) {
            d[1] = x[k];
        }
    }
}

static void
merge_flat(enum en_merge m, void *dst, const void *src, size_t n)
{
    switch (m) {
    case EN_M_I64:
        for (size_t i = 0; i < n; i++)
            ((int64_t *)dst)[i] += ((const int64_t *)src)[i];
        break;
    case EN_M_U128:
        for (size_t i = 0; i < n; i++) {
            struct en_sum *d = (struct en_sum *)dst + i;
            const struct en_sum *x = (const struct en_sum *)src + i;
            d->lo += x->lo;
            d->hi += x->hi + (d->lo < x->lo);
        }
        break;
    case EN_M_F64:
        for (size_t i = 0; i < n; i++)
            ((double *)dst)[i] += ((const double *)src)[i];
        break;
    case EN_M_OR64:
        for (size_t i = 0; i < n; i++)
            ((uint64_t *)dst)[i] |= ((const uint64_t *)src)[i];
        break;
    case EN_M_U32:
        for (size_t i = 0; i < n; i++)
            ((uint32_t *)dst)[i] += ((const uint32_t *)src)[i];
        break;
    case EN_M_TOP2:
        for (size_t i = 0; i < n; i += 2)
            top2_merge((double *)dst + i, (const double *)src + i);
        break;
    default:
        break;
    }
}

void
en_agg_merge(struct en_thread *t0, const struct en_thread *t, int phase)
{
    const struct en_query *q = t->q;

    for (size_t i = 0; i < q->n_arrs; i++) {
        const struct en_arr *a = &q->arrs[i];
        size_t per = a->elem * a->per_group;
        if (a->merge == EN_M_NONE || a->phase != phase)
            continue;
        if (q->dense) {
            merge_flat(a->merge, t0->st.p[i], t->st.p[i],
                       q->slots * a->per_group);
            continue;
        }
        for (size_t g = 0; g < t->st.n_groups; g++)
            merge_flat(a->merge, (char *)t0->st.p[i] + t->map[g] * per,
                       (const char *)t->st.p[i] + g * per, a->per_group);
    }
}

/* t's unit totals into t0's, group ids mapped. */
static int
merge_units(struct en_thread *t0, const struct en_thread *t)
{
    const struct en_query *q = t->q;

    for (size_t i = 0; i < q->n_aggs; i++) {
        const struct en_unitset *us = &t->st.units[i];
        for (size_t j = 0; us->slots && j <= us->mask; j++) {
            const struct en_unitsum *e = &us->slots[j];
            if (e->g == UINT32_MAX)
                continue;
            int rc = units_add(t0->q, &t0->st.units[i],
                               t->map ? t->map[e->g] : e->g, e->unit, e->total);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int
en_agg_merge_sets(struct en_thread *t0, const struct en_thread *t)
{
    const struct en_query *q = t->q;
    int rc = merge_units(t0, t);

    if (rc < 0)
        return rc;
    for (size_t i = 0; i < q->n_aggs; i++) {
        const struct en_pairset *ps = &t->st.pairs[i];
        for (size_t j = 0; ps->slots && j <= ps->mask; j++) {
            uint32_t g = ps->slots[j].g;
            if (g == UINT32_MAX)
                continue;
            rc = pairs_add(t0->q, &t0->st.pairs[i], t->map ? t->map[g] : g,
                           ps->slots[j].v);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* Groups of thread 0's state: the slots, or the hash groups. */
size_t
en_groups(const struct en_thread *t0)
{
    return t0->q->dense ? t0->q->slots : t0->st.n_groups;
}

/* Values of a measure in group g: its records when it has no NULL (the
 * loops then skip counting). */
static int64_t
measure_count(const struct en_thread *t0, const struct en_agg *a, size_t g)
{
    return ARR(t0, a->col->nulls ? a->a_cnt : t0->q->a_rec, int64_t)[g];
}

/* The value sum of an integer measure's group: count * base + stored. */
static en_i128
int_sum(const struct en_thread *t0, const struct en_agg *a, size_t g)
{
    const struct en_sum *s = &ARR(t0, a->a_sum, struct en_sum)[g];
    en_u128 stored = (en_u128)s->hi << 64 | s->lo;
    return (en_i128)measure_count(t0, a, g) * a->col->base + (en_i128)stored;
}

void
en_agg_means(struct en_thread *t0)
{
    const struct en_query *q = t0->q;

    for (size_t i = 0; i < q->n_aggs; i++) {
        const struct en_agg *a = &q->aggs[i];
        if (!is_var(a))
            continue;
        double *mean = ARR(t0, a->a_mean, double);
        for (size_t g = 0; g < en_groups(t0); g++) {
            int64_t cnt = measure_count(t0, a, g);
            if (cnt == 0)
                continue;
            double sum = a->col->kind == AG_COL_INT
                             ? (double)int_sum(t0, a, g)
                             : ARR(t0, a->a_sum, double)[g];
            mean[g] = sum / (double)cnt;
        }
    }
}

void
en_agg_spread_means(struct en_thread *t0, struct en_thread *t)
{
    const struct en_query *q = t0->q;

    for (size_t i = 0; i < q->n_aggs; i++) {
        const struct en_agg *a = &q->aggs[i];
        if (!is_var(a))
            continue;
        const double *from = ARR(t0, a->a_mean, double);
        double *to = ARR(t, a->a_mean, double);
        if (q->dense) {
            memcpy(to, from, q->slots * sizeof(double));
            continue;
        }
        for (size_t g = 0; g < t->st.n_groups; g++)
            to[g] = from[t->map[g]];
    }
}

/* ---- the partial aggregates --------------------------------------------- */

/* COUNT(DISTINCT) over pairs: each group's number of pairs. */
static void
count_pairs(struct en_thread *t0)
{
    const struct en_query *q = t0->q;

    for (size_t i = 0; i < q->n_aggs; i++) {
        const struct en_pairset *ps = &t0->st.pairs[i];
        if (q->aggs[i].distinct != EN_D_SET)
            continue;
        int64_t *cnt = ARR(t0, q->aggs[i].a_cnt, int64_t);
        for (size_t j = 0; j <= ps->mask; j++) {
            if (ps->slots[j].g != UINT32_MAX)
                cnt[ps->slots[j].g]++;
        }
    }
}

static int64_t
count_bits(const uint64_t *w, size_t n)
{
    int64_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += en_popcount(w[i]);
    return k;
}

static int
emit_bins(struct fq_arena *arena, const struct en_thread *t0,
          const struct en_agg *a, size_t g, Fedq__V1__AggregateState *s)
{
    size_t nb = a->n_bins;
    const int64_t *bins = ARR(t0, a->a_bins, int64_t) + g * nb;
    const int64_t *binc =
        a->a_binc >= 0 ? ARR(t0, a->a_binc, int64_t) + g * nb : NULL;

    s->bins = fq_arena_alloc(arena, nb * sizeof(*s->bins));
    s->bin_contributors = fq_arena_alloc(arena, nb * sizeof(*s->bins));
    if (!s->bins || !s->bin_contributors)
        return FQ_ENOMEM;
    for (size_t b = 0; b < nb; b++) {
        s->bins[b] = bins[b];
        /* without a contributor every record is one */
        s->bin_contributors[b] = binc ? binc[b] : bins[b];
        s->count += bins[b];
    }
    s->n_bins = s->n_bin_contributors = nb;
    return 0;
}

static int
emit_sketch(struct fq_arena *arena, const struct en_thread *t0,
            const struct en_agg *a, size_t g, Fedq__V1__AggregateState *s)
{
    const int64_t *counts = ARR(t0, a->a_q, int64_t) + g * a->qused;
    size_t n = 0;

    for (uint32_t i = 0; i < a->qused; i++)
        n += counts[i] != 0;
    s->sketch_bins = fq_arena_alloc(arena, (n + 1) * sizeof(*s->sketch_bins));
    s->sketch_counts =
        fq_arena_alloc(arena, (n + 1) * sizeof(*s->sketch_counts));
    if (!s->sketch_bins || !s->sketch_counts)
        return FQ_ENOMEM;
    n = 0;
    for (uint32_t i = 0; i < a->qused; i++) {
        if (!counts[i])
            continue;
        s->sketch_bins[n] = i;
        s->sketch_counts[n++] = counts[i];
        s->count += counts[i];
    }
    s->n_sketch_bins = s->n_sketch_counts = n;
    return 0;
}

/* SUM and AVG (and VAR's count, mean and M2). */
static int
emit_measure(const struct en_thread *t0, const struct en_agg *a, size_t g,
             Fedq__V1__AggregateState *s)
{
    s->count = measure_count(t0, a, g);
    if (is_var(a)) {
        s->mean = s->count ? ARR(t0, a->a_mean, double)[g] : 0.0;
        s->m2 = ARR(t0, a->a_m2, double)[g];
        return 0;
    }
    if (a->col->kind == AG_COL_DOUBLE) {
        s->decimal_sum = ARR(t0, a->a_sum, double)[g];
        return 0;
    }
    en_i128 sum = int_sum(t0, a, g);
    if (sum > INT64_MAX || sum < INT64_MIN)
        return en_fail(t0->q, FQ_ETOOBIG, "a sum overflows 64-bit integers");
    s->int_sum = (int64_t)sum;
    return 0;
}

static int
emit_state(struct fq_arena *arena, const struct en_thread *t0,
           const struct en_agg *a, size_t g, Fedq__V1__AggregateState *s)
{
    const struct en_query *q = t0->q;

    switch (a->kind) {
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT:
        s->count = ARR(t0, q->a_rec, int64_t)[g];
        return 0;
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT_DISTINCT:
        if (a->distinct == EN_D_CONTRIB)
            s->count = ARR(t0, q->a_contrib, int64_t)[g];
        else if (a->distinct == EN_D_BITMAP)
            s->count = count_bits(ARR(t0, a->a_bits, uint64_t) + g * a->words,
                                  a->words);
        else
            s->count = ARR(t0, a->a_cnt, int64_t)[g];
        return 0;
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM:
        return emit_bins(arena, t0, a, g, s);
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE:
        return emit_sketch(arena, t0, a, g, s);
    default:
        return emit_measure(t0, a, g, s);
    }
}

/* The disclosure fields of aggregate a in group g (cellstats.h). */
static int
emit_cells(struct fq_arena *arena, const struct en_thread *t0,
           const struct en_agg *a, size_t g, Fedq__V1__AggregateState *s)
{
    const struct en_query *q = t0->q;

    if (a->a_pcnt >= 0) {
        s->contributors = ARR(t0, a->a_pcnt, int64_t)[g];
        s->cell_key = ARR(t0, a->a_pck, uint32_t)[g];
    } else {
        s->contributors =
            ARR(t0, q->contrib ? q->a_contrib : q->a_rec, int64_t)[g];
        s->cell_key = ARR(t0, q->a_ck, uint32_t)[g];
    }
    if (a->a_binck >= 0) {
        s->n_bin_cell_keys = a->n_bins;
        s->bin_cell_keys =
            fq_arena_alloc(arena, (a->n_bins + 1) * sizeof(uint32_t));
        if (!s->bin_cell_keys)
            return FQ_ENOMEM;
        memcpy(s->bin_cell_keys, ARR(t0, a->a_binck, uint32_t) + g * a->n_bins,
               a->n_bins * sizeof(uint32_t));
    }
    if (a->a_top >= 0) {
        s->units = ARR(t0, a->a_units, int64_t)[g];
        s->top1 = ARR(t0, a->a_top, double)[2 * g];
        s->top2 = ARR(t0, a->a_top, double)[2 * g + 1];
        s->abs_total = ARR(t0, a->a_abs, double)[g];
    }
    return 0;
}

int
en_agg_emit_group(struct fq_arena *arena, struct en_thread *t0, size_t g,
                  Fedq__V1__PartialGroup *pg, Fedq__V1__AggregateState *states,
                  Fedq__V1__AggregateState **ptrs)
{
    const struct en_query *q = t0->q;

    pg->records = ARR(t0, q->a_rec, int64_t)[g];
    pg->contributors =
        q->contrib ? ARR(t0, q->a_contrib, int64_t)[g] : pg->records;
    pg->n_aggregates = q->n_aggs;
    pg->aggregates = ptrs;
    for (size_t i = 0; i < q->n_aggs; i++) {
        fedq__v1__aggregate_state__init(&states[i]);
        int rc = emit_state(arena, t0, &q->aggs[i], g, &states[i]);
        if (rc == 0)
            rc = emit_cells(arena, t0, &q->aggs[i], g, &states[i]);
        if (rc < 0)
            return rc;
        ptrs[i] = &states[i];
    }
    return 0;
}

/* The merged unit totals into each group's two largest and the rest. */
static void
finish_units(struct en_thread *t0)
{
    const struct en_query *q = t0->q;

    for (size_t i = 0; i < q->n_aggs; i++) {
        const struct en_unitset *us = &t0->st.units[i];
        for (size_t j = 0; q->aggs[i].unit && j <= us->mask; j++) {
            if (us->slots[j].g != UINT32_MAX)
                unit_push(t0, &q->aggs[i], us->slots[j].g, us->slots[j].total);
        }
    }
}

/* Per-group results that need a pass over the merged state. */
void
en_agg_finish(struct en_thread *t0)
{
    count_pairs(t0);
    finish_units(t0);
}

/* Records of group g in thread 0's state. */
int64_t
en_agg_records(const struct en_thread *t0, size_t g)
{
    return ARR(t0, t0->q->a_rec, int64_t)[g];
}
