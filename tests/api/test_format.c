/* tests/api/test_format.c: response formatting (api/openai_fmt.c,
 * api/ollama_fmt.c, api/errors.c, api/text.c): exact JSON for fixed inputs,
 * SSE and NDJSON framing, UTF-8 cleaning, timestamps, model names. */
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "lib/test.h"

/* Compares obj's compact JSON with want and frees obj. */
static void assert_json(cJSON *obj, const char *want)
{
    char *got;

    assert_non_null(obj);
    got = cJSON_PrintUnformatted(obj);
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        print_error("\n got  %s\n want %s\n", got, want);
    assert_string_equal(got, want);
    free(got);
    cJSON_Delete(obj);
}

static const struct api_resp_meta oai = {"chatcmpl-abc", "kjv-llama-16m", 1700000000, NULL};
static const struct api_resp_meta oll = {NULL, "kjv:16m", 0, "2024-05-01T10:00:00.5Z"};
static const struct api_gen_result res = {API_FINISH_STOP, 7, 3, 1000, 2000, 3000};
static const struct api_tool_call weather = {"call_1", "get_weather", "{\"city\":\"Paris\"}"};
static const struct api_top_logprob tops[] = {{"Hi", 2, -0.25}, {"Ho", 2, -1.5}};
static const struct api_token_logprob hi = {"Hi", 2, -0.25, tops, 2};

#define HEAD_CHAT                                                                                  \
    "{\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion\",\"created\":1700000000,"              \
    "\"model\":\"kjv-llama-16m\","
#define HEAD_CHUNK                                                                                 \
    "{\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion.chunk\",\"created\":"                   \
    "1700000000,\"model\":\"kjv-llama-16m\","
#define USAGE "\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}"
#define METRICS                                                                                    \
    "\"total_duration\":10000,\"load_duration\":1000,\"prompt_eval_count\":7,"                     \
    "\"prompt_eval_duration\":2000,\"eval_count\":3,\"eval_duration\":3000"
#define DETAILS                                                                                    \
    "\"details\":{\"parent_model\":\"\",\"format\":\"safetensors\",\"family\":"                    \
    "\"llama\",\"families\":[\"llama\"],\"parameter_size\":\"16M\","                               \
    "\"quantization_level\":\"F32\"}"

static void openai_chat_completion(void **state)
{
    struct api_oai_message msg = {"Hi there", "Hmm", NULL};
    cJSON *tools = cJSON_CreateArray(), *lps = cJSON_CreateArray();

    (void)state;
    assert_json(api_oai_chat_completion(&oai, &msg, NULL, API_FINISH_STOP, &res), HEAD_CHAT
                "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                "\"content\":\"Hi there\",\"refusal\":null,\"reasoning_content\":\"Hmm\"},"
                "\"logprobs\":null,\"finish_reason\":\"stop\"}]," USAGE "}");
    /* a turn of tool calls only: content null, finish tool_calls */
    cJSON_AddItemToArray(tools, api_oai_tool_call(&weather, 0, false));
    msg = (struct api_oai_message){NULL, "", tools};
    assert_json(api_oai_chat_completion(&oai, &msg, NULL, API_FINISH_TOOL_CALLS, &res),
                HEAD_CHAT "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                          "\"content\":null,\"refusal\":null,\"tool_calls\":[{\"id\":\"call_1\","
                          "\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                          "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},\"logprobs\":null,"
                          "\"finish_reason\":\"tool_calls\"}]," USAGE "}");
    /* logprobs in OpenAI's shape */
    cJSON_AddItemToArray(lps, api_oai_logprob(&hi));
    msg = (struct api_oai_message){"Hi", NULL, NULL};
    assert_json(api_oai_chat_completion(&oai, &msg, lps, API_FINISH_LENGTH, &res), HEAD_CHAT
                "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                "\"content\":\"Hi\",\"refusal\":null},\"logprobs\":{\"content\":["
                "{\"token\":\"Hi\",\"logprob\":-0.25,\"bytes\":[72,105],"
                "\"top_logprobs\":[{\"token\":\"Hi\",\"logprob\":-0.25,\"bytes\":[72,105]},"
                "{\"token\":\"Ho\",\"logprob\":-1.5,\"bytes\":[72,111]}]}],"
                "\"refusal\":null},\"finish_reason\":\"length\"}]," USAGE "}");
    cJSON_Delete(tools);
    cJSON_Delete(lps);
}

