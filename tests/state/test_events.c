/* tests/state/test_events.c: the event schema: parsing, canonical encoding,
 * node ids, text rules, and a table of bad events (each rejected with the
 * code and the field it names). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/test.h"
#include "state/internal.h"
#include "state/state.h"

#define A   "3fa1c2d4e5f60718"
#define B   "77b2000000000001"
#define RES "{\"ram_total\":4096,\"ram_free\":1024,\"cores\":2,\"models\":[]}"
#define JOINED(extra)                                                                              \
    "{\"type\":\"node_joined\",\"node\":\"" A                                                      \
    "\",\"name\":\"lab1\",\"addr\":\"198.18.0.1:52416\","                                          \
    "\"api_port\":52415,\"resources\":" RES extra "}"

static struct state_event *parse_ok(const char *json)
{
    struct state_event *ev = calloc(1, sizeof *ev);
    struct sh_err err;
    sh_err_clear(&err);
    assert_non_null(ev);
    if (state_event_parse(json, strlen(json), ev, &err) != 0)
        fail_msg("parse failed: %s\n  for %s", err.msg, json);
    return ev;
}

static void node_ids(void **unused)
{
    uint64_t id = 0;
    char hex[STATE_NODE_HEX_LEN + 1];
    (void)unused;
    assert_true(state_node_id_parse(A, &id));
    assert_true(id == UINT64_C(0x3fa1c2d4e5f60718));
    state_node_id_format(id, hex);
    assert_string_equal(hex, A);
    state_node_id_format(UINT64_MAX, hex);
    assert_string_equal(hex, "ffffffffffffffff");
    assert_true(state_node_id_parse("ffffffffffffffff", &id) && id == UINT64_MAX);
    assert_true(state_node_id_parse("0000000000000001", &id) && id == 1);
    assert_false(state_node_id_parse("0000000000000000", &id));  /* reserved */
    assert_false(state_node_id_parse("3FA1C2D4E5F60718", &id));  /* uppercase */
    assert_false(state_node_id_parse("3fa1c2d4e5f6071", &id));   /* 15 digits */
    assert_false(state_node_id_parse("3fa1c2d4e5f607180", &id)); /* 17 */
    assert_false(state_node_id_parse("3fa1c2d4e5f6071g", &id));
    assert_false(state_node_id_parse(" 3fa1c2d4e5f6071", &id));
    assert_false(state_node_id_parse("", &id));
    assert_false(state_node_id_parse(NULL, &id));
}

