/* tests/engine/test_config.c: config.json / generation_config.json parsing
 * (engine/config.c): both config generations, each family's defaults, RoPE
 * scaling, sliding windows, and the options we refuse by name. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "engine/internal.h"
#include "tests/lib/test.h"

/* A small llama config; tests append or override keys via extra. */
#define BASE_FIELDS                                                                                \
    "\"hidden_size\": 64, \"num_hidden_layers\": 4, \"num_attention_heads\": 4, "                  \
    "\"intermediate_size\": 128, \"vocab_size\": 100, \"max_position_embeddings\": 256"

static int parse(const char *cfg_text,
                 const char *gen_text,
                 struct eng_config *c,
                 struct eng_gen_defaults *g,
                 struct sh_err *err)
{
    cJSON *cfg = cJSON_Parse(cfg_text), *gen = gen_text ? cJSON_Parse(gen_text) : NULL;
    int rc;
    assert_non_null(cfg);
    if (gen_text)
        assert_non_null(gen);
    rc = eng_config_parse(cfg, gen, c, g, err);
    cJSON_Delete(gen);
    cJSON_Delete(cfg);
    return rc;
}

static void
ok(const char *cfg_text, const char *gen_text, struct eng_config *c, struct eng_gen_defaults *g)
{
    struct sh_err err = {0};
    if (parse(cfg_text, gen_text, c, g, &err))
        fail_msg("%s: %s", cfg_text, sh_err_msg(&err));
}

static void refused(const char *cfg_text, const char *gen_text, int code, const char *needle)
{
    struct eng_config c;
    struct eng_gen_defaults g;
    struct sh_err err = {0};
    int rc = parse(cfg_text, gen_text, &c, &g, &err);
    if (rc != code || !strstr(err.msg, needle))
        fail_msg("%s: got %d \"%s\", expected %d with \"%s\"", cfg_text, rc, err.msg, code, needle);
}

static void test_old_generation(void **state)
{
    struct eng_config c;
    struct eng_gen_defaults g;
    (void)state;
    ok("{\"model_type\": \"llama\", " BASE_FIELDS ", \"torch_dtype\": \"bfloat16\", "
       "\"rope_theta\": 500000.0, \"rope_scaling\": null, \"eos_token_id\": 7, "
       "\"bos_token_id\": 1, \"num_key_value_heads\": 2}",
       NULL, &c, &g);
    assert_int_equal(c.family, ENG_FAMILY_LLAMA);
    assert_int_equal(c.head_dim, 16); /* absent: hidden / heads */
    assert_int_equal(c.n_kv_heads, 2);
    assert_true(c.rope_theta == 500000.0f);
    assert_int_equal(c.rope_type, ENG_ROPE_DEFAULT);
    assert_true(fabsf(c.norm_eps - 1e-6f) < 1e-12f);
    assert_int_equal(c.n_eos, 1);
    assert_int_equal(c.eos_ids[0], 7);
    assert_int_equal(c.bos_id, 1);
    assert_false(c.tie_embeddings);
    assert_false(c.attn_bias);
    assert_int_equal(c.sliding_window, 0);
    assert_false(g.present);
    assert_true(g.temperature == 1.0f && g.top_p == 1.0f && g.top_k == 0);
}

static void test_new_generation(void **state)
{
    struct eng_config c;
    struct eng_gen_defaults g;
    (void)state;
    ok("{\"architectures\": [\"LlamaForCausalLM\"], " BASE_FIELDS ", \"dtype\": \"float16\", "
       "\"rope_parameters\": {\"rope_theta\": 20000.0, \"rope_type\": \"default\"}, "
       "\"head_dim\": 32, \"tie_word_embeddings\": true, \"rms_norm_eps\": 1e-5}",
       "{\"eos_token_id\": [2, 0], \"do_sample\": true, \"temperature\": 0.6, \"top_p\": 0.95, "
       "\"top_k\": 20, \"repetition_penalty\": 1.1, \"bos_token_id\": 3}",
       &c, &g);
    assert_int_equal(c.family, ENG_FAMILY_LLAMA);
    assert_int_equal(c.head_dim, 32);
    assert_true(c.rope_theta == 20000.0f);
    assert_true(c.tie_embeddings);
    assert_int_equal(c.n_eos, 2);
    assert_int_equal(c.eos_ids[1], 0);
    assert_int_equal(c.bos_id, 3);
    assert_true(g.present && g.do_sample);
    assert_true(fabsf(g.temperature - 0.6f) < 1e-7f);
    assert_true(fabsf(g.top_p - 0.95f) < 1e-7f);
    assert_int_equal(g.top_k, 20);
    assert_true(fabsf(g.repetition_penalty - 1.1f) < 1e-7f);
}

