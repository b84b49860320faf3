/* tests/api/test_ollama.c: Ollama request parsing (api/ollama.c): options
 * mapped onto the shared sampling set, num_predict semantics, format, think,
 * keep_alive, messages normalized, /api/generate with and without raw, and
 * every error with its exact {"error": "..."} body. */
#include "cases.h"

#define CHAT(extra)                                                                                \
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]" extra "}"
#define MSG(m)     "{\"model\":\"m\",\"messages\":[" m "]}"
#define OPT(o)     CHAT(",\"options\":{" o "}")
#define GEN(extra) "{\"model\":\"m\",\"prompt\":\"Why?\"" extra "}"

static const struct bad_case chat_bad[] = {
    {"", 400, "", OLL_ERR("missing request body")},
    {"nope", 400, "", OLL_ERR("request body: invalid JSON near byte 0")},
    {"{\"messages\":[]}", 400, "model", OLL_ERR("missing required parameter: 'model'")},
    {"{\"model\":[\"m\"]}", 400, "model", OLL_ERR("invalid type for 'model': expected a string")},
    {CHAT(",\"options\":5"), 400, "options",
     OLL_ERR("invalid type for 'options': expected an object")},
    {OPT("\"temperature\":\"x\""), 400, "options.temperature",
     OLL_ERR("invalid type for 'options.temperature': expected a number")},
    {OPT("\"temperature\":101"), 400, "options.temperature",
     OLL_ERR("invalid value for 'options.temperature': 101 is outside [0, 100]")},
    {OPT("\"top_p\":-0.5"), 400, "options.top_p",
     OLL_ERR("invalid value for 'options.top_p': -0.5 is outside [0, 1]")},
    {OPT("\"top_k\":1.5"), 400, "options.top_k",
     OLL_ERR("invalid type for 'options.top_k': expected an integer")},
    {OPT("\"min_p\":\"0.1\""), 400, "options.min_p",
     OLL_ERR("invalid type for 'options.min_p': expected a number")},
    {OPT("\"seed\":1.5"), 400, "options.seed",
     OLL_ERR("invalid type for 'options.seed': expected an integer")},
    {OPT("\"num_predict\":-3"), 400, "options.num_predict",
     OLL_ERR("invalid value for 'options.num_predict': -3 is outside [-2, 1073741824]")},
    {OPT("\"num_predict\":\"10\""), 400, "options.num_predict",
     OLL_ERR("invalid type for 'options.num_predict': expected an integer")},
    {OPT("\"stop\":5"), 400, "options.stop",
     OLL_ERR("invalid type for 'options.stop': expected a string or an array of strings")},
    {OPT("\"repeat_penalty\":0"), 400, "options.repeat_penalty",
     OLL_ERR("invalid value for 'options.repeat_penalty': must be > 0")},
    {OPT("\"presence_penalty\":2.5"), 400, "options.presence_penalty",
     OLL_ERR("invalid value for 'options.presence_penalty': 2.5 is outside [-2, 2]")},
    {OPT("\"frequency_penalty\":true"), 400, "options.frequency_penalty",
     OLL_ERR("invalid type for 'options.frequency_penalty': expected a number")},
    {OPT("\"num_ctx\":-1"), 400, "options.num_ctx",
     OLL_ERR("invalid value for 'options.num_ctx': -1 is outside [0, 16777216]")},
    {OPT("\"repeat_last_n\":-2"), 400, "options.repeat_last_n",
     OLL_ERR("invalid value for 'options.repeat_last_n': -2 is outside [-1, 16777216]")},
    {OPT("\"mirostat\":2"), 400, "options.mirostat",
     OLL_ERR("'options.mirostat' is not supported: this sampler is not implemented")},
    {OPT("\"typical_p\":0.5"), 400, "options.typical_p",
     OLL_ERR("'options.typical_p' is not supported: this sampler is not implemented")},
    {OPT("\"tfs_z\":0.9"), 400, "options.tfs_z",
     OLL_ERR("'options.tfs_z' is not supported: this sampler is not implemented")},
    {OPT("\"num_gpu\":\"all\""), 400, "options.num_gpu",
     OLL_ERR("invalid type for 'options.num_gpu': expected a number or a boolean")},
    {CHAT(",\"format\":\"xml\""), 400, "format",
     OLL_ERR("invalid value for 'format': expected \\\"json\\\" or a JSON schema object, got "
             "\\\"xml\\\"")},
    {CHAT(",\"format\":5"), 400, "format",
     OLL_ERR("invalid type for 'format': expected \\\"json\\\" or a JSON schema object")},
    {CHAT(",\"think\":\"extreme\""), 400, "think",
     OLL_ERR("invalid value for 'think': expected true, false, \\\"low\\\", \\\"medium\\\", "
             "\\\"high\\\" or \\\"max\\\"")},
    {CHAT(",\"think\":1"), 400, "think",
     OLL_ERR("invalid value for 'think': expected true, false, \\\"low\\\", \\\"medium\\\", "
             "\\\"high\\\" or \\\"max\\\"")},
    {CHAT(",\"stream\":\"no\""), 400, "stream",
     OLL_ERR("invalid type for 'stream': expected a boolean")},
    {CHAT(",\"keep_alive\":\"forever\""), 400, "keep_alive",
     OLL_ERR("invalid value for 'keep_alive': expected seconds or a duration like \\\"5m\\\"")},
    {CHAT(",\"keep_alive\":\"5\""), 400, "keep_alive",
     OLL_ERR("invalid value for 'keep_alive': expected seconds or a duration like \\\"5m\\\"")},
    {CHAT(",\"keep_alive\":\"-1\""), 400, "keep_alive", /* Go: "missing unit" */
     OLL_ERR("invalid value for 'keep_alive': expected seconds or a duration like \\\"5m\\\"")},
    {CHAT(",\"keep_alive\":true"), 400, "keep_alive",
     OLL_ERR("invalid value for 'keep_alive': expected seconds or a duration like \\\"5m\\\"")},
    {CHAT(",\"logprobs\":\"y\""), 400, "logprobs",
     OLL_ERR("invalid type for 'logprobs': expected a boolean")},
    {CHAT(",\"top_logprobs\":21"), 400, "top_logprobs",
     OLL_ERR("invalid value for 'top_logprobs': 21 is outside [0, 20]")},
    {CHAT(",\"truncate\":\"y\""), 400, "truncate",
     OLL_ERR("invalid type for 'truncate': expected a boolean")},
    {CHAT(",\"images\":[\"aGk=\"]"), 400, "images",
     OLL_ERR("'images' is not supported: shoal serves text models")},
    {CHAT(",\"tools\":{}"), 400, "tools",
     OLL_ERR("invalid type for 'tools': expected an array of tools")},
    {"{\"model\":\"m\",\"messages\":{}}", 400, "messages",
     OLL_ERR("invalid type for 'messages': expected an array")},
    {MSG("\"hi\""), 400, "messages[0]",
     OLL_ERR("invalid type for 'messages[0]': expected an object")},
    {MSG("{\"content\":\"hi\"}"), 400, "messages[0].role",
     OLL_ERR("missing required parameter: 'messages[0].role'")},
    {MSG("{\"role\":\"robot\",\"content\":\"hi\"}"), 400, "messages[0].role",
     OLL_ERR("invalid value for 'messages[0].role': \\\"robot\\\" is not one of system, user, "
             "assistant, tool")},
    {MSG("{\"role\":\"developer\",\"content\":\"hi\"}"), 400, "messages[0].role",
     OLL_ERR("invalid value for 'messages[0].role': \\\"developer\\\" is not one of system, "
             "user, assistant, tool")},
    {MSG("{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}"), 400,
     "messages[0].content", OLL_ERR("invalid type for 'messages[0].content': expected a string")},
    {MSG("{\"role\":\"assistant\",\"content\":\"\",\"thinking\":false}"), 400,
     "messages[0].thinking", OLL_ERR("invalid type for 'messages[0].thinking': expected a string")},
    {MSG("{\"role\":\"user\",\"content\":\"see\",\"images\":[\"aGk=\"]}"), 400,
     "messages[0].images",
     OLL_ERR("'messages[0].images' is not supported: shoal serves text models")},
    {MSG("{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"f\","
         "\"arguments\":\"{}\"}}]}"),
     400, "messages[0].tool_calls[0]",
     OLL_ERR("invalid type for 'messages[0].tool_calls[0]': expected {\\\"function\\\": "
             "{\\\"name\\\": string, \\\"arguments\\\": object}}")},
    {MSG("{\"role\":\"tool\",\"content\":\"1\",\"tool_name\":7}"), 400, "messages[0].tool_name",
     OLL_ERR("invalid type for 'messages[0].tool_name': expected a string")},
};