static void text_rules(void **unused)
{
    (void)unused;
    assert_true(state_text_ok("lab1", 4));
    assert_true(state_text_ok("caf\xc3\xa9", 5));       /* é */
    assert_true(state_text_ok("\xf0\x9f\x90\x9f", 4));  /* U+1F41F */
    assert_false(state_text_ok("a\nb", 3));             /* C0 control */
    assert_false(state_text_ok("a\x7f", 2));            /* DEL */
    assert_false(state_text_ok("\x1b[31m", 5));         /* terminal escape */
    assert_false(state_text_ok("\xc2\x9b", 2));         /* C1 CSI */
    assert_false(state_text_ok("\xc0\xaf", 2));         /* overlong '/' */
    assert_false(state_text_ok("\xe0\x80\xaf", 3));     /* overlong */
    assert_false(state_text_ok("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(state_text_ok("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(state_text_ok("\xc3", 1));             /* truncated */
    assert_false(state_text_ok("\xff", 1));
    assert_true(state_utf8_ok("a\nb", 3, true)); /* controls allowed on request */
    assert_false(state_utf8_ok("\xff", 1, true));
}

static void each_type_parses(void **unused)
{
    struct state_event *ev;
    (void)unused;

    ev = parse_ok(JOINED(",\"time\":1795375860123"));
    assert_int_equal(ev->type, STATE_EV_NODE_JOINED);
    assert_true(ev->node == UINT64_C(0x3fa1c2d4e5f60718));
    assert_string_equal(ev->name, "lab1");
    assert_string_equal(ev->addr, "198.18.0.1:52416");
    assert_int_equal(ev->api_port, 52415);
    assert_true(ev->has_time && ev->time_ms == INT64_C(1795375860123));
    assert_true(ev->res.ram_total == 4096 && ev->res.ram_free == 1024 && ev->res.cores == 2);
    free(ev);

    ev = parse_ok("{\"type\":\"node_left\",\"node\":\"" A "\",\"reason\":\"silent for 10.0 s\"}");
    assert_int_equal(ev->type, STATE_EV_NODE_LEFT);
    assert_string_equal(ev->reason, "silent for 10.0 s");
    assert_false(ev->has_time);
    free(ev);

    ev = parse_ok("{\"type\":\"leader_elected\",\"term\":9007199254740992,\"node\":\"" A
                  "\",\"epoch\":0}");
    assert_int_equal(ev->type, STATE_EV_LEADER_ELECTED);
    assert_true(ev->term == UINT64_C(9007199254740992)); /* 2^53: the largest exact */
    free(ev);

    /* members and models come back sorted, whatever order was given */
    ev = parse_ok("{\"type\":\"epoch_started\",\"epoch\":2,\"node\":\"" B "\",\"members\":[\"" B
                  "\",\"" A "\"]}");
    assert_int_equal(ev->n_members, 2);
    assert_true(ev->members[0] == UINT64_C(0x3fa1c2d4e5f60718));
    free(ev);

    ev = parse_ok("{\"type\":\"node_info_updated\",\"node\":\"" A "\",\"resources\":{\"ram_total\":"
                  "8,\"ram_free\":8,\"cores\":1,\"models\":[\"z-model\",\"a-model\",\"m\"]}}");
    assert_int_equal(ev->res.n_models, 3);
    assert_string_equal(ev->res.models[0], "a-model");
    assert_string_equal(ev->res.models[2], "z-model");
    free(ev);

    /* boundaries that pass */
    free(parse_ok("{\"type\":\"node_joined\",\"node\":\"" A "\",\"name\":\"" /* 63 bytes */
                  "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123"
                  "\",\"addr\":\"[fe80::1%2]:1\",\"api_port\":65535,\"resources\":{\"ram_total\":"
                  "9007199254740992,\"ram_free\":0,\"cores\":65536,\"models\":[]}}"));
    free(parse_ok(JOINED(",\"time\":0")));
}

/* Encode -> parse gives back the same struct, and encode is canonical. */
static void encode_round_trip(void **unused)
{
    static const char *const inputs[] = {
        JOINED(",\"time\":17"),
        "{\"type\":\"node_left\",\"node\":\"" A "\",\"reason\":\"shutdown\"}",
        "{\"type\":\"leader_elected\",\"term\":3,\"node\":\"" A "\",\"epoch\":1}",
        "{\"type\":\"epoch_started\",\"epoch\":2,\"node\":\"" B "\",\"members\":[\"" B "\",\"" A
        "\"]}",
        "{\"type\":\"node_info_updated\",\"node\":\"" A "\",\"resources\":{\"ram_total\":8,"
        "\"ram_free\":3,\"cores\":1,\"models\":[\"b\",\"a\"]}}",
        /* what the Raft core writes (election/membership.c, epoch.c) */
        "{\"type\":\"epoch_started\",\"node\":\"" A "\",\"epoch\":3,\"base\":0,\"term\":1,"
        "\"members\":[\"" A "\"]}",
        "{\"type\":\"member_added\",\"node\":\"" B "\",\"epoch\":2,\"term\":2,\"members\":[\"" A
        "\",\"" B "\"]}",
        "{\"type\":\"member_removed\",\"node\":\"" B "\",\"epoch\":2,\"term\":2,\"members\":[\"" A
        "\"],\"reason\":\"silent for 8.1 s\"}",
    };
    (void)unused;
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        struct state_event *a = parse_ok(inputs[i]), *b;
        char *text = NULL, *text2 = NULL;
        struct sh_err err;
        assert_int_equal(state_event_encode(a, &text, &err), 0);
        b = parse_ok(text);
        assert_memory_equal(a, b, sizeof *a);
        assert_int_equal(state_event_encode(b, &text2, &err), 0);
        assert_string_equal(text, text2);
        free(text);
        free(text2);
        free(a);
        free(b);
    }
}

/* A C-built event obeys the same rules: bad fields are refused by encode. */
static void encode_refuses_bad_struct(void **unused)
{
    struct state_event *ev = parse_ok(JOINED(""));
    struct sh_err err;
    char *text = NULL;
    (void)unused;
    memset(ev->name, 'x', sizeof ev->name); /* no NUL inside the field */
    assert_int_equal(state_event_encode(ev, &text, &err), SH_EMALFORMED);
    assert_non_null(strstr(err.msg, "\"name\": longer than 63"));
    snprintf(ev->name, sizeof ev->name, "ok");
    ev->term = 0;
    ev->api_port = 70000;
    assert_int_equal(state_event_encode(ev, &text, &err), SH_EMALFORMED);
    assert_non_null(strstr(err.msg, "api_port"));
    ev->api_port = 1;
    ev->res.ram_total = UINT64_C(1) << 60; /* not exact in JSON */
    assert_int_equal(state_event_encode(ev, &text, &err), SH_EMALFORMED);
    assert_non_null(strstr(err.msg, "ram_total"));
    ev->res.ram_total = 4096;
    ev->type = (enum state_event_type)99;
    assert_int_equal(state_event_encode(ev, &text, &err), SH_EUNSUPPORTED);
    assert_null(text);
    free(ev);
}

struct bad {
    const char *json;
    int code;
    const char *msg; /* substring of the reason */
};

#define LEFT(node, reason) "{\"type\":\"node_left\",\"node\":" node ",\"reason\":" reason "}"
#define JR(fields)         /* node_joined with the given resources fields */                       \
    "{\"type\":\"node_joined\",\"node\":\"" A "\",\"name\":\"n\",\"addr\":\"h:1\","                \
    "\"api_port\":1,\"resources\":{" fields "}}"
#define J_ADDR(a)                                                                                  \
    "{\"type\":\"node_joined\",\"node\":\"" A "\",\"name\":\"n\",\"addr\":\"" a "\","              \
    "\"api_port\":1,\"resources\":" RES "}"
#define LE(term, epoch)                                                                            \
    "{\"type\":\"leader_elected\",\"term\":" term ",\"node\":\"" A "\",\"epoch\":" epoch "}"
#define ES(epoch, members)                                                                         \
    "{\"type\":\"epoch_started\",\"epoch\":" epoch ",\"node\":\"" A "\",\"members\":" members "}"
#define MA(fields)       "{\"type\":\"member_added\",\"node\":\"" A "\"," fields "}"
#define MR(fields)       "{\"type\":\"member_removed\",\"node\":\"" A "\"," fields "}"
#define RF(rt, rf, c, m) "\"ram_total\":" rt ",\"ram_free\":" rf ",\"cores\":" c ",\"models\":" m

static const struct bad bads[] = {
    {"", SH_EMALFORMED, "invalid JSON"},
    {"{\"type\":", SH_EMALFORMED, "invalid JSON"},
    {"{} {}", SH_EMALFORMED, "trailing data"},
    {"[]", SH_EMALFORMED, "expected a JSON object"},
    {"\"node_left\"", SH_EMALFORMED, "expected a JSON object"},
    {"{}", SH_EMALFORMED, "missing \"type\""},
    {"{\"type\":5}", SH_EMALFORMED, "expected a string"},
    {"{\"type\":null}", SH_EMALFORMED, "expected a string"},
    {"{\"type\":\"frob\"}", SH_EUNSUPPORTED, "unknown type \"frob\""},
    {"{\"type\":\"Node_Left\"}", SH_EUNSUPPORTED, "unknown type"},
    {"{\"type\":\"\\u001b[2J\"}", SH_EUNSUPPORTED, "unknown type \"(not text)\""},
    /* node ids */
    {LEFT("\"3FA1C2D4E5F60718\"", "\"x\""), SH_EMALFORMED, "\"node\": expected a node id"},
    {LEFT("\"0000000000000000\"", "\"x\""), SH_EMALFORMED, "\"node\": expected a node id"},
    {LEFT("\"3fa1\"", "\"x\""), SH_EMALFORMED, "\"node\": expected a node id"},
    {LEFT("4575", "\"x\""), SH_EMALFORMED, "\"node\": expected a node id"},
    {"{\"type\":\"node_left\",\"reason\":\"x\"}", SH_EMALFORMED, "node_left: missing \"node\""},
    /* text fields */
    {"{\"type\":\"node_left\",\"node\":\"" A "\"}", SH_EMALFORMED, "missing \"reason\""},
    {LEFT("\"" A "\"", "\"\""), SH_EMALFORMED, "\"reason\": empty"},
    {LEFT("\"" A "\"", "7"), SH_EMALFORMED, "\"reason\": expected a string"},
    {LEFT("\"" A "\"", "\"a\\nb\""), SH_EMALFORMED, "\"reason\": not UTF-8 text"},
    {LEFT("\"" A "\"", "\"\xff\xfe\""), SH_EMALFORMED, "\"reason\": not UTF-8 text"},
    {LEFT("\"" A "\"",
          "\"0123456789012345678901234567890123456789012345678901234567890123456789"
          "0123456789012345678901234567890123456789012345678901234567890123456789"
          "0123456789012345678901234567890123456789012345678901234567890123456789"
          "0123456789012345678901234567890123456789012345\""),
     SH_EMALFORMED, "\"reason\": longer than 255 bytes"},
    /* unknown and duplicate fields */
    {"{\"type\":\"node_left\",\"node\":\"" A "\",\"reason\":\"x\",\"extra\":1}", SH_EMALFORMED,
     "node_left: unknown field \"extra\""},
    {"{\"type\":\"node_left\",\"node\":\"" A "\",\"node\":\"" B "\",\"reason\":\"x\"}",
     SH_EMALFORMED, "duplicate field \"node\""},
    {JR(RF("8", "8", "1", "[]") ",\"gpu\":1"), SH_EMALFORMED, "unknown field \"resources.gpu\""},
    /* time */
    {JOINED(",\"time\":-1"), SH_EMALFORMED, "\"time\": expected an integer in 0..9007199254740992"},
    {JOINED(",\"time\":9007199254740994"), SH_EMALFORMED, "\"time\""},
    {JOINED(",\"time\":1.5"), SH_EMALFORMED, "\"time\""},
    {JOINED(",\"time\":1e400"), SH_EMALFORMED, "\"time\""},
    {JOINED(",\"time\":\"now\""), SH_EMALFORMED, "\"time\""},
    /* node_joined */
    {"{\"type\":\"node_joined\",\"node\":\"" A "\",\"name\":\"n\",\"addr\":\"h:1\","
     "\"api_port\":0,\"resources\":" RES "}",
     SH_EMALFORMED, "\"api_port\": expected an integer in 1..65535"},
    {"{\"type\":\"node_joined\",\"node\":\"" A "\",\"name\":\"n\",\"addr\":\"h:1\","
     "\"api_port\":65536,\"resources\":" RES "}",
     SH_EMALFORMED, "\"api_port\""},
    {"{\"type\":\"node_joined\",\"node\":\"" A "\",\"name\":\"n\",\"addr\":\"h:1\","
     "\"api_port\":\"80\",\"resources\":" RES "}",
     SH_EMALFORMED, "\"api_port\""},
    {"{\"type\":\"node_joined\",\"node\":\"" A "\",\"name\":\"n\",\"addr\":\"h:1\","
     "\"api_port\":1}",
     SH_EMALFORMED, "missing \"resources\""},
    {"{\"type\":\"node_joined\",\"node\":\"" A "\",\"name\":\"n\",\"addr\":\"h:1\","
     "\"api_port\":1,\"resources\":[]}",
     SH_EMALFORMED, "\"resources\": expected an object"},
    {"{\"type\":\"node_joined\",\"node\":\"" A "\",\"name\":"
     "\"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234\",\"addr\":\"h:1\","
     "\"api_port\":1,\"resources\":" RES "}",
     SH_EMALFORMED, "\"name\": longer than 63 bytes"},
    {J_ADDR("host"), SH_EMALFORMED, "expected host:port"},
    {J_ADDR(":80"), SH_EMALFORMED, "expected host:port"},
    {J_ADDR("h:0"), SH_EMALFORMED, "port \"0\" not in 1..65535"},
    {J_ADDR("h:65536"), SH_EMALFORMED, "port \"65536\""},
    {J_ADDR("h:-1"), SH_EMALFORMED, "port \"-1\""},
    {J_ADDR("h:+1"), SH_EMALFORMED, "port \"+1\""},
    {J_ADDR("h:0000080"), SH_EMALFORMED, "port"},
    {J_ADDR("::1:80"), SH_EMALFORMED, "IPv6 needs [brackets]"},
    {J_ADDR("[::1:80"), SH_EMALFORMED, "unbalanced '['"},
    {J_ADDR("h o:80"), SH_EMALFORMED, "bad host character ' '"},
    {J_ADDR("[]:80"), SH_EMALFORMED, "unbalanced"},
    /* resources */
    {JR(RF("8", "8", "0", "[]")), SH_EMALFORMED,
     "\"resources.cores\": expected an integer in 1..65536"},
    {JR(RF("8", "8", "65537", "[]")), SH_EMALFORMED, "\"resources.cores\""},
    {JR(RF("8", "9", "1", "[]")), SH_EMALFORMED, "\"resources.ram_free\": 9 exceeds ram_total 8"},
    {JR(RF("-1", "0", "1", "[]")), SH_EMALFORMED, "\"resources.ram_total\""},
    {JR(RF("9007199254740994", "0", "1", "[]")), SH_EMALFORMED, "\"resources.ram_total\""},
    {JR(RF("18446744073709551616", "0", "1", "[]")), SH_EMALFORMED, "\"resources.ram_total\""},
    {JR("\"ram_total\":8,\"ram_free\":8,\"cores\":1"), SH_EMALFORMED,
     "missing \"resources.models\""},
    {JR("\"ram_free\":8,\"cores\":1,\"models\":[]"), SH_EMALFORMED,
     "missing \"resources.ram_total\""},
    {JR(RF("8", "8", "1", "\"m\"")), SH_EMALFORMED, "\"resources.models\": expected an array"},
    {JR(RF("8", "8", "1", "[\"\"]")), SH_EMALFORMED, "\"resources.models[]\": empty"},
    {JR(RF("8", "8", "1", "[1]")), SH_EMALFORMED, "\"resources.models[]\": expected a string"},
    {JR(RF("8", "8", "1", "[\"a\",\"b\",\"a\"]")), SH_EMALFORMED, "\"a\" listed twice"},
    {JR(RF("8",
           "8",
           "1",
           "[\"0123456789012345678901234567890123456789012345678901234567890123456789"
           "01234567890123456789012345678901234567890123456789012345678\"]")), /* 129 */
     SH_EMALFORMED, "\"resources.models[]\": longer than 128 bytes"},
    /* leader_elected */
    {LE("0", "1"), SH_EMALFORMED, "\"term\": expected an integer in 1..9007199254740992"},
    {LE("-3", "1"), SH_EMALFORMED, "\"term\""},
    {LE("9007199254740994", "1"), SH_EMALFORMED, "\"term\""},
    {LE("2", "-1"), SH_EMALFORMED, "\"epoch\""},
    {LE("2", "true"), SH_EMALFORMED, "\"epoch\""},
    {"{\"type\":\"leader_elected\",\"node\":\"" A "\",\"epoch\":1}", SH_EMALFORMED,
     "missing \"term\""},
    /* epoch_started */
    {ES("0", "[\"" A "\"]"), SH_EMALFORMED, "\"epoch\": expected an integer in 1.."},
    {ES("1", "[]"), SH_EMALFORMED, "0 members, expected 1..64"},
    {ES("1", "[\"" B "\"]"), SH_EMALFORMED, "the starting node " A " is not a member"},
    {ES("1", "[\"" A "\",\"" A "\"]"), SH_EMALFORMED, "listed twice"},
    {ES("1", "[\"" A "\",7]"), SH_EMALFORMED, "\"members[]\": expected a node id"},
    {ES("1", "{}"), SH_EMALFORMED, "\"members\": expected an array"},
    {"{\"type\":\"epoch_started\",\"epoch\":1,\"node\":\"" A "\",\"base\":0,\"members\":[\"" A
     "\"]}",
     SH_EMALFORMED, "missing \"term\""},
    {"{\"type\":\"epoch_started\",\"epoch\":1,\"node\":\"" A "\",\"term\":0,\"base\":0,"
     "\"members\":[\"" A "\"]}",
     SH_EMALFORMED, "\"term\": expected an integer in 1.."},
    /* node_info_updated */
    {"{\"type\":\"node_info_updated\",\"node\":\"" A "\"}", SH_EMALFORMED,
     "node_info_updated: missing \"resources\""},
    /* member_added / member_removed */
    {MA("\"epoch\":1,\"term\":1,\"members\":[\"" B "\"]"), SH_EMALFORMED,
     "the added node " A " is not a member"},
    {MA("\"epoch\":1,\"members\":[\"" A "\"]"), SH_EMALFORMED, "missing \"term\""},
    {MA("\"epoch\":0,\"term\":1,\"members\":[\"" A "\"]"), SH_EMALFORMED, "\"epoch\""},
    {MA("\"epoch\":1,\"term\":1,\"members\":[\"" A "\"],\"reason\":\"x\""), SH_EMALFORMED,
     "unknown field \"reason\""},
    {MR("\"epoch\":1,\"term\":1,\"members\":[\"" A "\"],\"reason\":\"x\""), SH_EMALFORMED,
     "the removed node " A " is still listed"},
    {MR("\"epoch\":1,\"term\":1,\"members\":[\"" B "\"]"), SH_EMALFORMED, "missing \"reason\""},
    {MR("\"epoch\":1,\"term\":1,\"members\":[],\"reason\":\"x\""), SH_EMALFORMED, "0 members"},
};

static void bad_events(void **unused)
{
    (void)unused;
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        struct state_event *ev = calloc(1, sizeof *ev);
        struct sh_err err;
        int rc;
        assert_non_null(ev);
        memset(ev, 0x5a, sizeof *ev);
        sh_err_clear(&err);
        rc = state_event_parse(bads[i].json, strlen(bads[i].json), ev, &err);
        if (rc != bads[i].code || !strstr(err.msg, bads[i].msg))
            fail_msg("case %zu: %s\n  got %d '%s', want %d '%s'", i, bads[i].json, rc, err.msg,
                     bads[i].code, bads[i].msg);
        /* the output is untouched on error */
        for (size_t k = 0; k < sizeof *ev; k++)
            assert_int_equal(((unsigned char *)ev)[k], 0x5a);
        free(ev);
    }
}

