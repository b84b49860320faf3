/* engine/generate.c: the step-wise generator of generate.h: prefill, then
 * per step forward the pending token, sample, and run the token's bytes
 * through two text stages: UTF-8 repair (hold back an incomplete character,
 * U+FFFD for invalid bytes) and the stop-string matcher (hold back what may
 * become a stop). Model math is model.h's, sampling sampler.h's; this file
 * owns the order of things, the stop rules and the bookkeeping.
 *
 * Memory: everything a step touches is allocated by eng_gen_new (logits,
 * the sampler's vocabulary-sized scratch, the stop-id table, text buffers
 * sized for any token piece of this tokenizer), so steps do not allocate;
 * only a stop matcher fed a piece over 4 KiB grows (see sampler.h).
 */
#include "engine/generate.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "engine/tokenizer_internal.h"

struct eng_gen {
    const struct eng_model *m;       /* borrowed */
    const struct eng_tokenizer *tok; /* borrowed */
    struct eng_ctx *ctx;             /* borrowed */
    size_t vocab;                    /* the model's vocab_size */
    struct eng_sampler_params sp;    /* resolved */
    struct eng_sampler *sampler;
    struct eng_stop *stop;
    uint8_t *is_stop; /* [vocab] 1: sampling this id ends generation */
    float *logits;    /* [vocab] after the last token fed */
    float *work;      /* [vocab] the sampler's copy when logprobs are wanted, else NULL */
    int top_logprobs; /* -1 = off */
    struct eng_gen_logprob top[ENG_GEN_MAX_TOP_LOGPROBS];
    bool skip_special;
    size_t max_tokens; /* 0 = no limit but the context */
    struct eng_utf8_stream u8;
    char *u8buf; /* UTF-8 stage output, ENG_UTF8_STREAM_OUT(max piece) bytes */
    size_t u8cap;
    char *out; /* this step's text */
    size_t out_len;
    size_t out_cap;
    bool prefilled;
    bool finished;
    bool has_pending; /* pending was sampled but not yet fed */
    int32_t pending;
    int32_t *forced; /* eng_gen_force's ids, n_forced of them, next at i_forced */
    size_t n_forced, i_forced;
    struct eng_gen_stats st;
};

/* ---- parameters ------------------------------------------------------------ */

void eng_gen_params_init(struct eng_gen_params *p)
{
    memset(p, 0, sizeof *p);
    p->temperature = ENG_GEN_UNSET;
    p->top_k = -1;
    p->top_p = ENG_GEN_UNSET;
    p->min_p = ENG_GEN_UNSET;
    p->repetition_penalty = ENG_GEN_UNSET;
    p->presence_penalty = ENG_GEN_UNSET;
    p->frequency_penalty = ENG_GEN_UNSET;
    p->stop_at_eos = true;
    p->skip_special = true;
    p->top_logprobs = -1;
}

static void take_set(float *dst, float v)
{
    if (!isnan(v))
        *dst = v;
}

int eng_gen_resolve(const struct eng_gen_params *p,
                    const struct eng_gen_defaults *d,
                    struct eng_sampler_params *out,
                    struct sh_err *err)
{
    struct eng_sampler_params r;

    eng_sampler_params_default(&r);
    if (d && d->present) {
        /* transformers' generate(): without do_sample it decodes greedily
         * whatever temperature the file gives. */
        if (d->do_sample) {
            r.temperature = d->temperature;
            r.top_p = d->top_p > 0.0f ? d->top_p : FLT_MIN;
            r.top_k = d->top_k;
        } else {
            r.temperature = 0.0f;
        }
        r.repetition_penalty = d->repetition_penalty;
    }
    take_set(&r.temperature, p->temperature);
    take_set(&r.top_p, p->top_p);
    take_set(&r.min_p, p->min_p);
    take_set(&r.repetition_penalty, p->repetition_penalty);
    take_set(&r.presence_penalty, p->presence_penalty);
    take_set(&r.frequency_penalty, p->frequency_penalty);
    if (p->top_k >= 0)
        r.top_k = p->top_k;
    else if (p->top_k != -1)
        return sh_err_set(err, SH_EINVAL, "top_k must be >= 0, or -1 for unset (got %d)", p->top_k);
    r.seed = p->seed;
    if (eng_sampler_params_check(&r, err))
        return SH_EINVAL;
    *out = r;
    return 0;
}

