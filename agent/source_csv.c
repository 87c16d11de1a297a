/*
 * A row source over a CSV file (RFC 4180): a header row names the columns,
 * which are matched to the dataset's configured columns by name (ignoring
 * ASCII case, as SQLite matches column names); extra CSV columns are
 * skipped. Fields are quoted with '"' and a quote inside doubles; records
 * end with CR LF or LF, and the last may end at the end of the file.
 *
 * The file comes from outside the agent's control, so the reader is
 * strict and bounded: a record longer than CSV_ROW_MAX bytes or with more
 * than CSV_FIELDS_MAX fields, a stray quote, a bare CR, a NUL byte, or a
 * record with another number of fields than the header is refused with its
 * line. Fields point into the caller's buffer; only a quoted field with
 * doubled quotes is copied (into one scratch buffer per record).
 *
 * Fields are typed as the dataset declares: an INTEGER column takes a
 * 64-bit integer, a DECIMAL column a finite number, the text types the
 * text as it is; an empty unquoted field is NULL (a quoted empty field is
 * the empty text).
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "extract.h"

#include <fcntl.h>
#include <math.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define CSV_ROW_MAX    (1024 * 1024)
#define CSV_FIELDS_MAX 4096
#define NUMBER_MAX     64 /* bytes of a DECIMAL field */

struct field {
    const char *s;
    size_t len;
    bool quoted;
};

struct csv_src {
    const struct ag_dataset_conf *d;
    char *name; /* for messages: the file, or "CSV buffer" */
    void *map;  /* the file's mapping (owned), or NULL */
    size_t map_len;
    const char *buf;
    size_t len, pos;
    char delim;
    uint64_t line;        /* of pos, from 1 */
    uint64_t rec_line;    /* where the current record starts */
    struct field *fields; /* CSV_FIELDS_MAX */
    size_t n_fields, n_header;
    size_t *field_of_col; /* configured column -> header field */
    char *scratch; /* CSV_ROW_MAX + 1, for unescaped quoted fields; lazy */
    size_t scratch_len;
    char *err;
    size_t errlen;
};

static int fail_line(struct csv_src *c, int code, uint64_t line,
                     const char *fmt, ...) FQ_PRINTF(4, 5);

