/*
 * fedq SQL: the query language analysts write, parsed into a syntax tree.
 * This layer knows syntax only; whether an agency, dataset or column exists
 * is the planner's business, checked against the catalogs.
 *
 *   SELECT item, ... FROM source.dataset [WHERE expr]
 *          [GROUP BY column, ...] [ORDER BY key [ASC|DESC], ...]
 *          [LIMIT n] [;]
 *
 *   item    column | COUNT(*) | COUNT(DISTINCT column) | SUM(column)
 *           | AVG(column) | VAR(column) | STDDEV(column)
 *           | HISTOGRAM(column, number, ...) | QUANTILE(column, decimal)
 *           (1 to 64 edges, strictly increasing; 0 < the decimal < 1)
 *   expr    expr OR expr | expr AND expr | NOT expr | ( expr ) | pred
 *   pred    column op literal | column [NOT] BETWEEN literal AND literal
 *           | column [NOT] IN (literal, ...) | column IS [NOT] NULL
 *           op: = <> != < <= > >=; precedence NOT > AND > OR
 *   key     a selected column's name | an aggregate as selected (compared
 *           as formatted) | 1-based position of a select item
 *   literal 42, -7 (int64) | 12.5, -0.25 (decimal) | 'text' ('' is a quote)
 *
 * Identifiers are [A-Za-z_][A-Za-z0-9_]*, or any bytes in double quotes
 * ("" is a quote; "dol-2"), case preserved either way. Keywords are
 * case-insensitive and reserved: SELECT FROM WHERE GROUP BY AND OR NOT
 * BETWEEN IN IS NULL ORDER ASC DESC LIMIT DISTINCT. Aggregate names
 * (COUNT, SUM, AVG, VAR, STDDEV, HISTOGRAM, QUANTILE; case-insensitive)
 * are recognised only before '(', so a column may be called "count".
 * "--" starts a comment to the end of the line; a block comment runs
 * from slash-star to the next star-slash (they do not nest).
 *
 * Memory: the tree, every string in it included, lives in the caller's
 * arena, so fq_arena_free frees it all. Nothing is logged. Error messages
 * and fq_sql_format output quote query text, literals included: they are
 * for the analyst who sent the query, and fq/log.h keeps them out of logs.
 *
 * Thread safety: none needed; the functions share no state.
 */
#ifndef FQ_SQL_H
#define FQ_SQL_H

#include "fq/compat.h"
#include "fq/arena.h"

/* Language limits; crossing one is a parse error at the offending token. */
#define FQ_SQL_MAX_TEXT     65536   /* bytes of query text */
#define FQ_SQL_MAX_ITEMS    64      /* select items */
#define FQ_SQL_MAX_PREDS    256     /* leaf predicates in WHERE */
#define FQ_SQL_MAX_IN       1024    /* literals in one IN list */
#define FQ_SQL_MAX_GROUP_BY 16      /* GROUP BY columns */
#define FQ_SQL_MAX_IDENT    63      /* bytes of an identifier, decoded */
#define FQ_SQL_MAX_STRING   1024    /* bytes of a decoded string literal */
#define FQ_SQL_MAX_DEPTH    32      /* nesting: '(' and NOT; "NOT (" is one */
#define FQ_SQL_MAX_EDGES    64      /* HISTOGRAM edges */
#define FQ_SQL_MAX_ORDER_BY 16      /* ORDER BY keys */
#define FQ_SQL_MAX_LIMIT    1000000 /* LIMIT n */

/*
 * Arena bytes fq_sql_parse can need for any input within the limits (the
 * worst case, IN lists of one-digit literals filling 64 KiB, needs about
 * 2 MiB); a smaller cap can make parsing fail with FQ_ENOMEM.
 */
#define FQ_SQL_PARSE_MEMORY_MAX (4u * 1024 * 1024)

/* 1-based; the column counts bytes. */
struct fq_sql_pos {
    int line;
    int column;
};

/*
 * msg is a complete sentence, "line L, column C: expected X, found Y" for
 * syntax errors; pos repeats its line and column. A query over
 * FQ_SQL_MAX_TEXT bytes gives "query is longer than 65536 bytes" at 1:1.
 */
struct fq_sql_error {
    struct fq_sql_pos pos;
    char msg[300];
};

/* A name as written, with where it was written. */
struct fq_sql_name {
    const char *name;
    struct fq_sql_pos pos;
};

enum fq_sql_lit_kind {
    FQ_SQL_LIT_INT,
    FQ_SQL_LIT_DECIMAL,
    FQ_SQL_LIT_STRING,
};

struct fq_sql_literal {
    enum fq_sql_lit_kind kind;
    int64_t i;        /* INT: the value, sign folded in */
    double d;         /* DECIMAL: nearest double; text is exact */
    const char *s;    /* STRING: decoded ('' made '), NUL-terminated */
    const char *text; /* every kind: the literal as written, quotes kept */
    struct fq_sql_pos pos;
};

