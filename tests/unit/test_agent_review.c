/*
 * Unit tests for the agent's review store (agent/review.c) and preview
 * (agent/review_preview.c), on a real SQLite file in a temporary
 * directory: a query held, asked again, approved, denied, decided twice;
 * the store reopened (a restart) with everything kept; file and directory
 * modes; the digest (what it covers and what it does not); the cap on
 * pending reviews; query ids and reasons refused; the list's order and
 * filter; and the preview's columns, values and suppressed cells.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "agent.h"
#include "review.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <sys/stat.h>

#define STEWARD "spiffe://fedq.test/steward/dol/sam"
#define HASH    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define T0      1780000000 /* 2026-05-28T20:26:40Z */

static char dir[64];
static char sub[128]; /* the review directory, made by the store */

/* A request and an answer of two groups: town T1 (12 persons) and T2 (3),
 * with COUNT(*), SUM(wages) and HISTOGRAM(wages) over edges 100, 200. */
struct sample {
    Fedq__V1__ExecuteRequest req;
    Fedq__V1__Plan plan;
    Fedq__V1__Aggregate count, sum, hist;
    Fedq__V1__Aggregate *aggs[3];
    Fedq__V1__Literal e100, e200;
    Fedq__V1__Literal *edges[2];
    char *group_by[1];
    char *pooled[2];
    Fedq__V1__ExecuteResponse answer;
    Fedq__V1__PartialGroup g1, g2;
    Fedq__V1__PartialGroup *groups[2];
    Fedq__V1__Literal k1, k2;
    Fedq__V1__Literal *key1[1], *key2[1];
    Fedq__V1__AggregateState s1[3], s2[3];
    Fedq__V1__AggregateState *st1[3], *st2[3];
    int64_t bins1[3], who1[3], bins2[3], who2[3];
};

static void
sample_group(Fedq__V1__PartialGroup *g, Fedq__V1__Literal *k,
             Fedq__V1__Literal **key, const char *town, int64_t persons,
             int64_t sum, Fedq__V1__AggregateState *s,
             Fedq__V1__AggregateState **sp, int64_t *bins, int64_t *who,
             const int64_t b[3], const int64_t w[3])
{
    fedq__v1__partial_group__init(g);
    fedq__v1__literal__init(k);
    k->value_case = FEDQ__V1__LITERAL__VALUE_TEXT_VALUE;
    k->text_value = (char *)town;
    key[0] = k;
    g->n_key = 1;
    g->key = key;
    g->records = persons;
    g->contributors = persons;
    for (int i = 0; i < 3; i++) {
        fedq__v1__aggregate_state__init(&s[i]);
        sp[i] = &s[i];
        bins[i] = b[i];
        who[i] = w[i];
    }
    s[0].count = persons;
    s[1].count = persons;
    s[1].int_sum = sum;
    s[2].n_bins = 3;
    s[2].bins = bins;
    s[2].n_bin_contributors = 3;
    s[2].bin_contributors = who;
    g->n_aggregates = 3;
    g->aggregates = sp;
}

