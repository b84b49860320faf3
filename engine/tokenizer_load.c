/* engine/tokenizer_load.c: reading a Hugging Face tokenizer.json into the
 * tables of tokenizer_internal.h: the BPE model (vocab, merges), the added
 * tokens and the per-id pieces; the other components are read by
 * tokenizer_config.c. Everything is validated before it is trusted.
 *
 * What the file says is checked against what we implement: an unknown
 * component type is refused (SH_EUNSUPPORTED, naming it), a structural fault
 * (a merge naming an unknown token, an id out of range, a bad regex) is
 * SH_EMALFORMED. Nothing is guessed. The semantics followed are those of
 * tokenizers 0.2x (tokenizer/serialization.rs, models/bpe/serialization.rs,
 * added_vocabulary.rs).
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/json.h"
#include "common/util.h"
#include "engine/tokenizer_internal.h"

/* ---- model (BPE) ----------------------------------------------------------- */

/* Model fields that must be off or empty for the BPE we implement. */
static int check_model_options(const cJSON *model, struct sh_err *err)
{
    static const char *const empty_ok[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    const cJSON *v;
    bool b = false;
    int rc;

    v = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (v && !cJSON_IsNull(v) && !(cJSON_IsNumber(v) && v->valuedouble == 0.0))
        return sh_err_set(err, SH_EUNSUPPORTED, "model.dropout: BPE dropout is not supported");
    if ((rc = tok_json_bool(model, "byte_fallback", false, &b, "model", err)))
        return rc;
    if (b)
        return sh_err_set(err, SH_EUNSUPPORTED,
                          "model.byte_fallback: true is not supported (byte-level BPE only)");
    for (size_t i = 0; i < sizeof empty_ok / sizeof empty_ok[0]; i++) {
        v = cJSON_GetObjectItemCaseSensitive(model, empty_ok[i]);
        if (v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && v->valuestring[0] == '\0'))
            return sh_err_set(err, SH_EUNSUPPORTED, "model.%s: a non-empty value is not supported",
                              empty_ok[i]);
    }
    return 0;
}

/* Splits one merge entry into its two token strings. */
static int merge_parts(const cJSON *m,
                       size_t rank,
                       const char **a,
                       size_t *alen,
                       const char **b,
                       size_t *blen,
                       struct sh_err *err)
{
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
        cJSON_IsString(m->child->next)) {
        *a = m->child->valuestring;
        *alen = strlen(*a);
        *b = m->child->next->valuestring;
        *blen = strlen(*b);
        return 0;
    }
    if (cJSON_IsString(m)) {
        /* "a b": split at the first space (tokenizers: splitn(2, ' ')). */
        const char *sp = strchr(m->valuestring, ' ');
        if (sp) {
            *a = m->valuestring;
            *alen = (size_t)(sp - m->valuestring);
            *b = sp + 1;
            *blen = strlen(*b);
            return 0;
        }
    }
    return sh_err_set(err, SH_EMALFORMED, "model.merges[%zu]: expected [\"a\", \"b\"] or \"a b\"",
                      rank);
}

