/*
 * The release policy in force (guard.h). A reload builds complete new
 * rules and swaps one pointer under the mutex; calls hold a reference to
 * the rules they started with, so a policy is freed only by the last call
 * that uses it.
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "fq/log.h"
#include "fq/policy.h"
#include "agent.h"
#include "guard.h"

#include <pthread.h>
#include <stdatomic.h>

#include "fedq/v1/agent.pb-c.h"

struct ag_guard {
    pthread_mutex_t mu;     /* guards rules */
    struct ag_rules *rules; /* in force; never NULL */
    /* The running agency and federation: a reload cannot change them. */
    char agency[FQ_NAME_MAX + 1];
    char federation[FQ_FEDERATION_MAX + 1];
};

/* The policy must be this agency's: another agency's signed policy,
 * with a key that verifies it, still does not speak for this one. */
static int
check_owner(const struct fq_policy *p, const char *path, const char *agency,
            const char *federation, char *err, size_t errlen)
{
    if (strcmp(p->agency, agency) != 0) {
        snprintf(err, errlen, "policy '%s' is agency %s's, not %s's", path,
                 p->agency, agency);
        return FQ_EINVAL;
    }
    if (strcmp(p->federation, federation) != 0) {
        snprintf(err, errlen, "policy '%s' is for federation %s, not %s", path,
                 p->federation, federation);
        return FQ_EINVAL;
    }
    return 0;
}

int
ag_rules_load(const struct ag_config *cfg, const char *agency,
              const char *federation, struct ag_rules **ret, char *err,
              size_t errlen)
{
    const struct ag_policy_conf *pc = &cfg->policy;
    struct ag_rules *r = calloc(1, sizeof(*r));
    struct fq_policy *p = NULL;
    int rc;

    if (!r) {
        snprintf(err, errlen, "out of memory loading the policy");
        return FQ_ENOMEM;
    }
    atomic_init(&r->refs, 1);
    snprintf(r->agency, sizeof(r->agency), "%s", agency);
    if (!pc->file) {
        snprintf(r->why, sizeof(r->why),
                 "no release policy is configured (policy: file, "
                 "public_key in %s)",
                 cfg->doc.path);
        rc = FQ_ENOENT;
    } else if ((rc = fq_policy_load(pc->file, pc->signature, pc->public_key, &p,
                                    r->why, sizeof(r->why))) == 0 &&
               (rc = check_owner(p, pc->file, agency, federation, r->why,
                                 sizeof(r->why))) < 0) {
        fq_policy_free(p);
        p = NULL;
    }
    r->policy = p;
    if (rc < 0)
        snprintf(err, errlen, "%s", r->why);
    else
        r->why[0] = '\0';
    *ret = r;
    return rc;
}

void
ag_rules_ref(struct ag_rules *r)
{
    atomic_fetch_add(&r->refs, 1);
}

void
ag_rules_unref(struct ag_rules *r)
{
    if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
        fq_policy_free(r->policy);
        free(r);
    }
}

int
ag_rules_ready(const struct ag_rules *r, char *err, size_t errlen)
{
    if (r->policy)
        return 0;
    snprintf(err, errlen, "agency %s serves nothing: %s", r->agency, r->why);
    return FQ_EPRECOND;
}

int
ag_rules_check(const struct ag_rules *r, const Fedq__V1__ExecuteRequest *req,
               time_t now, const struct fq_policy_agreement **ret_agreement,
               char *err, size_t errlen)
{
    int rc;

    if ((rc = ag_rules_ready(r, err, errlen)) < 0)
        return rc;
    if (!req->agreement || !req->agreement[0]) {
        snprintf(err, errlen,
                 "agency %s: the query names no agreement (every query must "
                 "name the data sharing agreement it runs under)",
                 r->agency);
        return FQ_EPERM;
    }
    if (!req->purpose || !req->purpose[0]) {
        snprintf(err, errlen,
                 "agency %s: the query states no purpose (every query must "
                 "state one of its agreement's purposes)",
                 r->agency);
        return FQ_EPERM;
    }
    struct fq_policy_request pr = {
        .agreement = req->agreement,
        .purpose = req->purpose,
        .analyst = req->analyst,
        .plan = req->plan,
        .pooled_with = (const char *const *)req->pooled_with,
        .n_pooled_with = req->n_pooled_with,
        .now = now,
    };
    return fq_policy_check(r->policy, &pr, ret_agreement, err, errlen);
}

int
ag_guard_open(const struct ag_config *cfg, struct ag_guard **ret)
{
    struct ag_guard *g = calloc(1, sizeof(*g));
    char err[AG_RULES_WHY_MAX];

    if (!g)
        return FQ_ENOMEM;
    snprintf(g->agency, sizeof(g->agency), "%s", cfg->agency);
    snprintf(g->federation, sizeof(g->federation), "%s", cfg->federation);
    if (ag_rules_load(cfg, g->agency, g->federation, &g->rules, err,
                      sizeof(err)) == FQ_ENOMEM) {
        free(g);
        return FQ_ENOMEM;
    }
    pthread_mutex_init(&g->mu, NULL);
    *ret = g;
    return 0;
}

void
ag_guard_close(struct ag_guard *g)
{
    if (!g)
        return;
    ag_rules_unref(g->rules);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

struct ag_rules *
ag_guard_rules(struct ag_guard *g)
{
    pthread_mutex_lock(&g->mu);
    struct ag_rules *r = g->rules;
    ag_rules_ref(r);
    pthread_mutex_unlock(&g->mu);
    return r;
}

static void
log_rules(const struct ag_rules *r)
{
    if (r->policy)
        fq_log_info("policy version %" PRId64 " (%s) in force",
                    r->policy->version, r->policy->hash);
    else
        fq_log_errx("agency %s serves nothing: %s", r->agency, r->why);
}

void
ag_guard_log(struct ag_guard *g)
{
    struct ag_rules *r = ag_guard_rules(g);

    log_rules(r);
    ag_rules_unref(r);
}

int
ag_guard_reload(struct ag_guard *g, const struct ag_config *cfg)
{
    struct ag_rules *fresh = NULL, *old;
    char err[AG_RULES_WHY_MAX];
    int rc;

    rc = ag_rules_load(cfg, g->agency, g->federation, &fresh, err, sizeof(err));
    old = ag_guard_rules(g);
    if (rc < 0 && old->policy) {
        fq_log_errx("policy reload failed, keeping version %" PRId64
                    " (%s): %s",
                    old->policy->version, old->policy->hash, err);
        ag_rules_unref(fresh);
        ag_rules_unref(old);
        return rc;
    }
    ag_rules_unref(old);
    if (!fresh) /* out of memory, and nothing in force to keep */
        return rc;
    pthread_mutex_lock(&g->mu);
    old = g->rules;
    g->rules = fresh;
    pthread_mutex_unlock(&g->mu);
    ag_rules_unref(old);
    log_rules(fresh);
    return rc;
}
