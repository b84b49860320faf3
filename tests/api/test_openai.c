/* tests/api/test_openai.c: OpenAI request parsing (api/openai.c,
 * api/params.c): every parameter mapped, every error with its parameter
 * name and the exact OpenAI error body. */
#include <math.h>

#include "cases.h"

/* A valid chat body plus extra members. */
#define CHAT(extra)                                                                                \
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]" extra "}"
#define MSG(m)      "{\"model\":\"m\",\"messages\":[" m "]}"
#define CMPL(extra) "{\"model\":\"m\",\"prompt\":\"Once\"" extra "}"

static const struct bad_case chat_bad[] = {
    /* the body */
    {"", 400, "",
     "{\"error\":{\"message\":\"missing request body\",\"type\":"
     "\"invalid_request_error\",\"param\":null,\"code\":\"invalid_json\"}}"},
    {"  \n", 400, "",
     "{\"error\":{\"message\":\"missing request body\",\"type\":"
     "\"invalid_request_error\",\"param\":null,\"code\":\"invalid_json\"}}"},
    {"{\"model\":", 400, "",
     "{\"error\":{\"message\":\"request body: invalid JSON near byte 8\","
     "\"type\":\"invalid_request_error\",\"param\":null,\"code\":"
     "\"invalid_json\"}}"},
    {"{} x", 400, "",
     "{\"error\":{\"message\":\"request body: trailing data after JSON at byte "
     "3\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":"
     "\"invalid_json\"}}"},
    {"[1]", 400, "",
     "{\"error\":{\"message\":\"request body must be a JSON object\",\"type\":"
     "\"invalid_request_error\",\"param\":null,\"code\":\"invalid_json\"}}"},
    /* model */
    {"{\"messages\":[]}", 400, "model",
     OAI_ERR("missing required parameter: 'model'", "\"model\"", "missing_required_parameter")},
    {"{\"model\":5}", 400, "model",
     OAI_ERR("invalid type for 'model': expected a string", "\"model\"", "invalid_type")},
    {"{\"model\":\"\"}", 400, "model",
     OAI_ERR("missing required parameter: 'model'", "\"model\"", "missing_required_parameter")},
    {"{\"model\":\"bad name!\"}", 400, "model",
     OAI_ERR("invalid value for 'model': invalid model name \\\"bad name!\\\"",
             "\"model\"",
             "invalid_value")},
    /* messages */
    {"{\"model\":\"m\"}", 400, "messages",
     OAI_ERR(
         "missing required parameter: 'messages'", "\"messages\"", "missing_required_parameter")},
    {"{\"model\":\"m\",\"messages\":\"x\"}", 400, "messages",
     OAI_ERR("invalid type for 'messages': expected an array", "\"messages\"", "invalid_type")},
    {"{\"model\":\"m\",\"messages\":[]}", 400, "messages",
     OAI_ERR("invalid value for 'messages': expected at least one message",
             "\"messages\"",
             "invalid_value")},
    {MSG("1"), 400, "messages[0]",
     OAI_ERR(
         "invalid type for 'messages[0]': expected an object", "\"messages[0]\"", "invalid_type")},
    {MSG("{\"content\":\"x\"}"), 400, "messages[0].role",
     OAI_ERR("missing required parameter: 'messages[0].role'",
             "\"messages[0].role\"",
             "missing_required_parameter")},
    {MSG("{\"role\":3}"), 400, "messages[0].role",
     OAI_ERR("invalid type for 'messages[0].role': expected a string",
             "\"messages[0].role\"",
             "invalid_type")},
    {MSG("{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"robot\",\"content\":\"x\"}"), 400,
     "messages[1].role",
     OAI_ERR("invalid value for 'messages[1].role': \\\"robot\\\" is not one of system, "
             "developer, user, assistant, tool",
             "\"messages[1].role\"",
             "invalid_value")},
    {MSG("{\"role\":\"function\",\"content\":\"x\",\"name\":\"f\"}"), 400, "messages[0].role",
     OAI_ERR("invalid value for 'messages[0].role': \\\"function\\\" is not one of system, "
             "developer, user, assistant, tool",
             "\"messages[0].role\"",
             "invalid_value")},
    {MSG("{\"role\":\"user\"}"), 400, "messages[0].content",
     OAI_ERR("missing required parameter: 'messages[0].content'",
             "\"messages[0].content\"",
             "missing_required_parameter")},
    {MSG("{\"role\":\"system\",\"content\":null}"), 400, "messages[0].content",
     OAI_ERR("missing required parameter: 'messages[0].content'",
             "\"messages[0].content\"",
             "missing_required_parameter")},
    {MSG("{\"role\":\"user\",\"content\":5}"), 400, "messages[0].content",
     OAI_ERR("invalid type for 'messages[0].content': expected a string or an array of content "
             "parts",
             "\"messages[0].content\"",
             "invalid_type")},
    {MSG("{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{}}]}"), 400,
     "messages[0].content[0].type",
     "{\"error\":{\"message\":\"invalid value for 'messages[0].content[0].type': only text content "
     "parts are supported, got \\\"image_url\\\"\",\"type\":\"invalid_request_error\",\"param\":"
     "\"messages[0].content[0].type\",\"code\":\"unsupported_value\"}}"},
    {MSG("{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}"), 400,
     "messages[0].content[0].text",
     OAI_ERR("invalid type for 'messages[0].content[0].text': expected a string",
             "\"messages[0].content[0].text\"",
             "invalid_type")},
    {MSG("{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}"), 400, "messages[0].content[0].type",
     OAI_ERR("invalid type for 'messages[0].content[0].type': expected a content part with a "
             "type",
             "\"messages[0].content[0].type\"",
             "invalid_type")},
    {MSG("{\"role\":\"user\",\"content\":[{\"type\":\"refusal\",\"refusal\":\"no\"}]}"), 400,
     "messages[0].content[0].type",
     "{\"error\":{\"message\":\"invalid value for 'messages[0].content[0].type': only text content "
     "parts are supported, got \\\"refusal\\\"\",\"type\":\"invalid_request_error\",\"param\":"
     "\"messages[0].content[0].type\",\"code\":\"unsupported_value\"}}"},
    {MSG("{\"role\":\"user\",\"content\":\"x\",\"name\":5}"), 400, "messages[0].name",
     OAI_ERR("invalid type for 'messages[0].name': expected a string",
             "\"messages[0].name\"",
             "invalid_type")},
    {MSG("{\"role\":\"assistant\",\"tool_calls\":\"x\"}"), 400, "messages[0].tool_calls",
     OAI_ERR("invalid type for 'messages[0].tool_calls': expected an array",
             "\"messages[0].tool_calls\"",
             "invalid_type")},
    {MSG("{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"a\"}]}"), 400,
     "messages[0].tool_calls[0]",
     OAI_ERR("invalid type for 'messages[0].tool_calls[0]': expected {\\\"id\\\", \\\"type\\\": "
             "\\\"function\\\", \\\"function\\\": {\\\"name\\\", \\\"arguments\\\"}}",
             "\"messages[0].tool_calls[0]\"",
             "invalid_type")},
    {MSG("{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"a\",\"type\":\"function\","
         "\"function\":{\"name\":\"f\",\"arguments\":\"{oops\"}}]}"),
     400, "messages[0].tool_calls[0].function.arguments",
     OAI_ERR("invalid value for 'messages[0].tool_calls[0].function.arguments': expected a JSON "
             "object as a string",
             "\"messages[0].tool_calls[0].function.arguments\"",
             "invalid_value")},
    {MSG("{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"a\",\"type\":\"function\","
         "\"function\":{\"name\":\"f\",\"arguments\":\"[1]\"}}]}"),
     400, "messages[0].tool_calls[0].function.arguments",
     OAI_ERR("invalid value for 'messages[0].tool_calls[0].function.arguments': expected a JSON "
             "object as a string",
             "\"messages[0].tool_calls[0].function.arguments\"",
             "invalid_value")},
    {MSG("{\"role\":\"tool\",\"content\":\"42\"}"), 400, "messages[0].tool_call_id",
     OAI_ERR("missing required parameter: 'messages[0].tool_call_id'",
             "\"messages[0].tool_call_id\"",
             "missing_required_parameter")},
    {MSG("{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":7}"), 400,
     "messages[0].reasoning_content",
     OAI_ERR("invalid type for 'messages[0].reasoning_content': expected a string",
             "\"messages[0].reasoning_content\"",
             "invalid_type")},
    /* sampling */
    {CHAT(",\"temperature\":\"hot\""), 400, "temperature",
     OAI_ERR(
         "invalid type for 'temperature': expected a number", "\"temperature\"", "invalid_type")},
    {CHAT(",\"temperature\":3"), 400, "temperature",
     OAI_ERR("invalid value for 'temperature': 3 is outside [0, 2]",
             "\"temperature\"",
             "invalid_value")},
    {CHAT(",\"temperature\":-0.1"), 400, "temperature",
     OAI_ERR("invalid value for 'temperature': -0.1 is outside [0, 2]",
             "\"temperature\"",
             "invalid_value")},
    {CHAT(",\"top_p\":1.5"), 400, "top_p",
     OAI_ERR("invalid value for 'top_p': 1.5 is outside [0, 1]", "\"top_p\"", "invalid_value")},
    {CHAT(",\"top_p\":true"), 400, "top_p",
     OAI_ERR("invalid type for 'top_p': expected a number", "\"top_p\"", "invalid_type")},
    {CHAT(",\"min_p\":2"), 400, "min_p",
     OAI_ERR("invalid value for 'min_p': 2 is outside [0, 1]", "\"min_p\"", "invalid_value")},
    {CHAT(",\"presence_penalty\":3"), 400, "presence_penalty",
     OAI_ERR("invalid value for 'presence_penalty': 3 is outside [-2, 2]",
             "\"presence_penalty\"",
             "invalid_value")},
    {CHAT(",\"frequency_penalty\":-2.5"), 400, "frequency_penalty",
     OAI_ERR("invalid value for 'frequency_penalty': -2.5 is outside [-2, 2]",
             "\"frequency_penalty\"",
             "invalid_value")},
    {CHAT(",\"repetition_penalty\":0"), 400, "repetition_penalty",
     OAI_ERR("invalid value for 'repetition_penalty': must be > 0",
             "\"repetition_penalty\"",
             "invalid_value")},
    {CHAT(",\"repetition_penalty\":11"), 400, "repetition_penalty",
     OAI_ERR("invalid value for 'repetition_penalty': 11 is outside [0, 10]",
             "\"repetition_penalty\"",
             "invalid_value")},
    {CHAT(",\"seed\":1.5"), 400, "seed",
     OAI_ERR("invalid type for 'seed': expected an integer", "\"seed\"", "invalid_type")},
    {CHAT(",\"seed\":\"7\""), 400, "seed",
     OAI_ERR("invalid type for 'seed': expected an integer", "\"seed\"", "invalid_type")},
    {CHAT(",\"seed\":1e19"), 400, "seed",
     OAI_ERR("invalid value for 'seed': outside the 64-bit integers", "\"seed\"", "invalid_value")},
    {CHAT(",\"seed\":9223372036854775808"), 400, "seed",
     OAI_ERR("invalid value for 'seed': outside the 64-bit integers", "\"seed\"", "invalid_value")},
    {CHAT(",\"top_k\":1.5"), 400, "top_k",
     OAI_ERR("invalid type for 'top_k': expected an integer", "\"top_k\"", "invalid_type")},
    {CHAT(",\"top_k\":-2"), 400, "top_k",
     OAI_ERR(
         "invalid value for 'top_k': -2 is outside [-1, 1000000]", "\"top_k\"", "invalid_value")},
    {CHAT(",\"n\":2"), 400, "n",
     OAI_ERR("invalid value for 'n': only n=1 is supported", "\"n\"", "unsupported_value")},
    {CHAT(",\"n\":0"), 400, "n",
     OAI_ERR("invalid value for 'n': only n=1 is supported", "\"n\"", "unsupported_value")},
    {CHAT(",\"n\":\"1\""), 400, "n",
     OAI_ERR("invalid type for 'n': expected an integer", "\"n\"", "invalid_type")},
    {CHAT(",\"stream\":\"yes\""), 400, "stream",
     OAI_ERR("invalid type for 'stream': expected a boolean", "\"stream\"", "invalid_type")},
    {CHAT(",\"stream_options\":5"), 400, "stream_options",
     OAI_ERR("invalid type for 'stream_options': expected an object",
             "\"stream_options\"",
             "invalid_type")},
    {CHAT(",\"stream_options\":{\"include_usage\":\"y\"}"), 400, "stream_options.include_usage",
     OAI_ERR("invalid type for 'stream_options.include_usage': expected a boolean",
             "\"stream_options.include_usage\"",
             "invalid_type")},
    {CHAT(",\"stop\":5"), 400, "stop",
     OAI_ERR("invalid type for 'stop': expected a string or an array of strings",
             "\"stop\"",
             "invalid_type")},
    {CHAT(",\"stop\":[\"a\",1]"), 400, "stop",
     OAI_ERR("invalid type for 'stop': expected a string or an array of strings",
             "\"stop\"",
             "invalid_type")},
    {CHAT(",\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\",\"12\","
          "\"13\",\"14\",\"15\",\"16\",\"17\"]"),
     400, "stop",
     OAI_ERR("invalid value for 'stop': more than 16 stop strings", "\"stop\"", "invalid_value")},
    {CHAT(",\"user\":5"), 400, "user",
     OAI_ERR("invalid type for 'user': expected a string", "\"user\"", "invalid_type")},
    {CHAT(",\"logit_bias\":{\"50256\":-100}"), 400, "logit_bias",
     OAI_ERR("'logit_bias' is not supported: token biases are not implemented",
             "\"logit_bias\"",
             "unsupported_parameter")},
    {CHAT(",\"logit_bias\":[]"), 400, "logit_bias",
     OAI_ERR(
         "invalid type for 'logit_bias': expected an object", "\"logit_bias\"", "invalid_type")},
    /* max tokens */
    {CHAT(",\"max_tokens\":0"), 400, "max_tokens",
     OAI_ERR("invalid value for 'max_tokens': 0 is outside [1, 1073741824]",
             "\"max_tokens\"",
             "invalid_value")},
    {CHAT(",\"max_tokens\":-1"), 400, "max_tokens",
     OAI_ERR("invalid value for 'max_tokens': -1 is outside [1, 1073741824]",
             "\"max_tokens\"",
             "invalid_value")},
    {CHAT(",\"max_tokens\":\"10\""), 400, "max_tokens",
     OAI_ERR(
         "invalid type for 'max_tokens': expected an integer", "\"max_tokens\"", "invalid_type")},
    {CHAT(",\"max_completion_tokens\":2147483648"), 400, "max_completion_tokens",
     OAI_ERR("invalid value for 'max_completion_tokens': 2147483648 is outside [1, 1073741824]",
             "\"max_completion_tokens\"",
             "invalid_value")},
    /* tools */
    {CHAT(",\"tools\":\"x\""), 400, "tools",
     OAI_ERR("invalid type for 'tools': expected an array of tools", "\"tools\"", "invalid_type")},
    {CHAT(",\"tools\":[5]"), 400, "tools[0]",
     OAI_ERR("invalid type for 'tools[0]': expected an object", "\"tools[0]\"", "invalid_type")},
    {CHAT(",\"tools\":[{\"type\":\"retrieval\"}]"), 400, "tools[0]",
     OAI_ERR("'tools[0].type': only \\\"function\\\" tools are supported",
             "\"tools[0]\"",
             "unsupported_value")},
    {CHAT(",\"tools\":[{\"type\":\"function\"}]"), 400, "tools[0].function",
     OAI_ERR("missing required parameter: 'tools[0].function'",
             "\"tools[0].function\"",
             "missing_required_parameter")},
    {CHAT(",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get weather\"}}]"), 400,
     "tools[0].function.name",
     OAI_ERR("invalid value for 'tools[0].function.name': expected a name of 1 to 64 characters "
             "[a-zA-Z0-9_-]",
             "\"tools[0].function.name\"",
             "invalid_value")},
    {CHAT(",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}},{\"type\":"
          "\"function\",\"function\":{\"name\":\"f\"}}]"),
     400, "tools[1].function.name",
     OAI_ERR("invalid value for 'tools[1].function.name': the tool name \\\"f\\\" is used twice",
             "\"tools[1].function.name\"",
             "invalid_value")},
    {CHAT(
         ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":\"x\"}}]"),
     400, "tools[0].function.parameters",
     OAI_ERR("invalid type for 'tools[0].function.parameters': expected a JSON Schema object",
             "\"tools[0].function.parameters\"",
             "invalid_type")},
    {CHAT(",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":5}}]"),
     400, "tools[0].function.description",
     OAI_ERR("invalid type for 'tools[0].function.description': expected a string",
             "\"tools[0].function.description\"",
             "invalid_type")},
    {CHAT(",\"functions\":[{\"name\":\"f\"}]"), 400, "functions",
     OAI_ERR("'functions' is not supported: deprecated, use 'tools' and 'tool_choice'",
             "\"functions\"",
             "unsupported_parameter")},
    {CHAT(",\"tool_choice\":\"sometimes\""), 400, "tool_choice",
     OAI_ERR("invalid value for 'tool_choice': \\\"sometimes\\\" is not none, auto or required",
             "\"tool_choice\"",
             "invalid_value")},
    {CHAT(",\"tool_choice\":5"), 400, "tool_choice",
     OAI_ERR("invalid type for 'tool_choice': expected a string or an object",
             "\"tool_choice\"",
             "invalid_type")},
    {CHAT(",\"tool_choice\":\"required\""), 400, "tool_choice",
     OAI_ERR(
         "invalid value for 'tool_choice': it needs 'tools'", "\"tool_choice\"", "invalid_value")},
    {CHAT(",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":"
          "{\"type\":\"function\",\"function\":{\"name\":\"g\"}}"),
     400, "tool_choice",
     OAI_ERR("invalid value for 'tool_choice': no tool named \\\"g\\\"",
             "\"tool_choice\"",
             "invalid_value")},
    {CHAT(",\"parallel_tool_calls\":1"), 400, "parallel_tool_calls",
     OAI_ERR("invalid type for 'parallel_tool_calls': expected a boolean",
             "\"parallel_tool_calls\"",
             "invalid_type")},
    /* output format, reasoning, logprobs, modalities */
    {CHAT(",\"response_format\":\"json\""), 400, "response_format",
     OAI_ERR("invalid type for 'response_format': expected {\\\"type\\\": ...}",
             "\"response_format\"",
             "invalid_type")},
    {CHAT(",\"response_format\":{\"type\":\"xml\"}"), 400, "response_format.type",
     OAI_ERR("invalid value for 'response_format.type': \\\"xml\\\" is not text, json_object or "
             "json_schema",
             "\"response_format.type\"",
             "invalid_value")},
    {CHAT(",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\"}}"), 400,
     "response_format.json_schema.schema",
     OAI_ERR("missing required parameter: 'response_format.json_schema.schema' (an object)",
             "\"response_format.json_schema.schema\"",
             "missing_required_parameter")},
    {CHAT(",\"reasoning_effort\":\"extreme\""), 400, "reasoning_effort",
     OAI_ERR("invalid value for 'reasoning_effort': \\\"extreme\\\" is not none, minimal, low, "
             "medium, high or xhigh",
             "\"reasoning_effort\"",
             "invalid_value")},
    {CHAT(",\"logprobs\":\"yes\""), 400, "logprobs",
     OAI_ERR("invalid type for 'logprobs': expected a boolean", "\"logprobs\"", "invalid_type")},
    {CHAT(",\"logprobs\":true,\"top_logprobs\":21"), 400, "top_logprobs",
     OAI_ERR("invalid value for 'top_logprobs': 21 is outside [0, 20]",
             "\"top_logprobs\"",
             "invalid_value")},
    {CHAT(",\"top_logprobs\":3"), 400, "top_logprobs",
     OAI_ERR("invalid value for 'top_logprobs': it needs 'logprobs': true",
             "\"top_logprobs\"",
             "invalid_value")},
    {CHAT(",\"audio\":{\"voice\":\"alloy\"}"), 400, "audio",
     OAI_ERR("'audio' is not supported: shoal answers with text only",
             "\"audio\"",
             "unsupported_parameter")},
    {CHAT(",\"modalities\":[\"text\",\"audio\"]"), 400, "modalities",
     OAI_ERR("'modalities' is not supported: only [\\\"text\\\"] is available",
             "\"modalities\"",
             "unsupported_parameter")},
};

