/* discovery/link.c: one TCP connection to a peer, on a libevent
 * bufferevent: connecting, the handshake (handshake.c), encrypted frames
 * (frame.c), heartbeats, and closing. Which connection a peer keeps, and
 * redialing, are disc.c's business.
 *
 *   CONNECTING --connected--> HANDSHAKE --done--> UP --+--> CLOSING --flushed/1 s--> freed
 *   (accepted) -------------> HANDSHAKE               |
 *   any state --error, EOF, handshake timeout, link timeout, GOODBYE, cap--+
 *
 * Invariants:
 *  1. No application byte is parsed before the handshake is DONE: until then
 *     every record goes to disc_hs_step, which refuses anything unexpected.
 *  2. Nothing we buffer is unbounded: a handshake record is <= 512 bytes, a
 *     frame <= max_frame (checked on its 4-byte header, before it is read),
 *     reading pauses at one whole frame (read high watermark), and the output
 *     queue is capped (max_output: over it, the link is dropped).
 *  3. Every wait has a deadline: connect + handshake (hs_timer), no frame
 *     for link_timeout once up (bufferevent read timeout), 1 s to flush a
 *     GOODBYE while closing.
 *  4. A freed link is never touched again: functions that may close return
 *     false, and callers return at once.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <sodium.h>

#include "common/log.h"
#include "common/util.h"
#include "discovery/internal.h"

#define MOD             "disc"
#define MAX_HANDSHAKING 64   /* connections not yet authenticated */
#define CLOSE_FLUSH_MS  1000 /* how long a GOODBYE may take to leave */

static void link_free(struct disc_link *l);

static struct timeval ms_tv(uint32_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* "1.2.3.4" for IPv4 and IPv4-mapped IPv6, else the IPv6 text. */
static void addr_str(const struct sockaddr *sa, char *out, size_t cap, uint16_t *port)
{
    out[0] = '\0';
    *port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, out, (socklen_t)cap);
        *port = ntohs(s4->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
            inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], out, (socklen_t)cap);
        else
            inet_ntop(AF_INET6, &s6->sin6_addr, out, (socklen_t)cap);
        *port = ntohs(s6->sin6_port);
    }
}

static void note_peer_addr(struct disc_link *l)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    uint16_t port;

    if (getpeername(bufferevent_getfd(l->bev), (struct sockaddr *)&ss, &sl) != 0)
        return;
    addr_str((struct sockaddr *)&ss, l->info.addr, sizeof l->info.addr, &port);
    snprintf(l->remote, sizeof l->remote, "%s:%u", l->info.addr, (unsigned)port);
}

static void set_nodelay(struct disc_link *l)
{
    int one = 1;
    /* Raft heartbeats and votes are small and latency-bound. */
    setsockopt(bufferevent_getfd(l->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---- sending ------------------------------------------------------------- */

static int send_record(struct disc_link *l, const uint8_t *body, size_t len)
{
    uint8_t hdr[DISC_FRAME_HDR];

    sh_put_u32(hdr, (uint32_t)len);
    if (bufferevent_write(l->bev, hdr, sizeof hdr) != 0 || bufferevent_write(l->bev, body, len))
        return SH_ENOMEM;
    return 0;
}

static int
queue_frame(struct disc_link *l, uint8_t type, const void *data, size_t len, struct sh_err *err)
{
    struct evbuffer *out = bufferevent_get_output(l->bev);
    size_t size = disc_frame_size(len), queued = evbuffer_get_length(out);
    struct evbuffer_iovec v;

    if (queued + size > l->d->max_output) {
        char why[96];
        snprintf(why, sizeof why, "peer is not reading: send queue over %zu bytes",
                 l->d->max_output);
        disc_link_close_later(l, why);
        return sh_err_set(err, SH_ECLOSED, "link to %s: %s", l->remote, why);
    }
    /* One contiguous extent, sealed in place: no copy of the payload beyond
     * the one into the output buffer. */
    if (evbuffer_reserve_space(out, (ev_ssize_t)size, &v, 1) < 1 || v.iov_len < size)
        return sh_err_set(err, SH_ENOMEM, "link to %s: out of memory", l->remote);
    if (disc_frame_seal(&l->hs.tx, type, data, len, v.iov_base) != 0) {
        disc_link_close_later(l, "frame counter exhausted");
        return sh_err_set(err, SH_ECLOSED, "link to %s: frame counter exhausted", l->remote);
    }
    v.iov_len = size;
    if (evbuffer_commit_space(out, &v, 1) != 0)
        return sh_err_set(err, SH_ENOMEM, "link to %s: out of memory", l->remote);
    return 0;
}

int disc_link_send(
    struct disc_link *l, uint8_t type, const void *data, size_t len, struct sh_err *err)
{
    if (l->state != DISC_LINK_UP)
        return sh_err_set(err, SH_ECLOSED, "link to %s is closing", l->remote);
    return queue_frame(l, type, data, len, err);
}

static void queue_goodbye(struct disc_link *l, int code, const char *why)
{
    uint8_t msg[64];
    size_t n = strlen(why);

    if (n > sizeof msg - 1)
        n = sizeof msg - 1;
    msg[0] = (uint8_t)code;
    memcpy(msg + 1, why, n);
    queue_frame(l, DISC_MSG_GOODBYE, msg, 1 + n, NULL);
}

/* ---- closing ------------------------------------------------------------- */

static void link_free(struct disc_link *l)
{
    struct disc *d = l->d;

    if (l->state == DISC_LINK_CONNECTING || l->state == DISC_LINK_HANDSHAKE)
        d->n_handshaking--;
    if (l->prev)
        l->prev->next = l->next;
    else
        d->links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    if (l->target && l->target->link == l)
        l->target->link = NULL;
    event_free(l->hs_timer);
    event_free(l->hb_timer);
    event_free(l->close_ev);
    /* Safe inside the bufferevent's own callbacks: libevent defers the free. */
    bufferevent_free(l->bev);
    disc_hs_wipe(&l->hs);
    free(l);
}

static void closing_write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    link_free(arg); /* output drained: the GOODBYE is out */
}

static void closing_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;
    link_free(arg);
}

static void closing_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    link_free(arg);
}

