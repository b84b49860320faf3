/* engine/kern_avx2.c: the weight kernels for x86-64 with AVX2, FMA and F16C
 * (compiled with those flags for this file only; kernels.c picks this table
 * at run time when the CPU has them). Same contract and results as
 * kern_scalar.c: conversions and activation preparation bit-identical, dot
 * products equal up to the order of float additions.
 *
 * Decode reads each weight once per token, so these loops are built to keep
 * the memory bus busy rather than to save arithmetic:
 *  - each thread streams one contiguous range of rows; a software prefetch
 *    runs PF_DIST bytes ahead of the loads, past row ends into the next
 *    rows (measured on a 2-core EPYC: the hardware prefetcher alone left
 *    the 4-bit kernel at ~60% of the read bandwidth, 2-4 KiB ahead brings it
 *    to ~85%);
 *  - Q4 multiplies the stored codes, shifted and masked in place, with
 *    21-bit activation codes split in a 13-bit high part (vpmaddwd) and an
 *    8-bit low part (vpmaddubsw): no shuffles on the weight side, the
 *    activation side was permuted once per token to match;
 *  - Q8 widens its bytes to f32 and multiplies x itself (exact);
 *  - the sums of 8 groups are reduced into one vector with a horizontal-add
 *    tree, so scales and biases apply to 8 groups per instruction.
 */
#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "engine/kern_common.h"

/* Bytes the software prefetch runs ahead of the weight loads. */
#define PF_DIST 2048

/* The specializations below must be inlined for the compiler to fold the
 * dtype and group size into straight-line code. */
#define INLINE static inline __attribute__((always_inline))

#define LOADU(p)  _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define LOADUF(p) _mm256_loadu_ps((const float *)(p))

static inline void prefetch(const void *p)
{
    _mm_prefetch((const char *)p, _MM_HINT_T0);
}

static inline float hsum_ps(__m256 v)
{
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}

static inline int32_t hsum_epi32(__m256i v)
{
    __m128i a = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    a = _mm_add_epi32(a, _mm_shuffle_epi32(a, _MM_SHUFFLE(1, 0, 3, 2)));
    a = _mm_add_epi32(a, _mm_shuffle_epi32(a, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(a);
}

static inline __m256 load8_bf16(const void *p)
{
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

static inline __m256 load8_f16(const void *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static inline const uint8_t *row_ptr(const struct eng_mat *w, int64_t r)
{
    return (const uint8_t *)w->data + (size_t)r * w->row_stride;
}

/* ---- float dtypes: 32 elements (4 x 8 lanes) per step, FMA */

#define DEFINE_DOT(NAME, TYPE, LOAD8, ESIZE, TAIL)                                                 \
    static float NAME(const uint8_t *w, const float *x, int64_t n)                                 \
    {                                                                                              \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                \
        float tail = 0.0f;                                                                         \
        int64_t i = 0;                                                                             \
        for (; i + 32 <= n; i += 32) {                                                             \
            const uint8_t *p = w + i * ESIZE;                                                      \
            for (int k = 0; k < 32 * ESIZE; k += 64)                                               \
                prefetch(p + PF_DIST + k);                                                         \
            a0 = _mm256_fmadd_ps(LOAD8(p), LOADUF(x + i), a0);                                     \
            a1 = _mm256_fmadd_ps(LOAD8(p + 8 * ESIZE), LOADUF(x + i + 8), a1);                     \
            a2 = _mm256_fmadd_ps(LOAD8(p + 16 * ESIZE), LOADUF(x + i + 16), a2);                   \
            a3 = _mm256_fmadd_ps(LOAD8(p + 24 * ESIZE), LOADUF(x + i + 24), a3);                   \
        }                                                                                          \
        for (; i + 8 <= n; i += 8)                                                                 \
            a0 = _mm256_fmadd_ps(LOAD8(w + i * ESIZE), LOADUF(x + i), a0);                         \
        for (; i < n; i++) {                                                                       \
            TYPE e;                                                                                \
            memcpy(&e, w + i * ESIZE, ESIZE);                                                      \
            tail += TAIL(e) * x[i];                                                                \
        }                                                                                          \
        return hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3))) + tail;        \
    }

#define TAIL_F32(v) (v)
DEFINE_DOT(dot_f32, float, LOADUF, 4, TAIL_F32)
DEFINE_DOT(dot_f16, uint16_t, load8_f16, 2, eng_f16_to_f32)

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
    static void dot_rows_##SUFFIX(const struct eng_mat *w, const void *xp, float *y, int64_t r0,   \
                                  int64_t r1)                                                      \
    {                                                                                              \
        for (int64_t r = r0; r < r1; r++)                                                          \
            y[r] = dot_##SUFFIX(row_ptr(w, r), xp, w->cols);                                       \
    }                                                                                              \
    static void rows_to_f32_##SUFFIX(const struct eng_mat *w, int64_t r0, int64_t r1, float *dst)  \
    {                                                                                              \
        for (int64_t r = r0; r < r1; r++)                                                          \
            convert_##SUFFIX(row_ptr(w, r), dst + (size_t)(r - r0) * (size_t)w->cols, w->cols);    \
    }

