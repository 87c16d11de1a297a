/*
 * Gateway/Query: fedq SQL in, a protected table out.
 *
 *   parse ─ resolve the source (agency or alias) ─ catalogs (cached, or a
 *   Describe fan-out) ─ typed plan, checked ─ every agency's signed policy
 *   checked ─ Execute fan-out ─ pool the partials ─ minimum-cell rule on
 *   the pooled true values ─ reply
 *
 * The gateway's policy check refuses early what no agreement covers; each
 * agent checks again and decides. An agency whose agreement needs its
 * steward's approval answers PENDING: the query is then kept (held.c) and
 * the analyst fetches the answer later with GetResult, which runs the same
 * query again under the same id.
 *
 * Each step that waits on agents is a fan-out whose continuation runs the
 * next step, so no worker thread ever waits. A pooled figure never
 * silently lacks an agency: a missing one fails the query with UNAVAILABLE
 * naming it, unless the request allows a partial answer, which is then
 * marked and lists what is missing.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/log.h"
#include "fq/plan.h"
#include "fq/policy.h"
#include "fq/sql.h"
#include "disclose.h"
#include "gateway.h"
#include "gwledger.h"
#include "secondary.h"

#include <ctype.h>
#include <math.h>

#include <openssl/rand.h>

#include "fedq/v1/agent.pb-c.h"
#include "fedq/v1/gateway.pb-c.h"

#define DESCRIBE "/fedq.v1.Agent/Describe"
#define EXECUTE  "/fedq.v1.Agent/Execute"
#define CHECK    "/fedq.v1.Agent/CheckCells"
#define RECORD   "/fedq.v1.Agent/RecordCells"

#define AGREEMENT_MAX 64  /* bytes of an agreement id */
#define PURPOSE_MAX   256 /* bytes of a stated purpose */

struct query {
    struct gw_state *st;
    bool explain; /* Explain: stop after the plan, run nothing */
    struct fq_rpc_call *call;
    struct fq_arena *a; /* the call's */
    struct gw_federation *fed;
    const Fedq__V1__QueryRequest *req; /* agreement and purpose too */
    bool resumed;                      /* GetResult of a held query */
    struct fq_sql_query *sql;
    char id[40];
    int64_t min_cell_count; /* the highest of the floor and the agreements' */
    struct gw_rules rules;  /* the strictest of the agreements' (disclose.h) */
    struct gw_column *cols; /* where each result column comes from */
    /* Per which[]: the agreement of the agency's policy that covers the
     * query (check_policies; the gateway's copy), or NULL. */
    const struct fq_policy_agreement **agreements;
    int *which; /* agents asked, indexes into fed->agents */
    size_t n_which;
    struct gw_catalog **catalogs; /* per which[], NULL if unknown */
    Fedq__V1__Plan *plan;
    const Fedq__V1__Dataset *ds; /* the checked-against catalog entry */
    size_t *item_agg; /* plan aggregate index of each aggregate item */
    size_t *item_col; /* first result column of each select item */
    size_t n_cols;    /* result columns (a HISTOGRAM spans several) */
    Fedq__V1__AgencyStatus **missing;
    size_t n_missing;
    /* From the Execute answers on: held until the reply, which points
     * into them. */
    struct gw_fanout *exec;
    Fedq__V1__ExecuteRequest *er; /* what the agents were asked */
    Fedq__V1__ExecuteResponse **parts;
    size_t n_parts;
    int *answered; /* fed->agents index of each part */
    Fedq__V1__PartialGroup **groups;
    Fedq__V1__QueryResponse resp;
    struct gw_table table;
    struct gw_ledger_cells lc; /* the cells the agents weigh */
    /* Each agency's persons in each table cell (cell * n_parts + part),
     * as its ledger counted them: the parts RecordCells records. */
    int64_t *persons;
    size_t reused; /* cells answered with an earlier cell's value */
};

/* Ends the query: releases what it holds, then finishes the call. */
static void query_end(struct query *q, int err, const ProtobufCMessage *resp,
                      const char *fmt, ...) FQ_PRINTF(4, 5);

static void
query_end(struct query *q, int err, const ProtobufCMessage *resp,
          const char *fmt, ...)
{
    struct fq_rpc_call *call = q->call;
    struct gw_fanout *exec = q->exec;
    char msg[512] = "";
    va_list ap;

    if (fmt) {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
    }
    for (size_t i = 0; q->catalogs && i < q->n_which; i++)
        gw_catalog_unref(q->catalogs[i]);
    gw_rules_release(&q->rules);
    gw_federation_unref(q->fed);
    if (q->resumed &&
        err == FQ_EPERM) /* a denial, or an agreement now lapsed */
        gw_held_set_state(q->st->held, q->id, "refused");
    /* The status only: error messages quote the query's literals. */
    fq_log_info("query %s by %s: %s", q->id, fq_rpc_call_peer(call)->uri,
                err ? fq_rpc_status_name(fq_rpc_status_from_error(err))
                    : "answered");
    /* q lives in the call's arena: nothing of it is touched after this. */
    if (err)
        fq_rpc_call_fail(call, err, "%s", msg);
    else
        fq_rpc_call_reply(call, resp);
    gw_fanout_free(exec); /* after the reply: the rows point into it */
}

/* ---- step 1: parse and resolve the source -------------------------------- */

static int
resolve_source(struct query *q)
{
    const char *src = q->sql->source.name;
    const struct gw_config *cfg = q->fed->cfg;
    int one = gw_federation_find(q->fed, src);

    q->which = fq_arena_alloc(q->a, (q->fed->n_agents + 1) * sizeof(int));
    if (!q->which)
        return FQ_ENOMEM;
    if (one >= 0) {
        q->which[q->n_which++] = one;
        return 0;
    }
    for (size_t i = 0; i < cfg->n_aliases; i++) {
        const struct gw_alias_conf *al = &cfg->aliases[i];
        if (strcmp(al->name, src) != 0)
            continue;
        for (size_t j = 0; j < al->n_agencies; j++)
            q->which[q->n_which++] =
                gw_federation_find(q->fed, al->agencies[j]);
        return 0;
    }
    return FQ_ENOENT;
}

static void
query_id(char out[40])
{
    unsigned char r[8];
    if (RAND_bytes(r, sizeof(r)) != 1)
        memset(r, 0, sizeof(r));
    snprintf(out, 40, "q-%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2],
             r[3], r[4], r[5], r[6], r[7]);
}

/* ---- step 2: catalogs ------------------------------------------------------
 */

static void step_plan(struct query *q);

/* Notes why agent k (index into which[]) is missing. */
static int
note_missing(struct query *q, size_t k, const struct gw_reply *r)
{
    if (!q->missing &&
        !(q->missing = fq_arena_alloc(q->a, (q->n_which + 1) * sizeof(void *))))
        return FQ_ENOMEM;
    for (size_t i = 0; i < q->n_missing; i++) {
        if (strcmp(q->missing[i]->agency,
                   q->fed->agents[q->which[k]].conf->agency) == 0)
            return 0;
    }
    q->missing[q->n_missing] =
        gw_agency_status(q->a, &q->fed->agents[q->which[k]], r);
    return q->missing[q->n_missing++] ? 0 : FQ_ENOMEM;
}

/* Keeps agent k's fresh catalog, or notes why it is missing. */
static int
catalog_arrived(struct query *q, struct gw_fanout *f, size_t slot, size_t k)
{
    const struct gw_reply *r = gw_fanout_reply(f, slot);

    if (r->status != FQ_RPC_OK)
        return note_missing(q, k, r);
    q->catalogs[k] = gw_catalog_put(q->fed, (size_t)q->which[k],
                                    gw_fanout_take(f, slot), r->resp);
    return q->catalogs[k] ? 0 : FQ_ENOMEM;
}

static void
catalogs_done(struct gw_fanout *f, void *arg)
{
    struct query *q = arg;
    size_t slot = 0;

    for (size_t k = 0; k < q->n_which; k++) {
        if (q->catalogs[k])
            continue;
        if (catalog_arrived(q, f, slot++, k) < 0) {
            gw_fanout_free(f);
            query_end(q, FQ_ENOMEM, NULL, "out of memory");
            return;
        }
    }
    gw_fanout_free(f);
    step_plan(q);
}

