/* tests/agent/test_runner_proto.c: the agent <-> runner frames
 * (agent/runner_proto.h): round trips, and every malformed input a broken
 * runner could send refused with SH_EPROTO, never read past its end (run
 * under ASan); and model ids from folder paths (agent/serve.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agent/runner_proto.h"
#include "agent/serve.h"
#include "tests/lib/test.h"

/* The payload of the only frame in sb (after checking its header). */
static const uint8_t *payload(const struct sh_strbuf *sb, unsigned type, uint32_t id, size_t *len)
{
    struct runner_hdr h;
    struct sh_err err = {0};

    assert_true(sb->len >= RUNNER_HDR_LEN);
    assert_int_equal(runner_hdr_decode((const uint8_t *)sb->buf, &h, &err), 0);
    assert_int_equal(h.type, type);
    assert_int_equal(h.id, id);
    assert_int_equal(h.len, sb->len - RUNNER_HDR_LEN);
    *len = h.len;
    return (const uint8_t *)sb->buf + RUNNER_HDR_LEN;
}

static void delta_round_trip(void **state)
{
    struct api_top_logprob top[2] = {{"a\xff", 2, -0.25}, {"", 0, -INFINITY}};
    struct api_token_logprob lp[2] = {{"tok\0en", 6, -0.5, top, 2}, {"x", 1, 0.0, NULL, 0}};
    struct api_tool_call calls[2] = {{"", "get_weather", "{\"city\":\"Paris\"}"},
                                     {"call_9", "f", "{}"}};
    struct api_gen_delta d = {"hello\0world", 11, "hmm", 3, calls, 2, lp, 2};
    struct runner_delta *out = malloc(sizeof *out);
    struct sh_strbuf sb;
    struct sh_err err = {0};
    const uint8_t *p;
    size_t len;

    (void)state;
    sh_strbuf_init(&sb, 1 << 20);
    assert_int_equal(runner_delta_put(&sb, 77, &d), 0);
    p = payload(&sb, RUNNER_MSG_DELTA, 77, &len);
    assert_int_equal(runner_delta_decode(p, len, out, &err), 0);
    assert_int_equal(out->d.content_len, 11);
    assert_memory_equal(out->d.content, "hello\0world", 11);
    assert_int_equal(out->d.reasoning_len, 3);
    assert_int_equal(out->d.n_tool_calls, 2);
    assert_string_equal(out->d.tool_calls[0].id, "");
    assert_string_equal(out->d.tool_calls[0].name, "get_weather");
    assert_string_equal(out->d.tool_calls[1].arguments, "{}");
    assert_int_equal(out->d.n_logprobs, 2);
    assert_int_equal(out->d.logprobs[0].token_len, 6);
    assert_memory_equal(out->d.logprobs[0].token, "tok\0en", 6);
    assert_true(out->d.logprobs[0].logprob == -0.5);
    assert_int_equal(out->d.logprobs[0].n_top, 2);
    assert_true(isinf(out->d.logprobs[0].top[1].logprob));
    assert_int_equal(out->d.logprobs[1].n_top, 0);

    /* Every truncation of a valid payload is refused. */
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(runner_delta_decode(p, cut, out, &err), SH_EPROTO);
    sh_strbuf_free(&sb);
    free(out);
}

