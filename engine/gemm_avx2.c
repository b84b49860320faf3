/* engine/gemm_avx2.c: the prompt path's matrix product on x86-64 with
 * AVX2/FMA: y (m tokens, rows) = x (m, k) w^T for weight rows of any dtype,
 * converted to f32 six rows at a time. Compiled with AVX2 flags (with the
 * other kernel files); matmul.c calls it when the CPU has them (OpenBLAS
 * otherwise) for float weights, and for Q4/Q8 only in a call that mixes
 * them with other weights or group sizes (gemm_q_avx2.c runs the rest).
 *
 * Why not SGEMM on converted tiles: OpenBLAS packs both operands again on
 * every call, and with tiles small enough to stay in cache that packing was
 * a quarter of the prompt time (perf, Qwen2.5-0.5B 4-bit, 128 tokens). Here
 * x is packed once per layer call (token blocks of 16, k-major: the 16
 * tokens' values at k are 64 contiguous bytes) and the weights are packed
 * by their own conversion: six rows of f32 in a small per-thread buffer.
 * The micro-kernel keeps a 6 x 16 block of y in 12 registers across the
 * whole k loop: per k, 2 loads of x, 6 broadcasts of weights, 12 FMAs.
 * On ENG_ISA_AVX512 the driver runs gemm_avx512.c's micro-kernel instead
 * (12 rows, one zmm register per token block) on the same blocking.
 */
#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "engine/gemm_micro.h"
#include "engine/internal.h"

#define MR 6           /* weight rows per panel */
#define NT ENG_GEMM_NT /* tokens per block */

int eng_gemm_x_blocks(int m)
{
    return (m + NT - 1) / NT;
}

