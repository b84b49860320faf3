/* agent/serve_runner.c: one runner child per model: starting it (fork + exec
 * of our own binary with one end of a socketpair), reading its frames with
 * every check of runner_proto.h, noticing its death (EOF, a socket error, or
 * a frame that fails the checks: then it is killed), reaping it, failing the
 * requests it had, and restarting it with backoff. The state diagram is in
 * serve.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "agent/serve_int.h"
#include "common/log.h"

#define MOD "serve"

#define RUNNER_FD          3
#define BACKOFF_FIRST_MS   250
#define BACKOFF_MAX_MS     30000
#define MAX_START_FAILURES 5
#define STOP_WAIT_MS       2000

static void on_read(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

int sv_runner_start(struct sv_model *m, struct sh_err *err)
{
    const struct serve_opts *o = &m->s->o;
    char slots[16], ctx[16], threads[16], fd[8];
    const char *argv[20];
    int sv[2], n = 0;
    pid_t parent = getpid(), pid;

    snprintf(fd, sizeof fd, "%d", RUNNER_FD);
    argv[n++] = "shoal";
    argv[n++] = "runner";
    argv[n++] = "--fd";
    argv[n++] = fd;
    argv[n++] = "--model";
    argv[n++] = m->md.dir;
    argv[n++] = "--id";
    argv[n++] = m->md.id;
    argv[n++] = "--log-level";
    argv[n++] = o->log_level == SH_LOG_DEBUG   ? "debug"
                : o->log_level == SH_LOG_WARN  ? "warn"
                : o->log_level == SH_LOG_ERROR ? "error"
                                               : "info";
    if (o->slots > 0) {
        snprintf(slots, sizeof slots, "%d", o->slots);
        argv[n++] = "--slots";
        argv[n++] = slots;
    }
    if (o->ctx > 0) {
        snprintf(ctx, sizeof ctx, "%d", o->ctx);
        argv[n++] = "--ctx";
        argv[n++] = ctx;
    }
    if (o->threads > 0) {
        snprintf(threads, sizeof threads, "%d", o->threads);
        argv[n++] = "--threads";
        argv[n++] = threads;
    }
    if (o->act_bits == 8) {
        argv[n++] = "--act-bits";
        argv[n++] = "8";
    }
    argv[n] = NULL;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return sh_err_set(err, SH_EIO, "runner for %s: socketpair: %s", m->md.id, strerror(errno));
    pid = fork();
    if (pid < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        return sh_err_set(err, SH_EIO, "runner for %s: fork: %s", m->md.id, strerror(e));
    }
    if (pid == 0) {
        /* The child: only async-signal-safe calls until exec. The runner
         * dies with the agent (and sees EOF on the socket as well). */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(126);
        if (sv[1] == RUNNER_FD) {
            if (fcntl(RUNNER_FD, F_SETFD, 0) != 0)
                _exit(126);
        } else if (dup2(sv[1], RUNNER_FD) != RUNNER_FD) {
            _exit(126);
        }
        /* Nothing else of the agent's (listeners, client sockets, the
         * event log) leaks into the runner. */
        close_range(RUNNER_FD + 1, ~0u, 0);
        execv("/proc/self/exe", (char *const *)argv);
        _exit(127);
    }
    close(sv[1]);
    m->bev = bufferevent_socket_new(m->s->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    if (!m->bev || evutil_make_socket_nonblocking(sv[0]) != 0) {
        if (!m->bev)
            close(sv[0]);
        m->pid = pid;
        sv_runner_stop(m);
        return sh_err_set(err, SH_ENOMEM, "runner for %s: out of memory", m->md.id);
    }
    bufferevent_setcb(m->bev, on_read, NULL, on_event, m);
    bufferevent_enable(m->bev, EV_READ);
    m->pid = pid;
    m->st = SV_STARTING;
    m->started_ns = sh_now_ns();
    SH_LOG(SH_LOG_INFO, MOD, "%s: runner started (pid %d) for %s", m->md.id, (int)pid, m->md.dir);
    return 0;
}

bool sv_runner_send(
    struct sv_model *m, enum runner_msg type, uint32_t id, const void *p, size_t len)
{
    uint8_t hdr[RUNNER_HDR_LEN];

