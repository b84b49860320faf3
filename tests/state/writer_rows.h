/* tests/state/writer_rows.h: the deterministic rows and term/vote pairs
 * store_writer writes and test_store_kill checks: every value can be
 * recomputed from the index (or the term), so a torn or mixed-up row shows. */
#ifndef TESTS_STATE_WRITER_ROWS_H
#define TESTS_STATE_WRITER_ROWS_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "state/state.h"

#define WR_PAYLOAD_MAX 600

/* {"type":"test","i":IDX,"b":BATCH_END,"pad":"..."}: b is the last index of
 * the batch the row was appended in, so a partial batch is detectable. */
static inline size_t wr_payload(uint64_t idx, uint64_t batch_end, char *buf, size_t cap)
{
    size_t pad = (size_t)(idx * 37 % 400);
    int n = snprintf(buf, cap, "{\"type\":\"test\",\"i\":%llu,\"b\":%llu,\"pad\":\"",
                     (unsigned long long)idx, (unsigned long long)batch_end);
    size_t o = (size_t)n;
    for (size_t k = 0; k < pad && o + 3 < cap; k++)
        buf[o++] = (char)('a' + (idx + k) % 26);
    buf[o++] = '"';
    buf[o++] = '}';
    buf[o] = '\0';
    return o;
}

static inline size_t wr_members(uint64_t idx, uint64_t out[3])
{
    size_t n = (size_t)(idx % 3);
    for (size_t k = 0; k < n; k++)
        out[k] = idx * 1000 + k + 1;
    return n;
}

static inline int wr_kind(uint64_t idx)
{
    return (int)(idx % 4);
}

/* The vote and epoch that go with a term (never NONE for the vote). */
static inline struct state_persist wr_persist(uint64_t term)
{
    struct state_persist p;
    memset(&p, 0, sizeof p);
    p.term = term;
    p.voted_for = (term * UINT64_C(0x9e3779b97f4a7c15)) | 1;
    p.epoch = term / 4;
    p.epoch_node = p.epoch ? p.epoch * 7 + 1 : STATE_NODE_NONE;
    p.epoch_base = p.epoch * 3;
    p.vote_epoch = term % 3 == 0;
    return p;
}

#endif
