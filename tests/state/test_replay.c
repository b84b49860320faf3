/* tests/state/test_replay.c: the replay formatter on the crafted story
 * (story.h): the text timeline (exact lines), --json (parsed back and
 * checked), --to INDEX, rows that do not apply, and the time format. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/test.h"
#include "state/state.h"
#include "tests/state/story.h"

struct story {
    struct state_row rows[STORY_N];
    struct state_archived arch[STORY_ARCHIVED_N];
    struct state_store_meta meta;
};

static void build(struct story *s)
{
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < STORY_N; i++)
        s->rows[i] = story_row(&story_log[i], i + 1);
    for (size_t k = 0; k < STORY_ARCHIVED_N; k++) {
        s->arch[k].id = (int64_t)k + 1;
        s->arch[k].archived_at_ms = STORY_ARCHIVED_AT_MS;
        s->arch[k].reason = (char *)STORY_ARCHIVE_REASON;
        s->arch[k].row = story_row(&story_archived[k], STORY_ARCHIVED_FROM + k);
    }
    s->meta.persist.term = 2;
    s->meta.persist.voted_for = UINT64_C(0x77b2000000000001);
    s->meta.persist.epoch = 1;
    s->meta.persist.epoch_node = UINT64_C(0x3fa1c2d4e5f60718);
    s->meta.commit_index = STORY_COMMIT_INDEX;
    s->meta.last_index = STORY_N;
    s->meta.last_term = 2;
}

static char *replay(const struct story *s, uint64_t to, bool json)
{
    struct state_replay_opts o = {to, json};
    struct sh_strbuf out;
    struct sh_err err;
    sh_strbuf_init(&out, 1 << 20);
    sh_err_clear(&err);
    if (state_replay_format(s->rows, STORY_N, s->arch, STORY_ARCHIVED_N, &s->meta, &o, &out,
                            &err) != 0)
        fail_msg("replay: %s", err.msg);
    return sh_strbuf_take(&out);
}

static void assert_has(const char *text, const char *needle)
{
    const char *t = text ? text : "(no output)";
    if (!strstr(t, needle))
        fail_msg("missing:\n%s\n--- in:\n%s", needle, t);
}

static void text_timeline(void **unused)
{
    struct story s;
    char *t;
    (void)unused;
    build(&s);
    t = replay(&s, 0, false);
    assert_has(t, "event log: 10 entries (last term 2), commit index 9\n"
                  "node: current term 2, voted for 77b2000000000001, epoch 1\n\n");
    assert_has(t, "#1     term 1    2026-11-22T21:11:00.000Z  epoch_started      node 3fa1c2d4"
                  "\xe2\x80\xa6 started epoch 1 with 1 member: 3fa1c2d4\xe2\x80\xa6\n");
    assert_has(t, "#2     term 1    2026-11-22T21:11:00.005Z  leader_elected     node 3fa1c2d4"
                  "\xe2\x80\xa6 elected leader for term 1 (epoch 1)\n");
    assert_has(t, "#3     term 1    2026-11-22T21:11:00.123Z  node_joined        node 3fa1c2d4"
                  "\xe2\x80\xa6 (lab1, 198.18.0.1:52416) joined: 2 cores, 3.8 GiB RAM (2.1 GiB "
                  "free), models: kjv-llama-16m\n");
    /* a bare CONFIG entry: names resolved from the state at that point */
    assert_has(t, "#5     term 1    2026-11-22T21:11:05.000Z  config             members: "
                  "3fa1c2d4\xe2\x80\xa6 (lab1), 77b20000\xe2\x80\xa6 (lab2)\n");
    /* an update shows what changed */
    assert_has(t, "node_info_updated  node 77b20000\xe2\x80\xa6 (lab2) updated: free 6.0 GiB -> "
                  "5.0 GiB, model +qwen3-0.6b\n");
    /* rejected rows: the reason, and replay goes on */
    assert_has(t, "#7     term 1    2026-11-22T21:12:01.000Z  node_left          node 00000000"
                  "\xe2\x80\xa6 left: shutdown  -- REJECTED: node_left: node 0000000000000c0c is "
                  "not in the cluster\n");
    assert_has(t, "#8     term 1    2026-11-22T21:12:02.000Z  gossip             REJECTED: "
                  "event: unknown type \"gossip\"\n");
    assert_has(t, "elected leader for term 2 (epoch 1)\n");
    assert_has(t, "#10    term 2    2026-11-22T21:12:20.000Z  node_left          node 3fa1c2d4"
                  "\xe2\x80\xa6 (lab1) left: silent for 10.0 s  [uncommitted]\n");
    assert_has(t, "archived entries (2): truncated out of the log, kept for the record\n"
                  "  #9     term 1    2026-11-22T21:12:05.000Z  node_info_updated  node 3fa1c2d4"
                  "\xe2\x80\xa6 updated: 2 cores, 3.8 GiB RAM (1.0 GiB free)");
    assert_has(t, "\n         archived 2026-11-22T21:12:09.000Z: conflict with leader "
                  "77b2000000000001 term 2\n");
    assert_has(t, "state at index 10 (10 entries replayed, 2 rejected):\n"
                  "  epoch 1, started by 3fa1c2d4\xe2\x80\xa6; 1 member: 3fa1c2d4\xe2\x80\xa6\n"
                  "  leader: 77b20000\xe2\x80\xa6 (lab2), term 2 (elected at #9)\n"
                  "  nodes: 1\n"
                  "    77b2000000000001  lab2  198.18.0.2:52416  api port 52415  4 cores, 8.0 GiB "
                  "RAM (5.0 GiB free), models: qwen3-0.6b  (joined #4, updated #6)\n");
    free(t);
}

