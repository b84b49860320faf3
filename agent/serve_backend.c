/* agent/serve_backend.c: the API's backend (struct api_backend) over the
 * runner children: the model list, the per-model bounded queue, dispatch to
 * free slots, request frames turned into the HTTP layer's callbacks, and
 * cancellation. serve_runner.c owns the processes. See serve.h.
 *
 * Invariants:
 *   1. A handle is in exactly one place: m->queue (RQ_QUEUED) or m->running
 *      (RQ_RUNNING, RQ_CANCELLED), until its last frame or the runner's
 *      death; m->busy == m->running.n.
 *   2. Callbacks run only from frames (or the runner's death), never inside
 *      generate(); none after cancel() returned (RQ_CANCELLED is silent).
 *   3. m->busy <= m->slots: the runner never sees more requests than it has
 *      slots, so its own "busy" error means a bug, not load.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "agent/serve_int.h"
#include "common/json.h"
#include "common/log.h"
#include "state/state.h"

#define MOD "serve"

_Static_assert(SERVE_MAX_ID == STATE_MODEL_ID_MAX, "model ids: one limit for the cluster and us");

#define MEAN_INITIAL_S  5.0 /* request time assumed before any finished */
#define RETRY_AFTER_MAX 300

/* ---- lists -------------------------------------------------------------------- */

void sv_list_push(struct sv_list *l, struct api_gen_handle *h)
{
    h->prev = l->tail;
    h->next = NULL;
    if (l->tail)
        l->tail->next = h;
    else
        l->head = h;
    l->tail = h;
    l->n++;
}

void sv_list_remove(struct sv_list *l, struct api_gen_handle *h)
{
    if (h->prev)
        h->prev->next = h->next;
    else
        l->head = h->next;
    if (h->next)
        h->next->prev = h->prev;
    else
        l->tail = h->prev;
    h->prev = h->next = NULL;
    l->n--;
}

void sv_req_free(struct api_gen_handle *h)
{
    if (!h)
        return;
    free(h->json);
    free(h);
}

static struct api_gen_handle *find_running(struct sv_model *m, uint32_t id)
{
    for (struct api_gen_handle *h = m->running.head; h; h = h->next)
        if (h->id == id)
            return h;
    return NULL;
}

void sv_fail_queue(struct sv_model *m, int code, const char *msg)
{
    while (m->queue.head) {
        struct api_gen_handle *h = m->queue.head;
        struct api_gen_error e = {code, 0, msg};
        sv_list_remove(&m->queue, h);
        h->cb.on_error(h->arg, &e);
        sv_req_free(h);
    }
}

void sv_dispatch(struct sv_model *m)
{
    while (m->st == SV_READY && m->busy < m->slots && m->queue.head) {
        struct api_gen_handle *h = m->queue.head;
        sv_list_remove(&m->queue, h);
        if (!sv_runner_send(m, RUNNER_MSG_GEN, h->id, h->json, h->json_len)) {
            struct api_gen_error e = {SH_ENOMEM, 0, "out of memory sending to the runner"};
            h->cb.on_error(h->arg, &e);
            sv_req_free(h);
            continue;
        }
        free(h->json);
        h->json = NULL;
        h->st = RQ_RUNNING;
        h->t_sent = sh_now_ns();
        sv_list_push(&m->running, h);
        m->busy++;
    }
}

/* ---- frames for requests -------------------------------------------------------- */

/* A request left the runner: its slot is free again. */
static void ended(struct sv_model *m, struct api_gen_handle *h)
{
    sv_list_remove(&m->running, h);
    m->busy--;
}

int sv_on_request_frame(struct sv_model *m,
                        const struct runner_hdr *hd,
                        const uint8_t *p,
                        struct sh_err *err)
{
    struct api_gen_handle *h = find_running(m, hd->id);
    struct runner_delta *dl = m->s->delta;
    struct runner_done done;
    struct api_gen_result res;
    struct api_gen_error ge;
    char msg[SH_ERR_MSG_LEN];
    int code, rc;

