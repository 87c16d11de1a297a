/*
 * The cell-key perturbation table and consistent random rounding (see
 * fq/ptable.h for the method and the rows).
 *
 * Build: validate the parameters, then per distinct support [lo, D] solve
 * the maximum-entropy pmf in double precision and round its cumulative sums
 * to thresholds out of 2^32. Everything after the build is integer-only, so
 * the published table (the thresholds) is the whole truth: the lookup, the
 * preimage and the reported mean and variance all read the thresholds, never
 * the doubles they came from.
 *
 * Storage: one array of nrows * (2D + 1) uint64 thresholds; row i's entry
 * for noise j sits at [i * width + j + D]. Entries below the row's support
 * are 0, so "the smallest j whose threshold exceeds u" never picks them and
 * the lookup needs no per-row bounds.
 */
#include "fq/compat.h"
#include "fq/ptable.h"
#include "fq/error.h"

#include <math.h>

#define TWO32 ((uint64_t)1 << 32)

/* Newton on the dual: stop when both moment residuals are below ME_TOL
 * (in units of D and D^2), far under the 2^-33 the rounding adds. */
#define ME_TOL       1e-13
#define ME_MAX_ITER  200
#define ME_ARMIJO    1e-4
#define ME_MIN_STEP  1e-30
#define ME_DET_FLOOR 1e-300

struct row_info {
    enum fq_ptable_row_kind kind;
    double mean;
    double variance;
};

struct fq_ptable {
    struct fq_ptable_params p; /* rows resolved */
    size_t nrows;
    size_t width; /* 2D + 1 */
    uint64_t *thr;
    struct row_info *info;
};

void
fq_ptable_params_default(struct fq_ptable_params *p)
{
    p->max_deviation = FQ_PTABLE_DEFAULT_MAX_DEVIATION;
    p->variance = FQ_PTABLE_DEFAULT_VARIANCE;
    p->threshold = FQ_PTABLE_DEFAULT_THRESHOLD;
    p->rows = 0;
}

/* ---- parameters -----------------------------------------------------------
 */

/* Fills *ret with rows resolved; each refusal names its parameter. */
static int
check_params(const struct fq_ptable_params *p, struct fq_ptable_params *ret,
             char *err, size_t errlen)
{
    int d = p->max_deviation;

    if (d < 1 || d > FQ_PTABLE_MAX_DEVIATION) {
        snprintf(err, errlen, "ptable: max_deviation must be 1..%d, not %d",
                 FQ_PTABLE_MAX_DEVIATION, d);
        return FQ_EINVAL;
    }
    /* Written so that NaN fails too. */
    if (!(p->variance >= FQ_PTABLE_MIN_VARIANCE &&
          p->variance <= (double)d * d)) {
        snprintf(err, errlen,
                 "ptable: variance must be from %g to max_deviation^2 = %d, "
                 "not %.12g",
                 FQ_PTABLE_MIN_VARIANCE, d * d, p->variance);
        return FQ_EINVAL;
    }
    if (p->threshold < 1 || p->threshold > FQ_PTABLE_MAX_THRESHOLD) {
        snprintf(err, errlen, "ptable: threshold must be 1..%d, not %" PRId64,
                 FQ_PTABLE_MAX_THRESHOLD, p->threshold);
        return FQ_EINVAL;
    }
    /* Fewer than D + 1 rows would leave the last row, used for every larger
     * true value, without the full support [-D, D]. */
    if (p->rows != 0 && (p->rows < d + 1 || p->rows > FQ_PTABLE_MAX_ROWS)) {
        snprintf(err, errlen,
                 "ptable: rows must be 0 or max_deviation + 1 = %d..%d, "
                 "not %d",
                 d + 1, FQ_PTABLE_MAX_ROWS, p->rows);
        return FQ_EINVAL;
    }
    *ret = *p;
    if (ret->rows == 0)
        ret->rows = d + 1;
    return 0;
}

/* ---- the maximum-entropy solve --------------------------------------------
 */

/*
 * p_j proportional to exp(a*x + b*x^2) with x = j / D, so a and b stay of
 * order one whatever D is. The dual F(a, b) = log Z - b * target is convex;
 * its gradient is (E[x], E[x^2] - target) and its Hessian the covariance
 * of (x, x^2), so its minimum is the distribution we want.
 */
struct me_problem {
    int lo, hi;
    double scale;
    double target; /* V / D^2 */
    double *p;     /* hi - lo + 1 probabilities of the last evaluation */
};

