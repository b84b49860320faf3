/* api/routes_openai.c: the OpenAI endpoints: POST /v1/chat/completions,
 * POST /v1/completions, GET /v1/models, GET /v1/models/{id}. Each handler
 * parses (openai.c), finds the model through the backend, then hands over
 * to the generation driver (gen.c) or answers from the model list.
 */
#include "api/internal.h"

static void run(struct api_request *r,
                const struct api_backend *be,
                struct api_gen_request *req,
                enum api_gen_shape shape)
{
    const struct api_model_info *mi;

    if (!api_find_model(r, be, req->model, &mi)) {
        api_gen_request_clear(req);
        return;
    }
    api_gen_run(r, be, req, mi->id, shape);
}

static void chat(struct api_request *r, void *arg)
{
    struct api_gen_request req;
    struct api_error e;
    size_t len;
    const char *body = api_request_body(r, &len);

    if (api_openai_parse_chat(body, len, &req, &e)) {
        api_reply_error(r, &e);
        return;
    }
    run(r, arg, &req, API_SHAPE_OAI_CHAT);
}

static void completions(struct api_request *r, void *arg)
{
    struct api_gen_request req;
    struct api_error e;
    size_t len;
    const char *body = api_request_body(r, &len);

    if (api_openai_parse_completion(body, len, &req, &e)) {
        api_reply_error(r, &e);
        return;
    }
    run(r, arg, &req, API_SHAPE_OAI_COMPLETION);
}

static void models(struct api_request *r, void *arg)
{
    const struct api_model_info *list = NULL;
    size_t n = 0;
    cJSON *o;

    if (!api_list_models(r, arg, &list, &n))
        return;
    o = api_oai_model_list(list, n);
    api_reply_json(r, 200, o);
    cJSON_Delete(o);
}

static void model(struct api_request *r, void *arg)
{
    const struct api_model_info *mi;
    cJSON *o;

    if (!api_find_model(r, arg, api_request_param(r), &mi))
        return;
    o = api_oai_model(mi);
    api_reply_json(r, 200, o);
    cJSON_Delete(o);
}

int api_openai_register(struct api_server *s, const struct api_backend *be, struct sh_err *err)
{
    const struct api_route routes[] = {
        {API_POST, "/v1/chat/completions", API_DIALECT_OPENAI, 0, chat, (void *)be},
        {API_POST, "/v1/completions", API_DIALECT_OPENAI, 0, completions, (void *)be},
        {API_GET, "/v1/models", API_DIALECT_OPENAI, 0, models, (void *)be},
        {API_GET, "/v1/models/{id}", API_DIALECT_OPENAI, 0, model, (void *)be},
    };
    int rc;

    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if ((rc = api_server_add_route(s, &routes[i], err)))
            return rc;
    return 0;
}
