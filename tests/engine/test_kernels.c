/* tests/engine/test_kernels.c: the float dtypes' weight kernels (F32, F16,
 * BF16) of every ISA against the scalar ones (the oracle) and the scalar
 * ones against exact math, on random shapes with odd sizes and tails;
 * attention over the KV cache, the f32 prompt product, eng_linear_run's
 * layouts and threads, SwiGLU, conversions and dispatch. The Q4/Q8
 * kernels: test_kernels_q.c.
 *
 * Named tolerances (n terms summed in float, T = sum of |terms|, u = 2^-24):
 *  - conversions (rows_to_f32): bit-identical;
 *  - float dot products: |y - exact| <= (n + 2) u T, T = sum |w_i x_i|
 *    (any summation order, fused or not).
 */
#include "tests/engine/kernels_test.h"

/* ---- float dtypes */

static void check_float_dtype(enum eng_dtype dt)
{
    static const int64_t cols_list[] = {1, 7, 8, 9, 31, 32, 33, 64, 100, 257, 1000};
    static const int64_t rows_list[] = {1, 3, 17};
    const struct eng_mat_ops *ref = eng_mat_ops_isa(dt, ENG_ISA_SCALAR);
    size_t es = eng_dtype_info(dt)->size;

    assert_non_null(ref);
    for (size_t ci = 0; ci < sizeof cols_list / sizeof *cols_list; ci++) {
        for (size_t ri = 0; ri < sizeof rows_list / sizeof *rows_list; ri++) {
            int64_t cols = cols_list[ci], rows = rows_list[ri];
            size_t stride = (size_t)cols * es + (ri == 1 ? 8 : 0); /* padded rows too */
            uint8_t *w = calloc((size_t)rows, stride);
            float *x = malloc((size_t)cols * sizeof *x), *wf = malloc((size_t)(rows * cols) * 4);
            float *y = malloc((size_t)rows * 4), *y2 = malloc((size_t)rows * 4);
            float *c1 = malloc((size_t)(rows * cols) * 4), *c2 = malloc((size_t)(rows * cols) * 4);
            struct eng_mat m = {.dtype = dt, .rows = rows, .cols = cols, .row_stride = stride};
            assert_true(w && x && wf && y && y2 && c1 && c2);
            m.data = w;
            for (int64_t r = 0; r < rows; r++)
                for (int64_t i = 0; i < cols; i++)
                    encode(dt, rndf() * 0.1f, w + (size_t)r * stride + (size_t)i * es);
            fill_x(x, cols);
            ref->rows_to_f32(&m, 0, rows, wf);
            ref->dot_rows(&m, x, y, 0, rows);
            for (int64_t r = 0; r < rows; r++) {
                double exact = 0, t = 0;
                for (int64_t i = 0; i < cols; i++) {
                    exact += (double)wf[r * cols + i] * x[i];
                    t += fabs((double)wf[r * cols + i] * x[i]);
                }
                if (fabs(y[r] - exact) > (double)(cols + 2) * U * t)
                    fail_msg("%s scalar %lldx%lld row %lld: %g vs exact %g",
                             eng_dtype_info(dt)->name, (long long)rows, (long long)cols,
                             (long long)r, (double)y[r], exact);
                for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
                    const struct eng_mat_ops *ops = eng_mat_ops_isa(dt, isas[k]);
                    void *buf;
                    if (!ops)
                        continue;
                    ops->dot_rows(&m, x_for(ops, &m, x, 16, &buf), y2, r, r + 1);
                    free(buf);
                    if (fabs(y2[r] - exact) > (double)(cols + 2) * U * t)
                        fail_msg("%s %s %lldx%lld row %lld: %g vs exact %g",
                                 eng_dtype_info(dt)->name, eng_isa_name(isas[k]), (long long)rows,
                                 (long long)cols, (long long)r, (double)y2[r], exact);
                }
            }
            for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
                const struct eng_mat_ops *ops = eng_mat_ops_isa(dt, isas[k]);
                if (!ops)
                    continue;
                /* Ranges of several rows (the kernels walk two rows at
                 * a time, rows [r0, r1) as two halves) give each row the
                 * bits of its one-row range, whatever the split. */
                {
                    void *buf;
                    const void *xp = x_for(ops, &m, x, 16, &buf);
                    for (int64_t r = 0; r < rows; r++)
                        ops->dot_rows(&m, xp, y2, r, r + 1);
                    for (int64_t h = 0; h < rows; h += 2) {
                        ops->dot_rows(&m, xp, y, 0, h);
                        ops->dot_rows(&m, xp, y, h, rows);
                        assert_memory_equal(y, y2, (size_t)rows * 4);
                    }
                    free(buf);
                }
                /* a row range in the middle, then everything */
                ref->rows_to_f32(&m, rows / 2, rows, c1);
                ops->rows_to_f32(&m, rows / 2, rows, c2);
                assert_memory_equal(c1, c2, (size_t)((rows - rows / 2) * cols) * 4);
                ops->rows_to_f32(&m, 0, rows, c2);
                assert_memory_equal(wf, c2, (size_t)(rows * cols) * 4);
            }
            free(w);
            free(x);
            free(wf);
            free(y);
            free(y2);
            free(c1);
            free(c2);
        }
    }
}

