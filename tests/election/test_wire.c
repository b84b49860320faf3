/* tests/election/test_wire.c: election/wire.c -- every message round-trips;
 * bad frames (boundary counts 0, 2^31, 2^32-1, SIZE_MAX lengths, unknown
 * kinds and flags, truncation at every byte, trailing bytes) are refused with
 * SH_EMALFORMED and never read out of bounds (each frame sits in a buffer of
 * exactly its length, so ASan sees any over-read). */
#include "common/util.h"
#include "harness.h"

#define HDR       58
#define AE_N      (HDR + 48)             /* u32 n_entries */
#define ENTRY0    (HDR + 52)             /* first entry */
#define ENTRY1    (ENTRY0 + 41 + 12)     /* after entry 0's 12-byte payload */
#define ENTRY2    (ENTRY1 + 41 + 24 + 2) /* after 3 members and "{}" */
#define E_KIND    32                     /* offsets inside an entry */
#define E_MEMBERS 33
#define E_PAYLEN  37

static const uint64_t members[] = {3, 7, 0xffffffffffffffffull};

static struct elect_msg sample(uint8_t type, struct elect_entry *xs)
{
    struct elect_epoch ep = ep3(3, 41, 0x1122334455667788ull);
    struct elect_msg m = msg(type, 0xa1, 0xb2, ep, 0x8000000000000001ull);
    m.commit = 40;
    switch (type) {
    case ELECT_MSG_REQUEST_VOTE:
        m.rv.last_index = 44;
        m.rv.last_term = 9;
        m.rv.last_epoch = ep;
        m.rv.flags = ELECT_VOTE_PRE | ELECT_VOTE_EPOCH;
        break;
    case ELECT_MSG_REQUEST_VOTE_RESULT:
        m.rvr.req_term = 10;
        m.rvr.flags = ELECT_VOTE_TRANSFER;
        m.rvr.granted = 1;
        break;
    case ELECT_MSG_APPEND_ENTRIES:
        xs[0] = ent(9, ep, "{\"type\":\"x\"}");
        xs[1] = conf_ent(ELECT_ENTRY_CONFIG, 9, ep, members, 3);
        xs[2] = ent(9, ep, "");
        xs[2].kind = ELECT_ENTRY_LEADER;
        m.ae.prev_index = 41;
        m.ae.prev_term = 8;
        m.ae.prev_epoch = ep3(2, 0, 5);
        m.ae.leader_last = 50;
        m.ae.entries = xs;
        m.ae.n_entries = 3;
        break;
    case ELECT_MSG_APPEND_ENTRIES_RESULT:
        m.aer.success = 1;
        m.aer.index = 44;
        m.aer.last_index = 47;
        break;
    default:
        break;
    }
    return m;
}

static void same_entry(const struct elect_entry *a, const struct elect_entry *b)
{
    assert_int_equal(a->term, b->term);
    assert_int_equal(elect_epoch_cmp(&a->epoch, &b->epoch), 0);
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->n_members, b->n_members);
    for (uint32_t i = 0; i < a->n_members; i++)
        assert_true(a->members[i] == b->members[i]);
    assert_int_equal(a->payload_len, b->payload_len);
    assert_memory_equal(a->payload, b->payload, a->payload_len);
    assert_int_equal(b->payload[b->payload_len], '\0');
}

/* Decodes a copy of exactly len bytes. */
static int decode_exact(const uint8_t *buf, size_t len, struct elect_msg **out, struct sh_err *err)
{
    uint8_t *copy = malloc(len ? len : 1);
    int rc;
    assert_non_null(copy);
    if (len)
        memcpy(copy, buf, len);
    rc = elect_msg_decode(copy, len, out, err);
    free(copy);
    return rc;
}

