/*
 * Disclosure control on a pooled table (docs/disclosure-control.md): the
 * rules each released cell must pass, in order, and what the analyst's
 * cell then carries.
 *
 *   primary     counts of 1..k-1 contributors; zeros where the policy says;
 *               magnitude cells (SUM, AVG, VAR, STDDEV) failing dominance:
 *               fewer than n units, the largest holding p % or more, or the
 *               p% rule; means and variances over a failing denominator, or
 *               telling every contributor's value (a 0% or 100% share)
 *   insider     for every agency, the pooled cell less its own part must
 *               pass the primary rules or be 0: each agency knows its part
 *   ledger      (agents: gateway/ledger.c) a cell whose difference from an
 *               earlier released cell fails a primary rule
 *   secondary   (secondary.c) every suppressed cell's feasible interval at
 *               least the protection level wide
 *   perturb     counts by the cell-key method from the federation's
 *               perturbation table; sums by up to a published share of
 *               their largest contribution; then consistent random
 *               rounding where a policy asks; means and variances from the
 *               perturbed values, rounded to the policy's decimals
 *
 * Analysts see a status (exact, perturbed, rounded, suppressed, not
 * applicable), never why: the reason stays in the decision record and the
 * stewards' view, since a visible reason can itself disclose.
 */
#ifndef GW_DISCLOSE_H
#define GW_DISCLOSE_H

#include "fq/compat.h"

struct fq_arena;
struct fq_ptable;
struct fq_policy_release;
struct gw_perturb_conf;
struct Fedq__V1__Cell;
struct Fedq__V1__Dataset;
struct Fedq__V1__PartialGroup;
struct Fedq__V1__Plan;
struct Fedq__V1__Row;

/* Why a cell is suppressed (or not): for stewards and the record only. */
enum gw_reason {
    GW_REASON_NONE,
    GW_REASON_PRIMARY,   /* 1 to k - 1 contributors */
    GW_REASON_ZERO,      /* a zero the policy suppresses */
    GW_REASON_DOMINANCE, /* a magnitude dominated by a few contributors */
    GW_REASON_DERIVED,   /* a mean or variance that would tell too much */
    GW_REASON_INSIDER,   /* the rest besides one agency's part fails */
    GW_REASON_LEDGER,    /* implies a small difference with a released cell */
    GW_REASON_SECONDARY, /* protects another suppressed cell */
    GW_REASON_COUNT,
};

/* "primary", "dominance", ...; "released" for GW_REASON_NONE. */
const char *gw_reason_name(int reason);

/* The strictest rules of every agreement a table is released under, and
 * the federation's perturbation. */
struct gw_rules {
    int64_t k;                  /* minimum contributors */
    bool suppress_zero;         /* zeros suppressed */
    int64_t min_units;          /* dominance: fewer units are suppressed */
    int64_t top_percent;        /* dominance: the largest unit's share */
    int64_t p_percent;          /* the p% rule; 0: off */
    int64_t protection;         /* secondary: counts' interval width */
    int64_t protection_pct;     /* secondary: magnitudes' width, % of value */
    bool perturb;               /* cell-key perturbation (else exact) */
    int64_t rounding_base;      /* 1: none */
    int64_t decimals;           /* of means and variances */
    bool ledger;                /* the agents' differencing ledger */
    double magnitude_noise;     /* sums: fraction of the largest contribution */
    struct fq_ptable *counts;   /* threshold k: released counts */
    struct fq_ptable *distinct; /* threshold 1: COUNT(DISTINCT) values */
};

/* The defaults of fq/policy.h, with minimum cell count floor_k. */
void gw_rules_init(struct gw_rules *r, int64_t floor_k);
/* Makes r at least as strict as rel. */
void gw_rules_tighten(struct gw_rules *r, const struct fq_policy_release *rel);
/* The perturbation tables for r's k from the federation's parameters.
 * 0, or FQ_EINVAL / FQ_ENOMEM with err. Release with gw_rules_release. */
