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
 * Where a row's group count is not a multiple of 8, the batches run on
 * across rows instead (eng_mat.flat: the matrix is one sequence of groups,
 * so every batch but the matrix's last is full); the activation side then
 * repeats with the period of the groups' pattern, and each row sums its
 * lanes from a buffer (dot_rows_flat).
 *
 * Per block, the activation side (16-bit codes X, kern_scalar.c) was laid
 * out once per token to match (prep_q), and vpmaddwd multiplies 16-bit
 * lanes of codes with it, summing pairs into the group's 32-bit lane:
 *  - Q4: the four nibbles of each 16-bit lane, masked in place (v & 15,
 *    v >> 4 & 15, v >> 8 & 15, v >> 12): 4 multiplies per 64 weights;
 *  - Q8: the two bytes of each 16-bit lane (v & 0xff, v >> 8): 2 per 32.
 * Integer sums are exact (at most 128 * 255 * 32767 per group < 2^31).
 * With 8-bit codes (eng_xq.bits 8, Q4 only), vpmaddubsw multiplies the
 * low and the high nibbles of each byte (v & 15, v >> 4 & 15) with bytes of
 * codes: 2 multiplies per 64 weights, whose 16-bit pair sums (at most
 * 4 * 15 * 127 per block) add up over 4 blocks before vpmaddwd by ones
 * widens them into the group's lane.
 */
#include "engine/kern_avx2.h"

/* ---- layout */

/* Flat layout (eng_mat.flat) for rows whose per-row batches would leave
 * more than a tenth of their lanes idle, of fewer groups than
 * FLAT_MAX_GROUPS: a row of 14 groups (Qwen2.5-0.5B's 896 columns) wastes
 * 2 of its 16 lanes in per-row batches, and the kernel streamed such rows
 * at 62-64% of the read bandwidth against 68-74% for 1024 columns
 * (bench_kernels). Flat batches are all full; their lanes' results are
 * summed per row afterwards (dot_rows_flat). But a flat matrix's
 * activation codes repeat with a longer period (ng / gcd(ng, 8) batches of
 * codes, 1 KiB each with 16-bit codes in groups of 64, against a row's
 * ng / 8), which the weights streaming past push out of L1 once it is
 * long: at 4864 columns (76 groups: 19 KiB of codes against 10, 4 of 80
 * lanes idle per row) per-row batches ran faster, bench_kernels on 1
 * thread, kernel rate over read bandwidth (means of 16 or 12 alternated
 * rounds) Q4 0.78 -> 0.86, Q8 0.90 -> 0.98, Q4 with 8-bit codes 0.84 ->
 * 0.99; cache-resident Q4 (best of 20) 33.0 -> 35.7 G weights/s. The
 * bound on the group count keeps a piece of rows within dot_rows_flat's
 * buffers. */
#define FLAT_MAX_GROUPS 512
#define FLAT_BUF        2048 /* lanes per piece of rows, for each of two */

/* Batches of 8 of the total groups at src (G bytes each) into dst. */
static void interleave(const uint8_t *src, uint8_t *dst, int64_t total, size_t G)
{
    for (int64_t g0 = 0; g0 < total; g0 += 8) {
        size_t n = (size_t)batch_groups(total, g0);
        uint8_t *bd = dst + (size_t)g0 * G;
        for (size_t j = 0; j < G / 4; j++)
            for (size_t m = 0; m < n; m++)
                memcpy(bd + (j * n + m) * 4, src + ((size_t)g0 + m) * G + j * 4, 4);
    }
}

void eng_avx2_repack_q(const struct eng_mat *w, void *dst, struct eng_mat *out)
{
    int64_t gs = w->group_size, ng = w->cols / gs;
    size_t G = (size_t)gs * (size_t)eng_q_bits(w->dtype) / 8;
    size_t es = eng_dtype_info(w->sb_dtype)->size;
    /* rows, scales and biases must each be one contiguous sequence */
    int64_t lanes = (ng + 7) / 8 * 8; /* of a per-row layout, ng of them busy */
    bool flat = (lanes - ng) * 10 > lanes && ng < FLAT_MAX_GROUPS &&
                w->row_stride == (size_t)ng * G && w->sb_stride == (size_t)ng * es;

    if (flat)
        interleave(w->data, dst, w->rows * ng, G);
    else
        for (int64_t r = 0; r < w->rows; r++)
            interleave((const uint8_t *)w->data + (size_t)r * w->row_stride,
                       (uint8_t *)dst + (size_t)r * w->row_stride, ng, G);
    memset((uint8_t *)dst + (size_t)w->rows * w->row_stride, 0, ENG_REPACK_PAD);
    *out = *w;
    out->data = dst;
    out->interleaved = true;
    out->flat = flat;
}

/* ---- activation preparation */

/* The block order of eng_xq.q. Block j of a batch (Q4: elements 8j ..
 * 8j + 7 of each group, one 32-byte load of weights; Q8: 4j .. 4j + 3)
 * meets 16-bit codes in vectors of 16: lane m's 16-bit half h of vector i
 * holds the element the multiply meets there. Q4: byte t of lane m's word
 * holds elements 2t, 2t + 1, so half h holds elements 4h .. 4h + 3, nibble
 * i being element 4h + i: the 32-bit lane m of vector i is the pair
 * (X[8j + i], X[8j + i + 4]). Q8: half h holds elements 2h (low byte,
 * vector 0) and 2h + 1 (vector 1): lane m of vector v is (X[4j + v],
 * X[4j + v + 2]). Numbering a group's pairs P = 4j + i (Q4) or 2j + v (Q8),
 * pair P of lane m is 32-bit word 8P + m of the batch's codes: the batch is
 * the transpose of its 8 groups' pair lists. */
static void group_pairs(bool q4, const int32_t *t, int gs, uint32_t *pr)
{
    const __m128i lo16 = _mm_set1_epi32(0xffff);

    for (int i = 0; i < gs; i += 8) {
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(t + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(t + i + 4));
        __m128i lo = q4 ? a : _mm_unpacklo_epi64(a, b), hi = q4 ? b : _mm_unpackhi_epi64(a, b);
        _mm_storeu_si128((__m128i *)(void *)(pr + i / 2),
                         _mm_or_si128(_mm_and_si128(lo, lo16), _mm_slli_epi32(hi, 16)));
    }
}

/* dst (8 x 8 words, row P) = the transpose of src[m][0..7] (rows m). */
static void transpose8(const uint32_t *const src[8], uint32_t *dst)
{
    __m256i r[8], u[8], v[8];

    for (int m = 0; m < 8; m++)
        r[m] = LOADU(src[m]);
    for (int m = 0; m < 8; m += 2) {
        u[m] = _mm256_unpacklo_epi32(r[m], r[m + 1]);
        u[m + 1] = _mm256_unpackhi_epi32(r[m], r[m + 1]);
    }
    for (int m = 0; m < 8; m += 4) {
        v[m] = _mm256_unpacklo_epi64(u[m], u[m + 2]);
        v[m + 1] = _mm256_unpackhi_epi64(u[m], u[m + 2]);
        v[m + 2] = _mm256_unpacklo_epi64(u[m + 1], u[m + 3]);
        v[m + 3] = _mm256_unpackhi_epi64(u[m + 1], u[m + 3]);
    }
    for (int m = 0; m < 4; m++) {
        _mm256_storeu_si256((__m256i *)(void *)(dst + 8 * m),
                            _mm256_permute2x128_si256(v[m], v[m + 4], 0x20));
        _mm256_storeu_si256((__m256i *)(void *)(dst + 8 * (m + 4)),
                            _mm256_permute2x128_si256(v[m], v[m + 4], 0x31));
    }
}

/* Q4 with 8-bit codes: a group's words in the order of its blocks, block
 * j (elements 8j .. 8j + 7, one 32-bit weight word per lane, byte b holding
 * elements 8j + 2b and 8j + 2b + 1 in its low and high nibble) meeting
 * word 2j with the even elements' codes (8j, 8j + 2, 8j + 4, 8j + 6) and
 * word 2j + 1 with the odd ones', one byte each. Codes are within +-127:
 * the saturating packs keep them. */
static void group_quads(const int32_t *t, int gs, uint32_t *pr)
{
    const __m128i order = _mm_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15);

    for (int i = 0; i < gs; i += 8) {
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(t + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(t + i + 4));
        __m128i c = _mm_packs_epi16(_mm_packs_epi32(a, b), _mm_setzero_si128());
        _mm_storel_epi64((__m128i *)(void *)(pr + i / 4), _mm_shuffle_epi8(c, order));
    }
}