static void
sample_init(struct sample *x, const char *id)
{
    static const int64_t b1[3] = {0, 9, 3}, w1[3] = {0, 9, 3};
    static const int64_t b2[3] = {1, 2, 0}, w2[3] = {1, 2, 0};

    memset(x, 0, sizeof(*x));
    fedq__v1__plan__init(&x->plan);
    x->plan.dataset = (char *)"wages";
    x->group_by[0] = (char *)"town";
    x->plan.n_group_by = 1;
    x->plan.group_by = x->group_by;
    fedq__v1__aggregate__init(&x->count);
    x->count.kind = FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT;
    fedq__v1__aggregate__init(&x->sum);
    x->sum.kind = FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM;
    x->sum.column = (char *)"wages";
    fedq__v1__aggregate__init(&x->hist);
    x->hist.kind = FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM;
    x->hist.column = (char *)"wages";
    fedq__v1__literal__init(&x->e100);
    x->e100.value_case = FEDQ__V1__LITERAL__VALUE_INT_VALUE;
    x->e100.int_value = 100;
    fedq__v1__literal__init(&x->e200);
    x->e200.value_case = FEDQ__V1__LITERAL__VALUE_INT_VALUE;
    x->e200.int_value = 200;
    x->edges[0] = &x->e100;
    x->edges[1] = &x->e200;
    x->hist.n_edges = 2;
    x->hist.edges = x->edges;
    x->aggs[0] = &x->count;
    x->aggs[1] = &x->sum;
    x->aggs[2] = &x->hist;
    x->plan.n_aggregates = 3;
    x->plan.aggregates = x->aggs;

    fedq__v1__execute_request__init(&x->req);
    x->req.query_id = (char *)id;
    x->req.plan = &x->plan;
    x->req.analyst = (char *)"spiffe://fedq.test/analyst/alice";
    x->req.agreement = (char *)"A-1";
    x->req.purpose = (char *)"testing";
    x->pooled[0] = (char *)"dss";
    x->pooled[1] = (char *)"doe";
    x->req.n_pooled_with = 2;
    x->req.pooled_with = x->pooled;

    fedq__v1__execute_response__init(&x->answer);
    sample_group(&x->g1, &x->k1, x->key1, "T1", 12, 1500, x->s1, x->st1,
                 x->bins1, x->who1, b1, w1);
    sample_group(&x->g2, &x->k2, x->key2, "T2", 3, 300, x->s2, x->st2, x->bins2,
                 x->who2, b2, w2);
    x->groups[0] = &x->g1;
    x->groups[1] = &x->g2;
    x->answer.n_groups = 2;
    x->answer.groups = x->groups;
    x->answer.data_vintage = (char *)"2026-05-28T00:00:00Z";
    x->answer.min_cell_count = 5; /* not kept: set again on release */
}

static struct ag_review_store *
open_store(size_t max_pending)
{
    struct ag_review_store *s = NULL;
    char err[1024] = "";

    if (ag_review_open(sub, "dol", max_pending, &s, err, sizeof(err)) < 0)
        fail_msg("open: %s", err);
    return s;
}

/* Holds sample query id; 0 or the store's code. */
static int
hold(struct ag_review_store *s, const char *id, time_t now, char *err,
     size_t errlen)
{
    struct sample x;
    uint8_t d[AG_REVIEW_DIGEST_LEN];

    sample_init(&x, id);
    assert_int_equal(ag_review_digest(&x.req, d), 0);
    return ag_review_hold(s, &x.req, d, &x.answer, 5, HASH, now, err, errlen);
}

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/fq-review-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(sub, sizeof(sub), "%s/state/dol", dir);
    return 0;
}

static int
teardown(void **state)
{
    char path[256];

    (void)state;
    snprintf(path, sizeof(path), "%s/reviews-dol.sqlite", sub);
    unlink(path);
    rmdir(sub);
    snprintf(path, sizeof(path), "%s/state", dir);
    rmdir(path);
    rmdir(dir);
    return 0;
}

/* A fresh store for each test: the file is removed. */
static int
fresh(void **state)
{
    char path[256];

    (void)state;
    snprintf(path, sizeof(path), "%s/reviews-dol.sqlite", sub);
    unlink(path);
    return 0;
}