static void
step_catalogs(struct query *q)
{
    int *need = fq_arena_alloc(q->a, (q->n_which + 1) * sizeof(int));
    size_t n = 0;

    q->catalogs = fq_arena_alloc(q->a, (q->n_which + 1) * sizeof(void *));
    if (!need || !q->catalogs) {
        query_end(q, FQ_ENOMEM, NULL, "out of memory");
        return;
    }
    for (size_t k = 0; k < q->n_which; k++) {
        q->catalogs[k] = gw_catalog_get(q->fed, (size_t)q->which[k]);
        if (!q->catalogs[k])
            need[n++] = q->which[k];
    }
    if (n == 0) {
        step_plan(q);
        return;
    }
    Fedq__V1__DescribeRequest dr = FEDQ__V1__DESCRIBE_REQUEST__INIT;
    if (gw_fanout_start(q->st, q->fed, fq_rpc_call_deadline(q->call), need, n,
                        DESCRIBE, &dr.base,
                        &fedq__v1__describe_response__descriptor, catalogs_done,
                        q) < 0)
        query_end(q, FQ_ENOMEM, NULL, "out of memory");
}

/* ---- step 3: the plan ------------------------------------------------------
 */

static void step_execute(struct query *q);
static void explain_reply(struct query *q);

/* Same columns, roles and types, in order, and the same quantile sketches:
 * what pooling needs. */
static bool
same_shape(const Fedq__V1__Dataset *a, const Fedq__V1__Dataset *b)
{
    if (a->n_columns != b->n_columns)
        return false;
    for (size_t i = 0; i < a->n_columns; i++) {
        const Fedq__V1__Column *x = a->columns[i], *y = b->columns[i];
        if (strcmp(x->name, y->name) || x->role != y->role ||
            x->type != y->type || x->quantile_bins != y->quantile_bins)
            return false;
        /* Quantile sketches merge only over the same bins. */
        if (x->quantile_bins &&
            (!x->bounds || !y->bounds || x->bounds->min != y->bounds->min ||
             x->bounds->max != y->bounds->max))
            return false;
    }
    return true;
}

/* The catalog entry to check against: every member that answered must
 * hold the dataset, with the same shape. */
static int
pick_dataset(struct query *q, char *err, size_t errlen)
{
    const char *name = q->sql->dataset.name;

    for (size_t k = 0; k < q->n_which; k++) {
        if (!q->catalogs[k])
            continue;
        const Fedq__V1__Dataset *d = gw_catalog_dataset(q->catalogs[k], name);
        const char *agency = q->fed->agents[q->which[k]].conf->agency;
        if (!d) {
            snprintf(err, errlen,
                     "line %d, column %d: unknown dataset %s.%s%s%s",
                     q->sql->dataset.pos.line, q->sql->dataset.pos.column,
                     q->sql->source.name, name, q->n_which > 1 ? " at " : "",
                     q->n_which > 1 ? agency : "");
            return FQ_ENOENT;
        }
        if (q->ds && !same_shape(q->ds, d)) {
            snprintf(err, errlen,
                     "%s.%s has different columns at %s: it "
                     "cannot be pooled",
                     q->sql->source.name, name, agency);
            return FQ_EPRECOND;
        }
        if (!q->ds)
            q->ds = d;
    }
    return 0;
}

/* Missing agencies are fatal unless the request allows a partial answer. */
static bool
refuse_missing(struct query *q)
{
    if (q->n_missing == 0 || q->req->allow_partial)
        return false;
    query_end(q, FQ_EUNAVAIL, NULL,
              "agency %s did not answer (%s); nothing is released without "
              "it (set allow_partial to accept a partial answer)",
              q->missing[0]->agency, q->missing[0]->message);
    return true;
}

/* Distinct persons cannot be added across agencies: the same person may
 * be counted at several. That needs linkage, a later issue. */
static int
refuse_pooled_distinct(struct query *q)
{
    if (q->n_which < 2)
        return 0;
    for (size_t i = 0; i < q->sql->n_items; i++) {
        const struct fq_sql_item *it = &q->sql->items[i];
        if (!it->is_aggregate || it->agg != FQ_SQL_AGG_COUNT_DISTINCT)
            continue;
        query_end(q, FQ_EINVAL, NULL,
                  "line %d, column %d: COUNT(DISTINCT) over %s pools several "
                  "agencies, where the same person may count more than once; "
                  "ask each agency, or wait for linkage",
                  it->pos.line, it->pos.column, q->sql->source.name);
        return FQ_EINVAL;
    }
    return 0;
}

/* The plan aggregate (and partial state) index of select item i, an
 * aggregate item; set by lay_out_columns, read for every cell. */
static size_t
aggregate_index(const struct query *q, size_t i)
{
    return q->item_agg[i];
}

static const Fedq__V1__Aggregate *
item_aggregate(const struct query *q, size_t i)
{
    return q->plan->aggregates[aggregate_index(q, i)];
}

static size_t
item_width(const struct query *q, size_t i)
{
    if (!q->sql->items[i].is_aggregate)
        return 1;
    const Fedq__V1__Aggregate *ag = item_aggregate(q, i);
    return ag->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM
               ? ag->n_edges + 1
               : 1;
}

static int
stat_of(const Fedq__V1__Aggregate *ag)
{
    switch (ag->kind) {
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM:
        return GW_STAT_RECORDS;
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT_DISTINCT:
        return GW_STAT_DISTINCT;
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM:
        return GW_STAT_SUM;
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_AVG:
        return GW_STAT_MEAN;
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE:
        return GW_STAT_QUANTILE;
    default:
        return GW_STAT_SPREAD;
    }
}

/* What each result column releases, for disclose.c. */
static int
map_columns(struct query *q)
{
    const struct fq_sql_query *sq = q->sql;

    if (!(q->cols = fq_arena_alloc(q->a, (q->n_cols + 1) * sizeof(*q->cols))))
        return FQ_ENOMEM;
    for (size_t i = 0; i < sq->n_items; i++) {
        struct gw_column *c = &q->cols[q->item_col[i]];
        if (!sq->items[i].is_aggregate) {
            c->stat = GW_STAT_KEY;
            for (size_t k = 0; k < q->plan->n_group_by; k++) {
                if (strcmp(q->plan->group_by[k], sq->items[i].column.name) == 0)
                    c->key = k;
            }
            continue;
        }
        const Fedq__V1__Aggregate *ag = item_aggregate(q, i);
        for (size_t b = 0; b < item_width(q, i); b++) {
            c[b].stat = stat_of(ag);
            c[b].agg = aggregate_index(q, i);
            c[b].bin = b;
            c[b].is_bin =
                ag->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM;
        }
    }
    return 0;
}

/* Where each select item's columns start (a HISTOGRAM has one per bin),
 * and ORDER BY only on single columns. */
static int
lay_out_columns(struct query *q, char *err, size_t errlen)
{
    const struct fq_sql_query *sq = q->sql;

    q->item_col = fq_arena_alloc(q->a, (sq->n_items + 1) * sizeof(size_t));
    q->item_agg = fq_arena_alloc(q->a, (sq->n_items + 1) * sizeof(size_t));
    if (!q->item_col || !q->item_agg)
        return FQ_ENOMEM;
    q->n_cols = 0;
    /* Aggregates are in select order in the plan. */
    for (size_t i = 0, k = 0; i < sq->n_items; i++) {
        q->item_agg[i] = k;
        k += sq->items[i].is_aggregate;
        q->item_col[i] = q->n_cols;
        q->n_cols += item_width(q, i);
    }
    for (size_t k = 0; k < sq->n_order_by; k++) {
        if (item_width(q, sq->order_by[k].item) == 1)
            continue;
        snprintf(err, errlen,
                 "line %d, column %d: ORDER BY cannot use HISTOGRAM: it "
                 "spans several columns",
                 sq->order_by[k].pos.line, sq->order_by[k].pos.column);
        return FQ_EINVAL;
    }
    return map_columns(q);
}

/* The configured GROUP BY cap, refused at the first column past it. */
static int
group_by_limit(struct query *q, char *err, size_t errlen)
{
    size_t max = (size_t)q->fed->cfg->max_group_by;
    char why[160];

    if (fq_plan_check_group_by_limit(q->plan, max, why, sizeof(why)) == 0)
        return 0;
    snprintf(err, errlen, "line %d, column %d: %s",
             q->sql->group_by[max].pos.line, q->sql->group_by[max].pos.column,
             why);
    return FQ_EINVAL;
}

