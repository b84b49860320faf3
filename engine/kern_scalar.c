/* engine/kern_scalar.c: the portable weight kernels, one entry per dtype
 * (F32, F16, BF16, and MLX affine Q4/Q8): decode dot products, conversion
 * of row ranges to f32, and the activation preparation of Q4/Q8.
 *
 * They run on every CPU and are the oracle the tests hold the ISA-specific
 * kernels (kern_avx2.c) to. Plain C that gcc still vectorizes: the float dot
 * products keep 16 independent accumulators (a fixed-size inner loop the
 * SLP vectorizer turns into vector adds, where a single accumulator would be
 * a serial chain that must not be reordered).
 *
 * Q4/Q8 (w = code * scale + bias per group): over one group,
 *     sum_i w_i x_i = scale * sum_i code_i x_i + bias * sum_i x_i,
 * the second sum prepared once per token (eng_xq.s). The first is an
 * integer sum: with x_i ~= d * X_i (16-bit codes per group, X = rint(x/d))
 * it is an exact sum of code * X times d, the form the AVX2 kernels compute
 * with 16-bit multiplies (f32 conversions of the codes cost twice the
 * instructions, and the Q8 kernel was compute-bound at about 70% of the
 * read bandwidth). Against f32 math the only loss is rounding x to the
 * codes, |x - d X| <= d/2 = 2^-16 of the group's largest |x|: 256 times
 * finer than the rounding of 8-bit weights themselves. Prompts on AVX2
 * round each token the same way (gemm_q_avx2.c); on other CPUs they
 * multiply f32 tiles (matmul.c). Logits stay within 1.4e-3 of the
 * fixtures' float32 references (tests/engine/test_model.c, Q_TOL).
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "engine/kern_common.h"

#define BLOCK 16

/* ---- float dtypes */

#define DEFINE_DOT(NAME, TYPE, LOAD)                                                               \
    static float NAME(const TYPE *w, const float *x, int64_t n)                                    \
    {                                                                                              \
        float acc[BLOCK] = {0};                                                                    \
        float sum = 0.0f;                                                                          \
        int64_t i = 0;                                                                             \
        for (; i + BLOCK <= n; i += BLOCK)                                                         \
            for (int j = 0; j < BLOCK; j++)                                                        \
                acc[j] += LOAD(w[i + j]) * x[i + j];                                               \
        for (; i < n; i++)                                                                         \
            acc[0] += LOAD(w[i]) * x[i];                                                           \
        for (int j = 0; j < BLOCK; j++)                                                            \
            sum += acc[j];                                                                         \
        return sum;                                                                                \
    }

#define LOAD_F32(v) (v)
DEFINE_DOT(dot_f32, float, LOAD_F32)
DEFINE_DOT(dot_f16, uint16_t, eng_f16_to_f32)
DEFINE_DOT(dot_bf16, uint16_t, eng_bf16_to_f32)

#define DEFINE_CONVERT(NAME, TYPE, LOAD)                                                           \
    static void NAME(const TYPE *src, float *dst, int64_t n)                                       \
    {                                                                                              \
        for (int64_t i = 0; i < n; i++)                                                            \
            dst[i] = LOAD(src[i]);                                                                 \
    }

DEFINE_CONVERT(convert_f16, uint16_t, eng_f16_to_f32)
DEFINE_CONVERT(convert_bf16, uint16_t, eng_bf16_to_f32)

static void convert_f32(const float *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof *dst);
}

static inline const void *row_ptr(const struct eng_mat *w, int64_t r)
{
    return (const uint8_t *)w->data + (size_t)r * w->row_stride;
}

#define DEFINE_MAT_OPS(SUFFIX, TYPE)                                                               \
    static void dot_rows_##SUFFIX(const struct eng_mat *w, const void *xp, float *y, int64_t r0,   \
                                  int64_t r1)                                                      \
    {                                                                                              \
        for (int64_t r = r0; r < r1; r++)                                                          \
            y[r] = dot_##SUFFIX((const TYPE *)row_ptr(w, r), xp, w->cols);                         \
    }                                                                                              \
    static void rows_to_f32_##SUFFIX(const struct eng_mat *w, int64_t r0, int64_t r1, float *dst)  \
    {                                                                                              \
        for (int64_t r = r0; r < r1; r++)                                                          \
            convert_##SUFFIX((const TYPE *)row_ptr(w, r),                                          \
                             dst + (size_t)(r - r0) * (size_t)w->cols, w->cols);                   \
    }

DEFINE_MAT_OPS(f32, float)
DEFINE_MAT_OPS(f16, uint16_t)
DEFINE_MAT_OPS(bf16, uint16_t)

/* ---- affine-quantized Q4/Q8 */

/* Q4 and Q8, per group: d = max|x| / M, X = rint(x / d) (M = ENG_XQ_MAX,
 * 32639, or 127 for 8-bit codes; ties to
 * even, as the SIMD conversion rounds), s = d * sum(X). A group holding inf
 * or NaN gets d = s = NaN and X = 0, so that the dot products come out NaN,
 * as the float path's would. */
