/* tests/discovery/test_handshake.c: the pure handshake core, driven message
 * by message with no sockets: success, cluster key mismatches, tampering
 * with every byte, impostors, wrong ids, versions and sizes. */
#include <stdbool.h>
#include <string.h>

#include <sodium.h>

#include "discovery/internal.h"
#include "lib/test.h"

struct node {
    uint8_t pk[DISC_PUBKEY_BYTES];
    uint8_t sk[DISC_SECKEY_BYTES];
    struct disc_hs_self self;
};

static void node_init(struct node *n, const uint8_t *cluster_key, const char *name)
{
    crypto_sign_keypair(n->pk, n->sk);
    memset(&n->self, 0, sizeof n->self);
    n->self.pk = n->pk;
    n->self.sk = n->sk;
    n->self.cluster_key = cluster_key;
    n->self.incarnation = randombytes_random();
    n->self.api_port = 52415;
    n->self.peer_port = 52416;
    n->self.name = name;
}

/* Which message (1..4) to alter, at which byte, or none (msg 0). */
struct tamper {
    int msg;
    size_t at;
    uint8_t mask;
};

struct outcome {
    int rc_d, rc_a; /* last step results */
    bool done_d, done_a;
    int failed_at; /* message number whose processing failed, 0 if none */
};

static struct outcome run(const struct node *d,
                          const struct node *a,
                          uint64_t expected,
                          const struct tamper *t,
                          uint8_t msgs[4][DISC_HS_MAX_MSG],
                          size_t lens[4])
{
    struct disc_hs hd, ha;
    uint8_t buf[DISC_HS_MAX_MSG], in[DISC_HS_MAX_MSG];
    size_t len = 0;
    struct outcome o = {0};
    struct sh_err err;

    disc_hs_init(&hd, DISC_HS_DIALER, &d->self, expected);
    disc_hs_init(&ha, DISC_HS_ACCEPTOR, &a->self, 0);
    for (int m = 1; m <= 4; m++) {
        struct disc_hs *sender = (m % 2) ? &hd : &ha, *receiver = (m % 2) ? &ha : &hd;
        int rc;
        if (m == 1) {
            rc = disc_hs_step(sender, NULL, 0, buf, &len, NULL);
            assert_int_equal(rc, 0);
        }
        /* buf holds message m, produced by the previous step */
        if (t && t->msg == m && t->at < len)
            buf[t->at] ^= t->mask;
        if (msgs) {
            memcpy(msgs[m - 1], buf, len);
            lens[m - 1] = len;
        }
        sh_err_clear(&err);
        memcpy(in, buf, len);
        rc = disc_hs_step(receiver, in, len, buf, &len, &err);
        if (receiver == &hd)
            o.rc_d = rc;
        else
            o.rc_a = rc;
        if (rc) {
            o.failed_at = m;
            break;
        }
        if (m == 4)
            break;
        assert_true(len > 0);
    }
    o.done_d = hd.state == DISC_HS_DONE;
    o.done_a = ha.state == DISC_HS_DONE;
    if (o.done_d && o.done_a) {
        /* Both directions' keys agree, counters start after the AUTHs. */
        assert_memory_equal(hd.tx.key, ha.rx.key, 32);
        assert_memory_equal(hd.rx.key, ha.tx.key, 32);
        assert_memory_not_equal(hd.tx.key, hd.rx.key, 32);
        assert_int_equal(hd.tx.counter, 1);
        assert_int_equal(ha.rx.counter, 1);
        assert_int_equal(hd.peer.node_id, disc_node_id(a->pk));
        assert_int_equal(ha.peer.node_id, disc_node_id(d->pk));
        assert_memory_equal(hd.peer.pk, a->pk, 32);
        assert_int_equal(ha.peer.incarnation, d->self.incarnation);
        assert_string_equal(ha.peer.name, d->self.name);
        assert_string_equal(hd.peer.name, a->self.name);
        assert_int_equal(hd.peer.api_port, 52415);
    }
    disc_hs_wipe(&hd);
    disc_hs_wipe(&ha);
    return o;
}

static uint8_t key1[32], key2[32];

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    randombytes_buf(key1, sizeof key1);
    randombytes_buf(key2, sizeof key2);
    return 0;
}

static void succeeds_with_and_without_key(void **state)
{
    struct node d, a;
    struct outcome o;

    (void)state;
    node_init(&d, key1, "dialer");
    node_init(&a, key1, "acceptor");
    o = run(&d, &a, disc_node_id(a.pk), NULL, NULL, NULL);
    assert_true(o.done_d && o.done_a);
    node_init(&d, NULL, "d");
    node_init(&a, NULL, "a");
    o = run(&d, &a, 0, NULL, NULL, NULL);
    assert_true(o.done_d && o.done_a);
}

