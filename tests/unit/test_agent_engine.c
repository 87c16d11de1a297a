/*
 * Unit tests for the extract engine (agent/engine*.c): random data in a
 * SQLite table and the same rows as an in-memory columnar extract, random
 * plans (every aggregate, nested AND/OR/NOT filters with NULLs, IN,
 * BETWEEN, text ranges, literals outside the data, 0 to 3 GROUP BY
 * columns) run through the SQLite reference (ag_execute) and the engine on
 * 1 and 3 threads, compared group by group, the disclosure fields too
 * (contributors and cell keys under one secret, unit totals). Then the
 * limits: groups, memory, integer overflow, and empty answers.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/plan.h"
#include "agent.h"
#include "cellkey.h"
#include "engine.h"
#include "engine_internal.h"
#include "extract.h"
#include "ledger.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "fedq/v1/agent.pb-c.h"

#define N_ROWS   6000
#define N_PLANS  160
#define TEXT_MAX 16

enum {
    C_PERSON,
    C_PID,
    C_TOWN,
    C_YEAR,
    C_MONTH,
    C_SEX,
    C_CODE,
    C_HH,
    C_WAGES,
    C_BIG,
    C_SCORE,
    C_DAY,
    C_EMP,
    N_COLS
};

struct tcol {
    const char *name;
    int type; /* enum ag_type */
    int role; /* enum ag_role */
};

static const struct tcol tcols[N_COLS] = {
    {"person_id", AG_TYPE_TEXT, AG_ROLE_IDENTIFIER},
    {"pid", AG_TYPE_INTEGER, AG_ROLE_IDENTIFIER},
    {"town", AG_TYPE_TEXT, AG_ROLE_DIMENSION},
    {"year", AG_TYPE_INTEGER, AG_ROLE_DIMENSION},
    {"month", AG_TYPE_MONTH, AG_ROLE_DIMENSION},
    {"sex", AG_TYPE_INTEGER, AG_ROLE_DIMENSION},
    {"code", AG_TYPE_INTEGER, AG_ROLE_DIMENSION},
    {"hh", AG_TYPE_INTEGER, AG_ROLE_DIMENSION},
    {"wages", AG_TYPE_INTEGER, AG_ROLE_MEASURE},
    {"big", AG_TYPE_INTEGER, AG_ROLE_MEASURE},
    {"score", AG_TYPE_DECIMAL, AG_ROLE_MEASURE},
    {"day", AG_TYPE_DATE, AG_ROLE_DATE},
    {"employer_id", AG_TYPE_TEXT, AG_ROLE_IDENTIFIER},
};

/* Towns in no particular order: byte order puts "Zed" before "a" and the
 * UTF-8 ones last. */
static const char *const towns[] = {
    "B", "A", "Ba", "C", "Zed", "a", "\xc3\xa9t\xc3\xa9", "BB"};

struct row {
    bool null[N_COLS];
    int64_t i[N_COLS];
    double d[N_COLS];
    char s[N_COLS][TEXT_MAX];
};

/* One secret for both engines: their cell keys must agree, unless the
 * extract's contributor is another column than the catalog's (x_nn). */
static struct ag_cell_secret test_secret;
static bool keys_comparable = true;
/* Fields compared that were not trivially 0: the comparison means
 * something. */
static size_t seen_keys, seen_units;

struct fixture {
    char dir[64];
    char err[512];
    struct row *rows;
    size_t n_rows;
    struct ag_catalog *cat;
    const Fedq__V1__Dataset *ds, *ds_nc; /* with and without contributor */
    const Fedq__V1__Dataset *ds_nn;      /* no NULL contributor (table t2) */
    struct ag_extract *x, *x_wide, *x_nc, *x_nn, *x_nn_wide;
};

/* ---- random numbers ----------------------------------------------------- */

static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static int64_t
rnd_in(uint64_t *s, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd(s) % (uint64_t)(hi - lo + 1));
}

static bool
chance(uint64_t *s, int percent)
{
    return (int)(rnd(s) % 100) < percent;
}

/* ---- the rows ----------------------------------------------------------- */

static void
row_random(struct row *r, uint64_t *s, int persons)
{
    int64_t person = rnd_in(s, 0, persons);
    r->null[C_PERSON] = r->null[C_PID] = chance(s, 1);
    snprintf(r->s[C_PERSON], TEXT_MAX, "P%05d", (int)person);
    /* the same order as the text, spread over 8 bytes */
    r->i[C_PID] = person * ((int64_t)1 << 45) - ((int64_t)1 << 62);
    r->null[C_TOWN] = chance(s, 8);
    snprintf(r->s[C_TOWN], TEXT_MAX, "%s", towns[rnd(s) % FQ_ARRAY_LEN(towns)]);
    r->null[C_YEAR] = chance(s, 5);
    r->i[C_YEAR] = rnd_in(s, -5, 30);
    r->null[C_MONTH] = chance(s, 5);
    snprintf(r->s[C_MONTH], TEXT_MAX, "%d-%02d", (int)rnd_in(s, 2023, 2024),
             (int)rnd_in(s, 1, 12));
    r->i[C_SEX] = rnd_in(s, 1, 2);
    r->i[C_CODE] = rnd_in(s, 0, 3000);
    r->null[C_HH] = chance(s, 3);
    r->i[C_HH] = chance(s, 50) ? rnd_in(s, -3, 3)
                               : rnd_in(s, -((int64_t)1 << 40), 1LL << 40);
    r->null[C_WAGES] = chance(s, 10);
    r->i[C_WAGES] = chance(s, 20) ? rnd_in(s, -1000, 0)
                                  : rnd_in(s, 0, rnd_in(s, 0, 100000));
    r->null[C_BIG] = chance(s, 5);
    r->i[C_BIG] = rnd_in(s, -((int64_t)1 << 48), (int64_t)1 << 48);
    r->null[C_SCORE] = chance(s, 10);
    r->d[C_SCORE] = (double)rnd_in(s, -100000, 100000) / 100.0;
    r->null[C_DAY] = chance(s, 5);
    snprintf(r->s[C_DAY], TEXT_MAX, "2023-%02d-%02d", (int)rnd_in(s, 1, 12),
             (int)rnd_in(s, 1, 28));
    /* a few employers, each with many persons: units of their own */
    r->null[C_EMP] = chance(s, 3);
    snprintf(r->s[C_EMP], TEXT_MAX, "E%02d", (int)rnd_in(s, 0, 30));
}

/* NULL persons first, then by byte order: the extract's code order. */
static int
row_cmp(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    if (x->null[C_PERSON] != y->null[C_PERSON])
        return x->null[C_PERSON] ? -1 : 1;
    if (x->null[C_PERSON])
        return 0;
    return strcmp(x->s[C_PERSON], y->s[C_PERSON]);
}

static bool
is_text(int c)
{
    return tcols[c].type != AG_TYPE_INTEGER && tcols[c].type != AG_TYPE_DECIMAL;
}

