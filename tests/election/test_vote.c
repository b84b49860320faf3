/* tests/election/test_vote.c: elections (election/vote.c) -- up-to-dateness
 * on generalised terms, one vote per term, stickiness, pre-votes that change
 * nothing, and a full campaign to leader with its no-op entry. */
#include "harness.h"

static const uint64_t three[] = {1, 2, 3};
#define E1 ep3(1, 0, 1)

/* Node 2 of {1,2,3}: [1 EPOCH t1] [2 event t2] ..., term 2, all committed. */
static void follower(struct h *h, int n_events)
{
    struct elect_entry xs[4];
    xs[0] = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, three, 3);
    for (int i = 1; i <= n_events; i++)
        xs[i] = ent(2, E1, "{\"type\":\"x\"}");
    h_new(h, 2);
    assert_int_equal(h_start(h, 2, 0, E1, (uint64_t)n_events + 1, xs, (size_t)n_events + 1), 0);
    h->now = 1000; /* well past any stickiness */
}

static const struct elect_msg *reply(const struct h *h)
{
    const struct elect_msg *r = h_msg(h, ELECT_MSG_REQUEST_VOTE_RESULT, 0);
    assert_non_null(r);
    return r;
}

static void grants_up_to_date_candidate(void **state)
{
    struct h h;
    struct elect_msg m = rv(3, 2, E1, 3, 2, 2, E1, 0);
    (void)state;
    follower(&h, 1);
    assert_int_equal(h_recv(&h, &m), 0);
    assert_int_equal(reply(&h)->rvr.granted, 1);
    assert_int_equal(reply(&h)->rvr.req_term, 3);
    assert_true(h.up.flags & ELECT_UPD_HARD);
    assert_int_equal(h.up.hard.term, 3);
    assert_int_equal(h.up.hard.vote, 3);
    assert_int_equal(h.up.hard.vote_epoch, 0);
    assert_true(h_traced(&h, "grant vote to 0000000000000003 for term 3"));
    h_free(&h);
}

static void refuses_older_last_term(void **state)
{
    struct h h;
    /* Longer log, but its last entry is from term 1 < our term 2. */
    struct elect_msg m = rv(3, 2, E1, 3, 5, 1, E1, 0);
    (void)state;
    follower(&h, 1);
    assert_int_equal(h_recv(&h, &m), 0);
    assert_int_equal(reply(&h)->rvr.granted, 0);
    assert_int_equal(h.up.hard.term, 3); /* the term is taken, the vote is not given */
    assert_int_equal(h.up.hard.vote, 0);
    assert_true(h_traced(&h, "log behind"));
    h_free(&h);
}

static void refuses_shorter_log_same_last_term(void **state)
{
    struct h h;
    struct elect_msg m = rv(3, 2, E1, 3, 2, 2, E1, 0);
    (void)state;
    follower(&h, 2); /* our last is index 3, term 2 */
    assert_int_equal(h_recv(&h, &m), 0);
    assert_int_equal(reply(&h)->rvr.granted, 0);
    m.rv.last_index = 3;
    assert_int_equal(h_recv(&h, &m), 0);
    assert_int_equal(reply(&h)->rvr.granted, 1);
    h_free(&h);
}

/* R4: a last entry of a higher epoch beats a higher term of a lower one. */
static void higher_epoch_beats_higher_term(void **state)
{
    struct h h;
    struct elect_entry xs[2];
    struct elect_epoch e2 = ep3(2, 1, 3);
    struct elect_msg m = rv(3, 2, e2, 3, 2, 3, e2, 0);
    (void)state;
    h_new(&h, 2);
    xs[0] = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, three, 3);
    xs[1] = ent(9, E1, "{}");
    assert_int_equal(h_start(&h, 9, 0, E1, 2, xs, 2), 0);
    h.now = 1000;
    assert_int_equal(h_recv(&h, &m), 0);
    /* Adopted epoch 2 at term 3 although our term was 9 (R19). */
    assert_int_equal(h.up.hard.epoch.num, 2);
    assert_int_equal(h.up.hard.term, 3);
    assert_int_equal(reply(&h)->rvr.granted, 1);
    assert_false(elect_in_sync(h.e)); /* pending until epoch 2's entry arrives */
    h_free(&h);
}

static void one_vote_per_term(void **state)
{
    struct h h;
    struct elect_msg a = rv(3, 2, E1, 3, 2, 2, E1, 0), b = rv(1, 2, E1, 3, 2, 2, E1, 0);
    (void)state;
    follower(&h, 1);
    assert_int_equal(h_recv(&h, &a), 0);
    assert_int_equal(reply(&h)->rvr.granted, 1);
    assert_int_equal(h_recv(&h, &b), 0);
    assert_int_equal(reply(&h)->rvr.granted, 0);
    assert_true(h_traced(&h, "already voted"));
    assert_int_equal(h_recv(&h, &a), 0); /* the same candidate again: yes */
    assert_int_equal(reply(&h)->rvr.granted, 1);
    h_free(&h);
}

