/* tests/engine/test_generate.c: the step-wise generator (engine/generate.h)
 * on the demo model against transformers' greedy continuations
 * (tests/fixtures/logits/kjv-llama-16m/reference.json), the demo's chat
 * answer, stop ids and stop strings across tokens, limits, seeds, logprobs
 * against the reference logits, prefix reuse, streamed text from a
 * random-weight model emitting raw bytes through Qwen3's tokenizer, and the
 * errors of the API. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/file.h"
#include "common/json.h"
#include "engine/generate.h"
#include "engine/tokenizer_internal.h"
#include "tests/lib/test.h"

#define DEMO_REF        FIXTURES_DIR "/logits/kjv-llama-16m"
#define QWEN2_MODEL     FIXTURES_DIR "/logits/qwen2"
#define QWEN3_TOKENIZER TOK_FIXTURE_BUILD_DIR "/qwen3.tokenizer.json"
#define MAX_GEN         512
#define SEED_TOKENS     24 /* sampled tokens per seeded run */

static const char john_3_16[] =
    "For God so loved the world, that he gave his only begotten Son, that whosoever "
    "believeth in him should not perish, but have everlasting life.";

/* The demo model, its tokenizer and a pool, loaded once for the file. */
struct demo {
    struct eng_model *m;
    struct eng_tokenizer *tok;
    struct eng_pool *pool;
    cJSON *ref;
};

static struct demo demo;

static int setup(void **state)
{
    struct sh_err err = {0};
    (void)state;
    if (eng_model_load(DEMO_MODEL_DIR, &demo.m, &err) ||
        eng_tokenizer_load(DEMO_MODEL_DIR "/tokenizer.json", &demo.tok, &err) ||
        eng_pool_new(2, &demo.pool, &err) ||
        sh_json_parse_file(DEMO_REF "/reference.json", 1 << 24, &demo.ref, &err)) {
        fprintf(stderr, "setup: %s\n", sh_err_msg(&err));
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cJSON_Delete(demo.ref);
    eng_pool_free(demo.pool);
    eng_tokenizer_free(demo.tok);
    eng_model_free(demo.m);
    return 0;
}

/* ---- helpers */

struct prompt {
    int32_t ids[64];
    size_t n;
    int32_t greedy[16];
    size_t n_greedy;
};

static void ids_of(const cJSON *arr, int32_t *out, size_t cap, size_t *n)
{
    const cJSON *e;
    *n = 0;
    cJSON_ArrayForEach(e, arr)
    {
        assert_true(*n < cap);
        out[(*n)++] = (int32_t)e->valueint;
    }
}

static struct prompt ref_prompt(int i)
{
    const cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItem(demo.ref, "prompts"), i);
    struct prompt r;
    assert_non_null(p);
    ids_of(cJSON_GetObjectItem(p, "ids"), r.ids, 64, &r.n);
    ids_of(cJSON_GetObjectItem(p, "greedy_ids"), r.greedy, 16, &r.n_greedy);
    assert_int_equal(r.n_greedy, 16);
    return r;
}

/* What a whole generation produced. */
struct run {
    int32_t ids[MAX_GEN];
    size_t n;
    char text[8192];
    size_t text_len;
    enum eng_gen_end end;
    struct eng_gen_stats st;
    size_t held_steps; /* steps whose token had bytes but emitted none */
};

static struct eng_ctx *new_ctx(const struct eng_model *m, int n_ctx)
{
    struct eng_ctx *c = NULL;
    struct sh_err err = {0};
    if (eng_ctx_new(m, demo.pool, n_ctx, &c, &err))
        fail_msg("ctx: %s", sh_err_msg(&err));
    return c;
}

static struct eng_gen *new_gen(const struct eng_model *m,
                               const struct eng_tokenizer *tok,
                               struct eng_ctx *c,
                               const struct eng_gen_params *p)
{
    struct eng_gen *g = NULL;
    struct sh_err err = {0};
    if (eng_gen_new(m, tok, c, p, &g, &err))
        fail_msg("gen: %s", sh_err_msg(&err));
    return g;
}

