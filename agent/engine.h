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

struct ag_cellset;
struct Fedq__V1__Literal;

/* One cell of a plan's answer whose members are wanted. */
struct ag_member_ref {
    struct Fedq__V1__Literal *const *key; /* its group (plan's group_by) */
    size_t agg;                           /* plan aggregate index */
    size_t bin;                           /* HISTOGRAM bin */
};

/*
 * The members (ledger.h) of cells refs[0..n) of plan's answer over x: the
 * records of the cell's group with a contributor (COUNT(*)), with a value
 * in the bin (HISTOGRAM), or with a value (SUM, AVG, VAR, STDDEV), each
 * with its person's tag under lim->secret (required). out[i] gets
 * malloc'd members (the caller frees out[i].m). A cell whose group has no
 * record gets none. 0, or FQ_EINVAL (another aggregate, no secret) /
 * FQ_ETOOBIG / FQ_ENOMEM with a message in err.
 */
/*
 * Wanted cells sorted by group key, so that each row of a per-record
 * statement finds its cells by binary search (the SQLite and PostgreSQL
 * engines' members).
 */
struct ag_cell_slot {
    struct Fedq__V1__Literal *const *key;
    size_t n_key;
    size_t ref; /* index into the refs */
};
struct ag_cell_index {
    struct ag_cell_slot *sorted;
    size_t n, n_key;
};

struct fq_arena;
/* Indexes refs[0..n), keys of n_key literals, in a. 0 or FQ_ENOMEM. */
int ag_cell_index_build(struct ag_cell_index *ix,
                        const struct ag_member_ref *refs, size_t n,
                        size_t n_key, struct fq_arena *a);
/* The slots whose key is key: *first, and how many. */
size_t ag_cell_index_find(const struct ag_cell_index *ix,
                          struct Fedq__V1__Literal *const *key, size_t *first);

int ag_engine_members(const struct ag_extract *x,
                      const struct Fedq__V1__Dataset *ds,
                      const struct Fedq__V1__Plan *plan,
                      const struct ag_engine_limits *lim,
                      const struct ag_member_ref *refs, size_t n,
                      struct ag_cellset *out, char *err, size_t errlen);

#endif
