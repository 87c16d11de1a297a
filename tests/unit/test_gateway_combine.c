/*
 * Unit tests for pooling (gateway/combine.c): groups of several agencies
 * merge by key, counters add up, integer overflow is an error, the
 * result comes in key order, and each agency's own group of a pooled key
 * is known.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "gateway.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>

#include "fedq/v1/agent.pb-c.h"
#include "fedq/v1/plan.pb-c.h"

/* A group keyed (text town, int year) with one SUM state. */
static Fedq__V1__PartialGroup *
group(struct fq_arena *a, const char *town, int64_t year, int64_t records,
      int64_t contributors, int64_t sum)
{
    Fedq__V1__PartialGroup *g = fq_arena_alloc(a, sizeof(*g));
    Fedq__V1__Literal *k = fq_arena_alloc(a, 2 * sizeof(*k));
    Fedq__V1__AggregateState *s = fq_arena_alloc(a, sizeof(*s));

    fedq__v1__partial_group__init(g);
    fedq__v1__literal__init(&k[0]);
    fedq__v1__literal__init(&k[1]);
    fedq__v1__aggregate_state__init(s);
    k[0].value_case = FEDQ__V1__LITERAL__VALUE_TEXT_VALUE;
    k[0].text_value = (char *)town;
    k[1].value_case = FEDQ__V1__LITERAL__VALUE_INT_VALUE;
    k[1].int_value = year;
    g->n_key = 2;
    g->key = fq_arena_alloc(a, 2 * sizeof(void *));
    g->key[0] = &k[0];
    g->key[1] = &k[1];
    g->records = records;
    g->contributors = contributors;
    s->count = records;
    s->int_sum = sum;
    g->n_aggregates = 1;
    g->aggregates = fq_arena_alloc(a, sizeof(void *));
    g->aggregates[0] = s;
    return g;
}

/* A plan of n_keys group-by columns and one aggregate of kind. */
static Fedq__V1__Plan *
plan_of(struct fq_arena *a, size_t n_keys, Fedq__V1__Aggregate *ag)
{
    Fedq__V1__Plan *p = fq_arena_alloc(a, sizeof(*p));
    fedq__v1__plan__init(p);
    p->n_group_by = n_keys;
    p->n_aggregates = 1;
    p->aggregates = fq_arena_alloc(a, sizeof(void *));
    p->aggregates[0] = ag;
    return p;
}

static Fedq__V1__Aggregate sum_agg = {
    PROTOBUF_C_MESSAGE_INIT(&fedq__v1__aggregate__descriptor),
    FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM,
    "wages",
    0,
    NULL,
    0};

static Fedq__V1__ExecuteResponse *
part(struct fq_arena *a, Fedq__V1__PartialGroup **groups, size_t n)
{
    Fedq__V1__ExecuteResponse *r = fq_arena_alloc(a, sizeof(*r));
    fedq__v1__execute_response__init(r);
    r->groups = groups;
    r->n_groups = n;
    return r;
}

static void
test_merge_in_key_order(void **state)
{
    struct fq_arena *a = fq_arena_new(1 << 20);
    Fedq__V1__PartialGroup *p1[] = {group(a, "T2", 2020, 5, 4, 100),
                                    group(a, "T1", 2021, 3, 3, 30)};
    Fedq__V1__PartialGroup *p2[] = {group(a, "T2", 2020, 7, 7, 200),
                                    group(a, "T1", 2020, 1, 1, 1),
                                    group(a, "T1", 100, 2, 2, 2)};
    Fedq__V1__ExecuteResponse *parts[] = {part(a, p1, 2), part(a, p2, 3)};
    Fedq__V1__PartialGroup **out;
    size_t n;

    (void)state;
    assert_int_equal(
        gw_combine(a, parts, 2, plan_of(a, 2, &sum_agg), NULL, 100, &out, &n),
        0);
    assert_int_equal(n, 4);
    /* text key first, then the integer key numerically (100 < 2020) */
    assert_string_equal(out[0]->key[0]->text_value, "T1");
    assert_int_equal(out[0]->key[1]->int_value, 100);
    assert_int_equal(out[1]->key[1]->int_value, 2020);
    assert_int_equal(out[2]->key[1]->int_value, 2021);
    assert_string_equal(out[3]->key[0]->text_value, "T2");
    assert_int_equal(out[3]->records, 12);
    assert_int_equal(out[3]->contributors, 11);
    assert_int_equal(out[3]->aggregates[0]->int_sum, 300);
    assert_int_equal(out[3]->aggregates[0]->count, 12);
    /* the agencies' own partials are not modified */
    assert_int_equal(p1[0]->records, 5);
    fq_arena_free(a);
}

