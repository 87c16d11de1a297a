/* Signals and run files for the fedq servers; see fq/daemon.h. */
#include "fq/compat.h"
#include "fq/daemon.h"
#include "fq/error.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

static sigset_t daemon_sigs;

void
fq_daemon_block_signals(void)
{
    sigemptyset(&daemon_sigs);
    sigaddset(&daemon_sigs, SIGTERM);
    sigaddset(&daemon_sigs, SIGINT);
    sigaddset(&daemon_sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &daemon_sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
}

enum fq_signal
fq_daemon_wait_signal(void)
{
    for (;;) {
        int sig = 0;
        if (sigwait(&daemon_sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP)
            return FQ_SIG_RELOAD;
        return FQ_SIG_STOP;
    }
}

static int
daemon_write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fq_error_from_errno(errno);
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int
fq_daemon_make_dir(const char *what, const char *dir, char *err, size_t errlen)
{
    char p[4096];
    size_t len = strlen(dir);

    if (len >= sizeof(p)) {
        snprintf(err, errlen, "%s directory '%.200s...' is too long", what,
                 dir);
        return FQ_ETOOBIG;
    }
    memcpy(p, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0700) < 0 && errno != EEXIST) {
            int rc = fq_error_from_errno(errno);
            snprintf(err, errlen, "cannot create %s directory '%s': %s", what,
                     p, strerror(errno));
            return rc;
        }
        p[i] = c;
    }
    return 0;
}

char *
fq_daemon_default_dir(const char *config_path, const char *rel)
{
    const char *slash = strrchr(config_path, '/');
    char *dir = NULL;

    if (!slash && asprintf(&dir, "%s", rel) < 0)
        return NULL;
    if (slash && asprintf(&dir, "%.*s/%s", (int)(slash - config_path),
                          config_path, rel) < 0)
        return NULL;
    return dir;
}

int
fq_daemon_write_runfile(const char *dir, const char *name, const char *content)
{
    char path[4096], tmp[4096];
    int rc;

    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return fq_error_from_errno(errno);
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/.%s.%ld", dir, name, (long)getpid()) >=
            (int)sizeof(tmp))
        return FQ_ETOOBIG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return fq_error_from_errno(errno);
    rc = daemon_write_all(fd, content, strlen(content));
    if (rc == 0 && fsync(fd) < 0)
        rc = fq_error_from_errno(errno);
    close(fd);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = fq_error_from_errno(errno);
    if (rc < 0)
        unlink(tmp);
    return rc;
}

void
fq_daemon_remove_runfile(const char *dir, const char *name)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) < (int)sizeof(path))
        unlink(path);
}

/* ---- shared main ------------------------------------------------------- */

#include <getopt.h>

#include "fq/log.h"
#include "fq/rpc.h"

#ifndef FQ_VERSION
#define FQ_VERSION "0.1.0"
#endif

static void
daemon_usage(FILE *out, const char *prog)
{
    fprintf(out,
            "usage: %s [--log-format text|json] [--log-level LEVEL] "
            "--config FILE\n"
            "       %s --check FILE\n"
            "       %s --version | --help\n"
            "\n"
            "  --config FILE      serve with this configuration\n"
            "  --check FILE       validate FILE (and the files it names), "
            "print\n"
            "                     FILE:LINE: what is wrong, exit non-zero "
            "if bad\n"
            "  --log-format FMT   text (default) or json; overrides the "
            "config\n"
            "  --log-level LEVEL  debug, info, warn or error\n"
            "  --config-reference print every configuration key as "
            "Markdown\n"
            "Signals: SIGTERM/SIGINT drain and exit 0; SIGHUP reloads.\n",
            prog, prog, prog);
}

