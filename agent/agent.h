/* agent/agent.h: the running node (`shoal agent`): one libevent loop that
 * owns the HTTP API and, as they are wired in, the cluster (discovery,
 * election, the event log) and the model runners. Internal to agent/.
 *
 * Lifecycle: agent_opts_init -> (flags fill opts) -> agent_run, which builds
 * every part, runs the loop until SIGTERM/SIGINT, shuts the parts down in
 * reverse order and returns the exit status. Parts never call exit().
 */
#ifndef AGENT_AGENT_H
#define AGENT_AGENT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/serve.h"
#include "common/err.h"
#include "common/log.h"

#define AGENT_NAME_MAX  64
#define AGENT_MAX_PEERS 64

struct agent_opts {
    char data_dir[PATH_MAX];     /* --data-dir, else the XDG default */
    char name[AGENT_NAME_MAX];   /* --name, else the host name */
    const char *bind;            /* --bind: API address (default 127.0.0.1) */
    uint16_t api_port;           /* --api-port (default 52415) */
    const char *api_key;         /* --api-key or $SHOAL_API_KEY; NULL = none */
    const char *cors_origin;     /* --cors ORIGIN; NULL = off */
    enum sh_log_level log_level; /* --log-level */
    /* The cluster (agent/cluster.h). */
    uint16_t peer_port;                 /* --peer-port (default 52416) */
    const char *peers[AGENT_MAX_PEERS]; /* --peer HOST:PORT (repeatable) */
    size_t n_peers;
    const char *cluster_key; /* --cluster-key FILE; NULL = an open cluster */
    bool no_mdns;            /* --no-mdns: static peers only */
    uint64_t test_events;    /* --test-events N: a test aid (see cmd_agent.c) */
    struct serve_opts serve; /* --model, --models, --slots, ... (serve.h) */
};

struct event_base;
struct api_server;
struct cluster;
struct serve;

struct agent {
    const struct agent_opts *opts; /* borrowed from the caller of agent_run */
    struct event_base *base;
    struct api_server *api;
    struct cluster *cluster; /* discovery, Raft, the event log (cluster.h) */
    uint64_t start_ns;       /* sh_now_ns() at start, for /health uptime */
    bool stopping;           /* a shutdown is under way */
    int grace_ms;            /* how long the loop keeps running after a shutdown
                              * begins, for parts that send goodbyes (0 = none) */
    struct serve *serve;     /* the models this node runs (serve.h) */
};

/* Fills defaults (everything but data_dir, which needs the environment:
 * agent_run resolves an empty one). */
void agent_opts_init(struct agent_opts *o);

/* Runs the node until a signal stops it. Returns 0 after a clean shutdown,
 * 1 when a part failed to start (the error is logged). */
int agent_run(const struct agent_opts *opts);

/* Begins a clean shutdown (as SIGTERM does): parts stop, then the loop
 * exits. Safe to call more than once. */
void agent_shutdown(struct agent *a);

#endif
