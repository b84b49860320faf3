/* tests/common/test_membw.c: the bandwidth probe's kernels agree with a plain
 * loop at every length and alignment, a probe reads every slice exactly
 * (checksum in closed form), and bad options are refused by name. No timing
 * is asserted: speed is reported by bench/membw, not tested. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/membw.h"
#include "lib/test.h"

static uint64_t plain_sum(const uint64_t *p, size_t n)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += p[i];
    return s;
}

static void kernels_agree(void **state)
{
    static const size_t lens[] = {0, 1, 3, 4, 15, 16, 17, 31, 33, 1000, 4099};
    uint64_t *buf = malloc(4200 * sizeof *buf);
    uint64_t x = 88172645463325252ULL;

    (void)state;
    assert_non_null(buf);
    for (size_t i = 0; i < 4200; i++) { /* xorshift64: every bit pattern, wraps in sums */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = x;
    }
    for (size_t off = 0; off < 3; off++) {
        for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
            uint64_t want = plain_sum(buf + off, lens[k]);
            assert_int_equal(sh_membw_sum(buf + off, lens[k], true), want);
            assert_int_equal(sh_membw_sum(buf + off, lens[k], false), want);
        }
    }
    free(buf);
}

/* sum_{i<n} i*K mod 2^64 = K * n(n-1)/2, with the halving done before the
 * product so nothing is lost to the wrap. */
static uint64_t fill_checksum(uint64_t n)
{
    uint64_t tri = (n % 2 == 0) ? (n / 2) * (n - 1) : n * ((n - 1) / 2);
    return tri * SH_MEMBW_FILL_MUL;
}

static void probe_reads_every_slice(void **state)
{
    struct sh_membw_opts o = {.threads = 3, .bytes = (size_t)3 << 20, .runs = 3};
    struct sh_membw_result r;
    struct sh_err err;

    (void)state;
    for (int scalar = 0; scalar < 2; scalar++) {
        o.scalar = scalar;
        o.huge_pages = scalar; /* the advice changes nothing observable but timing */
        sh_err_clear(&err);
        memset(&r, 0, sizeof r);
        assert_int_equal(sh_membw_measure(&o, &r, &err), 0);
        assert_int_equal(r.bytes, (size_t)3 << 20);
        assert_true(r.checksum == fill_checksum(r.bytes / 8));
        assert_true(isfinite(r.best_gbps) && r.best_gbps > 0);
        assert_true(isfinite(r.median_gbps) && r.median_gbps > 0);
        assert_true(r.median_gbps <= r.best_gbps);
        assert_string_equal(r.kernel, scalar || !sh_membw_have_avx2() ? "scalar" : "avx2");
    }
}

static void odd_sizes_round_down_to_blocks(void **state)
{
    /* 2 threads, 1 MiB + 5000 bytes each: each slice keeps whole 4 KiB blocks. */
    struct sh_membw_opts o = {.threads = 2, .bytes = ((size_t)2 << 20) + 10000, .runs = 1};
    struct sh_membw_result r;

    (void)state;
    assert_int_equal(sh_membw_measure(&o, &r, NULL), 0);
    assert_int_equal(r.bytes, ((size_t)2 << 20) + 2 * 4096);
    assert_true(r.checksum == fill_checksum(r.bytes / 8));
}

static void expect_invalid(int threads, size_t bytes, int runs, const char *words)
{
    struct sh_membw_opts o = {.threads = threads, .bytes = bytes, .runs = runs};
    struct sh_membw_result r;
    struct sh_err err;

    memset(&r, 0x5a, sizeof r);
    sh_err_clear(&err);
    assert_int_equal(sh_membw_measure(&o, &r, &err), SH_EINVAL);
    assert_non_null(strstr(sh_err_msg(&err), words));
    assert_int_equal(((unsigned char *)&r)[0], 0x5a); /* untouched on error */
}

static void bad_options_are_named(void **state)
{
    const size_t mib = (size_t)1 << 20;

    (void)state;
    expect_invalid(0, mib, 1, "threads 0");
    expect_invalid(-1, mib, 1, "threads -1");
    expect_invalid(SH_MEMBW_MAX_THREADS + 1, 2000 * mib, 1, "threads 1025");
    expect_invalid(1, mib, 0, "runs 0");
    expect_invalid(1, mib, SH_MEMBW_MAX_RUNS + 1, "runs 10001");
    expect_invalid(1, mib - 1, 1, "per thread");
    expect_invalid(2, mib, 1, "per thread"); /* 2 threads need 2 MiB */
    expect_invalid(1, (size_t)SH_MEMBW_MAX_BYTES + 1, 1, "limit");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kernels_agree),
        cmocka_unit_test(probe_reads_every_slice),
        cmocka_unit_test(odd_sizes_round_down_to_blocks),
        cmocka_unit_test(bad_options_are_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
