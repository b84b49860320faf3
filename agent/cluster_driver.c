/* agent/cluster_driver.c: the Raft driver (election.h rule R2) and the
 * leader's registry of nodes.
 *
 * NOTES ON THE DESIGN
 *
 * (1) Persist before acknowledge. cluster_step hands one event to the core
 *     and performs its update in R2's order: archive+truncate, append, hard
 *     state and commit index in ONE SQLite transaction (state_store_update,
 *     synchronous=FULL), then the messages, then the next TICK, then the
 *     fold of newly committed entries. A crash before the transaction
 *     commits loses the whole update, and nothing of it was sent. A write
 *     that fails marks the node broken: it takes no further step (its core
 *     is ahead of its disk) and shuts down.
 *
 * (2) Never re-entered. What would feed the core from inside a step (the
 *     registry's SUBMIT) runs from post_ev, a zero-delay timer, after the
 *     step has returned; event streams are woken the same way (sse_ev).
 *
 * (3) The log is the core's memory: the fold reads committed entries from
 *     the core (elect_entry_at); REWIND (the commit index went down after an
 *     epoch merge) refolds from entry 1. Streams read rows from SQLite, which
 *     also has each row's append time.
 *
 * (4) The registry: the core writes membership (member_added/removed,
 *     epoch_started); what each member *is* (name, address, resources) is
 *     written by the leader as node_joined / node_info_updated / node_left
 *     events, from the INFO each peer sends on its link. It is reconciled,
 *     not triggered: whenever the leader's log is fully committed and
 *     folded, it compares the folded state with what it knows and submits
 *     at most one event. A new leader, a lost INFO or a crash half-way are
 *     therefore all repaired by the next pass. Telemetry goes through
 *     state_info_decide, so it never floods the log.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <event2/event.h>

#include "agent/agent.h"
#include "agent/cluster_int.h"
#include "common/log.h"
#include "common/util.h"

#define MOD  "cluster"
#define RAFT "raft"

/* Row kinds are the entry kinds minus one (both are on disk / the wire). */
_Static_assert(ELECT_ENTRY_EVENT - 1 == STATE_ROW_EVENT, "row kind");
_Static_assert(ELECT_ENTRY_CONFIG - 1 == STATE_ROW_CONFIG, "row kind");
_Static_assert(ELECT_ENTRY_EPOCH - 1 == STATE_ROW_EPOCH, "row kind");
_Static_assert(ELECT_ENTRY_LEADER - 1 == STATE_ROW_LEADER, "row kind");

uint64_t cluster_now(struct cluster *c)
{
    uint64_t n = (sh_now_ns() - c->t0_ns) / 1000000 + 1;
    if (n < c->last_now)
        n = c->last_now;
    c->last_now = n;
    return n;
}

int64_t cluster_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- entries <-> rows ------------------------------------------------------ */

static void row_of(const struct elect_entry *x, uint64_t index, int64_t now_ms, struct state_row *r)
{
    memset(r, 0, sizeof *r);
    r->index = index;
    r->term = x->term;
    r->epoch = x->epoch.num;
    r->epoch_base = x->epoch.base;
    r->epoch_node = x->epoch.starter;
    r->kind = x->kind - 1;
    r->time_ms = now_ms;
    r->n_members = x->n_members;
    /* Borrowed for the append, which copies (the row type is not const). */
    r->members = (uint64_t *)(uintptr_t)x->members;
    r->payload = (char *)(uintptr_t)x->payload;
    r->payload_len = x->payload_len;
}

static int entry_of(const struct state_row *r, struct elect_entry *x, struct sh_err *err)
{
    memset(x, 0, sizeof *x);
    if (r->payload_len > ELECT_MAX_PAYLOAD || r->n_members > ELECT_MAX_MEMBERS)
        return sh_err_set(err, SH_EMALFORMED, "entry #%" PRIu64 ": larger than the core accepts",
                          r->index);
    x->term = r->term;
    x->epoch.num = r->epoch;
    x->epoch.base = r->epoch_base;
    x->epoch.starter = r->epoch_node;
    x->kind = (uint8_t)(r->kind + 1);
    x->n_members = (uint32_t)r->n_members;
    x->members = r->members;
    x->payload = r->payload;
    x->payload_len = (uint32_t)r->payload_len;
    return 0;
}