static void round_trips(void **state)
{
    struct elect_entry xs[3];
    (void)state;
    for (uint8_t t = ELECT_MSG_REQUEST_VOTE; t <= ELECT_MSG_TIMEOUT_NOW; t++) {
        struct elect_msg m = sample(t, xs), *d = NULL;
        struct sh_err err;
        uint8_t *buf;
        size_t len;
        assert_int_equal(elect_msg_encode(&m, &buf, &len, &err), 0);
        assert_int_equal(decode_exact(buf, len, &d, &err), 0);
        assert_int_equal(d->type, t);
        assert_true(d->from == m.from && d->to == m.to && d->term == m.term);
        assert_true(d->commit == m.commit);
        assert_int_equal(elect_epoch_cmp(&d->epoch, &m.epoch), 0);
        switch (t) {
        case ELECT_MSG_REQUEST_VOTE:
            assert_int_equal(len, HDR + 41);
            assert_true(d->rv.last_index == 44 && d->rv.last_term == 9);
            assert_int_equal(elect_epoch_cmp(&d->rv.last_epoch, &m.rv.last_epoch), 0);
            assert_int_equal(d->rv.flags, m.rv.flags);
            break;
        case ELECT_MSG_REQUEST_VOTE_RESULT:
            assert_int_equal(len, HDR + 10);
            assert_true(d->rvr.req_term == 10 && d->rvr.flags == ELECT_VOTE_TRANSFER);
            assert_int_equal(d->rvr.granted, 1);
            break;
        case ELECT_MSG_APPEND_ENTRIES:
            assert_true(d->ae.prev_index == 41 && d->ae.prev_term == 8 && d->ae.leader_last == 50);
            assert_int_equal(elect_epoch_cmp(&d->ae.prev_epoch, &m.ae.prev_epoch), 0);
            assert_int_equal(d->ae.n_entries, 3);
            for (int i = 0; i < 3; i++)
                same_entry(&xs[i], &d->ae.entries[i]);
            assert_null(d->ae.entries[0].members);
            break;
        case ELECT_MSG_APPEND_ENTRIES_RESULT:
            assert_int_equal(len, HDR + 17);
            assert_true(d->aer.success == 1 && d->aer.index == 44 && d->aer.last_index == 47);
            break;
        default:
            assert_int_equal(len, HDR);
        }
        elect_msg_free(d);
        free(buf);
    }
}

/* Every strict prefix of every valid frame is refused; so is one more byte. */
static void truncated_at_every_byte(void **state)
{
    struct elect_entry xs[3];
    (void)state;
    for (uint8_t t = ELECT_MSG_REQUEST_VOTE; t <= ELECT_MSG_TIMEOUT_NOW; t++) {
        struct elect_msg m = sample(t, xs), *d = NULL;
        struct sh_err err;
        uint8_t *buf, *longer;
        size_t len;
        assert_int_equal(elect_msg_encode(&m, &buf, &len, &err), 0);
        for (size_t k = 0; k < len; k++) {
            d = NULL;
            assert_int_equal(decode_exact(buf, k, &d, &err), SH_EMALFORMED);
            assert_null(d);
        }
        longer = malloc(len + 1);
        memcpy(longer, buf, len);
        longer[len] = 0;
        assert_int_equal(decode_exact(longer, len + 1, &d, &err), SH_EMALFORMED);
        assert_non_null(strstr(sh_err_msg(&err), "trailing bytes"));
        free(longer);
        free(buf);
    }
}

struct patch {
    const char *what;
    uint8_t type; /* sample to start from */
    size_t off;   /* byte offset of the field */
    int width;    /* 1, 4 or 8 */
    uint64_t value;
    const char *msg; /* expected in the error message */
};

