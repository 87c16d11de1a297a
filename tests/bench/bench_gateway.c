/*
 * Over the network, through the real servers, each over one long-lived
 * mutual-TLS channel (the fedq CLI would add a process start and a
 * handshake to every query):
 *
 *   gateway  the queries as an analyst sends them: a run is one blocking
 *            Gateway/Query call (the gateway parses and plans, fans out,
 *            merges, applies disclosure control and answers; the reply is
 *            decoded here);
 *   agent    one agent as the gateway calls it, with the gateway's
 *            certificate: the plan is built here once from the agent's
 *            Describe, a run is one Agent/Execute call. Against the
 *            in-process engine, this is the agent's RPC and transport cost;
 *            against the gateway, the fan-out and merge.
 */
#include "bench.h"

#include "fq/arena.h"
#include "fq/error.h"
#include "fq/log.h"
#include "fq/plan.h"
#include "fq/rpc.h"
#include "fq/sql.h"
#include "fq/tls.h"

#include "fedq/v1/agent.pb-c.h"
#include "fedq/v1/gateway.pb-c.h"

#define GW_TIMEOUT_MS   30000
#define GW_MESSAGE_MAX  (64u * 1024 * 1024)
#define GW_TEXT_MAX     1024
#define GW_IDENTITY_MAX 512
#define GW_ARENA_MAX    (16u * 1024 * 1024)

/* The agreement and purpose every query names: the example dss policy's,
 * which run.sh signs for each benchmark agency. */
#define BENCH_AGREEMENT "P20W-2026-01"
#define BENCH_PURPOSE   "program evaluation"

struct gateway_ctx {
    struct fq_rpc_channel *ch;
    const char *source;
};

/* Collects one released row; rows with a suppressed cell count apart
 * (they carry no value to check). */
static void
collect_row(const Fedq__V1__Row *row, const struct bench_query *q,
            struct bench_result *res)
{
    char key[BENCH_KEY_MAX];
    size_t len = 0, nk = q->n_keys, need = nk + 1 + (q->has_sum ? 1 : 0);

    key[0] = '\0';
    if (row->n_cells < need)
        return;
    for (size_t i = nk; i < need; i++) {
        if (row->cells[i]->status != FEDQ__V1__CELL_STATUS__CELL_STATUS_EXACT) {
            res->suppressed++;
            return;
        }
    }
    for (size_t i = 0; i < nk; i++) {
        const Fedq__V1__Cell *c = row->cells[i];
        bench_key_part(
            key, sizeof(key), &len, i,
            c->value_case == FEDQ__V1__CELL__VALUE_TEXT_VALUE ? c->text_value
                                                              : NULL,
            c->value_case == FEDQ__V1__CELL__VALUE_INT_VALUE, c->int_value);
    }
    bench_result_add(res, key, row->cells[nk]->int_value,
                     q->has_sum ? row->cells[nk + 1]->int_value : 0);
}

/* One blocking call; a failed one (no call, or a status other than OK)
 * is an error with a message. The caller frees r->arena either way. */
static int
rpc_call(struct fq_rpc_channel *ch, const char *method,
         const ProtobufCMessage *req, const ProtobufCMessageDescriptor *desc,
         struct fq_rpc_result *r, char *err, size_t errlen)
{
    int rc = fq_rpc_call_blocking(ch, method, req, desc, GW_TIMEOUT_MS, r);
    if (rc < 0) {
        snprintf(err, errlen, "cannot call %s", method);
        return rc;
    }
    if (r->status != FQ_RPC_OK) {
        snprintf(err, errlen, "%s: %s: %s", method,
                 fq_rpc_status_name(r->status), r->message);
        return FQ_EIO;
    }
    return 0;
}