size_t eng_gemm_xp_floats(int m, int64_t k)
{
    return (size_t)eng_gemm_x_blocks(m) * NT * (size_t)k;
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

void eng_gemm_pack_x_blocks(const float *x, size_t ldx, int m, int64_t k, float *xp, int b0, int b1)
{
    int t0 = b0 * NT, t1 = b1 * NT < m ? b1 * NT : m;

    if (t0 < t1)
        eng_gemm_pack_x(x + (size_t)t0 * ldx, ldx, t1 - t0, k, xp + (size_t)t0 * (size_t)k);
}

/* Blocking (Zen 3: 32 KiB L1d, 512 KiB L2 per core):
 *  - RB weight rows are converted at a time into the thread's buffer, at
 *    most W_FLOATS floats (256 KiB: they stay in L2 while every token block
 *    passes over them);
 *  - the k loop is cut into KC-long pieces: a token block's piece of x
 *    (16 x KC floats, 16 KiB) stays in L1 while all of the block's panels
 *    use it; partial sums wait in a small buffer between pieces;
 *  - while a tile's products run, the next tile's stored rows are
 *    prefetched into L2, so that converting them reads L2, not memory.
 *    bf16, 128 tokens, one thread, the two alternated call by call over
 *    256 MiB of weights (with the k loop unrolled by 4): 44-45 -> 45-46
 *    Gmac/s, +1.4% to +2.9% on Qwen2.5-0.5B's and Llama-3.2-1B's shapes
 *    but for 2048 x 8192 (-1.2%, -0.3%), whose 6-row tiles leave little
 *    time to prefetch in. */
#define W_FLOATS (64 * 1024)
#define KC       256
#define RB_MAX   96
/* Rows in the buffer are k + WPAD floats apart: with k a multiple of 256
 * (Llama's 2048 and 8192), k floats apart, a panel's 12 rows fall in one
 * set of the L1 cache (4 KiB per way), which holds 12 lines, x's included.
 * bench_gemm bf16, AVX-512, 128 tokens, 1 thread, 3 alternated runs,
 * G mac/s: 8192 x 2048 85-87 -> 93-95, 2048 x 8192 86-87 -> 93-95,
 * 4864 x 896 (rows 3584 bytes apart already) 94-97 -> 82-99. */
#define WPAD 16

/* c (R rows x 16 tokens) += the R weight rows w (stride ldw) times the
 * 16 packed tokens of xp over kc steps; c starts at 0 when first. At the
 * end of the k loop (last) the block goes to y, transposed: y[t][i]. R is a
 * constant after inlining. */
static inline __attribute__((always_inline)) void micro(const float *w,
                                                        int64_t ldw,
                                                        const float *xp,
                                                        int64_t kc,
                                                        int R,
                                                        float *c,
                                                        bool first,
                                                        bool last,
                                                        float *y,
                                                        size_t ldy,
                                                        int nt)
{
    __m256 acc[MR][2];

    for (int i = 0; i < R; i++) {
        acc[i][0] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(c + i * NT);
        acc[i][1] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(c + i * NT + 8);
    }
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++) {
        __m256 x0 = _mm256_loadu_ps(xp + (size_t)k * NT);
        __m256 x1 = _mm256_loadu_ps(xp + (size_t)k * NT + 8);
        for (int i = 0; i < R; i++) {
            __m256 b = _mm256_broadcast_ss(w + (size_t)i * (size_t)ldw + (size_t)k);
            acc[i][0] = _mm256_fmadd_ps(b, x0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(b, x1, acc[i][1]);
        }
    }
    for (int i = 0; i < R; i++) {
        _mm256_storeu_ps(c + i * NT, acc[i][0]);
        _mm256_storeu_ps(c + i * NT + 8, acc[i][1]);
    }
    if (last)
        for (int t = 0; t < nt; t++)
            for (int i = 0; i < R; i++)
                y[(size_t)t * ldy + (size_t)i] = c[i * NT + t];
}

static void micro_r(const float *w,
                    int64_t ldw,
                    const float *xp,
                    int64_t kc,
                    int R,
                    float *c,
                    bool first,
                    bool last,
                    float *y,
                    size_t ldy,
                    int nt)
{
    switch (R) {
#define CASE(N)                                                                                    \
    case N:                                                                                        \
        micro(w, ldw, xp, kc, N, c, first, last, y, ldy, nt);                                      \
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

void eng_gemm_avx2(const struct eng_mat *w,
                   const struct eng_mat_ops *ops,
                   int64_t r0,
                   int64_t r1,
                   const float *xp,
                   int m,
                   float *y,
                   size_t ldy,
                   float *wbuf,
                   enum eng_isa isa)
{
    eng_gemm_f32_micro *mk = micro_r;
    int mr = MR;
    int64_t k = w->cols, rb;
    float c[RB_MAX * NT]; /* the panels' sums: row i at i * NT */

#if defined(ENG_HAVE_AVX512)
    if (isa >= ENG_ISA_AVX512) {
        mk = eng_gemm512_f32;
        mr = ENG_GEMM512_MR;
    }
#else
    (void)isa;
#endif
    int64_t ldw = k + WPAD;
    rb = W_FLOATS / ldw / mr * mr;
    rb = rb < mr ? mr : rb > RB_MAX ? RB_MAX : rb;
    for (int64_t r = r0; r < r1; r += rb) {
        int64_t nr = r1 - r < rb ? r1 - r : rb;
        /* the next tile's stored rows, prefetched into L2 a few lines per
         * micro-kernel call over this tile's products */
        int64_t next = w->rows - (r + nr) < rb ? w->rows - (r + nr) : rb;
        const char *pf = (const char *)w->data + (size_t)(r + nr) * w->row_stride;
        size_t pf_lines = (size_t)next * w->row_stride / 64;
        size_t calls = (size_t)eng_gemm_x_blocks(m) * (size_t)((k + KC - 1) / KC) *
                       (size_t)((nr + mr - 1) / mr);
        size_t per_call = (pf_lines + calls - 1) / calls;

        for (int64_t i = 0; i < nr; i++)
            ops->rows_to_f32(w, r + i, r + i + 1, wbuf + (size_t)i * (size_t)ldw);
        for (int t0 = 0; t0 < m; t0 += NT) {
            const float *xb = xp + (size_t)t0 * (size_t)k;
            int nt = m - t0 < NT ? m - t0 : NT;
            for (int64_t k0 = 0; k0 < k; k0 += KC) {
                int64_t kc = k - k0 < KC ? k - k0 : KC;
                for (int64_t p = 0; p < nr; p += mr) {
                    for (size_t i = 0; i < per_call && pf_lines > 0; i++, pf_lines--, pf += 64)
                        _mm_prefetch(pf, _MM_HINT_T1);
                    mk(wbuf + (size_t)p * (size_t)ldw + (size_t)k0, ldw, xb + (size_t)k0 * NT, kc,
                       nr - p < mr ? (int)(nr - p) : mr, c + p * NT, k0 == 0, k0 + kc == k,
                       y + (size_t)t0 * ldy + (size_t)(r + p), ldy, nt);
                }
            }
        }
    }
}