static const struct patch patches[] = {
    {"version 0", ELECT_MSG_TIMEOUT_NOW, 0, 1, 0, "wire version 0"},
    {"version 2", ELECT_MSG_TIMEOUT_NOW, 0, 1, 2, "wire version 2"},
    {"type 0", ELECT_MSG_TIMEOUT_NOW, 1, 1, 0, "message type 0 unknown"},
    {"type 6", ELECT_MSG_TIMEOUT_NOW, 1, 1, 6, "message type 6 unknown"},
    {"type 255", ELECT_MSG_TIMEOUT_NOW, 1, 1, 255, "message type 255 unknown"},
    {"from 0", ELECT_MSG_TIMEOUT_NOW, 2, 8, 0, "node id 0"},
    {"to 0", ELECT_MSG_TIMEOUT_NOW, 10, 8, 0, "node id 0"},
    {"vote flags 0x08", ELECT_MSG_REQUEST_VOTE, HDR + 40, 1, 0x08, "flags 0x8"},
    {"vote flags 0xff", ELECT_MSG_REQUEST_VOTE, HDR + 40, 1, 0xff, "flags 0xff"},
    {"granted 2", ELECT_MSG_REQUEST_VOTE_RESULT, HDR + 9, 1, 2, "granted 2"},
    {"result flags 0x80", ELECT_MSG_REQUEST_VOTE_RESULT, HDR + 8, 1, 0x80, "flags 0x80"},
    {"success 2", ELECT_MSG_APPEND_ENTRIES_RESULT, HDR, 1, 2, "success 2"},
    {"success 255", ELECT_MSG_APPEND_ENTRIES_RESULT, HDR, 1, 255, "success 255"},
    {"entries 65", ELECT_MSG_APPEND_ENTRIES, AE_N, 4, 65, "65 entries (max 64)"},
    {"entries 2^31", ELECT_MSG_APPEND_ENTRIES, AE_N, 4, 0x80000000u, "2147483648 entries"},
    {"entries 2^32-1", ELECT_MSG_APPEND_ENTRIES, AE_N, 4, 0xffffffffu, "4294967295 entries"},
    {"entries 4 (3 sent)", ELECT_MSG_APPEND_ENTRIES, AE_N, 4, 4, "4 entries in 161 bytes"},
    {"entries 2 (3 sent)", ELECT_MSG_APPEND_ENTRIES, AE_N, 4, 2, "trailing bytes"},
    {"entries 0 (3 sent)", ELECT_MSG_APPEND_ENTRIES, AE_N, 4, 0, "trailing bytes"},
    {"kind 0", ELECT_MSG_APPEND_ENTRIES, ENTRY0 + E_KIND, 1, 0, "kind 0 unknown"},
    {"kind 5", ELECT_MSG_APPEND_ENTRIES, ENTRY0 + E_KIND, 1, 5, "kind 5 unknown"},
    {"kind 255", ELECT_MSG_APPEND_ENTRIES, ENTRY0 + E_KIND, 1, 255, "kind 255 unknown"},
    {"event with members", ELECT_MSG_APPEND_ENTRIES, ENTRY1 + E_KIND, 1, 1,
     "event entry with members"},
    {"config without members", ELECT_MSG_APPEND_ENTRIES, ENTRY0 + E_KIND, 1, 2,
     "config entry with 0 members"},
    {"members past end", ELECT_MSG_APPEND_ENTRIES, ENTRY2 + E_MEMBERS, 4, 1,
     "0 bytes left for 1 members"},
    {"members 65", ELECT_MSG_APPEND_ENTRIES, ENTRY0 + E_MEMBERS, 4, 65, "65 members (max 64)"},
    {"members 2^31", ELECT_MSG_APPEND_ENTRIES, ENTRY0 + E_MEMBERS, 4, 0x80000000u, "members (max"},
    {"members 2^32-1", ELECT_MSG_APPEND_ENTRIES, ENTRY0 + E_MEMBERS, 4, 0xffffffffu,
     "members (max"},
    {"payload 65537", ELECT_MSG_APPEND_ENTRIES, ENTRY0 + E_PAYLEN, 4, 65537, "payload 65537 bytes"},
    {"payload 2^31", ELECT_MSG_APPEND_ENTRIES, ENTRY0 + E_PAYLEN, 4, 0x80000000u, "payload"},
    {"payload 2^32-1", ELECT_MSG_APPEND_ENTRIES, ENTRY0 + E_PAYLEN, 4, 0xffffffffu, "payload"},
    {"payload past end", ELECT_MSG_APPEND_ENTRIES, ENTRY0 + E_PAYLEN, 4, 60000, "bytes left"},
    {"entry term 0", ELECT_MSG_APPEND_ENTRIES, ENTRY0, 8, 0, "without term or epoch"},
    {"entry epoch 0", ELECT_MSG_APPEND_ENTRIES, ENTRY0 + 8, 8, 0, "without term or epoch"},
};

static void put(uint8_t *p, int width, uint64_t v)
{
    if (width == 1)
        p[0] = (uint8_t)v;
    else if (width == 4)
        sh_put_u32(p, (uint32_t)v);
    else
        sh_put_u64(p, v);
}

static void bad_fields_are_refused(void **state)
{
    struct elect_entry xs[3];
    (void)state;
    for (size_t i = 0; i < sizeof patches / sizeof patches[0]; i++) {
        const struct patch *pt = &patches[i];
        struct elect_msg m = sample(pt->type, xs), *d = NULL;
        struct sh_err err;
        uint8_t *buf;
        size_t len;
        int rc;
        assert_int_equal(elect_msg_encode(&m, &buf, &len, &err), 0);
        assert_true(pt->off + (size_t)pt->width <= len);
        put(buf + pt->off, pt->width, pt->value);
        rc = decode_exact(buf, len, &d, &err);
        if (rc != SH_EMALFORMED || !strstr(sh_err_msg(&err), pt->msg))
            fail_msg("%s: rc %d, message \"%s\" (want \"%s\")", pt->what, rc, sh_err_msg(&err),
                     pt->msg);
        assert_null(d);
        free(buf);
    }
}

/* Config members must be sorted, unique and non-zero (entry 1 is a CONFIG
 * with members 3, 7, 2^64-1 after entry 0's 12-byte payload). */