static void text_to_index(void **unused)
{
    struct story s;
    char *t;
    (void)unused;
    build(&s);
    t = replay(&s, 4, false);
    assert_has(t, "replaying up to index 4\n");
    assert_has(t, "#4 ");
    assert_null(strstr(t, "#5 "));
    assert_has(t, "state at index 4 (4 entries replayed, 0 rejected):\n");
    assert_has(t, "  leader: 3fa1c2d4\xe2\x80\xa6 (lab1), term 1 (elected at #2)\n  nodes: 2\n");
    free(t);
}

static const cJSON *get(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v)
        fail_msg("no \"%s\"", k);
    return v;
}

static void json_document(void **unused)
{
    struct story s;
    const cJSON *entries, *e, *st, *arch;
    cJSON *doc;
    char *t;
    (void)unused;
    build(&s);
    t = replay(&s, 0, true);
    doc = cJSON_Parse(t);
    assert_non_null(doc);
    assert_int_equal(get(get(doc, "log"), "commit_index")->valueint, 9);
    assert_string_equal(get(get(doc, "log"), "voted_for")->valuestring, ST_B);
    assert_true(cJSON_IsNull(get(get(doc, "log"), "to_index")));
    entries = get(doc, "entries");
    assert_int_equal(cJSON_GetArraySize(entries), 10);
    e = cJSON_GetArrayItem(entries, 2);
    assert_int_equal(get(e, "index")->valueint, 3);
    assert_string_equal(get(e, "kind")->valuestring, "event");
    assert_string_equal(get(e, "type")->valuestring, "node_joined");
    assert_string_equal(get(get(e, "event"), "name")->valuestring, "lab1");
    assert_true(cJSON_IsTrue(get(e, "applied")));
    assert_true(cJSON_IsTrue(get(e, "committed")));
    assert_null(cJSON_GetObjectItem(e, "reject"));
    e = cJSON_GetArrayItem(entries, 4); /* bare config */
    assert_string_equal(get(e, "type")->valuestring, "config");
    assert_int_equal(cJSON_GetArraySize(get(e, "members")), 2);
    assert_string_equal(get(e, "payload")->valuestring, "");
    assert_true(cJSON_IsFalse(get(e, "applied")));
    assert_null(cJSON_GetObjectItem(e, "reject"));
    e = cJSON_GetArrayItem(entries, 6);
    assert_true(cJSON_IsFalse(get(e, "applied")));
    assert_non_null(strstr(get(e, "reject")->valuestring, "is not in the cluster"));
    e = cJSON_GetArrayItem(entries, 9);
    assert_true(cJSON_IsFalse(get(e, "committed")));
    arch = get(doc, "archived");
    assert_int_equal(cJSON_GetArraySize(arch), 2);
    e = cJSON_GetArrayItem(arch, 1);
    assert_int_equal(get(e, "index")->valueint, 10);
    assert_string_equal(get(e, "reason")->valuestring, STORY_ARCHIVE_REASON);
    assert_string_equal(get(e, "type")->valuestring, "node_left");
    assert_null(cJSON_GetObjectItem(e, "applied"));
    st = get(doc, "state");
    assert_int_equal(get(st, "applied_index")->valueint, 10);
    assert_string_equal(get(get(st, "leader"), "node")->valuestring, ST_B);
    assert_int_equal(get(get(st, "leader"), "term")->valueint, 2);
    assert_int_equal(cJSON_GetArraySize(get(st, "nodes")), 1);
    assert_string_equal(get(get(cJSON_GetArrayItem(get(st, "nodes"), 0), "resources"), "models")
                            ->child->valuestring,
                        "qwen3-0.6b");
    cJSON_Delete(doc);
    free(t);

    t = replay(&s, 4, true);
    doc = cJSON_Parse(t);
    assert_non_null(doc);
    assert_int_equal(cJSON_GetArraySize(get(doc, "entries")), 4);
    assert_int_equal(get(get(doc, "log"), "to_index")->valueint, 4);
    assert_int_equal(cJSON_GetArraySize(get(get(doc, "state"), "nodes")), 2);
    cJSON_Delete(doc);
    free(t);
}

