/*
 * The extract engine's filter: the plan's predicate compiled into tests on
 * stored values, evaluated a block of rows at a time into byte masks (0 or
 * 0xFF per row, so that AND, OR and NOT are plain vector operations).
 *
 * SQL's three values: each node yields a TRUE mask and, when it can be
 * UNKNOWN (a NULL somewhere below), a FALSE mask; UNKNOWN is neither.
 * AND: t = t1 & t2, f = f1 | f2; OR: t = t1 | t2, f = f1 & f2; NOT swaps.
 * Only TRUE selects a row.
 *
 * Literals become tests in the stored domain at compile time: an integer
 * comparison is a range of offsets from the column's base, clamped to the
 * column's [min, max] (so literals outside the data, and INT64_MIN/MAX,
 * need no care per row); text is a range of dictionary codes found by
 * binary search (the dictionary is sorted by byte order, SQLite's BINARY
 * collation); doubles compare against exact double bounds, so an integer
 * literal beyond 2^53 compares exactly as SQLite compares it.
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "fq/plan.h"
#include "engine_internal.h"

#include <math.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "fedq/v1/plan.pb-c.h"

#define LUT_MAX_DOMAIN ((uint64_t)1 << 20) /* IN as a byte table up to here */

/* ---- compiling leaves --------------------------------------------------- */

static bool
is_nan_literal(const Fedq__V1__Literal *l)
{
    return l->value_case == FEDQ__V1__LITERAL__VALUE_DECIMAL_VALUE &&
           isnan(l->decimal_value);
}

/* Clamps the value range [lo, hi] to the column's values [dmin, dmax] and
 * turns it into a test on stored = value - base. */
static void
set_range(struct en_node *nd, int64_t dmin, int64_t dmax, int64_t base,
          int64_t lo, int64_t hi)
{
    if (lo < dmin)
        lo = dmin;
    if (hi > dmax)
        hi = dmax;
    if (lo > hi) {
        nd->test = EN_T_NEVER;
    } else if (lo == dmin && hi == dmax) {
        nd->test = EN_T_ALL;
    } else {
        nd->test = EN_T_RANGE;
        nd->lo = (uint64_t)lo - (uint64_t)base;
        nd->hi = (uint64_t)hi - (uint64_t)base;
    }
}

/* The integers v with v OP l as [lo, hi]; false if none. <> is = here
 * (the caller negates). */
static bool
int_interval(Fedq__V1__CompareOp op, int64_t l, int64_t *lo, int64_t *hi)
{
    *lo = INT64_MIN;
    *hi = INT64_MAX;
    switch (op) {
    case FEDQ__V1__COMPARE_OP__COMPARE_OP_LT:
        if (l == INT64_MIN)
            return false;
        *hi = l - 1;
        return true;
    case FEDQ__V1__COMPARE_OP__COMPARE_OP_LE:
        *hi = l;
        return true;
    case FEDQ__V1__COMPARE_OP__COMPARE_OP_GT:
        if (l == INT64_MAX)
            return false;
        *lo = l + 1;
        return true;
    case FEDQ__V1__COMPARE_OP__COMPARE_OP_GE:
        *lo = l;
        return true;
    default: /* = and <> */
        *lo = *hi = l;
        return true;
    }
}

