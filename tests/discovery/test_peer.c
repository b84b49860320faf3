/* tests/discovery/test_peer.c: a disc instance against a hand-driven peer
 * that misbehaves on the wire: wrong cluster key with application bytes
 * pipelined behind it, tampered handshake, impostor identity, oversize,
 * tampered, replayed and reordered frames, silence, a reader that stops
 * reading, unknown types, and a peer that restarts. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <sodium.h>

#include "common/util.h"
#include "harness.h"
#include "lib/test.h"

static uint8_t key1[32], key2[32];
static struct event_base *base;
static struct tnode srv;

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    randombytes_buf(key1, sizeof key1);
    randombytes_buf(key2, sizeof key2);
    return 0;
}

/* A fresh server node with key1 before each test. */
static int each_setup(void **state)
{
    struct disc_config c;

    (void)state;
    base = event_base_new();
    tnode_keys(&srv);
    tnode_config(&srv, &c, key1, "server");
    c.handshake_timeout_ms = 400;
    c.link_timeout_ms = 60000; /* tests that need it set their own */
    c.max_output = 1u << 20;
    c.max_frame = 64u << 10;
    tnode_start(&srv, base, &c);
    return 0;
}

static int each_teardown(void **state)
{
    (void)state;
    tnode_stop(&srv);
    event_base_free(base);
    return 0;
}

static uint16_t port(void)
{
    return disc_peer_port(srv.d);
}

static bool srv_up(void *arg)
{
    (void)arg;
    return srv.ups > 0;
}

static bool srv_down(void *arg)
{
    (void)arg;
    return srv.downs > 0;
}

/* Dialer with the wrong key sends msg3 and an application frame right
 * behind it: it gets no msg4, the connection closes, nothing is delivered. */
static void wrong_key_refused_before_app_bytes(void **state)
{
    static struct raw r;
    uint8_t out[DISC_HS_MAX_MSG], in[DISC_HS_MAX_MSG], frame[256];
    size_t olen, ilen, flen, extra = 99;
    const uint8_t *keys[2] = {key2, NULL};

    (void)state;
    for (int i = 0; i < 2; i++) {
        raw_connect(&r, port(), keys[i]);
        assert_int_equal(disc_hs_step(&r.hs, NULL, 0, out, &olen, NULL), 0);
        raw_send_record(&r, base, out, olen);
        assert_int_equal(raw_recv_record(&r, base, in, sizeof in, &ilen, 3000), 0);
        /* what the server revealed before the proof: its ephemeral key only */
        assert_int_equal(ilen, DISC_HS_HELLO_LEN);
        assert_null(memmem(in, ilen, srv.pk, 32));
        assert_int_equal(disc_hs_step(&r.hs, in, ilen, out, &olen, NULL), 0);
        flen = raw_seal(&r, DISC_MSG_RAFT, "smuggled", 8, frame, sizeof frame);
        raw_send_record(&r, base, out, olen);
        raw_write(&r, base, frame, flen);
        assert_true(raw_wait_closed(&r, base, 3000, &extra));
        assert_int_equal(extra, 0); /* not a byte back: no msg4 */
        assert_int_equal(srv.msgs, 0);
        assert_int_equal(srv.ups, 0);
        raw_close(&r);
    }
}

static void tampered_handshake_refused(void **state)
{
    static struct raw r;
    uint8_t out[DISC_HS_MAX_MSG], in[DISC_HS_MAX_MSG];
    size_t olen, ilen;

    (void)state;
    /* one flipped bit in msg3's encrypted part */
    raw_connect(&r, port(), key1);
    assert_int_equal(disc_hs_step(&r.hs, NULL, 0, out, &olen, NULL), 0);
    raw_send_record(&r, base, out, olen);
    assert_int_equal(raw_recv_record(&r, base, in, sizeof in, &ilen, 3000), 0);
    assert_int_equal(disc_hs_step(&r.hs, in, ilen, out, &olen, NULL), 0);
    out[olen - 20] ^= 0x40;
    raw_send_record(&r, base, out, olen);
    assert_true(raw_wait_closed(&r, base, 3000, NULL));
    raw_close(&r);
    /* garbage instead of a HELLO, and a record over the handshake limit */
    raw_connect(&r, port(), key1);
    raw_send_record(&r, base, (const uint8_t *)"GET / HTTP/1.0\r\n\r\n", 18);
    assert_true(raw_wait_closed(&r, base, 3000, NULL));
    raw_close(&r);
    raw_connect(&r, port(), key1);
    raw_write(&r, base, "\xff\xff\xff\x7f", 4);
    assert_true(raw_wait_closed(&r, base, 3000, NULL));
    raw_close(&r);
    assert_int_equal(srv.ups, 0);
}

