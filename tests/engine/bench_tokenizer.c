/* tests/engine/bench_tokenizer.c: load time and encode speed of a
 * tokenizer.json (a measurement, not a test: nothing is asserted).
 *
 *   tok_bench TOKENIZER_JSON [TEXT_FILE] [MIB]
 *
 * Without TEXT_FILE the text is every string of the tokenizer fixtures
 * (the four tests/fixtures/tokenizer files: prose, code, many scripts, emoji, special
 * tokens) repeated to MIB MiB (default 1). Prints load time, sizes, encode
 * and decode time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/file.h"
#include "common/json.h"
#include "common/util.h"
#include "engine/tokenizer.h"
#include "engine/tokenizer_internal.h"

static char *fixture_text(size_t want, size_t *len)
{
    static const char *const names[] = {"qwen3", "llama3_1", "deepseek_v3", "demo"};
    struct sh_strbuf corpus, out;
    struct sh_err err = {0};

    sh_strbuf_init(&corpus, (size_t)1 << 24);
    for (size_t i = 0; i < 4; i++) {
        char path[512];
        cJSON *root = NULL;
        const cJSON *c;
        snprintf(path, sizeof path, "%s/tests/fixtures/tokenizer/%s.json", SHOAL_SOURCE_ROOT,
                 names[i]);
        if (sh_json_parse_file(path, (size_t)1 << 26, &root, &err)) {
            fprintf(stderr, "%s\n", sh_err_msg(&err));
            exit(1);
        }
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "cases"))
        {
            sh_strbuf_puts(&corpus, cJSON_GetObjectItemCaseSensitive(c, "string")->valuestring);
            sh_strbuf_puts(&corpus, "\n");
        }
        cJSON_Delete(root);
    }
    sh_strbuf_init(&out, want + corpus.len);
    while (out.len < want)
        sh_strbuf_append(&out, corpus.buf, corpus.len);
    sh_strbuf_free(&corpus);
    *len = out.len;
    return sh_strbuf_take(&out);
}

int main(int argc, char **argv)
{
    struct eng_tokenizer *tok = NULL;
    struct sh_err err = {0};
    size_t len = 0, n = 0, dlen = 0, mib = 1;
    int32_t *ids = NULL;
    char *text, *dec = NULL;
    double t0, t_load, t_enc, t_dec;

    if (argc < 2) {
        fprintf(stderr, "usage: tok_bench TOKENIZER_JSON [TEXT_FILE|-] [MIB]\n");
        return 2;
    }
    if (argc > 3)
        mib = (size_t)atoi(argv[3]);
    t0 = sh_now_s();
    if (eng_tokenizer_load(argv[1], &tok, &err)) {
        fprintf(stderr, "%s\n", sh_err_msg(&err));
        return 1;
    }
    t_load = sh_now_s() - t0;
    if (argc > 2 && strcmp(argv[2], "-") != 0) {
        if (sh_read_file(argv[2], (size_t)1 << 30, &text, &len, &err)) {
            fprintf(stderr, "%s\n", sh_err_msg(&err));
            return 1;
        }
    } else {
        text = fixture_text(mib << 20, &len);
    }
    t0 = sh_now_s();
    if (eng_tokenize(tok, text, len, false, &ids, &n, &err)) {
        fprintf(stderr, "%s\n", sh_err_msg(&err));
        return 1;
    }
    t_enc = sh_now_s() - t0;
    t0 = sh_now_s();
    if (eng_detokenize(tok, ids, n, false, &dec, &dlen, &err)) {
        fprintf(stderr, "%s\n", sh_err_msg(&err));
        return 1;
    }
    t_dec = sh_now_s() - t0;
    printf("%s: %zu ids (%zu vocab, %zu added, %zu merges), load %.1f ms\n", argv[1],
           eng_tokenizer_vocab_size(tok), tok->n_vocab, tok->n_added, tok->n_merges, t_load * 1e3);
    printf("encode %zu bytes -> %zu tokens in %.1f ms (%.1f MB/s); decode %.1f ms%s\n", len, n,
           t_enc * 1e3, (double)len / t_enc / 1e6, t_dec * 1e3,
           dlen == len && memcmp(dec, text, len) == 0 ? ", round trip exact" : "");
    free(dec);
    free(ids);
    free(text);
    eng_tokenizer_free(tok);
    return 0;
}
