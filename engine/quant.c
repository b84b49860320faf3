/* engine/quant.c: MLX affine quantization: the "quantization" block of
 * config.json (defaults and per-module overrides) and the quantizer that
 * `shoal quantize` and the tests use. The kernels that compute with the
 * result are in kern_*.c; the file writer is quant_write.c.
 *
 * Format (mlx 0.32 ops.cpp affine_quantize / affine_dequantize, mlx-lm 0.32
 * utils.py): a module M with float weight [out, in] quantized at `bits`
 * with `group_size` is stored as M.weight U32 [out, in * bits / 32] (codes
 * packed little-endian, code k of a word at bits [k*bits, (k+1)*bits)),
 * M.scales and M.biases [out, in / group_size] in the model's float dtype;
 * element i is code * scale + bias of its group.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "engine/kern_common.h"

static bool supported_bits(int64_t b)
{
    return b == 4 || b == 8;
}

static bool supported_group(int64_t g)
{
    return g == 32 || g == 64 || g == 128;
}

/* {"bits": B, "group_size": G, "mode": "affine"} (mode optional: mlx-lm
 * added it in August 2025 and older checkpoints have none). `what` names
 * the object in errors. */
static int parse_params(const cJSON *o, const char *what, int *bits, int *gs, struct sh_err *err)
{
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(o, "mode");
    int64_t b, g;
    int rc;

    if ((rc = sh_json_int(o, "bits", 1, 64, &b, err)) == SH_ENOTFOUND)
        return sh_err_set(err, SH_EMALFORMED, "\"%s.bits\" is missing", what);
    if (rc)
        return sh_err_wrap(err, "%s", what);
    if ((rc = sh_json_int(o, "group_size", 1, 1 << 20, &g, err)) == SH_ENOTFOUND)
        return sh_err_set(err, SH_EMALFORMED, "\"%s.group_size\" is missing", what);
    if (rc)
        return sh_err_wrap(err, "%s", what);
    if (mode && !cJSON_IsNull(mode)) {
        if (!cJSON_IsString(mode))
            return sh_err_set(err, SH_EMALFORMED, "\"%s.mode\": expected a string", what);
        if (strcmp(mode->valuestring, "affine") != 0)
            return sh_err_set(err, SH_EUNSUPPORTED,
                              "\"%s.mode\": \"%.40s\" is not supported (affine)", what,
                              mode->valuestring);
    }
    if (!supported_bits(b))
        return sh_err_set(err, SH_EUNSUPPORTED, "\"%s.bits\": %lld is not supported (4 or 8)", what,
                          (long long)b);
    if (!supported_group(g))
        return sh_err_set(err, SH_EUNSUPPORTED,
                          "\"%s.group_size\": %lld is not supported (32, 64 or 128)", what,
                          (long long)g);
    *bits = (int)b;
    *gs = (int)g;
    return 0;
}

static bool is_param_key(const char *k)
{
    return strcmp(k, "bits") == 0 || strcmp(k, "group_size") == 0 || strcmp(k, "mode") == 0;
}

