/*
 * Unit tests for the interval solver (gateway/lp.c), against GLPK, an
 * independent solver linked into this test only.
 *
 * Hand-made problems have known answers: a one-way table and the classic
 * 2x2 table with margins, infeasible and unbounded problems, free and
 * fixed variables, bad arguments, the caps. Beale's example and a problem
 * on which Dantzig's rule alone cycles exercise the anti-cycling rule.
 *
 * Random problems: small ones of no particular shape (every interval and
 * every infeasible verdict must match glp_simplex), and hundreds of two-
 * and three-way count tables with all their margins, some cells released,
 * some perturbed by +-2, some suppressed. The LP interval of every
 * suppressed cell must match GLPK's glp_simplex within 1e-6, fresh and
 * again after what a caller does next on the same problem: suppress one
 * more cell, release one, release one inconsistently (infeasible exactly
 * when GLPK says so) and repair it. On two-way tables GLPK's integer
 * optimum (glp_intopt) must match too (the matrix is totally unimodular);
 * on three-way tables it must lie inside the LP interval, and how often it
 * is strictly inside is printed, not failed.
 *
 * The random tests use seed FQ_LP_SEED from the environment if set, else a
 * fixed one, and print the seed of a failing table.
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "lp.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <glpk.h>
#include <math.h>

#define DEFAULT_SEED 20240611u
#define MAX_DIMS     3
#define TOL          1e-6

/* Fails the test with the seed and where, when cond is false. */
#define EXPECT(cond, ...)             \
    do {                              \
        if (!(cond)) {                \
            print_error(__VA_ARGS__); \
            print_error("\n");        \
            fail();                   \
        }                             \
    } while (0)

/* --- helpers over the API ------------------------------------------------ */

static struct gw_lp *
lp_of(size_t n)
{
    struct gw_lp *lp = NULL;

    assert_int_equal(gw_lp_new(n, &lp), 0);
    assert_non_null(lp);
    return lp;
}

static void
row2(struct gw_lp *lp, size_t a, double ca, size_t b, double cb, double rhs)
{
    size_t v[] = {a, b};
    double c[] = {ca, cb};

    assert_int_equal(gw_lp_add_row(lp, v, c, 2, rhs), 0);
}

static bool
same(double a, double b)
{
    if (isinf(a) || isinf(b))
        return a == b;
    return fabs(a - b) <= TOL * fmax(1.0, fabs(b));
}

static void
expect_range(struct gw_lp *lp, size_t var, double lo, double hi)
{
    double l = NAN, h = NAN;

    assert_int_equal(gw_lp_range(lp, var, &l, &h), 0);
    EXPECT(same(l, lo) && same(h, hi), "x%zu: [%g, %g], want [%g, %g]", var, l,
           h, lo, hi);
}

static void
expect_infeasible(struct gw_lp *lp, size_t var)
{
    double l = 42.0, h = 43.0;

    assert_int_equal(gw_lp_range(lp, var, &l, &h), FQ_EINVAL);
    /* ret_* are written only on success. */
    assert_true(l == 42.0 && h == 43.0);
}

/* --- hand-made problems -------------------------------------------------- */

/* cells a, b, c and their total: a + b + c - t = 0. */
static void
test_one_way(void **state)
{
    size_t v[] = {0, 1, 2, 3};
    double c[] = {1, 1, 1, -1};
    struct gw_lp *lp = lp_of(4);

    (void)state;
    assert_int_equal(gw_lp_add_row(lp, v, c, 4, 0.0), 0);
    assert_int_equal(gw_lp_set_bounds(lp, 0, 3, 3), 0);
    assert_int_equal(gw_lp_set_bounds(lp, 1, 5, 5), 0);
    assert_int_equal(gw_lp_set_bounds(lp, 3, 10, 10), 0);
    expect_range(lp, 2, 2, 2); /* one suppressed cell: exact */
    /* A second suppressed cell: both are known only up to the rest. */
    assert_int_equal(gw_lp_set_bounds(lp, 0, 0, INFINITY), 0);
    expect_range(lp, 0, 0, 5);
    expect_range(lp, 2, 0, 5);
    /* The attacker knows a is at least 1 (a noise bound). */
    assert_int_equal(gw_lp_set_bounds(lp, 0, 1, INFINITY), 0);
    expect_range(lp, 2, 0, 4);
    expect_range(lp, 3, 10, 10);
    gw_lp_free(lp);
}

/* [[a b] [c d]] = [[3 5] [4 6]] with row totals 8, 10, column totals 7, 11
 * and total 18 released, the four cells suppressed. */
static struct gw_lp *
two_by_two(void)
{
    struct gw_lp *lp = lp_of(4);

    row2(lp, 0, 1, 1, 1, 8);
    row2(lp, 2, 1, 3, 1, 10);
    row2(lp, 0, 1, 2, 1, 7);
    row2(lp, 1, 1, 3, 1, 11);
    return lp;
}