/* First dictionary code whose entry is >= s (upper: > s). */
static int64_t
dict_bound(const struct ag_xcol *c, const char *s, bool upper)
{
    uint32_t lo = 0, hi = c->dict_size;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(ag_xcol_text(c, mid), s);
        if (cmp < 0 || (upper && cmp == 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The dictionary codes whose entries e satisfy e OP s, as [lo, hi]. */
static void
text_interval(const struct ag_xcol *c, Fedq__V1__CompareOp op, const char *s,
              int64_t *lo, int64_t *hi)
{
    int64_t lb = dict_bound(c, s, false), ub = dict_bound(c, s, true);
    *lo = 0;
    *hi = (int64_t)c->dict_size - 1;
    switch (op) {
    case FEDQ__V1__COMPARE_OP__COMPARE_OP_LT:
        *hi = lb - 1;
        break;
    case FEDQ__V1__COMPARE_OP__COMPARE_OP_LE:
        *hi = ub - 1;
        break;
    case FEDQ__V1__COMPARE_OP__COMPARE_OP_GT:
        *lo = ub;
        break;
    case FEDQ__V1__COMPARE_OP__COMPARE_OP_GE:
        *lo = lb;
        break;
    default: /* = and <>: [lb, ub - 1] is empty when s is absent */
        *lo = lb;
        *hi = ub - 1;
    }
}

/* The smallest double >= the literal (*ge) and the largest <= it (*le):
 * equal when the literal is a double, apart when an integer has no exact
 * double (beyond 2^53). */
static void
double_bounds(const Fedq__V1__Literal *l, double *ge, double *le)
{
    if (l->value_case != FEDQ__V1__LITERAL__VALUE_INT_VALUE) {
        *ge = *le = l->decimal_value;
        return;
    }
    double d = (double)l->int_value;
    /* d is an integer; 2^63 itself is above every int64. */
    int cmp = d >= 9223372036854775808.0  ? 1
              : (int64_t)d > l->int_value ? 1
              : (int64_t)d < l->int_value ? -1
                                          : 0;
    *ge = cmp >= 0 ? d : nextafter(d, INFINITY);
    *le = cmp <= 0 ? d : nextafter(d, -INFINITY);
}

static void
set_drange(struct en_node *nd, double lo, double hi)
{
    nd->test = lo <= hi ? EN_T_DRANGE : EN_T_NEVER;
    nd->dlo = lo;
    nd->dhi = hi;
}

static void
double_compare(struct en_node *nd, Fedq__V1__CompareOp op,
               const Fedq__V1__Literal *l)
{
    double ge, le;
    double_bounds(l, &ge, &le);
    bool exact = ge == le;
    switch (op) {
    case FEDQ__V1__COMPARE_OP__COMPARE_OP_LT:
        set_drange(nd, -INFINITY, exact ? nextafter(le, -INFINITY) : le);
        break;
    case FEDQ__V1__COMPARE_OP__COMPARE_OP_LE:
        set_drange(nd, -INFINITY, le);
        break;
    case FEDQ__V1__COMPARE_OP__COMPARE_OP_GT:
        set_drange(nd, exact ? nextafter(ge, INFINITY) : ge, INFINITY);
        break;
    case FEDQ__V1__COMPARE_OP__COMPARE_OP_GE:
        set_drange(nd, ge, INFINITY);
        break;
    default:
        set_drange(nd, ge, le);
    }
}

/* Whether literal l can be compared with column c at all. */
static bool
literal_fits(const struct ag_xcol *c, const Fedq__V1__Literal *l)
{
    switch (c->kind) {
    case AG_COL_INT:
        return l->value_case == FEDQ__V1__LITERAL__VALUE_INT_VALUE;
    case AG_COL_DICT:
        return l->value_case == FEDQ__V1__LITERAL__VALUE_TEXT_VALUE;
    default:
        return l->value_case == FEDQ__V1__LITERAL__VALUE_INT_VALUE ||
               l->value_case == FEDQ__V1__LITERAL__VALUE_DECIMAL_VALUE;
    }
}

/* A leaf "c OP l" (NaN literals are handled by the caller). */
static void
leaf_compare(struct en_node *nd, Fedq__V1__CompareOp op,
             const Fedq__V1__Literal *l)
{
    const struct ag_xcol *c = nd->col;
    int64_t lo, hi;

    nd->negate = op == FEDQ__V1__COMPARE_OP__COMPARE_OP_NE;
    if (c->kind == AG_COL_DOUBLE) {
        double_compare(nd, op, l);
    } else if (c->kind == AG_COL_DICT) {
        text_interval(c, op, l->text_value, &lo, &hi);
        set_range(nd, 0, (int64_t)c->dict_size - 1, 0, lo, hi);
    } else if (int_interval(op, l->int_value, &lo, &hi)) {
        set_range(nd, c->min, c->max, c->base, lo, hi);
    } else {
        nd->test = EN_T_NEVER;
    }
}

/* BETWEEN lo AND hi: lo <= v <= hi. */
static void
leaf_between(struct en_node *nd, const Fedq__V1__Literal *l,
             const Fedq__V1__Literal *h)
{
    const struct ag_xcol *c = nd->col;
    int64_t a, b, unused;

    if (c->kind == AG_COL_DOUBLE) {
        double lge, lle, hge, hle;
        double_bounds(l, &lge, &lle);
        double_bounds(h, &hge, &hle);
        set_drange(nd, lge, hle);
    } else if (c->kind == AG_COL_DICT) {
        text_interval(c, FEDQ__V1__COMPARE_OP__COMPARE_OP_GE, l->text_value, &a,
                      &unused);
        text_interval(c, FEDQ__V1__COMPARE_OP__COMPARE_OP_LE, h->text_value,
                      &unused, &b);
        set_range(nd, 0, (int64_t)c->dict_size - 1, 0, a, b);
    } else {
        set_range(nd, c->min, c->max, c->base, l->int_value, h->int_value);
    }
}

/* ---- IN ------------------------------------------------------------------ */

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The stored value literal l has in column c; false if no row can hold it. */
static bool
stored_of(const struct ag_xcol *c, const Fedq__V1__Literal *l, uint64_t *ret)
{
    if (c->kind == AG_COL_DICT) {
        int64_t lo, hi;
        text_interval(c, FEDQ__V1__COMPARE_OP__COMPARE_OP_EQ, l->text_value,
                      &lo, &hi);
        *ret = (uint64_t)lo;
        return lo <= hi;
    }
    if (l->int_value < c->min || l->int_value > c->max)
        return false;
    *ret = (uint64_t)l->int_value - (uint64_t)c->base;
    return true;
}

/* Values 0..dom-1 a stored value of c can take (dom 0: too many). */
static uint64_t
stored_domain(const struct ag_xcol *c)
{
    if (c->kind == AG_COL_DICT)
        return c->dict_size;
    if (c->min > c->max)
        return 0;
    uint64_t span = (uint64_t)c->max - (uint64_t)c->base;
    return span == UINT64_MAX ? 0 : span + 1;
}

/* IN on integers or codes: a byte table over a small domain, else a
 * sorted set. */
static int
leaf_in_stored(struct en_query *q, struct en_node *nd,
               Fedq__V1__Literal *const *lits, size_t n)
{
    uint64_t *vals = en_qalloc(q, (n + 1) * sizeof(*vals)), dom;
    size_t k = 0;

    if (!vals)
        return FQ_ENOMEM;
    for (size_t i = 0; i < n; i++)
        k += stored_of(nd->col, lits[i], &vals[k]);
    dom = stored_domain(nd->col);
    nd->test = k ? EN_T_SET : EN_T_NEVER;
    if (k && dom && dom <= LUT_MAX_DOMAIN) {
        uint8_t *lut = en_qalloc(q, dom + 1);
        if (!lut)
            return FQ_ENOMEM;
        for (size_t i = 0; i < k; i++)
            lut[vals[i]] = 0xFF;
        nd->test = EN_T_LUT;
        nd->lut = lut;
        nd->lut_max = dom; /* lut[dom] = 0 catches values beyond max */
        return 0;
    }
    qsort(vals, k, sizeof(*vals), cmp_u64);
    nd->set = vals;
    nd->n_set = k;
    return 0;
}

/* IN on doubles: the literals that have an exact double, as sorted
 * order keys. */
static int
leaf_in_double(struct en_query *q, struct en_node *nd,
               Fedq__V1__Literal *const *lits, size_t n)
{
    uint64_t *vals = en_qalloc(q, (n + 1) * sizeof(*vals));
    size_t k = 0;

    if (!vals)
        return FQ_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        double ge, le;
        double_bounds(lits[i], &ge, &le);
        if (ge == le)
            vals[k++] = en_double_order(ge);
    }
    qsort(vals, k, sizeof(*vals), cmp_u64);
    nd->test = k ? EN_T_DSET : EN_T_NEVER;
    nd->set = vals;
    nd->n_set = k;
    return 0;
}

/* ---- compiling the tree ------------------------------------------------ */

static int compile_node(struct en_query *q, const Fedq__V1__Predicate *p,
                        int depth, struct en_node **ret);

static struct en_node *
node_new(struct en_query *q, enum en_op op, size_t n_kids)
{
    struct en_node *nd = en_qalloc(q, sizeof(*nd));
    if (!nd)
        return NULL;
    nd->op = op;
    nd->n_kids = n_kids;
    if (n_kids && !(nd->kids = en_qalloc(q, n_kids * sizeof(*nd->kids))))
        return NULL;
    return nd;
}

/* A leaf on column name; *ret is set for the caller to fill in. */
static int
leaf_new(struct en_query *q, const char *name, struct en_node **ret)
{
    const struct ag_xcol *c = en_column(q, name);
    if (!c)
        return en_fail(q, FQ_EINVAL, "column '%s' is not in the extract", name);
    if (!(*ret = node_new(q, EN_LEAF, 0)))
        return FQ_ENOMEM;
    (*ret)->col = c;
    (*ret)->nullable = c->nulls != NULL;
    return 0;
}

/* A leaf that is UNKNOWN on every row: a comparison with a NaN literal,
 * which SQLite binds as NULL. */
static int
leaf_unknown(struct en_query *q, const char *name, struct en_node **ret)
{
    int rc = leaf_new(q, name, ret);
    if (rc == 0) {
        (*ret)->test = EN_T_NEVER;
        (*ret)->nullable = true;
        (*ret)->col = NULL; /* no row is TRUE or FALSE */
    }
    return rc;
}

static int
check_fits(struct en_query *q, const struct ag_xcol *c,
           Fedq__V1__Literal *const *lits, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!lits[i] || !literal_fits(c, lits[i]))
            return en_fail(q, FQ_EINVAL,
                           "a literal does not fit column '%s' in the extract",
                           c->name);
    }
    return 0;
}

