/* engine/kern_avx2_q.c: the AVX2 kernels of MLX affine Q4/Q8 weights, on
 * rows repacked at load into an interleaved layout (same contract and
 * results as kern_scalar.c: conversions and activation codes bit-identical,
 * dot products equal up to the order of float additions).
 *
 * The interleaved layout. A row's groups go in batches of 8 (a row's last
 * batch may have n < 8 groups); a group is G = group_size * bits / 8 bytes,
 * G / 4 32-bit words of MLX-packed codes. A batch of n groups stores word j
 * of its group m at word j * n + m: the kernel's 32-byte load (block j)
 * holds word j of every group of the batch, one group per 32-bit lane.
 * Every vector operation then keeps the groups in their lanes, and after
 * the batch's G / 4 blocks the 8 lanes hold the 8 group sums: no
 * horizontal reduction (a tree of vphaddd cost about 1.7 cycles per block,
 * a sixth of the Q4 kernel, measured). Rows keep their byte size; a short
 * batch's loads read up to 28 bytes past the row (into the next row, or
 * ENG_REPACK_PAD past the last), which meet zero activations.
 *
 * Per block, the activation side (16-bit codes X, kern_scalar.c) was laid
 * out once per token to match (prep_q), and vpmaddwd multiplies 16-bit
 * lanes of codes with it, summing pairs into the group's 32-bit lane:
 *  - Q4: the four nibbles of each 16-bit lane, masked in place (v & 15,
 *    v >> 4 & 15, v >> 8 & 15, v >> 12): 4 multiplies per 64 weights;
 *  - Q8: the two bytes of each 16-bit lane (v & 0xff, v >> 8): 2 per 32.
 * Integer sums are exact (at most 128 * 255 * 32767 per group < 2^31).
 */
#include "engine/kern_avx2.h"

/* ---- layout */

static int64_t batch_groups(int64_t ng, int64_t g0)
{
    return ng - g0 < 8 ? ng - g0 : 8;
}

void eng_avx2_repack_q(const struct eng_mat *w, void *dst, struct eng_mat *out)
{
    int64_t gs = w->group_size, ng = w->cols / gs;
    size_t G = (size_t)gs * (size_t)eng_q_bits(w->dtype) / 8, words = G / 4;

    for (int64_t r = 0; r < w->rows; r++) {
        const uint8_t *src = (const uint8_t *)w->data + (size_t)r * w->row_stride;
        uint8_t *d = (uint8_t *)dst + (size_t)r * w->row_stride;
        for (int64_t g0 = 0; g0 < ng; g0 += 8) {
            size_t n = (size_t)batch_groups(ng, g0);
            uint8_t *bd = d + (size_t)g0 * G;
            for (size_t j = 0; j < words; j++)
                for (size_t m = 0; m < n; m++)
                    memcpy(bd + (j * n + m) * 4, src + ((size_t)g0 + m) * G + j * 4, 4);
        }
    }
    memset((uint8_t *)dst + (size_t)w->rows * w->row_stride, 0, ENG_REPACK_PAD);
    *out = *w;
    out->data = dst;
    out->interleaved = true;
}

/* ---- activation preparation */

/* Where element k of a group (lane m of its batch) goes in the block order
 * of eng_xq.q: block j = k / 8 (Q4) or k / 4 (Q8) of the batch holds 32
 * (Q8) or 64 (Q4) codes, one vector of 16 per multiply, lane 2m + h of
 * vector p holding the element that the multiply meets in lane m's 16-bit
 * half h. Q4: byte t of lane m's word holds elements 2t, 2t + 1, so the
 * 16-bit half h holds elements 4h .. 4h + 3, nibble p being element
 * 4h + p. Q8: half h holds elements 2h (low byte, vector 0) and 2h + 1
 * (high byte, vector 1). */
static int64_t code_pos(bool q4, int64_t m, int64_t k)
{
    if (q4)
        return (k / 8) * 64 + 16 * (k % 4) + 2 * m + (k % 8) / 4;
    return (k / 4) * 32 + 16 * (k % 2) + 2 * m + (k % 4) / 2;
}

/* One group's codes X into t (element order), with its d and s, exactly
 * as prep_q in kern_scalar.c computes them (the decode and prompt paths
 * share this function, so a token's codes are the same in both). */
void eng_avx2_group_codes(const float *xg, int gs, int32_t *t, float *d, float *s)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 inf = _mm256_set1_ps(HUGE_VALF);
    const __m256i lim = _mm256_set1_epi32(ENG_XQ_MAX), nlim = _mm256_set1_epi32(-ENG_XQ_MAX);
    __m256 mx = _mm256_setzero_ps(), fin = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    __m256i sum = _mm256_setzero_si256();
    float amax, inv;
    bool bad;

    for (int i = 0; i < gs; i += 8) {
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
    for (int i = 0; i < gs; i += 8) {
        __m256i c = _mm256_setzero_si256();
        if (inv > 0.0f) {
            c = _mm256_cvtps_epi32(_mm256_mul_ps(LOADUF(xg + i), _mm256_set1_ps(inv)));
            c = _mm256_max_epi32(_mm256_min_epi32(c, lim), nlim);
        }
        _mm256_storeu_si256((__m256i *)(void *)(t + i), c);
        sum = _mm256_add_epi32(sum, c);
    }
    *d = bad ? NAN : amax / (float)ENG_XQ_MAX;
    *s = *d * (float)hsum_epi32(sum);
}