struct me_eval {
    double f;
    double g[2];
    double h[3]; /* h00, h01, h11 */
};

static double
me_x(const struct me_problem *m, int idx)
{
    return (m->lo + idx) / m->scale;
}

/* Fills m->p; the max is subtracted before exp so nothing overflows. */
static double
me_pmf(const struct me_problem *m, double a, double b)
{
    int n = m->hi - m->lo + 1;
    double top = -INFINITY, z = 0;

    for (int i = 0; i < n; i++) {
        double x = me_x(m, i);
        m->p[i] = a * x + b * x * x;
        if (m->p[i] > top)
            top = m->p[i];
    }
    for (int i = 0; i < n; i++) {
        m->p[i] = exp(m->p[i] - top);
        z += m->p[i];
    }
    for (int i = 0; i < n; i++)
        m->p[i] /= z;
    return top + log(z);
}

/* Central moments in a second pass: the Hessian is nearly singular near
 * the variance cap, where raw moments would cancel. */
static void
me_evaluate(const struct me_problem *m, double a, double b, struct me_eval *ret)
{
    int n = m->hi - m->lo + 1;
    double log_z = me_pmf(m, a, b), e1 = 0, e2 = 0;

    for (int i = 0; i < n; i++) {
        double x = me_x(m, i);
        e1 += m->p[i] * x;
        e2 += m->p[i] * x * x;
    }
    memset(ret->h, 0, sizeof(ret->h));
    for (int i = 0; i < n; i++) {
        double x = me_x(m, i), c1 = x - e1, c2 = x * x - e2;
        ret->h[0] += m->p[i] * c1 * c1;
        ret->h[1] += m->p[i] * c1 * c2;
        ret->h[2] += m->p[i] * c2 * c2;
    }
    ret->f = log_z - b * m->target;
    ret->g[0] = e1;
    ret->g[1] = e2 - m->target;
}

/* The Newton direction, or steepest descent where the Hessian is singular
 * or the direction would not descend. */
static void
me_direction(const struct me_eval *e, double d[2])
{
    double det = e->h[0] * e->h[2] - e->h[1] * e->h[1];

    if (det > ME_DET_FLOOR) {
        d[0] = -(e->h[2] * e->g[0] - e->h[1] * e->g[1]) / det;
        d[1] = -(e->h[0] * e->g[1] - e->h[1] * e->g[0]) / det;
        if (d[0] * e->g[0] + d[1] * e->g[1] < 0)
            return;
    }
    d[0] = -e->g[0];
    d[1] = -e->g[1];
}

static double
me_gnorm(const struct me_eval *e)
{
    return fabs(e->g[0]) + fabs(e->g[1]);
}

/*
 * Backtracking line search from (*a, *b) along d. A step is taken when F
 * falls enough (Armijo) or, close to the optimum where F's change drowns in
 * rounding, when the gradient shrinks. Leaves m->p and *e at the new point.
 */
static int
me_step(struct me_problem *m, double *a, double *b, struct me_eval *e)
{
    double d[2], slope, step = 1;
    struct me_eval n;

    me_direction(e, d);
    slope = d[0] * e->g[0] + d[1] * e->g[1];
    for (; step >= ME_MIN_STEP; step /= 2) {
        me_evaluate(m, *a + step * d[0], *b + step * d[1], &n);
        if (n.f <= e->f + ME_ARMIJO * step * slope ||
            me_gnorm(&n) < me_gnorm(e))
            break;
    }
    if (step < ME_MIN_STEP)
        return FQ_EINTERNAL;
    *a += step * d[0];
    *b += step * d[1];
    *e = n;
    return 0;
}

/* Leaves the solution in m->p. */
static int
me_solve(struct me_problem *m)
{
    double a = 0, b = 0;
    struct me_eval e;

    me_evaluate(m, a, b, &e);
    for (int it = 0; it < ME_MAX_ITER; it++) {
        if (fabs(e.g[0]) < ME_TOL && fabs(e.g[1]) < ME_TOL)
            return 0;
        if (me_step(m, &a, &b, &e) != 0)
            break;
    }
    return fabs(e.g[0]) < ME_TOL && fabs(e.g[1]) < ME_TOL ? 0 : FQ_EINTERNAL;
}

/* ---- rows ------------------------------------------------------------------
 */

