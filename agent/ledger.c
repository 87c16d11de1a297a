/*
 * The differencing ledger: recorded cells per (dataset, vintage, class) in
 * memory, backed by one SQLite file (see ledger.h for what and why).
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "ledger.h"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>

#define LEDGER_PATH_MAX 1024

/* A recorded cell. */
struct lcell {
    char *ref;
    struct ag_cellset set;
    uint64_t sent[AG_LEDGER_SENTINELS]; /* its smallest person tags */
    size_t n_sent;
    struct ag_ledger_part *parts;
    size_t n_parts;
    uint8_t *value; /* the published value (opaque), NULL if none */
    size_t value_len;
};

/* The recorded cells of one dataset, vintage and class. */
struct lscope {
    char *dataset, *vintage, *class;
    struct lcell *cells;
    size_t n, cap;
    struct lscope *next;
};

struct ag_ledger {
    pthread_mutex_t mu;
    sqlite3 *db;
    size_t max_bytes, used;
    struct lscope *scopes;
};

static const char ledger_schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS cells ("
    " id INTEGER PRIMARY KEY,"
    " dataset TEXT NOT NULL,"
    " vintage TEXT NOT NULL,"
    " class TEXT NOT NULL,"
    " ref TEXT NOT NULL," /* the gateway's id of the cell */
    " persons INTEGER NOT NULL,"
    " parts TEXT NOT NULL,"   /* "agency persons vintage" lines */
    " members BLOB NOT NULL," /* 16 bytes each: person, record (LE) */
    " value BLOB,"            /* the published value (the gateway's) */
    " recorded TEXT NOT NULL,"
    " UNIQUE (dataset, vintage, class, ref));";

/* ---- cellsets ------------------------------------------------------------ */

static int
member_order(const struct ag_member *a, const struct ag_member *b)
{
    if (a->person != b->person)
        return a->person < b->person ? -1 : 1;
    return (a->record > b->record) - (a->record < b->record);
}

static int
member_cmp(const void *a, const void *b)
{
    return member_order(a, b);
}

void
ag_cellset_finish(struct ag_cellset *c)
{
    size_t u = 0;

    c->persons = 0;
    if (c->n == 0)
        return;
    qsort(c->m, c->n, sizeof(*c->m), member_cmp);
    c->persons = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (u > 0 && member_order(&c->m[u - 1], &c->m[i]) == 0)
            continue;
        c->persons += u == 0 || c->m[u - 1].person != c->m[i].person;
        c->m[u++] = c->m[i];
    }
    c->n = u;
}

int
ag_cellset_push(struct ag_cellset *c, size_t *cap, struct ag_member m)
{
    if (c->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        struct ag_member *n = realloc(c->m, ncap * sizeof(*n));
        if (!n)
            return FQ_ENOMEM;
        c->m = n;
        *cap = ncap;
    }
    c->m[c->n++] = m;
    return 0;
}

/* The first (smallest) distinct person tags, at most max. */
static size_t
sentinels(const struct ag_cellset *c, uint64_t *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n && n < max; i++) {
        if (n == 0 || out[n - 1] != c->m[i].person)
            out[n++] = c->m[i].person;
    }
    return n;
}

static bool
has_person(const struct ag_cellset *c, uint64_t p)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->m[mid].person < p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n && c->m[lo].person == p;
}

/* Whether any of the first k persons of sent is in c. */
static bool
any_in(const uint64_t *sent, size_t k, const struct ag_cellset *c)
{
    for (size_t i = 0; i < k; i++) {
        if (has_person(c, sent[i]))
            return true;
    }
    return false;
}

static int
person_cmp(const struct ag_member *a, const struct ag_member *b)
{
    return (a->person > b->person) - (a->person < b->person);
}

/*
 * The persons with a record in a but not b (*only_a), and the reverse,
 * counted while merging; stops once either reaches k (no report then).
 * by_person: a person in both counts in neither, whatever the records
 * (cells of two data vintages, whose record ids are unrelated).
 */
