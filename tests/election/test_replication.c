/* tests/election/test_replication.c: AppendEntries (election/replication.c)
 * -- conflict truncation that reports every removed entry for archiving,
 * retry hints, the foreign-tail rule, commit by majority and only for
 * entries of the leader's own term (Raft §3.6.2, "Figure 8"), SUBMIT. */
#include "harness.h"

static const uint64_t three[] = {1, 2, 3};
static const uint64_t five[] = {1, 2, 3, 4, 5};
#define E1 ep3(1, 0, 1)

static void conflict_truncation_archives(void **state)
{
    struct h h;
    struct elect_entry xs[4], in[3];
    struct elect_msg m;
    const struct elect_msg *r;
    (void)state;
    h_new(&h, 2);
    xs[0] = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, three, 3);
    xs[1] = ent(2, E1, "a");
    xs[2] = ent(2, E1, "b");
    xs[3] = ent(2, E1, "c");
    assert_int_equal(h_start(&h, 2, 0, E1, 2, xs, 4), 0);
    in[0] = ent(3, E1, "x");
    in[1] = ent(3, E1, "y");
    in[2] = ent(3, E1, "z");
    m = ae(3, 2, E1, 3, 2, 2, E1, in, 3, 2);
    assert_int_equal(h_recv(&h, &m), 0);
    assert_true(h.up.flags & ELECT_UPD_LOG);
    assert_false(h.up.flags & ELECT_UPD_REWIND);
    assert_int_equal(h.up.truncate_from, 3);
    assert_int_equal(h.up.n_archived, 2);
    assert_string_equal(h.up.archived[0].payload, "b");
    assert_string_equal(h.up.archived[1].payload, "c");
    assert_int_equal(h.up.archived[1].term, 2);
    assert_int_equal(h.up.append_from, 3);
    assert_int_equal(h.up.n_entries, 3);
    assert_string_equal(h.up.entries[2].payload, "z");
    r = h_msg(&h, ELECT_MSG_APPEND_ENTRIES_RESULT, 3);
    assert_non_null(r);
    assert_int_equal(r->aer.success, 1);
    assert_int_equal(r->aer.index, 5);
    assert_int_equal(elect_leader(h.e), 3);
    assert_true(h_traced(&h, "archive entries 3..4 (0 committed in a losing lineage)"));

    /* The same batch again, or an older part of it: nothing changes. */
    assert_int_equal(h_recv(&h, &m), 0);
    assert_false(h.up.flags & ELECT_UPD_LOG);
    m.ae.n_entries = 1;
    assert_int_equal(h_recv(&h, &m), 0);
    assert_false(h.up.flags & ELECT_UPD_LOG);
    assert_int_equal(elect_last_index(h.e), 5);
    h_free(&h);
}

static void mismatch_rejects_with_hint(void **state)
{
    struct h h;
    struct elect_entry xs[4];
    struct elect_msg m;
    const struct elect_msg *r;
    (void)state;
    h_new(&h, 2);
    xs[0] = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, three, 3);
    xs[1] = ent(2, E1, "a");
    xs[2] = ent(2, E1, "b");
    xs[3] = ent(2, E1, "c");
    assert_int_equal(h_start(&h, 2, 0, E1, 1, xs, 4), 0);
    /* Entry 4 has term 2, the leader says 3: skip back past the term-2 run. */
    m = ae(3, 2, E1, 3, 4, 3, E1, NULL, 0, 1);
    assert_int_equal(h_recv(&h, &m), 0);
    r = h_msg(&h, ELECT_MSG_APPEND_ENTRIES_RESULT, 3);
    assert_int_equal(r->aer.success, 0);
    assert_int_equal(r->aer.index, 1);
    assert_false(h.up.flags & ELECT_UPD_LOG);
    /* Past our log: the hint is our last index. */
    m = ae(3, 2, E1, 3, 9, 3, E1, NULL, 0, 1);
    assert_int_equal(h_recv(&h, &m), 0);
    r = h_msg(&h, ELECT_MSG_APPEND_ENTRIES_RESULT, 3);
    assert_int_equal(r->aer.success, 0);
    assert_int_equal(r->aer.index, 4);
    h_free(&h);
}

