/* api/internal.h: what the api/ files share with each other and with
 * tests/api: the pure request parsers (JSON body -> struct api_gen_request),
 * the pure response formatters (results -> JSON objects, SSE/NDJSON frames),
 * small text helpers, and the generation driver the route files use.
 *
 * Parsers and formatters include only libc, cJSON and common/: no clock, no
 * RNG, no sockets. Times and ids come in as arguments.
 */
#ifndef API_INTERNAL_H
#define API_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "api/api.h"
#include "common/util.h"

/* ---- parsing (params.c, openai.c, ollama.c) ---------------------------- */

/* Parsers return 0, or an HTTP status (400, 404, 413) with e filled: the
 * message names the parameter, e->param holds its path ("temperature",
 * "messages[2].content[0].type", "options.top_k"), e->code the OpenAI code
 * ("invalid_type", "invalid_value", "missing_required_parameter",
 * "unsupported_parameter", "unsupported_value", "invalid_json"). On error
 * *out is left cleared (api_gen_request_clear'ed); on success the caller
 * owns it and frees it with api_gen_request_clear. */
int api_openai_parse_chat(const char *body,
                          size_t len,
                          struct api_gen_request *out,
                          struct api_error *e);
int api_openai_parse_completion(const char *body,
                                size_t len,
                                struct api_gen_request *out,
                                struct api_error *e);
int api_ollama_parse_chat(const char *body,
                          size_t len,
                          struct api_gen_request *out,
                          struct api_error *e);
int api_ollama_parse_generate(const char *body,
                              size_t len,
                              struct api_gen_request *out,
                              struct api_error *e);
/* /api/show: {"model": ...} (or the old "name"). *model borrows from *root,
 * which the caller frees with cJSON_Delete. */
int api_ollama_parse_show(const char *body,
                          size_t len,
                          cJSON **root,
                          const char **model,
                          bool *verbose,
                          struct api_error *e);

void api_gen_request_init(struct api_gen_request *r, enum api_dialect d, enum api_gen_kind k);
/* Frees what r owns (root, messages) and clears it. */
void api_gen_request_clear(struct api_gen_request *r);
/* What every api_*_parse_* entry point does around its dialect's root
 * parser: init *out for d and k, parse the body into out->root, run
 * parse_root on it; on error *out is left cleared. */
typedef int (*api_root_parser)(const cJSON *root, struct api_gen_request *r, struct api_error *e);
int api_parse_request(const char *body,
                      size_t len,
                      enum api_dialect d,
                      enum api_gen_kind k,
                      api_root_parser parse_root,
                      struct api_gen_request *out,
                      struct api_error *e);

/* Helpers the two dialect parsers share (params.c). Each returns 0 or the
 * status with e filled; a member that is absent or JSON null is "unset". */
int api_body_parse(const char *body, size_t len, cJSON **root, struct api_error *e);
const cJSON *api_member(const cJSON *obj, const char *key);
int api_get_num(const cJSON *obj,
                const char *key,
                const char *param,
                double min,
                double max,
                bool *has,
                double *out,
                struct api_error *e);
int api_get_int(const cJSON *obj,
                const char *key,
                const char *param,
                int64_t min,
                int64_t max,
                bool *has,
                int64_t *out,
                struct api_error *e);
int api_get_bool(const cJSON *obj,
                 const char *key,
                 const char *param,
                 bool *has,
                 bool *out,
                 struct api_error *e);
int api_get_str(
    const cJSON *obj, const char *key, const char *param, const char **out, struct api_error *e);
/* seed: any integer in [-2^63, 2^63) (two's complement into uint64). */
int api_get_seed(const cJSON *obj,
                 const char *key,
                 const char *param,
                 bool *has,
                 uint64_t *out,
                 struct api_error *e);
/* Writes a parameter path ("messages[3].content") into out, truncated to
 * API_PARAM_LEN - 1 bytes if it has to be. */
