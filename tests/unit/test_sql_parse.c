/*
 * Unit tests for the fedq SQL lexer and parser (common/src/sql_lex.c,
 * common/src/sql_parse.c): every construct and the tree it builds, keyword
 * case, literals and int64 edges, every error message with its exact text
 * and position (single- and multi-line), every limit at and just past its
 * edge, the arena bound, out-of-memory at every cap, and the formatter's
 * round trip. Version 2 adds OR, NOT, IS NULL, precedence and flattening
 * checked on the tree, the new aggregates, ORDER BY, LIMIT, quoted
 * identifiers, block comments and the nesting limit. Runs under ASan and UBSan,
 * so a leak or overrun fails it.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/sql.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define ARENA_MAX (4 * FQ_SQL_PARSE_MEMORY_MAX)

static struct fq_sql_query *
parse_len(struct fq_arena *a, const char *sql, size_t len)
{
    struct fq_sql_query *q = NULL;
    struct fq_sql_error err;

    memset(&err, 0, sizeof(err));
    int rc = fq_sql_parse(sql, len, a, &q, &err);
    if (rc != 0)
        fail_msg("parse failed (%d): %s\nquery: %.200s", rc, err.msg, sql);
    assert_non_null(q);
    return q;
}

static struct fq_sql_query *
parse(struct fq_arena *a, const char *sql)
{
    return parse_len(a, sql, strlen(sql));
}

/*
 * The query must fail with FQ_EINVAL and exactly msg; err.pos must agree
 * with the message's "line L, column C" (1:1 for the length limit).
 */
static void
assert_error_len(const char *sql, size_t len, const char *msg)
{
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    struct fq_sql_query *q = (struct fq_sql_query *)&q; /* must stay */
    struct fq_sql_query *before = q;
    struct fq_sql_error err;
    int line = 1, column = 1;

    assert_non_null(a);
    memset(&err, 0, sizeof(err));
    int rc = fq_sql_parse(sql, len, a, &q, &err);
    if (rc != FQ_EINVAL || strcmp(err.msg, msg) != 0)
        fail_msg("query: %.200s\n  rc %d, message: %s\n  expected: %s", sql, rc,
                 err.msg, msg);
    assert_ptr_equal(q, before);
    if (strncmp(msg, "line ", 5) == 0)
        assert_int_equal(sscanf(msg, "line %d, column %d:", &line, &column), 2);
    assert_int_equal(err.pos.line, line);
    assert_int_equal(err.pos.column, column);
    fq_arena_free(a);
}

static void
assert_error(const char *sql, const char *msg)
{
    assert_error_len(sql, strlen(sql), msg);
}

/* format(parse(sql)) is canonical, and formatting is idempotent. */
static void
assert_format(const char *sql, const char *canonical)
{
    struct fq_arena *a = fq_arena_new(ARENA_MAX);

    assert_non_null(a);
    char *f1 = fq_sql_format(parse(a, sql), a);
    assert_non_null(f1);
    assert_string_equal(f1, canonical);
    char *f2 = fq_sql_format(parse(a, f1), a);
    assert_non_null(f2);
    assert_string_equal(f2, f1);
    fq_arena_free(a);
}

static void
assert_pos(struct fq_sql_pos pos, int line, int column)
{
    assert_int_equal(pos.line, line);
    assert_int_equal(pos.column, column);
}

/* A heap string: prefix, then n copies of elem joined by sep, then suffix. */
static char *
repeat(const char *prefix, const char *elem, const char *sep, size_t n,
       const char *suffix)
{
    size_t size =
        strlen(prefix) + strlen(suffix) + 1 + n * (strlen(elem) + strlen(sep));
    char *s = malloc(size);
    size_t len = 0;

    assert_non_null(s);
    len += (size_t)snprintf(s + len, size - len, "%s", prefix);
    for (size_t i = 0; i < n; i++)
        len +=
            (size_t)snprintf(s + len, size - len, "%s%s", i ? sep : "", elem);
    snprintf(s + len, size - len, "%s", suffix);
    return s;
}

/* "line 1, column C: MSG" with C the 1-based byte offset of what in sql. */
static void
assert_error_at(const char *sql, size_t offset, const char *what)
{
    char msg[300];

    snprintf(msg, sizeof(msg), "line 1, column %zu: %s", offset + 1, what);
    assert_error(sql, msg);
}

/* ---- constructs ------------------------------------------------------------
 */

static void
test_minimal(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    struct fq_sql_query *q = parse(a, "SELECT COUNT(*) FROM hied.enrollment");

    assert_int_equal(q->n_items, 1);
    assert_true(q->items[0].is_aggregate);
    assert_int_equal(q->items[0].agg, FQ_SQL_AGG_COUNT_STAR);
    assert_null(q->items[0].column.name);
    assert_pos(q->items[0].pos, 1, 8);
    assert_string_equal(q->source.name, "hied");
    assert_pos(q->source.pos, 1, 22);
    assert_string_equal(q->dataset.name, "enrollment");
    assert_pos(q->dataset.pos, 1, 27);
    assert_null(q->where);
    assert_int_equal(q->n_group_by, 0);
    fq_arena_free(a);
}

static void
test_full_query(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    struct fq_sql_query *q =
        parse(a, "SELECT town, COUNT(*), SUM(wages) FROM dol.wages "
                 "WHERE quarter BETWEEN '2023Q1' AND '2023Q4' "
                 "AND industry IN ('23', '31') GROUP BY town");

    assert_int_equal(q->n_items, 3);
    assert_false(q->items[0].is_aggregate);
    assert_string_equal(q->items[0].column.name, "town");
    assert_pos(q->items[0].column.pos, 1, 8);
    assert_true(q->items[1].is_aggregate);
    assert_int_equal(q->items[1].agg, FQ_SQL_AGG_COUNT_STAR);
    assert_pos(q->items[1].pos, 1, 14);
    assert_int_equal(q->items[2].agg, FQ_SQL_AGG_SUM);
    assert_string_equal(q->items[2].column.name, "wages");
    assert_pos(q->items[2].pos, 1, 24);
    assert_pos(q->items[2].column.pos, 1, 28);
    assert_string_equal(q->source.name, "dol");
    assert_string_equal(q->dataset.name, "wages");

    const struct fq_sql_pred *w = q->where;
    assert_non_null(w);
    assert_int_equal(w->kind, FQ_SQL_PRED_AND);
    assert_pos(w->pos, 1, 56);
    assert_int_equal(w->n_kids, 2);
    const struct fq_sql_pred *b = w->kids[0], *in = w->kids[1];
    assert_int_equal(b->kind, FQ_SQL_PRED_BETWEEN);
    assert_string_equal(b->column.name, "quarter");
    assert_pos(b->pos, 1, 56);
    assert_int_equal(b->n_lits, 2);
    assert_int_equal(b->lits[0].kind, FQ_SQL_LIT_STRING);
    assert_string_equal(b->lits[0].s, "2023Q1");
    assert_string_equal(b->lits[0].text, "'2023Q1'");
    assert_pos(b->lits[0].pos, 1, 72);
    assert_string_equal(b->lits[1].s, "2023Q4");
    assert_int_equal(in->kind, FQ_SQL_PRED_IN);
    assert_string_equal(in->column.name, "industry");
    assert_pos(in->pos, 1, 98);
    assert_int_equal(in->n_lits, 2);
    assert_string_equal(in->lits[0].s, "23");
    assert_string_equal(in->lits[1].s, "31");
    assert_pos(in->lits[1].pos, 1, 117);
    assert_int_equal(q->n_group_by, 1);
    assert_string_equal(q->group_by[0].name, "town");
    assert_pos(q->group_by[0].pos, 1, 132);
    fq_arena_free(a);
}

static void
test_aggregates(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    struct fq_sql_query *q = parse(a, "SELECT program, month, AVG(benefit), "
                                      "SUM ( benefit ), count( * ) "
                                      "FROM dss.enrollment GROUP BY program, "
                                      "month");

    assert_int_equal(q->n_items, 5);
    assert_int_equal(q->items[2].agg, FQ_SQL_AGG_AVG);
    assert_string_equal(q->items[2].column.name, "benefit");
    assert_int_equal(q->items[3].agg, FQ_SQL_AGG_SUM);
    assert_int_equal(q->items[4].agg, FQ_SQL_AGG_COUNT_STAR);
    assert_int_equal(q->n_group_by, 2);
    assert_string_equal(q->group_by[1].name, "month");
    assert_string_equal(fq_sql_agg_name(FQ_SQL_AGG_COUNT_STAR), "COUNT");
    assert_string_equal(fq_sql_agg_name(FQ_SQL_AGG_SUM), "SUM");
    assert_string_equal(fq_sql_agg_name(FQ_SQL_AGG_AVG), "AVG");
    fq_arena_free(a);
}

/* Aggregate names are not reserved: only "name(" is an aggregate. */
static void
test_aggregate_names_as_columns(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    struct fq_sql_query *q = parse(
        a, "SELECT count, sum, SUM(count) FROM x.avg WHERE avg = 1 GROUP BY "
           "count, sum");

    assert_false(q->items[0].is_aggregate);
    assert_string_equal(q->items[0].column.name, "count");
    assert_string_equal(q->items[1].column.name, "sum");
    assert_true(q->items[2].is_aggregate);
    assert_string_equal(q->items[2].column.name, "count");
    assert_string_equal(q->dataset.name, "avg");
    assert_string_equal(q->where->column.name, "avg");
    fq_arena_free(a);
}

static void
test_comparisons(void **state)
{
    static const struct {
        const char *op;
        enum fq_sql_cmp cmp;
        const char *name;
    } ops[] = {
        {"=", FQ_SQL_EQ, "="},   {"<>", FQ_SQL_NE, "<>"},
        {"!=", FQ_SQL_NE, "<>"}, {"<", FQ_SQL_LT, "<"},
        {"<=", FQ_SQL_LE, "<="}, {">", FQ_SQL_GT, ">"},
        {">=", FQ_SQL_GE, ">="},
    };
    char sql[128];

    (void)state;
    for (size_t i = 0; i < FQ_ARRAY_LEN(ops); i++) {
        struct fq_arena *a = fq_arena_new(ARENA_MAX);
        /* No spaces around the operator: the lexer must still split. */
        snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM a.b WHERE x%s-5",
                 ops[i].op);
        struct fq_sql_query *q = parse(a, sql);
        assert_int_equal(q->where->kind, FQ_SQL_PRED_CMP);
        assert_int_equal(q->where->op, ops[i].cmp);
        assert_string_equal(fq_sql_cmp_name(ops[i].cmp), ops[i].name);
        assert_int_equal(q->where->n_lits, 1);
        assert_int_equal(q->where->lits[0].i, -5);
        assert_pos(q->where->lits[0].pos, 1, 33 + (int)strlen(ops[i].op));
        fq_arena_free(a);
    }
}

static void
test_literals(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    struct fq_sql_query *q =
        parse(a, "SELECT COUNT(*) FROM a.b WHERE x IN (42, -7, 007, -0, 12.5, "
                 "-0.25, 000.100, 'text', '', 'it''s', '''', 'two\nlines', "
                 "'-- not a comment', 'caf\xc3\xa9')");
    const struct fq_sql_literal *l = q->where->lits;

    assert_int_equal(q->where->n_lits, 14);
    assert_int_equal(l[0].kind, FQ_SQL_LIT_INT);
    assert_int_equal(l[0].i, 42);
    assert_int_equal(l[1].i, -7);
    assert_string_equal(l[1].text, "-7");
    assert_int_equal(l[2].i, 7);
    assert_string_equal(l[2].text, "007");
    assert_int_equal(l[3].i, 0);
    assert_int_equal(l[4].kind, FQ_SQL_LIT_DECIMAL);
    assert_true(l[4].d == 12.5);
    assert_string_equal(l[4].text, "12.5");
    assert_true(l[5].d == -0.25);
    assert_true(l[6].d == 0.1);
    assert_string_equal(l[6].text, "000.100");
    assert_int_equal(l[7].kind, FQ_SQL_LIT_STRING);
    assert_string_equal(l[7].s, "text");
    assert_string_equal(l[8].s, "");
    assert_string_equal(l[8].text, "''");
    assert_string_equal(l[9].s, "it's");
    assert_string_equal(l[9].text, "'it''s'");
    assert_string_equal(l[10].s, "'");
    assert_string_equal(l[11].s, "two\nlines");
    assert_string_equal(l[12].s, "-- not a comment");
    assert_string_equal(l[13].s, "caf\xc3\xa9");
    /* The literal after the two-line string is on line 2. */
    assert_pos(l[12].pos, 2, 9);
    fq_arena_free(a);
}

static void
test_int64_edges(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    struct fq_sql_query *q =
        parse(a, "SELECT COUNT(*) FROM a.b WHERE x BETWEEN "
                 "-9223372036854775808 AND 9223372036854775807");

    assert_true(q->where->lits[0].i == INT64_MIN);
    assert_true(q->where->lits[1].i == INT64_MAX);
    q = parse(a, "SELECT COUNT(*) FROM a.b WHERE x = "
                 "-00000000000000000000009223372036854775808");
    assert_true(q->where->lits[0].i == INT64_MIN);
    fq_arena_free(a);

    assert_error("SELECT COUNT(*) FROM a.b WHERE x = 9223372036854775808",
                 "line 1, column 36: integer literal out of range");
    assert_error("SELECT COUNT(*) FROM a.b WHERE x = -9223372036854775809",
                 "line 1, column 36: integer literal out of range");
    assert_error("SELECT COUNT(*) FROM a.b\nWHERE x IN (1,\n  "
                 "99999999999999999999999999)",
                 "line 3, column 3: integer literal out of range");
}

