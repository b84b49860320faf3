/* agent/cmd_logits.c: `shoal logits`: run a prompt of token ids through a
 * model and print the top logits at every position (one JSON line each),
 * optionally writing the last position's full logits as raw float32. A
 * debugging and verification tool: no tokenizer, no sampling. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/cli.h"
#include "common/file.h"
#include "common/util.h"
#include "engine/model.h"

/* Positions evaluated per eng_forward call: bounds the all-positions
 * logits buffer to CHUNK x vocab floats. */
#define CHUNK   64
#define MAX_IDS (1 << 20)
#define MAX_TOP 1000000

static const struct agent_cmd *self(void)
{
    return agent_cmd_find("logits");
}

/* Parses "1,2,3" into *ids (returned; caller frees). */
static int parse_ids(const char *s, int32_t **ids, size_t *n)
{
    size_t cap = 1, count = 0;
    char *copy, *tok;
    int32_t *v;

    for (const char *p = s; *p; p++)
        cap += *p == ',';
    if (cap > MAX_IDS)
        return agent_usage_error(self(), "--ids: more than %d ids", MAX_IDS);
    copy = strdup(s);
    v = malloc(cap * sizeof *v);
    if (!copy || !v) {
        free(copy);
        free(v);
        fprintf(stderr, "shoal logits: out of memory\n");
        return AGENT_EXIT_FAIL;
    }
    /* strtok_r would skip empty fields; walk the commas ourselves. */
    tok = copy;
    for (;;) {
        char *comma = strchr(tok, ',');
        int64_t id;
        if (comma)
            *comma = '\0';
        if (!sh_parse_i64(tok, 0, INT32_MAX, &id)) {
            int rc = agent_usage_error(self(),
                                       "--ids: \"%s\" is not a token id (ids are non-negative "
                                       "integers separated by commas)",
                                       tok);
            free(copy);
            free(v);
            return rc;
        }
        v[count++] = (int32_t)id;
        if (!comma)
            break;
        tok = comma + 1;
    }
    free(copy);
    *ids = v;
    *n = count;
    return 0;
}

/* The k largest of logits (ties: lower id first) into top, best first. */
static void top_k(const float *logits, int vocab, int k, int32_t *top)
{
    int have = 0;

    for (int id = 0; id < vocab; id++) {
        int at = have;
        if (have == k && !(logits[id] > logits[top[k - 1]]))
            continue;
        while (at > 0 && logits[id] > logits[top[at - 1]])
            at--;
        if (have < k)
            have++;
        memmove(top + at + 1, top + at, (size_t)(have - 1 - at) * sizeof *top);
        top[at] = id;
    }
}

static void print_row(size_t pos, const float *logits, int vocab, int k, int32_t *top)
{
    top_k(logits, vocab, k, top);
    printf("{\"pos\":%zu,\"top\":[", pos);
    for (int j = 0; j < k; j++) {
        float v = logits[top[j]];
        if (isfinite(v))
            printf("%s[%d,%.9g]", j ? "," : "", (int)top[j], (double)v);
        else
            printf("%s[%d,null]", j ? "," : "", (int)top[j]);
    }
    printf("]}\n");
}

static int write_logits(const char *path, const float *logits, int vocab)
{
    uint8_t *buf = malloc((size_t)vocab * 4);
    struct sh_err err = {0};
    int rc;

    if (!buf) {
        fprintf(stderr, "shoal logits: out of memory\n");
        return AGENT_EXIT_FAIL;
    }
    for (int i = 0; i < vocab; i++) {
        uint32_t u;
        memcpy(&u, &logits[i], sizeof u);
        sh_put_u32(buf + (size_t)i * 4, u);
    }
    rc = sh_write_file_atomic(path, buf, (size_t)vocab * 4, 0644, &err);
    free(buf);
    if (rc) {
        fprintf(stderr, "shoal logits: --out: %s\n", sh_err_msg(&err));
        return AGENT_EXIT_FAIL;
    }
    return AGENT_EXIT_OK;
}

