/* engine/tokenizer.h: Hugging Face tokenizer.json (byte-level BPE), encode
 * and decode exactly as the `tokenizers` library (0.2x) does; checked
 * against its own outputs for Qwen3, Llama 3.1, DeepSeek-V3 and the demo
 * model (tests/engine).
 *
 * Supported: added/special tokens (matched before pre-tokenization,
 * leftmost-longest, honouring special/normalized/lstrip/rstrip/single_word),
 * normalizers NFC/NFD/NFKC/NFKD (libutf8proc) and Sequences of them, Split
 * pre-tokenizers (Regex or String; every behaviour; invert; regexes run by
 * libpcre2 with UTF+UCP), Digits, ByteLevel pre-tokenizer (add_prefix_space,
 * use_regex) as the last step, BPE merges by rank (pairs as ["a","b"] or
 * "a b"), ignore_merges, unk_token/fuse_unk, TemplateProcessing ("single")
 * and ByteLevel post-processors and Sequences of them, the ByteLevel decoder.
 * Anything else in the file (another model, normalizer, pre-tokenizer,
 * decoder or post-processor type, byte_fallback, dropout, truncation,
 * padding, an Oniguruma-only regex escape) is refused at load with an error
 * naming it.
 *
 * A loaded tokenizer is immutable: every function taking a const pointer may
 * be called from several threads at once.
 */
#ifndef ENG_TOKENIZER_H
#define ENG_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct eng_tokenizer;

/* Loads a tokenizer.json. *out is returned; free with eng_tokenizer_free.
 * Added-token ids must be the ones tokenizers assigns (the vocabulary's id
 * for a token it has, else the next id after the vocabulary and the added
 * tokens before it), which every file tokenizers wrote satisfies.
 * Errors: SH_ENOTFOUND, SH_EIO, SH_ETOOBIG, SH_EMALFORMED (bad JSON, a bad
 * regex, a merge naming an unknown token, an id out of range...),
 * SH_EUNSUPPORTED (a component we do not implement, named in the message),
 * SH_ENOMEM. The message starts with the path. */
int eng_tokenizer_load(const char *path, struct eng_tokenizer **out, struct sh_err *err);
void eng_tokenizer_free(struct eng_tokenizer *tok);

/* Encodes len bytes of UTF-8 text (NUL bytes allowed). add_special applies
 * the post-processor (e.g. Llama 3's BOS). *ids is returned (caller frees
 * with free(); non-NULL even when *n is 0), *n set. Linear in len up to a
 * log factor (a 1 MiB text takes ~0.1 s). Errors: SH_EINVAL (text is not
 * valid UTF-8: overlongs, surrogates and truncated sequences included),
 * SH_ENOMEM, SH_ETOOBIG (len over 1 GiB, or a regex match limit). */
int eng_tokenize(const struct eng_tokenizer *tok,
                 const char *text,
                 size_t len,
                 bool add_special,
                 int32_t **ids,
                 size_t *n,
                 struct sh_err *err);

/* Decodes ids to text (bytes; may be invalid UTF-8 if ids split a character,
 * as tokenizers' decode would show U+FFFD there: we substitute U+FFFD the
 * same way). skip_special drops tokens flagged special. *out is returned
 * (caller frees with free()), NUL-terminated, *len excludes the NUL.
 * Errors: SH_ERANGE (an id outside the vocabulary), SH_ENOMEM. */
int eng_detokenize(const struct eng_tokenizer *tok,
                   const int32_t *ids,
                   size_t n,
                   bool skip_special,
                   char **out,
                   size_t *len,
                   struct sh_err *err);

/* The raw bytes one token stands for: what the ByteLevel decoder makes of
 * it (a byte-level token's bytes; a token with other characters, such as
 * most added tokens, its content as written). Concatenating pieces gives the
 * exact output bytes before the U+FFFD repair, so streaming callers buffer
 * incomplete UTF-8 themselves. Returns a view valid while tok lives, or NULL
 * for an id outside the vocabulary. */
const char *eng_token_piece(const struct eng_tokenizer *tok, int32_t id, size_t *len);

/* The token's string as the file writes it (the added token's content, else
 * the vocabulary key, e.g. "Ġthe"), not NUL-terminated. A view valid while
 * tok lives, or NULL for an id outside the vocabulary. O(added tokens) for
 * an added id: for tests and diagnostics, not per-token loops. */
const char *eng_token_str(const struct eng_tokenizer *tok, int32_t id, size_t *len);

/* Id of a token given by its exact vocabulary/added-token string, or -1. */
int32_t eng_token_lookup(const struct eng_tokenizer *tok, const char *token);

/* True if id is an added token flagged "special": true. */
bool eng_token_is_special(const struct eng_tokenizer *tok, int32_t id);

/* Number of ids (vocabulary plus added tokens: highest id + 1). */
size_t eng_tokenizer_vocab_size(const struct eng_tokenizer *tok);

#endif
