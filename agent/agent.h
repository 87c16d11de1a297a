/*
 * fedq-agent internals shared by its files: the configuration (one struct
 * per YAML mapping, each mapped by a directive table in agent_config.c) and
 * the catalog that Describe serves.
 */
#ifndef AG_AGENT_H
#define AG_AGENT_H

#include "fq/compat.h"
#include "fq/identity.h"
#include "fq/config_shared.h"
#include "fq/tls.h"

struct fq_arena;

#define AG_UNSET INT64_MIN /* an INT directive that was not given */

enum ag_role {
    AG_ROLE_IDENTIFIER,
    AG_ROLE_DIMENSION,
    AG_ROLE_MEASURE,
    AG_ROLE_DATE
};
enum ag_type {
    AG_TYPE_INTEGER,
    AG_TYPE_TEXT,
    AG_TYPE_DATE,
    AG_TYPE_MONTH,
    AG_TYPE_QUARTER,
    AG_TYPE_DECIMAL
};

struct ag_domain {
    char **codes;
    size_t n_codes;
    int64_t min, max; /* AG_UNSET when not given */
};

struct ag_bounds {
    int64_t min, max; /* AG_UNSET when not given */
};

struct ag_column_conf {
    int line;
    char *name;
    int role; /* enum ag_role */
    int type; /* enum ag_type */
    char *description;
    char *unit;
    struct ag_domain domain;
    struct ag_bounds bounds;
    int64_t quantile_bins;  /* 0: QUANTILE not allowed */
    char *contributor_unit; /* measures: identifier the dominance rules
                               weigh; NULL: the dataset's contributor */
};

/* Exactly one of sqlite, csv and postgres is set (agent_config.c). */
struct ag_source_conf {
    int line;
    char *sqlite;    /* path of the SQLite file */
    char *csv;       /* path of a CSV file with a header row */
    char *postgres;  /* libpq connection string */
    char *table;     /* sqlite and postgres: the table */
    char *delimiter; /* csv: one character, default "," */
};

/* How a dataset's queries run. */
enum ag_engine {
    AG_ENGINE_EXTRACT, /* the columnar extract (engine.c), the default */
    AG_ENGINE_SQLITE,  /* the SQLite file itself (execute.c), the reference */
    AG_ENGINE_PUSHDOWN /* parameterised SQL in the agency's PostgreSQL */
};

struct ag_dataset_conf {
    int line;
    char *name;
    char *description;
    struct ag_source_conf source;
    struct ag_column_conf *columns;
    size_t n_columns;
    char *contributor;  /* identifier column counted by the rules, or NULL */
    int engine;         /* enum ag_engine */
    int64_t refresh_ms; /* extract: rebuild this often; 0: start and demand */
};

/* The agency's signed release policy (issue 6). Absent: file is NULL, and
 * the agent serves nothing until a policy is configured. */
struct ag_policy_conf {
    int line;
    char *file;       /* the policy YAML */
    char *signature;  /* its signature file; NULL: file + ".sig" */
    char *public_key; /* the agency's Ed25519 policy public key (PEM) */
};

struct ag_config {
    struct fq_cfg_doc doc;       /* first: arena and file path */
    int line;                    /* of the top-level mapping */
    struct fq_cfg_server server; /* listen, tls, threads, limits, logs */
    char *agency;
    char *federation;
    char *gateway_identity; /* default: spiffe://<federation>/gateway */
    struct ag_dataset_conf *datasets;
    size_t n_datasets;
    int64_t max_groups;     /* cap on the groups one query may produce */
    int64_t max_group_by;   /* cap on a query's GROUP BY columns */
    char *extract_dir;      /* where extracts live; NULL: ../extracts/AGENCY */
    char *control_socket;   /* steward's unix socket; NULL: run_dir/ID.ctl */
    int64_t engine_threads; /* 0: one per core */
    int64_t max_extract_memory; /* bytes of all mapped extracts together */
    int64_t max_query_memory;   /* bytes one query's working state may use */
    int64_t max_result_bytes;   /* encoded size of one Execute answer */
    int64_t ledger_memory;      /* the differencing ledger in memory */
    struct ag_policy_conf policy;
    char *review_dir;      /* held queries; NULL: ../state/AGENCY */
    char *cell_key_secret; /* the agency's cell-key secret (cellkey.h) */
};

