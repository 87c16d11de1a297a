/*
 * Building an extract: every row of a source is read into growable column
 * arrays (the whole dataset is held in memory while building), then each
 * column is encoded (docs/extract-format.md) and the file is written next
 * to its final path and renamed over it, so a reader maps the old file or
 * the new one, never a mix.
 *
 * Everything is linear in the rows: text is interned through a hash table
 * (dictionary ids in order of first sight), only the distinct values are
 * sorted, and the rows are ordered by contributor with a counting sort on
 * its codes, which are dense.
 *
 * Values are checked against the column types as the SQLite path would see
 * them: an INTEGER column holds integers (a REAL only when integral), a
 * DECIMAL column numbers, the text types text. SQLite orders an integer
 * before any text, so an integer in a text column would not compare like
 * its digits: it is refused rather than converted.
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "extract_format.h"

#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>

#define OUT_BUF (1024 * 1024)

/* One interned value: where it starts in the pool, and its hash. */
struct entry {
    uint64_t off, hash;
};

/* Distinct text values, interned in order of first sight. */
struct dict {
    char *pool; /* entries, each NUL-terminated */
    size_t pool_len, pool_cap;
    struct entry *ent; /* n + 1: the last one's off is pool_len */
    size_t n, ent_cap;
    uint32_t *table;  /* open addressing: id + 1, 0 = empty */
    size_t table_cap; /* a power of two, at least twice n */
    uint32_t last;    /* id of the last value seen + 1, or 0 */
    /* after dict_finish: */
    uint32_t *code;       /* id -> rank in byte order */
    uint64_t *sorted_off; /* n + 1 offsets into sorted_pool */
    char *sorted_pool;
};

struct bcol {
    const struct ag_column_conf *conf;
    enum ag_col_kind kind;
    union {
        int64_t *i;   /* AG_COL_INT */
        double *d;    /* AG_COL_DOUBLE */
        uint32_t *id; /* AG_COL_DICT: dictionary ids */
    } v;
    uint64_t *nulls; /* bitmap over the capacity */
    bool has_null, any;
    int64_t min, max;
    struct dict dict;
    /* encoding */
    uint8_t width;
    int64_t base;
};

struct builder {
    const struct ag_dataset_conf *d;
    struct bcol *cols;
    uint64_t n_rows, cap;
    int contributor;
    uint32_t *perm; /* output row -> source row, or NULL: same order */
    char *err;
    size_t errlen;
};

static void fail_msg(struct builder *b, const char *fmt, ...) FQ_PRINTF(2, 3);

static void
fail_msg(struct builder *b, const char *fmt, ...)
{
    int n = snprintf(b->err, b->errlen, "dataset '%s': ", b->d->name);
    va_list ap;

    if (n < 0 || (size_t)n >= b->errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(b->err + n, b->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

#define FAIL(b, code, ...)        \
    do {                          \
        fail_msg(b, __VA_ARGS__); \
        return code;              \
    } while (0)

/* ---- interning ----------------------------------------------------------- */

static uint64_t
hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n, k;

    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&k, s, 8);
        h = (h ^ k) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    k = 0;
    memcpy(&k, s, n);
    h = (h ^ k) * 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 29);
}

static bool
dict_equal(const struct dict *t, uint32_t id, const char *s, size_t len)
{
    return t->ent[id + 1].off - t->ent[id].off - 1 == len &&
           memcmp(t->pool + t->ent[id].off, s, len) == 0;
}

static int
dict_rehash(struct dict *t)
{
    size_t cap = t->table_cap ? t->table_cap * 2 : 1024;
    uint32_t *table = calloc(cap, sizeof(*table));

    if (!table)
        return FQ_ENOMEM;
    for (size_t id = 0; id < t->n; id++) {
        size_t slot = t->ent[id].hash & (cap - 1);
        while (table[slot])
            slot = (slot + 1) & (cap - 1);
        table[slot] = (uint32_t)id + 1;
    }
    free(t->table);
    t->table = table;
    t->table_cap = cap;
    return 0;
}