static void wrong_cluster_key_refused_by_acceptor(void **state)
{
    struct node d, a;
    uint8_t msgs[4][DISC_HS_MAX_MSG];
    size_t lens[4] = {0};
    struct outcome o;

    (void)state;
    /* Either key vs the other, key vs none, none vs key: the acceptor refuses
     * msg3, and has sent nothing but its HELLO (40 bytes, no identity). */
    const uint8_t *pairs[][2] = {{key1, key2}, {key2, key1}, {NULL, key1}, {key1, NULL}};
    for (size_t i = 0; i < 4; i++) {
        node_init(&d, pairs[i][0], "d");
        node_init(&a, pairs[i][1], "a");
        o = run(&d, &a, 0, NULL, msgs, lens);
        assert_int_equal(o.failed_at, 3);
        assert_int_equal(o.rc_a, SH_EUNAUTH);
        assert_false(o.done_a);
        assert_false(o.done_d);
        assert_int_equal(lens[1], DISC_HS_HELLO_LEN);
        assert_null(memmem(msgs[1], lens[1], a.pk, 32));
        assert_int_equal(lens[3], 0); /* msg4 never produced */
    }
}

static void every_tampered_byte_is_caught(void **state)
{
    struct node d, a;
    uint8_t msgs[4][DISC_HS_MAX_MSG];
    size_t lens[4] = {0};
    struct outcome o;
    size_t cases = 0;

    (void)state;
    node_init(&d, key1, "dialer");
    node_init(&a, key1, "acceptor");
    o = run(&d, &a, 0, NULL, msgs, lens);
    assert_true(o.done_d && o.done_a);
    for (int m = 1; m <= 4; m++) {
        for (size_t at = 0; at < lens[m - 1]; at++) {
            struct tamper t = {.msg = m, .at = at, .mask = (uint8_t)(1u << (at % 8))};
            o = run(&d, &a, 0, &t, NULL, NULL);
            /* The side that reads the last message affected never finishes:
             * a change to msg1..3 stops the acceptor, to msg4 the dialer. */
            if (m <= 3)
                assert_false(o.done_a);
            else
                assert_false(o.done_d);
            assert_true(o.failed_at >= m);
            cases++;
        }
    }
    assert_true(cases > 300);
}

static void impostor_identity_refused(void **state)
{
    struct node victim, evil, a;
    struct outcome o;

    (void)state;
    node_init(&victim, key1, "victim");
    node_init(&evil, key1, "evil");
    node_init(&a, key1, "a");
    /* evil knows the cluster key and claims victim's public key, signing with
     * its own secret key: the signature does not verify. */
    evil.self.pk = victim.pk;
    o = run(&evil, &a, 0, NULL, NULL, NULL);
    assert_int_equal(o.failed_at, 3);
    assert_int_equal(o.rc_a, SH_EUNAUTH);
    /* Same as the acceptor: the dialer refuses it at msg4. */
    node_init(&evil, key1, "evil");
    evil.self.pk = victim.pk;
    o = run(&a, &evil, 0, NULL, NULL, NULL);
    assert_int_equal(o.failed_at, 4);
    assert_int_equal(o.rc_d, SH_EUNAUTH);
}

static void advertised_id_must_match(void **state)
{
    struct node d, a, other;
    struct outcome o;

    (void)state;
    node_init(&d, key1, "d");
    node_init(&a, key1, "a");
    node_init(&other, key1, "other");
    o = run(&d, &a, disc_node_id(other.pk), NULL, NULL, NULL);
    assert_int_equal(o.failed_at, 4);
    assert_int_equal(o.rc_d, SH_EUNAUTH);
    assert_false(o.done_d);
}

