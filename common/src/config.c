/*
 * Configuration loader: turns a YAML file into the C structs a program
 * runs on, driven by one directive table per struct (see fq/config.h).
 *
 * Loading is two passes. The first feeds libyaml events into a small tree
 * of scalar, sequence and mapping nodes, each with its line, held in a
 * scratch arena; this is where the input caps (bytes, depth, node count)
 * and the YAML features we refuse (anchors, aliases, tags, several
 * documents) are enforced. The second walks the tree against the tables,
 * writing typed values into the caller's struct and arena, applying
 * defaults and running check hooks. Every failure stops the load with one
 * "FILE:LINE: what is wrong" message; nothing is logged.
 */
#include "fq/compat.h"
#include "fq/config.h"
#include "fq/arena.h"
#include "fq/buf.h"
#include "fq/error.h"

#include <math.h>

#include <yaml.h>

/* Bounds the tree whatever the byte count: "[[],[],...]" is cheap text. */
#define CFG_MAX_NODES 100000
/* STRLIST and LIST items when the directive leaves max at 0. */
#define CFG_MAX_ITEMS 100000
/* Node tree plus scalar copies of a 1 MiB input stay far below this. */
#define CFG_TMP_MAX  (64u * 1024 * 1024)
#define CFG_PATH_MAX 256 /* key path in messages; longer paths are cut */
#define CFG_MSG_MAX  512
#define CFG_QUOTE    48 /* bytes of a user value quoted in a message */

enum node_kind {
    NODE_SCALAR,
    NODE_SEQ,
    NODE_MAP,
};

struct node {
    enum node_kind kind;
    int line;         /* 1-based, from the event's start mark */
    bool null;        /* plain "", "~" or "null": YAML's "no value" */
    const char *text; /* scalar bytes, NUL-terminated; may hold NULs */
    size_t len;
    size_t count; /* children: items, or keys and values alternating */
    struct node *child;
    struct node *next;
};

struct cfg_ctx {
    const char *name;     /* file name for messages */
    const char *base_dir; /* relative PATH values are joined to it */
    const char *data;
    size_t len;
    struct fq_arena *arena; /* the caller's: the config lives here */
    struct fq_arena *tmp;   /* the node tree; freed when loading ends */
    yaml_parser_t parser;
    size_t nodes;
    char *errbuf;
    size_t errlen;
    char path[CFG_PATH_MAX]; /* key path of the value being mapped */
    size_t path_len;
    bool in_default; /* mapping a table default, not user input */
};

struct unit {
    const char *suffix;
    int64_t mult;
};