/* Steps g to the end, checking each step's text is valid UTF-8. */
static void drain(struct eng_gen *g, const struct eng_tokenizer *tok, struct run *r)
{
    struct eng_gen_token t;
    struct sh_err err = {0};

    r->n = r->text_len = r->held_steps = 0;
    do {
        size_t plen = 0, bad, i = 0;
        if (eng_gen_step(g, &t, &err))
            fail_msg("step: %s", sh_err_msg(&err));
        assert_true(r->n < MAX_GEN);
        r->ids[r->n++] = t.id;
        while (i < t.text_len) {
            size_t len = tok_utf8_seq((const uint8_t *)t.text + i, t.text_len - i, &bad);
            assert_true(len > 0);
            i += len;
        }
        assert_true(r->text_len + t.text_len < sizeof r->text);
        memcpy(r->text + r->text_len, t.text, t.text_len);
        r->text_len += t.text_len;
        if (eng_token_piece(tok, t.id, &plen) && plen && !t.text_len && t.end == ENG_GEN_RUNNING)
            r->held_steps++;
    } while (t.end == ENG_GEN_RUNNING);
    r->text[r->text_len] = '\0';
    r->end = t.end;
    r->st = *eng_gen_stats(g);
}

/* A fresh context sized n_ctx (0: prompt + 600), a generator, the prompt,
 * every step. */
static void
generate(const struct eng_gen_params *p, const int32_t *ids, size_t n, int n_ctx, struct run *r)
{
    struct eng_ctx *c = new_ctx(demo.m, n_ctx ? n_ctx : (int)n + 600);
    struct eng_gen *g = new_gen(demo.m, demo.tok, c, p);
    struct sh_err err = {0};
    if (eng_gen_prefill(g, ids, n, 0, &err))
        fail_msg("prefill: %s", sh_err_msg(&err));
    drain(g, demo.tok, r);
    eng_gen_free(g);
    eng_ctx_free(c);
}

static void greedy_params(struct eng_gen_params *p, size_t max)
{
    eng_gen_params_init(p);
    p->temperature = 0.0f;
    p->max_tokens = max;
}

static char *detok(const struct eng_tokenizer *tok, const int32_t *ids, size_t n, bool skip)
{
    char *s = NULL;
    size_t len;
    struct sh_err err = {0};
    if (eng_detokenize(tok, ids, n, skip, &s, &len, &err))
        fail_msg("detokenize: %s", sh_err_msg(&err));
    return s;
}

static bool is_eos(int32_t id)
{
    const struct eng_config *c = eng_model_config(demo.m);
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] == id)
            return true;
    return false;
}

/* ---- greedy against transformers */

/* Every demo prompt, EOS stopping off: the 16 reference argmax steps. */
static void greedy_matches_reference(void **state)
{
    (void)state;
    for (int i = 0; i < 4; i++) {
        struct prompt pr = ref_prompt(i);
        struct eng_gen_params p;
        struct run r;
        greedy_params(&p, 16);
        p.stop_at_eos = false;
        generate(&p, pr.ids, pr.n, 0, &r);
        assert_int_equal(r.n, 16);
        assert_memory_equal(r.ids, pr.greedy, sizeof pr.greedy);
        assert_int_equal(r.end, ENG_GEN_MAX_TOKENS);
        assert_int_equal(r.st.gen_tokens, 16);
        assert_int_equal(r.st.decode_tokens, 15);
        assert_int_equal(r.st.prompt_tokens, pr.n);
    }
}

/* With EOS stopping: the reference up to and including its first EOS. */
static void greedy_stops_at_eos(void **state)
{
    int stopped = 0;
    (void)state;
    for (int i = 0; i < 4; i++) {
        struct prompt pr = ref_prompt(i);
        struct eng_gen_params p;
        struct run r;
        size_t want = 16;
        char *text;
        greedy_params(&p, 16);
        generate(&p, pr.ids, pr.n, 0, &r);
        for (size_t k = 0; k < 16; k++) {
            if (is_eos(pr.greedy[k])) {
                want = k + 1;
                break;
            }
        }
        assert_int_equal(r.n, want);
        assert_memory_equal(r.ids, pr.greedy, want * sizeof(int32_t));
        assert_int_equal(r.end,
                         want < 16 || is_eos(pr.greedy[15]) ? ENG_GEN_EOS : ENG_GEN_MAX_TOKENS);
        /* The text is the tokens' before the EOS, whose text never shows. */
        text = detok(demo.tok, r.ids, r.end == ENG_GEN_EOS ? r.n - 1 : r.n, true);
        assert_string_equal(r.text, text);
        free(text);
        stopped += r.end == ENG_GEN_EOS;
    }
    assert_true(stopped >= 1); /* p0 ends " the heaven and the earth.<|im_end|>" */
}

