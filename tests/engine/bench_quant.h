/* tests/engine/bench_quant.h: the synthetic scales and biases of the
 * timing harnesses (bench_gemm, bench_kernels): group size 64, bf16, every
 * scale and bias the same small value. */
#ifndef TESTS_ENGINE_BENCH_QUANT_H
#define TESTS_ENGINE_BENCH_QUANT_H

#include <stdint.h>

#include "engine/internal.h"

/* sb (2 * m->rows * m->cols / 64 bf16 values, the caller's) filled, its
 * first half made m's scales and its second half m's biases. */
static inline void bench_attach_sb(struct eng_mat *m, uint8_t *sb)
{
    size_t sb_bytes = (size_t)m->cols / 64 * 2;

    for (size_t i = 0; i < (size_t)m->rows * sb_bytes * 2; i++)
        sb[i] = (uint8_t)(i & 1 ? 0x3c : 0x00);
    m->group_size = 64;
    m->sb_dtype = ENG_DT_BF16;
    m->scales = sb;
    m->biases = sb + (size_t)m->rows * sb_bytes;
    m->sb_stride = sb_bytes;
}

#endif
