/* engine/model.c: loading a model folder: config, safetensors, and binding
 * the tensors the config implies (names and shapes checked) into the
 * eng_model's weight views.
 *
 * Weight matrices are read in their stored dtype and copied once out of
 * the mmapped files into memory of their own (place_all: huge pages, and
 * the kernels' layout where they have one); the small vectors (norm
 * weights, biases) are converted to f32 copies. Every tensor in the files
 * must be used: a tensor we would ignore (a bias the config says is
 * absent, a q_norm in a "qwen2" model) means the config and the weights
 * disagree, and computing anyway would give wrong logits.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/util.h"
#include "engine/internal.h"

#define NAME_LEN 256

struct binder {
    struct eng_model *m;
    const char *dir;
    bool *used;      /* (st.n_tensors) */
    float *vec_next; /* next free float in m->vecs */
    uint64_t dt_bytes[ENG_DT_COUNT];
    struct sh_err *err;
};

/* Finds a tensor and checks its shape ([d0] or [d0, d1]); no dtype check. */
static int lookup(struct binder *b,
                  const char *name,
                  int n_dims,
                  int64_t d0,
                  int64_t d1,
                  const struct eng_tensor **out)
{
    const struct eng_st *st = &b->m->st;
    const struct eng_tensor *t = eng_st_find(st, name);

    if (!t)
        return sh_err_set(b->err, SH_ENOTFOUND, "%s: tensor %s is missing", b->dir, name);
    if (t->n_dims != n_dims || t->shape[0] != d0 || (n_dims == 2 && t->shape[1] != d1)) {
        char got[96] = "";
        size_t len = 0;
        for (int i = 0; i < t->n_dims && len < sizeof got - 24; i++)
            len += (size_t)snprintf(got + len, sizeof got - len, "%s%lld", i ? ", " : "",
                                    (long long)t->shape[i]);
        if (n_dims == 2)
            return sh_err_set(b->err, SH_EMALFORMED,
                              "%s: tensor %s has shape [%s], the config implies [%lld, %lld]",
                              eng_st_file_of(st, t), name, got, (long long)d0, (long long)d1);
        return sh_err_set(b->err, SH_EMALFORMED,
                          "%s: tensor %s has shape [%s], the config implies [%lld]",
                          eng_st_file_of(st, t), name, got, (long long)d0);
    }
    *out = t;
    return 0;
}

/* Counts t as used (once) by a weight of dtype `as` with `params` elements. */
static void mark(struct binder *b, const struct eng_tensor *t, enum eng_dtype as, uint64_t params)
{
    size_t idx = (size_t)(t - b->m->st.tensors);

    if (b->used[idx])
        return;
    b->used[idx] = true;
    b->m->n_params += params;
    b->m->weight_bytes += t->nbytes;
    b->dt_bytes[as] += t->nbytes;
}

/* lookup + the dtype must have kernels; marks the tensor used. */
static int find(struct binder *b,
                const char *name,
                int n_dims,
                int64_t d0,
                int64_t d1,
                const struct eng_tensor **out)
{
    int rc = lookup(b, name, n_dims, d0, d1, out);

    if (rc)
        return rc;
    if (!eng_mat_ops((*out)->dtype))
        return sh_err_set(b->err, SH_EUNSUPPORTED, "%s: tensor %s: dtype %s is not supported",
                          eng_st_file_of(&b->m->st, *out), name,
                          eng_dtype_info((*out)->dtype)->st_name);
    mark(b, *out, (*out)->dtype, (*out)->n_elems);
    return 0;
}

/* How module is stored: bits 0 for floats, else MLX affine with gs.
 * mlx-lm's rule (utils.py load_model): a module's own entry in the
 * quantization block wins; otherwise a module is quantized with the
 * defaults when its .scales tensor exists. */
static void module_quant(struct binder *b, const char *module, int *bits, int *gs)
{
    const struct eng_quant *q = &b->m->quant;
    const struct eng_quant_over *ov = q->bits ? eng_quant_find(q, module) : NULL;
    char name[NAME_LEN + 128];

    *bits = 0;
    *gs = 0;
    if (ov) {
        *bits = ov->bits;
        *gs = ov->group_size;
        return;
    }
    snprintf(name, sizeof name, "%s.scales", module);
    if (q->bits && eng_st_find(&b->m->st, name)) {
        *bits = q->bits;
        *gs = q->group_size;
    }
}

