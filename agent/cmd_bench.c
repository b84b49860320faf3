/* agent/cmd_bench.c: `shoal bench`: llama-bench's two tests on one model,
 * prompt processing (ppP: P tokens from an empty cache, one eng_forward)
 * and token generation (tgN: N single-token steps from an empty cache),
 * mean and standard deviation over repetitions after a warm-up run, per
 * thread count; beside them the machine's read bandwidth (common/membw.h)
 * and the limit it puts on generation, bandwidth / bytes of weights read
 * per token, and the fraction of that limit reached. Text table or, with
 * --json, llama-bench's field names (bench/run reads both tools alike). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agent/cli.h"
#include "common/membw.h"
#include "common/util.h"
#include "engine/model.h"

#define MAX_THREAD_COUNTS 16
#define MAX_REPS          1000
#define MAX_TOKENS        (1 << 16)
#define BW_BYTES          ((size_t)1 << 30) /* several times any last-level cache */
#define BW_RUNS           8

static const struct agent_cmd *self(void)
{
    return agent_cmd_find("bench");
}

struct stats {
    double mean, sd;
    double samples[MAX_REPS];
    int n;
};

static void finish(struct stats *s)
{
    double sum = 0, sq = 0;
    for (int i = 0; i < s->n; i++)
        sum += s->samples[i];
    s->mean = s->n ? sum / s->n : 0;
    for (int i = 0; i < s->n; i++)
        sq += (s->samples[i] - s->mean) * (s->samples[i] - s->mean);
    s->sd = s->n > 1 ? sqrt(sq / (s->n - 1)) : 0;
}

/* "1,2" -> counts; false on anything else. */
static bool parse_list(const char *s, int *counts, int *n)
{
    const char *p = s;

    *n = 0;
    while (*p) {
        char tok[16];
        size_t len = strcspn(p, ",");
        int64_t v;
        if (len == 0 || len >= sizeof tok || *n == MAX_THREAD_COUNTS)
            return false;
        memcpy(tok, p, len);
        tok[len] = '\0';
        if (!sh_parse_i64(tok, 1, 512, &v))
            return false;
        counts[(*n)++] = (int)v;
        p += len;
        if (*p == ',' && *++p == '\0')
            return false;
    }
    return *n > 0;
}

struct run {
    struct eng_ctx *ctx;
    const int32_t *ids;
    int vocab;
    float *logits;
};

/* tokens/s of one prompt of n tokens from an empty cache. */
static int time_pp(struct run *r, int n, double *ts, struct sh_err *err)
{
    double t0;
    int rc;

    eng_ctx_truncate(r->ctx, 0);
    t0 = sh_now_s();
    if ((rc = eng_forward(r->ctx, r->ids, (size_t)n, false, r->logits, err)))
        return rc;
    *ts = n / (sh_now_s() - t0);
    return 0;
}

/* tokens/s of n single-token steps from an empty cache. */
static int time_tg(struct run *r, int n, double *ts, struct sh_err *err)
{
    double t0;
    int rc;

    eng_ctx_truncate(r->ctx, 0);
    t0 = sh_now_s();
    for (int i = 0; i < n; i++)
        if ((rc = eng_forward(r->ctx, &r->ids[i], 1, false, r->logits, err)))
            return rc;
    *ts = n / (sh_now_s() - t0);
    return 0;
}

struct row {
    int threads, n_prompt, n_gen;
    struct stats st;
    double bw_gbps; /* 0: not measured */
};

struct bench {
    const char *model_dir;
    const struct eng_model *m;
    enum eng_kv_type kv;
    int act_bits; /* eng_ctx_opts.act_bits: 16 or 8 */
    bool json;
    struct row rows[2 * MAX_THREAD_COUNTS];
    int n_rows;
};

static void print_text(const struct bench *b)
{
    const struct eng_config *c = eng_model_config(b->m);
    uint64_t per_tok = eng_model_decode_bytes(b->m);

    printf("model: %s (%s, %d layers, dim %d)\n", b->model_dir, eng_model_dtype_name(b->m),
           c->n_layers, c->dim);
    printf("weights: %.1f MB, %.1f M parameters; read per generated token: %.1f MB; KV "
           "cache %s; 4-bit decode activation codes %d-bit; kernels %s\n\n",
           (double)eng_model_weight_bytes(b->m) / 1e6, (double)eng_model_n_params(b->m) / 1e6,
           (double)per_tok / 1e6, eng_kv_type_name(b->kv), b->act_bits, eng_kernels_name());
    printf("| threads | test | t/s | read BW GB/s | limit t/s | of limit |\n");
    printf("| ---: | --- | ---: | ---: | ---: | ---: |\n");
    for (int i = 0; i < b->n_rows; i++) {
        const struct row *r = &b->rows[i];
        char test[32];
        snprintf(test, sizeof test, r->n_gen ? "tg%d" : "pp%d", r->n_gen ? r->n_gen : r->n_prompt);
        printf("| %d | %s | %.2f ± %.2f |", r->threads, test, r->st.mean, r->st.sd);
        if (r->n_gen && r->bw_gbps > 0) {
            double limit = r->bw_gbps * 1e9 / (double)per_tok;
            printf(" %.1f | %.1f | %.0f%% |\n", r->bw_gbps, limit, 100.0 * r->st.mean / limit);
        } else {
            printf(" | | |\n");
        }
    }
}

