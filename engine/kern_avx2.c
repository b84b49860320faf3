/* engine/kern_avx2.c: the weight kernels for x86-64 with AVX2, FMA and F16C
 * (compiled with those flags for this file only; kernels.c picks this table
 * at run time when the CPU has them): the float dtypes, attention over the
 * KV cache, SwiGLU, and the table (Q4/Q8 live in kern_avx2_q.c). Same
 * contract and results as kern_scalar.c: conversions bit-identical, dot
 * products equal up to the order of float additions.
 *
 * Decode reads each weight once per token, as two streams per range of
 * rows (kern_avx2.h), and the arithmetic per byte is kept small: bf16
 * pairs become two f32 vectors with one shift and one mask (x reordered to
 * match once per token), f16 converts with F16C.
 */
#include "engine/kern_avx2.h"

/* Decode's weight rows are prefetched this many bytes ahead. This
 * machine's hardware prefetcher (AMD, AVX-512, one core reading 40 GB/s)
 * fell behind the two streams where rows are long: bench_kernels bf16 on
 * 1 thread, kernel / read bandwidth, 2 alternated runs, none -> 512 / 2048
 * / 4096 / 8192 bytes ahead: 8192 columns 46-57% -> 54% / 82-83% / 87-98%
 * / 83-90%; 4864 columns 70-71% -> 92-101% (4096); 2048 columns 81-91% ->
 * 95-100% (4096); 896 columns 90-96% -> 75-85% / 87-88% / 97% (4096). */
#define PF_DIST 4096

/* ---- float dtypes: 32 elements (4 x 8 lanes) per step, FMA */

/* The dot products y[0 .. R) of R (1 or 2) rows w[r] of n elements with x,
 * walked together 32 elements at a time (two streams: kern_avx2.h),
 * prefetching PF_DIST ahead when pf (weights, not the KV cache's rows);
 * STEP16(p, x, a, b) adds the 16 elements at p times x into a and b. Each
 * row sums in the same order whatever R, so a row's result does not
 * depend on its partner. */
#define DEFINE_DOT(NAME, TYPE, ESIZE, STEP16, TAIL)                                                \
    INLINE void NAME(const uint8_t *const *w, const float *x, int64_t n, int R, float *y, bool pf) \
    {                                                                                              \
        __m256 a[2][4];                                                                            \
        int64_t i = 0;                                                                             \
        for (int r = 0; r < R; r++)                                                                \
            a[r][0] = a[r][1] = a[r][2] = a[r][3] = _mm256_setzero_ps();                           \
        for (; i + 32 <= n; i += 32)                                                               \
            for (int r = 0; r < R; r++) {                                                          \
                if (pf)                                                                            \
                    _mm_prefetch((const char *)w[r] + i * ESIZE + PF_DIST, _MM_HINT_T0);           \
                STEP16(w[r] + i * ESIZE, x + i, a[r][0], a[r][1]);                                 \
                STEP16(w[r] + (i + 16) * ESIZE, x + i + 16, a[r][2], a[r][3]);                     \
            }                                                                                      \
        for (; i + 16 <= n; i += 16)                                                               \
            for (int r = 0; r < R; r++)                                                            \
                STEP16(w[r] + i * ESIZE, x + i, a[r][0], a[r][1]);                                 \
        for (int r = 0; r < R; r++) {                                                              \
            float tail = 0.0f;                                                                     \
            for (int64_t j = i; j < n; j++) {                                                      \
                TYPE e;                                                                            \
                memcpy(&e, w[r] + j * ESIZE, ESIZE);                                               \
                tail += TAIL(e) * x[j];                                                            \
            }                                                                                      \
            y[r] = hsum_ps(_mm256_add_ps(_mm256_add_ps(a[r][0], a[r][1]),                          \
                                         _mm256_add_ps(a[r][2], a[r][3]))) +                       \
                   tail;                                                                           \
        }                                                                                          \
    }

