/*
 * libFuzzer target for the fedq SQL parser (common/src/sql_*.c), which
 * reads text analysts send. Beyond not crashing, each input must either
 * parse, format, re-parse and format to the same text again (the canonical
 * form is a fixed point), or fail with FQ_EINVAL and a message that starts
 * "line L, column C:" naming a place inside the input (or the length-limit
 * message). A parsed tree must also keep the shape sql.h promises: no AND
 * directly under an AND nor OR under an OR, kid counts per kind, depth
 * within 2 * FQ_SQL_MAX_DEPTH + 3, ORDER BY keys naming select items,
 * QUANTILE's q, edge counts and LIMIT in range. The parse arena is capped
 * at FQ_SQL_PARSE_MEMORY_MAX, so an input that needs more than the
 * documented bound fails as "out of memory" and aborts. Fresh arenas each
 * run: LeakSanitizer sees the rest.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/sql.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Format, re-parse, format: the two texts must be the same. */
static void
check_round_trip(const struct fq_sql_query *q, struct fq_arena *a)
{
    struct fq_sql_query *again = NULL;
    struct fq_sql_error err;

    char *f1 = fq_sql_format(q, a);
    if (!f1)
        abort();
    /* Canonical spacing can take a query near the limit past it. */
    if (strlen(f1) > FQ_SQL_MAX_TEXT)
        return;
    if (fq_sql_parse(f1, strlen(f1), a, &again, &err) != 0)
        abort();
    char *f2 = fq_sql_format(again, a);
    if (!f2 || strcmp(f1, f2) != 0)
        abort();
}

/* Aborts unless pr and its kids are canonical; returns its depth. */
static size_t
check_pred(const struct fq_sql_pred *pr)
{
    bool inner = pr->kind == FQ_SQL_PRED_AND || pr->kind == FQ_SQL_PRED_OR;
    size_t depth = 0;

    if ((inner && pr->n_kids < 2) ||
        (pr->kind == FQ_SQL_PRED_NOT && pr->n_kids != 1) ||
        (!inner && pr->kind != FQ_SQL_PRED_NOT &&
         (pr->n_kids || !pr->column.name)))
        abort();
    for (size_t i = 0; i < pr->n_kids; i++) {
        if (inner && pr->kids[i]->kind == pr->kind)
            abort();
        size_t d = check_pred(pr->kids[i]);
        depth = d > depth ? d : depth;
    }
    return depth + 1;
}

static void
check_tree(const struct fq_sql_query *q)
{
    if (q->where && check_pred(q->where) > 2 * FQ_SQL_MAX_DEPTH + 3)
        abort();
    for (size_t i = 0; i < q->n_order_by; i++) {
        if (q->order_by[i].item >= q->n_items)
            abort();
    }
    for (size_t i = 0; i < q->n_items; i++) {
        const struct fq_sql_item *it = &q->items[i];
        if (it->n_args > FQ_SQL_MAX_EDGES ||
            (it->agg == FQ_SQL_AGG_QUANTILE &&
             (it->n_args != 1 || !(it->args[0].d > 0 && it->args[0].d < 1))))
            abort();
    }
    if (q->n_order_by > FQ_SQL_MAX_ORDER_BY ||
        (q->has_limit && (q->limit < 0 || q->limit > FQ_SQL_MAX_LIMIT)))
        abort();
}

/* Offset of the first byte of a 1-based line, or SIZE_MAX if none. */
static size_t
line_start(const uint8_t *data, size_t size, int line)
{
    size_t off = 0;

    for (; line > 1; line--) {
        const uint8_t *nl = memchr(data + off, '\n', size - off);
        if (!nl)
            return SIZE_MAX;
        off = (size_t)(nl - data) + 1;
    }
    return off;
}

/*
 * The message's position is err->pos, and it names a byte of the input on
 * that line, or the end of the input.
 */
static void
check_error(const struct fq_sql_error *err, const uint8_t *data, size_t size)
{
    int line = 0, column = 0;

    if (strncmp(err->msg, "query is longer", 15) == 0) {
        if (size <= FQ_SQL_MAX_TEXT)
            abort();
        return;
    }
    if (sscanf(err->msg, "line %d, column %d: ", &line, &column) != 2 ||
        line != err->pos.line || column != err->pos.column || line < 1 ||
        column < 1)
        abort();
    size_t start = line_start(data, size, line);
    if (start == SIZE_MAX || (size_t)column - 1 > size - start ||
        memchr(data + start, '\n', (size_t)column - 1))
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fq_arena *a = fq_arena_new(FQ_SQL_PARSE_MEMORY_MAX);
    struct fq_arena *out = fq_arena_new(4 * FQ_SQL_PARSE_MEMORY_MAX);
    struct fq_sql_query *q = NULL;
    struct fq_sql_error err;

    if (!a || !out)
        abort();
    int rc = fq_sql_parse((const char *)data, size, a, &q, &err);
    if (rc == 0) {
        check_tree(q);
        check_round_trip(q, out);
    } else if (rc == FQ_EINVAL)
        check_error(&err, data, size);
    else
        abort();
    fq_arena_free(out);
    fq_arena_free(a);
    return 0;
}
