/* tests/api/backend_double.c: the scripted TEST DOUBLE of the api_backend
 * contract described in backend_double.h. Not a backend: it exists so the
 * HTTP layer can be tested before the runner processes exist.
 */
#include "backend_double.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/util.h"

struct api_gen_handle {
    struct dbl_backend *d;
    struct event *ev;
    struct api_gen_callbacks cb;
    void *arg;
    const struct api_gen_request *req;
    int mode;    /* 0 echo, 1 slow, 2 overflow, 3 crash, 4 flood */
    char *words; /* echo: the text to send, consumed word by word */
    size_t pos;
    int step;
    uint64_t sent;
    bool in_cb, cancelled;
    struct api_gen_handle *next;
};

struct dbl_backend {
    struct event_base *base;
    struct api_backend be;
    struct api_model_info models[6];
    char flood[65536];
    struct api_sampling defaults;
    const char *aliases[1];
    struct api_gen_handle *gens;
    atomic_int started, cancelled, running;
    pthread_mutex_t mu;
    char *last;
};

static void unlink_gen(struct dbl_backend *d, struct api_gen_handle *g)
{
    for (struct api_gen_handle **p = &d->gens; *p; p = &(*p)->next)
        if (*p == g) {
            *p = g->next;
            break;
        }
}

static void gen_free(struct api_gen_handle *g)
{
    unlink_gen(g->d, g);
    atomic_fetch_sub(&g->d->running, 1);
    event_free(g->ev);
    free(g->words);
    free(g);
}

static void schedule(struct api_gen_handle *g, int ms)
{
    struct timeval tv = {0, ms * 1000};
    evtimer_add(g->ev, &tv);
}

/* Calls a callback; true when g is still alive and not cancelled after. */
static bool survive(struct api_gen_handle *g)
{
    g->in_cb = false;
    if (g->cancelled) {
        gen_free(g);
        return false;
    }
    return true;
}

static void done(struct api_gen_handle *g, enum api_finish f)
{
    struct api_gen_result res = {f, 7, g->sent, 1000, 2000, 3000};

    g->in_cb = true;
    g->cb.on_done(g->arg, &res);
    gen_free(g);
}

static void fail(struct api_gen_handle *g, int code, const char *msg)
{
    struct api_gen_error e = {code, 0, msg};

    g->in_cb = true;
    g->cb.on_error(g->arg, &e);
    gen_free(g);
}

static void delta(struct api_gen_handle *g, const struct api_gen_delta *dl)
{
    g->in_cb = true;
    g->cb.on_delta(g->arg, dl);
}