static void
test_decimal_range(void **state)
{
    (void)state;
    char *big =
        repeat("SELECT COUNT(*) FROM a.b WHERE x = ", "9", "", 400, ".5");
    char *tiny =
        repeat("SELECT COUNT(*) FROM a.b WHERE x = 0.", "0", "", 400, "1");
    struct fq_arena *a = fq_arena_new(ARENA_MAX);

    assert_error(big, "line 1, column 36: decimal literal out of range");
    /* Underflow is no error: the value rounds to zero, text stays exact. */
    struct fq_sql_query *q = parse(a, tiny);
    assert_true(q->where->lits[0].d == 0.0);
    assert_int_equal(strlen(q->where->lits[0].text), 403);
    /* DBL_MAX itself, all 309 digits, is in range; ten times it is not. */
    free(big);
    big = repeat("SELECT COUNT(*) FROM a.b WHERE x = 17976931348623157", "0",
                 "", 292, ".0");
    q = parse(a, big);
    assert_true(q->where->lits[0].d == 1.7976931348623157e308);
    free(big);
    big = repeat("SELECT COUNT(*) FROM a.b WHERE x = -17976931348623157", "0",
                 "", 293, ".0");
    assert_error(big, "line 1, column 36: decimal literal out of range");
    fq_arena_free(a);
    free(big);
    free(tiny);
}

static void
test_case_insensitive_keywords(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    struct fq_sql_query *q =
        parse(a, "select Town, count(*), Sum(Wages), aVg(Age) from Dol.Wages "
                 "where A between 1 and 2 AnD b In (1) Group bY Town");

    assert_string_equal(q->items[0].column.name, "Town");
    assert_int_equal(q->items[2].agg, FQ_SQL_AGG_SUM);
    assert_string_equal(q->items[2].column.name, "Wages");
    assert_int_equal(q->items[3].agg, FQ_SQL_AGG_AVG);
    assert_string_equal(q->source.name, "Dol");
    assert_string_equal(q->dataset.name, "Wages");
    assert_int_equal(q->where->kind, FQ_SQL_PRED_AND);
    assert_string_equal(q->group_by[0].name, "Town");
    assert_string_equal(fq_sql_format(q, a),
                        "SELECT Town, COUNT(*), SUM(Wages), AVG(Age) FROM "
                        "Dol.Wages WHERE A BETWEEN 1 AND 2 AND b IN (1) GROUP "
                        "BY Town");
    fq_arena_free(a);
}

static void
test_whitespace_and_comments(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    struct fq_sql_query *q = parse(
        a, "  -- enrollment by year\r\n\tSELECT\n\n  year,COUNT(*)-- all\r\n"
           "FROM\thied . enrollment\f\vWHERE year>=1995--the end");

    assert_string_equal(q->items[0].column.name, "year");
    assert_pos(q->items[0].pos, 4, 3);
    assert_pos(q->source.pos, 5, 6);
    assert_pos(q->dataset.pos, 5, 13);
    assert_int_equal(q->where->lits[0].i, 1995);
    assert_pos(q->where->pos, 5, 31);
    /* Keywords glued to numbers still split: "1AND" is 1 then AND. */
    q = parse(a, "SELECT a FROM b.c WHERE x=1AND y=2");
    assert_int_equal(q->where->n_kids, 2);
    fq_arena_free(a);
}

static void
test_trailing_semicolon(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);

    parse(a, "SELECT a FROM b.c;");
    parse(a, "SELECT a FROM b.c ; -- done\n\n");
    parse(a, "SELECT a FROM b.c WHERE x = 1;");
    parse(a, "SELECT a FROM b.c GROUP BY a;");
    fq_arena_free(a);
    assert_error("SELECT a FROM b.c;;",
                 "line 1, column 19: expected end of input, found ';'");
    assert_error("SELECT a FROM b.c; SELECT a FROM b.c",
                 "line 1, column 20: expected end of input, found 'SELECT'");
}

static void
test_where_tree(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    struct fq_sql_query *q = parse(a, "SELECT a FROM b.c WHERE x = 1");

    /* One test is a leaf, not an AND of one. */
    assert_int_equal(q->where->kind, FQ_SQL_PRED_CMP);
    assert_null(q->where->kids);
    q = parse(a, "SELECT a FROM b.c WHERE x = 1 AND y BETWEEN 2 AND 3 AND "
                 "z IN (4) AND w <> 'v'");
    const struct fq_sql_pred *w = q->where;
    assert_int_equal(w->kind, FQ_SQL_PRED_AND);
    assert_int_equal(w->n_kids, 4);
    assert_int_equal(w->kids[0]->kind, FQ_SQL_PRED_CMP);
    assert_int_equal(w->kids[1]->kind, FQ_SQL_PRED_BETWEEN);
    assert_int_equal(w->kids[1]->lits[1].i, 3);
    assert_int_equal(w->kids[2]->kind, FQ_SQL_PRED_IN);
    assert_int_equal(w->kids[3]->op, FQ_SQL_NE);
    for (size_t i = 0; i < w->n_kids; i++)
        assert_int_equal(w->kids[i]->n_kids, 0);
    fq_arena_free(a);
}

/* ---- errors ----------------------------------------------------------------
 */

static void
test_errors_select(void **state)
{
    (void)state;
    assert_error("", "line 1, column 1: expected SELECT, found end of input");
    assert_error("   \n  ",
                 "line 2, column 3: expected SELECT, found end of input");
    assert_error("SELEC a FROM b.c",
                 "line 1, column 1: expected SELECT, found 'SELEC'");
    assert_error("SELECT",
                 "line 1, column 7: expected an aggregate or a column name, "
                 "found end of input");
    assert_error("SELECT FROM b.c", "line 1, column 8: expected an aggregate "
                                    "or a column name, found 'FROM'");
    assert_error("SELECT a FORM b.c",
                 "line 1, column 10: expected ',' or FROM, found 'FORM'");
    assert_error("SELECT a b FROM c.d",
                 "line 1, column 10: expected ',' or FROM, found 'b'");
    assert_error("SELECT a, FROM b.c", "line 1, column 11: expected an "
                                       "aggregate or a column name, found "
                                       "'FROM'");
    assert_error("SELECT a,, b FROM c.d", "line 1, column 10: expected an "
                                          "aggregate or a column name, found "
                                          "','");
    assert_error("SELECT 'town' FROM b.c",
                 "line 1, column 8: expected an aggregate or a column name, "
                 "found string 'town'");
    assert_error("SELECT 5 FROM b.c", "line 1, column 8: expected an "
                                      "aggregate or a column name, found "
                                      "'5'");
    assert_error("SELECT * FROM b.c", "line 1, column 8: expected an "
                                      "aggregate or a column name, found "
                                      "'*'");
}

static void
test_errors_aggregates(void **state)
{
    (void)state;
    assert_error("SELECT COUNT(x) FROM b.c",
                 "line 1, column 14: expected '*' or DISTINCT, found 'x'");
    assert_error("SELECT COUNT() FROM b.c",
                 "line 1, column 14: expected '*' or DISTINCT, found ')'");
    assert_error("SELECT COUNT(* FROM b.c",
                 "line 1, column 16: expected ')', found 'FROM'");
    assert_error("SELECT SUM(*) FROM b.c",
                 "line 1, column 12: expected a column name, found '*'");
    assert_error("SELECT AVG(x FROM b.c",
                 "line 1, column 14: expected ')', found 'FROM'");
    assert_error("SELECT SUM(x, y) FROM b.c",
                 "line 1, column 13: expected ')', found ','");
    assert_error("SELECT MAX(x) FROM b.c",
                 "line 1, column 8: expected COUNT, SUM, AVG, VAR, STDDEV, "
                 "HISTOGRAM or QUANTILE, found 'MAX'");
    assert_error("SELECT a, median (x) FROM b.c",
                 "line 1, column 11: expected COUNT, SUM, AVG, VAR, STDDEV, "
                 "HISTOGRAM or QUANTILE, found 'median'");
    assert_error("SELECT SUM(", "line 1, column 12: expected a column name, "
                                "found end of input");
}

static void
test_errors_from(void **state)
{
    (void)state;
    assert_error("SELECT a FROM", "line 1, column 14: expected an agency or "
                                  "alias name, found end of input");
    assert_error("SELECT a FROM where.x", "line 1, column 15: expected an "
                                          "agency or alias name, found "
                                          "'where'");
    assert_error("SELECT a FROM dol", "line 1, column 18: expected '.' after "
                                      "the agency or alias, found end of "
                                      "input");
    assert_error("SELECT a FROM dol wages", "line 1, column 19: expected '.' "
                                            "after the agency or alias, "
                                            "found 'wages'");
    assert_error("SELECT a FROM dol.", "line 1, column 19: expected a dataset "
                                       "name, found end of input");
    assert_error("SELECT a FROM dol.'w'", "line 1, column 19: expected a "
                                          "dataset name, found string 'w'");
    assert_error("SELECT a FROM dol.wages.x",
                 "line 1, column 24: expected WHERE, GROUP BY, ORDER BY, "
                 "LIMIT or end of "
                 "input, found '.'");
    assert_error("SELECT a FROM dol.wages x",
                 "line 1, column 25: expected WHERE, GROUP BY, ORDER BY, "
                 "LIMIT or end of "
                 "input, found 'x'");
}

static void
test_errors_where(void **state)
{
    (void)state;
    assert_error("SELECT a FROM b.c WHERE",
                 "line 1, column 24: expected a column name, NOT or '(', "
                 "found end of input");
    assert_error("SELECT a FROM b.c WHERE 5 < age",
                 "line 1, column 25: expected a column name, NOT or '(', "
                 "found '5'");
    assert_error("SELECT a FROM b.c WHERE age 5",
                 "line 1, column 29: expected a comparison operator, BETWEEN, "
                 "IN, IS or NOT, found '5'");
    assert_error("SELECT a FROM b.c WHERE age == 5",
                 "line 1, column 30: expected a literal, found '='");
    assert_error("SELECT a FROM b.c WHERE age =",
                 "line 1, column 30: expected a literal, found end of input");
    assert_error("SELECT a FROM b.c WHERE age = other",
                 "line 1, column 31: expected a literal, found 'other'");
    assert_error("SELECT a FROM b.c WHERE age = - 5",
                 "line 1, column 31: expected a literal, found '-'");
    assert_error("SELECT a FROM b.c WHERE age = 5.",
                 "line 1, column 32: expected AND, OR, GROUP BY, ORDER BY, "
                 "LIMIT or end of input, "
                 "found '.'");
    assert_error("SELECT a FROM b.c WHERE age BETWEEN 1 2",
                 "line 1, column 39: expected AND, found '2'");
    assert_error("SELECT a FROM b.c WHERE age BETWEEN 1 AND",
                 "line 1, column 42: expected a literal, found end of input");
    assert_error("SELECT a FROM b.c WHERE a = 1 b = 2",
                 "line 1, column 31: expected AND, OR, GROUP BY, ORDER BY, "
                 "LIMIT or end of input, "
                 "found 'b'");
    assert_error("SELECT a FROM b.c WHERE a = 1 AND",
                 "line 1, column 34: expected a column name, NOT or '(', "
                 "found end of input");
    assert_error("SELECT a FROM b.c WHERE a = 1 AND AND b = 1",
                 "line 1, column 35: expected a column name, NOT or '(', "
                 "found 'AND'");
}

static void
test_errors_in_list(void **state)
{
    (void)state;
    assert_error("SELECT a FROM b.c WHERE x IN 1",
                 "line 1, column 30: expected '(', found '1'");
    assert_error("SELECT a FROM b.c WHERE x IN ()",
                 "line 1, column 31: expected a literal, found ')'");
    assert_error("SELECT a FROM b.c WHERE x IN (1, 2",
                 "line 1, column 35: expected ',' or ')', found end of input");
    assert_error("SELECT a FROM b.c WHERE x IN (1 2)",
                 "line 1, column 33: expected ',' or ')', found '2'");
    assert_error("SELECT a FROM b.c WHERE x IN (1,)",
                 "line 1, column 33: expected a literal, found ')'");
    assert_error("SELECT a FROM b.c WHERE x IN ('a', b)",
                 "line 1, column 36: expected a literal, found 'b'");
    assert_error("SELECT a FROM b.c WHERE x IN (1; 2)",
                 "line 1, column 32: expected ',' or ')', found ';'");
}

static void
test_errors_group_by(void **state)
{
    (void)state;
    assert_error("SELECT a FROM b.c GROUP a",
                 "line 1, column 25: expected BY, found 'a'");
    assert_error("SELECT a FROM b.c GROUP",
                 "line 1, column 24: expected BY, found end of input");
    assert_error("SELECT a FROM b.c GROUP BY",
                 "line 1, column 27: expected a column name, found end of "
                 "input");
    assert_error("SELECT a FROM b.c GROUP BY a b",
                 "line 1, column 30: expected ',', ORDER BY, LIMIT or end of "
                 "input, found 'b'");
    assert_error("SELECT a FROM b.c GROUP BY a,",
                 "line 1, column 30: expected a column name, found end of "
                 "input");
    assert_error("SELECT a FROM b.c GROUP BY SUM(x)",
                 "line 1, column 31: expected ',', ORDER BY, LIMIT or end of "
                 "input, found '('");
    assert_error("SELECT a FROM b.c GROUP BY a WHERE x = 1",
                 "line 1, column 30: expected ',', ORDER BY, LIMIT or end of "
                 "input, found "
                 "'WHERE'");
}

