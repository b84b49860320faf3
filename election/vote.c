/* election/vote.c: campaigns and votes -- pre-vote (Raft §9.6), RequestVote
 * with log up-to-dateness (§3.6.1) on generalised terms (R4), stickiness
 * against disruptive servers (§4.2.3), epoch votes (R16, R18) and TimeoutNow
 * (§3.10). Epoch adoption happens before these handlers run (epoch.c). */
#include <inttypes.h>

#include "election/internal.h"

bool elect_sticky(const struct elect *e)
{
    if (e->role == ELECT_ROLE_LEADER)
        return true;
    return e->leader != 0 && e->now < e->leader_seen + e->p.election_timeout_ms;
}

bool elect_burned(const struct elect *e)
{
    return e->burned_until > e->now;
}

static void send_votes(struct elect *e)
{
    const struct elect_entry *c = elect_config(e);
    uint64_t last = elect_log_last(&e->log);
    uint8_t flags = 0;
    if (e->phase == ELECT_PHASE_PRE)
        flags |= ELECT_VOTE_PRE;
    if (e->cand_epoch)
        flags |= ELECT_VOTE_EPOCH;
    if (e->cand_transfer)
        flags |= ELECT_VOTE_TRANSFER;
    for (uint32_t i = 0; i < c->n_members; i++) {
        struct elect_msg *m;
        if (c->members[i] == e->p.id)
            continue;
        m = elect_msg_new(e, ELECT_MSG_REQUEST_VOTE, c->members[i]);
        m->term = e->cand_term;
        m->rv.last_index = last;
        elect_log_tag(&e->log, last, &m->rv.last_term, &m->rv.last_epoch);
        m->rv.flags = flags;
    }
}

static void start_vote(struct elect *e)
{
    e->term++;
    e->vote = e->p.id;
    e->vote_epoch = e->cand_epoch;
    if (e->cand_epoch) {
        e->burned_until = e->now + e->p.epoch_timeout_ms; /* R18 holds for the starter too */
        e->burned_for = e->p.id;
    }
    elect_mark_hard(e);
    e->phase = ELECT_PHASE_VOTE;
    e->cand_term = e->term;
    e->n_granted = 0;
    e->granted[e->n_granted++] = e->p.id;
    elect_tracef(e, "%s for term %" PRIu64, e->cand_epoch ? "epoch vote" : "election", e->term);
    send_votes(e);
}

static size_t count_granted(const struct elect *e)
{
    size_t k = 0;
    for (size_t i = 0; i < e->n_granted; i++)
        if (elect_is_member(e, e->granted[i]))
            k++;
    return k;
}

static bool granted_by(const struct elect *e, uint64_t id)
{
    for (size_t i = 0; i < e->n_granted; i++)
        if (e->granted[i] == id)
            return true;
    return false;
}

/* Majority for elections. For epochs (R16): at least half of the config AND
 * every member we have a link to -- so two candidates that can reach each
 * other, directly or through a common member, never both fork. */
static bool quorum(const struct elect *e)
{
    const struct elect_entry *c = elect_config(e);
    size_t n = c->n_members, k = count_granted(e);
    if (!e->cand_epoch)
        return 2 * k > n;
    if (2 * k < n)
        return false;
    for (uint32_t i = 0; i < n; i++)
        if (c->members[i] != e->p.id && elect_link_up(e, c->members[i]) &&
            !granted_by(e, c->members[i]))
            return false;
    return true;
}

static void check_quorum(struct elect *e)
{
    size_t n = elect_config(e)->n_members;
    if (!quorum(e))
        return;
    if (e->phase == ELECT_PHASE_PRE) {
        elect_tracef(e, "pre-vote quorum %zu/%zu", count_granted(e), n);
        start_vote(e);
        elect_reset_election_timer(e);
        if (e->cand_epoch)
            e->epoch_at = e->election_at;
        if (!quorum(e))
            return;
    }
    elect_tracef(e, "vote quorum %zu/%zu", count_granted(e), n);
    if (e->cand_epoch)
        elect_epoch_start(e);
    else
        elect_become_leader(e);
}

void elect_campaign(struct elect *e, bool epoch_mode, bool transfer)
{
    e->role = ELECT_ROLE_CANDIDATE;
    e->leader = 0;
    e->cand_epoch = epoch_mode;
    e->cand_transfer = transfer;
    e->n_granted = 0;
    e->granted[e->n_granted++] = e->p.id;
    if (transfer) {
        start_vote(e);
    } else {
        e->phase = ELECT_PHASE_PRE;
        e->cand_term = e->term + 1;
        elect_tracef(e, "%s for term %" PRIu64, epoch_mode ? "epoch pre-vote" : "pre-vote",
                     e->cand_term);
        send_votes(e);
    }
    elect_reset_election_timer(e);
    if (epoch_mode)
        e->epoch_at = e->election_at;
    check_quorum(e);
}