/* R5 + R19: after adopting a higher epoch, entries past the leader's last
 * index that belong to the losing lineage are archived, and the commit index
 * goes back (REWIND) because some of them were committed there. */
static void foreign_tail_archived_with_rewind(void **state)
{
    struct h h;
    struct elect_entry xs[4];
    static const uint64_t two[] = {2};
    struct elect_epoch lost = ep3(2, 2, 2), won = ep3(2, 2, 3);
    struct elect_msg m;
    (void)state;
    h_new(&h, 2);
    xs[0] = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, three, 3);
    xs[1] = ent(2, E1, "shared");
    xs[2] = conf_ent(ELECT_ENTRY_EPOCH, 3, lost, two, 1);
    xs[3] = ent(3, lost, "mine");
    assert_int_equal(h_start(&h, 3, 2, lost, 4, xs, 4), 0);
    assert_int_equal(elect_role(h.e), ELECT_ROLE_LEADER); /* alone in {2}: adds its no-op, 5 */
    m = ae(3, 2, won, 3, 2, 2, E1, NULL, 0, 2);
    assert_int_equal(h_recv(&h, &m), 0);
    assert_true(h_traced(&h, "adopt epoch 2/2/0000000000000003 from 0000000000000003"));
    assert_int_equal(h.up.hard.epoch.starter, 3);
    assert_int_equal(elect_role(h.e), ELECT_ROLE_FOLLOWER);
    assert_int_equal(h.up.truncate_from, 3);
    assert_int_equal(h.up.n_archived, 3);
    assert_string_equal(h.up.archived[1].payload, "mine");
    assert_int_equal(h.up.archived[2].kind, ELECT_ENTRY_LEADER);
    assert_true(h.up.flags & ELECT_UPD_REWIND);
    assert_int_equal(h.up.hard.commit, 2);
    assert_true(h_traced(&h, "archive entries 3..5 (3 committed in a losing lineage)"));
    assert_false(elect_in_sync(h.e));
    h_free(&h);
}

/* Leader 1 of `members` with log xs (term of the hard state: term). */
static void leader(struct h *h,
                   const uint64_t *members,
                   size_t n,
                   const struct elect_entry *xs,
                   size_t nx,
                   uint64_t term)
{
    h_new(h, 1);
    assert_int_equal(h_start(h, term, 0, E1, 1, xs, nx), 0);
    h_run(h, 2 * H_T);
    h_grant_all(h, members + 1, n - 1);
    assert_int_equal(elect_role(h->e), ELECT_ROLE_LEADER);
}

static void commit_needs_majority(void **state)
{
    struct h h;
    struct elect_entry xs[1];
    struct elect_msg r;
    struct elect_epoch ep;
    uint64_t t;
    (void)state;
    xs[0] = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, five, 5);
    leader(&h, five, 5, xs, 1, 1);
    t = elect_term(h.e);
    ep = elect_current_epoch(h.e);
    assert_int_equal(h_submit(&h, "{\"type\":\"x\"}"), 0);
    assert_int_equal(h.up.submitted_index, 3);
    assert_int_equal(h_count(&h, ELECT_MSG_APPEND_ENTRIES), 4);
    r = aer(2, 1, ep, t, true, 3);
    assert_int_equal(h_recv(&h, &r), 0);
    assert_int_equal(elect_commit(h.e), 1); /* 2 of 5 */
    r.from = 2;                             /* a duplicate does not count twice */
    assert_int_equal(h_recv(&h, &r), 0);
    assert_int_equal(elect_commit(h.e), 1);
    r.from = 4;
    assert_int_equal(h_recv(&h, &r), 0);
    assert_int_equal(elect_commit(h.e), 3); /* 3 of 5 */
    assert_true(h.up.flags & ELECT_UPD_COMMIT);
    assert_int_equal(h.up.hard.commit, 3);
    h_free(&h);
}

/* Raft §3.6.2 (Figure 8): an entry of an older term is never committed by
 * counting replicas, only through an entry of the leader's term. */
