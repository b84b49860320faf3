/* api/openai.c: OpenAI request bodies (POST /v1/chat/completions and
 * /v1/completions) -> struct api_gen_request, every parameter type- and
 * range-checked, errors naming the parameter as OpenAI does. Pure.
 *
 * Field meanings follow openai-node's ChatCompletionCreateParams and
 * CompletionCreateParams. Accepted but without effect: user, store,
 * metadata, service_tier, prediction (hints). Refused with a 400 naming the
 * parameter: n/best_of other than 1, functions/function_call (use tools),
 * a non-empty logit_bias, audio, non-text content parts, echo, suffix,
 * prompts given as token ids or several strings.
 */
#include <stdio.h>
#include <string.h>

#include "api/internal.h"
#include "common/json.h"

/* OpenAI's legacy completions default when max_tokens is absent. */
#define OAI_COMPLETION_DEFAULT_MAX_TOKENS 16
#define OAI_MAX_TOKENS_CAP                (1 << 30)

/* Sampling and output parameters common to both endpoints. */
static int parse_sampling(const cJSON *root, struct api_gen_request *r, struct api_error *e)
{
    struct api_sampling *s = &r->sampling;
    int64_t n = 0;
    bool has = false;
    double rp = 0;
    const char *user = NULL;
    int rc;

    if ((rc = api_get_num(root, "temperature", "temperature", 0, 2, &s->has_temperature,
                          &s->temperature, e)) ||
        (rc = api_get_num(root, "top_p", "top_p", 0, 1, &s->has_top_p, &s->top_p, e)) ||
        (rc = api_get_num(root, "min_p", "min_p", 0, 1, &s->has_min_p, &s->min_p, e)) ||
        (rc = api_get_num(root, "presence_penalty", "presence_penalty", -2, 2,
                          &s->has_presence_penalty, &s->presence_penalty, e)) ||
        (rc = api_get_num(root, "frequency_penalty", "frequency_penalty", -2, 2,
                          &s->has_frequency_penalty, &s->frequency_penalty, e)) ||
        (rc = api_get_num(root, "repetition_penalty", "repetition_penalty", 0, 10, &has, &rp, e)) ||
        (rc = api_get_seed(root, "seed", "seed", &s->has_seed, &s->seed, e)))
        return rc;
    if (has && rp <= 0)
        return api_error_set(e, 400, "invalid_value", "repetition_penalty",
                             "invalid value for 'repetition_penalty': must be > 0");
    s->has_repetition_penalty = has;
    s->repetition_penalty = rp;
    /* top_k is a vLLM/llama.cpp extension; -1 there means off. */
    has = false;
    if ((rc = api_get_int(root, "top_k", "top_k", -1, 1000000, &has, &n, e)))
        return rc;
    if (has) {
        s->has_top_k = true;
        s->top_k = n < 0 ? 0 : (int)n;
    }
    has = false;
    if ((rc = api_get_int(root, "n", "n", -(1 << 30), 1 << 30, &has, &n, e)))
        return rc;
    if (has && n != 1)
        return api_error_set(e, 400, "unsupported_value", "n",
                             "invalid value for 'n': only n=1 is supported");
    if ((rc = api_get_bool(root, "stream", "stream", NULL, &r->stream, e)) ||
        (rc = api_parse_stop(api_member(root, "stop"), "stop", r, e)) ||
        (rc = api_get_str(root, "user", "user", &user, e)))
        return rc;
    if (user)
        r->ignored |= API_IGNORED_USER;
    if (api_member(root, "stream_options")) {
        const cJSON *so = api_member(root, "stream_options");
        if (!cJSON_IsObject(so))
            return api_error_set(e, 400, "invalid_type", "stream_options",
                                 "invalid type for 'stream_options': expected an object");
        if ((rc = api_get_bool(so, "include_usage", "stream_options.include_usage", NULL,
                               &r->include_usage, e)))
            return rc;
    }
    if (api_member(root, "logit_bias")) {
        const cJSON *lb = api_member(root, "logit_bias");
        if (!cJSON_IsObject(lb))
            return api_error_set(e, 400, "invalid_type", "logit_bias",
                                 "invalid type for 'logit_bias': expected an object");
        if (lb->child)
            return api_unsupported(e, "logit_bias", "token biases are not implemented");
    }
    return 0;
}

