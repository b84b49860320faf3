/* tests/engine/bench_forward.c: an internal timing harness (not a test, not
 * a public command): prompt processing and generation speed of a model.
 *   bench_forward MODEL_DIR THREADS PROMPT_TOKENS GEN_TOKENS [REPEATS]
 * prints pp and tg tokens/s (best of REPEATS runs). */
#include <stdio.h>
#include <stdlib.h>

#include "common/util.h"
#include "engine/model.h"

int main(int argc, char **argv)
{
    struct eng_model *m = NULL;
    struct eng_pool *pool = NULL;
    struct eng_ctx *ctx = NULL;
    struct sh_err err = {0};
    int64_t threads, n_pp, n_tg, reps = 3;
    double best_pp = 0, best_tg = 0;
    int32_t *ids;
    float *logits;
    int vocab;

    if (argc < 5 || !sh_parse_i64(argv[2], 1, 512, &threads) ||
        !sh_parse_i64(argv[3], 1, 1 << 20, &n_pp) || !sh_parse_i64(argv[4], 0, 1 << 20, &n_tg) ||
        (argc > 5 && !sh_parse_i64(argv[5], 1, 1000, &reps))) {
        fprintf(stderr,
                "usage: bench_forward MODEL_DIR THREADS PROMPT_TOKENS GEN_TOKENS [REPEATS]\n");
        return 2;
    }
    if (eng_model_load(argv[1], &m, &err) || eng_pool_new((int)threads, &pool, &err) ||
        eng_ctx_new(m, pool, (int)(n_pp + n_tg), &ctx, &err)) {
        fprintf(stderr, "bench_forward: %s\n", sh_err_msg(&err));
        return 1;
    }
    vocab = eng_model_config(m)->vocab_size;
    ids = malloc((size_t)n_pp * sizeof *ids);
    logits = malloc((size_t)vocab * sizeof *logits);
    if (!ids || !logits)
        return 1;
    for (int64_t i = 0; i < n_pp; i++)
        ids[i] = (int32_t)((i * 7919 + 13) % vocab);
    for (int64_t r = 0; r < reps; r++) {
        double t0, t1, t2;
        int32_t next = 1;
        eng_ctx_truncate(ctx, 0);
        t0 = sh_now_s();
        if (eng_forward(ctx, ids, (size_t)n_pp, false, logits, &err))
            goto fail;
        t1 = sh_now_s();
        for (int64_t i = 0; i < n_tg; i++) {
            if (eng_forward(ctx, &next, 1, false, logits, &err))
                goto fail;
            next = (int32_t)((next * 31 + 7) % vocab);
        }
        t2 = sh_now_s();
        if (n_pp / (t1 - t0) > best_pp)
            best_pp = (double)n_pp / (t1 - t0);
        if (n_tg && n_tg / (t2 - t1) > best_tg)
            best_tg = (double)n_tg / (t2 - t1);
    }
    printf("%s threads=%d pp%d=%.1f tok/s tg%d=%.2f tok/s (%s, %.1f MB of weights)\n", argv[1],
           (int)threads, (int)n_pp, best_pp, (int)n_tg, best_tg, eng_model_dtype_name(m),
           (double)eng_model_weight_bytes(m) / 1e6);
    eng_ctx_free(ctx);
    eng_pool_free(pool);
    eng_model_free(m);
    free(ids);
    free(logits);
    return 0;
fail:
    fprintf(stderr, "bench_forward: %s\n", sh_err_msg(&err));
    return 1;
}
