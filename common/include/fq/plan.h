/*
 * Typed plans (fedq.v1.Plan): built at the gateway from fedq SQL against an
 * agency's catalog entry, and checked by the same code at the gateway
 * (early refusal) and at the agent (the final decision) before anything
 * runs. A plan names only catalog columns, uses each column only as its
 * role allows (identifiers never), and carries literals typed like their
 * columns.
 */
#ifndef FQ_PLAN_H
#define FQ_PLAN_H

#include "fq/compat.h"

#include "fedq/v1/catalog.pb-c.h"
#include "fedq/v1/plan.pb-c.h"

struct fq_arena;
struct fq_sql_query;
struct fq_sql_error;

/* Caps on a plan's size, the same at both ends. */
#define FQ_PLAN_MAX_GROUP_BY   16
#define FQ_PLAN_MAX_AGGREGATES 64
#define FQ_PLAN_MAX_TERMS      256 /* leaves of the filter tree */
#define FQ_PLAN_MAX_IN_VALUES  1024
/* Tree levels: each SQL nesting level (parentheses, NOT) can add an AND or
 * OR node and a NOT node, so twice the SQL limit (32) and the root. */
#define FQ_PLAN_MAX_DEPTH 66

/* The column of ds named name (exact match), or NULL. */
const Fedq__V1__Column *fq_catalog_column(const Fedq__V1__Dataset *ds,
                                          const char *name);

/*
 * Checks that lit is a well-formed value of type: an integer for INTEGER,
 * an integer or decimal for DECIMAL, text for TEXT, and text of the form
 * 'YYYY-MM-DD' (a real date), 'YYYY-MM' or 'YYYYQn' for DATE, MONTH and
 * QUARTER. 0, or FQ_EINVAL with a reason in why ("expected a quarter like
 * '2024Q1'").
 */
int fq_literal_check(const Fedq__V1__Literal *lit, Fedq__V1__ValueType type,
                     char *why, size_t whylen);

/*
 * Checks plan against the catalog entry ds (same dataset name). 0, or
 * FQ_EINVAL / FQ_ETOOBIG with a message naming the column and the rule.
 */
int fq_plan_check(const Fedq__V1__Plan *plan, const Fedq__V1__Dataset *ds,
                  char *err, size_t errlen);

/*
 * Builds the plan for a parsed query against ds: resolves and types every
 * name and literal (errors carry the SQL position: "line L, column C:
 * unknown column 'twn' in dol.wages"), then runs fq_plan_check. The plan
 * is allocated in arena. 0 or FQ_EINVAL / FQ_ETOOBIG / FQ_ENOMEM.
 */
int fq_plan_from_sql(const struct fq_sql_query *q, const Fedq__V1__Dataset *ds,
                     struct fq_arena *arena, Fedq__V1__Plan **ret,
                     struct fq_sql_error *err);

/* "COUNT(*)", "SUM(wages)", "AVG(benefit)"; static or in arena. */
const char *fq_plan_aggregate_name(const Fedq__V1__Aggregate *agg,
                                   struct fq_arena *arena);

#endif
