/* agent/runner.c: `shoal runner`, the process `shoal agent` starts for each
 * model it serves (see runner.h). It owns the socket to the agent, the
 * generation slots and the loop:
 *
 *   1. load the model (LOAD_ERROR and exit 1 on failure), size the slots'
 *      contexts, send READY;
 *   2. loop: poll the socket (without waiting while any slot is busy), read
 *      whole frames (GEN starts a job in a free slot, CANCEL drops one and
 *      answers CANCELLED), then give every busy slot one step, round-robin,
 *      writing its frames before the next slot runs;
 *   3. EOF on the socket (the agent stopped or died) ends the loop; the
 *      process exits 0. PR_SET_PDEATHSIG (set by the agent before exec) kills
 *      it as well if the agent dies without closing.
 *
 * Slots share one compute pool, so one forward pass runs at a time and
 * concurrent requests advance one token each per round without mixing: each
 * slot has its own eng_ctx (KV cache) and its own generator. A prompt's
 * prefill runs whole in its slot's turn.
 */
#include "agent/runner.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/cli.h"
#include "agent/runner_proto.h"
#include "common/file.h"
#include "common/log.h"
#include "engine/model.h"

#define MOD "runner"

#define RUNNER_DEFAULT_SLOTS 4
#define RUNNER_MAX_SLOTS     64
#define RUNNER_DEFAULT_CTX   8192
#define RUNNER_MIN_AUTO_CTX  256
#define RX_INITIAL           (64u << 10)

const char agent_runner_usage[] =
    "usage: shoal runner --fd N --model DIR [--id ID] [--slots N] [--ctx N] [--threads N]\n"
    "                    [--act-bits 16|8] [--log-level LEVEL]\n"
    "\n"
    "Internal: the model process `shoal agent` starts for each model it serves.\n"
    "It loads DIR and answers generation requests framed on the socket inherited\n"
    "as file descriptor N (agent/runner_proto.h); it exits when that socket\n"
    "closes. Not meant to be run by hand.\n"
    "\n"
    "  --slots N     concurrent generations (default 4)\n"
    "  --ctx N       context tokens per slot (default: the model's, at most 8192,\n"
    "                halved until the slots' KV caches fit a quarter of free RAM)\n"
    "  --threads N   compute threads (default: physical cores)\n"
    "  --act-bits N  4-bit weights' activation codes in generation: 16 (default) or 8\n";

struct slot {
    struct eng_ctx *ctx;
    struct runner_job *job; /* NULL: free */
};

struct runner {
    int fd;
    const char *id;
    struct runner_model rm;
    struct eng_pool *pool;
    struct slot slots[RUNNER_MAX_SLOTS];
    int n_slots;
    int n_ctx;
    uint8_t *rx; /* bytes read, rx_len of them, rx_cap allocated */
    size_t rx_len, rx_cap;
    struct sh_strbuf tx; /* frames to write */
};

struct runner_opts {
    int64_t fd;
    const char *model;
    const char *id;
    int64_t slots, ctx, threads;
    int act_bits; /* eng_ctx_opts.act_bits; 0: the default */
    enum sh_log_level level;
};

/* ---- socket -------------------------------------------------------------------- */

/* Writes tx whole (the socket blocks; the agent always reads). */
static int flush_tx(struct runner *r)
{
    size_t off = 0;

    while (off < r->tx.len) {
        ssize_t n = send(r->fd, r->tx.buf + off, r->tx.len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            SH_LOG(SH_LOG_INFO, MOD, "%s: the agent is gone (%s)", r->id,
                   n < 0 ? strerror(errno) : "closed");
            return SH_ECLOSED;
        }
        off += (size_t)n;
    }
    sh_strbuf_reset(&r->tx);
    return 0;
}

static struct slot *find_job(struct runner *r, uint32_t id)
{
    for (int i = 0; i < r->n_slots; i++)
        if (r->slots[i].job && runner_job_id(r->slots[i].job) == id)
            return &r->slots[i];
    return NULL;
}

