/* discovery/mdns.c: publishing and browsing _shoal._tcp through
 * avahi-client, on the agent's libevent loop (avahi_poll.c). It only finds
 * dial candidates: liveness comes from the links' heartbeats, because after a
 * pulled cable avahi keeps resolving the lost peer from cache for ~120 s
 * (the SRV/A record TTL).
 *
 * Client states and what we do (avahi-client/client.h):
 *   (no bus)      avahi_client_new fails at once even with NO_FAIL: warn once,
 *                 retry every second from a timer.
 *   CONNECTING    NO_FAIL and no avahi-daemon: warn once, wait.
 *   S_RUNNING     browse, publish.
 *   S_REGISTERING / S_COLLISION   host name being (re)probed: withdraw,
 *                 publish again on S_RUNNING.
 *   FAILURE       daemon went away (NO_FAIL does not cover that): from a
 *                 timer, free every object and the client, make a new one.
 */
#include <stdlib.h>
#include <string.h>

#include <avahi-client/client.h>
#include <avahi-client/lookup.h>
#include <avahi-client/publish.h>
#include <avahi-common/alternative.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
#include <avahi-common/strlst.h>
#include <event2/event.h>

#include "common/log.h"
#include "common/util.h"
#include "discovery/internal.h"

#define MOD         "mdns"
#define RETRY_MS    1000
#define MAX_RENAMES 32

/* One browsed service, with the resolver we keep open for as long as it is
 * listed: it reports FOUND on every change and again after the peer comes
 * back, which is how a replugged peer is redialed within a second. */
struct svc {
    struct svc *next;
    struct disc_mdns *m;
    AvahiIfIndex ifidx;
    AvahiProtocol proto;
    char *name;
    char *type;
    char *domain;
    AvahiServiceResolver *res;
    bool reported;    /* found() was called and lost() is owed */
    bool told_ignore; /* "ignoring" logged once */
};

struct disc_mdns {
    struct event_base *base;
    struct disc_avahi_poll *poll;
    AvahiClient *client;
    AvahiServiceBrowser *browser;
    AvahiEntryGroup *group;
    struct svc *svcs;
    char *svc_name; /* what we publish as; changes on collision */
    AvahiStringList *txt;
    uint64_t self_id;
    char fp[17];
    uint16_t peer_port;
    int renames;
    struct event *restart; /* (re)creates the client */
    bool warned;           /* a "no avahi" warning is out; say when it is back */
    int new_err;           /* avahi_client_new's error */
    disc_mdns_found_fn found;
    disc_mdns_lost_fn lost;
    void *arg;
};

static void start_client(struct disc_mdns *m);

static void schedule_restart(struct disc_mdns *m, uint32_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(m->restart, &tv);
}

static const char *client_err(const struct disc_mdns *m)
{
    return avahi_strerror(m->client ? avahi_client_errno(m->client) : AVAHI_ERR_DISCONNECTED);
}

/* ---- browsing and resolving ---------------------------------------------- */

static void svc_free(struct svc *s, bool tell)
{
    if (tell && s->reported)
        s->m->lost(s->m->arg, s);
    if (s->res)
        avahi_service_resolver_free(s->res);
    avahi_free(s->name);
    avahi_free(s->type);
    avahi_free(s->domain);
    avahi_free(s);
}

/* Copies TXT value of key into out (cap bytes with NUL); false if absent,
 * binary or too long. */
static bool txt_get(AvahiStringList *txt, const char *key, char *out, size_t cap)
{
    AvahiStringList *e = avahi_string_list_find(txt, key);
    char *k = NULL, *v = NULL;
    size_t n = 0;
    bool ok;

    if (!e || avahi_string_list_get_pair(e, &k, &v, &n) < 0)
        return false;
    ok = v && n < cap && !memchr(v, '\0', n);
    if (ok) {
        memcpy(out, v, n);
        out[n] = '\0';
    }
    avahi_free(k);
    avahi_free(v);
    return ok;
}

static void ignore(struct svc *s, const char *why)
{
    if (!s->told_ignore)
        SH_LOG(SH_LOG_INFO, MOD, "ignoring service '%s': %s", s->name, why);
    s->told_ignore = true;
    if (s->reported) {
        s->reported = false;
        s->m->lost(s->m->arg, s);
    }
}

