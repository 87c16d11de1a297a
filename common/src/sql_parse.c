/*
 * fedq SQL parser and formatter (grammar, tree and limits in fq/sql.h).
 *
 * The parser is recursive descent over the tokens of sql_lex.c with one
 * token of lookahead, one function per rule; it stops at the first error
 * and words it "expected X, found Y" at the offending token. WHERE is
 * parsed as an expression tree, not a list: parse_expr is the entry for
 * a (sub)expression and counts nesting, parse_and builds one AND node per
 * chain, and the leaves are the column tests. OR (a level above AND), NOT
 * and parenthesised subexpressions (beside the leaves) slot in there.
 *
 * Every list (select items, IN values, AND operands, GROUP BY columns)
 * goes through parse_list, which also enforces its limit. Elements are
 * collected on a malloc'd scratch stack and copied into the arena once the
 * list ends, so the arena holds exact-size arrays and parsing any input
 * stays within FQ_SQL_PARSE_MEMORY_MAX. Nested lists stack on top of each
 * other.
 *
 * The formatter writes the canonical text back; its output parses to a
 * tree that formats to the same text, which the unit tests and the fuzz
 * target check.
 */
#include "fq/compat.h"
#include "fq/sql.h"
#include "fq/buf.h"
#include "fq/error.h"

#include <locale.h>
#include <math.h>

#define STR_(x) #x
#define STR(x)  STR_(x)

/* Canonical text of any parsed query is under 2x its 64 KiB source. */
#define FORMAT_MAX (1024 * 1024)

_Static_assert(sizeof(long long) == sizeof(int64_t), "strtoll is int64");

struct parser {
    struct fq_sql_lexer lx;
    struct fq_sql_token tok;   /* the current token */
    struct fq_sql_token ahead; /* the one after it, when have_ahead */
    bool have_ahead;
    struct fq_arena *arena;
    struct fq_sql_error *err;
    unsigned char *stack; /* scratch for lists being built */
    size_t stack_len;
    size_t stack_cap;
    size_t n_preds; /* leaves so far, for FQ_SQL_MAX_PREDS */
    int depth;      /* parse_expr nesting, for FQ_SQL_MAX_DEPTH */
};

/* ---- errors and tokens --------------------------------------------------- */

static int fail(struct parser *p, struct fq_sql_pos pos, const char *fmt, ...)
    FQ_PRINTF(3, 4);

static int
fail(struct parser *p, struct fq_sql_pos pos, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(p->err->msg, sizeof(p->err->msg),
                     "line %d, column %d: ", pos.line, pos.column);

    va_start(ap, fmt);
    vsnprintf(p->err->msg + n, sizeof(p->err->msg) - (size_t)n, fmt, ap);
    va_end(ap);
    p->err->pos = pos;
    return FQ_EINVAL;
}

/* "expected WHAT, found <the current token>". */
static int
expected(struct parser *p, const char *what)
{
    char found[160];

    fq_sql_token_describe(&p->tok, found, sizeof(found));
    return fail(p, p->tok.pos, "expected %s, found %s", what, found);
}

static int
oom(struct parser *p)
{
    p->err->pos = p->tok.pos;
    snprintf(p->err->msg, sizeof(p->err->msg), "out of memory");
    return FQ_ENOMEM;
}

static int
next(struct parser *p)
{
    if (p->have_ahead) {
        p->tok = p->ahead;
        p->have_ahead = false;
        return 0;
    }
    return fq_sql_lex_next(&p->lx, &p->tok, p->err);
}

/* The token after the current one, read once and kept. */
static int
peek(struct parser *p, enum fq_sql_tok *ret_kind)
{
    if (!p->have_ahead) {
        int rc = fq_sql_lex_next(&p->lx, &p->ahead, p->err);
        if (rc < 0)
            return rc;
        p->have_ahead = true;
    }
    *ret_kind = p->ahead.kind;
    return 0;
}

/* Consumes a token of the given kind, or fails naming what was wanted. */
static int
expect(struct parser *p, enum fq_sql_tok kind, const char *what)
{
    if (p->tok.kind != kind)
        return expected(p, what);
    return next(p);
}

/* Case-insensitive match of the current token's text against a word. */
static bool
tok_is_word(const struct fq_sql_token *t, const char *word)
{
    size_t i = 0;

    for (; i < t->len && word[i]; i++) {
        int c = (unsigned char)t->text[i];
        if ((c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c) != word[i])
            return false;
    }
    return i == t->len && !word[i];
}