static void
difference(const struct ag_cellset *a, const struct ag_cellset *b, int64_t k,
           bool by_person, int64_t *only_a, int64_t *only_b)
{
    int (*cmp)(const struct ag_member *, const struct ag_member *) =
        by_person ? person_cmp : member_order;
    size_t i = 0, j = 0;
    bool seen_a = false, seen_b = false;
    uint64_t last_a = 0, last_b = 0;

    *only_a = *only_b = 0;
    while ((i < a->n || j < b->n) && *only_a < k && *only_b < k) {
        int c = i == a->n ? 1 : j == b->n ? -1 : cmp(&a->m[i], &b->m[j]);
        if (c < 0) {
            if (!seen_a || a->m[i].person != last_a)
                (*only_a)++;
            seen_a = true;
            last_a = a->m[i++].person;
        } else if (c > 0) {
            if (!seen_b || b->m[j].person != last_b)
                (*only_b)++;
            seen_b = true;
            last_b = b->m[j++].person;
        } else if (by_person) {
            uint64_t p = a->m[i].person;
            while (i < a->n && a->m[i].person == p)
                i++;
            while (j < b->n && b->m[j].person == p)
                j++;
        } else {
            i++;
            j++;
        }
    }
}

/* ---- opening ------------------------------------------------------------- */

static int
create_private(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

    if (fd < 0) {
        int rc = fq_error_from_errno(errno);
        snprintf(err, errlen, "cannot create the ledger '%s': %s", path,
                 strerror(errno));
        return rc;
    }
    close(fd);
    return 0;
}

int
ag_ledger_open(const char *dir, const char *agency, size_t max_bytes,
               struct ag_ledger **ret, char *err, size_t errlen)
{
    char path[LEDGER_PATH_MAX];
    struct ag_ledger *l;
    int rc;