DEFINE_MAT_OPS(f32)
DEFINE_MAT_OPS(f16)

/* bf16 is the upper half of an f32: of 32 bytes read as eight 32-bit lanes,
 * a shift left by 16 gives elements 0, 2, .., 14 as f32, a mask of the
 * upper halves elements 1, 3, .., 15 (2 instructions per 16 elements, no
 * shuffles). x is reordered to match once per token: per 16-element block,
 * the even elements then the odd ones; a tail shorter than 16 stays in
 * order. */
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

static float dot_bf16(const uint8_t *w, const float *x, int64_t n)
{
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    float tail = 0.0f;
    int64_t i = 0;

    for (; i + 32 <= n; i += 32) {
        const uint8_t *p = w + i * 2;
        __m256i v0 = LOADU(p), v1 = LOADU(p + 32);
        prefetch(p + PF_DIST);
        a0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v0, 16)), LOADUF(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v0, hi)), LOADUF(x + i + 8), a1);
        a2 =
            _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v1, 16)), LOADUF(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v1, hi)), LOADUF(x + i + 24), a3);
    }
    for (; i + 16 <= n; i += 16) {
        __m256i v = LOADU(w + i * 2);
        a0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), LOADUF(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v, hi)), LOADUF(x + i + 8), a1);
    }
    for (; i < n; i++) {
        uint16_t e;
        memcpy(&e, w + i * 2, 2);
        tail += eng_bf16_to_f32(e) * x[i];
    }
    return hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3))) + tail;
}

static void dot_rows_bf16(const struct eng_mat *w, const void *xp, float *y, int64_t r0, int64_t r1)
{
    const struct eng_xq *xq = xp;
    for (int64_t r = r0; r < r1; r++)
        y[r] = dot_bf16(row_ptr(w, r), xq->x, w->cols);
}

static void rows_to_f32_bf16(const struct eng_mat *w, int64_t r0, int64_t r1, float *dst)
{
    for (int64_t r = r0; r < r1; r++)
        convert_bf16(row_ptr(w, r), dst + (size_t)(r - r0) * (size_t)w->cols, w->cols);
}

/* ---- affine-quantized Q4/Q8: activation preparation */

/* The four 8-lane vectors v[0..3] hold elements 0..31 of a 4-column
 * matrix M[k][j] = element 4k + j (k = 0..7). Returns o[j] = M[0..7][j]. */
INLINE void transpose_8x4(const __m256i v[4], __m256i o[4])
{
    const __m256i idx = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    __m256i ab0 = _mm256_unpacklo_epi32(v[0], v[1]), ab1 = _mm256_unpackhi_epi32(v[0], v[1]);
    __m256i cd0 = _mm256_unpacklo_epi32(v[2], v[3]), cd1 = _mm256_unpackhi_epi32(v[2], v[3]);

    o[0] = _mm256_permutevar8x32_epi32(_mm256_unpacklo_epi64(ab0, cd0), idx);
    o[1] = _mm256_permutevar8x32_epi32(_mm256_unpackhi_epi64(ab0, cd0), idx);
    o[2] = _mm256_permutevar8x32_epi32(_mm256_unpacklo_epi64(ab1, cd1), idx);
    o[3] = _mm256_permutevar8x32_epi32(_mm256_unpackhi_epi64(ab1, cd1), idx);
}

/* Sixteen i32 lanes (a: lanes 0-7, b: 8-15) -> sixteen i16, in order. */
INLINE __m256i pack_i16x16(__m256i a, __m256i b)
{
    return _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), _MM_SHUFFLE(3, 1, 2, 0));
}

