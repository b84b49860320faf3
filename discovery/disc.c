/* discovery/disc.c: the link manager behind discovery.h: configuration, the
 * listener, dial targets (static peers and mDNS services) with backoff, and
 * the rule that keeps exactly one link per peer. Connections themselves are
 * link.c's; avahi is mdns.c's.
 *
 * NOTES ON THE DESIGN
 * 1. A peer is "up" while exactly one of its links is active; link_up and
 *    link_down bracket that. Links that lose the rule below are closed
 *    without any callback.
 * 2. When a second link to a peer finishes its handshake while one is
 *    active (both sides dialed at once, or a redial), both ends must keep
 *    the same one without talking about it:
 *      - a different incarnation means the peer restarted: the old link is
 *        dead, it goes down (link_down) and the new one comes up;
 *      - else, if the two were dialed by different sides, keep the one
 *        dialed by the lower node id;
 *      - else (same dialer) keep the newer one: a node only redials a peer
 *        when it has no link to it, so its older link is already gone.
 *    A replaced link is closed by the dialer of its replacement only. The
 *    acceptor finishes the handshake first, and closing from there could
 *    reach the dialer before the new link does and look like a link loss.
 * 3. Targets redial with exponential backoff and jitter, reset on success.
 *    A target whose peer is up through another link is not dialed; when
 *    that peer goes down, every target for it is kicked.
 * 4. A target that turns out to be ourselves (a static list shared by all
 *    nodes) is never dialed again.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <sodium.h>

#include "common/log.h"
#include "common/util.h"
#include "discovery/internal.h"

#define MOD "disc"

#define DEF_HEARTBEAT_MS    500
#define DEF_LINK_TIMEOUT_MS 3000
#define DEF_HS_TIMEOUT_MS   5000
#define DEF_BACKOFF_MIN_MS  250
#define DEF_BACKOFF_MAX_MS  8000
#define DEF_MAX_FRAME       (8u << 20)
#define LISTEN_RETRY_MS     1000

/* ---- helpers ------------------------------------------------------------- */

static struct disc_link *find_active(const struct disc *d, uint64_t id)
{
    for (struct disc_link *l = d->links; l; l = l->next)
        if (l->active && l->info.peer_id == id)
            return l;
    return NULL;
}

/* True if a link to id is up, or one of our dials to it is in progress. */
static bool id_busy(const struct disc *d, uint64_t id)
{
    for (const struct disc_link *l = d->links; l; l = l->next) {
        if (l->state == DISC_LINK_UP && l->info.peer_id == id)
            return true;
        if (l->dialed && (l->state == DISC_LINK_CONNECTING || l->state == DISC_LINK_HANDSHAKE) &&
            l->hs.expected_id == id)
            return true;
    }
    return false;
}

static uint64_t target_id(const struct disc_target *t)
{
    return t->expected_id ? t->expected_id : t->learned_id;
}

static bool should_dial(const struct disc_target *t)
{
    uint64_t id = target_id(t);
    return !t->self && !t->link && !(id && id_busy(t->d, id));
}

/* ---- targets ------------------------------------------------------------- */

static void target_fire(evutil_socket_t fd, short what, void *arg);

static void target_arm(struct disc_target *t, uint32_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(t->timer, &tv);
}

/* Schedules the next attempt after the current backoff (with jitter: half
 * of it fixed, half random, so nodes that lost each other at the same moment
 * do not redial in lockstep), then doubles the backoff. */
static void target_backoff(struct disc_target *t)
{
    uint32_t b = t->backoff_ms, ms;

    if (evtimer_pending(t->timer, NULL))
        return;
    ms = b / 2 + randombytes_uniform(b / 2 + 1);
    t->backoff_ms = b >= t->d->backoff_max_ms / 2 ? t->d->backoff_max_ms : b * 2;
    target_arm(t, ms);
}

static void target_fire(evutil_socket_t fd, short what, void *arg)
{
    struct disc_target *t = arg;

    (void)fd;
    (void)what;
    if (!should_dial(t))
        return; /* kicked again when its peer goes down */
    if (!disc_link_dial(t->d, t))
        target_backoff(t);
}

static struct disc_target *
target_new(struct disc *d, enum disc_target_kind kind, const char *host, uint16_t port)
{
    struct disc_target *t = calloc(1, sizeof *t);

    if (!t)
        return NULL;
    t->timer = evtimer_new(d->base, target_fire, t);
    if (!t->timer) {
        free(t);
        return NULL;
    }
    t->d = d;
    t->kind = kind;
    snprintf(t->host, sizeof t->host, "%s", host);
    t->port = port;
    t->backoff_ms = d->backoff_min_ms;
    t->next = d->targets;
    d->targets = t;
    return t;
}