    if (snprintf(path, sizeof(path), "%s/ledger-%s.sqlite", dir, agency) >=
        (int)sizeof(path)) {
        snprintf(err, errlen, "ledger directory '%.200s...' is too long", dir);
        return FQ_ETOOBIG;
    }
    if ((rc = create_private(path, err, errlen)) < 0)
        return rc;
    if (!(l = calloc(1, sizeof(*l)))) {
        snprintf(err, errlen, "out of memory opening the ledger");
        return FQ_ENOMEM;
    }
    pthread_mutex_init(&l->mu, NULL);
    l->max_bytes = max_bytes;
    if (sqlite3_open_v2(path, &l->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(l->db, 5000) != SQLITE_OK ||
        sqlite3_exec(l->db, ledger_schema, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open the ledger '%s': %s", path,
                 l->db ? sqlite3_errmsg(l->db) : "out of memory");
        ag_ledger_close(l);
        return FQ_EIO;
    }
    *ret = l;
    return 0;
}

static void
cell_release(struct lcell *c)
{
    free(c->ref);
    free(c->set.m);
    free(c->parts);
    free(c->value);
}

void
ag_ledger_close(struct ag_ledger *l)
{
    if (!l)
        return;
    for (struct lscope *s = l->scopes, *next; s; s = next) {
        next = s->next;
        for (size_t i = 0; i < s->n; i++)
            cell_release(&s->cells[i]);
        free(s->cells);
        free(s->dataset);
        free(s->vintage);
        free(s->class);
        free(s);
    }
    sqlite3_close(l->db);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

/* ---- scopes in memory ------------------------------------------------- */

/* "agency persons vintage" lines; the count in *ret_n. */
static struct ag_ledger_part *
parse_parts(const char *text, size_t *ret_n)
{
    struct ag_ledger_part *p = calloc(AG_LEDGER_PARTS, sizeof(*p));
    size_t n = 0;
    char agency[AG_LEDGER_AGENCY], vintage[AG_LEDGER_VINTAGE];
    long long persons;
    int used;

    while (p && n < AG_LEDGER_PARTS &&
           sscanf(text, "%63s %lld %47s\n%n", agency, &persons, vintage,
                  &used) == 3) {
        snprintf(p[n].agency, sizeof(p[n].agency), "%s", agency);
        snprintf(p[n].vintage, sizeof(p[n].vintage), "%s", vintage);
        p[n++].persons = persons;
        text += used;
    }
    *ret_n = n;
    return p;
}

static int
scope_push(struct ag_ledger *l, struct lscope *s, const char *ref,
           struct ag_cellset set, struct ag_ledger_part *parts, size_t n_parts,
           struct ag_ledger_value value)
{
    size_t bytes = set.n * sizeof(struct ag_member) + value.len;

    if (l->max_bytes && l->used + bytes > l->max_bytes)
        return FQ_ETOOBIG;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct lcell *n = realloc(s->cells, cap * sizeof(*n));
        if (!n)
            return FQ_ENOMEM;
        s->cells = n;
        s->cap = cap;
    }
    struct lcell *c = &s->cells[s->n];
    memset(c, 0, sizeof(*c));
    if (!(c->ref = strdup(ref)) ||
        (value.len && !(c->value = malloc(value.len)))) {
        free(c->ref);
        return FQ_ENOMEM;
    }
    if (value.len)
        memcpy(c->value, value.b, value.len);
    c->value_len = value.len;
    c->set = set;
    c->n_sent = sentinels(&set, c->sent, AG_LEDGER_SENTINELS);
    c->parts = parts;
    c->n_parts = n_parts;
    s->n++;
    l->used += bytes;
    return 0;
}

/* The members of a stored row: 16 little-endian bytes each. */
static struct ag_cellset
decode_members(const unsigned char *b, size_t len, int64_t persons)
{
    struct ag_cellset c = {NULL, len / 16, persons};

    if (c.n && !(c.m = malloc(c.n * sizeof(*c.m))))
        return (struct ag_cellset){NULL, 0, -1};
    for (size_t i = 0; i < c.n; i++) {
        uint64_t v[2] = {0, 0};
        for (int h = 0; h < 2; h++) {
            for (int k = 7; k >= 0; k--)
                v[h] = v[h] << 8 | b[16 * i + 8 * (size_t)h + (size_t)k];
        }
        c.m[i] = (struct ag_member){v[0], v[1]};
    }
    return c;
}

static int
scope_load(struct ag_ledger *l, struct lscope *s)
{
    sqlite3_stmt *st = NULL;
    int rc = FQ_EIO, step;

    if (sqlite3_prepare_v2(l->db,
                           "SELECT ref, persons, parts, members, value FROM "
                           "cells "
                           "WHERE dataset = ?1 AND vintage = ?2 AND "
                           "class = ?3 ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, s->dataset, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, s->vintage, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 3, s->class, -1, SQLITE_STATIC) != SQLITE_OK)
        goto out;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        size_t n_parts;
        struct ag_cellset set = decode_members(
            sqlite3_column_blob(st, 3), (size_t)sqlite3_column_bytes(st, 3),
            sqlite3_column_int64(st, 1));
        struct ag_ledger_part *parts =
            parse_parts((const char *)sqlite3_column_text(st, 2), &n_parts);
        const char *ref = (const char *)sqlite3_column_text(st, 0);
        if (set.persons < 0 || !parts || !ref) {
            free(set.m);
            free(parts);
            rc = FQ_ENOMEM;
            goto out;
        }
        struct ag_ledger_value v = {sqlite3_column_blob(st, 4),
                                    (size_t)sqlite3_column_bytes(st, 4)};
        if ((rc = scope_push(l, s, ref, set, parts, n_parts, v)) < 0) {
            free(set.m);
            free(parts);
            goto out;
        }
    }
    rc = step == SQLITE_DONE ? 0 : FQ_EIO;
out:
    sqlite3_finalize(st);
    return rc;
}

/* The scope of (dataset, vintage, class), loaded at first use; NULL with
 * *rc set on failure. */
static struct lscope *
scope_get(struct ag_ledger *l, const struct ag_ledger_scope *sc,
          const char *class, int *rc)
{
    struct lscope *s;

    for (s = l->scopes; s; s = s->next) {
        if (strcmp(s->dataset, sc->dataset) == 0 &&
            strcmp(s->vintage, sc->vintage) == 0 &&
            strcmp(s->class, class) == 0)
            return s;
    }
    if (!(s = calloc(1, sizeof(*s))) || !(s->dataset = strdup(sc->dataset)) ||
        !(s->vintage = strdup(sc->vintage)) || !(s->class = strdup(class))) {
        if (s) {
            free(s->dataset);
            free(s->vintage);
            free(s);
        }
        *rc = FQ_ENOMEM;
        return NULL;
    }
    s->next = l->scopes;
    l->scopes = s; /* even if loading fails: what loaded is kept */
    *rc = scope_load(l, s);
    return *rc < 0 ? NULL : s;
}

/* ---- checking ------------------------------------------------------------ */

struct pairs {
    struct fq_arena *a;
    struct ag_ledger_pair *v;
    size_t n, cap;
};

static int
pair_add(struct pairs *p, const struct ag_ledger_pair *x)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        struct ag_ledger_pair *n = fq_arena_alloc(p->a, cap * sizeof(*n));
        if (!n)
            return FQ_ENOMEM;
        if (p->n)
            memcpy(n, p->v, p->n * sizeof(*n));
        p->v = n;
        p->cap = cap;
    }
    p->v[p->n++] = *x;
    return 0;
}

