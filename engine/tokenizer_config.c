/* engine/tokenizer_config.c: the tokenizer.json components around the
 * model: normalizer, pre-tokenizer (with its regexes), post-processor and
 * decoder. Each is checked against what tokenizer.c implements; anything
 * else is refused with SH_EUNSUPPORTED naming it.
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include <cjson/cJSON.h>

#include "common/json.h"
#include "common/util.h"
#include "engine/tokenizer_internal.h"

/* GPT-2's pre-tokenization regex, what ByteLevel(use_regex=true) splits with
 * (tokenizers pre_tokenizers/byte_level.rs). */
static const char gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ---- small JSON helpers --------------------------------------------------- */

const char *tok_json_type(const cJSON *obj)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

/* An optional boolean: absent or null gives def. */
int tok_json_bool(
    const cJSON *obj, const char *key, bool def, bool *out, const char *what, struct sh_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v))
        return sh_err_set(err, SH_EMALFORMED, "%s.%s: expected true or false", what, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* ---- regexes ------------------------------------------------------------- */

static int compile_re(struct eng_tokenizer *tok,
                      const char *pat,
                      size_t len,
                      pcre2_code **out,
                      const char *what,
                      struct sh_err *err)
{
    PCRE2_UCHAR msg[160];
    PCRE2_SIZE eoff = 0;
    uint32_t caps = 0;
    pcre2_code *re;
    int ec = 0;

    /* Oniguruma (which tokenizers uses) reads \h as a hex digit, PCRE2 as
     * horizontal space: refuse rather than split differently. */
    for (size_t i = 0; i + 1 < len; i++) {
        if (pat[i] != '\\')
            continue;
        if (pat[i + 1] == 'h' || pat[i + 1] == 'H')
            return sh_err_set(err, SH_EUNSUPPORTED,
                              "%s: regex escape \\%c (Oniguruma hex digit) is not supported", what,
                              pat[i + 1]);
        i++;
    }
    /* MULTILINE: Oniguruma's Ruby syntax anchors ^ and $ at every line. */
    re = pcre2_compile((PCRE2_SPTR)pat, len, PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &ec, &eoff,
                       NULL);
    if (!re) {
        pcre2_get_error_message(ec, msg, sizeof msg);
        return sh_err_set(err, SH_EMALFORMED, "%s: bad regex at offset %zu: %s", what, (size_t)eoff,
                          (const char *)msg);
    }
    /* JIT when the platform has it; the interpreter gives the same matches. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    if (pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &caps) == 0 && caps > tok->max_captures)
        tok->max_captures = caps;
    *out = re;
    return 0;
}

/* A literal String pattern as a regex: every ASCII punctuation escaped. */
static int compile_literal(struct eng_tokenizer *tok,
                           const char *s,
                           pcre2_code **out,
                           const char *what,
                           struct sh_err *err)
{
    size_t n = strlen(s), j = 0, cap;
    char *pat;
    int rc;

    if (n == 0)
        return sh_err_set(err, SH_EMALFORMED, "%s: empty String pattern", what);
    if (!sh_mul_size(n, 2, &cap))
        return sh_err_set(err, SH_ETOOBIG, "%s: pattern too long", what);
    pat = malloc(cap);
    if (!pat)
        return sh_err_set(err, SH_ENOMEM, "%s: out of memory", what);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80 && c > ' ' &&
            !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            pat[j++] = '\\';
        pat[j++] = (char)c;
    }
    rc = compile_re(tok, pat, j, out, what, err);
    free(pat);
    return rc;
}

/* ---- normalizer ------------------------------------------------------------- */

int tok_load_normalizer(struct eng_tokenizer *tok, const cJSON *n, struct sh_err *err)
{
    static const struct {
        const char *name;
        int options;
    } forms[] = {
        {"NFC", UTF8PROC_STABLE | UTF8PROC_COMPOSE},
        {"NFD", UTF8PROC_STABLE | UTF8PROC_DECOMPOSE},
        {"NFKC", UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT},
        {"NFKD", UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT},
    };
    const char *type;

    if (!n || cJSON_IsNull(n))
        return 0;
    type = tok_json_type(n);
    if (!type)
        return sh_err_set(err, SH_EMALFORMED, "normalizer: missing \"type\"");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers"), *e;
        int rc;
        if (!cJSON_IsArray(list))
            return sh_err_set(err, SH_EMALFORMED, "normalizer.normalizers: expected an array");
        cJSON_ArrayForEach(e, list) if ((rc = tok_load_normalizer(tok, e, err))) return rc;
        return 0;
    }
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        if (strcmp(type, forms[i].name) != 0)
            continue;
        if (tok->n_norm == TOK_MAX_NORMALIZERS)
            return sh_err_set(err, SH_EUNSUPPORTED, "normalizer: more than %d steps",
                              TOK_MAX_NORMALIZERS);
        tok->norm_options[tok->n_norm++] = forms[i].options;
        return 0;
    }
    return sh_err_set(err, SH_EUNSUPPORTED, "normalizer type \"%.64s\" is not supported", type);
}