static const struct unit duration_units[] = {
    {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {NULL, 0},
};

static const struct unit size_units[] = {
    {"", 1},
    {"KiB", INT64_C(1) << 10},
    {"MiB", INT64_C(1) << 20},
    {"GiB", INT64_C(1) << 30},
    {NULL, 0},
};

typedef void (*fmt_fn)(int64_t v, char *buf, size_t len);

static int cfg_fail(struct cfg_ctx *c, int rc, int line, const char *fmt, ...)
    FQ_PRINTF(4, 5);
static int map_mapping(struct cfg_ctx *c, const struct fq_cfg_directive *table,
                       void *obj, const struct node *map, int line);

/* ---- messages ----------------------------------------------------------- */

/* Formats "NAME:LINE: msg" into the caller's buffer; returns rc. Line 0
 * is for failures of the file as a whole, which have no line. */
static int
cfg_fail(struct cfg_ctx *c, int rc, int line, const char *fmt, ...)
{
    char msg[CFG_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!c->errbuf || c->errlen == 0)
        return rc;
    const char *pre = c->in_default && rc == FQ_EINVAL ? "bad default: " : "";
    if (line > 0)
        snprintf(c->errbuf, c->errlen, "%s:%d: %s%s", c->name, line, pre, msg);
    else
        snprintf(c->errbuf, c->errlen, "%s: %s%s", c->name, pre, msg);
    return rc;
}

/* Quotes user text for a message: bounded, and control bytes shown as '?'
 * so a hostile file cannot forge extra lines in whatever prints it. */
static const char *
quote(const char *text, size_t len, char *buf, size_t buflen)
{
    size_t cut = len;
    size_t o = 0;

    if (cut > CFG_QUOTE) {
        cut = CFG_QUOTE;
        while (cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80)
            cut--; /* do not split a UTF-8 sequence */
    }
    buf[o++] = '\'';
    for (size_t i = 0; i < cut && o + 5 < buflen; i++) {
        unsigned char ch = (unsigned char)text[i];
        buf[o++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    if (cut < len && o + 5 < buflen)
        o += (size_t)snprintf(buf + o, buflen - o, "...");
    buf[o++] = '\'';
    buf[o] = '\0';
    return buf;
}

/* What a node is, for "found ..." in messages. */
static const char *
describe(const struct node *n, char *buf, size_t buflen)
{
    if (n->kind == NODE_SEQ)
        return "a sequence";
    if (n->kind == NODE_MAP)
        return "a mapping";
    if (n->null)
        return "nothing";
    return quote(n->text, n->len, buf, buflen);
}

static void
fmt_plain(int64_t v, char *buf, size_t len)
{
    snprintf(buf, len, "%" PRId64, v);
}

/* Largest unit that divides the value exactly, so 60000 reads "1m". */
static void
fmt_duration(int64_t v, char *buf, size_t len)
{
    if (v != 0 && v % 3600000 == 0)
        snprintf(buf, len, "%" PRId64 "h", v / 3600000);
    else if (v != 0 && v % 60000 == 0)
        snprintf(buf, len, "%" PRId64 "m", v / 60000);
    else if (v != 0 && v % 1000 == 0)
        snprintf(buf, len, "%" PRId64 "s", v / 1000);
    else
        snprintf(buf, len, "%" PRId64 "ms", v);
}

static void
fmt_size(int64_t v, char *buf, size_t len)
{
    const struct unit *best = &size_units[0];

    for (const struct unit *u = size_units; u->suffix; u++)
        if (v != 0 && v % u->mult == 0)
            best = u;
    snprintf(buf, len, "%" PRId64 "%s", v / best->mult, best->suffix);
}

/* "text, json" from a NULL-terminated name list. */
static const char *
join_names(const char *const *names, char *buf, size_t len)
{
    size_t o = 0;

    buf[0] = '\0';
    for (size_t i = 0; names && names[i] && o < len; i++) {
        int n = snprintf(buf + o, len - o, "%s%s", i ? ", " : "", names[i]);
        if (n < 0)
            break;
        o += (size_t)n;
    }
    return buf;
}

/* ---- key paths ---------------------------------------------------------- */

static size_t
path_push_key(struct cfg_ctx *c, const char *key)
{
    size_t old = c->path_len;

    snprintf(c->path + old, sizeof(c->path) - old, "%s%s", old ? "." : "", key);
    c->path_len = strlen(c->path);
    return old;
}

static size_t
path_push_index(struct cfg_ctx *c, size_t i)
{
    size_t old = c->path_len;

    snprintf(c->path + old, sizeof(c->path) - old, "[%zu]", i);
    c->path_len = strlen(c->path);
    return old;
}

static void
path_pop(struct cfg_ctx *c, size_t old)
{
    c->path_len = old;
    c->path[old] = '\0';
}

/* ---- pass 1: YAML events to a node tree ---------------------------------- */

/* libyaml reports reader errors (bad UTF-8, control bytes) as an offset. */
static int
line_of_offset(const struct cfg_ctx *c, size_t offset)
{
    int line = 1;

    for (size_t i = 0; i < offset && i < c->len; i++)
        if (c->data[i] == '\n')
            line++;
    return line;
}

static int
yaml_fail(struct cfg_ctx *c)
{
    const yaml_parser_t *p = &c->parser;
    int line = (int)p->problem_mark.line + 1;

    if (p->error == YAML_MEMORY_ERROR)
        return cfg_fail(c, FQ_ENOMEM, 0, "out of memory");
    if (p->error == YAML_READER_ERROR)
        line = line_of_offset(c, p->problem_offset);
    return cfg_fail(c, FQ_EINVAL, line, "%s",
                    p->problem ? p->problem : "invalid yaml");
}

static int
next_event(struct cfg_ctx *c, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&c->parser, ev))
        return yaml_fail(c);
    return 0;
}

/* For events whose content we do not need (stream and document marks). */
static int
skip_event(struct cfg_ctx *c)
{
    yaml_event_t ev;
    int rc = next_event(c, &ev);

    if (rc == 0)
        yaml_event_delete(&ev);
    return rc;
}

static int parse_node(struct cfg_ctx *c, const yaml_event_t *ev, int depth,
                      struct node **ret);

/* Reads child events up to the collection's end event. */
static int
parse_children(struct cfg_ctx *c, struct node *parent, int depth)
{
    struct node **tail = &parent->child;
    yaml_event_t ev;

    for (;;) {
        int rc = next_event(c, &ev);
        if (rc < 0)
            return rc;
        if (ev.type == YAML_SEQUENCE_END_EVENT ||
            ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        rc = parse_node(c, &ev, depth + 1, tail);
        yaml_event_delete(&ev);
        if (rc < 0)
            return rc;
        tail = &(*tail)->next;
        parent->count++;
    }
}

static int
fill_scalar(struct cfg_ctx *c, struct node *n, const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;

    n->text = fq_arena_strndup(c->tmp, v, len);
    if (!n->text)
        return cfg_fail(c, FQ_ENOMEM, n->line, "out of memory");
    n->len = len;
    n->null = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
              (len == 0 || strcmp(n->text, "~") == 0 ||
               strcmp(n->text, "null") == 0 || strcmp(n->text, "Null") == 0 ||
               strcmp(n->text, "NULL") == 0);
    return 0;
}

/* Kind of the node an event starts; false if it starts none. */
static bool
node_start(const yaml_event_t *ev, enum node_kind *kind, bool *anchor,
           bool *tag)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        *kind = NODE_SCALAR;
        *anchor = ev->data.scalar.anchor != NULL;
        *tag = ev->data.scalar.tag != NULL;
        return true;
    case YAML_SEQUENCE_START_EVENT:
        *kind = NODE_SEQ;
        *anchor = ev->data.sequence_start.anchor != NULL;
        *tag = ev->data.sequence_start.tag != NULL;
        return true;
    case YAML_MAPPING_START_EVENT:
        *kind = NODE_MAP;
        *anchor = ev->data.mapping_start.anchor != NULL;
        *tag = ev->data.mapping_start.tag != NULL;
        return true;
    default:
        return false;
    }
}

static int
parse_node(struct cfg_ctx *c, const yaml_event_t *ev, int depth,
           struct node **ret)
{
    int line = (int)ev->start_mark.line + 1;
    enum node_kind kind;
    bool anchor, tag;

    /* Aliases can blow a small file up into a huge tree, and a tag would
     * ask for a type other than the table's: both are refused. */
    if (ev->type == YAML_ALIAS_EVENT)
        return cfg_fail(c, FQ_EINVAL, line,
                        "anchors and aliases are not supported");
    if (!node_start(ev, &kind, &anchor, &tag))
        return cfg_fail(c, FQ_EINVAL, line, "unexpected yaml event");
    if (anchor)
        return cfg_fail(c, FQ_EINVAL, line,
                        "anchors and aliases are not supported");
    if (tag)
        return cfg_fail(c, FQ_EINVAL, line, "tags are not supported");
    if (++c->nodes > CFG_MAX_NODES)
        return cfg_fail(c, FQ_ETOOBIG, line, "more than %d yaml nodes",
                        CFG_MAX_NODES);
    if (kind != NODE_SCALAR && depth > FQ_CFG_MAX_DEPTH)
        return cfg_fail(c, FQ_ETOOBIG, line, "nesting deeper than %d levels",
                        FQ_CFG_MAX_DEPTH);

