/* engine/matmul.c: linear layers y = x W^T spread over the thread pool.
 *
 * The rows of the weight matrices (of one or several outputs sharing an
 * input, e.g. q/k/v) are cut into one contiguous range per thread, so each
 * thread streams its own part of the weights once. Each range is a run of
 * chunks; a thread takes its own chunks from the front and, when they are
 * done, takes the other threads' remaining chunks from their backs. Equal
 * shares do not finish together: here two threads do not stream at the
 * same rate from one moment to the next, and with a static cut each of
 * the 2 threads spent about 6% of a Qwen2.5-0.5B 8-bit decode waiting for
 * the other at the end of a product. Taking chunks from the back keeps
 * each owner's stream in order.
 *  - Decode (one input row): per-dtype dot products, memory-bandwidth
 *    bound, in chunks of about CHUNK_BYTES of weights.
 *  - Prompt (n rows), on AVX2: Q4/Q8 weights multiply the tokens' 16-bit
 *    codes in integers (gemm_q_avx2.c, 1.3-1.4x the f32 kernel end to end);
 *    other weights are converted to f32 rows by each thread in its own
 *    scratch and run our f32 kernel (gemm_avx2.c). Chunks are about a
 *    conversion tile of whole panels (PANEL_ALIGN). Against the static
 *    cut, pp128 on 2 threads, medians of 4 alternated runs: +3% to +15%
 *    (Qwen2.5-0.5B bf16, 8-bit, 4-bit; Llama-3.2-1B bf16, 8-bit). Where
 *    the CPU has AVX-512 and VNNI both run gemm_avx512.c's micro-kernels.
 *  - Prompt (n rows), elsewhere: each thread converts tiles of its weight
 *    rows to f32 in its own small scratch buffer (never a full f32 copy of
 *    the model) and multiplies with single-threaded OpenBLAS SGEMM; the
 *    converted tile is still in cache when SGEMM reads it. OpenBLAS runs
 *    one thread per call here (eng_ctx_new sets it): our pool already
 *    occupies every core.
 *    Measured on a random-weight Qwen2.5-0.5B (bf16, 128-token prompt, 2
 *    cores): 37.8 tok/s on 1 thread, 72.8 with 2 pool threads, 58.7 with
 *    the alternative (the pool converts 4 MiB tiles, one SGEMM call per tile
 *    on 2 OpenBLAS threads), which also leaves two thread pools fighting
 *    over the cores.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "engine/internal.h"

/* Rows per thread range are multiples of this (cache lines of outputs,
 * and room for block-quantized formats). */
#define ROW_ALIGN 16
/* Below this many multiply-adds a layer runs on the calling thread alone:
 * waking the pool costs microseconds (much more when a worker has gone to
 * sleep or the machine is oversubscribed), more than small layers take. */
#define PAR_MIN_MACS (1 << 16)
/* Decode's unit of work: rows of about this many bytes of weights (scales
 * and biases included), ROW_ALIGN rows at least: small enough to even out
 * the ends, large enough that a claim (one CAS) is noise and that the
 * kernels' two streams (a call's halves, kern_avx2.h) run long enough for
 * the prefetcher where a call is one chunk (a thief's, the end of a run:
 * steal_worker). On 2 threads with the two-stream kernels and one chunk
 * per call, tg64 medians of 4 alternated runs, 32 KiB -> 128 KiB:
 * Qwen2.5-0.5B 8-bit 34.3 -> 37.0 tok/s, Llama-3.2-1B 8-bit 16.6 -> 17.5.
 * (With one stream, 16 to 128 KiB measured alike.) */
#define CHUNK_BYTES (128 * 1024)
/* Prompt chunks of our own kernels (gemm_avx2.c, gemm_q_avx2.c): whole
 * panels of their micro-kernels' 6 rows, in multiples of ROW_ALIGN. Tiles
 * in multiples of ROW_ALIGN alone end in a short panel: Llama-3.2-1B's
 * 32-row tiles at 2048 columns in one of 2 rows, which runs 4 FMAs a step
 * where a full panel runs 12. The kernels convert a chunk in pieces of
 * their own tile size, so a chunk may exceed TILE_FLOATS. bf16 products of
 * a layer on 2 threads, 128 tokens, the two cuts alternated call by call
 * in one process: Qwen2.5-0.5B's shapes +2.1%, +2.9%, +4.8% (40 layers
 * each), Llama-3.2-1B's +3.3% to +11.6% (8-12 layers, 4 runs); chunks of
 * 96 rows gained less. 8-bit (the integer kernel): Qwen2.5-0.5B +7.3%,
 * +13.0%, Llama-3.2-1B +1.3%, +5.6%. */
