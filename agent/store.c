/*
 * The extract store (store.h): one current extract per dataset served by
 * the extract engine, the files they come from, and their refresh.
 *
 * Files: DIR/<dataset>.<seq>.fqx, seq increasing. At start the newest
 * file that ag_extract_open accepts for the dataset's configuration is
 * mapped; if none is, one is built from the source. A refresh builds the
 * next seq, maps it and swaps it in; the last two files are kept (a query
 * may still map an older one: unlinking a mapped file is safe). A seq is
 * claimed by creating its file with O_EXCL before the build renames the
 * real file over it, so that two builders never write the same name; an
 * empty file is such a claim and is never mapped.
 *
 * Locks: refresh_mu serializes everything that builds or changes the set
 * of datasets (refresh, reconfigure, the schedule, close), so at most one
 * build runs per store and the configuration in use cannot change under
 * a build. mu guards what queries read: the entries array, each entry's
 * current extract, the mapped total, and the schedule's due times. Order:
 * refresh_mu, then mu. Queries take only mu, for a pointer copy and a
 * reference, so a build never blocks them.
 *
 * The configuration is borrowed: the caller keeps cfg alive until a
 * successful ag_store_reconfigure with another one (or ag_store_close)
 * has returned; after that the store never touches the old one.
 */
#include "fq/compat.h"
#include "fq/daemon.h"
#include "fq/error.h"
#include "fq/log.h"
#include "store.h"
#include "extract.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

#define STORE_KEEP     2    /* files kept per dataset */
#define STORE_MAX_SEQS 4096 /* files of one dataset looked at */
#define STORE_CLAIMS   64   /* seqs tried before giving up */
#define CANCEL_EVERY   4096 /* rows between two looks at the stop flag */
#define STORE_PATH_MAX 4096

struct store_entry {
    const struct ag_dataset_conf *conf; /* in the store's cfg */
    struct ag_extract *cur;             /* never NULL in a live set */
    uint64_t seq;                       /* of cur's file */
    int64_t due_ms; /* monotonic time of the next scheduled refresh, or 0 */
    bool built;     /* by the reconfigure in progress (undone on failure) */
};

struct store_set {
    struct store_entry *v; /* malloc'd */
    size_t n;
    char *dir; /* malloc'd */
    const struct ag_config *cfg;
};

struct ag_store {
    pthread_mutex_t refresh_mu;
    pthread_mutex_t mu;
    pthread_cond_t wake;  /* the schedule: due times changed, or stop */
    struct store_set set; /* replaced under both locks */
    size_t mapped;        /* bytes of the set's extracts (mu) */
    atomic_bool stop;
    pthread_t thread;
    bool thread_live;
};

/* ---- small helpers ------------------------------------------------------ */

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double
seconds_since(int64_t t0)
{
    return (double)(now_ms() - t0) / 1000.0;
}

/* The data's time: now, UTC, ISO 8601 to the second. */
static void
vintage_now(char *buf, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;

    if (!gmtime_r(&t, &tm) ||
        strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "unknown");
}

static bool
same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Index of d's contributor column, or -1: rows are sorted by it, so an
 * extract built for another contributor cannot serve. */
static int
contributor_index(const struct ag_dataset_conf *d)
{
    for (size_t i = 0; d->contributor && i < d->n_columns; i++) {
        if (strcmp(d->columns[i].name, d->contributor) == 0)
            return (int)i;
    }
    return -1;
}

static bool
same_shape(const struct ag_dataset_conf *a, const struct ag_dataset_conf *b)
{
    return ag_extract_schema_hash(a) == ag_extract_schema_hash(b) &&
           contributor_index(a) == contributor_index(b);
}

/* Same rows: same source and same shape. */
static bool
same_data(const struct ag_dataset_conf *a, const struct ag_dataset_conf *b)
{
    const struct ag_source_conf *x = &a->source, *y = &b->source;

    return same_str(x->sqlite, y->sqlite) && same_str(x->csv, y->csv) &&
           same_str(x->postgres, y->postgres) && same_str(x->table, y->table) &&
           same_str(x->delimiter, y->delimiter) && same_shape(a, b);
}