static void
test_errors_characters(void **state)
{
    (void)state;
    assert_error("SELECT # FROM b.c", "line 1, column 8: expected an "
                                      "aggregate or a column name, found "
                                      "'#'");
    assert_error("SELECT a FROM b.c WHERE x ! 1",
                 "line 1, column 27: expected a comparison operator, BETWEEN, "
                 "IN, IS or NOT, found '!'");
    assert_error("SELECT a FROM b.c WHERE x = \"y\"",
                 "line 1, column 29: expected a literal, found '\"y\"'");
    assert_error("SELECT caf\xc3\xa9 FROM b.c",
                 "line 1, column 11: expected ',' or FROM, found "
                 "'\\xc3\\xa9'");
    assert_error("SELECT \x01", "line 1, column 8: expected an aggregate or "
                                "a column name, found '\\x01'");
    assert_error("SELECT \\", "line 1, column 8: expected an aggregate or a "
                              "column name, found '\\\\'");
    assert_error("SELECT caf\xf0\x9f\x98\x80 FROM b.c",
                 "line 1, column 11: expected ',' or FROM, found "
                 "'\\xf0\\x9f\\x98\\x80'");
    /* A lone lead byte is one invalid byte, not a character. */
    assert_error("SELECT \xc3 FROM", "line 1, column 8: expected an aggregate "
                                     "or a column name, found '\\xc3'");
    assert_error("SELECT a FROM b.c # no",
                 "line 1, column 19: expected WHERE, GROUP BY, ORDER BY, "
                 "LIMIT or end of "
                 "input, found '#'");
    /* Tokens longer than 32 bytes are cut in the message. */
    assert_error("SELECT a FROM b.c WHERE x IN (1 "
                 "abcdefghijabcdefghijabcdefghijabcdefghij)",
                 "line 1, column 33: expected ',' or ')', found "
                 "'abcdefghijabcdefghijabcdefghijab...'");
    assert_error("SELECT 'abcdefghijabcdefghijabcdefghijklm' FROM b.c",
                 "line 1, column 8: expected an aggregate or a column name, "
                 "found string 'abcdefghijabcdefghijabcdefghijk...");
}

static void
test_errors_strings(void **state)
{
    (void)state;
    assert_error("SELECT a FROM b.c WHERE x = 'abc",
                 "line 1, column 29: unterminated string literal");
    assert_error("SELECT a FROM b.c WHERE x = 'it''",
                 "line 1, column 29: unterminated string literal");
    assert_error("SELECT a\nFROM b.c\nWHERE x = 'one\ntwo\n",
                 "line 3, column 11: unterminated string literal");
    assert_error("SELECT a FROM b.c WHERE x = '",
                 "line 1, column 29: unterminated string literal");
    /* Found while looking one token ahead for an aggregate's '('. */
    assert_error("SELECT a 'open", "line 1, column 10: unterminated string "
                                   "literal");
}

static void
test_errors_multiline(void **state)
{
    (void)state;
    assert_error("SELECT town,\n       COUNT(*)\nFROM dol.wages\n"
                 "WHERE quarter BETWEEN '2023Q1' '2023Q4'",
                 "line 4, column 32: expected AND, found string '2023Q4'");
    assert_error("SELECT a\r\nFROM b.c\r\nWHERE x\r\n",
                 "line 4, column 1: expected a comparison operator, BETWEEN, "
                 "IN, IS or NOT, found end of input");
    assert_error("SELECT a -- the column\n\tFROM -- the source\n",
                 "line 3, column 1: expected an agency or alias name, found "
                 "end of input");
    assert_error("SELECT a\nFROM b.c\nGROUP BY a,\n\n  b c",
                 "line 5, column 5: expected ',', ORDER BY, LIMIT or end of "
                 "input, found 'c'");
    assert_error("SELECT a\nFROM b.c\nWHERE x IN (1,\n            2,\n"
                 "            3 4)",
                 "line 5, column 15: expected ',' or ')', found '4'");
    /* A tab is one byte, so one column. */
    assert_error("SELECT\ta\tFROM\tb.c\tWHERE\tx\t=",
                 "line 1, column 28: expected a literal, found end of input");
}

static void
test_nul_byte(void **state)
{
    (void)state;
    assert_error_len("SELECT a\0 FROM b.c", 18,
                     "line 1, column 9: NUL byte in query");
    assert_error_len("SELECT a FROM b.c\nWHERE x = 'a\0b'", 33,
                     "line 2, column 13: NUL byte in query");
    assert_error_len("\0", 1, "line 1, column 1: NUL byte in query");
    /* Only len bytes are read: a NUL after them is not part of the text. */
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    parse_len(a, "SELECT a FROM b.c\0garbage", 17);
    fq_arena_free(a);
}

/* Nothing is written to ret on failure, nor to err on success. */
static void
test_outputs_untouched(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    struct fq_sql_query *q = NULL;
    struct fq_sql_error err;

    memset(&err, 0x5a, sizeof(err));
    assert_int_equal(fq_sql_parse("SELECT a FROM b.c", 17, a, &q, &err), 0);
    assert_non_null(q);
    assert_int_equal(err.pos.line, 0x5a5a5a5a);
    assert_int_equal(err.msg[0], 0x5a);
    q = NULL;
    assert_int_equal(fq_sql_parse("SELECT", 6, a, &q, NULL), FQ_EINVAL);
    assert_null(q);
    assert_int_equal(fq_sql_parse(NULL, 0, a, &q, &err), FQ_EINVAL);
    assert_string_equal(
        err.msg, "line 1, column 1: expected SELECT, found end of input");
    fq_arena_free(a);
}

/* ---- limits ----------------------------------------------------------------
 */

static void
test_limit_text(void **state)
{
    (void)state;
    const char *sql = "SELECT COUNT(*) FROM a.b ";
    char *text = malloc(FQ_SQL_MAX_TEXT + 2);
    struct fq_arena *a = fq_arena_new(ARENA_MAX);

    assert_non_null(text);
    memset(text, ' ', FQ_SQL_MAX_TEXT + 1);
    memcpy(text, sql, strlen(sql));
    text[FQ_SQL_MAX_TEXT + 1] = '\0';
    parse_len(a, text, FQ_SQL_MAX_TEXT);
    assert_error_len(text, FQ_SQL_MAX_TEXT + 1,
                     "query is longer than 65536 bytes");
    /* The length check comes first, before any syntax error. */
    memset(text, '#', FQ_SQL_MAX_TEXT + 1);
    assert_error_len(text, FQ_SQL_MAX_TEXT + 1,
                     "query is longer than 65536 bytes");
    free(text);
    fq_arena_free(a);
}

static void
test_limit_items(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    char *ok = repeat("SELECT ", "ab", ", ", 64, " FROM b.c");
    char *over = repeat("SELECT ", "ab", ", ", 65, " FROM b.c");

    assert_int_equal(parse(a, ok)->n_items, 64);
    assert_error_at(over, strlen("SELECT ") + 64 * strlen("ab, "),
                    "more than 64 select items");
    free(ok);
    free(over);
    ok = repeat("SELECT ", "COUNT(*)", ",", 64, " FROM b.c");
    over = repeat("SELECT ", "COUNT(*)", ",", 65, " FROM b.c");
    assert_int_equal(parse(a, ok)->n_items, 64);
    assert_error_at(over, strlen("SELECT ") + 64 * strlen("COUNT(*),"),
                    "more than 64 select items");
    free(ok);
    free(over);
    fq_arena_free(a);
}

static void
test_limit_predicates(void **state)
{
    (void)state;
    const char *prefix = "SELECT a FROM b.c WHERE ";
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    char *ok = repeat(prefix, "x = 1", " AND ", 256, "");
    char *over = repeat(prefix, "x = 1", " AND ", 257, "");

    assert_int_equal(parse(a, ok)->where->n_kids, 256);
    assert_error_at(over, strlen(prefix) + 256 * strlen("x = 1 AND "),
                    "more than 256 predicates");
    free(ok);
    free(over);
    /* BETWEEN and IN count as one predicate each. */
    ok = repeat(prefix, "x BETWEEN 1 AND 2", " AND ", 256, "");
    over = repeat(prefix, "y IN (1, 2)", " AND ", 257, " GROUP BY a");
    assert_int_equal(parse(a, ok)->where->n_kids, 256);
    assert_error_at(over, strlen(prefix) + 256 * strlen("y IN (1, 2) AND "),
                    "more than 256 predicates");
    free(ok);
    free(over);
    fq_arena_free(a);
}

static void
test_limit_in_list(void **state)
{
    (void)state;
    const char *prefix = "SELECT a FROM b.c WHERE x IN (";
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    char *ok = repeat(prefix, "'v'", ", ", 1024, ")");
    char *over = repeat(prefix, "'v'", ", ", 1025, ")");

    assert_int_equal(parse(a, ok)->where->n_lits, 1024);
    assert_error_at(over, strlen(prefix) + 1024 * strlen("'v', "),
                    "more than 1024 values in an IN list");
    free(ok);
    free(over);
    /* The limit is per list. */
    ok = repeat(prefix, "1", ",", 1024, ") AND y IN (");
    over = repeat(ok, "2", ",", 1024, ")");
    struct fq_sql_query *q = parse(a, over);
    assert_int_equal(q->where->kids[0]->n_lits, 1024);
    assert_int_equal(q->where->kids[1]->n_lits, 1024);
    free(ok);
    free(over);
    fq_arena_free(a);
}

static void
test_limit_group_by(void **state)
{
    (void)state;
    const char *prefix = "SELECT a FROM b.c GROUP BY ";
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    char *ok = repeat(prefix, "g", ", ", 16, "");
    char *over = repeat(prefix, "g", ", ", 17, ";");

    assert_int_equal(parse(a, ok)->n_group_by, 16);
    assert_error_at(over, strlen(prefix) + 16 * strlen("g, "),
                    "more than 16 GROUP BY columns");
    free(ok);
    free(over);
    fq_arena_free(a);
}

static void
test_limit_identifier(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    char *ok = repeat("SELECT ", "a", "", 63, " FROM b.c");
    char *over = repeat("SELECT ", "a", "", 64, " FROM b.c");
    char *dataset = repeat("SELECT a FROM b.", "_", "", 64, "");
    char *group = repeat("SELECT a FROM b.c GROUP BY a, ", "Z9", "", 32, "");

    assert_int_equal(strlen(parse(a, ok)->items[0].column.name), 63);
    assert_error_at(over, 7, "identifier is longer than 63 bytes");
    assert_error_at(dataset, 16, "identifier is longer than 63 bytes");
    assert_error_at(group, 30, "identifier is longer than 63 bytes");
    /* Keywords are identifiers first: an overlong one is still too long. */
    char *kw = repeat("SELECT a FROM b.c ", "WHERE", "", 13, "");
    assert_error_at(kw, 18, "identifier is longer than 63 bytes");
    free(ok);
    free(over);
    free(dataset);
    free(group);
    free(kw);
    fq_arena_free(a);
}

static void
test_limit_string(void **state)
{
    (void)state;
    const char *prefix = "SELECT a FROM b.c WHERE x = '";
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    char *ok = repeat(prefix, "s", "", 1024, "'");
    char *over = repeat(prefix, "s", "", 1025, "'");
    /* The limit counts decoded bytes: 1024 quotes take 2048 source bytes. */
    char *quotes = repeat(prefix, "''", "", 1024, "'");
    char *quotes_over = repeat(prefix, "''", "", 1025, "'");
    /* An overlong unterminated string is reported as overlong. */
    char *open = repeat(prefix, "s", "", 2000, "");

    assert_int_equal(strlen(parse(a, ok)->where->lits[0].s), 1024);
    assert_error_at(over, 28, "string literal is longer than 1024 bytes");
    struct fq_sql_query *q = parse(a, quotes);
    assert_int_equal(strlen(q->where->lits[0].s), 1024);
    assert_int_equal(q->where->lits[0].s[1023], '\'');
    assert_error_at(quotes_over, 28,
                    "string literal is longer than 1024 bytes");
    assert_error_at(open, 28, "string literal is longer than 1024 bytes");
    free(ok);
    free(over);
    free(quotes);
    free(quotes_over);
    free(open);
    fq_arena_free(a);
}

/*
 * The documented arena bound holds for the shapes that need the most
 * memory per byte of text: IN lists of one-character literals, and of
 * empty strings, filling the 64 KiB.
 */
static void
test_memory_bound(void **state)
{
    static const char *const elems[] = {"1", "''"};

    (void)state;
    for (size_t e = 0; e < FQ_ARRAY_LEN(elems); e++) {
        char *list = repeat("x IN (", elems[e], ",", 1024, ")");
        size_t per = strlen(list) + strlen(" AND ");
        size_t n = (FQ_SQL_MAX_TEXT - 40) / per;
        char *sql = repeat("SELECT a FROM b.c WHERE ", list, " AND ", n, "");
        struct fq_arena *a = fq_arena_new(FQ_SQL_PARSE_MEMORY_MAX);

        assert_true(strlen(sql) <= FQ_SQL_MAX_TEXT);
        assert_int_equal(parse(a, sql)->where->n_kids, n);
        print_message("%zu bytes of text, %zu of arena\n", strlen(sql),
                      fq_arena_used(a));
        assert_true(fq_arena_used(a) < FQ_SQL_PARSE_MEMORY_MAX / 2 + 1);
        fq_arena_free(a);
        free(list);
        free(sql);
    }
}