static void
test_two_by_two(void **state)
{
    struct gw_lp *lp = two_by_two();

    (void)state;
    expect_range(lp, 0, 0, 7);
    expect_range(lp, 1, 1, 8);
    expect_range(lp, 2, 0, 7);
    expect_range(lp, 3, 3, 10);
    /* Noise bounds [a - 2, a + 2] on a tighten everything. */
    assert_int_equal(gw_lp_set_bounds(lp, 0, 1, 5), 0);
    expect_range(lp, 3, 4, 8);
    expect_range(lp, 1, 3, 7);
    /* Releasing d settles the table; suppressing it again reopens it. */
    assert_int_equal(gw_lp_set_bounds(lp, 3, 6, 6), 0);
    expect_range(lp, 0, 3, 3);
    expect_range(lp, 1, 5, 5);
    assert_int_equal(gw_lp_set_bounds(lp, 3, 0, INFINITY), 0);
    assert_int_equal(gw_lp_set_bounds(lp, 0, 0, INFINITY), 0);
    expect_range(lp, 0, 0, 7);
    expect_range(lp, 3, 3, 10);
    gw_lp_free(lp);
}

static void
test_infeasible(void **state)
{
    struct gw_lp *lp = two_by_two();
    double c = 1.0;

    (void)state;
    /* a = 8 contradicts a + c = 7 with c >= 0. */
    assert_int_equal(gw_lp_set_bounds(lp, 0, 8, 8), 0);
    expect_infeasible(lp, 1);
    expect_infeasible(lp, 0);
    /* Repaired, the same problem answers again. */
    assert_int_equal(gw_lp_set_bounds(lp, 0, 3, 3), 0);
    expect_range(lp, 3, 6, 6);
    gw_lp_free(lp);

    lp = lp_of(2);
    row2(lp, 0, 1, 1, 1, -1); /* nonnegative, summing to -1 */
    expect_infeasible(lp, 0);
    assert_int_equal(gw_lp_set_bounds(lp, 1, -3, INFINITY), 0);
    expect_range(lp, 0, 0, 2);
    /* An empty row 0 = 1. */
    assert_int_equal(gw_lp_add_row(lp, NULL, NULL, 0, 1.0), 0);
    expect_infeasible(lp, 0);
    gw_lp_free(lp);

    /* A row of zero coefficients is an empty row. */
    lp = lp_of(1);
    assert_int_equal(gw_lp_add_row(lp, (size_t[]){0}, (double[]){0.0}, 1, c),
                     0);
    expect_infeasible(lp, 0);
    gw_lp_free(lp);
}

static void
test_unbounded_and_free(void **state)
{
    struct gw_lp *lp = lp_of(3);

    (void)state;
    expect_range(lp, 2, 0, INFINITY); /* no rows at all */
    row2(lp, 0, 1, 1, -1, 0);         /* x0 = x1, both >= 0 */
    expect_range(lp, 0, 0, INFINITY);
    assert_int_equal(gw_lp_set_bounds(lp, 1, -INFINITY, INFINITY), 0);
    assert_int_equal(gw_lp_set_bounds(lp, 0, -INFINITY, 4), 0);
    expect_range(lp, 1, -INFINITY, 4);
    assert_int_equal(gw_lp_set_bounds(lp, 2, -INFINITY, INFINITY), 0);
    expect_range(lp, 2, -INFINITY, INFINITY);
    gw_lp_free(lp);

    /* Free variables pinned by the rows: x0 - x1 = 1, x0 + x1 = 5. */
    lp = lp_of(2);
    assert_int_equal(gw_lp_set_bounds(lp, 0, -INFINITY, INFINITY), 0);
    assert_int_equal(gw_lp_set_bounds(lp, 1, -INFINITY, INFINITY), 0);
    row2(lp, 0, 1, 1, -1, 1);
    expect_range(lp, 0, -INFINITY, INFINITY);
    row2(lp, 0, 1, 1, 1, 5);
    expect_range(lp, 0, 3, 3);
    expect_range(lp, 1, 2, 2);
    gw_lp_free(lp);

    /* x0 free, x1 in [-2, 2], x0 + x1 = 4. */
    lp = lp_of(2);
    assert_int_equal(gw_lp_set_bounds(lp, 0, -INFINITY, INFINITY), 0);
    assert_int_equal(gw_lp_set_bounds(lp, 1, -2, 2), 0);
    row2(lp, 0, 1, 1, 1, 4);
    expect_range(lp, 0, 2, 6);
    gw_lp_free(lp);
}

static void
test_fixed(void **state)
{
    struct gw_lp *lp = lp_of(3);

    (void)state;
    assert_int_equal(gw_lp_set_bounds(lp, 0, 7, 7), 0);
    expect_range(lp, 0, 7, 7);
    assert_int_equal(gw_lp_set_bounds(lp, 1, -2.5, -2.5), 0);
    row2(lp, 1, 2, 2, 1, 0); /* 2 * x1 + x2 = 0 */
    expect_range(lp, 2, 5, 5);
    expect_range(lp, 1, -2.5, -2.5);
    /* Scaled rows: 0.001 * x0 + 0.002 * x2 = 0.017. */
    row2(lp, 0, 0.001, 2, 0.002, 0.017);
    expect_range(lp, 2, 5, 5);
    gw_lp_free(lp);
}

