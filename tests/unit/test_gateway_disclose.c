/*
 * Unit tests for the gateway's disclosure rules on a pooled table
 * (gateway/disclose.c): each rule suppresses what it must and nothing
 * else (primary, zeros, dominance with the n and p% rules, derived
 * statistics, structural zeros, the insider rule on counts and on
 * magnitudes), and perturbation is consistent (same contributors and
 * value, same release), bounded (within D, never below k, rounded to the
 * base) and keyed by the cell key. Expected values are worked out by hand
 * from the rules as documented, not from the code.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/policy.h"
#include "fq/ptable.h"
#include "disclose.h"
#include "gateway.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "fedq/v1/gateway.pb-c.h"

#define K 11

struct fx {
    struct fq_arena *a;
    Fedq__V1__Dataset ds;
    Fedq__V1__Column cols[2];
    Fedq__V1__Column *colp[2];
    Fedq__V1__IntRange bounds;
    Fedq__V1__Plan plan;
    Fedq__V1__Aggregate aggs[4];
    Fedq__V1__Aggregate *aggp[4];
    Fedq__V1__Literal edges[2];
    Fedq__V1__Literal *edgep[2];
    struct gw_rules rules;
    struct gw_perturb_conf pc;
};

/* dataset: wages (integer measure, bounds [0, 1000]); plan: COUNT(*),
 * SUM(wages), AVG(wages), HISTOGRAM(wages, 0, 100). */
static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (!f || !(f->a = fq_arena_new(16 << 20)))
        return -1;
    fedq__v1__dataset__init(&f->ds);
    fedq__v1__int_range__init(&f->bounds);
    f->bounds.min = 0;
    f->bounds.max = 1000;
    for (int i = 0; i < 2; i++) {
        fedq__v1__column__init(&f->cols[i]);
        f->colp[i] = &f->cols[i];
    }
    f->cols[0].name = "wages";
    f->cols[0].role = FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_MEASURE;
    f->cols[0].type = FEDQ__V1__VALUE_TYPE__VALUE_TYPE_INTEGER;
    f->cols[0].bounds = &f->bounds;
    f->cols[1].name = "town";
    f->cols[1].role = FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_DIMENSION;
    f->cols[1].type = FEDQ__V1__VALUE_TYPE__VALUE_TYPE_TEXT;
    f->ds.columns = f->colp;
    f->ds.n_columns = 2;
    fedq__v1__plan__init(&f->plan);
    static const int kinds[4] = {
        FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT,
        FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM,
        FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_AVG,
        FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM};
    for (int i = 0; i < 4; i++) {
        fedq__v1__aggregate__init(&f->aggs[i]);
        f->aggs[i].kind = kinds[i];
        f->aggs[i].column = i ? "wages" : "";
        f->aggp[i] = &f->aggs[i];
    }
    for (int i = 0; i < 2; i++) {
        fedq__v1__literal__init(&f->edges[i]);
        f->edges[i].value_case = FEDQ__V1__LITERAL__VALUE_INT_VALUE;
        f->edges[i].int_value = i * 100;
        f->edgep[i] = &f->edges[i];
    }
    f->aggs[3].edges = f->edgep;
    f->aggs[3].n_edges = 2;
    f->plan.aggregates = f->aggp;
    f->plan.n_aggregates = 4;
    f->plan.n_group_by = 1;
    f->pc = (struct gw_perturb_conf){
        .max_deviation = 2, .variance = 1.0, .magnitude_percent = 5};
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    gw_rules_release(&f->rules);
    fq_arena_free(f->a);
    free(f);
    return 0;
}

/* The defaults of a policy, with the given perturbation, made ready. */
static void
rules(struct fx *f, bool perturb, int64_t rounding)
{
    struct fq_policy_release rel = {
        .min_cell_count = K,
        .dominance_min_units = FQ_POLICY_DOMINANCE_UNITS_DEFAULT,
        .dominance_top_percent = FQ_POLICY_DOMINANCE_PERCENT_DEFAULT,
        .protection_level = FQ_POLICY_PROTECTION_DEFAULT,
        .protection_percent = FQ_POLICY_PROTECTION_PCT_DEFAULT,
        .perturbation =
            perturb ? FQ_POLICY_PERTURB_CELL_KEY : FQ_POLICY_PERTURB_NONE,
        .rounding_base = rounding,
        .decimals = 2};
    char err[256];

    gw_rules_release(&f->rules);
    gw_rules_init(&f->rules, K);
    gw_rules_tighten(&f->rules, &rel);
    assert_int_equal(gw_rules_ready(&f->rules, &f->pc, err, sizeof(err)), 0);
}