static void bad_members_are_refused(void **state)
{
    struct elect_entry xs[3];
    size_t e1 = ENTRY1, m0 = e1 + 41;
    const uint64_t bad[][3] = {{7, 3, 9}, {3, 3, 9}, {0, 3, 9}};
    (void)state;
    for (size_t i = 0; i < 3; i++) {
        struct elect_msg m = sample(ELECT_MSG_APPEND_ENTRIES, xs), *d = NULL;
        struct sh_err err;
        uint8_t *buf;
        size_t len;
        assert_int_equal(elect_msg_encode(&m, &buf, &len, &err), 0);
        assert_int_equal(buf[e1 + E_KIND], ELECT_ENTRY_CONFIG);
        for (int k = 0; k < 3; k++)
            sh_put_u64(buf + m0 + 8 * (size_t)k, bad[i][k]);
        assert_int_equal(decode_exact(buf, len, &d, &err), SH_EMALFORMED);
        assert_non_null(strstr(sh_err_msg(&err), "not sorted, unique and non-zero"));
        free(buf);
    }
}

static void lengths_at_the_limits(void **state)
{
    uint8_t tiny[4] = {1, 5, 0, 0};
    struct elect_msg *d = NULL;
    struct sh_err err;
    (void)state;
    /* A claimed length past the frame limit is refused before any read. */
    assert_int_equal(elect_msg_decode(tiny, SIZE_MAX, &d, &err), SH_EMALFORMED);
    assert_int_equal(elect_msg_decode(tiny, (size_t)ELECT_WIRE_MAX_BYTES + 1, &d, &err),
                     SH_EMALFORMED);
    assert_int_equal(elect_msg_decode(tiny, 0, &d, &err), SH_EMALFORMED);
    assert_int_equal(elect_msg_decode(NULL, 0, &d, &err), SH_EMALFORMED);
    assert_int_equal(elect_msg_decode(NULL, 5, &d, &err), SH_EINVAL);
    assert_null(d);
}

/* The largest frame the limits allow encodes to exactly ELECT_WIRE_MAX_BYTES
 * and decodes; one entry more, or a byte more of payload, is refused. */
static void largest_frame(void **state)
{
    static struct elect_entry xs[ELECT_MAX_ENTRIES + 1];
    static uint64_t ids[ELECT_MAX_MEMBERS];
    char *payload = malloc(ELECT_MAX_PAYLOAD + 1);
    struct elect_msg m = sample(ELECT_MSG_APPEND_ENTRIES, xs), *d = NULL;
    struct sh_err err;
    uint8_t *buf;
    size_t len;
    (void)state;
    memset(payload, 'p', ELECT_MAX_PAYLOAD + 1);
    for (int i = 0; i < ELECT_MAX_MEMBERS; i++)
        ids[i] = (uint64_t)i + 1;
    for (int i = 0; i <= ELECT_MAX_ENTRIES; i++) {
        xs[i] = conf_ent(ELECT_ENTRY_EPOCH, 9, m.epoch, ids, ELECT_MAX_MEMBERS);
        xs[i].payload = payload;
        xs[i].payload_len = ELECT_MAX_PAYLOAD;
    }
    m.ae.entries = xs;
    m.ae.n_entries = ELECT_MAX_ENTRIES;
    assert_int_equal(elect_msg_encode(&m, &buf, &len, &err), 0);
    assert_int_equal(len, ELECT_WIRE_MAX_BYTES);
    assert_int_equal(elect_msg_decode(buf, len, &d, &err), 0);
    assert_int_equal(d->ae.n_entries, ELECT_MAX_ENTRIES);
    same_entry(&xs[63], &d->ae.entries[63]);
    elect_msg_free(d);
    free(buf);
    m.ae.n_entries = ELECT_MAX_ENTRIES + 1;
    assert_int_equal(elect_msg_encode(&m, &buf, &len, &err), SH_ETOOBIG);
    m.ae.n_entries = 1;
    xs[0].payload_len = ELECT_MAX_PAYLOAD + 1;
    assert_int_equal(elect_msg_encode(&m, &buf, &len, &err), SH_EMALFORMED);
    xs[0].payload_len = 1;
    xs[0].kind = 9;
    assert_int_equal(elect_msg_encode(&m, &buf, &len, &err), SH_EMALFORMED);
    free(payload);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trips),
        cmocka_unit_test(truncated_at_every_byte),
        cmocka_unit_test(bad_fields_are_refused),
        cmocka_unit_test(bad_members_are_refused),
        cmocka_unit_test(lengths_at_the_limits),
        cmocka_unit_test(largest_frame),
    };
    return cmocka_run_group_tests_name("election/wire", tests, NULL, NULL);
}