/* module.weight (U32 codes), module.scales and module.biases. */
static int bind_quant(struct binder *b,
                      const char *module,
                      int bits,
                      int gs,
                      int64_t rows,
                      int64_t cols,
                      struct eng_mat *out)
{
    const struct eng_st *st = &b->m->st;
    const struct eng_tensor *w, *sc, *bi;
    enum eng_dtype dt = bits == 4 ? ENG_DT_Q4 : ENG_DT_Q8;
    char name[NAME_LEN + 128];
    int rc;

    if (cols % gs != 0)
        return sh_err_set(b->err, SH_EMALFORMED,
                          "%s: %s has %lld input columns, not a multiple of its group size %d",
                          b->dir, module, (long long)cols, gs);
    snprintf(name, sizeof name, "%s.weight", module);
    if ((rc = lookup(b, name, 2, rows, cols * bits / 32, &w)))
        return sh_err_wrap(b->err, "%d-bit codes", bits);
    if (w->dtype != ENG_DT_U32)
        return sh_err_set(b->err, SH_EMALFORMED, "%s: tensor %s is %s, quantized codes are U32",
                          eng_st_file_of(st, w), name, eng_dtype_info(w->dtype)->st_name);
    snprintf(name, sizeof name, "%s.scales", module);
    if ((rc = lookup(b, name, 2, rows, cols / gs, &sc)))
        return rc;
    snprintf(name, sizeof name, "%s.biases", module);
    if ((rc = lookup(b, name, 2, rows, cols / gs, &bi)))
        return rc;
    if (sc->dtype != bi->dtype ||
        (sc->dtype != ENG_DT_F32 && sc->dtype != ENG_DT_F16 && sc->dtype != ENG_DT_BF16))
        return sh_err_set(b->err, SH_EUNSUPPORTED,
                          "%s: %s: scales %s and biases %s: both must be F32, F16 or BF16",
                          eng_st_file_of(st, sc), module, eng_dtype_info(sc->dtype)->st_name,
                          eng_dtype_info(bi->dtype)->st_name);
    mark(b, w, dt, (uint64_t)rows * (uint64_t)cols);
    mark(b, sc, dt, 0);
    mark(b, bi, dt, 0);
    out->dtype = dt;
    out->rows = rows;
    out->cols = cols;
    out->row_stride = (size_t)cols * (size_t)bits / 8;
    out->data = w->data;
    out->group_size = gs;
    out->sb_dtype = sc->dtype;
    out->scales = sc->data;
    out->biases = bi->data;
    out->sb_stride = (size_t)(cols / gs) * eng_dtype_info(sc->dtype)->size;
    return 0;
}

/* The weight of a linear (or embedding) module: module.weight in a float
 * dtype, or MLX affine-quantized codes with their scales and biases. */
static int
bind_mat(struct binder *b, const char *module, int64_t rows, int64_t cols, struct eng_mat *out)
{
    const struct eng_tensor *t;
    char name[NAME_LEN + 128];
    int bits, gs, rc;

    module_quant(b, module, &bits, &gs);
    if (bits)
        return bind_quant(b, module, bits, gs, rows, cols, out);
    snprintf(name, sizeof name, "%s.weight", module);
    t = eng_st_find(&b->m->st, name);
    if (t && t->dtype == ENG_DT_U32)
        return sh_err_set(b->err, SH_EMALFORMED,
                          "%s: tensor %s holds packed U32 codes but config.json does not "
                          "quantize %s",
                          eng_st_file_of(&b->m->st, t), name, module);
    if ((rc = find(b, name, 2, rows, cols, &t)))
        return rc;
    memset(out, 0, sizeof *out);
    out->dtype = t->dtype;
    out->rows = rows;
    out->cols = cols;
    out->row_stride = (size_t)cols * eng_dtype_info(t->dtype)->size;
    out->data = t->data;
    return 0;
}

/* Bytes a matrix's rows (and scales and biases) take. */
static uint64_t mat_bytes(const struct eng_mat *w)
{
    uint64_t n = (uint64_t)w->rows * w->row_stride;
    if (w->dtype == ENG_DT_Q4 || w->dtype == ENG_DT_Q8)
        n += 2 * (uint64_t)w->rows * w->sb_stride;
    return n;
}

