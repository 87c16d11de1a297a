/*
 * Opening an extract: the file is mapped read-only and every column points
 * into the mapping, so a 10M-row extract opens in the time it takes to
 * check it. Nothing is decoded or copied.
 *
 * The file is a trust boundary: a truncated, corrupt or hostile file must
 * be refused here, because the engine indexes arrays with what it reads
 * (dictionary codes index dictionaries and dense group arrays, integer
 * offsets index dense arrays over [min, max]). So besides the header and
 * every offset and length, the open checks the invariants the engine
 * relies on: dictionaries strictly increasing, every stored value within
 * its column's range, NULL rows stored as 0, the contributor column
 * sorted, and its run bitmap exactly what its values imply (the engine
 * counts contributors from the bitmap alone). These checks read the mapped
 * columns once (a memory-bandwidth pass, which also brings the pages in) and
 * allocate nothing.
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "cellkey.h"
#include "extract_format.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

/* A section of the file, for the overlap check. */
struct span {
    uint64_t off, len;
};

/* What an open under way holds; becomes the struct ag_extract. */
struct opener {
    const char *path;
    const unsigned char *map;
    uint64_t size;
    struct span *spans; /* n_cols * 4 + 1 at most */
    size_t n_spans;
    char *err;
    size_t errlen;
};

#define FAIL(o, code, ...)        \
    do {                          \
        fail_msg(o, __VA_ARGS__); \
        return code;              \
    } while (0)

static void fail_msg(struct opener *o, const char *fmt, ...) FQ_PRINTF(2, 3);

