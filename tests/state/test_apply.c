/* tests/state/test_apply.c: the pure fold: each event type, determinism,
 * every reject path leaving the state byte-identical, and the telemetry
 * rate limiter's decisions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/test.h"
#include "state/state.h"

#define A "3fa1c2d4e5f60718"
#define B "77b2000000000001"
#define C "0000000000000c0c"

static char *export_text(const struct state *st)
{
    cJSON *j = NULL;
    char *s;
    assert_int_equal(state_export_json(st, &j), 0);
    s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    assert_non_null(s);
    return s;
}

static void apply_ok(struct state *st, uint64_t index, const char *json)
{
    struct sh_err err;
    sh_err_clear(&err);
    if (state_apply(st, index, json, strlen(json), &err) != 0)
        fail_msg("apply #%llu failed: %s\n  %s", (unsigned long long)index, err.msg, json);
}

static const char *const story[] = {
    "{\"type\":\"epoch_started\",\"epoch\":1,\"node\":\"" A "\",\"members\":[\"" A "\"],"
    "\"time\":1000}",
    "{\"type\":\"leader_elected\",\"term\":1,\"node\":\"" A "\",\"epoch\":1,\"time\":1001}",
    "{\"type\":\"node_joined\",\"node\":\"" B "\",\"name\":\"lab2\",\"addr\":\"198.18.0.2:52416\","
    "\"api_port\":52415,\"resources\":{\"ram_total\":8589934592,\"ram_free\":4294967296,"
    "\"cores\":4,\"models\":[]},\"time\":1002}",
    "{\"type\":\"node_joined\",\"node\":\"" A "\",\"name\":\"lab1\",\"addr\":\"198.18.0.1:52416\","
    "\"api_port\":52415,\"resources\":{\"ram_total\":4080218931,\"ram_free\":2254857830,"
    "\"cores\":2,\"models\":[\"kjv-llama-16m\"]},\"time\":1003}",
    "{\"type\":\"node_info_updated\",\"node\":\"" B "\",\"resources\":{\"ram_total\":8589934592,"
    "\"ram_free\":1073741824,\"cores\":4,\"models\":[\"qwen3-0.6b\"]},\"time\":1004}",
    "{\"type\":\"epoch_started\",\"epoch\":2,\"node\":\"" B "\",\"members\":[\"" A "\",\"" B "\"]}",
    "{\"type\":\"leader_elected\",\"term\":1,\"node\":\"" B "\",\"epoch\":2}",
    "{\"type\":\"leader_elected\",\"term\":4,\"node\":\"" A "\",\"epoch\":2,\"time\":1007}",
    "{\"type\":\"node_joined\",\"node\":\"" C "\",\"name\":\"lab3\",\"addr\":\"[fe80::3]:52416\","
    "\"api_port\":52415,\"resources\":{\"ram_total\":1024,\"ram_free\":0,\"cores\":1,"
    "\"models\":[]}}",
    "{\"type\":\"node_left\",\"node\":\"" B "\",\"reason\":\"silent for 10.0 s\"}",
};
#define NSTORY (sizeof story / sizeof story[0])

static struct state *fold_story(size_t upto)
{
    struct state *st = state_new();
    assert_non_null(st);
    for (size_t i = 0; i < upto; i++)
        apply_ok(st, i + 1, story[i]);
    return st;
}

static void each_type(void **unused)
{
    struct state *st = fold_story(5);
    const struct state_node *a, *b;
    (void)unused;

    assert_int_equal(st->applied_index, 5);
    assert_int_equal(st->time_ms, 1004);
    assert_int_equal(st->epoch, 1);
    assert_true(st->leader == UINT64_C(0x3fa1c2d4e5f60718) && st->term == 1);
    assert_int_equal(st->leader_index, 2);
    assert_int_equal(st->n_nodes, 2);
    /* kept sorted by id although B joined first */
    assert_true(st->nodes[0].id < st->nodes[1].id);
    a = state_find_node(st, UINT64_C(0x3fa1c2d4e5f60718));
    b = state_find_node(st, UINT64_C(0x77b2000000000001));
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a->name, "lab1");
    assert_int_equal(a->joined_index, 4);
    assert_int_equal(a->joined_time_ms, 1003);
    assert_string_equal(a->res.models[0], "kjv-llama-16m");
    assert_true(b->res.ram_free == UINT64_C(1073741824)); /* updated by #5 */
    assert_int_equal(b->updated_index, 5);
    assert_int_equal(b->joined_index, 3);
    assert_string_equal(b->res.models[0], "qwen3-0.6b");
    assert_null(state_find_node(st, 42));

    /* epoch 2 clears the leader; a lower term than epoch 1's is fine there */
    apply_ok(st, 6, story[5]);
    assert_int_equal(st->epoch, 2);
    assert_true(st->leader == STATE_NODE_NONE && st->term == 0);
    assert_int_equal(st->n_members, 2);
    apply_ok(st, 7, story[6]);
    apply_ok(st, 8, story[7]);
    assert_true(st->leader == UINT64_C(0x3fa1c2d4e5f60718) && st->term == 4);
    apply_ok(st, 9, story[8]);
    assert_int_equal(st->n_nodes, 3);
    assert_true(st->nodes[0].id == 0xc0c); /* smallest id first */
    apply_ok(st, 10, story[9]);
    assert_int_equal(st->n_nodes, 2);
    assert_null(state_find_node(st, UINT64_C(0x77b2000000000001)));
    assert_int_equal(st->time_ms, 1007); /* events without time leave it */
    state_free(st);
}