static void openai_chunks(void **state)
{
    struct api_oai_delta role = {true, NULL, NULL, NULL}, text = {false, "Hel", NULL, NULL};
    struct api_oai_delta both = {true, "Hel", "Hmm", NULL}, none = {false, NULL, NULL, NULL};
    struct api_oai_delta call = {false, NULL, NULL, NULL};
    enum api_finish len = API_FINISH_LENGTH;
    cJSON *tools = cJSON_CreateArray();

    (void)state;
    assert_json(api_oai_chat_chunk(&oai, &role, NULL, NULL, false),
                HEAD_CHUNK "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
                           "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}");
    assert_json(api_oai_chat_chunk(&oai, &text, NULL, NULL, true),
                HEAD_CHUNK "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},"
                           "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}");
    assert_json(api_oai_chat_chunk(&oai, &both, NULL, NULL, false),
                HEAD_CHUNK "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
                           "\"content\":\"Hel\",\"reasoning_content\":\"Hmm\"},\"logprobs\":null,"
                           "\"finish_reason\":null}]}");
    assert_json(api_oai_chat_chunk(&oai, &none, NULL, &len, false),
                HEAD_CHUNK "\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
                           "\"finish_reason\":\"length\"}]}");
    cJSON_AddItemToArray(tools, api_oai_tool_call(&weather, 2, true));
    call.tool_calls = tools;
    assert_json(api_oai_chat_chunk(&oai, &call, NULL, NULL, false),
                HEAD_CHUNK "\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":2,"
                           "\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
                           "\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},"
                           "\"logprobs\":null,\"finish_reason\":null}]}");
    assert_json(api_oai_usage_chunk(&oai, true, &res), HEAD_CHUNK "\"choices\":[]," USAGE "}");
    cJSON_Delete(tools);
}

static void openai_text_completion(void **state)
{
    static const struct api_top_logprob alt[] = {{"up", 2, -0.5}, {"down", 4, -2}};
    static const struct api_token_logprob lps[] = {{"up", 2, -0.5, alt, 2},
                                                   {"on", 2, -0.25, NULL, 0}};
    struct api_resp_meta m = {"cmpl-abc", "kjv-llama-16m", 1700000000, NULL};
    enum api_finish tc = API_FINISH_TOOL_CALLS;
    cJSON *legacy = api_oai_legacy_logprobs_new();
    uint64_t off = 0;

    (void)state;
#define HEAD_TEXT                                                                                  \
    "{\"id\":\"cmpl-abc\",\"object\":\"text_completion\",\"created\":1700000000,\"model\":"        \
    "\"kjv-llama-16m\","
    assert_json(api_oai_text_completion(&m, "upon a time", NULL, API_FINISH_LENGTH, &res),
                HEAD_TEXT "\"choices\":[{\"text\":\"upon a time\",\"index\":0,\"logprobs\":null,"
                          "\"finish_reason\":\"length\"}]," USAGE "}");
    assert_int_equal(api_oai_legacy_logprobs_add(legacy, lps, 2, &off), 0);
    assert_int_equal(off, 4);
    assert_json(api_oai_text_chunk(&m, "upon", legacy, NULL, true),
                HEAD_TEXT "\"choices\":[{\"text\":\"upon\",\"index\":0,\"logprobs\":{\"tokens\":"
                          "[\"up\",\"on\"],\"token_logprobs\":[-0.5,-0.25],\"top_logprobs\":"
                          "[{\"up\":-0.5,\"down\":-2},{}],\"text_offset\":[0,2]},"
                          "\"finish_reason\":null}],\"usage\":null}");
    /* legacy completions know no tool_calls reason */
    assert_json(api_oai_text_chunk(&m, "", NULL, &tc, false),
                HEAD_TEXT "\"choices\":[{\"text\":\"\",\"index\":0,\"logprobs\":null,"
                          "\"finish_reason\":\"stop\"}]}");
    assert_json(api_oai_usage_chunk(&m, false, &res), HEAD_TEXT "\"choices\":[]," USAGE "}");
    cJSON_Delete(legacy);
}