/* ---- R2 (a)..(c): one transaction ------------------------------------------ */

static void archive_reason(const struct elect_update *up, char *out, size_t cap)
{
    const struct elect_entry *first = up->n_archived ? &up->archived[0] : NULL;
    if (first && elect_epoch_cmp(&first->epoch, &up->hard.epoch) != 0)
        snprintf(out, cap,
                 "lost the epoch merge: lineage %" PRIu64 "/%" PRIu64 "/%016" PRIx64
                 " won (leader %016" PRIx64 ")",
                 up->hard.epoch.num, up->hard.epoch.base, up->hard.epoch.starter, up->leader);
    else
        snprintf(out, cap,
                 "conflict with leader %016" PRIx64 " (epoch %" PRIu64 ", term %" PRIu64 ")",
                 up->leader, up->hard.epoch.num, up->hard.term);
}

static int persist(struct cluster *c, const struct elect_update *up, struct sh_err *err)
{
    struct state_store_update u;
    struct state_persist p;
    struct state_row *rows = NULL;
    char reason[256];
    size_t archived = 0;
    int64_t now = cluster_wall_ms();
    int rc;

    memset(&u, 0, sizeof u);
    if (up->truncate_from) {
        archive_reason(up, reason, sizeof reason);
        u.truncate_from = up->truncate_from;
        u.reason = reason;
        u.now_ms = now;
    }
    if (up->n_entries) {
        rows = calloc(up->n_entries, sizeof *rows);
        if (!rows)
            return sh_err_set(err, SH_ENOMEM, "out of memory");
        for (size_t i = 0; i < up->n_entries; i++)
            row_of(&up->entries[i], up->append_from + i, now, &rows[i]);
        u.rows = rows;
        u.n_rows = up->n_entries;
    }
    if (up->flags & ELECT_UPD_HARD) {
        memset(&p, 0, sizeof p);
        p.term = up->hard.term;
        p.voted_for = up->hard.vote;
        p.vote_epoch = up->hard.vote_epoch != 0;
        p.epoch = up->hard.epoch.num;
        p.epoch_base = up->hard.epoch.base;
        p.epoch_node = up->hard.epoch.starter;
        u.persist = &p;
    }
    if (up->flags & (ELECT_UPD_COMMIT | ELECT_UPD_REWIND)) {
        u.set_commit = true;
        u.commit_index = up->hard.commit;
    }
    if (!u.truncate_from && !u.n_rows && !u.persist && !u.set_commit)
        return 0;
    rc = state_store_update(c->store, &u, &archived, err);
    free(rows);
    if (rc == 0 && up->truncate_from)
        SH_LOG(SH_LOG_INFO, MOD, "archived %zu entries from #%" PRIu64 ": %s", archived,
               up->truncate_from, reason);
    return rc;
}

/* ---- R2 (d), (e) ------------------------------------------------------------ */

static void send_msgs(struct cluster *c, const struct elect_update *up)
{
    for (size_t i = 0; i < up->n_msgs && c->disc; i++) {
        const struct elect_msg *m = &up->msgs[i];
        struct sh_err err;
        uint8_t *buf = NULL;
        size_t len = 0;
        int rc;

        sh_err_clear(&err);
        rc = elect_msg_encode(m, &buf, &len, &err);
        if (rc == 0)
            rc = disc_send(c->disc, m->to, DISC_MSG_RAFT, buf, len, &err);
        free(buf);
        if (rc == 0)
            SH_LOG(SH_LOG_DEBUG, RAFT, "-> %016" PRIx64 " %s (%zu bytes)", m->to,
                   elect_msg_type_name(m->type), len);
        else
            SH_LOG(rc == SH_ENOTFOUND ? SH_LOG_DEBUG : SH_LOG_WARN, RAFT,
                   "cannot send %s to %016" PRIx64 ": %s", elect_msg_type_name(m->type), m->to,
                   sh_err_msg(&err));
    }
}

