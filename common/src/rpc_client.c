/*
 * Client half of the RPC layer: channels that verify the server's fedq
 * identity during the handshake, the shared unary call machinery used by
 * child calls (rpc_server.c) and by blocking command-line calls, status
 * mapping and process-wide gRPC setup.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/log.h"
#include "rpc_internal.h"

/*
 * Replies are decoded into an arena capped at this multiple of their wire
 * size: protobuf-c's structs take up to ~45x the bytes of small repeated
 * messages (a partial group is ~7x). The arena grows in chunks, so the cap
 * costs nothing until used, and it still bounds what a peer can make us
 * allocate.
 */
#define RPC_REPLY_ARENA_FACTOR 64
#define RPC_REPLY_ARENA_MIN    (64 * 1024)

enum fq_rpc_status
fq_rpc_status_from_error(int err)
{
    switch (err) {
    case 0:
        return FQ_RPC_OK;
    case FQ_EINVAL:
        return FQ_RPC_INVALID_ARGUMENT;
    case FQ_ENOENT:
        return FQ_RPC_NOT_FOUND;
    case FQ_EPERM:
        return FQ_RPC_PERMISSION_DENIED;
    case FQ_ETOOBIG:
        return FQ_RPC_RESOURCE_EXHAUSTED;
    case FQ_ENOSYS:
        return FQ_RPC_UNIMPLEMENTED;
    case FQ_ETIMEDOUT:
        return FQ_RPC_DEADLINE_EXCEEDED;
    case FQ_EUNAVAIL:
    case FQ_EAGAIN:
        return FQ_RPC_UNAVAILABLE;
    case FQ_ECANCELED:
        return FQ_RPC_CANCELLED;
    case FQ_EPRECOND:
        return FQ_RPC_FAILED_PRECONDITION;
    default:
        return FQ_RPC_INTERNAL;
    }
}

int
fq_rpc_error_from_status(enum fq_rpc_status status)
{
    switch (status) {
    case FQ_RPC_OK:
        return 0;
    case FQ_RPC_INVALID_ARGUMENT:
        return FQ_EINVAL;
    case FQ_RPC_NOT_FOUND:
        return FQ_ENOENT;
    case FQ_RPC_PERMISSION_DENIED:
    case FQ_RPC_UNAUTHENTICATED:
        return FQ_EPERM;
    case FQ_RPC_RESOURCE_EXHAUSTED:
        return FQ_ETOOBIG;
    case FQ_RPC_UNIMPLEMENTED:
        return FQ_ENOSYS;
    case FQ_RPC_DEADLINE_EXCEEDED:
        return FQ_ETIMEDOUT;
    case FQ_RPC_UNAVAILABLE:
        return FQ_EUNAVAIL;
    case FQ_RPC_CANCELLED:
        return FQ_ECANCELED;
    case FQ_RPC_FAILED_PRECONDITION:
        return FQ_EPRECOND;
    default:
        return FQ_EINTERNAL;
    }
}

const char *
fq_rpc_status_name(int status)
{
    static const char *const names[] = {"OK",
                                        "CANCELLED",
                                        "UNKNOWN",
                                        "INVALID_ARGUMENT",
                                        "DEADLINE_EXCEEDED",
                                        "NOT_FOUND",
                                        "ALREADY_EXISTS",
                                        "PERMISSION_DENIED",
                                        "RESOURCE_EXHAUSTED",
                                        "FAILED_PRECONDITION",
                                        "ABORTED",
                                        "OUT_OF_RANGE",
                                        "UNIMPLEMENTED",
                                        "INTERNAL",
                                        "UNAVAILABLE",
                                        "DATA_LOSS",
                                        "UNAUTHENTICATED"};
    if (status < 0 || (size_t)status >= FQ_ARRAY_LEN(names))
        return "UNKNOWN";
    return names[status];
}

