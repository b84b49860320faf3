/* tests/engine/test_stop.c: stop strings over streamed text: a stop split
 * across pieces at every split point, overlapping and partial prefixes,
 * several stops, the held tail on flush, and random texts cut at random
 * points against a brute-force reference. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "engine/sampler.h"
#include "lib/test.h"

static struct eng_stop *make(const char *const *stops, size_t n)
{
    struct eng_stop *st = NULL;
    struct sh_err err = {0};
    if (eng_stop_new(stops, n, &st, &err))
        fail_msg("%s", sh_err_msg(&err));
    return st;
}

/* Feeds text cut at the given points (sorted, in [0, len]) and returns
 * everything emitted (flushing at the end unless stopped); *stopped says
 * whether a stop matched. Caller frees. */
static char *run(const char *const *stops,
                 size_t nstops,
                 const char *text,
                 const size_t *cuts,
                 size_t ncuts,
                 bool *stopped)
{
    struct eng_stop *st = make(stops, nstops);
    struct sh_strbuf out;
    size_t len = strlen(text), prev = 0;
    const char *emit;
    size_t emit_len;
    char *s;

    sh_strbuf_init(&out, 1 << 20);
    *stopped = false;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        bool done = eng_stop_feed(st, text + prev, end - prev, &emit, &emit_len);
        assert_int_equal(sh_strbuf_append(&out, emit, emit_len), 0);
        prev = end;
        if (done) {
            assert_false(eng_stop_failed(st));
            /* nothing more after a stop, whatever comes */
            assert_true(eng_stop_feed(st, "more", 4, &emit, &emit_len));
            assert_int_equal(emit_len, 0);
            *stopped = true;
            break;
        }
    }
    eng_stop_flush(st, &emit, &emit_len);
    if (*stopped)
        assert_int_equal(emit_len, 0);
    assert_int_equal(sh_strbuf_append(&out, emit, emit_len), 0);
    eng_stop_free(st);
    s = sh_strbuf_take(&out);
    assert_non_null(s);
    return s;
}

static void expect(const char *const *stops,
                   size_t nstops,
                   const char *text,
                   const size_t *cuts,
                   size_t ncuts,
                   const char *want,
                   bool want_stop)
{
    bool stopped;
    char *got = run(stops, nstops, text, cuts, ncuts, &stopped);
    if (strcmp(got, want) != 0 || stopped != want_stop)
        fail_msg("text \"%s\" (%zu cuts): got \"%s\"%s, want \"%s\"%s", text, ncuts, got,
                 stopped ? " (stopped)" : "", want, want_stop ? " (stopped)" : "");
    free(got);
}

static void split_everywhere(void **state)
{
    static const char *const stops[] = {"END"};
    const char *text = "hello END world";
    size_t len = strlen(text);

    (void)state;
    expect(stops, 1, text, NULL, 0, "hello ", true);
    for (size_t i = 0; i <= len; i++) {
        for (size_t j = i; j <= len; j++) {
            size_t cuts[2] = {i, j};
            expect(stops, 1, text, cuts, 2, "hello ", true);
        }
    }
    /* byte by byte */
    {
        size_t cuts[32];
        for (size_t i = 0; i < len; i++)
            cuts[i] = i + 1;
        expect(stops, 1, text, cuts, len, "hello ", true);
    }
}

static void partial_prefixes(void **state)
{
    static const char *const abc[] = {"abc"};
    size_t c1[] = {2}, c2[] = {1, 3}, c3[] = {4};

    (void)state;
    expect(abc, 1, "ababc", NULL, 0, "ab", true);
    expect(abc, 1, "ababc", c1, 1, "ab", true);
    expect(abc, 1, "ababc", c2, 2, "ab", true);
    expect(abc, 1, "ababc", c3, 1, "ab", true);
    expect(abc, 1, "aabc", NULL, 0, "a", true);
    expect(abc, 1, "abab", c1, 1, "abab", false); /* held "ab" comes out on flush */
    expect(abc, 1, "abcabc", NULL, 0, "", true);
    expect(abc, 1, "xab", NULL, 0, "xab", false);
}

/* What the stream shows before each feed returns: held text never leaks. */
static void holds_only_prefixes(void **state)
{
    static const char *const stops[] = {"</s>", "STOP"};
    struct eng_stop *st = make(stops, 2);
    const char *emit;
    size_t n;

    (void)state;
    assert_false(eng_stop_feed(st, "hi <", 4, &emit, &n));
    assert_int_equal(n, 3);
    assert_memory_equal(emit, "hi ", 3);
    assert_false(eng_stop_feed(st, "/", 1, &emit, &n));
    assert_int_equal(n, 0);
    assert_false(eng_stop_feed(st, "x ST", 4, &emit, &n));
    assert_int_equal(n, 4);
    assert_memory_equal(emit, "</x ", 4);
    assert_true(eng_stop_feed(st, "OP!", 3, &emit, &n));
    assert_int_equal(n, 0);
    eng_stop_flush(st, &emit, &n);
    assert_int_equal(n, 0);
    eng_stop_free(st);
}