void api_param(char out[API_PARAM_LEN], const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The 400 "unsupported_parameter" error: "'PARAM' is not supported: WHY". */
int api_unsupported(struct api_error *e, const char *param, const char *why);
/* "stop": a string or an array of strings; empty strings are skipped; at
 * most API_MAX_STOP of at most API_MAX_STOP_LEN bytes. */
int api_parse_stop(const cJSON *v,
                   const char *param,
                   struct api_gen_request *r,
                   struct api_error *e);
/* "tools": [{"type":"function","function":{"name","description"?,
 * "parameters"?}}], names [A-Za-z0-9_-]{1,64} and unique. */
int api_parse_tools(const cJSON *v,
                    const char *param,
                    struct api_gen_request *r,
                    struct api_error *e);
/* "model": required non-empty string of valid model-name syntax. */
int api_parse_model(const cJSON *root, struct api_gen_request *r, struct api_error *e);
/* messages[i] must be an object with a string "role" (required); *role
 * borrows from m. The dialects check the role's value themselves. */
int api_message_role(const cJSON *m, int i, const char **role, struct api_error *e);
/* A message's "tool_calls" (v, at path param; absent gives *out NULL) ->
 * a new array of normalized tool calls: v must be an array, and parse_one
 * turns its element j (tc) into *norm (api_norm_tool_call) or fails with e
 * filled; the dialects differ in the shape they accept. */
typedef int (*api_tool_call_parser)(
    const cJSON *tc, const char *param, int j, cJSON **norm, struct api_error *e);
int api_tool_calls_norm(const cJSON *v,
                        const char *param,
                        api_tool_call_parser parse_one,
                        cJSON **out,
                        struct api_error *e);
/* Appends one normalized message (see api.h) to r->messages. tool_calls is
 * taken (already normalized) and may be NULL. */
int api_add_message(struct api_gen_request *r,
                    const char *role,
                    const char *content,
                    const char *reasoning,
                    cJSON *tool_calls,
                    const char *tool_call_id,
                    const char *name,
                    struct api_error *e);
/* A normalized tool call {"id"?,"type":"function","function":{"name",
 * "arguments":{...}}}; args is taken. NULL on ENOMEM. */
cJSON *api_norm_tool_call(const char *id, const char *name, cJSON *args);
/* Ollama's keep_alive: a number of seconds or a Go duration ("5m", "1h30m",
 * "-1"). Only checked. */
bool api_duration_valid(const cJSON *v);

/* ---- text helpers (text.c) ----------------------------------------------- */

/* A NUL-terminated copy of len bytes with invalid UTF-8 and NUL bytes
 * replaced by U+FFFD. Returned; free with free(). NULL on ENOMEM. */
char *api_utf8_clean(const char *s, size_t len);
/* Go's time.RFC3339Nano in UTC ("2024-05-01T10:00:00.123456789Z", trailing
 * zeros of the fraction dropped). out needs API_RFC3339_LEN bytes. */
#define API_RFC3339_LEN 40
void api_rfc3339_nano(int64_t sec, long nsec, char out[API_RFC3339_LEN]);
/* Ollama's format.HumanNumber: 16000000 -> "16M", 751632384 -> "751.63M",
 * 8030261248 -> "8.0B". */
void api_human_number(uint64_t n, char *out, size_t cap);
/* The Ollama display name of a model id: "<id>:latest" unless id has a tag. */
void api_ollama_name(const char *id, char *out, size_t cap);
/* Case-insensitive equality of two byte ranges. */
bool api_name_eq(const char *a, size_t alen, const char *b, size_t blen);

/* ---- formatting (openai_fmt.c, ollama_fmt.c, fmt.c, errors.c) ------------ */

/* cJSON helpers both formatters use (fmt.c): append item (taken) to array a,
 * false when item is NULL; add a deep copy of src to o under key, false on
 * ENOMEM. */
bool api_json_push(cJSON *a, cJSON *item);
bool api_json_add_dup(cJSON *o, const char *key, const cJSON *src);
/* One token's logprob entry, the same in both dialects: {"token" (clean
 * text), "logprob", "bytes" (raw), "top_logprobs": [entries without their
 * own top list]}. empty_top: keep "top_logprobs": [] when lp has no
 * alternatives (OpenAI does; Ollama leaves the key out). NULL on ENOMEM. */
cJSON *api_logprob_entry(const struct api_token_logprob *lp, bool empty_top);

/* What every response object of one generation repeats. */
struct api_resp_meta {
    const char *id;         /* OpenAI: "chatcmpl-..." / "cmpl-..." */
    const char *model;      /* the name to echo */
    int64_t created;        /* OpenAI: unix seconds */
    const char *created_at; /* Ollama: api_rfc3339_nano of now */
};

/* Error bodies: OpenAI {"error":{"message","type","param","code"}} (type
 * from status when e->type is NULL: 400/404/405/413 invalid_request_error,
 * 401 invalid_request_error, 503 server_error, 5xx server_error), Ollama
 * and plain {"error":"message"}. Returned; NULL on ENOMEM. */
cJSON *api_error_body(enum api_dialect d, const struct api_error *e);
const char *api_openai_error_type(int status);

/* Frames: "data: <json>\n\n", "data: [DONE]\n\n", "<json>\n". Errors:
 * SH_ENOMEM, SH_ETOOBIG (the strbuf's cap). */
int api_sse_frame(struct sh_strbuf *out, const cJSON *obj);
int api_sse_done(struct sh_strbuf *out);
int api_ndjson_line(struct sh_strbuf *out, const cJSON *obj);

const char *api_finish_openai(enum api_finish f); /* "stop"/"length"/"tool_calls" */
const char *api_finish_ollama(enum api_finish f); /* "stop"/"length" */

/* OpenAI. Objects are returned (cJSON_Delete), NULL on ENOMEM. */
/* A tool call {"index"?, "id", "type":"function", "function":{"name",
 * "arguments"}}: with_index for stream deltas. id must be set. */
cJSON *api_oai_tool_call(const struct api_tool_call *tc, size_t index, bool with_index);
/* One entry of choices[0].logprobs.content. */
cJSON *api_oai_logprob(const struct api_token_logprob *lp);
/* The legacy completions logprobs object {"tokens","token_logprobs",
 * "top_logprobs","text_offset"}; api_oai_legacy_logprobs_add appends n
 * tokens starting at byte offset *offset (advanced). */
cJSON *api_oai_legacy_logprobs_new(void);
int api_oai_legacy_logprobs_add(cJSON *obj,
                                const struct api_token_logprob *lps,
                                size_t n,
                                uint64_t *offset);
struct api_oai_message {
    const char *content;     /* NULL = null */
    const char *reasoning;   /* NULL or "" = omitted */
    const cJSON *tool_calls; /* array from api_oai_tool_call; NULL/empty = omitted */
};
cJSON *api_oai_chat_completion(const struct api_resp_meta *m,
                               const struct api_oai_message *msg,
                               const cJSON *logprobs_content,
                               enum api_finish finish,
                               const struct api_gen_result *res);
/* A chunk. role: include "role":"assistant" (with "content":"" when no
 * content). finish: NULL = null. logprobs_content: entries for this chunk or
 * NULL. usage_null: add "usage":null (include_usage streams). */
struct api_oai_delta {
    bool role;
    const char *content;     /* NULL = omitted */
    const char *reasoning;   /* NULL = omitted */
    const cJSON *tool_calls; /* with index; NULL = omitted */
};
cJSON *api_oai_chat_chunk(const struct api_resp_meta *m,
                          const struct api_oai_delta *d,
                          const cJSON *logprobs_content,
                          const enum api_finish *finish,
                          bool usage_null);
cJSON *api_oai_text_completion(const struct api_resp_meta *m,
                               const char *text,
                               const cJSON *legacy_logprobs,
                               enum api_finish finish,
                               const struct api_gen_result *res);
cJSON *api_oai_text_chunk(const struct api_resp_meta *m,
                          const char *text,
                          const cJSON *legacy_logprobs,
                          const enum api_finish *finish,
                          bool usage_null);
/* The include_usage chunk: "choices": [] and "usage". */
cJSON *
api_oai_usage_chunk(const struct api_resp_meta *m, bool chat, const struct api_gen_result *res);
cJSON *api_oai_model(const struct api_model_info *mi);
cJSON *api_oai_model_list(const struct api_model_info *models, size_t n);

/* Ollama. */
cJSON *api_oll_tool_call(const struct api_tool_call *tc, size_t index);
cJSON *api_oll_logprob(const struct api_token_logprob *lp);
struct api_oll_message {
    const char *content;
    const char *thinking;    /* NULL or "" = omitted */
    const cJSON *tool_calls; /* NULL or empty = omitted */
};
/* A streamed /api/chat line (done:false). */
cJSON *api_oll_chat_line(const struct api_resp_meta *m,
                         const struct api_oll_message *msg,
                         const cJSON *logprobs);
/* The last /api/chat object: done, done_reason, durations. res NULL: the
 * "load" answer to a request without messages. total_ns from the HTTP
 * layer. */
cJSON *api_oll_chat_final(const struct api_resp_meta *m,
                          const struct api_oll_message *msg,
                          const cJSON *logprobs,
                          const struct api_gen_result *res,
                          uint64_t total_ns);
cJSON *api_oll_generate_line(const struct api_resp_meta *m,
                             const char *response,
                             const char *thinking,
                             const cJSON *logprobs);
cJSON *api_oll_generate_final(const struct api_resp_meta *m,
                              const char *response,
                              const char *thinking,
                              const cJSON *logprobs,
                              const struct api_gen_result *res,
                              uint64_t total_ns);
/* /api/tags, /api/ps (now: unix seconds, for expires_at), /api/show,
 * /api/version. */
cJSON *api_oll_tags(const struct api_model_info *models, size_t n);
cJSON *api_oll_ps(const struct api_model_info *models, size_t n);
cJSON *api_oll_show(const struct api_model_info *mi, bool verbose);
cJSON *api_oll_version(const char *version);

/* ---- the generation driver (gen.c; I/O) ---------------------------------- */

enum api_gen_shape {
    API_SHAPE_OAI_CHAT = 0,
    API_SHAPE_OAI_COMPLETION = 1,
    API_SHAPE_OLL_CHAT = 2,
    API_SHAPE_OLL_GENERATE = 3,
};

/* Runs req (taken, whatever happens) for r on be: model_id is copied,
 * generation started, deltas streamed or gathered, r answered; a client that
 * goes away cancels the generation. */
void api_gen_run(struct api_request *r,
                 const struct api_backend *be,
                 struct api_gen_request *req,
                 const char *model_id,
                 enum api_gen_shape shape);

/* Random ids for responses and tool calls: prefix + 24 [a-zA-Z0-9]. */
void api_random_id(const char *prefix, char *out, size_t cap);

/* Wall clock (for created / created_at). */
void api_wall_clock(int64_t *sec, long *nsec);

/* Route registration (routes_openai.c, routes_ollama.c). */
int api_openai_register(struct api_server *s, const struct api_backend *be, struct sh_err *err);
int api_ollama_register(struct api_server *s,
                        const struct api_backend *be,
                        const char *version,
                        struct sh_err *err);

/* The backend's model list; on failure replies ("listing models: ...", in
 * r's dialect) and returns false. *models borrowed until return to the
 * loop. */
bool api_list_models(struct api_request *r,
                     const struct api_backend *be,
                     const struct api_model_info **models,
                     size_t *n);
/* Looks the request's model up through be; on failure replies (404/400/500
 * in r's dialect) and returns false. *mi borrowed until return to the loop. */
bool api_find_model(struct api_request *r,
                    const struct api_backend *be,
                    const char *name,
                    const struct api_model_info **mi);

#endif
