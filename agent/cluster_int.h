/* agent/cluster_int.h: the control plane's state and what its files share:
 * cluster.c (setup, discovery callbacks, shutdown), cluster_driver.c (the
 * Raft driver and the leader's registry of nodes), cluster_http.c (routes
 * and event streams), cluster_info.c (this node's description). Only those
 * files include it. */
#ifndef AGENT_CLUSTER_INT_H
#define AGENT_CLUSTER_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/cluster.h"
#include "agent/identity.h"
#include "discovery/discovery.h"
#include "election/election.h"
#include "state/state.h"

struct event;
struct event_base;
struct api_request;

#define CLUSTER_MAX_PEERS     ELECT_MAX_LINKS
#define CLUSTER_INFO_EVERY_MS 1000 /* own resources re-read, registry checked */

/* A peer we have (or had) a link to. */
struct cluster_peer {
    uint64_t id;
    bool linked;
    struct disc_link_info link; /* the last link's details */
    struct state_event *info;   /* how it described itself (INFO), owned; NULL until then */
    char removed_reason[STATE_REASON_MAX + 1]; /* of its last member_removed, "" if none */
};

/* A GET /events?stream=1 client. */
struct cluster_sse {
    struct api_request *req;
    uint64_t next;         /* next log index to send */
    uint64_t last_send_ns; /* for keep-alive comments */
    struct cluster_sse *next_client;
};

struct cluster {
    struct agent *a;
    struct event_base *base;
    struct cluster_timing t;
    struct agent_identity id;
    char tag[9]; /* short node id for log lines */
    struct disc *disc;
    struct elect *core;
    struct state_store *store;
    struct state *st; /* the committed log folded, entries 1..applied */
    uint64_t applied;
    uint64_t t0_ns;             /* monotonic origin of the core's clock */
    uint64_t last_now;          /* never decreasing (election.h R1) */
    struct event *tick_ev;      /* the core's next TICK */
    struct event *post_ev;      /* the registry, after a step (never inside one) */
    struct event *timer_ev;     /* every CLUSTER_INFO_EVERY_MS */
    struct event *sse_ev;       /* streams that still have entries to send */
    struct event *keepalive_ev; /* idle streams get a comment line */
    bool in_step;
    bool broken;   /* a write to the log failed: the node stops taking steps */
    bool stopping; /* shutdown began: no submits */
    uint8_t last_role;
    uint64_t last_leader;

    struct state_event *self; /* this node's node_joined, refreshed */
    struct state_resources info_sent;
    int64_t info_sent_ms;
    cluster_models_fn models_fn;
    void *models_arg;

    struct cluster_peer *peers[CLUSTER_MAX_PEERS];
    size_t n_peers;

    struct state_info_policy policy;
    uint64_t test_events_left; /* --test-events: a test aid */
    uint64_t test_events_done;

    struct cluster_sse *sse;
    size_t n_sse;
};

/* ---- cluster_driver.c ----------------------------------------------------- */

/* The core's clock: ms since start, never decreasing. */
uint64_t cluster_now(struct cluster *c);
/* Wall clock, ms since 1970 (event "time" and row time_ms). */
int64_t cluster_wall_ms(void);
/* Loads the log, feeds START, folds what is committed. Errors: the store's,
 * SH_EMALFORMED (a log the core refuses: names the entry). */
int cluster_driver_start(struct cluster *c, struct sh_err *err);
/* One event through the core, then rule R2: persist, send, arm the tick,
 * apply. ev->now_ms is filled here. Errors: elect_step's (logged by the
 * caller as it sees fit); SH_EIO when persisting failed (the node stops). */
int cluster_step(struct cluster *c, struct elect_event *ev, struct sh_err *err);
/* Schedules the post-step work (registry, streams) on the loop. */
void cluster_post(struct cluster *c);
/* Leader: submits at most one registry event the state lacks. */
void cluster_registry(struct cluster *c);
/* A decoded RAFT message from peer (already checked: from == peer). */
void cluster_receive(struct cluster *c, uint64_t peer, const uint8_t *data, size_t len);

/* ---- cluster_info.c ------------------------------------------------------- */

/* Re-reads this node's resources into c->self (name, address, ports too).
 * Errors: SH_EIO (no /proc/meminfo), SH_EMALFORMED. */
int cluster_self_refresh(struct cluster *c, struct sh_err *err);
/* Sends c->self to one peer (peer != 0) or to every linked peer, as an
 * INFO message; remembers what was sent. */
void cluster_info_send(struct cluster *c, uint64_t peer);
/* Sends INFO to every peer when the resources moved enough since the last
 * one (state_info_decide), at most once per policy interval. */
void cluster_info_maybe_send(struct cluster *c);
/* An INFO message from peer: validated, kept in its cluster_peer. */
void cluster_info_receive(struct cluster *c, uint64_t peer, const uint8_t *data, size_t len);
/* The peer record for id, created when create is set (NULL when full or
 * absent). */
struct cluster_peer *cluster_peer_get(struct cluster *c, uint64_t id, bool create);
/* "host:port" of a node's API as known here, into out; false if unknown. */
bool cluster_api_addr(const struct cluster *c, uint64_t id, char *out, size_t cap);
/* The name of a node as known here (INFO, state), or "". */
const char *cluster_node_name(const struct cluster *c, uint64_t id);

/* ---- cluster_http.c ------------------------------------------------------- */

int cluster_http_init(struct cluster *c, struct sh_err *err);
/* New committed entries (or a rewind to commit): wake the streams. */
void cluster_sse_commit(struct cluster *c, bool rewound);
/* Ends every stream (shutdown). */
void cluster_sse_close_all(struct cluster *c);
/* {"id","name","api"} of the known leader, or NULL (JSON null) when none.
 * Errors: NULL on ENOMEM too (callers add JSON null either way). */
cJSON *cluster_leader_json(const struct cluster *c);

#endif
