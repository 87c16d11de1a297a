/*
 * fedq-agent: serves one agency's catalog (and, in later issues, approved
 * aggregate plans) to the federation's gateway over mutual TLS. Only the
 * configured gateway identity is served; raw records never leave.
 */
#include "fq/compat.h"
#include "fq/daemon.h"
#include "fq/error.h"
#include "fq/log.h"
#include "fq/rpc.h"
#include "fq/plan.h"
#include "agent.h"

#include <pthread.h>

#include "fedq/v1/agent.pb-c.h"

struct ag_state {
    const char *config_path;
    struct ag_config *cfg; /* as loaded at start; fixed keys come from it */
    struct fq_tls_material tls;
    pthread_mutex_t mu;         /* guards catalog */
    struct ag_catalog *catalog; /* current; swapped by reload */
};

static struct ag_catalog *
state_catalog(struct ag_state *st)
{
    pthread_mutex_lock(&st->mu);
    struct ag_catalog *cat = st->catalog;
    ag_catalog_ref(cat);
    pthread_mutex_unlock(&st->mu);
    return cat;
}

/* ---- handlers ------------------------------------------------------------ */

static void
handle_describe(struct fq_rpc_call *call, const ProtobufCMessage *req,
                void *app)
{
    struct ag_catalog *cat = state_catalog(app);

    (void)req;
    fq_rpc_call_reply(call, ag_catalog_describe(cat));
    ag_catalog_unref(cat);
}

static void
handle_execute(struct fq_rpc_call *call, const ProtobufCMessage *msg, void *app)
{
    const Fedq__V1__ExecuteRequest *req = (const void *)msg;
    struct ag_state *st = app;
    Fedq__V1__ExecuteResponse resp = FEDQ__V1__EXECUTE_RESPONSE__INIT;
    char err[512];

    if (!req->plan) {
        fq_rpc_call_fail(call, FQ_EINVAL, "request carries no plan");
        return;
    }
    struct ag_catalog *cat = state_catalog(st);
    resp.agency = st->cfg->agency;
    int rc = fq_plan_check_group_by_limit(
        req->plan, (size_t)st->cfg->max_group_by, err, sizeof(err));
    if (rc == 0)
        rc = ag_execute(cat, req->plan, (size_t)st->cfg->max_groups,
                        fq_rpc_call_arena(call), &resp, err, sizeof(err));
    /* Ids and sizes only: never literals or values. */
    fq_log_info("query %.64s for %.200s: %s, %zu groups", req->query_id,
                req->analyst, rc < 0 ? "refused" : "answered", resp.n_groups);
    if (rc < 0)
        fq_rpc_call_fail(call, rc, "agency %s: %s", st->cfg->agency, err);
    else
        fq_rpc_call_reply(call, &resp.base);
    ag_catalog_unref(cat);
}

/* The role check lets any gateway through; only ours is served. */
static int
authorize(void *app, const struct fq_rpc_method *m,
          const struct fq_identity *peer, char *why, size_t whylen)
{
    struct ag_state *st = app;

    (void)m;
    if (strcmp(peer->uri, st->cfg->gateway_identity) == 0)
        return 0;
    snprintf(why, whylen, "%s is not this agent's gateway", peer->uri);
    return FQ_EPERM;
}

static const struct fq_rpc_method agent_methods[] = {
    {"/fedq.v1.Agent/Describe", &fedq__v1__describe_request__descriptor,
     FQ_ROLE_GATEWAY, handle_describe},
    {"/fedq.v1.Agent/Execute", &fedq__v1__execute_request__descriptor,
     FQ_ROLE_GATEWAY, handle_execute},
};

/* ---- startup and reload -------------------------------------------------- */

