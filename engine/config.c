/* engine/config.c: config.json and generation_config.json -> eng_config.
 *
 * Both generations of transformers configs are read: the older one
 * (torch_dtype, rope_theta, rope_scaling) and the newer one (dtype,
 * rope_parameters). Tensor dtypes never come from here: the safetensors
 * headers say what is stored. Anything that would change the math and that
 * we do not implement (an activation, a rope type, an MoE layout, a
 * quantization other than MLX affine) is refused with SH_EUNSUPPORTED naming
 * the key, rather than silently computing something else.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "engine/internal.h"

#define MAX_CONFIG_BYTES (4u << 20)

struct family {
    const char *model_type;
    const char *arch; /* the architectures[0] class we run */
    enum eng_family family;
};

static const struct family families[] = {
    {"llama", "LlamaForCausalLM", ENG_FAMILY_LLAMA},
    {"mistral", "MistralForCausalLM", ENG_FAMILY_MISTRAL},
    {"qwen2", "Qwen2ForCausalLM", ENG_FAMILY_QWEN2},
    {"qwen3", "Qwen3ForCausalLM", ENG_FAMILY_QWEN3},
    {"qwen3_moe", "Qwen3MoeForCausalLM", ENG_FAMILY_QWEN3_MOE},
};

#define NFAMILIES (sizeof families / sizeof families[0])

/* ---- optional fields: absent or JSON null keeps the default */

static const cJSON *field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static int opt_int(const cJSON *o,
                   const char *key,
                   int64_t min,
                   int64_t max,
                   int64_t def,
                   int64_t *out,
                   struct sh_err *err)
{
    *out = def;
    if (!field(o, key))
        return 0;
    return sh_json_int(o, key, min, max, out, err);
}

static int
req_int(const cJSON *o, const char *key, int64_t min, int64_t max, int *out, struct sh_err *err)
{
    int64_t v;
    int rc;

    if (!field(o, key))
        return sh_err_set(err, SH_EMALFORMED, "\"%s\" is missing", key);
    rc = sh_json_int(o, key, min, max, &v, err);
    if (rc)
        return rc;
    *out = (int)v;
    return 0;
}

static int opt_num(const cJSON *o,
                   const char *key,
                   double min,
                   double max,
                   double def,
                   double *out,
                   struct sh_err *err)
{
    *out = def;
    if (!field(o, key))
        return 0;
    return sh_json_num(o, key, min, max, out, err);
}

static int opt_bool(const cJSON *o, const char *key, bool def, bool *out, struct sh_err *err)
{
    *out = def;
    if (!field(o, key))
        return 0;
    return sh_json_bool(o, key, out, err);
}

/* ---- family */

static int parse_family(const cJSON *cfg, enum eng_family *out, struct sh_err *err)
{
    const cJSON *arch = field(cfg, "architectures");
    const char *type = NULL;
    const char *arch0 = NULL;
    const struct family *f = NULL;
    int rc;

    if (field(cfg, "model_type")) {
        rc = sh_json_str(cfg, "model_type", &type, err);
        if (rc)
            return rc;
    }
    if (arch) {
        if (!cJSON_IsArray(arch) || !cJSON_IsString(cJSON_GetArrayItem(arch, 0)))
            return sh_err_set(err, SH_EMALFORMED,
                              "\"architectures\": expected an array of strings");
        arch0 = cJSON_GetArrayItem(arch, 0)->valuestring;
    }
    if (!type && !arch0)
        return sh_err_set(err, SH_EMALFORMED, "neither \"model_type\" nor \"architectures\"");
    for (size_t i = 0; i < NFAMILIES; i++) {
        if (type ? strcmp(type, families[i].model_type) == 0 : strcmp(arch0, families[i].arch) == 0)
            f = &families[i];
    }
    if (!f) {
        if (type)
            return sh_err_set(err, SH_EUNSUPPORTED,
                              "\"model_type\": \"%s\" is not supported (llama, mistral, qwen2, "
                              "qwen3, qwen3_moe)",
                              type);
        return sh_err_set(err, SH_EUNSUPPORTED, "\"architectures\": \"%s\" is not supported",
                          arch0);
    }
    /* A model_type with another head (sequence classification...) is a
     * different network. */
    if (arch0 && strcmp(arch0, f->arch) != 0)
        return sh_err_set(err, SH_EUNSUPPORTED,
                          "\"architectures\": \"%s\" is not supported for model_type \"%s\" "
                          "(expected %s)",
                          arch0, f->model_type, f->arch);
    *out = f->family;
    return 0;
}