#define PANEL_ALIGN 48
/* Target floats per converted tile: 64 Ki floats = 256 KiB, about L2. */
#ifndef TILE_FLOATS
#define TILE_FLOATS (64 * 1024)
#endif

/* A thread's remaining chunks [front, back), packed in one word so that
 * the owner (front) and a thief (back) claim one with a single CAS; a
 * cache line each, so owners do not share lines. */
struct eng_chunk_cursor {
    _Alignas(64) _Atomic uint64_t front_back; /* front in the low 32 bits */
};

/* About TILE_FLOATS of weights in rows of cols, a multiple of align. */
static int64_t rows_near(int64_t cols, int64_t align)
{
    int64_t t = (TILE_FLOATS / cols) / align * align;
    return t < align ? align : t;
}

static int64_t tile_rows(int64_t cols)
{
    return rows_near(cols, ROW_ALIGN);
}

/* Our own prompt kernel runs where it was compiled in and the CPU has
 * AVX2/FMA; ENG_PROMPT_BLAS forces OpenBLAS (for measuring the two). */
static bool own_gemm(void)
{
#if defined(ENG_HAVE_AVX2) && !defined(ENG_PROMPT_BLAS)
    return eng_isa_best() >= ENG_ISA_AVX2;
#else
    return false;
#endif
}

int eng_gemm_scratch_init(
    struct eng_gemm_scratch *s, int n_threads, int64_t max_cols, int max_tokens, int extra_inputs)
{
    /* tile_rows(c) * c <= max(TILE_FLOATS, ROW_ALIGN * c) for every c. */
    int64_t small = (int64_t)ROW_ALIGN * max_cols;
    size_t prep = 0;

    /* The largest layout of any group size: 32 has the most groups, but
     * larger groups round up to more elements (3 groups of 64 take 8 * 64
     * codes, 6 of 32 take 8 * 32), so no single size bounds the others. */
    for (int gs = 32; gs <= 128; gs *= 2)
        if (eng_xq_bytes(max_cols, gs) > prep)
            prep = eng_xq_bytes(max_cols, gs);
    prep = (prep + 63) / 64 * 64;

    memset(s, 0, sizeof *s);
    s->act_bits = 16;
    s->cursors = aligned_alloc(_Alignof(struct eng_chunk_cursor),
                               (size_t)n_threads * sizeof(struct eng_chunk_cursor));
    s->per_thread = (size_t)(small > TILE_FLOATS ? small : TILE_FLOATS);
    s->buf = malloc((size_t)n_threads * s->per_thread * sizeof(float));
    s->prep_bytes = prep;
    s->n_prep = ENG_PREP_SLOTS + extra_inputs;
    s->prep = aligned_alloc(64, (size_t)s->n_prep * prep);
#if defined(ENG_HAVE_AVX2)
    if (own_gemm() && max_tokens > 1) {
        s->xp = malloc(eng_gemm_xp_floats(max_tokens, max_cols) * sizeof(float));
        s->xq = aligned_alloc(64, (eng_gemm_xq_bytes(max_tokens, max_cols) + 63) / 64 * 64);
    }
#endif
    if (!s->buf || !s->prep || !s->cursors ||
        (own_gemm() && max_tokens > 1 && (!s->xp || !s->xq))) {
        eng_gemm_scratch_free(s);
        return SH_ENOMEM;
    }
    return 0;
}

void eng_gemm_scratch_free(struct eng_gemm_scratch *s)
{
    free(s->buf);
    free(s->xp);
    free(s->xq);
    free(s->prep);
    free(s->cursors);
    memset(s, 0, sizeof *s);
}

