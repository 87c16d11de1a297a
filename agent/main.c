/*
 * fedq-agent: serves one agency's catalog and approved aggregate plans to
 * the federation's gateway over mutual TLS. Only the configured gateway
 * identity is served; raw records never leave. Each dataset runs on its
 * engine: the columnar extract (kept by the store, refreshed on schedule
 * or by the steward through the control socket), the SQLite file itself,
 * or pushdown SQL in the agency's PostgreSQL.
 *
 * Nothing runs that the agency's signed release policy does not cover
 * (guard.c; without a valid policy every Execute is refused). Where the
 * agreement says review: every_query, the query is held (review.c) until
 * one of the agency's stewards, connecting directly, approves or denies
 * it through the review methods.
 *
 *   fedq-agent --config FILE            serve
 *   fedq-agent refresh DATASET --config FILE
 *   fedq-agent status --config FILE     ask the running agent (control.c)
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/daemon.h"
#include "fq/error.h"
#include "fq/log.h"
#include "fq/rpc.h"
#include "fq/plan.h"
#include "agent.h"
#include "cellkey.h"
#include "control.h"
#include "engine.h"
#include "extract.h"
#include "guard.h"
#include "ledger.h"
#include "release_veto.h"
#include "pushdown.h"
#include "review.h"
#include "store.h"

#include <getopt.h>
#include <pthread.h>

#include "fedq/v1/agent.pb-c.h"

struct ag_state {
    const char *config_path;
    struct ag_config *cfg; /* as loaded at start; fixed keys come from it */
    struct fq_tls_material tls;
    pthread_mutex_t mu;         /* guards catalog and store_cat */
    struct ag_catalog *catalog; /* current; swapped by reload */
    struct ag_store *store;     /* NULL under --check */
    /* A reference to the catalog whose configuration the store reads: the
     * store borrows it, and a reload may free the old configuration only
     * once the store has moved to the new one. */
    struct ag_catalog *store_cat;
    struct ag_control *control;      /* NULL if no socket path is configured */
    struct ag_guard *guard;          /* the release policy in force */
    struct ag_review_store *reviews; /* held queries; NULL under --check */
    /* Loaded once at start: record keys must not change under running
     * extracts, so a reload keeps it (reload_warn_fixed says so). */
    struct ag_cell_secret secret;
    struct ag_ledger *ledger; /* released cells; NULL under --check */
};

static struct ag_catalog *
state_catalog(struct ag_state *st)
{
    pthread_mutex_lock(&st->mu);
    struct ag_catalog *cat = st->catalog;
    ag_catalog_ref(cat);
    pthread_mutex_unlock(&st->mu);
    return cat;
}

/* ---- handlers ------------------------------------------------------------ */

/* The catalog's prebuilt reply is shared by every call: a shallow copy
 * gets the policy in force, whose bytes live while the rules do (the
 * reply is packed before they are released). */
static void
handle_describe(struct fq_rpc_call *call, const ProtobufCMessage *req,
                void *app)
{
    struct ag_state *st = app;
    struct ag_catalog *cat = state_catalog(st);
    struct ag_rules *rules = ag_guard_rules(st->guard);
    Fedq__V1__DescribeResponse resp =
        *(const Fedq__V1__DescribeResponse *)ag_catalog_describe(cat);

    (void)req;
    if (rules->policy) {
        resp.policy.data = (uint8_t *)rules->policy->bytes;
        resp.policy.len = rules->policy->n_bytes;
        resp.policy_signature = rules->policy->signature;
    }
    fq_rpc_call_reply(call, &resp.base);
    ag_rules_unref(rules);
    ag_catalog_unref(cat);
}

/* The extract engine on the dataset's current extract. *stale if the
 * store already serves a reloaded extract for other columns than this
 * catalog's: the catalog is swapped right after, so the caller retries. */
static int
run_extract(struct ag_state *st, const struct ag_config *cfg,
            const Fedq__V1__Dataset *ds, const struct ag_source *src,
            const Fedq__V1__Plan *plan, struct fq_arena *arena,
            Fedq__V1__ExecuteResponse *resp, bool *stale, char *err,
            size_t errlen)
{
    struct ag_extract *x = ag_store_get(st->store, plan->dataset);
    struct ag_engine_limits lim = {
        .max_groups = (size_t)cfg->max_groups,
        .threads = (size_t)cfg->engine_threads,
        .max_memory = (size_t)cfg->max_query_memory,
        .secret = &st->secret,
    };
    int rc;

    if (!x) {
        snprintf(err, errlen, "dataset %s has no extract yet", plan->dataset);
        return FQ_EUNAVAIL;
    }
    if (x->schema_hash != ag_extract_schema_hash(src->conf)) {
        snprintf(err, errlen, "dataset %s is being reloaded, try again",
                 plan->dataset);
        *stale = true;
        rc = FQ_EUNAVAIL;
        goto out;
    }
    rc = ag_engine_execute(x, ds, plan, &lim, arena, resp, err, errlen);
    if (rc == 0 && !(resp->data_vintage = fq_arena_strdup(arena, x->vintage)))
        rc = FQ_ENOMEM;
out:
    ag_extract_unref(x);
    return rc;
}

/* Runs plan on its dataset's engine, with the limits of cat's
 * configuration (reloadable). Fills resp's groups and data_vintage. */
static int
execute_plan(struct ag_state *st, const struct ag_catalog *cat,
             const Fedq__V1__Plan *plan, struct fq_arena *arena,
             Fedq__V1__ExecuteResponse *resp, bool *stale, char *err,
             size_t errlen)
{
    const struct ag_config *cfg = ag_catalog_config(cat);
    const struct ag_source *src = NULL;
    const Fedq__V1__Dataset *ds;
    int rc;

    if ((rc = fq_plan_check_group_by_limit(plan, (size_t)cfg->max_group_by, err,
                                           errlen)) < 0)
        return rc;
    if (!(ds = ag_catalog_find(cat, plan->dataset, &src))) {
        snprintf(err, errlen, "no dataset '%s' at this agency", plan->dataset);
        return FQ_ENOENT;
    }
    switch (src->engine) {
    case AG_ENGINE_EXTRACT:
        if ((rc = fq_plan_check(plan, ds, err, errlen)) < 0)
            return rc;
        return run_extract(st, cfg, ds, src, plan, arena, resp, stale, err,
                           errlen);
    case AG_ENGINE_PUSHDOWN:
        if ((rc = fq_plan_check(plan, ds, err, errlen)) == 0)
            rc = ag_pushdown_execute(src->conf, ds, plan,
                                     (size_t)cfg->max_groups, &st->secret,
                                     arena, resp, err, errlen);
        break;
    default: /* ag_execute checks the plan itself */
        rc = ag_execute(cat, plan, (size_t)cfg->max_groups, arena, resp, err,
                        errlen);
        break;
    }
    if (rc == 0)
        resp->data_vintage = (char *)"live"; /* the source itself */
    return rc;
}

