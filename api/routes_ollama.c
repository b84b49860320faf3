/* api/routes_ollama.c: the Ollama endpoints at Ollama's own paths:
 * GET|HEAD /, GET /api/version, GET /api/tags, GET /api/ps, POST /api/show,
 * POST /api/chat, POST /api/generate. A chat without messages or a generate
 * without prompt is Ollama's "load the model" request: it is answered
 * at once with done_reason "load" (shoal's models are loaded already).
 */
#include <string.h>

#include "api/internal.h"

/* Tools probe for this exact text (Ollama's server answers it). */
static const char running[] = "Ollama is running";

static void root(struct api_request *r, void *arg)
{
    (void)arg;
    api_reply_data(r, 200, "text/plain; charset=utf-8", running, sizeof running - 1);
}

static void version(struct api_request *r, void *arg)
{
    cJSON *o = api_oll_version(arg);

    api_reply_json(r, 200, o);
    cJSON_Delete(o);
}

static void tags(struct api_request *r, void *arg)
{
    const struct api_model_info *models = NULL;
    size_t n = 0;
    cJSON *o;

    if (!api_list_models(r, arg, &models, &n))
        return;
    o = api_oll_tags(models, n);
    api_reply_json(r, 200, o);
    cJSON_Delete(o);
}

static void ps(struct api_request *r, void *arg)
{
    const struct api_model_info *models = NULL;
    size_t n = 0;
    cJSON *o;

    if (!api_list_models(r, arg, &models, &n))
        return;
    o = api_oll_ps(models, n);
    api_reply_json(r, 200, o);
    cJSON_Delete(o);
}

static void show(struct api_request *r, void *arg)
{
    const struct api_model_info *mi;
    const char *model = NULL;
    cJSON *root = NULL, *o;
    bool verbose = false;
    struct api_error e;
    size_t len;
    const char *body = api_request_body(r, &len);

    if (api_ollama_parse_show(body, len, &root, &model, &verbose, &e)) {
        api_reply_error(r, &e);
        return;
    }
    if (api_find_model(r, arg, model, &mi)) {
        o = api_oll_show(mi, verbose);
        api_reply_json(r, 200, o);
        cJSON_Delete(o);
    }
    cJSON_Delete(root);
}

/* The answer to a "load" request, in the endpoint's shape. */
static void loaded(struct api_request *r, const struct api_gen_request *req, bool chat)
{
    struct api_resp_meta m = {NULL, req->model, 0, NULL};
    char when[API_RFC3339_LEN];
    int64_t sec;
    long nsec;
    cJSON *o;

    api_wall_clock(&sec, &nsec);
    api_rfc3339_nano(sec, nsec, when);
    m.created_at = when;
    if (chat) {
        struct api_oll_message om = {"", NULL, NULL};
        o = api_oll_chat_final(&m, &om, NULL, NULL, 0);
    } else {
        o = api_oll_generate_final(&m, "", NULL, NULL, NULL, 0);
    }
    api_reply_json(r, 200, o);
    cJSON_Delete(o);
}

static void generation(struct api_request *r, const struct api_backend *be, bool chat)
{
    const struct api_model_info *mi;
    struct api_gen_request req;
    struct api_error e;
    size_t len;
    const char *body = api_request_body(r, &len);
    int rc = chat ? api_ollama_parse_chat(body, len, &req, &e)
                  : api_ollama_parse_generate(body, len, &req, &e);

    if (rc) {
        api_reply_error(r, &e);
        return;
    }
    if (!api_find_model(r, be, req.model, &mi)) {
        api_gen_request_clear(&req);
        return;
    }
    if (!req.messages && !req.prompt) {
        loaded(r, &req, chat);
        api_gen_request_clear(&req);
        return;
    }
    api_gen_run(r, be, &req, mi->id, chat ? API_SHAPE_OLL_CHAT : API_SHAPE_OLL_GENERATE);
}

static void chat(struct api_request *r, void *arg)
{
    generation(r, arg, true);
}

static void generate(struct api_request *r, void *arg)
{
    generation(r, arg, false);
}

int api_ollama_register(struct api_server *s,
                        const struct api_backend *be,
                        const char *ver,
                        struct sh_err *err)
{
    const struct api_route routes[] = {
        {API_GET, "/", API_DIALECT_OLLAMA, 0, root, NULL},
        {API_GET, "/api/version", API_DIALECT_OLLAMA, 0, version, (void *)ver},
        {API_GET, "/api/tags", API_DIALECT_OLLAMA, 0, tags, (void *)be},
        {API_GET, "/api/ps", API_DIALECT_OLLAMA, 0, ps, (void *)be},
        {API_POST, "/api/show", API_DIALECT_OLLAMA, 0, show, (void *)be},
        {API_POST, "/api/chat", API_DIALECT_OLLAMA, 0, chat, (void *)be},
        {API_POST, "/api/generate", API_DIALECT_OLLAMA, 0, generate, (void *)be},
    };
    int rc;

    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if ((rc = api_server_add_route(s, &routes[i], err)))
            return rc;
    return 0;
}
