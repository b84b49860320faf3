/* agent/runner_job.c: one request inside a runner: the GEN payload (see
 * runner.h) checked and turned into prompt ids and a generator, then stepped
 * one token at a time, each token's text run through the chat output parser
 * (content / reasoning / tool calls) and sent as a DELTA frame, and the end
 * reported as DONE (finish reason, exact token counts, times) or ERROR.
 *
 * tool_choice, honestly:
 *   none      the tools are not rendered into the prompt and no tool call is
 *             parsed: the model cannot know about them.
 *   auto      rendered; calls in the template's format are parsed; a call
 *             that does not parse is passed on as content.
 *   required  the answer is constrained to open with the format's tool-call
 *   function  opening (required: "<tool_call>\n{\"name\": \"" for Hermes;
 *             a named function: up to its "arguments": ), forced token by
 *             token (eng_gen_force) so the model continues inside a call. If
 *             the model still ends without a valid call (of that function),
 *             the request fails with a 500 naming why: the contract cannot
 *             be met and silently answering text would break clients.
 * parallel_tool_calls false ends the answer after the first call.
 * response_format json_object: the content is checked once complete; output
 * that is not JSON fails the request (500), nothing constrains decoding.
 * json_schema is refused (400): shoal cannot enforce a schema.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "agent/runner.h"
#include "agent/runner_proto.h"
#include "common/json.h"
#include "common/log.h"
#include "engine/chat_template.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/tokenizer.h"

#define MOD "runner"

#define CONTENT_MAX (64u << 20) /* bytes of one answer kept for a JSON check */

struct job_call {
    char *name, *args;
};

struct runner_job {
    uint32_t id;
    const struct runner_model *rm;
    struct eng_gen *gen;
    struct eng_chat_parser *parser; /* chat only */
    int32_t *prompt;                /* until prefill */
    size_t n_prompt;
    int32_t *force; /* forced first tokens (tool_choice, test aid) */
    size_t n_force;
    bool completion;
    bool started;
    bool think_off;  /* drop reasoning */
    bool want_json;  /* response_format json */
    bool must_call;  /* tool_choice required or a function */
    char *must_name; /* tool_choice function */
    bool parallel;
    bool stop_now; /* parallel_tool_calls false and a call came */
    int64_t max_tokens;
    int top_logprobs;
    uint64_t recv_ns, start_ns;
    size_t n_calls;
    char call_error[160];
    struct sh_strbuf all; /* the whole content, for the JSON check */
    /* the delta being built */
    struct sh_strbuf dc, dr;
    struct job_call calls[RUNNER_MAX_CALLS];
    size_t n_dcalls;
    struct sh_strbuf *out; /* during a step */
};

uint32_t runner_job_id(const struct runner_job *j)
{
    return j->id;
}

static void clear_calls(struct runner_job *j)
{
    for (size_t i = 0; i < j->n_dcalls; i++) {
        free(j->calls[i].name);
        free(j->calls[i].args);
    }
    j->n_dcalls = 0;
}

void runner_job_free(struct runner_job *j)
{
    if (!j)
        return;
    eng_gen_free(j->gen);
    eng_chat_parser_free(j->parser);
    free(j->prompt);
    free(j->force);
    free(j->must_name);
    clear_calls(j);
    sh_strbuf_free(&j->all);
    sh_strbuf_free(&j->dc);
    sh_strbuf_free(&j->dr);
    free(j);
}

/* ---- the GEN payload ------------------------------------------------------ */

static int get_float(const cJSON *o, const char *key, float *out, struct sh_err *err)
{
    double v;
    int rc = sh_json_num(o, key, -1e9, 1e9, &v, err);

    if (rc == SH_ENOTFOUND)
        return 0;
    if (rc)
        return sh_err_wrap(err, "sampling");
    *out = (float)v;
    return 0;
}

