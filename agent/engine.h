/*
 * The extract engine: a checked plan run over a mapped columnar extract
 * (extract.h), producing exactly the partial aggregates the SQLite path
 * (execute.c, the reference) produces for the same data.
 *
 * Filters run column by column over vectors of rows with SQL's
 * three-valued logic; groups go into dense arrays indexed by the grouped
 * columns' codes where the domains allow (a hash table otherwise); the
 * rows are split across threads at contributor boundaries and the
 * threads' states merged.
 */
#ifndef AG_ENGINE_H
#define AG_ENGINE_H

#include "fq/compat.h"

struct ag_extract;
struct fq_arena;
struct Fedq__V1__Dataset;
struct Fedq__V1__Plan;
struct Fedq__V1__ExecuteResponse;

struct ag_cell_secret;

struct ag_engine_limits {
    size_t max_groups; /* more groups: FQ_ETOOBIG */
    size_t threads;    /* 0: one per core */
    size_t max_memory; /* working state of one query; more: FQ_ETOOBIG */
    /* The agency's cell-key secret (cellkey.h); NULL: cell keys are 0. */
    const struct ag_cell_secret *secret;
};

/*
 * Runs plan (already checked with fq_plan_check against ds, the catalog
 * entry of the extract's dataset) over x; fills resp->groups (allocated in
 * arena; groups without records are left out, order unspecified), with
 * the disclosure fields of cellstats.h, and nothing else. 0, or FQ_ETOOBIG
 * (groups, memory, an integer sum outside 64 bits) / FQ_EINVAL / FQ_ENOMEM with
 * a message in err.
 */
int ag_engine_execute(const struct ag_extract *x,
                      const struct Fedq__V1__Dataset *ds,
                      const struct Fedq__V1__Plan *plan,
                      const struct ag_engine_limits *lim,
                      struct fq_arena *arena,
                      struct Fedq__V1__ExecuteResponse *resp, char *err,
                      size_t errlen);

#endif
