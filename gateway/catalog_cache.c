/*
 * Each agent's last Describe reply, kept for catalog_ttl so that queries
 * are checked against the catalog without a round trip each time. Entries
 * are immutable and reference-counted: a query keeps the entry it checked
 * against even if a newer reply replaces it meanwhile. The agent checks
 * every plan again against its live catalog, so a stale entry can only
 * make the gateway's early refusal less precise, never let a query through.
 *
 * The agency's signed policy arrives with the catalog and is verified here,
 * once per reply, with the agency's policy key from the configuration: the
 * federation's copy of the agreements is always the one the agent runs,
 * and an agent cannot publish terms its agency did not sign.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/log.h"
#include "fq/policy.h"
#include "fq/rpc.h"
#include "gateway.h"

#include <pthread.h>

#include "fedq/v1/agent.pb-c.h"

struct gw_catalog {
    int refs;
    int64_t fetched_ms;
    struct fq_arena *arena;
    const Fedq__V1__DescribeResponse *resp;
    struct fq_policy *policy; /* verified; NULL with why set */
    char why[400];
};

static void
catalog_ref(struct gw_catalog *c)
{
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
}

void
gw_catalog_unref(struct gw_catalog *c)
{
    if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    fq_policy_free(c->policy);
    fq_arena_free(c->arena);
    free(c);
}

struct gw_catalog *
gw_catalog_get(struct gw_federation *fed, size_t i)
{
    struct gw_agent *ag = &fed->agents[i];
    struct gw_catalog *c;

    pthread_mutex_lock(ag->mu);
    c = ag->cached;
    if (c && fq_rpc_now_ms() - c->fetched_ms <= fed->cfg->catalog_ttl_ms)
        catalog_ref(c);
    else
        c = NULL;
    pthread_mutex_unlock(ag->mu);
    return c;
}

/* Verifies the policy the agent published; on failure c->why says why. */
static void
verify_policy(struct gw_catalog *c, const struct gw_config *cfg,
              const struct gw_agent_conf *conf)
{
    const Fedq__V1__DescribeResponse *r = c->resp;
    const char *sig = r->policy_signature ? r->policy_signature : "";
    char name[96], sig_name[112], err[360];

    if (r->policy.len == 0) {
        snprintf(c->why, sizeof(c->why),
                 "it publishes no valid signed policy (its agent's log says "
                 "why)");
        return;
    }
    snprintf(name, sizeof(name), "the policy of agency %s", conf->agency);
    snprintf(sig_name, sizeof(sig_name), "the policy signature of agency %s",
             conf->agency);
    if (fq_policy_verify_buf(name, (const char *)r->policy.data, r->policy.len,
                             sig_name, sig, strlen(sig), conf->policy_key,
                             &c->policy, err, sizeof(err)) < 0) {
        snprintf(c->why, sizeof(c->why), "%s", err);
    } else if (strcmp(c->policy->agency, conf->agency) != 0 ||
               strcmp(c->policy->federation, cfg->federation) != 0) {
        snprintf(c->why, sizeof(c->why),
                 "it publishes the policy of agency %s in federation %s",
                 c->policy->agency, c->policy->federation);
        fq_policy_free(c->policy);
        c->policy = NULL;
    }
    if (!c->policy)
        fq_log_warnx("agency %s: %s", conf->agency, c->why);
}

struct gw_catalog *
gw_catalog_put(struct gw_federation *fed, size_t i, struct fq_arena *arena,
               const void *describe_response)
{
    struct gw_agent *ag = &fed->agents[i];
    struct gw_catalog *c = calloc(1, sizeof(*c)), *old;

    if (!c) {
        fq_arena_free(arena);
        return NULL;
    }
    c->refs = 2; /* the cache's and the caller's */
    c->fetched_ms = fq_rpc_now_ms();
    c->arena = arena;
    c->resp = describe_response;
    verify_policy(c, fed->cfg, ag->conf);
    pthread_mutex_lock(ag->mu);
    old = ag->cached;
    ag->cached = c;
    pthread_mutex_unlock(ag->mu);
    gw_catalog_unref(old);
    return c;
}

const void *
gw_catalog_dataset(const struct gw_catalog *c, const char *name)
{
    for (size_t i = 0; i < c->resp->n_datasets; i++) {
        if (strcmp(c->resp->datasets[i]->name, name) == 0)
            return c->resp->datasets[i];
    }
    return NULL;
}

const struct fq_policy *
gw_catalog_policy(const struct gw_catalog *c, const char **why)
{
    *why = c->why;
    return c->policy;
}
