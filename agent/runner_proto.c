/* agent/runner_proto.c: encoding and checked decoding of the agent <-> runner
 * frames described in runner_proto.h. Decoders go through an sh_cursor and
 * never read past the payload; every count is bounded before it is used.
 */
#include "agent/runner_proto.h"

#include <math.h>
#include <string.h>

const char *runner_msg_name(unsigned type)
{
    switch (type) {
    case RUNNER_MSG_GEN:
        return "GEN";
    case RUNNER_MSG_CANCEL:
        return "CANCEL";
    case RUNNER_MSG_READY:
        return "READY";
    case RUNNER_MSG_LOAD_ERROR:
        return "LOAD_ERROR";
    case RUNNER_MSG_DELTA:
        return "DELTA";
    case RUNNER_MSG_DONE:
        return "DONE";
    case RUNNER_MSG_ERROR:
        return "ERROR";
    case RUNNER_MSG_CANCELLED:
        return "CANCELLED";
    default:
        return "unknown";
    }
}

int runner_hdr_decode(const uint8_t *buf, struct runner_hdr *h, struct sh_err *err)
{
    struct sh_cursor c;
    uint32_t word;

    sh_cursor_init(&c, buf, RUNNER_HDR_LEN);
    h->len = sh_cursor_u32(&c);
    word = sh_cursor_u32(&c);
    h->id = sh_cursor_u32(&c);
    h->type = (uint16_t)(word & 0xffff);
    if (word >> 16)
        return sh_err_set(err, SH_EPROTO, "frame header: reserved bits set (0x%04x)",
                          (unsigned)(word >> 16));
    if (h->len > RUNNER_MAX_FRAME)
        return sh_err_set(err, SH_EPROTO, "frame %s: %u bytes, the limit is %u",
                          runner_msg_name(h->type), (unsigned)h->len, (unsigned)RUNNER_MAX_FRAME);
    switch (h->type) {
    case RUNNER_MSG_CANCEL:
    case RUNNER_MSG_CANCELLED:
        if (h->len)
            return sh_err_set(err, SH_EPROTO, "frame %s: carries %u bytes, expected none",
                              runner_msg_name(h->type), (unsigned)h->len);
        break;
    case RUNNER_MSG_GEN:
    case RUNNER_MSG_READY:
    case RUNNER_MSG_LOAD_ERROR:
    case RUNNER_MSG_DELTA:
    case RUNNER_MSG_DONE:
    case RUNNER_MSG_ERROR:
        break;
    default:
        return sh_err_set(err, SH_EPROTO, "frame: unknown type %u", (unsigned)h->type);
    }
    return 0;
}

int runner_frame_put(
    struct sh_strbuf *out, enum runner_msg type, uint32_t id, const void *payload, size_t len)
{
    uint8_t hdr[RUNNER_HDR_LEN];
    size_t before = out->len;
    int rc;

    if (len > RUNNER_MAX_FRAME)
        return SH_ETOOBIG;
    sh_put_u32(hdr, (uint32_t)len);
    sh_put_u32(hdr + 4, (uint32_t)type);
    sh_put_u32(hdr + 8, id);
    if ((rc = sh_strbuf_append(out, hdr, sizeof hdr)))
        return rc;
    if (len && (rc = sh_strbuf_append(out, payload, len))) {
        out->len = before;
        out->buf[before] = '\0';
        return rc;
    }
    return 0;
}

/* ---- payload writers: append to sb; the frame header is patched at the
 * end (its len is known only then). */

static int put_u32(struct sh_strbuf *sb, uint32_t v)
{
    uint8_t b[4];
    sh_put_u32(b, v);
    return sh_strbuf_append(sb, b, sizeof b);
}

static int put_u64(struct sh_strbuf *sb, uint64_t v)
{
    uint8_t b[8];
    sh_put_u64(b, v);
    return sh_strbuf_append(sb, b, sizeof b);
}

static int put_f64(struct sh_strbuf *sb, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return put_u64(sb, bits);
}

static int put_str(struct sh_strbuf *sb, const char *s, size_t n)
{
    int rc;
    if (n > RUNNER_MAX_FRAME)
        return SH_ETOOBIG;
    if ((rc = put_u32(sb, (uint32_t)n)))
        return rc;
    return n ? sh_strbuf_append(sb, s, n) : 0;
}

static int put_cstr(struct sh_strbuf *sb, const char *s)
{
    s = s ? s : "";
    return put_str(sb, s, strlen(s) + 1);
}

/* Starts a frame in out; *at receives where its header is. */
static int begin(struct sh_strbuf *out, enum runner_msg type, uint32_t id, size_t *at)
{
    uint8_t hdr[RUNNER_HDR_LEN] = {0};

    *at = out->len;
    sh_put_u32(hdr + 4, (uint32_t)type);
    sh_put_u32(hdr + 8, id);
    return sh_strbuf_append(out, hdr, sizeof hdr);
}

