/* tests/discovery/harness.c: see harness.h. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "common/util.h"
#include "lib/test.h"

/* ---- recording disc instances -------------------------------------------- */

static void on_up(void *arg, uint64_t peer, const struct disc_link_info *info)
{
    struct tnode *n = arg;
    n->ups++;
    n->last_up_id = peer;
    n->last_info = *info;
}

static void on_down(void *arg, uint64_t peer, const char *reason)
{
    struct tnode *n = arg;
    n->downs++;
    n->last_down_id = peer;
    snprintf(n->last_reason, sizeof n->last_reason, "%s", reason);
}

static void on_msg(void *arg, uint64_t peer, uint8_t type, const uint8_t *data, size_t len)
{
    struct tnode *n = arg;
    (void)peer;
    n->msgs++;
    n->last_type = type;
    if (len >= sizeof n->last_msg)
        len = sizeof n->last_msg - 1;
    memcpy(n->last_msg, data, len);
    n->last_msg[len] = '\0';
}

void tnode_keys(struct tnode *n)
{
    memset(n, 0, sizeof *n);
    crypto_sign_keypair(n->pk, n->sk);
    n->id = disc_node_id(n->pk);
}

void tnode_config(struct tnode *n,
                  struct disc_config *cfg,
                  const uint8_t *cluster_key,
                  const char *name)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->node_id = n->id;
    cfg->public_key = n->pk;
    cfg->secret_key = n->sk;
    cfg->cluster_key = cluster_key;
    cfg->name = name;
    cfg->api_port = 52415;
    cfg->heartbeat_ms = 100;
    cfg->link_timeout_ms = 2000;
    cfg->handshake_timeout_ms = 2000;
    cfg->reconnect_min_ms = 50;
    cfg->reconnect_max_ms = 400;
}

void tnode_start(struct tnode *n, struct event_base *b, const struct disc_config *cfg)
{
    static const struct disc_callbacks cbs = {on_up, on_down, on_msg};
    struct sh_err err;

    sh_err_clear(&err);
    if (disc_new(b, cfg, &cbs, n, &n->d, &err) != 0)
        fail_msg("disc_new: %s", sh_err_msg(&err));
}

void tnode_stop(struct tnode *n)
{
    disc_free(n->d);
    n->d = NULL;
}

/* ---- running the loop ---------------------------------------------------- */

struct until {
    struct event_base *b;
    bool (*pred)(void *);
    void *arg;
    uint64_t deadline;
    bool met;
};

static void tick(evutil_socket_t fd, short what, void *arg)
{
    struct until *u = arg;
    (void)fd;
    (void)what;
    if (u->pred && u->pred(u->arg)) {
        u->met = true;
        event_base_loopbreak(u->b);
    } else if (sh_now_ns() >= u->deadline) {
        event_base_loopbreak(u->b);
    }
}

bool run_until(struct event_base *b, bool (*pred)(void *), void *arg, int ms)
{
    struct until u = {b, pred, arg, sh_now_ns() + (uint64_t)ms * 1000000u, false};
    struct timeval tv = {0, 5000};
    struct event *ev = event_new(b, -1, EV_PERSIST, tick, &u);

    assert_non_null(ev);
    if (pred && pred(arg)) {
        event_free(ev);
        return true;
    }
    event_add(ev, &tv);
    event_base_dispatch(b);
    event_free(ev);
    return u.met;
}

void run_for(struct event_base *b, int ms)
{
    run_until(b, NULL, NULL, ms);
}

/* ---- the raw peer -------------------------------------------------------- */

