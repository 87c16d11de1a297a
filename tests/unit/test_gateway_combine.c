/*
 * Unit tests for pooling (gateway/combine.c): groups of several agencies
 * merge by key, counters add up, integer overflow is an error, and the
 * result comes in key order.
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
    assert_int_equal(gw_combine(a, parts, 2, 2, 1, 100, &out, &n), 0);
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
    assert_int_equal(gw_combine(a, parts, 2, 2, 1, 100, &out, &n), FQ_ETOOBIG);
    /* more distinct groups than allowed */
    assert_int_equal(gw_combine(a, parts + 1, 1, 2, 1, 1, &out, &n),
                     FQ_ETOOBIG);
    /* an answer of the wrong shape */
    assert_int_equal(gw_combine(a, parts + 1, 1, 1, 1, 100, &out, &n),
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
    assert_int_equal(gw_combine(a, parts, 2, 2, 1, 100, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0]->aggregates[0]->count, 5);
    assert_true(fabs(out[0]->aggregates[0]->mean - 7.2) < 1e-12);
    assert_true(fabs(out[0]->aggregates[0]->m2 - 254.8) < 1e-9);
    fq_arena_free(a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_in_key_order),
        cmocka_unit_test(test_overflow_and_limits),
        cmocka_unit_test(test_moments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
