/*
 * Error codes shared by every fedq module.
 *
 * A function that can fail returns 0 or one negative FQ_E* code. errno values
 * are converted where the syscall fails (return -errno) and never read across
 * a module boundary. The codes map onto gRPC status codes in exactly one
 * place, the RPC edge (fq_rpc_status_from_error in common/src/rpc_server.c).
 */
#ifndef FQ_ERROR_H
#define FQ_ERROR_H

#include <errno.h>

enum fq_error {
    FQ_OK = 0,
    FQ_ENOMEM = -ENOMEM,         /* allocation failed */
    FQ_EINVAL = -EINVAL,         /* malformed input: query, config, message */
    FQ_ENOENT = -ENOENT,         /* no such file, dataset, agency */
    FQ_EPERM = -EPERM,           /* identity or role not allowed */
    FQ_EIO = -EIO,               /* file or database I/O failed */
    FQ_ETOOBIG = -E2BIG,         /* a configured cap was exceeded */
    FQ_EAGAIN = -EAGAIN,         /* try again later */
    FQ_ENOSYS = -ENOSYS,         /* not implemented yet */
    FQ_ETIMEDOUT = -ETIMEDOUT,   /* deadline passed */
    FQ_EUNAVAIL = -EHOSTUNREACH, /* a party could not be reached */
    FQ_ECANCELED = -ECANCELED,   /* shutting down or cancelled by the peer */
    FQ_EPRECOND = -ENOTRECOVERABLE, /* state does not allow it (expired...) */
    FQ_EPROTO = -EPROTO,            /* a peer broke the protocol */
    FQ_EINTERNAL = -1000,           /* broken invariant caught at runtime */
};

/* The FQ_E* code for an errno value (FQ_EIO for anything without one). */
int fq_error_from_errno(int e);

/* Short human-readable text for an FQ_E* code; never NULL, never freed. */
const char *fq_strerror(int err);

#endif
