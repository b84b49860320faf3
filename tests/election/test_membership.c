/* tests/election/test_membership.c: membership that follows discovery
 * (election/membership.c) -- single-server changes one at a time, removal
 * of a silent member with the old config's majority while it is pending,
 * growing out of a one-node config through an epoch, leadership transfer. */
#include "harness.h"

static const uint64_t three[] = {1, 2, 3};
static const uint64_t four[] = {1, 2, 3, 4};
#define E1 ep3(1, 0, 1)

/* Leader 1 of `members` (static bootstrap at index 1), linked to them all. */
static void leader(struct h *h, const uint64_t *members, uint32_t n)
{
    struct elect_entry x = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, members, n);
    h_new(h, 1);
    assert_int_equal(h_start(h, 1, 0, E1, 1, &x, 1), 0);
    for (uint32_t i = 1; i < n; i++)
        assert_int_equal(h_link(h, members[i], true), 0);
    h_run(h, 2 * H_T);
    h_grant_all(h, members + 1, n - 1);
    assert_int_equal(elect_role(h->e), ELECT_ROLE_LEADER);
}

static int ack(struct h *h, uint64_t from, uint64_t index)
{
    struct elect_msg r = aer(from, 1, elect_current_epoch(h->e), elect_term(h->e), true, index);
    return h_recv(h, &r);
}

/* The CONFIG entry the last update appended, if any. */
static const struct elect_entry *config_in(const struct h *h)
{
    for (size_t i = 0; i < h->up.n_entries; i++)
        if (h->up.entries[i].kind == ELECT_ENTRY_CONFIG)
            return &h->up.entries[i];
    return NULL;
}

static void adds_linked_nodes_one_at_a_time(void **state)
{
    struct h h;
    const struct elect_entry *c;
    const struct elect_msg *m;
    (void)state;
    leader(&h, three, 3);
    assert_int_equal(h_link(&h, 5, true), 0);
    assert_non_null(h_msg(&h, ELECT_MSG_APPEND_ENTRIES, 5)); /* a probe */
    assert_int_equal(h_msg(&h, ELECT_MSG_APPEND_ENTRIES, 5)->ae.prev_index, 0);
    assert_int_equal(h_link(&h, 4, true), 0);
    /* Linked but not heard from yet: not added, even once committed. */
    assert_int_equal(ack(&h, 2, 2), 0);
    assert_false(h.up.flags & ELECT_UPD_LOG);
    /* 4 answers its probe (it adopted our epoch to do so): committed and
     * heard, so it is added. */
    assert_int_equal(ack(&h, 4, 0), 0);
    assert_int_equal(elect_commit(h.e), 2);
    assert_int_equal(h.up.append_from, 3);
    c = &h.up.entries[0];
    assert_int_equal(c->kind, ELECT_ENTRY_CONFIG);
    assert_int_equal(c->n_members, 4);
    assert_int_equal(c->members[3], 4);
    assert_string_equal(c->payload,
                        "{\"type\":\"member_added\",\"node\":\"0000000000000004\",\"epoch\":1,"
                        "\"term\":2,\"members\":[\"0000000000000001\",\"0000000000000002\","
                        "\"0000000000000003\",\"0000000000000004\"]}");
    assert_true(h_traced(&h, "add member 0000000000000004 (4 members)"));
    m = h_msg(&h, ELECT_MSG_APPEND_ENTRIES, 4);
    assert_non_null(m);
    assert_int_equal(ack(&h, 5, 0), 0); /* heard too, but one change at a time */
    assert_false(h.up.flags & ELECT_UPD_LOG);
    /* It takes effect at once: {1,2,3,4} needs 3 acks. */
    assert_int_equal(ack(&h, 2, 3), 0);
    assert_int_equal(elect_commit(h.e), 2);
    assert_false(h.up.flags & ELECT_UPD_LOG); /* 5 waits: one change at a time */
    assert_int_equal(ack(&h, 3, 3), 0);
    assert_int_equal(elect_commit(h.e), 3);
    assert_int_equal(h.up.append_from, 4); /* and now 5 */
    assert_int_equal(h.up.entries[0].n_members, 5);
    h_free(&h);
}