/* ---- lists ----------------------------------------------------------------
 */

static int
push(struct parser *p, const void *elem, size_t size)
{
    if (size > p->stack_cap - p->stack_len) {
        size_t cap = p->stack_cap ? p->stack_cap * 2 : 4096;
        while (cap - p->stack_len < size)
            cap *= 2;
        unsigned char *s = realloc(p->stack, cap);
        if (!s)
            return oom(p);
        p->stack = s;
        p->stack_cap = cap;
    }
    memcpy(p->stack + p->stack_len, elem, size);
    p->stack_len += size;
    return 0;
}

/* Moves what was pushed since base into an arena array of its own. */
static int
pop_to_arena(struct parser *p, size_t base, void **ret)
{
    size_t size = p->stack_len - base;
    void *a = fq_arena_alloc(p->arena, size);

    if (!a)
        return oom(p);
    memcpy(a, p->stack + base, size);
    p->stack_len = base;
    *ret = a;
    return 0;
}

union list_elem {
    struct fq_sql_item item;
    struct fq_sql_literal lit;
    struct fq_sql_name name;
    struct fq_sql_pred *pred;
};

/*
 * ELEM (SEP ELEM)*: at most max elements (0: no limit here), else fails
 * with too_many at the first token of the one past the limit.
 */
struct list_rule {
    enum fq_sql_tok sep;
    size_t max;
    const char *too_many;
    size_t size;
    int (*parse)(struct parser *p, union list_elem *ret);
};

static int
parse_list(struct parser *p, const struct list_rule *r, void **ret,
           size_t *ret_n)
{
    size_t base = p->stack_len, n = 0;
    union list_elem e;
    int rc;

    for (;;) {
        if (r->max && n == r->max)
            return fail(p, p->tok.pos, "%s", r->too_many);
        memset(&e, 0, sizeof(e));
        rc = r->parse(p, &e);
        if (rc == 0)
            rc = push(p, &e, r->size);
        if (rc < 0)
            return rc;
        n++;
        if (p->tok.kind != r->sep)
            break;
        rc = next(p);
        if (rc < 0)
            return rc;
    }
    *ret_n = n;
    return pop_to_arena(p, base, ret);
}

/* ---- names and literals ---------------------------------------------------
 */

static int
parse_name(struct parser *p, const char *what, struct fq_sql_name *ret)
{
    if (p->tok.kind != FQ_SQL_TOK_IDENT)
        return expected(p, what);
    ret->pos = p->tok.pos;
    ret->name = fq_arena_strndup(p->arena, p->tok.text, p->tok.len);
    if (!ret->name)
        return oom(p);
    return next(p);
}

static int
parse_column(struct parser *p, union list_elem *ret)
{
    return parse_name(p, "a column name", &ret->name);
}

static int
convert_int(struct parser *p, struct fq_sql_literal *l)
{
    errno = 0;
    long long v = strtoll(l->text, NULL, 10);
    if (errno == ERANGE)
        return fail(p, l->pos, "integer literal out of range");
    l->i = v;
    return 0;
}

/*
 * strtod follows LC_NUMERIC, which a program may set; the grammar's '.' is
 * the C locale's. glibc hands out its static C locale here, no allocation.
 */
static int
convert_decimal(struct parser *p, struct fq_sql_literal *l)
{
    locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);

    if (!c)
        return oom(p);
    l->d = strtod_l(l->text, NULL, c);
    freelocale(c);
    if (isinf(l->d))
        return fail(p, l->pos, "decimal literal out of range");
    return 0;
}

/* Drops the outer quotes and turns each '' into '. */
static int
decode_string(struct parser *p, struct fq_sql_literal *l)
{
    size_t len = strlen(l->text) - 2, n = 0;
    char *s = fq_arena_alloc(p->arena, len + 1);

    if (!s)
        return oom(p);
    for (size_t i = 1; i <= len; i++) {
        s[n++] = l->text[i];
        if (l->text[i] == '\'')
            i++;
    }
    s[n] = '\0';
    l->s = s;
    return 0;
}

