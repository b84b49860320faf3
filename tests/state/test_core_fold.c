/* tests/state/test_core_fold.c: state_apply accepts exactly what the Raft
 * core writes. Fresh simulated clusters (tests/election/sim.c: real cores,
 * bootstrap, lineages merging, partitions long enough for removals and
 * new epochs) run with faults, then every node's committed log is folded
 * entry by entry: no core-written entry (EPOCH, CONFIG, LEADER) may be
 * rejected, and the folded members must equal the core's config. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "election/election.h"
#include "lib/test.h"
#include "state/state.h"
#include "tests/election/sim.h"

#define SEEDS 40

/* Folds node i's committed entries; fails on any reject. Returns how many
 * entries of each core kind were folded (kinds[ELECT_ENTRY_*]). */
static void fold_node(struct sim *s, int i, uint64_t seed, size_t kinds[5])
{
    struct elect *e = sim_core(s, i);
    struct state *st = state_new();
    size_t n_members = 0;
    const uint64_t *members;

    assert_non_null(st);
    for (uint64_t x = 1; x <= elect_commit(e); x++) {
        const struct elect_entry *en = elect_entry_at(e, x);
        struct sh_err err;
        sh_err_clear(&err);
        assert_non_null(en);
        if (en->kind == ELECT_ENTRY_EVENT)
            continue; /* the simulator's own opaque test payloads */
        if (state_apply(st, x, en->payload, en->payload_len, &err) != 0)
            fail_msg("seed %" PRIu64 " node %d: entry #%" PRIu64 " (%s) rejected: %s\n  %.*s", seed,
                     i, x, elect_kind_name(en->kind), err.msg, (int)en->payload_len, en->payload);
        kinds[en->kind]++;
        /* the entry's own member list is what the payload folded to */
        if (en->n_members) {
            assert_int_equal(st->n_members, en->n_members);
            assert_memory_equal(st->members, en->members, en->n_members * sizeof(uint64_t));
        }
    }
    members = elect_members(e, &n_members);
    if (elect_commit(e) == elect_last_index(e) && n_members) {
        assert_int_equal(st->n_members, n_members);
        assert_memory_equal(st->members, members, n_members * sizeof(uint64_t));
    }
    state_free(st);
}

static void core_payloads_fold(void **unused)
{
    size_t kinds[5] = {0};
    (void)unused;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        struct sim_config c;
        struct sim *s;
        char why[256];
        int n = 2 + (int)(seed % 4);
        uint64_t end;

        memset(&c, 0, sizeof c);
        c.n = n;
        c.seed = seed;
        c.T = 100;
        c.delay_min = 1;
        c.delay_max = 5;
        s = sim_new(&c);
        assert_non_null(s);
        /* Fresh nodes, cut off until each bootstrapped its own epoch 1:
         * their lineages must merge, then the winner grows (R13, R12). */
        for (int i = 0; i < n; i++) {
            sim_partition(s, 1u << i);
            sim_restart_at(s, i, 1 + seed * 7 % 50);
        }
        sim_run_for(s, 6 * c.T);
        sim_heal(s);
        sim_run_for(s, 40 * c.T);
        sim_submit(s, sim_leader(s) >= 0 ? sim_leader(s) : 0, "{\"type\":\"x\"}");
        /* One node away past the removal timeout (20T), or a half split
         * (a new epoch on each side), then heal. */
        sim_partition(s, seed % 2 ? 1u : (1u << (n / 2)) - 1);
        sim_run_for(s, 30 * c.T);
        sim_heal(s);
        sim_run_for(s, 40 * c.T);
        /* A leader crash: the others elect a new one (a LEADER entry). */
        if (sim_leader(s) >= 0 && n >= 3) {
            int l = sim_leader(s);
            sim_crash(s, l);
            sim_restart_at(s, l, sim_now(s) + 10 * c.T);
        }
        end = sim_now(s) + 400 * c.T;
        while (sim_now(s) < end && !sim_converged(s, why, sizeof why))
            sim_run_for(s, c.T);
        if (sim_failure(s))
            fail_msg("seed %" PRIu64 ": %s", seed, sim_failure(s));
        if (!sim_converged(s, why, sizeof why))
            fail_msg("seed %" PRIu64 ": no convergence: %s", seed, why);
        for (int i = 0; i < n; i++)
            fold_node(s, i, seed, kinds);
        sim_free(s);
    }
    printf("# folded %zu epoch, %zu config, %zu leader entries over %d seeds\n",
           kinds[ELECT_ENTRY_EPOCH], kinds[ELECT_ENTRY_CONFIG], kinds[ELECT_ENTRY_LEADER], SEEDS);
    assert_true(kinds[ELECT_ENTRY_EPOCH] > 0 && kinds[ELECT_ENTRY_CONFIG] > 0 &&
                kinds[ELECT_ENTRY_LEADER] > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(core_payloads_fold),
    };
    return cmocka_run_group_tests_name("state/core_fold", tests, NULL, NULL);
}
