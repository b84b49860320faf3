/* api/server_priv.h: what server.c (lifecycle, replies, disconnects) and
 * router.c (routing, auth, CORS) share: the server and request structs.
 * Only those two files include it.
 */
#ifndef API_SERVER_PRIV_H
#define API_SERVER_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "api/api.h"

#define MAX_ROUTES 64

struct route {
    unsigned methods;
    char *path; /* without "{id}" for prefix routes */
    size_t path_len;
    bool prefix;
    enum api_dialect dialect;
    unsigned flags;
    api_handler_fn fn;
    void *arg;
};

struct api_server {
    struct event_base *base;
    struct evhttp *http;
    uint16_t port;
    size_t max_body;
    char *api_key; /* NULL = none */
    char *cors;    /* NULL = CORS off */
    char *version;
    struct route routes[MAX_ROUTES];
    size_t n_routes;
    struct api_request *active; /* requests answered later (note 3) */
};

struct api_request {
    struct api_server *srv;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    const struct route *route;
    enum api_dialect dialect;
    enum api_method method;
    char *path;
    char *param;
    struct evkeyvalq query;
    char *body;
    size_t body_len;
    uint64_t start_ns;
    bool in_handler;
    bool done;
    bool abort_pending; /* api_request_abort inside the handler */
    bool streaming;
    struct evbuffer *chunk;
    struct event *watch;
    api_close_fn on_close;
    void *close_arg;
    struct api_request *prev, *next; /* srv->active */
};

/* evhttp's generic callback: every request starts here (router.c). */
void api_srv_dispatch(struct evhttp_request *req, void *arg);
/* The handler kept r: watch its connection (server.c, note 3). */
void api_srv_go_async(struct api_request *r);
void api_srv_request_free(struct api_request *r);
/* Sets (replaces) a response header. */
void api_srv_set_header(struct api_request *r, const char *key, const char *value);

#endif
