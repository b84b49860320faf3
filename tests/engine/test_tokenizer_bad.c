/* tests/engine/test_tokenizer_bad.c: tokenizer.json files we must refuse,
 * each with its own error code and a message naming the fault (table-driven
 * from one valid little tokenizer, patched one field at a time), and bad
 * input to encode/decode. Run under ASan/UBSan: refusing must not leak. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/file.h"
#include "common/json.h"
#include "engine/tokenizer.h"
#include "lib/test.h"

/* Bytes as ByteLevel spells them: "Ġ" is the space. */
static const char base_json[] =
    "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,"
    "\"added_tokens\":[{\"id\":6,\"content\":\"<s>\",\"single_word\":false,\"lstrip\":false,"
    "\"rstrip\":false,\"normalized\":false,\"special\":true}],"
    "\"normalizer\":{\"type\":\"NFC\"},"
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\s+\"},\"behavior\":\"Isolated\","
    "\"invert\":false},"
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]},"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":["
    "{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}]"
    ","
    "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[6],\"tokens\":[\"<s>\"]}}},"
    "\"decoder\":{\"type\":\"ByteLevel\"},"
    "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"byte_fallback\":false,"
    "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"c\":3,\"abc\":4,\"\\u0120\":5},"
    "\"merges\":[[\"a\",\"b\"],\"ab c\"]}}";

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/shoal-tokbad-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(dir);
}

/* Writes text to a file and loads it; returns the code, message in err. */
static int load_text(const char *text, struct eng_tokenizer **tok, struct sh_err *err)
{
    char path[128];
    struct sh_err werr = {0};
    int rc;

    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    assert_int_equal(sh_write_file_atomic(path, text, strlen(text), 0644, &werr), 0);
    rc = eng_tokenizer_load(path, tok, err);
    unlink(path);
    return rc;
}

/* base_json with the field at dotted `path` replaced by JSON `value`
 * (NULL deletes it). Returned text is freed by the caller. */
