/*
 * Server half of the RPC layer; see fq/rpc.h for the model.
 *
 * Every completion-queue tag points at a struct rpc_tag embedded first in a
 * context (an incoming call or a child call); workers switch on its kind.
 * Contexts are counted: shutdown waits until the count reaches zero before
 * it shuts the queue down, because gRPC aborts if a batch is started on a
 * queue that is already shut down (a deadline-cancelled call whose handler
 * is still finishing is enough to trigger it).
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/log.h"
#include "rpc_internal.h"

#include <stdatomic.h>

#include "grpc/health/v1/health.pb-c.h"

#define RPC_REQUESTS_PER_THREAD 8
#define RPC_MSG_MAX             512
#define RPC_METHOD_MAX          128
#define RPC_HEALTH_CHECK        "/grpc.health.v1.Health/Check"

enum rpc_tag_kind {
    TAG_REQUESTED, /* a new call arrived (or the server is shutting down) */
    TAG_RECEIVED,  /* its request message arrived */
    TAG_SENT,      /* its status went out; the call is over */
    TAG_CHILD,     /* a child call finished */
};

struct rpc_tag {
    enum rpc_tag_kind kind;
};

struct rpc_child {
    struct rpc_tag tag; /* first: the queue hands back &tag */
    struct fq_rpc_server *srv;
    struct fq_rpc_channel *ch;
    grpc_call *call;
    struct rpc_client_ops ops;
    const ProtobufCMessageDescriptor *resp_desc;
    fq_rpc_done_fn done;
    void *arg;
    int64_t start;
    struct rpc_child *prev, *next; /* in srv->children, for cancelling */
};

struct fq_rpc_call {
    struct rpc_tag tag; /* first: the queue hands back &tag */
    struct fq_rpc_server *srv;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    grpc_byte_buffer *req_bb;
    grpc_byte_buffer *resp_bb;
    int cancelled;
    bool waiting; /* a posted slot that no call has arrived in yet */
    atomic_int finished;
    const struct fq_rpc_method *method;
    struct fq_identity peer;
    struct fq_arena *arena;
    int64_t deadline;
    char path[RPC_METHOD_MAX];
    char msg[RPC_MSG_MAX]; /* status details; must live until TAG_SENT */
};

struct fq_rpc_server {
    struct fq_rpc_server_opts o; /* strings point at the copies below */
    char listen[128];
    char federation[FQ_FEDERATION_MAX + 1];
    struct fq_rpc_method *methods; /* the program's plus Health/Check */
    size_t n_methods;
    grpc_server *server;
    grpc_completion_queue *cq;
    grpc_completion_queue *ctl_cq;
    pthread_t *workers;
    int n_workers;
    char address[128];
    atomic_bool stopping;
    pthread_mutex_t mu; /* guards live, slots and children */
    pthread_cond_t idle;
    int live;  /* contexts: call slots, calls and child calls */
    int slots; /* of which call slots still waiting for a call */
    struct rpc_child *children;
};

static void rpc_post_request(struct fq_rpc_server *srv);
static void rpc_health_check(struct fq_rpc_call *call,
                             const ProtobufCMessage *msg, void *app);

/* ---- context accounting -------------------------------------------------- */

static void
rpc_live_add(struct fq_rpc_server *srv, int delta, int slots)
{
    pthread_mutex_lock(&srv->mu);
    srv->live += delta;
    srv->slots += slots;
    if (srv->live == 0)
        pthread_cond_broadcast(&srv->idle);
    pthread_mutex_unlock(&srv->mu);
}

int
fq_rpc_server_live_calls(const struct fq_rpc_server *srv)
{
    struct fq_rpc_server *s = (struct fq_rpc_server *)srv;
    pthread_mutex_lock(&s->mu);
    int n = s->live - s->slots;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void
rpc_call_free(struct fq_rpc_call *c)
{
    struct fq_rpc_server *srv = c->srv;

    if (c->call)
        grpc_call_unref(c->call);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->md);
    if (c->req_bb)
        grpc_byte_buffer_destroy(c->req_bb);
    if (c->resp_bb)
        grpc_byte_buffer_destroy(c->resp_bb);
    fq_arena_free(c->arena);
    int slot = c->waiting ? -1 : 0;
    free(c);
    rpc_live_add(srv, -1, slot);
}

