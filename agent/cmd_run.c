/* agent/cmd_run.c: `shoal run`: generate text from a prompt with a local
 * model, streamed to stdout as it is produced, with prompt and generation
 * speed on stderr. The generation itself is engine/generate.h's; this file
 * is flags, the prompt format and the output. */
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "agent/cli.h"
#include "common/file.h"
#include "common/json.h"
#include "common/util.h"
#include "engine/chat_template.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/tokenizer.h"

#define RUN_DEFAULT_TOKENS   256
#define RUN_MAX_TOKENS       100000000
#define TOKENIZER_CONFIG_MAX ((size_t)64 << 20)

const char agent_run_usage[] =
    "usage: shoal run [--model DIR] --prompt TEXT [-n N] [--temp T] [--top-p P]\n"
    "                 [--top-k K] [--min-p P] [--repeat-penalty R] [--seed S]\n"
    "                 [--stop STR]... [--chat] [--no-eos] [--ctx N] [--threads N]\n"
    "                 [--act-bits 16|8]\n"
    "\n"
    "Generates a continuation of TEXT (or, with --chat, the model's answer to it)\n"
    "and writes it to stdout as it is produced. At the end it prints the prompt\n"
    "and generation speed and why generation stopped to stderr.\n"
    "\n"
    "  --model DIR         Hugging Face model folder (default: $SHOAL_MODEL or the\n"
    "                      demo model)\n"
    "  --prompt TEXT       the prompt (UTF-8)\n"
    "  --chat              ask TEXT as one user turn in the model's own chat template\n"
    "                      and stop at the end of the turn\n"
    "  -n N                tokens to generate at most (default 256; -1: until the\n"
    "                      context is full)\n"
    "  --temp T            temperature; 0 = greedy\n"
    "  --top-p P           nucleus sampling, (0, 1]; 1 = off\n"
    "  --top-k K           sample from the K most likely tokens; 0 = off\n"
    "  --min-p P           drop tokens below P x the top probability; 0 = off\n"
    "  --repeat-penalty R  penalise tokens already seen (1 = off)\n"
    "  --seed S            random seed (default: a random one)\n"
    "  --stop STR          stop before STR in the output (repeatable, up to 64)\n"
    "  --no-eos            do not stop at end-of-sequence/end-of-turn tokens\n"
    "  --ctx N             context size in tokens (default: prompt + N, at most the\n"
    "                      model's max_position_embeddings)\n"
    "  --threads N         compute threads (default: physical cores)\n"
    "  --act-bits N        codes of the activations that 4-bit weights multiply in\n"
    "                      generation: 16 (default) or 8 (llama.cpp's rounding:\n"
    "                      faster, and lossy: logits move by about 0.1)\n"
    "\n"
    "Sampling options left out take the model's generation_config.json values\n"
    "(greedy when it says do_sample false; temperature 1 and no cut-offs\n"
    "without the file).\n";

struct run_opts {
    const char *model;
    int act_bits; /* eng_ctx_opts.act_bits; 0: the default */
    const char *prompt;
    bool chat;
    bool no_eos;
    int64_t n_tokens;
    int64_t ctx;
    int64_t threads;
    bool has_seed;
    uint64_t seed;
    struct eng_gen_params gp;
    const char *stops[ENG_GEN_MAX_STOPS];
    size_t n_stops;
};

static const struct agent_cmd *self(void)
{
    return agent_cmd_find("run");
}

/* ---- the chat format ------------------------------------------------------------
 * The model's own chat template (engine/chat_template.h), rendered as
 * transformers' apply_chat_template([{"role": "user", "content": TEXT}],
 * add_generation_prompt=True) does. */

/* End-of-turn markers of the families we run. A template that writes one of
 * these after an assistant turn ends the turn with it, so generation stops
 * there even when generation_config's eos ids do not list it (as llama.cpp
 * treats end-of-generation tokens by their text). */
static const char *const turn_markers[] = {"<|im_end|>", "<|eot_id|>", "<|end|>",
                                           "<｜end▁of▁sentence｜>"};

/* *text is returned (caller frees with free()); end_of_turn receives up to
 * cap ids of turn markers the template uses (*n set). */
