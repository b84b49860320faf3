/* tests/api/test_routes.c: the OpenAI and Ollama endpoints over real HTTP
 * (api/routes_*.c, api/gen.c) with the backend double: whole and streamed
 * answers frame by frame (SSE with [DONE], NDJSON), usage and durations,
 * tool calls, reasoning, logprobs, the model listings, the error mapping
 * (unknown model 404, queue full 503 + Retry-After, context overflow 400, a
 * runner dying before and during a stream), and two streams at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "http_fixture.h"
#include "lib/test.h"

static const struct api_config cfg = {0};

static struct fixture *fx;

static int setup(void **state)
{
    (void)state;
    fx = fx_start(&cfg, NULL);
    return fx ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fx_free(fx);
    fx = NULL;
    return 0;
}

static struct resp post(const char *path, const char *body)
{
    return fx_http(fx, "POST", path, body, NULL);
}

/* The compact JSON of text with the members that change per run set to
 * fixed values: id "X", created 0, created_at "T", total_duration 1 (the
 * last after checking it is positive). */
static char *normalized(const char *text)
{
    cJSON *o = cJSON_Parse(text), *v;
    char *s;

    if (!o)
        return strdup(text);
    if (cJSON_GetObjectItem(o, "id"))
        cJSON_ReplaceItemInObject(o, "id", cJSON_CreateString("X"));
    if (cJSON_GetObjectItem(o, "created"))
        cJSON_ReplaceItemInObject(o, "created", cJSON_CreateNumber(0));
    if (cJSON_GetObjectItem(o, "created_at"))
        cJSON_ReplaceItemInObject(o, "created_at", cJSON_CreateString("T"));
    if ((v = cJSON_GetObjectItem(o, "total_duration"))) {
        assert_true(v->valuedouble > 0);
        cJSON_ReplaceItemInObject(o, "total_duration", cJSON_CreateNumber(1));
    }
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static void assert_norm(const char *got, const char *want)
{
    char *n = normalized(got);

    if (strcmp(n, want) != 0)
        print_error("\n got  %s\n want %s\n", n, want);
    assert_string_equal(n, want);
    free(n);
}

/* Splits an SSE body into its "data: " payloads; checks the framing. */
static int sse_frames(const char *body, char **out, int max)
{
    int n = 0;

    while (*body && n < max) {
        const char *end = strstr(body, "\n\n");
        assert_non_null(end);
        assert_memory_equal(body, "data: ", 6);
        out[n++] = strndup(body + 6, (size_t)(end - body - 6));
        body = end + 2;
    }
    assert_true(*body == '\0');
    return n;
}

/* Splits NDJSON into lines (each must end in "\n"). */
static int nd_lines(const char *body, char **out, int max)
{
    int n = 0;

    while (*body && n < max) {
        const char *end = strchr(body, '\n');
        assert_non_null(end);
        out[n++] = strndup(body, (size_t)(end - body));
        body = end + 1;
    }
    assert_true(*body == '\0');
    return n;
}

static void free_all(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
}

static void assert_content_type(const struct resp *r, const char *want)
{
    char v[64];

    assert_true(resp_header(r, "Content-Type", v, sizeof v));
    assert_string_equal(v, want);
}

#define CHAT_BODY(model, content, extra)                                                           \
    "{\"model\":\"" model "\",\"messages\":[{\"role\":\"user\",\"content\":\"" content             \
    "\"}]" extra "}"
#define CHUNK(delta, finish)                                                                       \
    "{\"id\":\"X\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":"                  \
    "\"kjv-llama-16m\",\"choices\":[{\"index\":0,\"delta\":" delta ",\"logprobs\":null,"           \
    "\"finish_reason\":" finish "}],\"usage\":null}"
#define USAGE_3 "\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}"

static void openai_chat(void **state)
{
    struct resp r = post("/v1/chat/completions", CHAT_BODY("kjv:16m", "alpha beta gamma", ""));
    cJSON *o = cJSON_Parse(r.body);
    const char *id = cJSON_GetObjectItem(o, "id")->valuestring;
    char *seen;

    (void)state;
    assert_int_equal(r.status, 200);
    assert_content_type(&r, "application/json");
    assert_int_equal(strlen(id), strlen("chatcmpl-") + 24);
    assert_memory_equal(id, "chatcmpl-", 9);
    assert_true(cJSON_GetObjectItem(o, "created")->valuedouble > 1700000000);
    assert_norm(r.body, "{\"id\":\"X\",\"object\":\"chat.completion\",\"created\":0,\"model\":"
                        "\"kjv-llama-16m\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
                        "\"assistant\",\"content\":\"alpha beta gamma\",\"refusal\":null},"
                        "\"logprobs\":null,\"finish_reason\":\"stop\"}]," USAGE_3 "}");
    seen = dbl_last_request(fx->dbl);
    assert_string_equal(seen, "{\"model_id\":\"kjv-llama-16m\",\"kind\":\"chat\",\"max_tokens\":"
                              "-1,\"stop\":[],\"messages\":[{\"role\":\"user\",\"content\":"
                              "\"alpha beta gamma\"}]}");
    free(seen);
    cJSON_Delete(o);
    resp_free(&r);
}

static void openai_chat_stream(void **state)
{
    struct resp r = post("/v1/chat/completions",
                         CHAT_BODY("kjv-llama-16m", "alpha beta gamma",
                                   ",\"stream\":true,\"stream_options\":{\"include_usage\":true}"));
    char *f[16] = {0};
    int n = sse_frames(r.body, f, 16);
    char ids[6][64];

    (void)state;
    assert_int_equal(r.status, 200);
    assert_content_type(&r, "text/event-stream");
    assert_int_equal(n, 6);
    assert_norm(f[0], CHUNK("{\"role\":\"assistant\",\"content\":\"alpha\"}", "null"));
    assert_norm(f[1], CHUNK("{\"content\":\" beta\"}", "null"));
    assert_norm(f[2], CHUNK("{\"content\":\" gamma\"}", "null"));
    assert_norm(f[3], CHUNK("{}", "\"stop\""));
    assert_norm(f[4], "{\"id\":\"X\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":"
                      "\"kjv-llama-16m\",\"choices\":[]," USAGE_3 "}");
    assert_string_equal(f[5], "[DONE]");
    for (int i = 0; i < 5; i++) { /* one id for the whole stream */
        cJSON *o = cJSON_Parse(f[i]);
        snprintf(ids[i], sizeof ids[i], "%s", cJSON_GetObjectItem(o, "id")->valuestring);
        cJSON_Delete(o);
        assert_string_equal(ids[i], ids[0]);
    }
    free_all(f, n);
    resp_free(&r);
}

static void openai_tools(void **state)
{
#define TOOLS                                                                                      \
    ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":"    \
    "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}]"
    struct resp r = post("/v1/chat/completions", CHAT_BODY("kjv-llama-16m", "Weather?", TOOLS));
    cJSON *o = cJSON_Parse(r.body), *tc;
    char *f[8] = {0};
    int n;

    (void)state;
    assert_int_equal(r.status, 200);
    tc = cJSON_GetArrayItem(
        cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0),
                                "message"),
            "tool_calls"),
        0);
    assert_memory_equal(cJSON_GetObjectItem(tc, "id")->valuestring, "call_", 5);
    cJSON_ReplaceItemInObject(tc, "id", cJSON_CreateString("call_X"));
    {
        char *s = cJSON_PrintUnformatted(o);
        assert_norm(s, "{\"id\":\"X\",\"object\":\"chat.completion\",\"created\":0,\"model\":"
                       "\"kjv-llama-16m\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
                       "\"assistant\",\"content\":null,\"refusal\":null,\"tool_calls\":[{\"id\":"
                       "\"call_X\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                       "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},\"logprobs\":null,"
                       "\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":7,"
                       "\"completion_tokens\":1,\"total_tokens\":8}}");
        free(s);
    }
    cJSON_Delete(o);
    resp_free(&r);
    r = post("/v1/chat/completions", CHAT_BODY("kjv-llama-16m", "Weather?",
                                               TOOLS ",\"stream\":true,\"tool_choice\":{\"type\":"
                                                     "\"function\",\"function\":{\"name\":"
                                                     "\"get_weather\"}}"));
    n = sse_frames(r.body, f, 8);
    assert_int_equal(n, 3);
    o = cJSON_Parse(f[0]);
    tc = cJSON_GetArrayItem(
        cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0), "delta"),
            "tool_calls"),
        0);
    assert_int_equal(cJSON_GetObjectItem(tc, "index")->valueint, 0);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(tc, "function"), "name")->valuestring,
        "get_weather");
    cJSON_Delete(o);
    assert_non_null(strstr(f[1], "\"finish_reason\":\"tool_calls\""));
    assert_string_equal(f[2], "[DONE]");
    free_all(f, n);
    resp_free(&r);
    /* tool_choice none: the model answers in text */
    r = post("/v1/chat/completions",
             CHAT_BODY("kjv-llama-16m", "Weather?", TOOLS ",\"tool_choice\":\"none\""));
    assert_non_null(strstr(r.body, "\"content\":\"Weather?\""));
    resp_free(&r);
}

