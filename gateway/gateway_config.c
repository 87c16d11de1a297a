/*
 * The gateway's configuration: directive tables (keys, types, bounds,
 * defaults, docs) and the checks that tie keys together.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/identity.h"
#include "fq/plan.h"
#include "fq/policy.h"
#include "fq/ptable.h"
#include "gateway.h"

static const struct fq_cfg_directive agent_table[] = {
    {.key = "",
     .type = FQ_CFG_LINE,
     .offset = offsetof(struct gw_agent_conf, line)},
    {.key = "agency",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct gw_agent_conf, agency),
     .min = 1,
     .max = 32,
     .doc = "agency id"},
    {.key = "address",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct gw_agent_conf, address),
     .min = 1,
     .max = 200,
     .doc = "the agent's address (host:port, ipv4:IP:PORT, ...)"},
    {.key = "identity",
     .type = FQ_CFG_STRING,
     .offset = offsetof(struct gw_agent_conf, identity),
     .max = 255,
     .doc = "identity the agent must present "
            "(default spiffe://FED/agency/ID/agent)"},
    {.key = "policy_key",
     .type = FQ_CFG_PATH,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct gw_agent_conf, policy_key),
     .doc = "the agency's policy public key (Ed25519 PEM, deploy/pki.sh "
            "policy-key): the signed policy its agent publishes must verify "
            "with it, or the gateway refuses every query to the agency"},
    {0},
};

static const struct fq_cfg_directive alias_table[] = {
    {.key = "",
     .type = FQ_CFG_LINE,
     .offset = offsetof(struct gw_alias_conf, line)},
    {.key = "name",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct gw_alias_conf, name),
     .min = 1,
     .max = 32,
     .doc = "alias, queried as ALIAS.DATASET"},
    {.key = "agencies",
     .type = FQ_CFG_STRLIST,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct gw_alias_conf, agencies),
     .min = 2,
     .max = 64,
     .count_offset = offsetof(struct gw_alias_conf, n_agencies),
     .doc = "agencies holding the same dataset for disjoint populations"},
    {0},
};

static int check_config(void *obj, struct fq_cfg_error *err);
static int check_perturbation(void *obj, struct fq_cfg_error *err);

static const struct fq_cfg_directive perturb_table[] = {
    {.key = "",
     .type = FQ_CFG_LINE,
     .offset = offsetof(struct gw_perturb_conf, line)},
    {.key = "max_deviation",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct gw_perturb_conf, max_deviation),
     .min = 1,
     .max = FQ_PTABLE_MAX_DEVIATION,
     .def = "2",
     .doc = "D: a perturbed count is within D of the true one"},
    {.key = "variance",
     .type = FQ_CFG_DOUBLE,
     .offset = offsetof(struct gw_perturb_conf, variance),
     .dmin = FQ_PTABLE_MIN_VARIANCE,
     .dmax = (double)FQ_PTABLE_MAX_DEVIATION * FQ_PTABLE_MAX_DEVIATION,
     .def = "1.0",
     .doc = "V: the noise's variance (at most D squared)"},
    {.key = "magnitude_percent",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct gw_perturb_conf, magnitude_percent),
     .min = 0,
     .max = 100,
     .def = "5",
     .doc = "a perturbed SUM moves by up to this % of its largest "
            "contributor's total"},
    {0},
};

const struct fq_cfg_directive gw_config_table[] = {
    {.key = "federation",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct gw_config, federation),
     .min = 1,
     .max = 63,
     .doc = "federation name (the trust domain of every identity)"},
    {.type = FQ_CFG_INLINE,
     .offset = offsetof(struct gw_config, server),
     .sub = fq_cfg_server_table},
    {.key = "agent_timeout",
     .type = FQ_CFG_DURATION,
     .offset = offsetof(struct gw_config, agent_timeout_ms),
     .min = 10,
     .max = 600 * 1000,
     .def = "3s",
     .doc = "cap on each call to an agent"},
    {.key = "catalog_ttl",
     .type = FQ_CFG_DURATION,
     .offset = offsetof(struct gw_config, catalog_ttl_ms),
     .min = 0,
     .max = 3600 * 1000,
     .def = "30s",
     .doc = "how long an agency's catalog is reused to check queries"},
    {.key = "min_cell_count",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct gw_config, min_cell_count),
     .min = 1,
     .max = 1000,
     .def = "11",
     .doc = "aggregates of a group with fewer contributors are suppressed"},
    {.key = "max_groups",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct gw_config, max_groups),
     .min = 1,
     .max = 10000000,
     .def = "100000",
     .doc = "most groups a pooled result may have"},
    {.key = "max_group_by",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct gw_config, max_group_by),
     .min = 1,
     .max = FQ_PLAN_MAX_GROUP_BY,
     .def = "4",
     .doc = "most GROUP BY columns a query may use (each agent also "
            "enforces its own)"},
    {.key = "reconnect_backoff",
     .type = FQ_CFG_DURATION,
     .offset = offsetof(struct gw_config, reconnect_backoff_ms),
     .min = 100,
     .max = 120 * 1000,
     .def = "1s",
     .doc = "longest wait between reconnect attempts to an agent"},
    {.key = "secondary_finest_cells",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct gw_config, secondary_finest_cells),
     .min = 1,
     .max = 6000,
     .def = "6000",
     .doc = "most finest cells secondary suppression lays a family of "
            "tables over; beyond it the tables are related through their "
            "margins when their GROUP BYs are acyclic, else refused"},
    {.key = "state_dir",
     .type = FQ_CFG_PATH,
     .offset = offsetof(struct gw_config, state_dir),
     .doc = "where queries held for a steward's review are kept across "
            "restarts (default ../state/gateway from this file)"},
    {.key = "perturbation",
     .type = FQ_CFG_SECTION,
     .offset = offsetof(struct gw_config, perturbation),
     .sub = perturb_table,
     .check = check_perturbation,
     .doc = "the federation's published perturbation table (cell-key "
            "method): every released count and sum is perturbed with it "
            "unless every agency's agreement says none"},
    {.key = "agents",
     .type = FQ_CFG_LIST,
     .offset = offsetof(struct gw_config, agents),
     .max = 256,
     .sub = agent_table,
     .elem_size = sizeof(struct gw_agent_conf),
     .count_offset = offsetof(struct gw_config, n_agents),
     .doc = "the agencies' agents"},
    {.key = "aliases",
     .type = FQ_CFG_LIST,
     .offset = offsetof(struct gw_config, aliases),
     .max = 64,
     .sub = alias_table,
     .elem_size = sizeof(struct gw_alias_conf),
     .count_offset = offsetof(struct gw_config, n_aliases),
     .doc = "federation aliases over several agencies"},
    {0},
};

/* The table must build for every threshold a policy may set. */
static int
check_perturbation(void *obj, struct fq_cfg_error *err)
{
    const struct gw_perturb_conf *c = obj;

    if (c->variance > (double)(c->max_deviation * c->max_deviation))
        FQ_CFG_FAIL(err,
                    "perturbation: variance %g is more than max_deviation "
                    "squared (%" PRId64 ")",
                    c->variance, c->max_deviation * c->max_deviation);
    return 0;
}

