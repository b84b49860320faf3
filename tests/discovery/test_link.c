/* tests/discovery/test_link.c: disc instances talking to each other over
 * loopback TCP inside one libevent loop: links, messages, one link per pair
 * when both dial, ourselves in the static list, cluster keys, goodbye,
 * configuration errors. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "harness.h"
#include "lib/test.h"

static uint8_t key1[32], key2[32];
static struct event_base *base;

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    randombytes_buf(key1, sizeof key1);
    randombytes_buf(key2, sizeof key2);
    return 0;
}

static int each_setup(void **state)
{
    (void)state;
    base = event_base_new();
    return base ? 0 : -1;
}

static int each_teardown(void **state)
{
    (void)state;
    event_base_free(base);
    return 0;
}

static void peer_addr(char *out, size_t cap, const struct tnode *n)
{
    snprintf(out, cap, "127.0.0.1:%u", (unsigned)disc_peer_port(n->d));
}

struct pair {
    struct tnode *a, *b;
};

static bool both_up(void *arg)
{
    struct pair *p = arg;
    return p->a->ups > 0 && p->b->ups > 0;
}

static bool b_has_msg(void *arg)
{
    return ((struct pair *)arg)->b->msgs > 0;
}

static bool a_has_msg(void *arg)
{
    return ((struct pair *)arg)->a->msgs > 0;
}

static bool b_down(void *arg)
{
    return ((struct pair *)arg)->b->downs > 0;
}

static void link_messages_and_goodbye(void **state)
{
    struct tnode a, b;
    struct disc_config ca, cb;
    struct pair p = {&a, &b};
    struct disc_link_info li[4];
    char addr[64];
    const char *peers[1];
    struct sh_err err;

    (void)state;
    tnode_keys(&a);
    tnode_keys(&b);
    tnode_config(&b, &cb, key1, "bravo");
    tnode_start(&b, base, &cb);
    peer_addr(addr, sizeof addr, &b);
    peers[0] = addr;
    tnode_config(&a, &ca, key1, "alpha");
    ca.static_peers = peers;
    ca.n_static_peers = 1;
    ca.api_port = 1234;
    tnode_start(&a, base, &ca);

    assert_true(run_until(base, both_up, &p, 5000));
    assert_int_equal(a.last_up_id, b.id);
    assert_int_equal(b.last_up_id, a.id);
    assert_string_equal(a.last_info.name, "bravo");
    assert_string_equal(b.last_info.name, "alpha");
    assert_int_equal(b.last_info.api_port, 1234);
    assert_int_equal(b.last_info.peer_port, disc_peer_port(a.d));
    assert_string_equal(b.last_info.addr, "127.0.0.1");
    assert_true(a.last_info.dialed);
    assert_false(b.last_info.dialed);
    assert_memory_equal(b.last_info.pubkey, a.pk, 32);

    assert_int_equal(disc_send(a.d, b.id, DISC_MSG_RAFT, "vote for me", 11, NULL), 0);
    assert_true(run_until(base, b_has_msg, &p, 3000));
    assert_int_equal(b.last_type, DISC_MSG_RAFT);
    assert_string_equal(b.last_msg, "vote for me");
    assert_int_equal(disc_send(b.d, a.id, DISC_MSG_FORWARD, "ok", 2, NULL), 0);
    assert_true(run_until(base, a_has_msg, &p, 3000));
    assert_string_equal(a.last_msg, "ok");

    /* heartbeats measure the round trip */
    run_for(base, 300);
    assert_int_equal(disc_links(a.d, li, 4), 1);
    assert_int_equal(li[0].peer_id, b.id);
    assert_true(li[0].rtt_us >= 0);
    assert_int_equal(disc_links(a.d, li, 0), 1);

    /* send errors */
    sh_err_clear(&err);
    assert_int_equal(disc_send(a.d, b.id, DISC_MSG_PING, "", 0, &err), SH_EINVAL);
    assert_int_equal(disc_send(a.d, b.id, 200, "", 0, NULL), SH_EINVAL);
    assert_int_equal(disc_send(a.d, a.id, DISC_MSG_RAFT, "", 0, &err), SH_ENOTFOUND);
    assert_int_equal(disc_send(a.d, b.id, DISC_MSG_RAFT, "", (8u << 20) + 1, &err), SH_ETOOBIG);

    /* a clean stop says goodbye: the other side knows at once */
    tnode_stop(&a);
    assert_true(run_until(base, b_down, &p, 1000));
    assert_int_equal(b.last_down_id, a.id);
    if (!strstr(b.last_reason, "goodbye"))
        fail_msg("reason: %s", b.last_reason);
    assert_int_equal(disc_links(b.d, li, 4), 0);
    tnode_stop(&b);
}