static int load_merges(struct eng_tokenizer *tok, const cJSON *merges, struct sh_err *err)
{
    char *buf = NULL;
    size_t cap = 0, rank = 0;
    const cJSON *m;
    int rc = 0;

    if (!cJSON_IsArray(merges))
        return sh_err_set(err, SH_EMALFORMED, "model.merges: expected an array");
    tok->n_merges = (size_t)cJSON_GetArraySize(merges);
    if (tok->n_merges > UINT32_MAX / 4)
        return sh_err_set(err, SH_ETOOBIG, "model.merges: %zu entries", tok->n_merges);
    if (tok_mergetab_init(&tok->merges, tok->n_merges))
        return sh_err_set(err, SH_ENOMEM, "model.merges: out of memory");
    cJSON_ArrayForEach(m, merges)
    {
        const char *a = NULL, *b = NULL;
        size_t alen = 0, blen = 0, need;
        int32_t ida, idb, idm;

        if ((rc = merge_parts(m, rank, &a, &alen, &b, &blen, err)))
            break;
        ida = tok_vocab_find(tok, a, alen);
        idb = tok_vocab_find(tok, b, blen);
        if (ida < 0 || idb < 0) {
            const char *bad = ida < 0 ? a : b;
            size_t blen2 = ida < 0 ? alen : blen;
            rc = sh_err_set(err, SH_EMALFORMED,
                            "model.merges[%zu]: token \"%.*s\" is not in the vocabulary", rank,
                            (int)(blen2 > 64 ? 64 : blen2), bad);
            break;
        }
        need = alen + blen;
        if (need > cap) {
            char *nb = realloc(buf, need * 2);
            if (!nb) {
                rc = sh_err_set(err, SH_ENOMEM, "model.merges: out of memory");
                break;
            }
            buf = nb;
            cap = need * 2;
        }
        memcpy(buf, a, alen);
        memcpy(buf + alen, b, blen);
        idm = tok_vocab_find(tok, buf, need);
        if (idm < 0) {
            rc = sh_err_set(err, SH_EMALFORMED,
                            "model.merges[%zu]: merged token \"%.*s\" is not in the vocabulary",
                            rank, (int)(need > 64 ? 64 : need), buf);
            break;
        }
        tok_mergetab_put(&tok->merges, ida, idb, (uint32_t)rank, idm);
        rank++;
    }
    free(buf);
    return rc;
}

/* ---- per-id tables ----------------------------------------------------- */

/* Counts the vocab and added tokens and sizes the per-id arrays: every id
 * must be below n_vocab + n_added (tokenizers gives added tokens the ids
 * after the vocabulary, so a real file never needs more). */
static int
size_ids(struct eng_tokenizer *tok, const cJSON *vocab, const cJSON *added, struct sh_err *err)
{
    size_t limit, max_id = 0, total = 0;
    const cJSON *v;

    tok->n_vocab = (size_t)cJSON_GetArraySize(vocab);
    tok->n_added = added ? (size_t)cJSON_GetArraySize(added) : 0;
    limit = tok->n_vocab + tok->n_added;
    if (limit > INT32_MAX)
        return sh_err_set(err, SH_ETOOBIG, "%zu tokens", limit);
    cJSON_ArrayForEach(v, vocab)
    {
        if (!sh_json_is_int(v, 0, (int64_t)limit - 1))
            return sh_err_set(err, SH_EMALFORMED,
                              "model.vocab[\"%.64s\"]: id must be an integer in [0, %zu)",
                              v->string, limit);
        if ((size_t)v->valuedouble > max_id)
            max_id = (size_t)v->valuedouble;
        total += strlen(v->string);
    }
    cJSON_ArrayForEach(v, added)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(v, "id");
        if (!cJSON_IsObject(v) || !id)
            return sh_err_set(err, SH_EMALFORMED, "added_tokens: entry without an \"id\"");
        if (!sh_json_is_int(id, 0, (int64_t)limit - 1))
            return sh_err_set(err, SH_EMALFORMED,
                              "added_tokens: id %g out of range [0, %zu) (vocab %zu + %zu added)",
                              cJSON_IsNumber(id) ? id->valuedouble : -1.0, limit, tok->n_vocab,
                              tok->n_added);
        if ((size_t)id->valuedouble > max_id)
            max_id = (size_t)id->valuedouble;
    }
    if (limit == 0)
        return sh_err_set(err, SH_EMALFORMED, "model.vocab is empty");
    if (total >= UINT32_MAX / 2)
        return sh_err_set(err, SH_ETOOBIG, "model.vocab: %zu bytes of token text", total);
    tok->n_ids = max_id + 1;
    tok->vocab_str = malloc(tok->n_ids * sizeof *tok->vocab_str);
    tok->piece = calloc(tok->n_ids, sizeof *tok->piece);
    tok->flags = calloc(tok->n_ids, 1);
    tok->vocab_arena = malloc(total + 1);
    if (!tok->vocab_str || !tok->piece || !tok->flags || !tok->vocab_arena)
        return sh_err_set(err, SH_ENOMEM, "vocabulary: out of memory");
    for (size_t i = 0; i < tok->n_ids; i++)
        tok->vocab_str[i].off = UINT32_MAX;
    return 0;
}

