/*
 * Unit tests for columnar extracts (agent/extract.c, extract_build.c,
 * source_sqlite.c, source_csv.c): an extract built from a SQLite table and
 * from a CSV buffer answers every row, NULL and text exactly as its source,
 * in contributor order; encodings take the narrowest width; the CSV reader
 * and the type checks refuse bad input naming line, row and column; a
 * corrupt or foreign file is refused at open with the right code; and a
 * rebuild replaces the file atomically.
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "extract.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sqlite3.h>

#define N_ROWS 5000

struct fixture {
    char dir[64];
    char db[128];
    char path[128]; /* the extract */
    char err[1024];
    struct ag_column_conf cols[6];
    struct ag_dataset_conf d;
};

/* person_id, town, year, q, amount, rate; contributor person_id. */
static void
make_conf(struct fixture *f)
{
    static const struct {
        const char *name;
        int role, type;
    } cols[] = {
        {"person_id", AG_ROLE_IDENTIFIER, AG_TYPE_TEXT},
        {"town", AG_ROLE_DIMENSION, AG_TYPE_TEXT},
        {"year", AG_ROLE_DIMENSION, AG_TYPE_INTEGER},
        {"q", AG_ROLE_DIMENSION, AG_TYPE_QUARTER},
        {"amount", AG_ROLE_MEASURE, AG_TYPE_INTEGER},
        {"rate", AG_ROLE_MEASURE, AG_TYPE_DECIMAL},
    };
    for (size_t i = 0; i < FQ_ARRAY_LEN(cols); i++) {
        f->cols[i] = (struct ag_column_conf){.name = (char *)cols[i].name,
                                             .role = cols[i].role,
                                             .type = cols[i].type};
    }
    f->d = (struct ag_dataset_conf){
        .name = (char *)"t",
        .source = {.sqlite = f->db, .table = (char *)"t"},
        .columns = f->cols,
        .n_columns = FQ_ARRAY_LEN(cols),
        .contributor = (char *)"person_id",
    };
}

static void
exec_sql(const char *db_path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_close(db);
}

/* Persons in no order, 1000 of them (2-byte codes); NULLs in person_id,
 * year, amount and rate; amount spans more than 16 bits. */
#define TYPED_TABLE                                                    \
    "CREATE TABLE t(person_id TEXT, town TEXT, year INTEGER, q TEXT, " \
    "amount INTEGER, rate REAL, extra TEXT);"
/* Columns without affinity keep each value's storage class as given. */
#define UNTYPED_TABLE \
    "CREATE TABLE t(person_id, town, year, q, amount, rate, extra);"
#define TABLE_ROWS                                                             \
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "          \
    "WHERE i < 5000) INSERT INTO t SELECT "                                    \
    "CASE WHEN i % 501 = 0 THEN NULL ELSE 'P' || ((i * 7919) % 1000) END, "    \
    "char(65 + i % 3), CASE WHEN i % 13 = 0 THEN NULL ELSE 2000 + i % 7 END, " \
    "'2024Q' || (1 + i % 4), "                                                 \
    "CASE WHEN i % 11 = 0 THEN NULL ELSE i * 37 - 1000 END, "                  \
    "CASE WHEN i % 17 = 0 THEN NULL WHEN i % 2 THEN i / 8.0 ELSE i END, "      \
    "'x' FROM n;"
static const char table_sql[] = TYPED_TABLE TABLE_ROWS;
static const char untyped_sql[] = UNTYPED_TABLE TABLE_ROWS;

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/fq-agx-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->db, sizeof(f->db), "%s/d.sqlite", f->dir);
    snprintf(f->path, sizeof(f->path), "%s/t.fqx", f->dir);
    make_conf(f);
    exec_sql(f->db, table_sql);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[160];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static int
build_sqlite(struct fixture *f, const char *vintage)
{
    struct ag_row_source src;
    int rc = ag_source_sqlite_open(&f->d, &src, f->err, sizeof(f->err));

    if (rc)
        return rc;
    rc =
        ag_extract_build(&f->d, &src, vintage, f->path, f->err, sizeof(f->err));
    src.close(src.self);
    return rc;
}

static struct ag_extract *
open_ok(struct fixture *f)
{
    struct ag_extract *x = NULL;
    int rc = ag_extract_open(f->path, &f->d, &x, f->err, sizeof(f->err));
    if (rc)
        fail_msg("open: %s", f->err);
    return x;
}

/* ---- checking an extract against its source ------------------------------ */