const char *eng_gen_finish_reason(enum eng_gen_end end)
{
    switch (end) {
    case ENG_GEN_EOS:
    case ENG_GEN_STOP_STRING:
        return "stop";
    case ENG_GEN_MAX_TOKENS:
    case ENG_GEN_CTX_FULL:
        return "length";
    case ENG_GEN_RUNNING:
        break;
    }
    return NULL;
}

const char *eng_gen_end_name(enum eng_gen_end end)
{
    switch (end) {
    case ENG_GEN_EOS:
        return "eos";
    case ENG_GEN_STOP_STRING:
        return "stop string";
    case ENG_GEN_MAX_TOKENS:
        return "max tokens";
    case ENG_GEN_CTX_FULL:
        return "context full";
    case ENG_GEN_RUNNING:
        break;
    }
    return "running";
}

/* ---- streaming UTF-8 repair --------------------------------------------------- */

static const char replacement[3] = {'\xEF', '\xBF', '\xBD'}; /* U+FFFD */

void eng_utf8_stream_init(struct eng_utf8_stream *u)
{
    memset(u, 0, sizeof *u);
}

/* Byte k of the held tail followed by in. */
static uint8_t joined(const struct eng_utf8_stream *u, const char *in, size_t k)
{
    return k < u->n_tail ? u->tail[k] : (uint8_t)in[k - u->n_tail];
}

size_t eng_utf8_stream_feed(struct eng_utf8_stream *u, const char *in, size_t n, char *out)
{
    size_t total = u->n_tail + n, pos = 0, o = 0, keep = 0;
    uint8_t keep_bytes[4];

    while (pos < total) {
        uint8_t w[4];
        size_t m = total - pos < 4 ? total - pos : 4, len, bad;
        for (size_t k = 0; k < m; k++)
            w[k] = joined(u, in, pos + k);
        if (w[0] < 0x80) {
            out[o++] = (char)w[0];
            pos++;
            continue;
        }
        len = tok_utf8_seq(w, m, &bad);
        if (len) {
            memcpy(out + o, w, len);
            o += len;
            pos += len;
        } else if (w[0] >= 0xC2 && w[0] <= 0xF4 && bad == m && pos + m == total) {
            /* A valid lead whose sequence the input has not finished yet:
             * tok_utf8_seq stopped at the end of the bytes, not at a bad
             * one. The next bytes decide. */
            memcpy(keep_bytes, w, m);
            keep = m;
            break;
        } else {
            memcpy(out + o, replacement, sizeof replacement);
            o += sizeof replacement;
            pos += bad;
        }
    }
    memcpy(u->tail, keep_bytes, keep);
    u->n_tail = keep;
    return o;
}

size_t eng_utf8_stream_flush(struct eng_utf8_stream *u, char *out)
{
    /* from_utf8_lossy: a truncated sequence at the end is one maximal
     * invalid subpart, one U+FFFD. */
    if (!u->n_tail)
        return 0;
    u->n_tail = 0;
    memcpy(out, replacement, sizeof replacement);
    return sizeof replacement;
}

/* ---- new / free ------------------------------------------------------------- */

static bool valid_utf8(const char *s, size_t n)
{
    size_t i = 0, bad;
    while (i < n) {
        size_t len = tok_utf8_seq((const uint8_t *)s + i, n - i, &bad);
        if (!len)
            return false;
        i += len;
    }
    return true;
}

