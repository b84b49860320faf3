/* engine/gemm_q_avx2.c: the prompt path's product for Q4/Q8 weights on
 * AVX2 in integers: y (m tokens, rows) = x (m, k) w^T with the tokens
 * rounded to the same 16-bit codes as decode (eng_avx2_group_codes: per
 * token and group, x ~= d X), so a prompt's logits follow the same math as
 * decoding those tokens one by one (kern_scalar.c, dot_rows_q).
 *
 * Why integers: without AVX-512/VNNI, vpmaddwd (16 multiply-adds, pairs
 * summed into 32-bit lanes) and the vpaddd that accumulates it ran 12 + 12
 * in 8 cycles on Zen 3 (192 multiply-adds), where 12 FMAs (96) take 6: the
 * f32 kernel (gemm_avx2.c) was bound by the FMA ports at about 90% of
 * their peak. The weights' codes (0..15 or 0..255) need no scale inside a
 * group; the group's scale, d and bias are applied once per group.
 *
 * Layouts:
 *  - tokens (eng_gemm_prep_q, once per call): blocks of 16 tokens; in a
 *    block, pair p (elements 2p, 2p + 1) of the 16 tokens is 32 int16 (64
 *    bytes): token t's two codes at 2t, 2t + 1, so one 32-byte load holds
 *    8 tokens' pairs, the vpmaddwd operand. d and s: (block, group, 16).
 *  - weights: RB rows at a time converted from the interleaved layout
 *    (kern_avx2_q.c) to int16 codes in element order in the thread's
 *    buffer, with their scales and biases as f32; a 32-bit broadcast of a
 *    row's pair meets the 8 tokens' pairs.
 * The micro-kernel keeps 6 rows x 16 tokens of int32 sums in 12 registers
 * over one group; at the group's end they are scaled into the f32 block
 * (scale * d and bias * s, in the order of dot_rows_q). Integer sums are
 * exact: at most 128 * 255 * ENG_XQ_MAX < 2^31 per group. On ENG_ISA_AVX512 the
 * driver runs gemm_avx512.c's micro-kernel (12 rows, vpdpwssd) instead, on
 * the same layouts: the same sums, the same bits.
 */
#include "engine/gemm_micro.h"
#include "engine/internal.h"
#include "engine/kern_avx2.h"

#define MR 6           /* weight rows per panel (group6) */
#define NT ENG_GEMM_NT /* tokens per block */
/* Converted rows take at most this many bytes (int16 codes and f32
 * scales/biases: about L2's half), and k is cut in pieces of KC elements
 * (a multiple of every group size) so that a token block's piece (16 KiB)
 * stays in L1 while the panels pass over it. */
#define W_BYTES (256 * 1024)
#define KC      512
#define RB_MAX  192
/* (bench_gemm q4, AVX-512, 128 tokens, 1 thread, 3 alternated runs,
 * integer kernel G mac/s: 8192 x 2048 162-165 -> 174-184, 2048 x 8192
 * 156-161 -> 169-174) */
#define CPAD 32

size_t eng_gemm_xq_bytes(int m, int64_t k)
{
    size_t tok = (size_t)((m + NT - 1) / NT * NT);
    /* codes, then d and s for the most groups (group size 32) */
    return tok * (size_t)k * sizeof(int16_t) + 2 * tok * (size_t)(k / 32) * sizeof(float);
}

int eng_gemm_xq_blocks(const struct eng_gemm_xq *xq)
{
    return (xq->m + NT - 1) / NT;
}

void eng_gemm_xq_init(void *buf, int m, int64_t k, int gs, struct eng_gemm_xq *xq)
{
    int blocks;

    xq->m = m;
    xq->k = k;
    xq->group_size = gs;
    blocks = eng_gemm_xq_blocks(xq);
    xq->q = buf;
    xq->d = (float *)(void *)(xq->q + (size_t)blocks * NT * (size_t)k);
    xq->s = xq->d + (size_t)blocks * NT * (size_t)(k / gs);
}