/* Runs the request's plan into resp (groups and data_vintage), within
 * max_result_bytes. */
static int
run_request(struct ag_state *st, const Fedq__V1__ExecuteRequest *req,
            struct fq_arena *arena, Fedq__V1__ExecuteResponse *resp, char *err,
            size_t errlen)
{
    struct ag_catalog *cat = NULL;
    bool stale = true;
    int rc = 0;

    /* One retry covers a reload's window between swapping the store and
     * swapping the catalog. */
    for (int attempt = 0; stale && attempt < 2; attempt++) {
        ag_catalog_unref(cat);
        cat = state_catalog(st);
        stale = false;
        rc = execute_plan(st, cat, req->plan, arena, resp, &stale, err, errlen);
    }
    const struct ag_config *cfg = ag_catalog_config(cat);
    if (rc == 0 && fedq__v1__execute_response__get_packed_size(resp) >
                       (size_t)cfg->max_result_bytes) {
        snprintf(err, errlen,
                 "the answer is larger than max_result_bytes (%" PRId64 ")",
                 cfg->max_result_bytes);
        rc = FQ_ETOOBIG;
    }
    ag_catalog_unref(cat);
    return rc;
}

static const char *
review_note(Fedq__V1__ReviewState r)
{
    switch (r) {
    case FEDQ__V1__REVIEW_STATE__REVIEW_STATE_PENDING:
        return " (pending review)";
    case FEDQ__V1__REVIEW_STATE__REVIEW_STATE_APPROVED:
        return " (approved by the steward)";
    default:
        return "";
    }
}

/* What the answer says of the policy that let it out; the strings are
 * the rules', alive until the reply is packed. */
static void
set_policy_fields(Fedq__V1__ExecuteResponse *resp, const struct ag_rules *r,
                  const struct fq_policy_agreement *a)
{
    resp->policy_hash = (char *)r->policy->hash;
    resp->policy_version = r->policy->version;
    resp->agreement = a->id;
    resp->min_cell_count = (uint32_t)a->release.min_cell_count;
}

/* ---- queries held for the steward -------------------------------------- */

/* A held query asked again: the digest must match, then the answer is
 * what the steward decided. */
static int
answer_held(const Fedq__V1__ExecuteRequest *req,
            const struct ag_review_entry *e,
            const uint8_t digest[AG_REVIEW_DIGEST_LEN],
            Fedq__V1__ExecuteResponse *resp, char *err, size_t errlen)
{
    const Fedq__V1__Review *r = e->review;

    if (memcmp(digest, e->digest, AG_REVIEW_DIGEST_LEN) != 0) {
        snprintf(err, errlen,
                 "query %s was held for review as another query (its plan, "
                 "analyst, agreement, purpose or pooled agencies differ)",
                 req->query_id);
        return FQ_EPRECOND;
    }
    switch (r->state) {
    case FEDQ__V1__REVIEW_STATE__REVIEW_STATE_PENDING:
        resp->review = FEDQ__V1__REVIEW_STATE__REVIEW_STATE_PENDING;
        return 0;
    case FEDQ__V1__REVIEW_STATE__REVIEW_STATE_APPROVED:
        resp->review = FEDQ__V1__REVIEW_STATE__REVIEW_STATE_APPROVED;
        resp->n_groups = e->answer->n_groups;
        resp->groups = e->answer->groups;
        resp->data_vintage = e->answer->data_vintage;
        /* The steward saw the answer under the threshold it was held
         * with; a policy raised since then hides more, never less. */
        if (e->min_cell_count > resp->min_cell_count)
            resp->min_cell_count = e->min_cell_count;
        return 0;
    default:
        snprintf(err, errlen, "the steward denied query %s: %s", req->query_id,
                 r->reason);
        return FQ_EPERM;
    }
}

/*
 * Execute under an agreement that says review: every_query (the policy
 * already passed, now). The first request runs the plan and holds it with
 * its answer; every later one with the same query id gets what the
 * steward decided.
 */
static int
execute_reviewed(struct ag_state *st, const Fedq__V1__ExecuteRequest *req,
                 const struct ag_rules *rules, struct fq_arena *arena,
                 Fedq__V1__ExecuteResponse *resp, char *err, size_t errlen)
{
    uint8_t digest[AG_REVIEW_DIGEST_LEN];
    struct ag_review_entry e;
    int rc;

    if (!ag_review_id_valid(req->query_id)) {
        snprintf(err, errlen,
                 "query id '%.64s' cannot be held for review: it must be 1 to "
                 "%d of a-z, 0-9 and '-'",
                 req->query_id, AG_REVIEW_ID_MAX);
        return FQ_EINVAL;
    }
    if ((rc = ag_review_digest(req, digest)) < 0) {
        snprintf(err, errlen, "cannot digest the query: %s", fq_strerror(rc));
        return rc;
    }
    rc = ag_review_get(st->reviews, req->query_id, arena, &e, err, errlen);
    if (rc == FQ_ENOENT) {
        if ((rc = run_request(st, req, arena, resp, err, errlen)) < 0)
            return rc;
        rc =
            ag_review_hold(st->reviews, req, digest, resp, resp->min_cell_count,
                           rules->policy->hash, time(NULL), err, errlen);
        /* Held: the answer waits for the steward. */
        resp->n_groups = 0;
        resp->groups = NULL;
        resp->data_vintage = (char *)"";
        if (rc == 0) {
            resp->review = FEDQ__V1__REVIEW_STATE__REVIEW_STATE_PENDING;
            fq_log_info("query %s held for the steward's review",
                        req->query_id);
            return 0;
        }
        if (rc != FQ_EAGAIN) /* not held by another call meanwhile */
            return rc;
        rc = ag_review_get(st->reviews, req->query_id, arena, &e, err, errlen);
    }
    if (rc < 0)
        return rc;
    return answer_held(req, &e, digest, resp, err, errlen);
}

