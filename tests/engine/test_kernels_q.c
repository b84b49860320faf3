/* tests/engine/test_kernels_q.c: the MLX affine Q4/Q8 kernels of every
 * ISA against the scalar ones (the oracle) and the scalar ones against
 * exact math, at every group size and scales dtype: decode's dot products
 * on prepared activation codes, and the integer prompt product.
 *
 * Named tolerances (T = sum of |terms|, u = 2^-24):
 *  - conversions (rows_to_f32) and activation preparation: bit-identical;
 *  - dot products: the kernels compute V = sum_g scale_g P_g +
 *    bias_g s_g, P_g = d_g sum code_i X_i (exact integers);
 *    |y - V| <= (group_size + 2 groups + 8) u T,
 *    T = sum_g |scale_g| sum code_i |d X_i| + |bias_g s_g|;
 *  - V against sum_i w_i x_i with the dequantized weights: at most
 *    sum_i (|code_i scale| + |bias|) (d_g / 2 + 2 u |x_i|) (the 16-bit
 *    activation codes) + |bias_g| (gs u sum |x_i| + 4 u |s_g|)
 *    (the f32 group sums).
 */
#include "tests/engine/kernels_test.h"

/* ---- decode */

/* bits: the activation codes' width (16, or 8 for Q4) */
static void check_quant(enum eng_dtype dt, int gs, enum eng_dtype sb, int bits)
{
    /* group counts: 1, 3, 8, 9, 17, 23 (tails of the 8-group batches:
     * flat, but 23 per row), odd counts of 32-groups (half blocks of Q4) */
    static const int64_t groups_list[] = {1, 3, 8, 9, 17, 23};
    static const int64_t rows_list[] = {1, 5, 16};
    const struct eng_mat_ops *ref = eng_mat_ops_isa(dt, ENG_ISA_SCALAR);

    for (size_t gi = 0; gi < sizeof groups_list / sizeof *groups_list; gi++) {
        for (size_t ri = 0; ri < sizeof rows_list / sizeof *rows_list; ri++) {
            int64_t ng = groups_list[gi], cols = ng * gs, rows = rows_list[ri];
            struct qmat q;
            struct eng_xq *xa, *xb;
            float *x = malloc((size_t)cols * 4), *wf = malloc((size_t)(rows * cols) * 4);
            float *y = malloc((size_t)rows * 4), *y2 = malloc((size_t)rows * 4);
            float *c2 = malloc((size_t)(rows * cols) * 4);
            void *ba = xq_new(cols, gs, dt, bits, &xa), *bb = xq_new(cols, gs, dt, bits, &xb);
            assert_true(x && wf && y && y2 && c2);
            assert_int_equal(xa->bits, bits);
            qmat_make(&q, dt, gs, sb, rows, cols);
            fill_x(x, cols);
            ref->prep(&q.m, x, xa);
            for (int64_t i = 0; i < cols; i++) /* the codes' range, reached */
                assert_true(abs(xa->t[i]) <= (bits == 8 ? 127 : ENG_XQ_MAX));
            for (int64_t g = 0; g < ng; g++) {
                int32_t top = 0;
                float xmax = 0.0f;
                for (int64_t i = g * gs; i < (g + 1) * gs; i++) {
                    top = abs(xa->t[i]) > top ? abs(xa->t[i]) : top;
                    xmax = fabsf(x[i]) > xmax ? fabsf(x[i]) : xmax;
                }
                assert_int_equal(top, xmax > 0.0f ? (bits == 8 ? 127 : ENG_XQ_MAX) : 0);
            }
            ref->rows_to_f32(&q.m, 0, rows, wf);
            ref->dot_rows(&q.m, xa, y, 0, rows);
            for (int64_t r = 0; r < rows; r++) {
                double v = 0, t = 0, exact = 0, bound = 0;
                size_t es = eng_dtype_info(sb)->size;
                for (int64_t g = 0; g < ng; g++) {
                    float s = eng_sb_load(sb, q.sc + (size_t)(r * ng + g) * es, 0);
                    float b = eng_sb_load(sb, q.bi + (size_t)(r * ng + g) * es, 0);
                    double half_d = xa->d[g] / 2, sum = 0, tsum = 0;
                    double xabs = 0;
                    for (int64_t i = g * gs; i < (g + 1) * gs; i++) {
                        unsigned c = q.codes[r * cols + i];
                        float wi = (float)c * s + b;
                        /* the conversion: code * scale + bias, not fused */
                        if (wf[r * cols + i] != wi)
                            fail_msg("rows_to_f32 %lld,%lld: %g, want %g", (long long)r,
                                     (long long)i, (double)wf[r * cols + i], (double)wi);
                        sum += (double)c * xa->t[i] * xa->d[g];
                        tsum += (double)c * fabs((double)xa->t[i]) * xa->d[g];
                        exact += (double)wi * x[i];
                        xabs += fabs((double)x[i]);
                        bound += (fabs((double)c * s) + fabs((double)b)) *
                                 (half_d + 2 * U * fabs((double)x[i]));
                    }
                    v += (double)s * sum + (double)b * xa->s[g];
                    t += fabs((double)s) * tsum + fabs((double)b * xa->s[g]);
                    bound += fabs((double)b) * ((double)gs * U * xabs + 4 * U * fabs(xa->s[g]));
                }
                if (fabs(y[r] - v) > (double)(gs + 2 * ng + 8) * U * t)
                    fail_msg("%s g%d scalar row %lld/%lld cols %lld: %g vs %g",
                             eng_dtype_info(dt)->name, gs, (long long)r, (long long)rows,
                             (long long)cols, (double)y[r], v);
                /* activation codes and f32 sums against exact math */
                if (fabs(v - exact) > bound * 1.01 + 1e-30)
                    fail_msg("%s g%d row %lld: %g from exact, over its bound %g",
                             eng_dtype_info(dt)->name, gs, (long long)r, fabs(v - exact), bound);
                for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
                    const struct eng_mat_ops *ops = eng_mat_ops_isa(dt, isas[k]);
                    if (!ops)
                        continue;
                    if (r == 0) {
                        void *rbuf;
                        struct eng_mat mk = mat_for(ops, &q.m, &rbuf);
                        /* batches run across rows where per-row ones would
                         * leave more than a tenth of their lanes idle */
                        int64_t lanes = (ng + 7) / 8 * 8;
                        assert_int_equal(mk.flat, (lanes - ng) * 10 > lanes);
                        ops->prep(&mk, x, xb);
                        /* the same codes (in element order), d and s */
                        assert_memory_equal(xa->t, xb->t, (size_t)cols * 4);
                        assert_memory_equal(xa->d, xb->d, (size_t)((ng + 7) / 8 * 8) * 4);
                        assert_memory_equal(xa->s, xb->s, (size_t)((ng + 7) / 8 * 8) * 4);
                        ops->rows_to_f32(&mk, rows / 2, rows, c2);
                        assert_memory_equal(wf + rows / 2 * cols, c2,
                                            (size_t)((rows - rows / 2) * cols) * 4);
                        ops->rows_to_f32(&mk, 0, rows, c2);
                        assert_memory_equal(wf, c2, (size_t)(rows * cols) * 4);
                        ops->dot_rows(&mk, xb, y2, 0, rows);
                        /* any split into row ranges (the threads'
                         * shares) gives the same rows bit for bit */
                        for (int64_t h = 1; h < rows; h += 2) {
                            ops->dot_rows(&mk, xb, c2, 0, h);
                            ops->dot_rows(&mk, xb, c2, h, rows);
                            assert_memory_equal(c2, y2, (size_t)rows * 4);
                        }
                        free(rbuf);
                    }
                    if (fabs(y2[r] - v) > (double)(2 * ng + 8) * U * t)
                        fail_msg("%s g%d a%d %s row %lld/%lld cols %lld: %g vs %g",
                                 eng_dtype_info(dt)->name, gs, bits, eng_isa_name(isas[k]),
                                 (long long)r, (long long)rows, (long long)cols, (double)y2[r], v);
                }
            }
            qmat_free(&q);
            free(ba);
            free(bb);
            free(x);
            free(wf);
            free(y);
            free(y2);
            free(c2);
        }
    }
}

