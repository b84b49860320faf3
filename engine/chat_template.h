/* engine/chat_template.h: a model's own chat template, loaded from its
 * folder and rendered as transformers' apply_chat_template(messages,
 * tools=..., add_generation_prompt=..., **kwargs, tokenize=False) does.
 *
 * Source: chat_template.jinja beside tokenizer_config.json if present (as
 * transformers prefers it), else tokenizer_config.json's "chat_template": a
 * string, or a list of {"name", "template"} from which "tool_use" is picked
 * when tools are given and "default" otherwise. The special-token strings of
 * tokenizer_config.json (bos_token, eos_token, unk/pad/sep/cls/mask; plain
 * strings or {"content": ...} objects) become template variables.
 *
 * A loaded template is immutable: renders may run on several threads.
 */
#ifndef ENG_CHAT_TEMPLATE_H
#define ENG_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common/err.h"

struct eng_chat_template;

#define ENG_CHAT_TEMPLATE_CONFIG_MAX (64u << 20) /* tokenizer_config.json bytes */

/* Loads from a model folder. *out is returned; free with
 * eng_chat_template_free. Errors: SH_ENOTFOUND (no tokenizer_config.json
 * nor chat_template.jinja, or no chat_template in it), SH_EMALFORMED (bad
 * JSON, a chat_template of the wrong shape, a template syntax error with
 * line:col), SH_EUNSUPPORTED (a construct outside the engine's subset),
 * SH_EIO, SH_ENOMEM. */
int eng_chat_template_load(const char *model_dir,
                           struct eng_chat_template **out,
                           struct sh_err *err);

/* Builds one from template text (borrowed for the call) and the special
 * tokens (NULL: not defined for the template). Errors as for load. */
int eng_chat_template_from_string(const char *src,
                                  size_t len,
                                  const char *bos_token,
                                  const char *eos_token,
                                  struct eng_chat_template **out,
                                  struct sh_err *err);

/* Replaces the template text of a loaded template (e.g. a --template file)
 * while keeping its special tokens. Errors as for from_string; on error ct
 * is unchanged. */
int eng_chat_template_set_source(struct eng_chat_template *ct,
                                 const char *src,
                                 size_t len,
                                 struct sh_err *err);

void eng_chat_template_free(struct eng_chat_template *ct);

struct eng_chat_request {
    const cJSON *messages; /* array of message objects (role, content as string or parts,
                            * tool_calls, tool_call_id, name, reasoning_content) */
    const cJSON *tools;    /* array of JSON-schema function specs, or NULL */
    bool add_generation_prompt;
    const cJSON *vars;    /* object of extra variables (enable_thinking, date_string...) or
                           * NULL; they override the special tokens */
    const struct tm *now; /* local time for strftime_now, or NULL (then it is an error) */
};

/* Renders the prompt. *out is returned NUL-terminated (free with free()),
 * *len excludes the NUL. Everything in req is borrowed for the call.
 * Errors: SH_EINVAL (messages not an array of objects, tools not an array,
 * vars not an object; a runtime template error with line:col; the
 * template's own raise_exception, whose text is the message), SH_ETOOBIG (a
 * render limit), SH_EUNSUPPORTED, SH_ENOMEM. */
int eng_chat_template_render(const struct eng_chat_template *ct,
                             const struct eng_chat_request *req,
                             char **out,
                             size_t *len,
                             struct sh_err *err);

/* The template text a render with (has_tools) would use, for output-format
 * detection (see chat_parse.h). Valid while ct lives. */
const char *eng_chat_template_source(const struct eng_chat_template *ct, bool has_tools);

/* Special-token strings, or NULL when the config has none. Valid while ct
 * lives. */
const char *eng_chat_template_bos(const struct eng_chat_template *ct);
const char *eng_chat_template_eos(const struct eng_chat_template *ct);

#endif
