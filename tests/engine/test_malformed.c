/* tests/engine/test_malformed.c: bad model folders are refused with the
 * right error code and a message naming the file and tensor, never a crash
 * (this suite runs under ASan/UBSan).
 *
 * Table-driven: each case writes a corrupted copy of the qwen2 fixture
 * (config.json + model.safetensors, or a sharded layout) into a fresh
 * temporary folder and loads it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/file.h"
#include "common/json.h"
#include "engine/model.h"
#include "tests/lib/test.h"

#define BASE_DIR FIXTURES_DIR "/logits/qwen2"

/* The fixture, parsed once. */
struct base {
    char *config; /* config.json text */
    size_t config_len;
    cJSON *hdr;          /* safetensors header */
    const uint8_t *data; /* data section */
    size_t data_len;
    char *file; /* whole model.safetensors */
    size_t file_len;
};

static struct base base;

/* ---- writing files */

static void write_bytes(const char *dir, const char *name, const void *p, size_t len)
{
    char path[512];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    if (len)
        assert_int_equal(fwrite(p, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void write_text(const char *dir, const char *name, const char *s)
{
    write_bytes(dir, name, s, strlen(s));
}

static void write_json(const char *dir, const char *name, const cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    assert_non_null(s);
    write_text(dir, name, s);
    free(s);
}

/* A safetensors image: length field, header text padded with spaces to
 * `align` (data alignment), data. *len returned. */
static uint8_t *image(uint64_t hlen_field_or_0,
                      const char *hdr,
                      size_t pad_to,
                      size_t extra,
                      const uint8_t *data,
                      size_t data_len,
                      size_t *len)
{
    size_t h = strlen(hdr), padded = h, off;
    uint8_t *buf;
    uint64_t field;

    while ((8 + padded) % pad_to != extra)
        padded++;
    *len = 8 + padded + data_len;
    buf = malloc(*len);
    assert_non_null(buf);
    field = hlen_field_or_0 ? hlen_field_or_0 : padded;
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)(field >> (8 * i));
    memcpy(buf + 8, hdr, h);
    memset(buf + 8 + h, ' ', padded - h);
    off = 8 + padded;
    memcpy(buf + off, data, data_len);
    return buf;
}

static void write_st(const char *dir, const char *name, const cJSON *hdr)
{
    char *text = cJSON_PrintUnformatted(hdr);
    size_t len;
    uint8_t *img;
    assert_non_null(text);
    img = image(0, text, 8, 0, base.data, base.data_len, &len);
    write_bytes(dir, name, img, len);
    free(img);
    free(text);
}

static cJSON *hdr_copy(void)
{
    cJSON *h = cJSON_Duplicate(base.hdr, 1);
    assert_non_null(h);
    return h;
}

static cJSON *tensor(cJSON *hdr, const char *name)
{
    cJSON *t = cJSON_GetObjectItemCaseSensitive(hdr, name);
    assert_non_null(t);
    return t;
}

static void set_pair(cJSON *t, const char *key, double a, double b)
{
    double v[2] = {a, b};
    cJSON_ReplaceItemInObjectCaseSensitive(t, key, cJSON_CreateDoubleArray(v, 2));
}

static void config_plain(const char *dir)
{
    write_bytes(dir, "config.json", base.config, base.config_len);
}

/* config.json with key set to a JSON value (NULL deletes it). */
static void config_with(const char *dir, const char *key, const char *json_value)
{
    cJSON *c = cJSON_Parse(base.config);
    assert_non_null(c);
    cJSON_DeleteItemFromObjectCaseSensitive(c, key);
    if (json_value)
        cJSON_AddItemToObject(c, key, cJSON_Parse(json_value));
    write_json(dir, "config.json", c);
    cJSON_Delete(c);
}

/* ---- the cases: each writes a model folder */

static void mk_truncated(const char *dir)
{
    config_plain(dir);
    write_bytes(dir, "model.safetensors", base.file, base.file_len / 2);
}

static void mk_tiny(const char *dir)
{
    config_plain(dir);
    write_bytes(dir, "model.safetensors", base.file, 5);
}

static void raw_hlen(const char *dir, uint64_t hlen)
{
    char *text = cJSON_PrintUnformatted(base.hdr);
    size_t len;
    uint8_t *img = image(hlen, text, 8, 0, base.data, base.data_len, &len);
    config_plain(dir);
    write_bytes(dir, "model.safetensors", img, len);
    free(img);
    free(text);
}

static void mk_hlen_past_eof(const char *dir)
{
    raw_hlen(dir, base.file_len);
}

static void mk_hlen_zero(const char *dir)
{
    /* 0 means "use the real length" to image(): write the field by hand */
    uint8_t *copy = malloc(base.file_len);
    assert_non_null(copy);
    memcpy(copy, base.file, base.file_len);
    memset(copy, 0, 8);
    config_plain(dir);
    write_bytes(dir, "model.safetensors", copy, base.file_len);
    free(copy);
}

static void mk_hlen_2_32(const char *dir)
{
    raw_hlen(dir, (uint64_t)1 << 32);
}

static void mk_hlen_2_63(const char *dir)
{
    raw_hlen(dir, (uint64_t)1 << 63);
}

static void raw_header(const char *dir, const char *text, size_t pad_to, size_t extra)
{
    size_t len;
    uint8_t *img = image(0, text, pad_to, extra, base.data, base.data_len, &len);
    config_plain(dir);
    write_bytes(dir, "model.safetensors", img, len);
    free(img);
}

static void mk_bad_json(const char *dir)
{
    char *text = cJSON_PrintUnformatted(base.hdr);
    text[strlen(text) - 1] = ' '; /* unterminated object */
    raw_header(dir, text, 8, 0);
    free(text);
}

static void mk_not_object(const char *dir)
{
    raw_header(dir, "[1, 2, 3]", 8, 0);
}

static void mk_metadata_only(const char *dir)
{
    raw_header(dir, "{\"__metadata__\": {\"format\": \"pt\"}}", 8, 0);
}

static void mk_index_empty(const char *dir)
{
    config_plain(dir);
    write_st(dir, "model.safetensors", base.hdr);
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\": {}}");
}

static void mk_misaligned(const char *dir)
{
    char *text = cJSON_PrintUnformatted(base.hdr);
    raw_header(dir, text, 8, 1); /* data section at an odd offset */
    free(text);
}

/* Mutations of one tensor's entry, then written normally. */
#define MUTATION(fn, ...)                                                                          \
    static void fn(const char *dir)                                                                \
    {                                                                                              \
        cJSON *h = hdr_copy();                                                                     \
        config_plain(dir);                                                                         \
        __VA_ARGS__;                                                                               \
        write_st(dir, "model.safetensors", h);                                                     \
        cJSON_Delete(h);                                                                           \
    }

MUTATION(mk_offsets_past_end,
         set_pair(tensor(h, "model.norm.weight"),
                  "data_offsets",
                  (double)base.data_len,
                  (double)base.data_len + 256))
MUTATION(mk_end_before_begin, set_pair(tensor(h, "model.norm.weight"), "data_offsets", 256, 0))
MUTATION(mk_size_mismatch, {
    double d = 127;
    cJSON_ReplaceItemInObjectCaseSensitive(tensor(h, "model.norm.weight"), "shape",
                                           cJSON_CreateDoubleArray(&d, 1));
})
MUTATION(mk_overlap, set_pair(tensor(h, "model.norm.weight"), "data_offsets", 1024, 1280))
MUTATION(mk_unknown_dtype,
         cJSON_ReplaceItemInObjectCaseSensitive(tensor(h, "model.norm.weight"),
                                                "dtype",
                                                cJSON_CreateString("Q7")))
MUTATION(mk_no_kernels,
         cJSON_ReplaceItemInObjectCaseSensitive(tensor(h, "model.norm.weight"),
                                                "dtype",
                                                cJSON_CreateString("I16")))
MUTATION(mk_negative_dim,
         set_pair(tensor(h, "model.layers.0.self_attn.q_proj.weight"), "shape", -128, -128))
MUTATION(mk_dims_overflow, {
    double d[3] = {4294967296.0, 4294967296.0, 4294967296.0};
    cJSON_ReplaceItemInObjectCaseSensitive(tensor(h, "model.layers.0.self_attn.q_proj.weight"),
                                           "shape", cJSON_CreateDoubleArray(d, 3));
})
MUTATION(mk_wrong_shape,
         set_pair(tensor(h, "model.layers.0.self_attn.q_proj.weight"), "shape", 64, 256))
MUTATION(mk_missing_tensor,
         cJSON_DeleteItemFromObjectCaseSensitive(h, "model.layers.1.mlp.up_proj.weight"))
MUTATION(mk_bad_metadata,
         cJSON_ReplaceItemInObjectCaseSensitive(h, "__metadata__", cJSON_CreateNumber(5)))
MUTATION(mk_not_an_entry,
         cJSON_ReplaceItemInObjectCaseSensitive(h, "model.norm.weight", cJSON_CreateString("x")))

static void mk_duplicate(const char *dir)
{
    /* cJSON keeps duplicate keys; an empty duplicate passes the overlap
     * check and must be caught as a duplicate. */
    char *text = cJSON_PrintUnformatted(base.hdr);
    const char *dup = "{\"model.norm.weight\":{\"dtype\":\"BF16\",\"shape\":[0],"
                      "\"data_offsets\":[0,0]},";
    char *both = malloc(strlen(text) + strlen(dup) + 1);
    assert_non_null(both);
    strcpy(both, dup);
    strcat(both, text + 1);
    raw_header(dir, both, 8, 0);
    free(both);
    free(text);
}

static void mk_config_mismatch(const char *dir)
{
    /* llama has no q/k/v biases: the qwen2 biases would be ignored */
    cJSON *c = cJSON_Parse(base.config);
    assert_non_null(c);
    cJSON_ReplaceItemInObjectCaseSensitive(c, "model_type", cJSON_CreateString("llama"));
    cJSON_DeleteItemFromObjectCaseSensitive(c, "architectures");
    write_json(dir, "config.json", c);
    cJSON_Delete(c);
    write_st(dir, "model.safetensors", base.hdr);
}

static void mk_no_weights(const char *dir)
{
    config_plain(dir);
}

/* An index mapping every tensor to model.safetensors, then `extra`. */
static void
write_index(const char *dir, const char *extra_name, const char *extra_file, bool no_map)
{
    cJSON *idx = cJSON_CreateObject(), *map = cJSON_CreateObject();
    const cJSON *t;
    cJSON_ArrayForEach(t, base.hdr)
    {
        if (strcmp(t->string, "__metadata__") != 0)
            cJSON_AddStringToObject(map, t->string, "model.safetensors");
    }
    if (extra_name)
        cJSON_AddStringToObject(map, extra_name, extra_file);
    cJSON_AddItemToObject(idx, no_map ? "tensor_map" : "weight_map", map);
    write_json(dir, "model.safetensors.index.json", idx);
    cJSON_Delete(idx);
}

static void mk_index_ok(const char *dir)
{
    config_plain(dir);
    write_st(dir, "model.safetensors", base.hdr);
    write_index(dir, NULL, NULL, false);
}

static void mk_index_missing_shard(const char *dir)
{
    config_plain(dir);
    write_st(dir, "model.safetensors", base.hdr);
    write_index(dir, "model.norm.weight", "model-00002-of-00002.safetensors", false);
}

static void mk_index_missing_tensor(const char *dir)
{
    config_plain(dir);
    write_st(dir, "model.safetensors", base.hdr);
    write_index(dir, "model.extra.weight", "model.safetensors", false);
}

static void mk_index_path_escape(const char *dir)
{
    config_plain(dir);
    write_st(dir, "model.safetensors", base.hdr);
    write_index(dir, "model.norm.weight", "../model.safetensors", false);
}

static void mk_index_no_map(const char *dir)
{
    config_plain(dir);
    write_st(dir, "model.safetensors", base.hdr);
    write_index(dir, NULL, NULL, true);
}

static void mk_index_bad_json(const char *dir)
{
    config_plain(dir);
    write_st(dir, "model.safetensors", base.hdr);
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\": {");
}