static int parse_sampling(const cJSON *root, struct eng_gen_params *p, struct sh_err *err)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "sampling");
    const char *seed = NULL;
    int64_t k;
    int rc;

    if (!s)
        goto random_seed;
    if (!cJSON_IsObject(s))
        return sh_err_set(err, SH_EMALFORMED, "\"sampling\": expected an object");
    if ((rc = get_float(s, "temperature", &p->temperature, err)) ||
        (rc = get_float(s, "top_p", &p->top_p, err)) ||
        (rc = get_float(s, "min_p", &p->min_p, err)) ||
        (rc = get_float(s, "repetition_penalty", &p->repetition_penalty, err)) ||
        (rc = get_float(s, "presence_penalty", &p->presence_penalty, err)) ||
        (rc = get_float(s, "frequency_penalty", &p->frequency_penalty, err)))
        return rc;
    /* The API allows top_p 0 ("the most likely token only"); the sampler
     * wants (0, 1], where the smallest positive value means the same. */
    if (p->top_p == 0.0f)
        p->top_p = 1e-30f;
    rc = sh_json_int(s, "top_k", 0, INT32_MAX, &k, err);
    if (rc && rc != SH_ENOTFOUND)
        return sh_err_wrap(err, "sampling");
    if (!rc)
        p->top_k = (int)k;
    rc = sh_json_str(s, "seed", &seed, err);
    if (rc && rc != SH_ENOTFOUND)
        return sh_err_wrap(err, "sampling");
    if (seed) {
        if (!sh_parse_u64(seed, UINT64_MAX, &p->seed))
            return sh_err_set(err, SH_EMALFORMED, "sampling.seed: expected a decimal string");
        return 0;
    }
random_seed:
    if (getrandom(&p->seed, sizeof p->seed, 0) != (ssize_t)sizeof p->seed)
        p->seed = sh_now_ns();
    return 0;
}

/* An enum given as one of names[]; *out is its index. */
static int get_enum(const cJSON *root,
                    const char *key,
                    const char *const *names,
                    int n,
                    int *out,
                    struct sh_err *err)
{
    const char *s;
    int rc = sh_json_str(root, key, &s, err);

    if (rc == SH_ENOTFOUND)
        return sh_err_set(err, SH_EMALFORMED, "\"%s\" is missing", key);
    if (rc)
        return rc;
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    return sh_err_set(err, SH_EMALFORMED, "\"%s\": unknown value \"%.32s\"", key, s);
}

struct gen_spec {
    cJSON *root;
    const cJSON *messages, *tools;
    const char *prompt;
    int kind, tool_choice, format, think;
    const char *stops[ENG_GEN_MAX_STOPS];
    size_t n_stops;
    bool parallel;
};

static int parse_spec(const char *json,
                      size_t len,
                      struct gen_spec *g,
                      struct runner_job *j,
                      struct eng_gen_params *p,
                      struct sh_err *err)
{
    static const char *const kinds[] = {"chat", "completion"};
    static const char *const choices[] = {"none", "auto", "required", "function"};
    static const char *const formats[] = {"text", "json", "json_schema"};
    static const char *const thinks[] = {"unset", "off", "on"};
    const cJSON *stop, *it;
    const char *name = NULL;
    int64_t v;
    int rc;

