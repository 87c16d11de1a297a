/*
 * fedq SQL lexer: cuts query text into tokens, each with its line and
 * column, for the parser in sql_parse.c (grammar and limits in fq/sql.h).
 *
 * The lexer decides as little as it can. A character no token starts with
 * becomes an INVALID token rather than an error, so the parser can say
 * what it expected there ("expected FROM, found '#'"). Only what the
 * parser cannot phrase that way fails here: an unterminated string,
 * quoted identifier or block comment, an empty quoted identifier, and
 * identifiers or strings over their byte limits. Tokens point into the
 * caller's text; nothing is allocated. Character classes are ASCII and
 * spelled out rather than taken from <ctype.h>, whose answers follow the
 * process locale.
 */
#include "fq/compat.h"
#include "fq/sql.h"
#include "fq/error.h"

#define STR_(x) #x
#define STR(x)  STR_(x)

/* Bytes of a token's text quoted in an error message. */
#define DESCRIBE_BYTES 32

static const struct keyword {
    const char *word;
    enum fq_sql_tok kind;
} keywords[] = {
    {"SELECT", FQ_SQL_TOK_SELECT},
    {"FROM", FQ_SQL_TOK_FROM},
    {"WHERE", FQ_SQL_TOK_WHERE},
    {"GROUP", FQ_SQL_TOK_GROUP},
    {"BY", FQ_SQL_TOK_BY},
    {"AND", FQ_SQL_TOK_AND},
    {"BETWEEN", FQ_SQL_TOK_BETWEEN},
    {"IN", FQ_SQL_TOK_IN},
    {"OR", FQ_SQL_TOK_OR},
    {"NOT", FQ_SQL_TOK_NOT},
    {"IS", FQ_SQL_TOK_IS},
    {"NULL", FQ_SQL_TOK_NULL},
    {"ORDER", FQ_SQL_TOK_ORDER},
    {"ASC", FQ_SQL_TOK_ASC},
    {"DESC", FQ_SQL_TOK_DESC},
    {"LIMIT", FQ_SQL_TOK_LIMIT},
    {"DISTINCT", FQ_SQL_TOK_DISTINCT},
};

/* Two-byte operators come first, so the longest match wins. */
static const struct punct {
    const char *text;
    enum fq_sql_tok kind;
} puncts[] = {
    {"<=", FQ_SQL_TOK_LE},    {"<>", FQ_SQL_TOK_NE},    {"!=", FQ_SQL_TOK_NE},
    {">=", FQ_SQL_TOK_GE},    {",", FQ_SQL_TOK_COMMA},  {".", FQ_SQL_TOK_DOT},
    {"(", FQ_SQL_TOK_LPAREN}, {")", FQ_SQL_TOK_RPAREN}, {"*", FQ_SQL_TOK_STAR},
    {";", FQ_SQL_TOK_SEMI},   {"=", FQ_SQL_TOK_EQ},     {"<", FQ_SQL_TOK_LT},
    {">", FQ_SQL_TOK_GT},
};

static bool
is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool
is_ident_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool
is_ident_char(int c)
{
    return is_ident_start(c) || is_digit(c);
}

static bool
is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
           c == '\v';
}

static int
upper(int c)
{
    return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c;
}

/* The byte k ahead of the cursor, or -1 past the end. */
static int
at(const struct fq_sql_lexer *lx, size_t k)
{
    if (k >= lx->len - lx->off)
        return -1;
    return (unsigned char)lx->text[lx->off + k];
}

/* Moves the cursor n bytes, keeping line and column. */
static void
advance(struct fq_sql_lexer *lx, size_t n)
{
    for (size_t i = 0; i < n && lx->off < lx->len; i++) {
        if (lx->text[lx->off++] == '\n') {
            lx->pos.line++;
            lx->pos.column = 1;
        } else {
            lx->pos.column++;
        }
    }
}

static int
lex_error(struct fq_sql_error *err, struct fq_sql_pos pos, const char *what)
{
    if (err) {
        err->pos = pos;
        snprintf(err->msg, sizeof(err->msg), "line %d, column %d: %s", pos.line,
                 pos.column, what);
    }
    return FQ_EINVAL;
}