static void chat_errors(void **state)
{
    (void)state;
    assert_int_equal(run_bad_cases(api_openai_parse_chat, API_DIALECT_OPENAI, chat_bad,
                                   sizeof chat_bad / sizeof chat_bad[0]),
                     0);
}

static void long_stop_string(void **state)
{
    char body[2048], stop[600];
    struct api_gen_request req;
    struct api_error e;

    (void)state;
    memset(stop, 'a', 513);
    stop[513] = '\0';
    snprintf(body, sizeof body, CHAT(",\"stop\":\"%s\""), stop);
    assert_int_equal(api_openai_parse_chat(body, strlen(body), &req, &e), 400);
    assert_string_equal(e.param, "stop");
    assert_string_equal(e.message,
                        "invalid value for 'stop': a stop string is longer than 512 bytes");
    stop[512] = '\0'; /* exactly at the limit is fine */
    snprintf(body, sizeof body, CHAT(",\"stop\":\"%s\""), stop);
    assert_int_equal(api_openai_parse_chat(body, strlen(body), &req, &e), 0);
    assert_int_equal(req.n_stop, 1);
    api_gen_request_clear(&req);
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
    struct api_gen_request r = parse_ok(api_openai_parse_chat, CHAT(""));

    (void)state;
    assert_int_equal(r.dialect, API_DIALECT_OPENAI);
    assert_int_equal(r.kind, API_GEN_CHAT);
    assert_string_equal(r.model, "m");
    assert_false(r.stream);
    assert_false(r.include_usage);
    assert_int_equal(r.max_tokens, API_MAX_TOKENS_UNSET);
    assert_int_equal(r.n_stop, 0);
    assert_null(r.tools);
    assert_int_equal(r.tool_choice, API_TOOL_CHOICE_NONE);
    assert_true(r.parallel_tool_calls);
    assert_int_equal(r.format, API_FORMAT_TEXT);
    assert_int_equal(r.think, API_THINK_UNSET);
    assert_false(r.logprobs);
    assert_false(r.sampling.has_temperature || r.sampling.has_top_p || r.sampling.has_top_k ||
                 r.sampling.has_min_p || r.sampling.has_seed || r.sampling.has_repetition_penalty ||
                 r.sampling.has_presence_penalty || r.sampling.has_frequency_penalty);
    assert_messages(&r, "[{\"role\":\"user\",\"content\":\"hi\"}]");
    api_gen_request_clear(&r);
}