/* A port nobody listens on right now. */
static uint16_t free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void both_dial_one_link(void **state)
{
    struct tnode a, b;
    struct disc_config ca, cb;
    struct pair p = {&a, &b};
    struct disc_link_info la, lb;
    char addr_a[64], addr_b[64];
    const char *pa[1] = {addr_b}, *pb[1] = {addr_a};

    (void)state;
    /* Both start in the same loop turn and dial each other at once; repeat
     * to meet the different orders in which the two handshakes finish. */
    for (int round = 0; round < 8; round++) {
        tnode_keys(&a);
        tnode_keys(&b);
        tnode_config(&a, &ca, NULL, "a");
        tnode_config(&b, &cb, NULL, "b");
        ca.peer_port = free_port();
        cb.peer_port = free_port();
        snprintf(addr_a, sizeof addr_a, "127.0.0.1:%u", (unsigned)ca.peer_port);
        snprintf(addr_b, sizeof addr_b, "127.0.0.1:%u", (unsigned)cb.peer_port);
        ca.static_peers = pa;
        ca.n_static_peers = 1;
        cb.static_peers = pb;
        cb.n_static_peers = 1;
        tnode_start(&a, base, &ca);
        tnode_start(&b, base, &cb);
        assert_true(run_until(base, both_up, &p, 5000));
        run_for(base, 500); /* any flapping would show as more ups or downs */
        assert_int_equal(a.ups, 1);
        assert_int_equal(b.ups, 1);
        assert_int_equal(a.downs, 0);
        assert_int_equal(b.downs, 0);
        assert_int_equal(disc_links(a.d, &la, 1), 1);
        assert_int_equal(disc_links(b.d, &lb, 1), 1);
        /* the same connection on both sides, dialed by exactly one of them */
        assert_true(la.dialed != lb.dialed);
        tnode_stop(&a);
        tnode_stop(&b);
    }
}

static void ourselves_in_static_list(void **state)
{
    struct tnode a, b;
    struct disc_config ca, cb;
    struct pair p = {&a, &b};
    char self_addr[64], addr_b[64];
    const char *peers[2];

    (void)state;
    tnode_keys(&a);
    tnode_keys(&b);
    tnode_config(&b, &cb, NULL, "b");
    tnode_start(&b, base, &cb);
    peer_addr(addr_b, sizeof addr_b, &b);
    tnode_config(&a, &ca, NULL, "a");
    /* the same list on every node names every node, this one included */
    ca.peer_port = free_port();
    snprintf(self_addr, sizeof self_addr, "127.0.0.1:%u", (unsigned)ca.peer_port);
    peers[0] = self_addr;
    peers[1] = addr_b;
    ca.static_peers = peers;
    ca.n_static_peers = 2;
    tnode_start(&a, base, &ca);
    assert_true(run_until(base, both_up, &p, 5000));
    run_for(base, 600);
    assert_int_equal(a.ups, 1);
    assert_int_equal(a.last_up_id, b.id);
    assert_int_equal(a.downs, 0);
    assert_int_equal(disc_links(a.d, NULL, 0), 1);
    tnode_stop(&a);
    tnode_stop(&b);
}

/* Node a (key ka) dials node b (key kb); neither may ever see a link. */
static void never_links(const uint8_t *ka, const uint8_t *kb)
{
    struct tnode a, b;
    struct disc_config ca, cb;
    char addr[64];
    const char *peers[1] = {addr};

    tnode_keys(&a);
    tnode_keys(&b);
    tnode_config(&b, &cb, kb, "b");
    tnode_start(&b, base, &cb);
    peer_addr(addr, sizeof addr, &b);
    tnode_config(&a, &ca, ka, "a");
    ca.static_peers = peers;
    ca.n_static_peers = 1;
    tnode_start(&a, base, &ca);
    run_for(base, 1200); /* several redials at 50..400 ms */
    assert_int_equal(a.ups, 0);
    assert_int_equal(b.ups, 0);
    assert_int_equal(a.msgs + b.msgs, 0);
    tnode_stop(&a);
    tnode_stop(&b);
}

