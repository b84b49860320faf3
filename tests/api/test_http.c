/* tests/api/test_http.c: the server core over real HTTP (api/server.c,
 * api/router.c): 404/405 in each dialect, HEAD, the body limit (413), the
 * API key (401, /health exempt), CORS off and on (preflight), malformed
 * JSON, route parameters, keep-alive, and a client that goes away: its
 * generation is cancelled (seen through the backend double's counters). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "http_fixture.h"
#include "lib/test.h"

static const struct api_config plain_cfg = {0};

#define OAI_ERR(msg, param, code)                                                                  \
    "{\"error\":{\"message\":\"" msg "\",\"type\":\"invalid_request_error\",\"param\":" param      \
    ",\"code\":\"" code "\"}}"

static void expect(struct fixture *f,
                   const char *method,
                   const char *path,
                   const char *body,
                   const char *const *headers,
                   long status,
                   const char *want)
{
    struct resp r = fx_http(f, method, path, body, headers);

    if (r.status != status || (want && strcmp(r.body, want) != 0))
        print_error("%s %s -> %ld %s\n  want %ld %s\n", method, path, r.status, r.body, status,
                    want ? want : "(any)");
    assert_int_equal(r.status, status);
    if (want)
        assert_string_equal(r.body, want);
    resp_free(&r);
}

static void root_and_head(void **state)
{
    struct fixture *f = fx_start(&plain_cfg, NULL);
    struct resp r;
    char v[64];

    (void)state;
    assert_non_null(f);
    r = fx_http(f, "GET", "/", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "Ollama is running");
    assert_true(resp_header(&r, "Content-Type", v, sizeof v));
    assert_string_equal(v, "text/plain; charset=utf-8");
    resp_free(&r);
    r = fx_http(f, "HEAD", "/", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    assert_true(resp_header(&r, "Content-Length", v, sizeof v));
    assert_string_equal(v, "17");
    resp_free(&r);
    r = fx_http(f, "HEAD", "/api/tags", NULL, NULL); /* GET routes answer HEAD */
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    resp_free(&r);
    fx_free(f);
}

static void not_found_and_method(void **state)
{
    struct fixture *f = fx_start(&plain_cfg, NULL);
    struct resp r;
    char v[64];

    (void)state;
    expect(f, "GET", "/nope", NULL, NULL, 404, "{\"error\":\"no route for /nope\"}");
    expect(f, "GET", "/api/pull", NULL, NULL, 404, "{\"error\":\"no route for /api/pull\"}");
    expect(f, "GET", "/v1/nope", NULL, NULL, 404,
           "{\"error\":{\"message\":\"no route for /v1/nope\",\"type\":\"invalid_request_error\","
           "\"param\":null,\"code\":\"unknown_url\"}}");
    expect(f, "GET", "/v1/models/", NULL, NULL, 404, /* an empty {id} */
           "{\"error\":{\"message\":\"no route for /v1/models/\",\"type\":"
           "\"invalid_request_error\",\"param\":null,\"code\":\"unknown_url\"}}");
    r = fx_http(f, "GET", "/v1/chat/completions", NULL, NULL);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.body, "{\"error\":{\"message\":\"/v1/chat/completions accepts POST\","
                                "\"type\":\"invalid_request_error\",\"param\":null,\"code\":"
                                "\"method_not_allowed\"}}");
    assert_true(resp_header(&r, "Allow", v, sizeof v));
    assert_string_equal(v, "POST");
    resp_free(&r);
    r = fx_http(f, "DELETE", "/api/tags", NULL, NULL);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.body, "{\"error\":\"/api/tags accepts GET, HEAD\"}");
    assert_true(resp_header(&r, "Allow", v, sizeof v));
    assert_string_equal(v, "GET, HEAD");
    resp_free(&r);
    expect(f, "PATCH", "/api/chat", "{}", NULL, 405, "{\"error\":\"/api/chat accepts POST\"}");
    fx_free(f);
}

/* A chat body of exactly len bytes. */
static char *chat_body(const char *model, size_t len)
{
    const char *pre = "{\"model\":\"", *mid = "\",\"messages\":[{\"role\":\"user\",\"content\":\"",
               *post = "\"}]}";
    size_t fixed = strlen(pre) + strlen(model) + strlen(mid) + strlen(post);
    char *b = malloc(len + 1);

    assert_true(len > fixed);
    snprintf(b, len + 1, "%s%s%s", pre, model, mid);
    memset(b + strlen(b), 'a', len - fixed);
    memcpy(b + len - strlen(post), post, strlen(post) + 1);
    assert_int_equal(strlen(b), len);
    return b;
}