static void
test_ids_and_reasons(void **state)
{
    char id64[65], id65[66];

    (void)state;
    memset(id64, 'a', 64);
    id64[64] = '\0';
    memset(id65, 'a', 65);
    id65[65] = '\0';
    assert_true(ag_review_id_valid("q-0123456789abcdef"));
    assert_true(ag_review_id_valid("a"));
    assert_true(ag_review_id_valid(id64));
    assert_false(ag_review_id_valid(id65));
    assert_false(ag_review_id_valid(""));
    assert_false(ag_review_id_valid(NULL));
    assert_false(ag_review_id_valid("Q-1"));
    assert_false(ag_review_id_valid("q 1"));
    assert_false(ag_review_id_valid("q_1"));
    assert_false(ag_review_id_valid("../x"));

    char long_reason[AG_REVIEW_REASON_MAX + 2];
    memset(long_reason, 'x', sizeof(long_reason) - 1);
    long_reason[AG_REVIEW_REASON_MAX + 1] = '\0';
    assert_false(ag_review_reason_valid(long_reason, true));
    long_reason[AG_REVIEW_REASON_MAX] = '\0';
    assert_true(ag_review_reason_valid(long_reason, true));
    assert_true(ag_review_reason_valid("too fine-grained: towns < 1000", true));
    assert_true(ag_review_reason_valid("trop détaillé", true)); /* UTF-8 */
    assert_false(ag_review_reason_valid("", true));
    assert_false(ag_review_reason_valid(NULL, true));
    assert_true(ag_review_reason_valid("", false));
    assert_true(ag_review_reason_valid(NULL, false));
    assert_false(ag_review_reason_valid("two\nlines", true));
    assert_false(ag_review_reason_valid("tab\there", false));
    assert_false(ag_review_reason_valid("del\x7f", true));
}

static void
test_digest(void **state)
{
    struct sample x;
    uint8_t a[AG_REVIEW_DIGEST_LEN], b[AG_REVIEW_DIGEST_LEN];

    (void)state;
    sample_init(&x, "q-1");
    assert_int_equal(ag_review_digest(&x.req, a), 0);
    /* The query id and the order of the pooled agencies are not the
     * query. */
    x.req.query_id = (char *)"q-2";
    x.pooled[0] = (char *)"doe";
    x.pooled[1] = (char *)"dss";
    assert_int_equal(ag_review_digest(&x.req, b), 0);
    assert_memory_equal(a, b, sizeof(a));
    /* Everything else is. */
    x.req.purpose = (char *)"testing2";
    assert_int_equal(ag_review_digest(&x.req, b), 0);
    assert_memory_not_equal(a, b, sizeof(a));
    x.req.purpose = (char *)"testing";
    x.req.analyst = (char *)"spiffe://fedq.test/analyst/bob";
    assert_int_equal(ag_review_digest(&x.req, b), 0);
    assert_memory_not_equal(a, b, sizeof(a));
    x.req.analyst = (char *)"spiffe://fedq.test/analyst/alice";
    x.req.agreement = (char *)"A-2";
    assert_int_equal(ag_review_digest(&x.req, b), 0);
    assert_memory_not_equal(a, b, sizeof(a));
    x.req.agreement = (char *)"A-1";
    x.req.n_pooled_with = 1;
    assert_int_equal(ag_review_digest(&x.req, b), 0);
    assert_memory_not_equal(a, b, sizeof(a));
    x.req.n_pooled_with = 2;
    x.e200.int_value = 201;
    assert_int_equal(ag_review_digest(&x.req, b), 0);
    assert_memory_not_equal(a, b, sizeof(a));
    x.e200.int_value = 200;
    /* A boundary moved between two fields changes it too. */
    x.req.agreement = (char *)"A-1t";
    x.req.purpose = (char *)"esting";
    assert_int_equal(ag_review_digest(&x.req, b), 0);
    assert_memory_not_equal(a, b, sizeof(a));
    x.req.agreement = (char *)"A-1";
    x.req.purpose = (char *)"testing";
    assert_int_equal(ag_review_digest(&x.req, b), 0);
    assert_memory_equal(a, b, sizeof(a));
}