static void
bind_row(sqlite3_stmt *st, const struct row *r)
{
    for (int c = 0; c < N_COLS; c++) {
        if (r->null[c])
            sqlite3_bind_null(st, c + 1);
        else if (is_text(c))
            sqlite3_bind_text(st, c + 1, r->s[c], -1, SQLITE_STATIC);
        else if (tcols[c].type == AG_TYPE_DECIMAL)
            sqlite3_bind_double(st, c + 1, r->d[c]);
        else
            sqlite3_bind_int64(st, c + 1, r->i[c]);
    }
}

/* The rows into table t, and those with a person into table t2. */
static void
write_sqlite(const char *path, const struct row *rows, size_t n)
{
    sqlite3 *db;
    sqlite3_stmt *st[2];
    char sql[300];

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    for (int k = 0; k < 2; k++) {
        snprintf(sql, sizeof(sql),
                 "CREATE TABLE %s(person_id TEXT, pid INTEGER, town TEXT, "
                 "year INTEGER, month TEXT, sex INTEGER, code INTEGER, "
                 "hh INTEGER, wages INTEGER, big INTEGER, score REAL, "
                 "day TEXT, employer_id TEXT)",
                 k ? "t2" : "t");
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO %s VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 k ? "t2" : "t");
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st[k], NULL),
                         SQLITE_OK);
    }
    assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < 2 - rows[i].null[C_PERSON]; k++) {
            bind_row(st[k], &rows[i]);
            assert_int_equal(sqlite3_step(st[k]), SQLITE_DONE);
            sqlite3_reset(st[k]);
        }
    }
    sqlite3_finalize(st[0]);
    sqlite3_finalize(st[1]);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* ---- the extract, built in memory --------------------------------------- */

static void *
aligned_zalloc(size_t n)
{
    size_t len = (n + 63) / 64 * 64 + 64;
    void *p = aligned_alloc(64, len);
    assert_non_null(p);
    memset(p, 0, len);
    return p;
}

static void
put_stored(struct ag_xcol *xc, size_t r, uint64_t v)
{
    void *d = (void *)xc->data;
    switch (xc->width) {
    case 1:
        ((uint8_t *)d)[r] = (uint8_t)v;
        break;
    case 2:
        ((uint16_t *)d)[r] = (uint16_t)v;
        break;
    case 4:
        ((uint32_t *)d)[r] = (uint32_t)v;
        break;
    default:
        ((uint64_t *)d)[r] = v;
    }
}

static uint8_t
width_for(uint64_t max, bool wide, bool dict)
{
    if (wide)
        return dict ? 4 : 8;
    return max <= 0xFF ? 1 : max <= 0xFFFF ? 2 : max <= 0xFFFFFFFF ? 4 : 8;
}

static void
nulls_fill(struct ag_xcol *xc, const struct row *rows, size_t n, int c)
{
    uint64_t *bits = aligned_zalloc((n + 63) / 64 * 8);
    bool any = false;
    for (size_t r = 0; r < n; r++) {
        if (rows[r].null[c]) {
            bits[r / 64] |= (uint64_t)1 << (r % 64);
            any = true;
        }
    }
    if (any)
        xc->nulls = bits;
    else
        free(bits);
}

static void
int_column(struct ag_xcol *xc, const struct row *rows, size_t n, int c,
           bool wide)
{
    xc->kind = AG_COL_INT;
    xc->min = 0;
    xc->max = -1;
    bool seen = false;
    for (size_t r = 0; r < n; r++) {
        if (rows[r].null[c])
            continue;
        if (!seen || rows[r].i[c] < xc->min)
            xc->min = rows[r].i[c];
        if (!seen || rows[r].i[c] > xc->max)
            xc->max = rows[r].i[c];
        seen = true;
    }
    xc->base = seen ? xc->min : 0;
    xc->width = width_for(seen ? (uint64_t)xc->max - (uint64_t)xc->base : 0,
                          wide, false);
    xc->data = aligned_zalloc(n * xc->width);
    for (size_t r = 0; r < n; r++) {
        if (!rows[r].null[c])
            put_stored(xc, r, (uint64_t)rows[r].i[c] - (uint64_t)xc->base);
    }
}

static void
double_column(struct ag_xcol *xc, const struct row *rows, size_t n, int c)
{
    double *d = aligned_zalloc(n * 8);
    xc->kind = AG_COL_DOUBLE;
    xc->width = 8;
    for (size_t r = 0; r < n; r++)
        d[r] = rows[r].null[c] ? 0.0 : rows[r].d[c];
    xc->data = d;
}

static int
str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int64_t
dict_find(char **entries, size_t n, const char *s)
{
    char **e = bsearch(&s, entries, n, sizeof(*entries), str_cmp);
    assert_non_null(e);
    return e - entries;
}

static void
dict_column(struct ag_xcol *xc, const struct row *rows, size_t n, int c,
            bool wide)
{
    char **e = calloc(n + 1, sizeof(*e));
    size_t k = 0, bytes = 0;

    assert_non_null(e);
    for (size_t r = 0; r < n; r++) {
        if (!rows[r].null[c])
            e[k++] = (char *)rows[r].s[c];
    }
    qsort(e, k, sizeof(*e), str_cmp);
    size_t u = 0;
    for (size_t i = 0; i < k; i++) {
        if (u == 0 || strcmp(e[u - 1], e[i]) != 0)
            e[u++] = e[i];
    }
    uint64_t *off = aligned_zalloc((u + 1) * 8);
    for (size_t i = 0; i < u; i++) {
        off[i] = bytes;
        bytes += strlen(e[i]) + 1;
    }
    off[u] = bytes;
    char *text = aligned_zalloc(bytes + 1);
    for (size_t i = 0; i < u; i++)
        memcpy(text + off[i], e[i], strlen(e[i]) + 1);
    xc->kind = AG_COL_DICT;
    xc->dict_size = (uint32_t)u;
    xc->dict_offsets = off;
    xc->dict_bytes = text;
    xc->width = width_for(u ? u - 1 : 0, wide, true);
    xc->data = aligned_zalloc(n * xc->width);
    for (size_t r = 0; r < n; r++) {
        if (!rows[r].null[c])
            put_stored(xc, r, (uint64_t)dict_find(e, u, rows[r].s[c]));
    }
    free(e);
}

/* The rows as an extract; wide: every column in its widest width;
 * contributor: its column, or -1. */
static struct ag_extract *
extract_new(const struct row *rows, size_t n, bool wide, int contributor)
{
    struct ag_extract *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    x->n_rows = n;
    x->n_cols = N_COLS;
    x->cols = calloc(N_COLS, sizeof(*x->cols));
    assert_non_null(x->cols);
    x->contributor = contributor;
    for (int c = 0; c < N_COLS; c++) {
        struct ag_xcol *xc = &x->cols[c];
        xc->name = tcols[c].name;
        xc->type = tcols[c].type;
        xc->role = tcols[c].role;
        if (is_text(c))
            dict_column(xc, rows, n, c, wide);
        else if (tcols[c].type == AG_TYPE_DECIMAL)
            double_column(xc, rows, n, c);
        else
            int_column(xc, rows, n, c, wide);
        nulls_fill(xc, rows, n, c);
    }
    if (contributor >= 0) {
        uint64_t words = (n + 63) / 64, *runs = calloc(words + 1, 8);
        assert_non_null(runs);
        for (uint64_t w = 0; w < words; w++)
            runs[w] = ag_xcol_run_word(&x->cols[contributor], n, w);
        x->contributor_runs = runs;
    }
    return x;
}