struct linear_job {
    const struct eng_linear *out;
    int n_out;
    const float *x; /* (n, cols) */
    size_t ldx;
    int n;
    int64_t total_rows; /* over all outputs */
    const struct eng_gemm_scratch *scratch;
    const struct eng_mat_ops *ops[ENG_LINEAR_MAX_OUT];
    const void *xin[ENG_LINEAR_MAX_OUT]; /* decode: x or its eng_xq */
    const float *xp;                     /* prompt: x packed for eng_gemm_avx2, or NULL */
    const struct eng_gemm_xq *xq;        /* prompt: x's codes for eng_gemm_q_avx2, or NULL */
    int64_t chunk_rows;                  /* on several threads: rows per chunk (run_chunks) */
    enum eng_isa isa;                    /* prompt: the micro-kernels' (eng_isa_best) */
};

/* y[:, r0:r1] = x W[r0:r1]^T through f32 tiles and SGEMM. */
static void gemm_rows(const struct eng_linear *o,
                      int64_t r0,
                      int64_t r1,
                      const float *x,
                      size_t ldx,
                      int n,
                      float *scratch)
{
    const struct eng_mat *w = o->w;
    const struct eng_mat_ops *ops = eng_mat_ops(w->dtype);
    int64_t step = tile_rows(w->cols);

    for (int64_t r = r0; r < r1; r += step) {
        int64_t e = r + step < r1 ? r + step : r1;
        const float *b;
        size_t ldb;
        if (w->dtype == ENG_DT_F32) {
            b = (const float *)((const uint8_t *)w->data + (size_t)r * w->row_stride);
            ldb = w->row_stride / sizeof(float);
        } else {
            ops->rows_to_f32(w, r, e, scratch);
            b = scratch;
            ldb = (size_t)w->cols;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, (int)(e - r), (int)w->cols, 1.0f, x,
                    (int)ldx, b, (int)ldb, 0.0f, o->y + r, (int)o->ldy);
    }
}

/* y = x W^T for the global rows [r0, r1) (over all outputs, cut at their
 * boundaries), on thread t (its scratch). */
static void run_range(const struct linear_job *job, int t, int64_t r0, int64_t r1)
{
    int64_t base = 0;
    float *scratch = job->scratch->buf + (size_t)t * job->scratch->per_thread;

    for (int j = 0; j < job->n_out && base < r1; j++) {
        const struct eng_linear *o = &job->out[j];
        int64_t a = r0 > base ? r0 - base : 0;
        int64_t b = r1 - base < o->w->rows ? r1 - base : o->w->rows;
        if (a < b) {
            if (job->n == 1)
                job->ops[j]->dot_rows(o->w, job->xin[j], o->y, a, b);
#if defined(ENG_HAVE_AVX2)
            else if (job->xq)
                eng_gemm_q_avx2(o->w, a, b, job->xq, o->y, o->ldy, scratch, job->isa);
            else if (job->xp)
                eng_gemm_avx2(o->w, eng_mat_ops(o->w->dtype), a, b, job->xp, job->n, o->y, o->ldy,
                              scratch, job->isa);
#endif
            else
                gemm_rows(o, a, b, o->x ? o->x : job->x, job->ldx, job->n, scratch);
        }
        base += o->w->rows;
    }
}

/* Chunks [c, c + k). */
static void run_chunks_at(const struct linear_job *job, int t, uint32_t c, uint32_t k)
{
    int64_t r0 = (int64_t)c * job->chunk_rows, r1 = r0 + (int64_t)k * job->chunk_rows;

    run_range(job, t, r0, r1 < job->total_rows ? r1 : job->total_rows);
}

/* This thread's chunks front first, then the others' from their backs
 * (cursors set by run_chunks).
 * In decode the owner claims half of what is left of its run at a time
 * (a prompt's owner, one tile): one kernel call then reads a long range,
 * whose two streams (kern_avx2.h) the prefetcher follows without starting
 * over at every chunk, while the run's end still comes in single chunks
 * for thieves to even out. Against one chunk per claim, on 2 threads:
 * bench_kernels q8 at 896 columns, kernel rate over read bandwidth 0.73
 * -> 0.84 (means of 12 alternated rounds); tg64 medians of 4 alternated
 * runs, Llama-3.2-1B 8-bit 18.7 -> 21.3 tok/s, bf16 11.4 -> 11.9,
 * Qwen2.5-0.5B bf16 26.2 -> 28.8. */
