/*
 * Per-agency outcomes, shared by every fan-out method, and the
 * FederationStatus method: a Health/Check to every agent, answered with
 * each agency's state and latency.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/log.h"
#include "gateway.h"

#include "fedq/v1/gateway.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"

#define HEALTH_CHECK "/grpc.health.v1.Health/Check"

static Fedq__V1__AgencyState
agency_state(const struct gw_reply *r)
{
    switch (r->status) {
    case FQ_RPC_OK:
        return FEDQ__V1__AGENCY_STATE__AGENCY_STATE_OK;
    case FQ_RPC_DEADLINE_EXCEEDED:
        return FEDQ__V1__AGENCY_STATE__AGENCY_STATE_TIMEOUT;
    case FQ_RPC_UNAVAILABLE:
        return FEDQ__V1__AGENCY_STATE__AGENCY_STATE_UNAVAILABLE;
    case FQ_RPC_UNAUTHENTICATED:
    case FQ_RPC_PERMISSION_DENIED:
        return FEDQ__V1__AGENCY_STATE__AGENCY_STATE_REFUSED;
    default:
        return FEDQ__V1__AGENCY_STATE__AGENCY_STATE_ERROR;
    }
}

void *
gw_agency_status(struct fq_arena *arena, const struct gw_agent *agent,
                 const struct gw_reply *reply)
{
    Fedq__V1__AgencyStatus *s = fq_arena_alloc(arena, sizeof(*s));
    if (!s)
        return NULL;
    fedq__v1__agency_status__init(s);
    s->agency = agent->conf->agency;
    s->state = agency_state(reply);
    s->latency_ms = reply->latency_ms > 0 ? (uint32_t)reply->latency_ms : 0;
    if (reply->status != FQ_RPC_OK) {
        s->message = fq_arena_printf(
            arena, "%s: %s", fq_rpc_status_name(reply->status), reply->message);
        if (!s->message)
            return NULL;
    }
    return s;
}

struct status_ctx {
    struct fq_rpc_call *call;
    struct gw_federation *fed;
};

/* An agent that answers but is draining counts as not serving. */
static void
status_note_serving(Fedq__V1__AgencyStatus *s, const struct gw_reply *r)
{
    const Grpc__Health__V1__HealthCheckResponse *h = (const void *)r->resp;
    if (s->state == FEDQ__V1__AGENCY_STATE__AGENCY_STATE_OK &&
        h->status !=
            GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING) {
        s->state = FEDQ__V1__AGENCY_STATE__AGENCY_STATE_UNAVAILABLE;
        s->message = "not serving (shutting down)";
    }
}

static void
status_done(struct gw_fanout *f, void *arg)
{
    struct status_ctx *ctx = arg;
    struct fq_arena *a = fq_rpc_call_arena(ctx->call);
    Fedq__V1__FederationStatusResponse resp =
        FEDQ__V1__FEDERATION_STATUS_RESPONSE__INIT;
    size_t n = gw_fanout_count(f);

    resp.federation = ctx->fed->cfg->federation;
    resp.gateway_version = FQ_VERSION;
    resp.n_agencies = n;
    resp.agencies = fq_arena_alloc(a, (n + 1) * sizeof(*resp.agencies));
    for (size_t i = 0; resp.agencies && i < n; i++) {
        const struct gw_reply *r = gw_fanout_reply(f, i);
        resp.agencies[i] = gw_agency_status(a, gw_fanout_agent(f, i), r);
        if (!resp.agencies[i]) {
            resp.agencies = NULL;
            break;
        }
        status_note_serving(resp.agencies[i], r);
    }
    /* ctx lives in the call's arena, gone once the call is finished. */
    struct gw_federation *fed = ctx->fed;
    if (resp.agencies)
        fq_rpc_call_reply(ctx->call, &resp.base);
    else
        fq_rpc_call_fail(ctx->call, FQ_ENOMEM, "out of memory");
    gw_federation_unref(fed);
    gw_fanout_free(f);
}

void
gw_federation_status(struct fq_rpc_call *call, const ProtobufCMessage *req,
                     void *app)
{
    struct gw_state *st = app;
    struct status_ctx *ctx =
        fq_arena_alloc(fq_rpc_call_arena(call), sizeof(*ctx));
    Grpc__Health__V1__HealthCheckRequest hc =
        GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;

    (void)req;
    if (!ctx) {
        fq_rpc_call_fail(call, FQ_ENOMEM, "out of memory");
        return;
    }
    ctx->call = call;
    ctx->fed = gw_state_federation(st);
    hc.service = "fedq.v1.Agent";
    if (gw_fanout_start(st, ctx->fed, fq_rpc_call_deadline(call), NULL, 0,
                        HEALTH_CHECK, &hc.base,
                        &grpc__health__v1__health_check_response__descriptor,
                        status_done, ctx) < 0) {
        gw_federation_unref(ctx->fed);
        fq_rpc_call_fail(call, FQ_ENOMEM, "out of memory");
    }
}
