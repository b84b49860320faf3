/* tests/election/test_scenarios.c: scripted cluster scenarios with golden
 * traces (in the style of cowsql/raft's test_election.c): every decision of
 * every node, in order, with its time. A change in behaviour shows up as a
 * diff here. ELECT_GOLDEN_PRINT=1 prints the traces as C strings instead of
 * comparing (to review and paste after an intended change).
 *
 * Network: 10 ms one way, no loss; T = 100 ms, heartbeat 20, epoch timeout
 * 600, removal 2000, bootstrap grace 300. Node ids are 1..n. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "lib/test.h"
#include "sim.h"

#define ET 100 /* election timeout */

static struct sim *cluster(int n, uint64_t seed)
{
    struct sim_config c;
    memset(&c, 0, sizeof c);
    c.n = n;
    c.seed = seed;
    c.T = ET;
    c.delay_min = c.delay_max = 10;
    c.golden = true;
    if (getenv("ELECT_SIM_TRACE"))
        c.trace_out = stderr;
    return sim_new(&c);
}

static void print_literal(const char *t)
{
    printf("    expect_trace(s,\n");
    while (*t) {
        const char *nl = strchr(t, '\n');
        size_t len = nl ? (size_t)(nl - t) : strlen(t);
        printf("        \"");
        for (size_t i = 0; i < len; i++) {
            if (t[i] == '"' || t[i] == '\\')
                putchar('\\');
            putchar(t[i]);
        }
        printf("\\n\"\n");
        t += len + (nl ? 1 : 0);
    }
    printf("    );\n");
}

static void expect_trace(struct sim *s, const char *want)
{
    const char *got = sim_trace_take(s);
    if (sim_failure(s))
        fail_msg("invariant: %s", sim_failure(s));
    if (getenv("ELECT_GOLDEN_PRINT")) {
        print_literal(got);
        return;
    }
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "# trace mismatch\n# expected:\n%s# got:\n%s", want, got);
        fail();
    }
}

static void converged(struct sim *s)
{
    char why[256];
    if (!sim_converged(s, why, sizeof why))
        fail_msg("not converged: %s", why);
}

static int leader_of(struct sim *s)
{
    int l = sim_leader(s);
    if (l < 0)
        fail_msg("no leader at %" PRIu64, sim_now(s));
    return l;
}

/* 3-node election; the leader crashes after two submits, the others elect a
 * new one, and the old leader comes back as a follower and catches up. */