static void mk_config_bad_json(const char *dir)
{
    write_text(dir, "config.json", "{\"model_type\": \"qwen2\", ");
    write_st(dir, "model.safetensors", base.hdr);
}

static void mk_config_gpt2(const char *dir)
{
    config_with(dir, "model_type", "\"gpt2\"");
}

static void mk_config_no_hidden(const char *dir)
{
    config_with(dir, "hidden_size", NULL);
}

static void mk_config_huge(const char *dir)
{
    cJSON *c = cJSON_Parse(base.config);
    assert_non_null(c);
    cJSON_ReplaceItemInObjectCaseSensitive(c, "num_hidden_layers", cJSON_CreateNumber(4096));
    cJSON_ReplaceItemInObjectCaseSensitive(c, "hidden_size", cJSON_CreateNumber(1 << 20));
    cJSON_ReplaceItemInObjectCaseSensitive(c, "num_attention_heads", cJSON_CreateNumber(4096));
    cJSON_ReplaceItemInObjectCaseSensitive(c, "num_key_value_heads", cJSON_CreateNumber(4096));
    write_json(dir, "config.json", c);
    cJSON_Delete(c);
    write_st(dir, "model.safetensors", base.hdr);
}

static void mk_config_yarn(const char *dir)
{
    config_with(dir, "rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0}");
}