static void version_size_and_order_errors(void **state)
{
    struct node d, a;
    struct disc_hs hd, ha;
    uint8_t buf[DISC_HS_MAX_MSG + 8], out[DISC_HS_MAX_MSG];
    size_t len = 0, olen = 0;
    struct sh_err err;

    (void)state;
    node_init(&d, NULL, "d");
    node_init(&a, NULL, "a");

    disc_hs_init(&hd, DISC_HS_DIALER, &d.self, 0);
    disc_hs_init(&ha, DISC_HS_ACCEPTOR, &a.self, 0);
    assert_int_equal(disc_hs_step(&hd, NULL, 0, buf, &len, NULL), 0);
    buf[4] = 2; /* protocol version 2 */
    sh_err_clear(&err);
    assert_int_equal(disc_hs_step(&ha, buf, len, out, &olen, &err), SH_EPROTO);
    assert_non_null(strstr(err.msg, "version 2"));
    assert_int_equal(olen, 0);
    /* failed is final */
    assert_int_equal(disc_hs_step(&ha, buf, len, out, &olen, NULL), SH_EPROTO);

    /* oversize, empty, short records */
    disc_hs_init(&ha, DISC_HS_ACCEPTOR, &a.self, 0);
    memset(buf, 0, sizeof buf);
    assert_int_equal(disc_hs_step(&ha, buf, DISC_HS_MAX_MSG + 1, out, &olen, NULL), SH_EPROTO);
    disc_hs_init(&ha, DISC_HS_ACCEPTOR, &a.self, 0);
    assert_int_equal(disc_hs_step(&ha, buf, 0, out, &olen, NULL), SH_EPROTO);
    disc_hs_init(&ha, DISC_HS_ACCEPTOR, &a.self, 0);
    assert_int_equal(disc_hs_step(&ha, buf, DISC_HS_HELLO_LEN - 1, out, &olen, NULL), SH_EPROTO);
    /* the acceptor never speaks first; the dialer cannot be fed before it spoke */
    disc_hs_init(&ha, DISC_HS_ACCEPTOR, &a.self, 0);
    assert_int_equal(disc_hs_step(&ha, NULL, 0, out, &olen, NULL), SH_EPROTO);
    disc_hs_init(&hd, DISC_HS_DIALER, &d.self, 0);
    assert_int_equal(disc_hs_step(&hd, buf, DISC_HS_HELLO_LEN, out, &olen, NULL), SH_EPROTO);
    /* an AUTH-sized garbage record in place of the HELLO */
    disc_hs_init(&ha, DISC_HS_ACCEPTOR, &a.self, 0);
    assert_int_equal(disc_hs_step(&ha, buf, 200, out, &olen, NULL), SH_EPROTO);
    disc_hs_wipe(&hd);
    disc_hs_wipe(&ha);
}

static void replayed_handshake_fails(void **state)
{
    struct node d, a;
    uint8_t msgs[4][DISC_HS_MAX_MSG];
    size_t lens[4] = {0};
    struct disc_hs ha;
    uint8_t out[DISC_HS_MAX_MSG];
    size_t olen;
    struct outcome o;

    (void)state;
    node_init(&d, key1, "d");
    node_init(&a, key1, "a");
    o = run(&d, &a, 0, NULL, msgs, lens);
    assert_true(o.done_a);
    /* A recorded msg1 + msg3 replayed to a fresh acceptor: its new ephemeral
     * key changes the transcript, so the recorded proof does not fit. */
    disc_hs_init(&ha, DISC_HS_ACCEPTOR, &a.self, 0);
    assert_int_equal(disc_hs_step(&ha, msgs[0], lens[0], out, &olen, NULL), 0);
    assert_int_equal(disc_hs_step(&ha, msgs[2], lens[2], out, &olen, NULL), SH_EUNAUTH);
    assert_int_equal(olen, 0);
    disc_hs_wipe(&ha);
}

static void node_id_helpers(void **state)
{
    char s[17];
    uint64_t v = 0;
    uint8_t h[32], pk[32] = {1, 2, 3};

    (void)state;
    disc_node_id_str(0x0123456789abcdefULL, s);
    assert_string_equal(s, "0123456789abcdef");
    assert_true(disc_parse_node_id("0123456789ABCDEF", &v) && v == 0x0123456789abcdefULL);
    assert_false(disc_parse_node_id("0123456789abcde", &v));
    assert_false(disc_parse_node_id("0123456789abcdef0", &v));
    assert_false(disc_parse_node_id("0123456789abcdeg", &v));
    assert_false(disc_parse_node_id("", &v));
    /* the id is the first 8 hash bytes, in order */
    crypto_generichash(h, 32, pk, 32, NULL, 0);
    disc_node_id_str(disc_node_id(pk), s);
    for (int i = 0; i < 8; i++) {
        char b[3];
        snprintf(b, sizeof b, "%02x", h[i]);
        assert_memory_equal(s + 2 * i, b, 2);
    }
    /* fingerprints: stable, differ per key, never contain the key */
    char f1[17], f1b[17], f2[17], hex[65];
    disc_cluster_fingerprint(key1, f1);
    disc_cluster_fingerprint(key1, f1b);
    disc_cluster_fingerprint(key2, f2);
    assert_string_equal(f1, f1b);
    assert_string_not_equal(f1, f2);
    sodium_bin2hex(hex, sizeof hex, key1, 32);
    assert_null(strstr(hex, f1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(succeeds_with_and_without_key),
        cmocka_unit_test(wrong_cluster_key_refused_by_acceptor),
        cmocka_unit_test(every_tampered_byte_is_caught),
        cmocka_unit_test(impostor_identity_refused),
        cmocka_unit_test(advertised_id_must_match),
        cmocka_unit_test(version_size_and_order_errors),
        cmocka_unit_test(replayed_handshake_fails),
        cmocka_unit_test(node_id_helpers),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