int64_t
fq_rpc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* gRPC's own log lines, routed into ours; errors stay visible. */
static void
rpc_gpr_log(gpr_log_func_args *args)
{
    enum fq_log_level level =
        args->severity == GPR_LOG_SEVERITY_ERROR ? FQ_LOG_WARN : FQ_LOG_DEBUG;
    fq_log(level, "grpc: %s", args->message);
}

void
fq_rpc_global_init(void)
{
    gpr_set_log_function(rpc_gpr_log);
    grpc_init();
}

void
fq_rpc_global_shutdown(void)
{
    grpc_shutdown_blocking();
}

gpr_timespec
fq__rpc_deadline(int64_t deadline_ms)
{
    int64_t left = deadline_ms - fq_rpc_now_ms();
    if (left < 0)
        left = 0;
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_millis(left, GPR_TIMESPAN));
}

grpc_byte_buffer *
fq__rpc_pack(const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return NULL;
    protobuf_c_message_pack(msg, buf);
    grpc_slice s = grpc_slice_new(buf, len, free);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

ProtobufCMessage *
fq__rpc_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc,
               struct fq_arena *arena, size_t max)
{
    grpc_byte_buffer_reader r;
    ProtobufCMessage *msg = NULL;

    if (!bb || grpc_byte_buffer_length(bb) > max)
        return NULL;
    if (!grpc_byte_buffer_reader_init(&r, bb))
        return NULL;
    grpc_slice s = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    msg = protobuf_c_message_unpack(desc, fq_arena_pb_allocator(arena),
                                    GRPC_SLICE_LENGTH(s),
                                    GRPC_SLICE_START_PTR(s));
    grpc_slice_unref(s);
    return msg;
}

/* ---- identity check during the handshake -------------------------------- */

static int
rpc_verify_peer(const char *target_name, const char *peer_pem, void *userdata)
{
    struct rpc_verify *v = userdata;
    struct fq_identity id;
    char why[200];
    int refuse;

    (void)target_name;
    pthread_mutex_lock(&v->mu);
    if (fq_identity_from_pem(peer_pem, strlen(peer_pem), &id, why,
                             sizeof(why)) < 0) {
        snprintf(v->seen, sizeof(v->seen), "(%s)", why);
        refuse = 1;
    } else {
        refuse = strcmp(id.uri, v->expect) != 0;
        snprintf(v->seen, sizeof(v->seen), "%s", id.uri);
    }
    v->refused = refuse;
    pthread_mutex_unlock(&v->mu);
    return refuse;
}

static void
rpc_verify_free(void *userdata)
{
    struct rpc_verify *v = userdata;
    pthread_mutex_destroy(&v->mu);
    free(v);
}

static grpc_channel_credentials *
rpc_channel_creds(const struct fq_tls_material *tls, struct rpc_verify *v)
{
    grpc_ssl_pem_key_cert_pair pair = {tls->key_pem, tls->cert_pem};
    grpc_ssl_verify_peer_options vo = {
        .verify_peer_callback = rpc_verify_peer,
        .verify_peer_callback_userdata = v,
        .verify_peer_destruct = rpc_verify_free,
    };
    return grpc_ssl_credentials_create_ex(tls->ca_pem, &pair, &vo, NULL);
}

int
fq_rpc_channel_open(const struct fq_rpc_channel_opts *o,
                    struct fq_rpc_channel **ret, char *err, size_t errlen)
{
    struct fq_identity id;
    struct fq_rpc_channel *c = calloc(1, sizeof(*c));
    struct rpc_verify *v = calloc(1, sizeof(*v));

    if (!c || !v) {
        free(c);
        free(v);
        snprintf(err, errlen, "out of memory");
        return FQ_ENOMEM;
    }
    if (fq_identity_parse(o->expect_identity, strlen(o->expect_identity), &id) <
            0 ||
        strlen(o->target) >= sizeof(c->target)) {
        snprintf(err, errlen, "bad target '%s' or identity '%s'", o->target,
                 o->expect_identity);
        free(c);
        free(v);
        return FQ_EINVAL;
    }
    pthread_mutex_init(&v->mu, NULL);
    snprintf(v->expect, sizeof(v->expect), "%s", o->expect_identity);
    snprintf(c->target, sizeof(c->target), "%s", o->target);
    c->max_message_bytes = o->max_message_bytes;
    c->verify = v;

