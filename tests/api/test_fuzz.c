/* tests/api/test_fuzz.c: deterministic mutation of valid request bodies
 * (flipped bytes, cut and doubled ranges, truncation) through every parser:
 * each answer is 0 or a 4xx with a valid error body, and nothing leaks or
 * reads out of bounds (this suite runs under ASan/UBSan). Seeded, so a
 * failure repeats. */
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "lib/test.h"

#define ROUNDS 2500

static const char *const seeds[] = {
    "{\"model\":\"kjv-llama-16m\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\","
    "\"text\":\"b\"}]},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\","
    "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\":1}\"}}]},"
    "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"2\"}],\"temperature\":0.5,"
    "\"top_p\":0.9,\"seed\":-7,\"stop\":[\"\\n\",\"END\"],\"max_tokens\":12,\"stream\":true,"
    "\"stream_options\":{\"include_usage\":true},\"tools\":[{\"type\":\"function\",\"function\":"
    "{\"name\":\"f\",\"parameters\":{\"type\":\"object\"}}}],\"tool_choice\":{\"type\":"
    "\"function\",\"function\":{\"name\":\"f\"}},\"response_format\":{\"type\":\"json_schema\","
    "\"json_schema\":{\"schema\":{}}},\"logprobs\":true,\"top_logprobs\":3,\"n\":1}",
    "{\"model\":\"m\",\"prompt\":[\"Once\"],\"max_tokens\":5,\"logprobs\":2,\"echo\":false,"
    "\"stop\":\"x\",\"best_of\":1,\"suffix\":\"\"}",
    "{\"model\":\"kjv:16m\",\"messages\":[{\"role\":\"User\",\"content\":\"hi\",\"images\":[]},"
    "{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"t\",\"tool_calls\":[{\"function\":"
    "{\"name\":\"f\",\"arguments\":{\"a\":[1,{\"b\":null}]}}}]},{\"role\":\"tool\",\"content\":"
    "\"1\",\"tool_name\":\"f\"}],\"options\":{\"temperature\":0.1,\"top_k\":4,\"num_predict\":-2,"
    "\"stop\":[\"a\"],\"seed\":-1,\"num_ctx\":2048,\"mirostat\":0,\"num_gpu\":1},\"format\":"
    "\"json\",\"think\":\"high\",\"keep_alive\":\"1h5m\",\"stream\":false}",
    "{\"model\":\"m\",\"prompt\":\"Why\",\"system\":\"s\",\"template\":\"t\",\"raw\":false,"
    "\"context\":[],\"options\":{\"repeat_penalty\":1.1},\"format\":{\"type\":\"object\"},"
    "\"keep_alive\":300}",
};

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Applies 1..4 mutations to buf (len bytes, capacity cap); returns the new
 * length. */
static size_t mutate(char *buf, size_t len, size_t cap, uint64_t *rng)
{
    static const char interesting[] = "{}[]\":,0-1e9.ntf\\ \xff\x00\xc3";
    int n = 1 + (int)(next(rng) % 4);

    for (int i = 0; i < n && len > 0; i++) {
        size_t at = next(rng) % len, span = 1 + next(rng) % 16;
        switch (next(rng) % 5) {
        case 0:
            buf[at] = interesting[next(rng) % (sizeof interesting - 1)];
            break;
        case 1:
            buf[at] = (char)next(rng);
            break;
        case 2: /* cut a range */
            if (at + span > len)
                span = len - at;
            memmove(buf + at, buf + at + span, len - at - span);
            len -= span;
            break;
        case 3: /* double a range */
            if (at + span > len)
                span = len - at;
            if (len + span <= cap) {
                memmove(buf + at + span, buf + at, len - at);
                len += span;
            }
            break;
        default:
            len = at;
        }
    }
    return len;
}

typedef int (*parse_fn)(const char *, size_t, struct api_gen_request *, struct api_error *);

static void check(int rc, const struct api_error *e, enum api_dialect d)
{
    cJSON *body, *back;
    char *text, *clean;

    if (rc == 0)
        return;
    assert_true(rc >= 400 && rc < 500);
    assert_int_equal(rc, e->status);
    body = api_error_body(d, e);
    assert_non_null(body);
    text = cJSON_PrintUnformatted(body);
    back = cJSON_Parse(text); /* the body parses back */
    assert_non_null(back);
    cJSON_Delete(back);
    clean = api_utf8_clean(text, strlen(text)); /* and is valid UTF-8 */
    assert_string_equal(clean, text);
    free(clean);
    free(text);
    cJSON_Delete(body);
}

static void mutated_bodies(void **state)
{
    static const struct {
        parse_fn fn;
        enum api_dialect d;
    } parsers[] = {{api_openai_parse_chat, API_DIALECT_OPENAI},
                   {api_openai_parse_completion, API_DIALECT_OPENAI},
                   {api_ollama_parse_chat, API_DIALECT_OLLAMA},
                   {api_ollama_parse_generate, API_DIALECT_OLLAMA}};
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    char buf[4096];
    int ok = 0, bad = 0;

    (void)state;
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
        for (int round = 0; round < ROUNDS; round++) {
            size_t len = strlen(seeds[s]);
            memcpy(buf, seeds[s], len);
            len = mutate(buf, len, sizeof buf, &rng);
            for (size_t p = 0; p < sizeof parsers / sizeof parsers[0]; p++) {
                struct api_gen_request req;
                struct api_error e;
                int rc = parsers[p].fn(buf, len, &req, &e);
                check(rc, &e, parsers[p].d);
                if (rc == 0) {
                    ok++;
                    api_gen_request_clear(&req);
                } else {
                    bad++;
                    assert_null(req.root);
                }
            }
            {
                cJSON *root = NULL;
                const char *model;
                bool verbose;
                struct api_error e;
                int rc = api_ollama_parse_show(buf, len, &root, &model, &verbose, &e);
                check(rc, &e, API_DIALECT_OLLAMA);
                cJSON_Delete(root);
            }
        }
    }
    /* the mutations reach both outcomes */
    assert_true(ok > 100 && bad > 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mutated_bodies),
    };
    return cmocka_run_group_tests_name("api/fuzz", tests, NULL, NULL);
}