/* A group of town t: n contributors and records, a sum with units of the
 * given totals (largest first), bins of n contributors each. */
struct spec {
    int64_t n, records;
    uint32_t ck;
    const double *units;
    size_t n_units;
    int64_t bins[3];
};

static Fedq__V1__AggregateState *
state(struct fx *f, const struct spec *s, int kind)
{
    Fedq__V1__AggregateState *st = fq_arena_alloc(f->a, sizeof(*st));
    fedq__v1__aggregate_state__init(st);
    st->contributors = s->n;
    st->cell_key = s->ck;
    st->count = s->records;
    for (size_t u = 0; u < s->n_units; u++) {
        double v = s->units[u];
        st->int_sum += (int64_t)v;
        st->abs_total += fabs(v);
        st->units++;
        if (fabs(v) > st->top1) {
            st->top2 = st->top1;
            st->top1 = fabs(v);
        } else if (fabs(v) > st->top2) {
            st->top2 = fabs(v);
        }
    }
    if (kind == 3) {
        st->n_bins = st->n_bin_contributors = st->n_bin_cell_keys = 3;
        st->bins = fq_arena_alloc(f->a, 3 * sizeof(int64_t));
        st->bin_contributors = fq_arena_alloc(f->a, 3 * sizeof(int64_t));
        st->bin_cell_keys = fq_arena_alloc(f->a, 3 * sizeof(uint32_t));
        for (int b = 0; b < 3; b++) {
            st->bins[b] = st->bin_contributors[b] = s->bins[b];
            st->bin_cell_keys[b] = s->ck + (uint32_t)b;
        }
        st->count = s->bins[0] + s->bins[1] + s->bins[2];
    }
    return st;
}

static Fedq__V1__PartialGroup *
group(struct fx *f, const char *town, const struct spec *s)
{
    Fedq__V1__PartialGroup *g = fq_arena_alloc(f->a, sizeof(*g));
    Fedq__V1__Literal *k = fq_arena_alloc(f->a, sizeof(*k));

    fedq__v1__partial_group__init(g);
    fedq__v1__literal__init(k);
    k->value_case = FEDQ__V1__LITERAL__VALUE_TEXT_VALUE;
    k->text_value = (char *)town;
    g->key = fq_arena_alloc(f->a, sizeof(void *));
    g->key[0] = k;
    g->n_key = 1;
    g->records = s->records;
    g->contributors = s->n;
    g->n_aggregates = 4;
    g->aggregates = fq_arena_alloc(f->a, 4 * sizeof(void *));
    for (int i = 0; i < 4; i++)
        g->aggregates[i] = state(f, s, i);
    return g;
}

/* Columns: town, COUNT(*), SUM, AVG, the three bins. */
static const struct gw_column columns[] = {
    {.stat = GW_STAT_KEY, .key = 0},
    {.stat = GW_STAT_RECORDS, .agg = 0},
    {.stat = GW_STAT_SUM, .agg = 1},
    {.stat = GW_STAT_MEAN, .agg = 2},
    {.stat = GW_STAT_RECORDS, .agg = 3, .bin = 0, .is_bin = true},
    {.stat = GW_STAT_RECORDS, .agg = 3, .bin = 1, .is_bin = true},
    {.stat = GW_STAT_RECORDS, .agg = 3, .bin = 2, .is_bin = true},
};
#define N_COLS  (sizeof(columns) / sizeof(columns[0]))
#define C_COUNT 1
#define C_SUM   2
#define C_MEAN  3
#define C_BIN0  4

/* Runs the rules on pooled groups (and their parts, n_parts per group). */
static struct gw_table
run(struct fx *f, Fedq__V1__PartialGroup **groups, size_t n,
    const Fedq__V1__PartialGroup **own, size_t n_parts)
{
    struct gw_disclose_in in = {.plan = &f->plan,
                                .ds = &f->ds,
                                .rules = &f->rules,
                                .cols = columns,
                                .n_cols = N_COLS,
                                .groups = groups,
                                .n_groups = n,
                                .own = own,
                                .n_parts = n_parts};
    struct gw_table t;
    assert_int_equal(gw_disclose(&in, f->a, &t), 0);
    assert_int_equal(t.n_rows, n);
    return t;
}

static const struct gw_cell *
cell(const struct gw_table *t, size_t row, size_t col)
{
    return &t->cells[row * t->n_cols + col];
}