/* ---- RoPE: rope_parameters (new) or rope_theta + rope_scaling (old) */

static int parse_rope(const cJSON *cfg, struct eng_config *c, struct sh_err *err)
{
    const cJSON *params = field(cfg, "rope_parameters");
    const char *where = params ? "rope_parameters" : "rope_scaling";
    const cJSON *scaling = params ? params : field(cfg, "rope_scaling");
    const char *type = "default";
    double theta, v;
    int64_t iv;
    int rc;

    rc = opt_num(cfg, "rope_theta", 1e-3, 1e12, 10000.0, &theta, err);
    if (rc)
        return rc;
    if (scaling && !cJSON_IsObject(scaling))
        return sh_err_set(err, SH_EMALFORMED, "\"%s\": expected an object or null", where);
    if (params) {
        rc = opt_num(params, "rope_theta", 1e-3, 1e12, theta, &theta, err);
        if (rc)
            return sh_err_wrap(err, "%s", where);
    }
    c->rope_theta = (float)theta;
    c->rope_type = ENG_ROPE_DEFAULT;
    if (scaling) {
        /* transformers accepts both spellings of the key. */
        const char *key = field(scaling, "rope_type") ? "rope_type" : "type";
        if (field(scaling, key) && sh_json_str(scaling, key, &type, err))
            return sh_err_wrap(err, "%s", where);
        rc = opt_num(scaling, "partial_rotary_factor", 0, 1, 1, &v, err);
        if (rc)
            return sh_err_wrap(err, "%s", where);
        if (v != 1.0)
            return sh_err_set(err, SH_EUNSUPPORTED,
                              "\"%s.partial_rotary_factor\": only 1 is supported", where);
    }
    rc = opt_num(cfg, "partial_rotary_factor", 0, 1, 1, &v, err);
    if (rc)
        return rc;
    if (v != 1.0)
        return sh_err_set(err, SH_EUNSUPPORTED, "\"partial_rotary_factor\": only 1 is supported");
    if (strcmp(type, "default") == 0)
        return 0;
    if (strcmp(type, "llama3") != 0)
        return sh_err_set(err, SH_EUNSUPPORTED,
                          "\"%s.rope_type\": \"%s\" is not supported (default, llama3)", where,
                          type);
    c->rope_type = ENG_ROPE_LLAMA3;
    if (!field(scaling, "factor") || !field(scaling, "low_freq_factor") ||
        !field(scaling, "high_freq_factor") || !field(scaling, "original_max_position_embeddings"))
        return sh_err_set(err, SH_EMALFORMED,
                          "\"%s\": llama3 needs factor, low_freq_factor, high_freq_factor and "
                          "original_max_position_embeddings",
                          where);
    if ((rc = sh_json_num(scaling, "factor", 1e-6, 1e6, &v, err)))
        return sh_err_wrap(err, "%s", where);
    c->rope_factor = (float)v;
    if ((rc = sh_json_num(scaling, "low_freq_factor", 1e-6, 1e6, &v, err)))
        return sh_err_wrap(err, "%s", where);
    c->rope_low_freq_factor = (float)v;
    if ((rc = sh_json_num(scaling, "high_freq_factor", 1e-6, 1e6, &v, err)))
        return sh_err_wrap(err, "%s", where);
    c->rope_high_freq_factor = (float)v;
    if ((rc = sh_json_int(scaling, "original_max_position_embeddings", 1, 1 << 30, &iv, err)))
        return sh_err_wrap(err, "%s", where);
    c->rope_orig_max_pos = (int)iv;
    if (c->rope_high_freq_factor <= c->rope_low_freq_factor)
        return sh_err_set(err, SH_EMALFORMED,
                          "\"%s\": high_freq_factor must be larger than low_freq_factor", where);
    return 0;
}

