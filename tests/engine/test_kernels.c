/* tests/engine/test_kernels.c: every ISA's weight kernels against the
 * scalar ones (the oracle) and the scalar ones against exact math, on
 * random shapes with odd sizes and tails, for F32, F16, BF16 and MLX
 * affine Q4/Q8 at every group size and scales dtype.
 *
 * Named tolerances (n terms summed in float, T = sum of |terms|, u = 2^-24):
 *  - conversions (rows_to_f32) and activation preparation: bit-identical;
 *  - float dot products: |y - exact| <= (n + 2) u T, T = sum |w_i x_i|
 *    (any summation order, fused or not);
 *  - Q4/Q8 dot products: the kernels compute V = sum_g scale_g P_g +
 *    bias_g s_g, P_g = d_g sum code_i X_i (exact integers);
 *    |y - V| <= (group_size + 2 groups + 8) u T,
 *    T = sum_g |scale_g| sum code_i |d X_i| + |bias_g s_g|;
 *  - V against sum_i w_i x_i with the dequantized weights: at most
 *    sum_i (|code_i scale| + |bias|) (d_g / 2 + 2 u |x_i|) (the 16-bit
 *    activation codes) + |bias_g| (gs u sum |x_i| + 4 u |s_g|)
 *    (the f32 group sums).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"
#include "engine/kern_common.h"
#include "tests/lib/test.h"

#define U 0x1.0p-24

/* ---- deterministic random numbers (xorshift64*) */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* Uniform in [-1, 1). */
static float rndf(void)
{
    return (float)((double)(rnd() >> 11) * 0x1.0p-52 - 1.0);
}

/* Activations: mostly small, some outliers, an all-zero group now and then. */
static void fill_x(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = rndf() * (rnd() % 16 == 0 ? 20.0f : 1.0f);
    if (n >= 64 && rnd() % 2)
        memset(x + 32, 0, 32 * sizeof *x);
}

static const enum eng_isa isas[] = {ENG_ISA_AVX2};

static void *xq_new(int64_t cols, int gs, enum eng_dtype dt, int bits, struct eng_xq **xq);

/* The matrix as an ISA's kernels read it: repacked into its own layout when
 * it has one (*buf is then returned, the caller frees it), else as is. */
static struct eng_mat mat_for(const struct eng_mat_ops *ops, const struct eng_mat *m, void **buf)
{
    struct eng_mat out = *m;
    *buf = NULL;
    if (ops->repack) {
        *buf = malloc((size_t)m->rows * m->row_stride + ENG_REPACK_PAD);
        assert_non_null(*buf);
        ops->repack(m, *buf, &out);
        assert_true(out.interleaved);
    }
    return out;
}

/* x as ops->dot_rows reads m's rows with it: x itself, or prepared (the
 * kernel's codes of `bits`, or a reordered x) in a new *buf the caller
 * frees (NULL when there is none). */
static const void *
x_for(const struct eng_mat_ops *ops, const struct eng_mat *m, const float *x, int bits, void **buf)
{
    struct eng_xq *xq;

    *buf = NULL;
    if (!ops->prep)
        return x;
    *buf = xq_new(m->cols, m->group_size, m->dtype, bits, &xq);
    ops->prep(m, x, xq);
    return xq;
}

/* ---- float dtypes */

static void encode(enum eng_dtype dt, float v, uint8_t *dst)
{
    if (dt == ENG_DT_F32) {
        memcpy(dst, &v, 4);
    } else {
        uint16_t h = dt == ENG_DT_BF16 ? eng_f32_to_bf16(v) : eng_f32_to_f16(v);
        memcpy(dst, &h, 2);
    }
}

