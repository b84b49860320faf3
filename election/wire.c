/* election/wire.c: the binary encoding of every election message, version 1,
 * little-endian through common/util.h's cursor. Owns the byte layout and the
 * validation of frames from peers; the meaning of the fields is the core's.
 *
 * Layout (u8/u32/u64 little-endian; epoch = num, base, starter as 3 x u64):
 *   header  u8 version, u8 type, u64 from, u64 to, epoch, u64 term,
 *           u64 commit                                            (58 bytes)
 *   RV      u64 last_index, u64 last_term, epoch last_epoch, u8 flags   (41)
 *   RVR     u64 req_term, u8 flags, u8 granted                          (10)
 *   AE      u64 prev_index, u64 prev_term, epoch prev_epoch,
 *           u64 leader_last, u32 n_entries                              (52)
 *           then n_entries x entry:
 *           u64 term, epoch, u8 kind, u32 n_members, u32 payload_len    (41)
 *           n_members x u64, payload bytes
 *   AER     u8 success, u64 index, u64 last_index                       (17)
 *   TN      nothing
 * A decoded message is one allocation: the struct, the entry array, all
 * members (8-byte aligned), then all payloads each followed by a NUL. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "election/internal.h"

#define HDR_BYTES   58
#define RV_BYTES    41
#define RVR_BYTES   10
#define AE_BYTES    52
#define ENTRY_BYTES 41
#define AER_BYTES   17

_Static_assert(HDR_BYTES == ELECT_WIRE_HEADER_BYTES, "header size");
_Static_assert(AE_BYTES == ELECT_WIRE_AE_BYTES, "append-entries size");
_Static_assert(ENTRY_BYTES == ELECT_WIRE_ENTRY_BYTES, "entry size");

/* ---- encode */
struct out {
    uint8_t *p;
};

static void put8(struct out *o, uint8_t v)
{
    *o->p++ = v;
}

static void put32(struct out *o, uint32_t v)
{
    sh_put_u32(o->p, v);
    o->p += 4;
}

static void put64(struct out *o, uint64_t v)
{
    sh_put_u64(o->p, v);
    o->p += 8;
}

static void put_epoch(struct out *o, const struct elect_epoch *ep)
{
    put64(o, ep->num);
    put64(o, ep->base);
    put64(o, ep->starter);
}

static int encoded_size(const struct elect_msg *m, size_t *size, struct sh_err *err)
{
    size_t n = HDR_BYTES;
    switch (m->type) {
    case ELECT_MSG_REQUEST_VOTE:
        if (m->rv.flags & ~ELECT_VOTE_ALL)
            return sh_err_set(err, SH_EINVAL, "encode: vote flags 0x%x", (unsigned)m->rv.flags);
        n += RV_BYTES;
        break;
    case ELECT_MSG_REQUEST_VOTE_RESULT:
        if (m->rvr.granted > 1 || (m->rvr.flags & ~ELECT_VOTE_ALL))
            return sh_err_set(err, SH_EINVAL, "encode: vote result fields out of range");
        n += RVR_BYTES;
        break;
    case ELECT_MSG_APPEND_ENTRIES:
        if (m->ae.n_entries > ELECT_MAX_ENTRIES)
            return sh_err_set(err, SH_ETOOBIG, "encode: %" PRIu32 " entries (max %d)",
                              m->ae.n_entries, ELECT_MAX_ENTRIES);
        if (m->ae.n_entries && !m->ae.entries)
            return sh_err_set(err, SH_EINVAL, "encode: entries missing");
        n += AE_BYTES;
        for (uint32_t i = 0; i < m->ae.n_entries; i++) {
            const struct elect_entry *x = &m->ae.entries[i];
            int rc = elect_entry_check(x, err);
            if (rc)
                return sh_err_wrap(err, "encode: entry %" PRIu32, i);
            /* Bounded by the checks: at most 64 x (41 + 512 + 65536). */
            n += ENTRY_BYTES + 8 * (size_t)x->n_members + x->payload_len;
        }
        break;
    case ELECT_MSG_APPEND_ENTRIES_RESULT:
        if (m->aer.success > 1)
            return sh_err_set(err, SH_EINVAL, "encode: success %u", (unsigned)m->aer.success);
        n += AER_BYTES;
        break;
    case ELECT_MSG_TIMEOUT_NOW:
        break;
    default:
        return sh_err_set(err, SH_EINVAL, "encode: message type %u unknown", (unsigned)m->type);
    }
    *size = n;
    return 0;
}

