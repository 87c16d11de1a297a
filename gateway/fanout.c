/*
 * Parallel calls to several agents on behalf of one analyst call. Child
 * calls complete on the server's workers; the last one to finish runs the
 * continuation, so no worker ever waits for an agent. The pending count
 * starts at n + 1 and the starter drops its own unit last, so the
 * continuation cannot run before every child has been started.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "gateway.h"

/* Time kept back from the analyst's deadline to send the answer. */
#define FANOUT_MARGIN_MAX_MS 50

struct fanout_slot {
    struct gw_fanout *f;
    int agent; /* index into fed->agents */
    struct gw_reply reply;
    struct fq_arena *arena; /* owns reply.message and reply.resp */
};

struct gw_fanout {
    struct gw_federation *fed;
    int pending;
    gw_fanout_done_fn done;
    void *arg;
    size_t n;
    struct fanout_slot slots[];
};

static void
fanout_release(struct gw_fanout *f)
{
    if (__atomic_sub_fetch(&f->pending, 1, __ATOMIC_ACQ_REL) == 0)
        f->done(f, f->arg);
}

static void
fanout_child_done(void *arg, struct fq_rpc_result *res)
{
    struct fanout_slot *s = arg;

    s->arena = res->arena;
    s->reply.status = res->status;
    s->reply.message = res->message;
    s->reply.resp = res->resp;
    s->reply.latency_ms = res->latency_ms;
    fanout_release(s->f);
}

static int64_t
fanout_deadline(const struct gw_federation *fed, int64_t parent)
{
    int64_t now = fq_rpc_now_ms();
    int64_t margin = (parent - now) / 10;
    if (margin > FANOUT_MARGIN_MAX_MS)
        margin = FANOUT_MARGIN_MAX_MS;
    int64_t d = parent - (margin > 0 ? margin : 0);
    int64_t cap = now + fed->cfg->agent_timeout_ms;
    return d < cap ? d : cap;
}

int
gw_fanout_start(struct gw_state *st, struct gw_federation *fed,
                int64_t parent_deadline, const int *which, size_t n,
                const char *method, const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *resp_desc,
                gw_fanout_done_fn done, void *arg)
{
    if (!which)
        n = fed->n_agents;
    struct gw_fanout *f = calloc(1, sizeof(*f) + n * sizeof(f->slots[0]));
    if (!f)
        return FQ_ENOMEM;
    gw_federation_ref(fed);
    f->fed = fed;
    f->done = done;
    f->arg = arg;
    f->n = n;
    f->pending = (int)n + 1;
    int64_t deadline = fanout_deadline(fed, parent_deadline);
    for (size_t i = 0; i < n; i++) {
        struct fanout_slot *s = &f->slots[i];
        s->f = f;
        s->agent = which ? which[i] : (int)i;
        if (fq_rpc_call_start_child(st->srv, fed->agents[s->agent].ch, method,
                                    req, resp_desc, deadline, fanout_child_done,
                                    s) < 0) {
            s->reply.status = FQ_RPC_INTERNAL;
            s->reply.message = "out of memory starting the call";
            fanout_release(f);
        }
    }
    fanout_release(f);
    return 0;
}

size_t
gw_fanout_count(const struct gw_fanout *f)
{
    return f->n;
}

const struct gw_agent *
gw_fanout_agent(const struct gw_fanout *f, size_t i)
{
    return &f->fed->agents[f->slots[i].agent];
}

const struct gw_reply *
gw_fanout_reply(const struct gw_fanout *f, size_t i)
{
    return &f->slots[i].reply;
}

struct fq_arena *
gw_fanout_take(struct gw_fanout *f, size_t i)
{
    struct fq_arena *a = f->slots[i].arena;
    f->slots[i].arena = NULL;
    return a;
}

void
gw_fanout_free(struct gw_fanout *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        fq_arena_free(f->slots[i].arena);
    gw_federation_unref(f->fed);
    free(f);
}
