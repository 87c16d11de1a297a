/*
 * Each agent's last Describe reply, kept for catalog_ttl so that queries
 * are checked against the catalog without a round trip each time. Entries
 * are immutable and reference-counted: a query keeps the entry it checked
 * against even if a newer reply replaces it meanwhile. The agent checks
 * every plan again against its live catalog, so a stale entry can only
 * make the gateway's early refusal less precise, never let a query through.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/rpc.h"
#include "gateway.h"

#include <pthread.h>

#include "fedq/v1/agent.pb-c.h"

struct gw_catalog {
    int refs;
    int64_t fetched_ms;
    struct fq_arena *arena;
    const Fedq__V1__DescribeResponse *resp;
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
