/* tests/engine/test_sampler.c: the sampler on crafted logits: RNG golden
 * values, seed determinism, the greedy tie rule, exactly which ids top-k /
 * top-p / min-p can ever draw and that the kept set is renormalised
 * (empirical frequencies over many seeded draws), penalties to the exact
 * value, and parameter validation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"
#include "lib/test.h"

#define DRAWS 40000
/* Five standard deviations of a frequency estimated from DRAWS draws with
 * p = 1/2 (the worst case); seeded, so the test cannot flake. */
#define FREQ_TOL 0.0125

static void rng_golden(void **state)
{
    static const uint64_t want0[] = {0x99ec5f36cb75f2b4ULL, 0xbf6e1f784956452aULL,
                                     0x1a5f849d4933e6e0ULL, 0x6aa594f1262d2d2cULL};
    static const uint64_t want42[] = {0x15780b2e0c2ec716ULL, 0x6104d9866d113a7eULL,
                                      0xae17533239e499a1ULL, 0xecb8ad4703b360a1ULL};
    struct eng_rng r;

    (void)state;
    eng_rng_seed(&r, 0);
    for (int i = 0; i < 4; i++)
        assert_true(eng_rng_next(&r) == want0[i]);
    eng_rng_seed(&r, 42);
    for (int i = 0; i < 4; i++)
        assert_true(eng_rng_next(&r) == want42[i]);
    /* uniform: the top 53 bits of the next output, over 2^53 */
    eng_rng_seed(&r, 0);
    for (int i = 0; i < 4; i++)
        assert_true(eng_rng_uniform(&r) == (double)(want0[i] >> 11) / 9007199254740992.0);
    eng_rng_seed(&r, 7);
    for (int i = 0; i < 100000; i++) {
        double u = eng_rng_uniform(&r);
        assert_true(u >= 0.0 && u < 1.0);
    }
}

static struct eng_sampler *make(const struct eng_sampler_params *p, size_t vocab)
{
    struct eng_sampler *s = NULL;
    struct sh_err err = {0};
    if (eng_sampler_new(p, vocab, &s, &err))
        fail_msg("%s", sh_err_msg(&err));
    return s;
}

/* logits from probabilities (log p), so the intended distribution is exact
 * up to float rounding */
static void from_probs(float *logits, const double *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        logits[i] = p[i] > 0 ? (float)log(p[i]) : -INFINITY;
}

/* Draws DRAWS tokens (fresh logits each time) and counts them. */
static void
draw_counts(const struct eng_sampler_params *p, const float *logits, size_t n, size_t *counts)
{
    struct eng_sampler *s = make(p, n);
    float *work = malloc(n * sizeof *work);

    assert_non_null(work);
    memset(counts, 0, n * sizeof *counts);
    for (int d = 0; d < DRAWS; d++) {
        memcpy(work, logits, n * sizeof *work);
        int32_t id = eng_sampler_sample(s, work, NULL);
        assert_true(id >= 0 && (size_t)id < n);
        counts[id]++;
    }
    free(work);
    eng_sampler_free(s);
}

/* Only ids with want[i] > 0 may be drawn; frequencies within FREQ_TOL. */
static void check_freqs(const size_t *counts, const double *want, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double f = (double)counts[i] / DRAWS;
        if (want[i] == 0.0 && counts[i] != 0)
            fail_msg("id %zu drawn %zu times, should be excluded", i, counts[i]);
        if (fabs(f - want[i]) > FREQ_TOL)
            fail_msg("id %zu: frequency %.4f, want %.4f", i, f, want[i]);
    }
}

static void seed_determinism(void **state)
{
    static const double probs[] = {0.3, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05};
    struct eng_sampler_params p;
    int32_t a[500], b[500];
    float logits[7], work[7];
    int differ = 0;

    (void)state;
    eng_sampler_params_default(&p);
    from_probs(logits, probs, 7);
    for (int run = 0; run < 3; run++) {
        p.seed = run < 2 ? 1234 : 1235;
        struct eng_sampler *s = make(&p, 7);
        for (int i = 0; i < 500; i++) {
            memcpy(work, logits, sizeof work);
            (run == 0 ? a : b)[i] = eng_sampler_sample(s, work, NULL);
        }
        eng_sampler_free(s);
        if (run == 1)
            assert_memory_equal(a, b, sizeof a);
    }
    for (int i = 0; i < 500; i++)
        differ += a[i] != b[i];
    assert_true(differ > 100); /* seeds 1234 and 1235 give different streams */
}

