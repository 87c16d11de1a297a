/*
 * Internals shared by rpc_server.c and rpc_client.c; never included outside
 * common/src. This and those two files are the only places that include
 * gRPC headers.
 */
#ifndef FQ_RPC_INTERNAL_H
#define FQ_RPC_INTERNAL_H

#include "fq/compat.h"
#include "fq/rpc.h"

#include <pthread.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

/* Identity check state shared with gRPC's handshake callback. */
struct rpc_verify {
    pthread_mutex_t mu;
    char expect[FQ_IDENTITY_MAX];
    char seen[FQ_IDENTITY_MAX + 64]; /* what the last refused peer showed */
    bool refused;                    /* the last handshake was refused */
};

struct fq_rpc_channel {
    grpc_channel *ch;
    char target[256];
    size_t max_message_bytes;
    struct rpc_verify *verify; /* owned by gRPC; freed with the creds */
};

/* Everything a finished client call (child or blocking) needs. */
struct rpc_client_ops {
    grpc_op ops[6];
    grpc_byte_buffer *send_bb;
    grpc_byte_buffer *recv_bb;
    grpc_metadata_array init_md;
    grpc_metadata_array trail_md;
    grpc_status_code status;
    grpc_slice details;
    const char *error_string;
};

/* Packs msg into a new byte buffer; NULL when out of memory. */
grpc_byte_buffer *fq__rpc_pack(const ProtobufCMessage *msg);
/* Decodes bb into arena; NULL if it does not decode or is over max. */
ProtobufCMessage *fq__rpc_unpack(grpc_byte_buffer *bb,
                                 const ProtobufCMessageDescriptor *desc,
                                 struct fq_arena *arena, size_t max);
/* Absolute fq_rpc_now_ms deadline to a gRPC monotonic time. */
gpr_timespec fq__rpc_deadline(int64_t deadline_ms);

/* Sets up the six ops of a unary client call around req. */
int fq__rpc_client_ops_init(struct rpc_client_ops *o,
                            const ProtobufCMessage *req);
/* Turns the finished ops into a result (new arena) and releases them. */
void fq__rpc_client_ops_finish(struct rpc_client_ops *o,
                               struct fq_rpc_channel *ch,
                               const ProtobufCMessageDescriptor *resp_desc,
                               int64_t start_ms, struct fq_rpc_result *res);
/* Creates a call on ch for method, delivering events to cq. */
grpc_call *fq__rpc_channel_call(struct fq_rpc_channel *ch, const char *method,
                                grpc_completion_queue *cq, int64_t deadline);

#endif
