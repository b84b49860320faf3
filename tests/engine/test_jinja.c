/* tests/engine/test_jinja.c: the Jinja engine: one render per construct
 * against jinja2's own output (jinja_cases.h), error cases with their codes
 * and line:col, resource limits, and random mutations of real chat templates
 * that must never crash (run under ASan/UBSan). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/file.h"
#include "common/json.h"
#include "engine/jinja.h"
#include "jinja_cases.h"
#include "lib/test.h"

static cJSON *context(void)
{
    cJSON *ctx = NULL;
    assert_int_equal(
        sh_json_parse(JINJA_CASES_CONTEXT, strlen(JINJA_CASES_CONTEXT), "ctx", &ctx, NULL), 0);
    return ctx;
}

/* Renders src; returns the code, *out the text (or the error message). */
static int render_lim(const char *src,
                      const cJSON *vars,
                      const struct tm *now,
                      const struct eng_jinja_limits *lim,
                      char **out)
{
    struct eng_jinja *t = NULL;
    struct sh_err err;
    size_t len;
    int rc;
    sh_err_clear(&err);
    *out = NULL;
    rc = eng_jinja_compile(src, strlen(src), &t, &err);
    if (rc == 0) {
        rc = eng_jinja_render(t, vars, now, lim, out, &len, &err);
        if (rc == 0)
            assert_int_equal(strlen(*out), len);
    }
    eng_jinja_free(t);
    if (rc) {
        assert_true(err.msg[0] != '\0');
        *out = strdup(err.msg);
    }
    return rc;
}

static int render(const char *src, char **out)
{
    cJSON *ctx = context();
    int rc = render_lim(src, ctx, NULL, NULL, out);
    cJSON_Delete(ctx);
    return rc;
}

static void construct_case(void **state)
{
    const struct jinja_case *c = *state;
    char *out;
    int rc = render(c->src, &out);
    if (rc != 0 || strcmp(out, c->expected) != 0)
        fprintf(stderr, "case %s:\n  got      [%s]\n  expected [%s]\n", c->name, out, c->expected);
    assert_int_equal(rc, 0);
    assert_string_equal(out, c->expected);
    free(out);
}

static void expect_error(const char *src, int code, const char *substr)
{
    char *out;
    int rc = render(src, &out);
    if (rc != code || !strstr(out, substr))
        fprintf(stderr, "template [%s]: rc %d, message [%s], wanted %d [%s]\n", src, rc, out, code,
                substr);
    assert_int_equal(rc, code);
    assert_non_null(strstr(out, substr));
    free(out);
}

static void syntax_errors(void **state)
{
    (void)state;
    expect_error("{% if t %}unclosed", SH_EMALFORMED,
                 "line 1 col 19: Unexpected end of template. Jinja was looking for the "
                 "following tags: 'elif' or 'else' or 'endif'");
    expect_error("{% endif %}", SH_EMALFORMED, "line 1 col 4: Encountered unknown tag 'endif'");
    expect_error("{% for m in messages %}{% endif %}{% endfor %}", SH_EMALFORMED,
                 "unknown tag 'endif'");
    expect_error("a\n{{ 1 + }}", SH_EMALFORMED, "line 2 col 8: expected an expression");
    expect_error("{{ (1 }}", SH_EMALFORMED, "unexpected '}', expected ')'");
    expect_error("{{ x ] }}", SH_EMALFORMED, "unexpected ']'");
    expect_error("{{ 'abc }}", SH_EMALFORMED, "unterminated string");
    expect_error("{# never closed", SH_EMALFORMED, "missing end of comment tag");
    expect_error("{{ x", SH_EMALFORMED, "unexpected end of template");
    expect_error("{% for %}{% endfor %}", SH_EMALFORMED, "expected a variable name");
    expect_error("{% set %}", SH_EMALFORMED, "line 1 col 8");
    expect_error("{{ x is foo is bar }}", SH_EMALFORMED, "cannot chain");
    expect_error("{% raw %}abc", SH_EMALFORMED, "missing end of raw directive");
    expect_error("{{ a ? b }}", SH_EMALFORMED, "unexpected character '?'");
    expect_error("{% macro m(a=1, b) %}{% endmacro %}", SH_EMALFORMED, "non-default argument");
}