/* ---- sliding window */

/* Qwen2/Qwen3: layers >= max_window_layers use the window when
 * use_sliding_window is true; `layer_types`, when present, says it per
 * layer (we run "full..., sliding..." only). */
static int parse_qwen_window(const cJSON *cfg, struct eng_config *c, struct sh_err *err)
{
    const cJSON *types = field(cfg, "layer_types");
    bool use = false;
    int64_t w, first;
    int rc;

    if ((rc = opt_bool(cfg, "use_sliding_window", false, &use, err)))
        return rc;
    if ((rc = opt_int(cfg, "sliding_window", 1, INT32_MAX, 0, &w, err)))
        return rc;
    if ((rc = opt_int(cfg, "max_window_layers", 0, INT32_MAX, 28, &first, err)))
        return rc;
    if (!use)
        w = 0;
    if (types) {
        int n = cJSON_GetArraySize(types), i = 0, nfirst = -1;
        const cJSON *t;
        if (!cJSON_IsArray(types) || n != c->n_layers)
            return sh_err_set(err, SH_EMALFORMED,
                              "\"layer_types\": expected an array of %d strings", c->n_layers);
        cJSON_ArrayForEach(t, types)
        {
            bool sliding = cJSON_IsString(t) && strcmp(t->valuestring, "sliding_attention") == 0;
            if (!sliding && !(cJSON_IsString(t) && strcmp(t->valuestring, "full_attention") == 0))
                return sh_err_set(err, SH_EUNSUPPORTED,
                                  "\"layer_types\"[%d]: only full_attention and "
                                  "sliding_attention are supported",
                                  i);
            if (sliding && nfirst < 0)
                nfirst = i;
            if (!sliding && nfirst >= 0)
                return sh_err_set(err, SH_EUNSUPPORTED,
                                  "\"layer_types\": full attention after sliding layers is not "
                                  "supported");
            i++;
        }
        if (nfirst >= 0 && w == 0)
            return sh_err_set(err, SH_EMALFORMED,
                              "\"layer_types\" has sliding layers but \"sliding_window\" is off");
        first = nfirst < 0 ? c->n_layers : nfirst;
    }
    c->sliding_window = (int)w;
    c->swa_first_layer = w ? (int)(first < c->n_layers ? first : c->n_layers) : c->n_layers;
    return 0;
}

/* ---- token ids */

/* eos_token_id: an int, a list of ints, or null. Ids are not checked
 * against vocab_size: shrunk test models keep their parent's special ids,
 * which then simply never occur. */
static int parse_eos(const cJSON *o, struct eng_config *c, struct sh_err *err)
{
    const cJSON *v = field(o, "eos_token_id");
    const cJSON *e;
    int n = 0;

    if (!v)
        return 0;
    if (sh_json_is_int(v, 0, INT32_MAX)) {
        c->eos_ids[0] = (int32_t)v->valuedouble;
        c->n_eos = 1;
        return 0;
    }
    if (!cJSON_IsArray(v))
        return sh_err_set(err, SH_EMALFORMED,
                          "\"eos_token_id\": expected a token id or a list of them");
    cJSON_ArrayForEach(e, v)
    {
        if (!sh_json_is_int(e, 0, INT32_MAX))
            return sh_err_set(err, SH_EMALFORMED,
                              "\"eos_token_id\": expected non-negative token ids");
        if (n == ENG_MAX_EOS)
            return sh_err_set(err, SH_EUNSUPPORTED, "\"eos_token_id\": more than %d ids",
                              ENG_MAX_EOS);
        c->eos_ids[n++] = (int32_t)e->valuedouble;
    }
    c->n_eos = n;
    return 0;
}