    struct node *n = fq_arena_alloc(c->tmp, sizeof(*n));
    if (!n)
        return cfg_fail(c, FQ_ENOMEM, line, "out of memory");
    n->kind = kind;
    n->line = line;
    *ret = n;
    if (kind == NODE_SCALAR)
        return fill_scalar(c, n, ev);
    return parse_children(c, n, depth);
}

/* One document at most; *root stays NULL for a stream without any. */
static int
parse_stream(struct cfg_ctx *c, struct node **root)
{
    yaml_event_t ev;
    int rc = skip_event(c); /* stream start */

    if (rc == 0)
        rc = next_event(c, &ev);
    if (rc < 0)
        return rc;
    bool empty = ev.type == YAML_STREAM_END_EVENT;
    yaml_event_delete(&ev); /* document start */
    if (empty)
        return 0;

    rc = next_event(c, &ev);
    if (rc < 0)
        return rc;
    rc = parse_node(c, &ev, 1, root);
    yaml_event_delete(&ev);
    if (rc == 0)
        rc = skip_event(c); /* document end */
    if (rc == 0)
        rc = next_event(c, &ev);
    if (rc < 0)
        return rc;
    if (ev.type != YAML_STREAM_END_EVENT)
        rc = cfg_fail(c, FQ_EINVAL, (int)ev.start_mark.line + 1,
                      "multiple documents are not supported");
    yaml_event_delete(&ev);
    return rc;
}

static int
parse_tree(struct cfg_ctx *c, struct node **root)
{
    if (!yaml_parser_initialize(&c->parser))
        return cfg_fail(c, FQ_ENOMEM, 0, "out of memory");
    yaml_parser_set_input_string(&c->parser, (const unsigned char *)c->data,
                                 c->len);
    int rc = parse_stream(c, root);
    yaml_parser_delete(&c->parser);
    return rc;
}

/* ---- pass 2: scalars ---------------------------------------------------- */

static void *
field(void *obj, const struct fq_cfg_directive *d)
{
    return (char *)obj + d->offset;
}

/* Fails unless n is a scalar with a value; what names the expected type. */
static int
want_scalar(struct cfg_ctx *c, const struct node *n, const char *what)
{
    char found[CFG_QUOTE + 8];

    if (n->kind == NODE_SCALAR && !n->null)
        return 0;
    if (n->kind == NODE_SCALAR)
        return cfg_fail(c, FQ_EINVAL, n->line, "'%s' needs a value", c->path);
    return cfg_fail(c, FQ_EINVAL, n->line, "'%s' must be %s, found %s", c->path,
                    what, describe(n, found, sizeof(found)));
}

static int
want_type(struct cfg_ctx *c, const struct node *n, const char *what)
{
    char found[CFG_QUOTE + 8];

    return cfg_fail(c, FQ_EINVAL, n->line, "'%s' must be %s, found %s", c->path,
                    what, describe(n, found, sizeof(found)));
}

static bool
text_is(const struct node *n, const char *s)
{
    return n->len == strlen(s) && memcmp(n->text, s, n->len) == 0;
}

/* Strict decimal: optional '-', digits only, no overflow. */
static int
parse_int64(const char *s, size_t len, int64_t *ret)
{
    size_t i = len > 0 && s[0] == '-' ? 1 : 0;
    bool neg = i == 1;
    uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;

    if (i == len)
        return FQ_EINVAL;
    for (size_t j = i; j < len; j++)
        if (s[j] < '0' || s[j] > '9')
            return FQ_EINVAL;
    for (; i < len; i++) {
        unsigned digit = (unsigned)(s[i] - '0');
        if (v > (lim - digit) / 10)
            return FQ_ETOOBIG;
        v = v * 10 + digit;
    }
    if (neg)
        *ret = v == lim ? INT64_MIN : -(int64_t)v;
    else
        *ret = (int64_t)v;
    return 0;
}

/* Digits and one suffix from units: "250ms", "4MiB". */
static int
parse_unit(const char *s, size_t len, const struct unit *units, int64_t *ret)
{
    size_t digits = 0;
    int64_t v;

    while (digits < len && s[digits] >= '0' && s[digits] <= '9')
        digits++;
    if (digits == 0)
        return FQ_EINVAL;
    const struct unit *u = units;
    for (; u->suffix; u++)
        if (strlen(u->suffix) == len - digits &&
            memcmp(s + digits, u->suffix, len - digits) == 0)
            break;
    if (!u->suffix)
        return FQ_EINVAL;
    int rc = parse_int64(s, digits, &v);
    if (rc < 0)
        return rc;
    if (v > INT64_MAX / u->mult)
        return FQ_ETOOBIG;
    *ret = v * u->mult;
    return 0;
}

static bool
is_bounded(const struct fq_cfg_directive *d)
{
    return d->min != 0 || d->max != 0;
}

/* "between 1 and 64", or one-sided when a bound is the type's limit. */
static void
range_words(const struct fq_cfg_directive *d, fmt_fn fmt, char *buf, size_t len)
{
    char lo[32], hi[32];

    fmt(d->min, lo, sizeof(lo));
    fmt(d->max, hi, sizeof(hi));
    if (d->max == INT64_MAX)
        snprintf(buf, len, "at least %s", lo);
    else if (d->min == INT64_MIN)
        snprintf(buf, len, "at most %s", hi);
    else
        snprintf(buf, len, "between %s and %s", lo, hi);
}

