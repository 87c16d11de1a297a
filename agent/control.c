/*
 * The steward's control channel (control.h). One thread polls the
 * listening socket and a wake pipe (for stop); each connection is checked
 * with SO_PEERCRED before anything is read, reads one capped line with a
 * receive timeout (a silent client cannot hold the channel), gets one
 * answer and is closed. Answers carry names, counts, sizes and vintages,
 * never data.
 */
#include "fq/compat.h"
#include "fq/buf.h"
#include "fq/error.h"
#include "fq/log.h"
#include "control.h"
#include "extract.h"
#include "store.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "fedq/v1/catalog.pb-c.h"
#include "fedq/v1/agent.pb-c.h"

#define IO_TIMEOUT_S 5 /* per read or write of a request or answer */

struct ag_control {
    struct ag_control_ops ops;
    int fd;      /* listening */
    int wake[2]; /* written by ag_control_stop */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    dev_t dev; /* of the socket file we made, so stop removes only it */
    ino_t ino;
    pthread_t thread;
    bool thread_live;
};

int
ag_control_path(const struct ag_config *cfg, char *buf, size_t len, char *err,
                size_t errlen)
{
    size_t max = sizeof(((struct sockaddr_un *)0)->sun_path);
    int n;

    if (cfg->control_socket)
        n = snprintf(buf, len, "%s", cfg->control_socket);
    else if (cfg->server.run_dir)
        n = snprintf(buf, len, "%s/agent-%s.ctl", cfg->server.run_dir,
                     cfg->agency);
    else {
        snprintf(err, errlen,
                 "%s: no control_socket and no run_dir to put it in",
                 cfg->doc.path);
        return FQ_ENOENT;
    }
    if (n < 0 || (size_t)n >= len || (size_t)n >= max) {
        snprintf(err, errlen,
                 "control socket path '%.200s' is longer than %zu bytes: set "
                 "control_socket to a shorter path",
                 buf, max - 1);
        return FQ_ETOOBIG;
    }
    return 0;
}

static int
fill_addr(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path))
        return FQ_ETOOBIG;
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return 0;
}

/* ---- the commands ------------------------------------------------------- */

/* One line: the message's own newlines would end the answer early. */
static void
answer_error(struct fq_buf *out, const char *msg)
{
    fq_buf_reset(out);
    fq_buf_append_str(out, "error ");
    for (const char *p = msg; *p; p++)
        fq_buf_append(out, *p == '\n' || *p == '\r' ? " " : p, 1);
    fq_buf_append_str(out, "\n");
}

/* Dataset names are identifiers (agent_config.c); anything else is not
 * echoed into messages or the log. */
static bool
valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 63)
        return false;
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    }
    return true;
}

static const char *const engine_names[] = {
    [AG_ENGINE_EXTRACT] = "extract",
    [AG_ENGINE_SQLITE] = "sqlite",
    [AG_ENGINE_PUSHDOWN] = "pushdown",
};

static const char *
engine_name(int e)
{
    return e >= 0 && (size_t)e < FQ_ARRAY_LEN(engine_names) ? engine_names[e]
                                                            : "unknown";
}

static void
cmd_refresh(struct ag_control *c, const char *name, uid_t uid,
            struct fq_buf *out)
{
    struct ag_catalog *cat = c->ops.catalog(c->ops.app);
    const struct ag_source *src = NULL;
    char err[1024];

    if (!valid_name(name)) {
        answer_error(out, "a dataset name is letters, digits and '_'");
        goto out;
    }
    if (!ag_catalog_find(cat, name, &src)) {
        snprintf(err, sizeof(err), "no dataset '%s' at this agency", name);
        answer_error(out, err);
        goto out;
    }
    if (src->engine != AG_ENGINE_EXTRACT) {
        snprintf(err, sizeof(err),
                 "dataset '%s' is queried live (engine %s): there is no "
                 "extract to refresh",
                 name, engine_name(src->engine));
        answer_error(out, err);
        goto out;
    }
    fq_log_info("control: refresh of %s asked by uid %u", name, (unsigned)uid);
    if (ag_store_refresh(c->ops.store, name, err, sizeof(err)) < 0) {
        answer_error(out, err);
        goto out;
    }
    struct ag_extract *x = ag_store_get(c->ops.store, name);
    fq_buf_printf(out, "ok %s\n", x ? x->vintage : "unknown");
    ag_extract_unref(x);
out:
    ag_catalog_unref(cat);
}

static void
status_line(struct ag_control *c, const char *name, const struct ag_source *src,
            struct fq_buf *out)
{
    if (src->engine != AG_ENGINE_EXTRACT) {
        fq_buf_printf(out, "%s engine=%s vintage=live\n", name,
                      engine_name(src->engine));
        return;
    }
    struct ag_extract *x = ag_store_get(c->ops.store, name);
    if (!x) {
        fq_buf_printf(out, "%s engine=extract vintage=none\n", name);
        return;
    }
    fq_buf_printf(out,
                  "%s engine=extract rows=%" PRIu64 " bytes=%zu vintage=%s "
                  "refresh=%" PRId64 "\n",
                  name, x->n_rows, x->map_len, x->vintage,
                  src->conf ? src->conf->refresh_ms : 0);
    ag_extract_unref(x);
}

