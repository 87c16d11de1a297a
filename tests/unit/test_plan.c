/*
 * Unit tests for typed plans (common/src/plan_build.c, plan_check.c): SQL
 * against a catalog entry becomes a plan with typed literals, and every
 * rule the gateway and the agents share refuses what it must, with the
 * position in the SQL text.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/plan.h"
#include "fq/sql.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

/* dol.wages: person_id (identifier), quarter (dimension, quarter), town
 * (dimension, text), birth_year (dimension, integer), paid (date),
 * wages (measure, integer, bounds 0..1000, a quantile sketch of 10 bins),
 * hours (measure, decimal, no sketch). */
static Fedq__V1__Column cols[7];
static Fedq__V1__Column *col_ptrs[7];
static Fedq__V1__Dataset ds;

static void
set_col(size_t i, const char *name, Fedq__V1__ColumnRole role,
        Fedq__V1__ValueType type)
{
    fedq__v1__column__init(&cols[i]);
    cols[i].name = (char *)name;
    cols[i].role = role;
    cols[i].type = type;
    col_ptrs[i] = &cols[i];
}

static int
setup_catalog(void **state)
{
    (void)state;
    set_col(0, "person_id", FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_IDENTIFIER,
            FEDQ__V1__VALUE_TYPE__VALUE_TYPE_TEXT);
    set_col(1, "quarter", FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_DIMENSION,
            FEDQ__V1__VALUE_TYPE__VALUE_TYPE_QUARTER);
    set_col(2, "town", FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_DIMENSION,
            FEDQ__V1__VALUE_TYPE__VALUE_TYPE_TEXT);
    set_col(3, "birth_year", FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_DIMENSION,
            FEDQ__V1__VALUE_TYPE__VALUE_TYPE_INTEGER);
    set_col(4, "paid", FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_DATE,
            FEDQ__V1__VALUE_TYPE__VALUE_TYPE_DATE);
    set_col(5, "wages", FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_MEASURE,
            FEDQ__V1__VALUE_TYPE__VALUE_TYPE_INTEGER);
    set_col(6, "hours", FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_MEASURE,
            FEDQ__V1__VALUE_TYPE__VALUE_TYPE_DECIMAL);
    static Fedq__V1__IntRange wage_bounds = FEDQ__V1__INT_RANGE__INIT;
    wage_bounds.min = 0;
    wage_bounds.max = 1000;
    cols[5].bounds = &wage_bounds;
    cols[5].quantile_bins = 10;
    fedq__v1__dataset__init(&ds);
    ds.agency = "dol";
    ds.name = "wages";
    ds.n_columns = 7;
    ds.columns = col_ptrs;
    return 0;
}

static int
setup(void **state)
{
    *state = fq_arena_new(FQ_SQL_PARSE_MEMORY_MAX);
    return *state ? 0 : -1;
}

static int
teardown(void **state)
{
    fq_arena_free(*state);
    return 0;
}

/* Parses and builds; returns the rc and fills msg on failure. */
static int
build(struct fq_arena *a, const char *sql, Fedq__V1__Plan **plan, char *msg,
      size_t msglen)
{
    struct fq_sql_query *q = NULL;
    struct fq_sql_error err;
    int rc = fq_sql_parse(sql, strlen(sql), a, &q, &err);

    if (rc == 0)
        rc = fq_plan_from_sql(q, &ds, a, plan, &err);
    snprintf(msg, msglen, "%s", rc < 0 ? err.msg : "");
    return rc;
}

static void
expect_refused(struct fq_arena *a, const char *sql, const char *msg)
{
    Fedq__V1__Plan *plan = NULL;
    char got[400];

    int rc = build(a, sql, &plan, got, sizeof(got));
    if (rc == 0 || strcmp(got, msg) != 0)
        print_error("sql: %s\nwant: %s\ngot:  %s\n", sql, msg, got);
    assert_int_equal(rc, FQ_EINVAL);
    assert_string_equal(got, msg);
}

