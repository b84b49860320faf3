/* engine/tokenizer_internal.h: the tables of a loaded tokenizer, shared by
 * tokenizer_load.c (builds them from tokenizer.json), tokenizer_bpe.c (the
 * vocabulary/merge hash tables and the BPE merge loop) and tokenizer.c
 * (encode/decode). Internal to engine/ and its tests.
 *
 * Everything here is immutable once eng_tokenizer_load returns; per-call
 * scratch lives in struct tok_work, owned by one eng_tokenize call.
 */
#ifndef ENG_TOKENIZER_INTERNAL_H
#define ENG_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "common/err.h"
#include "engine/tokenizer.h"

/* Caps on what a tokenizer.json may ask for (far above any real one). */
#define TOK_MAX_FILE_BYTES  ((size_t)512 << 20) /* tokenizer.json size */
#define TOK_MAX_SPLITS      16                  /* Split/Digits steps before ByteLevel */
#define TOK_MAX_NORMALIZERS 8                   /* normalizers in a Sequence */
#define TOK_MAX_TEMPLATE    64                  /* ids a TemplateProcessing adds */
#define TOK_MAX_INPUT       ((size_t)1 << 30)   /* bytes one eng_tokenize call accepts */

/* A span of bytes in an arena; off == UINT32_MAX marks "no string". */
struct tok_span {
    uint32_t off;
    uint32_t len;
};

/* Open-addressing hash table from a string to an id; the strings are the
 * spans of `keys` in `arena` (the table stores id + 1, 0 = empty slot). */
struct tok_strtab {
    uint32_t *slots;
    size_t mask; /* capacity - 1, capacity a power of two >= 2 * entries */
};

/* The merge table: (left id, right id) -> (rank, merged id). */
struct tok_merge {
    uint64_t key; /* left << 32 | right; UINT64_MAX = empty */
    uint32_t rank;
    int32_t id;
};

struct tok_mergetab {
    struct tok_merge *slots;
    size_t mask;
};

/* How a Split pre-tokenizer treats its matches (tokenizers'
 * SplitDelimiterBehavior). */
enum tok_behavior {
    TOK_REMOVED,
    TOK_ISOLATED,
    TOK_MERGED_WITH_PREVIOUS,
    TOK_MERGED_WITH_NEXT,
    TOK_CONTIGUOUS,
};

struct tok_split {
    pcre2_code *re; /* owned; compiled with UTF|UCP (+JIT when available) */
    enum tok_behavior behavior;
    bool invert;
};

/* An added token as the file declares it. */
struct tok_added {
    char *content; /* owned, as written */
    size_t len;
    char *pattern; /* owned: what is matched (content, normalized if `normalized`) */
    size_t pattern_len;
    int32_t id;
    bool special;
    bool normalized;
    bool lstrip;
    bool rstrip;
    bool single_word;
};

/* A byte trie over added-token patterns for leftmost-longest matching (what
 * tokenizers does with an Aho-Corasick automaton in LeftmostLongest mode).
 * Children are a first-child/next-sibling list. */
struct tok_trie_node {
    int32_t child;   /* first child, -1 none */
    int32_t sibling; /* next sibling, -1 none */
    int32_t added;   /* index into tok->added of the pattern ending here, -1 none */
    uint8_t byte;
};

struct tok_trie {
    struct tok_trie_node *nodes; /* nodes[0] is the root */
    size_t n;
    size_t cap;
    uint8_t first[32]; /* bitmap of pattern first bytes: a quick reject */
};

/* Per-id flags. */
#define TOK_F_PRESENT 1u /* the id names a token (ids may have gaps) */
#define TOK_F_SPECIAL 2u /* an added token flagged "special" */
#define TOK_F_ADDED   4u /* an added token (its content wins over the vocab's) */

struct eng_tokenizer {
    size_t n_ids; /* highest id + 1 */

    /* Model vocabulary: the token strings as written in the file. */
    char *vocab_arena;
    struct tok_span *vocab_str; /* [n_ids]; off UINT32_MAX where the model has no such id */
    size_t n_vocab;             /* entries in model.vocab */
    struct tok_strtab vocab_tab;

    /* What each id decodes to (ByteLevel decoder) and its flags. */
    char *piece_arena;
    struct tok_span *piece; /* [n_ids] */
    uint8_t *flags;         /* [n_ids] TOK_F_* */

    /* BPE model. */
    int32_t byte_id[256]; /* id of each single byte's token, -1 if the vocab lacks it */
    struct tok_mergetab merges;
    size_t n_merges;
    bool ignore_merges;
    int32_t unk_id; /* -1 when model.unk_token is null */
    bool fuse_unk;

    /* Added tokens, split into those matched on the raw text and those
     * matched after normalization. */
    struct tok_added *added;
    size_t n_added;
    struct tok_trie trie_raw;
    struct tok_trie trie_norm;

    /* Normalizer: utf8proc_map option sets applied in order (NFC...). */
    int norm_options[TOK_MAX_NORMALIZERS];
    size_t n_norm;

    /* Pre-tokenizer: Split steps, then the ByteLevel step. */
    struct tok_split splits[TOK_MAX_SPLITS];
    size_t n_splits;
    bool bl_add_prefix_space;
    pcre2_code *bl_re;     /* GPT-2 regex when ByteLevel use_regex, else NULL */
    uint32_t max_captures; /* most capture groups of any regex (match data size) */

