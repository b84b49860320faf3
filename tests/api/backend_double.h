/* tests/api/backend_double.h: a TEST DOUBLE of the api_backend contract
 * (api/api.h), for the HTTP-level tests of api/ only, until the real
 * backend (runner processes) exists. It runs no model: each model id below
 * plays a scripted part on event-loop timers, so the HTTP layer's
 * streaming, errors and cancellation can be observed:
 *
 *   "kjv-llama-16m" (alias "kjv:16m")  echoes the last message's (or the
 *       prompt's) words as deltas, one per timer tick; "Hello" when empty.
 *       With think on: a reasoning delta first. With tools and tool_choice
 *       not none: one call of the first tool, {"city":"Paris"}, finish
 *       tool_calls. With logprobs: one entry per delta, top_logprobs
 *       alternatives. Usage: prompt 7 tokens, completion = deltas sent.
 *   "test/slow"      "tick " every 20 ms until max_tokens (or cancel).
 *   "test/busy"      generate() fails with SH_EBUSY, retry after 7 s.
 *   "test/overflow"  on_error SH_ERANGE before any output.
 *   "test/crash"     one delta, then on_error SH_ECLOSED.
 *   "test/flood"     64 KiB deltas as fast as the loop runs, until cancel.
 */
#ifndef TESTS_API_BACKEND_DOUBLE_H
#define TESTS_API_BACKEND_DOUBLE_H

#include <stdatomic.h>

#include "api/api.h"

struct event_base;
struct dbl_backend;

struct dbl_backend *dbl_new(struct event_base *base);
/* Frees the double; generations still running are dropped without
 * callbacks (the server must be freed first). */
void dbl_free(struct dbl_backend *d);
const struct api_backend *dbl_backend(struct dbl_backend *d);

/* Counters, safe to read from another thread. */
int dbl_started(struct dbl_backend *d);
int dbl_cancelled(struct dbl_backend *d);
int dbl_running(struct dbl_backend *d);

/* The last request generate() saw, as JSON text (model_id, kind, sampling
 * set fields, max_tokens, stop, messages or prompt); caller frees. */
char *dbl_last_request(struct dbl_backend *d);

#endif