static void resolve_cb(AvahiServiceResolver *r,
                       AvahiIfIndex ifidx,
                       AvahiProtocol proto,
                       AvahiResolverEvent ev,
                       const char *name,
                       const char *type,
                       const char *domain,
                       const char *host,
                       const AvahiAddress *a,
                       uint16_t port,
                       AvahiStringList *txt,
                       AvahiLookupResultFlags flags,
                       void *userdata)
{
    struct svc *s = userdata;
    char addr[AVAHI_ADDRESS_STR_MAX], idhex[20], fp[20], ver[8];
    uint64_t id, v;

    (void)r;
    (void)ifidx;
    (void)proto;
    (void)type;
    (void)domain;
    (void)host;
    (void)flags;
    if (ev != AVAHI_RESOLVER_FOUND) {
        /* Records expired (peer gone without goodbye) or a timeout: keep the
         * resolver, it reports FOUND again if the peer comes back. */
        SH_LOG(SH_LOG_DEBUG, MOD, "service '%s' not resolvable now: %s", name,
               avahi_strerror(avahi_client_errno(s->m->client)));
        return;
    }
    if (!txt_get(txt, "id", idhex, sizeof idhex) || !disc_parse_node_id(idhex, &id)) {
        ignore(s, "no valid id in TXT (not a shoal node?)");
        return;
    }
    if (id == s->m->self_id)
        return; /* ourselves, possibly through another interface */
    if (!txt_get(txt, "v", ver, sizeof ver) || !sh_parse_u64(ver, 65535, &v) ||
        v != DISC_PROTO_VERSION) {
        ignore(s, "different protocol version");
        return;
    }
    if (!txt_get(txt, "fp", fp, sizeof fp) || strcmp(fp, s->m->fp) != 0) {
        ignore(s, "different cluster key fingerprint");
        return;
    }
    avahi_address_snprint(addr, sizeof addr, a);
    s->told_ignore = false;
    s->reported = true;
    s->m->found(s->m->arg, s, id, addr, port);
}

static void browse_cb(AvahiServiceBrowser *b,
                      AvahiIfIndex ifidx,
                      AvahiProtocol proto,
                      AvahiBrowserEvent ev,
                      const char *name,
                      const char *type,
                      const char *domain,
                      AvahiLookupResultFlags flags,
                      void *userdata)
{
    struct disc_mdns *m = userdata;
    struct svc **pp, *s;

    (void)b;
    switch (ev) {
    case AVAHI_BROWSER_NEW:
        if (flags & AVAHI_LOOKUP_RESULT_OUR_OWN)
            return;
        s = avahi_new0(struct svc, 1);
        if (!s)
            return;
        s->m = m;
        s->ifidx = ifidx;
        s->proto = proto;
        s->name = avahi_strdup(name);
        s->type = avahi_strdup(type);
        s->domain = avahi_strdup(domain);
        s->res = avahi_service_resolver_new(m->client, ifidx, proto, name, type, domain,
                                            AVAHI_PROTO_INET, 0, resolve_cb, s);
        if (!s->name || !s->type || !s->domain || !s->res) {
            SH_LOG(SH_LOG_WARN, MOD, "cannot resolve service '%s': %s", name, client_err(m));
            svc_free(s, false);
            return;
        }
        s->next = m->svcs;
        m->svcs = s;
        SH_LOG(SH_LOG_DEBUG, MOD, "service '%s' appeared", name);
        break;
    case AVAHI_BROWSER_REMOVE:
        /* A goodbye (clean stop) or our own interface going away. */
        for (pp = &m->svcs; *pp; pp = &(*pp)->next) {
            s = *pp;
            if (s->ifidx == ifidx && s->proto == proto && strcmp(s->name, name) == 0 &&
                strcmp(s->type, type) == 0 && strcmp(s->domain, domain) == 0) {
                *pp = s->next;
                SH_LOG(SH_LOG_DEBUG, MOD, "service '%s' removed", name);
                svc_free(s, true);
                break;
            }
        }
        break;
    case AVAHI_BROWSER_FAILURE:
        SH_LOG(SH_LOG_WARN, MOD, "browsing failed: %s; restarting the avahi client", client_err(m));
        schedule_restart(m, 0);
        break;
    case AVAHI_BROWSER_ALL_FOR_NOW:
    case AVAHI_BROWSER_CACHE_EXHAUSTED:
        break;
    }
}

