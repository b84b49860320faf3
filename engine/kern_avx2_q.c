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
 * Per block, the activation side was laid out once per token to match
 * (prep_q4, prep_q8):
 *  - Q4 (21-bit codes X = 256 H + L): the codes masked as bytes (A = lo
 *    nibbles, B = hi nibbles) multiply the 8-bit L (vpmaddubsw, summed in 16
 *    bits for 4 blocks: pairs at most 2 * 15 * 128), and moved into the high
 *    byte of 16-bit lanes (A << 8, A & 0xff00, B << 8, B & 0xff00) they
 *    multiply the 13-bit H (vpmaddwd: 256 code H, at most 128 * 15 * 256 *
 *    4096 per group, < 2^31). 19 instructions per 64 weights.
 *  - Q4 with 16-bit codes (x16, the output head): the four nibbles of each
 *    16-bit lane, masked in place, multiply X (vpmaddwd). 13 per 64.
 *  - Q8 (f32): an in-lane byte shuffle spreads code q of each lane's word
 *    into 32-bit lanes, converted and multiplied with x (FMA). 13 per 32.
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

/* Q8: the group sums (in element order, as the scalar kernel adds them) and
 * x in block order: vector q of block j holds, in lane m, element 4j + q of
 * the batch's group m (0 past the row's groups). */
void eng_avx2_prep_q8(const struct eng_mat *w, const float *x, struct eng_xq *xq)
{
    int64_t gs = w->group_size, ng = w->cols / gs, blocks = gs / 4;
    float *xf = (float *)(void *)xq->t;

    for (int64_t g = 0; g < ng; g++)
        xq->s[g] = sum8(x + g * gs, gs);
    for (int64_t g0 = 0; g0 < ng; g0 += 8) {
        int64_t n = batch_groups(ng, g0);
        float *bf = xf + g0 * gs; /* 8 groups' worth per batch */
        for (int64_t j = 0; j < blocks; j++)
            for (int q = 0; q < 4; q++)
                for (int64_t m = 0; m < 8; m++)
                    bf[j * 32 + q * 8 + m] = m < n ? x[(g0 + m) * gs + 4 * j + q] : 0.0f;
    }
    xq->x = xf;
}

/* Q4: the codes X in element order into t (d, s and the rounding exactly
 * as prep_q4 in kern_scalar.c), then laid out per block: 8 consecutive
 * elements of a group go into one lane, byte t of the lane's word holding
 * elements 2t (low nibble, h = 0) and 2t + 1 (h = 1). */
void eng_avx2_prep_q4(const struct eng_mat *w, const float *x, struct eng_xq *xq)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 inf = _mm256_set1_ps(HUGE_VALF);
    const int32_t xmax = w->x16 ? 32767 : ENG_XQ_MAX;
    const __m256i lim = _mm256_set1_epi32(xmax), nlim = _mm256_set1_epi32(-xmax);
    int64_t gs = w->group_size, ng = w->cols / gs, blocks = gs / 8;
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
        inv = !bad && amax > 0.0f ? (float)xmax / amax : 0.0f;
        for (int64_t i = 0; i < gs; i += 8) {
            __m256i c = _mm256_setzero_si256();
            if (inv > 0.0f) {
                c = _mm256_cvtps_epi32(_mm256_mul_ps(LOADUF(xg + i), _mm256_set1_ps(inv)));
                c = _mm256_max_epi32(_mm256_min_epi32(c, lim), nlim);
            }
            _mm256_storeu_si256((__m256i *)(void *)(t + g * gs + i), c);
            sum = _mm256_add_epi32(sum, c);
        }
        xq->d[g] = bad ? NAN : amax / (float)xmax;
        xq->s[g] = xq->d[g] * (float)hsum_epi32(sum);
    }
    for (int64_t g0 = 0; g0 < ng; g0 += 8) {
        int64_t n = batch_groups(ng, g0);
        for (int64_t j = 0; j < blocks; j++) {
            int64_t blk = g0 / 8 * blocks + j;
            int16_t *q = xq->q + blk * 64;
            int8_t *l = xq->l + blk * 64;
            for (int m = 0; m < 8; m++) {
                const int32_t *e = t + (g0 + m) * gs + 8 * j;
                for (int b = 0; b < 4; b++) {
                    int p = 4 * m + b; /* byte of the block */
                    for (int h = 0; h < 2; h++) {
                        int32_t v = m < n ? e[2 * b + h] : 0;
                        if (w->x16) {
                            /* nibble 2 (p & 1) + h of 16-bit lane p / 2 */
                            q[16 * (2 * (p & 1) + h) + (p >> 1)] = (int16_t)v;
                        } else {
                            int32_t hi = eng_xq_high(v);
                            q[16 * (2 * h + (p & 1)) + (p >> 1)] = (int16_t)hi;
                            l[32 * h + p] = (int8_t)(v - 256 * hi);
                        }
                    }
                }
            }
        }
    }
}

