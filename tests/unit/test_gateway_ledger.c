/*
 * Unit tests for the gateway's side of the differencing ledger
 * (gateway/ledger.c): the agencies' parts of a pair add up (a pooled
 * difference of 1 to k - 1 decides, one of k or more does not); under
 * perturbation a near cell takes the earliest near cell's published value
 * of the same statistic, and a near cell of another statistic hides it;
 * under exact release it is suppressed; an answer naming a cell not asked
 * is refused. And the domain fill of a grouped table (gateway/combine.c).
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/plan.h"
#include "disclose.h"
#include "gateway.h"
#include "gwledger.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "fedq/v1/agent.pb-c.h"
#include "fedq/v1/gateway.pb-c.h"

#define K 11

struct fx {
    struct fq_arena *a;
    Fedq__V1__Plan plan;
    Fedq__V1__Aggregate count, sum;
    Fedq__V1__Aggregate *aggs[2];
    struct gw_rules rules;
    struct gw_table t;
    struct gw_cell cells[2];
    Fedq__V1__Cell out[2];
    size_t idx[2];
    struct gw_ledger_cells lc;
};

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (!f || !(f->a = fq_arena_new(1 << 20)))
        return -1;
    fedq__v1__plan__init(&f->plan);
    fedq__v1__aggregate__init(&f->count);
    fedq__v1__aggregate__init(&f->sum);
    f->count.kind = FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT;
    f->count.column = "";
    f->sum.kind = FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM;
    f->sum.column = "wages";
    f->aggs[0] = &f->count;
    f->aggs[1] = &f->sum;
    f->plan.aggregates = f->aggs;
    f->plan.n_aggregates = 2;
    gw_rules_init(&f->rules, K);
    f->rules.perturb = true;
    struct gw_perturb_conf pc = {0, 2, 1.0, 5};
    char err[256];
    if (gw_rules_ready(&f->rules, &pc, err, sizeof(err)) < 0)
        return -1;
    /* one row: COUNT(*) and SUM(wages), both released (perturbed) */
    for (size_t i = 0; i < 2; i++) {
        fedq__v1__cell__init(&f->out[i]);
        f->out[i].status = FEDQ__V1__CELL_STATUS__CELL_STATUS_PERTURBED;
        f->out[i].value_case = FEDQ__V1__CELL__VALUE_INT_VALUE;
        f->out[i].int_value = 500 + (int64_t)i;
        f->cells[i] =
            (struct gw_cell){.out = &f->out[i],
                             .stat = i ? GW_STAT_SUM : GW_STAT_RECORDS,
                             .agg = i};
        f->idx[i] = i;
    }
    f->t = (struct gw_table){1, 2, NULL, f->cells};
    f->lc = (struct gw_ledger_cells){2, f->idx, NULL};
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

/* A published value, packed as RecordCells sends it. */
static ProtobufCBinaryData
value(struct fx *f, int64_t v, uint32_t status, uint32_t statistic,
      const char *at)
{
    Fedq__V1__PublishedValue p = FEDQ__V1__PUBLISHED_VALUE__INIT;
    ProtobufCBinaryData b;

    p.status = status;
    p.value_case = FEDQ__V1__PUBLISHED_VALUE__VALUE_INT_VALUE;
    p.int_value = v;
    p.released_at = (char *)at;
    p.statistic = statistic;
    b.len = fedq__v1__published_value__get_packed_size(&p);
    b.data = fq_arena_alloc(f->a, b.len + 1);
    fedq__v1__published_value__pack(&p, b.data);
    return b;
}

static Fedq__V1__CellPair *
pair(struct fx *f, uint32_t cell, const char *released, int64_t here,
     int64_t there, ProtobufCBinaryData v)
{
    Fedq__V1__CellPair *p = fq_arena_alloc(f->a, sizeof(*p));
    fedq__v1__cell_pair__init(p);
    p->cell = cell;
    p->released = (char *)released;
    p->only_here = here;
    p->only_there = there;
    p->released_value = v;
    return p;
}

/* One agency's answer: its contributors to both cells and its pairs. */
static Fedq__V1__CheckCellsResponse *
answer(struct fx *f, int64_t persons, Fedq__V1__CellPair **pairs, size_t n)
{
    Fedq__V1__CheckCellsResponse *r = fq_arena_alloc(f->a, sizeof(*r));
    fedq__v1__check_cells_response__init(r);
    r->contributors = fq_arena_alloc(f->a, 2 * sizeof(int64_t));
    r->contributors[0] = r->contributors[1] = persons;
    r->n_contributors = 2;
    r->pairs = pairs;
    r->n_pairs = n;
    return r;
}

