/* tests/engine/test_quant.c: MLX affine quantization: the quantizer against
 * mlx's own worked example (pack_example.json) and round-trip error bounds,
 * `eng_quantize` byte-identical with the mlx-quant fixtures (what
 * mlx_lm.convert -q wrote from the same sources), per-module overrides,
 * and quantized folders that are wrong in the ways a reader must catch. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/file.h"
#include "common/json.h"
#include "common/util.h"
#include "engine/internal.h"
#include "engine/kern_common.h"
#include "tests/lib/test.h"

#define MLX FIXTURES_DIR "/mlx-quant"

static char tmp_root[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmp_root, sizeof tmp_root, "/tmp/shoal-test-quant-XXXXXX");
    return mkdtemp(tmp_root) ? 0 : -1;
}

static void rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    if (!d)
        return;
    while ((e = readdir(d))) {
        char p[1024];
        struct stat sb;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            rm_rf(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int teardown(void **state)
{
    (void)state;
    rm_rf(tmp_root);
    return 0;
}

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmp_root, name);
}

/* (out of line: gcc 12 misreads the inlined out-parameter as dangling) */
__attribute__((noinline)) static char *read_all(const char *path, size_t *len)
{
    char *buf = NULL;
    struct sh_err err = {0};
    if (sh_read_file(path, (size_t)1 << 30, &buf, len, &err))
        fail_msg("%s", sh_err_msg(&err));
    return buf;
}

/* ---- the quantizer */

static void test_pack_example(void **state)
{
    cJSON *root = NULL, *c;
    struct sh_err err = {0};

    (void)state;
    if (sh_json_parse_file(MLX "/pack_example.json", 1 << 20, &root, &err))
        fail_msg("%s", sh_err_msg(&err));
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases"))
    {
        int bits = cJSON_GetObjectItem(c, "bits")->valueint;
        int gs = cJSON_GetObjectItem(c, "group_size")->valueint;
        float w[64], s, b, deq[64];
        uint8_t codes[64], packed[64];
        const cJSON *e;
        int i = 0;
        struct eng_mat m;
        assert_int_equal(gs, 64);
        /* floats in the fixture are the shortest decimals that read back
         * exactly: strtof of the printed number */
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "weights_bf16_as_f32"))
        {
            char *txt = cJSON_PrintUnformatted(e);
            w[i++] = strtof(txt, NULL);
            free(txt);
        }
        eng_quant_group(w, 64, bits, ENG_DT_BF16, codes, &s, &b);
        i = 0;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "codes"))
            assert_int_equal(codes[i++], e->valueint);
        assert_true(s == (float)cJSON_GetObjectItem(c, "scale_bf16_as_f32")->valuedouble);
        assert_true(b == (float)cJSON_GetObjectItem(c, "bias_bf16_as_f32")->valuedouble);
        eng_quant_pack(codes, 64, bits, packed);
        i = 0;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "packed_uint32"))
        {
            uint32_t word = (uint32_t)packed[4 * i] | (uint32_t)packed[4 * i + 1] << 8 |
                            (uint32_t)packed[4 * i + 2] << 16 | (uint32_t)packed[4 * i + 3] << 24;
            assert_true(word == (uint32_t)e->valuedouble);
            i++;
        }
        /* dequantized through the kernels (every ISA): w = code * s + b */
        {
            uint16_t sb = eng_f32_to_bf16(s), bb = eng_f32_to_bf16(b);
            m = (struct eng_mat){.dtype = bits == 4 ? ENG_DT_Q4 : ENG_DT_Q8,
                                 .rows = 1,
                                 .cols = 64,
                                 .row_stride = (size_t)(64 * bits / 8),
                                 .data = packed,
                                 .group_size = 64,
                                 .sb_dtype = ENG_DT_BF16,
                                 .scales = &sb,
                                 .biases = &bb,
                                 .sb_stride = 2};
            for (int isa = 0; isa <= ENG_ISA_AVX512; isa++) {
                const struct eng_mat_ops *ops = eng_mat_ops_isa(m.dtype, (enum eng_isa)isa);
                uint8_t own[64 + ENG_REPACK_PAD];
                struct eng_mat mk = m;
                if (!ops)
                    continue;
                if (ops->repack) /* (a kernel's own layout) */
                    ops->repack(&m, own, &mk);
                ops->rows_to_f32(&mk, 0, 1, deq);
                i = 0;
                cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "dequantized_f32"))
                {
                    char *txt = cJSON_PrintUnformatted(e);
                    assert_true(deq[i++] == strtof(txt, NULL));
                    free(txt);
                }
            }
        }
    }
    cJSON_Delete(root);
}