static int on_gen(struct runner *r, uint32_t id, const uint8_t *p, size_t len)
{
    struct slot *s = NULL;
    struct sh_err err;
    int rc;

    sh_err_clear(&err);
    if (id == 0 || find_job(r, id)) {
        SH_LOG(SH_LOG_ERROR, MOD, "%s: GEN for request %u, which is 0 or in use", r->id,
               (unsigned)id);
        return SH_EPROTO;
    }
    for (int i = 0; i < r->n_slots && !s; i++)
        if (!r->slots[i].job)
            s = &r->slots[i];
    if (!s) {
        snprintf(err.msg, sizeof err.msg, "all %d slots of the runner are busy", r->n_slots);
        return runner_error_put(&r->tx, id, SH_EBUSY, err.msg);
    }
    rc = runner_job_new(&r->rm, s->ctx, id, (const char *)p, len, sh_now_ns(), &s->job, &err);
    if (rc == SH_ENOMEM)
        return rc;
    if (rc)
        return runner_error_put(&r->tx, id, rc, sh_err_msg(&err));
    return 0;
}

static int on_frame(struct runner *r, const struct runner_hdr *h, const uint8_t *p)
{
    struct slot *s;

    switch (h->type) {
    case RUNNER_MSG_GEN:
        return on_gen(r, h->id, p, h->len);
    case RUNNER_MSG_CANCEL:
        /* A job that already ended has sent its last frame: nothing to do. */
        if ((s = find_job(r, h->id))) {
            runner_job_free(s->job);
            s->job = NULL;
            SH_LOG(SH_LOG_DEBUG, MOD, "%s: request %u cancelled", r->id, (unsigned)h->id);
            return runner_frame_put(&r->tx, RUNNER_MSG_CANCELLED, h->id, NULL, 0);
        }
        return 0;
    default:
        SH_LOG(SH_LOG_ERROR, MOD, "%s: unexpected %s frame from the agent", r->id,
               runner_msg_name(h->type));
        return SH_EPROTO;
    }
}

/* Reads what is there and handles every whole frame. Returns SH_ECLOSED at
 * EOF, SH_EPROTO on a bad frame, SH_ENOMEM. */
static int read_frames(struct runner *r)
{
    struct runner_hdr h;
    struct sh_err err;
    size_t need, used;
    int rc;

    for (;;) {
        ssize_t n;
        need = RUNNER_HDR_LEN;
        if (r->rx_len >= RUNNER_HDR_LEN) {
            sh_err_clear(&err);
            if (runner_hdr_decode(r->rx, &h, &err)) {
                SH_LOG(SH_LOG_ERROR, MOD, "%s: %s", r->id, sh_err_msg(&err));
                return SH_EPROTO;
            }
            need = RUNNER_HDR_LEN + h.len;
        }
        if (need < RX_INITIAL)
            need = RX_INITIAL;
        if (need > r->rx_cap) {
            uint8_t *nb = realloc(r->rx, need);
            if (!nb)
                return SH_ENOMEM;
            r->rx = nb;
            r->rx_cap = need;
        }
        n = recv(r->fd, r->rx + r->rx_len, r->rx_cap - r->rx_len, MSG_DONTWAIT);
        if (n == 0)
            return SH_ECLOSED;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return SH_ECLOSED;
        }
        r->rx_len += (size_t)n;
        used = 0;
        while (r->rx_len - used >= RUNNER_HDR_LEN) {
            sh_err_clear(&err);
            if (runner_hdr_decode(r->rx + used, &h, &err)) {
                SH_LOG(SH_LOG_ERROR, MOD, "%s: %s", r->id, sh_err_msg(&err));
                return SH_EPROTO;
            }
            if (r->rx_len - used < RUNNER_HDR_LEN + (size_t)h.len)
                break;
            if ((rc = on_frame(r, &h, r->rx + used + RUNNER_HDR_LEN)))
                return rc;
            used += RUNNER_HDR_LEN + h.len;
        }
        memmove(r->rx, r->rx + used, r->rx_len - used);
        r->rx_len -= used;
        if ((rc = flush_tx(r)))
            return rc;
    }
}

/* ---- slots ------------------------------------------------------------------------ */

/* MemAvailable from /proc/meminfo in bytes; 0 when unknown. */
static uint64_t mem_available(void)
{
    char *text = NULL, *p;
    unsigned long long kb;
    size_t len;
    uint64_t v = 0;

    if (sh_read_file("/proc/meminfo", 1 << 16, &text, &len, NULL))
        return 0;
    if ((p = strstr(text, "MemAvailable:")) && sscanf(p + 13, "%llu", &kb) == 1)
        v = (uint64_t)kb * 1024;
    free(text);
    return v;
}

