/* engine/forward.c: one sequence's state (KV cache, activations) and the
 * transformer forward pass over it.
 *
 * The structure follows llama2.c's forward(): embed, then per layer
 * attention (RMSNorm, q/k/v, RoPE, causal GQA attention over the cache, o)
 * and MLP (RMSNorm, SwiGLU or a mixture of SwiGLU experts), each added to
 * the residual stream; then the final norm and the LM head. Activations are
 * f32; weights are read in their stored dtype through eng_linear_run.
 *
 * A prompt is processed in chunks of up to ENG_CHUNK tokens (or the
 * context's eng_ctx_opts.chunk): the linear layers of a chunk are
 * matrix-matrix products, and so is attention where the AVX2 kernels run
 * (attn_prompt.c: blocks of 16 tokens against blocks of keys); elsewhere
 * it runs per (token, KV head) over the pool.
 * A single token (decode) takes the matrix-vector path. All buffers are
 * sized in eng_ctx_new: eng_forward allocates nothing.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "common/util.h"
#include "engine/internal.h"

/* Prompt tokens per chunk unless eng_ctx_opts.chunk says otherwise: large
 * enough that the prompt product amortizes converting a weight tile and
 * waking the pool, small enough that the activations stay a few MiB. 128
 * against the former 64, 2 threads, pp128, 4 rounds alternated: 11 of 12
 * pairs faster, Qwen2.5-0.5B bf16 median 139 -> 158 tok/s, 8-bit 174 ->
 * 202, Llama-3.2-1B bf16 54 -> 58; one thread unchanged. Against 256 and
 * 512 on a 512-token prompt: no difference beyond noise. */
#define ENG_CHUNK 128
/* The most tokens per chunk a context may ask for. */
#define ENG_CHUNK_MAX 4096
/* SwiGLU elements below which the pool is not woken. */
#define SWIGLU_PAR_MIN (1 << 14)
/* Attention multiply-adds below which the pool is not woken. */
#define ATTN_PAR_MIN (1 << 15)

struct eng_ctx {
    const struct eng_model *m; /* borrowed */
    struct eng_pool *pool;     /* borrowed */
    int n_ctx;                 /* capacity in positions */
    int chunk;                 /* prompt tokens per forward_chunk */
    int pos;                   /* positions in the cache */
    int n_threads;
    /* KV cache; a position's keys are after RoPE */
    uint8_t *key_cache;   /* (n_layers, n_ctx, kv_dim) of kv_size bytes */
    uint8_t *value_cache; /* (n_layers, n_ctx, kv_dim) of kv_size bytes */
    size_t kv_size;       /* bytes per cached element: 4 (f32) or 2 (f16) */
    const struct eng_kv_ops *kv;
    /* activations of one chunk of up to `chunk` tokens */
    float *x;        /* (chunk, dim) residual stream */
    float *xb;       /* (chunk, dim) normalized input of a block */
    float *q;        /* (chunk, q_dim) */
    float *k;        /* (chunk, kv_dim) */
    float *v;        /* (chunk, kv_dim) */
    float *att_out;  /* (chunk, q_dim) attention output, heads side by side */
    float *proj;     /* (chunk, dim) output of o_proj / down_proj */
    float *hb;       /* (max(chunk, k), ffn_dim) gate, then silu(gate) * up */
    float *hb2;      /* (max(chunk, k), ffn_dim) up */
    float *rope_cos; /* (chunk, head_dim / 2) */
    float *rope_sin; /* (chunk, head_dim / 2) */
    float *scores;   /* (n_threads, group, n_ctx) attention weights of one thread's
                      * query heads sharing a KV head */
    float *attn_buf; /* (n_threads, eng_attn_prompt_floats) or NULL: no
                      * prompt attention as matrix products */
    size_t attn_floats;
    /* mixture of experts */
    float *ffn_out; /* (chunk, dim) sum of the experts' outputs */
    float *probs;   /* (chunk, n_experts) routing probabilities */
    int *sel;       /* (chunk, n_experts_per_tok) chosen experts */
    float *sel_w;   /* (chunk, n_experts_per_tok) their weights */
    int *rows;      /* (chunk) tokens routed to the current expert */
    float *rows_w;  /* (chunk) their weights */
    float *xe;      /* (max(chunk, k), dim) inputs of the current expert; decode:
                     * the outputs of the k chosen experts */
    struct eng_gemm_scratch scratch;
};

/* ---- context */