static int load_vocab(struct eng_tokenizer *tok, const cJSON *vocab, struct sh_err *err)
{
    size_t off = 0;
    const cJSON *v;
    int rc;

    cJSON_ArrayForEach(v, vocab)
    {
        size_t id = (size_t)v->valuedouble, len = strlen(v->string);
        if (tok->vocab_str[id].off != UINT32_MAX)
            return sh_err_set(err, SH_EMALFORMED, "model.vocab: id %zu given twice", id);
        memcpy(tok->vocab_arena + off, v->string, len);
        tok->vocab_str[id].off = (uint32_t)off;
        tok->vocab_str[id].len = (uint32_t)len;
        tok->flags[id] |= TOK_F_PRESENT;
        off += len;
    }
    if ((rc = tok_strtab_build(tok, err)))
        return rc;
    for (int b = 0; b < 256; b++) {
        uint32_t cp = tok_byte_to_cp((uint8_t)b);
        char s[2];
        size_t n = 0;
        if (cp < 0x80) {
            s[n++] = (char)cp;
        } else {
            s[n++] = (char)(0xC0 | cp >> 6);
            s[n++] = (char)(0x80 | (cp & 0x3F));
        }
        tok->byte_id[b] = tok_vocab_find(tok, s, n);
    }
    return 0;
}

static int load_model(struct eng_tokenizer *tok, const cJSON *model, struct sh_err *err)
{
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    int rc;

    if ((rc = check_model_options(model, err)))
        return rc;
    if ((rc = tok_json_bool(model, "ignore_merges", false, &tok->ignore_merges, "model", err)) ||
        (rc = tok_json_bool(model, "fuse_unk", false, &tok->fuse_unk, "model", err)))
        return rc;
    tok->unk_id = -1;
    if (unk && !cJSON_IsNull(unk)) {
        if (!cJSON_IsString(unk))
            return sh_err_set(err, SH_EMALFORMED, "model.unk_token: expected a string or null");
        tok->unk_id = tok_vocab_find(tok, unk->valuestring, strlen(unk->valuestring));
        if (tok->unk_id < 0)
            return sh_err_set(err, SH_EMALFORMED,
                              "model.unk_token \"%.64s\" is not in the vocabulary",
                              unk->valuestring);
    }
    return load_merges(tok, cJSON_GetObjectItemCaseSensitive(model, "merges"), err);
}

/* ---- added tokens ----------------------------------------------------------- */

static int load_added(struct eng_tokenizer *tok, const cJSON *added, struct sh_err *err)
{
    int32_t next_id = (int32_t)tok->n_vocab, max_added = -1;
    const cJSON *v;
    size_t i = 0;
    int rc;

    if (tok->n_added == 0)
        return 0;
    tok->added = calloc(tok->n_added, sizeof *tok->added);
    if (!tok->added)
        return sh_err_set(err, SH_ENOMEM, "added_tokens: out of memory");
    cJSON_ArrayForEach(v, added)
    {
        struct tok_added *a = &tok->added[i];
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
        int32_t vid;

        a->id = (int32_t)cJSON_GetObjectItemCaseSensitive(v, "id")->valuedouble;
        if (!cJSON_IsString(c) || c->valuestring[0] == '\0')
            return sh_err_set(err, SH_EMALFORMED,
                              "added_tokens[%zu]: \"content\" must be a non-empty string", i);
        if ((rc = tok_json_bool(v, "special", false, &a->special, "added_tokens", err)) ||
            (rc = tok_json_bool(v, "normalized", !a->special, &a->normalized, "added_tokens",
                                err)) ||
            (rc = tok_json_bool(v, "lstrip", false, &a->lstrip, "added_tokens", err)) ||
            (rc = tok_json_bool(v, "rstrip", false, &a->rstrip, "added_tokens", err)) ||
            (rc = tok_json_bool(v, "single_word", false, &a->single_word, "added_tokens", err)))
            return rc;
        a->len = strlen(c->valuestring);
        a->content = strdup(c->valuestring);
        if (!a->content)
            return sh_err_set(err, SH_ENOMEM, "added_tokens: out of memory");
        /* tokenizers does not take the ids from the file: it gives a token
         * the vocabulary has the vocabulary's id, and any other the next id
         * after the vocabulary and the added tokens so far
         * (AddedVocabulary::add_tokens). A file whose ids differ from that
         * would mean different ids there than here: refuse it. */
        vid = tok_vocab_find(tok, a->content, a->len);
        if (vid < 0)
            vid = next_id;
        if (vid != a->id)
            return sh_err_set(err, SH_EMALFORMED,
                              "added_tokens[%zu] \"%.64s\": id %d, but tokenizers would give it %d",
                              i, a->content, a->id, vid);
        if (a->id > max_added)
            max_added = a->id;
        next_id = (size_t)max_added >= tok->n_vocab ? max_added + 1 : (int32_t)tok->n_vocab;
        if (tok->flags[a->id] & TOK_F_ADDED)
            return sh_err_set(err, SH_EMALFORMED, "added_tokens[%zu]: id %d given twice", i, a->id);
        tok->flags[a->id] |= TOK_F_ADDED | TOK_F_PRESENT | (a->special ? TOK_F_SPECIAL : 0);
        i++;
    }
    return 0;
}