static void openai_logprobs_and_reasoning(void **state)
{
    struct resp r = post("/v1/chat/completions",
                         CHAT_BODY("kjv-llama-16m", "hi you",
                                   ",\"logprobs\":true,\"top_logprobs\":2,\"reasoning_effort\":"
                                   "\"high\",\"max_tokens\":1"));

    (void)state;
    assert_int_equal(r.status, 200);
    assert_norm(r.body,
                "{\"id\":\"X\",\"object\":\"chat.completion\",\"created\":0,\"model\":"
                "\"kjv-llama-16m\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                "\"content\":\"hi\",\"refusal\":null,\"reasoning_content\":\"Let me think.\"},"
                "\"logprobs\":{\"content\":[{\"token\":\"hi\",\"logprob\":-0.5,\"bytes\":[104,"
                "105],\"top_logprobs\":[{\"token\":\"hi\",\"logprob\":-0.5,\"bytes\":[104,105]},"
                "{\"token\":\"x\",\"logprob\":-1.5,\"bytes\":[120]}]}],\"refusal\":null},"
                "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":7,"
                "\"completion_tokens\":1,\"total_tokens\":8}}");
    resp_free(&r);
    r = post("/v1/chat/completions",
             CHAT_BODY("kjv-llama-16m", "hi", ",\"reasoning_effort\":\"low\",\"stream\":true"));
    assert_non_null(
        strstr(r.body, "\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"reasoning_content\":"
                       "\"Let me think.\"}"));
    resp_free(&r);
}