void disc_link_close(struct disc_link *l, const char *reason, int goodbye_code)
{
    struct timeval tv = ms_tv(CLOSE_FLUSH_MS);
    enum disc_link_state was = l->state;

    if (was == DISC_LINK_CLOSING)
        return;
    if (was == DISC_LINK_UP)
        SH_LOG(l->active ? SH_LOG_INFO : SH_LOG_DEBUG, MOD, "link %s (%s) closed: %s", l->remote,
               l->info.name, reason);
    else
        SH_LOG(SH_LOG_DEBUG, MOD, "connection %s closed: %s", l->remote, reason);
    if (was == DISC_LINK_CONNECTING || was == DISC_LINK_HANDSHAKE)
        l->d->n_handshaking--;
    /* CLOSING first: what disc_on_closed and the callbacks it runs see of
     * this peer must not include this link any more. */
    l->state = DISC_LINK_CLOSING;
    disc_on_closed(l, reason);
    if (goodbye_code >= 0 && was == DISC_LINK_UP)
        queue_goodbye(l, goodbye_code, reason);
    event_del(l->hb_timer);
    event_del(l->close_ev);
    if (evbuffer_get_length(bufferevent_get_output(l->bev)) == 0) {
        link_free(l);
        return;
    }
    /* Let what is queued (at least the GOODBYE) leave, for at most 1 s. */
    bufferevent_disable(l->bev, EV_READ);
    bufferevent_set_timeouts(l->bev, NULL, NULL);
    bufferevent_setcb(l->bev, NULL, closing_write_cb, closing_event_cb, l);
    event_del(l->hs_timer);
    event_assign(l->hs_timer, l->d->base, -1, 0, closing_deadline, l);
    event_add(l->hs_timer, &tv);
}

static void close_later_cb(evutil_socket_t fd, short what, void *arg)
{
    struct disc_link *l = arg;

    (void)fd;
    (void)what;
    disc_link_close(l, l->close_reason, -1);
}

void disc_link_close_later(struct disc_link *l, const char *reason)
{
    if (l->state == DISC_LINK_CLOSING || event_pending(l->close_ev, EV_TIMEOUT, NULL) ||
        l->close_reason[0])
        return;
    snprintf(l->close_reason, sizeof l->close_reason, "%s", reason);
    event_active(l->close_ev, EV_TIMEOUT, 0);
}