static int
file_path(char *buf, size_t len, const char *dir, const char *name,
          uint64_t seq)
{
    int n = snprintf(buf, len, "%s/%s.%" PRIu64 ".fqx", dir, name, seq);
    return n < 0 || (size_t)n >= len ? FQ_ETOOBIG : 0;
}

/* ---- the directory ---------------------------------------------------- */

/* The extract directory of cfg (malloc'd): extract_dir, or
 * ../extracts/AGENCY from the configuration file's directory. */
static char *
store_dir(const struct ag_config *cfg)
{
    char rel[64];

    if (cfg->extract_dir)
        return strdup(cfg->extract_dir);
    snprintf(rel, sizeof(rel), "../extracts/%s", cfg->agency);
    return fq_daemon_default_dir(cfg->doc.path, rel);
}

/* The seq of file name fname if it is one of dataset's files, else 0. */
static uint64_t
parse_seq(const char *fname, const char *dataset)
{
    size_t n = strlen(dataset);
    uint64_t seq = 0;
    const char *p;

    if (strncmp(fname, dataset, n) != 0 || fname[n] != '.')
        return 0;
    for (p = fname + n + 1; *p >= '0' && *p <= '9'; p++) {
        if (seq > (UINT64_MAX - 9) / 10)
            return 0;
        seq = seq * 10 + (uint64_t)(*p - '0');
    }
    return p > fname + n + 1 && strcmp(p, ".fqx") == 0 ? seq : 0;
}

static int
seq_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x < y) - (x > y);
}

/* The seqs of dataset's files in dir, newest first, at most
 * STORE_MAX_SEQS; *ret is malloc'd (caller frees). A missing directory
 * has none. */
static int
scan_seqs(const char *dir, const char *dataset, uint64_t **ret, size_t *ret_n)
{
    uint64_t *v = malloc(STORE_MAX_SEQS * sizeof(*v));
    size_t n = 0;
    DIR *d;
    struct dirent *de;

    if (!v)
        return FQ_ENOMEM;
    if (!(d = opendir(dir))) {
        int rc = errno == ENOENT ? 0 : fq_error_from_errno(errno);
        if (rc < 0) {
            free(v);
            return rc;
        }
    }
    while (d && (de = readdir(d)) && n < STORE_MAX_SEQS) {
        uint64_t seq = parse_seq(de->d_name, dataset);
        if (seq)
            v[n++] = seq;
    }
    if (d)
        closedir(d);
    qsort(v, n, sizeof(*v), seq_desc);
    *ret = v;
    *ret_n = n;
    return 0;
}

/* Deletes dataset's files older than the one at keep_seq, but for the
 * newest STORE_KEEP - 1 of them. Newer files (other builders' claims) stay. */
static void
prune(const char *dir, const char *dataset, uint64_t keep_seq)
{
    char path[STORE_PATH_MAX];
    uint64_t *v;
    size_t n, kept = 1;

    if (scan_seqs(dir, dataset, &v, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (v[i] >= keep_seq || kept++ < STORE_KEEP)
            continue;
        if (file_path(path, sizeof(path), dir, dataset, v[i]) == 0 &&
            unlink(path) < 0 && errno != ENOENT)
            fq_log_warnx("cannot remove old extract '%s': %s, ignoring", path,
                         strerror(errno));
    }
    free(v);
}

/* Creates the next seq's file, empty, so that no other builder takes it. */
static int
claim_seq(const char *dir, const char *dataset, uint64_t *ret_seq, char *path,
          size_t pathlen, char *err, size_t errlen)
{
    uint64_t *v, seq;
    size_t n;
    int rc;

    if ((rc = scan_seqs(dir, dataset, &v, &n)) < 0) {
        snprintf(err, errlen, "cannot read extract directory '%s': %s", dir,
                 fq_strerror(rc));
        return rc;
    }
    seq = n ? v[0] + 1 : 1;
    free(v);
    for (int i = 0; i < STORE_CLAIMS; i++, seq++) {
        if ((rc = file_path(path, pathlen, dir, dataset, seq)) < 0)
            break;
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            close(fd);
            *ret_seq = seq;
            return 0;
        }
        rc = fq_error_from_errno(errno);
        if (errno != EEXIST)
            break;
    }
    snprintf(err, errlen, "cannot create an extract file in '%s': %s", dir,
             fq_strerror(rc));
    return rc;
}

