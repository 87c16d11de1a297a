/* Text for FQ_E* codes; see fq/error.h. */
#include "fq/compat.h"
#include "fq/error.h"

const char *
fq_strerror(int err)
{
    switch (err) {
    case FQ_OK:
        return "success";
    case FQ_ENOMEM:
        return "out of memory";
    case FQ_EINVAL:
        return "invalid argument";
    case FQ_ENOENT:
        return "not found";
    case FQ_EPERM:
        return "permission denied";
    case FQ_EIO:
        return "input/output error";
    case FQ_ETOOBIG:
        return "limit exceeded";
    case FQ_EAGAIN:
        return "try again";
    case FQ_ENOSYS:
        return "not implemented";
    case FQ_ETIMEDOUT:
        return "deadline exceeded";
    case FQ_EUNAVAIL:
        return "unavailable";
    case FQ_ECANCELED:
        return "cancelled";
    case FQ_EPRECOND:
        return "failed precondition";
    case FQ_EPROTO:
        return "protocol error";
    case FQ_EINTERNAL:
        return "internal error";
    default:
        return "unknown error";
    }
}

int
fq_error_from_errno(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
        return FQ_ENOENT;
    case EACCES:
    case EPERM:
    case EROFS:
        return FQ_EPERM;
    case ENOMEM:
        return FQ_ENOMEM;
    case E2BIG:
    case ENAMETOOLONG:
        return FQ_ETOOBIG;
    case EINVAL:
        return FQ_EINVAL;
    default:
        return FQ_EIO;
    }
}