static void
test_bad_arguments(void **state)
{
    struct gw_lp *lp = NULL;
    size_t v[] = {0, 0};
    double c[] = {1, 1}, l = 42.0, h = 43.0;

    (void)state;
    assert_int_equal(gw_lp_new(0, &lp), FQ_EINVAL);
    assert_null(lp);
    gw_lp_free(NULL);
    lp = lp_of(2);
    assert_int_equal(gw_lp_set_bounds(lp, 2, 0, 1), FQ_EINVAL);
    assert_int_equal(gw_lp_set_bounds(lp, 0, 2, 1), FQ_EINVAL);
    assert_int_equal(gw_lp_set_bounds(lp, 0, NAN, 1), FQ_EINVAL);
    assert_int_equal(gw_lp_set_bounds(lp, 0, INFINITY, INFINITY), FQ_EINVAL);
    assert_int_equal(gw_lp_set_bounds(lp, 0, -INFINITY, -INFINITY), FQ_EINVAL);
    assert_int_equal(gw_lp_add_row(lp, v, c, 2, 1.0), FQ_EINVAL); /* twice */
    v[1] = 2;
    assert_int_equal(gw_lp_add_row(lp, v, c, 2, 1.0), FQ_EINVAL);
    v[1] = 1;
    c[1] = INFINITY;
    assert_int_equal(gw_lp_add_row(lp, v, c, 2, 1.0), FQ_EINVAL);
    c[1] = 1.0;
    assert_int_equal(gw_lp_add_row(lp, v, c, 2, NAN), FQ_EINVAL);
    assert_int_equal(gw_lp_range(lp, 2, &l, &h), FQ_EINVAL);
    assert_true(l == 42.0 && h == 43.0);
    /* None of the refused rows was kept: x0 is still unbounded above. */
    expect_range(lp, 0, 0, INFINITY);
    gw_lp_free(lp);
}

static void
test_caps(void **state)
{
    struct gw_lp *lp = NULL;
    size_t v = 0;
    double c = 1.0;
    size_t rows;

    (void)state;
    assert_int_equal(gw_lp_new(GW_LP_MAX_VARS + 1, &lp), FQ_ETOOBIG);
    assert_null(lp);

    lp = lp_of(1);
    for (rows = 0; rows < GW_LP_MAX_ROWS; rows++)
        assert_int_equal(gw_lp_add_row(lp, &v, &c, 1, 1.0), 0);
    assert_int_equal(gw_lp_add_row(lp, &v, &c, 1, 1.0), FQ_ETOOBIG);
    expect_range(lp, 0, 1, 1);
    gw_lp_free(lp);

    /* The widest problem meets the tableau cap before the row cap. */
    lp = lp_of(GW_LP_MAX_VARS);
    for (rows = 0; (rows + 1) * (GW_LP_MAX_VARS + 1) <= GW_LP_MAX_CELLS;
         rows++) {
        v = rows;
        assert_int_equal(gw_lp_add_row(lp, &v, &c, 1, 1.0), 0);
    }
    assert_true(rows < GW_LP_MAX_ROWS);
    assert_int_equal(gw_lp_add_row(lp, &v, &c, 1, 1.0), FQ_ETOOBIG);
    gw_lp_free(lp);
}

/* --- a problem both solvers can load ------------------------------------ */

struct prob {
    size_t n, m, nnz;
    double *lo, *hi, *rhs, *val;
    size_t *beg, *idx;
};

static struct prob *
prob_new(size_t n, size_t max_rows, size_t max_nnz)
{
    struct prob *p = calloc(1, sizeof(*p));

    assert_non_null(p);
    p->n = n;
    p->lo = calloc(n, sizeof(double));
    p->hi = calloc(n, sizeof(double));
    p->rhs = calloc(max_rows, sizeof(double));
    p->beg = calloc(max_rows + 1, sizeof(size_t));
    p->idx = calloc(max_nnz, sizeof(size_t));
    p->val = calloc(max_nnz, sizeof(double));
    assert_true(p->lo && p->hi && p->rhs && p->beg && p->idx && p->val);
    for (size_t j = 0; j < n; j++)
        p->hi[j] = INFINITY;
    return p;
}

static void
prob_free(struct prob *p)
{
    if (!p)
        return;
    free(p->lo);
    free(p->hi);
    free(p->rhs);
    free(p->beg);
    free(p->idx);
    free(p->val);
    free(p);
}

/* Appends a term to the row being built (closed by prob_end_row). */
static void
prob_term(struct prob *p, size_t var, double coef)
{
    p->idx[p->nnz] = var;
    p->val[p->nnz++] = coef;
}

static void
prob_end_row(struct prob *p, double rhs)
{
    p->rhs[p->m++] = rhs;
    p->beg[p->m] = p->nnz;
}

static struct gw_lp *
prob_to_lp(const struct prob *p)
{
    struct gw_lp *lp = lp_of(p->n);

    for (size_t j = 0; j < p->n; j++)
        assert_int_equal(gw_lp_set_bounds(lp, j, p->lo[j], p->hi[j]), 0);
    for (size_t i = 0; i < p->m; i++)
        assert_int_equal(gw_lp_add_row(lp, p->idx + p->beg[i],
                                       p->val + p->beg[i],
                                       p->beg[i + 1] - p->beg[i], p->rhs[i]),
                         0);
    return lp;
}