static int
compile_compare(struct en_query *q, const Fedq__V1__Comparison *cmp,
                struct en_node **ret)
{
    int rc;
    if (cmp->value && is_nan_literal(cmp->value))
        return leaf_unknown(q, cmp->column, ret);
    if ((rc = leaf_new(q, cmp->column, ret)) < 0 ||
        (rc = check_fits(q, (*ret)->col, &cmp->value, 1)) < 0)
        return rc;
    leaf_compare(*ret, cmp->op, cmp->value);
    return 0;
}

/* BETWEEN with a NaN bound is the AND of its two comparisons. */
static int
compile_between(struct en_query *q, const Fedq__V1__Between *bt,
                struct en_node **ret)
{
    Fedq__V1__Literal *pair[2] = {bt->low, bt->high};
    int rc;

    if ((pair[0] && is_nan_literal(pair[0])) ||
        (pair[1] && is_nan_literal(pair[1]))) {
        Fedq__V1__Comparison ge = {.column = bt->column,
                                   .op = FEDQ__V1__COMPARE_OP__COMPARE_OP_GE,
                                   .value = bt->low};
        Fedq__V1__Comparison le = ge;
        le.op = FEDQ__V1__COMPARE_OP__COMPARE_OP_LE;
        le.value = bt->high;
        if (!(*ret = node_new(q, EN_AND, 2)))
            return FQ_ENOMEM;
        (*ret)->nullable = true;
        if ((rc = compile_compare(q, &ge, &(*ret)->kids[0])) < 0)
            return rc;
        return compile_compare(q, &le, &(*ret)->kids[1]);
    }
    if ((rc = leaf_new(q, bt->column, ret)) < 0 ||
        (rc = check_fits(q, (*ret)->col, pair, 2)) < 0)
        return rc;
    leaf_between(*ret, bt->low, bt->high);
    return 0;
}