static bool
hidden(const struct gw_table *t, size_t row, size_t col, int reason)
{
    const struct gw_cell *c = cell(t, row, col);
    return c->reason == reason &&
           c->out->status == FEDQ__V1__CELL_STATUS__CELL_STATUS_SUPPRESSED &&
           c->out->value_case == FEDQ__V1__CELL__VALUE__NOT_SET;
}

static const double spread_units[] = {100, 90, 80, 70, 60, 50,
                                      40,  30, 20, 10, 5,  5};

/* Exact release: counts and sums as they are; small groups hidden whole;
 * small bins hidden alone; an empty bin is 0, or not applicable when the
 * column's bounds exclude it (bin (-inf, 0) of wages >= 0). */
static void
test_primary(void **state)
{
    struct fx *f = *state;
    struct spec big = {12, 20, 7, spread_units, 12, {0, 3, 9}};
    struct spec tiny = {10, 10, 9, spread_units, 10, {0, 10, 0}};
    struct spec empty = {12, 12, 5, spread_units, 12, {0, 0, 12}};
    Fedq__V1__PartialGroup *g[] = {group(f, "A", &big), group(f, "B", &tiny),
                                   group(f, "C", &empty)};

    rules(f, false, 1);
    struct gw_table t = run(f, g, 3, NULL, 1);
    assert_int_equal(cell(&t, 0, C_COUNT)->out->int_value, 20);
    assert_int_equal(cell(&t, 0, C_COUNT)->out->status,
                     FEDQ__V1__CELL_STATUS__CELL_STATUS_EXACT);
    assert_int_equal(cell(&t, 0, C_SUM)->out->int_value, 560);
    /* AVG from 560 / 20, rounded to two decimals */
    assert_true(cell(&t, 0, C_MEAN)->out->decimal_value == 28.0);
    assert_int_equal(cell(&t, 0, C_MEAN)->out->status,
                     FEDQ__V1__CELL_STATUS__CELL_STATUS_ROUNDED);
    /* bins: (-inf,0) structural, [0,100) of 3 hidden, [100,inf) of 9
     * hidden */
    assert_int_equal(cell(&t, 0, C_BIN0)->out->status,
                     FEDQ__V1__CELL_STATUS__CELL_STATUS_NOT_APPLICABLE);
    assert_true(hidden(&t, 0, C_BIN0 + 1, GW_REASON_PRIMARY));
    assert_true(hidden(&t, 0, C_BIN0 + 2, GW_REASON_PRIMARY));
    for (size_t c = C_COUNT; c < N_COLS; c++)
        assert_true(hidden(&t, 1, c, GW_REASON_PRIMARY));
    /* key cells are always released */
    assert_string_equal(cell(&t, 1, 0)->out->text_value, "B");
    assert_int_equal(cell(&t, 2, C_BIN0 + 1)->out->int_value, 0);
    assert_int_equal(cell(&t, 2, C_BIN0 + 2)->out->int_value, 12);
}

/* Zeros suppressed where a policy says so; a structural zero is still
 * not applicable. */
static void
test_zero_cells(void **state)
{
    struct fx *f = *state;
    struct spec empty = {12, 12, 5, spread_units, 12, {0, 0, 12}};
    Fedq__V1__PartialGroup *g[] = {group(f, "C", &empty)};
    struct fq_policy_release rel = {.min_cell_count = K,
                                    .zero_cells = FQ_POLICY_ZERO_SUPPRESS,
                                    .dominance_min_units = 3,
                                    .dominance_top_percent = 80,
                                    .perturbation = FQ_POLICY_PERTURB_NONE,
                                    .rounding_base = 1,
                                    .decimals = 2};

    rules(f, false, 1);
    gw_rules_tighten(&f->rules, &rel);
    assert_true(f->rules.suppress_zero);
    struct gw_table t = run(f, g, 1, NULL, 1);
    assert_int_equal(cell(&t, 0, C_BIN0)->out->status,
                     FEDQ__V1__CELL_STATUS__CELL_STATUS_NOT_APPLICABLE);
    assert_true(hidden(&t, 0, C_BIN0 + 1, GW_REASON_ZERO));
    assert_int_equal(cell(&t, 0, C_BIN0 + 2)->out->int_value, 12);
}

/* Dominance: fewer than 3 units; the largest at 80 % or more; the p%
 * rule; a spread sum passes. COUNT(*) is not a magnitude. */
