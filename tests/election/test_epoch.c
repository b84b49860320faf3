/* tests/election/test_epoch.c: epochs (election/epoch.c) -- their order,
 * who may start one (at least half reachable, every linked member granting),
 * the freeze after an epoch vote, adoption and refusal across epochs, and
 * bootstrap of a fresh node. */
#include "harness.h"

static const uint64_t two[] = {1, 2};
static const uint64_t three[] = {1, 2, 3};
static const uint64_t four[] = {1, 2, 3, 4};
#define E1 ep3(1, 0, 1)

static void start_member(struct h *h, uint64_t id, const uint64_t *members, uint32_t n)
{
    struct elect_entry x = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, members, n);
    h_new(h, id);
    assert_int_equal(h_start(h, 1, 0, E1, 1, &x, 1), 0);
}

/* Ticks until `until`, failing if any update sends an epoch vote request. */
static bool ran_without_epoch_vote(struct h *h, uint64_t until)
{
    while (h->up.next_tick <= until) {
        assert_int_equal(h_tick(h, h->up.next_tick), 0);
        for (size_t i = 0; i < h->up.n_msgs; i++)
            if (h->up.msgs[i].type == ELECT_MSG_REQUEST_VOTE &&
                (h->up.msgs[i].rv.flags & ELECT_VOTE_EPOCH))
                return false;
        if (h->up.hard.epoch.num != 1)
            return false;
    }
    return true;
}

static void order_is_num_base_starter(void **state)
{
    struct elect_epoch a = ep3(1, 0, 9), b = ep3(2, 0, 1), c = ep3(2, 5, 1), d = ep3(2, 5, 2);
    (void)state;
    assert_true(elect_epoch_cmp(&a, &b) < 0); /* a fresh bootstrap loses to any regrown cluster */
    assert_true(elect_epoch_cmp(&b, &c) < 0);
    assert_true(elect_epoch_cmp(&c, &d) < 0);
    assert_true(elect_epoch_cmp(&d, &d) == 0);
    assert_true(elect_tag_cmp(&b, 1, &a, 99) > 0); /* epoch before term */
    assert_true(elect_tag_cmp(&c, 3, &c, 4) < 0);
}

/* An isolated node of three never forks: it only reaches 1/3. */
static void isolated_node_of_three_waits(void **state)
{
    struct h h;
    (void)state;
    start_member(&h, 3, three, 3);
    assert_true(ran_without_epoch_vote(&h, 40 * 6 * H_T));
    assert_int_equal(elect_current_epoch(h.e).num, 1);
    assert_int_equal(elect_role(h.e) == ELECT_ROLE_LEADER, 0);
    h_free(&h);
}

/* A two-node cluster that lost its peer continues in a new epoch. */
static void survivor_of_two_starts_epoch(void **state)
{
    struct h h;
    const struct elect_entry *x;
    (void)state;
    start_member(&h, 1, two, 2);
    assert_true(ran_without_epoch_vote(&h, 6 * H_T - 1));
    h_run(&h, 6 * H_T + 2 * H_T);
    assert_int_equal(elect_role(h.e), ELECT_ROLE_LEADER);
    assert_int_equal(elect_current_epoch(h.e).num, 2);
    assert_int_equal(elect_current_epoch(h.e).base, 1);
    assert_int_equal(elect_current_epoch(h.e).starter, 1);
    x = elect_entry_at(h.e, 2);
    assert_non_null(x);
    assert_int_equal(x->kind, ELECT_ENTRY_EPOCH);
    assert_int_equal(x->n_members, 1);
    assert_string_equal(x->payload, "{\"type\":\"epoch_started\",\"node\":\"0000000000000001\","
                                    "\"epoch\":2,\"base\":1,\"term\":2,\"members\":["
                                    "\"0000000000000001\"]}");
    assert_int_equal(elect_commit(h.e), 2);
    assert_true(elect_in_sync(h.e));
    h_free(&h);
}