/* The agencies the query goes to: those whose catalog is known. */
static const char **
asked_agencies(struct query *q, size_t *ret_n)
{
    const char **names =
        fq_arena_alloc(q->a, (q->n_which + 1) * sizeof(char *));
    size_t n = 0;

    for (size_t k = 0; names && k < q->n_which; k++) {
        if (q->catalogs[k])
            names[n++] = q->fed->agents[q->which[k]].conf->agency;
    }
    *ret_n = n;
    return names;
}

/*
 * Every asked agency's signed policy must cover the query: the analyst,
 * agreement, purpose, dataset, columns, aggregates and the pooling with
 * the others. Raises q->min_cell_count to the agreements' thresholds. The
 * first refusal ends the query; its message names the agency and the
 * missing term.
 */
static int
check_policies(struct query *q)
{
    struct fq_policy_request r = {
        .agreement = q->req->agreement,
        .purpose = q->req->purpose,
        .analyst = fq_rpc_call_peer(q->call)->uri,
        .plan = q->plan,
        .now = time(NULL),
    };
    const struct fq_policy_agreement *ag;
    char err[512];
    int rc;

    q->agreements = fq_arena_alloc(q->a, (q->n_which + 1) * sizeof(void *));
    if (!q->agreements ||
        !(r.pooled_with = asked_agencies(q, &r.n_pooled_with))) {
        query_end(q, FQ_ENOMEM, NULL, "out of memory");
        return FQ_ENOMEM;
    }
    for (size_t k = 0; k < q->n_which; k++) {
        const char *why;
        const struct fq_policy *p =
            q->catalogs[k] ? gw_catalog_policy(q->catalogs[k], &why) : NULL;
        if (!q->catalogs[k])
            continue;
        if (!p) {
            query_end(q, FQ_EPRECOND, NULL, "agency %s serves nothing: %s",
                      q->fed->agents[q->which[k]].conf->agency, why);
            return FQ_EPRECOND;
        }
        if ((rc = fq_policy_check(p, &r, &ag, err, sizeof(err))) < 0) {
            /* The missing term, for stewards: names, never literals. */
            fq_log_info("query %s by %s refused early: %s", q->id, r.analyst,
                        err);
            query_end(q, rc, NULL, "%s", err);
            return rc;
        }
        q->agreements[k] = ag;
        if (ag->release.min_cell_count > q->min_cell_count)
            q->min_cell_count = ag->release.min_cell_count;
        gw_rules_tighten(&q->rules, &ag->release);
    }
    return 0;
}

static void
step_plan(struct query *q)
{
    struct fq_sql_error serr;
    char err[400];
    int rc;

    if (refuse_missing(q))
        return;
    if (q->n_missing == q->n_which) {
        query_end(q, FQ_EUNAVAIL, NULL, "no agency of %s answered",
                  q->sql->source.name);
        return;
    }
    if ((rc = pick_dataset(q, err, sizeof(err))) < 0) {
        query_end(q, rc == FQ_ENOENT ? FQ_EINVAL : rc, NULL, "%s", err);
        return;
    }
    /* The plan names the dataset as the agencies know it. */
    if ((rc = fq_plan_from_sql(q->sql, q->ds, q->a, &q->plan, &serr)) < 0) {
        query_end(q, rc, NULL, "%s",
                  rc == FQ_ENOMEM ? "out of memory" : serr.msg);
        return;
    }
    if ((rc = refuse_pooled_distinct(q)) < 0)
        return;
    if ((rc = group_by_limit(q, err, sizeof(err))) < 0 ||
        (rc = lay_out_columns(q, err, sizeof(err))) < 0) {
        query_end(q, rc, NULL, "%s", rc == FQ_ENOMEM ? "out of memory" : err);
        return;
    }
    /* Explain without an agreement only plans; it releases nothing. */
    if ((!q->explain || q->req->agreement[0]) && check_policies(q) < 0)
        return;
    if (q->explain)
        explain_reply(q);
    else
        step_execute(q);
}

/* ---- step 4: execute, pool, protect ------------------------------------- */

static void execute_done(struct gw_fanout *f, void *arg);

static void
step_execute(struct query *q)
{
    Fedq__V1__ExecuteRequest er = FEDQ__V1__EXECUTE_REQUEST__INIT;
    int *go = fq_arena_alloc(q->a, (q->n_which + 1) * sizeof(int));
    size_t n = 0;

    if (!go) {
        query_end(q, FQ_ENOMEM, NULL, "out of memory");
        return;
    }
    for (size_t k = 0; k < q->n_which; k++) {
        if (q->catalogs[k])
            go[n++] = q->which[k];
    }
    er.query_id = q->id;
    er.plan = q->plan;
    er.analyst = (char *)fq_rpc_call_peer(q->call)->uri;
    er.agreement = q->req->agreement;
    er.purpose = q->req->purpose;
    if (!(er.pooled_with = (char **)asked_agencies(q, &er.n_pooled_with)) ||
        !(q->er = fq_arena_alloc(q->a, sizeof(*q->er)))) {
        query_end(q, FQ_ENOMEM, NULL, "out of memory");
        return;
    }
    *q->er = er;
    if (gw_fanout_start(q->st, q->fed, fq_rpc_call_deadline(q->call), go, n,
                        EXECUTE, &er.base,
                        &fedq__v1__execute_response__descriptor, execute_done,
                        q) < 0)
        query_end(q, FQ_ENOMEM, NULL, "out of memory");
}

/* A child failure that means "the agency is not there": it may be waived
 * by allow_partial. Anything else the agency said is the query's answer. */
static bool
transport_failure(int status)
{
    return status == FQ_RPC_UNAVAILABLE || status == FQ_RPC_DEADLINE_EXCEEDED ||
           status == FQ_RPC_UNAUTHENTICATED || status == FQ_RPC_CANCELLED;
}

/* Sorts the answers into parts and missing; fails the query on a refusal. */
static bool
collect(struct query *q, struct gw_fanout *f, Fedq__V1__ExecuteResponse **parts,
        size_t *n_parts)
{
    for (size_t i = 0; i < gw_fanout_count(f); i++) {
        const struct gw_reply *r = gw_fanout_reply(f, i);
        const char *agency = gw_fanout_agent(f, i)->conf->agency;
        if (r->status == FQ_RPC_OK) {
            parts[(*n_parts)++] = (void *)r->resp;
            continue;
        }
        if (!transport_failure(r->status)) {
            query_end(q, fq_rpc_error_from_status(r->status), NULL,
                      "agency %s refused the query: %s", agency, r->message);
            return false;
        }
        for (size_t k = 0; k < q->n_which; k++) {
            if (q->fed->agents[q->which[k]].conf ==
                    gw_fanout_agent(f, i)->conf &&
                note_missing(q, k, r) < 0) {
                query_end(q, FQ_ENOMEM, NULL, "out of memory");
                return false;
            }
        }
    }
    return true;
}

static bool
is_decimal(const struct query *q, const Fedq__V1__Aggregate *ag)
{
    const Fedq__V1__Column *col =
        ag->column[0] ? fq_catalog_column(q->ds, ag->column) : NULL;
    return col && col->type == FEDQ__V1__VALUE_TYPE__VALUE_TYPE_DECIMAL;
}

static Fedq__V1__ValueType
aggregate_type(const struct query *q, const Fedq__V1__Aggregate *ag)
{
    switch (ag->kind) {
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT_DISTINCT:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE:
        return FEDQ__V1__VALUE_TYPE__VALUE_TYPE_INTEGER;
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM:
        return is_decimal(q, ag) ? FEDQ__V1__VALUE_TYPE__VALUE_TYPE_DECIMAL
                                 : FEDQ__V1__VALUE_TYPE__VALUE_TYPE_INTEGER;
    default:
        return FEDQ__V1__VALUE_TYPE__VALUE_TYPE_DECIMAL;
    }
}