static int check_params(const struct eng_gen_params *p, size_t vocab, struct sh_err *err)
{
    if (p->top_logprobs < -1 || p->top_logprobs > ENG_GEN_MAX_TOP_LOGPROBS)
        return sh_err_set(err, SH_EINVAL, "top_logprobs must be -1 (off) or 0 to %d (got %d)",
                          ENG_GEN_MAX_TOP_LOGPROBS, p->top_logprobs);
    if (p->n_stops > ENG_GEN_MAX_STOPS)
        return sh_err_set(err, SH_EINVAL, "%zu stop strings (at most %d)", p->n_stops,
                          ENG_GEN_MAX_STOPS);
    if (p->n_stop_ids > ENG_GEN_MAX_STOP_IDS)
        return sh_err_set(err, SH_EINVAL, "%zu stop ids (at most %d)", p->n_stop_ids,
                          ENG_GEN_MAX_STOP_IDS);
    for (size_t i = 0; i < p->n_stops; i++) {
        size_t len = p->stops[i] ? strlen(p->stops[i]) : 0;
        if (len == 0)
            return sh_err_set(err, SH_EINVAL, "stop string %zu is empty", i + 1);
        if (len > ENG_GEN_MAX_STOP_LEN)
            return sh_err_set(err, SH_EINVAL, "stop string %zu is %zu bytes (at most %d)", i + 1,
                              len, ENG_GEN_MAX_STOP_LEN);
        if (!valid_utf8(p->stops[i], len))
            return sh_err_set(err, SH_EINVAL, "stop string %zu is not valid UTF-8", i + 1);
    }
    for (size_t i = 0; i < p->n_stop_ids; i++)
        if (p->stop_ids[i] < 0 || (size_t)p->stop_ids[i] >= vocab)
            return sh_err_set(err, SH_EINVAL,
                              "stop id %d is outside the model's vocabulary [0, %zu)",
                              (int)p->stop_ids[i], vocab);
    return 0;
}

/* The longest piece any token of tok decodes to. */
static size_t max_piece(const struct eng_tokenizer *tok)
{
    size_t n = eng_tokenizer_vocab_size(tok), best = 0;
    for (size_t id = 0; id < n; id++) {
        size_t len = 0;
        if (eng_token_piece(tok, (int32_t)id, &len) && len > best)
            best = len;
    }
    return best;
}

int eng_gen_new(const struct eng_model *m,
                const struct eng_tokenizer *tok,
                struct eng_ctx *ctx,
                const struct eng_gen_params *p,
                struct eng_gen **out,
                struct sh_err *err)
{
    const struct eng_config *cfg = eng_model_config(m);
    size_t vocab = (size_t)cfg->vocab_size, piece;
    struct eng_gen *g;
    int rc;

    if ((rc = check_params(p, vocab, err)))
        return rc;
    g = calloc(1, sizeof *g);
    if (!g)
        return sh_err_set(err, SH_ENOMEM, "generator: out of memory");
    g->m = m;
    g->tok = tok;
    g->ctx = ctx;
    g->vocab = vocab;
    g->top_logprobs = p->top_logprobs;
    g->skip_special = p->skip_special;
    g->max_tokens = p->max_tokens;
    eng_utf8_stream_init(&g->u8);
    if ((rc = eng_gen_resolve(p, eng_model_gen_defaults(m), &g->sp, err)) ||
        (rc = eng_sampler_new(&g->sp, vocab, &g->sampler, err)) ||
        (rc = eng_stop_new(p->stops, p->n_stops, &g->stop, err)))
        goto fail;
    /* Text buffers: the repaired piece (with up to 3 held bytes, each
     * invalid byte tripled) and a step's output (that, the matcher's held
     * tail before it, and a flushed U+FFFD). */
    piece = max_piece(tok);
    g->u8cap = ENG_UTF8_STREAM_OUT(piece);
    g->out_cap = g->u8cap + ENG_GEN_MAX_STOP_LEN + 8;
    g->is_stop = calloc(vocab, 1);
    g->logits = malloc(vocab * sizeof *g->logits);
    g->work = p->top_logprobs >= 0 ? malloc(vocab * sizeof *g->work) : NULL;
    g->u8buf = malloc(g->u8cap);
    g->out = malloc(g->out_cap);
    if (!g->is_stop || !g->logits || (p->top_logprobs >= 0 && !g->work) || !g->u8buf || !g->out) {
        rc = sh_err_set(err, SH_ENOMEM, "generator: out of memory for %zu tokens", vocab);
        goto fail;
    }
    if (p->stop_at_eos)
        for (int i = 0; i < cfg->n_eos; i++)
            if (cfg->eos_ids[i] >= 0 && (size_t)cfg->eos_ids[i] < vocab)
                g->is_stop[cfg->eos_ids[i]] = 1;
    for (size_t i = 0; i < p->n_stop_ids; i++)
        g->is_stop[p->stop_ids[i]] = 1;
    *out = g;
    return 0;
fail:
    eng_gen_free(g);
    return rc;
}

