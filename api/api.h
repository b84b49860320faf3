/* api/api.h: the HTTP server on :52415 (libevent evhttp) and its contract
 * with whoever runs models.
 *
 * Three parts:
 *   1. the server core: bind, limits (body, headers), API key, CORS, a route
 *      table other modules add to (the control plane of issue 4), and the
 *      request object handlers answer through (one reply, or one stream);
 *   2. the backend contract (struct api_backend): list models, start a
 *      generation from a validated struct api_gen_request with callbacks,
 *      cancel it. The OpenAI (/v1/...) and Ollama (/api/...) routes use only
 *      this, so the agent plugs its runner supervisor in here;
 *   3. the validated generation request both dialects are parsed into.
 *
 * Threading: everything runs on the thread of the event_base given to
 * api_server_new; backend callbacks must be called on that thread too.
 * Signals: the process must ignore SIGPIPE (main's job, as in libevent's
 * sample/http-server.c): libevent writes with writev, and a write to a
 * client that went away would otherwise kill the process.
 *
 * Error bodies follow the dialect of the path: /v1/... gets OpenAI's
 * {"error":{"message","type","param","code"}}, everything else Ollama's
 * {"error":"..."} (the control plane uses the same shape).
 */
#ifndef API_API_H
#define API_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/err.h"

struct event_base;

/* ======================================================================
 * 1. Server core
 * ==================================================================== */

#define API_DEFAULT_PORT        52415
#define API_DEFAULT_MAX_BODY    (8u << 20) /* bytes of request body */
#define API_DEFAULT_MAX_HEADERS (16u << 10)
#define API_DEFAULT_IDLE_S      120 /* keep-alive/read/write timeout */

struct api_backend;

struct api_config {
    const char *address;     /* "0.0.0.0", "127.0.0.1", "::"; NULL = "0.0.0.0" */
    uint16_t port;           /* 0 = any free port (tests); see api_server_port */
    size_t max_body;         /* 0 = API_DEFAULT_MAX_BODY. Bodies above it get 413
                              * in the endpoint's dialect. libevent 2.1 has no
                              * hook for its own limit, so it is set at twice
                              * this (bounding memory) and a body above that gets
                              * libevent's own 413 page instead. */
    size_t max_headers;      /* 0 = API_DEFAULT_MAX_HEADERS; above: libevent 400 */
    int idle_timeout_s;      /* 0 = API_DEFAULT_IDLE_S */
    const char *api_key;     /* NULL/"" = none; else every route but those added
                              * with API_ROUTE_NO_AUTH (/health) needs
                              * "Authorization: Bearer KEY" (401 otherwise) */
    const char *cors_origin; /* NULL = CORS off; "*" or one origin
                              * ("https://app.example") to allow */
    const char *version;     /* reported by /api/version; NULL = SHOAL_VERSION */
};

struct api_server;

/* Binds cfg->address:cfg->port on base and, when backend is non-NULL,
 * registers the generation routes:
 *   OpenAI  POST /v1/chat/completions, POST /v1/completions, GET /v1/models,
 *           GET /v1/models/{id}; answers name the model by its shoal id.
 *   Ollama  GET|HEAD /, GET /api/version, GET /api/tags, GET /api/ps,
 *           POST /api/show, POST /api/chat, POST /api/generate; answers echo
 *           the name the client sent, as Ollama does.
 * cfg is copied (strings too); backend is borrowed until api_server_free.
 * *out is returned; free with api_server_free.
 * Errors: SH_EIO (bind failed: address in use, permission), SH_EINVAL (bad
 * config), SH_ENOMEM. */
int api_server_new(struct event_base *base,
                   const struct api_config *cfg,
                   const struct api_backend *backend,
                   struct api_server **out,
                   struct sh_err *err);

/* Closes the listener and every connection: generations in flight are
 * cancelled through their close callbacks. Accepts NULL. Call on the loop's
 * thread (or after the loop stopped). */
void api_server_free(struct api_server *s);

/* The port actually bound (useful with port 0). */
uint16_t api_server_port(const struct api_server *s);

/* ---- routes ---------------------------------------------------------- */

enum api_dialect {
    API_DIALECT_OPENAI = 0, /* /v1/... */
    API_DIALECT_OLLAMA = 1, /* /api/..., / */
    API_DIALECT_PLAIN = 2,  /* control plane: {"error":"..."} like Ollama */
};

