/* api/gen.c: one generation from request to reply, for all four shapes
 * (OpenAI chat and completions, Ollama chat and generate): start it on the
 * backend, turn each delta into an SSE chunk or NDJSON line (streaming) or
 * gather it (not streaming), finish with the dialect's last frames, map
 * errors to statuses, and cancel the backend's work when the client goes
 * away or stops reading.
 *
 * A streamed reply starts at the first delta, not before: an error the
 * backend reports before any output (context overflow found while
 * tokenizing, a runner that died) still gets a proper 4xx/5xx status.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/util.h>

#include "api/internal.h"
#include "common/log.h"

#define GATHER_MAX (64u << 20) /* bytes of text gathered for one reply */

struct gen_call {
    struct api_request *r;
    const struct api_backend *be;
    struct api_gen_request req;
    enum api_gen_shape shape;
    struct api_gen_handle *h;
    char *model_id;
    char id[48];
    int64_t created;
    bool role_sent;
    bool starting;                       /* inside be->generate: no callback yet */
    size_t n_tool_calls;                 /* index of the next tool call */
    uint64_t text_offset;                /* completions logprobs */
    struct sh_strbuf content, reasoning; /* gathered raw bytes */
    cJSON *tool_calls;                   /* gathered, dialect-shaped */
    cJSON *logprobs;                     /* gathered, dialect-shaped */
};

void api_random_id(const char *prefix, char *out, size_t cap)
{
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned char raw[24];
    size_t n = strlen(prefix);

    evutil_secure_rng_get_bytes(raw, sizeof raw);
    if (cap < n + sizeof raw + 1) {
        if (cap)
            out[0] = '\0';
        return;
    }
    memcpy(out, prefix, n);
    for (size_t i = 0; i < sizeof raw; i++)
        out[n + i] = alnum[raw[i] % (sizeof alnum - 1)];
    out[n + sizeof raw] = '\0';
}

void api_wall_clock(int64_t *sec, long *nsec)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    *sec = (int64_t)ts.tv_sec;
    *nsec = ts.tv_nsec;
}

static void call_free(struct gen_call *c)
{
    api_gen_request_clear(&c->req);
    sh_strbuf_free(&c->content);
    sh_strbuf_free(&c->reasoning);
    cJSON_Delete(c->tool_calls);
    cJSON_Delete(c->logprobs);
    free(c->model_id);
    free(c);
}

static bool is_openai(const struct gen_call *c)
{
    return c->shape == API_SHAPE_OAI_CHAT || c->shape == API_SHAPE_OAI_COMPLETION;
}

/* The client is gone: r is dead, stop the backend. */
static void on_close(struct api_request *r, void *arg)
{
    struct gen_call *c = arg;

    (void)r;
    SH_LOG(SH_LOG_DEBUG, "api", "%s: client gone, generation cancelled", c->id);
    c->be->cancel(c->be->ctx, c->h);
    call_free(c);
}

/* Ends the call with an error: a status when nothing was sent yet, else an
 * error frame in the dialect's stream format. */
static void fail(struct gen_call *c, const struct api_error *e)
{
    if (!api_stream_started(c->r)) {
        api_reply_error(c->r, e);
    } else {
        struct sh_strbuf sb;
        cJSON *body = api_error_body(is_openai(c) ? API_DIALECT_OPENAI : API_DIALECT_OLLAMA, e);
        sh_strbuf_init(&sb, 1 << 16);
        if (body && (is_openai(c) ? api_sse_frame(&sb, body) : api_ndjson_line(&sb, body)) == 0)
            api_stream_write(c->r, sb.buf, sb.len);
        SH_LOG(SH_LOG_WARN, "api", "%s: failed mid-stream: %s", c->id, e->message);
        cJSON_Delete(body);
        sh_strbuf_free(&sb);
        api_stream_end(c->r);
    }
    call_free(c);
}

/* Our side failed (out of memory, the client stopped reading): stop the
 * backend too. */
static void abandon(struct gen_call *c, int code)
{
    struct api_error e;

    c->be->cancel(c->be->ctx, c->h);
    if (code == SH_ECLOSED) {
        SH_LOG(SH_LOG_INFO, "api", "%s: client stopped reading, dropped", c->id);
        api_request_abort(c->r);
        call_free(c);
        return;
    }
    api_error_set(&e, 500, NULL, NULL, "%s",
                  code == SH_ETOOBIG ? "response too large" : "out of memory");
    fail(c, &e);
}