/* *out = a * b * c floats, or false on overflow. */
static bool floats3(size_t a, size_t b, size_t c, size_t *out)
{
    size_t ab;
    return sh_mul_size(a, b, &ab) && sh_mul_size(ab, c, out) &&
           sh_mul_size(*out, sizeof(float), &ab);
}

bool eng_kv_type_parse(const char *s, enum eng_kv_type *out)
{
    if (strcmp(s, "f32") == 0)
        *out = ENG_KV_F32;
    else if (strcmp(s, "f16") == 0)
        *out = ENG_KV_F16;
    else
        return false;
    return true;
}

bool eng_act_bits_parse(const char *s, int *out)
{
    if (strcmp(s, "16") != 0 && strcmp(s, "8") != 0)
        return false;
    *out = s[0] == '8' ? 8 : 16;
    return true;
}

const char *eng_kv_type_name(enum eng_kv_type t)
{
    return t == ENG_KV_F16 ? "f16" : "f32";
}

int eng_ctx_new(const struct eng_model *m,
                struct eng_pool *pool,
                int n_ctx,
                struct eng_ctx **out,
                struct sh_err *err)
{
    struct eng_ctx_opts o = {.n_ctx = n_ctx, .kv_type = ENG_KV_F32};
    return eng_ctx_new_ex(m, pool, &o, out, err);
}

int eng_ctx_new_ex(const struct eng_model *m,
                   struct eng_pool *pool,
                   const struct eng_ctx_opts *opts,
                   struct eng_ctx **out,
                   struct sh_err *err)
{
    const struct eng_config *c = &m->cfg;
    size_t q_dim = (size_t)c->n_heads * (size_t)c->head_dim;
    size_t kv_dim = (size_t)c->n_kv_heads * (size_t)c->head_dim;
    size_t ffn = (size_t)(c->hidden_dim > c->moe_hidden_dim ? c->hidden_dim : c->moe_hidden_dim);
    size_t dim = (size_t)c->dim, nb, kv_floats, max_cols;
    size_t half = (size_t)c->head_dim / 2, ne = (size_t)c->n_experts;
    size_t topk = (size_t)c->n_experts_per_tok;
    size_t group = (size_t)(c->n_heads / c->n_kv_heads);
    size_t kv_size = opts->kv_type == ENG_KV_F16 ? 2 : 4;
    int n_ctx = opts->n_ctx, chunk;
    struct eng_ctx *ctx;