/* Even (o[0]) and odd (o[1]) elements of v[0..1] (elements 0..15). */
INLINE void deinterleave_2(__m256i v0, __m256i v1, __m256i o[2])
{
    __m256 a = _mm256_castsi256_ps(v0), b = _mm256_castsi256_ps(v1);
    __m256 ev = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    __m256 od = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    o[0] = _mm256_permute4x64_epi64(_mm256_castps_si256(ev), _MM_SHUFFLE(3, 1, 2, 0));
    o[1] = _mm256_permute4x64_epi64(_mm256_castps_si256(od), _MM_SHUFFLE(3, 1, 2, 0));
}

/* As sum_lanes8 in kern_scalar.c: the same order, bit for bit. */
INLINE float sum8(const float *x, int64_t n)
{
    __m256 a = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8)
        a = _mm256_add_ps(a, LOADUF(x + i));
    return hsum_ps(a);
}

/* Q8: the group sums (in element order, as the scalar kernel adds them),
 * and x reordered for block_q8's byte shuffles: per 32 elements, vector j
 * (j = 0..3) holds elements 4j .. 4j+3 and 16+4j .. 16+4j+3. */
static void prep_q8(const struct eng_mat *w, const float *x, struct eng_xq *xq)
{
    int64_t gs = w->group_size;
    float *xf = (float *)(void *)xq->t;

    for (int64_t g = 0; g < w->cols / gs; g++)
        xq->s[g] = sum8(x + g * gs, gs);
    for (int64_t b = 0; b < w->cols; b += 32) {
        __m256 v0 = LOADUF(x + b), v1 = LOADUF(x + b + 8);
        __m256 v2 = LOADUF(x + b + 16), v3 = LOADUF(x + b + 24);
        /* (lo halves of v0 with v2: elements 0-3 | 16-19, ...) */
        _mm256_storeu_ps(xf + b, _mm256_permute2f128_ps(v0, v2, 0x20));
        _mm256_storeu_ps(xf + b + 8, _mm256_permute2f128_ps(v0, v2, 0x31));
        _mm256_storeu_ps(xf + b + 16, _mm256_permute2f128_ps(v1, v3, 0x20));
        _mm256_storeu_ps(xf + b + 24, _mm256_permute2f128_ps(v1, v3, 0x31));
    }
    xq->x = xf;
}

/* As prep_q4 in kern_scalar.c (same rounding, same codes, d and s bit for
 * bit): first the codes in element order into xq->t, then split into high
 * and low parts and permuted, one 64-element block at a time. */