void raw_connect(struct raw *r, uint16_t port, const uint8_t *cluster_key)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};

    memset(r, 0, sizeof *r);
    crypto_sign_keypair(r->pk, r->sk);
    r->self.pk = r->pk;
    r->self.sk = r->sk;
    r->self.cluster_key = cluster_key;
    r->self.incarnation = 1;
    r->self.name = "raw";
    disc_hs_init(&r->hs, DISC_HS_DIALER, &r->self, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(r->fd >= 0);
    /* loopback connect completes through the kernel's backlog at once */
    assert_int_equal(connect(r->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    fcntl(r->fd, F_SETFL, fcntl(r->fd, F_GETFL) | O_NONBLOCK);
}

void raw_close(struct raw *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    disc_hs_wipe(&r->hs);
}

void raw_write(struct raw *r, struct event_base *b, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t deadline = sh_now_ns() + 5000000000ull;

    while (len > 0) {
        ssize_t w = send(r->fd, p, len, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            len -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return; /* the other side closed: tests look at that separately */
        assert_true(sh_now_ns() < deadline);
        event_base_loop(b, EVLOOP_NONBLOCK);
        usleep(1000);
    }
}

void raw_send_record(struct raw *r, struct event_base *b, const uint8_t *body, size_t len)
{
    uint8_t hdr[4];
    sh_put_u32(hdr, (uint32_t)len);
    raw_write(r, b, hdr, 4);
    raw_write(r, b, body, len);
}

/* Runs the loop once and reads what the peer sent, if anything. */
static void pump(struct raw *r, struct event_base *b)
{
    struct pollfd p = {.fd = r->fd, .events = POLLIN};
    ssize_t n;

    event_base_loop(b, EVLOOP_NONBLOCK);
    if (r->eof || r->in_len == sizeof r->in || poll(&p, 1, 2) <= 0)
        return;
    n = recv(r->fd, r->in + r->in_len, sizeof r->in - r->in_len, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        r->eof = true;
    else if (n > 0)
        r->in_len += (size_t)n;
}

int raw_recv_record(
    struct raw *r, struct event_base *b, uint8_t *body, size_t cap, size_t *len, int ms)
{
    uint64_t deadline = sh_now_ns() + (uint64_t)ms * 1000000u;

    for (;;) {
        if (r->in_len >= 4) {
            size_t l = (size_t)r->in[0] | (size_t)r->in[1] << 8 | (size_t)r->in[2] << 16 |
                       (size_t)r->in[3] << 24;
            assert_true(l <= cap && l + 4 <= sizeof r->in);
            if (r->in_len >= 4 + l) {
                memcpy(body, r->in + 4, l);
                memmove(r->in, r->in + 4 + l, r->in_len - 4 - l);
                r->in_len -= 4 + l;
                *len = l;
                return 0;
            }
        }
        if (r->eof)
            return -1;
        if (sh_now_ns() >= deadline)
            return -2;
        pump(r, b);
    }
}

bool raw_wait_closed(struct raw *r, struct event_base *b, int ms, size_t *extra)
{
    uint64_t deadline = sh_now_ns() + (uint64_t)ms * 1000000u;
    size_t seen = 0;

    while (!r->eof && sh_now_ns() < deadline) {
        pump(r, b);
        seen += r->in_len;
        r->in_len = 0;
    }
    if (extra)
        *extra = seen;
    return r->eof;
}

void raw_handshake(struct raw *r, struct event_base *b)
{
    uint8_t out[DISC_HS_MAX_MSG], in[DISC_HS_MAX_MSG];
    size_t olen, ilen;
    struct sh_err err;

    sh_err_clear(&err);
    assert_int_equal(disc_hs_step(&r->hs, NULL, 0, out, &olen, &err), 0);
    raw_send_record(r, b, out, olen);
    assert_int_equal(raw_recv_record(r, b, in, sizeof in, &ilen, 3000), 0);
    assert_int_equal(disc_hs_step(&r->hs, in, ilen, out, &olen, &err), 0);
    raw_send_record(r, b, out, olen);
    assert_int_equal(raw_recv_record(r, b, in, sizeof in, &ilen, 3000), 0);
    if (disc_hs_step(&r->hs, in, ilen, out, &olen, &err) != 0)
        fail_msg("raw handshake: %s", sh_err_msg(&err));
    assert_int_equal(r->hs.state, DISC_HS_DONE);
}

size_t
raw_seal(struct raw *r, uint8_t type, const void *payload, size_t len, uint8_t *out, size_t cap)
{
    size_t n = disc_frame_size(len);
    assert_true(n <= cap);
    assert_int_equal(disc_frame_seal(&r->hs.tx, type, payload, len, out), 0);
    return n;
}
