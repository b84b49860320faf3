/* engine/jinja.h: a Jinja2 template engine for chat templates, rendering as
 * transformers' apply_chat_template does (Jinja2 3.1 sandbox, trim_blocks,
 * lstrip_blocks, loopcontrols, a json.dumps-compatible tojson,
 * raise_exception, strftime_now). Pure: no I/O, no clock (the time for
 * strftime_now comes in), no globals.
 *
 * Templates are untrusted input: compiling and rendering are bounded (parse
 * depth, recursion depth, loop iterations, memory, output size) and every
 * failure is an error with line:column, never a crash. A construct outside
 * the supported subset fails with SH_EUNSUPPORTED naming it.
 *
 * A compiled template is immutable: several threads may render it at once.
 */
#ifndef ENG_JINJA_H
#define ENG_JINJA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common/err.h"

struct eng_jinja;

/* Bounds on one render; a zero field takes the default in brackets. */
struct eng_jinja_limits {
    size_t max_output;  /* bytes of rendered text [16 MiB] */
    size_t max_memory;  /* bytes of values the render may hold [256 MiB] */
    size_t max_depth;   /* nested evaluation depth, macro calls included [500] */
    uint64_t max_steps; /* loop iterations + calls + items built [10,000,000] */
};

#define ENG_JINJA_MAX_SOURCE (4u << 20) /* template source bytes */

/* Compiles len bytes of template source. *out is returned; free with
 * eng_jinja_free. Errors: SH_EMALFORMED (syntax, with line:col),
 * SH_EUNSUPPORTED (a statement outside the subset, e.g. extends/include),
 * SH_ETOOBIG (source past ENG_JINJA_MAX_SOURCE or nesting too deep),
 * SH_ENOMEM. */
int eng_jinja_compile(const char *src, size_t len, struct eng_jinja **out, struct sh_err *err);
void eng_jinja_free(struct eng_jinja *t);

/* Renders with the variables of `vars` (a JSON object, borrowed; key order
 * is kept, so tojson of a dict prints keys as given; integral JSON numbers
 * become ints, others floats). Globals: namespace, range, dict,
 * raise_exception, strftime_now (uses *now, broken-down local time; NULL
 * makes strftime_now an error). limits may be NULL (defaults).
 * *out is returned NUL-terminated (caller frees with free()), *len excludes
 * the NUL.
 * Errors: SH_EINVAL (a runtime error, "line L col C: ..." such as an
 * undefined value used or a type error; or the template's raise_exception,
 * whose message is exactly the template's text), SH_ETOOBIG (a
 * limit, named), SH_EUNSUPPORTED (a filter, test or method we lack),
 * SH_ENOMEM. */
int eng_jinja_render(const struct eng_jinja *t,
                     const cJSON *vars,
                     const struct tm *now,
                     const struct eng_jinja_limits *limits,
                     char **out,
                     size_t *len,
                     struct sh_err *err);

#endif