static void
test_hold_decide_reopen(void **state)
{
    struct ag_review_store *s = open_store(AG_REVIEW_MAX_PENDING);
    struct fq_arena *arena = fq_arena_new(1 << 20);
    struct ag_review_entry e;
    Fedq__V1__Review *r = NULL;
    struct sample x;
    uint8_t d[AG_REVIEW_DIGEST_LEN];
    char err[1024] = "", path[256];
    struct stat sb;

    (void)state;
    /* The directory is made private, the file too. */
    assert_int_equal(stat(sub, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/reviews-dol.sqlite", sub);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    assert_int_equal(ag_review_get(s, "q-1", arena, &e, err, sizeof(err)),
                     FQ_ENOENT);
    assert_string_equal(err, "agency dol holds no query q-1 for review");
    assert_int_equal(hold(s, "q-1", T0, err, sizeof(err)), 0);
    assert_int_equal(hold(s, "q-2", T0 + 1, err, sizeof(err)), 0);
    /* Held once: the same id again is for ag_review_get. */
    assert_int_equal(hold(s, "q-1", T0, err, sizeof(err)), FQ_EAGAIN);

    assert_int_equal(ag_review_get(s, "q-1", arena, &e, err, sizeof(err)), 0);
    sample_init(&x, "q-1");
    assert_int_equal(ag_review_digest(&x.req, d), 0);
    assert_memory_equal(e.digest, d, sizeof(d));
    assert_int_equal(e.review->state,
                     FEDQ__V1__REVIEW_STATE__REVIEW_STATE_PENDING);
    assert_string_equal(e.review->query_id, "q-1");
    assert_string_equal(e.review->analyst, "spiffe://fedq.test/analyst/alice");
    assert_string_equal(e.review->agreement, "A-1");
    assert_string_equal(e.review->purpose, "testing");
    assert_int_equal(e.review->n_pooled_with, 2);
    assert_string_equal(e.review->pooled_with[1], "doe");
    assert_string_equal(e.review->plan->dataset, "wages");
    assert_int_equal(e.review->plan->n_aggregates, 3);
    assert_string_equal(e.review->received, "2026-05-28T20:26:40Z");
    assert_string_equal(e.review->decided, "");
    assert_string_equal(e.review->decided_by, "");
    assert_string_equal(e.review->policy_hash, HASH);
    assert_string_equal(e.review->data_vintage, "2026-05-28T00:00:00Z");
    assert_int_equal(e.min_cell_count, 5);
    assert_int_equal(e.answer->n_groups, 2);
    assert_int_equal(e.answer->groups[0]->contributors, 12);
    assert_int_equal(e.answer->groups[1]->aggregates[1]->int_sum, 300);
    assert_string_equal(e.answer->data_vintage, "2026-05-28T00:00:00Z");
    assert_int_equal(e.answer->min_cell_count, 0);

    /* Decisions: once each, by whom and when. */
    assert_int_equal(ag_review_decide(s, "q-1", true, "", STEWARD, T0 + 60,
                                      arena, &r, err, sizeof(err)),
                     0);
    assert_int_equal(r->state, FEDQ__V1__REVIEW_STATE__REVIEW_STATE_APPROVED);
    assert_string_equal(r->decided_by, STEWARD);
    assert_string_equal(r->decided, "2026-05-28T20:27:40Z");
    assert_int_equal(ag_review_decide(s, "q-1", false, "no", STEWARD, T0 + 61,
                                      arena, &r, err, sizeof(err)),
                     FQ_EPRECOND);
    assert_string_equal(err, "query q-1 was already approved by " STEWARD
                             " at 2026-05-28T20:27:40Z");
    assert_int_equal(ag_review_decide(s, "q-2", false, "too fine", STEWARD,
                                      T0 + 62, arena, &r, err, sizeof(err)),
                     0);
    assert_int_equal(r->state, FEDQ__V1__REVIEW_STATE__REVIEW_STATE_DENIED);
    assert_string_equal(r->reason, "too fine");
    assert_int_equal(ag_review_decide(s, "q-2", true, "", STEWARD, T0 + 63,
                                      arena, &r, err, sizeof(err)),
                     FQ_EPRECOND);
    assert_string_equal(err, "query q-2 was already denied by " STEWARD
                             " at 2026-05-28T20:27:42Z");
    assert_int_equal(ag_review_decide(s, "q-3", true, "", STEWARD, T0, arena,
                                      &r, err, sizeof(err)),
                     FQ_ENOENT);
    assert_int_equal(hold(s, "q-3", T0 + 2, err, sizeof(err)), 0);

    /* A restart: everything is where it was. */
    ag_review_close(s);
    s = open_store(AG_REVIEW_MAX_PENDING);
    assert_int_equal(ag_review_get(s, "q-1", arena, &e, err, sizeof(err)), 0);
    assert_int_equal(e.review->state,
                     FEDQ__V1__REVIEW_STATE__REVIEW_STATE_APPROVED);
    assert_int_equal(e.answer->n_groups, 2);
    assert_memory_equal(e.digest, d, sizeof(d));
    assert_int_equal(ag_review_get(s, "q-2", arena, &e, err, sizeof(err)), 0);
    assert_int_equal(e.review->state,
                     FEDQ__V1__REVIEW_STATE__REVIEW_STATE_DENIED);
    assert_string_equal(e.review->reason, "too fine");
    assert_string_equal(e.review->decided_by, STEWARD);
    assert_int_equal(ag_review_get(s, "q-3", arena, &e, err, sizeof(err)), 0);
    assert_int_equal(e.review->state,
                     FEDQ__V1__REVIEW_STATE__REVIEW_STATE_PENDING);

    /* The list: newest first, by state, within the limit. */
    Fedq__V1__Review **list = NULL;
    size_t n = 0;
    assert_int_equal(
        ag_review_list(s, FEDQ__V1__REVIEW_STATE__REVIEW_STATE_UNSPECIFIED, 0,
                       arena, &list, &n, err, sizeof(err)),
        0);
    assert_int_equal(n, 3);
    assert_string_equal(list[0]->query_id, "q-3");
    assert_string_equal(list[1]->query_id, "q-2");
    assert_string_equal(list[2]->query_id, "q-1");
    assert_int_equal(
        ag_review_list(s, FEDQ__V1__REVIEW_STATE__REVIEW_STATE_PENDING, 0,
                       arena, &list, &n, err, sizeof(err)),
        0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0]->query_id, "q-3");
    assert_int_equal(
        ag_review_list(s, FEDQ__V1__REVIEW_STATE__REVIEW_STATE_UNSPECIFIED, 2,
                       arena, &list, &n, err, sizeof(err)),
        0);
    assert_int_equal(n, 2);
    assert_string_equal(list[1]->query_id, "q-2");
    ag_review_close(s);
    fq_arena_free(arena);
}