static void test_q4(void **state)
{
    (void)state;
    for (int bits = 16; bits >= 8; bits -= 8)
        for (int gs = 32; gs <= 128; gs *= 2) {
            check_quant(ENG_DT_Q4, gs, ENG_DT_BF16, bits);
            check_quant(ENG_DT_Q4, gs, ENG_DT_F16, bits);
            check_quant(ENG_DT_Q4, gs, ENG_DT_F32, bits);
        }
}

/* Q4 and Q8 with 16-bit codes at the extremes: every weight code at its
 * largest (15, 255) against codes all +ENG_XQ_MAX or all -ENG_XQ_MAX (the AVX-512
 * build splits them into bytes of 127 and 127, or -127 and -127), where the
 * kernels' integer sums are largest (a Q8 group of 128: 1.07e9, near
 * 2^31). Each row is code * cols * sign. */
static void test_quant_extremes(void **state)
{
    (void)state;
    for (int q8 = 0; q8 <= 1; q8++)
        for (int gs = 32; gs <= 128; gs *= 2) {
            const enum eng_dtype dt = q8 ? ENG_DT_Q8 : ENG_DT_Q4;
            const int64_t ng = 16, cols = ng * gs, rows = 3;
            const size_t row_bytes = (size_t)cols * (q8 ? 2 : 1) / 2;
            const struct eng_mat_ops *ref = eng_mat_ops_isa(dt, ENG_ISA_SCALAR);
            uint8_t *packed = malloc((size_t)rows * row_bytes);
            uint16_t sc[3 * 16], bi[3 * 16];
            float *x = malloc((size_t)cols * sizeof *x), y[3], y2[3];
            struct eng_mat m;

            assert_true(packed && x);
            memset(packed, 0xff, (size_t)rows * row_bytes);
            for (int i = 0; i < 3 * 16; i++) {
                sc[i] = 0x3f80; /* bf16 1.0 */
                bi[i] = 0;
            }
            m = (struct eng_mat){.dtype = dt,
                                 .rows = rows,
                                 .cols = cols,
                                 .row_stride = row_bytes,
                                 .data = packed,
                                 .group_size = gs,
                                 .sb_dtype = ENG_DT_BF16,
                                 .scales = sc,
                                 .biases = bi,
                                 .sb_stride = (size_t)ng * 2};
            for (int sign = -1; sign <= 1; sign += 2) {
                double want = (q8 ? 255.0 : 15.0) * (double)cols * sign;
                struct eng_xq *xa;
                void *ba = xq_new(cols, gs, dt, 16, &xa);
                for (int64_t i = 0; i < cols; i++)
                    x[i] = (float)sign;
                ref->prep(&m, x, xa);
                ref->dot_rows(&m, xa, y, 0, rows);
                for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
                    const struct eng_mat_ops *ops = eng_mat_ops_isa(dt, isas[k]);
                    struct eng_xq *xb;
                    void *rbuf, *bb;
                    struct eng_mat mk;
                    if (!ops)
                        continue;
                    mk = mat_for(ops, &m, &rbuf);
                    bb = xq_new(cols, gs, dt, 16, &xb);
                    ops->prep(&mk, x, xb);
                    ops->dot_rows(&mk, xb, y2, 0, rows);
                    for (int64_t r = 0; r < rows; r++)
                        if (fabs(y[r] - want) > 1e-5 * fabs(want) ||
                            fabs(y2[r] - want) > 1e-5 * fabs(want))
                            fail_msg("%s g%d sign %d row %lld: scalar %g, %s %g, want %g",
                                     eng_dtype_info(dt)->name, gs, sign, (long long)r, (double)y[r],
                                     eng_isa_name(isas[k]), (double)y2[r], want);
                    free(bb);
                    free(rbuf);
                }
                free(ba);
            }
            free(packed);
            free(x);
        }
}

