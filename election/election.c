/* election/election.c: the core's lifecycle and elect_step -- one switch that
 * dispatches events to the files that own them (vote.c, replication.c,
 * membership.c, epoch.c) -- plus role changes, timers, the RNG, the trace and
 * the assembly of the update. The rules are in election.h.
 *
 * NOTES ON THE DESIGN
 *  1. A step either fails before changing anything or cannot fail: every
 *     allocation it may need (log capacity, spare blocks for entries the core
 *     writes, copies of received entries, archive room) happens first.
 *  2. Messages, archived entries and the trace are scratch owned by the core
 *     and handed out as views; they die at the next step. AppendEntries
 *     messages record (prev_index, n) while the step runs and get their
 *     entry pointers at the end, because appends may move the log array.
 *  3. Persistence is the driver's (R2); the core assumes the update was
 *     persisted before any later event arrives, so a leader counts its own
 *     last index as replicated in the step that appends it.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "election/internal.h"

/* ---- allocation */
static void *libc_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, size);
}

void *elect_realloc(struct elect *e, void *p, size_t n)
{
    return e->p.realloc_fn(e->p.alloc_ctx, p, n);
}

void *elect_alloc(struct elect *e, size_t n)
{
    return elect_realloc(e, NULL, n);
}

void elect_dealloc(struct elect *e, void *p)
{
    if (p)
        elect_realloc(e, p, 0);
}

