/* agent/cluster.c: building the control plane inside `shoal agent` and
 * tearing it down: node key and cluster key, the event log and the Raft
 * core (cluster_driver.c), discovery and its callbacks, the timers, the
 * routes (cluster_http.c), and the clean shutdown (leadership transfer,
 * then GOODBYE on every link).
 *
 * Liveness comes from the peer links' own heartbeats (discovery/): a link
 * that goes silent for link_timeout_ms is down, whatever mDNS says, and the
 * core hears LINK_DOWN; a member the leader has not heard from for
 * removal_timeout_ms is removed by the core (election.h R12).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <sodium.h>

#include "agent/agent.h"
#include "agent/cluster_int.h"
#include "common/log.h"
#include "common/util.h"

#define MOD "cluster"

void cluster_timing_default(struct cluster_timing *t)
{
    /* A LAN: links notice a pulled cable in 1.5 s, a leader is elected within
     * ~1-2 s, a member silent for 8 s is removed, and a side without a
     * majority forks a new epoch after 4 s (election.h wants epoch >= 3T and
     * removal >= epoch). */
    t->heartbeat_ms = 200;
    t->link_timeout_ms = 1500;
    t->election_timeout_ms = 1000;
    t->epoch_timeout_ms = 4000;
    t->removal_timeout_ms = 8000;
    t->bootstrap_grace_ms = 2000;
}

void cluster_set_models_hook(struct cluster *c, cluster_models_fn fn, void *arg)
{
    c->models_fn = fn;
    c->models_arg = arg;
}

/* ---- events from the loop ---------------------------------------------------- */

static void step_simple(struct cluster *c, uint8_t type, uint64_t id)
{
    struct elect_event ev;
    struct sh_err err;
    int rc;

    memset(&ev, 0, sizeof ev);
    ev.type = type;
    ev.link.id = id;
    sh_err_clear(&err);
    rc = cluster_step(c, &ev, &err);
    if (rc && rc != SH_EIO)
        SH_LOG(SH_LOG_WARN, MOD, "raft step failed: %s", sh_err_msg(&err));
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    step_simple(arg, ELECT_EV_TICK, 0);
}

static void on_post(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cluster_registry(arg);
}

/* Every second: own resources (telling peers when they moved enough), the
 * links' round-trip times, and a registry pass. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct cluster *c = arg;
    struct disc_link_info *links = NULL;
    struct sh_err err;
    size_t n;
    (void)fd;
    (void)what;

    sh_err_clear(&err);
    if (cluster_self_refresh(c, &err) != 0)
        SH_LOG(SH_LOG_WARN, MOD, "cannot read this node's resources: %s", sh_err_msg(&err));
    else
        cluster_info_maybe_send(c);
    if (c->disc && (links = calloc(CLUSTER_MAX_PEERS, sizeof *links))) {
        n = disc_links(c->disc, links, CLUSTER_MAX_PEERS);
        for (size_t i = 0; i < n && i < CLUSTER_MAX_PEERS; i++) {
            struct cluster_peer *p = cluster_peer_get(c, links[i].peer_id, false);
            if (p && p->linked)
                p->link = links[i];
        }
        free(links);
    }
    cluster_registry(c);
}

/* ---- discovery callbacks ----------------------------------------------------- */

static void on_link_up(void *arg, uint64_t peer, const struct disc_link_info *info)
{
    struct cluster *c = arg;
    struct cluster_peer *p = cluster_peer_get(c, peer, true);

    if (p) {
        p->linked = true;
        p->link = *info;
    }
    cluster_info_send(c, peer);
    step_simple(c, ELECT_EV_LINK_UP, peer);
}

static void on_link_down(void *arg, uint64_t peer, const char *reason)
{
    struct cluster *c = arg;
    struct cluster_peer *p = cluster_peer_get(c, peer, false);

    if (p)
        p->linked = false;
    SH_LOG(SH_LOG_INFO, MOD, "link down: %016" PRIx64 " '%s': %s", peer, cluster_node_name(c, peer),
           reason);
    step_simple(c, ELECT_EV_LINK_DOWN, peer);
}

static void on_message(void *arg, uint64_t peer, uint8_t type, const uint8_t *data, size_t len)
{
    struct cluster *c = arg;

    switch (type) {
    case DISC_MSG_RAFT:
        cluster_receive(c, peer, data, len);
        break;
    case DISC_MSG_INFO:
        cluster_info_receive(c, peer, data, len);
        break;
    default:
        SH_LOG(SH_LOG_DEBUG, MOD, "message type %u from %016" PRIx64 " ignored", type, peer);
    }
}

/* ---- lifecycle ---------------------------------------------------------------- */

static int start_discovery(struct cluster *c, const uint8_t *key, struct sh_err *err)
{
    const struct agent_opts *o = c->a->opts;
    struct disc_callbacks cbs = {on_link_up, on_link_down, on_message};
    struct disc_config cfg;
    int rc;

    memset(&cfg, 0, sizeof cfg);
    cfg.node_id = c->id.node_id;
    cfg.public_key = c->id.pk;
    cfg.secret_key = c->id.sk;
    cfg.cluster_key = key;
    cfg.name = o->name;
    cfg.api_port = c->self->api_port;
    cfg.peer_port = o->peer_port;
    cfg.static_peers = o->peers;
    cfg.n_static_peers = o->n_peers;
    cfg.mdns = !o->no_mdns;
    cfg.heartbeat_ms = c->t.heartbeat_ms;
    cfg.link_timeout_ms = c->t.link_timeout_ms;
    rc = disc_new(c->base, &cfg, &cbs, c, &c->disc, err);
    if (rc)
        return sh_err_wrap(err, "peer links on port %u", (unsigned)o->peer_port);
    return 0;
}