/* The model README's sample 3: the ChatML "Recite John 3:16" answer. */
static void chat_answer(void **state)
{
    struct prompt pr = ref_prompt(2);
    struct eng_gen_params p;
    struct run r;
    (void)state;
    greedy_params(&p, 256);
    generate(&p, pr.ids, pr.n, 0, &r);
    assert_memory_equal(r.ids, pr.greedy, sizeof pr.greedy); /* transformers' first 16 */
    assert_string_equal(r.text, john_3_16);
    assert_int_equal(r.end, ENG_GEN_EOS);
    assert_int_equal(r.ids[r.n - 1], 2); /* <|im_end|> */
    assert_string_equal(eng_gen_finish_reason(r.end), "stop");
    assert_int_equal(r.st.gen_tokens, r.n);
    assert_int_equal(r.st.decode_tokens, r.n - 1);
}

/* ---- stops and limits */

/* "ved the wo" starts inside " loved" and ends inside " world": nothing of
 * it, nor anything after, may be emitted. */
static void stop_string_spans_tokens(void **state)
{
    struct prompt pr = ref_prompt(2);
    const char *stops[] = {"nothing like this", "ved the wo"};
    struct eng_gen_params p;
    struct run r;
    (void)state;
    greedy_params(&p, 256);
    p.stops = stops;
    p.n_stops = 2;
    generate(&p, pr.ids, pr.n, 0, &r);
    assert_string_equal(r.text, "For God so lo");
    assert_int_equal(r.end, ENG_GEN_STOP_STRING);
    assert_string_equal(eng_gen_finish_reason(r.end), "stop");
    /* For, God, so, loved, the, world: the stop completes with " world". */
    assert_int_equal(r.n, 6);
    assert_memory_equal(r.ids, pr.greedy, 6 * sizeof(int32_t));
}

/* A stop string whose prefix appears but which never completes: the held
 * prefix comes out once the text diverges, and at the end. */
static void stop_string_held_then_released(void **state)
{
    struct prompt pr = ref_prompt(2);
    const char *stops[] = {"so lovedX", "world, thatX"};
    struct eng_gen_params p;
    struct run r;
    (void)state;
    greedy_params(&p, 8);
    p.stops = stops;
    p.n_stops = 2;
    generate(&p, pr.ids, pr.n, 0, &r);
    assert_string_equal(r.text, "For God so loved the world, that");
    assert_int_equal(r.end, ENG_GEN_MAX_TOKENS);
}

static void max_tokens_is_length(void **state)
{
    struct prompt pr = ref_prompt(3);
    struct eng_gen_params p;
    struct eng_ctx *c = new_ctx(demo.m, 64);
    struct eng_gen *g;
    struct sh_err err = {0};
    struct run r;
    (void)state;
    greedy_params(&p, 5);
    p.stop_at_eos = false;
    g = new_gen(demo.m, demo.tok, c, &p);
    assert_int_equal(eng_gen_prefill(g, pr.ids, pr.n, 0, &err), 0);
    drain(g, demo.tok, &r);
    assert_int_equal(r.n, 5);
    assert_memory_equal(r.ids, pr.greedy, 5 * sizeof(int32_t));
    assert_int_equal(r.end, ENG_GEN_MAX_TOKENS);
    assert_string_equal(eng_gen_finish_reason(r.end), "length");
    /* The last token is never fed: the context holds prompt + 4. */
    assert_int_equal(eng_ctx_pos(c), (int)pr.n + 4);
    eng_gen_free(g);
    eng_ctx_free(c);
}

/* A context of prompt + 3 positions: 3 tokens fed, the 4th cannot be. */
static void context_full_is_length(void **state)
{
    struct prompt pr = ref_prompt(3);
    struct eng_gen_params p;
    struct run r;
    (void)state;
    greedy_params(&p, 0);
    p.stop_at_eos = false;
    generate(&p, pr.ids, pr.n, (int)pr.n + 3, &r);
    assert_int_equal(r.n, 4);
    assert_memory_equal(r.ids, pr.greedy, 4 * sizeof(int32_t));
    assert_int_equal(r.end, ENG_GEN_CTX_FULL);
    assert_string_equal(eng_gen_finish_reason(r.end), "length");
}

