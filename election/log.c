/* election/log.c: the in-memory log (indexes 1..n), entry copies, and moving
 * truncated entries to the step's archive so the driver can keep them (R5).
 *
 * Each entry the core holds owns exactly one heap block: its members (8-byte
 * aligned) first, then the payload and a NUL. The block's address is
 * `members` when n_members > 0, else `payload` -- elect_entry_free relies on
 * that, and so do the spare blocks core-written entries are built in. */
#include <assert.h>
#include <inttypes.h>
#include <string.h>

#include "common/util.h"
#include "election/internal.h"

void elect_log_init(struct elect_log *l)
{
    l->e = NULL;
    l->n = 0;
    l->cap = 0;
}

void elect_entry_free(struct elect *e, struct elect_entry *x)
{
    void *block = x->n_members > 0 ? (void *)(uintptr_t)x->members : (void *)(uintptr_t)x->payload;
    elect_dealloc(e, block);
    x->members = NULL;
    x->payload = NULL;
}

void elect_log_close(struct elect *e, struct elect_log *l)
{
    for (size_t i = 0; i < l->n; i++)
        elect_entry_free(e, &l->e[i]);
    elect_dealloc(e, l->e);
    elect_log_init(l);
}

uint64_t elect_log_last(const struct elect_log *l)
{
    return (uint64_t)l->n;
}

const struct elect_entry *elect_log_get(const struct elect_log *l, uint64_t index)
{
    if (index == 0 || index > (uint64_t)l->n)
        return NULL;
    return &l->e[index - 1];
}

void elect_log_tag(const struct elect_log *l,
                   uint64_t index,
                   uint64_t *term,
                   struct elect_epoch *ep)
{
    const struct elect_entry *x = elect_log_get(l, index);
    if (!x) {
        *term = 0;
        memset(ep, 0, sizeof *ep);
        return;
    }
    *term = x->term;
    *ep = x->epoch;
}

bool elect_log_matches(const struct elect_log *l,
                       uint64_t index,
                       uint64_t term,
                       const struct elect_epoch *ep)
{
    uint64_t t;
    struct elect_epoch x;
    if (index > (uint64_t)l->n)
        return false;
    elect_log_tag(l, index, &t, &x);
    return t == term && elect_epoch_cmp(&x, ep) == 0;
}

int elect_log_reserve(struct elect *e, struct elect_log *l, size_t more)
{
    size_t need, cap, bytes;
    struct elect_entry *ne;
    if (!sh_add_size(l->n, more, &need) || need > ELECT_MAX_LOG)
        return SH_ETOOBIG;
    if (need <= l->cap)
        return 0;
    cap = l->cap ? l->cap : 64;
    while (cap < need)
        cap *= 2;
    if (cap > ELECT_MAX_LOG)
        cap = ELECT_MAX_LOG;
    if (!sh_mul_size(cap, sizeof *ne, &bytes))
        return SH_ETOOBIG;
    ne = elect_realloc(e, l->e, bytes);
    if (!ne)
        return SH_ENOMEM;
    l->e = ne;
    l->cap = cap;
    return 0;
}

int elect_entry_copy(struct elect *e, struct elect_entry *dst, const struct elect_entry *src)
{
    size_t mbytes = (size_t)src->n_members * sizeof(uint64_t);
    size_t total = mbytes + (size_t)src->payload_len + 1; /* bounded by elect_entry_check */
    uint8_t *block = elect_alloc(e, total);
    char *payload;
    if (!block)
        return SH_ENOMEM;
    if (mbytes)
        memcpy(block, src->members, mbytes);
    payload = (char *)block + mbytes;
    if (src->payload_len)
        memcpy(payload, src->payload, src->payload_len);
    payload[src->payload_len] = '\0';
    *dst = *src;
    dst->members = mbytes ? (const uint64_t *)(void *)block : NULL;
    dst->payload = payload;
    return 0;
}

void elect_log_push(struct elect_log *l, const struct elect_entry *x)
{
    assert(l->n < l->cap);
    l->e[l->n++] = *x;
}

int elect_archive_reserve(struct elect *e, size_t more)
{
    size_t need, bytes;
    struct elect_entry *na;
    if (!sh_add_size(e->n_archived, more, &need))
        return SH_ETOOBIG;
    if (need <= e->cap_archived)
        return 0;
    if (!sh_mul_size(need, sizeof *na, &bytes))
        return SH_ETOOBIG;
    na = elect_realloc(e, e->archived, bytes);
    if (!na)
        return SH_ENOMEM;
    e->archived = na;
    e->cap_archived = need;
    return 0;
}

