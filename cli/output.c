/*
 * Command output: commands add named sections of rows; this file prints
 * them as an aligned table (for people), CSV (RFC 4180, for spreadsheets)
 * or JSON (one object, a key per section, an array of row objects).
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "cli.h"

#include "fedq/v1/gateway.pb-c.h"

#define OUT_MEMORY (256 * 1024 * 1024)

struct out_row {
    struct out_row *next;
    const char **cells;
};

struct out_section {
    struct out_section *next;
    const char *title;
    const char **columns;
    size_t ncols;
    struct out_row *rows, *last;
};

struct cli_out {
    struct fq_arena *arena;
    int format;
    struct out_section *first, *cur;
};

struct cli_out *
cli_out_new(int format)
{
    struct fq_arena *a = fq_arena_new(OUT_MEMORY);
    struct cli_out *o = a ? fq_arena_alloc(a, sizeof(*o)) : NULL;
    if (!o) {
        fq_arena_free(a);
        return NULL;
    }
    o->arena = a;
    o->format = format;
    return o;
}

static const char **
copy_cells(struct fq_arena *a, const char *const *src, size_t n)
{
    const char **dst = fq_arena_alloc(a, (n + 1) * sizeof(*dst));
    for (size_t i = 0; dst && i < n; i++) {
        if (!(dst[i] = fq_arena_strdup(a, src[i] ? src[i] : "")))
            return NULL;
    }
    return dst;
}

int
cli_out_section(struct cli_out *o, const char *title,
                const char *const *columns)
{
    struct out_section *s = fq_arena_alloc(o->arena, sizeof(*s));
    if (!s)
        return FQ_ENOMEM;
    while (columns[s->ncols])
        s->ncols++;
    s->title = fq_arena_strdup(o->arena, title);
    s->columns = copy_cells(o->arena, columns, s->ncols);
    if (!s->title || !s->columns)
        return FQ_ENOMEM;
    if (o->cur)
        o->cur->next = s;
    else
        o->first = s;
    o->cur = s;
    return 0;
}

int
cli_out_row(struct cli_out *o, const char *const *values)
{
    struct out_section *s = o->cur;
    struct out_row *r = fq_arena_alloc(o->arena, sizeof(*r));
    if (!r || !(r->cells = copy_cells(o->arena, values, s->ncols)))
        return FQ_ENOMEM;
    if (s->last)
        s->last->next = r;
    else
        s->rows = r;
    s->last = r;
    return 0;
}

const char *
cli_join(struct fq_arena *a, char *const *items, size_t n, const char *sep)
{
    char *s = "";
    for (size_t i = 0; s && i < n; i++)
        s = fq_arena_printf(a, "%s%s%s", s, i ? sep : "", items[i]);
    return s ? s : "?";
}

/* ---- table --------------------------------------------------------------- */

static void
print_table_row(const char **cells, const size_t *width, size_t n)
{
    /* No padding after the last non-empty cell: no trailing blanks. */
    while (n > 1 && cells[n - 1][0] == '\0')
        n--;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 == n)
            printf("%s\n", cells[i]);
        else
            printf("%-*s  ", (int)width[i], cells[i]);
    }
}

static void
print_table(const struct out_section *s)
{
    size_t width[64] = {0};
    size_t n = s->ncols < 64 ? s->ncols : 64;

    for (size_t i = 0; i < n; i++)
        width[i] = strlen(s->columns[i]);
    for (const struct out_row *r = s->rows; r; r = r->next) {
        for (size_t i = 0; i < n; i++) {
            size_t w = strlen(r->cells[i]);
            width[i] = w > width[i] ? w : width[i];
        }
    }
    print_table_row(s->columns, width, n);
    for (const struct out_row *r = s->rows; r; r = r->next)
        print_table_row(r->cells, width, n);
}

/* ---- CSV ----------------------------------------------------------------- */

static void
print_csv_cell(const char *v)
{
    if (!strpbrk(v, ",\"\r\n")) {
        fputs(v, stdout);
        return;
    }
    putchar('"');
    for (; *v; v++) {
        if (*v == '"')
            putchar('"');
        putchar(*v);
    }
    putchar('"');
}

static void
print_csv_row(const char **cells, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            putchar(',');
        print_csv_cell(cells[i]);
    }
    putchar('\n');
}

static void
print_csv(const struct out_section *s)
{
    print_csv_row(s->columns, s->ncols);
    for (const struct out_row *r = s->rows; r; r = r->next)
        print_csv_row(r->cells, s->ncols);
}

/* ---- JSON ---------------------------------------------------------------- */

void
cli_json_string(const char *v)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void
print_json(const struct out_section *s)
{
    cli_json_string(s->title);
    fputs(": [", stdout);
    for (const struct out_row *r = s->rows; r; r = r->next) {
        fputs(r == s->rows ? "\n    {" : ",\n    {", stdout);
        for (size_t i = 0; i < s->ncols; i++) {
            if (i)
                fputs(", ", stdout);
            cli_json_string(s->columns[i]);
            fputs(": ", stdout);
            cli_json_string(r->cells[i]);
        }
        putchar('}');
    }
    fputs(s->rows ? "\n  ]" : "]", stdout);
}

void
cli_out_print(struct cli_out *o)
{
    if (o->format == CLI_FMT_JSON)
        fputs("{\n", stdout);
    for (const struct out_section *s = o->first; s; s = s->next) {
        if (o->format == CLI_FMT_JSON) {
            fputs(s == o->first ? "  " : ",\n  ", stdout);
            print_json(s);
            continue;
        }
        if (s != o->first)
            putchar('\n');
        if (o->format == CLI_FMT_CSV)
            print_csv(s);
        else
            print_table(s);
    }
    if (o->format == CLI_FMT_JSON)
        fputs("\n}\n", stdout);
    fflush(stdout);
    fq_arena_free(o->arena);
}

const char *
cli_agency_state_name(int state)
{
    static const char *const names[] = {"?",       "ok",      "unavailable",
                                        "timeout", "refused", "error"};
    return state >= 0 && (size_t)state < FQ_ARRAY_LEN(names) ? names[state]
                                                             : "?";
}

int
cli_out_agencies(struct cli_out *o, struct fq_arena *a,
                 Fedq__V1__AgencyStatus *const *agencies, size_t n)
{
    static const char *const cols[] = {"agency", "state", "latency_ms",
                                       "message", NULL};
    int rc = cli_out_section(o, "agencies", cols);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const Fedq__V1__AgencyStatus *s = agencies[i];
        const char *row[] = {s->agency, cli_agency_state_name(s->state),
                             fq_arena_printf(a, "%u", s->latency_ms),
                             s->message};
        rc = cli_out_row(o, row);
    }
    return rc;
}