/* Hand-built payloads a broken runner might send. */
static void delta_bad(void **state)
{
    static const struct {
        const char *what;
        const char *bytes;
        size_t len;
    } cases[] = {
        {"empty", "", 0},
        {"text length past the end", "\xff\xff\xff\x7f", 4},
        {"too many calls", "\0\0\0\0\0\0\0\0\x41\0\0\0", 12},
        {"call id without NUL", "\0\0\0\0\0\0\0\0\1\0\0\0\1\0\0\0x", 17},
        {"call id with an inner NUL", "\0\0\0\0\0\0\0\0\1\0\0\0\3\0\0\0a\0\0", 19},
        {"too many logprobs", "\0\0\0\0\0\0\0\0\0\0\0\0\x41\0\0\0", 16},
        {"trailing bytes", "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0!", 17},
        {"positive logprob",
         "\0\0\0\0\0\0\0\0\0\0\0\0\1\0\0\0\0\0\0\0"
         "\0\0\0\0\0\0\xf0\x3f\0\0\0\0",
         32},
        {"NaN logprob",
         "\0\0\0\0\0\0\0\0\0\0\0\0\1\0\0\0\0\0\0\0"
         "\0\0\0\0\0\0\xf8\x7f\0\0\0\0",
         32},
        {"too many alternatives",
         "\0\0\0\0\0\0\0\0\0\0\0\0\1\0\0\0\0\0\0\0"
         "\0\0\0\0\0\0\0\0\x15\0\0\0",
         32},
    };
    struct runner_delta *out = malloc(sizeof *out);
    struct sh_err err = {0};

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* a heap copy of exactly len bytes, so ASan sees any overread */
        uint8_t *p = malloc(cases[i].len ? cases[i].len : 1);
        memcpy(p, cases[i].bytes, cases[i].len);
        if (runner_delta_decode(p, cases[i].len, out, &err) != SH_EPROTO)
            fail_msg("%s: accepted", cases[i].what);
        free(p);
    }
    /* The minimal valid delta: nothing at all. */
    assert_int_equal(
        runner_delta_decode((const uint8_t *)"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16, out, &err), 0);
    free(out);
}

static void delta_limits_on_encode(void **state)
{
    struct api_tool_call calls[RUNNER_MAX_CALLS + 1];
    struct api_gen_delta d;
    struct sh_strbuf sb;

    (void)state;
    memset(&d, 0, sizeof d);
    memset(calls, 0, sizeof calls);
    d.tool_calls = calls;
    d.n_tool_calls = RUNNER_MAX_CALLS + 1;
    sh_strbuf_init(&sb, 1 << 20);
    assert_int_equal(runner_delta_put(&sb, 1, &d), SH_EINVAL);
    assert_int_equal(sb.len, 0);
    sh_strbuf_free(&sb);
}

static void headers(void **state)
{
    uint8_t h[RUNNER_HDR_LEN];
    struct runner_hdr out;
    struct sh_err err = {0};

    (void)state;
    /* len, type | reserved << 16, id */
    sh_put_u32(h, 0);
    sh_put_u32(h + 4, RUNNER_MSG_CANCEL);
    sh_put_u32(h + 8, 5);
    assert_int_equal(runner_hdr_decode(h, &out, &err), 0);
    assert_int_equal(out.id, 5);
    sh_put_u32(h, 1); /* CANCEL carries nothing */
    assert_int_equal(runner_hdr_decode(h, &out, &err), SH_EPROTO);
    sh_put_u32(h, RUNNER_MAX_FRAME + 1);
    sh_put_u32(h + 4, RUNNER_MSG_DELTA);
    assert_int_equal(runner_hdr_decode(h, &out, &err), SH_EPROTO);
    assert_non_null(strstr(err.msg, "limit"));
    sh_put_u32(h, RUNNER_MAX_FRAME);
    assert_int_equal(runner_hdr_decode(h, &out, &err), 0);
    sh_put_u32(h, 0xffffffffu);
    assert_int_equal(runner_hdr_decode(h, &out, &err), SH_EPROTO);
    sh_put_u32(h, 4);
    sh_put_u32(h + 4, 99);
    assert_int_equal(runner_hdr_decode(h, &out, &err), SH_EPROTO);
    assert_non_null(strstr(err.msg, "unknown type 99"));
    sh_put_u32(h + 4, RUNNER_MSG_DELTA | 1u << 16);
    assert_int_equal(runner_hdr_decode(h, &out, &err), SH_EPROTO);
    sh_put_u32(h + 4, 0);
    assert_int_equal(runner_hdr_decode(h, &out, &err), SH_EPROTO);
}

static void done_and_error(void **state)
{
    struct runner_done d = {API_FINISH_TOOL_CALLS, 26, 30, 1, 2, 3}, o;
    struct sh_strbuf sb;
    struct sh_err err = {0};
    char msg[SH_ERR_MSG_LEN], long_msg[600];
    const uint8_t *p;
    uint8_t bad[RUNNER_DONE_LEN] = {3};
    size_t len;
    int code;

    (void)state;
    sh_strbuf_init(&sb, 1 << 20);
    assert_int_equal(runner_done_put(&sb, 9, &d), 0);
    p = payload(&sb, RUNNER_MSG_DONE, 9, &len);
    assert_int_equal(len, RUNNER_DONE_LEN);
    assert_int_equal(runner_done_decode(p, len, &o, &err), 0);
    assert_int_equal(o.finish, d.finish);
    assert_int_equal(o.prompt_tokens, 26);
    assert_int_equal(o.completion_tokens, 30);
    assert_int_equal(o.wait_ns + o.prompt_ns + o.eval_ns, 6);
    assert_int_equal(o.eval_ns, 3);
    assert_int_equal(runner_done_decode(p, len - 1, &o, &err), SH_EPROTO);
    assert_int_equal(runner_done_decode(bad, sizeof bad, &o, &err), SH_EPROTO);

    sh_strbuf_reset(&sb);
    memset(long_msg, 'x', sizeof long_msg - 1);
    long_msg[sizeof long_msg - 1] = '\0';
    long_msg[3] = '\n';
    assert_int_equal(runner_error_put(&sb, 4, SH_ERANGE, long_msg), 0);
    p = payload(&sb, RUNNER_MSG_ERROR, 4, &len);
    assert_int_equal(runner_error_decode(p, len, &code, msg, &err), 0);
    assert_int_equal(code, SH_ERANGE);
    assert_int_equal(strlen(msg), SH_ERR_MSG_LEN - 1);
    assert_int_equal(msg[3], '?'); /* control bytes are not passed on */
    assert_int_equal(runner_error_decode(p, len - 1, &code, msg, &err), SH_EPROTO);
    sh_strbuf_reset(&sb);
    assert_int_equal(runner_error_put(&sb, 4, 0, "no code"), 0);
    p = payload(&sb, RUNNER_MSG_ERROR, 4, &len);
    assert_int_equal(runner_error_decode(p, len, &code, msg, &err), SH_EPROTO);
    sh_strbuf_free(&sb);
}

static void model_ids(void **state)
{
    static const struct {
        const char *path, *id;
    } ok[] = {
        {"models/kjv-llama-16m", "kjv-llama-16m"},
        {"/m/kjv-llama-16m///", "kjv-llama-16m"},
        {"kjv", "kjv"},
        {"/hub/models--Qwen--Qwen3-0.6B/snapshots/abc123", "Qwen/Qwen3-0.6B"},
        {"/hub/models--mlx-community--Qwen3-0.6B-4bit/snapshots/r1/",
         "mlx-community/Qwen3-0.6B-4bit"},
        {"/x/snapshots/abc", "abc"}, /* no models-- folder above: just a name */
        {"/x/models--/snapshots/abc", "abc"},
    };
    static const char *const bad[] = {
        "", "/", ".", "..", "/a/..", "has space", "a$b", "/hub/models--A--B c/snapshots/r"};
    char id[SERVE_MAX_ID + 1], longname[300];
    struct sh_err err = {0};

    (void)state;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (serve_model_id(ok[i].path, id, &err))
            fail_msg("%s: %s", ok[i].path, err.msg);
        assert_string_equal(id, ok[i].id);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (serve_model_id(bad[i], id, &err) != SH_EINVAL)
            fail_msg("\"%s\" accepted as \"%s\"", bad[i], id);
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(serve_model_id(longname, id, &err), SH_EINVAL);
    longname[SERVE_MAX_ID] = '\0';
    assert_int_equal(serve_model_id(longname, id, &err), 0);
}

static void find_models(void **state)
{
    struct serve_opts o;
    struct serve_model_dir *d = NULL;
    struct sh_err err = {0};
    size_t n = 0;

    (void)state;
    memset(&o, 0, sizeof o);
    assert_int_equal(serve_find_models(&o, DEMO_MODEL_DIR, &d, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(d[0].id, "kjv-llama-16m");
    assert_int_equal(strlen(d[0].digest), 64);
    assert_true(d[0].mtime > 0);
    serve_model_dirs_free(d, n);

    o.model_dirs[0] = DEMO_MODEL_DIR;
    o.model_dirs[1] = DEMO_MODEL_DIR "/";
    o.n_model_dirs = 2;
    assert_int_equal(serve_find_models(&o, DEMO_MODEL_DIR, &d, &n, &err), SH_EEXIST);
    assert_non_null(strstr(err.msg, "two models are named \"kjv-llama-16m\""));
    o.model_dirs[1] = FIXTURES_DIR;
    assert_int_equal(serve_find_models(&o, DEMO_MODEL_DIR, &d, &n, &err), SH_ENOTFOUND);
    assert_non_null(strstr(err.msg, "not a model folder"));
    o.n_model_dirs = 0;
    o.models_roots[0] = FIXTURES_DIR "/tokenizer";
    o.n_models_roots = 1;
    assert_int_equal(serve_find_models(&o, DEMO_MODEL_DIR, &d, &n, &err), SH_ENOTFOUND);
    o.models_roots[0] = SHOAL_SOURCE_ROOT "/models";
    assert_int_equal(serve_find_models(&o, DEMO_MODEL_DIR, &d, &n, &err), 0);
    assert_int_equal(n, 1);
    serve_model_dirs_free(d, n);
    o.none = true;
    assert_int_equal(serve_find_models(&o, DEMO_MODEL_DIR, &d, &n, &err), 0);
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(delta_round_trip),
        cmocka_unit_test(delta_bad),
        cmocka_unit_test(delta_limits_on_encode),
        cmocka_unit_test(headers),
        cmocka_unit_test(done_and_error),
        cmocka_unit_test(model_ids),
        cmocka_unit_test(find_models),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
