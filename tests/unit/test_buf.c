/*
 * Unit tests for the bounded byte buffer (common/src/buf.c): appends,
 * printf on both sides of the 256-byte fast path, the cap (exactly at it
 * succeeds, one byte over fails and releases), the NUL-termination
 * invariant, detach/reset/release, and fq_buf_read_file. Runs under ASan,
 * so a leak or an overrun fails the test.
 */
#include "fq/compat.h"
#include "fq/buf.h"
#include "fq/error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <sys/stat.h>

/* ---- helpers ------------------------------------------------------------ */

/* The invariant every public operation must keep. */
static void
assert_terminated(const struct fq_buf *b)
{
    const char *s = fq_buf_str(b);

    assert_non_null(s);
    assert_int_equal(s[fq_buf_len(b)], '\0');
}

/* The state after a release (or a failed append): empty, "" and no memory. */
static void
assert_released(const struct fq_buf *b)
{
    assert_int_equal(fq_buf_len(b), 0);
    assert_string_equal(fq_buf_str(b), "");
    assert_null(b->data);
    assert_int_equal(b->alloc, 0);
}

static char tmpdir[64];

static int
setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/fq-test-buf-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int
teardown_dir(void **state)
{
    static const char *const names[] = {"data", "text", "big", "empty"};
    char path[128];

    (void)state;
    /* Files a failed test did not get to remove. */
    for (size_t i = 0; i < FQ_ARRAY_LEN(names); i++) {
        snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    return rmdir(tmpdir);
}

/* Writes len bytes to tmpdir/name; the path goes to path. */
static void
write_file(const char *name, const void *data, size_t len, char *path,
           size_t pathlen)
{
    snprintf(path, pathlen, "%s/%s", tmpdir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

/* ---- init, append, str --------------------------------------------------- */

static void
test_init_empty(void **state)
{
    struct fq_buf b;

    (void)state;
    memset(&b, 0x5a, sizeof(b));
    fq_buf_init(&b, 100);
    assert_int_equal(fq_buf_len(&b), 0);
    assert_string_equal(fq_buf_str(&b), "");
    assert_null(b.data);
    assert_int_equal(b.max, 100);
    /* Releasing a buffer that never allocated is fine, twice too. */
    fq_buf_release(&b);
    fq_buf_release(&b);
    assert_released(&b);
}

static void
test_append(void **state)
{
    struct fq_buf b;

    (void)state;
    fq_buf_init(&b, 1024);
    assert_int_equal(fq_buf_append(&b, "abc", 3), 0);
    assert_int_equal(fq_buf_len(&b), 3);
    assert_string_equal(fq_buf_str(&b), "abc");
    assert_int_equal(fq_buf_append_str(&b, "def"), 0);
    assert_int_equal(fq_buf_len(&b), 6);
    assert_string_equal(fq_buf_str(&b), "abcdef");
    /* Only len bytes are taken, not up to a NUL. */
    assert_int_equal(fq_buf_append(&b, "ghiXYZ", 3), 0);
    assert_string_equal(fq_buf_str(&b), "abcdefghi");
    assert_int_equal(fq_buf_append_str(&b, ""), 0);
    assert_int_equal(fq_buf_len(&b), 9);
    assert_terminated(&b);
    fq_buf_release(&b);
    assert_released(&b);
}

static void
test_append_empty_allocates_string(void **state)
{
    struct fq_buf b;

    (void)state;
    fq_buf_init(&b, 8);
    assert_int_equal(fq_buf_append(&b, NULL, 0), 0);
    assert_int_equal(fq_buf_len(&b), 0);
    assert_non_null(b.data);
    assert_string_equal(fq_buf_str(&b), "");
    fq_buf_release(&b);
}

static void
test_append_binary(void **state)
{
    struct fq_buf b;
    static const unsigned char bytes[] = {'a', 0, 'b', 0xff, 0};

    (void)state;
    fq_buf_init(&b, 64);
    assert_int_equal(fq_buf_append(&b, bytes, sizeof(bytes)), 0);
    assert_int_equal(fq_buf_len(&b), sizeof(bytes));
    assert_memory_equal(fq_buf_str(&b), bytes, sizeof(bytes));
    assert_terminated(&b);
    fq_buf_release(&b);
}

/* Many small appends across several reallocations keep every byte. */
static void
test_growth_keeps_content(void **state)
{
    struct fq_buf b;
    char expect[5000];
    size_t n = 0;

    (void)state;
    fq_buf_init(&b, sizeof(expect));
    for (size_t i = 0; n < sizeof(expect); i++) {
        char c = (char)('a' + i % 26);
        size_t k = i % 7 + 1;
        if (k > sizeof(expect) - n)
            k = sizeof(expect) - n;
        char piece[8];
        memset(piece, c, k);
        assert_int_equal(fq_buf_append(&b, piece, k), 0);
        memcpy(expect + n, piece, k);
        n += k;
        assert_int_equal(fq_buf_len(&b), n);
        assert_terminated(&b);
    }
    assert_memory_equal(fq_buf_str(&b), expect, sizeof(expect));
    /* The allocation never exceeds the cap plus the NUL. */
    assert_true(b.alloc <= sizeof(expect) + 1);
    fq_buf_release(&b);
}

/* ---- the cap ------------------------------------------------------------- */

static void
test_cap_exact_then_one_over(void **state)
{
    struct fq_buf b;

    (void)state;
    fq_buf_init(&b, 10);
    assert_int_equal(fq_buf_append(&b, "01234", 5), 0);
    assert_int_equal(fq_buf_append(&b, "56789", 5), 0);
    assert_int_equal(fq_buf_len(&b), 10);
    assert_string_equal(fq_buf_str(&b), "0123456789");
    assert_terminated(&b);
    assert_int_equal(fq_buf_append(&b, "x", 1), FQ_ETOOBIG);
    assert_released(&b);
    /* The cap survives the release: the buffer can be used again. */
    assert_int_equal(b.max, 10);
    assert_int_equal(fq_buf_append(&b, "0123456789", 10), 0);
    assert_string_equal(fq_buf_str(&b), "0123456789");
    fq_buf_release(&b);
}

static void
test_cap_single_append_over(void **state)
{
    struct fq_buf b;

    (void)state;
    fq_buf_init(&b, 10);
    assert_int_equal(fq_buf_append(&b, "abc", 3), 0);
    assert_int_equal(fq_buf_append(&b, "01234567", 8), FQ_ETOOBIG);
    assert_released(&b);
    /* A first append already over the cap. */
    assert_int_equal(fq_buf_append(&b, "0123456789A", 11), FQ_ETOOBIG);
    assert_released(&b);
    /* A length that would overflow len + n. */
    assert_int_equal(fq_buf_append(&b, "a", 1), 0);
    assert_int_equal(fq_buf_append(&b, "b", SIZE_MAX), FQ_ETOOBIG);
    assert_released(&b);
    fq_buf_release(&b);
}

static void
test_cap_of_one(void **state)
{
    struct fq_buf b;

    (void)state;
    fq_buf_init(&b, 1);
    assert_int_equal(fq_buf_append_str(&b, "z"), 0);
    assert_string_equal(fq_buf_str(&b), "z");
    assert_int_equal(fq_buf_append_str(&b, ""), 0);
    assert_int_equal(fq_buf_append_str(&b, "y"), FQ_ETOOBIG);
    assert_released(&b);
}

/* ---- printf -------------------------------------------------------------- */

static void
test_printf_small(void **state)
{
    struct fq_buf b;

    (void)state;
    fq_buf_init(&b, 1024);
    assert_int_equal(fq_buf_printf(&b, "%s=%d", "answer", 42), 0);
    assert_int_equal(fq_buf_printf(&b, ";%05.1f;%c", 3.14159, 'x'), 0);
    assert_string_equal(fq_buf_str(&b), "answer=42;003.1;x");
    assert_int_equal(fq_buf_len(&b), strlen("answer=42;003.1;x"));
    assert_int_equal(fq_buf_printf(&b, "%s", ""), 0);
    assert_int_equal(fq_buf_len(&b), 17);
    assert_terminated(&b);
    fq_buf_release(&b);
}

/* Outputs of 255, 256, 257 and 5000 bytes: both sides of the fast path. */
static void
test_printf_large(void **state)
{
    static const size_t sizes[] = {255, 256, 257, 1000, 5000};
    char big[5001];

    (void)state;
    for (size_t i = 0; i < sizeof(big) - 1; i++)
        big[i] = (char)('A' + i % 23);
    big[sizeof(big) - 1] = '\0';
    for (size_t k = 0; k < FQ_ARRAY_LEN(sizes); k++) {
        struct fq_buf b;
        size_t n = sizes[k];

        fq_buf_init(&b, 10000);
        assert_int_equal(fq_buf_append_str(&b, "pre:"), 0);
        assert_int_equal(fq_buf_printf(&b, "%.*s", (int)n, big), 0);
        assert_int_equal(fq_buf_len(&b), 4 + n);
        assert_memory_equal(fq_buf_str(&b), "pre:", 4);
        assert_memory_equal(fq_buf_str(&b) + 4, big, n);
        assert_terminated(&b);
        assert_int_equal(strlen(fq_buf_str(&b)), 4 + n);
        /* Appending after a large printf keeps going at the right place. */
        assert_int_equal(fq_buf_printf(&b, "|%d", 7), 0);
        assert_int_equal(fq_buf_len(&b), 4 + n + 2);
        assert_string_equal(fq_buf_str(&b) + 4 + n, "|7");
        fq_buf_release(&b);
    }
}

static void
test_printf_cap(void **state)
{
    struct fq_buf b;
    char big[1001];

    (void)state;
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';

    /* Large path: exactly at the cap, then one over. */
    fq_buf_init(&b, 1000);
    assert_int_equal(fq_buf_printf(&b, "%s", big), 0);
    assert_int_equal(fq_buf_len(&b), 1000);
    assert_terminated(&b);
    fq_buf_release(&b);
    fq_buf_init(&b, 999);
    assert_int_equal(fq_buf_printf(&b, "%s", big), FQ_ETOOBIG);
    assert_released(&b);
    fq_buf_init(&b, 1000);
    assert_int_equal(fq_buf_append_str(&b, "x"), 0);
    assert_int_equal(fq_buf_printf(&b, "%s", big), FQ_ETOOBIG);
    assert_released(&b);

    /* Fast path: exactly at the cap, then one over. */
    fq_buf_init(&b, 6);
    assert_int_equal(fq_buf_printf(&b, "%d", 123), 0);
    assert_int_equal(fq_buf_printf(&b, "%s", "abc"), 0);
    assert_string_equal(fq_buf_str(&b), "123abc");
    assert_int_equal(fq_buf_printf(&b, "%c", '!'), FQ_ETOOBIG);
    assert_released(&b);
}

/* ---- detach, reset, release ---------------------------------------------- */

static void
test_detach(void **state)
{
    struct fq_buf b;
    size_t len = 99;

    (void)state;
    fq_buf_init(&b, 64);
    assert_int_equal(fq_buf_append_str(&b, "hello"), 0);
    char *s = fq_buf_detach(&b, &len);
    assert_non_null(s);
    assert_string_equal(s, "hello");
    assert_int_equal(len, 5);
    /* The buffer is empty and owns nothing; it can be used again. */
    assert_released(&b);
    assert_int_equal(fq_buf_append_str(&b, "again"), 0);
    assert_string_equal(fq_buf_str(&b), "again");
    assert_ptr_not_equal(fq_buf_str(&b), s);
    free(s);

    s = fq_buf_detach(&b, NULL);
    assert_string_equal(s, "again");
    free(s);
    fq_buf_release(&b);
}

static void
test_detach_empty(void **state)
{
    struct fq_buf b;
    size_t len = 99;

    (void)state;
    fq_buf_init(&b, 64);
    char *s = fq_buf_detach(&b, &len);
    assert_non_null(s);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
    assert_released(&b);
}

static void
test_reset_keeps_memory_and_cap(void **state)
{
    struct fq_buf b;

    (void)state;
    fq_buf_init(&b, 8);
    /* Reset before anything was allocated. */
    fq_buf_reset(&b);
    assert_int_equal(fq_buf_len(&b), 0);
    assert_string_equal(fq_buf_str(&b), "");

    assert_int_equal(fq_buf_append_str(&b, "12345678"), 0);
    const char *before = fq_buf_str(&b);
    fq_buf_reset(&b);
    assert_int_equal(fq_buf_len(&b), 0);
    assert_string_equal(fq_buf_str(&b), "");
    assert_ptr_equal(fq_buf_str(&b), before);
    /* The whole cap is available again, and still enforced. */
    assert_int_equal(fq_buf_append_str(&b, "abcdefgh"), 0);
    assert_string_equal(fq_buf_str(&b), "abcdefgh");
    assert_int_equal(fq_buf_append_str(&b, "i"), FQ_ETOOBIG);
    assert_released(&b);
}

/* ---- fq_buf_read_file ---------------------------------------------------- */

static void
test_read_file(void **state)
{
    char path[128];
    unsigned char data[20000]; /* more than read_file's 8 KiB chunk */
    struct fq_buf b;

    (void)state;
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 7 + i / 256);
    write_file("data", data, sizeof(data), path, sizeof(path));
    fq_buf_init(&b, sizeof(data));
    assert_int_equal(fq_buf_read_file(&b, path), 0);
    assert_int_equal(fq_buf_len(&b), sizeof(data));
    assert_memory_equal(fq_buf_str(&b), data, sizeof(data));
    assert_terminated(&b);
    fq_buf_release(&b);
    assert_int_equal(unlink(path), 0);
}

static void
test_read_file_text(void **state)
{
    char path[128];
    struct fq_buf b;

    (void)state;
    write_file("text", "line one\nline two\n", 18, path, sizeof(path));
    fq_buf_init(&b, 1024);
    assert_int_equal(fq_buf_read_file(&b, path), 0);
    assert_string_equal(fq_buf_str(&b), "line one\nline two\n");
    assert_int_equal(fq_buf_len(&b), 18);
    fq_buf_release(&b);
    assert_int_equal(unlink(path), 0);
}

static void
test_read_file_missing(void **state)
{
    char path[128];
    struct fq_buf b;

    (void)state;
    snprintf(path, sizeof(path), "%s/does-not-exist", tmpdir);
    fq_buf_init(&b, 1024);
    assert_int_equal(fq_buf_read_file(&b, path), FQ_ENOENT);
    assert_released(&b);
    fq_buf_release(&b);
}

static void
test_read_file_too_big(void **state)
{
    char path[128];
    char data[9000];
    struct fq_buf b;

    (void)state;
    memset(data, 'x', sizeof(data));
    write_file("big", data, sizeof(data), path, sizeof(path));

    /* One byte over the cap (the file spans two read chunks). */
    fq_buf_init(&b, sizeof(data) - 1);
    assert_int_equal(fq_buf_read_file(&b, path), FQ_ETOOBIG);
    assert_released(&b);
    fq_buf_release(&b);

    /* Far over the cap, within the first chunk. */
    fq_buf_init(&b, 10);
    assert_int_equal(fq_buf_read_file(&b, path), FQ_ETOOBIG);
    assert_released(&b);

    /* Exactly at the cap. */
    fq_buf_init(&b, sizeof(data));
    assert_int_equal(fq_buf_read_file(&b, path), 0);
    assert_int_equal(fq_buf_len(&b), sizeof(data));
    assert_terminated(&b);
    fq_buf_release(&b);
    assert_int_equal(unlink(path), 0);
}

static void
test_read_file_empty(void **state)
{
    char path[128];
    struct fq_buf b;

    (void)state;
    write_file("empty", "", 0, path, sizeof(path));
    fq_buf_init(&b, 16);
    assert_int_equal(fq_buf_read_file(&b, path), 0);
    assert_int_equal(fq_buf_len(&b), 0);
    assert_non_null(b.data);
    assert_string_equal(fq_buf_str(&b), "");
    /* Detaching an empty file gives an empty heap string. */
    size_t len = 99;
    char *s = fq_buf_detach(&b, &len);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
    assert_int_equal(unlink(path), 0);
}

static void
test_read_file_directory(void **state)
{
    struct fq_buf b;

    (void)state;
    fq_buf_init(&b, 1024);
    assert_int_equal(fq_buf_read_file(&b, tmpdir), FQ_EIO);
    assert_released(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_empty),
        cmocka_unit_test(test_append),
        cmocka_unit_test(test_append_empty_allocates_string),
        cmocka_unit_test(test_append_binary),
        cmocka_unit_test(test_growth_keeps_content),
        cmocka_unit_test(test_cap_exact_then_one_over),
        cmocka_unit_test(test_cap_single_append_over),
        cmocka_unit_test(test_cap_of_one),
        cmocka_unit_test(test_printf_small),
        cmocka_unit_test(test_printf_large),
        cmocka_unit_test(test_printf_cap),
        cmocka_unit_test(test_detach),
        cmocka_unit_test(test_detach_empty),
        cmocka_unit_test(test_reset_keeps_memory_and_cap),
        cmocka_unit_test(test_read_file),
        cmocka_unit_test(test_read_file_text),
        cmocka_unit_test(test_read_file_missing),
        cmocka_unit_test(test_read_file_too_big),
        cmocka_unit_test(test_read_file_empty),
        cmocka_unit_test(test_read_file_directory),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