/* R16: at least half of the config, and every member we are linked to. */
static void epoch_needs_every_linked_member(void **state)
{
    struct h h;
    struct elect_msg r;
    const struct elect_msg *req;
    uint64_t t;
    (void)state;
    start_member(&h, 1, four, 4);
    assert_int_equal(h_link(&h, 2, true), 0);
    assert_int_equal(h_link(&h, 3, true), 0);
    /* Ride out normal elections (nobody answers) until the epoch rule. */
    while (!(req = h_msg(&h, ELECT_MSG_REQUEST_VOTE, 2)) || !(req->rv.flags & ELECT_VOTE_EPOCH))
        assert_int_equal(h_tick(&h, h.up.next_tick), 0);
    assert_true(h.now >= 6 * H_T);
    assert_int_equal(req->rv.flags, ELECT_VOTE_EPOCH | ELECT_VOTE_PRE);
    assert_true(h_traced(&h, "no leader for"));
    t = req->term;
    r = rvr(2, 1, E1, t - 1, t, ELECT_VOTE_EPOCH | ELECT_VOTE_PRE, true);
    assert_int_equal(h_recv(&h, &r), 0);
    assert_int_equal(elect_term(h.e), t - 1); /* 2/4 is half, but 3 is linked and silent */
    r.from = 3;
    assert_int_equal(h_recv(&h, &r), 0);
    assert_int_equal(elect_term(h.e), t); /* the epoch vote itself */
    assert_int_equal(h.up.hard.vote_epoch, 1);
    assert_int_equal(h.up.hard.vote, 1);
    r = rvr(2, 1, E1, t, t, ELECT_VOTE_EPOCH, true);
    assert_int_equal(h_recv(&h, &r), 0);
    assert_int_equal(elect_role(h.e), ELECT_ROLE_CANDIDATE);
    r.from = 3;
    assert_int_equal(h_recv(&h, &r), 0);
    assert_int_equal(elect_role(h.e), ELECT_ROLE_LEADER);
    assert_int_equal(elect_current_epoch(h.e).num, 2);
    assert_int_equal(h.up.entries[0].n_members, 3); /* 1, 2, 3: not the silent 4 */
    assert_int_equal(h.up.hard.vote_epoch, 0);
    h_free(&h);
}

/* R18: an epoch vote freezes the voter's old epoch for the epoch timeout,
 * and survives a restart through hard.vote_epoch. */
static void epoch_vote_freezes_voter(void **state)
{
    struct h h;
    struct elect_msg m, hb;
    struct elect_entry x = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, four, 4);
    (void)state;
    start_member(&h, 2, four, 4);
    h.now = 1000;
    m = rv(1, 2, E1, 2, 1, 1, E1, ELECT_VOTE_EPOCH);
    assert_int_equal(h_recv(&h, &m), 0);
    assert_int_equal(h.up.msgs[0].rvr.granted, 1);
    assert_int_equal(h.up.hard.vote_epoch, 1);
    m = rv(3, 2, E1, 3, 1, 1, E1, 0);
    assert_int_equal(h_recv(&h, &m), 0);
    assert_true(h_traced(&h, "frozen by an epoch vote"));
    m.rv.flags = ELECT_VOTE_EPOCH;
    assert_int_equal(h_recv(&h, &m), 0);
    assert_true(h_traced(&h, "epoch vote given to another"));
    hb = ae(4, 2, E1, 3, 1, 1, E1, NULL, 0, 1);
    assert_int_equal(h_recv(&h, &hb), 0);
    assert_int_equal(h.up.n_msgs, 0);
    assert_int_equal(elect_term(h.e), 2);
    h_free(&h);

    /* Restarted from that hard state: still frozen. */
    {
        struct elect_event ev;
        memset(&ev, 0, sizeof ev);
        h_new(&h, 2);
        h.now = 10;
        ev.type = ELECT_EV_START;
        ev.start.hard.term = 2;
        ev.start.hard.vote = 1;
        ev.start.hard.vote_epoch = 1;
        ev.start.hard.epoch = E1;
        ev.start.hard.commit = 1;
        ev.start.entries = &x;
        ev.start.n_entries = 1;
        assert_int_equal(h_event(&h, &ev), 0);
    }
    m = rv(3, 2, E1, 3, 1, 1, E1, 0);
    assert_int_equal(h_recv(&h, &m), 0);
    assert_int_equal(h.up.msgs[0].rvr.granted, 0);
    /* After the epoch timeout the freeze is over. */
    h.now += 6 * H_T;
    assert_int_equal(h_recv(&h, &m), 0);
    assert_int_equal(h.up.msgs[0].rvr.granted, 1);
    h_free(&h);
}

