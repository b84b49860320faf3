/* election/membership.c: the config (R11), the leader's per-member progress,
 * check quorum (R10), single-server changes that follow discovery (R12,
 * Raft §4.1), leadership transfer (R14, §3.10) and the JSON payloads of the
 * entries the core writes itself (R3).
 *
 * Why removal waits longer than the epoch timeout: in a two-two split the
 * leader's side could otherwise remove the silent half one by one and keep
 * its lineage while the other half forks; stepping down first (after T)
 * gives both halves the same epoch rule and the merge a fair order. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "election/internal.h"

const struct elect_entry *elect_config(const struct elect *e)
{
    return e->conf_idx ? elect_log_get(&e->log, e->conf_idx) : NULL;
}

struct elect_progress *elect_progress_find(struct elect *e, uint64_t id)
{
    for (size_t i = 0; i < e->n_prog; i++)
        if (e->prog[i].id == id)
            return &e->prog[i];
    return NULL;
}

void elect_progress_rebuild(struct elect *e)
{
    const struct elect_entry *c = elect_config(e);
    struct elect_progress old[ELECT_MAX_MEMBERS];
    size_t n_old = e->n_prog;
    memcpy(old, e->prog, n_old * sizeof *old);
    e->n_prog = 0;
    if (!c)
        return;
    for (uint32_t i = 0; i < c->n_members; i++) {
        struct elect_progress *pr;
        uint64_t id = c->members[i];
        if (id == e->p.id)
            continue;
        pr = &e->prog[e->n_prog++];
        memset(pr, 0, sizeof *pr);
        pr->id = id;
        pr->next = elect_log_last(&e->log) + 1;
        pr->last_contact = e->now;
        for (size_t j = 0; j < n_old; j++)
            if (old[j].id == id)
                *pr = old[j];
    }
}

bool elect_has_quorum(const struct elect *e, const uint64_t *ids, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == e->p.id) {
            k++;
            continue;
        }
        for (size_t j = 0; j < e->n_prog; j++)
            if (e->prog[j].id == ids[i] &&
                e->now - e->prog[j].last_contact <= e->p.election_timeout_ms)
                k++;
    }
    return 2 * k > n;
}

/* Proposes adding (add) or removing id. silent_ms: how long a removed member
 * has been silent, written into the entry as its reason. */
static void propose(struct elect *e, uint64_t id, bool add, uint64_t silent_ms)
{
    const struct elect_entry *c = elect_config(e);
    uint64_t members[ELECT_MAX_MEMBERS];
    char payload[ELECT_CORE_PAYLOAD_MAX];
    uint32_t n = 0;
    size_t len;
    bool placed = false;
    for (uint32_t i = 0; i < c->n_members; i++) {
        uint64_t m = c->members[i];
        if (add && !placed && id < m) {
            members[n++] = id;
            placed = true;
        }
        if (!add && m == id)
            continue;
        members[n++] = m;
    }
    if (add && !placed)
        members[n++] = id;
    len = elect_payload_members(payload, sizeof payload, add ? "member_added" : "member_removed",
                                id, &e->epoch, e->term, members, n, add ? 0 : silent_ms);
    elect_append_core(e, ELECT_ENTRY_CONFIG, members, n, payload, (uint32_t)len);
    elect_tracef(e, "%s " ELECT_ID_FMT " (%" PRIu32 " members)",
                 add ? "add member" : "remove silent member", id, n);
    elect_broadcast_append(e, false);
    elect_advance_commit(e);
}

void elect_membership_tick(struct elect *e)
{
    const struct elect_entry *c = elect_config(e);
    uint64_t add = 0, drop = 0, rt = e->p.removal_timeout_ms;
    if (e->role != ELECT_ROLE_LEADER || e->transfer_to || !c)
        return;
    /* One change at a time, and only once this term has committed an entry
     * (the §4.1 fix: a new leader must not change the config before that). */
    if (e->conf_idx > e->commit || e->term_start > e->commit)
        return;
    if (c->n_members < ELECT_MAX_MEMBERS) {
        for (size_t i = 0; i < e->n_links; i++) {
            const struct elect_link *l = &e->links[i];
            if (!l->up || !l->heard || elect_is_member(e, l->id))
                continue;
            if (l->removed_at && e->now < l->removed_at + rt)
                continue;
            if (!add || l->id < add)
                add = l->id;
        }
    }
    if (add) {
        if (c->n_members == 1)
            elect_epoch_regrow(e, add); /* R13 */
        else
            propose(e, add, true, 0);
        return;
    }
    for (size_t i = 0; i < e->n_prog; i++) {
        const struct elect_progress *pr = &e->prog[i];
        if (e->now >= pr->last_contact + rt && (!drop || pr->id < drop))
            drop = pr->id;
    }
    if (drop) {
        struct elect_link *l = elect_link_find(e, drop);
        if (l)
            l->removed_at = e->now;
        propose(e, drop, false, e->now - elect_progress_find(e, drop)->last_contact);
    }
}