/* max_completion_tokens wins over the deprecated max_tokens. */
static int parse_max_tokens(const cJSON *root, struct api_gen_request *r, struct api_error *e)
{
    int64_t v = 0;
    bool has = false;
    int rc;

    if ((rc = api_get_int(root, "max_tokens", "max_tokens", 1, OAI_MAX_TOKENS_CAP, &has, &v, e)))
        return rc;
    if ((rc = api_get_int(root, "max_completion_tokens", "max_completion_tokens", 1,
                          OAI_MAX_TOKENS_CAP, &has, &v, e)))
        return rc;
    if (has)
        r->max_tokens = v;
    return 0;
}

/* Text of a content value: a string, or text parts joined with "\n" (as
 * vLLM does). Absent/null gives NULL. */
static int content_text(const cJSON *c,
                        const char *param,
                        bool allow_refusal,
                        struct sh_strbuf *sb,
                        const char **out,
                        struct api_error *e)
{
    const cJSON *part;
    char p[API_PARAM_LEN];
    int j = 0;

    *out = NULL;
    if (!c)
        return 0;
    if (cJSON_IsString(c)) {
        *out = c->valuestring;
        return 0;
    }
    if (!cJSON_IsArray(c))
        return api_error_set(e, 400, "invalid_type", param,
                             "invalid type for '%s': expected a string or an array of "
                             "content parts",
                             param);
    sh_strbuf_reset(sb);
    cJSON_ArrayForEach(part, c)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text;
        const char *key = "text";

        api_param(p, "%s[%d].type", param, j);
        if (!cJSON_IsObject(part) || !cJSON_IsString(type))
            return api_error_set(e, 400, "invalid_type", p,
                                 "invalid type for '%s': expected a content part with a type", p);
        if (allow_refusal && strcmp(type->valuestring, "refusal") == 0)
            key = "refusal";
        else if (strcmp(type->valuestring, "text") != 0)
            return api_error_set(e, 400, "unsupported_value", p,
                                 "invalid value for '%s': only text content parts are "
                                 "supported, got \"%.32s\"",
                                 p, type->valuestring);
        text = cJSON_GetObjectItemCaseSensitive(part, key);
        api_param(p, "%s[%d].%s", param, j, key);
        if (!cJSON_IsString(text))
            return api_error_set(e, 400, "invalid_type", p,
                                 "invalid type for '%s': expected a string", p);
        if ((j > 0 && sh_strbuf_puts(sb, "\n")) || sh_strbuf_puts(sb, text->valuestring))
            return api_error_set(e, 500, NULL, NULL, "out of memory");
        j++;
    }
    *out = sb->buf ? sb->buf : "";
    return 0;
}

/* One tool call of an assistant message -> normalized (arguments, a JSON
 * text, parsed). */
static int
tool_call_norm(const cJSON *tc, const char *param, int j, cJSON **norm, struct api_error *e)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(tc, "id");
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
    cJSON *parsed = NULL;
    char p[API_PARAM_LEN];

    api_param(p, "%s[%d]", param, j);
    if (!cJSON_IsObject(tc) || !cJSON_IsString(id) || !cJSON_IsObject(fn) || !cJSON_IsString(name))
        return api_error_set(e, 400, "invalid_type", p,
                             "invalid type for '%s': expected {\"id\", \"type\": "
                             "\"function\", \"function\": {\"name\", \"arguments\"}}",
                             p);
    api_param(p, "%s[%d].function.arguments", param, j);
    if (!args || (cJSON_IsString(args) && args->valuestring[0] == '\0'))
        parsed = cJSON_CreateObject();
    else if (cJSON_IsString(args))
        sh_json_parse(args->valuestring, strlen(args->valuestring), p, &parsed, NULL);
    if (!parsed || !cJSON_IsObject(parsed)) {
        cJSON_Delete(parsed);
        return api_error_set(e, 400, "invalid_value", p,
                             "invalid value for '%s': expected a JSON object as a string", p);
    }
    if (!(*norm = api_norm_tool_call(id->valuestring, name->valuestring, parsed)))
        return api_error_set(e, 500, NULL, NULL, "out of memory");
    return 0;
}

/* The function name a tool message answers, from the assistant message
 * whose tool call had this id (templates print it). */
static const char *tool_name_for(const cJSON *msgs, const char *id)
{
    const cJSON *m, *tc;

    cJSON_ArrayForEach(m, msgs)
    {
        cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(m, "tool_calls"))
        {
            const cJSON *tid = cJSON_GetObjectItemCaseSensitive(tc, "id");
            if (cJSON_IsString(tid) && strcmp(tid->valuestring, id) == 0)
                return cJSON_GetObjectItemCaseSensitive(
                           cJSON_GetObjectItemCaseSensitive(tc, "function"), "name")
                    ->valuestring;
        }
    }
    return NULL;
}