int
fq_daemon_parse_args(int argc, char **argv, const char *prog,
                     struct fq_daemon_args *ret)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", required_argument, NULL, 'k'},
        {"log-format", required_argument, NULL, 'f'},
        {"log-level", required_argument, NULL, 'l'},
        {"config-reference", no_argument, NULL, 'R'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct fq_daemon_args a = {0};
    int c;

    optind = 0; /* 0, not 1: also resets glibc's state inside a group */
    while ((c = getopt_long(argc, argv, "c:k:f:l:Vh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            a.config = optarg;
            break;
        case 'k':
            a.config = optarg;
            a.check = true;
            break;
        case 'f':
            a.log_format = optarg;
            break;
        case 'l':
            a.log_level = optarg;
            break;
        case 'R':
            a.reference = true;
            *ret = a;
            return 0;
        case 'V':
            printf("%s %s\n", prog, FQ_VERSION);
            exit(0);
        case 'h':
            daemon_usage(stdout, prog);
            exit(0);
        default:
            daemon_usage(stderr, prog);
            return FQ_EINVAL;
        }
    }
    if (optind < argc && !a.config)
        a.config = argv[optind++];
    if (optind < argc || !a.config) {
        daemon_usage(stderr, prog);
        return FQ_EINVAL;
    }
    *ret = a;
    return 0;
}

void
fq_daemon_setup_logging(const char *prog, int cfg_format, int cfg_level,
                        const struct fq_daemon_args *a)
{
    enum fq_log_format fmt = (enum fq_log_format)cfg_format;
    enum fq_log_level level = (enum fq_log_level)cfg_level;

    bool bad_fmt =
        a->log_format && fq_log_parse_format(a->log_format, &fmt) < 0;
    bool bad_level =
        a->log_level && fq_log_parse_level(a->log_level, &level) < 0;

    fq_log_setup(prog, level, fmt);
    if (bad_fmt)
        fq_log_warnx("unknown --log-format '%s', ignoring", a->log_format);
    if (bad_level)
        fq_log_warnx("unknown --log-level '%s', ignoring", a->log_level);
}

static int
daemon_write_runfiles(const struct fq_daemon_spec *s, const char *addr)
{
    char name[256], buf[64];
    int rc;

    if (!s->run_dir)
        return 0;
    snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    snprintf(name, sizeof(name), "%s.pid", s->name);
    if ((rc = fq_daemon_write_runfile(s->run_dir, name, buf)) < 0)
        return rc;
    snprintf(name, sizeof(name), "%s.addr", s->name);
    char line[160];
    snprintf(line, sizeof(line), "%s\n", addr);
    return fq_daemon_write_runfile(s->run_dir, name, line);
}

static void
daemon_remove_runfiles(const struct fq_daemon_spec *s)
{
    char name[256];

    if (!s->run_dir)
        return;
    snprintf(name, sizeof(name), "%s.addr", s->name);
    fq_daemon_remove_runfile(s->run_dir, name);
    snprintf(name, sizeof(name), "%s.pid", s->name);
    fq_daemon_remove_runfile(s->run_dir, name);
}

static void
daemon_loop(const struct fq_daemon_spec *s)
{
    for (;;) {
        enum fq_signal sig = fq_daemon_wait_signal();
        if (sig == FQ_SIG_STOP)
            return;
        if (s->reload) {
            fq_log_info("reloading on SIGHUP");
            s->reload(s->app);
        } else {
            fq_log_info("nothing to reload on SIGHUP, ignoring");
        }
    }
}

int
fq_daemon_serve(const struct fq_daemon_spec *spec)
{
    struct fq_rpc_server *srv = NULL;
    struct fq_daemon_spec copy = *spec, *s = &copy;
    char err[512], name[128], run_dir[4096];
    int rc;

    /* A reload may free the configuration these strings came from. */
    snprintf(name, sizeof(name), "%s", spec->name);
    copy.name = name;
    if (spec->run_dir) {
        snprintf(run_dir, sizeof(run_dir), "%s", spec->run_dir);
        copy.run_dir = run_dir;
    }

    if ((rc = fq_rpc_server_new(s->rpc, &srv, err, sizeof(err))) < 0) {
        fq_log_errx("%s", err);
        return 1;
    }
    const char *addr = fq_rpc_server_address(srv);
    if (s->server_out)
        *s->server_out = srv;
    if ((rc = fq_rpc_server_start(srv)) < 0) {
        fq_log_err(FQ_LOG_ERROR, rc, "cannot start workers");
        goto out;
    }
    /* Run files appear only once the server answers: scripts wait on them. */
    if ((rc = daemon_write_runfiles(s, addr)) < 0) {
        fq_log_err(FQ_LOG_ERROR, rc, "cannot write run files in '%s'",
                   s->run_dir);
        goto out;
    }
    fq_log_info("listening on %s", addr);
    printf("listening on %s\n", addr);
    fflush(stdout);
    daemon_loop(s);
    fq_log_info("stopping: draining %d calls", fq_rpc_server_live_calls(srv));
    rc = 0;
out:
    fq_rpc_server_shutdown(srv);
    daemon_remove_runfiles(s);
    fq_rpc_server_free(srv);
    fq_log_info("stopped");
    return rc < 0 ? 1 : 0;
}