/* ---- publishing ---------------------------------------------------------- */

static void publish(struct disc_mdns *m);

static void rename_service(struct disc_mdns *m)
{
    char *n = avahi_alternative_service_name(m->svc_name);

    if (!n)
        return;
    SH_LOG(SH_LOG_INFO, MOD, "service name '%s' is taken, trying '%s'", m->svc_name, n);
    avahi_free(m->svc_name);
    m->svc_name = n;
    m->renames++;
}

static void group_cb(AvahiEntryGroup *g, AvahiEntryGroupState st, void *userdata)
{
    struct disc_mdns *m = userdata;

    switch (st) {
    case AVAHI_ENTRY_GROUP_ESTABLISHED:
        m->renames = 0;
        SH_LOG(SH_LOG_INFO, MOD, "published '%s' (%s port %u)", m->svc_name, DISC_SERVICE_TYPE,
               (unsigned)m->peer_port);
        break;
    case AVAHI_ENTRY_GROUP_COLLISION:
        rename_service(m);
        avahi_entry_group_reset(g);
        publish(m);
        break;
    case AVAHI_ENTRY_GROUP_FAILURE:
        SH_LOG(SH_LOG_WARN, MOD, "publishing failed: %s",
               avahi_strerror(avahi_client_errno(avahi_entry_group_get_client(g))));
        break;
    case AVAHI_ENTRY_GROUP_UNCOMMITED:
    case AVAHI_ENTRY_GROUP_REGISTERING:
        break;
    }
}

static void publish(struct disc_mdns *m)
{
    int r;

    if (!m->group && !(m->group = avahi_entry_group_new(m->client, group_cb, m))) {
        SH_LOG(SH_LOG_WARN, MOD, "cannot create entry group: %s", client_err(m));
        return;
    }
    if (!avahi_entry_group_is_empty(m->group))
        return;
    for (;;) {
        /* IPv4 only, like the browser (see start_browsing). */
        r = avahi_entry_group_add_service_strlst(m->group, AVAHI_IF_UNSPEC, AVAHI_PROTO_INET, 0,
                                                 m->svc_name, DISC_SERVICE_TYPE, NULL, NULL,
                                                 m->peer_port, m->txt);
        if (r != AVAHI_ERR_COLLISION || m->renames >= MAX_RENAMES)
            break;
        rename_service(m);
    }
    if (r >= 0)
        r = avahi_entry_group_commit(m->group);
    if (r < 0)
        SH_LOG(SH_LOG_WARN, MOD, "cannot publish '%s': %s", m->svc_name, avahi_strerror(r));
}

/* ---- the client ---------------------------------------------------------- */

static void start_browsing(struct disc_mdns *m)
{
    if (m->browser)
        return;
    /* IPv4 only: with IPv6 on, every service shows up a second time resolving
     * to a link-local fe80:: address, useless without its interface scope;
     * one IPv4 entry per peer keeps one dial candidate per peer. */
    m->browser = avahi_service_browser_new(m->client, AVAHI_IF_UNSPEC, AVAHI_PROTO_INET,
                                           DISC_SERVICE_TYPE, NULL, 0, browse_cb, m);
    if (!m->browser)
        SH_LOG(SH_LOG_WARN, MOD, "cannot browse %s: %s", DISC_SERVICE_TYPE, client_err(m));
}

static void client_cb(AvahiClient *c, AvahiClientState st, void *userdata)
{
    struct disc_mdns *m = userdata;

    m->client = c; /* the first call comes from inside avahi_client_new */
    switch (st) {
    case AVAHI_CLIENT_S_RUNNING:
        if (m->warned)
            SH_LOG(SH_LOG_INFO, MOD, "avahi-daemon is reachable: mDNS discovery resumes");
        m->warned = false;
        start_browsing(m);
        publish(m);
        break;
    case AVAHI_CLIENT_S_REGISTERING:
    case AVAHI_CLIENT_S_COLLISION:
        if (m->group)
            avahi_entry_group_reset(m->group);
        break;
    case AVAHI_CLIENT_CONNECTING:
        if (!m->warned)
            SH_LOG(SH_LOG_WARN, MOD,
                   "avahi-daemon is not running: no mDNS discovery until it starts "
                   "(static peers keep working)");
        m->warned = true;
        break;
    case AVAHI_CLIENT_FAILURE:
        SH_LOG(SH_LOG_WARN, MOD, "lost avahi-daemon (%s): reconnecting",
               avahi_strerror(avahi_client_errno(c)));
        m->warned = true;
        /* Not here: avahi is still inside its own dispatch. */
        schedule_restart(m, 0);
        break;
    }
}