/* One group's codes X (|X| <= code_max) into t (element order), with its d and
 * s, exactly as prep_q in kern_scalar.c computes them (the decode and
 * prompt paths share this function, so a token's 16-bit codes are the
 * same in both). */
void eng_avx2_group_codes(const float *xg, int gs, int code_max, int32_t *t, float *d, float *s)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 inf = _mm256_set1_ps(HUGE_VALF);
    const __m256i lim = _mm256_set1_epi32(code_max), nlim = _mm256_set1_epi32(-code_max);
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
    inv = !bad && amax > 0.0f ? (float)code_max / amax : 0.0f;
    for (int i = 0; i < gs; i += 8) {
        __m256i c = _mm256_setzero_si256();
        if (inv > 0.0f) {
            c = _mm256_cvtps_epi32(_mm256_mul_ps(LOADUF(xg + i), _mm256_set1_ps(inv)));
            c = _mm256_max_epi32(_mm256_min_epi32(c, lim), nlim);
        }
        _mm256_storeu_si256((__m256i *)(void *)(t + i), c);
        sum = _mm256_add_epi32(sum, c);
    }
    *d = bad ? NAN : amax / (float)code_max;
    *s = *d * (float)hsum_epi32(sum);
}

/* The number of distinct batches of a matrix's rows (each a pattern of 8
 * groups): per-row batches, or a flat matrix's period ng / gcd(ng, 8). */