static int
parse_literal(struct parser *p, struct fq_sql_literal *l)
{
    int rc;

    if (p->tok.kind != FQ_SQL_TOK_INT && p->tok.kind != FQ_SQL_TOK_DECIMAL &&
        p->tok.kind != FQ_SQL_TOK_STRING)
        return expected(p, "a literal");
    l->pos = p->tok.pos;
    l->text = fq_arena_strndup(p->arena, p->tok.text, p->tok.len);
    if (!l->text)
        return oom(p);
    if (p->tok.kind == FQ_SQL_TOK_INT) {
        l->kind = FQ_SQL_LIT_INT;
        rc = convert_int(p, l);
    } else if (p->tok.kind == FQ_SQL_TOK_DECIMAL) {
        l->kind = FQ_SQL_LIT_DECIMAL;
        rc = convert_decimal(p, l);
    } else {
        l->kind = FQ_SQL_LIT_STRING;
        rc = decode_string(p, l);
    }
    return rc < 0 ? rc : next(p);
}

static int
parse_in_value(struct parser *p, union list_elem *ret)
{
    return parse_literal(p, &ret->lit);
}

/* ---- WHERE ----------------------------------------------------------------
 */

static const struct list_rule in_rule = {
    .sep = FQ_SQL_TOK_COMMA,
    .max = FQ_SQL_MAX_IN,
    .too_many = "more than " STR(FQ_SQL_MAX_IN) " values in an IN list",
    .size = sizeof(struct fq_sql_literal),
    .parse = parse_in_value,
};

/* lits[0 .. n) of a leaf, each parsed from the token stream. */
static int
alloc_lits(struct parser *p, struct fq_sql_pred *pr, size_t n)
{
    pr->lits = fq_arena_alloc(p->arena, n * sizeof(*pr->lits));
    if (!pr->lits)
        return oom(p);
    pr->n_lits = n;
    return 0;
}

static int
parse_cmp(struct parser *p, struct fq_sql_pred *pr, enum fq_sql_cmp op)
{
    pr->kind = FQ_SQL_PRED_CMP;
    pr->op = op;
    int rc = alloc_lits(p, pr, 1);
    if (rc == 0)
        rc = next(p);
    if (rc == 0)
        rc = parse_literal(p, &pr->lits[0]);
    return rc;
}

static int
parse_between(struct parser *p, struct fq_sql_pred *pr)
{
    pr->kind = FQ_SQL_PRED_BETWEEN;
    int rc = alloc_lits(p, pr, 2);
    if (rc == 0)
        rc = next(p);
    if (rc == 0)
        rc = parse_literal(p, &pr->lits[0]);
    if (rc == 0)
        rc = expect(p, FQ_SQL_TOK_AND, "AND");
    if (rc == 0)
        rc = parse_literal(p, &pr->lits[1]);
    return rc;
}

static int
parse_in(struct parser *p, struct fq_sql_pred *pr)
{
    void *lits = NULL;

    pr->kind = FQ_SQL_PRED_IN;
    int rc = next(p);
    if (rc == 0)
        rc = expect(p, FQ_SQL_TOK_LPAREN, "'('");
    if (rc == 0)
        rc = parse_list(p, &in_rule, &lits, &pr->n_lits);
    pr->lits = lits;
    if (rc == 0)
        rc = expect(p, FQ_SQL_TOK_RPAREN, "',' or ')'");
    return rc;
}

/* column op literal | column BETWEEN a AND b | column IN (a, ...) */
static int
parse_leaf(struct parser *p, union list_elem *ret)
{
    if (p->n_preds == FQ_SQL_MAX_PREDS)
        return fail(p, p->tok.pos,
                    "more than " STR(FQ_SQL_MAX_PREDS) " predicates");
    p->n_preds++;
    struct fq_sql_pred *pr = fq_arena_alloc(p->arena, sizeof(*pr));
    if (!pr)
        return oom(p);
    ret->pred = pr;
    pr->pos = p->tok.pos;
    int rc = parse_name(p, "a column name", &pr->column);
    if (rc < 0)
        return rc;
    switch (p->tok.kind) {
    case FQ_SQL_TOK_EQ:
        return parse_cmp(p, pr, FQ_SQL_EQ);
    case FQ_SQL_TOK_NE:
        return parse_cmp(p, pr, FQ_SQL_NE);
    case FQ_SQL_TOK_LT:
        return parse_cmp(p, pr, FQ_SQL_LT);
    case FQ_SQL_TOK_LE:
        return parse_cmp(p, pr, FQ_SQL_LE);
    case FQ_SQL_TOK_GT:
        return parse_cmp(p, pr, FQ_SQL_GT);
    case FQ_SQL_TOK_GE:
        return parse_cmp(p, pr, FQ_SQL_GE);
    case FQ_SQL_TOK_BETWEEN:
        return parse_between(p, pr);
    case FQ_SQL_TOK_IN:
        return parse_in(p, pr);
    default:
        return expected(p, "a comparison operator, BETWEEN or IN");
    }
}