    if ((rc = sh_json_parse(json, len, "GEN", &g->root, err)))
        return rc;
    if (!cJSON_IsObject(g->root))
        return sh_err_set(err, SH_EMALFORMED, "GEN: expected an object");
    if ((rc = get_enum(g->root, "kind", kinds, 2, &g->kind, err)) ||
        (rc = get_enum(g->root, "tool_choice", choices, 4, &g->tool_choice, err)) ||
        (rc = get_enum(g->root, "format", formats, 3, &g->format, err)) ||
        (rc = get_enum(g->root, "think", thinks, 3, &g->think, err)) ||
        (rc = sh_json_int(g->root, "max_tokens", -1, INT32_MAX, &j->max_tokens, err)) ||
        (rc = sh_json_int(g->root, "top_logprobs", -1, ENG_GEN_MAX_TOP_LOGPROBS, &v, err)) ||
        (rc = sh_json_bool(g->root, "parallel_tool_calls", &g->parallel, err)))
        return rc == SH_ENOTFOUND ? sh_err_set(err, SH_EMALFORMED, "GEN: a field is missing") : rc;
    j->top_logprobs = (int)v;
    j->completion = g->kind == 1;
    if (j->completion) {
        if ((rc = sh_json_str(g->root, "prompt", &g->prompt, err)))
            return rc == SH_ENOTFOUND ? sh_err_set(err, SH_EMALFORMED, "\"prompt\" is missing")
                                      : rc;
    } else {
        g->messages = cJSON_GetObjectItemCaseSensitive(g->root, "messages");
        if (!cJSON_IsArray(g->messages))
            return sh_err_set(err, SH_EMALFORMED, "\"messages\": expected an array");
    }
    g->tools = cJSON_GetObjectItemCaseSensitive(g->root, "tools");
    if (g->tools && !cJSON_IsArray(g->tools))
        return sh_err_set(err, SH_EMALFORMED, "\"tools\": expected an array");
    if (g->tool_choice == 3) {
        if (sh_json_str(g->root, "tool_name", &name, err) || !*name)
            return sh_err_set(err, SH_EMALFORMED, "\"tool_name\": expected a name");
        if (!(j->must_name = strdup(name)))
            return sh_err_set(err, SH_ENOMEM, "out of memory");
    }
    stop = cJSON_GetObjectItemCaseSensitive(g->root, "stop");
    if (stop && !cJSON_IsArray(stop))
        return sh_err_set(err, SH_EMALFORMED, "\"stop\": expected an array");
    cJSON_ArrayForEach(it, stop)
    {
        if (!cJSON_IsString(it) || g->n_stops == ENG_GEN_MAX_STOPS)
            return sh_err_set(err, SH_EMALFORMED, "\"stop\": at most %d strings",
                              ENG_GEN_MAX_STOPS);
        g->stops[g->n_stops++] = it->valuestring;
    }
    return parse_sampling(g->root, p, err);
}

/* ---- building the prompt ------------------------------------------------- */

static int render(const struct runner_model *rm,
                  const struct gen_spec *g,
                  bool tools,
                  char **text,
                  struct sh_err *err)
{
    struct eng_chat_request req = {.add_generation_prompt = true};
    time_t now = time(NULL);
    struct tm tm_now;
    cJSON *vars = NULL;
    size_t len;
    int rc;

    localtime_r(&now, &tm_now);
    if (g->think != 0) {
        /* Qwen3's switch; templates without it ignore the variable. */
        if (!(vars = cJSON_CreateObject()) ||
            !cJSON_AddBoolToObject(vars, "enable_thinking", g->think == 2)) {
            cJSON_Delete(vars);
            return sh_err_set(err, SH_ENOMEM, "out of memory");
        }
    }
    req.messages = g->messages;
    req.tools = tools ? g->tools : NULL;
    req.vars = vars;
    req.now = &tm_now;
    rc = eng_chat_template_render(rm->tmpl, &req, text, &len, err);
    cJSON_Delete(vars);
    if (rc)
        return sh_err_wrap(err, "chat template");
    return 0;
}

/* The forced opening of a tool call in the template's format (see the
 * notes at the top). Returned, or NULL when the format has none. */