static int
state_open(struct ag_state *st, const char *path, char *err, size_t errlen)
{
    int rc;

    memset(st, 0, sizeof(*st));
    st->config_path = path;
    pthread_mutex_init(&st->mu, NULL);
    if ((rc = ag_config_load(path, &st->cfg, err, errlen)) < 0 ||
        (rc = fq_cfg_tls_load(st->cfg->doc.path, &st->cfg->server.tls,
                              FQ_ROLE_AGENT, st->cfg->federation,
                              st->cfg->agency, &st->tls, err, errlen)) < 0 ||
        (rc = ag_catalog_build(st->cfg, &st->catalog, err, errlen)) < 0)
        return rc;
    return 0;
}

static void
state_close(struct ag_state *st)
{
    ag_catalog_unref(st->catalog);
    fq_tls_material_release(&st->tls);
    ag_config_free(st->cfg);
    pthread_mutex_destroy(&st->mu);
}

/* Keys that only a restart can change; a reload keeps the running value. */
static void
reload_warn_fixed(const struct ag_config *old, const struct ag_config *new)
{
    if (strcmp(old->agency, new->agency) != 0 ||
        strcmp(old->federation, new->federation) != 0 ||
        strcmp(old->gateway_identity, new->gateway_identity) != 0 ||
        fq_cfg_server_needs_restart(&old->server, &new->server))
        fq_log_warnx("agency, federation, gateway_identity or server keys "
                     "(listen, tls, threads, limits) changed: restart to "
                     "apply them; keeping the running values");
}

static void
reload(void *app)
{
    struct ag_state *st = app;
    struct ag_config *cfg = NULL;
    struct ag_catalog *cat = NULL, *old;
    char err[1024];

    if (ag_config_load(st->config_path, &cfg, err, sizeof(err)) < 0 ||
        ag_catalog_build(cfg, &cat, err, sizeof(err)) < 0) {
        fq_log_errx("reload failed, keeping the running catalog: %s", err);
        ag_config_free(cfg);
        return;
    }
    reload_warn_fixed(st->cfg, cfg);
    ag_catalog_adopt_config(cat, cfg);
    pthread_mutex_lock(&st->mu);
    old = st->catalog;
    st->catalog = cat;
    pthread_mutex_unlock(&st->mu);
    ag_catalog_unref(old);
    fq_log_info("reloaded: %zu datasets", ag_catalog_datasets(cat));
}

static int
serve(struct ag_state *st)
{
    const struct ag_config *cfg = st->cfg;
    char name[64];
    struct fq_rpc_server_opts o = {
        .methods = agent_methods,
        .n_methods = FQ_ARRAY_LEN(agent_methods),
        .authorize = authorize,
        .app = st,
    };
    fq_cfg_server_rpc_opts(&cfg->server, &st->tls, cfg->federation, &o);
    snprintf(name, sizeof(name), "agent-%s", cfg->agency);
    struct fq_daemon_spec spec = {
        .name = name,
        .run_dir = cfg->server.run_dir,
        .rpc = &o,
        .reload = reload,
        .app = st,
    };
    fq_log_info("agency %s: %zu datasets, serving %s", cfg->agency,
                ag_catalog_datasets(st->catalog), cfg->gateway_identity);
    return fq_daemon_serve(&spec);
}

int
main(int argc, char **argv)
{
    struct fq_daemon_args args;
    struct ag_state st;
    char err[1024];
    int rc = 1;

    if (fq_daemon_parse_args(argc, argv, "fedq-agent", &args) < 0)
        return 2;
    if (args.reference) {
        fq_cfg_write_reference(stdout, "fedq-agent", ag_config_table);
        return 0;
    }
    fq_log_setup("agent", FQ_LOG_INFO, FQ_LOG_TEXT);
    fq_daemon_block_signals();
    fq_rpc_global_init();
    if (state_open(&st, args.config, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    if (args.check) {
        printf("%s: configuration OK (%zu datasets)\n", args.config,
               ag_catalog_datasets(st.catalog));
        rc = 0;
        goto out;
    }
    fq_daemon_setup_logging("agent", st.cfg->server.log_format,
                            st.cfg->server.log_level, &args);
    rc = serve(&st);
out:
    state_close(&st);
    fq_rpc_global_shutdown();
    return rc;
}