/* |w - (code * scale + bias)|: at most one scale step (the far end of a
 * group can clip by up to 15/16 of a step, mlx's scale adjustment), plus
 * the rounding of scale and bias to the stored dtype (relative, and for
 * f16 absolute below its normal range). */
static void test_round_trip(void **state)
{
    static const enum eng_dtype sbs[] = {ENG_DT_F32, ENG_DT_BF16, ENG_DT_F16};
    uint64_t seed = 12345;

    (void)state;
    for (int bits = 4; bits <= 8; bits += 4) {
        for (int gs = 32; gs <= 128; gs *= 2) {
            for (size_t k = 0; k < sizeof sbs / sizeof *sbs; k++) {
                for (int trial = 0; trial < 200; trial++) {
                    float w[128], s, b;
                    uint8_t codes[128];
                    double rel = sbs[k] == ENG_DT_F32    ? 0x1p-23
                                 : sbs[k] == ENG_DT_BF16 ? 0x1p-8
                                                         : 0x1p-11;
                    float scale = trial % 7 == 0 ? 1e-6f : trial % 5 == 0 ? 30.0f : 0.05f;
                    for (int i = 0; i < gs; i++) {
                        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                        w[i] = ((float)(seed >> 40) / (float)(1 << 24) - 0.5f) * scale +
                               (trial % 3 == 0 ? scale : 0.0f);
                    }
                    if (trial == 1)
                        memset(w, 0, sizeof w); /* all zero: exact */
                    eng_quant_group(w, gs, bits, sbs[k], codes, &s, &b);
                    for (int i = 0; i < gs; i++) {
                        double got = (double)((float)codes[i] * s + b);
                        /* (f16 also rounds below 2^-14 to steps of 2^-24) */
                        double sub = sbs[k] == ENG_DT_F16 ? 0x1p-25 * ((1 << bits) + 1) : 0;
                        double bound = fabs((double)s) * (1 + rel * (1 << bits)) +
                                       fabs((double)b) * rel + sub + 1e-12;
                        assert_true(codes[i] < (1u << bits));
                        if (fabs(got - w[i]) > bound)
                            fail_msg("%d-bit g%d %s trial %d: w %g -> %g (scale %g, bias %g)", bits,
                                     gs, eng_dtype_info(sbs[k])->name, trial, (double)w[i], got,
                                     (double)s, (double)b);
                    }
                }
            }
        }
    }
}

/* ---- eng_quantize against the fixtures */

static void compare_safetensors(const char *a_path, const char *b_path)
{
    size_t la, lb;
    char *a = read_all(a_path, &la), *b = read_all(b_path, &lb);

    /* the fixtures are what mlx_lm wrote: header and data, byte for byte */
    if (la != lb || memcmp(a, b, la) != 0)
        fail_msg("%s differs from %s", a_path, b_path);
    free(a);
    free(b);
}

static void quantize_ok(const char *src, const char *out, int bits, const char *dtype)
{
    struct eng_quantize_opts o = {.bits = bits, .group_size = 64, .dtype = dtype};
    struct sh_err err = {0};
    if (eng_quantize(src, out, &o, &err))
        fail_msg("quantize %s: %s", src, sh_err_msg(&err));
}