    if (!m->bev || len > RUNNER_MAX_FRAME)
        return false;
    sh_put_u32(hdr, (uint32_t)len);
    sh_put_u32(hdr + 4, (uint32_t)type);
    sh_put_u32(hdr + 8, id);
    return bufferevent_write(m->bev, hdr, sizeof hdr) == 0 &&
           (!len || bufferevent_write(m->bev, p, len) == 0);
}

/* Waits up to ms for pid; then SIGKILL and waits for it. Describes how it
 * ended into why. */
static void reap(pid_t pid, int ms, char *why, size_t cap)
{
    int status = 0;
    pid_t r = 0;

    for (int waited = 0; waited <= ms; waited += 10) {
        r = waitpid(pid, &status, WNOHANG);
        if (r != 0)
            break;
        usleep(10 * 1000);
    }
    if (r == 0) {
        kill(pid, SIGKILL);
        r = waitpid(pid, &status, 0);
    }
    if (r < 0)
        snprintf(why, cap, "lost (%s)", strerror(errno));
    else if (WIFSIGNALED(status))
        snprintf(why, cap, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(why, cap, "exited with status %d", WEXITSTATUS(status));
}

static void restart_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sv_model *m = arg;
    struct sh_err err;

    (void)fd;
    (void)what;
    sh_err_clear(&err);
    m->restarts++;
    if (sv_runner_start(m, &err)) {
        SH_LOG(SH_LOG_ERROR, MOD, "%s: %s", m->md.id, sh_err_msg(&err));
        sv_runner_down(m, "could not be started");
    }
}

void sv_runner_down(struct sv_model *m, const char *why)
{
    char how[128] = "not running", msg[SH_ERR_MSG_LEN];
    bool before_ready = m->st == SV_STARTING;
    struct timeval tv;
    int ms;

    if (m->bev) {
        bufferevent_free(m->bev);
        m->bev = NULL;
    }
    if (m->pid > 0) {
        /* EOF usually means it is exiting: give it a moment to say how. */
        reap(m->pid, 100, how, sizeof how);
        m->pid = 0;
    }
    snprintf(msg, sizeof msg, "the runner for %s %s (%s)", m->md.id, how, why);
    SH_LOG(SH_LOG_ERROR, MOD, "%s", msg);
    /* Requests it was running cannot finish: tell their clients now. */
    while (m->running.head) {
        struct api_gen_handle *h = m->running.head;
        struct api_gen_error e = {SH_ECLOSED, 0, NULL};
        char text[SH_ERR_MSG_LEN + 64];
        sv_list_remove(&m->running, h);
        if (h->st == RQ_RUNNING) {
            snprintf(text, sizeof text, "%s during this request; it is being restarted", msg);
            e.message = text;
            h->cb.on_error(h->arg, &e);
        }
        sv_req_free(h);
    }
    m->busy = 0;
    if (m->st == SV_FAILED) { /* LOAD_ERROR said why already */
        sv_fail_queue(m, SH_EIO, m->error);
        return;
    }
    snprintf(m->error, sizeof m->error, "%s", msg);
    if (before_ready && ++m->start_failures >= MAX_START_FAILURES) {
        m->st = SV_FAILED;
        snprintf(m->error, sizeof m->error,
                 "model %s is unavailable: %d runners in a row died "
                 "before loading it; the last %s",
                 m->md.id, m->start_failures, how);
        SH_LOG(SH_LOG_ERROR, MOD, "%s", m->error);
        sv_fail_queue(m, SH_EIO, m->error);
        return;
    }
    ms = BACKOFF_FIRST_MS << (m->crashes_in_row < 7 ? m->crashes_in_row : 7);
    if (ms > BACKOFF_MAX_MS)
        ms = BACKOFF_MAX_MS;
    m->crashes_in_row++;
    m->st = SV_WAITING;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    SH_LOG(SH_LOG_INFO, MOD, "%s: restarting the runner in %d ms", m->md.id, ms);
    if (!m->restart_ev)
        m->restart_ev = evtimer_new(m->s->base, restart_cb, m);
    if (!m->restart_ev || evtimer_add(m->restart_ev, &tv) != 0) {
        m->st = SV_FAILED;
        snprintf(m->error, sizeof m->error, "model %s: cannot arm the restart timer", m->md.id);
        sv_fail_queue(m, SH_EIO, m->error);
    }
}

