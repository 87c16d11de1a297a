/* Bounded byte buffer; see fq/buf.h for the contract. */
#include "fq/compat.h"
#include "fq/buf.h"
#include "fq/error.h"

#include <fcntl.h>

void
fq_buf_init(struct fq_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->max = max;
}

void
fq_buf_release(struct fq_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
}

void
fq_buf_reset(struct fq_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* Makes room for len more bytes plus the terminating NUL. */
static int
buf_grow(struct fq_buf *b, size_t len)
{
    if (len > b->max || b->len > b->max - len) {
        fq_buf_release(b);
        return FQ_ETOOBIG;
    }
    size_t need = b->len + len + 1;
    if (need <= b->alloc)
        return 0;
    size_t n = b->alloc ? b->alloc : 64;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    if (n > b->max + 1)
        n = b->max + 1;
    char *p = realloc(b->data, n);
    if (!p) {
        fq_buf_release(b);
        return FQ_ENOMEM;
    }
    b->data = p;
    b->alloc = n;
    return 0;
}

int
fq_buf_append(struct fq_buf *b, const void *data, size_t len)
{
    int rc = buf_grow(b, len);
    if (rc < 0)
        return rc;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int
fq_buf_append_str(struct fq_buf *b, const char *s)
{
    return fq_buf_append(b, s, strlen(s));
}

int
fq_buf_printf(struct fq_buf *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        fq_buf_release(b);
        return FQ_EINVAL;
    }
    if ((size_t)n < sizeof(small))
        return fq_buf_append(b, small, (size_t)n);

    int rc = buf_grow(b, (size_t)n);
    if (rc < 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

const char *
fq_buf_str(const struct fq_buf *b)
{
    return b->data ? b->data : "";
}

size_t
fq_buf_len(const struct fq_buf *b)
{
    return b->len;
}

char *
fq_buf_detach(struct fq_buf *b, size_t *ret_len)
{
    char *p = b->data;
    size_t len = b->len;

    if (!p) {
        p = calloc(1, 1);
        if (!p)
            return NULL;
    }
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    if (ret_len)
        *ret_len = len;
    return p;
}

int
fq_buf_read_file(struct fq_buf *b, const char *path)
{
    char chunk[8192];
    int rc = 0;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? FQ_ENOENT : FQ_EIO;
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = FQ_EIO;
            break;
        }
        if (n == 0)
            break;
        rc = fq_buf_append(b, chunk, (size_t)n);
        if (rc < 0)
            break;
    }
    close(fd);
    if (rc == 0 && !b->data)
        rc = fq_buf_append(b, "", 0);
    return rc;
}