static struct api_model_info model_fixture(void)
{
    static const char *const aliases[] = {"kjv:16m"};
    static const struct api_sampling defaults = {
        .has_temperature = true, .temperature = 0.7, .has_top_p = true, .top_p = 0.9};
    struct api_model_info mi = {0};

    mi.id = "kjv-llama-16m";
    mi.aliases = aliases;
    mi.n_aliases = 1;
    mi.family = "llama";
    mi.format = "safetensors";
    mi.quantization = "F32";
    mi.digest = "d1";
    mi.chat_template = "{{ messages }}";
    mi.defaults = &defaults;
    mi.size_bytes = 64000000;
    mi.n_params = 16000000;
    mi.modified_unix = 1700000000;
    mi.context_length = 2048;
    mi.embedding_length = 256;
    mi.n_layers = 8;
    mi.caps = API_CAP_COMPLETION | API_CAP_TOOLS | API_CAP_THINKING;
    mi.loaded = true;
    return mi;
}

static void openai_models(void **state)
{
    struct api_model_info mi[2] = {model_fixture(), model_fixture()};

    (void)state;
    mi[1].id = "Qwen/Qwen3-0.6B";
    assert_json(api_oai_model(&mi[0]), "{\"id\":\"kjv-llama-16m\",\"object\":\"model\","
                                       "\"created\":1700000000,\"owned_by\":\"shoal\"}");
    assert_json(api_oai_model_list(mi, 2),
                "{\"object\":\"list\",\"data\":[{\"id\":\"kjv-llama-16m\",\"object\":\"model\","
                "\"created\":1700000000,\"owned_by\":\"shoal\"},{\"id\":\"Qwen/Qwen3-0.6B\","
                "\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"shoal\"}]}");
    assert_json(api_oai_model_list(mi, 0), "{\"object\":\"list\",\"data\":[]}");
}

static void error_bodies(void **state)
{
    struct api_error e;

    (void)state;
    api_error_set(&e, 503, "server_busy", NULL, "the queue of %s is full", "m");
    assert_json(api_error_body(API_DIALECT_OPENAI, &e),
                "{\"error\":{\"message\":\"the queue of m is full\",\"type\":\"server_error\","
                "\"param\":null,\"code\":\"server_busy\"}}");
    assert_json(api_error_body(API_DIALECT_OLLAMA, &e), "{\"error\":\"the queue of m is full\"}");
    assert_json(api_error_body(API_DIALECT_PLAIN, &e), "{\"error\":\"the queue of m is full\"}");
    api_error_set(&e, 404, NULL, "model", "no \"x\"");
    assert_json(api_error_body(API_DIALECT_OPENAI, &e),
                "{\"error\":{\"message\":\"no \\\"x\\\"\",\"type\":\"invalid_request_error\","
                "\"param\":\"model\",\"code\":null}}");
    e.type = "custom_type";
    assert_json(api_error_body(API_DIALECT_OPENAI, &e),
                "{\"error\":{\"message\":\"no \\\"x\\\"\",\"type\":\"custom_type\","
                "\"param\":\"model\",\"code\":null}}");
    /* a message cut inside a character, quoting a client's bad bytes */
    api_error_set(&e, 400, NULL, NULL, "role \"%s\" \xc3", "\xff");
    assert_json(api_error_body(API_DIALECT_OLLAMA, &e),
                "{\"error\":\"role \\\"\xef\xbf\xbd\\\" \xef\xbf\xbd\"}");
    assert_string_equal(api_openai_error_type(401), "invalid_request_error");
    assert_string_equal(api_openai_error_type(413), "invalid_request_error");
    assert_string_equal(api_openai_error_type(500), "server_error");
}