enum api_method {
    API_GET = 1 << 0, /* GET routes answer HEAD too (headers only) */
    API_POST = 1 << 1,
    API_PUT = 1 << 2,
    API_DELETE = 1 << 3,
    API_HEAD = 1 << 4, /* only as api_request_method's answer */
    API_OPTIONS = 1 << 5,
    API_PATCH = 1 << 6,
};

#define API_ROUTE_NO_AUTH 0x1 /* reachable without the API key (/health) */

struct api_request;

/* A route handler. It must end in exactly one of: an api_reply_* call, or
 * api_stream_start ... api_stream_end, or api_request_abort, either before
 * it returns or later from the loop (then register a close callback so a
 * client that goes away is noticed). r is valid until that final call, or
 * until the close callback has run. */
typedef void (*api_handler_fn)(struct api_request *r, void *arg);

struct api_route {
    unsigned methods; /* API_GET | API_POST ... */
    const char *path; /* exact ("/v1/models"), or ending in "{id}"
                       * ("/v1/models/{id}"): the rest of the path,
                       * '/' included, URI-decoded, is the parameter */
    enum api_dialect dialect;
    unsigned flags; /* API_ROUTE_NO_AUTH */
    api_handler_fn fn;
    void *arg; /* borrowed until api_server_free */
};

/* Adds a route (copied). An exact path wins over a "{id}" prefix; a path
 * whose methods do not match answers 405 with an Allow header; an unknown
 * path 404, both in the path's dialect.
 * Errors: SH_EEXIST (same path and an overlapping method), SH_EINVAL,
 * SH_ENOMEM. */
int api_server_add_route(struct api_server *s, const struct api_route *route, struct sh_err *err);

/* ---- the request a handler answers ----------------------------------- */

enum api_method api_request_method(const struct api_request *r);
enum api_dialect api_request_dialect(const struct api_request *r);
/* The URI-decoded path, without the query. */
const char *api_request_path(const struct api_request *r);
/* The "{id}" part of the route, URI-decoded; NULL for exact routes. */
const char *api_request_param(const struct api_request *r);
/* A query parameter, decoded; NULL when absent. */
const char *api_request_query(const struct api_request *r, const char *key);
/* A request header (case-insensitive name); NULL when absent. */
const char *api_request_header(const struct api_request *r, const char *name);
/* The body (NUL-terminated, len bytes without the NUL); "" for none. */
const char *api_request_body(const struct api_request *r, size_t *len);
/* Monotonic time (sh_now_ns) when the request was dispatched. */
uint64_t api_request_start_ns(const struct api_request *r);

/* An error to send: status plus, for OpenAI, type/code/param. */
#define API_PARAM_LEN 96
struct api_error {
    int status;                /* HTTP status (400, 404, 413, 503...) */
    const char *type;          /* OpenAI "type"; NULL = from status */
    const char *code;          /* OpenAI "code" (static string); NULL = null */
    char param[API_PARAM_LEN]; /* OpenAI "param"; "" = null */
    int retry_after_s;         /* > 0: a Retry-After header */
    char message[SH_ERR_MSG_LEN];
};