static void lower_epoch_is_refused_with_ours(void **state)
{
    struct h h;
    struct elect_msg m;
    struct elect_entry xs[2];
    struct elect_epoch e2 = ep3(2, 1, 1), old = ep3(1, 0, 1);
    const struct elect_msg *r;
    (void)state;
    h_new(&h, 2);
    xs[0] = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, three, 3);
    xs[1] = conf_ent(ELECT_ENTRY_EPOCH, 2, e2, two, 2);
    assert_int_equal(h_start(&h, 2, 0, e2, 2, xs, 2), 0);
    m = rv(3, 2, old, 7, 1, 1, old, 0);
    assert_int_equal(h_recv(&h, &m), 0);
    r = h_msg(&h, ELECT_MSG_REQUEST_VOTE_RESULT, 3);
    assert_non_null(r);
    assert_int_equal(r->rvr.granted, 0);
    assert_int_equal(r->epoch.num, 2);
    assert_int_equal(elect_term(h.e), 2); /* its term 7 means nothing here */
    m = ae(3, 2, old, 7, 1, 1, old, NULL, 0, 1);
    assert_int_equal(h_recv(&h, &m), 0);
    r = h_msg(&h, ELECT_MSG_APPEND_ENTRIES_RESULT, 3);
    assert_non_null(r);
    assert_int_equal(r->aer.success, 0);
    assert_int_equal(r->epoch.num, 2);
    m = rvr(3, 2, old, 7, 7, 0, false);
    assert_int_equal(h_recv(&h, &m), 0);
    assert_int_equal(h.up.n_msgs, 0); /* lower-epoch replies are dropped */
    h_free(&h);
}

static int start_fresh(struct h *h, uint64_t id)
{
    struct elect_epoch none = {0, 0, 0};
    h_new(h, id);
    return h_start(h, 0, 0, none, 0, NULL, 0);
}

static void fresh_node_bootstraps_after_grace(void **state)
{
    struct h h;
    const struct elect_entry *x;
    (void)state;
    assert_int_equal(start_fresh(&h, 5), 0);
    h_run(&h, 3 * H_T - 1);
    assert_int_equal(elect_current_epoch(h.e).num, 0);
    h_run(&h, 4 * H_T);
    assert_int_equal(elect_role(h.e), ELECT_ROLE_LEADER);
    assert_int_equal(elect_current_epoch(h.e).num, 1);
    assert_int_equal(elect_current_epoch(h.e).starter, 5);
    assert_int_equal(elect_term(h.e), 1);
    assert_int_equal(elect_commit(h.e), 1);
    x = elect_entry_at(h.e, 1);
    assert_int_equal(x->kind, ELECT_ENTRY_EPOCH);
    assert_string_equal(x->payload, "{\"type\":\"epoch_started\",\"node\":\"0000000000000005\","
                                    "\"epoch\":1,\"base\":0,\"term\":1,\"members\":["
                                    "\"0000000000000005\"]}");
    h_free(&h);
}

static void fresh_node_called_by_leader_never_bootstraps(void **state)
{
    struct h h;
    struct elect_epoch est = ep3(2, 5, 9);
    struct elect_msg m = ae(9, 5, est, 4, 7, 4, est, NULL, 0, 7);
    const struct elect_msg *r;
    (void)state;
    assert_int_equal(start_fresh(&h, 5), 0);
    h.now = H_T;
    assert_int_equal(h_recv(&h, &m), 0);
    r = h_msg(&h, ELECT_MSG_APPEND_ENTRIES_RESULT, 9);
    assert_int_equal(r->aer.success, 0);
    assert_int_equal(r->aer.index, 0); /* send me everything */
    assert_int_equal(h.up.hard.epoch.num, 2);
    assert_false(elect_in_sync(h.e));
    h_run(&h, 20 * H_T);
    assert_int_equal(elect_current_epoch(h.e).num, 2);
    assert_int_equal(elect_last_index(h.e), 0);
    assert_true(elect_role(h.e) != ELECT_ROLE_LEADER);
    h_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(order_is_num_base_starter),
        cmocka_unit_test(isolated_node_of_three_waits),
        cmocka_unit_test(survivor_of_two_starts_epoch),
        cmocka_unit_test(epoch_needs_every_linked_member),
        cmocka_unit_test(epoch_vote_freezes_voter),
        cmocka_unit_test(lower_epoch_is_refused_with_ours),
        cmocka_unit_test(fresh_node_bootstraps_after_grace),
        cmocka_unit_test(fresh_node_called_by_leader_never_bootstraps),
    };
    return cmocka_run_group_tests_name("election/epoch", tests, NULL, NULL);
}