/* The codes X in element order into t, with d and s, then into q in block
 * order (0 past the row's groups). */
void eng_avx2_prep_q(const struct eng_mat *w, const float *x, struct eng_xq *xq)
{
    int64_t gs = w->group_size, ng = w->cols / gs;
    bool q4 = w->dtype == ENG_DT_Q4;
    int32_t *t = xq->t;

    for (int64_t g = 0; g < ng; g++)
        eng_avx2_group_codes(x + g * gs, (int)gs, t + g * gs, xq->d + g, xq->s + g);
    for (int64_t g0 = 0; g0 < ng; g0 += 8) {
        int64_t n = batch_groups(ng, g0);
        int16_t *q = xq->q + g0 * gs;
        for (int64_t m = 0; m < 8; m++)
            for (int64_t k = 0; k < gs; k++)
                q[code_pos(q4, m, k)] = (int16_t)(m < n ? t[(g0 + m) * gs + k] : 0);
    }
}

/* ---- dot products */

/* Q4, one block of 64 codes: acc (i32) += code * X. */
INLINE __m256i block_q4(__m256i v, const int16_t *x, __m256i acc)
{
    const __m256i m = _mm256_set1_epi16(15);
    __m256i p0 = _mm256_madd_epi16(_mm256_and_si256(v, m), LOADU(x));
    __m256i p1 = _mm256_madd_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m), LOADU(x + 16));
    __m256i p2 = _mm256_madd_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 8), m), LOADU(x + 32));
    __m256i p3 = _mm256_madd_epi16(_mm256_srli_epi16(v, 12), LOADU(x + 48));
    return _mm256_add_epi32(acc,
                            _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3)));
}

/* Q8, one block of 32 codes: acc (i32) += code * X. */
INLINE __m256i block_q8(__m256i v, const int16_t *x, __m256i acc)
{
    const __m256i m = _mm256_set1_epi16(0xff);
    __m256i p0 = _mm256_madd_epi16(_mm256_and_si256(v, m), LOADU(x));
    __m256i p1 = _mm256_madd_epi16(_mm256_srli_epi16(v, 8), LOADU(x + 16));
    return _mm256_add_epi32(acc, _mm256_add_epi32(p0, p1));
}

/* The group sums of one batch (lane m: group m), in two accumulators so
 * that the dependency chain of the adds is half as long. */
INLINE __m256 batch_sums(const uint8_t *bp, const int16_t *x, enum eng_dtype dt, int gs, int n)
{
    __m256i a = _mm256_setzero_si256(), b = a;

    /* (not unrolled further: gcc then hoists the loads and shifts of
     * several blocks and spills them to the stack) */
    if (dt == ENG_DT_Q4) {
#pragma GCC unroll 1
        for (int j = 0; j < gs / 8; j += 2) {
            a = block_q4(LOADU(bp + 4 * n * j), x + j * 64, a);
            b = block_q4(LOADU(bp + 4 * n * (j + 1)), x + (j + 1) * 64, b);
        }
    } else {
#pragma GCC unroll 1
        for (int j = 0; j < gs / 4; j += 2) {
            a = block_q8(LOADU(bp + 4 * n * j), x + j * 32, a);
            b = block_q8(LOADU(bp + 4 * n * (j + 1)), x + (j + 1) * 32, b);
        }
    }
    return _mm256_cvtepi32_ps(_mm256_add_epi32(a, b));
}

/* Scales or biases of groups [g, g + n) as floats (missing lanes 0). A
 * short batch (the end of a row) reads a whole vector when the tensor
 * continues for 8 more values (over_ok) and masks the extra lanes; the
 * last rows copy their few values instead. */
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

/* acc += one batch of n groups (n a constant after inlining):
 * sum * (scale * d) + bias * s. */
INLINE __m256 batch(const struct eng_mat *w,
                    const struct eng_xq *xq,
                    const uint8_t *row,
                    const uint8_t *sc,
                    const uint8_t *bi,
                    int64_t g0,
                    int n,
                    enum eng_dtype dt,
                    int gs,
                    bool over_ok,
                    __m256 acc)
{
    const uint8_t *bp = row + g0 * (dt == ENG_DT_Q4 ? gs / 2 : gs);
    __m256 f = batch_sums(bp, xq->q + g0 * gs, dt, gs, n);
    __m256 scale = _mm256_mul_ps(load_sb(w->sb_dtype, sc, g0, n, over_ok), LOADUF(xq->d + g0));

    acc = _mm256_fmadd_ps(f, scale, acc);
    return _mm256_fmadd_ps(load_sb(w->sb_dtype, bi, g0, n, over_ok), LOADUF(xq->s + g0), acc);
}

