/*
 * What the two servers share as processes: signal handling without signal
 * handlers (signals are blocked in every thread and taken by the main thread
 * with sigwait, so no gRPC call ever runs in a handler), and the run files
 * scripts wait on (pid, bound address), written atomically.
 */
#ifndef FQ_DAEMON_H
#define FQ_DAEMON_H

#include "fq/compat.h"

enum fq_signal {
    FQ_SIG_STOP = 1,   /* SIGTERM or SIGINT: drain and exit 0 */
    FQ_SIG_RELOAD = 2, /* SIGHUP */
};

/* Blocks SIGTERM, SIGINT and SIGHUP; call before starting any thread.
 * Ignores SIGPIPE. */
void fq_daemon_block_signals(void);
/* Waits for one of the blocked signals. */
enum fq_signal fq_daemon_wait_signal(void);

/*
 * Writes content to dir/name through a temporary file and rename(2), so a
 * reader sees the old file or the new one, never a part. Creates dir if
 * missing. 0 or a negative FQ_E* code.
 */
int fq_daemon_write_runfile(const char *dir, const char *name,
                            const char *content);
/* Removes dir/name if it exists; errors are ignored. */
void fq_daemon_remove_runfile(const char *dir, const char *name);

/*
 * mkdir -p dir, with mode 0700 for what it creates (state and extracts are
 * the agency's). 0, or FQ_E* with "cannot create WHAT directory 'P': ..."
 * in err.
 */
int fq_daemon_make_dir(const char *what, const char *dir, char *err,
                       size_t errlen);
/*
 * The directory rel (e.g. "../state/gateway") taken from the directory of
 * the configuration file config_path, as a default for a state directory.
 * malloc'd (the caller frees), or NULL when out of memory.
 */
char *fq_daemon_default_dir(const char *config_path, const char *rel);

/* ---- the shared main of fedq-agent and fedq-gateway ------------------- */

struct fq_rpc_server_opts;

/* Command line common to both servers. */
struct fq_daemon_args {
    const char *config;     /* --config FILE (or the only positional) */
    bool check;             /* --check FILE: validate and exit */
    const char *log_format; /* --log-format text|json, overrides config */
    const char *log_level;  /* --log-level debug|info|warn|error */
    bool reference;         /* --config-reference: print the keys, exit */
};

/*
 * Parses argv for prog ("fedq-agent"). Handles --help and --version itself
 * (exits 0). Returns 0, or prints usage to stderr and returns FQ_EINVAL.
 */
int fq_daemon_parse_args(int argc, char **argv, const char *prog,
                         struct fq_daemon_args *ret);

/*
 * Sets up logging for prog from the configured format and level (enum
 * fq_log_format / fq_log_level values), letting --log-format and
 * --log-level override them.
 */
void fq_daemon_setup_logging(const char *prog, int cfg_format, int cfg_level,
                             const struct fq_daemon_args *args);

struct fq_daemon_spec {
    const char *name;    /* run file base name: "gateway", "agent-dol" */
    const char *run_dir; /* where NAME.pid and NAME.addr go; may be NULL */
    const struct fq_rpc_server_opts *rpc;
    /* SIGHUP: rebuild the program state; may be NULL. The hook logs. */
    void (*reload)(void *app);
    void *app;
    /* Where to publish the server before it starts (handlers that start
     * child calls need it); may be NULL. */
    struct fq_rpc_server **server_out;
};

/*
 * Binds, writes the run files, prints "listening on ADDR" on stdout, serves
 * until SIGTERM/SIGINT, then drains and removes the run files. Returns the
 * process exit code (0 on a clean stop).
 */
int fq_daemon_serve(const struct fq_daemon_spec *spec);

#endif