static void mk_gen_bad_json(const char *dir)
{
    config_plain(dir);
    write_st(dir, "model.safetensors", base.hdr);
    write_text(dir, "generation_config.json", "{\"temperature\": }");
}

struct mcase {
    const char *name;
    void (*make)(const char *dir);
    int code;
    const char *needle[2]; /* must appear in the message */
};

static const struct mcase cases[] = {
    {"truncated file", mk_truncated, SH_EMALFORMED, {"model.safetensors: tensor", "pass the end"}},
    {"file shorter than the length field",
     mk_tiny,
     SH_EMALFORMED,
     {"model.safetensors", "too short"}},
    {"header length past EOF",
     mk_hlen_past_eof,
     SH_EMALFORMED,
     {"model.safetensors", "passes the end of the file"}},
    {"header length 0", mk_hlen_zero, SH_EMALFORMED, {"model.safetensors", "length is 0"}},
    {"header length 2^32", mk_hlen_2_32, SH_EMALFORMED, {"model.safetensors", "4294967296"}},
    {"header length 2^63", mk_hlen_2_63, SH_EMALFORMED, {"model.safetensors", "exceeds"}},
    {"header JSON invalid", mk_bad_json, SH_EMALFORMED, {"model.safetensors", "invalid JSON"}},
    {"header not an object", mk_not_object, SH_EMALFORMED, {"model.safetensors", "not a JSON"}},
    {"header with no tensors", mk_metadata_only, SH_EMALFORMED,
     {"safetensors files hold (0 tensors", "config.json"}},
    {"index with an empty weight_map", mk_index_empty, SH_EMALFORMED,
     {"files hold (0 tensors", "config.json"}},
    {"data misaligned", mk_misaligned, SH_EMALFORMED, {"model.safetensors", "not aligned"}},
    {"offsets out of range",
     mk_offsets_past_end,
     SH_EMALFORMED,
     {"tensor model.norm.weight", "pass the end of the data section"}},
    {"end < begin",
     mk_end_before_begin,
     SH_EMALFORMED,
     {"tensor model.norm.weight", "before begin"}},
    {"size inconsistent with shape x dtype",
     mk_size_mismatch,
     SH_EMALFORMED,
     {"tensor model.norm.weight", "needs 254"}},
    {"overlapping tensors", mk_overlap, SH_EMALFORMED, {"model.norm.weight", "overlap"}},
    {"unknown dtype", mk_unknown_dtype, SH_EUNSUPPORTED, {"tensor model.norm.weight", "Q7"}},
    {"dtype without kernels", mk_no_kernels, SH_EUNSUPPORTED, {"tensor model.norm.weight", "I16"}},
    {"negative dimension",
     mk_negative_dim,
     SH_EMALFORMED,
     {"tensor model.layers.0.self_attn.q_proj.weight", "shape[0]"}},
    {"dimension product overflows",
     mk_dims_overflow,
     SH_EMALFORMED,
     {"tensor model.layers.0.self_attn.q_proj.weight", "overflows"}},
    {"duplicate tensor", mk_duplicate, SH_EMALFORMED, {"model.norm.weight", "listed twice"}},
    {"metadata not an object",
     mk_bad_metadata,
     SH_EMALFORMED,
     {"model.safetensors", "__metadata__"}},
    {"entry not an object",
     mk_not_an_entry,
     SH_EMALFORMED,
     {"tensor model.norm.weight", "expected {dtype"}},
    {"wrong shape for the config",
     mk_wrong_shape,
     SH_EMALFORMED,
     {"tensor model.layers.0.self_attn.q_proj.weight", "[64, 256], the config implies [128, 128]"}},
    {"missing tensor",
     mk_missing_tensor,
     SH_ENOTFOUND,
     {"tensor model.layers.1.mlp.up_proj.weight", "missing"}},
    {"tensor the config does not use",
     mk_config_mismatch,
     SH_EUNSUPPORTED,
     {"model.layers.0.self_attn.k_proj.bias", "not part of the layout"}},
    {"no weights", mk_no_weights, SH_ENOTFOUND, {"no model.safetensors", ""}},
    {"index: valid (control)", mk_index_ok, 0, {"", ""}},
    {"index names a missing shard",
     mk_index_missing_shard,
     SH_ENOTFOUND,
     {"model-00002-of-00002.safetensors", "index.json"}},
    {"index names a tensor not in its shard",
     mk_index_missing_tensor,
     SH_ENOTFOUND,
     {"tensor model.extra.weight", "model.safetensors"}},
    {"index shard path escapes the folder",
     mk_index_path_escape,
     SH_EMALFORMED,
     {"model.norm.weight", "not a file name"}},
    {"index without weight_map", mk_index_no_map, SH_EMALFORMED, {"index.json", "weight_map"}},
    {"index JSON invalid", mk_index_bad_json, SH_EMALFORMED, {"index.json", "invalid JSON"}},
    {"config JSON invalid", mk_config_bad_json, SH_EMALFORMED, {"config.json", "invalid JSON"}},
    {"unsupported model_type", mk_config_gpt2, SH_EUNSUPPORTED, {"model_type", "gpt2"}},
    {"config without hidden_size",
     mk_config_no_hidden,
     SH_EMALFORMED,
     {"config.json", "hidden_size"}},
    {"config far larger than the weights",
     mk_config_huge,
     SH_EMALFORMED,
     {"config.json", "more weights than"}},
    {"unsupported rope type", mk_config_yarn, SH_EUNSUPPORTED, {"rope_scaling.rope_type", "yarn"}},
    {"generation_config JSON invalid",
     mk_gen_bad_json,
     SH_EMALFORMED,
     {"generation_config.json", "invalid JSON"}},
};

