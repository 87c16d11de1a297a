/*
 * Unit tests for the fedq SQL lexer and parser (common/src/sql_lex.c,
 * common/src/sql_parse.c): every construct and the tree it builds, keyword
 * case, literals and int64 edges, every error message with its exact text
 * and position (single- and multi-line), every limit at and just past its
 * edge, the arena bound, out-of-memory at every cap, and the formatter's
 * round trip. Runs under ASan and UBSan, so a leak or overrun fails it.
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
                 "line 1, column 14: expected '*', found 'x'");
    assert_error("SELECT COUNT() FROM b.c",
                 "line 1, column 14: expected '*', found ')'");
    assert_error("SELECT COUNT(* FROM b.c",
                 "line 1, column 16: expected ')', found 'FROM'");
    assert_error("SELECT SUM(*) FROM b.c",
                 "line 1, column 12: expected a column name, found '*'");
    assert_error("SELECT AVG(x FROM b.c",
                 "line 1, column 14: expected ')', found 'FROM'");
    assert_error("SELECT SUM(x, y) FROM b.c",
                 "line 1, column 13: expected ')', found ','");
    assert_error("SELECT MAX(x) FROM b.c",
                 "line 1, column 8: expected COUNT, SUM or AVG, found 'MAX'");
    assert_error("SELECT a, stddev (x) FROM b.c",
                 "line 1, column 11: expected COUNT, SUM or AVG, found "
                 "'stddev'");
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
                 "line 1, column 24: expected WHERE, GROUP BY or end of "
                 "input, found '.'");
    assert_error("SELECT a FROM dol.wages x",
                 "line 1, column 25: expected WHERE, GROUP BY or end of "
                 "input, found 'x'");
}

static void
test_errors_where(void **state)
{
    (void)state;
    assert_error("SELECT a FROM b.c WHERE",
                 "line 1, column 24: expected a column name, found end of "
                 "input");
    assert_error("SELECT a FROM b.c WHERE 5 < age",
                 "line 1, column 25: expected a column name, found '5'");
    assert_error("SELECT a FROM b.c WHERE age 5",
                 "line 1, column 29: expected a comparison operator, BETWEEN "
                 "or IN, found '5'");
    assert_error("SELECT a FROM b.c WHERE age == 5",
                 "line 1, column 30: expected a literal, found '='");
    assert_error("SELECT a FROM b.c WHERE age =",
                 "line 1, column 30: expected a literal, found end of input");
    assert_error("SELECT a FROM b.c WHERE age = other",
                 "line 1, column 31: expected a literal, found 'other'");
    assert_error("SELECT a FROM b.c WHERE age = - 5",
                 "line 1, column 31: expected a literal, found '-'");
    assert_error("SELECT a FROM b.c WHERE age = 5.",
                 "line 1, column 32: expected AND, GROUP BY or end of input, "
                 "found '.'");
    assert_error("SELECT a FROM b.c WHERE age BETWEEN 1 2",
                 "line 1, column 39: expected AND, found '2'");
    assert_error("SELECT a FROM b.c WHERE age BETWEEN 1 AND",
                 "line 1, column 42: expected a literal, found end of input");
    assert_error("SELECT a FROM b.c WHERE a = 1 b = 2",
                 "line 1, column 31: expected AND, GROUP BY or end of input, "
                 "found 'b'");
    assert_error("SELECT a FROM b.c WHERE a = 1 AND",
                 "line 1, column 34: expected a column name, found end of "
                 "input");
    assert_error("SELECT a FROM b.c WHERE a = 1 AND AND b = 1",
                 "line 1, column 35: expected a column name, found 'AND'");
    assert_error("SELECT a FROM b.c WHERE a = 1 OR b = 2",
                 "line 1, column 31: expected AND, GROUP BY or end of input, "
                 "found 'OR'");
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
                 "line 1, column 30: expected ',' or end of input, found 'b'");
    assert_error("SELECT a FROM b.c GROUP BY a,",
                 "line 1, column 30: expected a column name, found end of "
                 "input");
    assert_error("SELECT a FROM b.c GROUP BY SUM(x)",
                 "line 1, column 31: expected ',' or end of input, found '('");
    assert_error("SELECT a FROM b.c GROUP BY a WHERE x = 1",
                 "line 1, column 30: expected ',' or end of input, found "
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
                 "line 1, column 27: expected a comparison operator, BETWEEN "
                 "or IN, found '!'");
    assert_error("SELECT a FROM b.c WHERE x = \"y\"",
                 "line 1, column 29: expected a literal, found '\"'");
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
    assert_error("SELECT a FROM b.c /* no */",
                 "line 1, column 19: expected WHERE, GROUP BY or end of "
                 "input, found '/'");
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
                 "line 4, column 1: expected a comparison operator, BETWEEN "
                 "or IN, found end of input");
    assert_error("SELECT a -- the column\n\tFROM -- the source\n",
                 "line 3, column 1: expected an agency or alias name, found "
                 "end of input");
    assert_error("SELECT a\nFROM b.c\nGROUP BY a,\n\n  b c",
                 "line 5, column 5: expected ',' or end of input, found 'c'");
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

/* ---- lexer -----------------------------------------------------------------
 */

static void
test_lexer_tokens(void **state)
{
    static const struct {
        enum fq_sql_tok kind;
        const char *text;
        int line, column;
    } want[] = {
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
    struct fq_sql_lexer lx;
    struct fq_sql_token t;
    struct fq_sql_error err;

    (void)state;
    fq_sql_lex_init(&lx, text, strlen(text));
    for (size_t i = 0; i < FQ_ARRAY_LEN(want); i++) {
        assert_int_equal(fq_sql_lex_next(&lx, &t, &err), 0);
        if (t.kind != want[i].kind || t.len != strlen(want[i].text) ||
            memcmp(t.text, want[i].text, t.len) != 0)
            fail_msg("token %zu: kind %d '%.*s', expected %d '%s'", i, t.kind,
                     (int)t.len, t.text, want[i].kind, want[i].text);
        assert_pos(t.pos, want[i].line, want[i].column);
    }
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
        cmocka_unit_test(test_format_out_of_memory),
        cmocka_unit_test(test_lexer_tokens),
        cmocka_unit_test(test_lexer_describe),
        cmocka_unit_test(test_lexer_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
