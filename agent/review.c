/*
 * The durable store of held queries (review.h): one SQLite table, one row
 * per query id. What the analyst asked (query id, analyst, agreement,
 * purpose, pooled agencies, plan) and what it was checked against (policy
 * hash, data vintage, received time) never change once held, so they are
 * kept as one packed fedq.v1.Review; the decision (state, time, steward,
 * reason) has columns of its own, updated once. The answer is the packed
 * ExecuteResponse the agent computed when the query arrived.
 *
 * Durability: synchronous=FULL, one transaction per change; nothing is
 * acknowledged before it is on disk.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/daemon.h"
#include "fq/error.h"
#include "agent.h"
#include "review.h"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#define REVIEW_SCHEMA_VERSION 1
#define REVIEW_BUSY_MS        5000
#define REVIEW_PATH_MAX       4096

struct ag_review_store {
    pthread_mutex_t mu; /* serializes every statement and transaction */
    sqlite3 *db;
    size_t max_pending;
    char agency[64];
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS review ("
    " query_id TEXT PRIMARY KEY,"
    " state INTEGER NOT NULL," /* Fedq__V1__ReviewState */
    " request BLOB NOT NULL,"  /* packed Review: what never changes */
    " digest BLOB NOT NULL,"   /* ag_review_digest */
    " answer BLOB NOT NULL,"   /* packed ExecuteResponse */
    " min_cell_count INTEGER NOT NULL,"
    " decided TEXT NOT NULL DEFAULT '',"
    " decided_by TEXT NOT NULL DEFAULT '',"
    " reason TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX IF NOT EXISTS review_state ON review(state);";

/* ---- helpers ------------------------------------------------------------ */

void
ag_review_time(time_t t, char *buf, size_t len)
{
    struct tm tm;

    if (!gmtime_r(&t, &tm) ||
        strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "?");
}

bool
ag_review_id_valid(const char *id)
{
    size_t n = 0;

    if (!id)
        return false;
    for (; id[n]; n++) {
        char c = id[n];
        if (n >= AG_REVIEW_ID_MAX ||
            !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return n > 0;
}

bool
ag_review_reason_valid(const char *reason, bool required)
{
    size_t n = reason ? strlen(reason) : 0;

    if (n > AG_REVIEW_REASON_MAX || (required && n == 0))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)reason[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

char *
ag_review_dir(const struct ag_config *cfg)
{
    char rel[64];

    if (cfg->review_dir)
        return strdup(cfg->review_dir);
    snprintf(rel, sizeof(rel), "../state/%s", cfg->agency);
    return fq_daemon_default_dir(cfg->doc.path, rel);
}

static int
db_fail(struct ag_review_store *s, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "review store: %s: %s", what, sqlite3_errmsg(s->db));
    return FQ_EIO;
}

static int
exec(struct ag_review_store *s, const char *sql, char *err, size_t errlen)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(s, sql, err, errlen);
    return 0;
}

static int
prepare(struct ag_review_store *s, const char *sql, sqlite3_stmt **ret,
        char *err, size_t errlen)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, ret, NULL) != SQLITE_OK)
        return db_fail(s, "prepare", err, errlen);
    return 0;
}

/* Column i of st as a string in arena ("" for NULL). */
static char *
column_text(sqlite3_stmt *st, int i, struct fq_arena *arena)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return fq_arena_strdup(arena, t ? (const char *)t : "");
}

/* ---- open and close ----------------------------------------------------- */

/* Creates the file with mode 0600 before SQLite opens it (SQLite would
 * use the umask), and fixes the mode of one that exists. */