static void
extract_free(struct ag_extract *x)
{
    for (size_t c = 0; x && c < x->n_cols; c++) {
        free((void *)x->cols[c].data);
        free((void *)x->cols[c].nulls);
        free((void *)x->cols[c].dict_offsets);
        free((void *)x->cols[c].dict_bytes);
    }
    if (x) {
        free(x->cols);
        free((void *)x->contributor_runs);
        free(atomic_load(&x->person_tags));
    }
    free(x);
}

/* ---- the catalog -------------------------------------------------------- */

#define COLUMNS_YAML                                                    \
    "    columns:\n"                                                    \
    "      - {name: person_id, role: identifier, type: text}\n"         \
    "      - {name: town, role: dimension, type: text,\n"               \
    "         domain: {codes: [A, B, Ba, BB, C, Zed, a]}}\n"            \
    "      - {name: year, role: dimension, type: integer,\n"            \
    "         domain: {min: -5, max: 30}}\n"                            \
    "      - {name: month, role: dimension, type: month,\n"             \
    "         domain: {codes: ['2023-01', '2024-12']}}\n"               \
    "      - {name: sex, role: dimension, type: integer,\n"             \
    "         domain: {min: 1, max: 2}}\n"                              \
    "      - {name: code, role: dimension, type: integer,\n"            \
    "         domain: {min: 0, max: 3000}}\n"                           \
    "      - {name: hh, role: dimension, type: integer,\n"              \
    "         domain: {min: -1099511627776, max: 1099511627776}}\n"     \
    "      - {name: wages, role: measure, type: integer,\n"             \
    "         bounds: {min: -1000, max: 100000}, quantile_bins: 50}\n"  \
    "      - {name: big, role: measure, type: integer,\n"               \
    "         bounds: {min: -281474976710656, max: 281474976710656},\n" \
    "         contributor_unit: employer_id}\n"                         \
    "      - {name: score, role: measure, type: decimal,\n"             \
    "         bounds: {min: -1000, max: 1000}}\n"                       \
    "      - {name: day, role: date, type: date}\n"                     \
    "      - {name: employer_id, role: identifier, type: text}\n"

static const char config_yaml[] =
    "agency: dol\n"
    "federation: fedq.test\n"
    "tls: {ca: ca.crt, cert: a.crt, key: a.key}\n"
    "datasets:\n"
    "  - name: w\n"
    "    contributor: person_id\n"
    "    engine: sqlite\n"
    "    source: {sqlite: d.sqlite, table: t}\n" COLUMNS_YAML "  - name: nc\n"
    "    engine: sqlite\n"
    "    source: {sqlite: d.sqlite, table: t}\n" COLUMNS_YAML "  - name: nn\n"
    "    contributor: person_id\n"
    "    engine: sqlite\n"
    "    source: {sqlite: d.sqlite, table: t2}\n" COLUMNS_YAML
    "cell_key_secret: ck.key\n";