/* ---- dot products */

/* Q4, one block, 21-bit codes: hi (i32) += 256 code H, lo (i16) += code L. */
INLINE void block_q4(__m256i v, const int16_t *h, const int8_t *l, __m256i *hi, __m256i *lo)
{
    const __m256i mb = _mm256_set1_epi16(0x0f0f), mh = _mm256_set1_epi16((short)0xff00);
    __m256i a = _mm256_and_si256(v, mb), b = _mm256_and_si256(_mm256_srli_epi16(v, 4), mb);
    __m256i p0 = _mm256_madd_epi16(_mm256_slli_epi16(a, 8), LOADU(h));
    __m256i p1 = _mm256_madd_epi16(_mm256_and_si256(a, mh), LOADU(h + 16));
    __m256i p2 = _mm256_madd_epi16(_mm256_slli_epi16(b, 8), LOADU(h + 32));
    __m256i p3 = _mm256_madd_epi16(_mm256_and_si256(b, mh), LOADU(h + 48));
    *lo = _mm256_add_epi16(*lo, _mm256_add_epi16(_mm256_maddubs_epi16(a, LOADU(l)),
                                                 _mm256_maddubs_epi16(b, LOADU(l + 32))));
    *hi =
        _mm256_add_epi32(*hi, _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3)));
}

/* Q4, one block, 16-bit codes: acc (i32) += code X. */
INLINE __m256i block_q4x16(__m256i v, const int16_t *x, __m256i acc)
{
    const __m256i m = _mm256_set1_epi16(15);
    __m256i p0 = _mm256_madd_epi16(_mm256_and_si256(v, m), LOADU(x));
    __m256i p1 = _mm256_madd_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m), LOADU(x + 16));
    __m256i p2 = _mm256_madd_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 8), m), LOADU(x + 32));
    __m256i p3 = _mm256_madd_epi16(_mm256_srli_epi16(v, 12), LOADU(x + 48));
    return _mm256_add_epi32(acc,
                            _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3)));
}

/* The group sums of one batch (lane m: group m), n lanes valid. */
INLINE __m256
batch_q4(const uint8_t *bp, const struct eng_xq *xq, int64_t blk, int gs, int n, bool x16)
{
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i hi = _mm256_setzero_si256(), lo32 = _mm256_setzero_si256();

    /* (not unrolled further: gcc then hoists the multiplies of several
     * blocks and spills their results) */
    if (x16) {
#pragma GCC unroll 2
        for (int j = 0; j < gs / 8; j++)
            hi = block_q4x16(LOADU(bp + 4 * n * j), xq->q + (blk + j) * 64, hi);
        return _mm256_cvtepi32_ps(hi);
    }
    for (int j0 = 0; j0 < gs / 8; j0 += 4) {
        __m256i lo = _mm256_setzero_si256();
#pragma GCC unroll 1
        for (int j = j0; j < j0 + 4; j++)
            block_q4(LOADU(bp + 4 * n * j), xq->q + (blk + j) * 64, xq->l + (blk + j) * 64, &hi,
                     &lo);
        lo32 = _mm256_add_epi32(lo32, _mm256_madd_epi16(lo, ones));
    }
    return _mm256_cvtepi32_ps(_mm256_add_epi32(hi, lo32));
}

/* Q8, 4 codes per lane of one block: acc[q] += code q * x. */
INLINE void block_q8(__m256i v, const float *xb, __m256 acc[4])
{
    const __m256i s0 =
        _mm256_setr_epi8(0, -1, -1, -1, 4, -1, -1, -1, 8, -1, -1, -1, 12, -1, -1, -1, 0, -1, -1, -1,
                         4, -1, -1, -1, 8, -1, -1, -1, 12, -1, -1, -1);
    const __m256i s1 = _mm256_add_epi32(s0, _mm256_set1_epi32(1));
    const __m256i s2 = _mm256_add_epi32(s0, _mm256_set1_epi32(2));
    const __m256i s3 = _mm256_add_epi32(s0, _mm256_set1_epi32(3));

    acc[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_shuffle_epi8(v, s0)), LOADUF(xb), acc[0]);
    acc[1] =
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_shuffle_epi8(v, s1)), LOADUF(xb + 8), acc[1]);
    acc[2] =
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_shuffle_epi8(v, s2)), LOADUF(xb + 16), acc[2]);
    acc[3] =
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_shuffle_epi8(v, s3)), LOADUF(xb + 24), acc[3]);
}