static int
make_private_file(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

    if (fd < 0 || fchmod(fd, 0600) < 0) {
        int rc = fq_error_from_errno(errno);
        snprintf(err, errlen, "cannot create review store '%s': %s", path,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    close(fd);
    return 0;
}

static int
open_dir(const char *dir, char *err, size_t errlen)
{
    int rc;

    if ((rc = fq_daemon_make_dir("review", dir, err, errlen)) < 0)
        return rc;
    /* Held queries and their answers are the agency's: no one else may
     * list them, whoever made the directory. */
    if (chmod(dir, 0700) < 0) {
        rc = fq_error_from_errno(errno);
        snprintf(err, errlen, "cannot make review directory '%s' private: %s",
                 dir, strerror(errno));
        return rc;
    }
    return 0;
}

static int
open_schema(struct ag_review_store *s, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int version = 0, rc;

    sqlite3_busy_timeout(s->db, REVIEW_BUSY_MS);
    if ((rc = exec(s, "PRAGMA synchronous=FULL", err, errlen)) < 0 ||
        (rc = prepare(s, "PRAGMA user_version", &st, err, errlen)) < 0)
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version > REVIEW_SCHEMA_VERSION) {
        snprintf(err, errlen,
                 "review store of agency %s has schema version %d; this "
                 "agent knows %d (a newer agent wrote it)",
                 s->agency, version, REVIEW_SCHEMA_VERSION);
        return FQ_EINVAL;
    }
    if ((rc = exec(s, schema, err, errlen)) < 0)
        return rc;
    return exec(s, "PRAGMA user_version=1", err, errlen);
}

int
ag_review_open(const char *dir, const char *agency, size_t max_pending,
               struct ag_review_store **ret, char *err, size_t errlen)
{
    struct ag_review_store *s = NULL;
    char path[REVIEW_PATH_MAX];
    int rc;

    if (snprintf(path, sizeof(path), "%s/reviews-%s.sqlite", dir, agency) >=
        (int)sizeof(path)) {
        snprintf(err, errlen, "review directory '%.200s...' is too long", dir);
        return FQ_ETOOBIG;
    }
    if ((rc = open_dir(dir, err, errlen)) < 0 ||
        (rc = make_private_file(path, err, errlen)) < 0)
        return rc;
    if (!(s = calloc(1, sizeof(*s)))) {
        snprintf(err, errlen, "out of memory opening the review store");
        return FQ_ENOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->max_pending = max_pending;
    snprintf(s->agency, sizeof(s->agency), "%s", agency);
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open review store '%s': %s", path,
                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
        rc = FQ_EIO;
        goto out;
    }
    rc = open_schema(s, err, errlen);
out:
    if (rc < 0) {
        ag_review_close(s);
        return rc;
    }
    *ret = s;
    return 0;
}

void
ag_review_close(struct ag_review_store *s)
{
    if (!s)
        return;
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- the digest --------------------------------------------------------- */

/* A number as 8 bytes, big-endian. */
static bool
digest_count(EVP_MD_CTX *ctx, size_t v)
{
    uint8_t n[8];

    for (int i = 0; i < 8; i++)
        n[i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
    return EVP_DigestUpdate(ctx, n, sizeof(n)) == 1;
}

/* The length and the bytes, so no two field lists hash alike by moving a
 * boundary. */
static bool
digest_field(EVP_MD_CTX *ctx, const void *data, size_t len)
{
    return digest_count(ctx, len) &&
           (len == 0 || EVP_DigestUpdate(ctx, data, len) == 1);
}

static bool
digest_str(EVP_MD_CTX *ctx, const char *s)
{
    return digest_field(ctx, s ? s : "", s ? strlen(s) : 0);
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int
ag_review_digest(const Fedq__V1__ExecuteRequest *req,
                 uint8_t out[AG_REVIEW_DIGEST_LEN])
{
    static const char tag[] = "fedq review digest v1";
    size_t plen = req->plan ? fedq__v1__plan__get_packed_size(req->plan) : 0;
    uint8_t *plan = malloc(plen + 1);
    const char **pooled = calloc(req->n_pooled_with + 1, sizeof(*pooled));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    bool ok;
    int rc = FQ_ENOMEM;

    if (!plan || !pooled || !ctx)
        goto out;
    if (req->plan)
        fedq__v1__plan__pack(req->plan, plan);
    /* The order the gateway lists the other agencies in is not part of
     * the query. */
    for (size_t i = 0; i < req->n_pooled_with; i++)
        pooled[i] = req->pooled_with[i] ? req->pooled_with[i] : "";
    qsort(pooled, req->n_pooled_with, sizeof(*pooled), cmp_str);
    ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
         digest_field(ctx, tag, sizeof(tag) - 1) &&
         digest_field(ctx, plan, plen) && digest_str(ctx, req->analyst) &&
         digest_str(ctx, req->agreement) && digest_str(ctx, req->purpose) &&
         digest_count(ctx, req->n_pooled_with);
    for (size_t i = 0; ok && i < req->n_pooled_with; i++)
        ok = digest_str(ctx, pooled[i]);
    rc =
        ok && EVP_DigestFinal_ex(ctx, out, &n) == 1 && n == AG_REVIEW_DIGEST_LEN
            ? 0
            : FQ_EINTERNAL;
out:
    EVP_MD_CTX_free(ctx);
    free(pooled);
    free(plan);
    return rc;
}

/* ---- reading ------------------------------------------------------------ */

#define REVIEW_COLUMNS                                              \
    "request, state, decided, decided_by, reason, digest, answer, " \
    "min_cell_count"

/* The review of the current row (columns as REVIEW_COLUMNS): the packed
 * request with the decision columns laid over it. */
static Fedq__V1__Review *
row_review(sqlite3_stmt *st, struct fq_arena *arena)
{
    const void *blob = sqlite3_column_blob(st, 0);
    size_t len = (size_t)sqlite3_column_bytes(st, 0);
    Fedq__V1__Review *r = fedq__v1__review__unpack(
        fq_arena_pb_allocator(arena), len, blob ? blob : (const void *)"");

    if (!r)
        return NULL;
    r->state = (Fedq__V1__ReviewState)sqlite3_column_int(st, 1);
    if (!(r->decided = column_text(st, 2, arena)) ||
        !(r->decided_by = column_text(st, 3, arena)) ||
        !(r->reason = column_text(st, 4, arena)))
        return NULL;
    return r;
}

static int
row_entry(struct ag_review_store *s, sqlite3_stmt *st, struct fq_arena *arena,
          struct ag_review_entry *e, char *err, size_t errlen)
{
    const void *answer = sqlite3_column_blob(st, 6);
    size_t alen = (size_t)sqlite3_column_bytes(st, 6);

    memset(e, 0, sizeof(*e));
    if (!(e->review = row_review(st, arena)) ||
        !(e->answer = fedq__v1__execute_response__unpack(
              fq_arena_pb_allocator(arena), alen,
              answer ? answer : (const void *)""))) {
        snprintf(err, errlen,
                 "review store: a stored review does not decode (or out of "
                 "memory)");
        return FQ_EIO;
    }
    if (sqlite3_column_bytes(st, 5) != AG_REVIEW_DIGEST_LEN) {
        snprintf(err, errlen, "review store: a stored digest is malformed");
        return FQ_EIO;
    }
    memcpy(e->digest, sqlite3_column_blob(st, 5), AG_REVIEW_DIGEST_LEN);
    e->min_cell_count = (uint32_t)sqlite3_column_int64(st, 7);
    return 0;
}

/* With s->mu held. */
static int
get_locked(struct ag_review_store *s, const char *id, struct fq_arena *arena,
           struct ag_review_entry *ret, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = prepare(
             s, "SELECT " REVIEW_COLUMNS " FROM review WHERE query_id = ?1",
             &st, err, errlen)) < 0)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    switch (sqlite3_step(st)) {
    case SQLITE_ROW:
        rc = row_entry(s, st, arena, ret, err, errlen);
        break;
    case SQLITE_DONE:
        snprintf(err, errlen, "agency %s holds no query %s for review",
                 s->agency, id);
        rc = FQ_ENOENT;
        break;
    default:
        rc = db_fail(s, "read", err, errlen);
    }
    sqlite3_finalize(st);
    return rc;
}

int
ag_review_get(struct ag_review_store *s, const char *id, struct fq_arena *arena,
              struct ag_review_entry *ret, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    int rc = get_locked(s, id, arena, ret, err, errlen);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int
ag_review_list(struct ag_review_store *s, Fedq__V1__ReviewState state,
               size_t limit, struct fq_arena *arena, Fedq__V1__Review ***ret,
               size_t *ret_n, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    Fedq__V1__Review **list;
    size_t n = 0;
    int rc, step;

    if (limit == 0)
        limit = AG_REVIEW_LIST_DEF;
    if (limit > AG_REVIEW_LIST_MAX)
        limit = AG_REVIEW_LIST_MAX;
    if (!(list = fq_arena_alloc(arena, (limit + 1) * sizeof(*list)))) {
        snprintf(err, errlen, "out of memory listing reviews");
        return FQ_ENOMEM;
    }
    pthread_mutex_lock(&s->mu);
    /* rowid grows with every review held: newest first. */
    if ((rc = prepare(s,
                      "SELECT " REVIEW_COLUMNS " FROM review"
                      " WHERE ?1 = 0 OR state = ?1"
                      " ORDER BY rowid DESC LIMIT ?2",
                      &st, err, errlen)) < 0)
        goto out;
    sqlite3_bind_int(st, 1, (int)state);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    while ((step = sqlite3_step(st)) == SQLITE_ROW && n < limit) {
        if (!(list[n++] = row_review(st, arena))) {
            snprintf(err, errlen,
                     "review store: a stored review does not decode (or "
                     "out of memory)");
            rc = FQ_EIO;
            goto out;
        }
    }
    if (step != SQLITE_DONE && step != SQLITE_ROW)
        rc = db_fail(s, "list", err, errlen);
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    if (rc == 0) {
        *ret = list;
        *ret_n = n;
    }
    return rc;
}

/* ---- writing ------------------------------------------------------------ */

/* With s->mu held. */
static int
count_pending(struct ag_review_store *s, size_t *ret, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = prepare(s, "SELECT count(*) FROM review WHERE state = 1", &st,
                      err, errlen)) < 0)
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW)
        *ret = (size_t)sqlite3_column_int64(st, 0);
    else
        rc = db_fail(s, "count", err, errlen);
    sqlite3_finalize(st);
    return rc;
}

