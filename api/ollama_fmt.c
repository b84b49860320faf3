/* api/ollama_fmt.c: Ollama response objects as api/types.go and the
 * ollama-js interfaces define them: /api/chat and /api/generate lines and
 * final objects (durations in nanoseconds; "context" is never sent: it is
 * deprecated in Ollama and shoal keeps no token history per client),
 * /api/tags, /api/ps, /api/show, /api/version. Pure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "common/json.h"

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

/* arguments go out as a JSON object; text that is not one (a backend bug)
 * goes out as a string rather than being dropped. */
cJSON *api_oll_tool_call(const struct api_tool_call *tc, size_t index)
{
    cJSON *o = cJSON_CreateObject(), *fn, *args = NULL;
    const char *text = tc->arguments ? tc->arguments : "{}";

    if (sh_json_parse(text, strlen(text), "arguments", &args, NULL) == 0 && !cJSON_IsObject(args)) {
        cJSON_Delete(args);
        args = NULL;
    }
    if (!args)
        args = cJSON_CreateString(text);
    if (!o || !args || (tc->id && !cJSON_AddStringToObject(o, "id", tc->id)) ||
        !(fn = cJSON_AddObjectToObject(o, "function")) ||
        !cJSON_AddNumberToObject(fn, "index", (double)index) ||
        !cJSON_AddStringToObject(fn, "name", str_or_empty(tc->name))) {
        cJSON_Delete(args);
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddItemToObject(fn, "arguments", args);
    return o;
}

cJSON *api_oll_logprob(const struct api_token_logprob *lp)
{
    return api_logprob_entry(lp, false);
}

static cJSON *head(const struct api_resp_meta *m)
{
    cJSON *o = cJSON_CreateObject();

    if (!o || !cJSON_AddStringToObject(o, "model", m->model) ||
        !cJSON_AddStringToObject(o, "created_at", m->created_at)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static bool add_message(cJSON *o, const struct api_oll_message *msg)
{
    cJSON *mo = cJSON_AddObjectToObject(o, "message");

    if (!mo || !cJSON_AddStringToObject(mo, "role", "assistant") ||
        !cJSON_AddStringToObject(mo, "content", str_or_empty(msg->content)))
        return false;
    if (msg->thinking && *msg->thinking && !cJSON_AddStringToObject(mo, "thinking", msg->thinking))
        return false;
    if (msg->tool_calls && cJSON_GetArraySize(msg->tool_calls) > 0 &&
        !api_json_add_dup(mo, "tool_calls", msg->tool_calls))
        return false;
    return true;
}

/* done, done_reason, logprobs, then api.Metrics in its field order. */
static bool
add_tail(cJSON *o, const cJSON *logprobs, const struct api_gen_result *res, uint64_t total_ns)
{
    if (!cJSON_AddBoolToObject(o, "done", true) ||
        !cJSON_AddStringToObject(o, "done_reason", res ? api_finish_ollama(res->finish) : "load"))
        return false;
    if (logprobs && cJSON_GetArraySize(logprobs) > 0 && !api_json_add_dup(o, "logprobs", logprobs))
        return false;
    if (!res)
        return true;
    return cJSON_AddNumberToObject(o, "total_duration", (double)total_ns) &&
           cJSON_AddNumberToObject(o, "load_duration", (double)res->load_ns) &&
           cJSON_AddNumberToObject(o, "prompt_eval_count", (double)res->prompt_tokens) &&
           cJSON_AddNumberToObject(o, "prompt_eval_duration", (double)res->prompt_eval_ns) &&
           cJSON_AddNumberToObject(o, "eval_count", (double)res->completion_tokens) &&
           cJSON_AddNumberToObject(o, "eval_duration", (double)res->eval_ns);
}

cJSON *api_oll_chat_line(const struct api_resp_meta *m,
                         const struct api_oll_message *msg,
                         const cJSON *logprobs)
{
    cJSON *o = head(m);

    if (!o || !add_message(o, msg) || !cJSON_AddBoolToObject(o, "done", false) ||
        (logprobs && cJSON_GetArraySize(logprobs) > 0 &&
         !api_json_add_dup(o, "logprobs", logprobs))) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *api_oll_chat_final(const struct api_resp_meta *m,
                          const struct api_oll_message *msg,
                          const cJSON *logprobs,
                          const struct api_gen_result *res,
                          uint64_t total_ns)
{
    cJSON *o = head(m);

    if (!o || !add_message(o, msg) || !add_tail(o, logprobs, res, total_ns)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static bool add_response(cJSON *o, const char *response, const char *thinking)
{
    return cJSON_AddStringToObject(o, "response", str_or_empty(response)) &&
           (!thinking || !*thinking || cJSON_AddStringToObject(o, "thinking", thinking));
}

cJSON *api_oll_generate_line(const struct api_resp_meta *m,
                             const char *response,
                             const char *thinking,
                             const cJSON *logprobs)
{
    cJSON *o = head(m);

    if (!o || !add_response(o, response, thinking) || !cJSON_AddBoolToObject(o, "done", false) ||
        (logprobs && cJSON_GetArraySize(logprobs) > 0 &&
         !api_json_add_dup(o, "logprobs", logprobs))) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *api_oll_generate_final(const struct api_resp_meta *m,
                              const char *response,
                              const char *thinking,
                              const cJSON *logprobs,
                              const struct api_gen_result *res,
                              uint64_t total_ns)
{
    cJSON *o = head(m);

    if (!o || !add_response(o, response, thinking) || !add_tail(o, logprobs, res, total_ns)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---- model listings -------------------------------------------------------- */

static cJSON *details(const struct api_model_info *mi)
{
    cJSON *d = cJSON_CreateObject(), *fam;
    char ps[32];

    api_human_number(mi->n_params, ps, sizeof ps);
    if (!d || !cJSON_AddStringToObject(d, "parent_model", "") ||
        !cJSON_AddStringToObject(d, "format", str_or_empty(mi->format)) ||
        !cJSON_AddStringToObject(d, "family", str_or_empty(mi->family)) ||
        !(fam = cJSON_AddArrayToObject(d, "families")) ||
        (mi->family && !api_json_push(fam, cJSON_CreateString(mi->family))) ||
        !cJSON_AddStringToObject(d, "parameter_size", ps) ||
        !cJSON_AddStringToObject(d, "quantization_level", str_or_empty(mi->quantization))) {
        cJSON_Delete(d);
        return NULL;
    }
    return d;
}

/* name, model, [modified_at], size, digest, details. */
static cJSON *model_entry(const struct api_model_info *mi, bool with_modified)
{
    cJSON *o = cJSON_CreateObject(), *d = details(mi);
    char name[API_MAX_MODEL_NAME + 16], when[API_RFC3339_LEN];

    api_ollama_name(mi->id, name, sizeof name);
    api_rfc3339_nano(mi->modified_unix, 0, when);
    if (!o || !d || !cJSON_AddStringToObject(o, "name", name) ||
        !cJSON_AddStringToObject(o, "model", name) ||
        (with_modified && !cJSON_AddStringToObject(o, "modified_at", when)) ||
        !cJSON_AddNumberToObject(o, "size", (double)mi->size_bytes) ||
        !cJSON_AddStringToObject(o, "digest", str_or_empty(mi->digest))) {
        cJSON_Delete(d);
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddItemToObject(o, "details", d);
    return o;
}

cJSON *api_oll_tags(const struct api_model_info *models, size_t n)
{
    cJSON *o = cJSON_CreateObject(), *arr;

    if (!o || !(arr = cJSON_AddArrayToObject(o, "models")))
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (!api_json_push(arr, model_entry(&models[i], true)))
            goto fail;
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

/* A model that stays loaded expires "never": the latest time Go prints. */
#define NEVER_UNIX 253402300799LL /* 9999-12-31T23:59:59Z */

cJSON *api_oll_ps(const struct api_model_info *models, size_t n)
{
    cJSON *o = cJSON_CreateObject(), *arr;
    char when[API_RFC3339_LEN];

    if (!o || !(arr = cJSON_AddArrayToObject(o, "models")))
        goto fail;
    for (size_t i = 0; i < n; i++) {
        cJSON *e;
        if (!models[i].loaded)
            continue;
        if (!api_json_push(arr, e = model_entry(&models[i], false)))
            goto fail;
        api_rfc3339_nano(models[i].expires_unix > 0 ? models[i].expires_unix : NEVER_UNIX, 0, when);
        if (!cJSON_AddStringToObject(e, "expires_at", when) ||
            !cJSON_AddNumberToObject(e, "size_vram", (double)models[i].size_vram) ||
            !cJSON_AddNumberToObject(e, "context_length", models[i].context_length))
            goto fail;
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

static bool info_num(cJSON *mi, const char *family, const char *key, double v)
{
    char k[128];

    if (v <= 0)
        return true;
    snprintf(k, sizeof k, "%s.%s", family, key);
    return cJSON_AddNumberToObject(mi, k, v) != NULL;
}

static cJSON *model_info(const struct api_model_info *m)
{
    const char *fam = m->family && *m->family ? m->family : "general";
    cJSON *o = cJSON_CreateObject();

    if (!o || !cJSON_AddStringToObject(o, "general.architecture", str_or_empty(m->family)) ||
        !cJSON_AddStringToObject(o, "general.basename", m->id) ||
        !cJSON_AddNumberToObject(o, "general.parameter_count", (double)m->n_params) ||
        !info_num(o, fam, "context_length", m->context_length) ||
        !info_num(o, fam, "embedding_length", m->embedding_length) ||
        !info_num(o, fam, "block_count", m->n_layers) ||
        !info_num(o, fam, "attention.head_count", m->n_heads) ||
        !info_num(o, fam, "attention.head_count_kv", m->n_kv_heads) ||
        !info_num(o, fam, "vocab_size", m->vocab_size)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* "parameters" as `ollama show` prints them: "%-30s %v" lines. */
static int parameters_text(const struct api_sampling *d, struct sh_strbuf *sb)
{
    int rc = 0;

    if (!d)
        return 0;
    if (d->has_temperature)
        rc = rc ? rc : sh_strbuf_printf(sb, "%-30s %g\n", "temperature", d->temperature);
    if (d->has_top_p)
        rc = rc ? rc : sh_strbuf_printf(sb, "%-30s %g\n", "top_p", d->top_p);
    if (d->has_top_k)
        rc = rc ? rc : sh_strbuf_printf(sb, "%-30s %d\n", "top_k", d->top_k);
    if (d->has_min_p)
        rc = rc ? rc : sh_strbuf_printf(sb, "%-30s %g\n", "min_p", d->min_p);
    if (d->has_repetition_penalty)
        rc = rc ? rc : sh_strbuf_printf(sb, "%-30s %g\n", "repeat_penalty", d->repetition_penalty);
    if (sb->len > 0) /* no trailing newline, as Ollama joins with "\n" */
        sb->buf[--sb->len] = '\0';
    return rc;
}

cJSON *api_oll_show(const struct api_model_info *mi, bool verbose)
{
    struct sh_strbuf params, mf;
    cJSON *o = cJSON_CreateObject(), *caps, *d = NULL, *info = NULL;
    char when[API_RFC3339_LEN];
    bool ok;

    (void)verbose; /* no tensor list: there is no GGUF to read it from */
    sh_strbuf_init(&params, 1 << 16);
    sh_strbuf_init(&mf, 4u << 20);
    api_rfc3339_nano(mi->modified_unix, 0, when);
    ok = o && parameters_text(mi->defaults, &params) == 0 &&
         sh_strbuf_printf(&mf, "# Modelfile generated by shoal\nFROM %s\n", mi->id) == 0 &&
         (!mi->chat_template || !*mi->chat_template ||
          sh_strbuf_printf(&mf, "TEMPLATE \"\"\"%s\"\"\"\n", mi->chat_template) == 0);
    for (size_t i = 0; ok && params.buf && i < params.len;) {
        const char *nl = memchr(params.buf + i, '\n', params.len - i);
        size_t n = nl ? (size_t)(nl - params.buf) - i : params.len - i;
        ok = sh_strbuf_printf(&mf, "PARAMETER %.*s\n", (int)n, params.buf + i) == 0;
        i += n + 1;
    }
    ok = ok && cJSON_AddStringToObject(o, "license", "") &&
         cJSON_AddStringToObject(o, "modelfile", mf.buf ? mf.buf : "") &&
         cJSON_AddStringToObject(o, "parameters", params.buf ? params.buf : "") &&
         cJSON_AddStringToObject(o, "template", str_or_empty(mi->chat_template)) &&
         (d = details(mi)) != NULL;
    if (ok) {
        cJSON_AddItemToObject(o, "details", d);
        ok = (info = model_info(mi)) != NULL;
    } else {
        cJSON_Delete(d);
    }
    if (ok) {
        cJSON_AddItemToObject(o, "model_info", info);
        ok = (caps = cJSON_AddArrayToObject(o, "capabilities")) != NULL &&
             api_json_push(caps, cJSON_CreateString("completion")) &&
             (!(mi->caps & API_CAP_TOOLS) || api_json_push(caps, cJSON_CreateString("tools"))) &&
             (!(mi->caps & API_CAP_THINKING) ||
              api_json_push(caps, cJSON_CreateString("thinking"))) &&
             cJSON_AddStringToObject(o, "modified_at", when);
    }
    sh_strbuf_free(&params);
    sh_strbuf_free(&mf);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *api_oll_version(const char *version)
{
    cJSON *o = cJSON_CreateObject();

    if (!o || !cJSON_AddStringToObject(o, "version", version)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}
