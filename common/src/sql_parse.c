/*
 * fedq SQL parser and formatter (grammar, tree and limits in fq/sql.h).
 *
 * The parser is recursive descent over the tokens of sql_lex.c with one
 * token of lookahead, one function per rule; it stops at the first error
 * and words it "expected X, found Y" at the offending token. WHERE is an
 * expression tree: parse_chain builds one OR node per OR chain and one AND
 * node per AND chain (a parenthesised chain of the same kind joins its
 * parent, so the tree is flat whatever the parentheses), parse_unary
 * handles NOT and '(' expr ')' and counts their nesting, and the leaves
 * are the column tests. The optional clauses after FROM are rows of a
 * table, read in order. ORDER BY keys are resolved to select items here,
 * so the planner sees indexes, not names.
 *
 * Every list (select items, IN values, histogram edges, GROUP BY columns,
 * ORDER BY keys) goes through parse_list, which also enforces its limit;
 * AND and OR chains use the same scratch stack. Elements are
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

/*
 * Canonical text of any parsed query is under 2x its 64 KiB source, plus
 * up to 16 more copies of a select item (itself under 2x the source) for
 * ORDER BY keys written by position: under 34 x 64 KiB.
 */
#define FORMAT_MAX (4 * 1024 * 1024)

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
    int depth;      /* '(' and NOT nesting, for FQ_SQL_MAX_DEPTH */
    /* The histogram edge before the one being parsed, when have_edge. */
    struct fq_sql_literal edge;
    bool have_edge;
    const struct fq_sql_query *query; /* its items, for ORDER BY */
};