/* The packed request part of a held query, in arena. */
static uint8_t *
pack_request(const Fedq__V1__ExecuteRequest *req, const char *policy_hash,
             const char *vintage, time_t now, struct fq_arena *arena,
             size_t *ret_len)
{
    Fedq__V1__Review r = FEDQ__V1__REVIEW__INIT;
    char received[32];
    uint8_t *buf;

    ag_review_time(now, received, sizeof(received));
    r.query_id = req->query_id;
    r.state = FEDQ__V1__REVIEW_STATE__REVIEW_STATE_PENDING;
    r.analyst = req->analyst;
    r.agreement = req->agreement;
    r.purpose = req->purpose;
    r.n_pooled_with = req->n_pooled_with;
    r.pooled_with = req->pooled_with;
    r.plan = req->plan;
    r.received = received;
    r.policy_hash = (char *)policy_hash;
    r.data_vintage = (char *)(vintage ? vintage : "");
    *ret_len = fedq__v1__review__get_packed_size(&r);
    if ((buf = fq_arena_alloc(arena, *ret_len + 1)))
        fedq__v1__review__pack(&r, buf);
    return buf;
}

static int
insert_locked(struct ag_review_store *s, const Fedq__V1__ExecuteRequest *req,
              const uint8_t *request, size_t rlen,
              const uint8_t digest[AG_REVIEW_DIGEST_LEN], const uint8_t *answer,
              size_t alen, uint32_t min_cell_count, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = prepare(s,
                      "INSERT INTO review (query_id, state, request, digest,"
                      " answer, min_cell_count) VALUES (?1, 1, ?2, ?3, ?4, ?5)",
                      &st, err, errlen)) < 0)
        return rc;
    sqlite3_bind_text(st, 1, req->query_id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, request, (int)rlen, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, digest, AG_REVIEW_DIGEST_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, answer, (int)alen, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, min_cell_count);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_fail(s, "hold", err, errlen);
    sqlite3_finalize(st);
    return rc;
}