static void greedy_ties(void **state)
{
    struct eng_sampler_params p;
    struct eng_sampler *s;
    float prob = 0;

    (void)state;
    eng_sampler_params_default(&p);
    p.temperature = 0;
    s = make(&p, 5);
    {
        float l[5] = {1, 3, 3, 2, 3};
        assert_int_equal(eng_sampler_sample(s, l, &prob), 1);
        assert_true(prob == 1.0f);
    }
    {
        float l[5] = {NAN, 0.5f, NAN, 0.5f, -1};
        assert_int_equal(eng_sampler_sample(s, l, NULL), 1);
    }
    {
        float l[5] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
        assert_int_equal(eng_sampler_sample(s, l, NULL), 0);
    }
    {
        float l[5] = {NAN, NAN, NAN, NAN, NAN};
        assert_int_equal(eng_sampler_sample(s, l, NULL), 0);
    }
    {
        float l[5] = {0, 0, 0, 0, INFINITY};
        assert_int_equal(eng_sampler_sample(s, l, NULL), 4);
    }
    eng_sampler_free(s);
}

static void temperature_scales(void **state)
{
    /* T = 0.5 squares the odds: [1, 2] becomes [1, 4]. */
    static const double want[] = {0.2, 0.8};
    float logits[2] = {0.0f, (float)log(2.0)};
    struct eng_sampler_params p;
    size_t counts[2];

    (void)state;
    eng_sampler_params_default(&p);
    p.temperature = 0.5f;
    p.seed = 11;
    draw_counts(&p, logits, 2, counts);
    check_freqs(counts, want, 2);
}

static void top_k_set(void **state)
{
    static const double probs[] = {0.05, 0.3, 0.05, 0.2, 0.1, 0.1, 0.1, 0.1};
    /* kept: ids 1, 3 and the lowest id among the 0.1s (4); renormalised */
    static const double want[] = {0, 0.5, 0, 0.2 / 0.6, 0.1 / 0.6, 0, 0, 0};
    struct eng_sampler_params p;
    float logits[8];
    size_t counts[8];

    (void)state;
    from_probs(logits, probs, 8);
    eng_sampler_params_default(&p);
    p.top_k = 3;
    p.seed = 99;
    draw_counts(&p, logits, 8, counts);
    check_freqs(counts, want, 8);
    /* top_k >= vocab is no truncation */
    p.top_k = 8;
    draw_counts(&p, logits, 8, counts);
    check_freqs(counts, probs, 8);
}

static void top_p_set(void **state)
{
    static const double probs[] = {0.15, 0.5, 0.1, 0.25};
    static const double want74[] = {0, 0.5 / 0.75, 0, 0.25 / 0.75};
    static const double want76[] = {0.15 / 0.9, 0.5 / 0.9, 0, 0.25 / 0.9};
    struct eng_sampler_params p;
    float logits[4];
    size_t counts[4];

    (void)state;
    from_probs(logits, probs, 4);
    eng_sampler_params_default(&p);
    p.seed = 5;
    p.top_p = 0.74f;
    draw_counts(&p, logits, 4, counts);
    check_freqs(counts, want74, 4);
    p.top_p = 0.76f;
    draw_counts(&p, logits, 4, counts);
    check_freqs(counts, want76, 4);
    /* after top-k: the nucleus of the renormalised top-2 {1: 2/3, 3: 1/3} */
    p.top_k = 2;
    p.top_p = 0.6f;
    draw_counts(&p, logits, 4, counts);
    assert_int_equal(counts[1], DRAWS);
    /* top-3 renormalised: {1: .556, 3: .278, 0: .167}; 0.8 keeps 1 and 3 */
    p.top_k = 3;
    p.top_p = 0.8f;
    draw_counts(&p, logits, 4, counts);
    check_freqs(counts, want74, 4);
}

/* A large vocabulary takes the cutoff path: three heavy tokens, 5000 light. */
static void top_p_large_vocab(void **state)
{
    enum { V = 5003 };
    static double probs[V], want[V];
    static float logits[V];
    static size_t counts[V];
    struct eng_sampler_params p;

    (void)state;
    for (size_t i = 0; i < V; i++)
        probs[i] = 0.1 / 5000;
    probs[17] = 0.5;
    probs[4000] = 0.3;
    probs[5002] = 0.1;
    from_probs(logits, probs, V);
    eng_sampler_params_default(&p);
    p.seed = 77;
    p.top_p = 0.85f; /* 0.5 + 0.3 < 0.85 <= 0.9 */
    want[17] = 0.5 / 0.9;
    want[4000] = 0.3 / 0.9;
    want[5002] = 0.1 / 0.9;
    draw_counts(&p, logits, V, counts);
    check_freqs(counts, want, V);
    /* Two equal tokens and a tiny top_p: the cutoff alone would drop both;
     * the nucleus is the first (lowest id). */
    {
        float l2[2] = {1.0f, 1.0f};
        size_t c2[2];
        p.top_p = 0.1f;
        draw_counts(&p, l2, 2, c2);
        assert_int_equal(c2[0], DRAWS);
    }
}