static void
test_cap(void **state)
{
    struct ag_review_store *s = open_store(2);
    struct fq_arena *arena = fq_arena_new(1 << 20);
    Fedq__V1__Review *r = NULL;
    char err[1024] = "";

    (void)state;
    assert_int_equal(hold(s, "q-1", T0, err, sizeof(err)), 0);
    assert_int_equal(hold(s, "q-2", T0, err, sizeof(err)), 0);
    assert_int_equal(hold(s, "q-3", T0, err, sizeof(err)), FQ_ETOOBIG);
    assert_string_equal(err, "2 queries already wait for the steward's review "
                             "(the most kept); ask again once they are "
                             "decided");
    /* Decided ones do not count. */
    assert_int_equal(ag_review_decide(s, "q-1", false, "no", STEWARD, T0, arena,
                                      &r, err, sizeof(err)),
                     0);
    assert_int_equal(hold(s, "q-3", T0, err, sizeof(err)), 0);
    ag_review_close(s);
    fq_arena_free(arena);
}

/* Calls race to hold one id and an id each: one wins the shared id, the
 * others are told it is held; every own id is held. */
#define RACERS 8

struct racer {
    struct ag_review_store *s;
    int n;
    int shared_rc, own_rc;
};

static void *
race(void *arg)
{
    struct racer *r = arg;
    char id[32], err[1024];

    r->shared_rc = hold(r->s, "q-shared", T0, err, sizeof(err));
    snprintf(id, sizeof(id), "q-own-%d", r->n);
    r->own_rc = hold(r->s, id, T0, err, sizeof(err));
    return NULL;
}