void eng_gemm_prep_q(const float *x, size_t ldx, const struct eng_gemm_xq *xq, int b0, int b1)
{
    int64_t k = xq->k, gs = xq->group_size, ng = k / gs;
    int m = xq->m;
    int32_t t[128]; /* one group's codes (gs <= 128) */

    for (int b = b0; b < b1; b++) {
        int32_t *qb = (int32_t *)(void *)(xq->q + (size_t)b * NT * (size_t)k); /* pairs */
        float *db = xq->d + (size_t)b * NT * (size_t)ng, *sb = xq->s + (size_t)b * NT * (size_t)ng;
        for (int tt = 0; tt < NT; tt++) {
            bool real = b * NT + tt < m;
            const float *xt = real ? x + (size_t)(b * NT + tt) * ldx : NULL;
            for (int64_t g = 0; g < ng; g++) {
                float d = 0.0f, s = 0.0f;
                if (real)
                    eng_avx2_group_codes(xt + g * gs, (int)gs, ENG_XQ_MAX, t, &d, &s);
                else
                    memset(t, 0, (size_t)gs * sizeof *t);
                db[g * NT + tt] = d;
                sb[g * NT + tt] = s;
                for (int i = 0; i < gs; i += 2) {
                    /* little endian: element 2p in the low half */
                    uint32_t pr = (uint16_t)(int16_t)t[i] | (uint32_t)(uint16_t)(int16_t)t[i + 1]
                                                                << 16;
                    qb[((g * gs + i) / 2) * NT + tt] = (int32_t)pr;
                }
            }
        }
    }
}

/* Word j of each of a full batch's 8 groups (one 32-byte load) into the
 * codes of those groups, out + m * gs + j * per_word for group m. Q4: byte
 * b of a word holds elements 2b (low nibble) and 2b + 1; unpacking the low
 * and high nibbles puts each word's 8 elements in order, words m, m + 1
 * side by side in a 128-bit lane (unpacklo: words 0, 1 | 4, 5; unpackhi:
 * 2, 3 | 6, 7). */
static inline void batch_word_q4(__m256i v, int16_t *out, int64_t gs, int64_t j)
{
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    __m256i e[2] = {_mm256_unpacklo_epi8(lo, hi), _mm256_unpackhi_epi8(lo, hi)};

    for (int u = 0; u < 2; u++)
        for (int half = 0; half < 2; half++) {
            __m256i c = _mm256_cvtepu8_epi16(half ? _mm256_extracti128_si256(e[u], 1)
                                                  : _mm256_castsi256_si128(e[u]));
            int64_t m = 4 * half + 2 * u; /* the first of the two words */
            _mm_storeu_si128((__m128i *)(void *)(out + m * gs + j * 8), _mm256_castsi256_si128(c));
            _mm_storeu_si128((__m128i *)(void *)(out + (m + 1) * gs + j * 8),
                             _mm256_extracti128_si256(c, 1));
        }
}

/* Q8: word m of the load is group m's elements 4j .. 4j + 3. */
static inline void batch_word_q8(__m256i v, int16_t *out, int64_t gs, int64_t j)
{
    for (int half = 0; half < 2; half++) {
        __m256i c =
            _mm256_cvtepu8_epi16(half ? _mm256_extracti128_si256(v, 1) : _mm256_castsi256_si128(v));
        __m128i c0 = _mm256_castsi256_si128(c), c1 = _mm256_extracti128_si256(c, 1);
        int16_t *o = out + 4 * half * gs + j * 4;
        _mm_storel_epi64((__m128i *)(void *)o, c0);
        _mm_storel_epi64((__m128i *)(void *)(o + gs), _mm_unpackhi_epi64(c0, c0));
        _mm_storel_epi64((__m128i *)(void *)(o + 2 * gs), c1);
        _mm_storel_epi64((__m128i *)(void *)(o + 3 * gs), _mm_unpackhi_epi64(c1, c1));
    }
}

/* Groups [a, e) of an interleaved sequence of `total` groups at base
 * (batches of 8 from its start, G bytes a group) into codes (e - a) * gs.
 * Whole batches inside the range convert in place; others (a short last
 * batch, or one that the range cuts) into tmp, copying the lanes in range.
 * Loads of a short batch run past the sequence by up to 28 bytes: into the
 * next row, or the repacked tensor's padding. */
