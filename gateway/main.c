/*
 * fedq-gateway: takes analysts' calls, checks who they are, fans out to the
 * agencies' agents and combines what they answer. Holds no agency data.
 */
#include "fq/compat.h"
#include "fq/daemon.h"
#include "fq/error.h"
#include "fq/log.h"
#include "fq/rpc.h"
#include "gateway.h"
#include "secondary.h"

#include <pthread.h>

#include "fedq/v1/gateway.pb-c.h"

static const struct fq_rpc_method gateway_methods[] = {
    {"/fedq.v1.Gateway/ListDatasets",
     &fedq__v1__list_datasets_request__descriptor,
     FQ_ROLE_ANALYST | FQ_ROLE_STEWARD, gw_list_datasets},
    {"/fedq.v1.Gateway/FederationStatus",
     &fedq__v1__federation_status_request__descriptor,
     FQ_ROLE_ANALYST | FQ_ROLE_STEWARD, gw_federation_status},
    {"/fedq.v1.Gateway/Query", &fedq__v1__query_request__descriptor,
     FQ_ROLE_ANALYST, gw_query},
    {"/fedq.v1.Gateway/Explain", &fedq__v1__explain_request__descriptor,
     FQ_ROLE_ANALYST, gw_explain},
    {"/fedq.v1.Gateway/GetResult", &fedq__v1__get_result_request__descriptor,
     FQ_ROLE_ANALYST, gw_get_result},
};

static pthread_mutex_t state_mu = PTHREAD_MUTEX_INITIALIZER;

static int
load_federation(struct gw_state *st, const char *path,
                struct gw_federation **ret, char *err, size_t errlen)
{
    struct gw_config *cfg = NULL;
    int rc;

    if ((rc = gw_config_load(path, &cfg, err, errlen)) < 0)
        return rc;
    if ((rc = gw_federation_new(cfg, &st->tls, ret, err, errlen)) < 0)
        gw_config_free(cfg);
    return rc;
}

static bool
same_path(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* SIGHUP: new agents, addresses, identities and aliases take effect for new
 * calls; calls in flight finish on the federation they started with. */
static void
reload(void *app)
{
    struct gw_state *st = app;
    struct gw_federation *fed = NULL, *old;
    char err[1024];

    if (load_federation(st, st->config_path, &fed, err, sizeof(err)) < 0) {
        fq_log_errx("reload failed, keeping the running configuration: %s",
                    err);
        return;
    }
    if (strcmp(fed->cfg->federation, st->fed->cfg->federation) != 0) {
        fq_log_errx("reload failed, keeping the running configuration: "
                    "'federation' cannot change without a restart");
        gw_federation_unref(fed);
        return;
    }
    if (fq_cfg_server_needs_restart(&fed->cfg->server, &st->fed->cfg->server) ||
        !same_path(fed->cfg->state_dir, st->fed->cfg->state_dir))
        fq_log_warnx("server keys (listen, tls, threads, limits) or state_dir "
                     "changed: restart to apply them; keeping the running "
                     "values");
    pthread_mutex_lock(st->mu);
    old = st->fed;
    st->fed = fed;
    pthread_mutex_unlock(st->mu);
    gw_federation_unref(old);
    fq_log_info("reloaded: %zu agents, %zu aliases", fed->n_agents,
                fed->cfg->n_aliases);
}

static int
state_open(struct gw_state *st, const char *path, bool serving, char *err,
           size_t errlen)
{
    struct gw_config *cfg = NULL;
    int rc;

    memset(st, 0, sizeof(*st));
    st->config_path = path;
    st->mu = &state_mu;
    if ((rc = gw_config_load(path, &cfg, err, errlen)) < 0)
        return rc;
    if ((rc = fq_cfg_tls_load(path, &cfg->server.tls, FQ_ROLE_GATEWAY,
                              cfg->federation, NULL, &st->tls, err, errlen)) <
            0 ||
        (rc = gw_federation_new(cfg, &st->tls, &st->fed, err, errlen)) < 0) {
        gw_config_free(cfg);
        return rc;
    }
    /* --check creates nothing. */
    if (!serving)
        return 0;
    if ((rc = gw_held_open(cfg, &st->held, err, errlen)) < 0)
        return rc;
    if ((rc = gw_budget_open(cfg, &st->budget, err, errlen)) < 0)
        return rc;
    return gw_released_open(cfg, &st->released, err, errlen);
}

static void
state_close(struct gw_state *st)
{
    gw_released_close(st->released);
    gw_budget_close(st->budget);
    gw_held_close(st->held);
    gw_federation_unref(st->fed);
    fq_tls_material_release(&st->tls);
}

static int
serve(struct gw_state *st)
{
    const struct gw_config *cfg = st->fed->cfg;
    struct fq_rpc_server_opts o = {
        .methods = gateway_methods,
        .n_methods = FQ_ARRAY_LEN(gateway_methods),
        .app = st,
    };
    fq_cfg_server_rpc_opts(&cfg->server, &st->tls, cfg->federation, &o);
    struct fq_daemon_spec spec = {
        .name = "gateway",
        .run_dir = cfg->server.run_dir,
        .rpc = &o,
        .reload = reload,
        .app = st,
        .server_out = &st->srv,
    };
    fq_log_info("federation %s: %zu agents, %zu aliases", cfg->federation,
                st->fed->n_agents, cfg->n_aliases);
    return fq_daemon_serve(&spec);
}

int
main(int argc, char **argv)
{
    struct fq_daemon_args args;
    struct gw_state st;
    char err[1024];
    int rc = 1;

    if (fq_daemon_parse_args(argc, argv, "fedq-gateway", &args) < 0)
        return 2;
    if (args.reference) {
        fq_cfg_write_reference(stdout, "fedq-gateway", gw_config_table);
        return 0;
    }
    fq_log_setup("gateway", FQ_LOG_INFO, FQ_LOG_TEXT);
    fq_daemon_block_signals();
    fq_rpc_global_init();
    if (state_open(&st, args.config, !args.check, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    if (args.check) {
        printf("%s: configuration OK (%zu agents, %zu aliases)\n", args.config,
               st.fed->n_agents, st.fed->cfg->n_aliases);
        rc = 0;
        goto out;
    }
    fq_daemon_setup_logging("gateway", st.fed->cfg->server.log_format,
                            st.fed->cfg->server.log_level, &args);
    rc = serve(&st);
out:
    state_close(&st);
    fq_rpc_global_shutdown();
    return rc;
}
