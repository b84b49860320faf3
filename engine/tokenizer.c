/* engine/tokenizer.c: encode and decode with a loaded tokenizer, following
 * tokenizers' Tokenizer::encode_single_sequence and decode:
 *
 *   1. split the text around added tokens whose `normalized` is false;
 *   2. normalize each remaining piece, then split it around the added tokens
 *      matched on normalized text;
 *   3. pre-tokenize each remaining piece: the Split steps in order (each on
 *      the pieces of the one before), then ByteLevel (optional prefix space,
 *      optional GPT-2 regex);
 *   4. BPE each pre-token over its bytes (ByteLevel's byte-to-char mapping
 *      is folded into the vocabulary at load);
 *   5. the post-processor's special ids around the result (add_special).
 *
 * Pieces flow depth-first through the stages, so nothing is materialised
 * per stage. All scratch is per call: a loaded tokenizer stays immutable.
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common/util.h"
#include "engine/tokenizer_internal.h"

/* ---- bytes, code points, UTF-8 ---------------------------------------------- */

/* GPT-2 bytes_to_unicode(): printable Latin-1 bytes stand for themselves,
 * the other 68 (0x00-0x20, 0x7F-0xA0, 0xAD) for U+0100.. in byte order. */
uint32_t tok_byte_to_cp(uint8_t b)
{
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)
        return b;
    if (b <= 0x20)
        return 0x100u + b;
    if (b <= 0xA0)
        return 0x100u + 33 + (b - 0x7Fu);
    return 0x100u + 33 + 34; /* 0xAD */
}

int tok_cp_to_byte(uint32_t cp)
{
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    if (cp >= 0x100 && cp <= 0x120)
        return (int)(cp - 0x100);
    if (cp >= 0x121 && cp <= 0x142)
        return (int)(cp - 0x121 + 0x7F);
    if (cp == 0x143)
        return 0xAD;
    return -1;
}

/* Rust's UTF-8 validation (core::str::from_utf8 / Utf8Chunks): the second
 * byte's range depends on the first, which excludes overlongs, surrogates
 * and code points past U+10FFFF. */
size_t tok_utf8_seq(const uint8_t *s, size_t n, size_t *bad)
{
    uint8_t b = s[0], lo = 0x80, hi = 0xBF;
    size_t need;

    *bad = 1;
    if (b < 0x80)
        return 1;
    if (b >= 0xC2 && b <= 0xDF)
        need = 2;
    else if (b >= 0xE0 && b <= 0xEF)
        need = 3;
    else if (b >= 0xF0 && b <= 0xF4)
        need = 4;
    else
        return 0;
    if (b == 0xE0)
        lo = 0xA0;
    else if (b == 0xED)
        hi = 0x9F;
    else if (b == 0xF0)
        lo = 0x90;
    else if (b == 0xF4)
        hi = 0x8F;
    for (size_t i = 1; i < need; i++) {
        if (i >= n)
            return 0;
        if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xBF))
            return 0;
        *bad = i + 1;
    }
    return need;
}