static char *call_opening(enum eng_chat_format f, const char *name, bool in_reasoning)
{
    const char *close = in_reasoning ? "</think>\n\n" : "";
    struct sh_strbuf sb;

    sh_strbuf_init(&sb, 4096);
    switch (f) {
    case ENG_CHAT_FMT_HERMES:
        if (name)
            sh_strbuf_printf(&sb, "%s<tool_call>\n{\"name\": \"%s\", \"arguments\": ", close, name);
        else
            sh_strbuf_printf(&sb, "%s<tool_call>\n{\"name\": \"", close);
        break;
    case ENG_CHAT_FMT_LLAMA31:
        if (name)
            sh_strbuf_printf(&sb, "%s{\"name\": \"%s\", \"parameters\": ", close, name);
        else
            sh_strbuf_printf(&sb, "%s{\"name\": \"", close);
        break;
    case ENG_CHAT_FMT_DEEPSEEK_V3:
        sh_strbuf_printf(&sb,
                         "%s<\xef\xbd\x9ctool\xe2\x96\x81"
                         "calls\xe2\x96\x81"
                         "begin\xef\xbd\x9c>"
                         "<\xef\xbd\x9ctool\xe2\x96\x81"
                         "call\xe2\x96\x81"
                         "begin\xef\xbd\x9c>"
                         "function<\xef\xbd\x9ctool\xe2\x96\x81"
                         "sep\xef\xbd\x9c>",
                         close);
        if (name)
            sh_strbuf_printf(&sb, "%s\n```json\n", name);
        break;
    case ENG_CHAT_FMT_PLAIN:
        break;
    }
    if (!sb.buf)
        return NULL;
    return sh_strbuf_take(&sb);
}

/* The test aid: the first rule matching the prompt text. */
static const struct runner_force_rule *forced_rule(const struct runner_model *rm, const char *text)
{
    for (size_t i = 0; i < rm->n_rules; i++)
        if (!rm->rules[i].match || strstr(text, rm->rules[i].match))
            return &rm->rules[i];
    return NULL;
}

static int set_force(struct runner_job *j, const int32_t *ids, size_t n, struct sh_err *err)
{
    free(j->force);
    j->force = NULL;
    j->n_force = 0;
    if (!n)
        return 0;
    if (!(j->force = malloc(n * sizeof *ids)))
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    memcpy(j->force, ids, n * sizeof *ids);
    j->n_force = n;
    return 0;
}

/* Chat: checks what the model can do, renders, sets the parser and the
 * tool-call constraint. *text is returned. */
static int chat_prompt(struct runner_job *j,
                       const struct gen_spec *g,
                       struct eng_gen_params *p,
                       char **text,
                       struct sh_err *err)
{
    const struct runner_model *rm = j->rm;
    bool tools = g->tools && cJSON_GetArraySize(g->tools) > 0 && g->tool_choice != 0;
    struct eng_chat_parse_opts po;
    char *open;
    int rc;

    if (!rm->tmpl)
        return sh_err_set(err, SH_EUNSUPPORTED,
                          "this model has no chat template: use /v1/completions or "
                          "/api/generate with raw");
    if (tools && rm->tool_format == ENG_CHAT_FMT_PLAIN)
        return sh_err_set(err, SH_EUNSUPPORTED,
                          "this model does not support tools (its chat template has no "
                          "tool-call format)");
    if (g->think == 2 && !rm->thinking)
        return sh_err_set(err, SH_EUNSUPPORTED, "this model does not support thinking");
    if ((rc = render(rm, g, tools, text, err)))
        return rc;
    eng_chat_parse_detect(eng_chat_template_source(rm->tmpl, tools), *text, tools, &po);
    if ((rc = eng_chat_parser_new(&po, &j->parser, err)))
        return rc;
    j->think_off = g->think == 1;
    j->must_call = tools && g->tool_choice >= 2;
    /* Tool markers are special tokens for some models (DeepSeek, Llama's
     * <|python_tag|>): keep special tokens' text for the parser then. */
    p->skip_special = !tools;
    p->stop_ids = rm->chat_stop_ids;
    p->n_stop_ids = rm->n_chat_stop_ids;
    if (j->must_call) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (!(open = call_opening(po.format, j->must_name, po.starts_in_reasoning)))
            return sh_err_set(err, SH_ENOMEM, "out of memory");
        rc = eng_tokenize(rm->tok, open, strlen(open), false, &ids, &n, err);
        free(open);
        if (!rc)
            rc = set_force(j, ids, n, err);
        free(ids);
        if (rc)
            return rc;
    }
    return 0;
}

