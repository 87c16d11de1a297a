/*
 * A small linear-programming solver for secondary suppression: the interval
 * of values an attacker can deduce for one suppressed cell of a released
 * table from everything released with it (cell values, margins, noise
 * bounds). That is, the smallest and largest value of one variable x[v]
 * subject to
 *
 *     sum_k a[i][k] * x[k] = b[i]    for every row i,
 *     lo[k] <= x[k] <= hi[k]         for every variable k,
 *
 * where lo may be -infinity and hi +infinity.
 *
 * It is an LP relaxation: counts are treated as reals, so the interval is
 * the one over real-valued tables, and it contains the interval over
 * integer tables. For two-way tables with all margins and integer bounds
 * the constraint matrix is totally unimodular and the two are equal; with
 * three or more dimensions the integer interval can be strictly narrower
 * (the tests find a few such cells among thousands). An attacker who
 * solves the integer program then learns more than this interval says, so
 * a protection check on it can overstate protection there.
 *
 * Method: a dense bounded-variable primal simplex over doubles. Phase I
 * starts from one artificial variable per row (fixed at 0) and minimises
 * the sum of infeasibilities (its reduced costs kept across pivots and
 * corrected only for the rows whose basic variable changed sides, so a
 * pricing costs O(m + n) rather than O(m * n)); phase II maximises, then
 * minimises x[v], or stops once the two are far enough apart
 * (gw_lp_range_within).
 * Pricing is Dantzig's (largest reduced cost), switching to Bland's
 * smallest-index rule after 50 degenerate pivots in a row, so it cannot
 * cycle. The basis is kept between calls: gw_lp_range for another
 * variable, or after gw_lp_set_bounds, starts from the last basis, and
 * phase I only repairs what a bound change broke. Fixed variables
 * (released cells) cost nothing per pivot, but changing the bounds of one
 * that was fixed at the last call rebuilds the tableau once (about m
 * pivots). Basic values are recomputed on every call and the tableau is
 * rebuilt from the rows from time to time, and whenever a result fails its
 * residual check, so rounding does not accumulate.
 *
 * Tolerances: rows are first scaled by a power of two so that their largest
 * |coefficient| is in [1, 2). A value counts as within a bound b when it is
 * within 1e-9 * (1 + |b|) of it; tableau entries under 1e-9 are not pivoted
 * on; reduced costs under 1e-9 count as zero; every returned result comes
 * from a point that satisfies each row to 1e-9 of the sum of its |terms|.
 * Results are accurate to about 1e-9 relative for 0/1/-1 coefficients
 * (the tests hold them to GLPK's within 1e-6); the caller rounds them.
 * Coefficients within one row should not span more than about 1e6.
 *
 * Cost: one pivot is O(rows * nonzeros of the pivot row) on a dense
 * tableau. Measured (one core, all margins, 30-60% of cells suppressed,
 * the rest released): a 10x10x10 table (1331 variables, 331 rows) takes
 * 2-3 ms per suppressed cell, 12x12x12 (2197, 469) 10-15 ms, a 40x40
 * table about 1 ms.
 *
 * Limits: at most GW_LP_MAX_VARS variables, GW_LP_MAX_ROWS rows, and a
 * tableau of rows * (vars + 1) <= GW_LP_MAX_CELLS doubles (8 bytes each,
 * allocated on the first gw_lp_range); each gw_lp_range makes at most
 * GW_LP_ITERS(rows, vars) simplex iterations. Exceeding any of these gives
 * FQ_ETOOBIG.
 *
 * A struct gw_lp is not thread-safe; use one per thread.
 */
#ifndef GW_LP_H
#define GW_LP_H

#include <stddef.h>

#define GW_LP_MAX_VARS  8000
#define GW_LP_MAX_ROWS  4000
#define GW_LP_MAX_CELLS ((size_t)16 * 1024 * 1024) /* 128 MiB of doubles */
/* Simplex iterations one gw_lp_range call may make (phase I and both
 * phase II runs together). */
#define GW_LP_ITERS(rows, vars) (50 * ((size_t)(rows) + (size_t)(vars)) + 1000)

struct gw_lp;

/*
 * A problem over n_vars variables (1 <= n_vars <= GW_LP_MAX_VARS), each
 * with bounds [0, +inf) and no rows. 0; FQ_EINVAL for n_vars 0; FQ_ETOOBIG
 * over the cap; FQ_ENOMEM. The caller owns *ret; release with gw_lp_free.
 */
int gw_lp_new(size_t n_vars, struct gw_lp **ret);

/* Frees the problem and everything it holds; NULL is a no-op. */
void gw_lp_free(struct gw_lp *lp);

/*
 * Sets lo <= x[var] <= hi; lo may be -INFINITY and hi +INFINITY, lo == hi
 * fixes the variable. Legal at any time, also between gw_lp_range calls
 * (the basis is kept). 0; FQ_EINVAL for a var out of range, a NaN, lo > hi,
 * lo == +inf or hi == -inf.
 */
int gw_lp_set_bounds(struct gw_lp *lp, size_t var, double lo, double hi);

/*
 * Adds the equality sum_k coef[k] * x[vars[k]] = rhs (n terms; a variable
 * may appear once per row; n may be 0). The arrays are copied, the caller
 * keeps them. 0; FQ_EINVAL for a var out of range or repeated, or a
 * coefficient or rhs that is not finite; FQ_ETOOBIG past GW_LP_MAX_ROWS or
 * GW_LP_MAX_CELLS; FQ_ENOMEM. On error the problem is unchanged.
 */
int gw_lp_add_row(struct gw_lp *lp, const size_t *vars, const double *coef,
                  size_t n, double rhs);

/*
 * The smallest and largest value x[var] takes over the feasible set, in
 * *ret_lo and *ret_hi (-INFINITY / INFINITY when unbounded that way).
 * 0; FQ_EINVAL for a var out of range or infeasible constraints;
 * FQ_ETOOBIG when the iteration cap is hit; FQ_ENOMEM; FQ_EINTERNAL when
 * the result stays inaccurate after rebuilding the tableau (numerical
 * breakdown). Nothing is written on error, and the problem stays usable.
 */
int gw_lp_range(struct gw_lp *lp, size_t var, double *ret_lo, double *ret_hi);

/*
 * gw_lp_range, but it may stop once the interval is known to be at least
 * width wide (width > 0; INFINITY: never): then [*ret_lo, *ret_hi] is a
 * part of it at least width wide, two feasible values of x[var]. Much
 * cheaper where most intervals are wide (a check against a protection
 * level). The same errors, and FQ_EINVAL for a width that is not
 * positive.
 */
int gw_lp_range_within(struct gw_lp *lp, size_t var, double width,
                       double *ret_lo, double *ret_hi);

#endif