static int64_t lane_batches(const struct eng_mat *w)
{
    int64_t ng = w->cols / w->group_size, gcd = ng % 8 == 0 ? 8 : ng % 4 == 0 ? 4 : ng % 2 ? 1 : 2;
    return w->flat ? ng / gcd : (ng + 7) / 8;
}

/* The codes X in element order into t, with d and s; each group's words
 * (16-bit codes: pairs; 8-bit: quads), then q: batch p's lane m meets group
 * 8p + m (mod ng when flat; 0 past the row's groups otherwise), with its d
 * and s in dl, sl when flat. */
void eng_avx2_prep_q(const struct eng_mat *w, const float *x, struct eng_xq *xq)
{
    static const uint32_t zeros[64];
    int64_t gs = w->group_size, ng = w->cols / gs, batches = lane_batches(w);
    bool q4 = w->dtype == ENG_DT_Q4, i8 = xq->bits == 8;
    int64_t words = i8 ? gs / 4 : gs / 2; /* per group */

    for (int64_t g = 0; g < ng; g++) {
        eng_avx2_group_codes(x + g * gs, (int)gs, eng_xq_max(xq->bits), xq->t + g * gs, xq->d + g,
                             xq->s + g);
        if (i8)
            group_quads(xq->t + g * gs, (int)gs, xq->pairs + g * words);
        else
            group_pairs(q4, xq->t + g * gs, (int)gs, xq->pairs + g * words);
    }
    for (int64_t p = 0; p < batches; p++) {
        const uint32_t *src[8];
        uint32_t *q = (uint32_t *)(void *)(xq->q) + p * 8 * words;
        for (int64_t m = 0; m < 8; m++) {
            int64_t g = w->flat ? (8 * p + m) % ng : 8 * p + m;
            src[m] = g < ng ? xq->pairs + g * words : zeros;
            if (w->flat) {
                xq->dl[8 * p + m] = xq->d[g];
                xq->sl[8 * p + m] = xq->s[g];
            }
        }
        for (int64_t c = 0; c < words; c += 8) {
            const uint32_t *part[8];
            for (int m = 0; m < 8; m++)
                part[m] = src[m] + c;
            transpose8(part, q + 8 * c);
        }
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

/* Q4 with 8-bit codes, four blocks of 64 codes from bp (a batch of n
 * groups) and x8: acc (i32) += code * X. */
INLINE __m256i blocks4_q4_i8(const uint8_t *bp, int n, const int8_t *x8, __m256i acc)
{
    const __m256i m = _mm256_set1_epi8(15);
    __m256i s16 = _mm256_setzero_si256();

    for (int k = 0; k < 4; k++) {
        __m256i v = LOADU(bp + 4 * n * k);
        __m256i lo = _mm256_maddubs_epi16(_mm256_and_si256(v, m), LOADU(x8 + 64 * k));
        __m256i hi = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m),
                                          LOADU(x8 + 64 * k + 32));
        s16 = _mm256_add_epi16(s16, _mm256_add_epi16(lo, hi));
    }
    return _mm256_add_epi32(acc, _mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
}

/* The group sums of one batch (lane m: group m) with codes of the given
 * bits at x, in two accumulators so that the dependency chain of the adds
 * is half as long. */
INLINE __m256
batch_sums(const uint8_t *bp, const void *xv, enum eng_dtype dt, int gs, int n, int bits)
{
    const int16_t *x = xv;
    __m256i a = _mm256_setzero_si256(), b = a;

    /* (not unrolled further: gcc then hoists the loads and shifts of
     * several blocks and spills them to the stack) */
    if (bits == 8) {
#pragma GCC unroll 1
        for (int j = 0; j < gs / 8; j += 4)
            a = blocks4_q4_i8(bp + 4 * n * j, n, (const int8_t *)xv + j * 64, a);
    } else if (dt == ENG_DT_Q4) {
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

/* acc += one batch of n groups (n a constant after inlining) at bp,
 * meeting the codes x and, per lane, d and s: sum * (scale * d) + bias * s,
 * scales and biases (of dtype sbt) of groups [g, g + n) read from sc and
 * bi. */
INLINE __m256 batch(enum eng_dtype sbt,
                    const uint8_t *bp,
                    const uint8_t *x,
                    const float *d,
                    const float *s,
                    const uint8_t *sc,
                    const uint8_t *bi,
                    int64_t g,
                    int n,
                    enum eng_dtype dt,
                    int gs,
                    int bits,
                    bool over_ok,
                    __m256 acc)
{
    __m256 f = batch_sums(bp, x, dt, gs, n, bits);
    __m256 scale = _mm256_mul_ps(load_sb(sbt, sc, g, n, over_ok), LOADUF(d));

    acc = _mm256_fmadd_ps(f, scale, acc);
    return _mm256_fmadd_ps(load_sb(sbt, bi, g, n, over_ok), LOADUF(s), acc);
}

/* Row k's batch at group g0 (per-row layout); codes of bits / 8 bytes. */
#define ROW_BATCH(K, N, OVER_OK)                                                                   \
    batch(sbt, row[K] + g0 * (dt == ENG_DT_Q4 ? gs / 2 : gs),                                      \
          (const uint8_t *)xq->q + g0 * gs * bits / 8, xq->d + g0, xq->s + g0, sc[K], bi[K], g0,   \
          N, dt, gs, bits, OVER_OK, acc[K])

/* One specialization per (dtype, group size, code bits, dtype of the
 * scales): inlined, the compiler folds the branches on them, and on the
 * last batch's group count, into straight-line code. Row i of each half of
 * the range go together, batch by batch (two streams: kern_avx2.h). */
INLINE void dot_rows_impl(const struct eng_mat *w,
                          const struct eng_xq *xq,
                          float *y,
                          int64_t r0,
                          int64_t r1,
                          enum eng_dtype dt,
                          int gs,
                          int bits,
                          enum eng_dtype sbt)
{
    int64_t ng = w->cols / gs, half = (r1 - r0 + 1) / 2;

    for (int64_t i = 0; i < half; i++) {
        int64_t r[2] = {r0 + i, r0 + half + i}, g0 = 0;
        int ns = r[1] < r1 ? 2 : 1;
        const uint8_t *row[2], *sc[2], *bi[2];
        __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int k = 0; k < ns; k++) {
            row[k] = (const uint8_t *)w->data + (size_t)r[k] * w->row_stride;
            sc[k] = (const uint8_t *)w->scales + (size_t)r[k] * w->sb_stride;
            bi[k] = (const uint8_t *)w->biases + (size_t)r[k] * w->sb_stride;
        }
        for (; g0 + 8 <= ng; g0 += 8) {
            acc[0] = ROW_BATCH(0, 8, false);
            if (ns == 2)
                acc[1] = ROW_BATCH(1, 8, false);
        }
        for (int k = 0; k < ns; k++) {
            /* a full vector from the last batch's first group stays in the tensor */
            bool over_ok = (w->rows - r[k] - 1) * ng >= 8;
            switch (ng - g0) {
#define TAIL(N)                                                                                    \
    case N:                                                                                        \
        acc[k] = ROW_BATCH(k, N, over_ok);                                                         \
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
            y[r[k]] = hsum_ps(acc[k]);
        }
    }
}

#undef ROW_BATCH

/* The sum of n (1 <= n <= FLAT_MAX_GROUPS) consecutive floats, in an order
 * that depends on n alone (not on where they start). */
static inline float row_sum(const float *v, int64_t n)
{
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;

    for (; i + 8 <= n; i += 8)
        acc = _mm256_add_ps(acc, LOADUF(v + i));
    if (i < n) {
        __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - i)), lanes);
        acc = _mm256_add_ps(acc, _mm256_and_ps(LOADUF(v + i), _mm256_castsi256_ps(keep)));
    }
    return hsum_ps(acc);
}