static void openai_completions(void **state)
{
    struct resp r =
        post("/v1/completions", "{\"model\":\"kjv-llama-16m\",\"prompt\":\"Once upon a time\"}");
    char *f[8] = {0};
    int n;

    (void)state;
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, "{\"id\":\"cmpl-", 12);
    assert_norm(r.body, "{\"id\":\"X\",\"object\":\"text_completion\",\"created\":0,\"model\":"
                        "\"kjv-llama-16m\",\"choices\":[{\"text\":\"Once upon a time\",\"index\":0,"
                        "\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens"
                        "\":7,\"completion_tokens\":4,\"total_tokens\":11}}");
    resp_free(&r);
    r = post("/v1/completions", "{\"model\":\"kjv-llama-16m\",\"prompt\":\"Once upon a time\","
                                "\"max_tokens\":2,\"stream\":true,\"logprobs\":0}");
    n = sse_frames(r.body, f, 8);
    assert_int_equal(n, 4);
    assert_norm(f[0], "{\"id\":\"X\",\"object\":\"text_completion\",\"created\":0,\"model\":"
                      "\"kjv-llama-16m\",\"choices\":[{\"text\":\"Once\",\"index\":0,\"logprobs\":"
                      "{\"tokens\":[\"Once\"],\"token_logprobs\":[-0.5],\"top_logprobs\":[{}],"
                      "\"text_offset\":[0]},\"finish_reason\":null}]}");
    assert_norm(f[1], "{\"id\":\"X\",\"object\":\"text_completion\",\"created\":0,\"model\":"
                      "\"kjv-llama-16m\",\"choices\":[{\"text\":\" upon\",\"index\":0,\"logprobs\":"
                      "{\"tokens\":[\" upon\"],\"token_logprobs\":[-0.5],\"top_logprobs\":[{}],"
                      "\"text_offset\":[4]},\"finish_reason\":null}]}");
    assert_norm(f[2], "{\"id\":\"X\",\"object\":\"text_completion\",\"created\":0,\"model\":"
                      "\"kjv-llama-16m\",\"choices\":[{\"text\":\"\",\"index\":0,\"logprobs\":null,"
                      "\"finish_reason\":\"length\"}]}");
    assert_string_equal(f[3], "[DONE]");
    free_all(f, n);
    resp_free(&r);
}