/* ---- building ----------------------------------------------------------- */

/* A row source that stops early when the store closes: a build can take
 * minutes and must not hold up the agent's exit. */
struct cancel_source {
    struct ag_row_source inner;
    const atomic_bool *stop;
    uint64_t rows;
};

static int
cancel_next(void *self, struct ag_value *vals, char *err, size_t errlen)
{
    struct cancel_source *c = self;

    if (++c->rows % CANCEL_EVERY == 0 && atomic_load(c->stop)) {
        snprintf(err, errlen, "the agent is stopping");
        return FQ_ECANCELED;
    }
    return c->inner.next(c->inner.self, vals, err, errlen);
}

static int
source_open(const struct ag_dataset_conf *d, struct ag_row_source *ret,
            char *err, size_t errlen)
{
    if (d->source.csv)
        return ag_source_csv_open(d, ret, err, errlen);
    if (d->source.postgres)
        return ag_source_pg_open(d, ret, err, errlen);
    return ag_source_sqlite_open(d, ret, err, errlen);
}

static void
log_extract(const char *what, const struct ag_dataset_conf *d,
            const struct ag_extract *x, double secs)
{
    /* Sizes and times only: never data. */
    fq_log_info("extract %s: %s: %" PRIu64 " rows, %zu bytes, %.2f s, "
                "vintage %s",
                d->name, what, x->n_rows, x->map_len, secs, x->vintage);
}

/*
 * Builds d's extract from its source into the next file of dir and maps
 * it. *ret_x has one reference (the caller's); *ret_seq is its file. On
 * failure no file is left behind.
 */
static int
build(struct ag_store *s, const char *dir, const struct ag_dataset_conf *d,
      const char *why, struct ag_extract **ret_x, uint64_t *ret_seq, char *err,
      size_t errlen)
{
    char path[STORE_PATH_MAX], vintage[AG_VINTAGE_MAX];
    struct cancel_source cs = {.stop = &s->stop};
    struct ag_row_source src = {.self = &cs, .next = cancel_next};
    struct ag_extract *x = NULL;
    int64_t t0 = now_ms();
    uint64_t seq = 0;
    int rc;

    vintage_now(vintage, sizeof(vintage)); /* before the first row is read */
    if ((rc = fq_daemon_make_dir("extract", dir, err, errlen)) < 0 ||
        (rc = claim_seq(dir, d->name, &seq, path, sizeof(path), err, errlen)) <
            0)
        return rc;
    if ((rc = source_open(d, &cs.inner, err, errlen)) < 0)
        goto out;
    rc = ag_extract_build(d, &src, vintage, path, err, errlen);
    cs.inner.close(cs.inner.self);
    if (rc == 0)
        rc = ag_extract_open(path, d, &x, err, errlen);
out:
    if (rc < 0) {
        unlink(path);
        return rc;
    }
    log_extract(why, d, x, seconds_since(t0));
    *ret_x = x;
    *ret_seq = seq;
    return 0;
}

/*
 * Maps the newest of d's files in dir that fits d. Files that do not are
 * logged and skipped (kept on disk: they may serve another configuration).
 * FQ_ENOENT if none fits.
 */
static int
map_newest(const char *dir, const struct ag_dataset_conf *d,
           struct ag_extract **ret_x, uint64_t *ret_seq)
{
    char path[STORE_PATH_MAX], msg[512];
    struct ag_extract *x = NULL;
    uint64_t *v;
    size_t n;
    struct stat sb;
    int rc = FQ_ENOENT;

