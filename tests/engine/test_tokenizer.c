/* tests/engine/test_tokenizer.c: encode/decode against the reference
 * fixtures made with Hugging Face tokenizers 0.23.2 (tests/fixtures/
 * tokenizer/<name>.json, 89 cases each, and tests/engine/data/tok_edge.json
 * for the components those four files do not exercise), plus invalid UTF-8
 * in and out and concurrent use of one tokenizer. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* A case in either fixture format: plain strings ("string", "decoded", ...)
 * or hex bytes ("hex", "decoded_hex", ...), which can carry NUL bytes. */
struct tcase {
    char *text;
    size_t len;
    char *dec[2]; /* decoded, decoded_skip_special; NULL when absent */
    size_t dec_len[2];
};

static char *unhex(const char *h, size_t *len)
{
    size_t n = strlen(h) / 2;
    char *out = malloc(n + 1);
    assert_non_null(out);
    assert_int_equal(sodium_hex2bin((unsigned char *)out, n, h, strlen(h), NULL, len, NULL), 0);
    out[*len] = '\0';
    return out;
}

static char *field(const cJSON *c, const char *key, const char *hexkey, size_t *len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    char *s;
    if (cJSON_IsString(v)) {
        *len = strlen(v->valuestring);
        s = strdup(v->valuestring);
        assert_non_null(s);
        return s;
    }
    v = cJSON_GetObjectItemCaseSensitive(c, hexkey);
    return cJSON_IsString(v) ? unhex(v->valuestring, len) : NULL;
}

static void tcase_read(const cJSON *c, struct tcase *tc)
{
    tc->text = field(c, "string", "hex", &tc->len);
    assert_non_null(tc->text);
    tc->dec[0] = field(c, "decoded", "decoded_hex", &tc->dec_len[0]);
    tc->dec[1] = field(c, "decoded_skip_special", "decoded_skip_special_hex", &tc->dec_len[1]);
}

static void tcase_free(struct tcase *tc)
{
    free(tc->text);
    free(tc->dec[0]);
    free(tc->dec[1]);
}

/* Checks one case; returns the number of mismatches (each printed). */
static int check_case(const struct eng_tokenizer *tok, const cJSON *c, size_t idx)
{
    const cJSON *want_ids = cJSON_GetObjectItemCaseSensitive(c, "ids");
    const cJSON *want_sp = cJSON_GetObjectItemCaseSensitive(c, "ids_with_special");
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(c, "tokens");
    const char *keys[2] = {"decoded", "decoded_skip_special"};
    struct sh_err err = {0};
    int32_t *ids = NULL, *ref = NULL;
    struct tcase tc;
    size_t n = 0, nref;
    int bad = 0;

    tcase_read(c, &tc);
    if (eng_tokenize(tok, tc.text, tc.len, false, &ids, &n, &err)) {
        fprintf(stderr, "# case %zu: encode failed: %s\n", idx, sh_err_msg(&err));
        tcase_free(&tc);
        return 1;
    }
    if (!ids_equal(want_ids, ids, n)) {
        fprintf(stderr, "# case %zu (%.60s): ids differ\n", idx, tc.text);
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
        if (eng_tokenize(tok, tc.text, tc.len, true, &ids, &n, &err)) {
            fprintf(stderr, "# case %zu: encode(special) failed: %s\n", idx, sh_err_msg(&err));
            tcase_free(&tc);
            return bad + 1;
        }
        if (!ids_equal(want_sp, ids, n)) {
            fprintf(stderr, "# case %zu (%.60s): ids_with_special differ\n", idx, tc.text);
            print_ids("got", ids, n);
            bad++;
        }
        free(ids);
    }
    nref = ids_from_json(want_ids, &ref);
    for (int skip = 0; skip < 2; skip++) {
        char *text = NULL;
        size_t len = 0;
        if (!tc.dec[skip])
            continue;
        if (eng_detokenize(tok, ref, nref, skip, &text, &len, &err)) {
            fprintf(stderr, "# case %zu: decode failed: %s\n", idx, sh_err_msg(&err));
            bad++;
            continue;
        }
        if (len != tc.dec_len[skip] || memcmp(text, tc.dec[skip], len) != 0 || text[len] != '\0') {
            fprintf(stderr, "# case %zu: %s is \"%s\", want \"%s\"\n", idx, keys[skip], text,
                    tc.dec[skip]);
            bad++;
        }
        free(text);
    }
    free(ref);
    tcase_free(&tc);
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

/* Writes one variant of tok_edge.json (its vocab and merges put back from
 * `shared`) to a file and loads it. */
static struct eng_tokenizer *load_variant(const cJSON *root, const cJSON *v, const char *dir)
{
    const cJSON *shared = cJSON_GetObjectItemCaseSensitive(root, "shared");
    const cJSON *si = cJSON_GetObjectItemCaseSensitive(v, "shared");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(v, "name");
    const cJSON *sh = cJSON_GetArrayItem(shared, (int)si->valuedouble);
    cJSON *tj = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(v, "tokenizer"), 1);
    cJSON *model = cJSON_GetObjectItemCaseSensitive(tj, "model");
    struct eng_tokenizer *tok = NULL;
    struct sh_err err = {0};
    char path[512], *text;

    cJSON_AddItemToObject(model, "vocab",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(sh, "vocab"), 1));
    cJSON_AddItemToObject(model, "merges",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(sh, "merges"), 1));
    text = cJSON_PrintUnformatted(tj);
    assert_non_null(text);
    snprintf(path, sizeof path, "%s/%s.json", dir, name->valuestring);
    assert_int_equal(sh_write_file_atomic(path, text, strlen(text), 0644, &err), 0);
    free(text);
    cJSON_Delete(tj);
    if (eng_tokenizer_load(path, &tok, &err))
        fail_msg("variant %s: %s", name->valuestring, sh_err_msg(&err));
    unlink(path);
    return tok;
}