static void test_matches_fixtures(void **state)
{
    static const struct {
        const char *src, *fixture, *dtype;
        int bits;
    } cases[] = {
        {FIXTURES_DIR "/logits/llama", "llama-4bit-g64", "bf16", 4},
        {FIXTURES_DIR "/logits/llama", "llama-8bit-g64", "bf16", 8},
        {FIXTURES_DIR "/logits/qwen3", "qwen3-4bit-g64", NULL, 4},
        {FIXTURES_DIR "/logits/qwen3", "qwen3-8bit-g64", NULL, 8},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[512], a[600], b[600];
        struct eng_model *m = NULL;
        struct sh_err err = {0};
        cJSON *cfg = NULL, *q;
        path_in(out, sizeof out, cases[i].fixture);
        quantize_ok(cases[i].src, out, cases[i].bits, cases[i].dtype);
        snprintf(a, sizeof a, "%s/model.safetensors", out);
        snprintf(b, sizeof b, "%s/%s/model.safetensors", MLX, cases[i].fixture);
        compare_safetensors(a, b);
        /* the config carries both keys, and the folder loads */
        snprintf(a, sizeof a, "%s/config.json", out);
        assert_int_equal(sh_json_parse_file(a, 1 << 20, &cfg, &err), 0);
        q = cJSON_GetObjectItem(cfg, "quantization");
        assert_non_null(q);
        assert_int_equal(cJSON_GetObjectItem(q, "bits")->valueint, cases[i].bits);
        assert_int_equal(cJSON_GetObjectItem(q, "group_size")->valueint, 64);
        assert_string_equal(cJSON_GetObjectItem(q, "mode")->valuestring, "affine");
        assert_non_null(cJSON_GetObjectItem(cfg, "quantization_config"));
        cJSON_Delete(cfg);
        if (eng_model_load(out, &m, &err))
            fail_msg("load %s: %s", out, sh_err_msg(&err));
        assert_string_equal(eng_model_dtype_name(m), cases[i].bits == 4 ? "q4" : "q8");
        eng_model_free(m);
    }
}

static void test_quantize_errors(void **state)
{
    struct eng_quantize_opts o = {.bits = 4, .group_size = 64};
    struct sh_err err = {0};
    char out[512], exists[512];
    DIR *d;
    struct dirent *e;
    int entries = 0;

    (void)state;
    path_in(out, sizeof out, "errors-out");
    o.bits = 3;
    assert_int_equal(eng_quantize(FIXTURES_DIR "/logits/llama", out, &o, &err), SH_EINVAL);
    o.bits = 4;
    o.group_size = 48;
    assert_int_equal(eng_quantize(FIXTURES_DIR "/logits/llama", out, &o, &err), SH_EINVAL);
    o.group_size = 64;
    o.dtype = "f8";
    assert_int_equal(eng_quantize(FIXTURES_DIR "/logits/llama", out, &o, &err), SH_EINVAL);
    assert_non_null(strstr(err.msg, "--dtype"));
    o.dtype = NULL;
    assert_int_equal(eng_quantize(MLX "/llama-4bit-g64", out, &o, &err), SH_EINVAL);
    assert_non_null(strstr(err.msg, "already quantized"));
    assert_int_equal(eng_quantize(FIXTURES_DIR "/nowhere", out, &o, &err), SH_ENOTFOUND);
    path_in(exists, sizeof exists, "exists");
    assert_int_equal(mkdir(exists, 0755), 0);
    assert_int_equal(eng_quantize(FIXTURES_DIR "/logits/llama", exists, &o, &err), SH_EEXIST);
    /* nothing was left behind: only the folder made above */
    d = opendir(tmp_root);
    assert_non_null(d);
    while ((e = readdir(d)))
        entries += strncmp(e->d_name, "errors-out", 10) == 0;
    closedir(d);
    assert_int_equal(entries, 0);
}