int
ag_review_hold(struct ag_review_store *s, const Fedq__V1__ExecuteRequest *req,
               const uint8_t digest[AG_REVIEW_DIGEST_LEN],
               const Fedq__V1__ExecuteResponse *answer, uint32_t min_cell_count,
               const char *policy_hash, time_t now, char *err, size_t errlen)
{
    struct fq_arena *arena = fq_arena_new(
        2 * fedq__v1__execute_response__get_packed_size(answer) +
        2 * fedq__v1__execute_request__get_packed_size(req) + 4096);
    Fedq__V1__ExecuteResponse kept = FEDQ__V1__EXECUTE_RESPONSE__INIT;
    size_t rlen = 0, alen, pending = 0;
    uint8_t *request, *packed;
    sqlite3_stmt *st = NULL;
    int rc = FQ_ENOMEM;

    /* Only the answer itself: the policy fields are set when it is
     * released, by the policy then in force. */
    kept.n_groups = answer->n_groups;
    kept.groups = answer->groups;
    kept.data_vintage = answer->data_vintage;
    alen = fedq__v1__execute_response__get_packed_size(&kept);
    if (!arena ||
        !(request = pack_request(req, policy_hash, answer->data_vintage, now,
                                 arena, &rlen)) ||
        !(packed = fq_arena_alloc(arena, alen + 1))) {
        snprintf(err, errlen, "out of memory holding query %s", req->query_id);
        goto out_free;
    }
    fedq__v1__execute_response__pack(&kept, packed);
    pthread_mutex_lock(&s->mu);
    if ((rc = exec(s, "BEGIN IMMEDIATE", err, errlen)) < 0)
        goto out;
    if ((rc = prepare(s, "SELECT 1 FROM review WHERE query_id = ?1", &st, err,
                      errlen)) < 0)
        goto rollback;
    sqlite3_bind_text(st, 1, req->query_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(err, errlen, "query %s is held already", req->query_id);
        rc = FQ_EAGAIN;
        goto rollback;
    }
    if ((rc = count_pending(s, &pending, err, errlen)) < 0)
        goto rollback;
    if (pending >= s->max_pending) {
        snprintf(err, errlen,
                 "%zu queries already wait for the steward's review (the "
                 "most kept); ask again once they are decided",
                 pending);
        rc = FQ_ETOOBIG;
        goto rollback;
    }
    if ((rc = insert_locked(s, req, request, rlen, digest, packed, alen,
                            min_cell_count, err, errlen)) < 0)
        goto rollback;
    rc = exec(s, "COMMIT", err, errlen);
    if (rc == 0)
        goto out;
rollback:
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
out_free:
    fq_arena_free(arena);
    return rc;
}

