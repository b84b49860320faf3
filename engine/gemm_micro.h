/* engine/gemm_micro.h: the micro-kernels of the prompt products, shared by
 * their drivers (gemm_avx2.c, gemm_q_avx2.c: blocking, weight conversion,
 * token blocks) and the files that compile them (those two for AVX2,
 * gemm_avx512.c for AVX-512). Private to those files.
 *
 * A micro-kernel computes one panel: R <= its MR weight rows times one
 * token block of ENG_GEMM_NT tokens, into c (R rows x NT, f32, row i at
 * i * NT), over one piece of k. Every level accumulates each output in the
 * same order with the same operations, so AVX-512 gives the AVX2 bits.
 */
#ifndef ENG_GEMM_MICRO_H
#define ENG_GEMM_MICRO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENG_GEMM_NT 16 /* tokens per block */

/* f32 (gemm_avx2.c): c (R x NT) = (first ? 0 : c) + the R rows w (stride
 * ldw floats) times the block's packed tokens xp (k-major, NT a step) over
 * kc steps. When last, also y[t][i] = c[i][t] for the nt real tokens. */
typedef void eng_gemm_f32_micro(const float *w,
                                int64_t ldw,
                                const float *xp,
                                int64_t kc,
                                int R,
                                float *c,
                                bool first,
                                bool last,
                                float *y,
                                size_t ldy,
                                int nt);

/* Integer (gemm_q_avx2.c): c += groups [0, ngp) of the R rows w (int16
 * codes, stride ldw; f32 scales sc and biases bi per panel, group g's
 * rows at g * MR, MR the micro-kernel's panel rows) times the
 * block's pairs xp (pair p of the 16 tokens at p * 32) with d and s (dx,
 * sx: 16 per group): per group, c = fma(sum, sc * d, c), then
 * c = fma(bi, s, c). One entry per group size (32, 64, 128). */
typedef void eng_gemm_q_micro(const int16_t *w,
                              int64_t ldw,
                              const float *sc,
                              const float *bi,
                              const int16_t *xp,
                              const float *dx,
                              const float *sx,
                              int64_t ngp,
                              int R,
                              float *c);

#if defined(ENG_HAVE_AVX512)
/* gemm_avx512.c: AVX-512 F and VNNI; a token block is one zmm register. */
#define ENG_GEMM512_MR 12
eng_gemm_f32_micro eng_gemm512_f32;
eng_gemm_q_micro eng_gemm512_q32, eng_gemm512_q64, eng_gemm512_q128;
#endif

#endif