static void body_limit(void **state)
{
    struct api_config cfg = {.max_body = 1024};
    struct fixture *f = fx_start(&cfg, NULL);
    char *at = chat_body("kjv-llama-16m", 1024), *over = chat_body("kjv-llama-16m", 1025);
    char *huge = chat_body("kjv-llama-16m", 5000);
    struct resp r;

    (void)state;
    r = fx_http(f, "POST", "/v1/chat/completions", at, NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    expect(f, "POST", "/v1/chat/completions", over, NULL, 413,
           OAI_ERR("request body larger than 1024 bytes", "null", "request_too_large"));
    expect(f, "POST", "/api/chat", over, NULL, 413,
           "{\"error\":\"request body larger than 1024 bytes\"}");
    /* past libevent's own cap (twice ours) libevent answers, still 413 */
    expect(f, "POST", "/api/chat", huge, NULL, 413, NULL);
    assert_int_equal(dbl_started(f->dbl), 1);
    free(at);
    free(over);
    free(huge);
    fx_free(f);
}

static void health(struct api_request *r, void *arg)
{
    (void)arg;
    api_reply_data(r, 200, "application/json", "{\"ok\":true}", 11);
}

static void add_control_routes(struct api_server *s)
{
    const struct api_route h = {API_GET,           "/health", API_DIALECT_PLAIN,
                                API_ROUTE_NO_AUTH, health,    NULL};
    const struct api_route st = {API_GET, "/state", API_DIALECT_PLAIN, 0, health, NULL};
    const struct api_route dup = {
        API_GET | API_POST, "/health", API_DIALECT_PLAIN, 0, health, NULL};
    const struct api_route bad = {API_GET, "/x/{id}/y", API_DIALECT_PLAIN, 0, health, NULL};
    struct sh_err err;

    assert_int_equal(api_server_add_route(s, &h, &err), 0);
    assert_int_equal(api_server_add_route(s, &st, &err), 0);
    assert_int_equal(api_server_add_route(s, &dup, &err), SH_EEXIST);
    assert_int_equal(api_server_add_route(s, &bad, &err), SH_EINVAL);
}

static void api_key(void **state)
{
    struct api_config cfg = {.api_key = "sekrit"};
    struct fixture *f = fx_start(&cfg, add_control_routes);
    const char *const good[] = {"Authorization: Bearer sekrit", NULL};
    const char *const lower[] = {"Authorization: bearer sekrit", NULL};
    const char *const wrong[] = {"Authorization: Bearer sekriT", NULL};
    const char *const prefix[] = {"Authorization: Bearer sekri", NULL};
    const char *const longer[] = {"Authorization: Bearer sekrit2", NULL};
    const char *const basic[] = {"Authorization: Basic c2Vrcml0", NULL};
    struct resp r;
    char v[64];

    (void)state;
    r = fx_http(f, "GET", "/v1/models", NULL, NULL);
    assert_int_equal(r.status, 401);
    assert_string_equal(r.body, OAI_ERR("missing API key: send \\\"Authorization: Bearer KEY\\\"",
                                        "null", "invalid_api_key"));
    assert_true(resp_header(&r, "WWW-Authenticate", v, sizeof v));
    assert_string_equal(v, "Bearer");
    resp_free(&r);
    for (const char *const *const *h =
             (const char *const *const[]){wrong, prefix, longer, basic, NULL};
         *h; h++)
        expect(f, "GET", "/v1/models", NULL, *h, 401,
               OAI_ERR("incorrect API key provided", "null", "invalid_api_key"));
    expect(f, "GET", "/v1/models", NULL, good, 200, NULL);
    expect(f, "GET", "/v1/models", NULL, lower, 200, NULL);
    expect(f, "GET", "/api/tags", NULL, NULL, 401,
           "{\"error\":\"missing API key: send \\\"Authorization: Bearer KEY\\\"\"}");
    expect(f, "GET", "/api/tags", NULL, good, 200, NULL);
    expect(f, "GET", "/", NULL, NULL, 401, NULL);
    expect(f, "GET", "/health", NULL, NULL, 200, "{\"ok\":true}"); /* exempt */
    expect(f, "GET", "/state", NULL, NULL, 401, NULL);
    expect(f, "GET", "/state", NULL, good, 200, NULL);
    /* unknown paths do not tell they are unknown without the key */
    expect(f, "GET", "/nope", NULL, NULL, 401, NULL);
    expect(f, "GET", "/nope", NULL, good, 404, NULL);
    expect(f, "POST", "/v1/chat/completions", "{", wrong, 401, NULL);
    assert_int_equal(dbl_started(f->dbl), 0);
    fx_free(f);
}

static void cors_off(void **state)
{
    struct fixture *f = fx_start(&plain_cfg, NULL);
    const char *const pre[] = {"Origin: https://app.example", "Access-Control-Request-Method: GET",
                               NULL};
    struct resp r;
    char v[64];

    (void)state;
    r = fx_http(f, "OPTIONS", "/v1/models", NULL, pre);
    assert_int_equal(r.status, 405);
    assert_false(resp_header(&r, "Access-Control-Allow-Origin", v, sizeof v));
    assert_true(resp_header(&r, "Allow", v, sizeof v));
    assert_string_equal(v, "GET, HEAD");
    resp_free(&r);
    r = fx_http(f, "GET", "/v1/models", NULL, pre);
    assert_int_equal(r.status, 200);
    assert_false(resp_header(&r, "Access-Control-Allow-Origin", v, sizeof v));
    resp_free(&r);
    fx_free(f);
}

static void cors_on(void **state)
{
    struct api_config cfg = {.cors_origin = "https://app.example", .api_key = "k"};
    struct fixture *f = fx_start(&cfg, NULL);
    const char *const pre[] = {"Origin: https://app.example", "Access-Control-Request-Method: POST",
                               "Access-Control-Request-Headers: authorization, x-stainless-os",
                               NULL};
    const char *const evil[] = {"Origin: https://evil.example",
                                "Access-Control-Request-Method: POST", NULL};
    const char *const odd[] = {"Origin: https://app.example", "Access-Control-Request-Method: POST",
                               "Access-Control-Request-Headers: x\"y", NULL};
    const char *const get[] = {"Origin: https://app.example", "Authorization: Bearer k", NULL};
    const char *const get_evil[] = {"Origin: https://evil.example", "Authorization: Bearer k",
                                    NULL};
    struct resp r;
    char v[128];

    (void)state;
    /* a preflight carries no key; it is answered before the key check */
    r = fx_http(f, "OPTIONS", "/v1/chat/completions", NULL, pre);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.len, 0);
    assert_true(resp_header(&r, "Access-Control-Allow-Origin", v, sizeof v));
    assert_string_equal(v, "https://app.example");
    assert_true(resp_header(&r, "Access-Control-Allow-Methods", v, sizeof v));
    assert_string_equal(v, "POST, OPTIONS");
    assert_true(resp_header(&r, "Access-Control-Allow-Headers", v, sizeof v));
    assert_string_equal(v, "authorization, x-stainless-os");
    assert_true(resp_header(&r, "Access-Control-Max-Age", v, sizeof v));
    assert_string_equal(v, "600");
    assert_true(resp_header(&r, "Vary", v, sizeof v));
    assert_string_equal(v, "Origin");
    resp_free(&r);
    r = fx_http(f, "OPTIONS", "/v1/chat/completions", NULL, odd);
    assert_int_equal(r.status, 204);
    assert_true(resp_header(&r, "Access-Control-Allow-Headers", v, sizeof v));
    assert_string_equal(v, "Authorization, Content-Type");
    resp_free(&r);
    r = fx_http(f, "OPTIONS", "/v1/chat/completions", NULL, evil);
    assert_int_equal(r.status, 403);
    assert_string_equal(r.body, OAI_ERR("origin not allowed", "null", "origin_not_allowed"));
    assert_false(resp_header(&r, "Access-Control-Allow-Origin", v, sizeof v));
    resp_free(&r);
    expect(f, "OPTIONS", "/v1/nope", NULL, pre, 401, NULL); /* no route: no preflight */
    r = fx_http(f, "GET", "/api/version", NULL, get);
    assert_int_equal(r.status, 200);
    assert_true(resp_header(&r, "Access-Control-Allow-Origin", v, sizeof v));
    assert_string_equal(v, "https://app.example");
    resp_free(&r);
    r = fx_http(f, "GET", "/api/version", NULL, get_evil);
    assert_int_equal(r.status, 200);
    assert_false(resp_header(&r, "Access-Control-Allow-Origin", v, sizeof v));
    resp_free(&r);
    r = fx_http(f, "GET", "/api/version", NULL,
                (const char *const[]){"Origin: https://app.example", NULL});
    assert_int_equal(r.status, 401); /* CORS headers on errors too */
    assert_true(resp_header(&r, "Access-Control-Allow-Origin", v, sizeof v));
    resp_free(&r);
    fx_free(f);
}

