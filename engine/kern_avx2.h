/* engine/kern_avx2.h: what the AVX2 kernel files share (compiled with
 * -mavx2 -mfma -mf16c, like them, and kern_avx512_q.c with AVX-512 on top;
 * nothing else may include it): load and reduction helpers, and the
 * quantized kernels of kern_avx2_q.c that the tables in kern_avx2.c (and
 * the integer prompt product, gemm_q_avx2.c) use. */
#ifndef ENG_KERN_AVX2_H
#define ENG_KERN_AVX2_H

#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "engine/kern_common.h"

/* Two streams. Decode kernels walk their range of rows as two streams:
 * its two halves, row (or flat batch) i of each in turn, a few hundred
 * bytes from one then from the other. A core keeps more of its reads in
 * flight when they come from two places close together in its
 * instruction window (one stream's next lines are missed while the other
 * computes); the hardware prefetcher follows both. 4 streams did worse
 * than 2 (the scales and biases add their own streams), and turns of 2 KiB
 * or more gained nothing. The software prefetch these kernels had (1 to 16
 * KiB ahead, measured alike) cost 6% with two streams on the machine of
 * these figures; on a later one (AVX-512, a core reading 40 GB/s) the
 * quantized kernels (kern_q_dot.h) and the float ones (kern_avx2.c,
 * PF_DIST) prefetch again.
 * bench_kernels, 1 thread, mean of 12-16 alternated rounds, kernel / read
 * bandwidth: Q8 896 columns (flat) 0.73 -> 0.94, Q8 2048 columns 0.79 ->
 * 0.89; Q4 (vpmaddwd-bound on one core) 0.69 -> 0.72. */

/* The specializations below must be inlined for the compiler to fold the
 * dtype and group size into straight-line code. */
#define INLINE static inline __attribute__((always_inline))

#define LOADU(p)  _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define LOADUF(p) _mm256_loadu_ps((const float *)(p))

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

/* ---- Q4/Q8 in the interleaved layout (kern_avx2_q.c) */

/* Groups in the batch starting at group g0 of a sequence of ng groups. */
static inline int64_t batch_groups(int64_t ng, int64_t g0)
{
    return ng - g0 < 8 ? ng - g0 : 8;
}

/* The batch holding group g of row r (its first byte), the batch's group
 * count *n and g's lane *m in it: batches of 8 run from the start of each
 * row, or of the whole matrix when it is flat. Word j of the group is at
 * batch + (j * n + m) * 4. */
static inline const uint8_t *
q_batch(const struct eng_mat *w, int64_t r, int64_t g, int64_t *n, int64_t *m)
{
    int64_t ng = w->cols / w->group_size, G = w->group_size * eng_q_bits(w->dtype) / 8;
    int64_t s = w->flat ? r * ng + g : g, total = w->flat ? w->rows * ng : ng, s0 = s / 8 * 8;
    const uint8_t *base = w->flat ? (const uint8_t *)w->data : row_ptr(w, r);

    *n = batch_groups(total, s0);
    *m = s - s0;
    return base + s0 * G;
}

/* The number of distinct batches of a matrix's rows (each a pattern of 8
 * groups): per-row batches, or a flat matrix's period ng / gcd(ng, 8). */
static inline int64_t lane_batches(const struct eng_mat *w)
{
    int64_t ng = w->cols / w->group_size, gcd = ng % 8 == 0 ? 8 : ng % 4 == 0 ? 4 : ng % 2 ? 1 : 2;
    return w->flat ? ng / gcd : (ng + 7) / 8;
}

void eng_avx2_repack_q(const struct eng_mat *w, void *dst, struct eng_mat *out);
void eng_avx2_prep_q(const struct eng_mat *w, const float *x, struct eng_xq *xq);
void eng_avx2_group_codes(const float *xg, int gs, int code_max, int32_t *t, float *d, float *s);
void eng_avx2_dot_rows_q(const struct eng_mat *w, const void *xp, float *y, int64_t r0, int64_t r1);
/* The same products with AVX-512 (F, BW, VL) and VNNI (kern_avx512_q.c;
 * only for CPUs that have them), bit-identical to eng_avx2_dot_rows_q, on
 * activations from eng_avx512_prep_q: the same codes, d and s, but 16-bit
 * codes laid out as two planes of bytes (kern_q_dot.h). Compiled with
 * AVX2 only, it may be called anywhere; only the AVX-512 products read
 * its layout. */
void eng_avx512_prep_q(const struct eng_mat *w, const float *x, struct eng_xq *xq);
void eng_avx512_dot_rows_q(
    const struct eng_mat *w, const void *xp, float *y, int64_t r0, int64_t r1);
void eng_avx2_rows_to_f32_q(const struct eng_mat *w, int64_t r0, int64_t r1, float *dst);

#endif