#define NCASES (sizeof cases / sizeof cases[0])

static void remove_dir(const char *dir)
{
    static const char *const names[] = {"config.json", "generation_config.json",
                                        "model.safetensors", "model.safetensors.index.json"};
    char path[512];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void run_case(void **state)
{
    const struct mcase *c = *state;
    char dir[] = "/tmp/shoal-malformed-XXXXXX";
    struct eng_model *m = NULL;
    struct sh_err err = {0};
    int rc;

    assert_non_null(mkdtemp(dir));
    c->make(dir);
    rc = eng_model_load(dir, &m, &err);
    if (rc != c->code)
        fail_msg("%s: code %d (%s), expected %d: %s", c->name, rc, sh_strerror(rc), c->code,
                 sh_err_msg(&err));
    for (int i = 0; i < 2; i++)
        if (!strstr(err.msg, c->needle[i]))
            fail_msg("%s: message \"%s\" lacks \"%s\"", c->name, err.msg, c->needle[i]);
    if (rc == 0) {
        assert_non_null(m);
        assert_int_equal(eng_model_config(m)->family, ENG_FAMILY_QWEN2);
    } else {
        assert_null(m);
        /* file-level errors name the folder's file, not just the folder */
        if (rc != SH_EUNSUPPORTED && strstr(c->needle[0], "model.safetensors"))
            assert_non_null(strstr(err.msg, dir));
    }
    eng_model_free(m);
    remove_dir(dir);
}

static int setup(void **state)
{
    struct sh_err err = {0};
    uint64_t hlen = 0;

    (void)state;
    if (sh_read_file(BASE_DIR "/config.json", 1 << 20, &base.config, &base.config_len, &err) ||
        sh_read_file(BASE_DIR "/model.safetensors", 1 << 26, &base.file, &base.file_len, &err)) {
        fprintf(stderr, "%s\n", sh_err_msg(&err));
        return -1;
    }
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | (uint8_t)base.file[i];
    if (sh_json_parse(base.file + 8, (size_t)hlen, "fixture", &base.hdr, &err))
        return -1;
    base.data = (const uint8_t *)base.file + 8 + hlen;
    base.data_len = base.file_len - 8 - (size_t)hlen;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cJSON_Delete(base.hdr);
    free(base.file);
    free(base.config);
    return 0;
}

int main(void)
{
    struct CMUnitTest tests[NCASES];

    for (size_t i = 0; i < NCASES; i++)
        tests[i] = (struct CMUnitTest){cases[i].name, run_case, NULL, NULL, (void *)&cases[i]};
    return _cmocka_run_group_tests("engine_malformed", tests, NCASES, setup, teardown);
}
