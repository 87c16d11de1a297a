/*
 * Pushdown: for datasets whose records stay in the agency's PostgreSQL
 * (engine: pushdown), the checked plan compiles to one parameterised
 * statement ($1, $2, ... for every literal; identifiers only from the
 * catalog, quoted) run there through libpq, and the rows come back as the
 * same partial aggregates the other engines give.
 */
#ifndef AG_PUSHDOWN_H
#define AG_PUSHDOWN_H

#include "fq/compat.h"

#include "agent.h"

struct fq_arena;
struct Fedq__V1__Dataset;
struct Fedq__V1__Plan;
struct Fedq__V1__ExecuteResponse;

/*
 * Runs plan (checked against ds) in d's postgres source; fills
 * resp->groups in arena. 0, or FQ_ETOOBIG (more than max_groups, an
 * integer overflow) / FQ_EIO (the database failed: the message says so
 * without the agency's SQL text) / FQ_ENOMEM, with a message in err.
 */
int ag_pushdown_execute(const struct ag_dataset_conf *d,
                        const struct Fedq__V1__Dataset *ds,
                        const struct Fedq__V1__Plan *plan, size_t max_groups,
                        struct fq_arena *arena,
                        struct Fedq__V1__ExecuteResponse *resp, char *err,
                        size_t errlen);

#endif