static void
test_build_typed(void **state)
{
    Fedq__V1__Plan *p = NULL;
    char msg[400];

    assert_int_equal(
        build(*state,
              "SELECT town, quarter, COUNT(*), SUM(wages), AVG(hours) "
              "FROM dol.wages WHERE quarter BETWEEN '2023Q1' AND '2024Q4' "
              "AND birth_year >= 1980 AND town IN ('T001', 'T002') "
              "AND hours > 10 AND paid = '2024-02-29' "
              "GROUP BY quarter, town",
              &p, msg, sizeof(msg)),
        0);
    assert_string_equal(p->dataset, "wages");
    assert_int_equal(p->n_group_by, 2);
    assert_string_equal(p->group_by[0], "quarter"); /* GROUP BY order */
    assert_int_equal(p->n_aggregates, 3);
    assert_int_equal(p->aggregates[1]->kind,
                     FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM);
    assert_string_equal(p->aggregates[2]->column, "hours");
    const Fedq__V1__Conjunction *all = p->filter->all;
    assert_int_equal(p->filter->node_case, FEDQ__V1__PREDICATE__NODE_ALL);
    assert_int_equal(all->n_terms, 5);
    assert_string_equal(all->terms[0]->between->low->text_value, "2023Q1");
    assert_int_equal(all->terms[1]->compare->op,
                     FEDQ__V1__COMPARE_OP__COMPARE_OP_GE);
    assert_int_equal(all->terms[1]->compare->value->int_value, 1980);
    assert_int_equal(all->terms[2]->in->n_values, 2);
    /* an integer literal against a decimal column travels as a decimal */
    assert_int_equal(all->terms[3]->compare->value->value_case,
                     FEDQ__V1__LITERAL__VALUE_DECIMAL_VALUE);
    assert_true(all->terms[3]->compare->value->decimal_value == 10.0);
}

static void
test_build_refusals(void **state)
{
    struct fq_arena *a = *state;

    expect_refused(a, "SELECT COUNT(*) FROM dol.wages WHERE twn = 'x'",
                   "line 1, column 38: unknown column 'twn' in dol.wages");
    expect_refused(a, "SELECT COUNT(*) FROM dol.wages\nWHERE person_id = 'P1'",
                   "line 2, column 7: column 'person_id' is an identifier: "
                   "it serves linkage only and cannot appear in a query");
    expect_refused(a, "SELECT COUNT(*) FROM dol.wages WHERE quarter = 5",
                   "line 1, column 48: column 'quarter': expected a quarter "
                   "like '2024Q1', found 5");
    expect_refused(a, "SELECT COUNT(*) FROM dol.wages WHERE quarter = '2024Q5'",
                   "line 1, column 48: column 'quarter': expected a quarter "
                   "like '2024Q1', found '2024Q5'");
    expect_refused(a,
                   "SELECT COUNT(*) FROM dol.wages WHERE paid = '2023-02-29'",
                   "line 1, column 45: column 'paid': expected a date like "
                   "'2024-01-31', found '2023-02-29'");
    expect_refused(a, "SELECT COUNT(*) FROM dol.wages WHERE wages = 'x'",
                   "line 1, column 46: column 'wages': expected an integer, "
                   "found 'x'");
    expect_refused(a, "SELECT COUNT(*) FROM dol.wages WHERE birth_year = 1.5",
                   "line 1, column 51: column 'birth_year': expected an "
                   "integer, found 1.5");
    expect_refused(a, "SELECT SUM(town) FROM dol.wages",
                   "line 1, column 12: column 'town' is not a measure: SUM "
                   "takes a measure");
    expect_refused(a, "SELECT wages, COUNT(*) FROM dol.wages GROUP BY wages",
                   "line 1, column 48: column 'wages' is not a dimension: "
                   "only dimensions with a published domain can be grouped "
                   "on");
    expect_refused(a, "SELECT town, COUNT(*) FROM dol.wages",
                   "line 1, column 8: column 'town' must be in GROUP BY or "
                   "inside an aggregate");
    expect_refused(a, "SELECT COUNT(*) FROM dol.wages GROUP BY town",
                   "line 1, column 41: grouped column 'town' must also be "
                   "selected");
    expect_refused(a, "SELECT town FROM dol.wages GROUP BY town",
                   "line 1, column 8: a query needs at least one aggregate: "
                   "COUNT(*), SUM(measure) or AVG(measure)");
    expect_refused(a,
                   "SELECT person_id, COUNT(*) FROM dol.wages "
                   "GROUP BY person_id",
                   "line 1, column 52: column 'person_id' is an identifier: "
                   "it serves linkage only and cannot appear in a query");
}

