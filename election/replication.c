/* election/replication.c: AppendEntries both ways (Raft §3.5), the
 * consistency check on tags and conflict truncation that archives (R5),
 * commit by majority of the current config with the extra old-config
 * majority while a change is pending (R9), and SUBMIT. */
#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "election/internal.h"

/* Entries from pr->next (a heartbeat carries whatever the follower still
 * lacks, up to the batch limits). */
void elect_send_append(struct elect *e, struct elect_progress *pr)
{
    uint64_t last = elect_log_last(&e->log);
    uint64_t next = pr->next;
    size_t bytes = 0;
    uint32_t n = 0;
    struct elect_msg *m;
    if (next < 1)
        next = 1;
    if (next > last + 1)
        next = last + 1;
    while (next + n <= last && n < ELECT_MAX_ENTRIES) {
        const struct elect_entry *x = elect_log_get(&e->log, next + n);
        if (n > 0 && bytes + x->payload_len > ELECT_MAX_BATCH_BYTES)
            break;
        bytes += x->payload_len;
        n++;
    }
    m = elect_msg_new(e, ELECT_MSG_APPEND_ENTRIES, pr->id);
    m->ae.prev_index = next - 1;
    elect_log_tag(&e->log, next - 1, &m->ae.prev_term, &m->ae.prev_epoch);
    m->ae.leader_last = last;
    m->ae.n_entries = n; /* entries pointer resolved when the step ends */
}

void elect_send_probe(struct elect *e, uint64_t to)
{
    /* prev 0 always matches and 0 entries change nothing; leader_last is
     * our real last index so the receiver does not trim its log (R5). */
    struct elect_msg *m = elect_msg_new(e, ELECT_MSG_APPEND_ENTRIES, to);
    m->ae.leader_last = elect_log_last(&e->log);
}

void elect_broadcast_append(struct elect *e, bool heartbeat)
{
    for (size_t i = 0; i < e->n_prog; i++)
        elect_send_append(e, &e->prog[i]);
    if (!heartbeat)
        return;
    for (size_t i = 0; i < e->n_links; i++)
        if (e->links[i].up && !e->links[i].heard && !elect_is_member(e, e->links[i].id))
            elect_send_probe(e, e->links[i].id);
}

static void reply(struct elect *e, const struct elect_msg *req, bool ok, uint64_t index)
{
    struct elect_msg *m = elect_msg_new(e, ELECT_MSG_APPEND_ENTRIES_RESULT, req->from);
    m->aer.success = ok ? 1 : 0;
    m->aer.index = index;
    m->aer.last_index = elect_log_last(&e->log);
}

/* Retry hint after a tag mismatch at index: the index before the run of
 * entries sharing the mismatching tag (skips a whole term per round trip). */
static uint64_t conflict_hint(const struct elect *e, uint64_t index)
{
    const struct elect_entry *x = elect_log_get(&e->log, index);
    uint64_t i = index;
    while (i > 1) {
        const struct elect_entry *y = elect_log_get(&e->log, i - 1);
        if (y->term != x->term || elect_epoch_cmp(&y->epoch, &x->epoch) != 0)
            break;
        i--;
    }
    return i - 1;
}

int elect_recv_append(struct elect *e, const struct elect_msg *m)
{
    uint64_t prev = m->ae.prev_index, last = elect_log_last(&e->log), match, c;
    if (m->term < e->term) {
        reply(e, m, false, last);
        return 0;
    }
    if (m->term > e->term && elect_burned(e)) {
        elect_tracef(e, "ignore append from " ELECT_ID_FMT ": frozen by an epoch vote", m->from);
        return 0;
    }
    if (m->term > e->term)
        elect_set_term(e, &e->epoch, m->term);
    if (e->role == ELECT_ROLE_LEADER) {
        /* Two leaders in one (epoch, term) cannot happen (G1); drop it. */
        elect_tracef(e, "ignore append from " ELECT_ID_FMT ": I lead term %" PRIu64, m->from,
                     e->term);
        return 0;
    }
    if (e->role == ELECT_ROLE_CANDIDATE || e->leader != m->from) {
        elect_become_follower(e, m->from);
        elect_tracef(e, "follow " ELECT_ID_FMT " in term %" PRIu64, m->from, e->term);
    }
    e->leader_seen = e->now;
    e->bootstrap_at = 0;
    elect_reset_election_timer(e);

    if (prev > last) {
        reply(e, m, false, last);
        return 0;
    }
    if (!elect_log_matches(&e->log, prev, m->ae.prev_term, &m->ae.prev_epoch)) {
        reply(e, m, false, conflict_hint(e, prev));
        return 0;
    }
    for (uint32_t i = 0; i < m->ae.n_entries; i++) {
        uint64_t idx = prev + 1 + i;
        struct elect_entry *x = &e->incoming[i];
        if (idx <= elect_log_last(&e->log)) {
            if (elect_log_matches(&e->log, idx, x->term, &x->epoch))
                continue; /* already have it; the copy is freed with the scratch */
            elect_log_truncate(e, idx);
        }
        elect_log_push(&e->log, x);
        if (e->dirty_from == 0)
            e->dirty_from = idx;
        if (x->kind == ELECT_ENTRY_CONFIG || x->kind == ELECT_ENTRY_EPOCH) {
            e->prev_conf_idx = x->kind == ELECT_ENTRY_CONFIG ? e->conf_idx : 0;
            e->conf_idx = idx;
            if (x->kind == ELECT_ENTRY_EPOCH)
                e->epoch_idx = idx;
        }
        x->payload = NULL; /* the log owns the block now */
        x->members = NULL;
    }
    match = prev + m->ae.n_entries;
    /* R5: the batch reaches the leader's last index and what follows here
     * belongs to another lineage -- it can never commit; archive it now so
     * a merged node's log converges even if the leader writes nothing new.
     * Entries of our own epoch are kept (an older AppendEntries may carry a
     * smaller leader_last than what we already acknowledged). */
    if (match == m->ae.leader_last && elect_log_last(&e->log) > match &&
        elect_epoch_cmp(&elect_log_get(&e->log, match + 1)->epoch, &e->epoch) != 0)
        elect_log_truncate(e, match + 1);
    c = m->commit < match ? m->commit : match;
    if (c > e->commit)
        elect_set_commit(e, c);
    reply(e, m, true, match);
    return 0;
}