/*
 * Whether the pair (a, b) must be reported, and its differences: both
 * below k (a cell within k - 1 persons of the other either way: one
 * nested in the other with a small rest, or near copies); single: and
 * not both 0. A pair one of whose differences holds k or more is safe:
 * the two values alone imply no cell of fewer than k.
 */
static bool
weigh(const struct ag_cellset *a, const uint64_t *sa, size_t na,
      const struct ag_cellset *b, const uint64_t *sb, size_t nb, int64_t k,
      bool single, bool by_person, int64_t *d1, int64_t *d2)
{
    /* persons a has and b lacks number at least a's persons less b's:
     * sizes k or more apart are far, without looking (most pairs) */
    if (a->persons - b->persons >= k || b->persons - a->persons >= k)
        return false;
    /* k persons of one side all missing from the other: that difference
     * holds k or more, without merging */
    if ((a->persons >= k && (size_t)k <= na && !any_in(sa, (size_t)k, b)) ||
        (b->persons >= k && (size_t)k <= nb && !any_in(sb, (size_t)k, a)))
        return false;
    difference(a, b, k, by_person, d1, d2);
    if (*d1 >= k || *d2 >= k)
        return false;
    return !single || *d1 > 0 || *d2 > 0;
}

/* The dataset's other data vintages with cells of class recorded. */
static int
other_vintages(struct ag_ledger *l, const struct ag_ledger_scope *sc,
               const char *class, struct fq_arena *a, char ***ret,
               size_t *ret_n)
{
    sqlite3_stmt *st = NULL;
    char **v = NULL;
    size_t n = 0, cap = 0;
    int rc = FQ_EIO, step;

    if (sqlite3_prepare_v2(l->db,
                           "SELECT DISTINCT vintage FROM cells WHERE "
                           "dataset = ?1 AND class = ?2 AND vintage <> ?3",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, sc->dataset, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, class, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 3, sc->vintage, -1, SQLITE_STATIC) != SQLITE_OK)
        goto out;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            char **nv =
                fq_arena_alloc(a, (cap = cap ? 2 * cap : 8) * sizeof(*nv));
            if (!nv) {
                rc = FQ_ENOMEM;
                goto out;
            }
            if (n)
                memcpy(nv, v, n * sizeof(*nv));
            v = nv;
        }
        if (!(v[n++] = fq_arena_strdup(
                  a, (const char *)sqlite3_column_text(st, 0)))) {
            rc = FQ_ENOMEM;
            goto out;
        }
    }
    rc = step == SQLITE_DONE ? 0 : FQ_EIO;
