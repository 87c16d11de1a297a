/*
 * `fedq review list|show|approve|deny`: a data steward's decisions on the
 * queries the agency's agent holds for review (agreements with `review:
 * every_query`). These calls go to the steward's own agent (`agent:` in the
 * client configuration), never through the gateway: the agent serves them
 * only to stewards of its agency, so no other party can release its data.
 *
 *   fedq review list [--state pending|approved|denied|all] [--limit N]
 *   fedq review show QUERY_ID
 *   fedq review approve QUERY_ID [--reason TEXT]
 *   fedq review deny QUERY_ID --reason TEXT
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/identity.h"
#include "cli.h"

#include <getopt.h>

#include "fedq/v1/agent.pb-c.h"

#define REVIEW_REASON_MAX  1000 /* DecideReviewRequest.reason */
#define REVIEW_LIMIT_MAX   1000 /* ListReviewsRequest.limit */
#define REVIEW_MESSAGE_MAX (64 * 1024 * 1024)

static const char *const state_names[] = {"all", "pending", "approved",
                                          "denied"};

static int
usage(void)
{
    fprintf(stderr,
            "usage: fedq review list [--state pending|approved|denied|all] "
            "[--limit N]\n"
            "       fedq review show QUERY_ID\n"
            "       fedq review approve QUERY_ID [--reason TEXT]\n"
            "       fedq review deny QUERY_ID --reason TEXT\n"
            "(each also takes --format table|csv|json)\n");
    return CLI_USAGE;
}

static const char *
state_name(Fedq__V1__ReviewState s)
{
    return s > 0 && (size_t)s < FQ_ARRAY_LEN(state_names) ? state_names[s]
                                                          : "none";
}

/*
 * Opens the channel to the steward's agent: the address from `agent:`, the
 * identity from `agent_identity:` or, by default, the agent of the agency
 * the steward's certificate names. CLI_OK, or an exit code after a
 * message. The caller frees *ret with fq_rpc_channel_free.
 */
static int
open_agent(struct cli *c, struct fq_rpc_channel **ret)
{
    const struct fq_identity *self = &c->tls.self;
    const char *expect = c->cfg->agent_identity;
    char ident[FQ_IDENTITY_MAX], err[1024];

    if (!c->cfg->agent) {
        fprintf(stderr,
                "fedq: review talks to your agency's agent directly: set "
                "agent: (its address) in %s\n",
                c->cfg->doc.path);
        return CLI_USAGE;
    }
    if (self->role != FQ_ROLE_STEWARD) {
        fprintf(stderr,
                "fedq: review needs a steward's certificate "
                "(spiffe://%s/steward/AGENCY/NAME); %s names %s\n",
                self->federation, c->cfg->doc.path, self->uri);
        return CLI_USAGE;
    }
    if (!expect) {
        if (fq_identity_format(FQ_ROLE_AGENT, self->federation, self->agency,
                               NULL, ident, sizeof(ident)) < 0) {
            fprintf(stderr, "fedq: no agent identity for agency '%s'\n",
                    self->agency);
            return CLI_USAGE;
        }
        expect = ident;
    }
    struct fq_rpc_channel_opts o = {
        .target = c->cfg->agent,
        .tls = &c->tls,
        .expect_identity = expect, /* copied by the channel */
        .max_message_bytes = REVIEW_MESSAGE_MAX,
    };
    if (fq_rpc_channel_open(&o, ret, err, sizeof(err)) < 0) {
        fprintf(stderr, "fedq: %s\n", err);
        return CLI_ERROR;
    }
    return CLI_OK;
}

/* Parses --format (and --state, --limit, --reason where given a place) and
 * the one QUERY_ID a subcommand takes (id NULL: none). */
struct review_args {
    const char *id;
    const char *reason;
    const char *state;
    long limit;
};

