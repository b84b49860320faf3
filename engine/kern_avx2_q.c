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
 * Integer sums are exact (at most 128 * 255 * ENG_XQ_MAX per group < 2^31).
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

/* A group's codes as bytes, four to a 32-bit word, for vpdpbusd-style
 * multiplies (4 bytes of weights against 4 bytes of codes per 32-bit
 * lane): part 0 the codes themselves (8-bit codes, |X| <= 127), part 1
 * and 2 the low and the high byte of 16-bit codes, L = X - 256 * H in
 * [-128, 127] and H = (X + 128) >> 8 (|X| <= ENG_XQ_MAX keeps H within
 * [-127, 127]).
 * Q4 (even_odd): word 2j holds the even elements' bytes of block j
 * (elements 8j .. 8j + 7, one 32-bit weight word per lane, byte b holding
 * elements 8j + 2b and 8j + 2b + 1 in its low and high nibble: 8j, 8j + 2,
 * 8j + 4, 8j + 6), word 2j + 1 the odd ones'. Q8: word j holds elements
 * 4j .. 4j + 3, in the order of block j's weight bytes. */
static void group_quads(const int32_t *t, int gs, bool even_odd, int part, uint32_t *pr)
{
    const __m128i eo = _mm_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15);
    const __m256i half = _mm256_set1_epi32(128);

    for (int i = 0; i < gs; i += 8) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(t + i));
        __m128i c;
        if (part > 0) {
            __m256i h = _mm256_srai_epi32(_mm256_add_epi32(v, half), 8);
            v = part == 2 ? h : _mm256_sub_epi32(v, _mm256_slli_epi32(h, 8));
        }
        /* the saturating packs keep values within a byte's range */
        c = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        c = _mm_packs_epi16(c, _mm_setzero_si128());
        if (even_odd)
            c = _mm_shuffle_epi8(c, eo);
        _mm_storel_epi64((__m128i *)(void *)(pr + i / 4), c);
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

/* The codes X in element order into t, with d and s; each group's words
 * (16-bit codes: pairs, or with split, the two planes of bytes of
 * group_quads, low then high; 8-bit: quads), then q: batch p's lane m
 * meets group 8p + m (mod ng when flat; 0 past the row's groups
 * otherwise), with its d and s in dl, sl when flat. A batch's codes take
 * 8 * group_size * bits / 8 bytes either way; split, the high bytes' plane
 * follows the low bytes' within them. */
static void prep_q(const struct eng_mat *w, const float *x, struct eng_xq *xq, bool split)
{
    static const uint32_t zeros[64];
    int64_t gs = w->group_size, ng = w->cols / gs, batches = lane_batches(w);
    bool q4 = w->dtype == ENG_DT_Q4, i8 = xq->bits == 8;
    int64_t words = i8 ? gs / 4 : gs / 2;                   /* per group */
    int planes = split && !i8 ? 2 : 1, pw = words / planes; /* words per plane */

    for (int64_t g = 0; g < ng; g++) {
        int32_t *t = xq->t + g * gs;
        uint32_t *pr = xq->pairs + g * words;
        eng_avx2_group_codes(x + g * gs, (int)gs, eng_xq_max(xq->bits), t, xq->d + g, xq->s + g);
        if (i8) {
            group_quads(t, (int)gs, true, 0, pr);
        } else if (split) {
            group_quads(t, (int)gs, q4, 1, pr);
            group_quads(t, (int)gs, q4, 2, pr + pw);
        } else {
            group_pairs(q4, t, (int)gs, pr);
        }
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
        for (int pl = 0; pl < planes; pl++)
            for (int64_t c = 0; c < pw; c += 8) {
                const uint32_t *part[8];
                for (int m = 0; m < 8; m++)
                    part[m] = src[m] == zeros ? zeros : src[m] + pl * pw + c;
                transpose8(part, q + 8 * (pl * pw + c));
            }
    }
}

void eng_avx2_prep_q(const struct eng_mat *w, const float *x, struct eng_xq *xq)
{
    prep_q(w, x, xq, false);
}

void eng_avx512_prep_q(const struct eng_mat *w, const float *x, struct eng_xq *xq)
{
    prep_q(w, x, xq, true);
}

#define KERN_Q_DOT_ENTRY eng_avx2_dot_rows_q
#include "engine/kern_q_dot.h"

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
