/* tests/engine/test_gen_utf8.c: the streaming UTF-8 repair of
 * engine/generate.h (eng_utf8_stream_*): characters split across pieces are
 * held back and released whole, invalid bytes become U+FFFD exactly as
 * tokenizers' decode (Rust's from_utf8_lossy) does, checked on crafted
 * pieces and against eng_detokenize on random bytes cut at random places. */
#include <stdlib.h>
#include <string.h>

#include "engine/generate.h"
#include "engine/tokenizer_internal.h"
#include "tests/lib/test.h"

#define QWEN3_TOKENIZER TOK_FIXTURE_BUILD_DIR "/qwen3.tokenizer.json"

static char *detok(const struct eng_tokenizer *tok, const int32_t *ids, size_t n, bool skip)
{
    char *s = NULL;
    size_t len;
    struct sh_err err = {0};
    if (eng_detokenize(tok, ids, n, skip, &s, &len, &err))
        fail_msg("detokenize: %s", sh_err_msg(&err));
    return s;
}

/* Feeds the pieces one by one, then flushes; returns the joined output. */
static size_t stream_pieces(const char *const *pieces, size_t n, char *out)
{
    struct eng_utf8_stream u;
    size_t o = 0;
    eng_utf8_stream_init(&u);
    for (size_t i = 0; i < n; i++)
        o += eng_utf8_stream_feed(&u, pieces[i], strlen(pieces[i]), out + o);
    o += eng_utf8_stream_flush(&u, out + o);
    out[o] = '\0';
    return o;
}

static void utf8_hold_back(void **state)
{
    struct eng_utf8_stream u;
    char out[64];
    (void)state;
    eng_utf8_stream_init(&u);
    /* "é" split after its lead byte: nothing, then the whole character. */
    assert_int_equal(eng_utf8_stream_feed(&u, "caf\xC3", 4, out), 3);
    assert_memory_equal(out, "caf", 3);
    assert_int_equal(eng_utf8_stream_feed(&u, "\xA9!", 2, out), 3);
    assert_memory_equal(out, "\xC3\xA9!", 3);
    /* U+1F600 in three pieces: held, held, out. */
    assert_int_equal(eng_utf8_stream_feed(&u, "\xF0", 1, out), 0);
    assert_int_equal(eng_utf8_stream_feed(&u, "\x9F\x98", 2, out), 0);
    assert_int_equal(eng_utf8_stream_feed(&u, "\x80", 1, out), 4);
    assert_memory_equal(out, "\xF0\x9F\x98\x80", 4);
    /* A stream ending inside a character: one U+FFFD. */
    assert_int_equal(eng_utf8_stream_feed(&u, "\xE2\x82", 2, out), 0);
    assert_int_equal(eng_utf8_stream_flush(&u, out), 3);
    assert_memory_equal(out, "\xEF\xBF\xBD", 3);
    assert_int_equal(eng_utf8_stream_flush(&u, out), 0);
}

static void utf8_invalid_bytes(void **state)
{
    static const struct {
        const char *pieces[4];
        const char *want;
    } cases[] = {
        {{"\xFF", "a"},
         "\xEF\xBF\xBD"
         "a"}, /* never valid */
        {{"\xC3", "a"},
         "\xEF\xBF\xBD"
         "a"},                                          /* lead, then not a continuation */
        {{"\x80\x80"}, "\xEF\xBF\xBD\xEF\xBF\xBD"},     /* stray continuations */
        {{"\xE0", "\x80"}, "\xEF\xBF\xBD\xEF\xBF\xBD"}, /* E0 needs A0..BF next */
        {{"\xED", "\xA0\x80"}, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* surrogate */
        {{"\xE2\x82", "x"},
         "\xEF\xBF\xBD"
         "x"},                                              /* maximal subpart: one FFFD */
        {{"\xF4\x90"}, "\xEF\xBF\xBD\xEF\xBF\xBD"},         /* past U+10FFFF */
        {{"\xC0\xAF"}, "\xEF\xBF\xBD\xEF\xBF\xBD"},         /* overlong */
        {{"ok", "\xE2", "\x82", "\xAC"}, "ok\xE2\x82\xAC"}, /* euro sign byte by byte */
    };
    char out[64];
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = 0;
        while (n < 4 && cases[i].pieces[n])
            n++;
        stream_pieces(cases[i].pieces, n, out);
        if (strcmp(out, cases[i].want) != 0)
            fail_msg("case %zu: got \"%s\"", i, out);
    }
}

/* Random byte strings cut at random places: the streamed output equals the
 * tokenizer's one-shot repair (eng_detokenize, checked against tokenizers)
 * of the same bytes spelled as Qwen3's byte-level tokens. */
static void utf8_stream_equals_detokenize(void **state)
{
    struct eng_tokenizer *tok = NULL;
    struct sh_err err = {0};
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    int32_t byte_id[256];
    (void)state;
    if (eng_tokenizer_load(QWEN3_TOKENIZER, &tok, &err))
        fail_msg("%s", sh_err_msg(&err));
    for (int b = 0; b < 256; b++) {
        char s[8];
        uint32_t cp = tok_byte_to_cp((uint8_t)b);
        size_t n = 0;
        if (cp < 0x80) {
            s[n++] = (char)cp;
        } else {
            s[n++] = (char)(0xC0 | (cp >> 6));
            s[n++] = (char)(0x80 | (cp & 0x3F));
        }
        s[n] = '\0';
        byte_id[b] = eng_token_lookup(tok, s);
        assert_true(byte_id[b] >= 0);
    }
    for (int round = 0; round < 300; round++) {
        uint8_t bytes[40];
        int32_t ids[40];
        char out[ENG_UTF8_STREAM_OUT(40)], *want;
        struct eng_utf8_stream u;
        size_t n, o = 0, at = 0;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        n = 1 + x % 40;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            /* Mostly bytes that make sequences, some ASCII and junk. */
            bytes[i] = (uint8_t)(x % 4 == 0 ? 'a' + x % 26 : 0x80 + (x >> 8) % 0x78);
            ids[i] = byte_id[bytes[i]];
        }
        eng_utf8_stream_init(&u);
        while (at < n) {
            size_t cut;
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            cut = 1 + x % 4;
            if (cut > n - at)
                cut = n - at;
            o += eng_utf8_stream_feed(&u, (const char *)bytes + at, cut, out + o);
            at += cut;
        }
        o += eng_utf8_stream_flush(&u, out + o);
        want = detok(tok, ids, n, false);
        assert_int_equal(o, strlen(want));
        assert_memory_equal(out, want, o);
        free(want);
    }
    eng_tokenizer_free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(utf8_hold_back),
        cmocka_unit_test(utf8_invalid_bytes),
        cmocka_unit_test(utf8_stream_equals_detokenize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