static void test_f32(void **state)
{
    (void)state;
    check_float_dtype(ENG_DT_F32);
}

static void test_f16(void **state)
{
    (void)state;
    check_float_dtype(ENG_DT_F16);
}

static void test_bf16(void **state)
{
    (void)state;
    check_float_dtype(ENG_DT_BF16);
}

/* ---- attention over the KV cache (f32 and f16 caches) */

static void test_kv_ops(void **state)
{
    static const int ns[] = {1, 7, 8, 9, 63, 64, 128, 131};
    static const float special[] = {0.0f, -0.0f, 65504.0f, 65520.0f, 1e-8f, -3e-5f, 6.1e-5f, 1.0f};

    (void)state;
    for (int kt = 0; kt < 2; kt++) {
        enum eng_dtype dt = kt ? ENG_DT_F16 : ENG_DT_F32;
        const struct eng_kv_ops *ref = eng_kv_ops_isa(dt, ENG_ISA_SCALAR);
        assert_non_null(ref);
        for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
            const struct eng_kv_ops *ops = eng_kv_ops_isa(dt, isas[k]);
            if (!ops)
                continue;
            for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
                int n = ns[ni];
                float a[131], src[131], y1[131], y2[131];
                uint8_t b1[131 * 4], b2[131 * 4];
                double t = 0;
                float d1, d2;
                for (int i = 0; i < n; i++) {
                    a[i] = rndf();
                    src[i] = i < 8 && n > 8 ? special[i] : rndf() * 3;
                    y1[i] = y2[i] = rndf();
                }
                /* store: the same bits (round to nearest even) */
                ref->store(b1, src, n);
                ops->store(b2, src, n);
                assert_memory_equal(b1, b2, (size_t)n * (kt ? 2 : 4));
                /* dot, axpy: float math in any order */
                for (int i = 0; i < n; i++)
                    t += fabs((double)a[i] *
                              (kt ? eng_f16_to_f32(((uint16_t *)(void *)b1)[i]) : src[i]));
                d1 = ref->dot(a, b1, n);
                d2 = ops->dot(a, b1, n);
                if (fabs((double)d1 - d2) > 2.0 * (n + 2) * U * t)
                    fail_msg("kv dot %s n=%d: %g vs %g", kt ? "f16" : "f32", n, (double)d1,
                             (double)d2);
                ref->axpy(y1, 0.75f, b1, n);
                ops->axpy(y2, 0.75f, b1, n);
                for (int i = 0; i < n; i++)
                    if (fabs((double)y1[i] - y2[i]) > 4 * U * (fabs((double)y1[i]) + 1))
                        fail_msg("kv axpy n=%d [%d]: %g vs %g", n, i, (double)y1[i], (double)y2[i]);
            }
        }
    }
}

/* ---- the prompt product (AVX2 GEMM on converted weight rows) */