/* Grows *p (of *cap elements of size bytes) to hold need elements. */
static int
grow(void *p, size_t size, size_t need, size_t *cap)
{
    size_t n = *cap ? *cap : 64;
    void *q;

    while (n < need)
        n *= 2;
    if (n == *cap)
        return 0;
    q = realloc(*(void **)p, n * size);
    if (!q)
        return FQ_ENOMEM;
    *(void **)p = q;
    *cap = n;
    return 0;
}

/* Adds s as id n; the caller has checked it is new. */
static int
dict_append(struct dict *t, const char *s, size_t len, uint64_t h)
{
    if (t->n >= UINT32_MAX - 1)
        return FQ_ETOOBIG;
    if (grow(&t->ent, sizeof(*t->ent), t->n + 2, &t->ent_cap) ||
        grow(&t->pool, 1, t->pool_len + len + 1, &t->pool_cap))
        return FQ_ENOMEM;
    t->ent[t->n].off = t->pool_len;
    memcpy(t->pool + t->pool_len, s, len);
    t->pool[t->pool_len + len] = '\0';
    t->pool_len += len + 1;
    t->ent[t->n].hash = h;
    t->ent[t->n + 1].off = t->pool_len;
    t->n++;
    return 0;
}

/* The id of s, interning it if new. Rows of one person often repeat a
 * value, so the last one is tried first. */
static int
dict_intern(struct dict *t, const char *s, size_t len, uint32_t *ret_id)
{
    uint64_t h;
    size_t slot;
    int rc;

    if (t->last && dict_equal(t, t->last - 1, s, len)) {
        *ret_id = t->last - 1;
        return 0;
    }
    if ((t->n + 1) * 2 > t->table_cap && (rc = dict_rehash(t)))
        return rc;
    h = hash_bytes(s, len);
    for (slot = h & (t->table_cap - 1); t->table[slot];
         slot = (slot + 1) & (t->table_cap - 1)) {
        uint32_t id = t->table[slot] - 1;
        if (t->ent[id].hash == h && dict_equal(t, id, s, len))
            goto found;
    }
    if ((rc = dict_append(t, s, len, h)))
        return rc;
    t->table[slot] = (uint32_t)t->n;
found:
    t->last = t->table[slot];
    *ret_id = t->last - 1;
    return 0;
}

static int
dict_cmp(const void *a, const void *b, void *arg)
{
    const struct dict *t = arg;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    size_t lx = t->ent[x + 1].off - t->ent[x].off - 1;
    size_t ly = t->ent[y + 1].off - t->ent[y].off - 1;
    int c = memcmp(t->pool + t->ent[x].off, t->pool + t->ent[y].off,
                   lx < ly ? lx : ly);
    return c ? c : (lx > ly) - (lx < ly);
}

/* Sorts the distinct values: code[id] is each one's rank, and sorted_pool
 * holds them in rank order. The hash table is no longer needed. */
static int
dict_finish(struct dict *t)
{
    uint32_t *order = malloc((t->n ? t->n : 1) * sizeof(*order));
    uint64_t pos = 0;
    int rc = FQ_ENOMEM;

    free(t->table);
    t->table = NULL;
    t->code = malloc((t->n ? t->n : 1) * sizeof(*t->code));
    t->sorted_off = malloc((t->n + 1) * sizeof(*t->sorted_off));
    t->sorted_pool = malloc(t->pool_len ? t->pool_len : 1);
    if (!order || !t->code || !t->sorted_off || !t->sorted_pool)
        goto out;
    for (size_t i = 0; i < t->n; i++)
        order[i] = (uint32_t)i;
    qsort_r(order, t->n, sizeof(*order), dict_cmp, t);
    for (size_t r = 0; r < t->n; r++) {
        uint32_t id = order[r];
        uint64_t len = t->ent[id + 1].off - t->ent[id].off;
        t->code[id] = (uint32_t)r;
        t->sorted_off[r] = pos;
        memcpy(t->sorted_pool + pos, t->pool + t->ent[id].off, len);
        pos += len;
    }
    t->sorted_off[t->n] = pos;
    rc = 0;
out:
    free(order);
    return rc;
}