static void chat_every_parameter(void **state)
{
    struct api_gen_request r = parse_ok(
        api_openai_parse_chat,
        CHAT(",\"temperature\":0.5,\"top_p\":0.9,\"top_k\":40,\"min_p\":0.05,"
             "\"presence_penalty\":0.1,\"frequency_penalty\":-0.2,\"repetition_penalty\":1.1,"
             "\"seed\":42,\"stop\":\"\\n\\n\",\"max_tokens\":50,\"max_completion_tokens\":100,"
             "\"logprobs\":true,\"top_logprobs\":3,\"stream\":true,"
             "\"stream_options\":{\"include_usage\":true},\"user\":\"u1\",\"n\":1,"
             "\"response_format\":{\"type\":\"json_object\"},\"reasoning_effort\":\"minimal\","
             "\"parallel_tool_calls\":false,\"logit_bias\":{},\"store\":false,"
             "\"metadata\":{\"a\":\"b\"}"));
    const struct api_sampling *s = &r.sampling;

    (void)state;
    assert_true(s->has_temperature && s->temperature == 0.5);
    assert_true(s->has_top_p && s->top_p == 0.9);
    assert_true(s->has_top_k && s->top_k == 40);
    assert_true(s->has_min_p && s->min_p == 0.05);
    assert_true(s->has_presence_penalty && s->presence_penalty == 0.1);
    assert_true(s->has_frequency_penalty && s->frequency_penalty == -0.2);
    assert_true(s->has_repetition_penalty && s->repetition_penalty == 1.1);
    assert_true(s->has_seed && s->seed == 42);
    assert_int_equal(r.n_stop, 1);
    assert_string_equal(r.stop[0], "\n\n");
    assert_int_equal(r.max_tokens, 100); /* max_completion_tokens wins */
    assert_true(r.logprobs);
    assert_int_equal(r.top_logprobs, 3);
    assert_true(r.stream);
    assert_true(r.include_usage);
    assert_true(r.ignored & API_IGNORED_USER);
    assert_int_equal(r.format, API_FORMAT_JSON);
    assert_int_equal(r.think, API_THINK_ON);
    assert_string_equal(r.think_level, "low");
    assert_false(r.parallel_tool_calls);
    api_gen_request_clear(&r);
}