/* With every arena cap below what a query needs, parsing fails cleanly. */
static void
test_out_of_memory(void **state)
{
    const char *sql = "SELECT town, COUNT(*), SUM(wages) FROM dol.wages "
                      "WHERE quarter BETWEEN '2023Q1' AND '2023Q4' AND "
                      "industry IN ('23', '31', 44.5) GROUP BY town";
    struct fq_sql_error err;
    size_t need;

    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    parse(a, sql);
    need = fq_arena_used(a);
    fq_arena_free(a);
    for (size_t cap = 0; cap < need; cap += 16) {
        struct fq_sql_query *q = NULL;
        a = fq_arena_new(cap);
        int rc = fq_sql_parse(sql, strlen(sql), a, &q, &err);
        assert_int_equal(rc, FQ_ENOMEM);
        assert_null(q);
        assert_string_equal(err.msg, "out of memory");
        fq_arena_free(a);
    }
    a = fq_arena_new(need);
    parse(a, sql);
    fq_arena_free(a);
}

/* ---- formatting ------------------------------------------------------------
 */

static void
test_format_round_trip(void **state)
{
    static const char *const cases[][2] = {
        {"SELECT COUNT(*) FROM hied.enrollment WHERE birth_year >= 1995",
         "SELECT COUNT(*) FROM hied.enrollment WHERE birth_year >= 1995"},
        {"select program,month,avg(benefit) from dss.enrollment group by "
         "program,month;",
         "SELECT program, month, AVG(benefit) FROM dss.enrollment GROUP BY "
         "program, month"},
        {"SELECT town, COUNT(*), SUM(wages) FROM dol.wages WHERE quarter "
         "BETWEEN '2023Q1' AND '2023Q4' AND industry IN ('23', '31') GROUP "
         "BY town",
         "SELECT town, COUNT(*), SUM(wages) FROM dol.wages WHERE quarter "
         "BETWEEN '2023Q1' AND '2023Q4' AND industry IN ('23', '31') GROUP "
         "BY town"},
        {"SELECT a FROM b.c WHERE x!=1 AND y<>-2 AND z<3 AND w<=4 AND v>5 "
         "AND u>=6",
         "SELECT a FROM b.c WHERE x <> 1 AND y <> -2 AND z < 3 AND w <= 4 "
         "AND v > 5 AND u >= 6"},
        {"SELECT a FROM b.c WHERE x IN (007, -0, 00.50, -1.0, 'it''s', '''', "
         "'', 'a\nb')",
         "SELECT a FROM b.c WHERE x IN (7, 0, 00.50, -1.0, 'it''s', '''', "
         "'', 'a\nb')"},
        {"  -- comment\nSELECT\tcount ,COUNT( * )FROM a . b--x\n;--y",
         "SELECT count, COUNT(*) FROM a.b"},
        {"SELECT x FROM a.b WHERE n BETWEEN -9223372036854775808 AND "
         "9223372036854775807",
         "SELECT x FROM a.b WHERE n BETWEEN -9223372036854775808 AND "
         "9223372036854775807"},
        {"SELECT sum, SUM(sum) FROM avg.count WHERE count IN ('--', '/*') "
         "GROUP BY sum",
         "SELECT sum, SUM(sum) FROM avg.count WHERE count IN ('--', '/*') "
         "GROUP BY sum"},
        {"SELECT AVG(_a1), _ FROM A_.B_ WHERE _ = 'caf\xc3\xa9\t' GROUP BY _",
         "SELECT AVG(_a1), _ FROM A_.B_ WHERE _ = 'caf\xc3\xa9\t' GROUP BY _"},
    };

    (void)state;
    for (size_t i = 0; i < FQ_ARRAY_LEN(cases); i++)
        assert_format(cases[i][0], cases[i][1]);
}

/* Canonical spacing can take a query near the limit past it. */
static void
test_format_longer_than_limit(void **state)
{
    (void)state;
    char *list = repeat("x IN (", "1", ",", 1024, ")");
    char *sql = repeat("SELECT a FROM b.c WHERE ", list, " AND ", 31, "");
    struct fq_arena *a = fq_arena_new(ARENA_MAX);

    assert_true(strlen(sql) <= FQ_SQL_MAX_TEXT);
    char *f = fq_sql_format(parse(a, sql), a);
    assert_non_null(f);
    assert_true(strlen(f) > FQ_SQL_MAX_TEXT);
    fq_arena_free(a);
    free(list);
    free(sql);
}

/*
 * ORDER BY keys given by position are written out as their items: a
 * select item filling most of the text, named 16 times, formats to
 * over 1 MiB (the formatter's buffer was once capped there).
 */
static void
test_format_order_by_expansion(void **state)
{
    (void)state;
    char *zeros = repeat("", "0", "", 960, "");
    char *edges = malloc(64 * 1000);
    size_t n = 0;

    assert_non_null(edges);
    for (int i = 0; i < 64; i++)
        n += (size_t)snprintf(edges + n, 64 * 1000 - n, "%s%s%d.5",
                              i ? "," : "", zeros, i);
    char *item = repeat("SELECT HISTOGRAM(x,", edges, "", 1, ") FROM a.b ");
    char *order = repeat("ORDER BY ", "1", ",", 16, "");
    char *sql = repeat(item, order, "", 1, "");
    struct fq_arena *a = fq_arena_new(4 * ARENA_MAX);

    assert_true(strlen(sql) <= FQ_SQL_MAX_TEXT);
    char *f = fq_sql_format(parse(a, sql), a);
    assert_non_null(f);
    assert_true(strlen(f) > 1024 * 1024);
    fq_arena_free(a);
    free(zeros);
    free(edges);
    free(item);
    free(order);
    free(sql);
}

static void
test_format_out_of_memory(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    struct fq_sql_query *q = parse(a, "SELECT a FROM b.c");
    struct fq_arena *small = fq_arena_new(8);

    assert_null(fq_sql_format(q, small));
    fq_arena_free(small);
    fq_arena_free(a);
}

/* ---- version 2: boolean filters --------------------------------------------
 */

static const struct fq_sql_pred *
where_of(struct fq_arena *a, const char *filter)
{
    char sql[512];

    snprintf(sql, sizeof(sql), "SELECT a FROM b.c WHERE %s", filter);
    return parse(a, sql)->where;
}

/* No AND directly under an AND, no OR under an OR, kid counts right. */
static void
assert_canonical(const struct fq_sql_pred *pr)
{
    if (pr->kind == FQ_SQL_PRED_NOT)
        assert_int_equal(pr->n_kids, 1);
    else if (pr->kind == FQ_SQL_PRED_AND || pr->kind == FQ_SQL_PRED_OR)
        assert_true(pr->n_kids >= 2);
    else
        assert_int_equal(pr->n_kids, 0);
    for (size_t i = 0; i < pr->n_kids; i++) {
        if (pr->kind != FQ_SQL_PRED_NOT)
            assert_int_not_equal(pr->kids[i]->kind, pr->kind);
        assert_canonical(pr->kids[i]);
    }
}

/* Nodes on the longest path from pr to a leaf, both counted. */
static size_t
tree_depth(const struct fq_sql_pred *pr)
{
    size_t d = 0;

    for (size_t i = 0; i < pr->n_kids; i++) {
        size_t k = tree_depth(pr->kids[i]);
        d = k > d ? k : d;
    }
    return d + 1;
}

static void
assert_leaf(const struct fq_sql_pred *pr, enum fq_sql_pred_kind kind,
            const char *column)
{
    assert_int_equal(pr->kind, kind);
    assert_string_equal(pr->column.name, column);
    assert_int_equal(pr->n_kids, 0);
}

static void
test_precedence(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);

    /* AND binds tighter than OR, on either side. */
    const struct fq_sql_pred *w = where_of(a, "x = 1 OR y = 2 AND z = 3");
    assert_int_equal(w->kind, FQ_SQL_PRED_OR);
    assert_pos(w->pos, 1, 25);
    assert_int_equal(w->n_kids, 2);
    assert_leaf(w->kids[0], FQ_SQL_PRED_CMP, "x");
    assert_int_equal(w->kids[1]->kind, FQ_SQL_PRED_AND);
    assert_pos(w->kids[1]->pos, 1, 34);
    assert_leaf(w->kids[1]->kids[1], FQ_SQL_PRED_CMP, "z");
    w = where_of(a, "x = 1 AND y = 2 OR z = 3");
    assert_int_equal(w->kind, FQ_SQL_PRED_OR);
    assert_int_equal(w->kids[0]->kind, FQ_SQL_PRED_AND);
    assert_leaf(w->kids[1], FQ_SQL_PRED_CMP, "z");
    /* NOT binds tighter than AND. */
    w = where_of(a, "NOT x = 1 AND y = 2");
    assert_int_equal(w->kind, FQ_SQL_PRED_AND);
    assert_int_equal(w->kids[0]->kind, FQ_SQL_PRED_NOT);
    assert_pos(w->kids[0]->pos, 1, 25);
    assert_leaf(w->kids[0]->kids[0], FQ_SQL_PRED_CMP, "x");
    assert_pos(w->kids[0]->kids[0]->pos, 1, 29);
    assert_leaf(w->kids[1], FQ_SQL_PRED_CMP, "y");
    w = where_of(a, "NOT x = 1 OR NOT NOT y = 2");
    assert_int_equal(w->kind, FQ_SQL_PRED_OR);
    assert_int_equal(w->kids[1]->kind, FQ_SQL_PRED_NOT);
    assert_int_equal(w->kids[1]->kids[0]->kind, FQ_SQL_PRED_NOT);
    assert_leaf(w->kids[1]->kids[0]->kids[0], FQ_SQL_PRED_CMP, "y");
    /* Parentheses override it and leave no node. */
    w = where_of(a, "(x = 1 OR y = 2) AND z = 3");
    assert_int_equal(w->kind, FQ_SQL_PRED_AND);
    assert_pos(w->pos, 1, 25);
    assert_int_equal(w->kids[0]->kind, FQ_SQL_PRED_OR);
    assert_pos(w->kids[0]->pos, 1, 26);
    w = where_of(a, "NOT (x = 1 AND y = 2)");
    assert_int_equal(w->kind, FQ_SQL_PRED_NOT);
    assert_int_equal(w->kids[0]->kind, FQ_SQL_PRED_AND);
    w = where_of(a, "((((x = 1))))");
    assert_leaf(w, FQ_SQL_PRED_CMP, "x");
    assert_pos(w->pos, 1, 29);
    /* Keywords are case-insensitive. */
    w = where_of(a, "not x = 1 Or y Is nUlL aNd z iS NoT null");
    assert_int_equal(w->kind, FQ_SQL_PRED_OR);
    assert_int_equal(w->kids[1]->kind, FQ_SQL_PRED_AND);
    fq_arena_free(a);
}

static void
test_flattening(void **state)
{
    static const struct {
        const char *filter;
        enum fq_sql_pred_kind kind;
        size_t n_kids;
    } cases[] = {
        {"a = 1 AND (b = 2 AND c = 3) AND d = 4", FQ_SQL_PRED_AND, 4},
        {"(a = 1 AND b = 2) AND (c = 3 AND (d = 4 AND e = 5))", FQ_SQL_PRED_AND,
         5},
        {"((a = 1 AND ((b = 2))))", FQ_SQL_PRED_AND, 2},
        {"(a = 1 OR b = 2) OR (c = 3 OR d = 4)", FQ_SQL_PRED_OR, 4},
        {"a = 1 OR (b = 2 OR (c = 3 OR d = 4 AND e = 5))", FQ_SQL_PRED_OR, 4},
        {"a = 1 AND (b = 2 OR c = 3) AND (d = 4 OR e = 5)", FQ_SQL_PRED_AND, 3},
        {"a = 1 OR (b = 2 AND c = 3) OR d = 4", FQ_SQL_PRED_OR, 3},
        /* NOT is never merged or simplified. */
        {"NOT (a = 1 AND b = 2) AND NOT (c = 3 AND d = 4)", FQ_SQL_PRED_AND, 2},
        {"NOT NOT (a = 1)", FQ_SQL_PRED_NOT, 1},
    };

    (void)state;
    for (size_t i = 0; i < FQ_ARRAY_LEN(cases); i++) {
        struct fq_arena *a = fq_arena_new(ARENA_MAX);
        const struct fq_sql_pred *w = where_of(a, cases[i].filter);
        if (w->kind != cases[i].kind || w->n_kids != cases[i].n_kids)
            fail_msg("%s: kind %d with %zu kids", cases[i].filter, w->kind,
                     w->n_kids);
        assert_canonical(w);
        fq_arena_free(a);
    }
}

