/* tests/election/harness.h: drive one election core by hand -- build
 * entries and messages, feed events, look at the update. Header-only; the
 * unit tests include it. */
#ifndef ELECT_HARNESS_H
#define ELECT_HARNESS_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "election/election.h"
#include "lib/test.h"

#define H_T 100 /* election timeout used by every harness core */

struct h {
    struct elect *e;
    struct elect_update up;
    struct sh_err err;
    uint64_t now;
    int rc;
    /* Allocation-failure tests: when a step fails with SH_ENOMEM, `state`
     * (a digest of the core) must not have changed, and `on_nomem` says
     * whether to retry the same event. */
    uint64_t (*state)(const struct elect *e);
    bool (*on_nomem)(struct h *h);
};

static inline void h_params(struct elect_params *p, uint64_t id)
{
    elect_params_default(p, id, 42);
    p->election_timeout_ms = H_T;
    p->heartbeat_ms = H_T / 5;
    p->epoch_timeout_ms = 6 * H_T;
    p->removal_timeout_ms = 20 * H_T;
    p->bootstrap_grace_ms = 3 * H_T;
}

static inline void h_new(struct h *h, uint64_t id)
{
    struct elect_params p;
    memset(h, 0, sizeof *h);
    h_params(&p, id);
    assert_int_equal(elect_new(&p, &h->e, &h->err), 0);
}

static inline void h_free(struct h *h)
{
    elect_free(h->e);
    h->e = NULL;
}

static inline int h_event(struct h *h, struct elect_event *ev)
{
    ev->now_ms = h->now;
    for (;;) {
        uint64_t before = h->state ? h->state(h->e) : 0;
        sh_err_clear(&h->err);
        h->rc = elect_step(h->e, ev, &h->up, &h->err);
        if (h->rc != SH_ENOMEM || !h->on_nomem)
            return h->rc;
        if (h->state(h->e) != before)
            fail_msg("event %u failed with ENOMEM but changed the core", (unsigned)ev->type);
        if (h->up.n_msgs || h->up.flags)
            fail_msg("event %u failed with ENOMEM but returned work", (unsigned)ev->type);
        if (!h->on_nomem(h))
            return h->rc;
    }
}

static inline int h_start(struct h *h,
                          uint64_t term,
                          uint64_t vote,
                          struct elect_epoch ep,
                          uint64_t commit,
                          const struct elect_entry *xs,
                          size_t n)
{
    struct elect_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = ELECT_EV_START;
    ev.start.hard.term = term;
    ev.start.hard.vote = vote;
    ev.start.hard.epoch = ep;
    ev.start.hard.commit = commit;
    ev.start.entries = xs;
    ev.start.n_entries = n;
    return h_event(h, &ev);
}

static inline int h_tick(struct h *h, uint64_t now)
{
    struct elect_event ev;
    memset(&ev, 0, sizeof ev);
    if (now > h->now)
        h->now = now;
    ev.type = ELECT_EV_TICK;
    return h_event(h, &ev);
}

/* Ticks at every deadline the core asks for until `until`. */
static inline void h_run(struct h *h, uint64_t until)
{
    while (h->up.next_tick <= until) {
        assert_int_equal(h_tick(h, h->up.next_tick), 0);
    }
    h->now = until;
}

static inline int h_recv(struct h *h, const struct elect_msg *m)
{
    struct elect_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = ELECT_EV_RECEIVE;
    ev.receive.msg = m;
    return h_event(h, &ev);
}

static inline int h_link(struct h *h, uint64_t id, bool up)
{
    struct elect_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = up ? ELECT_EV_LINK_UP : ELECT_EV_LINK_DOWN;
    ev.link.id = id;
    return h_event(h, &ev);
}

static inline int h_submit(struct h *h, const char *payload)
{
    struct elect_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = ELECT_EV_SUBMIT;
    ev.submit.payload = payload;
    ev.submit.len = strlen(payload);
    return h_event(h, &ev);
}

static inline int h_transfer(struct h *h, uint64_t target)
{
    struct elect_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = ELECT_EV_TRANSFER;
    ev.transfer.target = target;
    return h_event(h, &ev);
}

/* The k-th message of `type` to `to` in the last update (0 = any), or NULL. */
static inline const struct elect_msg *h_msg(const struct h *h, uint8_t type, uint64_t to)
{
    for (size_t i = 0; i < h->up.n_msgs; i++)
        if (h->up.msgs[i].type == type && (to == 0 || h->up.msgs[i].to == to))
            return &h->up.msgs[i];
    return NULL;
}

static inline size_t h_count(const struct h *h, uint8_t type)
{
    size_t k = 0;
    for (size_t i = 0; i < h->up.n_msgs; i++)
        k += h->up.msgs[i].type == type;
    return k;
}