/* Shared tail of INT, DURATION and SIZE: syntax, overflow, then bounds. */
static int
check_number(struct cfg_ctx *c, const struct fq_cfg_directive *d,
             const struct node *n, int rc, int64_t v, fmt_fn fmt,
             const char *what)
{
    char found[CFG_QUOTE + 8], range[80];

    if (rc == FQ_EINVAL)
        return cfg_fail(c, rc, n->line, "'%s' must be %s, found %s", c->path,
                        what, quote(n->text, n->len, found, sizeof(found)));
    if (rc < 0 && !is_bounded(d))
        return cfg_fail(c, FQ_EINVAL, n->line, "'%s' is out of range, found %s",
                        c->path, quote(n->text, n->len, found, sizeof(found)));
    if (rc == 0 && (!is_bounded(d) || (v >= d->min && v <= d->max)))
        return 0;
    if (rc < 0)
        quote(n->text, n->len, found, sizeof(found));
    else
        fmt(v, found, sizeof(found));
    range_words(d, fmt, range, sizeof(range));
    return cfg_fail(c, FQ_EINVAL, n->line, "'%s' must be %s, found %s", c->path,
                    range, found);
}

static int
set_int64(struct cfg_ctx *c, const struct fq_cfg_directive *d, void *obj,
          const struct node *n)
{
    static const char dur[] = "a duration such as 250ms, 5s, 2m or 1h";
    static const char size[] = "a size such as 512, 64KiB, 4MiB or 1GiB";
    const char *what = "an integer";
    fmt_fn fmt = fmt_plain;
    int64_t v = 0;
    int rc;

    if (d->type == FQ_CFG_DURATION) {
        what = dur;
        fmt = fmt_duration;
    } else if (d->type == FQ_CFG_SIZE) {
        what = size;
        fmt = fmt_size;
    }
    rc = want_scalar(c, n, what);
    if (rc < 0)
        return rc;
    if (d->type == FQ_CFG_INT)
        rc = parse_int64(n->text, n->len, &v);
    else
        rc = parse_unit(n->text, n->len,
                        d->type == FQ_CFG_SIZE ? size_units : duration_units,
                        &v);
    rc = check_number(c, d, n, rc, v, fmt, what);
    if (rc == 0)
        memcpy(field(obj, d), &v, sizeof(v));
    return rc;
}

/* A finite decimal within [dmin, dmax]: "1", "0.5", "2.5e-1". */
static int
set_double(struct cfg_ctx *c, const struct fq_cfg_directive *d, void *obj,
           const struct node *n)
{
    char text[64], found[CFG_QUOTE + 8], *end;
    int rc = want_scalar(c, n, "a decimal number");
    double v;

    if (rc < 0)
        return rc;
    if (n->len == 0 || n->len >= sizeof(text))
        return cfg_fail(c, FQ_EINVAL, n->line,
                        "'%s' must be a decimal number, found %s", c->path,
                        quote(n->text, n->len, found, sizeof(found)));
    memcpy(text, n->text, n->len);
    text[n->len] = '\0';
    errno = 0;
    v = strtod(text, &end);
    if (*end || errno || !isfinite(v))
        return cfg_fail(c, FQ_EINVAL, n->line,
                        "'%s' must be a decimal number, found %s", c->path,
                        quote(n->text, n->len, found, sizeof(found)));
    if (v < d->dmin || v > d->dmax)
        return cfg_fail(c, FQ_EINVAL, n->line,
                        "'%s' must be from %g to %g, found %s", c->path,
                        d->dmin, d->dmax,
                        quote(n->text, n->len, found, sizeof(found)));
    memcpy(field(obj, d), &v, sizeof(v));
    return 0;
}

static int
set_bool(struct cfg_ctx *c, const struct fq_cfg_directive *d, void *obj,
         const struct node *n)
{
    char found[CFG_QUOTE + 8];
    bool v;
    int rc = want_scalar(c, n, "true or false");

    if (rc < 0)
        return rc;
    if (text_is(n, "true"))
        v = true;
    else if (text_is(n, "false"))
        v = false;
    else
        return cfg_fail(c, FQ_EINVAL, n->line,
                        "'%s' must be true or false, found %s", c->path,
                        quote(n->text, n->len, found, sizeof(found)));
    memcpy(field(obj, d), &v, sizeof(v));
    return 0;
}

static int
set_enum(struct cfg_ctx *c, const struct fq_cfg_directive *d, void *obj,
         const struct node *n)
{
    char names[256], what[300], found[CFG_QUOTE + 8];

    join_names(d->names, names, sizeof(names));
    snprintf(what, sizeof(what), "one of %s", names);
    int rc = want_scalar(c, n, what);
    if (rc < 0)
        return rc;
    for (int i = 0; d->names && d->names[i]; i++) {
        if (text_is(n, d->names[i])) {
            memcpy(field(obj, d), &i, sizeof(i));
            return 0;
        }
    }
    return cfg_fail(c, FQ_EINVAL, n->line, "'%s' must be %s, found %s", c->path,
                    what, quote(n->text, n->len, found, sizeof(found)));
}

static int
check_length(struct cfg_ctx *c, const struct node *n, int64_t min, int64_t max)
{
    uint64_t len = n->len;

    if (memchr(n->text, '\0', n->len))
        return cfg_fail(c, FQ_EINVAL, n->line,
                        "'%s' must not contain NUL bytes", c->path);
    if (len == 0 && min > 0)
        return cfg_fail(c, FQ_EINVAL, n->line, "'%s' must not be empty",
                        c->path);
    if (len < (uint64_t)min)
        return cfg_fail(c, FQ_EINVAL, n->line,
                        "'%s' must be at least %" PRId64
                        " bytes long, found %zu",
                        c->path, min, n->len);
    if (len > (uint64_t)max)
        return cfg_fail(c, FQ_EINVAL, n->line,
                        "'%s' must be at most %" PRId64
                        " bytes long, found %zu",
                        c->path, max, n->len);
    return 0;
}

/* Relative paths are taken from the config file's directory, so a config
 * means the same thing whatever the working directory of the program.
 * Length bounds were checked on the value as written. */