/* ---- finishing a call ---------------------------------------------------- */

static void
rpc_send_status(struct fq_rpc_call *c, enum fq_rpc_status status)
{
    grpc_op ops[4];
    size_t n = 0;
    grpc_slice details = grpc_slice_from_static_string(c->msg);

    memset(ops, 0, sizeof(ops));
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (c->resp_bb) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = c->resp_bb;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = (grpc_status_code)status;
    ops[n++].data.send_status_from_server.status_details = &details;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
    c->tag.kind = TAG_SENT;
    if (grpc_call_start_batch(c->call, ops, n, &c->tag, NULL) != GRPC_CALL_OK) {
        fq_log_warnx("cannot send status on '%s', dropping call", c->path);
        rpc_call_free(c);
    }
}

static bool
rpc_claim_finish(struct fq_rpc_call *c)
{
    if (atomic_exchange(&c->finished, 1) == 0)
        return true;
    fq_log_warnx("call '%s' finished twice, ignoring", c->path);
    return false;
}

void
fq_rpc_call_reply(struct fq_rpc_call *c, const ProtobufCMessage *resp)
{
    if (!rpc_claim_finish(c))
        return;
    c->resp_bb = fq__rpc_pack(resp);
    if (!c->resp_bb) {
        snprintf(c->msg, sizeof(c->msg), "out of memory");
        rpc_send_status(c, FQ_RPC_INTERNAL);
        return;
    }
    c->msg[0] = '\0';
    rpc_send_status(c, FQ_RPC_OK);
}

void
fq_rpc_call_fail(struct fq_rpc_call *c, int err, const char *fmt, ...)
{
    va_list ap;

    if (!rpc_claim_finish(c))
        return;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
    va_end(ap);
    rpc_send_status(c, fq_rpc_status_from_error(err));
}

/* Ends a call that never reached a handler. */
static void rpc_reject(struct fq_rpc_call *c, enum fq_rpc_status status,
                       const char *fmt, ...) FQ_PRINTF(3, 4);

static void
rpc_reject(struct fq_rpc_call *c, enum fq_rpc_status status, const char *fmt,
           ...)
{
    va_list ap;

    atomic_store(&c->finished, 1);
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
    va_end(ap);
    rpc_send_status(c, status);
}

/* ---- accessors ----------------------------------------------------------- */

const struct fq_identity *
fq_rpc_call_peer(const struct fq_rpc_call *c)
{
    return &c->peer;
}

struct fq_arena *
fq_rpc_call_arena(struct fq_rpc_call *c)
{
    return c->arena;
}

int64_t
fq_rpc_call_deadline(const struct fq_rpc_call *c)
{
    return c->deadline;
}

const char *
fq_rpc_call_method(const struct fq_rpc_call *c)
{
    return c->path;
}

const char *
fq_rpc_server_address(const struct fq_rpc_server *srv)
{
    return srv->address;
}

/* ---- accepting a call ---------------------------------------------------- */

/* The peer's identity: exactly one URI SAN, which must parse. */
static int
rpc_peer_identity(grpc_call *call, struct fq_identity *ret, char *why,
                  size_t whylen)
{
    grpc_auth_context *ctx = grpc_call_auth_context(call);
    const grpc_auth_property *p, *uri = NULL;
    int n = 0, rc = FQ_EPERM;

    if (!ctx || !grpc_auth_context_peer_is_authenticated(ctx)) {
        snprintf(why, whylen, "peer is not authenticated");
        goto out;
    }
    grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(
        ctx, GRPC_PEER_URI_PROPERTY_NAME);
    while ((p = grpc_auth_property_iterator_next(&it)) != NULL) {
        uri = p;
        n++;
    }
    if (n != 1) {
        snprintf(why, whylen, "certificate has %d URI SANs, expected one", n);
        goto out;
    }
    if (fq_identity_parse(uri->value, uri->value_length, ret) < 0) {
        snprintf(why, whylen, "certificate URI SAN is not a fedq identity");
        goto out;
    }
    rc = 0;
out:
    grpc_auth_context_release(ctx);
    return rc;
}

