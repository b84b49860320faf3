/* api/ollama.c: Ollama request bodies (POST /api/chat, /api/generate,
 * /api/show) -> struct api_gen_request. Field meanings follow Ollama's
 * api/types.go (ChatRequest, GenerateRequest, Options). Pure.
 *
 * options: temperature, top_p, top_k, min_p, seed (-1 = random),
 * num_predict (-1 until a stop or the context is full, -2 fill the context:
 * the same for shoal, 0 no tokens), stop, repeat_penalty, presence_penalty,
 * frequency_penalty, num_ctx, repeat_last_n are used; num_keep and
 * penalize_newline are accepted (no effect without context shifting);
 * hardware options (num_gpu, num_thread, use_mmap, ...) are accepted and
 * flagged ignored; mirostat, typical_p, tfs_z other than off are refused;
 * unknown options are ignored as Ollama does. keep_alive is checked and
 * ignored (models stay loaded), template is ignored (the model's chat
 * template is used; the routes log a warning). images, context, suffix are
 * refused when non-empty.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/internal.h"

#define OLL_MAX_TOKENS_CAP (1 << 30)

/* obj's member key (named param in errors): absent, or an array that must
 * be empty. */
static int nonempty_array_refused(
    const cJSON *obj, const char *key, const char *param, const char *why, struct api_error *e)
{
    const cJSON *v = api_member(obj, key);

    if (!v)
        return 0;
    if (!cJSON_IsArray(v))
        return api_error_set(e, 400, "invalid_type", param,
                             "invalid type for '%s': expected an array", param);
    return v->child ? api_unsupported(e, param, why) : 0;
}

/* An option that only switches a sampler shoal lacks: allowed at its "off"
 * value. */
static int option_off(const cJSON *opts, const char *key, double off, struct api_error *e)
{
    char p[API_PARAM_LEN];
    bool has = false;
    double v = 0;
    int rc;

    api_param(p, "options.%s", key);
    if ((rc = api_get_num(opts, key, p, -1e9, 1e9, &has, &v, e)))
        return rc;
    if (has && v != off)
        return api_unsupported(e, p, "this sampler is not implemented");
    return 0;
}

static int parse_options(const cJSON *root, struct api_gen_request *r, struct api_error *e)
{
    /* Runner/hardware knobs (no effect on the output), then two that only
     * matter with context shifting, which shoal does not do. */
    static const char *const hw[] = {"numa",     "num_batch",       "num_gpu",        "main_gpu",
                                     "low_vram", "f16_kv",          "logits_all",     "vocab_only",
                                     "use_mmap", "use_mlock",       "embedding_only", "num_thread",
                                     "num_keep", "penalize_newline"};
    const size_t n_hw = 12;
    const cJSON *o = api_member(root, "options");
    struct api_sampling *s = &r->sampling;
    bool has = false;
    int64_t n = 0;
    double rp = 0;
    int rc;

    if (!o)
        return 0;
    if (!cJSON_IsObject(o))
        return api_error_set(e, 400, "invalid_type", "options",
                             "invalid type for 'options': expected an object");
    if ((rc = api_get_num(o, "temperature", "options.temperature", 0, 100, &s->has_temperature,
                          &s->temperature, e)) ||
        (rc = api_get_num(o, "top_p", "options.top_p", 0, 1, &s->has_top_p, &s->top_p, e)) ||
        (rc = api_get_num(o, "min_p", "options.min_p", 0, 1, &s->has_min_p, &s->min_p, e)) ||
        (rc = api_get_num(o, "presence_penalty", "options.presence_penalty", -2, 2,
                          &s->has_presence_penalty, &s->presence_penalty, e)) ||
        (rc = api_get_num(o, "frequency_penalty", "options.frequency_penalty", -2, 2,
                          &s->has_frequency_penalty, &s->frequency_penalty, e)) ||
        (rc = api_get_num(o, "repeat_penalty", "options.repeat_penalty", 0, 10, &has, &rp, e)))
        return rc;
    if (has && rp <= 0)
        return api_error_set(e, 400, "invalid_value", "options.repeat_penalty",
                             "invalid value for 'options.repeat_penalty': must be > 0");
    s->has_repetition_penalty = has;
    s->repetition_penalty = rp;
    has = false;
    if ((rc = api_get_int(o, "top_k", "options.top_k", -(1 << 30), 1000000, &has, &n, e)))
        return rc;
    if (has) { /* llama.cpp: top_k <= 0 disables it */
        s->has_top_k = true;
        s->top_k = n < 0 ? 0 : (int)n;
    }
    if ((rc = api_get_seed(o, "seed", "options.seed", &has, &s->seed, e)))
        return rc;
    s->has_seed = has && s->seed != (uint64_t)-1; /* -1: random, Ollama's default */
    has = false;
    if ((rc = api_get_int(o, "num_predict", "options.num_predict", -2, OLL_MAX_TOKENS_CAP, &has, &n,
                          e)))
        return rc;
    if (has)
        r->max_tokens = n;
    if ((rc = api_get_int(o, "num_ctx", "options.num_ctx", 0, 1 << 24, NULL, &r->num_ctx, e)))
        return rc;
    has = false;
    if ((rc = api_get_int(o, "repeat_last_n", "options.repeat_last_n", -1, 1 << 24, &has, &n, e)))
        return rc;
    s->has_repeat_last_n = has;
    s->repeat_last_n = (int)n;
    if ((rc = api_parse_stop(api_member(o, "stop"), "options.stop", r, e)) ||
        (rc = option_off(o, "mirostat", 0, e)) || (rc = option_off(o, "typical_p", 1, e)) ||
        (rc = option_off(o, "tfs_z", 1, e)))
        return rc;
    for (size_t i = 0; i < sizeof hw / sizeof hw[0]; i++) {
        const cJSON *v = api_member(o, hw[i]);
        char p[API_PARAM_LEN];
        if (!v)
            continue;
        api_param(p, "options.%s", hw[i]);
        if (!cJSON_IsNumber(v) && !cJSON_IsBool(v))
            return api_error_set(e, 400, "invalid_type", p,
                                 "invalid type for '%s': expected a number or a boolean", p);
        if (i < n_hw)
            r->ignored |= API_IGNORED_HW_OPTIONS;
    }
    return 0;
}