/* --- GLPK, the oracle ---------------------------------------------------- */

static void
glpk_bounds(glp_prob *g, size_t j, double lo, double hi)
{
    int type = isinf(lo)   ? (isinf(hi) ? GLP_FR : GLP_UP)
               : isinf(hi) ? GLP_LO
               : lo == hi  ? GLP_FX
                           : GLP_DB;

    glp_set_col_bnds(g, (int)j + 1, type, isinf(lo) ? 0.0 : lo,
                     isinf(hi) ? 0.0 : hi);
}

/* The caller owns the problem; release with glp_delete_prob. */
static glp_prob *
glpk_of(const struct prob *p, bool integer)
{
    glp_prob *g = glp_create_prob();
    int *ia = calloc(p->nnz + 1, sizeof(int));
    int *ja = calloc(p->nnz + 1, sizeof(int));
    double *ar = calloc(p->nnz + 1, sizeof(double));

    assert_true(ia && ja && ar);
    glp_add_cols(g, (int)p->n);
    for (size_t j = 0; j < p->n; j++) {
        glpk_bounds(g, j, p->lo[j], p->hi[j]);
        if (integer)
            glp_set_col_kind(g, (int)j + 1, GLP_IV);
    }
    if (p->m)
        glp_add_rows(g, (int)p->m);
    for (size_t i = 0; i < p->m; i++) {
        glp_set_row_bnds(g, (int)i + 1, GLP_FX, p->rhs[i], p->rhs[i]);
        for (size_t k = p->beg[i]; k < p->beg[i + 1]; k++) {
            ia[k + 1] = (int)i + 1;
            ja[k + 1] = (int)p->idx[k] + 1;
            ar[k + 1] = p->val[k];
        }
    }
    glp_load_matrix(g, (int)p->nnz, ia, ja, ar);
    free(ia);
    free(ja);
    free(ar);
    return g;
}

static void
glpk_objective(glp_prob *g, size_t n, size_t var, int dir)
{
    for (size_t j = 0; j < n; j++)
        glp_set_obj_coef(g, (int)j + 1, j == var ? 1.0 : 0.0);
    glp_set_obj_dir(g, dir);
}

/* GLPK's LP optimum of x[var] (dir GLP_MIN or GLP_MAX) in *ret, +-inf when
 * unbounded; 0, or FQ_EINVAL when infeasible. */
static int
glpk_lp(glp_prob *g, size_t n, size_t var, int dir, double *ret)
{
    glp_smcp parm;
    int status;

    glp_init_smcp(&parm);
    parm.msg_lev = GLP_MSG_OFF;
    glpk_objective(g, n, var, dir);
    assert_int_equal(glp_simplex(g, &parm), 0);
    status = glp_get_status(g);
    if (status == GLP_NOFEAS)
        return FQ_EINVAL;
    if (status == GLP_UNBND) {
        *ret = dir == GLP_MIN ? -INFINITY : INFINITY;
        return 0;
    }
    assert_int_equal(status, GLP_OPT);
    *ret = glp_get_col_prim(g, (int)var + 1);
    return 0;
}

/* GLPK's integer optimum, for a bounded feasible LP. */
static double
glpk_ip(glp_prob *g, size_t n, size_t var, int dir)
{
    glp_iocp parm;

    glp_init_iocp(&parm);
    parm.msg_lev = GLP_MSG_OFF;
    parm.presolve = GLP_ON;
    glpk_objective(g, n, var, dir);
    assert_int_equal(glp_intopt(g, &parm), 0);
    assert_int_equal(glp_mip_status(g), GLP_OPT);
    return glp_mip_col_val(g, (int)var + 1);
}

/* --- random count tables ------------------------------------------------- */

enum cell_kind { RELEASED, PERTURBED, SUPPRESSED };

/* What GLPK's integer optimum must be to the LP interval: not computed,
 * equal (two-way tables), or inside it (three-way tables). */
enum ip_check { IP_NONE, IP_EQUAL, IP_INSIDE };

/* A table with all its margins: coordinate size[d] along dimension d is the
 * total over d. Every cell, margins included, is a variable. */
struct table {
    unsigned seed;
    size_t dims, size[MAX_DIMS], ext[MAX_DIMS], n;
    double *value;
    enum cell_kind *kind;
};

struct tally {
    size_t tables, cells, ip_checked, ip_narrower, infeasible, feasible;
};

static uint64_t
rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static size_t
rnd_below(uint64_t *s, size_t n)
{
    return (size_t)(rnd(s) % n);
}

static void
coords(const struct table *t, size_t cell, size_t *c)
{
    for (size_t d = MAX_DIMS; d-- > 0;) {
        c[d] = cell % t->ext[d];
        cell /= t->ext[d];
    }
}

static bool
is_margin(const struct table *t, const size_t *c)
{
    for (size_t d = 0; d < t->dims; d++)
        if (c[d] == t->size[d])
            return true;
    return false;
}

/* Whether margin cell mc sums interior cell ic. */
static bool
covers(const struct table *t, const size_t *mc, const size_t *ic)
{
    for (size_t d = 0; d < t->dims; d++)
        if (mc[d] != t->size[d] && mc[d] != ic[d])
            return false;
    return true;
}