static const char *
state_word(int state)
{
    switch (state) {
    case FEDQ__V1__REVIEW_STATE__REVIEW_STATE_APPROVED:
        return "approved";
    case FEDQ__V1__REVIEW_STATE__REVIEW_STATE_DENIED:
        return "denied";
    case FEDQ__V1__REVIEW_STATE__REVIEW_STATE_PENDING:
        return "pending";
    default:
        return "decided";
    }
}

static int
update_locked(struct ag_review_store *s, const char *id, bool approve,
              const char *reason, const char *who, const char *when, char *err,
              size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc;

    /* state = 1 again: a decision is taken once, whatever raced. */
    if ((rc = prepare(s,
                      "UPDATE review SET state = ?2, decided = ?3,"
                      " decided_by = ?4, reason = ?5"
                      " WHERE query_id = ?1 AND state = 1",
                      &st, err, errlen)) < 0)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2,
                     approve ? FEDQ__V1__REVIEW_STATE__REVIEW_STATE_APPROVED
                             : FEDQ__V1__REVIEW_STATE__REVIEW_STATE_DENIED);
    sqlite3_bind_text(st, 3, when, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, who, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, reason ? reason : "", -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE || sqlite3_changes(s->db) != 1)
        rc = db_fail(s, "decide", err, errlen);
    sqlite3_finalize(st);
    return rc;
}

int
ag_review_decide(struct ag_review_store *s, const char *id, bool approve,
                 const char *reason, const char *who, time_t now,
                 struct fq_arena *arena, Fedq__V1__Review **ret, char *err,
                 size_t errlen)
{
    struct ag_review_entry e;
    char when[32];
    int rc;

    ag_review_time(now, when, sizeof(when));
    pthread_mutex_lock(&s->mu);
    if ((rc = exec(s, "BEGIN IMMEDIATE", err, errlen)) < 0)
        goto out;
    if ((rc = get_locked(s, id, arena, &e, err, errlen)) < 0)
        goto rollback;
    if (e.review->state != FEDQ__V1__REVIEW_STATE__REVIEW_STATE_PENDING) {
        snprintf(err, errlen, "query %s was already %s by %s at %s", id,
                 state_word(e.review->state), e.review->decided_by,
                 e.review->decided);
        rc = FQ_EPRECOND;
        goto rollback;
    }
    if ((rc = update_locked(s, id, approve, reason, who, when, err, errlen)) <
            0 ||
        (rc = exec(s, "COMMIT", err, errlen)) < 0)
        goto rollback;
    e.review->state = approve ? FEDQ__V1__REVIEW_STATE__REVIEW_STATE_APPROVED
                              : FEDQ__V1__REVIEW_STATE__REVIEW_STATE_DENIED;
    if (!(e.review->decided = fq_arena_strdup(arena, when)) ||
        !(e.review->decided_by = fq_arena_strdup(arena, who)) ||
        !(e.review->reason = fq_arena_strdup(arena, reason ? reason : ""))) {
        snprintf(err, errlen, "out of memory");
        rc = FQ_ENOMEM; /* committed: the decision stands */
        goto out;
    }
    *ret = e.review;
    goto out;
rollback:
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}