static char *
join_path(struct cfg_ctx *c, const char *text)
{
    const char *base = c->base_dir;

    if (text[0] == '/' || text[0] == '\0' || !base || !base[0])
        return fq_arena_strdup(c->arena, text);
    size_t blen = strlen(base);
    const char *sep = base[blen - 1] == '/' ? "" : "/";
    return fq_arena_printf(c->arena, "%s%s%s", base, sep, text);
}

static int
set_string(struct cfg_ctx *c, const struct fq_cfg_directive *d, void *obj,
           const struct node *n)
{
    bool is_path = d->type == FQ_CFG_PATH;
    int64_t min = d->min > 0 ? d->min : 0;
    int64_t max = d->max > 0 ? d->max : FQ_CFG_STRING_MAX;
    char *s;

    int rc = want_scalar(c, n, is_path ? "a path" : "a string");
    if (rc == 0)
        rc = check_length(c, n, min, max);
    if (rc < 0)
        return rc;
    if (is_path)
        s = join_path(c, n->text);
    else
        s = fq_arena_strndup(c->arena, n->text, n->len);
    if (!s)
        return cfg_fail(c, FQ_ENOMEM, n->line, "out of memory");
    memcpy(field(obj, d), &s, sizeof(s));
    return 0;
}

/* ---- pass 2: collections ------------------------------------------------ */

static const struct node *
nth_child(const struct node *n, size_t i)
{
    const struct node *k = n->child;

    while (k && i-- > 0)
        k = k->next;
    return k;
}

/* Item count bounds; a list over its cap is reported at the first item
 * too many, which is where the reader has to cut. */
static int
check_count(struct cfg_ctx *c, const struct fq_cfg_directive *d,
            const struct node *n, size_t count)
{
    int64_t max = d->max > 0 && d->max < CFG_MAX_ITEMS ? d->max : CFG_MAX_ITEMS;

    if (count > (uint64_t)max) {
        const struct node *k = nth_child(n, (size_t)max);
        return cfg_fail(c, FQ_ETOOBIG, k ? k->line : n->line,
                        "'%s' may have at most %" PRId64 " items", c->path,
                        max);
    }
    if (d->min > 0 && count < (uint64_t)d->min)
        return cfg_fail(c, FQ_EINVAL, n->line,
                        "'%s' must have at least %" PRId64 " item%s, found %zu",
                        c->path, d->min, d->min == 1 ? "" : "s", count);
    return 0;
}

static int
strlist_item(struct cfg_ctx *c, const struct node *n, char **ret)
{
    int rc = want_scalar(c, n, "a string");

    if (rc == 0)
        rc = check_length(c, n, 0, FQ_CFG_STRING_MAX);
    if (rc < 0)
        return rc;
    *ret = fq_arena_strndup(c->arena, n->text, n->len);
    if (!*ret)
        return cfg_fail(c, FQ_ENOMEM, n->line, "out of memory");
    return 0;
}

/* A null value ("tags:" alone) is an empty list: NULL and a count of 0. */
static int
map_strlist(struct cfg_ctx *c, const struct fq_cfg_directive *d, void *obj,
            const struct node *n)
{
    bool empty = n->kind == NODE_SCALAR && n->null;
    size_t count = empty ? 0 : n->count;
    char **items = NULL;

    if (!empty && n->kind != NODE_SEQ)
        return want_type(c, n, "a sequence of strings");
    int rc = check_count(c, d, n, count);
    if (rc < 0)
        return rc;
    if (count > 0) {
        items = fq_arena_alloc(c->arena, (count + 1) * sizeof(*items));
        if (!items)
            return cfg_fail(c, FQ_ENOMEM, n->line, "out of memory");
    }
    const struct node *k = empty ? NULL : n->child;
    for (size_t i = 0; i < count && rc == 0; i++, k = k->next) {
        size_t old = path_push_index(c, i);
        rc = strlist_item(c, k, &items[i]);
        path_pop(c, old);
    }
    if (rc < 0)
        return rc;
    memcpy(field(obj, d), &items, sizeof(items));
    memcpy((char *)obj + d->count_offset, &count, sizeof(count));
    return 0;
}

static int
run_check(struct cfg_ctx *c, fq_cfg_check_fn check, void *obj, int line)
{
    struct fq_cfg_error err;

    if (!check)
        return 0;
    memset(&err, 0, sizeof(err));
    int rc = check(obj, &err);
    if (rc >= 0)
        return 0;
    err.msg[sizeof(err.msg) - 1] = '\0';
    return cfg_fail(c, rc, err.line > 0 ? err.line : line, "%s",
                    err.msg[0] ? err.msg : "invalid configuration");
}

static int
map_section(struct cfg_ctx *c, const struct fq_cfg_directive *d, void *obj,
            const struct node *n)
{
    void *sub = field(obj, d);
    int rc;

    if (n->kind == NODE_MAP)
        rc = map_mapping(c, d->sub, sub, n, n->line);
    else if (n->kind == NODE_SCALAR && n->null)
        rc = map_mapping(c, d->sub, sub, NULL, n->line);
    else
        return want_type(c, n, "a mapping");
    if (rc < 0)
        return rc;
    return run_check(c, d->check, sub, n->line);
}

static int
map_element(struct cfg_ctx *c, const struct fq_cfg_directive *d, void *elem,
            const struct node *n)
{
    if (n->kind != NODE_MAP)
        return want_type(c, n, "a mapping");
    int rc = map_mapping(c, d->sub, elem, n, n->line);
    if (rc < 0)
        return rc;
    return run_check(c, d->check, elem, n->line);
}

