/* tests/engine/test_tokenizer.c: encode/decode against the reference
 * fixtures made with Hugging Face tokenizers 0.23.2 (tests/fixtures/
 * tokenizer/<name>.json, 89 cases each, and tests/engine/data/tok_edge.json
 * for the components those four files do not exercise), plus invalid UTF-8
 * in and out and concurrent use of one tokenizer. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/file.h"
#include "common/json.h"
#include "engine/tokenizer.h"
#include "lib/test.h"

#ifndef TOK_FIXTURE_BUILD_DIR
#error "TOK_FIXTURE_BUILD_DIR must be defined by tests/engine/meson.build"
#endif

#define MAX_FILE ((size_t)64 << 20)

static char *tok_path(const char *name, char *buf, size_t cap)
{
    if (strcmp(name, "demo") == 0)
        snprintf(buf, cap, "%s/tokenizer.json", DEMO_MODEL_DIR);
    else
        snprintf(buf, cap, "%s/%s.tokenizer.json", TOK_FIXTURE_BUILD_DIR, name);
    return buf;
}

static cJSON *load_json(const char *path)
{
    struct sh_err err = {0};
    cJSON *root = NULL;
    int rc = sh_json_parse_file(path, MAX_FILE, &root, &err);
    if (rc)
        fail_msg("%s", sh_err_msg(&err));
    return root;
}

static void check_sha256(const char *path, const char *want_hex)
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    struct sh_err err = {0};
    char *buf = NULL;
    size_t len = 0;

    assert_int_equal(sh_read_file(path, MAX_FILE, &buf, &len, &err), 0);
    crypto_hash_sha256(digest, (const unsigned char *)buf, len);
    sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
    free(buf);
    if (strcmp(hex, want_hex) != 0)
        fail_msg("%s: sha256 %s, fixture made from %s", path, hex, want_hex);
}

/* ids as a JSON array equal to got[0..n)? */
static bool ids_equal(const cJSON *want, const int32_t *got, size_t n)
{
    const cJSON *v;
    size_t i = 0;
    if ((size_t)cJSON_GetArraySize(want) != n)
        return false;
    cJSON_ArrayForEach(v, want)
    {
        if (!cJSON_IsNumber(v) || (int32_t)v->valuedouble != got[i++])
            return false;
    }
    return true;
}

static size_t ids_from_json(const cJSON *arr, int32_t **out)
{
    size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
    const cJSON *v;
    *out = malloc((n ? n : 1) * sizeof **out);
    assert_non_null(*out);
    cJSON_ArrayForEach(v, arr)(*out)[i++] = (int32_t)v->valuedouble;
    return n;
}

static void print_ids(const char *what, const int32_t *ids, size_t n)
{
    fprintf(stderr, "#   %s:", what);
    for (size_t i = 0; i < n && i < 40; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "%s\n", n > 40 ? " ..." : "");
}