static void three_node_election_and_leader_crash(void **state)
{
    struct sim *s = cluster(3, 1);
    int l;
    (void)state;
    sim_preload(s);
    for (int i = 0; i < 3; i++)
        sim_start(s, i);
    sim_run_until(s, 400);
    expect_trace(s, "[    0] 1 > start: term 1, epoch 2/0/0000000000000001, 1 entries, commit 1\n"
                    "[    0] 2 > start: term 1, epoch 2/0/0000000000000001, 1 entries, commit 1\n"
                    "[    0] 3 > start: term 1, epoch 2/0/0000000000000001, 1 entries, commit 1\n"
                    "[  125] 3 > pre-vote for term 2\n"
                    "[  135] 1 > grant pre-vote to 0000000000000003 for term 2\n"
                    "[  135] 2 > grant pre-vote to 0000000000000003 for term 2\n"
                    "[  142] 1 > pre-vote for term 2\n"
                    "[  145] 3 > pre-vote quorum 2/3\n"
                    "            election for term 2\n"
                    "[  152] 2 > grant pre-vote to 0000000000000001 for term 2\n"
                    "[  152] 3 > grant pre-vote to 0000000000000001 for term 2\n"
                    "[  155] 1 > grant vote to 0000000000000003 for term 2\n"
                    "[  155] 2 > grant vote to 0000000000000003 for term 2\n"
                    "[  165] 3 > vote quorum 2/3\n"
                    "            leader of term 2 in epoch 2/0/0000000000000001 (3 members)\n"
                    "[  175] 1 > follow 0000000000000003 in term 2\n"
                    "[  175] 2 > follow 0000000000000003 in term 2\n");
    l = leader_of(s);
    assert_int_equal(sim_submit(s, l, "{\"type\":\"a\"}"), 0);
    assert_int_equal(sim_submit(s, l, "{\"type\":\"b\"}"), 0);
    sim_run_until(s, 500);
    sim_crash(s, l);
    sim_run_until(s, 1000);
    expect_trace(s, "[  619] 1 > pre-vote for term 3\n"
                    "[  627] 2 > pre-vote for term 3\n"
                    "[  629] 2 > grant pre-vote to 0000000000000001 for term 3\n"
                    "[  637] 1 > grant pre-vote to 0000000000000002 for term 3\n"
                    "[  639] 1 > pre-vote quorum 2/3\n"
                    "            election for term 3\n"
                    "[  647] 2 > pre-vote quorum 2/3\n"
                    "            election for term 3\n"
                    "[  649] 2 > refuse vote to 0000000000000001 for term 3: already voted\n"
                    "[  657] 1 > refuse vote to 0000000000000002 for term 3: already voted\n"
                    "[  800] 2 > pre-vote for term 4\n"
                    "[  810] 1 > grant pre-vote to 0000000000000002 for term 4\n"
                    "[  820] 2 > pre-vote quorum 2/3\n"
                    "            election for term 4\n"
                    "[  827] 1 > pre-vote for term 4\n"
                    "[  830] 1 > grant vote to 0000000000000002 for term 4\n"
                    "[  837] 2 > grant pre-vote to 0000000000000001 for term 4\n"
                    "[  840] 2 > vote quorum 2/3\n"
                    "            leader of term 4 in epoch 2/0/0000000000000001 (3 members)\n"
                    "[  850] 1 > follow 0000000000000002 in term 4\n");
    assert_true(leader_of(s) != l);
    sim_start(s, l);
    sim_run_until(s, 1300);
    expect_trace(s, "[ 1000] 3 > start: term 2, epoch 2/0/0000000000000001, 4 entries, commit 4\n"
                    "[ 1010] 3 > follow 0000000000000002 in term 4\n");
    converged(s);
    assert_int_equal(elect_commit(sim_core(s, l)), 5); /* epoch, no-op, a, b, no-op */
    sim_free(s);
}

/* A 2-node cluster loses a node: the survivor waits the epoch timeout, forks
 * a new epoch alone and goes on; when the other comes back it is added
 * through a further epoch (R13) and catches up without losing anything. */
static void two_node_cluster_loses_one(void **state)
{
    struct sim *s = cluster(2, 2);
    int l, f;
    (void)state;
    sim_preload(s);
    sim_start(s, 0);
    sim_start(s, 1);
    sim_run_until(s, 400);
    l = leader_of(s);
    f = 1 - l;
    assert_int_equal(sim_submit(s, l, "{\"type\":\"before\"}"), 0);
    sim_run_until(s, 500);
    sim_trace_clear(s);
    sim_crash(s, f);
    sim_run_until(s, 1600);
    expect_trace(s, "[  667] 2 > no result from a majority for 100 ms\n"
                    "            step down from leader of term 2\n"
                    "[  853] 2 > pre-vote for term 3\n"
                    "[ 1011] 2 > pre-vote for term 3\n"
                    "[ 1167] 2 > no leader for 600 ms, 1/2 reachable\n"
                    "            epoch pre-vote for term 3\n"
                    "            pre-vote quorum 1/2\n"
                    "            epoch vote for term 3\n"
                    "            vote quorum 1/2\n"
                    "            start epoch 3/3/0000000000000002 with 1 members\n"
                    "            leader of term 3 in epoch 3/3/0000000000000002 (1 members)\n");
    assert_int_equal(elect_current_epoch(sim_core(s, l)).num, 3);
    assert_int_equal(sim_submit(s, l, "{\"type\":\"alone\"}"), 0);
    sim_run_until(s, 1700);
    sim_start(s, f);
    sim_run_until(s, 2000);
    expect_trace(
        s, "[ 1700] 1 > start: term 2, epoch 2/0/0000000000000001, 3 entries, commit 3\n"
           "[ 1710] 1 > adopt epoch 3/3/0000000000000002 from 0000000000000002 (was "
           "2/0/0000000000000001)\n"
           "            follow 0000000000000002 in term 3\n"
           "[ 1720] 2 > grow from one member: epoch 4/5/0000000000000002 adds 0000000000000001\n"
           "[ 1730] 1 > adopt epoch 4/5/0000000000000002 from 0000000000000002 (was "
           "3/3/0000000000000002)\n"
           "            follow 0000000000000002 in term 3\n");
    converged(s);
    assert_int_equal(sim_archived(s, f), 0);
    assert_int_equal(elect_current_epoch(sim_core(s, f)).num, 4);
    sim_free(s);
}