/* Like STRLIST, a null value is an empty list. */
static int
map_list(struct cfg_ctx *c, const struct fq_cfg_directive *d, void *obj,
         const struct node *n)
{
    bool empty = n->kind == NODE_SCALAR && n->null;
    size_t count = empty ? 0 : n->count;
    size_t esize = d->elem_size ? d->elem_size : 1;
    char *arr = NULL;

    if (!empty && n->kind != NODE_SEQ)
        return want_type(c, n, "a sequence of mappings");
    int rc = check_count(c, d, n, count);
    if (rc < 0)
        return rc;
    if (count > 0) {
        if (count > SIZE_MAX / esize ||
            !(arr = fq_arena_alloc(c->arena, count * esize)))
            return cfg_fail(c, FQ_ENOMEM, n->line, "out of memory");
    }
    const struct node *k = empty ? NULL : n->child;
    for (size_t i = 0; i < count && rc == 0; i++, k = k->next) {
        size_t old = path_push_index(c, i);
        rc = map_element(c, d, arr + i * esize, k);
        path_pop(c, old);
    }
    if (rc < 0)
        return rc;
    memcpy(field(obj, d), &arr, sizeof(arr));
    memcpy((char *)obj + d->count_offset, &count, sizeof(count));
    return 0;
}

static int
map_value(struct cfg_ctx *c, const struct fq_cfg_directive *d, void *obj,
          const struct node *n)
{
    switch (d->type) {
    case FQ_CFG_STRING:
    case FQ_CFG_PATH:
        return set_string(c, d, obj, n);
    case FQ_CFG_INT:
    case FQ_CFG_DURATION:
    case FQ_CFG_SIZE:
        return set_int64(c, d, obj, n);
    case FQ_CFG_BOOL:
        return set_bool(c, d, obj, n);
    case FQ_CFG_DOUBLE:
        return set_double(c, d, obj, n);
    case FQ_CFG_ENUM:
        return set_enum(c, d, obj, n);
    case FQ_CFG_STRLIST:
        return map_strlist(c, d, obj, n);
    case FQ_CFG_SECTION:
        return map_section(c, d, obj, n);
    case FQ_CFG_LIST:
        return map_list(c, d, obj, n);
    case FQ_CFG_END:
    case FQ_CFG_LINE:
    case FQ_CFG_INLINE:
        break;
    }
    return cfg_fail(c, FQ_EINVAL, n->line, "bad directive for '%s'", c->path);
}

/* ---- pass 2: mappings --------------------------------------------------- */

static bool
is_key(const struct fq_cfg_directive *d)
{
    return d->key && d->type != FQ_CFG_LINE && d->type != FQ_CFG_INLINE;
}

/* The directive for key k, looking through INLINE tables; *objp is moved
 * to the struct the directive's offset applies to. */
static const struct fq_cfg_directive *
find_directive(const struct fq_cfg_directive *table, const struct node *k,
               void **objp)
{
    for (const struct fq_cfg_directive *d = table; d->type != FQ_CFG_END; d++) {
        if (d->type == FQ_CFG_INLINE) {
            void *inner = field(*objp, d);
            const struct fq_cfg_directive *hit =
                find_directive(d->sub, k, &inner);
            if (hit) {
                *objp = inner;
                return hit;
            }
        } else if (is_key(d) && text_is(k, d->key)) {
            return d;
        }
    }
    return NULL;
}

/* Value of key in map, looking at pairs before stop only (NULL: all). */
static const struct node *
find_pair(const struct node *map, const char *key, size_t keylen,
          const struct node *stop)
{
    for (const struct node *k = map ? map->child : NULL; k && k->next;
         k = k->next->next) {
        if (k == stop)
            break;
        if (k->kind == NODE_SCALAR && k->len == keylen &&
            memcmp(k->text, key, keylen) == 0)
            return k->next;
    }
    return NULL;
}

static int
fail_key(struct cfg_ctx *c, const struct node *k, const char *what)
{
    char key[CFG_QUOTE + 8];

    quote(k->text, k->len, key, sizeof(key));
    if (c->path_len == 0)
        return cfg_fail(c, FQ_EINVAL, k->line, "%s %s", what, key);
    return cfg_fail(c, FQ_EINVAL, k->line, "%s %s in '%s'", what, key, c->path);
}

/* One key: value pair of user input. Known keys are unique by the time
 * we get here, so the duplicate scan stays as short as the table. */
static int
map_pair(struct cfg_ctx *c, const struct fq_cfg_directive *table, void *obj,
         const struct node *map, const struct node *k)
{
    if (k->kind != NODE_SCALAR)
        return cfg_fail(c, FQ_EINVAL, k->line, "mapping keys must be strings");
    void *target = obj;
    const struct fq_cfg_directive *d = find_directive(table, k, &target);
    if (!d)
        return fail_key(c, k, "unknown key");
    if (find_pair(map, k->text, k->len, k))
        return fail_key(c, k, "duplicate key");
    size_t old = path_push_key(c, d->key);
    int rc = map_value(c, d, target, k->next);
    path_pop(c, old);
    return rc;
}

/* Table defaults go through the same code as user input, so a default is
 * checked exactly like the value a user could have written instead. */
static int
map_default(struct cfg_ctx *c, const struct fq_cfg_directive *d, void *obj,
            int line)
{
    struct node n;

    if (d->type == FQ_CFG_STRLIST || d->type == FQ_CFG_LIST)
        return cfg_fail(c, FQ_EINVAL, line,
                        "bad table: '%s' cannot have a default", c->path);
    /* A "not given" sentinel is outside the bounds on purpose: the
     * table's check hook tells it from a value and sets the real one. */
    if ((d->flags & FQ_CFG_DEFAULT_UNSET) && d->type == FQ_CFG_INT) {
        int64_t v;
        if (parse_int64(d->def, strlen(d->def), &v) < 0)
            return cfg_fail(c, FQ_EINVAL, line, "bad default for '%s'",
                            c->path);
        memcpy(field(obj, d), &v, sizeof(v));
        return 0;
    }
    memset(&n, 0, sizeof(n));
    n.kind = NODE_SCALAR;
    n.line = line;
    n.text = d->def;
    n.len = strlen(d->def);
    c->in_default = true;
    int rc = map_value(c, d, obj, &n);
    c->in_default = false;
    return rc;
}

static int map_absent_keys(struct cfg_ctx *c,
                           const struct fq_cfg_directive *table, void *obj,
                           const struct node *map, int line);

