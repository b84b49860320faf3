/* tests/election/test_log.c: what the core accepts as persisted state and as
 * events (election/log.c, election.c, recv.c): bad START data and bad
 * messages are refused with a message naming the problem and change
 * nothing; the config and pending state are tracked from the log. */
#include "election/internal.h"
#include "harness.h"

static const uint64_t three[] = {1, 2, 3};
#define E1 ep3(2, 0, 1)

struct bad_start {
    const char *what;
    int rc;
    const char *msg;
};

static int start_with(const struct elect_hard *hard,
                      const struct elect_entry *xs,
                      size_t n,
                      struct sh_err *err)
{
    struct h h;
    struct elect_event ev;
    int rc;
    h_new(&h, 2);
    memset(&ev, 0, sizeof ev);
    ev.type = ELECT_EV_START;
    ev.start.hard = *hard;
    ev.start.entries = xs;
    ev.start.n_entries = n;
    rc = h_event(&h, &ev);
    *err = h.err;
    if (rc) {
        /* Refused: still not started, so anything but START is refused too. */
        assert_int_equal(h_tick(&h, 10), SH_EINVAL);
        assert_int_equal(elect_last_index(h.e), 0);
    }
    h_free(&h);
    return rc;
}

static void start_refuses_bad_state(void **state)
{
    struct elect_hard hard = {3, 0, 0, E1, 2};
    struct elect_entry xs[3];
    struct sh_err err;
    static const uint64_t unsorted[] = {3, 1};
    (void)state;
    xs[0] = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, three, 3);
    xs[1] = ent(2, E1, "a");
    xs[2] = ent(3, E1, "b");
    assert_int_equal(start_with(&hard, xs, 3, &err), 0);

    xs[2].term = 1; /* tags go back */
    assert_int_equal(start_with(&hard, xs, 3, &err), SH_EMALFORMED);
    assert_string_equal(sh_err_msg(&err), "start: entry 3 tag goes back");
    xs[2].term = 4; /* newer than the hard state's term */
    assert_int_equal(start_with(&hard, xs, 3, &err), SH_EMALFORMED);
    assert_string_equal(sh_err_msg(&err), "start: entry 3 newer than the hard state");
    xs[2].term = 3;
    xs[2].kind = 7;
    assert_int_equal(start_with(&hard, xs, 3, &err), SH_EMALFORMED);
    assert_string_equal(sh_err_msg(&err), "start: entry 3: entry kind 7 unknown");
    xs[2].kind = ELECT_ENTRY_EVENT;
    xs[0].members = unsorted;
    xs[0].n_members = 2;
    assert_int_equal(start_with(&hard, xs, 3, &err), SH_EMALFORMED);
    assert_string_equal(sh_err_msg(&err),
                        "start: entry 1: entry members not sorted, unique and non-zero");
    xs[0] = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, three, 0);
    assert_int_equal(start_with(&hard, xs, 3, &err), SH_EMALFORMED);
    assert_string_equal(sh_err_msg(&err), "start: entry 1: epoch entry with 0 members (1..64)");
    xs[0] = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, three, 3);
    hard.epoch = ep3(0, 0, 0);
    assert_int_equal(start_with(&hard, xs, 3, &err), SH_EMALFORMED);
    assert_string_equal(sh_err_msg(&err), "start: entries without an epoch");
    hard.epoch = E1;
    hard.vote_epoch = 2;
    assert_int_equal(start_with(&hard, xs, 3, &err), SH_EMALFORMED);
    hard.vote_epoch = 0;
    assert_int_equal(start_with(&hard, NULL, 3, &err), SH_EINVAL);
}

static void events_out_of_order_are_refused(void **state)
{
    struct h h;
    struct elect_entry x = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, three, 3);
    struct elect_event ev;
    (void)state;
    h_new(&h, 2);
    assert_int_equal(h_submit(&h, "{}"), SH_EINVAL); /* before START */
    assert_string_equal(sh_err_msg(&h.err), "event 4 before START");
    h.now = 50;
    assert_int_equal(h_start(&h, 1, 0, E1, 1, &x, 1), 0);
    assert_int_equal(h_start(&h, 1, 0, E1, 1, &x, 1), SH_EINVAL);
    assert_string_equal(sh_err_msg(&h.err), "start: already started");
    h.now = 40;
    assert_int_equal(h_tick(&h, 40), SH_EINVAL);
    assert_string_equal(sh_err_msg(&h.err), "time went back (40 < 50)");
    h.now = 60;
    memset(&ev, 0, sizeof ev);
    ev.type = 99;
    assert_int_equal(h_event(&h, &ev), SH_EINVAL);
    assert_int_equal(h_link(&h, 2, true), SH_EINVAL); /* a link to ourselves */
    assert_int_equal(h_link(&h, 0, true), SH_EINVAL);
    assert_int_equal(h_transfer(&h, 0), SH_ENOTLEADER);
    h_free(&h);
}