static void
fail_msg(struct opener *o, const char *fmt, ...)
{
    int n = snprintf(o->err, o->errlen, "extract '%s': ", o->path);
    va_list ap;

    if (n < 0 || (size_t)n >= o->errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(o->err + n, o->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* ---- schema -------------------------------------------------------------- */

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME  0x100000001b3ULL

static uint64_t
fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

uint64_t
ag_extract_schema_hash(const struct ag_dataset_conf *d)
{
    uint64_t h = FNV_OFFSET;
    const char *contributor = d->contributor ? d->contributor : "";

    for (size_t i = 0; i < d->n_columns; i++) {
        const struct ag_column_conf *c = &d->columns[i];
        unsigned char rt[2] = {(unsigned char)c->role, (unsigned char)c->type};
        h = fnv(h, c->name, strlen(c->name) + 1);
        h = fnv(h, rt, sizeof(rt));
    }
    return fnv(h, contributor, strlen(contributor) + 1);
}

int
ag__extract_contributor(const struct ag_dataset_conf *d)
{
    if (!d->contributor)
        return -1;
    for (size_t i = 0; i < d->n_columns; i++) {
        if (strcmp(d->columns[i].name, d->contributor) == 0)
            return (int)i;
    }
    return -1;
}

/* ---- sections ------------------------------------------------------------ */

/* Records a section [off, off + len), checking it is aligned and inside the
 * file; *ret points at it. */
static int
section(struct opener *o, const char *col, const char *what, uint64_t off,
        uint64_t len, const void **ret)
{
    if (off % AGX_ALIGN || off > o->size || len > o->size - off)
        FAIL(o, FQ_EPROTO,
             "column '%s': %s section (offset %" PRIu64 ", %" PRIu64
             " bytes) is not an aligned part of the file",
             col, what, off, len);
    if (len)
        o->spans[o->n_spans++] = (struct span){off, len};
    *ret = o->map + off;
    return 0;
}

static int
span_cmp(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Sections may not overlap each other or the header and directory: one
 * byte means one thing. */
static int
check_overlaps(struct opener *o, uint64_t first)
{
    qsort(o->spans, o->n_spans, sizeof(*o->spans), span_cmp);
    for (size_t i = 0; i < o->n_spans; i++) {
        if (o->spans[i].off < first)
            FAIL(o, FQ_EPROTO, "sections overlap at offset %" PRIu64,
                 o->spans[i].off);
        first = o->spans[i].off + o->spans[i].len;
    }
    return 0;
}

/* ---- values -------------------------------------------------------------- */

/* The largest stored value of a column (0 if it has no rows). */
static uint64_t
stored_max(const struct ag_xcol *c, uint64_t n)
{
    uint64_t m = 0;

#define STORED_MAX(T)                    \
    do {                                 \
        const T *v = c->data;            \
        T mt = 0;                        \
        for (uint64_t r = 0; r < n; r++) \
            mt = v[r] > mt ? v[r] : mt;  \
        m = mt;                          \
    } while (0)
    switch (c->width) {
    case 1:
        STORED_MAX(uint8_t);
        break;
    case 2:
        STORED_MAX(uint16_t);
        break;
    case 4:
        STORED_MAX(uint32_t);
        break;
    default:
        STORED_MAX(uint64_t);
        break;
    }
#undef STORED_MAX
    return m;
}

/* Bits past the last row are zero, and every NULL row is stored as 0.
 * *ret_nulls counts the NULL rows. */
static int
check_nulls(struct opener *o, const struct ag_xcol *c, uint64_t n,
            uint64_t *ret_nulls)
{
    uint64_t words = agx_nulls_len(n) / 8, count = 0;

    if (n % 64 && c->nulls[words - 1] >> (n % 64))
        FAIL(o, FQ_EPROTO, "column '%s': null bitmap has bits past the rows",
             c->name);
    for (uint64_t w = 0; w < words; w++) {
        uint64_t bits = c->nulls[w];
        count += (uint64_t)__builtin_popcountll(bits);
        for (; bits; bits &= bits - 1) {
            uint64_t r = w * 64 + (uint64_t)__builtin_ctzll(bits);
            if (ag_xcol_stored(c, r) != 0) /* a DOUBLE's 8 bytes */
                FAIL(o, FQ_EPROTO,
                     "column '%s': NULL row %" PRIu64 " has a stored value",
                     c->name, r);
        }
    }
    *ret_nulls = count;
    return 0;
}

/* The contributor's rows come in order of its code, NULL rows first. */
static int
check_sorted(struct opener *o, const struct ag_xcol *c, uint64_t n)
{
    uint64_t prev = 0;

    for (uint64_t r = 0; r < n; r++) {
        uint64_t key = ag_xcol_is_null(c, r) ? 0 : ag_xcol_stored(c, r) + 1;
        if (key < prev)
            FAIL(o, FQ_EPROTO,
                 "column '%s': rows are not sorted by contributor at "
                 "row %" PRIu64,
                 c->name, r);
        prev = key;
    }
    return 0;
}

uint64_t
ag_xcol_run_word(const struct ag_xcol *c, uint64_t n, uint64_t w)
{
    uint64_t first = w * 64, end = n - first < 64 ? n : first + 64, bits = 0;
    bool prev_null = first == 0 || ag_xcol_is_null(c, first - 1);

    for (uint64_t r = first; r < end; r++) {
        bool null = ag_xcol_is_null(c, r);
        bool start = !null && (prev_null || ag_xcol_stored(c, r) !=
                                                ag_xcol_stored(c, r - 1));
        bits |= (uint64_t)start << (r - first);
        prev_null = null;
    }
    return bits;
}

/* The run bitmap is exactly what the contributor's rows imply: a wrong bit
 * would only miscount, but a file either is what the builder wrote or is
 * refused. */
static int
check_runs(struct opener *o, const struct ag_extract *x)
{
    const struct ag_xcol *c = &x->cols[x->contributor];
    uint64_t words = agx_nulls_len(x->n_rows) / 8;

    for (uint64_t w = 0; w < words; w++) {
        if (x->contributor_runs[w] != ag_xcol_run_word(c, x->n_rows, w))
            FAIL(o, FQ_EPROTO,
                 "column '%s': contributor run bitmap is wrong at "
                 "row %" PRIu64,
                 c->name, w * 64);
    }
    return 0;
}

/* Offsets start at 0 and end at the bytes' length; every entry is a
 * NUL-terminated string with no other NUL, and each is greater than the
 * one before (memcmp order: a prefix sorts first). */
static int
check_dict(struct opener *o, const struct ag_xcol *c, uint64_t bytes_len)
{
    const uint64_t *off = c->dict_offsets;
    uint64_t prev_len = 0;

    if (off[0] != 0 || off[c->dict_size] != bytes_len)
        FAIL(o, FQ_EPROTO,
             "column '%s': dictionary offsets do not span "
             "its bytes",
             c->name);
    for (uint32_t i = 0; i < c->dict_size; i++) {
        const char *s = c->dict_bytes + off[i];
        uint64_t len;
        if (off[i + 1] <= off[i] || off[i + 1] > bytes_len)
            FAIL(o, FQ_EPROTO,
                 "column '%s': dictionary offset %u is out of "
                 "order",
                 c->name, i + 1);
        len = off[i + 1] - off[i] - 1;
        if (s[len] != '\0' || memchr(s, '\0', len))
            FAIL(o, FQ_EPROTO,
                 "column '%s': dictionary entry %u is not one "
                 "string",
                 c->name, i);
        if (i > 0) {
            const char *p = c->dict_bytes + off[i - 1];
            int cmp = memcmp(p, s, prev_len < len ? prev_len : len);
            if (cmp > 0 || (cmp == 0 && prev_len >= len))
                FAIL(o, FQ_EPROTO,
                     "column '%s': dictionary is not sorted "
                     "at entry %u",
                     c->name, i);
        }
        prev_len = len;
    }
    return 0;
}

/* ---- the directory ------------------------------------------------------- */

static bool
all_zero(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i])
            return false;
    }
    return true;
}

/* The entry's name, type and role are the configured column's. */
static int
entry_schema(struct opener *o, const unsigned char *e,
             const struct ag_column_conf *cc, struct ag_xcol *c)
{
    const char *name = (const char *)e + AGX_C_NAME;

    if (!memchr(name, '\0', AGX_NAME_MAX))
        FAIL(o, FQ_EPROTO, "a column name is not terminated");
    c->name = name;
    c->type = e[AGX_C_TYPE];
    c->role = e[AGX_C_ROLE];
    if (strcmp(name, cc->name) != 0 || c->type != cc->type ||
        c->role != cc->role)
        FAIL(o, FQ_EPRECOND,
             "built for other columns (column '%s' where the dataset has "
             "'%s'); rebuild it",
             name, cc->name);
    return 0;
}

static enum ag_col_kind
kind_of_type(int type)
{
    if (type == AG_TYPE_INTEGER)
        return AG_COL_INT;
    return type == AG_TYPE_DECIMAL ? AG_COL_DOUBLE : AG_COL_DICT;
}

/* INT: 1, 2, 4 or 8 bytes; DOUBLE: 8; DICT: 1, 2 or 4, enough for the
 * dictionary's codes. */
static bool
width_ok(const struct ag_xcol *c)
{
    unsigned w = c->width;

    if (c->kind == AG_COL_DOUBLE)
        return w == 8;
    if (c->kind == AG_COL_INT)
        return w == 1 || w == 2 || w == 4 || w == 8;
    return w == 4 || ((w == 1 || w == 2) && c->dict_size <= 1u << (8 * w));
}

/* The kind fits the type, the width the kind, and the fields the kind
 * does not use are zero. */
static int
entry_shape(struct opener *o, const unsigned char *e, struct ag_xcol *c)
{
    c->kind = (enum ag_col_kind)e[AGX_C_KIND];
    c->width = e[AGX_C_WIDTH];
    c->dict_size = agx_get32(e + AGX_C_DICT_SIZE);
    c->base = (int64_t)agx_get64(e + AGX_C_BASE);
    c->min = (int64_t)agx_get64(e + AGX_C_MIN);
    c->max = (int64_t)agx_get64(e + AGX_C_MAX);
    if (e[AGX_C_KIND] != kind_of_type(c->type))
        FAIL(o, FQ_EPROTO, "column '%s': encoding %u does not fit its type",
             c->name, e[AGX_C_KIND]);
    if (!width_ok(c) || !all_zero(e + AGX_C_END, AGX_ENTRY_SIZE - AGX_C_END))
        FAIL(o, FQ_EPROTO, "column '%s': bad width %u or reserved bytes",
             c->name, c->width);
    if (c->kind != AG_COL_INT && (c->base || c->min || c->max))
        FAIL(o, FQ_EPROTO, "column '%s': range set on a non-integer column",
             c->name);
    if (c->kind != AG_COL_DICT &&
        (c->dict_size || !all_zero(e + AGX_C_DICT_OFFSETS, 24)))
        FAIL(o, FQ_EPROTO, "column '%s': dictionary on a non-text column",
             c->name);
    return 0;
}

/* An INT column's range: none (0, -1, base 0) or min <= max, base = min,
 * and max - min fits the width. *ret_limit is the largest stored value. */
static int
entry_range(struct opener *o, const struct ag_xcol *c, bool *ret_none,
            uint64_t *ret_limit)
{
    uint64_t span = (uint64_t)c->max - (uint64_t)c->min;

    *ret_none = c->min == 0 && c->max == -1 && c->base == 0;
    if (*ret_none)
        return 0;
    if (c->min > c->max || c->base != c->min ||
        (c->width < 8 && span >> (8 * c->width)))
        FAIL(o, FQ_EPROTO,
             "column '%s': bad range [%" PRId64 ", %" PRId64 "] for width %u",
             c->name, c->min, c->max, c->width);
    *ret_limit = span;
    return 0;
}

/* Maps one column's sections. */
static int
entry_sections(struct opener *o, const unsigned char *e, uint64_t n_rows,
               struct ag_xcol *c)
{
    uint64_t data_len, nulls_off = agx_get64(e + AGX_C_NULLS);
    const void *p;
    int rc;

    if (__builtin_mul_overflow(n_rows, (uint64_t)c->width, &data_len))
        FAIL(o, FQ_EPROTO, "column '%s': too many rows", c->name);
    if ((rc = section(o, c->name, "data", agx_get64(e + AGX_C_DATA), data_len,
                      &c->data)))
        return rc;
    if (nulls_off) {
        if ((rc = section(o, c->name, "null bitmap", nulls_off,
                          agx_nulls_len(n_rows), &p)))
            return rc;
        c->nulls = p;
    }
    if (c->kind != AG_COL_DICT)
        return 0;
    if ((rc = section(o, c->name, "dictionary offsets",
                      agx_get64(e + AGX_C_DICT_OFFSETS),
                      ((uint64_t)c->dict_size + 1) * 8, &p)))
        return rc;
    c->dict_offsets = p;
    if ((rc = section(o, c->name, "dictionary", agx_get64(e + AGX_C_DICT_BYTES),
                      agx_get64(e + AGX_C_DICT_BYTES_LEN), &p)))
        return rc;
    c->dict_bytes = p;
    return 0;
}

/* Loads the directory entry of column i into x->cols[i]. */
static int
load_column(struct opener *o, const struct ag_dataset_conf *d,
            struct ag_extract *x, size_t i)
{
    const unsigned char *e = o->map + AGX_HEADER_SIZE + i * AGX_ENTRY_SIZE;
    struct ag_xcol *c = &x->cols[i];
    int rc;

    if ((rc = entry_schema(o, e, &d->columns[i], c)) ||
        (rc = entry_shape(o, e, c)))
        return rc;
    return entry_sections(o, e, x->n_rows, c);
}

/* Column i's values: dictionary, range, NULL rows, order. The largest
 * stored value is checked first, as the other checks index with them. */
static int
check_column(struct opener *o, const struct ag_extract *x, size_t i)
{
    const unsigned char *e = o->map + AGX_HEADER_SIZE + i * AGX_ENTRY_SIZE;
    const struct ag_xcol *c = &x->cols[i];
    uint64_t limit = c->dict_size ? c->dict_size - 1 : 0, nulls = 0;
    bool none = c->dict_size == 0;
    int rc;

    if (c->kind == AG_COL_INT && (rc = entry_range(o, c, &none, &limit)))
        return rc;
    if (c->kind == AG_COL_DICT &&
        (rc = check_dict(o, c, agx_get64(e + AGX_C_DICT_BYTES_LEN))))
        return rc;
    if (c->kind != AG_COL_DOUBLE && !none && stored_max(c, x->n_rows) > limit)
        FAIL(o, FQ_EPROTO, "column '%s': a stored value is out of range",
             c->name);
    if (c->nulls && (rc = check_nulls(o, c, x->n_rows, &nulls)))
        return rc;
    if (c->kind != AG_COL_DOUBLE && none && nulls != x->n_rows)
        FAIL(o, FQ_EPROTO,
             "column '%s': a row has a value but the column has none", c->name);
    if ((int)i != x->contributor)
        return 0;
    if (c->kind == AG_COL_DOUBLE)
        FAIL(o, FQ_EPROTO, "column '%s': a decimal column as the contributor",
             c->name);
    if ((rc = check_sorted(o, c, x->n_rows)))
        return rc;
    return check_runs(o, x);
}

/* ---- the header ---------------------------------------------------------- */

static int
load_header(struct opener *o, const struct ag_dataset_conf *d,
            struct ag_extract *x)
{
    const unsigned char *h = o->map;
    uint32_t version, n_cols;
    uint64_t file_size;

    if (o->size < 8 || memcmp(h, AG_EXTRACT_MAGIC, 8) != 0)
        FAIL(o, FQ_EPROTO, "not an extract (no magic)");
    if (o->size < AGX_HEADER_SIZE)
        FAIL(o, FQ_EPROTO, "truncated header (%" PRIu64 " bytes)", o->size);
    version = agx_get32(h + AGX_H_VERSION);
    if (version != AG_EXTRACT_VERSION)
        FAIL(o, FQ_EPROTO,
             "format version %" PRIu32 ", this agent reads "
             "version %d only; rebuild it",
             version, AG_EXTRACT_VERSION);
    file_size = agx_get64(h + AGX_H_FILE_SIZE);
    if (file_size != o->size)
        FAIL(o, FQ_EPROTO,
             "%" PRIu64 " bytes where the header says %" PRIu64
             " (truncated or appended to)",
             o->size, file_size);
    if (agx_get32(h + AGX_H_FLAGS) ||
        !all_zero(h + AGX_H_END, AGX_HEADER_SIZE - AGX_H_END) ||
        !memchr(h + AGX_H_VINTAGE, '\0', AG_VINTAGE_MAX))
        FAIL(o, FQ_EPROTO, "corrupt header");
    n_cols = agx_get32(h + AGX_H_N_COLS);
    x->n_rows = agx_get64(h + AGX_H_N_ROWS);
    x->contributor = (int32_t)agx_get32(h + AGX_H_CONTRIBUTOR);
    x->schema_hash = agx_get64(h + AGX_H_SCHEMA);
    memcpy(x->vintage, h + AGX_H_VINTAGE, AG_VINTAGE_MAX);
    if ((uint64_t)n_cols * AGX_ENTRY_SIZE > o->size - AGX_HEADER_SIZE)
        FAIL(o, FQ_EPROTO, "truncated column directory");
    if (n_cols != d->n_columns || x->schema_hash != ag_extract_schema_hash(d) ||
        x->contributor != ag__extract_contributor(d))
        FAIL(o, FQ_EPRECOND,
             "built for other columns (the dataset's have changed); "
             "rebuild it");
    x->n_cols = n_cols;
    return 0;
}

/* Maps the file at path read-only: *ret_map and *ret_size, or an error. */
static int
map_file(struct opener *o, void **ret_map, uint64_t *ret_size)
{
    int fd = open(o->path, O_RDONLY | O_CLOEXEC), rc = 0;
    struct stat st;
    void *map;

    if (fd < 0)
        FAIL(o, fq_error_from_errno(errno), "cannot open: %s", strerror(errno));
    if (fstat(fd, &st) != 0) {
        rc = fq_error_from_errno(errno);
        fail_msg(o, "cannot stat: %s", strerror(errno));
        goto out;
    }
    if (st.st_size == 0) {
        rc = FQ_EPROTO;
        fail_msg(o, "not an extract (empty)");
        goto out;
    }
    map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        rc = fq_error_from_errno(errno);
        fail_msg(o, "cannot map: %s", strerror(errno));
        goto out;
    }
    *ret_map = map;
    *ret_size = (uint64_t)st.st_size;
out:
    close(fd);
    return rc;
}