static void
test_build_boolean(void **state)
{
    Fedq__V1__Plan *p = NULL;
    char msg[400];

    assert_int_equal(build(*state,
                           "SELECT town, COUNT(*) FROM dol.wages WHERE "
                           "(town = 'T1' OR birth_year IS NULL) AND NOT "
                           "quarter IN ('2024Q1') GROUP BY town",
                           &p, msg, sizeof(msg)),
                     0);
    const Fedq__V1__Predicate *f = p->filter;
    assert_int_equal(f->node_case, FEDQ__V1__PREDICATE__NODE_ALL);
    assert_int_equal(f->all->n_terms, 2);
    const Fedq__V1__Predicate *any = f->all->terms[0];
    assert_int_equal(any->node_case, FEDQ__V1__PREDICATE__NODE_ANY);
    assert_int_equal(any->any->n_terms, 2);
    assert_int_equal(any->any->terms[1]->node_case,
                     FEDQ__V1__PREDICATE__NODE_IS_NULL);
    assert_string_equal(any->any->terms[1]->is_null->column, "birth_year");
    assert_false(any->any->terms[1]->is_null->negated);
    const Fedq__V1__Predicate *neg = f->all->terms[1];
    assert_int_equal(neg->node_case, FEDQ__V1__PREDICATE__NODE_NOT);
    assert_int_equal(neg->not_->term->node_case, FEDQ__V1__PREDICATE__NODE_IN);

    /* a forged tree: an empty OR, a NOT without a term */
    any->any->n_terms = 0;
    assert_int_equal(fq_plan_check(p, &ds, msg, sizeof(msg)), FQ_EINVAL);
    assert_string_equal(msg, "empty AND or OR in the filter");
    any->any->n_terms = 2;
    neg->not_->term = NULL;
    assert_int_equal(fq_plan_check(p, &ds, msg, sizeof(msg)), FQ_EINVAL);
    assert_string_equal(msg, "NOT without a term in the filter");
}

static void
test_build_refused_aggregates(void **state)
{
    expect_refused(*state, "SELECT HISTOGRAM(wages, 1, 10.5) FROM dol.wages",
                   "line 1, column 28: column 'wages': expected an integer, "
                   "found 10.5");
    expect_refused(*state,
                   "SELECT town, QUANTILE(hours, 0.5) FROM dol.wages "
                   "GROUP BY town",
                   "line 1, column 23: QUANTILE is not enabled on 'hours' in "
                   "dol.wages: the agency's catalog gives it no "
                   "quantile_bins");
    expect_refused(*state, "SELECT HISTOGRAM(town, 1) FROM dol.wages",
                   "line 1, column 18: column 'town' is not a measure: "
                   "HISTOGRAM takes a measure");
    expect_refused(*state, "SELECT VAR(town) FROM dol.wages",
                   "line 1, column 12: column 'town' is not a measure: VAR "
                   "takes a measure");
    expect_refused(*state, "SELECT COUNT(DISTINCT wages) FROM dol.wages",
                   "line 1, column 23: COUNT(DISTINCT) takes an identifier "
                   "or a dimension, and 'wages' is neither");
    expect_refused(*state,
                   "SELECT COUNT(*) FROM dol.wages WHERE person_id IS NULL",
                   "line 1, column 38: column 'person_id' is an identifier: "
                   "it serves linkage only and cannot appear in a query");
}

/* HISTOGRAM and QUANTILE become typed plan aggregates; forged ones are
 * refused by the shared check. */
