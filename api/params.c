/* api/params.c: request-parsing pieces both dialects share: the JSON body,
 * typed and range-checked members with the parameter named in the error,
 * stop lists, tool specs, model names and normalized chat messages.
 * Pure: libc, cJSON and common/ only.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/internal.h"
#include "common/json.h"

void api_gen_request_init(struct api_gen_request *r, enum api_dialect d, enum api_gen_kind k)
{
    memset(r, 0, sizeof *r);
    r->dialect = d;
    r->kind = k;
    r->max_tokens = API_MAX_TOKENS_UNSET;
    r->parallel_tool_calls = true;
}

void api_gen_request_clear(struct api_gen_request *r)
{
    if (!r)
        return;
    cJSON_Delete(r->messages);
    cJSON_Delete(r->root);
    api_gen_request_init(r, r->dialect, r->kind);
}

int api_parse_request(const char *body,
                      size_t len,
                      enum api_dialect d,
                      enum api_gen_kind k,
                      api_root_parser parse_root,
                      struct api_gen_request *out,
                      struct api_error *e)
{
    int rc;

    api_gen_request_init(out, d, k);
    if ((rc = api_body_parse(body, len, &out->root, e)))
        return rc;
    if ((rc = parse_root(out->root, out, e)))
        api_gen_request_clear(out);
    return rc;
}

int api_error_set(
    struct api_error *e, int status, const char *code, const char *param, const char *fmt, ...)
{
    va_list ap;

    if (!e)
        return status;
    memset(e, 0, sizeof *e);
    e->status = status;
    e->code = code;
    if (param)
        snprintf(e->param, sizeof e->param, "%s", param);
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return status;
}

void api_param(char out[API_PARAM_LEN], const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(out, API_PARAM_LEN, fmt, ap);
    va_end(ap);
}

int api_unsupported(struct api_error *e, const char *param, const char *why)
{
    return api_error_set(e, 400, "unsupported_parameter", param, "'%s' is not supported: %s", param,
                         why);
}

int api_body_parse(const char *body, size_t len, cJSON **root, struct api_error *e)
{
    struct sh_err err;
    size_t i;

    *root = NULL;
    for (i = 0;
         i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'); i++)
        ;
    if (i == len)
        return api_error_set(e, 400, "invalid_json", NULL, "missing request body");
    sh_err_clear(&err);
    if (sh_json_parse(body, len, "request body", root, &err))
        return api_error_set(e, 400, "invalid_json", NULL, "%s", err.msg);
    if (!cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        *root = NULL;
        return api_error_set(e, 400, "invalid_json", NULL, "request body must be a JSON object");
    }
    return 0;
}

const cJSON *api_member(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static int bad_type(struct api_error *e, const char *param, const char *want)
{
    return api_error_set(e, 400, "invalid_type", param, "invalid type for '%s': expected %s", param,
                         want);
}

/* v (present) is a finite JSON number without a fraction. */
static int integral(const cJSON *v, const char *param, struct api_error *e)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble))
        return bad_type(e, param, "an integer");
    return 0;
}

int api_get_num(const cJSON *obj,
                const char *key,
                const char *param,
                double min,
                double max,
                bool *has,
                double *out,
                struct api_error *e)
{
    const cJSON *v = api_member(obj, key);

    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return bad_type(e, param, "a number");
    if (v->valuedouble < min || v->valuedouble > max)
        return api_error_set(e, 400, "invalid_value", param,
                             "invalid value for '%s': %g is outside [%g, %g]", param,
                             v->valuedouble, min, max);
    *out = v->valuedouble;
    if (has)
        *has = true;
    return 0;
}

int api_get_int(const cJSON *obj,
                const char *key,
                const char *param,
                int64_t min,
                int64_t max,
                bool *has,
                int64_t *out,
                struct api_error *e)
{
    const cJSON *v = api_member(obj, key);
    double d;
    int rc;