/* "x NOT IN", "NOT x IN" and "NOT (x IN)" give the same tree. */
static void
test_not_forms(void **state)
{
    static const char *const in_forms[] = {"x NOT IN (1, 2)", "NOT x IN (1, 2)",
                                           "NOT (x IN (1, 2))",
                                           "(NOT ((x IN (1, 2))))"};
    static const char *const between_forms[] = {"x NOT BETWEEN 1 AND 2",
                                                "NOT x BETWEEN 1 AND 2",
                                                "NOT (x BETWEEN 1 AND 2)"};

    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    for (size_t i = 0; i < FQ_ARRAY_LEN(in_forms); i++) {
        const struct fq_sql_pred *w = where_of(a, in_forms[i]);
        assert_int_equal(w->kind, FQ_SQL_PRED_NOT);
        assert_int_equal(w->n_kids, 1);
        assert_leaf(w->kids[0], FQ_SQL_PRED_IN, "x");
        assert_int_equal(w->kids[0]->n_lits, 2);
        assert_int_equal(w->kids[0]->lits[1].i, 2);
    }
    for (size_t i = 0; i < FQ_ARRAY_LEN(between_forms); i++) {
        const struct fq_sql_pred *w = where_of(a, between_forms[i]);
        assert_int_equal(w->kind, FQ_SQL_PRED_NOT);
        assert_leaf(w->kids[0], FQ_SQL_PRED_BETWEEN, "x");
    }
    /* A postfix NOT sits at the column; a prefix one at itself. */
    const struct fq_sql_pred *w = where_of(a, "y = 1 AND x NOT IN (1)");
    assert_pos(w->kids[1]->pos, 1, 35);
    assert_pos(w->kids[1]->kids[0]->pos, 1, 35);
    w = where_of(a, "y = 1 AND NOT x IN (1)");
    assert_pos(w->kids[1]->pos, 1, 35);
    assert_pos(w->kids[1]->kids[0]->pos, 1, 39);
    /* The BETWEEN's AND is its own, even under NOT. */
    w = where_of(a, "x NOT BETWEEN 1 AND 2 AND y = 3");
    assert_int_equal(w->kind, FQ_SQL_PRED_AND);
    assert_int_equal(w->n_kids, 2);
    assert_int_equal(w->kids[0]->kind, FQ_SQL_PRED_NOT);
    fq_arena_free(a);
}

static void
test_is_null(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    const struct fq_sql_pred *w = where_of(a, "x IS NULL");

    assert_leaf(w, FQ_SQL_PRED_IS_NULL, "x");
    assert_false(w->negated);
    assert_int_equal(w->n_lits, 0);
    assert_null(w->lits);
    w = where_of(a, "x is not null AND NOT y IS NULL");
    assert_leaf(w->kids[0], FQ_SQL_PRED_IS_NULL, "x");
    assert_true(w->kids[0]->negated);
    assert_int_equal(w->kids[1]->kind, FQ_SQL_PRED_NOT);
    assert_false(w->kids[1]->kids[0]->negated);
    fq_arena_free(a);
}

static void
test_errors_boolean(void **state)
{
    (void)state;
    assert_error("SELECT a FROM b.c WHERE (x = 1",
                 "line 1, column 31: expected AND, OR or ')', found end of "
                 "input");
    assert_error("SELECT a FROM b.c WHERE (x = 1 y",
                 "line 1, column 32: expected AND, OR or ')', found 'y'");
    assert_error("SELECT a FROM b.c WHERE x = 1)",
                 "line 1, column 30: expected AND, OR, GROUP BY, ORDER BY, "
                 "LIMIT or end of input, found ')'");
    assert_error("SELECT a FROM b.c WHERE ()",
                 "line 1, column 26: expected a column name, NOT or '(', "
                 "found ')'");
    assert_error("SELECT a FROM b.c WHERE NOT",
                 "line 1, column 28: expected a column name, NOT or '(', "
                 "found end of input");
    assert_error("SELECT a FROM b.c WHERE x = 1 OR",
                 "line 1, column 33: expected a column name, NOT or '(', "
                 "found end of input");
    assert_error("SELECT a FROM b.c WHERE x = 1 OR OR y = 2",
                 "line 1, column 34: expected a column name, NOT or '(', "
                 "found 'OR'");
    assert_error("SELECT a FROM b.c WHERE x NOT = 1",
                 "line 1, column 31: expected BETWEEN or IN, found '='");
    assert_error("SELECT a FROM b.c WHERE x NOT NULL",
                 "line 1, column 31: expected BETWEEN or IN, found 'NULL'");
    assert_error("SELECT a FROM b.c WHERE x IS",
                 "line 1, column 29: expected NOT or NULL, found end of input");
    assert_error("SELECT a FROM b.c WHERE x IS 1",
                 "line 1, column 30: expected NOT or NULL, found '1'");
    assert_error("SELECT a FROM b.c WHERE x IS NOT 'a'",
                 "line 1, column 34: expected NULL, found string 'a'");
    assert_error("SELECT a FROM b.c WHERE x IS NULL NULL",
                 "line 1, column 35: expected AND, OR, GROUP BY, ORDER BY, "
                 "LIMIT or end of input, found 'NULL'");
    assert_error("SELECT a FROM b.c WHERE x = NULL",
                 "line 1, column 29: expected a literal, found 'NULL'");
    assert_error("SELECT a FROM b.c WHERE x BETWEEN 1 OR 2",
                 "line 1, column 37: expected AND, found 'OR'");
    assert_error("SELECT a FROM b.c WHERE x NOT IN 1",
                 "line 1, column 34: expected '(', found '1'");
    assert_error("SELECT a FROM b.c WHERE NOT NOT",
                 "line 1, column 32: expected a column name, NOT or '(', "
                 "found end of input");
}

/* ---- version 2: aggregates ----------------------------------------------- */

static void
test_new_aggregates(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    struct fq_sql_query *q = parse(
        a, "SELECT COUNT(DISTINCT person_id), var(wages), StdDev(wages), "
           "HISTOGRAM(wages, -1.5, -1, 0, 0.25, 1000), quantile ( wages , "
           "0.5 ) FROM dol.wages");
    const struct fq_sql_item *it = q->items;

    assert_int_equal(q->n_items, 5);
    assert_true(it[0].is_aggregate);
    assert_int_equal(it[0].agg, FQ_SQL_AGG_COUNT_DISTINCT);
    assert_string_equal(it[0].column.name, "person_id");
    assert_pos(it[0].pos, 1, 8);
    assert_pos(it[0].column.pos, 1, 23);
    assert_int_equal(it[0].n_args, 0);
    assert_null(it[0].args);
    assert_int_equal(it[1].agg, FQ_SQL_AGG_VAR);
    assert_string_equal(it[1].column.name, "wages");
    assert_int_equal(it[2].agg, FQ_SQL_AGG_STDDEV);
    assert_int_equal(it[3].agg, FQ_SQL_AGG_HISTOGRAM);
    assert_string_equal(it[3].column.name, "wages");
    assert_int_equal(it[3].n_args, 5);
    assert_int_equal(it[3].args[0].kind, FQ_SQL_LIT_DECIMAL);
    assert_true(it[3].args[0].d == -1.5);
    assert_int_equal(it[3].args[1].kind, FQ_SQL_LIT_INT);
    assert_int_equal(it[3].args[1].i, -1);
    assert_int_equal(it[3].args[4].i, 1000);
    assert_pos(it[3].args[4].pos, 1, 98);
    assert_int_equal(it[4].agg, FQ_SQL_AGG_QUANTILE);
    assert_int_equal(it[4].n_args, 1);
    assert_int_equal(it[4].args[0].kind, FQ_SQL_LIT_DECIMAL);
    assert_true(it[4].args[0].d == 0.5);
    assert_pos(it[4].pos, 1, 105);
    /* Names for messages, canonical text for headers. */
    static const char *const names[][2] = {
        {"COUNT DISTINCT", "COUNT(DISTINCT person_id)"},
        {"VAR", "VAR(wages)"},
        {"STDDEV", "STDDEV(wages)"},
        {"HISTOGRAM", "HISTOGRAM(wages, -1.5, -1, 0, 0.25, 1000)"},
        {"QUANTILE", "QUANTILE(wages, 0.5)"},
    };
    for (size_t i = 0; i < FQ_ARRAY_LEN(names); i++) {
        assert_string_equal(fq_sql_agg_name(it[i].agg), names[i][0]);
        assert_string_equal(fq_sql_item_format(&it[i], a), names[i][1]);
    }
    assert_string_equal(fq_sql_agg_name((enum fq_sql_agg)99), "?");
    assert_string_equal(fq_sql_cmp_name((enum fq_sql_cmp)99), "?");
    /* Aggregate names stay usable as columns. */
    q = parse(a, "SELECT var, stddev, histogram, quantile, distinct_ FROM "
                 "a.b GROUP BY var");
    assert_false(q->items[3].is_aggregate);
    assert_string_equal(q->items[3].column.name, "quantile");
    fq_arena_free(a);
}

/* Edges compare by value, exactly, across INT and DECIMAL. */
static void
test_histogram_edges(void **state)
{
    static const char *const ok[] = {
        "0",
        "-1, 1",
        "0.5, 1",
        "1, 1.5",
        "-0.5, 0",
        "-1, -0.5",
        "9007199254740992, 9007199254740993",
        "9223372036854775806, 9223372036854775807",
        "-9223372036854775808, -9223372036854775000.5",
        "9223372036854775807, 9223372036854775808.0",
    };
    static const struct {
        const char *edges;
        const char *msg;
    } bad[] = {
        {"1, 1", "found 1 after 1"},
        {"1, 1.0", "found 1.0 after 1"},
        {"1.0, 1", "found 1 after 1.0"},
        {"0, -0.0", "found -0.0 after 0"},
        {"2, 1.5", "found 1.5 after 2"},
        {"0.5, 0.50", "found 0.50 after 0.5"},
        /* As a double, ...993.0 is ...992: the edges would be equal. */
        {"9007199254740992.0, 9007199254740993.0",
         "found 9007199254740993.0 after 9007199254740992.0"},
        {"9007199254740993, 9007199254740993.0",
         "found 9007199254740993.0 after 9007199254740993"},
        {"-9223372036854775808, -9223372036854775808.5",
         "found -9223372036854775808.5 after -9223372036854775808"},
        /* Rounds to -2^63 as a double. */
        {"-9223372036854775808, -9223372036854775807.5",
         "found -9223372036854775807.5 after -9223372036854775808"},
    };
    char sql[256], msg[256];

    (void)state;
    for (size_t i = 0; i < FQ_ARRAY_LEN(ok); i++) {
        struct fq_arena *a = fq_arena_new(ARENA_MAX);
        snprintf(sql, sizeof(sql), "SELECT HISTOGRAM(x, %s) FROM a.b", ok[i]);
        parse(a, sql);
        fq_arena_free(a);
    }
    for (size_t i = 0; i < FQ_ARRAY_LEN(bad); i++) {
        snprintf(sql, sizeof(sql), "SELECT HISTOGRAM(x, %s) FROM a.b",
                 bad[i].edges);
        snprintf(msg, sizeof(msg),
                 "line 1, column %zu: histogram edges must be strictly "
                 "increasing, %s",
                 strlen("SELECT HISTOGRAM(x, ") +
                     (size_t)(strchr(bad[i].edges, ',') - bad[i].edges) + 3,
                 bad[i].msg);
        assert_error(sql, msg);
    }
}

static void
test_errors_new_aggregates(void **state)
{
    (void)state;
    assert_error("SELECT COUNT(DISTINCT) FROM b.c",
                 "line 1, column 22: expected a column name, found ')'");
    assert_error("SELECT COUNT(DISTINCT *) FROM b.c",
                 "line 1, column 23: expected a column name, found '*'");
    assert_error("SELECT COUNT(DISTINCT x, y) FROM b.c",
                 "line 1, column 24: expected ')', found ','");
    assert_error("SELECT SUM(DISTINCT x) FROM b.c",
                 "line 1, column 12: expected a column name, found "
                 "'DISTINCT'");
    assert_error("SELECT VAR(*) FROM b.c",
                 "line 1, column 12: expected a column name, found '*'");
    assert_error("SELECT STDDEV(x, 1) FROM b.c",
                 "line 1, column 16: expected ')', found ','");
    assert_error("SELECT HISTOGRAM(x) FROM b.c",
                 "line 1, column 19: expected ',', found ')'");
    assert_error("SELECT HISTOGRAM(x,) FROM b.c",
                 "line 1, column 20: expected a number, found ')'");
    assert_error("SELECT HISTOGRAM(x, 'a') FROM b.c",
                 "line 1, column 21: expected a number, found string 'a'");
    assert_error("SELECT HISTOGRAM(x, 1 2) FROM b.c",
                 "line 1, column 23: expected ',' or ')', found '2'");
    assert_error("SELECT HISTOGRAM(x, 1, y) FROM b.c",
                 "line 1, column 24: expected a number, found 'y'");
    assert_error("SELECT HISTOGRAM(x, 5, 10, 3) FROM b.c",
                 "line 1, column 28: histogram edges must be strictly "
                 "increasing, found 3 after 10");
    assert_error("SELECT HISTOGRAM(x, 99999999999999999999) FROM b.c",
                 "line 1, column 21: integer literal out of range");
    assert_error("SELECT QUANTILE(x) FROM b.c",
                 "line 1, column 18: expected ',', found ')'");
    assert_error("SELECT QUANTILE(x, 1) FROM b.c",
                 "line 1, column 20: expected a decimal between 0 and 1, "
                 "found '1'");
    assert_error("SELECT QUANTILE(x, 0) FROM b.c",
                 "line 1, column 20: expected a decimal between 0 and 1, "
                 "found '0'");
    assert_error("SELECT QUANTILE(x, 0.0) FROM b.c",
                 "line 1, column 20: expected a decimal between 0 and 1, "
                 "found '0.0'");
    assert_error("SELECT QUANTILE(x, 1.0) FROM b.c",
                 "line 1, column 20: expected a decimal between 0 and 1, "
                 "found '1.0'");
    assert_error("SELECT QUANTILE(x, -0.5) FROM b.c",
                 "line 1, column 20: expected a decimal between 0 and 1, "
                 "found '-0.5'");
    assert_error("SELECT QUANTILE(x, 1.5) FROM b.c",
                 "line 1, column 20: expected a decimal between 0 and 1, "
                 "found '1.5'");
    assert_error("SELECT QUANTILE(x, '0.5') FROM b.c",
                 "line 1, column 20: expected a decimal between 0 and 1, "
                 "found string '0.5'");
    /* Rounds to 1 as a double, so it is not below 1. */
    assert_error("SELECT QUANTILE(x, 0.99999999999999999999) FROM b.c",
                 "line 1, column 20: expected a decimal between 0 and 1, "
                 "found '0.99999999999999999999'");
    assert_error("SELECT QUANTILE(x, 0.5, 0.6) FROM b.c",
                 "line 1, column 23: expected ')', found ','");
    /* Only a plain name before '(' is an aggregate. */
    assert_error("SELECT \"count\"(*) FROM b.c",
                 "line 1, column 15: expected ',' or FROM, found '('");
    assert_error("SELECT a FROM b.c WHERE COUNT(*) > 1",
                 "line 1, column 30: expected a comparison operator, "
                 "BETWEEN, IN, IS or NOT, found '('");
}