static void
test_build_histogram_quantile(void **state)
{
    Fedq__V1__Plan *p = NULL;
    char msg[400];

    assert_int_equal(build(*state,
                           "SELECT HISTOGRAM(wages, -5, 0, 100), "
                           "HISTOGRAM(hours, 1, 2.5), QUANTILE(wages, 0.25) "
                           "FROM dol.wages",
                           &p, msg, sizeof(msg)),
                     0);
    Fedq__V1__Aggregate *h = p->aggregates[0], *hd = p->aggregates[1];
    Fedq__V1__Aggregate *qt = p->aggregates[2];
    assert_int_equal(h->kind,
                     FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM);
    assert_int_equal(h->n_edges, 3);
    assert_int_equal(h->edges[0]->int_value, -5);
    assert_int_equal(h->edges[2]->int_value, 100);
    assert_int_equal(hd->edges[0]->value_case,
                     FEDQ__V1__LITERAL__VALUE_DECIMAL_VALUE);
    assert_true(hd->edges[1]->decimal_value == 2.5);
    assert_int_equal(qt->kind,
                     FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE);
    assert_true(qt->fraction == 0.25);
    assert_string_equal(fq_histogram_bin_name(h, 0, *state),
                        "HISTOGRAM(wages)[-inf,-5)");
    assert_string_equal(fq_histogram_bin_name(h, 2, *state),
                        "HISTOGRAM(wages)[0,100)");
    assert_string_equal(fq_histogram_bin_name(h, 3, *state),
                        "HISTOGRAM(wages)[100,+inf)");
    assert_string_equal(fq_histogram_bin_name(hd, 2, *state),
                        "HISTOGRAM(hours)[2.5,+inf)");
    assert_string_equal(fq_plan_aggregate_name(qt, *state),
                        "QUANTILE(wages, 0.25)");

    h->edges[1]->int_value = -5; /* not increasing */
    assert_int_equal(fq_plan_check(p, &ds, msg, sizeof(msg)), FQ_EINVAL);
    assert_string_equal(msg, "HISTOGRAM(wages) edges must be strictly "
                             "increasing (edge 2)");
    h->edges[1]->int_value = 0;
    h->edges[1]->value_case = FEDQ__V1__LITERAL__VALUE_TEXT_VALUE;
    h->edges[1]->text_value = "0";
    assert_int_equal(fq_plan_check(p, &ds, msg, sizeof(msg)), FQ_EINVAL);
    assert_string_equal(msg, "HISTOGRAM(wages) edge 2: expected a number of "
                             "the measure's type");
    h->edges[1]->value_case = FEDQ__V1__LITERAL__VALUE_INT_VALUE;
    h->edges[1]->int_value = 0; /* shares the union with text_value */
    qt->fraction = 1.0;
    assert_int_equal(fq_plan_check(p, &ds, msg, sizeof(msg)), FQ_EINVAL);
    assert_string_equal(msg, "QUANTILE(wages, q) needs 0 < q < 1");
    qt->fraction = 0.5;
    qt->column = "hours"; /* no sketch published */
    assert_int_equal(fq_plan_check(p, &ds, msg, sizeof(msg)), FQ_EINVAL);
    assert_string_equal(msg, "QUANTILE is not enabled on 'hours' in "
                             "dol.wages: the agency's catalog gives it no "
                             "quantile_bins");
    qt->column = "wages";
    qt->kind = FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM;
    assert_int_equal(fq_plan_check(p, &ds, msg, sizeof(msg)), FQ_EINVAL);
    assert_string_equal(msg, "only QUANTILE takes a fraction");
    qt->fraction = 0;
    assert_int_equal(fq_plan_check(p, &ds, msg, sizeof(msg)), 0);
    h->n_edges = 0;
    assert_int_equal(fq_plan_check(p, &ds, msg, sizeof(msg)), FQ_EINVAL);
    assert_string_equal(msg, "HISTOGRAM(wages) needs 1 to 64 edges");
}

/* Many HISTOGRAMs may not add up to more than FQ_PLAN_MAX_BINS bins. */
static void
test_check_bin_budget(void **state)
{
    struct fq_arena *a = *state;
    char sql[8192], msg[400];
    size_t n = 0;
    Fedq__V1__Plan *p = NULL;

    n += (size_t)snprintf(sql + n, sizeof(sql) - n, "SELECT ");
    for (int h = 0; h < 5; h++) { /* 5 x 64 edges: 325 bins */
        n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%sHISTOGRAM(wages",
                              h ? ", " : "");
        for (int e = 0; e < 64; e++)
            n += (size_t)snprintf(sql + n, sizeof(sql) - n, ", %d", e);
        n += (size_t)snprintf(sql + n, sizeof(sql) - n, ")");
    }
    snprintf(sql + n, sizeof(sql) - n, " FROM dol.wages");
    /* the fourth HISTOGRAM (column 8 + 3 * 264) crosses the limit */
    assert_int_equal(build(a, sql, &p, msg, sizeof(msg)), FQ_EINVAL);
    assert_string_equal(msg, "line 1, column 800: the HISTOGRAMs of one "
                             "query have more than 256 bins");
}