static void chat_nulls_are_unset(void **state)
{
    struct api_gen_request r = parse_ok(
        api_openai_parse_chat,
        CHAT(",\"temperature\":null,\"top_p\":null,\"seed\":null,\"stop\":null,\"n\":null,"
             "\"max_tokens\":null,\"tools\":null,\"tool_choice\":null,\"response_format\":null,"
             "\"stream\":null,\"stream_options\":null,\"logprobs\":null,\"top_logprobs\":null,"
             "\"reasoning_effort\":null,\"user\":null"));

    (void)state;
    assert_false(r.sampling.has_temperature || r.sampling.has_top_p || r.sampling.has_seed);
    assert_int_equal(r.n_stop, 0);
    assert_int_equal(r.max_tokens, API_MAX_TOKENS_UNSET);
    assert_null(r.tools);
    assert_false(r.stream);
    assert_int_equal(r.ignored, 0);
    api_gen_request_clear(&r);
}

static void chat_boundaries(void **state)
{
    struct api_gen_request r;

    (void)state;
    r = parse_ok(api_openai_parse_chat, CHAT(",\"temperature\":0,\"top_p\":0,\"top_k\":-1,"
                                             "\"seed\":-1,\"max_tokens\":1,\"top_logprobs\":0"));
    assert_true(r.sampling.temperature == 0 && r.sampling.top_p == 0);
    assert_true(r.sampling.has_top_k && r.sampling.top_k == 0); /* -1: off */
    assert_true(r.sampling.seed == UINT64_MAX);
    assert_int_equal(r.max_tokens, 1);
    api_gen_request_clear(&r);
    r = parse_ok(api_openai_parse_chat, CHAT(",\"temperature\":2,\"top_p\":1,\"seed\":"
                                             "-9223372036854775808,\"max_tokens\":1073741824,"
                                             "\"logprobs\":true,\"top_logprobs\":20"));
    assert_true(r.sampling.temperature == 2 && r.sampling.top_p == 1);
    assert_true(r.sampling.seed == (uint64_t)1 << 63);
    assert_int_equal(r.max_tokens, 1 << 30);
    assert_int_equal(r.top_logprobs, 20);
    api_gen_request_clear(&r);
    /* 16 stop strings is the cap; empty ones are skipped */
    r = parse_ok(api_openai_parse_chat,
                 CHAT(",\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\","
                      "\"11\",\"12\",\"13\",\"14\",\"15\",\"16\",\"\"]"));
    assert_int_equal(r.n_stop, 16);
    assert_string_equal(r.stop[15], "16");
    api_gen_request_clear(&r);
}