/* One source value, as the test reads it from SQLite. */
struct val {
    bool null;
    int64_t i;
    double d;
    char s[16];
};

struct row {
    struct val v[6];
    size_t index; /* in source order */
};

static int
row_cmp(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    const struct val *p = &x->v[0], *q = &y->v[0];
    int c = p->null != q->null ? (p->null ? -1 : 1)
            : p->null          ? 0
                               : strcmp(p->s, q->s);
    if (c)
        return c;
    return (x->index > y->index) - (x->index < y->index);
}

/* The table's rows, stably sorted by person_id, NULLs first. */
static struct row *
expected_rows(struct fixture *f, size_t *ret_n)
{
    struct row *rows = calloc(N_ROWS, sizeof(*rows));
    sqlite3 *db;
    sqlite3_stmt *st;
    size_t n = 0;

    assert_non_null(rows);
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT person_id, town, year, q, "
                                        "amount, rate FROM t",
                                        -1, &st, NULL),
                     SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        assert_true(n < N_ROWS);
        for (int c = 0; c < 6; c++) {
            struct val *v = &rows[n].v[c];
            v->null = sqlite3_column_type(st, c) == SQLITE_NULL;
            v->i = sqlite3_column_int64(st, c);
            v->d = sqlite3_column_double(st, c);
            if (!v->null && sqlite3_column_type(st, c) == SQLITE_TEXT)
                snprintf(v->s, sizeof(v->s), "%s",
                         (const char *)sqlite3_column_text(st, c));
        }
        rows[n].index = n;
        n++;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    qsort(rows, n, sizeof(*rows), row_cmp);
    *ret_n = n;
    return rows;
}

/* base + stored, computed without signed overflow. */
static int64_t
int_at(const struct ag_xcol *c, uint64_t r)
{
    return (int64_t)((uint64_t)c->base + ag_xcol_stored(c, r));
}

static void
check_value(const struct ag_xcol *c, uint64_t r, const struct val *v)
{
    assert_int_equal(ag_xcol_is_null(c, r), v->null);
    if (v->null) {
        assert_int_equal(ag_xcol_stored(c, r), 0);
        return;
    }
    switch (c->kind) {
    case AG_COL_INT:
        assert_int_equal(int_at(c, r), v->i);
        break;
    case AG_COL_DOUBLE:
        assert_true(((const double *)c->data)[r] == v->d);
        break;
    case AG_COL_DICT:
        assert_true(ag_xcol_stored(c, r) < c->dict_size);
        assert_string_equal(ag_xcol_text(c, (uint32_t)ag_xcol_stored(c, r)),
                            v->s);
        break;
    }
}

static void
check_dict_sorted(const struct ag_xcol *c)
{
    for (uint32_t k = 1; k < c->dict_size; k++)
        assert_true(strcmp(ag_xcol_text(c, k - 1), ag_xcol_text(c, k)) < 0);
}

/* A run starts at each non-NULL person unlike the row before's (the rows
 * are expected[] in order), and nowhere else, past the rows either. */
static void
check_runs(const struct ag_extract *x, const struct row *expected)
{
    uint64_t words = (x->n_rows + 63) / 64;

    assert_non_null(x->contributor_runs);
    assert_int_equal((uintptr_t)x->contributor_runs % 64, 0);
    for (uint64_t r = 0; r < words * 64; r++) {
        bool start = false;
        if (r < x->n_rows && !expected[r].v[0].null) {
            const struct val *v = &expected[r].v[0];
            const struct val *u = r ? &expected[r - 1].v[0] : NULL;
            start = !u || u->null || strcmp(u->s, v->s) != 0;
        }
        assert_int_equal(x->contributor_runs[r / 64] >> (r % 64) & 1, start);
    }
}