static void check_float_dtype(enum eng_dtype dt)
{
    static const int64_t cols_list[] = {1, 7, 8, 9, 31, 32, 33, 64, 100, 257, 1000};
    static const int64_t rows_list[] = {1, 3, 17};
    const struct eng_mat_ops *ref = eng_mat_ops_isa(dt, ENG_ISA_SCALAR);
    size_t es = eng_dtype_info(dt)->size;

    assert_non_null(ref);
    for (size_t ci = 0; ci < sizeof cols_list / sizeof *cols_list; ci++) {
        for (size_t ri = 0; ri < sizeof rows_list / sizeof *rows_list; ri++) {
            int64_t cols = cols_list[ci], rows = rows_list[ri];
            size_t stride = (size_t)cols * es + (ri == 1 ? 8 : 0); /* padded rows too */
            uint8_t *w = calloc((size_t)rows, stride);
            float *x = malloc((size_t)cols * sizeof *x), *wf = malloc((size_t)(rows * cols) * 4);
            float *y = malloc((size_t)rows * 4), *y2 = malloc((size_t)rows * 4);
            float *c1 = malloc((size_t)(rows * cols) * 4), *c2 = malloc((size_t)(rows * cols) * 4);
            struct eng_mat m = {.dtype = dt, .rows = rows, .cols = cols, .row_stride = stride};
            assert_true(w && x && wf && y && y2 && c1 && c2);
            m.data = w;
            for (int64_t r = 0; r < rows; r++)
                for (int64_t i = 0; i < cols; i++)
                    encode(dt, rndf() * 0.1f, w + (size_t)r * stride + (size_t)i * es);
            fill_x(x, cols);
            ref->rows_to_f32(&m, 0, rows, wf);
            ref->dot_rows(&m, x, y, 0, rows);
            for (int64_t r = 0; r < rows; r++) {
                double exact = 0, t = 0;
                for (int64_t i = 0; i < cols; i++) {
                    exact += (double)wf[r * cols + i] * x[i];
                    t += fabs((double)wf[r * cols + i] * x[i]);
                }
                if (fabs(y[r] - exact) > (double)(cols + 2) * U * t)
                    fail_msg("%s scalar %lldx%lld row %lld: %g vs exact %g",
                             eng_dtype_info(dt)->name, (long long)rows, (long long)cols,
                             (long long)r, (double)y[r], exact);
                for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
                    const struct eng_mat_ops *ops = eng_mat_ops_isa(dt, isas[k]);
                    void *buf;
                    if (!ops)
                        continue;
                    ops->dot_rows(&m, x_for(ops, &m, x, 16, &buf), y2, r, r + 1);
                    free(buf);
                    if (fabs(y2[r] - exact) > (double)(cols + 2) * U * t)
                        fail_msg("%s %s %lldx%lld row %lld: %g vs exact %g",
                                 eng_dtype_info(dt)->name, eng_isa_name(isas[k]), (long long)rows,
                                 (long long)cols, (long long)r, (double)y2[r], exact);
                }
            }
            for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
                const struct eng_mat_ops *ops = eng_mat_ops_isa(dt, isas[k]);
                if (!ops)
                    continue;
                /* Ranges of several rows (the kernels walk two rows at
                 * a time, rows [r0, r1) as two halves) give each row the
                 * bits of its one-row range, whatever the split. */
                {
                    void *buf;
                    const void *xp = x_for(ops, &m, x, 16, &buf);
                    for (int64_t r = 0; r < rows; r++)
                        ops->dot_rows(&m, xp, y2, r, r + 1);
                    for (int64_t h = 0; h < rows; h += 2) {
                        ops->dot_rows(&m, xp, y, 0, h);
                        ops->dot_rows(&m, xp, y, h, rows);
                        assert_memory_equal(y, y2, (size_t)rows * 4);
                    }
                    free(buf);
                }
                /* a row range in the middle, then everything */
                ref->rows_to_f32(&m, rows / 2, rows, c1);
                ops->rows_to_f32(&m, rows / 2, rows, c2);
                assert_memory_equal(c1, c2, (size_t)((rows - rows / 2) * cols) * 4);
                ops->rows_to_f32(&m, 0, rows, c2);
                assert_memory_equal(wf, c2, (size_t)(rows * cols) * 4);
            }
            free(w);
            free(x);
            free(wf);
            free(y);
            free(y2);
            free(c1);
            free(c2);
        }
    }
}

