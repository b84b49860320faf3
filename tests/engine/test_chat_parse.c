/* tests/engine/test_chat_parse.c: the output parser on samples of each
 * format. Every sample is also fed split at every byte position and one byte
 * at a time: the merged event trace must not depend on the split. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"
#include "engine/chat_parse.h"
#include "lib/test.h"

/* Consecutive text deltas of one type are merged, so the trace is the same
 * for any split: "R[..]C[..]T[name|args|id]E[id|raw]". */
struct trace {
    struct sh_strbuf sb;
    int last; /* last event type, -1 none */
};

static int collect(void *arg, const struct eng_chat_event *ev)
{
    struct trace *t = arg;
    static const char tag[] = {'C', 'R', 'T', 'E'};
    if (ev->type == ENG_CHAT_EV_CONTENT || ev->type == ENG_CHAT_EV_REASONING) {
        assert_true(ev->len > 0);
        /* deltas are whole UTF-8 characters */
        assert_true(((unsigned char)ev->text[0] & 0xC0) != 0x80);
        if (t->last == (int)ev->type)
            t->sb.len--; /* reopen the bracket */
        else
            sh_strbuf_printf(&t->sb, "%c[", tag[ev->type]);
        sh_strbuf_append(&t->sb, ev->text, ev->len);
        sh_strbuf_puts(&t->sb, "]");
    } else if (ev->type == ENG_CHAT_EV_TOOL_CALL) {
        sh_strbuf_printf(&t->sb, "T[%s|%s|%s]", ev->name, ev->arguments, ev->id);
    } else {
        assert_non_null(ev->error);
        sh_strbuf_printf(&t->sb, "E[%s|%.*s]", ev->id, (int)ev->len, ev->text);
    }
    t->last = (int)ev->type;
    return 0;
}

/* Feeds text in pieces cut at the given offsets (ascending). */
static char *
run(const struct eng_chat_parse_opts *o, const char *text, const size_t *cuts, size_t ncuts)
{
    struct eng_chat_parser *p = NULL;
    struct trace t = {.last = -1};
    size_t prev = 0, n = strlen(text);
    sh_strbuf_init(&t.sb, 1u << 20);
    sh_strbuf_puts(&t.sb, "");
    assert_int_equal(eng_chat_parser_new(o, &p, NULL), 0);
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : n;
        assert_int_equal(eng_chat_parser_feed(p, text + prev, end - prev, collect, &t, NULL), 0);
        prev = end;
    }
    assert_int_equal(eng_chat_parser_finish(p, collect, &t, NULL), 0);
    eng_chat_parser_free(p);
    return sh_strbuf_take(&t.sb);
}

static void
check_sample(const struct eng_chat_parse_opts *o, const char *text, const char *expected)
{
    size_t n = strlen(text), *cuts = malloc((n + 1) * sizeof *cuts);
    char *whole = run(o, text, NULL, 0);
    if (strcmp(whole, expected) != 0)
        fprintf(stderr, "sample [%s]\n  got      %s\n  expected %s\n", text, whole, expected);
    assert_string_equal(whole, expected);
    for (size_t i = 0; i <= n; i++) {
        char *split = run(o, text, &i, 1);
        if (strcmp(split, expected) != 0)
            fprintf(stderr, "split at %zu: %s\n", i, split);
        assert_string_equal(split, expected);
        free(split);
    }
    for (size_t i = 0; i < n; i++)
        cuts[i] = i + 1;
    {
        char *bytes = run(o, text, cuts, n ? n - 1 : 0);
        assert_string_equal(bytes, expected);
        free(bytes);
    }
    free(whole);
    free(cuts);
}

#define DS_CALLS                                                                                   \
    "<\xef\xbd\x9ctool\xe2\x96\x81"                                                                \
    "calls\xe2\x96\x81"                                                                            \
    "begin\xef\xbd\x9c>"
#define DS_CALLS_END                                                                               \
    "<\xef\xbd\x9ctool\xe2\x96\x81"                                                                \
    "calls\xe2\x96\x81"                                                                            \
    "end\xef\xbd\x9c>"