/* Column b of select item i (b > 0 only for a HISTOGRAM's bins). */
static Fedq__V1__ResultColumn *
result_column(struct query *q, size_t i, size_t b)
{
    const struct fq_sql_item *it = &q->sql->items[i];
    Fedq__V1__ResultColumn *c = fq_arena_alloc(q->a, sizeof(*c));
    if (!c)
        return NULL;
    fedq__v1__result_column__init(c);
    c->aggregate = it->is_aggregate;
    if (!it->is_aggregate) {
        c->name = (char *)it->column.name;
        c->type = fq_catalog_column(q->ds, it->column.name)->type;
        return c;
    }
    const Fedq__V1__Aggregate *ag = item_aggregate(q, i);
    c->type = aggregate_type(q, ag);
    if (ag->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM) {
        c->name = fq_histogram_bin_name(ag, b, q->a);
    } else {
        c->name = (char *)fq_plan_aggregate_name(ag, q->a);
        if (ag->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE)
            c->error_bound = (double)fq_quantile_error_bound(
                fq_catalog_column(q->ds, ag->column));
    }
    return c->name ? c : NULL;
}

/* Every result column, in order, into *ret (n_cols of them). */
static int
result_columns(struct query *q, Fedq__V1__ResultColumn ***ret, size_t *ret_n)
{
    Fedq__V1__ResultColumn **cols =
        fq_arena_alloc(q->a, (q->n_cols + 1) * sizeof(*cols));
    size_t n = 0;

    if (!cols)
        return FQ_ENOMEM;
    for (size_t i = 0; i < q->sql->n_items; i++) {
        for (size_t b = 0; b < item_width(q, i); b++) {
            if (!(cols[n++] = result_column(q, i, b)))
                return FQ_ENOMEM;
        }
    }
    *ret = cols;
    *ret_n = n;
    return 0;
}

/* How fresh each agency's part is, in the order of resp->agencies. */
static int
build_vintages(struct query *q, Fedq__V1__ExecuteResponse **parts,
               size_t n_parts, Fedq__V1__QueryResponse *resp)
{
    resp->vintages = fq_arena_alloc(q->a, (n_parts + 1) * sizeof(void *));
    if (!resp->vintages)
        return FQ_ENOMEM;
    for (size_t i = 0; i < n_parts; i++) {
        Fedq__V1__DataVintage *v = fq_arena_alloc(q->a, sizeof(*v));
        if (!v)
            return FQ_ENOMEM;
        fedq__v1__data_vintage__init(v);
        v->agency = parts[i]->agency;
        v->vintage = parts[i]->data_vintage;
        resp->vintages[resp->n_vintages++] = v;
    }
    return 0;
}

/* Which signed policy each included agency applied, in agency order. */
static int
build_policies(struct query *q, Fedq__V1__ExecuteResponse **parts,
               size_t n_parts, Fedq__V1__QueryResponse *resp)
{
    resp->policies = fq_arena_alloc(q->a, (n_parts + 1) * sizeof(void *));
    if (!resp->policies)
        return FQ_ENOMEM;
    for (size_t i = 0; i < n_parts; i++) {
        Fedq__V1__AppliedPolicy *p = fq_arena_alloc(q->a, sizeof(*p));
        if (!p)
            return FQ_ENOMEM;
        fedq__v1__applied_policy__init(p);
        p->agency = parts[i]->agency;
        p->hash = parts[i]->policy_hash;
        p->version = parts[i]->policy_version;
        resp->policies[resp->n_policies++] = p;
    }
    return 0;
}

/* own[i * n_parts + a]: agency a's own group of groups[i], or NULL. The
 * rows pass disclose.c's rules into t (and resp->rows). */
static int
build_response(struct query *q, Fedq__V1__PartialGroup **groups, size_t n,
               const Fedq__V1__PartialGroup **own,
               Fedq__V1__ExecuteResponse **parts, size_t n_parts,
               Fedq__V1__QueryResponse *resp, struct gw_table *t)
{
    struct gw_disclose_in in = {.plan = q->plan,
                                .ds = q->ds,
                                .rules = &q->rules,
                                .cols = q->cols,
                                .n_cols = q->n_cols,
                                .groups = groups,
                                .n_groups = n,
                                .own = own,
                                .n_parts = n_parts};

    resp->query_id = q->id;
    resp->state = FEDQ__V1__QUERY_STATE__QUERY_STATE_RELEASED;
    resp->agreement = q->req->agreement;
    resp->min_cell_count = (uint32_t)q->min_cell_count;
    resp->partial = q->n_missing > 0;
    resp->missing = q->missing;
    resp->n_missing = q->n_missing;
    resp->agencies = fq_arena_alloc(q->a, (n_parts + 1) * sizeof(char *));
    resp->rules = gw_rules_publish(&q->rules, &q->fed->cfg->perturbation, q->a);
    if (!resp->agencies || !resp->rules ||
        result_columns(q, &resp->columns, &resp->n_columns) < 0 ||
        gw_disclose(&in, q->a, t) < 0)
        return FQ_ENOMEM;
    resp->rows = t->rows;
    resp->n_rows = t->n_rows;
    for (size_t i = 0; i < n_parts; i++)
        resp->agencies[resp->n_agencies++] = parts[i]->agency;
    if (build_policies(q, parts, n_parts, resp) < 0)
        return FQ_ENOMEM;
    return build_vintages(q, parts, n_parts, resp);
}

/*
 * ORDER BY and LIMIT, on the released table only: a cell without a value
 * (suppressed, not applicable) sorts after every value in both directions,
 * so the order of rows says nothing about hidden values. The sort is
 * stable over the key order the rows already have.
 */
static int
cell_cmp(const Fedq__V1__Cell *a, const Fedq__V1__Cell *b)
{
    bool ha = a->value_case != FEDQ__V1__CELL__VALUE__NOT_SET;
    bool hb = b->value_case != FEDQ__V1__CELL__VALUE__NOT_SET;
    if (!ha || !hb)
        return 0;
    switch (a->value_case) {
    case FEDQ__V1__CELL__VALUE_INT_VALUE:
        return (a->int_value > b->int_value) - (a->int_value < b->int_value);
    case FEDQ__V1__CELL__VALUE_DECIMAL_VALUE:
        return (a->decimal_value > b->decimal_value) -
               (a->decimal_value < b->decimal_value);
    default:
        return strcmp(a->text_value, b->text_value);
    }
}

static int
row_cmp(const struct query *q, const Fedq__V1__Row *x, const Fedq__V1__Row *y)
{
    const struct fq_sql_query *sq = q->sql;
    for (size_t k = 0; k < sq->n_order_by; k++) {
        size_t col = q->item_col[sq->order_by[k].item];
        const Fedq__V1__Cell *a = x->cells[col];
        const Fedq__V1__Cell *b = y->cells[col];
        bool ha = a->value_case != FEDQ__V1__CELL__VALUE__NOT_SET;
        bool hb = b->value_case != FEDQ__V1__CELL__VALUE__NOT_SET;
        if (ha != hb)
            return ha ? -1 : 1; /* hidden last, whatever the direction */
        int c = cell_cmp(a, b);
        if (c)
            return sq->order_by[k].desc ? -c : c;
    }
    return 0;
}

/* A stable merge sort: qsort is not stable, and ties must keep the key
 * order the rows came in. */
static void
sort_rows(const struct query *q, Fedq__V1__Row **rows, size_t n,
          Fedq__V1__Row **tmp)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    sort_rows(q, rows, h, tmp);
    sort_rows(q, rows + h, n - h, tmp);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = row_cmp(q, rows[j], rows[i]) < 0 ? rows[j++] : rows[i++];
    while (i < h)
        tmp[k++] = rows[i++];
    while (j < n)
        tmp[k++] = rows[j++];
    memcpy(rows, tmp, n * sizeof(*rows));
}

static void
order_and_limit(struct query *q, Fedq__V1__QueryResponse *resp)
{
    const struct fq_sql_query *sq = q->sql;
    Fedq__V1__Row **tmp;

    if (sq->n_order_by &&
        (tmp = fq_arena_alloc(q->a, (resp->n_rows + 1) * sizeof(*tmp))))
        sort_rows(q, resp->rows, resp->n_rows, tmp);
    if (sq->has_limit && (uint64_t)sq->limit < resp->n_rows)
        resp->n_rows = (size_t)sq->limit;
}

/*
 * Every answer must come under a signed policy and the agreement asked
 * for; the highest of the agreements' thresholds applies to the pooled
 * cells. False (the query ended) if an agency broke that.
 */