static void chat_messages_normalized(void **state)
{
    struct api_gen_request r = parse_ok(
        api_openai_parse_chat,
        MSG("{\"role\":\"developer\",\"content\":\"Be brief.\"},"
            "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Weather\"},"
            "{\"type\":\"text\",\"text\":\"in Paris?\"}],\"name\":\"ann\"},"
            "{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"Use the tool.\","
            "\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
            "\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},"
            "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"18C\"},"
            "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"18C.\"},"
            "{\"type\":\"refusal\",\"refusal\":\"\"}]}"));

    (void)state;
    assert_messages(
        &r, "[{\"role\":\"system\",\"content\":\"Be brief.\"},"
            "{\"role\":\"user\",\"content\":\"Weather\\nin Paris?\",\"name\":\"ann\"},"
            "{\"role\":\"assistant\",\"content\":\"\",\"reasoning_content\":\"Use the tool.\","
            "\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
            "\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}}]},"
            "{\"role\":\"tool\",\"content\":\"18C\",\"tool_call_id\":\"call_1\","
            "\"name\":\"get_weather\"},"
            "{\"role\":\"assistant\",\"content\":\"18C.\\n\"}]");
    api_gen_request_clear(&r);
}

static void chat_tools(void **state)
{
    static const char tools[] =
        ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"description\":\"Weather now\",\"parameters\":{\"type\":\"object\"}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"get-time\"}}]";
    char body[1024];
    struct api_gen_request r;

    (void)state;
    snprintf(body, sizeof body, CHAT("%s"), tools);
    r = parse_ok(api_openai_parse_chat, body);
    assert_non_null(r.tools);
    assert_int_equal(cJSON_GetArraySize(r.tools), 2);
    assert_int_equal(r.tool_choice, API_TOOL_CHOICE_AUTO);
    api_gen_request_clear(&r);
    snprintf(body, sizeof body, CHAT("%s,\"tool_choice\":\"none\""), tools);
    r = parse_ok(api_openai_parse_chat, body);
    assert_int_equal(r.tool_choice, API_TOOL_CHOICE_NONE);
    api_gen_request_clear(&r);
    snprintf(body, sizeof body, CHAT("%s,\"tool_choice\":\"required\""), tools);
    r = parse_ok(api_openai_parse_chat, body);
    assert_int_equal(r.tool_choice, API_TOOL_CHOICE_REQUIRED);
    api_gen_request_clear(&r);
    snprintf(body, sizeof body,
             CHAT("%s,\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":"
                  "\"get-time\"}}"),
             tools);
    r = parse_ok(api_openai_parse_chat, body);
    assert_int_equal(r.tool_choice, API_TOOL_CHOICE_FUNCTION);
    assert_string_equal(r.tool_choice_name, "get-time");
    api_gen_request_clear(&r);
    /* "auto" without tools stays none; an empty tools list is no tools */
    r = parse_ok(api_openai_parse_chat, CHAT(",\"tools\":[],\"tool_choice\":\"auto\""));
    assert_null(r.tools);
    assert_int_equal(r.tool_choice, API_TOOL_CHOICE_NONE);
    api_gen_request_clear(&r);
}