/* One specialization per (dtype, group size): inlined, the
 * compiler folds the branches on them, and on the last batch's group count,
 * into straight-line code. */
INLINE void dot_rows_impl(const struct eng_mat *w,
                          const struct eng_xq *xq,
                          float *y,
                          int64_t r0,
                          int64_t r1,
                          enum eng_dtype dt,
                          int gs)
{
    int64_t ng = w->cols / gs;

    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_stride;
        const uint8_t *sc = (const uint8_t *)w->scales + (size_t)r * w->sb_stride;
        const uint8_t *bi = (const uint8_t *)w->biases + (size_t)r * w->sb_stride;
        /* a full vector from the last batch's first group stays in the tensor */
        bool over_ok = (w->rows - r - 1) * ng >= 8;
        __m256 acc = _mm256_setzero_ps();
        int64_t g0 = 0;
        for (size_t k = 0; k < w->row_stride; k += 64)
            prefetch(row + PF_DIST + k);
        prefetch(sc + 256);
        prefetch(bi + 256);
        for (; g0 + 8 <= ng; g0 += 8)
            acc = batch(w, xq, row, sc, bi, g0, 8, dt, gs, false, acc);
        switch (ng - g0) {
#define TAIL(N)                                                                                    \
    case N:                                                                                        \
        acc = batch(w, xq, row, sc, bi, g0, N, dt, gs, over_ok, acc);                              \
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

#define DEFINE_DOT(NAME, DT, GS)                                                                   \
    static void NAME(const struct eng_mat *w, const struct eng_xq *xq, float *y, int64_t r0,       \
                     int64_t r1)                                                                   \
    {                                                                                              \
        dot_rows_impl(w, xq, y, r0, r1, ENG_DT_##DT, GS);                                          \
    }

DEFINE_DOT(dot_q4_32, Q4, 32)
DEFINE_DOT(dot_q4_64, Q4, 64)
DEFINE_DOT(dot_q4_128, Q4, 128)
DEFINE_DOT(dot_q8_32, Q8, 32)
DEFINE_DOT(dot_q8_64, Q8, 64)
DEFINE_DOT(dot_q8_128, Q8, 128)

void eng_avx2_dot_rows_q(const struct eng_mat *w, const void *xp, float *y, int64_t r0, int64_t r1)
{
    static void (*const fns[2][3])(const struct eng_mat *, const struct eng_xq *, float *, int64_t,
                                   int64_t) = {
        {dot_q4_32, dot_q4_64, dot_q4_128},
        {dot_q8_32, dot_q8_64, dot_q8_128},
    };
    int kind = w->dtype == ENG_DT_Q8 ? 1 : 0;
    int gi = w->group_size == 32 ? 0 : w->group_size == 64 ? 1 : 2;

    fns[kind][gi](w, xp, y, r0, r1);
}

/* ---- conversion to f32 (prompt tiles, embedding rows) */

/* w = code * scale + bias, multiplied then added (never fused):
 * bit-identical to the scalar conversion. Word j of group m in a batch of n
 * is at word j * n + m and holds 8 (Q4) or 4 (Q8) consecutive elements. */
void eng_avx2_rows_to_f32_q(const struct eng_mat *w, int64_t r0, int64_t r1, float *dst)
{
    const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    const __m256i m4 = _mm256_set1_epi32(15);
    int64_t gs = w->group_size, ng = w->cols / gs;
    bool q4 = w->dtype == ENG_DT_Q4;
    int64_t G = q4 ? gs / 2 : gs, per_word = q4 ? 8 : 4;

    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_stride;
        const uint8_t *sc = (const uint8_t *)w->scales + (size_t)r * w->sb_stride;
        const uint8_t *bi = (const uint8_t *)w->biases + (size_t)r * w->sb_stride;
        float *out = dst + (size_t)(r - r0) * (size_t)w->cols;
        for (int64_t g = 0; g < ng; g++) {
            int64_t g0 = g / 8 * 8, n = batch_groups(ng, g0), m = g - g0;
            const uint8_t *bp = row + g0 * G;
            float s = eng_sb_load(w->sb_dtype, sc, g), b = eng_sb_load(w->sb_dtype, bi, g);
            float *o = out + g * gs;
            for (int64_t j = 0; j < G / 4; j++) {
                uint32_t word;
                memcpy(&word, bp + (j * n + m) * 4, 4);
                if (q4) {
                    __m256i c = _mm256_and_si256(
                        _mm256_srlv_epi32(_mm256_set1_epi32((int32_t)word), shifts), m4);
                    _mm256_storeu_ps(
                        o + j * per_word,
                        _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(c), _mm256_set1_ps(s)),
                                      _mm256_set1_ps(b)));
                } else {
                    __m128 c = _mm_cvtepi32_ps(_mm_cvtepu8_epi32(_mm_cvtsi32_si128((int)word)));
                    _mm_storeu_ps(o + j * per_word,
                                  _mm_add_ps(_mm_mul_ps(c, _mm_set1_ps(s)), _mm_set1_ps(b)));
                }
            }
        }
    }
}
