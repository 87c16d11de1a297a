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
#define FQ_PLAN_MAX_EDGES      64    /* HISTOGRAM edges (bins: edges + 1) */
#define FQ_PLAN_MAX_BINS       256   /* HISTOGRAM bins in one plan */
#define FQ_QUANTILE_MAX_BINS   10000 /* Column.quantile_bins */
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

/*
 * The configured cap on GROUP BY columns (max_group_by, at most
 * FQ_PLAN_MAX_GROUP_BY), checked at both ends like the rest of the plan.
 * 0, or FQ_EINVAL with a message naming the limit.
 */
int fq_plan_check_group_by_limit(const Fedq__V1__Plan *plan, size_t max,
                                 char *err, size_t errlen);

/* ---- mergeable statistics (plan_stats.c) ------------------------------- */

/*
 * QUANTILE's sketch: quantile_bins bins of equal integer width w over a
 * measure's declared bounds [min, max], w = ceil((max - min + 1) / bins);
 * bin i holds [min + i*w, min + i*w + w - 1] (the last one cut at max);
 * values outside the bounds count in the first or last bin. Bins merge by
 * adding counts, so a pooled sketch is exactly the sketch of the pooled
 * values, and the only error is the position within one bin.
 */
int64_t fq_quantile_width(int64_t min, int64_t max, int64_t bins);

/* The sketch of col: its bin width and the number of bins values can
 * fall in (ceil(span / w), at most quantile_bins). 0 or FQ_EINVAL. */
int fq_quantile_sketch(const Fedq__V1__Column *col, int64_t *w, uint32_t *used);

/* The bin of value v in a sketch from min, of width w and used bins;
 * values outside fall in the first or last bin. */
uint32_t fq_sketch_bin(int64_t min, int64_t w, uint32_t used, int64_t v);

/* The sketch bin of value v for col (a measure with quantile_bins). */
uint32_t fq_quantile_bin(const Fedq__V1__Column *col, int64_t v);

/* Half a bin width: how far a released quantile may be from the exact
 * one; 0 for a column without a sketch. */
int64_t fq_quantile_error_bound(const Fedq__V1__Column *col);

/*
 * The q-quantile from a sketch (n non-empty bins, indexes increasing): the
 * bin holding the value of rank r = ceil(q * total), 1 <= r <= total, and
 * the released value, the middle of that bin (rounded down). 0, or
 * FQ_ENOENT when the sketch is empty, FQ_EPROTO when it is malformed.
 */
struct fq_quantile {
    int64_t lo, hi, value;
};
int fq_quantile_pick(const Fedq__V1__Column *col, double q,
                     const uint32_t *bins, const int64_t *counts, size_t n,
                     struct fq_quantile *out);

/* "HISTOGRAM(wages)[-inf,0)", "[0,100)", ... "[100,+inf)" for bin i of
 * agg (0 <= i <= n_edges); in arena, NULL on no memory. */
char *fq_histogram_bin_name(const Fedq__V1__Aggregate *agg, size_t i,
                            struct fq_arena *arena);

/*
 * The order of group keys everywhere (the gateway's pooling and rows, the
 * agent's review preview): by value kind (no value first, then integers,
 * decimals, text), then by value, text bytewise. Never by an aggregate,
 * so the order of rows says nothing about a hidden value.
 */
int fq_literal_cmp(const Fedq__V1__Literal *a, const Fedq__V1__Literal *b);
/* Two partial groups by key, as qsort wants them (const PartialGroup **). */
int fq_group_key_cmp(const void *pa, const void *pb);

/* "COUNT(*)", "SUM(wages)", "AVG(benefit)"; static or in arena. */
const char *fq_plan_aggregate_name(const Fedq__V1__Aggregate *agg,
                                   struct fq_arena *arena);

#endif
