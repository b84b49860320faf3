/* election/query.c: the read-only side of the public API -- getters, the
 * epoch and tag order (R15, R4) and names for traces and logs. */
#include "election/internal.h"

uint64_t elect_id(const struct elect *e)
{
    return e->p.id;
}

enum elect_role elect_role(const struct elect *e)
{
    return e->role;
}

uint64_t elect_leader(const struct elect *e)
{
    return e->leader;
}

uint64_t elect_term(const struct elect *e)
{
    return e->term;
}

struct elect_epoch elect_current_epoch(const struct elect *e)
{
    return e->epoch;
}

uint64_t elect_commit(const struct elect *e)
{
    return e->commit;
}

uint64_t elect_last_index(const struct elect *e)
{
    return elect_log_last(&e->log);
}

const struct elect_entry *elect_entry_at(const struct elect *e, uint64_t index)
{
    return elect_log_get(&e->log, index);
}

const uint64_t *elect_members(const struct elect *e, size_t *n)
{
    const struct elect_entry *c = elect_config(e);
    *n = c ? c->n_members : 0;
    return c ? c->members : NULL;
}

bool elect_in_sync(const struct elect *e)
{
    return !elect_pending(e);
}

static int cmp_u64(uint64_t a, uint64_t b)
{
    return a < b ? -1 : a > b;
}

int elect_epoch_cmp(const struct elect_epoch *a, const struct elect_epoch *b)
{
    int c = cmp_u64(a->num, b->num);
    if (!c)
        c = cmp_u64(a->base, b->base);
    if (!c)
        c = cmp_u64(a->starter, b->starter);
    return c;
}

int elect_tag_cmp(const struct elect_epoch *ea,
                  uint64_t ta,
                  const struct elect_epoch *eb,
                  uint64_t tb)
{
    int c = elect_epoch_cmp(ea, eb);
    return c ? c : cmp_u64(ta, tb);
}

const char *elect_role_name(enum elect_role r)
{
    switch (r) {
    case ELECT_ROLE_FOLLOWER:
        return "follower";
    case ELECT_ROLE_CANDIDATE:
        return "candidate";
    case ELECT_ROLE_LEADER:
        return "leader";
    }
    return "unknown";
}

const char *elect_kind_name(uint8_t kind)
{
    switch (kind) {
    case ELECT_ENTRY_EVENT:
        return "event";
    case ELECT_ENTRY_CONFIG:
        return "config";
    case ELECT_ENTRY_EPOCH:
        return "epoch";
    case ELECT_ENTRY_LEADER:
        return "leader";
    }
    return "unknown";
}

const char *elect_msg_type_name(uint8_t type)
{
    switch (type) {
    case ELECT_MSG_REQUEST_VOTE:
        return "request-vote";
    case ELECT_MSG_REQUEST_VOTE_RESULT:
        return "request-vote-result";
    case ELECT_MSG_APPEND_ENTRIES:
        return "append-entries";
    case ELECT_MSG_APPEND_ENTRIES_RESULT:
        return "append-entries-result";
    case ELECT_MSG_TIMEOUT_NOW:
        return "timeout-now";
    }
    return "unknown";
}
