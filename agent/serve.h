/* agent/serve.h: the models this agent serves itself, each in a runner child
 * process (agent/runner.h), behind the API's backend contract
 * (struct api_backend, api/api.h). Internal to agent/.
 *
 * Models: every --model DIR, and every model folder inside each --models
 * DIR (a folder with a config.json, or a Hugging Face cache's
 * models--Org--Name/snapshots/REV/); with neither, the demo model
 * (agent_default_model()). A model's id is its folder's name, or "Org/Name"
 * for a folder inside a Hugging Face cache. Ollama-style names resolve as
 * api_model_resolve says ("kjv-llama-16m:latest", "name" for "Org/Name").
 *
 * Per model (agent/serve_runner.c, agent/serve_backend.c):
 *   runner    `shoal runner` started with fork + exec of /proc/self/exe,
 *             speaking runner_proto.h frames over a socketpair. States:
 *
 *       STARTING --READY--> READY --EOF/exit/bad frame--> WAITING --timer--> STARTING
 *          |                                                 ^
 *          +--EOF before READY (start failures < 5)----------+
 *          +--LOAD_ERROR, or 5 start failures in a row--> FAILED (final)
 *
 *             A runner that dies (crash, kill, a frame that fails the
 *             checks: then the agent kills it) fails the requests it was
 *             running with SH_ECLOSED (500, "the runner ... crashed"); it is
 *             restarted after 250 ms, doubling per crash in a row up to
 *             30 s. A model that FAILED stays listed (loaded: false) and
 *             answers 500 with its load error; /health lists every model's
 *             state and error.
 *   queue     a request waits in the model's FIFO while all the runner's
 *             slots are busy (or while the runner (re)starts), at most
 *             --queue of them; one more gets SH_EBUSY (503) with a
 *             Retry-After estimate (mean request time x queued / slots).
 *   cancel    a queued request is dropped at once; a running one gets a
 *             CANCEL frame and holds its slot until the runner confirms
 *             (CANCELLED, or its DONE/ERROR if it had just finished).
 *
 * Threading: all on the agent's event loop.
 */
#ifndef AGENT_SERVE_H
#define AGENT_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "common/log.h"

#define SERVE_MAX_MODELS    64
#define SERVE_DEFAULT_QUEUE 32
#define SERVE_MAX_ID        128 /* bytes of a model id (state.h's STATE_MODEL_ID_MAX) */

struct serve_opts {
    const char *model_dirs[SERVE_MAX_MODELS]; /* --model, borrowed */
    size_t n_model_dirs;
    const char *models_roots[SERVE_MAX_MODELS]; /* --models, borrowed */
    size_t n_models_roots;
    bool none;                   /* --no-models: serve nothing */
    int slots;                   /* --slots per runner; 0 = the runner's default (4) */
    int ctx;                     /* --ctx per slot; 0 = the runner's choice */
    int threads;                 /* --threads per runner; 0 = physical cores */
    int act_bits;                /* --act-bits per runner; 0 = the default (16) */
    int queue;                   /* --queue per model; 0 = SERVE_DEFAULT_QUEUE */
    enum sh_log_level log_level; /* passed to the runners */
};

struct event_base;
struct api_backend;
struct serve;

/* One model folder found by serve_find_models. */
struct serve_model_dir {
    char *dir;
    char id[SERVE_MAX_ID + 1];
    char digest[65]; /* sha256 hex of the weights' index (or single file's header) */
    int64_t mtime;   /* config.json's, unix seconds */
};

/* The model folders o names (see the top). *out is returned (free with
 * serve_model_dirs_free). Errors: SH_ENOTFOUND (a --model that is not a
 * model folder, a --models without any), SH_EEXIST (two models with one
 * id), SH_EINVAL (an id with characters a client could not send, or too
 * long), SH_EIO, SH_ENOMEM; the message names the folder. */
int serve_find_models(const struct serve_opts *o,
                      const char *default_dir,
                      struct serve_model_dir **out,
                      size_t *n,
                      struct sh_err *err);
void serve_model_dirs_free(struct serve_model_dir *d, size_t n);

/* The id of the model in folder path (pure, string only): "Org/Name" when
 * path is .../models--Org--Name/snapshots/REV (trailing '/' allowed), else
 * its last component. Errors: SH_EINVAL (empty, ".", "..", or an id outside
 * [A-Za-z0-9._:@+-/] or longer than SERVE_MAX_ID). */
int serve_model_id(const char *path, char out[SERVE_MAX_ID + 1], struct sh_err *err);

/* Finds the models and starts a runner for each (they load in the
 * background; requests wait in the queue meanwhile). opts is copied; its
 * strings must outlive s. *out is returned; free with serve_free.
 * Errors: those of serve_find_models, SH_EIO (socketpair/fork), SH_ENOMEM. */
int serve_new(struct event_base *base,
              const struct serve_opts *opts,
              const char *default_dir,
              struct serve **out,
              struct sh_err *err);

/* Stops every runner (closes its socket, waits up to 2 s, then SIGKILL) and
 * frees s without calling back: free the API server first (it cancels what
 * runs). NULL ok. */
void serve_free(struct serve *s);

/* The backend the API server uses; valid while s lives. */
const struct api_backend *serve_backend(struct serve *s);

/* Adds "models": [{"id", "state": "loading"|"ready"|"restarting"|"failed",
 * "error"?, "pid", "slots", "busy", "queued", "restarts"}] to body. */
void serve_health(const struct serve *s, cJSON *body);

/* The cluster's "models present" hook (cluster_models_fn's shape): writes
 * the ids of the models this node serves (all but FAILED ones) into
 * out[0..cap) and returns how many there are. arg is the struct serve. */
uint32_t serve_model_ids(void *arg, char out[][SERVE_MAX_ID + 1], uint32_t cap);

#endif