int cluster_new(struct agent *a, struct cluster **out, struct sh_err *err)
{
    const struct agent_opts *o = a->opts;
    struct cluster *c = calloc(1, sizeof *c);
    struct state_info_policy policy = STATE_INFO_POLICY_DEFAULT;
    uint8_t key[DISC_CLUSTER_KEY_BYTES];
    struct timeval every = {CLUSTER_INFO_EVERY_MS / 1000, CLUSTER_INFO_EVERY_MS % 1000 * 1000};
    bool created = false;
    char *json = NULL;
    int rc;

    if (!c)
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    c->a = a;
    c->base = a->base;
    c->t0_ns = sh_now_ns();
    c->policy = policy;
    c->test_events_left = o->test_events;
    cluster_timing_default(&c->t);
    c->st = state_new();
    c->self = calloc(1, sizeof *c->self);
    c->tick_ev = evtimer_new(c->base, on_tick, c);
    c->post_ev = evtimer_new(c->base, on_post, c);
    c->timer_ev = event_new(c->base, -1, EV_PERSIST, on_timer, c);
    if (!c->st || !c->self || !c->tick_ev || !c->post_ev || !c->timer_ev) {
        rc = sh_err_set(err, SH_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = agent_identity_load(o->data_dir, &c->id, &created, err))) {
        sh_err_wrap(err, "node key");
        goto fail;
    }
    snprintf(c->tag, sizeof c->tag, "%.8s", c->id.node_hex);
    sh_log_set_tag(c->tag);
    SH_LOG(SH_LOG_INFO, MOD, "node id %s (%s %s/%s)", c->id.node_hex,
           created ? "new key in" : "key from", o->data_dir, AGENT_NODE_KEY_FILE);
    if (o->cluster_key && (rc = agent_cluster_key_load(o->cluster_key, key, err))) {
        sh_err_wrap(err, "cluster key %s", o->cluster_key);
        goto fail;
    }
    /* A first description for the driver; the peer port is only known once
     * discovery listens (--peer-port 0), so it is checked after that. */
    if ((rc = cluster_self_refresh(c, err)))
        goto fail;
    if ((rc = cluster_driver_start(c, err)) ||
        (rc = start_discovery(c, o->cluster_key ? key : NULL, err)))
        goto fail;
    sodium_memzero(key, sizeof key);
    SH_LOG(SH_LOG_INFO, MOD, "peer links on port %u%s", (unsigned)disc_peer_port(c->disc),
           o->no_mdns ? " (mDNS off)" : "");
    if ((rc = cluster_self_refresh(c, err)))
        goto fail;
    if ((rc = state_event_encode(c->self, &json, err))) {
        sh_err_wrap(err, "this node's description (--name '%s'?)", o->name);
        goto fail;
    }
    free(json);
    json = NULL;
    if ((rc = cluster_http_init(c, err)))
        goto fail;
    if (event_add(c->timer_ev, &every) != 0) {
        rc = sh_err_set(err, SH_ENOMEM, "cannot arm the cluster timer");
        goto fail;
    }
    if (c->test_events_left)
        SH_LOG(SH_LOG_WARN, MOD, "--test-events %" PRIu64 ": will append test events (a test aid)",
               c->test_events_left);
    *out = c;
    return 0;
fail:
    sodium_memzero(key, sizeof key);
    cluster_free(c);
    return rc;
}

void cluster_shutdown(struct cluster *c)
{
    struct elect_event ev;
    struct sh_err err;
    size_t n = 0;
    int rc;

    if (!c || c->stopping)
        return;
    c->stopping = true;
    if (c->broken || elect_role(c->core) != ELECT_ROLE_LEADER)
        return;
    elect_members(c->core, &n);
    if (n < 2)
        return;
    memset(&ev, 0, sizeof ev);
    ev.type = ELECT_EV_TRANSFER;
    sh_err_clear(&err);
    rc = cluster_step(c, &ev, &err);
    if (rc) {
        SH_LOG(SH_LOG_INFO, MOD, "no leadership transfer: %s", sh_err_msg(&err));
        return;
    }
    SH_LOG(SH_LOG_INFO, MOD, "handing leadership over before stopping");
    /* Wait for TimeoutNow (cluster_step stops the loop once it is sent), at
     * most until the core abandons the transfer. */
    if (c->a->grace_ms < (int)c->t.election_timeout_ms + 500)
        c->a->grace_ms = (int)c->t.election_timeout_ms + 500;
}

void cluster_free(struct cluster *c)
{
    if (!c)
        return;
    cluster_sse_close_all(c);
    disc_free(c->disc); /* GOODBYE on every link */
    if (c->tick_ev)
        event_free(c->tick_ev);
    if (c->post_ev)
        event_free(c->post_ev);
    if (c->timer_ev)
        event_free(c->timer_ev);
    if (c->sse_ev)
        event_free(c->sse_ev);
    if (c->keepalive_ev)
        event_free(c->keepalive_ev);
    elect_free(c->core);
    state_store_close(c->store);
    state_free(c->st);
    for (size_t i = 0; i < c->n_peers; i++) {
        free(c->peers[i]->info);
        free(c->peers[i]);
    }
    free(c->self);
    agent_identity_wipe(&c->id);
    free(c);
}