static void seq_to_q16(
    const uint8_t *base, int64_t total, int64_t a, int64_t e, int64_t gs, bool q4, int16_t *codes)
{
    int64_t G = q4 ? gs / 2 : gs;
    int16_t tmp[8 * 128];

    for (int64_t s0 = a / 8 * 8; s0 < e; s0 += 8) {
        int64_t n = batch_groups(total, s0);
        bool whole = n == 8 && s0 >= a && s0 + 8 <= e;
        int16_t *out = whole ? codes + (s0 - a) * gs : tmp;
        for (int64_t j = 0; j < G / 4; j++) {
            __m256i v = LOADU(base + s0 * G + j * n * 4);
            if (q4)
                batch_word_q4(v, out, gs, j);
            else
                batch_word_q8(v, out, gs, j);
        }
        for (int64_t m = 0; !whole && m < n; m++)
            if (s0 + m >= a && s0 + m < e)
                memcpy(codes + (s0 + m - a) * gs, tmp + m * gs, (size_t)gs * sizeof *tmp);
    }
}

/* Rows [r0, r0 + nr) of w (interleaved Q4/Q8, per row or flat) into int16
 * codes (nr rows ldc apart; ldc = k when flat), then their scales and
 * biases as f32 in panels of mr rows: row i's group g at
 * (i / mr) * mr * groups + g * mr + i % mr, so that a micro-kernel reads a
 * group's mr scales from one place. */
static void rows_to_q16(const struct eng_mat *w,
                        int64_t r0,
                        int64_t nr,
                        int64_t ldc,
                        int mr,
                        int16_t *codes,
                        float *sc,
                        float *bi)
{
    int64_t gs = w->group_size, ng = w->cols / gs;
    bool q4 = w->dtype == ENG_DT_Q4;

    if (w->flat)
        seq_to_q16(w->data, w->rows * ng, r0 * ng, (r0 + nr) * ng, gs, q4, codes);
    for (int64_t i = 0; i < nr; i++) {
        const uint8_t *s = (const uint8_t *)w->scales + (size_t)(r0 + i) * w->sb_stride;
        const uint8_t *b = (const uint8_t *)w->biases + (size_t)(r0 + i) * w->sb_stride;
        if (!w->flat)
            seq_to_q16(row_ptr(w, r0 + i), ng, 0, ng, gs, q4, codes + i * ldc);
        size_t at = (size_t)(i / mr * mr * ng + i % mr);
        for (int64_t g = 0; g < ng; g++) {
            sc[at + (size_t)(g * mr)] = eng_sb_load(w->sb_dtype, s, g);
            bi[at + (size_t)(g * mr)] = eng_sb_load(w->sb_dtype, b, g);
        }
    }
}

/* One group of a full panel (6 rows x 16 tokens): a[i][h] = the int32
 * sums of row i with tokens 8h .. 8h + 7 over `pairs` pairs (>= 1).
 * Written in assembly because the 12 sums, the 2 token vectors, the
 * broadcast and the product take all 16 registers: gcc 12 spilled sums
 * or added register copies to every step of the C version (6 rows in C
 * ran at 0.9x the f32 kernel in tests/engine/bench_gemm, 4 rows at 1.4x,
 * this at 1.4-1.5x with less time in the per-group scaling). */