static void meta_of(const struct gen_call *c, struct api_resp_meta *m, char *when)
{
    int64_t sec;
    long nsec;

    api_wall_clock(&sec, &nsec);
    api_rfc3339_nano(sec, nsec, when);
    m->id = c->id;
    m->created = c->created;
    m->created_at = when;
    m->model = is_openai(c) ? c->model_id : c->req.model;
}

/* Sends obj as one frame; takes obj. */
static int send_obj(struct gen_call *c, cJSON *obj)
{
    struct sh_strbuf sb;
    int rc;

    if (!obj)
        return SH_ENOMEM;
    if (!api_stream_started(c->r))
        api_stream_start(c->r, 200, is_openai(c) ? "text/event-stream" : "application/x-ndjson");
    sh_strbuf_init(&sb, GATHER_MAX);
    rc = is_openai(c) ? api_sse_frame(&sb, obj) : api_ndjson_line(&sb, obj);
    if (!rc)
        rc = api_stream_write(c->r, sb.buf, sb.len);
    sh_strbuf_free(&sb);
    cJSON_Delete(obj);
    return rc;
}

/* Tool calls in the dialect's shape, numbered from c->n_tool_calls. */
static cJSON *tool_calls_of(struct gen_call *c, const struct api_gen_delta *d, bool with_index)
{
    cJSON *arr = cJSON_CreateArray();

    for (size_t i = 0; arr && i < d->n_tool_calls; i++) {
        const struct api_tool_call *in = &d->tool_calls[i];
        char id[40], *s[3] = {NULL, NULL, NULL};
        struct api_tool_call tc;
        cJSON *o = NULL;
        if (!in->id)
            api_random_id("call_", id, sizeof id);
        /* the model wrote these: clean them like any output text */
        s[0] = api_utf8_clean(in->id ? in->id : id, strlen(in->id ? in->id : id));
        s[1] = api_utf8_clean(in->name ? in->name : "", in->name ? strlen(in->name) : 0);
        s[2] = api_utf8_clean(in->arguments ? in->arguments : "{}",
                              in->arguments ? strlen(in->arguments) : 2);
        tc = (struct api_tool_call){s[0], s[1], s[2]};
        if (s[0] && s[1] && s[2])
            o = is_openai(c) ? api_oai_tool_call(&tc, c->n_tool_calls + i, with_index)
                             : api_oll_tool_call(&tc, c->n_tool_calls + i);
        free(s[0]);
        free(s[1]);
        free(s[2]);
        if (!o) {
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* Per-token logprobs in the shape of the endpoint (legacy object for
 * completions, entries for the others). */
static cJSON *logprobs_of(struct gen_call *c, const struct api_gen_delta *d)
{
    cJSON *arr;

    if (c->shape == API_SHAPE_OAI_COMPLETION) {
        cJSON *o = api_oai_legacy_logprobs_new();
        if (o && api_oai_legacy_logprobs_add(o, d->logprobs, d->n_logprobs, &c->text_offset)) {
            cJSON_Delete(o);
            return NULL;
        }
        return o;
    }
    arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < d->n_logprobs; i++) {
        cJSON *o = c->shape == API_SHAPE_OAI_CHAT ? api_oai_logprob(&d->logprobs[i])
                                                  : api_oll_logprob(&d->logprobs[i]);
        if (!o) {
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static cJSON *stream_obj(struct gen_call *c,
                         const struct api_gen_delta *d,
                         const char *text,
                         const char *think,
                         cJSON *tools,
                         cJSON *lps)
{
    struct api_resp_meta m;
    char when[API_RFC3339_LEN];

    meta_of(c, &m, when);
    switch (c->shape) {
    case API_SHAPE_OAI_CHAT: {
        struct api_oai_delta od = {!c->role_sent, text, think, d->n_tool_calls ? tools : NULL};
        c->role_sent = true;
        return api_oai_chat_chunk(&m, &od, d->n_logprobs ? lps : NULL, NULL, c->req.include_usage);
    }
    case API_SHAPE_OAI_COMPLETION:
        return api_oai_text_chunk(&m, text ? text : "", d->n_logprobs ? lps : NULL, NULL,
                                  c->req.include_usage);
    case API_SHAPE_OLL_CHAT: {
        struct api_oll_message om = {text, think, tools};
        return api_oll_chat_line(&m, &om, lps);
    }
    case API_SHAPE_OLL_GENERATE:
    default:
        return api_oll_generate_line(&m, text, think, lps);
    }
}

static int stream_delta(struct gen_call *c, const struct api_gen_delta *d)
{
    char *text = NULL, *think = NULL;
    cJSON *tools = NULL, *lps = NULL;
    int rc = SH_ENOMEM;

    if (d->content_len && !(text = api_utf8_clean(d->content, d->content_len)))
        goto out;
    /* Completions have no reasoning field: the backend sends raw text there. */
    if (d->reasoning_len && c->shape != API_SHAPE_OAI_COMPLETION &&
        !(think = api_utf8_clean(d->reasoning, d->reasoning_len)))
        goto out;
    if (d->n_tool_calls && !(tools = tool_calls_of(c, d, true)))
        goto out;
    if (d->n_logprobs && !(lps = logprobs_of(c, d)))
        goto out;
    rc = 0;
    if (!text && !think && !tools && !lps) /* nothing to say */
        goto out;
    c->n_tool_calls += d->n_tool_calls;
    rc = send_obj(c, stream_obj(c, d, text, think, tools, lps));
out:
    free(text);
    free(think);
    cJSON_Delete(tools);
    cJSON_Delete(lps);
    return rc;
}

static int append_all(cJSON *dst, cJSON *src)
{
    while (src && src->child) {
        cJSON *it = cJSON_DetachItemViaPointer(src, src->child);
        cJSON_AddItemToArray(dst, it);
    }
    cJSON_Delete(src);
    return 0;
}

static int gather_delta(struct gen_call *c, const struct api_gen_delta *d)
{
    int rc;

    if (d->content_len && (rc = sh_strbuf_append(&c->content, d->content, d->content_len)))
        return rc;
    if (d->reasoning_len &&
        (rc = c->shape == API_SHAPE_OAI_COMPLETION
                  ? 0
                  : sh_strbuf_append(&c->reasoning, d->reasoning, d->reasoning_len)))
        return rc;
    if (d->n_tool_calls) {
        cJSON *t = tool_calls_of(c, d, false);
        if (!t || (!c->tool_calls && !(c->tool_calls = cJSON_CreateArray()))) {
            cJSON_Delete(t);
            return SH_ENOMEM;
        }
        append_all(c->tool_calls, t);
        c->n_tool_calls += d->n_tool_calls;
    }
    if (d->n_logprobs) {
        if (c->shape == API_SHAPE_OAI_COMPLETION) {
            if ((!c->logprobs && !(c->logprobs = api_oai_legacy_logprobs_new())) ||
                api_oai_legacy_logprobs_add(c->logprobs, d->logprobs, d->n_logprobs,
                                            &c->text_offset))
                return SH_ENOMEM;
        } else {
            cJSON *l = logprobs_of(c, d);
            if (!l || (!c->logprobs && !(c->logprobs = cJSON_CreateArray()))) {
                cJSON_Delete(l);
                return SH_ENOMEM;
            }
            append_all(c->logprobs, l);
        }
    }
    return 0;
}

/* A backend calling back from inside generate() breaks the contract
 * (api.h); carrying on would free the call under api_gen_run's feet. */
static void check_contract(const struct gen_call *c)
{
    if (c->starting) {
        SH_LOG(SH_LOG_ERROR, "api", "backend contract broken: callback inside generate()");
        abort();
    }
}

static void on_delta(void *arg, const struct api_gen_delta *d)
{
    struct gen_call *c = arg;
    int rc;

    check_contract(c);
    rc = c->req.stream ? stream_delta(c, d) : gather_delta(c, d);

    if (rc)
        abandon(c, rc);
}

/* A turn that produced tool calls ends with "tool_calls" (as OpenAI and
 * Ollama's compatibility layer report it) even if the backend said stop. */
static enum api_finish finish_of(const struct gen_call *c, const struct api_gen_result *res)
{
    if (res->finish == API_FINISH_STOP && c->n_tool_calls > 0)
        return API_FINISH_TOOL_CALLS;
    return res->finish;
}

static int stream_done(struct gen_call *c, const struct api_gen_result *res)
{
    enum api_finish f = finish_of(c, res);
    uint64_t total = sh_now_ns() - api_request_start_ns(c->r);
    struct api_resp_meta m;
    char when[API_RFC3339_LEN];
    struct sh_strbuf sb;
    int rc = 0;

    meta_of(c, &m, when);
    switch (c->shape) {
    case API_SHAPE_OAI_CHAT: {
        struct api_oai_delta none = {false, NULL, NULL, NULL};
        if (!c->role_sent) {
            struct api_oai_delta role = {true, NULL, NULL, NULL};
            c->role_sent = true;
            rc = send_obj(c, api_oai_chat_chunk(&m, &role, NULL, NULL, c->req.include_usage));
        }
        if (!rc)
            rc = send_obj(c, api_oai_chat_chunk(&m, &none, NULL, &f, c->req.include_usage));
        if (!rc && c->req.include_usage)
            rc = send_obj(c, api_oai_usage_chunk(&m, true, res));
        break;
    }
    case API_SHAPE_OAI_COMPLETION:
        rc = send_obj(c, api_oai_text_chunk(&m, "", NULL, &f, c->req.include_usage));
        if (!rc && c->req.include_usage)
            rc = send_obj(c, api_oai_usage_chunk(&m, false, res));
        break;
    case API_SHAPE_OLL_CHAT: {
        struct api_oll_message om = {"", NULL, NULL};
        return send_obj(c, api_oll_chat_final(&m, &om, NULL, res, total));
    }
    case API_SHAPE_OLL_GENERATE:
        return send_obj(c, api_oll_generate_final(&m, "", NULL, NULL, res, total));
    }
    if (rc)
        return rc;
    sh_strbuf_init(&sb, 64);
    rc = api_sse_done(&sb);
    if (!rc)
        rc = api_stream_write(c->r, sb.buf, sb.len);
    sh_strbuf_free(&sb);
    return rc;
}

static cJSON *whole_obj(struct gen_call *c, const struct api_gen_result *res)
{
    enum api_finish f = finish_of(c, res);
    uint64_t total = sh_now_ns() - api_request_start_ns(c->r);
    char *text = api_utf8_clean(c->content.buf ? c->content.buf : "", c->content.len);
    char *think = api_utf8_clean(c->reasoning.buf ? c->reasoning.buf : "", c->reasoning.len);
    struct api_resp_meta m;
    char when[API_RFC3339_LEN];
    cJSON *o = NULL;

    if (!text || !think)
        goto out;
    meta_of(c, &m, when);
    switch (c->shape) {
    case API_SHAPE_OAI_CHAT: {
        /* OpenAI: content is null when the turn is only tool calls. */
        struct api_oai_message om = {*text || !c->tool_calls ? text : NULL, think, c->tool_calls};
        o = api_oai_chat_completion(&m, &om, c->logprobs, f, res);
        break;
    }
    case API_SHAPE_OAI_COMPLETION:
        o = api_oai_text_completion(&m, text, c->logprobs, f, res);
        break;
    case API_SHAPE_OLL_CHAT: {
        struct api_oll_message om = {text, think, c->tool_calls};
        o = api_oll_chat_final(&m, &om, c->logprobs, res, total);
        break;
    }
    case API_SHAPE_OLL_GENERATE:
        o = api_oll_generate_final(&m, text, think, c->logprobs, res, total);
        break;
    }
out:
    free(text);
    free(think);
    return o;
}

static void on_done(void *arg, const struct api_gen_result *res)
{
    struct gen_call *c = arg;
    int rc;

    check_contract(c);
    SH_LOG(SH_LOG_DEBUG, "api", "%s: done, %llu+%llu tokens", c->id,
           (unsigned long long)res->prompt_tokens, (unsigned long long)res->completion_tokens);
    if (c->req.stream) {
        rc = stream_done(c, res);
        if (rc == SH_ECLOSED) {
            api_request_abort(c->r);
        } else if (api_stream_started(c->r)) {
            api_stream_end(c->r);
        } else { /* only when a frame could not be built */
            struct api_error e;
            api_error_set(&e, 500, NULL, NULL, "out of memory");
            api_reply_error(c->r, &e);
        }
    } else {
        cJSON *o = whole_obj(c, res);
        api_reply_json(c->r, 200, o); /* NULL answers 500 */
        cJSON_Delete(o);
    }
    call_free(c);
}

/* SH_E* from the backend -> the error a client sees. */
static void
error_for(const struct gen_call *c, int code, int retry_after, const char *msg, struct api_error *e)
{
    int status = api_status_for_code(code);
    const char *ocode = NULL, *param = NULL;

    switch (code) {
    case SH_ENOTFOUND:
        ocode = "model_not_found";
        param = "model";
        break;
    case SH_ERANGE:
        ocode = "context_length_exceeded";
        param = c->req.kind == API_GEN_CHAT ? "messages" : "prompt";
        break;
    case SH_EBUSY:
        ocode = "server_busy";
        break;
    case SH_EINVAL:
    case SH_EUNSUPPORTED:
        ocode = "invalid_value";
        break;
    default:
        break;
    }
    api_error_set(e, status, ocode, param, "%s", msg && *msg ? msg : sh_strerror(code));
    e->retry_after_s = code == SH_EBUSY ? (retry_after > 0 ? retry_after : 1) : 0;
}

static void on_error(void *arg, const struct api_gen_error *ge)
{
    struct gen_call *c = arg;
    struct api_error e;

    check_contract(c);
    error_for(c, ge->code, ge->retry_after_s, ge->message, &e);
    fail(c, &e);
}

static const struct api_gen_callbacks callbacks = {on_delta, on_done, on_error};

void api_gen_run(struct api_request *r,
                 const struct api_backend *be,
                 struct api_gen_request *req,
                 const char *model_id,
                 enum api_gen_shape shape)
{
    struct gen_call *c = calloc(1, sizeof *c);
    struct api_error e;
    struct sh_err err;
    int retry = 0, rc;
    long nsec;

    if (!c || !(c->model_id = strdup(model_id))) {
        free(c);
        api_gen_request_clear(req);
        api_error_set(&e, 500, NULL, NULL, "out of memory");
        api_reply_error(r, &e);
        return;
    }
    c->r = r;
    c->be = be;
    c->req = *req; /* taken */
    memset(req, 0, sizeof *req);
    c->req.model_id = c->model_id;
    c->shape = shape;
    sh_strbuf_init(&c->content, GATHER_MAX);
    sh_strbuf_init(&c->reasoning, GATHER_MAX);
    /* OpenAI's id prefixes; Ollama sends no id, this one tags log lines */
    api_random_id(shape == API_SHAPE_OAI_CHAT         ? "chatcmpl-"
                  : shape == API_SHAPE_OAI_COMPLETION ? "cmpl-"
                                                      : "gen-",
                  c->id, sizeof c->id);
    api_wall_clock(&c->created, &nsec);
    if (c->req.ignored & API_IGNORED_TEMPLATE)
        SH_LOG(SH_LOG_WARN, "api", "%s: \"template\" ignored: %s uses its own chat template", c->id,
               c->model_id);
    sh_err_clear(&err);
    c->starting = true;
    rc = be->generate(be->ctx, &c->req, &callbacks, c, &c->h, &retry, &err);
    c->starting = false;
    if (rc) {
        error_for(c, rc, retry, err.msg, &e);
        api_reply_error(r, &e);
        call_free(c);
        return;
    }
    api_request_on_close(r, on_close, c);
}

bool api_list_models(struct api_request *r,
                     const struct api_backend *be,
                     const struct api_model_info **models,
                     size_t *n)
{
    struct api_error e;
    struct sh_err err;
    int rc;

    sh_err_clear(&err);
    if ((rc = be->list_models(be->ctx, models, n, &err))) {
        api_error_set(&e, api_status_for_code(rc), NULL, NULL, "listing models: %s",
                      sh_err_msg(&err));
        api_reply_error(r, &e);
        return false;
    }
    return true;
}

bool api_find_model(struct api_request *r,
                    const struct api_backend *be,
                    const char *name,
                    const struct api_model_info **mi)
{
    const struct api_model_info *models = NULL;
    size_t n = 0, i = 0;
    struct api_error e;
    bool oai = api_request_dialect(r) == API_DIALECT_OPENAI;
    int rc;

    if (!api_list_models(r, be, &models, &n))
        return false;
    rc = api_model_resolve(models, n, name, &i);
    if (rc == SH_EINVAL) {
        api_error_set(&e, 400, "invalid_value", "model", "invalid model name \"%.64s\"", name);
    } else if (rc) {
        if (oai)
            api_error_set(&e, 404, "model_not_found", "model",
                          "The model `%.128s` does not exist or you do not have access to it.",
                          name);
        else
            api_error_set(&e, 404, "model_not_found", "model", "model '%.128s' not found", name);
    }
    if (rc) {
        api_reply_error(r, &e);
        return false;
    }
    *mi = &models[i];
    return true;
}