static void
expect_error(const char *path, const char *body, long status, const char *want, const char *retry)
{
    struct resp r = post(path, body);
    char v[32];

    if (r.status != status || strcmp(r.body, want) != 0)
        print_error("%s %s\n -> %ld %s\n want %ld %s\n", path, body, r.status, r.body, status,
                    want);
    assert_int_equal(r.status, status);
    assert_string_equal(r.body, want);
    if (retry) {
        assert_true(resp_header(&r, "Retry-After", v, sizeof v));
        assert_string_equal(v, retry);
    } else {
        assert_false(resp_header(&r, "Retry-After", v, sizeof v));
    }
    resp_free(&r);
}

static void error_mapping(void **state)
{
    (void)state;
    expect_error("/v1/chat/completions", CHAT_BODY("gpt-4o", "x", ""), 404,
                 "{\"error\":{\"message\":\"The model `gpt-4o` does not exist or you do not have "
                 "access to it.\",\"type\":\"invalid_request_error\",\"param\":\"model\",\"code\":"
                 "\"model_not_found\"}}",
                 NULL);
    expect_error("/api/chat", CHAT_BODY("llama3:8b", "x", ""), 404,
                 "{\"error\":\"model 'llama3:8b' not found\"}", NULL);
    expect_error("/api/generate", "{\"model\":\"nope\"}", 404,
                 "{\"error\":\"model 'nope' not found\"}", NULL);
    expect_error("/v1/completions", "{\"model\":\"busy\",\"prompt\":\"x\",\"stream\":true}", 503,
                 "{\"error\":{\"message\":\"the queue of test/busy is full (4 waiting)\",\"type\":"
                 "\"server_error\",\"param\":null,\"code\":\"server_busy\"}}",
                 "7");
    expect_error("/api/chat", CHAT_BODY("test/busy", "x", ""), 503,
                 "{\"error\":\"the queue of test/busy is full (4 waiting)\"}", "7");
    expect_error("/v1/chat/completions", CHAT_BODY("test/overflow", "x", ",\"stream\":true"), 400,
                 "{\"error\":{\"message\":\"the prompt is 9000 tokens, the context holds 2048\","
                 "\"type\":\"invalid_request_error\",\"param\":\"messages\",\"code\":"
                 "\"context_length_exceeded\"}}",
                 NULL);
    expect_error("/v1/completions", "{\"model\":\"test/overflow\",\"prompt\":\"x\"}", 400,
                 "{\"error\":{\"message\":\"the prompt is 9000 tokens, the context holds 2048\","
                 "\"type\":\"invalid_request_error\",\"param\":\"prompt\",\"code\":"
                 "\"context_length_exceeded\"}}",
                 NULL);
    expect_error("/api/generate", "{\"model\":\"test/overflow\",\"prompt\":\"x\"}", 400,
                 "{\"error\":\"the prompt is 9000 tokens, the context holds 2048\"}", NULL);
    expect_error("/v1/chat/completions", CHAT_BODY("test/crash", "x", ""), 500,
                 "{\"error\":{\"message\":\"runner for test/crash exited (signal 9)\",\"type\":"
                 "\"server_error\",\"param\":null,\"code\":null}}",
                 NULL);
    expect_error("/api/chat", CHAT_BODY("test/crash", "x", ",\"stream\":false"), 500,
                 "{\"error\":\"runner for test/crash exited (signal 9)\"}", NULL);
}