    if (opts->kv_type != ENG_KV_F32 && opts->kv_type != ENG_KV_F16)
        return sh_err_set(err, SH_EINVAL, "KV cache type %d: f32 or f16", (int)opts->kv_type);
    if (opts->act_bits != 0 && opts->act_bits != 8 && opts->act_bits != 16)
        return sh_err_set(err, SH_EINVAL, "activation codes of %d bits: 8 or 16", opts->act_bits);
    if (opts->chunk < 0 || opts->chunk > ENG_CHUNK_MAX)
        return sh_err_set(err, SH_EINVAL, "prompt chunks of %d tokens: 1 to %d, or 0 for %d",
                          opts->chunk, ENG_CHUNK_MAX, ENG_CHUNK);
    if (n_ctx <= 0)
        n_ctx = c->max_pos;
    if (n_ctx > c->max_pos)
        return sh_err_set(err, SH_EINVAL, "context of %d positions exceeds the model's %d", n_ctx,
                          c->max_pos);
    if (!floats3((size_t)c->n_layers, (size_t)n_ctx, kv_dim, &kv_floats))
        return sh_err_set(err, SH_ENOMEM, "a KV cache of %d positions does not fit in memory",
                          n_ctx);
    chunk = opts->chunk > 0 ? opts->chunk : ENG_CHUNK;
    nb = (size_t)(n_ctx < chunk ? n_ctx : chunk);
    max_cols = dim > q_dim ? dim : q_dim;
    max_cols = max_cols > ffn ? max_cols : ffn;
    ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    ctx->m = m;
    ctx->pool = pool;
    ctx->n_ctx = n_ctx;
    ctx->chunk = (int)nb;
    ctx->n_threads = eng_pool_size(pool);
    ctx->kv_size = kv_size;
    ctx->kv = eng_kv_ops(opts->kv_type == ENG_KV_F16 ? ENG_DT_F16 : ENG_DT_F32);
    /* calloc: pages of a large cache are only touched as positions fill. */
    ctx->key_cache = calloc(kv_floats, kv_size);
    ctx->value_cache = calloc(kv_floats, kv_size);
    ctx->x = malloc(nb * dim * sizeof(float));
    ctx->xb = malloc(nb * dim * sizeof(float));
    ctx->q = malloc(nb * q_dim * sizeof(float));
    ctx->k = malloc(nb * kv_dim * sizeof(float));
    ctx->v = malloc(nb * kv_dim * sizeof(float));
    ctx->att_out = malloc(nb * q_dim * sizeof(float));
    ctx->proj = malloc(nb * dim * sizeof(float));
    /* (rows: the chunk, or the k experts of one decoded token) */
    ctx->hb = malloc((nb > topk ? nb : topk) * ffn * sizeof(float));
    ctx->hb2 = malloc((nb > topk ? nb : topk) * ffn * sizeof(float));
    ctx->rope_cos = malloc(nb * half * sizeof(float));
    ctx->rope_sin = malloc(nb * half * sizeof(float));
    ctx->scores = malloc((size_t)ctx->n_threads * group * (size_t)n_ctx * sizeof(float));
    if (ne) {
        ctx->ffn_out = malloc(nb * dim * sizeof(float));
        ctx->probs = malloc(nb * ne * sizeof(float));
        ctx->sel = malloc(nb * topk * sizeof(int));
        ctx->sel_w = malloc(nb * topk * sizeof(float));
        ctx->rows = malloc(nb * sizeof(int));
        ctx->rows_w = malloc(nb * sizeof(float));
        ctx->xe = malloc((nb > topk ? nb : topk) * dim * sizeof(float));
    }
    if (!ctx->key_cache || !ctx->value_cache || !ctx->x || !ctx->xb || !ctx->q || !ctx->k ||
        !ctx->v || !ctx->att_out || !ctx->proj || !ctx->hb || !ctx->hb2 || !ctx->rope_cos ||
        !ctx->rope_sin || !ctx->scores ||
        eng_gemm_scratch_init(&ctx->scratch, ctx->n_threads, (int64_t)max_cols, (int)nb,
                              c->n_experts_per_tok) != 0 ||
        (ne && (!ctx->ffn_out || !ctx->probs || !ctx->sel || !ctx->sel_w || !ctx->rows ||
                !ctx->rows_w || !ctx->xe))) {
        eng_ctx_free(ctx);
        return sh_err_set(err, SH_ENOMEM, "out of memory for a context of %d positions", n_ctx);
    }
    ctx->scratch.act_bits = opts->act_bits == 8 ? 8 : 16;
#if defined(ENG_HAVE_AVX2)
    /* prompt attention as matrix products where the linear layers run
     * eng_gemm_avx2 (its scratch has xp then) */
    if (ctx->scratch.xp) {
        ctx->attn_floats = eng_attn_prompt_floats((int)group, c->head_dim);
        ctx->attn_buf = malloc((size_t)ctx->n_threads * ctx->attn_floats * sizeof(float));
        if (!ctx->attn_buf) {
            eng_ctx_free(ctx);
            return sh_err_set(err, SH_ENOMEM, "out of memory for a context of %d positions", n_ctx);
        }
    }
#endif
    /* Prompt SGEMMs run one per pool thread: OpenBLAS must not start
     * threads of its own inside them (process-wide setting). */
    openblas_set_num_threads(1);
    *out = ctx;
    return 0;
}

void eng_ctx_free(struct eng_ctx *ctx)
{
    if (!ctx)
        return;
    free(ctx->key_cache);
    free(ctx->value_cache);
    free(ctx->x);
    free(ctx->xb);
    free(ctx->q);
    free(ctx->k);
    free(ctx->v);
    free(ctx->att_out);
    free(ctx->proj);
    free(ctx->hb);
    free(ctx->hb2);
    free(ctx->rope_cos);
    free(ctx->rope_sin);
    free(ctx->scores);
    free(ctx->attn_buf);
    eng_gemm_scratch_free(&ctx->scratch);
    free(ctx->ffn_out);
    free(ctx->probs);
    free(ctx->sel);
    free(ctx->sel_w);
    free(ctx->rows);
    free(ctx->rows_w);
    free(ctx->xe);
    free(ctx);
}

int eng_ctx_pos(const struct eng_ctx *ctx)
{
    return ctx->pos;
}

int eng_ctx_capacity(const struct eng_ctx *ctx)
{
    return ctx->n_ctx;
}

void eng_ctx_truncate(struct eng_ctx *ctx, int pos)
{
    if (pos >= 0 && pos < ctx->pos)
        ctx->pos = pos;
}