static void unsupported_constructs(void **state)
{
    (void)state;
    expect_error("{% include 'other.jinja' %}", SH_EUNSUPPORTED,
                 "line 1 col 4: the 'include' statement is not supported");
    expect_error("{% extends 'base' %}", SH_EUNSUPPORTED, "'extends' statement");
    expect_error("x\n  {{ s|wordwrap(5) }}", SH_EUNSUPPORTED,
                 "line 2 col 8: filter 'wordwrap' is not supported");
    expect_error("{{ n is foo }}", SH_EUNSUPPORTED, "test 'foo' is not supported");
    expect_error("{{ s.zfill(9) }}", SH_EUNSUPPORTED, "method str.zfill() is not supported");
    expect_error("{{ f(*lst) }}", SH_EUNSUPPORTED, "*args");
    expect_error("{{ '{:>5}'.format(1) }}", SH_EUNSUPPORTED, "format specs");
    expect_error("{{ 9223372036854775807 + 1 }}", SH_EUNSUPPORTED, "64 bits");
}

static void runtime_errors(void **state)
{
    (void)state;
    expect_error("a\n  {{ x.y.z }}", SH_EINVAL, "line 2 col 7: 'x' is undefined");
    expect_error("{{ d.zz.y }}", SH_EINVAL, "'dict object' has no attribute 'zz'");
    expect_error("{{ 1 + 'a' }}", SH_EINVAL, "unsupported operand type(s) for +: 'int' and 'str'");
    expect_error("{{ 1 < 'a' }}", SH_EINVAL, "'<' not supported between instances");
    expect_error("{{ 5 in 'abc' }}", SH_EINVAL, "requires string as left operand");
    expect_error("{% for i in n %}{% endfor %}", SH_EINVAL, "'int' object is not iterable");
    expect_error("{{ x|tojson }}", SH_EINVAL, "not JSON serializable");
    expect_error("{{ 1 // 0 }}", SH_EINVAL, "division or modulo by zero");
    expect_error("{{ lst.append(4) }}", SH_EINVAL, "unsafe");
    expect_error("{% set x.y = 1 %}", SH_EINVAL, "non-namespace");
    expect_error("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", SH_EINVAL,
                 "takes not more than 1 argument");
    expect_error("{{ strftime_now('%Y') }}", SH_EINVAL, "no time was given");
}

static void raise_exception_message(void **state)
{
    char *out;
    (void)state;
    /* the template's own text is the whole message */
    assert_int_equal(render("{{ raise_exception('Only ' ~ n ~ ' roles!') }}", &out), SH_EINVAL);
    assert_string_equal(out, "Only 3 roles!");
    free(out);
}