/* "SELECT HISTOGRAM(x, 100, 101, ...) FROM a.b" with n edges. */
static void
histogram_sql(char *out, size_t size, size_t n)
{
    size_t len = (size_t)snprintf(out, size, "SELECT HISTOGRAM(x");

    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, size - len, ", %zu", 100 + i);
    snprintf(out + len, size - len, ") FROM a.b");
}

static void
test_limit_histogram_edges(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    char sql[1024];

    histogram_sql(sql, sizeof(sql), 64);
    struct fq_sql_query *q = parse(a, sql);
    assert_int_equal(q->items[0].n_args, 64);
    assert_int_equal(q->items[0].args[63].i, 163);
    histogram_sql(sql, sizeof(sql), 65);
    assert_error_at(sql, strlen("SELECT HISTOGRAM(x") + 64 * 5 + 2,
                    "more than 64 histogram edges");
    fq_arena_free(a);
}

/* ---- version 2: ORDER BY and LIMIT ----------------------------------------
 */

static void
test_order_by(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    struct fq_sql_query *q =
        parse(a, "SELECT town, COUNT(*), SUM(Wages), COUNT(DISTINCT p), "
                 "HISTOGRAM(w, 7, 8.5) FROM dol.wages GROUP BY town "
                 "ORDER BY count( * ) DESC, town, 3 asc, sum(\"Wages\") "
                 "Desc, COUNT(distinct p), histogram(w, 007, 8.5), \"town\"");

    assert_int_equal(q->n_order_by, 7);
    static const struct {
        size_t item;
        bool desc;
        int column;
    } want[] = {{1, true, 114}, {0, false, 131}, {2, false, 137},
                {2, true, 144}, {3, false, 163}, {4, false, 182},
                {0, false, 206}};
    for (size_t i = 0; i < FQ_ARRAY_LEN(want); i++) {
        assert_int_equal(q->order_by[i].item, want[i].item);
        assert_int_equal(q->order_by[i].desc, want[i].desc);
        assert_pos(q->order_by[i].pos, 1, want[i].column);
    }
    assert_false(q->has_limit);
    /* The first of identical items; positions may name any. */
    q = parse(a, "SELECT a, COUNT(*), a, COUNT(*) FROM b.c GROUP BY a "
                 "ORDER BY a, COUNT(*), 3, 4;");
    assert_int_equal(q->order_by[0].item, 0);
    assert_int_equal(q->order_by[1].item, 1);
    assert_int_equal(q->order_by[2].item, 2);
    assert_int_equal(q->order_by[3].item, 3);
    /* Clauses are optional independently. */
    q = parse(a, "SELECT a FROM b.c ORDER BY 1");
    assert_int_equal(q->n_order_by, 1);
    assert_null(q->where);
    fq_arena_free(a);
}

static void
test_errors_order_by(void **state)
{
    (void)state;
    const char *sel = "SELECT town, SUM(w), COUNT(*) FROM b.c ";

    assert_error("SELECT a FROM b.c ORDER a",
                 "line 1, column 25: expected BY, found 'a'");
    assert_error("SELECT a FROM b.c ORDER BY",
                 "line 1, column 27: ORDER BY must name a selected column or "
                 "position, found end of input");
    assert_error("SELECT a FROM b.c ORDER BY b",
                 "line 1, column 28: ORDER BY must name a selected column or "
                 "position, found 'b'");
    assert_error("SELECT a FROM b.c ORDER BY A",
                 "line 1, column 28: ORDER BY must name a selected column or "
                 "position, found 'A'");
    assert_error("SELECT a FROM b.c ORDER BY \"b\"\"\"",
                 "line 1, column 28: ORDER BY must name a selected column or "
                 "position, found '\"b\"\"\"'");
    assert_error("SELECT a FROM b.c ORDER BY 'a'",
                 "line 1, column 28: ORDER BY must name a selected column or "
                 "position, found string 'a'");
    assert_error("SELECT a FROM b.c ORDER BY 1.5",
                 "line 1, column 28: ORDER BY must name a selected column or "
                 "position, found '1.5'");
    assert_error("SELECT a FROM b.c ORDER BY DESC",
                 "line 1, column 28: ORDER BY must name a selected column or "
                 "position, found 'DESC'");
    assert_error("SELECT a FROM b.c ORDER BY a,",
                 "line 1, column 30: ORDER BY must name a selected column or "
                 "position, found end of input");
    char sql[256];
    snprintf(sql, sizeof(sql), "%sORDER BY SUM(town)", sel);
    assert_error(sql, "line 1, column 49: ORDER BY must name a selected "
                      "column or position, found 'SUM(town)'");
    snprintf(sql, sizeof(sql), "%sORDER BY sum ( W )", sel);
    assert_error(sql, "line 1, column 49: ORDER BY must name a selected "
                      "column or position, found 'SUM(W)'");
    snprintf(sql, sizeof(sql), "%sORDER BY COUNT(DISTINCT w)", sel);
    assert_error(sql, "line 1, column 49: ORDER BY must name a selected "
                      "column or position, found 'COUNT(DISTINCT w)'");
    snprintf(sql, sizeof(sql), "%sORDER BY QUANTILE(\"a b\", 0.5)", sel);
    assert_error(sql, "line 1, column 49: ORDER BY must name a selected "
                      "column or position, found 'QUANTILE(\"a b\", 0.5)'");
    snprintf(sql, sizeof(sql),
             "%sORDER BY HISTOGRAM(w, 1000, 2000, 3000, 4000, 5000)", sel);
    assert_error(sql, "line 1, column 49: ORDER BY must name a selected "
                      "column or position, found 'HISTOGRAM(w, 1000, 2000, "
                      "3000, 4...'");
    /* An aggregate's own errors come first. */
    snprintf(sql, sizeof(sql), "%sORDER BY MAX(w)", sel);
    assert_error(sql, "line 1, column 49: expected COUNT, SUM, AVG, VAR, "
                      "STDDEV, HISTOGRAM or QUANTILE, found 'MAX'");
    snprintf(sql, sizeof(sql), "%sORDER BY SUM(w", sel);
    assert_error(sql, "line 1, column 54: expected ')', found end of input");
    /* Positions. */
    static const char *const positions[] = {
        "0", "4", "-1", "-0", "007000", "99999999999999999999999"};
    for (size_t i = 0; i < FQ_ARRAY_LEN(positions); i++) {
        char msg[256];
        snprintf(sql, sizeof(sql), "%sORDER BY town, %s DESC", sel,
                 positions[i]);
        snprintf(msg, sizeof(msg),
                 "line 1, column 55: ORDER BY position must be from 1 to 3, "
                 "found '%s'",
                 positions[i]);
        assert_error(sql, msg);
    }
    /* Order of clauses, and what may follow a key. */
    assert_error("SELECT a FROM b.c ORDER BY a DESC ASC",
                 "line 1, column 35: expected ',', LIMIT or end of input, "
                 "found 'ASC'");
    assert_error("SELECT a FROM b.c ORDER BY a GROUP BY a",
                 "line 1, column 30: expected ',', LIMIT or end of input, "
                 "found 'GROUP'");
    assert_error("SELECT a FROM b.c ORDER BY a WHERE x = 1",
                 "line 1, column 30: expected ',', LIMIT or end of input, "
                 "found 'WHERE'");
    assert_error("SELECT a FROM b.c ORDER BY a(",
                 "line 1, column 28: expected COUNT, SUM, AVG, VAR, STDDEV, "
                 "HISTOGRAM or QUANTILE, found 'a'");
}

static void
test_limit_clause(void **state)
{
    static const struct {
        const char *text;
        int64_t value;
    } ok[] = {{"0", 0}, {"1", 1}, {"007", 7}, {"1000000", 1000000}};
    static const char *const bad[] = {
        "1000001", "-1", "-0", "1.5", "x", "'5'", "99999999999999999999999",
        "ALL"};
    char sql[128], msg[256];

    (void)state;
    for (size_t i = 0; i < FQ_ARRAY_LEN(ok); i++) {
        struct fq_arena *a = fq_arena_new(ARENA_MAX);
        snprintf(sql, sizeof(sql), "SELECT a FROM b.c LIMIT %s;", ok[i].text);
        struct fq_sql_query *q = parse(a, sql);
        assert_true(q->has_limit);
        assert_true(q->limit == ok[i].value);
        assert_pos(q->limit_pos, 1, 25);
        fq_arena_free(a);
    }
    for (size_t i = 0; i < FQ_ARRAY_LEN(bad); i++) {
        snprintf(sql, sizeof(sql), "SELECT a FROM b.c LIMIT %s", bad[i]);
        snprintf(msg, sizeof(msg),
                 "line 1, column 25: expected a row count from 0 to 1000000, "
                 "found %s%s%s",
                 bad[i][0] == '\'' ? "string " : "'", bad[i],
                 bad[i][0] == '\'' ? "" : "'");
        assert_error(sql, msg);
    }
    assert_error("SELECT a FROM b.c LIMIT",
                 "line 1, column 24: expected a row count from 0 to 1000000, "
                 "found end of input");
    assert_error("SELECT a FROM b.c LIMIT 5 LIMIT 6",
                 "line 1, column 27: expected end of input, found 'LIMIT'");
    assert_error("SELECT a FROM b.c LIMIT 5 ORDER BY a",
                 "line 1, column 27: expected end of input, found 'ORDER'");
    assert_error("SELECT a FROM b.c LIMIT 5 OFFSET 2",
                 "line 1, column 27: expected end of input, found 'OFFSET'");
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    struct fq_sql_query *q = parse(a, "SELECT a FROM b.c WHERE x = 1 GROUP "
                                      "BY a ORDER BY a LIMIT\n  3");
    assert_int_equal(q->limit, 3);
    assert_pos(q->limit_pos, 2, 3);
    fq_arena_free(a);
}

static void
test_limit_order_by(void **state)
{
    (void)state;
    const char *prefix = "SELECT a FROM b.c ORDER BY ";
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    char *ok = repeat(prefix, "a DESC", ", ", 16, "");
    char *over = repeat(prefix, "a DESC", ", ", 17, "");

    assert_int_equal(parse(a, ok)->n_order_by, 16);
    assert_error_at(over, strlen(prefix) + 16 * strlen("a DESC, "),
                    "more than 16 ORDER BY keys");
    free(ok);
    free(over);
    fq_arena_free(a);
}

/* ---- version 2: quoted identifiers, comments, reserved words ------------- */

static void
test_quoted_identifiers(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    struct fq_sql_query *q = parse(
        a, "SELECT \"town\", SUM(\"2x\"), \"say \"\"hi\"\"\", \"select\" "
           "FROM \"dol-2\".\"wages\" WHERE \"a b\" = 1 AND \"\"\"\" IS NULL "
           "GROUP BY \"town\", \"select\"");

    assert_string_equal(q->items[0].column.name, "town");
    assert_pos(q->items[0].column.pos, 1, 8);
    assert_false(q->items[0].is_aggregate);
    assert_string_equal(q->items[1].column.name, "2x");
    assert_pos(q->items[1].column.pos, 1, 20);
    assert_string_equal(q->items[2].column.name, "say \"hi\"");
    assert_string_equal(q->items[3].column.name, "select");
    assert_string_equal(q->source.name, "dol-2");
    assert_pos(q->source.pos, 1, 55);
    assert_string_equal(q->dataset.name, "wages");
    assert_string_equal(q->where->kids[0]->column.name, "a b");
    assert_string_equal(q->where->kids[1]->column.name, "\"");
    assert_string_equal(q->group_by[1].name, "select");
    /* Quoted across lines: positions after it follow the newline. */
    q = parse(a, "SELECT \"a\nb\", c FROM d.e");
    assert_string_equal(q->items[0].column.name, "a\nb");
    assert_pos(q->items[1].column.pos, 2, 5);
    fq_arena_free(a);
}