/*
 * The operands of AND are leaves for now; NOT and '(' expr ')' will be
 * parsed by a function between the two that also calls parse_expr.
 */
static const struct list_rule and_rule = {
    .sep = FQ_SQL_TOK_AND,
    .size = sizeof(struct fq_sql_pred *),
    .parse = parse_leaf,
};

/* One operand is returned as itself; two or more make one AND node. */
static int
parse_and(struct parser *p, struct fq_sql_pred **ret)
{
    struct fq_sql_pos pos = p->tok.pos;
    void *kids = NULL;
    size_t n = 0;

    int rc = parse_list(p, &and_rule, &kids, &n);
    if (rc < 0)
        return rc;
    if (n == 1) {
        *ret = *(struct fq_sql_pred **)kids;
        return 0;
    }
    struct fq_sql_pred *node = fq_arena_alloc(p->arena, sizeof(*node));
    if (!node)
        return oom(p);
    node->kind = FQ_SQL_PRED_AND;
    node->pos = pos;
    node->kids = kids;
    node->n_kids = n;
    *ret = node;
    return 0;
}

/* A whole (sub)expression; OR will be parsed here, above AND. */
static int
parse_expr(struct parser *p, struct fq_sql_pred **ret)
{
    if (p->depth == FQ_SQL_MAX_DEPTH)
        return fail(
            p, p->tok.pos,
            "expression nested deeper than " STR(FQ_SQL_MAX_DEPTH) " levels");
    p->depth++;
    int rc = parse_and(p, ret);
    p->depth--;
    return rc;
}

/* ---- SELECT, FROM, GROUP BY -----------------------------------------------
 */

enum agg_arg {
    ARG_STAR,
    ARG_COLUMN,
};

/* New aggregates are rows here (and a case in the argument switch). */
static const struct agg_rule {
    const char *name;
    enum fq_sql_agg agg;
    enum agg_arg arg;
} agg_rules[] = {
    {"COUNT", FQ_SQL_AGG_COUNT_STAR, ARG_STAR},
    {"SUM", FQ_SQL_AGG_SUM, ARG_COLUMN},
    {"AVG", FQ_SQL_AGG_AVG, ARG_COLUMN},
};

/* NAME '(' argument ')', the current token being NAME. */
static int
parse_aggregate(struct parser *p, struct fq_sql_item *it)
{
    const struct agg_rule *r = NULL;

    for (size_t i = 0; i < FQ_ARRAY_LEN(agg_rules) && !r; i++) {
        if (tok_is_word(&p->tok, agg_rules[i].name))
            r = &agg_rules[i];
    }
    if (!r)
        return expected(p, "COUNT, SUM or AVG");
    it->is_aggregate = true;
    it->agg = r->agg;
    int rc = next(p);
    if (rc == 0)
        rc = next(p); /* the '(' seen by peek */
    if (rc == 0 && r->arg == ARG_STAR)
        rc = expect(p, FQ_SQL_TOK_STAR, "'*'");
    else if (rc == 0)
        rc = parse_name(p, "a column name", &it->column);
    if (rc == 0)
        rc = expect(p, FQ_SQL_TOK_RPAREN, "')'");
    return rc;
}

/* An aggregate is a name followed by '('; any other name is a column. */
static int
parse_item(struct parser *p, union list_elem *ret)
{
    struct fq_sql_item *it = &ret->item;
    enum fq_sql_tok after;

    if (p->tok.kind != FQ_SQL_TOK_IDENT)
        return expected(p, "an aggregate or a column name");
    it->pos = p->tok.pos;
    int rc = peek(p, &after);
    if (rc < 0)
        return rc;
    if (after == FQ_SQL_TOK_LPAREN)
        return parse_aggregate(p, it);
    return parse_name(p, "a column name", &it->column);
}

static const struct list_rule item_rule = {
    .sep = FQ_SQL_TOK_COMMA,
    .max = FQ_SQL_MAX_ITEMS,
    .too_many = "more than " STR(FQ_SQL_MAX_ITEMS) " select items",
    .size = sizeof(struct fq_sql_item),
    .parse = parse_item,
};