/* Loads and checks a config file. 0, or FQ_E* with "FILE:LINE: ..." in err.
 * Free with ag_config_free. */
int ag_config_load(const char *path, struct ag_config **ret, char *err,
                   size_t errlen);
void ag_config_free(struct ag_config *cfg);
/* The directive table, for the configuration reference. */
extern const struct fq_cfg_directive ag_config_table[];

/*
 * The catalog: the configuration's datasets checked against their SQLite
 * sources and rendered once as the Describe reply. Immutable once built;
 * shared by calls through a reference count so SIGHUP can swap it.
 */
struct ag_catalog;

int ag_catalog_build(const struct ag_config *cfg, struct ag_catalog **ret,
                     char *err, size_t errlen);
void ag_catalog_ref(struct ag_catalog *cat);
void ag_catalog_unref(struct ag_catalog *cat);
/* Where a dataset's records live, as the executors need it. */
struct ag_source {
    const char *sqlite;      /* file, opened read-only; NULL if another */
    const char *table;       /* checked identifier; NULL for csv */
    const char *contributor; /* identifier column counted by the rules */
    int engine;              /* enum ag_engine */
    /* The dataset's configuration, valid while the catalog is: the
     * catalog is built from a configuration that outlives it (see
     * ag_catalog_adopt_config). */
    const struct ag_dataset_conf *conf;
};

/* The agency's cell-key secret the SQL engines key cell keys with (the
 * agent's, loaded once at start; it outlives every catalog). Without one
 * every record key is 0 (unit tests that do not look at cell keys). */
struct ag_cell_secret;
void ag_catalog_set_secret(struct ag_catalog *cat,
                           const struct ag_cell_secret *secret);
const struct ag_cell_secret *ag_catalog_secret(const struct ag_catalog *cat);

/* The configuration the catalog was built from. */
const struct ag_config *ag_catalog_config(const struct ag_catalog *cat);

/* Hands cfg (the one cat was built from) to the catalog, which frees it
 * with its last reference: a reloaded catalog keeps its configuration
 * alive for the queries still using it. */
void ag_catalog_adopt_config(struct ag_catalog *cat, struct ag_config *cfg);

/*
 * The catalog entry (a Fedq__V1__Dataset *) and source of dataset name, or
 * NULL if the catalog has none. Valid while the caller holds a reference.
 */
const void *ag_catalog_find(const struct ag_catalog *cat, const char *name,
                            const struct ag_source **ret_source);

/* The prebuilt fedq.v1.DescribeResponse (a ProtobufCMessage). */
const void *ag_catalog_describe(const struct ag_catalog *cat);
size_t ag_catalog_datasets(const struct ag_catalog *cat);

/*
 * Runs plan on the catalog's dataset: checks it (fq_plan_check), compiles
 * it to parameterised SQL and fills resp with one partial group per group,
 * allocated in arena. 0, or FQ_ENOENT / FQ_EINVAL / FQ_ETOOBIG (more than
 * max_groups groups, or a sum overflow) / FQ_EIO, with a message in err.
 */
struct Fedq__V1__Plan;
struct Fedq__V1__ExecuteResponse;
int ag_execute(const struct ag_catalog *cat, const struct Fedq__V1__Plan *plan,
               size_t max_groups, struct fq_arena *arena,
               struct Fedq__V1__ExecuteResponse *resp, char *err,
               size_t errlen);

/*
 * The members (ledger.h) of cells refs[0..n) of plan's answer on the
 * catalog's SQLite dataset: records by rowid, persons by their tag under
 * the catalog's secret. out[i].m is malloc'd (the caller frees). 0, or
 * FQ_ENOENT / FQ_EINVAL / FQ_EIO / FQ_ENOMEM with err.
 */
struct ag_member_ref;
struct ag_cellset;
int ag_execute_members(const struct ag_catalog *cat,
                       const struct Fedq__V1__Plan *plan,
                       const struct ag_member_ref *refs, size_t n,
                       struct fq_arena *arena, struct ag_cellset *out,
                       char *err, size_t errlen);

#endif