static void
handle_execute(struct fq_rpc_call *call, const ProtobufCMessage *msg, void *app)
{
    const Fedq__V1__ExecuteRequest *req = (const void *)msg;
    struct ag_state *st = app;
    Fedq__V1__ExecuteResponse resp = FEDQ__V1__EXECUTE_RESPONSE__INIT;
    struct ag_rules *rules = ag_guard_rules(st->guard);
    const struct fq_policy_agreement *agreement = NULL;
    char err[1024];
    int rc;

    if (!req->plan) {
        fq_rpc_call_fail(call, FQ_EINVAL, "request carries no plan");
        goto out;
    }
    /* The policy decides first: nothing runs that it does not cover. Ids
     * and the reason only: never literals or values. */
    if ((rc = ag_rules_check(rules, req, time(NULL), &agreement, err,
                             sizeof(err))) < 0) {
        fq_log_warnx("query %.64s for %.200s under agreement %.64s "
                     "refused: %s",
                     req->query_id, req->analyst, req->agreement, err);
        fq_rpc_call_fail(call, rc, "%s", err);
        goto out;
    }
    resp.agency = st->cfg->agency;
    set_policy_fields(&resp, rules, agreement);
    if (agreement->review == FQ_POLICY_REVIEW_EVERY_QUERY)
        rc = execute_reviewed(st, req, rules, fq_rpc_call_arena(call), &resp,
                              err, sizeof(err));
    else
        rc = run_request(st, req, fq_rpc_call_arena(call), &resp, err,
                         sizeof(err));
    /* Ids and sizes only: never literals or values, which an engine's
     * message may quote; a review's refusal names ids and the steward's
     * reason. */
    if (rc == FQ_EPERM || rc == FQ_EPRECOND)
        fq_log_warnx("query %.64s for %.200s under agreement %.64s "
                     "refused: %s",
                     req->query_id, req->analyst, agreement->id, err);
    else
        fq_log_info("query %.64s for %.200s under agreement %.64s: %s, %zu "
                    "groups%s",
                    req->query_id, req->analyst, agreement->id,
                    rc < 0 ? "refused" : "answered", resp.n_groups,
                    review_note(resp.review));
    /* Policy and review refusals name the agency already. */
    if (rc == FQ_EPERM || rc == FQ_EPRECOND)
        fq_rpc_call_fail(call, rc, "%s", err);
    else if (rc < 0)
        fq_rpc_call_fail(call, rc, "agency %s: %s", st->cfg->agency, err);
    else
        fq_rpc_call_reply(call, &resp.base);
out:
    ag_rules_unref(rules);
}

/* ---- the differencing ledger (CheckCells, RecordCells) ----------------- */

#define CELLS_MAX 1000000 /* cells one request may name */

/* The statistic class a cell's differences are weighed in (ledger.h):
 * NULL for an aggregate the ledger does not record. */
static const char *
cell_class(const Fedq__V1__Aggregate *ag, struct fq_arena *a)
{
    switch (ag->kind) {
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM:
    /* distinct persons (or other values) of the records with one: the
     * difference of two is weighed in persons like the records' */
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT_DISTINCT:
        return "records";
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_AVG:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_VAR:
    case FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_STDDEV:
        return fq_arena_printf(a, "values:%s", ag->column);
    default:
        return NULL;
    }
}

/* The request's cells as member refs, their classes and groups (cells of
 * one group key share a group number). 0 or FQ_EINVAL / FQ_ENOMEM. */
struct cells_in {
    struct ag_member_ref *refs;
    const char **classes;
    size_t *groups;
    size_t n;
};

static int
cells_in(const Fedq__V1__Plan *plan, Fedq__V1__CellRef *const *cells, size_t n,
         struct fq_arena *a, struct cells_in *ret, char *err, size_t errlen)
{
    struct cells_in c = {fq_arena_alloc(a, (n + 1) * sizeof(*c.refs)),
                         fq_arena_alloc(a, (n + 1) * sizeof(*c.classes)),
                         fq_arena_alloc(a, (n + 1) * sizeof(*c.groups)), n};

    if (n > CELLS_MAX) {
        snprintf(err, errlen, "%zu cells: at most %d per request", n,
                 CELLS_MAX);
        return FQ_ETOOBIG;
    }
    if (!c.refs || !c.classes || !c.groups)
        return FQ_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const Fedq__V1__CellRef *r = cells[i];
        const Fedq__V1__Aggregate *ag = r->aggregate < plan->n_aggregates
                                            ? plan->aggregates[r->aggregate]
                                            : NULL;
        bool hist =
            ag &&
            ag->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM;
        if (r->n_key != plan->n_group_by || !ag ||
            !(c.classes[i] = cell_class(ag, a)) ||
            r->bin > (hist ? ag->n_edges : 0)) {
            snprintf(err, errlen,
                     "cell %zu is not a cell of the plan the "
                     "ledger records",
                     i);
            return FQ_EINVAL;
        }
        c.refs[i] = (struct ag_member_ref){r->key, r->aggregate, r->bin};
        c.groups[i] = i;
        for (size_t j = 0; j < i; j++) { /* the first cell of its key */
            bool same = true;
            for (size_t k = 0; same && k < r->n_key; k++)
                same = fq_literal_cmp(r->key[k], cells[j]->key[k]) == 0;
            if (same) {
                c.groups[i] = c.groups[j];
                break;
            }
        }
    }
    *ret = c;
    return 0;
}

/* The cells' members on the dataset's engine, from the data the query's
 * answer came from: refused if the agency's data moved on since. */
static int
cell_members(struct ag_state *st, const struct ag_catalog *cat,
             const Fedq__V1__Plan *plan, const char *vintage,
             const struct cells_in *c, struct fq_arena *a,
             struct ag_cellset *out, char *err, size_t errlen)
{
    const struct ag_config *cfg = ag_catalog_config(cat);
    const struct ag_source *src = NULL;
    const Fedq__V1__Dataset *ds = ag_catalog_find(cat, plan->dataset, &src);
    const char *now = "live";
    struct ag_extract *x = NULL;
    int rc;

    if (!ds) {
        snprintf(err, errlen, "no dataset '%s' at this agency", plan->dataset);
        return FQ_ENOENT;
    }
    if ((rc = fq_plan_check(plan, ds, err, errlen)) < 0)
        return rc;
    if (src->engine == AG_ENGINE_EXTRACT) {
        if (!(x = ag_store_get(st->store, plan->dataset))) {
            snprintf(err, errlen, "dataset %s has no extract yet",
                     plan->dataset);
            return FQ_EUNAVAIL;
        }
        now = x->vintage;
    }
    if (strcmp(now, vintage) != 0) {
        snprintf(err, errlen,
                 "dataset %s was refreshed since the query's answer (data of "
                 "%.40s, now %.40s): run the query again",
                 plan->dataset, vintage, now);
        rc = FQ_EPRECOND;
    } else if (x) {
        struct ag_engine_limits lim = {
            .max_groups = (size_t)cfg->max_groups,
            .threads = 1,
            .max_memory = (size_t)cfg->max_query_memory,
            .secret = &st->secret,
        };
        rc = ag_engine_members(x, ds, plan, &lim, c->refs, c->n, out, err,
                               errlen);
    } else if (src->engine == AG_ENGINE_PUSHDOWN) {
        rc = ag_pushdown_members(src->conf, ds, plan, &st->secret, c->refs,
                                 c->n, a, out, err, errlen);
    } else {
        rc = ag_execute_members(cat, plan, c->refs, c->n, a, out, err, errlen);
    }
    ag_extract_unref(x);
    return rc;
}

