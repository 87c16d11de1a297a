/*
 * The RPC layer: the only fedq code that includes gRPC headers. Programs
 * see protobuf-c messages, FQ_E* codes and federation identities.
 *
 * Server: one shared completion queue polled by N worker threads (per-thread
 * queues would pin each connection to one thread). Every call is handled
 * asynchronously: the handler gets the decoded request and must finish the
 * call exactly once, with fq_rpc_call_reply or fq_rpc_call_fail, from any
 * thread and at any later time. A handler that needs other parties starts
 * child calls with fq_rpc_call_start_child; their completions run on the
 * same workers, so a fan-out never blocks a worker.
 *
 * Before a handler runs, the layer has checked the peer: mutual TLS with a
 * certificate from the federation CA (enforced by the transport), exactly
 * one URI SAN naming a party of this federation, a role the method allows,
 * and the program's own authorize hook. Otherwise the call ends with
 * PERMISSION_DENIED and the handler never sees it.
 *
 * Every server also answers grpc.health.v1.Health/Check for any
 * authenticated member of the federation.
 *
 * Client: long-lived channels that check the server's identity during the
 * TLS handshake (a server whose certificate names another party is refused
 * before any request is sent), with a short reconnect backoff so a returning
 * peer is used again within seconds.
 */
#ifndef FQ_RPC_H
#define FQ_RPC_H

#include "fq/compat.h"
#include "fq/identity.h"
#include "fq/tls.h"

#include <protobuf-c/protobuf-c.h>

struct fq_arena;
struct fq_rpc_server;
struct fq_rpc_call;
struct fq_rpc_channel;

/* gRPC status codes, as numbers on the wire (no gRPC header needed). */
enum fq_rpc_status {
    FQ_RPC_OK = 0,
    FQ_RPC_CANCELLED = 1,
    FQ_RPC_UNKNOWN = 2,
    FQ_RPC_INVALID_ARGUMENT = 3,
    FQ_RPC_DEADLINE_EXCEEDED = 4,
    FQ_RPC_NOT_FOUND = 5,
    FQ_RPC_PERMISSION_DENIED = 7,
    FQ_RPC_RESOURCE_EXHAUSTED = 8,
    FQ_RPC_FAILED_PRECONDITION = 9,
    FQ_RPC_UNIMPLEMENTED = 12,
    FQ_RPC_INTERNAL = 13,
    FQ_RPC_UNAVAILABLE = 14,
    FQ_RPC_UNAUTHENTICATED = 16,
};

/* The one mapping between FQ_E* codes and gRPC status codes. */
enum fq_rpc_status fq_rpc_status_from_error(int err);
int fq_rpc_error_from_status(enum fq_rpc_status status);
/* "OK", "INVALID_ARGUMENT", ...; never NULL. */
const char *fq_rpc_status_name(int status);

/* Process-wide setup and teardown of gRPC; call once each from main. */
void fq_rpc_global_init(void);
void fq_rpc_global_shutdown(void);

/* Monotonic clock in milliseconds, the clock of every deadline here. */
int64_t fq_rpc_now_ms(void);

/* ---- server ------------------------------------------------------------ */

typedef void (*fq_rpc_handler_fn)(struct fq_rpc_call *call,
                                  const ProtobufCMessage *req, void *app);

struct fq_rpc_method {
    const char *path;                           /* "/fedq.v1.Agent/Describe" */
    const ProtobufCMessageDescriptor *req_desc; /* request type */
    unsigned roles;            /* FQ_ROLE_* mask of callers allowed */
    fq_rpc_handler_fn handler; /* NULL: answers UNIMPLEMENTED */
};

/*
 * Optional program-level check after the role check, e.g. "the gateway
 * identity configured for this agent". Returns 0 to allow, or FQ_EPERM
 * with a reason in why.
 */
typedef int (*fq_rpc_authorize_fn)(void *app, const struct fq_rpc_method *m,
                                   const struct fq_identity *peer, char *why,
                                   size_t whylen);

struct fq_rpc_server_opts {
    const char *listen; /* "127.0.0.1:0", "0.0.0.0:7443", ... */
    const struct fq_tls_material *tls;
    const char *federation; /* peers must belong to it */
    const struct fq_rpc_method *methods;
    size_t n_methods;
    fq_rpc_authorize_fn authorize; /* may be NULL */
    void *app;                     /* passed to handlers and authorize */
    int threads;                   /* worker threads polling the queue */
    int64_t default_deadline_ms;   /* when the client sets none */
    int64_t max_deadline_ms;       /* cap on any client deadline */
    size_t max_message_bytes;      /* larger requests: RESOURCE_EXHAUSTED */
    size_t call_memory_bytes;      /* cap on one call's arena */
};