    if (!h)
        return sh_err_set(err, SH_EPROTO, "%s for request %u, which the runner does not have",
                          runner_msg_name(hd->type), (unsigned)hd->id);
    switch (hd->type) {
    case RUNNER_MSG_DELTA:
        if ((rc = runner_delta_decode(p, hd->len, dl, err)))
            return rc;
        for (size_t i = 0; i < dl->d.n_tool_calls; i++)
            if (!dl->calls[i].id[0]) /* the HTTP layer makes a unique "call_..." */
                dl->calls[i].id = NULL;
        if (h->st == RQ_RUNNING)
            h->cb.on_delta(h->arg, &dl->d); /* may cancel h: then RQ_CANCELLED */
        return 0;
    case RUNNER_MSG_DONE:
        if ((rc = runner_done_decode(p, hd->len, &done, err)))
            return rc;
        ended(m, h);
        if (h->st == RQ_RUNNING) {
            double took = (double)(sh_now_ns() - h->t_sent) / 1e9;
            m->mean_s = m->mean_s > 0 ? 0.8 * m->mean_s + 0.2 * took : took;
            res.finish = done.finish;
            res.prompt_tokens = done.prompt_tokens;
            res.completion_tokens = done.completion_tokens;
            /* Ollama's load_duration: waiting for a slot (and for the model
             * to load, on a fresh runner) here and in the runner. */
            res.load_ns = (h->t_sent - h->t_enqueue) + done.wait_ns;
            res.prompt_eval_ns = done.prompt_ns;
            res.eval_ns = done.eval_ns;
            h->cb.on_done(h->arg, &res);
        }
        sv_req_free(h);
        sv_dispatch(m);
        return 0;
    case RUNNER_MSG_ERROR:
        if ((rc = runner_error_decode(p, hd->len, &code, msg, err)))
            return rc;
        ended(m, h);
        if (h->st == RQ_RUNNING) {
            ge.code = code;
            ge.retry_after_s = 0;
            ge.message = msg;
            h->cb.on_error(h->arg, &ge);
        }
        sv_req_free(h);
        sv_dispatch(m);
        return 0;
    case RUNNER_MSG_CANCELLED:
        if (h->st != RQ_CANCELLED)
            return sh_err_set(err, SH_EPROTO, "CANCELLED for request %u, which was not cancelled",
                              (unsigned)hd->id);
        ended(m, h);
        sv_req_free(h);
        sv_dispatch(m);
        return 0;
    default:
        return sh_err_set(err, SH_EPROTO, "unexpected frame");
    }
}

static char *dup_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return strdup(cJSON_IsString(v) ? v->valuestring : "");
}

static int64_t get_int(const cJSON *o, const char *key, int64_t max, bool *ok)
{
    int64_t v = 0;
    if (sh_json_int(o, key, 0, max, &v, NULL))
        *ok = false;
    return v;
}