static void target_remove(struct disc_target *t)
{
    struct disc_target **pp;

    for (pp = &t->d->targets; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    if (t->link)
        t->link->target = NULL; /* the connection lives on, it just won't be redialed */
    event_free(t->timer);
    free(t);
}

/* "host:port", "host", "[v6]:port", "[v6]", or a bare IPv6 literal. */
static int parse_peer(const char *s, char *host, size_t cap, uint16_t *port, struct sh_err *err)
{
    const char *colon = strrchr(s, ':'), *h = s, *end;
    uint64_t p = DISC_DEFAULT_PEER_PORT;
    size_t hl;

    if (s[0] == '[') {
        end = strchr(s, ']');
        if (!end || (end[1] != '\0' && end[1] != ':'))
            return sh_err_set(err, SH_EINVAL, "static peer '%s': bad [address]:port", s);
        h = s + 1;
        hl = (size_t)(end - h);
        colon = end[1] == ':' ? end + 1 : NULL;
    } else if (colon && strchr(s, ':') != colon) {
        hl = strlen(s); /* several colons, no brackets: an IPv6 literal alone */
        colon = NULL;
    } else {
        hl = colon ? (size_t)(colon - s) : strlen(s);
    }
    if (colon && !sh_parse_u64(colon + 1, 65535, &p))
        return sh_err_set(err, SH_EINVAL, "static peer '%s': port must be 1..65535", s);
    if (hl == 0 || hl >= cap || p == 0)
        return sh_err_set(err, SH_EINVAL, "static peer '%s': want host:port", s);
    for (size_t i = 0; i < hl; i++)
        if ((unsigned char)h[i] <= 0x20 || h[i] == 0x7f || h[i] == '/')
            return sh_err_set(err, SH_EINVAL, "static peer '%s': bad character in host", s);
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (uint16_t)p;
    return 0;
}

/* ---- what link.c reports ------------------------------------------------- */

void disc_on_closed(struct disc_link *l, const char *reason)
{
    struct disc *d = l->d;
    struct disc_target *t = l->target;

    if (t) {
        t->link = NULL;
        l->target = NULL;
    }
    if (l->active) {
        uint64_t id = l->info.peer_id;
        l->active = false;
        if (!d->freeing && d->cbs.link_down)
            d->cbs.link_down(d->arg, id, reason);
        for (struct disc_target *o = d->targets; o; o = o->next)
            if (o != t && target_id(o) == id && should_dial(o))
                target_backoff(o);
    }
    if (t && !d->freeing) {
        /* A failing target is retried forever: say why once, not each time. */
        if (!l->was_up && strncmp(t->last_error, reason, sizeof t->last_error - 1) != 0) {
            SH_LOG(SH_LOG_INFO, MOD, "cannot link to %s:%u: %s (retrying)", t->host,
                   (unsigned)t->port, reason);
            snprintf(t->last_error, sizeof t->last_error, "%s", reason);
        }
        target_backoff(t);
    }
}

bool disc_on_established(struct disc_link *l)
{
    struct disc *d = l->d;
    uint64_t id = l->info.peer_id;
    struct disc_link *e;
    char hex[17];
    bool keep_new;

    disc_node_id_str(id, hex);
    if (id == d->self_id) {
        if (l->target && !l->target->self)
            SH_LOG(SH_LOG_INFO, MOD, "peer %s is this node itself: not dialing it again",
                   l->remote);
        if (l->target)
            l->target->self = true;
        disc_link_close(l, "link to ourselves", DISC_GOODBYE_SELF);
        return false;
    }
    if (l->target) {
        l->target->backoff_ms = d->backoff_min_ms;
        l->target->last_error[0] = '\0';
        if (l->target->kind == DISC_TARGET_STATIC)
            l->target->learned_id = id;
    }
    e = find_active(d, id);
    if (e && e->info.incarnation != l->info.incarnation) {
        disc_link_close(e, "peer restarted", -1);
        e = NULL;
    }
    if (e) {
        uint64_t dial_e = e->dialed ? d->self_id : id, dial_l = l->dialed ? d->self_id : id;
        uint64_t lower = d->self_id < id ? d->self_id : id;
        keep_new = dial_e != dial_l ? dial_l == lower : true;
        if (!keep_new) {
            SH_LOG(SH_LOG_DEBUG, MOD, "second link to %s (%s): keeping the first", hex, l->remote);
            disc_link_close(l, "duplicate link", DISC_GOODBYE_DUPLICATE);
            return false;
        }
        SH_LOG(SH_LOG_DEBUG, MOD, "second link to %s (%s) replaces %s", hex, l->remote, e->remote);
        e->active = false;
        l->active = true;
        if (l->dialed)
            disc_link_close(e, "replaced by a newer link", DISC_GOODBYE_DUPLICATE);
        return true;
    }
    l->active = true;
    SH_LOG(SH_LOG_INFO, MOD, "link up: %s '%s' at %s (%s)", hex, l->info.name, l->remote,
           l->dialed ? "dialed" : "accepted");
    if (d->cbs.link_up)
        d->cbs.link_up(d->arg, id, &l->info);
    return true;
}

/* ---- mDNS candidates ----------------------------------------------------- */

static struct disc_target *find_mdns_target(struct disc *d, const void *key)
{
    for (struct disc_target *t = d->targets; t; t = t->next)
        if (t->kind == DISC_TARGET_MDNS && t->key == key)
            return t;
    return NULL;
}

static void mdns_found(void *arg, const void *key, uint64_t id, const char *addr, uint16_t port)
{
    struct disc *d = arg;
    struct disc_target *t = find_mdns_target(d, key);
    char hex[17];

    if (!t && !(t = target_new(d, DISC_TARGET_MDNS, addr, port)))
        return;
    t->key = key;
    snprintf(t->host, sizeof t->host, "%s", addr);
    t->port = port;
    t->expected_id = id;
    disc_node_id_str(id, hex);
    SH_LOG(SH_LOG_DEBUG, MOD, "mDNS: node %s at %s:%u", hex, addr, (unsigned)port);
    /* A (re)announcement means the peer is reachable now: dial at once. A
     * dial still waiting for its SYN to be answered was sent while the peer
     * was away and only retransmits seconds later: start over instead. */
    t->backoff_ms = d->backoff_min_ms;
    if (t->link && t->link->state == DISC_LINK_CONNECTING)
        disc_link_close(t->link, "redialing: the peer announced itself again", -1);
    if (should_dial(t)) {
        evtimer_del(t->timer);
        target_arm(t, 0);
    }
}

static void mdns_lost(void *arg, const void *key)
{
    struct disc_target *t = find_mdns_target(arg, key);

    if (t)
        target_remove(t);
}

/* ---- listener ------------------------------------------------------------ */

static void
accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    (void)lis;
    disc_link_accept(arg, fd, sa, salen);
}