int gw_rules_ready(struct gw_rules *r, const struct gw_perturb_conf *pc,
                   char *err, size_t errlen);
void gw_rules_release(struct gw_rules *r);

/* The statistic a result column releases. */
enum gw_stat {
    GW_STAT_KEY,      /* a group-by column */
    GW_STAT_RECORDS,  /* COUNT(*), HISTOGRAM bins */
    GW_STAT_DISTINCT, /* COUNT(DISTINCT column) */
    GW_STAT_SUM,      /* SUM */
    GW_STAT_MEAN,     /* AVG */
    GW_STAT_SPREAD,   /* VAR, STDDEV */
    GW_STAT_QUANTILE, /* QUANTILE: rounded to its sketch bin */
};

/* Where a result column comes from. */
struct gw_column {
    int stat;    /* enum gw_stat */
    size_t key;  /* GW_STAT_KEY: group-by index */
    size_t agg;  /* otherwise: plan aggregate index */
    size_t bin;  /* HISTOGRAM bin */
    bool is_bin; /* a HISTOGRAM bin column */
};

/* One released cell as the rules see it, beside the analyst's. */
struct gw_cell {
    struct Fedq__V1__Cell *out; /* the analyst's cell (in the row) */
    int stat;                   /* enum gw_stat */
    size_t agg;
    int64_t contributors; /* pooled, of this cell */
    uint32_t cell_key;    /* pooled */
    double truth;         /* the true value (counts, sums) */
    int reason;           /* enum gw_reason */
    /* Released: the true values an analyst who knows the published rules
     * and perturbation can tell from the released value (secondary
     * suppression's constraints). */
    double lo, hi;
    bool reused; /* answered with an earlier cell's value (the ledger) */
};

/* A pooled table and its rules' view, row-major (cols per row). */
struct gw_table {
    size_t n_rows, n_cols;
    struct Fedq__V1__Row **rows;
    struct gw_cell *cells;
};

struct gw_disclose_in {
    const struct Fedq__V1__Plan *plan;
    const struct Fedq__V1__Dataset *ds;
    const struct gw_rules *rules;
    const struct gw_column *cols;
    size_t n_cols;
    struct Fedq__V1__PartialGroup *const *groups; /* pooled */
    size_t n_groups;
    /* own[i * n_parts + p]: agency p's own group of groups[i], or NULL */
    const struct Fedq__V1__PartialGroup *const *own;
    size_t n_parts;
};

/*
 * The released table of in's pooled groups: one row per group, every cell
 * through the primary, insider and derived rules, then perturbed. All in
 * a. 0, or FQ_ENOMEM.
 */
int gw_disclose(const struct gw_disclose_in *in, struct fq_arena *a,
                struct gw_table *ret);

struct Fedq__V1__DisclosureRules;
/* r as published with a result (in a); NULL when out of memory. */
struct Fedq__V1__DisclosureRules *
gw_rules_publish(const struct gw_rules *r, const struct gw_perturb_conf *pc,
                 struct fq_arena *a);

/* Cells of t suppressed for each reason (counts[GW_REASON_COUNT]). */
void gw_table_reasons(const struct gw_table *t, size_t *counts);

/* Hides cell c (any reason but NONE): no value, status suppressed. */
void gw_cell_suppress(struct gw_cell *c, int reason);

struct Fedq__V1__PublishedValue;
/*
 * Answers cell c with v, the published value of an earlier released cell
 * within k - 1 contributors of it (the ledger, gateway/ledger.c): the
 * same value and status (perturbed or rounded). For secondary
 * suppression, the interval an analyst who takes v for c's own value
 * would allow under rules r, joined with c's truth. 0, or FQ_EPROTO for
 * a value without a number.
 */
int gw_cell_reuse(struct gw_cell *c, const struct Fedq__V1__PublishedValue *v,
                  const struct gw_rules *r);

#endif