int elect_msg_encode(const struct elect_msg *m, uint8_t **buf, size_t *len, struct sh_err *err)
{
    size_t size = 0;
    struct out o;
    uint8_t *b;
    int rc = encoded_size(m, &size, err);
    if (rc)
        return rc;
    b = malloc(size);
    if (!b)
        return sh_err_set(err, SH_ENOMEM, "encode: out of memory");
    o.p = b;
    put8(&o, ELECT_WIRE_VERSION);
    put8(&o, m->type);
    put64(&o, m->from);
    put64(&o, m->to);
    put_epoch(&o, &m->epoch);
    put64(&o, m->term);
    put64(&o, m->commit);
    switch (m->type) {
    case ELECT_MSG_REQUEST_VOTE:
        put64(&o, m->rv.last_index);
        put64(&o, m->rv.last_term);
        put_epoch(&o, &m->rv.last_epoch);
        put8(&o, m->rv.flags);
        break;
    case ELECT_MSG_REQUEST_VOTE_RESULT:
        put64(&o, m->rvr.req_term);
        put8(&o, m->rvr.flags);
        put8(&o, m->rvr.granted);
        break;
    case ELECT_MSG_APPEND_ENTRIES:
        put64(&o, m->ae.prev_index);
        put64(&o, m->ae.prev_term);
        put_epoch(&o, &m->ae.prev_epoch);
        put64(&o, m->ae.leader_last);
        put32(&o, m->ae.n_entries);
        for (uint32_t i = 0; i < m->ae.n_entries; i++) {
            const struct elect_entry *x = &m->ae.entries[i];
            put64(&o, x->term);
            put_epoch(&o, &x->epoch);
            put8(&o, x->kind);
            put32(&o, x->n_members);
            put32(&o, x->payload_len);
            for (uint32_t j = 0; j < x->n_members; j++)
                put64(&o, x->members[j]);
            if (x->payload_len)
                memcpy(o.p, x->payload, x->payload_len);
            o.p += x->payload_len;
        }
        break;
    case ELECT_MSG_APPEND_ENTRIES_RESULT:
        put8(&o, m->aer.success);
        put64(&o, m->aer.index);
        put64(&o, m->aer.last_index);
        break;
    default:
        break;
    }
    *buf = b;
    *len = size;
    return 0;
}

/* ---- decode */
static void get_epoch(struct sh_cursor *c, struct elect_epoch *ep)
{
    ep->num = sh_cursor_u64(c);
    ep->base = sh_cursor_u64(c);
    ep->starter = sh_cursor_u64(c);
}

/* Reads one entry's fixed part; the variable part is skipped or copied by
 * the caller. */
static int
get_entry_head(struct sh_cursor *c, struct elect_entry *x, uint32_t i, struct sh_err *err)
{
    if (sh_cursor_left(c) < ENTRY_BYTES)
        return sh_err_set(err, SH_EMALFORMED, "entry %" PRIu32 ": truncated header", i);
    x->term = sh_cursor_u64(c);
    get_epoch(c, &x->epoch);
    x->kind = sh_cursor_u8(c);
    x->n_members = sh_cursor_u32(c);
    x->payload_len = sh_cursor_u32(c);
    if (x->kind < ELECT_ENTRY_EVENT || x->kind > ELECT_ENTRY_LEADER)
        return sh_err_set(err, SH_EMALFORMED, "entry %" PRIu32 ": kind %u unknown", i,
                          (unsigned)x->kind);
    if (x->n_members > ELECT_MAX_MEMBERS)
        return sh_err_set(err, SH_EMALFORMED, "entry %" PRIu32 ": %" PRIu32 " members (max %d)", i,
                          x->n_members, ELECT_MAX_MEMBERS);
    if (x->payload_len > ELECT_MAX_PAYLOAD)
        return sh_err_set(err, SH_EMALFORMED,
                          "entry %" PRIu32 ": payload %" PRIu32 " bytes (max %d)", i,
                          x->payload_len, ELECT_MAX_PAYLOAD);
    if (sh_cursor_left(c) < 8 * (size_t)x->n_members + x->payload_len)
        return sh_err_set(err, SH_EMALFORMED,
                          "entry %" PRIu32 ": %zu bytes left for %" PRIu32 " members and %" PRIu32
                          " payload bytes",
                          i, sh_cursor_left(c), x->n_members, x->payload_len);
    return 0;
}