static void error_mid_stream(void **state)
{
    struct resp r = post("/v1/chat/completions", CHAT_BODY("test/crash", "x", ",\"stream\":true"));
    char *f[8] = {0};
    int n = sse_frames(r.body, f, 8);

    (void)state;
    assert_int_equal(r.status, 200);
    assert_int_equal(n, 2); /* a chunk, the error, and no [DONE] */
    assert_non_null(strstr(f[0], "\"content\":\"partial\""));
    assert_string_equal(f[1], "{\"error\":{\"message\":\"runner for test/crash exited (signal "
                              "9)\",\"type\":\"server_error\",\"param\":null,\"code\":null}}");
    free_all(f, n);
    resp_free(&r);
    r = post("/api/chat", CHAT_BODY("test/crash", "x", ""));
    n = nd_lines(r.body, f, 8);
    assert_int_equal(r.status, 200);
    assert_int_equal(n, 2);
    assert_norm(f[0], "{\"model\":\"test/crash\",\"created_at\":\"T\",\"message\":{\"role\":"
                      "\"assistant\",\"content\":\"partial\"},\"done\":false}");
    assert_string_equal(f[1], "{\"error\":\"runner for test/crash exited (signal 9)\"}");
    free_all(f, n);
    resp_free(&r);
}

#define OLL_FINAL(model, msg_or_resp, reason, count)                                               \
    "{\"model\":\"" model "\",\"created_at\":\"T\"," msg_or_resp ",\"done\":true,\"done_reason\":" \
    "\"" reason "\",\"total_duration\":1,\"load_duration\":1000,\"prompt_eval_count\":7,"          \
    "\"prompt_eval_duration\":2000,\"eval_count\":" count ",\"eval_duration\":3000}"

static void ollama_chat(void **state)
{
    struct resp r = post("/api/chat", CHAT_BODY("kjv:16m", "alpha beta", ""));
    char *f[8] = {0};
    int n = nd_lines(r.body, f, 8);

    (void)state;
    assert_int_equal(r.status, 200);
    assert_content_type(&r, "application/x-ndjson");
    assert_int_equal(n, 3);
    assert_norm(f[0], "{\"model\":\"kjv:16m\",\"created_at\":\"T\",\"message\":{\"role\":"
                      "\"assistant\",\"content\":\"alpha\"},\"done\":false}");
    assert_norm(f[1], "{\"model\":\"kjv:16m\",\"created_at\":\"T\",\"message\":{\"role\":"
                      "\"assistant\",\"content\":\" beta\"},\"done\":false}");
    assert_norm(f[2], OLL_FINAL("kjv:16m", "\"message\":{\"role\":\"assistant\",\"content\":\"\"}",
                                "stop", "2"));
    free_all(f, n);
    resp_free(&r);
    r = post("/api/chat", CHAT_BODY("kjv-llama-16m:latest", "alpha beta",
                                    ",\"stream\":false,\"think\":true,\"options\":{"
                                    "\"num_predict\":1}"));
    assert_content_type(&r, "application/json");
    assert_norm(r.body, OLL_FINAL("kjv-llama-16m:latest",
                                  "\"message\":{\"role\":\"assistant\",\"content\":\"alpha\","
                                  "\"thinking\":\"Let me think.\"}",
                                  "length", "1"));
    resp_free(&r);
}

static void ollama_tools(void **state)
{
    struct resp r =
        post("/api/chat", CHAT_BODY("kjv-llama-16m", "Weather?", TOOLS ",\"stream\":false"));
    cJSON *o = cJSON_Parse(r.body);
    cJSON *tc =
        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "message"), "tool_calls"), 0);
    char *s;

    (void)state;
    assert_memory_equal(cJSON_GetObjectItem(tc, "id")->valuestring, "call_", 5);
    cJSON_DeleteItemFromObject(tc, "id");
    s = cJSON_PrintUnformatted(o);
    assert_norm(s, OLL_FINAL("kjv-llama-16m",
                             "\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":"
                             "[{\"function\":{\"index\":0,\"name\":\"get_weather\",\"arguments\":"
                             "{\"city\":\"Paris\"}}}]}",
                             "stop", "1"));
    free(s);
    cJSON_Delete(o);
    resp_free(&r);
}