static void context_overflow_error(void **state)
{
    struct prompt pr = ref_prompt(0); /* 5 tokens */
    struct eng_gen_params p;
    struct eng_ctx *c = new_ctx(demo.m, 5);
    struct eng_gen *g;
    struct sh_err err = {0};
    struct eng_gen_token t;
    (void)state;
    greedy_params(&p, 4);
    g = new_gen(demo.m, demo.tok, c, &p);
    assert_int_equal(eng_gen_prefill(g, pr.ids, pr.n, 0, &err), SH_ERANGE);
    assert_non_null(strstr(sh_err_msg(&err), "prompt is 5 tokens and the context holds 5"));
    assert_int_equal(eng_ctx_pos(c), 0);
    assert_int_equal(eng_gen_step(g, &t, &err), SH_EINVAL); /* no prompt yet */
    /* A shorter prompt fits: prefill may be retried after an error. */
    assert_int_equal(eng_gen_prefill(g, pr.ids, 4, 0, &err), 0);
    assert_int_equal(eng_gen_step(g, &t, &err), 0);
    eng_gen_free(g);
    eng_ctx_free(c);
}

/* Special tokens' text follows skip_special; the EOS's never shows when it
 * stops, and does (when not skipped) when EOS stopping is off. */
static void special_tokens_text(void **state)
{
    struct prompt pr = ref_prompt(0);
    struct eng_gen_params p;
    struct run r;
    char *want;
    (void)state;
    greedy_params(&p, 10); /* ... earth.<|im_end|>\n<|endoftext|><|im_start|> */
    p.stop_at_eos = false;
    p.skip_special = false;
    generate(&p, pr.ids, pr.n, 0, &r);
    want = detok(demo.tok, r.ids, r.n, false);
    assert_string_equal(r.text, want);
    assert_non_null(strstr(r.text, "earth.<|im_end|>\n<|endoftext|><|im_start|>"));
    free(want);
    p.skip_special = true;
    generate(&p, pr.ids, pr.n, 0, &r);
    want = detok(demo.tok, r.ids, r.n, true);
    assert_string_equal(r.text, want);
    assert_null(strstr(r.text, "<|"));
    free(want);
}

/* Extra stop ids end generation like EOS (a chat format's end of turn). */
static void stop_ids(void **state)
{
    struct prompt pr = ref_prompt(1);
    int32_t ids[] = {pr.greedy[3]};
    struct eng_gen_params p;
    struct run r;
    char *want;
    (void)state;
    greedy_params(&p, 16);
    p.stop_ids = ids;
    p.n_stop_ids = 1;
    generate(&p, pr.ids, pr.n, 0, &r);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.end, ENG_GEN_EOS);
    want = detok(demo.tok, r.ids, 3, true);
    assert_string_equal(r.text, want);
    free(want);
}

/* ---- sampling */

static void seeded(uint64_t seed, struct run *r)
{
    struct prompt pr = ref_prompt(1);
    struct eng_gen_params p;
    eng_gen_params_init(&p); /* generation_config: 0.7, top_p 0.9, top_k 40 */
    p.temperature = 1.2f;
    p.seed = seed;
    p.max_tokens = SEED_TOKENS;
    p.stop_at_eos = false;
    generate(&p, pr.ids, pr.n, 0, r);
}

static void seed_determinism(void **state)
{
    static struct run a, b, c;
    (void)state;
    seeded(42, &a);
    seeded(42, &b);
    seeded(43, &c);
    assert_int_equal(a.n, SEED_TOKENS);
    assert_memory_equal(a.ids, b.ids, sizeof a.ids[0] * SEED_TOKENS);
    assert_string_equal(a.text, b.text);
    assert_true(memcmp(a.ids, c.ids, sizeof a.ids[0] * SEED_TOKENS) != 0);
    assert_true(strcmp(a.text, c.text) != 0);
}