/* A 1-D tensor of n elements, converted to f32 into the vector arena. */
static int bind_vec(struct binder *b, const char *name, int64_t n, const float **out)
{
    const struct eng_tensor *t;
    int rc = find(b, name, 1, n, 0, &t);

    if (rc)
        return rc;
    eng_to_f32(t->dtype, t->data, b->vec_next, (size_t)n);
    *out = b->vec_next;
    b->vec_next += n;
    return 0;
}

/* Floats of norms and biases the config implies. */
static size_t vec_floats(const struct eng_config *c)
{
    size_t q_dim = (size_t)c->n_heads * (size_t)c->head_dim;
    size_t kv_dim = (size_t)c->n_kv_heads * (size_t)c->head_dim;
    size_t per_layer = 2 * (size_t)c->dim;

    if (c->attn_bias)
        per_layer += q_dim + 2 * kv_dim;
    if (c->attn_out_bias)
        per_layer += (size_t)c->dim;
    if (c->qk_norm)
        per_layer += 2 * (size_t)c->head_dim;
    /* Bounded by the config's caps: no overflow in size_t. */
    return per_layer * (size_t)c->n_layers + (size_t)c->dim;
}

static int bind_layer(struct binder *b, int l)
{
    const struct eng_config *c = &b->m->cfg;
    struct eng_layer *L = &b->m->layers[l];
    int64_t q_dim = (int64_t)c->n_heads * c->head_dim;
    int64_t kv_dim = (int64_t)c->n_kv_heads * c->head_dim;
    char p[NAME_LEN], name[NAME_LEN + 64];
    int rc;

#define NAME(suffix) (snprintf(name, sizeof name, "%s.%s", p, suffix), name)
    snprintf(p, sizeof p, "model.layers.%d", l);
    if ((rc = bind_vec(b, NAME("input_layernorm.weight"), c->dim, &L->attn_norm)) ||
        (rc = bind_vec(b, NAME("post_attention_layernorm.weight"), c->dim, &L->ffn_norm)) ||
        (rc = bind_mat(b, NAME("self_attn.q_proj"), q_dim, c->dim, &L->wq)) ||
        (rc = bind_mat(b, NAME("self_attn.k_proj"), kv_dim, c->dim, &L->wk)) ||
        (rc = bind_mat(b, NAME("self_attn.v_proj"), kv_dim, c->dim, &L->wv)) ||
        (rc = bind_mat(b, NAME("self_attn.o_proj"), c->dim, q_dim, &L->wo)))
        return rc;
    if (c->attn_bias && ((rc = bind_vec(b, NAME("self_attn.q_proj.bias"), q_dim, &L->bq)) ||
                         (rc = bind_vec(b, NAME("self_attn.k_proj.bias"), kv_dim, &L->bk)) ||
                         (rc = bind_vec(b, NAME("self_attn.v_proj.bias"), kv_dim, &L->bv))))
        return rc;
    if (c->attn_out_bias && (rc = bind_vec(b, NAME("self_attn.o_proj.bias"), c->dim, &L->bo)))
        return rc;
    if (c->qk_norm &&
        ((rc = bind_vec(b, NAME("self_attn.q_norm.weight"), c->head_dim, &L->q_norm)) ||
         (rc = bind_vec(b, NAME("self_attn.k_norm.weight"), c->head_dim, &L->k_norm))))
        return rc;
    if (c->n_experts == 0) {
        if ((rc = bind_mat(b, NAME("mlp.gate_proj"), c->hidden_dim, c->dim, &L->w_gate)) ||
            (rc = bind_mat(b, NAME("mlp.up_proj"), c->hidden_dim, c->dim, &L->w_up)) ||
            (rc = bind_mat(b, NAME("mlp.down_proj"), c->dim, c->hidden_dim, &L->w_down)))
            return rc;
        return 0;
    }
    if ((rc = bind_mat(b, NAME("mlp.gate"), c->n_experts, c->dim, &L->router)))
        return rc;
    L->experts = b->m->experts + (size_t)l * (size_t)c->n_experts;
    for (int e = 0; e < c->n_experts; e++) {
        struct eng_expert *E = &L->experts[e];
        snprintf(p, sizeof p, "model.layers.%d.mlp.experts.%d", l, e);
        if ((rc = bind_mat(b, NAME("gate_proj"), c->moe_hidden_dim, c->dim, &E->gate)) ||
            (rc = bind_mat(b, NAME("up_proj"), c->moe_hidden_dim, c->dim, &E->up)) ||
            (rc = bind_mat(b, NAME("down_proj"), c->dim, c->moe_hidden_dim, &E->down)))
            return rc;
    }
#undef NAME
    return 0;
}