static inline __attribute__((always_inline)) void
group6(const int16_t *w, int64_t ldw, const int16_t *x, int64_t pairs, __m256i a[][2])
{
    const int16_t *w3 = w + 3 * ldw;
    int64_t ld = ldw * (int64_t)sizeof(int16_t);
    __m256i x0, x1, b, t;

    /* clang-format off */
#define ROW(ADDR, A0, A1)                                                                          \
    "vpbroadcastd " ADDR ", %[b]\n\t"                                                              \
    "vpmaddwd %[x0], %[b], %[t]\n\t"                                                               \
    "vpaddd %[t], %[" A0 "], %[" A0 "]\n\t"                                                        \
    "vpmaddwd %[x1], %[b], %[t]\n\t"                                                               \
    "vpaddd %[t], %[" A1 "], %[" A1 "]\n\t"
#define ZERO(A) "vpxor %[" A "], %[" A "], %[" A "]\n\t"
    __asm__(ZERO("a0") ZERO("a1") ZERO("a2") ZERO("a3") ZERO("a4") ZERO("a5")
            ZERO("a6") ZERO("a7") ZERO("a8") ZERO("a9") ZERO("a10") ZERO("a11")
            "1:\n\t"
            "vmovdqu (%[x]), %[x0]\n\t"
            "vmovdqu 32(%[x]), %[x1]\n\t"
            ROW("(%[w])", "a0", "a1")
            ROW("(%[w],%[ld])", "a2", "a3")
            ROW("(%[w],%[ld],2)", "a4", "a5")
            ROW("(%[w3])", "a6", "a7")
            ROW("(%[w3],%[ld])", "a8", "a9")
            ROW("(%[w3],%[ld],2)", "a10", "a11")
            "add $4, %[w]\n\t"
            "add $4, %[w3]\n\t"
            "add $64, %[x]\n\t"
            "dec %[n]\n\t"
            "jnz 1b\n\t"
            : [a0] "=&x"(a[0][0]), [a1] "=&x"(a[0][1]), [a2] "=&x"(a[1][0]), [a3] "=&x"(a[1][1]),
              [a4] "=&x"(a[2][0]), [a5] "=&x"(a[2][1]), [a6] "=&x"(a[3][0]), [a7] "=&x"(a[3][1]),
              [a8] "=&x"(a[4][0]), [a9] "=&x"(a[4][1]), [a10] "=&x"(a[5][0]), [a11] "=&x"(a[5][1]),
              [x0] "=&x"(x0), [x1] "=&x"(x1), [b] "=&x"(b), [t] "=&x"(t),
              [w] "+r"(w), [w3] "+r"(w3), [x] "+r"(x), [n] "+r"(pairs)
            : [ld] "r"(ld)
            : "cc", "memory");
    /* clang-format on */
#undef ROW
#undef ZERO
}

/* c (R rows x 16 tokens, f32) += groups [0, ngp) of the R rows w (codes,
 * stride ldw; scales/biases sc/bi, group g's at g * MR) times the token block's
 * pairs xp and its d/s (dx, sx: 16 per group). R and gs are constants
 * after inlining. */
static inline __attribute__((always_inline)) void micro(const int16_t *w,
                                                        int64_t ldw,
                                                        const float *sc,
                                                        const float *bi,
                                                        const int16_t *xp,
                                                        const float *dx,
                                                        const float *sx,
                                                        int64_t ngp,
                                                        int gs,
                                                        int R,
                                                        float *c)
{
    for (int64_t g = 0; g < ngp; g++) {
        __m256i acc[MR][2];
        const int16_t *xg = xp + g * gs * NT;
        const int16_t *wg = w + g * gs;
        if (R == MR) {
            group6(wg, ldw, xg, gs / 2, acc);
        } else { /* the last panel of a row range */
            for (int i = 0; i < R; i++)
                acc[i][0] = acc[i][1] = _mm256_setzero_si256();
#pragma GCC unroll 2
            for (int p = 0; p < gs / 2; p++) {
                __m256i x0 = LOADU(xg + p * 2 * NT), x1 = LOADU(xg + p * 2 * NT + 16);
                for (int i = 0; i < R; i++) {
                    int32_t pr;
                    memcpy(&pr, wg + (size_t)i * (size_t)ldw + 2 * p, 4);
                    __m256i b = _mm256_set1_epi32(pr);
                    acc[i][0] = _mm256_add_epi32(_mm256_madd_epi16(b, x0), acc[i][0]);
                    acc[i][1] = _mm256_add_epi32(_mm256_madd_epi16(b, x1), acc[i][1]);
                }
            }
        }
        for (int h = 0; h < 2; h++) {
            __m256 d = LOADUF(dx + g * NT + 8 * h), s = LOADUF(sx + g * NT + 8 * h);
            for (int i = 0; i < R; i++) {
                float *ci = c + i * NT + 8 * h;
                __m256 v = _mm256_loadu_ps(ci);
                __m256 sd = _mm256_mul_ps(_mm256_set1_ps(sc[g * MR + i]), d);
                v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i][h]), sd, v);
                v = _mm256_fmadd_ps(_mm256_set1_ps(bi[g * MR + i]), s, v);
                _mm256_storeu_ps(ci, v);
            }
        }
    }
}