/* ---- pieces ------------------------------------------------------------------ */

/* What tokenizers' ByteLevel decoder makes of one token string: each char
 * mapped back to its byte when every char of the token has one, else the
 * token's own UTF-8 bytes (decoders/byte_level.rs). */
static size_t bytelevel_decode(const char *s, size_t n, char *out)
{
    size_t i = 0, j = 0, bad;

    while (i < n) {
        size_t len = tok_utf8_seq((const uint8_t *)s + i, n - i, &bad);
        int b = len ? tok_cp_to_byte(tok_utf8_cp((const uint8_t *)s + i, len)) : -1;
        if (b < 0) {
            memcpy(out, s, n);
            return n;
        }
        out[j++] = (char)b;
        i += len;
    }
    return j;
}

static int build_pieces(struct eng_tokenizer *tok, struct sh_err *err)
{
    size_t total = 0, off = 0;
    const char **str;
    size_t *len;
    int rc = 0;

    str = calloc(tok->n_ids, sizeof *str);
    len = calloc(tok->n_ids, sizeof *len);
    if (!str || !len) {
        rc = sh_err_set(err, SH_ENOMEM, "token pieces: out of memory");
        goto out;
    }
    for (size_t id = 0; id < tok->n_ids; id++) {
        if (tok->vocab_str[id].off != UINT32_MAX) {
            str[id] = tok->vocab_arena + tok->vocab_str[id].off;
            len[id] = tok->vocab_str[id].len;
        }
    }
    /* An added token's content wins over the vocabulary's string for its id
     * (tokenizers' id_to_token asks the added vocabulary first). */
    for (size_t i = 0; i < tok->n_added; i++) {
        str[tok->added[i].id] = tok->added[i].content;
        len[tok->added[i].id] = tok->added[i].len;
    }
    for (size_t id = 0; id < tok->n_ids; id++)
        total += len[id];
    if (total >= UINT32_MAX) {
        rc = sh_err_set(err, SH_ETOOBIG, "token pieces: %zu bytes", total);
        goto out;
    }
    tok->piece_arena = malloc(total + 1);
    if (!tok->piece_arena) {
        rc = sh_err_set(err, SH_ENOMEM, "token pieces: out of memory");
        goto out;
    }
    for (size_t id = 0; id < tok->n_ids; id++) {
        size_t n = str[id] ? bytelevel_decode(str[id], len[id], tok->piece_arena + off) : 0;
        tok->piece[id].off = (uint32_t)off;
        tok->piece[id].len = (uint32_t)n;
        off += n;
    }
out:
    free(str);
    free(len);
    return rc;
}

/* ---- the whole file ----------------------------------------------------------- */