static void chat_errors(void **state)
{
    (void)state;
    assert_int_equal(run_bad_cases(api_ollama_parse_chat, API_DIALECT_OLLAMA, chat_bad,
                                   sizeof chat_bad / sizeof chat_bad[0]),
                     0);
}

static const struct bad_case generate_bad[] = {
    {"{\"model\":\"m\",\"prompt\":5}", 400, "prompt",
     OLL_ERR("invalid type for 'prompt': expected a string")},
    {GEN(",\"system\":{}"), 400, "system", OLL_ERR("invalid type for 'system': expected a string")},
    {GEN(",\"template\":5"), 400, "template",
     OLL_ERR("invalid type for 'template': expected a string")},
    {GEN(",\"suffix\":\"return x\""), 400, "suffix",
     OLL_ERR("'suffix' is not supported: fill-in-the-middle is not implemented")},
    {GEN(",\"context\":[1,2,3]"), 400, "context",
     OLL_ERR("'context' is not supported: send the conversation to /api/chat instead")},
    {GEN(",\"context\":\"x\""), 400, "context",
     OLL_ERR("invalid type for 'context': expected an array")},
    {GEN(",\"raw\":\"yes\""), 400, "raw", OLL_ERR("invalid type for 'raw': expected a boolean")},
    {GEN(",\"raw\":true,\"system\":\"Be brief.\""), 400, "raw",
     OLL_ERR("raw mode does not support template, system, or context")},
    {GEN(",\"raw\":true,\"template\":\"{{ .Prompt }}\""), 400, "raw",
     OLL_ERR("raw mode does not support template, system, or context")},
    {GEN(",\"images\":[\"aGk=\"]"), 400, "images",
     OLL_ERR("'images' is not supported: shoal serves text models")},
    {GEN(",\"options\":{\"num_predict\":1.5}"), 400, "options.num_predict",
     OLL_ERR("invalid type for 'options.num_predict': expected an integer")},
};