static void removes_silent_member_with_old_majority(void **state)
{
    struct h h;
    const struct elect_entry *c = NULL;
    uint64_t removal = 20 * H_T;
    (void)state;
    leader(&h, four, 4);
    /* 2 and 3 answer every heartbeat, 4 never does. */
    while (h.now < removal + 3 * H_T && !c) {
        uint64_t last = elect_last_index(h.e);
        assert_int_equal(h_tick(&h, h.up.next_tick), 0);
        c = config_in(&h);
        if (!c) {
            assert_int_equal(ack(&h, 2, last), 0);
            c = config_in(&h);
        }
        if (!c) {
            assert_int_equal(ack(&h, 3, last), 0);
            c = config_in(&h);
        }
        assert_int_equal(elect_role(h.e), ELECT_ROLE_LEADER);
    }
    assert_non_null(c);
    assert_true(h.now >= removal);
    assert_int_equal(c->n_members, 3);
    assert_int_equal(c->members[2], 3);
    assert_non_null(
        strstr(c->payload, "\"type\":\"member_removed\",\"node\":\"0000000000000004\""));
    /* The reason says how long it was silent: at least the removal timeout. */
    {
        const char *r = strstr(c->payload, "\"reason\":\"silent for ");
        assert_non_null(r);
        assert_true(strtod(r + strlen("\"reason\":\"silent for "), NULL) >= removal / 1000.0);
        assert_string_equal(c->payload + c->payload_len - 4, " s\"}");
    }
    /* {1,2,3} has a majority with 2, but the old {1,2,3,4} needs 3 (R9). */
    {
        uint64_t idx = elect_last_index(h.e), before = elect_commit(h.e);
        assert_int_equal(ack(&h, 2, idx), 0);
        assert_int_equal(elect_commit(h.e), before);
        assert_int_equal(ack(&h, 3, idx), 0);
        assert_int_equal(elect_commit(h.e), idx);
    }
    h_free(&h);
}

/* R13: a lone leader adds its first member through a new epoch. */
static void lone_leader_grows_through_epoch(void **state)
{
    struct h h;
    static const uint64_t one[] = {1};
    struct elect_entry x = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, one, 1);
    const struct elect_entry *c;
    (void)state;
    h_new(&h, 1);
    assert_int_equal(h_start(&h, 1, 0, E1, 1, &x, 1), 0);
    assert_int_equal(elect_role(h.e), ELECT_ROLE_LEADER);
    assert_int_equal(elect_commit(h.e), 2); /* its no-op, alone */
    assert_int_equal(h_link(&h, 2, true), 0);
    assert_false(h.up.flags & ELECT_UPD_LOG); /* probed, not heard from yet */
    assert_int_equal(ack(&h, 2, 0), 0);
    assert_int_equal(h.up.append_from, 3);
    c = &h.up.entries[0];
    assert_int_equal(c->kind, ELECT_ENTRY_EPOCH);
    assert_int_equal(c->epoch.num, 2);
    assert_int_equal(c->epoch.base, 2);
    assert_int_equal(c->epoch.starter, 1);
    assert_string_equal(c->payload, "{\"type\":\"epoch_started\",\"node\":\"0000000000000001\","
                                    "\"epoch\":2,\"base\":2,\"term\":2,\"members\":["
                                    "\"0000000000000001\",\"0000000000000002\"]}");
    assert_true(h.up.flags & ELECT_UPD_HARD);
    assert_int_equal(h.up.hard.epoch.num, 2);
    assert_int_equal(elect_role(h.e), ELECT_ROLE_LEADER);
    assert_non_null(h_msg(&h, ELECT_MSG_APPEND_ENTRIES, 2));
    h_free(&h);
}

static void transfer_to_most_up_to_date(void **state)
{
    struct h h, f;
    const struct elect_msg *m;
    struct elect_entry x = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, three, 3);
    struct elect_msg tn, vote;
    uint64_t last;
    (void)state;
    leader(&h, three, 3);
    last = elect_last_index(h.e);
    assert_int_equal(ack(&h, 3, last), 0); /* 3 is current, 2 is not */
    assert_int_equal(h_transfer(&h, 0), 0);
    assert_true(h_traced(&h, "transfer leadership to 0000000000000003"));
    assert_non_null(h_msg(&h, ELECT_MSG_TIMEOUT_NOW, 3));
    assert_true(h.up.flags & ELECT_UPD_TRANSFERRED);
    assert_int_equal(h_submit(&h, "{}"), SH_EBUSY);
    assert_int_equal(h_transfer(&h, 2), SH_EBUSY);

    /* The target campaigns at once, skipping the pre-vote. */
    h_new(&f, 3);
    assert_int_equal(h_start(&f, 1, 0, E1, 1, &x, 1), 0);
    {
        struct elect_entry in = *elect_entry_at(h.e, 2);
        struct elect_msg a = ae(1, 3, E1, 2, 1, 1, E1, &in, 1, 1);
        assert_int_equal(h_recv(&f, &a), 0);
    }
    tn = msg(ELECT_MSG_TIMEOUT_NOW, 1, 3, E1, 2);
    assert_int_equal(h_recv(&f, &tn), 0);
    m = h_msg(&f, ELECT_MSG_REQUEST_VOTE, 1);
    assert_non_null(m);
    assert_int_equal(m->rv.flags, ELECT_VOTE_TRANSFER);
    assert_int_equal(m->term, 3);
    vote = *m;
    /* The old leader lets it through its stickiness and steps down. */
    assert_int_equal(h_recv(&h, &vote), 0);
    assert_int_equal(elect_role(h.e), ELECT_ROLE_FOLLOWER);
    m = h_msg(&h, ELECT_MSG_REQUEST_VOTE_RESULT, 3);
    assert_int_equal(m->rvr.granted, 1);
    h_free(&f);
    h_free(&h);
}

