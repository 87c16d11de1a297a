/*
 * `fedq query [--allow-partial] "SQL"`: runs a fedq SQL query through the
 * gateway and prints the protected table. A suppressed cell is printed as
 * "suppressed" (table, CSV) or as {"status": "suppressed"} with no value
 * (JSON); it is never shown as 0.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "cli.h"

#include <getopt.h>

#include "fedq/v1/gateway.pb-c.h"

static const char *
status_name(Fedq__V1__CellStatus s)
{
    switch (s) {
    case FEDQ__V1__CELL_STATUS__CELL_STATUS_EXACT:
        return "exact";
    case FEDQ__V1__CELL_STATUS__CELL_STATUS_SUPPRESSED:
        return "suppressed";
    case FEDQ__V1__CELL_STATUS__CELL_STATUS_PERTURBED:
        return "perturbed";
    case FEDQ__V1__CELL_STATUS__CELL_STATUS_ROUNDED:
        return "rounded";
    case FEDQ__V1__CELL_STATUS__CELL_STATUS_NOT_APPLICABLE:
        return "not_applicable";
    default:
        return "unknown";
    }
}

/* The cell as text for tables and CSV. */
static const char *
cell_text(struct fq_arena *a, const Fedq__V1__Cell *c)
{
    switch (c->value_case) {
    case FEDQ__V1__CELL__VALUE_INT_VALUE:
        return fq_arena_printf(a, "%" PRId64, c->int_value);
    case FEDQ__V1__CELL__VALUE_DECIMAL_VALUE:
        return fq_arena_printf(a, "%.2f", c->decimal_value);
    case FEDQ__V1__CELL__VALUE_TEXT_VALUE:
        return c->text_value;
    default:
        return c->status == FEDQ__V1__CELL_STATUS__CELL_STATUS_NOT_APPLICABLE
                   ? "n/a"
                   : status_name(c->status);
    }
}

static void
print_rows(struct cli *c, struct fq_arena *a, const Fedq__V1__QueryResponse *r)
{
    const char **cols = fq_arena_alloc(a, (r->n_columns + 1) * sizeof(char *));
    const char **vals = fq_arena_alloc(a, (r->n_columns + 1) * sizeof(char *));
    struct cli_out *o = cli_out_new(c->format);

    if (!cols || !vals || !o)
        return;
    for (size_t i = 0; i < r->n_columns; i++)
        cols[i] = r->columns[i]->name;
    cli_out_section(o, "rows", cols);
    for (size_t k = 0; k < r->n_rows; k++) {
        for (size_t i = 0; i < r->n_columns && i < r->rows[k]->n_cells; i++)
            vals[i] = cell_text(a, r->rows[k]->cells[i]);
        cli_out_row(o, vals);
    }
    cli_out_print(o);
}

/* ---- JSON: one document, numbers as numbers ---------------------------- */

static void
json_cell(const Fedq__V1__Cell *c)
{
    fputs("{\"status\": ", stdout);
    cli_json_string(status_name(c->status));
    switch (c->value_case) {
    case FEDQ__V1__CELL__VALUE_INT_VALUE:
        printf(", \"value\": %" PRId64, c->int_value);
        break;
    case FEDQ__V1__CELL__VALUE_DECIMAL_VALUE:
        printf(", \"value\": %.17g", c->decimal_value);
        break;
    case FEDQ__V1__CELL__VALUE_TEXT_VALUE:
        fputs(", \"value\": ", stdout);
        cli_json_string(c->text_value);
        break;
    default:
        break;
    }
    putchar('}');
}

static void
json_columns(const Fedq__V1__QueryResponse *r)
{
    static const char *const types[] = {"unknown", "integer", "text",   "date",
                                        "month",   "quarter", "decimal"};
    fputs("  \"columns\": [", stdout);
    for (size_t i = 0; i < r->n_columns; i++) {
        const Fedq__V1__ResultColumn *col = r->columns[i];
        fputs(i ? ", {\"name\": " : "{\"name\": ", stdout);
        cli_json_string(col->name);
        printf(", \"type\": \"%s\", \"aggregate\": %s",
               (size_t)col->type < FQ_ARRAY_LEN(types) ? types[col->type]
                                                       : "unknown",
               col->aggregate ? "true" : "false");
        if (col->error_bound > 0)
            printf(", \"error_bound\": %.17g", col->error_bound);
        putchar('}');
    }
    fputs("],\n", stdout);
}