static int decode_fixed(struct sh_cursor *c, struct elect_msg *m, struct sh_err *err)
{
    uint8_t version;
    if (sh_cursor_left(c) < HDR_BYTES)
        return sh_err_set(err, SH_EMALFORMED, "frame of %zu bytes is shorter than a header",
                          sh_cursor_left(c));
    version = sh_cursor_u8(c);
    if (version != ELECT_WIRE_VERSION)
        return sh_err_set(err, SH_EMALFORMED, "wire version %u (want %d)", (unsigned)version,
                          ELECT_WIRE_VERSION);
    m->type = sh_cursor_u8(c);
    m->from = sh_cursor_u64(c);
    m->to = sh_cursor_u64(c);
    get_epoch(c, &m->epoch);
    m->term = sh_cursor_u64(c);
    m->commit = sh_cursor_u64(c);
    if (m->from == 0 || m->to == 0)
        return sh_err_set(err, SH_EMALFORMED, "node id 0 in header");
    switch (m->type) {
    case ELECT_MSG_REQUEST_VOTE:
        if (sh_cursor_left(c) < RV_BYTES)
            return sh_err_set(err, SH_EMALFORMED, "request-vote truncated");
        m->rv.last_index = sh_cursor_u64(c);
        m->rv.last_term = sh_cursor_u64(c);
        get_epoch(c, &m->rv.last_epoch);
        m->rv.flags = sh_cursor_u8(c);
        if (m->rv.flags & ~ELECT_VOTE_ALL)
            return sh_err_set(err, SH_EMALFORMED, "request-vote flags 0x%x", (unsigned)m->rv.flags);
        return 0;
    case ELECT_MSG_REQUEST_VOTE_RESULT:
        if (sh_cursor_left(c) < RVR_BYTES)
            return sh_err_set(err, SH_EMALFORMED, "request-vote-result truncated");
        m->rvr.req_term = sh_cursor_u64(c);
        m->rvr.flags = sh_cursor_u8(c);
        m->rvr.granted = sh_cursor_u8(c);
        if ((m->rvr.flags & ~ELECT_VOTE_ALL) || m->rvr.granted > 1)
            return sh_err_set(err, SH_EMALFORMED, "request-vote-result flags 0x%x granted %u",
                              (unsigned)m->rvr.flags, (unsigned)m->rvr.granted);
        return 0;
    case ELECT_MSG_APPEND_ENTRIES:
        if (sh_cursor_left(c) < AE_BYTES)
            return sh_err_set(err, SH_EMALFORMED, "append-entries truncated");
        m->ae.prev_index = sh_cursor_u64(c);
        m->ae.prev_term = sh_cursor_u64(c);
        get_epoch(c, &m->ae.prev_epoch);
        m->ae.leader_last = sh_cursor_u64(c);
        m->ae.n_entries = sh_cursor_u32(c);
        if (m->ae.n_entries > ELECT_MAX_ENTRIES)
            return sh_err_set(err, SH_EMALFORMED,
                              "append-entries with %" PRIu32 " entries (max %d)", m->ae.n_entries,
                              ELECT_MAX_ENTRIES);
        if ((size_t)m->ae.n_entries * ENTRY_BYTES > sh_cursor_left(c))
            return sh_err_set(err, SH_EMALFORMED,
                              "append-entries: %" PRIu32 " entries in %zu bytes", m->ae.n_entries,
                              sh_cursor_left(c));
        return 0;
    case ELECT_MSG_APPEND_ENTRIES_RESULT:
        if (sh_cursor_left(c) < AER_BYTES)
            return sh_err_set(err, SH_EMALFORMED, "append-entries-result truncated");
        m->aer.success = sh_cursor_u8(c);
        m->aer.index = sh_cursor_u64(c);
        m->aer.last_index = sh_cursor_u64(c);
        if (m->aer.success > 1)
            return sh_err_set(err, SH_EMALFORMED, "append-entries-result success %u",
                              (unsigned)m->aer.success);
        return 0;
    case ELECT_MSG_TIMEOUT_NOW:
        return 0;
    default:
        return sh_err_set(err, SH_EMALFORMED, "message type %u unknown", (unsigned)m->type);
    }
}

