/*
 * The agent's configuration: directive tables (the single source of keys,
 * types, bounds, defaults and docs) and the semantic checks that tie keys
 * together. docs/configuration.md is generated from these tables.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/log.h"
#include "fq/plan.h"
#include "agent.h"

#define UNSET_TEXT "-9223372036854775808"

static const char *const role_names[] = {"identifier", "dimension", "measure",
                                         "date", NULL};
static const char *const engine_names[] = {"extract", "sqlite", "pushdown",
                                           NULL};
static const char *const type_names[] = {"integer", "text",    "date", "month",
                                         "quarter", "decimal", NULL};

static const struct fq_cfg_directive domain_table[] = {
    {.key = "codes",
     .type = FQ_CFG_STRLIST,
     .offset = offsetof(struct ag_domain, codes),
     .max = 100000,
     .count_offset = offsetof(struct ag_domain, n_codes),
     .doc = "every value the dimension may take (text codes)"},
    {.key = "min",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct ag_domain, min),
     .def = UNSET_TEXT,
     .flags = FQ_CFG_DEFAULT_UNSET,
     .doc = "smallest value of an integer dimension"},
    {.key = "max",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct ag_domain, max),
     .def = UNSET_TEXT,
     .flags = FQ_CFG_DEFAULT_UNSET,
     .doc = "largest value of an integer dimension"},
    {0},
};

static const struct fq_cfg_directive bounds_table[] = {
    {.key = "min",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct ag_bounds, min),
     .def = UNSET_TEXT,
     .flags = FQ_CFG_DEFAULT_UNSET,
     .doc = "smallest value a record may hold"},
    {.key = "max",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct ag_bounds, max),
     .def = UNSET_TEXT,
     .flags = FQ_CFG_DEFAULT_UNSET,
     .doc = "largest value a record may hold"},
    {0},
};

static int check_column(void *obj, struct fq_cfg_error *err);
static int check_dataset(void *obj, struct fq_cfg_error *err);
static int check_config(void *obj, struct fq_cfg_error *err);
static int check_policy(void *obj, struct fq_cfg_error *err);

static const struct fq_cfg_directive column_table[] = {
    {.key = "",
     .type = FQ_CFG_LINE,
     .offset = offsetof(struct ag_column_conf, line)},
    {.key = "name",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct ag_column_conf, name),
     .min = 1,
     .max = 63,
     .doc = "column name in the source table"},
    {.key = "role",
     .type = FQ_CFG_ENUM,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct ag_column_conf, role),
     .names = role_names,
     .doc = "dimension (groupable, needs a domain), measure (aggregated), "
            "date, or identifier (linkage only, never released)"},
    {.key = "type",
     .type = FQ_CFG_ENUM,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct ag_column_conf, type),
     .names = type_names,
     .doc = "logical type; query literals are typed against it"},
    {.key = "description",
     .type = FQ_CFG_STRING,
     .offset = offsetof(struct ag_column_conf, description),
     .doc = "what the column means, for analysts"},
    {.key = "unit",
     .type = FQ_CFG_STRING,
     .max = 32,
     .offset = offsetof(struct ag_column_conf, unit),
     .doc = "unit of a measure, e.g. cents"},
    {.key = "domain",
     .type = FQ_CFG_SECTION,
     .offset = offsetof(struct ag_column_conf, domain),
     .sub = domain_table,
     .doc = "published domain of a dimension: codes, or min and max"},
    {.key = "bounds",
     .type = FQ_CFG_SECTION,
     .offset = offsetof(struct ag_column_conf, bounds),
     .sub = bounds_table,
     .doc = "declared value bounds of a measure"},
    {.key = "quantile_bins",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct ag_column_conf, quantile_bins),
     .min = 0,
     .max = FQ_QUANTILE_MAX_BINS,
     .def = "0",
     .doc = "allow QUANTILE on this integer measure, from a sketch of this "
            "many equal bins over its bounds (error: half a bin); 0: not "
            "allowed"},
    {.key = "contributor_unit",
     .type = FQ_CFG_STRING,
     .offset = offsetof(struct ag_column_conf, contributor_unit),
     .min = 1,
     .max = 63,
     .doc = "measures only: the identifier column whose values are the "
            "contributors the dominance rules weigh (e.g. employer_id: "
            "wages are added up per employer first); default the dataset's "
            "contributor (persons)"},
    {0},
};

static const struct fq_cfg_directive source_table[] = {
    {.key = "",
     .type = FQ_CFG_LINE,
     .offset = offsetof(struct ag_source_conf, line)},
    {.key = "sqlite",
     .type = FQ_CFG_PATH,
     .offset = offsetof(struct ag_source_conf, sqlite),
     .doc = "SQLite file holding the table (opened read-only); exactly one "
            "of sqlite, csv and postgres"},
    {.key = "csv",
     .type = FQ_CFG_PATH,
     .offset = offsetof(struct ag_source_conf, csv),
     .doc = "CSV file (RFC 4180, a header row naming the columns); only the "
            "extract engine reads it"},
    {.key = "postgres",
     .type = FQ_CFG_STRING,
     .max = 1024,
     .offset = offsetof(struct ag_source_conf, postgres),
     .doc = "libpq connection string of the agency's PostgreSQL (e.g. "
            "\"host=/run/postgresql dbname=dss\")"},
    {.key = "delimiter",
     .type = FQ_CFG_STRING,
     .min = 1,
     .max = 1,
     .offset = offsetof(struct ag_source_conf, delimiter),
     .doc = "csv: the field delimiter (default ',')"},
    {.key = "table",
     .type = FQ_CFG_STRING,
     .offset = offsetof(struct ag_source_conf, table),
     .min = 1,
     .max = 63,
     .doc = "table name in that file"},
    {0},
};

static const struct fq_cfg_directive dataset_table[] = {
    {.key = "",
     .type = FQ_CFG_LINE,
     .offset = offsetof(struct ag_dataset_conf, line)},
    {.key = "name",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct ag_dataset_conf, name),
     .min = 1,
     .max = 63,
     .doc = "dataset name, queried as AGENCY.NAME"},
    {.key = "description",
     .type = FQ_CFG_STRING,
     .offset = offsetof(struct ag_dataset_conf, description),
     .doc = "what the dataset holds, for analysts"},
    {.key = "source",
     .type = FQ_CFG_SECTION,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct ag_dataset_conf, source),
     .sub = source_table,
     .doc = "where the records live"},
    {.key = "contributor",
     .type = FQ_CFG_STRING,
     .offset = offsetof(struct ag_dataset_conf, contributor),
     .max = 63,
     .doc = "identifier column whose distinct values the disclosure rules "
            "count (the persons behind a cell); default: records"},
    {.key = "engine",
     .type = FQ_CFG_ENUM,
     .offset = offsetof(struct ag_dataset_conf, engine),
     .names = engine_names,
     .def = "extract",
     .doc = "extract (a columnar copy inside the agency, the default), "
            "sqlite (query the SQLite file itself), or pushdown (run "
            "parameterised SQL in the postgres source)"},
    {.key = "refresh",
     .type = FQ_CFG_DURATION,
     .offset = offsetof(struct ag_dataset_conf, refresh_ms),
     .min = 0,
     .max = 366LL * 24 * 3600 * 1000,
     .def = "0",
     .doc = "extract: rebuild from the source this often; 0: at start and "
            "on 'fedq-agent refresh' only"},
    {.key = "columns",
     .type = FQ_CFG_LIST,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct ag_dataset_conf, columns),
     .min = 1,
     .max = 256,
     .sub = column_table,
     .elem_size = sizeof(struct ag_column_conf),
     .count_offset = offsetof(struct ag_dataset_conf, n_columns),
     .check = check_column,
     .doc = "the columns exposed; others are invisible"},
    {0},
};

/* file and public_key are required once the section is there; the check
 * says so, since a required key would also be required of an absent
 * section. */