static bool
accept_terms(struct query *q, Fedq__V1__ExecuteResponse **parts, size_t n_parts)
{
    for (size_t i = 0; i < n_parts; i++) {
        const Fedq__V1__ExecuteResponse *p = parts[i];
        if (!p->policy_hash[0] || strcmp(p->agreement, q->req->agreement)) {
            query_end(q, FQ_EPROTO, NULL,
                      "agency %s answered outside agreement %s", p->agency,
                      q->req->agreement);
            return false;
        }
        if (p->min_cell_count > q->min_cell_count)
            q->min_cell_count = p->min_cell_count;
        if ((int64_t)p->min_cell_count > q->rules.k)
            q->rules.k = p->min_cell_count;
    }
    return true;
}

/*
 * Agencies whose steward must approve the query answer PENDING: the query
 * is kept for GetResult and the analyst gets its id. True if so (the
 * query ended).
 */
static bool
hold_for_review(struct query *q, Fedq__V1__ExecuteResponse **parts,
                size_t n_parts)
{
    Fedq__V1__QueryResponse resp = FEDQ__V1__QUERY_RESPONSE__INIT;
    char err[400];
    int rc;

    for (size_t i = 0; i < n_parts; i++) {
        if (parts[i]->review != FEDQ__V1__REVIEW_STATE__REVIEW_STATE_PENDING)
            continue;
        if (!resp.pending &&
            !(resp.pending = fq_arena_alloc(q->a, n_parts * sizeof(char *)))) {
            query_end(q, FQ_ENOMEM, NULL, "out of memory");
            return true;
        }
        resp.pending[resp.n_pending++] = parts[i]->agency;
    }
    if (resp.n_pending == 0)
        return false;
    if ((rc = gw_held_put(q->st->held, q->id, fq_rpc_call_peer(q->call)->uri,
                          q->req, err, sizeof(err))) < 0) {
        query_end(q, rc, NULL, "%s", err);
        return true;
    }
    resp.query_id = q->id;
    resp.state = FEDQ__V1__QUERY_STATE__QUERY_STATE_PENDING;
    resp.agreement = q->req->agreement;
    fq_log_info("query %s: held for review by %zu agencies", q->id,
                resp.n_pending);
    query_end(q, 0, &resp.base, NULL);
    return true;
}

/*
 * ORDER BY and LIMIT, then the cell budget (budget.c) on the rows returned,
 * since only they are released: each pooled agency's scope is charged
 * under the cell_budget of its agreement found by check_policies. False
 * if the query ended (a budget is spent, or the ledger failed).
 */
static bool
release_within_budget(struct query *q, Fedq__V1__PartialGroup **groups,
                      Fedq__V1__ExecuteResponse **parts, size_t n_parts,
                      Fedq__V1__QueryResponse *resp)
{
    struct gw_budget_scope *s =
        fq_arena_alloc(q->a, (n_parts + 1) * sizeof(*s));
    Fedq__V1__Row **all =
        fq_arena_alloc(q->a, (resp->n_rows + 1) * sizeof(*all));
    struct gw_budget_table t = {
        .query_id = q->id,
        .analyst = fq_rpc_call_peer(q->call)->uri,
        .plan = q->plan,
        .scopes = s,
        .n_scopes = n_parts,
        .groups = groups,
        .all_rows = all,
        .n_groups = resp->n_rows, /* one row per group, in group order */
    };
    char err[512];
    int rc;

    if (!s || !all) {
        query_end(q, FQ_ENOMEM, NULL, "out of memory");
        return false;
    }
    memcpy(all, resp->rows, resp->n_rows * sizeof(*all));
    order_and_limit(q, resp);
    for (size_t i = 0; i < n_parts; i++) {
        for (size_t k = 0; q->agreements && k < q->n_which && !s[i].agency;
             k++) {
            const struct fq_policy_agreement *ag = q->agreements[k];
            const char *agency = q->fed->agents[q->which[k]].conf->agency;
            if (ag && strcmp(agency, parts[i]->agency) == 0)
                s[i] = (struct gw_budget_scope){agency, ag->id,
                                                parts[i]->data_vintage,
                                                ag->release.cell_budget};
        }
        if (!s[i].agency) {
            query_end(q, FQ_EPROTO, NULL,
                      "an agency answered as %s, which was not asked",
                      parts[i]->agency);
            return false;
        }
    }
    t.columns = resp->columns;
    t.n_columns = resp->n_columns;
    t.rows = resp->rows;
    t.n_rows = resp->n_rows;
    if ((rc = gw_budget_charge(q->st->budget, &t, q->a, err, sizeof(err))) <
        0) {
        query_end(q, rc, NULL, "%s", err);
        return false;
    }
    return true;
}

/* Why cells were suppressed is kept here for stewards (and the decision
 * record), never in the answer. */
static void
log_decisions(struct query *q, const struct gw_table *t, size_t n_parts)
{
    size_t n[GW_REASON_COUNT];

    gw_table_reasons(t, n);
    fq_log_info("query %s: %zu groups, %zu agencies%s; k %" PRId64
                "; cells released %zu (%zu with an earlier cell's value, "
                "ledger), suppressed: primary %zu, zero %zu, dominance %zu, "
                "derived %zu, insider %zu, ledger %zu, secondary %zu",
                q->id, t->n_rows, n_parts, q->n_missing ? " (partial)" : "",
                q->rules.k, n[GW_REASON_NONE], q->reused, n[GW_REASON_PRIMARY],
                n[GW_REASON_ZERO], n[GW_REASON_DOMINANCE], n[GW_REASON_DERIVED],
                n[GW_REASON_INSIDER], n[GW_REASON_LEDGER],
                n[GW_REASON_SECONDARY]);
}

static void step_ledger(struct query *q);
static void step_release(struct query *q);

/* The agents of the parts, as fan-out indexes (fed->agents). */
static int
answering_agents(struct query *q)
{
    if (!(q->answered = fq_arena_alloc(q->a, (q->n_parts + 1) * sizeof(int))))
        return FQ_ENOMEM;
    for (size_t i = 0; i < q->n_parts; i++) {
        if ((q->answered[i] = gw_federation_find(q->fed, q->parts[i]->agency)) <
            0)
            return FQ_EPROTO;
    }
    return 0;
}

/* Pools the parts and applies the rules of disclose.c: the table. */
static int
pool_and_protect(struct query *q)
{
    const Fedq__V1__PartialGroup **own = NULL;
    size_t n_groups = 0;
    int rc = gw_combine_parts(q->a, q->parts, q->n_parts, q->plan, q->ds,
                              (size_t)q->fed->cfg->max_groups, &q->groups,
                              &n_groups, &own);

    size_t combos = 0;

    /* suppressed zeros: absent groups would tell them apart */
    if (rc == 0 && q->rules.suppress_zero)
        rc = gw_combine_fill(q->a, q->plan, q->ds,
                             (size_t)q->fed->cfg->max_groups, q->n_parts,
                             &q->groups, &n_groups, &own, &combos);
    if (rc == FQ_ETOOBIG && combos) {
        query_end(q, rc, NULL,
                  "an agreement suppresses zero cells, so the table shows "
                  "every combination of its groups' published values: more "
                  "than the limit of %" PRId64
                  " groups; group by fewer or narrower columns",
                  q->fed->cfg->max_groups);
        return rc;
    }
    if (rc == 0)
        rc = build_response(q, q->groups, n_groups, own, q->parts, q->n_parts,
                            &q->resp, &q->table);
    if (rc < 0)
        query_end(q, rc, NULL, "%s",
                  rc == FQ_ETOOBIG  ? "the pooled result has too many groups "
                                      "or a sum overflows 64-bit integers"
                  : rc == FQ_EPROTO ? "an agency answered with the wrong "
                                      "shape"
                                    : "out of memory");
    return rc;
}

static void
execute_done(struct gw_fanout *f, void *arg)
{
    struct query *q = arg;
    char err[400];
    int rc;

    q->exec = f; /* freed by query_end, after the reply */
    fedq__v1__query_response__init(&q->resp);
    if (!(q->parts = fq_arena_alloc(q->a, (gw_fanout_count(f) + 1) *
                                              sizeof(void *)))) {
        query_end(q, FQ_ENOMEM, NULL, "out of memory");
        return;
    }
    if (!collect(q, f, q->parts, &q->n_parts) || refuse_missing(q))
        return;
    if (q->n_parts == 0) { /* allowed to be partial, but nothing to show */
        query_end(q, FQ_EUNAVAIL, NULL, "no agency of %s answered",
                  q->sql->source.name);
        return;
    }
    if (!accept_terms(q, q->parts, q->n_parts) ||
        hold_for_review(q, q->parts, q->n_parts))
        return;
    if ((rc = answering_agents(q)) < 0) {
        query_end(q, rc, NULL, "an agency answered under another name");
        return;
    }
    if ((rc = gw_rules_ready(&q->rules, &q->fed->cfg->perturbation, err,
                             sizeof(err))) < 0) {
        query_end(q, rc, NULL, "the perturbation table: %s", err);
        return;
    }
    if (pool_and_protect(q) == 0)
        step_ledger(q);
}

