/*
 * `fedq explain [--agreement ID --purpose TEXT] "SQL"`: what a query would
 * do, without running it: the query as the gateway read it, the agencies it
 * goes to, the result columns, the typed plan each agency receives, and the
 * rules that apply. With an agreement (a flag, or the client
 * configuration's default) the gateway also checks the agencies' policies
 * as a query would, and names their thresholds and reviews.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/plan.h"
#include "cli.h"

#include <getopt.h>

#include "fedq/v1/gateway.pb-c.h"

static const char *
literal_text(struct fq_arena *a, const Fedq__V1__Literal *l)
{
    switch (l->value_case) {
    case FEDQ__V1__LITERAL__VALUE_INT_VALUE:
        return fq_arena_printf(a, "%" PRId64, l->int_value);
    case FEDQ__V1__LITERAL__VALUE_DECIMAL_VALUE:
        return fq_arena_printf(a, "%.17g", l->decimal_value);
    case FEDQ__V1__LITERAL__VALUE_TEXT_VALUE:
        return fq_arena_printf(a, "'%s'", l->text_value);
    default:
        return "NULL";
    }
}

static const char *pred_text(struct fq_arena *a, const Fedq__V1__Predicate *p);

static const char *
terms_text(struct fq_arena *a, Fedq__V1__Predicate *const *t, size_t n,
           const char *op)
{
    char *s = "(";
    for (size_t i = 0; s && i < n; i++)
        s = fq_arena_printf(a, "%s%s%s", s, i ? op : "", pred_text(a, t[i]));
    return s ? fq_arena_printf(a, "%s)", s) : "?";
}

static const char *
in_text(struct fq_arena *a, const Fedq__V1__InList *in)
{
    char *s = fq_arena_printf(a, "%s IN (", in->column);
    for (size_t i = 0; s && i < in->n_values; i++)
        s = fq_arena_printf(a, "%s%s%s", s, i ? ", " : "",
                            literal_text(a, in->values[i]));
    return s ? fq_arena_printf(a, "%s)", s) : "?";
}

static const char *
pred_text(struct fq_arena *a, const Fedq__V1__Predicate *p)
{
    static const char *const ops[] = {"?", "=", "<>", "<", "<=", ">", ">="};
    const char *s = NULL;

    switch (p->node_case) {
    case FEDQ__V1__PREDICATE__NODE_ALL:
        return terms_text(a, p->all->terms, p->all->n_terms, " AND ");
    case FEDQ__V1__PREDICATE__NODE_ANY:
        return terms_text(a, p->any->terms, p->any->n_terms, " OR ");
    case FEDQ__V1__PREDICATE__NODE_NOT:
        s = fq_arena_printf(a, "NOT %s", pred_text(a, p->not_->term));
        break;
    case FEDQ__V1__PREDICATE__NODE_COMPARE:
        s = fq_arena_printf(a, "%s %s %s", p->compare->column,
                            (size_t)p->compare->op < FQ_ARRAY_LEN(ops)
                                ? ops[p->compare->op]
                                : "?",
                            literal_text(a, p->compare->value));
        break;
    case FEDQ__V1__PREDICATE__NODE_BETWEEN:
        s = fq_arena_printf(a, "%s BETWEEN %s AND %s", p->between->column,
                            literal_text(a, p->between->low),
                            literal_text(a, p->between->high));
        break;
    case FEDQ__V1__PREDICATE__NODE_IN:
        return in_text(a, p->in);
    case FEDQ__V1__PREDICATE__NODE_IS_NULL:
        s = fq_arena_printf(a, "%s IS %sNULL", p->is_null->column,
                            p->is_null->negated ? "NOT " : "");
        break;
    default:
        break;
    }
    return s ? s : "?";
}

int
cli_out_plan(struct cli_out *o, struct fq_arena *a, const Fedq__V1__Plan *p)
{
    static const char *const cols[] = {"part", "value", NULL};
    char *groups = "", *aggs = "";

    for (size_t i = 0; groups && i < p->n_group_by; i++)
        groups =
            fq_arena_printf(a, "%s%s%s", groups, i ? ", " : "", p->group_by[i]);
    for (size_t i = 0; aggs && i < p->n_aggregates; i++) {
        const Fedq__V1__Aggregate *g = p->aggregates[i];
        aggs = fq_arena_printf(a, "%s%s%s", aggs, i ? ", " : "",
                               fq_plan_aggregate_name(g, a));
    }
    const char *rows[][2] = {
        {"dataset", p->dataset},
        {"filter", p->filter ? pred_text(a, p->filter) : "(every record)"},
        {"group by", groups ? groups : "?"},
        {"aggregates", aggs ? aggs : "?"},
    };
    int rc = cli_out_section(o, "plan", cols);
    for (size_t i = 0; rc == 0 && i < FQ_ARRAY_LEN(rows); i++)
        rc = cli_out_row(o, rows[i]);
    return rc;
}

static void
add_list(struct cli_out *o, const char *title, const char *col,
         char *const *items, size_t n)
{
    const char *cols[] = {col, NULL};
    cli_out_section(o, title, cols);
    for (size_t i = 0; i < n; i++) {
        const char *row[] = {items[i]};
        cli_out_row(o, row);
    }
}

static void
add_columns(struct cli_out *o, struct fq_arena *a,
            const Fedq__V1__ExplainResponse *r)
{
    static const char *const cols[] = {"column", "aggregate", "order",
                                       "error bound", NULL};
    cli_out_section(o, "columns", cols);
    for (size_t i = 0; i < r->n_columns; i++) {
        const char *order = "";
        for (size_t k = 0; k < r->n_order_by; k++) {
            if (r->order_by[k]->column == i)
                order = fq_arena_printf(a, "%zu %s", k + 1,
                                        r->order_by[k]->descending ? "desc"
                                                                   : "asc");
        }
        const char *bound =
            r->columns[i]->error_bound > 0
                ? fq_arena_printf(a, "%g", r->columns[i]->error_bound)
                : "";
        const char *row[] = {r->columns[i]->name,
                             r->columns[i]->aggregate ? "yes" : "no",
                             order ? order : "", bound ? bound : ""};
        cli_out_row(o, row);
    }
}

int
cli_cmd_explain(struct cli *c, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"agreement", required_argument, NULL, 'a'},
        {"purpose", required_argument, NULL, 'u'},
        {"format", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    Fedq__V1__ExplainRequest req = FEDQ__V1__EXPLAIN_REQUEST__INIT;
    struct fq_rpc_result res;
    int opt, rc;

    if (c->cfg->agreement)
        req.agreement = c->cfg->agreement;
    if (c->cfg->purpose)
        req.purpose = c->cfg->purpose;
    optind = 0; /* reinitialise getopt for the command's own argv */
    while ((opt = getopt_long(argc, argv, "a:u:f:", longopts, NULL)) != -1) {
        if (opt == 'a')
            req.agreement = optarg;
        else if (opt == 'u')
            req.purpose = optarg;
        else if (opt != 'f' || cli_set_format(c, optarg) < 0)
            return CLI_USAGE;
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "usage: fedq explain [--agreement ID] [--purpose TEXT] "
                        "[--format FMT] \"SELECT ...\"\n");
        return CLI_USAGE;
    }
    req.sql = argv[optind];
    if ((rc = cli_call(c, "/fedq.v1.Gateway/Explain", &req.base,
                       &fedq__v1__explain_response__descriptor, &res)))
        return rc;
    const Fedq__V1__ExplainResponse *r = (const void *)res.resp;
    struct cli_out *o = cli_out_new(c->format);
    if (!o) {
        fq_arena_free(res.arena);
        return CLI_ERROR;
    }
    char *sql[] = {r->canonical_sql};
    add_list(o, "query", "sql", sql, 1);
    add_list(o, "agencies", "agency", r->agencies, r->n_agencies);
    add_columns(o, res.arena, r);
    if (r->plan)
        cli_out_plan(o, res.arena, r->plan);
    add_list(o, "checks", "rule", r->checks, r->n_checks);
    cli_out_print(o);
    fq_arena_free(res.arena);
    return CLI_OK;
}
