/* tests/common/test_err.c: error codes, messages and wrapping. */
#include <string.h>

#include "common/err.h"
#include "lib/test.h"

static void set_and_wrap(void **state)
{
    struct sh_err err;
    (void)state;
    sh_err_clear(&err);
    assert_int_equal(sh_err_set(&err, SH_EMALFORMED, "tensor %s: bad", "x"), SH_EMALFORMED);
    assert_string_equal(sh_err_msg(&err), "tensor x: bad");
    assert_int_equal(sh_err_wrap(&err, "shard %d", 2), SH_EMALFORMED);
    assert_string_equal(sh_err_msg(&err), "shard 2: tensor x: bad");
}

static void wrap_without_message_uses_code_text(void **state)
{
    struct sh_err err = {.code = SH_ENOMEM, .msg = ""};
    (void)state;
    sh_err_wrap(&err, "load");
    assert_string_equal(err.msg, "load: out of memory");
}

static void null_err_is_allowed(void **state)
{
    (void)state;
    assert_int_equal(sh_err_set(NULL, SH_EIO, "x"), SH_EIO);
    assert_string_equal(sh_err_msg(NULL), "");
    assert_string_equal(sh_strerror(12345), "unknown error");
    assert_string_equal(sh_strerror(SH_ETOOBIG), "too big");
}

static void long_messages_truncate(void **state)
{
    struct sh_err err;
    char big[1000];
    (void)state;
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    sh_err_set(&err, SH_EINVAL, "%s", big);
    assert_int_equal(strlen(err.msg), SH_ERR_MSG_LEN - 1);
    sh_err_wrap(&err, "%s", big);
    assert_int_equal(strlen(err.msg), SH_ERR_MSG_LEN - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(set_and_wrap),
        cmocka_unit_test(wrap_without_message_uses_code_text),
        cmocka_unit_test(null_err_is_allowed),
        cmocka_unit_test(long_messages_truncate),
    };
    return cmocka_run_group_tests_name("common/err", tests, NULL, NULL);
}