/* From the opening slash-star past the first star-slash: no nesting. */
static int
skip_block_comment(struct fq_sql_lexer *lx, struct fq_sql_error *err)
{
    struct fq_sql_pos start = lx->pos;

    advance(lx, 2);
    while (!(at(lx, 0) == '*' && at(lx, 1) == '/')) {
        if (at(lx, 0) == -1)
            return lex_error(err, start, "unterminated comment");
        advance(lx, 1);
    }
    advance(lx, 2);
    return 0;
}

static int
skip_space_and_comments(struct fq_sql_lexer *lx, struct fq_sql_error *err)
{
    for (;;) {
        int c = at(lx, 0);
        if (is_space(c)) {
            advance(lx, 1);
        } else if (c == '-' && at(lx, 1) == '-') {
            while (at(lx, 0) != -1 && at(lx, 0) != '\n')
                advance(lx, 1);
        } else if (c == '/' && at(lx, 1) == '*') {
            int rc = skip_block_comment(lx, err);
            if (rc < 0)
                return rc;
        } else {
            return 0;
        }
    }
}

static enum fq_sql_tok
keyword_kind(const char *s, size_t len)
{
    for (size_t k = 0; k < FQ_ARRAY_LEN(keywords); k++) {
        const char *w = keywords[k].word;
        size_t i = 0;
        while (i < len && w[i] && upper((unsigned char)s[i]) == w[i])
            i++;
        if (i == len && !w[i])
            return keywords[k].kind;
    }
    return FQ_SQL_TOK_IDENT;
}

static int
lex_word(struct fq_sql_lexer *lx, struct fq_sql_token *t,
         struct fq_sql_error *err)
{
    size_t n = 0;

    while (is_ident_char(at(lx, n)))
        n++;
    if (n > FQ_SQL_MAX_IDENT)
        return lex_error(
            err, t->pos,
            "identifier is longer than " STR(FQ_SQL_MAX_IDENT) " bytes");
    t->kind = keyword_kind(t->text, n);
    advance(lx, n);
    return 0;
}

/* [-]digits, then '.' digits makes it a decimal ("12." stays an INT). */
static void
lex_number(struct fq_sql_lexer *lx, struct fq_sql_token *t)
{
    size_t n = at(lx, 0) == '-' ? 1 : 0;

    while (is_digit(at(lx, n)))
        n++;
    t->kind = FQ_SQL_TOK_INT;
    if (at(lx, n) == '.' && is_digit(at(lx, n + 1))) {
        n++;
        while (is_digit(at(lx, n)))
            n++;
        t->kind = FQ_SQL_TOK_DECIMAL;
    }
    advance(lx, n);
}

/* How the two quoted forms differ; the scanning is shared. */
struct quoting {
    int quote;
    enum fq_sql_tok kind;
    size_t max;
    const char *unterminated;
    const char *too_long;
    const char *empty; /* NULL: empty is allowed */
};

static const struct quoting string_quoting = {
    .quote = '\'',
    .kind = FQ_SQL_TOK_STRING,
    .max = FQ_SQL_MAX_STRING,
    .unterminated = "unterminated string literal",
    .too_long =
        "string literal is longer than " STR(FQ_SQL_MAX_STRING) " bytes",
};

/* An empty name would match nothing and could not be written plainly. */
static const struct quoting ident_quoting = {
    .quote = '"',
    .kind = FQ_SQL_TOK_QUOTED,
    .max = FQ_SQL_MAX_IDENT,
    .unterminated = "unterminated quoted identifier",
    .too_long = "identifier is longer than " STR(FQ_SQL_MAX_IDENT) " bytes",
    .empty = "quoted identifier is empty",
};

/*
 * 'text' with '' for a quote, or "name" with "" for a quote. The limit is
 * on decoded bytes, checked as they are counted so a huge one stops early.
 */
static int
lex_quoted(struct fq_sql_lexer *lx, struct fq_sql_token *t,
           const struct quoting *q, struct fq_sql_error *err)
{
    size_t decoded = 0;

    advance(lx, 1);
    for (;;) {
        int c = at(lx, 0);
        if (c == -1)
            return lex_error(err, t->pos, q->unterminated);
        if (c == q->quote && at(lx, 1) != q->quote) {
            advance(lx, 1);
            break;
        }
        advance(lx, c == q->quote ? 2 : 1);
        if (++decoded > q->max)
            return lex_error(err, t->pos, q->too_long);
    }
    if (decoded == 0 && q->empty)
        return lex_error(err, t->pos, q->empty);
    t->kind = q->kind;
    return 0;
}