static void test_gemm(void **state)
{
    static const int ms[] = {2, 17, 40};
    static const int64_t ks[] = {64, 320, 576};
    static const int64_t rows_list[] = {1, 7, 100};
    static const enum eng_dtype dts[] = {ENG_DT_F32, ENG_DT_BF16, ENG_DT_Q4, ENG_DT_Q8};

    (void)state;
#if !defined(__x86_64__)
    print_message("# not x86-64: the prompt path is OpenBLAS\n");
    return;
#else
    if (eng_isa_best() < ENG_ISA_AVX2) {
        print_message("# no AVX2: the prompt path is OpenBLAS\n");
        return;
    }
    for (size_t di = 0; di < sizeof dts / sizeof *dts; di++) {
        for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
            for (size_t ri = 0; ri < sizeof rows_list / sizeof *rows_list; ri++) {
                for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi++) {
                    enum eng_dtype dt = dts[di];
                    int64_t k = ks[ki], rows = rows_list[ri];
                    int m = ms[mi];
                    struct qmat q = {0};
                    uint8_t *fw = NULL;
                    struct eng_mat mat;
                    const struct eng_mat_ops *ops = eng_mat_ops(dt);
                    float *x = malloc((size_t)(m * k) * 4), *wf = malloc((size_t)(rows * k) * 4);
                    float *xp = malloc(eng_gemm_xp_floats(m, k) * 4);
                    size_t ny = (size_t)(m * (rows + 3));
                    float *y = malloc(ny * 4), *y2 = malloc(ny * 4);
                    float *wbuf =
                        malloc((size_t)(64 * 1024 > 12 * (k + 16) ? 64 * 1024 : 12 * (k + 16)) * 4);
                    assert_true(x && wf && xp && y && y2 && wbuf);
                    if (dt == ENG_DT_Q4 || dt == ENG_DT_Q8) {
                        qmat_make(&q, dt, 64, ENG_DT_BF16, rows, k);
                        mat = q.m;
                    } else {
                        mat = fmat_make(dt, rows, k, &fw);
                    }
                    for (int64_t i = 0; i < m * k; i++)
                        x[i] = rndf();
                    {
                        void *rbuf;
                        struct eng_mat mk = mat_for(ops, &mat, &rbuf);
                        eng_mat_ops_isa(dt, ENG_ISA_SCALAR)->rows_to_f32(&mat, 0, rows, wf);
                        eng_gemm_pack_x(x, (size_t)k, m, k, xp);
                        { /* packed in 3 parts (threads' shares): the same floats */
                            size_t nxp = eng_gemm_xp_floats(m, k);
                            float *xp3 = malloc(nxp * 4);
                            assert_non_null(xp3);
                            memset(xp3, 0xA5, nxp * 4);
                            int nb = eng_gemm_x_blocks(m);
                            for (int part = 0; part < 3; part++)
                                eng_gemm_pack_x_blocks(x, (size_t)k, m, k, xp3, nb * part / 3,
                                                       nb * (part + 1) / 3);
                            assert_memory_equal(xp, xp3, nxp * 4);
                            free(xp3);
                        }
                        /* rows [1, rows) into a y with a wider stride, on
                         * each ISA whose micro-kernel runs here: AVX-512's
                         * gives AVX2's bits */
                        for (size_t ii = 0; ii < sizeof isas / sizeof *isas; ii++) {
                            if (!eng_mat_ops_isa(dt, isas[ii]))
                                continue;
                            memset(ii == 0 ? y : y2, 0, ny * 4);
                            eng_gemm_avx2(&mk, ops, rows > 1 ? 1 : 0, rows, xp, m, ii == 0 ? y : y2,
                                          (size_t)rows + 3, wbuf, isas[ii]);
                            if (ii > 0 && memcmp(y, y2, ny * 4) != 0)
                                fail_msg("gemm %s m %d k %lld rows %lld: %s differs from %s",
                                         eng_dtype_info(dt)->name, m, (long long)k, (long long)rows,
                                         eng_isa_name(isas[ii]), eng_isa_name(isas[0]));
                        }
                        free(rbuf);
                    }
                    for (int t = 0; t < m; t++) {
                        for (int64_t r = rows > 1 ? 1 : 0; r < rows; r++) {
                            double e = 0, tt = 0;
                            for (int64_t c = 0; c < k; c++) {
                                e += (double)wf[r * k + c] * x[t * k + c];
                                tt += fabs((double)wf[r * k + c] * x[t * k + c]);
                            }
                            if (fabs(y[(size_t)t * (size_t)(rows + 3) + (size_t)r] - e) >
                                (double)(k + 2) * U * tt)
                                fail_msg("gemm %s m %d k %lld rows %lld: [%d][%lld] %g vs %g",
                                         eng_dtype_info(dt)->name, m, (long long)k, (long long)rows,
                                         t, (long long)r,
                                         (double)y[(size_t)t * (size_t)(rows + 3) + (size_t)r], e);
                        }
                    }
                    if (dt == ENG_DT_Q4 || dt == ENG_DT_Q8)
                        qmat_free(&q);
                    free(fw);
                    free(x);
                    free(wf);
                    free(xp);
                    free(y);
                    free(y2);
                    free(wbuf);
                }
            }
        }
    }