static void prep_q(const struct eng_mat *w, const float *x, struct eng_xq *xq)
{
    int64_t gs = w->group_size, ng = w->cols / gs;
    int32_t mx = eng_xq_max(xq->bits);

    for (int64_t g = 0; g < ng; g++) {
        const float *xg = x + g * gs;
        float amax = 0.0f, inv;
        bool bad = false;
        int32_t sum = 0;
        for (int64_t k = 0; k < gs; k++) {
            float a = fabsf(xg[k]);
            bad |= !(a < HUGE_VALF);
            amax = a > amax ? a : amax;
        }
        inv = !bad && amax > 0.0f ? (float)mx / amax : 0.0f;
        for (int64_t k = 0; k < gs; k++) {
            int32_t v = 0;
            if (inv > 0.0f) {
                long r = lrintf(xg[k] * inv);
                v = (int32_t)(r > mx ? mx : r < -mx ? -mx : r);
            }
            xq->t[g * gs + k] = v;
            sum += v;
        }
        xq->d[g] = bad ? NAN : amax / (float)mx;
        xq->s[g] = xq->d[g] * (float)sum;
    }
}

/* y = sum over groups of scale * (sum code * X) * d + bias * s. */
static void dot_rows_q(const struct eng_mat *w, const void *xp, float *y, int64_t r0, int64_t r1)
{
    const struct eng_xq *xq = xp;
    int64_t gs = w->group_size, ng = w->cols / gs;

    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = row_ptr(w, r);
        const uint8_t *sc = (const uint8_t *)w->scales + (size_t)r * w->sb_stride;
        const uint8_t *bi = (const uint8_t *)w->biases + (size_t)r * w->sb_stride;
        float acc = 0.0f;
        for (int64_t g = 0; g < ng; g++) {
            int32_t isum = 0; /* <= 128 * 255 * ENG_XQ_MAX < 2^31 */
            for (int64_t i = g * gs; i < (g + 1) * gs; i++)
                isum += (int32_t)eng_q_code(w->dtype, row, i) * xq->t[i];
            acc += (float)isum * (eng_sb_load(w->sb_dtype, sc, g) * xq->d[g]);
            acc += eng_sb_load(w->sb_dtype, bi, g) * xq->s[g];
        }
        y[r] = acc;
    }
}

/* w = code * scale + bias, multiplied then added (never fused), as MLX's
 * dequantize and our SIMD conversion do: bit-identical results. */
static void rows_to_f32_q(const struct eng_mat *w, int64_t r0, int64_t r1, float *dst)
{
    int64_t gs = w->group_size;

    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = row_ptr(w, r);
        const uint8_t *sc = (const uint8_t *)w->scales + (size_t)r * w->sb_stride;
        const uint8_t *bi = (const uint8_t *)w->biases + (size_t)r * w->sb_stride;
        float *out = dst + (size_t)(r - r0) * (size_t)w->cols;
        for (int64_t g = 0; g < w->cols / gs; g++) {
            float s = eng_sb_load(w->sb_dtype, sc, g), b = eng_sb_load(w->sb_dtype, bi, g);
            for (int64_t i = g * gs; i < (g + 1) * gs; i++)
                out[i] = (float)eng_q_code(w->dtype, row, i) * s + b;
        }
    }
}

const struct eng_mat_ops eng_kern_scalar[ENG_DT_COUNT] = {
    [ENG_DT_F32] = {.dot_rows = dot_rows_f32, .rows_to_f32 = rows_to_f32_f32},
    [ENG_DT_F16] = {.dot_rows = dot_rows_f16, .rows_to_f32 = rows_to_f32_f16},
    [ENG_DT_BF16] = {.dot_rows = dot_rows_bf16, .rows_to_f32 = rows_to_f32_bf16},
    [ENG_DT_Q4] = {.prep = prep_q, .dot_rows = dot_rows_q, .rows_to_f32 = rows_to_f32_q},
    [ENG_DT_Q8] = {.prep = prep_q, .dot_rows = dot_rows_q, .rows_to_f32 = rows_to_f32_q},
};

/* ---- attention over the KV cache */

static float kv_dot_f32(const float *a, const void *b, int n)
{
    return dot_f32(b, a, n);
}

static float kv_dot_f16(const float *a, const void *b, int n)
{
    return dot_f16(b, a, n);
}

static void kv_axpy_f32(float *y, float s, const void *x, int n)
{
    const float *v = x;
    for (int i = 0; i < n; i++)
        y[i] += s * v[i];
}

static void kv_axpy_f16(float *y, float s, const void *x, int n)
{
    const uint16_t *v = x;
    for (int i = 0; i < n; i++)
        y[i] += s * eng_f16_to_f32(v[i]);
}

static void kv_store_f32(void *dst, const float *src, int n)
{
    memcpy(dst, src, (size_t)n * sizeof *src);
}

static void kv_store_f16(void *dst, const float *src, int n)
{
    uint16_t *d = dst;
    for (int i = 0; i < n; i++)
        d[i] = eng_f32_to_f16(src[i]);
}

const struct eng_kv_ops eng_kv_scalar[2] = {
    {.dot = kv_dot_f32, .axpy = kv_axpy_f32, .store = kv_store_f32},
    {.dot = kv_dot_f16, .axpy = kv_axpy_f16, .store = kv_store_f16},
};
