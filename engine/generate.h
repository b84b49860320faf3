/* engine/generate.h: step-wise text generation for one sequence: prefill a
 * prompt, then one call per token that samples it, turns it into text that
 * is safe to show (complete UTF-8, never past a stop string) and says when
 * the sequence is done. Built so a driver can interleave the steps of many
 * generators on one model (the runner's request loop): nothing here blocks
 * beyond one forward pass, and a request is cancelled by not stepping it
 * again and freeing it.
 *
 *     eng_gen_params_init(&p);  p.max_tokens = 256;  p.temperature = 0;
 *     eng_gen_new(model, tok, ctx, &p, &g, &err);
 *     eng_gen_prefill(g, prompt_ids, n, 0, &err);
 *     do {
 *         eng_gen_step(g, &t, &err);
 *         fwrite(t.text, 1, t.text_len, stdout);
 *     } while (t.end == ENG_GEN_RUNNING);
 *     eng_gen_stats(g)->...;  eng_gen_free(g);
 *
 * One step: feed the token the previous step chose (if any) through the
 * model, sample the next one from the logits, decode it. The token that
 * ends generation is never fed to the model, so no forward pass is wasted
 * after a stop.
 *
 * Threads: a generator is used by one thread at a time; generators whose
 * contexts share a pool must be stepped one after another (model.h).
 */
#ifndef ENG_GENERATE_H
#define ENG_GENERATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"

/* Most alternatives a step reports (OpenAI's top_logprobs limit). */
#define ENG_GEN_MAX_TOP_LOGPROBS 20
/* Most stop strings and extra stop ids a generator takes. */
#define ENG_GEN_MAX_STOPS    64
#define ENG_GEN_MAX_STOP_LEN 1024 /* bytes of one stop string */
#define ENG_GEN_MAX_STOP_IDS 64

/* "Unset" for a sampling parameter: the float fields hold NaN
 * (ENG_GEN_UNSET, test with isnan) and top_k holds -1. An unset parameter
 * takes generation_config.json's value, else the sampler's "off"; see
 * eng_gen_resolve. */
#define ENG_GEN_UNSET (__builtin_nanf(""))

struct eng_gen_params {
    /* sampling (sampler.h's meanings); unset as above */
    float temperature; /* 0 = greedy */
    int top_k;         /* 0 = off, -1 = unset */
    float top_p;
    float min_p;
    float repetition_penalty;
    float presence_penalty;
    float frequency_penalty;
    uint64_t seed; /* always used as given (the caller picks a random one) */

    size_t max_tokens; /* tokens to generate at most; 0 = until the context is full */
    bool stop_at_eos;  /* stop at the model's EOS ids (config.json and
                        * generation_config.json eos_token_id) */
    /* Further stop tokens (e.g. a chat format's end of turn), borrowed for
     * eng_gen_new; each must lie in the model's vocabulary. */
    const int32_t *stop_ids;
    size_t n_stop_ids;
    /* Stop strings (borrowed for eng_gen_new; copied), non-empty UTF-8. */
    const char *const *stops;
    size_t n_stops;
    bool skip_special; /* leave special tokens' text out of the output */
    /* -1: no logprobs (cheapest). 0..ENG_GEN_MAX_TOP_LOGPROBS: each step
     * reports the chosen token's logprob and this many alternatives. */
    int top_logprobs;
};

/* Every sampling parameter unset, seed 0, max_tokens 0, stop_at_eos and
 * skip_special true, no stops, top_logprobs -1. */
void eng_gen_params_init(struct eng_gen_params *p);

/* The sampler parameters a generator will use. Unset parameters come from
 * generation_config.json when the model has one: with do_sample true its
 * temperature, top_p and top_k; with do_sample false (or absent)
 * temperature 0, i.e. greedy, as transformers' generate() does; its
 * repetition_penalty either way. Without the file (or for min_p and the
 * presence/frequency penalties, which it does not carry) an unset parameter
 * is off (temperature 1). A generation_config top_p of 0 means "the top
 * token only" and becomes the smallest positive top_p. Pure.
 * Errors: SH_EINVAL naming the parameter out of range. */
int eng_gen_resolve(const struct eng_gen_params *p,
                    const struct eng_gen_defaults *d,
                    struct eng_sampler_params *out,
                    struct sh_err *err);

/* Why a generator stopped. finish_reason (OpenAI) is "stop" for the first
 * two and "length" for the others. */
enum eng_gen_end {
    ENG_GEN_RUNNING = 0,
    ENG_GEN_EOS = 1,         /* an EOS or stop id was sampled (its text is not emitted) */
    ENG_GEN_STOP_STRING = 2, /* a stop string completed (the output ends before it) */
    ENG_GEN_MAX_TOKENS = 3,  /* max_tokens generated */
    ENG_GEN_CTX_FULL = 4,    /* the context has no room for the next token */
};

/* "stop", "length", or NULL for ENG_GEN_RUNNING. */
const char *eng_gen_finish_reason(enum eng_gen_end end);
/* "eos", "stop string", "max tokens", "context full", "running". */
const char *eng_gen_end_name(enum eng_gen_end end);

struct eng_gen_logprob {
    int32_t id;
    float logprob;
};

/* What one step produced. Views are valid until the next eng_gen_step or
 * eng_gen_free. */