static void same_events_same_state(void **unused)
{
    struct state *x = fold_story(NSTORY), *y = fold_story(NSTORY);
    char *a, *b;
    (void)unused;
    assert_memory_equal(x, y, sizeof *x);
    a = export_text(x);
    b = export_text(y);
    assert_string_equal(a, b);
    /* a node that joined and left leaves no trace in the bytes */
    assert_int_equal(x->n_nodes, 2);
    for (size_t i = x->n_nodes; i < STATE_MAX_NODES; i++) {
        static const struct state_node zero;
        assert_memory_equal(&x->nodes[i], &zero, sizeof zero);
    }
    free(a);
    free(b);
    state_free(x);
    state_free(y);
}

static void rejoin_updates(void **unused)
{
    struct state *st = fold_story(4);
    const struct state_node *b;
    (void)unused;
    apply_ok(st, 5,
             "{\"type\":\"node_joined\",\"node\":\"" B "\",\"name\":\"l2\",\"addr\":\"10.0.0.9:1\","
             "\"api_port\":8080,\"resources\":{\"ram_total\":1,\"ram_free\":1,\"cores\":1,"
             "\"models\":[]}}");
    b = state_find_node(st, UINT64_C(0x77b2000000000001));
    assert_string_equal(b->name, "l2");
    assert_string_equal(b->addr, "10.0.0.9:1");
    assert_int_equal(b->api_port, 8080);
    assert_int_equal(b->joined_index, 3); /* kept */
    assert_int_equal(b->updated_index, 5);
    assert_int_equal(b->rejoins, 1);
    assert_int_equal(st->n_nodes, 2);
    /* the shorter name left no stale bytes behind */
    for (size_t i = 2; i < sizeof b->name; i++)
        assert_int_equal(b->name[i], 0);
    state_free(st);
}

struct reject {
    uint64_t index;
    const char *json;
    int code;
    const char *msg;
};

