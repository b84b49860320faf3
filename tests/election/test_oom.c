/* tests/election/test_oom.c: allocation-failure injection (in the spirit of
 * cowsql/raft's test/lib/heap.h). Two scripted runs -- a leader that
 * campaigns, replicates, adds a member and transfers; a follower that
 * truncates, adopts a higher epoch and archives -- are replayed once per
 * allocation they make, with exactly that allocation failing. The failing
 * step must return SH_ENOMEM without changing anything (a digest of the
 * whole core, internals included, is compared), and retrying it must end in
 * the same final state as the run without failures. */
#include "election/internal.h"
#include "harness.h"

struct faults {
    long countdown; /* the allocation that fails (0 = next); < 0 = none */
    unsigned long calls, failed;
};

static void *faulty_realloc(void *ctx, void *p, size_t n)
{
    struct faults *f = ctx;
    if (n == 0) {
        free(p);
        return NULL;
    }
    f->calls++;
    if (f->countdown >= 0 && f->countdown-- == 0) {
        f->failed++;
        return NULL;
    }
    return realloc(p, n);
}

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

#define MIX(h, v) ((h) = mix((h), &(v), sizeof(v)))

/* Everything a failed step must leave alone, scratch excluded. */
static uint64_t core_state(const struct elect *e)
{
    uint64_t h = 0xcbf29ce484222325ull;
    MIX(h, e->rng);
    MIX(h, e->now);
    MIX(h, e->started);
    MIX(h, e->term);
    MIX(h, e->vote);
    MIX(h, e->vote_epoch);
    MIX(h, e->epoch);
    MIX(h, e->commit);
    MIX(h, e->conf_idx);
    MIX(h, e->prev_conf_idx);
    MIX(h, e->epoch_idx);
    MIX(h, e->role);
    MIX(h, e->leader);
    MIX(h, e->leader_seen);
    MIX(h, e->election_at);
    MIX(h, e->epoch_at);
    MIX(h, e->bootstrap_at);
    MIX(h, e->burned_until);
    MIX(h, e->burned_for);
    MIX(h, e->phase);
    MIX(h, e->cand_epoch);
    MIX(h, e->cand_term);
    h = mix(h, e->granted, e->n_granted * sizeof e->granted[0]);
    h = mix(h, e->prog, e->n_prog * sizeof e->prog[0]);
    MIX(h, e->heartbeat_at);
    MIX(h, e->quorum_at);
    MIX(h, e->term_start);
    MIX(h, e->transfer_to);
    MIX(h, e->transfer_until);
    MIX(h, e->transfer_sent);
    h = mix(h, e->links, e->n_links * sizeof e->links[0]);
    MIX(h, e->log.n);
    for (size_t i = 0; i < e->log.n; i++) {
        const struct elect_entry *x = &e->log.e[i];
        MIX(h, x->term);
        MIX(h, x->epoch);
        MIX(h, x->kind);
        h = mix(h, x->members, 8 * (size_t)x->n_members);
        h = mix(h, x->payload, x->payload_len);
    }
    return h;
}

static bool disarm(struct h *h)
{
    struct faults *f = h->e->p.alloc_ctx;
    f->countdown = -1;
    return true; /* retry the same event */
}

static bool start_core(struct h *h, uint64_t id, struct faults *f)
{
    struct elect_params p;
    int rc;
    memset(h, 0, sizeof *h);
    h_params(&p, id);
    p.realloc_fn = faulty_realloc;
    p.alloc_ctx = f;
    rc = elect_new(&p, &h->e, &h->err);
    if (rc) {
        assert_int_equal(rc, SH_ENOMEM);
        return false;
    }
    h->state = core_state;
    h->on_nomem = disarm;
    return true;
}

static const uint64_t three[] = {1, 2, 3};
#define E1 ep3(2, 0, 1)

