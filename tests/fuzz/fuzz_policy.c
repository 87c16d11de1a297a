/*
 * libFuzzer target for the policy parser (common/src/policy.c): arbitrary
 * bytes go through fq_policy_parse_buf, the parse fq_policy_load runs once
 * a signature verified, so the YAML pass, the directive tables and every
 * semantic check (dates, aggregates, analysts, ids) see hostile input
 * without the fuzzer having to forge signatures. A parsed policy is then
 * asked one question, so fq_policy_check runs over whatever the parser
 * accepted.
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "fq/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A plan touching every kind of term: group, filter, aggregate column. */
static void
ask(const struct fq_policy *p)
{
    Fedq__V1__Comparison cmp = FEDQ__V1__COMPARISON__INIT;
    Fedq__V1__Predicate filter = FEDQ__V1__PREDICATE__INIT;
    Fedq__V1__Aggregate sum = FEDQ__V1__AGGREGATE__INIT;
    Fedq__V1__Aggregate *aggs[] = {&sum};
    Fedq__V1__Plan plan = FEDQ__V1__PLAN__INIT;
    char *group_by[] = {(char *)"town"};
    const char *pooled[] = {"dol"};
    const struct fq_policy_agreement *a = NULL;
    char err[512];

    cmp.column = (char *)"month";
    filter.node_case = FEDQ__V1__PREDICATE__NODE_COMPARE;
    filter.compare = &cmp;
    sum.kind = FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM;
    sum.column = (char *)"benefit";
    plan.dataset = (char *)"enrollment";
    plan.filter = &filter;
    plan.group_by = group_by;
    plan.n_group_by = 1;
    plan.aggregates = aggs;
    plan.n_aggregates = 1;
    struct fq_policy_request r = {
        .agreement = p->agreements[0].id,
        .purpose = "program evaluation",
        .analyst = "spiffe://fedq.local/analyst/alice",
        .plan = &plan,
        .pooled_with = pooled,
        .n_pooled_with = 1,
        .now = 1772323200, /* 2026-03-01 */
    };
    int rc = fq_policy_check(p, &r, &a, err, sizeof(err));
    /* A refusal always names the agency; an acceptance an agreement. */
    if ((rc < 0 && !strstr(err, p->agency)) || (rc == 0 && !a))
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fq_policy *p = NULL;
    char err[1024];

    int rc = fq_policy_parse_buf("fuzz.yaml", (const char *)data, size, &p, err,
                                 sizeof(err));
    /* Every failure explains itself as "NAME:LINE: ..." or "NAME: ...". */
    if (rc < 0 && strncmp(err, "fuzz.yaml:", 10) != 0)
        abort();
    if (rc == 0) {
        if (p->n_agreements == 0 || strlen(p->hash) != 64)
            abort();
        ask(p);
    }
    fq_policy_free(p);
    return 0;
}
