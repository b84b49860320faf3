/* tests/engine/bench_kernels.c: an internal timing harness (not a test): the
 * decode product of one dtype over a matrix much larger than the caches,
 * run as decode runs it (eng_linear_run: its input prepared, its rows
 * dealt to THREADS threads in chunks they claim and steal), alternated
 * with the read-bandwidth probe so that both see the same machine load.
 * Prints each round ("R kernel-GB/s bandwidth-GB/s") and the best of each
 * with their ratio.
 *   bench_kernels DTYPE [COLS] [MiB] [ROUNDS] [THREADS] [ROWS]
 * DTYPE: f32 f16 bf16 q4 q8 q4a8 (q4a8: Q4 with 8-bit activation codes).
 * ROWS > 0 cuts the matrix into matrices of ROWS rows, each repacked on
 * its own, one after another in memory and run one after another, as a
 * model's layers are: what starting the streams over costs. (q8 896
 * columns, 1 thread, best of 10 rounds, 2 alternated runs, kernel GB/s:
 * one matrix 29.8 / 31.5, 4864 rows 32.7 / 33.4, 896 rows 31.6 / 31.0,
 * 128 rows 26.2 / 25.3: about 1 us a matrix, 0.5-1% of a Qwen2.5-0.5B
 * token.) SHOAL_KERNELS caps the kernels as it does for shoal (model.h:
 * eng_kernels_select).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/membw.h"
#include "common/util.h"
#include "engine/internal.h"
#include "tests/engine/bench_quant.h"

/* Buffers like the model's repacked weights: 2 MiB aligned, huge pages
 * advised (4 KiB pages would add a TLB miss per page to the stream). */
static void *big_alloc(size_t n)
{
    void *p = NULL;
    n = (n + ((size_t)2 << 20) - 1) & ~(((size_t)2 << 20) - 1);
    if (posix_memalign(&p, (size_t)2 << 20, n) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, n, MADV_HUGEPAGE);
#endif
    return p;
}