static void
test_errors_quoted_identifiers(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    /* The limit is on decoded bytes: 63 quotes are 126 inside. */
    char *ok = repeat("SELECT \"", "\"\"", "", 63, "\" FROM b.c");
    char *over = repeat("SELECT \"", "\"\"", "", 64, "\" FROM b.c");
    char *plain = repeat("SELECT \"", "x", "", 64, "\" FROM b.c");
    char *open = repeat("SELECT \"", "x", "", 200, "");

    assert_int_equal(strlen(parse(a, ok)->items[0].column.name), 63);
    assert_error_at(over, 7, "identifier is longer than 63 bytes");
    assert_error_at(plain, 7, "identifier is longer than 63 bytes");
    assert_error_at(open, 7, "identifier is longer than 63 bytes");
    assert_error("SELECT \"\" FROM b.c",
                 "line 1, column 8: quoted identifier is empty");
    assert_error("SELECT a FROM b.\"c",
                 "line 1, column 17: unterminated quoted identifier");
    assert_error("SELECT a FROM b.c\nWHERE \"x\"\" = 1",
                 "line 2, column 7: unterminated quoted identifier");
    assert_error("SELECT a FROM b.c WHERE x = \"y\"",
                 "line 1, column 29: expected a literal, found '\"y\"'");
    free(ok);
    free(over);
    free(plain);
    free(open);
    fq_arena_free(a);
}

static void
test_block_comments(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    struct fq_sql_query *q =
        parse(a, "/* first */SELECT/**/a/* -- */,/*\n * two\n */ b FROM c.d "
                 "/*/ still **/ WHERE x = '/* no */' -- /* not a block\n;");

    assert_int_equal(q->n_items, 2);
    assert_pos(q->items[0].pos, 1, 22);
    assert_pos(q->items[1].pos, 3, 5);
    assert_string_equal(q->where->lits[0].s, "/* no */");
    /* Block comments do not nest: the first star-slash ends it. */
    assert_error("SELECT a /* x /* y */ b */ FROM c.d",
                 "line 1, column 23: expected ',' or FROM, found 'b'");
    fq_arena_free(a);
    assert_error("SELECT a FROM b.c /* open",
                 "line 1, column 19: unterminated comment");
    assert_error("SELECT a\nFROM b.c\n  /*/ open *\n/",
                 "line 3, column 3: unterminated comment");
    assert_error("SELECT a FROM b.c /", "line 1, column 19: expected WHERE, "
                                        "GROUP BY, ORDER BY, LIMIT or end "
                                        "of input, found '/'");
    assert_error("SELECT a FROM b.c */", "line 1, column 19: expected WHERE, "
                                         "GROUP BY, ORDER BY, LIMIT or end "
                                         "of input, found '*'");
    /* Found while looking one token ahead for an aggregate's '('. */
    assert_error("SELECT a /*", "line 1, column 10: unterminated comment");
}

static void
test_reserved_words(void **state)
{
    static const char *const words[] = {
        "or", "NOT", "Is", "null", "ORDER", "asc", "DESC", "limit", "DISTINCT"};
    char sql[128], msg[256];

    (void)state;
    for (size_t i = 0; i < FQ_ARRAY_LEN(words); i++) {
        snprintf(sql, sizeof(sql), "SELECT %s FROM b.c", words[i]);
        snprintf(msg, sizeof(msg),
                 "line 1, column 8: expected an aggregate or a column name, "
                 "found '%s'",
                 words[i]);
        assert_error(sql, msg);
        /* Quoted, any word is a name. */
        struct fq_arena *a = fq_arena_new(ARENA_MAX);
        snprintf(sql, sizeof(sql), "SELECT \"%s\" FROM b.c", words[i]);
        assert_string_equal(parse(a, sql)->items[0].column.name, words[i]);
        fq_arena_free(a);
    }
}

/* ---- version 2: nesting and leaf limits -----------------------------------
 */

static void
test_limit_depth(void **state)
{
    (void)state;
    const char *prefix = "SELECT a FROM b.c WHERE ";
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    const char *msg = "expression nested deeper than 32 levels";

    char *ok = repeat(prefix, "(", "", 32, "x = 1");
    char *tmp = repeat(ok, ")", "", 32, "");
    assert_leaf(parse(a, tmp)->where, FQ_SQL_PRED_CMP, "x");
    free(ok);
    free(tmp);
    char *over = repeat(prefix, "(", "", 33, "x = 1");
    assert_error_at(over, strlen(prefix) + 32, msg);
    free(over);
    /* NOT counts as a level, and "NOT (" as one. */
    ok = repeat(prefix, "NOT", " ", 32, " x = 1");
    assert_int_equal(tree_depth(parse(a, ok)->where), 33);
    free(ok);
    over = repeat(prefix, "NOT", " ", 33, " x = 1");
    assert_error_at(over, strlen(prefix) + 32 * 4, msg);
    free(over);
    ok = repeat(prefix, "NOT (", "", 32, "x = 1");
    tmp = repeat(ok, ")", "", 32, "");
    assert_int_equal(tree_depth(parse(a, tmp)->where), 33);
    free(ok);
    free(tmp);
    over = repeat(prefix, "NOT (", "", 32, "(x = 1");
    assert_error_at(over, strlen(prefix) + 32 * 5, msg);
    free(over);
    /* A postfix NOT is a level too, at its own token. */
    ok = repeat(prefix, "(", "", 31, "x NOT IN (1)");
    tmp = repeat(ok, ")", "", 31, "");
    parse(a, tmp);
    free(ok);
    free(tmp);
    over = repeat(prefix, "(", "", 32, "x NOT IN (1)");
    assert_error_at(over, strlen(prefix) + 32 + 2, msg);
    free(over);
    /* The limit is on nesting, not on the count: siblings are free. */
    tmp = repeat(prefix, "NOT NOT NOT NOT x = 1", " OR ", 40, "");
    assert_int_equal(parse(a, tmp)->where->n_kids, 40);
    free(tmp);
    fq_arena_free(a);
}

/*
 * The deepest tree 32 levels allow: the top OR and AND, an OR and an AND
 * in each of 32 parentheses, and the leaf (2 * 32 + 3 nodes, as sql.h
 * says).
 */
static char *
deepest_tree_sql(const char *leaf)
{
    const char *prefix = "SELECT a FROM b.c WHERE y = 1 OR y = 1 AND ";
    char *open = repeat(prefix, "(y = 1 OR y = 1 AND ", "", 32, leaf);
    char *sql = repeat(open, ")", "", 32, "");

    free(open);
    return sql;
}

static void
test_tree_depth_bound(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    char *sql = deepest_tree_sql("x = 1");
    struct fq_sql_query *q = parse(a, sql);

    assert_canonical(q->where);
    assert_int_equal(tree_depth(q->where), 2 * FQ_SQL_MAX_DEPTH + 3);
    free(sql);
    /* A NOT at the bottom would be one level too many. */
    sql = deepest_tree_sql("x NOT IN (1)");
    assert_error_at(sql, strlen(sql) - 32 - strlen("NOT IN (1)"),
                    "expression nested deeper than 32 levels");
    free(sql);
    fq_arena_free(a);
}

static void
test_limit_predicates_boolean(void **state)
{
    (void)state;
    const char *prefix = "SELECT a FROM b.c WHERE ";
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    char *ok = repeat(prefix, "x IS NULL", " OR ", 256, "");
    char *over = repeat(prefix, "(x = 1 OR NOT y IN (1))", " AND ", 129, "");

    assert_int_equal(parse(a, ok)->where->n_kids, 256);
    /* The 257th leaf is the x of the 129th group. */
    assert_error_at(
        over, strlen(prefix) + 128 * strlen("(x = 1 OR NOT y IN (1)) AND ") + 1,
        "more than 256 predicates");
    free(ok);
    free(over);
    fq_arena_free(a);
}

/*
 * HISTOGRAM edges and NOT nodes are the new shapes heavy on memory per
 * byte of text; both stay within the documented bound.
 */
static void
test_memory_bound_v2(void **state)
{
    (void)state;
    char edges[256];
    size_t n = 0;

    for (int i = 0; i < 64; i++)
        n += (size_t)snprintf(edges + n, sizeof(edges) - n, "%s%d",
                              i ? "," : "", i - 32);
    char *item = repeat("HISTOGRAM(x,", edges, "", 1, ")");
    char *items = repeat("SELECT ", item, ",", 64, " FROM a.b ORDER BY ");
    char *sql = repeat(items, item, ",", 16, "");
    struct fq_arena *a = fq_arena_new(FQ_SQL_PARSE_MEMORY_MAX);

    assert_true(strlen(sql) <= FQ_SQL_MAX_TEXT);
    assert_int_equal(parse(a, sql)->n_order_by, 16);
    print_message("%zu bytes of text, %zu of arena\n", strlen(sql),
                  fq_arena_used(a));
    assert_true(fq_arena_used(a) < FQ_SQL_PARSE_MEMORY_MAX / 2);
    fq_arena_free(a);
    free(sql);
    char *nots = repeat("", "NOT ", "", 31, "x=1");
    sql = repeat("SELECT a FROM b.c WHERE ", nots, " OR ", 256, "");
    a = fq_arena_new(FQ_SQL_PARSE_MEMORY_MAX);
    assert_true(strlen(sql) <= FQ_SQL_MAX_TEXT);
    parse(a, sql);
    print_message("%zu bytes of text, %zu of arena\n", strlen(sql),
                  fq_arena_used(a));
    assert_true(fq_arena_used(a) < FQ_SQL_PARSE_MEMORY_MAX / 2);
    fq_arena_free(a);
    free(sql);
    free(nots);
    free(item);
    free(items);
}

static void
test_out_of_memory_v2(void **state)
{
    const char *sql = "SELECT town, COUNT(DISTINCT p), HISTOGRAM(w, 1, 2.5), "
                      "QUANTILE(w, 0.5) FROM \"dol-2\".wages WHERE NOT (a = 1 "
                      "OR b IS NULL) AND c NOT IN (1, 2) GROUP BY town ORDER "
                      "BY HISTOGRAM(w, 1, 2.5) DESC, 1 LIMIT 5";
    struct fq_sql_error err;
    size_t need;

    (void)state;
    struct fq_arena *a = fq_arena_new(ARENA_MAX);
    parse(a, sql);
    need = fq_arena_used(a);
    fq_arena_free(a);
    for (size_t cap = 0; cap < need; cap += 16) {
        struct fq_sql_query *q = NULL;
        a = fq_arena_new(cap);
        assert_int_equal(fq_sql_parse(sql, strlen(sql), a, &q, &err),
                         FQ_ENOMEM);
        assert_null(q);
        assert_string_equal(err.msg, "out of memory");
        fq_arena_free(a);
    }
}

static void
test_format_round_trip_v2(void **state)
{
    static const char *const cases[][2] = {
        {"SELECT town, COUNT(DISTINCT person_id), HISTOGRAM(wages, 0, 1000, "
         "5000), QUANTILE(wages, 0.5) FROM dol.wages WHERE a = 1 AND (b = 2 "
         "OR c IS NULL) GROUP BY town ORDER BY COUNT(DISTINCT person_id) "
         "DESC, town LIMIT 10",
         "SELECT town, COUNT(DISTINCT person_id), HISTOGRAM(wages, 0, 1000, "
         "5000), QUANTILE(wages, 0.5) FROM dol.wages WHERE a = 1 AND (b = 2 "
         "OR c IS NULL) GROUP BY town ORDER BY COUNT(DISTINCT person_id) "
         "DESC, town LIMIT 10"},
        {"select count(*), town from a.b group by town order by 1 desc, 2 "
         "asc limit 007;",
         "SELECT COUNT(*), town FROM a.b GROUP BY town ORDER BY COUNT(*) "
         "DESC, town LIMIT 7"},
        {"SELECT a FROM b.c WHERE NOT a IN (1, 2)",
         "SELECT a FROM b.c WHERE NOT (a IN (1, 2))"},
        {"SELECT a FROM b.c WHERE a NOT IN (1,2) OR x NOT BETWEEN 1 AND 2",
         "SELECT a FROM b.c WHERE NOT (a IN (1, 2)) OR NOT (x BETWEEN 1 AND "
         "2)"},
        {"SELECT a FROM b.c WHERE ((a = 1 OR b = 2)) OR (c = 3)",
         "SELECT a FROM b.c WHERE a = 1 OR b = 2 OR c = 3"},
        {"SELECT a FROM b.c WHERE a = 1 OR (b = 2 AND c = 3)",
         "SELECT a FROM b.c WHERE a = 1 OR b = 2 AND c = 3"},
        {"SELECT a FROM b.c WHERE (a = 1 OR b = 2) AND (c = 3 OR d = 4) AND "
         "e IS NOT NULL",
         "SELECT a FROM b.c WHERE (a = 1 OR b = 2) AND (c = 3 OR d = 4) AND "
         "e IS NOT NULL"},
        {"SELECT a FROM b.c WHERE not not a = 1 and not (b = 2 or c = 3)",
         "SELECT a FROM b.c WHERE NOT (NOT (a = 1)) AND NOT (b = 2 OR c = "
         "3)"},
        {"SELECT \"a b\", \"select\", \"Select\", \"x\"\"y\", \"ok\", \"_1\", "
         "\"1_\", \"caf\xc3\xa9\" FROM \"dol-2\".\"2wages\" WHERE \"or\" = 1 "
         "GROUP BY \"a b\" ORDER BY \"x\"\"y\"",
         "SELECT \"a b\", \"select\", \"Select\", \"x\"\"y\", ok, _1, \"1_\", "
         "\"caf\xc3\xa9\" FROM \"dol-2\".\"2wages\" WHERE \"or\" = 1 GROUP BY "
         "\"a b\" ORDER BY \"x\"\"y\""},
        {"/* lead */ SELECT /* in */ var(x), stddev(\"y\") /*\n*/ FROM a.b",
         "SELECT VAR(x), STDDEV(y) FROM a.b"},
        {"SELECT HISTOGRAM(x, -0.50, 007) FROM a.b",
         "SELECT HISTOGRAM(x, -0.50, 7) FROM a.b"},
        {"SELECT count, var, COUNT(DISTINCT count) FROM a.b ORDER BY 3, "
         "count",
         "SELECT count, var, COUNT(DISTINCT count) FROM a.b ORDER BY "
         "COUNT(DISTINCT count), count"},
        /* a repeated item is ordered by position: its text would name the
         * first copy */
        {"SELECT COUNT(*), SUM(w), count(*) FROM a.b ORDER BY 3 DESC, 1",
         "SELECT COUNT(*), SUM(w), COUNT(*) FROM a.b ORDER BY 3 DESC, "
         "COUNT(*)"},
        {"SELECT QUANTILE(w, 0.5), QUANTILE(w, 0.50) FROM a.b ORDER BY 2",
         "SELECT QUANTILE(w, 0.5), QUANTILE(w, 0.50) FROM a.b ORDER BY "
         "QUANTILE(w, 0.50)"},
    };

    (void)state;
    for (size_t i = 0; i < FQ_ARRAY_LEN(cases); i++)
        assert_format(cases[i][0], cases[i][1]);
}

