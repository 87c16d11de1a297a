/*
 * fedq, the analyst's and steward's command-line tool: internals shared by
 * its files (client configuration, output tables, commands).
 */
#ifndef CLI_CLI_H
#define CLI_CLI_H

#include "fq/compat.h"
#include "fq/config_shared.h"
#include "fq/rpc.h"

struct fq_arena;

/* Exit codes (documented in docs/analyst-guide.md). */
enum cli_exit {
    CLI_OK = 0,
    CLI_ERROR = 1,   /* the call failed; the server's message is printed */
    CLI_USAGE = 2,   /* bad command line or client configuration */
    CLI_PARTIAL = 3, /* answered, but some agency did not */
    CLI_PENDING = 4, /* held for a steward's review: ask again later */
};

enum cli_format { CLI_FMT_TABLE, CLI_FMT_CSV, CLI_FMT_JSON };

struct cli_config {
    struct fq_cfg_doc doc; /* first: arena and file path */
    char *federation;
    char *gateway;          /* gRPC target of the gateway; NULL: none */
    char *gateway_identity; /* default spiffe://FED/gateway */
    struct fq_cfg_tls tls;
    int64_t timeout_ms;
    int format;           /* enum cli_format */
    char *agreement;      /* default of --agreement; NULL: none */
    char *purpose;        /* default of --purpose; NULL: none */
    char *agent;          /* a steward's own agent (fedq review); NULL: none */
    char *agent_identity; /* NULL: spiffe://FED/agency/AGENCY/agent */
    struct fq_arena *arena;
    char *path; /* the file it was read from */
};

/*
 * Finds the client configuration: explicit (--config), then $FEDQ_CONFIG,
 * $FEDQ_HOME/client.yaml, .fedq-local/client.yaml in the current directory
 * or a parent, ~/.config/fedq/client.yaml. 0, or FQ_E* with a message in
 * err. Free with cli_config_free.
 */
int cli_config_find(const char *explicit_path, struct cli_config **ret,
                    char *err, size_t errlen);
void cli_config_free(struct cli_config *cfg);
extern const struct fq_cfg_directive cli_config_table[];

/* A connected client: config, TLS material, channel to the gateway. */
struct cli {
    struct cli_config *cfg;
    struct fq_tls_material tls;
    struct fq_rpc_channel *gw; /* NULL when the configuration names none */
    int format;                /* enum cli_format, after --format */
};

/*
 * Calls method on the gateway; on a non-OK status prints
 * "fedq: STATUS: message" to stderr and returns CLI_ERROR (CLI_USAGE when
 * the configuration names no gateway). On success fills res (caller frees
 * res->arena) and returns CLI_OK.
 */
int cli_call(struct cli *c, const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *resp_desc,
             struct fq_rpc_result *res);
/* The same on another channel (a steward's agent). */
int cli_call_on(struct cli *c, struct fq_rpc_channel *ch, const char *method,
                const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *resp_desc,
                struct fq_rpc_result *res);

/* Sets c->format from "table", "csv" or "json"; 0 or FQ_EINVAL. */
int cli_set_format(struct cli *c, const char *name);

/* ---- output: named sections of rows, printed as table, CSV or JSON ----- */

struct cli_out;

struct cli_out *cli_out_new(int format);
/* Starts a section (a titled table); columns is NULL-terminated. */
int cli_out_section(struct cli_out *o, const char *title,
                    const char *const *columns);
/* Adds a row to the current section; values are copied. */
int cli_out_row(struct cli_out *o, const char *const *values);
/* items joined by sep, in a; "" for none, "?" if a is full. */
const char *cli_join(struct fq_arena *a, char *const *items, size_t n,
                     const char *sep);
/* Prints s as a JSON string (quoted, escaped) to stdout. */
void cli_json_string(const char *s);
/* Prints everything to stdout and frees o. */
void cli_out_print(struct cli_out *o);

/* "ok", "unavailable", "timeout", "refused", "error" for an AgencyState. */
const char *cli_agency_state_name(int state);
/* An "agencies" section: one row per fedq.v1.AgencyStatus. */
struct Fedq__V1__AgencyStatus;
int cli_out_agencies(struct cli_out *o, struct fq_arena *a,
                     struct Fedq__V1__AgencyStatus *const *agencies, size_t n);
/* A "plan" section: dataset, filter, group by, aggregates (part, value). */
struct Fedq__V1__Plan;
int cli_out_plan(struct cli_out *o, struct fq_arena *a,
                 const struct Fedq__V1__Plan *p);

/* ---- commands ------------------------------------------------------------ */

int cli_cmd_datasets(struct cli *c, int argc, char **argv);
int cli_cmd_health(struct cli *c, int argc, char **argv);
int cli_cmd_query(struct cli *c, int argc, char **argv);
int cli_cmd_explain(struct cli *c, int argc, char **argv);
/* `fedq result ID`: a held query's answer, printed as `fedq query` does. */
int cli_cmd_result(struct cli *c, int argc, char **argv);
/* `fedq review ...`: a steward's calls to the agency's own agent. */
int cli_cmd_review(struct cli *c, int argc, char **argv);
/* Offline: c has no configuration or channel, only its format. */
int cli_cmd_policy(struct cli *c, int argc, char **argv);
/* cmd_ptable.c */
int cli_cmd_ptable(struct cli *c, int argc, char **argv);

#endif