/* format: "json", "" (none) or a JSON Schema object. */
static int parse_format(const cJSON *root, struct api_gen_request *r, struct api_error *e)
{
    const cJSON *f = api_member(root, "format");

    if (!f)
        return 0;
    if (cJSON_IsString(f)) {
        if (f->valuestring[0] == '\0')
            return 0;
        if (strcmp(f->valuestring, "json") == 0) {
            r->format = API_FORMAT_JSON;
            return 0;
        }
        return api_error_set(e, 400, "invalid_value", "format",
                             "invalid value for 'format': expected \"json\" or a JSON schema "
                             "object, got \"%.32s\"",
                             f->valuestring);
    }
    if (!cJSON_IsObject(f))
        return api_error_set(e, 400, "invalid_type", "format",
                             "invalid type for 'format': expected \"json\" or a JSON schema "
                             "object");
    r->format = API_FORMAT_JSON_SCHEMA;
    r->json_schema = f;
    return 0;
}

/* think: true/false, or "low", "medium", "high", "max" (api.ThinkValue). */
static int parse_think(const cJSON *root, struct api_gen_request *r, struct api_error *e)
{
    static const char *const levels[] = {"low", "medium", "high", "max"};
    const cJSON *t = api_member(root, "think");

    if (!t)
        return 0;
    if (cJSON_IsBool(t)) {
        r->think = cJSON_IsTrue(t) ? API_THINK_ON : API_THINK_OFF;
        return 0;
    }
    if (cJSON_IsString(t)) {
        for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
            if (strcmp(t->valuestring, levels[i]) == 0) {
                r->think = API_THINK_ON;
                r->think_level = levels[i];
                return 0;
            }
        }
    }
    return api_error_set(e, 400, "invalid_value", "think",
                         "invalid value for 'think': expected true, false, \"low\", "
                         "\"medium\", \"high\" or \"max\"");
}