/* Checks one case; returns the number of mismatches (each printed). */
static int check_case(const struct eng_tokenizer *tok, const cJSON *c, size_t idx)
{
    const cJSON *str = cJSON_GetObjectItemCaseSensitive(c, "string");
    const cJSON *want_ids = cJSON_GetObjectItemCaseSensitive(c, "ids");
    const cJSON *want_sp = cJSON_GetObjectItemCaseSensitive(c, "ids_with_special");
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(c, "tokens");
    const char *keys[2] = {"decoded", "decoded_skip_special"};
    struct sh_err err = {0};
    int32_t *ids = NULL, *ref = NULL;
    size_t n = 0, nref;
    int bad = 0;

    assert_true(cJSON_IsString(str));
    if (eng_tokenize(tok, str->valuestring, strlen(str->valuestring), false, &ids, &n, &err)) {
        fprintf(stderr, "# case %zu: encode failed: %s\n", idx, sh_err_msg(&err));
        return 1;
    }
    if (!ids_equal(want_ids, ids, n)) {
        fprintf(stderr, "# case %zu (%.60s): ids differ\n", idx, str->valuestring);
        print_ids("got", ids, n);
        bad++;
    }
    if (cJSON_IsArray(tokens) && (size_t)cJSON_GetArraySize(tokens) == n) {
        const cJSON *t;
        size_t i = 0;
        cJSON_ArrayForEach(t, tokens)
        {
            size_t len = 0;
            const char *s = eng_token_str(tok, ids[i++], &len);
            if (!s || len != strlen(t->valuestring) || memcmp(s, t->valuestring, len) != 0) {
                fprintf(stderr, "# case %zu: token %zu is not \"%s\"\n", idx, i - 1,
                        t->valuestring);
                bad++;
                break;
            }
        }
    }
    free(ids);
    ids = NULL;
    if (want_sp) {
        if (eng_tokenize(tok, str->valuestring, strlen(str->valuestring), true, &ids, &n, &err)) {
            fprintf(stderr, "# case %zu: encode(special) failed: %s\n", idx, sh_err_msg(&err));
            return bad + 1;
        }
        if (!ids_equal(want_sp, ids, n)) {
            fprintf(stderr, "# case %zu (%.60s): ids_with_special differ\n", idx, str->valuestring);
            print_ids("got", ids, n);
            bad++;
        }
        free(ids);
    }
    nref = ids_from_json(want_ids, &ref);
    for (int skip = 0; skip < 2; skip++) {
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(c, keys[skip]);
        char *text = NULL;
        size_t len = 0;
        if (!want)
            continue;
        if (eng_detokenize(tok, ref, nref, skip, &text, &len, &err)) {
            fprintf(stderr, "# case %zu: decode failed: %s\n", idx, sh_err_msg(&err));
            bad++;
            continue;
        }
        if (len != strlen(want->valuestring) || memcmp(text, want->valuestring, len) != 0 ||
            text[len] != '\0') {
            fprintf(stderr, "# case %zu: %s is \"%s\", want \"%s\"\n", idx, keys[skip], text,
                    want->valuestring);
            bad++;
        }
        free(text);
    }
    free(ref);
    return bad;
}

static void run_fixture(const char *name)
{
    char fx[512], path[512];
    struct sh_err err = {0};
    struct eng_tokenizer *tok = NULL;
    const cJSON *sha, *cases, *c;
    cJSON *root;
    size_t idx = 0;
    int bad = 0;

    snprintf(fx, sizeof fx, "%s/tokenizer/%s.json", FIXTURES_DIR, name);
    root = load_json(fx);
    sha = cJSON_GetObjectItemCaseSensitive(root, "tokenizer_json_sha256");
    cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    assert_true(cJSON_IsString(sha));
    assert_true(cJSON_IsArray(cases));
    assert_int_equal(cJSON_GetArraySize(cases), 89);
    tok_path(name, path, sizeof path);
    check_sha256(path, sha->valuestring);
    if (eng_tokenizer_load(path, &tok, &err))
        fail_msg("load %s: %s", path, sh_err_msg(&err));
    cJSON_ArrayForEach(c, cases) bad += check_case(tok, c, idx++);
    eng_tokenizer_free(tok);
    cJSON_Delete(root);
    if (bad)
        fail_msg("%s: %d mismatches", name, bad);
}

static void fixture_qwen3(void **state)
{
    (void)state;
    run_fixture("qwen3");
}

static void fixture_llama3_1(void **state)
{
    (void)state;
    run_fixture("llama3_1");
}

static void fixture_deepseek_v3(void **state)
{
    (void)state;
    run_fixture("deepseek_v3");
}

static void fixture_demo(void **state)
{
    (void)state;
    run_fixture("demo");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fixture_qwen3),
        cmocka_unit_test(fixture_llama3_1),
        cmocka_unit_test(fixture_deepseek_v3),
        cmocka_unit_test(fixture_demo),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