static void leader_script(struct h *h)
{
    struct elect_entry xs[3];
    struct elect_epoch ep;
    uint64_t t, last;
    xs[0] = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, three, 3);
    xs[1] = ent(1, E1, "{\"a\":1}");
    xs[2] = ent(1, E1, "{\"b\":2}");
    assert_int_equal(h_start(h, 1, 0, E1, 1, xs, 3), 0);
    for (uint64_t id = 2; id <= 4; id++)
        assert_int_equal(h_link(h, id, true), 0);
    h_run(h, 2 * H_T);
    h_grant_all(h, three + 1, 2);
    assert_int_equal(elect_role(h->e), ELECT_ROLE_LEADER);
    ep = elect_current_epoch(h->e);
    t = elect_term(h->e);
    for (int i = 0; i < 5; i++)
        assert_int_equal(h_submit(h, "{\"type\":\"event\"}"), 0);
    last = elect_last_index(h->e);
    {
        struct elect_msg a = aer(2, 1, ep, t, true, last), p = aer(4, 1, ep, t, true, 0);
        assert_int_equal(h_recv(h, &a), 0);
        assert_int_equal(h_recv(h, &p), 0); /* heard from 4: it is added */
    }
    {
        size_t n;
        elect_members(h->e, &n);
        assert_int_equal(n, 4);
    }
    h_run(h, h->now + H_T / 2);
    {
        struct elect_msg a = aer(3, 1, ep, t, true, elect_last_index(h->e));
        assert_int_equal(h_recv(h, &a), 0);
    }
    assert_int_equal(h_transfer(h, 3), 0);
}

static void follower_script(struct h *h)
{
    struct elect_entry xs[4], in[3], more[2];
    struct elect_epoch won = ep3(3, 2, 3);
    static const uint64_t m13[] = {1, 3};
    struct elect_msg m;
    xs[0] = conf_ent(ELECT_ENTRY_EPOCH, 1, E1, three, 3);
    xs[1] = ent(2, E1, "a");
    xs[2] = ent(2, E1, "b");
    xs[3] = ent(2, E1, "c");
    assert_int_equal(h_start(h, 2, 0, E1, 2, xs, 4), 0);
    in[0] = ent(3, E1, "x");
    in[1] = ent(3, E1, "y");
    in[2] = ent(3, E1, "z");
    m = ae(3, 2, E1, 3, 2, 2, E1, in, 3, 4);
    assert_int_equal(h_recv(h, &m), 0); /* truncates 3..4, appends 3..5 */
    assert_int_equal(h->up.truncate_from, 3);
    more[0] = conf_ent(ELECT_ENTRY_EPOCH, 2, won, m13, 2);
    more[1] = ent(2, won, "w");
    m = ae(3, 2, won, 2, 2, 2, E1, more, 2, 3);
    assert_int_equal(h_recv(h, &m), 0); /* adopts the higher epoch, archives 3..5 */
    assert_int_equal(h->up.truncate_from, 3);
    assert_true(elect_in_sync(h->e));
    h_run(h, h->now + 10 * H_T);
}

static void replay(void (*script)(struct h *), uint64_t id)
{
    struct faults f = {-1, 0, 0};
    struct h h;
    uint64_t ref;
    unsigned long total;
    assert_true(start_core(&h, id, &f));
    script(&h);
    ref = core_state(h.e);
    total = f.calls;
    h_free(&h);
    for (unsigned long k = 0; k < total; k++) {
        struct faults g = {(long)k, 0, 0};
        if (!start_core(&h, id, &g))
            continue; /* elect_new itself failed: nothing to free */
        script(&h);
        assert_int_equal(g.failed, 1);
        if (core_state(h.e) != ref)
            fail_msg("allocation %lu of %lu failing changed the outcome", k, total);
        h_free(&h);
    }
    printf("# %lu allocations, each failed once\n", total);
}

static void leader_survives_every_failed_allocation(void **state)
{
    (void)state;
    replay(leader_script, 1);
}

static void follower_survives_every_failed_allocation(void **state)
{
    (void)state;
    replay(follower_script, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(leader_survives_every_failed_allocation),
        cmocka_unit_test(follower_survives_every_failed_allocation),
    };
    return cmocka_run_group_tests_name("election/oom", tests, NULL, NULL);
}