out:
    sqlite3_finalize(st);
    *ret = v;
    *ret_n = rc == 0 ? n : 0;
    return rc;
}

/*
 * Candidate i against the cells released from the dataset's other data
 * vintages: a refresh must not let an analyst difference the persons it
 * added or removed. Record ids of two vintages are unrelated, so these
 * differences count persons.
 */
static int
check_vintages(struct ag_ledger *l, const struct ag_ledger_scope *scope,
               const char *class, size_t i, const struct ag_cellset *cell,
               const uint64_t *sent, size_t n_sent, int64_t k, bool single,
               struct pairs *p)
{
    char **vintages;
    size_t n;
    int rc = other_vintages(l, scope, class, p->a, &vintages, &n);

    for (size_t v = 0; rc == 0 && v < n; v++) {
        struct ag_ledger_scope other = {scope->dataset, vintages[v]};
        struct lscope *s = scope_get(l, &other, class, &rc);
        for (size_t j = 0; s && rc == 0 && j < s->n; j++) {
            const struct lcell *b = &s->cells[j];
            struct ag_ledger_pair x = {i,          b->ref,   0,
                                       0,          0,        b->parts,
                                       b->n_parts, b->value, b->value_len};
            if (weigh(cell, sent, n_sent, &b->set, b->sent, b->n_sent, k,
                      single, true, &x.only_here, &x.only_there))
                rc = pair_add(p, &x);
        }
    }
    return rc;
}

int
ag_ledger_check(struct ag_ledger *l, const struct ag_ledger_scope *scope,
                const char *const *classes, const size_t *groups,
                const struct ag_cellset *cells, size_t n, int64_t k,
                bool single, struct fq_arena *a, struct ag_ledger_pair **ret,
                size_t *ret_n, char *err, size_t errlen)
{
    struct pairs p = {.a = a};
    uint64_t(*sent)[AG_LEDGER_SENTINELS] =
        fq_arena_alloc(a, (n + 1) * sizeof(*sent));
    size_t *n_sent = fq_arena_alloc(a, (n + 1) * sizeof(*n_sent));
    int rc = sent && n_sent ? 0 : FQ_ENOMEM;

    for (size_t i = 0; rc == 0 && i < n; i++)
        n_sent[i] = sentinels(&cells[i], sent[i], AG_LEDGER_SENTINELS);
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct lscope *s = scope_get(l, scope, classes[i], &rc);
        for (size_t j = 0; s && rc == 0 && j < s->n; j++) {
            const struct lcell *b = &s->cells[j];
            struct ag_ledger_pair x = {i,          b->ref,   0,
                                       0,          0,        b->parts,
                                       b->n_parts, b->value, b->value_len};
            if (weigh(&cells[i], sent[i], n_sent[i], &b->set, b->sent,
                      b->n_sent, k, single, false, &x.only_here, &x.only_there))
                rc = pair_add(&p, &x);
        }
        if (rc == 0)
            rc = check_vintages(l, scope, classes[i], i, &cells[i], sent[i],
                                n_sent[i], k, single, &p);
        /* cells of another group share no record: never a small
         * difference (both are released cells of k or more pooled) */
        for (size_t j = 0; rc == 0 && j < i; j++) {
            struct ag_ledger_pair x = {i, NULL, j, 0, 0, NULL, 0, NULL, 0};
            if (groups[j] == groups[i] && strcmp(classes[j], classes[i]) == 0 &&
                weigh(&cells[i], sent[i], n_sent[i], &cells[j], sent[j],
                      n_sent[j], k, single, false, &x.only_here, &x.only_there))
                rc = pair_add(&p, &x);
        }
    }
    pthread_mutex_unlock(&l->mu);
    if (rc == FQ_ETOOBIG)
        snprintf(err, errlen,
                 "the differencing ledger of dataset %s (data of %s) is "
                 "full: the agency's steward must raise ledger_memory",
                 scope->dataset, scope->vintage);
    else if (rc < 0)
        snprintf(err, errlen, "the differencing ledger failed: %s",
                 rc == FQ_EIO ? sqlite3_errmsg(l->db) : fq_strerror(rc));
    if (rc == 0) {
        *ret = p.v;
        *ret_n = p.n;
    }
    return rc;
}