static void listen_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct disc *d = arg;

    (void)fd;
    (void)what;
    evconnlistener_enable(d->listener);
}

static void accept_error_cb(struct evconnlistener *lis, void *arg)
{
    struct disc *d = arg;
    struct timeval tv = {.tv_sec = LISTEN_RETRY_MS / 1000, .tv_usec = 0};
    int e = EVUTIL_SOCKET_ERROR();

    /* Out of descriptors or memory: accept would fail again at once, so
     * pause instead of spinning. */
    SH_LOG(SH_LOG_WARN, MOD, "accept: %s; pausing the listener for 1 s", strerror(e));
    evconnlistener_disable(lis);
    evtimer_add(d->listen_retry, &tv);
}

static int open_listener(struct disc *d, uint16_t port, struct sh_err *err)
{
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd, one = 1, zero = 0, e;

    s6.sin6_addr = in6addr_any;
    s4.sin_addr.s_addr = htonl(INADDR_ANY);
    /* One dual-stack socket where IPv6 exists (IPv4 peers arrive as
     * ::ffff:a.b.c.d), else plain IPv4. */
    fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) != 0 ||
                    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
                    bind(fd, (struct sockaddr *)&s6, sizeof s6) != 0)) {
        e = errno;
        close(fd);
        fd = -1;
        if (e == EADDRINUSE || e == EACCES)
            return sh_err_set(err, SH_EIO, "listen on port %u: %s", (unsigned)port, strerror(e));
    }
    if (fd < 0) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return sh_err_set(err, SH_EIO, "socket: %s", strerror(errno));
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
            bind(fd, (struct sockaddr *)&s4, sizeof s4) != 0) {
            e = errno;
            close(fd);
            return sh_err_set(err, SH_EIO, "listen on port %u: %s", (unsigned)port, strerror(e));
        }
    }
    if (listen(fd, 64) != 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        e = errno;
        close(fd);
        return sh_err_set(err, SH_EIO, "listen on port %u: %s", (unsigned)port, strerror(e));
    }
    d->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    /* backlog 0: the socket is already listening. */
    d->listener = evconnlistener_new(d->base, accept_cb, d, LEV_OPT_CLOSE_ON_FREE, 0, fd);
    if (!d->listener) {
        close(fd);
        return sh_err_set(err, SH_ENOMEM, "listener: out of memory");
    }
    evconnlistener_set_error_cb(d->listener, accept_error_cb);
    return 0;
}