static void
dict_release(struct dict *t)
{
    free(t->pool);
    free(t->ent);
    free(t->table);
    free(t->code);
    free(t->sorted_off);
    free(t->sorted_pool);
}

/* ---- reading rows -------------------------------------------------------- */

static const char *const type_names[] = {
    [AG_TYPE_INTEGER] = "integer", [AG_TYPE_TEXT] = "text",
    [AG_TYPE_DATE] = "date",       [AG_TYPE_MONTH] = "month",
    [AG_TYPE_QUARTER] = "quarter", [AG_TYPE_DECIMAL] = "decimal",
};

static const char *const value_names[] = {
    [AG_V_NULL] = "NULL",
    [AG_V_INT] = "an integer",
    [AG_V_REAL] = "a real number",
    [AG_V_TEXT] = "text",
};

static size_t
elem_size(const struct bcol *c)
{
    return c->kind == AG_COL_DICT ? sizeof(uint32_t) : sizeof(uint64_t);
}

/* Doubles the row capacity of every column; new null bits are clear. */
static int
grow_rows(struct builder *b)
{
    uint64_t cap = b->cap ? b->cap * 2 : 4096;

    for (size_t i = 0; i < b->d->n_columns; i++) {
        struct bcol *c = &b->cols[i];
        void *v = realloc(c->v.i, cap * elem_size(c));
        uint64_t *nulls;
        if (!v)
            return FQ_ENOMEM;
        c->v.i = v;
        nulls = realloc(c->nulls, cap / 64 * sizeof(*nulls));
        if (!nulls)
            return FQ_ENOMEM;
        memset(nulls + b->cap / 64, 0, (cap - b->cap) / 64 * sizeof(*nulls));
        c->nulls = nulls;
    }
    b->cap = cap;
    return 0;
}

static int
type_error(struct builder *b, const struct bcol *c, const char *what)
{
    FAIL(b, FQ_EINVAL, "row %" PRIu64 ", column '%s': %s column holds %s",
         b->n_rows + 1, c->conf->name, type_names[c->conf->type], what);
}

/* An integer, or a REAL that is one (SQLite compares 3.0 equal to 3). */
static int
put_int(struct builder *b, struct bcol *c, const struct ag_value *v)
{
    int64_t i = v->i;

    if (v->kind == AG_V_REAL) {
        if (!(v->d >= -0x1p63 && v->d < 0x1p63) || v->d != floor(v->d))
            return type_error(b, c, "a non-integral number");
        i = (int64_t)v->d;
    } else if (v->kind != AG_V_INT) {
        return type_error(b, c, value_names[v->kind]);
    }
    c->v.i[b->n_rows] = i;
    if (!c->any || i < c->min)
        c->min = i;
    if (!c->any || i > c->max)
        c->max = i;
    c->any = true;
    return 0;
}

static int
put_double(struct builder *b, struct bcol *c, const struct ag_value *v)
{
    if (v->kind == AG_V_INT)
        c->v.d[b->n_rows] = (double)v->i;
    else if (v->kind == AG_V_REAL && !isnan(v->d))
        c->v.d[b->n_rows] = v->d;
    else
        return type_error(b, c,
                          v->kind == AG_V_REAL ? "NaN" : value_names[v->kind]);
    return 0;
}

static int
put_text(struct builder *b, struct bcol *c, const struct ag_value *v)
{
    int rc;

    if (v->kind != AG_V_TEXT)
        return type_error(b, c, value_names[v->kind]);
    if (memchr(v->s, '\0', v->len))
        return type_error(b, c, "text with a NUL byte");
    rc = dict_intern(&c->dict, v->s, v->len, &c->v.id[b->n_rows]);
    if (rc)
        FAIL(b, rc, "column '%s': %s", c->conf->name,
             rc == FQ_ETOOBIG ? "too many distinct values" : "out of memory");
    return 0;
}