/* Tensors that may be present and unused. */
static bool ignorable(const struct eng_config *c, const char *name)
{
    size_t len = strlen(name);
    const char *inv = "rotary_emb.inv_freq"; /* older checkpoints store RoPE's table */

    /* mlx-lm's sanitize() drops a tied lm_head; other writers keep a copy */
    if (c->tie_embeddings && strncmp(name, "lm_head.", 8) == 0)
        return true;
    return len >= strlen(inv) && strcmp(name + len - strlen(inv), inv) == 0;
}

/* Bytes of weights one decode step reads: every matrix once (the tied
 * embedding as the output head), one embedding row, the norms and biases;
 * of the experts only the share a token selects (k of n). */
static uint64_t decode_bytes(const struct eng_model *m)
{
    const struct eng_config *c = &m->cfg;
    uint64_t n = mat_bytes(&m->lm_head) + mat_bytes(&m->embed) / (uint64_t)m->embed.rows;
    uint64_t experts = 0;

    n += vec_floats(c) * sizeof(float);
    for (int l = 0; l < c->n_layers; l++) {
        const struct eng_layer *L = &m->layers[l];
        n += mat_bytes(&L->wq) + mat_bytes(&L->wk) + mat_bytes(&L->wv) + mat_bytes(&L->wo);
        if (c->n_experts == 0) {
            n += mat_bytes(&L->w_gate) + mat_bytes(&L->w_up) + mat_bytes(&L->w_down);
            continue;
        }
        n += mat_bytes(&L->router);
        for (int e = 0; e < c->n_experts; e++)
            experts += mat_bytes(&L->experts[e].gate) + mat_bytes(&L->experts[e].up) +
                       mat_bytes(&L->experts[e].down);
    }
    if (c->n_experts)
        n += experts / (uint64_t)c->n_experts * (uint64_t)c->n_experts_per_tok;
    return n;
}

static int bind_all(struct eng_model *m, const char *dir, struct sh_err *err)
{
    const struct eng_config *c = &m->cfg;
    struct binder b = {.m = m, .dir = dir, .err = err};
    size_t best = 0, file_bytes = 0;
    int rc = 0;

    /* Allocations below scale with the config; a config far larger than
     * the files (every vector float needs a stored element, every layer and
     * expert its own tensors) is refused before allocating for it. */
    for (int i = 0; i < m->st.n_files; i++)
        file_bytes += m->st.files[i].map.size;
    if (vec_floats(c) > file_bytes || (size_t)c->n_layers > m->st.n_tensors ||
        (size_t)c->n_layers * (size_t)c->n_experts > m->st.n_tensors)
        return sh_err_set(err, SH_EMALFORMED,
                          "%s: config.json implies more weights than the safetensors files hold "
                          "(%zu tensors, %zu bytes)",
                          dir, m->st.n_tensors, file_bytes);
    b.used = calloc(m->st.n_tensors ? m->st.n_tensors : 1, sizeof *b.used);
    m->vecs = malloc(vec_floats(c) * sizeof *m->vecs);
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    m->rope_inv_freq = malloc((size_t)c->head_dim / 2 * sizeof *m->rope_inv_freq);
    if (c->n_experts)
        m->experts = calloc((size_t)c->n_layers * (size_t)c->n_experts, sizeof *m->experts);
    if (!b.used || !m->vecs || !m->layers || !m->rope_inv_freq || (c->n_experts && !m->experts)) {
        rc = sh_err_set(err, SH_ENOMEM, "%s: out of memory", dir);
        goto out;
    }
    b.vec_next = m->vecs;
    if ((rc = bind_mat(&b, "model.embed_tokens", c->vocab_size, c->dim, &m->embed)))
        goto out;
    if (c->tie_embeddings)
        m->lm_head = m->embed;
    else if ((rc = bind_mat(&b, "lm_head", c->vocab_size, c->dim, &m->lm_head)))
        goto out;
    if ((rc = bind_vec(&b, "model.norm.weight", c->dim, &m->final_norm)))
        goto out;
    for (int l = 0; l < c->n_layers; l++)
        if ((rc = bind_layer(&b, l)))
            goto out;
    for (size_t i = 0; i < m->st.n_tensors; i++) {
        const struct eng_tensor *t = &m->st.tensors[i];
        if (!b.used[i] && !ignorable(c, t->name)) {
            rc = sh_err_set(err, SH_EUNSUPPORTED,
                            "%s: tensor %s is not part of the layout config.json describes",
                            eng_st_file_of(&m->st, t), t->name);
            goto out;
        }
    }
    for (size_t d = 1; d < ENG_DT_COUNT; d++)
        if (b.dt_bytes[d] > b.dt_bytes[best])
            best = d;
    m->dtype_name = eng_dtype_info((enum eng_dtype)best)->name;
    eng_rope_inv_freq(c, m->rope_inv_freq);
    m->decode_bytes = decode_bytes(m);
out:
    free(b.used);
    return rc;
}