static void test_q8(void **state)
{
    (void)state;
    for (int gs = 32; gs <= 128; gs *= 2) {
        check_quant(ENG_DT_Q8, gs, ENG_DT_BF16, 16);
        check_quant(ENG_DT_Q8, gs, ENG_DT_F16, 16);
        check_quant(ENG_DT_Q8, gs, ENG_DT_F32, 16);
    }
    { /* 8-bit codes are for Q4 alone: Q8 keeps 16 */
        struct eng_xq *xq;
        void *buf = xq_new(64, 64, ENG_DT_Q8, 8, &xq);
        assert_int_equal(xq->bits, 16);
        free(buf);
    }
}

/* The AVX-512 products add the same integer sums in another order, so
 * they must give the AVX2 products' bits exactly: every dtype, code width
 * and group size, flat and per-row matrices (full batches and short
 * ones), whole ranges and rows split unevenly. */
static void test_avx512_bits(void **state)
{
    static const int64_t shapes[][2] = {{37, 14 * 64}, {21, 76 * 64}, {64, 16 * 64}, {9, 3 * 64}};
    (void)state;
    if (!eng_mat_ops_isa(ENG_DT_Q4, ENG_ISA_AVX512)) {
        print_message("# no AVX-512 VNNI here: comparison skipped\n");
        return;
    }
    for (int kind = 0; kind < 3; kind++) {
        enum eng_dtype dt = kind == 1 ? ENG_DT_Q8 : ENG_DT_Q4;
        int bits = kind == 2 ? 8 : 16;
        const struct eng_mat_ops *a2 = eng_mat_ops_isa(dt, ENG_ISA_AVX2);
        const struct eng_mat_ops *a5 = eng_mat_ops_isa(dt, ENG_ISA_AVX512);
        for (int gs = 32; gs <= 128; gs *= 2)
            for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
                int64_t rows = shapes[si][0], cols = shapes[si][1] / 64 * gs;
                struct qmat q;
                float *x = malloc((size_t)cols * sizeof *x), y2[64], y5[64];
                void *rbuf, *xbuf;
                struct eng_mat m;
                const void *xp;
                assert_non_null(x);
                qmat_make(&q, dt, gs, si % 2 ? ENG_DT_F16 : ENG_DT_BF16, rows, cols);
                fill_x(x, cols);
                m = mat_for(a2, &q.m, &rbuf);
                xp = x_for(a2, &m, x, bits, &xbuf);
                a2->dot_rows(&m, xp, y2, 0, rows);
                free(xbuf);
                /* each ISA on its own prep's layout */
                xp = x_for(a5, &m, x, bits, &xbuf);
                a5->dot_rows(&m, xp, y5, 0, rows / 3);
                a5->dot_rows(&m, xp, y5, rows / 3, rows);
                for (int64_t r = 0; r < rows; r++)
                    if (memcmp(&y2[r], &y5[r], sizeof *y2) != 0)
                        fail_msg("%s g%d codes %d %lldx%lld%s row %lld: avx512 %a, avx2 %a",
                                 eng_dtype_info(dt)->name, gs, bits, (long long)rows,
                                 (long long)cols, m.flat ? " flat" : "", (long long)r,
                                 (double)y5[r], (double)y2[r]);
                free(xbuf);
                free(rbuf);
                free(x);
                qmat_free(&q);
            }
    }
}