static int reply(struct elect *e, const struct elect_msg *req, bool granted, const char *why)
{
    struct elect_msg *m = elect_msg_new(e, ELECT_MSG_REQUEST_VOTE_RESULT, req->from);
    const char *what = (req->rv.flags & ELECT_VOTE_EPOCH)
                           ? ((req->rv.flags & ELECT_VOTE_PRE) ? "epoch pre-vote" : "epoch vote")
                           : ((req->rv.flags & ELECT_VOTE_PRE) ? "pre-vote" : "vote");
    m->rvr.req_term = req->term;
    m->rvr.flags = req->rv.flags;
    m->rvr.granted = granted ? 1 : 0;
    if (granted)
        elect_tracef(e, "grant %s to " ELECT_ID_FMT " for term %" PRIu64, what, req->from,
                     req->term);
    else
        elect_tracef(e, "refuse %s to " ELECT_ID_FMT " for term %" PRIu64 ": %s", what, req->from,
                     req->term, why);
    return 0;
}

/* §3.6.1 on generalised terms: the candidate's last (tag, index) >= ours. */
static bool up_to_date(const struct elect *e, const struct elect_msg *m)
{
    uint64_t last = elect_log_last(&e->log), t;
    struct elect_epoch ep;
    int c;
    elect_log_tag(&e->log, last, &t, &ep);
    c = elect_tag_cmp(&m->rv.last_epoch, m->rv.last_term, &ep, t);
    return c > 0 || (c == 0 && m->rv.last_index >= last);
}

int elect_recv_request_vote(struct elect *e, const struct elect_msg *m)
{
    uint8_t f = m->rv.flags;
    bool pre = f & ELECT_VOTE_PRE, epoch = f & ELECT_VOTE_EPOCH;
    if (m->term < e->term)
        return reply(e, m, false, "stale term");
    if (!(f & ELECT_VOTE_TRANSFER) && elect_sticky(e))
        return reply(e, m, false, e->role == ELECT_ROLE_LEADER ? "I lead" : "leader alive");
    /* R18: after an epoch vote, nothing but that epoch (or, for our own
     * candidacy, a later epoch candidate we give way to). */
    if (elect_burned(e) && !epoch)
        return reply(e, m, false, "frozen by an epoch vote");
    if (elect_burned(e) && e->burned_for != e->p.id && e->burned_for != m->from)
        return reply(e, m, false, "epoch vote given to another");
    if (!pre && m->term > e->term)
        elect_set_term(e, &e->epoch, m->term);
    if (pre)
        return up_to_date(e, m) ? reply(e, m, true, NULL) : reply(e, m, false, "log behind");
    if (e->vote && e->vote != m->from)
        return reply(e, m, false, "already voted");
    if (!up_to_date(e, m))
        return reply(e, m, false, "log behind");
    e->vote = m->from;
    e->vote_epoch = epoch;
    if (epoch) {
        e->burned_until = e->now + e->p.epoch_timeout_ms;
        e->burned_for = m->from;
    }
    elect_mark_hard(e);
    elect_reset_election_timer(e);
    return reply(e, m, true, NULL);
}

int elect_recv_vote_result(struct elect *e, const struct elect_msg *m)
{
    uint8_t want = 0;
    if (m->term > e->term && !m->rvr.granted) {
        /* A frozen node keeps its term: it is waiting for its epoch (R18). */
        if (elect_burned(e))
            return 0;
        elect_tracef(e, "term %" PRIu64 " from " ELECT_ID_FMT, m->term, m->from);
        elect_set_term(e, &e->epoch, m->term);
        elect_reset_election_timer(e);
        return 0;
    }
    if (e->role != ELECT_ROLE_CANDIDATE || m->rvr.req_term != e->cand_term || !m->rvr.granted)
        return 0;
    if (e->phase == ELECT_PHASE_PRE)
        want |= ELECT_VOTE_PRE;
    if (e->cand_epoch)
        want |= ELECT_VOTE_EPOCH;
    if ((m->rvr.flags & (ELECT_VOTE_PRE | ELECT_VOTE_EPOCH)) != want ||
        !elect_is_member(e, m->from))
        return 0;
    if (granted_by(e, m->from))
        return 0;
    if (e->n_granted < ELECT_MAX_MEMBERS)
        e->granted[e->n_granted++] = m->from;
    check_quorum(e);
    return 0;
}

int elect_recv_timeout_now(struct elect *e, const struct elect_msg *m)
{
    if (m->term != e->term || e->role != ELECT_ROLE_FOLLOWER || e->leader != m->from ||
        !elect_can_campaign(e) || elect_burned(e)) {
        elect_tracef(e, "ignore timeout-now from " ELECT_ID_FMT, m->from);
        return 0;
    }
    elect_tracef(e, "timeout-now from " ELECT_ID_FMT ": campaign at once", m->from);
    elect_campaign(e, false, true);
    return 0;
}