/* The contributor run bitmap: present (its offset non-zero) exactly when
 * there is a contributor. */
static int
load_runs(struct opener *o, struct ag_extract *x)
{
    uint64_t off = agx_get64(o->map + AGX_H_RUNS);
    const void *p;
    int rc;

    if (x->contributor < 0 && off == 0)
        return 0;
    if (x->contributor < 0 || off == 0)
        FAIL(o, FQ_EPROTO, "a contributor run bitmap %s",
             off ? "without a contributor" : "is missing");
    if ((rc = section(o, x->cols[x->contributor].name, "contributor run", off,
                      agx_nulls_len(x->n_rows), &p)))
        return rc;
    x->contributor_runs = p;
    return 0;
}

static int
load(struct opener *o, const struct ag_dataset_conf *d, struct ag_extract *x)
{
    int rc = load_header(o, d, x);

    if (rc)
        return rc;
    x->cols = calloc(x->n_cols ? x->n_cols : 1, sizeof(*x->cols));
    o->spans = calloc(x->n_cols * 4 + 2, sizeof(*o->spans));
    if (!x->cols || !o->spans)
        FAIL(o, FQ_ENOMEM, "out of memory");
    for (size_t i = 0; i < x->n_cols; i++) {
        if ((rc = load_column(o, d, x, i)))
            return rc;
    }
    if ((rc = load_runs(o, x)))
        return rc;
    rc = check_overlaps(o, AGX_HEADER_SIZE + x->n_cols * AGX_ENTRY_SIZE);
    for (size_t i = 0; i < x->n_cols && !rc; i++)
        rc = check_column(o, x, i);
    return rc;
}