static void generate_errors(void **state)
{
    (void)state;
    assert_int_equal(run_bad_cases(api_ollama_parse_generate, API_DIALECT_OLLAMA, generate_bad,
                                   sizeof generate_bad / sizeof generate_bad[0]),
                     0);
}

static struct api_gen_request parse_ok(parse_fn fn, const char *body)
{
    struct api_gen_request req;
    struct api_error e;
    int rc = fn(body, strlen(body), &req, &e);

    if (rc)
        print_error("%s\n-> %d %s (%s)\n", body, rc, e.message, e.param);
    assert_int_equal(rc, 0);
    return req;
}

static void assert_messages(const struct api_gen_request *r, const char *want)
{
    char *got = cJSON_PrintUnformatted(r->messages);
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        print_error("messages\n got  %s\n want %s\n", got, want);
    assert_string_equal(got, want);
    free(got);
}

static void chat_defaults(void **state)
{
    struct api_gen_request r = parse_ok(api_ollama_parse_chat, CHAT(""));

    (void)state;
    assert_int_equal(r.dialect, API_DIALECT_OLLAMA);
    assert_int_equal(r.kind, API_GEN_CHAT);
    assert_true(r.stream); /* Ollama streams by default */
    assert_int_equal(r.max_tokens, API_MAX_TOKENS_UNSET);
    assert_false(r.sampling.has_temperature || r.sampling.has_seed || r.sampling.has_top_k);
    assert_int_equal(r.think, API_THINK_UNSET);
    assert_int_equal(r.ignored, 0);
    assert_messages(&r, "[{\"role\":\"user\",\"content\":\"hi\"}]");
    api_gen_request_clear(&r);
}

static void chat_options(void **state)
{
    struct api_gen_request r = parse_ok(
        api_ollama_parse_chat,
        OPT("\"temperature\":0.8,\"top_p\":0.9,\"top_k\":40,\"min_p\":0.05,\"seed\":123,"
            "\"num_predict\":128,\"stop\":[\"<|im_end|>\",\"\"],\"repeat_penalty\":1.1,"
            "\"presence_penalty\":0.5,\"frequency_penalty\":0.25,\"num_ctx\":4096,"
            "\"repeat_last_n\":64,\"mirostat\":0,\"typical_p\":1,\"tfs_z\":1,\"num_keep\":4,"
            "\"penalize_newline\":true,\"unknown_option\":\"ignored as Ollama does\""));
    const struct api_sampling *s = &r.sampling;

    (void)state;
    assert_true(s->has_temperature && s->temperature == 0.8);
    assert_true(s->has_top_p && s->top_p == 0.9);
    assert_true(s->has_top_k && s->top_k == 40);
    assert_true(s->has_min_p && s->min_p == 0.05);
    assert_true(s->has_seed && s->seed == 123);
    assert_int_equal(r.max_tokens, 128);
    assert_int_equal(r.n_stop, 1);
    assert_string_equal(r.stop[0], "<|im_end|>");
    assert_true(s->has_repetition_penalty && s->repetition_penalty == 1.1);
    assert_true(s->has_presence_penalty && s->presence_penalty == 0.5);
    assert_true(s->has_frequency_penalty && s->frequency_penalty == 0.25);
    assert_int_equal(r.num_ctx, 4096);
    assert_true(s->has_repeat_last_n && s->repeat_last_n == 64);
    assert_int_equal(r.ignored, 0); /* num_keep, penalize_newline: no effect, not flagged */
    api_gen_request_clear(&r);
}