static void
members_free(struct ag_cellset *m, size_t n)
{
    for (size_t i = 0; m && i < n; i++)
        free(m[i].m);
}

/* This agency's vintage among the request's; NULL if none. */
static const char *
own_vintage(const struct ag_state *st, Fedq__V1__AgencyVintage *const *v,
            size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i]->agency, st->cfg->agency) == 0)
            return v[i]->vintage;
    }
    return NULL;
}

/* The policy covers the query, and its cells' members. */
static int
ledger_prepare(struct ag_state *st, const Fedq__V1__ExecuteRequest *q,
               const char *vintage, Fedq__V1__CellRef *const *cells, size_t n,
               struct fq_arena *a, struct cells_in *c, struct ag_cellset **ret,
               struct ag_veto_rules *veto, char *err, size_t errlen)
{
    struct ag_rules *rules = ag_guard_rules(st->guard);
    struct ag_catalog *cat = state_catalog(st);
    const struct fq_policy_agreement *agreement = NULL;
    struct ag_cellset *m = NULL;
    int rc = FQ_EINVAL;

    if (!q || !q->plan || !vintage) {
        snprintf(err, errlen,
                 "request carries no query or no data vintage "
                 "of this agency");
        goto out;
    }
    if ((rc = ag_rules_check(rules, q, time(NULL), &agreement, err, errlen)) <
            0 ||
        (rc = cells_in(q->plan, cells, n, a, c, err, errlen)) < 0)
        goto out;
    if (veto) { /* copied: the agreement goes with rules below */
        veto->agency = st->cfg->agency;
        veto->k = agreement->release.min_cell_count;
        veto->suppress_zero =
            agreement->release.zero_cells == FQ_POLICY_ZERO_SUPPRESS;
    }
    rc = FQ_ENOMEM;
    if (!(m = calloc(n + 1, sizeof(*m))))
        goto out;
    rc = cell_members(st, cat, q->plan, vintage, c, a, m, err, errlen);
out:
    if (rc < 0) {
        free(m);
        m = NULL;
    }
    *ret = m;
    ag_catalog_unref(cat);
    ag_rules_unref(rules);
    return rc;
}

static int
check_reply(struct ag_state *st, const Fedq__V1__CheckCellsRequest *req,
            const struct cells_in *c, const struct ag_cellset *m,
            struct fq_arena *a, Fedq__V1__CheckCellsResponse *resp, char *err,
            size_t errlen)
{
    struct ag_ledger_scope scope = {
        req->query->plan->dataset,
        own_vintage(st, req->vintages, req->n_vintages)};
    struct ag_ledger_pair *pairs;
    size_t n_pairs;
    int rc = ag_ledger_check(st->ledger, &scope, c->classes, c->groups, m, c->n,
                             req->min_cell_count ? req->min_cell_count : 11,
                             req->query->n_pooled_with <= 1, a, &pairs,
                             &n_pairs, err, errlen);

    if (rc < 0)
        return rc;
    resp->agency = st->cfg->agency;
    resp->contributors = fq_arena_alloc(a, (c->n + 1) * sizeof(int64_t));
    resp->pairs = fq_arena_alloc(a, (n_pairs + 1) * sizeof(void *));
    if (!resp->contributors || !resp->pairs)
        return FQ_ENOMEM;
    for (size_t i = 0; i < c->n; i++)
        resp->contributors[resp->n_contributors++] = m[i].persons;
    for (size_t i = 0; i < n_pairs; i++) {
        const struct ag_ledger_pair *p = &pairs[i];
        Fedq__V1__CellPair *x = fq_arena_alloc(a, sizeof(*x));
        if (!x)
            return FQ_ENOMEM;
        fedq__v1__cell_pair__init(x);
        if (!(x->released_parts =
                  fq_arena_alloc(a, (p->n_parts + 1) * sizeof(void *))))
            return FQ_ENOMEM;
        x->cell = (uint32_t)p->cell;
        x->released = (char *)(p->released ? p->released : "");
        x->other = (uint32_t)p->other;
        x->only_here = p->only_here;
        x->only_there = p->only_there;
        x->released_value.data = (uint8_t *)p->value;
        x->released_value.len = p->value_len;
        for (size_t j = 0; j < p->n_parts; j++) {
            Fedq__V1__CellPart *cp = fq_arena_alloc(a, sizeof(*cp));
            if (!cp)
                return FQ_ENOMEM;
            fedq__v1__cell_part__init(cp);
            cp->agency = (char *)p->parts[j].agency;
            cp->contributors = p->parts[j].persons;
            cp->data_vintage = (char *)p->parts[j].vintage;
            x->released_parts[x->n_released_parts++] = cp;
        }
        resp->pairs[resp->n_pairs++] = x;
    }
    return 0;
}

static void
handle_check_cells(struct fq_rpc_call *call, const ProtobufCMessage *msg,
                   void *app)
{
    const Fedq__V1__CheckCellsRequest *req = (const void *)msg;
    struct ag_state *st = app;
    Fedq__V1__CheckCellsResponse resp = FEDQ__V1__CHECK_CELLS_RESPONSE__INIT;
    struct fq_arena *a = fq_rpc_call_arena(call);
    struct ag_cellset *m = NULL;
    struct cells_in c = {0};
    char err[1024];
    int rc = ledger_prepare(
        st, req->query, own_vintage(st, req->vintages, req->n_vintages),
        req->cells, req->n_cells, a, &c, &m, NULL, err, sizeof(err));

    if (rc == 0)
        rc = check_reply(st, req, &c, m, a, &resp, err, sizeof(err));
    members_free(m, c.n);
    free(m);
    fq_log_info("query %.64s: ledger check of %zu cells: %s, %zu pairs",
                req->query ? req->query->query_id : "?", req->n_cells,
                rc < 0 ? "refused" : "done", resp.n_pairs);
    if (rc < 0)
        fq_rpc_call_fail(call, rc, "agency %s: %s", st->cfg->agency, err);
    else
        fq_rpc_call_reply(call, &resp.base);
}