static const struct fq_rpc_method *
rpc_find_method(const struct fq_rpc_server *srv, const char *path)
{
    for (size_t i = 0; i < srv->n_methods; i++) {
        if (strcmp(srv->methods[i].path, path) == 0)
            return &srv->methods[i];
    }
    return NULL;
}

/* min(client deadline, now + cap); the default when the client set none. */
static int64_t
rpc_effective_deadline(const struct fq_rpc_server *srv, gpr_timespec d)
{
    int64_t now = fq_rpc_now_ms();
    int64_t cap = now + srv->o.max_deadline_ms;
    gpr_timespec m = gpr_convert_clock_type(d, GPR_CLOCK_MONOTONIC);
    gpr_timespec nowt = gpr_now(GPR_CLOCK_MONOTONIC);

    if (gpr_time_cmp(d, gpr_inf_future(d.clock_type)) == 0)
        return now + srv->o.default_deadline_ms;
    int64_t left = gpr_time_to_millis(gpr_time_sub(m, nowt));
    int64_t abs = now + (left > 0 ? left : 0);
    return abs < cap ? abs : cap;
}

/* Checks who is calling; 0, or the status to reject with (why is set). */
static enum fq_rpc_status
rpc_authorize(struct fq_rpc_call *c, char *why, size_t whylen)
{
    struct fq_rpc_server *srv = c->srv;

    if (rpc_peer_identity(c->call, &c->peer, why, whylen) < 0)
        return FQ_RPC_PERMISSION_DENIED;
    if (strcmp(c->peer.federation, srv->o.federation) != 0) {
        snprintf(why, whylen, "%s is not a member of federation '%s'",
                 c->peer.uri, srv->o.federation);
        return FQ_RPC_PERMISSION_DENIED;
    }
    if (!(c->method->roles & c->peer.role)) {
        snprintf(why, whylen, "%s (role %s) may not call %s", c->peer.uri,
                 fq_role_name(c->peer.role), c->path);
        return FQ_RPC_PERMISSION_DENIED;
    }
    /* Health answers every party of the federation; the program's own
     * rule applies to its methods. */
    if (srv->o.authorize && c->method->handler != rpc_health_check &&
        srv->o.authorize(srv->o.app, c->method, &c->peer, why, whylen) < 0)
        return FQ_RPC_PERMISSION_DENIED;
    return FQ_RPC_OK;
}