#endif
}

/* ---- decode through eng_linear_run: two outputs share an input but not a
 * layout (one flat, one per row: its rows are not contiguous), so each
 * needs its own preparation of that input; with 16- and 8-bit codes (the
 * scratch's act_bits reaches the preparation) */

static void test_linear_layouts(void **state)
{
    enum { ROWS = 5, GS = 64, NG = 3, COLS = GS * NG, PAD = 32 };
    const struct eng_mat_ops *ops = eng_mat_ops(ENG_DT_Q4);
    struct qmat qa, qb;
    struct eng_mat spaced;
    struct eng_pool *pool;
    struct eng_gemm_scratch scratch;
    struct sh_err err = {0};
    uint8_t *rows_b = malloc((size_t)ROWS * (COLS / 2 + PAD));
    float x[COLS], y[2][ROWS], want[2][ROWS];
    void *ra, *rb, *xb;
    struct eng_xq *xq;

    (void)state;
    assert_non_null(rows_b);
    qmat_make(&qa, ENG_DT_Q4, GS, ENG_DT_BF16, ROWS, COLS);
    qmat_make(&qb, ENG_DT_Q4, GS, ENG_DT_BF16, ROWS, COLS);
    spaced = qb.m;
    spaced.row_stride = COLS / 2 + PAD;
    spaced.data = rows_b;
    for (int r = 0; r < ROWS; r++)
        memcpy(rows_b + (size_t)r * spaced.row_stride, qb.packed + (size_t)r * (COLS / 2),
               COLS / 2);
    fill_x(x, COLS);
    for (int bits = 16; bits >= 8; bits -= 8) {
        struct eng_mat ma = mat_for(ops, &qa.m, &ra), mb = mat_for(ops, &spaced, &rb);
        /* the per-row one first: its preparation lacks the flat one's period */
        struct eng_linear out[2] = {{&mb, y[1], 1, NULL}, {&ma, y[0], 1, NULL}};
        if (eng_isa_best() >= ENG_ISA_AVX2) {
            assert_true(ma.flat);
            assert_false(mb.flat);
        }
        xb = xq_new(COLS, GS, ENG_DT_Q4, bits, &xq);
        ops->prep(&ma, x, xq);
        ops->dot_rows(&ma, xq, want[0], 0, ROWS);
        ops->prep(&mb, x, xq);
        ops->dot_rows(&mb, xq, want[1], 0, ROWS);
        assert_int_equal(eng_pool_new(1, &pool, &err), 0);
        assert_int_equal(eng_gemm_scratch_init(&scratch, 1, COLS, 1, 2), 0);
        assert_int_equal(scratch.act_bits, 16);
        scratch.act_bits = bits;
        eng_linear_run(pool, &scratch, out, 2, x, COLS, 1);
        assert_memory_equal(y, want, sizeof y);
        eng_gemm_scratch_free(&scratch);
        eng_pool_free(pool);
        free(ra);
        free(rb);
        free(xb);
    }
    free(rows_b);
    qmat_free(&qa);
    qmat_free(&qb);
}

/* ---- eng_linear_run on 2 and 3 threads: the rows go out in chunks that
 * threads take from each other's ends (matmul.c), so which thread computes
 * a row varies from run to run; every row must still equal what one thread
 * computes, bit for bit: for decode (n == 1) one kernel call over the whole
 * matrix, for a prompt (n > 1) the call on a pool of 1. Three outputs with
 * row counts that are not multiples of a chunk or of 16, Q4 and Q8 (each
 * its own preparation), a layout of whole 8-group batches (COLS_ROW) and
 * the flat one (COLS_FLAT); and bf16. */