static const struct fq_cfg_directive policy_table[] = {
    {.key = "",
     .type = FQ_CFG_LINE,
     .offset = offsetof(struct ag_policy_conf, line)},
    {.key = "file",
     .type = FQ_CFG_PATH,
     .offset = offsetof(struct ag_policy_conf, file),
     .min = 1,
     .doc = "the agency's release policy (YAML; see the policy reference), "
            "relative to this file; required in this section"},
    {.key = "signature",
     .type = FQ_CFG_PATH,
     .offset = offsetof(struct ag_policy_conf, signature),
     .min = 1,
     .doc = "the policy's signature, as 'fedq policy sign' writes it "
            "(default: file + \".sig\")"},
    {.key = "public_key",
     .type = FQ_CFG_PATH,
     .offset = offsetof(struct ag_policy_conf, public_key),
     .min = 1,
     .doc = "the agency's Ed25519 policy public key (PEM, from "
            "'deploy/pki.sh policy-key'); the signature must verify with it; "
            "required in this section"},
    {0},
};

const struct fq_cfg_directive ag_config_table[] = {
    {.key = "",
     .type = FQ_CFG_LINE,
     .offset = offsetof(struct ag_config, line)},
    {.key = "agency",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct ag_config, agency),
     .min = 1,
     .max = 32,
     .doc = "agency id, as in the certificate and the gateway's config"},
    {.key = "federation",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct ag_config, federation),
     .min = 1,
     .max = 63,
     .doc = "federation name (the trust domain of every identity)"},
    {.type = FQ_CFG_INLINE,
     .offset = offsetof(struct ag_config, server),
     .sub = fq_cfg_server_table},
    {.key = "gateway_identity",
     .type = FQ_CFG_STRING,
     .offset = offsetof(struct ag_config, gateway_identity),
     .max = 255,
     .doc = "the only identity served (default spiffe://FED/gateway)"},
    {.key = "max_groups",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct ag_config, max_groups),
     .min = 1,
     .max = 10000000,
     .def = "100000",
     .doc = "most groups one query may produce (more: RESOURCE_EXHAUSTED)"},
    {.key = "max_group_by",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct ag_config, max_group_by),
     .min = 1,
     .max = FQ_PLAN_MAX_GROUP_BY,
     .def = "4",
     .doc = "most GROUP BY columns one query may use"},
    {.key = "extract_dir",
     .type = FQ_CFG_PATH,
     .offset = offsetof(struct ag_config, extract_dir),
     .doc = "where the extracts are written and mapped (default "
            "../extracts/AGENCY from this file)"},
    {.key = "control_socket",
     .type = FQ_CFG_PATH,
     .offset = offsetof(struct ag_config, control_socket),
     .doc = "unix socket for the steward's commands (fedq-agent refresh); "
            "mode 0600 (default run_dir/agent-AGENCY.ctl)"},
    {.key = "engine_threads",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct ag_config, engine_threads),
     .min = 0,
     .max = 256,
     .def = "0",
     .doc = "threads one extract query uses (0: one per core)"},
    {.key = "max_extract_memory",
     .type = FQ_CFG_SIZE,
     .offset = offsetof(struct ag_config, max_extract_memory),
     .min = 1024 * 1024,
     .max = 1LL << 44,
     .def = "8GiB",
     .doc = "most bytes all mapped extracts may take together; a refresh "
            "that would pass it fails and the old extract keeps serving"},
    {.key = "max_query_memory",
     .type = FQ_CFG_SIZE,
     .offset = offsetof(struct ag_config, max_query_memory),
     .min = 1024 * 1024,
     .max = 1LL << 40,
     .def = "512MiB",
     .doc = "most working memory one extract query may use (groups, "
            "sketches; more: RESOURCE_EXHAUSTED)"},
    {.key = "ledger_memory",
     .type = FQ_CFG_SIZE,
     .offset = offsetof(struct ag_config, ledger_memory),
     .min = 1024 * 1024,
     .max = 1LL << 44,
     .def = "1GiB",
     .doc = "most bytes the differencing ledger holds in memory (16 per "
            "record of every cell released from the current data vintages); "
            "when full, queries are refused until a new vintage"},
    {.key = "max_result_bytes",
     .type = FQ_CFG_SIZE,
     .offset = offsetof(struct ag_config, max_result_bytes),
     .min = 4096,
     .max = 1LL << 32,
     .def = "64MiB",
     .doc = "largest encoded Execute answer (more: RESOURCE_EXHAUSTED)"},
    {.key = "policy",
     .type = FQ_CFG_SECTION,
     .offset = offsetof(struct ag_config, policy),
     .sub = policy_table,
     .check = check_policy,
     .doc = "the agency's signed release policy (fail closed: without a "
            "policy that verifies and names this agency and federation, the "
            "agent answers Describe but refuses every Execute with "
            "FAILED_PRECONDITION, and --check fails); SIGHUP reloads it, "
            "keeping the running policy if the new one does not load"},
    {.key = "cell_key_secret",
     .type = FQ_CFG_PATH,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct ag_config, cell_key_secret),
     .min = 1,
     .doc = "the agency's cell-key secret (64 hex digits, mode 0600, from "
            "'deploy/pki.sh cell-key'): record keys for the cell-key "
            "perturbation derive from it; never shared; restart to "
            "change"},
    {.key = "review_dir",
     .type = FQ_CFG_PATH,
     .offset = offsetof(struct ag_config, review_dir),
     .min = 1,
     .doc = "where queries held for the steward's review are kept (one "
            "SQLite file, mode 0600, in a directory of mode 0700; they "
            "survive restarts); default ../state/AGENCY from this file; "
            "restart to change"},
    {.key = "datasets",
     .type = FQ_CFG_LIST,
     .offset = offsetof(struct ag_config, datasets),
     .max = 64,
     .sub = dataset_table,
     .elem_size = sizeof(struct ag_dataset_conf),
     .count_offset = offsetof(struct ag_config, n_datasets),
     .check = check_dataset,
     .doc = "the datasets this agent exposes"},
    {0},
};