static void
test_build_sqlite(void **state)
{
    struct fixture *f = *state;
    struct ag_extract *x;
    struct row *rows;
    size_t n;

    assert_int_equal(build_sqlite(f, "2026-01-02T03:04:05Z"), 0);
    x = open_ok(f);
    rows = expected_rows(f, &n);
    assert_int_equal(x->n_rows, n);
    assert_int_equal(x->n_cols, 6);
    assert_int_equal(x->contributor, 0);
    assert_string_equal(x->vintage, "2026-01-02T03:04:05Z");
    assert_int_equal(x->schema_hash, ag_extract_schema_hash(&f->d));
    assert_string_equal(x->path, f->path);
    for (uint64_t r = 0; r < x->n_rows; r++) {
        for (size_t c = 0; c < 6; c++)
            check_value(&x->cols[c], r, &rows[r].v[c]);
    }
    check_runs(x, rows);
    free(rows);

    /* Encodings: 1000 persons take 2 bytes, 3 towns 1; years are offsets
     * from 2000; amounts span more than 16 bits. */
    const struct ag_xcol *pid = &x->cols[0], *town = &x->cols[1],
                         *year = &x->cols[2], *q = &x->cols[3],
                         *amount = &x->cols[4], *rate = &x->cols[5];
    assert_string_equal(pid->name, "person_id");
    assert_int_equal(pid->kind, AG_COL_DICT);
    assert_int_equal(pid->dict_size, 1000);
    assert_int_equal(pid->width, 2);
    assert_non_null(pid->nulls);
    assert_int_equal(town->dict_size, 3);
    assert_int_equal(town->width, 1);
    assert_null(town->nulls);
    assert_null(q->nulls);
    assert_int_equal(q->type, AG_TYPE_QUARTER);
    assert_int_equal(q->role, AG_ROLE_DIMENSION);
    assert_int_equal(year->kind, AG_COL_INT);
    assert_int_equal(year->width, 1);
    assert_int_equal(year->base, 2000);
    assert_int_equal(year->min, 2000);
    assert_int_equal(year->max, 2006);
    assert_non_null(year->nulls);
    assert_int_equal(amount->width, 4);
    assert_int_equal(amount->min, 37 - 1000);
    assert_int_equal(amount->max, 5000 * 37 - 1000);
    assert_int_equal(rate->kind, AG_COL_DOUBLE);
    assert_int_equal(rate->width, 8);
    for (size_t c = 0; c < 6; c++) {
        assert_int_equal((uintptr_t)x->cols[c].data % 64, 0);
        if (x->cols[c].kind == AG_COL_DICT)
            check_dict_sorted(&x->cols[c]);
    }
    ag_extract_ref(x);
    ag_extract_unref(x);
    ag_extract_unref(x);
    ag_extract_unref(NULL);
}

/* ---- CSV --------------------------------------------------------------- */

static int
csv_build(struct fixture *f, const char *csv, size_t len)
{
    struct ag_row_source src;
    int rc = ag_source_csv_buffer(&f->d, csv, len, ',', &src, f->err,
                                  sizeof(f->err));
    if (rc)
        return rc;
    rc = ag_extract_build(&f->d, &src, "v", f->path, f->err, sizeof(f->err));
    src.close(src.self);
    return rc;
}

static void
test_build_csv(void **state)
{
    struct fixture *f = *state;
    /* Extra and reordered columns, quotes, doubled quotes, a quoted line
     * break, CR LF, an empty field (NULL) and a quoted empty one (""), no
     * final line end. */
    static const char csv[] =
        "\xef\xbb\xbfignored,Town,person_id,year,q,amount,rate\r\n"
        "1,B,P2,2001,2024Q1,-5,1.5\r\n"
        "2,\"A,\"\"x\"\"\",P1,,2024Q2,9223372036854775807,2\n"
        "3,\"line\nbreak\",P2,2003,\"\",,-1e3\n"
        "4,C,,2004,2024Q1,-9223372036854775808,.5";
    struct ag_extract *x;

    assert_int_equal(csv_build(f, csv, sizeof(csv) - 1), 0);
    x = open_ok(f);
    assert_int_equal(x->n_rows, 4);
    /* Sorted by person: NULL, P1, P2 (two rows, in file order). */
    const struct ag_xcol *pid = &x->cols[0], *town = &x->cols[1],
                         *year = &x->cols[2], *q = &x->cols[3],
                         *amount = &x->cols[4], *rate = &x->cols[5];
    assert_true(ag_xcol_is_null(pid, 0));
    assert_string_equal(ag_xcol_text(pid, (uint32_t)ag_xcol_stored(pid, 1)),
                        "P1");
    assert_string_equal(ag_xcol_text(town, (uint32_t)ag_xcol_stored(town, 1)),
                        "A,\"x\"");
    assert_string_equal(ag_xcol_text(town, (uint32_t)ag_xcol_stored(town, 2)),
                        "B");
    assert_string_equal(ag_xcol_text(town, (uint32_t)ag_xcol_stored(town, 3)),
                        "line\nbreak");
    assert_true(ag_xcol_is_null(year, 1));
    assert_int_equal(int_at(year, 3), 2003);
    assert_string_equal(ag_xcol_text(q, (uint32_t)ag_xcol_stored(q, 3)), "");
    assert_int_equal(amount->width, 8);
    assert_int_equal(amount->min, INT64_MIN);
    assert_int_equal(amount->max, INT64_MAX);
    assert_int_equal(int_at(amount, 1), INT64_MAX);
    assert_true(ag_xcol_is_null(amount, 3));
    assert_true(((const double *)rate->data)[0] == 0.5);
    assert_true(((const double *)rate->data)[3] == -1000.0);
    ag_extract_unref(x);
}