static void test_f32(void **state)
{
    (void)state;
    check_float_dtype(ENG_DT_F32);
}

static void test_f16(void **state)
{
    (void)state;
    check_float_dtype(ENG_DT_F16);
}

static void test_bf16(void **state)
{
    (void)state;
    check_float_dtype(ENG_DT_BF16);
}

/* ---- affine-quantized */

struct qmat {
    struct eng_mat m;
    uint8_t *codes;  /* (rows, cols) unpacked, for the exact reference */
    uint8_t *packed; /* (rows, row_stride) */
    uint8_t *sc, *bi;
};

static void
qmat_make(struct qmat *q, enum eng_dtype dt, int gs, enum eng_dtype sb, int64_t rows, int64_t cols)
{
    int bits = eng_q_bits(dt);
    int64_t ng = cols / gs;
    size_t es = eng_dtype_info(sb)->size;
    float *w = malloc((size_t)gs * sizeof *w);

    memset(q, 0, sizeof *q);
    q->codes = malloc((size_t)(rows * cols));
    q->packed = malloc((size_t)(rows * cols * bits / 8));
    q->sc = malloc((size_t)(rows * ng) * es);
    q->bi = malloc((size_t)(rows * ng) * es);
    assert_true(w && q->codes && q->packed && q->sc && q->bi);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t g = 0; g < ng; g++) {
            float s, b;
            for (int i = 0; i < gs; i++)
                w[i] = rndf() * 0.05f + (g % 3 == 0 ? 0.03f : 0.0f);
            eng_quant_group(w, gs, bits, sb, q->codes + r * cols + g * gs, &s, &b);
            encode(sb, s, q->sc + (size_t)(r * ng + g) * es);
            encode(sb, b, q->bi + (size_t)(r * ng + g) * es);
        }
        eng_quant_pack(q->codes + r * cols, cols, bits, q->packed + r * cols * bits / 8);
    }
    q->m = (struct eng_mat){.dtype = dt,
                            .rows = rows,
                            .cols = cols,
                            .row_stride = (size_t)(cols * bits / 8),
                            .data = q->packed,
                            .group_size = gs,
                            .sb_dtype = sb,
                            .scales = q->sc,
                            .biases = q->bi,
                            .sb_stride = (size_t)ng * es};
    free(w);
}

static void qmat_free(struct qmat *q)
{
    free(q->codes);
    free(q->packed);
    free(q->sc);
    free(q->bi);
}

/* A float (f32, f16, bf16) matrix of small random weights, unpadded rows;
 * *buf holds them (the caller frees it). */
static struct eng_mat fmat_make(enum eng_dtype dt, int64_t rows, int64_t cols, uint8_t **buf)
{
    size_t es = eng_dtype_info(dt)->size;

    *buf = malloc((size_t)(rows * cols) * es);
    assert_non_null(*buf);
    for (int64_t i = 0; i < rows * cols; i++)
        encode(dt, rndf() * 0.1f, *buf + (size_t)i * es);
    return (struct eng_mat){
        .dtype = dt, .rows = rows, .cols = cols, .row_stride = (size_t)cols * es, .data = *buf};
}

