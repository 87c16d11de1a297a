/*
 * fedq-gateway internals: the configuration, the federation (the agents
 * and their long-lived channels, swapped as a whole on reload) and the
 * fan-out that every multi-agency method uses.
 */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include "fq/compat.h"
#include "fq/config_shared.h"
#include "fq/rpc.h"

struct fq_arena;

struct gw_agent_conf {
    int line;
    char *agency;
    char *address;    /* gRPC target, e.g. ipv4:127.0.0.1:7001 */
    char *identity;   /* default spiffe://FED/agency/ID/agent */
    char *policy_key; /* the agency's policy public key (PEM file) */
};

struct gw_alias_conf {
    int line;
    char *name;
    char **agencies;
    size_t n_agencies;
};

/* The federation's published perturbation parameters (every agency's
 * cells are perturbed with the same table; docs/disclosure-control.md). */
struct gw_perturb_conf {
    int line;
    int64_t max_deviation;     /* D of the count table */
    double variance;           /* V of the count table */
    int64_t magnitude_percent; /* SUM noise: up to this % of the largest */
};

struct gw_config {
    struct fq_cfg_doc doc;       /* first: arena and file path */
    struct fq_cfg_server server; /* listen, tls, threads, limits, logs */
    char *federation;
    int64_t agent_timeout_ms;
    int64_t catalog_ttl_ms;
    int64_t min_cell_count;
    int64_t max_groups;
    int64_t max_group_by;
    int64_t reconnect_backoff_ms;
    int64_t secondary_finest_cells;
    char *state_dir; /* NULL: ../state/gateway from the config file */
    struct gw_perturb_conf perturbation;
    struct gw_agent_conf *agents;
    size_t n_agents;
    struct gw_alias_conf *aliases;
    size_t n_aliases;
};

extern const struct fq_cfg_directive gw_config_table[];
int gw_config_load(const char *path, struct gw_config **ret, char *err,
                   size_t errlen);
void gw_config_free(struct gw_config *cfg);

/* ---- the federation: config + one channel per agent, refcounted ------- */

struct gw_catalog;

struct gw_agent {
    const struct gw_agent_conf *conf;
    struct fq_rpc_channel *ch;
    void *mu;                  /* pthread_mutex_t *, guards cached */
    struct gw_catalog *cached; /* last Describe reply, or NULL */
};

struct gw_federation {
    int refs; /* atomic through gw_federation_ref/unref */
    struct gw_config *cfg;
    struct gw_agent *agents; /* in config order */
    size_t n_agents;
};

int gw_federation_new(struct gw_config *cfg, const struct fq_tls_material *tls,
                      struct gw_federation **ret, char *err, size_t errlen);
void gw_federation_ref(struct gw_federation *fed);
/* Frees the federation (channels and config) with the last reference. */
void gw_federation_unref(struct gw_federation *fed);
/* Index of an agency, or -1. */
int gw_federation_find(const struct gw_federation *fed, const char *agency);

/* ---- state files (state_db.c) ------------------------------------------- */

struct sqlite3;

/*
 * Opens state_dir/file (created 0600, the directory 0700) and runs schema;
 * what names it in errors. *ret is the caller's to sqlite3_close. 0 or
 * FQ_E* with err.
 */
int gw_state_db_open(const struct gw_config *cfg, const char *file,
                     const char *what, const char *schema, struct sqlite3 **ret,
                     char *err, size_t errlen);
/* Now in UTC as 2026-12-06T10:07:24Z: when state rows were written. */
void gw_utc_now(char out[32]);

/* ---- queries held for review (held.c) ----------------------------------- */

struct gw_held;
struct Fedq__V1__QueryRequest;

/* Opens (creating) state_dir/held-queries.db. 0 or FQ_E* with err. */
int gw_held_open(const struct gw_config *cfg, struct gw_held **ret, char *err,
                 size_t errlen);
void gw_held_close(struct gw_held *h);
/* Keeps query id of analyst (its request) as pending. 0, FQ_ETOOBIG (the
 * analyst holds too many) or FQ_EIO, with err. */
int gw_held_put(struct gw_held *h, const char *id, const char *analyst,
                const struct Fedq__V1__QueryRequest *req, char *err,
                size_t errlen);
/* The request of analyst's held query id, allocated in a. 0, FQ_ENOENT (none
 * of this analyst's), FQ_EIO or FQ_ENOMEM, with err. */
int gw_held_get(struct gw_held *h, const char *id, const char *analyst,
                struct fq_arena *a, struct Fedq__V1__QueryRequest **ret,
                char *err, size_t errlen);
/* Notes how the query last ended: "pending", "released" or "refused". */
void gw_held_set_state(struct gw_held *h, const char *id, const char *state);