static void min_p_set(void **state)
{
    static const double probs[] = {0.05, 0.15, 0.5, 0.3};
    /* min_p 0.2: bar 0.1, so id 0 goes; the rest renormalised over 0.95 */
    static const double want[] = {0, 0.15 / 0.95, 0.5 / 0.95, 0.3 / 0.95};
    struct eng_sampler_params p;
    struct eng_sampler *s;
    float logits[4], work[4], prob = 0;
    size_t counts[4];

    (void)state;
    from_probs(logits, probs, 4);
    eng_sampler_params_default(&p);
    p.seed = 3;
    p.min_p = 0.2f;
    draw_counts(&p, logits, 4, counts);
    check_freqs(counts, want, 4);
    /* after top-k (the sorted path): top-4 of five keeps ids 0-3, min-p
     * then drops id 0 */
    {
        static const double probs5[] = {0.05, 0.15, 0.5, 0.3, 0};
        static const double want5[] = {0, 0.15 / 0.95, 0.5 / 0.95, 0.3 / 0.95, 0};
        float logits5[5];
        size_t counts5[5];
        from_probs(logits5, probs5, 5);
        p.top_k = 4;
        draw_counts(&p, logits5, 5, counts5);
        check_freqs(counts5, want5, 5);
    }
    /* the reported probability is the renormalised one */
    p.top_k = 0;
    p.min_p = 0.7f; /* bar 0.35: only id 2 */
    s = make(&p, 4);
    memcpy(work, logits, sizeof work);
    assert_int_equal(eng_sampler_sample(s, work, &prob), 2);
    assert_true(fabsf(prob - 1.0f) < 1e-6f);
    eng_sampler_free(s);
    p.min_p = 0.5f; /* bar 0.25: ids 2 and 3 */
    s = make(&p, 4);
    for (int i = 0; i < 50; i++) {
        int32_t id;
        memcpy(work, logits, sizeof work);
        id = eng_sampler_sample(s, work, &prob);
        assert_true(id == 2 || id == 3);
        assert_true(fabsf(prob - (float)(probs[id] / 0.8)) < 1e-5f);
    }
    eng_sampler_free(s);
}

static void repetition_penalty_exact(void **state)
{
    struct eng_sampler_params p;
    struct eng_sampler *s;
    const int32_t prompt[] = {0, 1, 2, 2, -5, 99};

    (void)state;
    eng_sampler_params_default(&p);
    p.temperature = 0;
    p.repetition_penalty = 2.0f;
    s = make(&p, 5);
    eng_sampler_add_prompt(s, prompt, 6); /* -5 and 99 are ignored */
    {
        float l[5] = {3.0f, -2.0f, 0.0f, 1.0f, 1.25f};
        /* HF: positive / 2, negative * 2, each seen token once */
        assert_int_equal(eng_sampler_sample(s, l, NULL), 0);
        assert_true(l[0] == 1.5f && l[1] == -4.0f && l[2] == 0.0f && l[3] == 1.0f && l[4] == 1.25f);
    }
    {
        /* id 0 was generated, id 4 never: 4 wins now */
        float l[5] = {2.0f, 0, 0, 0, 1.5f};
        assert_int_equal(eng_sampler_sample(s, l, NULL), 4);
        assert_true(l[0] == 1.0f && l[4] == 1.5f);
    }
    {
        /* and now 4 is penalised too */
        float l[5] = {2.0f, 0, 0, 0, 1.5f};
        eng_sampler_sample(s, l, NULL);
        assert_true(l[4] == 0.75f);
    }
    eng_sampler_free(s);
}