static void status_mapping(void **state)
{
    static const int map[][2] = {
        {SH_OK, 200},           {SH_EINVAL, 400},     {SH_EMALFORMED, 400}, {SH_ERANGE, 400},
        {SH_EUNSUPPORTED, 400}, {SH_EUNAUTH, 401},    {SH_ENOTFOUND, 404},  {SH_ETOOBIG, 413},
        {SH_EBUSY, 503},        {SH_ENOTLEADER, 503}, {SH_ETIMEOUT, 504},   {SH_ENOMEM, 500},
        {SH_EIO, 500},          {SH_ECLOSED, 500},    {SH_EINTERNAL, 500},  {999, 500}};

    (void)state;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        assert_int_equal(api_status_for_code(map[i][0]), map[i][1]);
    assert_string_equal(api_finish_openai(API_FINISH_TOOL_CALLS), "tool_calls");
    assert_string_equal(api_finish_ollama(API_FINISH_TOOL_CALLS), "stop");
    assert_string_equal(api_finish_ollama(API_FINISH_LENGTH), "length");
}

static void framing(void **state)
{
    struct sh_strbuf sb;
    cJSON *o = cJSON_Parse("{\"a\":\"x\\ny\"}");

    (void)state;
    sh_strbuf_init(&sb, 1 << 10);
    assert_int_equal(api_sse_frame(&sb, o), 0);
    assert_int_equal(api_sse_done(&sb), 0);
    assert_int_equal(api_ndjson_line(&sb, o), 0);
    /* JSON escapes the newline, so a frame is one line */
    assert_string_equal(sb.buf, "data: {\"a\":\"x\\ny\"}\n\ndata: [DONE]\n\n{\"a\":\"x\\ny\"}\n");
    sh_strbuf_free(&sb);
    sh_strbuf_init(&sb, 8); /* a cap too small: the frame fails, nothing half-written */
    assert_int_equal(api_sse_frame(&sb, o), SH_ETOOBIG);
    assert_int_equal(sb.len, 0);
    sh_strbuf_free(&sb);
    cJSON_Delete(o);
}

static void ollama_generation(void **state)
{
    struct api_oll_message msg = {"Hel", NULL, NULL};
    struct api_gen_result len = res;
    cJSON *tools = cJSON_CreateArray(), *lps = cJSON_CreateArray();
    struct api_token_logprob bare = hi;

    (void)state;
#define OLL_HEAD "{\"model\":\"kjv:16m\",\"created_at\":\"2024-05-01T10:00:00.5Z\","
    assert_json(api_oll_chat_line(&oll, &msg, NULL), OLL_HEAD
                "\"message\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"done\":false}");
    msg = (struct api_oll_message){NULL, "Hmm", NULL};
    assert_json(api_oll_chat_line(&oll, &msg, NULL),
                OLL_HEAD "\"message\":{\"role\":\"assistant\",\"content\":\"\",\"thinking\":"
                         "\"Hmm\"},\"done\":false}");
    cJSON_AddItemToArray(tools, api_oll_tool_call(&weather, 0));
    msg = (struct api_oll_message){"", "Use it.", tools};
    assert_json(api_oll_chat_final(&oll, &msg, NULL, &res, 10000),
                OLL_HEAD "\"message\":{\"role\":\"assistant\",\"content\":\"\",\"thinking\":"
                         "\"Use it.\",\"tool_calls\":[{\"id\":\"call_1\",\"function\":{\"index\":"
                         "0,\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}}]},"
                         "\"done\":true,\"done_reason\":\"stop\"," METRICS "}");
    msg = (struct api_oll_message){"", NULL, NULL};
    assert_json(api_oll_chat_final(&oll, &msg, NULL, NULL, 0),
                OLL_HEAD "\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,"
                         "\"done_reason\":\"load\"}");
    bare.n_top = 0;
    cJSON_AddItemToArray(lps, api_oll_logprob(&bare));
    cJSON_AddItemToArray(lps, api_oll_logprob(&hi));
    assert_json(api_oll_generate_line(&oll, "Hi", NULL, lps),
                OLL_HEAD "\"response\":\"Hi\",\"done\":false,\"logprobs\":[{\"token\":\"Hi\","
                         "\"logprob\":-0.25,\"bytes\":[72,105]},{\"token\":\"Hi\",\"logprob\":"
                         "-0.25,\"bytes\":[72,105],\"top_logprobs\":[{\"token\":\"Hi\","
                         "\"logprob\":-0.25,\"bytes\":[72,105]},{\"token\":\"Ho\",\"logprob\":"
                         "-1.5,\"bytes\":[72,111]}]}]}");
    len.finish = API_FINISH_LENGTH;
    assert_json(api_oll_generate_final(&oll, "", NULL, NULL, &len, 10000),
                OLL_HEAD "\"response\":\"\",\"done\":true,\"done_reason\":\"length\"," METRICS "}");
    assert_json(api_oll_generate_final(&oll, "Because.", "Hmm", NULL, &res, 10000),
                OLL_HEAD "\"response\":\"Because.\",\"thinking\":\"Hmm\",\"done\":true,"
                         "\"done_reason\":\"stop\"," METRICS "}");
    cJSON_Delete(tools);
    cJSON_Delete(lps);
}