static void
rpc_on_requested(struct fq_rpc_call *c, bool ok)
{
    struct fq_rpc_server *srv = c->srv;
    char why[RPC_MSG_MAX - 64];

    if (!ok) { /* the server is shutting down; this slot is done */
        rpc_call_free(c);
        return;
    }
    c->waiting = false;
    rpc_live_add(srv, 0, -1);
    if (!atomic_load(&srv->stopping))
        rpc_post_request(srv);
    size_t mlen = GRPC_SLICE_LENGTH(c->details.method);
    if (mlen >= sizeof(c->path))
        mlen = sizeof(c->path) - 1;
    memcpy(c->path, GRPC_SLICE_START_PTR(c->details.method), mlen);
    c->path[mlen] = '\0';
    c->deadline = rpc_effective_deadline(srv, c->details.deadline);
    c->method = rpc_find_method(srv, c->path);
    if (!c->method) {
        rpc_reject(c, FQ_RPC_UNIMPLEMENTED, "unknown method %s", c->path);
        return;
    }
    enum fq_rpc_status st = rpc_authorize(c, why, sizeof(why));
    if (st != FQ_RPC_OK) {
        fq_log_warnx("refused call to %s: %s", c->path, why);
        rpc_reject(c, st, "%s", why);
        return;
    }
    if (!c->method->handler) {
        rpc_reject(c, FQ_RPC_UNIMPLEMENTED, "%s is not implemented yet",
                   c->path);
        return;
    }
    c->arena = fq_arena_new(srv->o.call_memory_bytes);
    if (!c->arena) {
        rpc_reject(c, FQ_RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->req_bb;
    c->tag.kind = TAG_RECEIVED;
    if (grpc_call_start_batch(c->call, &op, 1, &c->tag, NULL) != GRPC_CALL_OK)
        rpc_reject(c, FQ_RPC_INTERNAL, "cannot read request");
}

static void
rpc_on_received(struct fq_rpc_call *c, bool ok)
{
    if (!ok || !c->req_bb) {
        rpc_reject(c, FQ_RPC_INVALID_ARGUMENT, "no request message");
        return;
    }
    const ProtobufCMessage *req = fq__rpc_unpack(
        c->req_bb, c->method->req_desc, c->arena, c->srv->o.max_message_bytes);
    if (!req) {
        rpc_reject(c, FQ_RPC_INVALID_ARGUMENT,
                   "request is not a valid %s message",
                   c->method->req_desc->name);
        return;
    }
    c->method->handler(c, req, c->srv->o.app);
}

static void
rpc_post_request(struct fq_rpc_server *srv)
{
    struct fq_rpc_call *c = calloc(1, sizeof(*c));
    if (!c) {
        fq_log_warnx("out of memory posting a call slot, ignoring");
        return;
    }
    c->srv = srv;
    c->tag.kind = TAG_REQUESTED;
    c->waiting = true;
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->md);
    rpc_live_add(srv, 1, 1);
    if (grpc_server_request_call(srv->server, &c->call, &c->details, &c->md,
                                 srv->cq, srv->cq, &c->tag) != GRPC_CALL_OK)
        rpc_call_free(c);
}

/* ---- health -------------------------------------------------------------- */

/* True if service is "" or a service of one of our methods. */
static bool
rpc_known_service(const struct fq_rpc_server *srv, const char *service)
{
    size_t len = strlen(service);
    if (len == 0)
        return true;
    for (size_t i = 0; i < srv->n_methods; i++) {
        const char *p = srv->methods[i].path;
        if (p[0] == '/' && strncmp(p + 1, service, len) == 0 &&
            p[len + 1] == '/')
            return true;
    }
    return false;
}

static void
rpc_health_check(struct fq_rpc_call *call, const ProtobufCMessage *msg,
                 void *app)
{
    const Grpc__Health__V1__HealthCheckRequest *req = (const void *)msg;
    Grpc__Health__V1__HealthCheckResponse resp =
        GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;

    (void)app;
    if (!rpc_known_service(call->srv, req->service)) {
        fq_rpc_call_fail(call, FQ_ENOENT, "unknown service '%.100s'",
                         req->service);
        return;
    }
    resp.status =
        atomic_load(&call->srv->stopping)
            ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
            : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    fq_rpc_call_reply(call, &resp.base);
}

/* ---- child calls --------------------------------------------------------- */

static void
rpc_child_link(struct fq_rpc_server *srv, struct rpc_child *k, bool add)
{
    pthread_mutex_lock(&srv->mu);
    if (add) {
        k->next = srv->children;
        if (k->next)
            k->next->prev = k;
        srv->children = k;
        srv->live++;
    } else {
        if (k->prev)
            k->prev->next = k->next;
        else
            srv->children = k->next;
        if (k->next)
            k->next->prev = k->prev;
    }
    pthread_mutex_unlock(&srv->mu);
}

int
fq_rpc_call_start_child(struct fq_rpc_server *srv, struct fq_rpc_channel *ch,
                        const char *method, const ProtobufCMessage *req,
                        const ProtobufCMessageDescriptor *resp_desc,
                        int64_t deadline, fq_rpc_done_fn done, void *arg)
{
    struct rpc_child *k = calloc(1, sizeof(*k));
    if (!k)
        return FQ_ENOMEM;
    if (fq__rpc_client_ops_init(&k->ops, req) < 0) {
        free(k);
        return FQ_ENOMEM;
    }
    k->tag.kind = TAG_CHILD;
    k->srv = srv;
    k->ch = ch;
    k->resp_desc = resp_desc;
    k->done = done;
    k->arg = arg;
    k->start = fq_rpc_now_ms();
    k->call = fq__rpc_channel_call(ch, method, srv->cq, deadline);
    rpc_child_link(srv, k, true);
    if (grpc_call_start_batch(k->call, k->ops.ops, 6, &k->tag, NULL) !=
        GRPC_CALL_OK)
        fq_fatalx("cannot start a child call on %s", method);
    /* Linked before this check, so either shutdown's sweep cancels it or
     * we see the flag here: no child outlives a drain by its deadline. */
    if (atomic_load(&srv->stopping))
        grpc_call_cancel_with_status(k->call, GRPC_STATUS_CANCELLED,
                                     "server shutting down", NULL);
    return 0;
}

static void
rpc_on_child_done(struct rpc_child *k)
{
    struct fq_rpc_result res;
    struct fq_rpc_server *srv = k->srv;

    rpc_child_link(srv, k, false);
    fq__rpc_client_ops_finish(&k->ops, k->ch, k->resp_desc, k->start, &res);
    grpc_call_unref(k->call);
    k->done(k->arg, &res);
    free(k);
    rpc_live_add(srv, -1, 0);
}

/* ---- workers and lifecycle ----------------------------------------------- */

static void
rpc_dispatch(struct rpc_tag *tag, bool ok)
{
    switch (tag->kind) {
    case TAG_REQUESTED:
        rpc_on_requested((struct fq_rpc_call *)tag, ok);
        break;
    case TAG_RECEIVED:
        rpc_on_received((struct fq_rpc_call *)tag, ok);
        break;
    case TAG_SENT:
        rpc_call_free((struct fq_rpc_call *)tag);
        break;
    case TAG_CHILD:
        rpc_on_child_done((struct rpc_child *)tag);
        break;
    }
}

static void *
rpc_worker(void *arg)
{
    struct fq_rpc_server *srv = arg;

    for (;;) {
        grpc_event ev = grpc_completion_queue_next(
            srv->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type == GRPC_OP_COMPLETE)
            rpc_dispatch(ev.tag, ev.success != 0);
    }
    return NULL;
}

static grpc_server_credentials *
rpc_server_creds(const struct fq_tls_material *tls)
{
    grpc_ssl_pem_key_cert_pair pair = {tls->key_pem, tls->cert_pem};
    grpc_ssl_server_certificate_config *cfg =
        grpc_ssl_server_certificate_config_create(tls->ca_pem, &pair, 1);
    grpc_ssl_server_credentials_options *o =
        grpc_ssl_server_credentials_create_options_using_config(
            GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY, cfg);
    return grpc_ssl_server_credentials_create_with_options(o);
}

static int
rpc_methods_init(struct fq_rpc_server *srv, const struct fq_rpc_server_opts *o)
{
    srv->n_methods = o->n_methods + 1;
    srv->methods = calloc(srv->n_methods, sizeof(*srv->methods));
    if (!srv->methods)
        return FQ_ENOMEM;
    memcpy(srv->methods, o->methods, o->n_methods * sizeof(*o->methods));
    srv->methods[o->n_methods] = (struct fq_rpc_method){
        RPC_HEALTH_CHECK, &grpc__health__v1__health_check_request__descriptor,
        FQ_ROLE_ANY, rpc_health_check};
    return 0;
}

static int
rpc_server_bind(struct fq_rpc_server *srv, char *err, size_t errlen)
{
    grpc_arg args[] = {
        {GRPC_ARG_INTEGER, GRPC_ARG_ALLOW_REUSEPORT, {.integer = 0}},
        {GRPC_ARG_INTEGER,
         GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         {.integer = (int)srv->o.max_message_bytes}},
        {GRPC_ARG_INTEGER,
         GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
         {.integer = (int)srv->o.max_message_bytes}},
    };
    grpc_channel_args cargs = {FQ_ARRAY_LEN(args), args};

    srv->server = grpc_server_create(&cargs, NULL);
    srv->cq = grpc_completion_queue_create_for_next(NULL);
    srv->ctl_cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_server_register_completion_queue(srv->server, srv->cq, NULL);
    grpc_server_credentials *creds = rpc_server_creds(srv->o.tls);
    int port = grpc_server_add_http2_port(srv->server, srv->o.listen, creds);
    grpc_server_credentials_release(creds);
    if (port <= 0) {
        snprintf(err, errlen,
                 "cannot listen on '%s' (address in use or "
                 "invalid)",
                 srv->o.listen);
        return FQ_EIO;
    }
    const char *colon = strrchr(srv->o.listen, ':');
    int hostlen = colon ? (int)(colon - srv->o.listen) : 0;
    snprintf(srv->address, sizeof(srv->address), "%.*s:%d", hostlen,
             srv->o.listen, port);
    return 0;
}

int
fq_rpc_server_new(const struct fq_rpc_server_opts *o,
                  struct fq_rpc_server **ret, char *err, size_t errlen)
{
    struct fq_rpc_server *srv = calloc(1, sizeof(*srv));
    int rc;

    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return FQ_ENOMEM;
    }
    /* The caller's configuration may be replaced by a reload while we
     * serve: keep our own copies of the strings. */
    srv->o = *o;
    snprintf(srv->listen, sizeof(srv->listen), "%s", o->listen);
    snprintf(srv->federation, sizeof(srv->federation), "%s", o->federation);
    srv->o.listen = srv->listen;
    srv->o.federation = srv->federation;
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->idle, NULL);
    atomic_init(&srv->stopping, false);
    if ((rc = rpc_methods_init(srv, o)) < 0 ||
        (rc = rpc_server_bind(srv, err, errlen)) < 0) {
        fq_rpc_server_free(srv);
        return rc;
    }
    *ret = srv;
    return 0;
}