static void cors_any_origin(void **state)
{
    struct api_config cfg = {.cors_origin = "*"};
    struct fixture *f = fx_start(&cfg, NULL);
    struct resp r;
    char v[64];

    (void)state;
    r = fx_http(f, "GET", "/api/tags", NULL,
                (const char *const[]){"Origin: http://localhost:3000", NULL});
    assert_int_equal(r.status, 200);
    assert_true(resp_header(&r, "Access-Control-Allow-Origin", v, sizeof v));
    assert_string_equal(v, "*");
    assert_false(resp_header(&r, "Vary", v, sizeof v));
    resp_free(&r);
    fx_free(f);
}

static void malformed_json(void **state)
{
    struct fixture *f = fx_start(&plain_cfg, NULL);

    (void)state;
    expect(f, "POST", "/v1/chat/completions", "{\"model\":", NULL, 400,
           OAI_ERR("request body: invalid JSON near byte 8", "null", "invalid_json"));
    expect(f, "POST", "/v1/completions", "", NULL, 400,
           OAI_ERR("missing request body", "null", "invalid_json"));
    expect(f, "POST", "/api/chat", "{\"model\":", NULL, 400,
           "{\"error\":\"request body: invalid JSON near byte 8\"}");
    expect(f, "POST", "/api/generate", "", NULL, 400, "{\"error\":\"missing request body\"}");
    expect(f, "POST", "/api/show", "[]", NULL, 400,
           "{\"error\":\"request body must be a JSON object\"}");
    expect(f, "POST", "/api/chat", "{\"model\":\"kjv-llama-16m\",\"options\":{\"top_k\":\"many\"}}",
           NULL, 400, "{\"error\":\"invalid type for 'options.top_k': expected an integer\"}");
    expect(f, "POST", "/v1/chat/completions",
           "{\"model\":\"kjv-llama-16m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
           "\"n\":3}",
           NULL, 400,
           "{\"error\":{\"message\":\"invalid value for 'n': only n=1 is supported\",\"type\":"
           "\"invalid_request_error\",\"param\":\"n\",\"code\":\"unsupported_value\"}}");
    assert_int_equal(dbl_started(f->dbl), 0);
    fx_free(f);
}