int main(int argc, char **argv)
{
    int64_t cols = argc > 2 ? atoll(argv[2]) : 896, mib = argc > 3 ? atoll(argv[3]) : 256;
    int rounds = argc > 4 ? atoi(argv[4]) : 10, threads = argc > 5 ? atoi(argv[5]) : 1;
    int64_t piece = argc > 6 ? atoll(argv[6]) : 0, npieces;
    struct eng_pool *pool = NULL;
    struct sh_err err = {0};
    enum eng_dtype dt;
    size_t row_bytes, sb_bytes = 0;
    int64_t rows;
    uint8_t *w, *sb = NULL;
    float *x, *y;
    struct eng_gemm_scratch scratch = {0};
    struct eng_mat m = {0};
    const struct eng_mat_ops *ops;
    double best = 0, best_bw = 0;
    struct sh_membw_opts mo = {.threads = threads, .bytes = (size_t)256 << 20, .runs = 1};

    if (argc < 2) {
        fprintf(stderr,
                "usage: bench_kernels f32|f16|bf16|q4|q8|q4a8 [COLS] [MiB] [ROUNDS] [THREADS] "
                "[ROWS]\n");
        return 2;
    }
    if (eng_kernels_select(getenv("SHOAL_KERNELS"), &err) != 0) {
        fprintf(stderr, "bench_kernels: SHOAL_KERNELS: %s\n", sh_err_msg(&err));
        return 2;
    }
    if (strcmp(argv[1], "q4") == 0 || strcmp(argv[1], "q4a8") == 0)
        dt = ENG_DT_Q4;
    else if (strcmp(argv[1], "q8") == 0)
        dt = ENG_DT_Q8;
    else if (!eng_dtype_from_st(strcmp(argv[1], "bf16") == 0  ? "BF16"
                                : strcmp(argv[1], "f16") == 0 ? "F16"
                                                              : "F32",
                                &dt))
        return 2;
    row_bytes = dt == ENG_DT_Q4   ? (size_t)cols / 2
                : dt == ENG_DT_Q8 ? (size_t)cols
                                  : (size_t)cols * eng_dtype_info(dt)->size;
    if (dt == ENG_DT_Q4 || dt == ENG_DT_Q8)
        sb_bytes = (size_t)cols / 64 * 2;
    rows = (int64_t)(((size_t)mib << 20) / (row_bytes + 2 * sb_bytes));
    if (piece <= 0 || piece > rows)
        piece = rows;
    rows = rows / piece * piece;
    npieces = rows / piece;
    /* each piece's repacked bytes, its pad included, 64-byte aligned */
    size_t piece_bytes = ((size_t)piece * row_bytes + ENG_REPACK_PAD + 63) & ~(size_t)63;
    struct eng_mat *mats = calloc((size_t)npieces, sizeof *mats);
    w = big_alloc((size_t)rows * row_bytes);
    x = malloc((size_t)cols * sizeof *x);
    y = malloc((size_t)rows * sizeof *y);
    if (!w || !x || !y || !mats)
        return 1;
    for (size_t i = 0; i < (size_t)rows * row_bytes; i++)
        w[i] = (uint8_t)(i * 2654435761u >> 13) & 0x3f; /* small floats for f32/f16/bf16 */
    for (int64_t i = 0; i < cols; i++)
        x[i] = (float)((i * 7919) % 200 - 100) / 100.0f;
    m = (struct eng_mat){
        .dtype = dt, .rows = rows, .cols = cols, .row_stride = row_bytes, .data = w};
    if (sb_bytes) {
        sb = big_alloc((size_t)rows * sb_bytes * 2);
        if (!sb)
            return 1;
        bench_attach_sb(&m, sb);
    }
    for (int64_t i = 0; i < npieces; i++) {
        mats[i] = m;
        mats[i].rows = piece;
        mats[i].data = w + (size_t)(i * piece) * row_bytes;
        if (sb_bytes) {
            mats[i].scales = (const uint8_t *)m.scales + (size_t)(i * piece) * sb_bytes;
            mats[i].biases = (const uint8_t *)m.biases + (size_t)(i * piece) * sb_bytes;
        }
    }
    ops = eng_mat_ops(dt);
    if (ops->repack) { /* the layout the kernel reads (model.c repacks at load) */
        uint8_t *pw = big_alloc((size_t)npieces * piece_bytes);
        if (!pw)
            return 1;
        for (int64_t i = 0; i < npieces; i++) {
            struct eng_mat packed;
            ops->repack(&mats[i], pw + (size_t)i * piece_bytes, &packed);
            mats[i] = packed;
        }
        free(w);
        w = pw;
    }
    if (eng_pool_new(threads, &pool, &err) != 0) {
        fprintf(stderr, "bench_kernels: %s\n", sh_err_msg(&err));
        return 1;
    }
    if (eng_gemm_scratch_init(&scratch, threads, cols, 1, 0) != 0)
        return 1;
    scratch.act_bits = strcmp(argv[1], "q4a8") == 0 ? 8 : 16;
    for (int r = 0; r < rounds; r++) {
        struct sh_membw_result res;
        /* small (cache-resident) matrices: several passes per timing */
        int reps = mib >= 256 ? 1 : (int)(256 / mib);
        double t0 = sh_now_s(), gbps;
        for (int k = 0; k < reps; k++)
            for (int64_t i = 0; i < npieces; i++) {
                struct eng_linear out = {.w = &mats[i], .y = y + i * piece, .ldy = (size_t)piece};
                eng_linear_run(pool, &scratch, &out, 1, x, (size_t)cols, 1);
            }
        gbps = (double)rows * (double)(row_bytes + 2 * sb_bytes) / ((sh_now_s() - t0) / reps) / 1e9;
        best = gbps > best ? gbps : best;
        if (sh_membw_measure(&mo, &res, NULL) != 0)
            return 1;
        best_bw = res.best_gbps > best_bw ? res.best_gbps : best_bw;
        printf("R %.2f %.2f\n", gbps, res.best_gbps);
    }
    printf("%s %s cols %lld rows %lld: kernel %.2f GB/s (%.2f Gweights/s), read bandwidth %.2f "
           "GB/s, ratio %.0f%% (y0 %g)\n",
           argv[1], eng_isa_name(eng_isa_best()), (long long)cols, (long long)rows, best,
           best / (double)(row_bytes + 2 * sb_bytes) * (double)cols, best_bw,
           100.0 * best / best_bw, (double)y[0]);
    free(w);
    free(mats);
    free(sb);
    free(x);
    free(y);
    eng_gemm_scratch_free(&scratch);
    eng_pool_free(pool);
    return 0;
}