#define DS_CALL                                                                                    \
    "<\xef\xbd\x9ctool\xe2\x96\x81"                                                                \
    "call\xe2\x96\x81"                                                                             \
    "begin\xef\xbd\x9c>"
#define DS_CALL_END                                                                                \
    "<\xef\xbd\x9ctool\xe2\x96\x81"                                                                \
    "call\xe2\x96\x81"                                                                             \
    "end\xef\xbd\x9c>"
#define DS_SEP                                                                                     \
    "<\xef\xbd\x9ctool\xe2\x96\x81"                                                                \
    "sep\xef\xbd\x9c>"

static void hermes_qwen3(void **state)
{
    struct eng_chat_parse_opts o = {
        .format = ENG_CHAT_FMT_HERMES, .tools = true, .reasoning = true};
    (void)state;
    check_sample(&o, "<think>\nLet me think.\n\nMore.\n</think>\n\nHello there!\n",
                 "R[Let me think.\n\nMore.]C[Hello there!\n]");
    check_sample(
        &o,
        "<think>\nneed weather\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", "
        "\"arguments\": {\"city\": \"Z\xc3\xbcrich\", \"unit\": \"celsius\"}}\n</tool_call>",
        "R[need weather]T[get_weather|{\"city\": \"Z\xc3\xbcrich\", \"unit\": "
        "\"celsius\"}|call_0]");
    check_sample(&o,
                 "Checking both.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n"
                 "<tool_call>\n{\"name\": \"b\", \"arguments\": \"{\\\"x\\\": 1}\"}\n</tool_call>",
                 "C[Checking both.]T[a|{}|call_0]T[b|{\"x\": 1}|call_1]");
    /* malformed JSON is an error event, and parsing goes on */
    check_sample(&o, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": }\n</tool_call>after",
                 "E[call_0|{\"name\": \"f\", \"arguments\": {\"a\": }]C[after]");
    check_sample(&o, "<tool_call>\n[1, 2]\n</tool_call>", "E[call_0|[1, 2]]");
    /* an unterminated call is parsed at the end */
    check_sample(&o, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"k\": [1, {\"z\": \"}\"}]}}",
                 "T[f|{\"k\": [1, {\"z\": \"}\"}]}|call_0]");
    check_sample(&o, "<tool_call>\n{\"name\": \"f\", \"argu", "E[call_0|{\"name\": \"f\", \"argu]");
    /* lookalikes of markers stay content */
    check_sample(&o, "a <tool and <think not really <\n", "C[a <tool and <think not really <\n]");
    check_sample(&o, "", "");
    check_sample(&o, "\xe4\xbd\xa0\xe5\xa5\xbd <b>", "C[\xe4\xbd\xa0\xe5\xa5\xbd <b>]");
}

static void reasoning_from_prompt(void **state)
{
    /* DeepSeek-R1 style: the prompt ended with "<think>\n" */
    struct eng_chat_parse_opts o = {
        .format = ENG_CHAT_FMT_PLAIN, .reasoning = true, .starts_in_reasoning = true};
    (void)state;
    check_sample(&o, "reasoning here\n</think>\n\nAnswer", "R[reasoning here]C[Answer]");
    check_sample(&o, "never closed", "R[never closed]");
}

static void tools_off(void **state)
{
    struct eng_chat_parse_opts o = {.format = ENG_CHAT_FMT_HERMES, .tools = false};
    (void)state;
    check_sample(&o, "<tool_call>{\"name\": \"f\"}</tool_call> <think>x</think>",
                 "C[<tool_call>{\"name\": \"f\"}</tool_call> <think>x</think>]");
}

