/* common/json.h: typed, range-checked access to cJSON documents.
 *
 * cJSON parses; these helpers turn "a field of the right type and range, or a
 * clear error naming it" into one call. Getters return 0 on success,
 * SH_ENOTFOUND when the key is absent (err untouched, so optional fields are
 * easy), SH_EMALFORMED when present with the wrong type or out of range.
 * Strings returned are borrowed from the cJSON tree.
 */
#ifndef SH_JSON_H
#define SH_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/err.h"

/* Parses a whole file (at most max bytes). *out is returned; free with
 * cJSON_Delete. Errors: those of sh_read_file, SH_EMALFORMED (with the byte
 * offset where parsing stopped). */
int sh_json_parse_file(const char *path, size_t max, cJSON **out, struct sh_err *err);

/* Parses a buffer of len bytes (need not be NUL-terminated). `what` names it
 * in errors. */
int sh_json_parse(const char *buf, size_t len, const char *what, cJSON **out, struct sh_err *err);

int sh_json_int(const cJSON *obj, const char *key, int64_t min, int64_t max, int64_t *out,
                struct sh_err *err);
int sh_json_num(const cJSON *obj, const char *key, double min, double max, double *out,
                struct sh_err *err);
int sh_json_bool(const cJSON *obj, const char *key, bool *out, struct sh_err *err);
int sh_json_str(const cJSON *obj, const char *key, const char **out, struct sh_err *err);

/* True when v is a JSON number holding an integer value in [min, max]. */
bool sh_json_is_int(const cJSON *v, int64_t min, int64_t max);

#endif