    if (scan_seqs(dir, d->name, &v, &n) < 0)
        return FQ_ENOENT; /* then build, which reports the directory */
    for (size_t i = 0; i < n && rc < 0; i++) {
        if (file_path(path, sizeof(path), dir, d->name, v[i]) < 0 ||
            stat(path, &sb) < 0 || sb.st_size == 0)
            continue; /* gone, or another builder's claim */
        int orc = ag_extract_open(path, d, &x, msg, sizeof(msg));
        if (orc == 0 && x->contributor != contributor_index(d)) {
            snprintf(msg, sizeof(msg), "built for another contributor");
            ag_extract_unref(x);
            orc = FQ_EPRECOND;
        }
        if (orc < 0) {
            fq_log_warnx("extract %s: refusing '%s': %s, ignoring", d->name,
                         path, msg);
            continue;
        }
        fq_log_info("extract %s: mapped '%s': %" PRIu64 " rows, %zu bytes, "
                    "vintage %s",
                    d->name, path, x->n_rows, x->map_len, x->vintage);
        *ret_x = x;
        *ret_seq = v[i];
        rc = 0;
    }
    free(v);
    return rc;
}

/* ---- sets of entries ---------------------------------------------------- */

static struct store_entry *
set_find(const struct store_set *set, const char *name)
{
    for (size_t i = 0; i < set->n; i++) {
        if (strcmp(set->v[i].conf->name, name) == 0)
            return &set->v[i];
    }
    return NULL;
}

/* Drops the set's references; with undo, also the files built for it. */
static void
set_release(struct store_set *set, bool undo)
{
    char path[STORE_PATH_MAX];

    for (size_t i = 0; i < set->n; i++) {
        struct store_entry *e = &set->v[i];
        if (undo && e->built &&
            file_path(path, sizeof(path), set->dir, e->conf->name, e->seq) == 0)
            unlink(path);
        ag_extract_unref(e->cur);
    }
    free(set->v);
    free(set->dir);
    memset(set, 0, sizeof(*set));
}

static size_t
set_bytes(const struct store_set *set)
{
    size_t n = 0;
    for (size_t i = 0; i < set->n; i++)
        n += set->v[i].cur->map_len;
    return n;
}

static int64_t
due_after(const struct ag_dataset_conf *d, int64_t now)
{
    return d->refresh_ms > 0 ? now + d->refresh_ms : 0;
}

/*
 * The entry of d in the new set: the running extract if its data did not
 * change; for a dataset new to the store, the newest file that fits (as at
 * start); else (new without a file, or its columns or source changed) a
 * build.
 */
static int
entry_prepare(struct ag_store *s, const char *dir,
              const struct ag_dataset_conf *d, struct store_entry *e, char *err,
              size_t errlen)
{
    const struct store_entry *old = set_find(&s->set, d->name);
    int rc;

    e->conf = d;
    e->due_ms = due_after(d, now_ms());
    if (old && same_data(old->conf, d)) {
        e->cur = old->cur;
        ag_extract_ref(e->cur);
        e->seq = old->seq;
        if (old->conf->refresh_ms == d->refresh_ms)
            e->due_ms = old->due_ms;
        return 0;
    }
    if (!old && map_newest(dir, d, &e->cur, &e->seq) == 0)
        return 0;
    rc = build(s, dir, d, s->set.cfg ? "built on reload" : "built at start",
               &e->cur, &e->seq, err, errlen);
    if (rc == 0)
        e->built = true;
    return rc;
}

/* The set for cfg, reusing what it can of the running one. */
static int
set_prepare(struct ag_store *s, const struct ag_config *cfg,
            struct store_set *ret, char *err, size_t errlen)
{
    struct store_set set = {.cfg = cfg};
    char msg[768];
    int rc = FQ_ENOMEM;

