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

struct ag_cell_secret;

/*
 * Runs plan (checked against ds) in d's postgres source; fills
 * resp->groups in arena, with the disclosure fields of cellstats.h (keyed
 * with secret; NULL: keys 0). 0, or FQ_ETOOBIG (more than max_groups, an
 * integer overflow) / FQ_EIO (the database failed: the message says so
 * without the agency's SQL text) / FQ_EUNAVAIL (the database cannot be
 * reached) / FQ_ETIMEDOUT (the statement timeout, 30 s) / FQ_ENOMEM, with
 * a message in err.
 */
int ag_pushdown_execute(const struct ag_dataset_conf *d,
                        const struct Fedq__V1__Dataset *ds,
                        const struct Fedq__V1__Plan *plan, size_t max_groups,
                        const struct ag_cell_secret *secret,
                        struct fq_arena *arena,
                        struct Fedq__V1__ExecuteResponse *resp, char *err,
                        size_t errlen);

/* ---- shared with source_pg.c, the extract's PostgreSQL row source ------ */

struct pg_conn; /* libpq's PGconn */
struct fq_buf;

/*
 * Connects to d's postgres source: the configured connection string, with
 * a 10 s connect_timeout unless it sets its own. *ret is the caller's
 * (PQfinish). 0, or FQ_EINVAL (a malformed connection string) /
 * FQ_EUNAVAIL (no connection) / FQ_ENOMEM, with a message naming the
 * dataset, host, port and database, never the password.
 */
int ag__pg_connect(const struct ag_dataset_conf *d, struct pg_conn **ret,
                   char *err, size_t errlen);

/* Appends name to b as a quoted PostgreSQL identifier. 0 or FQ_E*. */
int ag__pg_quote(struct fq_buf *b, const char *name);

/*
 * The members (ledger.h) of cells refs[0..n) of plan's answer in d's
 * postgres source: records by ctid (block and offset), persons by their
 * tag under secret. out[i].m is malloc'd (the caller frees). 0, or FQ_E*
 * as ag_pushdown_execute.
 */
struct ag_member_ref;
struct ag_cellset;
int ag_pushdown_members(const struct ag_dataset_conf *d,
                        const struct Fedq__V1__Dataset *ds,
                        const struct Fedq__V1__Plan *plan,
                        const struct ag_cell_secret *secret,
                        const struct ag_member_ref *refs, size_t n,
                        struct fq_arena *arena, struct ag_cellset *out,
                        char *err, size_t errlen);

#endif