/* ---- public API ---------------------------------------------------------- */

static int check_config(const struct disc_config *c, struct sh_err *err)
{
    size_t n;

    if (!c->public_key || !c->secret_key)
        return sh_err_set(err, SH_EINVAL, "discovery: public_key and secret_key are required");
    if (disc_node_id(c->public_key) != c->node_id)
        return sh_err_set(err, SH_EINVAL, "discovery: node_id does not match the public key");
    /* libsodium's Ed25519 secret key carries its public key in its second half. */
    if (sodium_memcmp(c->secret_key + 32, c->public_key, 32) != 0)
        return sh_err_set(err, SH_EINVAL, "discovery: secret key does not match the public key");
    n = c->name ? strlen(c->name) : 0;
    if (n == 0 || n > DISC_NAME_MAX)
        return sh_err_set(err, SH_EINVAL, "discovery: node name must be 1..%d bytes",
                          DISC_NAME_MAX);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)c->name[i] < 0x20 || c->name[i] == 0x7f)
            return sh_err_set(err, SH_EINVAL, "discovery: node name has control characters");
    if (c->max_frame > DISC_MAX_FRAME_LIMIT)
        return sh_err_set(err, SH_EINVAL, "discovery: max_frame %u over the limit %u",
                          (unsigned)c->max_frame, (unsigned)DISC_MAX_FRAME_LIMIT);
    if (c->n_static_peers && !c->static_peers)
        return sh_err_set(err, SH_EINVAL, "discovery: static_peers is NULL");
    return 0;
}

static int apply_config(struct disc *d, const struct disc_config *c, struct sh_err *err)
{
    d->heartbeat_ms = c->heartbeat_ms ? c->heartbeat_ms : DEF_HEARTBEAT_MS;
    d->link_timeout_ms = c->link_timeout_ms ? c->link_timeout_ms : DEF_LINK_TIMEOUT_MS;
    d->hs_timeout_ms = c->handshake_timeout_ms ? c->handshake_timeout_ms : DEF_HS_TIMEOUT_MS;
    d->backoff_min_ms = c->reconnect_min_ms ? c->reconnect_min_ms : DEF_BACKOFF_MIN_MS;
    d->backoff_max_ms = c->reconnect_max_ms ? c->reconnect_max_ms : DEF_BACKOFF_MAX_MS;
    d->max_frame = c->max_frame ? c->max_frame : DEF_MAX_FRAME;
    d->max_output = c->max_output ? c->max_output : 4 * (size_t)d->max_frame + (1u << 20);
    if (d->link_timeout_ms <= d->heartbeat_ms)
        return sh_err_set(err, SH_EINVAL,
                          "discovery: link timeout (%u ms) must exceed the heartbeat (%u ms)",
                          (unsigned)d->link_timeout_ms, (unsigned)d->heartbeat_ms);
    if (d->backoff_max_ms < d->backoff_min_ms)
        return sh_err_set(err, SH_EINVAL, "discovery: reconnect_max_ms < reconnect_min_ms");
    if (d->max_output < disc_frame_size(d->max_frame))
        return sh_err_set(err, SH_EINVAL, "discovery: max_output below one whole frame");
    d->self_id = c->node_id;
    disc_node_id_str(d->self_id, d->self_hex);
    memcpy(d->pk, c->public_key, sizeof d->pk);
    memcpy(d->sk, c->secret_key, sizeof d->sk);
    d->has_cluster_key = c->cluster_key != NULL;
    if (c->cluster_key) {
        memcpy(d->cluster_key, c->cluster_key, sizeof d->cluster_key);
        disc_cluster_fingerprint(d->cluster_key, d->fingerprint);
    } else {
        snprintf(d->fingerprint, sizeof d->fingerprint, "none");
    }
    snprintf(d->name, sizeof d->name, "%s", c->name);
    d->api_port = c->api_port;
    randombytes_buf(&d->incarnation, sizeof d->incarnation);
    return 0;
}