static int
map_absent(struct cfg_ctx *c, const struct fq_cfg_directive *d, void *obj,
           const struct node *map, int line)
{
    if (d->type == FQ_CFG_INLINE)
        return map_absent_keys(c, d->sub, field(obj, d), map, line);
    if (d->type == FQ_CFG_LINE) {
        memcpy(field(obj, d), &line, sizeof(line));
        return 0;
    }
    if (!d->key)
        return 0;
    if (d->flags & FQ_CFG_REQUIRED) {
        if (c->path_len == 0)
            return cfg_fail(c, FQ_EINVAL, line, "missing required key '%s'",
                            d->key);
        return cfg_fail(c, FQ_EINVAL, line, "missing required key '%s' in '%s'",
                        d->key, c->path);
    }
    if (d->type != FQ_CFG_SECTION && !d->def)
        return 0;
    size_t old = path_push_key(c, d->key);
    int rc;
    if (d->type == FQ_CFG_SECTION) {
        /* The section's own defaults and required keys still apply. */
        rc = map_mapping(c, d->sub, field(obj, d), NULL, line);
        if (rc == 0)
            rc = run_check(c, d->check, field(obj, d), line);
    } else {
        rc = map_default(c, d, obj, line);
    }
    path_pop(c, old);
    return rc;
}

/* Maps map (NULL: absent or empty) onto obj; line is the mapping's, used
 * for LINE directives and missing keys. */
static int
map_mapping(struct cfg_ctx *c, const struct fq_cfg_directive *table, void *obj,
            const struct node *map, int line)
{
    /* A section without a sub-table takes no keys rather than any. */
    static const struct fq_cfg_directive no_keys[] = {{0}};
    int rc = 0;

    if (!table)
        table = no_keys;
    for (const struct node *k = map ? map->child : NULL; k && k->next;
         k = k->next->next) {
        rc = map_pair(c, table, obj, map, k);
        if (rc < 0)
            return rc;
    }
    return map_absent_keys(c, table, obj, map, line);
}