static void linear_on(int threads,
                      const struct eng_linear *out,
                      int n_out,
                      const float *x,
                      int64_t cols,
                      int n,
                      const int64_t *rows)
{
    struct eng_pool *pool;
    struct eng_gemm_scratch scratch;
    struct sh_err err = {0};

    assert_int_equal(eng_pool_new(threads, &pool, &err), 0);
    assert_int_equal(eng_gemm_scratch_init(&scratch, threads, cols, n, 0), 0);
    for (int j = 0; j < n_out; j++) /* NaN: what is not written shows */
        memset(out[j].y, 0xff, (size_t)n * (size_t)rows[j] * sizeof(float));
    eng_linear_run(pool, &scratch, out, n_out, x, (size_t)cols, n);
    eng_gemm_scratch_free(&scratch);
    eng_pool_free(pool);
}

static void check_linear_threads(int64_t cols, int n, bool bf16)
{
    enum { NOUT = 3, GS = 64, RUNS = 4 };
    static const int64_t rows[NOUT] = {1003, 37, 2051};
    static const enum eng_dtype q_dts[NOUT] = {ENG_DT_Q8, ENG_DT_Q4, ENG_DT_Q8};
    static const enum eng_dtype bf16_dts[NOUT] = {ENG_DT_BF16, ENG_DT_BF16, ENG_DT_BF16};
    const enum eng_dtype *dts = bf16 ? bf16_dts : q_dts;
    struct qmat q[NOUT] = {0};
    struct eng_mat m[NOUT];
    void *packed[NOUT];
    uint8_t *fw[NOUT] = {0};
    float *x = malloc((size_t)n * (size_t)cols * sizeof *x), *y[NOUT], *want[NOUT];
    struct eng_linear out[NOUT], ref[NOUT];

    assert_non_null(x);
    fill_x(x, n * cols);
    for (int j = 0; j < NOUT; j++) {
        size_t bytes = (size_t)n * (size_t)rows[j] * sizeof(float);
        if (bf16)
            q[j].m = fmat_make(dts[j], rows[j], cols, &fw[j]);
        else
            qmat_make(&q[j], dts[j], GS, ENG_DT_BF16, rows[j], cols);
        m[j] = mat_for(eng_mat_ops(dts[j]), &q[j].m, &packed[j]);
        y[j] = malloc(bytes);
        want[j] = malloc(bytes);
        assert_true(y[j] && want[j]);
        out[j] = (struct eng_linear){&m[j], y[j], (size_t)rows[j], NULL};
        ref[j] = (struct eng_linear){&m[j], want[j], (size_t)rows[j], NULL};
    }
    if (n == 1) {
        for (int j = 0; j < NOUT; j++) {
            void *xb;
            const struct eng_mat_ops *ops = eng_mat_ops(dts[j]);
            ops->dot_rows(&m[j], x_for(ops, &m[j], x, 16, &xb), want[j], 0, rows[j]);
            free(xb);
        }
    } else {
        linear_on(1, ref, NOUT, x, cols, n, rows);
    }
    for (int threads = 2; threads <= 3; threads++)
        for (int run = 0; run < RUNS; run++) {
            linear_on(threads, out, NOUT, x, cols, n, rows);
            for (int j = 0; j < NOUT; j++)
                if (memcmp(y[j], want[j], (size_t)n * (size_t)rows[j] * sizeof(float)) != 0)
                    fail_msg("cols %lld, %d tokens, %d threads, run %d: output %d differs from "
                             "one thread's",
                             (long long)cols, n, threads, run, j);
        }
    for (int j = 0; j < NOUT; j++) {
        free(y[j]);
        free(want[j]);
        free(packed[j]);
        if (bf16)
            free(fw[j]);
        else
            qmat_free(&q[j]);
    }
    free(x);
}

static void test_linear_threads(void **state)
{
    enum { COLS_ROW = 512, COLS_FLAT = 192, PROMPT = 7 };

    (void)state;
    check_linear_threads(COLS_ROW, 1, false);
    check_linear_threads(COLS_FLAT, 1, false);
    check_linear_threads(COLS_ROW, PROMPT, false);
    check_linear_threads(COLS_FLAT, PROMPT, false);
    /* bf16: the f32 product on converted rows */
    check_linear_threads(COLS_ROW, 1, true);
    check_linear_threads(COLS_ROW, PROMPT, true);
}

/* ---- SwiGLU: the vector e^x against libm's */