static void old_term_commits_only_indirectly(void **state)
{
    struct h h;
    struct elect_entry xs[2];
    struct elect_msg r;
    struct elect_epoch ep;
    uint64_t t;
    (void)state;
    xs[0] = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, five, 5);
    xs[1] = ent(2, E1, "old");
    leader(&h, five, 5, xs, 2, 3);
    t = elect_term(h.e);
    ep = elect_current_epoch(h.e);
    assert_int_equal(t, 4);
    assert_int_equal(elect_last_index(h.e), 3); /* 3 = the no-op of term 4 */
    for (uint64_t f = 2; f <= 4; f++) {
        r = aer(f, 1, ep, t, true, 2);
        assert_int_equal(h_recv(&h, &r), 0);
    }
    assert_int_equal(elect_commit(h.e), 1); /* index 2 is on 4 of 5, still not committed */
    for (uint64_t f = 2; f <= 3; f++) {
        r = aer(f, 1, ep, t, true, 3);
        assert_int_equal(h_recv(&h, &r), 0);
    }
    assert_int_equal(elect_commit(h.e), 3);
    h_free(&h);
}

static void rejected_append_backs_off(void **state)
{
    struct h h;
    struct elect_entry xs[3];
    struct elect_msg r;
    const struct elect_msg *m;
    struct elect_epoch ep;
    (void)state;
    xs[0] = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, three, 3);
    xs[1] = ent(1, E1, "a");
    xs[2] = ent(1, E1, "b");
    leader(&h, three, 3, xs, 3, 1);
    ep = elect_current_epoch(h.e);
    /* Follower 2 has only entry 1: it hints 1, we resend from 2. */
    r = aer(2, 1, ep, elect_term(h.e), false, 1);
    assert_int_equal(h_recv(&h, &r), 0);
    m = h_msg(&h, ELECT_MSG_APPEND_ENTRIES, 2);
    assert_non_null(m);
    assert_int_equal(m->ae.prev_index, 1);
    assert_int_equal(m->ae.n_entries, 3);
    assert_string_equal(m->ae.entries[0].payload, "a");
    h_free(&h);
}

static void submit_refused_off_leader(void **state)
{
    struct h h;
    struct elect_entry xs[1];
    struct elect_msg hb;
    char big[ELECT_MAX_PAYLOAD + 2];
    (void)state;
    h_new(&h, 2);
    xs[0] = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, three, 3);
    assert_int_equal(h_start(&h, 1, 0, E1, 1, xs, 1), 0);
    hb = ae(1, 2, E1, 1, 1, 1, E1, NULL, 0, 1);
    assert_int_equal(h_recv(&h, &hb), 0);
    assert_int_equal(h_submit(&h, "{}"), SH_ENOTLEADER);
    assert_int_equal(h.up.leader, 1);
    assert_string_equal(sh_err_msg(&h.err), "submit: not the leader (leader 0000000000000001)");
    assert_int_equal(h.up.flags, 0);
    assert_int_equal(elect_last_index(h.e), 1);
    h_free(&h);

    xs[0] = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, three, 1);
    h_new(&h, 1);
    assert_int_equal(h_start(&h, 1, 0, E1, 1, xs, 1), 0);
    assert_int_equal(elect_role(h.e), ELECT_ROLE_LEADER); /* alone: at once */
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(h_submit(&h, big), SH_ETOOBIG);
    big[ELECT_MAX_PAYLOAD] = '\0';
    assert_int_equal(h_submit(&h, big), 0);
    assert_int_equal(elect_commit(h.e), 3); /* a lone leader commits at once */
    h_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(conflict_truncation_archives),
        cmocka_unit_test(mismatch_rejects_with_hint),
        cmocka_unit_test(foreign_tail_archived_with_rewind),
        cmocka_unit_test(commit_needs_majority),
        cmocka_unit_test(old_term_commits_only_indirectly),
        cmocka_unit_test(rejected_append_backs_off),
        cmocka_unit_test(submit_refused_off_leader),
    };
    return cmocka_run_group_tests_name("election/replication", tests, NULL, NULL);
}
