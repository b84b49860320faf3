/* common/json.c: cJSON parsing with bounded input and typed getters. */
#include "common/json.h"

#include <math.h>
#include <stdlib.h>

#include "common/file.h"

int sh_json_parse_file(const char *path, size_t max, cJSON **out, struct sh_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    int rc;

    rc = sh_read_file(path, max, &buf, &len, err);
    if (rc)
        return rc;
    rc = sh_json_parse(buf, len, path, out, err);
    free(buf);
    return rc;
}

int sh_json_parse(const char *buf, size_t len, const char *what, cJSON **out, struct sh_err *err)
{
    const char *end = NULL;
    cJSON *root;

    root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!root) {
        size_t off = end && end >= buf ? (size_t)(end - buf) : 0;
        return sh_err_set(err, SH_EMALFORMED, "%s: invalid JSON near byte %zu", what, off);
    }
    /* Trailing non-space after the value is malformed too. */
    while (end && (size_t)(end - buf) < len &&
           (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
        end++;
    if (end && (size_t)(end - buf) < len && *end != '\0') {
        cJSON_Delete(root);
        return sh_err_set(err, SH_EMALFORMED, "%s: trailing data after JSON at byte %zu", what,
                          (size_t)(end - buf));
    }
    *out = root;
    return 0;
}

bool sh_json_is_int(const cJSON *v, int64_t min, int64_t max)
{
    double d;
    if (!cJSON_IsNumber(v))
        return false;
    d = v->valuedouble;
    return isfinite(d) && d == floor(d) && d >= (double)min && d <= (double)max;
}

int sh_json_int(const cJSON *obj, const char *key, int64_t min, int64_t max, int64_t *out,
                struct sh_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return SH_ENOTFOUND;
    if (!sh_json_is_int(v, min, max))
        return sh_err_set(err, SH_EMALFORMED,
                          "\"%s\": expected an integer in [%lld, %lld]", key, (long long)min,
                          (long long)max);
    *out = (int64_t)v->valuedouble;
    return 0;
}

int sh_json_num(const cJSON *obj, const char *key, double min, double max, double *out,
                struct sh_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return SH_ENOTFOUND;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < min ||
        v->valuedouble > max)
        return sh_err_set(err, SH_EMALFORMED, "\"%s\": expected a number in [%g, %g]", key, min,
                          max);
    *out = v->valuedouble;
    return 0;
}

int sh_json_bool(const cJSON *obj, const char *key, bool *out, struct sh_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return SH_ENOTFOUND;
    if (!cJSON_IsBool(v))
        return sh_err_set(err, SH_EMALFORMED, "\"%s\": expected true or false", key);
    *out = cJSON_IsTrue(v);
    return 0;
}

int sh_json_str(const cJSON *obj, const char *key, const char **out, struct sh_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return SH_ENOTFOUND;
    if (!cJSON_IsString(v) || !v->valuestring)
        return sh_err_set(err, SH_EMALFORMED, "\"%s\": expected a string", key);
    *out = v->valuestring;
    return 0;
}
