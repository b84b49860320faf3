/* discovery/avahi_poll.c: avahi's AvahiPoll main-loop abstraction on top of
 * a libevent event_base, so avahi-client (and the D-Bus connection under it)
 * runs in the agent's one loop. Debian's avahi 0.8 ships only glib and
 * "simple" adapters; this one is written from avahi-common/watch.h's contract:
 *
 *  - a watch fires its callback while its fd has any of the asked events;
 *    watch_update may change them, watch_get_events returns what happened in
 *    the current dispatch, and the callback may free its own watch;
 *  - a timeout fires once at an absolute gettimeofday() time and is then
 *    disabled until timeout_update re-arms it (NULL disarms); the callback
 *    may update or free its own timeout.
 *
 * Freeing inside one's own callback is made safe by marking the object dead
 * and releasing its memory when the dispatch returns (the redis ae.c way),
 * because this file still touches the object after calling avahi back.
 */
#include <poll.h>
#include <stdlib.h>
#include <sys/time.h>

#include <avahi-common/watch.h>
#include <event2/event.h>

#include "discovery/internal.h"

struct AvahiWatch {
    struct AvahiWatch *next;
    struct AvahiWatch *prev;
    struct disc_avahi_poll *owner;
    struct event *ev;
    int fd;
    AvahiWatchEvent want;
    AvahiWatchEvent happened; /* only during a dispatch */
    AvahiWatchCallback cb;
    void *userdata;
    bool dispatching;
    bool dead; /* freed by avahi during its own callback */
};

struct AvahiTimeout {
    struct AvahiTimeout *next;
    struct AvahiTimeout *prev;
    struct disc_avahi_poll *owner;
    struct event *ev;
    AvahiTimeoutCallback cb;
    void *userdata;
    bool dispatching;
    bool dead;
};

struct disc_avahi_poll {
    AvahiPoll api; /* api.userdata points back here */
    struct event_base *base;
    struct AvahiWatch *watches;
    struct AvahiTimeout *timeouts;
};

/* ---- watches ------------------------------------------------------------- */

static short to_libevent(AvahiWatchEvent e)
{
    short f = 0;
    /* HUP and ERR cannot be asked for separately from epoll/poll: they are
     * always reported, and libevent reports them as readable. */
    if (e & (AVAHI_WATCH_IN | AVAHI_WATCH_HUP | AVAHI_WATCH_ERR))
        f |= EV_READ;
    if (e & AVAHI_WATCH_OUT)
        f |= EV_WRITE;
    return f;
}

static void watch_fire(evutil_socket_t fd, short what, void *arg)
{
    struct AvahiWatch *w = arg;
    struct pollfd p = {.fd = fd, .events = (short)(w->want & (AVAHI_WATCH_IN | AVAHI_WATCH_OUT))};
    AvahiWatchEvent e = 0;

    /* libevent folds HUP/ERR into "readable"; ask poll(2) for the precise set
     * (libdbus treats a hangup differently from data). */
    if (poll(&p, 1, 0) > 0)
        e = (AvahiWatchEvent)(p.revents & (POLLIN | POLLOUT | POLLERR | POLLHUP));
    if (!e) {
        if (what & EV_READ)
            e |= AVAHI_WATCH_IN;
        if (what & EV_WRITE)
            e |= AVAHI_WATCH_OUT;
    }
    w->happened = e;
    w->dispatching = true;
    w->cb(w, fd, e, w->userdata);
    w->dispatching = false;
    w->happened = 0;
    if (w->dead)
        free(w);
}

static int watch_arm(struct AvahiWatch *w)
{
    short f = to_libevent(w->want);

    if (!f)
        return 0; /* no events: stay registered but idle */
    if (event_assign(w->ev, w->owner->base, w->fd, (short)(f | EV_PERSIST), watch_fire, w) != 0)
        return -1;
    return event_add(w->ev, NULL);
}

static AvahiWatch *watch_new(const AvahiPoll *api,
                             int fd,
                             AvahiWatchEvent event,
                             AvahiWatchCallback callback,
                             void *userdata)
{
    struct disc_avahi_poll *p = api->userdata;
    struct AvahiWatch *w = calloc(1, sizeof *w);

    if (!w)
        return NULL;
    w->owner = p;
    w->fd = fd;
    w->want = event;
    w->cb = callback;
    w->userdata = userdata;
    w->ev = event_new(p->base, fd, EV_READ | EV_PERSIST, watch_fire, w);
    if (!w->ev || watch_arm(w) != 0) {
        if (w->ev)
            event_free(w->ev);
        free(w);
        return NULL;
    }
    w->next = p->watches;
    if (p->watches)
        p->watches->prev = w;
    p->watches = w;
    return w;
}