static void echo_step(struct api_gen_handle *g)
{
    const struct api_gen_request *req = g->req;
    struct api_top_logprob top[API_MAX_TOP_LOGPROBS];
    struct api_token_logprob lp;
    struct api_gen_delta dl;
    size_t start, n;

    memset(&dl, 0, sizeof dl);
    if (g->step++ == 0 && req->think == API_THINK_ON) {
        dl.reasoning = "Let me think.";
        dl.reasoning_len = strlen(dl.reasoning);
        delta(g, &dl);
        if (survive(g))
            schedule(g, 0);
        return;
    }
    if (req->tools && req->tool_choice != API_TOOL_CHOICE_NONE) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(req->tools->child, "function");
        struct api_tool_call tc = {NULL,
                                   req->tool_choice == API_TOOL_CHOICE_FUNCTION
                                       ? req->tool_choice_name
                                       : cJSON_GetObjectItemCaseSensitive(fn, "name")->valuestring,
                                   "{\"city\":\"Paris\"}"};
        dl.tool_calls = &tc;
        dl.n_tool_calls = 1;
        g->sent++;
        delta(g, &dl);
        if (survive(g))
            done(g, API_FINISH_TOOL_CALLS);
        return;
    }
    if ((req->max_tokens >= 0 && g->sent >= (uint64_t)req->max_tokens) || !g->words[g->pos]) {
        done(g, g->words[g->pos] ? API_FINISH_LENGTH : API_FINISH_STOP);
        return;
    }
    /* one word with the spaces before it */
    start = g->pos;
    while (g->words[g->pos] == ' ')
        g->pos++;
    while (g->words[g->pos] && g->words[g->pos] != ' ')
        g->pos++;
    n = g->pos - start;
    dl.content = g->words + start;
    dl.content_len = n;
    if (req->logprobs) {
        lp.token = dl.content;
        lp.token_len = n;
        lp.logprob = -0.5;
        lp.top = top;
        lp.n_top = (size_t)req->top_logprobs;
        for (size_t i = 0; i < lp.n_top; i++) {
            top[i].token = i == 0 ? dl.content : "x";
            top[i].token_len = i == 0 ? n : 1;
            top[i].logprob = -0.5 - (double)i;
        }
        dl.logprobs = &lp;
        dl.n_logprobs = 1;
    }
    g->sent++;
    delta(g, &dl);
    if (survive(g))
        schedule(g, 0);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    struct api_gen_handle *g = arg;
    struct api_gen_delta dl;

    (void)fd;
    (void)what;
    memset(&dl, 0, sizeof dl);
    switch (g->mode) {
    case 0:
        echo_step(g);
        return;
    case 1:
        if (g->req->max_tokens >= 0 && g->sent >= (uint64_t)g->req->max_tokens) {
            done(g, API_FINISH_LENGTH);
            return;
        }
        dl.content = "tick ";
        dl.content_len = 5;
        g->sent++;
        delta(g, &dl);
        if (survive(g))
            schedule(g, 20);
        return;
    case 2:
        fail(g, SH_ERANGE, "the prompt is 9000 tokens, the context holds 2048");
        return;
    case 4:
        dl.content = g->d->flood;
        dl.content_len = sizeof g->d->flood;
        g->sent++;
        delta(g, &dl);
        if (survive(g))
            schedule(g, 0);
        return;
    default:
        if (g->step++ == 0) {
            dl.content = "partial";
            dl.content_len = 7;
            g->sent++;
            delta(g, &dl);
            if (survive(g))
                schedule(g, 0);
            return;
        }
        fail(g, SH_ECLOSED, "runner for test/crash exited (signal 9)");
    }
}

/* The text the echo model repeats: the last message's content or the
 * prompt. */
static const char *echo_text(const struct api_gen_request *req)
{
    const cJSON *last, *c;

    if (req->kind == API_GEN_COMPLETION)
        return req->prompt && *req->prompt ? req->prompt : "Hello";
    last = req->messages ? cJSON_GetArrayItem(req->messages, cJSON_GetArraySize(req->messages) - 1)
                         : NULL;
    c = cJSON_GetObjectItemCaseSensitive(last, "content");
    return cJSON_IsString(c) && *c->valuestring ? c->valuestring : "Hello";
}

static void remember(struct dbl_backend *d, const struct api_gen_request *req)
{
    cJSON *o = cJSON_CreateObject(), *stop;
    const struct api_sampling *s = &req->sampling;
    char *text;

    cJSON_AddStringToObject(o, "model_id", req->model_id);
    cJSON_AddStringToObject(o, "kind", req->kind == API_GEN_CHAT ? "chat" : "completion");
    if (s->has_temperature)
        cJSON_AddNumberToObject(o, "temperature", s->temperature);
    if (s->has_top_k)
        cJSON_AddNumberToObject(o, "top_k", s->top_k);
    if (s->has_seed)
        cJSON_AddNumberToObject(o, "seed", (double)s->seed);
    cJSON_AddNumberToObject(o, "max_tokens", (double)req->max_tokens);
    stop = cJSON_AddArrayToObject(o, "stop");
    for (size_t i = 0; i < req->n_stop; i++)
        cJSON_AddItemToArray(stop, cJSON_CreateString(req->stop[i]));
    if (req->messages)
        cJSON_AddItemToObject(o, "messages", cJSON_Duplicate(req->messages, 1));
    if (req->prompt)
        cJSON_AddStringToObject(o, "prompt", req->prompt);
    text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    pthread_mutex_lock(&d->mu);
    free(d->last);
    d->last = text;
    pthread_mutex_unlock(&d->mu);
}

static int generate(void *ctx,
                    const struct api_gen_request *req,
                    const struct api_gen_callbacks *cb,
                    void *cb_arg,
                    struct api_gen_handle **out,
                    int *retry_after_s,
                    struct sh_err *err)
{
    struct dbl_backend *d = ctx;
    struct api_gen_handle *g;
    int mode;