/* ---- pre-tokenizer ------------------------------------------------------- */

static int load_split(struct eng_tokenizer *tok, const cJSON *p, struct sh_err *err)
{
    static const char *const behaviors[] = {"Removed", "Isolated", "MergedWithPrevious",
                                            "MergedWithNext", "Contiguous"};
    struct tok_split *sp;
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
    const cJSON *beh = cJSON_GetObjectItemCaseSensitive(p, "behavior");
    const cJSON *re, *lit;
    size_t b;
    int rc;

    if (tok->n_splits == TOK_MAX_SPLITS)
        return sh_err_set(err, SH_EUNSUPPORTED, "pre_tokenizer: more than %d Split steps",
                          TOK_MAX_SPLITS);
    sp = &tok->splits[tok->n_splits];
    if (!cJSON_IsString(beh))
        return sh_err_set(err, SH_EMALFORMED, "pre_tokenizer Split: missing \"behavior\"");
    for (b = 0; b < sizeof behaviors / sizeof behaviors[0]; b++)
        if (strcmp(beh->valuestring, behaviors[b]) == 0)
            break;
    if (b == sizeof behaviors / sizeof behaviors[0])
        return sh_err_set(err, SH_EUNSUPPORTED, "pre_tokenizer Split: behavior \"%.64s\"",
                          beh->valuestring);
    sp->behavior = (enum tok_behavior)b;
    if ((rc = tok_json_bool(p, "invert", false, &sp->invert, "pre_tokenizer Split", err)))
        return rc;
    re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    lit = cJSON_GetObjectItemCaseSensitive(pat, "String");
    if (cJSON_IsString(re))
        rc = compile_re(tok, re->valuestring, strlen(re->valuestring), &sp->re,
                        "pre_tokenizer Split", err);
    else if (cJSON_IsString(lit))
        rc = compile_literal(tok, lit->valuestring, &sp->re, "pre_tokenizer Split", err);
    else
        return sh_err_set(err, SH_EMALFORMED,
                          "pre_tokenizer Split: \"pattern\" needs a \"Regex\" or \"String\"");
    if (rc)
        return rc;
    tok->n_splits++;
    return 0;
}

/* Digits: each digit (individual_digits) or each run of digits split off;
 * tokenizers uses char::is_numeric, i.e. \p{N}. */
