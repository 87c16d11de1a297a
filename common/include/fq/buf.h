/*
 * Bounded, growable byte buffer (after curl's dynbuf and Git's strbuf).
 *
 * Invariants: the data is always NUL-terminated; len never exceeds the cap
 * given to fq_buf_init, which is mandatory so every use fed from the network
 * states its limit where it is written. On any append failure the buffer is
 * released, so callers never hold a half-grown one.
 *
 * Fields are private; read them through fq_buf_str and fq_buf_len.
 */
#ifndef FQ_BUF_H
#define FQ_BUF_H

#include "fq/compat.h"

struct fq_buf {
    char *data;   /* private: NULL until the first append */
    size_t len;   /* private */
    size_t alloc; /* private */
    size_t max;   /* private: cap on len, fixed at init */
};

/* Cannot fail; allocates nothing. max must be > 0. */
void fq_buf_init(struct fq_buf *b, size_t max);
/* Frees the contents; the buffer may be reused after fq_buf_init. */
void fq_buf_release(struct fq_buf *b);
/* Empties the buffer but keeps its memory and cap. */
void fq_buf_reset(struct fq_buf *b);

/* 0, FQ_ENOMEM or FQ_ETOOBIG (buffer released on failure). */
int fq_buf_append(struct fq_buf *b, const void *data, size_t len);
int fq_buf_append_str(struct fq_buf *b, const char *s);
int fq_buf_printf(struct fq_buf *b, const char *fmt, ...) FQ_PRINTF(2, 3);

/* Always a valid string ("" when empty); owned by the buffer. */
const char *fq_buf_str(const struct fq_buf *b);
size_t fq_buf_len(const struct fq_buf *b);

/*
 * Takes the bytes out: returns a NUL-terminated heap string the caller frees
 * with free(), or NULL on allocation failure. The buffer is left empty.
 */
char *fq_buf_detach(struct fq_buf *b, size_t *ret_len);

/*
 * Reads a whole file into b, failing with FQ_ETOOBIG if it is larger than
 * the buffer's cap. 0, or FQ_ENOENT / FQ_EIO / FQ_ENOMEM / FQ_ETOOBIG.
 */
int fq_buf_read_file(struct fq_buf *b, const char *path);

#endif
