/*
 * The interval solver behind secondary suppression (see lp.h for what it
 * solves, its tolerances and its limits): a dense bounded-variable primal
 * simplex.
 *
 * Variables 0..n-1 are the caller's; n+i is row i's artificial, fixed at 0,
 * which gives every row a starting basis. Artificials never re-enter, so
 * the tableau keeps only the n structural columns plus the right-hand side:
 * row i reads x[head[i]] + sum_j tab[i][j] * x[j] = tab[i][n] over the
 * nonbasic j. A basic column is a unit column. A fixed nonbasic variable
 * (a released cell, most of a table) is frozen: its column is kept at 0
 * and its value is moved into the right-hand side, so it costs nothing per
 * pivot; changing its bounds rebuilds the tableau.
 *
 * Nonbasic variables sit anywhere within their bounds (usually at one, or
 * at 0 when free); a step moves one of them until a basic variable reaches
 * a bound (a pivot) or it reaches its own other bound (a flip). Phase I
 * minimises the sum of infeasibilities of the basic variables and stops
 * each step at the first one that becomes feasible, so it starts from any
 * basis: the artificial one, or the last feasible one after the caller
 * moved a bound.
 *
 * Rounding: basic values are recomputed from the tableau at every call;
 * the tableau is rebuilt from the rows every 2m + 100 pivots (which also
 * undoes fill-in), and a result whose point misses a row by more than
 * TOL_CHECK of the row's terms is recomputed on a rebuilt tableau.
 *
 * Invariants: pos[k] is the row of basic variable k or NONBASIC; head[] and
 * pos[] agree for every row; the tableau matches the rows when tab_rows ==
 * m and !stale; nonbasic structural values lie within their bounds;
 * nonbasic artificials are 0; a frozen variable is nonbasic and fixed, and
 * its column is 0.
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "lp.h"

#include <math.h>

#define NONBASIC      SIZE_MAX
#define TOL_FEAS      1e-9  /* feasibility, times 1 + |bound| */
#define TOL_PIV       1e-9  /* smallest tableau entry worth pivoting on */
#define TOL_COST      1e-9  /* smallest reduced cost that improves */
#define TOL_ZERO      1e-13 /* what is left of a cancellation, relatively */
#define TOL_CHECK     1e-9  /* residual, relative to the row's terms */
#define TOL_TIE       1e-12 /* relative gap under which two step lengths tie */
#define DEGEN_RUN     50  /* degenerate steps before Bland's rule takes over */
#define PRICE_REFRESH 200 /* phase I pricings before w is computed afresh */

struct gw_lp {
    size_t n;     /* the caller's variables */
    size_t m;     /* rows */
    size_t m_cap; /* rows the per-row arrays hold */
    double *lo, *hi;

    /* The rows as added, scaled: row i is idx/val[beg[i] .. beg[i + 1]). */
    size_t *beg, *idx;
    double *val, *rhs;
    size_t nnz_cap;

    /* The basis and the point: x and pos over n + m_cap variables. */
    double *x;
    size_t *pos, *head;
    double *tab;      /* m x (n + 1), row-major */
    size_t tab_cap;   /* doubles allocated at tab */
    size_t tab_rows;  /* rows the tableau was built for */
    size_t since_inv; /* pivots since the tableau was rebuilt */
    size_t since_w;   /* phase I pricings since w was computed afresh */
    bool stale;       /* a frozen variable's bounds changed */
    size_t degen;     /* degenerate steps in a row */
    bool bland;

    /* Fixed nonbasic variables whose column is all 0 in the tableau: their
     * value is folded into the right-hand side instead (n). */
    unsigned char *frozen;

    /* Phase I's pricing, kept across pivots: w[j] = sum over rows i of
     * cside[i] * tab[i][j], where cside[i] is the side of row i's basic
     * variable when it was last priced (n; m_cap). Valid when w_ok. */
    double *w;
    signed char *cside;
    bool w_ok;
    bool moved; /* a nonbasic value moved: basic values to recompute */

    /* Scratch: reduced costs (n), nonzero columns of the pivot row
     * (n + 1), the structural basis (n), duplicate marks (n). */
    double *d;
    size_t *nz, *basic;
    unsigned char *mark;
};

/* One simplex step: the row whose basic variable leaves (NONBASIC for a
 * flip of the entering variable), the step length (INFINITY when nothing
 * stops it) and the bound the stopping variable ends at. */