/* f32 and f16: 16 elements in order, 8 into each accumulator. */
#define STEP16_F32(p, x, a, b)                                                                     \
    do {                                                                                           \
        a = _mm256_fmadd_ps(LOADUF(p), LOADUF(x), a);                                              \
        b = _mm256_fmadd_ps(LOADUF((p) + 32), LOADUF((x) + 8), b);                                 \
    } while (0)
#define STEP16_F16(p, x, a, b)                                                                     \
    do {                                                                                           \
        a = _mm256_fmadd_ps(load8_f16(p), LOADUF(x), a);                                           \
        b = _mm256_fmadd_ps(load8_f16((p) + 16), LOADUF((x) + 8), b);                              \
    } while (0)
/* bf16 is the upper half of an f32: of 32 bytes read as eight 32-bit lanes,
 * a shift left by 16 gives elements 0, 2, .., 14 as f32, a mask of the
 * upper halves elements 1, 3, .., 15 (2 instructions per 16 elements, no
 * shuffles); x is reordered to match (prep_bf16). */
#define STEP16_BF16(p, x, a, b)                                                                    \
    do {                                                                                           \
        __m256i v_ = LOADU(p);                                                                     \
        a = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v_, 16)), LOADUF(x), a);         \
        b = _mm256_fmadd_ps(                                                                       \
            _mm256_castsi256_ps(_mm256_and_si256(v_, _mm256_set1_epi32((int)0xffff0000u))),        \
            LOADUF((x) + 8), b);                                                                   \
    } while (0)

#define TAIL_F32(v) (v)
DEFINE_DOT(dot_f32, float, 4, STEP16_F32, TAIL_F32)
DEFINE_DOT(dot_f16, uint16_t, 2, STEP16_F16, eng_f16_to_f32)
DEFINE_DOT(dot_bf16, uint16_t, 2, STEP16_BF16, eng_bf16_to_f32)

/* Decode's dot products of rows [r0, r1) with x: row i of each half of the
 * range together (two streams: kern_avx2.h). */
#define DEFINE_DOT_ROWS(SUFFIX, X)                                                                 \
    static void dot_rows_##SUFFIX(const struct eng_mat *w, const void *xp, float *y, int64_t r0,   \
                                  int64_t r1)                                                      \
    {                                                                                              \
        int64_t half = (r1 - r0 + 1) / 2;                                                          \
        for (int64_t i = 0; i < half; i++) {                                                       \
            const uint8_t *rows[2] = {row_ptr(w, r0 + i), NULL};                                   \
            float out[2];                                                                          \
            int R = r0 + half + i < r1 ? 2 : 1;                                                    \
            if (R == 2)                                                                            \
                rows[1] = row_ptr(w, r0 + half + i);                                               \
            dot_##SUFFIX(rows, X, w->cols, R, out, true);                                          \
            y[r0 + i] = out[0];                                                                    \
            if (R == 2)                                                                            \
                y[r0 + half + i] = out[1];                                                         \
        }                                                                                          \
    }

#define DEFINE_CONVERT(NAME, TYPE, LOAD8, ESIZE, TAIL)                                             \
    static void NAME(const uint8_t *src, float *dst, int64_t n)                                    \
    {                                                                                              \
        int64_t i = 0;                                                                             \
        for (; i + 8 <= n; i += 8)                                                                 \
            _mm256_storeu_ps(dst + i, LOAD8(src + i * ESIZE));                                     \
        for (; i < n; i++) {                                                                       \
            TYPE e;                                                                                \
            memcpy(&e, src + i * ESIZE, ESIZE);                                                    \
            dst[i] = TAIL(e);                                                                      \
        }                                                                                          \
    }

DEFINE_CONVERT(convert_f16, uint16_t, load8_f16, 2, eng_f16_to_f32)
DEFINE_CONVERT(convert_bf16, uint16_t, load8_bf16, 2, eng_bf16_to_f32)