/* Rows a damaged or hostile log may hold: never a crash, never a raw
 * terminal escape in the text, always valid JSON. */
static void hostile_rows(void **unused)
{
    static char esc[] = "{\"type\":\"node_left\",\"node\":\"" ST_A "\",\"reason\":\"\x1b[2J\"}";
    static char bin[] = "\xff\xfe\x1b[31m";
    static char nul[] = {'{', '}', '\0', 'x'};
    struct state_row rows[3];
    struct state_archived arch;
    struct state_replay_opts o = {0, false};
    struct sh_strbuf out;
    struct sh_err err;
    cJSON *doc;
    (void)unused;

    memset(rows, 0, sizeof rows);
    for (int i = 0; i < 3; i++) {
        rows[i].index = (uint64_t)i + 1;
        rows[i].term = 1;
    }
    rows[0].payload = esc;
    rows[0].payload_len = strlen(esc);
    rows[1].payload = bin;
    rows[1].payload_len = strlen(bin);
    rows[2].payload = nul;
    rows[2].payload_len = sizeof nul;
    memset(&arch, 0, sizeof arch);
    arch.reason = (char *)"evil \x1b]0;title\x07 reason";
    arch.row = rows[1];
    for (int pass = 0; pass < 2; pass++) {
        o.json = pass == 1;
        sh_strbuf_init(&out, 1 << 20);
        assert_int_equal(state_replay_format(rows, 3, &arch, 1, NULL, &o, &out, &err), 0);
        assert_null(memchr(out.buf, 0x1b, out.len));
        if (o.json) {
            doc = cJSON_Parse(out.buf);
            assert_non_null(doc);
            assert_int_equal(cJSON_GetArraySize(get(doc, "entries")), 3);
            cJSON_Delete(doc);
        } else {
            assert_has(out.buf, "3 rejected");
        }
        sh_strbuf_free(&out);
    }
    /* the output cap is an error, not a truncated report */
    sh_strbuf_init(&out, 100);
    assert_int_equal(state_replay_format(rows, 3, &arch, 1, NULL, &o, &out, &err), SH_ETOOBIG);
    sh_strbuf_free(&out);
}

static void time_format(void **unused)
{
    char b[32];
    (void)unused;
    state_format_time(0, b);
    assert_string_equal(b, "-");
    state_format_time(-5, b);
    assert_string_equal(b, "-");
    state_format_time(1, b);
    assert_string_equal(b, "1970-01-01T00:00:00.001Z");
    state_format_time(951782400000, b); /* leap day */
    assert_string_equal(b, "2000-02-29T00:00:00.000Z");
    state_format_time(1795381860123, b);
    assert_string_equal(b, "2026-11-22T21:11:00.123Z");
    state_format_time(253402300799999, b);
    assert_string_equal(b, "9999-12-31T23:59:59.999Z");
    state_format_time(STATE_JSON_INT_MAX, b); /* far future still formats */
    assert_true(strlen(b) > 20 && b[strlen(b) - 1] == 'Z');
    state_format_time(STATE_JSON_INT_MAX + 1, b);
    assert_string_equal(b, "-");
    state_format_time(INT64_MAX, b);
    assert_string_equal(b, "-");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(text_timeline), cmocka_unit_test(text_to_index),
        cmocka_unit_test(json_document), cmocka_unit_test(hostile_rows),
        cmocka_unit_test(time_format),
    };
    return cmocka_run_group_tests_name("state/replay", tests, NULL, NULL);
}