/* True values: interior cells are 0 with probability zeros/100, else
 * 1..20; margins are their sums. */
static void
table_fill(struct table *t, uint64_t *s, unsigned zeros)
{
    size_t mc[MAX_DIMS], ic[MAX_DIMS];

    for (size_t k = 0; k < t->n; k++) {
        coords(t, k, ic);
        t->value[k] = 0.0;
        if (!is_margin(t, ic) && rnd_below(s, 100) >= zeros)
            t->value[k] = (double)(1 + rnd_below(s, 20));
    }
    for (size_t k = 0; k < t->n; k++) {
        coords(t, k, mc);
        if (!is_margin(t, mc))
            continue;
        for (size_t i = 0; i < t->n; i++) {
            coords(t, i, ic);
            if (!is_margin(t, ic) && covers(t, mc, ic))
                t->value[k] += t->value[i];
        }
    }
}

static struct table *
table_new(unsigned seed, size_t dims, size_t max_side, unsigned zeros)
{
    struct table *t = calloc(1, sizeof(*t));
    uint64_t s = seed;

    assert_non_null(t);
    t->seed = seed;
    t->dims = dims;
    t->n = 1;
    for (size_t d = 0; d < MAX_DIMS; d++) {
        t->size[d] = d < dims ? 2 + rnd_below(&s, max_side - 1) : 0;
        t->ext[d] = d < dims ? t->size[d] + 1 : 1;
        t->n *= t->ext[d];
    }
    t->value = calloc(t->n, sizeof(double));
    t->kind = calloc(t->n, sizeof(*t->kind));
    assert_true(t->value && t->kind);
    table_fill(t, &s, zeros);
    return t;
}

static void
table_free(struct table *t)
{
    if (!t)
        return;
    free(t->value);
    free(t->kind);
    free(t);
}

/* What an attacker knows of cell k: its value, a noisy interval around it,
 * or, suppressed, nonnegativity (or a published [1, 10] size class). */
static void
cell_bounds(const struct table *t, size_t k, bool size_class, double *lo,
            double *hi)
{
    double v = t->value[k];

    switch (t->kind[k]) {
    case RELEASED:
        *lo = *hi = v;
        break;
    case PERTURBED:
        *lo = fmax(0.0, v - 2.0);
        *hi = v + 2.0;
        break;
    case SUPPRESSED:
        *lo = size_class && v >= 1.0 && v <= 10.0 ? 1.0 : 0.0;
        *hi = size_class && v >= 1.0 && v <= 10.0 ? 10.0 : INFINITY;
        break;
    }
}

/* The table as a problem: one row per margin cell, margin - sum of the
 * interior cells it covers = 0, so every coefficient is 1 or -1. */
static struct prob *
table_prob(const struct table *t, uint64_t *s)
{
    struct prob *p = prob_new(t->n, t->n, t->n * 9);
    size_t mc[MAX_DIMS], ic[MAX_DIMS];

    for (size_t k = 0; k < t->n; k++) {
        cell_bounds(t, k, rnd_below(s, 2), &p->lo[k], &p->hi[k]);
        coords(t, k, mc);
        if (!is_margin(t, mc))
            continue;
        prob_term(p, k, 1.0);
        for (size_t i = 0; i < t->n; i++) {
            coords(t, i, ic);
            if (!is_margin(t, ic) && covers(t, mc, ic))
                prob_term(p, i, -1.0);
        }
        prob_end_row(p, 0.0);
    }
    return p;
}

/* Kinds drawn with the given percentages of suppressed and released cells
 * (the rest perturbed); at least one cell is suppressed. */
static void
table_kinds(struct table *t, uint64_t *s, unsigned suppressed,
            unsigned released)
{
    for (size_t k = 0; k < t->n; k++) {
        size_t r = rnd_below(s, 100);

        t->kind[k] = r < suppressed              ? SUPPRESSED
                     : r < suppressed + released ? RELEASED
                                                 : PERTURBED;
    }
    t->kind[rnd_below(s, t->n)] = SUPPRESSED;
}

/* Checks every suppressed cell's interval against GLPK's LP, and against
 * its integer optimum as ip says. */
/* gw_lp_range_within: a part of GLPK's interval [glo, ghi], at least
 * the width asked for, or all of it. */
static void
check_within(struct gw_lp *lp, const struct table *t, const char *when,
             size_t k, double glo, double ghi)
{
    double width = 1.0 + (double)(k % 5), lo = NAN, hi = NAN;
    int rc = gw_lp_range_within(lp, k, width, &lo, &hi);

    EXPECT(rc == 0, "seed %u (%s): cell %zu within %g: %s", t->seed, when, k,
           width, fq_strerror(rc));
    EXPECT(lo >= glo - TOL * (1 + fabs(glo)) &&
               hi <= ghi + TOL * (1 + fabs(ghi)) &&
               (hi - lo >= width - TOL || (same(lo, glo) && same(hi, ghi))),
           "seed %u (%s): cell %zu within %g: [%.9g, %.9g], glpk "
           "[%.9g, %.9g]",
           t->seed, when, k, width, lo, hi, glo, ghi);
}