static int load_digits(struct eng_tokenizer *tok, const cJSON *p, struct sh_err *err)
{
    struct tok_split *sp;
    bool individual;
    int rc;

    if (tok->n_splits == TOK_MAX_SPLITS)
        return sh_err_set(err, SH_EUNSUPPORTED, "pre_tokenizer: more than %d steps",
                          TOK_MAX_SPLITS);
    if ((rc = tok_json_bool(p, "individual_digits", false, &individual, "pre_tokenizer Digits",
                            err)))
        return rc;
    sp = &tok->splits[tok->n_splits];
    sp->behavior = individual ? TOK_ISOLATED : TOK_CONTIGUOUS;
    sp->invert = false;
    if ((rc = compile_re(tok, "\\p{N}", 5, &sp->re, "pre_tokenizer Digits", err)))
        return rc;
    tok->n_splits++;
    return 0;
}

/* Walks a (possibly nested) Sequence; *have_bl is set once ByteLevel is seen,
 * after which nothing else may follow (we split the raw text, then map it to
 * bytes once, so ByteLevel has to be the last step). */
int tok_load_pretok(struct eng_tokenizer *tok, const cJSON *p, bool *have_bl, struct sh_err *err)
{
    const char *type = tok_json_type(p);
    int rc;

    if (!type)
        return sh_err_set(err, SH_EMALFORMED, "pre_tokenizer: missing \"type\"");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"), *e;
        if (!cJSON_IsArray(list))
            return sh_err_set(err, SH_EMALFORMED, "pre_tokenizer.pretokenizers: expected an array");
        cJSON_ArrayForEach(e, list) if ((rc = tok_load_pretok(tok, e, have_bl, err))) return rc;
        return 0;
    }
    if (*have_bl)
        return sh_err_set(err, SH_EUNSUPPORTED,
                          "pre_tokenizer \"%.64s\" after ByteLevel is not supported", type);
    if (strcmp(type, "Split") == 0)
        return load_split(tok, p, err);
    if (strcmp(type, "Digits") == 0)
        return load_digits(tok, p, err);
    if (strcmp(type, "ByteLevel") == 0) {
        bool use_regex;
        *have_bl = true;
        if ((rc = tok_json_bool(p, "add_prefix_space", true, &tok->bl_add_prefix_space,
                                "pre_tokenizer ByteLevel", err)) ||
            (rc = tok_json_bool(p, "use_regex", true, &use_regex, "pre_tokenizer ByteLevel", err)))
            return rc;
        if (use_regex)
            return compile_re(tok, gpt2_regex, sizeof gpt2_regex - 1, &tok->bl_re,
                              "pre_tokenizer ByteLevel", err);
        return 0;
    }
    return sh_err_set(err, SH_EUNSUPPORTED, "pre_tokenizer type \"%.64s\" is not supported", type);
}

/* ---- post-processor and decoder -------------------------------------------- */

static int template_ids(struct eng_tokenizer *tok,
                        const cJSON *specials,
                        const char *name,
                        int32_t *out,
                        size_t *n,
                        struct sh_err *err)
{
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(specials, name);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(sp, "ids"), *v;

    if (!cJSON_IsArray(ids))
        return sh_err_set(err, SH_EMALFORMED,
                          "post_processor TemplateProcessing: special token \"%.64s\" has no ids",
                          name);
    cJSON_ArrayForEach(v, ids)
    {
        if (!sh_json_is_int(v, 0, (int64_t)tok->n_ids - 1) ||
            !(tok->flags[(size_t)v->valuedouble] & TOK_F_PRESENT))
            return sh_err_set(err, SH_EMALFORMED,
                              "post_processor TemplateProcessing: \"%.64s\": id out of range",
                              name);
        if (*n == TOK_MAX_TEMPLATE)
            return sh_err_set(err, SH_EUNSUPPORTED,
                              "post_processor TemplateProcessing: more than %d special ids",
                              TOK_MAX_TEMPLATE);
        out[(*n)++] = (int32_t)v->valuedouble;
    }
    return 0;
}