static void test_llama3_rope(void **state)
{
    struct eng_config c;
    struct eng_gen_defaults g;
    float inv[8];
    (void)state;
    ok("{\"model_type\": \"llama\", " BASE_FIELDS ", \"rope_theta\": 500000.0, \"head_dim\": 16, "
       "\"rope_scaling\": {\"factor\": 32.0, \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0, "
       "\"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}}",
       NULL, &c, &g);
    assert_int_equal(c.rope_type, ENG_ROPE_LLAMA3);
    assert_true(c.rope_factor == 32.0f && c.rope_orig_max_pos == 8192);
    eng_rope_inv_freq(&c, inv);
    /* wavelength 2 pi: far below 8192 / 4, kept as is */
    assert_true(inv[0] == 1.0f);
    /* the lowest frequency: wavelength 2 pi 500000^(14/16) > 8192, slowed 32x */
    assert_true(fabsf(inv[7] - powf(500000.0f, -14.0f / 16.0f) / 32.0f) < 1e-12f);
    /* the new spelling of the same */
    ok("{\"model_type\": \"llama\", " BASE_FIELDS ", \"rope_parameters\": {\"rope_theta\": 1e4, "
       "\"rope_type\": \"llama3\", \"factor\": 8.0, \"high_freq_factor\": 4.0, "
       "\"low_freq_factor\": 1.0, \"original_max_position_embeddings\": 8192}}",
       NULL, &c, &g);
    assert_int_equal(c.rope_type, ENG_ROPE_LLAMA3);
    assert_true(c.rope_factor == 8.0f && c.rope_theta == 10000.0f);
}

