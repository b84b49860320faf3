/* engine/kern_common.h: element conversions (f16/bf16 <-> f32) and the code
 * layout of affine-quantized rows, shared by the scalar and the AVX2
 * kernels, the quantizer and the writer. Internal to engine/. Everything
 * here is static inline: the AVX2 file is compiled with other flags, and a
 * shared out-of-line copy could end up compiled for the wrong CPU.
 */
#ifndef ENG_KERN_COMMON_H
#define ENG_KERN_COMMON_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engine/internal.h"

/* Activation codes of the Q4/Q8 decode kernels: per group, x ~= d * X with
 * |X| <= ENG_XQ_MAX: 16-bit multiplies (vpmaddwd) take them, and so does
 * the AVX-512 build's split of each code into two signed bytes,
 * X = 256 * H + L with L, H in [-128, 127] (vpdpbusd: kern_q_dot.h), which
 * 127 * 256 + 127 is the largest to allow (32767 would need H = 128). A
 * group's sums (128 codes of at most 255 times it) fit in an int32. */
#define ENG_XQ_MAX 32639
/* The same with 8-bit codes (eng_xq.bits 8, Q4 only): |X| <= 127, so that
 * vpmaddubsw's pairs of 15 * 127 never saturate its 16-bit sums. */
#define ENG_XQ8_MAX 127

static inline int eng_xq_max(int bits)
{
    return bits == 8 ? ENG_XQ8_MAX : ENG_XQ_MAX;
}

static inline float eng_f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t eng_f32_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* bf16 is the upper half of an f32. */
static inline float eng_bf16_to_f32(uint16_t h)
{
    return eng_f32_from_bits((uint32_t)h << 16);
}

/* IEEE half -> float without branches (shift exponent/mantissa into place
 * and rescale by 2^-112, with a "magic bias" path for subnormals); exact for
 * every input, inf and NaN included. */
static inline float eng_f16_to_f32(uint16_t h)
{
    uint32_t w = (uint32_t)h << 16;
    uint32_t sign = w & 0x80000000u;
    uint32_t two_w = w + w;
    float normal = eng_f32_from_bits((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    float denormal = eng_f32_from_bits((two_w >> 17) | (126u << 23)) - 0.5f;
    uint32_t is_denormal = -(uint32_t)(two_w < (1u << 27)); /* all ones or zero */
    uint32_t bits =
        (eng_f32_to_bits(denormal) & is_denormal) | (eng_f32_to_bits(normal) & ~is_denormal);
    return eng_f32_from_bits(sign | bits);
}

/* float -> bf16, round to nearest even (NaN stays a quiet NaN), as torch
 * and mlx round. */
static inline uint16_t eng_f32_to_bf16(float f)
{
    uint32_t u = eng_f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* float -> IEEE half, round to nearest even, overflow to inf. */
static inline uint16_t eng_f32_to_f16(float f)
{
    uint32_t u = eng_f32_to_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    uint32_t e, m, r;

    if (a > 0x7f800000u) /* NaN */
        return (uint16_t)(sign | 0x7e00u);
    if (a >= 0x477ff000u) /* rounds to >= 65520: inf */
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) { /* below 2^-14: subnormal half (or zero) */
        /* a / 2^-24 rounded to nearest even, as an integer */
        float v = eng_f32_from_bits(a) * 0x1.0p24f;
        return (uint16_t)(sign | (uint32_t)lrintf(v));
    }
    e = (a >> 23) - 112; /* rebias 127 -> 15 */
    m = a & 0x7fffffu;
    r = (e << 10) | (m >> 13);
    /* round to nearest even on the 13 dropped bits (a carry into the
     * exponent is the right result) */
    if ((m & 0x1fffu) > 0x1000u || ((m & 0x1fffu) == 0x1000u && (r & 1)))
        r++;
    return (uint16_t)(sign | r);
}

/* One element of a scales/biases row in F32, F16 or BF16. */
static inline float eng_sb_load(enum eng_dtype dt, const void *row, int64_t i)
{
    if (dt == ENG_DT_F32) {
        float f;
        memcpy(&f, (const uint8_t *)row + (size_t)i * 4, 4);
        return f;
    }
    {
        uint16_t h;
        memcpy(&h, (const uint8_t *)row + (size_t)i * 2, 2);
        return dt == ENG_DT_BF16 ? eng_bf16_to_f32(h) : eng_f16_to_f32(h);
    }
}

static inline int eng_q_bits(enum eng_dtype dt)
{
    return dt == ENG_DT_Q4 ? 4 : 8;
}

/* Element i of a quantized row: MLX packs code k of each little-endian
 * uint32 at bits [k*bits, (k+1)*bits), so byte i*bits/8 holds it. */
static inline unsigned eng_q_code(enum eng_dtype dt, const uint8_t *row, int64_t i)
{
    if (dt == ENG_DT_Q4)
        return (row[i >> 1] >> ((i & 1) * 4)) & 15u;
    return row[i];
}

#endif