static int
find_agent(const struct gw_config *cfg, const char *agency, size_t upto)
{
    for (size_t i = 0; i < upto; i++) {
        if (strcmp(cfg->agents[i].agency, agency) == 0)
            return (int)i;
    }
    return -1;
}

static int
check_agent(struct gw_config *cfg, size_t i, struct fq_cfg_error *err)
{
    struct gw_agent_conf *a = &cfg->agents[i];
    struct fq_identity id;
    char why[300];

    err->line = a->line;
    if (!fq_name_valid(a->agency))
        FQ_CFG_FAIL(err, "agency '%s' must match [a-z0-9][a-z0-9_-]*",
                    a->agency);
    if (find_agent(cfg, a->agency, i) >= 0)
        FQ_CFG_FAIL(err, "agency '%s' listed twice", a->agency);
    if (!a->identity) {
        a->identity =
            fq_arena_printf(cfg->doc.arena, "spiffe://%s/agency/%s/agent",
                            cfg->federation, a->agency);
        if (!a->identity)
            return FQ_ENOMEM;
    }
    if (fq_identity_parse(a->identity, strlen(a->identity), &id) < 0 ||
        id.role != FQ_ROLE_AGENT || strcmp(id.federation, cfg->federation) ||
        strcmp(id.agency, a->agency))
        FQ_CFG_FAIL(err,
                    "identity '%s' is not the agent of agency '%s' in "
                    "federation '%s'",
                    a->identity, a->agency, cfg->federation);
    if (fq_policy_pubkey_check(a->policy_key, why, sizeof(why)) < 0)
        FQ_CFG_FAIL(err, "policy_key: %s", why);
    return 0;
}

static int
check_alias(struct gw_config *cfg, size_t i, struct fq_cfg_error *err)
{
    const struct gw_alias_conf *al = &cfg->aliases[i];

    err->line = al->line;
    if (!fq_name_valid(al->name))
        FQ_CFG_FAIL(err, "alias '%s' must match [a-z0-9][a-z0-9_-]*", al->name);
    if (find_agent(cfg, al->name, cfg->n_agents) >= 0)
        FQ_CFG_FAIL(err, "alias '%s' is also an agency id", al->name);
    for (size_t j = 0; j < i; j++) {
        if (strcmp(cfg->aliases[j].name, al->name) == 0)
            FQ_CFG_FAIL(err, "alias '%s' listed twice", al->name);
    }
    for (size_t j = 0; j < al->n_agencies; j++) {
        if (find_agent(cfg, al->agencies[j], cfg->n_agents) < 0)
            FQ_CFG_FAIL(err, "alias '%s': no agent configured for agency '%s'",
                        al->name, al->agencies[j]);
        for (size_t k = 0; k < j; k++) {
            if (strcmp(al->agencies[j], al->agencies[k]) == 0)
                FQ_CFG_FAIL(err, "alias '%s': agency '%s' listed twice",
                            al->name, al->agencies[j]);
        }
    }
    return 0;
}

static int
check_config(void *obj, struct fq_cfg_error *err)
{
    struct gw_config *cfg = obj;
    int rc;

    if (!fq_federation_valid(cfg->federation))
        FQ_CFG_FAIL(err, "federation '%s' must match [a-z0-9][a-z0-9.-]*",
                    cfg->federation);
    if (fq_cfg_server_check(&cfg->server, err) < 0)
        return FQ_EINVAL;
    for (size_t i = 0; i < cfg->n_agents; i++) {
        if ((rc = check_agent(cfg, i, err)) < 0)
            return rc;
    }
    for (size_t i = 0; i < cfg->n_aliases; i++) {
        if ((rc = check_alias(cfg, i, err)) < 0)
            return rc;
    }
    return 0;
}

int
gw_config_load(const char *path, struct gw_config **ret, char *err,
               size_t errlen)
{
    return fq_cfg_doc_load(path, gw_config_table, check_config,
                           sizeof(struct gw_config), (void **)ret, err, errlen);
}

void
gw_config_free(struct gw_config *cfg)
{
    fq_cfg_doc_free(cfg ? &cfg->doc : NULL);
}