void eng_gen_free(struct eng_gen *g)
{
    if (!g)
        return;
    eng_sampler_free(g->sampler);
    eng_stop_free(g->stop);
    free(g->is_stop);
    free(g->logits);
    free(g->work);
    free(g->u8buf);
    free(g->out);
    free(g->forced);
    free(g);
}

const struct eng_gen_stats *eng_gen_stats(const struct eng_gen *g)
{
    return &g->st;
}

const struct eng_sampler_params *eng_gen_sampler_params(const struct eng_gen *g)
{
    return &g->sp;
}

/* ---- prefill ----------------------------------------------------------------- */

int eng_gen_prefill(
    struct eng_gen *g, const int32_t *ids, size_t n, size_t n_cached, struct sh_err *err)
{
    size_t cap = (size_t)eng_ctx_capacity(g->ctx), start;
    uint64_t t0;
    int rc;

    if (g->prefilled)
        return sh_err_set(err, SH_EINVAL, "the prompt was already evaluated");
    if (n == 0)
        return sh_err_set(err, SH_EINVAL, "empty prompt: at least one token is needed");
    if (n_cached > n || n_cached > (size_t)eng_ctx_pos(g->ctx))
        return sh_err_set(err, SH_EINVAL,
                          "%zu cached prompt tokens, but the prompt has %zu and the context "
                          "holds %d",
                          n_cached, n, eng_ctx_pos(g->ctx));
    if (n >= cap)
        return sh_err_set(err, SH_ERANGE,
                          "the prompt is %zu tokens and the context holds %zu: no room to "
                          "generate (prompt + 1 positions are needed)",
                          n, cap);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= g->vocab)
            return sh_err_set(err, SH_ERANGE,
                              "prompt token %zu is id %d, outside the model's vocabulary "
                              "[0, %zu)",
                              i, (int)ids[i], g->vocab);
    /* The last prompt token is always evaluated: its logits pick the first
     * generated token. */
    start = n_cached < n ? n_cached : n - 1;
    t0 = sh_now_ns();
    eng_ctx_truncate(g->ctx, (int)start);
    if ((rc = eng_forward(g->ctx, ids + start, n - start, false, g->logits, err)))
        return sh_err_wrap(err, "prompt");
    eng_sampler_add_prompt(g->sampler, ids, n);
    g->st.prompt_tokens = n;
    g->st.prompt_cached = start;
    g->st.prompt_ns = sh_now_ns() - t0;
    g->prefilled = true;
    return 0;
}

/* ---- one step ------------------------------------------------------------------- */

/* The top_logprobs best raw logits into g->top, best first (ties: lower
 * id), as logprobs against lse; returns how many (fewer only when the
 * vocabulary has fewer non-NaN logits). O(vocab) for the usual few. */
