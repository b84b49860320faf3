/* engine/gemm_avx512.c: the prompt products' micro-kernels with AVX-512 F
 * and VNNI (gemm_micro.h; the drivers in gemm_avx2.c and gemm_q_avx2.c
 * call them where the CPU has ENG_ISA_AVX512).
 *
 * A token block (16 tokens) is one zmm register: 16 f32 values of x at one
 * k, or 16 tokens' pairs of int16 codes. Each weight meets it in one
 * instruction with the weight broadcast from memory ({1to16}): vfmadd231ps
 * (16 multiply-adds) or vpdpwssd (32 multiply-adds, pairs summed into the
 * 32-bit lanes), where AVX2 needs a broadcast and two FMAs, or a
 * broadcast, two vpmaddwd and two vpaddd. MR = 12 rows: the integer
 * kernel keeps 12 int32 sums and the 12 rows' f32 results in registers
 * over a whole piece of k (25 of the 32 registers with x), so c is read
 * and written once per piece, not once per group.
 */
#include <immintrin.h>
#include <string.h>

#include "engine/gemm_micro.h"

#define MR     ENG_GEMM512_MR
#define NT     ENG_GEMM_NT
#define INLINE static inline __attribute__((always_inline))

INLINE void f32_micro(const float *w,
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
    __m512 acc[MR];

#pragma GCC unroll 12
    for (int i = 0; i < R; i++)
        acc[i] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + i * NT);
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; k++) {
        __m512 x = _mm512_loadu_ps(xp + (size_t)k * NT);
#pragma GCC unroll 12
        for (int i = 0; i < R; i++)
            acc[i] =
                _mm512_fmadd_ps(_mm512_set1_ps(w[(size_t)i * (size_t)ldw + (size_t)k]), x, acc[i]);
    }
#pragma GCC unroll 12
    for (int i = 0; i < R; i++)
        _mm512_storeu_ps(c + i * NT, acc[i]);
    if (last)
        for (int t = 0; t < nt; t++)
#pragma GCC unroll 12
            for (int i = 0; i < R; i++)
                y[(size_t)t * ldy + (size_t)i] = c[i * NT + t];
}

void eng_gemm512_f32(const float *w,
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
        f32_micro(w, ldw, xp, kc, N, c, first, last, y, ldy, nt);                                  \
        break;
        CASE(1)
        CASE(2)
        CASE(3)
        CASE(4)
        CASE(5)
        CASE(6)
        CASE(7)
        CASE(8)
        CASE(9)
        CASE(10)
        CASE(11)
        CASE(12)
#undef CASE
    default:
        break;
    }
}

/* One group of a full panel: a[i] = the int32 sums of row i with the 16
 * tokens over 2 * `steps` pairs (steps >= 1: two pairs a turn). In
 * assembly for the reason of gemm_q_avx2.c's group6: from C, gcc 12
 * broadcast each weight pair into a register of its own, kept row offsets
 * on the stack and, unrolled, copied accumulators around every vpdpwssd.
 * Here each pair is a {1to16} memory operand: 12 vpdpwssd per load of x. */
INLINE void group12(const int16_t *w, int64_t ldw, const int16_t *x, int64_t steps, __m512i a[MR])
{
    const int16_t *w3 = w + 3 * ldw, *w6 = w + 6 * ldw, *w9 = w + 9 * ldw;
    int64_t ld = ldw * (int64_t)sizeof(int16_t);
    __m512i xv;

    /* clang-format off */
#define ROW(ADDR, A) "vpdpwssd " ADDR "%{1to16%}, %[xv], %[" A "]\n\t"
#define ROWS3(D, B, A0, A1, A2)                                                                    \
    ROW(D "(%[" B "])", A0) ROW(D "(%[" B "],%[ld])", A1) ROW(D "(%[" B "],%[ld],2)", A2)
#define ZERO(A) "vpxord %[" A "], %[" A "], %[" A "]\n\t"
    __asm__(ZERO("a0") ZERO("a1") ZERO("a2") ZERO("a3") ZERO("a4") ZERO("a5")
            ZERO("a6") ZERO("a7") ZERO("a8") ZERO("a9") ZERO("a10") ZERO("a11")
            "1:\n\t"
            "vmovdqu64 (%[x]), %[xv]\n\t"
            ROWS3("", "w", "a0", "a1", "a2")
            ROWS3("", "w3", "a3", "a4", "a5")
            ROWS3("", "w6", "a6", "a7", "a8")
            ROWS3("", "w9", "a9", "a10", "a11")
            "vmovdqu64 64(%[x]), %[xv]\n\t"
            ROWS3("4", "w", "a0", "a1", "a2")
            ROWS3("4", "w3", "a3", "a4", "a5")
            ROWS3("4", "w6", "a6", "a7", "a8")
            ROWS3("4", "w9", "a9", "a10", "a11")
            "add $8, %[w]\n\t"
            "add $8, %[w3]\n\t"
            "add $8, %[w6]\n\t"
            "add $8, %[w9]\n\t"
            "add $128, %[x]\n\t"
            "dec %[n]\n\t"
            "jnz 1b\n\t"
            : [a0] "=&v"(a[0]), [a1] "=&v"(a[1]), [a2] "=&v"(a[2]), [a3] "=&v"(a[3]),
              [a4] "=&v"(a[4]), [a5] "=&v"(a[5]), [a6] "=&v"(a[6]), [a7] "=&v"(a[7]),
              [a8] "=&v"(a[8]), [a9] "=&v"(a[9]), [a10] "=&v"(a[10]), [a11] "=&v"(a[11]),
              [xv] "=&v"(xv), [w] "+r"(w), [w3] "+r"(w3), [w6] "+r"(w6), [w9] "+r"(w9),
              [x] "+r"(x), [n] "+r"(steps)
            : [ld] "r"(ld)
            : "cc", "memory");
    /* clang-format on */
#undef ROWS3
#undef ROW
#undef ZERO
}

