/*
 * `fedq health`: the gateway's own health (grpc.health.v1) and, through
 * the gateway, each agency's. Exit 0 only when all of them serve, so
 * scripts can wait on it.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "cli.h"

#include "fedq/v1/gateway.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"

static int
gateway_serving(struct cli *c, const char **ret_state)
{
    Grpc__Health__V1__HealthCheckRequest req =
        GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    struct fq_rpc_result res;
    int rc;

    if ((rc = cli_call(c, "/grpc.health.v1.Health/Check", &req.base,
                       &grpc__health__v1__health_check_response__descriptor,
                       &res)))
        return rc;
    const Grpc__Health__V1__HealthCheckResponse *h = (const void *)res.resp;
    bool serving =
        h->status ==
        GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    *ret_state = serving ? "serving" : "not_serving";
    fq_arena_free(res.arena);
    return serving ? CLI_OK : CLI_PARTIAL;
}

/* CLI_PARTIAL if any agency is not ok. */
static int
agencies_exit(const Fedq__V1__FederationStatusResponse *r)
{
    for (size_t i = 0; i < r->n_agencies; i++) {
        if (r->agencies[i]->state != FEDQ__V1__AGENCY_STATE__AGENCY_STATE_OK)
            return CLI_PARTIAL;
    }
    return CLI_OK;
}

int
cli_cmd_health(struct cli *c, int argc, char **argv)
{
    Fedq__V1__FederationStatusRequest req =
        FEDQ__V1__FEDERATION_STATUS_REQUEST__INIT;
    struct fq_rpc_result res;
    const char *gw_state = "?";
    int rc, gw_rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--format") != 0 || i + 1 == argc ||
            cli_set_format(c, argv[++i]) < 0) {
            fprintf(stderr, "usage: fedq health [--format FMT]\n");
            return CLI_USAGE;
        }
    }
    gw_rc = gateway_serving(c, &gw_state);
    if (gw_rc == CLI_ERROR || gw_rc == CLI_USAGE)
        return gw_rc;
    if ((rc =
             cli_call(c, "/fedq.v1.Gateway/FederationStatus", &req.base,
                      &fedq__v1__federation_status_response__descriptor, &res)))
        return rc;
    const Fedq__V1__FederationStatusResponse *r = (const void *)res.resp;
    struct cli_out *o = cli_out_new(c->format);
    static const char *const cols[] = {"gateway", "state", "federation",
                                       "version", NULL};
    const char *row[] = {c->cfg->gateway, gw_state, r->federation,
                         r->gateway_version};
    cli_out_section(o, "gateway", cols);
    cli_out_row(o, row);
    cli_out_agencies(o, res.arena, r->agencies, r->n_agencies);
    rc = agencies_exit(r);
    cli_out_print(o);
    fq_arena_free(res.arena);
    return gw_rc != CLI_OK ? gw_rc : rc;
}