/* ---- step 5: the differencing ledger ------------------------------------ */

/* Each answering agency's data vintage, for CheckCells and RecordCells. */
static Fedq__V1__AgencyVintage **
agency_vintages(struct query *q)
{
    Fedq__V1__AgencyVintage **v =
        fq_arena_alloc(q->a, (q->n_parts + 1) * sizeof(*v));

    for (size_t i = 0; v && i < q->n_parts; i++) {
        if (!(v[i] = fq_arena_alloc(q->a, sizeof(*v[i]))))
            return NULL;
        fedq__v1__agency_vintage__init(v[i]);
        v[i]->agency = q->parts[i]->agency;
        v[i]->vintage = q->parts[i]->data_vintage;
    }
    return v;
}

/* The agent's answer in slot i of a fan-out, or the query ends with why. */
static const ProtobufCMessage *
agent_answer(struct query *q, struct gw_fanout *f, size_t i, const char *what)
{
    const struct gw_reply *r = gw_fanout_reply(f, i);

    if (r->status == FQ_RPC_OK)
        return r->resp;
    /* Fail closed: without every agency's ledger nothing is released. */
    query_end(q, fq_rpc_error_from_status(r->status), NULL,
              "agency %s could not %s: %s", gw_fanout_agent(f, i)->conf->agency,
              what, r->message);
    return NULL;
}

static void
ledger_checked(struct gw_fanout *f, void *arg)
{
    struct query *q = arg;
    size_t n = gw_fanout_count(f), hidden = 0;
    const char **agencies = fq_arena_alloc(q->a, (n + 1) * sizeof(char *));
    const char **vintages = fq_arena_alloc(q->a, (n + 1) * sizeof(char *));
    Fedq__V1__CheckCellsResponse **resps =
        fq_arena_alloc(q->a, (n + 1) * sizeof(*resps));
    int rc;

    if (!agencies || !vintages || !resps) {
        query_end(q, FQ_ENOMEM, NULL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(resps[i] = (void *)agent_answer(q, f, i, "check its ledger")))
            goto out;
        agencies[i] = gw_fanout_agent(f, i)->conf->agency;
        for (size_t j = 0; j < q->n_parts; j++) {
            if (strcmp(q->parts[j]->agency, agencies[i]) != 0)
                continue;
            vintages[i] = q->parts[j]->data_vintage;
            for (size_t c = 0; c < q->lc.n && c < resps[i]->n_contributors; c++)
                q->persons[q->lc.cell[c] * q->n_parts + j] =
                    resps[i]->contributors[c];
        }
    }
    struct gw_ledger_answers ans = {n, agencies, vintages, resps};
    struct gw_ledger_rules lr = {q->rules.k, q->rules.perturb, &q->rules,
                                 q->plan};
    if ((rc = gw_ledger_decide(&q->table, &q->lc, &ans, &lr, q->a, &hidden,
                               &q->reused)) < 0) {
        query_end(q, rc, NULL,
                  "an agency's ledger answered cells not asked, or a bad "
                  "published value");
        goto out;
    }
    gw_fanout_free(f);
    step_release(q);
    return;
out:
    gw_fanout_free(f);
}

/* The released cells the agents weigh against what was released before;
 * straight to the release when there are none. */
static void
step_ledger(struct query *q)
{
    Fedq__V1__CheckCellsRequest req = FEDQ__V1__CHECK_CELLS_REQUEST__INIT;

    if (gw_ledger_collect(&q->table, q->cols, q->groups, NULL, q->a, &q->lc) <
            0 ||
        !(req.vintages = agency_vintages(q)) ||
        !(q->persons = fq_arena_alloc(
              q->a, (q->table.n_rows * q->table.n_cols * q->n_parts + 1) *
                        sizeof(*q->persons)))) {
        query_end(q, FQ_ENOMEM, NULL, "out of memory");
        return;
    }
    if (q->lc.n == 0 || !q->rules.ledger) {
        q->lc.n = 0; /* nothing checked: nothing recorded */
        step_release(q);
        return;
    }
    req.query = q->er;
    req.n_vintages = q->n_parts;
    req.cells = q->lc.refs;
    req.n_cells = q->lc.n;
    req.min_cell_count = (uint32_t)q->rules.k;
    if (gw_fanout_start(q->st, q->fed, fq_rpc_call_deadline(q->call),
                        q->answered, q->n_parts, CHECK, &req.base,
                        &fedq__v1__check_cells_response__descriptor,
                        ledger_checked, q) < 0)
        query_end(q, FQ_ENOMEM, NULL, "out of memory");
}

/* ---- step 6: release ----------------------------------------------------- */

static void
finish(struct query *q)
{
    log_decisions(q, &q->table, q->n_parts);
    if (q->resumed)
        gw_held_set_state(q->st->held, q->id, "released");
    query_end(q, 0, &q->resp.base, NULL);
}

static void
ledger_recorded(struct gw_fanout *f, void *arg)
{
    struct query *q = arg;

    for (size_t i = 0; i < gw_fanout_count(f); i++) {
        if (!agent_answer(q, f, i, "record the released cells")) {
            gw_fanout_free(f);
            return;
        }
    }
    gw_fanout_free(f);
    finish(q);
}

/* Which table rows the response returns (after ORDER BY and LIMIT). */
static bool *
returned_rows(struct query *q)
{
    bool *rows = fq_arena_alloc(q->a, (q->table.n_rows + 1) * sizeof(*rows));

    /* the response's rows are a subset of the table's, in any order */
    for (size_t i = 0, j = 0; rows && i < q->table.n_rows; i++) {
        for (j = 0; j < q->resp.n_rows; j++) {
            if (q->resp.rows[j] == q->table.rows[i]) {
                rows[i] = true;
                break;
            }
        }
    }
    return rows;
}