/* Reads the whole CSV; the error of the first failing step. */
static int
csv_read_all(struct fixture *f, const char *csv, size_t len)
{
    struct ag_row_source src;
    struct ag_value vals[6];
    int rc;

    f->err[0] = '\0';
    rc = ag_source_csv_buffer(&f->d, csv, len, ',', &src, f->err,
                              sizeof(f->err));
    if (rc)
        return rc;
    while ((rc = src.next(src.self, vals, f->err, sizeof(f->err))) == 1)
        ;
    src.close(src.self);
    return rc;
}

#define HDR "person_id,town,year,q,amount,rate\n"

static void
test_csv_errors(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *csv;
        int rc;
        const char *msg;
    } cases[] = {
        {"", FQ_EINVAL, "CSV buffer: line 1: no header row"},
        {"person_id,town,year,q,amount\n", FQ_EINVAL,
         "line 1: no column 'rate' in the header"},
        {"person_id,town,year,q,amount,rate,TOWN\n", FQ_EINVAL,
         "line 1: column 'town' appears twice"},
        {HDR "P1,A,1,Q,2,3\nP1,\"A,1,Q,2,3\n", FQ_EINVAL,
         "line 3: a quoted field is not closed"},
        {HDR "P1,A\"B,1,Q,2,3\n", FQ_EINVAL,
         "line 2: a quote inside an unquoted field"},
        {HDR "P1,\"A\"B,1,Q,2,3\n", FQ_EINVAL,
         "line 2: a character after the closing quote"},
        {HDR "P1,A,1,Q,2,3\rP2,A,1,Q,2,3\n", FQ_EINVAL,
         "line 2: a carriage return that does not end the line"},
        {HDR "P1,A,1,Q,2\n", FQ_EINVAL,
         "line 2: 5 fields where the header has 6"},
        {HDR "P1,A,1,Q,2,3\n\n", FQ_EINVAL,
         "line 3: 1 fields where the header has 6"},
        {HDR "P1,\"a\nb\",1,Q,9223372036854775808,3\n", FQ_EINVAL,
         "line 2: column 'amount': an integer beyond 64 bits"},
        {HDR "P1,A,12x,Q,2,3\n", FQ_EINVAL,
         "line 2: column 'year': not an integer"},
        {HDR "P1,A,\"\",Q,2,3\n", FQ_EINVAL,
         "line 2: column 'year': not an integer"},
        {HDR "P1,A,-,Q,2,3\n", FQ_EINVAL, "column 'year': not an integer"},
        {HDR "P1,A,1,Q,2,1e999\n", FQ_EINVAL,
         "column 'rate': a number beyond the range"},
        {HDR "P1,A,1,Q,2,nan\n", FQ_EINVAL, "column 'rate': not a number"},
        {HDR "P1,A,1,Q,2, 3\n", FQ_EINVAL, "column 'rate': not a number"},
        {HDR "P1,A,1,Q,2,1e\n", FQ_EINVAL, "column 'rate': not a number"},
    };

    for (size_t i = 0; i < FQ_ARRAY_LEN(cases); i++) {
        int rc = csv_read_all(f, cases[i].csv, strlen(cases[i].csv));
        if (rc != cases[i].rc || !strstr(f->err, cases[i].msg))
            fail_msg("case %zu: rc %d, '%s'", i, rc, f->err);
    }
    /* A NUL byte, in a plain and in a quoted field. */
    static const char nul1[] = HDR "P1,A\0,1,Q,2,3\n";
    static const char nul2[] = HDR "P1,\"A\0\",1,Q,2,3\n";
    assert_int_equal(csv_read_all(f, nul1, sizeof(nul1) - 1), FQ_EINVAL);
    assert_non_null(strstr(f->err, "line 2: a NUL byte"));
    assert_int_equal(csv_read_all(f, nul2, sizeof(nul2) - 1), FQ_EINVAL);
    assert_non_null(strstr(f->err, "line 2: a NUL byte"));
}