static void
compare_all(struct gw_lp *lp, const struct table *t, const struct prob *p,
            const char *when, enum ip_check ip, struct tally *tl)
{
    glp_prob *g = glpk_of(p, ip != IP_NONE);

    for (size_t k = 0; k < t->n; k++) {
        double lo = NAN, hi = NAN, glo = NAN, ghi = NAN;
        int rc;

        if (t->kind[k] != SUPPRESSED)
            continue;
        rc = gw_lp_range(lp, k, &lo, &hi);
        EXPECT(rc == 0, "seed %u (%s): cell %zu: %s", t->seed, when, k,
               fq_strerror(rc));
        assert_int_equal(glpk_lp(g, p->n, k, GLP_MIN, &glo), 0);
        assert_int_equal(glpk_lp(g, p->n, k, GLP_MAX, &ghi), 0);
        EXPECT(same(lo, glo) && same(hi, ghi),
               "seed %u (%s): cell %zu: [%.9g, %.9g], glpk [%.9g, %.9g]",
               t->seed, when, k, lo, hi, glo, ghi);
        check_within(lp, t, when, k, glo, ghi);
        tl->cells++;
        if (ip != IP_NONE && isfinite(glo) && isfinite(ghi)) {
            double ilo = glpk_ip(g, p->n, k, GLP_MIN);
            double ihi = glpk_ip(g, p->n, k, GLP_MAX);

            tl->ip_checked++;
            if (ip == IP_EQUAL)
                EXPECT(same(lo, ilo) && same(hi, ihi),
                       "seed %u (%s): cell %zu: LP [%g, %g], IP [%g, %g]",
                       t->seed, when, k, lo, hi, ilo, ihi);
            EXPECT(ilo >= lo - TOL && ihi <= hi + TOL,
                   "seed %u (%s): cell %zu: IP [%g, %g] outside [%g, %g]",
                   t->seed, when, k, ilo, ihi, lo, hi);
            if (!same(lo, ilo) || !same(hi, ihi))
                tl->ip_narrower++;
        }
    }
    glp_delete_prob(g);
}

/* A random cell that is (or, with !is, is not) suppressed; SIZE_MAX when
 * there is none. */
static size_t
pick(const struct table *t, uint64_t *s, bool is)
{
    size_t start = rnd_below(s, t->n);

    for (size_t i = 0; i < t->n; i++) {
        size_t k = (start + i) % t->n;

        if ((t->kind[k] == SUPPRESSED) == is)
            return k;
    }
    return SIZE_MAX;
}

/* Moves cell k to a new kind on both the solver and the oracle's copy. */
static void
rekind(struct gw_lp *lp, struct table *t, struct prob *p, size_t k,
       enum cell_kind kind)
{
    t->kind[k] = kind;
    cell_bounds(t, k, false, &p->lo[k], &p->hi[k]);
    assert_int_equal(gw_lp_set_bounds(lp, k, p->lo[k], p->hi[k]), 0);
}

/* Releases cell k one above its true value: GLPK and the solver must agree
 * whether the table is still consistent; then the cell is put right. */
static void
probe_infeasible(struct gw_lp *lp, struct table *t, struct prob *p, size_t k,
                 struct tally *tl)
{
    double v = t->value[k], lo, hi, g_lo = 0.0;
    glp_prob *g;
    int rc, grc;

    t->kind[k] = RELEASED;
    p->lo[k] = p->hi[k] = v + 1.0;
    assert_int_equal(gw_lp_set_bounds(lp, k, v + 1.0, v + 1.0), 0);
    g = glpk_of(p, false);
    grc = glpk_lp(g, p->n, 0, GLP_MIN, &g_lo);
    glp_delete_prob(g);
    rc = gw_lp_range(lp, 0, &lo, &hi);
    EXPECT(rc == grc, "seed %u: cell %zu shifted: %s, glpk %s", t->seed, k,
           fq_strerror(rc), fq_strerror(grc));
    if (rc == 0)
        tl->feasible++;
    else
        tl->infeasible++;
    rekind(lp, t, p, k, RELEASED);
}

/*
 * One random table, then what a caller does next on the same problem:
 * suppress another cell, release a suppressed one, and now and then an
 * inconsistent release that must be reported infeasible (when GLPK says
 * so) and then repaired.
 */
static void
check_table(unsigned seed, size_t dims, size_t max_side, unsigned zeros,
            enum ip_check ip, struct tally *tl)
{
    struct table *t = table_new(seed, dims, max_side, zeros);
    uint64_t s = (uint64_t)seed * 7919u;
    struct prob *p;
    struct gw_lp *lp;
    size_t k;

    table_kinds(t, &s, zeros >= 70 ? 60 : 35, 45);
    p = table_prob(t, &s);
    lp = prob_to_lp(p);
    compare_all(lp, t, p, "fresh", ip, tl);
    if ((k = pick(t, &s, false)) != SIZE_MAX) {
        rekind(lp, t, p, k, SUPPRESSED);
        compare_all(lp, t, p, "one more suppressed", IP_NONE, tl);
    }
    if ((k = pick(t, &s, true)) != SIZE_MAX) {
        rekind(lp, t, p, k, RELEASED);
        compare_all(lp, t, p, "one released", IP_NONE, tl);
    }
    if (seed % 4 == 0 && (k = pick(t, &s, false)) != SIZE_MAX) {
        probe_infeasible(lp, t, p, k, tl);
        compare_all(lp, t, p, "repaired", IP_NONE, tl);
    }
    tl->tables++;
    gw_lp_free(lp);
    prob_free(p);
    table_free(t);
}