/* Defaults, required keys and LINE for every directive map lacks. */
static int
map_absent_keys(struct cfg_ctx *c, const struct fq_cfg_directive *table,
                void *obj, const struct node *map, int line)
{
    for (const struct fq_cfg_directive *d = table; d->type != FQ_CFG_END; d++) {
        if (is_key(d) && find_pair(map, d->key, strlen(d->key), NULL))
            continue;
        int rc = map_absent(c, d, obj, map, line);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int
map_top(struct cfg_ctx *c, const struct fq_cfg_directive *table, void *obj,
        const struct node *root, fq_cfg_check_fn top_check)
{
    bool empty = !root || (root->kind == NODE_SCALAR && root->null);
    int line = empty ? 1 : root->line;
    int rc;

    if (!empty && root->kind != NODE_MAP) {
        char found[CFG_QUOTE + 8];
        return cfg_fail(c, FQ_EINVAL, line,
                        "the top level must be a mapping, found %s",
                        describe(root, found, sizeof(found)));
    }
    rc = map_mapping(c, table, obj, empty ? NULL : root, line);
    if (rc < 0)
        return rc;
    return run_check(c, top_check, obj, line);
}

/* ---- entry points ------------------------------------------------------- */

int
fq_cfg_load_buf(const char *name, const char *base_dir, const char *data,
                size_t len, const struct fq_cfg_directive *table,
                fq_cfg_check_fn top_check, void *ret_obj,
                struct fq_arena *arena, char *errbuf, size_t errlen)
{
    struct cfg_ctx c;
    struct node *root = NULL;
    int rc;

    memset(&c, 0, sizeof(c));
    if (errbuf && errlen > 0)
        errbuf[0] = '\0';
    c.name = name ? name : "<config>";
    c.base_dir = base_dir;
    c.data = data ? data : "";
    c.len = data ? len : 0;
    c.arena = arena;
    c.errbuf = errbuf;
    c.errlen = errlen;
    if (len > FQ_CFG_MAX_BYTES) {
        rc = cfg_fail(&c, FQ_ETOOBIG, 0, "file too large (limit %d bytes)",
                      FQ_CFG_MAX_BYTES);
        goto out;
    }
    c.tmp = fq_arena_new(CFG_TMP_MAX);
    if (!c.tmp) {
        rc = cfg_fail(&c, FQ_ENOMEM, 0, "out of memory");
        goto out;
    }
    rc = parse_tree(&c, &root);
    if (rc == 0)
        rc = map_top(&c, table, ret_obj, root, top_check);
out:
    fq_arena_free(c.tmp);
    return rc;
}

int
fq_cfg_load_file(const char *path, const struct fq_cfg_directive *table,
                 fq_cfg_check_fn top_check, void *ret_obj,
                 struct fq_arena *arena, char *errbuf, size_t errlen)
{
    struct fq_buf text, dir;
    const char *slash = strrchr(path, '/');
    int rc;

    fq_buf_init(&text, FQ_CFG_MAX_BYTES);
    fq_buf_init(&dir, strlen(path) + 1);
    rc = fq_buf_read_file(&text, path);
    if (rc == FQ_ETOOBIG && errbuf && errlen > 0)
        snprintf(errbuf, errlen, "%s: file too large (limit %d bytes)", path,
                 FQ_CFG_MAX_BYTES);
    else if (rc < 0 && errbuf && errlen > 0)
        snprintf(errbuf, errlen, "%s: cannot read: %s", path, fq_strerror(rc));
    if (rc < 0)
        goto out;
    /* "/x.yaml" lives in "/"; a bare "x.yaml" in the working directory,
     * which is what leaving relative paths alone means. */
    if (slash)
        rc = fq_buf_append(&dir, path,
                           slash == path ? 1 : (size_t)(slash - path));
    if (rc < 0)
        goto out;
    rc = fq_cfg_load_buf(path, slash ? fq_buf_str(&dir) : NULL,
                         fq_buf_str(&text), fq_buf_len(&text), table, top_check,
                         ret_obj, arena, errbuf, errlen);
out:
    fq_buf_release(&text);
    fq_buf_release(&dir);
    return rc;
}

/* ---- reference ---------------------------------------------------------- */

/* A Markdown cell: pipes escaped, newlines flattened. */
static void
put_cell(FILE *out, const char *s)
{
    fputs(" ", out);
    for (; s && *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else
            fputc(*s == '\n' ? ' ' : *s, out);
    }
    fputs(" |", out);
}

/* "1..64", "min 1" or "max 64"; empty when unbounded. */
static void
range_short(int64_t min, int64_t max, fmt_fn fmt, char *buf, size_t len)
{
    char lo[32], hi[32];

    fmt(min, lo, sizeof(lo));
    fmt(max, hi, sizeof(hi));
    if (min == 0 && max == 0)
        buf[0] = '\0';
    else if (max == INT64_MAX)
        snprintf(buf, len, " (min %s)", lo);
    else if (min == INT64_MIN)
        snprintf(buf, len, " (max %s)", hi);
    else
        snprintf(buf, len, " (%s..%s)", lo, hi);
}

static void
ref_count(const struct fq_cfg_directive *d, const char *what, char *buf,
          size_t len)
{
    if (d->min > 0 && d->max > 0)
        snprintf(buf, len, "%s (%" PRId64 "..%" PRId64 " items)", what, d->min,
                 d->max);
    else if (d->max > 0)
        snprintf(buf, len, "%s (max %" PRId64 " items)", what, d->max);
    else if (d->min > 0)
        snprintf(buf, len, "%s (min %" PRId64 " items)", what, d->min);
    else
        snprintf(buf, len, "%s", what);
}

static void
ref_type(const struct fq_cfg_directive *d, char *buf, size_t len)
{
    char r[80], names[256];
    int64_t max = d->max > 0 ? d->max : FQ_CFG_STRING_MAX;

    switch (d->type) {
    case FQ_CFG_STRING:
    case FQ_CFG_PATH:
        r[0] = '\0';
        if (d->min > 0 || d->max > 0)
            snprintf(r, sizeof(r), " (%" PRId64 "..%" PRId64 " bytes)",
                     d->min > 0 ? d->min : 0, max);
        snprintf(buf, len, "%s%s", d->type == FQ_CFG_PATH ? "path" : "string",
                 r);
        return;
    case FQ_CFG_INT:
    case FQ_CFG_DURATION:
    case FQ_CFG_SIZE:
        range_short(d->min, d->max,
                    d->type == FQ_CFG_INT        ? fmt_plain
                    : d->type == FQ_CFG_DURATION ? fmt_duration
                                                 : fmt_size,
                    r, sizeof(r));
        snprintf(buf, len, "%s%s",
                 d->type == FQ_CFG_INT        ? "integer"
                 : d->type == FQ_CFG_DURATION ? "duration"
                                              : "size",
                 r);
        return;
    case FQ_CFG_BOOL:
        snprintf(buf, len, "boolean");
        return;
    case FQ_CFG_DOUBLE:
        snprintf(buf, len, "decimal (%g..%g)", d->dmin, d->dmax);
        return;
    case FQ_CFG_ENUM:
        snprintf(buf, len, "one of %s",
                 join_names(d->names, names, sizeof(names)));
        return;
    case FQ_CFG_STRLIST:
        ref_count(d, "list of strings", buf, len);
        return;
    case FQ_CFG_LIST:
        ref_count(d, "list of mappings", buf, len);
        return;
    case FQ_CFG_SECTION:
        snprintf(buf, len, "mapping");
        return;
    case FQ_CFG_END:
    case FQ_CFG_LINE:
    case FQ_CFG_INLINE:
        break;
    }
    buf[0] = '\0';
}

static void
ref_row(FILE *out, const char *path, const struct fq_cfg_directive *d)
{
    char type[400];
    char def[CFG_PATH_MAX];

    ref_type(d, type, sizeof(type));
    def[0] = '\0';
    if (d->def && !(d->flags & FQ_CFG_DEFAULT_UNSET))
        snprintf(def, sizeof(def), "`%s`", d->def);
    fputs("|", out);
    put_cell(out, path);
    put_cell(out, type);
    put_cell(out, def);
    put_cell(out, d->flags & FQ_CFG_REQUIRED ? "yes" : "no");
    put_cell(out, d->doc);
    fputs("\n", out);
}

/* Rows for a table, then its SECTION and LIST sub-tables under their
 * dotted path ("tls.ca", "datasets[].name"). */
static void
ref_table(FILE *out, const char *prefix, const struct fq_cfg_directive *table,
          int depth)
{
    char path[CFG_PATH_MAX];

    if (!table || depth > FQ_CFG_MAX_DEPTH)
        return; /* a table that contains itself would never end */
    for (const struct fq_cfg_directive *d = table; d->type != FQ_CFG_END; d++) {
        if (d->type == FQ_CFG_INLINE)
            ref_table(out, prefix, d->sub, depth + 1);
        if (!is_key(d))
            continue;
        snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] ? "." : "",
                 d->key);
        ref_row(out, path, d);
        if (d->type == FQ_CFG_SECTION)
            ref_table(out, path, d->sub, depth + 1);
        if (d->type == FQ_CFG_LIST) {
            size_t n = strlen(path);
            snprintf(path + n, sizeof(path) - n, "[]");
            ref_table(out, path, d->sub, depth + 1);
        }
    }
}

void
fq_cfg_write_reference(FILE *out, const char *title,
                       const struct fq_cfg_directive *table)
{
    fprintf(out, "## %s\n\n", title);
    fputs("| key | type | default | required | description |\n", out);
    fputs("|-----|------|---------|----------|-------------|\n", out);
    ref_table(out, "", table, 0);
    fputs("\n", out);
}