static void test_families(void **state)
{
    struct eng_config c;
    struct eng_gen_defaults g;
    (void)state;
    /* qwen2: q/k/v bias always, o never; window only with use_sliding_window */
    ok("{\"model_type\": \"qwen2\", " BASE_FIELDS ", \"sliding_window\": 4096, "
       "\"use_sliding_window\": false}",
       NULL, &c, &g);
    assert_true(c.attn_bias && !c.attn_out_bias && !c.qk_norm);
    assert_int_equal(c.sliding_window, 0);
    ok("{\"model_type\": \"qwen2\", " BASE_FIELDS ", \"sliding_window\": 4096, "
       "\"use_sliding_window\": true, \"max_window_layers\": 1}",
       NULL, &c, &g);
    assert_int_equal(c.sliding_window, 4096);
    assert_int_equal(c.swa_first_layer, 1);
    ok("{\"model_type\": \"qwen2\", " BASE_FIELDS ", \"sliding_window\": 64, "
       "\"use_sliding_window\": true, \"layer_types\": [\"full_attention\", \"full_attention\", "
       "\"sliding_attention\", \"sliding_attention\"]}",
       NULL, &c, &g);
    assert_int_equal(c.swa_first_layer, 2);
    /* mistral: the window applies to every layer */
    ok("{\"model_type\": \"mistral\", " BASE_FIELDS ", \"sliding_window\": 16}", NULL, &c, &g);
    assert_int_equal(c.family, ENG_FAMILY_MISTRAL);
    assert_int_equal(c.sliding_window, 16);
    assert_int_equal(c.swa_first_layer, 0);
    /* llama attention_bias: q/k/v and o */
    ok("{\"model_type\": \"llama\", " BASE_FIELDS ", \"attention_bias\": true}", NULL, &c, &g);
    assert_true(c.attn_bias && c.attn_out_bias);
    ok("{\"model_type\": \"qwen3\", " BASE_FIELDS ", \"head_dim\": 8}", NULL, &c, &g);
    assert_true(c.qk_norm && !c.attn_bias);
    assert_int_equal(c.head_dim, 8);
    ok("{\"model_type\": \"qwen3_moe\", " BASE_FIELDS ", \"num_experts\": 8, "
       "\"num_experts_per_tok\": 2, \"moe_intermediate_size\": 32, \"norm_topk_prob\": true, "
       "\"decoder_sparse_step\": 1, \"mlp_only_layers\": []}",
       NULL, &c, &g);
    assert_int_equal(c.family, ENG_FAMILY_QWEN3_MOE);
    assert_int_equal(c.n_experts, 8);
    assert_int_equal(c.n_experts_per_tok, 2);
    assert_int_equal(c.moe_hidden_dim, 32);
    assert_true(c.norm_topk_prob && c.qk_norm);
    assert_int_equal(c.quant_bits, 0);
    /* MLX quantization, with and without "mode", and per-module overrides */
    ok("{\"model_type\": \"llama\", " BASE_FIELDS
       ", \"quantization\": {\"bits\": 4, \"group_size\": 64, \"mode\": \"affine\", "
       "\"lm_head\": {\"bits\": 8, \"group_size\": 32}, \"model.embed_tokens\": false}}",
       NULL, &c, &g);
    assert_int_equal(c.quant_bits, 4);
    assert_int_equal(c.quant_group_size, 64);
    ok("{\"model_type\": \"llama\", " BASE_FIELDS
       ", \"quantization_config\": {\"bits\": 8, \"group_size\": 128}}",
       NULL, &c, &g);
    assert_int_equal(c.quant_bits, 8);
    assert_int_equal(c.quant_group_size, 128);
}

