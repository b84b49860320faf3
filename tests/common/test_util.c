/* tests/common/test_util.c: number parsing at the boundaries, the bounded
 * string buffer and the byte cursor. */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "lib/test.h"

static void parse_i64_boundaries(void **state)
{
    int64_t v = 0;
    (void)state;
    assert_true(sh_parse_i64("0", 0, 10, &v) && v == 0);
    assert_true(sh_parse_i64("-1", -1, 10, &v) && v == -1);
    assert_false(sh_parse_i64("-1", 0, 10, &v));
    assert_false(sh_parse_i64("", 0, 10, &v));
    assert_false(sh_parse_i64(" 1", 0, 10, &v));
    assert_false(sh_parse_i64("1 ", 0, 10, &v));
    assert_false(sh_parse_i64("1x", 0, 10, &v));
    assert_false(sh_parse_i64("+1", 0, 10, &v));
    assert_false(sh_parse_i64("11", 0, 10, &v));
    assert_true(sh_parse_i64("2147483648", 0, INT64_MAX, &v) && v == 2147483648LL);
    assert_false(sh_parse_i64("9223372036854775808", INT64_MIN, INT64_MAX, &v));
}

static void parse_u64_refuses_signs(void **state)
{
    uint64_t v = 0;
    (void)state;
    assert_false(sh_parse_u64("-1", UINT64_MAX, &v));
    assert_false(sh_parse_u64("+1", UINT64_MAX, &v));
    assert_true(sh_parse_u64("4294967295", UINT32_MAX, &v) && v == UINT32_MAX);
    assert_false(sh_parse_u64("4294967296", UINT32_MAX, &v));
    assert_true(sh_parse_u64("18446744073709551615", UINT64_MAX, &v) && v == UINT64_MAX);
    assert_false(sh_parse_u64("18446744073709551616", UINT64_MAX, &v));
}

static void parse_double(void **state)
{
    double d = 0;
    (void)state;
    assert_true(sh_parse_double("0.5", 0, 1, &d) && d == 0.5);
    assert_false(sh_parse_double("nan", -1e9, 1e9, &d));
    assert_false(sh_parse_double("1.5", 0, 1, &d));
    assert_false(sh_parse_double("0.5x", 0, 1, &d));
}

static void checked_math(void **state)
{
    size_t s = 0;
    uint64_t u = 0;
    (void)state;
    assert_true(sh_mul_size(1u << 16, 1u << 15, &s) && s == (size_t)1 << 31);
    assert_false(sh_mul_size(SIZE_MAX, 2, &s));
    assert_false(sh_add_size(SIZE_MAX, 1, &s));
    assert_false(sh_add_u64(UINT64_MAX, 1, &u));
    assert_false(sh_mul_u64(UINT64_MAX / 2 + 1, 2, &u));
}

static void strbuf_bounds(void **state)
{
    struct sh_strbuf sb;
    char *s;
    (void)state;
    sh_strbuf_init(&sb, 10);
    assert_int_equal(sh_strbuf_puts(&sb, "hello"), 0);
    assert_int_equal(sh_strbuf_printf(&sb, "%d", 1234), 0);
    assert_string_equal(sb.buf, "hello1234");
    assert_int_equal(sh_strbuf_puts(&sb, "xy"), SH_ETOOBIG);
    assert_string_equal(sb.buf, "hello1234"); /* unchanged on error */
    assert_int_equal(sh_strbuf_puts(&sb, "z"), 0);
    s = sh_strbuf_take(&sb);
    assert_string_equal(s, "hello1234z");
    assert_null(sb.buf);
    free(s);
    s = sh_strbuf_take(&sb);
    assert_string_equal(s, "");
    free(s);
    sh_strbuf_free(&sb);
}

static void strbuf_long_printf(void **state)
{
    struct sh_strbuf sb;
    char big[600];
    (void)state;
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    sh_strbuf_init(&sb, 1 << 20);
    assert_int_equal(sh_strbuf_printf(&sb, "<%s>", big), 0);
    assert_int_equal(sb.len, sizeof big + 1);
    sh_strbuf_free(&sb);
}

/* The capacity starts at `first`, doubles, and never shrinks. */
static void buf_grow_doubles(void **state)
{
    char *buf = NULL;
    size_t cap = 0;

    (void)state;
    assert_int_equal(sh_buf_grow(&buf, &cap, 10, 64), 0);
    assert_non_null(buf);
    assert_int_equal(cap, 64);
    assert_int_equal(sh_buf_grow(&buf, &cap, 64, 64), 0);
    assert_int_equal(cap, 64);
    assert_int_equal(sh_buf_grow(&buf, &cap, 65, 64), 0);
    assert_int_equal(cap, 128);
    assert_int_equal(sh_buf_grow(&buf, &cap, 1000, 64), 0);
    assert_int_equal(cap, 1024);
    memset(buf, 'x', cap); /* all of it is ours (ASan checks) */
    assert_int_equal(sh_buf_grow(&buf, &cap, 5, 64), 0);
    assert_int_equal(cap, 1024);
    free(buf);
}

static void cursor_sticky_error(void **state)
{
    const uint8_t data[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    struct sh_cursor c;
    (void)state;
    sh_cursor_init(&c, data, sizeof data);
    assert_int_equal(sh_cursor_u32(&c), 0x04030201u);
    assert_int_equal(sh_cursor_left(&c), 5);
    assert_int_equal(sh_cursor_u64(&c), 0); /* only 5 left */
    assert_true(c.err);
    assert_int_equal(sh_cursor_u8(&c), 0); /* sticky */
    assert_int_equal(sh_cursor_left(&c), 0);
}

static void put_and_read_back(void **state)
{
    uint8_t b[12];
    struct sh_cursor c;
    (void)state;
    sh_put_u32(b, 0xdeadbeefu);
    sh_put_u64(b + 4, 0x0123456789abcdefull);
    sh_cursor_init(&c, b, sizeof b);
    assert_int_equal(sh_cursor_u32(&c), 0xdeadbeefu);
    assert_true(sh_cursor_u64(&c) == 0x0123456789abcdefull);
    assert_false(c.err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_i64_boundaries), cmocka_unit_test(parse_u64_refuses_signs),
        cmocka_unit_test(parse_double),         cmocka_unit_test(checked_math),
        cmocka_unit_test(strbuf_bounds),        cmocka_unit_test(strbuf_long_printf),
        cmocka_unit_test(cursor_sticky_error),  cmocka_unit_test(put_and_read_back),
        cmocka_unit_test(buf_grow_doubles),
    };
    return cmocka_run_group_tests_name("common/util", tests, NULL, NULL);
}
