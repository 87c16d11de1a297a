/*
 * The federation as the gateway sees it: the configuration plus one
 * long-lived, identity-checked channel per agent. Built whole and swapped
 * whole on reload; calls in flight keep the one they started with through
 * a reference count, so channels are closed only when nobody uses them.
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "gateway.h"

#include <pthread.h>

int
gw_federation_new(struct gw_config *cfg, const struct fq_tls_material *tls,
                  struct gw_federation **ret, char *err, size_t errlen)
{
    struct gw_federation *fed = calloc(1, sizeof(*fed));
    int rc = FQ_ENOMEM;

    if (!fed ||
        !(fed->agents = calloc(cfg->n_agents + 1, sizeof(*fed->agents)))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    fed->refs = 1;
    fed->cfg = cfg;
    for (size_t i = 0; i < cfg->n_agents; i++) {
        const struct gw_agent_conf *a = &cfg->agents[i];
        struct fq_rpc_channel_opts o = {
            .target = a->address,
            .tls = tls,
            .expect_identity = a->identity,
            .max_message_bytes = (size_t)cfg->server.max_message_bytes,
            .max_backoff_ms = (int)cfg->reconnect_backoff_ms,
        };
        fed->agents[i].conf = a;
        if (!(fed->agents[i].mu = malloc(sizeof(pthread_mutex_t)))) {
            snprintf(err, errlen, "out of memory");
            rc = FQ_ENOMEM;
            goto fail;
        }
        pthread_mutex_init(fed->agents[i].mu, NULL);
        if ((rc = fq_rpc_channel_open(&o, &fed->agents[i].ch, err, errlen)) <
            0) {
            pthread_mutex_destroy(fed->agents[i].mu);
            free(fed->agents[i].mu);
            goto fail;
        }
        fed->n_agents++;
    }
    *ret = fed;
    return 0;
fail:
    if (fed)
        fed->cfg = NULL; /* the caller still owns cfg on failure */
    gw_federation_unref(fed);
    return rc;
}

void
gw_federation_ref(struct gw_federation *fed)
{
    __atomic_add_fetch(&fed->refs, 1, __ATOMIC_RELAXED);
}

void
gw_federation_unref(struct gw_federation *fed)
{
    if (!fed || __atomic_sub_fetch(&fed->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    for (size_t i = 0; i < fed->n_agents; i++) {
        fq_rpc_channel_free(fed->agents[i].ch);
        gw_catalog_unref(fed->agents[i].cached);
        pthread_mutex_destroy(fed->agents[i].mu);
        free(fed->agents[i].mu);
    }
    gw_config_free(fed->cfg);
    free(fed->agents);
    free(fed);
}

int
gw_federation_find(const struct gw_federation *fed, const char *agency)
{
    for (size_t i = 0; i < fed->n_agents; i++) {
        if (strcmp(fed->agents[i].conf->agency, agency) == 0)
            return (int)i;
    }
    return -1;
}

struct gw_federation *
gw_state_federation(struct gw_state *st)
{
    pthread_mutex_lock(st->mu);
    struct gw_federation *fed = st->fed;
    gw_federation_ref(fed);
    pthread_mutex_unlock(st->mu);
    return fed;
}