static const struct reject rejects[] = {
    /* malformed: nothing is looked at before the syntax is right */
    {11, "not json", SH_EMALFORMED, "invalid JSON"},
    {11, "{\"type\":\"nope\"}", SH_EUNSUPPORTED, "unknown type \"nope\""},
    {11, "{\"type\":\"node_left\",\"node\":\"" A "\"}", SH_EMALFORMED, "missing \"reason\""},
    {11, "{\"type\":\"node_left\",\"node\":\"xyz\",\"reason\":\"r\"}", SH_EMALFORMED,
     "expected a node id"},
    {11, "{\"type\":\"leader_elected\",\"term\":1e300,\"node\":\"" A "\",\"epoch\":2}",
     SH_EMALFORMED, "\"term\""},
    /* semantic */
    {10, "{\"type\":\"node_left\",\"node\":\"" A "\",\"reason\":\"r\"}", SH_ERANGE,
     "index 10 is not after the last applied 10"},
    {0, "{\"type\":\"node_left\",\"node\":\"" A "\",\"reason\":\"r\"}", SH_ERANGE, "index 0"},
    {11, "{\"type\":\"node_left\",\"node\":\"" B "\",\"reason\":\"again\"}", SH_ENOTFOUND,
     "node_left: node " B " is not in the cluster"},
    {11,
     "{\"type\":\"node_info_updated\",\"node\":\"" B "\",\"resources\":{\"ram_total\":1,"
     "\"ram_free\":1,\"cores\":1,\"models\":[]}}",
     SH_ENOTFOUND, "node_info_updated: node " B " is not in the cluster"},
    {11, "{\"type\":\"leader_elected\",\"term\":9,\"node\":\"" A "\",\"epoch\":1}", SH_ERANGE,
     "epoch 1 is not the current epoch 2"},
    {11, "{\"type\":\"leader_elected\",\"term\":9,\"node\":\"" A "\",\"epoch\":3}", SH_ERANGE,
     "epoch 3 is not the current epoch 2"},
    {11, "{\"type\":\"leader_elected\",\"term\":4,\"node\":\"" B "\",\"epoch\":2}", SH_ERANGE,
     "term 4 is not after term 4"},
    {11, "{\"type\":\"leader_elected\",\"term\":3,\"node\":\"" A "\",\"epoch\":2}", SH_ERANGE,
     "term 3 is not after term 4"},
    {11, "{\"type\":\"epoch_started\",\"epoch\":2,\"node\":\"" A "\",\"members\":[\"" A "\"]}",
     SH_ERANGE, "epoch 2 is not after the current epoch 2"},
    {11, "{\"type\":\"epoch_started\",\"epoch\":1,\"node\":\"" A "\",\"members\":[\"" A "\"]}",
     SH_ERANGE, "epoch 1 is not after"},
};

/* What the Raft core writes: an epoch whose starter leads at once, then
 * members added and removed one at a time; each reject leaves the state
 * byte-identical. */