enum fq_sql_agg {
    FQ_SQL_AGG_COUNT_STAR,
    FQ_SQL_AGG_SUM,
    FQ_SQL_AGG_AVG,
    FQ_SQL_AGG_COUNT_DISTINCT, /* COUNT(DISTINCT column) */
    FQ_SQL_AGG_VAR,            /* sample variance */
    FQ_SQL_AGG_STDDEV,         /* sample standard deviation */
    FQ_SQL_AGG_HISTOGRAM,      /* HISTOGRAM(column, e1, e2, ...) */
    FQ_SQL_AGG_QUANTILE,       /* QUANTILE(column, q), 0 < q < 1 */
};

struct fq_sql_item {
    bool is_aggregate;
    enum fq_sql_agg agg;       /* when is_aggregate */
    struct fq_sql_name column; /* name NULL for COUNT(*) */
    struct fq_sql_pos pos;     /* first token: the column or aggregate */
    /*
     * HISTOGRAM: 1 to FQ_SQL_MAX_EDGES edges, INT or DECIMAL, strictly
     * increasing by value. QUANTILE: one DECIMAL, 0 < d < 1. Else NULL, 0.
     */
    struct fq_sql_literal *args;
    size_t n_args;
};

enum fq_sql_cmp {
    FQ_SQL_EQ,
    FQ_SQL_NE, /* written <> or != */
    FQ_SQL_LT,
    FQ_SQL_LE,
    FQ_SQL_GT,
    FQ_SQL_GE,
};

/*
 * A predicate tree. Leaves (CMP, BETWEEN, IN, IS_NULL) test one column;
 * inner nodes (AND, OR, NOT) combine their kids. The tree is canonical:
 * the parser never puts an AND directly under an AND nor an OR under an
 * OR ("a AND (b AND c)" is one node, three kids), and parentheses leave
 * no node. "x NOT IN (...)" and "x NOT BETWEEN ..." are a NOT over the
 * leaf; "x IS NOT NULL" is one IS_NULL leaf, negated. A tree is at most
 * 2 * FQ_SQL_MAX_DEPTH + 3 nodes deep: each nesting level can add an OR
 * and an AND, plus the top OR and AND and the leaf.
 */
enum fq_sql_pred_kind {
    FQ_SQL_PRED_AND,
    FQ_SQL_PRED_CMP,
    FQ_SQL_PRED_BETWEEN,
    FQ_SQL_PRED_IN,
    FQ_SQL_PRED_OR,      /* two or more kids */
    FQ_SQL_PRED_NOT,     /* one kid */
    FQ_SQL_PRED_IS_NULL, /* column IS NULL; negated: IS NOT NULL */
};

struct fq_sql_pred {
    enum fq_sql_pred_kind kind;
    struct fq_sql_pos pos; /* first token of the (sub)expression */
    /* Leaves. */
    struct fq_sql_name column;
    bool negated;                /* IS_NULL: IS NOT NULL */
    enum fq_sql_cmp op;          /* CMP */
    struct fq_sql_literal *lits; /* CMP 1, BETWEEN 2 (low, high), IN n */
    size_t n_lits;
    /* Inner nodes: AND and OR have two or more kids, NOT one. */
    struct fq_sql_pred **kids;
    size_t n_kids;
};

/*
 * One ORDER BY key: a selected item, by name, aggregate or position,
 * resolved by the parser (to the first matching item, if several match).
 */
struct fq_sql_order {
    size_t item;           /* index into items */
    bool desc;             /* DESC; ASC is the default */
    struct fq_sql_pos pos; /* first token of the key */
};

struct fq_sql_query {
    struct fq_sql_item *items; /* at least one */
    size_t n_items;
    struct fq_sql_name source; /* agency or alias */
    struct fq_sql_name dataset;
    struct fq_sql_pred *where; /* NULL without WHERE */
    struct fq_sql_name *group_by;
    size_t n_group_by; /* 0 without GROUP BY */
    struct fq_sql_order *order_by;
    size_t n_order_by; /* 0 without ORDER BY */
    bool has_limit;
    int64_t limit;               /* LIMIT n, 0 <= n <= FQ_SQL_MAX_LIMIT */
    struct fq_sql_pos limit_pos; /* of n */
};

/*
 * Parses len bytes of text into a tree allocated from arena. The text
 * needs no NUL terminator (an embedded NUL is an error); NULL with len 0
 * is the empty query. Returns 0, FQ_EINVAL when the query breaks the
 * grammar or a limit, or FQ_ENOMEM when the arena's cap or malloc fails
 * (see FQ_SQL_PARSE_MEMORY_MAX). ret is written only on success and the
 * tree is freed with the arena; err (may be NULL) is written only on
 * failure. After a failure the arena may hold parts of a tree, freed
 * with it.
 */
int fq_sql_parse(const char *text, size_t len, struct fq_arena *arena,
                 struct fq_sql_query **ret, struct fq_sql_error *err);