static void steal_worker(void *arg, int t, int nt)
{
    const struct linear_job *job = arg;

    for (int k = 0; k < nt; k++) {
        _Atomic uint64_t *fb = &job->scratch->cursors[(t + k) % nt].front_back;
        uint64_t v = atomic_load_explicit(fb, memory_order_relaxed);
        for (;;) {
            uint32_t front = (uint32_t)v, back = (uint32_t)(v >> 32), take = 1;
            if (front >= back)
                break;
            if (k == 0 && job->n == 1 && back - front > 1)
                take = (back - front) / 2;
            /* the owner takes from the front, a thief the back chunk; on
             * failure v is reloaded: try again with what is left */
            if (atomic_compare_exchange_weak(fb, &v, k == 0 ? v + take : v - ((uint64_t)1 << 32))) {
                run_chunks_at(job, t, k == 0 ? front : back - 1, take);
                v = atomic_load_explicit(fb, memory_order_relaxed);
            }
        }
    }
}

/* Decode: points each output at its input, preparing each input once per
 * kind of weight (dtype, group size, layout) into the scratch slots. Returns how
 * many outputs (a prefix) fit in the slots; the caller runs the rest after. */
static int prepare_inputs(struct linear_job *job)
{
    const float *slot_x[ENG_PREP_SLOTS + ENG_LINEAR_MAX_OUT];
    enum eng_dtype slot_dt[ENG_PREP_SLOTS + ENG_LINEAR_MAX_OUT];
    int slot_gs[ENG_PREP_SLOTS + ENG_LINEAR_MAX_OUT];
    bool slot_flat[ENG_PREP_SLOTS + ENG_LINEAR_MAX_OUT]; /* the layout the codes follow */
    int slots = 0, cap = job->scratch->n_prep;

    cap = cap < ENG_PREP_SLOTS + ENG_LINEAR_MAX_OUT ? cap : ENG_PREP_SLOTS + ENG_LINEAR_MAX_OUT;
    for (int j = 0; j < job->n_out; j++) {
        const struct eng_mat *w = job->out[j].w;
        const float *x = job->out[j].x ? job->out[j].x : job->x;
        int k = 0;
        job->ops[j] = eng_mat_ops(w->dtype);
        job->xin[j] = x;
        if (!job->ops[j]->prep)
            continue;
        while (k < slots && !(slot_x[k] == x && slot_dt[k] == w->dtype &&
                              slot_gs[k] == w->group_size && slot_flat[k] == w->flat))
            k++;
        if (k == slots) {
            uint8_t *buf = job->scratch->prep + (size_t)k * job->scratch->prep_bytes;
            if (slots == cap)
                return j;
            job->ops[j]->prep(
                w, x, eng_xq_init(buf, w->cols, w->group_size, w->dtype, job->scratch->act_bits));
            slot_x[k] = x;
            slot_dt[k] = w->dtype;
            slot_gs[k] = w->group_size;
            slot_flat[k] = w->flat;
            slots++;
        }
        job->xin[j] = job->scratch->prep + (size_t)k * job->scratch->prep_bytes;
    }
    return job->n_out;
}

#if defined(ENG_HAVE_AVX2)
/* The integer product's token blocks, prepared by all threads. */
struct prep_job {
    const float *x;
    size_t ldx;
    const struct eng_gemm_xq *xq;
};

static void prep_worker(void *arg, int t, int nt)
{
    const struct prep_job *pj = arg;
    int blocks = eng_gemm_xq_blocks(pj->xq);

    eng_gemm_prep_q(pj->x, pj->ldx, pj->xq, blocks * t / nt, blocks * (t + 1) / nt);
}

/* The f32 product's packed tokens (eng_gemm_pack_x), by all threads: on
 * one thread the other waited about 5% of a layer's products (bf16, 128
 * tokens, 2 threads: alternated call by call in one process, Qwen2.5-0.5B's
 * shapes +3.4% to +5.5%, Llama-3.2-1B's +7.5%). */
struct pack_job {
    const float *x;
    size_t ldx;
    int n;
    int64_t k;
    float *xp;
};