static unsigned
base_seed(void)
{
    const char *e = getenv("FQ_LP_SEED");

    return e && *e ? (unsigned)strtoul(e, NULL, 10) : DEFAULT_SEED;
}

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
report(const char *what, const struct tally *tl, double t0)
{
    print_message("%s: %zu tables, %zu cell intervals match GLPK, %zu "
                  "integer intervals checked, %zu narrower than the LP, "
                  "%zu/%zu shifted tables infeasible, %.2f s\n",
                  what, tl->tables, tl->cells, tl->ip_checked, tl->ip_narrower,
                  tl->infeasible, tl->infeasible + tl->feasible, now() - t0);
}

static void
test_random_two_way(void **state)
{
    struct tally tl = {0};
    unsigned seed = base_seed();
    double t0 = now();

    (void)state;
    for (unsigned i = 0; i < 300; i++)
        check_table(seed + i, 2, 7, 25, IP_EQUAL, &tl);
    report("two-way", &tl, t0);
    assert_int_equal(tl.ip_narrower, 0);
}

static void
test_random_three_way(void **state)
{
    struct tally tl = {0};
    unsigned seed = base_seed() + 100000u;
    double t0 = now();

    (void)state;
    for (unsigned i = 0; i < 200; i++)
        check_table(seed + i, 3, 4, 25, IP_INSIDE, &tl);
    report("three-way", &tl, t0);
}

/* Mostly zero tables: vertices with many basic variables at 0, where a
 * simplex without an anti-cycling rule can loop. */
static void
test_random_degenerate(void **state)
{
    struct tally tl = {0};
    unsigned seed = base_seed() + 200000u;
    double t0 = now();

    (void)state;
    for (unsigned i = 0; i < 100; i++)
        check_table(seed + i, 2 + i % 2, i % 2 ? 4 : 8, 85, IP_NONE, &tl);
    report("degenerate", &tl, t0);
}

/* Bigger tables: longer pivot sequences, tableau rebuilds along the way. */
static void
test_larger_tables(void **state)
{
    struct tally tl = {0};
    unsigned seed = base_seed() + 300000u;
    double t0 = now();

    (void)state;
    check_table(seed, 2, 40, 30, IP_NONE, &tl);
    check_table(seed + 1, 3, 9, 30, IP_NONE, &tl);
    check_table(seed + 2, 3, 9, 80, IP_NONE, &tl);
    report("larger", &tl, t0);
}

/* An all-zero three-way table with every interior cell suppressed: the
 * released margins pin every cell to 0 through a fully degenerate
 * polytope. */
static void
test_all_zero(void **state)
{
    struct table *t = table_new(7, 3, 4, 100);
    uint64_t s = 1;
    size_t c[MAX_DIMS];
    struct prob *p;
    struct gw_lp *lp;

    (void)state;
    for (size_t k = 0; k < t->n; k++) {
        coords(t, k, c);
        t->kind[k] = is_margin(t, c) ? RELEASED : SUPPRESSED;
    }
    p = table_prob(t, &s);
    lp = prob_to_lp(p);
    for (size_t k = 0; k < t->n; k++)
        expect_range(lp, k, 0, 0);
    gw_lp_free(lp);
    prob_free(p);
    table_free(t);
}

/* Loads a dense matrix with right-hand sides; the caller frees. */
static struct prob *
prob_dense(size_t m, size_t n, const double *a, const double *rhs)
{
    struct prob *p = prob_new(n, m, m * n);

    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++)
            if (a[i * n + j] != 0.0)
                prob_term(p, j, a[i * n + j]);
        prob_end_row(p, rhs[i]);
    }
    return p;
}

/* Every variable's interval, in order, against GLPK's. */
static void
compare_each(struct gw_lp *lp, const struct prob *p)
{
    glp_prob *g = glpk_of(p, false);
    double lo, hi;

    for (size_t k = 0; k < p->n; k++) {
        assert_int_equal(glpk_lp(g, p->n, k, GLP_MIN, &lo), 0);
        assert_int_equal(glpk_lp(g, p->n, k, GLP_MAX, &hi), 0);
        expect_range(lp, k, lo, hi);
    }
    glp_delete_prob(g);
}

/*
 * Beale's example, the classic on which Dantzig's rule with a naive tie
 * rule cycles: minimise z = -3/4 x4 + 20 x5 - 1/2 x6 + 6 x7 subject to
 *   1/4 x4 -  8 x5 -     x6 + 9 x7 + x1 = 0
 *   1/2 x4 - 12 x5 - 1/2 x6 + 3 x7 + x2 = 0
 *                        x6        + x3 = 1,  x >= 0,
 * with z (x[7] here) a free variable tied to the objective by a fourth
 * row. The optimum is -5/4.
 */