static void
test_overflow_and_limits(void **state)
{
    struct fq_arena *a = fq_arena_new(1 << 20);
    Fedq__V1__PartialGroup *p1[] = {group(a, "T1", 1, 1, 1, INT64_MAX)};
    Fedq__V1__PartialGroup *p2[] = {group(a, "T1", 1, 1, 1, 1),
                                    group(a, "T2", 1, 1, 1, 1)};
    Fedq__V1__ExecuteResponse *parts[] = {part(a, p1, 1), part(a, p2, 2)};
    Fedq__V1__PartialGroup **out;
    size_t n;

    (void)state;
    assert_int_equal(
        gw_combine(a, parts, 2, plan_of(a, 2, &sum_agg), NULL, 100, &out, &n),
        FQ_ETOOBIG);
    /* more distinct groups than allowed */
    assert_int_equal(
        gw_combine(a, parts + 1, 1, plan_of(a, 2, &sum_agg), NULL, 1, &out, &n),
        FQ_ETOOBIG);
    /* an answer of the wrong shape */
    assert_int_equal(gw_combine(a, parts + 1, 1, plan_of(a, 1, &sum_agg), NULL,
                                100, &out, &n),
                     FQ_EPROTO);
    fq_arena_free(a);
}

/* (n, mean, M2) pooled exactly: {1,2,3} and {10,20} give {1,2,3,10,20}. */
static void
test_moments(void **state)
{
    struct fq_arena *a = fq_arena_new(1 << 20);
    Fedq__V1__PartialGroup *p1[] = {group(a, "T1", 1, 3, 3, 0)};
    Fedq__V1__PartialGroup *p2[] = {group(a, "T1", 1, 2, 2, 0)};
    Fedq__V1__ExecuteResponse *parts[] = {part(a, p1, 1), part(a, p2, 1)};
    Fedq__V1__PartialGroup **out;
    size_t n;

    (void)state;
    p1[0]->aggregates[0]->mean = 2.0;
    p1[0]->aggregates[0]->m2 = 2.0;
    p2[0]->aggregates[0]->mean = 15.0;
    p2[0]->aggregates[0]->m2 = 50.0;
    assert_int_equal(
        gw_combine(a, parts, 2, plan_of(a, 2, &sum_agg), NULL, 100, &out, &n),
        0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0]->aggregates[0]->count, 5);
    assert_true(fabs(out[0]->aggregates[0]->mean - 7.2) < 1e-12);
    assert_true(fabs(out[0]->aggregates[0]->m2 - 254.8) < 1e-9);
    fq_arena_free(a);
}

static void
set_array(struct fq_arena *a, int64_t **dst, size_t *n, const int64_t *v,
          size_t len)
{
    *dst = fq_arena_alloc(a, len * sizeof(int64_t));
    memcpy(*dst, v, len * sizeof(int64_t));
    *n = len;
}

static void
set_keys(struct fq_arena *a, Fedq__V1__AggregateState *s, const uint32_t *v)
{
    s->bin_cell_keys = fq_arena_alloc(a, 3 * sizeof(uint32_t));
    memcpy(s->bin_cell_keys, v, 3 * sizeof(uint32_t));
    s->n_bin_cell_keys = 3;
}

/* Histogram bins add up bin by bin, values, contributors and cell keys
 * alike; a part with the wrong number of bins is refused. */
