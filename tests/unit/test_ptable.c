/*
 * Unit tests for the cell-key perturbation table and consistent random
 * rounding (common/src/ptable.c): the rows' thresholds and supports, the
 * truncation at k checked at every threshold boundary, the moments
 * recomputed here from the thresholds, determinism, a chi-squared fit of
 * 10^6 lookups per row against the stored pmf, the preimage against brute
 * force, the rounding rules, and refusal of unusable parameters.
 *
 * Random draws come from splitmix64 with a printed seed; set FQ_TEST_SEED
 * to replay a run.
 */
#include "fq/compat.h"
#include "fq/ptable.h"
#include "fq/error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#define TWO32 ((uint64_t)1 << 32)

/* ---- helpers ------------------------------------------------------------ */

/* A spread of tables: the default, truncated rows that reach V, capped rows
 * (V above what a truncated support allows), a two-point full row (D = 1,
 * V = 1: noise 0 impossible), k = 1, extra rows, and tails rounded to 0. */
static const struct fq_ptable_params param_sets[] = {
    {2, 1.0, 11, 0}, {3, 2.0, 5, 6},  {2, 4.0, 11, 0},   {1, 1.0, 1, 0},
    {1, 0.5, 7, 4},  {5, 3.0, 1, 0},  {10, 50.0, 11, 0}, {10, 1.0, 11, 14},
    {2, 1e-6, 3, 0}, {4, 15.5, 20, 9}};

static uint64_t seed_state;

