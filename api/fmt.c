/* api/fmt.c: the response pieces the OpenAI and Ollama formatters
 * (openai_fmt.c, ollama_fmt.c) build the same way: cJSON append helpers and
 * a token's logprob entry. Pure.
 */
#include <stdlib.h>

#include "api/internal.h"

bool api_json_push(cJSON *a, cJSON *item)
{
    if (!item)
        return false;
    cJSON_AddItemToArray(a, item);
    return true;
}

bool api_json_add_dup(cJSON *o, const char *key, const cJSON *src)
{
    cJSON *d = cJSON_Duplicate(src, 1);

    if (!d)
        return false;
    cJSON_AddItemToObject(o, key, d);
    return true;
}

/* {"token", "logprob", "bytes"}: token as clean text, bytes raw. */
static cJSON *token_obj(const char *tok, size_t len, double logprob)
{
    cJSON *o = cJSON_CreateObject(), *bytes;
    char *clean = api_utf8_clean(tok, len);

    if (!o || !clean || !cJSON_AddStringToObject(o, "token", clean) ||
        !cJSON_AddNumberToObject(o, "logprob", logprob) ||
        !(bytes = cJSON_AddArrayToObject(o, "bytes")))
        goto fail;
    for (size_t i = 0; i < len; i++)
        if (!api_json_push(bytes, cJSON_CreateNumber((unsigned char)tok[i])))
            goto fail;
    free(clean);
    return o;
fail:
    free(clean);
    cJSON_Delete(o);
    return NULL;
}

cJSON *api_logprob_entry(const struct api_token_logprob *lp, bool empty_top)
{
    cJSON *o = token_obj(lp->token, lp->token_len, lp->logprob), *top;

    if (!o)
        return NULL;
    if (lp->n_top == 0 && !empty_top)
        return o;
    if (!(top = cJSON_AddArrayToObject(o, "top_logprobs")))
        goto fail;
    for (size_t i = 0; i < lp->n_top; i++)
        if (!api_json_push(top,
                           token_obj(lp->top[i].token, lp->top[i].token_len, lp->top[i].logprob)))
            goto fail;
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}
