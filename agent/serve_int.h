/* agent/serve_int.h: what serve_runner.c (runner processes and their frames)
 * and serve_backend.c (the api_backend: queue, dispatch, callbacks) share.
 * Internal to those files and their tests.
 */
#ifndef AGENT_SERVE_INT_H
#define AGENT_SERVE_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/runner_proto.h"
#include "agent/serve.h"
#include "api/api.h"

enum sv_state {
    SV_STARTING = 0, /* runner started, READY not yet seen */
    SV_READY = 1,
    SV_WAITING = 2, /* runner died; restart timer armed */
    SV_FAILED = 3,  /* final: the model cannot be loaded */
};

enum rq_state {
    RQ_QUEUED = 0,    /* in the model's FIFO */
    RQ_RUNNING = 1,   /* sent to the runner, callbacks live */
    RQ_CANCELLED = 2, /* sent, then cancelled: waits for the runner's last frame */
};

struct sv_model;

/* One generation; what the HTTP layer knows as struct api_gen_handle. */
struct api_gen_handle {
    struct sv_model *m;
    uint32_t id; /* the frames' request id (unique per model, never 0) */
    enum rq_state st;
    struct api_gen_callbacks cb;
    void *arg;
    char *json; /* the GEN payload; freed once sent */
    size_t json_len;
    uint64_t t_enqueue, t_sent;
    struct api_gen_handle *prev, *next; /* in the queue or the running list */
};

struct sv_list {
    struct api_gen_handle *head, *tail;
    size_t n;
};

struct sv_model {
    struct serve *s;
    struct serve_model_dir md; /* dir owned */
    enum sv_state st;
    char error[SH_ERR_MSG_LEN]; /* why FAILED, or the last crash */
    /* the runner */
    pid_t pid; /* 0: none */
    struct bufferevent *bev;
    int slots; /* from READY */
    int busy;  /* requests sent and not ended (running + cancelled) */
    struct event *restart_ev;
    int crashes_in_row; /* crashes since the last READY */
    int start_failures; /* runners that died before READY, in a row */
    unsigned restarts;
    uint64_t started_ns; /* when the current runner was started */
    uint32_t next_id;
    struct sv_list queue, running;
    double mean_s; /* request time, exponentially weighted */
    /* from READY (strings owned) */
    struct api_model_info info;
    char *family, *dtype, *template_src;
    struct api_sampling defaults;
};

struct serve {
    struct event_base *base;
    struct serve_opts o;
    const char *default_dir;
    struct sv_model *models;
    size_t n;
    struct api_backend be;
    struct api_model_info *infos; /* list_models' answer, rebuilt per call */
    struct runner_delta *delta;   /* decoding scratch (~30 KiB of views) */
};

/* serve_runner.c */
int sv_runner_start(struct sv_model *m, struct sh_err *err);
/* Kills and reaps the runner (if any), fails its running requests with
 * SH_ECLOSED (why: for the log and the clients), then restarts it with
 * backoff or marks the model FAILED. */
void sv_runner_down(struct sv_model *m, const char *why);
/* Stops the runner for good (shutdown): no callbacks. */
void sv_runner_stop(struct sv_model *m);
/* Sends a frame to the runner; false when it could not be queued. */
bool sv_runner_send(
    struct sv_model *m, enum runner_msg type, uint32_t id, const void *p, size_t len);

/* serve_backend.c: what the runner side calls back into. */
void sv_list_remove(struct sv_list *l, struct api_gen_handle *h);
void sv_list_push(struct sv_list *l, struct api_gen_handle *h);
void sv_req_free(struct api_gen_handle *h);
/* Sends queued requests while the model is READY and has free slots. */
void sv_dispatch(struct sv_model *m);
/* Ends every queued request with on_error(code, msg) (the model FAILED). */
void sv_fail_queue(struct sv_model *m, int code, const char *msg);
/* A frame for request id from m's runner. Errors: SH_EPROTO (unknown id,
 * bad payload, CANCELLED for a request not cancelled): the runner is then
 * treated as broken. */
int sv_on_request_frame(struct sv_model *m,
                        const struct runner_hdr *h,
                        const uint8_t *p,
                        struct sh_err *err);
/* READY's payload into m->info. Errors: SH_EPROTO. */
int sv_on_ready(struct sv_model *m, const uint8_t *p, size_t len, struct sh_err *err);

#endif