/* ---- attention */

/* Layer l's sliding window in positions; 0: it attends to every position. */
static int layer_window(const struct eng_config *c, int l)
{
    return c->sliding_window > 0 && l >= c->swa_first_layer ? c->sliding_window : 0;
}

struct attn_job {
    struct eng_ctx *ctx;
    int layer;
    int n;  /* tokens in the chunk */
    int p0; /* position of the first */
};

#if defined(ENG_HAVE_AVX2)
/* Prompts of at least this many tokens take attention as matrix products
 * (attn_prompt.c): its items are blocks of 16 tokens, and fewer tokens
 * than this would leave most of a block's work padding. */
#define ATTN_BLOCK_MIN 8

struct attn_prompt_job {
    struct eng_ctx *ctx;
    const struct eng_attn_prompt *a;
};

static void attn_prompt_worker(void *arg, int t, int nt)
{
    const struct attn_prompt_job *job = arg;
    struct eng_ctx *ctx = job->ctx;
    float *buf = ctx->attn_buf + (size_t)t * ctx->attn_floats;
    float *wbuf = ctx->scratch.buf + (size_t)t * ctx->scratch.per_thread;
    long items = eng_attn_prompt_items(job->a);

    /* round robin: later token blocks attend to more keys */
    for (long j = t; j < items; j += nt)
        eng_attn_prompt_run(job->a, j, buf, wbuf);
}
#endif

/* Causal attention of the chunk's tokens, keys and values already in the
 * cache. One work item is a (token, KV head) pair and covers the group of
 * query heads sharing that KV head, so each cached key and value row is
 * read once per token (not once per query head): scores of the whole group
 * against each key, a softmax per head, then each value row added into the
 * group's outputs. Items go round-robin to the threads: later tokens of a
 * prompt see more positions, and neighbours even the load out. */
static void attn_worker(void *arg, int t, int nt)
{
    const struct attn_job *job = arg;
    struct eng_ctx *ctx = job->ctx;
    const struct eng_config *c = &ctx->m->cfg;
    const struct eng_kv_ops *kv = ctx->kv;
    int hd = c->head_dim, group = c->n_heads / c->n_kv_heads;
    size_t q_dim = (size_t)c->n_heads * (size_t)hd;
    size_t kv_dim = (size_t)c->n_kv_heads * (size_t)hd;
    size_t row = kv_dim * ctx->kv_size; /* bytes per cached position */
    size_t layer_off = (size_t)job->layer * (size_t)ctx->n_ctx * row;
    int window = layer_window(c, job->layer);
    float scale = (float)(1.0 / sqrt((double)hd));
    float *att = ctx->scores + (size_t)t * (size_t)group * (size_t)ctx->n_ctx;
    long total = (long)job->n * c->n_kv_heads;

    for (long j = t; j < total; j += nt) {
        int i = (int)(j / c->n_kv_heads), h = (int)(j % c->n_kv_heads);
        int p = job->p0 + i;
        int lo = eng_attn_first_key(p, window);
        int len = p - lo + 1;
        size_t head_off = layer_off + (size_t)h * (size_t)hd * ctx->kv_size;
        const float *q = ctx->q + (size_t)i * q_dim + (size_t)h * (size_t)group * (size_t)hd;
        float *out = ctx->att_out + (size_t)i * q_dim + (size_t)h * (size_t)group * (size_t)hd;

        /* scores = q . k_s / sqrt(head_dim), each key read once for the group */
        for (int s = lo; s <= p; s++) {
            const uint8_t *k = ctx->key_cache + head_off + (size_t)s * row;
            for (int g = 0; g < group; g++)
                att[(size_t)g * (size_t)len + (size_t)(s - lo)] =
                    kv->dot(q + (size_t)g * (size_t)hd, k, hd) * scale;
        }
        for (int g = 0; g < group; g++)
            eng_softmax(att + (size_t)g * (size_t)len, len);
        /* out = sum_s att_s v_s, each value row read once for the group */
        memset(out, 0, (size_t)group * (size_t)hd * sizeof *out);
        for (int s = lo; s <= p; s++) {
            const uint8_t *v = ctx->value_cache + head_off + (size_t)s * row;
            for (int g = 0; g < group; g++)
                kv->axpy(out + (size_t)g * (size_t)hd,
                         att[(size_t)g * (size_t)len + (size_t)(s - lo)], v, hd);
        }
    }
}