/*
 * The pmf on [lo, hi] into p[0 .. hi - lo], and the row's kind. Mean 0 on
 * [lo, hi] caps the variance at -lo * hi, reached only by the two-point
 * distribution on {lo, hi}, which is then also the only (so the maximum
 * entropy) distribution with that variance.
 */
static int
row_pmf(int lo, int hi, double v, double *p, enum fq_ptable_row_kind *ret_kind)
{
    int n = hi - lo + 1;
    double cap = -(double)lo * hi;

    memset(p, 0, (size_t)n * sizeof(*p));
    if (lo == 0) {
        p[0] = 1;
        *ret_kind = FQ_PTABLE_ROW_NO_NOISE;
        return 0;
    }
    if (v >= cap) {
        p[0] = (double)hi / (hi - lo);
        p[n - 1] = (double)-lo / (hi - lo);
        *ret_kind = v > cap ? FQ_PTABLE_ROW_CAPPED : FQ_PTABLE_ROW_TARGET;
        return 0;
    }
    struct me_problem m = {lo, hi, hi, v / ((double)hi * hi), p};
    *ret_kind = FQ_PTABLE_ROW_TARGET;
    return me_solve(&m);
}

/* Cumulative sums times 2^32, rounded; the last forced to exactly 2^32 so
 * every u in [0, 2^32) finds a noise. Rounding is monotone, so the
 * thresholds never decrease. */
static void
row_thresholds(const double *p, int n, uint64_t *thr)
{
    double cum = 0;

    for (int i = 0; i < n; i++) {
        cum += p[i];
        double x = floor(cum * (double)TWO32 + 0.5);
        thr[i] = x >= (double)TWO32 ? TWO32 : (uint64_t)x;
    }
    thr[n - 1] = TWO32;
}

static uint64_t
thr_weight(const uint64_t *thr, size_t idx)
{
    return thr[idx] - (idx > 0 ? thr[idx - 1] : 0);
}

/* Exact integer sums over the stored weights, divided once at the end. */
static void
row_moments(const uint64_t *row, int d, struct row_info *info)
{
    int64_t s1 = 0;
    uint64_t s2 = 0;

    for (int j = -d; j <= d; j++) {
        uint64_t w = thr_weight(row, (size_t)(j + d));
        s1 += (int64_t)w * j;
        s2 += w * (uint64_t)(j * j);
    }
    info->mean = (double)s1 / (double)TWO32;
    info->variance = (double)s2 / (double)TWO32 - info->mean * info->mean;
}

static int
build_row(struct fq_ptable *pt, size_t i, double *scratch, char *err,
          size_t errlen)
{
    int d = pt->p.max_deviation;
    int lo = (int)i < d ? -(int)i : -d;
    uint64_t *row = pt->thr + i * pt->width;

    int rc = row_pmf(lo, d, pt->p.variance, scratch, &pt->info[i].kind);
    if (rc != 0) {
        snprintf(err, errlen,
                 "ptable: no distribution with variance %g found for true "
                 "value %" PRId64 " (max_deviation %d)",
                 pt->p.variance, pt->p.threshold + (int64_t)i, d);
        return rc;
    }
    /* Entries below the support stay 0 (calloc). */
    row_thresholds(scratch, d - lo + 1, row + (lo + d));
    row_moments(row, d, &pt->info[i]);
    return 0;
}

int
fq_ptable_build(const struct fq_ptable_params *p, struct fq_ptable **ret,
                char *err, size_t errlen)
{
    struct fq_ptable_params q;
    struct fq_ptable *pt = NULL;
    double *scratch = NULL;
    int rc = check_params(p, &q, err, errlen);

    if (rc != 0)
        return rc;
    rc = FQ_ENOMEM;
    pt = calloc(1, sizeof(*pt));
    if (!pt)
        goto out;
    pt->p = q;
    pt->nrows = (size_t)q.rows;
    pt->width = 2 * (size_t)q.max_deviation + 1;
    pt->thr = calloc(pt->nrows * pt->width, sizeof(*pt->thr));
    pt->info = calloc(pt->nrows, sizeof(*pt->info));
    scratch = calloc(pt->width, sizeof(*scratch));
    if (!pt->thr || !pt->info || !scratch)
        goto out;
    /* Rows D and up share the full support, hence the same distribution:
     * solve once and copy, which also makes them bit-identical. */
    for (size_t i = 0; i <= (size_t)q.max_deviation; i++) {
        rc = build_row(pt, i, scratch, err, errlen);
        if (rc != 0)
            goto out;
    }
    for (size_t i = (size_t)q.max_deviation + 1; i < pt->nrows; i++) {
        memcpy(pt->thr + i * pt->width, pt->thr + (i - 1) * pt->width,
               pt->width * sizeof(*pt->thr));
        pt->info[i] = pt->info[i - 1];
    }
    *ret = pt;
    pt = NULL;
    rc = 0;
out:
    if (rc == FQ_ENOMEM)
        snprintf(err, errlen, "ptable: out of memory");
    free(scratch);
    fq_ptable_free(pt);
    return rc;
}