uint32_t tok_utf8_cp(const uint8_t *s, size_t len)
{
    switch (len) {
    case 1:
        return s[0];
    case 2:
        return (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    case 3:
        return (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    case 4:
        return (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
               (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
    default:
        return 0xFFFD;
    }
}

/* Offset of the first invalid byte, or n when s[0..n) is valid UTF-8. */
static size_t utf8_check(const char *s, size_t n)
{
    size_t i = 0, bad;
    while (i < n) {
        size_t len;
        if ((uint8_t)s[i] < 0x80) {
            i++;
            continue;
        }
        len = tok_utf8_seq((const uint8_t *)s + i, n - i, &bad);
        if (!len)
            return i;
        i += len;
    }
    return n;
}

/* ---- normalizer ---------------------------------------------------------------- */

int tok_normalize(const struct eng_tokenizer *tok,
                  const char *s,
                  size_t n,
                  char **out,
                  size_t *out_len,
                  struct sh_err *err)
{
    char *cur = NULL;
    size_t cur_len = n;
    bool ascii = true;

    *out = NULL;
    *out_len = n;
    for (size_t i = 0; i < n && ascii; i++)
        ascii = (uint8_t)s[i] < 0x80;
    /* No normal form changes ASCII text. */
    if (tok->n_norm == 0 || ascii)
        return 0;
    for (size_t k = 0; k < tok->n_norm; k++) {
        utf8proc_uint8_t *dst = NULL;
        utf8proc_ssize_t r =
            utf8proc_map((const utf8proc_uint8_t *)(cur ? cur : s), (utf8proc_ssize_t)cur_len, &dst,
                         (utf8proc_option_t)tok->norm_options[k]);
        free(cur);
        if (r < 0) {
            return sh_err_set(err, r == UTF8PROC_ERROR_NOMEM ? SH_ENOMEM : SH_EINVAL,
                              "normalizer: %s", utf8proc_errmsg(r));
        }
        cur = (char *)dst;
        cur_len = (size_t)r;
    }
    *out = cur;
    *out_len = cur_len;
    return 0;
}

/* ---- encode ------------------------------------------------------------------- */

struct enc {
    const struct eng_tokenizer *tok;
    struct tok_bpe_work bpe;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
    char *pfx; /* a pre-token with ByteLevel's prefix space */
    size_t pfx_cap;
    int32_t *ids;
    size_t n;
    size_t cap;
    struct sh_err *err;
};

/* Largest JIT stack a pre-tokenizer regex may use (reserved, not touched). */
#define TOK_JIT_STACK_MAX ((size_t)8 << 20)

typedef int (*piece_fn)(struct enc *e, size_t step, const char *s, size_t n);

static int push_ids(struct enc *e, const int32_t *ids, size_t n)
{
    size_t need, ncap = e->cap ? e->cap : 64;

    if (n == 0)
        return 0;
    if (!sh_add_size(e->n, n, &need))
        return sh_err_set(e->err, SH_ETOOBIG, "too many tokens");
    if (need > e->cap) {
        int32_t *p;
        while (ncap < need)
            ncap *= 2;
        p = realloc(e->ids, ncap * sizeof *p);
        if (!p)
            return sh_err_set(e->err, SH_ENOMEM, "token ids: out of memory");
        e->ids = p;
        e->cap = ncap;
    }
    memcpy(e->ids + e->n, ids, n * sizeof *ids);
    e->n += n;
    return 0;
}

static int bpe_piece(struct enc *e, size_t step, const char *s, size_t n)
{
    (void)step;
    return tok_bpe_word(e->tok, &e->bpe, (const uint8_t *)s, n, &e->ids, &e->n, &e->cap, e->err);
}

/* Applies a Split behaviour (tokenizers' NormalizedString::split) to the
 * stream of (segment, is_match) pairs, emitting pieces as soon as they are
 * final: only the last piece may still grow. */
struct splitter {
    struct enc *e;
    enum tok_behavior behavior;
    piece_fn next;
    size_t next_step;
    const char *s;
    bool have;   /* a pending piece [ps, pe) */
    bool pend_m; /* MergedWithNext: the pending piece is a lone match */
    bool prev_m; /* is_match of the previous segment */
    size_t ps, pe;
};

static int emit(struct splitter *sp, size_t a, size_t b)
{
    if (a == b) /* tokenizers drops empty pieces */
        return 0;
    return sp->next(sp->e, sp->next_step, sp->s + a, b - a);
}

static int segment(struct splitter *sp, size_t a, size_t b, bool m)
{
    int rc = 0;

    switch (sp->behavior) {
    case TOK_ISOLATED:
        return emit(sp, a, b);
    case TOK_REMOVED:
        return m ? 0 : emit(sp, a, b);
    case TOK_MERGED_WITH_PREVIOUS:
        /* A match joins the piece before it unless that was a match too. */
        if (m && !sp->prev_m && sp->have) {
            sp->pe = b;
        } else {
            if (sp->have)
                rc = emit(sp, sp->ps, sp->pe);
            sp->ps = a;
            sp->pe = b;
            sp->have = true;
        }
        sp->prev_m = m;
        return rc;
    case TOK_MERGED_WITH_NEXT:
        /* A match joins the piece after it when that is not a match. */
        if (sp->have) {
            sp->have = false;
            if (!m)
                return emit(sp, sp->ps, b);
            if ((rc = emit(sp, sp->ps, sp->pe)))
                return rc;
        }
        if (!m)
            return emit(sp, a, b);
        sp->ps = a;
        sp->pe = b;
        sp->have = true;
        return 0;
    case TOK_CONTIGUOUS:
        if (m == sp->prev_m && sp->have) {
            sp->pe = b;
        } else {
            if (sp->have)
                rc = emit(sp, sp->ps, sp->pe);
            sp->ps = a;
            sp->pe = b;
            sp->have = true;
        }
        sp->prev_m = m;
        return rc;
    }
    return 0;
}

static int regex_error(struct enc *e, int rc, size_t n)
{
    PCRE2_UCHAR msg[160];

    if (rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_MATCHLIMIT ||
        rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT)
        return sh_err_set(e->err, SH_ETOOBIG,
                          "pre-tokenizer regex hit a match limit on a %zu-byte piece", n);
    if (rc == PCRE2_ERROR_NOMEMORY)
        return sh_err_set(e->err, SH_ENOMEM, "pre-tokenizer regex: out of memory");
    pcre2_get_error_message(rc, msg, sizeof msg);
    return sh_err_set(e->err, SH_EINTERNAL, "pre-tokenizer regex: %s", (const char *)msg);
}

/* Runs re over s[0..n) as tokenizers' find_matches does (Rust find_iter
 * rules: an empty match right after the previous match is skipped), feeding
 * match and gap segments to the behaviour. */
static int split_run(struct enc *e,
                     const pcre2_code *re,
                     bool invert,
                     enum tok_behavior beh,
                     const char *s,
                     size_t n,
                     piece_fn next,
                     size_t next_step)
{
    struct splitter sp = {e, beh, next, next_step, s, false, false, false, 0, 0};
    size_t pos = 0, prev = 0, last_end = SIZE_MAX;
    int rc;

    while (pos <= n) {
        PCRE2_SIZE *ov;
        size_t ms, me;

        rc = pcre2_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, e->md, e->mctx);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0)
            return regex_error(e, rc, n);
        ov = pcre2_get_ovector_pointer(e->md);
        ms = ov[0];
        me = ov[1];
        if (ms == me && me == last_end) {
            size_t bad, len;
            if (pos >= n)
                break;
            len = tok_utf8_seq((const uint8_t *)s + pos, n - pos, &bad);
            pos += len ? len : 1;
            continue;
        }
        if (prev != ms && (rc = segment(&sp, prev, ms, invert)))
            return rc;
        if ((rc = segment(&sp, ms, me, !invert)))
            return rc;
        prev = me;
        last_end = me;
        pos = me;
    }
    if (prev != n && (rc = segment(&sp, prev, n, invert)))
        return rc;
    if (sp.have)
        return emit(&sp, sp.ps, sp.pe);
    return 0;
}

static int bytelevel_piece(struct enc *e, size_t step, const char *s, size_t n)
{
    const struct eng_tokenizer *tok = e->tok;

    (void)step;
    if (n == 0)
        return 0;
    if (tok->bl_add_prefix_space && s[0] != ' ') {
        if (n + 1 > e->pfx_cap) {
            char *p = realloc(e->pfx, n + 1);
            if (!p)
                return sh_err_set(e->err, SH_ENOMEM, "pre-tokenizer: out of memory");
            e->pfx = p;
            e->pfx_cap = n + 1;
        }
        e->pfx[0] = ' ';
        memcpy(e->pfx + 1, s, n);
        s = e->pfx;
        n++;
    }
    if (tok->bl_re)
        return split_run(e, tok->bl_re, false, TOK_ISOLATED, s, n, bpe_piece, 0);
    return bpe_piece(e, 0, s, n);
}

static int pretok_piece(struct enc *e, size_t step, const char *s, size_t n)
{
    const struct tok_split *sp;

    if (n == 0)
        return 0;
    if (step == e->tok->n_splits)
        return bytelevel_piece(e, step, s, n);
    sp = &e->tok->splits[step];
    return split_run(e, sp->re, sp->invert, sp->behavior, s, n, pretok_piece, step + 1);
}

/* A piece of normalized text: an added token, or text to pre-tokenize. */
static int norm_segment(void *ctx, const char *s, size_t n, int32_t id)
{
    struct enc *e = ctx;
    if (id >= 0)
        return push_ids(e, &id, 1);
    return pretok_piece(e, 0, s, n);
}

/* A piece of the raw text: an added token, or text to normalize. */
static int raw_segment(void *ctx, const char *s, size_t n, int32_t id)
{
    struct enc *e = ctx;
    char *norm = NULL;
    size_t nlen;
    int rc;

    if (id >= 0)
        return push_ids(e, &id, 1);
    if ((rc = tok_normalize(e->tok, s, n, &norm, &nlen, e->err)))
        return rc;
    rc = tok_added_split(e->tok, &e->tok->trie_norm, norm ? norm : s, nlen, norm_segment, e);
    free(norm);
    return rc;
}

int eng_tokenize(const struct eng_tokenizer *tok,
                 const char *text,
                 size_t len,
                 bool add_special,
                 int32_t **ids,
                 size_t *n,
                 struct sh_err *err)
{
    struct enc e;
    size_t bad;
    int rc;

    if (len > TOK_MAX_INPUT)
        return sh_err_set(err, SH_ETOOBIG, "text of %zu bytes (limit %zu)", len, TOK_MAX_INPUT);
    if ((bad = utf8_check(text, len)) != len)
        return sh_err_set(err, SH_EINVAL, "text is not valid UTF-8 (byte %zu)", bad);
    memset(&e, 0, sizeof e);
    e.tok = tok;
    e.err = err;
    e.md = pcre2_match_data_create(tok->max_captures + 1, NULL);
    e.mctx = pcre2_match_context_create(NULL);
    e.jit = pcre2_jit_stack_create(32 * 1024, TOK_JIT_STACK_MAX, NULL);
    if (!e.md || !e.mctx || !e.jit) {
        rc = sh_err_set(err, SH_ENOMEM, "tokenize: out of memory");
        goto out;
    }
    pcre2_jit_stack_assign(e.mctx, NULL, e.jit);
    if (add_special && (rc = push_ids(&e, tok->tmpl_prefix, tok->n_prefix)))
        goto out;
    if ((rc = tok_added_split(tok, &tok->trie_raw, text, len, raw_segment, &e)))
        goto out;
    if (add_special && (rc = push_ids(&e, tok->tmpl_suffix, tok->n_suffix)))
        goto out;
    if (!e.ids && !(e.ids = malloc(sizeof *e.ids))) { /* a valid pointer even for no ids */
        rc = sh_err_set(err, SH_ENOMEM, "tokenize: out of memory");
        goto out;
    }
    *ids = e.ids;
    *n = e.n;
    e.ids = NULL;
out:
    free(e.ids);
    free(e.pfx);
    tok_bpe_work_free(&e.bpe);
    pcre2_jit_stack_free(e.jit);
    pcre2_match_context_free(e.mctx);
    pcre2_match_data_free(e.md);
    return rc;
}

/* ---- decode -------------------------------------------------------------------- */

int eng_detokenize(const struct eng_tokenizer *tok,
                   const int32_t *ids,
                   size_t n,
                   bool skip_special,
                   char **out,
                   size_t *len,
                   struct sh_err *err)
{
    size_t total = 0, j = 0, i = 0, bad, fixed_cap;
    char *raw, *fixed;

    for (size_t k = 0; k < n; k++) {
        if (ids[k] < 0 || (size_t)ids[k] >= tok->n_ids || !(tok->flags[ids[k]] & TOK_F_PRESENT))
            return sh_err_set(err, SH_ERANGE,
                              "token id %d at position %zu is not in the "
                              "vocabulary (%zu ids)",
                              ids[k], k, tok->n_ids);
        if (!(skip_special && (tok->flags[ids[k]] & TOK_F_SPECIAL)) &&
            !sh_add_size(total, tok->piece[ids[k]].len, &total))
            return sh_err_set(err, SH_ETOOBIG, "detokenize: text too long");
    }
    raw = malloc(total + 1);
    if (!raw)
        return sh_err_set(err, SH_ENOMEM, "detokenize: out of memory");
    for (size_t k = 0; k < n; k++) {
        const struct tok_span *p = &tok->piece[ids[k]];
        if (skip_special && (tok->flags[ids[k]] & TOK_F_SPECIAL))
            continue;
        memcpy(raw + j, tok->piece_arena + p->off, p->len);
        j += p->len;
    }
    raw[total] = '\0';
    if (utf8_check(raw, total) == total) {
        *out = raw;
        *len = total;
        return 0;
    }
    /* String::from_utf8_lossy: each maximal invalid subsequence becomes one
     * U+FFFD (3 bytes), so the text grows at most threefold. */
    if (!sh_mul_size(total, 3, &fixed_cap) || !sh_add_size(fixed_cap, 1, &fixed_cap) ||
        !(fixed = malloc(fixed_cap))) {
        free(raw);
        return sh_err_set(err, SH_ENOMEM, "detokenize: out of memory");
    }
    j = 0;
    while (i < total) {
        size_t l = tok_utf8_seq((const uint8_t *)raw + i, total - i, &bad);
        if (l) {
            memcpy(fixed + j, raw + i, l);
            j += l;
            i += l;
        } else {
            memcpy(fixed + j, "\xEF\xBF\xBD", 3);
            j += 3;
            i += bad;
        }
    }
    fixed[j] = '\0';
    free(raw);
    *out = fixed;
    *len = j;
    return 0;
}

/* ---- lookups ------------------------------------------------------------------- */

const char *eng_token_piece(const struct eng_tokenizer *tok, int32_t id, size_t *len)
{
    if (id < 0 || (size_t)id >= tok->n_ids || !(tok->flags[id] & TOK_F_PRESENT))
        return NULL;
    *len = tok->piece[id].len;
    return tok->piece_arena + tok->piece[id].off;
}

const char *eng_token_str(const struct eng_tokenizer *tok, int32_t id, size_t *len)
{
    if (id < 0 || (size_t)id >= tok->n_ids || !(tok->flags[id] & TOK_F_PRESENT))
        return NULL;
    if (tok->flags[id] & TOK_F_ADDED) {
        for (size_t i = 0; i < tok->n_added; i++) {
            if (tok->added[i].id == id) {
                *len = tok->added[i].len;
                return tok->added[i].content;
            }
        }
    }
    *len = tok->vocab_str[id].len;
    return tok->vocab_arena + tok->vocab_str[id].off;
}

int32_t eng_token_lookup(const struct eng_tokenizer *tok, const char *token)
{
    size_t len = strlen(token);

    for (size_t i = 0; i < tok->n_added; i++)
        if (tok->added[i].len == len && memcmp(tok->added[i].content, token, len) == 0)
            return tok->added[i].id;
    return tok_vocab_find(tok, token, len);
}

bool eng_token_is_special(const struct eng_tokenizer *tok, int32_t id)
{
    return id >= 0 && (size_t)id < tok->n_ids && (tok->flags[id] & TOK_F_SPECIAL);
}

size_t eng_tokenizer_vocab_size(const struct eng_tokenizer *tok)
{
    return tok->n_ids;
}