static int parse_bos(const cJSON *o, struct eng_config *c, struct sh_err *err)
{
    int64_t v;
    int rc = opt_int(o, "bos_token_id", 0, INT32_MAX, c->bos_id, &v, err);
    if (rc)
        return rc;
    c->bos_id = (int32_t)v;
    return 0;
}

/* ---- mixture of experts */

static int parse_moe(const cJSON *cfg, struct eng_config *c, struct sh_err *err)
{
    const cJSON *only = field(cfg, "mlp_only_layers");
    int64_t step;
    int rc;

    if ((rc = req_int(cfg, "num_experts", 1, 1 << 14, &c->n_experts, err)) ||
        (rc = req_int(cfg, "num_experts_per_tok", 1, c->n_experts, &c->n_experts_per_tok, err)) ||
        (rc = req_int(cfg, "moe_intermediate_size", 1, 1 << 22, &c->moe_hidden_dim, err)) ||
        (rc = opt_bool(cfg, "norm_topk_prob", false, &c->norm_topk_prob, err)) ||
        (rc = opt_int(cfg, "decoder_sparse_step", 1, INT32_MAX, 1, &step, err)))
        return rc;
    /* Other layouts interleave dense MLP layers, which we do not run. */
    if (step != 1)
        return sh_err_set(err, SH_EUNSUPPORTED,
                          "\"decoder_sparse_step\": only 1 (every layer sparse) is supported");
    if (only && (!cJSON_IsArray(only) || cJSON_GetArraySize(only) != 0))
        return sh_err_set(err, SH_EUNSUPPORTED,
                          "\"mlp_only_layers\": only an empty list is supported");
    if (field(cfg, "shared_expert_intermediate_size"))
        return sh_err_set(err, SH_EUNSUPPORTED,
                          "\"shared_expert_intermediate_size\": shared "
                          "experts are not supported");
    return 0;
}

/* ---- generation_config.json */

static int
parse_gen(const cJSON *gen, struct eng_config *c, struct eng_gen_defaults *g, struct sh_err *err)
{
    const char *what = "generation_config.json";
    double v;
    int64_t k;
    int rc;

    if (!cJSON_IsObject(gen))
        return sh_err_set(err, SH_EMALFORMED, "%s: expected a JSON object", what);
    g->present = true;
    if ((rc = opt_bool(gen, "do_sample", false, &g->do_sample, err)))
        return sh_err_wrap(err, "%s", what);
    if ((rc = opt_num(gen, "temperature", 0, 1e4, 1, &v, err)))
        return sh_err_wrap(err, "%s", what);
    g->temperature = (float)v;
    if ((rc = opt_num(gen, "top_p", 0, 1, 1, &v, err)))
        return sh_err_wrap(err, "%s", what);
    g->top_p = (float)v;
    if ((rc = opt_int(gen, "top_k", 0, INT32_MAX, 0, &k, err)))
        return sh_err_wrap(err, "%s", what);
    g->top_k = (int)k;
    if ((rc = opt_num(gen, "repetition_penalty", 1e-6, 1e6, 1, &v, err)))
        return sh_err_wrap(err, "%s", what);
    g->repetition_penalty = (float)v;
    if ((rc = parse_eos(gen, c, err)) || (rc = parse_bos(gen, c, err)))
        return sh_err_wrap(err, "%s", what);
    return 0;
}

/* ---- config.json */

/* Keys whose presence means weights or math we do not implement. */
static int refuse_unsupported(const cJSON *cfg, struct sh_err *err)
{
    const char *act = "silu";
    bool b;
    int rc;

    if (field(cfg, "hidden_act") && (rc = sh_json_str(cfg, "hidden_act", &act, err)))
        return rc;
    if (strcmp(act, "silu") != 0)
        return sh_err_set(err, SH_EUNSUPPORTED, "\"hidden_act\": \"%s\" is not supported (silu)",
                          act);
    if ((rc = opt_bool(cfg, "mlp_bias", false, &b, err)))
        return rc;
    if (b)
        return sh_err_set(err, SH_EUNSUPPORTED, "\"mlp_bias\": MLP biases are not supported");
    return 0;
}