static void arm_tick(struct cluster *c, uint64_t next_tick)
{
    uint64_t now = c->last_now, d = next_tick > now ? next_tick - now : 0;
    struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000 * 1000)};
    evtimer_add(c->tick_ev, &tv);
}

/* ---- R2 (f): the fold ------------------------------------------------------ */

/* member_added/removed: remember (or forget) why a member was removed. */
static void note_removed(struct cluster *c, const struct state_event *ev);

static void log_event(struct cluster *c, const struct state_event *ev, uint64_t index)
{
    struct sh_strbuf sb;
    enum sh_log_level lvl = ev->type == STATE_EV_NODE_INFO_UPDATED ? SH_LOG_DEBUG : SH_LOG_INFO;
    if (lvl > sh_log_level())
        return;
    sh_strbuf_init(&sb, 2048);
    if (state_event_summary(c->st, ev, &sb) == 0 && sb.buf)
        SH_LOG(lvl, MOD, "#%" PRIu64 " %s: %s", index, state_event_type_name(ev->type), sb.buf);
    sh_strbuf_free(&sb);
}

static void apply_committed(struct cluster *c, uint64_t commit, bool rewind)
{
    struct state_event *ev = malloc(sizeof *ev);
    uint64_t from = c->applied;

    if (!ev) {
        SH_LOG(SH_LOG_ERROR, MOD, "out of memory folding the log");
        return;
    }
    if (rewind || commit < c->applied) {
        SH_LOG(SH_LOG_INFO, MOD,
               "commit index went back from %" PRIu64 " to %" PRIu64
               ": rebuilding the state from the log",
               c->applied, commit);
        state_init(c->st);
        c->applied = 0;
    }
    while (c->applied < commit) {
        uint64_t x = c->applied + 1;
        const struct elect_entry *en = elect_entry_at(c->core, x);
        struct sh_err err;
        if (!en)
            break;
        sh_err_clear(&err);
        if (en->payload_len > 0) {
            int rc = state_event_parse(en->payload, en->payload_len, ev, &err);
            if (rc == 0) {
                log_event(c, ev, x);
                rc = state_apply_event(c->st, x, ev, &err);
                if (rc == 0 &&
                    (ev->type == STATE_EV_MEMBER_REMOVED || ev->type == STATE_EV_MEMBER_ADDED))
                    note_removed(c, ev);
            }
            if (rc)
                SH_LOG(SH_LOG_WARN, MOD, "entry #%" PRIu64 " (%s) not applied: %s", x,
                       elect_kind_name(en->kind), sh_err_msg(&err));
        }
        c->applied = x;
    }
    free(ev);
    if (c->applied != from || rewind)
        cluster_sse_commit(c, rewind);
}

static void log_trace(const char *trace)
{
    while (trace && *trace) {
        const char *nl = strchr(trace, '\n');
        int n = nl ? (int)(nl - trace) : (int)strlen(trace);
        if (n > 0)
            SH_LOG(SH_LOG_INFO, RAFT, "%.*s", n, trace);
        trace += n + (nl ? 1 : 0);
    }
}