static void test_refused(void **state)
{
    (void)state;
    refused("{\"model_type\": \"gpt2\", " BASE_FIELDS "}", NULL, SH_EUNSUPPORTED, "gpt2");
    refused("{\"architectures\": [\"GPT2LMHeadModel\"], " BASE_FIELDS "}", NULL, SH_EUNSUPPORTED,
            "GPT2LMHeadModel");
    refused("{\"model_type\": \"llama\", \"architectures\": "
            "[\"LlamaForSequenceClassification\"], " BASE_FIELDS "}",
            NULL, SH_EUNSUPPORTED, "LlamaForSequenceClassification");
    refused("{" BASE_FIELDS "}", NULL, SH_EMALFORMED, "model_type");
    refused("{\"model_type\": \"llama\", " BASE_FIELDS ", \"hidden_act\": \"gelu\"}", NULL,
            SH_EUNSUPPORTED, "hidden_act");
    refused("{\"model_type\": \"llama\", " BASE_FIELDS ", \"mlp_bias\": true}", NULL,
            SH_EUNSUPPORTED, "mlp_bias");
    refused("{\"model_type\": \"llama\", " BASE_FIELDS
            ", \"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2.0}}",
            NULL, SH_EUNSUPPORTED, "rope_scaling.rope_type");
    refused("{\"model_type\": \"llama\", " BASE_FIELDS
            ", \"rope_parameters\": {\"rope_type\": \"yarn\", \"rope_theta\": 1e4}}",
            NULL, SH_EUNSUPPORTED, "rope_parameters.rope_type");
    refused("{\"model_type\": \"llama\", " BASE_FIELDS
            ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}}",
            NULL, SH_EMALFORMED, "low_freq_factor");
    /* quantization: MLX affine only, 4/8 bits, groups of 32/64/128 */
    refused("{\"model_type\": \"llama\", " BASE_FIELDS
            ", \"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4}}",
            NULL, SH_EUNSUPPORTED, "quant_method");
    refused("{\"model_type\": \"llama\", " BASE_FIELDS ", \"quantization_config\": {\"bits\": 4}}",
            NULL, SH_EMALFORMED, "quantization_config.group_size");
    refused("{\"model_type\": \"llama\", " BASE_FIELDS
            ", \"quantization\": {\"bits\": 3, \"group_size\": 64}}",
            NULL, SH_EUNSUPPORTED, "quantization.bits");
    refused("{\"model_type\": \"llama\", " BASE_FIELDS
            ", \"quantization\": {\"bits\": 4, \"group_size\": 16}}",
            NULL, SH_EUNSUPPORTED, "quantization.group_size");
    refused("{\"model_type\": \"llama\", " BASE_FIELDS
            ", \"quantization\": {\"bits\": 4, \"group_size\": 32, \"mode\": \"mxfp4\"}}",
            NULL, SH_EUNSUPPORTED, "mode");
    refused("{\"model_type\": \"llama\", " BASE_FIELDS
            ", \"quantization\": {\"bits\": 4, \"group_size\": 64, \"lm_head\": 8}}",
            NULL, SH_EMALFORMED, "lm_head");
    refused("{\"model_type\": \"llama\", " BASE_FIELDS
            ", \"quantization\": {\"bits\": 4, \"group_size\": 64, "
            "\"lm_head\": {\"bits\": 2, \"group_size\": 64}}}",
            NULL, SH_EUNSUPPORTED, "lm_head.bits");
    refused("{\"model_type\": \"llama\", " BASE_FIELDS ", \"num_key_value_heads\": 3}", NULL,
            SH_EMALFORMED, "num_key_value_heads");
    refused("{\"model_type\": \"llama\", " BASE_FIELDS ", \"head_dim\": 7}", NULL, SH_EMALFORMED,
            "head_dim");
    refused("{\"model_type\": \"llama\", \"hidden_size\": -5, \"num_hidden_layers\": 4, "
            "\"num_attention_heads\": 4, \"intermediate_size\": 8, \"vocab_size\": 100, "
            "\"max_position_embeddings\": 256}",
            NULL, SH_EMALFORMED, "hidden_size");
    refused("{\"model_type\": \"llama\", " BASE_FIELDS ", \"eos_token_id\": \"x\"}", NULL,
            SH_EMALFORMED, "eos_token_id");
    refused("{\"model_type\": \"llama\", " BASE_FIELDS "}",
            "{\"eos_token_id\": [1,2,3,4,5,6,7,8,9]}", SH_EUNSUPPORTED, "generation_config.json");
    refused("{\"model_type\": \"llama\", " BASE_FIELDS "}", "{\"top_p\": 2}", SH_EMALFORMED,
            "top_p");
    refused("{\"model_type\": \"qwen3_moe\", " BASE_FIELDS ", \"num_experts\": 8, "
            "\"num_experts_per_tok\": 2, \"moe_intermediate_size\": 32, "
            "\"decoder_sparse_step\": 2}",
            NULL, SH_EUNSUPPORTED, "decoder_sparse_step");
    refused("{\"model_type\": \"qwen3_moe\", " BASE_FIELDS ", \"num_experts\": 8, "
            "\"num_experts_per_tok\": 2, \"moe_intermediate_size\": 32, "
            "\"mlp_only_layers\": [0]}",
            NULL, SH_EUNSUPPORTED, "mlp_only_layers");
    refused("{\"model_type\": \"qwen3_moe\", " BASE_FIELDS ", \"num_experts\": 8, "
            "\"num_experts_per_tok\": 9, \"moe_intermediate_size\": 32}",
            NULL, SH_EMALFORMED, "num_experts_per_tok");
    refused("{\"model_type\": \"qwen2\", " BASE_FIELDS ", \"sliding_window\": 64, "
            "\"use_sliding_window\": true, \"layer_types\": [\"sliding_attention\", "
            "\"full_attention\", \"full_attention\", \"full_attention\"]}",
            NULL, SH_EUNSUPPORTED, "layer_types");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_old_generation), cmocka_unit_test(test_new_generation),
        cmocka_unit_test(test_llama3_rope),    cmocka_unit_test(test_families),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