struct eng_gen_token {
    int32_t id;
    /* Probability of id under the distribution it was drawn from (after
     * penalties, temperature, top-k/top-p/min-p; 1 for greedy). */
    float prob;
    /* log softmax of the model's raw logits (before penalties and
     * temperature), as OpenAI and vLLM report logprobs; NaN when
     * top_logprobs is -1. */
    float logprob;
    const struct eng_gen_logprob *top; /* top_logprobs best raw alternatives, best first */
    size_t n_top;
    /* UTF-8 text now safe to show: complete characters only (an incomplete
     * multi-byte tail waits for the next token; invalid bytes become U+FFFD
     * as tokenizers' decode does), nothing at or past a stop string. May be
     * empty. On the last step it includes every held-back byte. */
    const char *text;
    size_t text_len;
    enum eng_gen_end end; /* not ENG_GEN_RUNNING: this was the last step */
};

/* Counts and wall times (exact; CLOCK_MONOTONIC). */
struct eng_gen_stats {
    size_t prompt_tokens; /* the prompt's length */
    size_t prompt_cached; /* of those, reused from the context (not evaluated) */
    uint64_t prompt_ns;   /* eng_gen_prefill's time */
    size_t gen_tokens;    /* tokens sampled, the one that stopped included */
    size_t decode_tokens; /* sampled tokens fed through the model: gen_tokens - 1
                           * once finished (the last one never is) */
    uint64_t gen_ns;      /* time inside eng_gen_step (forward, sampling, text) */
};

struct eng_gen;

/* A generator over model m (the one ctx was made for), its tokenizer and
 * one context. m, tok and ctx are borrowed for the generator's life; ctx is
 * written by prefill and steps and may be reused afterwards (its positions
 * hold the prompt and every generated token except the last). Allocates all
 * per-step memory here (logits and sampler scratch sized to the vocabulary).
 * Errors: SH_EINVAL (sampling parameters, an empty or invalid-UTF-8 stop
 * string or one over ENG_GEN_MAX_STOP_LEN, a stop id outside the
 * vocabulary, too many stops or stop ids,
 * top_logprobs out of range), SH_ENOMEM. */
int eng_gen_new(const struct eng_model *m,
                const struct eng_tokenizer *tok,
                struct eng_ctx *ctx,
                const struct eng_gen_params *p,
                struct eng_gen **out,
                struct sh_err *err);
void eng_gen_free(struct eng_gen *g);

/* Evaluates the prompt ids[0..n) (borrowed for the call). The first
 * n_cached of them are already in ctx at positions [0, n_cached) (a reused
 * prefix; 0 for a fresh context): ctx is truncated to n_cached and only the
 * rest is evaluated (at least the last token, whose logits are needed).
 * Every prompt id counts for the repetition penalty. Call once, before the
 * first step.
 * Errors: SH_EINVAL (n == 0, called twice, n_cached past the context's
 * position), SH_ERANGE (an id outside the model's vocabulary; or n + 1 >
 * the context's capacity: no room to generate, the message gives both
 * numbers): checked before the context is touched, so it is unchanged and
 * prefill may be retried. */
int eng_gen_prefill(
    struct eng_gen *g, const int32_t *ids, size_t n, size_t n_cached, struct sh_err *err);

/* Produces one token into *out (see struct eng_gen_token). Once a step
 * returns with out->end set, the generator is finished.
 * Errors: SH_EINVAL (no prefill yet, or already finished), and those of
 * eng_forward (the generator is then finished). */
int eng_gen_step(struct eng_gen *g, struct eng_gen_token *out, struct sh_err *err);

/* Makes the next n steps choose ids[0..n) in order instead of sampling
 * (copied; replaces forced ids still pending). Everything after the choice
 * is the usual path: the token is fed, recorded for penalties
 * (eng_sampler_accept), decoded, checked against stop ids and strings;
 * logprob and top alternatives are the model's raw ones, prob is 1. A
 * forced stop id ends generation as a sampled one would. Uses: constraining
 * the opening of an answer (the runner forces a tool call's opening tokens
 * for tool_choice "required") and the runner's test aid
 * SHOAL_TEST_FORCE_OUTPUT. Errors: SH_EINVAL (the generator finished, an id
 * outside the model's vocabulary), SH_ENOMEM; g is unchanged then. */
int eng_gen_force(struct eng_gen *g, const int32_t *ids, size_t n, struct sh_err *err);

/* Borrowed; valid while g lives, updated by prefill and each step. */
const struct eng_gen_stats *eng_gen_stats(const struct eng_gen *g);
/* The resolved sampler parameters (eng_gen_resolve's result). */
const struct eng_sampler_params *eng_gen_sampler_params(const struct eng_gen *g);

/* ---- streaming UTF-8 repair (the generator's first text stage; public so
 * other byte streams can use it and tests can drive it directly). Bytes go
 * in as they come; out come complete characters, each maximal invalid
 * subsequence replaced by U+FFFD exactly as Rust's String::from_utf8_lossy
 * does over the whole stream, so the concatenated output equals
 * eng_detokenize's repair of the concatenated input. */
struct eng_utf8_stream {
    uint8_t tail[4]; /* a valid but incomplete sequence held back */
    size_t n_tail;
};

void eng_utf8_stream_init(struct eng_utf8_stream *u);
/* Appends in[0..n) and writes what is now decided to out, which must hold
 * ENG_UTF8_STREAM_OUT(n) bytes; returns the bytes written. */
#define ENG_UTF8_STREAM_OUT(n) (3 * ((n) + 3))
size_t eng_utf8_stream_feed(struct eng_utf8_stream *u, const char *in, size_t n, char *out);
/* Ends the stream: a held incomplete sequence becomes one U+FFFD. out holds
 * at least 3 bytes; returns the bytes written (0 or 3). */
size_t eng_utf8_stream_flush(struct eng_utf8_stream *u, char *out);

#endif
