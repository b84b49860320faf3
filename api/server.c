/* api/server.c: the HTTP server core on libevent's evhttp: binding and
 * limits, and the lifetime of a request a handler answers now or later
 * (replies, chunked streams, noticing a client that went away). Routing,
 * the API key and CORS are in router.c; dialect bodies come from errors.c;
 * the OpenAI and Ollama routes live in routes_*.c.
 *
 * NOTES ON THE DESIGN
 * 1. One evhttp generic callback (api_srv_dispatch, router.c) does all
 *    routing: evhttp's own table knows neither "{id}" parameters nor 405s
 *    nor dialects.
 * 2. A request is answered exactly once: api_reply_*, api_stream_end or
 *    api_request_abort set r->done. While the handler runs (in_handler) the
 *    request is freed by dispatch after it returns; later, by that call.
 * 3. A request the handler keeps ("async") is on srv->active and watched
 *    three ways until it is done:
 *      - an EV_READ event on the socket: evhttp stops reading while a
 *        request is processed, so without it a client that closes is only
 *        seen at the next write. recv(MSG_PEEK) == 0 means EOF (as Go's
 *        server cancels a request's context on EOF); data means a pipelined
 *        request, and the watch stops (write errors still catch a close);
 *      - evhttp's close callback (write error, timeout, server freed);
 *      - the request's on_complete callback, which evhttp calls before it
 *        frees the request on its own (e.g. after answering a broken request
 *        itself), so r->req never dangles.
 *    Whichever fires first detaches the other two, calls the handler's
 *    close callback and frees r. The detach happens before any final reply
 *    too, because evhttp may free the connection (and call closecb) inside
 *    evhttp_send_reply_end.
 * 4. evhttp frees a request whose connection failed only once the user has
 *    "replied"; when the close callback finds the request detached from its
 *    connection (evhttp_request_get_connection == NULL) it frees it.
 *
 *   dispatch --handler replied--> done (freed after the handler)
 *       \--handler kept r--> async --reply/stream_end/abort--> done, freed
 *                              \--EOF/closecb/on_complete--> on_close, freed
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "api/internal.h"
#include "api/server_priv.h"
#include "common/log.h"
#include "common/util.h"

/* ---- lifecycle ------------------------------------------------------------ */