static int
put_value(struct builder *b, struct bcol *c, const struct ag_value *v)
{
    uint64_t r = b->n_rows;

    if (v->kind == AG_V_NULL) {
        c->nulls[r >> 6] |= 1ULL << (r & 63);
        c->has_null = true;
        if (c->kind == AG_COL_DICT)
            c->v.id[r] = 0;
        else
            c->v.i[r] = 0;
        return 0;
    }
    if (c->kind == AG_COL_INT)
        return put_int(b, c, v);
    return c->kind == AG_COL_DOUBLE ? put_double(b, c, v) : put_text(b, c, v);
}

static int
read_rows(struct builder *b, struct ag_row_source *src)
{
    struct ag_value *vals = calloc(b->d->n_columns + 1, sizeof(*vals));
    int rc;

    if (!vals)
        FAIL(b, FQ_ENOMEM, "out of memory");
    while ((rc = src->next(src->self, vals, b->err, b->errlen)) == 1) {
        if (b->n_rows == AGX_MAX_ROWS) {
            fail_msg(b, "more than %" PRIu64 " rows", AGX_MAX_ROWS);
            rc = FQ_ETOOBIG;
            break;
        }
        if (b->n_rows == b->cap && grow_rows(b)) {
            fail_msg(b, "out of memory after %" PRIu64 " rows", b->n_rows);
            rc = FQ_ENOMEM;
            break;
        }
        for (size_t i = 0; i < b->d->n_columns && rc == 1; i++) {
            int e = put_value(b, &b->cols[i], &vals[i]);
            rc = e ? e : 1;
        }
        if (rc != 1)
            break;
        b->n_rows++;
    }
    free(vals);
    return rc;
}

/* ---- encoding ------------------------------------------------------------ */

static uint8_t
width_for(uint64_t max_stored)
{
    if (max_stored <= UINT8_MAX)
        return 1;
    if (max_stored <= UINT16_MAX)
        return 2;
    return max_stored <= UINT32_MAX ? 4 : 8;
}

/* The narrowest width and base of each column; dictionaries sorted. */
static int
encode(struct builder *b)
{
    for (size_t i = 0; i < b->d->n_columns; i++) {
        struct bcol *c = &b->cols[i];
        if (c->kind == AG_COL_DOUBLE) {
            c->width = 8;
        } else if (c->kind == AG_COL_INT) {
            c->base = c->any ? c->min : 0;
            c->width =
                c->any ? width_for((uint64_t)c->max - (uint64_t)c->min) : 1;
        } else {
            if (dict_finish(&c->dict))
                FAIL(b, FQ_ENOMEM, "out of memory");
            c->width = width_for(c->dict.n ? c->dict.n - 1 : 0);
        }
    }
    return 0;
}

/* The stored value of source row r: what the file holds for it. */
static inline uint64_t
stored(const struct bcol *c, uint64_t r)
{
    uint64_t bits;

    if (c->has_null && c->nulls[r >> 6] >> (r & 63) & 1)
        return 0;
    switch (c->kind) {
    case AG_COL_INT:
        return (uint64_t)c->v.i[r] - (uint64_t)c->base;
    case AG_COL_DOUBLE:
        memcpy(&bits, &c->v.d[r], sizeof(bits));
        return bits;
    default:
        return c->dict.code[c->v.id[r]];
    }
}

/* ---- ordering by contributor --------------------------------------------- */

/* NULL rows first, then by code (or integer offset). */
static uint64_t
sort_key(const struct bcol *c, uint64_t r)
{
    return c->nulls[r >> 6] >> (r & 63) & 1 ? 0 : stored(c, r) + 1;
}

/* Counting sort, stable: keys are below n_keys. */
static int
sort_counting(struct builder *b, const struct bcol *c, uint64_t n_keys)
{
    uint64_t *pos = calloc(n_keys + 1, sizeof(*pos));

    if (!pos)
        return FQ_ENOMEM;
    for (uint64_t r = 0; r < b->n_rows; r++)
        pos[sort_key(c, r) + 1]++;
    for (uint64_t k = 1; k <= n_keys; k++)
        pos[k] += pos[k - 1];
    for (uint64_t r = 0; r < b->n_rows; r++)
        b->perm[pos[sort_key(c, r)]++] = (uint32_t)r;
    free(pos);
    return 0;
}

struct keyed {
    uint64_t key;
    uint32_t row;
};