int eng_quant_parse(const cJSON *cfg, struct eng_quant *q, struct sh_err *err)
{
    const char *key = "quantization";
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(cfg, key), *e;
    struct eng_quant nq = {0};
    int rc;

    if (!o || cJSON_IsNull(o)) {
        /* mlx-lm writes both keys; Hugging Face's quantizers (GPTQ, AWQ,
         * bitsandbytes...) write only quantization_config, with a method. */
        key = "quantization_config";
        o = cJSON_GetObjectItemCaseSensitive(cfg, key);
        if (o && cJSON_IsObject(o) && cJSON_GetObjectItemCaseSensitive(o, "quant_method")) {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "quant_method");
            return sh_err_set(err, SH_EUNSUPPORTED,
                              "\"quantization_config.quant_method\": \"%.40s\" is not supported "
                              "(MLX affine quantization only)",
                              cJSON_IsString(m) ? m->valuestring : "?");
        }
    }
    if (!o || cJSON_IsNull(o)) {
        *q = nq;
        return 0;
    }
    if (!cJSON_IsObject(o))
        return sh_err_set(err, SH_EMALFORMED, "\"%s\": expected an object", key);
    if ((rc = parse_params(o, key, &nq.bits, &nq.group_size, err)))
        return rc;
    cJSON_ArrayForEach(e, o)
    {
        if (!is_param_key(e->string))
            nq.n_over++;
    }
    if (nq.n_over && !(nq.over = calloc((size_t)nq.n_over, sizeof *nq.over)))
        return sh_err_set(err, SH_ENOMEM, "out of memory for %d quantization overrides", nq.n_over);
    nq.n_over = 0;
    cJSON_ArrayForEach(e, o)
    {
        struct eng_quant_over *ov;
        if (is_param_key(e->string))
            continue;
        ov = &nq.over[nq.n_over++];
        if (!(ov->module = strdup(e->string))) {
            eng_quant_free(&nq);
            return sh_err_set(err, SH_ENOMEM, "out of memory");
        }
        /* mlx-lm: a module's own parameters, or false for "left in float" */
        if (cJSON_IsFalse(e)) {
            ov->bits = 0;
        } else if (cJSON_IsObject(e)) {
            if ((rc = parse_params(e, e->string, &ov->bits, &ov->group_size, err))) {
                eng_quant_free(&nq);
                return sh_err_wrap(err, "%s", key);
            }
        } else {
            rc = sh_err_set(err, SH_EMALFORMED,
                            "\"%s\": \"%.80s\": expected {bits, group_size} or false", key,
                            e->string);
            eng_quant_free(&nq);
            return rc;
        }
    }
    *q = nq;
    return 0;
}

void eng_quant_free(struct eng_quant *q)
{
    if (!q)
        return;
    for (int i = 0; i < q->n_over; i++)
        free(q->over[i].module);
    free(q->over);
    memset(q, 0, sizeof *q);
}

const struct eng_quant_over *eng_quant_find(const struct eng_quant *q, const char *module)
{
    for (int i = 0; i < q->n_over; i++)
        if (strcmp(q->over[i].module, module) == 0)
            return &q->over[i];
    return NULL;
}

/* ---- the quantizer (mlx/backend/cpu/quantized.cpp, float32) */

void eng_quant_group(const float *w,
                     int group_size,
                     int bits,
                     enum eng_dtype sb_dtype,
                     uint8_t *codes,
                     float *scale_out,
                     float *bias_out)
{
    float n_bins = (float)((1 << bits) - 1);
    float wmin = w[0], wmax = w[0], scale, bias, edge, q0;

    for (int i = 1; i < group_size; i++) {
        wmin = w[i] < wmin ? w[i] : wmin;
        wmax = w[i] > wmax ? w[i] : wmax;
    }
    /* The scale's sign puts the larger-magnitude end at code 0, and zero
     * stays exactly representable: scale = edge / q0 with q0 an integer. */
    scale = fmaxf((wmax - wmin) / n_bins, 1e-7f);
    if (fabsf(wmin) > fabsf(wmax)) {
        edge = wmin;
    } else {
        edge = wmax;
        scale = -scale;
    }
    q0 = rintf(edge / scale);
    if (q0 != 0.0f) {
        scale = edge / q0;
        bias = edge;
    } else {
        bias = 0.0f;
    }
    for (int i = 0; i < group_size; i++) {
        float c = rintf((w[i] - bias) / scale);
        c = c < 0.0f ? 0.0f : c > n_bins ? n_bins : c;
        codes[i] = (uint8_t)c;
    }
    /* stored in the model dtype: round once here so callers see the
     * values a reader will load */
    if (sb_dtype == ENG_DT_BF16) {
        scale = eng_bf16_to_f32(eng_f32_to_bf16(scale));
        bias = eng_bf16_to_f32(eng_f32_to_bf16(bias));
    } else if (sb_dtype == ENG_DT_F16) {
        scale = eng_f16_to_f32(eng_f32_to_f16(scale));
        bias = eng_f16_to_f32(eng_f32_to_f16(bias));
    }
    *scale_out = scale;
    *bias_out = bias;
}

void eng_quant_pack(const uint8_t *codes, int64_t n, int bits, uint8_t *out)
{
    if (bits == 8) {
        memcpy(out, codes, (size_t)n);
        return;
    }
    for (int64_t i = 0; i < n; i += 2)
        out[i / 2] = (uint8_t)((codes[i] & 15u) | (unsigned)(codes[i + 1] & 15u) << 4);
}