void elect_log_truncate(struct elect *e, uint64_t from)
{
    struct elect_log *l = &e->log;
    size_t k = (size_t)(from - 1);
    size_t removed;
    uint64_t committed_lost = 0;
    assert(from >= 1 && from <= (uint64_t)l->n);
    /* One truncation per step, before any append: an AppendEntries either
     * conflicts (truncate, then append) or matches (maybe trim a foreign
     * tail past the leader's last index). So every removed entry was
     * persisted and belongs in the archive. */
    assert(e->trunc_from == 0 && e->dirty_from == 0);
    removed = l->n - k;
    assert(e->n_archived + removed <= e->cap_archived);
    memcpy(&e->archived[e->n_archived], &l->e[k], removed * sizeof *l->e);
    e->n_archived += removed;
    l->n = k;
    e->trunc_from = from;
    if (e->commit >= from) {
        committed_lost = e->commit - from + 1;
        e->commit = from - 1;
        e->step_flags |= ELECT_UPD_REWIND;
    }
    elect_tracef(
        e, "archive entries %" PRIu64 "..%" PRIu64 " (%" PRIu64 " committed in a losing lineage)",
        from, from + removed - 1, committed_lost);
    elect_log_scan_configs(e);
}

void elect_log_scan_configs(struct elect *e)
{
    const struct elect_log *l = &e->log;
    size_t i;
    e->conf_idx = 0;
    e->prev_conf_idx = 0;
    e->epoch_idx = 0;
    for (i = l->n; i > 0; i--) {
        uint8_t k = l->e[i - 1].kind;
        if (k != ELECT_ENTRY_CONFIG && k != ELECT_ENTRY_EPOCH)
            continue;
        if (e->conf_idx == 0) {
            e->conf_idx = i;
            if (k == ELECT_ENTRY_EPOCH)
                break; /* an EPOCH entry has no previous config (R9) */
        } else {
            e->prev_conf_idx = i;
            break;
        }
    }
    for (i = l->n; i > 0; i--) {
        if (l->e[i - 1].kind == ELECT_ENTRY_EPOCH) {
            e->epoch_idx = i;
            break;
        }
    }
}

int elect_entry_check(const struct elect_entry *x, struct sh_err *err)
{
    bool conf;
    switch (x->kind) {
    case ELECT_ENTRY_EVENT:
    case ELECT_ENTRY_LEADER:
        conf = false;
        break;
    case ELECT_ENTRY_CONFIG:
    case ELECT_ENTRY_EPOCH:
        conf = true;
        break;
    default:
        return sh_err_set(err, SH_EMALFORMED, "entry kind %u unknown", (unsigned)x->kind);
    }
    if (x->term == 0 || x->epoch.num == 0)
        return sh_err_set(err, SH_EMALFORMED, "entry without term or epoch");
    if (conf && (x->n_members == 0 || x->n_members > ELECT_MAX_MEMBERS))
        return sh_err_set(err, SH_EMALFORMED, "%s entry with %" PRIu32 " members (1..%d)",
                          elect_kind_name(x->kind), x->n_members, ELECT_MAX_MEMBERS);
    if (!conf && x->n_members != 0)
        return sh_err_set(err, SH_EMALFORMED, "%s entry with members", elect_kind_name(x->kind));
    if (x->n_members && !x->members)
        return sh_err_set(err, SH_EMALFORMED, "entry members missing");
    for (uint32_t i = 0; i < x->n_members; i++) {
        if (x->members[i] == 0 || (i > 0 && x->members[i] <= x->members[i - 1]))
            return sh_err_set(err, SH_EMALFORMED, "entry members not sorted, unique and non-zero");
    }
    if (x->payload_len > ELECT_MAX_PAYLOAD)
        return sh_err_set(err, SH_EMALFORMED, "entry payload %" PRIu32 " bytes (max %d)",
                          x->payload_len, ELECT_MAX_PAYLOAD);
    if (x->payload_len && !x->payload)
        return sh_err_set(err, SH_EMALFORMED, "entry payload missing");
    return 0;
}
