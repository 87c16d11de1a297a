/*
 * `fedq datasets [--agency ID] [--columns]`: the catalogs of all agencies,
 * gathered through the gateway, with the federation's aliases and the
 * agencies that did not answer.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "cli.h"

#include <getopt.h>

#include "fedq/v1/gateway.pb-c.h"

#define CODES_SHOWN 6

static const char *const role_names[] = {"?", "dimension", "measure", "date",
                                         "identifier"};
static const char *const type_names[] = {"?",     "integer", "text",   "date",
                                         "month", "quarter", "decimal"};

static const char *
enum_name(const char *const *names, size_t n, int v)
{
    return v >= 0 && (size_t)v < n ? names[v] : "?";
}

/* "T001, T002, ... (169 codes)" or "1940..2012". */
static const char *
domain_text(struct fq_arena *a, const Fedq__V1__Column *col)
{
    if (col->bounds)
        return fq_arena_printf(a, "%" PRId64 "..%" PRId64, col->bounds->min,
                               col->bounds->max);
    if (!col->domain)
        return "";
    if (col->domain->kind_case == FEDQ__V1__DOMAIN__KIND_RANGE)
        return fq_arena_printf(a, "%" PRId64 "..%" PRId64,
                               col->domain->range->min,
                               col->domain->range->max);
    const Fedq__V1__CodeList *cl = col->domain->codes;
    char *s = "";
    size_t shown = cl->n_codes <= CODES_SHOWN ? cl->n_codes : CODES_SHOWN - 1;
    for (size_t i = 0; s && i < shown; i++)
        s = fq_arena_printf(a, "%s%s%s", s, i ? "," : "", cl->codes[i]);
    if (s && shown < cl->n_codes)
        s = fq_arena_printf(a, "%s,... (%zu codes)", s, cl->n_codes);
    return s ? s : "";
}

static void
add_columns(struct cli_out *o, struct fq_arena *a,
            const Fedq__V1__ListDatasetsResponse *r)
{
    static const char *const cols[] = {"agency", "dataset", "column", "role",
                                       "type",   "domain",  "unit",   NULL};
    cli_out_section(o, "columns", cols);
    for (size_t i = 0; i < r->n_datasets; i++) {
        const Fedq__V1__Dataset *d = r->datasets[i];
        for (size_t k = 0; k < d->n_columns; k++) {
            const Fedq__V1__Column *c = d->columns[k];
            const char *row[] = {
                d->agency,
                d->name,
                c->name,
                enum_name(role_names, FQ_ARRAY_LEN(role_names), c->role),
                enum_name(type_names, FQ_ARRAY_LEN(type_names), c->type),
                domain_text(a, c),
                c->unit};
            cli_out_row(o, row);
        }
    }
}

static void
add_datasets(struct cli_out *o, struct fq_arena *a,
             const Fedq__V1__ListDatasetsResponse *r)
{
    static const char *const cols[] = {"agency", "dataset", "columns",
                                       "description", NULL};
    cli_out_section(o, "datasets", cols);
    for (size_t i = 0; i < r->n_datasets; i++) {
        const Fedq__V1__Dataset *d = r->datasets[i];
        const char *row[] = {d->agency, d->name,
                             fq_arena_printf(a, "%zu", d->n_columns),
                             d->description};
        cli_out_row(o, row);
    }
}

static void
add_aliases(struct cli_out *o, struct fq_arena *a,
            const Fedq__V1__ListDatasetsResponse *r)
{
    static const char *const cols[] = {"alias", "agencies", "datasets",
                                       "complete", NULL};
    cli_out_section(o, "aliases", cols);
    for (size_t i = 0; i < r->n_aliases; i++) {
        const Fedq__V1__Alias *al = r->aliases[i];
        const char *row[] = {al->name,
                             cli_join(a, al->agencies, al->n_agencies, ","),
                             cli_join(a, al->datasets, al->n_datasets, ","),
                             al->complete ? "yes" : "no"};
        cli_out_row(o, row);
    }
}

/* Names every agency that did not answer on stderr; true if any. */
static bool
report_missing(const Fedq__V1__ListDatasetsResponse *r)
{
    bool missing = false;
    for (size_t i = 0; i < r->n_agencies; i++) {
        const Fedq__V1__AgencyStatus *s = r->agencies[i];
        if (s->state == FEDQ__V1__AGENCY_STATE__AGENCY_STATE_OK)
            continue;
        fprintf(stderr, "fedq: agency %s did not answer: %s\n", s->agency,
                s->message);
        missing = true;
    }
    return missing;
}

int
cli_cmd_datasets(struct cli *c, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"agency", required_argument, NULL, 'a'},
        {"columns", no_argument, NULL, 'C'},
        {"format", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    Fedq__V1__ListDatasetsRequest req = FEDQ__V1__LIST_DATASETS_REQUEST__INIT;
    struct fq_rpc_result res;
    bool columns = false;
    int opt, rc;

    optind = 0; /* reinitialise getopt for the command's own argv */
    while ((opt = getopt_long(argc, argv, "a:Cf:", longopts, NULL)) != -1) {
        if (opt == 'a')
            req.agency = optarg;
        else if (opt == 'C')
            columns = true;
        else if (opt != 'f' || cli_set_format(c, optarg) < 0)
            return CLI_USAGE;
    }
    if ((rc = cli_call(c, "/fedq.v1.Gateway/ListDatasets", &req.base,
                       &fedq__v1__list_datasets_response__descriptor, &res)))
        return rc;
    const Fedq__V1__ListDatasetsResponse *r = (const void *)res.resp;
    struct cli_out *o = cli_out_new(c->format);
    if (!o) {
        fq_arena_free(res.arena);
        return CLI_ERROR;
    }
    if (columns)
        add_columns(o, res.arena, r);
    else
        add_datasets(o, res.arena, r);
    if (c->format != CLI_FMT_CSV && !req.agency[0])
        add_aliases(o, res.arena, r);
    if (c->format == CLI_FMT_JSON)
        cli_out_agencies(o, res.arena, r->agencies, r->n_agencies);
    cli_out_print(o);
    rc = report_missing(r) ? CLI_PARTIAL : CLI_OK;
    fq_arena_free(res.arena);
    return rc;
}