/* Ends the frame begun at at (patches len), or drops it on rc != 0. */
static int end(struct sh_strbuf *out, size_t at, int rc)
{
    size_t len = out->len - at - RUNNER_HDR_LEN;

    if (!rc && len > RUNNER_MAX_FRAME)
        rc = SH_ETOOBIG;
    if (rc) {
        if (out->buf) {
            out->len = at;
            out->buf[at] = '\0';
        }
        return rc;
    }
    sh_put_u32((uint8_t *)out->buf + at, (uint32_t)len);
    return 0;
}

int runner_delta_put(struct sh_strbuf *out, uint32_t id, const struct api_gen_delta *d)
{
    size_t at;
    int rc;

    if (d->n_tool_calls > RUNNER_MAX_CALLS || d->n_logprobs > RUNNER_MAX_LOGPROBS)
        return SH_EINVAL;
    for (size_t i = 0; i < d->n_logprobs; i++)
        if (d->logprobs[i].n_top > API_MAX_TOP_LOGPROBS)
            return SH_EINVAL;
    if ((rc = begin(out, RUNNER_MSG_DELTA, id, &at)))
        return rc;
    rc = put_str(out, d->content, d->content ? d->content_len : 0);
    if (!rc)
        rc = put_str(out, d->reasoning, d->reasoning ? d->reasoning_len : 0);
    if (!rc)
        rc = put_u32(out, (uint32_t)d->n_tool_calls);
    for (size_t i = 0; !rc && i < d->n_tool_calls; i++) {
        const struct api_tool_call *tc = &d->tool_calls[i];
        if (!(rc = put_cstr(out, tc->id)) && !(rc = put_cstr(out, tc->name)))
            rc = put_cstr(out, tc->arguments);
    }
    if (!rc)
        rc = put_u32(out, (uint32_t)d->n_logprobs);
    for (size_t i = 0; !rc && i < d->n_logprobs; i++) {
        const struct api_token_logprob *lp = &d->logprobs[i];
        if (!(rc = put_str(out, lp->token, lp->token_len)) && !(rc = put_f64(out, lp->logprob)))
            rc = put_u32(out, (uint32_t)lp->n_top);
        for (size_t k = 0; !rc && k < lp->n_top; k++)
            if (!(rc = put_str(out, lp->top[k].token, lp->top[k].token_len)))
                rc = put_f64(out, lp->top[k].logprob);
    }
    return end(out, at, rc);
}

/* ---- readers ------------------------------------------------------------- */

static const char *get_str(struct sh_cursor *c, size_t *n)
{
    uint32_t len = sh_cursor_u32(c);
    const uint8_t *p = sh_cursor_take(c, len);

    *n = p ? len : 0;
    return p ? (const char *)p : "";
}

/* A C string: its bytes end with the only NUL. NULL when not. */
static const char *get_cstr(struct sh_cursor *c)
{
    size_t n;
    const char *s = get_str(c, &n);

    if (c->err || n == 0 || s[n - 1] != '\0' || memchr(s, '\0', n - 1))
        return NULL;
    return s;
}