static int
decide(struct fx *f, Fedq__V1__CheckCellsResponse **resps, size_t n, bool reuse,
       size_t *hidden, size_t *reused)
{
    static const char *const agencies[] = {"uhs", "csu"};
    static const char *const vintages[] = {"v1", "v1"};
    struct gw_ledger_answers ans = {n, agencies, vintages, resps};
    struct gw_ledger_rules lr = {K, reuse, &f->rules, &f->plan};
    return gw_ledger_decide(&f->t, &f->lc, &ans, &lr, f->a, hidden, reused);
}

/* Two agencies' parts of one pair add up: 4 + 3 persons apart is small
 * (answered with the earliest near value under perturbation), 6 + 6 is
 * not. */
static void
test_pooled_parts(void **state)
{
    struct fx *f = *state;
    uint32_t count = FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT;
    ProtobufCBinaryData early = value(f, 480, 3, count, "2026-01-01T00:00:01Z"),
                        late = value(f, 470, 3, count, "2026-01-01T00:00:02Z");
    Fedq__V1__CellPair *u[] = {pair(f, 0, "q-b/1", 4, 0, late),
                               pair(f, 0, "q-a/1", 4, 0, early)};
    Fedq__V1__CellPair *c[] = {pair(f, 0, "q-b/1", 3, 0, late),
                               pair(f, 0, "q-a/1", 3, 0, early)};
    Fedq__V1__CheckCellsResponse *r[] = {answer(f, 300, u, 2),
                                         answer(f, 200, c, 2)};
    size_t hidden, reused;

    f->cells[0].truth = 497; /* 7 persons apart, with their records */
    assert_int_equal(decide(f, r, 2, true, &hidden, &reused), 0);
    assert_int_equal(hidden, 0);
    assert_int_equal(reused, 1);
    assert_true(f->cells[0].reused);
    assert_int_equal(f->out[0].int_value, 480); /* the earliest's */
    assert_int_equal(f->out[0].status,
                     FEDQ__V1__CELL_STATUS__CELL_STATUS_PERTURBED);
    assert_int_equal(f->cells[0].reason, GW_REASON_NONE);
    /* its interval for secondary suppression: what 480 allows as the
     * cell's own perturbed value (within D = 2), joined with the truth */
    assert_true(f->cells[0].lo >= 478 && f->cells[0].lo <= 480);
    assert_true(f->cells[0].hi == 497);
    assert_int_equal(f->out[1].int_value, 501); /* SUM untouched */

    /* 6 + 6 persons apart: k or more, nothing changes */
    f->out[0].int_value = 500;
    f->cells[0].reused = false;
    u[0] = pair(f, 0, "q-b/1", 6, 0, late);
    c[0] = pair(f, 0, "q-b/1", 6, 0, late);
    r[0] = answer(f, 300, u, 1);
    r[1] = answer(f, 200, c, 1);
    assert_int_equal(decide(f, r, 2, true, &hidden, &reused), 0);
    assert_int_equal(hidden + reused, 0);
    assert_int_equal(f->out[0].int_value, 500);
}

/* Exact release suppresses; a near cell of another statistic hides it
 * too (a COUNT(*)'s value never answers for a SUM). */
static void
test_exact_and_other_statistic(void **state)
{
    struct fx *f = *state;
    uint32_t count = FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT;
    ProtobufCBinaryData v = value(f, 480, 3, count, "2026-01-01T00:00:01Z");
    Fedq__V1__CellPair *p[] = {pair(f, 0, "q-a/1", 2, 0, v),
                               pair(f, 1, "q-a/1", 2, 0, v)};
    Fedq__V1__CheckCellsResponse *r[] = {answer(f, 300, p, 2)};
    size_t hidden, reused;

    assert_int_equal(decide(f, r, 1, false, &hidden, &reused), 0);
    assert_int_equal(hidden, 2);
    assert_int_equal(reused, 0);
    assert_int_equal(f->cells[0].reason, GW_REASON_LEDGER);
    assert_int_equal(f->out[0].status,
                     FEDQ__V1__CELL_STATUS__CELL_STATUS_SUPPRESSED);

    f->cells[0].reason = f->cells[1].reason = GW_REASON_NONE;
    f->out[0].status = f->out[1].status =
        FEDQ__V1__CELL_STATUS__CELL_STATUS_PERTURBED;
    assert_int_equal(decide(f, r, 1, true, &hidden, &reused), 0);
    assert_int_equal(reused, 1); /* the COUNT(*) */
    assert_int_equal(hidden, 1); /* the SUM: a count's value is no sum's */
    assert_int_equal(f->cells[1].reason, GW_REASON_LEDGER);
}

