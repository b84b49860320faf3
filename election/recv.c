/* election/recv.c: intake of a received message -- the semantic checks
 * every message must pass before it may touch the core (the wire's checks
 * are about bytes, these are about meaning: recipient, tags in order, flags),
 * the copies an AppendEntries needs made before anything changes (note 1 in
 * election.c), the epoch gate (R19), then dispatch to vote.c/replication.c. */
#include <inttypes.h>

#include "election/internal.h"

static int check_msg(const struct elect *e, const struct elect_msg *m, struct sh_err *err)
{
    const struct elect_epoch zero = {0, 0, 0};
    if (!m)
        return sh_err_set(err, SH_EINVAL, "receive: no message");
    if (m->to != e->p.id)
        return sh_err_set(err, SH_EMALFORMED, "message for " ELECT_ID_FMT ", not us", m->to);
    if (m->from == 0 || m->from == e->p.id)
        return sh_err_set(err, SH_EMALFORMED, "message from " ELECT_ID_FMT, m->from);
    if ((m->epoch.num == 0) != (m->epoch.starter == 0) || (m->epoch.num == 0 && m->epoch.base))
        return sh_err_set(err, SH_EMALFORMED, "message epoch inconsistent");
    switch (m->type) {
    case ELECT_MSG_REQUEST_VOTE:
        if (m->rv.flags & ~ELECT_VOTE_ALL)
            return sh_err_set(err, SH_EMALFORMED, "vote flags 0x%x", (unsigned)m->rv.flags);
        if (m->rv.last_index == 0 &&
            (m->rv.last_term || elect_epoch_cmp(&m->rv.last_epoch, &zero) != 0))
            return sh_err_set(err, SH_EMALFORMED, "vote: tag for an empty log");
        if (elect_tag_cmp(&m->rv.last_epoch, m->rv.last_term, &m->epoch, m->term) > 0)
            return sh_err_set(err, SH_EMALFORMED, "vote: last entry newer than the candidate");
        return 0;
    case ELECT_MSG_REQUEST_VOTE_RESULT:
        if (m->rvr.granted > 1 || (m->rvr.flags & ~ELECT_VOTE_ALL))
            return sh_err_set(err, SH_EMALFORMED, "vote result fields out of range");
        return 0;
    case ELECT_MSG_APPEND_ENTRIES: {
        const struct elect_epoch *pe = &m->ae.prev_epoch;
        uint64_t pt = m->ae.prev_term;
        if (m->ae.n_entries > ELECT_MAX_ENTRIES || (m->ae.n_entries && !m->ae.entries))
            return sh_err_set(err, SH_EMALFORMED, "append: %" PRIu32 " entries", m->ae.n_entries);
        if (m->ae.prev_index > ELECT_MAX_LOG ||
            m->ae.leader_last < m->ae.prev_index + m->ae.n_entries)
            return sh_err_set(err, SH_EMALFORMED, "append: indexes out of range");
        if (m->ae.prev_index == 0 && (pt || elect_epoch_cmp(pe, &zero) != 0))
            return sh_err_set(err, SH_EMALFORMED, "append: tag for an empty prefix");
        if (elect_tag_cmp(pe, pt, &m->epoch, m->term) > 0)
            return sh_err_set(err, SH_EMALFORMED, "append: prefix newer than the leader");
        for (uint32_t i = 0; i < m->ae.n_entries; i++) {
            const struct elect_entry *x = &m->ae.entries[i];
            int rc = elect_entry_check(x, err);
            if (rc)
                return sh_err_wrap(err, "append: entry %" PRIu32, i);
            if (elect_tag_cmp(&x->epoch, x->term, pe, pt) < 0 ||
                elect_tag_cmp(&x->epoch, x->term, &m->epoch, m->term) > 0)
                return sh_err_set(err, SH_EMALFORMED, "append: entry %" PRIu32 " tag out of order",
                                  i);
            pe = &x->epoch;
            pt = x->term;
        }
        return 0;
    }
    case ELECT_MSG_APPEND_ENTRIES_RESULT:
        if (m->aer.success > 1)
            return sh_err_set(err, SH_EMALFORMED, "append result success %u",
                              (unsigned)m->aer.success);
        return 0;
    case ELECT_MSG_TIMEOUT_NOW:
        return 0;
    default:
        return sh_err_set(err, SH_EMALFORMED, "message type %u unknown", (unsigned)m->type);
    }
}

/* Copies a received batch and reserves room, before anything changes (note 1). */
static int prepare_append(struct elect *e, const struct elect_msg *m, struct sh_err *err)
{
    uint64_t last = elect_log_last(&e->log);
    uint64_t keep = m->ae.prev_index < last ? m->ae.prev_index : last;
    int rc = elect_log_reserve(e, &e->log, (size_t)m->ae.n_entries + ELECT_SPARES + 1);
    if (!rc)
        rc = elect_archive_reserve(e, (size_t)(last - keep));
    if (rc)
        return sh_err_set(err, rc, "append: %s", sh_strerror(rc));
    for (uint32_t i = 0; i < m->ae.n_entries; i++) {
        if (elect_entry_copy(e, &e->incoming[i], &m->ae.entries[i]))
            return sh_err_set(err, SH_ENOMEM, "append: out of memory");
        e->n_incoming = i + 1;
    }
    return 0;
}

int elect_step_receive(struct elect *e, const struct elect_msg *m, struct sh_err *err)
{
    int rc = check_msg(e, m, err);
    if (rc)
        return rc;
    if (m->type == ELECT_MSG_APPEND_ENTRIES) {
        rc = prepare_append(e, m, err);
        if (rc)
            return rc;
    }
    if (!elect_epoch_gate(e, m))
        return 0;
    {
        struct elect_link *l = elect_link_find(e, m->from);
        if (l && l->up)
            l->heard = true; /* it is in our epoch now (R12) */
    }
    switch (m->type) {
    case ELECT_MSG_REQUEST_VOTE:
        return elect_recv_request_vote(e, m);
    case ELECT_MSG_REQUEST_VOTE_RESULT:
        return elect_recv_vote_result(e, m);
    case ELECT_MSG_APPEND_ENTRIES:
        return elect_recv_append(e, m);
    case ELECT_MSG_APPEND_ENTRIES_RESULT:
        return elect_recv_append_result(e, m);
    default:
        return elect_recv_timeout_now(e, m);
    }
}