static void
test_histogram_bins(void **state)
{
    struct fq_arena *a = fq_arena_new(1 << 20);
    Fedq__V1__Literal e0 = FEDQ__V1__LITERAL__INIT, e1 = e0;
    Fedq__V1__Literal *edges[] = {&e0, &e1};
    Fedq__V1__Aggregate h = FEDQ__V1__AGGREGATE__INIT;
    Fedq__V1__PartialGroup *p1[] = {group(a, "T1", 1, 5, 5, 0)};
    Fedq__V1__PartialGroup *p2[] = {group(a, "T1", 1, 4, 4, 0)};
    Fedq__V1__ExecuteResponse *parts[] = {part(a, p1, 1), part(a, p2, 1)};
    Fedq__V1__AggregateState *s1 = p1[0]->aggregates[0];
    Fedq__V1__AggregateState *s2 = p2[0]->aggregates[0];
    Fedq__V1__PartialGroup **out;
    size_t n;

    (void)state;
    h.kind = FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM;
    h.column = "wages";
    h.edges = edges;
    h.n_edges = 2;
    set_array(a, &s1->bins, &s1->n_bins, (int64_t[]){1, 0, 4}, 3);
    set_array(a, &s1->bin_contributors, &s1->n_bin_contributors,
              (int64_t[]){1, 0, 3}, 3);
    set_array(a, &s2->bins, &s2->n_bins, (int64_t[]){2, 2, 0}, 3);
    set_array(a, &s2->bin_contributors, &s2->n_bin_contributors,
              (int64_t[]){2, 1, 0}, 3);
    set_keys(a, s1, (uint32_t[]){7, 0, 0xFFFFFFF0u});
    set_keys(a, s2, (uint32_t[]){9, 5, 0x20});
    assert_int_equal(
        gw_combine(a, parts, 2, plan_of(a, 2, &h), NULL, 100, &out, &n), 0);
    assert_int_equal(n, 1);
    const Fedq__V1__AggregateState *m = out[0]->aggregates[0];
    assert_int_equal(m->bins[0], 3);
    assert_int_equal(m->bins[1], 2);
    assert_int_equal(m->bins[2], 4);
    assert_int_equal(m->bin_contributors[0], 3);
    assert_int_equal(m->bin_contributors[1], 1);
    /* cell keys add mod 2^32 */
    assert_int_equal(m->bin_cell_keys[0], 16);
    assert_int_equal(m->bin_cell_keys[1], 5);
    assert_int_equal(m->bin_cell_keys[2], 0x10);
    assert_int_equal(s1->bins[0], 1); /* the parts are unchanged */
    assert_int_equal(s1->bin_cell_keys[0], 7);

    s2->n_bins = s2->n_bin_contributors = 2;
    assert_int_equal(
        gw_combine(a, parts, 2, plan_of(a, 2, &h), NULL, 100, &out, &n),
        FQ_EPROTO);
    fq_arena_free(a);
}

static void
set_magnitude(Fedq__V1__AggregateState *s, int64_t contributors, uint32_t ck,
              int64_t units, double top1, double top2, double abs_total)
{
    s->contributors = contributors;
    s->cell_key = ck;
    s->units = units;
    s->top1 = top1;
    s->top2 = top2;
    s->abs_total = abs_total;
}

/* The disclosure fields pool exactly: contributors, units and absolute
 * totals add, cell keys add mod 2^32, the two largest unit totals are the
 * two largest of all agencies'; a part whose fields cannot be true (top2
 * above top1, negative counts) is refused. */