/* s as a JSON string literal (quotes and escapes), or "\"?\"". */
static void print_json_string(const char *s)
{
    cJSON *j = cJSON_CreateString(s);
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    fputs(text ? text : "\"?\"", stdout);
    free(text);
    cJSON_Delete(j);
}

static void print_json(const struct bench *b)
{
    const struct eng_config *c = eng_model_config(b->m);
    uint64_t per_tok = eng_model_decode_bytes(b->m);
    static const char *const families[] = {"llama", "mistral", "qwen2", "qwen3", "qwen3_moe"};

    printf("[\n");
    for (int i = 0; i < b->n_rows; i++) {
        const struct row *r = &b->rows[i];
        printf("  {\"model_filename\": ");
        print_json_string(b->model_dir);
        printf(", \"model_type\": \"%s %s\", \"dtype\": \"%s\", "
               "\"model_size\": %llu, \"model_n_params\": %llu, \"kv_type\": \"%s\", "
               "\"act_bits\": %d, \"kernels\": \"%s\", \"n_threads\": %d, \"n_prompt\": %d, "
               "\"n_gen\": %d, \"avg_ts\": %.6g, \"stddev_ts\": %.6g, \"samples_ts\": [",
               families[c->family], eng_model_dtype_name(b->m), eng_model_dtype_name(b->m),
               (unsigned long long)eng_model_weight_bytes(b->m),
               (unsigned long long)eng_model_n_params(b->m), eng_kv_type_name(b->kv), b->act_bits,
               eng_kernels_name(), r->threads, r->n_prompt, r->n_gen, r->st.mean, r->st.sd);
        for (int k = 0; k < r->st.n; k++)
            printf("%s%.6g", k ? ", " : "", r->st.samples[k]);
        printf("], \"bytes_per_token\": %llu", (unsigned long long)per_tok);
        if (r->bw_gbps > 0) {
            double limit = r->bw_gbps * 1e9 / (double)per_tok;
            printf(", \"read_bw_gbps\": %.4g, \"limit_ts\": %.6g", r->bw_gbps, limit);
            if (r->n_gen)
                printf(", \"limit_fraction\": %.4f", r->st.mean / limit);
        }
        printf("}%s\n", i + 1 < b->n_rows ? "," : "");
    }
    printf("]\n");
}

/* Runs both tests at one thread count. */
static int bench_threads(struct bench *b,
                         int threads,
                         int n_p,
                         int n_g,
                         int reps,
                         bool measure_bw,
                         const int32_t *ids,
                         struct sh_err *err)
{
    struct eng_pool *pool = NULL;
    struct eng_ctx_opts o = {
        .n_ctx = n_p > n_g ? n_p : n_g, .kv_type = b->kv, .act_bits = b->act_bits};
    struct run r = {.ids = ids, .vocab = eng_model_config(b->m)->vocab_size};
    double bw = 0, ts;
    int rc;

    if (measure_bw) {
        struct sh_membw_opts mo = {.threads = threads, .bytes = BW_BYTES, .runs = BW_RUNS};
        struct sh_membw_result res;
        if ((rc = sh_membw_measure(&mo, &res, err)))
            return rc;
        bw = res.best_gbps;
    }
    if ((rc = eng_pool_new(threads, &pool, err)) ||
        (rc = eng_ctx_new_ex(b->m, pool, &o, &r.ctx, err)))
        goto out;
    if (!(r.logits = malloc((size_t)r.vocab * sizeof *r.logits))) {
        rc = sh_err_set(err, SH_ENOMEM, "out of memory");
        goto out;
    }
    for (int test = 0; test < 2; test++) {
        int n = test ? n_g : n_p;
        struct row *row;
        if (n == 0)
            continue;
        row = &b->rows[b->n_rows++];
        memset(row, 0, sizeof *row);
        row->threads = threads;
        row->n_prompt = test ? 0 : n;
        row->n_gen = test ? n : 0;
        row->bw_gbps = bw;
        /* warm-up (page cache, pool threads, branch predictors), not counted */
        if ((rc = test ? time_tg(&r, n < 4 ? n : 4, &ts, err) : time_pp(&r, n, &ts, err)))
            goto out;
        for (int k = 0; k < reps; k++) {
            if ((rc = test ? time_tg(&r, n, &ts, err) : time_pp(&r, n, &ts, err)))
                goto out;
            row->st.samples[row->st.n++] = ts;
        }
        finish(&row->st);
    }
out:
    free(r.logits);
    eng_ctx_free(r.ctx);
    eng_pool_free(pool);
    return rc;
}