static int
keyed_cmp(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

/* For an integer contributor spread far wider than the rows; the row
 * number breaks ties, so the order is stable. */
static int
sort_sparse(struct builder *b, const struct bcol *c)
{
    struct keyed *k = malloc(b->n_rows * sizeof(*k));

    if (!k)
        return FQ_ENOMEM;
    for (uint64_t r = 0; r < b->n_rows; r++)
        k[r] = (struct keyed){sort_key(c, r), (uint32_t)r};
    qsort(k, b->n_rows, sizeof(*k), keyed_cmp);
    for (uint64_t r = 0; r < b->n_rows; r++)
        b->perm[r] = k[r].row;
    free(k);
    return 0;
}

static int
sort_rows(struct builder *b)
{
    const struct bcol *c;
    uint64_t n_keys;
    int rc;

    if (b->contributor < 0 || b->n_rows == 0)
        return 0;
    c = &b->cols[b->contributor];
    b->perm = malloc(b->n_rows * sizeof(*b->perm));
    if (!b->perm)
        FAIL(b, FQ_ENOMEM, "out of memory");
    if (c->kind == AG_COL_DICT)
        n_keys = (uint64_t)c->dict.n + 1;
    else if (!c->any)
        n_keys = 1;
    else if ((uint64_t)c->max - (uint64_t)c->min < 2 * b->n_rows + 1024)
        n_keys = (uint64_t)c->max - (uint64_t)c->min + 2;
    else
        n_keys = 0; /* too sparse to count */
    rc = n_keys ? sort_counting(b, c, n_keys) : sort_sparse(b, c);
    if (rc)
        FAIL(b, rc, "out of memory");
    return 0;
}

/* ---- writing ------------------------------------------------------------- */

/* Where each column's sections go (0: none). */
struct layout {
    uint64_t data, nulls, dict_offsets, dict_bytes;
};

struct out {
    int fd;
    unsigned char *buf; /* OUT_BUF bytes */
    size_t len;
    uint64_t pos; /* bytes given so far */
};

static int
out_flush(struct out *o)
{
    size_t done = 0;

    while (done < o->len) {
        ssize_t n = write(o->fd, o->buf + done, o->len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fq_error_from_errno(errno);
        done += (size_t)n;
    }
    o->len = 0;
    return 0;
}

static int
out_bytes(struct out *o, const void *p, size_t n)
{
    const unsigned char *s = p;
    int rc;

    while (n) {
        size_t k = OUT_BUF - o->len < n ? OUT_BUF - o->len : n;
        memcpy(o->buf + o->len, s, k);
        o->len += k;
        o->pos += k;
        s += k;
        n -= k;
        if (o->len == OUT_BUF && (rc = out_flush(o)))
            return rc;
    }
    return 0;
}

static uint64_t
align_up(uint64_t pos)
{
    return (pos + AGX_ALIGN - 1) / AGX_ALIGN * AGX_ALIGN;
}

static int
out_pad(struct out *o)
{
    static const unsigned char zeros[AGX_ALIGN];
    return out_bytes(o, zeros, align_up(o->pos) - o->pos);
}

/* Lays out every section after the header and directory, the contributor
 * run bitmap (if any) last at *ret_runs; returns the file's size. */
static uint64_t
plan_layout(const struct builder *b, struct layout *lay, uint64_t *ret_runs)
{
    uint64_t pos =
        align_up(AGX_HEADER_SIZE + (uint64_t)b->d->n_columns * AGX_ENTRY_SIZE);

    for (size_t i = 0; i < b->d->n_columns; i++) {
        const struct bcol *c = &b->cols[i];
        lay[i].data = pos;
        pos = align_up(pos + b->n_rows * c->width);
        if (c->has_null) {
            lay[i].nulls = pos;
            pos = align_up(pos + agx_nulls_len(b->n_rows));
        }
        if (c->kind == AG_COL_DICT) {
            lay[i].dict_offsets = pos;
            pos = align_up(pos + ((uint64_t)c->dict.n + 1) * 8);
            lay[i].dict_bytes = pos;
            pos = align_up(pos + c->dict.pool_len);
        }
    }
    *ret_runs = 0;
    if (b->contributor >= 0) {
        *ret_runs = pos;
        pos = align_up(pos + agx_nulls_len(b->n_rows));
    }
    return pos;
}

static void
fill_entry(const struct bcol *c, const struct layout *lay, unsigned char *e)
{
    bool range = c->kind == AG_COL_INT;

    memcpy(e + AGX_C_NAME, c->conf->name, strlen(c->conf->name));
    e[AGX_C_KIND] = (unsigned char)c->kind;
    e[AGX_C_WIDTH] = c->width;
    e[AGX_C_TYPE] = (unsigned char)c->conf->type;
    e[AGX_C_ROLE] = (unsigned char)c->conf->role;
    agx_put64(e + AGX_C_BASE, (uint64_t)c->base);
    agx_put64(e + AGX_C_MIN, range && c->any ? (uint64_t)c->min : 0);
    agx_put64(e + AGX_C_MAX, range ? (uint64_t)(c->any ? c->max : -1) : 0);
    agx_put64(e + AGX_C_DATA, lay->data);
    agx_put64(e + AGX_C_NULLS, lay->nulls);
    if (c->kind == AG_COL_DICT) {
        agx_put32(e + AGX_C_DICT_SIZE, (uint32_t)c->dict.n);
        agx_put64(e + AGX_C_DICT_OFFSETS, lay->dict_offsets);
        agx_put64(e + AGX_C_DICT_BYTES, lay->dict_bytes);
        agx_put64(e + AGX_C_DICT_BYTES_LEN, c->dict.pool_len);
    }
}

static int
write_head(const struct builder *b, struct out *o, const struct layout *lay,
           uint64_t runs, uint64_t size, const char *vintage)
{
    size_t len = AGX_HEADER_SIZE + b->d->n_columns * AGX_ENTRY_SIZE;
    unsigned char *h = calloc(1, len);
    int rc;

    if (!h)
        return FQ_ENOMEM;
    memcpy(h + AGX_H_MAGIC, AG_EXTRACT_MAGIC, 8);
    agx_put32(h + AGX_H_VERSION, AG_EXTRACT_VERSION);
    agx_put32(h + AGX_H_N_COLS, (uint32_t)b->d->n_columns);
    agx_put64(h + AGX_H_N_ROWS, b->n_rows);
    agx_put32(h + AGX_H_CONTRIBUTOR, (uint32_t)b->contributor);
    agx_put64(h + AGX_H_SCHEMA, ag_extract_schema_hash(b->d));
    agx_put64(h + AGX_H_FILE_SIZE, size);
    memcpy(h + AGX_H_VINTAGE, vintage, strlen(vintage));
    agx_put64(h + AGX_H_RUNS, runs);
    for (size_t i = 0; i < b->d->n_columns; i++)
        fill_entry(&b->cols[i], &lay[i],
                   h + AGX_HEADER_SIZE + i * AGX_ENTRY_SIZE);
    rc = out_bytes(o, h, len);
    free(h);
    return rc ? rc : out_pad(o);
}

/* Stores n values in width bytes each, little-endian. */
static void
pack(unsigned char *dst, const uint64_t *v, size_t n, unsigned width)
{
    uint16_t v16;
    uint32_t v32;

    for (size_t j = 0; j < n; j++) {
        switch (width) {
        case 1:
            dst[j] = (unsigned char)v[j];
            break;
        case 2:
            v16 = (uint16_t)v[j];
            memcpy(dst + 2 * j, &v16, 2);
            break;
        case 4:
            v32 = (uint32_t)v[j];
            memcpy(dst + 4 * j, &v32, 4);
            break;
        default:
            memcpy(dst + 8 * j, &v[j], 8);
            break;
        }
    }
}

#define CHUNK 4096 /* rows gathered at a time */

/* The column's stored values in output order. */
static int
write_data(const struct builder *b, struct out *o, const struct bcol *c)
{
    uint64_t v[CHUNK];
    int rc;

    for (uint64_t i = 0; i < b->n_rows; i += CHUNK) {
        size_t n = b->n_rows - i < CHUNK ? (size_t)(b->n_rows - i) : CHUNK;
        for (size_t j = 0; j < n; j++)
            v[j] = stored(c, b->perm ? b->perm[i + j] : i + j);
        if (OUT_BUF - o->len < n * c->width && (rc = out_flush(o)))
            return rc;
        pack(o->buf + o->len, v, n, c->width);
        o->len += n * c->width;
        o->pos += n * c->width;
    }
    return out_pad(o);
}

static int
write_nulls(const struct builder *b, struct out *o, const struct bcol *c)
{
    uint64_t words = agx_nulls_len(b->n_rows) / 8;
    int rc;

    for (uint64_t w = 0; w < words; w++) {
        uint64_t bits = 0;
        for (uint64_t j = 0; j < 64 && w * 64 + j < b->n_rows; j++) {
            uint64_t r = b->perm ? b->perm[w * 64 + j] : w * 64 + j;
            bits |= (c->nulls[r >> 6] >> (r & 63) & 1) << j;
        }
        if ((rc = out_bytes(o, &bits, sizeof(bits))))
            return rc;
    }
    return out_pad(o);
}

/* Is output row r NULL in source column c? */
static bool
out_null(const struct builder *b, const struct bcol *c, uint64_t r)
{
    uint64_t s = b->perm ? b->perm[r] : r;
    return c->has_null && c->nulls[s >> 6] >> (s & 63) & 1;
}

/* Where each contributor's run of rows starts (ag_xcol_run_word): a
 * non-NULL row after a NULL one or one of another contributor. */
static int
write_runs(const struct builder *b, struct out *o)
{
    const struct bcol *c = &b->cols[b->contributor];
    uint64_t words = agx_nulls_len(b->n_rows) / 8, prev = 0;
    bool prev_null = true;
    int rc;

    for (uint64_t w = 0; w < words; w++) {
        uint64_t bits = 0;
        for (uint64_t j = 0; j < 64 && w * 64 + j < b->n_rows; j++) {
            uint64_t r = w * 64 + j, v = stored(c, b->perm ? b->perm[r] : r);
            bool null = out_null(b, c, r);
            bits |= (uint64_t)(!null && (prev_null || v != prev)) << j;
            prev_null = null;
            prev = v;
        }
        if ((rc = out_bytes(o, &bits, sizeof(bits))))
            return rc;
    }
    return out_pad(o);
}

static int
write_column(const struct builder *b, struct out *o, const struct bcol *c)
{
    const struct dict *t = &c->dict;
    int rc;

    if ((rc = write_data(b, o, c)))
        return rc;
    if (c->has_null && (rc = write_nulls(b, o, c)))
        return rc;
    if (c->kind != AG_COL_DICT)
        return 0;
    if ((rc = out_bytes(o, t->sorted_off, (t->n + 1) * 8)) ||
        (rc = out_pad(o)) || (rc = out_bytes(o, t->sorted_pool, t->pool_len)))
        return rc;
    return out_pad(o);
}

/* Writes the whole file to fd. */
static int
write_all(const struct builder *b, int fd, const char *vintage)
{
    struct layout *lay = calloc(b->d->n_columns + 1, sizeof(*lay));
    struct out o = {.fd = fd, .buf = malloc(OUT_BUF)};
    uint64_t size, runs;
    int rc = FQ_ENOMEM;

    if (!lay || !o.buf)
        goto out;
    size = plan_layout(b, lay, &runs);
    if ((rc = write_head(b, &o, lay, runs, size, vintage)))
        goto out;
    for (size_t i = 0; i < b->d->n_columns; i++) {
        if ((rc = write_column(b, &o, &b->cols[i])))
            goto out;
    }
    if (runs && (rc = write_runs(b, &o)))
        goto out;
    if ((rc = out_flush(&o)))
        goto out;
    if (o.pos != size)
        rc = FQ_EINTERNAL;
out:
    free(lay);
    free(o.buf);
    return rc;
}

/* Makes the rename durable: the directory entry is on disk. */
static int
sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash
                    ? strndup(path, slash == path ? 1 : (size_t)(slash - path))
                    : strdup(".");
    int fd, rc = 0;

    if (!dir)
        return FQ_ENOMEM;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        rc = fq_error_from_errno(errno);
    if (fd >= 0)
        close(fd);
    free(dir);
    return rc;
}

/* A temporary file beside path, written, synced and renamed over it; on
 * failure the temporary file is removed and path is untouched. */
static int
write_file(struct builder *b, const char *path, const char *vintage)
{
    size_t len = strlen(path) + sizeof(".tmp-XXXXXX");
    char *tmp = malloc(len);
    const char *step = "create", *name = tmp;
    int fd, rc = 0, e = 0;

    if (!tmp)
        FAIL(b, FQ_ENOMEM, "out of memory");
    snprintf(tmp, len, "%s.tmp-XXXXXX", path);
    if ((fd = mkstemp(tmp)) < 0)
        e = errno;
    if (!e && (step = "write", rc = write_all(b, fd, vintage)) < 0)
        e = -rc;
    if (!e && (step = "sync", fsync(fd) != 0))
        e = errno;
    if (fd >= 0 && close(fd) != 0 && !e)
        e = errno;
    if (!e && (step = "rename", rename(tmp, path) != 0))
        e = errno;
    if (e && fd >= 0)
        unlink(tmp);
    if (!e &&
        (step = "sync the directory of", name = path, rc = sync_dir(path)) < 0)
        e = -rc;
    if (e)
        fail_msg(b, "cannot %s '%s': %s", step, name, strerror(e));
    free(tmp);
    return e ? fq_error_from_errno(e) : 0;
}

/* ---- the build ----------------------------------------------------------- */

static int
builder_init(struct builder *b, const char *vintage)
{
    b->contributor = ag__extract_contributor(b->d);
    if (b->d->contributor && b->contributor < 0)
        FAIL(b, FQ_EINVAL, "no contributor column '%s'", b->d->contributor);
    if (strlen(vintage) >= AG_VINTAGE_MAX)
        FAIL(b, FQ_EINVAL, "vintage longer than %d bytes", AG_VINTAGE_MAX - 1);
    b->cols = calloc(b->d->n_columns + 1, sizeof(*b->cols));
    if (!b->cols)
        FAIL(b, FQ_ENOMEM, "out of memory");
    for (size_t i = 0; i < b->d->n_columns; i++) {
        struct bcol *c = &b->cols[i];
        c->conf = &b->d->columns[i];
        if (strlen(c->conf->name) >= AGX_NAME_MAX)
            FAIL(b, FQ_EINVAL, "column name '%s' is longer than %d bytes",
                 c->conf->name, AGX_NAME_MAX - 1);
        if (c->conf->type == AG_TYPE_INTEGER)
            c->kind = AG_COL_INT;
        else if (c->conf->type == AG_TYPE_DECIMAL)
            c->kind = AG_COL_DOUBLE;
        else
            c->kind = AG_COL_DICT;
    }
    if (b->contributor >= 0 && b->cols[b->contributor].kind == AG_COL_DOUBLE)
        FAIL(b, FQ_EINVAL, "contributor '%s' is a decimal column",
             b->d->contributor);
    return 0;
}

static void
builder_release(struct builder *b)
{
    for (size_t i = 0; b->cols && i < b->d->n_columns; i++) {
        free(b->cols[i].v.i);
        free(b->cols[i].nulls);
        dict_release(&b->cols[i].dict);
    }
    free(b->cols);
    free(b->perm);
}

/* Does not close src: the caller does. */
int
ag_extract_build(const struct ag_dataset_conf *d, struct ag_row_source *src,
                 const char *vintage, const char *path, char *err,
                 size_t errlen)
{
    struct builder b = {.d = d, .err = err, .errlen = errlen};
    int rc;

    if (!vintage)
        vintage = "";
    if (!(rc = builder_init(&b, vintage)) && !(rc = read_rows(&b, src)) &&
        !(rc = encode(&b)) && !(rc = sort_rows(&b)))
        rc = write_file(&b, path, vintage);
    builder_release(&b);
    return rc;
}