static int parse_config(const cJSON *cfg, struct eng_config *c, struct sh_err *err)
{
    int64_t v;
    double d;
    bool b;
    int rc;

    if (!cJSON_IsObject(cfg))
        return sh_err_set(err, SH_EMALFORMED, "expected a JSON object");
    if ((rc = parse_family(cfg, &c->family, err)) || (rc = refuse_unsupported(cfg, err)))
        return rc;
    {
        struct eng_quant q;
        if ((rc = eng_quant_parse(cfg, &q, err)))
            return rc;
        c->quant_bits = q.bits;
        c->quant_group_size = q.group_size;
        eng_quant_free(&q);
    }
    if ((rc = req_int(cfg, "num_hidden_layers", 1, 4096, &c->n_layers, err)) ||
        (rc = req_int(cfg, "hidden_size", 1, 1 << 20, &c->dim, err)) ||
        (rc = req_int(cfg, "num_attention_heads", 1, 1 << 14, &c->n_heads, err)) ||
        (rc = req_int(cfg, "vocab_size", 1, 1 << 24, &c->vocab_size, err)) ||
        (rc = req_int(cfg, "max_position_embeddings", 1, 1 << 30, &c->max_pos, err)))
        return rc;
    if ((rc = opt_int(cfg, "num_key_value_heads", 1, c->n_heads, c->n_heads, &v, err)))
        return rc;
    c->n_kv_heads = (int)v;
    if (c->n_heads % c->n_kv_heads != 0)
        return sh_err_set(err, SH_EMALFORMED,
                          "\"num_key_value_heads\": %d does not divide num_attention_heads %d",
                          c->n_kv_heads, c->n_heads);
    if (!field(cfg, "head_dim") && c->dim % c->n_heads != 0)
        return sh_err_set(err, SH_EMALFORMED,
                          "\"hidden_size\" %d is not a multiple of num_attention_heads %d and "
                          "\"head_dim\" is absent",
                          c->dim, c->n_heads);
    if ((rc = opt_int(cfg, "head_dim", 2, 1 << 14, c->dim / c->n_heads, &v, err)))
        return rc;
    c->head_dim = (int)v;
    if (c->head_dim % 2 != 0 || (int64_t)c->head_dim * c->n_heads > (1 << 24))
        return sh_err_set(err, SH_EMALFORMED,
                          "\"head_dim\": %d must be even and heads x head_dim at most 2^24",
                          c->head_dim);
    /* MoE configs carry intermediate_size for dense layers we refuse anyway. */
    if (c->family == ENG_FAMILY_QWEN3_MOE) {
        if ((rc = opt_int(cfg, "intermediate_size", 1, 1 << 22, 0, &v, err)))
            return rc;
        c->hidden_dim = (int)v;
        if ((rc = parse_moe(cfg, c, err)))
            return rc;
    } else if ((rc = req_int(cfg, "intermediate_size", 1, 1 << 22, &c->hidden_dim, err))) {
        return rc;
    }
    if ((rc = opt_num(cfg, "rms_norm_eps", 0, 1, 1e-6, &d, err)))
        return rc;
    c->norm_eps = (float)d;
    if ((rc = parse_rope(cfg, c, err)))
        return rc;
    if ((rc = opt_bool(cfg, "tie_word_embeddings", false, &c->tie_embeddings, err)))
        return rc;
    if ((rc = opt_bool(cfg, "attention_bias", false, &b, err)))
        return rc;
    switch (c->family) {
    case ENG_FAMILY_QWEN2: /* q/k/v always biased, o never */
        c->attn_bias = true;
        break;
    case ENG_FAMILY_MISTRAL: /* no biases, whatever the key says */
        break;
    case ENG_FAMILY_LLAMA:
    case ENG_FAMILY_QWEN3:
    case ENG_FAMILY_QWEN3_MOE:
        c->attn_bias = b;
        c->attn_out_bias = b;
        break;
    }
    c->qk_norm = c->family == ENG_FAMILY_QWEN3 || c->family == ENG_FAMILY_QWEN3_MOE;
    c->swa_first_layer = c->n_layers;
    if (c->family == ENG_FAMILY_MISTRAL) {
        if ((rc = opt_int(cfg, "sliding_window", 1, INT32_MAX, 0, &v, err)))
            return rc;
        c->sliding_window = (int)v;
        c->swa_first_layer = 0;
    } else if (c->family != ENG_FAMILY_LLAMA) {
        if ((rc = parse_qwen_window(cfg, c, err)))
            return rc;
    }
    if ((rc = parse_bos(cfg, c, err)) || (rc = parse_eos(cfg, c, err)))
        return rc;
    return 0;
}