/* Now, to the nanosecond (UTC, RFC 3339): the order of releases. */
static char *
release_time(struct fq_arena *a)
{
    struct timespec ts;
    struct tm tm;
    char day[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    return fq_arena_printf(a, "%s.%09ldZ", day, (long)ts.tv_nsec);
}

/* Each released cell's published value, as the agents keep it. */
static int
record_values(struct query *q, const struct gw_ledger_cells *lc,
              Fedq__V1__RecordCellsRequest *req)
{
    char *at = release_time(q->a);

    if (!at || !(req->values =
                     fq_arena_alloc(q->a, (lc->n + 1) * sizeof(*req->values))))
        return FQ_ENOMEM;
    for (size_t c = 0; c < lc->n; c++) {
        ProtobufCBinaryData *v = &req->values[c];
        if (!(v->data = gw_ledger_pack_value(&q->table.cells[lc->cell[c]],
                                             q->plan, at, q->a, &v->len)))
            return FQ_ENOMEM;
    }
    req->n_values = lc->n;
    return 0;
}

/* Each released cell's parts: every answering agency's contributors to
 * it, with its vintage. */
static int
record_parts(struct query *q, const struct gw_ledger_cells *lc,
             Fedq__V1__RecordCellsRequest *req)
{
    req->parts =
        fq_arena_alloc(q->a, (lc->n * q->n_parts + 1) * sizeof(*req->parts));
    req->parts_per_cell =
        fq_arena_alloc(q->a, (lc->n + 1) * sizeof(*req->parts_per_cell));
    req->ids = fq_arena_alloc(q->a, (lc->n + 1) * sizeof(*req->ids));
    if (!req->parts || !req->parts_per_cell || !req->ids)
        return FQ_ENOMEM;
    for (size_t c = 0; c < lc->n; c++) {
        if (!(req->ids[c] =
                  fq_arena_printf(q->a, "%s/%zu", q->id, lc->cell[c])))
            return FQ_ENOMEM;
        req->parts_per_cell[c] = 0;
        for (size_t i = 0; i < q->n_parts; i++) {
            int64_t persons = q->persons[lc->cell[c] * q->n_parts + i];
            Fedq__V1__CellPart *p;
            if (persons == 0)
                continue; /* no part there */
            if (!(p = fq_arena_alloc(q->a, sizeof(*p))))
                return FQ_ENOMEM;
            fedq__v1__cell_part__init(p);
            p->agency = q->parts[i]->agency;
            p->data_vintage = q->parts[i]->data_vintage;
            p->contributors = persons;
            req->parts[req->n_parts++] = p;
            req->parts_per_cell[c]++;
        }
    }
    req->n_ids = req->n_parts_per_cell = lc->n;
    return 0;
}

/* The released cells go into every agency's ledger before the answer. */
static void
step_record(struct query *q)
{
    Fedq__V1__RecordCellsRequest req = FEDQ__V1__RECORD_CELLS_REQUEST__INIT;
    struct gw_ledger_cells lc;
    bool *rows = returned_rows(q);

    if (!q->rules.ledger || !q->persons) {
        finish(q);
        return;
    }
    if (!rows ||
        gw_ledger_collect(&q->table, q->cols, q->groups, rows, q->a, &lc) < 0 ||
        !(req.vintages = agency_vintages(q)) ||
        record_parts(q, &lc, &req) < 0 || record_values(q, &lc, &req) < 0) {
        query_end(q, FQ_ENOMEM, NULL, "out of memory");
        return;
    }
    if (lc.n == 0) {
        finish(q);
        return;
    }
    req.query = q->er;
    req.n_vintages = q->n_parts;
    req.cells = lc.refs;
    req.n_cells = lc.n;
    if (gw_fanout_start(q->st, q->fed, fq_rpc_call_deadline(q->call),
                        q->answered, q->n_parts, RECORD, &req.base,
                        &fedq__v1__record_cells_response__descriptor,
                        ledger_recorded, q) < 0)
        query_end(q, FQ_ENOMEM, NULL, "out of memory");
}

static int
agency_cmp(const void *a, const void *b)
{
    const Fedq__V1__ExecuteResponse *x = *(Fedq__V1__ExecuteResponse *const *)a;
    const Fedq__V1__ExecuteResponse *y = *(Fedq__V1__ExecuteResponse *const *)b;
    return strcmp(x->agency, y->agency);
}

/* The table as the released-table store sees it: its agencies sorted. */
static int
release_view(struct query *q, struct gw_release *r)
{
    Fedq__V1__ExecuteResponse **sorted =
        fq_arena_alloc(q->a, (q->n_parts + 1) * sizeof(*sorted));
    const char **agencies =
        fq_arena_alloc(q->a, (q->n_parts + 1) * sizeof(char *));
    const char **vintages =
        fq_arena_alloc(q->a, (q->n_parts + 1) * sizeof(char *));

    if (!sorted || !agencies || !vintages)
        return FQ_ENOMEM;
    memcpy(sorted, q->parts, q->n_parts * sizeof(*sorted));
    qsort(sorted, q->n_parts, sizeof(*sorted), agency_cmp);
    for (size_t i = 0; i < q->n_parts; i++) {
        agencies[i] = sorted[i]->agency;
        vintages[i] = sorted[i]->data_vintage;
    }
    *r = (struct gw_release){
        .query_id = q->id,
        .plan = q->plan,
        .ds = q->ds,
        .agencies = agencies,
        .vintages = vintages,
        .n_agencies = q->n_parts,
        .table = &q->table,
        .cols = q->cols,
        .groups = q->groups,
        .rules = &q->rules,
    };
    return 0;
}

/* Secondary suppression (secondary.c), on the whole pooled table before
 * ORDER BY and LIMIT: which rows come back must not depend on it. */
static bool
protect_suppressed(struct query *q, struct gw_release *r)
{
    char err[512];
    size_t hidden = 0;
    int rc;

    if ((rc = release_view(q, r)) < 0 ||
        (rc = gw_secondary(q->st->released, r, q->a, &hidden, err,
                           sizeof(err))) < 0) {
        query_end(q, rc, NULL, "%s", rc == FQ_ENOMEM ? "out of memory" : err);
        return false;
    }
    return true;
}

static void
step_release(struct query *q)
{
    struct gw_release r;
    char err[512];
    bool *rows;
    int rc;

    if (!protect_suppressed(q, &r) ||
        !release_within_budget(q, q->groups, q->parts, q->n_parts, &q->resp))
        return;
    /* recorded before the answer leaves: a crash loses no release */
    if (!(rows = returned_rows(q))) {
        query_end(q, FQ_ENOMEM, NULL, "out of memory");
        return;
    }
    if ((rc = gw_released_record(q->st->released, &r, rows, q->a, err,
                                 sizeof(err))) < 0) {
        query_end(q, rc, NULL, "%s", err);
        return;
    }
    step_record(q);
}

/* ---- Explain ------------------------------------------------------------ */

static bool
plan_has(const Fedq__V1__Plan *p, Fedq__V1__AggregateKind kind)
{
    for (size_t i = 0; i < p->n_aggregates; i++) {
        if (p->aggregates[i]->kind == kind)
            return true;
    }
    return false;
}

/* The disclosure rules beyond the threshold, in words (at most 6). */
static size_t
disclosure_checks(struct query *q, char **c)
{
    const struct gw_rules *r = &q->rules;
    const struct gw_perturb_conf *pc = &q->fed->cfg->perturbation;
    size_t n = 0;

    c[n++] = fq_arena_printf(q->a,
                             "a sum, mean or spread over fewer than %" PRId64
                             " units, or whose largest unit holds %" PRId64
                             "%% or more, is suppressed (dominance)",
                             r->min_units, r->top_percent);
    if (r->suppress_zero)
        c[n++] = fq_arena_printf(q->a, "zero counts are suppressed, and the "
                                       "table shows every combination of its "
                                       "groups' published values");
    if (r->perturb)
        c[n++] = fq_arena_printf(
            q->a,
            "counts move by at most %" PRId64 " (never below %" PRId64
            "), sums by at most %" PRId64
            "%% of their largest unit: the same persons always get the "
            "same value (fedq ptable prints the table)",
            pc->max_deviation, r->k, pc->magnitude_percent);
    if (r->ledger)
        c[n++] = fq_arena_printf(
            q->a,
            "a cell within %" PRId64
            " persons of a cell released before from the same data, to "
            "anyone, is %s",
            r->k - 1,
            r->perturb ? "answered with that cell's value" : "suppressed");
    if (r->protection > 0 || r->protection_pct > 0)
        c[n++] = fq_arena_printf(
            q->a,
            "more cells are suppressed where the tables released before "
            "with the same filter would narrow a suppressed count to less "
            "than %" PRId64 " or a sum to less than %" PRId64 "%% of it",
            r->protection, r->protection_pct);
    c[n++] = fq_arena_printf(q->a, "each agency's agreement sets a budget of "
                                   "released cells per analyst, dataset and "
                                   "data vintage");
    return n;
}

/* The rules that will apply, in words, for the analyst. */
static char **
explain_checks(struct query *q, size_t *ret_n)
{
    char **c = fq_arena_alloc(q->a, (16 + q->n_which) * sizeof(char *));
    size_t n = 0;

    if (!c)
        return NULL;
    if (!q->agreements)
        c[n++] = fq_arena_printf(
            q->a, "a query must name its agreement and purpose: every "
                  "involved agency's signed policy must cover them");
    for (size_t k = 0; q->agreements && k < q->n_which; k++) {
        const struct fq_policy_agreement *ag = q->agreements[k];
        if (!ag)
            continue;
        c[n++] = fq_arena_printf(
            q->a,
            "agency %s: agreement %s covers the query (minimum cell count "
            "%" PRId64 ")%s",
            q->fed->agents[q->which[k]].conf->agency, ag->id,
            ag->release.min_cell_count,
            ag->review == FQ_POLICY_REVIEW_EVERY_QUERY
                ? "; its steward must approve each query, which is held "
                  "until then (fedq result ID)"
                : "");
    }
    c[n++] = fq_arena_printf(q->a, "every agency checks the plan again "
                                   "against its own catalog and its signed "
                                   "policy");
    c[n++] = fq_arena_printf(
        q->a,
        "every aggregate of a group with fewer than %" PRId64
        " contributors (pooled over the agencies) is suppressed",
        q->min_cell_count);
    if (q->n_which > 1)
        c[n++] = fq_arena_printf(
            q->a,
            "each agency knows its own part of a pooled cell: a group, or a "
            "HISTOGRAM bin, where the other agencies hold 1 to %" PRId64
            " contributors is suppressed too",
            q->min_cell_count - 1);
    c[n++] = fq_arena_printf(q->a, "identifier columns are never released");
    if (plan_has(q->plan, FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM))
        c[n++] = fq_arena_printf(
            q->a,
            "each HISTOGRAM bin is a count cell of its own: a bin with 1 to "
            "%" PRId64 " contributors is suppressed",
            q->min_cell_count - 1);
    if (plan_has(q->plan, FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE))
        c[n++] = fq_arena_printf(
            q->a, "QUANTILE is approximate: the middle of the sketch bin "
                  "holding it, within each column's error bound of the exact "
                  "value");
    n += disclosure_checks(q, c + n);
    c[n++] = fq_arena_printf(
        q->a, "an agency that does not answer fails the query, unless a "
              "partial answer is allowed");
    c[n++] = fq_arena_printf(q->a, "ORDER BY and LIMIT apply after "
                                   "suppression; hidden cells sort last");
    for (size_t i = 0; i < n; i++) {
        if (!c[i])
            return NULL;
    }
    *ret_n = n;
    return c;
}

static int
explain_fill(struct query *q, Fedq__V1__ExplainResponse *r)
{
    r->canonical_sql = fq_sql_format(q->sql, q->a);
    r->plan = q->plan;
    r->agencies = fq_arena_alloc(q->a, (q->n_which + 1) * sizeof(char *));
    r->order_by =
        fq_arena_alloc(q->a, (q->sql->n_order_by + 1) * sizeof(void *));
    r->checks = explain_checks(q, &r->n_checks);
    if (!r->canonical_sql || !r->agencies || !r->order_by || !r->checks ||
        result_columns(q, &r->columns, &r->n_columns) < 0)
        return FQ_ENOMEM;
    for (size_t k = 0; k < q->n_which; k++)
        r->agencies[r->n_agencies++] = q->fed->agents[q->which[k]].conf->agency;
    for (size_t i = 0; i < q->sql->n_order_by; i++) {
        Fedq__V1__OrderKey *k = fq_arena_alloc(q->a, sizeof(*k));
        if (!k)
            return FQ_ENOMEM;
        fedq__v1__order_key__init(k);
        k->column = (uint32_t)q->item_col[q->sql->order_by[i].item];
        k->descending = q->sql->order_by[i].desc;
        r->order_by[r->n_order_by++] = k;
    }
    r->has_limit = q->sql->has_limit;
    r->limit = q->sql->has_limit ? (uint64_t)q->sql->limit : 0;
    return 0;
}

static void
explain_reply(struct query *q)
{
    Fedq__V1__ExplainResponse r = FEDQ__V1__EXPLAIN_RESPONSE__INIT;

    if (explain_fill(q, &r) < 0)
        query_end(q, FQ_ENOMEM, NULL, "out of memory");
    else
        query_end(q, 0, &r.base, NULL);
}

/* ---- the methods
 * -------------------------------------------------------------
 */

/* Parses, resolves and goes on to the catalogs: Query, Explain and
 * GetResult alike. id: the held query's, or NULL for a new one. */
static void
query_start(struct fq_rpc_call *call, bool explain,
            const Fedq__V1__QueryRequest *req, const char *id, void *app)
{
    struct fq_arena *a = fq_rpc_call_arena(call);
    struct query *q = fq_arena_alloc(a, sizeof(*q));
    struct fq_sql_error serr;
    int rc;

    if (!q) {
        fq_rpc_call_fail(call, FQ_ENOMEM, "out of memory");
        return;
    }
    q->st = app;
    q->call = call;
    q->a = a;
    q->req = req;
    q->explain = explain;
    q->fed = gw_state_federation(q->st);
    q->min_cell_count = q->fed->cfg->min_cell_count;
    gw_rules_init(&q->rules, q->min_cell_count);
    if (id) {
        snprintf(q->id, sizeof(q->id), "%s", id);
        q->resumed = true;
    } else {
        query_id(q->id);
    }
    rc = fq_sql_parse(req->sql, strlen(req->sql), a, &q->sql, &serr);
    if (rc < 0) {
        query_end(q, rc, NULL, "%s",
                  rc == FQ_ENOMEM ? "out of memory" : serr.msg);
        return;
    }
    if ((rc = resolve_source(q)) < 0) {
        query_end(q, rc == FQ_ENOENT ? FQ_EINVAL : rc, NULL,
                  "line %d, column %d: unknown agency or alias '%s'",
                  q->sql->source.pos.line, q->sql->source.pos.column,
                  q->sql->source.name);
        return;
    }
    step_catalogs(q);
}

/* A term the analyst states: printable text of at most max bytes, since
 * it is logged and shown to stewards. NULL if fine, else what is wrong. */
static const char *
term_problem(const char *s, size_t max, bool required)
{
    size_t n = strlen(s);

    if (required && n == 0)
        return "is missing";
    if (n > max)
        return "is too long";
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return "holds a control character";
    }
    return NULL;
}

