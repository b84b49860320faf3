/* engine/model.c: loading a model folder: config, safetensors, and binding
 * the tensors the config implies (names and shapes checked) into the
 * eng_model's weight views.
 *
 * Weight matrices stay in the mmapped files in their stored dtype; only the
 * small vectors (norm weights, biases) are converted to f32 copies. Every
 * tensor in the files must be used: a tensor we would ignore (a bias the
 * config says is absent, a q_norm in a "qwen2" model) means the config and
 * the weights disagree, and computing anyway would give wrong logits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Finds a tensor and checks its shape ([d0] or [d0, d1]) and dtype. */
static int find(struct binder *b,
                const char *name,
                int n_dims,
                int64_t d0,
                int64_t d1,
                const struct eng_tensor **out)
{
    const struct eng_st *st = &b->m->st;
    const struct eng_tensor *t = eng_st_find(st, name);
    size_t idx;

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
    if (!eng_mat_ops(t->dtype))
        return sh_err_set(b->err, SH_EUNSUPPORTED, "%s: tensor %s: dtype %s is not supported",
                          eng_st_file_of(st, t), name, eng_dtype_info(t->dtype)->st_name);
    idx = (size_t)(t - st->tensors);
    if (!b->used[idx]) {
        b->used[idx] = true;
        b->m->n_params += t->n_elems;
        b->m->weight_bytes += t->nbytes;
        b->dt_bytes[t->dtype] += t->nbytes;
    }
    *out = t;
    return 0;
}

static int
bind_mat(struct binder *b, const char *name, int64_t rows, int64_t cols, struct eng_mat *out)
{
    const struct eng_tensor *t;
    int rc = find(b, name, 2, rows, cols, &t);

    if (rc)
        return rc;
    out->dtype = t->dtype;
    out->rows = rows;
    out->cols = cols;
    out->row_stride = (size_t)cols * eng_dtype_info(t->dtype)->size;
    out->data = t->data;
    return 0;
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
        (rc = bind_mat(b, NAME("self_attn.q_proj.weight"), q_dim, c->dim, &L->wq)) ||
        (rc = bind_mat(b, NAME("self_attn.k_proj.weight"), kv_dim, c->dim, &L->wk)) ||
        (rc = bind_mat(b, NAME("self_attn.v_proj.weight"), kv_dim, c->dim, &L->wv)) ||
        (rc = bind_mat(b, NAME("self_attn.o_proj.weight"), c->dim, q_dim, &L->wo)))
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
        if ((rc = bind_mat(b, NAME("mlp.gate_proj.weight"), c->hidden_dim, c->dim, &L->w_gate)) ||
            (rc = bind_mat(b, NAME("mlp.up_proj.weight"), c->hidden_dim, c->dim, &L->w_up)) ||
            (rc = bind_mat(b, NAME("mlp.down_proj.weight"), c->dim, c->hidden_dim, &L->w_down)))
            return rc;
        return 0;
    }
    if ((rc = bind_mat(b, NAME("mlp.gate.weight"), c->n_experts, c->dim, &L->router)))
        return rc;
    L->experts = b->m->experts + (size_t)l * (size_t)c->n_experts;
    for (int e = 0; e < c->n_experts; e++) {
        struct eng_expert *E = &L->experts[e];
        snprintf(p, sizeof p, "model.layers.%d.mlp.experts.%d", l, e);
        if ((rc = bind_mat(b, NAME("gate_proj.weight"), c->moe_hidden_dim, c->dim, &E->gate)) ||
            (rc = bind_mat(b, NAME("up_proj.weight"), c->moe_hidden_dim, c->dim, &E->up)) ||
            (rc = bind_mat(b, NAME("down_proj.weight"), c->dim, c->moe_hidden_dim, &E->down)))
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

    if (c->tie_embeddings && strcmp(name, "lm_head.weight") == 0)
        return true;
    return len >= strlen(inv) && strcmp(name + len - strlen(inv), inv) == 0;
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
    if ((rc = bind_mat(&b, "model.embed_tokens.weight", c->vocab_size, c->dim, &m->embed)))
        goto out;
    if (c->tie_embeddings)
        m->lm_head = m->embed;
    else if ((rc = bind_mat(&b, "lm_head.weight", c->vocab_size, c->dim, &m->lm_head)))
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
out:
    free(b.used);
    return rc;
}

int eng_model_load(const char *dir, struct eng_model **out, struct sh_err *err)
{
    struct eng_model *m = calloc(1, sizeof *m);
    int rc;

    if (!m)
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    if ((rc = eng_config_load(dir, &m->cfg, &m->gen, err)) ||
        (rc = eng_st_open(dir, &m->st, err)) || (rc = bind_all(m, dir, err))) {
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

const char *eng_model_dtype_name(const struct eng_model *m)
{
    return m->dtype_name;
}