    if (!(set.dir = store_dir(cfg)) ||
        !(set.v = calloc(cfg->n_datasets + 1, sizeof(*set.v)))) {
        snprintf(err, errlen, "out of memory opening the extracts");
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_datasets; i++) {
        const struct ag_dataset_conf *d = &cfg->datasets[i];
        if (d->engine != AG_ENGINE_EXTRACT)
            continue;
        if ((rc = entry_prepare(s, set.dir, d, &set.v[set.n], msg,
                                sizeof(msg))) < 0) {
            snprintf(err, errlen, "dataset '%s': %s", d->name, msg);
            goto fail;
        }
        set.n++;
    }
    size_t bytes = set_bytes(&set);
    if (bytes > (size_t)cfg->max_extract_memory) {
        snprintf(err, errlen,
                 "the extracts take %zu bytes, more than max_extract_memory "
                 "(%" PRId64 ")",
                 bytes, cfg->max_extract_memory);
        rc = FQ_ETOOBIG;
        goto fail;
    }
    *ret = set;
    return 0;
fail:
    set_release(&set, true);
    return rc;
}

/* ---- the schedule ------------------------------------------------------- */

static int refresh_locked(struct ag_store *s, const char *name, const char *why,
                          char *err, size_t errlen);

/* The entry due first (mu held), or NULL if none is scheduled. */
static const struct store_entry *
next_due(const struct ag_store *s)
{
    const struct store_entry *first = NULL;

    for (size_t i = 0; i < s->set.n; i++) {
        const struct store_entry *e = &s->set.v[i];
        if (e->due_ms && (!first || e->due_ms < first->due_ms))
            first = e;
    }
    return first;
}

static void
wait_until_ms(struct ag_store *s, int64_t due)
{
    struct timespec ts = {.tv_sec = due / 1000,
                          .tv_nsec = (due % 1000) * 1000000};
    pthread_cond_timedwait(&s->wake, &s->mu, &ts);
}

/* Runs the refresh of one due dataset; mu held on entry and exit. */
static void
run_due(struct ag_store *s, const struct store_entry *e)
{
    char name[128], err[1024];

    snprintf(name, sizeof(name), "%s", e->conf->name);
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_lock(&s->refresh_mu);
    /* The set may have changed while unlocked; refresh_locked finds the
     * dataset again, and logs. */
    if (!atomic_load(&s->stop))
        refresh_locked(s, name, "scheduled refresh", err, sizeof(err));
    pthread_mutex_unlock(&s->refresh_mu);
    pthread_mutex_lock(&s->mu);
}

