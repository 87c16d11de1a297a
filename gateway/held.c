/*
 * Queries held for a steward's review, kept by the gateway so that the
 * analyst can ask for the answer later (Gateway/GetResult), across
 * restarts. Only the request is kept (SQL, agreement, purpose, who asked),
 * never an answer: the agencies keep theirs, and GetResult runs the query
 * again under the same id, so an approving agency returns exactly what its
 * steward saw.
 *
 * One SQLite file, state_dir/held-queries.db (mode 0600, directory 0700),
 * written with synchronous commits; one connection guarded by a mutex, as
 * calls arrive on several threads and each statement is short.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/daemon.h"
#include "fq/error.h"
#include "gateway.h"

#include <pthread.h>
#include <sqlite3.h>

#include "fedq/v1/gateway.pb-c.h"

#define HELD_FILE        "held-queries.db"
#define HELD_PER_ANALYST 1000 /* pending queries one analyst may hold */

struct gw_held {
    pthread_mutex_t mu;
    sqlite3 *db;
};

static const char held_schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS held ("
    " id TEXT PRIMARY KEY,"
    " analyst TEXT NOT NULL,"
    " sql TEXT NOT NULL,"
    " agreement TEXT NOT NULL,"
    " purpose TEXT NOT NULL,"
    " allow_partial INTEGER NOT NULL,"
    " created TEXT NOT NULL,"
    " state TEXT NOT NULL," /* pending, released, refused */
    " updated TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS held_analyst ON held (analyst, state);";

int
gw_held_open(const struct gw_config *cfg, struct gw_held **ret, char *err,
             size_t errlen)
{
    struct gw_held *h = calloc(1, sizeof(*h));
    int rc;

    if (!h) {
        snprintf(err, errlen, "out of memory");
        return FQ_ENOMEM;
    }
    pthread_mutex_init(&h->mu, NULL);
    if ((rc = gw_state_db_open(cfg, HELD_FILE, "held-query store", held_schema,
                               &h->db, err, errlen)) < 0) {
        gw_held_close(h);
        return rc;
    }
    *ret = h;
    return 0;
}

void
gw_held_close(struct gw_held *h)
{
    if (!h)
        return;
    sqlite3_close(h->db);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

/* Pending queries of analyst; -1 on a database error. */
static int64_t
count_pending(struct gw_held *h, const char *analyst)
{
    sqlite3_stmt *st = NULL;
    int64_t n = -1;

    if (sqlite3_prepare_v2(h->db,
                           "SELECT count(*) FROM held WHERE analyst = ?1 "
                           "AND state = 'pending'",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_bind_text(st, 1, analyst, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

int
gw_held_put(struct gw_held *h, const char *id, const char *analyst,
            const Fedq__V1__QueryRequest *req, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    char now[32];
    int rc = FQ_EIO;

    gw_utc_now(now);
    pthread_mutex_lock(&h->mu);
    int64_t n = count_pending(h, analyst);
    if (n >= HELD_PER_ANALYST) {
        snprintf(err, errlen,
                 "%s already has %d queries waiting for review; fetch or "
                 "wait for them first",
                 analyst, HELD_PER_ANALYST);
        rc = FQ_ETOOBIG;
        goto out;
    }
    if (n < 0 ||
        sqlite3_prepare_v2(
            h->db,
            "INSERT INTO held (id, analyst, sql, agreement, purpose, "
            "allow_partial, created, state, updated) VALUES (?1, ?2, ?3, "
            "?4, ?5, ?6, ?7, 'pending', ?7) ON CONFLICT (id) DO UPDATE SET "
            "state = 'pending', updated = ?7",
            -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, analyst, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 3, req->sql, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 4, req->agreement, -1, SQLITE_STATIC) !=
            SQLITE_OK ||
        sqlite3_bind_text(st, 5, req->purpose, -1, SQLITE_STATIC) !=
            SQLITE_OK ||
        sqlite3_bind_int(st, 6, req->allow_partial ? 1 : 0) != SQLITE_OK ||
        sqlite3_bind_text(st, 7, now, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_DONE) {
        snprintf(err, errlen, "cannot keep query %s for review: %s", id,
                 sqlite3_errmsg(h->db));
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&h->mu);
    return rc;
}

/* A column's text copied into a; NULL when out of memory. */
static char *
column_text(sqlite3_stmt *st, int i, struct fq_arena *a)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return fq_arena_strdup(a, t ? (const char *)t : "");
}

int
gw_held_get(struct gw_held *h, const char *id, const char *analyst,
            struct fq_arena *a, Fedq__V1__QueryRequest **ret, char *err,
            size_t errlen)
{
    Fedq__V1__QueryRequest *req = fq_arena_alloc(a, sizeof(*req));
    sqlite3_stmt *st = NULL;
    int rc = FQ_EIO, step;

    if (!req)
        return FQ_ENOMEM;
    fedq__v1__query_request__init(req);
    pthread_mutex_lock(&h->mu);
    if (sqlite3_prepare_v2(h->db,
                           "SELECT sql, agreement, purpose, allow_partial "
                           "FROM held WHERE id = ?1 AND analyst = ?2",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, analyst, -1, SQLITE_STATIC) != SQLITE_OK ||
        ((step = sqlite3_step(st)) != SQLITE_ROW && step != SQLITE_DONE)) {
        snprintf(err, errlen, "cannot read held query %s: %s", id,
                 sqlite3_errmsg(h->db));
        goto out;
    }
    /* Another analyst's query does not exist for this one. */
    if (step == SQLITE_DONE) {
        snprintf(err, errlen, "no query %s of yours is held for review", id);
        rc = FQ_ENOENT;
        goto out;
    }
    rc = FQ_ENOMEM;
    if (!(req->sql = column_text(st, 0, a)) ||
        !(req->agreement = column_text(st, 1, a)) ||
        !(req->purpose = column_text(st, 2, a))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    req->allow_partial = sqlite3_column_int(st, 3) != 0;
    *ret = req;
    rc = 0;
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&h->mu);
    return rc;
}

void
gw_held_set_state(struct gw_held *h, const char *id, const char *state)
{
    sqlite3_stmt *st = NULL;
    char now[32];

    gw_utc_now(now);
    pthread_mutex_lock(&h->mu);
    /* Best effort: the state is a note for operators; GetResult asks the
     * agencies again whatever it says. */
    if (sqlite3_prepare_v2(h->db,
                           "UPDATE held SET state = ?2, updated = ?3 WHERE "
                           "id = ?1",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_text(st, 3, now, -1, SQLITE_STATIC) == SQLITE_OK)
        sqlite3_step(st);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&h->mu);
}