static bool get_flag(const cJSON *o, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

int sv_on_ready(struct sv_model *m, const uint8_t *p, size_t len, struct sh_err *err)
{
    struct api_model_info *mi = &m->info;
    struct api_sampling *d = &m->defaults;
    const cJSON *def;
    cJSON *o = NULL;
    bool ok = true;
    int64_t slots;

    if (sh_json_parse((const char *)p, len, "READY", &o, err) || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return sh_err_set(err, SH_EPROTO, "READY: not a JSON object");
    }
    free(m->family);
    free(m->dtype);
    free(m->template_src);
    m->family = dup_str(o, "family");
    m->dtype = dup_str(o, "dtype");
    m->template_src = dup_str(o, "template");
    memset(mi, 0, sizeof *mi);
    memset(d, 0, sizeof *d);
    mi->n_params = (uint64_t)get_int(o, "params", INT64_MAX, &ok);
    mi->size_bytes = (uint64_t)get_int(o, "bytes", INT64_MAX, &ok);
    mi->context_length = (int)get_int(o, "context", INT32_MAX, &ok);
    mi->embedding_length = (int)get_int(o, "embedding", INT32_MAX, &ok);
    mi->n_layers = (int)get_int(o, "layers", INT32_MAX, &ok);
    mi->n_heads = (int)get_int(o, "heads", INT32_MAX, &ok);
    mi->n_kv_heads = (int)get_int(o, "kv_heads", INT32_MAX, &ok);
    mi->vocab_size = (int)get_int(o, "vocab", INT32_MAX, &ok);
    slots = get_int(o, "slots", 1024, &ok);
    if ((def = cJSON_GetObjectItemCaseSensitive(o, "defaults")) && cJSON_IsObject(def)) {
        double v;
        int64_t k;
        if (!sh_json_num(def, "temperature", 0, 1e6, &v, NULL)) {
            d->has_temperature = true;
            d->temperature = v;
        }
        if (!sh_json_num(def, "top_p", 0, 1, &v, NULL)) {
            d->has_top_p = true;
            d->top_p = v;
        }
        if (!sh_json_int(def, "top_k", 0, INT32_MAX, &k, NULL)) {
            d->has_top_k = true;
            d->top_k = (int)k;
        }
        if (!sh_json_num(def, "repetition_penalty", 0, 1e6, &v, NULL)) {
            d->has_repetition_penalty = true;
            d->repetition_penalty = v;
        }
    }
    mi->caps = API_CAP_COMPLETION | (get_flag(o, "tools") ? API_CAP_TOOLS : 0) |
               (get_flag(o, "thinking") ? API_CAP_THINKING : 0);
    cJSON_Delete(o);
    if (!ok || slots < 1 || !m->family || !m->dtype || !m->template_src)
        return sh_err_set(err, SH_EPROTO, "READY: a field is missing or out of range");
    m->slots = (int)slots;
    mi->id = m->md.id;
    mi->family = m->family;
    mi->format = "safetensors";
    mi->quantization = m->dtype;
    mi->digest = m->md.digest;
    mi->chat_template = m->template_src;
    mi->defaults = d;
    mi->modified_unix = m->md.mtime;
    return 0;
}

/* ---- the backend ---------------------------------------------------------------------- */

static int
list_models(void *ctx, const struct api_model_info **models, size_t *n, struct sh_err *err)
{
    struct serve *s = ctx;

    (void)err;
    for (size_t i = 0; i < s->n; i++) {
        struct sv_model *m = &s->models[i];
        s->infos[i] = m->info;
        s->infos[i].id = m->md.id;
        s->infos[i].digest = m->md.digest;
        s->infos[i].modified_unix = m->md.mtime;
        s->infos[i].loaded = m->st == SV_READY;
    }
    *models = s->infos;
    *n = s->n;
    return 0;
}

static int add_sampling(cJSON *o, const struct api_sampling *s)
{
    char seed[24];
    cJSON *j = cJSON_AddObjectToObject(o, "sampling");

    if (!j)
        return SH_ENOMEM;
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->seed);
    if ((s->has_temperature && !cJSON_AddNumberToObject(j, "temperature", s->temperature)) ||
        (s->has_top_p && !cJSON_AddNumberToObject(j, "top_p", s->top_p)) ||
        (s->has_top_k && !cJSON_AddNumberToObject(j, "top_k", s->top_k)) ||
        (s->has_min_p && !cJSON_AddNumberToObject(j, "min_p", s->min_p)) ||
        (s->has_repetition_penalty &&
         !cJSON_AddNumberToObject(j, "repetition_penalty", s->repetition_penalty)) ||
        (s->has_presence_penalty &&
         !cJSON_AddNumberToObject(j, "presence_penalty", s->presence_penalty)) ||
        (s->has_frequency_penalty &&
         !cJSON_AddNumberToObject(j, "frequency_penalty", s->frequency_penalty)) ||
        (s->has_seed && !cJSON_AddStringToObject(j, "seed", seed)))
        return SH_ENOMEM;
    return 0;
}