int eng_config_parse(const cJSON *config,
                     const cJSON *gen,
                     struct eng_config *c,
                     struct eng_gen_defaults *g,
                     struct sh_err *err)
{
    struct eng_config nc;
    struct eng_gen_defaults ng = {.temperature = 1, .top_p = 1, .repetition_penalty = 1};
    int rc;

    memset(&nc, 0, sizeof nc);
    nc.bos_id = -1;
    rc = parse_config(config, &nc, err);
    if (rc)
        return sh_err_wrap(err, "config.json");
    if (gen && (rc = parse_gen(gen, &nc, &ng, err)))
        return rc;
    *c = nc;
    *g = ng;
    return 0;
}

int eng_config_load(const char *dir,
                    struct eng_config *c,
                    struct eng_gen_defaults *g,
                    struct eng_quant *q,
                    struct sh_err *err)
{
    char path[4096];
    cJSON *cfg = NULL, *gen = NULL;
    int rc;

    if ((rc = sh_path_join(path, sizeof path, dir, "config.json", err)))
        return rc;
    if ((rc = sh_json_parse_file(path, MAX_CONFIG_BYTES, &cfg, err)))
        return rc;
    if ((rc = sh_path_join(path, sizeof path, dir, "generation_config.json", err)))
        goto out;
    if (sh_path_exists(path) && (rc = sh_json_parse_file(path, MAX_CONFIG_BYTES, &gen, err)))
        goto out;
    rc = eng_config_parse(cfg, gen, c, g, err);
    if (!rc && q && (rc = eng_quant_parse(cfg, q, err)))
        sh_err_wrap(err, "config.json");
    if (rc)
        sh_err_wrap(err, "%s", dir);
out:
    cJSON_Delete(gen);
    cJSON_Delete(cfg);
    return rc;
}

void eng_rope_inv_freq(const struct eng_config *c, float *out)
{
    int half = c->head_dim / 2;

    /* transformers: 1 / base ** (arange(0, d, 2).float() / d), in float32. */
    for (int i = 0; i < half; i++)
        out[i] = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)c->head_dim);
    if (c->rope_type != ENG_ROPE_LLAMA3)
        return;
    /* Llama 3.1: long wavelengths are slowed down by `factor`, short ones
     * kept, the band between interpolated smoothly
     * (transformers _compute_llama3_parameters). */
    {
        float factor = c->rope_factor;
        float lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
        float old_len = (float)c->rope_orig_max_pos;
        float low_freq_wavelen = old_len / lo;
        float high_freq_wavelen = old_len / hi;
        for (int i = 0; i < half; i++) {
            float wavelen = 2.0f * (float)M_PI / out[i];
            if (wavelen > low_freq_wavelen) {
                out[i] = out[i] / factor;
            } else if (!(wavelen < high_freq_wavelen)) {
                float smooth = (old_len / wavelen - lo) / (hi - lo);
                out[i] = (1.0f - smooth) * out[i] / factor + smooth * out[i];
            }
        }
    }
}
