/* tests/common/test_json.c: JSON parsing errors and typed getters. */
#include <string.h>

#include "common/json.h"
#include "lib/test.h"

static cJSON *parse(const char *s)
{
    cJSON *root = NULL;
    assert_int_equal(sh_json_parse(s, strlen(s), "test", &root, NULL), 0);
    return root;
}

static void malformed_and_trailing(void **state)
{
    struct sh_err err;
    cJSON *root = NULL;
    (void)state;
    assert_int_equal(sh_json_parse("{\"a\":", 5, "cfg", &root, &err), SH_EMALFORMED);
    assert_non_null(strstr(err.msg, "cfg: invalid JSON"));
    assert_int_equal(sh_json_parse("{} x", 4, "cfg", &root, &err), SH_EMALFORMED);
    assert_non_null(strstr(err.msg, "trailing data"));
    assert_int_equal(sh_json_parse("{}  \n", 5, "cfg", &root, &err), 0);
    cJSON_Delete(root);
}

static void typed_getters(void **state)
{
    struct sh_err err;
    cJSON *root = parse("{\"n\":3,\"f\":2.5,\"b\":true,\"s\":\"x\",\"big\":4294967296}");
    int64_t i = 0;
    double d = 0;
    bool b = false;
    const char *s = NULL;
    (void)state;
    assert_int_equal(sh_json_int(root, "n", 0, 10, &i, &err), 0);
    assert_int_equal(i, 3);
    assert_int_equal(sh_json_int(root, "f", 0, 10, &i, &err), SH_EMALFORMED);
    assert_int_equal(sh_json_int(root, "big", 0, UINT32_MAX, &i, &err), SH_EMALFORMED);
    assert_int_equal(sh_json_int(root, "missing", 0, 10, &i, &err), SH_ENOTFOUND);
    assert_int_equal(sh_json_num(root, "f", 0, 10, &d, &err), 0);
    assert_true(d == 2.5);
    assert_int_equal(sh_json_num(root, "s", 0, 10, &d, &err), SH_EMALFORMED);
    assert_non_null(strstr(err.msg, "\"s\""));
    assert_int_equal(sh_json_bool(root, "b", &b, &err), 0);
    assert_true(b);
    assert_int_equal(sh_json_bool(root, "n", &b, &err), SH_EMALFORMED);
    assert_int_equal(sh_json_str(root, "s", &s, &err), 0);
    assert_string_equal(s, "x");
    assert_int_equal(sh_json_str(root, "n", &s, &err), SH_EMALFORMED);
    cJSON_Delete(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(malformed_and_trailing),
        cmocka_unit_test(typed_getters),
    };
    return cmocka_run_group_tests_name("common/json", tests, NULL, NULL);
}