static void llama31(void **state)
{
    struct eng_chat_parse_opts o = {.format = ENG_CHAT_FMT_LLAMA31, .tools = true};
    (void)state;
    check_sample(&o,
                 "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Z\xc3\xbcrich\", "
                 "\"unit\": \"celsius\"}}",
                 "T[get_weather|{\"city\": \"Z\xc3\xbcrich\", \"unit\": \"celsius\"}|call_0]");
    check_sample(&o, "  \n{\"name\": \"f\", \"parameters\": {}}\n", "T[f|{}|call_0]");
    check_sample(&o, "<|python_tag|>brave_search.call(query=\"weather Z\xc3\xbcrich\", n=3)",
                 "T[brave_search|{\"query\":\"weather Z\xc3\xbcrich\",\"n\":3}|call_0]");
    check_sample(&o, "<|python_tag|>{\"name\": \"f\", \"parameters\": {\"a\": 1}}",
                 "T[f|{\"a\": 1}|call_0]");
    check_sample(&o, "<|python_tag|>print(1)", "E[call_0|print(1)]");
    check_sample(&o, "The weather is nice.", "C[The weather is nice.]");
    /* JSON that is not a call is content; a broken call is an error */
    check_sample(&o, "{\"answer\": 42}", "C[{\"answer\": 42}]");
    check_sample(&o, "{\"name\": \"f\", \"parameters\": {",
                 "E[call_0|{\"name\": \"f\", \"parameters\": {]");
}

static void deepseek_v3(void **state)
{
    struct eng_chat_parse_opts o = {.format = ENG_CHAT_FMT_DEEPSEEK_V3, .tools = true};
    (void)state;
    check_sample(&o,
                 "Let me check." DS_CALLS DS_CALL "function" DS_SEP "get_weather\n```json\n"
                 "{\"city\": \"Z\xc3\xbcrich\"}\n```" DS_CALL_END "\n" DS_CALL "function" DS_SEP
                 "get_time\n```json\n{}\n```" DS_CALL_END DS_CALLS_END,
                 "C[Let me check.]T[get_weather|{\"city\": \"Z\xc3\xbcrich\"}|call_0]"
                 "T[get_time|{}|call_1]");
    check_sample(&o, DS_CALLS DS_CALL "function" DS_SEP "f\n```json\n{bad}\n```" DS_CALL_END,
                 "E[call_0|function" DS_SEP "f\n```json\n{bad}\n```]");
}

static void detect_from_templates(void **state)
{
    static const struct {
        const char *path;
        enum eng_chat_format fmt;
        bool reasoning;
    } cases[] = {
        {FIXTURES_DIR "/tokenizers/qwen3/tokenizer_config.json", ENG_CHAT_FMT_HERMES, true},
        {FIXTURES_DIR "/tokenizers/deepseek_v3/tokenizer_config.json", ENG_CHAT_FMT_DEEPSEEK_V3,
         false},
        {FIXTURES_DIR "/tokenizers/llama3_1/tokenizer_config.json", ENG_CHAT_FMT_PLAIN, false},
        {DEMO_MODEL_DIR "/tokenizer_config.json", ENG_CHAT_FMT_PLAIN, false},
    };
    struct eng_chat_parse_opts o;
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *cfg = NULL;
        assert_int_equal(sh_json_parse_file(cases[i].path, 1u << 24, &cfg, NULL), 0);
        eng_chat_parse_detect(cJSON_GetObjectItem(cfg, "chat_template")->valuestring, NULL, true,
                              &o);
        assert_int_equal(o.format, cases[i].fmt);
        assert_int_equal(o.reasoning, cases[i].reasoning);
        assert_false(o.starts_in_reasoning);
        cJSON_Delete(cfg);
    }
    eng_chat_parse_detect("{{ '<|python_tag|>' }}", NULL, true, &o);
    assert_int_equal(o.format, ENG_CHAT_FMT_LLAMA31);
    /* a prompt that opened <think> itself, and one that closed it (Qwen3
     * with enable_thinking=false) */
    eng_chat_parse_detect("<think>", "<|im_start|>assistant\n<think>\n", false, &o);
    assert_true(o.starts_in_reasoning);
    eng_chat_parse_detect("<think>", "<|im_start|>assistant\n<think>\n\n</think>\n\n", false, &o);
    assert_false(o.starts_in_reasoning);
}

static int stop_cb(void *arg, const struct eng_chat_event *ev)
{
    (void)arg;
    (void)ev;
    return 42;
}