#define CALL(GS, N) micro(w, ldw, sc, bi, xp, dx, sx, ngp, GS, N, c)
#define DEFINE_MICRO(GS)                                                                           \
    static void micro_##GS(const int16_t *w, int64_t ldw, const float *sc, const float *bi,        \
                           const int16_t *xp, const float *dx, const float *sx, int64_t ngp,       \
                           int R, float *c)                                                        \
    {                                                                                              \
        if (R == MR)                                                                               \
            CALL(GS, MR);                                                                          \
        else if (R == 1)                                                                           \
            CALL(GS, 1);                                                                           \
        else if (R == 2)                                                                           \
            CALL(GS, 2);                                                                           \
        else if (R == 3)                                                                           \
            CALL(GS, 3);                                                                           \
        else if (R == 4)                                                                           \
            CALL(GS, 4);                                                                           \
        else                                                                                       \
            CALL(GS, 5);                                                                           \
    }

DEFINE_MICRO(32)
DEFINE_MICRO(64)
DEFINE_MICRO(128)
#undef DEFINE_MICRO
#undef CALL

void eng_gemm_q_avx2(const struct eng_mat *w,
                     int64_t r0,
                     int64_t r1,
                     const struct eng_gemm_xq *xq,
                     float *y,
                     size_t ldy,
                     void *wbuf,
                     enum eng_isa isa)
{
    eng_gemm_q_micro *mk = w->group_size == 32   ? micro_32
                           : w->group_size == 64 ? micro_64
                                                 : micro_128;
    int mr = MR;
    int64_t k = w->cols, gs = w->group_size, ng = k / gs, rb;
    int16_t *codes = wbuf;
    float c[RB_MAX * NT]; /* the f32 block: row i at i * NT */

#if defined(ENG_HAVE_AVX512)
    if (isa >= ENG_ISA_AVX512) {
        mk = gs == 32 ? eng_gemm512_q32 : gs == 64 ? eng_gemm512_q64 : eng_gemm512_q128;
        mr = ENG_GEMM512_MR;
    }
#else
    (void)isa;
#endif
    /* rows CPAD codes apart more than k (gemm_avx2.c's WPAD: at k = 2048
     * or 8192, k apart, a panel's rows share one L1 set); flat rows are
     * converted as one sequence, and k is not a multiple of 8 groups */
    int64_t ldc = w->flat ? k : k + CPAD;
    rb = W_BYTES / (2 * ldc + 8 * ng) / mr * mr;
    rb = rb < mr ? mr : rb > RB_MAX ? RB_MAX : rb;
    for (int64_t r = r0; r < r1; r += rb) {
        int64_t nr = r1 - r < rb ? r1 - r : rb;
        /* scales and biases per panel: [group][mr rows], the last panel's
         * rows padded to mr (rb is a multiple of mr, so they still fit) */
        int64_t sb_n = (nr + mr - 1) / mr * mr * ng;
        float *sc = (float *)(void *)(codes + (size_t)nr * (size_t)ldc), *bi = sc + sb_n;
        rows_to_q16(w, r, nr, ldc, mr, codes, sc, bi);
        for (int t0 = 0; t0 < xq->m; t0 += NT) {
            const int16_t *xb = xq->q + (size_t)t0 * (size_t)k;
            const float *db = xq->d + (size_t)t0 * (size_t)ng,
                        *sb = xq->s + (size_t)t0 * (size_t)ng;
            int nt = xq->m - t0 < NT ? xq->m - t0 : NT;
            memset(c, 0, (size_t)nr * NT * sizeof *c);
            for (int64_t k0 = 0; k0 < k; k0 += KC) {
                int64_t kc = k - k0 < KC ? k - k0 : KC, g0 = k0 / gs;
                for (int64_t p = 0; p < nr; p += mr)
                    mk(codes + (size_t)p * (size_t)ldc + (size_t)k0, ldc, sc + p * ng + g0 * mr,
                       bi + p * ng + g0 * mr, xb + (size_t)k0 * NT, db + g0 * NT, sb + g0 * NT,
                       kc / gs, nr - p < mr ? (int)(nr - p) : mr, c + p * NT);
            }
            for (int t = 0; t < nt; t++)
                for (int64_t i = 0; i < nr; i++)
                    y[(size_t)(t0 + t) * ldy + (size_t)(r + i)] = c[i * NT + t];
        }
    }
}