/* A group holding inf or NaN makes the dot products NaN on every ISA (as
 * float math would), and others stay finite. */
static void test_quant_nonfinite(void **state)
{
    (void)state;
    for (int k = -1; k < (int)(sizeof isas / sizeof *isas); k++)
        for (int bits = 16; bits >= 8; bits -= 8) {
            const struct eng_mat_ops *ops =
                eng_mat_ops_isa(ENG_DT_Q4, k < 0 ? ENG_ISA_SCALAR : isas[k]);
            struct qmat q;
            struct eng_xq *xq;
            float x[128], y[2];
            void *buf;
            if (!ops)
                continue;
            void *rbuf;
            struct eng_mat mk;
            buf = xq_new(128, 64, ENG_DT_Q4, bits, &xq);
            qmat_make(&q, ENG_DT_Q4, 64, ENG_DT_BF16, 2, 128);
            mk = mat_for(ops, &q.m, &rbuf);
            fill_x(x, 128);
            ops->prep(&mk, x, xq);
            ops->dot_rows(&mk, xq, y, 0, 2);
            assert_true(isfinite(y[0]) && isfinite(y[1]));
            x[70] = INFINITY;
            ops->prep(&mk, x, xq);
            ops->dot_rows(&mk, xq, y, 0, 2);
            assert_true(isnan(y[0]) && isnan(y[1]));
            x[70] = NAN;
            ops->prep(&mk, x, xq);
            ops->dot_rows(&mk, xq, y, 0, 2);
            assert_true(isnan(y[0]) && isnan(y[1]));
            qmat_free(&q);
            free(rbuf);
            free(buf);
        }
}