static void limits(void **state)
{
    struct eng_jinja_limits lim = {.max_steps = 100000};
    char *out, deep[8192];
    size_t k = 0;
    (void)state;
    /* huge loops, alone or nested, stop at the step budget */
    assert_int_equal(
        render_lim("{% for i in range(100000000) %}{% endfor %}", NULL, NULL, &lim, &out),
        SH_ETOOBIG);
    assert_non_null(strstr(out, "loop iterations"));
    free(out);
    assert_int_equal(render_lim("{% for a in range(1000) %}{% for b in range(1000) %}"
                                "{% endfor %}{% endfor %}",
                                NULL, NULL, &lim, &out),
                     SH_ETOOBIG);
    free(out);
    /* unbounded recursion */
    assert_int_equal(render_lim("{% macro f(k) %}{{ f(k + 1) }}{% endmacro %}{{ f(0) }}", NULL,
                                NULL, NULL, &out),
                     SH_ETOOBIG);
    assert_non_null(strstr(out, "recursion deeper than"));
    free(out);
    /* output and memory caps */
    lim = (struct eng_jinja_limits){.max_output = 1000};
    assert_int_equal(
        render_lim("{% for i in range(1000) %}xxxxxxxxxx{% endfor %}", NULL, NULL, &lim, &out),
        SH_ETOOBIG);
    assert_non_null(strstr(out, "output exceeds 1000 bytes"));
    free(out);
    lim = (struct eng_jinja_limits){.max_memory = 1u << 20};
    assert_int_equal(render_lim("{% set s = 'x' * 100000000 %}", NULL, NULL, &lim, &out),
                     SH_ETOOBIG);
    assert_non_null(strstr(out, "memory"));
    free(out);
    /* values nested deeper at run time than any literal: compared without
     * unbounded recursion, refused when printed */
#define DEEP                                                                                       \
    "{% set ns = namespace(x=[]) %}{% for i in range(5000) %}{% set ns.x = [ns.x] %}"              \
    "{% endfor %}"
    assert_int_equal(
        render_lim(DEEP "{{ ns.x == ns.x }}{{ ns.x in [ns.x] }}", NULL, NULL, NULL, &out), 0);
    assert_string_equal(out, "FalseFalse");
    free(out);
    assert_int_equal(render_lim(DEEP "{{ ns.x|tojson }}", NULL, NULL, NULL, &out), SH_ETOOBIG);
    assert_non_null(strstr(out, "nesting deeper than 200"));
    free(out);
    assert_int_equal(render_lim(DEEP "{{ ns.x }}", NULL, NULL, NULL, &out), SH_ETOOBIG);
    assert_non_null(strstr(out, "nested deeper than 200"));
    free(out);
    assert_int_equal(render_lim(DEEP "{{ ns.x < ns.x }}", NULL, NULL, NULL, &out), SH_EINVAL);
    free(out);
#undef DEEP
    /* deep nesting in the source */
    for (int i = 0; i < 300; i++)
        k += (size_t)snprintf(deep + k, sizeof deep - k, "{%% if t %%}");
    assert_int_equal(render(deep, &out), SH_ETOOBIG);
    assert_non_null(strstr(out, "nested deeper"));
    free(out);
    k = (size_t)snprintf(deep, sizeof deep, "{%% if n == 0 %%}");
    for (int i = 1; i < 150; i++)
        k += (size_t)snprintf(deep + k, sizeof deep - k, "{%% elif n == %d %%}%d", i, i);
    snprintf(deep + k, sizeof deep - k, "{%% endif %%}");
    assert_int_equal(render(deep, &out), 0);
    assert_string_equal(out, "3");
    free(out);
    deep[k] = '\0';
    for (int i = 150; i < 250; i++)
        k += (size_t)snprintf(deep + k, sizeof deep - k, "{%% elif n == %d %%}", i);
    snprintf(deep + k, sizeof deep - k, "{%% endif %%}");
    assert_int_equal(render(deep, &out), SH_ETOOBIG);
    free(out);
    k = (size_t)snprintf(deep, sizeof deep, "{{ ");
    for (int i = 0; i < 1000; i++)
        k += (size_t)snprintf(deep + k, sizeof deep - k, "not ");
    snprintf(deep + k, sizeof deep - k, "t }}");
    assert_int_equal(render(deep, &out), SH_ETOOBIG);
    free(out);
    k = (size_t)snprintf(deep, sizeof deep, "{{ ");
    for (int i = 0; i < 100; i++)
        k += (size_t)snprintf(deep + k, sizeof deep - k, "(");
    snprintf(deep + k, sizeof deep - k, "1");
    assert_int_equal(render(deep, &out), SH_ETOOBIG);
    free(out);
}

static void globals_and_extensions(void **state)
{
    struct tm tm = {.tm_year = 125, .tm_mon = 0, .tm_mday = 2, .tm_hour = 3};
    cJSON *vars = NULL;
    char *out;
    (void)state;
    assert_int_equal(render_lim("{{ strftime_now('%d %b %Y') }}", NULL, &tm, NULL, &out), 0);
    assert_string_equal(out, "02 Jan 2025");
    free(out);
    /* transformers' {% generation %} renders its body */
    assert_int_equal(render("{% generation %}gen {{ n }}{% endgeneration %}", &out), 0);
    assert_string_equal(out, "gen 3");
    free(out);
    /* integral JSON numbers are ints, others floats; key order is kept */
    assert_int_equal(
        sh_json_parse("{\"a\": 1.5, \"b\": 2, \"o\": {\"z\": 1, \"a\": 2}}", 44, "v", &vars, NULL),
        0);
    assert_int_equal(render_lim("{{ a }} {{ b }} {{ o|tojson }} {{ o }}", vars, NULL, NULL, &out),
                     0);
    assert_string_equal(out, "1.5 2 {\"z\": 1, \"a\": 2} {'z': 1, 'a': 2}");
    free(out);
    cJSON_Delete(vars);
    /* empty sequences through every copying path (found by libFuzzer) */
    assert_int_equal(render("{{ [] * 3 }}|{{ '' * 3 }}|{{ {}|list }}|{{ [] + [] }}|{{ ''[::-1] }}"
                            "|{% for k in {} %}{% endfor %}{{ {}.items()|list }}",
                            &out),
                     0);
    assert_string_equal(out, "[]||[]|[]||[]");
    free(out);
    /* an empty template renders to an empty, allocated string */
    assert_int_equal(render("", &out), 0);
    assert_string_equal(out, "");
    free(out);
}

