/*
 * Logging for fedq programs: one line per event, lowercase, no values, no
 * keys, no query literals. Library code in common/ logs at debug level at
 * most and returns errors instead; programs decide what to say.
 *
 * Text format:  2026-11-24T22:23:58.123Z info agent: listening on ADDR
 * JSON format:  {"ts":"...","level":"info","prog":"agent","msg":"..."}
 */
#ifndef FQ_LOG_H
#define FQ_LOG_H

#include "fq/compat.h"

enum fq_log_level {
    FQ_LOG_DEBUG = 0,
    FQ_LOG_INFO,
    FQ_LOG_WARN,
    FQ_LOG_ERROR,
};

enum fq_log_format {
    FQ_LOG_TEXT = 0,
    FQ_LOG_JSON,
};

/* Sets the program name, minimum level and format; call once at start. */
void fq_log_setup(const char *prog, enum fq_log_level min,
                  enum fq_log_format fmt);
/* Parses "text"/"json" and "debug"/"info"/"warn"/"error"; 0 or FQ_EINVAL. */
int fq_log_parse_format(const char *s, enum fq_log_format *ret_fmt);
int fq_log_parse_level(const char *s, enum fq_log_level *ret_level);

void fq_log(enum fq_log_level level, const char *fmt, ...) FQ_PRINTF(2, 3);
/* Appends ": <fq_strerror(err)>" to the message. */
void fq_log_err(enum fq_log_level level, int err, const char *fmt, ...)
    FQ_PRINTF(3, 4);

#define fq_log_debug(...) fq_log(FQ_LOG_DEBUG, __VA_ARGS__)
#define fq_log_info(...)  fq_log(FQ_LOG_INFO, __VA_ARGS__)
#define fq_log_warnx(...) fq_log(FQ_LOG_WARN, __VA_ARGS__)
#define fq_log_errx(...)  fq_log(FQ_LOG_ERROR, __VA_ARGS__)

/* Broken invariant: logs file:line and aborts. Never for runtime input. */
#define fq_fatalx(...) fq__fatal(__FILE__, __LINE__, __VA_ARGS__)
FQ_NORETURN void fq__fatal(const char *file, int line, const char *fmt, ...)
    FQ_PRINTF(3, 4);

#endif