static void resolve_defaults(void **state)
{
    struct eng_gen_defaults d = {.present = true,
                                 .do_sample = true,
                                 .temperature = 0.7f,
                                 .top_p = 0.9f,
                                 .top_k = 40,
                                 .repetition_penalty = 1.1f};
    struct eng_gen_params p;
    struct eng_sampler_params s;
    struct sh_err err = {0};
    (void)state;
    eng_gen_params_init(&p);
    p.seed = 7;
    assert_int_equal(eng_gen_resolve(&p, &d, &s, &err), 0);
    assert_true(s.temperature == 0.7f && s.top_p == 0.9f && s.top_k == 40);
    assert_true(s.repetition_penalty == 1.1f && s.min_p == 0.0f && s.seed == 7);
    /* Set fields win; top_k 0 is "off", not "unset". */
    p.temperature = 0.3f;
    p.top_k = 0;
    p.min_p = 0.05f;
    assert_int_equal(eng_gen_resolve(&p, &d, &s, &err), 0);
    assert_true(s.temperature == 0.3f && s.top_k == 0 && s.min_p == 0.05f && s.top_p == 0.9f);
    /* do_sample false: greedy, as transformers' generate(). */
    eng_gen_params_init(&p);
    d.do_sample = false;
    assert_int_equal(eng_gen_resolve(&p, &d, &s, &err), 0);
    assert_true(s.temperature == 0.0f && s.repetition_penalty == 1.1f);
    /* No file: the sampler's "off" values. */
    d.present = false;
    assert_int_equal(eng_gen_resolve(&p, &d, &s, &err), 0);
    assert_true(s.temperature == 1.0f && s.top_p == 1.0f && s.top_k == 0);
    assert_true(s.repetition_penalty == 1.0f);
    /* top_p 0 in the file: the top token only. */
    d.present = d.do_sample = true;
    d.top_p = 0.0f;
    assert_int_equal(eng_gen_resolve(&p, &d, &s, &err), 0);
    assert_true(s.top_p > 0.0f && s.top_p < 1e-30f);
    /* Out of range, and a top_k that is neither set nor unset. */
    p.temperature = -1.0f;
    assert_int_equal(eng_gen_resolve(&p, &d, &s, &err), SH_EINVAL);
    assert_non_null(strstr(sh_err_msg(&err), "temperature"));
    eng_gen_params_init(&p);
    p.top_k = -2;
    assert_int_equal(eng_gen_resolve(&p, &d, &s, &err), SH_EINVAL);
}

/* logprobs are the raw model distribution: against the reference logits
 * after prompt p0 (log softmax in double). */
static void logprobs_match_reference(void **state)
{
    struct prompt pr = ref_prompt(0);
    const cJSON *top5 = cJSON_GetArrayItem(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(demo.ref, "prompts"), 0),
                            "top5_ids"),
        4);
    struct eng_gen_params p;
    struct eng_ctx *c = new_ctx(demo.m, 32);
    struct eng_gen *g;
    struct eng_gen_token t;
    struct sh_err err = {0};
    char *buf = NULL;
    size_t len = 0, vocab = 8192;
    double max = -INFINITY, sum = 0, lse;
    float ref[8192];
    (void)state;
    assert_int_equal(sh_read_file(DEMO_REF "/p0_len5.last.f32", 1 << 20, &buf, &len, &err), 0);
    assert_int_equal(len, sizeof ref);
    memcpy(ref, buf, len);
    free(buf);
    for (size_t i = 0; i < vocab; i++)
        max = ref[i] > max ? ref[i] : max;
    for (size_t i = 0; i < vocab; i++)
        sum += exp(ref[i] - max);
    lse = max + log(sum);

    greedy_params(&p, 4);
    p.top_logprobs = 5;
    g = new_gen(demo.m, demo.tok, c, &p);
    assert_int_equal(eng_gen_prefill(g, pr.ids, pr.n, 0, &err), 0);
    assert_int_equal(eng_gen_step(g, &t, &err), 0);
    assert_int_equal(t.id, pr.greedy[0]);
    assert_true(t.prob == 1.0f);
    assert_int_equal(t.n_top, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(t.top[i].id, cJSON_GetArrayItem(top5, i)->valueint);
        assert_true(fabs(t.top[i].logprob - (ref[t.top[i].id] - lse)) < 2e-3);
    }
    assert_true(t.logprob == t.top[0].logprob);
    assert_true(t.logprob < 0.0f);
    eng_gen_free(g);
    /* The repetition penalty divides the best logit (262, in the prompt) by
     * 1.5, so greedy picks the runner-up, 347; its logprob is still the
     * model's. */
    greedy_params(&p, 4);
    p.top_logprobs = 2;
    p.repetition_penalty = 1.5f;
    eng_ctx_truncate(c, 0);
    g = new_gen(demo.m, demo.tok, c, &p);
    assert_int_equal(eng_gen_prefill(g, pr.ids, pr.n, 0, &err), 0);
    assert_int_equal(eng_gen_step(g, &t, &err), 0);
    assert_int_equal(t.id, 347);
    assert_true(fabs(t.logprob - (ref[347] - lse)) < 2e-3);
    assert_int_equal(t.n_top, 2);
    assert_int_equal(t.top[0].id, 262);
    assert_int_equal(t.top[1].id, 347);
    eng_gen_free(g);
    /* Off: NaN and no alternatives. */
    greedy_params(&p, 4);
    eng_ctx_truncate(c, 0);
    g = new_gen(demo.m, demo.tok, c, &p);
    assert_int_equal(eng_gen_prefill(g, pr.ids, pr.n, 0, &err), 0);
    assert_int_equal(eng_gen_step(g, &t, &err), 0);
    assert_true(isnan(t.logprob));
    assert_int_equal(t.n_top, 0);
    eng_gen_free(g);
    eng_ctx_free(c);
}

