/* api/router.c: routing a request evhttp hands over: decoding the path,
 * the route table ("{id}" parameters, 404/405 in the path's dialect), CORS
 * (headers and preflight), the API key, the body limit, then the handler.
 * See the design notes in server.c for what happens after the handler.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "api/internal.h"
#include "api/server_priv.h"
#include "common/util.h"

int api_server_add_route(struct api_server *s, const struct api_route *route, struct sh_err *err)
{
    const char *brace;
    struct route *rt;
    size_t len;

    if (!route || !route->path || route->path[0] != '/' || !route->fn || !route->methods)
        return sh_err_set(err, SH_EINVAL,
                          "api: a route needs a path starting with '/', "
                          "methods and a handler");
    len = strlen(route->path);
    brace = strchr(route->path, '{');
    if (brace && (strcmp(brace, "{id}") != 0 || brace[-1] != '/'))
        return sh_err_set(err, SH_EINVAL, "api: route %s: only a trailing \"/{id}\" is supported",
                          route->path);
    if (brace)
        len = (size_t)(brace - route->path);
    for (size_t i = 0; i < s->n_routes; i++) {
        const struct route *o = &s->routes[i];
        if (o->prefix == (brace != NULL) && o->path_len == len &&
            memcmp(o->path, route->path, len) == 0 && (o->methods & route->methods))
            return sh_err_set(err, SH_EEXIST, "api: route %s is already registered", route->path);
    }
    if (s->n_routes == MAX_ROUTES)
        return sh_err_set(err, SH_ETOOBIG, "api: more than %d routes", MAX_ROUTES);
    rt = &s->routes[s->n_routes];
    if (!(rt->path = strndup(route->path, len)))
        return sh_err_set(err, SH_ENOMEM, "api: out of memory");
    rt->path_len = len;
    rt->prefix = brace != NULL;
    rt->methods = route->methods;
    rt->dialect = route->dialect;
    rt->flags = route->flags;
    rt->fn = route->fn;
    rt->arg = route->arg;
    s->n_routes++;
    return 0;
}

/* The routes answering path: exact ones first, else "{id}" prefixes with a
 * non-empty rest (longest prefix). *allowed collects their methods. */
static const struct route *
route_for(const struct api_server *s, const char *path, enum api_method m, unsigned *allowed)
{
    size_t len = strlen(path), best_len = 0;
    const struct route *hit = NULL, *any = NULL;

    *allowed = 0;
    for (size_t i = 0; i < s->n_routes; i++) {
        const struct route *rt = &s->routes[i];
        if (!rt->prefix && rt->path_len == len && memcmp(rt->path, path, len) == 0) {
            unsigned ms = rt->methods | (rt->methods & API_GET ? API_HEAD : 0);
            *allowed |= ms;
            any = rt;
            if (ms & m)
                hit = rt;
        }
    }
    if (any)
        return hit ? hit : any;
    for (size_t i = 0; i < s->n_routes; i++) {
        const struct route *rt = &s->routes[i];
        if (rt->prefix && len > rt->path_len && memcmp(rt->path, path, rt->path_len) == 0 &&
            rt->path_len >= best_len) {
            unsigned ms = rt->methods | (rt->methods & API_GET ? API_HEAD : 0);
            if (rt->path_len > best_len)
                *allowed = 0, hit = NULL;
            best_len = rt->path_len;
            *allowed |= ms;
            any = rt;
            if (ms & m)
                hit = rt;
        }
    }
    return hit ? hit : any;
}

static enum api_method method_of(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET:
        return API_GET;
    case EVHTTP_REQ_POST:
        return API_POST;
    case EVHTTP_REQ_HEAD:
        return API_HEAD;
    case EVHTTP_REQ_PUT:
        return API_PUT;
    case EVHTTP_REQ_DELETE:
        return API_DELETE;
    case EVHTTP_REQ_OPTIONS:
        return API_OPTIONS;
    case EVHTTP_REQ_PATCH:
        return API_PATCH;
    default:
        return 0;
    }
}