static void convert_f32(const uint8_t *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof *dst);
}

#define DEFINE_MAT_OPS(SUFFIX)                                                                     \
    DEFINE_DOT_ROWS(SUFFIX, (const float *)xp)                                                     \
    static void rows_to_f32_##SUFFIX(const struct eng_mat *w, int64_t r0, int64_t r1, float *dst)  \
    {                                                                                              \
        for (int64_t r = r0; r < r1; r++)                                                          \
            convert_##SUFFIX(row_ptr(w, r), dst + (size_t)(r - r0) * (size_t)w->cols, w->cols);    \
    }

DEFINE_MAT_OPS(f32)
DEFINE_MAT_OPS(f16)

/* bf16's x, once per token: per 16-element block, the even elements then
 * the odd ones (STEP16_BF16); a tail shorter than 16 stays in order. */
static void prep_bf16(const struct eng_mat *w, const float *x, struct eng_xq *xq)
{
    float *xf = (float *)(void *)xq->t;
    int64_t i = 0;

    for (; i + 16 <= w->cols; i += 16) {
        __m256 a = LOADUF(x + i), b = LOADUF(x + i + 8);
        /* evens: a0 a2 b0 b2 | a4 a6 b4 b6 -> order the 64-bit pairs */
        __m256 ev = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
        __m256 od = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
        _mm256_storeu_ps(xf + i, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev),
                                                                        _MM_SHUFFLE(3, 1, 2, 0))));
        _mm256_storeu_ps(xf + i + 8, _mm256_castpd_ps(_mm256_permute4x64_pd(
                                         _mm256_castps_pd(od), _MM_SHUFFLE(3, 1, 2, 0))));
    }
    for (; i < w->cols; i++)
        xf[i] = x[i];
    xq->x = xf;
}

DEFINE_DOT_ROWS(bf16, ((const struct eng_xq *)xp)->x)

static void rows_to_f32_bf16(const struct eng_mat *w, int64_t r0, int64_t r1, float *dst)
{
    for (int64_t r = r0; r < r1; r++)
        convert_bf16(row_ptr(w, r), dst + (size_t)(r - r0) * (size_t)w->cols, w->cols);
}

/* The AVX2 table, and the AVX-512 one, which differs in the Q4/Q8 decode
 * products (and their activations' layout) alone. */
#define AVX2_TABLE(QPREP, QDOT)                                                                    \
    {                                                                                              \
        [ENG_DT_F32] = {.dot_rows = dot_rows_f32, .rows_to_f32 = rows_to_f32_f32},                 \
        [ENG_DT_F16] = {.dot_rows = dot_rows_f16, .rows_to_f32 = rows_to_f32_f16},                 \
        [ENG_DT_BF16] = {.prep = prep_bf16,                                                        \
                         .dot_rows = dot_rows_bf16,                                                \
                         .rows_to_f32 = rows_to_f32_bf16},                                         \
        [ENG_DT_Q4] = {.prep = QPREP,                                                              \
                       .dot_rows = QDOT,                                                           \
                       .rows_to_f32 = eng_avx2_rows_to_f32_q,                                      \
                       .repack = eng_avx2_repack_q},                                               \
        [ENG_DT_Q8] = {.prep = QPREP,                                                              \
                       .dot_rows = QDOT,                                                           \
                       .rows_to_f32 = eng_avx2_rows_to_f32_q,                                      \
                       .repack = eng_avx2_repack_q},                                               \
    }

const struct eng_mat_ops eng_kern_avx2[ENG_DT_COUNT] =
    AVX2_TABLE(eng_avx2_prep_q, eng_avx2_dot_rows_q);
#if defined(ENG_HAVE_AVX512)
const struct eng_mat_ops eng_kern_avx512[ENG_DT_COUNT] =
    AVX2_TABLE(eng_avx512_prep_q, eng_avx512_dot_rows_q);
#endif

/* ---- attention over the KV cache */

