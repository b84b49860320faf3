/* api/errors.c: the one place SH_E* codes become HTTP statuses, and error
 * bodies in each dialect: OpenAI's {"error":{"message","type","param",
 * "code"}} (openai-node's APIError reads these four), Ollama's
 * {"error":"..."} (api.StatusError). Pure.
 */
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

int api_status_for_code(int code)
{
    switch (code) {
    case SH_OK:
        return 200;
    case SH_EINVAL:
    case SH_EMALFORMED:
    case SH_ERANGE:
    case SH_EUNSUPPORTED:
        return 400;
    case SH_EUNAUTH:
        return 401;
    case SH_ENOTFOUND:
        return 404;
    case SH_ETOOBIG:
        return 413;
    case SH_EBUSY:
    case SH_ENOTLEADER:
        return 503;
    case SH_ETIMEOUT:
        return 504;
    default:
        return 500;
    }
}

const char *api_openai_error_type(int status)
{
    if (status == 401)
        return "invalid_request_error"; /* as OpenAI answers a bad key */
    if (status >= 400 && status < 500)
        return "invalid_request_error";
    return "server_error";
}

/* Messages quote what clients sent (a role, a model name) and are cut at
 * SH_ERR_MSG_LEN bytes, maybe inside a character: cleaned, the body stays
 * valid JSON text. */
cJSON *api_error_body(enum api_dialect d, const struct api_error *e)
{
    char *msg = api_utf8_clean(e->message, strnlen(e->message, sizeof e->message));
    cJSON *root = msg ? cJSON_CreateObject() : NULL, *err;

    if (!root)
        goto fail;
    if (d != API_DIALECT_OPENAI) {
        if (!cJSON_AddStringToObject(root, "error", msg))
            goto fail;
        free(msg);
        return root;
    }
    if (!(err = cJSON_AddObjectToObject(root, "error")) ||
        !cJSON_AddStringToObject(err, "message", msg) ||
        !cJSON_AddStringToObject(err, "type",
                                 e->type ? e->type : api_openai_error_type(e->status)) ||
        !(e->param[0] ? cJSON_AddStringToObject(err, "param", e->param)
                      : cJSON_AddNullToObject(err, "param")) ||
        !(e->code ? cJSON_AddStringToObject(err, "code", e->code)
                  : cJSON_AddNullToObject(err, "code")))
        goto fail;
    free(msg);
    return root;
fail:
    free(msg);
    cJSON_Delete(root);
    return NULL;
}

const char *api_finish_openai(enum api_finish f)
{
    switch (f) {
    case API_FINISH_LENGTH:
        return "length";
    case API_FINISH_TOOL_CALLS:
        return "tool_calls";
    case API_FINISH_STOP:
    default:
        return "stop";
    }
}

/* Ollama reports a turn that ended in tool calls as "stop". */
const char *api_finish_ollama(enum api_finish f)
{
    return f == API_FINISH_LENGTH ? "length" : "stop";
}