int agent_cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},       {"n-prompt", required_argument, NULL, 'p'},
        {"n-gen", required_argument, NULL, 'n'},       {"threads", required_argument, NULL, 't'},
        {"repetitions", required_argument, NULL, 'r'}, {"json", no_argument, NULL, 'j'},
        {"kv-type", required_argument, NULL, 'k'},     {"act-bits", required_argument, NULL, 'a'},
        {"no-bandwidth", no_argument, NULL, 'B'},      {NULL, 0, NULL, 0},
    };
    struct bench b = {.model_dir = agent_default_model(), .kv = ENG_KV_F32, .act_bits = 16};
    struct eng_model *m = NULL;
    struct sh_err err = {0};
    int counts[MAX_THREAD_COUNTS], ncounts = 0, c, rc = AGENT_EXIT_FAIL;
    int64_t n_p = 128, n_g = 64, reps = 5;
    bool bw = true;
    int32_t *ids = NULL;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:p:n:t:r:", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            b.model_dir = optarg;
            break;
        case 'p':
            if (!sh_parse_i64(optarg, 0, MAX_TOKENS, &n_p))
                return agent_usage_error(self(), "-p: 0 to %d tokens, got \"%s\"", MAX_TOKENS,
                                         optarg);
            break;
        case 'n':
            if (!sh_parse_i64(optarg, 0, MAX_TOKENS, &n_g))
                return agent_usage_error(self(), "-n: 0 to %d tokens, got \"%s\"", MAX_TOKENS,
                                         optarg);
            break;
        case 't':
            if (!parse_list(optarg, counts, &ncounts))
                return agent_usage_error(self(),
                                         "-t: thread counts 1 to 512, comma-separated (at most "
                                         "%d), got \"%s\"",
                                         MAX_THREAD_COUNTS, optarg);
            break;
        case 'r':
            if (!sh_parse_i64(optarg, 1, MAX_REPS, &reps))
                return agent_usage_error(self(), "-r: 1 to %d repetitions, got \"%s\"", MAX_REPS,
                                         optarg);
            break;
        case 'j':
            b.json = true;
            break;
        case 'k':
            if (!eng_kv_type_parse(optarg, &b.kv))
                return agent_usage_error(self(), "--kv-type: f32 or f16, got \"%s\"", optarg);
            break;
        case 'a':
            if (!eng_act_bits_parse(optarg, &b.act_bits))
                return agent_usage_error(self(), "--act-bits: 16 or 8, got \"%s\"", optarg);
            break;
        case 'B':
            bw = false;
            break;
        default:
            return agent_option_error(self(), c, argv);
        }
    }
    if (optind < argc)
        return agent_usage_error(self(), "unexpected argument \"%s\"", argv[optind]);
    if (n_p == 0 && n_g == 0)
        return agent_usage_error(self(), "-p and -n are both 0: nothing to measure");
    if (ncounts == 0)
        counts[ncounts++] = eng_physical_cores();
    if (eng_model_load(b.model_dir, &m, &err)) {
        fprintf(stderr, "shoal bench: %s\n", sh_err_msg(&err));
        return AGENT_EXIT_FAIL;
    }
    b.m = m;
    if (n_p > eng_model_config(m)->max_pos || n_g > eng_model_config(m)->max_pos) {
        rc = agent_usage_error(self(), "-p/-n: at most the model's %d positions",
                               eng_model_config(m)->max_pos);
        goto out;
    }
    if (!(ids = malloc((size_t)(n_p > n_g ? n_p : n_g) * sizeof *ids + 1))) {
        fprintf(stderr, "shoal bench: out of memory\n");
        goto out;
    }
    /* pseudo-random token ids, the same every run */
    for (int64_t i = 0; i < (n_p > n_g ? n_p : n_g); i++)
        ids[i] =
            (int32_t)((uint64_t)(i + 1) * 2654435761u % (uint64_t)eng_model_config(m)->vocab_size);
    for (int i = 0; i < ncounts; i++) {
        if (bench_threads(&b, counts[i], (int)n_p, (int)n_g, (int)reps, bw, ids, &err)) {
            fprintf(stderr, "shoal bench: %d threads: %s\n", counts[i], sh_err_msg(&err));
            goto out;
        }
    }
    if (b.json)
        print_json(&b);
    else
        print_text(&b);
    rc = fflush(stdout) == 0 ? AGENT_EXIT_OK : AGENT_EXIT_FAIL;
out:
    free(ids);
    eng_model_free(m);
    return rc;
}