    /* Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC also takes it as the
     * minimum connect timeout, and a small one fails distant agents. */
    grpc_arg args[] = {
        {GRPC_ARG_INTEGER,
         GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
         {.integer = o->max_backoff_ms > 0 ? o->max_backoff_ms : 1000}},
        {GRPC_ARG_INTEGER,
         GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
         {.integer = 100}},
        {GRPC_ARG_INTEGER,
         GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         {.integer = (int)o->max_message_bytes}},
        {GRPC_ARG_INTEGER,
         GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
         {.integer = (int)o->max_message_bytes}},
        {GRPC_ARG_INTEGER, GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, {.integer = 1}},
    };
    grpc_channel_args cargs = {FQ_ARRAY_LEN(args), args};
    grpc_channel_credentials *creds = rpc_channel_creds(o->tls, v);
    c->ch = grpc_channel_create(o->target, creds, &cargs);
    grpc_channel_credentials_release(creds);
    *ret = c;
    return 0;
}

void
fq_rpc_channel_free(struct fq_rpc_channel *ch)
{
    if (!ch)
        return;
    grpc_channel_destroy(ch->ch);
    free(ch);
}

const char *
fq_rpc_channel_target(const struct fq_rpc_channel *ch)
{
    return ch->target;
}

grpc_call *
fq__rpc_channel_call(struct fq_rpc_channel *ch, const char *method,
                     grpc_completion_queue *cq, int64_t deadline)
{
    grpc_slice m = grpc_slice_from_static_string(method);
    return grpc_channel_create_call(ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                    m, NULL, fq__rpc_deadline(deadline), NULL);
}

/* ---- the unary call ------------------------------------------------------ */

int
fq__rpc_client_ops_init(struct rpc_client_ops *o, const ProtobufCMessage *req)
{
    memset(o, 0, sizeof(*o));
    o->send_bb = fq__rpc_pack(req);
    if (!o->send_bb)
        return FQ_ENOMEM;
    grpc_metadata_array_init(&o->init_md);
    grpc_metadata_array_init(&o->trail_md);
    o->ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    o->ops[1].op = GRPC_OP_SEND_MESSAGE;
    o->ops[1].data.send_message.send_message = o->send_bb;
    o->ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    o->ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    o->ops[3].data.recv_initial_metadata.recv_initial_metadata = &o->init_md;
    o->ops[4].op = GRPC_OP_RECV_MESSAGE;
    o->ops[4].data.recv_message.recv_message = &o->recv_bb;
    o->ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    o->ops[5].data.recv_status_on_client.trailing_metadata = &o->trail_md;
    o->ops[5].data.recv_status_on_client.status = &o->status;
    o->ops[5].data.recv_status_on_client.status_details = &o->details;
    o->ops[5].data.recv_status_on_client.error_string = &o->error_string;
    return 0;
}

/*
 * gRPC reports a failed TLS handshake only as text inside UNAVAILABLE.
 * These markers are gRPC 1.51's (the integration tests pin them down); a
 * plain connection failure, such as nothing listening, has none of them.
 */
static bool
rpc_handshake_failed(const char *msg)
{
    return strstr(msg, "andshake") || strstr(msg, "Verify peer callback") ||
           strstr(msg, "certificate verify failed");
}

/*
 * A handshake that failed means a party was refused, not an outage: say
 * which identity the server showed when our own check refused it, or that
 * TLS refused its certificate (another CA, no serverAuth, expired).
 */