static int load_template(struct eng_tokenizer *tok, const cJSON *p, struct sh_err *err)
{
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(p, "special_tokens"), *item;
    int32_t pre[TOK_MAX_TEMPLATE], suf[TOK_MAX_TEMPLATE];
    size_t npre = 0, nsuf = 0;
    bool seen_seq = false;
    int rc;

    if (!cJSON_IsArray(single))
        return sh_err_set(err, SH_EMALFORMED,
                          "post_processor TemplateProcessing: \"single\" must be an array");
    cJSON_ArrayForEach(item, single)
    {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
        const cJSON *sq = cJSON_GetObjectItemCaseSensitive(item, "Sequence");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(st ? st : sq, "id");
        if (!cJSON_IsString(id))
            return sh_err_set(err, SH_EMALFORMED,
                              "post_processor TemplateProcessing: bad item in \"single\"");
        if (sq) {
            if (seen_seq || strcmp(id->valuestring, "A") != 0)
                return sh_err_set(err, SH_EUNSUPPORTED,
                                  "post_processor TemplateProcessing: \"single\" must use "
                                  "sequence A exactly once");
            seen_seq = true;
        } else if ((rc = template_ids(tok, specials, id->valuestring, seen_seq ? suf : pre,
                                      seen_seq ? &nsuf : &npre, err))) {
            return rc;
        }
    }
    if (!seen_seq)
        return sh_err_set(err, SH_EUNSUPPORTED,
                          "post_processor TemplateProcessing: \"single\" without sequence A");
    /* In a Sequence of processors a later template wraps the earlier one. */
    if (tok->n_prefix + npre > TOK_MAX_TEMPLATE || tok->n_suffix + nsuf > TOK_MAX_TEMPLATE)
        return sh_err_set(err, SH_EUNSUPPORTED, "post_processor: too many special ids");
    memmove(tok->tmpl_prefix + npre, tok->tmpl_prefix, tok->n_prefix * sizeof *pre);
    memcpy(tok->tmpl_prefix, pre, npre * sizeof *pre);
    tok->n_prefix += npre;
    memcpy(tok->tmpl_suffix + tok->n_suffix, suf, nsuf * sizeof *suf);
    tok->n_suffix += nsuf;
    return 0;
}

int tok_load_post(struct eng_tokenizer *tok, const cJSON *p, struct sh_err *err)
{
    const char *type;

    if (!p || cJSON_IsNull(p))
        return 0;
    type = tok_json_type(p);
    if (!type)
        return sh_err_set(err, SH_EMALFORMED, "post_processor: missing \"type\"");
    if (strcmp(type, "ByteLevel") == 0) /* only trims offsets: ids unchanged */
        return 0;
    if (strcmp(type, "TemplateProcessing") == 0)
        return load_template(tok, p, err);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "processors"), *e;
        int rc;
        if (!cJSON_IsArray(list))
            return sh_err_set(err, SH_EMALFORMED, "post_processor.processors: expected an array");
        cJSON_ArrayForEach(e, list) if ((rc = tok_load_post(tok, e, err))) return rc;
        return 0;
    }
    return sh_err_set(err, SH_EUNSUPPORTED, "post_processor type \"%.64s\" is not supported", type);
}

int tok_load_decoder(const cJSON *d, struct sh_err *err)
{
    const char *type;

    if (!d || cJSON_IsNull(d))
        return sh_err_set(err, SH_EUNSUPPORTED,
                          "decoder: none given (only the ByteLevel decoder is supported)");
    type = tok_json_type(d);
    if (!type)
        return sh_err_set(err, SH_EMALFORMED, "decoder: missing \"type\"");
    if (strcmp(type, "ByteLevel") == 0)
        return 0;
    if (strcmp(type, "Sequence") == 0) {
        /* ByteLevel twice would not be the identity: allow exactly one. */
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "decoders");
        if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) != 1)
            return sh_err_set(err, SH_EUNSUPPORTED,
                              "decoder Sequence: only a single ByteLevel decoder is supported");
        return tok_load_decoder(list->child, err);
    }
    return sh_err_set(err, SH_EUNSUPPORTED, "decoder type \"%.64s\" is not supported", type);
}