/* ---- the integer prompt product of Q4/Q8 (AVX2): each token as decode
 * computes it (scalar prep_q and dot_rows_q), up to the order of float
 * additions; its codes, d and s exactly the scalar ones */

static void check_gemm_q(enum eng_dtype dt, int gs, enum eng_dtype sb)
{
    /* groups: a short batch alone, 8-group batches and tails; rows: short
     * panels, several panels and (17 groups of 128) several row blocks */
    static const int64_t groups_list[] = {1, 9, 17};
    static const int64_t rows_list[] = {1, 7, 100};
    static const int ms[] = {2, 17, 40};
    const struct eng_mat_ops *ref = eng_mat_ops_isa(dt, ENG_ISA_SCALAR), *ops = eng_mat_ops(dt);
    size_t es = eng_dtype_info(sb)->size;

    for (size_t gi = 0; gi < sizeof groups_list / sizeof *groups_list; gi++)
        for (size_t ri = 0; ri < sizeof rows_list / sizeof *rows_list; ri++)
            for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi++) {
                int64_t ng = groups_list[gi], k = ng * gs, rows = rows_list[ri];
                int m = ms[mi];
                int64_t r0 = rows > 1 ? 1 : 0;
                size_t ldy = (size_t)rows + 3;
                struct qmat q;
                struct eng_xq *xa;
                struct eng_gemm_xq xq;
                void *rbuf, *ba = xq_new(k, gs, dt, 16, &xa);
                void *qbuf = aligned_alloc(64, (eng_gemm_xq_bytes(m, k) + 63) / 64 * 64);
                float *x = malloc((size_t)(m * k) * 4), *y = malloc((size_t)m * ldy * 4);
                float *y2 = malloc((size_t)m * ldy * 4), *yr = malloc((size_t)rows * 4);
                float *wbuf =
                    malloc((size_t)(64 * 1024 > 12 * (k + 16) ? 64 * 1024 : 12 * (k + 16)) * 4);
                struct eng_mat mk;
                assert_true(qbuf && x && y && y2 && yr && wbuf);
                qmat_make(&q, dt, gs, sb, rows, k);
                mk = mat_for(ops, &q.m, &rbuf);
                for (int t = 0; t < m; t++)
                    fill_x(x + (size_t)t * (size_t)k, k);
                x[k + 3] = 0.0f; /* a token with an all-zero group */
                for (int64_t i = 0; i < gs && m > 2; i++)
                    x[2 * k + i] = 0.0f;
                memset(qbuf, 0xA5, eng_gemm_xq_bytes(m, k));
                eng_gemm_xq_init(qbuf, m, k, gs, &xq);
                /* in two parts, as two threads would */
                eng_gemm_prep_q(x, (size_t)k, &xq, 0, eng_gemm_xq_blocks(&xq) / 2);
                eng_gemm_prep_q(x, (size_t)k, &xq, eng_gemm_xq_blocks(&xq) / 2,
                                eng_gemm_xq_blocks(&xq));
                /* on each ISA whose micro-kernel runs here: AVX-512's gives
                 * AVX2's bits */
                for (size_t ii = 0; ii < sizeof isas / sizeof *isas; ii++) {
                    if (!eng_mat_ops_isa(dt, isas[ii]))
                        continue;
                    memset(ii == 0 ? y : y2, 0, (size_t)m * ldy * 4);
                    eng_gemm_q_avx2(&mk, r0, rows, &xq, ii == 0 ? y : y2, ldy, wbuf, isas[ii]);
                    if (ii > 0 && memcmp(y, y2, (size_t)m * ldy * 4) != 0)
                        fail_msg("gemm_q %s g%d rows %lld k %lld m %d: %s differs from %s",
                                 eng_dtype_info(dt)->name, gs, (long long)rows, (long long)k, m,
                                 eng_isa_name(isas[ii]), eng_isa_name(isas[0]));
                }
                for (int t = 0; t < m; t++) {
                    size_t blk = (size_t)(t / 16) * 16;
                    ref->prep(&q.m, x + (size_t)t * (size_t)k, xa);
                    ref->dot_rows(&q.m, xa, yr, 0, rows);
                    for (int64_t g = 0; g < ng; g++) {
                        size_t at = blk * (size_t)ng + (size_t)g * 16 + (size_t)(t % 16);
                        assert_memory_equal(&xq.d[at], &xa->d[g], 4);
                        assert_memory_equal(&xq.s[at], &xa->s[g], 4);
                    }
                    for (int64_t i = 0; i < k; i++)
                        assert_int_equal(xq.q[blk * (size_t)k + (size_t)(i / 2) * 32 +
                                              (size_t)(t % 16) * 2 + (size_t)(i % 2)],
                                         xa->t[i]);
                    for (int64_t r = r0; r < rows; r++) {
                        double tb = 0; /* sum of the terms' magnitudes */
                        for (int64_t g = 0; g < ng; g++) {
                            float sc = eng_sb_load(sb, q.sc + (size_t)(r * ng + g) * es, 0);
                            float bi = eng_sb_load(sb, q.bi + (size_t)(r * ng + g) * es, 0);
                            double ts = 0;
                            for (int64_t i = g * gs; i < (g + 1) * gs; i++)
                                ts += (double)q.codes[r * k + i] * fabs((double)xa->t[i]);
                            tb += fabs((double)sc) * ts * xa->d[g] + fabs((double)bi * xa->s[g]);
                        }
                        if (fabs((double)y[(size_t)t * ldy + (size_t)r] - yr[r]) >
                            (double)(4 * ng + 8) * U * tb)
                            fail_msg("gemm_q %s g%d rows %lld k %lld m %d: [%d][%lld] %g vs %g",
                                     eng_dtype_info(dt)->name, gs, (long long)rows, (long long)k, m,
                                     t, (long long)r, (double)y[(size_t)t * ldy + (size_t)r],
                                     (double)yr[r]);
                    }
                }
                free(rbuf);
                qmat_free(&q);
                free(ba);
                free(qbuf);
                free(x);
                free(y);
                free(y2);
                free(yr);
                free(wbuf);
            }
}

static void test_gemm_q(void **state)
{
    (void)state;
#if !defined(__x86_64__)
    print_message("# not x86-64: the prompt path is OpenBLAS\n");
#else
    if (eng_isa_best() < ENG_ISA_AVX2) {
        print_message("# no AVX2: the prompt path is OpenBLAS\n");
        return;
    }
    check_gemm_q(ENG_DT_Q4, 32, ENG_DT_BF16);
    check_gemm_q(ENG_DT_Q4, 64, ENG_DT_F16);
    check_gemm_q(ENG_DT_Q4, 128, ENG_DT_F32);
    check_gemm_q(ENG_DT_Q8, 32, ENG_DT_F32);
    check_gemm_q(ENG_DT_Q8, 64, ENG_DT_BF16);
    check_gemm_q(ENG_DT_Q8, 128, ENG_DT_F16);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q4),     cmocka_unit_test(test_quant_extremes),
        cmocka_unit_test(test_q8),     cmocka_unit_test(test_quant_nonfinite),
        cmocka_unit_test(test_gemm_q), cmocka_unit_test(test_avx512_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