    /* Post-processor (TemplateProcessing "single"): ids around the sequence. */
    int32_t tmpl_prefix[TOK_MAX_TEMPLATE];
    size_t n_prefix;
    int32_t tmpl_suffix[TOK_MAX_TEMPLATE];
    size_t n_suffix;
};

/* ---- tokenizer_config.c -------------------------------------------------- */

struct cJSON;

/* obj's "type" string, or NULL. */
const char *tok_json_type(const struct cJSON *obj);
/* An optional boolean field: absent or null gives def. Errors: SH_EMALFORMED
 * (`what`.`key` is not a boolean). */
int tok_json_bool(const struct cJSON *obj,
                  const char *key,
                  bool def,
                  bool *out,
                  const char *what,
                  struct sh_err *err);

/* Each reads one component into tok (NULL/null allowed where tokenizers
 * allows it). Errors: SH_EMALFORMED, SH_EUNSUPPORTED (naming the type),
 * SH_ENOMEM. */
int tok_load_normalizer(struct eng_tokenizer *tok, const struct cJSON *n, struct sh_err *err);
/* *have_bl is set once a ByteLevel step was read (it must come last). */
int tok_load_pretok(struct eng_tokenizer *tok,
                    const struct cJSON *p,
                    bool *have_bl,
                    struct sh_err *err);
int tok_load_post(struct eng_tokenizer *tok, const struct cJSON *p, struct sh_err *err);
int tok_load_decoder(const struct cJSON *d, struct sh_err *err);

/* ---- tokenizer_bpe.c ---------------------------------------------------- */

uint64_t tok_hash(const void *data, size_t len);

/* Builds the vocab table over tok->vocab_str/vocab_arena. Errors: SH_ENOMEM,
 * SH_EMALFORMED (a string listed twice). */
int tok_strtab_build(struct eng_tokenizer *tok, struct sh_err *err);
/* Id of the model-vocabulary token spelled exactly key[0..len), or -1. */
int32_t tok_vocab_find(const struct eng_tokenizer *tok, const char *key, size_t len);
void tok_strtab_free(struct tok_strtab *t);

/* Merge table of n entries (capacity fixed at init). Errors: SH_ENOMEM. */
int tok_mergetab_init(struct tok_mergetab *t, size_t n);
/* Inserts or replaces (a later duplicate wins, as a HashMap collect does). */
void tok_mergetab_put(struct tok_mergetab *t, int32_t a, int32_t b, uint32_t rank, int32_t id);
bool tok_mergetab_get(
    const struct tok_mergetab *t, int32_t a, int32_t b, uint32_t *rank, int32_t *id);
void tok_mergetab_free(struct tok_mergetab *t);

/* Per-call scratch for BPE (grown as needed, freed by tok_bpe_work_free). */
struct tok_sym;
struct tok_cand;
struct tok_bpe_work {
    struct tok_sym *syms;
    size_t syms_cap;
    struct tok_cand *heap;
    size_t heap_cap;
    char *blstr; /* the byte-level spelling of a word, for ignore_merges */
    size_t blstr_cap;
};

/* Appends the ids of one pre-token (raw bytes) to *ids (grown with checked
 * math). Errors: SH_ENOMEM, SH_ETOOBIG. */
int tok_bpe_word(const struct eng_tokenizer *tok,
                 struct tok_bpe_work *w,
                 const uint8_t *s,
                 size_t n,
                 int32_t **ids,
                 size_t *n_ids,
                 size_t *cap_ids,
                 struct sh_err *err);
void tok_bpe_work_free(struct tok_bpe_work *w);

/* ---- tokenizer_added.c --------------------------------------------------- */

/* Fills the two tries from tok->added (normalizing the patterns of tokens
 * flagged `normalized`). Errors: SH_ENOMEM, SH_EMALFORMED (a pattern twice). */
int tok_added_build(struct eng_tokenizer *tok, struct sh_err *err);

/* Called for each piece of a split text, in order: id >= 0 for an added
 * token (s/n the text it covers), -1 for text between them. A non-zero
 * return stops the split and is returned. */
typedef int (*tok_segment_fn)(void *ctx, const char *s, size_t n, int32_t id);

/* Splits s[0..n) (valid UTF-8) around the added tokens of trie t. */
int tok_added_split(const struct eng_tokenizer *tok,
                    const struct tok_trie *t,
                    const char *s,
                    size_t n,
                    tok_segment_fn fn,
                    void *ctx);

/* ---- shared helpers (tokenizer.c) --------------------------------------- */

/* Applies the normalizer to s[0..n) (valid UTF-8). *out is returned (caller
 * frees with free()) or NULL when the text is unchanged by construction (no
 * normalizer, or pure ASCII). Errors: SH_ENOMEM, SH_EINVAL. */
int tok_normalize(const struct eng_tokenizer *tok,
                  const char *s,
                  size_t n,
                  char **out,
                  size_t *out_len,
                  struct sh_err *err);

/* GPT-2's bytes_to_unicode(): the code point byte b is spelled as. */
uint32_t tok_byte_to_cp(uint8_t b);
/* The inverse: the byte a code point stands for, or -1. */
int tok_cp_to_byte(uint32_t cp);

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 if the bytes do
 * not start one; *bad then receives the length of the maximal invalid prefix
 * (>= 1), the unit Rust's from_utf8_lossy replaces with one U+FFFD. */
size_t tok_utf8_seq(const uint8_t *s, size_t n, size_t *bad);
/* Decodes the code point of a valid sequence of length len. */
uint32_t tok_utf8_cp(const uint8_t *s, size_t len);

#endif