int
fq_rpc_server_start(struct fq_rpc_server *srv)
{
    int n = srv->o.threads > 0 ? srv->o.threads : 2;

    grpc_server_start(srv->server);
    for (int i = 0; i < n * RPC_REQUESTS_PER_THREAD; i++)
        rpc_post_request(srv);
    srv->workers = calloc((size_t)n, sizeof(*srv->workers));
    if (!srv->workers)
        return FQ_ENOMEM;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&srv->workers[i], NULL, rpc_worker, srv) != 0)
            return FQ_ENOMEM;
        srv->n_workers++;
    }
    return 0;
}

static void
rpc_cancel_children(struct fq_rpc_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    for (struct rpc_child *k = srv->children; k; k = k->next)
        grpc_call_cancel_with_status(k->call, GRPC_STATUS_CANCELLED,
                                     "server shutting down", NULL);
    pthread_mutex_unlock(&srv->mu);
}

void
fq_rpc_server_shutdown(struct fq_rpc_server *srv)
{
    int tag;

    atomic_store(&srv->stopping, true);
    grpc_server_shutdown_and_notify(srv->server, srv->ctl_cq, &tag);
    grpc_server_cancel_all_calls(srv->server);
    rpc_cancel_children(srv);
    grpc_completion_queue_pluck(srv->ctl_cq, &tag,
                                gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    pthread_mutex_lock(&srv->mu);
    while (srv->live > 0)
        pthread_cond_wait(&srv->idle, &srv->mu);
    pthread_mutex_unlock(&srv->mu);
    grpc_completion_queue_shutdown(srv->cq);
    for (int i = 0; i < srv->n_workers; i++)
        pthread_join(srv->workers[i], NULL);
    srv->n_workers = 0;
}

void
fq_rpc_server_free(struct fq_rpc_server *srv)
{
    if (!srv)
        return;
    if (srv->server)
        grpc_server_destroy(srv->server);
    if (srv->cq) {
        if (srv->workers == NULL) { /* never started: drain it here */
            grpc_completion_queue_shutdown(srv->cq);
            while (grpc_completion_queue_next(
                       srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
                       .type != GRPC_QUEUE_SHUTDOWN)
                ;
        }
        grpc_completion_queue_destroy(srv->cq);
    }
    if (srv->ctl_cq) {
        grpc_completion_queue_shutdown(srv->ctl_cq);
        while (grpc_completion_queue_pluck(
                   srv->ctl_cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
                   .type != GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(srv->ctl_cq);
    }
    free(srv->workers);
    free(srv->methods);
    pthread_cond_destroy(&srv->idle);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
}
