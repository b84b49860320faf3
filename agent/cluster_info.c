/* agent/cluster_info.c: what this node says about itself (name, address,
 * ports, RAM, cores, models) and what peers said about themselves.
 *
 * A node describes itself with a node_joined event (state/state.h) sent as a
 * DISC_MSG_INFO message when a link comes up and when its resources move
 * enough (state_info_decide, so telemetry stays cheap); the leader turns
 * those into registry events (cluster_driver.c). The address is the one the
 * node sees itself at (own_host).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/cluster_int.h"
#include "api/api.h"
#include "common/log.h"
#include "common/util.h"

#define MOD          "cluster"
#define MEMINFO_MAX  (16 * 1024) /* the file is ~1.5 KB; the two lines come first */
#define MEMINFO_PATH "/proc/meminfo"

/* ---- resources ------------------------------------------------------------- */

static int cmp_model(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* /proc files report a size of 0, so sh_read_file (which trusts fstat)
 * cannot read them: read until EOF into a fixed buffer instead. */
static int read_meminfo(char *buf, size_t cap, struct sh_err *err)
{
    size_t len = 0;
    int fd = open(MEMINFO_PATH, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return sh_err_set(err, SH_EIO, "%s: %s", MEMINFO_PATH, strerror(errno));
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return sh_err_set(err, SH_EIO, "%s: %s", MEMINFO_PATH, strerror(e));
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return 0;
}

static int read_resources(struct cluster *c, struct state_resources *r, struct sh_err *err)
{
    char text[MEMINFO_MAX];
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int rc;

    memset(r, 0, sizeof *r);
    if ((rc = read_meminfo(text, sizeof text, err)) ||
        (rc = cluster_meminfo_parse(text, &r->ram_total, &r->ram_free, err)))
        return rc;
    r->cores = cores < 1 ? 1 : cores > STATE_MAX_CORES ? STATE_MAX_CORES : (uint32_t)cores;
    if (c->models_fn) {
        uint32_t n = c->models_fn(c->models_arg, r->models, STATE_MAX_MODELS), k = 0;
        if (n > STATE_MAX_MODELS)
            n = STATE_MAX_MODELS;
        qsort(r->models, n, sizeof r->models[0], cmp_model);
        for (uint32_t i = 0; i < n; i++) /* sorted, distinct, as the schema wants */
            if (r->models[i][0] && (k == 0 || strcmp(r->models[k - 1], r->models[i]) != 0))
                memmove(r->models[k++], r->models[i], sizeof r->models[0]);
        r->n_models = k;
    }
    return 0;
}

/* ---- this node ------------------------------------------------------------- */

static bool wildcard_or_loopback(const char *a)
{
    return !a || !*a || strcmp(a, "0.0.0.0") == 0 || strcmp(a, "::") == 0 ||
           strncmp(a, "127.", 4) == 0 || strcmp(a, "::1") == 0 || strcmp(a, "localhost") == 0;
}

/* The interface of the IPv4 default route (/proc/net/route), "" if none:
 * on a machine with bridges (docker0, virbr0) the first interface is often
 * not the one the LAN reaches it through. */
static void default_route_iface(char *out, size_t cap)
{
    char text[MEMINFO_MAX], iface[IF_NAMESIZE], dest[16];
    const char *p = text;
    int fd = open("/proc/net/route", O_RDONLY | O_CLOEXEC);
    ssize_t n;

    out[0] = '\0';
    if (fd < 0)
        return;
    n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return;
    text[n] = '\0';
    while ((p = strchr(p, '\n')) != NULL) { /* the first line is the header */
        p++;
        if (sscanf(p, "%15s %15s", iface, dest) == 2 && strcmp(dest, "00000000") == 0) {
            snprintf(out, cap, "%s", iface);
            return;
        }
    }
}

/* The host part of this node's address, IPv6 in brackets: --bind when it
 * names one address, else the IPv4 address of the default route's
 * interface, else of the first interface up that is not loopback. */
static void own_host(const struct cluster *c, char *out, size_t cap)
{
    const char *bind = c->a->opts->bind;
    struct ifaddrs *ifs = NULL;
    char route_if[IF_NAMESIZE];
    bool found = false;

    snprintf(out, cap, "127.0.0.1");
    if (!wildcard_or_loopback(bind)) {
        snprintf(out, cap, strchr(bind, ':') ? "[%s]" : "%s", bind);
        return;
    }
    default_route_iface(route_if, sizeof route_if);
    if (getifaddrs(&ifs) != 0)
        return;
    for (int pass = route_if[0] ? 0 : 1; pass < 2 && !found; pass++) {
        for (struct ifaddrs *i = ifs; i && !found; i = i->ifa_next) {
            char buf[INET_ADDRSTRLEN];
            if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !(i->ifa_flags & IFF_UP) ||
                (i->ifa_flags & IFF_LOOPBACK) || (pass == 0 && strcmp(i->ifa_name, route_if) != 0))
                continue;
            if (inet_ntop(AF_INET,
                          &((const struct sockaddr_in *)(const void *)i->ifa_addr)->sin_addr, buf,
                          sizeof buf)) {
                snprintf(out, cap, "%s", buf);
                found = true;
            }
        }
    }
    freeifaddrs(ifs);
}

int cluster_self_refresh(struct cluster *c, struct sh_err *err)
{
    struct state_event *s = c->self;
    struct state_resources r;
    char host[STATE_ADDR_MAX - 6]; /* room for ":65535" */
    int rc;

    if ((rc = read_resources(c, &r, err)))
        return rc;
    own_host(c, host, sizeof host);
    memset(s, 0, sizeof *s);
    s->type = STATE_EV_NODE_JOINED;
    s->node = c->id.node_id;
    snprintf(s->name, sizeof s->name, "%s", c->a->opts->name);
    snprintf(s->addr, sizeof s->addr, "%s:%u", host,
             (unsigned)(c->disc ? disc_peer_port(c->disc) : c->a->opts->peer_port));
    s->api_port = c->a->api ? api_server_port(c->a->api) : c->a->opts->api_port;
    s->res = r;
    return 0;
}

void cluster_info_send(struct cluster *c, uint64_t peer)
{
    struct disc_link_info links[CLUSTER_MAX_PEERS];
    struct sh_err err;
    char *json = NULL;
    size_t n;

    if (!c->disc)
        return;
    sh_err_clear(&err);
    if (state_event_encode(c->self, &json, &err)) {
        SH_LOG(SH_LOG_WARN, MOD, "cannot describe this node: %s", sh_err_msg(&err));
        return;
    }
    n = peer ? 1 : disc_links(c->disc, links, CLUSTER_MAX_PEERS);
    for (size_t i = 0; i < n && i < CLUSTER_MAX_PEERS; i++) {
        uint64_t to = peer ? peer : links[i].peer_id;
        if (disc_send(c->disc, to, DISC_MSG_INFO, json, strlen(json), &err) != 0)
            SH_LOG(SH_LOG_DEBUG, MOD, "cannot send INFO to %016" PRIx64 ": %s", to,
                   sh_err_msg(&err));
    }
    free(json);
    if (!peer) {
        c->info_sent = c->self->res;
        c->info_sent_ms = cluster_wall_ms();
    }
}

void cluster_info_maybe_send(struct cluster *c)
{
    const char *why = NULL;
    if (state_info_decide(&c->info_sent, c->info_sent_ms, &c->self->res, cluster_wall_ms(),
                          &c->policy, &why) != STATE_INFO_LOG)
        return;
    SH_LOG(SH_LOG_DEBUG, MOD, "resources changed (%s): telling the peers", why);
    cluster_info_send(c, 0);
}

/* ---- peers ------------------------------------------------------------------ */

struct cluster_peer *cluster_peer_get(struct cluster *c, uint64_t id, bool create)
{
    struct cluster_peer *p;
    for (size_t i = 0; i < c->n_peers; i++)
        if (c->peers[i]->id == id)
            return c->peers[i];
    if (!create || c->n_peers == CLUSTER_MAX_PEERS || !(p = calloc(1, sizeof *p)))
        return NULL;
    p->id = id;
    c->peers[c->n_peers++] = p;
    return p;
}

void cluster_info_receive(struct cluster *c, uint64_t peer, const uint8_t *data, size_t len)
{
    struct state_event *ev = malloc(sizeof *ev);
    struct cluster_peer *p;
    struct sh_err err;

    sh_err_clear(&err);
    if (!ev)
        return;
    if (state_event_parse((const char *)data, len, ev, &err) != 0 ||
        ev->type != STATE_EV_NODE_JOINED || ev->node != peer) {
        SH_LOG(SH_LOG_WARN, MOD, "INFO from %016" PRIx64 " refused: %s", peer,
               err.code ? sh_err_msg(&err) : "not a node_joined about the sender");
        free(ev);
        return;
    }
    ev->has_time = false;
    ev->time_ms = 0;
    if (!(p = cluster_peer_get(c, peer, true))) {
        free(ev);
        return;
    }
    free(p->info);
    p->info = ev;
    SH_LOG(SH_LOG_DEBUG, MOD, "INFO from %016" PRIx64 " '%s' at %s: %u cores, %" PRIu64 " MiB free",
           peer, ev->name, ev->addr, ev->res.cores, ev->res.ram_free >> 20);
    cluster_post(c);
}

/* "host" of a "host:port" (the host is at most STATE_ADDR_MAX bytes). */
static void host_of(const char *addr, char *out, size_t cap)
{
    const char *colon = strrchr(addr, ':');
    size_t n = colon ? (size_t)(colon - addr) : strlen(addr);
    snprintf(out, cap, "%.*s", (int)n, addr);
}

bool cluster_api_addr(const struct cluster *c, uint64_t id, char *out, size_t cap)
{
    const struct cluster_peer *p = NULL;
    const struct state_node *n = state_find_node(c->st, id);
    char host[STATE_ADDR_MAX + 1];

    for (size_t i = 0; i < c->n_peers && !p; i++)
        if (c->peers[i]->id == id)
            p = c->peers[i];
    if (id == c->id.node_id) {
        host_of(c->self->addr, host, sizeof host);
        snprintf(out, cap, "%s:%u", host, c->self->api_port);
    } else if (p && p->linked) {
        snprintf(out, cap, strchr(p->link.addr, ':') ? "[%s]:%u" : "%s:%u", p->link.addr,
                 (unsigned)p->link.api_port);
    } else if (p && p->info) {
        host_of(p->info->addr, host, sizeof host);
        snprintf(out, cap, "%s:%u", host, p->info->api_port);
    } else if (n) {
        host_of(n->addr, host, sizeof host);
        snprintf(out, cap, "%s:%u", host, n->api_port);
    } else {
        return false;
    }
    return true;
}

const char *cluster_node_name(const struct cluster *c, uint64_t id)
{
    const struct state_node *n;
    if (id == c->id.node_id)
        return c->self->name;
    for (size_t i = 0; i < c->n_peers; i++) {
        const struct cluster_peer *p = c->peers[i];
        if (p->id != id)
            continue;
        if (p->info)
            return p->info->name;
        if (p->link.name[0])
            return p->link.name;
    }
    n = state_find_node(c->st, id);
    return n ? n->name : "";
}
