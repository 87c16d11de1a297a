/*
 * Secondary suppression (gateway/secondary.c; docs/disclosure-control.md):
 * every suppressed cell's feasible interval, given everything released
 * from its dataset and data vintage that relates to it and the published
 * rules and noise bounds, is at least the protection level wide.
 *
 * Cells relate through margins: tables of one family (the same dataset,
 * agencies and vintages, filter and statistic: COUNT(*), a HISTOGRAM bin,
 * or SUM of one measure) grouped by nested sets of columns add up, cell
 * by cell, to one another. The store keeps every released table of every
 * family; a new table is weighed against its family by a linear program
 * (gateway/lp.c) over the cells of the finest cross-classification of
 * their columns, and more of its cells are suppressed, smallest first,
 * until every suppressed cell of the family is protected.
 */
#ifndef GW_SECONDARY_H
#define GW_SECONDARY_H

#include "fq/compat.h"

struct fq_arena;
struct gw_config;
struct gw_column;
struct gw_rules;
struct gw_table;
struct Fedq__V1__Dataset;
struct Fedq__V1__PartialGroup;
struct Fedq__V1__Plan;

struct gw_released;

/* Opens (creating) state_dir/released-cells.db. 0 or FQ_E* with err. */
int gw_released_open(const struct gw_config *cfg, struct gw_released **ret,
                     char *err, size_t errlen);
void gw_released_close(struct gw_released *s);

/* A table as the store sees it (nothing owned). */
struct gw_release {
    const char *query_id;
    const struct Fedq__V1__Plan *plan;
    const struct Fedq__V1__Dataset *ds;
    const char *const *agencies; /* the pooled agencies */
    const char *const *vintages; /* their data vintages */
    size_t n_agencies;
    struct gw_table *table;
    const struct gw_column *cols;
    struct Fedq__V1__PartialGroup *const *groups; /* row i's group */
    const struct gw_rules *rules;
};

/*
 * Suppresses more cells of r->table (reason secondary) until every
 * suppressed cell of each of its families, earlier releases included, is
 * protected; their number in *ret_hidden. 0, or FQ_ETOOBIG (a family too
 * large for the linear program: nothing is released), FQ_EPRECOND (the
 * family cannot be protected), FQ_EIO, FQ_ENOMEM with err.
 */
int gw_secondary(struct gw_released *s, const struct gw_release *r,
                 struct fq_arena *a, size_t *ret_hidden, char *err,
                 size_t errlen);

/* Records the rows of r->table marked in rows (those released) in their
 * families. 0, or FQ_EIO / FQ_ENOMEM with err. */
int gw_released_record(struct gw_released *s, const struct gw_release *r,
                       const bool *rows, struct fq_arena *a, char *err,
                       size_t errlen);

#endif
