/* tests/engine/test_gen_force.c: eng_gen_force on the demo model: forced
 * tokens come out in order through the usual text path (stop ids end the
 * generation, stop strings cut the text), logprobs are the model's own,
 * sampling resumes after them, and bad calls change nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/generate.h"
#include "tests/lib/test.h"

struct demo {
    struct eng_model *m;
    struct eng_tokenizer *tok;
    struct eng_pool *pool;
};

static struct demo demo;

static int setup(void **state)
{
    struct sh_err err = {0};
    (void)state;
    if (eng_model_load(DEMO_MODEL_DIR, &demo.m, &err) ||
        eng_tokenizer_load(DEMO_MODEL_DIR "/tokenizer.json", &demo.tok, &err) ||
        eng_pool_new(2, &demo.pool, &err)) {
        fprintf(stderr, "setup: %s\n", sh_err_msg(&err));
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    eng_pool_free(demo.pool);
    eng_tokenizer_free(demo.tok);
    eng_model_free(demo.m);
    return 0;
}

struct out {
    char text[4096];
    size_t len;
    size_t steps;
    enum eng_gen_end end;
    float logprob[64];
};

/* Prompt "In the beginning", force the tokens of forced_text, step to the
 * end (at most max tokens, 0 = no limit), collecting text. */
static void
run(const char *forced_text, size_t max, int top, const char *stop, bool eos, struct out *o)
{
    struct eng_gen_params p;
    struct eng_ctx *ctx = NULL;
    struct eng_gen *g = NULL;
    struct eng_gen_token t;
    struct sh_err err = {0};
    int32_t *prompt = NULL, *forced = NULL;
    size_t n_prompt = 0, n_forced = 0;

    memset(o, 0, sizeof *o);
    eng_gen_params_init(&p);
    p.temperature = 1.0f; /* sampling on: forced tokens must win anyway */
    p.seed = 7;
    p.max_tokens = max;
    p.stop_at_eos = eos;
    p.top_logprobs = top;
    if (stop) {
        p.stops = &stop;
        p.n_stops = 1;
    }
    assert_int_equal(
        eng_tokenize(demo.tok, "In the beginning", 16, false, &prompt, &n_prompt, &err), 0);
    assert_int_equal(
        eng_tokenize(demo.tok, forced_text, strlen(forced_text), false, &forced, &n_forced, &err),
        0);
    assert_int_equal(eng_ctx_new(demo.m, demo.pool, 256, &ctx, &err), 0);
    assert_int_equal(eng_gen_new(demo.m, demo.tok, ctx, &p, &g, &err), 0);
    assert_int_equal(eng_gen_prefill(g, prompt, n_prompt, 0, &err), 0);
    assert_int_equal(eng_gen_force(g, forced, n_forced, &err), 0);
    do {
        assert_int_equal(eng_gen_step(g, &t, &err), 0);
        if (o->steps < 64)
            o->logprob[o->steps] = t.logprob;
        o->steps++;
        assert_true(o->len + t.text_len < sizeof o->text);
        memcpy(o->text + o->len, t.text, t.text_len);
        o->len += t.text_len;
    } while (t.end == ENG_GEN_RUNNING);
    o->end = t.end;
    eng_gen_free(g);
    eng_ctx_free(ctx);
    free(prompt);
    free(forced);
}

/* Text that the model would never write greedily, ended by the end-of-turn
 * token (a stop id of the demo): exactly that text, ended by EOS. */
static void forced_text_then_eos(void **state)
{
    struct out o;
    (void)state;
    run("zebra quantum 42 <tool_call>{\"a\": 1}</tool_call><|im_end|>", 0, -1, NULL, true, &o);
    assert_int_equal(o.end, ENG_GEN_EOS);
    assert_string_equal(o.text, "zebra quantum 42 <tool_call>{\"a\": 1}</tool_call>");
}

/* Stop strings apply to forced text as to sampled text. */
static void forced_text_meets_stop_string(void **state)
{
    struct out o;
    (void)state;
    run("alpha beta gamma<|im_end|>", 0, -1, " beta", true, &o);
    assert_int_equal(o.end, ENG_GEN_STOP_STRING);
    assert_string_equal(o.text, "alpha");
}

/* Without a stop among them, sampling goes on after the forced tokens (EOS
 * off, so the sampled tail has its full length). */
static void sampling_resumes(void **state)
{
    struct out o;
    int32_t *ids = NULL;
    size_t n = 0;
    struct sh_err err = {0};
    (void)state;
    assert_int_equal(eng_tokenize(demo.tok, "zebra", 5, false, &ids, &n, &err), 0);
    run("zebra", n + 5, -1, NULL, false, &o);
    free(ids);
    assert_int_equal(o.end, ENG_GEN_MAX_TOKENS);
    assert_int_equal(o.steps, n + 5);
    assert_true(strncmp(o.text, "zebra", 5) == 0);
    assert_true(o.len > 5);
}

/* Logprobs of forced tokens are the model's raw ones: finite, <= 0. */
static void logprobs_of_forced(void **state)
{
    struct out o;
    (void)state;
    run("and the earth<|im_end|>", 0, 3, NULL, true, &o);
    for (size_t i = 0; i < o.steps && i < 64; i++) {
        assert_false(isnan(o.logprob[i]));
        assert_true(o.logprob[i] <= 0.0f);
    }
}

static void bad_calls(void **state)
{
    struct eng_gen_params p;
    struct eng_ctx *ctx = NULL;
    struct eng_gen *g = NULL;
    struct eng_gen_token t;
    struct sh_err err = {0};
    int32_t prompt[] = {100, 200}, bad[] = {5, 1 << 20}, neg[] = {-1}, eos[] = {2};
    (void)state;
    eng_gen_params_init(&p);
    p.temperature = 0.0f;
    assert_int_equal(eng_ctx_new(demo.m, demo.pool, 64, &ctx, &err), 0);
    assert_int_equal(eng_gen_new(demo.m, demo.tok, ctx, &p, &g, &err), 0);
    assert_int_equal(eng_gen_prefill(g, prompt, 2, 0, &err), 0);
    assert_int_equal(eng_gen_force(g, bad, 2, &err), SH_EINVAL);
    assert_non_null(strstr(err.msg, "forced token 1"));
    assert_int_equal(eng_gen_force(g, neg, 1, &err), SH_EINVAL);
    assert_int_equal(eng_gen_force(g, NULL, 0, &err), 0); /* nothing forced: fine */
    assert_int_equal(eng_gen_force(g, eos, 1, &err), 0);
    assert_int_equal(eng_gen_step(g, &t, &err), 0);
    assert_int_equal(t.id, 2);
    assert_int_equal(t.end, ENG_GEN_EOS);
    assert_int_equal(eng_gen_force(g, eos, 1, &err), SH_EINVAL);
    eng_gen_free(g);
    eng_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(forced_text_then_eos),
        cmocka_unit_test(forced_text_meets_stop_string),
        cmocka_unit_test(sampling_resumes),
        cmocka_unit_test(logprobs_of_forced),
        cmocka_unit_test(bad_calls),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