int agent_cmd_logits(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},   {"ids", required_argument, NULL, 'i'},
        {"top", required_argument, NULL, 'k'},     {"out", required_argument, NULL, 'o'},
        {"threads", required_argument, NULL, 't'}, {NULL, 0, NULL, 0},
    };
    const char *model_dir = agent_default_model(), *ids_arg = NULL, *out_path = NULL;
    int64_t k = 5, threads = 0;
    struct eng_model *model = NULL;
    struct eng_pool *pool = NULL;
    struct eng_ctx *ctx = NULL;
    struct sh_err err = {0};
    int32_t *ids = NULL, *top = NULL;
    float *logits = NULL;
    size_t n = 0;
    int c, vocab, rc = AGENT_EXIT_FAIL;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model_dir = optarg;
            break;
        case 'i':
            ids_arg = optarg;
            break;
        case 'k':
            if (!sh_parse_i64(optarg, 1, MAX_TOP, &k))
                return agent_usage_error(self(), "--top: expected a count from 1, got \"%s\"",
                                         optarg);
            break;
        case 'o':
            out_path = optarg;
            break;
        case 't':
            if (!sh_parse_i64(optarg, 1, 512, &threads))
                return agent_usage_error(self(), "--threads: expected 1 to 512, got \"%s\"",
                                         optarg);
            break;
        default:
            return agent_option_error(self(), c, argv);
        }
    }
    if (optind < argc)
        return agent_usage_error(self(), "unexpected argument \"%s\"", argv[optind]);
    if (!ids_arg)
        return agent_usage_error(self(), "--ids is required");
    if ((rc = parse_ids(ids_arg, &ids, &n)))
        return rc;
    rc = AGENT_EXIT_FAIL;
    if (eng_model_load(model_dir, &model, &err)) {
        fprintf(stderr, "shoal logits: %s\n", sh_err_msg(&err));
        goto out;
    }
    vocab = eng_model_config(model)->vocab_size;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= vocab) {
            rc = agent_usage_error(self(),
                                   "--ids: id %d (position %zu) is outside the "
                                   "vocabulary [0, %d) of %s",
                                   (int)ids[i], i, vocab, model_dir);
            goto out;
        }
    }
    if (n > (size_t)eng_model_config(model)->max_pos) {
        rc = agent_usage_error(self(), "--ids: %zu ids exceed the model's %d positions", n,
                               eng_model_config(model)->max_pos);
        goto out;
    }
    if (k > vocab)
        k = vocab;
    if (eng_pool_new((int)threads, &pool, &err) || eng_ctx_new(model, pool, (int)n, &ctx, &err)) {
        fprintf(stderr, "shoal logits: %s\n", sh_err_msg(&err));
        goto out;
    }
    logits = malloc((size_t)CHUNK * (size_t)vocab * sizeof *logits);
    top = malloc((size_t)k * sizeof *top);
    if (!logits || !top) {
        fprintf(stderr, "shoal logits: out of memory\n");
        goto out;
    }
    for (size_t s = 0; s < n; s += CHUNK) {
        size_t cn = n - s < CHUNK ? n - s : CHUNK;
        if (eng_forward(ctx, ids + s, cn, true, logits, &err)) {
            fprintf(stderr, "shoal logits: %s\n", sh_err_msg(&err));
            goto out;
        }
        for (size_t i = 0; i < cn; i++)
            print_row(s + i, logits + i * (size_t)vocab, vocab, (int)k, top);
        if (s + cn == n && out_path &&
            write_logits(out_path, logits + (cn - 1) * (size_t)vocab, vocab) != 0)
            goto out;
    }
    rc = fflush(stdout) == 0 ? AGENT_EXIT_OK : AGENT_EXIT_FAIL;
out:
    free(top);
    free(logits);
    eng_ctx_free(ctx);
    eng_pool_free(pool);
    eng_model_free(model);
    free(ids);
    return rc;
}