static uint64_t
splitmix64(void)
{
    uint64_t z = (seed_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint32_t
draw_u(void)
{
    return (uint32_t)(splitmix64() >> 32);
}

static void
seed_from_env(const char *test)
{
    const char *s = getenv("FQ_TEST_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 0) : 0x5eed0f7ab1eULL;

    seed_state = seed;
    print_message("%s: seed 0x%" PRIx64 " (FQ_TEST_SEED to replay)\n", test,
                  seed);
}

static struct fq_ptable *
build(const struct fq_ptable_params *p)
{
    struct fq_ptable *pt = NULL;
    char err[256] = "";
    int rc = fq_ptable_build(p, &pt, err, sizeof(err));

    if (rc != 0)
        fail_msg("build D=%d V=%g k=%" PRId64 " R=%d: %s", p->max_deviation,
                 p->variance, p->threshold, p->rows, err);
    assert_non_null(pt);
    return pt;
}

static struct fq_ptable *
build_default(void)
{
    struct fq_ptable_params p;

    fq_ptable_params_default(&p);
    return build(&p);
}

static int64_t
max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static int
noise_of(const struct fq_ptable *pt, int64_t t, uint32_t u)
{
    int noise = INT_MIN;

    assert_int_equal(fq_ptable_noise(pt, t, u, &noise), 0);
    return noise;
}

/* Mean and variance straight from a row's thresholds, in long double. */
static void
moments_from_thresholds(const struct fq_ptable_row *r, long double *ret_mean,
                        long double *ret_var)
{
    long double m1 = 0, m2 = 0, prev = 0;

    for (int j = r->lo; j <= r->hi; j++) {
        long double c = (long double)r->threshold[j - r->lo];
        long double p = (c - prev) / (long double)TWO32;
        m1 += p * j;
        m2 += p * j * j;
        prev = c;
    }
    *ret_mean = m1;
    *ret_var = m2 - m1 * m1;
}

/* ---- rows: thresholds, supports, truncation ------------------------------ */

static void
check_row_shape(const struct fq_ptable *pt, const struct fq_ptable_row *r)
{
    const struct fq_ptable_params *p = fq_ptable_params(pt);
    int d = p->max_deviation;
    uint64_t sum = 0;

    assert_int_equal(r->lo, max64(-d, p->threshold - r->t));
    assert_int_equal(r->hi, d);
    assert_int_equal(r->threshold[r->hi - r->lo], TWO32);
    for (int j = r->lo + 1; j <= r->hi; j++)
        assert_true(r->threshold[j - r->lo] >= r->threshold[j - r->lo - 1]);
    for (int j = -d - 3; j <= d + 3; j++) {
        uint64_t w = fq_ptable_row_weight(r, j);
        if (j < r->lo || j > r->hi)
            assert_int_equal(w, 0);
        assert_true(fq_ptable_row_prob(r, j) == (double)w / (double)TWO32);
        sum += w;
    }
    assert_int_equal(sum, TWO32);
}

static void
check_lookup_at(const struct fq_ptable *pt, int64_t t, uint32_t u)
{
    const struct fq_ptable_params *p = fq_ptable_params(pt);
    int noise = noise_of(pt, t, u);
    int64_t value = INT64_MIN;

    assert_true(noise >= max64(-p->max_deviation, p->threshold - t));
    assert_true(noise <= p->max_deviation);
    assert_true(t + noise >= p->threshold);
    assert_int_equal(fq_ptable_perturb(pt, t, u, &value), 0);
    assert_int_equal(value, t + noise);
}

/*
 * Every u at which the noise can change: each threshold T below 2^32 and
 * T - 1, plus 0 and UINT32_MAX. The noise at u must be the smallest j with
 * threshold > u, recomputed here.
 */
static void
check_lookup_boundaries(const struct fq_ptable *pt, int64_t t,
                        const struct fq_ptable_row *r)
{
    check_lookup_at(pt, t, 0);
    check_lookup_at(pt, t, UINT32_MAX);
    for (int j = r->lo; j <= r->hi; j++) {
        uint64_t c = r->threshold[j - r->lo];
        for (uint64_t u = c > 0 ? c - 1 : 0; u <= c && u < TWO32; u++) {
            int want = r->lo;
            while (r->threshold[want - r->lo] <= u)
                want++;
            check_lookup_at(pt, t, (uint32_t)u);
            assert_int_equal(noise_of(pt, t, (uint32_t)u), want);
        }
    }
}

static void
test_rows_support_and_truncation(void **state)
{
    (void)state;
    for (size_t s = 0; s < FQ_ARRAY_LEN(param_sets); s++) {
        struct fq_ptable *pt = build(&param_sets[s]);
        const struct fq_ptable_params *p = fq_ptable_params(pt);
        size_t n = fq_ptable_nrows(pt);
        struct fq_ptable_row r;

        assert_int_equal(n, param_sets[s].rows ? param_sets[s].rows
                                               : p->max_deviation + 1);
        assert_int_equal(fq_ptable_row(pt, n, &r), FQ_EINVAL);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(fq_ptable_row(pt, i, &r), 0);
            assert_int_equal(r.t, p->threshold + (int64_t)i);
            assert_int_equal(r.last, i == n - 1);
            check_row_shape(pt, &r);
        }
        /* Past the last row the table repeats it: the lookup there must
         * agree with the last row at its boundaries. */
        for (int64_t t = p->threshold; t < p->threshold + (int64_t)n + 5; t++) {
            size_t i = (size_t)(t - p->threshold);
            assert_int_equal(fq_ptable_row(pt, i < n ? i : n - 1, &r), 0);
            check_lookup_boundaries(pt, t, &r);
        }
        fq_ptable_free(pt);
    }
}

static void
test_zero_and_suppressed(void **state)
{
    static const uint32_t us[] = {0, 1, 0x80000000u, UINT32_MAX};
    int noise = 12345;
    int64_t value = 12345;

    (void)state;
    struct fq_ptable *pt = build_default();
    for (size_t i = 0; i < FQ_ARRAY_LEN(us); i++) {
        assert_int_equal(noise_of(pt, 0, us[i]), 0);
        assert_int_equal(fq_ptable_perturb(pt, 0, us[i], &value), 0);
        assert_int_equal(value, 0);
        /* Suppressed values are refused, outputs untouched. */
        for (int64_t t = 1; t < FQ_PTABLE_DEFAULT_THRESHOLD; t++) {
            value = 12345;
            assert_int_equal(fq_ptable_noise(pt, t, us[i], &noise), FQ_EINVAL);
            assert_int_equal(fq_ptable_perturb(pt, t, us[i], &value),
                             FQ_EINVAL);
            assert_int_equal(noise, 12345);
            assert_int_equal(value, 12345);
        }
        assert_int_equal(fq_ptable_noise(pt, -1, us[i], &noise), FQ_EINVAL);
        assert_int_equal(fq_ptable_noise(pt, INT64_MIN, us[i], &noise),
                         FQ_EINVAL);
    }
    /* The largest true values: lookup works, perturb refuses overflow. */
    assert_true(noise_of(pt, INT64_MAX, UINT32_MAX) <= 2);
    assert_int_equal(fq_ptable_perturb(pt, INT64_MAX, 0, &value), FQ_ETOOBIG);
    assert_int_equal(fq_ptable_perturb(pt, INT64_MAX - 2, UINT32_MAX, &value),
                     0);
    assert_int_equal(value, INT64_MAX);
    fq_ptable_free(pt);
}

/* ---- moments --------------------------------------------------------------
 */

static void
check_row_moments(const struct fq_ptable_params *p,
                  const struct fq_ptable_row *r)
{
    long double mean, var;
    double cap = -(double)r->lo * r->hi;

    moments_from_thresholds(r, &mean, &var);
    /* The module's own figures must match these. */
    assert_true(fabsl(mean - r->mean) < 1e-12);
    assert_true(fabsl(var - r->variance) < 1e-12);
    assert_true(fabsl(mean) < 1e-6);
    switch (r->kind) {
    case FQ_PTABLE_ROW_NO_NOISE:
        assert_int_equal(r->lo, 0);
        assert_int_equal(fq_ptable_row_weight(r, 0), TWO32);
        break;
    case FQ_PTABLE_ROW_TARGET:
        assert_true(p->variance <= cap);
        assert_true(fabsl(var - p->variance) < 1e-6);
        break;
    case FQ_PTABLE_ROW_CAPPED:
        /* The largest variance mean 0 allows: all mass on lo and hi. */
        assert_true(p->variance > cap);
        assert_true(fabsl(var - cap) < 1e-6);
        assert_int_equal(fq_ptable_row_weight(r, r->lo) +
                             fq_ptable_row_weight(r, r->hi),
                         TWO32);
        break;
    default:
        fail_msg("row t=%" PRId64 " has kind %d", r->t, (int)r->kind);
    }
}

static void
test_moments(void **state)
{
    (void)state;
    for (size_t s = 0; s < FQ_ARRAY_LEN(param_sets); s++) {
        struct fq_ptable *pt = build(&param_sets[s]);
        const struct fq_ptable_params *p = fq_ptable_params(pt);
        int full = 0;

        for (size_t i = 0; i < fq_ptable_nrows(pt); i++) {
            struct fq_ptable_row r;
            assert_int_equal(fq_ptable_row(pt, i, &r), 0);
            check_row_moments(p, &r);
            if (r.lo == -p->max_deviation) {
                /* Full support always reaches V, since V <= D^2. */
                assert_int_equal(r.kind, FQ_PTABLE_ROW_TARGET);
                full++;
            }
            /* Row kinds follow the header's rule. */
            if (i == 0)
                assert_int_equal(r.kind, FQ_PTABLE_ROW_NO_NOISE);
            else if (p->variance > -(double)r.lo * r.hi)
                assert_int_equal(r.kind, FQ_PTABLE_ROW_CAPPED);
            else
                assert_int_equal(r.kind, FQ_PTABLE_ROW_TARGET);
        }
        assert_true(full >= 1);
        fq_ptable_free(pt);
    }
}

/*
 * Maximum entropy with two moment constraints makes log p_j quadratic in j,
 * so its second differences are one constant (2b). Checked where the
 * probabilities are large enough for rounding not to matter.
 */
static void
test_max_entropy_shape(void **state)
{
    (void)state;
    for (size_t s = 0; s < FQ_ARRAY_LEN(param_sets); s++) {
        struct fq_ptable *pt = build(&param_sets[s]);
        for (size_t i = 0; i < fq_ptable_nrows(pt); i++) {
            struct fq_ptable_row r;
            double second = NAN;
            assert_int_equal(fq_ptable_row(pt, i, &r), 0);
            if (r.kind != FQ_PTABLE_ROW_TARGET)
                continue;
            for (int j = r.lo + 1; j < r.hi; j++) {
                double pm = fq_ptable_row_prob(&r, j - 1);
                double p0 = fq_ptable_row_prob(&r, j);
                double pp = fq_ptable_row_prob(&r, j + 1);
                if (pm < 1e-3 || p0 < 1e-3 || pp < 1e-3)
                    continue;
                double d2 = log(pp) - 2 * log(p0) + log(pm);
                if (isnan(second))
                    second = d2;
                assert_true(fabs(d2 - second) < 1e-5);
            }
        }
        fq_ptable_free(pt);
    }
}

/* ---- the published default table ------------------------------------------
 */

static void
test_default_table(void **state)
{
    static const uint64_t row12[] = {1709674916, 3023101112, 3857158564, TWO32};
    static const uint64_t row13[] = {274135465, 1325077254, 2969890042,
                                     4020831831, TWO32};
    struct fq_ptable_row r;

    (void)state;
    struct fq_ptable *pt = build_default();
    const struct fq_ptable_params *p = fq_ptable_params(pt);
    assert_int_equal(p->max_deviation, 2);
    assert_true(p->variance == 1.0);
    assert_int_equal(p->threshold, 11);
    assert_int_equal(p->rows, 3);
    assert_int_equal(fq_ptable_nrows(pt), 3);

    assert_int_equal(fq_ptable_row(pt, 0, &r), 0);
    assert_int_equal(r.kind, FQ_PTABLE_ROW_NO_NOISE);
    assert_int_equal(fq_ptable_row(pt, 1, &r), 0);
    assert_int_equal(r.kind, FQ_PTABLE_ROW_TARGET);
    assert_int_equal(r.lo, -1);
    assert_memory_equal(r.threshold, row12, sizeof(row12));
    assert_int_equal(fq_ptable_row(pt, 2, &r), 0);
    assert_int_equal(r.kind, FQ_PTABLE_ROW_TARGET);
    assert_int_equal(r.lo, -2);
    assert_memory_equal(r.threshold, row13, sizeof(row13));
    /* Symmetric support and target: the stored pmf is symmetric too. */
    for (int j = 1; j <= 2; j++)
        assert_int_equal(fq_ptable_row_weight(&r, j),
                         fq_ptable_row_weight(&r, -j));
    fq_ptable_free(pt);
}

/* ---- determinism ------------------------------------------------------------
 */

static void
test_determinism(void **state)
{
    (void)state;
    seed_from_env("determinism");
    for (size_t s = 0; s < FQ_ARRAY_LEN(param_sets); s++) {
        struct fq_ptable *a = build(&param_sets[s]);
        struct fq_ptable *b = build(&param_sets[s]);
        size_t n = fq_ptable_nrows(a);
        int64_t k = fq_ptable_params(a)->threshold;

        assert_int_equal(fq_ptable_nrows(b), n);
        for (size_t i = 0; i < n; i++) {
            struct fq_ptable_row ra, rb;
            assert_int_equal(fq_ptable_row(a, i, &ra), 0);
            assert_int_equal(fq_ptable_row(b, i, &rb), 0);
            assert_int_equal(ra.lo, rb.lo);
            assert_int_equal(ra.kind, rb.kind);
            assert_ptr_not_equal(ra.threshold, rb.threshold);
            assert_memory_equal(ra.threshold, rb.threshold,
                                (size_t)(ra.hi - ra.lo + 1) *
                                    sizeof(*ra.threshold));
        }
        for (int i = 0; i < 20000; i++) {
            int64_t t = k + (int64_t)(splitmix64() % (n + 10));
            uint32_t u = draw_u();
            int first = noise_of(a, t, u);
            assert_int_equal(noise_of(a, t, u), first);
            assert_int_equal(noise_of(b, t, u), first);
        }
        fq_ptable_free(a);
        fq_ptable_free(b);
    }
}

/* ---- chi-squared goodness of fit ------------------------------------------
 */

/* P(X > x) for X chi-squared with df degrees of freedom, in closed form:
 * a Poisson sum for even df, erfc plus a half-integer sum for odd df. */
static double
chi2_sf(double x, int df)
{
    double h = x / 2, sum, term;

    if (df % 2 == 0) {
        term = exp(-h);
        sum = term;
        for (int i = 1; i < df / 2; i++) {
            term *= h / i;
            sum += term;
        }
        return sum;
    }
    sum = erfc(sqrt(h));
    term = exp(-h) * sqrt(h) / tgamma(1.5);
    for (int i = 1; i <= (df - 1) / 2; i++) {
        sum += term;
        term *= h / (i + 0.5);
    }
    return sum;
}

/* The x with P(X > x) = alpha, by bisection (the survival function falls). */
static double
chi2_critical(int df, double alpha)
{
    double lo = 0, hi = 1000;

    for (int i = 0; i < 200; i++) {
        double mid = (lo + hi) / 2;
        if (chi2_sf(mid, df) > alpha)
            lo = mid;
        else
            hi = mid;
    }
    return (lo + hi) / 2;
}

static void
test_chi2_critical_values(void **state)
{
    /* Published 0.999 quantiles, to check the derivation itself. */
    static const double table[] = {10.828, 13.816, 16.266, 18.467,
                                   20.515, 22.458, 24.322, 26.124};
    (void)state;
    for (int df = 1; df <= 8; df++)
        assert_true(fabs(chi2_critical(df, 0.001) - table[df - 1]) < 1e-3);
}

#define CHI_DRAWS 1000000

static void
chi2_fit(const struct fq_ptable *pt, int64_t t)
{
    const struct fq_ptable_params *p = fq_ptable_params(pt);
    int d = p->max_deviation, cells = 0;
    long counts[2 * FQ_PTABLE_MAX_DEVIATION + 1] = {0};
    struct fq_ptable_row r;
    int64_t i = t - p->threshold;
    double stat = 0;

    if (i >= (int64_t)fq_ptable_nrows(pt))
        i = (int64_t)fq_ptable_nrows(pt) - 1;
    assert_int_equal(fq_ptable_row(pt, (size_t)i, &r), 0);
    for (long n = 0; n < CHI_DRAWS; n++)
        counts[noise_of(pt, t, draw_u()) + d]++;
    for (int j = -d; j <= d; j++) {
        double expect = (double)CHI_DRAWS * fq_ptable_row_prob(&r, j);
        if (expect == 0) {
            /* Impossible noise must never appear. */
            assert_int_equal(counts[j + d], 0);
            continue;
        }
        stat += (counts[j + d] - expect) * (counts[j + d] - expect) / expect;
        cells++;
    }
    if (cells < 2)
        return;
    double crit = chi2_critical(cells - 1, 0.001);
    print_message("chi2 D=%d V=%g t=%" PRId64 ": %.3f on %d df (critical "
                  "%.3f)\n",
                  d, p->variance, t, stat, cells - 1, crit);
    if (stat > crit)
        fail_msg("t=%" PRId64 ": chi-squared %.3f > %.3f", t, stat, crit);
}

static void
test_chi_squared(void **state)
{
    static const struct fq_ptable_params other = {3, 2.0, 5, 6};

    (void)state;
    seed_from_env("chi-squared");
    struct fq_ptable *pt = build_default();
    chi2_fit(pt, 11); /* no noise: every draw must give 0 */
    chi2_fit(pt, 12);
    chi2_fit(pt, 13);
    chi2_fit(pt, 1000);
    fq_ptable_free(pt);
    pt = build(&other);
    chi2_fit(pt, 6);
    chi2_fit(pt, 7);
    chi2_fit(pt, 50);
    fq_ptable_free(pt);
}

/* ---- preimage
 * ---------------------------------------------------------------- */

#define PRE_SPAN 64 /* true values brute-forced above k */

/* For each published w in [k, k + PRE_SPAN), the least and greatest true
 * value seen to publish it; reachable noises come from lookups at each
 * interval's lower end. */
static void
brute_preimages(const struct fq_ptable *pt, int64_t *lo, int64_t *hi)
{
    const struct fq_ptable_params *p = fq_ptable_params(pt);
    int64_t k = p->threshold;

    for (int i = 0; i < PRE_SPAN; i++)
        lo[i] = hi[i] = -1;
    for (int64_t t = k; t < k + PRE_SPAN; t++) {
        struct fq_ptable_row r;
        int64_t i = t - k;
        if (i >= (int64_t)fq_ptable_nrows(pt))
            i = (int64_t)fq_ptable_nrows(pt) - 1;
        assert_int_equal(fq_ptable_row(pt, (size_t)i, &r), 0);
        for (int j = r.lo - 1; j <= r.hi; j++) {
            uint64_t u = j < r.lo ? 0 : r.threshold[j - r.lo];
            if (u >= TWO32)
                continue;
            int64_t w = t + noise_of(pt, t, (uint32_t)u) - k;
            if (w >= PRE_SPAN)
                continue;
            if (lo[w] < 0 || t < lo[w])
                lo[w] = t;
            if (t > hi[w])
                hi[w] = t;
        }
    }
}

static void
check_preimages(const struct fq_ptable *pt)
{
    const struct fq_ptable_params *p = fq_ptable_params(pt);
    int64_t k = p->threshold, blo[PRE_SPAN], bhi[PRE_SPAN];

    brute_preimages(pt, blo, bhi);
    /* Only w whose every possible source t <= w + D was brute-forced. */
    for (int64_t w = k; w + p->max_deviation < k + PRE_SPAN; w++) {
        int64_t lo = -7, hi = -7;
        int rc = fq_ptable_preimage(pt, w, &lo, &hi);
        if (blo[w - k] < 0) {
            assert_int_equal(rc, FQ_ENOENT);
            assert_int_equal(lo, -7);
            continue;
        }
        assert_int_equal(rc, 0);
        if (lo != blo[w - k] || hi != bhi[w - k])
            fail_msg("D=%d V=%g: w=%" PRId64 " has preimage [%" PRId64
                     ", %" PRId64 "], brute force [%" PRId64 ", %" PRId64 "]",
                     p->max_deviation, p->variance, w, lo, hi, blo[w - k],
                     bhi[w - k]);
    }
}

static void
test_preimage(void **state)
{
    int64_t lo = -7, hi = -7;

    (void)state;
    for (size_t s = 0; s < FQ_ARRAY_LEN(param_sets); s++) {
        struct fq_ptable *pt = build(&param_sets[s]);
        int64_t k = fq_ptable_params(pt)->threshold;
        check_preimages(pt);
        assert_int_equal(fq_ptable_preimage(pt, 0, &lo, &hi), 0);
        assert_int_equal(lo, 0);
        assert_int_equal(hi, 0);
        lo = hi = -7;
        for (int64_t w = 1; w < k; w++)
            assert_int_equal(fq_ptable_preimage(pt, w, &lo, &hi), FQ_EINVAL);
        assert_int_equal(fq_ptable_preimage(pt, -1, &lo, &hi), FQ_EINVAL);
        assert_int_equal(lo, -7);
        assert_int_equal(hi, -7);
        fq_ptable_free(pt);
    }
}

/* The default table by hand: 11 comes from 11 (no noise), 12 (-1) or 13
 * (-2); 12 not from 11 (no noise there), so 12..14; 13 from 12 (+1) to 15;
 * far out, w - 2..w + 2; no overflow at the top. */
static void
test_preimage_default(void **state)
{
    int64_t lo, hi;

    (void)state;
    struct fq_ptable *pt = build_default();
    assert_int_equal(fq_ptable_preimage(pt, 11, &lo, &hi), 0);
    assert_int_equal(lo, 11);
    assert_int_equal(hi, 13);
    assert_int_equal(fq_ptable_preimage(pt, 12, &lo, &hi), 0);
    assert_int_equal(lo, 12);
    assert_int_equal(hi, 14);
    assert_int_equal(fq_ptable_preimage(pt, 13, &lo, &hi), 0);
    assert_int_equal(lo, 12);
    assert_int_equal(hi, 15);
    assert_int_equal(fq_ptable_preimage(pt, 14, &lo, &hi), 0);
    assert_int_equal(lo, 12);
    assert_int_equal(hi, 16);
    assert_int_equal(fq_ptable_preimage(pt, 1000, &lo, &hi), 0);
    assert_int_equal(lo, 998);
    assert_int_equal(hi, 1002);
    assert_int_equal(fq_ptable_preimage(pt, INT64_MAX, &lo, &hi), 0);
    assert_int_equal(lo, INT64_MAX - 2);
    assert_int_equal(hi, INT64_MAX);
    fq_ptable_free(pt);
}

/* ---- rounding
 * ------------------------------------------------------------------ */

/* The first u that rounds down: ceil(r * 2^32 / b). */
static uint64_t
round_cut(int64_t r, uint32_t b)
{
    return (((uint64_t)r << 32) + b - 1) / b;
}

static void
check_round_rules(int64_t v, uint32_t b, int64_t k)
{
    int64_t down = v - v % b, up = down + b, r = v % b;
    uint64_t cut = round_cut(r, b);
    uint32_t us[6] = {0, UINT32_MAX, 1, 0x80000000u};
    size_t n = 4;

    if (r != 0 && cut < TWO32) {
        us[n++] = (uint32_t)cut;
        us[n++] = (uint32_t)(cut - 1);
    }
    for (size_t i = 0; i < n; i++) {
        int64_t got = fq_round_random(v, b, us[i], k);
        if (r == 0)
            assert_int_equal(got, v);
        else
            assert_true(got == down || got == up);
        if (v >= k)
            assert_true(got >= k);
        /* Where k does not force it, the cut decides exactly. */
        if (r != 0 && !(v >= k && down < k))
            assert_int_equal(got, us[i] < cut ? up : down);
    }
}

static void
test_round_rules(void **state)
{
    /* 3 and 5 in use; 2 and 4 divide 2^32, so their cut is exact and an
     * off-by-one at u = r * 2^32 / b shows. */
    static const uint32_t bases[] = {3, 5, 2, 4};

    (void)state;
    for (size_t i = 0; i < FQ_ARRAY_LEN(bases); i++) {
        for (int64_t k = 1; k <= 20; k++) {
            for (int64_t v = 1; v <= 300; v++)
                check_round_rules(v, bases[i], k);
        }
    }
    /* k forces up only from k to the next multiple: 11 -> 12 always. */
    assert_int_equal(fq_round_random(11, 3, UINT32_MAX, 11), 12);
    assert_int_equal(fq_round_random(11, 5, UINT32_MAX, 11), 15);
    assert_int_equal(fq_round_random(14, 5, UINT32_MAX, 11), 15);
    assert_int_equal(fq_round_random(13, 3, UINT32_MAX, 11), 12);
    assert_int_equal(fq_round_random(16, 5, UINT32_MAX, 11), 15);
    /* 17 -> 18 with p = 2/3 (privacy.md A.2). */
    assert_int_equal(round_cut(2, 3), 2863311531u);
    assert_int_equal(fq_round_random(17, 3, 2863311530u, 11), 18);
    assert_int_equal(fq_round_random(17, 3, 2863311531u, 11), 15);
}

static void
test_round_identity(void **state)
{
    (void)state;
    for (int64_t v = -5; v <= 50; v++) {
        assert_int_equal(fq_round_random(v, 1, draw_u(), 11), v);
        assert_int_equal(fq_round_random(v, 0, draw_u(), 11), v);
    }
    /* Counts are never negative; 0 stays 0. */
    assert_int_equal(fq_round_random(0, 3, 0, 11), 0);
    assert_int_equal(fq_round_random(-4, 3, 0, 11), -4);
    assert_int_equal(fq_round_random(INT64_MIN, 5, 0, 11), INT64_MIN);
    /* No overflow at the top: the upper multiple would not fit. */
    assert_int_equal(fq_round_random(INT64_MAX, 5, 0, 11),
                     INT64_MAX - INT64_MAX % 5);
}

/*
 * Unbiased: exactly, over all 2^32 u (the cut counts them), the mean is v
 * to within b * 2^-32; empirically over 10^6 uniform u it is within five
 * standard errors.
 */
static void
test_round_unbiased(void **state)
{
    static const int64_t vs[] = {100, 101, 102, 103, 104, 1001, 57};
    static const uint32_t bases[] = {3, 5};

    (void)state;
    seed_from_env("rounding");
    for (size_t bi = 0; bi < FQ_ARRAY_LEN(bases); bi++) {
        uint32_t b = bases[bi];
        for (size_t vi = 0; vi < FQ_ARRAY_LEN(vs); vi++) {
            int64_t v = vs[vi], r = v % b, down = v - r;
            double exact = down + b * ((double)round_cut(r, b) / TWO32);
            double q = (double)r / b, sum = 0;
            assert_true(fabs(exact - v) <= b / (double)TWO32);
            for (int n = 0; n < 1000000; n++)
                sum += (double)fq_round_random(v, b, draw_u(), 11);
            double se = b * sqrt(q * (1 - q)) / 1000.0;
            double mean = sum / 1000000.0;
            if (fabs(mean - v) > 5 * se + 1e-12)
                fail_msg("b=%u v=%" PRId64 ": mean %.6f", b, v, mean);
        }
    }
}

/* ---- parameters
 * ------------------------------------------------------------------ */

static void
expect_refused(int d, double v, int64_t k, int rows, const char *name)
{
    struct fq_ptable_params p = {d, v, k, rows};
    struct fq_ptable *pt = (struct fq_ptable *)&p; /* sentinel */
    char err[256] = "";

    assert_int_equal(fq_ptable_build(&p, &pt, err, sizeof(err)), FQ_EINVAL);
    assert_ptr_equal(pt, (struct fq_ptable *)&p);
    if (!strstr(err, name))
        fail_msg("D=%d V=%g k=%" PRId64 " R=%d: '%s' does not name '%s'", d, v,
                 k, rows, err, name);
}

static void
test_bad_params(void **state)
{
    (void)state;
    expect_refused(0, 1.0, 11, 0, "max_deviation");
    expect_refused(-1, 1.0, 11, 0, "max_deviation");
    expect_refused(FQ_PTABLE_MAX_DEVIATION + 1, 1.0, 11, 0, "max_deviation");
    expect_refused(INT_MIN, 1.0, 11, 0, "max_deviation");
    expect_refused(2, 0.0, 11, 0, "variance");
    expect_refused(2, -1.0, 11, 0, "variance");
    expect_refused(2, NAN, 11, 0, "variance");
    expect_refused(2, INFINITY, 11, 0, "variance");
    expect_refused(2, 4.000001, 11, 0, "variance");
    expect_refused(1, 1.5, 11, 0, "variance");
    expect_refused(2, FQ_PTABLE_MIN_VARIANCE / 2, 11, 0, "variance");
    expect_refused(2, 1.0, 0, 0, "threshold");
    expect_refused(2, 1.0, -11, 0, "threshold");
    expect_refused(2, 1.0, INT64_MAX, 0, "threshold");
    expect_refused(2, 1.0, FQ_PTABLE_MAX_THRESHOLD + 1, 0, "threshold");
    expect_refused(2, 1.0, 11, 2, "rows");
    expect_refused(2, 1.0, 11, 1, "rows");
    expect_refused(2, 1.0, 11, -3, "rows");
    expect_refused(2, 1.0, 11, FQ_PTABLE_MAX_ROWS + 1, "rows");
}

static void
test_edge_params_build(void **state)
{
    static const struct fq_ptable_params ok[] = {
        {1, FQ_PTABLE_MIN_VARIANCE, 1, 0},
        {2, 4.0, 1, FQ_PTABLE_MAX_ROWS},
        {FQ_PTABLE_MAX_DEVIATION, 1.0, FQ_PTABLE_MAX_THRESHOLD, 0},
        {FQ_PTABLE_MAX_DEVIATION, 9999.0, 11, 0},
    };
    (void)state;
    for (size_t i = 0; i < FQ_ARRAY_LEN(ok); i++) {
        struct fq_ptable *pt = build(&ok[i]);
        check_lookup_at(pt, fq_ptable_params(pt)->threshold, UINT32_MAX);
        fq_ptable_free(pt);
    }
    fq_ptable_free(NULL);
}

/* ---- text
 * ------------------------------------------------------------------------ */

static const char default_text[] =
    "# fedq cell-key perturbation table\n"
    "# max_deviation 2, variance 1, threshold 11, rows 3\n"
    "# 0 is published as 0; 1..10 are suppressed, never perturbed\n"
    "# t=11: no noise, support [0, 2], mean 0.000000000, variance "
    "0.000000000\n"
    "# t=12: target, support [-1, 2], mean 0.000000000, variance "
    "1.000000000\n"
    "# t=13+: target, support [-2, 2], mean 0.000000000, variance "
    "1.000000000\n"
    "# t        noise  probability   threshold\n"
    "  11           0     1.000000  4294967296\n"
    "  12          -1     0.398065  1709674916\n"
    "  12           0     0.305806  3023101112\n"
    "  12           1     0.194194  3857158564\n"
    "  12           2     0.101935  4294967296\n"
    "  13+         -2     0.063827   274135465\n"
    "  13+         -1     0.244691  1325077254\n"
    "  13+          0     0.382963  2969890042\n"
    "  13+          1     0.244691  4020831831\n"
    "  13+          2     0.063827  4294967296\n";

static void
test_format(void **state)
{
    struct fq_buf b;
    char small[sizeof(default_text)];

    (void)state;
    struct fq_ptable *pt = build_default();
    fq_buf_init(&b, 1 << 16);
    assert_int_equal(fq_ptable_format(pt, &b), 0);
    assert_string_equal(fq_buf_str(&b), default_text);
    fq_buf_release(&b);

    /* Too small a cap: FQ_ETOOBIG and the buffer released. */
    fq_buf_init(&b, 100);
    assert_int_equal(fq_ptable_format(pt, &b), FQ_ETOOBIG);
    assert_int_equal(fq_buf_len(&b), 0);
    fq_buf_release(&b);

    /* Exactly enough room, then one byte less (dst untouched). */
    assert_int_equal(fq_ptable_format_str(pt, small, sizeof(small)), 0);
    assert_string_equal(small, default_text);
    memset(small, 'x', sizeof(small));
    assert_int_equal(fq_ptable_format_str(pt, small, sizeof(small) - 1),
                     FQ_ETOOBIG);
    assert_int_equal(small[0], 'x');
    assert_int_equal(fq_ptable_format_str(pt, small, 0), FQ_ETOOBIG);
    fq_ptable_free(pt);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_support_and_truncation),
        cmocka_unit_test(test_zero_and_suppressed),
        cmocka_unit_test(test_moments),
        cmocka_unit_test(test_max_entropy_shape),
        cmocka_unit_test(test_default_table),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_chi2_critical_values),
        cmocka_unit_test(test_chi_squared),
        cmocka_unit_test(test_preimage),
        cmocka_unit_test(test_preimage_default),
        cmocka_unit_test(test_round_rules),
        cmocka_unit_test(test_round_identity),
        cmocka_unit_test(test_round_unbiased),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_edge_params_build),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