static void prep_q4(const struct eng_mat *w, const float *x, struct eng_xq *xq)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 inf = _mm256_set1_ps(HUGE_VALF);
    const __m256i lim = _mm256_set1_epi32(ENG_XQ_MAX), nlim = _mm256_set1_epi32(-ENG_XQ_MAX);
    const __m256i bias = _mm256_set1_epi32(128);
    int64_t gs = w->group_size, ng = w->cols / gs, cols = w->cols;
    int64_t padded = (cols + 63) & ~(int64_t)63;
    int32_t *t = xq->t;

    for (int64_t g = 0; g < ng; g++) {
        const float *xg = x + g * gs;
        __m256 mx = _mm256_setzero_ps(), fin = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
        __m256i sum = _mm256_setzero_si256();
        float amax, inv;
        bool bad;
        for (int64_t i = 0; i < gs; i += 8) {
            __m256 a = _mm256_and_ps(LOADUF(xg + i), absmask);
            fin = _mm256_and_ps(fin, _mm256_cmp_ps(a, inf, _CMP_LT_OQ));
            mx = _mm256_max_ps(mx, a);
        }
        bad = _mm256_movemask_ps(fin) != 0xff;
        {
            __m128 m = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
            m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            m = _mm_max_ss(m, _mm_movehdup_ps(m));
            amax = _mm_cvtss_f32(m);
        }
        inv = !bad && amax > 0.0f ? (float)ENG_XQ_MAX / amax : 0.0f;
        for (int64_t i = 0; i < gs; i += 8) {
            __m256i c = _mm256_setzero_si256();
            if (inv > 0.0f) {
                c = _mm256_cvtps_epi32(_mm256_mul_ps(LOADUF(xg + i), _mm256_set1_ps(inv)));
                c = _mm256_max_epi32(_mm256_min_epi32(c, lim), nlim);
            }
            _mm256_storeu_si256((__m256i *)(void *)(t + g * gs + i), c);
            sum = _mm256_add_epi32(sum, c);
        }
        xq->d[g] = bad ? NAN : amax / (float)ENG_XQ_MAX;
        xq->s[g] = xq->d[g] * (float)hsum_epi32(sum);
    }
    memset(t + cols, 0, (size_t)(padded - cols) * sizeof *t);
    for (int64_t b = 0; b < padded; b += 64) {
        __m256i h[8], l[8], o[4], lo[4], ev[4], od[4];
        for (int k = 0; k < 8; k++) {
            __m256i c = LOADU(t + b + 8 * k);
            /* H = floor((X + 128) / 256), L = X - 256 H */
            h[k] = _mm256_srai_epi32(_mm256_add_epi32(c, bias), 8);
            l[k] = _mm256_sub_epi32(c, _mm256_slli_epi32(h[k], 8));
        }
        transpose_8x4(h, lo);
        transpose_8x4(h + 4, o);
        /* element 4k + j goes to vector 0, 2, 1, 3 for j = 0, 1, 2, 3 */
        for (int j = 0; j < 4; j++)
            _mm256_storeu_si256((__m256i *)(void *)(xq->q + b + 16 * (((j & 1) << 1) | (j >> 1))),
                                pack_i16x16(lo[j], o[j]));
        for (int k = 0; k < 4; k++) {
            __m256i eo[2];
            deinterleave_2(l[2 * k], l[2 * k + 1], eo);
            ev[k] = eo[0];
            od[k] = eo[1];
        }
        _mm256_storeu_si256((__m256i *)(void *)(xq->l + b),
                            _mm256_permute4x64_epi64(_mm256_packs_epi16(pack_i16x16(ev[0], ev[1]),
                                                                        pack_i16x16(ev[2], ev[3])),
                                                     _MM_SHUFFLE(3, 1, 2, 0)));
        _mm256_storeu_si256((__m256i *)(void *)(xq->l + b + 32),
                            _mm256_permute4x64_epi64(_mm256_packs_epi16(pack_i16x16(od[0], od[1]),
                                                                        pack_i16x16(od[2], od[3])),
                                                     _MM_SHUFFLE(3, 1, 2, 0)));
    }
}

/* ---- affine-quantized Q4: dot products on 21-bit activation codes */

/* Partial sums (8 lanes, lane m = elements 8m..8m+7) of code * X over one
 * 32-byte block of Q4 codes (64 elements), X = 256 H + L (layout at
 * eng_xq_pos): the codes masked as bytes multiply the low parts L
 * (vpmaddubsw: unsigned codes times signed bytes, pairs at most 2 * 15 *
 * 128, two summed still fit 16 bits; widened by vpmaddwd with ones), and
 * moved into the high byte of 16-bit lanes they multiply the high parts H
 * (vpmaddwd), which yields 256 * code * H without a shift: at most 128
 * codes of 15 * 256 times 4096 per group, < 2^31. 20 instructions. */
INLINE __m256i block_q4(__m256i v, const int16_t *h, const int8_t *l)
{
    const __m256i mb = _mm256_set1_epi16(0x0f0f), mh = _mm256_set1_epi16((short)0xff00);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i a = _mm256_and_si256(v, mb), b = _mm256_and_si256(_mm256_srli_epi16(v, 4), mb);
    __m256i lo =
        _mm256_add_epi16(_mm256_maddubs_epi16(a, LOADU(l)), _mm256_maddubs_epi16(b, LOADU(l + 32)));
    __m256i p0 = _mm256_madd_epi16(_mm256_slli_epi16(a, 8), LOADU(h));
    __m256i p1 = _mm256_madd_epi16(_mm256_and_si256(a, mh), LOADU(h + 16));
    __m256i p2 = _mm256_madd_epi16(_mm256_slli_epi16(b, 8), LOADU(h + 32));
    __m256i p3 = _mm256_madd_epi16(_mm256_and_si256(b, mh), LOADU(h + 48));
    __m256i hi = _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3));
    return _mm256_add_epi32(hi, _mm256_madd_epi16(lo, ones));
}