static const struct list_rule group_rule = {
    .sep = FQ_SQL_TOK_COMMA,
    .max = FQ_SQL_MAX_GROUP_BY,
    .too_many = "more than " STR(FQ_SQL_MAX_GROUP_BY) " GROUP BY columns",
    .size = sizeof(struct fq_sql_name),
    .parse = parse_column,
};

/* FROM source '.' dataset */
static int
parse_from(struct parser *p, struct fq_sql_query *q)
{
    int rc = expect(p, FQ_SQL_TOK_FROM, "',' or FROM");
    if (rc == 0)
        rc = parse_name(p, "an agency or alias name", &q->source);
    if (rc == 0)
        rc = expect(p, FQ_SQL_TOK_DOT, "'.' after the agency or alias");
    if (rc == 0)
        rc = parse_name(p, "a dataset name", &q->dataset);
    return rc;
}

/*
 * What may follow changes as clauses are read, so the message at the end
 * names exactly the clauses still possible there.
 */
static int
parse_query(struct parser *p, struct fq_sql_query *q)
{
    const char *more = "WHERE, GROUP BY or end of input";
    void *items = NULL, *group = NULL;

    int rc = expect(p, FQ_SQL_TOK_SELECT, "SELECT");
    if (rc == 0)
        rc = parse_list(p, &item_rule, &items, &q->n_items);
    q->items = items;
    if (rc == 0)
        rc = parse_from(p, q);
    if (rc == 0 && p->tok.kind == FQ_SQL_TOK_WHERE) {
        more = "AND, GROUP BY or end of input";
        rc = next(p);
        if (rc == 0)
            rc = parse_expr(p, &q->where);
    }
    if (rc == 0 && p->tok.kind == FQ_SQL_TOK_GROUP) {
        more = "',' or end of input";
        rc = next(p);
        if (rc == 0)
            rc = expect(p, FQ_SQL_TOK_BY, "BY");
        if (rc == 0)
            rc = parse_list(p, &group_rule, &group, &q->n_group_by);
        q->group_by = group;
    }
    if (rc == 0 && p->tok.kind == FQ_SQL_TOK_SEMI) {
        more = "end of input";
        rc = next(p);
    }
    if (rc == 0 && p->tok.kind != FQ_SQL_TOK_END)
        rc = expected(p, more);
    return rc;
}

/* Before lexing: the lexer relies on text holding no NUL. */
static int
check_nul(struct parser *p, const char *text, size_t len)
{
    const char *nul = len ? memchr(text, '\0', len) : NULL;
    struct fq_sql_pos pos = {1, 1};

    if (!nul)
        return 0;
    for (const char *c = text; c < nul; c++) {
        pos.line += *c == '\n';
        pos.column = *c == '\n' ? 1 : pos.column + 1;
    }
    return fail(p, pos, "NUL byte in query");
}

int
fq_sql_parse(const char *text, size_t len, struct fq_arena *arena,
             struct fq_sql_query **ret, struct fq_sql_error *err)
{
    struct parser p;
    struct fq_sql_error e;
    struct fq_sql_query *q = NULL;
    int rc;

    memset(&p, 0, sizeof(p));
    memset(&e, 0, sizeof(e));
    p.arena = arena;
    p.err = &e;
    if (len > FQ_SQL_MAX_TEXT) {
        e.pos = (struct fq_sql_pos){1, 1};
        snprintf(e.msg, sizeof(e.msg),
                 "query is longer than " STR(FQ_SQL_MAX_TEXT) " bytes");
        rc = FQ_EINVAL;
        goto out;
    }
    rc = check_nul(&p, text, len);
    if (rc < 0)
        goto out;
    fq_sql_lex_init(&p.lx, text, len);
    q = fq_arena_alloc(arena, sizeof(*q));
    rc = q ? next(&p) : oom(&p);
    if (rc == 0)
        rc = parse_query(&p, q);
out:
    free(p.stack);
    if (rc == 0)
        *ret = q;
    else if (err)
        *err = e;
    return rc;
}

/* ---- formatting -----------------------------------------------------------
 */

const char *
fq_sql_agg_name(enum fq_sql_agg agg)
{
    switch (agg) {
    case FQ_SQL_AGG_COUNT_STAR:
        return "COUNT";
    case FQ_SQL_AGG_SUM:
        return "SUM";
    case FQ_SQL_AGG_AVG:
        return "AVG";
    }
    return "?";
}