static void add_bias(float *y, const float *b, int n, size_t width)
{
    for (int i = 0; i < n; i++)
        eng_add(y + (size_t)i * width, b, width);
}

/* Attention of layer l for the chunk's n tokens; returns the rows that go
 * on. Every token's keys and values go into the cache, but only the last
 * `keep` tokens' outputs are computed (the final layer's other outputs
 * feed nothing): their queries and residual rows move to the front. */
static int attention(struct eng_ctx *ctx, int l, int n, int keep)
{
    const struct eng_model *m = ctx->m;
    const struct eng_config *c = &m->cfg;
    const struct eng_layer *L = &m->layers[l];
    size_t dim = (size_t)c->dim, hd = (size_t)c->head_dim;
    size_t q_dim = (size_t)c->n_heads * hd, kv_dim = (size_t)c->n_kv_heads * hd;
    size_t half = hd / 2;
    size_t cache_off = ((size_t)l * (size_t)ctx->n_ctx + (size_t)ctx->pos) * kv_dim * ctx->kv_size;
    struct eng_linear qkv[3] = {{&L->wq, ctx->q, q_dim, NULL},
                                {&L->wk, ctx->k, kv_dim, NULL},
                                {&L->wv, ctx->v, kv_dim, NULL}};
    struct eng_linear o = {&L->wo, ctx->proj, dim, NULL};
    struct attn_job job;
    int p0 = ctx->pos;

    /* xb = rmsnorm(x) */
    for (int i = 0; i < n; i++)
        eng_rmsnorm(ctx->xb + i * dim, ctx->x + i * dim, L->attn_norm, c->dim, c->norm_eps);
    /* q, k, v = xb Wq^T, xb Wk^T, xb Wv^T (+ biases) */
    eng_linear_run(ctx->pool, &ctx->scratch, qkv, 3, ctx->xb, dim, n);
    if (L->bq) {
        add_bias(ctx->q, L->bq, n, q_dim);
        add_bias(ctx->k, L->bk, n, kv_dim);
        add_bias(ctx->v, L->bv, n, kv_dim);
    }
    for (int i = 0; i < n; i++) {
        float *q = ctx->q + i * q_dim, *k = ctx->k + i * kv_dim;
        /* qwen3: RMSNorm of each head of q and k, before RoPE */
        if (L->q_norm) {
            for (int h = 0; h < c->n_heads; h++)
                eng_rmsnorm(q + h * hd, q + h * hd, L->q_norm, c->head_dim, c->norm_eps);
            for (int h = 0; h < c->n_kv_heads; h++)
                eng_rmsnorm(k + h * hd, k + h * hd, L->k_norm, c->head_dim, c->norm_eps);
        }
        /* RoPE on q and k at this token's position */
        eng_rope(q, c->n_heads, c->head_dim, ctx->rope_cos + i * half, ctx->rope_sin + i * half);
        eng_rope(k, c->n_kv_heads, c->head_dim, ctx->rope_cos + i * half, ctx->rope_sin + i * half);
    }
    /* append k and v to the cache */
    ctx->kv->store(ctx->key_cache + cache_off, ctx->k, n * (int)kv_dim);
    ctx->kv->store(ctx->value_cache + cache_off, ctx->v, n * (int)kv_dim);
    if (keep < n) {
        if (keep == 0)
            return 0;
        memmove(ctx->q, ctx->q + (size_t)(n - keep) * q_dim, (size_t)keep * q_dim * sizeof(float));
        memmove(ctx->x, ctx->x + (size_t)(n - keep) * dim, (size_t)keep * dim * sizeof(float));
        p0 += n - keep;
        n = keep;
    }
    job = (struct attn_job){ctx, l, n, p0};
    /* att_out = softmax(q k^T / sqrt(d)) v per head, causal (and windowed);
     * short work stays on this thread (see PAR_MIN_MACS in matmul.c) */
#if defined(ENG_HAVE_AVX2)
    if (ctx->attn_buf && n >= ATTN_BLOCK_MIN) {
        size_t layer_off = (size_t)l * (size_t)ctx->n_ctx * kv_dim * ctx->kv_size;
        struct eng_attn_prompt a = {.q = ctx->q,
                                    .q_stride = q_dim,
                                    .n = n,
                                    .p0 = p0,
                                    .n_heads = c->n_heads,
                                    .n_kv_heads = c->n_kv_heads,
                                    .head_dim = c->head_dim,
                                    .window = layer_window(c, l),
                                    .key_cache = ctx->key_cache + layer_off,
                                    .value_cache = ctx->value_cache + layer_off,
                                    .row = kv_dim * ctx->kv_size,
                                    .kv_dtype = ctx->kv_size == 2 ? ENG_DT_F16 : ENG_DT_F32,
                                    .out = ctx->att_out,
                                    .out_stride = q_dim};
        struct attn_prompt_job pj = {ctx, &a};
        if (eng_attn_prompt_items(&a) > 1)
            eng_pool_run(ctx->pool, attn_prompt_worker, &pj);
        else
            attn_prompt_worker(&pj, 0, 1);
    } else
#endif
        if ((int64_t)n * (p0 + n) * (int64_t)q_dim < ATTN_PAR_MIN)
        attn_worker(&job, 0, 1);
    else
        eng_pool_run(ctx->pool, attn_worker, &job);
    /* x += att_out Wo^T (+ bias) */
    eng_linear_run(ctx->pool, &ctx->scratch, &o, 1, ctx->att_out, q_dim, n);
    if (L->bo)
        add_bias(ctx->proj, L->bo, n, dim);
    eng_add(ctx->x, ctx->proj, (size_t)n * dim);
    return n;
}