/* The context per slot: --ctx, or the model's (at most RUNNER_DEFAULT_CTX)
 * halved while the slots' KV caches would take more than a quarter of the
 * RAM available now (caches are allocated up front). */
static int pick_ctx(struct runner *r, int64_t want, struct sh_err *err)
{
    const struct eng_config *c = eng_model_config(r->rm.model);
    uint64_t per_pos = 2ull * (uint64_t)c->n_layers * (uint64_t)c->n_kv_heads *
                       (uint64_t)c->head_dim * sizeof(float);
    uint64_t avail = mem_available();
    int64_t ctx;

    if (want > c->max_pos)
        return sh_err_set(err, SH_EINVAL, "--ctx %lld: the model has %d positions", (long long)want,
                          c->max_pos);
    if (want > 0) {
        r->n_ctx = (int)want;
        return 0;
    }
    ctx = c->max_pos < RUNNER_DEFAULT_CTX ? c->max_pos : RUNNER_DEFAULT_CTX;
    while (avail && ctx > RUNNER_MIN_AUTO_CTX &&
           per_pos * (uint64_t)ctx * (uint64_t)r->n_slots > avail / 4)
        ctx /= 2;
    r->n_ctx = (int)ctx;
    return 0;
}

static void runner_close(struct runner *r)
{
    for (int i = 0; i < r->n_slots; i++) {
        runner_job_free(r->slots[i].job);
        eng_ctx_free(r->slots[i].ctx);
    }
    eng_pool_free(r->pool);
    runner_model_close(&r->rm);
    free(r->rx);
    sh_strbuf_free(&r->tx);
}

/* One round: every busy slot one step. */
static int step_all(struct runner *r)
{
    int rc;

    for (int i = 0; i < r->n_slots; i++) {
        struct slot *s = &r->slots[i];
        bool ended = false;
        if (!s->job)
            continue;
        rc = runner_job_step(s->job, &r->tx, &ended);
        if (rc) {
            SH_LOG(SH_LOG_ERROR, MOD, "%s: request %u: %s", r->id, (unsigned)runner_job_id(s->job),
                   sh_strerror(rc));
            return rc;
        }
        if (ended) {
            runner_job_free(s->job);
            s->job = NULL;
        }
        if ((rc = flush_tx(r)))
            return rc;
    }
    return 0;
}

static int serve(struct runner *r)
{
    for (;;) {
        struct pollfd pfd = {r->fd, POLLIN, 0};
        bool busy = false;
        int rc;

        for (int i = 0; i < r->n_slots; i++)
            busy = busy || r->slots[i].job;
        rc = poll(&pfd, 1, busy ? 0 : -1);
        if (rc < 0 && errno != EINTR) {
            SH_LOG(SH_LOG_ERROR, MOD, "%s: poll: %s", r->id, strerror(errno));
            return SH_EIO;
        }
        if (rc > 0 && (rc = read_frames(r)))
            return rc;
        if ((rc = step_all(r)))
            return rc;
    }
}

/* ---- the command ------------------------------------------------------------------ */