/* The request's published values as the ledger keeps them (opaque). */
static int
record_values(const Fedq__V1__RecordCellsRequest *req, struct fq_arena *a,
              struct ag_ledger_value **ret, char *err, size_t errlen)
{
    struct ag_ledger_value *v;

    *ret = NULL;
    if (req->n_values == 0)
        return 0;
    if (req->n_values != req->n_cells) {
        snprintf(err, errlen, "%zu cells with %zu values", req->n_cells,
                 req->n_values);
        return FQ_EINVAL;
    }
    if (!(v = fq_arena_alloc(a, (req->n_values + 1) * sizeof(*v))))
        return FQ_ENOMEM;
    for (size_t i = 0; i < req->n_values; i++) {
        if (req->values[i].len > AG_LEDGER_VALUE_MAX) {
            snprintf(err, errlen, "cell %zu: a value of %zu bytes (at most %d)",
                     i, req->values[i].len, AG_LEDGER_VALUE_MAX);
            return FQ_EINVAL;
        }
        v[i] =
            (struct ag_ledger_value){req->values[i].data, req->values[i].len};
    }
    *ret = v;
    return 0;
}

/* The request's ids and parts as the ledger records them. */
static int
record_parts(const Fedq__V1__RecordCellsRequest *req, struct fq_arena *a,
             const struct ag_ledger_part ***ret_parts, size_t **ret_n,
             char *err, size_t errlen)
{
    const struct ag_ledger_part **parts =
        fq_arena_alloc(a, (req->n_cells + 1) * sizeof(*parts));
    size_t *np = fq_arena_alloc(a, (req->n_cells + 1) * sizeof(*np)), at = 0;

    if (!parts || !np)
        return FQ_ENOMEM;
    if (req->n_ids != req->n_cells || req->n_parts_per_cell != req->n_cells) {
        snprintf(err, errlen, "%zu cells with %zu ids and %zu part counts",
                 req->n_cells, req->n_ids, req->n_parts_per_cell);
        return FQ_EINVAL;
    }
    for (size_t i = 0; i < req->n_cells; i++) {
        size_t k = req->parts_per_cell[i];
        struct ag_ledger_part *p = fq_arena_alloc(a, (k + 1) * sizeof(*p));
        size_t idlen = strlen(req->ids[i]);
        if (!p)
            return FQ_ENOMEM;
        if (idlen == 0 || idlen >= AG_LEDGER_REF || k > AG_LEDGER_PARTS ||
            at + k > req->n_parts) {
            snprintf(err, errlen, "cell %zu: a bad id or parts", i);
            return FQ_EINVAL;
        }
        for (size_t j = 0; j < k; j++, at++) {
            const Fedq__V1__CellPart *cp = req->parts[at];
            if (strlen(cp->agency) >= AG_LEDGER_AGENCY ||
                strlen(cp->data_vintage) >= AG_LEDGER_VINTAGE ||
                strpbrk(cp->agency, " \n") ||
                strpbrk(cp->data_vintage, " \n")) {
                snprintf(err, errlen, "cell %zu: a bad part", i);
                return FQ_EINVAL;
            }
            snprintf(p[j].agency, sizeof(p[j].agency), "%s", cp->agency);
            snprintf(p[j].vintage, sizeof(p[j].vintage), "%s",
                     cp->data_vintage);
            p[j].persons = cp->contributors;
        }
        parts[i] = p;
        np[i] = k;
    }
    *ret_parts = parts;
    *ret_n = np;
    return 0;
}

/* The agency's own veto (release_veto.h) on the cells being recorded. */
static int
veto_release(const struct ag_veto_rules *r,
             const struct ag_ledger_part *const *parts, const size_t *n_parts,
             const struct ag_cellset *m, size_t n, struct fq_arena *a,
             char *err, size_t errlen)
{
    struct ag_veto_cell *cells = fq_arena_alloc(a, (n + 1) * sizeof(*cells));

    if (!cells)
        return FQ_ENOMEM;
    for (size_t i = 0; i < n; i++)
        cells[i] = (struct ag_veto_cell){parts[i], n_parts[i], m[i].persons};
    return ag_release_veto(r, cells, n, err, errlen);
}

static void
handle_record_cells(struct fq_rpc_call *call, const ProtobufCMessage *msg,
                    void *app)
{
    const Fedq__V1__RecordCellsRequest *req = (const void *)msg;
    struct ag_state *st = app;
    Fedq__V1__RecordCellsResponse resp = FEDQ__V1__RECORD_CELLS_RESPONSE__INIT;
    struct fq_arena *a = fq_rpc_call_arena(call);
    const struct ag_ledger_part **parts = NULL;
    size_t *n_parts = NULL;
    struct ag_cellset *m = NULL;
    struct cells_in c = {0};
    char err[1024];
    struct ag_ledger_value *values = NULL;
    struct ag_veto_rules veto = {0};
    int rc = record_parts(req, a, &parts, &n_parts, err, sizeof(err));
    const char *vintage = own_vintage(st, req->vintages, req->n_vintages);

    if (rc == 0)
        rc = record_values(req, a, &values, err, sizeof(err));
    if (rc == 0)
        rc = ledger_prepare(st, req->query, vintage, req->cells, req->n_cells,
                            a, &c, &m, &veto, err, sizeof(err));
    if (rc == 0 && (rc = veto_release(&veto, parts, n_parts, m, c.n, a, err,
                                      sizeof(err))) < 0) {
        /* the counts stay here: the analyst sees the query refused */
        fq_log_warnx("query %.64s: this agency's policy vetoes the release: "
                     "%s",
                     req->query->query_id, err);
        snprintf(err, sizeof(err), "%s (the agency's log says which)",
                 rc == FQ_EPERM
                     ? "this agency's release policy vetoes a cell of the "
                       "release"
                     : "the release states parts of cells this agency's "
                       "records contradict");
    }
    if (rc == 0) {
        struct ag_ledger_scope scope = {req->query->plan->dataset, vintage};
        rc = ag_ledger_record(st->ledger, &scope, c.classes, m,
                              (const char *const *)req->ids, parts, n_parts,
                              values, c.n, err, sizeof(err));
    }
    members_free(m, c.n);
    free(m);
    fq_log_info("query %.64s: ledger records %zu cells: %s",
                req->query ? req->query->query_id : "?", req->n_cells,
                rc < 0 ? "refused" : "done");
    resp.recorded = rc == 0 ? (uint32_t)req->n_cells : 0;
    if (rc < 0)
        fq_rpc_call_fail(call, rc, "agency %s: %s", st->cfg->agency, err);
    else
        fq_rpc_call_reply(call, &resp.base);
}

