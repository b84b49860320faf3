/* tests/api/http_fixture.c: see http_fixture.h. */
#include "http_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "common/util.h"

static void *loop_main(void *arg)
{
    struct fixture *f = arg;

    event_base_loop(f->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

struct fixture *fx_start(const struct api_config *cfg, void (*hook)(struct api_server *s))
{
    struct fixture *f = calloc(1, sizeof *f);
    struct api_config c = *cfg;
    struct sh_err err;

    if (!f)
        return NULL;
    /* The test thread stops the loop: libevent needs its lock hooks. */
    evthread_use_pthreads();
    signal(SIGPIPE, SIG_IGN); /* as a main serving the API must (api.h) */
    c.address = "127.0.0.1";
    c.port = 0;
    f->base = event_base_new();
    f->dbl = dbl_new(f->base);
    if (!f->base || !f->dbl ||
        api_server_new(f->base, &c, dbl_backend(f->dbl), &f->srv, &err) != 0) {
        fprintf(stderr, "fx_start: %s\n", err.msg);
        fx_free(f);
        return NULL;
    }
    if (hook)
        hook(f->srv);
    f->port = api_server_port(f->srv);
    f->running = pthread_create(&f->thread, NULL, loop_main, f) == 0;
    return f;
}

void fx_stop_loop(struct fixture *f)
{
    if (!f->running)
        return;
    event_base_loopbreak(f->base);
    pthread_join(f->thread, NULL);
    f->running = false;
}

void fx_free(struct fixture *f)
{
    if (!f)
        return;
    fx_stop_loop(f);
    api_server_free(f->srv);
    dbl_free(f->dbl);
    if (f->base)
        event_base_free(f->base);
    free(f);
}

struct sink {
    char *buf;
    size_t len;
};

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    struct sink *s = arg;
    size_t add = size * n;
    char *p = realloc(s->buf, s->len + add + 1);

    if (!p)
        return 0;
    memcpy(p + s->len, data, add);
    s->len += add;
    p[s->len] = '\0';
    s->buf = p;
    return add;
}

struct resp fx_http(struct fixture *f,
                    const char *method,
                    const char *path,
                    const char *body,
                    const char *const *headers)
{
    struct resp r = {0};
    struct sink b = {0}, h = {0};
    struct curl_slist *list = NULL;
    char url[512];
    CURL *c = curl_easy_init();

    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)f->port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    list = curl_slist_append(list, "Expect:"); /* no 100-continue round trip */
    list = curl_slist_append(list, "Content-Type: application/json");
    for (const char *const *p = headers; p && *p; p++)
        list = curl_slist_append(list, *p);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    r.body = b.buf ? b.buf : strdup("");
    r.len = b.len;
    r.headers = h.buf ? h.buf : strdup("");
    return r;
}

void resp_free(struct resp *r)
{
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof *r);
}

bool resp_header(const struct resp *r, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);

    for (const char *line = r->headers; line && *line;) {
        const char *end = strstr(line, "\r\n");
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > n && strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            snprintf(out, cap, "%.*s", (int)(len - (size_t)(v - line)), v);
            return true;
        }
        line = end ? end + 2 : NULL;
    }
    return false;
}

int fx_connect(struct fixture *f)
{
    struct sockaddr_in sa = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_family = AF_INET;
    sa.sin_port = htons(f->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

bool fx_send_post(int fd, const char *path, const char *json)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     path, strlen(json));

    return send(fd, head, (size_t)n, MSG_NOSIGNAL) == n &&
           send(fd, json, strlen(json), MSG_NOSIGNAL) == (ssize_t)strlen(json);
}

bool fx_read_until(int fd, const char *needle)
{
    char buf[8192];
    size_t len = 0;
    uint64_t deadline = sh_now_ns() + 5000000000ull;

    while (sh_now_ns() < deadline && len < sizeof buf - 1) {
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t n;
        if (poll(&p, 1, 100) <= 0)
            continue;
        n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n <= 0)
            return false;
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, needle))
            return true;
    }
    return false;
}

bool fx_wait(struct fixture *f, bool (*cond)(struct fixture *f))
{
    uint64_t deadline = sh_now_ns() + 10000000000ull;

    while (sh_now_ns() < deadline) {
        if (cond(f))
            return true;
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    return cond(f);
}