static int parse_args(int argc, char **argv, struct runner_opts *o)
{
    enum { O_FD = 256, O_MODEL, O_ID, O_SLOTS, O_CTX, O_THREADS, O_ACT_BITS, O_LOG };
    static const struct option opts[] = {
        {"fd", required_argument, NULL, O_FD},
        {"model", required_argument, NULL, O_MODEL},
        {"id", required_argument, NULL, O_ID},
        {"slots", required_argument, NULL, O_SLOTS},
        {"ctx", required_argument, NULL, O_CTX},
        {"threads", required_argument, NULL, O_THREADS},
        {"act-bits", required_argument, NULL, O_ACT_BITS},
        {"log-level", required_argument, NULL, O_LOG},
        {NULL, 0, NULL, 0},
    };
    const struct agent_cmd *cmd = agent_cmd_find("runner");
    int c, level;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_FD:
            if (!sh_parse_i64(optarg, 0, INT_MAX, &o->fd))
                return agent_usage_error(cmd, "--fd: expected a descriptor, got \"%s\"", optarg);
            break;
        case O_MODEL:
            o->model = optarg;
            break;
        case O_ID:
            o->id = optarg;
            break;
        case O_SLOTS:
            if (!sh_parse_i64(optarg, 1, RUNNER_MAX_SLOTS, &o->slots))
                return agent_usage_error(cmd, "--slots: expected 1 to %d, got \"%s\"",
                                         RUNNER_MAX_SLOTS, optarg);
            break;
        case O_CTX:
            if (!sh_parse_i64(optarg, 2, INT_MAX, &o->ctx))
                return agent_usage_error(cmd, "--ctx: expected a size from 2, got \"%s\"", optarg);
            break;
        case O_THREADS:
            if (!sh_parse_i64(optarg, 1, 512, &o->threads))
                return agent_usage_error(cmd, "--threads: expected 1 to 512, got \"%s\"", optarg);
            break;
        case O_ACT_BITS:
            if (!eng_act_bits_parse(optarg, &o->act_bits))
                return agent_usage_error(cmd, "--act-bits: 16 or 8, got \"%s\"", optarg);
            break;
        case O_LOG:
            if ((level = sh_log_parse_level(optarg)) < 0)
                return agent_usage_error(cmd, "--log-level: expected error|warn|info|debug");
            o->level = (enum sh_log_level)level;
            break;
        default:
            return agent_usage_error(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return agent_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
    if (o->fd < 0 || !o->model)
        return agent_usage_error(cmd, "--fd and --model are required");
    return 0;
}

/* Loads everything and sends READY; on failure sends LOAD_ERROR. */
static int start(struct runner *r, const struct runner_opts *o)
{
    struct sh_err err;
    char *ready = NULL;
    uint64_t t0 = sh_now_ns();
    int rc;

    sh_err_clear(&err);
    r->n_slots = (int)o->slots;
    if ((rc = runner_model_load(o->model, &r->rm, &err)) || (rc = pick_ctx(r, o->ctx, &err)) ||
        (rc = eng_pool_new((int)o->threads, &r->pool, &err)))
        goto fail;
    for (int i = 0; i < r->n_slots; i++) {
        struct eng_ctx_opts co = {.n_ctx = r->n_ctx, .act_bits = o->act_bits};
        if ((rc = eng_ctx_new_ex(r->rm.model, r->pool, &co, &r->slots[i].ctx, &err)))
            goto fail;
    }
    if (!(ready = runner_ready_json(&r->rm, r->n_ctx, r->n_slots))) {
        rc = sh_err_set(&err, SH_ENOMEM, "out of memory");
        goto fail;
    }
    rc = runner_frame_put(&r->tx, RUNNER_MSG_READY, 0, ready, strlen(ready));
    free(ready);
    if (rc)
        return rc;
    SH_LOG(SH_LOG_INFO, MOD, "%s: loaded in %.0f ms: %d slots x %d tokens, %d threads", r->id,
           (double)(sh_now_ns() - t0) / 1e6, r->n_slots, r->n_ctx, eng_pool_size(r->pool));
    return flush_tx(r);
fail:
    SH_LOG(SH_LOG_ERROR, MOD, "%s: %s", r->id, sh_err_msg(&err));
    if (!runner_frame_put(&r->tx, RUNNER_MSG_LOAD_ERROR, 0, sh_err_msg(&err),
                          strlen(sh_err_msg(&err))))
        flush_tx(r);
    return rc;
}

int agent_cmd_runner(int argc, char **argv)
{
    struct runner_opts o = {.fd = -1, .slots = RUNNER_DEFAULT_SLOTS, .level = SH_LOG_INFO};
    struct runner *r;
    int rc;

    if ((rc = parse_args(argc, argv, &o)))
        return rc;
    sh_log_init(o.level, "-", NULL);
    /* A write to an agent that died must end in EPIPE, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    if (!(r = calloc(1, sizeof *r))) {
        fprintf(stderr, "shoal runner: out of memory\n");
        return AGENT_EXIT_FAIL;
    }
    r->fd = (int)o.fd;
    r->id = o.id ? o.id : o.model;
    sh_strbuf_init(&r->tx, RUNNER_MAX_FRAME + RUNNER_HDR_LEN + (1u << 20));
    rc = start(r, &o);
    if (!rc) {
        rc = serve(r);
        if (rc == SH_ECLOSED) {
            SH_LOG(SH_LOG_INFO, MOD, "%s: the agent closed the socket; exiting", r->id);
            rc = 0;
        }
    }
    runner_close(r);
    close(r->fd);
    free(r);
    return rc ? AGENT_EXIT_FAIL : AGENT_EXIT_OK;
}