/* x IN (a, NaN) is x = a OR NULL: TRUE or UNKNOWN, never FALSE. */
static int
compile_in(struct en_query *q, const Fedq__V1__InList *in, struct en_node **ret)
{
    struct en_node *leaf = NULL;
    bool nan = false;
    int rc;

    for (size_t i = 0; i < in->n_values; i++)
        nan |= in->values[i] && is_nan_literal(in->values[i]);
    if ((rc = leaf_new(q, in->column, &leaf)) < 0 ||
        (rc = check_fits(q, leaf->col, in->values, in->n_values)) < 0)
        return rc;
    rc = leaf->col->kind == AG_COL_DOUBLE
             ? leaf_in_double(q, leaf, in->values, in->n_values)
             : leaf_in_stored(q, leaf, in->values, in->n_values);
    if (rc < 0 || !nan) {
        *ret = leaf;
        return rc;
    }
    if (!(*ret = node_new(q, EN_OR, 2)))
        return FQ_ENOMEM;
    (*ret)->nullable = true;
    (*ret)->kids[0] = leaf;
    return leaf_unknown(q, in->column, &(*ret)->kids[1]);
}

static int
compile_is_null(struct en_query *q, const Fedq__V1__IsNull *isn,
                struct en_node **ret)
{
    int rc = leaf_new(q, isn->column, ret);
    if (rc == 0) {
        (*ret)->test = EN_T_ISNULL;
        (*ret)->negate = isn->negated;
        (*ret)->nullable = false;
    }
    return rc;
}

