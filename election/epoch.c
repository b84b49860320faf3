/* election/epoch.c: epochs -- the order of lineages (R15), adopting a higher
 * epoch from any message (R19), pending nodes (R17), the epoch rule that
 * lets a side without a majority fork (R16), growing out of a one-node
 * config (R13) and the first bootstrap (R20).
 *
 * Why not the lead's "cut the log at the starter's commit index": the
 * starter may not have heard that its last entries committed (the leader
 * died before the next heartbeat); cutting them would archive committed
 * entries. Voting with up-to-dateness over half the config gives the
 * starter all of them instead (see R16). */
#include <inttypes.h>
#include <string.h>

#include "election/internal.h"

bool elect_pending(const struct elect *e)
{
    const struct elect_entry *x;
    if (e->epoch.num == 0)
        return false;
    x = e->epoch_idx ? elect_log_get(&e->log, e->epoch_idx) : NULL;
    return !x || elect_epoch_cmp(&x->epoch, &e->epoch) != 0;
}

bool elect_can_campaign(const struct elect *e)
{
    return e->started && e->epoch.num != 0 && !elect_pending(e) && elect_config(e) &&
           elect_is_member(e, e->p.id);
}

size_t elect_reachable(const struct elect *e, const struct elect_entry *conf)
{
    size_t k = 0;
    for (uint32_t i = 0; i < conf->n_members; i++)
        if (conf->members[i] == e->p.id || elect_link_up(e, conf->members[i]))
            k++;
    return k;
}

int elect_epoch_gate(struct elect *e, const struct elect_msg *m)
{
    char a[ELECT_EPOCH_STR], b[ELECT_EPOCH_STR];
    struct elect_msg *r;
    int c = elect_epoch_cmp(&m->epoch, &e->epoch);
    if (c == 0)
        return 1;
    if (c > 0) {
        /* A pre-vote carries the candidate's term + 1; take its real term so
         * we do not reject its leader's AppendEntries as stale later. */
        uint64_t term = m->term;
        if (m->type == ELECT_MSG_REQUEST_VOTE && (m->rv.flags & ELECT_VOTE_PRE) && term > 0)
            term--;
        elect_tracef(e, "adopt epoch %s from " ELECT_ID_FMT " (was %s)",
                     elect_epoch_str(a, &m->epoch), m->from, elect_epoch_str(b, &e->epoch));
        elect_set_term(e, &m->epoch, term);
        elect_reset_election_timer(e);
        return 1;
    }
    /* Lower epoch: tell requesters ours so they adopt it; drop replies. */
    switch (m->type) {
    case ELECT_MSG_REQUEST_VOTE:
        r = elect_msg_new(e, ELECT_MSG_REQUEST_VOTE_RESULT, m->from);
        r->rvr.req_term = m->term;
        r->rvr.flags = m->rv.flags;
        break;
    case ELECT_MSG_APPEND_ENTRIES:
        r = elect_msg_new(e, ELECT_MSG_APPEND_ENTRIES_RESULT, m->from);
        r->aer.last_index = elect_log_last(&e->log);
        break;
    default:
        return 0;
    }
    elect_tracef(e, "refuse %s from " ELECT_ID_FMT ": epoch %s is behind",
                 elect_msg_type_name(m->type), m->from, elect_epoch_str(a, &m->epoch));
    return 0;
}

void elect_epoch_tick(struct elect *e)
{
    const struct elect_entry *c;
    size_t r;
    if (e->role == ELECT_ROLE_LEADER || e->epoch.num == 0)
        return;
    if (e->now < e->leader_seen + e->p.epoch_timeout_ms || e->now < e->epoch_at)
        return;
    e->epoch_at = e->now + e->p.election_timeout_ms;
    if (!elect_can_campaign(e))
        return;
    c = elect_config(e);
    /* R16: the config must be known committed, so it is one the epoch
     * really went through and R9's double majority covers what follows. */
    if (e->conf_idx > e->commit)
        return;
    /* Someone else's epoch vote is still in flight: wait for it (R18). */
    if (elect_burned(e) && e->burned_for != e->p.id)
        return;
    r = elect_reachable(e, c);
    if (2 * r < c->n_members)
        return; /* a strict minority never forks */
    elect_tracef(e, "no leader for %" PRIu64 " ms, %zu/%" PRIu32 " reachable",
                 e->now - e->leader_seen, r, c->n_members);
    elect_campaign(e, true, false);
}

static uint32_t sorted_members(uint64_t *out, const uint64_t *ids, size_t n)
{
    uint32_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t j = k;
        bool dup = false;
        for (uint32_t q = 0; q < k; q++)
            dup = dup || out[q] == ids[i];
        if (dup)
            continue;
        while (j > 0 && out[j - 1] > ids[i]) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = ids[i];
        k++;
    }
    return k;
}

/* Writes the EPOCH entry of the (already set) current epoch. */
static uint64_t append_epoch_entry(struct elect *e, const uint64_t *members, uint32_t n)
{
    char payload[ELECT_CORE_PAYLOAD_MAX];
    size_t len = elect_payload_members(payload, sizeof payload, "epoch_started", e->p.id, &e->epoch,
                                       e->term, members, n, 0);
    return elect_append_core(e, ELECT_ENTRY_EPOCH, members, n, payload, (uint32_t)len);
}

static void enter_epoch(struct elect *e)
{
    e->epoch.num = e->epoch.num + 1;
    e->epoch.base = elect_log_last(&e->log);
    e->epoch.starter = e->p.id;
    e->vote = e->p.id;
    e->vote_epoch = false;
    e->burned_until = 0;
    e->burned_for = 0;
    elect_mark_hard(e);
}

void elect_epoch_start(struct elect *e)
{
    char buf[ELECT_EPOCH_STR];
    uint64_t ids[ELECT_MAX_MEMBERS];
    uint64_t members[ELECT_MAX_MEMBERS];
    size_t k = 0;
    uint32_t n;
    for (size_t i = 0; i < e->n_granted; i++)
        if (elect_is_member(e, e->granted[i]))
            ids[k++] = e->granted[i];
    n = sorted_members(members, ids, k);
    enter_epoch(e);
    elect_tracef(e, "start epoch %s with %" PRIu32 " members", elect_epoch_str(buf, &e->epoch), n);
    append_epoch_entry(e, members, n);
    elect_become_leader(e);
}

void elect_epoch_regrow(struct elect *e, uint64_t id)
{
    char buf[ELECT_EPOCH_STR];
    uint64_t ids[2] = {e->p.id, id}, members[2];
    uint32_t n = sorted_members(members, ids, 2);
    enter_epoch(e);
    elect_tracef(e, "grow from one member: epoch %s adds " ELECT_ID_FMT,
                 elect_epoch_str(buf, &e->epoch), id);
    e->term_start = append_epoch_entry(e, members, n);
    elect_broadcast_append(e, false);
    elect_advance_commit(e);
}

void elect_bootstrap_tick(struct elect *e)
{
    uint64_t self = e->p.id;
    if (e->now < e->bootstrap_at)
        return;
    e->bootstrap_at = 0;
    if (e->epoch.num != 0 || elect_log_last(&e->log) != 0)
        return;
    elect_tracef(e, "no leader within %" PRIu64 " ms: bootstrap epoch 1", e->p.bootstrap_grace_ms);
    e->epoch.num = 1;
    e->epoch.base = 0;
    e->epoch.starter = self;
    e->term = e->term + 1;
    e->vote = self;
    e->vote_epoch = false;
    elect_mark_hard(e);
    append_epoch_entry(e, &self, 1);
    elect_become_leader(e);
}