/* ---- MLP */

struct swiglu_job {
    float *gate;
    const float *up;
    size_t n;
};

static void swiglu_worker(void *arg, int t, int nt)
{
    const struct swiglu_job *job = arg;
    size_t blocks = (job->n + 63) / 64; /* cache lines of both operands */
    size_t a = blocks * (size_t)t / (size_t)nt * 64, b = blocks * (size_t)(t + 1) / (size_t)nt * 64;

    b = b < job->n ? b : job->n;
    if (a < b)
        eng_swiglu(job->gate + a, job->up + a, b - a);
}

/* gate = silu(gate) * up over the pool when it is long (prompts). */
static void swiglu(struct eng_ctx *ctx, float *gate, const float *up, size_t n)
{
    struct swiglu_job job = {gate, up, n};

    if (n < SWIGLU_PAR_MIN)
        eng_swiglu(gate, up, n);
    else
        eng_pool_run(ctx->pool, swiglu_worker, &job);
}

/* out (n, dim) = down(silu(gate(in)) * up(in)) for one set of SwiGLU
 * weights; in (n, dim). */
static void swiglu_mlp(struct eng_ctx *ctx,
                       const struct eng_mat *gate,
                       const struct eng_mat *up,
                       const struct eng_mat *down,
                       const float *in,
                       int n,
                       float *out)
{
    size_t dim = (size_t)ctx->m->cfg.dim, hidden = (size_t)gate->rows;
    struct eng_linear gu[2] = {{gate, ctx->hb, hidden, NULL}, {up, ctx->hb2, hidden, NULL}};
    struct eng_linear d = {down, out, dim, NULL};

    eng_linear_run(ctx->pool, &ctx->scratch, gu, 2, in, dim, n);
    swiglu(ctx, ctx->hb, ctx->hb2, (size_t)n * hidden);
    eng_linear_run(ctx->pool, &ctx->scratch, &d, 1, ctx->hb, hidden, n);
}

/* Routing of token i: softmax over all experts in f32, the top k (ties to
 * the lower index), renormalized when norm_topk_prob. */
static void route(struct eng_ctx *ctx, int i)
{
    const struct eng_config *c = &ctx->m->cfg;
    float *p = ctx->probs + (size_t)i * (size_t)c->n_experts;
    int *sel = ctx->sel + (size_t)i * (size_t)c->n_experts_per_tok;
    float *w = ctx->sel_w + (size_t)i * (size_t)c->n_experts_per_tok;
    float sum = 0.0f;

    eng_softmax(p, c->n_experts);
    for (int j = 0; j < c->n_experts_per_tok; j++) {
        int best = -1;
        for (int e = 0; e < c->n_experts; e++) {
            bool taken = false;
            for (int q = 0; q < j; q++)
                taken |= sel[q] == e;
            if (!taken && (best < 0 || p[e] > p[best]))
                best = e;
        }
        sel[j] = best;
        w[j] = p[best];
        sum += p[best];
    }
    if (c->norm_topk_prob)
        for (int j = 0; j < c->n_experts_per_tok; j++)
            w[j] /= sum;
}

/* One token: the k chosen experts' gate and up projections in one call
 * (their rows split evenly over the threads), SwiGLU, their down
 * projections in a second call, each on its own expert's hidden vector;
 * then the weighted sum. Only the chosen experts' weights are read, and the
 * pool is woken twice per layer, not twice per expert. */