/* An isolated node of a 3-node cluster never starts an epoch, however long
 * it waits; it rejoins the same lineage when the link heals. */
static void isolated_node_does_not_fork(void **state)
{
    struct sim *s = cluster(3, 3);
    struct elect_epoch before;
    const char *t;
    int l, iso;
    (void)state;
    sim_preload(s);
    for (int i = 0; i < 3; i++)
        sim_start(s, i);
    sim_run_until(s, 400);
    l = leader_of(s);
    iso = (l + 1) % 3;
    before = elect_current_epoch(sim_core(s, iso));
    sim_trace_clear(s);
    sim_partition(s, 1u << iso);
    sim_run_until(s, 400 + 20 * 600);
    t = sim_trace_take(s);
    assert_null(strstr(t, "epoch"));
    assert_non_null(strstr(t, "pre-vote for term")); /* it did try, normally */
    assert_int_equal(elect_epoch_cmp(&before, &(struct elect_epoch){0}) != 0, 1);
    {
        struct elect_epoch now = elect_current_epoch(sim_core(s, iso));
        assert_int_equal(elect_epoch_cmp(&before, &now), 0);
    }
    assert_int_equal(leader_of(s), l);
    assert_int_equal(sim_submit(s, l, "{\"type\":\"meanwhile\"}"), 0);
    sim_heal(s);
    sim_run_until(s, sim_now(s) + 300);
    expect_trace(s, "[12410] 2 > follow 0000000000000001 in term 2\n"
                    "[12420] 1 > add member 0000000000000002 (3 members)\n");
    converged(s);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sim_archived(s, i), 0);
    sim_free(s);
}

/* A fresh node (empty disk) started next to an established cluster is called
 * by its leader within the grace period, adopts its epoch and is added. */
static void fresh_node_joins(void **state)
{
    struct sim *s = cluster(3, 4);
    (void)state;
    sim_preload_members(s, 2);
    sim_start(s, 0);
    sim_start(s, 1);
    sim_run_until(s, 400);
    sim_trace_clear(s);
    sim_start(s, 2);
    sim_run_until(s, 700);
    expect_trace(s, "[  400] 3 > start: term 0, epoch 0/0/0000000000000000, 0 entries, commit 0\n"
                    "[  410] 3 > adopt epoch 2/0/0000000000000001 from 0000000000000001 (was "
                    "0/0/0000000000000000)\n"
                    "            follow 0000000000000001 in term 2\n"
                    "[  420] 1 > add member 0000000000000003 (3 members)\n");
    converged(s);
    sim_free(s);
}

/* A fresh node that could reach nobody bootstraps its own epoch 1; when it
 * meets the established cluster it loses (epoch 1 < 2), archives what it
 * wrote alone and is added like any new node. */