INLINE void q_micro(const int16_t *w,
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
    __m512 f[MR];

#pragma GCC unroll 12
    for (int i = 0; i < R; i++)
        f[i] = _mm512_loadu_ps(c + i * NT);
    for (int64_t g = 0; g < ngp; g++) {
        const int16_t *xg = xp + g * gs * NT, *wg = w + g * gs;
        __m512i a[MR];
        __m512 d = _mm512_loadu_ps(dx + g * NT), s = _mm512_loadu_ps(sx + g * NT);
        if (R == MR) {
            group12(wg, ldw, xg, gs / 4, a);
        } else { /* a matrix's last panel */
#pragma GCC unroll 12
            for (int i = 0; i < R; i++)
                a[i] = _mm512_setzero_si512();
            for (int p = 0; p < gs / 2; p++) {
                __m512i x = _mm512_loadu_si512((const void *)(xg + p * 2 * NT));
#pragma GCC unroll 12
                for (int i = 0; i < R; i++) {
                    int32_t pr;
                    memcpy(&pr, wg + (size_t)i * (size_t)ldw + 2 * p, 4);
                    a[i] = _mm512_dpwssd_epi32(a[i], _mm512_set1_epi32(pr), x);
                }
            }
        }
#pragma GCC unroll 12
        for (int i = 0; i < R; i++) {
            __m512 sd = _mm512_mul_ps(_mm512_set1_ps(sc[g * MR + i]), d);
            f[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a[i]), sd, f[i]);
            f[i] = _mm512_fmadd_ps(_mm512_set1_ps(bi[g * MR + i]), s, f[i]);
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < R; i++)
        _mm512_storeu_ps(c + i * NT, f[i]);
}

#define DEFINE_Q(GS)                                                                               \
    void eng_gemm512_q##GS(const int16_t *w, int64_t ldw, const float *sc, const float *bi,        \
                           const int16_t *xp, const float *dx, const float *sx, int64_t ngp,       \
                           int R, float *c)                                                        \
    {                                                                                              \
        switch (R) {                                                                               \
        case 1:                                                                                    \
            q_micro(w, ldw, sc, bi, xp, dx, sx, ngp, GS, 1, c);                                    \
            break;                                                                                 \
        case 2:                                                                                    \
            q_micro(w, ldw, sc, bi, xp, dx, sx, ngp, GS, 2, c);                                    \
            break;                                                                                 \
        case 3:                                                                                    \
            q_micro(w, ldw, sc, bi, xp, dx, sx, ngp, GS, 3, c);                                    \
            break;                                                                                 \
        case 4:                                                                                    \
            q_micro(w, ldw, sc, bi, xp, dx, sx, ngp, GS, 4, c);                                    \
            break;                                                                                 \
        case 5:                                                                                    \
            q_micro(w, ldw, sc, bi, xp, dx, sx, ngp, GS, 5, c);                                    \
            break;                                                                                 \
        case 6:                                                                                    \
            q_micro(w, ldw, sc, bi, xp, dx, sx, ngp, GS, 6, c);                                    \
            break;                                                                                 \
        case 7:                                                                                    \
            q_micro(w, ldw, sc, bi, xp, dx, sx, ngp, GS, 7, c);                                    \
            break;                                                                                 \
        case 8:                                                                                    \
            q_micro(w, ldw, sc, bi, xp, dx, sx, ngp, GS, 8, c);                                    \
            break;                                                                                 \
        case 9:                                                                                    \
            q_micro(w, ldw, sc, bi, xp, dx, sx, ngp, GS, 9, c);                                    \
            break;                                                                                 \
        case 10:                                                                                   \
            q_micro(w, ldw, sc, bi, xp, dx, sx, ngp, GS, 10, c);                                   \
            break;                                                                                 \
        case 11:                                                                                   \
            q_micro(w, ldw, sc, bi, xp, dx, sx, ngp, GS, 11, c);                                   \
            break;                                                                                 \
        case 12:                                                                                   \
            q_micro(w, ldw, sc, bi, xp, dx, sx, ngp, GS, 12, c);                                   \
            break;                                                                                 \
        default:                                                                                   \
            break;                                                                                 \
        }                                                                                          \
    }
DEFINE_Q(32)
DEFINE_Q(64)
DEFINE_Q(128)
#undef DEFINE_Q