/* Output with a sticky error: after a failed append the rest are skipped. */
struct writer {
    struct fq_buf buf;
    int rc;
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

/* "expected WHAT, found <t>", at t. */
static int
expected_at(struct parser *p, const struct fq_sql_token *t, const char *what)
{
    char found[160];

    fq_sql_token_describe(t, found, sizeof(found));
    return fail(p, t->pos, "expected %s, found %s", what, found);
}

/* "expected WHAT, found <the current token>". */
static int
expected(struct parser *p, const char *what)
{
    return expected_at(p, &p->tok, what);
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
    struct fq_sql_order order;
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

/* The text between the outer quotes, each doubled quote made one. */
static char *
unquote(struct parser *p, const char *text, size_t len)
{
    char *s = fq_arena_alloc(p->arena, len - 1);
    size_t n = 0;

    if (!s)
        return NULL;
    for (size_t i = 1; i + 1 < len; i++) {
        s[n++] = text[i];
        if (text[i] == text[0])
            i++;
    }
    s[n] = '\0';
    return s;
}

/* A plain or quoted identifier; what it must be is in the message. */
static int
parse_name(struct parser *p, const char *what, struct fq_sql_name *ret)
{
    if (p->tok.kind == FQ_SQL_TOK_IDENT)
        ret->name = fq_arena_strndup(p->arena, p->tok.text, p->tok.len);
    else if (p->tok.kind == FQ_SQL_TOK_QUOTED)
        ret->name = unquote(p, p->tok.text, p->tok.len);
    else
        return expected(p, what);
    if (!ret->name)
        return oom(p);
    ret->pos = p->tok.pos;
    return next(p);
}

static bool
is_name(enum fq_sql_tok kind)
{
    return kind == FQ_SQL_TOK_IDENT || kind == FQ_SQL_TOK_QUOTED;
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

static int
decode_string(struct parser *p, struct fq_sql_literal *l)
{
    l->s = unquote(p, l->text, strlen(l->text));
    return l->s ? 0 : oom(p);
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

static struct fq_sql_pred *
new_pred(struct parser *p, enum fq_sql_pred_kind kind, struct fq_sql_pos pos)
{
    struct fq_sql_pred *pr = fq_arena_alloc(p->arena, sizeof(*pr));

    if (pr) {
        pr->kind = kind;
        pr->pos = pos;
    }
    return pr;
}

/*
 * One more level of '(' or NOT, entered at the current token: the token
 * where the limit is crossed is where the error points.
 */
static int
enter(struct parser *p)
{
    if (p->depth == FQ_SQL_MAX_DEPTH)
        return fail(
            p, p->tok.pos,
            "expression nested deeper than " STR(FQ_SQL_MAX_DEPTH) " levels");
    p->depth++;
    return 0;
}

/* A NOT node at pos over kid, returned in *ret. */
static int
wrap_not(struct parser *p, struct fq_sql_pos pos, struct fq_sql_pred *kid,
         struct fq_sql_pred **ret)
{
    struct fq_sql_pred *node = new_pred(p, FQ_SQL_PRED_NOT, pos);

    if (!node)
        return oom(p);
    node->kids = fq_arena_alloc(p->arena, sizeof(*node->kids));
    if (!node->kids)
        return oom(p);
    node->kids[0] = kid;
    node->n_kids = 1;
    *ret = node;
    return 0;
}

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

/* IS NULL | IS NOT NULL, the current token being IS. */
static int
parse_is_null(struct parser *p, struct fq_sql_pred *pr)
{
    pr->kind = FQ_SQL_PRED_IS_NULL;
    int rc = next(p);
    if (rc == 0 && p->tok.kind == FQ_SQL_TOK_NOT) {
        pr->negated = true;
        rc = next(p);
        return rc < 0 ? rc : expect(p, FQ_SQL_TOK_NULL, "NULL");
    }
    return rc < 0 ? rc : expect(p, FQ_SQL_TOK_NULL, "NOT or NULL");
}

/*
 * column NOT BETWEEN ... | column NOT IN (...): a NOT over the leaf, so
 * the tree is the one "NOT (column IN (...))" gives. The NOT is a level.
 */
static int
parse_negated(struct parser *p, struct fq_sql_pred *pr,
              struct fq_sql_pred **ret)
{
    int rc = enter(p);
    if (rc == 0)
        rc = next(p);
    if (rc < 0)
        return rc;
    if (p->tok.kind == FQ_SQL_TOK_BETWEEN)
        rc = parse_between(p, pr);
    else if (p->tok.kind == FQ_SQL_TOK_IN)
        rc = parse_in(p, pr);
    else
        return expected(p, "BETWEEN or IN");
    p->depth--;
    return rc < 0 ? rc : wrap_not(p, pr->pos, pr, ret);
}

/* What follows the column of a leaf. */
static int
parse_test(struct parser *p, struct fq_sql_pred *pr, struct fq_sql_pred **ret)
{
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
    case FQ_SQL_TOK_IS:
        return parse_is_null(p, pr);
    case FQ_SQL_TOK_NOT:
        return parse_negated(p, pr, ret);
    default:
        return expected(p, "a comparison operator, BETWEEN, IN, IS or NOT");
    }
}

/*
 * column op literal | column [NOT] BETWEEN a AND b | column [NOT] IN (...)
 * | column IS [NOT] NULL. *ret is the leaf, or a NOT over it.
 */
static int
parse_leaf(struct parser *p, struct fq_sql_pred **ret)
{
    if (p->n_preds == FQ_SQL_MAX_PREDS)
        return fail(p, p->tok.pos,
                    "more than " STR(FQ_SQL_MAX_PREDS) " predicates");
    p->n_preds++;
    struct fq_sql_pred *pr = new_pred(p, FQ_SQL_PRED_CMP, p->tok.pos);
    if (!pr)
        return oom(p);
    *ret = pr;
    int rc = parse_name(p, "a column name, NOT or '('", &pr->column);
    return rc < 0 ? rc : parse_test(p, pr, ret);
}

static int parse_expr(struct parser *p, struct fq_sql_pred **ret);
static int parse_unary(struct parser *p, struct fq_sql_pred **ret);

/* '(' expr ')', the current token being '('; parentheses leave no node. */
static int
parse_parens(struct parser *p, struct fq_sql_pred **ret)
{
    int rc = next(p);
    if (rc == 0)
        rc = parse_expr(p, ret);
    if (rc == 0)
        rc = expect(p, FQ_SQL_TOK_RPAREN, "AND, OR or ')'");
    return rc;
}

/*
 * NOT operand. "NOT (" is one level, not two, so the "NOT (x = 1)" the
 * formatter writes for "NOT x = 1" nests no deeper than its source did.
 */
static int
parse_not(struct parser *p, struct fq_sql_pred **ret)
{
    struct fq_sql_pos pos = p->tok.pos;
    struct fq_sql_pred *kid = NULL;

    int rc = enter(p);
    if (rc == 0)
        rc = next(p);
    if (rc == 0 && p->tok.kind == FQ_SQL_TOK_LPAREN)
        rc = parse_parens(p, &kid);
    else if (rc == 0)
        rc = parse_unary(p, &kid);
    if (rc < 0)
        return rc;
    p->depth--;
    return wrap_not(p, pos, kid, ret);
}

/* NOT unary | '(' expr ')' | leaf */
static int
parse_unary(struct parser *p, struct fq_sql_pred **ret)
{
    if (p->tok.kind == FQ_SQL_TOK_NOT)
        return parse_not(p, ret);
    if (p->tok.kind != FQ_SQL_TOK_LPAREN)
        return parse_leaf(p, ret);
    int rc = enter(p);
    if (rc == 0)
        rc = parse_parens(p, ret);
    p->depth--;
    return rc;
}

/* OPERAND (SEP OPERAND)*, making one node of kind for two or more. */
struct chain_rule {
    enum fq_sql_tok sep;
    enum fq_sql_pred_kind kind;
    int (*operand)(struct parser *p, struct fq_sql_pred **ret);
};

/* Pushes e, or e's kids when e is a chain of the same kind (parenthesised). */
static int
push_operand(struct parser *p, enum fq_sql_pred_kind kind,
             struct fq_sql_pred *e, size_t *n)
{
    if (e->kind != kind) {
        (*n)++;
        return push(p, &e, sizeof(e));
    }
    *n += e->n_kids;
    return push(p, e->kids, e->n_kids * sizeof(*e->kids));
}

/* One operand is returned as itself, chain or not. */
static int
parse_chain(struct parser *p, const struct chain_rule *r,
            struct fq_sql_pred **ret)
{
    struct fq_sql_pos pos = p->tok.pos;
    size_t base = p->stack_len, n = 0, operands = 0;
    struct fq_sql_pred *e = NULL;
    void *kids = NULL;
    int rc;

    do {
        rc = operands++ ? next(p) : 0;
        if (rc == 0)
            rc = r->operand(p, &e);
        if (rc == 0)
            rc = push_operand(p, r->kind, e, &n);
        if (rc < 0)
            return rc;
    } while (p->tok.kind == r->sep);
    if (operands == 1) {
        p->stack_len = base;
        *ret = e;
        return 0;
    }
    struct fq_sql_pred *node = new_pred(p, r->kind, pos);
    if (!node)
        return oom(p);
    rc = pop_to_arena(p, base, &kids);
    node->kids = kids;
    node->n_kids = n;
    *ret = node;
    return rc;
}

static const struct chain_rule and_rule = {
    .sep = FQ_SQL_TOK_AND,
    .kind = FQ_SQL_PRED_AND,
    .operand = parse_unary,
};

/* AND binds tighter than OR, so AND chains are OR's operands. */
static int
parse_and(struct parser *p, struct fq_sql_pred **ret)
{
    return parse_chain(p, &and_rule, ret);
}

static const struct chain_rule or_rule = {
    .sep = FQ_SQL_TOK_OR,
    .kind = FQ_SQL_PRED_OR,
    .operand = parse_and,
};

/* A whole (sub)expression. */
static int
parse_expr(struct parser *p, struct fq_sql_pred **ret)
{
    return parse_chain(p, &or_rule, ret);
}

/* ---- aggregates ------------------------------------------------------------
 */

/* COUNT's argument: '*' or DISTINCT column. */
static int
parse_count_arg(struct parser *p, struct fq_sql_item *it)
{
    if (p->tok.kind == FQ_SQL_TOK_STAR)
        return next(p);
    if (p->tok.kind != FQ_SQL_TOK_DISTINCT)
        return expected(p, "'*' or DISTINCT");
    it->agg = FQ_SQL_AGG_COUNT_DISTINCT;
    int rc = next(p);
    return rc < 0 ? rc : parse_name(p, "a column name", &it->column);
}

static int
parse_column_arg(struct parser *p, struct fq_sql_item *it)
{
    return parse_name(p, "a column name", &it->column);
}

/* -1, 0, 1 as a < b, a == b, a > b; exact for every int64 and double. */
static int
cmp_int_double(int64_t i, double d)
{
    if (d >= 0x1p63)
        return -1;
    if (d < -0x1p63)
        return 1;
    double t = trunc(d); /* now within int64 */
    int64_t ti = (int64_t)t;
    if (i != ti)
        return i < ti ? -1 : 1;
    return d > t ? -1 : d < t ? 1 : 0;
}

static int
cmp_number(const struct fq_sql_literal *a, const struct fq_sql_literal *b)
{
    if (a->kind == FQ_SQL_LIT_INT && b->kind == FQ_SQL_LIT_INT)
        return (a->i > b->i) - (a->i < b->i);
    if (a->kind == FQ_SQL_LIT_DECIMAL && b->kind == FQ_SQL_LIT_DECIMAL)
        return (a->d > b->d) - (a->d < b->d);
    if (a->kind == FQ_SQL_LIT_INT)
        return cmp_int_double(a->i, b->d);
    return -cmp_int_double(b->i, a->d);
}

/* A number greater than the edge before it (checked here, at the token). */
static int
parse_edge(struct parser *p, union list_elem *ret)
{
    struct fq_sql_literal *e = &ret->lit;

    if (p->tok.kind != FQ_SQL_TOK_INT && p->tok.kind != FQ_SQL_TOK_DECIMAL)
        return expected(p, "a number");
    int rc = parse_literal(p, e);
    if (rc < 0)
        return rc;
    if (p->have_edge && cmp_number(&p->edge, e) >= 0)
        return fail(p, e->pos,
                    "histogram edges must be strictly increasing, found "
                    "%.40s after %.40s",
                    e->text, p->edge.text);
    p->edge = *e;
    p->have_edge = true;
    return 0;
}

static const struct list_rule edge_rule = {
    .sep = FQ_SQL_TOK_COMMA,
    .max = FQ_SQL_MAX_EDGES,
    .too_many = "more than " STR(FQ_SQL_MAX_EDGES) " histogram edges",
    .size = sizeof(struct fq_sql_literal),
    .parse = parse_edge,
};

/* HISTOGRAM's arguments: column ',' edge (',' edge)* */
static int
parse_edges_arg(struct parser *p, struct fq_sql_item *it)
{
    void *edges = NULL;

    p->have_edge = false;
    int rc = parse_name(p, "a column name", &it->column);
    if (rc == 0)
        rc = expect(p, FQ_SQL_TOK_COMMA, "','");
    if (rc == 0)
        rc = parse_list(p, &edge_rule, &edges, &it->n_args);
    it->args = edges;
    return rc;
}

/* QUANTILE's arguments: column ',' q, q a decimal strictly inside (0, 1). */
static int
parse_fraction_arg(struct parser *p, struct fq_sql_item *it)
{
    const char *what = "a decimal between 0 and 1";
    struct fq_sql_token q;

    int rc = parse_name(p, "a column name", &it->column);
    if (rc == 0)
        rc = expect(p, FQ_SQL_TOK_COMMA, "','");
    if (rc == 0 && p->tok.kind != FQ_SQL_TOK_DECIMAL)
        rc = expected(p, what);
    if (rc < 0)
        return rc;
    q = p->tok;
    it->args = fq_arena_alloc(p->arena, sizeof(*it->args));
    if (!it->args)
        return oom(p);
    it->n_args = 1;
    rc = parse_literal(p, it->args);
    if (rc == 0 && !(it->args->d > 0.0 && it->args->d < 1.0))
        rc = expected_at(p, &q, what);
    return rc;
}

/* New aggregates are rows here. */
static const struct agg_rule {
    const char *name;
    enum fq_sql_agg agg;
    int (*parse_args)(struct parser *p, struct fq_sql_item *it);
    const char *close; /* what may come where ')' is expected */
} agg_rules[] = {
    {"COUNT", FQ_SQL_AGG_COUNT_STAR, parse_count_arg, "')'"},
    {"SUM", FQ_SQL_AGG_SUM, parse_column_arg, "')'"},
    {"AVG", FQ_SQL_AGG_AVG, parse_column_arg, "')'"},
    {"VAR", FQ_SQL_AGG_VAR, parse_column_arg, "')'"},
    {"STDDEV", FQ_SQL_AGG_STDDEV, parse_column_arg, "')'"},
    {"HISTOGRAM", FQ_SQL_AGG_HISTOGRAM, parse_edges_arg, "',' or ')'"},
    {"QUANTILE", FQ_SQL_AGG_QUANTILE, parse_fraction_arg, "')'"},
};

/* NAME '(' arguments ')', the current token being NAME. */
static int
parse_aggregate(struct parser *p, struct fq_sql_item *it)
{
    const struct agg_rule *r = NULL;

    for (size_t i = 0; i < FQ_ARRAY_LEN(agg_rules) && !r; i++) {
        if (tok_is_word(&p->tok, agg_rules[i].name))
            r = &agg_rules[i];
    }
    if (!r)
        return expected(p,
                        "COUNT, SUM, AVG, VAR, STDDEV, HISTOGRAM or QUANTILE");
    it->is_aggregate = true;
    it->agg = r->agg;
    int rc = next(p);
    if (rc == 0)
        rc = next(p); /* the '(' seen by peek */
    if (rc == 0)
        rc = r->parse_args(p, it);
    if (rc == 0)
        rc = expect(p, FQ_SQL_TOK_RPAREN, r->close);
    return rc;
}

/* Whether the current token is a plain name followed by '('. */
static int
at_aggregate(struct parser *p, bool *ret)
{
    enum fq_sql_tok after = FQ_SQL_TOK_END;

    *ret = false;
    if (p->tok.kind != FQ_SQL_TOK_IDENT)
        return 0;
    int rc = peek(p, &after);
    *ret = after == FQ_SQL_TOK_LPAREN;
    return rc;
}

/* ---- SELECT, FROM, GROUP BY -----------------------------------------------
 */

/* An aggregate is a plain name followed by '('; any other is a column. */
static int
parse_item(struct parser *p, union list_elem *ret)
{
    struct fq_sql_item *it = &ret->item;
    bool agg;

    if (!is_name(p->tok.kind))
        return expected(p, "an aggregate or a column name");
    it->pos = p->tok.pos;
    int rc = at_aggregate(p, &agg);
    if (rc < 0)
        return rc;
    if (agg)
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

static int
parse_where(struct parser *p, struct fq_sql_query *q)
{
    int rc = next(p);
    return rc < 0 ? rc : parse_expr(p, &q->where);
}

static int
parse_group_by(struct parser *p, struct fq_sql_query *q)
{
    void *group = NULL;

    int rc = next(p);
    if (rc == 0)
        rc = expect(p, FQ_SQL_TOK_BY, "BY");
    if (rc == 0)
        rc = parse_list(p, &group_rule, &group, &q->n_group_by);
    q->group_by = group;
    return rc;
}

/* ---- ORDER BY, LIMIT ------------------------------------------------------
 */

/*
 * The value of an INT token without a sign, if it is at most max (the
 * digits are read with saturation, so no length overflows).
 */
static bool
small_count(const struct fq_sql_token *t, uint64_t max, uint64_t *ret)
{
    uint64_t v = 0;

    if (t->kind != FQ_SQL_TOK_INT || t->text[0] == '-')
        return false;
    for (size_t i = 0; i < t->len && v <= max; i++)
        v = v * 10 + (uint64_t)(t->text[i] - '0');
    *ret = v;
    return v <= max;
}

/* "ORDER BY must name ...", found the token t (or the text of a key). */
static int
not_selected(struct parser *p, const struct fq_sql_token *t)
{
    char found[160];

    fq_sql_token_describe(t, found, sizeof(found));
    return fail(p, t->pos,
                "ORDER BY must name a selected column or position, found %s",
                found);
}

static bool
literal_equal(const struct fq_sql_literal *a, const struct fq_sql_literal *b)
{
    if (a->kind != b->kind)
        return false;
    if (a->kind == FQ_SQL_LIT_INT)
        return a->i == b->i;
    /* Decimals compare as written, as fq_sql_format writes them. */
    return strcmp(a->text, b->text) == 0;
}

/* Whether a and b format the same. */
static bool
item_equal(const struct fq_sql_item *a, const struct fq_sql_item *b)
{
    if (a->is_aggregate != b->is_aggregate ||
        (a->is_aggregate && a->agg != b->agg) || a->n_args != b->n_args)
        return false;
    if (!a->column.name || !b->column.name) {
        if (a->column.name != b->column.name)
            return false;
    } else if (strcmp(a->column.name, b->column.name) != 0) {
        return false;
    }
    for (size_t i = 0; i < a->n_args; i++) {
        if (!literal_equal(&a->args[i], &b->args[i]))
            return false;
    }
    return true;
}

static void fmt_item(struct writer *w, const struct fq_sql_item *it);

/* An aggregate key selected nowhere, quoted canonically in the message. */
static int
aggregate_not_selected(struct parser *p, const struct fq_sql_item *key)
{
    struct writer w = {.rc = 0};
    struct fq_sql_token t = {.kind = FQ_SQL_TOK_IDENT, .pos = key->pos};

    fq_buf_init(&w.buf, FORMAT_MAX);
    fmt_item(&w, key);
    t.text = fq_buf_str(&w.buf);
    t.len = fq_buf_len(&w.buf);
    int rc = w.rc < 0 ? oom(p) : not_selected(p, &t);
    fq_buf_release(&w.buf);
    return rc;
}

static int
bad_position(struct parser *p, const struct fq_sql_token *t)
{
    char found[160];

    fq_sql_token_describe(t, found, sizeof(found));
    return fail(p, t->pos, "ORDER BY position must be from 1 to %zu, found %s",
                p->query->n_items, found);
}

/* A key names the first select item that formats the same. */
static int
resolve_key(struct parser *p, const struct fq_sql_token *t, bool aggregate,
            size_t *ret)
{
    struct fq_sql_item key = {.pos = t->pos};

    int rc =
        aggregate ? parse_aggregate(p, &key) : parse_name(p, "", &key.column);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < p->query->n_items; i++) {
        if (item_equal(&p->query->items[i], &key)) {
            *ret = i;
            return 0;
        }
    }
    return aggregate ? aggregate_not_selected(p, &key) : not_selected(p, t);
}

/* column | aggregate | 1-based position, then [ASC | DESC] */
static int
parse_order_key(struct parser *p, union list_elem *ret)
{
    struct fq_sql_order *o = &ret->order;
    struct fq_sql_token t = p->tok;
    uint64_t pos;
    bool agg;
    int rc;

    o->pos = t.pos;
    if (t.kind == FQ_SQL_TOK_INT) {
        if (!small_count(&t, p->query->n_items, &pos) || pos == 0)
            return bad_position(p, &t);
        o->item = (size_t)pos - 1;
        rc = next(p);
    } else if (is_name(t.kind)) {
        rc = at_aggregate(p, &agg);
        if (rc == 0)
            rc = resolve_key(p, &t, agg, &o->item);
    } else {
        return not_selected(p, &t);
    }
    if (rc < 0 ||
        (p->tok.kind != FQ_SQL_TOK_ASC && p->tok.kind != FQ_SQL_TOK_DESC))
        return rc;
    o->desc = p->tok.kind == FQ_SQL_TOK_DESC;
    return next(p);
}

static const struct list_rule order_rule = {
    .sep = FQ_SQL_TOK_COMMA,
    .max = FQ_SQL_MAX_ORDER_BY,
    .too_many = "more than " STR(FQ_SQL_MAX_ORDER_BY) " ORDER BY keys",
    .size = sizeof(struct fq_sql_order),
    .parse = parse_order_key,
};

static int
parse_order_by(struct parser *p, struct fq_sql_query *q)
{
    void *keys = NULL;

    int rc = next(p);
    if (rc == 0)
        rc = expect(p, FQ_SQL_TOK_BY, "BY");
    if (rc == 0)
        rc = parse_list(p, &order_rule, &keys, &q->n_order_by);
    q->order_by = keys;
    return rc;
}

/* LIMIT n; limit_pos is n's. */
static int
parse_limit(struct parser *p, struct fq_sql_query *q)
{
    uint64_t n;

    int rc = next(p);
    if (rc < 0)
        return rc;
    if (!small_count(&p->tok, FQ_SQL_MAX_LIMIT, &n))
        return expected(p, "a row count from 0 to " STR(FQ_SQL_MAX_LIMIT));
    q->has_limit = true;
    q->limit = (int64_t)n;
    q->limit_pos = p->tok.pos;
    return next(p);
}

/* ---- the query -------------------------------------------------------------
 */

/*
 * The clauses after FROM, each optional, in this order. What may follow
 * changes as they are read, so the message at the end names exactly the
 * clauses still possible there.
 */
static const struct clause {
    enum fq_sql_tok first;
    int (*parse)(struct parser *p, struct fq_sql_query *q);
    const char *more; /* what may follow this clause */
} clauses[] = {
    {FQ_SQL_TOK_WHERE, parse_where,
     "AND, OR, GROUP BY, ORDER BY, LIMIT or end of input"},
    {FQ_SQL_TOK_GROUP, parse_group_by, "',', ORDER BY, LIMIT or end of input"},
    {FQ_SQL_TOK_ORDER, parse_order_by, "',', LIMIT or end of input"},
    {FQ_SQL_TOK_LIMIT, parse_limit, "end of input"},
};

static int
parse_query(struct parser *p, struct fq_sql_query *q)
{
    const char *more = "WHERE, GROUP BY, ORDER BY, LIMIT or end of input";
    void *items = NULL;

    int rc = expect(p, FQ_SQL_TOK_SELECT, "SELECT");
    if (rc == 0)
        rc = parse_list(p, &item_rule, &items, &q->n_items);
    q->items = items;
    if (rc == 0)
        rc = parse_from(p, q);
    for (size_t i = 0; i < FQ_ARRAY_LEN(clauses) && rc == 0; i++) {
        if (p->tok.kind == clauses[i].first) {
            rc = clauses[i].parse(p, q);
            more = clauses[i].more;
        }
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
    p.query = q;
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

/* How each aggregate is written, up to its column; indexed by agg. */
static const struct agg_text {
    const char *name;
    const char *open;
} agg_texts[] = {
    [FQ_SQL_AGG_COUNT_STAR] = {"COUNT", "COUNT(*"},
    [FQ_SQL_AGG_SUM] = {"SUM", "SUM("},
    [FQ_SQL_AGG_AVG] = {"AVG", "AVG("},
    [FQ_SQL_AGG_COUNT_DISTINCT] = {"COUNT DISTINCT", "COUNT(DISTINCT "},
    [FQ_SQL_AGG_VAR] = {"VAR", "VAR("},
    [FQ_SQL_AGG_STDDEV] = {"STDDEV", "STDDEV("},
    [FQ_SQL_AGG_HISTOGRAM] = {"HISTOGRAM", "HISTOGRAM("},
    [FQ_SQL_AGG_QUANTILE] = {"QUANTILE", "QUANTILE("},
};

static const struct agg_text *
agg_text(enum fq_sql_agg agg)
{
    static const struct agg_text unknown = {"?", "?("};

    if ((size_t)agg >= FQ_ARRAY_LEN(agg_texts) || !agg_texts[agg].name)
        return &unknown;
    return &agg_texts[agg];
}

const char *
fq_sql_agg_name(enum fq_sql_agg agg)
{
    return agg_text(agg)->name;
}

const char *
fq_sql_cmp_name(enum fq_sql_cmp op)
{
    static const char *const names[] = {
        [FQ_SQL_EQ] = "=",  [FQ_SQL_NE] = "<>", [FQ_SQL_LT] = "<",
        [FQ_SQL_LE] = "<=", [FQ_SQL_GT] = ">",  [FQ_SQL_GE] = ">=",
    };

    if ((size_t)op >= FQ_ARRAY_LEN(names))
        return "?";
    return names[op];
}

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

/* Between quote characters, each one inside doubled. */
static void
fmt_quoted(struct writer *w, const char *s, char quote)
{
    char q[2] = {quote, '\0'};

    puts_(w, q);
    for (const char *e; (e = strchr(s, quote)); s = e + 1) {
        put(w, s, (size_t)(e - s + 1));
        puts_(w, q);
    }
    puts_(w, s);
    puts_(w, q);
}

/*
 * A name is written plain when the lexer reads it back as exactly one
 * identifier (so not a keyword, and nothing else in it); else quoted.
 */
static void
fmt_name(struct writer *w, const char *name)
{
    struct fq_sql_lexer lx;
    struct fq_sql_token t;
    size_t len = strlen(name);

    fq_sql_lex_init(&lx, name, len);
    if (fq_sql_lex_next(&lx, &t, NULL) == 0 && t.kind == FQ_SQL_TOK_IDENT &&
        t.text == name && t.len == len)
        puts_(w, name);
    else
        fmt_quoted(w, name, '"');
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
        fmt_quoted(w, l->s, '\'');
        break;
    }
}

static void
fmt_leaf(struct writer *w, const struct fq_sql_pred *pr)
{
    fmt_name(w, pr->column.name);
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
    case FQ_SQL_PRED_IS_NULL:
        puts_(w, pr->negated ? " IS NOT NULL" : " IS NULL");
        break;
    case FQ_SQL_PRED_AND:
    case FQ_SQL_PRED_OR:
    case FQ_SQL_PRED_NOT:
        break;
    }
}

static void fmt_pred(struct writer *w, const struct fq_sql_pred *pr);

/*
 * AND binds tighter than OR, so an OR under an AND needs parentheses; an
 * AND under an OR does not. NOT's operand always gets them: "NOT (x IN
 * (1))" cannot be misread, and costs no nesting level over "NOT x IN (1)".
 */
static void
fmt_kid(struct writer *w, const struct fq_sql_pred *parent,
        const struct fq_sql_pred *kid)
{
    bool parens =
        parent->kind == FQ_SQL_PRED_NOT ||
        (parent->kind == FQ_SQL_PRED_AND && kid->kind == FQ_SQL_PRED_OR);

    puts_(w, parens ? "(" : "");
    fmt_pred(w, kid);
    puts_(w, parens ? ")" : "");
}

static void
fmt_pred(struct writer *w, const struct fq_sql_pred *pr)
{
    const char *sep = pr->kind == FQ_SQL_PRED_AND ? " AND " : " OR ";

    switch (pr->kind) {
    case FQ_SQL_PRED_NOT:
        puts_(w, "NOT ");
        fmt_kid(w, pr, pr->kids[0]);
        break;
    case FQ_SQL_PRED_AND:
    case FQ_SQL_PRED_OR:
        for (size_t i = 0; i < pr->n_kids; i++) {
            puts_(w, i ? sep : "");
            fmt_kid(w, pr, pr->kids[i]);
        }
        break;
    default:
        fmt_leaf(w, pr);
        break;
    }
}

static void
fmt_item(struct writer *w, const struct fq_sql_item *it)
{
    if (!it->is_aggregate) {
        fmt_name(w, it->column.name);
        return;
    }
    puts_(w, agg_text(it->agg)->open);
    if (it->column.name)
        fmt_name(w, it->column.name);
    for (size_t i = 0; i < it->n_args; i++) {
        puts_(w, ", ");
        fmt_literal(w, &it->args[i]);
    }
    puts_(w, ")");
}

/* An ORDER BY key as the item it names, or as its position when an
 * earlier item reads the same (the text would name that one instead). */
static void
fmt_order_key(struct writer *w, const struct fq_sql_query *q, size_t item)
{
    char num[32];

    for (size_t j = 0; j < item; j++) {
        if (item_equal(&q->items[j], &q->items[item])) {
            snprintf(num, sizeof(num), "%zu", item + 1);
            puts_(w, num);
            return;
        }
    }
    fmt_item(w, &q->items[item]);
}

/* ORDER BY keys are written as the items they name; ASC is the default. */
static void
fmt_tail(struct writer *w, const struct fq_sql_query *q)
{
    char num[32];

    for (size_t i = 0; i < q->n_group_by; i++) {
        puts_(w, i ? ", " : " GROUP BY ");
        fmt_name(w, q->group_by[i].name);
    }
    for (size_t i = 0; i < q->n_order_by; i++) {
        puts_(w, i ? ", " : " ORDER BY ");
        fmt_order_key(w, q, q->order_by[i].item);
        puts_(w, q->order_by[i].desc ? " DESC" : "");
    }
    if (q->has_limit) {
        snprintf(num, sizeof(num), " LIMIT %" PRId64, q->limit);
        puts_(w, num);
    }
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
    fmt_name(w, q->source.name);
    puts_(w, ".");
    fmt_name(w, q->dataset.name);
    if (q->where) {
        puts_(w, " WHERE ");
        fmt_pred(w, q->where);
    }
    fmt_tail(w, q);
}

/* Runs fmt on obj into a string in arena. */
static char *
format_with(void (*fmt)(struct writer *, const void *), const void *obj,
            struct fq_arena *arena)
{
    struct writer w = {.rc = 0};
    char *out = NULL;

    fq_buf_init(&w.buf, FORMAT_MAX);
    fmt(&w, obj);
    if (w.rc == 0)
        out = fq_arena_strndup(arena, fq_buf_str(&w.buf), fq_buf_len(&w.buf));
    fq_buf_release(&w.buf);
    return out;
}

static void
fmt_query_any(struct writer *w, const void *q)
{
    fmt_query(w, q);
}

static void
fmt_item_any(struct writer *w, const void *it)
{
    fmt_item(w, it);
}

char *
fq_sql_format(const struct fq_sql_query *q, struct fq_arena *arena)
{
    return format_with(fmt_query_any, q, arena);
}

char *
fq_sql_item_format(const struct fq_sql_item *it, struct fq_arena *arena)
{
    return format_with(fmt_item_any, it, arena);
}
