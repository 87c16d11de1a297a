/*
 * Gateway/ListDatasets: asks every agent (or one) for its catalog in
 * parallel and merges the answers, naming every agency that did not answer.
 * Aliases list the datasets that all of their members hold with the same
 * columns, so <alias>.<dataset> is only offered where pooling makes sense.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "gateway.h"

#include "fedq/v1/agent.pb-c.h"
#include "fedq/v1/gateway.pb-c.h"

#define DESCRIBE "/fedq.v1.Agent/Describe"

struct list_ctx {
    struct fq_rpc_call *call;
    struct gw_federation *fed;
    const char *agency; /* filter, or NULL */
};

/* The Describe reply of agency within the fan-out, or NULL. */
static const Fedq__V1__DescribeResponse *
reply_of(struct gw_fanout *f, const char *agency)
{
    for (size_t i = 0; i < gw_fanout_count(f); i++) {
        const struct gw_reply *r = gw_fanout_reply(f, i);
        if (r->status == FQ_RPC_OK &&
            strcmp(gw_fanout_agent(f, i)->conf->agency, agency) == 0)
            return (const void *)r->resp;
    }
    return NULL;
}

static const Fedq__V1__Dataset *
find_dataset(const Fedq__V1__DescribeResponse *d, const char *name)
{
    for (size_t i = 0; i < d->n_datasets; i++) {
        if (strcmp(d->datasets[i]->name, name) == 0)
            return d->datasets[i];
    }
    return NULL;
}

/* Same columns, in the same order, with the same roles and types. */
static bool
same_columns(const Fedq__V1__Dataset *a, const Fedq__V1__Dataset *b)
{
    if (a->n_columns != b->n_columns)
        return false;
    for (size_t i = 0; i < a->n_columns; i++) {
        const Fedq__V1__Column *x = a->columns[i], *y = b->columns[i];
        if (strcmp(x->name, y->name) || x->role != y->role ||
            x->type != y->type)
            return false;
    }
    return true;
}

/* Datasets of the first answering member that every other answering member
 * holds with the same columns. */
static int
alias_datasets(struct fq_arena *a, struct gw_fanout *f,
               const struct gw_alias_conf *al, Fedq__V1__Alias *out)
{
    const Fedq__V1__DescribeResponse *first = NULL;

    out->complete = true;
    for (size_t j = 0; j < al->n_agencies; j++) {
        const Fedq__V1__DescribeResponse *d = reply_of(f, al->agencies[j]);
        out->complete &= d != NULL;
        if (!first)
            first = d;
    }
    if (!first)
        return 0;
    out->datasets = fq_arena_alloc(a, (first->n_datasets + 1) * sizeof(char *));
    if (!out->datasets)
        return FQ_ENOMEM;
    for (size_t k = 0; k < first->n_datasets; k++) {
        const Fedq__V1__Dataset *ds = first->datasets[k];
        bool everywhere = true;
        for (size_t j = 0; j < al->n_agencies && everywhere; j++) {
            const Fedq__V1__DescribeResponse *d = reply_of(f, al->agencies[j]);
            const Fedq__V1__Dataset *o = d ? find_dataset(d, ds->name) : ds;
            everywhere = o && same_columns(ds, o);
        }
        if (everywhere)
            out->datasets[out->n_datasets++] = ds->name;
    }
    return 0;
}

static int
build_aliases(struct fq_arena *a, struct gw_fanout *f,
              const struct gw_config *cfg, Fedq__V1__ListDatasetsResponse *resp)
{
    resp->aliases = fq_arena_alloc(a, (cfg->n_aliases + 1) * sizeof(void *));
    if (!resp->aliases)
        return FQ_ENOMEM;
    for (size_t i = 0; i < cfg->n_aliases; i++) {
        const struct gw_alias_conf *al = &cfg->aliases[i];
        Fedq__V1__Alias *out = fq_arena_alloc(a, sizeof(*out));
        if (!out)
            return FQ_ENOMEM;
        fedq__v1__alias__init(out);
        out->name = al->name;
        out->agencies = al->agencies;
        out->n_agencies = al->n_agencies;
        if (alias_datasets(a, f, al, out) < 0)
            return FQ_ENOMEM;
        resp->aliases[resp->n_aliases++] = out;
    }
    return 0;
}

