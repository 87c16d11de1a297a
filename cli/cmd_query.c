/*
 * `fedq query [--allow-partial] --agreement ID --purpose TEXT "SQL"`: runs
 * a fedq SQL query through the gateway under a data sharing agreement and
 * prints the protected table. `fedq result QUERY_ID` asks again for a query
 * a steward held for review; both print the answer the same way. A
 * suppressed cell is printed as "suppressed" (table, CSV) or as
 * {"status": "suppressed"} with no value (JSON); it is never shown as 0.
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

static const char *
state_name(Fedq__V1__QueryState s)
{
    /* An answer without a state comes from a gateway that predates review:
     * its rows are the released table. */
    return s == FEDQ__V1__QUERY_STATE__QUERY_STATE_PENDING ? "pending"
                                                           : "released";
}

static void
json_strings(char *const *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputs(", ", stdout);
        cli_json_string(items[i]);
    }
}

static void
json_policies(const Fedq__V1__QueryResponse *r)
{
    fputs("  \"policies\": [", stdout);
    for (size_t i = 0; i < r->n_policies; i++) {
        const Fedq__V1__AppliedPolicy *p = r->policies[i];
        fputs(i ? ", {\"agency\": " : "{\"agency\": ", stdout);
        cli_json_string(p->agency);
        fputs(", \"hash\": ", stdout);
        cli_json_string(p->hash);
        printf(", \"version\": %" PRId64 "}", p->version);
    }
    fputs("],\n", stdout);
}

/* The published rules, as in the protocol (absent from an old gateway). */
static void
json_rules(const Fedq__V1__DisclosureRules *d)
{
    if (!d)
        return;
    printf(",\n  \"rules\": {\"min_cell_count\": %u, \"zeros_suppressed\": "
           "%s, \"dominance_min_units\": %u, \"dominance_top_percent\": %u, "
           "\"p_percent\": %u, \"perturbed\": %s, \"max_deviation\": %u, "
           "\"noise_variance\": %.17g, \"magnitude_percent\": %u, "
           "\"rounding_base\": %u, \"protection_level\": %u, "
           "\"protection_percent\": %u, \"decimals\": %u}",
           d->min_cell_count, d->zeros_suppressed ? "true" : "false",
           d->dominance_min_units, d->dominance_top_percent, d->p_percent,
           d->perturbed ? "true" : "false", d->max_deviation, d->noise_variance,
           d->magnitude_percent, d->rounding_base, d->protection_level,
           d->protection_percent, d->decimals);
}