static int load_root(struct eng_tokenizer *tok, const cJSON *root, struct sh_err *err)
{
    static const char *const unsupported_if_set[] = {"truncation", "padding"};
    const cJSON *model, *vocab, *added, *pretok;
    const char *type;
    bool have_bl = false;
    int rc;

    if (!cJSON_IsObject(root))
        return sh_err_set(err, SH_EMALFORMED, "expected a JSON object");
    for (size_t i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, unsupported_if_set[i]);
        if (v && !cJSON_IsNull(v))
            return sh_err_set(err, SH_EUNSUPPORTED, "\"%s\" is set: not supported",
                              unsupported_if_set[i]);
    }
    model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model))
        return sh_err_set(err, SH_EMALFORMED, "missing \"model\" object");
    type = tok_json_type(model);
    if (!type)
        return sh_err_set(err, SH_EMALFORMED, "model: missing \"type\"");
    if (strcmp(type, "BPE") != 0)
        return sh_err_set(err, SH_EUNSUPPORTED, "model type \"%.64s\" is not supported (BPE only)",
                          type);
    vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab))
        return sh_err_set(err, SH_EMALFORMED, "model.vocab: expected an object");
    added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return sh_err_set(err, SH_EMALFORMED, "added_tokens: expected an array");
    if (added && cJSON_IsNull(added))
        added = NULL;

    if ((rc = size_ids(tok, vocab, added, err)) || (rc = load_vocab(tok, vocab, err)) ||
        (rc = load_model(tok, model, err)) || (rc = load_added(tok, added, err)) ||
        (rc =
             tok_load_normalizer(tok, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), err)) ||
        (rc = tok_added_build(tok, err)) || (rc = build_pieces(tok, err)))
        return rc;
    pretok = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (!pretok || cJSON_IsNull(pretok))
        return sh_err_set(err, SH_EUNSUPPORTED,
                          "pre_tokenizer: none given (byte-level BPE needs ByteLevel)");
    if ((rc = tok_load_pretok(tok, pretok, &have_bl, err)))
        return rc;
    if (!have_bl)
        return sh_err_set(err, SH_EUNSUPPORTED,
                          "pre_tokenizer: no ByteLevel step (only byte-level BPE is supported)");
    if ((rc = tok_load_post(tok, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), err)))
        return rc;
    return tok_load_decoder(cJSON_GetObjectItemCaseSensitive(root, "decoder"), err);
}

int eng_tokenizer_load(const char *path, struct eng_tokenizer **out, struct sh_err *err)
{
    struct eng_tokenizer *tok;
    cJSON *root = NULL;
    int rc;

    rc = sh_json_parse_file(path, TOK_MAX_FILE_BYTES, &root, err);
    if (rc)
        return rc;
    tok = calloc(1, sizeof *tok);
    if (!tok) {
        cJSON_Delete(root);
        return sh_err_set(err, SH_ENOMEM, "%s: out of memory", path);
    }
    rc = load_root(tok, root, err);
    cJSON_Delete(root);
    if (rc) {
        eng_tokenizer_free(tok);
        return sh_err_wrap(err, "%s", path);
    }
    *out = tok;
    return 0;
}

void eng_tokenizer_free(struct eng_tokenizer *tok)
{
    if (!tok)
        return;
    for (size_t i = 0; i < tok->n_splits; i++)
        pcre2_code_free(tok->splits[i].re);
    pcre2_code_free(tok->bl_re);
    for (size_t i = 0; tok->added && i < tok->n_added; i++) {
        if (tok->added[i].pattern != tok->added[i].content)
            free(tok->added[i].pattern);
        free(tok->added[i].content);
    }
    free(tok->added);
    free(tok->trie_raw.nodes);
    free(tok->trie_norm.nodes);
    tok_mergetab_free(&tok->merges);
    tok_strtab_free(&tok->vocab_tab);
    free(tok->vocab_arena);
    free(tok->vocab_str);
    free(tok->piece_arena);
    free(tok->piece);
    free(tok->flags);
    free(tok);
}