/* A context reused: the cached prefix is not evaluated again, and the
 * tokens are the same as from scratch. */
static void prefix_reuse(void **state)
{
    struct prompt pr = ref_prompt(1);
    struct eng_gen_params p;
    struct eng_ctx *c = new_ctx(demo.m, 64);
    struct eng_gen *g;
    struct sh_err err = {0};
    struct run r;
    size_t cached[] = {0, 3, 7};
    (void)state;
    greedy_params(&p, 6);
    p.stop_at_eos = false;
    for (size_t k = 0; k < 3; k++) {
        g = new_gen(demo.m, demo.tok, c, &p);
        assert_int_equal(eng_gen_prefill(g, pr.ids, pr.n, cached[k], &err), 0);
        drain(g, demo.tok, &r);
        assert_int_equal(r.n, 6);
        assert_memory_equal(r.ids, pr.greedy, 6 * sizeof(int32_t));
        assert_int_equal(r.st.prompt_cached, cached[k] < pr.n ? cached[k] : pr.n - 1);
        eng_gen_free(g);
    }
    /* More cached tokens than the context holds. */
    eng_ctx_truncate(c, 2);
    g = new_gen(demo.m, demo.tok, c, &p);
    assert_int_equal(eng_gen_prefill(g, pr.ids, pr.n, 3, &err), SH_EINVAL);
    eng_gen_free(g);
    eng_ctx_free(c);
}

/* ---- API errors */

