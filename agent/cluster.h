/* agent/cluster.h: the node's control plane inside `shoal agent`: discovery
 * (peer links), the Raft core (election/) driven over those links, the event
 * log in SQLite (state/) folded into the cluster state, and the control-plane
 * HTTP routes (/state, /events, /nodes, /health's cluster fields). Internal
 * to agent/.
 *
 * Lifecycle (all on the agent's event loop):
 *   cluster_new (after the API server exists: it adds its routes)
 *   -> ... the loop runs ...
 *   -> cluster_shutdown (SIGTERM: a leader hands leadership over first)
 *   -> cluster_free (GOODBYE on every link, store closed), before
 *      api_server_free.
 */
#ifndef AGENT_CLUSTER_H
#define AGENT_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "state/state.h"

struct agent;
struct cluster;

/* Timing for a LAN (the defaults) and the tests: everything in ms. */
struct cluster_timing {
    uint32_t heartbeat_ms;        /* peer link PING [200] */
    uint32_t link_timeout_ms;     /* link down after silence [1500] */
    uint32_t election_timeout_ms; /* Raft T [1000]; Raft heartbeats every T/10 */
    uint32_t epoch_timeout_ms;    /* no leader this long: new epoch [4000] */
    uint32_t removal_timeout_ms;  /* silent member removed [8000] */
    uint32_t bootstrap_grace_ms;  /* fresh node waits for a leader [2000] */
};

void cluster_timing_default(struct cluster_timing *t);

/* Builds the control plane of agent a: loads the node key (creating it on
 * first start), the cluster key (a->opts->cluster_key), the event log in the
 * data dir, starts the Raft core from what is on disk, starts discovery and
 * adds the HTTP routes to a->api. *out is returned; free with cluster_free.
 * Errors: those of the parts, wrapped with what failed ("cluster key FILE:
 * ...", "event log: ...", "peer port 52416: ..."). */
int cluster_new(struct agent *a, struct cluster **out, struct sh_err *err);

/* Stops SSE streams, says GOODBYE on every link, closes the log. NULL ok. */
void cluster_free(struct cluster *c);

/* A clean shutdown begins (agent_shutdown): a leader with other members
 * transfers leadership (election.h R14) and raises a->grace_ms so the loop
 * runs until the transfer is sent (or abandoned after the election
 * timeout); nothing is submitted any more. */
void cluster_shutdown(struct cluster *c);

/* Adds "node_id", "role", "term", "epoch" and "leader" to /health's body. */
void cluster_health(const struct cluster *c, cJSON *body);

/* The models this node has, for its resources (node_joined and
 * node_info_updated). Fills out[0..cap) and returns how many there are; the
 * model engineer's hook. Without one the list is empty. */
typedef uint32_t (*cluster_models_fn)(void *arg, char out[][STATE_MODEL_ID_MAX + 1], uint32_t cap);
void cluster_set_models_hook(struct cluster *c, cluster_models_fn fn, void *arg);

/* ---- resources (cluster_info.c; exposed for tests) ---------------------- */

/* Reads MemTotal and MemAvailable (bytes) from /proc/meminfo text.
 * Errors: SH_EMALFORMED naming the missing or bad field. */
int cluster_meminfo_parse(const char *text, uint64_t *total, uint64_t *avail, struct sh_err *err);

#endif