static void *
schedule_main(void *arg)
{
    struct ag_store *s = arg;

    pthread_mutex_lock(&s->mu);
    while (!atomic_load(&s->stop)) {
        const struct store_entry *e = next_due(s);
        if (!e)
            pthread_cond_wait(&s->wake, &s->mu);
        else if (e->due_ms > now_ms())
            wait_until_ms(s, e->due_ms);
        else
            run_due(s, e);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- refresh ------------------------------------------------------------ */

/* Puts x in e's place unless the mapped total would pass the limit (mu). */
static int
swap_in(struct ag_store *s, struct store_entry *e, struct ag_extract *x,
        uint64_t seq, struct ag_extract **ret_old, char *err, size_t errlen)
{
    int64_t max = s->set.cfg->max_extract_memory;
    size_t total = s->mapped - e->cur->map_len + x->map_len;

    if (total > (size_t)max) {
        snprintf(err, errlen,
                 "the new extract (%zu bytes) would bring the mapped extracts "
                 "to %zu bytes, more than max_extract_memory (%" PRId64 ")",
                 x->map_len, total, max);
        return FQ_ETOOBIG;
    }
    *ret_old = e->cur;
    e->cur = x;
    e->seq = seq;
    s->mapped = total;
    return 0;
}

/* refresh_mu held: the set, its cfg and dir cannot change. Logs. */
static int
refresh_locked(struct ag_store *s, const char *name, const char *why, char *err,
               size_t errlen)
{
    struct store_entry *e = set_find(&s->set, name);
    struct ag_extract *x = NULL, *old = NULL;
    char msg[768], path[STORE_PATH_MAX];
    uint64_t seq = 0;
    int rc;

    if (!e) {
        snprintf(err, errlen, "no dataset '%s' is served from an extract",
                 name);
        return FQ_ENOENT;
    }
    rc = build(s, s->set.dir, e->conf, why, &x, &seq, msg, sizeof(msg));
    pthread_mutex_lock(&s->mu);
    if (rc == 0)
        rc = swap_in(s, e, x, seq, &old, msg, sizeof(msg));
    e->due_ms = due_after(e->conf, now_ms());
    pthread_mutex_unlock(&s->mu);
    pthread_cond_broadcast(&s->wake);
    if (rc < 0) {
        if (x && file_path(path, sizeof(path), s->set.dir, name, seq) == 0)
            unlink(path);
        ag_extract_unref(x);
        if (rc == FQ_ECANCELED)
            fq_log_info("extract %s: %s stopped: %s", name, why, msg);
        else
            fq_log_errx("extract %s: %s failed, the old extract keeps "
                        "serving: %s",
                        name, why, msg);
        snprintf(err, errlen, "dataset '%s': %s", name, msg);
        return rc;
    }
    ag_extract_unref(old); /* queries still holding it keep it */
    prune(s->set.dir, name, seq);
    return 0;
}

/* ---- the API ------------------------------------------------------------ */

int
ag_store_open(const struct ag_config *cfg, struct ag_store **ret, char *err,
              size_t errlen)
{
    struct ag_store *s = calloc(1, sizeof(*s));
    pthread_condattr_t ca;
    int rc;

    if (!s) {
        snprintf(err, errlen, "out of memory opening the extracts");
        return FQ_ENOMEM;
    }
    pthread_mutex_init(&s->refresh_mu, NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&s->stop, false);
    if ((rc = ag_store_reconfigure(s, cfg, err, errlen)) < 0)
        goto fail;
    if ((rc = -pthread_create(&s->thread, NULL, schedule_main, s)) < 0) {
        snprintf(err, errlen, "cannot start the refresh schedule: %s",
                 strerror(-rc));
        rc = fq_error_from_errno(-rc);
        goto fail;
    }
    s->thread_live = true;
    *ret = s;
    return 0;
fail:
    ag_store_close(s);
    return rc;
}

struct ag_extract *
ag_store_get(struct ag_store *s, const char *name)
{
    struct ag_extract *x = NULL;

    pthread_mutex_lock(&s->mu);
    const struct store_entry *e = set_find(&s->set, name);
    if (e) {
        x = e->cur;
        ag_extract_ref(x);
    }
    pthread_mutex_unlock(&s->mu);
    return x;
}

int
ag_store_refresh(struct ag_store *s, const char *name, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->refresh_mu);
    int rc = refresh_locked(s, name, "refresh", err, errlen);
    pthread_mutex_unlock(&s->refresh_mu);
    return rc;
}

int
ag_store_reconfigure(struct ag_store *s, const struct ag_config *cfg, char *err,
                     size_t errlen)
{
    struct store_set set, old;
    int rc;

    pthread_mutex_lock(&s->refresh_mu);
    if ((rc = set_prepare(s, cfg, &set, err, errlen)) < 0)
        goto out;
    pthread_mutex_lock(&s->mu);
    old = s->set;
    s->set = set;
    s->mapped = set_bytes(&set);
    pthread_mutex_unlock(&s->mu);
    pthread_cond_broadcast(&s->wake);
    for (size_t i = 0; i < set.n; i++) {
        if (set.v[i].built)
            prune(set.dir, set.v[i].conf->name, set.v[i].seq);
        set.v[i].built = false;
    }
    set_release(&old, false);
out:
    pthread_mutex_unlock(&s->refresh_mu);
    return rc;
}

void
ag_store_close(struct ag_store *s)
{
    if (!s)
        return;
    atomic_store(&s->stop, true);
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->mu);
    if (s->thread_live)
        pthread_join(s->thread, NULL);
    set_release(&s->set, false);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->refresh_mu);
    free(s);
}