static void chat_response_format_and_reasoning(void **state)
{
    struct api_gen_request r;

    (void)state;
    r = parse_ok(api_openai_parse_chat,
                 CHAT(",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":"
                      "\"w\",\"schema\":{\"type\":\"object\"},\"strict\":true}},"
                      "\"reasoning_effort\":\"none\""));
    assert_int_equal(r.format, API_FORMAT_JSON_SCHEMA);
    assert_true(cJSON_IsObject(r.json_schema));
    assert_int_equal(r.think, API_THINK_OFF);
    api_gen_request_clear(&r);
    r = parse_ok(api_openai_parse_chat, CHAT(",\"response_format\":{\"type\":\"text\"},"
                                             "\"reasoning_effort\":\"xhigh\""));
    assert_int_equal(r.format, API_FORMAT_TEXT);
    assert_string_equal(r.think_level, "max");
    api_gen_request_clear(&r);
}

static const struct bad_case completion_bad[] = {
    {"{\"model\":\"m\"}", 400, "prompt",
     OAI_ERR("missing required parameter: 'prompt'", "\"prompt\"", "missing_required_parameter")},
    {"{\"model\":\"m\",\"prompt\":5}", 400, "prompt",
     OAI_ERR("invalid type for 'prompt': expected a string", "\"prompt\"", "invalid_type")},
    {"{\"model\":\"m\",\"prompt\":[\"a\",\"b\"]}", 400, "prompt",
     OAI_ERR("'prompt' is not supported: only one prompt string (no batches, no token id arrays)",
             "\"prompt\"",
             "unsupported_parameter")},
    {"{\"model\":\"m\",\"prompt\":[1,2,3]}", 400, "prompt",
     OAI_ERR("'prompt' is not supported: only one prompt string (no batches, no token id arrays)",
             "\"prompt\"",
             "unsupported_parameter")},
    {CMPL(",\"suffix\":\"end\""), 400, "suffix",
     OAI_ERR("'suffix' is not supported: fill-in-the-middle is not implemented",
             "\"suffix\"",
             "unsupported_parameter")},
    {CMPL(",\"echo\":true"), 400, "echo",
     OAI_ERR(
         "'echo' is not supported: the prompt is not echoed", "\"echo\"", "unsupported_parameter")},
    {CMPL(",\"best_of\":3"), 400, "best_of",
     OAI_ERR("invalid value for 'best_of': only best_of=1 is supported",
             "\"best_of\"",
             "unsupported_value")},
    {CMPL(",\"logprobs\":true"), 400, "logprobs",
     OAI_ERR("invalid type for 'logprobs': expected an integer", "\"logprobs\"", "invalid_type")},
    {CMPL(",\"logprobs\":21"), 400, "logprobs",
     OAI_ERR(
         "invalid value for 'logprobs': 21 is outside [0, 20]", "\"logprobs\"", "invalid_value")},
    {CMPL(",\"temperature\":2.5"), 400, "temperature",
     OAI_ERR("invalid value for 'temperature': 2.5 is outside [0, 2]",
             "\"temperature\"",
             "invalid_value")},
    {CMPL(",\"n\":4"), 400, "n",
     OAI_ERR("invalid value for 'n': only n=1 is supported", "\"n\"", "unsupported_value")},
    {CMPL(",\"max_tokens\":0"), 400, "max_tokens",
     OAI_ERR("invalid value for 'max_tokens': 0 is outside [1, 1073741824]",
             "\"max_tokens\"",
             "invalid_value")},
};