/* Column and table names end up in SQL: identifiers only, never quoted. */
static bool
sql_identifier(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (s++; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    }
    return true;
}

static int
check_domain(const struct ag_column_conf *c, struct fq_cfg_error *err)
{
    const struct ag_domain *d = &c->domain;
    bool range = d->min != AG_UNSET || d->max != AG_UNSET;

    if (c->role != AG_ROLE_DIMENSION) {
        if (d->n_codes || range)
            FQ_CFG_FAIL(err, "column '%s': only a dimension has a domain",
                        c->name);
        return 0;
    }
    if (d->n_codes && range)
        FQ_CFG_FAIL(err, "column '%s': domain has both codes and min/max",
                    c->name);
    if (!d->n_codes && !range)
        FQ_CFG_FAIL(err,
                    "dimension '%s' needs a domain (codes, or min and max)",
                    c->name);
    if (range && (c->type != AG_TYPE_INTEGER || d->min == AG_UNSET ||
                  d->max == AG_UNSET || d->min > d->max))
        FQ_CFG_FAIL(err,
                    "dimension '%s': min/max domain needs an integer column "
                    "and min <= max",
                    c->name);
    for (size_t i = 0; i < d->n_codes; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(d->codes[i], d->codes[j]) == 0)
                FQ_CFG_FAIL(err, "dimension '%s': code '%s' listed twice",
                            c->name, d->codes[i]);
        }
    }
    return 0;
}