static size_t top_alternatives(struct eng_gen *g, const float *l, double lse)
{
    size_t k = (size_t)g->top_logprobs, have = 0;

    for (size_t id = 0; id < g->vocab; id++) {
        size_t at;
        if (isnan(l[id]) || (have == k && !(l[id] > g->top[k - 1].logprob)))
            continue;
        at = have < k ? have++ : k - 1;
        while (at > 0 && l[id] > g->top[at - 1].logprob) {
            g->top[at] = g->top[at - 1];
            at--;
        }
        g->top[at].id = (int32_t)id;
        g->top[at].logprob = l[id]; /* the raw logit until the loop ends */
    }
    for (size_t i = 0; i < have; i++)
        g->top[i].logprob = (float)((double)g->top[i].logprob - lse);
    return have;
}

/* Samples the next token into out (id, prob, and logprob/top when wanted). */
static void sample(struct eng_gen *g, struct eng_gen_token *out)
{
    const float *raw = g->logits;
    double max = -INFINITY, sum = 0.0, lse;
    bool forced = g->i_forced < g->n_forced;

    if (g->top_logprobs < 0) {
        if (forced) {
            out->id = g->forced[g->i_forced++];
            out->prob = 1.0f;
            eng_sampler_accept(g->sampler, out->id);
        } else {
            out->id = eng_sampler_sample(g->sampler, g->logits, &out->prob);
        }
        return;
    }
    /* logprobs describe the model's own distribution (as OpenAI and vLLM
     * report them), so they come from the raw logits; the sampler works on
     * a copy it may change. */
    for (size_t i = 0; i < g->vocab; i++)
        if (raw[i] > max)
            max = raw[i];
    for (size_t i = 0; i < g->vocab; i++)
        if (!isnan(raw[i]))
            sum += exp((double)raw[i] - max);
    lse = max + log(sum);
    if (forced) {
        out->id = g->forced[g->i_forced++];
        out->prob = 1.0f;
        eng_sampler_accept(g->sampler, out->id);
    } else {
        memcpy(g->work, raw, g->vocab * sizeof *g->work);
        out->id = eng_sampler_sample(g->sampler, g->work, &out->prob);
    }
    out->logprob = (float)((double)raw[out->id] - lse);
    if (g->top_logprobs > 0) {
        out->n_top = top_alternatives(g, raw, lse);
        out->top = g->top;
    }
}

/* Appends a stop matcher emission to the step's text. */
static void put(struct eng_gen *g, const char *s, size_t n)
{
    /* out_cap covers a piece's repaired bytes plus the matcher's held tail
     * (shorter than a stop string) and a flushed U+FFFD. */
    memcpy(g->out + g->out_len, s, n);
    g->out_len += n;
}

/* Runs bytes through the UTF-8 and stop stages. Returns 0, or SH_ENOMEM
 * when the matcher could not keep the text; *stopped is set when a stop
 * string completed. */
static int feed_text(struct eng_gen *g, const char *s, size_t n, bool *stopped, struct sh_err *err)
{
    const char *emit;
    size_t emit_len, r;

    r = eng_utf8_stream_feed(&g->u8, s, n, g->u8buf);
    *stopped = eng_stop_feed(g->stop, g->u8buf, r, &emit, &emit_len);
    if (*stopped && eng_stop_failed(g->stop))
        return sh_err_set(err, SH_ENOMEM, "stop strings: out of memory");
    put(g, emit, emit_len);
    return 0;
}

/* The end of the text: what the UTF-8 stage and the matcher still hold. */
static int flush_text(struct eng_gen *g, bool *stopped, struct sh_err *err)
{
    const char *emit;
    size_t emit_len, r;

    r = eng_utf8_stream_flush(&g->u8, g->u8buf);
    *stopped = false;
    if (r) {
        *stopped = eng_stop_feed(g->stop, g->u8buf, r, &emit, &emit_len);
        if (*stopped && eng_stop_failed(g->stop))
            return sh_err_set(err, SH_ENOMEM, "stop strings: out of memory");
        put(g, emit, emit_len);
    }
    if (!*stopped) {
        eng_stop_flush(g->stop, &emit, &emit_len);
        put(g, emit, emit_len);
    }
    return 0;
}