/* An answer about a cell that was not asked is a protocol error. */
static void
test_bad_answer(void **state)
{
    struct fx *f = *state;
    ProtobufCBinaryData none = {0, NULL};
    Fedq__V1__CellPair *p[] = {pair(f, 7, "q-a/1", 2, 0, none)};
    Fedq__V1__CheckCellsResponse *r[] = {answer(f, 300, p, 1)};
    size_t hidden, reused;

    assert_int_equal(decide(f, r, 1, true, &hidden, &reused), FQ_EPROTO);
}

/* The domain fill: every combination of two coded dimensions, the held
 * groups kept with their agencies' own groups, the rest empty. */
static void
test_fill(void **state)
{
    struct fx *f = *state;
    Fedq__V1__Dataset ds = FEDQ__V1__DATASET__INIT;
    Fedq__V1__Column c1 = FEDQ__V1__COLUMN__INIT, c2 = FEDQ__V1__COLUMN__INIT;
    Fedq__V1__Column *cols[] = {&c1, &c2};
    Fedq__V1__Domain d1 = FEDQ__V1__DOMAIN__INIT, d2 = FEDQ__V1__DOMAIN__INIT;
    Fedq__V1__CodeList codes = FEDQ__V1__CODE_LIST__INIT;
    Fedq__V1__IntRange range = FEDQ__V1__INT_RANGE__INIT;
    char *names[] = {"sex", "year"}, *sexes[] = {"F", "M"};
    Fedq__V1__Plan plan = FEDQ__V1__PLAN__INIT;
    Fedq__V1__Literal k1 = FEDQ__V1__LITERAL__INIT,
                      k2 = FEDQ__V1__LITERAL__INIT;
    Fedq__V1__Literal *key[] = {&k1, &k2};
    Fedq__V1__PartialGroup held = FEDQ__V1__PARTIAL_GROUP__INIT;
    Fedq__V1__PartialGroup *gs[] = {&held}, **groups = gs;
    const Fedq__V1__PartialGroup *own_in[] = {&held, NULL}, **own = own_in;
    size_t n = 1, too_many;

    c1.name = "sex";
    c2.name = "year";
    codes.codes = sexes;
    codes.n_codes = 2;
    d1.kind_case = FEDQ__V1__DOMAIN__KIND_CODES;
    d1.codes = &codes;
    range.min = 2020;
    range.max = 2022;
    d2.kind_case = FEDQ__V1__DOMAIN__KIND_RANGE;
    d2.range = &range;
    c1.domain = &d1;
    c2.domain = &d2;
    ds.columns = cols;
    ds.n_columns = 2;
    plan.group_by = names;
    plan.n_group_by = 2;
    plan.aggregates = f->aggs;
    plan.n_aggregates = 1;
    k1.value_case = FEDQ__V1__LITERAL__VALUE_TEXT_VALUE;
    k1.text_value = "M";
    k2.value_case = FEDQ__V1__LITERAL__VALUE_INT_VALUE;
    k2.int_value = 2021;
    held.key = key;
    held.n_key = 2;
    held.contributors = 40;

    assert_int_equal(
        gw_combine_fill(f->a, &plan, &ds, 100, 2, &groups, &n, &own, &too_many),
        0);
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; i++) {
        bool is_held = groups[i] == &held;
        assert_int_equal(own[i * 2] == &held, is_held);
        assert_null(own[i * 2 + 1]);
        if (!is_held) {
            assert_int_equal(groups[i]->contributors, 0);
            assert_int_equal(groups[i]->n_aggregates, 1);
        }
        if (i) /* in key order */
            assert_true(fq_group_key_cmp(&groups[i - 1], &groups[i]) < 0);
    }
    /* too many combinations: refused, with how many */
    groups = gs;
    own = own_in;
    n = 1;
    assert_int_equal(
        gw_combine_fill(f->a, &plan, &ds, 5, 2, &groups, &n, &own, &too_many),
        FQ_ETOOBIG);
    assert_true(too_many > 5);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pooled_parts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exact_and_other_statistic, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