/* A flat matrix (eng_mat.flat): the batches covering rows [r0, r1), each
 * batch's 8 lane results (sum * scale * d + bias * s, lane by lane) into a
 * buffer, then each row's sum over its lanes. A row's result depends only
 * on its own lanes, whatever the range: the threads' shares give the same
 * bits as one call. The batches only read the ENG_REPACK_PAD past the
 * matrix's last row, whose loads can run past the data (a short last
 * batch, as in the per-row layout).
 * The two streams (kern_avx2.h) are the range's halves, each walked in
 * pieces of rows that fit its buffer, piece k of both halves together.
 * Two streams within each piece instead (about 135 KiB of Q8 at 896
 * columns) let the prefetcher start over at every piece: bench_kernels q8
 * on 1 thread, means of 12 alternated rounds, kernel rate over read
 * bandwidth 0.84 -> 0.88 at 896 columns, 0.70 -> 0.75 at 4864. */
/* Flat batch b (at bp), meeting the activation batch p of the period. */
#define FLAT_BATCH(N)                                                                              \
    batch(sbt, bp, (const uint8_t *)xq->q + p * 8 * gs * bits / 8, xq->dl + p * 8, xq->sl + p * 8, \
          w->scales, w->biases, b * 8, N, dt, gs, bits, false, _mm256_set1_ps(-0.0f))