static void methods_text(unsigned ms, bool options, char *out, size_t cap)
{
    static const struct {
        unsigned m;
        const char *name;
    } names[] = {{API_GET, "GET"},        {API_HEAD, "HEAD"},     {API_POST, "POST"},
                 {API_PUT, "PUT"},        {API_DELETE, "DELETE"}, {API_PATCH, "PATCH"},
                 {API_OPTIONS, "OPTIONS"}};
    size_t n = 0;

    out[0] = '\0';
    if (options)
        ms |= API_OPTIONS;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((ms & names[i].m) && n < cap)
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? ", " : "", names[i].name);
}

/* "/v1/..." speaks OpenAI; everything else Ollama's {"error": "..."}. */
static enum api_dialect dialect_for_path(const char *path)
{
    return strncmp(path, "/v1/", 4) == 0 || strcmp(path, "/v1") == 0 ? API_DIALECT_OPENAI
                                                                     : API_DIALECT_OLLAMA;
}

/* Compares without an early exit so the time taken does not tell how much
 * of a guess was right (the length may leak; the key's bytes do not). */
static bool key_matches(const char *given, size_t glen, const char *key)
{
    size_t klen = strlen(key);
    unsigned char diff = (unsigned char)(glen != klen);

    for (size_t i = 0; i < klen; i++)
        diff |= (unsigned char)(key[i] ^ (i < glen ? given[i] : 0));
    return diff == 0;
}

static bool authorized(const struct api_server *s, const struct api_request *r, bool *present)
{
    const char *h = api_request_header(r, "Authorization");

    *present = h != NULL;
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    while (*h == ' ')
        h++;
    return key_matches(h, strlen(h), s->api_key);
}

/* The Access-Control-Allow-Origin value for this request, or NULL. */
static const char *cors_origin(const struct api_server *s, const struct api_request *r)
{
    const char *origin = api_request_header(r, "Origin");

    if (!s->cors || !origin)
        return NULL;
    if (strcmp(s->cors, "*") == 0)
        return "*";
    return strcmp(origin, s->cors) == 0 ? s->cors : NULL;
}

/* Browsers preflight with the headers they will send (openai-node adds
 * x-stainless-*): allow those when they are plain header names. */
static bool header_list_ok(const char *h)
{
    if (strlen(h) > 1024)
        return false;
    for (; *h; h++)
        if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || (*h >= '0' && *h <= '9') ||
              *h == '-' || *h == '_' || *h == ',' || *h == ' '))
            return false;
    return true;
}

static void preflight(struct api_request *r, const char *origin, unsigned allowed)
{
    const char *want = api_request_header(r, "Access-Control-Request-Headers");
    char ms[96];
    struct api_error e;

    if (!origin) {
        api_error_set(&e, 403, "origin_not_allowed", NULL, "origin not allowed");
        api_reply_error(r, &e);
        return;
    }
    methods_text(allowed, true, ms, sizeof ms);
    api_srv_set_header(r, "Access-Control-Allow-Methods", ms);
    api_srv_set_header(r, "Access-Control-Allow-Headers",
                       want && header_list_ok(want) ? want : "Authorization, Content-Type");
    api_srv_set_header(r, "Access-Control-Max-Age", "600");
    api_reply_data(r, 204, "text/plain", "", 0);
}

static int read_body(struct api_request *r)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
    size_t len = evbuffer_get_length(in);

    if (len > r->srv->max_body)
        return SH_ETOOBIG;
    if (!(r->body = malloc(len + 1)))
        return SH_ENOMEM;
    if (evbuffer_copyout(in, r->body, len) != (ev_ssize_t)len)
        return SH_EIO;
    r->body[len] = '\0';
    r->body_len = len;
    return 0;
}