/* ---- per-module overrides and broken folders */

/* A safetensors file of the given tensors (all from one source folder's
 * mmapped tensors, renamed or not). */
struct wt {
    const char *name;
    const struct eng_tensor *t;
    const char *dtype; /* NULL: the tensor's own */
};

static void write_st(const char *dir, const struct wt *ts, size_t n)
{
    struct sh_strbuf h;
    char path[600];
    uint64_t off = 0;
    FILE *f;
    uint8_t len8[8];

    sh_strbuf_init(&h, 1 << 24);
    assert_int_equal(sh_strbuf_puts(&h, "{"), 0);
    for (size_t i = 0; i < n; i++) {
        const struct eng_tensor *t = ts[i].t;
        assert_int_equal(
            sh_strbuf_printf(&h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld", i ? "," : "",
                             ts[i].name,
                             ts[i].dtype ? ts[i].dtype : eng_dtype_info(t->dtype)->st_name,
                             (long long)t->shape[0]),
            0);
        for (int k = 1; k < t->n_dims; k++)
            assert_int_equal(sh_strbuf_printf(&h, ",%lld", (long long)t->shape[k]), 0);
        assert_int_equal(sh_strbuf_printf(&h, "],\"data_offsets\":[%llu,%llu]}",
                                          (unsigned long long)off,
                                          (unsigned long long)(off + t->nbytes)),
                         0);
        off += t->nbytes;
    }
    assert_int_equal(sh_strbuf_puts(&h, "}"), 0);
    while (h.len % 8)
        assert_int_equal(sh_strbuf_puts(&h, " "), 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    sh_put_u64(len8, h.len);
    assert_int_equal(fwrite(len8, 1, 8, f), 8);
    assert_int_equal(fwrite(h.buf, 1, h.len, f), h.len);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(fwrite(ts[i].t->data, 1, ts[i].t->nbytes, f), ts[i].t->nbytes);
    assert_int_equal(fclose(f), 0);
    sh_strbuf_free(&h);
}

/* config.json of the 4-bit llama fixture with `extra` spliced into its
 * quantization block (e.g. ", \"lm_head\": false"). */
static void write_config(const char *dir, const char *extra)
{
    static const char key[] = "\"quantization\": {";
    size_t len, split;
    char *cfg = read_all(MLX "/llama-4bit-g64/config.json", &len), *text, path[600];
    struct sh_err err = {0};

    assert_non_null(strstr(cfg, key));
    split = (size_t)(strstr(cfg, key) - cfg) + strlen(key);
    text = malloc(len + strlen(extra) + 1);
    assert_non_null(text);
    memcpy(text, cfg, split);
    memcpy(text + split, extra, strlen(extra));
    memcpy(text + split + strlen(extra), cfg + split, len - split + 1);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (sh_write_file_atomic(path, text, strlen(text), 0644, &err))
        fail_msg("%s", sh_err_msg(&err));
    free(text);
    free(cfg);
}

/* Builds a folder: the 4-bit llama with module `mod`'s three tensors taken
 * from `other` (a fixture folder) or left out, and `extra` in the config's
 * quantization block; returns eng_model_load's code. */
static int mixed(const char *name,
                 const char *mod,
                 const char *other,
                 const char *extra,
                 struct sh_err *err,
                 struct eng_model **out)
{
    struct eng_st a = {0}, b = {0};
    struct wt *ts;
    size_t n = 0;
    char dir[600];
    int rc;

    path_in(dir, sizeof dir, name);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(eng_st_open(MLX "/llama-4bit-g64", &a, err), 0);
    if (other)
        assert_int_equal(eng_st_open(other, &b, err), 0);
    ts = calloc(a.n_tensors + b.n_tensors, sizeof *ts);
    assert_non_null(ts);
    for (size_t i = 0; i < a.n_tensors; i++)
        if (!mod || strncmp(a.tensors[i].name, mod, strlen(mod)) != 0 ||
            a.tensors[i].name[strlen(mod)] != '.')
            ts[n++] = (struct wt){a.tensors[i].name, &a.tensors[i], NULL};
    for (size_t i = 0; mod && i < b.n_tensors; i++)
        if (strncmp(b.tensors[i].name, mod, strlen(mod)) == 0 &&
            b.tensors[i].name[strlen(mod)] == '.')
            ts[n++] = (struct wt){b.tensors[i].name, &b.tensors[i], NULL};
    write_st(dir, ts, n);
    write_config(dir, extra);
    free(ts);
    eng_st_close(&b);
    eng_st_close(&a);
    *out = NULL;
    rc = eng_model_load(dir, out, err);
    return rc;
}

static void test_overrides(void **state)
{
    struct eng_model *m4 = NULL, *m = NULL;
    struct sh_err err = {0};
    int rc;

    (void)state;
    assert_int_equal(eng_model_load(MLX "/llama-4bit-g64", &m4, &err), 0);
    /* one module at 8 bits (mlx-lm's per-module parameters) */
    rc = mixed("over8", "model.layers.1.mlp.down_proj", MLX "/llama-8bit-g64",
               "\"model.layers.1.mlp.down_proj\": {\"group_size\": 64, \"bits\": 8}, ", &err, &m);
    if (rc)
        fail_msg("%s", sh_err_msg(&err));
    assert_int_equal(m->layers[1].w_down.dtype, ENG_DT_Q8);
    assert_int_equal(m->layers[1].w_up.dtype, ENG_DT_Q4);
    assert_true(eng_model_weight_bytes(m) > eng_model_weight_bytes(m4));
    eng_model_free(m);
    /* the same bytes without the override: the shapes say 8 bits, the config 4 */
    rc =
        mixed("over8-missing", "model.layers.1.mlp.down_proj", MLX "/llama-8bit-g64", "", &err, &m);
    assert_int_equal(rc, SH_EMALFORMED);
    assert_non_null(strstr(err.msg, "down_proj"));
    /* a module left in float ("false"): quantized tensors there are refused */
    rc = mixed("over-false", "model.layers.0.self_attn.q_proj", MLX "/llama-4bit-g64",
               "\"model.layers.0.self_attn.q_proj\": false, ", &err, &m);
    assert_int_equal(rc, SH_EMALFORMED);
    assert_non_null(strstr(err.msg, "packed U32"));
    /* missing biases of one module */
    rc = mixed("no-biases", "model.layers.0.self_attn.k_proj", NULL, "", &err, &m);
    assert_int_equal(rc, SH_ENOTFOUND);
    assert_non_null(strstr(err.msg, "k_proj"));
    eng_model_free(m4);
}

static void test_bad_scales(void **state)
{
    struct eng_st a = {0};
    struct sh_err err = {0};
    struct eng_model *m = NULL;
    struct wt *ts;
    char dir[600];

    (void)state;
    path_in(dir, sizeof dir, "bad-scales");
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(eng_st_open(MLX "/llama-4bit-g64", &a, &err), 0);
    ts = calloc(a.n_tensors, sizeof *ts);
    assert_non_null(ts);
    for (size_t i = 0; i < a.n_tensors; i++) {
        ts[i] = (struct wt){a.tensors[i].name, &a.tensors[i], NULL};
        /* the same bytes read as I16: a dtype scales cannot have */
        if (strcmp(a.tensors[i].name, "model.layers.0.mlp.up_proj.scales") == 0)
            ts[i].dtype = "I16";
    }
    write_st(dir, ts, a.n_tensors);
    write_config(dir, "");
    assert_int_equal(eng_model_load(dir, &m, &err), SH_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "up_proj"));
    assert_null(m);
    free(ts);
    eng_st_close(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_example),     cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_matches_fixtures), cmocka_unit_test(test_quantize_errors),
        cmocka_unit_test(test_overrides),        cmocka_unit_test(test_bad_scales),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
