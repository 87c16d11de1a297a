/*
 * The steward's control channel: a unix socket (mode 0600, owned by the
 * agent's user) on which `fedq-agent refresh DATASET` and `fedq-agent
 * status` talk to the running agent. Only the agent's own uid and root
 * may use it (checked on every connection with SO_PEERCRED).
 *
 * Protocol: one request line per connection, at most AG_CONTROL_LINE_MAX
 * bytes with its "\n"; the agent answers and closes.
 *   "refresh DATASET\n"  ->  "ok VINTAGE\n" | "error MESSAGE\n"
 *   "status\n"           ->  "ok N datasets\n" then one line per dataset:
 *       "NAME engine=extract rows=R bytes=B vintage=V refresh=MS"
 *       "NAME engine=sqlite|pushdown vintage=live"
 *                        |  "error MESSAGE\n"
 * Requests are served one at a time, by one thread: a refresh holds the
 * channel until its build ends (refreshes are serialized anyway).
 */
#ifndef AG_CONTROL_H
#define AG_CONTROL_H

#include "fq/compat.h"

#include "agent.h"

#define AG_CONTROL_LINE_MAX   256   /* a request, with its newline */
#define AG_CONTROL_ANSWER_MAX 65536 /* an answer, as the client reads it */

struct ag_store;
struct ag_control;

/* Where cfg's control socket lives: control_socket, or
 * run_dir/agent-AGENCY.ctl. 0, or FQ_ENOENT (neither is configured) /
 * FQ_ETOOBIG (longer than a socket address holds) with a message. */
int ag_control_path(const struct ag_config *cfg, char *buf, size_t len,
                    char *err, size_t errlen);

/* What the channel serves: the store, and the current catalog (a
 * reference the channel drops with ag_catalog_unref). */
struct ag_control_ops {
    struct ag_store *store;
    struct ag_catalog *(*catalog)(void *app);
    void *app;
};

/*
 * Creates the socket at path (a stale one left by a dead agent is
 * replaced; one that answers is not) and starts serving it on a thread.
 * *ret is freed by ag_control_stop. 0 or FQ_E* with a message.
 */
int ag_control_start(const char *path, const struct ag_control_ops *ops,
                     struct ag_control **ret, char *err, size_t errlen);

/* Stops the thread (after the request in progress, if any) and removes
 * the socket. NULL is a no-op. */
void ag_control_stop(struct ag_control *c);

/*
 * The client: sends line (a request, with its "\n") to the socket at path
 * and reads the whole answer into buf (NUL-terminated, truncated to
 * len - 1). 0, or FQ_E* with a message (cannot connect, I/O).
 */
int ag_control_request(const char *path, const char *line, char *buf,
                       size_t len, char *err, size_t errlen);

#endif