static double get_f64(struct sh_cursor *c)
{
    uint64_t bits = sh_cursor_u64(c);
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* A logprob is <= 0 or -inf; NaN and positive values are refused. */
static bool logprob_ok(double v)
{
    return !isnan(v) && v <= 0.0;
}

int runner_delta_decode(const uint8_t *p, size_t len, struct runner_delta *out, struct sh_err *err)
{
    struct api_gen_delta *d = &out->d;
    struct sh_cursor c;
    uint32_t n;

    memset(d, 0, sizeof *d);
    sh_cursor_init(&c, p, len);
    d->content = get_str(&c, &d->content_len);
    d->reasoning = get_str(&c, &d->reasoning_len);
    n = sh_cursor_u32(&c);
    if (c.err)
        return sh_err_set(err, SH_EPROTO, "DELTA: truncated text");
    if (n > RUNNER_MAX_CALLS)
        return sh_err_set(err, SH_EPROTO, "DELTA: %u tool calls, the limit is %d", (unsigned)n,
                          RUNNER_MAX_CALLS);
    for (uint32_t i = 0; i < n; i++) {
        struct api_tool_call *tc = &out->calls[i];
        tc->id = get_cstr(&c);
        tc->name = tc->id ? get_cstr(&c) : NULL;
        tc->arguments = tc->name ? get_cstr(&c) : NULL;
        if (!tc->arguments)
            return sh_err_set(err, SH_EPROTO, "DELTA: tool call %u: bad or truncated string",
                              (unsigned)i);
    }
    d->tool_calls = out->calls;
    d->n_tool_calls = n;
    n = sh_cursor_u32(&c);
    if (c.err)
        return sh_err_set(err, SH_EPROTO, "DELTA: truncated");
    if (n > RUNNER_MAX_LOGPROBS)
        return sh_err_set(err, SH_EPROTO, "DELTA: %u logprobs, the limit is %d", (unsigned)n,
                          RUNNER_MAX_LOGPROBS);
    for (uint32_t i = 0; i < n; i++) {
        struct api_token_logprob *lp = &out->lps[i];
        uint32_t k;
        lp->token = get_str(&c, &lp->token_len);
        lp->logprob = get_f64(&c);
        k = sh_cursor_u32(&c);
        if (c.err || !logprob_ok(lp->logprob) || k > API_MAX_TOP_LOGPROBS)
            return sh_err_set(err, SH_EPROTO, "DELTA: logprob %u: truncated or out of range",
                              (unsigned)i);
        for (uint32_t j = 0; j < k; j++) {
            struct api_top_logprob *t = &out->tops[i][j];
            t->token = get_str(&c, &t->token_len);
            t->logprob = get_f64(&c);
            if (c.err || !logprob_ok(t->logprob))
                return sh_err_set(err, SH_EPROTO,
                                  "DELTA: logprob %u alternative %u: truncated or out of range",
                                  (unsigned)i, (unsigned)j);
        }
        lp->top = out->tops[i];
        lp->n_top = k;
    }
    d->logprobs = out->lps;
    d->n_logprobs = n;
    if (sh_cursor_left(&c))
        return sh_err_set(err, SH_EPROTO, "DELTA: %zu bytes past the end", sh_cursor_left(&c));
    return 0;
}

int runner_done_put(struct sh_strbuf *out, uint32_t id, const struct runner_done *d)
{
    uint8_t b = (uint8_t)d->finish;
    size_t at;
    int rc;

    if ((rc = begin(out, RUNNER_MSG_DONE, id, &at)))
        return rc;
    rc = sh_strbuf_append(out, &b, 1);
    if (!rc)
        rc = put_u64(out, d->prompt_tokens);
    if (!rc)
        rc = put_u64(out, d->completion_tokens);
    if (!rc)
        rc = put_u64(out, d->wait_ns);
    if (!rc)
        rc = put_u64(out, d->prompt_ns);
    if (!rc)
        rc = put_u64(out, d->eval_ns);
    return end(out, at, rc);
}

int runner_done_decode(const uint8_t *p, size_t len, struct runner_done *out, struct sh_err *err)
{
    struct sh_cursor c;
    uint8_t f;

    if (len != RUNNER_DONE_LEN)
        return sh_err_set(err, SH_EPROTO, "DONE: %zu bytes, expected %d", len, RUNNER_DONE_LEN);
    sh_cursor_init(&c, p, len);
    f = sh_cursor_u8(&c);
    if (f > API_FINISH_TOOL_CALLS)
        return sh_err_set(err, SH_EPROTO, "DONE: unknown finish %u", (unsigned)f);
    out->finish = (enum api_finish)f;
    out->prompt_tokens = sh_cursor_u64(&c);
    out->completion_tokens = sh_cursor_u64(&c);
    out->wait_ns = sh_cursor_u64(&c);
    out->prompt_ns = sh_cursor_u64(&c);
    out->eval_ns = sh_cursor_u64(&c);
    return 0;
}

int runner_error_put(struct sh_strbuf *out, uint32_t id, int code, const char *message)
{
    size_t n = message ? strnlen(message, SH_ERR_MSG_LEN - 1) : 0;
    size_t at;
    int rc;

    if ((rc = begin(out, RUNNER_MSG_ERROR, id, &at)))
        return rc;
    rc = put_u32(out, (uint32_t)code);
    if (!rc)
        rc = put_str(out, message, n);
    return end(out, at, rc);
}

int runner_error_decode(
    const uint8_t *p, size_t len, int *code, char msg[SH_ERR_MSG_LEN], struct sh_err *err)
{
    struct sh_cursor c;
    const char *s;
    size_t n;
    uint32_t v;

    sh_cursor_init(&c, p, len);
    v = sh_cursor_u32(&c);
    s = get_str(&c, &n);
    if (c.err || sh_cursor_left(&c))
        return sh_err_set(err, SH_EPROTO, "ERROR: truncated or trailing bytes");
    if (v == 0 || v > SH_EINTERNAL)
        return sh_err_set(err, SH_EPROTO, "ERROR: unknown code %u", (unsigned)v);
    if (n > SH_ERR_MSG_LEN - 1)
        n = SH_ERR_MSG_LEN - 1;
    for (size_t i = 0; i < n; i++)
        msg[i] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
    msg[n] = '\0';
    *code = (int)v;
    return 0;
}