/*
 * Length of the well-formed UTF-8 sequence at the cursor, else 1: an
 * invalid token covers a whole character, so "found 'é'" quotes all of it.
 */
static size_t
utf8_len(const struct fq_sql_lexer *lx)
{
    int c = at(lx, 0);
    size_t n = c >= 0xc2 && c <= 0xdf   ? 2
               : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 1;

    for (size_t i = 1; i < n; i++) {
        int k = at(lx, i);
        if (k < 0x80 || k > 0xbf)
            return 1;
    }
    return n;
}

/* Operators and punctuation; anything else is one INVALID character. */
static void
lex_punct(struct fq_sql_lexer *lx, struct fq_sql_token *t)
{
    for (size_t k = 0; k < FQ_ARRAY_LEN(puncts); k++) {
        const char *p = puncts[k].text;
        size_t n = 0;
        while (p[n] && at(lx, n) == p[n])
            n++;
        if (!p[n]) {
            t->kind = puncts[k].kind;
            advance(lx, n);
            return;
        }
    }
    t->kind = FQ_SQL_TOK_INVALID;
    advance(lx, utf8_len(lx));
}

void
fq_sql_lex_init(struct fq_sql_lexer *lx, const char *text, size_t len)
{
    /* Token pointers are text + offset, which is undefined on NULL. */
    lx->text = text ? text : "";
    lx->len = text ? len : 0;
    lx->off = 0;
    lx->pos.line = 1;
    lx->pos.column = 1;
}

int
fq_sql_lex_next(struct fq_sql_lexer *lx, struct fq_sql_token *ret,
                struct fq_sql_error *err)
{
    struct fq_sql_token t;
    int rc = 0;

    rc = skip_space_and_comments(lx, err);
    if (rc < 0)
        return rc;
    t.pos = lx->pos;
    t.text = lx->text + lx->off;
    size_t start = lx->off;
    int c = at(lx, 0);
    if (c == -1)
        t.kind = FQ_SQL_TOK_END;
    else if (is_ident_start(c))
        rc = lex_word(lx, &t, err);
    else if (is_digit(c) || (c == '-' && is_digit(at(lx, 1))))
        lex_number(lx, &t);
    else if (c == '\'')
        rc = lex_quoted(lx, &t, &string_quoting, err);
    else if (c == '"')
        rc = lex_quoted(lx, &t, &ident_quoting, err);
    else
        lex_punct(lx, &t);
    if (rc < 0)
        return rc;
    t.len = lx->off - start;
    *ret = t;
    return 0;
}

/* Appends to out, never past outlen - 1; the caller terminates. */
static void
put(char *out, size_t outlen, size_t *n, const char *s)
{
    while (*s && *n + 1 < outlen)
        out[(*n)++] = *s++;
}

void
fq_sql_token_describe(const struct fq_sql_token *t, char *out, size_t outlen)
{
    size_t n = 0, shown = t->len < DESCRIBE_BYTES ? t->len : DESCRIBE_BYTES;

    if (outlen == 0)
        return;
    if (t->kind == FQ_SQL_TOK_END) {
        snprintf(out, outlen, "end of input");
        return;
    }
    /* A string's text has its own quotes; a word says what it is. */
    put(out, outlen, &n, t->kind == FQ_SQL_TOK_STRING ? "string " : "'");
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)t->text[i];
        char b[8] = {(char)c, '\0'};
        if (c < 0x20 || c > 0x7e)
            snprintf(b, sizeof(b), "\\x%02x", c);
        else if (c == '\\')
            snprintf(b, sizeof(b), "\\\\");
        put(out, outlen, &n, b);
    }
    if (shown < t->len)
        put(out, outlen, &n, "...");
    if (t->kind != FQ_SQL_TOK_STRING)
        put(out, outlen, &n, "'");
    out[n] = '\0';
}