/* "NAME: line N: ..." in err; returns code. */
static int
fail_line(struct csv_src *c, int code, uint64_t line, const char *fmt, ...)
{
    int n =
        snprintf(c->err, c->errlen, "%s: line %" PRIu64 ": ", c->name, line);
    va_list ap;

    if (n >= 0 && (size_t)n < c->errlen) {
        va_start(ap, fmt);
        vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- records ------------------------------------------------------------- */

/* Where scanning the current record must stop, and whether that is the
 * cap (the record is too long) rather than the end of the input. */
struct span {
    size_t end;
    bool capped;
};

static int
too_long(struct csv_src *c)
{
    return fail_line(c, FQ_ETOOBIG, c->rec_line,
                     "a record longer than %d bytes", CSV_ROW_MAX);
}

/* Counts the lines in buf[from, to) and refuses a NUL byte. */
static int
scan_segment(struct csv_src *c, size_t from, size_t to)
{
    const char *p = c->buf + from, *end = c->buf + to;

    if (memchr(p, '\0', (size_t)(end - p)))
        return fail_line(c, FQ_EINVAL, c->line, "a NUL byte");
    while ((p = memchr(p, '\n', (size_t)(end - p)))) {
        c->line++;
        p++;
    }
    return 0;
}

/* Appends buf[from, to) to the scratch buffer. */
static void
scratch_add(struct csv_src *c, size_t from, size_t to)
{
    memcpy(c->scratch + c->scratch_len, c->buf + from, to - from);
    c->scratch_len += to - from;
}

/* A quoted field from pos (at its opening quote) to its closing quote. */
static int
quoted_field(struct csv_src *c, const struct span *sp, struct field *f)
{
    size_t start = ++c->pos, copy_from = 0;
    bool copied = false;
    uint64_t line = c->line;
    int rc;

    for (;;) {
        const char *q = memchr(c->buf + c->pos, '"', sp->end - c->pos);
        size_t at = q ? (size_t)(q - c->buf) : sp->end;
        if ((rc = scan_segment(c, c->pos, at)))
            return rc;
        if (!q || (at + 1 == sp->end && sp->capped))
            return sp->capped ? too_long(c)
                              : fail_line(c, FQ_EINVAL, line,
                                          "a quoted field is not closed");
        if (at + 1 < c->len && c->buf[at + 1] == '"') {
            /* A doubled quote: keep one, copy the field from here on. */
            if (!c->scratch && !(c->scratch = malloc(CSV_ROW_MAX + 1)))
                return fail_line(c, FQ_ENOMEM, line, "out of memory");
            if (!copied) {
                copy_from = c->scratch_len;
                scratch_add(c, start, at + 1);
                copied = true;
            } else {
                scratch_add(c, c->pos, at + 1);
            }
            c->pos = at + 2;
            continue;
        }
        if (copied)
            scratch_add(c, c->pos, at);
        *f = copied ? (struct field){c->scratch + copy_from,
                                     c->scratch_len - copy_from, true}
                    : (struct field){c->buf + start, at - start, true};
        c->pos = at + 1;
        return 0;
    }
}

/* An unquoted field from pos up to a delimiter, a line end or the end. */
static int
plain_field(struct csv_src *c, const struct span *sp, struct field *f)
{
    size_t start = c->pos;

    for (; c->pos < sp->end; c->pos++) {
        char ch = c->buf[c->pos];
        if (ch == c->delim || ch == '\n' || ch == '\r')
            break;
        if (ch == '"')
            return fail_line(c, FQ_EINVAL, c->line,
                             "a quote inside an unquoted field");
        if (ch == '\0')
            return fail_line(c, FQ_EINVAL, c->line, "a NUL byte");
    }
    if (c->pos == sp->end && sp->capped)
        return too_long(c);
    *f = (struct field){c->buf + start, c->pos - start, false};
    return 0;
}

/* After a field: 1 if another field follows, 0 at the end of the record. */
static int
field_end(struct csv_src *c, const struct span *sp)
{
    if (c->pos == c->len)
        return 0;
    if (c->pos == sp->end)
        return too_long(c);
    if (c->buf[c->pos] == c->delim) {
        c->pos++;
        return 1;
    }
    if (c->buf[c->pos] == '\r') {
        if (c->pos + 1 == c->len || c->buf[c->pos + 1] != '\n')
            return fail_line(c, FQ_EINVAL, c->line,
                             "a carriage return that does not end the line");
        c->pos++;
    }
    if (c->buf[c->pos] == '\n') {
        c->pos++;
        c->line++;
        return 0;
    }
    return fail_line(c, FQ_EINVAL, c->line,
                     "a character after the closing quote of a field");
}

/* Reads the record at pos into fields: 1, 0 at the end of the input, or an
 * error. */
static int
read_record(struct csv_src *c)
{
    struct span sp = {c->len, false};
    int rc;

    if (c->pos == c->len)
        return 0;
    if (c->len - c->pos > CSV_ROW_MAX)
        sp = (struct span){c->pos + CSV_ROW_MAX + 1, true};
    c->rec_line = c->line;
    c->n_fields = 0;
    c->scratch_len = 0;
    do {
        struct field *f = &c->fields[c->n_fields];
        if (c->n_fields == CSV_FIELDS_MAX)
            return fail_line(c, FQ_ETOOBIG, c->rec_line, "more than %d fields",
                             CSV_FIELDS_MAX);
        rc = c->pos < c->len && c->buf[c->pos] == '"' ? quoted_field(c, &sp, f)
                                                      : plain_field(c, &sp, f);
        if (rc)
            return rc;
        c->n_fields++;
    } while ((rc = field_end(c, &sp)) == 1);
    return rc < 0 ? rc : 1;
}

/* ---- typed values -------------------------------------------------------- */

static int
field_error(struct csv_src *c, size_t col, const char *what)
{
    return fail_line(c, FQ_EINVAL, c->rec_line, "column '%s': %s",
                     c->d->columns[col].name, what);
}

/* [+-]digits, within 64 bits. */
static int
parse_int(struct csv_src *c, size_t col, const struct field *f,
          struct ag_value *v)
{
    size_t i = 0;
    bool neg = false;
    uint64_t mag = 0, lim;

    if (f->len && (f->s[0] == '-' || f->s[0] == '+'))
        neg = f->s[i++] == '-';
    if (i == f->len)
        return field_error(c, col, "not an integer");
    lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < f->len; i++) {
        unsigned d = (unsigned char)f->s[i] - '0';
        if (d > 9)
            return field_error(c, col, "not an integer");
        if (mag > (lim - d) / 10)
            return field_error(c, col, "an integer beyond 64 bits");
        mag = mag * 10 + d;
    }
    v->kind = AG_V_INT;
    v->i = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return 0;
}

static size_t
digits(const char *s, size_t i, size_t len)
{
    size_t n = 0;
    while (i + n < len && s[i + n] >= '0' && s[i + n] <= '9')
        n++;
    return n;
}

/* True if s is [+-](d+[.d*]|.d+)([eE][+-]d+): what strtod reads, less its
 * spaces, hexadecimal, infinities and NaNs. */
static bool
number_syntax(const char *s, size_t len)
{
    size_t i = 0, n;

    if (i < len && (s[i] == '-' || s[i] == '+'))
        i++;
    n = digits(s, i, len);
    i += n;
    if (i < len && s[i] == '.') {
        size_t frac = digits(s, i + 1, len);
        if (!n && !frac)
            return false;
        i += 1 + frac;
    } else if (!n) {
        return false;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '-' || s[i] == '+'))
            i++;
        n = digits(s, i, len);
        if (!n)
            return false;
        i += n;
    }
    return i == len;
}