/* ---- recording ----------------------------------------------------------- */

static char *
parts_text(const struct ag_ledger_part *p, size_t n)
{
    size_t cap = n * (AG_LEDGER_AGENCY + AG_LEDGER_VINTAGE + 24) + 1, len = 0;
    char *t = malloc(cap);

    if (!t)
        return NULL;
    t[0] = '\0';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(t + len, cap - len, "%s %" PRId64 " %s\n",
                                p[i].agency, p[i].persons, p[i].vintage);
    return t;
}

static unsigned char *
encode_members(const struct ag_cellset *c)
{
    unsigned char *b = malloc(c->n * 16 + 1);

    for (size_t i = 0; b && i < c->n; i++) {
        const uint64_t v[2] = {c->m[i].person, c->m[i].record};
        for (int h = 0; h < 2; h++) {
            for (int k = 0; k < 8; k++)
                b[16 * i + 8 * (size_t)h + (size_t)k] =
                    (unsigned char)(v[h] >> (8 * k));
        }
    }
    return b;
}

/* Inserts one cell; *ret_new: whether it was not there yet. */
static int
insert_cell(struct ag_ledger *l, sqlite3_stmt *st,
            const struct ag_ledger_scope *scope, const char *class,
            const struct ag_cellset *c, const char *ref,
            const struct ag_ledger_part *parts, size_t n_parts,
            struct ag_ledger_value value, bool *ret_new)
{
    char *pt = parts_text(parts, n_parts);
    unsigned char *blob = encode_members(c);
    int rc = FQ_ENOMEM;

    if (!pt || !blob)
        goto out;
    rc = FQ_EIO;
    sqlite3_reset(st);
    if (sqlite3_bind_text(st, 1, scope->dataset, -1, SQLITE_STATIC) ||
        sqlite3_bind_text(st, 2, scope->vintage, -1, SQLITE_STATIC) ||
        sqlite3_bind_text(st, 3, class, -1, SQLITE_STATIC) ||
        sqlite3_bind_text(st, 4, ref, -1, SQLITE_STATIC) ||
        sqlite3_bind_int64(st, 5, c->persons) ||
        sqlite3_bind_text(st, 6, pt, -1, SQLITE_STATIC) ||
        sqlite3_bind_blob(st, 7, blob, (int)(c->n * 16), SQLITE_STATIC) ||
        (value.len
             ? sqlite3_bind_blob(st, 9, value.b, (int)value.len, SQLITE_STATIC)
             : sqlite3_bind_null(st, 9)) ||
        sqlite3_step(st) != SQLITE_DONE)
        goto out;
    *ret_new = sqlite3_changes(l->db) > 0;
    rc = 0;
out:
    free(pt);
    free(blob);
    return rc;
}

/* The recorded cell into its scope in memory (copies). */
static int
remember(struct ag_ledger *l, const struct ag_ledger_scope *scope,
         const char *class, const struct ag_cellset *c, const char *ref,
         const struct ag_ledger_part *parts, size_t n_parts,
         struct ag_ledger_value value)
{
    int rc = 0;
    struct lscope *s = scope_get(l, scope, class, &rc);
    struct ag_cellset set = {NULL, c->n, c->persons};
    struct ag_ledger_part *p = calloc(n_parts + 1, sizeof(*p));

