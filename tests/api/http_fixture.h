/* tests/api/http_fixture.h: a real api server on 127.0.0.1:0 running its
 * event loop in a thread, with the backend test double, and a libcurl
 * client (plus raw sockets) to talk HTTP to it from the test's thread. */
#ifndef TESTS_API_HTTP_FIXTURE_H
#define TESTS_API_HTTP_FIXTURE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/api.h"
#include "backend_double.h"

struct fixture {
    struct event_base *base;
    struct dbl_backend *dbl;
    struct api_server *srv;
    pthread_t thread;
    bool running;
    uint16_t port;
};

/* Starts a server with cfg (address/port overridden to 127.0.0.1:0). hook,
 * when set, runs before the loop starts (to add routes). */
struct fixture *fx_start(const struct api_config *cfg, void (*hook)(struct api_server *s));
/* Stops the loop thread (the server stays allocated). */
void fx_stop_loop(struct fixture *f);
/* Stops the loop if needed and frees server, double and base. */
void fx_free(struct fixture *f);

struct resp {
    long status;
    char *body; /* NUL-terminated */
    size_t len;
    char *headers; /* raw header block */
};

/* One request; headers is a NULL-terminated list ("Name: value"). */
struct resp fx_http(struct fixture *f,
                    const char *method,
                    const char *path,
                    const char *body,
                    const char *const *headers);
void resp_free(struct resp *r);
/* A response header's value (case-insensitive name), copied into out; false
 * when absent. */
bool resp_header(const struct resp *r, const char *name, char *out, size_t cap);

/* A raw TCP connection to the server; -1 on failure. */
int fx_connect(struct fixture *f);
/* Sends a POST with a JSON body on fd. */
bool fx_send_post(int fd, const char *path, const char *json);
/* Reads from fd until needle shows up (or 5 s pass); true if seen. */
bool fx_read_until(int fd, const char *needle);

/* Waits up to 10 s for cond(f) to hold (a deadline, not a timing check). */
bool fx_wait(struct fixture *f, bool (*cond)(struct fixture *f));

#endif