const char *
fq_sql_cmp_name(enum fq_sql_cmp op)
{
    switch (op) {
    case FQ_SQL_EQ:
        return "=";
    case FQ_SQL_NE:
        return "<>";
    case FQ_SQL_LT:
        return "<";
    case FQ_SQL_LE:
        return "<=";
    case FQ_SQL_GT:
        return ">";
    case FQ_SQL_GE:
        return ">=";
    }
    return "?";
}

/* Output with a sticky error: after a failed append the rest are skipped. */
struct writer {
    struct fq_buf buf;
    int rc;
};

static void
put(struct writer *w, const char *s, size_t len)
{
    if (w->rc == 0)
        w->rc = fq_buf_append(&w->buf, s, len);
}

static void
puts_(struct writer *w, const char *s)
{
    put(w, s, strlen(s));
}

/* Quoted, each ' doubled. */
static void
fmt_string(struct writer *w, const char *s)
{
    puts_(w, "'");
    for (const char *q; (q = strchr(s, '\'')); s = q + 1) {
        put(w, s, (size_t)(q - s));
        puts_(w, "''");
    }
    puts_(w, s);
    puts_(w, "'");
}

static void
fmt_literal(struct writer *w, const struct fq_sql_literal *l)
{
    char num[24];

    switch (l->kind) {
    case FQ_SQL_LIT_INT:
        snprintf(num, sizeof(num), "%" PRId64, l->i);
        puts_(w, num);
        break;
    case FQ_SQL_LIT_DECIMAL:
        puts_(w, l->text);
        break;
    case FQ_SQL_LIT_STRING:
        fmt_string(w, l->s);
        break;
    }
}

static void
fmt_pred(struct writer *w, const struct fq_sql_pred *pr)
{
    if (pr->kind == FQ_SQL_PRED_AND) {
        /* With OR, a kid of lower precedence gets parentheses here. */
        for (size_t i = 0; i < pr->n_kids; i++) {
            puts_(w, i ? " AND " : "");
            fmt_pred(w, pr->kids[i]);
        }
        return;
    }
    puts_(w, pr->column.name);
    switch (pr->kind) {
    case FQ_SQL_PRED_CMP:
        puts_(w, " ");
        puts_(w, fq_sql_cmp_name(pr->op));
        puts_(w, " ");
        fmt_literal(w, &pr->lits[0]);
        break;
    case FQ_SQL_PRED_BETWEEN:
        puts_(w, " BETWEEN ");
        fmt_literal(w, &pr->lits[0]);
        puts_(w, " AND ");
        fmt_literal(w, &pr->lits[1]);
        break;
    case FQ_SQL_PRED_IN:
        puts_(w, " IN (");
        for (size_t i = 0; i < pr->n_lits; i++) {
            puts_(w, i ? ", " : "");
            fmt_literal(w, &pr->lits[i]);
        }
        puts_(w, ")");
        break;
    case FQ_SQL_PRED_AND:
        break;
    }
}

static void
fmt_item(struct writer *w, const struct fq_sql_item *it)
{
    if (!it->is_aggregate) {
        puts_(w, it->column.name);
        return;
    }
    puts_(w, fq_sql_agg_name(it->agg));
    puts_(w, "(");
    puts_(w, it->column.name ? it->column.name : "*");
    puts_(w, ")");
}

static void
fmt_query(struct writer *w, const struct fq_sql_query *q)
{
    puts_(w, "SELECT ");
    for (size_t i = 0; i < q->n_items; i++) {
        puts_(w, i ? ", " : "");
        fmt_item(w, &q->items[i]);
    }
    puts_(w, " FROM ");
    puts_(w, q->source.name);
    puts_(w, ".");
    puts_(w, q->dataset.name);
    if (q->where) {
        puts_(w, " WHERE ");
        fmt_pred(w, q->where);
    }
    for (size_t i = 0; i < q->n_group_by; i++) {
        puts_(w, i ? ", " : " GROUP BY ");
        puts_(w, q->group_by[i].name);
    }
}

char *
fq_sql_format(const struct fq_sql_query *q, struct fq_arena *arena)
{
    struct writer w = {.rc = 0};
    char *out = NULL;

    fq_buf_init(&w.buf, FORMAT_MAX);
    fmt_query(&w, q);
    if (w.rc == 0)
        out = fq_arena_strndup(arena, fq_buf_str(&w.buf), fq_buf_len(&w.buf));
    fq_buf_release(&w.buf);
    return out;
}
