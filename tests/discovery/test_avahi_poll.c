/* tests/discovery/test_avahi_poll.c: the AvahiPoll adapter against pipes
 * and timers on a real event_base: event flags, re-arming, hangups, and
 * freeing from inside callbacks. (Against a real avahi-daemon it runs in
 * the netlab test.) */
#include <fcntl.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "harness.h"
#include "lib/test.h"

static struct event_base *base;
static struct disc_avahi_poll *poll_obj;
static const AvahiPoll *api;

struct rec {
    int calls;
    AvahiWatchEvent last, during; /* as passed, and as watch_get_events said */
    bool free_self;
    AvahiWatch *other; /* freed from inside the callback, if set */
    AvahiTimeout *t;
    int rearm; /* timeouts: re-arm this many times */
};

static int each_setup(void **state)
{
    (void)state;
    base = event_base_new();
    poll_obj = disc_avahi_poll_new(base);
    api = disc_avahi_poll_api(poll_obj);
    return base && poll_obj ? 0 : -1;
}

static int each_teardown(void **state)
{
    (void)state;
    disc_avahi_poll_free(poll_obj);
    event_base_free(base);
    return 0;
}

static void watch_cb(AvahiWatch *w, int fd, AvahiWatchEvent ev, void *userdata)
{
    struct rec *r = userdata;
    char c;

    r->calls++;
    r->last = ev;
    r->during = api->watch_get_events(w);
    if (ev & AVAHI_WATCH_IN)
        (void)!read(fd, &c, 1);
    if (r->other) {
        api->watch_free(r->other);
        r->other = NULL;
    }
    if (r->free_self)
        api->watch_free(w);
}

static void pipe_nb(int p[2])
{
    assert_int_equal(pipe(p), 0);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    fcntl(p[1], F_SETFL, O_NONBLOCK);
}

static void watch_in_update_and_events(void **state)
{
    struct rec r = {0};
    int p[2];
    AvahiWatch *w;

    (void)state;
    pipe_nb(p);
    w = api->watch_new(api, p[0], AVAHI_WATCH_IN, watch_cb, &r);
    assert_non_null(w);
    run_for(base, 30);
    assert_int_equal(r.calls, 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    run_for(base, 30);
    assert_int_equal(r.calls, 1);
    assert_true(r.last & AVAHI_WATCH_IN);
    assert_int_equal(r.during, r.last);
    assert_int_equal(api->watch_get_events(w), 0); /* outside a dispatch */
    /* no events asked: silent even with data waiting */
    api->watch_update(w, 0);
    assert_int_equal(write(p[1], "y", 1), 1);
    run_for(base, 30);
    assert_int_equal(r.calls, 1);
    api->watch_update(w, AVAHI_WATCH_IN);
    run_for(base, 30);
    assert_int_equal(r.calls, 2);
    /* hangup is reported as such */
    close(p[1]);
    run_for(base, 30);
    assert_true(r.calls >= 3);
    assert_true(r.last & AVAHI_WATCH_HUP);
    api->watch_free(w);
    close(p[0]);
}

static void watch_out_and_free_inside(void **state)
{
    struct rec r = {0}, victim = {0};
    int p[2], q[2];
    AvahiWatch *w;

    (void)state;
    pipe_nb(p);
    pipe_nb(q);
    /* writable at once; frees itself and another ready watch in its callback */
    victim.calls = 0;
    r.other = api->watch_new(api, q[1], AVAHI_WATCH_OUT, watch_cb, &victim);
    w = api->watch_new(api, p[1], AVAHI_WATCH_OUT, watch_cb, &r);
    assert_non_null(w);
    r.free_self = true;
    run_for(base, 30);
    assert_int_equal(r.calls, 1);
    assert_true(r.last & AVAHI_WATCH_OUT);
    /* the other one may have run before us in that turn, but never after */
    assert_true(victim.calls <= 1);
    int before = victim.calls;
    run_for(base, 30);
    assert_int_equal(victim.calls, before);
    close(p[0]);
    close(p[1]);
    close(q[0]);
    close(q[1]);
}

static void timeout_cb(AvahiTimeout *t, void *userdata)
{
    struct rec *r = userdata;
    struct timeval tv;

    r->calls++;
    if (r->rearm > 0) {
        r->rearm--;
        gettimeofday(&tv, NULL);
        tv.tv_usec += 10000;
        if (tv.tv_usec >= 1000000) {
            tv.tv_sec++;
            tv.tv_usec -= 1000000;
        }
        api->timeout_update(t, &tv);
    } else if (r->free_self) {
        api->timeout_free(t);
    }
}

static void timeouts(void **state)
{
    struct rec past = {0}, zero = {0}, off = {0}, rearm = {0}, selffree = {0};
    struct timeval tv = {1, 0}, z = {0, 0}, now;
    AvahiTimeout *tp, *tz, *toff;

    (void)state;
    tp = api->timeout_new(api, &tv, timeout_cb, &past); /* 1970: long past */
    tz = api->timeout_new(api, &z, timeout_cb, &zero);  /* "now", as D-Bus dispatch asks */
    toff = api->timeout_new(api, NULL, timeout_cb, &off);
    rearm.rearm = 3;
    api->timeout_new(api, &z, timeout_cb, &rearm);
    selffree.free_self = true;
    api->timeout_new(api, &z, timeout_cb, &selffree);
    run_for(base, 100);
    assert_int_equal(past.calls, 1); /* once, then disabled */
    assert_int_equal(zero.calls, 1);
    assert_int_equal(off.calls, 0);
    assert_int_equal(rearm.calls, 4);
    assert_int_equal(selffree.calls, 1);
    /* arming a disabled one later; disarming with NULL */
    gettimeofday(&now, NULL);
    api->timeout_update(toff, &now);
    api->timeout_update(tp, &now);
    api->timeout_update(tp, NULL);
    run_for(base, 50);
    assert_int_equal(off.calls, 1);
    assert_int_equal(past.calls, 1);
    api->timeout_free(tz);
    /* tp, toff and the re-armed one are left for disc_avahi_poll_free */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(watch_in_update_and_events, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(watch_out_and_free_inside, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(timeouts, each_setup, each_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