/* Sizes from outside: the payload cap, 65 models, 65 members, deep nesting. */
static void big_events(void **unused)
{
    struct state_event *ev = calloc(1, sizeof *ev);
    struct sh_strbuf sb;
    struct sh_err err;
    (void)unused;
    sh_strbuf_init(&sb, 1 << 20);
    assert_int_equal(sh_strbuf_puts(&sb, "{\"type\":\"node_left\",\"node\":\"" A
                                         "\",\"reason\":\"x\",\"pad\":\""),
                     0);
    while (sb.len <= STATE_EVENT_MAX)
        assert_int_equal(sh_strbuf_puts(&sb, "aaaaaaaaaaaaaaaa"), 0);
    assert_int_equal(sh_strbuf_puts(&sb, "\"}"), 0);
    assert_int_equal(state_event_parse(sb.buf, sb.len, ev, &err), SH_ETOOBIG);
    assert_non_null(strstr(err.msg, "limit 65536"));
    sh_strbuf_reset(&sb);

    /* 65 distinct models */
    assert_int_equal(sh_strbuf_puts(&sb, JR(RF("8", "8", "1", "["))), 0);
    sb.len -= 2; /* drop "}}" to append the list */
    sb.buf[sb.len] = '\0';
    for (int i = 0; i < STATE_MAX_MODELS + 1; i++)
        assert_int_equal(sh_strbuf_printf(&sb, "%s\"m%03d\"", i ? "," : "", i), 0);
    assert_int_equal(sh_strbuf_puts(&sb, "]}}"), 0);
    assert_int_equal(state_event_parse(sb.buf, sb.len, ev, &err), SH_EMALFORMED);
    assert_non_null(strstr(err.msg, "more than 64 models"));
    sh_strbuf_reset(&sb);

    /* 65 members */
    assert_int_equal(sh_strbuf_puts(&sb, "{\"type\":\"epoch_started\",\"epoch\":1,\"node\":"
                                         "\"0000000000000001\",\"members\":["),
                     0);
    for (int i = 1; i <= STATE_MAX_NODES + 1; i++)
        assert_int_equal(sh_strbuf_printf(&sb, "%s\"%016x\"", i > 1 ? "," : "", i), 0);
    assert_int_equal(sh_strbuf_puts(&sb, "]}"), 0);
    assert_int_equal(state_event_parse(sb.buf, sb.len, ev, &err), SH_EMALFORMED);
    assert_non_null(strstr(err.msg, "more than 64 members"));
    sh_strbuf_reset(&sb);

    /* nesting far past cJSON's limit is refused, not a stack overflow */
    for (int i = 0; i < 5000; i++)
        assert_int_equal(sh_strbuf_puts(&sb, "["), 0);
    assert_int_equal(state_event_parse(sb.buf, sb.len, ev, &err), SH_EMALFORMED);
    sh_strbuf_free(&sb);
    free(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(node_ids),
        cmocka_unit_test(text_rules),
        cmocka_unit_test(each_type_parses),
        cmocka_unit_test(encode_round_trip),
        cmocka_unit_test(encode_refuses_bad_struct),
        cmocka_unit_test(bad_events),
        cmocka_unit_test(big_events),
    };
    return cmocka_run_group_tests_name("state/events", tests, NULL, NULL);
}