/*
 * Creates and binds a server; nothing is served until fq_rpc_server_start.
 * 0, or a negative FQ_E* code with a reason in err. Free with
 * fq_rpc_server_free after fq_rpc_server_shutdown.
 */
int fq_rpc_server_new(const struct fq_rpc_server_opts *opts,
                      struct fq_rpc_server **ret, char *err, size_t errlen);
/* The bound address, e.g. "127.0.0.1:40123"; owned by the server. */
const char *fq_rpc_server_address(const struct fq_rpc_server *srv);
/* Starts the worker threads. 0 or a negative FQ_E* code. */
int fq_rpc_server_start(struct fq_rpc_server *srv);
/*
 * Stops accepting calls, cancels calls in flight (incoming and child
 * calls), waits until every call context is gone, drains the queue and
 * joins the workers. Health checks answer NOT_SERVING while it runs.
 */
void fq_rpc_server_shutdown(struct fq_rpc_server *srv);
void fq_rpc_server_free(struct fq_rpc_server *srv);
/* Calls currently in flight (incoming and child), for metrics and tests. */
int fq_rpc_server_live_calls(const struct fq_rpc_server *srv);

/* ---- one incoming call (valid until it is finished) -------------------- */

const struct fq_identity *fq_rpc_call_peer(const struct fq_rpc_call *call);
/* The call's arena: request, reply and scratch; freed when the call ends. */
struct fq_arena *fq_rpc_call_arena(struct fq_rpc_call *call);
/* Absolute deadline (fq_rpc_now_ms clock): min(client's, now + cap). */
int64_t fq_rpc_call_deadline(const struct fq_rpc_call *call);
const char *fq_rpc_call_method(const struct fq_rpc_call *call);

/*
 * Finishing a call hands it back to the RPC layer, which may free it and
 * its arena at once, on another thread: touch nothing of the call or its
 * arena afterwards.
 */
/* Finishes the call with OK and resp (packed at once; caller keeps resp). */
void fq_rpc_call_reply(struct fq_rpc_call *call, const ProtobufCMessage *resp);
/* Finishes the call with the status mapped from err and a message. */
void fq_rpc_call_fail(struct fq_rpc_call *call, int err, const char *fmt, ...)
    FQ_PRINTF(3, 4);

/* ---- client channels ---------------------------------------------------- */

struct fq_rpc_channel_opts {
    const char *target; /* "ipv4:127.0.0.1:7443", "host:port" */
    const struct fq_tls_material *tls;
    const char *expect_identity; /* spiffe URI the server must present */
    size_t max_message_bytes;    /* cap on replies */
    int max_backoff_ms;          /* reconnect backoff cap (default 1000) */
};

/* Opens a channel (connects lazily). 0 or FQ_E* with a reason in err. */
int fq_rpc_channel_open(const struct fq_rpc_channel_opts *opts,
                        struct fq_rpc_channel **ret, char *err, size_t errlen);
void fq_rpc_channel_free(struct fq_rpc_channel *ch);
const char *fq_rpc_channel_target(const struct fq_rpc_channel *ch);

/* Outcome of a client call. */
struct fq_rpc_result {
    int status;             /* enum fq_rpc_status */
    const char *message;    /* status details, or "" ; in arena */
    ProtobufCMessage *resp; /* decoded reply on OK, else NULL; in arena */
    struct fq_arena *arena; /* owns message and resp */
    int64_t latency_ms;
};

/*
 * Child call from inside a server (typically from a handler): starts method
 * on ch with the given absolute deadline and returns at once. done runs
 * exactly once on a worker thread, and takes ownership of res->arena (free
 * it with fq_arena_free). A reply larger than the channel's cap, or one that
 * does not decode as resp_desc, is reported as an error status.
 * 0, or a negative FQ_E* code (then done is never called).
 */
typedef void (*fq_rpc_done_fn)(void *arg, struct fq_rpc_result *res);
int fq_rpc_call_start_child(struct fq_rpc_server *srv,
                            struct fq_rpc_channel *ch, const char *method,
                            const ProtobufCMessage *req,
                            const ProtobufCMessageDescriptor *resp_desc,
                            int64_t deadline, fq_rpc_done_fn done, void *arg);

/*
 * Blocking call for command-line clients. Fills res (the caller frees
 * res->arena). Returns 0 when the call completed with any status (see
 * res->status), or a negative FQ_E* code if it could not be made.
 */
int fq_rpc_call_blocking(struct fq_rpc_channel *ch, const char *method,
                         const ProtobufCMessage *req,
                         const ProtobufCMessageDescriptor *resp_desc,
                         int64_t timeout_ms, struct fq_rpc_result *res);

#endif