int runner_job_new(const struct runner_model *rm,
                   struct eng_ctx *ctx,
                   uint32_t id,
                   const char *json,
                   size_t len,
                   uint64_t recv_ns,
                   struct runner_job **out,
                   struct sh_err *err)
{
    struct runner_job *j = calloc(1, sizeof *j);
    struct gen_spec g;
    struct eng_gen_params p;
    const struct runner_force_rule *rule;
    char *text = NULL;
    int rc;

    memset(&g, 0, sizeof g);
    if (!j)
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    j->id = id;
    j->rm = rm;
    j->recv_ns = recv_ns;
    sh_strbuf_init(&j->all, CONTENT_MAX);
    sh_strbuf_init(&j->dc, RUNNER_MAX_FRAME / 4);
    sh_strbuf_init(&j->dr, RUNNER_MAX_FRAME / 4);
    eng_gen_params_init(&p);
    if ((rc = parse_spec(json, len, &g, j, &p, err)))
        goto fail;
    if (g.format == 2) {
        rc = sh_err_set(err, SH_EUNSUPPORTED,
                        "a JSON schema response format is not supported (shoal cannot "
                        "constrain decoding to a schema); use json_object / \"json\"");
        goto fail;
    }
    j->want_json = g.format == 1;
    j->parallel = g.parallel;
    p.skip_special = true;
    if (j->completion) {
        rc = eng_tokenize(rm->tok, g.prompt, strlen(g.prompt), true, &j->prompt, &j->n_prompt, err);
        if (!rc && rm->cfg_eos >= 0) {
            p.stop_ids = &rm->cfg_eos;
            p.n_stop_ids = 1;
        }
    } else if (!(rc = chat_prompt(j, &g, &p, &text, err))) {
        rc = eng_tokenize(rm->tok, text, strlen(text), false, &j->prompt, &j->n_prompt, err);
    }
    if (rc)
        goto fail;
    if (j->n_prompt == 0) {
        rc = sh_err_set(err, SH_EINVAL, "the prompt is empty (0 tokens)");
        goto fail;
    }
    if (j->n_prompt >= (size_t)eng_ctx_capacity(ctx)) {
        rc = sh_err_set(err, SH_ERANGE,
                        "the prompt is %zu tokens, but the model's context holds %d (one more "
                        "position is needed to answer)",
                        j->n_prompt, eng_ctx_capacity(ctx));
        goto fail;
    }
    if ((rule = forced_rule(rm, j->completion ? g.prompt : text)) &&
        (rc = set_force(j, rule->ids, rule->n, err)))
        goto fail;
    p.max_tokens = j->max_tokens > 0 ? (size_t)j->max_tokens : 0;
    p.stop_at_eos = true;
    p.stops = g.stops;
    p.n_stops = g.n_stops;
    p.top_logprobs = j->top_logprobs;
    if ((rc = eng_gen_new(rm->model, rm->tok, ctx, &p, &j->gen, err)))
        goto fail;
    free(text);
    cJSON_Delete(g.root);
    *out = j;
    return 0;
fail:
    free(text);
    cJSON_Delete(g.root);
    runner_job_free(j);
    return rc;
}

/* ---- stepping ------------------------------------------------------------------ */