static void sticky_follower_keeps_its_term(void **state)
{
    struct h h;
    struct elect_msg hb = ae(1, 2, E1, 2, 2, 2, E1, NULL, 0, 2);
    struct elect_msg m = rv(3, 2, E1, 3, 2, 2, E1, 0);
    (void)state;
    follower(&h, 1);
    assert_int_equal(h_recv(&h, &hb), 0);
    assert_int_equal(elect_leader(h.e), 1);
    h.now += H_T - 1;
    assert_int_equal(h_recv(&h, &m), 0);
    assert_int_equal(reply(&h)->rvr.granted, 0);
    assert_int_equal(elect_term(h.e), 2);
    assert_true(h_traced(&h, "leader alive"));
    m.rv.flags = ELECT_VOTE_TRANSFER; /* after TimeoutNow: allowed */
    assert_int_equal(h_recv(&h, &m), 0);
    assert_int_equal(reply(&h)->rvr.granted, 1);
    assert_int_equal(elect_term(h.e), 3);
    h_free(&h);
}

static void pre_vote_changes_nothing(void **state)
{
    struct h h;
    struct elect_msg m = rv(3, 2, E1, 3, 2, 2, E1, ELECT_VOTE_PRE);
    (void)state;
    follower(&h, 1);
    assert_int_equal(h_recv(&h, &m), 0);
    assert_int_equal(reply(&h)->rvr.granted, 1);
    assert_int_equal(reply(&h)->rvr.flags, ELECT_VOTE_PRE);
    assert_false(h.up.flags & ELECT_UPD_HARD);
    assert_int_equal(elect_term(h.e), 2);
    assert_true(h_traced(&h, "grant pre-vote"));
    h_free(&h);
}

static void campaign_to_leader(void **state)
{
    struct h h;
    const struct elect_msg *req;
    const struct elect_entry *noop;
    struct elect_msg r;
    (void)state;
    follower(&h, 1);
    h.now = 0;
    h_run(&h, 2 * H_T); /* the election timeout is in [T, 2T) */
    assert_int_equal(elect_role(h.e), ELECT_ROLE_CANDIDATE);
    req = h_msg(&h, ELECT_MSG_REQUEST_VOTE, 1);
    assert_non_null(req);
    assert_int_equal(req->rv.flags, ELECT_VOTE_PRE);
    assert_int_equal(req->term, 3);       /* the prospective term ... */
    assert_int_equal(elect_term(h.e), 2); /* ... is not taken */
    assert_false(h.up.flags & ELECT_UPD_HARD);
    assert_int_equal(req->rv.last_index, 2);
    assert_int_equal(req->rv.last_term, 2);

    r = rvr(1, 2, E1, 2, 3, ELECT_VOTE_PRE, true);
    assert_int_equal(h_recv(&h, &r), 0);
    assert_true(h.up.flags & ELECT_UPD_HARD);
    assert_int_equal(h.up.hard.term, 3);
    assert_int_equal(h.up.hard.vote, 2);
    req = h_msg(&h, ELECT_MSG_REQUEST_VOTE, 3);
    assert_non_null(req);
    assert_int_equal(req->rv.flags, 0);

    r = rvr(3, 2, E1, 3, 3, 0, true);
    assert_int_equal(h_recv(&h, &r), 0);
    assert_int_equal(elect_role(h.e), ELECT_ROLE_LEADER);
    assert_int_equal(h.up.role, ELECT_ROLE_LEADER);
    assert_true(h.up.flags & ELECT_UPD_ROLE);
    /* Raft §3.6.2: a no-op of the new term, with the core's JSON. */
    assert_int_equal(h.up.append_from, 3);
    assert_int_equal(h.up.n_entries, 1);
    noop = &h.up.entries[0];
    assert_int_equal(noop->kind, ELECT_ENTRY_LEADER);
    assert_int_equal(noop->term, 3);
    assert_string_equal(noop->payload, "{\"type\":\"leader_elected\",\"term\":3,\"node\":"
                                       "\"0000000000000002\",\"epoch\":1}");
    assert_int_equal(h_count(&h, ELECT_MSG_APPEND_ENTRIES), 2);
    h_free(&h);
}

/* A stale or duplicated vote result never counts twice. */
static void duplicate_votes_count_once(void **state)
{
    struct h h;
    struct elect_entry xs[1];
    static const uint64_t five[] = {1, 2, 3, 4, 5};
    struct elect_msg r;
    (void)state;
    h_new(&h, 1);
    xs[0] = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, five, 5);
    assert_int_equal(h_start(&h, 1, 0, E1, 1, xs, 1), 0);
    h_run(&h, 2 * H_T);
    r = rvr(2, 1, E1, 1, 2, ELECT_VOTE_PRE, true);
    assert_int_equal(h_recv(&h, &r), 0);
    assert_int_equal(h_recv(&h, &r), 0);
    assert_int_equal(h_recv(&h, &r), 0);
    assert_int_equal(elect_term(h.e), 1); /* still 2/5 pre-votes */
    r.from = 3;
    assert_int_equal(h_recv(&h, &r), 0);
    assert_int_equal(elect_term(h.e), 2); /* 3/5: now a real election */
    h_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(grants_up_to_date_candidate),
        cmocka_unit_test(refuses_older_last_term),
        cmocka_unit_test(refuses_shorter_log_same_last_term),
        cmocka_unit_test(higher_epoch_beats_higher_term),
        cmocka_unit_test(one_vote_per_term),
        cmocka_unit_test(sticky_follower_keeps_its_term),
        cmocka_unit_test(pre_vote_changes_nothing),
        cmocka_unit_test(campaign_to_leader),
        cmocka_unit_test(duplicate_votes_count_once),
    };
    return cmocka_run_group_tests_name("election/vote", tests, NULL, NULL);
}