static void
test_dominance(void **state)
{
    struct fx *f = *state;
    static const double two[] = {500, 400};
    static const double one_big[] = {800, 50, 50, 50, 50};
    static const double p_case[] = {100, 95, 2, 1, 1, 1};
    struct spec s2 = {12, 12, 1, two, 2, {0, 12, 0}};
    struct spec s80 = {12, 12, 2, one_big, 5, {0, 12, 0}};
    struct spec sp = {12, 12, 3, p_case, 6, {0, 12, 0}};
    struct spec ok = {12, 12, 4, spread_units, 12, {0, 12, 0}};
    Fedq__V1__PartialGroup *g[] = {group(f, "A", &s2), group(f, "B", &s80),
                                   group(f, "C", &sp), group(f, "D", &ok)};

    rules(f, false, 1);
    struct gw_table t = run(f, g, 4, NULL, 1);
    assert_true(hidden(&t, 0, C_SUM, GW_REASON_DOMINANCE));
    assert_true(hidden(&t, 0, C_MEAN, GW_REASON_DOMINANCE));
    assert_int_equal(cell(&t, 0, C_COUNT)->reason, GW_REASON_NONE);
    assert_true(hidden(&t, 1, C_SUM, GW_REASON_DOMINANCE)); /* 800/1000 */
    /* 100 / 200 = 50 %: passes 80/3, fails p = 10 %: 200 - 100 - 95 = 5 <
     * 10 % of 100 */
    assert_int_equal(cell(&t, 2, C_SUM)->reason, GW_REASON_NONE);
    assert_int_equal(cell(&t, 3, C_SUM)->reason, GW_REASON_NONE);
    f->rules.p_percent = 10;
    t = run(f, g, 4, NULL, 1);
    assert_true(hidden(&t, 2, C_SUM, GW_REASON_DOMINANCE));
    assert_int_equal(cell(&t, 3, C_SUM)->reason, GW_REASON_NONE);
}

/* A mean at the column's bound tells every value. */
static void
test_derived(void **state)
{
    struct fx *f = *state;
    struct spec s = {12, 12, 1, spread_units, 12, {0, 12, 0}};
    Fedq__V1__PartialGroup *g[] = {group(f, "A", &s)};

    rules(f, false, 1);
    /* all at 0: the sum is 0 and undominated (no abs total), the mean 0 */
    g[0]->aggregates[1]->int_sum = g[0]->aggregates[2]->int_sum = 0;
    g[0]->aggregates[2]->abs_total = 0;
    g[0]->aggregates[2]->top1 = g[0]->aggregates[2]->top2 = 0;
    struct gw_table t = run(f, g, 1, NULL, 1);
    assert_true(hidden(&t, 0, C_MEAN, GW_REASON_DERIVED));
}

/* The insider rule: two agencies; the rest besides one agency's part
 * must pass, for the group (whole row), a bin, and a magnitude's units. */
static void
test_insider(void **state)
{
    struct fx *f = *state;
    static const double many[] = {10, 10, 10, 10, 10, 10, 10, 10, 10,
                                  10, 10, 10, 10, 10, 10, 10, 10, 10};
    static const double pooled_u[] = {10, 10, 10, 10, 10, 10, 10, 10, 10,  10,
                                      10, 10, 10, 10, 10, 10, 10, 10, 300, 10};
    static const double other[] = {300, 10};
    /* row A: 12 + 5 contributors: the rest besides the first agency is 5 */
    struct spec a_pool = {17, 17, 1, many, 17, {0, 17, 0}};
    struct spec a1 = {12, 12, 1, many, 12, {0, 12, 0}};
    struct spec a2 = {5, 5, 1, many, 5, {0, 5, 0}};
    /* row B: 18 + 12 contributors, the counts pass; the second agency's
     * units are two (300 and 10): besides the first agency the rest is
     * dominated */
    struct spec b_pool = {30, 30, 2, pooled_u, 20, {0, 30, 0}};
    struct spec b1 = {18, 18, 2, many, 18, {0, 18, 0}};
    struct spec b2 = {12, 12, 2, other, 2, {0, 12, 0}};
    Fedq__V1__PartialGroup *g[] = {group(f, "A", &a_pool),
                                   group(f, "B", &b_pool)};
    const Fedq__V1__PartialGroup *own[] = {
        group(f, "A", &a1), group(f, "A", &a2), group(f, "B", &b1),
        group(f, "B", &b2)};

    rules(f, false, 1);
    struct gw_table t = run(f, g, 2, own, 2);
    for (size_t c = C_COUNT; c < N_COLS; c++)
        assert_true(hidden(&t, 0, c, GW_REASON_INSIDER));
    assert_int_equal(cell(&t, 1, C_COUNT)->reason, GW_REASON_NONE);
    assert_true(hidden(&t, 1, C_SUM, GW_REASON_INSIDER));
    assert_true(hidden(&t, 1, C_MEAN, GW_REASON_INSIDER));
    assert_int_equal(cell(&t, 1, C_BIN0 + 1)->reason, GW_REASON_NONE);
    /* one agency alone has no insider */
    t = run(f, g + 1, 1, own + 2, 1);
    assert_int_equal(cell(&t, 0, C_SUM)->reason, GW_REASON_NONE);
}