static void
test_csv_limits(void **state)
{
    struct fixture *f = *state;
    size_t big = 1024 * 1024 + 64, n;
    char *csv = malloc(big + 128);

    assert_non_null(csv);
    /* 4097 fields. */
    n = (size_t)snprintf(csv, 128, "%s", HDR);
    for (int i = 0; i < 4097; i++)
        csv[n++] = ',';
    csv[n++] = '\n';
    assert_int_equal(csv_read_all(f, csv, n), FQ_ETOOBIG);
    assert_non_null(strstr(f->err, "line 2: more than 4096 fields"));
    /* A record longer than 1 MiB, plain and quoted. */
    n = (size_t)snprintf(csv, 128, "%sP1,", HDR);
    memset(csv + n, 'a', big);
    memcpy(csv + n + big, ",1,Q,2,3\n", 9);
    assert_int_equal(csv_read_all(f, csv, n + big + 9), FQ_ETOOBIG);
    assert_non_null(strstr(f->err, "line 2: a record longer than"));
    csv[n] = '"';
    csv[n + big - 1] = '"';
    assert_int_equal(csv_read_all(f, csv, n + big + 9), FQ_ETOOBIG);
    assert_non_null(strstr(f->err, "line 2: a record longer than"));
    /* Just under the cap is fine. */
    n = (size_t)snprintf(csv, 128, "%sP1,", HDR);
    memset(csv + n, 'a', 1024 * 1024 - 20);
    memcpy(csv + n + 1024 * 1024 - 20, ",1,Q,2,3\n", 9);
    assert_int_equal(csv_read_all(f, csv, n + 1024 * 1024 - 11), 0);
    /* Doubled quotes copied out of a record just under the cap, and of one
     * over it. */
    for (size_t pairs = 524000; pairs <= 524300; pairs += 300) {
        n = (size_t)snprintf(csv, 128, "%sP1,\"", HDR);
        for (size_t i = 0; i < pairs; i++, n += 2)
            memcpy(csv + n, "\"\"", 2);
        memcpy(csv + n, "\",1,Q,2,3\n", 10);
        n += 10;
        assert_int_equal(csv_read_all(f, csv, n),
                         pairs == 524000 ? 0 : FQ_ETOOBIG);
    }
    free(csv);
}