static int chat_prompt(const char *model_dir,
                       const struct eng_tokenizer *tok,
                       const char *user,
                       char **text,
                       int32_t *end_of_turn,
                       size_t cap,
                       size_t *n)
{
    struct eng_chat_template *ct = NULL;
    struct eng_chat_request req = {.add_generation_prompt = true};
    struct sh_err err = {0};
    cJSON *messages = NULL, *msg;
    const char *src;
    size_t len = 0;
    time_t now = time(NULL);
    struct tm tm_now;
    int rc = AGENT_EXIT_FAIL;

    *n = 0;
    if (eng_chat_template_load(model_dir, &ct, &err)) {
        fprintf(stderr, "shoal run: --chat: %s\n", sh_err_msg(&err));
        return AGENT_EXIT_FAIL;
    }
    messages = cJSON_CreateArray();
    msg = cJSON_CreateObject();
    if (!messages || !msg || !cJSON_AddItemToArray(messages, msg) ||
        !cJSON_AddStringToObject(msg, "role", "user") ||
        !cJSON_AddStringToObject(msg, "content", user)) {
        if (msg && !cJSON_IsArray(messages))
            cJSON_Delete(msg);
        fprintf(stderr, "shoal run: out of memory\n");
        goto out;
    }
    localtime_r(&now, &tm_now);
    req.messages = messages;
    req.now = &tm_now;
    if (eng_chat_template_render(ct, &req, text, &len, &err)) {
        fprintf(stderr, "shoal run: --chat: %s\n", sh_err_msg(&err));
        goto out;
    }
    src = eng_chat_template_source(ct, false);
    for (size_t i = 0; i < sizeof turn_markers / sizeof turn_markers[0] && *n < cap; i++) {
        int32_t id = eng_token_lookup(tok, turn_markers[i]);
        if (id >= 0 && strstr(src, turn_markers[i]))
            end_of_turn[(*n)++] = id;
    }
    rc = AGENT_EXIT_OK;
out:
    cJSON_Delete(messages);
    eng_chat_template_free(ct);
    return rc;
}

/* The tokenizer_config.json eos_token's id into *id (-1 when the file, the
 * field or the token is absent). */
static int config_eos(const char *dir, const struct eng_tokenizer *tok, int32_t *id)
{
    char path[4096];
    struct sh_err err = {0};
    const cJSON *eos;
    const char *name = NULL;
    cJSON *root = NULL;

    *id = -1;
    if (sh_path_join(path, sizeof path, dir, "tokenizer_config.json", &err)) {
        fprintf(stderr, "shoal run: %s\n", sh_err_msg(&err));
        return AGENT_EXIT_FAIL;
    }
    if (!sh_path_exists(path))
        return AGENT_EXIT_OK;
    if (sh_json_parse_file(path, TOKENIZER_CONFIG_MAX, &root, &err)) {
        fprintf(stderr, "shoal run: %s\n", sh_err_msg(&err));
        return AGENT_EXIT_FAIL;
    }
    eos = cJSON_GetObjectItemCaseSensitive(root, "eos_token");
    /* A plain string, or an AddedToken object {"content": ...}. */
    if (cJSON_IsString(eos))
        name = eos->valuestring;
    else if (cJSON_IsObject(eos) &&
             cJSON_IsString(cJSON_GetObjectItemCaseSensitive(eos, "content")))
        name = cJSON_GetObjectItemCaseSensitive(eos, "content")->valuestring;
    else if (eos && !cJSON_IsNull(eos)) {
        fprintf(stderr,
                "shoal run: %s: eos_token: expected a string or an object with "
                "\"content\"\n",
                path);
        cJSON_Delete(root);
        return AGENT_EXIT_FAIL;
    }
    if (name)
        *id = eng_token_lookup(tok, name);
    cJSON_Delete(root);
    return AGENT_EXIT_OK;
}

/* ---- flags --------------------------------------------------------------------- */

static int parse_float(const char *flag, const char *s, double min, double max, float *out)
{
    double v;
    if (!sh_parse_double(s, min, max, &v))
        return agent_usage_error(self(), "%s: expected a number from %g to %g, got \"%s\"", flag,
                                 min, max, s);
    *out = (float)v;
    return 0;
}