/* Frees everything that belongs to the client (all dead once it failed). */
static void free_objects(struct disc_mdns *m, bool tell)
{
    while (m->svcs) {
        struct svc *s = m->svcs;
        m->svcs = s->next;
        svc_free(s, tell);
    }
    if (m->browser)
        avahi_service_browser_free(m->browser);
    m->browser = NULL;
    if (m->group)
        avahi_entry_group_free(m->group);
    m->group = NULL;
}

static void start_client(struct disc_mdns *m)
{
    AvahiClient *c;

    /* The error lands in m, not a local: gcc cannot tell that avahi does not
     * keep the pointer, and warns about it dangling. */
    m->new_err = 0;
    c = avahi_client_new(disc_avahi_poll_api(m->poll), AVAHI_CLIENT_NO_FAIL, client_cb, m,
                         &m->new_err);
    if (c) {
        m->client = c;
        return;
    }
    /* NO_FAIL waits for the daemon but not for the D-Bus system bus. */
    m->client = NULL;
    if (!m->warned)
        SH_LOG(SH_LOG_WARN, MOD,
               "cannot reach avahi over D-Bus (%s): retrying every second "
               "(static peers keep working)",
               avahi_strerror(m->new_err));
    m->warned = true;
    schedule_restart(m, RETRY_MS);
}

static void restart_cb(evutil_socket_t fd, short what, void *arg)
{
    struct disc_mdns *m = arg;

    (void)fd;
    (void)what;
    if (m->client) {
        free_objects(m, true);
        avahi_client_free(m->client);
        m->client = NULL;
    }
    start_client(m);
}

int disc_mdns_new(struct event_base *base,
                  const struct disc_mdns_config *cfg,
                  disc_mdns_found_fn found,
                  disc_mdns_lost_fn lost,
                  void *arg,
                  struct disc_mdns **out,
                  struct sh_err *err)
{
    struct disc_mdns *m = calloc(1, sizeof *m);
    char idhex[17];

    if (!m)
        return sh_err_set(err, SH_ENOMEM, "mdns: out of memory");
    m->base = base;
    m->self_id = cfg->self_id;
    snprintf(m->fp, sizeof m->fp, "%s", cfg->fingerprint);
    m->peer_port = cfg->peer_port;
    m->found = found;
    m->lost = lost;
    m->arg = arg;
    disc_node_id_str(cfg->self_id, idhex);
    m->svc_name = avahi_strdup(cfg->name);
    /* An empty AvahiStringList is NULL; each add returns the new head. */
    m->txt = avahi_string_list_add_pair(NULL, "id", idhex);
    m->txt = avahi_string_list_add_pair(m->txt, "fp", cfg->fingerprint);
    m->txt = avahi_string_list_add_printf(m->txt, "api=%u", (unsigned)cfg->api_port);
    m->txt = avahi_string_list_add_printf(m->txt, "v=%u", (unsigned)DISC_PROTO_VERSION);
    m->poll = disc_avahi_poll_new(base);
    m->restart = evtimer_new(base, restart_cb, m);
    if (!m->svc_name || !m->txt || !m->poll || !m->restart) {
        disc_mdns_free(m);
        return sh_err_set(err, SH_ENOMEM, "mdns: out of memory");
    }
    start_client(m);
    *out = m;
    return 0;
}

void disc_mdns_free(struct disc_mdns *m)
{
    if (!m)
        return;
    if (m->restart)
        event_free(m->restart);
    /* Freeing the entry group withdraws the service: peers see a goodbye. */
    free_objects(m, false);
    if (m->client)
        avahi_client_free(m->client);
    disc_avahi_poll_free(m->poll);
    avahi_string_list_free(m->txt);
    avahi_free(m->svc_name);
    free(m);
}