static void completion_errors(void **state)
{
    (void)state;
    assert_int_equal(run_bad_cases(api_openai_parse_completion, API_DIALECT_OPENAI, completion_bad,
                                   sizeof completion_bad / sizeof completion_bad[0]),
                     0);
}

static void completion_parameters(void **state)
{
    struct api_gen_request r;

    (void)state;
    r = parse_ok(api_openai_parse_completion, CMPL(""));
    assert_int_equal(r.kind, API_GEN_COMPLETION);
    assert_string_equal(r.prompt, "Once");
    assert_null(r.messages);
    assert_int_equal(r.max_tokens, 16); /* OpenAI's legacy default */
    assert_false(r.logprobs);
    api_gen_request_clear(&r);
    r = parse_ok(api_openai_parse_completion,
                 "{\"model\":\"m\",\"prompt\":[\"Once upon\"],\"max_tokens\":200,\"logprobs\":2,"
                 "\"stop\":[\"\\n\",\"The end\"],\"seed\":7,\"stream\":true,\"suffix\":\"\","
                 "\"echo\":false,\"best_of\":1,\"stream_options\":{\"include_usage\":true}}");
    assert_string_equal(r.prompt, "Once upon");
    assert_int_equal(r.max_tokens, 200);
    assert_true(r.logprobs);
    assert_int_equal(r.top_logprobs, 2);
    assert_int_equal(r.n_stop, 2);
    assert_string_equal(r.stop[1], "The end");
    assert_true(r.sampling.has_seed && r.sampling.seed == 7);
    assert_true(r.stream && r.include_usage);
    api_gen_request_clear(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chat_errors),
        cmocka_unit_test(long_stop_string),
        cmocka_unit_test(chat_defaults),
        cmocka_unit_test(chat_every_parameter),
        cmocka_unit_test(chat_nulls_are_unset),
        cmocka_unit_test(chat_boundaries),
        cmocka_unit_test(chat_messages_normalized),
        cmocka_unit_test(chat_tools),
        cmocka_unit_test(chat_response_format_and_reasoning),
        cmocka_unit_test(completion_errors),
        cmocka_unit_test(completion_parameters),
    };
    return cmocka_run_group_tests_name("api/openai", tests, NULL, NULL);
}
