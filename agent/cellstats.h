/*
 * What the disclosure rules need of each cell, computed at the agency
 * beside the engine's answer (plan.proto AggregateState, fields 10-16):
 * the contributors of each aggregate (persons with a non-NULL value), their
 * cell key (cellkey.h), each HISTOGRAM bin's cell key, and for magnitude
 * aggregates (SUM, AVG, VAR, STDDEV) the values added up per contributor
 * unit, with the two largest and the total of their absolute values.
 *
 * The extract engine computes these in its own pass (engine_agg.c). The
 * SQL engines (sqlite, pushdown) ask their database for one row per group
 * and contributor, and per group and unit, and feed them here: the
 * arithmetic is then shared, so every engine gives the same fields.
 */
#ifndef AG_CELLSTATS_H
#define AG_CELLSTATS_H

#include "fq/compat.h"

struct fq_arena;
struct ag_cell_secret;
struct ag_cellstats;
struct Fedq__V1__Plan;
struct Fedq__V1__ExecuteResponse;
struct Fedq__V1__Literal;

/* The magnitude aggregates, whose values are weighed per contributor. */
bool ag_cellstats_is_magnitude(int kind);

/*
 * For the groups of resp (plan's finished answer; their order is kept).
 * Scratch and the bin keys in arena. 0, or FQ_ENOMEM.
 */
int ag_cellstats_new(const struct Fedq__V1__Plan *plan,
                     struct Fedq__V1__ExecuteResponse *resp,
                     const struct ag_cell_secret *secret,
                     struct fq_arena *arena, struct ag_cellstats **ret);

/*
 * One contributor's rows in the group of key (plan->n_group_by literals):
 * id (len bytes) names it; per plan aggregate k, counts[k] non-NULL values
 * (COUNT(*): its records) totalling totals[k]; bins[] the values in each
 * HISTOGRAM bin, the histograms' bins one after the other in plan order.
 * FQ_EPROTO if no group has the key (the two queries disagree).
 */
int ag_cellstats_person(struct ag_cellstats *cs,
                        struct Fedq__V1__Literal *const *key, const char *id,
                        size_t len, const int64_t *counts, const double *totals,
                        const int64_t *bins);

/* One contributor unit's (not a person: e.g. an employer) total of
 * aggregate k's column in the group of key. FQ_EPROTO on an unknown key. */
int ag_cellstats_unit(struct ag_cellstats *cs,
                      struct Fedq__V1__Literal *const *key, size_t k,
                      double total);

/* Whether aggregate k's units are fed by ag_cellstats_unit (its column
 * declares a contributor_unit) rather than by the persons. */
void ag_cellstats_set_unit_fed(struct ag_cellstats *cs, size_t k);

#endif