static void
test_csv_file(void **state)
{
    struct fixture *f = *state;
    char csv_path[160];
    struct ag_row_source src;
    struct ag_extract *x;
    FILE *fp;

    snprintf(csv_path, sizeof(csv_path), "%s/t.csv", f->dir);
    fp = fopen(csv_path, "w");
    assert_non_null(fp);
    fputs("person_id;town;year;q;amount;rate\nP1;A;1;Q;2;3\n", fp);
    fclose(fp);
    f->d.source =
        (struct ag_source_conf){.csv = csv_path, .delimiter = (char *)";"};
    assert_int_equal(ag_source_csv_open(&f->d, &src, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(
        ag_extract_build(&f->d, &src, "v", f->path, f->err, sizeof(f->err)), 0);
    src.close(src.self);
    x = open_ok(f);
    assert_int_equal(x->n_rows, 1);
    ag_extract_unref(x);

    /* Errors name the file; an empty file has no header. */
    fp = fopen(csv_path, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(ag_source_csv_open(&f->d, &src, f->err, sizeof(f->err)),
                     FQ_EINVAL);
    assert_non_null(strstr(f->err, "t.csv: line 1: no header row"));
    unlink(csv_path);
    assert_int_equal(ag_source_csv_open(&f->d, &src, f->err, sizeof(f->err)),
                     FQ_ENOENT);
}

/* ---- type checks --------------------------------------------------------- */

static void
test_type_errors(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *sql;
        const char *msg;
    } cases[] = {
        {"UPDATE t SET year = 'x' WHERE rowid = 7",
         "dataset 't': row 7, column 'year': integer column holds text"},
        {"UPDATE t SET amount = 2.5 WHERE rowid = 9",
         "row 9, column 'amount': integer column holds a non-integral"},
        {"UPDATE t SET q = 20241 WHERE rowid = 3",
         "row 3, column 'q': quarter column holds an integer"},
        {"UPDATE t SET town = 1.5 WHERE rowid = 4",
         "row 4, column 'town': text column holds a real number"},
        {"UPDATE t SET rate = 'r' WHERE rowid = 5",
         "row 5, column 'rate': decimal column holds text"},
        {"UPDATE t SET town = 'a' || char(0) || 'b' WHERE rowid = 6",
         "row 6, column 'town': text column holds text with a NUL"},
        {"UPDATE t SET town = x'00' WHERE rowid = 8",
         "row 8, column 'town': a BLOB value"},
    };

    /* A REAL that is an integer is one; an INTEGER in a decimal column is
     * a number. */
    exec_sql(f->db, "DROP TABLE t");
    exec_sql(f->db, untyped_sql);
    exec_sql(f->db, "UPDATE t SET year = 2001.0, rate = 3 WHERE rowid = 2");
    assert_int_equal(build_sqlite(f, "v"), 0);
    for (size_t i = 0; i < FQ_ARRAY_LEN(cases); i++) {
        exec_sql(f->db, "DROP TABLE t");
        exec_sql(f->db, untyped_sql);
        exec_sql(f->db, cases[i].sql);
        int rc = build_sqlite(f, "v");
        if (rc != FQ_EINVAL || !strstr(f->err, cases[i].msg))
            fail_msg("case %zu: rc %d, '%s'", i, rc, f->err);
    }
    /* A missing table or column is an error naming the file. */
    f->d.source.table = (char *)"nope";
    assert_int_equal(build_sqlite(f, "v"), FQ_EIO);
    assert_non_null(strstr(f->err, "cannot read table 'nope'"));
}

/* ---- small and odd datasets ---------------------------------------------- */

static void
test_empty_and_null(void **state)
{
    struct fixture *f = *state;
    struct ag_extract *x;

    /* No rows. */
    assert_int_equal(csv_build(f, HDR, strlen(HDR)), 0);
    x = open_ok(f);
    assert_int_equal(x->n_rows, 0);
    assert_int_equal(x->cols[2].min, 0);
    assert_int_equal(x->cols[2].max, -1);
    assert_int_equal(x->cols[0].dict_size, 0);
    ag_extract_unref(x);
    /* Only NULLs (70 rows: a partial bitmap word). */
    char csv[1024];
    size_t n = (size_t)snprintf(csv, sizeof(csv), "%s", HDR);
    for (int i = 0; i < 70; i++)
        n += (size_t)snprintf(csv + n, sizeof(csv) - n, ",,,,,\n");
    assert_int_equal(csv_build(f, csv, n), 0);
    x = open_ok(f);
    assert_int_equal(x->n_rows, 70);
    for (size_t c = 0; c < 6; c++) {
        assert_non_null(x->cols[c].nulls);
        assert_true(ag_xcol_is_null(&x->cols[c], 69));
    }
    /* NULL persons start no run */
    assert_int_equal(x->contributor_runs[0] | x->contributor_runs[1], 0);
    ag_extract_unref(x);
}

/* An integer contributor spread wider than the rows is still sorted. */
static void
test_integer_contributor(void **state)
{
    struct fixture *f = *state;
    static const char csv[] = "person_id,town,year,q,amount,rate\n"
                              "1,A,5,Q,0,0\n"
                              "-9000000000000000000,B,4,Q,0,0\n"
                              "9000000000000000000,C,3,Q,0,0\n"
                              "1,D,2,Q,0,0\n"
                              ",E,1,Q,0,0\n";
    struct ag_extract *x;

    f->cols[0].type = AG_TYPE_INTEGER;
    assert_int_equal(csv_build(f, csv, sizeof(csv) - 1), 0);
    x = open_ok(f);
    static const int64_t years[] = {1, 4, 5, 2, 3};
    for (uint64_t r = 0; r < 5; r++)
        assert_int_equal(int_at(&x->cols[2], r), years[r]);
    ag_extract_unref(x);
}

/* ---- corrupt files ------------------------------------------------------- */

static unsigned char *
read_whole(const char *path, size_t *ret_len)
{
    FILE *fp = fopen(path, "rb");
    unsigned char *buf;
    long len;

    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    buf = malloc((size_t)len);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    *ret_len = (size_t)len;
    return buf;
}

static void
write_whole(const char *path, const unsigned char *buf, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, len, fp), len);
    fclose(fp);
}

