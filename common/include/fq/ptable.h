/*
 * The cell-key perturbation table ("ptable") and consistent random rounding
 * (privacy.md A.2, A.6; ABS TableBuilder, Thompson, Broadfoot & Elazar 2013).
 *
 * Every released count cell carries a 32-bit draw u, derived by the caller
 * from the sum of its contributors' secret record keys. The noise added to
 * the cell's true value t is looked up in a published table indexed by t and
 * u, so the same cell gets the same noise in every query and repeating a
 * query averages nothing away.
 *
 * Parameters: max deviation D, target variance V, threshold k (the minimum
 * cell count), rows R. True value 0 is never perturbed. True values 1..k-1
 * are suppressed before perturbation and are never looked up (asking is
 * FQ_EINVAL). Row i (i = 0..R-1) holds the noise distribution for the true
 * value t = k + i; every t >= k + R - 1 uses the last row. The noise of row
 * i lies in [lo, D] with lo = max(-D, k - t) = -min(i, D), so a true value
 * of at least k is never published below k, and nothing is published outside
 * [t - D, t + D].
 *
 * Each row is the maximum-entropy distribution on its support with mean 0
 * and variance V (p_j proportional to exp(a*j + b*j^2), a and b solved by
 * Newton's method). Mean 0 on [lo, D] allows a variance of at most -lo*D,
 * reached only by putting all the mass on lo and D; so the rows are:
 *
 *   row 0 (t = k)          support [0, D]: mean 0 forces noise 0, "no noise"
 *                          (FQ_PTABLE_ROW_NO_NOISE). Publishing k therefore
 *                          says nothing more than "at least k" would.
 *   row i, 1 <= i < D      support [-i, D]: variance V if V <= i*D
 *                          (FQ_PTABLE_ROW_TARGET), otherwise the largest
 *                          achievable, i*D, by the two-point distribution
 *                          on {-i, D} (FQ_PTABLE_ROW_CAPPED).
 *   row i >= D             the full support [-D, D]; V <= D*D always holds,
 *                          so variance V (FQ_PTABLE_ROW_TARGET). These rows
 *                          are identical, which is why R = D + 1 suffices.
 *
 * The defaults (D = 2, V = 1, k = 11, R = 3): t = 11 no noise, t = 12 on
 * [-1, 2] with variance 1, t >= 13 on [-2, 2] with variance 1.
 *
 * At build time each row's cumulative probabilities become uint32 thresholds
 * (cumulative * 2^32 rounded; the last is exactly 2^32, held in a uint64).
 * The lookup is integer-only: the noise is the smallest j whose threshold
 * exceeds u. The probabilities as stored, after that rounding, are the
 * published table: fq_ptable_format prints them and the per-row mean and
 * variance are computed from them (they differ from the solved values by
 * rounding only: for the defaults by less than 1e-9).
 */
#ifndef FQ_PTABLE_H
#define FQ_PTABLE_H

#include "fq/compat.h"
#include "fq/buf.h"

/* privacy.md A.2: D = 2, variance about 1, ABS-like; k from the policy. */
#define FQ_PTABLE_DEFAULT_MAX_DEVIATION 2
#define FQ_PTABLE_DEFAULT_VARIANCE      1.0
#define FQ_PTABLE_DEFAULT_THRESHOLD     11

/*
 * Bounds beyond which parameters are refused as absurd. Below
 * FQ_PTABLE_MIN_VARIANCE the off-zero probabilities fall under a few units
 * of 2^-32, so the stored table could not show the variance asked for.
 */
#define FQ_PTABLE_MAX_DEVIATION 100
#define FQ_PTABLE_MIN_VARIANCE  1e-6
#define FQ_PTABLE_MAX_THRESHOLD 1000000000
#define FQ_PTABLE_MAX_ROWS      1000

struct fq_ptable_params {
    int max_deviation; /* D: 1..FQ_PTABLE_MAX_DEVIATION */
    double variance;   /* V: FQ_PTABLE_MIN_VARIANCE..D*D */
    int64_t threshold; /* k: 1..FQ_PTABLE_MAX_THRESHOLD */
    int rows;          /* R: D + 1..FQ_PTABLE_MAX_ROWS; 0 means D + 1 */
};

/* The defaults above, with rows 0 (D + 1). Cannot fail. */
void fq_ptable_params_default(struct fq_ptable_params *p);

struct fq_ptable;

/*
 * Solves and rounds the table. 0, or FQ_EINVAL with the offending parameter
 * named in err (unusable parameters never build a table), or FQ_ENOMEM.
 * On success the caller owns *ret and frees it with fq_ptable_free.
 */
int fq_ptable_build(const struct fq_ptable_params *p, struct fq_ptable **ret,
                    char *err, size_t errlen);
/* NULL-safe. */
void fq_ptable_free(struct fq_ptable *pt);

/* The parameters the table was built with, rows resolved; owned by pt. */
const struct fq_ptable_params *fq_ptable_params(const struct fq_ptable *pt);