static int
gateway_run(void *vctx, const struct bench_query *q, struct bench_result *res,
            char *err, size_t errlen)
{
    struct gateway_ctx *c = vctx;
    Fedq__V1__QueryRequest req = FEDQ__V1__QUERY_REQUEST__INIT;
    struct fq_rpc_result r = {0};
    char text[GW_TEXT_MAX];
    int rc;

    if ((rc = bench_query_text(q->fedq, c->source, text, sizeof(text))) < 0)
        return rc;
    req.sql = text;
    req.agreement = BENCH_AGREEMENT;
    req.purpose = BENCH_PURPOSE;
    rc = rpc_call(c->ch, "/fedq.v1.Gateway/Query", &req.base,
                  &fedq__v1__query_response__descriptor, &r, err, errlen);
    if (rc == 0 && res) {
        const Fedq__V1__QueryResponse *resp =
            (const Fedq__V1__QueryResponse *)r.resp;
        for (size_t i = 0; i < resp->n_rows; i++)
            collect_row(resp->rows[i], q, res);
    }
    fq_arena_free(r.arena);
    return rc;
}

/* ---- agent: Execute as the gateway sends it ---------------------------- */

struct agent_ctx {
    struct fq_rpc_channel *ch;
    const Fedq__V1__Dataset *ds; /* from Describe */
    struct fq_arena *arena;      /* ds and the plans */
    Fedq__V1__Plan *plans[8];    /* per query, built once */
};

static int
agent_run(void *vctx, const struct bench_query *q, struct bench_result *res,
          char *err, size_t errlen)
{
    struct agent_ctx *c = vctx;
    Fedq__V1__ExecuteRequest req = FEDQ__V1__EXECUTE_REQUEST__INIT;
    struct fq_rpc_result r = {0};
    int rc;

    req.query_id = "q-bench";
    req.analyst = "spiffe://fedq.local/analyst/alice";
    req.agreement = BENCH_AGREEMENT;
    req.purpose = BENCH_PURPOSE;
    req.plan = c->plans[q - bench_queries];
    rc = rpc_call(c->ch, "/fedq.v1.Agent/Execute", &req.base,
                  &fedq__v1__execute_response__descriptor, &r, err, errlen);
    if (rc == 0 && res) {
        bench_collect_partials((const Fedq__V1__ExecuteResponse *)r.resp, q,
                               res);
    }
    fq_arena_free(r.arena);
    return rc;
}

/* The agent's catalog entry of the enrollment dataset, and the plans. */
static int
agent_prepare(struct agent_ctx *c, const struct bench_opts *o, char *err,
              size_t errlen)
{
    Fedq__V1__DescribeRequest req = FEDQ__V1__DESCRIBE_REQUEST__INIT;
    struct fq_rpc_result r = {0};
    struct fq_sql_error serr;
    int rc;

    if ((rc = rpc_call(c->ch, "/fedq.v1.Agent/Describe", &req.base,
                       &fedq__v1__describe_response__descriptor, &r, err,
                       errlen)) < 0) {
        fq_arena_free(r.arena);
        return rc;
    }
    c->arena = r.arena; /* keeps the catalog the plans point into */
    const Fedq__V1__DescribeResponse *d =
        (const Fedq__V1__DescribeResponse *)r.resp;
    for (size_t i = 0; i < d->n_datasets; i++) {
        if (strcmp(d->datasets[i]->name, "enrollment") == 0)
            c->ds = d->datasets[i];
    }
    if (!c->ds) {
        snprintf(err, errlen, "the agent has no enrollment dataset");
        return FQ_ENOENT;
    }
    for (size_t i = 0; i < bench_n_queries && i < FQ_ARRAY_LEN(c->plans); i++) {
        struct fq_sql_query *sq;
        char text[GW_TEXT_MAX];
        if (!bench_selected(o, &bench_queries[i]))
            continue;
        if ((rc = bench_query_text(bench_queries[i].fedq, "x", text,
                                   sizeof(text))) < 0 ||
            (rc = fq_sql_parse(text, strlen(text), c->arena, &sq, &serr)) < 0 ||
            (rc = fq_plan_from_sql(sq, c->ds, c->arena, &c->plans[i], &serr)) <
                0) {
            snprintf(err, errlen, "query %s: %s", bench_queries[i].id,
                     serr.msg);
            return rc;
        }
    }
    return 0;
}

