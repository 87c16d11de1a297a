/*
 * Included first by every fedq .c file: feature macros, attributes, and the
 * banned-function list (after Git's banned.h). Functions that overflow
 * buffers or keep hidden global state are poisoned at compile time.
 */
#ifndef FQ_COMPAT_H
#define FQ_COMPAT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

/*
 * System headers that declare banned functions come before the poison, so
 * their prototypes are not macro-expanded; later includes are no-ops.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define FQ_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define FQ_NORETURN          __attribute__((noreturn))
#define FQ_UNUSED            __attribute__((unused))
#define FQ_ARRAY_LEN(a)      (sizeof(a) / sizeof((a)[0]))

/* Banned functions: a call fails to compile with a name that says why. */
#define FQ_BANNED(fn) sorry_##fn##_is_banned_in_fedq
#undef strcpy
#define strcpy(a, b) FQ_BANNED(strcpy)
#undef strcat
#define strcat(a, b) FQ_BANNED(strcat)
#undef sprintf
#define sprintf(...) FQ_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) FQ_BANNED(vsprintf)
#undef strtok
#define strtok(a, b) FQ_BANNED(strtok)
#undef atoi
#define atoi(a) FQ_BANNED(atoi)
#undef gmtime
#define gmtime(a) FQ_BANNED(gmtime)
#undef localtime
#define localtime(a) FQ_BANNED(localtime)
#undef mktemp
#define mktemp(a) FQ_BANNED(mktemp)

#endif