int disc_new(struct event_base *base,
             const struct disc_config *cfg,
             const struct disc_callbacks *cbs,
             void *arg,
             struct disc **out,
             struct sh_err *err)
{
    struct disc *d;
    int rc;

    if ((rc = check_config(cfg, err)) != 0)
        return rc;
    if (sodium_init() < 0)
        return sh_err_set(err, SH_EINTERNAL, "discovery: libsodium failed to initialize");
    d = calloc(1, sizeof *d);
    if (!d)
        return sh_err_set(err, SH_ENOMEM, "discovery: out of memory");
    d->base = base;
    d->cbs = *cbs;
    d->arg = arg;
    if ((rc = apply_config(d, cfg, err)) != 0)
        goto fail;
    d->listen_retry = evtimer_new(base, listen_retry_cb, d);
    if (!d->listen_retry) {
        rc = sh_err_set(err, SH_ENOMEM, "discovery: out of memory");
        goto fail;
    }
    if ((rc = open_listener(d, cfg->peer_port, err)) != 0)
        goto fail;
    for (size_t i = 0; i < cfg->n_static_peers; i++) {
        char host[256];
        uint16_t port = 0;
        struct disc_target *t;
        if ((rc = parse_peer(cfg->static_peers[i], host, sizeof host, &port, err)) != 0)
            goto fail;
        if (!(t = target_new(d, DISC_TARGET_STATIC, host, port))) {
            rc = sh_err_set(err, SH_ENOMEM, "discovery: out of memory");
            goto fail;
        }
        target_arm(t, 0);
    }
    if (cfg->mdns) {
        struct disc_mdns_config mc = {
            .self_id = d->self_id,
            .fingerprint = d->fingerprint,
            .name = d->name,
            .api_port = d->api_port,
            .peer_port = d->port,
        };
        if ((rc = disc_mdns_new(base, &mc, mdns_found, mdns_lost, d, &d->mdns, err)) != 0)
            goto fail;
    }
    SH_LOG(SH_LOG_INFO, MOD, "node %s '%s': peer links on port %u, cluster key %s, mDNS %s",
           d->self_hex, d->name, (unsigned)d->port, d->fingerprint, cfg->mdns ? "on" : "off");
    *out = d;
    return 0;
fail:
    disc_free(d);
    return rc;
}

void disc_free(struct disc *d)
{
    if (!d)
        return;
    d->freeing = true;
    disc_mdns_free(d->mdns);
    while (d->links)
        disc_link_destroy(d->links, true);
    while (d->targets)
        target_remove(d->targets);
    if (d->listener)
        evconnlistener_free(d->listener);
    if (d->listen_retry)
        event_free(d->listen_retry);
    if (d->dns)
        evdns_base_free(d->dns, 0);
    sodium_memzero(d->sk, sizeof d->sk);
    sodium_memzero(d->cluster_key, sizeof d->cluster_key);
    free(d);
}

int disc_send(struct disc *d,
              uint64_t peer_id,
              uint8_t type,
              const void *data,
              size_t len,
              struct sh_err *err)
{
    struct disc_link *l;
    char hex[17];

    if (type < DISC_MSG_APP_MIN || type > DISC_MSG_APP_MAX)
        return sh_err_set(err, SH_EINVAL, "message type %u is not an application type",
                          (unsigned)type);
    if (len > d->max_frame)
        return sh_err_set(err, SH_ETOOBIG, "message of %zu bytes exceeds the frame limit %u", len,
                          (unsigned)d->max_frame);
    l = find_active(d, peer_id);
    if (!l) {
        disc_node_id_str(peer_id, hex);
        return sh_err_set(err, SH_ENOTFOUND, "no link to node %s", hex);
    }
    return disc_link_send(l, type, data, len, err);
}

size_t disc_links(const struct disc *d, struct disc_link_info *out, size_t cap)
{
    size_t n = 0, i;
    uint64_t last = 0;
    bool first = true;

    /* Selection by increasing id: few peers, and no allocation. */
    for (;;) {
        const struct disc_link *best = NULL;
        for (const struct disc_link *l = d->links; l; l = l->next)
            if (l->active && (first || l->info.peer_id > last) &&
                (!best || l->info.peer_id < best->info.peer_id))
                best = l;
        if (!best)
            break;
        i = n++;
        if (i < cap)
            out[i] = best->info;
        last = best->info.peer_id;
        first = false;
    }
    return n;
}

uint16_t disc_peer_port(const struct disc *d)
{
    return d->port;
}
