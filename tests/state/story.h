/* tests/state/story.h: a crafted log telling a small cluster's story, for
 * the replay tests: every event type, a bare CONFIG entry, two rejected
 * rows (unknown node, unknown type) and two entries later archived.
 * Times start at 2026-11-22T21:11:00.000Z. */
#ifndef TESTS_STATE_STORY_H
#define TESTS_STATE_STORY_H

#include <string.h>

#include "state/state.h"

#define ST_A "3fa1c2d4e5f60718"
#define ST_B "77b2000000000001"

static uint64_t story_members_a[] = {UINT64_C(0x3fa1c2d4e5f60718)};
static uint64_t story_members_ab[] = {UINT64_C(0x3fa1c2d4e5f60718), UINT64_C(0x77b2000000000001)};

struct story_row {
    uint64_t term;
    int kind;
    uint64_t *members;
    size_t n_members;
    const char *payload;
};

static const struct story_row story_log[] = {
    {1, STATE_ROW_EPOCH, story_members_a, 1,
     "{\"type\":\"epoch_started\",\"epoch\":1,\"node\":\"" ST_A "\",\"members\":[\"" ST_A
     "\"],\"time\":1795381860000}"},
    {1, STATE_ROW_LEADER, NULL, 0,
     "{\"type\":\"leader_elected\",\"term\":1,\"node\":\"" ST_A "\",\"epoch\":1,\"time\":"
     "1795381860005}"},
    {1, STATE_ROW_EVENT, NULL, 0,
     "{\"type\":\"node_joined\",\"node\":\"" ST_A "\",\"name\":\"lab1\",\"addr\":"
     "\"198.18.0.1:52416\",\"api_port\":52415,\"resources\":{\"ram_total\":4080218931,"
     "\"ram_free\":2254857830,\"cores\":2,\"models\":[\"kjv-llama-16m\"]},\"time\":1795381860123}"},
    {1, STATE_ROW_EVENT, NULL, 0,
     "{\"type\":\"node_joined\",\"node\":\"" ST_B "\",\"name\":\"lab2\",\"addr\":"
     "\"198.18.0.2:52416\",\"api_port\":52415,\"resources\":{\"ram_total\":8589934592,"
     "\"ram_free\":6442450944,\"cores\":4,\"models\":[]},\"time\":1795381862000}"},
    {1, STATE_ROW_CONFIG, story_members_ab, 2, ""},
    {1, STATE_ROW_EVENT, NULL, 0,
     "{\"type\":\"node_info_updated\",\"node\":\"" ST_B "\",\"resources\":{\"ram_total\":"
     "8589934592,\"ram_free\":5368709120,\"cores\":4,\"models\":[\"qwen3-0.6b\"]},\"time\":"
     "1795381920000}"},
    {1, STATE_ROW_EVENT, NULL, 0,
     "{\"type\":\"node_left\",\"node\":\"0000000000000c0c\",\"reason\":\"shutdown\",\"time\":"
     "1795381921000}"},
    {1, STATE_ROW_EVENT, NULL, 0, "{\"type\":\"gossip\",\"time\":1795381922000}"},
    {2, STATE_ROW_LEADER, NULL, 0,
     "{\"type\":\"leader_elected\",\"term\":2,\"node\":\"" ST_B "\",\"epoch\":1,\"time\":"
     "1795381930000}"},
    {2, STATE_ROW_EVENT, NULL, 0,
     "{\"type\":\"node_left\",\"node\":\"" ST_A "\",\"reason\":\"silent for 10.0 s\",\"time\":"
     "1795381940000}"},
};
#define STORY_N (sizeof story_log / sizeof story_log[0])

/* Appended as indexes 9 and 10 in term 1, then truncated (archived) when
 * the term-2 leader's entries replaced them. */
static const struct story_row story_archived[] = {
    {1, STATE_ROW_EVENT, NULL, 0,
     "{\"type\":\"node_info_updated\",\"node\":\"" ST_A "\",\"resources\":{\"ram_total\":"
     "4080218931,\"ram_free\":1073741824,\"cores\":2,\"models\":[\"kjv-llama-16m\"]},\"time\":"
     "1795381925000}"},
    {1, STATE_ROW_EVENT, NULL, 0,
     "{\"type\":\"node_left\",\"node\":\"" ST_B "\",\"reason\":\"shutdown\",\"time\":"
     "1795381926000}"},
};
#define STORY_ARCHIVED_N     2
#define STORY_ARCHIVED_FROM  9
#define STORY_ARCHIVE_REASON "conflict with leader " ST_B " term 2"
#define STORY_ARCHIVED_AT_MS INT64_C(1795381929000)
#define STORY_COMMIT_INDEX   9

static inline struct state_row story_row(const struct story_row *s, uint64_t index)
{
    struct state_row r;
    memset(&r, 0, sizeof r);
    r.index = index;
    r.term = s->term;
    r.kind = s->kind;
    r.time_ms = INT64_C(1795381860000) + (int64_t)index * 1000; /* local append time */
    r.members = s->members;
    r.n_members = s->n_members;
    r.payload = (char *)s->payload;
    r.payload_len = strlen(s->payload);
    return r;
}

#endif