static void watch_update(AvahiWatch *w, AvahiWatchEvent event)
{
    if (w->dead || event == w->want)
        return;
    /* event_assign is only allowed on a non-pending event. */
    event_del(w->ev);
    w->want = event;
    watch_arm(w);
}

static AvahiWatchEvent watch_get_events(AvahiWatch *w)
{
    return w->happened;
}

static void watch_free(AvahiWatch *w)
{
    struct disc_avahi_poll *p = w->owner;

    if (w->dead)
        return;
    event_free(w->ev);
    w->ev = NULL;
    if (w->prev)
        w->prev->next = w->next;
    else
        p->watches = w->next;
    if (w->next)
        w->next->prev = w->prev;
    if (w->dispatching)
        w->dead = true; /* watch_fire frees it when the callback returns */
    else
        free(w);
}

/* ---- timeouts ------------------------------------------------------------ */

static void timeout_fire(evutil_socket_t fd, short what, void *arg)
{
    struct AvahiTimeout *t = arg;

    (void)fd;
    (void)what;
    t->dispatching = true;
    t->cb(t, t->userdata);
    t->dispatching = false;
    if (t->dead)
        free(t);
}

/* Arms t for the absolute time tv (NULL: disarm). avahi asks for "now" with
 * {0, 0} (D-Bus dispatch), and for times already past: both fire at once. */
static void timeout_arm(struct AvahiTimeout *t, const struct timeval *tv)
{
    struct timeval now, rel = {0, 0};

    event_del(t->ev);
    if (!tv)
        return;
    gettimeofday(&now, NULL);
    if (timercmp(tv, &now, >))
        timersub(tv, &now, &rel);
    event_add(t->ev, &rel);
}

static AvahiTimeout *timeout_new(const AvahiPoll *api,
                                 const struct timeval *tv,
                                 AvahiTimeoutCallback callback,
                                 void *userdata)
{
    struct disc_avahi_poll *p = api->userdata;
    struct AvahiTimeout *t = calloc(1, sizeof *t);

    if (!t)
        return NULL;
    t->owner = p;
    t->cb = callback;
    t->userdata = userdata;
    t->ev = evtimer_new(p->base, timeout_fire, t);
    if (!t->ev) {
        free(t);
        return NULL;
    }
    timeout_arm(t, tv);
    t->next = p->timeouts;
    if (p->timeouts)
        p->timeouts->prev = t;
    p->timeouts = t;
    return t;
}

static void timeout_update(AvahiTimeout *t, const struct timeval *tv)
{
    if (!t->dead)
        timeout_arm(t, tv);
}

static void timeout_free(AvahiTimeout *t)
{
    struct disc_avahi_poll *p = t->owner;

    if (t->dead)
        return;
    event_free(t->ev);
    t->ev = NULL;
    if (t->prev)
        t->prev->next = t->next;
    else
        p->timeouts = t->next;
    if (t->next)
        t->next->prev = t->prev;
    if (t->dispatching)
        t->dead = true;
    else
        free(t);
}

/* ---- the poll object ----------------------------------------------------- */

struct disc_avahi_poll *disc_avahi_poll_new(struct event_base *base)
{
    struct disc_avahi_poll *p = calloc(1, sizeof *p);

    if (!p)
        return NULL;
    p->base = base;
    p->api.userdata = p;
    p->api.watch_new = watch_new;
    p->api.watch_update = watch_update;
    p->api.watch_get_events = watch_get_events;
    p->api.watch_free = watch_free;
    p->api.timeout_new = timeout_new;
    p->api.timeout_update = timeout_update;
    p->api.timeout_free = timeout_free;
    return p;
}

const AvahiPoll *disc_avahi_poll_api(struct disc_avahi_poll *p)
{
    return &p->api;
}

void disc_avahi_poll_free(struct disc_avahi_poll *p)
{
    if (!p)
        return;
    /* avahi frees its objects with the client; anything left is a leak we
     * clean up rather than leave armed on the caller's loop. */
    while (p->watches)
        watch_free(p->watches);
    while (p->timeouts)
        timeout_free(p->timeouts);
    free(p);
}