static void chat_option_semantics(void **state)
{
    struct api_gen_request r;

    (void)state;
    r = parse_ok(api_ollama_parse_chat, OPT("\"seed\":-1,\"num_predict\":-1,\"top_k\":0"));
    assert_false(r.sampling.has_seed); /* -1: random */
    assert_int_equal(r.max_tokens, API_MAX_TOKENS_UNSET);
    assert_true(r.sampling.has_top_k && r.sampling.top_k == 0);
    api_gen_request_clear(&r);
    r = parse_ok(api_ollama_parse_chat, OPT("\"num_predict\":-2,\"top_k\":-5"));
    assert_int_equal(r.max_tokens, API_MAX_TOKENS_FILL);
    assert_true(r.sampling.top_k == 0); /* <= 0: off, as llama.cpp */
    api_gen_request_clear(&r);
    r = parse_ok(api_ollama_parse_chat, OPT("\"num_predict\":0,\"temperature\":0,"
                                            "\"num_gpu\":99,\"use_mmap\":true,"
                                            "\"num_thread\":8,\"temperature\":null"));
    assert_int_equal(r.max_tokens, 0);
    assert_true(r.sampling.has_temperature && r.sampling.temperature == 0);
    assert_true(r.ignored & API_IGNORED_HW_OPTIONS);
    api_gen_request_clear(&r);
}

static void chat_format_think_keep_alive(void **state)
{
    struct api_gen_request r;

    (void)state;
    r = parse_ok(api_ollama_parse_chat, CHAT(",\"format\":\"json\",\"think\":true,"
                                             "\"keep_alive\":\"1h30m\",\"stream\":false"));
    assert_int_equal(r.format, API_FORMAT_JSON);
    assert_int_equal(r.think, API_THINK_ON);
    assert_null(r.think_level);
    assert_true(r.ignored & API_IGNORED_KEEP_ALIVE);
    assert_false(r.stream);
    api_gen_request_clear(&r);
    r = parse_ok(api_ollama_parse_chat,
                 CHAT(",\"format\":{\"type\":\"object\",\"properties\":{}},\"think\":\"high\","
                      "\"keep_alive\":-1,\"logprobs\":true,\"top_logprobs\":5,"
                      "\"truncate\":true,\"shift\":false"));
    assert_int_equal(r.format, API_FORMAT_JSON_SCHEMA);
    assert_true(cJSON_IsObject(r.json_schema));
    assert_string_equal(r.think_level, "high");
    assert_true(r.logprobs);
    assert_int_equal(r.top_logprobs, 5);
    api_gen_request_clear(&r);
    r = parse_ok(api_ollama_parse_chat, CHAT(",\"format\":\"\",\"think\":false,"
                                             "\"keep_alive\":0,\"images\":[]"));
    assert_int_equal(r.format, API_FORMAT_TEXT);
    assert_int_equal(r.think, API_THINK_OFF);
    api_gen_request_clear(&r);
    for (const char *const *d =
             (const char *const[]){"\"5m\"", "\"300ms\"", "\"-1h\"", "\"0\"", "\"1.5h\"",
                                   "\"2h45m\"", "\"10\xc2\xb5s\"", "300", "-1", NULL};
         *d; d++) {
        char body[256];
        snprintf(body, sizeof body, CHAT(",\"keep_alive\":%s"), *d);
        r = parse_ok(api_ollama_parse_chat, body);
        api_gen_request_clear(&r);
    }
}