static void log_role(struct cluster *c, const struct elect_update *up)
{
    struct elect_epoch ep = up->hard.epoch;
    if (up->role == c->last_role && up->leader == c->last_leader)
        return;
    c->last_role = up->role;
    c->last_leader = up->leader;
    if (up->role == ELECT_ROLE_LEADER)
        SH_LOG(SH_LOG_INFO, MOD, "this node leads: epoch %" PRIu64 ", term %" PRIu64, ep.num,
               up->hard.term);
    else if (up->leader)
        SH_LOG(SH_LOG_INFO, MOD,
               "leader is %016" PRIx64 " '%s' (epoch %" PRIu64 ", term %" PRIu64 ")", up->leader,
               cluster_node_name(c, up->leader), ep.num, up->hard.term);
    else
        SH_LOG(SH_LOG_INFO, MOD, "no leader known (%s, epoch %" PRIu64 ", term %" PRIu64 ")",
               elect_role_name((enum elect_role)up->role), ep.num, up->hard.term);
}

static void on_exit_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopexit(arg, NULL);
}

int cluster_step(struct cluster *c, struct elect_event *ev, struct sh_err *err)
{
    struct elect_update up;
    struct sh_err perr;
    int rc;

    if (c->broken)
        return sh_err_set(err, SH_EIO, "the event log failed earlier: no more steps");
    if (c->in_step)
        abort(); /* note 2: a programmer error */
    ev->now_ms = cluster_now(c);
    c->in_step = true;
    rc = elect_step(c->core, ev, &up, err);
    if (rc) {
        arm_tick(c, up.next_tick);
        c->in_step = false;
        return rc;
    }
    log_trace(up.trace);
    sh_err_clear(&perr);
    if (persist(c, &up, &perr)) {
        /* Note 1: nothing of this update may leave the node. */
        c->broken = true;
        c->in_step = false;
        SH_LOG(SH_LOG_ERROR, MOD, "cannot write the event log: %s; stopping", sh_err_msg(&perr));
        agent_shutdown(c->a);
        return sh_err_set(err, SH_EIO, "event log: %s", sh_err_msg(&perr));
    }
    send_msgs(c, &up);
    arm_tick(c, up.next_tick);
    if ((up.flags & ELECT_UPD_REWIND) || up.hard.commit != c->applied)
        apply_committed(c, up.hard.commit, (up.flags & ELECT_UPD_REWIND) != 0);
    log_role(c, &up);
    if ((up.flags & ELECT_UPD_TRANSFERRED) && c->stopping) {
        /* TimeoutNow is queued: give it a moment on the wire, then stop. */
        SH_LOG(SH_LOG_INFO, MOD, "leadership handed over; stopping");
        event_base_once(c->base, -1, EV_TIMEOUT, on_exit_timer, c->base,
                        &(struct timeval){0, 150 * 1000});
    }
    c->in_step = false;
    cluster_post(c);
    return 0;
}

void cluster_post(struct cluster *c)
{
    /* A zero timeout, not event_active: a timer runs after the next poll,
     * so a leader that keeps submitting (--test-events) never starves the
     * sockets and signals. */
    struct timeval zero = {0, 0};
    if (c->post_ev && !evtimer_pending(c->post_ev, NULL))
        evtimer_add(c->post_ev, &zero);
}

void cluster_receive(struct cluster *c, uint64_t peer, const uint8_t *data, size_t len)
{
    struct elect_msg *m = NULL;
    struct elect_event ev;
    struct sh_err err;
    int rc;

    sh_err_clear(&err);
    if (elect_msg_decode(data, len, &m, &err) != 0) {
        SH_LOG(SH_LOG_WARN, RAFT, "malformed message from %016" PRIx64 " (%zu bytes): %s; dropped",
               peer, len, sh_err_msg(&err));
        return;
    }
    if (m->from != peer) {
        /* The link authenticated `peer`: nobody speaks for another node. */
        SH_LOG(SH_LOG_WARN, RAFT,
               "message on the link of %016" PRIx64 " claims to come from %016" PRIx64 "; dropped",
               peer, m->from);
        elect_msg_free(m);
        return;
    }
    SH_LOG(SH_LOG_DEBUG, RAFT, "<- %016" PRIx64 " %s", peer, elect_msg_type_name(m->type));
    memset(&ev, 0, sizeof ev);
    ev.type = ELECT_EV_RECEIVE;
    ev.receive.msg = m;
    rc = cluster_step(c, &ev, &err);
    if (rc && rc != SH_EIO)
        SH_LOG(SH_LOG_WARN, RAFT, "message %s from %016" PRIx64 " refused: %s",
               elect_msg_type_name(m->type), peer, sh_err_msg(&err));
    elect_msg_free(m);
}

