/*
 * The gateway's SQLite state files (held queries, the cell budget): one
 * place that makes the state directory 0700, creates the file 0600 before
 * SQLite opens it (what analysts asked and were given is nobody else's
 * business), and opens one connection for several threads with a busy
 * timeout and the file's schema.
 */
#include "fq/compat.h"
#include "fq/daemon.h"
#include "fq/error.h"
#include "gateway.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>

static int
create_private(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

    if (fd < 0) {
        int rc = fq_error_from_errno(errno);
        snprintf(err, errlen, "cannot create '%s': %s", path, strerror(errno));
        return rc;
    }
    close(fd);
    return 0;
}

int
gw_state_db_open(const struct gw_config *cfg, const char *file,
                 const char *what, const char *schema, sqlite3 **ret, char *err,
                 size_t errlen)
{
    char *dir = cfg->state_dir
                    ? strdup(cfg->state_dir)
                    : fq_daemon_default_dir(cfg->doc.path, "../state/gateway");
    char *path = NULL;
    sqlite3 *db = NULL;
    int rc = FQ_ENOMEM;

    if (!dir || asprintf(&path, "%s/%s", dir, file) < 0) {
        path = NULL;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if ((rc = fq_daemon_make_dir("state", dir, err, errlen)) < 0 ||
        (rc = create_private(path, err, errlen)) < 0)
        goto out;
    rc = FQ_EIO;
    if (sqlite3_open_v2(path, &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(db, 5000) != SQLITE_OK ||
        sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open the %s '%s': %s", what, path,
                 db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    *ret = db;
    db = NULL;
    rc = 0;
out:
    sqlite3_close(db);
    free(path);
    free(dir);
    return rc;
}

void
gw_utc_now(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