static int parse_message(
    struct api_gen_request *r, const cJSON *m, int i, struct sh_strbuf *sb, struct api_error *e)
{
    static const char *const roles[] = {"system", "developer", "user", "assistant", "tool"};
    const char *role = NULL, *content = NULL, *name = NULL, *reasoning = NULL, *tcid = NULL;
    cJSON *tool_calls = NULL;
    char p[API_PARAM_LEN];
    bool known = false;
    int rc;

    if ((rc = api_message_role(m, i, &role, e)))
        return rc;
    for (size_t k = 0; k < sizeof roles / sizeof roles[0]; k++)
        known |= strcmp(role, roles[k]) == 0;
    api_param(p, "messages[%d].role", i);
    if (!known)
        return api_error_set(e, 400, "invalid_value", p,
                             "invalid value for '%s': \"%.32s\" is not one of system, "
                             "developer, user, assistant, tool",
                             p, role);
    api_param(p, "messages[%d].name", i);
    if ((rc = api_get_str(m, "name", p, &name, e)))
        return rc;
    api_param(p, "messages[%d].content", i);
    if ((rc = content_text(api_member(m, "content"), p, strcmp(role, "assistant") == 0, sb,
                           &content, e)))
        return rc;
    if (!content && strcmp(role, "assistant") != 0)
        return api_error_set(e, 400, "missing_required_parameter", p,
                             "missing required parameter: '%s'", p);
    if (strcmp(role, "assistant") == 0) {
        api_param(p, "messages[%d].reasoning_content", i);
        if ((rc = api_get_str(m, "reasoning_content", p, &reasoning, e)))
            return rc;
        api_param(p, "messages[%d].reasoning", i);
        if (!reasoning && (rc = api_get_str(m, "reasoning", p, &reasoning, e)))
            return rc;
        api_param(p, "messages[%d].tool_calls", i);
        if ((rc = api_tool_calls_norm(api_member(m, "tool_calls"), p, tool_call_norm, &tool_calls,
                                      e)))
            return rc;
    } else if (strcmp(role, "tool") == 0) {
        api_param(p, "messages[%d].tool_call_id", i);
        if ((rc = api_get_str(m, "tool_call_id", p, &tcid, e)))
            return rc;
        if (!tcid)
            return api_error_set(e, 400, "missing_required_parameter", p,
                                 "missing required parameter: '%s'", p);
        if (!name)
            name = tool_name_for(r->messages, tcid);
    }
    if (strcmp(role, "developer") == 0)
        role = "system";
    return api_add_message(r, role, content, reasoning, tool_calls, tcid, name, e);
}

static int parse_messages(const cJSON *root, struct api_gen_request *r, struct api_error *e)
{
    const cJSON *msgs = api_member(root, "messages"), *m;
    struct sh_strbuf sb;
    int i = 0, rc = 0;

    if (!msgs)
        return api_error_set(e, 400, "missing_required_parameter", "messages",
                             "missing required parameter: 'messages'");
    if (!cJSON_IsArray(msgs))
        return api_error_set(e, 400, "invalid_type", "messages",
                             "invalid type for 'messages': expected an array");
    if (!msgs->child)
        return api_error_set(e, 400, "invalid_value", "messages",
                             "invalid value for 'messages': expected at least one message");
    sh_strbuf_init(&sb, SIZE_MAX);
    cJSON_ArrayForEach(m, msgs)
    {
        if ((rc = parse_message(r, m, i++, &sb, e)))
            break;
    }
    sh_strbuf_free(&sb);
    return rc;
}

static int tool_choice_named(const cJSON *tc, struct api_gen_request *r, struct api_error *e)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(tc, "type");
    const cJSON *name =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(tc, "function"), "name");
    const cJSON *t;

    if (!cJSON_IsString(type) || strcmp(type->valuestring, "function") != 0 ||
        !cJSON_IsString(name))
        return api_error_set(e, 400, "invalid_value", "tool_choice",
                             "invalid value for 'tool_choice': expected \"none\", \"auto\", "
                             "\"required\" or {\"type\": \"function\", \"function\": "
                             "{\"name\"}}");
    cJSON_ArrayForEach(t, r->tools)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(t, "function"), "name");
        if (strcmp(n->valuestring, name->valuestring) == 0) {
            r->tool_choice = API_TOOL_CHOICE_FUNCTION;
            r->tool_choice_name = name->valuestring;
            return 0;
        }
    }
    return api_error_set(e, 400, "invalid_value", "tool_choice",
                         "invalid value for 'tool_choice': no tool named \"%.64s\"",
                         name->valuestring);
}

