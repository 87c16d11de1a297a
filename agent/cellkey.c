/*
 * Record keys: HMAC-SHA-256 written out as its two hashes (RFC 2104), so
 * the padded key is hashed once at load and each record key copies the
 * prepared states instead of keying a MAC context per person (an extract
 * holds up to millions of persons).
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "cellkey.h"

#include <fcntl.h>
#include <sys/stat.h>

#define HMAC_BLOCK 64 /* SHA-256's block */
#define DOMAIN     "fedq record key v1"

static int
hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* 64 hex digits, then at most one newline. */
static bool
parse_hex(const char *text, size_t n, uint8_t key[AG_CELL_SECRET_LEN])
{
    if (n > 0 && text[n - 1] == '\n')
        n--;
    if (n != 2 * AG_CELL_SECRET_LEN)
        return false;
    for (size_t i = 0; i < AG_CELL_SECRET_LEN; i++) {
        int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        key[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/* The file's bytes (at most cap), refusing one others may read: whoever
 * holds the secret can tell which persons a cell key stands for. */
static int
read_private(const char *path, char *buf, size_t cap, size_t *ret_n, char *err,
             size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    ssize_t n;
    int rc;

    if (fd < 0) {
        rc = fq_error_from_errno(errno);
        snprintf(err, errlen, "cannot read cell-key secret '%s': %s", path,
                 strerror(errno));
        return rc;
    }
    if (fstat(fd, &st) < 0 || (st.st_mode & 077)) {
        snprintf(err, errlen,
                 "cell-key secret '%s' is readable by group or others "
                 "(chmod 600 it)",
                 path);
        close(fd);
        return FQ_EPERM;
    }
    n = read(fd, buf, cap);
    rc = n < 0 ? fq_error_from_errno(errno) : 0;
    if (rc < 0)
        snprintf(err, errlen, "cannot read cell-key secret '%s': %s", path,
                 strerror(errno));
    close(fd);
    if (rc == 0)
        *ret_n = (size_t)n;
    return rc;
}

int
ag_cell_secret_load(const char *path, struct ag_cell_secret *ret, char *err,
                    size_t errlen)
{
    char text[2 * AG_CELL_SECRET_LEN + 8];
    uint8_t key[AG_CELL_SECRET_LEN];
    size_t n = 0;
    int rc = read_private(path, text, sizeof(text), &n, err, errlen);

    if (rc < 0)
        return rc;
    if (!parse_hex(text, n, key)) {
        snprintf(err, errlen,
                 "cell-key secret '%s' must hold 64 hex digits (256 bits; "
                 "deploy/pki.sh cell-key makes one)",
                 path);
        rc = FQ_EINVAL;
    } else if ((rc = ag_cell_secret_set(ret, key)) < 0) {
        snprintf(err, errlen, "out of memory loading the cell-key secret");
    }
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(text, sizeof(text));
    return rc;
}

/* A SHA-256 state after the key xor pad. */
static EVP_MD_CTX *
padded(const uint8_t key[AG_CELL_SECRET_LEN], uint8_t pad)
{
    uint8_t block[HMAC_BLOCK];
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    memset(block, pad, sizeof(block));
    for (size_t i = 0; i < AG_CELL_SECRET_LEN; i++)
        block[i] ^= key[i];
    if (md && (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
               EVP_DigestUpdate(md, block, sizeof(block)) != 1)) {
        EVP_MD_CTX_free(md);
        md = NULL;
    }
    OPENSSL_cleanse(block, sizeof(block));
    return md;
}

int
ag_cell_secret_set(struct ag_cell_secret *s,
                   const uint8_t key[AG_CELL_SECRET_LEN])
{
    struct ag_cell_secret n = {true, padded(key, 0x36), padded(key, 0x5c)};

    if (!n.inner || !n.outer) {
        ag_cell_secret_release(&n);
        return FQ_ENOMEM;
    }
    *s = n;
    return 0;
}

void
ag_cell_secret_release(struct ag_cell_secret *s)
{
    EVP_MD_CTX_free(s->inner);
    EVP_MD_CTX_free(s->outer);
    memset(s, 0, sizeof(*s));
}

uint64_t
ag_person_tag(const struct ag_cell_secret *s, const char *id, size_t len)
{
    uint8_t ih[32], oh[32];
    unsigned int n = 0;
    EVP_MD_CTX *md;
    uint64_t k = 0;

    if (!s || !s->loaded || !(md = EVP_MD_CTX_new()))
        return 0;
    if (EVP_MD_CTX_copy_ex(md, s->inner) == 1 &&
        EVP_DigestUpdate(md, DOMAIN, sizeof(DOMAIN)) == 1 && /* with NUL */
        EVP_DigestUpdate(md, id, len) == 1 &&
        EVP_DigestFinal_ex(md, ih, &n) == 1 &&
        EVP_MD_CTX_copy_ex(md, s->outer) == 1 &&
        EVP_DigestUpdate(md, ih, sizeof(ih)) == 1 &&
        EVP_DigestFinal_ex(md, oh, &n) == 1) {
        for (int i = 0; i < 8; i++)
            k = k << 8 | oh[i];
    }
    EVP_MD_CTX_free(md);
    return k;
}