/* The canonical form of a query at the nesting limit parses again. */
static void
test_format_at_depth_limit(void **state)
{
    (void)state;
    const char *prefix = "SELECT a FROM b.c WHERE ";
    char *nots = repeat(prefix, "NOT", " ", 32, " x = 1");
    char *want = repeat(prefix, "NOT (", "", 32, "x = 1");
    char *want_all = repeat(want, ")", "", 32, "");
    char *deep = deepest_tree_sql("x = 1");

    assert_format(nots, want_all);
    assert_format(deep, deep);
    free(nots);
    free(deep);
    free(want);
    free(want_all);
}

/* ---- lexer -----------------------------------------------------------------
 */

/* A token the lexer must produce: kind, text, position. */
struct want_token {
    enum fq_sql_tok kind;
    const char *text;
    int line, column;
};

/* Lexes text and checks its first n tokens against want. */
static void
expect_tokens(const char *text, const struct want_token *want, size_t n)
{
    struct fq_sql_lexer lx;
    struct fq_sql_token t;
    struct fq_sql_error err;

    fq_sql_lex_init(&lx, text, strlen(text));
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(fq_sql_lex_next(&lx, &t, &err), 0);
        if (t.kind != want[i].kind || t.len != strlen(want[i].text) ||
            memcmp(t.text, want[i].text, t.len) != 0)
            fail_msg("token %zu: kind %d '%.*s', expected %d '%s'", i, t.kind,
                     (int)t.len, t.text, want[i].kind, want[i].text);
        assert_pos(t.pos, want[i].line, want[i].column);
    }
}

static void
test_lexer_tokens(void **state)
{
    static const struct want_token want[] = {
        {FQ_SQL_TOK_SELECT, "sElEcT", 1, 1},
        {FQ_SQL_TOK_IDENT, "_x9", 1, 8},
        {FQ_SQL_TOK_COMMA, ",", 1, 11},
        {FQ_SQL_TOK_INT, "-12", 1, 12},
        {FQ_SQL_TOK_DECIMAL, "3.25", 1, 16},
        {FQ_SQL_TOK_INT, "12", 1, 21},
        {FQ_SQL_TOK_DOT, ".", 1, 23},
        {FQ_SQL_TOK_STRING, "'a''\nb'", 1, 24},
        {FQ_SQL_TOK_NE, "<>", 3, 3},
        {FQ_SQL_TOK_NE, "!=", 3, 5},
        {FQ_SQL_TOK_LE, "<=", 3, 7},
        {FQ_SQL_TOK_GE, ">=", 3, 9},
        {FQ_SQL_TOK_LT, "<", 3, 11},
        {FQ_SQL_TOK_GT, ">", 3, 13},
        {FQ_SQL_TOK_EQ, "=", 3, 15},
        {FQ_SQL_TOK_LPAREN, "(", 3, 16},
        {FQ_SQL_TOK_STAR, "*", 3, 17},
        {FQ_SQL_TOK_RPAREN, ")", 3, 18},
        {FQ_SQL_TOK_SEMI, ";", 3, 19},
        {FQ_SQL_TOK_INVALID, "!", 3, 20},
        {FQ_SQL_TOK_INVALID, "-", 3, 22},
        {FQ_SQL_TOK_IDENT, "x", 3, 23},
        {FQ_SQL_TOK_FROM, "FROM", 4, 1},
        {FQ_SQL_TOK_WHERE, "where", 4, 6},
        {FQ_SQL_TOK_GROUP, "Group", 4, 12},
        {FQ_SQL_TOK_BY, "by", 4, 18},
        {FQ_SQL_TOK_AND, "AND", 4, 21},
        {FQ_SQL_TOK_BETWEEN, "between", 4, 25},
        {FQ_SQL_TOK_IN, "in", 4, 33},
        {FQ_SQL_TOK_IDENT, "inn", 4, 36},
        {FQ_SQL_TOK_IDENT, "COUNT", 4, 40},
        {FQ_SQL_TOK_END, "", 5, 1},
        {FQ_SQL_TOK_END, "", 5, 1},
    };
    const char *text = "sElEcT _x9,-12 3.25 12.'a''\nb' -- c\n"
                       "  <>!=<=>=< > =(*);! -x\n"
                       "FROM where Group by AND between in inn COUNT\n";

    (void)state;
    expect_tokens(text, want, FQ_ARRAY_LEN(want));
}

static void
test_lexer_tokens_v2(void **state)
{
    static const struct want_token want[] = {
        {FQ_SQL_TOK_OR, "or", 1, 1},
        {FQ_SQL_TOK_NOT, "Not", 1, 4},
        {FQ_SQL_TOK_IS, "IS", 1, 8},
        {FQ_SQL_TOK_NULL, "null", 1, 11},
        {FQ_SQL_TOK_ORDER, "ORDER", 1, 16},
        {FQ_SQL_TOK_ASC, "asc", 1, 22},
        {FQ_SQL_TOK_DESC, "DESC", 1, 26},
        {FQ_SQL_TOK_LIMIT, "Limit", 2, 4},
        {FQ_SQL_TOK_DISTINCT, "distinct", 2, 10},
        {FQ_SQL_TOK_QUOTED, "\"a\"\"b\"", 2, 19},
        {FQ_SQL_TOK_QUOTED, "\"dol-2\"", 2, 26},
        {FQ_SQL_TOK_DOT, ".", 2, 33},
        {FQ_SQL_TOK_IDENT, "orx", 3, 10},
        {FQ_SQL_TOK_STAR, "*", 4, 5},
        {FQ_SQL_TOK_INVALID, "/", 4, 6},
        {FQ_SQL_TOK_IDENT, "VAR", 4, 8},
        {FQ_SQL_TOK_END, "", 4, 11},
    };
    const char *text = "or Not IS null ORDER asc DESC /* c\n */Limit distinct "
                       "\"a\"\"b\" \"dol-2\"./**//*x*/ -- y\n/* ** */ orx\n"
                       "/**/*/ VAR";
    struct fq_sql_lexer lx;
    struct fq_sql_token t;
    struct fq_sql_error err;

    (void)state;
    expect_tokens(text, want, FQ_ARRAY_LEN(want));
    /* An unterminated comment fails where it starts, err may be NULL. */
    fq_sql_lex_init(&lx, "a /* b", 6);
    assert_int_equal(fq_sql_lex_next(&lx, &t, &err), 0);
    assert_int_equal(fq_sql_lex_next(&lx, &t, &err), FQ_EINVAL);
    assert_string_equal(err.msg, "line 1, column 3: unterminated comment");
    fq_sql_lex_init(&lx, "/*", 2);
    assert_int_equal(fq_sql_lex_next(&lx, &t, NULL), FQ_EINVAL);
    fq_sql_lex_init(&lx, "\"", 1);
    assert_int_equal(fq_sql_lex_next(&lx, &t, NULL), FQ_EINVAL);
}

static void
test_lexer_describe(void **state)
{
    static const struct {
        enum fq_sql_tok kind;
        const char *text;
        const char *want;
    } cases[] = {
        {FQ_SQL_TOK_END, "", "end of input"},
        {FQ_SQL_TOK_IDENT, "FORM", "'FORM'"},
        {FQ_SQL_TOK_COMMA, ",", "','"},
        {FQ_SQL_TOK_STRING, "'x'", "string 'x'"},
        {FQ_SQL_TOK_INVALID, "\x7f", "'\\x7f'"},
        {FQ_SQL_TOK_INVALID, "\\", "'\\\\'"},
    };
    char out[160];

    (void)state;
    for (size_t i = 0; i < FQ_ARRAY_LEN(cases); i++) {
        struct fq_sql_token t = {.kind = cases[i].kind,
                                 .text = cases[i].text,
                                 .len = strlen(cases[i].text)};
        fq_sql_token_describe(&t, out, sizeof(out));
        assert_string_equal(out, cases[i].want);
    }
    /* A small buffer is cut, still terminated. */
    struct fq_sql_token t = {
        .kind = FQ_SQL_TOK_IDENT, .text = "abcdef", .len = 6};
    fq_sql_token_describe(&t, out, 4);
    assert_string_equal(out, "'ab");
    /* Every byte escaped at the 32-byte cut still fits a 160-byte buffer. */
    char ctl[40];
    memset(ctl, 0x01, sizeof(ctl));
    t.kind = FQ_SQL_TOK_INVALID;
    t.text = ctl;
    t.len = sizeof(ctl);
    fq_sql_token_describe(&t, out, sizeof(out));
    assert_int_equal(strlen(out), 1 + 32 * 4 + 3 + 1);
}

static void
test_lexer_errors(void **state)
{
    struct fq_sql_lexer lx;
    struct fq_sql_token t = {.kind = FQ_SQL_TOK_COMMA};
    struct fq_sql_error err;

    (void)state;
    fq_sql_lex_init(&lx, "a\n  'open", 9);
    assert_int_equal(fq_sql_lex_next(&lx, &t, &err), 0);
    assert_int_equal(t.kind, FQ_SQL_TOK_IDENT);
    assert_int_equal(fq_sql_lex_next(&lx, &t, &err), FQ_EINVAL);
    assert_int_equal(t.kind, FQ_SQL_TOK_IDENT); /* untouched */
    assert_string_equal(err.msg, "line 2, column 3: unterminated string "
                                 "literal");
    assert_pos(err.pos, 2, 3);
    /* A NULL err is allowed. */
    fq_sql_lex_init(&lx, "'", 1);
    assert_int_equal(fq_sql_lex_next(&lx, &t, NULL), FQ_EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal),
        cmocka_unit_test(test_full_query),
        cmocka_unit_test(test_aggregates),
        cmocka_unit_test(test_aggregate_names_as_columns),
        cmocka_unit_test(test_comparisons),
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_int64_edges),
        cmocka_unit_test(test_decimal_range),
        cmocka_unit_test(test_case_insensitive_keywords),
        cmocka_unit_test(test_whitespace_and_comments),
        cmocka_unit_test(test_trailing_semicolon),
        cmocka_unit_test(test_where_tree),
        cmocka_unit_test(test_errors_select),
        cmocka_unit_test(test_errors_aggregates),
        cmocka_unit_test(test_errors_from),
        cmocka_unit_test(test_errors_where),
        cmocka_unit_test(test_errors_in_list),
        cmocka_unit_test(test_errors_group_by),
        cmocka_unit_test(test_errors_characters),
        cmocka_unit_test(test_errors_strings),
        cmocka_unit_test(test_errors_multiline),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_outputs_untouched),
        cmocka_unit_test(test_limit_text),
        cmocka_unit_test(test_limit_items),
        cmocka_unit_test(test_limit_predicates),
        cmocka_unit_test(test_limit_in_list),
        cmocka_unit_test(test_limit_group_by),
        cmocka_unit_test(test_limit_identifier),
        cmocka_unit_test(test_limit_string),
        cmocka_unit_test(test_memory_bound),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_format_round_trip),
        cmocka_unit_test(test_format_longer_than_limit),
        cmocka_unit_test(test_format_order_by_expansion),
        cmocka_unit_test(test_format_out_of_memory),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_flattening),
        cmocka_unit_test(test_not_forms),
        cmocka_unit_test(test_is_null),
        cmocka_unit_test(test_errors_boolean),
        cmocka_unit_test(test_new_aggregates),
        cmocka_unit_test(test_histogram_edges),
        cmocka_unit_test(test_errors_new_aggregates),
        cmocka_unit_test(test_limit_histogram_edges),
        cmocka_unit_test(test_order_by),
        cmocka_unit_test(test_errors_order_by),
        cmocka_unit_test(test_limit_clause),
        cmocka_unit_test(test_limit_order_by),
        cmocka_unit_test(test_quoted_identifiers),
        cmocka_unit_test(test_errors_quoted_identifiers),
        cmocka_unit_test(test_block_comments),
        cmocka_unit_test(test_reserved_words),
        cmocka_unit_test(test_limit_depth),
        cmocka_unit_test(test_tree_depth_bound),
        cmocka_unit_test(test_limit_predicates_boolean),
        cmocka_unit_test(test_memory_bound_v2),
        cmocka_unit_test(test_out_of_memory_v2),
        cmocka_unit_test(test_format_round_trip_v2),
        cmocka_unit_test(test_format_at_depth_limit),
        cmocka_unit_test(test_lexer_tokens),
        cmocka_unit_test(test_lexer_tokens_v2),
        cmocka_unit_test(test_lexer_describe),
        cmocka_unit_test(test_lexer_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
