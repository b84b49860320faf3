/* agent/runner_proto.h: the frames `shoal agent` and its runner children
 * (`shoal runner`) exchange over a socketpair (SOCK_STREAM): encoding and
 * validated decoding. Pure: no I/O; both sides do their own reads/writes.
 *
 * A frame is a 12-byte header and a payload, integers little-endian:
 *     u32 len    payload bytes, at most RUNNER_MAX_FRAME
 *     u16 type   enum runner_msg (values fixed, append-only)
 *     u16 zero   reserved, must be 0
 *     u32 id     the request a frame belongs to (0 for READY/LOAD_ERROR)
 *
 * Agent -> runner:
 *   GEN        payload: the request as JSON text (its fields: agent/runner.h):
 *              one generation.
 *              The agent sends at most as many as the runner has slots.
 *   CANCEL     empty: stop request id at its next token.
 * Runner -> agent:
 *   READY      JSON text: the loaded model's facts (runner_ready_json)
 *   LOAD_ERROR text: why the model could not be loaded; the runner exits
 *   DELTA      binary (below): one step's output of request id
 *   DONE       binary: u8 finish (enum api_finish), then u64 prompt_tokens,
 *              completion_tokens, wait_ns (received -> prefill began),
 *              prompt_ns, eval_ns
 *   ERROR      binary: u32 code (SH_E*), u32 len, message bytes
 *   CANCELLED  empty: the runner dropped request id after a CANCEL
 * Every request the agent sends ends with exactly one DONE, ERROR or
 * CANCELLED; only then is its slot free again.
 *
 * DELTA payload:
 *     str content, str reasoning                 (str = u32 len + bytes)
 *     u32 n_calls, then per call: cstr id, cstr name, cstr arguments
 *                                (cstr = str whose last byte is NUL, none before)
 *     u32 n_logprobs, then per token: str token, f64 logprob, u32 n_top,
 *                                per alternative: str token, f64 logprob
 * Limits: RUNNER_MAX_CALLS calls, RUNNER_MAX_LOGPROBS tokens and
 * API_MAX_TOP_LOGPROBS alternatives per delta; everything inside len.
 *
 * A peer's bytes are untrusted: the agent treats any frame that fails these
 * checks as a broken runner and kills it; the runner exits.
 */
#ifndef AGENT_RUNNER_PROTO_H
#define AGENT_RUNNER_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/api.h"
#include "common/err.h"
#include "common/util.h"

#define RUNNER_HDR_LEN      12
#define RUNNER_MAX_FRAME    (32u << 20) /* payload bytes */
#define RUNNER_MAX_CALLS    64          /* tool calls in one DELTA */
#define RUNNER_MAX_LOGPROBS 64          /* tokens in one DELTA */

enum runner_msg {
    RUNNER_MSG_GEN = 1,
    RUNNER_MSG_CANCEL = 2,
    RUNNER_MSG_READY = 16,
    RUNNER_MSG_LOAD_ERROR = 17,
    RUNNER_MSG_DELTA = 18,
    RUNNER_MSG_DONE = 19,
    RUNNER_MSG_ERROR = 20,
    RUNNER_MSG_CANCELLED = 21,
};

struct runner_hdr {
    uint32_t len;
    uint16_t type;
    uint32_t id;
};

/* Name of a type for logs ("DELTA"); "unknown" for others. */
const char *runner_msg_name(unsigned type);

/* Parses and checks a header (RUNNER_HDR_LEN bytes). Errors: SH_EPROTO
 * (unknown type, reserved bits set, len over RUNNER_MAX_FRAME, a payload
 * where none belongs). */
int runner_hdr_decode(const uint8_t *buf, struct runner_hdr *h, struct sh_err *err);

/* Appends a whole frame (header + payload) to out. Errors: SH_ETOOBIG
 * (payload over RUNNER_MAX_FRAME), SH_ENOMEM. */
int runner_frame_put(
    struct sh_strbuf *out, enum runner_msg type, uint32_t id, const void *payload, size_t len);

/* ---- DELTA -------------------------------------------------------------- */

/* Encodes d as a DELTA frame for id into out (appended). Errors: SH_EINVAL
 * (over the per-delta limits), SH_ETOOBIG, SH_ENOMEM. */
int runner_delta_put(struct sh_strbuf *out, uint32_t id, const struct api_gen_delta *d);

/* Decoded views. Strings point into the payload (content/reasoning/tokens
 * are not NUL-terminated; tool-call strings are). Everything is valid while
 * the payload buffer and this struct live. */
struct runner_delta {
    struct api_gen_delta d;
    struct api_tool_call calls[RUNNER_MAX_CALLS];
    struct api_token_logprob lps[RUNNER_MAX_LOGPROBS];
    struct api_top_logprob tops[RUNNER_MAX_LOGPROBS][API_MAX_TOP_LOGPROBS];
};

/* Errors: SH_EPROTO naming what is wrong (truncated, trailing bytes, a
 * count over its limit, a C string without its NUL, a NaN/positive
 * logprob). */
int runner_delta_decode(const uint8_t *p, size_t len, struct runner_delta *out, struct sh_err *err);

/* ---- DONE / ERROR --------------------------------------------------------- */

struct runner_done {
    enum api_finish finish;
    uint64_t prompt_tokens;
    uint64_t completion_tokens;
    uint64_t wait_ns;
    uint64_t prompt_ns;
    uint64_t eval_ns;
};

#define RUNNER_DONE_LEN 41

int runner_done_put(struct sh_strbuf *out, uint32_t id, const struct runner_done *d);
/* Errors: SH_EPROTO (wrong length, unknown finish). */
int runner_done_decode(const uint8_t *p, size_t len, struct runner_done *out, struct sh_err *err);

/* message is truncated to SH_ERR_MSG_LEN - 1 bytes. */
int runner_error_put(struct sh_strbuf *out, uint32_t id, int code, const char *message);
/* *msg receives a NUL-terminated copy (at most SH_ERR_MSG_LEN - 1 bytes,
 * bytes below 0x20 replaced by '?'). Errors: SH_EPROTO (truncated, code 0
 * or unknown). */
int runner_error_decode(
    const uint8_t *p, size_t len, int *code, char msg[SH_ERR_MSG_LEN], struct sh_err *err);

#endif