static int count_cb(void *arg, const struct eng_chat_event *ev)
{
    (void)ev;
    (*(int *)arg)++;
    return 0;
}

static void callback_stop_and_limits(void **state)
{
    struct eng_chat_parse_opts o = {.format = ENG_CHAT_FMT_HERMES, .tools = true};
    struct eng_chat_parser *p = NULL;
    struct sh_err err;
    char *big = malloc(ENG_CHAT_MAX_CALL + 16);
    int events = 0;
    (void)state;
    assert_int_equal(eng_chat_parser_new(&o, &p, &err), 0);
    assert_int_equal(eng_chat_parser_feed(p, "hello", 5, stop_cb, NULL, &err), 42);
    eng_chat_parser_free(p);
    /* a tool call that never ends is bounded */
    assert_int_equal(eng_chat_parser_new(&o, &p, &err), 0);
    assert_int_equal(eng_chat_parser_feed(p, "<tool_call>", 11, count_cb, &events, &err), 0);
    memset(big, 'x', ENG_CHAT_MAX_CALL + 16);
    assert_int_equal(eng_chat_parser_feed(p, big, ENG_CHAT_MAX_CALL + 16, count_cb, &events, &err),
                     SH_ETOOBIG);
    assert_non_null(strstr(err.msg, "unterminated tool call"));
    eng_chat_parser_free(p);
    eng_chat_parser_free(NULL);
    free(big);
    assert_int_equal(events, 0);
}

/* Random texts made of marker pieces, JSON bits and UTF-8: for every format,
 * feeding in random pieces gives the same trace as feeding the whole. */
static void random_splits_agree(void **state)
{
    static const char *const parts[] = {"<think>",
                                        "</think>",
                                        "<tool_call>",
                                        "</tool_call>",
                                        "<|python_tag|>",
                                        "\n",
                                        "\n\n",
                                        "{\"name\": \"f\", \"arguments\": {\"a\": 1}}",
                                        "{\"name\": \"g\", \"parameters\": {}}",
                                        "{",
                                        "}",
                                        "\"",
                                        "text ",
                                        "<",
                                        "</",
                                        "<tool",
                                        "Z\xc3\xbcrich",
                                        "\xe4\xbd\xa0",
                                        DS_CALLS,
                                        DS_CALL,
                                        DS_SEP,
                                        DS_CALL_END,
                                        DS_CALLS_END,
                                        "function",
                                        "```json\n{}\n```",
                                        "get.call(q=\"x\")"};
    uint64_t s = 0x243F6A8885A308D3ull;
    (void)state;
    for (int iter = 0; iter < 300; iter++) {
        struct eng_chat_parse_opts o = {.tools = (iter % 5) != 0,
                                        .reasoning = (iter % 3) != 0,
                                        .starts_in_reasoning = (iter % 7) == 0};
        char text[2048] = "";
        size_t n = 0, cuts[64], ncuts = 0;
        char *whole, *split;
        o.format = (enum eng_chat_format)(iter % 4);
        for (int k = 0; k < 12; k++) {
            const char *p;
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            p = parts[s % (sizeof parts / sizeof parts[0])];
            if (n + strlen(p) + 1 >= sizeof text)
                break;
            memcpy(text + n, p, strlen(p) + 1);
            n += strlen(p);
        }
        for (size_t c = 1; c < n && ncuts < 64; c += 1 + (s >> (ncuts % 32)) % 9)
            cuts[ncuts++] = c;
        whole = run(&o, text, NULL, 0);
        split = run(&o, text, cuts, ncuts);
        if (strcmp(whole, split) != 0)
            fprintf(stderr, "format %d text [%s]\n whole %s\n split %s\n", (int)o.format, text,
                    whole, split);
        assert_string_equal(whole, split);
        free(whole);
        free(split);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_splits_agree),
        cmocka_unit_test(hermes_qwen3),
        cmocka_unit_test(reasoning_from_prompt),
        cmocka_unit_test(tools_off),
        cmocka_unit_test(llama31),
        cmocka_unit_test(deepseek_v3),
        cmocka_unit_test(detect_from_templates),
        cmocka_unit_test(callback_stop_and_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
