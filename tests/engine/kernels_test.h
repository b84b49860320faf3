/* tests/engine/kernels_test.h: what the kernel tests (test_kernels.c for
 * the float dtypes, attention and the products, test_kernels_q.c for
 * MLX affine Q4/Q8) share: deterministic random numbers, test matrices,
 * and a matrix and its input as an ISA's kernels read them. Functions are
 * static inline: each file uses its own part. */
#ifndef TESTS_ENGINE_KERNELS_TEST_H
#define TESTS_ENGINE_KERNELS_TEST_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"
#include "engine/kern_common.h"
#include "tests/lib/test.h"

#define U 0x1.0p-24

/* ---- deterministic random numbers (xorshift64*) */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static inline uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* Uniform in [-1, 1). */
static inline float rndf(void)
{
    return (float)((double)(rnd() >> 11) * 0x1.0p-52 - 1.0);
}

/* Activations: mostly small, some outliers, an all-zero group now and then. */
static inline void fill_x(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = rndf() * (rnd() % 16 == 0 ? 20.0f : 1.0f);
    if (n >= 64 && rnd() % 2)
        memset(x + 32, 0, 32 * sizeof *x);
}

/* (an ISA this CPU or build lacks has no kernels: eng_mat_ops_isa NULL) */
static const enum eng_isa isas[] = {ENG_ISA_AVX2, ENG_ISA_AVX512};

static inline void *xq_new(int64_t cols, int gs, enum eng_dtype dt, int bits, struct eng_xq **xq)
{
    void *buf = aligned_alloc(64, (eng_xq_bytes(cols, gs) + 63) / 64 * 64);
    assert_non_null(buf);
    /* garbage first: prep must write everything the kernels read */
    memset(buf, 0xA5, eng_xq_bytes(cols, gs));
    *xq = eng_xq_init(buf, cols, gs, dt, bits);
    return buf;
}

/* The matrix as an ISA's kernels read it: repacked into its own layout when
 * it has one (*buf is then returned, the caller frees it), else as is. */
static inline struct eng_mat
mat_for(const struct eng_mat_ops *ops, const struct eng_mat *m, void **buf)
{
    struct eng_mat out = *m;
    *buf = NULL;
    if (ops->repack) {
        *buf = malloc((size_t)m->rows * m->row_stride + ENG_REPACK_PAD);
        assert_non_null(*buf);
        ops->repack(m, *buf, &out);
        assert_true(out.interleaved);
    }
    return out;
}

/* x as ops->dot_rows reads m's rows with it: x itself, or prepared (the
 * kernel's codes of `bits`, or a reordered x) in a new *buf the caller
 * frees (NULL when there is none). */
static inline const void *
x_for(const struct eng_mat_ops *ops, const struct eng_mat *m, const float *x, int bits, void **buf)
{
    struct eng_xq *xq;

    *buf = NULL;
    if (!ops->prep)
        return x;
    *buf = xq_new(m->cols, m->group_size, m->dtype, bits, &xq);
    ops->prep(m, x, xq);
    return xq;
}

static inline void encode(enum eng_dtype dt, float v, uint8_t *dst)
{
    if (dt == ENG_DT_F32) {
        memcpy(dst, &v, 4);
    } else {
        uint16_t h = dt == ENG_DT_BF16 ? eng_f32_to_bf16(v) : eng_f32_to_f16(v);
        memcpy(dst, &h, 2);
    }
}

struct qmat {
    struct eng_mat m;
    uint8_t *codes;  /* (rows, cols) unpacked, for the exact reference */
    uint8_t *packed; /* (rows, row_stride) */
    uint8_t *sc, *bi;
};

static inline void
qmat_make(struct qmat *q, enum eng_dtype dt, int gs, enum eng_dtype sb, int64_t rows, int64_t cols)
{
    int bits = eng_q_bits(dt);
    int64_t ng = cols / gs;
    size_t es = eng_dtype_info(sb)->size;
    float *w = malloc((size_t)gs * sizeof *w);

    memset(q, 0, sizeof *q);
    q->codes = malloc((size_t)(rows * cols));
    q->packed = malloc((size_t)(rows * cols * bits / 8));
    q->sc = malloc((size_t)(rows * ng) * es);
    q->bi = malloc((size_t)(rows * ng) * es);
    assert_true(w && q->codes && q->packed && q->sc && q->bi);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t g = 0; g < ng; g++) {
            float s, b;
            for (int i = 0; i < gs; i++)
                w[i] = rndf() * 0.05f + (g % 3 == 0 ? 0.03f : 0.0f);
            eng_quant_group(w, gs, bits, sb, q->codes + r * cols + g * gs, &s, &b);
            encode(sb, s, q->sc + (size_t)(r * ng + g) * es);
            encode(sb, b, q->bi + (size_t)(r * ng + g) * es);
        }
        eng_quant_pack(q->codes + r * cols, cols, bits, q->packed + r * cols * bits / 8);
    }
    q->m = (struct eng_mat){.dtype = dt,
                            .rows = rows,
                            .cols = cols,
                            .row_stride = (size_t)(cols * bits / 8),
                            .data = q->packed,
                            .group_size = gs,
                            .sb_dtype = sb,
                            .scales = q->sc,
                            .biases = q->bi,
                            .sb_stride = (size_t)ng * es};
    free(w);
}

static inline void qmat_free(struct qmat *q)
{
    free(q->codes);
    free(q->packed);
    free(q->sc);
    free(q->bi);
}

/* A float (f32, f16, bf16) matrix of small random weights, unpadded rows;
 * *buf holds them (the caller frees it). */
static inline struct eng_mat fmat_make(enum eng_dtype dt, int64_t rows, int64_t cols, uint8_t **buf)
{
    size_t es = eng_dtype_info(dt)->size;

    *buf = malloc((size_t)(rows * cols) * es);
    assert_non_null(*buf);
    for (int64_t i = 0; i < rows * cols; i++)
        encode(dt, rndf() * 0.1f, *buf + (size_t)i * es);
    return (struct eng_mat){
        .dtype = dt, .rows = rows, .cols = cols, .row_stride = (size_t)cols * es, .data = *buf};
}

#endif