static void *xq_new(int64_t cols, int gs, enum eng_dtype dt, int bits, struct eng_xq **xq)
{
    void *buf = aligned_alloc(64, (eng_xq_bytes(cols, gs) + 63) / 64 * 64);
    assert_non_null(buf);
    /* garbage first: prep must write everything the kernels read */
    memset(buf, 0xA5, eng_xq_bytes(cols, gs));
    *xq = eng_xq_init(buf, cols, gs, dt, bits);
    return buf;
}

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
                assert_true(abs(xa->t[i]) <= (bits == 8 ? 127 : 32767));
            for (int64_t g = 0; g < ng; g++) {
                int32_t top = 0;
                float xmax = 0.0f;
                for (int64_t i = g * gs; i < (g + 1) * gs; i++) {
                    top = abs(xa->t[i]) > top ? abs(xa->t[i]) : top;
                    xmax = fabsf(x[i]) > xmax ? fabsf(x[i]) : xmax;
                }
                assert_int_equal(top, xmax > 0.0f ? (bits == 8 ? 127 : 32767) : 0);
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
 * largest (15, 255) against codes all +32767 or all -32767, where the
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

/* ---- attention over the KV cache (f32 and f16 caches) */

static void test_kv_ops(void **state)
{
    static const int ns[] = {1, 7, 8, 9, 63, 64, 128, 131};
    static const float special[] = {0.0f, -0.0f, 65504.0f, 65520.0f, 1e-8f, -3e-5f, 6.1e-5f, 1.0f};

    (void)state;
    for (int kt = 0; kt < 2; kt++) {
        enum eng_dtype dt = kt ? ENG_DT_F16 : ENG_DT_F32;
        const struct eng_kv_ops *ref = eng_kv_ops_isa(dt, ENG_ISA_SCALAR);
        assert_non_null(ref);
        for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
            const struct eng_kv_ops *ops = eng_kv_ops_isa(dt, isas[k]);
            if (!ops)
                continue;
            for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
                int n = ns[ni];
                float a[131], src[131], y1[131], y2[131];
                uint8_t b1[131 * 4], b2[131 * 4];
                double t = 0;
                float d1, d2;
                for (int i = 0; i < n; i++) {
                    a[i] = rndf();
                    src[i] = i < 8 && n > 8 ? special[i] : rndf() * 3;
                    y1[i] = y2[i] = rndf();
                }
                /* store: the same bits (round to nearest even) */
                ref->store(b1, src, n);
                ops->store(b2, src, n);
                assert_memory_equal(b1, b2, (size_t)n * (kt ? 2 : 4));
                /* dot, axpy: float math in any order */
                for (int i = 0; i < n; i++)
                    t += fabs((double)a[i] *
                              (kt ? eng_f16_to_f32(((uint16_t *)(void *)b1)[i]) : src[i]));
                d1 = ref->dot(a, b1, n);
                d2 = ops->dot(a, b1, n);
                if (fabs((double)d1 - d2) > 2.0 * (n + 2) * U * t)
                    fail_msg("kv dot %s n=%d: %g vs %g", kt ? "f16" : "f32", n, (double)d1,
                             (double)d2);
                ref->axpy(y1, 0.75f, b1, n);
                ops->axpy(y2, 0.75f, b1, n);
                for (int i = 0; i < n; i++)
                    if (fabs((double)y1[i] - y2[i]) > 4 * U * (fabs((double)y1[i]) + 1))
                        fail_msg("kv axpy n=%d [%d]: %g vs %g", n, i, (double)y1[i], (double)y2[i]);
            }
        }
    }
}

/* ---- the prompt product (AVX2 GEMM on converted weight rows) */