/* Highest index held by a majority of ids (the leader counts its last). */
static uint64_t quorum_match(const struct elect *e, const uint64_t *ids, size_t n)
{
    uint64_t v[ELECT_MAX_MEMBERS];
    uint64_t last = elect_log_last(&e->log);
    for (size_t i = 0; i < n; i++) {
        v[i] = 0;
        if (ids[i] == e->p.id) {
            v[i] = last;
        } else {
            for (size_t j = 0; j < e->n_prog; j++)
                if (e->prog[j].id == ids[i])
                    v[i] = e->prog[j].match;
        }
    }
    /* Insertion sort, descending: n <= ELECT_MAX_MEMBERS. */
    for (size_t i = 1; i < n; i++) {
        uint64_t x = v[i];
        size_t j = i;
        while (j > 0 && v[j - 1] < x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    return v[n / 2];
}

void elect_advance_commit(struct elect *e)
{
    const struct elect_entry *c = elect_config(e), *x;
    uint64_t n;
    if (e->role != ELECT_ROLE_LEADER || !c)
        return;
    n = quorum_match(e, c->members, c->n_members);
    if (c->kind == ELECT_ENTRY_CONFIG && e->conf_idx > e->commit && e->prev_conf_idx) {
        const struct elect_entry *p = elect_log_get(&e->log, e->prev_conf_idx);
        uint64_t q = quorum_match(e, p->members, p->n_members);
        if (q < n)
            n = q;
    }
    if (n <= e->commit)
        return;
    x = elect_log_get(&e->log, n);
    if (x->term != e->term || elect_epoch_cmp(&x->epoch, &e->epoch) != 0)
        return; /* §3.6.2: only entries of our own tag commit by counting */
    elect_set_commit(e, n);
}

int elect_recv_append_result(struct elect *e, const struct elect_msg *m)
{
    struct elect_progress *pr;
    /* A probed non-member's term is not ours to follow (it may be a removed
     * node that campaigned); hearing from it is what counts (R12). */
    if (m->term > e->term && e->role == ELECT_ROLE_LEADER && !elect_is_member(e, m->from))
        return 0;
    if (m->term > e->term) {
        elect_tracef(e, "term %" PRIu64 " from " ELECT_ID_FMT, m->term, m->from);
        elect_set_term(e, &e->epoch, m->term);
        elect_reset_election_timer(e);
        return 0;
    }
    if (e->role != ELECT_ROLE_LEADER || m->term != e->term)
        return 0;
    pr = elect_progress_find(e, m->from);
    if (!pr)
        return 0;
    pr->last_contact = e->now;
    if (m->aer.success) {
        if (m->aer.index > elect_log_last(&e->log))
            return 0; /* cannot be: we never sent past our log */
        if (m->aer.index > pr->match)
            pr->match = m->aer.index;
        if (pr->next < pr->match + 1)
            pr->next = pr->match + 1;
        elect_advance_commit(e);
        if (e->transfer_to == pr->id)
            elect_transfer_progress(e, pr);
        else if (pr->next <= elect_log_last(&e->log))
            elect_send_append(e, pr);
        return 0;
    }
    /* Rejected: back off, but never below what it acknowledged. */
    {
        uint64_t next = pr->next > 1 ? pr->next - 1 : 1;
        if (m->aer.index + 1 < next)
            next = m->aer.index + 1;
        if (next < pr->match + 1)
            next = pr->match + 1;
        pr->next = next;
        elect_send_append(e, pr);
    }
    return 0;
}

int elect_submit(struct elect *e, const char *payload, size_t len, struct sh_err *err)
{
    struct elect_entry x, copy;
    uint64_t idx;
    if (e->role != ELECT_ROLE_LEADER)
        return sh_err_set(err, SH_ENOTLEADER, "submit: not the leader (leader " ELECT_ID_FMT ")",
                          e->leader);
    if (e->transfer_to)
        return sh_err_set(err, SH_EBUSY, "submit: leadership transfer in progress");
    if (len > ELECT_MAX_PAYLOAD)
        return sh_err_set(err, SH_ETOOBIG, "submit: payload %zu bytes (max %d)", len,
                          ELECT_MAX_PAYLOAD);
    if (len && !payload)
        return sh_err_set(err, SH_EINVAL, "submit: payload missing");
    memset(&x, 0, sizeof x);
    x.term = e->term;
    x.epoch = e->epoch;
    x.kind = ELECT_ENTRY_EVENT;
    x.payload = payload ? payload : "";
    x.payload_len = (uint32_t)len;
    if (elect_entry_copy(e, &copy, &x))
        return sh_err_set(err, SH_ENOMEM, "submit: out of memory");
    elect_log_push(&e->log, &copy);
    idx = elect_log_last(&e->log);
    if (e->dirty_from == 0)
        e->dirty_from = idx;
    e->up->submitted_index = idx;
    elect_broadcast_append(e, false);
    elect_advance_commit(e);
    return 0;
}