static void ollama_tool_call_arguments(void **state)
{
    struct api_tool_call bad = {NULL, "f", "[1"}, none = {NULL, "f", NULL};

    (void)state;
    /* not an object: sent as the string rather than dropped */
    assert_json(api_oll_tool_call(&bad, 3),
                "{\"function\":{\"index\":3,\"name\":\"f\",\"arguments\":\"[1\"}}");
    assert_json(api_oll_tool_call(&none, 0),
                "{\"function\":{\"index\":0,\"name\":\"f\",\"arguments\":{}}}");
}

static void ollama_listings(void **state)
{
    struct api_model_info mi[2] = {model_fixture(), model_fixture()};

    (void)state;
    mi[1].id = "test/slow";
    mi[1].loaded = false;
    assert_json(
        api_oll_tags(mi, 2),
        "{\"models\":[{\"name\":\"kjv-llama-16m:latest\",\"model\":\"kjv-llama-16m:latest\","
        "\"modified_at\":\"2023-11-14T22:13:20Z\",\"size\":64000000,\"digest\":\"d1\"," DETAILS
        "},{\"name\":\"test/slow:latest\",\"model\":\"test/slow:latest\","
        "\"modified_at\":\"2023-11-14T22:13:20Z\",\"size\":64000000,\"digest\":\"d1\"," DETAILS
        "}]}");
    assert_json(
        api_oll_ps(mi, 2),
        "{\"models\":[{\"name\":\"kjv-llama-16m:latest\",\"model\":\"kjv-llama-16m:latest\","
        "\"size\":64000000,\"digest\":\"d1\"," DETAILS ",\"expires_at\":"
        "\"9999-12-31T23:59:59Z\",\"size_vram\":0,\"context_length\":2048}]}");
    mi[0].expires_unix = 1700000300;
    mi[0].size_vram = 5;
    assert_json(
        api_oll_ps(mi, 1),
        "{\"models\":[{\"name\":\"kjv-llama-16m:latest\",\"model\":\"kjv-llama-16m:latest\","
        "\"size\":64000000,\"digest\":\"d1\"," DETAILS ",\"expires_at\":"
        "\"2023-11-14T22:18:20Z\",\"size_vram\":5,\"context_length\":2048}]}");
    assert_json(api_oll_version("0.1.0"), "{\"version\":\"0.1.0\"}");
}