int elect_msg_decode(const void *buf, size_t len, struct elect_msg **out, struct sh_err *err)
{
    struct sh_cursor c, scan;
    struct elect_msg head, *m;
    struct elect_entry *xs;
    size_t total, mbytes = 0, pbytes = 0;
    uint8_t *mem, *pm, *pp;
    int rc;
    if (!buf && len)
        return sh_err_set(err, SH_EINVAL, "decode: no buffer");
    if (!buf)
        return sh_err_set(err, SH_EMALFORMED, "empty frame");
    if (len > ELECT_WIRE_MAX_BYTES)
        return sh_err_set(err, SH_EMALFORMED, "frame of %zu bytes (max %zu)", len,
                          (size_t)ELECT_WIRE_MAX_BYTES);
    memset(&head, 0, sizeof head);
    sh_cursor_init(&c, buf, len);
    rc = decode_fixed(&c, &head, err);
    if (rc)
        return rc;
    /* Pass 1: validate every entry and size the one allocation. */
    scan = c;
    if (head.type == ELECT_MSG_APPEND_ENTRIES) {
        for (uint32_t i = 0; i < head.ae.n_entries; i++) {
            struct elect_entry x;
            rc = get_entry_head(&scan, &x, i, err);
            if (rc)
                return rc;
            mbytes += 8 * (size_t)x.n_members;
            pbytes += (size_t)x.payload_len + 1;
            sh_cursor_take(&scan, 8 * (size_t)x.n_members + x.payload_len);
        }
    }
    if (sh_cursor_left(&scan) != 0)
        return sh_err_set(err, SH_EMALFORMED, "%zu trailing bytes after %s", sh_cursor_left(&scan),
                          elect_msg_type_name(head.type));
    /* All bounded by ELECT_WIRE_MAX_BYTES, so no overflow below. */
    total = sizeof *m + (size_t)head.ae.n_entries * sizeof *xs + mbytes + pbytes;
    if (head.type != ELECT_MSG_APPEND_ENTRIES)
        total = sizeof *m;
    mem = malloc(total);
    if (!mem)
        return sh_err_set(err, SH_ENOMEM, "decode: out of memory");
    m = (struct elect_msg *)(void *)mem;
    *m = head;
    if (head.type == ELECT_MSG_APPEND_ENTRIES) {
        xs = (struct elect_entry *)(void *)(mem + sizeof *m);
        pm = (uint8_t *)(xs + head.ae.n_entries);
        pp = pm + mbytes;
        m->ae.entries = head.ae.n_entries ? xs : NULL;
        /* Pass 2: copy (every bound was checked in pass 1). */
        for (uint32_t i = 0; i < head.ae.n_entries; i++) {
            struct elect_entry *x = &xs[i];
            uint64_t *ms = (uint64_t *)(void *)pm;
            get_entry_head(&c, x, i, NULL);
            for (uint32_t j = 0; j < x->n_members; j++)
                ms[j] = sh_cursor_u64(&c);
            x->members = x->n_members ? ms : NULL;
            pm += 8 * (size_t)x->n_members;
            if (x->payload_len)
                memcpy(pp, sh_cursor_take(&c, x->payload_len), x->payload_len);
            pp[x->payload_len] = '\0';
            x->payload = (const char *)pp;
            pp += (size_t)x->payload_len + 1;
            rc = elect_entry_check(x, err);
            if (rc) {
                free(mem);
                return sh_err_wrap(err, "append-entries entry %" PRIu32, i);
            }
        }
    }
    *out = m;
    return 0;
}

void elect_msg_free(struct elect_msg *m)
{
    free(m);
}