static int
build_datasets(struct fq_arena *a, struct gw_fanout *f,
               Fedq__V1__ListDatasetsResponse *resp)
{
    size_t n = gw_fanout_count(f), total = 0;

    for (size_t i = 0; i < n; i++) {
        const struct gw_reply *r = gw_fanout_reply(f, i);
        if (r->status == FQ_RPC_OK)
            total += ((const Fedq__V1__DescribeResponse *)r->resp)->n_datasets;
    }
    resp->datasets = fq_arena_alloc(a, (total + 1) * sizeof(void *));
    resp->agencies = fq_arena_alloc(a, (n + 1) * sizeof(void *));
    if (!resp->datasets || !resp->agencies)
        return FQ_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const struct gw_agent *ag = gw_fanout_agent(f, i);
        const struct gw_reply *r = gw_fanout_reply(f, i);
        if (!(resp->agencies[resp->n_agencies++] = gw_agency_status(a, ag, r)))
            return FQ_ENOMEM;
        if (r->status != FQ_RPC_OK)
            continue;
        const Fedq__V1__DescribeResponse *d = (const void *)r->resp;
        for (size_t k = 0; k < d->n_datasets; k++) {
            /* The channel proved who answered; the agent's own claim of
             * its agency is not trusted. */
            d->datasets[k]->agency = ag->conf->agency;
            resp->datasets[resp->n_datasets++] = d->datasets[k];
        }
    }
    return 0;
}

static void
list_done(struct gw_fanout *f, void *arg)
{
    struct list_ctx *ctx = arg;
    struct fq_arena *a = fq_rpc_call_arena(ctx->call);
    Fedq__V1__ListDatasetsResponse resp =
        FEDQ__V1__LIST_DATASETS_RESPONSE__INIT;

    /* ctx lives in the call's arena, gone once the call is finished. */
    struct gw_federation *fed = ctx->fed;
    if (build_datasets(a, f, &resp) < 0 ||
        (!ctx->agency && build_aliases(a, f, fed->cfg, &resp) < 0))
        fq_rpc_call_fail(ctx->call, FQ_ENOMEM, "out of memory");
    else
        fq_rpc_call_reply(ctx->call, &resp.base);
    gw_federation_unref(fed);
    gw_fanout_free(f);
}

void
gw_list_datasets(struct fq_rpc_call *call, const ProtobufCMessage *msg,
                 void *app)
{
    const Fedq__V1__ListDatasetsRequest *req = (const void *)msg;
    Fedq__V1__DescribeRequest describe = FEDQ__V1__DESCRIBE_REQUEST__INIT;
    struct gw_state *st = app;
    struct list_ctx *ctx =
        fq_arena_alloc(fq_rpc_call_arena(call), sizeof(*ctx));
    int one = -1;

    if (!ctx) {
        fq_rpc_call_fail(call, FQ_ENOMEM, "out of memory");
        return;
    }
    ctx->call = call;
    ctx->fed = gw_state_federation(st);
    if (req->agency[0]) {
        one = gw_federation_find(ctx->fed, req->agency);
        if (one < 0) {
            gw_federation_unref(ctx->fed);
            fq_rpc_call_fail(call, FQ_ENOENT, "unknown agency '%.64s'",
                             req->agency);
            return;
        }
        ctx->agency = req->agency;
    }
    if (gw_fanout_start(
            st, ctx->fed, fq_rpc_call_deadline(call), one >= 0 ? &one : NULL,
            one >= 0 ? 1 : 0, DESCRIBE, &describe.base,
            &fedq__v1__describe_response__descriptor, list_done, ctx) < 0) {
        gw_federation_unref(ctx->fed);
        fq_rpc_call_fail(call, FQ_ENOMEM, "out of memory");
    }
}