static void ollama_show(void **state)
{
    struct api_model_info mi = model_fixture();

    (void)state;
    assert_json(api_oll_show(&mi, false),
                "{\"license\":\"\",\"modelfile\":\"# Modelfile generated by shoal\\nFROM "
                "kjv-llama-16m\\nTEMPLATE \\\"\\\"\\\"{{ messages }}\\\"\\\"\\\"\\nPARAMETER "
                "temperature                    0.7\\nPARAMETER top_p                          "
                "0.9\\n\",\"parameters\":\"temperature                    0.7\\ntop_p           "
                "               0.9\",\"template\":\"{{ messages }}\"," DETAILS ",\"model_info\":"
                "{\"general.architecture\":\"llama\",\"general.basename\":\"kjv-llama-16m\","
                "\"general.parameter_count\":16000000,\"llama.context_length\":2048,"
                "\"llama.embedding_length\":256,\"llama.block_count\":8},\"capabilities\":"
                "[\"completion\",\"tools\",\"thinking\"],\"modified_at\":"
                "\"2023-11-14T22:13:20Z\"}");
    mi.defaults = NULL;
    mi.chat_template = NULL;
    mi.caps = API_CAP_COMPLETION;
    mi.family = NULL;
    mi.context_length = 0;
    mi.embedding_length = 0;
    mi.n_layers = 0;
    assert_json(api_oll_show(&mi, true),
                "{\"license\":\"\",\"modelfile\":\"# Modelfile generated by shoal\\nFROM "
                "kjv-llama-16m\\n\",\"parameters\":\"\",\"template\":\"\",\"details\":"
                "{\"parent_model\":\"\",\"format\":\"safetensors\",\"family\":\"\",\"families\":"
                "[],\"parameter_size\":\"16M\",\"quantization_level\":\"F32\"},\"model_info\":"
                "{\"general.architecture\":\"\",\"general.basename\":\"kjv-llama-16m\","
                "\"general.parameter_count\":16000000},\"capabilities\":[\"completion\"],"
                "\"modified_at\":\"2023-11-14T22:13:20Z\"}");
}

