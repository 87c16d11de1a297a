/*
 * Policy signatures: Ed25519 over the exact bytes of the policy file
 * (OpenSSL 3, EVP_DigestSign/Verify with no digest, as Ed25519 hashes
 * internally), kept next to it as one line "ed25519 BASE64\n".
 *
 * Invariants: what fq_policy_load parses is the very buffer that verified,
 * never a second read of the file; a signature file is accepted only in
 * its one canonical form; the private key must be mode 0600 like the TLS
 * keys, and its PEM text is wiped before it is freed.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/buf.h"
#include "fq/daemon.h"
#include "fq/error.h"
#include "fq/policy.h"

#include <libgen.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#define SIG_PREFIX   "ed25519 "
#define SIG_BYTES    64
#define SIG_B64      88 /* 4 * ceil(64 / 3) */
#define SIG_LINE     (sizeof(SIG_PREFIX) - 1 + SIG_B64 + 1)
#define SIG_FILE_MAX 4096 /* more is certainly not a signature */
_Static_assert(SIG_LINE < FQ_POLICY_SIG_MAX, "a signature line fits");
#define KEY_FILE_MAX (16 * 1024)
#define PATH_MAX_SIG 4096

/* path + ".sig" when sig_path is NULL; false if it does not fit. */
static bool
sig_path_of(const char *path, const char *sig_path, char *out, size_t outlen)
{
    int n = sig_path
                ? snprintf(out, outlen, "%s", sig_path)
                : snprintf(out, outlen, "%s%s", path, FQ_POLICY_SIG_SUFFIX);
    return n >= 0 && (size_t)n < outlen;
}

/* Reads the policy's bytes into b (initialised here; the caller releases
 * it) and names its signature file in sp. */
static int
read_policy(const char *path, const char *sig_path, char sp[PATH_MAX_SIG],
            struct fq_buf *b, char *err, size_t errlen)
{
    int rc;

    fq_buf_init(b, FQ_POLICY_MAX_BYTES);
    if (!sig_path_of(path, sig_path, sp, PATH_MAX_SIG)) {
        snprintf(err, errlen, "policy path '%s' is too long", path);
        return FQ_EINVAL;
    }
    if ((rc = fq_buf_read_file(b, path)) == FQ_ETOOBIG)
        snprintf(err, errlen, "policy '%s' is too large (limit %d bytes)", path,
                 FQ_POLICY_MAX_BYTES);
    else if (rc < 0)
        snprintf(err, errlen, "cannot read policy '%s': %s", path,
                 fq_strerror(rc));
    return rc;
}

/* A PEM key of either kind, checked to be Ed25519. The caller frees it. */
static int
read_key(const char *what, const char *path, bool private, EVP_PKEY **ret,
         char *err, size_t errlen)
{
    struct fq_buf b;
    BIO *bio = NULL;
    EVP_PKEY *key = NULL;
    int rc;

    fq_buf_init(&b, KEY_FILE_MAX);
    if ((rc = fq_buf_read_file(&b, path)) < 0) {
        snprintf(err, errlen, "cannot read %s '%s': %s", what, path,
                 fq_strerror(rc));
        goto out;
    }
    rc = FQ_EINVAL;
    if (!(bio = BIO_new_mem_buf(fq_buf_str(&b), (int)fq_buf_len(&b))))
        goto out;
    key = private ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)
                  : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    if (!key || EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
        snprintf(err, errlen, "%s '%s' holds no unencrypted Ed25519 PEM %s",
                 what, path, private ? "private key" : "public key");
        EVP_PKEY_free(key);
        goto out;
    }
    *ret = key;
    rc = 0;
out:
    ERR_clear_error();
    BIO_free(bio);
    if (private && fq_buf_len(&b))
        explicit_bzero((char *)fq_buf_str(&b), fq_buf_len(&b));
    fq_buf_release(&b);
    return rc;
}

/* Private keys must not be readable by group or others (as ssh insists). */
static int
check_key_mode(const char *path, char *err, size_t errlen)
{
    struct stat st;

    if (stat(path, &st) < 0) {
        int rc = fq_error_from_errno(errno);
        snprintf(err, errlen, "cannot read key '%s': %s", path,
                 fq_strerror(rc));
        return rc;
    }
    if (st.st_mode & 077) {
        snprintf(err, errlen,
                 "key file '%s' is readable by group or others (chmod 600 it)",
                 path);
        return FQ_EPERM;
    }
    return 0;
}