/* Lane sums of s[0..7] as one vector (lane j = sum of s[j]). */
INLINE __m256i reduce_8(const __m256i s[8])
{
    __m256i ab = _mm256_hadd_epi32(s[0], s[1]), cd = _mm256_hadd_epi32(s[2], s[3]);
    __m256i ef = _mm256_hadd_epi32(s[4], s[5]), gh = _mm256_hadd_epi32(s[6], s[7]);
    __m256i abcd = _mm256_hadd_epi32(ab, cd), efgh = _mm256_hadd_epi32(ef, gh);
    return _mm256_add_epi32(_mm256_permute2x128_si256(abcd, efgh, 0x20),
                            _mm256_permute2x128_si256(abcd, efgh, 0x31));
}

/* 32-element groups: each block s[i] holds groups 2i (lanes 0-3) and
 * 2i + 1 (lanes 4-7); returns the 8 group sums in order. */
INLINE __m256i reduce_4x2(const __m256i s[4])
{
    __m256i ab = _mm256_hadd_epi32(s[0], s[1]), cd = _mm256_hadd_epi32(s[2], s[3]);
    __m256i r = _mm256_hadd_epi32(ab, cd); /* groups 0 2 4 6 | 1 3 5 7 */
    return _mm256_permutevar8x32_epi32(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* Integer group sums of groups [g, g + n) (n <= 8; missing lanes 0). */
INLINE __m256i q4_group_sums(int gs, const uint8_t *row, const struct eng_xq *xq, int64_t g, int n)
{
    __m256i s[8];

    if (gs == 32) {
        /* 64 elements (two groups) per block; an odd last group is a half
         * block: the 16 bytes left, zero-extended (the parts are padded). */
        int64_t e = g * 32;
        int i = 0;
        for (; 2 * i + 1 < n; i++)
            s[i] = block_q4(LOADU(row + e / 2 + 32 * i), xq->q + e + 64 * i, xq->l + e + 64 * i);
        if (2 * i < n) {
            __m128i half = _mm_loadu_si128((const __m128i *)(const void *)(row + e / 2 + 32 * i));
            s[i] = block_q4(_mm256_set_m128i(_mm_setzero_si128(), half), xq->q + e + 64 * i,
                            xq->l + e + 64 * i);
            i++;
        }
        for (; i < 4; i++)
            s[i] = _mm256_setzero_si256();
        return reduce_4x2(s);
    }
    for (int j = 0; j < n; j++) {
        int64_t e = (g + j) * gs; /* first element of the group */
        s[j] = block_q4(LOADU(row + e / 2), xq->q + e, xq->l + e);
        if (gs == 128)
            s[j] = _mm256_add_epi32(
                s[j], block_q4(LOADU(row + e / 2 + 32), xq->q + e + 64, xq->l + e + 64));
    }
    for (int j = n; j < 8; j++)
        s[j] = _mm256_setzero_si256();
    return reduce_8(s);
}

/* ---- affine-quantized Q8: dot products in f32 */

/* Lane sums of s[0..7] (floats) as one vector. */
INLINE __m256 reduce_8_ps(const __m256 s[8])
{
    __m256 ab = _mm256_hadd_ps(s[0], s[1]), cd = _mm256_hadd_ps(s[2], s[3]);
    __m256 ef = _mm256_hadd_ps(s[4], s[5]), gh = _mm256_hadd_ps(s[6], s[7]);
    __m256 abcd = _mm256_hadd_ps(ab, cd), efgh = _mm256_hadd_ps(ef, gh);
    return _mm256_add_ps(_mm256_permute2f128_ps(abcd, efgh, 0x20),
                         _mm256_permute2f128_ps(abcd, efgh, 0x31));
}

/* code * x over 32 bytes of Q8 codes, 8 lanes of partial sums: one load,
 * and per 8 codes one in-lane byte shuffle into 32-bit lanes (bytes 4j ..
 * 4j+3 of each 128-bit half), a conversion and an FMA with x reordered to
 * match (prep_q8). */
INLINE __m256 block_q8(const uint8_t *p, const float *x, __m256 acc)
{
    const __m256i s0 = _mm256_setr_epi8(0, -1, -1, -1, 1, -1, -1, -1, 2, -1, -1, -1, 3, -1, -1, -1,
                                        0, -1, -1, -1, 1, -1, -1, -1, 2, -1, -1, -1, 3, -1, -1, -1);
    const __m256i four = _mm256_set1_epi32(4);
    __m256i v = LOADU(p), sh = s0;

    for (int j = 0; j < 4; j++) {
        acc =
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_shuffle_epi8(v, sh)), LOADUF(x + 8 * j), acc);
        sh = _mm256_add_epi32(sh, four);
    }
    return acc;
}

