/* engine/gemm_avx2.c: the prompt path's matrix product on x86-64 with
 * AVX2/FMA: y (m tokens, rows) = x (m, k) w^T for weight rows of any dtype,
 * converted to f32 six rows at a time. Compiled with AVX2 flags for this
 * file only; matmul.c calls it when the CPU has them (OpenBLAS otherwise).
 *
 * Why not SGEMM on converted tiles: OpenBLAS packs both operands again on
 * every call, and with tiles small enough to stay in cache that packing was
 * a quarter of the prompt time (perf, Qwen2.5-0.5B 4-bit, 128 tokens). Here
 * x is packed once per layer call (token blocks of 16, k-major: the 16
 * tokens' values at k are 64 contiguous bytes) and the weights are packed
 * by their own conversion: six rows of f32 in a small per-thread buffer.
 * The micro-kernel keeps a 6 x 16 block of y in 12 registers across the
 * whole k loop: per k, 2 loads of x, 6 broadcasts of weights, 12 FMAs.
 */
#include <immintrin.h>
#include <string.h>

#include "engine/internal.h"

#define MR 6  /* weight rows per panel */
#define NT 16 /* tokens per block */

size_t eng_gemm_xp_floats(int m, int64_t k)
{
    return (size_t)((m + NT - 1) / NT * NT) * (size_t)k;
}

void eng_gemm_pack_x(const float *x, size_t ldx, int m, int64_t k, float *xp)
{
    for (int t0 = 0; t0 < m; t0 += NT) {
        float *blk = xp + (size_t)t0 * (size_t)k;
        int nt = m - t0 < NT ? m - t0 : NT;
        for (int64_t c = 0; c < k; c++) {
            float *dst = blk + (size_t)c * NT;
            for (int t = 0; t < nt; t++)
                dst[t] = x[(size_t)(t0 + t) * ldx + (size_t)c];
            for (int t = nt; t < NT; t++)
                dst[t] = 0.0f;
        }
    }
}

/* y[t][r0 + i] for i < R, t < nt: the R rows of w (f32, stride k) times the
 * 16 packed tokens of xp. R is a constant after inlining. */
static inline __attribute__((always_inline)) void
micro(const float *w, int64_t k, const float *xp, int R, float *y, size_t ldy, int nt)
{
    __m256 acc[MR][2];
    float out[MR][NT];

    for (int i = 0; i < R; i++)
        acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int64_t c = 0; c < k; c++) {
        __m256 x0 = _mm256_loadu_ps(xp + (size_t)c * NT);
        __m256 x1 = _mm256_loadu_ps(xp + (size_t)c * NT + 8);
        for (int i = 0; i < R; i++) {
            __m256 b = _mm256_broadcast_ss(w + (size_t)i * (size_t)k + (size_t)c);
            acc[i][0] = _mm256_fmadd_ps(b, x0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(b, x1, acc[i][1]);
        }
    }
    for (int i = 0; i < R; i++) {
        _mm256_storeu_ps(out[i], acc[i][0]);
        _mm256_storeu_ps(out[i] + 8, acc[i][1]);
    }
    for (int t = 0; t < nt; t++)
        for (int i = 0; i < R; i++)
            y[(size_t)t * ldy + (size_t)i] = out[i][t];
}

static void panel(const float *w, int64_t k, const float *xp, int m, int R, float *y, size_t ldy)
{
    for (int t0 = 0; t0 < m; t0 += NT) {
        const float *blk = xp + (size_t)t0 * (size_t)k;
        float *yb = y + (size_t)t0 * ldy;
        int nt = m - t0 < NT ? m - t0 : NT;
        switch (R) {
#define CASE(N)                                                                                    \
    case N:                                                                                        \
        micro(w, k, blk, N, yb, ldy, nt);                                                          \
        break;
            CASE(1)
            CASE(2)
            CASE(3)
            CASE(4)
            CASE(5)
            CASE(6)
#undef CASE
        default:
            break;
        }
    }
}

void eng_gemm_avx2(const struct eng_mat *w,
                   const struct eng_mat_ops *ops,
                   int64_t r0,
                   int64_t r1,
                   const float *xp,
                   int m,
                   float *y,
                   size_t ldy,
                   float *wbuf)
{
    for (int64_t r = r0; r < r1; r += MR) {
        int R = r1 - r < MR ? (int)(r1 - r) : MR;
        ops->rows_to_f32(w, r, r + R, wbuf);
        panel(wbuf, w->cols, xp, m, R, y + r, ldy);
    }
}