static void pack_worker(void *arg, int t, int nt)
{
    const struct pack_job *pk = arg;
    int blocks = eng_gemm_x_blocks(pk->n);

    eng_gemm_pack_x_blocks(pk->x, pk->ldx, pk->n, pk->k, pk->xp, blocks * t / nt,
                           blocks * (t + 1) / nt);
}

/* Whether a prompt call runs the integer product: all its outputs Q4/Q8
 * in the AVX2 layout with one group size (their input is prepared once for
 * that size). A call mixing group sizes or float weights (possible only
 * with per-layer quantization overrides) runs the f32 product instead. */
static bool integer_prompt(const struct eng_linear *out, int n_out)
{
    for (int j = 0; j < n_out; j++) {
        const struct eng_mat *w = out[j].w;
        if ((w->dtype != ENG_DT_Q4 && w->dtype != ENG_DT_Q8) || !w->interleaved ||
            w->group_size != out[0].w->group_size)
            return false;
    }
    return true;
}
#endif

/* Cuts the rows into chunks, deals each thread a contiguous run of them,
 * and lets steal_worker balance the ends. Decode's chunks hold about
 * CHUNK_BYTES of weights; the prompt's are the conversion tiles (whole
 * panels for our own kernels). */
static void run_chunks(struct eng_pool *pool, struct linear_job *job)
{
    const struct eng_mat *w = job->out[0].w;
    int nt = eng_pool_size(pool);
    int64_t chunks;

    if (job->n > 1) {
        job->chunk_rows = job->xp || job->xq ? rows_near(w->cols, PANEL_ALIGN) : tile_rows(w->cols);
    } else {
        int64_t rows = (int64_t)(CHUNK_BYTES / (w->row_stride + 2 * w->sb_stride));
        job->chunk_rows = rows < ROW_ALIGN ? ROW_ALIGN : rows / ROW_ALIGN * ROW_ALIGN;
    }
    chunks = (job->total_rows + job->chunk_rows - 1) / job->chunk_rows;
    for (int t = 0; t < nt; t++) {
        uint64_t front = (uint64_t)(chunks * t / nt), back = (uint64_t)(chunks * (t + 1) / nt);
        atomic_store_explicit(&job->scratch->cursors[t].front_back, front | back << 32,
                              memory_order_relaxed);
    }
    /* eng_pool_run publishes the job (and these stores) with its gen bump */
    eng_pool_run(pool, steal_worker, job);
}

void eng_linear_run(struct eng_pool *pool,
                    const struct eng_gemm_scratch *scratch,
                    const struct eng_linear *out,
                    int n_out,
                    const float *x,
                    size_t ldx,
                    int n)
{
    while (n_out > 0) {
        struct linear_job job = {.out = out,
                                 .n_out = n_out,
                                 .x = x,
                                 .ldx = ldx,
                                 .n = n,
                                 .scratch = scratch,
                                 .isa = eng_isa_best()};
        int64_t macs = 0;
#if defined(ENG_HAVE_AVX2)
        struct eng_gemm_xq xq;
#endif
        if (n == 1)
            job.n_out = prepare_inputs(&job);
#if defined(ENG_HAVE_AVX2)
        else if (scratch->xq && integer_prompt(out, n_out)) {
            struct prep_job pj = {x, ldx, &xq};
            eng_gemm_xq_init(scratch->xq, n, out[0].w->cols, out[0].w->group_size, &xq);
            if (eng_gemm_xq_blocks(&xq) > 1)
                eng_pool_run(pool, prep_worker, &pj);
            else
                prep_worker(&pj, 0, 1);
            job.xq = &xq;
        } else if (scratch->xp) {
            struct pack_job pk = {x, ldx, n, out[0].w->cols, scratch->xp};
            if (eng_gemm_x_blocks(n) > 1)
                eng_pool_run(pool, pack_worker, &pk);
            else
                pack_worker(&pk, 0, 1);
            job.xp = scratch->xp;
        }
#endif
        for (int j = 0; j < job.n_out; j++) {
            job.total_rows += out[j].w->rows;
            macs += out[j].w->rows * out[j].w->cols * n;
        }
        if (macs < PAR_MIN_MACS || eng_pool_size(pool) == 1)
            run_range(&job, 0, 0, job.total_rows);
        else
            run_chunks(pool, &job);
        out += job.n_out;
        n_out -= job.n_out;
    }
}