/* ---- the steward's review methods --------------------------------------- */

static void
handle_list_reviews(struct fq_rpc_call *call, const ProtobufCMessage *msg,
                    void *app)
{
    const Fedq__V1__ListReviewsRequest *req = (const void *)msg;
    struct ag_state *st = app;
    Fedq__V1__ListReviewsResponse resp = FEDQ__V1__LIST_REVIEWS_RESPONSE__INIT;
    char err[512];
    int rc;

    if ((rc = ag_review_list(st->reviews, req->state, req->limit,
                             fq_rpc_call_arena(call), &resp.reviews,
                             &resp.n_reviews, err, sizeof(err))) < 0)
        fq_rpc_call_fail(call, rc, "%s", err);
    else
        fq_rpc_call_reply(call, &resp.base);
}

static int
check_id(const char *id, char *err, size_t errlen)
{
    if (ag_review_id_valid(id))
        return 0;
    snprintf(err, errlen, "query id '%.64s' is not 1 to %d of a-z, 0-9 and '-'",
             id ? id : "", AG_REVIEW_ID_MAX);
    return FQ_EINVAL;
}

/* The held query and what this agency would release of it. */
static void
handle_get_review(struct fq_rpc_call *call, const ProtobufCMessage *msg,
                  void *app)
{
    const Fedq__V1__GetReviewRequest *req = (const void *)msg;
    struct ag_state *st = app;
    struct fq_arena *arena = fq_rpc_call_arena(call);
    Fedq__V1__GetReviewResponse resp = FEDQ__V1__GET_REVIEW_RESPONSE__INIT;
    const Fedq__V1__Dataset *ds = NULL;
    const struct ag_source *src;
    struct ag_catalog *cat = NULL;
    struct ag_review_entry e;
    char err[512];
    int rc;

    if ((rc = check_id(req->query_id, err, sizeof(err))) < 0 ||
        (rc = ag_review_get(st->reviews, req->query_id, arena, &e, err,
                            sizeof(err))) < 0)
        goto out;
    resp.review = e.review;
    /* The catalog types the cells; a dataset gone since shows less. */
    cat = state_catalog(st);
    if (e.review->plan)
        ds = ag_catalog_find(cat, e.review->plan->dataset, &src);
    if ((rc = ag_review_preview(e.review->plan, e.answer, ds, e.min_cell_count,
                                arena, &resp)) < 0)
        snprintf(err, sizeof(err), "out of memory rendering the preview");
out:
    if (rc < 0)
        fq_rpc_call_fail(call, rc, "%s", err);
    else
        fq_rpc_call_reply(call, &resp.base);
    ag_catalog_unref(cat);
}

static void
handle_decide_review(struct fq_rpc_call *call, const ProtobufCMessage *msg,
                     void *app)
{
    const Fedq__V1__DecideReviewRequest *req = (const void *)msg;
    struct ag_state *st = app;
    const char *who = fq_rpc_call_peer(call)->uri;
    Fedq__V1__Review *review = NULL;
    char err[512];
    int rc;

    if ((rc = check_id(req->query_id, err, sizeof(err))) < 0)
        goto out;
    if (!ag_review_reason_valid(req->reason, !req->approve)) {
        snprintf(err, sizeof(err),
                 "%s: a reason is 1 to %d bytes without control characters",
                 req->approve ? "the approval's note is not fit to record"
                              : "a denial needs a reason",
                 AG_REVIEW_REASON_MAX);
        rc = FQ_EINVAL;
        goto out;
    }
    rc = ag_review_decide(st->reviews, req->query_id, req->approve, req->reason,
                          who, time(NULL), fq_rpc_call_arena(call), &review,
                          err, sizeof(err));
    if (rc == 0)
        fq_log_info("review %s %s by %s", req->query_id,
                    req->approve ? "approved" : "denied", who);
out:
    if (rc < 0)
        fq_rpc_call_fail(call, rc, "%s", err);
    else
        fq_rpc_call_reply(call, &review->base);
}

/*
 * Describe and Execute serve only this agent's gateway (the role check
 * lets any gateway through); the review methods only stewards of this
 * agency, who connect directly: no other party can release its data.
 */
static int
authorize(void *app, const struct fq_rpc_method *m,
          const struct fq_identity *peer, char *why, size_t whylen)
{
    struct ag_state *st = app;

    if (m->roles == FQ_ROLE_STEWARD) {
        if (peer->role == FQ_ROLE_STEWARD &&
            strcmp(peer->agency, st->cfg->agency) == 0)
            return 0;
        snprintf(why, whylen, "%s is not a steward of agency %s", peer->uri,
                 st->cfg->agency);
        return FQ_EPERM;
    }
    if (strcmp(peer->uri, st->cfg->gateway_identity) == 0)
        return 0;
    snprintf(why, whylen, "%s is not this agent's gateway", peer->uri);
    return FQ_EPERM;
}

static const struct fq_rpc_method agent_methods[] = {
    {"/fedq.v1.Agent/Describe", &fedq__v1__describe_request__descriptor,
     FQ_ROLE_GATEWAY, handle_describe},
    {"/fedq.v1.Agent/Execute", &fedq__v1__execute_request__descriptor,
     FQ_ROLE_GATEWAY, handle_execute},
    {"/fedq.v1.Agent/CheckCells", &fedq__v1__check_cells_request__descriptor,
     FQ_ROLE_GATEWAY, handle_check_cells},
    {"/fedq.v1.Agent/RecordCells", &fedq__v1__record_cells_request__descriptor,
     FQ_ROLE_GATEWAY, handle_record_cells},
    {"/fedq.v1.Agent/ListReviews", &fedq__v1__list_reviews_request__descriptor,
     FQ_ROLE_STEWARD, handle_list_reviews},
    {"/fedq.v1.Agent/GetReview", &fedq__v1__get_review_request__descriptor,
     FQ_ROLE_STEWARD, handle_get_review},
    {"/fedq.v1.Agent/DecideReview",
     &fedq__v1__decide_review_request__descriptor, FQ_ROLE_STEWARD,
     handle_decide_review},
};

/* ---- startup and reload -------------------------------------------------- */

/* --check: every CSV and PostgreSQL source opens (the catalog checked the
 * SQLite ones); nothing is read past the header, nothing is built. */