    if (!s || !p || (c->n && !(set.m = malloc(c->n * sizeof(*set.m))))) {
        free(p);
        return rc < 0 ? rc : FQ_ENOMEM;
    }
    if (c->n)
        memcpy(set.m, c->m, c->n * sizeof(*set.m));
    if (n_parts)
        memcpy(p, parts, n_parts * sizeof(*p));
    if ((rc = scope_push(l, s, ref, set, p, n_parts, value)) < 0) {
        free(set.m);
        free(p);
    }
    return rc;
}

int
ag_ledger_record(struct ag_ledger *l, const struct ag_ledger_scope *scope,
                 const char *const *classes, const struct ag_cellset *cells,
                 const char *const *refs,
                 const struct ag_ledger_part *const *parts,
                 const size_t *n_parts, const struct ag_ledger_value *values,
                 size_t n, char *err, size_t errlen)
{
    static const struct ag_ledger_value none = {NULL, 0};
    sqlite3_stmt *st = NULL;
    bool *fresh = calloc(n + 1, sizeof(*fresh));
    char now[32];
    time_t t = time(NULL);
    struct tm tm;
    int rc = FQ_EIO;

    gmtime_r(&t, &tm);
    strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!fresh) {
        snprintf(err, errlen, "out of memory recording released cells");
        return FQ_ENOMEM;
    }
    pthread_mutex_lock(&l->mu);
    /* Scopes in memory first: loading one after the insert would bring
     * the new cells twice. */
    for (size_t i = 0; i < n; i++) {
        if (!scope_get(l, scope, classes[i], &rc)) {
            snprintf(err, errlen, "cannot load the ledger: %s",
                     rc == FQ_ETOOBIG ? "it is full" : fq_strerror(rc));
            goto out;
        }
    }
    rc = FQ_EIO;
    if (sqlite3_exec(l->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        goto out;
    if (sqlite3_prepare_v2(
            l->db,
            "INSERT INTO cells (dataset, vintage, class, ref, persons, parts, "
            "members, recorded, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
            "?8, ?9) ON CONFLICT DO NOTHING",
            -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 8, now, -1, SQLITE_STATIC) != SQLITE_OK)
        goto rollback;
    for (size_t i = 0; i < n; i++) {
        if ((rc = insert_cell(l, st, scope, classes[i], &cells[i], refs[i],
                              parts[i], n_parts[i], values ? values[i] : none,
                              &fresh[i])) < 0)
            goto rollback;
    }
    sqlite3_finalize(st);
    st = NULL;
    rc = FQ_EIO;
    if (sqlite3_exec(l->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto rollback;
    /* Durable: now in memory for the next checks. A memory cap hit here
     * keeps the record on disk; the next check reloads nothing new, so
     * it is refused instead (fail closed). */
    rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (fresh[i])
            rc = remember(l, scope, classes[i], &cells[i], refs[i], parts[i],
                          n_parts[i], values ? values[i] : none);
    }
    if (rc == FQ_ETOOBIG)
        snprintf(err, errlen,
                 "the differencing ledger of dataset %s is full (recorded, "
                 "but no further cell can be checked)",
                 scope->dataset);
    else if (rc < 0)
        snprintf(err, errlen, "out of memory recording released cells");
    goto out;
rollback:
    snprintf(err, errlen, "cannot record released cells: %s",
             sqlite3_errmsg(l->db));
    sqlite3_finalize(st);
    sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
out:
    pthread_mutex_unlock(&l->mu);
    free(fresh);
    return rc;
}

void
ag_ledger_stats(struct ag_ledger *l, const struct ag_ledger_scope *scope,
                size_t *ret_cells, size_t *ret_members)
{
    size_t cells = 0, members = 0;

    pthread_mutex_lock(&l->mu);
    for (struct lscope *s = l->scopes; s; s = s->next) {
        if (strcmp(s->dataset, scope->dataset) ||
            strcmp(s->vintage, scope->vintage))
            continue;
        cells += s->n;
        for (size_t i = 0; i < s->n; i++)
            members += s->cells[i].set.n;
    }
    pthread_mutex_unlock(&l->mu);
    *ret_cells = cells;
    *ret_members = members;
}
