/*
 * Unit tests for the one mapping between FQ_E* codes and gRPC status codes
 * (fq_rpc_status_from_error, fq_rpc_error_from_status, in
 * common/src/rpc_client.c), the status names, and the monotonic clock.
 * No gRPC call is made.
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "fq/rpc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* Every FQ_E* code, and FQ_OK. */
static const int all_errors[] = {
    FQ_OK,       FQ_ENOMEM,    FQ_EINVAL,   FQ_ENOENT, FQ_EPERM,
    FQ_EIO,      FQ_ETOOBIG,   FQ_EAGAIN,   FQ_ENOSYS, FQ_ETIMEDOUT,
    FQ_EUNAVAIL, FQ_ECANCELED, FQ_EPRECOND, FQ_EPROTO, FQ_EINTERNAL,
};

/* The codes are distinct (the mapping switches on them). */
static void
test_error_codes_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < FQ_ARRAY_LEN(all_errors); i++) {
        if (i > 0)
            assert_true(all_errors[i] < 0);
        for (size_t j = i + 1; j < FQ_ARRAY_LEN(all_errors); j++)
            assert_int_not_equal(all_errors[i], all_errors[j]);
    }
}

static void
test_status_from_error(void **state)
{
    static const struct {
        int err;
        enum fq_rpc_status status;
    } map[] = {
        {FQ_OK, FQ_RPC_OK},
        {FQ_ENOMEM, FQ_RPC_INTERNAL},
        {FQ_EINVAL, FQ_RPC_INVALID_ARGUMENT},
        {FQ_ENOENT, FQ_RPC_NOT_FOUND},
        {FQ_EPERM, FQ_RPC_PERMISSION_DENIED},
        {FQ_EIO, FQ_RPC_INTERNAL},
        {FQ_ETOOBIG, FQ_RPC_RESOURCE_EXHAUSTED},
        {FQ_EAGAIN, FQ_RPC_UNAVAILABLE},
        {FQ_ENOSYS, FQ_RPC_UNIMPLEMENTED},
        {FQ_ETIMEDOUT, FQ_RPC_DEADLINE_EXCEEDED},
        {FQ_EUNAVAIL, FQ_RPC_UNAVAILABLE},
        {FQ_ECANCELED, FQ_RPC_CANCELLED},
        {FQ_EPRECOND, FQ_RPC_FAILED_PRECONDITION},
        {FQ_EPROTO, FQ_RPC_INTERNAL},
        {FQ_EINTERNAL, FQ_RPC_INTERNAL},
    };

    (void)state;
    assert_int_equal(FQ_ARRAY_LEN(map), FQ_ARRAY_LEN(all_errors));
    for (size_t i = 0; i < FQ_ARRAY_LEN(map); i++) {
        enum fq_rpc_status got = fq_rpc_status_from_error(map[i].err);
        if (got != map[i].status)
            fail_msg("%s (%d): got %s, expected %s", fq_strerror(map[i].err),
                     map[i].err, fq_rpc_status_name((int)got),
                     fq_rpc_status_name((int)map[i].status));
    }
}

/* Anything that is not an FQ_E* code is an internal error. */
static void
test_status_from_unknown_error(void **state)
{
    static const int odd[] = {1, 42, -EBADF, -EEXIST, -9999, INT_MIN, INT_MAX};

    (void)state;
    for (size_t i = 0; i < FQ_ARRAY_LEN(odd); i++)
        assert_int_equal(fq_rpc_status_from_error(odd[i]), FQ_RPC_INTERNAL);
}

static void
test_error_from_status(void **state)
{
    static const struct {
        enum fq_rpc_status status;
        int err;
    } map[] = {
        {FQ_RPC_OK, 0},
        {FQ_RPC_CANCELLED, FQ_ECANCELED},
        {FQ_RPC_UNKNOWN, FQ_EINTERNAL},
        {FQ_RPC_INVALID_ARGUMENT, FQ_EINVAL},
        {FQ_RPC_DEADLINE_EXCEEDED, FQ_ETIMEDOUT},
        {FQ_RPC_NOT_FOUND, FQ_ENOENT},
        {FQ_RPC_PERMISSION_DENIED, FQ_EPERM},
        {FQ_RPC_RESOURCE_EXHAUSTED, FQ_ETOOBIG},
        {FQ_RPC_FAILED_PRECONDITION, FQ_EPRECOND},
        {FQ_RPC_UNIMPLEMENTED, FQ_ENOSYS},
        {FQ_RPC_INTERNAL, FQ_EINTERNAL},
        {FQ_RPC_UNAVAILABLE, FQ_EUNAVAIL},
        {FQ_RPC_UNAUTHENTICATED, FQ_EPERM},
    };

    (void)state;
    for (size_t i = 0; i < FQ_ARRAY_LEN(map); i++) {
        int got = fq_rpc_error_from_status(map[i].status);
        if (got != map[i].err)
            fail_msg("%s: got %d (%s), expected %d (%s)",
                     fq_rpc_status_name((int)map[i].status), got,
                     fq_strerror(got), map[i].err, fq_strerror(map[i].err));
    }
}

/* Statuses fedq never sends, and values that are no status at all. */
static void
test_error_from_unlisted_status(void **state)
{
    static const int odd[] = {6, 10, 11, 15, 17, 100, -1, INT_MAX, INT_MIN};

    (void)state;
    for (size_t i = 0; i < FQ_ARRAY_LEN(odd); i++)
        assert_int_equal(fq_rpc_error_from_status((enum fq_rpc_status)odd[i]),
                         FQ_EINTERNAL);
}