void
fq_ptable_free(struct fq_ptable *pt)
{
    if (!pt)
        return;
    free(pt->thr);
    free(pt->info);
    free(pt);
}

const struct fq_ptable_params *
fq_ptable_params(const struct fq_ptable *pt)
{
    return &pt->p;
}

/* ---- lookup ----------------------------------------------------------------
 */

/* t >= k: rows repeat from the last one on. */
static size_t
row_index(const struct fq_ptable *pt, int64_t t)
{
    int64_t i = t - pt->p.threshold;
    return i >= (int64_t)pt->nrows - 1 ? pt->nrows - 1 : (size_t)i;
}

static const uint64_t *
row_at(const struct fq_ptable *pt, int64_t t)
{
    return pt->thr + row_index(pt, t) * pt->width;
}

int
fq_ptable_noise(const struct fq_ptable *pt, int64_t t, uint32_t u,
                int *ret_noise)
{
    if (t == 0) {
        *ret_noise = 0;
        return 0;
    }
    if (t < pt->p.threshold)
        return FQ_EINVAL;
    const uint64_t *row = row_at(pt, t);
    /* The last threshold is 2^32 > u, so the loop always returns. */
    for (size_t idx = 0; idx < pt->width; idx++) {
        if (row[idx] > u) {
            *ret_noise = (int)idx - pt->p.max_deviation;
            return 0;
        }
    }
    return FQ_EINTERNAL;
}

int
fq_ptable_perturb(const struct fq_ptable *pt, int64_t t, uint32_t u,
                  int64_t *ret_value)
{
    int noise;

    if (t > INT64_MAX - pt->p.max_deviation)
        return FQ_ETOOBIG;
    int rc = fq_ptable_noise(pt, t, u, &noise);
    if (rc != 0)
        return rc;
    *ret_value = t + noise;
    return 0;
}

int
fq_ptable_preimage(const struct fq_ptable *pt, int64_t w, int64_t *ret_lo,
                   int64_t *ret_hi)
{
    int d = pt->p.max_deviation;
    int64_t lo = 0, hi = 0;
    bool found = false;

    if (w == 0) {
        *ret_lo = *ret_hi = 0;
        return 0;
    }
    if (w < pt->p.threshold)
        return FQ_EINVAL;
    /* t = w - j runs upwards, so the first hit is lo and the last hi. */
    for (int j = d; j >= -d; j--) {
        if (j < 0 && w > INT64_MAX + j)
            continue;
        int64_t t = w - j;
        if (t < pt->p.threshold ||
            thr_weight(row_at(pt, t), (size_t)(j + d)) == 0)
            continue;
        if (!found)
            lo = t;
        hi = t;
        found = true;
    }
    if (!found)
        return FQ_ENOENT;
    *ret_lo = lo;
    *ret_hi = hi;
    return 0;
}

/* ---- rows for callers ------------------------------------------------------
 */

size_t
fq_ptable_nrows(const struct fq_ptable *pt)
{
    return pt->nrows;
}

int
fq_ptable_row(const struct fq_ptable *pt, size_t i,
              struct fq_ptable_row *ret_row)
{
    int d = pt->p.max_deviation;

    if (i >= pt->nrows)
        return FQ_EINVAL;
    ret_row->t = pt->p.threshold + (int64_t)i;
    ret_row->last = i == pt->nrows - 1;
    ret_row->kind = pt->info[i].kind;
    ret_row->lo = (int)i < d ? -(int)i : -d;
    ret_row->hi = d;
    ret_row->threshold = pt->thr + i * pt->width + (ret_row->lo + d);
    ret_row->mean = pt->info[i].mean;
    ret_row->variance = pt->info[i].variance;
    return 0;
}