static int
check_column(void *obj, struct fq_cfg_error *err)
{
    const struct ag_column_conf *c = obj;
    const struct ag_bounds *b = &c->bounds;
    bool has_bounds = b->min != AG_UNSET || b->max != AG_UNSET;

    if (!sql_identifier(c->name))
        FQ_CFG_FAIL(err, "column name '%s' must be letters, digits and '_'",
                    c->name);
    if (has_bounds && c->role != AG_ROLE_MEASURE)
        FQ_CFG_FAIL(err, "column '%s': only a measure has bounds", c->name);
    if (c->role == AG_ROLE_MEASURE) {
        if (c->type != AG_TYPE_INTEGER && c->type != AG_TYPE_DECIMAL)
            FQ_CFG_FAIL(err, "measure '%s' must be integer or decimal",
                        c->name);
        if (b->min == AG_UNSET || b->max == AG_UNSET || b->min > b->max)
            FQ_CFG_FAIL(err, "measure '%s' needs bounds with min <= max",
                        c->name);
    }
    if (c->quantile_bins &&
        (c->role != AG_ROLE_MEASURE || c->type != AG_TYPE_INTEGER))
        FQ_CFG_FAIL(err, "column '%s': quantile_bins needs an integer measure",
                    c->name);
    if (c->quantile_bins &&
        fq_quantile_width(b->min, b->max, c->quantile_bins) <= 0)
        FQ_CFG_FAIL(err,
                    "measure '%s': bounds too wide for a quantile sketch "
                    "(max - min must be below 2^62)",
                    c->name);
    return check_domain(c, err);
}