static void test_gemm(void **state)
{
    static const int ms[] = {2, 17, 40};
    static const int64_t ks[] = {64, 320, 576};
    static const int64_t rows_list[] = {1, 7, 100};
    static const enum eng_dtype dts[] = {ENG_DT_F32, ENG_DT_BF16, ENG_DT_Q4, ENG_DT_Q8};

    (void)state;
#if !defined(__x86_64__)
    print_message("# not x86-64: the prompt path is OpenBLAS\n");
    return;
#else
    if (eng_isa_best() != ENG_ISA_AVX2) {
        print_message("# no AVX2: the prompt path is OpenBLAS\n");
        return;
    }
    for (size_t di = 0; di < sizeof dts / sizeof *dts; di++) {
        for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
            for (size_t ri = 0; ri < sizeof rows_list / sizeof *rows_list; ri++) {
                for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi++) {
                    enum eng_dtype dt = dts[di];
                    int64_t k = ks[ki], rows = rows_list[ri];
                    int m = ms[mi];
                    struct qmat q = {0};
                    uint8_t *fw = NULL;
                    struct eng_mat mat;
                    const struct eng_mat_ops *ops = eng_mat_ops(dt);
                    float *x = malloc((size_t)(m * k) * 4), *wf = malloc((size_t)(rows * k) * 4);
                    float *xp = malloc(eng_gemm_xp_floats(m, k) * 4);
                    float *y = malloc((size_t)(m * (rows + 3)) * 4);
                    float *wbuf = malloc((size_t)(64 * 1024 > 6 * k ? 64 * 1024 : 6 * k) * 4);
                    assert_true(x && wf && xp && y && wbuf);
                    if (dt == ENG_DT_Q4 || dt == ENG_DT_Q8) {
                        qmat_make(&q, dt, 64, ENG_DT_BF16, rows, k);
                        mat = q.m;
                    } else {
                        mat = fmat_make(dt, rows, k, &fw);
                    }
                    for (int64_t i = 0; i < m * k; i++)
                        x[i] = rndf();
                    {
                        void *rbuf;
                        struct eng_mat mk = mat_for(ops, &mat, &rbuf);
                        eng_mat_ops_isa(dt, ENG_ISA_SCALAR)->rows_to_f32(&mat, 0, rows, wf);
                        eng_gemm_pack_x(x, (size_t)k, m, k, xp);
                        { /* packed in 3 parts (threads' shares): the same floats */
                            size_t nxp = eng_gemm_xp_floats(m, k);
                            float *xp3 = malloc(nxp * 4);
                            assert_non_null(xp3);
                            memset(xp3, 0xA5, nxp * 4);
                            for (int part = 0; part < 3; part++)
                                eng_gemm_pack_x_part(x, (size_t)k, m, k, xp3, part, 3);
                            assert_memory_equal(xp, xp3, nxp * 4);
                            free(xp3);
                        }
                        /* rows [1, rows) into a y with a wider stride */
                        eng_gemm_avx2(&mk, ops, rows > 1 ? 1 : 0, rows, xp, m, y, (size_t)rows + 3,
                                      wbuf);
                        free(rbuf);
                    }
                    for (int t = 0; t < m; t++) {
                        for (int64_t r = rows > 1 ? 1 : 0; r < rows; r++) {
                            double e = 0, tt = 0;
                            for (int64_t c = 0; c < k; c++) {
                                e += (double)wf[r * k + c] * x[t * k + c];
                                tt += fabs((double)wf[r * k + c] * x[t * k + c]);
                            }
                            if (fabs(y[(size_t)t * (size_t)(rows + 3) + (size_t)r] - e) >
                                (double)(k + 2) * U * tt)
                                fail_msg("gemm %s m %d k %lld rows %lld: [%d][%lld] %g vs %g",
                                         eng_dtype_info(dt)->name, m, (long long)k, (long long)rows,
                                         t, (long long)r,
                                         (double)y[(size_t)t * (size_t)(rows + 3) + (size_t)r], e);
                        }
                    }
                    if (dt == ENG_DT_Q4 || dt == ENG_DT_Q8)
                        qmat_free(&q);
                    free(fw);
                    free(x);
                    free(wf);
                    free(xp);
                    free(y);
                    free(wbuf);
                }
            }
        }
    }