static int parse_tools(const cJSON *root, struct api_gen_request *r, struct api_error *e)
{
    const cJSON *tc = api_member(root, "tool_choice");
    int rc;

    if (api_member(root, "functions") || api_member(root, "function_call"))
        return api_unsupported(e, api_member(root, "functions") ? "functions" : "function_call",
                               "deprecated, use 'tools' and 'tool_choice'");
    if ((rc = api_parse_tools(api_member(root, "tools"), "tools", r, e)) ||
        (rc = api_get_bool(root, "parallel_tool_calls", "parallel_tool_calls", NULL,
                           &r->parallel_tool_calls, e)))
        return rc;
    r->tool_choice = r->tools ? API_TOOL_CHOICE_AUTO : API_TOOL_CHOICE_NONE;
    if (!tc)
        return 0;
    if (cJSON_IsString(tc)) {
        if (strcmp(tc->valuestring, "none") == 0)
            r->tool_choice = API_TOOL_CHOICE_NONE;
        else if (strcmp(tc->valuestring, "auto") == 0)
            r->tool_choice = r->tools ? API_TOOL_CHOICE_AUTO : API_TOOL_CHOICE_NONE;
        else if (strcmp(tc->valuestring, "required") == 0)
            r->tool_choice = API_TOOL_CHOICE_REQUIRED;
        else
            return api_error_set(e, 400, "invalid_value", "tool_choice",
                                 "invalid value for 'tool_choice': \"%.32s\" is not none, "
                                 "auto or required",
                                 tc->valuestring);
    } else if (cJSON_IsObject(tc)) {
        if ((rc = tool_choice_named(tc, r, e)))
            return rc;
    } else {
        return api_error_set(e, 400, "invalid_type", "tool_choice",
                             "invalid type for 'tool_choice': expected a string or an object");
    }
    if (r->tool_choice >= API_TOOL_CHOICE_REQUIRED && !r->tools)
        return api_error_set(e, 400, "invalid_value", "tool_choice",
                             "invalid value for 'tool_choice': it needs 'tools'");
    return 0;
}

static int parse_response_format(const cJSON *root, struct api_gen_request *r, struct api_error *e)
{
    const cJSON *rf = api_member(root, "response_format"), *type, *schema;

    if (!rf)
        return 0;
    type = cJSON_GetObjectItemCaseSensitive(rf, "type");
    if (!cJSON_IsObject(rf) || !cJSON_IsString(type))
        return api_error_set(e, 400, "invalid_type", "response_format",
                             "invalid type for 'response_format': expected {\"type\": ...}");
    if (strcmp(type->valuestring, "text") == 0)
        return 0;
    if (strcmp(type->valuestring, "json_object") == 0) {
        r->format = API_FORMAT_JSON;
        return 0;
    }
    if (strcmp(type->valuestring, "json_schema") != 0)
        return api_error_set(e, 400, "invalid_value", "response_format.type",
                             "invalid value for 'response_format.type': \"%.32s\" is not "
                             "text, json_object or json_schema",
                             type->valuestring);
    schema = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rf, "json_schema"),
                                              "schema");
    if (!cJSON_IsObject(schema))
        return api_error_set(e, 400, "missing_required_parameter",
                             "response_format.json_schema.schema",
                             "missing required parameter: "
                             "'response_format.json_schema.schema' (an object)");
    r->format = API_FORMAT_JSON_SCHEMA;
    r->json_schema = schema;
    return 0;
}

/* reasoning_effort: "none" turns thinking off, a level turns it on (as
 * Ollama maps it: minimal -> low, xhigh -> max). */
static int parse_reasoning(const cJSON *root, struct api_gen_request *r, struct api_error *e)
{
    static const char *const map[][2] = {{"minimal", "low"}, {"low", "low"},   {"medium", "medium"},
                                         {"high", "high"},   {"xhigh", "max"}, {"max", "max"}};
    const char *effort = NULL;
    int rc;

    if ((rc = api_get_str(root, "reasoning_effort", "reasoning_effort", &effort, e)) || !effort)
        return rc;
    if (strcmp(effort, "none") == 0) {
        r->think = API_THINK_OFF;
        return 0;
    }
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp(effort, map[i][0]) == 0) {
            r->think = API_THINK_ON;
            r->think_level = map[i][1];
            return 0;
        }
    }
    return api_error_set(e, 400, "invalid_value", "reasoning_effort",
                         "invalid value for 'reasoning_effort': \"%.32s\" is not none, "
                         "minimal, low, medium, high or xhigh",
                         effort);
}