static void membership_events(void **unused)
{
    static const struct reject bad[] = {
        {5,
         "{\"type\":\"member_added\",\"node\":\"" C "\",\"epoch\":2,\"term\":3,"
         "\"members\":[\"" C "\",\"" A "\",\"" B "\"]}",
         SH_EINVAL, "node " C " is a member already"},
        {5,
         "{\"type\":\"member_added\",\"node\":\"" B "\",\"epoch\":1,\"term\":3,"
         "\"members\":[\"" A "\",\"" B "\"]}",
         SH_ERANGE, "epoch 1 is not the current epoch 2"},
        {5,
         "{\"type\":\"member_removed\",\"node\":\"" A "\",\"epoch\":2,\"term\":3,"
         "\"members\":[\"" B "\"],\"reason\":\"r\"}",
         SH_ENOTFOUND, "node " A " is not a member"},
        /* a log that skipped a change does not fold */
        {5,
         "{\"type\":\"member_added\",\"node\":\"00000000000000dd\",\"epoch\":2,\"term\":3,"
         "\"members\":[\"00000000000000dd\"]}",
         SH_EINVAL, "are not the current 2 members plus node 00000000000000dd"},
        {5,
         "{\"type\":\"member_removed\",\"node\":\"" C "\",\"epoch\":2,\"term\":3,"
         "\"members\":[\"" A "\"],\"reason\":\"r\"}",
         SH_EINVAL, "not the current 2 members minus node " C},
    };
    struct state *st = state_new(), *before = state_new();
    (void)unused;
    assert_non_null(st);
    assert_non_null(before);
    apply_ok(st, 1,
             "{\"type\":\"epoch_started\",\"node\":\"" A "\",\"epoch\":1,\"base\":0,\"term\":1,"
             "\"members\":[\"" A "\"]}");
    assert_true(st->leader == UINT64_C(0x3fa1c2d4e5f60718) && st->term == 1);
    assert_int_equal(st->leader_index, 1);
    apply_ok(st, 2,
             "{\"type\":\"epoch_started\",\"node\":\"" A "\",\"epoch\":2,\"base\":1,\"term\":1,"
             "\"members\":[\"" A "\",\"" C "\"]}");
    assert_int_equal(st->epoch, 2);
    assert_int_equal(st->n_members, 2);
    apply_ok(st, 3,
             "{\"type\":\"member_added\",\"node\":\"" B "\",\"epoch\":2,\"term\":1,"
             "\"members\":[\"" A "\",\"" B "\",\"" C "\"]}");
    assert_int_equal(st->n_members, 3);
    apply_ok(st, 4,
             "{\"type\":\"member_removed\",\"node\":\"" A "\",\"epoch\":2,\"term\":3,"
             "\"members\":[\"" B "\",\"" C "\"],\"reason\":\"silent for 8.0 s\"}");
    assert_int_equal(st->n_members, 2);
    assert_true(st->members[0] == UINT64_C(0xc0c) &&
                st->members[1] == UINT64_C(0x77b2000000000001));
    /* membership events say nothing of nodes: the registry is untouched */
    assert_int_equal(st->n_nodes, 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sh_err err;
        int rc;
        memcpy(before, st, sizeof *st);
        sh_err_clear(&err);
        rc = state_apply(st, bad[i].index, bad[i].json, strlen(bad[i].json), &err);
        if (rc != bad[i].code || !strstr(err.msg, bad[i].msg))
            fail_msg("case %zu: got %d '%s', want %d '%s'", i, rc, err.msg, bad[i].code,
                     bad[i].msg);
        assert_memory_equal(before, st, sizeof *st);
    }
    state_free(before);
    state_free(st);
}