static void impostor_refused(void **state)
{
    static struct raw r;
    struct tnode victim;

    (void)state;
    tnode_keys(&victim);
    raw_connect(&r, port(), key1);
    /* holds the cluster key, claims victim's public key, signs with its own */
    r.self.pk = victim.pk;
    disc_hs_init(&r.hs, DISC_HS_DIALER, &r.self, 0);
    {
        uint8_t out[DISC_HS_MAX_MSG], in[DISC_HS_MAX_MSG];
        size_t olen, ilen;
        assert_int_equal(disc_hs_step(&r.hs, NULL, 0, out, &olen, NULL), 0);
        raw_send_record(&r, base, out, olen);
        assert_int_equal(raw_recv_record(&r, base, in, sizeof in, &ilen, 3000), 0);
        assert_int_equal(disc_hs_step(&r.hs, in, ilen, out, &olen, NULL), 0);
        raw_send_record(&r, base, out, olen);
    }
    assert_true(raw_wait_closed(&r, base, 3000, NULL));
    assert_int_equal(srv.ups, 0);
    raw_close(&r);
}

/* Completes a handshake as a good peer and waits for the server's link_up. */
static void good_peer(struct raw *r)
{
    raw_connect(r, port(), key1);
    raw_handshake(r, base);
    assert_true(run_until(base, srv_up, NULL, 3000));
    assert_int_equal(srv.last_up_id, disc_node_id(r->pk));
}

static void oversize_frame_drops_link(void **state)
{
    static struct raw r;
    uint8_t hdr[4];

    (void)state;
    good_peer(&r);
    sh_put_u32(hdr, (64u << 10) + 1 + 16 + 1); /* one byte over max_frame */
    raw_write(&r, base, hdr, 4);
    assert_true(run_until(base, srv_down, NULL, 3000));
    assert_non_null(strstr(srv.last_reason, "exceeds"));
    assert_true(raw_wait_closed(&r, base, 3000, NULL));
    raw_close(&r);
}

static void tampered_frame_drops_link(void **state)
{
    static struct raw r;
    uint8_t f[256];
    size_t n;

    (void)state;
    good_peer(&r);
    n = raw_seal(&r, DISC_MSG_RAFT, "payload", 7, f, sizeof f);
    f[n - 3] ^= 1;
    raw_write(&r, base, f, n);
    assert_true(run_until(base, srv_down, NULL, 3000));
    assert_non_null(strstr(srv.last_reason, "authentication"));
    assert_int_equal(srv.msgs, 0);
    raw_close(&r);
}

static void replayed_frame_drops_link(void **state)
{
    static struct raw r;
    uint8_t f[256];
    size_t n;

    (void)state;
    good_peer(&r);
    n = raw_seal(&r, DISC_MSG_RAFT, "once", 4, f, sizeof f);
    raw_write(&r, base, f, n);
    raw_write(&r, base, f, n);
    assert_true(run_until(base, srv_down, NULL, 3000));
    assert_int_equal(srv.msgs, 1); /* the first copy only */
    assert_string_equal(srv.last_msg, "once");
    raw_close(&r);
}

static void reordered_frames_drop_link(void **state)
{
    static struct raw r;
    uint8_t f1[256], f2[256];
    size_t n1, n2;

    (void)state;
    good_peer(&r);
    n1 = raw_seal(&r, DISC_MSG_RAFT, "first", 5, f1, sizeof f1);
    n2 = raw_seal(&r, DISC_MSG_RAFT, "second", 6, f2, sizeof f2);
    raw_write(&r, base, f2, n2);
    raw_write(&r, base, f1, n1);
    assert_true(run_until(base, srv_down, NULL, 3000));
    assert_int_equal(srv.msgs, 0);
    raw_close(&r);
}