static void
test_group_by_limit(void **state)
{
    Fedq__V1__Plan *p = NULL;
    char msg[400];

    assert_int_equal(build(*state,
                           "SELECT town, quarter, birth_year, COUNT(*) FROM "
                           "dol.wages GROUP BY town, quarter, birth_year",
                           &p, msg, sizeof(msg)),
                     0);
    assert_int_equal(fq_plan_check_group_by_limit(p, 3, msg, sizeof(msg)), 0);
    assert_int_equal(fq_plan_check_group_by_limit(p, 2, msg, sizeof(msg)),
                     FQ_EINVAL);
    assert_string_equal(msg, "GROUP BY has 3 columns; at most 2 are allowed "
                             "here (max_group_by)");
}

/* The sketch of bounds [0, 24] in 8 bins: width 4, 7 bins used, the last
 * one [24, 24]; answers within 2 of the exact quantile. */
static void
test_quantile_sketch(void **state)
{
    Fedq__V1__IntRange b = FEDQ__V1__INT_RANGE__INIT;
    Fedq__V1__Column c = FEDQ__V1__COLUMN__INIT;
    struct fq_quantile qt;
    int64_t w;
    uint32_t used;

    (void)state;
    b.min = 0;
    b.max = 24;
    c.bounds = &b;
    c.quantile_bins = 8;
    assert_int_equal(fq_quantile_sketch(&c, &w, &used), 0);
    assert_int_equal(w, 4);
    assert_int_equal(used, 7);
    assert_int_equal(fq_quantile_error_bound(&c), 2);
    assert_int_equal(fq_quantile_bin(&c, -3), 0); /* outside: edge bins */
    assert_int_equal(fq_quantile_bin(&c, 3), 0);
    assert_int_equal(fq_quantile_bin(&c, 4), 1);
    assert_int_equal(fq_quantile_bin(&c, 24), 6);
    assert_int_equal(fq_quantile_bin(&c, 99), 6);

    /* values {1, 5, 5, 6, 24}: 1 | 5 5 6 | 24 */
    uint32_t bins[] = {0, 1, 6};
    int64_t counts[] = {1, 3, 1};
    assert_int_equal(fq_quantile_pick(&c, 0.2, bins, counts, 3, &qt), 0);
    assert_int_equal(qt.lo, 0); /* rank 1: value 1, in [0, 3] */
    assert_int_equal(qt.hi, 3);
    assert_int_equal(qt.value, 1);
    assert_int_equal(fq_quantile_pick(&c, 0.21, bins, counts, 3, &qt), 0);
    assert_int_equal(qt.value, 5); /* rank 2: [4, 7], middle 5 */
    assert_int_equal(fq_quantile_pick(&c, 0.99, bins, counts, 3, &qt), 0);
    assert_int_equal(qt.lo, 24); /* rank 5: the last bin, cut at max */
    assert_int_equal(qt.hi, 24);
    assert_int_equal(qt.value, 24);

    assert_int_equal(fq_quantile_pick(&c, 0.5, bins, counts, 0, &qt),
                     FQ_ENOENT);
    uint32_t unsorted[] = {1, 0};
    assert_int_equal(fq_quantile_pick(&c, 0.5, unsorted, counts, 2, &qt),
                     FQ_EPROTO);
    uint32_t outside[] = {7};
    assert_int_equal(fq_quantile_pick(&c, 0.5, outside, counts, 1, &qt),
                     FQ_EPROTO);
    int64_t zero[] = {0};
    assert_int_equal(fq_quantile_pick(&c, 0.5, bins, zero, 1, &qt), FQ_EPROTO);

    /* the widest bounds that fit, and wider ones refused */
    assert_true(fq_quantile_width(0, ((int64_t)1 << 62) - 1, 1) > 0);
    assert_int_equal(fq_quantile_width(INT64_MIN, INT64_MAX, 100), FQ_EINVAL);
    assert_int_equal(fq_quantile_width(0, 10, 0), FQ_EINVAL);
}

