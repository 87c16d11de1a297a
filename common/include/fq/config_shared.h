/*
 * Directive tables that several programs' configurations share (the TLS
 * section, log settings), so every program spells and checks them alike.
 */
#ifndef FQ_CONFIG_SHARED_H
#define FQ_CONFIG_SHARED_H

#include "fq/config.h"
#include "fq/tls.h"

/* Fails a check hook with a message: FQ_CFG_FAIL(err, "fmt", ...). */
#define FQ_CFG_FAIL(err, ...)                                  \
    do {                                                       \
        snprintf((err)->msg, sizeof((err)->msg), __VA_ARGS__); \
        return FQ_EINVAL;                                      \
    } while (0)

/*
 * The first member of every program's configuration struct: the arena that
 * owns the whole configuration and the file it came from, so loading and
 * freeing are written once.
 */
struct fq_cfg_doc {
    struct fq_arena *arena;
    const char *path;
};

#define FQ_CFG_DOC_MEMORY (4 * 1024 * 1024)

/*
 * Allocates a zeroed struct of size bytes (which starts with a struct
 * fq_cfg_doc) in a new arena, sets its doc, and loads path into it through
 * table and check. On success *ret points to the struct; free it with
 * fq_cfg_doc_free. On failure err reads "FILE:LINE: ...".
 */
int fq_cfg_doc_load(const char *path, const struct fq_cfg_directive *table,
                    fq_cfg_check_fn check, size_t size, void **ret, char *err,
                    size_t errlen);
/* Frees a loaded configuration; NULL is a no-op. */
void fq_cfg_doc_free(struct fq_cfg_doc *doc);

struct fq_cfg_tls {
    int line;
    char *ca, *cert, *key;
};

/*
 * The keys every fedq server has (listen address, run files, TLS, threads,
 * deadlines, limits, logging), inlined at the top level of the agent's and
 * the gateway's configuration through FQ_CFG_INLINE.
 */
struct fq_cfg_server {
    char *listen;
    char *run_dir;
    struct fq_cfg_tls tls;
    int64_t threads;
    int64_t max_message_bytes;
    int64_t call_memory_bytes;
    int64_t default_deadline_ms;
    int64_t max_deadline_ms;
    int log_format; /* enum fq_log_format */
    int log_level;  /* enum fq_log_level */
};

extern const struct fq_cfg_directive fq_cfg_server_table[];

/* Checks that tie server keys together (deadlines); for a top-level hook. */
int fq_cfg_server_check(const struct fq_cfg_server *s,
                        struct fq_cfg_error *err);

/* True if a and b differ in keys only a restart applies (listen, run_dir,
 * tls, threads, limits). */
bool fq_cfg_server_needs_restart(const struct fq_cfg_server *a,
                                 const struct fq_cfg_server *b);

struct fq_rpc_server_opts;
/* Fills the RPC server options that come from the configuration. */
void fq_cfg_server_rpc_opts(const struct fq_cfg_server *s,
                            const struct fq_tls_material *tls,
                            const char *federation,
                            struct fq_rpc_server_opts *o);

/* Maps a `tls:` section onto struct fq_cfg_tls. */
extern const struct fq_cfg_directive fq_cfg_tls_table[];
/* Names for FQ_CFG_ENUM directives of enum fq_log_format / fq_log_level. */
extern const char *const fq_cfg_log_format_names[];
extern const char *const fq_cfg_log_level_names[];

/*
 * Loads the TLS files a section names and checks that the certificate
 * names one of roles (a mask of enum fq_role; and the agency, for agents)
 * in federation. On failure err reads "FILE:LINE: ..." with the section's
 * line. 0 or FQ_EINVAL.
 */
int fq_cfg_tls_load(const char *path, const struct fq_cfg_tls *t,
                    unsigned roles, const char *federation, const char *agency,
                    struct fq_tls_material *ret, char *err, size_t errlen);

#endif