static int
compile_list(struct en_query *q, enum en_op op,
             Fedq__V1__Predicate *const *terms, size_t n, int depth,
             struct en_node **ret)
{
    struct en_node *nd = node_new(q, op, n);
    if (!nd)
        return FQ_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int rc = compile_node(q, terms[i], depth + 1, &nd->kids[i]);
        if (rc < 0)
            return rc;
        nd->nullable |= nd->kids[i]->nullable;
    }
    *ret = nd;
    return 0;
}

static int
compile_node(struct en_query *q, const Fedq__V1__Predicate *p, int depth,
             struct en_node **ret)
{
    int rc;

    if (depth + 1 > q->depth)
        q->depth = depth + 1;
    switch (p->node_case) {
    case FEDQ__V1__PREDICATE__NODE_ALL:
        return compile_list(q, EN_AND, p->all->terms, p->all->n_terms, depth,
                            ret);
    case FEDQ__V1__PREDICATE__NODE_ANY:
        return compile_list(q, EN_OR, p->any->terms, p->any->n_terms, depth,
                            ret);
    case FEDQ__V1__PREDICATE__NODE_NOT:
        if (!(*ret = node_new(q, EN_NOT, 1)))
            return FQ_ENOMEM;
        rc = compile_node(q, p->not_->term, depth + 1, &(*ret)->kids[0]);
        (*ret)->nullable = rc == 0 && (*ret)->kids[0]->nullable;
        return rc;
    case FEDQ__V1__PREDICATE__NODE_IS_NULL:
        return compile_is_null(q, p->is_null, ret);
    case FEDQ__V1__PREDICATE__NODE_COMPARE:
        return compile_compare(q, p->compare, ret);
    case FEDQ__V1__PREDICATE__NODE_BETWEEN:
        return compile_between(q, p->between, ret);
    case FEDQ__V1__PREDICATE__NODE_IN:
        return compile_in(q, p->in, ret);
    default:
        return en_fail(q, FQ_EINVAL, "empty or unknown filter node");
    }
}

int
en_filter_compile(struct en_query *q, const Fedq__V1__Predicate *p)
{
    q->depth = 0;
    if (!p)
        return 0;
    /* Deeper than the plan check allows only if the check was skipped. */
    int rc = compile_node(q, p, 0, &q->filter);
    if (rc == 0 && q->depth > FQ_PLAN_MAX_DEPTH + 4)
        return en_fail(q, FQ_ETOOBIG, "filter nested too deeply");
    return rc;
}

/* ---- evaluating --------------------------------------------------------- */

/* 8 bits of x as 8 bytes, bit j -> byte j = 0xFF or 0. */
static inline uint64_t
spread8(uint64_t x)
{
    uint64_t t = ((x & 0xFF) * 0x0101010101010101ULL) & 0x8040201008040201ULL;
    t = ((t + 0x7F7F7F7F7F7F7F7FULL) | t) & 0x8080808080808080ULL;
    return (t >> 7) * 0xFF;
}

/* out[i] = 0xFF where row b + i is NULL. out has 8 bytes of slack. */
static void
expand_nulls(const uint64_t *bits, uint64_t b, size_t n, uint8_t *out)
{
    size_t i = 0;
    while (i < n) {
        uint64_t r = b + i, w = bits[r >> 6] >> (r & 63);
        size_t k = 64 - (size_t)(r & 63);
        if (k > n - i)
            k = n - i;
        for (size_t j = 0; j < k; j += 8) {
            uint64_t s = spread8(w >> j);
            memcpy(out + i + j, &s, 8);
        }
        i += k;
    }
}

#define RANGE_LOOP(T)                                             \
    do {                                                          \
        const T *restrict p = (const T *)nd->col->data + b;       \
        T lo = (T)nd->lo, span = (T)(nd->hi - nd->lo);            \
        for (size_t i = 0; i < n; i++)                            \
            m[i] = (uint8_t) - (uint8_t)((T)(p[i] - lo) <= span); \
    } while (0)