static void cluster_key_mismatch_never_links(void **state)
{
    (void)state;
    never_links(key1, key2);
    never_links(key2, key1);
    never_links(NULL, key1);
    never_links(key1, NULL);
}

static void bad_configs_refused(void **state)
{
    struct tnode a;
    struct disc_config c;
    struct disc *d = NULL;
    struct disc_callbacks cbs = {0};
    struct sh_err err;
    char longname[80];
    const char *bad_peers[] = {"",       ":80",  "host:0", "host:65536",
                               "host:x", "[::1", "[::1]x", "a b:1"};
    const char *good_peers[] = {"host", "host:1", "[::1]:2", "::1", "10.0.0.1:52416"};

    (void)state;
    tnode_keys(&a);
    tnode_config(&a, &c, NULL, "a");
    c.node_id ^= 1;
    assert_int_equal(disc_new(base, &c, &cbs, NULL, &d, &err), SH_EINVAL);
    assert_non_null(strstr(err.msg, "node_id"));
    tnode_config(&a, &c, NULL, "a");
    c.secret_key = a.pk; /* not the matching secret key */
    c.public_key = a.pk;
    c.node_id = a.id;
    assert_int_equal(disc_new(base, &c, &cbs, NULL, &d, NULL), SH_EINVAL);
    tnode_config(&a, &c, NULL, "");
    assert_int_equal(disc_new(base, &c, &cbs, NULL, &d, NULL), SH_EINVAL);
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    tnode_config(&a, &c, NULL, longname);
    assert_int_equal(disc_new(base, &c, &cbs, NULL, &d, NULL), SH_EINVAL);
    tnode_config(&a, &c, NULL, "a");
    c.link_timeout_ms = c.heartbeat_ms;
    assert_int_equal(disc_new(base, &c, &cbs, NULL, &d, NULL), SH_EINVAL);
    tnode_config(&a, &c, NULL, "a");
    c.max_frame = DISC_MAX_FRAME_LIMIT + 1;
    assert_int_equal(disc_new(base, &c, &cbs, NULL, &d, NULL), SH_EINVAL);
    for (size_t i = 0; i < sizeof bad_peers / sizeof bad_peers[0]; i++) {
        tnode_config(&a, &c, NULL, "a");
        c.static_peers = &bad_peers[i];
        c.n_static_peers = 1;
        sh_err_clear(&err);
        assert_int_equal(disc_new(base, &c, &cbs, NULL, &d, &err), SH_EINVAL);
        assert_non_null(strstr(err.msg, "static peer"));
    }
    assert_null(d);
    tnode_config(&a, &c, NULL, "a");
    c.static_peers = good_peers;
    c.n_static_peers = sizeof good_peers / sizeof good_peers[0];
    c.reconnect_min_ms = 10000; /* no dialing needed here */
    c.reconnect_max_ms = 10000;
    assert_int_equal(disc_new(base, &c, &cbs, NULL, &d, &err), 0);
    disc_free(d);
    /* the port in use is an error naming it */
    tnode_config(&a, &c, NULL, "a");
    assert_int_equal(disc_new(base, &c, &cbs, NULL, &d, NULL), 0);
    struct disc *d2 = NULL;
    c.peer_port = disc_peer_port(d);
    sh_err_clear(&err);
    assert_int_equal(disc_new(base, &c, &cbs, NULL, &d2, &err), SH_EIO);
    assert_non_null(strstr(err.msg, "listen"));
    disc_free(d);
    disc_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(link_messages_and_goodbye, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(both_dial_one_link, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(ourselves_in_static_list, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(cluster_key_mismatch_never_links, each_setup,
                                        each_teardown),
        cmocka_unit_test_setup_teardown(bad_configs_refused, each_setup, each_teardown),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, NULL);
}