static int
check_sources(const struct ag_config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->n_datasets; i++) {
        const struct ag_dataset_conf *d = &cfg->datasets[i];
        struct ag_row_source src;
        char msg[768];
        int rc = 0;

        if (d->source.csv)
            rc = ag_source_csv_open(d, &src, msg, sizeof(msg));
        else if (d->source.postgres)
            rc = ag_source_pg_open(d, &src, msg, sizeof(msg));
        else
            continue;
        if (rc < 0) {
            snprintf(err, errlen, "%s:%d: %s", cfg->doc.path, d->source.line,
                     msg);
            return rc;
        }
        src.close(src.self);
    }
    return 0;
}

/* The held queries, kept where review_dir says. */
static int
reviews_open(struct ag_state *st, char *err, size_t errlen)
{
    char *dir = ag_review_dir(st->cfg);
    int rc;

    if (!dir) {
        snprintf(err, errlen, "out of memory opening the review store");
        return FQ_ENOMEM;
    }
    rc = ag_review_open(dir, st->cfg->agency, AG_REVIEW_MAX_PENDING,
                        &st->reviews, err, errlen);
    free(dir);
    return rc;
}

/* Fail closed: cells cannot be perturbed consistently without the
 * agency's secret (required by the configuration), so the agent does not
 * start without it. */
static int
secret_load(struct ag_state *st, char *err, size_t errlen)
{
    char msg[512];
    int rc;

    rc = ag_cell_secret_load(st->cfg->cell_key_secret, &st->secret, msg,
                             sizeof(msg));
    if (rc < 0)
        snprintf(err, errlen, "%s:%d: cell_key_secret: %s", st->cfg->doc.path,
                 st->cfg->line, msg);
    return rc;
}

/* The ledger, beside the held queries. */
static int
ledger_open(struct ag_state *st, char *err, size_t errlen)
{
    char *dir = ag_review_dir(st->cfg);
    int rc;

    if (!dir) {
        snprintf(err, errlen, "out of memory opening the ledger");
        return FQ_ENOMEM;
    }
    rc = ag_ledger_open(dir, st->cfg->agency, (size_t)st->cfg->ledger_memory,
                        &st->ledger, err, errlen);
    free(dir);
    return rc;
}

static int
state_open(struct ag_state *st, const char *path, bool with_store, char *err,
           size_t errlen)
{
    int rc;

    memset(st, 0, sizeof(*st));
    st->config_path = path;
    pthread_mutex_init(&st->mu, NULL);
    if ((rc = ag_config_load(path, &st->cfg, err, errlen)) < 0 ||
        (rc = fq_cfg_tls_load(st->cfg->doc.path, &st->cfg->server.tls,
                              FQ_ROLE_AGENT, st->cfg->federation,
                              st->cfg->agency, &st->tls, err, errlen)) < 0 ||
        (rc = secret_load(st, err, errlen)) < 0 ||
        (rc = ag_catalog_build(st->cfg, &st->catalog, err, errlen)) < 0)
        return rc;
    ag_catalog_set_secret(st->catalog, &st->secret);
    if ((rc = ag_guard_open(st->cfg, &st->guard)) < 0) {
        snprintf(err, errlen, "out of memory loading the policy");
        return rc;
    }
    /* --check validates the configuration, sources and policy; it builds
     * nothing. The agent itself starts without a policy (and refuses every
     * query), but a check must not pass. */
    if (!with_store) {
        struct ag_rules *rules = ag_guard_rules(st->guard);
        if ((rc = check_sources(st->cfg, err, errlen)) == 0)
            rc = ag_rules_ready(rules, err, errlen);
        ag_rules_unref(rules);
        return rc;
    }
    if ((rc = ag_store_open(st->cfg, &st->store, err, errlen)) < 0 ||
        (rc = reviews_open(st, err, errlen)) < 0 ||
        (rc = ledger_open(st, err, errlen)) < 0)
        return rc;
    st->store_cat = st->catalog;
    ag_catalog_ref(st->store_cat);
    return 0;
}

static void
state_close(struct ag_state *st)
{
    ag_control_stop(st->control);
    ag_store_close(st->store);
    ag_catalog_unref(st->store_cat);
    ag_catalog_unref(st->catalog);
    ag_guard_close(st->guard);
    ag_review_close(st->reviews);
    ag_ledger_close(st->ledger);
    fq_tls_material_release(&st->tls);
    ag_config_free(st->cfg);
    ag_cell_secret_release(&st->secret);
    pthread_mutex_destroy(&st->mu);
}

/* Keys that only a restart can change; a reload keeps the running value. */
static void
reload_warn_fixed(const struct ag_config *old, const struct ag_config *new)
{
    const char *a = old->control_socket, *b = new->control_socket;
    const char *ra = old->review_dir, *rb = new->review_dir;

    if (strcmp(old->agency, new->agency) != 0 ||
        strcmp(old->federation, new->federation) != 0 ||
        strcmp(old->gateway_identity, new->gateway_identity) != 0 ||
        fq_cfg_server_needs_restart(&old->server, &new->server) ||
        !(a == b || (a && b && strcmp(a, b) == 0)) ||
        !(ra == rb || (ra && rb && strcmp(ra, rb) == 0)) ||
        !(old->cell_key_secret &&
          new->cell_key_secret &&strcmp(old->cell_key_secret,
                                        new->cell_key_secret) == 0))
        fq_log_warnx("agency, federation, gateway_identity, control_socket, "
                     "review_dir, cell_key_secret or server keys (listen, "
                     "tls, threads, limits) changed: restart to apply them; "
                     "keeping the running values");
}

/*
 * SIGHUP: a new configuration and catalog, and the store moved to them
 * (rebuilding the extracts whose columns or source changed), or nothing
 * changes. The new configuration belongs to the new catalog; the store
 * reads it through st->store_cat's reference. The release policy is
 * reloaded on its own once the configuration parses (guard.c).
 */
static void
reload(void *app)
{
    struct ag_state *st = app;
    struct ag_config *cfg = NULL;
    struct ag_catalog *cat = NULL, *old, *old_store_cat;
    char err[1024];

    if (ag_config_load(st->config_path, &cfg, err, sizeof(err)) < 0) {
        fq_log_errx("reload failed, keeping the running catalog and "
                    "policy: %s",
                    err);
        return;
    }
    /* The policy on its own: a dataset that fails to load below must not
     * keep a changed policy out of force. */
    ag_guard_reload(st->guard, cfg);
    if (ag_catalog_build(cfg, &cat, err, sizeof(err)) < 0) {
        fq_log_errx("reload failed, keeping the running catalog: %s", err);
        ag_config_free(cfg);
        return;
    }
    ag_catalog_adopt_config(cat, cfg);
    ag_catalog_set_secret(cat, &st->secret);
    if (ag_store_reconfigure(st->store, cfg, err, sizeof(err)) < 0) {
        fq_log_errx("reload failed, keeping the running catalog and "
                    "extracts: %s",
                    err);
        ag_catalog_unref(cat);
        return;
    }
    reload_warn_fixed(st->cfg, cfg);
    ag_catalog_ref(cat);
    pthread_mutex_lock(&st->mu);
    old = st->catalog;
    old_store_cat = st->store_cat;
    st->catalog = cat;
    st->store_cat = cat;
    pthread_mutex_unlock(&st->mu);
    ag_catalog_unref(old);
    ag_catalog_unref(old_store_cat);
    fq_log_info("reloaded: %zu datasets", ag_catalog_datasets(cat));
}