void sv_runner_stop(struct sv_model *m)
{
    char how[128];

    if (m->restart_ev) {
        event_free(m->restart_ev);
        m->restart_ev = NULL;
    }
    if (m->bev) {
        /* libevent closes a freed bufferevent's socket from the loop, which
         * may not run again (shutdown): end the stream now, so the runner
         * sees EOF and exits. */
        shutdown(bufferevent_getfd(m->bev), SHUT_RDWR);
        bufferevent_free(m->bev);
        m->bev = NULL;
    }
    if (m->pid > 0) {
        reap(m->pid, STOP_WAIT_MS, how, sizeof how);
        SH_LOG(SH_LOG_INFO, MOD, "%s: runner (pid %d) %s", m->md.id, (int)m->pid, how);
        m->pid = 0;
    }
}

/* One whole frame from the runner. Non-zero: the runner is broken (err
 * says why). */
static int
on_frame(struct sv_model *m, const struct runner_hdr *h, const uint8_t *p, struct sh_err *err)
{
    int rc;

    switch (h->type) {
    case RUNNER_MSG_READY:
        if (m->st != SV_STARTING)
            return sh_err_set(err, SH_EPROTO, "READY twice");
        if ((rc = sv_on_ready(m, p, h->len, err)))
            return rc;
        m->st = SV_READY;
        m->start_failures = 0;
        m->crashes_in_row = 0;
        SH_LOG(SH_LOG_INFO, MOD, "%s: ready in %.0f ms (%d slots x %d tokens)", m->md.id,
               (double)(sh_now_ns() - m->started_ns) / 1e6, m->slots, m->info.context_length);
        sv_dispatch(m);
        return 0;
    case RUNNER_MSG_LOAD_ERROR:
        if (m->st != SV_STARTING)
            return sh_err_set(err, SH_EPROTO, "LOAD_ERROR after READY");
        m->st = SV_FAILED;
        snprintf(m->error, sizeof m->error, "model %s is unavailable: %.*s", m->md.id,
                 (int)(h->len < 200 ? h->len : 200), (const char *)p);
        for (char *c = m->error; *c; c++)
            if ((unsigned char)*c < 0x20)
                *c = '?';
        SH_LOG(SH_LOG_ERROR, MOD, "%s", m->error);
        return 0; /* the runner exits; its EOF reaps it */
    case RUNNER_MSG_DELTA:
    case RUNNER_MSG_DONE:
    case RUNNER_MSG_ERROR:
    case RUNNER_MSG_CANCELLED:
        if (m->st != SV_READY)
            return sh_err_set(err, SH_EPROTO, "%s before READY", runner_msg_name(h->type));
        return sv_on_request_frame(m, h, p, err);
    default:
        return sh_err_set(err, SH_EPROTO, "unexpected %s frame", runner_msg_name(h->type));
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct sv_model *m = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    uint8_t hb[RUNNER_HDR_LEN];
    struct runner_hdr h;
    struct sh_err err;
    char why[SH_ERR_MSG_LEN + 32];

    while (evbuffer_get_length(in) >= RUNNER_HDR_LEN) {
        const uint8_t *p;
        sh_err_clear(&err);
        evbuffer_copyout(in, hb, sizeof hb);
        if (runner_hdr_decode(hb, &h, &err))
            goto broken;
        if (evbuffer_get_length(in) < RUNNER_HDR_LEN + (size_t)h.len)
            return;
        p = evbuffer_pullup(in, (ev_ssize_t)(RUNNER_HDR_LEN + h.len));
        if (!p) {
            sh_err_set(&err, SH_ENOMEM, "out of memory for a %u-byte frame", (unsigned)h.len);
            goto broken;
        }
        if (on_frame(m, &h, p + RUNNER_HDR_LEN, &err))
            goto broken;
        /* A callback may not free the model, but the runner may have been
         * replaced meanwhile: stop if this buffer is no longer ours. */
        if (m->bev != bev)
            return;
        evbuffer_drain(in, RUNNER_HDR_LEN + h.len);
    }
    return;
broken:
    snprintf(why, sizeof why, "killed by the agent: bad frame: %s", sh_err_msg(&err));
    if (m->pid > 0)
        kill(m->pid, SIGKILL);
    sv_runner_down(m, why);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct sv_model *m = arg;

    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        sv_runner_down(m, what & BEV_EVENT_EOF ? "its socket closed" : "socket error");
}