/* A status that crosses the wire comes back as itself where it can. */
static void
test_round_trips(void **state)
{
    static const enum fq_rpc_status same[] = {
        FQ_RPC_OK,
        FQ_RPC_CANCELLED,
        FQ_RPC_INVALID_ARGUMENT,
        FQ_RPC_DEADLINE_EXCEEDED,
        FQ_RPC_NOT_FOUND,
        FQ_RPC_PERMISSION_DENIED,
        FQ_RPC_RESOURCE_EXHAUSTED,
        FQ_RPC_FAILED_PRECONDITION,
        FQ_RPC_UNIMPLEMENTED,
        FQ_RPC_INTERNAL,
        FQ_RPC_UNAVAILABLE,
    };
    static const int errs[] = {
        FQ_OK,        FQ_EINVAL,   FQ_ENOENT,    FQ_EPERM,
        FQ_ETOOBIG,   FQ_ENOSYS,   FQ_ETIMEDOUT, FQ_EUNAVAIL,
        FQ_ECANCELED, FQ_EPRECOND, FQ_EINTERNAL,
    };

    (void)state;
    for (size_t i = 0; i < FQ_ARRAY_LEN(same); i++)
        assert_int_equal(
            fq_rpc_status_from_error(fq_rpc_error_from_status(same[i])),
            same[i]);
    for (size_t i = 0; i < FQ_ARRAY_LEN(errs); i++)
        assert_int_equal(
            fq_rpc_error_from_status(fq_rpc_status_from_error(errs[i])),
            errs[i]);
    /* The ones that collapse. */
    assert_int_equal(fq_rpc_status_from_error(
                         fq_rpc_error_from_status(FQ_RPC_UNAUTHENTICATED)),
                     FQ_RPC_PERMISSION_DENIED);
    assert_int_equal(
        fq_rpc_status_from_error(fq_rpc_error_from_status(FQ_RPC_UNKNOWN)),
        FQ_RPC_INTERNAL);
    assert_int_equal(
        fq_rpc_error_from_status(fq_rpc_status_from_error(FQ_EAGAIN)),
        FQ_EUNAVAIL);
}

static void
test_status_names(void **state)
{
    static const char *const names[17] = {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    };

    (void)state;
    for (int i = 0; i < 17; i++)
        assert_string_equal(fq_rpc_status_name(i), names[i]);
    /* The enum values agree with the names. */
    assert_string_equal(fq_rpc_status_name(FQ_RPC_OK), "OK");
    assert_string_equal(fq_rpc_status_name(FQ_RPC_CANCELLED), "CANCELLED");
    assert_string_equal(fq_rpc_status_name(FQ_RPC_UNKNOWN), "UNKNOWN");
    assert_string_equal(fq_rpc_status_name(FQ_RPC_INVALID_ARGUMENT),
                        "INVALID_ARGUMENT");
    assert_string_equal(fq_rpc_status_name(FQ_RPC_DEADLINE_EXCEEDED),
                        "DEADLINE_EXCEEDED");
    assert_string_equal(fq_rpc_status_name(FQ_RPC_NOT_FOUND), "NOT_FOUND");
    assert_string_equal(fq_rpc_status_name(FQ_RPC_PERMISSION_DENIED),
                        "PERMISSION_DENIED");
    assert_string_equal(fq_rpc_status_name(FQ_RPC_RESOURCE_EXHAUSTED),
                        "RESOURCE_EXHAUSTED");
    assert_string_equal(fq_rpc_status_name(FQ_RPC_FAILED_PRECONDITION),
                        "FAILED_PRECONDITION");
    assert_string_equal(fq_rpc_status_name(FQ_RPC_UNIMPLEMENTED),
                        "UNIMPLEMENTED");
    assert_string_equal(fq_rpc_status_name(FQ_RPC_INTERNAL), "INTERNAL");
    assert_string_equal(fq_rpc_status_name(FQ_RPC_UNAVAILABLE), "UNAVAILABLE");
    assert_string_equal(fq_rpc_status_name(FQ_RPC_UNAUTHENTICATED),
                        "UNAUTHENTICATED");
}

static void
test_status_name_out_of_range(void **state)
{
    static const int odd[] = {-1, -2, 17, 18, 100, INT_MAX, INT_MIN};

    (void)state;
    for (size_t i = 0; i < FQ_ARRAY_LEN(odd); i++) {
        const char *s = fq_rpc_status_name(odd[i]);
        assert_non_null(s);
        assert_string_equal(s, "UNKNOWN");
    }
}

static int64_t
mono_ms(void)
{
    struct timespec ts;
    assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
test_now_ms(void **state)
{
    (void)state;
    int64_t before = mono_ms();
    int64_t a = fq_rpc_now_ms();
    int64_t b = fq_rpc_now_ms();
    int64_t after = mono_ms();
    assert_true(a <= b);
    /* It is CLOCK_MONOTONIC in milliseconds. */
    assert_true(before <= a);
    assert_true(b <= after);

    /* 30 ms of sleep advance it by at least 30. */
    struct timespec ts = {0, 30 * 1000 * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    int64_t c = fq_rpc_now_ms();
    assert_true(c - b >= 30);
    assert_true(c - b < 10000);

    /* Never goes backwards over many calls. */
    int64_t prev = fq_rpc_now_ms();
    for (int i = 0; i < 100000; i++) {
        int64_t t = fq_rpc_now_ms();
        assert_true(t >= prev);
        prev = t;
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_codes_distinct),
        cmocka_unit_test(test_status_from_error),
        cmocka_unit_test(test_status_from_unknown_error),
        cmocka_unit_test(test_error_from_status),
        cmocka_unit_test(test_error_from_unlisted_status),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_status_name_out_of_range),
        cmocka_unit_test(test_now_ms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