/* A message that breaks the rules is refused with a reason and changes
 * nothing: not the term, not the log, no reply. */
static void bad_messages_change_nothing(void **state)
{
    struct h h;
    struct elect_entry x = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, three, 3), in[2];
    struct elect_msg m;
    struct {
        struct elect_msg m;
        const char *msg;
    } cases[8];
    size_t n = 0;
    (void)state;
    h_new(&h, 2);
    assert_int_equal(h_start(&h, 1, 0, E1, 1, &x, 1), 0);
    in[0] = ent(5, E1, "a");
    in[1] = ent(4, E1, "b");
    cases[n].m = ae(1, 3, E1, 5, 1, 1, E1, NULL, 0, 1);
    cases[n++].msg = "message for 0000000000000003, not us";
    cases[n].m = ae(2, 2, E1, 5, 1, 1, E1, NULL, 0, 1);
    cases[n++].msg = "message from 0000000000000002";
    cases[n].m = ae(1, 2, E1, 5, 1, 1, E1, in, 2, 1);
    cases[n++].msg = "append: entry 1 tag out of order";
    cases[n].m = ae(1, 2, E1, 4, 1, 1, E1, in, 1, 1);
    cases[n++].msg = "append: entry 0 tag out of order"; /* newer than the leader */
    cases[n].m = ae(1, 2, E1, 5, 0, 1, E1, NULL, 0, 1);
    cases[n++].msg = "append: tag for an empty prefix";
    m = ae(1, 2, E1, 5, 1, 1, E1, NULL, 0, 1);
    m.ae.leader_last = 0;
    cases[n].m = m;
    cases[n++].msg = "append: indexes out of range";
    cases[n].m = rv(1, 2, E1, 5, 1, 1, E1, 0x10);
    cases[n++].msg = "vote flags 0x10";
    m = msg(9, 1, 2, E1, 5);
    cases[n].m = m;
    cases[n++].msg = "message type 9 unknown";
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(h_recv(&h, &cases[i].m), SH_EMALFORMED);
        assert_string_equal(sh_err_msg(&h.err), cases[i].msg);
        assert_int_equal(h.up.n_msgs, 0);
        assert_int_equal(h.up.flags, 0);
        assert_int_equal(elect_term(h.e), 1);
        assert_int_equal(elect_last_index(h.e), 1);
    }
    h_free(&h);
}

/* R11: the config is the latest CONFIG/EPOCH entry, committed or not; the
 * previous one is kept while a CONFIG is pending (R9); truncation restores. */
static void config_tracks_the_log(void **state)
{
    struct h h;
    static const uint64_t four[] = {1, 2, 3, 4};
    struct elect_entry xs[3], in[1];
    struct elect_msg m;
    const uint64_t *mem;
    size_t n;
    (void)state;
    h_new(&h, 2);
    xs[0] = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, three, 3);
    xs[1] = ent(1, E1, "a");
    xs[2] = conf_ent(ELECT_ENTRY_CONFIG, 2, E1, four, 4);
    assert_int_equal(h_start(&h, 2, 0, E1, 2, xs, 3), 0);
    mem = elect_members(h.e, &n);
    assert_int_equal(n, 4);
    assert_int_equal(mem[3], 4);
    assert_int_equal(h.e->conf_idx, 3);
    assert_int_equal(h.e->prev_conf_idx, 1);
    assert_int_equal(h.e->epoch_idx, 1);
    assert_true(elect_in_sync(h.e));
    /* A new leader of term 3 never had that config: it goes, 3 members again. */
    in[0] = ent(3, E1, "b");
    m = ae(1, 2, E1, 3, 2, 1, E1, in, 1, 2);
    assert_int_equal(h_recv(&h, &m), 0);
    assert_int_equal(h.up.truncate_from, 3);
    assert_int_equal(h.up.archived[0].kind, ELECT_ENTRY_CONFIG);
    elect_members(h.e, &n);
    assert_int_equal(n, 3);
    assert_int_equal(h.e->conf_idx, 1);
    assert_int_equal(h.e->prev_conf_idx, 0);
    h_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(start_refuses_bad_state),
        cmocka_unit_test(events_out_of_order_are_refused),
        cmocka_unit_test(bad_messages_change_nothing),
        cmocka_unit_test(config_tracks_the_log),
    };
    return cmocka_run_group_tests_name("election/log", tests, NULL, NULL);
}