static void
test_disclosure_fields(void **state)
{
    struct fq_arena *a = fq_arena_new(1 << 20);
    Fedq__V1__PartialGroup *p1[] = {group(a, "T1", 1, 5, 5, 100)};
    Fedq__V1__PartialGroup *p2[] = {group(a, "T1", 1, 4, 4, 90)};
    Fedq__V1__PartialGroup *p3[] = {group(a, "T1", 1, 3, 3, 10)};
    Fedq__V1__ExecuteResponse *parts[] = {part(a, p1, 1), part(a, p2, 1),
                                          part(a, p3, 1)};
    Fedq__V1__PartialGroup **out;
    size_t n;

    (void)state;
    set_magnitude(p1[0]->aggregates[0], 5, 0xFFFFFFFFu, 5, 40, 30, 100);
    set_magnitude(p2[0]->aggregates[0], 4, 3, 4, 50, 20, 90);
    set_magnitude(p3[0]->aggregates[0], 3, 7, 2, 35, 35, 70);
    assert_int_equal(
        gw_combine(a, parts, 3, plan_of(a, 2, &sum_agg), NULL, 100, &out, &n),
        0);
    const Fedq__V1__AggregateState *m = out[0]->aggregates[0];
    assert_int_equal(m->contributors, 12);
    assert_int_equal(m->cell_key, 9); /* 0xFFFFFFFF + 3 + 7 mod 2^32 */
    assert_int_equal(m->units, 11);
    assert_true(m->top1 == 50 && m->top2 == 40);
    assert_true(m->abs_total == 260);
    assert_true(p1[0]->aggregates[0]->top1 == 40); /* parts unchanged */

    set_magnitude(p2[0]->aggregates[0], 4, 3, 4, 20, 50, 90);
    assert_int_equal(
        gw_combine(a, parts, 3, plan_of(a, 2, &sum_agg), NULL, 100, &out, &n),
        FQ_EPROTO);
    set_magnitude(p2[0]->aggregates[0], -1, 3, 4, 50, 20, 90);
    assert_int_equal(
        gw_combine(a, parts, 3, plan_of(a, 2, &sum_agg), NULL, 100, &out, &n),
        FQ_EPROTO);
    fq_arena_free(a);
}

static void
set_sketch(struct fq_arena *a, Fedq__V1__AggregateState *s,
           const uint32_t *bins, const int64_t *counts, size_t len)
{
    s->sketch_bins = fq_arena_alloc(a, len * sizeof(uint32_t) + 1);
    memcpy(s->sketch_bins, bins, len * sizeof(uint32_t));
    set_array(a, &s->sketch_counts, &s->n_sketch_counts, counts, len);
    s->n_sketch_bins = len;
}

/* Sparse sketches merge into their union with counts added; malformed
 * ones (unsorted, out of range) are refused. */
static void
test_quantile_sketches(void **state)
{
    struct fq_arena *a = fq_arena_new(1 << 20);
    Fedq__V1__IntRange b = FEDQ__V1__INT_RANGE__INIT;
    Fedq__V1__Column col = FEDQ__V1__COLUMN__INIT;
    Fedq__V1__Column *cols[] = {&col};
    Fedq__V1__Dataset ds = FEDQ__V1__DATASET__INIT;
    Fedq__V1__Aggregate qa = FEDQ__V1__AGGREGATE__INIT;
    Fedq__V1__PartialGroup *p1[] = {group(a, "T1", 1, 3, 3, 0)};
    Fedq__V1__PartialGroup *p2[] = {group(a, "T1", 1, 4, 4, 0)};
    Fedq__V1__ExecuteResponse *parts[] = {part(a, p1, 1), part(a, p2, 1)};
    Fedq__V1__PartialGroup **out;
    size_t n;

    (void)state;
    b.min = 0;
    b.max = 99;
    col.name = "wages";
    col.bounds = &b;
    col.quantile_bins = 10;
    ds.columns = cols;
    ds.n_columns = 1;
    qa.kind = FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE;
    qa.column = "wages";
    qa.fraction = 0.5;
    set_sketch(a, p1[0]->aggregates[0], (uint32_t[]){0, 3, 9},
               (int64_t[]){1, 1, 1}, 3);
    set_sketch(a, p2[0]->aggregates[0], (uint32_t[]){3, 4}, (int64_t[]){2, 2},
               2);
    assert_int_equal(
        gw_combine(a, parts, 2, plan_of(a, 2, &qa), &ds, 100, &out, &n), 0);
    const Fedq__V1__AggregateState *m = out[0]->aggregates[0];
    assert_int_equal(m->n_sketch_bins, 4);
    assert_int_equal(m->sketch_bins[0], 0);
    assert_int_equal(m->sketch_bins[1], 3);
    assert_int_equal(m->sketch_counts[1], 3);
    assert_int_equal(m->sketch_bins[2], 4);
    assert_int_equal(m->sketch_bins[3], 9);
    assert_int_equal(p1[0]->aggregates[0]->n_sketch_bins, 3);

    p2[0]->aggregates[0]->sketch_bins[1] = 10; /* outside 10 bins */
    assert_int_equal(
        gw_combine(a, parts, 2, plan_of(a, 2, &qa), &ds, 100, &out, &n),
        FQ_EPROTO);
    p2[0]->aggregates[0]->sketch_bins[1] = 2; /* not increasing */
    assert_int_equal(
        gw_combine(a, parts, 2, plan_of(a, 2, &qa), &ds, 100, &out, &n),
        FQ_EPROTO);
    /* a sketch where the plan asks for a SUM */
    assert_int_equal(
        gw_combine(a, parts, 2, plan_of(a, 2, &sum_agg), &ds, 100, &out, &n),
        FQ_EPROTO);
    fq_arena_free(a);
}

