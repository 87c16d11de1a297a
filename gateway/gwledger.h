/*
 * The gateway's side of the differencing ledger (gateway/ledger.c; the
 * agents keep the ledger, agent/ledger.h).
 */
#ifndef GW_LEDGER_H
#define GW_LEDGER_H

#include "fq/compat.h"

struct fq_arena;
struct gw_cell;
struct gw_column;
struct gw_rules;
struct gw_table;
struct Fedq__V1__Plan;
struct Fedq__V1__CellRef;
struct Fedq__V1__CheckCellsResponse;
struct Fedq__V1__PartialGroup;

/* The cells of a table the agents weigh: released count and magnitude
 * cells (the others imply no difference cell). */
struct gw_ledger_cells {
    size_t n;
    size_t *cell;                    /* index into the table's cells */
    struct Fedq__V1__CellRef **refs; /* what the agents are sent */
};

/*
 * The ledgered cells of t (rows: only the rows marked, or every row if
 * NULL); groups[i] is row i's pooled group. In a. 0 or FQ_ENOMEM.
 */
int gw_ledger_collect(const struct gw_table *t, const struct gw_column *cols,
                      struct Fedq__V1__PartialGroup *const *groups,
                      const bool *rows, struct fq_arena *a,
                      struct gw_ledger_cells *ret);

/* Every pooled agency's CheckCells answer, with its data vintage. */
struct gw_ledger_answers {
    size_t n;
    const char *const *agencies;
    const char *const *vintages;
    struct Fedq__V1__CheckCellsResponse *const *resps;
};

/* What the ledger's decision weighs besides the answers. */
struct gw_ledger_rules {
    int64_t k;
    /* Released values are perturbed: a candidate within k - 1 persons of
     * an earlier released cell is answered with that cell's published
     * value (the earliest such), so that neither a difference nor the
     * status tells whether the two differ (gw_cell_reuse); else it is
     * suppressed. */
    bool reuse;
    const struct gw_rules *rules;      /* the noise of a reused value */
    const struct Fedq__V1__Plan *plan; /* the statistics of the cells */
};

/*
 * Decides every candidate of lc whose pooled difference from an earlier
 * released cell or an earlier candidate holds 1 to k - 1 persons: it is
 * suppressed (reason ledger), or answered with the earlier cell's value
 * (lr->reuse, and an earlier released cell); how many of each in
 * *ret_suppressed and *ret_reused. 0, FQ_EPROTO (an answer naming cells
 * that were not asked, or a bad published value) or FQ_ENOMEM.
 */
int gw_ledger_decide(struct gw_table *t, const struct gw_ledger_cells *lc,
                     const struct gw_ledger_answers *ans,
                     const struct gw_ledger_rules *lr, struct fq_arena *a,
                     size_t *ret_suppressed, size_t *ret_reused);

/* Cell c's (of plan) published value, packed for RecordCells (in a),
 * stamped with released_at. NULL when out of memory. */
uint8_t *gw_ledger_pack_value(const struct gw_cell *c,
                              const struct Fedq__V1__Plan *plan,
                              const char *released_at, struct fq_arena *a,
                              size_t *ret_len);

#endif