static void ollama_generate(void **state)
{
    struct resp r = post("/api/generate", "{\"model\":\"kjv-llama-16m\",\"prompt\":\"Why sky\","
                                          "\"system\":\"Be brief.\",\"template\":\"ignored\","
                                          "\"options\":{\"temperature\":0.2,\"top_k\":5,"
                                          "\"seed\":9,\"stop\":[\"\\n\"]}}");
    char *f[8] = {0}, *seen;
    int n = nd_lines(r.body, f, 8);

    (void)state;
    assert_int_equal(n, 3);
    assert_norm(f[0], "{\"model\":\"kjv-llama-16m\",\"created_at\":\"T\",\"response\":\"Why\","
                      "\"done\":false}");
    assert_norm(f[2], OLL_FINAL("kjv-llama-16m", "\"response\":\"\"", "stop", "2"));
    seen = dbl_last_request(fx->dbl);
    assert_string_equal(seen, "{\"model_id\":\"kjv-llama-16m\",\"kind\":\"chat\",\"temperature\":"
                              "0.2,\"top_k\":5,\"seed\":9,\"max_tokens\":-1,\"stop\":[\"\\n\"],"
                              "\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                              "{\"role\":\"user\",\"content\":\"Why sky\"}]}");
    free(seen);
    free_all(f, n);
    resp_free(&r);
    r = post("/api/generate", "{\"model\":\"kjv-llama-16m\",\"prompt\":\"raw text\",\"raw\":true,"
                              "\"stream\":false}");
    assert_norm(r.body, OLL_FINAL("kjv-llama-16m", "\"response\":\"raw text\"", "stop", "2"));
    seen = dbl_last_request(fx->dbl);
    assert_string_equal(seen, "{\"model_id\":\"kjv-llama-16m\",\"kind\":\"completion\","
                              "\"max_tokens\":-1,\"stop\":[],\"prompt\":\"raw text\"}");
    free(seen);
    resp_free(&r);
}

static void ollama_load_requests(void **state)
{
    int before = dbl_started(fx->dbl);
    struct resp r = post("/api/generate", "{\"model\":\"kjv:16m\"}");

    (void)state;
    assert_int_equal(r.status, 200);
    assert_norm(r.body, "{\"model\":\"kjv:16m\",\"created_at\":\"T\",\"response\":\"\",\"done\":"
                        "true,\"done_reason\":\"load\"}");
    resp_free(&r);
    r = post("/api/chat", "{\"model\":\"kjv-llama-16m\",\"messages\":[],\"keep_alive\":\"10m\"}");
    assert_norm(r.body, "{\"model\":\"kjv-llama-16m\",\"created_at\":\"T\",\"message\":{\"role\":"
                        "\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"load\"}");
    resp_free(&r);
    assert_int_equal(dbl_started(fx->dbl), before); /* nothing generated */
}

static void listings(void **state)
{
    struct resp r = fx_http(fx, "GET", "/api/tags", NULL, NULL);
    cJSON *o = cJSON_Parse(r.body);
    cJSON *models = cJSON_GetObjectItem(o, "models");

    (void)state;
    assert_int_equal(cJSON_GetArraySize(models), 6);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(models, 1), "name")->valuestring,
                        "test/slow:latest");
    cJSON_Delete(o);
    resp_free(&r);
    r = fx_http(fx, "GET", "/api/ps", NULL, NULL);
    o = cJSON_Parse(r.body);
    models = cJSON_GetObjectItem(o, "models");
    assert_int_equal(cJSON_GetArraySize(models), 1);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(models, 0), "expires_at")->valuestring,
        "9999-12-31T23:59:59Z");
    cJSON_Delete(o);
    resp_free(&r);
    r = fx_http(fx, "GET", "/api/version", NULL, NULL);
    assert_string_equal(r.body, "{\"version\":\"" SHOAL_VERSION "\"}");
    resp_free(&r);
    r = post("/api/show", "{\"model\":\"kjv:16m\"}");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"capabilities\":[\"completion\",\"tools\",\"thinking\"]"));
    assert_non_null(strstr(r.body, "\"template\":\"{{ messages }}\""));
    resp_free(&r);
    r = post("/api/show", "{\"name\":\"nope\"}");
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "{\"error\":\"model 'nope' not found\"}");
    resp_free(&r);
    r = fx_http(fx, "GET", "/v1/models", NULL, NULL);
    o = cJSON_Parse(r.body);
    assert_string_equal(cJSON_GetObjectItem(o, "object")->valuestring, "list");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "data")), 6);
    cJSON_Delete(o);
    resp_free(&r);
}