    if (!v)
        return 0;
    /* min/max here stay well inside +-2^53, so the double compare is exact. */
    if ((rc = integral(v, param, e)))
        return rc;
    d = v->valuedouble;
    if (d < (double)min || d > (double)max) /* %g keeps 1e300 short */
        return api_error_set(e, 400, "invalid_value", param,
                             fabs(d) < 1e15 ? "invalid value for '%s': %.0f is outside [%lld, %lld]"
                                            : "invalid value for '%s': %g is outside [%lld, %lld]",
                             param, d, (long long)min, (long long)max);
    *out = (int64_t)d;
    if (has)
        *has = true;
    return 0;
}

int api_get_bool(
    const cJSON *obj, const char *key, const char *param, bool *has, bool *out, struct api_error *e)
{
    const cJSON *v = api_member(obj, key);

    if (!v)
        return 0;
    if (!cJSON_IsBool(v))
        return bad_type(e, param, "a boolean");
    *out = cJSON_IsTrue(v);
    if (has)
        *has = true;
    return 0;
}

int api_get_str(
    const cJSON *obj, const char *key, const char *param, const char **out, struct api_error *e)
{
    const cJSON *v = api_member(obj, key);

    if (!v)
        return 0;
    if (!cJSON_IsString(v) || !v->valuestring)
        return bad_type(e, param, "a string");
    *out = v->valuestring;
    return 0;
}

int api_get_seed(const cJSON *obj,
                 const char *key,
                 const char *param,
                 bool *has,
                 uint64_t *out,
                 struct api_error *e)
{
    const cJSON *v = api_member(obj, key);
    double d;
    int rc;

    if (!v)
        return 0;
    if ((rc = integral(v, param, e)))
        return rc;
    d = v->valuedouble;
    /* 2^63 is exact as a double; the strict bound keeps the cast defined. */
    if (d < -9223372036854775808.0 || d >= 9223372036854775808.0)
        return api_error_set(e, 400, "invalid_value", param,
                             "invalid value for '%s': outside the 64-bit integers", param);
    *out = (uint64_t)(int64_t)d;
    *has = true;
    return 0;
}

static int
add_stop(struct api_gen_request *r, const cJSON *s, const char *param, struct api_error *e)
{
    size_t len;

    if (!cJSON_IsString(s) || !s->valuestring)
        return bad_type(e, param, "a string or an array of strings");
    len = strlen(s->valuestring);
    if (len == 0) /* matches nothing useful; OpenAI clients send "" for none */
        return 0;
    if (len > API_MAX_STOP_LEN)
        return api_error_set(e, 400, "invalid_value", param,
                             "invalid value for '%s': a stop string is longer than %d bytes", param,
                             API_MAX_STOP_LEN);
    if (r->n_stop == API_MAX_STOP)
        return api_error_set(e, 400, "invalid_value", param,
                             "invalid value for '%s': more than %d stop strings", param,
                             API_MAX_STOP);
    r->stop[r->n_stop++] = s->valuestring;
    return 0;
}

int api_parse_stop(const cJSON *v,
                   const char *param,
                   struct api_gen_request *r,
                   struct api_error *e)
{
    const cJSON *s;
    int rc;

    r->n_stop = 0;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (cJSON_IsString(v))
        return add_stop(r, v, param, e);
    if (!cJSON_IsArray(v))
        return bad_type(e, param, "a string or an array of strings");
    cJSON_ArrayForEach(s, v)
    {
        if ((rc = add_stop(r, s, param, e)))
            return rc;
    }
    return 0;
}

static bool tool_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* OpenAI's FunctionDefinition: name ^[a-zA-Z0-9_-]{1,64}$, description a
 * string, parameters a JSON Schema object. */
int api_parse_tools(const cJSON *v,
                    const char *param,
                    struct api_gen_request *r,
                    struct api_error *e)
{
    const cJSON *t, *prev;
    char p[API_PARAM_LEN];
    int i = 0, rc;