static void
test_concurrent(void **state)
{
    struct ag_review_store *s = open_store(AG_REVIEW_MAX_PENDING);
    struct fq_arena *arena = fq_arena_new(1 << 20);
    struct racer r[RACERS];
    pthread_t t[RACERS];
    Fedq__V1__Review **list = NULL;
    size_t n = 0, won = 0;
    char err[1024] = "";

    (void)state;
    for (int i = 0; i < RACERS; i++) {
        r[i] = (struct racer){.s = s, .n = i};
        assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < RACERS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(r[i].own_rc, 0);
        if (r[i].shared_rc == 0)
            won++;
        else
            assert_int_equal(r[i].shared_rc, FQ_EAGAIN);
    }
    assert_int_equal(won, 1);
    assert_int_equal(
        ag_review_list(s, FEDQ__V1__REVIEW_STATE__REVIEW_STATE_PENDING, 0,
                       arena, &list, &n, err, sizeof(err)),
        0);
    assert_int_equal(n, RACERS + 1);
    ag_review_close(s);
    fq_arena_free(arena);
}

static void
test_preview(void **state)
{
    Fedq__V1__GetReviewResponse resp = FEDQ__V1__GET_REVIEW_RESPONSE__INIT;
    struct fq_arena *arena = fq_arena_new(1 << 20);
    struct sample x;
    static const char *const cols[] = {
        "town",
        "COUNT(*)",
        "SUM(wages)",
        "HISTOGRAM(wages)[-inf,100)",
        "HISTOGRAM(wages)[100,200)",
        "HISTOGRAM(wages)[200,+inf)",
    };
    /* k = 5: T1's 12 persons pass, its bin of 3 does not (the empty one is
     * released); T2's 3 persons hide every aggregate. */
    static const char *const rows[2][6] = {
        {"T1", "12", "1500", "0", "9", "suppressed"},
        {"T2", "suppressed", "suppressed", "suppressed", "suppressed",
         "suppressed"},
    };

    (void)state;
    sample_init(&x, "q-1");
    assert_int_equal(
        ag_review_preview(&x.plan, &x.answer, NULL, 5, arena, &resp), 0);
    assert_int_equal(resp.min_cell_count, 5);
    assert_int_equal(resp.n_columns, 6);
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(resp.columns[i], cols[i]);
    assert_int_equal(resp.n_rows, 2);
    for (size_t r = 0; r < 2; r++) {
        assert_int_equal(resp.rows[r]->n_values, 6);
        for (size_t i = 0; i < 6; i++)
            assert_string_equal(resp.rows[r]->values[i], rows[r][i]);
    }
    /* k = 3: T2 passes, its bin of 1 person does not. Rows are in key
     * order, whatever the engine's order. */
    x.groups[0] = &x.g2;
    x.groups[1] = &x.g1;
    fedq__v1__get_review_response__init(&resp);
    assert_int_equal(
        ag_review_preview(&x.plan, &x.answer, NULL, 3, arena, &resp), 0);
    assert_string_equal(resp.rows[0]->values[0], "T1");
    assert_string_equal(resp.rows[0]->values[5], "3");
    assert_ptr_equal(x.answer.groups[0], &x.g2); /* the answer is as it was */
    assert_string_equal(resp.rows[1]->values[1], "3");
    assert_string_equal(resp.rows[1]->values[2], "300");
    assert_string_equal(resp.rows[1]->values[3], "suppressed");
    assert_string_equal(resp.rows[1]->values[4], "suppressed");
    assert_string_equal(resp.rows[1]->values[5], "0");
    fq_arena_free(arena);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_and_reasons),
        cmocka_unit_test(test_digest),
        cmocka_unit_test_setup(test_hold_decide_reopen, fresh),
        cmocka_unit_test_setup(test_cap, fresh),
        cmocka_unit_test_setup(test_concurrent, fresh),
        cmocka_unit_test(test_preview),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