static void unknown_type_drops_link(void **state)
{
    static struct raw r;
    uint8_t f[64];
    size_t n;

    (void)state;
    good_peer(&r);
    n = raw_seal(&r, 200, "", 0, f, sizeof f);
    raw_write(&r, base, f, n);
    assert_true(run_until(base, srv_down, NULL, 3000));
    assert_non_null(strstr(srv.last_reason, "unknown message type 200"));
    raw_close(&r);
}

static void silent_peer_times_out(void **state)
{
    static struct raw r;

    (void)state;
    /* connects and says nothing: handshake timeout (400 ms here) */
    raw_connect(&r, port(), key1);
    assert_true(raw_wait_closed(&r, base, 3000, NULL));
    raw_close(&r);
    assert_int_equal(srv.ups, 0);
}

static void silent_after_handshake_times_out(void **state)
{
    static struct raw r;
    struct disc_config c;

    (void)state;
    tnode_stop(&srv);
    tnode_keys(&srv);
    tnode_config(&srv, &c, key1, "server");
    c.heartbeat_ms = 100;
    c.link_timeout_ms = 500;
    tnode_start(&srv, base, &c);
    good_peer(&r); /* and then never a frame, not even a PONG */
    assert_true(run_until(base, srv_down, NULL, 3000));
    assert_non_null(strstr(srv.last_reason, "link timeout"));
    raw_close(&r);
}

static void slow_reader_hits_output_cap(void **state)
{
    static struct raw r;
    static uint8_t big[60u << 10];
    struct sh_err err;
    int rc = 0, sends;

    (void)state;
    good_peer(&r); /* ...which never reads again */
    memset(big, 'x', sizeof big);
    for (sends = 0; sends < 2000; sends++) {
        sh_err_clear(&err);
        rc = disc_send(srv.d, disc_node_id(r.pk), DISC_MSG_STATE, big, sizeof big, &err);
        if (rc)
            break;
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
    /* Kernel buffers take a few MB, then the 1 MiB queue fills. */
    assert_int_equal(rc, SH_ECLOSED);
    assert_non_null(strstr(err.msg, "not reading"));
    assert_true(run_until(base, srv_down, NULL, 3000));
    assert_non_null(strstr(srv.last_reason, "not reading"));
    raw_close(&r);
}

static void restarted_peer_replaces_link(void **state)
{
    static struct raw r1, r2;

    (void)state;
    good_peer(&r1);
    /* the same identity again, from a new incarnation, while the old link
     * still looks fine: the old one is the dead one */
    raw_connect(&r2, port(), key1);
    memcpy(r2.pk, r1.pk, sizeof r2.pk);
    memcpy(r2.sk, r1.sk, sizeof r2.sk);
    r2.self.incarnation = 2;
    disc_hs_init(&r2.hs, DISC_HS_DIALER, &r2.self, 0);
    raw_handshake(&r2, base);
    assert_true(run_until(base, srv_down, NULL, 3000));
    assert_non_null(strstr(srv.last_reason, "restarted"));
    assert_int_equal(srv.ups, 2);
    assert_int_equal(disc_links(srv.d, NULL, 0), 1);
    assert_true(raw_wait_closed(&r1, base, 3000, NULL));
    raw_close(&r1);
    raw_close(&r2);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, each_setup, each_teardown)
    const struct CMUnitTest tests[] = {
        T(wrong_key_refused_before_app_bytes),
        T(tampered_handshake_refused),
        T(impostor_refused),
        T(oversize_frame_drops_link),
        T(tampered_frame_drops_link),
        T(replayed_frame_drops_link),
        T(reordered_frames_drop_link),
        T(unknown_type_drops_link),
        T(silent_peer_times_out),
        T(silent_after_handshake_times_out),
        T(slow_reader_hits_output_cap),
        T(restarted_peer_replaces_link),
    };
#undef T
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, NULL);
}