/* Fills e and returns status (for `return api_error_set(...)`). */
int api_error_set(
    struct api_error *e, int status, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Final replies. The body is serialized (json borrowed for the call). */
void api_reply_json(struct api_request *r, int status, const cJSON *json);
void api_reply_data(
    struct api_request *r, int status, const char *content_type, const void *data, size_t len);
/* The error in r's dialect (with Retry-After when e->retry_after_s > 0). */
void api_reply_error(struct api_request *r, const struct api_error *e);

/* Streaming: a chunked reply. Writes are queued. api_stream_write errors:
 * SH_ECLOSED (more than API_MAX_PENDING_OUT bytes wait for a client that
 * stopped reading), SH_ENOMEM; the handler then ends with
 * api_request_abort. */
#define API_MAX_PENDING_OUT (4u << 20)
void api_stream_start(struct api_request *r, int status, const char *content_type);
int api_stream_write(struct api_request *r, const void *data, size_t len);
void api_stream_end(struct api_request *r);
bool api_stream_started(const struct api_request *r);

/* Ends r by closing its connection, whatever was sent. r is freed. */
void api_request_abort(struct api_request *r);

/* Called once when the client goes away (EOF or error on the socket, also
 * while no byte of the reply was written yet) or the server is freed, before
 * the handler replied. r is dead when fn returns: fn must not reply. */
typedef void (*api_close_fn)(struct api_request *r, void *arg);
void api_request_on_close(struct api_request *r, api_close_fn fn, void *arg);

/* ======================================================================
 * 2. Backend contract
 * ==================================================================== */

/* Sampling parameters, OpenAI and Ollama names mapped onto one set. A false
 * has_* means "unset": the backend applies the model's generation_config
 * defaults (or its own). */
struct api_sampling {
    bool has_temperature;
    double temperature; /* >= 0; 0 = greedy */
    bool has_top_p;
    double top_p; /* [0, 1]; 0 keeps only the most likely token */
    bool has_top_k;
    int top_k; /* >= 0; 0 = off */
    bool has_min_p;
    double min_p; /* [0, 1] */
    bool has_repetition_penalty;
    double repetition_penalty; /* (0, 10]; 1 = off (HF semantics) */
    bool has_presence_penalty;
    double presence_penalty; /* [-2, 2] */
    bool has_frequency_penalty;
    double frequency_penalty; /* [-2, 2] */
    bool has_seed;
    uint64_t seed; /* unset = random */
    bool has_repeat_last_n;
    int repeat_last_n; /* Ollama option, a hint: penalty window (-1 = ctx) */
};

/* ---- models ------------------------------------------------------------ */

#define API_CAP_COMPLETION 0x1
#define API_CAP_TOOLS      0x2 /* the chat template renders tools */
#define API_CAP_THINKING   0x4 /* the model emits reasoning */

/* One model the backend serves. Strings are borrowed (see list_models). */
struct api_model_info {
    const char *id;             /* shoal id: folder name or HF repo id */
    const char *const *aliases; /* more names (Ollama-style "qwen3:0.6b"); may be NULL */
    size_t n_aliases;
    const char *family;                  /* "llama", "qwen3" ...; NULL = "" */
    const char *format;                  /* "safetensors"; NULL = "" */
    const char *quantization;            /* "BF16", "F32", "MLX-4BIT" ...; NULL = "" */
    const char *digest;                  /* sha256 hex of the weights' index; NULL = "" */
    const char *chat_template;           /* Jinja source; NULL = "" */
    const struct api_sampling *defaults; /* generation_config; may be NULL */
    uint64_t size_bytes;                 /* weight bytes */
    uint64_t n_params;
    int64_t modified_unix; /* seconds */
    int context_length;    /* tokens the runner's context holds */
    int embedding_length;  /* 0 = unknown, likewise below */
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int vocab_size;
    unsigned caps;        /* API_CAP_* */
    bool loaded;          /* a runner holds it now (/api/ps) */
    int64_t expires_unix; /* 0 = stays loaded (reported as year 9999) */
    uint64_t size_vram;   /* 0 on CPU */
};

/* ---- the validated generation request ---------------------------------- */

enum api_gen_kind {
    API_GEN_CHAT = 0,       /* render messages with the chat template */
    API_GEN_COMPLETION = 1, /* prompt is the raw text (no template) */
};

enum api_tool_choice {
    API_TOOL_CHOICE_NONE = 0,     /* do not call tools (default without tools) */
    API_TOOL_CHOICE_AUTO = 1,     /* the model decides (default with tools) */
    API_TOOL_CHOICE_REQUIRED = 2, /* must call at least one tool */
    API_TOOL_CHOICE_FUNCTION = 3, /* must call tool_choice_name */
};

enum api_format {
    API_FORMAT_TEXT = 0,
    API_FORMAT_JSON = 1,        /* OpenAI json_object, Ollama "json" */
    API_FORMAT_JSON_SCHEMA = 2, /* json_schema: a JSON Schema object */
};

enum api_think {
    API_THINK_UNSET = 0, /* the model's default */
    API_THINK_OFF = 1,
    API_THINK_ON = 2, /* think_level may name a level */
};

/* max_tokens values besides a count >= 0. */
#define API_MAX_TOKENS_UNSET (-1) /* until a stop or the context is full */
#define API_MAX_TOKENS_FILL                                                                        \
    (-2) /* Ollama num_predict -2: fill the context                                                \
          * (the same as UNSET for shoal) */

#define API_MAX_STOP         16  /* stop strings per request */
#define API_MAX_STOP_LEN     512 /* bytes per stop string */
#define API_MAX_TOOLS        128 /* tools per request (OpenAI's limit) */
#define API_MAX_TOP_LOGPROBS 20

/* Parameters a dialect accepts but shoal does not act on; the routes log
 * them at warn (template) or debug level. */
#define API_IGNORED_TEMPLATE   0x1 /* Ollama "template" */
#define API_IGNORED_KEEP_ALIVE 0x2 /* models stay loaded */
#define API_IGNORED_USER       0x4 /* OpenAI "user" */
#define API_IGNORED_HW_OPTIONS 0x8 /* Ollama num_gpu, num_thread, use_mmap... */

/* Everything a generation needs, validated. Owned by the HTTP layer; the
 * backend borrows it from generate() until the generation ends (on_done or
 * on_error delivered, or cancel returned).
 *
 * messages (API_GEN_CHAT) is normalized for chat templates, whatever the
 * dialect:
 *   [{"role": "system"|"user"|"assistant"|"tool",    ("developer" -> system)
 *     "content": "text",                 (string; text parts joined by "\n")
 *     "reasoning_content": "...",        (assistant, optional; Ollama thinking)
 *     "tool_calls": [{"id": "...", "type": "function",
 *                     "function": {"name": "...", "arguments": {...}}}],
 *                                         (assistant, optional; arguments an object)
 *     "tool_call_id": "...",             (tool, optional)
 *     "name": "..."}]                    (optional; tool: the function's name)
 * Ollama /api/generate without raw becomes API_GEN_CHAT with [system?, user].
 * tools is [{"type":"function","function":{"name","description"?,
 * "parameters"?}}], names checked unique. */
struct api_gen_request {
    enum api_dialect dialect; /* who asked (logs) */
    enum api_gen_kind kind;
    const char *model;    /* the name the client sent */
    const char *model_id; /* the resolved shoal id (set by the routes) */
    cJSON *messages;      /* API_GEN_CHAT: normalized, see above */
    const char *prompt;   /* API_GEN_COMPLETION */
    const cJSON *tools;   /* NULL when none */
    enum api_tool_choice tool_choice;
    const char *tool_choice_name; /* API_TOOL_CHOICE_FUNCTION */
    bool parallel_tool_calls;     /* default true */
    struct api_sampling sampling;
    int64_t max_tokens;             /* >= 0, or API_MAX_TOKENS_UNSET/_FILL */
    const char *stop[API_MAX_STOP]; /* non-empty, <= API_MAX_STOP_LEN bytes */
    size_t n_stop;
    bool logprobs;    /* per-token logprobs wanted */
    int top_logprobs; /* 0..API_MAX_TOP_LOGPROBS alternatives */
    enum api_format format;
    const cJSON *json_schema; /* API_FORMAT_JSON_SCHEMA */
    enum api_think think;
    const char *think_level; /* "low", "medium", "high", "max" or NULL */
    bool stream;
    bool include_usage; /* OpenAI stream_options.include_usage */
    int64_t num_ctx;    /* Ollama num_ctx; 0 = unset. A hint: the
                         * backend may refuse one above the model's */
    unsigned ignored;   /* API_IGNORED_* seen in the request */
    cJSON *root;        /* the parsed body; owns the strings above */
};

/* ---- what a generation reports ---------------------------------------- */

/* A complete tool call (the backend parses the model's tool syntax and
 * reports each call once, whole). */
struct api_tool_call {
    const char *id; /* NULL: the HTTP layer makes "call_..." */
    const char *name;
    const char *arguments; /* a JSON object, as text */
};

struct api_top_logprob {
    const char *token; /* raw bytes (may be part of a UTF-8 character) */
    size_t token_len;
    double logprob;
};

struct api_token_logprob {
    const char *token;
    size_t token_len;
    double logprob;
    const struct api_top_logprob *top; /* n_top <= req->top_logprobs */
    size_t n_top;
};

/* One step of output. Text is UTF-8; the HTTP layer replaces invalid
 * sequences and NUL bytes with U+FFFD. Everything is borrowed for the call.
 * For API_GEN_COMPLETION all text goes in content (a raw completion has no
 * reasoning field; reasoning there is dropped). */
struct api_gen_delta {
    const char *content; /* visible text; NULL or "" when none */
    size_t content_len;
    const char *reasoning; /* thinking text; NULL or "" when none */
    size_t reasoning_len;
    const struct api_tool_call *tool_calls;
    size_t n_tool_calls;
    const struct api_token_logprob *logprobs; /* one per token, if asked */
    size_t n_logprobs;
};

enum api_finish {
    API_FINISH_STOP = 0,       /* end of turn or a stop string */
    API_FINISH_LENGTH = 1,     /* max_tokens or the context is full */
    API_FINISH_TOOL_CALLS = 2, /* ended after tool calls */
};

struct api_gen_result {
    enum api_finish finish;
    uint64_t prompt_tokens;     /* exact, as the model saw them */
    uint64_t completion_tokens; /* exact, reasoning included */
    uint64_t load_ns;           /* waiting for / loading the model */
    uint64_t prompt_eval_ns;    /* prefill */
    uint64_t eval_ns;           /* decode */
};

/* An error that ends a generation. code is a SH_E* code mapped to HTTP by
 * api_status_for_code: SH_ERANGE (context overflow) / SH_EINVAL /
 * SH_EUNSUPPORTED -> 400, SH_ENOTFOUND -> 404, SH_EBUSY -> 503 (+ Retry-After
 * when retry_after_s > 0), anything else (runner crashed: SH_ECLOSED, SH_EIO)
 * -> 500. */
struct api_gen_error {
    int code;
    int retry_after_s;
    const char *message; /* borrowed for the call */
};

/* Called on the server's loop thread, never from inside generate() itself.
 * Any number of on_delta, then exactly one of on_done / on_error; after
 * that, or once cancel returned, never again. */
struct api_gen_callbacks {
    void (*on_delta)(void *arg, const struct api_gen_delta *d);
    void (*on_done)(void *arg, const struct api_gen_result *res);
    void (*on_error)(void *arg, const struct api_gen_error *e);
};

struct api_gen_handle; /* the backend's */

struct api_backend {
    void *ctx;

    /* The served models: *models is borrowed until control returns to the
     * event loop. Errors: any SH_E* (the routes answer 500). */
    int (*list_models)(void *ctx,
                       const struct api_model_info **models,
                       size_t *n,
                       struct sh_err *err);

    /* Starts (or queues) a generation of req->model_id. On success *out is
     * the handle for cancel, valid until the final callback or cancel.
     * Errors (nothing started, no callback will come):
     *   SH_ENOTFOUND    no such model (404)
     *   SH_EBUSY        the model's queue is full (503; *retry_after_s set)
     *   SH_ERANGE       prompt longer than the context (400)
     *   SH_EINVAL, SH_EUNSUPPORTED  a parameter the model cannot take (400)
     *   others          500 */
    int (*generate)(void *ctx,
                    const struct api_gen_request *req,
                    const struct api_gen_callbacks *cb,
                    void *cb_arg,
                    struct api_gen_handle **out,
                    int *retry_after_s,
                    struct sh_err *err);

    /* Stops a generation (the runner stops at its next token); no callback
     * follows. May be called from inside on_delta (the HTTP layer does when
     * the client stopped reading); must not be called after the final
     * callback. */
    void (*cancel)(void *ctx, struct api_gen_handle *h);
};

/* ---- model names --------------------------------------------------------
 * How a name a client sends finds a model (case-insensitive):
 *   1. the shoal id ("kjv-llama-16m", "Qwen/Qwen3-0.6B") or one of its
 *      aliases, exactly;
 *   2. the same with an Ollama ":latest" tag removed ("kjv-llama-16m:latest");
 *   3. for a name without '/', the part of an HF id after its '/'
 *      ("qwen3-0.6b" for "Qwen/Qwen3-0.6B"), when exactly one model has it.
 * Ollama lists a model as "<id>:latest" (the id when it has a tag).
 * Errors: SH_EINVAL (empty, longer than API_MAX_MODEL_NAME, or a character
 * outside [A-Za-z0-9._:/@+-]), SH_ENOTFOUND. */
#define API_MAX_MODEL_NAME 256
int api_model_resolve(const struct api_model_info *models,
                      size_t n,
                      const char *name,
                      size_t *index);

/* SH_E* -> HTTP status (the one place it is decided). */
int api_status_for_code(int code);

#endif