#endif
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
                float *yr = malloc((size_t)rows * 4);
                float *wbuf = malloc((size_t)(64 * 1024 > 6 * k ? 64 * 1024 : 6 * k) * 4);
                struct eng_mat mk;
                assert_true(qbuf && x && y && yr && wbuf);
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
                eng_gemm_q_avx2(&mk, r0, rows, &xq, y, ldy, wbuf);
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
    if (eng_isa_best() != ENG_ISA_AVX2) {
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

/* ---- decode through eng_linear_run: two outputs share an input but not a
 * layout (one flat, one per row: its rows are not contiguous), so each
 * needs its own preparation of that input; with 16- and 8-bit codes (the
 * scratch's act_bits reaches the preparation) */

static void test_linear_layouts(void **state)
{
    enum { ROWS = 5, GS = 64, NG = 3, COLS = GS * NG, PAD = 32 };
    const struct eng_mat_ops *ops = eng_mat_ops(ENG_DT_Q4);
    struct qmat qa, qb;
    struct eng_mat spaced;
    struct eng_pool *pool;
    struct eng_gemm_scratch scratch;
    struct sh_err err = {0};
    uint8_t *rows_b = malloc((size_t)ROWS * (COLS / 2 + PAD));
    float x[COLS], y[2][ROWS], want[2][ROWS];
    void *ra, *rb, *xb;
    struct eng_xq *xq;

    (void)state;
    assert_non_null(rows_b);
    qmat_make(&qa, ENG_DT_Q4, GS, ENG_DT_BF16, ROWS, COLS);
    qmat_make(&qb, ENG_DT_Q4, GS, ENG_DT_BF16, ROWS, COLS);
    spaced = qb.m;
    spaced.row_stride = COLS / 2 + PAD;
    spaced.data = rows_b;
    for (int r = 0; r < ROWS; r++)
        memcpy(rows_b + (size_t)r * spaced.row_stride, qb.packed + (size_t)r * (COLS / 2),
               COLS / 2);
    fill_x(x, COLS);
    for (int bits = 16; bits >= 8; bits -= 8) {
        struct eng_mat ma = mat_for(ops, &qa.m, &ra), mb = mat_for(ops, &spaced, &rb);
        /* the per-row one first: its preparation lacks the flat one's period */
        struct eng_linear out[2] = {{&mb, y[1], 1, NULL}, {&ma, y[0], 1, NULL}};
        if (eng_isa_best() == ENG_ISA_AVX2) {
            assert_true(ma.flat);
            assert_false(mb.flat);
        }
        xb = xq_new(COLS, GS, ENG_DT_Q4, bits, &xq);
        ops->prep(&ma, x, xq);
        ops->dot_rows(&ma, xq, want[0], 0, ROWS);
        ops->prep(&mb, x, xq);
        ops->dot_rows(&mb, xq, want[1], 0, ROWS);
        assert_int_equal(eng_pool_new(1, &pool, &err), 0);
        assert_int_equal(eng_gemm_scratch_init(&scratch, 1, COLS, 1, 2), 0);
        assert_int_equal(scratch.act_bits, 16);
        scratch.act_bits = bits;
        eng_linear_run(pool, &scratch, out, 2, x, COLS, 1);
        assert_memory_equal(y, want, sizeof y);
        eng_gemm_scratch_free(&scratch);
        eng_pool_free(pool);
        free(ra);
        free(rb);
        free(xb);
    }
    free(rows_b);
    qmat_free(&qa);
    qmat_free(&qb);
}

/* ---- eng_linear_run on 2 and 3 threads: the rows go out in chunks that
 * threads take from each other's ends (matmul.c), so which thread computes
 * a row varies from run to run; every row must still equal what one thread
 * computes, bit for bit: for decode (n == 1) one kernel call over the whole
 * matrix, for a prompt (n > 1) the call on a pool of 1. Three outputs with
 * row counts that are not multiples of a chunk or of 16, Q4 and Q8 (each
 * its own preparation), a layout of whole 8-group batches (COLS_ROW) and
 * the flat one (COLS_FLAT); and bf16. */

static void linear_on(int threads,
                      const struct eng_linear *out,
                      int n_out,
                      const float *x,
                      int64_t cols,
                      int n,
                      const int64_t *rows)
{
    struct eng_pool *pool;
    struct eng_gemm_scratch scratch;
    struct sh_err err = {0};

    assert_int_equal(eng_pool_new(threads, &pool, &err), 0);
    assert_int_equal(eng_gemm_scratch_init(&scratch, threads, cols, n, 0), 0);
    for (int j = 0; j < n_out; j++) /* NaN: what is not written shows */
        memset(out[j].y, 0xff, (size_t)n * (size_t)rows[j] * sizeof(float));
    eng_linear_run(pool, &scratch, out, n_out, x, (size_t)cols, n);
    eng_gemm_scratch_free(&scratch);
    eng_pool_free(pool);
}

static void check_linear_threads(int64_t cols, int n, bool bf16)
{
    enum { NOUT = 3, GS = 64, RUNS = 4 };
    static const int64_t rows[NOUT] = {1003, 37, 2051};
    static const enum eng_dtype q_dts[NOUT] = {ENG_DT_Q8, ENG_DT_Q4, ENG_DT_Q8};
    static const enum eng_dtype bf16_dts[NOUT] = {ENG_DT_BF16, ENG_DT_BF16, ENG_DT_BF16};
    const enum eng_dtype *dts = bf16 ? bf16_dts : q_dts;
    struct qmat q[NOUT] = {0};
    struct eng_mat m[NOUT];
    void *packed[NOUT];
    uint8_t *fw[NOUT] = {0};
    float *x = malloc((size_t)n * (size_t)cols * sizeof *x), *y[NOUT], *want[NOUT];
    struct eng_linear out[NOUT], ref[NOUT];

    assert_non_null(x);
    fill_x(x, n * cols);
    for (int j = 0; j < NOUT; j++) {
        size_t bytes = (size_t)n * (size_t)rows[j] * sizeof(float);
        if (bf16)
            q[j].m = fmat_make(dts[j], rows[j], cols, &fw[j]);
        else
            qmat_make(&q[j], dts[j], GS, ENG_DT_BF16, rows[j], cols);
        m[j] = mat_for(eng_mat_ops(dts[j]), &q[j].m, &packed[j]);
        y[j] = malloc(bytes);
        want[j] = malloc(bytes);
        assert_true(y[j] && want[j]);
        out[j] = (struct eng_linear){&m[j], y[j], (size_t)rows[j], NULL};
        ref[j] = (struct eng_linear){&m[j], want[j], (size_t)rows[j], NULL};
    }
    if (n == 1) {
        for (int j = 0; j < NOUT; j++) {
            void *xb;
            const struct eng_mat_ops *ops = eng_mat_ops(dts[j]);
            ops->dot_rows(&m[j], x_for(ops, &m[j], x, 16, &xb), want[j], 0, rows[j]);
            free(xb);
        }
    } else {
        linear_on(1, ref, NOUT, x, cols, n, rows);
    }
    for (int threads = 2; threads <= 3; threads++)
        for (int run = 0; run < RUNS; run++) {
            linear_on(threads, out, NOUT, x, cols, n, rows);
            for (int j = 0; j < NOUT; j++)
                if (memcmp(y[j], want[j], (size_t)n * (size_t)rows[j] * sizeof(float)) != 0)
                    fail_msg("cols %lld, %d tokens, %d threads, run %d: output %d differs from "
                             "one thread's",
                             (long long)cols, n, threads, run, j);
        }
    for (int j = 0; j < NOUT; j++) {
        free(y[j]);
        free(want[j]);
        free(packed[j]);
        if (bf16)
            free(fw[j]);
        else
            qmat_free(&q[j]);
    }
    free(x);
}

static void test_linear_threads(void **state)
{
    enum { COLS_ROW = 512, COLS_FLAT = 192, PROMPT = 7 };

    (void)state;
    check_linear_threads(COLS_ROW, 1, false);
    check_linear_threads(COLS_FLAT, 1, false);
    check_linear_threads(COLS_ROW, PROMPT, false);
    check_linear_threads(COLS_FLAT, PROMPT, false);
    /* bf16: the f32 product on converted rows */
    check_linear_threads(COLS_ROW, 1, true);
    check_linear_threads(COLS_ROW, PROMPT, true);
}

/* ---- SwiGLU: the vector e^x against libm's */

static void test_swiglu(void **state)
{
    static const float special[] = {0.0f,  -0.0f,  1.0f,   -1.0f,   20.0f, -20.0f, 88.0f, -88.0f,
                                    89.0f, -89.0f, 100.0f, -100.0f, 1e-8f, -1e-8f, 5.5f,  -5.5f};
    enum { N = 4099 };
    float *g = malloc(N * sizeof *g), *u = malloc(N * sizeof *u);
    float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);

    (void)state;
    assert_true(g && u && a && b);
    for (int i = 0; i < N; i++) {
        g[i] = i < 16 ? special[i] : rndf() * (i % 3 ? 8.0f : 40.0f);
        u[i] = rndf() + 0.5f;
    }
    for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
        memcpy(a, g, N * sizeof *a);
        memcpy(b, g, N * sizeof *b);
        eng_swiglu_isa(ENG_ISA_SCALAR, a, u, N);
        eng_swiglu_isa(isas[k], b, u, N);
        for (int i = 0; i < N; i++)
            if (fabs((double)a[i] - b[i]) > 8 * U * fabs((double)a[i]) + 1e-30)
                fail_msg("swiglu %s g=%g: %g vs %g", eng_isa_name(isas[k]), (double)g[i],
                         (double)b[i], (double)a[i]);
        /* NaN stays NaN */
        b[0] = NAN;
        eng_swiglu_isa(isas[k], b, u, 8);
        assert_true(isnan(b[0]));
    }
    free(g);
    free(u);
    free(a);
    free(b);
}