    r->tools = NULL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsArray(v))
        return bad_type(e, param, "an array of tools");
    cJSON_ArrayForEach(t, v)
    {
        const cJSON *fn, *type, *name, *params;
        const char *desc = NULL;
        int j = 0;

        api_param(p, "%s[%d]", param, i);
        if (i == API_MAX_TOOLS)
            return api_error_set(e, 400, "invalid_value", param,
                                 "invalid value for '%s': more than %d tools", param,
                                 API_MAX_TOOLS);
        if (!cJSON_IsObject(t))
            return bad_type(e, p, "an object");
        type = cJSON_GetObjectItemCaseSensitive(t, "type");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "function") != 0)
            return api_error_set(e, 400, "unsupported_value", p,
                                 "'%s.type': only \"function\" tools are supported", p);
        fn = cJSON_GetObjectItemCaseSensitive(t, "function");
        api_param(p, "%s[%d].function", param, i);
        if (!cJSON_IsObject(fn))
            return api_error_set(e, 400, "missing_required_parameter", p,
                                 "missing required parameter: '%s'", p);
        name = cJSON_GetObjectItemCaseSensitive(fn, "name");
        api_param(p, "%s[%d].function.name", param, i);
        if (!cJSON_IsString(name) || !tool_name_ok(name->valuestring))
            return api_error_set(e, 400, "invalid_value", p,
                                 "invalid value for '%s': expected a name of 1 to 64 "
                                 "characters [a-zA-Z0-9_-]",
                                 p);
        cJSON_ArrayForEach(prev, v)
        {
            const cJSON *pn;
            if (j++ >= i)
                break;
            pn = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(prev, "function"), "name");
            if (strcmp(pn->valuestring, name->valuestring) == 0)
                return api_error_set(e, 400, "invalid_value", p,
                                     "invalid value for '%s': the tool name \"%s\" is "
                                     "used twice",
                                     p, name->valuestring);
        }
        api_param(p, "%s[%d].function.description", param, i);
        if ((rc = api_get_str(fn, "description", p, &desc, e)))
            return rc;
        params = api_member(fn, "parameters");
        api_param(p, "%s[%d].function.parameters", param, i);
        if (params && !cJSON_IsObject(params))
            return bad_type(e, p, "a JSON Schema object");
        i++;
    }
    r->tools = i > 0 ? v : NULL;
    return 0;
}

int api_parse_model(const cJSON *root, struct api_gen_request *r, struct api_error *e)
{
    const cJSON *m = api_member(root, "model");
    size_t len;

    if (!m)
        return api_error_set(e, 400, "missing_required_parameter", "model",
                             "missing required parameter: 'model'");
    if (!cJSON_IsString(m) || !m->valuestring)
        return bad_type(e, "model", "a string");
    len = strlen(m->valuestring);
    if (len == 0)
        return api_error_set(e, 400, "missing_required_parameter", "model",
                             "missing required parameter: 'model'");
    if (len > API_MAX_MODEL_NAME)
        return api_error_set(e, 400, "invalid_value", "model",
                             "invalid value for 'model': longer than %d bytes", API_MAX_MODEL_NAME);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)m->valuestring[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("._:/@+-", c)))
            return api_error_set(e, 400, "invalid_value", "model",
                                 "invalid value for 'model': invalid model name \"%.64s\"",
                                 m->valuestring);
    }
    r->model = m->valuestring;
    return 0;
}

cJSON *api_norm_tool_call(const char *id, const char *name, cJSON *args)
{
    cJSON *tc = cJSON_CreateObject();
    cJSON *fn = cJSON_CreateObject();

    if (!tc || !fn || !args || (id && !cJSON_AddStringToObject(tc, "id", id)) ||
        !cJSON_AddStringToObject(tc, "type", "function") ||
        !cJSON_AddStringToObject(fn, "name", name)) {
        cJSON_Delete(tc);
        cJSON_Delete(fn);
        cJSON_Delete(args);
        return NULL;
    }
    cJSON_AddItemToObject(fn, "arguments", args);
    cJSON_AddItemToObject(tc, "function", fn);
    return tc;
}