static void several_stops(void **state)
{
    static const char *const s1[] = {"abc", "bcd"};
    static const char *const s2[] = {"abcde", "bcd"};
    static const char *const s3[] = {"cd", "bcd"};
    static const char *const s4[] = {"\n\n", "User:", "x"};
    size_t c[] = {3};

    (void)state;
    expect(s1, 2, "xabcd", NULL, 0, "x", true);   /* abc completes first */
    expect(s2, 2, "zabcde", NULL, 0, "za", true); /* bcd ends before abcde */
    expect(s2, 2, "zabcde", c, 1, "za", true);
    expect(s3, 2, "abcd", NULL, 0, "a", true); /* same end: the longer one */
    expect(s4, 3, "Hi\nUser: yo\n\n", NULL, 0, "Hi\n", true);
    expect(s4, 3, "line\n\nmore", NULL, 0, "line", true);
}

static void no_stop_and_edges(void **state)
{
    static const char *const xyz[] = {"xyz"};
    static const char *const none[] = {NULL};
    static const char *const empty[] = {"ok", ""};
    struct eng_stop *st = NULL;
    struct sh_err err = {0};
    const char *emit;
    size_t n;
    char big[10000];

    (void)state;
    expect(xyz, 1, "abx", NULL, 0, "abx", false);
    expect(xyz, 1, "abxy", NULL, 0, "abxy", false);
    /* no stops: everything passes straight through */
    st = make(none, 0);
    assert_false(eng_stop_feed(st, "abc", 3, &emit, &n));
    assert_int_equal(n, 3);
    eng_stop_flush(st, &emit, &n);
    assert_int_equal(n, 0);
    eng_stop_free(st);
    /* an empty stop string is refused */
    assert_int_equal(eng_stop_new(empty, 2, &st, &err), SH_EINVAL);
    assert_non_null(strstr(sh_err_msg(&err), "stop string 1 is empty"));
    /* a feed larger than the preallocated room */
    memset(big, 'q', sizeof big);
    st = make(xyz, 1);
    assert_false(eng_stop_feed(st, "ab x", 4, &emit, &n));
    assert_int_equal(n, 3);
    assert_false(eng_stop_feed(st, big, sizeof big, &emit, &n));
    assert_int_equal(n, sizeof big + 1);
    assert_false(eng_stop_failed(st));
    assert_true(eng_stop_feed(st, "xyz", 3, &emit, &n));
    assert_int_equal(n, 0);
    eng_stop_free(st);
}

/* Random texts over {a, b, c} with random stops and random cuts: the
 * output is always the text up to the stop that a byte-by-byte reader
 * completes first. */
static void random_against_reference(void **state)
{
    uint64_t x = 88172645463325252ULL;
    (void)state;
    for (int iter = 0; iter < 3000; iter++) {
        char text[40], stopbuf[3][6], want[40];
        const char *stops[3];
        size_t len, nst, cuts[6], ncuts, want_len;
        bool want_stop = false;

#define NEXT() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
        len = NEXT() % 30;
        for (size_t i = 0; i < len; i++)
            text[i] = (char)('a' + NEXT() % 3);
        text[len] = '\0';
        nst = 1 + NEXT() % 3;
        for (size_t k = 0; k < nst; k++) {
            size_t sl = 1 + NEXT() % 4;
            for (size_t i = 0; i < sl; i++)
                stopbuf[k][i] = (char)('a' + NEXT() % 3);
            stopbuf[k][sl] = '\0';
            stops[k] = stopbuf[k];
        }
        ncuts = NEXT() % 6;
        for (size_t i = 0; i < ncuts; i++)
            cuts[i] = len ? NEXT() % (len + 1) : 0;
        for (size_t i = 1; i < ncuts; i++) /* insertion sort */
            for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
                size_t t = cuts[j];
                cuts[j] = cuts[j - 1];
                cuts[j - 1] = t;
            }
        /* reference: the first end position where some stop completes */
        want_len = len;
        for (size_t end = 1; end <= len && !want_stop; end++) {
            size_t best_start = SIZE_MAX;
            for (size_t k = 0; k < nst; k++) {
                size_t sl = strlen(stops[k]);
                if (sl <= end && memcmp(text + end - sl, stops[k], sl) == 0 &&
                    end - sl < best_start)
                    best_start = end - sl;
            }
            if (best_start != SIZE_MAX) {
                want_stop = true;
                want_len = best_start;
            }
        }
        memcpy(want, text, want_len);
        want[want_len] = '\0';
        expect(stops, nst, text, cuts, ncuts, want, want_stop);
#undef NEXT
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_everywhere),    cmocka_unit_test(partial_prefixes),
        cmocka_unit_test(holds_only_prefixes), cmocka_unit_test(several_stops),
        cmocka_unit_test(no_stop_and_edges),   cmocka_unit_test(random_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