static void api_errors(void **state)
{
    struct prompt pr = ref_prompt(0);
    struct eng_gen_params p;
    struct eng_ctx *c = new_ctx(demo.m, 32);
    struct eng_gen *g = NULL;
    struct eng_gen_token t;
    struct sh_err err = {0};
    const char *empty[] = {""}, *bad_utf8[] = {"a\xC3"};
    int32_t bad_id[] = {8192}, bad_prompt[] = {1, 9000};
    char long_stop[ENG_GEN_MAX_STOP_LEN + 2];
    const char *too_long[] = {long_stop};
    (void)state;
    memset(long_stop, 'a', sizeof long_stop - 1);
    long_stop[sizeof long_stop - 1] = '\0';

    greedy_params(&p, 2);
    p.stops = empty;
    p.n_stops = 1;
    assert_int_equal(eng_gen_new(demo.m, demo.tok, c, &p, &g, &err), SH_EINVAL);
    assert_non_null(strstr(sh_err_msg(&err), "empty"));
    p.stops = bad_utf8;
    assert_int_equal(eng_gen_new(demo.m, demo.tok, c, &p, &g, &err), SH_EINVAL);
    assert_non_null(strstr(sh_err_msg(&err), "UTF-8"));
    p.stops = too_long;
    assert_int_equal(eng_gen_new(demo.m, demo.tok, c, &p, &g, &err), SH_EINVAL);
    greedy_params(&p, 2);
    p.stop_ids = bad_id;
    p.n_stop_ids = 1;
    assert_int_equal(eng_gen_new(demo.m, demo.tok, c, &p, &g, &err), SH_EINVAL);
    assert_non_null(strstr(sh_err_msg(&err), "8192"));
    greedy_params(&p, 2);
    p.top_logprobs = ENG_GEN_MAX_TOP_LOGPROBS + 1;
    assert_int_equal(eng_gen_new(demo.m, demo.tok, c, &p, &g, &err), SH_EINVAL);
    greedy_params(&p, 2);
    p.top_p = 0.0f;
    assert_int_equal(eng_gen_new(demo.m, demo.tok, c, &p, &g, &err), SH_EINVAL);
    assert_null(g);

    greedy_params(&p, 2);
    g = new_gen(demo.m, demo.tok, c, &p);
    assert_int_equal(eng_gen_prefill(g, pr.ids, 0, 0, &err), SH_EINVAL);
    assert_int_equal(eng_gen_prefill(g, bad_prompt, 2, 0, &err), SH_ERANGE);
    assert_non_null(strstr(sh_err_msg(&err), "9000"));
    assert_int_equal(eng_gen_prefill(g, pr.ids, pr.n, 0, &err), 0);
    assert_int_equal(eng_gen_prefill(g, pr.ids, pr.n, 0, &err), SH_EINVAL);
    assert_int_equal(eng_gen_step(g, &t, &err), 0);
    assert_int_equal(t.end, ENG_GEN_RUNNING);
    assert_int_equal(eng_gen_step(g, &t, &err), 0);
    assert_int_equal(t.end, ENG_GEN_MAX_TOKENS);
    assert_int_equal(eng_gen_step(g, &t, &err), SH_EINVAL);
    assert_non_null(strstr(sh_err_msg(&err), "finished"));
    eng_gen_free(g);
    eng_gen_free(NULL);
    eng_ctx_free(c);

    assert_null(eng_gen_finish_reason(ENG_GEN_RUNNING));
    assert_string_equal(eng_gen_end_name(ENG_GEN_CTX_FULL), "context full");
}

/* ---- streaming UTF-8 (the repair itself: test_gen_utf8.c) */

/* End to end: a random-weight Qwen2 (896 ids, a quarter of them raw bytes
 * in Qwen3's vocabulary) sampled hot. Every step's text is valid UTF-8
 * (drain checks), some steps hold a split character back, and the whole
 * equals the tokenizer's decode of the ids. */
static void utf8_random_model(void **state)
{
    struct eng_model *m = NULL;
    struct eng_tokenizer *tok = NULL;
    struct eng_ctx *c = NULL;
    struct eng_gen *g;
    struct eng_gen_params p;
    struct sh_err err = {0};
    static struct run r;
    int32_t prompt[] = {78};
    char *want;
    (void)state;
    if (eng_model_load(QWEN2_MODEL, &m, &err) || eng_tokenizer_load(QWEN3_TOKENIZER, &tok, &err))
        fail_msg("%s", sh_err_msg(&err));
    c = new_ctx(m, 400);
    eng_gen_params_init(&p);
    p.temperature = 50.0f; /* close to uniform */
    p.seed = 3;
    p.max_tokens = 300;
    p.stop_at_eos = false;
    p.skip_special = false;
    g = new_gen(m, tok, c, &p);
    assert_int_equal(eng_gen_prefill(g, prompt, 1, 0, &err), 0);
    drain(g, tok, &r);
    assert_int_equal(r.n, 300);
    want = detok(tok, r.ids, r.n, false);
    assert_string_equal(r.text, want);
    assert_true(r.held_steps > 0);
    free(want);
    eng_gen_free(g);
    eng_ctx_free(c);
    eng_tokenizer_free(tok);
    eng_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(greedy_matches_reference),
        cmocka_unit_test(greedy_stops_at_eos),
        cmocka_unit_test(chat_answer),
        cmocka_unit_test(stop_string_spans_tokens),
        cmocka_unit_test(stop_string_held_then_released),
        cmocka_unit_test(max_tokens_is_length),
        cmocka_unit_test(context_full_is_length),
        cmocka_unit_test(context_overflow_error),
        cmocka_unit_test(special_tokens_text),
        cmocka_unit_test(stop_ids),
        cmocka_unit_test(seed_determinism),
        cmocka_unit_test(resolve_defaults),
        cmocka_unit_test(logprobs_match_reference),
        cmocka_unit_test(prefix_reuse),
        cmocka_unit_test(api_errors),
        cmocka_unit_test(utf8_random_model),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