static void fresh_bootstrap_loses_to_cluster(void **state)
{
    struct sim *s = cluster(3, 5);
    (void)state;
    sim_preload_members(s, 2);
    sim_partition(s, 1u << 2);
    for (int i = 0; i < 3; i++)
        sim_start(s, i);
    sim_run_until(s, 800);
    expect_trace(s, "[    0] 1 > start: term 1, epoch 2/0/0000000000000001, 1 entries, commit 1\n"
                    "[    0] 2 > start: term 1, epoch 2/0/0000000000000001, 1 entries, commit 1\n"
                    "[    0] 3 > start: term 0, epoch 0/0/0000000000000000, 0 entries, commit 0\n"
                    "[  125] 1 > pre-vote for term 2\n"
                    "[  135] 2 > grant pre-vote to 0000000000000001 for term 2\n"
                    "[  145] 1 > pre-vote quorum 2/2\n"
                    "            election for term 2\n"
                    "[  154] 2 > pre-vote for term 2\n"
                    "[  155] 2 > grant vote to 0000000000000001 for term 2\n"
                    "[  164] 1 > grant pre-vote to 0000000000000002 for term 2\n"
                    "[  165] 1 > vote quorum 2/2\n"
                    "            leader of term 2 in epoch 2/0/0000000000000001 (2 members)\n"
                    "[  175] 2 > follow 0000000000000001 in term 2\n"
                    "[  366] 3 > no leader within 300 ms: bootstrap epoch 1\n"
                    "            leader of term 1 in epoch 1/0/0000000000000003 (1 members)\n");
    assert_int_equal(elect_current_epoch(sim_core(s, 2)).num, 1);
    assert_int_equal(sim_submit(s, 2, "{\"type\":\"lonely\"}"), 0);
    sim_heal(s);
    sim_run_until(s, 1200);
    expect_trace(s, "[  810] 3 > adopt epoch 2/0/0000000000000001 from 0000000000000001 (was "
                    "1/0/0000000000000003)\n"
                    "            step down from leader of term 1\n"
                    "            follow 0000000000000001 in term 2\n"
                    "[  810] 1 > refuse append-entries from 0000000000000003: epoch "
                    "1/0/0000000000000003 is behind\n"
                    "[  810] 2 > refuse append-entries from 0000000000000003: epoch "
                    "1/0/0000000000000003 is behind\n"
                    "[  816] 1 > refuse append-entries from 0000000000000003: epoch "
                    "1/0/0000000000000003 is behind\n"
                    "[  816] 2 > refuse append-entries from 0000000000000003: epoch "
                    "1/0/0000000000000003 is behind\n"
                    "[  820] 1 > add member 0000000000000003 (3 members)\n"
                    "[  870] 3 > archive entries 1..2 (2 committed in a losing lineage)\n");
    converged(s);
    /* Its EPOCH entry (which also served as its no-op) and its event. */
    assert_int_equal(sim_archived(s, 2), 2);
    assert_int_equal(sim_archived_entry(s, 2, 0)->kind, ELECT_ENTRY_EPOCH);
    assert_string_equal(sim_archived_entry(s, 2, 1)->payload, "{\"type\":\"lonely\"}");
    sim_free(s);
}

/* A 4-node cluster splits 2|2: neither half has a majority, both fork an
 * epoch after the epoch timeout and go on; after the heal the higher epoch
 * wins and the other half archives what it did alone. */