INLINE void dot_rows_flat(const struct eng_mat *w,
                          const struct eng_xq *xq,
                          float *y,
                          int64_t r0,
                          int64_t r1,
                          enum eng_dtype dt,
                          int gs,
                          int bits,
                          enum eng_dtype sbt)
{
    int64_t ng = w->cols / gs, total = w->rows * ng, period = lane_batches(w);
    int64_t G = dt == ENG_DT_Q4 ? gs / 2 : gs, chunk = (FLAT_BUF - 16) / ng;
    int64_t mid = r0 + (r1 - r0 + 1) / 2, lo[2] = {r0, mid}, hi[2] = {mid, r1};
    const uint8_t *data = w->data;
    float buf[2][FLAT_BUF];

    for (int64_t k0 = 0; r0 + k0 < mid; k0 += chunk) {
        int64_t rc[2], re[2], b0[2], nb[2], nfull[2], pat[2], nb_max;
        for (int h = 0; h < 2; h++) {
            rc[h] = lo[h] + k0;
            re[h] = rc[h] + chunk < hi[h] ? rc[h] + chunk : hi[h];
            b0[h] = rc[h] * ng / 8;
            nb[h] = rc[h] < re[h] ? (re[h] * ng + 7) / 8 - b0[h] : 0;
            /* only the matrix's last batch can be short */
            nfull[h] = total / 8 - b0[h] < nb[h] ? total / 8 - b0[h] : nb[h];
            pat[h] = b0[h] % period;
        }
        nb_max = nb[0] > nb[1] ? nb[0] : nb[1];
        /* Batch i of each half's piece in turn. Each half counts its place
         * in the activations' period along (a division per batch cost
         * about 3% of the Q4 kernel, best of 20 cache-resident rounds). */
        for (int64_t i = 0; i < nb_max; i++) {
            for (int h = 0; h < 2; h++) {
                int64_t b = b0[h] + i, p = pat[h];
                const uint8_t *bp = data + b * 8 * G;
                __m256 c;
                /* Lane by lane from -0 (so that the first FMA rounds as a
                 * product alone); a full batch's count spelled out as the
                 * constant 8, which the inlined code folds. */
                if (i < nfull[h])
                    c = FLAT_BATCH(8);
                else if (i < nb[h])
                    c = FLAT_BATCH((int)(total - b * 8));
                else
                    continue;
                _mm256_storeu_ps(buf[h] + i * 8, c);
                pat[h] = p + 1 == period ? 0 : p + 1;
            }
        }
        for (int h = 0; h < 2; h++)
            for (int64_t r = rc[h]; r < re[h]; r++)
                y[r] = row_sum(buf[h] + (r * ng - b0[h] * 8), ng);
    }
}