/* ---- the weights in memory of their own (once, at load) */

/* Every weight matrix of the model, the tied output head excepted (it is
 * the embedding, placed once). */
static int list_mats(struct eng_model *m, struct eng_mat **out)
{
    const struct eng_config *c = &m->cfg;
    int n = 0;

    out[n++] = &m->embed;
    if (!c->tie_embeddings)
        out[n++] = &m->lm_head;
    for (int l = 0; l < c->n_layers; l++) {
        struct eng_layer *L = &m->layers[l];
        out[n++] = &L->wq;
        out[n++] = &L->wk;
        out[n++] = &L->wv;
        out[n++] = &L->wo;
        if (c->n_experts == 0) {
            out[n++] = &L->w_gate;
            out[n++] = &L->w_up;
            out[n++] = &L->w_down;
            continue;
        }
        out[n++] = &L->router;
        for (int e = 0; e < c->n_experts; e++) {
            out[n++] = &L->experts[e].gate;
            out[n++] = &L->experts[e].up;
            out[n++] = &L->experts[e].down;
        }
    }
    return n;
}

/* A matrix's place: its rows (and the kernels' pad), then for
 * affine-quantized ones its scales and its biases, each 64-byte aligned. */
static size_t rows_bytes(const struct eng_mat *w)
{
    return ((size_t)w->rows * w->row_stride + ENG_REPACK_PAD + 63) / 64 * 64;
}

static size_t sb_bytes(const struct eng_mat *w)
{
    return w->scales ? ((size_t)w->rows * w->sb_stride + 63) / 64 * 64 : 0;
}

static size_t placed_size(const struct eng_mat *w)
{
    return rows_bytes(w) + 2 * sb_bytes(w);
}

/* Drops this process's page mappings of a source range it no longer
 * reads, so that its resident size counts the weights once; the file's
 * pages stay in the page cache (which may reclaim them), and the mapping
 * stays valid (a later read would fault them back in). */
static void release_source(const void *p, size_t n)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)p, e = a + n;

    a = (a + page - 1) / page * page;
    e = e / page * page;
    if (e > a)
        madvise((void *)a, e - a, MADV_DONTNEED); /* a hint: failure changes nothing */
}

/* The matrices being placed, claimed one at a time by the loading threads. */
struct place_job {
    struct eng_mat **mats;
    uint8_t **dst; /* where each goes */
    int n;
    atomic_int next;
};

static void *place_worker(void *arg)
{
    struct place_job *job = arg;

    for (int i; (i = atomic_fetch_add(&job->next, 1)) < job->n;) {
        struct eng_mat *w = job->mats[i];
        const void *src = w->data;
        size_t bytes = (size_t)w->rows * w->row_stride;
        const struct eng_mat_ops *ops = eng_mat_ops(w->dtype);
        if (ops->repack) {
            ops->repack(w, job->dst[i], w);
        } else {
            memcpy(job->dst[i], src, bytes);
            w->data = job->dst[i];
        }
        release_source(src, bytes);
        if (w->scales) {
            uint8_t *sc = job->dst[i] + rows_bytes(w), *bi = sc + sb_bytes(w);
            size_t n = (size_t)w->rows * w->sb_stride;
            memcpy(sc, w->scales, n);
            memcpy(bi, w->biases, n);
            release_source(w->scales, n);
            release_source(w->biases, n);
            w->scales = sc;
            w->biases = bi;
        }
    }
    return NULL;
}

/* Loading threads at most: the copy is bound by page faults (the kernel
 * zeroing fresh pages) and memory bandwidth, which a few cores saturate. */