/* What /api/chat and /api/generate share. */
static int parse_common(const cJSON *root, struct api_gen_request *r, struct api_error *e)
{
    const cJSON *ka = api_member(root, "keep_alive");
    bool has = false, stream = true, b = false;
    int64_t top = 0;
    int rc;

    if ((rc = api_parse_model(root, r, e)) || (rc = parse_options(root, r, e)) ||
        (rc = parse_format(root, r, e)) || (rc = parse_think(root, r, e)) ||
        (rc = api_get_bool(root, "stream", "stream", NULL, &stream, e)) ||
        (rc = api_get_bool(root, "logprobs", "logprobs", NULL, &r->logprobs, e)) ||
        (rc = api_get_int(root, "top_logprobs", "top_logprobs", 0, API_MAX_TOP_LOGPROBS, &has, &top,
                          e)) ||
        (rc = api_get_bool(root, "truncate", "truncate", NULL, &b, e)) ||
        (rc = api_get_bool(root, "shift", "shift", NULL, &b, e)) ||
        (rc = nonempty_array_refused(root, "images", "images", "shoal serves text models", e)))
        return rc;
    r->stream = stream; /* Ollama streams unless told "stream": false */
    r->top_logprobs = (int)top;
    if (ka) {
        if (!api_duration_valid(ka))
            return api_error_set(e, 400, "invalid_value", "keep_alive",
                                 "invalid value for 'keep_alive': expected seconds or a "
                                 "duration like \"5m\"");
        r->ignored |= API_IGNORED_KEEP_ALIVE;
    }
    return 0;
}

/* One Ollama tool call: arguments come as an object already. */
static int
tool_call_norm(const cJSON *tc, const char *param, int j, cJSON **norm, struct api_error *e)
{
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
    const cJSON *args = api_member(fn, "arguments");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(tc, "id");
    char p[API_PARAM_LEN];
    cJSON *copy;

    api_param(p, "%s[%d]", param, j);
    if (!cJSON_IsObject(tc) || !cJSON_IsObject(fn) || !cJSON_IsString(name) ||
        (args && !cJSON_IsObject(args)) || (id && !cJSON_IsString(id)))
        return api_error_set(e, 400, "invalid_type", p,
                             "invalid type for '%s': expected {\"function\": {\"name\": "
                             "string, \"arguments\": object}}",
                             p);
    copy = args ? cJSON_Duplicate(args, 1) : cJSON_CreateObject();
    *norm = api_norm_tool_call(id ? id->valuestring : NULL, name->valuestring, copy);
    if (!*norm)
        return api_error_set(e, 500, NULL, NULL, "out of memory");
    return 0;
}