static void
rpc_note_refusal(struct fq_rpc_channel *ch, struct fq_rpc_result *res)
{
    struct rpc_verify *v = ch->verify;
    char seen[sizeof(v->seen)], expect[sizeof(v->expect)];
    bool refused;

    if (res->status != FQ_RPC_UNAVAILABLE ||
        !rpc_handshake_failed(res->message))
        return;
    pthread_mutex_lock(&v->mu);
    refused = v->refused;
    memcpy(seen, v->seen, sizeof(seen));
    memcpy(expect, v->expect, sizeof(expect));
    pthread_mutex_unlock(&v->mu);
    res->status = FQ_RPC_UNAUTHENTICATED;
    if (refused)
        res->message = fq_arena_printf(res->arena,
                                       "server at %s presented identity %s, "
                                       "expected %s",
                                       ch->target, seen, expect);
    else
        res->message = fq_arena_printf(res->arena,
                                       "TLS handshake with %s failed (its "
                                       "certificate, or ours, was refused): "
                                       "%s",
                                       ch->target, res->message);
    if (!res->message)
        res->message = "TLS handshake failed";
}

static void
rpc_result_decode(struct rpc_client_ops *o, struct fq_rpc_channel *ch,
                  const ProtobufCMessageDescriptor *desc,
                  struct fq_rpc_result *res)
{
    char *details = grpc_slice_to_c_string(o->details);
    res->status = (int)o->status;
    res->message = fq_arena_strdup(res->arena, details ? details : "");
    gpr_free(details);
    if (res->status != FQ_RPC_OK) {
        rpc_note_refusal(ch, res);
        return;
    }
    res->resp =
        fq__rpc_unpack(o->recv_bb, desc, res->arena, ch->max_message_bytes);
    if (!res->resp) {
        res->status = FQ_RPC_INTERNAL;
        res->message = "reply is missing or does not decode";
    }
}

void
fq__rpc_client_ops_finish(struct rpc_client_ops *o, struct fq_rpc_channel *ch,
                          const ProtobufCMessageDescriptor *resp_desc,
                          int64_t start_ms, struct fq_rpc_result *res)
{
    size_t blen = o->recv_bb ? grpc_byte_buffer_length(o->recv_bb) : 0;
    size_t cap = blen * RPC_REPLY_ARENA_FACTOR + RPC_REPLY_ARENA_MIN;

    memset(res, 0, sizeof(*res));
    res->arena = fq_arena_new(cap);
    res->latency_ms = fq_rpc_now_ms() - start_ms;
    if (res->arena)
        rpc_result_decode(o, ch, resp_desc, res);
    if (!res->message) {
        res->status = FQ_RPC_INTERNAL;
        res->message = "out of memory";
        res->resp = NULL;
    }
    grpc_slice_unref(o->details);
    gpr_free((void *)o->error_string);
    grpc_metadata_array_destroy(&o->init_md);
    grpc_metadata_array_destroy(&o->trail_md);
    grpc_byte_buffer_destroy(o->send_bb);
    if (o->recv_bb)
        grpc_byte_buffer_destroy(o->recv_bb);
}

int
fq_rpc_call_blocking(struct fq_rpc_channel *ch, const char *method,
                     const ProtobufCMessage *req,
                     const ProtobufCMessageDescriptor *resp_desc,
                     int64_t timeout_ms, struct fq_rpc_result *res)
{
    struct rpc_client_ops o;
    int64_t start = fq_rpc_now_ms();
    int rc = FQ_EINTERNAL;

    if (fq__rpc_client_ops_init(&o, req) < 0)
        return FQ_ENOMEM;
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_call *call = fq__rpc_channel_call(ch, method, cq, start + timeout_ms);
    if (grpc_call_start_batch(call, o.ops, 6, &o, NULL) != GRPC_CALL_OK) {
        grpc_byte_buffer_destroy(o.send_bb);
        grpc_metadata_array_destroy(&o.init_md);
        grpc_metadata_array_destroy(&o.trail_md);
        goto out;
    }
    grpc_completion_queue_pluck(cq, &o, gpr_inf_future(GPR_CLOCK_REALTIME),
                                NULL);
    fq__rpc_client_ops_finish(&o, ch, resp_desc, start, res);
    rc = 0;
out:
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL,
                                       gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
               .type != GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
    return rc;
}