/* "ed25519 " + canonical base64 of 64 bytes + "\n", nothing else. */
static int
parse_sig(const char *text, size_t len, unsigned char sig[SIG_BYTES])
{
    unsigned char raw[SIG_B64]; /* decoding yields up to 66 bytes */
    unsigned char again[SIG_B64 + 1];
    const char *b64 = text + sizeof(SIG_PREFIX) - 1;

    if (len != SIG_LINE || memcmp(text, SIG_PREFIX, sizeof(SIG_PREFIX) - 1) ||
        text[len - 1] != '\n')
        return FQ_EINVAL;
    if (EVP_DecodeBlock(raw, (const unsigned char *)b64, SIG_B64) !=
            SIG_BYTES + 2 ||
        memcmp(b64 + SIG_B64 - 2, "==", 2) != 0)
        return FQ_EINVAL;
    /* Re-encoding must give the same text: no stray bits, no whitespace. */
    EVP_EncodeBlock(again, raw, SIG_BYTES);
    if (memcmp(again, b64, SIG_B64) != 0)
        return FQ_EINVAL;
    memcpy(sig, raw, SIG_BYTES);
    return 0;
}

/* The signature file's text into b (initialised here; the caller
 * releases it). */
static int
read_sig(const char *path, struct fq_buf *b, char *err, size_t errlen)
{
    int rc;

    fq_buf_init(b, SIG_FILE_MAX);
    rc = fq_buf_read_file(b, path);
    if (rc == FQ_ENOENT)
        snprintf(err, errlen,
                 "policy signature '%s' does not exist (sign the policy with "
                 "'fedq policy sign')",
                 path);
    else if (rc == FQ_ETOOBIG)
        rc = 0; /* the cap is well above a signature: malformed, below */
    else if (rc < 0)
        snprintf(err, errlen, "cannot read policy signature '%s': %s", path,
                 fq_strerror(rc));
    return rc;
}

/* 0 if sig is key's signature of data, else FQ_EPERM. */
static int
verify(EVP_PKEY *key, const char *data, size_t len,
       const unsigned char sig[SIG_BYTES])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = FQ_ENOMEM;

    if (!ctx)
        goto out;
    rc = FQ_EPERM;
    if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
        EVP_DigestVerify(ctx, sig, SIG_BYTES, (const unsigned char *)data,
                         len) == 1)
        rc = 0;
out:
    ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    return rc;
}

int
fq_policy_pubkey_check(const char *path, char *err, size_t errlen)
{
    EVP_PKEY *key = NULL;
    int rc = read_key("policy public key", path, false, &key, err, errlen);

    EVP_PKEY_free(key);
    return rc;
}

int
fq_policy_verify_buf(const char *name, const char *data, size_t len,
                     const char *sig_name, const char *sig_text, size_t sig_len,
                     const char *pubkey_path, struct fq_policy **ret, char *err,
                     size_t errlen)
{
    EVP_PKEY *key = NULL;
    unsigned char sig[SIG_BYTES];
    struct fq_policy *p = NULL;
    int rc;

    if (len > FQ_POLICY_MAX_BYTES) {
        snprintf(err, errlen, "policy '%s' is too large (limit %d bytes)", name,
                 FQ_POLICY_MAX_BYTES);
        return FQ_ETOOBIG;
    }
    if (parse_sig(sig_text, sig_len, sig) < 0) {
        snprintf(err, errlen,
                 "policy signature '%s' is malformed: expected one line "
                 "'ed25519 BASE64' of a 64-byte signature",
                 sig_name);
        return FQ_EINVAL;
    }
    if ((rc = read_key("public key", pubkey_path, false, &key, err, errlen)) <
        0)
        goto out;
    if ((rc = verify(key, data, len, sig)) < 0) {
        snprintf(err, errlen,
                 "policy '%s' does not verify with key '%s': it changed "
                 "after signing, or another key signed it",
                 name, pubkey_path);
        goto out;
    }
    if ((rc = fq_policy_parse_buf(name, data, len, &p, err, errlen)) < 0)
        goto out;
    /* What verified, kept to be shown to others (Describe); sig_len fits:
     * parse_sig accepted exactly SIG_LINE bytes. */
    if (!(p->bytes = fq_arena_alloc(p->doc.arena, len + 1))) {
        snprintf(err, errlen, "%s: out of memory", name);
        rc = FQ_ENOMEM;
        goto out;
    }
    memcpy(p->bytes, data, len);
    p->bytes[len] = '\0';
    p->n_bytes = len;
    memcpy(p->signature, sig_text, sig_len);
    p->signature[sig_len] = '\0';
    *ret = p;
    p = NULL;
out:
    fq_policy_free(p);
    EVP_PKEY_free(key);
    return rc;
}