static void
cmd_status(struct ag_control *c, struct fq_buf *out)
{
    struct ag_catalog *cat = c->ops.catalog(c->ops.app);
    const Fedq__V1__DescribeResponse *d = ag_catalog_describe(cat);

    fq_buf_printf(out, "ok %zu datasets\n", d->n_datasets);
    for (size_t i = 0; i < d->n_datasets; i++) {
        const struct ag_source *src = NULL;
        if (ag_catalog_find(cat, d->datasets[i]->name, &src))
            status_line(c, d->datasets[i]->name, src, out);
    }
    ag_catalog_unref(cat);
}

static void
dispatch(struct ag_control *c, const char *line, uid_t uid, struct fq_buf *out)
{
    if (strcmp(line, "status") == 0)
        cmd_status(c, out);
    else if (strncmp(line, "refresh ", 8) == 0)
        cmd_refresh(c, line + 8, uid, out);
    else
        answer_error(out, "unknown command (refresh DATASET, or status)");
}

/* ---- connections -------------------------------------------------------- */

static int
write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return FQ_EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads one line (without its newline) into buf. FQ_ETOOBIG if no newline
 * comes within len - 1 bytes; FQ_ENOENT on EOF before any byte (a probe,
 * such as a starting agent's check for a live socket); FQ_EIO on EOF or
 * timeout within the line. */
static int
read_line(int fd, char *buf, size_t len)
{
    size_t n = 0;

    while (n + 1 < len) {
        ssize_t r = recv(fd, buf + n, len - 1 - n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r == 0 && n == 0 ? FQ_ENOENT : FQ_EIO;
        char *nl = memchr(buf + n, '\n', (size_t)r);
        n += (size_t)r;
        if (nl) {
            *nl = '\0';
            return nl == buf + n - 1 ? 0 : FQ_EINVAL; /* one line only */
        }
    }
    return FQ_ETOOBIG;
}

/* Closing with unread input would reset the connection, and the client
 * could lose the answer: end our side, then read what is left (capped). */
static void
drain(int fd)
{
    char sink[512];
    size_t left = AG_CONTROL_ANSWER_MAX;

    shutdown(fd, SHUT_WR);
    while (left > 0) {
        ssize_t r = recv(fd, sink, sizeof(sink), 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        left -= (size_t)r < left ? (size_t)r : left;
    }
}

static void
serve_conn(struct ag_control *c, int fd)
{
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    char line[AG_CONTROL_LINE_MAX + 1], why[128];
    struct fq_buf out;
    int rc;

    fq_buf_init(&out, AG_CONTROL_ANSWER_MAX);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 ||
        clen != sizeof(cred)) {
        answer_error(&out, "cannot tell who you are");
    } else if (cred.uid != 0 && cred.uid != geteuid()) {
        fq_log_warnx("control: refusing uid %u (pid %ld): not the agent's "
                     "user",
                     (unsigned)cred.uid, (long)cred.pid);
        snprintf(why, sizeof(why),
                 "permission denied: uid %u is not this agent's user",
                 (unsigned)cred.uid);
        answer_error(&out, why);
    } else if ((rc = read_line(fd, line, sizeof(line))) == FQ_ENOENT) {
        goto out; /* nobody to answer */
    } else if (rc < 0) {
        answer_error(&out, rc == FQ_ETOOBIG  ? "request line too long"
                           : rc == FQ_EINVAL ? "one request line per "
                                               "connection"
                                             : "no request line");
    } else {
        dispatch(c, line, cred.uid, &out);
    }
    if (write_all(fd, fq_buf_str(&out), fq_buf_len(&out)) < 0)
        fq_log_warnx("control: the client left before its answer, ignoring");
    drain(fd);
out:
    fq_buf_release(&out);
}

static void *
control_main(void *arg)
{
    struct ag_control *c = arg;
    struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
                          {.fd = c->wake[0], .events = POLLIN}};

    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            fq_log_err(FQ_LOG_ERROR, fq_error_from_errno(errno),
                       "control: poll failed, the channel stops");
            break;
        }
        if (p[1].revents)
            break;
        if (!(p[0].revents & POLLIN))
            continue;
        int fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue; /* the client went away, or EMFILE: try again later */
        serve_conn(c, fd);
        close(fd);
    }
    return NULL;
}

/* ---- the socket --------------------------------------------------------- */

/* Removes a socket left at path by an agent that died; refuses to take
 * over one that answers, or anything that is not a socket. */