#define LUT_LOOP(T)                                                \
    do {                                                           \
        const T *restrict p = (const T *)nd->col->data + b;        \
        const uint8_t *restrict lut = nd->lut;                     \
        uint64_t mx = nd->lut_max;                                 \
        for (size_t i = 0; i < n; i++)                             \
            m[i] = lut[(uint64_t)p[i] < mx ? (uint64_t)p[i] : mx]; \
    } while (0)

static void
match_range(const struct en_node *nd, uint64_t b, size_t n, uint8_t *restrict m)
{
    switch (nd->col->width) {
    case 1:
        RANGE_LOOP(uint8_t);
        break;
    case 2:
        RANGE_LOOP(uint16_t);
        break;
    case 4:
        RANGE_LOOP(uint32_t);
        break;
    default:
        RANGE_LOOP(uint64_t);
    }
}

static void
match_lut(const struct en_node *nd, uint64_t b, size_t n, uint8_t *restrict m)
{
    switch (nd->col->width) {
    case 1:
        LUT_LOOP(uint8_t);
        break;
    case 2:
        LUT_LOOP(uint16_t);
        break;
    case 4:
        LUT_LOOP(uint32_t);
        break;
    default:
        LUT_LOOP(uint64_t);
    }
}

static bool
in_set(const uint64_t *set, size_t n, uint64_t v)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && set[lo] == v;
}

static void
match_doubles(const struct en_node *nd, uint64_t b, size_t n,
              uint8_t *restrict m)
{
    const double *restrict p = (const double *)nd->col->data + b;
    const uint64_t *set = nd->set;
    size_t n_set = nd->n_set;
    double lo = nd->dlo, hi = nd->dhi;

    if (nd->test == EN_T_DSET) {
        for (size_t i = 0; i < n; i++)
            m[i] =
                (uint8_t) - (uint8_t)in_set(set, n_set, en_double_order(p[i]));
        return;
    }
    for (size_t i = 0; i < n; i++)
        m[i] = (uint8_t) - (uint8_t)((p[i] >= lo) & (p[i] <= hi));
}

/* The leaf's test on rows [b, b + n), NULL rows included (masked later). */
static void
leaf_match(const struct en_node *nd, uint64_t b, size_t n, uint8_t *m)
{
    switch (nd->test) {
    case EN_T_NEVER:
    case EN_T_ALL:
        memset(m, nd->test == EN_T_ALL ? 0xFF : 0, n);
        break;
    case EN_T_RANGE:
        match_range(nd, b, n, m);
        break;
    case EN_T_LUT:
        match_lut(nd, b, n, m);
        break;
    case EN_T_SET:
        for (size_t i = 0; i < n; i++)
            m[i] = (uint8_t) - (uint8_t)in_set(nd->set, nd->n_set,
                                               ag_xcol_stored(nd->col, b + i));
        break;
    case EN_T_DRANGE:
    case EN_T_DSET:
        match_doubles(nd, b, n, m);
        break;
    case EN_T_ISNULL:
        if (nd->col->nulls)
            expand_nulls(nd->col->nulls, b, n, m);
        else
            memset(m, 0, n);
        break;
    }
}

static void
eval_leaf(const struct en_node *nd, uint8_t *restrict nulls, uint64_t b,
          size_t n, uint8_t *restrict t, uint8_t *restrict f)
{
    if (!nd->col) { /* UNKNOWN everywhere */
        memset(t, 0, n);
        memset(f, 0, n);
        return;
    }
    leaf_match(nd, b, n, t);
    if (nd->negate) {
        for (size_t i = 0; i < n; i++)
            t[i] = (uint8_t)~t[i];
    }
    if (!nd->nullable)
        return;
    expand_nulls(nd->col->nulls, b, n, nulls);
    for (size_t i = 0; i < n; i++) {
        f[i] = (uint8_t)(~t[i] & ~nulls[i]);
        t[i] = (uint8_t)(t[i] & ~nulls[i]);
    }
}

static void
combine(enum en_op op, bool with_false, uint8_t *restrict t,
        uint8_t *restrict f, const uint8_t *restrict t2,
        const uint8_t *restrict f2, size_t n)
{
    if (op == EN_AND) {
        for (size_t i = 0; i < n; i++)
            t[i] &= t2[i];
        for (size_t i = 0; with_false && i < n; i++)
            f[i] |= f2[i];
    } else {
        for (size_t i = 0; i < n; i++)
            t[i] |= t2[i];
        for (size_t i = 0; with_false && i < n; i++)
            f[i] &= f2[i];
    }
}