/* Float group sums of groups [g, g + n) (n <= 8; missing lanes 0). */
INLINE __m256 q8_group_sums(int gs, const uint8_t *row, const float *x, int64_t g, int n)
{
    __m256 s[8];

    for (int j = 0; j < n; j++) {
        int64_t e = (g + j) * gs;
        s[j] = _mm256_setzero_ps();
        for (int k = 0; k < gs; k += 32)
            s[j] = block_q8(row + e + k, x + e + k, s[j]);
    }
    for (int j = n; j < 8; j++)
        s[j] = _mm256_setzero_ps();
    return reduce_8_ps(s);
}

/* Scales or biases of groups [g, g + n) as floats (missing lanes 0). A
 * short batch (the end of a row) reads a whole vector when the next rows'
 * values follow in memory (over_ok: at least 8 more in the tensor) and
 * masks the extra lanes; the last rows copy their few values instead, so
 * nothing past the tensor is read. */
INLINE __m256 load_sb(enum eng_dtype dt, const uint8_t *row, int64_t g, int n, bool over_ok)
{
    size_t es = dt == ENG_DT_F32 ? 4 : 2;
    const uint8_t *p = row + (size_t)g * es;
    uint8_t tmp[32] = {0};
    __m256 v;

    if (n < 8 && !over_ok) {
        memcpy(tmp, p, (size_t)n * es);
        p = tmp;
    }
    v = dt == ENG_DT_F32 ? LOADUF(p) : dt == ENG_DT_BF16 ? load8_bf16(p) : load8_f16(p);
    if (n < 8 && over_ok) {
        __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        v = _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(n), lanes)));
    }
    return v;
}

/* acc += the contribution of groups [g, g + n) of one row (n <= 8, a
 * constant after inlining):
 * Q4: float(isum) * (scale * d) + bias * s; Q8: fsum * scale + bias * s. */
INLINE __m256 batch(const struct eng_mat *w,
                    const struct eng_xq *xq,
                    const uint8_t *row,
                    const uint8_t *sc,
                    const uint8_t *bi,
                    int64_t g,
                    int n,
                    enum eng_dtype dt,
                    int gs,
                    bool over_ok,
                    __m256 acc)
{
    __m256 f, scale = load_sb(w->sb_dtype, sc, g, n, over_ok);

    if (dt == ENG_DT_Q4) {
        f = _mm256_cvtepi32_ps(q4_group_sums(gs, row, xq, g, n));
        scale = _mm256_mul_ps(scale, LOADUF(xq->d + g));
    } else {
        f = q8_group_sums(gs, row, xq->x, g, n);
    }
    acc = _mm256_fmadd_ps(f, scale, acc);
    return _mm256_fmadd_ps(load_sb(w->sb_dtype, bi, g, n, over_ok), LOADUF(xq->s + g), acc);
}

/* One specialization per (dtype, group size): inlined, the compiler folds
 * the branches on them (and on the tail's group count) into straight-line
 * code. */
INLINE void dot_rows_q_impl(const struct eng_mat *w,
                            const struct eng_xq *xq,
                            float *y,
                            int64_t r0,
                            int64_t r1,
                            enum eng_dtype dt,
                            int gs)
{
    int64_t ng = w->cols / gs;
    int64_t gbytes = dt == ENG_DT_Q4 ? gs / 2 : gs; /* bytes of one group's codes */

    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = row_ptr(w, r);
        const uint8_t *sc = (const uint8_t *)w->scales + (size_t)r * w->sb_stride;
        const uint8_t *bi = (const uint8_t *)w->biases + (size_t)r * w->sb_stride;
        __m256 acc = _mm256_setzero_ps();
        /* a full vector from the tail's first group stays in the tensor */
        bool over_ok = (w->rows - r - 1) * ng >= 8;
        int64_t g = 0;
        prefetch(sc + 512);
        prefetch(bi + 512);
        for (; g + 8 <= ng; g += 8) {
            for (int64_t k = 0; k < 8 * gbytes; k += 64)
                prefetch(row + g * gbytes + PF_DIST + k);
            acc = batch(w, xq, row, sc, bi, g, 8, dt, gs, false, acc);
        }
        for (int64_t k = g * gbytes; k < ng * gbytes; k += 64)
            prefetch(row + PF_DIST + k);
        switch (ng - g) {
#define TAIL(N)                                                                                    \
    case N:                                                                                        \
        acc = batch(w, xq, row, sc, bi, g, N, dt, gs, over_ok, acc);                               \
        break;
            TAIL(1)
            TAIL(2)
            TAIL(3)
            TAIL(4)
            TAIL(5)
            TAIL(6)
            TAIL(7)
#undef TAIL
        default:
            break;
        }
        y[r] = hsum_ps(acc);
    }
}