static void chat_messages_normalized(void **state)
{
    struct api_gen_request r =
        parse_ok(api_ollama_parse_chat,
                 "{\"model\":\"m\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
                 "\"get_weather\",\"parameters\":{\"type\":\"object\"}}}],\"messages\":["
                 "{\"role\":\"SYSTEM\",\"content\":\"Be brief.\"},"
                 "{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
                 "{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"Use the tool.\","
                 "\"tool_calls\":[{\"function\":{\"name\":\"get_weather\",\"arguments\":"
                 "{\"city\":\"Paris\"}}}]},"
                 "{\"role\":\"tool\",\"content\":\"18C\",\"tool_name\":\"get_weather\"},"
                 "{\"role\":\"user\",\"thinking\":\"dropped: only assistants think\"}]}");

    (void)state;
    assert_non_null(r.tools);
    assert_int_equal(r.tool_choice, API_TOOL_CHOICE_AUTO);
    assert_messages(&r, "[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                        "{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
                        "{\"role\":\"assistant\",\"content\":\"\",\"reasoning_content\":"
                        "\"Use the tool.\",\"tool_calls\":[{\"type\":\"function\",\"function\":"
                        "{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}}]},"
                        "{\"role\":\"tool\",\"content\":\"18C\",\"name\":\"get_weather\"},"
                        "{\"role\":\"user\",\"content\":\"\"}]");
    api_gen_request_clear(&r);
}

static void chat_load_request(void **state)
{
    struct api_gen_request r;

    (void)state;
    r = parse_ok(api_ollama_parse_chat, "{\"model\":\"kjv-llama-16m:latest\"}");
    assert_null(r.messages);
    assert_string_equal(r.model, "kjv-llama-16m:latest");
    api_gen_request_clear(&r);
    r = parse_ok(api_ollama_parse_chat, "{\"model\":\"m\",\"messages\":[],\"keep_alive\":0}");
    assert_null(r.messages);
    api_gen_request_clear(&r);
}

static void generate_shapes(void **state)
{
    struct api_gen_request r;

    (void)state;
    /* not raw: the prompt becomes a user turn for the chat template */
    r = parse_ok(api_ollama_parse_generate, GEN(",\"system\":\"Be brief.\",\"template\":"
                                                "\"{{ .Prompt }}\",\"stream\":false"));
    assert_int_equal(r.kind, API_GEN_CHAT);
    assert_null(r.prompt);
    assert_true(r.ignored & API_IGNORED_TEMPLATE);
    assert_false(r.stream);
    assert_messages(&r, "[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                        "{\"role\":\"user\",\"content\":\"Why?\"}]");
    api_gen_request_clear(&r);
    /* raw: the prompt as it is */
    r = parse_ok(api_ollama_parse_generate,
                 GEN(",\"raw\":true,\"options\":{\"num_predict\":5},\"context\":[]"));
    assert_int_equal(r.kind, API_GEN_COMPLETION);
    assert_string_equal(r.prompt, "Why?");
    assert_null(r.messages);
    assert_int_equal(r.max_tokens, 5);
    api_gen_request_clear(&r);
    /* no prompt: load */
    r = parse_ok(api_ollama_parse_generate, "{\"model\":\"m\",\"prompt\":\"\",\"suffix\":\"\"}");
    assert_null(r.messages);
    assert_null(r.prompt);
    api_gen_request_clear(&r);
}

static void show_request(void **state)
{
    static const struct {
        const char *body;
        int status;
        const char *want; /* model or error message */
    } cases[] = {
        {"{\"model\":\"kjv:16m\"}", 0, "kjv:16m"},
        {"{\"name\":\"kjv-llama-16m\",\"verbose\":true}", 0, "kjv-llama-16m"},
        {"{\"model\":\"a\",\"name\":\"b\"}", 0, "a"},
        {"{}", 400, "missing required parameter: 'model'"},
        {"{\"name\":5}", 400, "missing required parameter: 'model'"},
        {"{\"model\":\"m\",\"verbose\":\"y\"}", 400,
         "invalid type for 'verbose': expected a boolean"},
        {"", 400, "missing request body"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *root = NULL;
        const char *model = NULL;
        bool verbose = false;
        struct api_error e;
        int rc = api_ollama_parse_show(cases[i].body, strlen(cases[i].body), &root, &model,
                                       &verbose, &e);
        assert_int_equal(rc, cases[i].status);
        if (rc) {
            assert_null(root);
            assert_string_equal(e.message, cases[i].want);
        } else {
            assert_string_equal(model, cases[i].want);
            assert_int_equal(verbose, i == 1);
        }
        cJSON_Delete(root);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chat_errors),
        cmocka_unit_test(generate_errors),
        cmocka_unit_test(chat_defaults),
        cmocka_unit_test(chat_options),
        cmocka_unit_test(chat_option_semantics),
        cmocka_unit_test(chat_format_think_keep_alive),
        cmocka_unit_test(chat_messages_normalized),
        cmocka_unit_test(chat_load_request),
        cmocka_unit_test(generate_shapes),
        cmocka_unit_test(show_request),
    };
    return cmocka_run_group_tests_name("api/ollama", tests, NULL, NULL);
}