void disc_link_destroy(struct disc_link *l, bool goodbye)
{
    struct evbuffer *out = bufferevent_get_output(l->bev);
    evutil_socket_t fd = bufferevent_getfd(l->bev);

    if (goodbye && l->state == DISC_LINK_UP)
        queue_goodbye(l, DISC_GOODBYE_SHUTDOWN, "shutting down");
    /* One non-blocking send of what is queued: the GOODBYE goes out whenever
     * the socket has room, which it has unless the peer stopped reading.
     * (Not evbuffer_write: a bufferevent keeps its output's front frozen.) */
    if (fd >= 0 && evbuffer_get_length(out) > 0 && l->state != DISC_LINK_CONNECTING) {
        size_t n = evbuffer_get_length(out);
        const uint8_t *p = evbuffer_pullup(out, -1);
        if (p && send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            SH_LOG(SH_LOG_DEBUG, MOD, "goodbye to %s not sent: %s", l->remote, strerror(errno));
    }
    l->active = false;
    link_free(l);
}

/* ---- receiving ----------------------------------------------------------- */

/* Returns false if l was closed. */
static bool handle_message(struct disc_link *l, uint8_t type, const uint8_t *p, size_t len)
{
    struct sh_cursor cur;
    char why[80];

    switch (type) {
    case DISC_MSG_PING:
        if (len != 8)
            break;
        queue_frame(l, DISC_MSG_PONG, p, len, NULL);
        return true;
    case DISC_MSG_PONG:
        if (len != 8)
            break;
        sh_cursor_init(&cur, p, len);
        l->info.rtt_us = (int64_t)((sh_now_ns() - sh_cursor_u64(&cur)) / 1000);
        return true;
    case DISC_MSG_GOODBYE: {
        size_t n = len > 1 ? len - 1 : 0;
        snprintf(why, sizeof why, "peer said goodbye: ");
        for (size_t i = 0, o = strlen(why); i < n && o + 1 < sizeof why; i++, o++) {
            why[o] = p[1 + i] >= 0x20 && p[1 + i] < 0x7f ? (char)p[1 + i] : '?';
            why[o + 1] = '\0';
        }
        disc_link_close(l, why, -1);
        return false;
    }
    default:
        if (type < DISC_MSG_APP_MIN || type > DISC_MSG_APP_MAX) {
            snprintf(why, sizeof why, "peer sent unknown message type %u", (unsigned)type);
            disc_link_close(l, why, -1);
            return false;
        }
        /* An inactive link that is up is one the peer replaced and is about
         * to close: what it still carries is from the same peer, in order. */
        if (l->d->cbs.message)
            l->d->cbs.message(l->d->arg, l->info.peer_id, type, p, len);
        return true;
    }
    snprintf(why, sizeof why, "malformed %s", type == DISC_MSG_PING ? "PING" : "PONG");
    disc_link_close(l, why, -1);
    return false;
}

static void enter_up(struct disc_link *l)
{
    struct timeval hb = ms_tv(l->d->heartbeat_ms), to = ms_tv(l->d->link_timeout_ms);
    const struct disc_hs_peer *p = &l->hs.peer;

    l->d->n_handshaking--;
    l->state = DISC_LINK_UP;
    l->was_up = true;
    event_del(l->hs_timer);
    l->info.peer_id = p->node_id;
    snprintf(l->info.name, sizeof l->info.name, "%s", p->name);
    l->info.peer_port = p->peer_port;
    l->info.api_port = p->api_port;
    memcpy(l->info.pubkey, p->pk, sizeof l->info.pubkey);
    l->info.incarnation = p->incarnation;
    l->info.dialed = l->dialed;
    l->info.up_since_ns = sh_now_ns();
    l->info.rtt_us = -1;
    l->last_rx_ns = l->info.up_since_ns;
    /* Liveness is ours, not mDNS's: no frame for link_timeout -> down. */
    bufferevent_set_timeouts(l->bev, &to, NULL);
    event_add(l->hb_timer, &hb);
}

/* One handshake record. Returns false if l was closed. */
static bool handle_hs(struct disc_link *l, const uint8_t *rec, size_t len)
{
    uint8_t out[DISC_HS_MAX_MSG];
    size_t out_len = 0;
    struct sh_err err;
    int rc;

    sh_err_clear(&err);
    rc = disc_hs_step(&l->hs, rec, len, out, &out_len, &err);
    if (rc) {
        /* A refused peer gets nothing back, not even the reason. */
        SH_LOG(rc == SH_EUNAUTH ? SH_LOG_WARN : SH_LOG_INFO, MOD, "refused %s %s: %s",
               l->dialed ? "peer" : "connection from", l->remote, sh_err_msg(&err));
        disc_link_close(l, sh_err_msg(&err), -1);
        return false;
    }
    if (out_len && send_record(l, out, out_len) != 0) {
        disc_link_close(l, "out of memory", -1);
        return false;
    }
    if (l->hs.state != DISC_HS_DONE)
        return true;
    enter_up(l);
    return disc_on_established(l);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct disc_link *l = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    uint8_t hdr[DISC_FRAME_HDR], rec[DISC_HS_MAX_MSG], type;
    const uint8_t *payload;
    size_t avail, len, plen;
    struct sh_err err;
    uint8_t *p;

    while (l->state == DISC_LINK_HANDSHAKE || l->state == DISC_LINK_UP) {
        avail = evbuffer_get_length(in);
        if (avail < DISC_FRAME_HDR)
            return;
        evbuffer_copyout(in, hdr, sizeof hdr);
        sh_err_clear(&err);
        if (l->state == DISC_LINK_HANDSHAKE) {
            len =
                (size_t)hdr[0] | (size_t)hdr[1] << 8 | (size_t)hdr[2] << 16 | (size_t)hdr[3] << 24;
            if (len == 0 || len > DISC_HS_MAX_MSG) {
                SH_LOG(SH_LOG_INFO, MOD, "refused %s: handshake record of %zu bytes", l->remote,
                       len);
                disc_link_close(l, "handshake record over the size limit", -1);
                return;
            }
            if (avail < DISC_FRAME_HDR + len)
                return;
            evbuffer_drain(in, DISC_FRAME_HDR);
            evbuffer_remove(in, rec, len);
            if (!handle_hs(l, rec, len))
                return;
            continue;
        }
        if (disc_frame_body_len(hdr, l->d->max_frame, &len, &err) != 0) {
            disc_link_close(l, sh_err_msg(&err), -1);
            return;
        }
        if (avail < DISC_FRAME_HDR + len)
            return;
        p = evbuffer_pullup(in, (ev_ssize_t)(DISC_FRAME_HDR + len));
        if (!p) {
            disc_link_close(l, "out of memory", -1);
            return;
        }
        if (disc_frame_open(&l->hs.rx, p, p + DISC_FRAME_HDR, len, &type, &payload, &plen, &err) !=
            0) {
            SH_LOG(SH_LOG_WARN, MOD, "link %s: %s", l->remote, sh_err_msg(&err));
            disc_link_close(l, sh_err_msg(&err), -1);
            return;
        }
        l->last_rx_ns = sh_now_ns();
        if (!handle_message(l, type, payload, plen))
            return;
        evbuffer_drain(in, DISC_FRAME_HDR + len);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct disc_link *l = arg;
    uint8_t out[DISC_HS_MAX_MSG];
    size_t out_len;
    char why[400];
    int e = EVUTIL_SOCKET_ERROR(), dns;

    if (what & BEV_EVENT_CONNECTED) {
        l->state = DISC_LINK_HANDSHAKE;
        note_peer_addr(l);
        set_nodelay(l);
        if (disc_hs_step(&l->hs, NULL, 0, out, &out_len, NULL) != 0 ||
            send_record(l, out, out_len) != 0)
            disc_link_close(l, "cannot start the handshake", -1);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT)
        snprintf(why, sizeof why, "no frame for %u ms (link timeout)",
                 (unsigned)l->d->link_timeout_ms);
    else if (what & BEV_EVENT_EOF)
        snprintf(why, sizeof why, "%s",
                 l->state == DISC_LINK_UP ? "connection closed by the peer"
                                          : "peer closed the connection during the handshake "
                                            "(different cluster key, or not a shoal node?)");
    else if ((dns = bufferevent_socket_get_dns_error(bev)) != 0)
        snprintf(why, sizeof why, "cannot resolve %s: %s", l->remote, evutil_gai_strerror(dns));
    else
        snprintf(why, sizeof why, "%s", e ? strerror(e) : "socket error");
    disc_link_close(l, why, -1);
}

static void hs_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct disc_link *l = arg;
    char why[64];

    (void)fd;
    (void)what;
    snprintf(why, sizeof why, "%s timed out after %u ms",
             l->state == DISC_LINK_CONNECTING ? "connect" : "handshake",
             (unsigned)l->d->hs_timeout_ms);
    disc_link_close(l, why, -1);
}

static void heartbeat(evutil_socket_t fd, short what, void *arg)
{
    struct disc_link *l = arg;
    uint8_t t[8];

    (void)fd;
    (void)what;
    sh_put_u64(t, sh_now_ns());
    queue_frame(l, DISC_MSG_PING, t, sizeof t, NULL);
}

/* ---- opening ------------------------------------------------------------- */

static struct disc_link *link_new(struct disc *d, struct bufferevent *bev, bool dialed)
{
    struct disc_link *l = calloc(1, sizeof *l);
    struct disc_hs_self self = {
        .pk = d->pk,
        .sk = d->sk,
        .cluster_key = d->has_cluster_key ? d->cluster_key : NULL,
        .incarnation = d->incarnation,
        .api_port = d->api_port,
        .peer_port = d->port,
        .name = d->name,
    };
    struct timeval hs = ms_tv(d->hs_timeout_ms);

    if (!l)
        return NULL;
    l->d = d;
    l->bev = bev;
    l->dialed = dialed;
    l->hs_timer = evtimer_new(d->base, hs_deadline, l);
    l->hb_timer = event_new(d->base, -1, EV_PERSIST, heartbeat, l);
    l->close_ev = event_new(d->base, -1, 0, close_later_cb, l);
    if (!l->hs_timer || !l->hb_timer || !l->close_ev) {
        if (l->hs_timer)
            event_free(l->hs_timer);
        if (l->hb_timer)
            event_free(l->hb_timer);
        if (l->close_ev)
            event_free(l->close_ev);
        free(l);
        return NULL;
    }
    disc_hs_init(&l->hs, dialed ? DISC_HS_DIALER : DISC_HS_ACCEPTOR, &self, 0);
    l->state = dialed ? DISC_LINK_CONNECTING : DISC_LINK_HANDSHAKE;
    d->n_handshaking++;
    l->next = d->links;
    if (d->links)
        d->links->prev = l;
    d->links = l;
    /* Read at most one whole frame ahead (the largest frame must fit). */
    bufferevent_setwatermark(bev, EV_READ, 0, disc_frame_size(d->max_frame));
    bufferevent_setcb(bev, read_cb, NULL, event_cb, l);
    event_add(l->hs_timer, &hs);
    return l;
}

struct disc_link *
disc_link_accept(struct disc *d, evutil_socket_t fd, const struct sockaddr *sa, int salen)
{
    struct bufferevent *bev;
    struct disc_link *l;
    char addr[DISC_ADDR_MAX];
    uint16_t port;

    (void)salen;
    addr_str(sa, addr, sizeof addr, &port);
    if (d->n_handshaking >= MAX_HANDSHAKING) {
        SH_LOG(SH_LOG_WARN, MOD, "refused %s:%u: %d handshakes already in progress", addr,
               (unsigned)port, MAX_HANDSHAKING);
        evutil_closesocket(fd);
        return NULL;
    }
    bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        evutil_closesocket(fd);
        return NULL;
    }
    l = link_new(d, bev, false);
    if (!l) {
        bufferevent_free(bev);
        return NULL;
    }
    snprintf(l->info.addr, sizeof l->info.addr, "%s", addr);
    snprintf(l->remote, sizeof l->remote, "%s:%u", addr, (unsigned)port);
    set_nodelay(l);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    return l;
}