int
fq_policy_load(const char *path, const char *sig_path, const char *pubkey_path,
               struct fq_policy **ret, char *err, size_t errlen)
{
    struct fq_buf data, sig;
    char sp[PATH_MAX_SIG];
    int rc;

    fq_buf_init(&sig, SIG_FILE_MAX);
    if ((rc = read_policy(path, sig_path, sp, &data, err, errlen)) < 0 ||
        (rc = read_sig(sp, &sig, err, errlen)) < 0)
        goto out;
    rc = fq_policy_verify_buf(path, fq_buf_str(&data), fq_buf_len(&data), sp,
                              fq_buf_str(&sig), fq_buf_len(&sig), pubkey_path,
                              ret, err, errlen);
out:
    fq_buf_release(&sig);
    fq_buf_release(&data);
    return rc;
}

static int
sign(EVP_PKEY *key, const struct fq_buf *data, unsigned char sig[SIG_BYTES])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t n = SIG_BYTES;
    int rc = FQ_ENOMEM;

    if (!ctx)
        goto out;
    rc = FQ_EINTERNAL;
    if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
        EVP_DigestSign(ctx, sig, &n, (const unsigned char *)fq_buf_str(data),
                       fq_buf_len(data)) == 1 &&
        n == SIG_BYTES)
        rc = 0;
out:
    ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    return rc;
}

static int
write_sig(const char *path, const unsigned char sig[SIG_BYTES], char *err,
          size_t errlen)
{
    char line[SIG_LINE + 1], d[PATH_MAX_SIG], b[PATH_MAX_SIG];
    size_t p = sizeof(SIG_PREFIX) - 1;
    int rc;

    memcpy(line, SIG_PREFIX, p);
    EVP_EncodeBlock((unsigned char *)line + p, sig, SIG_BYTES);
    line[p + SIG_B64] = '\n';
    line[p + SIG_B64 + 1] = '\0';
    snprintf(d, sizeof(d), "%s", path);
    snprintf(b, sizeof(b), "%s", path);
    /* Temp file beside it, fsync, rename (mode 0644: a signature is as
     * public as the policy): readers see the old one or the new one. */
    if ((rc = fq_daemon_write_runfile(dirname(d), basename(b), line)) < 0)
        snprintf(err, errlen, "cannot write policy signature '%s': %s", path,
                 fq_strerror(rc));
    return rc;
}

int
fq_policy_sign(const char *path, const char *key_path, const char *sig_path,
               char *err, size_t errlen)
{
    struct fq_buf data;
    struct fq_policy *p = NULL;
    EVP_PKEY *key = NULL;
    unsigned char sig[SIG_BYTES];
    char sp[PATH_MAX_SIG];
    int rc;

    /* A document the agents would refuse is not worth a signature. */
    if ((rc = read_policy(path, sig_path, sp, &data, err, errlen)) < 0 ||
        (rc = fq_policy_parse_buf(path, fq_buf_str(&data), fq_buf_len(&data),
                                  &p, err, errlen)) < 0 ||
        (rc = check_key_mode(key_path, err, errlen)) < 0 ||
        (rc = read_key("key", key_path, true, &key, err, errlen)) < 0)
        goto out;
    if ((rc = sign(key, &data, sig)) < 0) {
        snprintf(err, errlen, "cannot sign '%s' with key '%s'", path, key_path);
        goto out;
    }
    rc = write_sig(sp, sig, err, errlen);
out:
    EVP_PKEY_free(key);
    fq_policy_free(p);
    fq_buf_release(&data);
    return rc;
}