static int
clear_stale(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    struct stat sb;

    if (lstat(path, &sb) < 0)
        return errno == ENOENT ? 0 : fq_error_from_errno(errno);
    if (!S_ISSOCK(sb.st_mode)) {
        snprintf(err, errlen, "'%s' exists and is not a socket", path);
        return FQ_EPRECOND;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fq_error_from_errno(errno);
    fill_addr(&sa, path);
    int live = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    if (live) {
        snprintf(err, errlen,
                 "control socket '%s' is in use (another agent running?)",
                 path);
        return FQ_EPRECOND;
    }
    unlink(path);
    return 0;
}

/* Binds with umask 0177 so the socket is 0600 from its first moment;
 * SO_PEERCRED is the real check, the mode keeps others from connecting. */
static int
bind_private(struct ag_control *c, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    struct stat sb;
    int rc = 0;

    fill_addr(&sa, c->path);
    mode_t old = umask(0177);
    if (bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        rc = fq_error_from_errno(errno);
    umask(old);
    if (rc == 0 && (chmod(c->path, 0600) < 0 || stat(c->path, &sb) < 0))
        rc = fq_error_from_errno(errno);
    if (rc == 0 && listen(c->fd, 16) < 0)
        rc = fq_error_from_errno(errno);
    if (rc < 0) {
        snprintf(err, errlen, "cannot create control socket '%s': %s", c->path,
                 strerror(errno));
        return rc;
    }
    c->dev = sb.st_dev;
    c->ino = sb.st_ino;
    return 0;
}

static int
make_parent(const char *path)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    const char *slash = strrchr(path, '/');

    if (!slash || slash == path)
        return 0;
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return fq_error_from_errno(errno);
    return 0;
}

int
ag_control_start(const char *path, const struct ag_control_ops *ops,
                 struct ag_control **ret, char *err, size_t errlen)
{
    struct ag_control *c = calloc(1, sizeof(*c));
    int rc = FQ_ENOMEM;

    if (!c) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    c->ops = *ops;
    c->fd = c->wake[0] = c->wake[1] = -1;
    if (strlen(path) >= sizeof(c->path)) {
        snprintf(err, errlen, "control socket path '%.200s' is too long", path);
        rc = FQ_ETOOBIG;
        goto fail;
    }
    memcpy(c->path, path, strlen(path) + 1);
    if ((rc = make_parent(path)) < 0 ||
        (rc = clear_stale(path, err, errlen)) < 0) {
        if (rc != FQ_EPRECOND)
            snprintf(err, errlen, "cannot create control socket '%s': %s", path,
                     fq_strerror(rc));
        goto fail;
    }
    if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        pipe2(c->wake, O_CLOEXEC) < 0) {
        rc = fq_error_from_errno(errno);
        snprintf(err, errlen, "cannot create control socket: %s",
                 strerror(errno));
        goto fail;
    }
    if ((rc = bind_private(c, err, errlen)) < 0)
        goto fail;
    if ((rc = -pthread_create(&c->thread, NULL, control_main, c)) < 0) {
        snprintf(err, errlen, "cannot start the control thread: %s",
                 strerror(-rc));
        rc = fq_error_from_errno(-rc);
        goto fail;
    }
    c->thread_live = true;
    *ret = c;
    return 0;
fail:
    ag_control_stop(c);
    return rc;
}

void
ag_control_stop(struct ag_control *c)
{
    struct stat sb;

    if (!c)
        return;
    if (c->thread_live) {
        if (write(c->wake[1], "x", 1) < 0)
            fq_log_warnx("control: cannot wake the thread, ignoring");
        pthread_join(c->thread, NULL);
    }
    /* Only our own socket: another agent may have replaced it. */
    if (c->ino && stat(c->path, &sb) == 0 && sb.st_dev == c->dev &&
        sb.st_ino == c->ino)
        unlink(c->path);
    if (c->fd >= 0)
        close(c->fd);
    if (c->wake[0] >= 0)
        close(c->wake[0]);
    if (c->wake[1] >= 0)
        close(c->wake[1]);
    free(c);
}

/* ---- the client --------------------------------------------------------- */

int
ag_control_request(const char *path, const char *line, char *buf, size_t len,
                   char *err, size_t errlen)
{
    struct sockaddr_un sa;
    size_t n = 0;
    int fd, rc = 0;

    if (fill_addr(&sa, path) < 0) {
        snprintf(err, errlen, "control socket path '%.200s' is too long", path);
        return FQ_ETOOBIG;
    }
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        rc = fq_error_from_errno(errno);
        snprintf(err, errlen, "cannot connect to '%s': %s", path,
                 strerror(errno));
        goto out;
    }
    if (write_all(fd, line, strlen(line)) < 0) {
        snprintf(err, errlen, "cannot send to '%s': %s", path, strerror(errno));
        rc = FQ_EIO;
        goto out;
    }
    /* No timeout: a refresh takes as long as its build. */
    while (n + 1 < len) {
        ssize_t r = recv(fd, buf + n, len - 1 - n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == ECONNRESET && n > 0)
            break; /* the agent closed without reading all we sent */
        if (r < 0) {
            snprintf(err, errlen, "cannot read from '%s': %s", path,
                     strerror(errno));
            rc = FQ_EIO;
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
out:
    if (fd >= 0)
        close(fd);
    return rc;
}