static void
print_json(const Fedq__V1__QueryResponse *r)
{
    fputs("{\n  \"query_id\": ", stdout);
    cli_json_string(r->query_id);
    fputs(",\n  \"state\": ", stdout);
    cli_json_string(state_name(r->state));
    fputs(",\n  \"agreement\": ", stdout);
    cli_json_string(r->agreement);
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
    json_strings(r->agencies, r->n_agencies);
    fputs("],\n  \"vintages\": [", stdout);
    for (size_t i = 0; i < r->n_vintages; i++) {
        fputs(i ? ", {\"agency\": " : "{\"agency\": ", stdout);
        cli_json_string(r->vintages[i]->agency);
        fputs(", \"vintage\": ", stdout);
        cli_json_string(r->vintages[i]->vintage);
        putchar('}');
    }
    fputs("],\n", stdout);
    json_policies(r);
    printf("  \"partial\": %s,\n  \"missing\": [",
           r->partial ? "true" : "false");
    for (size_t i = 0; i < r->n_missing; i++) {
        if (i)
            fputs(", ", stdout);
        cli_json_string(r->missing[i]->agency);
    }
    fputs("],\n  \"pending\": [", stdout);
    json_strings(r->pending, r->n_pending);
    printf("],\n  \"min_cell_count\": %u", r->min_cell_count);
    json_rules(r->rules);
    fputs("\n}\n", stdout);
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

/* Under which agreement, and which signed policy each agency applied (the
 * version and the hash's first 12 hex digits, as `fedq policy verify`
 * prints them). */
static void
print_policies(struct fq_arena *a, const Fedq__V1__QueryResponse *r)
{
    const char *line = "";

    for (size_t i = 0; line && i < r->n_policies; i++) {
        const Fedq__V1__AppliedPolicy *p = r->policies[i];
        line = fq_arena_printf(a, "%s%s%s v%" PRId64 " %.12s", line,
                               i ? ", " : "", p->agency, p->version, p->hash);
    }
    if (r->agreement[0])
        printf("agreement %s; policies: %s\n", r->agreement,
               !line     ? "?"
               : line[0] ? line
                         : "none reported");
}

/* The published rules the table was released under (no cell's reason:
 * a suppressed cell says only that it is). */
static void
print_rules(const Fedq__V1__DisclosureRules *d, uint32_t k)
{
    if (!d) {
        printf("cells of fewer than %u contributors are suppressed\n", k);
        return;
    }
    printf("rules: cells of fewer than %u contributors suppressed; sums "
           "dominated by fewer than %u contributors or one of %u%% or more "
           "suppressed\n",
           d->min_cell_count, d->dominance_min_units, d->dominance_top_percent);
    if (d->perturbed)
        printf("perturbed: counts within %u of the truth (never below %u), "
               "sums within %u%% of their largest contribution, or the value "
               "of a cell released before within %u persons; the same cells "
               "always get the same values; totals need not add up\n",
               d->max_deviation, d->min_cell_count, d->magnitude_percent,
               d->min_cell_count ? d->min_cell_count - 1 : 0);
    if (d->rounding_base > 1)
        printf("rounded: counts to multiples of %u\n", d->rounding_base);
}

/* What the table does not say: who answered, and the rule applied. */
static void
print_footer(struct fq_arena *a, const Fedq__V1__QueryResponse *r)
{
    const char *agencies = cli_join(a, r->agencies, r->n_agencies, ", ");
    size_t suppressed = 0;

    for (size_t k = 0; k < r->n_rows; k++) {
        for (size_t i = 0; i < r->rows[k]->n_cells; i++)
            suppressed += r->rows[k]->cells[i]->status ==
                          FEDQ__V1__CELL_STATUS__CELL_STATUS_SUPPRESSED;
    }
    printf("\n%zu rows from %s; %zu suppressed cells; query %s\n", r->n_rows,
           agencies, suppressed, r->query_id);
    print_rules(r->rules, r->min_cell_count);
    print_vintages(a, r);
    print_policies(a, r);
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

/* A held query: who holds it, and how to ask again (on stdout, since it is
 * the answer, not an error). */
static void
print_pending(struct fq_arena *a, const Fedq__V1__QueryResponse *r)
{
    const char *who = "";

    for (size_t i = 0; who && i < r->n_pending; i++)
        who = fq_arena_printf(a, "%s%s%s", who,
                              !i                     ? ""
                              : i + 1 < r->n_pending ? ", "
                                                     : " and ",
                              r->pending[i]);
    printf("query %s is pending review by %s.\n"
           "Ask for its answer once reviewed: fedq result %s\n",
           r->query_id,
           !who     ? "?"
           : who[0] ? who
                    : "a steward",
           r->query_id);
}

/*
 * Prints a QueryResponse (of Query or GetResult) in c->format and frees
 * res->arena. CLI_PENDING for a held query, CLI_PARTIAL for a partial
 * answer, else CLI_OK.
 */
static int
print_answer(struct cli *c, struct fq_rpc_result *res)
{
    const Fedq__V1__QueryResponse *r = (const void *)res->resp;
    bool pending = r->state == FEDQ__V1__QUERY_STATE__QUERY_STATE_PENDING;
    int rc;

    if (c->format == CLI_FMT_JSON) {
        print_json(r);
    } else if (pending) {
        print_pending(res->arena, r);
    } else {
        print_rows(c, res->arena, r);
        if (c->format == CLI_FMT_TABLE)
            print_footer(res->arena, r);
    }
    fflush(stdout);
    rc = report_partial(r);
    fq_arena_free(res->arena);
    res->arena = NULL;
    return pending ? CLI_PENDING : rc;
}

/* The flag, else the client configuration's default, else NULL. */
static const char *
term_or_default(const char *flag, const char *configured)
{
    return flag ? flag : configured;
}

int
cli_cmd_query(struct cli *c, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"allow-partial", no_argument, NULL, 'p'},
        {"agreement", required_argument, NULL, 'a'},
        {"purpose", required_argument, NULL, 'u'},
        {"format", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    Fedq__V1__QueryRequest req = FEDQ__V1__QUERY_REQUEST__INIT;
    const char *agreement = NULL, *purpose = NULL;
    struct fq_rpc_result res;
    int opt, rc;

    optind = 0; /* reinitialise getopt for the command's own argv */
    while ((opt = getopt_long(argc, argv, "pa:u:f:", longopts, NULL)) != -1) {
        if (opt == 'p')
            req.allow_partial = true;
        else if (opt == 'a')
            agreement = optarg;
        else if (opt == 'u')
            purpose = optarg;
        else if (opt != 'f' || cli_set_format(c, optarg) < 0)
            return CLI_USAGE;
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "usage: fedq query [--allow-partial] [--agreement ID] "
                        "[--purpose TEXT] [--format FMT] \"SELECT ...\"\n");
        return CLI_USAGE;
    }
    agreement = term_or_default(agreement, c->cfg->agreement);
    purpose = term_or_default(purpose, c->cfg->purpose);
    /* Every agency's policy decides on both; asking without them could
     * only be refused. */
    bool no_a = !agreement || !agreement[0], no_p = !purpose || !purpose[0];
    if (no_a || no_p) {
        fprintf(stderr,
                "fedq: a query names its data sharing agreement and its "
                "purpose: give %s, or set %s in %s\n",
                no_a && no_p ? "--agreement ID and --purpose TEXT"
                : no_a       ? "--agreement ID"
                             : "--purpose TEXT",
                no_a && no_p ? "agreement: and purpose:"
                : no_a       ? "agreement:"
                             : "purpose:",
                c->cfg->doc.path);
        return CLI_USAGE;
    }
    req.sql = argv[optind];
    req.agreement = (char *)agreement;
    req.purpose = (char *)purpose;
    if ((rc = cli_call(c, "/fedq.v1.Gateway/Query", &req.base,
                       &fedq__v1__query_response__descriptor, &res)))
        return rc;
    return print_answer(c, &res);
}

int
cli_cmd_result(struct cli *c, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    Fedq__V1__GetResultRequest req = FEDQ__V1__GET_RESULT_REQUEST__INIT;
    struct fq_rpc_result res;
    int opt, rc;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "f:", longopts, NULL)) != -1) {
        if (opt != 'f' || cli_set_format(c, optarg) < 0)
            return CLI_USAGE;
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "usage: fedq result [--format FMT] QUERY_ID\n");
        return CLI_USAGE;
    }
    req.query_id = argv[optind];
    if ((rc = cli_call(c, "/fedq.v1.Gateway/GetResult", &req.base,
                       &fedq__v1__query_response__descriptor, &res)))
        return rc;
    return print_answer(c, &res);
}
