/*
 * The agency's own veto on a release. The gateway applies the rules of
 * every agency in a pooled cell, each at the strictest value signed;
 * before any answer leaves it records the released cells at every pooled
 * agent (Agent/RecordCells), and the agent weighs them there against its
 * own signed release rules with what it can tell for itself: its own part
 * of each cell, counted from its records (not taken from the gateway),
 * and the others' parts as the gateway states them. A cell of 1 to k - 1
 * contributors, a zero under `zero_cells: suppress`, or a cell whose rest
 * besides any one agency's part is 1 to k - 1 (the insider rule) refuses
 * the recording, and the gateway then releases nothing (fail closed).
 *
 * It catches a gateway that is wrong (a bug, a misconfiguration, an old
 * version), not one that lies about the other agencies' parts or skips
 * the recording: that is the audit log's business. Counts only:
 * dominance needs the values' shares, which RecordCells does not carry.
 */
#ifndef AG_RELEASE_VETO_H
#define AG_RELEASE_VETO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ledger.h"

/* One released cell: every pooled agency's part as the gateway states it,
 * and this agency's persons in it by its own records. */
struct ag_veto_cell {
    const struct ag_ledger_part *parts;
    size_t n_parts;
    int64_t own;
};

/* This agency's signed rules for the query's agreement. */
struct ag_veto_rules {
    const char *agency;
    int64_t k;          /* min_cell_count */
    bool suppress_zero; /* zero_cells: suppress */
};

/*
 * 0 when every cell passes r; FQ_EPERM naming the first cell that does
 * not and why (err), FQ_EINVAL for parts that contradict this agency's
 * records or are negative. Allocates nothing.
 */
int ag_release_veto(const struct ag_veto_rules *r,
                    const struct ag_veto_cell *cells, size_t n, char *err,
                    size_t errlen);

#endif
