/*
 * Line-oriented logging to stderr. Each line is written with one write(2)
 * so concurrent threads never interleave within a line.
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "fq/log.h"

#include <sys/time.h>

#define FQ_LOG_LINE_MAX 2048

static const char *log_prog = "fedq";
static enum fq_log_level log_min = FQ_LOG_INFO;
static enum fq_log_format log_fmt = FQ_LOG_TEXT;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void
fq_log_setup(const char *prog, enum fq_log_level min, enum fq_log_format fmt)
{
    log_prog = prog;
    log_min = min;
    log_fmt = fmt;
}

int
fq_log_parse_format(const char *s, enum fq_log_format *ret_fmt)
{
    if (strcmp(s, "text") == 0)
        *ret_fmt = FQ_LOG_TEXT;
    else if (strcmp(s, "json") == 0)
        *ret_fmt = FQ_LOG_JSON;
    else
        return FQ_EINVAL;
    return 0;
}

int
fq_log_parse_level(const char *s, enum fq_log_level *ret_level)
{
    for (size_t i = 0; i < FQ_ARRAY_LEN(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *ret_level = (enum fq_log_level)i;
            return 0;
        }
    }
    return FQ_EINVAL;
}

static size_t
log_timestamp(char *out, size_t len)
{
    struct timeval tv;
    struct tm tm;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
    int m = snprintf(out + n, len - n, ".%03dZ", (int)(tv.tv_usec / 1000));
    return n + (m > 0 ? (size_t)m : 0);
}

/* Escapes a message for a JSON string; truncates rather than overflows. */
static size_t
log_json_escape(char *out, size_t len, const char *msg)
{
    size_t o = 0;
    for (const char *p = msg; *p && o + 7 < len; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, len - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return o;
}

static void
log_emit(enum fq_log_level level, const char *msg)
{
    char ts[40], line[FQ_LOG_LINE_MAX], esc[FQ_LOG_LINE_MAX];
    int n;

    log_timestamp(ts, sizeof(ts));
    if (log_fmt == FQ_LOG_JSON) {
        log_json_escape(esc, sizeof(esc), msg);
        n = snprintf(line, sizeof(line),
                     "{\"ts\":\"%s\",\"level\":\"%s\",\"prog\":\"%s\","
                     "\"msg\":\"%s\"}\n",
                     ts, level_names[level], log_prog, esc);
    } else {
        n = snprintf(line, sizeof(line), "%s %s %s: %s\n", ts,
                     level_names[level], log_prog, msg);
    }
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line)) {
        n = sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void
fq_log(enum fq_log_level level, const char *fmt, ...)
{
    char msg[FQ_LOG_LINE_MAX];
    va_list ap;

    if (level < log_min)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_emit(level, msg);
}

void
fq_log_err(enum fq_log_level level, int err, const char *fmt, ...)
{
    char msg[FQ_LOG_LINE_MAX];
    va_list ap;

    if (level < log_min)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof(msg))
        snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", fq_strerror(err));
    log_emit(level, msg);
}

void
fq__fatal(const char *file, int line, const char *fmt, ...)
{
    char msg[FQ_LOG_LINE_MAX];
    va_list ap;

    int n = snprintf(msg, sizeof(msg), "fatal: %s:%d: ", file, line);
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(msg))
        vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    va_end(ap);
    log_emit(FQ_LOG_ERROR, msg);
    abort();
}