#undef FLAT_BATCH

/* Each specialization also per dtype of the scales and biases: a branch on
 * it at every batch cost about 6% of the Q4 kernel (best of 20
 * cache-resident rounds at 896 columns, 33.7 -> 36.0 G weights/s). */
INLINE void dot_rows_any(const struct eng_mat *w,
                         const struct eng_xq *xq,
                         float *y,
                         int64_t r0,
                         int64_t r1,
                         enum eng_dtype dt,
                         int gs,
                         int bits,
                         enum eng_dtype sbt)
{
    if (w->flat)
        dot_rows_flat(w, xq, y, r0, r1, dt, gs, bits, sbt);
    else
        dot_rows_impl(w, xq, y, r0, r1, dt, gs, bits, sbt);
}

#define DEFINE_DOT(NAME, DT, GS, BITS)                                                             \
    static void NAME(const struct eng_mat *w, const struct eng_xq *xq, float *y, int64_t r0,       \
                     int64_t r1)                                                                   \
    {                                                                                              \
        if (w->sb_dtype == ENG_DT_BF16)                                                            \
            dot_rows_any(w, xq, y, r0, r1, ENG_DT_##DT, GS, BITS, ENG_DT_BF16);                    \
        else if (w->sb_dtype == ENG_DT_F32)                                                        \
            dot_rows_any(w, xq, y, r0, r1, ENG_DT_##DT, GS, BITS, ENG_DT_F32);                     \
        else                                                                                       \
            dot_rows_any(w, xq, y, r0, r1, ENG_DT_##DT, GS, BITS, ENG_DT_F16);                     \
    }

DEFINE_DOT(dot_q4_32, Q4, 32, 16)
DEFINE_DOT(dot_q4_64, Q4, 64, 16)
DEFINE_DOT(dot_q4_128, Q4, 128, 16)
DEFINE_DOT(dot_q8_32, Q8, 32, 16)
DEFINE_DOT(dot_q8_64, Q8, 64, 16)
DEFINE_DOT(dot_q8_128, Q8, 128, 16)
DEFINE_DOT(dot_q4i8_32, Q4, 32, 8)
DEFINE_DOT(dot_q4i8_64, Q4, 64, 8)
DEFINE_DOT(dot_q4i8_128, Q4, 128, 8)

void eng_avx2_dot_rows_q(const struct eng_mat *w, const void *xp, float *y, int64_t r0, int64_t r1)
{
    static void (*const fns[3][3])(const struct eng_mat *, const struct eng_xq *, float *, int64_t,
                                   int64_t) = {
        {dot_q4_32, dot_q4_64, dot_q4_128},
        {dot_q8_32, dot_q8_64, dot_q8_128},
        {dot_q4i8_32, dot_q4i8_64, dot_q4i8_128},
    };
    const struct eng_xq *xq = xp;
    int kind = w->dtype == ENG_DT_Q8 ? 1 : xq->bits == 8 ? 2 : 0;
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
        const uint8_t *sc = (const uint8_t *)w->scales + (size_t)r * w->sb_stride;
        const uint8_t *bi = (const uint8_t *)w->biases + (size_t)r * w->sb_stride;
        float *out = dst + (size_t)(r - r0) * (size_t)w->cols;
        for (int64_t g = 0; g < ng; g++) {
            int64_t n, m;
            const uint8_t *bp = q_batch(w, r, g, &n, &m);
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