static int parse_args(int argc, char **argv, struct run_opts *o)
{
    enum {
        O_TEMP = 256,
        O_TOP_P,
        O_TOP_K,
        O_MIN_P,
        O_REPEAT,
        O_SEED,
        O_STOP,
        O_NO_EOS,
        O_CTX,
        O_ACT_BITS
    };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"prompt", required_argument, NULL, 'p'},
        {"chat", no_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'},
        {"temp", required_argument, NULL, O_TEMP},
        {"top-p", required_argument, NULL, O_TOP_P},
        {"top-k", required_argument, NULL, O_TOP_K},
        {"min-p", required_argument, NULL, O_MIN_P},
        {"repeat-penalty", required_argument, NULL, O_REPEAT},
        {"seed", required_argument, NULL, O_SEED},
        {"stop", required_argument, NULL, O_STOP},
        {"no-eos", no_argument, NULL, O_NO_EOS},
        {"ctx", required_argument, NULL, O_CTX},
        {"act-bits", required_argument, NULL, O_ACT_BITS},
        {NULL, 0, NULL, 0},
    };
    int64_t k;
    int c, rc;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":n:", opts, NULL)) != -1) {
        rc = 0;
        switch (c) {
        case 'm':
            o->model = optarg;
            break;
        case 'p':
            o->prompt = optarg;
            break;
        case 'c':
            o->chat = true;
            break;
        case 'n':
            if (!sh_parse_i64(optarg, -1, RUN_MAX_TOKENS, &o->n_tokens) || o->n_tokens == 0)
                return agent_usage_error(self(),
                                         "-n: expected a count from 1 to %d, or -1, got \"%s\"",
                                         RUN_MAX_TOKENS, optarg);
            break;
        case 't':
            if (!sh_parse_i64(optarg, 1, 512, &o->threads))
                return agent_usage_error(self(), "--threads: expected 1 to 512, got \"%s\"",
                                         optarg);
            break;
        case O_TEMP:
            rc = parse_float("--temp", optarg, 0, 1e4, &o->gp.temperature);
            break;
        case O_ACT_BITS:
            if (!eng_act_bits_parse(optarg, &o->act_bits))
                return agent_usage_error(self(), "--act-bits: 16 or 8, got \"%s\"", optarg);
            break;
        case O_TOP_P:
            rc = parse_float("--top-p", optarg, 0, 1, &o->gp.top_p);
            if (!rc && !(o->gp.top_p > 0))
                rc = agent_usage_error(self(), "--top-p: must be above 0 (1 = off)");
            break;
        case O_TOP_K:
            if (!sh_parse_i64(optarg, 0, INT32_MAX, &k))
                return agent_usage_error(self(), "--top-k: expected a count from 0, got \"%s\"",
                                         optarg);
            o->gp.top_k = (int)k;
            break;
        case O_MIN_P:
            rc = parse_float("--min-p", optarg, 0, 1, &o->gp.min_p);
            break;
        case O_REPEAT:
            rc = parse_float("--repeat-penalty", optarg, 1e-3, 1e3, &o->gp.repetition_penalty);
            break;
        case O_SEED:
            if (!sh_parse_u64(optarg, UINT64_MAX, &o->seed))
                return agent_usage_error(self(), "--seed: expected an unsigned integer, got \"%s\"",
                                         optarg);
            o->has_seed = true;
            break;
        case O_STOP:
            if (!optarg[0])
                return agent_usage_error(self(), "--stop: the stop string is empty");
            if (o->n_stops == ENG_GEN_MAX_STOPS)
                return agent_usage_error(self(), "--stop: at most %d stop strings",
                                         ENG_GEN_MAX_STOPS);
            o->stops[o->n_stops++] = optarg;
            break;
        case O_NO_EOS:
            o->no_eos = true;
            break;
        case O_CTX:
            if (!sh_parse_i64(optarg, 2, INT_MAX, &o->ctx))
                return agent_usage_error(self(), "--ctx: expected a size from 2, got \"%s\"",
                                         optarg);
            break;
        default:
            return agent_option_error(self(), c, argv);
        }
        if (rc)
            return rc;
    }
    if (optind < argc)
        return agent_usage_error(self(), "unexpected argument \"%s\"", argv[optind]);
    if (!o->prompt)
        return agent_usage_error(self(), "--prompt is required");
    return 0;
}

/* ---- generation ------------------------------------------------------------------ */

static double rate(size_t n, uint64_t ns)
{
    return ns ? (double)n * 1e9 / (double)ns : 0.0;
}

/* Steps g to the end, streaming the text; prints the summary line. */
static int stream(struct eng_gen *g)
{
    const struct eng_gen_stats *st = eng_gen_stats(g);
    struct eng_gen_token t;
    struct sh_err err = {0};
    char last = '\n';

    do {
        if (eng_gen_step(g, &t, &err)) {
            fprintf(stderr, "\nshoal run: %s\n", sh_err_msg(&err));
            return AGENT_EXIT_FAIL;
        }
        if (t.text_len) {
            last = t.text[t.text_len - 1];
            if (fwrite(t.text, 1, t.text_len, stdout) != t.text_len || fflush(stdout) != 0) {
                fprintf(stderr, "shoal run: writing the output failed\n");
                return AGENT_EXIT_FAIL;
            }
        }
    } while (t.end == ENG_GEN_RUNNING);
    /* A terminal gets its prompt back on a fresh line; a pipe gets the
     * text exactly. */
    if (last != '\n' && isatty(STDOUT_FILENO))
        putchar('\n');
    if (fflush(stdout) != 0) {
        fprintf(stderr, "shoal run: writing the output failed\n");
        return AGENT_EXIT_FAIL;
    }
    /* Generation speed counts the tokens run through the model after the
     * prompt, as llama.cpp's eval rate does: the first token comes from the
     * prompt's logits and the last one is never fed. */
    fprintf(stderr,
            "prompt: %zu tokens, %.1f tok/s | generation: %zu tokens, %.1f tok/s | stop: %s\n",
            st->prompt_tokens, rate(st->prompt_tokens - st->prompt_cached, st->prompt_ns),
            st->gen_tokens, rate(st->decode_tokens, st->gen_ns), eng_gen_end_name(t.end));
    return AGENT_EXIT_OK;
}

