/* tests/election/test_random.c: hundreds of seeded random scenarios on the
 * simulated cluster. Each forms a cluster (static bootstrap or fresh nodes),
 * runs a chaos phase (loss, duplication, delay/reordering, partitions,
 * crashes with and without persisting, transfers, submits), then heals and
 * must converge. The checker in sim.c runs after every step.
 *
 * Two classes: "stable" keeps a fixed majority up and connected (faults hit
 * only the others) and additionally checks that nothing committed is ever
 * archived; "chaos" lets anything fail, including exact-half splits.
 *
 *   ELECT_SIM_SCENARIOS=N   run N seeds (default 500)
 *   ELECT_SIM_FIRST=F       starting at seed F (default 1)
 *   ELECT_SIM_SEED=S        run seed S alone and print its trace on stderr */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "lib/test.h"
#include "sim.h"

#define DEFAULT_SCENARIOS 500

struct outcome {
    char why[1024];
    bool ok;
    bool stable;
    bool late;
    int n;
    uint64_t heal_ms;
    unsigned long steps;
    size_t epochs, formed_epochs, leaders, submitted;
    unsigned long archives, rewinds;
};

struct rng {
    uint64_t x;
};

static uint64_t next(struct rng *r)
{
    uint64_t z = (r->x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t below(struct rng *r, uint64_t n)
{
    return n ? next(r) % n : 0;
}

/* Runs until the nodes in mask converged (checked every `every` ms) or
 * `limit` ms pass. */
static bool run_to_convergence(
    struct sim *s, unsigned mask, uint64_t limit, uint64_t every, char *why, size_t cap)
{
    uint64_t end = sim_now(s) + limit;
    while (sim_now(s) < end && !sim_failure(s)) {
        sim_run_for(s, every);
        if (sim_converged_among(s, mask, why, cap))
            return true;
    }
    return false;
}

static void run_scenario(uint64_t seed, FILE *trace, struct outcome *o)
{
    struct rng r = {seed * 0x2545f4914f6cdd1dull + 1};
    struct sim_config c;
    struct sim *s;
    char why[256];
    unsigned majority = 0, all;
    uint64_t t0, end, late_join = 0;
    size_t k = 0;
    int late = -1;
    bool fresh;

    memset(o, 0, sizeof *o);
    memset(&c, 0, sizeof c);
    c.n = 2 + (int)below(&r, 6); /* 2..7 nodes */
    c.seed = seed;
    c.T = 100;
    c.delay_min = 1;
    c.delay_max = 5;
    c.trace_out = trace;
    o->stable = below(&r, 3) == 0;
    o->n = c.n;
    all = (1u << c.n) - 1;
    s = sim_new(&c);
    fresh = below(&r, 2) == 0;

    /* Formation: a static bootstrap, or fresh nodes that bootstrap and join.
     * Sometimes the last node stays out: it starts later with an empty disk,
     * cut off past its bootstrap grace, so it founds its own epoch 1 and
     * then meets the established cluster (which must win). */
    if (c.n >= 3 && below(&r, 3) == 0)
        late = c.n - 1;
    o->late = late >= 0;
    if (!fresh)
        sim_preload_members(s, late >= 0 ? c.n - 1 : c.n);
    for (int i = 0; i < c.n; i++)
        if (i != late)
            sim_restart_at(s, i, 1 + below(&r, fresh ? 4 * c.T : c.T / 2));
    if (!run_to_convergence(s, all & ~(late >= 0 ? 1u << late : 0), 200 * c.T, c.T, why,
                            sizeof why)) {
        snprintf(o->why, sizeof o->why, "formation (%s): %s", fresh ? "fresh" : "preloaded",
                 sim_failure(s) ? sim_failure(s) : why);
        goto out;
    }

    o->formed_epochs = sim_epochs_seen(s);
    /* Chaos. In the stable class a random majority stays up and connected
     * (never the late node). */
    if (o->stable) {
        while ((unsigned)__builtin_popcount(majority) * 2 <= (unsigned)c.n)
            majority |= (1u << below(&r, (uint64_t)c.n)) & ~(late >= 0 ? 1u << late : 0);
        sim_set_crashable(s, all & ~majority);
        sim_set_stable(s, majority);
    }
    sim_set_net(s, 1, 2 + below(&r, c.T / 3), (unsigned)below(&r, 150), (unsigned)below(&r, 50));
    sim_set_crash(s, (unsigned)below(&r, 3));
    t0 = sim_now(s);
    end = t0 + 20 * c.T + below(&r, 80 * c.T);
    if (late >= 0) {
        sim_partition(s, 1u << late);
        sim_start(s, late);
        late_join = t0 + 5 * c.T + below(&r, 10 * c.T); /* after its grace (3T..4T) */
    }
    while (sim_now(s) < end && !sim_failure(s)) {
        uint64_t a = below(&r, 100);
        int i = (int)below(&r, (uint64_t)c.n), j = (int)below(&r, (uint64_t)c.n);
        int l = sim_leader(s);
        bool minor_i = !((majority >> i) & 1), minor_j = !((majority >> j) & 1);
        bool minor_l = l >= 0 && !((majority >> l) & 1);
        sim_run_for(s, c.T / 10 + below(&r, c.T));
        if (late_join && sim_now(s) >= late_join) {
            for (int x = 0; x < c.n; x++)
                sim_connect(s, late, x, true);
            late_join = 0;
        }
        l = sim_leader(s);
        minor_l = l >= 0 && !((majority >> l) & 1);
        if (a < 30) {
            /* A burst of submits, so entries are often half replicated
             * when the next fault hits. */
            for (uint64_t b = 1 + below(&r, 4); b > 0 && l >= 0; b--) {
                char payload[96];
                snprintf(payload, sizeof payload,
                         "{\"type\":\"test\",\"seed\":%" PRIu64 ",\"n\":%zu}", seed, k++);
                if (sim_submit(s, l, payload) == 0)
                    o->submitted++;
            }
        } else if (a < 35) {
            if (l >= 0)
                sim_transfer(s, l, 0);
        } else if (a < 45) {
            /* Crash the leader (right after a burst, often). */
            if (l >= 0 && (!o->stable || minor_l)) {
                sim_crash(s, l);
                sim_restart_at(s, l, sim_now(s) + 1 + below(&r, 20 * c.T));
            }
        } else if (a < 55) {
            if (l >= 0 && (!o->stable || minor_l))
                sim_partition(s, 1u << l);
        } else if (a < 65) {
            if (!o->stable)
                sim_partition(s, (unsigned)(1 + below(&r, all - 1)));
            else if (minor_i)
                sim_partition(s, 1u << i);
        } else if (a < 77) {
            for (int x = 0; x < c.n; x++)
                for (int y = 0; y < c.n; y++)
                    sim_connect(s, x, y, true);
        } else if (a < 85) {
            if ((!o->stable || minor_i) && sim_up(s, i)) {
                sim_crash(s, i);
                sim_restart_at(s, i, sim_now(s) + 1 + below(&r, 30 * c.T));
            }
        } else if (a < 92) {
            if (!o->stable || minor_i || minor_j)
                sim_connect(s, i, j, false);
        }
    }
    if (sim_failure(s))
        goto out;

    /* Heal: everything up and connected, no loss; one lineage must win. */
    sim_heal(s);
    t0 = sim_now(s);
    if (!run_to_convergence(s, all, 400 * c.T, c.T / 2, why, sizeof why)) {
        snprintf(o->why, sizeof o->why, "no convergence %" PRIu64 " ms after heal: %s",
                 sim_now(s) - t0, sim_failure(s) ? sim_failure(s) : why);
        goto out;
    }
    o->heal_ms = sim_now(s) - t0;
    o->ok = true;
out:
    if (!o->ok && !o->why[0])
        snprintf(o->why, sizeof o->why, "%s", sim_failure(s) ? sim_failure(s) : "unknown");
    o->steps = sim_steps(s);
    o->epochs = sim_epochs_seen(s);
    o->leaders = sim_leaders_seen(s);
    o->archives = sim_archives(s);
    o->rewinds = sim_rewinds(s);
    sim_free(s);
}

static void random_scenarios(void **state)
{
    const char *one = getenv("ELECT_SIM_SEED");
    const char *count = getenv("ELECT_SIM_SCENARIOS");
    const char *from = getenv("ELECT_SIM_FIRST");
    uint64_t n = DEFAULT_SCENARIOS, first = 1, failed = 0, stable = 0, multi_epoch = 0;
    uint64_t heal_max = 0, heal_sum = 0, steps = 0, submitted = 0, stable_epoch = 0;
    uint64_t leaders = 0, archives = 0, rewinds = 0, lates = 0;
    struct outcome o;
    (void)state;
    if (count && !sh_parse_u64(count, 1000000, &n))
        fail_msg("ELECT_SIM_SCENARIOS=%s is not a number", count);
    if (from && !sh_parse_u64(from, UINT64_MAX / 2, &first))
        fail_msg("ELECT_SIM_FIRST=%s is not a number", from);
    if (one) {
        if (!sh_parse_u64(one, UINT64_MAX / 2, &first))
            fail_msg("ELECT_SIM_SEED=%s is not a number", one);
        n = 1;
    }
    for (uint64_t seed = first; seed < first + n; seed++) {
        run_scenario(seed, one ? stderr : NULL, &o);
        steps += o.steps;
        submitted += o.submitted;
        stable += o.stable;
        multi_epoch += o.epochs > o.formed_epochs;
        stable_epoch += o.stable && o.epochs > o.formed_epochs;
        leaders += o.leaders;
        lates += o.late;
        archives += o.archives;
        rewinds += o.rewinds;
        if (!o.ok) {
            failed++;
            printf("# seed %" PRIu64
                   " (%d nodes, %s%s) FAILED: %s\n#   rerun: ELECT_SIM_SEED=%" PRIu64 "\n",
                   seed, o.n, o.stable ? "stable" : "chaos", o.late ? ", late fresh node" : "",
                   o.why, seed);
            continue;
        }
        heal_sum += o.heal_ms;
        if (o.heal_ms > heal_max)
            heal_max = o.heal_ms;
    }
    printf("# %" PRIu64 " scenarios (%" PRIu64 " stable-majority), %" PRIu64 " failed; %" PRIu64
           " steps, %" PRIu64 " submits accepted; %" PRIu64
           " where chaos started an epoch (%" PRIu64 " stable); heal to convergence avg %" PRIu64
           " ms, max %" PRIu64 " ms (sim time, T = 100 ms)\n",
           n, stable, failed, steps, submitted, multi_epoch, stable_epoch,
           n > failed ? heal_sum / (n - failed) : 0, heal_max);
    printf("# %" PRIu64 " leaderships, %" PRIu64 " truncations archived entries, %" PRIu64
           " of them rewound a commit index (merges of lineages); %" PRIu64
           " scenarios with a late fresh node\n",
           leaders, archives, rewinds, lates);
    assert_int_equal(failed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_scenarios),
    };
    return cmocka_run_group_tests_name("election/random", tests, NULL, NULL);
}
