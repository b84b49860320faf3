/* engine/tokenizer.h: Hugging Face tokenizer.json (byte-level BPE), encode
 * and decode exactly as the `tokenizers` library does.
 *
 * Supported: added/special tokens (matched before pre-tokenization, honouring
 * special/normalized/lstrip/rstrip/single_word), NFC normalizer, Split
 * pre-tokenizers (regexes run by libpcre2 with UTF+UCP), ByteLevel
 * pre-tokenizer and decoder, BPE merges by rank (pairs as ["a","b"] or
 * "a b"), ignore_merges, TemplateProcessing/ByteLevel post-processors.
 * Anything else in the file is refused at load with an error naming it.
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
 * Errors: SH_ENOTFOUND, SH_EIO, SH_EMALFORMED (bad JSON, a bad regex, a merge
 * naming an unknown token...), SH_EUNSUPPORTED (a model/normalizer/
 * pre-tokenizer type we do not implement, named in the message), SH_ENOMEM. */
int eng_tokenizer_load(const char *path, struct eng_tokenizer **out, struct sh_err *err);
void eng_tokenizer_free(struct eng_tokenizer *tok);

/* Encodes len bytes of UTF-8 text. add_special applies the post-processor
 * (e.g. Llama 3's BOS). *ids is returned (caller frees with free()), *n set.
 * Errors: SH_EINVAL (text is not valid UTF-8), SH_ENOMEM, SH_ETOOBIG. */
int eng_tokenize(const struct eng_tokenizer *tok, const char *text, size_t len, bool add_special,
                 int32_t **ids, size_t *n, struct sh_err *err);

/* Decodes ids to text (bytes; may be invalid UTF-8 if ids split a character,
 * as tokenizers' decode would show U+FFFD there: we substitute U+FFFD the
 * same way). skip_special drops tokens flagged special. *out is returned
 * (caller frees with free()), NUL-terminated, *len excludes the NUL.
 * Errors: SH_ERANGE (an id outside the vocabulary), SH_ENOMEM. */
int eng_detokenize(const struct eng_tokenizer *tok, const int32_t *ids, size_t n,
                   bool skip_special, char **out, size_t *len, struct sh_err *err);

/* The raw bytes one token stands for (byte-level decoded; an added token's
 * content as written). Concatenating pieces gives the exact output bytes, so
 * streaming callers buffer incomplete UTF-8 themselves. Returns a view valid
 * while tok lives, or NULL for an id outside the vocabulary. */
const char *eng_token_piece(const struct eng_tokenizer *tok, int32_t id, size_t *len);

/* Id of a token given by its exact vocabulary/added-token string, or -1. */
int32_t eng_token_lookup(const struct eng_tokenizer *tok, const char *token);

/* True if id is an added token flagged "special": true. */
bool eng_token_is_special(const struct eng_tokenizer *tok, int32_t id);

/* Number of ids (vocabulary plus added tokens: highest id + 1). */
size_t eng_tokenizer_vocab_size(const struct eng_tokenizer *tok);

#endif