#define DEFINE_DOT_Q(DT, GS)                                                                       \
    static void dot_q_##DT##_##GS(const struct eng_mat *w, const struct eng_xq *xq, float *y,      \
                                  int64_t r0, int64_t r1)                                          \
    {                                                                                              \
        dot_rows_q_impl(w, xq, y, r0, r1, ENG_DT_##DT, GS);                                        \
    }

DEFINE_DOT_Q(Q4, 32)
DEFINE_DOT_Q(Q4, 64)
DEFINE_DOT_Q(Q4, 128)
DEFINE_DOT_Q(Q8, 32)
DEFINE_DOT_Q(Q8, 64)
DEFINE_DOT_Q(Q8, 128)

static void dot_rows_q(const struct eng_mat *w, const void *xp, float *y, int64_t r0, int64_t r1)
{
    const struct eng_xq *xq = xp;
    bool q4 = w->dtype == ENG_DT_Q4;

    switch (w->group_size) {
    case 32:
        (q4 ? dot_q_Q4_32 : dot_q_Q8_32)(w, xq, y, r0, r1);
        break;
    case 64:
        (q4 ? dot_q_Q4_64 : dot_q_Q8_64)(w, xq, y, r0, r1);
        break;
    default:
        (q4 ? dot_q_Q4_128 : dot_q_Q8_128)(w, xq, y, r0, r1);
        break;
    }
}

/* ---- affine-quantized Q4/Q8: conversion to f32 (prompt tiles) */

static void rows_to_f32_q(const struct eng_mat *w, int64_t r0, int64_t r1, float *dst)
{
    const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    const __m256i m4 = _mm256_set1_epi32(15);
    int64_t gs = w->group_size;
    bool q4 = w->dtype == ENG_DT_Q4;

    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = row_ptr(w, r);
        const uint8_t *sc = (const uint8_t *)w->scales + (size_t)r * w->sb_stride;
        const uint8_t *bi = (const uint8_t *)w->biases + (size_t)r * w->sb_stride;
        float *out = dst + (size_t)(r - r0) * (size_t)w->cols;
        for (int64_t g = 0; g < w->cols / gs; g++) {
            __m256 s = _mm256_set1_ps(eng_sb_load(w->sb_dtype, sc, g));
            __m256 b = _mm256_set1_ps(eng_sb_load(w->sb_dtype, bi, g));
            for (int64_t i = g * gs; i < (g + 1) * gs; i += 8) {
                __m256i c;
                if (q4) {
                    uint32_t word;
                    memcpy(&word, row + i / 2, 4);
                    c = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)word), shifts),
                                         m4);
                } else {
                    c = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(row + i)));
                }
                /* multiply, then add: never fused (bit-identical to scalar) */
                _mm256_storeu_ps(out + i,
                                 _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(c), s), b));
            }
        }
    }
}

const struct eng_mat_ops eng_kern_avx2[ENG_DT_COUNT] = {
    [ENG_DT_F32] = {.dot_rows = dot_rows_f32, .rows_to_f32 = rows_to_f32_f32},
    [ENG_DT_F16] = {.dot_rows = dot_rows_f16, .rows_to_f32 = rows_to_f32_f16},
    [ENG_DT_BF16] = {.prep = prep_bf16, .dot_rows = dot_rows_bf16, .rows_to_f32 = rows_to_f32_bf16},
    [ENG_DT_Q4] = {.prep = prep_q4, .dot_rows = dot_rows_q, .rows_to_f32 = rows_to_f32_q},
    [ENG_DT_Q8] = {.prep = prep_q8, .dot_rows = dot_rows_q, .rows_to_f32 = rows_to_f32_q},
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
