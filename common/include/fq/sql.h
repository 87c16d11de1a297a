/*
 * fedq SQL: the query language analysts write, parsed into a syntax tree.
 * This layer knows syntax only; whether an agency, dataset or column exists
 * is the planner's business, checked against the catalogs.
 *
 *   SELECT item, ... FROM source.dataset [WHERE pred AND ...]
 *          [GROUP BY column, ...] [;]
 *
 *   item    column | COUNT(*) | SUM(column) | AVG(column)
 *   pred    column op literal | column BETWEEN literal AND literal
 *           | column IN (literal, ...)          op: = <> != < <= > >=
 *   literal 42, -7 (int64) | 12.5, -0.25 (decimal) | 'text' ('' is a quote)
 *
 * Identifiers are [A-Za-z_][A-Za-z0-9_]*, case preserved. Keywords are
 * case-insensitive and reserved: SELECT FROM WHERE GROUP BY AND BETWEEN IN.
 * Aggregate names (COUNT, SUM, AVG; case-insensitive) are recognised only
 * before '(', so a column may be called "count". "--" starts a comment to
 * the end of the line.
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
#define FQ_SQL_MAX_TEXT     65536 /* bytes of query text */
#define FQ_SQL_MAX_ITEMS    64    /* select items */
#define FQ_SQL_MAX_PREDS    256   /* leaf predicates in WHERE */
#define FQ_SQL_MAX_IN       1024  /* literals in one IN list */
#define FQ_SQL_MAX_GROUP_BY 16    /* GROUP BY columns */
#define FQ_SQL_MAX_IDENT    63    /* bytes of an identifier */
#define FQ_SQL_MAX_STRING   1024  /* bytes of a decoded string literal */
#define FQ_SQL_MAX_DEPTH    32    /* nesting of predicate expressions */

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
};

struct fq_sql_item {
    bool is_aggregate;
    enum fq_sql_agg agg;       /* when is_aggregate */
    struct fq_sql_name column; /* name NULL for COUNT(*) */
    struct fq_sql_pos pos;     /* first token: the column or aggregate */
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
 * A predicate tree. Leaves test one column; inner nodes combine their kids
 * (AND now; OR and NOT are the planned additions). The parser never puts
 * an AND directly under an AND: "a AND b AND c" is one node, three kids.
 */
enum fq_sql_pred_kind {
    FQ_SQL_PRED_AND,
    FQ_SQL_PRED_CMP,
    FQ_SQL_PRED_BETWEEN,
    FQ_SQL_PRED_IN,
};

struct fq_sql_pred {
    enum fq_sql_pred_kind kind;
    struct fq_sql_pos pos; /* first token of the (sub)expression */
    /* Leaves. */
    struct fq_sql_name column;
    enum fq_sql_cmp op;          /* CMP */
    struct fq_sql_literal *lits; /* CMP 1, BETWEEN 2 (low, high), IN n */
    size_t n_lits;
    /* Inner nodes: AND has two or more kids. */
    struct fq_sql_pred **kids;
    size_t n_kids;
};

struct fq_sql_query {
    struct fq_sql_item *items; /* at least one */
    size_t n_items;
    struct fq_sql_name source; /* agency or alias */
    struct fq_sql_name dataset;
    struct fq_sql_pred *where; /* NULL without WHERE */
    struct fq_sql_name *group_by;
    size_t n_group_by; /* 0 without GROUP BY */
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
 * comments and no ';'. Parsing the result gives the same format again.
 * The text can be longer than the query (spaces added), so a query near
 * FQ_SQL_MAX_TEXT may format past that limit. Returns a string in arena
 * (freed with it), or NULL when out of memory.
 */
char *fq_sql_format(const struct fq_sql_query *q, struct fq_arena *arena);

/* "COUNT", "SUM", "AVG"; "=", "<>", "<", ...; static, never NULL. */
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
    /* Reserved keywords. */
    FQ_SQL_TOK_SELECT,
    FQ_SQL_TOK_FROM,
    FQ_SQL_TOK_WHERE,
    FQ_SQL_TOK_GROUP,
    FQ_SQL_TOK_BY,
    FQ_SQL_TOK_AND,
    FQ_SQL_TOK_BETWEEN,
    FQ_SQL_TOK_IN,
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
 * FQ_EINVAL with err filled for an unterminated string literal or an
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