static void test_swiglu(void **state)
{
    static const float special[] = {0.0f,  -0.0f,  1.0f,   -1.0f,   20.0f, -20.0f, 88.0f, -88.0f,
                                    89.0f, -89.0f, 100.0f, -100.0f, 1e-8f, -1e-8f, 5.5f,  -5.5f};
    enum { N = 4099 };
    float *g = malloc(N * sizeof *g), *u = malloc(N * sizeof *u);
    float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);

    (void)state;
    assert_true(g && u && a && b);
    for (int i = 0; i < N; i++) {
        g[i] = i < 16 ? special[i] : rndf() * (i % 3 ? 8.0f : 40.0f);
        u[i] = rndf() + 0.5f;
    }
    for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
        memcpy(a, g, N * sizeof *a);
        memcpy(b, g, N * sizeof *b);
        eng_swiglu_isa(ENG_ISA_SCALAR, a, u, N);
        eng_swiglu_isa(isas[k], b, u, N);
        for (int i = 0; i < N; i++)
            if (fabs((double)a[i] - b[i]) > 8 * U * fabs((double)a[i]) + 1e-30)
                fail_msg("swiglu %s g=%g: %g vs %g", eng_isa_name(isas[k]), (double)g[i],
                         (double)b[i], (double)a[i]);
        /* NaN stays NaN */
        b[0] = NAN;
        eng_swiglu_isa(isas[k], b, u, 8);
        assert_true(isnan(b[0]));
    }
    free(g);
    free(u);
    free(a);
    free(b);
}

/* ---- conversions and dispatch */

static void test_f16_bf16_round_trip(void **state)
{
    (void)state;
    /* every half and bf16 bit pattern survives to f32 and back */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = eng_f16_to_f32((uint16_t)h);
        if (isnan(f))
            assert_true((eng_f32_to_f16(f) & 0x7c00u) == 0x7c00u && (eng_f32_to_f16(f) & 0x3ffu));
        else
            assert_int_equal(eng_f32_to_f16(f), h);
        f = eng_bf16_to_f32((uint16_t)h);
        if (!isnan(f))
            assert_int_equal(eng_f32_to_bf16(f), h);
    }
    /* round to nearest even, overflow to inf */
    assert_int_equal(eng_f32_to_f16(1.0f + 0x1.0p-11f), 0x3c00); /* tie: even */
    assert_int_equal(eng_f32_to_f16(1.0f + 0x1.8p-11f), 0x3c01); /* above the tie */
    assert_int_equal(eng_f32_to_f16(65520.0f), 0x7c00);          /* rounds to inf */
    assert_int_equal(eng_f32_to_f16(0x1.0p-25f), 0);             /* tie to even 0 */
    assert_int_equal(eng_f32_to_f16(0x1.8p-25f), 1);             /* smallest subnormal */
    assert_int_equal(eng_f32_to_bf16(1.0f + 0x1.0p-8f), 0x3f80); /* tie: even */
    assert_int_equal(eng_f32_to_bf16(1.0f + 0x1.8p-8f), 0x3f81);
}

static void test_dispatch(void **state)
{
    (void)state;
    for (int dt = 0; dt < ENG_DT_COUNT; dt++) {
        bool computes = dt == ENG_DT_F32 || dt == ENG_DT_F16 || dt == ENG_DT_BF16 ||
                        dt == ENG_DT_Q4 || dt == ENG_DT_Q8;
        assert_int_equal(eng_mat_ops((enum eng_dtype)dt) != NULL, computes);
        assert_int_equal(eng_mat_ops_isa((enum eng_dtype)dt, ENG_ISA_SCALAR) != NULL, computes);
    }
    assert_null(eng_mat_ops(ENG_DT_COUNT));
    assert_non_null(eng_isa_name(eng_isa_best()));
    assert_ptr_equal(eng_mat_ops(ENG_DT_Q4), eng_mat_ops_isa(ENG_DT_Q4, eng_isa_best()));
    /* every ISA up to the best runs here, none above it */
    for (int isa = ENG_ISA_SCALAR; isa <= ENG_ISA_AVX512; isa++)
        assert_int_equal(eng_mat_ops_isa(ENG_DT_Q4, (enum eng_isa)isa) != NULL,
                         isa <= (int)eng_isa_best());
    print_message("# kernels: %s\n", eng_isa_name(eng_isa_best()));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_f16_bf16_round_trip),
        cmocka_unit_test(test_f32),
        cmocka_unit_test(test_f16),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_kv_ops),
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_linear_layouts),
        cmocka_unit_test(test_linear_threads),
        cmocka_unit_test(test_swiglu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
