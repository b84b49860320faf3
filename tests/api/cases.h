/* tests/api/cases.h: running tables of bad request bodies through a parser
 * and comparing status, parameter name and the exact error body of the
 * dialect. */
#ifndef TESTS_API_CASES_H
#define TESTS_API_CASES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "lib/test.h"

typedef int (*parse_fn)(const char *body,
                        size_t len,
                        struct api_gen_request *out,
                        struct api_error *e);

struct bad_case {
    const char *body;
    int status;
    const char *param; /* "" = none */
    const char *want;  /* the exact error body */
};

static inline int
run_bad_cases(parse_fn fn, enum api_dialect d, const struct bad_case *cases, size_t n)
{
    int failed = 0;

    for (size_t i = 0; i < n; i++) {
        struct api_gen_request req;
        struct api_error e;
        char *got = NULL;
        cJSON *body;
        int rc;

        memset(&e, 0, sizeof e);
        rc = fn(cases[i].body, strlen(cases[i].body), &req, &e);
        body = rc ? api_error_body(d, &e) : NULL;
        got = body ? cJSON_PrintUnformatted(body) : NULL;
        if (rc != cases[i].status || strcmp(e.param, cases[i].param) != 0 || !got ||
            strcmp(got, cases[i].want) != 0) {
            print_error("case %zu: %s\n  status %d (want %d), param \"%s\" (want \"%s\")\n"
                        "  got  %s\n  want %s\n",
                        i, cases[i].body, rc, cases[i].status, e.param, cases[i].param,
                        got ? got : "(none)", cases[i].want);
            failed++;
        }
        if (rc) { /* nothing is owned after an error */
            assert_null(req.root);
            assert_null(req.messages);
        } else {
            api_gen_request_clear(&req);
        }
        free(got);
        cJSON_Delete(body);
    }
    return failed;
}

/* The error body the OpenAI dialect sends. */
#define OAI_ERR(msg, param, code)                                                                  \
    "{\"error\":{\"message\":\"" msg "\",\"type\":\"invalid_request_error\",\"param\":" param      \
    ",\"code\":\"" code "\"}}"

/* ...and Ollama's. */
#define OLL_ERR(msg) "{\"error\":\"" msg "\"}"

#endif
