/* engine/tokenizer_added.c: added tokens: the byte tries they are matched
 * with, and splitting a text around them the way tokenizers'
 * AddedVocabulary::find_matches does (leftmost-longest matching, then the
 * single_word / lstrip / rstrip rules per match).
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "engine/tokenizer_internal.h"

static int trie_node(struct tok_trie *t, uint8_t byte, int32_t *out)
{
    if (t->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 64;
        struct tok_trie_node *p = realloc(t->nodes, ncap * sizeof *p);
        if (!p)
            return SH_ENOMEM;
        t->nodes = p;
        t->cap = ncap;
    }
    t->nodes[t->n].child = -1;
    t->nodes[t->n].sibling = -1;
    t->nodes[t->n].added = -1;
    t->nodes[t->n].byte = byte;
    *out = (int32_t)t->n++;
    return 0;
}

/* Inserts pattern s[0..n) for added token idx. Errors: SH_ENOMEM, SH_EEXIST
 * (the same pattern twice). */
static int trie_add(struct tok_trie *t, const char *s, size_t n, int32_t idx)
{
    int32_t node = 0;
    int rc;

    if (t->n == 0 && (rc = trie_node(t, 0, &node)))
        return rc;
    t->first[(uint8_t)s[0] >> 3] |= (uint8_t)(1u << ((uint8_t)s[0] & 7));
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)s[i];
        int32_t c = t->nodes[node].child;
        while (c >= 0 && t->nodes[c].byte != b)
            c = t->nodes[c].sibling;
        if (c < 0) {
            if ((rc = trie_node(t, b, &c)))
                return rc;
            t->nodes[c].sibling = t->nodes[node].child;
            t->nodes[node].child = c;
        }
        node = c;
    }
    if (t->nodes[node].added >= 0)
        return SH_EEXIST;
    t->nodes[node].added = idx;
    return 0;
}

int tok_added_build(struct eng_tokenizer *tok, struct sh_err *err)
{
    for (size_t i = 0; i < tok->n_added; i++) {
        struct tok_added *a = &tok->added[i];
        int rc;

        a->pattern = a->content;
        a->pattern_len = a->len;
        /* tokenizers matches a `normalized` token after normalization, so
         * its pattern is the normalized content (refresh_added_tokens). */
        if (a->normalized && tok->n_norm) {
            char *norm = NULL;
            size_t nlen = 0;
            if ((rc = tok_normalize(tok, a->content, a->len, &norm, &nlen, err)))
                return sh_err_wrap(err, "added token \"%.64s\"", a->content);
            if (norm) {
                if (nlen == 0) {
                    free(norm);
                    return sh_err_set(err, SH_EMALFORMED,
                                      "added token \"%.64s\" normalizes to nothing", a->content);
                }
                a->pattern = norm;
                a->pattern_len = nlen;
            }
        }
        rc = trie_add(a->normalized ? &tok->trie_norm : &tok->trie_raw, a->pattern, a->pattern_len,
                      (int32_t)i);
        if (rc == SH_EEXIST)
            return sh_err_set(err, SH_EMALFORMED, "added_tokens: \"%.64s\" given twice",
                              a->content);
        if (rc)
            return sh_err_set(err, SH_ENOMEM, "added tokens: out of memory");
    }
    return 0;
}

/* The leftmost-longest match in s[from..n): true with its bounds and the
 * index of its added token. */
static bool trie_find(const struct tok_trie *t,
                      const char *s,
                      size_t n,
                      size_t from,
                      size_t *ms,
                      size_t *me,
                      int32_t *idx)
{
    if (t->n == 0)
        return false;
    for (size_t i = from; i < n; i++) {
        uint8_t b0 = (uint8_t)s[i];
        int32_t node = 0, best = -1;
        size_t best_end = 0;

        if (!(t->first[b0 >> 3] & (1u << (b0 & 7))))
            continue;
        for (size_t j = i; j < n; j++) {
            int32_t c = t->nodes[node].child;
            while (c >= 0 && t->nodes[c].byte != (uint8_t)s[j])
                c = t->nodes[c].sibling;
            if (c < 0)
                break;
            node = c;
            if (t->nodes[node].added >= 0) {
                best = t->nodes[node].added;
                best_end = j + 1;
            }
        }
        if (best >= 0) {
            *ms = i;
            *me = best_end;
            *idx = best;
            return true;
        }
    }
    return false;
}

/* Rust's char::is_whitespace: the Unicode White_Space property. */
static bool is_space_cp(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* A "word" character as regex \w (Unicode) sees it: letters, marks, decimal
 * and letter numbers, connector punctuation, and the two joiners. */
static bool is_word_cp(uint32_t c)
{
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC:
        return true;
    default:
        return c == 0x200C || c == 0x200D;
    }
}

/* The code point ending at s[end) (s valid UTF-8, end > 0). */
static uint32_t cp_before(const char *s, size_t end, size_t *start)
{
    size_t i = end - 1, bad;
    while (i > 0 && ((uint8_t)s[i] & 0xC0) == 0x80)
        i--;
    *start = i;
    return tok_utf8_cp((const uint8_t *)s + i, tok_utf8_seq((const uint8_t *)s + i, end - i, &bad));
}

static uint32_t cp_at(const char *s, size_t n, size_t i, size_t *len)
{
    size_t bad;
    *len = tok_utf8_seq((const uint8_t *)s + i, n - i, &bad);
    return tok_utf8_cp((const uint8_t *)s + i, *len);
}

int tok_added_split(const struct eng_tokenizer *tok,
                    const struct tok_trie *t,
                    const char *s,
                    size_t n,
                    tok_segment_fn fn,
                    void *ctx)
{
    size_t pos = 0, start_offset = 0, ms, me, clen;
    int32_t idx;
    int rc;

    while (pos < n && trie_find(t, s, n, pos, &ms, &me, &idx)) {
        const struct tok_added *a = &tok->added[idx];
        size_t start = ms, stop = me;

        pos = me; /* matches never overlap (the automaton resumes after one) */
        if (a->single_word) {
            size_t dummy;
            bool start_ok = start == 0 || !is_word_cp(cp_before(s, start, &dummy));
            bool stop_ok = stop == n || !is_word_cp(cp_at(s, n, stop, &clen));
            if (!start_ok || !stop_ok)
                continue;
        }
        if (a->lstrip) {
            size_t newstart = start, cs;
            while (newstart > 0 && is_space_cp(cp_before(s, newstart, &cs)))
                newstart = cs;
            /* Spaces a previous match already took stay with it. */
            start = newstart > start_offset ? newstart : start_offset;
        }
        if (a->rstrip) {
            while (stop < n && is_space_cp(cp_at(s, n, stop, &clen)))
                stop += clen;
        }
        if (start_offset < start && (rc = fn(ctx, s + start_offset, start - start_offset, -1)))
            return rc;
        if ((rc = fn(ctx, s + start, stop - start, a->id)))
            return rc;
        start_offset = stop;
    }
    if (start_offset < n)
        return fn(ctx, s + start_offset, n - start_offset, -1);
    return 0;
}