static int
parse_decimal(struct csv_src *c, size_t col, const struct field *f,
              struct ag_value *v)
{
    char num[NUMBER_MAX + 1];

    if (f->len > NUMBER_MAX || !number_syntax(f->s, f->len))
        return field_error(c, col, "not a number");
    memcpy(num, f->s, f->len);
    num[f->len] = '\0';
    v->kind = AG_V_REAL;
    v->d = strtod(num, NULL);
    if (!isfinite(v->d))
        return field_error(c, col, "a number beyond the range of doubles");
    return 0;
}

static int
convert(struct csv_src *c, size_t col, const struct field *f,
        struct ag_value *v)
{
    if (!f->quoted && f->len == 0) {
        v->kind = AG_V_NULL;
        return 0;
    }
    switch (c->d->columns[col].type) {
    case AG_TYPE_INTEGER:
        return parse_int(c, col, f, v);
    case AG_TYPE_DECIMAL:
        return parse_decimal(c, col, f, v);
    default:
        *v = (struct ag_value){.kind = AG_V_TEXT, .s = f->s, .len = f->len};
        return 0;
    }
}

static int
csv_next(void *self, struct ag_value *vals, char *err, size_t errlen)
{
    struct csv_src *c = self;
    int rc;

    c->err = err;
    c->errlen = errlen;
    if ((rc = read_record(c)) <= 0)
        return rc;
    if (c->n_fields != c->n_header)
        return fail_line(c, FQ_EINVAL, c->rec_line,
                         "%zu fields where the header has %zu", c->n_fields,
                         c->n_header);
    for (size_t i = 0; i < c->d->n_columns; i++) {
        if ((rc = convert(c, i, &c->fields[c->field_of_col[i]], &vals[i])))
            return rc;
    }
    return 1;
}

/* ---- the header ---------------------------------------------------------- */

static bool
name_is(const struct field *f, const char *name)
{
    return strlen(name) == f->len && strncasecmp(f->s, name, f->len) == 0;
}

/* Finds each configured column in the header row. */
static int
read_header(struct csv_src *c)
{
    static const char bom[] = "\xef\xbb\xbf";
    int rc;

    if (c->len >= 3 && memcmp(c->buf, bom, 3) == 0)
        c->pos = 3;
    if ((rc = read_record(c)) < 0)
        return rc;
    if (rc == 0)
        return fail_line(c, FQ_EINVAL, 1, "no header row");
    c->n_header = c->n_fields;
    for (size_t i = 0; i < c->d->n_columns; i++) {
        const char *name = c->d->columns[i].name;
        size_t found = SIZE_MAX;
        for (size_t k = 0; k < c->n_header; k++) {
            if (!name_is(&c->fields[k], name))
                continue;
            if (found != SIZE_MAX)
                return fail_line(c, FQ_EINVAL, c->rec_line,
                                 "column '%s' appears twice in the header",
                                 name);
            found = k;
        }
        if (found == SIZE_MAX)
            return fail_line(c, FQ_EINVAL, c->rec_line,
                             "no column '%s' in the header", name);
        c->field_of_col[i] = found;
    }
    return 0;
}