/* Each agency's own group of every pooled key, in the order of the parts,
 * NULL where an agency has none; a part holding a key twice is refused. */
static void
test_own_parts(void **state)
{
    struct fq_arena *a = fq_arena_new(1 << 20);
    Fedq__V1__PartialGroup *p1[] = {group(a, "T2", 1, 9, 9, 0),
                                    group(a, "T1", 1, 2, 2, 0)};
    Fedq__V1__PartialGroup *p2[] = {group(a, "T3", 1, 4, 4, 0)};
    Fedq__V1__PartialGroup *p3[] = {group(a, "T2", 1, 3, 3, 0),
                                    group(a, "T3", 1, 1, 1, 0)};
    Fedq__V1__ExecuteResponse *parts[] = {part(a, p1, 2), part(a, p2, 1),
                                          part(a, p3, 2)};
    const Fedq__V1__PartialGroup **own;
    Fedq__V1__PartialGroup **out;
    size_t n;

    (void)state;
    assert_int_equal(gw_combine_parts(a, parts, 3, plan_of(a, 2, &sum_agg),
                                      NULL, 100, &out, &n, &own),
                     0);
    assert_int_equal(n, 3);
    /* T1: uhs only */
    assert_ptr_equal(own[0 * 3 + 0], p1[1]);
    assert_null(own[0 * 3 + 1]);
    assert_null(own[0 * 3 + 2]);
    /* T2: parts 0 and 2, pooled 12 */
    assert_int_equal(out[1]->contributors, 12);
    assert_ptr_equal(own[1 * 3 + 0], p1[0]);
    assert_null(own[1 * 3 + 1]);
    assert_ptr_equal(own[1 * 3 + 2], p3[0]);
    /* T3: parts 1 and 2 */
    assert_null(own[2 * 3 + 0]);
    assert_ptr_equal(own[2 * 3 + 1], p2[0]);
    assert_ptr_equal(own[2 * 3 + 2], p3[1]);
    /* the own groups are the agencies' unmodified */
    assert_int_equal(p1[0]->contributors, 9);

    /* one agency answering a key twice: its part would be unknown */
    Fedq__V1__PartialGroup *dup[] = {group(a, "T2", 1, 5, 5, 0),
                                     group(a, "T2", 1, 6, 6, 0)};
    parts[1] = part(a, dup, 2);
    assert_int_equal(gw_combine_parts(a, parts, 3, plan_of(a, 2, &sum_agg),
                                      NULL, 100, &out, &n, &own),
                     FQ_EPROTO);
    /* the same key from two agencies is pooling, as before */
    parts[1] = part(a, p2, 1);
    assert_int_equal(
        gw_combine(a, parts, 3, plan_of(a, 2, &sum_agg), NULL, 100, &out, &n),
        0);
    assert_int_equal(n, 3);
    fq_arena_free(a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_in_key_order),
        cmocka_unit_test(test_overflow_and_limits),
        cmocka_unit_test(test_moments),
        cmocka_unit_test(test_histogram_bins),
        cmocka_unit_test(test_disclosure_fields),
        cmocka_unit_test(test_quantile_sketches),
        cmocka_unit_test(test_own_parts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