/* ---- the cell budget (budget.c) ------------------------------------------ */

struct gw_budget;
struct gw_released;
struct Fedq__V1__Plan;
struct Fedq__V1__PartialGroup;
struct Fedq__V1__ResultColumn;
struct Fedq__V1__Row;

#define GW_BUDGET_MAX_CELLS 5000000 /* cells one table may be charged */

/* Opens (creating) state_dir/cell-budget.db. 0 or FQ_E* with err. */
int gw_budget_open(const struct gw_config *cfg, struct gw_budget **ret,
                   char *err, size_t errlen);
void gw_budget_close(struct gw_budget *b);

/* One pooled agency of a released table: where its cells are charged. */
struct gw_budget_scope {
    const char *agency;
    const char *agreement; /* the agreement covering the query there */
    const char *vintage;   /* ExecuteResponse.data_vintage ("live" too) */
    int64_t budget;        /* that agreement's cell_budget */
};

/* A table about to be released, as the budget sees it (nothing owned). */
struct gw_budget_table {
    const char *query_id;
    const char *analyst;
    const struct Fedq__V1__Plan *plan;    /* dataset, filter, group-by, aggs */
    const struct gw_budget_scope *scopes; /* every agency pooled */
    size_t n_scopes;
    struct Fedq__V1__ResultColumn *const *columns;
    size_t n_columns;
    /* all_rows[i] was built from groups[i]; rows are those returned
     * (after ORDER BY and LIMIT), a subset of all_rows in any order. */
    struct Fedq__V1__PartialGroup *const *groups;
    struct Fedq__V1__Row *const *all_rows;
    size_t n_groups;
    struct Fedq__V1__Row *const *rows;
    size_t n_rows;
};

/*
 * The ids (32 bytes each, sorted, distinct) of the cells t releases: every
 * aggregate cell of the returned rows not SUPPRESSED. In a. 0, FQ_ETOOBIG
 * (over GW_BUDGET_MAX_CELLS), FQ_ENOMEM or FQ_EINTERNAL.
 */
int gw_budget_cells(const struct gw_budget_table *t, struct fq_arena *a,
                    unsigned char **ret, size_t *ret_n);
/*
 * Charges t's cells to every scope, or none: 0 (recorded, and logged),
 * FQ_ETOOBIG (a scope's budget would be exceeded by new cells, or the
 * table is too large; nothing recorded), FQ_EPROTO (a malformed vintage),
 * FQ_EIO or FQ_ENOMEM; the message for the analyst in err. Scratch in a.
 */
int gw_budget_charge(struct gw_budget *b, const struct gw_budget_table *t,
                     struct fq_arena *a, char *err, size_t errlen);

/* ---- process state shared by handlers ------------------------------------ */

struct gw_state {
    const char *config_path;
    struct fq_tls_material tls;
    struct fq_rpc_server *srv;    /* set once serving */
    void *mu;                     /* pthread_mutex_t *, guards fed */
    struct gw_federation *fed;    /* current; swapped by reload */
    struct gw_held *held;         /* queries held for review */
    struct gw_budget *budget;     /* cells released per analyst */
    struct gw_released *released; /* released tables (secondary.c) */
};

/* The current federation, with a reference the caller drops. */
struct gw_federation *gw_state_federation(struct gw_state *st);

/* ---- fan-out ------------------------------------------------------------- */

/* One agent's answer within a fan-out. */
struct gw_reply {
    int status; /* enum fq_rpc_status */
    const char *message;
    ProtobufCMessage *resp;
    int64_t latency_ms;
};

struct gw_fanout;
/* Runs once, on a worker thread, when every agent asked has answered or
 * failed. Ownership of f passes to it: it must call gw_fanout_free. */
typedef void (*gw_fanout_done_fn)(struct gw_fanout *f, void *arg);

/*
 * Calls method on the agents whose indexes are in which[0..n) (all agents
 * if which is NULL), in parallel, each with the deadline
 * min(parent deadline less a margin, now + agent_timeout). Holds a
 * reference on fed until freed. Returns 0 (done will run) or FQ_ENOMEM.
 */
int gw_fanout_start(struct gw_state *st, struct gw_federation *fed,
                    int64_t parent_deadline, const int *which, size_t n,
                    const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc,
                    gw_fanout_done_fn done, void *arg);
size_t gw_fanout_count(const struct gw_fanout *f);
/* The i-th agent asked (index into fed->agents) and its reply. */
const struct gw_agent *gw_fanout_agent(const struct gw_fanout *f, size_t i);
const struct gw_reply *gw_fanout_reply(const struct gw_fanout *f, size_t i);
void gw_fanout_free(struct gw_fanout *f);