/*
 * The noise for true value t and draw u: 0 for t = 0, else a value in
 * [max(-D, k - t), D]. FQ_EINVAL for t < 0 and for 0 < t < k (those cells
 * are suppressed, never perturbed). Deterministic, integer-only.
 */
int fq_ptable_noise(const struct fq_ptable *pt, int64_t t, uint32_t u,
                    int *ret_noise);
/* t + noise: the published value. As fq_ptable_noise, plus FQ_ETOOBIG when
 * t + D would not fit an int64_t. */
int fq_ptable_perturb(const struct fq_ptable *pt, int64_t t, uint32_t u,
                      int64_t *ret_value);

/*
 * The smallest and largest true value that can be published as w: what an
 * attacker learns from seeing w, the interval secondary suppression works
 * with. Exact for the stored table (noise values rounded to probability 0
 * are impossible and do not count). w == 0 gives [0, 0]. FQ_EINVAL for
 * w < 0 and 0 < w < k (never published); FQ_ENOENT if no true value is ever
 * published as w (possible only when some row is FQ_PTABLE_ROW_CAPPED).
 */
int fq_ptable_preimage(const struct fq_ptable *pt, int64_t w, int64_t *ret_lo,
                       int64_t *ret_hi);

/* ---- the published table, row by row (for JSON, docs, tests) ------------ */

enum fq_ptable_row_kind {
    FQ_PTABLE_ROW_NO_NOISE, /* support [0, D]: noise always 0 */
    FQ_PTABLE_ROW_TARGET,   /* mean 0, variance V (before rounding) */
    FQ_PTABLE_ROW_CAPPED,   /* V unreachable: two points lo and D */
};

/* A read-only view into the table; valid while the table lives. */
struct fq_ptable_row {
    int64_t t; /* the true value of this row */
    bool last; /* the last row: also every true value above t */
    enum fq_ptable_row_kind kind;
    int lo, hi; /* the support [lo, hi]: max(-D, k - t) and D */
    /* cumulative thresholds: threshold[j - lo] for noise j in lo..hi;
     * nondecreasing, threshold[hi - lo] == 2^32 */
    const uint64_t *threshold;
    double mean;     /* of the stored probabilities */
    double variance; /* of the stored probabilities */
};

size_t fq_ptable_nrows(const struct fq_ptable *pt);
/* 0, or FQ_EINVAL if i >= fq_ptable_nrows(pt). */
int fq_ptable_row(const struct fq_ptable *pt, size_t i,
                  struct fq_ptable_row *ret_row);
/* The stored probability of noise j, times 2^32 (0 outside the support). */
uint64_t fq_ptable_row_weight(const struct fq_ptable_row *row, int j);
/* The same as a probability (exact: a weight over 2^32). */
double fq_ptable_row_prob(const struct fq_ptable_row *row, int j);
/* A short name for the kind: "no noise", "target", "capped". */
const char *fq_ptable_row_kind_name(enum fq_ptable_row_kind kind);

/*
 * Appends the published table as text: '#' comment lines (the parameters,
 * each row's kind, mean and variance), then one line per row and noise of
 * nonzero stored probability: the true value ("13+" for the last row), the
 * noise, the probability with 6 decimals and the cumulative threshold.
 * 0, or FQ_ENOMEM / FQ_ETOOBIG (out is released then, as fq_buf does).
 */
int fq_ptable_format(const struct fq_ptable *pt, struct fq_buf *out);
/* The same into dst (NUL-terminated); FQ_ETOOBIG, dst untouched, if it does
 * not fit in size bytes. */
int fq_ptable_format_str(const struct fq_ptable *pt, char *dst, size_t size);

/* ---- consistent unbiased random rounding --------------------------------- */

/*
 * Rounds v to a multiple of base b (Stats NZ uses 3; 5 also common; b <= 1
 * returns v). Multiples of b stay. Otherwise, with r = v mod b, v rounds up
 * when u < r * 2^32 / b (exact integer comparison) and down otherwise, so
 * the expected value over a uniform u is v (to within b * 2^-32, since 2^32
 * is not a multiple of 3 or 5). u must come from a key stream of its own,
 * not the one that drew the cell's perturbation noise: that is the caller's.
 *
 * If v >= k the result is never below k: when the lower multiple is below k
 * the value always rounds up. This biases exactly the values from k to the
 * first multiple of b at or above k upwards, by b - r (at most b - 1): with
 * k = 11 and b = 3, 11 always becomes 12 (+1). A rounded value under k would
 * look like a suppressed cell, and the bias is confined to the few values
 * that are already perturbed by the ptable. v <= 0 is returned as it is
 * (counts are never negative), and values within b of INT64_MAX round down,
 * since the upper multiple does not fit.
 */
int64_t fq_round_random(int64_t v, uint32_t b, uint32_t u, int64_t k);

#endif