static void edge_variants(void **state)
{
    char fx[512], dir[] = "/tmp/shoal-tok-XXXXXX";
    const cJSON *v, *c;
    cJSON *root;
    int bad = 0, nvar = 0;

    (void)state;
    snprintf(fx, sizeof fx, "%s/tests/engine/data/tok_edge.json", SHOAL_SOURCE_ROOT);
    root = load_json(fx);
    assert_non_null(mkdtemp(dir));
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(root, "variants"))
    {
        struct eng_tokenizer *tok = load_variant(root, v, dir);
        size_t idx = 0;
        int vbad = 0;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(v, "cases")) vbad +=
            check_case(tok, c, idx++);
        if (vbad)
            fprintf(stderr, "# variant %s: %d mismatches\n",
                    cJSON_GetObjectItemCaseSensitive(v, "name")->valuestring, vbad);
        bad += vbad;
        nvar++;
        eng_tokenizer_free(tok);
    }
    rmdir(dir);
    cJSON_Delete(root);
    assert_true(nvar >= 18);
    if (bad)
        fail_msg("%d mismatches", bad);
}

/* Ids that split a character decode with U+FFFD where tokenizers puts it
 * (String::from_utf8_lossy: one per maximal invalid subsequence). */
static void decode_invalid_utf8(void **state)
{
    char fx[512], dir[] = "/tmp/shoal-tok-XXXXXX";
    struct eng_tokenizer *tok;
    const cJSON *c;
    cJSON *root;
    int n = 0;

    (void)state;
    snprintf(fx, sizeof fx, "%s/tests/engine/data/tok_edge.json", SHOAL_SOURCE_ROOT);
    root = load_json(fx);
    assert_non_null(mkdtemp(dir));
    tok = load_variant(
        root, cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "variants"), 0), dir);
    rmdir(dir);
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "decode_cases"))
    {
        struct sh_err err = {0};
        int32_t *ids;
        size_t nids = ids_from_json(cJSON_GetObjectItemCaseSensitive(c, "ids"), &ids), wlen, len;
        char *want = unhex(cJSON_GetObjectItemCaseSensitive(c, "decoded_hex")->valuestring, &wlen);
        char *got = NULL;
        assert_int_equal(eng_detokenize(tok, ids, nids, false, &got, &len, &err), 0);
        assert_int_equal(len, wlen);
        assert_memory_equal(got, want, len);
        free(got);
        free(want);
        free(ids);
        n++;
    }
    assert_true(n >= 19);
    eng_tokenizer_free(tok);
    cJSON_Delete(root);
}

/* One loaded tokenizer, several threads encoding and decoding at once: every
 * thread must still get the reference ids (run under ASan/UBSan, and TSan
 * when built with it). */
struct thread_arg {
    const struct eng_tokenizer *tok;
    const cJSON *cases;
    int bad;
};

static void *encode_all(void *p)
{
    struct thread_arg *a = p;
    for (int round = 0; round < 3; round++) {
        const cJSON *c;
        size_t idx = 0;
        cJSON_ArrayForEach(c, a->cases) a->bad += check_case(a->tok, c, idx++);
    }
    return NULL;
}

static void concurrent_use(void **state)
{
    char fx[512], path[512];
    struct thread_arg args[4];
    pthread_t th[4];
    struct eng_tokenizer *tok = NULL;
    struct sh_err err = {0};
    cJSON *root;

    (void)state;
    snprintf(fx, sizeof fx, "%s/tokenizer/qwen3.json", FIXTURES_DIR);
    root = load_json(fx);
    if (eng_tokenizer_load(tok_path("qwen3", path, sizeof path), &tok, &err))
        fail_msg("%s", sh_err_msg(&err));
    for (int i = 0; i < 4; i++) {
        args[i].tok = tok;
        args[i].cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
        args[i].bad = 0;
        assert_int_equal(pthread_create(&th[i], NULL, encode_all, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].bad, 0);
    }
    eng_tokenizer_free(tok);
    cJSON_Delete(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fixture_qwen3),       cmocka_unit_test(fixture_llama3_1),
        cmocka_unit_test(fixture_deepseek_v3), cmocka_unit_test(fixture_demo),
        cmocka_unit_test(edge_variants),       cmocka_unit_test(decode_invalid_utf8),
        cmocka_unit_test(concurrent_use),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