/* ---- catalog cache: each agent's last Describe reply -------------------- */

/*
 * The cached catalog of agent i if younger than fed->cfg->catalog_ttl_ms,
 * with a reference the caller drops with gw_catalog_unref; else NULL.
 */
struct gw_catalog *gw_catalog_get(struct gw_federation *fed, size_t i);
/*
 * Caches a Describe reply for agent i, taking ownership of arena, and
 * returns it with a reference for the caller (NULL when out of memory).
 */
struct gw_catalog *gw_catalog_put(struct gw_federation *fed, size_t i,
                                  struct fq_arena *arena,
                                  const void *describe_response);
void gw_catalog_unref(struct gw_catalog *c);
/* The agency's signed policy in c, verified with its policy key, or NULL
 * with the reason in *why (both valid while c is). */
struct fq_policy;
const struct fq_policy *gw_catalog_policy(const struct gw_catalog *c,
                                          const char **why);
/* The dataset named name (a Fedq__V1__Dataset *) in c, or NULL. */
const void *gw_catalog_dataset(const struct gw_catalog *c, const char *name);

/* Takes slot i's reply arena (the caller frees it); the reply stays valid
 * as long as the arena. */
struct fq_arena *gw_fanout_take(struct gw_fanout *f, size_t i);

/* ---- pooling ------------------------------------------------------------- */

struct Fedq__V1__ExecuteResponse;
struct Fedq__V1__PartialGroup;
struct Fedq__V1__Plan;
struct Fedq__V1__Dataset;
/*
 * Merges the groups of nparts agency answers to plan by key into *ret,
 * sorted by key, allocated in arena; ds is the catalog entry (for the
 * quantile sketches' size; may be NULL without QUANTILE). 0, FQ_EPROTO
 * (an answer of the wrong shape), FQ_ETOOBIG (more than max_groups
 * groups, or an integer overflow) or FQ_ENOMEM. The parts are not
 * modified.
 */
int gw_combine(struct fq_arena *arena,
               struct Fedq__V1__ExecuteResponse *const *parts, size_t nparts,
               const struct Fedq__V1__Plan *plan,
               const struct Fedq__V1__Dataset *ds, size_t max_groups,
               struct Fedq__V1__PartialGroup ***ret, size_t *ret_n);
/*
 * gw_combine, and in *own (allocated in arena, n * nparts entries) each
 * agency's own group of every pooled key: own[i * nparts + p] is part p's
 * group of the key of (*ret)[i], or NULL where that agency returned none.
 * FQ_EPROTO also when one part holds a key twice.
 */
int gw_combine_parts(struct fq_arena *arena,
                     struct Fedq__V1__ExecuteResponse *const *parts,
                     size_t nparts, const struct Fedq__V1__Plan *plan,
                     const struct Fedq__V1__Dataset *ds, size_t max_groups,
                     struct Fedq__V1__PartialGroup ***ret, size_t *ret_n,
                     const struct Fedq__V1__PartialGroup ***own);

/*
 * Completes the pooled groups of a GROUP BY table (from gw_combine_parts,
 * sorted, with own) with an empty group for every combination of the
 * grouped dimensions' published domains that no agency holds, so that
 * the table's shape does not tell a zero from a suppressed count (a
 * policy suppressing zeros needs it). 0, FQ_ETOOBIG (more than max_groups
 * combinations: *too_many says how many, saturated) or FQ_ENOMEM.
 */
int gw_combine_fill(struct fq_arena *arena, const struct Fedq__V1__Plan *plan,
                    const struct Fedq__V1__Dataset *ds, size_t max_groups,
                    size_t nparts, struct Fedq__V1__PartialGroup ***groups,
                    size_t *n, const struct Fedq__V1__PartialGroup ***own,
                    size_t *too_many);

/* ---- methods ------------------------------------------------------------- */

/*
 * How one agent answered, as a fedq.v1.AgencyStatus (a
 * Fedq__V1__AgencyStatus *) allocated in arena; NULL when out of memory.
 */
void *gw_agency_status(struct fq_arena *arena, const struct gw_agent *agent,
                       const struct gw_reply *reply);

void gw_list_datasets(struct fq_rpc_call *call, const ProtobufCMessage *req,
                      void *app);
void gw_federation_status(struct fq_rpc_call *call, const ProtobufCMessage *req,
                          void *app);
void gw_query(struct fq_rpc_call *call, const ProtobufCMessage *req, void *app);
void gw_explain(struct fq_rpc_call *call, const ProtobufCMessage *req,
                void *app);
void gw_get_result(struct fq_rpc_call *call, const ProtobufCMessage *req,
                   void *app);

#endif