static void
print_json(const Fedq__V1__QueryResponse *r)
{
    fputs("{\n  \"query_id\": ", stdout);
    cli_json_string(r->query_id);
    fputs(",\n", stdout);
    json_columns(r);
    fputs("  \"rows\": [", stdout);
    for (size_t k = 0; k < r->n_rows; k++) {
        fputs(k ? ",\n    [" : "\n    [", stdout);
        for (size_t i = 0; i < r->rows[k]->n_cells; i++) {
            if (i)
                fputs(", ", stdout);
            json_cell(r->rows[k]->cells[i]);
        }
        putchar(']');
    }
    fputs(r->n_rows ? "\n  ],\n  \"agencies\": [" : "],\n  \"agencies\": [",
          stdout);
    for (size_t i = 0; i < r->n_agencies; i++) {
        if (i)
            fputs(", ", stdout);
        cli_json_string(r->agencies[i]);
    }
    fputs("],\n  \"vintages\": [", stdout);
    for (size_t i = 0; i < r->n_vintages; i++) {
        fputs(i ? ", {\"agency\": " : "{\"agency\": ", stdout);
        cli_json_string(r->vintages[i]->agency);
        fputs(", \"vintage\": ", stdout);
        cli_json_string(r->vintages[i]->vintage);
        putchar('}');
    }
    printf("],\n  \"partial\": %s,\n  \"missing\": [",
           r->partial ? "true" : "false");
    for (size_t i = 0; i < r->n_missing; i++) {
        if (i)
            fputs(", ", stdout);
        cli_json_string(r->missing[i]->agency);
    }
    printf("],\n  \"min_cell_count\": %u\n}\n", r->min_cell_count);
}

/* How fresh each agency's data is: its extract's time, or "live". */
static void
print_vintages(struct fq_arena *a, const Fedq__V1__QueryResponse *r)
{
    const char *line = "";

    for (size_t i = 0; line && i < r->n_vintages; i++) {
        const Fedq__V1__DataVintage *v = r->vintages[i];
        line = fq_arena_printf(a, "%s%s%s %s", line, i ? ", " : "", v->agency,
                               v->vintage[0] ? v->vintage : "unknown");
    }
    if (r->n_vintages)
        printf("data as of: %s\n", line ? line : "?");
}

/* What the table does not say: who answered, and the rule applied. */
static void
print_footer(struct fq_arena *a, const Fedq__V1__QueryResponse *r)
{
    const char *agencies = "";
    size_t suppressed = 0;

    for (size_t i = 0; i < r->n_agencies; i++)
        agencies = fq_arena_printf(a, "%s%s%s", agencies, i ? ", " : "",
                                   r->agencies[i]);
    for (size_t k = 0; k < r->n_rows; k++) {
        for (size_t i = 0; i < r->rows[k]->n_cells; i++)
            suppressed += r->rows[k]->cells[i]->status ==
                          FEDQ__V1__CELL_STATUS__CELL_STATUS_SUPPRESSED;
    }
    printf("\n%zu rows from %s; %zu suppressed cells (fewer than %u "
           "contributors); query %s\n",
           r->n_rows, agencies ? agencies : "?", suppressed, r->min_cell_count,
           r->query_id);
    print_vintages(a, r);
    for (size_t i = 0; i < r->n_columns; i++) {
        if (r->columns[i]->error_bound > 0)
            printf("%s: approximate, within %g of the exact value\n",
                   r->columns[i]->name, r->columns[i]->error_bound);
    }
}

static int
report_partial(const Fedq__V1__QueryResponse *r)
{
    for (size_t i = 0; i < r->n_missing; i++)
        fprintf(stderr, "fedq: partial result: agency %s is missing: %s\n",
                r->missing[i]->agency, r->missing[i]->message);
    return r->partial ? CLI_PARTIAL : CLI_OK;
}

int
cli_cmd_query(struct cli *c, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"allow-partial", no_argument, NULL, 'p'},
        {"format", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    Fedq__V1__QueryRequest req = FEDQ__V1__QUERY_REQUEST__INIT;
    struct fq_rpc_result res;
    int opt, rc;

    optind = 0; /* reinitialise getopt for the command's own argv */
    while ((opt = getopt_long(argc, argv, "pf:", longopts, NULL)) != -1) {
        if (opt == 'p')
            req.allow_partial = true;
        else if (opt != 'f' || cli_set_format(c, optarg) < 0)
            return CLI_USAGE;
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "usage: fedq query [--allow-partial] "
                        "[--format FMT] \"SELECT ...\"\n");
        return CLI_USAGE;
    }
    req.sql = argv[optind];
    if ((rc = cli_call(c, "/fedq.v1.Gateway/Query", &req.base,
                       &fedq__v1__query_response__descriptor, &res)))
        return rc;
    const Fedq__V1__QueryResponse *r = (const void *)res.resp;
    if (c->format == CLI_FMT_JSON) {
        print_json(r);
    } else {
        print_rows(c, res.arena, r);
        if (c->format == CLI_FMT_TABLE)
            print_footer(res.arena, r);
    }
    fflush(stdout);
    rc = report_partial(r);
    fq_arena_free(res.arena);
    return rc;
}