/*
 * Renders a parsed query as canonical fedq SQL: keywords and aggregates
 * upper-case, one space between tokens, ", " in lists, "<>" for not
 * equal, integers in decimal, decimals as written, strings re-quoted, no
 * comments and no ';'; names quoted only when they must be; boolean
 * operators with parentheses only where precedence needs them, except that
 * NOT always has them ("NOT (x IN (1, 2))"); ORDER BY keys as the items
 * they name, DESC written and ASC not. Parsing the result gives the same
 * format again. The text can be longer than the query (spaces added, keys
 * given by position written out), so a query near FQ_SQL_MAX_TEXT may
 * format past that limit. Returns a string in arena
 * (freed with it), or NULL when out of memory.
 */
char *fq_sql_format(const struct fq_sql_query *q, struct fq_arena *arena);

/*
 * One select item as fq_sql_format writes it ("town", "COUNT(*)",
 * "COUNT(DISTINCT person_id)", "HISTOGRAM(wages, 0, 1000)"): for column
 * headers. A string in arena, or NULL when out of memory.
 */
char *fq_sql_item_format(const struct fq_sql_item *it, struct fq_arena *arena);

/*
 * "COUNT", "COUNT DISTINCT", "SUM", "AVG", "VAR", "STDDEV", "HISTOGRAM",
 * "QUANTILE"; "=", "<>", "<", ...; static, never NULL.
 */
const char *fq_sql_agg_name(enum fq_sql_agg agg);
const char *fq_sql_cmp_name(enum fq_sql_cmp op);

/* ---- tokens -------------------------------------------------------------
 * The lexer's interface to the parser (common/src/sql_lex.c), public so
 * tests and tools (highlighting, error carets) can use it too.
 */

enum fq_sql_tok {
    FQ_SQL_TOK_END,     /* end of input; pos is just past the last byte */
    FQ_SQL_TOK_INVALID, /* a character no token starts with */
    FQ_SQL_TOK_IDENT,
    FQ_SQL_TOK_INT,     /* digits, or '-' and digits */
    FQ_SQL_TOK_DECIMAL, /* digits '.' digits, optional '-' */
    FQ_SQL_TOK_STRING,  /* text includes the quotes */
    FQ_SQL_TOK_QUOTED,  /* "identifier": text includes the quotes */
    /* Reserved keywords. */
    FQ_SQL_TOK_SELECT,
    FQ_SQL_TOK_FROM,
    FQ_SQL_TOK_WHERE,
    FQ_SQL_TOK_GROUP,
    FQ_SQL_TOK_BY,
    FQ_SQL_TOK_AND,
    FQ_SQL_TOK_BETWEEN,
    FQ_SQL_TOK_IN,
    FQ_SQL_TOK_OR,
    FQ_SQL_TOK_NOT,
    FQ_SQL_TOK_IS,
    FQ_SQL_TOK_NULL,
    FQ_SQL_TOK_ORDER,
    FQ_SQL_TOK_ASC,
    FQ_SQL_TOK_DESC,
    FQ_SQL_TOK_LIMIT,
    FQ_SQL_TOK_DISTINCT,
    /* Punctuation and operators. */
    FQ_SQL_TOK_COMMA,
    FQ_SQL_TOK_DOT,
    FQ_SQL_TOK_LPAREN,
    FQ_SQL_TOK_RPAREN,
    FQ_SQL_TOK_STAR,
    FQ_SQL_TOK_SEMI,
    FQ_SQL_TOK_EQ,
    FQ_SQL_TOK_NE,
    FQ_SQL_TOK_LT,
    FQ_SQL_TOK_LE,
    FQ_SQL_TOK_GT,
    FQ_SQL_TOK_GE,
};

struct fq_sql_token {
    enum fq_sql_tok kind;
    const char *text; /* into the query text; not NUL-terminated */
    size_t len;
    struct fq_sql_pos pos;
};

/* Lexer state; a plain value, so it can be copied to look ahead. */
struct fq_sql_lexer {
    const char *text;      /* private */
    size_t len;            /* private */
    size_t off;            /* private: next byte to read */
    struct fq_sql_pos pos; /* private: position of text[off] */
};

/*
 * Starts lexing len bytes of text, which must stay valid while tokens are
 * in use. The caller has already refused text over FQ_SQL_MAX_TEXT or
 * with a NUL byte (fq_sql_parse does). Cannot fail; allocates nothing.
 */
void fq_sql_lex_init(struct fq_sql_lexer *lx, const char *text, size_t len);

/*
 * Reads the next token into ret, skipping whitespace and comments. 0, or
 * FQ_EINVAL with err filled for an unterminated string literal, quoted
 * identifier or block comment, an empty quoted identifier, or an
 * identifier or string over its limit; ret is written only on success.
 * After FQ_SQL_TOK_END every call returns FQ_SQL_TOK_END again.
 */
int fq_sql_lex_next(struct fq_sql_lexer *lx, struct fq_sql_token *ret,
                    struct fq_sql_error *err);

/*
 * Describes a token for "found ..." in a message: "end of input", a string
 * literal as string 'as written', anything else as its text in single
 * quotes ('FORM', ','). Bytes outside printable ASCII become \xNN and the
 * text is cut after 32 bytes with "...". Always NUL-terminates out.
 */
void fq_sql_token_describe(const struct fq_sql_token *t, char *out,
                           size_t outlen);

#endif