static void exact_half_split_and_heal(void **state)
{
    struct sim *s = cluster(4, 6);
    int a, b;
    (void)state;
    sim_preload(s);
    for (int i = 0; i < 4; i++)
        sim_start(s, i);
    sim_run_until(s, 400);
    assert_int_equal(sim_submit(s, leader_of(s), "{\"type\":\"shared\"}"), 0);
    sim_run_until(s, 500);
    sim_trace_clear(s);
    sim_partition(s, 0x3); /* {1,2} | {3,4} */
    sim_run_until(s, 2000);
    expect_trace(s, "[  625] 1 > pre-vote for term 3\n"
                    "[  635] 2 > grant pre-vote to 0000000000000001 for term 3\n"
                    "[  670] 4 > no result from a majority for 100 ms\n"
                    "            step down from leader of term 2\n"
                    "[  693] 2 > pre-vote for term 3\n"
                    "[  703] 1 > grant pre-vote to 0000000000000002 for term 3\n"
                    "[  800] 1 > pre-vote for term 3\n"
                    "[  810] 2 > grant pre-vote to 0000000000000001 for term 3\n"
                    "[  814] 4 > pre-vote for term 3\n"
                    "[  824] 3 > grant pre-vote to 0000000000000004 for term 3\n"
                    "[  839] 2 > pre-vote for term 3\n"
                    "[  849] 1 > grant pre-vote to 0000000000000002 for term 3\n"
                    "[  853] 3 > pre-vote for term 3\n"
                    "[  863] 4 > grant pre-vote to 0000000000000003 for term 3\n"
                    "[  982] 1 > pre-vote for term 3\n"
                    "[  992] 2 > grant pre-vote to 0000000000000001 for term 3\n"
                    "[  993] 4 > pre-vote for term 3\n"
                    "[ 1003] 3 > grant pre-vote to 0000000000000004 for term 3\n"
                    "[ 1013] 3 > pre-vote for term 3\n"
                    "[ 1021] 2 > pre-vote for term 3\n"
                    "[ 1023] 4 > grant pre-vote to 0000000000000003 for term 3\n"
                    "[ 1031] 1 > grant pre-vote to 0000000000000002 for term 3\n"
                    "[ 1088] 1 > pre-vote for term 3\n"
                    "[ 1098] 2 > grant pre-vote to 0000000000000001 for term 3\n"
                    "[ 1100] 1 > no leader for 600 ms, 2/4 reachable\n"
                    "            epoch pre-vote for term 3\n"
                    "[ 1100] 2 > no leader for 600 ms, 2/4 reachable\n"
                    "            epoch pre-vote for term 3\n"
                    "[ 1105] 4 > pre-vote for term 3\n"
                    "[ 1110] 2 > grant epoch pre-vote to 0000000000000001 for term 3\n"
                    "[ 1110] 1 > grant epoch pre-vote to 0000000000000002 for term 3\n"
                    "[ 1115] 3 > grant pre-vote to 0000000000000004 for term 3\n"
                    "[ 1120] 1 > pre-vote quorum 2/4\n"
                    "            epoch vote for term 3\n"
                    "[ 1120] 2 > pre-vote quorum 2/4\n"
                    "            epoch vote for term 3\n"
                    "[ 1130] 2 > refuse epoch vote to 0000000000000001 for term 3: already voted\n"
                    "[ 1130] 1 > refuse epoch vote to 0000000000000002 for term 3: already voted\n"
                    "[ 1159] 3 > pre-vote for term 3\n"
                    "[ 1169] 4 > grant pre-vote to 0000000000000003 for term 3\n"
                    "[ 1170] 4 > no leader for 600 ms, 2/4 reachable\n"
                    "            epoch pre-vote for term 3\n"
                    "[ 1180] 3 > grant epoch pre-vote to 0000000000000004 for term 3\n"
                    "[ 1190] 4 > pre-vote quorum 2/4\n"
                    "            epoch vote for term 3\n"
                    "[ 1200] 3 > grant epoch vote to 0000000000000004 for term 3\n"
                    "[ 1210] 4 > vote quorum 2/4\n"
                    "            start epoch 3/3/0000000000000004 with 2 members\n"
                    "            leader of term 3 in epoch 3/3/0000000000000004 (2 members)\n"
                    "[ 1220] 3 > adopt epoch 3/3/0000000000000004 from 0000000000000004 (was "
                    "2/0/0000000000000001)\n"
                    "            follow 0000000000000004 in term 3\n"
                    "[ 1222] 2 > no leader for 722 ms, 2/4 reachable\n"
                    "            epoch pre-vote for term 4\n"
                    "[ 1232] 1 > grant epoch pre-vote to 0000000000000002 for term 4\n"
                    "[ 1242] 2 > pre-vote quorum 2/4\n"
                    "            epoch vote for term 4\n"
                    "[ 1252] 1 > grant epoch vote to 0000000000000002 for term 4\n"
                    "[ 1262] 2 > vote quorum 2/4\n"
                    "            start epoch 3/3/0000000000000002 with 2 members\n"
                    "            leader of term 4 in epoch 3/3/0000000000000002 (2 members)\n"
                    "[ 1272] 1 > adopt epoch 3/3/0000000000000002 from 0000000000000002 (was "
                    "2/0/0000000000000001)\n"
                    "            follow 0000000000000002 in term 4\n");
    a = elect_leader(sim_core(s, 0)) - 1;
    b = elect_leader(sim_core(s, 2)) - 1;
    assert_true(a >= 0 && a < 2 && b >= 2);
    assert_int_equal(sim_submit(s, a, "{\"type\":\"left\"}"), 0);
    assert_int_equal(sim_submit(s, b, "{\"type\":\"right\"}"), 0);
    sim_run_until(s, 2100);
    sim_trace_clear(s);
    sim_heal(s);
    sim_run_until(s, 2600);
    expect_trace(s, "[ 2110] 3 > refuse append-entries from 0000000000000002: epoch "
                    "3/3/0000000000000002 is behind\n"
                    "[ 2110] 4 > refuse append-entries from 0000000000000002: epoch "
                    "3/3/0000000000000002 is behind\n"
                    "[ 2110] 1 > adopt epoch 3/3/0000000000000004 from 0000000000000004 (was "
                    "3/3/0000000000000002)\n"
                    "            follow 0000000000000004 in term 3\n"
                    "[ 2110] 2 > adopt epoch 3/3/0000000000000004 from 0000000000000004 (was "
                    "3/3/0000000000000002)\n"
                    "            step down from leader of term 4\n"
                    "            follow 0000000000000004 in term 3\n"
                    "[ 2112] 1 > refuse append-entries from 0000000000000002: epoch "
                    "3/3/0000000000000002 is behind\n"
                    "[ 2112] 3 > refuse append-entries from 0000000000000002: epoch "
                    "3/3/0000000000000002 is behind\n"
                    "[ 2112] 4 > refuse append-entries from 0000000000000002: epoch "
                    "3/3/0000000000000002 is behind\n"
                    "[ 2120] 4 > add member 0000000000000001 (3 members)\n"
                    "[ 2140] 4 > add member 0000000000000002 (4 members)\n"
                    "[ 2170] 1 > archive entries 4..5 (2 committed in a losing lineage)\n"
                    "[ 2190] 2 > archive entries 4..5 (2 committed in a losing lineage)\n");
    converged(s);
    sim_free(s);
}