uint64_t
fq_ptable_row_weight(const struct fq_ptable_row *row, int j)
{
    if (j < row->lo || j > row->hi)
        return 0;
    return thr_weight(row->threshold, (size_t)(j - row->lo));
}

double
fq_ptable_row_prob(const struct fq_ptable_row *row, int j)
{
    return (double)fq_ptable_row_weight(row, j) / (double)TWO32;
}

const char *
fq_ptable_row_kind_name(enum fq_ptable_row_kind kind)
{
    switch (kind) {
    case FQ_PTABLE_ROW_NO_NOISE:
        return "no noise";
    case FQ_PTABLE_ROW_TARGET:
        return "target";
    case FQ_PTABLE_ROW_CAPPED:
        return "capped";
    }
    return "?";
}

/* ---- text ------------------------------------------------------------------
 */

static int
format_header(const struct fq_ptable *pt, struct fq_buf *out)
{
    const struct fq_ptable_params *p = &pt->p;
    int rc = fq_buf_printf(
        out,
        "# fedq cell-key perturbation table\n"
        "# max_deviation %d, variance %g, threshold %" PRId64 ", rows %d\n",
        p->max_deviation, p->variance, p->threshold, p->rows);
    if (rc == 0 && p->threshold > 1)
        rc = fq_buf_printf(out,
                           "# 0 is published as 0; 1..%" PRId64
                           " are suppressed, never perturbed\n",
                           p->threshold - 1);
    for (size_t i = 0; rc == 0 && i < pt->nrows; i++) {
        struct fq_ptable_row r;
        fq_ptable_row(pt, i, &r);
        rc = fq_buf_printf(out,
                           "# t=%" PRId64 "%s: %s, support [%d, %d], "
                           "mean %.9f, variance %.9f\n",
                           r.t, r.last ? "+" : "",
                           fq_ptable_row_kind_name(r.kind), r.lo, r.hi, r.mean,
                           r.variance);
    }
    if (rc == 0)
        rc = fq_buf_printf(out, "# %-8s %5s %12s %11s\n", "t", "noise",
                           "probability", "threshold");
    return rc;
}

static int
format_row(const struct fq_ptable_row *r, struct fq_buf *out)
{
    char label[32];
    int rc = 0;

    snprintf(label, sizeof(label), "%" PRId64 "%s", r->t, r->last ? "+" : "");
    for (int j = r->lo; rc == 0 && j <= r->hi; j++) {
        if (fq_ptable_row_weight(r, j) == 0)
            continue;
        rc = fq_buf_printf(out, "  %-8s %5d %12.6f %11" PRIu64 "\n", label, j,
                           fq_ptable_row_prob(r, j), r->threshold[j - r->lo]);
    }
    return rc;
}

int
fq_ptable_format(const struct fq_ptable *pt, struct fq_buf *out)
{
    int rc = format_header(pt, out);

    for (size_t i = 0; rc == 0 && i < pt->nrows; i++) {
        struct fq_ptable_row r;
        fq_ptable_row(pt, i, &r);
        rc = format_row(&r, out);
    }
    return rc;
}

int
fq_ptable_format_str(const struct fq_ptable *pt, char *dst, size_t size)
{
    struct fq_buf b;
    int rc;

    if (size == 0)
        return FQ_ETOOBIG;
    /* A cap of size lets the text reach size bytes, one more than fits
     * with its NUL, so an overlong text shows as len >= size. */
    fq_buf_init(&b, size);
    rc = fq_ptable_format(pt, &b);
    if (rc == 0 && fq_buf_len(&b) >= size)
        rc = FQ_ETOOBIG;
    if (rc == 0)
        memcpy(dst, fq_buf_str(&b), fq_buf_len(&b) + 1);
    fq_buf_release(&b);
    return rc;
}

/* ---- rounding ---------------------------------------------------------------
 */

int64_t
fq_round_random(int64_t v, uint32_t b, uint32_t u, int64_t k)
{
    int64_t base = b;

    if (b <= 1 || v <= 0)
        return v;
    int64_t r = v % base;
    if (r == 0)
        return v;
    int64_t down = v - r;
    if (down > INT64_MAX - base)
        return down;
    int64_t up = down + base;
    if (v >= k && down < k)
        return up;
    /* u < r * 2^32 / b, without division: P(up) = r / b to within 2^-32. */
    return (uint64_t)u * b < ((uint64_t)r << 32) ? up : down;
}