/* Sends what the current step produced (nothing when it is empty). */
static int flush_delta(struct runner_job *j, const struct eng_gen_token *t, bool with_lp)
{
    const struct eng_tokenizer *tok = j->rm->tok;
    struct api_top_logprob tops[API_MAX_TOP_LOGPROBS];
    struct api_tool_call calls[RUNNER_MAX_CALLS];
    struct api_token_logprob lp;
    struct api_gen_delta d;
    int rc;

    memset(&d, 0, sizeof d);
    d.content = j->dc.buf;
    d.content_len = j->dc.len;
    d.reasoning = j->dr.buf;
    d.reasoning_len = j->dr.len;
    for (size_t i = 0; i < j->n_dcalls; i++)
        calls[i] = (struct api_tool_call){"", j->calls[i].name, j->calls[i].args};
    d.tool_calls = calls;
    d.n_tool_calls = j->n_dcalls;
    if (with_lp && t && j->top_logprobs >= 0) {
        lp.token = eng_token_piece(tok, t->id, &lp.token_len);
        if (!lp.token) {
            lp.token = "";
            lp.token_len = 0;
        }
        lp.logprob = isnan(t->logprob) ? -INFINITY : t->logprob;
        lp.n_top = t->n_top;
        for (size_t i = 0; i < t->n_top && i < API_MAX_TOP_LOGPROBS; i++) {
            tops[i].token = eng_token_piece(tok, t->top[i].id, &tops[i].token_len);
            if (!tops[i].token) {
                tops[i].token = "";
                tops[i].token_len = 0;
            }
            tops[i].logprob = t->top[i].logprob;
        }
        lp.top = tops;
        d.logprobs = &lp;
        d.n_logprobs = 1;
    }
    if (!d.content_len && !d.reasoning_len && !d.n_tool_calls && !d.n_logprobs)
        return 0;
    rc = runner_delta_put(j->out, j->id, &d);
    sh_strbuf_reset(&j->dc);
    sh_strbuf_reset(&j->dr);
    clear_calls(j);
    return rc;
}

static int on_event(void *arg, const struct eng_chat_event *ev)
{
    struct runner_job *j = arg;
    struct job_call *c;
    int rc = 0;

    if (j->stop_now)
        return 0; /* parallel_tool_calls false: the answer ended at the call */
    switch (ev->type) {
    case ENG_CHAT_EV_CONTENT:
        rc = sh_strbuf_append(&j->dc, ev->text, ev->len);
        if (!rc && j->want_json)
            rc = sh_strbuf_append(&j->all, ev->text, ev->len);
        return rc;
    case ENG_CHAT_EV_REASONING:
        return j->think_off ? 0 : sh_strbuf_append(&j->dr, ev->text, ev->len);
    case ENG_CHAT_EV_TOOL_CALL:
        if (j->must_name && strcmp(ev->name, j->must_name) != 0) {
            snprintf(j->call_error, sizeof j->call_error, "it called \"%.40s\" instead", ev->name);
            return 0;
        }
        if (j->n_dcalls == RUNNER_MAX_CALLS && (rc = flush_delta(j, NULL, false)))
            return rc;
        c = &j->calls[j->n_dcalls];
        c->name = strdup(ev->name);
        c->args = strdup(ev->arguments);
        if (!c->name || !c->args) {
            free(c->name);
            free(c->args);
            return SH_ENOMEM;
        }
        j->n_dcalls++;
        j->n_calls++;
        if (!j->parallel)
            j->stop_now = true;
        return 0;
    case ENG_CHAT_EV_TOOL_ERROR:
        if (j->must_call) {
            if (!j->call_error[0])
                snprintf(j->call_error, sizeof j->call_error, "%s", ev->error);
            return 0;
        }
        /* auto: a malformed call is what the model wrote; show it */
        return sh_strbuf_append(&j->dc, ev->text, ev->len);
    }
    return 0;
}

static int fail_frame(struct runner_job *j, int code, const char *msg, bool *ended)
{
    *ended = true;
    SH_LOG(SH_LOG_DEBUG, MOD, "request %u failed: %s", (unsigned)j->id, msg);
    return runner_error_put(j->out, j->id, code, msg);
}