static void moe_decode(struct eng_ctx *ctx, const struct eng_layer *L)
{
    const struct eng_config *c = &ctx->m->cfg;
    size_t dim = (size_t)c->dim, hid = (size_t)c->moe_hidden_dim;
    int k = c->n_experts_per_tok;
    struct eng_linear out[ENG_LINEAR_MAX_OUT] = {{0}};

    for (int j = 0; j < k; j++) {
        const struct eng_expert *E = &L->experts[ctx->sel[j]];
        out[2 * j] = (struct eng_linear){&E->gate, ctx->hb + (size_t)j * hid, hid, NULL};
        out[2 * j + 1] = (struct eng_linear){&E->up, ctx->hb2 + (size_t)j * hid, hid, NULL};
    }
    eng_linear_run(ctx->pool, &ctx->scratch, out, 2 * k, ctx->xb, dim, 1);
    eng_swiglu(ctx->hb, ctx->hb2, (size_t)k * hid);
    for (int j = 0; j < k; j++) {
        const struct eng_expert *E = &L->experts[ctx->sel[j]];
        out[j] = (struct eng_linear){&E->down, ctx->xe + (size_t)j * dim, dim,
                                     ctx->hb + (size_t)j * hid};
    }
    eng_linear_run(ctx->pool, &ctx->scratch, out, k, NULL, hid, 1);
    /* ffn_out = sum_j w_j down_j, in selection order */
    memset(ctx->ffn_out, 0, dim * sizeof(float));
    for (int j = 0; j < k; j++) {
        const float *src = ctx->xe + (size_t)j * dim;
        float wj = ctx->sel_w[j];
        for (size_t d = 0; d < dim; d++)
            ctx->ffn_out[d] += wj * src[d];
    }
}

/* ffn_out = sum over each token's chosen experts of weight x expert(xb);
 * the experts run in index order, each on the tokens routed to it. */
static void moe(struct eng_ctx *ctx, const struct eng_layer *L, int n)
{
    const struct eng_config *c = &ctx->m->cfg;
    size_t dim = (size_t)c->dim, k = (size_t)c->n_experts_per_tok;
    struct eng_linear r = {&L->router, ctx->probs, (size_t)c->n_experts, NULL};

    /* probs = xb Wrouter^T, then top-k per token */
    eng_linear_run(ctx->pool, &ctx->scratch, &r, 1, ctx->xb, dim, n);
    for (int i = 0; i < n; i++)
        route(ctx, i);
    if (n == 1 && 2 * k <= ENG_LINEAR_MAX_OUT) {
        moe_decode(ctx, L);
        return;
    }
    memset(ctx->ffn_out, 0, (size_t)n * dim * sizeof(float));
    for (int e = 0; e < c->n_experts; e++) {
        const struct eng_expert *E = &L->experts[e];
        int cnt = 0;
        /* gather the tokens routed to e */
        for (int i = 0; i < n; i++) {
            for (size_t j = 0; j < k; j++) {
                if (ctx->sel[(size_t)i * k + j] == e) {
                    ctx->rows[cnt] = i;
                    ctx->rows_w[cnt] = ctx->sel_w[(size_t)i * k + j];
                    memcpy(ctx->xe + (size_t)cnt * dim, ctx->xb + (size_t)i * dim,
                           dim * sizeof(float));
                    cnt++;
                }
            }
        }
        if (cnt == 0)
            continue;
        swiglu_mlp(ctx, &E->gate, &E->up, &E->down, ctx->xe, cnt, ctx->proj);
        /* scatter-add weighted outputs */
        for (int q = 0; q < cnt; q++) {
            float *dst = ctx->ffn_out + (size_t)ctx->rows[q] * dim;
            const float *src = ctx->proj + (size_t)q * dim;
            for (size_t d = 0; d < dim; d++)
                dst[d] += ctx->rows_w[q] * src[d];
        }
    }
}

static void mlp(struct eng_ctx *ctx, int l, int n)
{
    const struct eng_config *c = &ctx->m->cfg;
    const struct eng_layer *L = &ctx->m->layers[l];
    size_t dim = (size_t)c->dim;

    /* xb = rmsnorm(x) */
    for (int i = 0; i < n; i++)
        eng_rmsnorm(ctx->xb + i * dim, ctx->x + i * dim, L->ffn_norm, c->dim, c->norm_eps);
    /* x += down(silu(gate(xb)) * up(xb)), or the experts' weighted sum */
    if (c->n_experts == 0) {
        swiglu_mlp(ctx, &L->w_gate, &L->w_up, &L->w_down, ctx->xb, n, ctx->proj);
        eng_add(ctx->x, ctx->proj, (size_t)n * dim);
    } else {
        moe(ctx, L, n);
        eng_add(ctx->x, ctx->ffn_out, (size_t)n * dim);
    }
}