int api_message_role(const cJSON *m, int i, const char **role, struct api_error *e)
{
    char p[API_PARAM_LEN];
    int rc;

    *role = NULL;
    api_param(p, "messages[%d]", i);
    if (!cJSON_IsObject(m))
        return bad_type(e, p, "an object");
    api_param(p, "messages[%d].role", i);
    if ((rc = api_get_str(m, "role", p, role, e)))
        return rc;
    if (!*role)
        return api_error_set(e, 400, "missing_required_parameter", p,
                             "missing required parameter: '%s'", p);
    return 0;
}

int api_tool_calls_norm(const cJSON *v,
                        const char *param,
                        api_tool_call_parser parse_one,
                        cJSON **out,
                        struct api_error *e)
{
    const cJSON *tc;
    cJSON *arr, *norm;
    int j = 0, rc;

    *out = NULL;
    if (!v)
        return 0;
    if (!cJSON_IsArray(v))
        return bad_type(e, param, "an array");
    if (!(arr = cJSON_CreateArray()))
        return api_error_set(e, 500, NULL, NULL, "out of memory");
    cJSON_ArrayForEach(tc, v)
    {
        if ((rc = parse_one(tc, param, j, &norm, e))) {
            cJSON_Delete(arr);
            return rc;
        }
        cJSON_AddItemToArray(arr, norm);
        j++;
    }
    *out = arr;
    return 0;
}

int api_add_message(struct api_gen_request *r,
                    const char *role,
                    const char *content,
                    const char *reasoning,
                    cJSON *tool_calls,
                    const char *tool_call_id,
                    const char *name,
                    struct api_error *e)
{
    cJSON *m;

    if (!r->messages && !(r->messages = cJSON_CreateArray()))
        goto nomem;
    if (!(m = cJSON_CreateObject()))
        goto nomem;
    cJSON_AddItemToArray(r->messages, m);
    if (!cJSON_AddStringToObject(m, "role", role) ||
        !cJSON_AddStringToObject(m, "content", content ? content : ""))
        goto nomem;
    if (reasoning && *reasoning && !cJSON_AddStringToObject(m, "reasoning_content", reasoning))
        goto nomem;
    if (tool_calls) {
        cJSON_AddItemToObject(m, "tool_calls", tool_calls);
        tool_calls = NULL;
    }
    if (tool_call_id && !cJSON_AddStringToObject(m, "tool_call_id", tool_call_id))
        goto nomem;
    if (name && *name && !cJSON_AddStringToObject(m, "name", name))
        goto nomem;
    return 0;
nomem:
    cJSON_Delete(tool_calls);
    return api_error_set(e, 500, NULL, NULL, "out of memory");
}

/* Go's time.ParseDuration: [-+]? then one or more <decimal><unit>, units
 * ns us µs ms s m h; "0" alone is allowed. */
static bool go_duration(const char *s)
{
    static const char *const units[] = {"ns", "us", "\xc2\xb5s", "ms", "s", "m", "h"};

    if (*s == '-' || *s == '+')
        s++;
    if (strcmp(s, "0") == 0)
        return true;
    if (!*s)
        return false;
    while (*s) {
        bool digits = false, best = false;
        size_t ulen = 0;
        while (*s >= '0' && *s <= '9') {
            s++;
            digits = true;
        }
        if (*s == '.') {
            s++;
            while (*s >= '0' && *s <= '9') {
                s++;
                digits = true;
            }
        }
        if (!digits)
            return false;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            size_t n = strlen(units[i]);
            /* the longest unit that matches ("ms" before "m") */
            if (strncmp(s, units[i], n) == 0 && n > ulen) {
                ulen = n;
                best = true;
            }
        }
        if (!best)
            return false;
        s += ulen;
    }
    return true;
}

bool api_duration_valid(const cJSON *v)
{
    if (cJSON_IsNumber(v))
        return isfinite(v->valuedouble);
    if (cJSON_IsString(v) && v->valuestring)
        return go_duration(v->valuestring);
    return false;
}