/* Agreement and purpose: required for Query, optional for Explain. */
static int
check_terms(struct fq_rpc_call *call, const char *agreement,
            const char *purpose, bool required)
{
    const char *why;

    if ((why = term_problem(agreement, AGREEMENT_MAX, required))) {
        fq_rpc_call_fail(call, FQ_EINVAL,
                         "the agreement %s: name the data sharing agreement "
                         "the query is made under (QueryRequest.agreement; "
                         "fedq query --agreement ID), at most %d bytes",
                         why, AGREEMENT_MAX);
        return FQ_EINVAL;
    }
    if ((why = term_problem(purpose, PURPOSE_MAX,
                            required || agreement[0] != '\0'))) {
        fq_rpc_call_fail(call, FQ_EINVAL,
                         "the purpose %s: state the purpose the query "
                         "serves, as the agreement lists it "
                         "(QueryRequest.purpose; fedq query --purpose TEXT), "
                         "at most %d bytes",
                         why, PURPOSE_MAX);
        return FQ_EINVAL;
    }
    return 0;
}

void
gw_query(struct fq_rpc_call *call, const ProtobufCMessage *msg, void *app)
{
    const Fedq__V1__QueryRequest *req = (const void *)msg;

    if (check_terms(call, req->agreement, req->purpose, true) == 0)
        query_start(call, false, req, NULL, app);
}

void
gw_explain(struct fq_rpc_call *call, const ProtobufCMessage *msg, void *app)
{
    const Fedq__V1__ExplainRequest *req = (const void *)msg;
    Fedq__V1__QueryRequest *qr =
        fq_arena_alloc(fq_rpc_call_arena(call), sizeof(*qr));

    if (!qr) {
        fq_rpc_call_fail(call, FQ_ENOMEM, "out of memory");
        return;
    }
    fedq__v1__query_request__init(qr);
    qr->sql = req->sql;
    qr->agreement = req->agreement;
    qr->purpose = req->purpose;
    if (check_terms(call, req->agreement, req->purpose, false) == 0)
        query_start(call, true, qr, NULL, app);
}

/* "q-" and 16 lowercase hex digits, as query_id() makes them. */
static bool
query_id_valid(const char *id)
{
    if (strlen(id) != 18 || strncmp(id, "q-", 2) != 0)
        return false;
    for (size_t i = 2; i < 18; i++) {
        if (!isdigit((unsigned char)id[i]) && !(id[i] >= 'a' && id[i] <= 'f'))
            return false;
    }
    return true;
}

void
gw_get_result(struct fq_rpc_call *call, const ProtobufCMessage *msg, void *app)
{
    const Fedq__V1__GetResultRequest *req = (const void *)msg;
    struct gw_state *st = app;
    Fedq__V1__QueryRequest *qr = NULL;
    char err[400];
    int rc;

    if (!query_id_valid(req->query_id)) {
        fq_rpc_call_fail(call, FQ_EINVAL,
                         "'%.64s' is not a query id (q- and 16 hex digits)",
                         req->query_id);
        return;
    }
    rc = gw_held_get(st->held, req->query_id, fq_rpc_call_peer(call)->uri,
                     fq_rpc_call_arena(call), &qr, err, sizeof(err));
    if (rc < 0) {
        fq_rpc_call_fail(call, rc, "%s", err);
        return;
    }
    query_start(call, false, qr, req->query_id, app);
}
