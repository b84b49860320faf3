/* engine/sampler.h: choosing the next token from logits, and stop strings.
 * A pure module: no I/O, no clock, no global RNG. Randomness comes from an
 * explicit xoshiro256** state seeded by the caller, so the same seed, params
 * and logits give the same tokens on every machine.
 *
 * Order of operations (as Hugging Face's LogitsProcessor chain and the
 * OpenAI/Ollama parameters combine): repetition penalty (HF: divide positive
 * logits, multiply negative ones, for every token seen in prompt or output),
 * presence and frequency penalties (OpenAI: logit -= presence*[count>0] +
 * frequency*count, over generated tokens), then temperature 0 = greedy
 * (argmax, lowest id on ties); else temperature scaling, top-k, top-p
 * (nucleus, keep the smallest prefix with cumulative prob >= top_p), min-p
 * (drop tokens with prob < min_p * max prob), renormalise, draw.
 */
#ifndef ENG_SAMPLER_H
#define ENG_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct eng_rng {
    uint64_t s[4];
};

/* Seeds the generator (splitmix64 expansion of seed; any seed is valid). */
void eng_rng_seed(struct eng_rng *rng, uint64_t seed);
uint64_t eng_rng_next(struct eng_rng *rng);
/* Uniform in [0, 1), 53 random bits. */
double eng_rng_uniform(struct eng_rng *rng);

struct eng_sampler_params {
    float temperature;        /* 0 = greedy; must be >= 0 */
    int top_k;                /* 0 = off */
    float top_p;              /* 1 = off; (0, 1] */
    float min_p;              /* 0 = off; [0, 1] */
    float repetition_penalty; /* 1 = off; > 0 */
    float presence_penalty;   /* 0 = off; [-2, 2] */
    float frequency_penalty;  /* 0 = off; [-2, 2] */
    uint64_t seed;
};

/* Defaults: greedy off (temperature 1), everything else off, seed 0. */
void eng_sampler_params_default(struct eng_sampler_params *p);

/* Checks ranges; Errors: SH_EINVAL naming the parameter. */
int eng_sampler_params_check(const struct eng_sampler_params *p, struct sh_err *err);

struct eng_sampler;

/* *out is returned; free with eng_sampler_free. Errors: SH_EINVAL (params),
 * SH_ENOMEM. */
int eng_sampler_new(const struct eng_sampler_params *p, size_t vocab, struct eng_sampler **out,
                    struct sh_err *err);
void eng_sampler_free(struct eng_sampler *s);

/* Records prompt tokens (they count for the repetition penalty only). */
void eng_sampler_add_prompt(struct eng_sampler *s, const int32_t *ids, size_t n);

/* Picks the next token. logits (vocab floats) are modified in place. The
 * chosen token is recorded as generated (penalties see it next time).
 * If prob is non-NULL it receives the chosen token's probability under the
 * final distribution (1 for greedy). */
int32_t eng_sampler_sample(struct eng_sampler *s, float *logits, float *prob);

/* ---- stop strings -------------------------------------------------------
 * Feed decoded text as it is produced; the matcher holds back any tail that
 * could still become a stop string, so nothing past a stop string is ever
 * emitted even when it spans several tokens. */
struct eng_stop;

/* stops: n strings (copied). Errors: SH_EINVAL (an empty string), SH_ENOMEM. */
int eng_stop_new(const char *const *stops, size_t n, struct eng_stop **out, struct sh_err *err);
void eng_stop_free(struct eng_stop *st);

/* Appends len bytes. Sets *emit/*emit_len to the bytes now safe to output
 * (a view valid until the next call) and returns true when a stop string
 * has been completed (emit then ends just before it; later feeds emit
 * nothing). */
bool eng_stop_feed(struct eng_stop *st, const char *text, size_t len, const char **emit,
                   size_t *emit_len);

/* At the end of generation: the held-back tail (no stop matched). */
void eng_stop_flush(struct eng_stop *st, const char **emit, size_t *emit_len);

#endif