static void
test_beale(void **state)
{
    static const double a[4][8] = {
        {1, 0, 0, 0.25, -8, -1, 9, 0},
        {0, 1, 0, 0.5, -12, -0.5, 3, 0},
        {0, 0, 1, 0, 0, 1, 0, 0},
        {0, 0, 0, 0.75, -20, 0.5, -6, 1},
    };
    static const double rhs[4] = {0, 0, 1, 0};
    struct prob *p = prob_dense(4, 8, &a[0][0], rhs);
    struct gw_lp *lp;

    (void)state;
    p->lo[7] = -INFINITY;
    lp = prob_to_lp(p);
    expect_range(lp, 7, -1.25, INFINITY);
    compare_each(lp, p);
    gw_lp_free(lp);
    prob_free(p);
}

/*
 * Found by a search over small random problems: with all right-hand sides
 * 0 every basis is the same degenerate vertex, and once x0 and x1 have
 * been ranged, Dantzig's rule alone (the Bland fallback disabled) cycles
 * on x2 until the iteration cap. The fallback must end it, and every
 * interval must match GLPK's.
 */
static void
test_cycling(void **state)
{
    static const double a[4][9] = {
        {0.5, 0, 0, 3, -1, -2, 0, 0.25, 0},
        {-0.25, -0.25, 8, 9, 0.25, 12, -0.25, 20, 0},
        {0, 0.5, -0.25, 0, -0.5, -2, 0, 2, 0},
        {-0.25, 0, 12, 12, 20, -12, -8, 1, 1},
    };
    static const double rhs[4] = {0, 0, 0, 0};
    struct prob *p = prob_dense(4, 9, &a[0][0], rhs);
    struct gw_lp *lp;

    (void)state;
    p->lo[8] = -INFINITY;
    lp = prob_to_lp(p);
    compare_each(lp, p);
    gw_lp_free(lp);
    prob_free(p);
}

/* Bounds of every kind: [0, inf), free, [-5, 5], fixed, (-inf, 3],
 * [1, 4]. */
static void
general_bounds(struct prob *p, size_t j, uint64_t *s)
{
    static const double lo[] = {0, -INFINITY, -5, 2, -INFINITY, 1};
    static const double hi[] = {INFINITY, INFINITY, 5, 2, 3, 4};
    size_t b = rnd_below(s, 6);

    p->lo[j] = lo[b];
    p->hi[j] = hi[b];
}

/*
 * Random small problems of no particular shape: free, half-bounded, boxed
 * and fixed variables, coefficients in {-2, -1, -1/2, 1/2, 1, 2}, integer
 * right-hand sides. Every variable's interval, or the verdict that there
 * is none, must match GLPK's.
 */
static void
test_random_general(void **state)
{
    static const double coefs[] = {-2, -1, -0.5, 0.5, 1, 2};
    uint64_t s = base_seed() + 400000u;
    size_t infeasible = 0, unbounded = 0, checked = 0;

    (void)state;
    for (unsigned t = 0; t < 400; t++) {
        size_t n = 2 + rnd_below(&s, 10), m = 1 + rnd_below(&s, 6);
        struct prob *p = prob_new(n, m, m * n);
        struct gw_lp *lp;
        glp_prob *g;

        for (size_t j = 0; j < n; j++)
            general_bounds(p, j, &s);
        for (size_t i = 0; i < m; i++) {
            for (size_t j = 0; j < n; j++)
                if (rnd_below(&s, 2))
                    prob_term(p, j, coefs[rnd_below(&s, 6)]);
            prob_end_row(p, (double)rnd_below(&s, 11) - 5.0);
        }
        lp = prob_to_lp(p);
        g = glpk_of(p, false);
        for (size_t k = 0; k < n; k++) {
            double lo = NAN, hi = NAN, glo = NAN, ghi = NAN;
            int grc = glpk_lp(g, n, k, GLP_MIN, &glo);
            int rc = gw_lp_range(lp, k, &lo, &hi);

            if (grc == 0)
                assert_int_equal(glpk_lp(g, n, k, GLP_MAX, &ghi), 0);
            EXPECT(rc == grc && (rc < 0 || (same(lo, glo) && same(hi, ghi))),
                   "problem %u (seed %u), x%zu: %s [%g, %g], glpk %s [%g, %g]",
                   t, base_seed(), k, fq_strerror(rc), lo, hi, fq_strerror(grc),
                   glo, ghi);
            checked++;
            infeasible += rc < 0;
            unbounded += rc == 0 && (isinf(lo) || isinf(hi));
        }
        glp_delete_prob(g);
        gw_lp_free(lp);
        prob_free(p);
    }
    print_message("general: %zu intervals match GLPK (%zu infeasible, %zu "
                  "unbounded)\n",
                  checked, infeasible, unbounded);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_way),
        cmocka_unit_test(test_two_by_two),
        cmocka_unit_test(test_infeasible),
        cmocka_unit_test(test_unbounded_and_free),
        cmocka_unit_test(test_fixed),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_beale),
        cmocka_unit_test(test_cycling),
        cmocka_unit_test(test_all_zero),
        cmocka_unit_test(test_random_general),
        cmocka_unit_test(test_random_two_way),
        cmocka_unit_test(test_random_three_way),
        cmocka_unit_test(test_random_degenerate),
        cmocka_unit_test(test_larger_tables),
    };

    glp_term_out(GLP_OFF);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