/* The GEN payload (runner.h) of req. Returned (free with free()). */
static char *gen_json(const struct api_gen_request *r)
{
    static const char *const choices[] = {"none", "auto", "required", "function"};
    static const char *const formats[] = {"text", "json", "json_schema"};
    static const char *const thinks[] = {"unset", "off", "on"};
    cJSON *o = cJSON_CreateObject(), *stop;
    char *s = NULL;
    bool ok;

    if (!o)
        return NULL;
    ok = cJSON_AddStringToObject(o, "kind", r->kind == API_GEN_CHAT ? "chat" : "completion");
    /* References: the request owns these trees and outlives the print. */
    if (ok && r->kind == API_GEN_CHAT)
        ok = r->messages && cJSON_AddItemReferenceToObject(o, "messages", r->messages);
    if (ok && r->kind == API_GEN_COMPLETION)
        ok = cJSON_AddStringToObject(o, "prompt", r->prompt ? r->prompt : "") != NULL;
    if (ok && r->tools)
        ok = cJSON_AddItemReferenceToObject(o, "tools", (cJSON *)r->tools);
    ok =
        ok && cJSON_AddStringToObject(o, "tool_choice", choices[r->tool_choice & 3]) &&
        (!r->tool_choice_name || cJSON_AddStringToObject(o, "tool_name", r->tool_choice_name)) &&
        cJSON_AddBoolToObject(o, "parallel_tool_calls", r->parallel_tool_calls) &&
        add_sampling(o, &r->sampling) == 0 &&
        cJSON_AddNumberToObject(o, "max_tokens", r->max_tokens >= 0 ? (double)r->max_tokens : -1) &&
        (stop = cJSON_AddArrayToObject(o, "stop")) &&
        cJSON_AddNumberToObject(o, "top_logprobs", r->logprobs ? r->top_logprobs : -1) &&
        cJSON_AddStringToObject(o, "format", formats[r->format % 3]) &&
        cJSON_AddStringToObject(o, "think", thinks[r->think % 3]);
    for (size_t i = 0; ok && i < r->n_stop; i++)
        ok = cJSON_AddItemToArray(stop, cJSON_CreateString(r->stop[i]));
    if (ok)
        s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static struct sv_model *find_model(struct serve *s, const char *id)
{
    for (size_t i = 0; id && i < s->n; i++)
        if (strcmp(s->models[i].md.id, id) == 0)
            return &s->models[i];
    return NULL;
}

/* Seconds until a slot is likely free for one more request. */
static int retry_after(const struct sv_model *m)
{
    double mean = m->mean_s > 0 ? m->mean_s : MEAN_INITIAL_S;
    int slots = m->slots > 0 ? m->slots : 1;
    double s = ceil(mean * (double)(m->queue.n + 1) / slots);

    return s < 1 ? 1 : s > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : (int)s;
}

static int generate(void *ctx,
                    const struct api_gen_request *req,
                    const struct api_gen_callbacks *cb,
                    void *cb_arg,
                    struct api_gen_handle **out,
                    int *retry_after_s,
                    struct sh_err *err)
{
    struct serve *s = ctx;
    struct sv_model *m = find_model(s, req->model_id);
    int queue_max = s->o.queue > 0 ? s->o.queue : SERVE_DEFAULT_QUEUE;
    struct api_gen_handle *h;
    bool slot_free;

    if (!m)
        return sh_err_set(err, SH_ENOTFOUND, "model '%s' not found", req->model_id);
    if (m->st == SV_FAILED)
        return sh_err_set(err, SH_EIO, "%s", m->error);
    slot_free = m->st == SV_READY && m->busy < m->slots && !m->queue.head;
    if (!slot_free && m->queue.n >= (size_t)queue_max) {
        *retry_after_s = retry_after(m);
        return sh_err_set(err, SH_EBUSY,
                          "%s is busy: %d requests running and %zu waiting (the queue holds %d); "
                          "retry in %d s",
                          m->md.id, m->busy, m->queue.n, queue_max, *retry_after_s);
    }
    if (!(h = calloc(1, sizeof *h)) || !(h->json = gen_json(req))) {
        free(h);
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    }
    h->json_len = strlen(h->json);
    if (h->json_len > RUNNER_MAX_FRAME) {
        size_t len = h->json_len;
        sv_req_free(h);
        return sh_err_set(err, SH_ETOOBIG,
                          "the request is %zu bytes as sent to the runner; the limit is %u", len,
                          (unsigned)RUNNER_MAX_FRAME);
    }
    h->m = m;
    if (++m->next_id == 0)
        m->next_id = 1;
    h->id = m->next_id;
    h->cb = *cb;
    h->arg = cb_arg;
    h->t_enqueue = sh_now_ns();
    sv_list_push(&m->queue, h);
    sv_dispatch(m); /* sends only: no callback runs in here */
    *out = h;
    return 0;
}

static void cancel(void *ctx, struct api_gen_handle *h)
{
    struct sv_model *m = h->m;

    (void)ctx;
    switch (h->st) {
    case RQ_QUEUED:
        sv_list_remove(&m->queue, h);
        sv_req_free(h);
        return;
    case RQ_RUNNING:
        SH_LOG(SH_LOG_INFO, MOD, "%s: request %u cancelled (client gone)", m->md.id,
               (unsigned)h->id);
        h->st = RQ_CANCELLED;
        /* If the frame cannot be queued the runner is going away anyway;
         * its death frees the slot. */
        sv_runner_send(m, RUNNER_MSG_CANCEL, h->id, NULL, 0);
        return;
    case RQ_CANCELLED:
        return;
    }
}

/* ---- life -------------------------------------------------------------------------- */

int serve_new(struct event_base *base,
              const struct serve_opts *opts,
              const char *default_dir,
              struct serve **out,
              struct sh_err *err)
{
    struct serve *s = calloc(1, sizeof *s);
    struct serve_model_dir *dirs = NULL;
    size_t n = 0;
    int rc;

    if (!s)
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    s->base = base;
    s->o = *opts;
    s->default_dir = default_dir;
    s->be = (struct api_backend){s, list_models, generate, cancel};
    if ((rc = serve_find_models(opts, default_dir, &dirs, &n, err))) {
        free(s);
        return rc;
    }
    s->models = calloc(n ? n : 1, sizeof *s->models);
    s->infos = calloc(n ? n : 1, sizeof *s->infos);
    s->delta = malloc(sizeof *s->delta);
    if (!s->models || !s->infos || !s->delta) {
        serve_model_dirs_free(dirs, n);
        free(s->models);
        free(s->infos);
        free(s->delta);
        free(s);
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        s->models[i].s = s;
        s->models[i].md = dirs[i]; /* dir taken */
        s->models[i].info.id = s->models[i].md.id;
    }
    free(dirs);
    s->n = n;
    for (size_t i = 0; i < n; i++)
        if ((rc = sv_runner_start(&s->models[i], err))) {
            serve_free(s);
            return rc;
        }
    *out = s;
    return 0;
}

void serve_free(struct serve *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        struct sv_model *m = &s->models[i];
        sv_runner_stop(m);
        while (m->queue.head) {
            struct api_gen_handle *h = m->queue.head;
            sv_list_remove(&m->queue, h);
            sv_req_free(h);
        }
        while (m->running.head) {
            struct api_gen_handle *h = m->running.head;
            sv_list_remove(&m->running, h);
            sv_req_free(h);
        }
        free(m->family);
        free(m->dtype);
        free(m->template_src);
        free(m->md.dir);
    }
    free(s->models);
    free(s->infos);
    free(s->delta);
    free(s);
}