int
ag_extract_open(const char *path, const struct ag_dataset_conf *d,
                struct ag_extract **ret, char *err, size_t errlen)
{
    struct opener o = {.path = path, .err = err, .errlen = errlen};
    struct ag_extract *x = calloc(1, sizeof(*x));
    int rc;

    if (x)
        atomic_init(&x->refs, 1);
    if (!x || !(x->path = strdup(path))) {
        rc = FQ_ENOMEM;
        fail_msg(&o, "out of memory");
        goto out;
    }
    if ((rc = map_file(&o, &x->map, &o.size)))
        goto out;
    x->map_len = (size_t)o.size;
    o.map = x->map;
    if ((rc = load(&o, d, x)))
        goto out;
    *ret = x;
    x = NULL;
out:
    free(o.spans);
    ag_extract_unref(x);
    return rc;
}

void
ag_extract_ref(struct ag_extract *x)
{
    atomic_fetch_add_explicit(&x->refs, 1, memory_order_relaxed);
}

void
ag_extract_unref(struct ag_extract *x)
{
    if (!x || atomic_fetch_sub_explicit(&x->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (x->map)
        munmap(x->map, x->map_len);
    free(atomic_load(&x->person_tags));
    free(x->cols);
    free(x->path);
    free(x);
}

/* ---- person tags ----------------------------------------------------------
 */

bool
ag_extract_keys_by_row(const struct ag_extract *x)
{
    return x->contributor < 0 || x->cols[x->contributor].kind != AG_COL_DICT;
}

/* Row r's identity as record-key text: an integer contributor's value, or
 * without a contributor the row's position. */
static int
row_identity(const struct ag_extract *x, uint64_t r, char *buf, size_t len)
{
    if (x->contributor < 0)
        return snprintf(buf, len, "%" PRIu64, r + 1);
    const struct ag_xcol *c = &x->cols[x->contributor];
    return snprintf(buf, len, "%" PRId64,
                    (int64_t)((uint64_t)c->base + ag_xcol_stored(c, r)));
}

static uint64_t *
make_tags(const struct ag_extract *x, const struct ag_cell_secret *sec)
{
    bool by_row = ag_extract_keys_by_row(x);
    const struct ag_xcol *c = by_row ? NULL : &x->cols[x->contributor];
    uint64_t n = by_row ? x->n_rows : c->dict_size;
    uint64_t *rk = calloc((size_t)n + 1, sizeof(*rk));
    char num[32], prev[32] = "";

    if (!rk)
        return NULL;
    for (uint64_t i = 0; i < n; i++) {
        if (c) {
            const char *id = ag_xcol_text(c, (uint32_t)i);
            rk[i] = ag_person_tag(sec, id, strlen(id));
            continue;
        }
        int len = row_identity(x, i, num, sizeof(num));
        /* A person's rows are adjacent: one HMAC per person. */
        rk[i] = i > 0 && strcmp(num, prev) == 0
                    ? rk[i - 1]
                    : ag_person_tag(sec, num, (size_t)len);
        memcpy(prev, num, sizeof(prev));
    }
    return rk;
}

const uint64_t *
ag_extract_person_tags(const struct ag_extract *x,
                       const struct ag_cell_secret *secret)
{
    struct ag_extract *w = (struct ag_extract *)x; /* a cache, not data */
    uint64_t *have = atomic_load(&w->person_tags), *mine;

    if (have || !secret)
        return have;
    if (!(mine = make_tags(x, secret)))
        return NULL;
    /* Two first queries may race: one keeps its tags, the other's go. */
    if (!atomic_compare_exchange_strong(&w->person_tags, &have, mine)) {
        free(mine);
        return have;
    }
    return mine;
}