static void rejects_leave_state_identical(void **unused)
{
    struct state *st = fold_story(NSTORY), *before = state_new();
    (void)unused;
    assert_non_null(before);
    for (size_t i = 0; i < sizeof rejects / sizeof rejects[0]; i++) {
        const struct reject *r = &rejects[i];
        struct sh_err err;
        char *a, *b;
        int rc;
        memcpy(before, st, sizeof *st);
        a = export_text(st);
        sh_err_clear(&err);
        rc = state_apply(st, r->index, r->json, strlen(r->json), &err);
        if (rc != r->code || !strstr(err.msg, r->msg))
            fail_msg("case %zu: got %d '%s', want %d '%s'", i, rc, err.msg, r->code, r->msg);
        assert_memory_equal(before, st, sizeof *st);
        b = export_text(st);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
    state_free(before);
    state_free(st);
}

/* The 65th node is refused, byte-identically; a re-join of a member is not. */
static void cluster_full(void **unused)
{
    struct state *st = state_new(), *before = state_new();
    struct sh_err err;
    char json[512];
    uint64_t idx = 1;
    (void)unused;
    for (int i = 1; i <= STATE_MAX_NODES + 1; i++) {
        int rc;
        snprintf(json, sizeof json,
                 "{\"type\":\"node_joined\",\"node\":\"%016x\",\"name\":\"n%d\",\"addr\":"
                 "\"10.0.0.%d:1\",\"api_port\":1,\"resources\":{\"ram_total\":1,\"ram_free\":1,"
                 "\"cores\":1,\"models\":[]}}",
                 (unsigned)(1000 - i), i, i);
        memcpy(before, st, sizeof *st);
        rc = state_apply(st, idx++, json, strlen(json), &err);
        if (i <= STATE_MAX_NODES) {
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(rc, SH_ETOOBIG);
            assert_non_null(strstr(err.msg, "cluster full, 64 nodes"));
            assert_memory_equal(before, st, sizeof *st);
        }
    }
    for (uint32_t i = 1; i < st->n_nodes; i++)
        assert_true(st->nodes[i - 1].id < st->nodes[i].id);
    snprintf(json, sizeof json,
             "{\"type\":\"node_joined\",\"node\":\"%016x\",\"name\":\"again\",\"addr\":\"h:2\","
             "\"api_port\":2,\"resources\":{\"ram_total\":1,\"ram_free\":1,\"cores\":1,"
             "\"models\":[]}}",
             999u);
    assert_int_equal(state_apply(st, idx++, json, strlen(json), &err), 0);
    state_free(before);
    state_free(st);
}

/* A struct built in C with broken fields is refused without reading past
 * its buffers (ASan watches) and without touching the state. */
static void apply_event_checks_struct(void **unused)
{
    struct state *st = fold_story(4), *before = state_new();
    struct state_event *ev = calloc(1, sizeof *ev);
    struct sh_err err;
    (void)unused;
    memcpy(before, st, sizeof *st);
    ev->type = STATE_EV_NODE_JOINED;
    ev->node = 5;
    memset(ev->name, 'n', sizeof ev->name);
    snprintf(ev->addr, sizeof ev->addr, "h:1");
    ev->api_port = 1;
    ev->res.cores = 1;
    assert_int_equal(state_apply_event(st, 5, ev, &err), SH_EMALFORMED);
    snprintf(ev->name, sizeof ev->name, "ok");
    ev->res.n_models = 2;
    snprintf(ev->res.models[0], sizeof ev->res.models[0], "b");
    snprintf(ev->res.models[1], sizeof ev->res.models[1], "a"); /* not canonical order */
    assert_int_equal(state_apply_event(st, 5, ev, &err), SH_EMALFORMED);
    assert_non_null(strstr(err.msg, "out of order"));
    ev->node = STATE_NODE_NONE;
    assert_int_equal(state_apply_event(st, 5, ev, &err), SH_EMALFORMED);
    ev->type = (enum state_event_type)0;
    assert_int_equal(state_apply_event(st, 5, ev, &err), SH_EUNSUPPORTED);
    assert_memory_equal(before, st, sizeof *st);
    free(ev);
    state_free(before);
    state_free(st);
}

/* ---- telemetry rate limiter ---------------------------------------------- */

static void res(struct state_resources *r,
                uint64_t total,
                uint64_t fr,
                uint32_t cores,
                const char *m1,
                const char *m2)
{
    memset(r, 0, sizeof *r);
    r->ram_total = total;
    r->ram_free = fr;
    r->cores = cores;
    if (m1)
        snprintf(r->models[r->n_models++], sizeof r->models[0], "%s", m1);
    if (m2)
        snprintf(r->models[r->n_models++], sizeof r->models[0], "%s", m2);
}

static void rate_limiter(void **unused)
{
    const struct state_info_policy p = STATE_INFO_POLICY_DEFAULT; /* 5 s, 10%, 256 MiB */
    const uint64_t G = UINT64_C(1) << 30, M = UINT64_C(1) << 20;
    struct state_resources last, now;
    const char *why = NULL;
    (void)unused;

    res(&last, 16 * G, 8 * G, 4, "a", "b");
    /* identical, whatever the time */
    res(&now, 16 * G, 8 * G, 4, "a", "b");
    assert_int_equal(state_info_decide(&last, 0, &now, 1000000, &p, &why), STATE_INFO_SAME);
    assert_string_equal(why, "no significant change");
    /* same models in another order: same */
    res(&now, 16 * G, 8 * G, 4, "b", "a");
    assert_int_equal(state_info_decide(&last, 0, &now, 1000000, &p, NULL), STATE_INFO_SAME);
    /* small RAM drift: 100 MiB of 8 GiB (1.2%, < 256 MiB) */
    res(&now, 16 * G, 8 * G - 100 * M, 4, "a", "b");
    assert_int_equal(state_info_decide(&last, 0, &now, 1000000, &p, NULL), STATE_INFO_SAME);
    /* exactly 256 MiB is not "more than" */
    res(&now, 16 * G, 8 * G - 256 * M, 4, "a", "b");
    assert_int_equal(state_info_decide(&last, 0, &now, 1000000, &p, NULL), STATE_INFO_SAME);
    res(&now, 16 * G, 8 * G - 257 * M, 4, "a", "b");
    assert_int_equal(state_info_decide(&last, 0, &now, 1000000, &p, &why), STATE_INFO_LOG);
    assert_string_equal(why, "ram_free moved");
    /* relative: 1 GiB free moving 150 MiB is > 10% though < 256 MiB */
    res(&last, 4 * G, 1 * G, 2, NULL, NULL);
    res(&now, 4 * G, 1 * G + 150 * M, 2, NULL, NULL);
    assert_int_equal(state_info_decide(&last, 0, &now, 5000, &p, NULL), STATE_INFO_LOG);
    res(&now, 4 * G, 1 * G + 100 * M, 2, NULL, NULL); /* 9.8% */
    assert_int_equal(state_info_decide(&last, 0, &now, 5000, &p, NULL), STATE_INFO_SAME);
    /* from zero free, any move is relative infinity */
    res(&last, 4 * G, 0, 2, NULL, NULL);
    res(&now, 4 * G, 1, 2, NULL, NULL);
    assert_int_equal(state_info_decide(&last, 0, &now, 5000, &p, NULL), STATE_INFO_LOG);
    /* structural changes */
    res(&last, 4 * G, G, 2, "a", NULL);
    res(&now, 4 * G, G, 2, "a", "b");
    assert_int_equal(state_info_decide(&last, 0, &now, 5000, &p, &why), STATE_INFO_LOG);
    assert_string_equal(why, "models changed");
    res(&now, 4 * G, G, 2, "c", NULL);
    assert_int_equal(state_info_decide(&last, 0, &now, 5000, &p, &why), STATE_INFO_LOG);
    assert_string_equal(why, "models changed");
    res(&now, 4 * G, G, 3, "a", NULL);
    assert_int_equal(state_info_decide(&last, 0, &now, 5000, &p, &why), STATE_INFO_LOG);
    assert_string_equal(why, "cores changed");
    res(&now, 8 * G, G, 2, "a", NULL);
    assert_int_equal(state_info_decide(&last, 0, &now, 5000, &p, &why), STATE_INFO_LOG);
    assert_string_equal(why, "ram_total changed");
    /* the minimum interval holds every change back, the clock going back too */
    res(&now, 4 * G, G, 2, "a", "b");
    assert_int_equal(state_info_decide(&last, 1000, &now, 5999, &p, &why), STATE_INFO_TOO_SOON);
    assert_string_equal(why, "models changed");
    assert_int_equal(state_info_decide(&last, 1000, &now, 6000, &p, NULL), STATE_INFO_LOG);
    assert_int_equal(state_info_decide(&last, 1000, &now, 999, &p, NULL), STATE_INFO_TOO_SOON);
    assert_int_equal(state_info_decide(&last, INT64_MIN, &now, INT64_MAX, &p, NULL),
                     STATE_INFO_LOG); /* no overflow in the difference */
    {
        const struct state_info_policy none = {0, 0, 0};
        res(&now, 4 * G, G + 1, 2, "a", NULL);
        assert_int_equal(state_info_decide(&last, 7, &now, 7, &none, NULL), STATE_INFO_LOG);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_type),      cmocka_unit_test(same_events_same_state),
        cmocka_unit_test(rejoin_updates), cmocka_unit_test(rejects_leave_state_identical),
        cmocka_unit_test(cluster_full),   cmocka_unit_test(apply_event_checks_struct),
        cmocka_unit_test(rate_limiter),   cmocka_unit_test(membership_events),
    };
    return cmocka_run_group_tests_name("state/apply", tests, NULL, NULL);
}