/* Fills r from req; an error is answered here. Returns false then. */
static bool prepare(struct api_request *r, unsigned *allowed)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->req);
    const char *raw = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    struct api_error e;
    size_t len = 0;

    r->dialect = dialect_for_path(raw && *raw ? raw : "/");
    r->path = evhttp_uridecode(raw && *raw ? raw : "/", 0, &len);
    if (!r->path || strlen(r->path) != len) { /* a %00 inside */
        api_error_set(&e, 400, "invalid_value", NULL, "invalid request path");
        api_reply_error(r, &e);
        return false;
    }
    r->dialect = dialect_for_path(r->path);
    if (query && evhttp_parse_query_str(query, &r->query) != 0) {
        api_error_set(&e, 400, "invalid_value", NULL, "invalid query string");
        api_reply_error(r, &e);
        return false;
    }
    r->route = route_for(r->srv, r->path, r->method, allowed);
    if (r->route) {
        r->dialect = r->route->dialect;
        /* the path is decoded already: decoding again would turn %2541 into A */
        if (r->route->prefix && !(r->param = strdup(r->path + r->route->path_len))) {
            api_error_set(&e, 500, NULL, NULL, "out of memory");
            api_reply_error(r, &e);
            return false;
        }
    }
    return true;
}

static void route_request(struct api_request *r)
{
    struct api_server *s = r->srv;
    const char *origin;
    unsigned allowed = 0;
    struct api_error e;
    bool present;
    char ms[96];
    int rc;

    if (!prepare(r, &allowed))
        return;
    if ((origin = cors_origin(s, r))) {
        api_srv_set_header(r, "Access-Control-Allow-Origin", origin);
        if (strcmp(origin, "*") != 0)
            api_srv_set_header(r, "Vary", "Origin");
    }
    if (s->cors && r->method == API_OPTIONS &&
        api_request_header(r, "Access-Control-Request-Method") && r->route) {
        preflight(r, origin, allowed); /* before auth: browsers send no key here */
        return;
    }
    if (s->api_key && !(r->route && (r->route->flags & API_ROUTE_NO_AUTH)) &&
        !authorized(s, r, &present)) {
        api_error_set(&e, 401, "invalid_api_key", NULL,
                      present ? "incorrect API key provided"
                              : "missing API key: send \"Authorization: Bearer KEY\"");
        api_reply_error(r, &e);
        return;
    }
    if (!r->route) {
        api_error_set(&e, 404, "unknown_url", NULL, "no route for %.100s", r->path);
        api_reply_error(r, &e);
        return;
    }
    if (!(r->method & allowed)) {
        methods_text(allowed, s->cors != NULL, ms, sizeof ms);
        api_srv_set_header(r, "Allow", ms);
        api_error_set(&e, 405, "method_not_allowed", NULL, "%.100s accepts %s", r->path, ms);
        api_reply_error(r, &e);
        return;
    }
    if ((rc = read_body(r))) {
        if (rc == SH_ETOOBIG)
            api_error_set(&e, 413, "request_too_large", NULL, "request body larger than %zu bytes",
                          s->max_body);
        else
            api_error_set(&e, 500, NULL, NULL, "reading the request body: %s", sh_strerror(rc));
        api_reply_error(r, &e);
        return;
    }
    r->route->fn(r, r->route->arg);
}

void api_srv_dispatch(struct evhttp_request *req, void *arg)
{
    struct api_server *s = arg;
    struct api_request *r = calloc(1, sizeof *r);

    if (!r) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    r->srv = s;
    r->req = req;
    r->evcon = evhttp_request_get_connection(req);
    r->start_ns = sh_now_ns();
    r->method = method_of(evhttp_request_get_command(req));
    TAILQ_INIT(&r->query);
    r->in_handler = true;
    route_request(r);
    r->in_handler = false;
    if (!r->done) { /* the handler answers later (note 3) */
        api_srv_go_async(r);
        return;
    }
    if (r->abort_pending)
        evhttp_connection_free(r->evcon);
    api_srv_request_free(r);
}
