/* api/openai_fmt.c: OpenAI response objects, shaped as openai-node's types
 * read them: chat.completion, chat.completion.chunk, text_completion (whole
 * and streamed), the include_usage chunk, logprobs (chat's per-token
 * entries and the legacy completions object), model and model list. Pure:
 * ids, times and texts come in; strings given here are valid UTF-8.
 */
#include <stdlib.h>

#include "api/internal.h"

static cJSON *obj_head(const struct api_resp_meta *m, const char *object)
{
    cJSON *o = cJSON_CreateObject();

    if (!o || !cJSON_AddStringToObject(o, "id", m->id) ||
        !cJSON_AddStringToObject(o, "object", object) ||
        !cJSON_AddNumberToObject(o, "created", (double)m->created) ||
        !cJSON_AddStringToObject(o, "model", m->model)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static bool add_usage(cJSON *o, const struct api_gen_result *res)
{
    cJSON *u = cJSON_AddObjectToObject(o, "usage");

    return u && cJSON_AddNumberToObject(u, "prompt_tokens", (double)res->prompt_tokens) &&
           cJSON_AddNumberToObject(u, "completion_tokens", (double)res->completion_tokens) &&
           cJSON_AddNumberToObject(u, "total_tokens",
                                   (double)(res->prompt_tokens + res->completion_tokens));
}

/* Adds item (taken) to o under key; false (item freed) when item is NULL. */
static bool add_item(cJSON *o, const char *key, cJSON *item)
{
    if (!item)
        return false;
    cJSON_AddItemToObject(o, key, item);
    return true;
}

cJSON *api_oai_tool_call(const struct api_tool_call *tc, size_t index, bool with_index)
{
    cJSON *o = cJSON_CreateObject(), *fn;

    if (!o || (with_index && !cJSON_AddNumberToObject(o, "index", (double)index)) ||
        !cJSON_AddStringToObject(o, "id", tc->id ? tc->id : "") ||
        !cJSON_AddStringToObject(o, "type", "function") ||
        !(fn = cJSON_AddObjectToObject(o, "function")) ||
        !cJSON_AddStringToObject(fn, "name", tc->name ? tc->name : "") ||
        !cJSON_AddStringToObject(fn, "arguments", tc->arguments ? tc->arguments : "{}")) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *api_oai_logprob(const struct api_token_logprob *lp)
{
    return api_logprob_entry(lp, true);
}

cJSON *api_oai_legacy_logprobs_new(void)
{
    cJSON *o = cJSON_CreateObject();

    if (!o || !cJSON_AddArrayToObject(o, "tokens") ||
        !cJSON_AddArrayToObject(o, "token_logprobs") ||
        !cJSON_AddArrayToObject(o, "top_logprobs") || !cJSON_AddArrayToObject(o, "text_offset")) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* text_offset: byte offsets within the generated text (OpenAI counts from
 * the start of prompt + completion when echoing; shoal never echoes). */
int api_oai_legacy_logprobs_add(cJSON *obj,
                                const struct api_token_logprob *lps,
                                size_t n,
                                uint64_t *offset)
{
    cJSON *toks = cJSON_GetObjectItemCaseSensitive(obj, "tokens");
    cJSON *lp = cJSON_GetObjectItemCaseSensitive(obj, "token_logprobs");
    cJSON *top = cJSON_GetObjectItemCaseSensitive(obj, "top_logprobs");
    cJSON *off = cJSON_GetObjectItemCaseSensitive(obj, "text_offset");

    for (size_t i = 0; i < n; i++) {
        char *clean = api_utf8_clean(lps[i].token, lps[i].token_len);
        cJSON *alt = cJSON_CreateObject();
        bool ok = clean && alt && api_json_push(toks, cJSON_CreateString(clean)) &&
                  api_json_push(lp, cJSON_CreateNumber(lps[i].logprob)) &&
                  api_json_push(off, cJSON_CreateNumber((double)*offset));
        free(clean);
        for (size_t j = 0; ok && j < lps[i].n_top; j++) {
            char *t = api_utf8_clean(lps[i].top[j].token, lps[i].top[j].token_len);
            /* a key shared by two raw tokens (both invalid UTF-8) keeps the first */
            ok = t && (cJSON_GetObjectItemCaseSensitive(alt, t) ||
                       cJSON_AddNumberToObject(alt, t, lps[i].top[j].logprob));
            free(t);
        }
        if (!ok) {
            cJSON_Delete(alt);
            return SH_ENOMEM;
        }
        cJSON_AddItemToArray(top, alt);
        *offset += lps[i].token_len;
    }
    return 0;
}

static cJSON *logprobs_obj(const cJSON *content)
{
    cJSON *o = cJSON_CreateObject();

    if (!o || !api_json_add_dup(o, "content", content) || !cJSON_AddNullToObject(o, "refusal")) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static bool add_logprobs(cJSON *choice, const cJSON *content)
{
    if (!content)
        return cJSON_AddNullToObject(choice, "logprobs") != NULL;
    return add_item(choice, "logprobs", logprobs_obj(content));
}

static bool add_finish(cJSON *choice, const enum api_finish *finish)
{
    if (!finish)
        return cJSON_AddNullToObject(choice, "finish_reason") != NULL;
    return cJSON_AddStringToObject(choice, "finish_reason", api_finish_openai(*finish)) != NULL;
}

cJSON *api_oai_chat_completion(const struct api_resp_meta *m,
                               const struct api_oai_message *msg,
                               const cJSON *logprobs_content,
                               enum api_finish finish,
                               const struct api_gen_result *res)
{
    cJSON *o = obj_head(m, "chat.completion"), *choices, *choice, *mo;

    if (!o || !(choices = cJSON_AddArrayToObject(o, "choices")) || !(choice = cJSON_CreateObject()))
        goto fail;
    cJSON_AddItemToArray(choices, choice);
    if (!cJSON_AddNumberToObject(choice, "index", 0) ||
        !(mo = cJSON_AddObjectToObject(choice, "message")) ||
        !cJSON_AddStringToObject(mo, "role", "assistant") ||
        !(msg->content ? cJSON_AddStringToObject(mo, "content", msg->content)
                       : cJSON_AddNullToObject(mo, "content")) ||
        !cJSON_AddNullToObject(mo, "refusal"))
        goto fail;
    if (msg->reasoning && *msg->reasoning &&
        !cJSON_AddStringToObject(mo, "reasoning_content", msg->reasoning))
        goto fail;
    if (msg->tool_calls && cJSON_GetArraySize(msg->tool_calls) > 0 &&
        !api_json_add_dup(mo, "tool_calls", msg->tool_calls))
        goto fail;
    if (!add_logprobs(choice, logprobs_content) || !add_finish(choice, &finish) ||
        !add_usage(o, res))
        goto fail;
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

cJSON *api_oai_chat_chunk(const struct api_resp_meta *m,
                          const struct api_oai_delta *d,
                          const cJSON *logprobs_content,
                          const enum api_finish *finish,
                          bool usage_null)
{
    cJSON *o = obj_head(m, "chat.completion.chunk"), *choices, *choice, *delta;

    if (!o || !(choices = cJSON_AddArrayToObject(o, "choices")) || !(choice = cJSON_CreateObject()))
        goto fail;
    cJSON_AddItemToArray(choices, choice);
    if (!cJSON_AddNumberToObject(choice, "index", 0) ||
        !(delta = cJSON_AddObjectToObject(choice, "delta")))
        goto fail;
    /* OpenAI's first chunk is {"role":"assistant","content":""}. */
    if (d->role && (!cJSON_AddStringToObject(delta, "role", "assistant") ||
                    (!d->content && !cJSON_AddStringToObject(delta, "content", ""))))
        goto fail;
    if (d->content && !cJSON_AddStringToObject(delta, "content", d->content))
        goto fail;
    if (d->reasoning && !cJSON_AddStringToObject(delta, "reasoning_content", d->reasoning))
        goto fail;
    if (d->tool_calls && !api_json_add_dup(delta, "tool_calls", d->tool_calls))
        goto fail;
    if (!add_logprobs(choice, logprobs_content) || !add_finish(choice, finish))
        goto fail;
    if (usage_null && !cJSON_AddNullToObject(o, "usage"))
        goto fail;
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

static cJSON *text_obj(const struct api_resp_meta *m,
                       const char *text,
                       const cJSON *legacy,
                       const enum api_finish *finish)
{
    cJSON *o = obj_head(m, "text_completion"), *choices, *choice;

    if (!o || !(choices = cJSON_AddArrayToObject(o, "choices")) || !(choice = cJSON_CreateObject()))
        goto fail;
    cJSON_AddItemToArray(choices, choice);
    if (!cJSON_AddStringToObject(choice, "text", text) ||
        !cJSON_AddNumberToObject(choice, "index", 0) ||
        !(legacy ? api_json_add_dup(choice, "logprobs", legacy)
                 : cJSON_AddNullToObject(choice, "logprobs") != NULL) ||
        !add_finish(choice, finish))
        goto fail;
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

cJSON *api_oai_text_completion(const struct api_resp_meta *m,
                               const char *text,
                               const cJSON *legacy_logprobs,
                               enum api_finish finish,
                               const struct api_gen_result *res)
{
    /* Legacy completions have no tool_calls reason. */
    enum api_finish f = finish == API_FINISH_TOOL_CALLS ? API_FINISH_STOP : finish;
    cJSON *o = text_obj(m, text, legacy_logprobs, &f);

    if (o && !add_usage(o, res)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *api_oai_text_chunk(const struct api_resp_meta *m,
                          const char *text,
                          const cJSON *legacy_logprobs,
                          const enum api_finish *finish,
                          bool usage_null)
{
    enum api_finish f;
    cJSON *o;

    if (finish) {
        f = *finish == API_FINISH_TOOL_CALLS ? API_FINISH_STOP : *finish;
        finish = &f;
    }
    o = text_obj(m, text, legacy_logprobs, finish);
    if (o && usage_null && !cJSON_AddNullToObject(o, "usage")) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *
api_oai_usage_chunk(const struct api_resp_meta *m, bool chat, const struct api_gen_result *res)
{
    cJSON *o = obj_head(m, chat ? "chat.completion.chunk" : "text_completion");

    if (!o || !cJSON_AddArrayToObject(o, "choices") || !add_usage(o, res)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *api_oai_model(const struct api_model_info *mi)
{
    cJSON *o = cJSON_CreateObject();

    if (!o || !cJSON_AddStringToObject(o, "id", mi->id) ||
        !cJSON_AddStringToObject(o, "object", "model") ||
        !cJSON_AddNumberToObject(o, "created", (double)mi->modified_unix) ||
        !cJSON_AddStringToObject(o, "owned_by", "shoal")) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *api_oai_model_list(const struct api_model_info *models, size_t n)
{
    cJSON *o = cJSON_CreateObject(), *data;

    if (!o || !cJSON_AddStringToObject(o, "object", "list") ||
        !(data = cJSON_AddArrayToObject(o, "data")))
        goto fail;
    for (size_t i = 0; i < n; i++) {
        cJSON *mo = api_oai_model(&models[i]);
        if (!mo)
            goto fail;
        cJSON_AddItemToArray(data, mo);
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}
