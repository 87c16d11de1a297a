/*
 * The agent's extract engine, in process: what the agent does for one
 * query from the plan to the encoded partial answer. A run parses the
 * fedq SQL, plans it against the catalog entry (fq_plan_from_sql, which
 * also checks it), executes it on the mapped extract and packs the
 * ExecuteResponse. The gateway's half (parsing, planning) is included so
 * the time is an upper bound on the agent's share.
 *
 * Before timing it builds the extract from the SQLite source and reports
 * its size against the packed width of its columns.
 */
#include "bench.h"

#include "fq/arena.h"
#include "fq/error.h"
#include "fq/plan.h"
#include "fq/sql.h"
#include "agent.h"
#include "engine.h"
#include "extract.h"

#include "fedq/v1/agent.pb-c.h"

#define ENGINE_ARENA_MAX  (256u * 1024 * 1024)
#define ENGINE_MAX_GROUPS 100000
#define ENGINE_MAX_MEMORY (512u * 1024 * 1024)
#define FEDQ_TEXT_MAX     1024

struct engine_ctx {
    struct bench_dataset *b;
    struct ag_engine_limits lim;
    size_t packed_bytes; /* of the last answer */
};

void
bench_collect_partials(const Fedq__V1__ExecuteResponse *resp,
                       const struct bench_query *q, struct bench_result *res)
{
    char key[BENCH_KEY_MAX];
    for (size_t i = 0; i < resp->n_groups; i++) {
        const Fedq__V1__PartialGroup *g = resp->groups[i];
        size_t len = 0;
        key[0] = '\0';
        for (size_t k = 0; k < g->n_key; k++) {
            const Fedq__V1__Literal *l = g->key[k];
            bench_key_part(key, sizeof(key), &len, k,
                           l->value_case == FEDQ__V1__LITERAL__VALUE_TEXT_VALUE
                               ? l->text_value
                               : NULL,
                           l->value_case == FEDQ__V1__LITERAL__VALUE_INT_VALUE,
                           l->int_value);
        }
        bench_result_add(res, key, g->records,
                         q->has_sum && g->n_aggregates
                             ? g->aggregates[g->n_aggregates - 1]->int_sum
                             : 0);
    }
}

static int
engine_run(void *vctx, const struct bench_query *q, struct bench_result *res,
           char *err, size_t errlen)
{
    struct engine_ctx *c = vctx;
    struct fq_arena *a = fq_arena_new(ENGINE_ARENA_MAX);
    Fedq__V1__ExecuteResponse resp = FEDQ__V1__EXECUTE_RESPONSE__INIT;
    struct fq_sql_query *sq;
    struct fq_sql_error serr;
    Fedq__V1__Plan *plan;
    char text[FEDQ_TEXT_MAX];
    uint8_t *buf;
    int rc = FQ_ENOMEM;

    if (!a || (rc = bench_query_text(q->fedq, "dss", text, sizeof(text))) < 0)
        goto out;
    if ((rc = fq_sql_parse(text, strlen(text), a, &sq, &serr)) < 0 ||
        (rc = fq_plan_from_sql(sq, c->b->ds, a, &plan, &serr)) < 0) {
        snprintf(err, errlen, "%s", serr.msg);
        goto out;
    }
    if ((rc = ag_engine_execute(c->b->x, c->b->ds, plan, &c->lim, a, &resp, err,
                                errlen)) < 0)
        goto out;
    c->packed_bytes = fedq__v1__execute_response__get_packed_size(&resp);
    rc = FQ_ENOMEM;
    if (!(buf = fq_arena_alloc(a, c->packed_bytes ? c->packed_bytes : 1)))
        goto out;
    fedq__v1__execute_response__pack(&resp, buf);
    if (res)
        bench_collect_partials(&resp, q, res);
    rc = 0;
out:
    fq_arena_free(a);
    return rc;
}

/* Bytes per row a query reads: its columns, plus for the engine the
 * contributor run bitmap (1 bit a row: it counts distinct persons per
 * group; the plain C loop does not). */