/* ---- conversions and dispatch */

static void test_f16_bf16_round_trip(void **state)
{
    (void)state;
    /* every half and bf16 bit pattern survives to f32 and back */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = eng_f16_to_f32((uint16_t)h);
        if (isnan(f))
            assert_true((eng_f32_to_f16(f) & 0x7c00u) == 0x7c00u && (eng_f32_to_f16(f) & 0x3ffu));
        else
            assert_int_equal(eng_f32_to_f16(f), h);
        f = eng_bf16_to_f32((uint16_t)h);
        if (!isnan(f))
            assert_int_equal(eng_f32_to_bf16(f), h);
    }
    /* round to nearest even, overflow to inf */
    assert_int_equal(eng_f32_to_f16(1.0f + 0x1.0p-11f), 0x3c00); /* tie: even */
    assert_int_equal(eng_f32_to_f16(1.0f + 0x1.8p-11f), 0x3c01); /* above the tie */
    assert_int_equal(eng_f32_to_f16(65520.0f), 0x7c00);          /* rounds to inf */
    assert_int_equal(eng_f32_to_f16(0x1.0p-25f), 0);             /* tie to even 0 */
    assert_int_equal(eng_f32_to_f16(0x1.8p-25f), 1);             /* smallest subnormal */
    assert_int_equal(eng_f32_to_bf16(1.0f + 0x1.0p-8f), 0x3f80); /* tie: even */
    assert_int_equal(eng_f32_to_bf16(1.0f + 0x1.8p-8f), 0x3f81);
}