static bool
has_identifier(const struct ag_dataset_conf *d, const char *name)
{
    for (size_t i = 0; i < d->n_columns; i++) {
        if (strcmp(d->columns[i].name, name) == 0)
            return d->columns[i].role == AG_ROLE_IDENTIFIER;
    }
    return false;
}

/* Exactly one source, what it needs, and an engine that can read it. */
static int
check_source(const struct ag_dataset_conf *d, struct fq_cfg_error *err)
{
    const struct ag_source_conf *s = &d->source;
    int n = !!s->sqlite + !!s->csv + !!s->postgres, line = err->line;

    err->line = s->line;
    if (n != 1)
        FQ_CFG_FAIL(err,
                    "dataset '%s': source needs exactly one of sqlite, csv "
                    "and postgres",
                    d->name);
    if (!s->csv && !s->table)
        FQ_CFG_FAIL(err, "dataset '%s': source needs a table", d->name);
    if (s->table && !sql_identifier(s->table))
        FQ_CFG_FAIL(err, "table name '%s' must be letters, digits and '_'",
                    s->table);
    if (s->csv && s->table)
        FQ_CFG_FAIL(err, "dataset '%s': a csv source has no table", d->name);
    if (s->delimiter && !s->csv)
        FQ_CFG_FAIL(err, "dataset '%s': delimiter is for csv sources", d->name);
    if (d->engine == AG_ENGINE_SQLITE && !s->sqlite)
        FQ_CFG_FAIL(err, "dataset '%s': engine sqlite needs a sqlite source",
                    d->name);
    if (d->engine == AG_ENGINE_PUSHDOWN && !s->postgres)
        FQ_CFG_FAIL(err,
                    "dataset '%s': engine pushdown needs a postgres source",
                    d->name);
    if (d->refresh_ms && d->engine != AG_ENGINE_EXTRACT)
        FQ_CFG_FAIL(err, "dataset '%s': refresh is for the extract engine",
                    d->name);
    err->line = line;
    return 0;
}