/* ---- RNG: splitmix64 to seed, xorshift64* to draw (R1). */
static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t elect_rand(struct elect *e)
{
    uint64_t x = e->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    e->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* ---- trace */
void elect_tracef(struct elect *e, const char *fmt, ...)
{
    size_t room = sizeof e->trace - e->trace_len;
    va_list ap;
    int n;
    if (e->trace_full || room < 8)
        return;
    va_start(ap, fmt);
    n = vsnprintf(e->trace + e->trace_len, room - 4, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n + 6 > room) {
        e->trace_len = sizeof e->trace - 5;
        memcpy(e->trace + e->trace_len, "...\n", 5);
        e->trace_len += 4;
        e->trace_full = true;
        return;
    }
    e->trace_len += (size_t)n;
    e->trace[e->trace_len++] = '\n';
    e->trace[e->trace_len] = '\0';
}

const char *elect_epoch_str(char *buf, const struct elect_epoch *ep)
{
    snprintf(buf, ELECT_EPOCH_STR, "%" PRIu64 "/%" PRIu64 "/" ELECT_ID_FMT, ep->num, ep->base,
             ep->starter);
    return buf;
}

/* ---- small helpers shared by the other files */
struct elect_msg *elect_msg_new(struct elect *e, uint8_t type, uint64_t to)
{
    struct elect_msg *m;
    assert(e->n_msgs < ELECT_MAX_MSGS);
    m = &e->msgs[e->n_msgs++];
    memset(m, 0, sizeof *m);
    m->type = type;
    m->from = e->p.id;
    m->to = to;
    m->epoch = e->epoch;
    m->term = e->term;
    return m;
}

void elect_reset_election_timer(struct elect *e)
{
    uint64_t t = e->p.election_timeout_ms;
    e->election_at = e->now + t + elect_rand(e) % t;
}

void elect_mark_hard(struct elect *e)
{
    e->step_flags |= ELECT_UPD_HARD;
}

void elect_set_commit(struct elect *e, uint64_t commit)
{
    assert(commit <= elect_log_last(&e->log));
    e->commit = commit;
}

void elect_become_follower(struct elect *e, uint64_t leader)
{
    if (e->role == ELECT_ROLE_LEADER)
        elect_tracef(e, "step down from leader of term %" PRIu64, e->term);
    e->role = ELECT_ROLE_FOLLOWER;
    e->leader = leader;
    e->phase = ELECT_PHASE_NONE;
    e->cand_epoch = false;
    e->cand_transfer = false;
    e->n_prog = 0;
    e->transfer_to = 0;
}

void elect_set_term(struct elect *e, const struct elect_epoch *ep, uint64_t term)
{
    /* Step down first, so the trace names the term we led. */
    if (e->role != ELECT_ROLE_FOLLOWER)
        elect_become_follower(e, 0);
    else
        e->leader = 0;
    if (elect_epoch_cmp(ep, &e->epoch) != 0) {
        e->epoch = *ep;
        e->burned_until = 0;
        e->burned_for = 0;
        e->bootstrap_at = 0;
    }
    e->term = term;
    e->vote = 0;
    e->vote_epoch = false;
    elect_mark_hard(e);
}

/* True when the last entry is the EPOCH entry this node just wrote for its
 * current (epoch, term): bootstrap and epoch start lead with it. */
static bool own_epoch_entry_last(const struct elect *e)
{
    const struct elect_entry *x = elect_log_get(&e->log, elect_log_last(&e->log));
    return x && x->kind == ELECT_ENTRY_EPOCH && x->term == e->term &&
           elect_epoch_cmp(&x->epoch, &e->epoch) == 0;
}

void elect_become_leader(struct elect *e)
{
    char buf[ELECT_EPOCH_STR];
    e->role = ELECT_ROLE_LEADER;
    e->leader = e->p.id;
    e->phase = ELECT_PHASE_NONE;
    e->cand_epoch = false;
    e->cand_transfer = false;
    e->leader_seen = e->now;
    e->bootstrap_at = 0;
    e->transfer_to = 0;
    elect_progress_rebuild(e);
    e->term_start = elect_log_last(&e->log) + 1;
    if (!own_epoch_entry_last(e)) {
        /* Raft §3.6.2: an entry of our own term lets earlier ones commit. An
         * epoch starter has just appended its EPOCH entry, which serves. */
        char payload[ELECT_CORE_PAYLOAD_MAX];
        size_t n = elect_payload_leader(payload, sizeof payload, e->term, e->p.id, &e->epoch);
        assert(n > 0);
        elect_append_core(e, ELECT_ENTRY_LEADER, NULL, 0, payload, (uint32_t)n);
    } else {
        e->term_start = e->epoch_idx;
    }
    for (size_t i = 0; i < e->n_prog; i++)
        e->prog[i].next = e->term_start;
    elect_tracef(e, "leader of term %" PRIu64 " in epoch %s (%zu members)", e->term,
                 elect_epoch_str(buf, &e->epoch), e->n_prog + 1);
    e->heartbeat_at = e->now + e->p.heartbeat_ms;
    e->quorum_at = e->now + e->p.election_timeout_ms;
    elect_broadcast_append(e, true);
    elect_advance_commit(e);
}

bool elect_link_up(const struct elect *e, uint64_t id)
{
    for (size_t i = 0; i < e->n_links; i++)
        if (e->links[i].id == id)
            return e->links[i].up;
    return false;
}

struct elect_link *elect_link_find(struct elect *e, uint64_t id)
{
    for (size_t i = 0; i < e->n_links; i++)
        if (e->links[i].id == id)
            return &e->links[i];
    return NULL;
}

bool elect_is_member(const struct elect *e, uint64_t id)
{
    const struct elect_entry *c = elect_config(e);
    if (!c)
        return false;
    for (uint32_t i = 0; i < c->n_members; i++)
        if (c->members[i] == id)
            return true;
    return false;
}

void *elect_spare_take(struct elect *e)
{
    for (size_t i = 0; i < ELECT_SPARES; i++) {
        if (e->spares[i].mem) {
            void *m = e->spares[i].mem;
            e->spares[i].mem = NULL;
            return m;
        }
    }
    assert(!"more core-written entries in one step than ELECT_SPARES");
    return NULL;
}

uint64_t elect_append_core(struct elect *e,
                           uint8_t kind,
                           const uint64_t *members,
                           uint32_t n_members,
                           const char *payload,
                           uint32_t payload_len)
{
    uint8_t *block = elect_spare_take(e);
    struct elect_entry x;
    uint64_t idx;
    char *pl;
    assert(n_members <= ELECT_MAX_MEMBERS && payload_len < ELECT_CORE_PAYLOAD_MAX);
    memset(&x, 0, sizeof x);
    x.term = e->term;
    x.epoch = e->epoch;
    x.kind = kind;
    x.n_members = n_members;
    if (n_members) {
        memcpy(block, members, n_members * sizeof *members);
        x.members = (const uint64_t *)(void *)block;
    }
    pl = (char *)block + n_members * sizeof *members;
    memcpy(pl, payload, payload_len);
    pl[payload_len] = '\0';
    x.payload = pl;
    x.payload_len = payload_len;
    elect_log_push(&e->log, &x);
    idx = elect_log_last(&e->log);
    if (e->dirty_from == 0)
        e->dirty_from = idx;
    if (kind == ELECT_ENTRY_CONFIG || kind == ELECT_ENTRY_EPOCH) {
        e->prev_conf_idx = kind == ELECT_ENTRY_CONFIG ? e->conf_idx : 0;
        e->conf_idx = idx;
        if (kind == ELECT_ENTRY_EPOCH)
            e->epoch_idx = idx;
        if (e->role == ELECT_ROLE_LEADER)
            elect_progress_rebuild(e);
    }
    return idx;
}

/* ---- lifecycle */
void elect_params_default(struct elect_params *p, uint64_t id, uint64_t seed)
{
    memset(p, 0, sizeof *p);
    p->id = id;
    p->seed = seed;
    p->election_timeout_ms = 1000;
    p->heartbeat_ms = 100;
    p->epoch_timeout_ms = 6000;
    p->removal_timeout_ms = 30000;
    p->bootstrap_grace_ms = 3000;
}

static int check_params(const struct elect_params *p, struct sh_err *err)
{
    uint64_t t = p->election_timeout_ms;
    if (p->id == 0)
        return sh_err_set(err, SH_EINVAL, "node id 0 is reserved");
    if (t < 2 || t > UINT32_MAX)
        return sh_err_set(err, SH_EINVAL, "election timeout %" PRIu64 " ms out of [2, 2^32)", t);
    if (p->heartbeat_ms == 0 || p->heartbeat_ms >= t)
        return sh_err_set(err, SH_EINVAL, "heartbeat %" PRIu64 " ms must be in [1, %" PRIu64 ")",
                          p->heartbeat_ms, t);
    /* Several election timeouts, so a majority side elects a leader long
     * before anyone may fork (R16). */
    if (p->epoch_timeout_ms < 3 * t || p->epoch_timeout_ms > UINT32_MAX)
        return sh_err_set(err, SH_EINVAL, "epoch timeout %" PRIu64 " ms must be >= 3 x %" PRIu64,
                          p->epoch_timeout_ms, t);
    /* A leader that lost half its config steps down after T (R10) and the
     * epoch rule runs, before it could shrink the config by removals. */
    if (p->removal_timeout_ms < p->epoch_timeout_ms || p->removal_timeout_ms > UINT32_MAX)
        return sh_err_set(err, SH_EINVAL, "removal timeout %" PRIu64 " ms must be >= epoch timeout",
                          p->removal_timeout_ms);
    if (p->bootstrap_grace_ms < t || p->bootstrap_grace_ms > UINT32_MAX)
        return sh_err_set(err, SH_EINVAL, "bootstrap grace %" PRIu64 " ms must be >= %" PRIu64,
                          p->bootstrap_grace_ms, t);
    return 0;
}

static int fill_spares(struct elect *e)
{
    for (size_t i = 0; i < ELECT_SPARES; i++) {
        if (!e->spares[i].mem) {
            e->spares[i].mem =
                elect_alloc(e, ELECT_MAX_MEMBERS * sizeof(uint64_t) + ELECT_CORE_PAYLOAD_MAX);
            if (!e->spares[i].mem)
                return SH_ENOMEM;
        }
    }
    return 0;
}

int elect_new(const struct elect_params *p, struct elect **out, struct sh_err *err)
{
    struct elect_params q = *p;
    struct elect *e;
    uint64_t s;
    int rc = check_params(p, err);
    if (rc)
        return rc;
    if (!q.realloc_fn)
        q.realloc_fn = libc_realloc;
    e = q.realloc_fn(q.alloc_ctx, NULL, sizeof *e);
    if (!e)
        return sh_err_set(err, SH_ENOMEM, "election core: out of memory");
    memset(e, 0, sizeof *e);
    e->p = q;
    s = q.seed ^ (q.id * 0xd6e8feb86659fd93ull);
    e->rng = splitmix(&s);
    if (e->rng == 0)
        e->rng = 1;
    e->role = ELECT_ROLE_FOLLOWER;
    elect_log_init(&e->log);
    if (fill_spares(e)) {
        elect_free(e);
        return sh_err_set(err, SH_ENOMEM, "election core: out of memory");
    }
    *out = e;
    return 0;
}

static void free_scratch(struct elect *e)
{
    for (size_t i = 0; i < e->n_archived; i++)
        elect_entry_free(e, &e->archived[i]);
    e->n_archived = 0;
    for (uint32_t i = 0; i < e->n_incoming; i++)
        if (e->incoming[i].payload)
            elect_entry_free(e, &e->incoming[i]);
    e->n_incoming = 0;
}

void elect_free(struct elect *e)
{
    if (!e)
        return;
    free_scratch(e);
    elect_dealloc(e, e->archived);
    elect_log_close(e, &e->log);
    for (size_t i = 0; i < ELECT_SPARES; i++)
        elect_dealloc(e, e->spares[i].mem);
    e->p.realloc_fn(e->p.alloc_ctx, e, 0);
}

/* ---- START */
static int check_start(const struct elect *e, const struct elect_event *ev, struct sh_err *err)
{
    const struct elect_hard *h = &ev->start.hard;
    const struct elect_entry *xs = ev->start.entries;
    size_t n = ev->start.n_entries;
    int rc;
    if (n && !xs)
        return sh_err_set(err, SH_EINVAL, "start: entries missing");
    if (n > ELECT_MAX_LOG)
        return sh_err_set(err, SH_ETOOBIG, "start: %zu entries (max %u)", n, ELECT_MAX_LOG);
    if (h->vote_epoch > 1)
        return sh_err_set(err, SH_EMALFORMED, "start: vote_epoch %u", (unsigned)h->vote_epoch);
    if (h->epoch.num == 0 && (n || h->epoch.base || h->epoch.starter))
        return sh_err_set(err, SH_EMALFORMED, "start: entries without an epoch");
    if (h->epoch.num != 0 && h->epoch.starter == 0)
        return sh_err_set(err, SH_EMALFORMED, "start: epoch without a starter");
    for (size_t i = 0; i < n; i++) {
        rc = elect_entry_check(&xs[i], err);
        if (rc)
            return sh_err_wrap(err, "start: entry %zu", i + 1);
        if (i > 0 && elect_tag_cmp(&xs[i].epoch, xs[i].term, &xs[i - 1].epoch, xs[i - 1].term) < 0)
            return sh_err_set(err, SH_EMALFORMED, "start: entry %zu tag goes back", i + 1);
        if (elect_tag_cmp(&xs[i].epoch, xs[i].term, &h->epoch, h->term) > 0)
            return sh_err_set(err, SH_EMALFORMED, "start: entry %zu newer than the hard state",
                              i + 1);
    }
    (void)e;
    return 0;
}

static int step_start(struct elect *e, const struct elect_event *ev, struct sh_err *err)
{
    const struct elect_hard *h = &ev->start.hard;
    size_t n = ev->start.n_entries;
    char buf[ELECT_EPOCH_STR];
    int rc;
    if (e->started)
        return sh_err_set(err, SH_EINVAL, "start: already started");
    rc = check_start(e, ev, err);
    if (rc)
        return rc;
    rc = elect_log_reserve(e, &e->log, n + ELECT_SPARES + 1);
    if (rc)
        return sh_err_set(err, rc, "start: %s", sh_strerror(rc));
    for (size_t i = 0; i < n; i++) {
        struct elect_entry x;
        if (elect_entry_copy(e, &x, &ev->start.entries[i])) {
            for (size_t j = 0; j < e->log.n; j++)
                elect_entry_free(e, &e->log.e[j]);
            e->log.n = 0;
            return sh_err_set(err, SH_ENOMEM, "start: out of memory");
        }
        elect_log_push(&e->log, &x);
    }
    e->started = true;
    e->term = h->term;
    e->vote = h->vote;
    e->vote_epoch = h->vote_epoch != 0;
    e->epoch = h->epoch;
    e->commit = h->commit < n ? h->commit : n;
    elect_log_scan_configs(e);
    e->role = ELECT_ROLE_FOLLOWER;
    e->leader = 0;
    e->leader_seen = e->now;
    e->epoch_at = e->now;
    if (e->vote_epoch) {
        e->burned_until = e->now + e->p.epoch_timeout_ms;
        e->burned_for = e->vote;
    }
    elect_reset_election_timer(e);
    if (e->epoch.num == 0)
        e->bootstrap_at =
            e->now + e->p.bootstrap_grace_ms + elect_rand(e) % e->p.election_timeout_ms;
    elect_tracef(e, "start: term %" PRIu64 ", epoch %s, %zu entries, commit %" PRIu64, e->term,
                 elect_epoch_str(buf, &e->epoch), n, e->commit);
    /* A lone member needs nobody's vote: lead at once. */
    if (elect_can_campaign(e) && elect_config(e)->n_members == 1 && !elect_burned(e))
        elect_campaign(e, false, false);
    return 0;
}

/* ---- TICK */
static void step_tick(struct elect *e)
{
    if (e->bootstrap_at)
        elect_bootstrap_tick(e);
    if (e->role == ELECT_ROLE_LEADER) {
        if (e->now >= e->quorum_at) {
            const struct elect_entry *c = elect_config(e);
            e->quorum_at = e->now + e->p.election_timeout_ms;
            if (!elect_has_quorum(e, c->members, c->n_members)) {
                elect_tracef(e, "no result from a majority for %" PRIu64 " ms",
                             e->p.election_timeout_ms);
                elect_become_follower(e, 0);
                elect_reset_election_timer(e);
                return;
            }
            e->leader_seen = e->now;
        }
        if (e->transfer_to && e->now >= e->transfer_until) {
            elect_tracef(e, "transfer to " ELECT_ID_FMT " abandoned", e->transfer_to);
            e->transfer_to = 0;
        }
        if (e->now >= e->heartbeat_at) {
            e->heartbeat_at = e->now + e->p.heartbeat_ms;
            elect_broadcast_append(e, true);
        }
        return;
    }
    elect_epoch_tick(e);
    if (e->role == ELECT_ROLE_LEADER || e->now < e->election_at)
        return;
    if (!elect_can_campaign(e) || elect_burned(e)) {
        elect_reset_election_timer(e);
        if (e->role == ELECT_ROLE_CANDIDATE)
            elect_become_follower(e, 0);
        return;
    }
    elect_campaign(e, false, false);
}

/* ---- LINK_UP / LINK_DOWN */
static int step_link(struct elect *e, uint64_t id, bool up, struct sh_err *err)
{
    struct elect_link *l;
    if (id == 0 || id == e->p.id)
        return sh_err_set(err, SH_EINVAL, "link event for " ELECT_ID_FMT, id);
    l = elect_link_find(e, id);
    if (!l) {
        if (!up)
            return 0;
        if (e->n_links == ELECT_MAX_LINKS)
            return sh_err_set(err, SH_ETOOBIG, "more than %d peer links", ELECT_MAX_LINKS);
        l = &e->links[e->n_links++];
        memset(l, 0, sizeof *l);
        l->id = id;
    }
    l->up = up;
    l->heard = false;
    if (up) {
        l->removed_at = 0;
        if (e->role == ELECT_ROLE_LEADER) {
            struct elect_progress *pr = elect_progress_find(e, id);
            if (pr)
                elect_send_append(e, pr);
            else
                elect_send_probe(e, id);
        }
    }
    return 0;
}

/* ---- the step */
static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static uint64_t next_tick(const struct elect *e)
{
    uint64_t t = UINT64_MAX;
    if (e->bootstrap_at)
        t = e->bootstrap_at;
    if (e->role == ELECT_ROLE_LEADER)
        return min_u64(t, min_u64(e->heartbeat_at, e->quorum_at));
    t = min_u64(t, e->election_at);
    if (e->epoch.num) {
        uint64_t ep = e->leader_seen + e->p.epoch_timeout_ms;
        t = min_u64(t, ep > e->epoch_at ? ep : e->epoch_at);
    }
    return t;
}

static void fill_update(struct elect *e, struct elect_update *up)
{
    up->hard.term = e->term;
    up->hard.vote = e->vote;
    up->hard.vote_epoch = e->vote_epoch ? 1 : 0;
    up->hard.epoch = e->epoch;
    up->hard.commit = e->commit;
    up->role = (uint8_t)e->role;
    up->leader = e->leader;
    up->next_tick = next_tick(e);
    up->trace = e->trace;
}

int elect_step(struct elect *e,
               const struct elect_event *ev,
               struct elect_update *up,
               struct sh_err *err)
{
    uint64_t old_now = e->now, old_commit = e->commit;
    uint64_t old_term = e->term, old_vote = e->vote;
    bool old_vote_epoch = e->vote_epoch;
    struct elect_epoch old_epoch = e->epoch;
    enum elect_role old_role = e->role;
    uint64_t old_leader = e->leader;
    int rc;

    memset(up, 0, sizeof *up);
    free_scratch(e);
    e->n_msgs = 0;
    e->trace_len = 0;
    e->trace_full = false;
    e->trace[0] = '\0';
    e->trunc_from = 0;
    e->dirty_from = 0;
    e->step_flags = 0;
    e->up = up;
    if (!ev) {
        rc = sh_err_set(err, SH_EINVAL, "no event");
        goto fail;
    }
    if (ev->now_ms < e->now) {
        rc = sh_err_set(err, SH_EINVAL, "time went back (%" PRIu64 " < %" PRIu64 ")", ev->now_ms,
                        e->now);
        goto fail;
    }
    if (!e->started && ev->type != ELECT_EV_START) {
        rc = sh_err_set(err, SH_EINVAL, "event %u before START", (unsigned)ev->type);
        goto fail;
    }
    if (fill_spares(e) || (e->started && elect_log_reserve(e, &e->log, ELECT_SPARES + 1))) {
        rc = sh_err_set(err, SH_ENOMEM, "election step: out of memory");
        goto fail;
    }
    e->now = ev->now_ms;
    switch (ev->type) {
    case ELECT_EV_START:
        rc = step_start(e, ev, err);
        break;
    case ELECT_EV_TICK:
        step_tick(e);
        rc = 0;
        break;
    case ELECT_EV_RECEIVE:
        rc = elect_step_receive(e, ev->receive.msg, err);
        break;
    case ELECT_EV_SUBMIT:
        rc = elect_submit(e, ev->submit.payload, ev->submit.len, err);
        break;
    case ELECT_EV_LINK_UP:
    case ELECT_EV_LINK_DOWN:
        rc = step_link(e, ev->link.id, ev->type == ELECT_EV_LINK_UP, err);
        break;
    case ELECT_EV_TRANSFER:
        rc = elect_transfer(e, ev->transfer.target, err);
        break;
    default:
        rc = sh_err_set(err, SH_EINVAL, "event type %u unknown", (unsigned)ev->type);
        break;
    }
    if (rc) {
        e->now = old_now;
        goto fail;
    }
    if (e->role == ELECT_ROLE_LEADER)
        elect_membership_tick(e);

    /* Assemble the update (note 2). */
    up->flags = e->step_flags;
    if (e->term != old_term || e->vote != old_vote || e->vote_epoch != old_vote_epoch ||
        elect_epoch_cmp(&e->epoch, &old_epoch) != 0)
        up->flags |= ELECT_UPD_HARD;
    if (e->commit != old_commit)
        up->flags |= ELECT_UPD_COMMIT;
    if (e->role != old_role || e->leader != old_leader)
        up->flags |= ELECT_UPD_ROLE;
    if (e->trunc_from) {
        up->flags |= ELECT_UPD_LOG;
        up->truncate_from = e->trunc_from;
        up->archived = e->archived;
        up->n_archived = e->n_archived;
    }
    if (e->dirty_from && e->dirty_from <= elect_log_last(&e->log)) {
        up->flags |= ELECT_UPD_LOG;
        up->append_from = e->dirty_from;
        up->entries = &e->log.e[e->dirty_from - 1];
        up->n_entries = (size_t)(elect_log_last(&e->log) - e->dirty_from + 1);
    }
    for (size_t i = 0; i < e->n_msgs; i++) {
        struct elect_msg *m = &e->msgs[i];
        m->commit = e->commit;
        if (m->type == ELECT_MSG_APPEND_ENTRIES && m->ae.n_entries) {
            /* The batch was counted from the log when the message was made
             * and a leader's log only grows within a step. */
            assert(m->ae.prev_index + m->ae.n_entries <= elect_log_last(&e->log));
            m->ae.entries = &e->log.e[m->ae.prev_index];
        }
    }
    up->msgs = e->msgs;
    up->n_msgs = e->n_msgs;
    fill_update(e, up);
    e->up = NULL;
    return 0;

fail:
    memset(up, 0, sizeof *up);
    e->n_msgs = 0;
    e->trace_len = 0;
    e->trace[0] = '\0';
    fill_update(e, up);
    e->up = NULL;
    return rc;
}