/* The group sums of one Q8 batch: two blocks per step into two sets of
 * accumulators (FMA chains half as long). */
INLINE __m256 batch_q8(const uint8_t *bp, const float *xf, int gs, int n)
{
    __m256 a[4], b[4];

    for (int k = 0; k < 4; k++)
        a[k] = b[k] = _mm256_setzero_ps();
    for (int j = 0; j < gs / 4; j += 2) {
        block_q8(LOADU(bp + 4 * n * j), xf + j * 32, a);
        block_q8(LOADU(bp + 4 * n * (j + 1)), xf + (j + 1) * 32, b);
    }
    return _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a[0], b[0]), _mm256_add_ps(a[1], b[1])),
                         _mm256_add_ps(_mm256_add_ps(a[2], b[2]), _mm256_add_ps(a[3], b[3])));
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
 * Q4: sum * (scale * d) + bias * s; Q8: sum * scale + bias * s. */
INLINE __m256 batch(const struct eng_mat *w,
                    const struct eng_xq *xq,
                    const uint8_t *row,
                    const uint8_t *sc,
                    const uint8_t *bi,
                    int64_t g0,
                    int n,
                    enum eng_dtype dt,
                    int gs,
                    bool x16,
                    bool over_ok,
                    __m256 acc)
{
    const uint8_t *bp = row + g0 * (dt == ENG_DT_Q4 ? gs / 2 : gs);
    __m256 f, scale = load_sb(w->sb_dtype, sc, g0, n, over_ok);

    if (dt == ENG_DT_Q4) {
        f = batch_q4(bp, xq, g0 / 8 * (gs / 8), gs, n, x16);
        scale = _mm256_mul_ps(scale, LOADUF(xq->d + g0));
    } else {
        f = batch_q8(bp, xq->x + g0 * gs, gs, n);
    }
    acc = _mm256_fmadd_ps(f, scale, acc);
    return _mm256_fmadd_ps(load_sb(w->sb_dtype, bi, g0, n, over_ok), LOADUF(xq->s + g0), acc);
}

/* One specialization per (dtype, group size, code width): inlined, the
 * compiler folds the branches on them, and on the last batch's group count,
 * into straight-line code. */
INLINE void dot_rows_impl(const struct eng_mat *w,
                          const struct eng_xq *xq,
                          float *y,
                          int64_t r0,
                          int64_t r1,
                          enum eng_dtype dt,
                          int gs,
                          bool x16)
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
            acc = batch(w, xq, row, sc, bi, g0, 8, dt, gs, x16, false, acc);
        switch (ng - g0) {
#define TAIL(N)                                                                                    \
    case N:                                                                                        \
        acc = batch(w, xq, row, sc, bi, g0, N, dt, gs, x16, over_ok, acc);                         \
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

#define DEFINE_DOT(NAME, DT, GS, X16)                                                              \
    static void NAME(const struct eng_mat *w, const struct eng_xq *xq, float *y, int64_t r0,       \
                     int64_t r1)                                                                   \
    {                                                                                              \
        dot_rows_impl(w, xq, y, r0, r1, ENG_DT_##DT, GS, X16);                                     \
    }

DEFINE_DOT(dot_q4_32, Q4, 32, false)
DEFINE_DOT(dot_q4_64, Q4, 64, false)
DEFINE_DOT(dot_q4_128, Q4, 128, false)
DEFINE_DOT(dot_q4x16_32, Q4, 32, true)
DEFINE_DOT(dot_q4x16_64, Q4, 64, true)
DEFINE_DOT(dot_q4x16_128, Q4, 128, true)
DEFINE_DOT(dot_q8_32, Q8, 32, false)
DEFINE_DOT(dot_q8_64, Q8, 64, false)
DEFINE_DOT(dot_q8_128, Q8, 128, false)

void eng_avx2_dot_rows_q(const struct eng_mat *w, const void *xp, float *y, int64_t r0, int64_t r1)
{
    static void (*const fns[3][3])(const struct eng_mat *, const struct eng_xq *, float *, int64_t,
                                   int64_t) = {
        {dot_q4_32, dot_q4_64, dot_q4_128},
        {dot_q4x16_32, dot_q4x16_64, dot_q4x16_128},
        {dot_q8_32, dot_q8_64, dot_q8_128},
    };
    int kind = w->dtype == ENG_DT_Q8 ? 2 : w->x16 ? 1 : 0;
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