static char *dup_opt(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

int api_server_new(struct event_base *base,
                   const struct api_config *cfg,
                   const struct api_backend *backend,
                   struct api_server **out,
                   struct sh_err *err)
{
    struct evhttp_bound_socket *sock;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    const char *addr = cfg->address ? cfg->address : "0.0.0.0";
    struct api_server *s;
    size_t hard;
    int rc;

    if (!base)
        return sh_err_set(err, SH_EINVAL, "api: no event base");
    if (!(s = calloc(1, sizeof *s)))
        return sh_err_set(err, SH_ENOMEM, "api: out of memory");
    s->base = base;
    s->max_body = cfg->max_body ? cfg->max_body : API_DEFAULT_MAX_BODY;
    s->api_key = dup_opt(cfg->api_key);
    s->cors = dup_opt(cfg->cors_origin);
    s->version = strdup(cfg->version ? cfg->version : SHOAL_VERSION);
    if ((cfg->api_key && *cfg->api_key && !s->api_key) ||
        (cfg->cors_origin && *cfg->cors_origin && !s->cors) || !s->version ||
        !(s->http = evhttp_new(base))) {
        rc = sh_err_set(err, SH_ENOMEM, "api: out of memory");
        goto fail;
    }
    /* libevent answers bodies over its limit itself (HTML); ours is checked
     * in dispatch, so libevent's sits above it and only bounds memory. */
    if (!sh_mul_size(s->max_body, 2, &hard) || hard > (size_t)INT64_MAX / 2)
        hard = (size_t)INT64_MAX / 2;
    evhttp_set_max_body_size(s->http, (ev_ssize_t)hard);
    evhttp_set_max_headers_size(
        s->http, (ev_ssize_t)(cfg->max_headers ? cfg->max_headers : API_DEFAULT_MAX_HEADERS));
    evhttp_set_timeout(s->http, cfg->idle_timeout_s > 0 ? cfg->idle_timeout_s : API_DEFAULT_IDLE_S);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                            EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    /* Drain an oversized body before answering, so the client reads the 413
     * instead of a reset. */
    evhttp_set_flags(s->http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_gencb(s->http, api_srv_dispatch, s);
    if (!(sock = evhttp_bind_socket_with_handle(s->http, addr, cfg->port))) {
        rc = sh_err_set(err, SH_EIO, "api: cannot listen on %s:%u: %s", addr, (unsigned)cfg->port,
                        strerror(errno));
        goto fail;
    }
    if (getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &sl) != 0) {
        rc = sh_err_set(err, SH_EIO, "api: getsockname: %s", strerror(errno));
        goto fail;
    }
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    if (backend) {
        if ((rc = api_openai_register(s, backend, err)) ||
            (rc = api_ollama_register(s, backend, s->version, err)))
            goto fail;
    }
    SH_LOG(SH_LOG_INFO, "api", "listening on %s:%u%s%s", addr, (unsigned)s->port,
           s->api_key ? " (API key required)" : "", s->cors ? " (CORS on)" : "");
    *out = s;
    return 0;
fail:
    api_server_free(s);
    return rc;
}

uint16_t api_server_port(const struct api_server *s)
{
    return s->port;
}

/* ---- one request ------------------------------------------------------------ */

void api_srv_request_free(struct api_request *r)
{
    evhttp_clear_headers(&r->query);
    if (r->chunk)
        evbuffer_free(r->chunk);
    free(r->path);
    free(r->param);
    free(r->body);
    free(r);
}

static void unlink_active(struct api_request *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else if (r->srv->active == r)
        r->srv->active = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* Stops watching the connection (note 3); safe to call more than once. */
static void detach(struct api_request *r)
{
    if (r->watch) {
        event_free(r->watch);
        r->watch = NULL;
    }
    unlink_active(r);
    if (r->evcon)
        evhttp_connection_set_closecb(r->evcon, NULL, NULL);
    if (r->req)
        evhttp_request_set_on_complete_cb(r->req, NULL, NULL);
}

/* The request is answered: free it now, or after the handler returns. */
static void finish(struct api_request *r)
{
    r->done = true;
    if (!r->in_handler)
        api_srv_request_free(r);
}

/* The client is gone (or the server going down): tell the handler. */
static void gone(struct api_request *r)
{
    detach(r);
    r->done = true;
    if (r->on_close)
        r->on_close(r, r->close_arg);
}

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
    struct api_request *r = arg;
    bool detached = evhttp_request_get_connection(r->req) == NULL;

    (void)evcon;
    gone(r);
    if (detached) /* note 4 */
        evhttp_request_free(r->req);
    api_srv_request_free(r);
}

static void req_completed(struct evhttp_request *req, void *arg)
{
    struct api_request *r = arg;

    (void)req;
    gone(r); /* evhttp frees req right after this */
    api_srv_request_free(r);
}

static void watch_cb(evutil_socket_t fd, short what, void *arg)
{
    struct api_request *r = arg;
    struct evhttp_connection *evcon = r->evcon;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    (void)what;
    if (n > 0) { /* a pipelined request: the client is alive */
        event_free(r->watch);
        r->watch = NULL;
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    SH_LOG(SH_LOG_DEBUG, "api", "%s: client went away", r->path);
    gone(r);
    evhttp_connection_free(evcon); /* frees r->req, which is still attached */
    api_srv_request_free(r);
}

void api_srv_go_async(struct api_request *r)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(r->evcon);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;

    r->next = r->srv->active;
    if (r->next)
        r->next->prev = r;
    r->srv->active = r;
    evhttp_connection_set_closecb(r->evcon, conn_closed, r);
    evhttp_request_set_on_complete_cb(r->req, req_completed, r);
    if (fd >= 0) {
        r->watch = event_new(r->srv->base, fd, EV_READ | EV_PERSIST, watch_cb, r);
        if (r->watch && event_add(r->watch, NULL) != 0) {
            event_free(r->watch);
            r->watch = NULL;
        }
    }
    if (!r->watch) /* still seen at the next write */
        SH_LOG(SH_LOG_WARN, "api", "%s: cannot watch the connection", r->path);
}

void api_request_on_close(struct api_request *r, api_close_fn fn, void *arg)
{
    r->on_close = fn;
    r->close_arg = arg;
}

enum api_method api_request_method(const struct api_request *r)
{
    return r->method;
}

enum api_dialect api_request_dialect(const struct api_request *r)
{
    return r->dialect;
}

const char *api_request_path(const struct api_request *r)
{
    return r->path;
}

const char *api_request_param(const struct api_request *r)
{
    return r->param;
}

const char *api_request_query(const struct api_request *r, const char *key)
{
    return evhttp_find_header(&r->query, key);
}

const char *api_request_header(const struct api_request *r, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(r->req), name);
}

const char *api_request_body(const struct api_request *r, size_t *len)
{
    if (len)
        *len = r->body_len;
    return r->body ? r->body : "";
}

uint64_t api_request_start_ns(const struct api_request *r)
{
    return r->start_ns;
}

/* ---- replies ----------------------------------------------------------------- */

void api_srv_set_header(struct api_request *r, const char *key, const char *value)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);

    evhttp_remove_header(h, key);
    evhttp_add_header(h, key, value);
}

