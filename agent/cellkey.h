/*
 * The agency's cell-key secret and the record keys derived from it (the
 * cell-key method of disclosure control, docs/disclosure-control.md).
 *
 * A person's record key is the first 32 bits (big-endian) of
 * HMAC-SHA-256(secret, "fedq record key v1" || 0x00 || identifier); its
 * first 64 bits are the person's tag in the differencing ledger. A
 * cell's key is the sum, mod 2^32, of its contributors' record keys; the
 * gateway adds the agencies' cell keys and draws the cell's noise from
 * the federation's perturbation table with it. Only the agency holds the
 * secret, so nobody else can tell which contributors a cell key stands
 * for, while the same contributors always give the same key.
 */
#ifndef AG_CELLKEY_H
#define AG_CELLKEY_H

#include "fq/compat.h"

#include <openssl/evp.h>

#define AG_CELL_SECRET_LEN 32 /* bytes: 64 hex digits in the file */

/* The secret with HMAC's inner and outer hash states ready, so that a
 * record key costs two hash updates. Read-only once loaded: threads share
 * it. */
struct ag_cell_secret {
    bool loaded;
    EVP_MD_CTX *inner, *outer; /* after the padded key */
};

/*
 * Reads the secret from path: 64 hex digits (and an optional newline),
 * in a file not readable by group or others. 0, or FQ_ENOENT, FQ_EPERM
 * (readable by others), FQ_EINVAL (not 64 hex digits), FQ_EIO, FQ_ENOMEM;
 * the message names the file. Release with ag_cell_secret_release.
 */
int ag_cell_secret_load(const char *path, struct ag_cell_secret *ret, char *err,
                        size_t errlen);
/* The secret from its 32 bytes (tests, and the loader). */
int ag_cell_secret_set(struct ag_cell_secret *s,
                       const uint8_t key[AG_CELL_SECRET_LEN]);
void ag_cell_secret_release(struct ag_cell_secret *s);

/* The person tag of the identifier id (len bytes): the first 64 bits of
 * the HMAC; the differencing ledger names persons by it. 0 if s is NULL or
 * not loaded (a test without a secret). Thread-safe. */
uint64_t ag_person_tag(const struct ag_cell_secret *s, const char *id,
                       size_t len);

/* The record key: the tag's first 32 bits. */
static inline uint32_t
ag_record_key(const struct ag_cell_secret *s, const char *id, size_t len)
{
    return (uint32_t)(ag_person_tag(s, id, len) >> 32);
}

#endif