/* Clean shutdown: the leader hands over to the most up-to-date follower. */
static void leadership_transfer(void **state)
{
    struct sim *s = cluster(3, 7);
    int l;
    (void)state;
    sim_preload(s);
    for (int i = 0; i < 3; i++)
        sim_start(s, i);
    sim_run_until(s, 400);
    l = leader_of(s);
    sim_trace_clear(s);
    assert_int_equal(sim_transfer(s, l, 0), 0);
    sim_run_until(s, 500);
    expect_trace(s, "[  400] 3 > transfer leadership to 0000000000000001\n"
                    "            send timeout-now to 0000000000000001\n"
                    "[  410] 1 > timeout-now from 0000000000000003: campaign at once\n"
                    "            election for term 3\n"
                    "[  420] 2 > grant vote to 0000000000000001 for term 3\n"
                    "[  420] 3 > step down from leader of term 2\n"
                    "            grant vote to 0000000000000001 for term 3\n"
                    "[  430] 1 > vote quorum 2/3\n"
                    "            leader of term 3 in epoch 2/0/0000000000000001 (3 members)\n"
                    "[  440] 2 > follow 0000000000000001 in term 3\n"
                    "[  440] 3 > follow 0000000000000001 in term 3\n");
    assert_true(leader_of(s) != l);
    converged(s);
    sim_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(three_node_election_and_leader_crash),
        cmocka_unit_test(two_node_cluster_loses_one),
        cmocka_unit_test(isolated_node_does_not_fork),
        cmocka_unit_test(fresh_node_joins),
        cmocka_unit_test(fresh_bootstrap_loses_to_cluster),
        cmocka_unit_test(exact_half_split_and_heal),
        cmocka_unit_test(leadership_transfer),
    };
    return cmocka_run_group_tests_name("election/scenarios", tests, NULL, NULL);
}