/* The agent's check refuses what a forged plan could carry. */
static void
test_check_forged(void **state)
{
    Fedq__V1__Plan *p = NULL;
    char msg[400];

    assert_int_equal(build(*state,
                           "SELECT town, COUNT(*) FROM dol.wages "
                           "WHERE birth_year = 1980 GROUP BY town",
                           &p, msg, sizeof(msg)),
                     0);
    assert_int_equal(fq_plan_check(p, &ds, msg, sizeof(msg)), 0);

    p->group_by[0] = "person_id";
    assert_int_equal(fq_plan_check(p, &ds, msg, sizeof(msg)), FQ_EINVAL);
    assert_string_equal(msg, "column 'person_id' is an identifier: it serves "
                             "linkage only and cannot appear in a query");
    p->group_by[0] = "town";

    p->filter->compare->value->value_case = FEDQ__V1__LITERAL__VALUE_TEXT_VALUE;
    p->filter->compare->value->text_value = "1980";
    assert_int_equal(fq_plan_check(p, &ds, msg, sizeof(msg)), FQ_EINVAL);
    assert_string_equal(msg, "column 'birth_year': expected an integer");

    p->filter->node_case = FEDQ__V1__PREDICATE__NODE__NOT_SET;
    assert_int_equal(fq_plan_check(p, &ds, msg, sizeof(msg)), FQ_EINVAL);
    assert_string_equal(msg, "empty or unknown filter node");

    p->filter = NULL;
    p->dataset = "other";
    assert_int_equal(fq_plan_check(p, &ds, msg, sizeof(msg)), FQ_EINVAL);
    assert_string_equal(msg, "plan is for dataset 'other', not 'wages'");
}

static void
test_literal_forms(void **state)
{
    static const struct {
        Fedq__V1__ValueType type;
        const char *text;
        bool ok;
    } cases[] = {
        {FEDQ__V1__VALUE_TYPE__VALUE_TYPE_DATE, "2024-02-29", true},
        {FEDQ__V1__VALUE_TYPE__VALUE_TYPE_DATE, "2100-02-29", false},
        {FEDQ__V1__VALUE_TYPE__VALUE_TYPE_DATE, "2000-02-29", true},
        {FEDQ__V1__VALUE_TYPE__VALUE_TYPE_DATE, "2024-04-31", false},
        {FEDQ__V1__VALUE_TYPE__VALUE_TYPE_DATE, "2024-4-01", false},
        {FEDQ__V1__VALUE_TYPE__VALUE_TYPE_MONTH, "2024-12", true},
        {FEDQ__V1__VALUE_TYPE__VALUE_TYPE_MONTH, "2024-00", false},
        {FEDQ__V1__VALUE_TYPE__VALUE_TYPE_MONTH, "2024-13", false},
        {FEDQ__V1__VALUE_TYPE__VALUE_TYPE_QUARTER, "2024Q4", true},
        {FEDQ__V1__VALUE_TYPE__VALUE_TYPE_QUARTER, "2024Q0", false},
        {FEDQ__V1__VALUE_TYPE__VALUE_TYPE_QUARTER, "2024q1", false},
        {FEDQ__V1__VALUE_TYPE__VALUE_TYPE_TEXT, "anything", true},
    };
    char why[96];

    (void)state;
    for (size_t i = 0; i < FQ_ARRAY_LEN(cases); i++) {
        Fedq__V1__Literal l = FEDQ__V1__LITERAL__INIT;
        l.value_case = FEDQ__V1__LITERAL__VALUE_TEXT_VALUE;
        l.text_value = (char *)cases[i].text;
        int rc = fq_literal_check(&l, cases[i].type, why, sizeof(why));
        if ((rc == 0) != cases[i].ok)
            print_error("literal %s\n", cases[i].text);
        assert_int_equal(rc == 0, cases[i].ok);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_build_typed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_build_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_forged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_build_boolean, setup, teardown),
        cmocka_unit_test_setup_teardown(test_build_refused_aggregates, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_build_histogram_quantile, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_check_bin_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_by_limit, setup, teardown),
        cmocka_unit_test(test_quantile_sketch),
        cmocka_unit_test(test_literal_forms),
    };
    return cmocka_run_group_tests(tests, setup_catalog, NULL);
}