static int finish(struct runner_job *j, enum eng_gen_end end, bool *ended)
{
    const struct eng_gen_stats *st = eng_gen_stats(j->gen);
    struct runner_done d;
    struct sh_err err;
    char msg[SH_ERR_MSG_LEN];
    int rc;

    sh_err_clear(&err);
    if (j->parser && (rc = eng_chat_parser_finish(j->parser, on_event, j, &err)))
        return rc == SH_ENOMEM ? rc : fail_frame(j, SH_EINTERNAL, sh_err_msg(&err), ended);
    if ((rc = flush_delta(j, NULL, false)))
        return rc;
    if (j->must_call && (j->n_calls == 0 || j->call_error[0])) {
        snprintf(msg, sizeof msg, "tool_choice %s: the model did not produce a valid call%s%s%s%s",
                 j->must_name ? "function" : "required", j->must_name ? " of " : "",
                 j->must_name ? j->must_name : "", j->call_error[0] ? ": " : "", j->call_error);
        return fail_frame(j, SH_EINTERNAL, msg, ended);
    }
    if (j->want_json && !j->n_calls) {
        cJSON *v = cJSON_ParseWithLength(j->all.buf ? j->all.buf : "", j->all.len);
        cJSON_Delete(v);
        if (!v)
            return fail_frame(j, SH_EINTERNAL,
                              "response format json: the model's answer is not valid JSON "
                              "(shoal checks it but cannot constrain decoding)",
                              ended);
    }
    memset(&d, 0, sizeof d);
    d.finish =
        end == ENG_GEN_MAX_TOKENS || end == ENG_GEN_CTX_FULL ? API_FINISH_LENGTH : API_FINISH_STOP;
    if (j->n_calls)
        d.finish = API_FINISH_TOOL_CALLS;
    d.prompt_tokens = st->prompt_tokens;
    d.completion_tokens = st->gen_tokens;
    d.wait_ns = j->start_ns - j->recv_ns;
    d.prompt_ns = st->prompt_ns;
    d.eval_ns = st->gen_ns;
    *ended = true;
    SH_LOG(SH_LOG_DEBUG, MOD, "request %u done: %zu+%zu tokens, %s", (unsigned)j->id,
           st->prompt_tokens, st->gen_tokens, eng_gen_end_name(end));
    return runner_done_put(j->out, j->id, &d);
}

static int first_step(struct runner_job *j, bool *ended)
{
    struct sh_err err;
    struct runner_done d;

    sh_err_clear(&err);
    j->started = true;
    j->start_ns = sh_now_ns();
    if (j->max_tokens == 0) { /* Ollama num_predict 0: nothing to generate */
        memset(&d, 0, sizeof d);
        d.finish = API_FINISH_LENGTH;
        d.prompt_tokens = j->n_prompt;
        d.wait_ns = j->start_ns - j->recv_ns;
        *ended = true;
        return runner_done_put(j->out, j->id, &d);
    }
    if (eng_gen_prefill(j->gen, j->prompt, j->n_prompt, 0, &err) ||
        (j->n_force && eng_gen_force(j->gen, j->force, j->n_force, &err)))
        return fail_frame(j, err.code == SH_ERANGE ? SH_ERANGE : SH_EINTERNAL, sh_err_msg(&err),
                          ended);
    free(j->prompt);
    j->prompt = NULL;
    return 0;
}

int runner_job_step(struct runner_job *j, struct sh_strbuf *out, bool *ended)
{
    struct eng_gen_token t;
    struct sh_err err;
    int rc;

    *ended = false;
    j->out = out;
    sh_err_clear(&err);
    if (!j->started && ((rc = first_step(j, ended)) || *ended))
        return rc;
    if (eng_gen_step(j->gen, &t, &err))
        return fail_frame(j, SH_EINTERNAL, sh_err_msg(&err), ended);
    if (t.text_len) {
        if (j->completion) {
            rc = sh_strbuf_append(&j->dc, t.text, t.text_len);
            if (!rc && j->want_json)
                rc = sh_strbuf_append(&j->all, t.text, t.text_len);
        } else
            rc = eng_chat_parser_feed(j->parser, t.text, t.text_len, on_event, j, &err);
        if (rc == SH_ETOOBIG)
            return fail_frame(j, SH_EINTERNAL, sh_err_msg(&err), ended);
        if (rc)
            return rc;
    }
    /* The token that ends the turn (a stop id) is not part of the answer:
     * no logprob entry for it. */
    if ((rc = flush_delta(j, &t, t.end != ENG_GEN_EOS)))
        return rc;
    if (t.end != ENG_GEN_RUNNING || j->stop_now)
        return finish(j, t.end, ended);
    return 0;
}
