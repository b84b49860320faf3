/* tests/engine/bench_gemm.c: an internal timing harness (not a test): the
 * prompt product of one weight matrix on one thread, alternating the f32
 * kernel (gemm_avx2.c: rows converted to f32) with, for Q4/Q8, the integer
 * one (gemm_q_avx2.c); prints the best of each in Gmac/s (multiply-adds
 * per second, preparation of the tokens included), with the micro-kernels
 * of ISA (avx2 or avx512; default: the best this CPU runs).
 *   bench_gemm q4|q8|bf16 [ROWS] [COLS] [TOKENS] [ROUNDS] [ISA]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "engine/internal.h"
#include "tests/engine/bench_quant.h"

int main(int argc, char **argv)
{
#if !defined(ENG_HAVE_AVX2)
    (void)argc;
    (void)argv;
    fprintf(stderr, "bench_gemm: built without the AVX2 kernels\n");
    return 2;
#else
    int64_t rows = argc > 2 ? atoll(argv[2]) : 4864, cols = argc > 3 ? atoll(argv[3]) : 896;
    int m = argc > 4 ? atoi(argv[4]) : 128, rounds = argc > 5 ? atoi(argv[5]) : 5;
    enum eng_dtype dt;
    bool q;
    size_t row_bytes, sb_bytes = 0;
    uint8_t *w, *sb = NULL, *pw;
    float *x, *y, *xp, *wbuf;
    void *xqbuf = NULL;
    struct eng_mat mat, packed;
    const struct eng_mat_ops *ops;
    double best_f = 0, best_q = 0, macs;
    enum eng_isa isa = argc > 6 && !strcmp(argv[6], "avx2") ? ENG_ISA_AVX2 : eng_isa_best();

    if (argc < 2 || (strcmp(argv[1], "q4") && strcmp(argv[1], "q8") && strcmp(argv[1], "bf16"))) {
        fprintf(stderr, "usage: bench_gemm q4|q8|bf16 [ROWS] [COLS] [TOKENS] [ROUNDS] [ISA]\n");
        return 2;
    }
    if (eng_isa_best() < ENG_ISA_AVX2 || cols % 64 != 0 || m < 2) {
        fprintf(stderr, "bench_gemm: needs AVX2, COLS a multiple of 64 and TOKENS >= 2\n");
        return 2;
    }
    if (argc > 6 && strcmp(argv[6], eng_isa_name(isa)) != 0) {
        fprintf(stderr, "bench_gemm: ISA %s does not run here (best: %s)\n", argv[6],
                eng_isa_name(eng_isa_best()));
        return 2;
    }
    dt = !strcmp(argv[1], "q4") ? ENG_DT_Q4 : !strcmp(argv[1], "q8") ? ENG_DT_Q8 : ENG_DT_BF16;
    q = dt != ENG_DT_BF16;
    row_bytes = dt == ENG_DT_Q4   ? (size_t)cols / 2
                : dt == ENG_DT_Q8 ? (size_t)cols
                                  : 2 * (size_t)cols;
    w = malloc((size_t)rows * row_bytes);
    pw = malloc((size_t)rows * row_bytes + ENG_REPACK_PAD);
    x = malloc((size_t)m * (size_t)cols * sizeof *x);
    y = malloc((size_t)m * (size_t)rows * sizeof *y);
    xp = malloc(eng_gemm_xp_floats(m, cols) * sizeof *xp);
    wbuf = malloc((size_t)(64 * 1024 > 16 * cols ? 64 * 1024 : 16 * cols) * sizeof *wbuf);
    xqbuf = aligned_alloc(64, (eng_gemm_xq_bytes(m, cols) + 63) / 64 * 64);
    if (!w || !pw || !x || !y || !xp || !wbuf || !xqbuf)
        return 1;
    for (size_t i = 0; i < (size_t)rows * row_bytes; i++)
        w[i] = (uint8_t)(i * 2654435761u >> 13) & 0x3f; /* small bf16 values too */
    for (int64_t i = 0; i < m * cols; i++)
        x[i] = (float)((i * 7919) % 200 - 100) / 100.0f;
    mat = (struct eng_mat){
        .dtype = dt, .rows = rows, .cols = cols, .row_stride = row_bytes, .data = w};
    if (q) {
        sb_bytes = (size_t)cols / 64 * 2;
        sb = malloc((size_t)rows * sb_bytes * 2);
        if (!sb)
            return 1;
        bench_attach_sb(&mat, sb);
    }
    ops = eng_mat_ops(dt);
    if (ops->repack) {
        ops->repack(&mat, pw, &packed);
        mat = packed;
    }
    macs = (double)rows * (double)cols * m;
    for (int r = 0; r < rounds; r++) {
        double t0 = sh_now_s();
        eng_gemm_pack_x(x, (size_t)cols, m, cols, xp);
        eng_gemm_avx2(&mat, ops, 0, rows, xp, m, y, (size_t)rows, wbuf, isa);
        t0 = sh_now_s() - t0;
        best_f = macs / t0 / 1e9 > best_f ? macs / t0 / 1e9 : best_f;
        if (q) {
            struct eng_gemm_xq xq;
            t0 = sh_now_s();
            eng_gemm_xq_init(xqbuf, m, cols, 64, &xq);
            eng_gemm_prep_q(x, (size_t)cols, &xq, 0, eng_gemm_xq_blocks(&xq));
            eng_gemm_q_avx2(&mat, 0, rows, &xq, y, (size_t)rows, wbuf, isa);
            t0 = sh_now_s() - t0;
            best_q = macs / t0 / 1e9 > best_q ? macs / t0 / 1e9 : best_q;
        }
    }
    printf("%s rows %lld cols %lld tokens %d %s: f32 kernel %.1f Gmac/s", argv[1], (long long)rows,
           (long long)cols, m, eng_isa_name(isa), best_f);
    if (q)
        printf(", integer kernel %.1f Gmac/s (%.2fx)", best_q, best_q / best_f);
    printf(" (y0 %g)\n", (double)y[0]);
    free(w);
    free(pw);
    free(sb);
    free(x);
    free(y);
    free(xp);
    free(wbuf);
    free(xqbuf);
    return 0;
#endif
}