/* Cell-key perturbation: the same cell key and value give the same
 * release; the noise is within D and never takes a value of k or more
 * below k; status perturbed; the attacker's interval holds the truth. */
static void
test_perturbation(void **state)
{
    struct fx *f = *state;
    int moved = 0, seen_k = 0;

    rules(f, true, 1);
    for (uint32_t ck = 1; ck <= 400; ck++) {
        int64_t n = 11 + (int64_t)(ck % 5);
        struct spec s = {n, n, ck * 2654435761u, spread_units, 12, {0, n, 0}};
        Fedq__V1__PartialGroup *g[] = {group(f, "A", &s), group(f, "A", &s)};
        struct gw_table t = run(f, g, 2, NULL, 1);
        const struct gw_cell *c = cell(&t, 0, C_COUNT);
        int64_t v = c->out->int_value;
        assert_int_equal(c->out->status,
                         FEDQ__V1__CELL_STATUS__CELL_STATUS_PERTURBED);
        assert_int_equal(v, cell(&t, 1, C_COUNT)->out->int_value);
        assert_true(v >= K && v >= n - 2 && v <= n + 2);
        assert_true(c->lo <= (double)n && (double)n <= c->hi);
        /* a histogram bin of the same records is the same count: its
         * records and cell key (ck + 1 here) decide, not the column */
        moved += v != n;
        seen_k += n == K;
        /* SUM (560) within 5 % of its largest unit (100) */
        const struct gw_cell *sum = cell(&t, 0, C_SUM);
        assert_true(fabs((double)sum->out->int_value - 560.0) <= 5.0 + 0.5);
    }
    assert_true(moved > 100); /* most values move */
    assert_true(seen_k > 0);
}

/* Consistent rounding to base 5: multiples of 5, never below k. */
static void
test_rounding(void **state)
{
    struct fx *f = *state;

    rules(f, true, 5);
    for (uint32_t ck = 1; ck <= 200; ck++) {
        int64_t n = 11 + (int64_t)(ck % 30);
        struct spec s = {n, n, ck * 40503u, spread_units, 12, {0, n, 0}};
        Fedq__V1__PartialGroup *g[] = {group(f, "A", &s)};
        struct gw_table t = run(f, g, 1, NULL, 1);
        const struct gw_cell *c = cell(&t, 0, C_COUNT);
        assert_int_equal(c->out->status,
                         FEDQ__V1__CELL_STATUS__CELL_STATUS_ROUNDED);
        assert_int_equal(c->out->int_value % 5, 0);
        assert_true(c->out->int_value >= 15);
        assert_true(c->out->int_value <= n + 2 + 4);
        assert_true(c->lo <= (double)n && (double)n <= c->hi);
    }
}

/* The strictest rules win. */
static void
test_tighten(void **state)
{
    (void)state;
    struct gw_rules r;
    struct fq_policy_release a = {.min_cell_count = 11,
                                  .dominance_min_units = 3,
                                  .dominance_top_percent = 80,
                                  .p_percent = 0,
                                  .protection_level = 5,
                                  .perturbation = FQ_POLICY_PERTURB_NONE,
                                  .rounding_base = 1,
                                  .decimals = 2};
    struct fq_policy_release b = a;
    b.min_cell_count = 20;
    b.dominance_top_percent = 60;
    b.p_percent = 15;
    b.perturbation = FQ_POLICY_PERTURB_CELL_KEY;
    b.rounding_base = 3;
    b.decimals = 1;
    gw_rules_init(&r, 11);
    gw_rules_tighten(&r, &a);
    assert_false(r.perturb);
    gw_rules_tighten(&r, &b);
    assert_int_equal(r.k, 20);
    assert_int_equal(r.top_percent, 60);
    assert_int_equal(r.p_percent, 15);
    assert_true(r.perturb);
    assert_int_equal(r.rounding_base, 3);
    assert_int_equal(r.decimals, 1);
    assert_string_equal(gw_reason_name(GW_REASON_INSIDER), "insider");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_primary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_cells, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dominance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_derived, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insider, setup, teardown),
        cmocka_unit_test_setup_teardown(test_perturbation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rounding, setup, teardown),
        cmocka_unit_test(test_tighten),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