/* Fills ss from a numeric IPv4/IPv6 host; false if host is a name. */
static bool numeric_addr(const char *host, uint16_t port, struct sockaddr_storage *ss, int *len)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof *ss);
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        *len = (int)sizeof *s4;
        return true;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        *len = (int)sizeof *s6;
        return true;
    }
    return false;
}

struct disc_link *disc_link_dial(struct disc *d, struct disc_target *t)
{
    struct sockaddr_storage ss;
    struct bufferevent *bev;
    struct disc_link *l;
    int len, rc;

    bev = bufferevent_socket_new(d->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        return NULL;
    l = link_new(d, bev, true);
    if (!l) {
        bufferevent_free(bev);
        return NULL;
    }
    l->hs.expected_id = t->expected_id;
    l->target = t;
    t->link = l;
    snprintf(l->remote, sizeof l->remote, "%s:%u", t->host, (unsigned)t->port);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    if (numeric_addr(t->host, t->port, &ss, &len)) {
        rc = bufferevent_socket_connect(bev, (struct sockaddr *)&ss, len);
    } else {
        if (!d->dns)
            d->dns = evdns_base_new(d->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
        rc = d->dns ? bufferevent_socket_connect_hostname(bev, d->dns, AF_UNSPEC, t->host, t->port)
                    : -1;
    }
    if (rc != 0) {
        /* Failed before any callback could be scheduled (e.g. no route). */
        int e = errno;
        SH_LOG(SH_LOG_DEBUG, MOD, "dial %s failed: %s", l->remote, strerror(e));
        link_free(l);
        return NULL;
    }
    SH_LOG(SH_LOG_DEBUG, MOD, "dialing %s", l->remote);
    return l;
}
