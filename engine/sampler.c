/* engine/sampler.c: the next-token sampler of sampler.h: penalties,
 * greedy/temperature, top-k, top-p, min-p and the draw, from an explicit
 * xoshiro256** state. Pure: no I/O, no clock, no allocation per sample
 * (all scratch is sized to the vocabulary in eng_sampler_new).
 *
 * How each step stays cheap on a 150k vocabulary:
 *   - penalties touch only the distinct tokens seen so far (kept in lists);
 *   - top-k selects with a k-entry min-heap (O(V log k)), then sorts only k;
 *   - top-p without top-k first drops every token but the argmax whose
 *     probability is below (1 - top_p) / (V - 1) (llama2.c's cutoff: those
 *     at most V - 1 tokens weigh less than 1 - top_p together, so none can
 *     be in the nucleus), then heap-pops the rest only until the nucleus is
 *     complete;
 *   - min-p compares weights exp((l - max) / T) against min_p directly, since
 *     the most likely token has weight 1.
 */
#include "engine/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- RNG: xoshiro256** seeded through splitmix64 (Blackman & Vigna) ------ */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void eng_rng_seed(struct eng_rng *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&seed);
}

uint64_t eng_rng_next(struct eng_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double eng_rng_uniform(struct eng_rng *rng)
{
    return (double)(eng_rng_next(rng) >> 11) * 0x1.0p-53;
}

/* ---- parameters --------------------------------------------------------- */

void eng_sampler_params_default(struct eng_sampler_params *p)
{
    memset(p, 0, sizeof *p);
    p->temperature = 1.0f;
    p->top_k = 0;
    p->top_p = 1.0f;
    p->min_p = 0.0f;
    p->repetition_penalty = 1.0f;
    p->presence_penalty = 0.0f;
    p->frequency_penalty = 0.0f;
    p->seed = 0;
}

/* Written so that NaN fails every check. */
int eng_sampler_params_check(const struct eng_sampler_params *p, struct sh_err *err)
{
    if (!(p->temperature >= 0.0f && isfinite(p->temperature)))
        return sh_err_set(err, SH_EINVAL, "temperature must be a finite number >= 0 (got %g)",
                          (double)p->temperature);
    if (p->top_k < 0)
        return sh_err_set(err, SH_EINVAL, "top_k must be >= 0 (got %d)", p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return sh_err_set(err, SH_EINVAL, "top_p must be in (0, 1] (got %g)", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return sh_err_set(err, SH_EINVAL, "min_p must be in [0, 1] (got %g)", (double)p->min_p);
    if (!(p->repetition_penalty > 0.0f && isfinite(p->repetition_penalty)))
        return sh_err_set(err, SH_EINVAL, "repetition_penalty must be a finite number > 0 (got %g)",
                          (double)p->repetition_penalty);
    if (!(p->presence_penalty >= -2.0f && p->presence_penalty <= 2.0f))
        return sh_err_set(err, SH_EINVAL, "presence_penalty must be in [-2, 2] (got %g)",
                          (double)p->presence_penalty);
    if (!(p->frequency_penalty >= -2.0f && p->frequency_penalty <= 2.0f))
        return sh_err_set(err, SH_EINVAL, "frequency_penalty must be in [-2, 2] (got %g)",
                          (double)p->frequency_penalty);
    return 0;
}

/* ---- the sampler ------------------------------------------------------------ */

#define SEEN_ANY 1u /* in the prompt or generated: repetition penalty */
#define SEEN_GEN 2u /* generated: presence/frequency penalties */

struct cand {
    float v; /* a logit while selecting top-k, else a weight exp((l - max) / T) */
    int32_t id;
};

struct eng_sampler {
    struct eng_sampler_params p;
    struct eng_rng rng;
    size_t vocab;
    uint8_t *seen;     /* [vocab] SEEN_* */
    uint32_t *count;   /* [vocab] times generated */
    int32_t *seen_ids; /* distinct ids with SEEN_ANY, n_seen of them */
    size_t n_seen;
    int32_t *gen_ids; /* distinct ids with SEEN_GEN, n_gen of them */
    size_t n_gen;
    struct cand *cand; /* [vocab] scratch */
};

int eng_sampler_new(const struct eng_sampler_params *p,
                    size_t vocab,
                    struct eng_sampler **out,
                    struct sh_err *err)
{
    struct eng_sampler *s;
    int rc;

    if ((rc = eng_sampler_params_check(p, err)))
        return rc;
    if (vocab == 0 || vocab > INT32_MAX)
        return sh_err_set(err, SH_EINVAL, "vocabulary size %zu out of range", vocab);
    s = calloc(1, sizeof *s);
    if (!s)
        return sh_err_set(err, SH_ENOMEM, "sampler: out of memory");
    s->p = *p;
    s->vocab = vocab;
    s->seen = calloc(vocab, sizeof *s->seen);
    s->count = calloc(vocab, sizeof *s->count);
    s->seen_ids = malloc(vocab * sizeof *s->seen_ids);
    s->gen_ids = malloc(vocab * sizeof *s->gen_ids);
    s->cand = malloc(vocab * sizeof *s->cand);
    if (!s->seen || !s->count || !s->seen_ids || !s->gen_ids || !s->cand) {
        eng_sampler_free(s);
        return sh_err_set(err, SH_ENOMEM, "sampler: out of memory for %zu tokens", vocab);
    }
    eng_rng_seed(&s->rng, p->seed);
    *out = s;
    return 0;
}

void eng_sampler_free(struct eng_sampler *s)
{
    if (!s)
        return;
    free(s->seen);
    free(s->count);
    free(s->seen_ids);
    free(s->gen_ids);
    free(s->cand);
    free(s);
}

static void mark_seen(struct eng_sampler *s, int32_t id)
{
    if (!(s->seen[id] & SEEN_ANY)) {
        s->seen[id] |= SEEN_ANY;
        s->seen_ids[s->n_seen++] = id;
    }
}

void eng_sampler_add_prompt(struct eng_sampler *s, const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0 && (size_t)ids[i] < s->vocab)
            mark_seen(s, ids[i]);
}

static void record(struct eng_sampler *s, int32_t id)
{
    mark_seen(s, id);
    if (!(s->seen[id] & SEEN_GEN)) {
        s->seen[id] |= SEEN_GEN;
        s->gen_ids[s->n_gen++] = id;
    }
    if (s->count[id] < UINT32_MAX)
        s->count[id]++;
}

void eng_sampler_accept(struct eng_sampler *s, int32_t id)
{
    if (id >= 0 && (size_t)id < s->vocab)
        record(s, id);
}

/* Repetition penalty (HF RepetitionPenaltyLogitsProcessor), then presence
 * and frequency penalties (OpenAI), each once per distinct token. */
static void apply_penalties(const struct eng_sampler *s, float *logits)
{
    float rp = s->p.repetition_penalty;

    if (rp != 1.0f) {
        for (size_t i = 0; i < s->n_seen; i++) {
            float l = logits[s->seen_ids[i]];
            logits[s->seen_ids[i]] = l > 0.0f ? l / rp : l * rp;
        }
    }
    if (s->p.presence_penalty != 0.0f || s->p.frequency_penalty != 0.0f) {
        for (size_t i = 0; i < s->n_gen; i++) {
            int32_t id = s->gen_ids[i];
            logits[id] -= s->p.frequency_penalty * (float)s->count[id] + s->p.presence_penalty;
        }
    }
}

/* argmax, lowest id on ties; NaN never wins; 0 if every logit is NaN. */
static int32_t argmax(const float *logits, size_t n)
{
    int32_t best = 0;
    float bv = 0.0f;
    bool found = false;

    for (size_t i = 0; i < n; i++) {
        if (isnan(logits[i]))
            continue;
        if (!found || logits[i] > bv) {
            best = (int32_t)i;
            bv = logits[i];
            found = true;
        }
    }
    return best;
}

/* Candidate order: larger value first, lower id on ties. */
static bool better(const struct cand *a, const struct cand *b)
{
    return a->v > b->v || (a->v == b->v && a->id < b->id);
}

/* Sift down in a heap whose root is the `top(a, b)`-most element. */
static void sift(struct cand *h, size_t n, size_t i, bool min_root)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && (min_root ? better(&h[m], &h[l]) : better(&h[l], &h[m])))
            m = l;
        if (l + 1 < n && (min_root ? better(&h[m], &h[l + 1]) : better(&h[l + 1], &h[m])))
            m = l + 1;
        if (m == i)
            return;
        struct cand t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* The k best logits into c[0..k), best first. Returns how many (NaNs are
 * never candidates, so it can be fewer). */
static size_t select_top_k(const float *logits, size_t vocab, size_t k, struct cand *c)
{
    size_t n = 0;

    for (size_t i = 0; i < vocab; i++) {
        struct cand x = {logits[i], (int32_t)i};
        if (isnan(x.v))
            continue;
        if (n < k) {
            /* sift up in the min-heap (root = worst kept) */
            size_t j = n++;
            while (j > 0 && better(&c[(j - 1) / 2], &x)) {
                c[j] = c[(j - 1) / 2];
                j = (j - 1) / 2;
            }
            c[j] = x;
        } else if (better(&x, &c[0])) {
            c[0] = x;
            sift(c, n, 0, true);
        }
    }
    /* Heapsort the min-heap: each pop puts the worst left at the end, so the
     * array ends up best first. */
    for (size_t end = n; end > 1; end--) {
        struct cand t = c[0];
        c[0] = c[end - 1];
        c[end - 1] = t;
        sift(c, end - 1, 0, true);
    }
    return n;
}

static float weight(float l, float max, float inv_t)
{
    if (isnan(l))
        return 0.0f;
    if (l == max) /* also when max is +inf */
        return 1.0f;
    return expf((l - max) * inv_t);
}

/* The candidates the draw chooses from. */
struct pool {
    struct cand *c; /* best first when sorted, else in id order */
    size_t n;
    double total; /* sum of their weights */
    bool sorted;
};

/* top-k: the k best, weighted, best first. */
static void
pool_top_k(struct eng_sampler *s, const float *logits, float max, float inv_t, struct pool *pl)
{
    pl->c = s->cand;
    pl->n = select_top_k(logits, s->vocab, (size_t)s->p.top_k, pl->c);
    pl->total = 0.0;
    pl->sorted = true;
    for (size_t i = 0; i < pl->n; i++) {
        pl->c[i].v = weight(pl->c[i].v, max, inv_t);
        pl->total += pl->c[i].v;
    }
}

/* top-p over the whole vocabulary: the nucleus, best first, found without
 * sorting the vocabulary (see the top of the file). */
static void pool_nucleus(struct eng_sampler *s,
                         const float *logits,
                         float max,
                         float inv_t,
                         int32_t best,
                         struct pool *pl)
{
    struct cand *c = s->cand;
    size_t vocab = s->vocab, m = 0, n = 0;
    double total = 0.0, cum = 0.0, cutoff;

    for (size_t i = 0; i < vocab; i++)
        total += weight(logits[i], max, inv_t);
    cutoff = (1.0 - (double)s->p.top_p) / (double)(vocab > 1 ? vocab - 1 : 1) * total;
    /* The argmax is always in the nucleus; with it kept, at most V - 1
     * tokens fall under the cutoff and they weigh < (1 - top_p). */
    for (size_t i = 0; i < vocab; i++) {
        float w = weight(logits[i], max, inv_t);
        if ((w > 0.0f && (double)w >= cutoff) || (int32_t)i == best)
            c[m++] = (struct cand){w, (int32_t)i};
    }
    /* Heap-pop the best until the nucleus is complete; popped entries
     * collect at the end, best last. */
    for (size_t i = m / 2; i-- > 0;)
        sift(c, m, i, false);
    while (n < m && cum < (double)s->p.top_p * total) {
        struct cand t = c[0];
        cum += t.v;
        c[0] = c[m - n - 1];
        c[m - n - 1] = t;
        n++;
        sift(c, m - n, 0, false);
    }
    c += m - n;
    for (size_t i = 0; i < n / 2; i++) {
        struct cand t = c[i];
        c[i] = c[n - 1 - i];
        c[n - 1 - i] = t;
    }
    pl->c = c;
    pl->n = n;
    pl->total = cum; /* renormalised over the nucleus */
    pl->sorted = true;
}

/* Neither top-k nor top-p: every token, in id order. */
static void
pool_all(struct eng_sampler *s, const float *logits, float max, float inv_t, struct pool *pl)
{
    pl->c = s->cand;
    pl->n = s->vocab;
    pl->total = 0.0;
    pl->sorted = false;
    for (size_t i = 0; i < s->vocab; i++) {
        pl->c[i] = (struct cand){weight(logits[i], max, inv_t), (int32_t)i};
        pl->total += pl->c[i].v;
    }
}

/* top-p on a sorted pool: the smallest prefix with cumulative prob >= top_p. */
static void cut_top_p(struct pool *pl, float top_p)
{
    size_t m = 0;
    double cum = 0.0;

    while (m < pl->n && cum < (double)top_p * pl->total)
        cum += pl->c[m++].v;
    pl->n = m;
    pl->total = cum;
}

/* min-p: the most likely token has weight 1, so the bar is min_p itself. */
static void cut_min_p(struct pool *pl, float min_p)
{
    pl->total = 0.0;
    if (pl->sorted) {
        size_t m = 0;
        while (m < pl->n && pl->c[m].v >= min_p)
            pl->total += pl->c[m++].v;
        pl->n = m;
        return;
    }
    for (size_t i = 0; i < pl->n; i++) {
        if (pl->c[i].v < min_p)
            pl->c[i].v = 0.0f;
        pl->total += pl->c[i].v;
    }
}

/* The first candidate whose cumulative weight passes u * total. */
static int32_t draw(const struct pool *pl, double u, float *prob)
{
    double r = u * pl->total, cum = 0.0;
    size_t last = 0;

    for (size_t i = 0; i < pl->n; i++) {
        if (pl->c[i].v <= 0.0f)
            continue;
        cum += pl->c[i].v;
        last = i;
        if (r < cum)
            break;
    }
    /* (If rounding left r past the end, the last candidate with weight.) */
    if (prob)
        *prob = pl->total > 0.0 ? (float)(pl->c[last].v / pl->total) : 1.0f;
    return pl->c[last].id;
}

int32_t eng_sampler_sample(struct eng_sampler *s, float *logits, float *prob)
{
    const struct eng_sampler_params *p = &s->p;
    bool top_k = p->top_k > 0 && (size_t)p->top_k < s->vocab;
    struct pool pl;
    float max, inv_t;
    int32_t id;

    apply_penalties(s, logits);
    id = argmax(logits, s->vocab);
    max = logits[id];
    /* Greedy, or nothing to sample from (all -inf or NaN). */
    if (p->temperature == 0.0f || isnan(max) || max == -INFINITY) {
        if (prob)
            *prob = 1.0f;
        record(s, id);
        return id;
    }
    inv_t = 1.0f / p->temperature;
    if (top_k)
        pool_top_k(s, logits, max, inv_t, &pl);
    else if (p->top_p < 1.0f)
        pool_nucleus(s, logits, max, inv_t, id, &pl);
    else
        pool_all(s, logits, max, inv_t, &pl);
    if (top_k && p->top_p < 1.0f)
        cut_top_p(&pl, p->top_p);
    if (p->min_p > 0.0f)
        cut_min_p(&pl, p->min_p);
    id = draw(&pl, eng_rng_uniform(&s->rng), prob);
    record(s, id);
    return id;
}