static void route_parameter(void **state)
{
    struct fixture *f = fx_start(&plain_cfg, NULL);
    const char *slow = "{\"id\":\"test/slow\",\"object\":\"model\",\"created\":1700000000,"
                       "\"owned_by\":\"shoal\"}";

    (void)state;
    expect(f, "GET", "/v1/models/test%2Fslow", NULL, NULL, 200, slow);
    expect(f, "GET", "/v1/models/test/slow", NULL, NULL, 200, slow);
    expect(f, "GET", "/v1/models/slow", NULL, NULL, 200, slow);
    expect(f, "GET", "/v1/models/kjv%3A16m", NULL, NULL, 200,
           "{\"id\":\"kjv-llama-16m\",\"object\":\"model\",\"created\":1700000000,"
           "\"owned_by\":\"shoal\"}");
    expect(f, "GET", "/v1/models/gpt-4o", NULL, NULL, 404,
           OAI_ERR("The model `gpt-4o` does not exist or you do not have access to it.",
                   "\"model\"", "model_not_found"));
    expect(f, "GET", "/v1/models/a%20b", NULL, NULL, 400,
           OAI_ERR("invalid model name \\\"a b\\\"", "\"model\"", "invalid_value"));
    expect(f, "GET", "/v1/models/a%00b", NULL, NULL, 400,
           "{\"error\":{\"message\":\"invalid request path\",\"type\":\"invalid_request_error\","
           "\"param\":null,\"code\":\"invalid_value\"}}");
    fx_free(f);
}

/* Two requests on one connection: a stream, then a plain request. */
static void keep_alive(void **state)
{
    struct fixture *f = fx_start(&plain_cfg, NULL);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char url[128];
    long status = 0, conns = -1;
    FILE *null = fopen("/dev/null", "w");

    (void)state;
    snprintf(url, sizeof url, "http://127.0.0.1:%u/api/chat", (unsigned)f->port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, null);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS,
                     "{\"model\":\"kjv-llama-16m\",\"messages\":[{\"role\":\"user\",\"content\":"
                     "\"one two three\"}]}");
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    assert_int_equal(status, 200);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/api/tags", (unsigned)f->port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns);
    assert_int_equal(status, 200);
    assert_int_equal(conns, 0); /* the connection was reused */
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    fclose(null);
    fx_free(f);
}