/* ---- the channel ------------------------------------------------------- */

/* Options of both commands: where, and who we are (a party of pki). */
static const char *const rpc_names[] = {
    "target", "pki", "party", "federation", "source", "identity", NULL};
enum { O_TARGET, O_PKI, O_PARTY, O_FED, O_SOURCE, O_IDENTITY, O_N };

static int
channel_open(const char **vals, struct fq_tls_material *tls,
             struct fq_rpc_channel **ch, char *err, size_t errlen)
{
    char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
    int rc;

    snprintf(ca, sizeof(ca), "%s/ca.crt", vals[O_PKI]);
    snprintf(cert, sizeof(cert), "%s/%s.crt", vals[O_PKI], vals[O_PARTY]);
    snprintf(key, sizeof(key), "%s/%s.key", vals[O_PKI], vals[O_PARTY]);
    struct fq_tls_files files = {.ca = ca, .cert = cert, .key = key};
    struct fq_rpc_channel_opts co = {
        .target = vals[O_TARGET],
        .tls = tls,
        .expect_identity = vals[O_IDENTITY],
        .max_message_bytes = GW_MESSAGE_MAX,
    };
    if ((rc = fq_tls_load(&files, tls, err, errlen)) < 0)
        return rc;
    return fq_rpc_channel_open(&co, ch, err, errlen);
}

/* Runs the selected queries through run, as engine. */
static int
rpc_command(int argc, char **argv, const char *engine, const char *party)
{
    const char *vals[O_N] = {NULL, NULL, party, "fedq.local", "pool", NULL};
    char err[1024] = "", ident[GW_IDENTITY_MAX];
    struct fq_tls_material tls = {0};
    struct gateway_ctx g = {0};
    struct agent_ctx a = {0};
    struct fq_rpc_channel *ch = NULL;
    bool agent = strcmp(engine, "agent") == 0;
    struct bench_opts o;
    int rc;

    if ((rc = bench_parse_opts(argc, argv, &o, rpc_names, vals)) != 0)
        return rc;
    if (!vals[O_TARGET] || !vals[O_PKI] || (agent && !vals[O_IDENTITY])) {
        fprintf(stderr, "fedq-bench %s: --target and --pki are required%s\n",
                engine, agent ? ", and --identity" : "");
        return 2;
    }
    if (!vals[O_IDENTITY]) {
        snprintf(ident, sizeof(ident), "spiffe://%s/gateway", vals[O_FED]);
        vals[O_IDENTITY] = ident;
    }
    fq_log_setup("fedq-bench", FQ_LOG_ERROR, FQ_LOG_TEXT);
    fq_rpc_global_init();
    if ((rc = channel_open(vals, &tls, &ch, err, sizeof(err))) == 0 && agent) {
        a.ch = ch;
        rc = agent_prepare(&a, &o, err, sizeof(err));
    }
    if (rc < 0) {
        fprintf(stderr, "fedq-bench %s: %s\n", engine, err);
        rc = 1;
        goto out;
    }
    g.ch = ch;
    g.source = vals[O_SOURCE];
    for (size_t i = 0; i < bench_n_queries && rc == 0; i++) {
        if (bench_selected(&o, &bench_queries[i]) &&
            bench_measure(&o, engine, 0, &bench_queries[i],
                          agent ? agent_run : gateway_run,
                          agent ? (void *)&a : (void *)&g) < 0)
            rc = 1;
    }
out:
    fq_arena_free(a.arena);
    fq_rpc_channel_free(ch);
    fq_tls_material_release(&tls);
    fq_rpc_global_shutdown();
    return rc;
}

int
bench_cmd_gateway(int argc, char **argv)
{
    return rpc_command(argc, argv, "gateway", "analyst-alice");
}

int
bench_cmd_agent(int argc, char **argv)
{
    return rpc_command(argc, argv, "agent", "gateway");
}
