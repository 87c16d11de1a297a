/*
 * Directive tables that several programs' configurations share (the TLS
 * section, log settings), so every program spells and checks them alike.
 */
#ifndef FQ_CONFIG_SHARED_H
#define FQ_CONFIG_SHARED_H

#include "fq/config.h"
#include "fq/tls.h"

struct fq_cfg_tls {
    int line;
    char *ca, *cert, *key;
};

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