static int
check_dataset(void *obj, struct fq_cfg_error *err)
{
    const struct ag_dataset_conf *d = obj;
    size_t visible = 0;

    if (!sql_identifier(d->name))
        FQ_CFG_FAIL(err, "dataset name '%s' must be letters, digits and '_'",
                    d->name);
    if (check_source(d, err) < 0)
        return FQ_EINVAL;
    for (size_t i = 0; i < d->n_columns; i++) {
        visible += d->columns[i].role != AG_ROLE_IDENTIFIER;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(d->columns[i].name, d->columns[j].name) == 0) {
                err->line = d->columns[i].line;
                FQ_CFG_FAIL(err, "column '%s' listed twice",
                            d->columns[i].name);
            }
        }
    }
    if (d->contributor && !has_identifier(d, d->contributor))
        FQ_CFG_FAIL(err,
                    "contributor '%s' is not an identifier column of "
                    "dataset '%s'",
                    d->contributor, d->name);
    for (size_t i = 0; i < d->n_columns; i++) {
        const struct ag_column_conf *c = &d->columns[i];
        if (!c->contributor_unit)
            continue;
        err->line = c->line;
        if (c->role != AG_ROLE_MEASURE)
            FQ_CFG_FAIL(err,
                        "column '%s': only a measure has a "
                        "contributor_unit",
                        c->name);
        if (!has_identifier(d, c->contributor_unit))
            FQ_CFG_FAIL(err,
                        "measure '%s': contributor_unit '%s' is not an "
                        "identifier column of dataset '%s'",
                        c->name, c->contributor_unit, d->name);
    }
    if (visible == 0)
        FQ_CFG_FAIL(err, "dataset '%s' exposes no dimension, measure or date",
                    d->name);
    return 0;
}

static int
check_policy(void *obj, struct fq_cfg_error *err)
{
    const struct ag_policy_conf *p = obj;

    if (!p->file && !p->signature && !p->public_key)
        return 0; /* no policy: the agent starts, and serves nothing */
    if (!p->file)
        FQ_CFG_FAIL(err, "policy needs file (the signed policy YAML)");
    if (!p->public_key)
        FQ_CFG_FAIL(err, "policy needs public_key (the agency's Ed25519 "
                         "policy public key)");
    return 0;
}

static int
check_config(void *obj, struct fq_cfg_error *err)
{
    struct ag_config *cfg = obj;
    struct fq_identity gw;

    if (!fq_name_valid(cfg->agency))
        FQ_CFG_FAIL(err, "agency '%s' must match [a-z0-9][a-z0-9_-]*",
                    cfg->agency);
    if (!fq_federation_valid(cfg->federation))
        FQ_CFG_FAIL(err, "federation '%s' must match [a-z0-9][a-z0-9.-]*",
                    cfg->federation);
    if (!cfg->gateway_identity) {
        cfg->gateway_identity = fq_arena_printf(
            cfg->doc.arena, "spiffe://%s/gateway", cfg->federation);
        if (!cfg->gateway_identity)
            return FQ_ENOMEM;
    }
    if (fq_identity_parse(cfg->gateway_identity, strlen(cfg->gateway_identity),
                          &gw) < 0 ||
        gw.role != FQ_ROLE_GATEWAY ||
        strcmp(gw.federation, cfg->federation) != 0)
        FQ_CFG_FAIL(err,
                    "gateway_identity '%s' is not a gateway of federation '%s'",
                    cfg->gateway_identity, cfg->federation);
    if (fq_cfg_server_check(&cfg->server, err) < 0)
        return FQ_EINVAL;
    for (size_t i = 0; i < cfg->n_datasets; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cfg->datasets[i].name, cfg->datasets[j].name) == 0) {
                err->line = cfg->datasets[i].line;
                FQ_CFG_FAIL(err, "dataset '%s' listed twice",
                            cfg->datasets[i].name);
            }
        }
    }
    return 0;
}

int
ag_config_load(const char *path, struct ag_config **ret, char *err,
               size_t errlen)
{
    return fq_cfg_doc_load(path, ag_config_table, check_config,
                           sizeof(struct ag_config), (void **)ret, err, errlen);
}

void
ag_config_free(struct ag_config *cfg)
{
    fq_cfg_doc_free(cfg ? &cfg->doc : NULL);
}
