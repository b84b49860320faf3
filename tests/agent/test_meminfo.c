/* tests/agent/test_meminfo.c: RAM figures from /proc/meminfo text
 * (agent/meminfo.c): the real file, a table of bad inputs, boundaries. */
#include <stdio.h>
#include <string.h>

#include "agent/cluster.h"
#include "lib/test.h"

static void parses(void **unused)
{
    uint64_t t = 0, a = 0;
    struct sh_err err;
    (void)unused;
    assert_int_equal(cluster_meminfo_parse("MemTotal:       16318720 kB\n"
                                           "MemFree:         1996068 kB\n"
                                           "MemAvailable:   12380908 kB\n",
                                           &t, &a, &err),
                     0);
    assert_true(t == UINT64_C(16318720) * 1024 && a == UINT64_C(12380908) * 1024);
    /* order does not matter, and free never exceeds total */
    assert_int_equal(cluster_meminfo_parse("MemAvailable: 9 kB\nMemTotal: 4 kB\n", &t, &a, &err),
                     0);
    assert_true(t == 4096 && a == 4096);
}

static void refuses(void **unused)
{
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"", "no MemTotal line"},
        {"MemTotal: 4 kB\n", "no MemAvailable line"},
        {"MemTotal: kB\nMemAvailable: 1 kB\n", "MemTotal: expected 'N kB'"},
        {"MemTotal: 4 MB\nMemAvailable: 1 kB\n", "MemTotal: expected 'N kB'"},
        {"MemTotal: -4 kB\nMemAvailable: 1 kB\n", "MemTotal: expected 'N kB'"},
        {"MemTotal: 18446744073709551615 kB\nMemAvailable: 1 kB\n", "MemTotal: expected 'N kB'"},
        {"MemTotal: 9999999999999 kB\nMemAvailable: 1 kB\n", "too large"},
        {"MemTotalX: 4 kB\nMemAvailable: 1 kB\n", "no MemTotal line"},
    };
    (void)unused;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t t = 7, a = 7;
        struct sh_err err;
        sh_err_clear(&err);
        if (cluster_meminfo_parse(bad[i].text, &t, &a, &err) != SH_EMALFORMED ||
            !strstr(err.msg, bad[i].msg))
            fail_msg("case %zu: got '%s', want '%s'", i, err.msg, bad[i].msg);
        assert_true(t == 7 && a == 7); /* untouched on error */
    }
}

static void the_real_file(void **unused)
{
    char text[16384];
    uint64_t t = 0, a = 0;
    struct sh_err err;
    FILE *f = fopen("/proc/meminfo", "r");
    size_t n;
    (void)unused;
    assert_non_null(f);
    n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    assert_int_equal(cluster_meminfo_parse(text, &t, &a, &err), 0);
    assert_true(t > 0 && a <= t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses),
        cmocka_unit_test(refuses),
        cmocka_unit_test(the_real_file),
    };
    return cmocka_run_group_tests_name("agent/meminfo", tests, NULL, NULL);
}