struct lp_step {
    size_t row;
    double t, target;
    double alpha; /* |rate| of the leaving variable, for tie-breaking */
};

static double
clamp(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static double
lo_of(const struct gw_lp *lp, size_t k)
{
    return k < lp->n ? lp->lo[k] : 0.0;
}

static double
hi_of(const struct gw_lp *lp, size_t k)
{
    return k < lp->n ? lp->hi[k] : 0.0;
}

static double *
row_of(const struct gw_lp *lp, size_t i)
{
    return lp->tab + i * (lp->n + 1);
}

/* How far past bound b a value may lie and still count as on it. */
static double
slack(double b)
{
    return TOL_FEAS * (1.0 + fabs(b));
}

/* -1 below its bounds, 1 above, 0 within them (to the tolerance). */
static int
side(const struct gw_lp *lp, size_t k)
{
    double v = lp->x[k], l = lo_of(lp, k), u = hi_of(lp, k);

    return v < l - slack(l) ? -1 : v > u + slack(u) ? 1 : 0;
}

int
gw_lp_new(size_t n_vars, struct gw_lp **ret)
{
    struct gw_lp *lp = NULL;
    int rc = FQ_ENOMEM;

    if (!ret || n_vars == 0)
        return FQ_EINVAL;
    if (n_vars > GW_LP_MAX_VARS)
        return FQ_ETOOBIG;
    if (!(lp = calloc(1, sizeof(*lp))))
        goto out;
    lp->n = n_vars;
    if (!(lp->lo = calloc(n_vars, sizeof(double))) ||
        !(lp->hi = calloc(n_vars, sizeof(double))) ||
        !(lp->x = calloc(n_vars, sizeof(double))) ||
        !(lp->d = calloc(n_vars, sizeof(double))) ||
        !(lp->w = calloc(n_vars, sizeof(double))) ||
        !(lp->pos = calloc(n_vars, sizeof(size_t))) ||
        !(lp->basic = calloc(n_vars, sizeof(size_t))) ||
        !(lp->nz = calloc(n_vars + 1, sizeof(size_t))) ||
        !(lp->mark = calloc(n_vars, 1)) || !(lp->frozen = calloc(n_vars, 1)) ||
        !(lp->beg = calloc(1, sizeof(size_t))))
        goto out;
    for (size_t j = 0; j < n_vars; j++) {
        lp->hi[j] = INFINITY;
        lp->pos[j] = NONBASIC;
    }
    *ret = lp;
    lp = NULL;
    rc = 0;
out:
    gw_lp_free(lp);
    return rc;
}

void
gw_lp_free(struct gw_lp *lp)
{
    if (!lp)
        return;
    free(lp->lo);
    free(lp->hi);
    free(lp->beg);
    free(lp->idx);
    free(lp->val);
    free(lp->rhs);
    free(lp->x);
    free(lp->pos);
    free(lp->head);
    free(lp->tab);
    free(lp->d);
    free(lp->w);
    free(lp->cside);
    free(lp->nz);
    free(lp->basic);
    free(lp->mark);
    free(lp->frozen);
    free(lp);
}

int
gw_lp_set_bounds(struct gw_lp *lp, size_t var, double lo, double hi)
{
    if (!lp || var >= lp->n || isnan(lo) || isnan(hi) || lo > hi ||
        lo == INFINITY || hi == -INFINITY)
        return FQ_EINVAL;
    /* Its value is folded into the tableau: rebuild it on the next call. */
    if (lp->frozen[var] && (lo != lp->lo[var] || hi != lp->hi[var]))
        lp->stale = true;
    lp->lo[var] = lo;
    lp->hi[var] = hi;
    /* A nonbasic variable moves the least it must; the basic values are
     * recomputed on the next gw_lp_range, and phase I repairs the rest. */
    if (lp->pos[var] == NONBASIC && lp->x[var] != clamp(lp->x[var], lo, hi)) {
        lp->x[var] = clamp(lp->x[var], lo, hi);
        lp->moved = true;
    }
    return 0;
}

/* Room for one more row in every per-row array. */
static int
grow_rows(struct gw_lp *lp)
{
    size_t cap = lp->m_cap ? 2 * lp->m_cap : 16, nv;
    void *p;

    if (lp->m < lp->m_cap)
        return 0;
    if (cap > GW_LP_MAX_ROWS)
        cap = GW_LP_MAX_ROWS;
    nv = lp->n + cap;
    /* Each array keeps its contents when a later one fails; m_cap moves
     * only once all of them are big enough. */
    if (!(p = reallocarray(lp->beg, cap + 1, sizeof(size_t))))
        return FQ_ENOMEM;
    lp->beg = p;
    if (!(p = reallocarray(lp->rhs, cap, sizeof(double))))
        return FQ_ENOMEM;
    lp->rhs = p;
    if (!(p = reallocarray(lp->head, cap, sizeof(size_t))))
        return FQ_ENOMEM;
    lp->head = p;
    if (!(p = reallocarray(lp->cside, cap, sizeof(signed char))))
        return FQ_ENOMEM;
    lp->cside = p;
    if (!(p = reallocarray(lp->x, nv, sizeof(double))))
        return FQ_ENOMEM;
    lp->x = p;
    if (!(p = reallocarray(lp->pos, nv, sizeof(size_t))))
        return FQ_ENOMEM;
    lp->pos = p;
    lp->m_cap = cap;
    return 0;
}

/* Room for n more terms. */
static int
grow_terms(struct gw_lp *lp, size_t n)
{
    size_t need = lp->beg[lp->m] + n, cap = lp->nnz_cap;
    void *p;

    if (need <= cap)
        return 0;
    cap = need > 2 * cap ? need : 2 * cap;
    if (!(p = reallocarray(lp->idx, cap, sizeof(size_t))))
        return FQ_ENOMEM;
    lp->idx = p;
    if (!(p = reallocarray(lp->val, cap, sizeof(double))))
        return FQ_ENOMEM;
    lp->val = p;
    lp->nnz_cap = cap;
    return 0;
}

/* FQ_EINVAL for a variable out of range or repeated, or a coefficient that
 * is not finite. */
static int
check_terms(struct gw_lp *lp, const size_t *vars, const double *coef, size_t n)
{
    size_t k;
    int rc = 0;

    for (k = 0; k < n && rc == 0; k++) {
        if (vars[k] >= lp->n || !isfinite(coef[k]) || lp->mark[vars[k]])
            rc = FQ_EINVAL;
        else
            lp->mark[vars[k]] = 1;
    }
    while (k-- > 0)
        if (vars[k] < lp->n)
            lp->mark[vars[k]] = 0;
    return rc;
}

/* A power of two that brings the row's largest |coefficient| into [1, 2):
 * exact, and it makes the absolute tolerances mean the same in every
 * row. */
static double
row_scale(const double *coef, size_t n)
{
    double big = 0.0;
    int e;

    for (size_t k = 0; k < n; k++)
        big = fmax(big, fabs(coef[k]));
    if (big == 0.0)
        return 1.0;
    frexp(big, &e);
    return ldexp(1.0, 1 - e);
}

int
gw_lp_add_row(struct gw_lp *lp, const size_t *vars, const double *coef,
              size_t n, double rhs)
{
    double f;
    size_t at;
    int rc;

    if (!lp || (n && (!vars || !coef)) || !isfinite(rhs))
        return FQ_EINVAL;
    if ((rc = check_terms(lp, vars, coef, n)) < 0)
        return rc;
    f = row_scale(coef, n);
    if (!isfinite(rhs * f))
        return FQ_EINVAL;
    if (lp->m >= GW_LP_MAX_ROWS || (lp->m + 1) * (lp->n + 1) > GW_LP_MAX_CELLS)
        return FQ_ETOOBIG;
    if ((rc = grow_rows(lp)) < 0 || (rc = grow_terms(lp, n)) < 0)
        return rc;
    at = lp->beg[lp->m];
    for (size_t k = 0; k < n; k++) {
        if (coef[k] == 0.0)
            continue;
        lp->idx[at] = vars[k];
        lp->val[at++] = coef[k] * f;
    }
    lp->rhs[lp->m] = rhs * f;
    lp->x[lp->n + lp->m] = 0.0;
    lp->pos[lp->n + lp->m] = NONBASIC;
    lp->beg[++lp->m] = at;
    return 0;
}

/*
 * Makes row r's basic variable leave and q enter: row r is divided by the
 * pivot, and q is eliminated from every other row. Only the pivot row's
 * nonzero columns are visited, which keeps sparse tableaux cheap. Values
 * are the caller's business.
 */
static void
pivot(struct gw_lp *lp, size_t r, size_t q)
{
    size_t w = lp->n + 1, nnz = 0;
    double *pr = row_of(lp, r), inv = 1.0 / pr[q];

    for (size_t c = 0; c < w; c++) {
        if (pr[c] == 0.0)
            continue;
        pr[c] *= inv;
        lp->nz[nnz++] = c;
    }
    pr[q] = 1.0;
    /* Phase I's w over the new rows: w + (cside[r] - w[q]) * new row r
     * (the rows below are combinations of the old ones and row r). */
    if (lp->w_ok) {
        double g = lp->cside[r] - lp->w[q];
        for (size_t k = 0; g != 0.0 && k < nnz; k++) {
            if (lp->nz[k] < lp->n)
                lp->w[lp->nz[k]] += g * pr[lp->nz[k]];
        }
        lp->w[q] = lp->cside[r];
    }
    for (size_t i = 0; i < lp->m; i++) {
        double *pi = row_of(lp, i), f = pi[q];

        if (i == r || f == 0.0)
            continue;
        for (size_t k = 0; k < nnz; k++) {
            size_t c = lp->nz[k];
            double sub = f * pr[c];

            /* Exact zeros keep the rows sparse; an absolute cut-off would
             * add errors of its own size to every pivot. */
            pi[c] -= sub;
            if (fabs(pi[c]) < TOL_ZERO * fabs(sub))
                pi[c] = 0.0;
        }
        pi[q] = 0.0;
    }
    lp->pos[lp->head[r]] = NONBASIC;
    lp->head[r] = q;
    lp->pos[q] = r;
    lp->since_inv++;
}

/* Recomputes every basic value from the nonbasic ones and the tableau's
 * right-hand side, so that step-by-step updates do not drift. */
static void
recompute_values(struct gw_lp *lp)
{
    size_t n = lp->n, nb = 0;

    for (size_t j = 0; j < n; j++) {
        if (lp->pos[j] != NONBASIC)
            continue;
        lp->x[j] = clamp(lp->x[j], lp->lo[j], lp->hi[j]);
        if (lp->x[j] != 0.0 && !lp->frozen[j])
            lp->nz[nb++] = j;
    }
    for (size_t i = 0; i < lp->m; i++) {
        const double *ri = row_of(lp, i);
        double v = ri[n];

        for (size_t k = 0; k < nb; k++)
            v -= ri[lp->nz[k]] * lp->x[lp->nz[k]];
        lp->x[lp->head[i]] = v;
    }
    for (size_t i = 0; i < lp->m; i++)
        if (lp->pos[n + i] == NONBASIC)
            lp->x[n + i] = 0.0;
    lp->moved = false;
}

/* The tableau of the bare rows, with every artificial basic and frozen
 * columns moved to the right-hand side. */
static void
load_rows(struct gw_lp *lp)
{
    size_t n = lp->n;

    if (lp->m)
        memset(lp->tab, 0, lp->m * (n + 1) * sizeof(double));
    for (size_t j = 0; j < n; j++)
        lp->pos[j] = NONBASIC;
    for (size_t i = 0; i < lp->m; i++) {
        double *ri = row_of(lp, i);

        ri[n] = lp->rhs[i];
        for (size_t k = lp->beg[i]; k < lp->beg[i + 1]; k++) {
            size_t j = lp->idx[k];

            if (lp->frozen[j])
                ri[n] -= lp->val[k] * lp->lo[j];
            else
                ri[j] = lp->val[k];
        }
        lp->head[i] = n + i;
        lp->pos[n + i] = i;
    }
}

/* The row, among those whose artificial is still basic, with the largest
 * |entry| in column j; NONBASIC when all are negligible. */
static size_t
best_artificial_row(const struct gw_lp *lp, size_t j)
{
    size_t best = NONBASIC;
    double big = TOL_PIV;

    for (size_t i = 0; i < lp->m; i++) {
        double a = fabs(row_of(lp, i)[j]);

        if (lp->head[i] >= lp->n && a > big) {
            big = a;
            best = i;
        }
    }
    return best;
}

/*
 * Rebuilds the tableau from the rows for the current structural basis
 * (a variable whose column has become dependent drops out, leaving an
 * artificial in its place), then recomputes the values. Also how new rows
 * join: their artificials start basic. Every fixed nonbasic variable is
 * frozen: released cells, most of a table, then cost nothing per pivot.
 */
static int
reinvert(struct gw_lp *lp)
{
    size_t need = lp->m * (lp->n + 1), nb = 0;

    if (need > lp->tab_cap) {
        double *t = malloc(need * sizeof(double));

        if (!t)
            return FQ_ENOMEM;
        free(lp->tab);
        lp->tab = t;
        lp->tab_cap = need;
    }
    for (size_t j = 0; j < lp->n; j++)
        lp->frozen[j] = lp->lo[j] == lp->hi[j];
    for (size_t i = 0; i < lp->tab_rows; i++) {
        if (lp->head[i] < lp->n) {
            lp->basic[nb++] = lp->head[i];
            lp->frozen[lp->head[i]] = 0;
        }
    }
    load_rows(lp);
    for (size_t k = 0; k < nb; k++) {
        size_t r = best_artificial_row(lp, lp->basic[k]);

        if (r != NONBASIC)
            pivot(lp, r, lp->basic[k]);
    }
    lp->tab_rows = lp->m;
    lp->since_inv = 0;
    lp->stale = false;
    lp->w_ok = false;
    recompute_values(lp);
    return 0;
}

/* Reduced costs of the sum of infeasibilities of the basic variables;
 * false when the basis is feasible. */
static bool
price_phase1(struct gw_lp *lp)
{
    bool any = false;

    if (!lp->w_ok || lp->since_w > PRICE_REFRESH) {
        memset(lp->w, 0, lp->n * sizeof(double));
        if (lp->m) /* no rows: not allocated yet */
            memset(lp->cside, 0, lp->m * sizeof(signed char));
        lp->w_ok = true;
        lp->since_w = 0;
    }
    lp->since_w++;
    /* only the rows whose basic variable changed sides since */
    for (size_t i = 0; i < lp->m; i++) {
        const double *ri = row_of(lp, i);
        int c = side(lp, lp->head[i]), dc = c - lp->cside[i];

        any = any || c != 0;
        if (dc == 0)
            continue;
        lp->cside[i] = (signed char)c;
        for (size_t j = 0; j < lp->n; j++)
            if (ri[j] != 0.0)
                lp->w[j] += dc * ri[j];
    }
    /* x[k] moves by -ri[j] per unit of x[j]. */
    for (size_t j = 0; j < lp->n; j++)
        lp->d[j] = -lp->w[j];
    return any;
}

/* Reduced costs of s * x[v] (s = 1 to minimise, -1 to maximise). */
static void
price_phase2(struct gw_lp *lp, size_t v, double s)
{
    memset(lp->d, 0, lp->n * sizeof(double));
    if (lp->pos[v] == NONBASIC) {
        lp->d[v] = s;
        return;
    }
    const double *rv = row_of(lp, lp->pos[v]);

    for (size_t j = 0; j < lp->n; j++)
        lp->d[j] = -s * rv[j];
}

/* The nonbasic variable to move and its direction (+1 up, -1 down), or
 * NONBASIC when none improves: the largest reduced cost, or in Bland mode
 * the smallest index. */
static size_t
choose_entering(const struct gw_lp *lp, int *ret_dir)
{
    size_t best = NONBASIC;
    double score = 0.0;

    for (size_t j = 0; j < lp->n; j++) {
        double dj = lp->d[j];
        int dir;

        if (lp->pos[j] != NONBASIC)
            continue;
        if (dj < -TOL_COST && lp->x[j] < lp->hi[j])
            dir = 1;
        else if (dj > TOL_COST && lp->x[j] > lp->lo[j])
            dir = -1;
        else
            continue;
        if (fabs(dj) > score) {
            score = fabs(dj);
            best = j;
            *ret_dir = dir;
            if (lp->bland)
                break;
        }
    }
    return best;
}

/* Where basic variable k, at rate alpha per unit step, stops: at the bound
 * it is heading for, or for an infeasible one where it becomes feasible;
 * NAN when nothing stops it. */
static double
stop_at(const struct gw_lp *lp, size_t k, double alpha)
{
    double l = lo_of(lp, k), u = hi_of(lp, k);
    int where = side(lp, k);

    if (where < 0)
        return alpha > 0 ? l : NAN;
    if (where > 0)
        return alpha < 0 ? u : NAN;
    return alpha > 0 ? (isfinite(u) ? u : NAN) : (isfinite(l) ? l : NAN);
}

/* Whether row i's basic variable k, stopping after t at rate alpha, should
 * replace the stop found so far. Ties go to a flip, then to the smallest
 * index under Bland, else to the largest |rate| (the steadiest pivot). */
static bool
stops_first(const struct gw_lp *lp, const struct lp_step *st, size_t k,
            double t, double alpha)
{
    double gap = TOL_TIE * fmax(1.0, t);

    if (t < st->t - gap)
        return true;
    if (t > st->t + gap || st->row == NONBASIC)
        return false;
    if (lp->bland)
        return k < lp->head[st->row];
    return fabs(alpha) > st->alpha;
}

/* The ratio test for moving nonbasic q in direction dir. */
static void
ratio_test(const struct gw_lp *lp, size_t q, int dir, struct lp_step *st)
{
    st->row = NONBASIC;
    st->t = dir > 0 ? lp->hi[q] - lp->x[q] : lp->x[q] - lp->lo[q];
    st->target = dir > 0 ? lp->hi[q] : lp->lo[q];
    st->alpha = 0.0;
    for (size_t i = 0; i < lp->m; i++) {
        double a = row_of(lp, i)[q], alpha, target, t;
        size_t k = lp->head[i];

        if (fabs(a) < TOL_PIV)
            continue;
        alpha = -a * dir;
        if (isnan(target = stop_at(lp, k, alpha)))
            continue;
        t = fmax(0.0, (target - lp->x[k]) / alpha);
        if (stops_first(lp, st, k, t, alpha)) {
            st->row = i;
            st->t = t;
            st->target = target;
            st->alpha = fabs(alpha);
        }
    }
}

/* Moves q by dir * st->t, then pivots it in or flips it. A fixed
 * variable that leaves is frozen on the way out. */
static void
take_step(struct gw_lp *lp, size_t q, int dir, const struct lp_step *st)
{
    double delta = dir * st->t;
    size_t k;

    if (delta != 0.0) {
        for (size_t i = 0; i < lp->m; i++) {
            double a = row_of(lp, i)[q];

            if (a != 0.0)
                lp->x[lp->head[i]] -= a * delta;
        }
    }
    if (st->row == NONBASIC) {
        lp->x[q] = st->target;
        return;
    }
    lp->x[q] += delta;
    /* Exactly at the bound it hit, so a nonbasic value is never outside. */
    k = lp->head[st->row];
    lp->x[k] = st->target;
    if (k < lp->n && lp->lo[k] == lp->hi[k]) {
        /* Its column is the unit column of this row: fold it in. */
        row_of(lp, st->row)[k] = 0.0;
        row_of(lp, st->row)[lp->n] -= lp->x[k];
        lp->frozen[k] = 1;
    }
    pivot(lp, st->row, q);
}

/* Dantzig's rule until DEGEN_RUN degenerate steps in a row, then Bland's
 * until the objective moves again: no basis repeats within a run of
 * Bland steps, and none can repeat across a step that improved. */
static void
note_step(struct gw_lp *lp, double t)
{
    if (t > TOL_FEAS) {
        lp->degen = 0;
        lp->bland = false;
    } else if (++lp->degen >= DEGEN_RUN) {
        lp->bland = true;
    }
}

/*
 * Runs phase I (v == NONBASIC) or phase II on s * x[v] to the end, or in
 * phase II until s * x[v] <= s * stop (a feasible point that far).
 * 0 (*ret_unbounded set when phase II is unbounded); FQ_EINVAL when phase
 * I finds no feasible point; FQ_ETOOBIG when *budget runs out;
 * FQ_EINTERNAL when phase I goes unbounded, which only rounding can cause.
 */
static int
simplex(struct gw_lp *lp, size_t v, double s, double stop, size_t *budget,
        bool *ret_unbounded)
{
    struct lp_step st;
    size_t q;
    int dir = 0;

    lp->degen = 0;
    lp->bland = false;
    for (;;) {
        if (v == NONBASIC) {
            if (!price_phase1(lp))
                return 0;
        } else {
            price_phase2(lp, v, s);
        }
        if ((q = choose_entering(lp, &dir)) == NONBASIC)
            return v == NONBASIC ? FQ_EINVAL : 0;
        ratio_test(lp, q, dir, &st);
        if (st.t == INFINITY) {
            if (v == NONBASIC)
                return FQ_EINTERNAL;
            *ret_unbounded = true;
            return 0;
        }
        if (*budget == 0)
            return FQ_ETOOBIG;
        (*budget)--;
        take_step(lp, q, dir, &st);
        note_step(lp, st.t);
        /* far enough for the caller (never when stop is NaN) */
        if (v != NONBASIC && s * lp->x[v] <= s * stop)
            return 0;
    }
}

/*
 * Whether the current point satisfies every row to TOL_CHECK of the size
 * of its terms, and every bound to ten times the feasibility tolerance:
 * the guard against a tableau worn by rounding. Relative to each row, so
 * that a large total elsewhere does not hide an error in a small cell.
 */
static bool
accurate(const struct gw_lp *lp)
{
    for (size_t i = 0; i < lp->m; i++) {
        double r = -lp->rhs[i], size = 1.0 + fabs(lp->rhs[i]);

        for (size_t k = lp->beg[i]; k < lp->beg[i + 1]; k++) {
            double term = lp->val[k] * lp->x[lp->idx[k]];

            r += term;
            size += fabs(term);
        }
        if (fabs(r) > TOL_CHECK * size)
            return false;
    }
    for (size_t j = 0; j < lp->n; j++)
        if (lp->x[j] < lp->lo[j] - 10 * slack(lp->lo[j]) ||
            lp->x[j] > lp->hi[j] + 10 * slack(lp->hi[j]))
            return false;
    return true;
}

/* The optimum of s * x[var] from a feasible basis, as a value of x[var],
 * or a feasible value at least as far as stop in that direction. */
static int
optimum(struct gw_lp *lp, size_t var, double s, double stop, size_t *budget,
        double *ret)
{
    bool unbounded = false;
    int rc;

    if ((rc = simplex(lp, var, s, stop, budget, &unbounded)) < 0)
        return rc;
    if (unbounded) {
        *ret = s > 0 ? -INFINITY : INFINITY;
        return 0;
    }
    if (!accurate(lp))
        return FQ_EINTERNAL;
    *ret = clamp(lp->x[var], lp->lo[var], lp->hi[var]);
    return 0;
}

/* The largest value first, then the smallest; each stops once the two
 * are width apart. */
static int
range_once(struct gw_lp *lp, size_t var, double width, size_t *budget,
           double *ret_lo, double *ret_hi)
{
    bool unbounded = false;
    double x0;
    int rc;

    if ((rc = simplex(lp, NONBASIC, 0.0, NAN, budget, &unbounded)) < 0)
        return rc;
    x0 = clamp(lp->x[var], lp->lo[var], lp->hi[var]);
    if ((rc = optimum(lp, var, -1.0, x0 + width, budget, ret_hi)) < 0)
        return rc;
    if (isfinite(width) && *ret_hi - x0 >= width) {
        *ret_lo = x0;
        return 0;
    }
    return optimum(lp, var, 1.0, *ret_hi - width, budget, ret_lo);
}

int
gw_lp_range_within(struct gw_lp *lp, size_t var, double width, double *ret_lo,
                   double *ret_hi)
{
    size_t budget;
    double lo, hi;
    int rc = 0;

    if (!lp || var >= lp->n || !ret_lo || !ret_hi || isnan(width) || width <= 0)
        return FQ_EINVAL;
    budget = GW_LP_ITERS(lp->m, lp->n);
    /* Rebuilding costs at most m pivots: do it when rows were added, a
     * frozen variable moved, or the pivots since the last rebuild are
     * more than twice that. */
    if (lp->tab_rows != lp->m || lp->stale || lp->since_inv > 2 * lp->m + 100)
        rc = reinvert(lp);
    else if (lp->moved) /* else the last call left them consistent */
        recompute_values(lp);
    if (rc < 0)
        return rc;
    rc = range_once(lp, var, width, &budget, &lo, &hi);
    /* Infeasible or inaccurate on a worn tableau: a rebuilt one decides. */
    if ((rc == FQ_EINVAL || rc == FQ_EINTERNAL) && lp->since_inv > 0) {
        if ((rc = reinvert(lp)) < 0)
            return rc;
        rc = range_once(lp, var, width, &budget, &lo, &hi);
    }
    if (rc < 0)
        return rc;
    *ret_lo = lo;
    *ret_hi = hi;
    return 0;
}

int
gw_lp_range(struct gw_lp *lp, size_t var, double *ret_lo, double *ret_hi)
{
    return gw_lp_range_within(lp, var, INFINITY, ret_lo, ret_hi);
}
