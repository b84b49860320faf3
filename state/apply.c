/* state/apply.c: the pure fold (state_apply) and the telemetry rate limiter.
 *
 * No I/O, no clock, no allocation while mutating: an event is first checked
 * completely (schema rules from events.c, then the rules that need the
 * state), and only then written, so a reject leaves the state byte-identical
 * and an accepted event cannot fail half-way. Every write keeps the state
 * canonical (nodes sorted, unused bytes zero) so that two nodes folding the
 * same log hold identical bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "state/internal.h"
#include "state/state.h"

void state_init(struct state *st)
{
    memset(st, 0, sizeof *st);
}

struct state *state_new(void)
{
    return calloc(1, sizeof(struct state));
}

void state_free(struct state *st)
{
    free(st);
}

/* Index of the first node with id >= id (binary search over sorted ids). */
static uint32_t lower_bound(const struct state *st, uint64_t id)
{
    uint32_t lo = 0, hi = st->n_nodes;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (st->nodes[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const struct state_node *state_find_node(const struct state *st, uint64_t id)
{
    uint32_t i = lower_bound(st, id);
    return i < st->n_nodes && st->nodes[i].id == id ? &st->nodes[i] : NULL;
}

/* Copies a validated NUL-terminated string into a field of cap bytes,
 * zeroing the tail so stale bytes of a longer old value do not linger. */
static void set_text(char *dst, size_t cap, const char *src)
{
    size_t len = strlen(src); /* < cap: validated */
    memset(dst, 0, cap);
    memcpy(dst, src, len);
}

static void set_resources(struct state_resources *dst, const struct state_resources *src)
{
    memset(dst, 0, sizeof *dst);
    dst->ram_total = src->ram_total;
    dst->ram_free = src->ram_free;
    dst->cores = src->cores;
    dst->n_models = src->n_models;
    for (uint32_t i = 0; i < src->n_models; i++)
        set_text(dst->models[i], sizeof dst->models[i], src->models[i]);
}

static void hexid(uint64_t id, char out[STATE_NODE_HEX_LEN + 1])
{
    state_node_id_format(id, out);
}

static bool is_member(const struct state *st, uint64_t id)
{
    for (uint32_t i = 0; i < st->n_members; i++)
        if (st->members[i] == id)
            return true;
    return false;
}

/* member_added/removed: the new list must be exactly the current members
 * plus (minus) the node, so a log that skipped a change cannot fold. */
static bool members_follow(const struct state *st, const struct state_event *ev, bool add)
{
    uint32_t want = add ? st->n_members + 1 : st->n_members - 1;
    if (ev->n_members != want)
        return false;
    for (uint32_t i = 0; i < ev->n_members; i++)
        if (ev->members[i] != ev->node && !is_member(st, ev->members[i]))
            return false;
    return true;
}

/* The checks that need the state. Returns 0 when ev may be applied. */
static int check_semantics(const struct state *st,
                           uint64_t index,
                           const struct state_event *ev,
                           struct sh_err *err)
{
    const char *t = state_event_type_name(ev->type);
    const struct state_node *n = state_find_node(st, ev->node);
    char hex[STATE_NODE_HEX_LEN + 1];

    hexid(ev->node, hex);
    if (index <= st->applied_index)
        return sh_err_set(err, SH_ERANGE, "%s: index %llu is not after the last applied %llu", t,
                          (unsigned long long)index, (unsigned long long)st->applied_index);
    switch (ev->type) {
    case STATE_EV_NODE_JOINED:
        if (!n && st->n_nodes == STATE_MAX_NODES)
            return sh_err_set(err, SH_ETOOBIG,
                              "%s: node %s: cluster full, %d nodes (STATE_MAX_NODES)", t, hex,
                              STATE_MAX_NODES);
        return 0;
    case STATE_EV_NODE_LEFT:
    case STATE_EV_NODE_INFO_UPDATED:
        if (!n)
            return sh_err_set(err, SH_ENOTFOUND, "%s: node %s is not in the cluster", t, hex);
        return 0;
    case STATE_EV_LEADER_ELECTED:
        if (ev->epoch != st->epoch)
            return sh_err_set(err, SH_ERANGE, "%s: epoch %llu is not the current epoch %llu", t,
                              (unsigned long long)ev->epoch, (unsigned long long)st->epoch);
        if (ev->term <= st->term)
            return sh_err_set(err, SH_ERANGE,
                              "%s: term %llu is not after term %llu (leader %016llx)", t,
                              (unsigned long long)ev->term, (unsigned long long)st->term,
                              (unsigned long long)st->leader);
        return 0;
    case STATE_EV_EPOCH_STARTED:
        if (ev->epoch <= st->epoch)
            return sh_err_set(err, SH_ERANGE, "%s: epoch %llu is not after the current epoch %llu",
                              t, (unsigned long long)ev->epoch, (unsigned long long)st->epoch);
        return 0;
    case STATE_EV_MEMBER_ADDED:
    case STATE_EV_MEMBER_REMOVED: {
        bool add = ev->type == STATE_EV_MEMBER_ADDED;
        if (ev->epoch != st->epoch)
            return sh_err_set(err, SH_ERANGE, "%s: epoch %llu is not the current epoch %llu", t,
                              (unsigned long long)ev->epoch, (unsigned long long)st->epoch);
        if (add && is_member(st, ev->node))
            return sh_err_set(err, SH_EINVAL, "%s: node %s is a member already", t, hex);
        if (!add && !is_member(st, ev->node))
            return sh_err_set(err, SH_ENOTFOUND, "%s: node %s is not a member", t, hex);
        if (!members_follow(st, ev, add))
            return sh_err_set(err, SH_EINVAL,
                              "%s: members (%u) are not the current %u members %s node %s", t,
                              ev->n_members, st->n_members, add ? "plus" : "minus", hex);
        return 0;
    }
    }
    return sh_err_set(err, SH_EINTERNAL, "unreachable event type");
}

static void apply_joined(struct state *st, uint64_t index, const struct state_event *ev)
{
    uint32_t i = lower_bound(st, ev->node);
    struct state_node *n = &st->nodes[i];
    int64_t t = ev->has_time ? ev->time_ms : 0;

    if (i < st->n_nodes && n->id == ev->node) {
        n->rejoins++; /* re-join: the node came back before it was declared gone */
    } else {
        memmove(n + 1, n, (st->n_nodes - i) * sizeof *n);
        memset(n, 0, sizeof *n);
        st->n_nodes++;
        n->id = ev->node;
        n->joined_index = index;
        n->joined_time_ms = t;
    }
    n->updated_index = index;
    n->updated_time_ms = t;
    n->api_port = ev->api_port;
    set_text(n->name, sizeof n->name, ev->name);
    set_text(n->addr, sizeof n->addr, ev->addr);
    set_resources(&n->res, &ev->res);
}

static void set_members(struct state *st, const struct state_event *ev)
{
    memset(st->members, 0, sizeof st->members);
    memcpy(st->members, ev->members, ev->n_members * sizeof ev->members[0]);
    st->n_members = ev->n_members;
}

int state_apply_event(struct state *st,
                      uint64_t index,
                      const struct state_event *ev,
                      struct sh_err *err)
{
    uint32_t i;
    int rc;

    if ((rc = state_event_validate(ev, err)) || (rc = check_semantics(st, index, ev, err)))
        return rc;
    /* From here on nothing can fail. */
    switch (ev->type) {
    case STATE_EV_NODE_JOINED:
        apply_joined(st, index, ev);
        break;
    case STATE_EV_NODE_LEFT:
        i = lower_bound(st, ev->node);
        memmove(&st->nodes[i], &st->nodes[i + 1], (st->n_nodes - i - 1) * sizeof st->nodes[0]);
        st->n_nodes--;
        memset(&st->nodes[st->n_nodes], 0, sizeof st->nodes[0]);
        break;
    case STATE_EV_LEADER_ELECTED:
        st->leader = ev->node;
        st->term = ev->term;
        st->leader_index = index;
        break;
    case STATE_EV_EPOCH_STARTED:
        st->epoch = ev->epoch;
        st->epoch_node = ev->node;
        /* The Raft core's starter leads its epoch at once (it writes its
         * term); without a term the new epoch elects its own leader. */
        st->leader = ev->term ? ev->node : STATE_NODE_NONE;
        st->term = ev->term;
        st->leader_index = ev->term ? index : 0;
        set_members(st, ev);
        break;
    case STATE_EV_MEMBER_ADDED:
    case STATE_EV_MEMBER_REMOVED:
        set_members(st, ev);
        break;
    case STATE_EV_NODE_INFO_UPDATED: {
        struct state_node *n = &st->nodes[lower_bound(st, ev->node)];
        set_resources(&n->res, &ev->res);
        n->updated_index = index;
        n->updated_time_ms = ev->has_time ? ev->time_ms : 0;
        break;
    }
    }
    st->applied_index = index;
    if (ev->has_time)
        st->time_ms = ev->time_ms;
    return 0;
}

int state_apply(struct state *st, uint64_t index, const char *json, size_t len, struct sh_err *err)
{
    struct state_event *ev;
    int rc;

    ev = malloc(sizeof *ev); /* ~10 KB: off the stack */
    if (!ev)
        return sh_err_set(err, SH_ENOMEM, "event: out of memory");
    rc = state_event_parse(json, len, ev, err);
    if (rc == 0)
        rc = state_apply_event(st, index, ev, err);
    free(ev);
    return rc;
}

/* ---- telemetry rate limiter ---------------------------------------------- */

/* Same set of model ids, whatever the order (callers may pass raw lists). */
static bool same_models(const struct state_resources *a, const struct state_resources *b)
{
    if (a->n_models != b->n_models)
        return false;
    for (uint32_t i = 0; i < a->n_models; i++) {
        bool found = false;
        for (uint32_t j = 0; j < b->n_models && !found; j++)
            found = strncmp(a->models[i], b->models[j], sizeof a->models[i]) == 0;
        if (!found)
            return false;
    }
    return true;
}

enum state_info_decision state_info_decide(const struct state_resources *logged,
                                           int64_t logged_ms,
                                           const struct state_resources *now,
                                           int64_t now_ms,
                                           const struct state_info_policy *policy,
                                           const char **why)
{
    const char *w = NULL;
    uint64_t moved;

    moved = now->ram_free > logged->ram_free ? now->ram_free - logged->ram_free
                                             : logged->ram_free - now->ram_free;
    if (!same_models(logged, now))
        w = "models changed";
    else if (logged->cores != now->cores)
        w = "cores changed";
    else if (logged->ram_total != now->ram_total)
        w = "ram_total changed";
    else if (moved > policy->ram_free_abs ||
             /* moved / logged > permille / 1000, in doubles: byte counts are
              * below 2^53 so the products stay exact enough for a threshold */
             (double)moved * 1000.0 > (double)logged->ram_free * (double)policy->ram_free_permille)
        w = "ram_free moved";
    if (!w) {
        if (why)
            *why = "no significant change";
        return STATE_INFO_SAME;
    }
    if (why)
        *why = w;
    /* A clock that went backwards counts as "too soon", never as a flood. */
    if (now_ms < logged_ms ||
        (policy->min_interval_ms > 0 &&
         (uint64_t)now_ms - (uint64_t)logged_ms < (uint64_t)policy->min_interval_ms))
        return STATE_INFO_TOO_SOON;
    return STATE_INFO_LOG;
}
