/*
 * The release policy in force at this agent (issue 6): the agency's signed
 * policy, loaded from the configuration's policy section, checked to be
 * this agency's and this federation's, and swapped atomically by SIGHUP.
 *
 * Fail closed: rules without a valid policy refuse every query, with the
 * reason the policy did not load. Each call takes a reference to the rules
 * it decides with, so a reload never frees a policy still in use and a
 * call never sees half of two policies.
 */
#ifndef AG_GUARD_H
#define AG_GUARD_H

#include "fq/compat.h"
#include "fq/identity.h"
#include "fq/policy.h"

#include <stdatomic.h>

struct ag_config;
struct Fedq__V1__ExecuteRequest;

#define AG_RULES_WHY_MAX 768

/* Immutable once loaded; shared through the reference count. */
struct ag_rules {
    atomic_int refs;
    struct fq_policy *policy; /* NULL: the agency serves nothing */
    char agency[FQ_NAME_MAX + 1];
    char why[AG_RULES_WHY_MAX]; /* policy NULL: why it did not load */
};

/*
 * Loads cfg's policy for agency and federation (the running ones: a reload
 * cannot change them). Rules are made even when the policy does not load,
 * so the agent can refuse with the reason: 0 with a policy; or the load's
 * FQ_E* (FQ_ENOENT: none configured or no file; FQ_EPERM: the signature
 * does not verify; FQ_EINVAL: a bad document, or another agency's or
 * federation's policy; ...) with *ret's why and err saying why. Only
 * FQ_ENOMEM leaves *ret unset. Release with ag_rules_unref.
 */
int ag_rules_load(const struct ag_config *cfg, const char *agency,
                  const char *federation, struct ag_rules **ret, char *err,
                  size_t errlen);
void ag_rules_ref(struct ag_rules *r);
void ag_rules_unref(struct ag_rules *r);

/* 0 if r has a policy, else FQ_EPRECOND with "agency AGENCY serves
 * nothing: WHY" in err. */
int ag_rules_ready(const struct ag_rules *r, char *err, size_t errlen);

/*
 * Whether r lets req run now: a policy is in force (else FQ_EPRECOND as
 * above), the request names an agreement and states a purpose (else
 * FQ_EPERM "agency AGENCY: the query names no agreement" / "... states no
 * purpose"), and fq_policy_check passes (its FQ_EPERM or FQ_EPRECOND and
 * message). 0 with *ret_agreement, valid while r is.
 */
int ag_rules_check(const struct ag_rules *r,
                   const struct Fedq__V1__ExecuteRequest *req, time_t now,
                   const struct fq_policy_agreement **ret_agreement, char *err,
                   size_t errlen);

/* The rules in force, swapped by ag_guard_reload. */
struct ag_guard;

/*
 * Loads the policy of cfg (ag_rules_load with cfg's agency and federation)
 * into a new guard. 0 even when the policy does not load (the guard then
 * refuses; ag_rules_ready says why), FQ_ENOMEM otherwise. Free with
 * ag_guard_close.
 */
int ag_guard_open(const struct ag_config *cfg, struct ag_guard **ret);
void ag_guard_close(struct ag_guard *g);

/* A reference to the rules in force; the caller releases it with
 * ag_rules_unref. Never NULL. */
struct ag_rules *ag_guard_rules(struct ag_guard *g);

/*
 * SIGHUP: loads the policy of cfg (a new configuration of the same agency)
 * and puts it in force, logging "policy version N (HASH) in force"; if it
 * does not load, a policy in force stays ("policy reload failed, keeping
 * version N (HASH): WHY", logged as an error), and without one the new
 * reason replaces the old. 0 if the new policy is in force, else its
 * FQ_E*.
 */
int ag_guard_reload(struct ag_guard *g, const struct ag_config *cfg);

/* Logs the rules in force: "policy version N (HASH) in force", or the
 * error "agency AGENCY serves nothing: WHY". */
void ag_guard_log(struct ag_guard *g);

#endif