#define PLACE_THREADS_MAX 8

/* Every weight matrix is copied out of the file's mmap into one anonymous
 * mapping with transparent huge pages asked for: decode streams all of
 * them per token, and with the file's 4 KiB pages each 4 KiB cost a TLB
 * miss (bf16 generation ran 12-19% faster from huge pages, Qwen2.5-0.5B
 * and Llama-3.2-1B shapes, 1 and 2 threads). Matrices whose kernels on
 * this CPU read a layout of their own are repacked into it on the way;
 * the rest are copied as they are. Quantized matrices' scales and biases
 * go along (decode reads them beside the codes: two more streams, a
 * sixteenth of Q4's bytes at group size 64; Qwen2.5-0.5B 4-bit generation,
 * 1 thread, 4 alternated runs: 0-3% faster, within the noise); the small
 * vectors stay in the file's mmap. The copy runs on one thread per core (up to
 * PLACE_THREADS_MAX; fewer if threads cannot be started, down to this one
 * alone): its page faults, not the copying, take most of the time. */
static int place_all(struct eng_model *m, struct sh_err *err)
{
    const struct eng_config *c = &m->cfg;
    size_t cap = 2 + (size_t)c->n_layers * (8 + 3 * (size_t)c->n_experts), total = 0;
    struct eng_mat **mats = malloc(cap * sizeof *mats);
    uint8_t **dst = malloc(cap * sizeof *dst);
    struct place_job job;
    pthread_t threads[PLACE_THREADS_MAX - 1];
    int n, n_threads = eng_physical_cores(), started = 0;
    uint8_t *p;

    if (!mats || !dst) {
        free(mats);
        free(dst);
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    }
    n = list_mats(m, mats);
    for (int i = 0; i < n; i++)
        total += placed_size(mats[i]);
    if (total == 0) {
        free(mats);
        free(dst);
        return 0;
    }
    p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        free(mats);
        free(dst);
        return sh_err_set(err, SH_ENOMEM, "placing %zu bytes of weights in memory: %s", total,
                          strerror(errno));
    }
#ifdef MADV_HUGEPAGE
    madvise(p, total, MADV_HUGEPAGE); /* a hint: failure changes nothing */
#endif
    m->placed = p;
    m->placed_bytes = total;
    for (int i = 0; i < n; i++) {
        dst[i] = p;
        p += placed_size(mats[i]);
    }
    job = (struct place_job){.mats = mats, .dst = dst, .n = n};
    atomic_init(&job.next, 0);
    n_threads = n_threads < PLACE_THREADS_MAX ? n_threads : PLACE_THREADS_MAX;
    n_threads = n_threads < n ? n_threads : n;
    while (started < n_threads - 1 &&
           pthread_create(&threads[started], NULL, place_worker, &job) == 0)
        started++;
    place_worker(&job);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    if (c->tie_embeddings)
        m->lm_head = m->embed;
    free(mats);
    free(dst);
    return 0;
}

int eng_model_load(const char *dir, struct eng_model **out, struct sh_err *err)
{
    struct eng_model *m = calloc(1, sizeof *m);
    int rc;

    if (!m)
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    if ((rc = eng_config_load(dir, &m->cfg, &m->gen, &m->quant, err)) ||
        (rc = eng_st_open(dir, &m->st, err)) || (rc = bind_all(m, dir, err)) ||
        (rc = place_all(m, err))) {
        eng_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void eng_model_free(struct eng_model *m)
{
    if (!m)
        return;
    eng_st_close(&m->st);
    eng_quant_free(&m->quant);
    if (m->placed)
        munmap(m->placed, m->placed_bytes);
    free(m->vecs);
    free(m->layers);
    free(m->experts);
    free(m->rope_inv_freq);
    free(m);
}

const struct eng_config *eng_model_config(const struct eng_model *m)
{
    return &m->cfg;
}

const struct eng_gen_defaults *eng_model_gen_defaults(const struct eng_model *m)
{
    return &m->gen;
}

uint64_t eng_model_weight_bytes(const struct eng_model *m)
{
    return m->weight_bytes;
}

uint64_t eng_model_n_params(const struct eng_model *m)
{
    return m->n_params;
}

uint64_t eng_model_decode_bytes(const struct eng_model *m)
{
    return m->decode_bytes;
}

const char *eng_model_dtype_name(const struct eng_model *m)
{
    return m->dtype_name;
}