static int
parse_args(struct cli *c, int argc, char **argv, bool want_id,
           struct review_args *ret)
{
    static const struct option longopts[] = {
        {"state", required_argument, NULL, 's'},
        {"limit", required_argument, NULL, 'l'},
        {"reason", required_argument, NULL, 'r'},
        {"format", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    struct review_args a = {0};
    char *end;
    int opt;

    optind = 0; /* reinitialise getopt for the subcommand's own argv */
    while ((opt = getopt_long(argc, argv, "s:l:r:f:", longopts, NULL)) != -1) {
        if (opt == 's') {
            a.state = optarg;
        } else if (opt == 'r') {
            a.reason = optarg;
        } else if (opt == 'l') {
            a.limit = strtol(optarg, &end, 10);
            if (*end || a.limit <= 0 || a.limit > REVIEW_LIMIT_MAX) {
                fprintf(stderr, "fedq: --limit takes 1 to %d\n",
                        REVIEW_LIMIT_MAX);
                return CLI_USAGE;
            }
        } else if (opt != 'f' || cli_set_format(c, optarg) < 0) {
            return usage();
        }
    }
    if (optind + (want_id ? 1 : 0) != argc)
        return usage();
    a.id = want_id ? argv[optind] : NULL;
    *ret = a;
    return CLI_OK;
}

/*
 * The other agencies the query pools this agency's answer with. The
 * request may list every agency of the query, this one included; a steward
 * wants to see the others.
 */
static const char *
pooled_text(struct cli *c, struct fq_arena *a, const Fedq__V1__Review *r)
{
    char **others = fq_arena_alloc(a, (r->n_pooled_with + 1) * sizeof(char *));
    size_t n = 0;

    if (!others)
        return "?";
    for (size_t i = 0; i < r->n_pooled_with; i++) {
        if (strcmp(r->pooled_with[i], c->tls.self.agency) != 0)
            others[n++] = r->pooled_with[i];
    }
    return cli_join(a, others, n, ", ");
}

/*
 * A "review" section. For people (table, CSV) one field per line, since a
 * review has more fields than fit across; in JSON one object with a key per
 * field. min_cell_count < 0: not known (a decision's answer).
 */
static int
add_review(struct cli *c, struct cli_out *o, struct fq_arena *a,
           const Fedq__V1__Review *r, int64_t min_cell_count)
{
    const char *names[16], *values[16];
    size_t n = 0;
    int rc;

#define FIELD(k, v) (names[n] = (k), values[n++] = (v))
    FIELD("query_id", r->query_id);
    FIELD("state", state_name(r->state));
    FIELD("analyst", r->analyst);
    FIELD("agreement", r->agreement);
    FIELD("purpose", r->purpose);
    FIELD("pooled_with", pooled_text(c, a, r));
    FIELD("received", r->received);
    FIELD("decided", r->decided);
    FIELD("decided_by", r->decided_by);
    FIELD("reason", r->reason);
    FIELD("policy_hash", r->policy_hash);
    FIELD("data_vintage", r->data_vintage);
    if (min_cell_count >= 0)
        FIELD("min_cell_count", fq_arena_printf(a, "%" PRId64, min_cell_count));
#undef FIELD
    for (size_t i = 0; i < n; i++) {
        if (!values[i])
            return FQ_ENOMEM;
    }
    names[n] = NULL;
    if (c->format == CLI_FMT_JSON) {
        if ((rc = cli_out_section(o, "review", names)) == 0)
            rc = cli_out_row(o, values);
        return rc;
    }
    static const char *const cols[] = {"field", "value", NULL};
    rc = cli_out_section(o, "review", cols);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *row[] = {names[i], values[i]};
        rc = cli_out_row(o, row);
    }
    return rc;
}

static int
review_list(struct cli *c, struct fq_rpc_channel *ch, int argc, char **argv)
{
    static const char *const cols[] = {
        "query_id", "state",   "received",    "analyst",    "agreement",
        "purpose",  "dataset", "pooled_with", "decided_by", NULL};
    Fedq__V1__ListReviewsRequest req = FEDQ__V1__LIST_REVIEWS_REQUEST__INIT;
    struct fq_rpc_result res;
    struct review_args a;
    int rc;

    if ((rc = parse_args(c, argc, argv, false, &a)) != CLI_OK)
        return rc;
    req.state = FEDQ__V1__REVIEW_STATE__REVIEW_STATE_PENDING;
    if (a.state) {
        size_t i = 0;
        while (i < FQ_ARRAY_LEN(state_names) &&
               strcmp(a.state, state_names[i]) != 0)
            i++;
        if (i == FQ_ARRAY_LEN(state_names)) {
            fprintf(stderr, "fedq: --state must be pending, approved, denied "
                            "or all\n");
            return CLI_USAGE;
        }
        req.state = (Fedq__V1__ReviewState)i; /* "all": UNSPECIFIED */
    }
    req.limit = (uint32_t)a.limit;
    if ((rc = cli_call_on(c, ch, "/fedq.v1.Agent/ListReviews", &req.base,
                          &fedq__v1__list_reviews_response__descriptor, &res)))
        return rc;
    const Fedq__V1__ListReviewsResponse *r = (const void *)res.resp;
    struct cli_out *o = cli_out_new(c->format);
    rc = o ? cli_out_section(o, "reviews", cols) : FQ_ENOMEM;
    for (size_t i = 0; rc == 0 && i < r->n_reviews; i++) {
        const Fedq__V1__Review *v = r->reviews[i];
        const char *row[] = {v->query_id,
                             state_name(v->state),
                             v->received,
                             v->analyst,
                             v->agreement,
                             v->purpose,
                             v->plan ? v->plan->dataset : "",
                             pooled_text(c, res.arena, v),
                             v->decided_by};
        rc = cli_out_row(o, row);
    }
    if (o)
        cli_out_print(o);
    fq_arena_free(res.arena);
    return rc == 0 ? CLI_OK : CLI_ERROR;
}

/* The preview: this agency's part of the answer after its rules. */
static int
add_preview(struct cli_out *o, struct fq_arena *a,
            const Fedq__V1__GetReviewResponse *r)
{
    const char **cols = fq_arena_alloc(a, (r->n_columns + 1) * sizeof(char *));
    const char **vals = fq_arena_alloc(a, (r->n_columns + 1) * sizeof(char *));
    int rc;

    if (!cols || !vals)
        return FQ_ENOMEM;
    for (size_t i = 0; i < r->n_columns; i++)
        cols[i] = r->columns[i];
    if ((rc = cli_out_section(o, "preview", cols)) < 0)
        return rc;
    for (size_t k = 0; rc == 0 && k < r->n_rows; k++) {
        /* A short row from a confused agent prints blank, not garbage. */
        for (size_t i = 0; i < r->n_columns; i++)
            vals[i] = i < r->rows[k]->n_values ? r->rows[k]->values[i] : "";
        rc = cli_out_row(o, vals);
    }
    return rc;
}

static int
review_show(struct cli *c, struct fq_rpc_channel *ch, int argc, char **argv)
{
    Fedq__V1__GetReviewRequest req = FEDQ__V1__GET_REVIEW_REQUEST__INIT;
    struct fq_rpc_result res;
    struct review_args a;
    int rc;

    if ((rc = parse_args(c, argc, argv, true, &a)) != CLI_OK)
        return rc;
    req.query_id = (char *)a.id;
    if ((rc = cli_call_on(c, ch, "/fedq.v1.Agent/GetReview", &req.base,
                          &fedq__v1__get_review_response__descriptor, &res)))
        return rc;
    const Fedq__V1__GetReviewResponse *r = (const void *)res.resp;
    struct cli_out *o = cli_out_new(c->format);
    rc = o ? 0 : FQ_ENOMEM;
    if (rc == 0 && r->review)
        rc = add_review(c, o, res.arena, r->review, r->min_cell_count);
    if (rc == 0 && r->review && r->review->plan)
        rc = cli_out_plan(o, res.arena, r->review->plan);
    if (rc == 0 && r->n_columns)
        rc = add_preview(o, res.arena, r);
    if (o)
        cli_out_print(o);
    fq_arena_free(res.arena);
    return rc == 0 ? CLI_OK : CLI_ERROR;
}

static int
review_decide(struct cli *c, struct fq_rpc_channel *ch, int argc, char **argv,
              bool approve)
{
    Fedq__V1__DecideReviewRequest req = FEDQ__V1__DECIDE_REVIEW_REQUEST__INIT;
    struct fq_rpc_result res;
    struct review_args a;
    int rc;

    if ((rc = parse_args(c, argc, argv, true, &a)) != CLI_OK)
        return rc;
    if (a.state || a.limit)
        return usage();
    if (!approve && (!a.reason || !a.reason[0])) {
        fprintf(stderr, "fedq: a denial needs --reason TEXT: the analyst "
                        "reads it\n");
        return CLI_USAGE;
    }
    if (a.reason && strlen(a.reason) > REVIEW_REASON_MAX) {
        fprintf(stderr, "fedq: --reason is at most %d bytes\n",
                REVIEW_REASON_MAX);
        return CLI_USAGE;
    }
    req.query_id = (char *)a.id;
    req.approve = approve;
    if (a.reason)
        req.reason = (char *)a.reason;
    if ((rc = cli_call_on(c, ch, "/fedq.v1.Agent/DecideReview", &req.base,
                          &fedq__v1__review__descriptor, &res)))
        return rc;
    struct cli_out *o = cli_out_new(c->format);
    rc =
        o ? add_review(c, o, res.arena, (const void *)res.resp, -1) : FQ_ENOMEM;
    if (o)
        cli_out_print(o);
    fq_arena_free(res.arena);
    return rc == 0 ? CLI_OK : CLI_ERROR;
}

int
cli_cmd_review(struct cli *c, int argc, char **argv)
{
    struct fq_rpc_channel *ch = NULL;
    const char *sub = argc > 1 ? argv[1] : "";
    int rc;

    if (strcmp(sub, "list") != 0 && strcmp(sub, "show") != 0 &&
        strcmp(sub, "approve") != 0 && strcmp(sub, "deny") != 0)
        return usage();
    if ((rc = open_agent(c, &ch)) != CLI_OK)
        return rc;
    /* Each subcommand parses its own argv: argv[0] is its name. */
    if (strcmp(sub, "list") == 0)
        rc = review_list(c, ch, argc - 1, argv + 1);
    else if (strcmp(sub, "show") == 0)
        rc = review_show(c, ch, argc - 1, argv + 1);
    else
        rc = review_decide(c, ch, argc - 1, argv + 1,
                           strcmp(sub, "approve") == 0);
    fq_rpc_channel_free(ch);
    return rc;
}