    remember(d, req);
    if (strcmp(req->model_id, "test/busy") == 0) {
        *retry_after_s = 7;
        return sh_err_set(err, SH_EBUSY, "the queue of test/busy is full (4 waiting)");
    }
    if (strcmp(req->model_id, "kjv-llama-16m") == 0)
        mode = 0;
    else if (strcmp(req->model_id, "test/slow") == 0)
        mode = 1;
    else if (strcmp(req->model_id, "test/overflow") == 0)
        mode = 2;
    else if (strcmp(req->model_id, "test/crash") == 0)
        mode = 3;
    else if (strcmp(req->model_id, "test/flood") == 0)
        mode = 4;
    else
        return sh_err_set(err, SH_ENOTFOUND, "no model %s", req->model_id);
    if (!(g = calloc(1, sizeof *g)) || !(g->words = strdup(echo_text(req))) ||
        !(g->ev = evtimer_new(d->base, tick, g))) {
        if (g)
            free(g->words);
        free(g);
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    }
    g->d = d;
    g->cb = *cb;
    g->arg = cb_arg;
    g->req = req;
    g->mode = mode;
    g->next = d->gens;
    d->gens = g;
    atomic_fetch_add(&d->started, 1);
    atomic_fetch_add(&d->running, 1);
    schedule(g, 0); /* never call back from inside generate() */
    *out = g;
    return 0;
}

static void cancel(void *ctx, struct api_gen_handle *g)
{
    (void)ctx;
    atomic_fetch_add(&g->d->cancelled, 1);
    if (g->in_cb) { /* cancelled from inside on_delta: freed on return */
        g->cancelled = true;
        return;
    }
    gen_free(g);
}

static int
list_models(void *ctx, const struct api_model_info **models, size_t *n, struct sh_err *err)
{
    struct dbl_backend *d = ctx;

    (void)err;
    *models = d->models;
    *n = sizeof d->models / sizeof d->models[0];
    return 0;
}

struct dbl_backend *dbl_new(struct event_base *base)
{
    static const char *const ids[] = {"kjv-llama-16m", "test/slow",  "test/busy",
                                      "test/overflow", "test/crash", "test/flood"};
    struct dbl_backend *d = calloc(1, sizeof *d);

    if (!d)
        return NULL;
    d->base = base;
    pthread_mutex_init(&d->mu, NULL);
    d->be = (struct api_backend){d, list_models, generate, cancel};
    d->defaults.has_temperature = true;
    d->defaults.temperature = 0.7;
    d->defaults.has_top_p = true;
    d->defaults.top_p = 0.9;
    d->aliases[0] = "kjv:16m";
    memset(d->flood, 'x', sizeof d->flood);
    for (size_t i = 0; i < sizeof d->models / sizeof d->models[0]; i++) {
        struct api_model_info *m = &d->models[i];
        m->id = ids[i];
        m->family = "llama";
        m->format = "safetensors";
        m->quantization = "F32";
        m->digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        m->size_bytes = 64000000;
        m->n_params = 16000000;
        m->modified_unix = 1700000000;
        m->context_length = 2048;
        m->caps = API_CAP_COMPLETION;
        m->loaded = i == 0;
    }
    d->models[0].aliases = d->aliases;
    d->models[0].n_aliases = 1;
    d->models[0].chat_template = "{{ messages }}";
    d->models[0].defaults = &d->defaults;
    d->models[0].caps |= API_CAP_TOOLS | API_CAP_THINKING;
    d->models[0].embedding_length = 256;
    d->models[0].n_layers = 8;
    return d;
}

void dbl_free(struct dbl_backend *d)
{
    if (!d)
        return;
    while (d->gens)
        gen_free(d->gens);
    pthread_mutex_destroy(&d->mu);
    free(d->last);
    free(d);
}

const struct api_backend *dbl_backend(struct dbl_backend *d)
{
    return &d->be;
}

int dbl_started(struct dbl_backend *d)
{
    return atomic_load(&d->started);
}

int dbl_cancelled(struct dbl_backend *d)
{
    return atomic_load(&d->cancelled);
}

int dbl_running(struct dbl_backend *d)
{
    return atomic_load(&d->running);
}

char *dbl_last_request(struct dbl_backend *d)
{
    char *s;

    pthread_mutex_lock(&d->mu);
    s = d->last ? strdup(d->last) : NULL;
    pthread_mutex_unlock(&d->mu);
    return s;
}