/* ---- transfer (R14) */
int elect_transfer(struct elect *e, uint64_t target, struct sh_err *err)
{
    struct elect_progress *pr = NULL;
    if (e->role != ELECT_ROLE_LEADER)
        return sh_err_set(err, SH_ENOTLEADER, "transfer: not the leader (leader " ELECT_ID_FMT ")",
                          e->leader);
    if (e->transfer_to)
        return sh_err_set(err, SH_EBUSY, "transfer: already transferring to " ELECT_ID_FMT,
                          e->transfer_to);
    if (target) {
        pr = elect_progress_find(e, target);
        if (!pr)
            return sh_err_set(err, SH_ENOTFOUND, "transfer: " ELECT_ID_FMT " is not a member",
                              target);
    } else {
        /* The most up-to-date member, preferring one we have a link to. */
        for (size_t i = 0; i < e->n_prog; i++) {
            struct elect_progress *q = &e->prog[i];
            bool qu = elect_link_up(e, q->id), pu = pr && elect_link_up(e, pr->id);
            if (!pr || (qu && !pu) || (qu == pu && q->match > pr->match))
                pr = q;
        }
        if (!pr)
            return sh_err_set(err, SH_ENOTFOUND, "transfer: no other member");
    }
    e->transfer_to = pr->id;
    e->transfer_until = e->now + e->p.election_timeout_ms;
    e->transfer_sent = false;
    elect_tracef(e, "transfer leadership to " ELECT_ID_FMT, pr->id);
    elect_transfer_progress(e, pr);
    return 0;
}

void elect_transfer_progress(struct elect *e, struct elect_progress *pr)
{
    if (pr->match < elect_log_last(&e->log)) {
        elect_send_append(e, pr);
        return;
    }
    if (e->transfer_sent)
        return;
    elect_msg_new(e, ELECT_MSG_TIMEOUT_NOW, pr->id);
    e->transfer_sent = true;
    e->step_flags |= ELECT_UPD_TRANSFERRED;
    elect_tracef(e, "send timeout-now to " ELECT_ID_FMT, pr->id);
}

/* ---- payloads (R3): snprintf into a bounded buffer, 0 if it did not fit. */
static bool put(size_t cap, size_t *off, int n)
{
    if (n < 0 || (size_t)n >= cap - *off)
        return false;
    *off += (size_t)n;
    return true;
}

size_t elect_payload_members(char *buf,
                             size_t cap,
                             const char *type,
                             uint64_t node,
                             const struct elect_epoch *ep,
                             uint64_t term,
                             const uint64_t *members,
                             uint32_t n,
                             uint64_t silent_ms)
{
    size_t off = 0;
    bool epoch = strcmp(type, "epoch_started") == 0;
    bool removed = strcmp(type, "member_removed") == 0;
    if (!put(cap, &off,
             snprintf(buf, cap, "{\"type\":\"%s\",\"node\":\"" ELECT_ID_FMT "\",\"epoch\":%" PRIu64,
                      type, node, ep->num)))
        return 0;
    if (epoch && !put(cap, &off, snprintf(buf + off, cap - off, ",\"base\":%" PRIu64, ep->base)))
        return 0;
    if (!put(cap, &off,
             snprintf(buf + off, cap - off, ",\"term\":%" PRIu64 ",\"members\":[", term)))
        return 0;
    for (uint32_t i = 0; i < n; i++)
        if (!put(
                cap, &off,
                snprintf(buf + off, cap - off, "%s\"" ELECT_ID_FMT "\"", i ? "," : "", members[i])))
            return 0;
    if (!put(cap, &off, snprintf(buf + off, cap - off, "]")))
        return 0;
    if (removed &&
        !put(cap, &off,
             snprintf(buf + off, cap - off, ",\"reason\":\"silent for %" PRIu64 ".%" PRIu64 " s\"",
                      silent_ms / 1000, silent_ms % 1000 / 100)))
        return 0;
    if (!put(cap, &off, snprintf(buf + off, cap - off, "}")))
        return 0;
    return off;
}

size_t elect_payload_leader(
    char *buf, size_t cap, uint64_t term, uint64_t node, const struct elect_epoch *ep)
{
    size_t off = 0;
    if (!put(cap, &off,
             snprintf(buf, cap,
                      "{\"type\":\"leader_elected\",\"term\":%" PRIu64 ",\"node\":\"" ELECT_ID_FMT
                      "\",\"epoch\":%" PRIu64 "}",
                      term, node, ep->num)))
        return 0;
    return off;
}