static void presence_frequency_exact(void **state)
{
    struct eng_sampler_params p;
    struct eng_sampler *s;
    const int32_t prompt[] = {3};
    float force[4][4] = {{0, 9, 0, 0}, {0, 9, 0, 0}, {0, 0, 9, 0}, {0, 0, 0, 0}};

    (void)state;
    eng_sampler_params_default(&p);
    p.temperature = 0;
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 0.25f;
    s = make(&p, 4);
    eng_sampler_add_prompt(s, prompt, 1); /* the prompt does not count here */
    assert_int_equal(eng_sampler_sample(s, force[0], NULL), 1);
    assert_int_equal(eng_sampler_sample(s, force[1], NULL), 1);
    assert_int_equal(eng_sampler_sample(s, force[2], NULL), 2);
    /* OpenAI: l -= count * frequency + (count > 0) * presence */
    assert_int_equal(eng_sampler_sample(s, force[3], NULL), 0);
    assert_true(force[3][0] == 0.0f);
    assert_true(force[3][1] == -1.0f);  /* 2 * 0.25 + 0.5 */
    assert_true(force[3][2] == -0.75f); /* 1 * 0.25 + 0.5 */
    assert_true(force[3][3] == 0.0f);
    eng_sampler_free(s);

    /* negative penalties encourage repeats */
    p.presence_penalty = -2.0f;
    p.frequency_penalty = 0;
    s = make(&p, 2);
    {
        float a[2] = {0, 1}, b[2] = {1.5f, 0};
        assert_int_equal(eng_sampler_sample(s, a, NULL), 1);
        assert_int_equal(eng_sampler_sample(s, b, NULL), 1);
        assert_true(b[1] == 2.0f);
    }
    eng_sampler_free(s);
}

static void params_validated(void **state)
{
    struct eng_sampler_params p;
    struct eng_sampler *s = NULL;
    struct sh_err err = {0};

    (void)state;
#define EXPECT_BAD(field, value, word)                                                             \
    do {                                                                                           \
        eng_sampler_params_default(&p);                                                            \
        p.field = value;                                                                           \
        assert_int_equal(eng_sampler_params_check(&p, &err), SH_EINVAL);                           \
        assert_non_null(strstr(sh_err_msg(&err), word));                                           \
        assert_int_equal(eng_sampler_new(&p, 10, &s, &err), SH_EINVAL);                            \
        assert_null(s);                                                                            \
    } while (0)
    EXPECT_BAD(temperature, -0.1f, "temperature");
    EXPECT_BAD(temperature, NAN, "temperature");
    EXPECT_BAD(temperature, INFINITY, "temperature");
    EXPECT_BAD(top_k, -1, "top_k");
    EXPECT_BAD(top_p, 0.0f, "top_p");
    EXPECT_BAD(top_p, 1.01f, "top_p");
    EXPECT_BAD(top_p, NAN, "top_p");
    EXPECT_BAD(min_p, -0.01f, "min_p");
    EXPECT_BAD(min_p, 1.5f, "min_p");
    EXPECT_BAD(min_p, NAN, "min_p");
    EXPECT_BAD(repetition_penalty, 0.0f, "repetition_penalty");
    EXPECT_BAD(repetition_penalty, -1.0f, "repetition_penalty");
    EXPECT_BAD(repetition_penalty, NAN, "repetition_penalty");
    EXPECT_BAD(presence_penalty, 2.5f, "presence_penalty");
    EXPECT_BAD(presence_penalty, -2.01f, "presence_penalty");
    EXPECT_BAD(frequency_penalty, 3.0f, "frequency_penalty");
    EXPECT_BAD(frequency_penalty, NAN, "frequency_penalty");
#undef EXPECT_BAD
    /* the edges are valid */
    eng_sampler_params_default(&p);
    assert_int_equal(eng_sampler_params_check(&p, &err), 0);
    p.temperature = 0;
    p.top_p = 1;
    p.min_p = 1;
    p.presence_penalty = -2;
    p.frequency_penalty = 2;
    p.top_k = 1;
    assert_int_equal(eng_sampler_params_check(&p, &err), 0);
    eng_sampler_params_default(&p);
    assert_int_equal(eng_sampler_new(&p, 0, &s, &err), SH_EINVAL);
    assert_null(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rng_golden),
        cmocka_unit_test(seed_determinism),
        cmocka_unit_test(greedy_ties),
        cmocka_unit_test(temperature_scales),
        cmocka_unit_test(top_k_set),
        cmocka_unit_test(top_p_set),
        cmocka_unit_test(top_p_large_vocab),
        cmocka_unit_test(min_p_set),
        cmocka_unit_test(repetition_penalty_exact),
        cmocka_unit_test(presence_frequency_exact),
        cmocka_unit_test(params_validated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