static int parse_chat_root(const cJSON *root, struct api_gen_request *r, struct api_error *e)
{
    bool has = false;
    int64_t top = 0;
    int rc;

    if ((rc = api_parse_model(root, r, e)) || (rc = parse_messages(root, r, e)) ||
        (rc = parse_sampling(root, r, e)) || (rc = parse_max_tokens(root, r, e)) ||
        (rc = parse_tools(root, r, e)) || (rc = parse_response_format(root, r, e)) ||
        (rc = parse_reasoning(root, r, e)) ||
        (rc = api_get_bool(root, "logprobs", "logprobs", NULL, &r->logprobs, e)) ||
        (rc = api_get_int(root, "top_logprobs", "top_logprobs", 0, API_MAX_TOP_LOGPROBS, &has, &top,
                          e)))
        return rc;
    if (has && top > 0 && !r->logprobs)
        return api_error_set(e, 400, "invalid_value", "top_logprobs",
                             "invalid value for 'top_logprobs': it needs 'logprobs': true");
    r->top_logprobs = (int)top;
    if (api_member(root, "audio"))
        return api_unsupported(e, "audio", "shoal answers with text only");
    if (api_member(root, "modalities")) {
        const cJSON *mo = api_member(root, "modalities"), *x;
        if (!cJSON_IsArray(mo))
            return api_error_set(e, 400, "invalid_type", "modalities",
                                 "invalid type for 'modalities': expected an array");
        cJSON_ArrayForEach(x, mo)
        {
            if (!cJSON_IsString(x) || strcmp(x->valuestring, "text") != 0)
                return api_unsupported(e, "modalities", "only [\"text\"] is available");
        }
    }
    return 0;
}

int api_openai_parse_chat(const char *body,
                          size_t len,
                          struct api_gen_request *out,
                          struct api_error *e)
{
    return api_parse_request(body, len, API_DIALECT_OPENAI, API_GEN_CHAT, parse_chat_root, out, e);
}

static int parse_prompt(const cJSON *root, struct api_gen_request *r, struct api_error *e)
{
    const cJSON *p = api_member(root, "prompt");

    if (!p)
        return api_error_set(e, 400, "missing_required_parameter", "prompt",
                             "missing required parameter: 'prompt'");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(p->child))
        p = p->child;
    if (cJSON_IsString(p)) {
        r->prompt = p->valuestring;
        return 0;
    }
    if (cJSON_IsArray(p))
        return api_unsupported(e, "prompt",
                               "only one prompt string (no batches, no token id arrays)");
    return api_error_set(e, 400, "invalid_type", "prompt",
                         "invalid type for 'prompt': expected a string");
}

static int parse_completion_root(const cJSON *root, struct api_gen_request *r, struct api_error *e)
{
    const char *suffix = NULL;
    bool echo = false, has = false;
    int64_t v = 0;
    int rc;

    if ((rc = api_parse_model(root, r, e)) || (rc = parse_prompt(root, r, e)) ||
        (rc = parse_sampling(root, r, e)) || (rc = parse_max_tokens(root, r, e)) ||
        (rc = api_get_str(root, "suffix", "suffix", &suffix, e)) ||
        (rc = api_get_bool(root, "echo", "echo", NULL, &echo, e)) ||
        (rc = api_get_int(root, "logprobs", "logprobs", 0, API_MAX_TOP_LOGPROBS, &has, &v, e)))
        return rc;
    if (r->max_tokens == API_MAX_TOKENS_UNSET)
        r->max_tokens = OAI_COMPLETION_DEFAULT_MAX_TOKENS;
    if (has) {
        r->logprobs = true;
        r->top_logprobs = (int)v;
    }
    if (suffix && *suffix)
        return api_unsupported(e, "suffix", "fill-in-the-middle is not implemented");
    if (echo)
        return api_unsupported(e, "echo", "the prompt is not echoed");
    has = false;
    if ((rc = api_get_int(root, "best_of", "best_of", -(1 << 30), 1 << 30, &has, &v, e)))
        return rc;
    if (has && v != 1)
        return api_error_set(e, 400, "unsupported_value", "best_of",
                             "invalid value for 'best_of': only best_of=1 is supported");
    return 0;
}

int api_openai_parse_completion(const char *body,
                                size_t len,
                                struct api_gen_request *out,
                                struct api_error *e)
{
    return api_parse_request(body, len, API_DIALECT_OPENAI, API_GEN_COMPLETION,
                             parse_completion_root, out, e);
}