static void test_dispatch(void **state)
{
    (void)state;
    for (int dt = 0; dt < ENG_DT_COUNT; dt++) {
        bool computes = dt == ENG_DT_F32 || dt == ENG_DT_F16 || dt == ENG_DT_BF16 ||
                        dt == ENG_DT_Q4 || dt == ENG_DT_Q8;
        assert_int_equal(eng_mat_ops((enum eng_dtype)dt) != NULL, computes);
        assert_int_equal(eng_mat_ops_isa((enum eng_dtype)dt, ENG_ISA_SCALAR) != NULL, computes);
    }
    assert_null(eng_mat_ops(ENG_DT_COUNT));
    assert_non_null(eng_isa_name(eng_isa_best()));
    if (eng_isa_best() == ENG_ISA_AVX2)
        assert_ptr_equal(eng_mat_ops(ENG_DT_Q4), eng_mat_ops_isa(ENG_DT_Q4, ENG_ISA_AVX2));
    else
        print_message("# this CPU runs the scalar kernels only: SIMD comparisons skipped\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_f16_bf16_round_trip),
        cmocka_unit_test(test_f32),
        cmocka_unit_test(test_f16),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_q4),
        cmocka_unit_test(test_quant_extremes),
        cmocka_unit_test(test_q8),
        cmocka_unit_test(test_quant_nonfinite),
        cmocka_unit_test(test_kv_ops),
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_gemm_q),
        cmocka_unit_test(test_linear_layouts),
        cmocka_unit_test(test_linear_threads),
        cmocka_unit_test(test_swiglu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