int eng_gen_step(struct eng_gen *g, struct eng_gen_token *out, struct sh_err *err)
{
    enum eng_gen_end end = ENG_GEN_RUNNING;
    const char *piece;
    size_t plen = 0;
    bool stopped = false;
    uint64_t t0;
    int rc = 0;

    memset(out, 0, sizeof *out);
    out->id = -1;
    out->logprob = NAN;
    out->text = g->out;
    if (!g->prefilled)
        return sh_err_set(err, SH_EINVAL, "a step before the prompt was evaluated");
    if (g->finished)
        return sh_err_set(err, SH_EINVAL, "generation has already finished");
    t0 = sh_now_ns();
    g->out_len = 0;
    if (g->has_pending) {
        rc = eng_forward(g->ctx, &g->pending, 1, false, g->logits, err);
        g->has_pending = false;
        if (rc) {
            g->finished = true;
            g->st.gen_ns += sh_now_ns() - t0;
            return sh_err_wrap(err, "token %zu", g->st.gen_tokens);
        }
        g->st.decode_tokens++;
    }
    sample(g, out);
    g->st.gen_tokens++;
    if (g->is_stop[out->id]) {
        end = ENG_GEN_EOS; /* its text is never shown */
    } else {
        /* An id the tokenizer lacks (a model's padded vocabulary) has no
         * text, as tokenizers' decode skips it. */
        piece = eng_token_piece(g->tok, out->id, &plen);
        if (!piece || (g->skip_special && eng_token_is_special(g->tok, out->id)))
            plen = 0;
        if ((rc = feed_text(g, piece, plen, &stopped, err)))
            goto fail;
        if (stopped)
            end = ENG_GEN_STOP_STRING;
    }
    if (end == ENG_GEN_RUNNING) {
        if (g->max_tokens && g->st.gen_tokens >= g->max_tokens)
            end = ENG_GEN_MAX_TOKENS;
        else if (eng_ctx_pos(g->ctx) >= eng_ctx_capacity(g->ctx))
            end = ENG_GEN_CTX_FULL;
    }
    if (end == ENG_GEN_RUNNING) {
        g->pending = out->id;
        g->has_pending = true;
    } else {
        if (end != ENG_GEN_STOP_STRING) {
            /* The repaired tail may itself complete a stop string. */
            if ((rc = flush_text(g, &stopped, err)))
                goto fail;
            if (stopped)
                end = ENG_GEN_STOP_STRING;
        }
        g->finished = true;
    }
    out->end = end;
    out->text_len = g->out_len;
    g->st.gen_ns += sh_now_ns() - t0;
    return 0;
fail:
    g->finished = true;
    g->st.gen_ns += sh_now_ns() - t0;
    return rc;
}

int eng_gen_force(struct eng_gen *g, const int32_t *ids, size_t n, struct sh_err *err)
{
    int32_t *copy = NULL;
    size_t bytes = 0;

    if (g->finished)
        return sh_err_set(err, SH_EINVAL, "forced tokens: generation has already finished");
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= g->vocab)
            return sh_err_set(err, SH_EINVAL,
                              "forced token %zu is id %d, outside the model's vocabulary [0, %zu)",
                              i, (int)ids[i], g->vocab);
    if (n && (!sh_mul_size(n, sizeof *copy, &bytes) || !(copy = malloc(bytes))))
        return sh_err_set(err, SH_ENOMEM, "forced tokens: out of memory");
    if (n)
        memcpy(copy, ids, bytes);
    free(g->forced);
    g->forced = copy;
    g->n_forced = n;
    g->i_forced = 0;
    return 0;
}