static struct ag_catalog *
control_catalog(void *app)
{
    return state_catalog(app);
}

/* The steward's socket; without a path for it the agent runs without. */
static int
control_open(struct ag_state *st)
{
    struct ag_control_ops ops = {
        .store = st->store, .catalog = control_catalog, .app = st};
    char path[256], err[1024];
    int rc;

    if ((rc = ag_control_path(st->cfg, path, sizeof(path), err, sizeof(err))) ==
        FQ_ENOENT) {
        fq_log_warnx("%s; no control socket: refresh on schedule only", err);
        return 0;
    }
    if (rc == 0)
        rc = ag_control_start(path, &ops, &st->control, err, sizeof(err));
    if (rc < 0)
        fq_log_errx("%s", err);
    else
        fq_log_info("control socket %s", path);
    return rc;
}

static int
serve(struct ag_state *st)
{
    const struct ag_config *cfg = st->cfg;
    char name[64];
    struct fq_rpc_server_opts o = {
        .methods = agent_methods,
        .n_methods = FQ_ARRAY_LEN(agent_methods),
        .authorize = authorize,
        .app = st,
    };
    fq_cfg_server_rpc_opts(&cfg->server, &st->tls, cfg->federation, &o);
    snprintf(name, sizeof(name), "agent-%s", cfg->agency);
    struct fq_daemon_spec spec = {
        .name = name,
        .run_dir = cfg->server.run_dir,
        .rpc = &o,
        .reload = reload,
        .app = st,
    };
    fq_log_info("agency %s: %zu datasets, serving %s", cfg->agency,
                ag_catalog_datasets(st->catalog), cfg->gateway_identity);
    ag_guard_log(st->guard);
    if (control_open(st) < 0)
        return 1;
    int rc = fq_daemon_serve(&spec);
    ag_control_stop(st->control); /* before the store it calls closes */
    st->control = NULL;
    return rc;
}

/* ---- the steward's commands ---------------------------------------------- */

static void
client_usage(FILE *out)
{
    fprintf(out, "usage: fedq-agent refresh DATASET --config FILE\n"
                 "       fedq-agent status --config FILE\n"
                 "Asks the agent running with FILE, through its control "
                 "socket, to rebuild\n"
                 "DATASET's extract from its source (prints \"ok VINTAGE\"), "
                 "or to list its\n"
                 "datasets with rows, bytes and vintage. Exit 0 on \"ok\", "
                 "1 otherwise.\n");
}

/* "refresh DATASET\n" or "status\n" from argv (argv[0] is the command). */
static int
client_line(int argc, char **argv, const char **ret_config, char *line,
            size_t len)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool refresh = strcmp(argv[0], "refresh") == 0;
    const char *config = NULL;
    int c;

    optind = 0;
    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        if (c == 'h') {
            client_usage(stdout);
            exit(0);
        }
        if (c != 'c')
            return FQ_EINVAL;
        config = optarg;
    }
    if (!config || optind + (refresh ? 1 : 0) != argc)
        return FQ_EINVAL;
    int n = refresh ? snprintf(line, len, "refresh %s\n", argv[optind])
                    : snprintf(line, len, "status\n");
    if (n < 0 || (size_t)n >= len)
        return FQ_EINVAL;
    *ret_config = config;
    return 0;
}

static int
client_main(int argc, char **argv)
{
    struct ag_config *cfg = NULL;
    const char *config = NULL;
    char line[AG_CONTROL_LINE_MAX + 1], path[256], err[1024];
    char *answer = malloc(AG_CONTROL_ANSWER_MAX + 1);
    int rc = 1;

    if (!answer) {
        fprintf(stderr, "fedq-agent: out of memory\n");
        return 1;
    }
    if (client_line(argc, argv, &config, line, sizeof(line)) < 0) {
        client_usage(stderr);
        rc = 2;
        goto out;
    }
    if (ag_config_load(config, &cfg, err, sizeof(err)) < 0 ||
        ag_control_path(cfg, path, sizeof(path), err, sizeof(err)) < 0 ||
        ag_control_request(path, line, answer, AG_CONTROL_ANSWER_MAX + 1, err,
                           sizeof(err)) < 0) {
        fprintf(stderr, "fedq-agent: %s\n", err);
        goto out;
    }
    if (strncmp(answer, "ok", 2) == 0 &&
        (answer[2] == ' ' || answer[2] == '\n')) {
        fputs(answer, stdout);
        rc = 0;
    } else {
        fprintf(stderr, "fedq-agent: %s",
                strncmp(answer, "error ", 6) == 0 ? answer + 6 : answer);
        if (!answer[0] || answer[strlen(answer) - 1] != '\n')
            fputc('\n', stderr);
    }
out:
    ag_config_free(cfg);
    free(answer);
    return rc;
}

int
main(int argc, char **argv)
{
    struct fq_daemon_args args;
    struct ag_state st;
    char err[1024];
    int rc = 1;

    if (argc >= 2 &&
        (strcmp(argv[1], "refresh") == 0 || strcmp(argv[1], "status") == 0))
        return client_main(argc - 1, argv + 1);
    if (fq_daemon_parse_args(argc, argv, "fedq-agent", &args) < 0)
        return 2;
    if (args.reference) {
        fq_cfg_write_reference(stdout, "fedq-agent", ag_config_table);
        return 0;
    }
    fq_log_setup("agent", FQ_LOG_INFO, FQ_LOG_TEXT);
    fq_daemon_block_signals();
    fq_rpc_global_init();
    if (state_open(&st, args.config, !args.check, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    if (args.check) {
        printf("%s: configuration OK (%zu datasets)\n", args.config,
               ag_catalog_datasets(st.catalog));
        rc = 0;
        goto out;
    }
    fq_daemon_setup_logging("agent", st.cfg->server.log_format,
                            st.cfg->server.log_level, &args);
    rc = serve(&st);
out:
    state_close(&st);
    fq_rpc_global_shutdown();
    return rc;
}
