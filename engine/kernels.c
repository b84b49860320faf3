/* engine/kernels.c: the per-dtype weight kernels (dot products and
 * conversion to f32, for F32, F16 and BF16) and the small f32 kernels of the
 * forward pass (RMSNorm, softmax, SwiGLU, RoPE).
 *
 * Portable C written so that gcc vectorizes it: dot products keep 16
 * independent f32 accumulators (a fixed-size inner loop that the SLP
 * vectorizer turns into vector FMAs/adds even at -O2, where a single
 * accumulator would be a serial dependency chain that must not be
 * reordered), conversions are straight-line bit manipulation with no
 * branches. ISA-specific versions (AVX2/F16C) and quantized formats plug in
 * through the ops table at the end.
 */
#include <math.h>
#include <string.h>

#include "engine/internal.h"

#define BLOCK 16

/* ---- element conversions */

static inline float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t f32_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* bf16 is the upper half of an f32. */
static inline float bf16_to_f32(uint16_t h)
{
    return f32_from_bits((uint32_t)h << 16);
}

/* IEEE half -> float without branches (the well-known trick of shifting
 * the exponent/mantissa into place and rescaling by 2^-112, with a separate
 * "magic bias" path for subnormals); exact for every input, inf and NaN
 * included. */
static inline float f16_to_f32(uint16_t h)
{
    uint32_t w = (uint32_t)h << 16;
    uint32_t sign = w & 0x80000000u;
    uint32_t two_w = w + w;
    float normal = f32_from_bits((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    float denormal = f32_from_bits((two_w >> 17) | (126u << 23)) - 0.5f;
    uint32_t is_denormal = -(uint32_t)(two_w < (1u << 27)); /* all ones or zero */
    uint32_t bits = (f32_to_bits(denormal) & is_denormal) | (f32_to_bits(normal) & ~is_denormal);
    return f32_from_bits(sign | bits);
}

/* ---- dot products of one stored row with an f32 vector */

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
DEFINE_DOT(dot_f16, uint16_t, f16_to_f32)
DEFINE_DOT(dot_bf16, uint16_t, bf16_to_f32)

#define DEFINE_CONVERT(NAME, TYPE, LOAD)                                                           \
    static void NAME(const TYPE *src, float *dst, int64_t n)                                       \
    {                                                                                              \
        int64_t i = 0;                                                                             \
        for (; i + BLOCK <= n; i += BLOCK)                                                         \
            for (int j = 0; j < BLOCK; j++)                                                        \
                dst[i + j] = LOAD(src[i + j]);                                                     \
        for (; i < n; i++)                                                                         \
            dst[i] = LOAD(src[i]);                                                                 \
    }

DEFINE_CONVERT(convert_f16, uint16_t, f16_to_f32)
DEFINE_CONVERT(convert_bf16, uint16_t, bf16_to_f32)

static void convert_f32(const float *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof *dst);
}

/* ---- the ops table entries: row ranges of a matrix view */

static inline const void *row_ptr(const struct eng_mat *w, int64_t r)
{
    return (const uint8_t *)w->data + (size_t)r * w->row_stride;
}

#define DEFINE_MAT_OPS(SUFFIX, TYPE)                                                               \
    static void dot_rows_##SUFFIX(const struct eng_mat *w, const float *x, float *y, int64_t r0,   \
                                  int64_t r1)                                                      \
    {                                                                                              \
        for (int64_t r = r0; r < r1; r++)                                                          \
            y[r] = dot_##SUFFIX((const TYPE *)row_ptr(w, r), x, w->cols);                          \
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

static const struct eng_mat_ops mat_ops[ENG_DT_COUNT] = {
    [ENG_DT_F32] = {.dot_rows = dot_rows_f32, .rows_to_f32 = rows_to_f32_f32},
    [ENG_DT_F16] = {.dot_rows = dot_rows_f16, .rows_to_f32 = rows_to_f32_f16},
    [ENG_DT_BF16] = {.dot_rows = dot_rows_bf16, .rows_to_f32 = rows_to_f32_bf16},
};

const struct eng_mat_ops *eng_mat_ops(enum eng_dtype dt)
{
    if ((int)dt < 0 || dt >= ENG_DT_COUNT || !mat_ops[dt].dot_rows)
        return NULL;
    return &mat_ops[dt];
}

void eng_to_f32(enum eng_dtype dt, const void *src, float *dst, size_t n)
{
    struct eng_mat v = {.dtype = dt,
                        .rows = 1,
                        .cols = (int64_t)n,
                        .row_stride = n * eng_dtype_info(dt)->size,
                        .data = src};
    eng_mat_ops(dt)->rows_to_f32(&v, 0, 1, dst);
}

/* ---- f32 kernels of the forward pass */

void eng_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    double ss = 0.0; /* double: n can be thousands of squares */
    float scale;

    for (int i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    scale = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++)
        out[i] = w[i] * (x[i] * scale);
}

void eng_softmax(float *x, int n)
{
    float max = x[0], sum = 0.0f;

    for (int i = 1; i < n; i++)
        if (x[i] > max)
            max = x[i];
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    for (int i = 0; i < n; i++)
        x[i] /= sum;
}

void eng_swiglu(float *gate, const float *up, size_t n)
{
    for (size_t i = 0; i < n; i++)
        gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

float eng_dot(const float *a, const float *b, int n)
{
    return dot_f32(a, b, n);
}

void eng_add(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

void eng_rope(float *v, int n_heads, int head_dim, const float *cos, const float *sin)
{
    int half = head_dim / 2;

    for (int h = 0; h < n_heads; h++) {
        float *a = v + (size_t)h * (size_t)head_dim, *b = a + half;
        for (int i = 0; i < half; i++) {
            float x0 = a[i], x1 = b[i];
            a[i] = x0 * cos[i] - x1 * sin[i];
            b[i] = x1 * cos[i] + x0 * sin[i];
        }
    }
}