/* xorshift64*: deterministic mutations */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static char *fixture_template(const char *path)
{
    cJSON *cfg = NULL;
    char *src;
    assert_int_equal(sh_json_parse_file(path, 1u << 24, &cfg, NULL), 0);
    src = strdup(cJSON_GetObjectItem(cfg, "chat_template")->valuestring);
    cJSON_Delete(cfg);
    return src;
}

static void mutated_templates_never_crash(void **state)
{
    static const char *const snippets[] = {"{{",
                                           "}}",
                                           "{%",
                                           "%}",
                                           "{#",
                                           "#}",
                                           "-",
                                           "(",
                                           ")",
                                           "[",
                                           "]",
                                           "'",
                                           "\"",
                                           "|",
                                           ".",
                                           "~",
                                           " if ",
                                           " else ",
                                           "loop.",
                                           "not ",
                                           "{% endfor %}",
                                           "{% endif %}",
                                           "{% for x in messages %}",
                                           "*",
                                           ","};
    const char *paths[] = {FIXTURES_DIR "/tokenizers/qwen3/tokenizer_config.json",
                           FIXTURES_DIR "/tokenizers/llama3_1/tokenizer_config.json",
                           FIXTURES_DIR "/tokenizers/deepseek_v3/tokenizer_config.json",
                           DEMO_MODEL_DIR "/tokenizer_config.json"};
    struct eng_jinja_limits lim = {.max_steps = 200000, .max_output = 1u << 20};
    cJSON *ctx = context();
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    int ok = 0, failed = 0;
    (void)state;
    for (size_t f = 0; f < 4; f++) {
        char *base = fixture_template(paths[f]);
        size_t blen = strlen(base);
        for (int iter = 0; iter < 300; iter++) {
            char *m = malloc(blen * 2 + 64), *out = NULL;
            size_t n = blen;
            int rounds = 1 + (int)(rng_next(&seed) % 3), rc;
            memcpy(m, base, blen);
            for (int k = 0; k < rounds; k++) {
                size_t i = n ? rng_next(&seed) % n : 0, len = 1 + rng_next(&seed) % 24;
                if (i + len > n)
                    len = n - i;
                switch (rng_next(&seed) % 3) {
                case 0: /* delete */
                    memmove(m + i, m + i + len, n - i - len);
                    n -= len;
                    break;
                case 1: /* duplicate, bounded */
                    if (n + len < blen * 2) {
                        memmove(m + i + len, m + i, n - i);
                        n += len;
                    }
                    break;
                default: { /* insert a syntax fragment */
                    const char *sn =
                        snippets[rng_next(&seed) % (sizeof snippets / sizeof snippets[0])];
                    size_t sl = strlen(sn);
                    if (n + sl < blen * 2 + 32) {
                        memmove(m + i + sl, m + i, n - i);
                        memcpy(m + i, sn, sl);
                        n += sl;
                    }
                }
                }
            }
            m[n] = '\0';
            rc = render_lim(m, ctx, NULL, &lim, &out);
            if (rc == 0)
                ok++;
            else
                failed++;
            assert_true(rc == 0 || rc == SH_EMALFORMED || rc == SH_EINVAL ||
                        rc == SH_EUNSUPPORTED || rc == SH_ETOOBIG);
            free(out);
            free(m);
        }
        free(base);
    }
    cJSON_Delete(ctx);
    /* both outcomes must occur, or the mutations test nothing */
    assert_true(ok > 50);
    assert_true(failed > 50);
}

int main(void)
{
    size_t ncases = sizeof jinja_cases / sizeof jinja_cases[0];
    const struct CMUnitTest fixed[] = {
        cmocka_unit_test(syntax_errors),
        cmocka_unit_test(unsupported_constructs),
        cmocka_unit_test(runtime_errors),
        cmocka_unit_test(raise_exception_message),
        cmocka_unit_test(limits),
        cmocka_unit_test(globals_and_extensions),
        cmocka_unit_test(mutated_templates_never_crash),
    };
    size_t nfixed = sizeof fixed / sizeof fixed[0];
    struct CMUnitTest *tests = calloc(ncases + nfixed, sizeof *tests);
    int rc;
    for (size_t i = 0; i < ncases; i++) {
        tests[i].name = jinja_cases[i].name;
        tests[i].test_func = construct_case;
        tests[i].initial_state = (void *)&jinja_cases[i];
    }
    memcpy(tests + ncases, fixed, sizeof fixed);
    rc = _cmocka_run_group_tests("jinja", tests, ncases + nfixed, NULL, NULL);
    free(tests);
    return rc;
}