/* ---- the forward pass of one chunk */

/* logits: NULL, (n, vocab) when all, else (vocab) for the last token. */
static void
forward_chunk(struct eng_ctx *ctx, const int32_t *tokens, int n, bool all, float *logits)
{
    const struct eng_model *m = ctx->m;
    const struct eng_config *c = &m->cfg;
    const struct eng_mat_ops *emb = eng_mat_ops(m->embed.dtype);
    size_t dim = (size_t)c->dim, half = (size_t)c->head_dim / 2;
    int rows = n;

    /* x = embedding rows of the tokens */
    for (int i = 0; i < n; i++)
        emb->rows_to_f32(&m->embed, tokens[i], tokens[i] + 1, ctx->x + i * dim);
    /* RoPE angles pos * inv_freq, in f32 as transformers computes them */
    for (int i = 0; i < n; i++) {
        float pos = (float)(ctx->pos + i);
        for (size_t j = 0; j < half; j++) {
            float a = pos * m->rope_inv_freq[j];
            ctx->rope_cos[i * half + j] = cosf(a);
            ctx->rope_sin[i * half + j] = sinf(a);
        }
    }
    /* The final layer computes only the rows whose logits are asked for
     * (none for a chunk before the prompt's last), as llama.cpp does: for
     * the last token, a prompt of 128 skips 127 rows of the final layer's
     * attention, o and MLP, 5.6% of Llama-3.2-1B's products. Those rows
     * then run as one token does in generation: same weights, the
     * single-token kernels (generation's activation codes too). */
    for (int l = 0; l < c->n_layers; l++) {
        int keep = l + 1 < c->n_layers || all ? rows : logits ? 1 : 0;
        rows = attention(ctx, l, rows, keep);
        if (rows > 0)
            mlp(ctx, l, rows);
    }
    ctx->pos += n;
    if (!logits)
        return;
    /* logits = rmsnorm(x) W_lm^T, for every token or the last */
    if (all) {
        struct eng_linear head = {&m->lm_head, logits, (size_t)c->vocab_size, NULL};
        for (int i = 0; i < n; i++)
            eng_rmsnorm(ctx->xb + i * dim, ctx->x + i * dim, m->final_norm, c->dim, c->norm_eps);
        eng_linear_run(ctx->pool, &ctx->scratch, &head, 1, ctx->xb, dim, n);
    } else {
        struct eng_linear head = {&m->lm_head, logits, (size_t)c->vocab_size, NULL};
        eng_rmsnorm(ctx->xb, ctx->x + (size_t)(rows - 1) * dim, m->final_norm, c->dim, c->norm_eps);
        eng_linear_run(ctx->pool, &ctx->scratch, &head, 1, ctx->xb, dim, 1);
    }
}

int eng_forward(struct eng_ctx *ctx,
                const int32_t *tokens,
                size_t n,
                bool all_logits,
                float *logits,
                struct sh_err *err)
{
    const struct eng_config *c = &ctx->m->cfg;
    size_t vocab = (size_t)c->vocab_size;

    if (n == 0)
        return sh_err_set(err, SH_EINVAL, "no tokens to evaluate");
    if (n > (size_t)(ctx->n_ctx - ctx->pos))
        return sh_err_set(err, SH_ERANGE,
                          "%zu tokens at position %d pass the context's %d positions", n, ctx->pos,
                          ctx->n_ctx);
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return sh_err_set(err, SH_ERANGE, "token %zu: id %d is outside the vocabulary [0, %d)",
                              i, (int)tokens[i], c->vocab_size);
    for (size_t s = 0; s < n; s += (size_t)ctx->chunk) {
        int cn = (int)(n - s < (size_t)ctx->chunk ? n - s : (size_t)ctx->chunk);
        bool last = s + (size_t)cn == n;
        float *out = NULL;
        if (logits && all_logits)
            out = logits + s * vocab;
        else if (logits && last)
            out = logits;
        forward_chunk(ctx, tokens + s, cn, all_logits, out);
    }
    return 0;
}