/* ---- start ------------------------------------------------------------------ */

int cluster_driver_start(struct cluster *c, struct sh_err *err)
{
    struct state_store_meta meta;
    struct state_row *rows = NULL;
    struct elect_entry *entries = NULL;
    struct elect_params p;
    struct elect_event ev;
    uint64_t seed = 0;
    size_t n = 0;
    int rc;

    if ((rc = state_store_open(c->a->opts->data_dir, STATE_STORE_WRITE, &c->store, err)) ||
        (rc = state_store_load(c->store, &meta, &rows, &n, err)))
        return sh_err_wrap(err, "event log");
    if (n && !(entries = calloc(n, sizeof *entries))) {
        rc = sh_err_set(err, SH_ENOMEM, "out of memory loading %zu entries", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if ((rc = entry_of(&rows[i], &entries[i], err)))
            goto out;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
        seed = sh_now_ns() ^ c->id.node_id;
    elect_params_default(&p, c->id.node_id, seed);
    p.election_timeout_ms = c->t.election_timeout_ms;
    p.heartbeat_ms = c->t.election_timeout_ms / 10 ? c->t.election_timeout_ms / 10 : 1;
    p.epoch_timeout_ms = c->t.epoch_timeout_ms;
    p.removal_timeout_ms = c->t.removal_timeout_ms;
    p.bootstrap_grace_ms = c->t.bootstrap_grace_ms;
    if ((rc = elect_new(&p, &c->core, err)))
        goto out;
    memset(&ev, 0, sizeof ev);
    ev.type = ELECT_EV_START;
    ev.start.hard.term = meta.persist.term;
    ev.start.hard.vote = meta.persist.voted_for;
    ev.start.hard.vote_epoch = meta.persist.vote_epoch;
    ev.start.hard.epoch.num = meta.persist.epoch;
    ev.start.hard.epoch.base = meta.persist.epoch_base;
    ev.start.hard.epoch.starter = meta.persist.epoch_node;
    ev.start.hard.commit = meta.commit_index;
    ev.start.entries = entries;
    ev.start.n_entries = n;
    if ((rc = cluster_step(c, &ev, err))) {
        sh_err_wrap(err, "event log %s/events.db refused by the Raft core", c->a->opts->data_dir);
        goto out;
    }
    SH_LOG(SH_LOG_INFO, MOD,
           "event log: %zu entries, commit #%" PRIu64 ", term %" PRIu64 ", epoch %" PRIu64, n,
           meta.commit_index, meta.persist.term, meta.persist.epoch);
out:
    free(entries);
    state_rows_free(rows, n);
    return rc;
}

/* ---- the registry (note 4) ------------------------------------------------- */

/* The reason of a member_removed, kept with the peer for the node_left the
 * registry writes next ("removed from the members: silent for 8.0 s"). */
static void note_removed(struct cluster *c, const struct state_event *ev)
{
    struct cluster_peer *p;
    if (ev->node == c->id.node_id || !(p = cluster_peer_get(c, ev->node, true)))
        return;
    snprintf(p->removed_reason, sizeof p->removed_reason, "%s",
             ev->type == STATE_EV_MEMBER_REMOVED ? ev->reason : "");
}

static bool in_members(const struct state *st, uint64_t id)
{
    for (uint32_t i = 0; i < st->n_members; i++)
        if (st->members[i] == id)
            return true;
    return false;
}

static const struct state_event *info_of(struct cluster *c, uint64_t id)
{
    struct cluster_peer *p;
    if (id == c->id.node_id)
        return c->self;
    p = cluster_peer_get(c, id, false);
    return p ? p->info : NULL;
}

/* Fills ev with the registry event the state needs most, if any. */
static bool registry_pick(struct cluster *c, struct state_event *ev)
{
    const struct state *st = c->st;
    int64_t now = cluster_wall_ms();

    memset(ev, 0, sizeof *ev);
    for (uint32_t i = 0; i < st->n_nodes; i++) {
        const struct state_node *n = &st->nodes[i];
        const struct cluster_peer *p;
        if (in_members(st, n->id))
            continue;
        p = cluster_peer_get(c, n->id, false);
        ev->type = STATE_EV_NODE_LEFT;
        ev->node = n->id;
        if (p && p->removed_reason[0])
            snprintf(ev->reason, sizeof ev->reason, "removed from the members: %.200s",
                     p->removed_reason);
        else
            snprintf(ev->reason, sizeof ev->reason, "not a member of epoch %" PRIu64, st->epoch);
        return true;
    }
    for (uint32_t i = 0; i < st->n_members; i++) {
        const struct state_event *info = info_of(c, st->members[i]);
        const struct state_node *n = state_find_node(st, st->members[i]);
        if (!info)
            continue; /* its INFO has not arrived yet */
        if (!n || strcmp(n->name, info->name) != 0 || strcmp(n->addr, info->addr) != 0 ||
            n->api_port != info->api_port) {
            *ev = *info;
            ev->type = STATE_EV_NODE_JOINED;
            return true;
        }
        if (state_info_decide(&n->res, n->updated_time_ms, &info->res, now, &c->policy, NULL) ==
            STATE_INFO_LOG) {
            ev->type = STATE_EV_NODE_INFO_UPDATED;
            ev->node = info->node;
            ev->res = info->res;
            return true;
        }
    }
    if (c->test_events_left > 0) {
        /* --test-events (a test aid): the log under a steady append load. */
        const struct state_node *n = state_find_node(st, c->id.node_id);
        if (!n)
            return false;
        ev->type = STATE_EV_NODE_INFO_UPDATED;
        ev->node = n->id;
        ev->res = n->res;
        if (ev->res.ram_free > 0 && ++c->test_events_done % 2)
            ev->res.ram_free--;
        else if (ev->res.ram_free < ev->res.ram_total)
            ev->res.ram_free++;
        c->test_events_left--;
        return true;
    }
    return false;
}

void cluster_registry(struct cluster *c)
{
    struct state_event *ev;
    struct elect_event e;
    struct sh_err err;
    char *json = NULL;
    int rc;

    if (c->broken || c->stopping || c->in_step || elect_role(c->core) != ELECT_ROLE_LEADER ||
        !elect_in_sync(c->core))
        return;
    /* One at a time, on a state that has folded everything we wrote. */
    if (elect_commit(c->core) != elect_last_index(c->core) || c->applied != elect_commit(c->core))
        return;
    if (!(ev = malloc(sizeof *ev)))
        return;
    sh_err_clear(&err);
    if (!registry_pick(c, ev))
        goto out;
    ev->has_time = true;
    ev->time_ms = cluster_wall_ms();
    if ((rc = state_event_encode(ev, &json, &err))) {
        SH_LOG(SH_LOG_WARN, MOD, "registry: cannot encode %s: %s", state_event_type_name(ev->type),
               sh_err_msg(&err));
        goto out;
    }
    memset(&e, 0, sizeof e);
    e.type = ELECT_EV_SUBMIT;
    e.submit.payload = json;
    e.submit.len = strlen(json);
    rc = cluster_step(c, &e, &err);
    if (rc && rc != SH_EIO)
        SH_LOG(SH_LOG_DEBUG, MOD, "registry: %s not submitted: %s", state_event_type_name(ev->type),
               sh_err_msg(&err));
out:
    free(json);
    free(ev);
}