static bool one_cancelled(struct fixture *f)
{
    return dbl_cancelled(f->dbl) == 1 && dbl_running(f->dbl) == 0;
}

static bool one_started(struct fixture *f)
{
    return dbl_started(f->dbl) == 1;
}

static void disconnect_mid_stream(void **state)
{
    struct fixture *f = fx_start(&plain_cfg, NULL);
    int fd = fx_connect(f);

    (void)state;
    assert_true(fd >= 0);
    assert_true(fx_send_post(fd, "/v1/chat/completions",
                             "{\"model\":\"test/slow\",\"stream\":true,\"messages\":[{\"role\":"
                             "\"user\",\"content\":\"go\"}]}"));
    assert_true(fx_read_until(fd, "tick"));
    close(fd);
    assert_true(fx_wait(f, one_cancelled));
    fx_free(f);
}

static void disconnect_before_output(void **state)
{
    struct fixture *f = fx_start(&plain_cfg, NULL);
    int fd = fx_connect(f);

    (void)state;
    assert_true(fd >= 0);
    /* not streamed: nothing is written until the end, so only the read
     * side can tell the client left */
    assert_true(fx_send_post(fd, "/api/generate",
                             "{\"model\":\"test/slow\",\"prompt\":\"go\",\"stream\":false}"));
    assert_true(fx_wait(f, one_started));
    close(fd);
    assert_true(fx_wait(f, one_cancelled));
    fx_free(f);
}

/* A client that sends a request and never reads: once API_MAX_PENDING_OUT
 * bytes wait in the server, the connection is dropped and the generation
 * cancelled, instead of buffering without end. */
static void stalled_reader_dropped(void **state)
{
    struct fixture *f = fx_start(&plain_cfg, NULL);
    int fd = fx_connect(f);

    (void)state;
    assert_true(fd >= 0);
    assert_true(fx_send_post(fd, "/api/generate",
                             "{\"model\":\"test/flood\",\"prompt\":\"go\",\"raw\":true}"));
    assert_true(fx_wait(f, one_cancelled));
    close(fd);
    fx_free(f);
}

/* A second request sent before the first is answered: the watch sees data
 * (not EOF), stops, and both are answered in order. */
static void pipelined_requests(void **state)
{
    struct fixture *f = fx_start(&plain_cfg, NULL);
    int fd = fx_connect(f);
    static const char two[] =
        "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 93\r\n\r\n"
        "{\"model\":\"test/slow\",\"stream\":false,\"options\":{\"num_predict\":3},"
        "\"messages\":[{\"role\":\"user\"}]}"
        "GET /api/version HTTP/1.1\r\nHost: x\r\n\r\n";

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(send(fd, two, sizeof two - 1, MSG_NOSIGNAL), (ssize_t)(sizeof two - 1));
    assert_true(fx_read_until(fd, "{\"version\":\"" SHOAL_VERSION "\"}"));
    assert_int_equal(dbl_cancelled(f->dbl), 0);
    close(fd);
    fx_free(f);
}

static void server_free_cancels(void **state)
{
    struct fixture *f = fx_start(&plain_cfg, NULL);
    int fd = fx_connect(f);

    (void)state;
    assert_true(fd >= 0);
    assert_true(fx_send_post(fd, "/api/chat",
                             "{\"model\":\"test/slow\",\"messages\":[{\"role\":\"user\","
                             "\"content\":\"go\"}]}"));
    assert_true(fx_read_until(fd, "tick"));
    fx_stop_loop(f);
    api_server_free(f->srv);
    f->srv = NULL;
    assert_int_equal(dbl_cancelled(f->dbl), 1);
    assert_int_equal(dbl_running(f->dbl), 0);
    close(fd);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(root_and_head),
        cmocka_unit_test(not_found_and_method),
        cmocka_unit_test(body_limit),
        cmocka_unit_test(api_key),
        cmocka_unit_test(cors_off),
        cmocka_unit_test(cors_on),
        cmocka_unit_test(cors_any_origin),
        cmocka_unit_test(malformed_json),
        cmocka_unit_test(route_parameter),
        cmocka_unit_test(keep_alive),
        cmocka_unit_test(disconnect_mid_stream),
        cmocka_unit_test(disconnect_before_output),
        cmocka_unit_test(stalled_reader_dropped),
        cmocka_unit_test(pipelined_requests),
        cmocka_unit_test(server_free_cancels),
    };
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests_name("api/http", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
