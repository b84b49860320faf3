/* engine/attn_prompt.c: causal attention of a prompt chunk as matrix
 * products (AVX2 builds; forward.c uses it where eng_gemm_avx2 runs the
 * linear layers, and the per-position path elsewhere and for decode).
 *
 * Per position, attention reads every cached key and value once per token
 * with a dot product or an axpy of head_dim elements: short vectors whose
 * call and reduction overhead dominate (about 20% of a 512-token prompt of
 * Qwen2.5-0.5B 4-bit on one thread, against 3% of its multiply-adds).
 * Here one item is (16 tokens, one KV head): its group x 16 queries meet
 * each block of keys in one product, S = Q K^T, and the block's values in
 * another, O += P V (both eng_gemm_avx2, whose conversion of rows reads
 * the f32 or f16 cache directly). The softmax is online, as in
 * FlashAttention: a running maximum and sum per query rescale O when a
 * later block raises the maximum, so memory stays one block of scores
 * whatever the context's length. Results equal the per-position path up to
 * the order of float additions.
 * Measured (Qwen2.5-0.5B 4-bit, shoal bench -p 512, alternated): 1 thread
 * 90-97 -> 114 tok/s, attention 20% -> 10% of samples (half of that the
 * exponentials); pp128 on 2 threads 1.06-1.21x.
 */
#include <math.h>
#include <string.h>

#include "engine/internal.h"

#if defined(ENG_HAVE_AVX2)

#define QB 16  /* tokens per item: one token block of eng_gemm_avx2 */
#define KB 256 /* keys per block */

static size_t round16(size_t n)
{
    return (n + 15) / 16 * 16;
}

size_t eng_attn_prompt_floats(int group, int head_dim)
{
    size_t r = (size_t)group * QB, hd = (size_t)head_dim, hp = round16(hd);

    /* packed queries, scores, O, O^T of a block, packed values, max, sum,
     * rescale factors */
    return r * hd + r * KB + r * hd + hp * r + hp * KB + 3 * r;
}

long eng_attn_prompt_items(const struct eng_attn_prompt *a)
{
    return (long)((a->n + QB - 1) / QB) * a->n_kv_heads;
}

/* vp (16-dim blocks, s-major: block b holds V[s][16b + j] at s * 16 + j)
 * = rows [0, sb) of v converted to f32, zero past head_dim. */
static void pack_values(const struct eng_mat *v, int64_t sb, float *rowbuf, float *vp)
{
    const struct eng_mat_ops *ops = eng_mat_ops(v->dtype);
    int64_t hd = v->cols, hp = (int64_t)round16((size_t)hd);

    for (int64_t s = 0; s < sb; s++) {
        ops->rows_to_f32(v, s, s + 1, rowbuf);
        for (int64_t d = 0; d < hp; d++)
            vp[(d / 16) * 16 * sb + s * 16 + d % 16] = d < hd ? rowbuf[d] : 0.0f;
    }
}

void eng_attn_prompt_run(const struct eng_attn_prompt *a, long item, float *buf, float *wbuf)
{
    int hd = a->head_dim, group = a->n_heads / a->n_kv_heads;
    int t0 = (int)(item / a->n_kv_heads) * QB, h = (int)(item % a->n_kv_heads);
    int nt = a->n - t0 < QB ? a->n - t0 : QB, r = group * QB;
    size_t hp = round16((size_t)hd);
    float *xq = buf, *S = xq + (size_t)r * hd, *O = S + (size_t)r * KB, *OT = O + (size_t)r * hd;
    float *vp = OT + hp * (size_t)r, *mx = vp + hp * KB, *sum = mx + r, *corr = sum + r;
    const struct eng_mat_ops *f32 = eng_mat_ops(ENG_DT_F32);
    enum eng_isa isa = eng_isa_best();
    float scale = (float)(1.0 / sqrt((double)hd));
    int p_first = a->p0 + t0, p_last = p_first + nt - 1;
    int lo = eng_attn_first_key(p_first, a->window);
    size_t head_off = (size_t)h * hd * eng_dtype_info(a->kv_dtype)->size;

    /* queries (g, i) at row g * 16 + i; rows i >= nt are zero */
    for (int g = 0; g < group; g++)
        eng_gemm_pack_x(a->q + (size_t)t0 * a->q_stride + (size_t)(h * group + g) * (size_t)hd,
                        a->q_stride, nt, hd, xq + (size_t)g * QB * (size_t)hd);
    for (int i = 0; i < r; i++) {
        mx[i] = -INFINITY;
        sum[i] = 0.0f;
    }
    memset(O, 0, (size_t)r * (size_t)hd * sizeof *O);
    for (int s0 = lo; s0 <= p_last; s0 += KB) {
        int sb = p_last + 1 - s0 < KB ? p_last + 1 - s0 : KB;
        struct eng_mat k = {.dtype = a->kv_dtype,
                            .rows = sb,
                            .cols = hd,
                            .row_stride = a->row,
                            .data = a->key_cache + (size_t)s0 * a->row + head_off};
        struct eng_mat v = k, p = {.dtype = ENG_DT_F32,
                                   .rows = r,
                                   .cols = sb,
                                   .row_stride = KB * sizeof(float),
                                   .data = S};
        v.data = a->value_cache + (size_t)s0 * a->row + head_off;

        /* S[q][s - s0] = q . k_s */
        eng_gemm_avx2(&k, eng_mat_ops(a->kv_dtype), 0, sb, xq, r, S, KB, wbuf, isa);
        /* scale, mask and exponentiate each query's row; the online
         * softmax's maximum and sum move on */
        for (int g = 0; g < group; g++)
            for (int i = 0; i < QB; i++) {
                int q = g * QB + i, pos = p_first + i, first = eng_attn_first_key(pos, a->window);
                /* this query's keys in the block: [a0, a1) */
                int a0 = first > s0 ? first - s0 : 0;
                int a1 = i >= nt ? 0 : pos - s0 + 1 < sb ? pos - s0 + 1 : sb;
                float *row = S + (size_t)q * KB, m = mx[q];
                corr[q] = 1.0f;
                for (int s = a0; s < a1; s++)
                    m = row[s] * scale > m ? row[s] * scale : m;
                if (a0 < a1 && m > mx[q]) {
                    corr[q] = expf(mx[q] - m); /* 0 for the first block */
                    sum[q] *= corr[q];
                    mx[q] = m;
                }
                if (a0 >= a1) {
                    memset(row, 0, (size_t)sb * sizeof *row);
                    continue;
                }
                memset(row, 0, (size_t)a0 * sizeof *row);
                memset(row + a1, 0, (size_t)(sb - a1) * sizeof *row);
                sum[q] += eng_exp_scaled_avx2(row + a0, a1 - a0, scale, mx[q]);
            }
        /* O = O * corr + P V */
        pack_values(&v, sb, OT, vp);
        eng_gemm_avx2(&p, f32, 0, r, vp, hd, OT, (size_t)r, wbuf, isa);
        for (int q = 0; q < r; q++)
            for (int d = 0; d < hd; d++)
                O[(size_t)q * hd + d] = O[(size_t)q * hd + d] * corr[q] + OT[(size_t)d * r + q];
    }
    for (int g = 0; g < group; g++)
        for (int i = 0; i < nt; i++) {
            int q = g * QB + i;
            float *out = a->out + (size_t)(t0 + i) * a->out_stride + (size_t)(h * group + g) * hd;
            for (int d = 0; d < hd; d++)
                out[d] = O[(size_t)q * hd + d] / sum[q];
        }
}

#endif