int agent_cmd_run(int argc, char **argv)
{
    struct run_opts o = {.model = agent_default_model(), .n_tokens = RUN_DEFAULT_TOKENS};
    struct eng_tokenizer *tok = NULL;
    struct eng_model *model = NULL;
    struct eng_pool *pool = NULL;
    struct eng_ctx *ctx = NULL;
    struct eng_ctx_opts copts;
    struct eng_gen *gen = NULL;
    struct sh_err err = {0};
    int32_t *ids = NULL, stop_ids[8], eot[4];
    char *chat_text = NULL;
    const char *text;
    size_t n_ids = 0, n_stop_ids = 0, n_eot = 0;
    int32_t cfg_eos = -1;
    int64_t n_ctx, max_pos;
    int rc;

    eng_gen_params_init(&o.gp);
    if ((rc = parse_args(argc, argv, &o)))
        return rc;
    if ((rc = agent_load_tokenizer("run", o.model, &tok)))
        return rc;
    rc = AGENT_EXIT_FAIL;
    if (eng_model_load(o.model, &model, &err)) {
        fprintf(stderr, "shoal run: %s\n", sh_err_msg(&err));
        goto out;
    }
    text = o.prompt;
    if (o.chat) {
        if ((rc = chat_prompt(o.model, tok, o.prompt, &chat_text, eot, 4, &n_eot)))
            goto out;
        rc = AGENT_EXIT_FAIL;
        text = chat_text;
    }
    /* A chat prompt carries its own special tokens; a plain one gets what
     * the tokenizer's post-processor adds (Llama's BOS), as transformers'
     * encode does by default. */
    if (eng_tokenize(tok, text, strlen(text), !o.chat, &ids, &n_ids, &err)) {
        fprintf(stderr, "shoal run: --prompt: %s\n", sh_err_msg(&err));
        goto out;
    }
    if (config_eos(o.model, tok, &cfg_eos))
        goto out;
    if (!o.no_eos) {
        for (size_t i = 0; i < n_eot; i++)
            stop_ids[n_stop_ids++] = eot[i];
        if (cfg_eos >= 0 && cfg_eos < eng_model_config(model)->vocab_size)
            stop_ids[n_stop_ids++] = cfg_eos;
    }
    max_pos = eng_model_config(model)->max_pos;
    n_ctx = o.ctx ? o.ctx : (o.n_tokens > 0 ? (int64_t)n_ids + o.n_tokens : max_pos);
    if (!o.ctx && n_ctx > max_pos)
        n_ctx = max_pos;
    if (n_ctx > max_pos) {
        rc = agent_usage_error(self(), "--ctx: %lld is more than the model's %lld positions",
                               (long long)n_ctx, (long long)max_pos);
        goto out;
    }
    o.gp.max_tokens = o.n_tokens > 0 ? (size_t)o.n_tokens : 0;
    o.gp.stop_at_eos = !o.no_eos;
    o.gp.stop_ids = stop_ids;
    o.gp.n_stop_ids = n_stop_ids;
    o.gp.stops = o.stops;
    o.gp.n_stops = o.n_stops;
    o.gp.skip_special = true;
    if (o.has_seed)
        o.gp.seed = o.seed;
    else if (getrandom(&o.gp.seed, sizeof o.gp.seed, 0) != (ssize_t)sizeof o.gp.seed)
        o.gp.seed = sh_now_ns();
    copts = (struct eng_ctx_opts){.n_ctx = (int)n_ctx, .act_bits = o.act_bits};
    if (eng_pool_new((int)o.threads, &pool, &err) ||
        eng_ctx_new_ex(model, pool, &copts, &ctx, &err) ||
        eng_gen_new(model, tok, ctx, &o.gp, &gen, &err) ||
        eng_gen_prefill(gen, ids, n_ids, 0, &err)) {
        fprintf(stderr, "shoal run: %s\n", sh_err_msg(&err));
        goto out;
    }
    rc = stream(gen);
out:
    eng_gen_free(gen);
    eng_ctx_free(ctx);
    eng_pool_free(pool);
    eng_model_free(model);
    eng_tokenizer_free(tok);
    free(ids);
    free(chat_text);
    return rc;
}