static void
print_bytes_per_row(const struct bench_opts *o, const struct ag_extract *x,
                    const struct bench_query *q)
{
    double cols = 0, runs = x->contributor_runs ? 1.0 / 8 : 0;
    for (size_t i = 0; i < BENCH_MAX_COLS && q->cols[i]; i++) {
        const struct ag_xcol *c = bench_xcol(x, q->cols[i]);
        cols += c ? c->width : 0;
    }
    printf("info\tbytes_row\t%s\t%s\t%.3f\t%.3f\n", o->label, q->id,
           cols + runs, cols);
}

/* Mapped size against the packed width: every column's stored values at
 * its width (dictionaries, bitmaps and headers are the overhead). */
static void
print_memory(const struct bench_opts *o, const struct ag_extract *x)
{
    uint64_t packed = 0;
    for (size_t i = 0; i < x->n_cols; i++) {
        const struct ag_xcol *c = &x->cols[i];
        packed += (uint64_t)c->width * x->n_rows;
        printf("info\tcolumn\t%s\t%s\t%u\t%s\t%u\n", o->label, c->name,
               c->width,
               c->kind == AG_COL_DICT  ? "dict"
               : c->kind == AG_COL_INT ? "int"
                                       : "double",
               c->dict_size);
    }
    printf("info\trows\t%s\t%" PRIu64 "\n", o->label, x->n_rows);
    printf("info\textract_mapped\t%s\t%zu\n", o->label, x->map_len);
    printf("info\textract_packed\t%s\t%" PRIu64 "\n", o->label, packed);
}

/* Each query at every thread count, their runs interleaved. */
static int
engine_measure(const struct bench_opts *o, struct bench_dataset *b,
               const int *threads, int n_threads)
{
    struct engine_ctx c[8];
    struct bench_config cfg[8];
    int rc;

    for (int t = 0; t < n_threads; t++) {
        c[t] = (struct engine_ctx){
            .b = b,
            .lim = {.max_groups = ENGINE_MAX_GROUPS,
                    .threads = (size_t)threads[t],
                    .max_memory = ENGINE_MAX_MEMORY},
        };
        cfg[t] = (struct bench_config){.threads = threads[t], .ctx = &c[t]};
        snprintf(cfg[t].engine, sizeof(cfg[t].engine), "engine-%dt",
                 threads[t]);
    }
    for (size_t i = 0; i < bench_n_queries; i++) {
        const struct bench_query *q = &bench_queries[i];
        if (!bench_selected(o, q))
            continue;
        print_bytes_per_row(o, b->x, q);
        if ((rc = bench_measure_set(o, cfg, (size_t)n_threads, q, engine_run)) <
            0)
            return rc;
        printf("info\tpartial_bytes\t%s\t%s\t%zu\n", o->label, q->id,
               c[0].packed_bytes);
    }
    return 0;
}

int
bench_cmd_engine(int argc, char **argv)
{
    struct bench_extract_args a;
    struct bench_dataset b = {0};
    char err[1024];
    int rc;

    if ((rc = bench_extract_args(argc, argv, "engine", &a)) != 0)
        return rc;
    double t0 = bench_now_ms();
    if ((rc = bench_dataset_open(&b, a.config, a.dataset, err, sizeof(err))) <
            0 ||
        (rc = bench_dataset_build(&b, a.extract, err, sizeof(err))) < 0)
        goto fail;
    printf("info\textract_build_s\t%s\t%.2f\n", a.o.label,
           (bench_now_ms() - t0) / 1e3);
    t0 = bench_now_ms();
    if ((rc = bench_dataset_map(&b, a.extract, err, sizeof(err))) < 0)
        goto fail;
    printf("info\textract_open_ms\t%s\t%.3f\n", a.o.label, bench_now_ms() - t0);
    print_memory(&a.o, b.x);
    rc = engine_measure(&a.o, &b, a.threads, a.n_threads) < 0 ? 1 : 0;
    bench_dataset_close(&b);
    return rc;
fail:
    fprintf(stderr, "fedq-bench engine: %s\n", err);
    bench_dataset_close(&b);
    return 1;
}