static void utf8_cleaning(void **state)
{
    static const struct {
        const char *in;
        size_t len;
        const char *want;
    } cases[] = {
        {"plain", 5, "plain"},
        {"a\xff"
         "b",
         3,
         "a\xef\xbf\xbd"
         "b"},
        {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd"},                 /* overlong '/' */
        {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* a surrogate */
        {"\xf4\x90\x80\x80", 4,
         "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF */
        {"\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80"},          /* U+1F600 stays */
        {"\xc3\xa9\xe2\x82\xac", 5, "\xc3\xa9\xe2\x82\xac"},  /* é€ */
        {"a\0b", 3,
         "a\xef\xbf\xbd"
         "b"},                                       /* NUL */
        {"\xe2\x82", 2, "\xef\xbf\xbd\xef\xbf\xbd"}, /* cut short */
        {"", 0, ""},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = api_utf8_clean(cases[i].in, cases[i].len);
        assert_non_null(got);
        assert_string_equal(got, cases[i].want);
        free(got);
    }
}

static void times_and_numbers(void **state)
{
    char buf[API_RFC3339_LEN], n[32];
    static const struct {
        uint64_t v;
        const char *want;
    } nums[] = {{0, "0"},
                {999, "999"},
                {1500, "2K"},
                {16000000, "16M"},
                {751632384, "751.63M"},
                {7000000000ull, "7B"},
                {8030261248ull, "8.0B"}};

    (void)state;
    api_rfc3339_nano(0, 0, buf);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    api_rfc3339_nano(1714557600, 500000000, buf);
    assert_string_equal(buf, "2024-05-01T10:00:00.5Z");
    api_rfc3339_nano(1714557600, 123456789, buf);
    assert_string_equal(buf, "2024-05-01T10:00:00.123456789Z");
    api_rfc3339_nano(1714557600, 1000, buf);
    assert_string_equal(buf, "2024-05-01T10:00:00.000001Z");
    api_rfc3339_nano(253402300799LL, 0, buf);
    assert_string_equal(buf, "9999-12-31T23:59:59Z");
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        api_human_number(nums[i].v, n, sizeof n);
        assert_string_equal(n, nums[i].want);
    }
}

static void model_names(void **state)
{
    static const char *const aliases[] = {"kjv:16m"};
    struct api_model_info m[4] = {model_fixture(), model_fixture(), model_fixture(),
                                  model_fixture()};
    static const struct {
        const char *name;
        int rc;
        size_t index;
    } cases[] = {
        {"kjv-llama-16m", 0, 0},
        {"KJV-Llama-16M", 0, 0},
        {"kjv-llama-16m:latest", 0, 0},
        {"kjv:16m", 0, 0},
        {"kjv:16m:latest", 0, 0},
        {"Qwen/Qwen3-0.6B", 0, 1},
        {"qwen/qwen3-0.6b:latest", 0, 1},
        {"mlx-community/Qwen3-0.6B", 0, 2},
        {"Qwen3-0.6B", SH_ENOTFOUND, 0}, /* two models end in it */
        {"unique-model", 0, 3},
        {"Unique-Model:latest", 0, 3},
        {"org/unique", SH_ENOTFOUND, 0},
        {"nope", SH_ENOTFOUND, 0},
        {":latest", SH_ENOTFOUND, 0},
        {"kjv-llama-16m:q4", SH_ENOTFOUND, 0},
        {"", SH_EINVAL, 0},
        {"bad name", SH_EINVAL, 0},
        {"a\"b", SH_EINVAL, 0},
    };
    char name[API_RFC3339_LEN + 300];
    size_t idx = 99;

    (void)state;
    m[0].aliases = aliases;
    m[1].id = "Qwen/Qwen3-0.6B";
    m[1].aliases = NULL;
    m[1].n_aliases = 0;
    m[2].id = "mlx-community/Qwen3-0.6B";
    m[2].n_aliases = 0;
    m[3].id = "org/Unique-Model";
    m[3].n_aliases = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = api_model_resolve(m, 4, cases[i].name, &idx);
        if (rc != cases[i].rc)
            print_error("%s: %d\n", cases[i].name, rc);
        assert_int_equal(rc, cases[i].rc);
        if (!rc)
            assert_int_equal(idx, cases[i].index);
    }
    memset(name, 'a', 257);
    name[257] = '\0';
    assert_int_equal(api_model_resolve(m, 4, name, &idx), SH_EINVAL);
    name[256] = '\0';
    assert_int_equal(api_model_resolve(m, 4, name, &idx), SH_ENOTFOUND);
    api_ollama_name("kjv-llama-16m", name, sizeof name);
    assert_string_equal(name, "kjv-llama-16m:latest");
    api_ollama_name("Qwen/Qwen3-0.6B", name, sizeof name);
    assert_string_equal(name, "Qwen/Qwen3-0.6B:latest");
    api_ollama_name("qwen3:0.6b", name, sizeof name);
    assert_string_equal(name, "qwen3:0.6b");
}

static void durations(void **state)
{
    static const char *const good[] = {"5m",  "1h30m", "300ms",    "0",    "-1h", ".5s",
                                       "+5s", "1.5h",  "2h45m10s", "10us", "10ns"};
    static const char *const bad[] = {"5", "", "m", "5x", "1.5.5s", "-", "h5", "5 m", "-1"};

    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        cJSON *v = cJSON_CreateString(good[i]);
        if (!api_duration_valid(v))
            print_error("rejected %s\n", good[i]);
        assert_true(api_duration_valid(v));
        cJSON_Delete(v);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *v = cJSON_CreateString(bad[i]);
        if (api_duration_valid(v))
            print_error("accepted %s\n", bad[i]);
        assert_false(api_duration_valid(v));
        cJSON_Delete(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(openai_chat_completion),
        cmocka_unit_test(openai_chunks),
        cmocka_unit_test(openai_text_completion),
        cmocka_unit_test(openai_models),
        cmocka_unit_test(error_bodies),
        cmocka_unit_test(status_mapping),
        cmocka_unit_test(framing),
        cmocka_unit_test(ollama_generation),
        cmocka_unit_test(ollama_tool_call_arguments),
        cmocka_unit_test(ollama_listings),
        cmocka_unit_test(ollama_show),
        cmocka_unit_test(utf8_cleaning),
        cmocka_unit_test(times_and_numbers),
        cmocka_unit_test(model_names),
        cmocka_unit_test(durations),
    };
    return cmocka_run_group_tests_name("api/format", tests, NULL, NULL);
}