static void
put64(unsigned char *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static uint64_t
get64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Column i's directory entry (format: 128-byte header, 160-byte entries). */
#define ENTRY(buf, i) ((buf) + 128 + (i)*160)

enum corruption {
    C_TRUNCATED,
    C_SHORT,
    C_MAGIC,
    C_VERSION,
    C_MISALIGNED,
    C_OUTSIDE,
    C_OVERLAP,
    C_DICT_UNSORTED,
    C_DICT_OFFSETS,
    C_CODE_RANGE,
    C_INT_RANGE,
    C_UNSORTED_ROWS,
    C_NULL_VALUE,
    C_WIDTH,
    C_RESERVED,
    C_RUNS_NULL_ROW,
    C_RUNS_CLEARED,
    C_RUNS_PAST,
    C_RUNS_MISSING,
    C_RUNS_MISALIGNED,
    C_RUNS_OVERLAP,
};

static void
corrupt(unsigned char *b, size_t *len, enum corruption c)
{
    const unsigned char *town = ENTRY(b, 1), *year = ENTRY(b, 2);
    unsigned char *dict = b + get64(town + 120);
    unsigned char *runs = b + get64(b + 88); /* header: run bitmap offset */
    uint64_t n_rows = get64(b + 16);

    switch (c) {
    case C_TRUNCATED:
        *len -= 1;
        break;
    case C_SHORT:
        *len = 100;
        break;
    case C_MAGIC:
        b[0] = 'X';
        break;
    case C_VERSION:
        b[8] = 1;
        break;
    case C_MISALIGNED:
        put64(ENTRY(b, 2) + 96, get64(year + 96) + 8);
        break;
    case C_OUTSIDE:
        put64(ENTRY(b, 4) + 96, get64(b + 40));
        break;
    case C_OVERLAP:
        put64(ENTRY(b, 2) + 96, get64(town + 96));
        break;
    case C_DICT_UNSORTED: /* "A", "B", "C" -> "B", "A", "C" */
        dict[0] = 'B';
        dict[2] = 'A';
        break;
    case C_DICT_OFFSETS:
        put64(b + get64(town + 112) + 8, 0);
        break;
    case C_CODE_RANGE:
        b[get64(town + 96) + 17] = 3;
        break;
    case C_INT_RANGE:
        b[get64(year + 96) + 1] = 7;
        break;
    case C_UNSORTED_ROWS: /* the last row's person first */
        memcpy(b + get64(ENTRY(b, 0) + 96) + 2 * 20,
               b + get64(ENTRY(b, 0) + 96) + 2 * (N_ROWS - 1), 2);
        break;
    case C_NULL_VALUE: /* row 0 has a NULL person */
        b[get64(ENTRY(b, 0) + 96)] = 1;
        break;
    case C_WIDTH:
        ENTRY(b, 1)[65] = 3;
        break;
    case C_RESERVED:
        ENTRY(b, 1)[150] = 1;
        break;
    case C_RUNS_NULL_ROW: /* row 0's person is NULL: it starts no run */
        runs[0] |= 1;
        break;
    case C_RUNS_CLEARED: /* no run starts in rows 64..127 */
        memset(runs + 8, 0, 8);
        break;
    case C_RUNS_PAST: /* a start after the last row (in its last word) */
        assert_true(n_rows % 64 != 0);
        runs[n_rows / 8] |= (unsigned char)(1u << (n_rows % 8));
        break;
    case C_RUNS_MISSING:
        put64(b + 88, 0);
        break;
    case C_RUNS_MISALIGNED:
        put64(b + 88, get64(b + 88) + 8);
        break;
    case C_RUNS_OVERLAP:
        put64(b + 88, get64(ENTRY(b, 0) + 96));
        break;
    }
}

static void
test_corrupt(void **state)
{
    struct fixture *f = *state;
    static const struct {
        enum corruption c;
        const char *msg;
    } cases[] = {
        {C_TRUNCATED, "where the header says"},
        {C_SHORT, "truncated header"},
        {C_MAGIC, "not an extract"},
        {C_VERSION, "format version 1, this agent reads version 2 only"},
        {C_MISALIGNED, "column 'year': data section"},
        {C_OUTSIDE, "column 'amount': data section"},
        {C_OVERLAP, "sections overlap"},
        {C_DICT_UNSORTED, "column 'town': dictionary is not sorted at entry 1"},
        {C_DICT_OFFSETS, "column 'town': dictionary offset"},
        {C_CODE_RANGE, "column 'town': a stored value is out of range"},
        {C_INT_RANGE, "column 'year': a stored value is out of range"},
        {C_UNSORTED_ROWS, "rows are not sorted by contributor at row 21"},
        {C_NULL_VALUE, "column 'person_id': NULL row 0 has a stored value"},
        {C_WIDTH, "column 'town': bad width 3"},
        {C_RESERVED, "column 'town': bad width 1 or reserved bytes"},
        {C_RUNS_NULL_ROW, "contributor run bitmap is wrong at row 0"},
        {C_RUNS_CLEARED, "contributor run bitmap is wrong at row 64"},
        {C_RUNS_PAST, "contributor run bitmap is wrong at row"},
        {C_RUNS_MISSING, "contributor run bitmap is missing"},
        {C_RUNS_MISALIGNED, "column 'person_id': contributor run section"},
        {C_RUNS_OVERLAP, "sections overlap"},
    };
    struct ag_extract *x = NULL;
    unsigned char *good, *bad;
    size_t len;

    assert_int_equal(build_sqlite(f, "v"), 0);
    good = read_whole(f->path, &len);
    bad = malloc(len);
    assert_non_null(bad);
    for (size_t i = 0; i < FQ_ARRAY_LEN(cases); i++) {
        size_t n = len;
        memcpy(bad, good, len);
        corrupt(bad, &n, cases[i].c);
        write_whole(f->path, bad, n);
        f->err[0] = '\0';
        int rc = ag_extract_open(f->path, &f->d, &x, f->err, sizeof(f->err));
        if (rc != FQ_EPROTO || !strstr(f->err, cases[i].msg))
            fail_msg("case %zu: rc %d, '%s'", i, rc, f->err);
        assert_non_null(strstr(f->err, f->path));
    }
    free(bad);

    /* Built for other columns. */
    write_whole(f->path, good, len);
    f->cols[5].type = AG_TYPE_INTEGER;
    assert_int_equal(
        ag_extract_open(f->path, &f->d, &x, f->err, sizeof(f->err)),
        FQ_EPRECOND);
    assert_non_null(strstr(f->err, "built for other columns"));
    f->cols[5].type = AG_TYPE_DECIMAL;
    f->d.contributor = NULL;
    assert_int_equal(
        ag_extract_open(f->path, &f->d, &x, f->err, sizeof(f->err)),
        FQ_EPRECOND);
    f->d.contributor = (char *)"person_id";
    f->d.n_columns = 5;
    assert_int_equal(
        ag_extract_open(f->path, &f->d, &x, f->err, sizeof(f->err)),
        FQ_EPRECOND);
    f->d.n_columns = 6;
    x = open_ok(f);
    ag_extract_unref(x);
    free(good);

    unlink(f->path);
    assert_int_equal(
        ag_extract_open(f->path, &f->d, &x, f->err, sizeof(f->err)), FQ_ENOENT);
}

/* ---- atomic replace ------------------------------------------------------ */

static bool
dir_has_temp(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool found = false;

    assert_non_null(d);
    while ((e = readdir(d)))
        found |= strstr(e->d_name, ".tmp-") != NULL;
    closedir(d);
    return found;
}

static void
test_atomic_replace(void **state)
{
    struct fixture *f = *state;
    struct ag_extract *old, *x;

    assert_int_equal(build_sqlite(f, "first"), 0);
    old = open_ok(f);
    /* A rebuild from other data: the old mapping still reads the old. */
    exec_sql(f->db, "DELETE FROM t WHERE rowid > 10");
    assert_int_equal(build_sqlite(f, "second"), 0);
    x = open_ok(f);
    assert_string_equal(old->vintage, "first");
    assert_int_equal(old->n_rows, N_ROWS);
    assert_string_equal(x->vintage, "second");
    assert_int_equal(x->n_rows, 10);
    for (uint64_t r = 0; r < old->n_rows; r++)
        assert_true(ag_xcol_stored(&old->cols[1], r) < 3);
    ag_extract_unref(old);
    ag_extract_unref(x);
    assert_false(dir_has_temp(f->dir));

    /* A build that fails leaves the file as it was, and no temp file. */
    exec_sql(f->db, "UPDATE t SET year = 'bad' WHERE rowid = 10");
    assert_int_equal(build_sqlite(f, "third"), FQ_EINVAL);
    x = open_ok(f);
    assert_string_equal(x->vintage, "second");
    ag_extract_unref(x);
    assert_false(dir_has_temp(f->dir));

    /* A directory that cannot be written: the error names the file. */
    snprintf(f->path, sizeof(f->path), "%s/missing/t.fqx", f->dir);
    exec_sql(f->db, "UPDATE t SET year = 1 WHERE rowid = 10");
    assert_int_equal(build_sqlite(f, "v"), FQ_ENOENT);
    assert_non_null(strstr(f->err, "cannot create"));
    /* A vintage too long to record. */
    assert_int_equal(
        build_sqlite(f, "0123456789012345678901234567890123456789"), FQ_EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_build_sqlite),   T(test_build_csv),
        T(test_csv_errors),     T(test_csv_limits),
        T(test_csv_file),       T(test_type_errors),
        T(test_empty_and_null), T(test_integer_contributor),
        T(test_corrupt),        T(test_atomic_replace),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