struct sink {
    char buf[4096];
    size_t len;
};

static size_t sink_write(char *d, size_t s, size_t n, void *arg)
{
    struct sink *k = arg;
    size_t add = s * n;

    if (k->len + add >= sizeof k->buf)
        return 0;
    memcpy(k->buf + k->len, d, add);
    k->len += add;
    k->buf[k->len] = '\0';
    return add;
}

/* The text an Ollama NDJSON chat stream carries. */
static void ndjson_text(const char *body, char *out, size_t cap)
{
    char *lines[64] = {0};
    int n = nd_lines(body, lines, 64);

    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_Parse(lines[i]);
        const cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "message"), "content");
        strncat(out, c->valuestring, cap - strlen(out) - 1);
        cJSON_Delete(o);
    }
    free_all(lines, n);
}

/* Two streams to one model at once: each gets its own words, interleaved
 * on the loop but never mixed. */
static void concurrent_streams(void **state)
{
    static const char *const texts[2] = {"alpha beta gamma delta epsilon zeta eta theta",
                                         "one two three four five six seven eight"};
    struct sink sinks[2] = {0};
    CURL *h[2];
    CURLM *m = curl_multi_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    char url[128], body[2][256], got[512];
    int running = 1;

    (void)state;
    snprintf(url, sizeof url, "http://127.0.0.1:%u/api/chat", (unsigned)fx->port);
    for (int i = 0; i < 2; i++) {
        snprintf(body[i], sizeof body[i],
                 "{\"model\":\"kjv-llama-16m\",\"messages\":[{\"role\":\"user\",\"content\":"
                 "\"%s\"}]}",
                 texts[i]);
        h[i] = curl_easy_init();
        curl_easy_setopt(h[i], CURLOPT_URL, url);
        curl_easy_setopt(h[i], CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h[i], CURLOPT_POSTFIELDS, body[i]);
        curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, sink_write);
        curl_easy_setopt(h[i], CURLOPT_WRITEDATA, &sinks[i]);
        curl_easy_setopt(h[i], CURLOPT_TIMEOUT, 10L);
        curl_multi_add_handle(m, h[i]);
    }
    while (running) {
        curl_multi_perform(m, &running);
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    for (int i = 0; i < 2; i++) {
        ndjson_text(sinks[i].buf, got, sizeof got);
        assert_string_equal(got, texts[i]);
        curl_multi_remove_handle(m, h[i]);
        curl_easy_cleanup(h[i]);
    }
    curl_slist_free_all(hdr);
    curl_multi_cleanup(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(openai_chat),          cmocka_unit_test(openai_chat_stream),
        cmocka_unit_test(openai_tools),         cmocka_unit_test(openai_logprobs_and_reasoning),
        cmocka_unit_test(openai_completions),   cmocka_unit_test(error_mapping),
        cmocka_unit_test(error_mid_stream),     cmocka_unit_test(ollama_chat),
        cmocka_unit_test(ollama_tools),         cmocka_unit_test(ollama_generate),
        cmocka_unit_test(ollama_load_requests), cmocka_unit_test(listings),
        cmocka_unit_test(concurrent_streams),
    };
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests_name("api/routes", tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