static inline bool h_traced(const struct h *h, const char *needle)
{
    return h->up.trace && strstr(h->up.trace, needle) != NULL;
}

/* ---- builders */
static inline struct elect_epoch ep3(uint64_t num, uint64_t base, uint64_t starter)
{
    struct elect_epoch e = {num, base, starter};
    return e;
}

static inline struct elect_entry ent(uint64_t term, struct elect_epoch ep, const char *payload)
{
    struct elect_entry x;
    memset(&x, 0, sizeof x);
    x.term = term;
    x.epoch = ep;
    x.kind = ELECT_ENTRY_EVENT;
    x.payload = payload;
    x.payload_len = (uint32_t)strlen(payload);
    return x;
}

static inline struct elect_entry
conf_ent(uint8_t kind, uint64_t term, struct elect_epoch ep, const uint64_t *members, uint32_t n)
{
    struct elect_entry x = ent(term, ep, "{}");
    x.kind = kind;
    x.members = members;
    x.n_members = n;
    return x;
}

static inline struct elect_msg
msg(uint8_t type, uint64_t from, uint64_t to, struct elect_epoch ep, uint64_t term)
{
    struct elect_msg m;
    memset(&m, 0, sizeof m);
    m.type = type;
    m.from = from;
    m.to = to;
    m.epoch = ep;
    m.term = term;
    return m;
}

static inline struct elect_msg rv(uint64_t from,
                                  uint64_t to,
                                  struct elect_epoch ep,
                                  uint64_t term,
                                  uint64_t last_index,
                                  uint64_t last_term,
                                  struct elect_epoch last_ep,
                                  uint8_t flags)
{
    struct elect_msg m = msg(ELECT_MSG_REQUEST_VOTE, from, to, ep, term);
    m.rv.last_index = last_index;
    m.rv.last_term = last_term;
    m.rv.last_epoch = last_ep;
    m.rv.flags = flags;
    return m;
}

static inline struct elect_msg rvr(uint64_t from,
                                   uint64_t to,
                                   struct elect_epoch ep,
                                   uint64_t term,
                                   uint64_t req_term,
                                   uint8_t flags,
                                   bool granted)
{
    struct elect_msg m = msg(ELECT_MSG_REQUEST_VOTE_RESULT, from, to, ep, term);
    m.rvr.req_term = req_term;
    m.rvr.flags = flags;
    m.rvr.granted = granted;
    return m;
}

static inline struct elect_msg ae(uint64_t from,
                                  uint64_t to,
                                  struct elect_epoch ep,
                                  uint64_t term,
                                  uint64_t prev_index,
                                  uint64_t prev_term,
                                  struct elect_epoch prev_ep,
                                  const struct elect_entry *xs,
                                  uint32_t n,
                                  uint64_t commit)
{
    struct elect_msg m = msg(ELECT_MSG_APPEND_ENTRIES, from, to, ep, term);
    m.commit = commit;
    m.ae.prev_index = prev_index;
    m.ae.prev_term = prev_term;
    m.ae.prev_epoch = prev_ep;
    m.ae.entries = xs;
    m.ae.n_entries = n;
    m.ae.leader_last = prev_index + n;
    return m;
}

static inline struct elect_msg
aer(uint64_t from, uint64_t to, struct elect_epoch ep, uint64_t term, bool ok, uint64_t index)
{
    struct elect_msg m = msg(ELECT_MSG_APPEND_ENTRIES_RESULT, from, to, ep, term);
    m.aer.success = ok;
    m.aer.index = index;
    m.aer.last_index = index;
    return m;
}

/* Grants every pre-vote/vote the last update asked for, one voter at a
 * time, in member order; stops when the core becomes leader. */
static inline void h_grant_all(struct h *h, const uint64_t *voters, size_t n)
{
    for (int round = 0; round < 2 && elect_role(h->e) != ELECT_ROLE_LEADER; round++) {
        const struct elect_msg *req = h_msg(h, ELECT_MSG_REQUEST_VOTE, 0);
        struct elect_msg r;
        uint64_t term;
        uint8_t flags;
        struct elect_epoch ep;
        assert_non_null(req);
        term = req->term;
        flags = req->rv.flags;
        ep = req->epoch;
        for (size_t i = 0; i < n && elect_role(h->e) == ELECT_ROLE_CANDIDATE; i++) {
            r = rvr(voters[i], elect_id(h->e), ep, (flags & ELECT_VOTE_PRE) ? term - 1 : term, term,
                    flags, true);
            assert_int_equal(h_recv(h, &r), 0);
            if (h_msg(h, ELECT_MSG_REQUEST_VOTE, 0))
                break; /* moved from pre-vote to vote */
        }
    }
}

#endif