static char *patched(const char *path, const char *value)
{
    cJSON *root = cJSON_Parse(base_json), *obj = root;
    char key[64], *text;
    const char *p = path, *dot;

    assert_non_null(root);
    while ((dot = strchr(p, '.'))) {
        snprintf(key, sizeof key, "%.*s", (int)(dot - p), p);
        obj = cJSON_GetObjectItemCaseSensitive(obj, key);
        assert_non_null(obj);
        p = dot + 1;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(obj, p);
    if (value) {
        cJSON *v = cJSON_Parse(value);
        assert_non_null(v);
        cJSON_AddItemToObject(obj, p, v);
    }
    text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

static void base_is_valid(void **state)
{
    struct eng_tokenizer *tok = NULL;
    struct sh_err err = {0};
    int32_t *ids = NULL;
    size_t n = 0;

    (void)state;
    if (load_text(base_json, &tok, &err))
        fail_msg("%s", sh_err_msg(&err));
    assert_int_equal(eng_tokenize(tok, "abc ab", 6, true, &ids, &n, &err), 0);
    assert_int_equal(n, 4);
    assert_int_equal(ids[0], 6);
    assert_int_equal(ids[1], 4);
    assert_int_equal(ids[2], 5);
    assert_int_equal(ids[3], 2);
    free(ids);
    assert_int_equal(eng_tokenizer_vocab_size(tok), 7);
    eng_tokenizer_free(tok);
}

struct bad_case {
    const char *path;  /* field to replace, or NULL: `value` is the whole file */
    const char *value; /* JSON, or NULL to delete the field */
    int code;
    const char *msg; /* a substring the message must contain */
};

static const struct bad_case bad_cases[] = {
    {NULL, "", SH_EMALFORMED, "invalid JSON"},
    {NULL, "{\"model\": ", SH_EMALFORMED, "invalid JSON"},
    {NULL, "[1, 2]", SH_EMALFORMED, "expected a JSON object"},
    {NULL, "{} trailing", SH_EMALFORMED, "trailing data"},
    {"model", NULL, SH_EMALFORMED, "missing \"model\""},
    {"model.type", NULL, SH_EMALFORMED, "model: missing \"type\""},
    {"model.type", "\"WordPiece\"", SH_EUNSUPPORTED, "model type \"WordPiece\""},
    {"model.type", "\"Frobnicate\"", SH_EUNSUPPORTED, "model type \"Frobnicate\""},
    {"model.vocab", "[]", SH_EMALFORMED, "model.vocab: expected an object"},
    {"model.vocab", "{}", SH_EMALFORMED, "out of range"},
    {"model.vocab", "{\"a\":0,\"b\":1.5}", SH_EMALFORMED, "model.vocab[\"b\"]"},
    {"model.vocab", "{\"a\":0,\"b\":-1}", SH_EMALFORMED, "model.vocab[\"b\"]"},
    {"model.vocab", "{\"a\":0,\"b\":\"1\"}", SH_EMALFORMED, "model.vocab[\"b\"]"},
    {"model.vocab", "{\"a\":0,\"b\":0,\"ab\":2,\"c\":3,\"abc\":4,\"\\u0120\":5}", SH_EMALFORMED,
     "id 0 given twice"},
    {"model.vocab", "{\"a\":0,\"b\":1,\"ab\":2,\"c\":3,\"abc\":4,\"\\u0120\":4000000000}",
     SH_EMALFORMED, "model.vocab[\""},
    {"model.merges", "[[\"a\",\"q\"]]", SH_EMALFORMED, "token \"q\" is not in the vocabulary"},
    {"model.merges", "[\"a b\",\"b c\"]", SH_EMALFORMED, "merged token \"bc\" is not"},
    {"model.merges", "[\"ab\"]", SH_EMALFORMED, "model.merges[0]"},
    {"model.merges", "[[\"a\"]]", SH_EMALFORMED, "model.merges[0]"},
    {"model.merges", "[[\"a\",\"b\"],7]", SH_EMALFORMED, "model.merges[1]"},
    {"model.merges", "{}", SH_EMALFORMED, "model.merges: expected an array"},
    {"model.byte_fallback", "true", SH_EUNSUPPORTED, "byte_fallback"},
    {"model.dropout", "0.1", SH_EUNSUPPORTED, "dropout"},
    {"model.continuing_subword_prefix", "\"##\"", SH_EUNSUPPORTED, "continuing_subword_prefix"},
    {"model.unk_token", "\"<unk>\"", SH_EMALFORMED, "unk_token \"<unk>\" is not in"},
    {"model.ignore_merges", "1", SH_EMALFORMED, "ignore_merges"},
    {"added_tokens", "[{\"id\":99999,\"content\":\"<s>\",\"special\":true}]", SH_EMALFORMED,
     "id 99999 out of range"},
    {"added_tokens", "[{\"id\":-1,\"content\":\"<s>\",\"special\":true}]", SH_EMALFORMED,
     "out of range"},
    {"added_tokens", "[{\"id\":1e300,\"content\":\"<s>\",\"special\":true}]", SH_EMALFORMED,
     "out of range"},
    {"added_tokens", "[{\"content\":\"<s>\"}]", SH_EMALFORMED, "without an \"id\""},
    {"added_tokens", "[{\"id\":6,\"content\":\"\"}]", SH_EMALFORMED, "non-empty string"},
    {"added_tokens", "[{\"id\":6,\"content\":7}]", SH_EMALFORMED, "non-empty string"},
    {"added_tokens", "[{\"id\":6,\"content\":\"<s>\",\"special\":\"yes\"}]", SH_EMALFORMED,
     "added_tokens.special"},
    {"added_tokens", "[{\"id\":3,\"content\":\"<s>\",\"special\":true}]", SH_EMALFORMED,
     "tokenizers would give it 6"},
    {"added_tokens", "[{\"id\":0,\"content\":\"b\",\"special\":true}]", SH_EMALFORMED,
     "tokenizers would give it 1"},
    {"added_tokens", "{}", SH_EMALFORMED, "added_tokens: expected an array"},
    {"truncation", "{\"max_length\":8}", SH_EUNSUPPORTED, "\"truncation\" is set"},
    {"padding", "{\"strategy\":\"BatchLongest\"}", SH_EUNSUPPORTED, "\"padding\" is set"},
    {"normalizer", "{\"type\":\"Lowercase\"}", SH_EUNSUPPORTED, "normalizer type \"Lowercase\""},
    {"normalizer",
     "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"},{\"type\":\"Strip\"}]}",
     SH_EUNSUPPORTED, "\"Strip\""},
    {"normalizer", "{\"type\":\"Sequence\"}", SH_EMALFORMED, "normalizer.normalizers"},
    {"normalizer", "{}", SH_EMALFORMED, "normalizer: missing \"type\""},
    {"pre_tokenizer", "{\"type\":\"Whitespace\"}", SH_EUNSUPPORTED,
     "pre_tokenizer type \"Whitespace\""},
    {"pre_tokenizer", "{\"type\":\"Metaspace\",\"replacement\":\"_\"}", SH_EUNSUPPORTED,
     "\"Metaspace\""},
    {"pre_tokenizer", "null", SH_EUNSUPPORTED, "pre_tokenizer: none given"},
    {"pre_tokenizer",
     "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Isolated\"}",
     SH_EUNSUPPORTED, "no ByteLevel step"},
    {"pre_tokenizer",
     "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},"
     "\"behavior\":\"Isolated\"},{\"type\":\"ByteLevel\"}]}",
     SH_EMALFORMED, "bad regex at offset 1"},
    {"pre_tokenizer",
     "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
     "\"[a-\"},\"behavior\":\"Isolated\"},{\"type\":\"ByteLevel\"}]}",
     SH_EMALFORMED, "bad regex"},
    {"pre_tokenizer",
     "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
     "\"\\\\h+\"},\"behavior\":\"Isolated\"},{\"type\":\"ByteLevel\"}]}",
     SH_EUNSUPPORTED, "\\h"},
    {"pre_tokenizer",
     "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},"
     "\"behavior\":\"Sideways\"},{\"type\":\"ByteLevel\"}]}",
     SH_EUNSUPPORTED, "behavior \"Sideways\""},
    {"pre_tokenizer",
     "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{},"
     "\"behavior\":\"Isolated\"},{\"type\":\"ByteLevel\"}]}",
     SH_EMALFORMED, "\"Regex\" or \"String\""},
    {"pre_tokenizer",
     "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"ByteLevel\"},{\"type\":\"Split\","
     "\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Isolated\"}]}",
     SH_EUNSUPPORTED, "after ByteLevel"},
    {"post_processor", "{\"type\":\"BertProcessing\"}", SH_EUNSUPPORTED,
     "post_processor type \"BertProcessing\""},
    {"post_processor",
     "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<x>\"}},"
     "{\"Sequence\":{\"id\":\"A\"}}],\"special_tokens\":{}}",
     SH_EMALFORMED, "\"<x>\" has no ids"},
    {"post_processor",
     "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<x>\"}},"
     "{\"Sequence\":{\"id\":\"A\"}}],\"special_tokens\":{\"<x>\":{\"ids\":[70000]}}}",
     SH_EMALFORMED, "id out of range"},
    {"post_processor",
     "{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"B\"}}],"
     "\"special_tokens\":{}}",
     SH_EUNSUPPORTED, "sequence A exactly once"},
    {"decoder", "{\"type\":\"WordPiece\"}", SH_EUNSUPPORTED, "decoder type \"WordPiece\""},
    {"decoder", "null", SH_EUNSUPPORTED, "decoder: none given"},
    {"decoder",
     "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"ByteLevel\"},{\"type\":\"Fuse\"}]}",
     SH_EUNSUPPORTED, "single ByteLevel"},
};

static void bad_files(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *bc = &bad_cases[i];
        struct eng_tokenizer *tok = NULL;
        struct sh_err err = {0};
        char *text = bc->path ? patched(bc->path, bc->value) : strdup(bc->value);
        int rc;

        assert_non_null(text);
        rc = load_text(text, &tok, &err);
        free(text);
        if (rc != bc->code || !strstr(sh_err_msg(&err), bc->msg) ||
            !strstr(sh_err_msg(&err), "tokenizer.json"))
            fail_msg("case %zu (%s): got %s \"%s\", want %s containing \"%s\"", i,
                     bc->path ? bc->path : "file", sh_strerror(rc), sh_err_msg(&err),
                     sh_strerror(bc->code), bc->msg);
        assert_null(tok);
    }
}

static void missing_file(void **state)
{
    struct eng_tokenizer *tok = NULL;
    struct sh_err err = {0};

    (void)state;
    assert_int_equal(eng_tokenizer_load("/nonexistent/tokenizer.json", &tok, &err), SH_ENOTFOUND);
    assert_non_null(strstr(sh_err_msg(&err), "/nonexistent/tokenizer.json"));
    assert_null(tok);
}

/* Encode refuses text that is not UTF-8 (as a Rust &str cannot hold it). */
static void encode_invalid_utf8(void **state)
{
    static const struct {
        const char *s;
        size_t len;
    } bad[] = {
        {"\x80", 1},             /* lone continuation byte */
        {"ab\xC3", 3},           /* truncated 2-byte sequence */
        {"\xC0\xAF", 2},         /* overlong '/' */
        {"\xE0\x80\xAF", 3},     /* overlong, 3 bytes */
        {"\xED\xA0\x80", 3},     /* UTF-16 surrogate D800 */
        {"\xF4\x90\x80\x80", 4}, /* past U+10FFFF */
        {"\xF8\x88\x80\x80\x80", 5},
        {"ok \xFF", 4},
        {"\xE4\xBD", 2}, /* truncated 3-byte sequence */
    };
    struct eng_tokenizer *tok = NULL;
    struct sh_err err = {0};
    int32_t *ids = NULL;
    size_t n = 0;

    (void)state;
    assert_int_equal(eng_tokenizer_load(DEMO_MODEL_DIR "/tokenizer.json", &tok, &err), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ids = NULL;
        assert_int_equal(eng_tokenize(tok, bad[i].s, bad[i].len, false, &ids, &n, &err), SH_EINVAL);
        assert_non_null(strstr(sh_err_msg(&err), "not valid UTF-8"));
        assert_null(ids);
    }
    /* Valid edge cases: NUL inside, the last code point, empty text. */
    assert_int_equal(eng_tokenize(tok, "a\0b", 3, false, &ids, &n, &err), 0);
    assert_int_equal(n, 3);
    free(ids);
    assert_int_equal(eng_tokenize(tok, "\xF4\x8F\xBF\xBF", 4, false, &ids, &n, &err), 0);
    free(ids);
    assert_int_equal(eng_tokenize(tok, "", 0, true, &ids, &n, &err), 0);
    assert_int_equal(n, 0);
    free(ids);
    eng_tokenizer_free(tok);
}

static void decode_bad_ids(void **state)
{
    struct eng_tokenizer *tok = NULL;
    struct sh_err err = {0};
    int32_t ids[3] = {5, 0, 0};
    char *out = NULL;
    size_t len = 0;

    (void)state;
    assert_int_equal(eng_tokenizer_load(DEMO_MODEL_DIR "/tokenizer.json", &tok, &err), 0);
    for (size_t i = 0; i < 3; i++) {
        int32_t bad[] = {-1, 8192, INT32_MAX};
        ids[1] = bad[i];
        assert_int_equal(eng_detokenize(tok, ids, 3, false, &out, &len, &err), SH_ERANGE);
        assert_null(out);
        assert_null(eng_token_piece(tok, bad[i], &len));
        assert_null(eng_token_str(tok, bad[i], &len));
        assert_false(eng_token_is_special(tok, bad[i]));
    }
    assert_int_equal(eng_detokenize(tok, ids, 0, false, &out, &len, &err), 0);
    assert_int_equal(len, 0);
    assert_string_equal(out, "");
    free(out);
    assert_int_equal(eng_token_lookup(tok, "<|im_end|>"), 2);
    assert_int_equal(eng_token_lookup(tok, "no such token"), -1);
    assert_true(eng_token_is_special(tok, 2));
    assert_false(eng_token_is_special(tok, 3));
    eng_tokenizer_free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(base_is_valid),  cmocka_unit_test(bad_files),
        cmocka_unit_test(missing_file),   cmocka_unit_test(encode_invalid_utf8),
        cmocka_unit_test(decode_bad_ids),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