void api_reply_data(
    struct api_request *r, int status, const char *content_type, const void *data, size_t len)
{
    struct evbuffer *b = NULL;

    if (r->done || r->streaming)
        abort(); /* programmer error: a second reply (note 2) */
    detach(r);
    api_srv_set_header(r, "Content-Type", content_type);
    if (r->method == API_HEAD) {
        /* libevent 2.1 would send the body after a HEAD's headers. */
        char cl[32];
        snprintf(cl, sizeof cl, "%zu", len);
        api_srv_set_header(r, "Content-Length", cl);
    } else if (len > 0 && (!(b = evbuffer_new()) || evbuffer_add(b, data, len) != 0)) {
        if (b)
            evbuffer_free(b);
        evhttp_send_error(r->req, 500, NULL);
        finish(r);
        return;
    }
    SH_LOG(SH_LOG_DEBUG, "api", "%s -> %d", r->path, status);
    evhttp_send_reply(r->req, status, NULL, b);
    if (b)
        evbuffer_free(b);
    finish(r);
}

void api_reply_json(struct api_request *r, int status, const cJSON *json)
{
    char *s = json ? cJSON_PrintUnformatted(json) : NULL;
    static const char oom[] = "{\"error\":\"out of memory\"}";

    if (!s) {
        api_reply_data(r, 500, "application/json", oom, sizeof oom - 1);
        return;
    }
    api_reply_data(r, status, "application/json", s, strlen(s));
    free(s);
}

void api_reply_error(struct api_request *r, const struct api_error *e)
{
    cJSON *body = api_error_body(r->dialect, e);

    if (e->retry_after_s > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", e->retry_after_s);
        api_srv_set_header(r, "Retry-After", ra);
    }
    if (e->status == 401)
        api_srv_set_header(r, "WWW-Authenticate", "Bearer");
    if (e->status >= 500) /* 503 (a full queue) is load, not a fault */
        SH_LOG(e->status == 503 ? SH_LOG_INFO : SH_LOG_WARN, "api", "%s -> %d: %s", r->path,
               e->status, e->message);
    api_reply_json(r, e->status, body);
    cJSON_Delete(body);
}

void api_stream_start(struct api_request *r, int status, const char *content_type)
{
    if (r->done || r->streaming)
        abort(); /* programmer error (note 2) */
    api_srv_set_header(r, "Content-Type", content_type);
    api_srv_set_header(r, "Cache-Control", "no-cache");
    api_srv_set_header(r, "X-Accel-Buffering", "no"); /* proxies: do not hold chunks back */
    r->streaming = true;
    evhttp_send_reply_start(r->req, status, NULL);
}

bool api_stream_started(const struct api_request *r)
{
    return r->streaming;
}

int api_stream_write(struct api_request *r, const void *data, size_t len)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(r->evcon);

    if (!r->streaming || r->done)
        abort(); /* programmer error */
    if (len == 0)
        return 0;
    if (!bev || evbuffer_get_length(bufferevent_get_output(bev)) > API_MAX_PENDING_OUT)
        return SH_ECLOSED; /* the client stopped reading */
    if (!r->chunk && !(r->chunk = evbuffer_new()))
        return SH_ENOMEM;
    if (evbuffer_add(r->chunk, data, len) != 0)
        return SH_ENOMEM;
    evhttp_send_reply_chunk(r->req, r->chunk); /* empties r->chunk */
    return 0;
}

void api_stream_end(struct api_request *r)
{
    if (!r->streaming || r->done)
        abort(); /* programmer error */
    detach(r);
    evhttp_send_reply_end(r->req);
    finish(r);
}

void api_request_abort(struct api_request *r)
{
    struct evhttp_connection *evcon = r->evcon;

    if (r->done)
        abort(); /* programmer error */
    detach(r);
    if (r->in_handler) { /* evhttp is still on the stack: dispatch frees it */
        r->abort_pending = true;
        finish(r);
        return;
    }
    evhttp_connection_free(evcon); /* frees r->req */
    finish(r);
}

void api_server_free(struct api_server *s)
{
    if (!s)
        return;
    /* Freeing evhttp closes every connection: conn_closed runs for each
     * request still answered later and cancels its work. */
    if (s->http)
        evhttp_free(s->http);
    while (s->active) { /* a connection evhttp did not report (none expected) */
        struct api_request *r = s->active;
        r->evcon = NULL;
        r->req = NULL;
        gone(r);
        api_srv_request_free(r);
    }
    for (size_t i = 0; i < s->n_routes; i++)
        free(s->routes[i].path);
    free(s->api_key);
    free(s->cors);
    free(s->version);
    free(s);
}