static int parse_message(struct api_gen_request *r, const cJSON *m, int i, struct api_error *e)
{
    static const char *const roles[] = {"system", "user", "assistant", "tool"};
    const char *role = NULL, *content = NULL, *thinking = NULL, *tool_name = NULL;
    const char *tcid = NULL;
    char p[API_PARAM_LEN], lower[16];
    cJSON *tool_calls = NULL;
    const char *canon = NULL;
    int rc;

    if ((rc = api_message_role(m, i, &role, e)))
        return rc;
    /* Ollama lower-cases roles (Message.UnmarshalJSON). */
    snprintf(lower, sizeof lower, "%s", role);
    for (char *c = lower; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    for (size_t k = 0; k < sizeof roles / sizeof roles[0]; k++)
        if (strlen(role) < sizeof lower && strcmp(lower, roles[k]) == 0)
            canon = roles[k];
    api_param(p, "messages[%d].role", i);
    if (!canon)
        return api_error_set(e, 400, "invalid_value", p,
                             "invalid value for '%s': \"%.32s\" is not one of system, user, "
                             "assistant, tool",
                             p, role);
    api_param(p, "messages[%d].content", i);
    if ((rc = api_get_str(m, "content", p, &content, e)))
        return rc;
    api_param(p, "messages[%d].thinking", i);
    if ((rc = api_get_str(m, "thinking", p, &thinking, e)))
        return rc;
    api_param(p, "messages[%d].tool_name", i);
    if ((rc = api_get_str(m, "tool_name", p, &tool_name, e)))
        return rc;
    api_param(p, "messages[%d].tool_call_id", i);
    if ((rc = api_get_str(m, "tool_call_id", p, &tcid, e)))
        return rc;
    api_param(p, "messages[%d].images", i);
    if ((rc = nonempty_array_refused(m, "images", p, "shoal serves text models", e)))
        return rc;
    api_param(p, "messages[%d].tool_calls", i);
    if ((rc = api_tool_calls_norm(api_member(m, "tool_calls"), p, tool_call_norm, &tool_calls, e)))
        return rc;
    return api_add_message(r, canon, content, canon[0] == 'a' ? thinking : NULL, tool_calls, tcid,
                           tool_name, e);
}

static int parse_chat_root(const cJSON *root, struct api_gen_request *r, struct api_error *e)
{
    const cJSON *msgs = api_member(root, "messages"), *m;
    int i = 0, rc;

    if ((rc = parse_common(root, r, e)) ||
        (rc = api_parse_tools(api_member(root, "tools"), "tools", r, e)))
        return rc;
    r->tool_choice = r->tools ? API_TOOL_CHOICE_AUTO : API_TOOL_CHOICE_NONE;
    if (!msgs) /* no messages: Ollama's "load the model" request */
        return 0;
    if (!cJSON_IsArray(msgs))
        return api_error_set(e, 400, "invalid_type", "messages",
                             "invalid type for 'messages': expected an array");
    cJSON_ArrayForEach(m, msgs)
    {
        if ((rc = parse_message(r, m, i++, e)))
            return rc;
    }
    return 0;
}

int api_ollama_parse_chat(const char *body,
                          size_t len,
                          struct api_gen_request *out,
                          struct api_error *e)
{
    return api_parse_request(body, len, API_DIALECT_OLLAMA, API_GEN_CHAT, parse_chat_root, out, e);
}

static int parse_generate_root(const cJSON *root, struct api_gen_request *r, struct api_error *e)
{
    const char *prompt = NULL, *system = NULL, *template = NULL, *suffix = NULL;
    bool raw = false;
    int rc;

    if ((rc = parse_common(root, r, e)) ||
        (rc = api_get_str(root, "prompt", "prompt", &prompt, e)) ||
        (rc = api_get_str(root, "system", "system", &system, e)) ||
        (rc = api_get_str(root, "template", "template", &template, e)) ||
        (rc = api_get_str(root, "suffix", "suffix", &suffix, e)) ||
        (rc = api_get_bool(root, "raw", "raw", NULL, &raw, e)) ||
        (rc = nonempty_array_refused(root, "context", "context",
                                     "send the conversation to /api/chat instead", e)))
        return rc;
    if (suffix && *suffix)
        return api_unsupported(e, "suffix", "fill-in-the-middle is not implemented");
    if (template && *template)
        r->ignored |= API_IGNORED_TEMPLATE;
    if (raw && ((system && *system) || (template && *template)))
        return api_error_set(e, 400, "invalid_value", "raw",
                             "raw mode does not support template, system, or context");
    if (!prompt || !*prompt) /* no prompt: Ollama's "load the model" request */
        return 0;
    if (raw) {
        r->kind = API_GEN_COMPLETION;
        r->prompt = prompt;
        return 0;
    }
    /* Not raw: the prompt is a user turn rendered by the chat template. */
    if (system && *system && (rc = api_add_message(r, "system", system, NULL, NULL, NULL, NULL, e)))
        return rc;
    return api_add_message(r, "user", prompt, NULL, NULL, NULL, NULL, e);
}

int api_ollama_parse_generate(const char *body,
                              size_t len,
                              struct api_gen_request *out,
                              struct api_error *e)
{
    return api_parse_request(body, len, API_DIALECT_OLLAMA, API_GEN_CHAT, parse_generate_root, out,
                             e);
}

int api_ollama_parse_show(const char *body,
                          size_t len,
                          cJSON **root,
                          const char **model,
                          bool *verbose,
                          struct api_error *e)
{
    struct api_gen_request tmp;
    const cJSON *name;
    int rc;

    *model = NULL;
    *verbose = false;
    if ((rc = api_body_parse(body, len, root, e)))
        return rc;
    api_gen_request_init(&tmp, API_DIALECT_OLLAMA, API_GEN_CHAT);
    /* "name" is the pre-0.1.x spelling Ollama still accepts. */
    name = api_member(*root, "model") ? NULL : api_member(*root, "name");
    if (name && cJSON_IsString(name))
        cJSON_AddItemToObject(*root, "model", cJSON_CreateString(name->valuestring));
    if ((rc = api_parse_model(*root, &tmp, e)) ||
        (rc = api_get_bool(*root, "verbose", "verbose", NULL, verbose, e))) {
        cJSON_Delete(*root);
        *root = NULL;
        return rc;
    }
    *model = tmp.model;
    return 0;
}