const struct api_backend *serve_backend(struct serve *s)
{
    return &s->be;
}

void serve_health(const struct serve *s, cJSON *body)
{
    static const char *const states[] = {"loading", "ready", "restarting", "failed"};
    cJSON *arr = cJSON_AddArrayToObject(body, "models");

    for (size_t i = 0; arr && s && i < s->n; i++) {
        const struct sv_model *m = &s->models[i];
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            return;
        }
        cJSON_AddStringToObject(o, "id", m->md.id);
        cJSON_AddStringToObject(o, "state", states[m->st]);
        if (m->error[0])
            cJSON_AddStringToObject(o, m->st == SV_FAILED ? "error" : "last_crash", m->error);
        cJSON_AddNumberToObject(o, "pid", m->pid);
        cJSON_AddNumberToObject(o, "slots", m->slots);
        cJSON_AddNumberToObject(o, "busy", m->busy);
        cJSON_AddNumberToObject(o, "queued", (double)m->queue.n);
        cJSON_AddNumberToObject(o, "restarts", m->restarts);
    }
}

uint32_t serve_model_ids(void *arg, char out[][SERVE_MAX_ID + 1], uint32_t cap)
{
    const struct serve *s = arg;
    uint32_t n = 0;

    for (size_t i = 0; s && i < s->n; i++) {
        if (s->models[i].st == SV_FAILED)
            continue;
        if (n < cap)
            snprintf(out[n], SERVE_MAX_ID + 1, "%s", s->models[i].md.id);
        n++;
    }
    return n;
}