static void
catalog_open(struct fixture *f)
{
    char path[128];
    struct ag_config *cfg = NULL;
    const struct ag_source *src;

    snprintf(path, sizeof(path), "%s/agent.yaml", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(config_yaml, fp);
    fclose(fp);
    if (ag_config_load(path, &cfg, f->err, sizeof(f->err)) != 0)
        print_error("%s\n", f->err);
    assert_non_null(cfg);
    if (ag_catalog_build(cfg, &f->cat, f->err, sizeof(f->err)) != 0)
        print_error("%s\n", f->err);
    assert_non_null(f->cat);
    ag_catalog_adopt_config(f->cat, cfg);
    static const uint8_t key[AG_CELL_SECRET_LEN] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(ag_cell_secret_set(&test_secret, key), 0);
    ag_catalog_set_secret(f->cat, &test_secret);
    f->ds = ag_catalog_find(f->cat, "w", &src);
    f->ds_nc = ag_catalog_find(f->cat, "nc", &src);
    f->ds_nn = ag_catalog_find(f->cat, "nn", &src);
    assert_non_null(f->ds);
    assert_non_null(f->ds_nc);
    assert_non_null(f->ds_nn);
}

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    uint64_t seed = 0x5EED1234ABCDULL;
    char db[128];

    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/fq-engine-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->n_rows = N_ROWS;
    f->rows = calloc(N_ROWS, sizeof(*f->rows));
    if (!f->rows)
        return -1;
    for (size_t i = 0; i < N_ROWS; i++)
        row_random(&f->rows[i], &seed, N_ROWS / 8);
    qsort(f->rows, N_ROWS, sizeof(*f->rows), row_cmp);
    snprintf(db, sizeof(db), "%s/d.sqlite", f->dir);
    write_sqlite(db, f->rows, N_ROWS);
    catalog_open(f);
    f->x = extract_new(f->rows, N_ROWS, false, C_PERSON);
    f->x_wide = extract_new(f->rows, N_ROWS, true, C_PERSON);
    f->x_nc = extract_new(f->rows, N_ROWS, false, -1);
    size_t skip = 0; /* the NULL persons sort first */
    while (skip < N_ROWS && f->rows[skip].null[C_PERSON])
        skip++;
    /* pid (8 bytes), or person_id: the same persons, so the same counts */
    f->x_nn = extract_new(f->rows + skip, N_ROWS - skip, false, C_PID);
    f->x_nn_wide = extract_new(f->rows + skip, N_ROWS - skip, true, C_PERSON);
    en_min_rows_per_thread = 256; /* several threads on small data */
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[160];

    extract_free(f->x);
    extract_free(f->x_wide);
    extract_free(f->x_nc);
    extract_free(f->x_nn);
    extract_free(f->x_nn_wide);
    ag_catalog_unref(f->cat);
    ag_cell_secret_release(&test_secret);
    free(f->rows);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* ---- plans -------------------------------------------------------------- */

static void *
zalloc(struct fq_arena *a, size_t n)
{
    void *p = fq_arena_alloc(a, n);
    assert_non_null(p);
    return p;
}

static Fedq__V1__Literal *
lit_new(struct fq_arena *a, Fedq__V1__Literal__ValueCase k)
{
    Fedq__V1__Literal *l = zalloc(a, sizeof(*l));
    fedq__v1__literal__init(l);
    l->value_case = k;
    return l;
}

static Fedq__V1__Literal *
lit_int(struct fq_arena *a, int64_t v)
{
    Fedq__V1__Literal *l = lit_new(a, FEDQ__V1__LITERAL__VALUE_INT_VALUE);
    l->int_value = v;
    return l;
}

static Fedq__V1__Literal *
lit_dec(struct fq_arena *a, double v)
{
    Fedq__V1__Literal *l = lit_new(a, FEDQ__V1__LITERAL__VALUE_DECIMAL_VALUE);
    l->decimal_value = v;
    return l;
}

static Fedq__V1__Literal *
lit_text(struct fq_arena *a, const char *s)
{
    Fedq__V1__Literal *l = lit_new(a, FEDQ__V1__LITERAL__VALUE_TEXT_VALUE);
    l->text_value = fq_arena_strdup(a, s);
    return l;
}

struct gen {
    uint64_t seed;
    struct fq_arena *a;
    const struct fixture *f;
    bool counting; /* mostly counts without GROUP BY */
};

/* A value of column c from the data, NULL rows included (any value). */
static const struct row *
some_row(struct gen *g)
{
    return &g->f->rows[rnd(&g->seed) % g->f->n_rows];
}

static Fedq__V1__Literal *
int_literal(struct gen *g, int c)
{
    static const int64_t odd[] = {
        INT64_MIN, INT64_MAX, INT64_MIN + 1, INT64_MAX - 1,   0, -1,
        31,        -6,        3001,          (int64_t)1 << 41};
    if (chance(&g->seed, 20))
        return lit_int(g->a, odd[rnd(&g->seed) % FQ_ARRAY_LEN(odd)]);
    return lit_int(g->a, some_row(g)->i[c] + rnd_in(&g->seed, -1, 1));
}

static Fedq__V1__Literal *
dec_literal(struct gen *g)
{
    static const double odd[] = {0.0,       -0.0,  1e300,   -1e300, INFINITY,
                                 -INFINITY, 0.005, -999.99, 1000.0};
    uint64_t *s = &g->seed;
    if (chance(s, 3))
        return lit_dec(g->a, NAN);
    if (chance(s, 15))
        return lit_dec(g->a, odd[rnd(s) % FQ_ARRAY_LEN(odd)]);
    if (chance(s, 15))
        return lit_int(g->a, chance(s, 50) ? rnd_in(s, -1000, 1000)
                                           : ((int64_t)1 << 53) + 1);
    double v = some_row(g)->d[C_SCORE];
    return lit_dec(g->a, chance(s, 50) ? v : v + 0.001);
}

static Fedq__V1__Literal *
text_literal(struct gen *g, int c)
{
    static const char *const extra[] = {"",         "B",  "Bb", "Z",  "zzz",
                                        "\xc3\xa9", "Ba", "A",  "BB", "a"};
    uint64_t *s = &g->seed;
    char buf[TEXT_MAX];

    if (c == C_TOWN)
        return lit_text(g->a, chance(s, 30)
                                  ? extra[rnd(s) % FQ_ARRAY_LEN(extra)]
                                  : some_row(g)->s[C_TOWN]);
    if (c == C_MONTH)
        snprintf(buf, sizeof(buf), "%d-%02d", (int)rnd_in(s, 2022, 2025),
                 (int)rnd_in(s, 1, 12));
    else
        snprintf(buf, sizeof(buf), "%d-%02d-%02d", (int)rnd_in(s, 2022, 2024),
                 (int)rnd_in(s, 1, 12), (int)rnd_in(s, 1, 28));
    return lit_text(g->a, buf);
}

static Fedq__V1__Literal *
literal_for(struct gen *g, int c)
{
    if (is_text(c))
        return text_literal(g, c);
    if (tcols[c].type == AG_TYPE_DECIMAL)
        return dec_literal(g);
    return int_literal(g, c);
}

static int
filter_column(struct gen *g)
{
    return (int)rnd_in(&g->seed, C_TOWN, C_DAY);
}

static Fedq__V1__Predicate *
pred_new(struct gen *g, Fedq__V1__Predicate__NodeCase k)
{
    Fedq__V1__Predicate *p = zalloc(g->a, sizeof(*p));
    fedq__v1__predicate__init(p);
    p->node_case = k;
    return p;
}

static Fedq__V1__Predicate *
random_leaf(struct gen *g)
{
    int c = filter_column(g), kind = (int)rnd_in(&g->seed, 0, 9);
    char *name = (char *)tcols[c].name;
    Fedq__V1__Predicate *p;

    if (kind == 0) {
        p = pred_new(g, FEDQ__V1__PREDICATE__NODE_IS_NULL);
        p->is_null = zalloc(g->a, sizeof(*p->is_null));
        fedq__v1__is_null__init(p->is_null);
        p->is_null->column = name;
        p->is_null->negated = chance(&g->seed, 50);
    } else if (kind <= 2) {
        p = pred_new(g, FEDQ__V1__PREDICATE__NODE_BETWEEN);
        p->between = zalloc(g->a, sizeof(*p->between));
        fedq__v1__between__init(p->between);
        p->between->column = name;
        p->between->low = literal_for(g, c);
        p->between->high = literal_for(g, c);
    } else if (kind <= 4) {
        p = pred_new(g, FEDQ__V1__PREDICATE__NODE_IN);
        p->in = zalloc(g->a, sizeof(*p->in));
        fedq__v1__in_list__init(p->in);
        p->in->column = name;
        p->in->n_values = (size_t)rnd_in(&g->seed, 1, 6);
        p->in->values = zalloc(g->a, p->in->n_values * sizeof(void *));
        for (size_t i = 0; i < p->in->n_values; i++)
            p->in->values[i] = literal_for(g, c);
    } else {
        p = pred_new(g, FEDQ__V1__PREDICATE__NODE_COMPARE);
        p->compare = zalloc(g->a, sizeof(*p->compare));
        fedq__v1__comparison__init(p->compare);
        p->compare->column = name;
        p->compare->op = (Fedq__V1__CompareOp)rnd_in(&g->seed, 1, 6);
        p->compare->value = literal_for(g, c);
    }
    return p;
}

static Fedq__V1__Predicate *
random_pred(struct gen *g, int depth)
{
    int kind = depth >= 3 ? 0 : (int)rnd_in(&g->seed, 0, 4);
    Fedq__V1__Predicate *p;

    if (kind <= 1)
        return random_leaf(g);
    if (kind == 2) {
        p = pred_new(g, FEDQ__V1__PREDICATE__NODE_NOT);
        p->not_ = zalloc(g->a, sizeof(*p->not_));
        fedq__v1__negation__init(p->not_);
        p->not_->term = random_pred(g, depth + 1);
        return p;
    }
    size_t n = (size_t)rnd_in(&g->seed, 1, 3);
    Fedq__V1__Predicate **terms = zalloc(g->a, n * sizeof(*terms));
    for (size_t i = 0; i < n; i++)
        terms[i] = random_pred(g, depth + 1);
    if (kind == 3) {
        p = pred_new(g, FEDQ__V1__PREDICATE__NODE_ALL);
        p->all = zalloc(g->a, sizeof(*p->all));
        fedq__v1__conjunction__init(p->all);
        p->all->terms = terms;
        p->all->n_terms = n;
    } else {
        p = pred_new(g, FEDQ__V1__PREDICATE__NODE_ANY);
        p->any = zalloc(g->a, sizeof(*p->any));
        fedq__v1__disjunction__init(p->any);
        p->any->terms = terms;
        p->any->n_terms = n;
    }
    return p;
}

/* Strictly increasing edges for measure c. */
static void
random_edges(struct gen *g, Fedq__V1__Aggregate *ag, int c)
{
    uint64_t *s = &g->seed;
    size_t n = (size_t)(chance(s, 70) ? rnd_in(s, 1, 5) : rnd_in(s, 9, 20));
    int64_t step = c == C_BIG ? (int64_t)1 << 45 : c == C_SCORE ? 150 : 9000;
    int64_t v = c == C_BIG ? -((int64_t)1 << 49) : c == C_SCORE ? -1100 : -2000;

    ag->n_edges = n;
    ag->edges = zalloc(g->a, n * sizeof(*ag->edges));
    for (size_t i = 0; i < n; i++) {
        v += rnd_in(s, 1, step);
        if (c == C_SCORE && chance(s, 50))
            ag->edges[i] = lit_dec(g->a, (double)v + 0.5);
        else
            ag->edges[i] = lit_int(g->a, v + (c == C_SCORE)); /* > v + .5 */
        v += 1;
    }
}

static Fedq__V1__Aggregate *
random_aggregate(struct gen *g)
{
    static const int distinct[] = {C_PERSON, C_TOWN, C_YEAR, C_MONTH,
                                   C_CODE,   C_HH,   C_SEX};
    static const int measures[] = {C_WAGES, C_BIG, C_SCORE};
    uint64_t *s = &g->seed;
    Fedq__V1__Aggregate *ag = zalloc(g->a, sizeof(*ag));

    fedq__v1__aggregate__init(ag);
    ag->kind = (Fedq__V1__AggregateKind)rnd_in(s, 1, 8);
    if (g->counting && chance(s, 90)) {
        bool person = chance(s, 50);
        ag->kind = person
                       ? FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT_DISTINCT
                       : FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT;
        ag->column = person ? "person_id" : "";
        return ag;
    }
    int m = measures[rnd(s) % FQ_ARRAY_LEN(measures)];
    ag->column = (char *)tcols[m].name;
    switch (ag->kind) {
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT:
        ag->column = "";
        break;
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT_DISTINCT:
        ag->column =
            (char *)tcols[distinct[rnd(s) % FQ_ARRAY_LEN(distinct)]].name;
        break;
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM:
        random_edges(g, ag, m);
        break;
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE:
        ag->column = "wages";
        ag->fraction = 0.5;
        break;
    default:
        break;
    }
    return ag;
}

static Fedq__V1__Plan *
random_plan(struct gen *g, const char *dataset)
{
    static const int dims[] = {C_TOWN, C_YEAR, C_MONTH, C_SEX, C_CODE, C_HH};
    uint64_t *s = &g->seed;
    Fedq__V1__Plan *plan = zalloc(g->a, sizeof(*plan));

    fedq__v1__plan__init(plan);
    plan->dataset = (char *)dataset;
    plan->n_group_by = g->counting ? 0 : (size_t)rnd_in(s, 0, 3);
    plan->group_by = zalloc(g->a, 4 * sizeof(char *));
    for (size_t i = 0; i < plan->n_group_by; i++) {
        const char *name;
        bool dup;
        do {
            /* hh and code rarely: they make thousands of groups */
            int d = dims[rnd(s) % (chance(s, 25) ? 6 : 4)];
            name = tcols[d].name;
            dup = false;
            for (size_t j = 0; j < i; j++)
                dup |= strcmp(plan->group_by[j], name) == 0;
        } while (dup);
        plan->group_by[i] = (char *)name;
    }
    plan->n_aggregates = (size_t)rnd_in(s, 1, 4);
    plan->aggregates = zalloc(g->a, plan->n_aggregates * sizeof(void *));
    for (size_t i = 0; i < plan->n_aggregates; i++)
        plan->aggregates[i] = random_aggregate(g);
    if (chance(s, 85))
        plan->filter = random_pred(g, 0);
    return plan;
}

/* ---- comparing ---------------------------------------------------------- */

struct keyed {
    char key[160];
    const Fedq__V1__PartialGroup *g;
};

static int
keyed_cmp(const void *a, const void *b)
{
    return strcmp(((const struct keyed *)a)->key,
                  ((const struct keyed *)b)->key);
}

static struct keyed *
sorted_groups(const Fedq__V1__ExecuteResponse *r)
{
    struct keyed *k = calloc(r->n_groups + 1, sizeof(*k));
    assert_non_null(k);
    for (size_t i = 0; i < r->n_groups; i++) {
        size_t len = 0;
        k[i].g = r->groups[i];
        for (size_t j = 0; j < r->groups[i]->n_key; j++) {
            const Fedq__V1__Literal *l = r->groups[i]->key[j];
            char *p = k[i].key + len;
            size_t room = sizeof(k[i].key) - len;
            if (l->value_case == FEDQ__V1__LITERAL__VALUE_INT_VALUE)
                len += (size_t)snprintf(p, room, "I%" PRId64 "|", l->int_value);
            else if (l->value_case == FEDQ__V1__LITERAL__VALUE_TEXT_VALUE)
                len += (size_t)snprintf(p, room, "T%s|", l->text_value);
            else
                len += (size_t)snprintf(p, room, "N|");
        }
    }
    qsort(k, r->n_groups, sizeof(*k), keyed_cmp);
    return k;
}

static bool
close_enough(double a, double b)
{
    double scale = fmax(fabs(a), fabs(b));
    return a == b || fabs(a - b) <= 1e-9 * scale || fabs(a - b) <= 1e-6;
}

/* n elements at a and b are equal (either may be NULL when n is 0). */
static bool
same_arr(const void *a, const void *b, size_t n, size_t size)
{
    return n == 0 || memcmp(a, b, n * size) == 0;
}

/* The disclosure fields (cellstats.h). */
static const char *
cells_diff(const Fedq__V1__AggregateState *a, const Fedq__V1__AggregateState *b)
{
    if (a->contributors != b->contributors)
        return "aggregate contributors";
    if (keys_comparable && a->cell_key != b->cell_key)
        return "cell_key";
    if (a->n_bin_cell_keys != b->n_bin_cell_keys ||
        (keys_comparable &&
         !same_arr(a->bin_cell_keys, b->bin_cell_keys, a->n_bin_cell_keys,
                   sizeof(*a->bin_cell_keys))))
        return "bin_cell_keys";
    if (a->units != b->units)
        return "units";
    if (!close_enough(a->top1, b->top1) || !close_enough(a->top2, b->top2))
        return "top contributions";
    if (!close_enough(a->abs_total, b->abs_total))
        return "abs_total";
    seen_keys += a->cell_key != 0;
    seen_units += a->units > 1 && a->top2 > 0;
    return NULL;
}

/* Where two answers differ, or NULL. */
static const char *
state_diff(const Fedq__V1__AggregateState *a, const Fedq__V1__AggregateState *b)
{
    if (a->count != b->count)
        return "count";
    if (a->int_sum != b->int_sum)
        return "int_sum";
    if (!close_enough(a->decimal_sum, b->decimal_sum))
        return "decimal_sum";
    if (!close_enough(a->mean, b->mean))
        return "mean";
    if (!close_enough(a->m2, b->m2))
        return "m2";
    if (a->n_bins != b->n_bins ||
        !same_arr(a->bins, b->bins, a->n_bins, sizeof(*a->bins)))
        return "bins";
    if (a->n_bin_contributors != b->n_bin_contributors ||
        !same_arr(a->bin_contributors, b->bin_contributors,
                  a->n_bin_contributors, sizeof(*a->bin_contributors)))
        return "bin_contributors";
    if (a->n_sketch_bins != b->n_sketch_bins ||
        !same_arr(a->sketch_bins, b->sketch_bins, a->n_sketch_bins,
                  sizeof(*a->sketch_bins)) ||
        !same_arr(a->sketch_counts, b->sketch_counts, a->n_sketch_bins,
                  sizeof(*a->sketch_counts)))
        return "sketch";
    return cells_diff(a, b);
}

static const char *
group_diff(const Fedq__V1__PartialGroup *a, const Fedq__V1__PartialGroup *b,
           size_t *agg)
{
    if (a->records != b->records)
        return "records";
    if (a->contributors != b->contributors)
        return "contributors";
    if (a->n_aggregates != b->n_aggregates)
        return "aggregates";
    for (*agg = 0; *agg < a->n_aggregates; (*agg)++) {
        const char *d = state_diff(a->aggregates[*agg], b->aggregates[*agg]);
        if (d)
            return d;
    }
    return NULL;
}

/* Both answers hold the same groups with the same states. */
static bool
same_answer(const Fedq__V1__ExecuteResponse *ref,
            const Fedq__V1__ExecuteResponse *got, char *why, size_t len)
{
    if (ref->n_groups != got->n_groups) {
        snprintf(why, len, "%zu groups, want %zu", got->n_groups,
                 ref->n_groups);
        return false;
    }
    struct keyed *a = sorted_groups(ref), *b = sorted_groups(got);
    bool ok = true;
    for (size_t i = 0; ok && i < ref->n_groups; i++) {
        size_t agg = 0;
        const char *d = strcmp(a[i].key, b[i].key)
                            ? "key"
                            : group_diff(a[i].g, b[i].g, &agg);
        if (d) {
            snprintf(why, len, "group '%s' (engine '%s'): %s of aggregate %zu",
                     a[i].key, b[i].key, d, agg);
            ok = false;
        }
    }
    free(a);
    free(b);
    return ok;
}

/* ---- running ------------------------------------------------------------ */

static int
run_engine(const struct ag_extract *x, const Fedq__V1__Dataset *ds,
           const Fedq__V1__Plan *plan, size_t threads, size_t max_groups,
           size_t max_memory, struct fq_arena *a,
           Fedq__V1__ExecuteResponse *resp, char *err, size_t errlen)
{
    struct ag_engine_limits lim = {max_groups, threads, max_memory,
                                   &test_secret};
    fedq__v1__execute_response__init(resp);
    err[0] = '\0';
    return ag_engine_execute(x, ds, plan, &lim, a, resp, err, errlen);
}

/* The plan through SQLite and the engine on 1 and 3 threads; false (with
 * the reason printed) on a difference. */
static bool
compare_plan(struct fixture *f, const struct ag_extract *x,
             const Fedq__V1__Dataset *ds, const Fedq__V1__Plan *plan)
{
    struct fq_arena *a = fq_arena_new(64 << 20);
    Fedq__V1__ExecuteResponse ref, got;
    char err[256], why[400];
    bool ok = true;

    assert_non_null(a);
    fedq__v1__execute_response__init(&ref);
    int want = ag_execute(f->cat, plan, 100000, a, &ref, err, sizeof(err));
    for (size_t threads = 1; ok && threads <= 3; threads += 2) {
        int rc = run_engine(x, ds, plan, threads, 100000, 256 << 20, a, &got,
                            why, sizeof(why));
        if (rc != want) {
            print_error("threads %zu: rc %d (%s), SQLite %d (%s)\n", threads,
                        rc, why, want, err);
            ok = false;
        } else if (rc == 0 && !same_answer(&ref, &got, why, sizeof(why))) {
            print_error("threads %zu: %s\n", threads, why);
            ok = false;
        }
    }
    fq_arena_free(a);
    return ok;
}

static void
random_plans(struct fixture *f, const struct ag_extract *x,
             const Fedq__V1__Dataset *ds, uint64_t seed, int n, bool counting)
{
    int checked = 0;

    for (int i = 0; i < n; i++) {
        struct fq_arena *a = fq_arena_new(16 << 20);
        struct gen g = {seed + (uint64_t)i * 7919, a, f, counting};
        rnd(&g.seed);
        Fedq__V1__Plan *plan = random_plan(&g, ds->name);
        if (fq_plan_check(plan, ds, f->err, sizeof(f->err)) == 0) {
            checked++;
            if (!compare_plan(f, x, ds, plan)) {
                print_error("plan %d (seed %" PRIu64 ") differs\n", i, seed);
                fail();
            }
        }
        fq_arena_free(a);
    }
    assert_true(checked > n * 3 / 4);
}

static void
test_random_plans(void **state)
{
    struct fixture *f = *state;
    seen_keys = seen_units = 0;
    random_plans(f, f->x, f->ds, 1, N_PLANS, false);
    assert_true(seen_keys > 100);
    assert_true(seen_units > 100);
}

/* Every column in its widest width: the other kernels. */
static void
test_random_plans_wide(void **state)
{
    struct fixture *f = *state;
    random_plans(f, f->x_wide, f->ds, 100001, N_PLANS / 3, false);
}

/* No contributor column: contributors are records, bins say 0. */
static void
test_random_plans_no_contributor(void **state)
{
    struct fixture *f = *state;
    random_plans(f, f->x_nc, f->ds_nc, 200001, N_PLANS / 3, false);
}

/* ---- limits and edge cases ---------------------------------------------- */

static Fedq__V1__Plan *
plan_new(struct fq_arena *a, const char *dataset, const char *g1,
         const char *g2, Fedq__V1__AggregateKind kind, const char *col)
{
    Fedq__V1__Plan *plan = zalloc(a, sizeof(*plan));
    Fedq__V1__Aggregate *ag = zalloc(a, sizeof(*ag));

    fedq__v1__plan__init(plan);
    fedq__v1__aggregate__init(ag);
    plan->dataset = (char *)dataset;
    plan->group_by = zalloc(a, 2 * sizeof(char *));
    if (g1)
        plan->group_by[plan->n_group_by++] = (char *)g1;
    if (g2)
        plan->group_by[plan->n_group_by++] = (char *)g2;
    ag->kind = kind;
    ag->column = (char *)col;
    plan->aggregates = zalloc(a, sizeof(void *));
    plan->aggregates[0] = ag;
    plan->n_aggregates = 1;
    return plan;
}

static void
test_max_groups(void **state)
{
    struct fixture *f = *state;
    struct fq_arena *a = fq_arena_new(16 << 20);
    Fedq__V1__ExecuteResponse resp;
    char err[256];
    static const char *const dims[] = {"code", "hh"}; /* dense, hashed */

    for (size_t i = 0; i < FQ_ARRAY_LEN(dims); i++) {
        Fedq__V1__Plan *plan =
            plan_new(a, "w", dims[i], NULL,
                     FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT, "");
        for (size_t threads = 1; threads <= 3; threads += 2) {
            assert_int_equal(run_engine(f->x, f->ds, plan, threads, 100, 0, a,
                                        &resp, err, sizeof(err)),
                             FQ_ETOOBIG);
            assert_string_equal(err, "query produces more than 100 groups");
        }
        /* exactly as many groups as allowed is fine */
        assert_int_equal(
            run_engine(f->x, f->ds, plan, 3, 0, 0, a, &resp, err, sizeof(err)),
            0);
        size_t n = resp.n_groups;
        assert_int_equal(
            run_engine(f->x, f->ds, plan, 3, n, 0, a, &resp, err, sizeof(err)),
            0);
        assert_int_equal(resp.n_groups, n);
    }
    fq_arena_free(a);
}

static void
test_max_memory(void **state)
{
    struct fixture *f = *state;
    struct fq_arena *a = fq_arena_new(16 << 20);
    Fedq__V1__ExecuteResponse resp;
    char err[256];
    Fedq__V1__Plan *plan =
        plan_new(a, "w", "hh", "code",
                 FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE, "wages");

    plan->aggregates[0]->fraction = 0.5;
    assert_int_equal(fq_plan_check(plan, f->ds, err, sizeof(err)), 0);
    for (size_t threads = 1; threads <= 3; threads += 2) {
        assert_int_equal(run_engine(f->x, f->ds, plan, threads, 0, 1 << 20, a,
                                    &resp, err, sizeof(err)),
                         FQ_ETOOBIG);
        assert_non_null(strstr(err, "max_query_memory"));
    }
    /* the same plan in enough memory */
    assert_int_equal(run_engine(f->x, f->ds, plan, 3, 0, 256 << 20, a, &resp,
                                err, sizeof(err)),
                     0);
    assert_true(resp.n_groups > 1000);
    fq_arena_free(a);
}

/* Two rows whose sum leaves 64 bits, the SQLite path agreeing. */
static void
test_sum_overflow(void **state)
{
    struct fixture *f = *state;
    struct fq_arena *a = fq_arena_new(16 << 20);
    Fedq__V1__ExecuteResponse resp;
    char err[256];
    struct row rows[3] = {0};
    uint64_t seed = 7;

    for (size_t i = 0; i < 3; i++) {
        row_random(&rows[i], &seed, 10);
        rows[i].null[C_BIG] = false;
        rows[i].i[C_BIG] = i < 2 ? INT64_MAX / 2 + 1 : 5;
        rows[i].i[C_SEX] = i < 2 ? 1 : 2;
    }
    qsort(rows, 3, sizeof(rows[0]), row_cmp);
    struct ag_extract *x = extract_new(rows, 3, false, C_PERSON);
    Fedq__V1__Plan *plan =
        plan_new(a, "w", NULL, NULL,
                 FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM, "big");
    assert_int_equal(
        run_engine(x, f->ds, plan, 1, 0, 0, a, &resp, err, sizeof(err)),
        FQ_ETOOBIG);
    assert_string_equal(err, "a sum overflows 64-bit integers");
    /* per sex: 2^63 in one group still overflows */
    plan->group_by[plan->n_group_by++] = "sex";
    assert_int_equal(
        run_engine(x, f->ds, plan, 1, 0, 0, a, &resp, err, sizeof(err)),
        FQ_ETOOBIG);
    /* a negative total that fits: INT64_MIN is reachable */
    for (size_t i = 0; i < 3; i++)
        rows[i].i[C_BIG] = i < 2 ? INT64_MIN / 2 : 0;
    extract_free(x);
    x = extract_new(rows, 3, false, C_PERSON);
    plan->n_group_by = 0;
    assert_int_equal(
        run_engine(x, f->ds, plan, 1, 0, 0, a, &resp, err, sizeof(err)), 0);
    assert_int_equal(resp.n_groups, 1);
    assert_true(resp.groups[0]->aggregates[0]->int_sum == INT64_MIN);
    extract_free(x);
    fq_arena_free(a);
}

static void
test_empty(void **state)
{
    struct fixture *f = *state;
    struct fq_arena *a = fq_arena_new(16 << 20);
    Fedq__V1__ExecuteResponse resp;
    char err[256];
    Fedq__V1__Plan *plan =
        plan_new(a, "w", "town", NULL,
                 FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM, "wages");
    Fedq__V1__Predicate *p = zalloc(a, sizeof(*p));
    Fedq__V1__Comparison *c = zalloc(a, sizeof(*c));

    fedq__v1__predicate__init(p);
    fedq__v1__comparison__init(c);
    c->column = "year";
    c->op = FEDQ__V1__COMPARE_OP__COMPARE_OP_GT;
    c->value = lit_int(a, INT64_MAX);
    p->node_case = FEDQ__V1__PREDICATE__NODE_COMPARE;
    p->compare = c;
    plan->filter = p;
    assert_int_equal(
        run_engine(f->x, f->ds, plan, 3, 0, 0, a, &resp, err, sizeof(err)), 0);
    assert_int_equal(resp.n_groups, 0);
    /* no GROUP BY: still no group (SQLite's one row has no records) */
    plan->n_group_by = 0;
    assert_int_equal(
        run_engine(f->x, f->ds, plan, 3, 0, 0, a, &resp, err, sizeof(err)), 0);
    assert_int_equal(resp.n_groups, 0);
    /* an extract without rows */
    struct ag_extract *x = extract_new(f->rows, 0, false, C_PERSON);
    plan->filter = NULL;
    assert_int_equal(
        run_engine(x, f->ds, plan, 3, 0, 0, a, &resp, err, sizeof(err)), 0);
    assert_int_equal(resp.n_groups, 0);
    extract_free(x);
    fq_arena_free(a);
}

/* Keys are typed like their columns and outlive the extract. */
static void
test_keys(void **state)
{
    struct fixture *f = *state;
    struct fq_arena *a = fq_arena_new(16 << 20);
    Fedq__V1__ExecuteResponse resp;
    char err[256];
    Fedq__V1__Plan *plan =
        plan_new(a, "w", "town", "year",
                 FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT, "");
    struct ag_extract *x = extract_new(f->rows, N_ROWS, false, C_PERSON);
    size_t nulls = 0;

    assert_int_equal(
        run_engine(x, f->ds, plan, 3, 0, 0, a, &resp, err, sizeof(err)), 0);
    extract_free(x); /* the answer must not point into it */
    for (size_t i = 0; i < resp.n_groups; i++) {
        const Fedq__V1__Literal *t = resp.groups[i]->key[0];
        const Fedq__V1__Literal *y = resp.groups[i]->key[1];
        nulls += t->value_case == FEDQ__V1__LITERAL__VALUE__NOT_SET;
        if (t->value_case != FEDQ__V1__LITERAL__VALUE__NOT_SET)
            assert_int_equal(t->value_case,
                             FEDQ__V1__LITERAL__VALUE_TEXT_VALUE);
        if (y->value_case != FEDQ__V1__LITERAL__VALUE__NOT_SET)
            assert_true(y->int_value >= -5 && y->int_value <= 30);
        assert_true(strlen(t->value_case ? t->text_value : "") < TEXT_MAX);
    }
    assert_true(nulls > 0);
    fq_arena_free(a);
}

/* Contributors without NULLs: filtered counts take the bit-mask path. */
static void
test_random_counts(void **state)
{
    struct fixture *f = *state;
    /* x_nn's contributor is pid: the same persons under other names */
    keys_comparable = false;
    random_plans(f, f->x_nn, f->ds_nn, 300000, N_PLANS / 4, true);
    random_plans(f, f->x_nn, f->ds_nn, 300001, N_PLANS / 4, false);
    keys_comparable = true;
    random_plans(f, f->x_nn_wide, f->ds_nn, 400000, N_PLANS / 4, true);
}

static const struct ag_dataset_conf *
dataset_conf(const struct fixture *f, const char *name)
{
    const struct ag_config *cfg = ag_catalog_config(f->cat);
    for (size_t i = 0; i < cfg->n_datasets; i++) {
        if (strcmp(cfg->datasets[i].name, name) == 0)
            return &cfg->datasets[i];
    }
    fail();
    return NULL;
}

/* The extract file the agent builds from the SQLite table and maps: the
 * engine's assumptions about it (contributor order with NULL first,
 * stored zeros for NULL, widths) hold. */
static void
test_built_extract(void **state)
{
    struct fixture *f = *state;
    static const char *const names[] = {"w", "nn", "nc"};

    for (size_t i = 0; i < FQ_ARRAY_LEN(names); i++) {
        const struct ag_dataset_conf *d = dataset_conf(f, names[i]);
        const struct ag_source *src_info;
        const Fedq__V1__Dataset *ds =
            ag_catalog_find(f->cat, names[i], &src_info);
        struct ag_row_source src;
        struct ag_extract *x = NULL;
        char path[128];

        snprintf(path, sizeof(path), "%s/%s.fqx", f->dir, names[i]);
        assert_int_equal(ag_source_sqlite_open(d, &src, f->err, sizeof(f->err)),
                         0);
        int rc = ag_extract_build(d, &src, "2025-01-01T00:00:00Z", path, f->err,
                                  sizeof(f->err));
        src.close(src.self);
        if (rc == 0)
            rc = ag_extract_open(path, d, &x, f->err, sizeof(f->err));
        if (rc != 0)
            print_error("%s\n", f->err);
        assert_int_equal(rc, 0);
        random_plans(f, x, ds, 500000 + i, N_PLANS / 8, false);
        random_plans(f, x, ds, 600000 + i, N_PLANS / 8, true);
        ag_extract_unref(x);
    }
}

/* ---- members (the differencing ledger) ---------------------------------- */

static bool
ledgered(const Fedq__V1__Aggregate *ag)
{
    return ag->kind != FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE;
}

/* Two cellsets hold the same persons with as many records each (the
 * engines name records differently: extract rows, SQLite rowids). */
static bool
same_persons(const struct ag_cellset *a, const struct ag_cellset *b)
{
    size_t i = 0, j = 0;

    if (a->persons != b->persons)
        return false;
    while (i < a->n && j < b->n) {
        size_t ni = i, nj = j;
        if (a->m[i].person != b->m[j].person)
            return false;
        while (ni < a->n && a->m[ni].person == a->m[i].person)
            ni++;
        while (nj < b->n && b->m[nj].person == b->m[j].person)
            nj++;
        if (ni - i != nj - j)
            return false;
        i = ni;
        j = nj;
    }
    return i == a->n && j == b->n;
}

/* Every ledgered cell of the answer's groups (up to max), as refs. */
static size_t
answer_refs(const Fedq__V1__Plan *plan, const Fedq__V1__ExecuteResponse *r,
            struct ag_member_ref *refs, size_t max, size_t *records)
{
    size_t n = 0;
    for (size_t g = 0; g < r->n_groups && n < max; g++) {
        for (size_t k = 0; k < plan->n_aggregates && n < max; k++) {
            const Fedq__V1__Aggregate *ag = plan->aggregates[k];
            size_t bins =
                ag->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM
                    ? ag->n_edges + 1
                    : 1;
            for (size_t b = 0; ledgered(ag) && b < bins && n < max; b++) {
                refs[n++] = (struct ag_member_ref){r->groups[g]->key, k, b};
                records[n - 1] = (size_t)r->groups[g]->records;
            }
        }
    }
    return n;
}

/* Members of random plans' cells: the extract engine and SQLite find the
 * same persons with as many records each, never more records than the
 * group holds. */
static void
test_members(void **state)
{
    struct fixture *f = *state;
    enum { MAX_REFS = 400 };
    struct ag_member_ref refs[MAX_REFS];
    struct ag_cellset a[MAX_REFS], b[MAX_REFS];
    size_t records[MAX_REFS];
    int compared = 0;

    for (int i = 0; i < 60; i++) {
        struct fq_arena *ar = fq_arena_new(64 << 20);
        struct gen g = {900000 + (uint64_t)i * 31, ar, f, false};
        Fedq__V1__ExecuteResponse ref;
        struct ag_engine_limits lim = {100000, 1, 256 << 20, &test_secret};
        rnd(&g.seed);
        Fedq__V1__Plan *plan = random_plan(&g, f->ds->name);
        fedq__v1__execute_response__init(&ref);
        if (fq_plan_check(plan, f->ds, f->err, sizeof(f->err)) != 0 ||
            ag_execute(f->cat, plan, 100000, ar, &ref, f->err,
                       sizeof(f->err)) != 0) {
            fq_arena_free(ar);
            continue;
        }
        size_t n = answer_refs(plan, &ref, refs, MAX_REFS, records);
        assert_int_equal(ag_engine_members(f->x, f->ds, plan, &lim, refs, n, a,
                                           f->err, sizeof(f->err)),
                         0);
        assert_int_equal(ag_execute_members(f->cat, plan, refs, n, ar, b,
                                            f->err, sizeof(f->err)),
                         0);
        for (size_t c = 0; c < n; c++) {
            if (!same_persons(&a[c], &b[c])) {
                print_error("plan %d cell %zu: %" PRId64 " persons in %zu "
                            "records, SQLite %" PRId64 " in %zu\n",
                            i, c, a[c].persons, a[c].n, b[c].persons, b[c].n);
                fail();
            }
            assert_true(a[c].n <= records[c]);
            compared += a[c].n > 0;
            free(a[c].m);
            free(b[c].m);
        }
        fq_arena_free(ar);
    }
    assert_true(compared > 200);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_plans),
        cmocka_unit_test(test_random_counts),
        cmocka_unit_test(test_built_extract),
        cmocka_unit_test(test_random_plans_wide),
        cmocka_unit_test(test_random_plans_no_contributor),
        cmocka_unit_test(test_max_groups),
        cmocka_unit_test(test_max_memory),
        cmocka_unit_test(test_sum_overflow),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_members),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