static void transfer_catches_up_then_times_out(void **state)
{
    struct h h;
    const struct elect_msg *m;
    (void)state;
    leader(&h, three, 3);
    assert_int_equal(h_transfer(&h, 2), 0); /* 2 has acknowledged nothing */
    assert_null(h_msg(&h, ELECT_MSG_TIMEOUT_NOW, 2));
    m = h_msg(&h, ELECT_MSG_APPEND_ENTRIES, 2);
    assert_non_null(m);
    assert_int_equal(ack(&h, 2, elect_last_index(h.e)), 0);
    assert_non_null(h_msg(&h, ELECT_MSG_TIMEOUT_NOW, 2));
    /* Nobody takes over: abandoned after T; with no acks at all the
     * leader then loses its quorum too (R10). */
    {
        bool abandoned = false;
        uint64_t until = h.now + 3 * H_T;
        while (h.now < until && elect_role(h.e) == ELECT_ROLE_LEADER) {
            assert_int_equal(h_tick(&h, h.up.next_tick), 0);
            abandoned = abandoned || h_traced(&h, "transfer to 0000000000000002 abandoned");
        }
        assert_true(abandoned);
        assert_int_equal(elect_role(h.e), ELECT_ROLE_FOLLOWER);
        assert_true(h_traced(&h, "no result from a majority for 100 ms"));
    }
    h_free(&h);

    leader(&h, three, 3);
    assert_int_equal(h_transfer(&h, 7), SH_ENOTFOUND);
    assert_int_equal(h_transfer(&h, 2), 0);
    for (int i = 0; i < 20; i++) {
        uint64_t last = elect_last_index(h.e);
        assert_int_equal(h_tick(&h, h.up.next_tick), 0);
        if (elect_role(h.e) == ELECT_ROLE_LEADER)
            assert_int_equal(ack(&h, 3, last), 0);
    }
    assert_int_equal(elect_role(h.e), ELECT_ROLE_LEADER);
    assert_int_equal(h_submit(&h, "{}"), 0);
    h_free(&h);
}

static void transfer_needs_a_leader_and_a_member(void **state)
{
    struct h h;
    static const uint64_t one[] = {1};
    struct elect_entry x = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, one, 1);
    (void)state;
    h_new(&h, 1);
    assert_int_equal(h_start(&h, 1, 0, E1, 1, &x, 1), 0);
    assert_int_equal(h_transfer(&h, 0), SH_ENOTFOUND);
    assert_string_equal(sh_err_msg(&h.err), "transfer: no other member");
    h_free(&h);
    h_new(&h, 2);
    x = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, three, 3);
    assert_int_equal(h_start(&h, 1, 0, E1, 1, &x, 1), 0);
    assert_int_equal(h_transfer(&h, 0), SH_ENOTLEADER);
    h_free(&h);
}

/* The largest config with the most links: one step sends AppendEntries to
 * 63 members and probes to every linked non-member; one link more is
 * refused with a message. */
static void limits_of_members_and_links(void **state)
{
    static uint64_t ids[ELECT_MAX_MEMBERS];
    struct elect_entry x;
    struct h h;
    (void)state;
    for (int i = 0; i < ELECT_MAX_MEMBERS; i++)
        ids[i] = (uint64_t)i + 1;
    x = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, ids, ELECT_MAX_MEMBERS);
    h_new(&h, 1);
    assert_int_equal(h_start(&h, 1, 0, E1, 1, &x, 1), 0);
    for (uint64_t id = 2; id < 2 + ELECT_MAX_LINKS; id++)
        assert_int_equal(h_link(&h, id, true), 0);
    assert_int_equal(h_link(&h, 9999, true), SH_ETOOBIG);
    assert_string_equal(sh_err_msg(&h.err), "more than 256 peer links");
    h_run(&h, 2 * H_T);
    h_grant_all(&h, ids + 1, ELECT_MAX_MEMBERS - 1);
    assert_int_equal(elect_role(h.e), ELECT_ROLE_LEADER);
    assert_int_equal(h_count(&h, ELECT_MSG_APPEND_ENTRIES),
                     ELECT_MAX_MEMBERS - 1 + ELECT_MAX_LINKS - (ELECT_MAX_MEMBERS - 1));
    h_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(adds_linked_nodes_one_at_a_time),
        cmocka_unit_test(removes_silent_member_with_old_majority),
        cmocka_unit_test(lone_leader_grows_through_epoch),
        cmocka_unit_test(transfer_to_most_up_to_date),
        cmocka_unit_test(transfer_catches_up_then_times_out),
        cmocka_unit_test(transfer_needs_a_leader_and_a_member),
        cmocka_unit_test(limits_of_members_and_links),
    };
    return cmocka_run_group_tests_name("election/membership", tests, NULL, NULL);
}