/* Node nd on rows [b, b + n) into t (and f if nd->nullable); level picks
 * the scratch masks of its children. */
static void
eval(const struct en_node *nd, struct en_scratch *s, size_t level, uint64_t b,
     size_t n, uint8_t *t, uint8_t *f)
{
    uint8_t *t2 = s->masks + level * 2 * (EN_BLOCK + 64),
            *f2 = t2 + EN_BLOCK + 64;

    if (nd->op == EN_LEAF) {
        eval_leaf(nd, s->nn, b, n, t, f);
        return;
    }
    if (nd->op == EN_NOT) {
        const struct en_node *kid = nd->kids[0];
        eval(kid, s, level + 1, b, n, t2, f2);
        for (size_t i = 0; i < n; i++)
            t[i] = kid->nullable ? f2[i] : (uint8_t)~t2[i];
        if (nd->nullable)
            memcpy(f, t2, n);
        return;
    }
    for (size_t k = 0; k < nd->n_kids; k++) {
        const struct en_node *kid = nd->kids[k];
        uint8_t *kt = k ? t2 : t, *kf = k ? f2 : f;
        eval(kid, s, level + 1, b, n, kt, kf);
        for (size_t i = 0; nd->nullable && !kid->nullable && i < n; i++)
            kf[i] = (uint8_t)~kt[i];
        if (k)
            combine(nd->op, nd->nullable, t, f, t2, f2, n);
    }
}

/* 64 bytes of m (0 or 0xFF) as the bits of a word. */
static inline uint64_t
bits64(const uint8_t *m)
{
    uint64_t w = 0;
#if defined(__SSE2__)
    for (int i = 0; i < 4; i++)
        w |= (uint64_t)(uint16_t)_mm_movemask_epi8(
                 _mm_loadu_si128((const __m128i *)(m + 16 * i)))
             << (16 * i);
#else
    for (int i = 0; i < 64; i++)
        w |= (uint64_t)(m[i] & 1) << i;
#endif
    return w;
}

void
en_mask_bits(const uint8_t *m, size_t n, uint64_t *w)
{
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        w[i / 64] = bits64(m + i);
    if (i < n) {
        uint64_t last = 0;
        for (size_t j = 0; i + j < n; j++)
            last |= (uint64_t)(m[i + j] & 1) << j;
        w[i / 64] = last;
    }
}

/* The indexes of the 0xFF bytes of m[0..n), and m as bit words in w
 * (the last one padded with 0). */
static size_t
mask_select(const uint8_t *m, size_t n, uint32_t *idx, uint64_t *w)
{
    size_t k = 0, i = 0;
    for (; i + 64 <= n; i += 64) {
        uint64_t bits = bits64(m + i);
        w[i / 64] = bits;
        if (bits == UINT64_MAX) {
            for (uint32_t j = 0; j < 64; j++)
                idx[k + j] = (uint32_t)i + j;
            k += 64;
            continue;
        }
        while (bits) {
            idx[k++] = (uint32_t)(i + (size_t)__builtin_ctzll(bits));
            bits &= bits - 1;
        }
    }
    if (i < n)
        w[i / 64] = 0;
    for (; i < n; i++) {
        idx[k] = (uint32_t)i;
        w[i / 64] |= (uint64_t)(m[i] & 1) << (i % 64);
        k += m[i] & 1;
    }
    return k;
}

const uint8_t *
en_filter_mask(struct en_thread *t, uint64_t b, size_t n)
{
    if (!t->q->filter)
        return NULL;
    uint8_t *rt = t->s.masks, *rf = rt + EN_BLOCK + 64;
    eval(t->q->filter, &t->s, 1, b, n, rt, rf);
    return rt;
}

size_t
en_filter_select(struct en_thread *t, uint64_t b, size_t n,
                 const uint32_t **ret_idx)
{
    const uint8_t *m = en_filter_mask(t, b, n);

    if (!m) {
        memset(t->s.sel, 0xFF, (n + 63) / 64 * 8);
        if (n % 64)
            t->s.sel[n / 64] = ((uint64_t)1 << (n % 64)) - 1;
        *ret_idx = t->s.iota;
        return n;
    }
    *ret_idx = t->s.idx;
    return mask_select(m, n, t->s.idx, t->s.sel);
}