/* ---- opening ------------------------------------------------------------- */

static void
csv_close(void *self)
{
    struct csv_src *c = self;

    if (!c)
        return;
    if (c->map)
        munmap(c->map, c->map_len);
    free(c->name);
    free(c->fields);
    free(c->field_of_col);
    free(c->scratch);
    free(c);
}

/* A reader over buf, named name in messages; does not own buf. */
static int
csv_new(const struct ag_dataset_conf *d, const char *name, const char *buf,
        size_t len, char delim, struct csv_src **ret, char *err, size_t errlen)
{
    struct csv_src *c = calloc(1, sizeof(*c));
    int rc = FQ_ENOMEM;

    if (!c || !(c->name = strdup(name)) ||
        !(c->fields = malloc(CSV_FIELDS_MAX * sizeof(*c->fields))) ||
        !(c->field_of_col = calloc(d->n_columns + 1, sizeof(size_t)))) {
        snprintf(err, errlen, "%s: out of memory", name);
        goto out;
    }
    c->d = d;
    c->buf = buf;
    c->len = len;
    c->delim = delim;
    c->line = 1;
    c->err = err;
    c->errlen = errlen;
    if (delim == '"' || delim == '\r' || delim == '\n' || delim == '\0') {
        rc = fail_line(c, FQ_EINVAL, 1,
                       "the delimiter cannot be a quote, a line end or NUL");
        goto out;
    }
    if ((rc = read_header(c)))
        goto out;
    *ret = c;
    c = NULL;
out:
    csv_close(c);
    return rc;
}

int
ag_source_csv_buffer(const struct ag_dataset_conf *d, const char *buf,
                     size_t len, char delimiter, struct ag_row_source *ret,
                     char *err, size_t errlen)
{
    struct csv_src *c;
    int rc = csv_new(d, "CSV buffer", buf, len, delimiter, &c, err, errlen);

    if (rc)
        return rc;
    *ret = (struct ag_row_source){c, csv_next, csv_close};
    return 0;
}

/* Maps path read-only (an empty file maps to nothing). */
static int
map_csv(const char *path, void **ret_map, size_t *ret_len, char *err,
        size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), e = 0;
    struct stat st;
    void *map = NULL;

    if (fd < 0 || fstat(fd, &st) != 0)
        e = errno;
    if (!e && st.st_size > 0) {
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED)
            e = errno;
        else
            madvise(map, (size_t)st.st_size, MADV_SEQUENTIAL);
    }
    if (fd >= 0)
        close(fd);
    if (e) {
        snprintf(err, errlen, "cannot read CSV file '%s': %s", path,
                 strerror(e));
        return fq_error_from_errno(e);
    }
    *ret_map = map;
    *ret_len = map ? (size_t)st.st_size : 0;
    return 0;
}

int
ag_source_csv_open(const struct ag_dataset_conf *d, struct ag_row_source *ret,
                   char *err, size_t errlen)
{
    const char *delim = d->source.delimiter;
    struct csv_src *c;
    void *map = NULL;
    size_t len = 0;
    int rc;

    if (!d->source.csv) {
        snprintf(err, errlen, "dataset '%s': not a CSV source", d->name);
        return FQ_EINVAL;
    }
    if ((rc = map_csv(d->source.csv, &map, &len, err, errlen)))
        return rc;
    rc = csv_new(d, d->source.csv, map ? map : "", len,
                 delim && *delim ? *delim : ',', &c, err, errlen);
    if (rc) {
        if (map)
            munmap(map, len);
        return rc;
    }
    c->map = map;
    c->map_len = len;
    *ret = (struct ag_row_source){c, csv_next, csv_close};
    return 0;
}