static float kv_dot_f32(const float *a, const void *b, int n)
{
    const uint8_t *row = b;
    float y;
    dot_f32(&row, a, n, 1, &y, false);
    return y;
}

static float kv_dot_f16(const float *a, const void *b, int n)
{
    const uint8_t *row = b;
    float y;
    dot_f16(&row, a, n, 1, &y, false);
    return y;
}

static void kv_axpy_f32(float *y, float s, const void *x, int n)
{
    const float *v = x;
    __m256 vs = _mm256_set1_ps(s);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(vs, LOADUF(v + i), LOADUF(y + i)));
    for (; i < n; i++)
        y[i] += s * v[i];
}

static void kv_axpy_f16(float *y, float s, const void *x, int n)
{
    const uint16_t *v = x;
    __m256 vs = _mm256_set1_ps(s);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(vs, load8_f16(v + i), LOADUF(y + i)));
    for (; i < n; i++)
        y[i] += s * eng_f16_to_f32(v[i]);
}

static void kv_store_f32(void *dst, const float *src, int n)
{
    memcpy(dst, src, (size_t)n * sizeof *src);
}

/* vcvtps2ph with round-to-nearest-even: the same bits as eng_f32_to_f16. */
static void kv_store_f16(void *dst, const float *src, int n)
{
    uint16_t *d = dst;
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(void *)(d + i),
                         _mm256_cvtps_ph(LOADUF(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        d[i] = eng_f32_to_f16(src[i]);
}

const struct eng_kv_ops eng_kv_avx2[2] = {
    {.dot = kv_dot_f32, .axpy = kv_axpy_f32, .store = kv_store_f32},
    {.dot = kv_dot_f16, .axpy = kv_axpy_f16, .store = kv_store_f16},
};

/* ---- SwiGLU: gate = silu(gate) * up, silu(g) = g / (1 + e^-g) */

/* e^x for x in floats (Cephes expf: x = n ln2 + r, |r| <= ln2 / 2, a
 * degree-5 polynomial for e^r, 2^n through the exponent bits); within 2 ulp
 * of libm's over the range; clamped to +-88.4 (e^88.4 ~ FLT_MAX), NaN
 * stays NaN. */
static inline __m256 exp_ps(__m256 x)
{
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-88.3762626647949f);
    const __m256 log2e = _mm256_set1_ps(1.44269504088896341f), half = _mm256_set1_ps(0.5f);
    const __m256 c1 = _mm256_set1_ps(0.693359375f), c2 = _mm256_set1_ps(-2.12194440e-4f);
    __m256 fx, y, z;
    __m256i n;

    x = _mm256_min_ps(hi, _mm256_max_ps(lo, x)); /* (NaN: the second operand) */
    fx = _mm256_floor_ps(_mm256_fmadd_ps(x, log2e, half));
    x = _mm256_fnmadd_ps(fx, c1, x);
    x = _mm256_fnmadd_ps(fx, c2, x);
    z = _mm256_mul_ps(x, x);
    y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, z, _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(n));
}

void eng_swiglu_avx2(float *gate, const float *up, size_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        __m256 g = LOADUF(gate + i);
        __m256 e = exp_ps(_mm256_sub_ps(zero, g));
        _mm256_storeu_ps(gate + i,
                         _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), LOADUF(up + i)));
    }
    for (; i < n; i++)
        gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

float eng_exp_scaled_avx2(float *x, int n, float scale, float m)
{
    const __m256 vs = _mm256_set1_ps(scale), vm = _mm256_set1_ps(m);
    __m256 acc = _mm256_setzero_ps();
    float sum = 0.0f;
    int i = 0;

    for (; i + 8 <= n; i += 8) {
        __m256 e = exp_ps(_mm256_fmsub_ps(LOADUF(x + i), vs, vm));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    for (; i < n; i++) {
        x[i] = expf(x[i] * scale - m);
        sum += x[i];
    }
    return sum + hsum_ps(acc);
}
