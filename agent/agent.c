/* agent/agent.c: building the node's parts around one event loop, the
 * signals that stop it, and the node's own HTTP routes (/health).
 *
 * Order matters: the data dir exists before anything writes to it; the HTTP
 * server binds last among the parts a client can observe, so /health only
 * answers once the node is up; shutdown runs in reverse.
 */
#include "agent/agent.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "agent/cli.h"
#include "agent/cluster.h"
#include "agent/datadir.h"
#include "api/api.h"
#include "common/util.h"
#include "discovery/discovery.h"

#define MOD "agent"

void agent_opts_init(struct agent_opts *o)
{
    memset(o, 0, sizeof *o);
    o->bind = "127.0.0.1";
    o->api_port = API_DEFAULT_PORT;
    o->log_level = SH_LOG_INFO;
    o->peer_port = DISC_DEFAULT_PEER_PORT;
    if (gethostname(o->name, sizeof o->name) != 0 || o->name[0] == '\0')
        snprintf(o->name, sizeof o->name, "shoal");
    o->name[sizeof o->name - 1] = '\0';
}

/* mkdir -p for the data dir, 0700: it holds the node's private key. */
static int make_dir(const char *path, struct sh_err *err)
{
    char tmp[PATH_MAX];
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof tmp)
        return sh_err_set(err, SH_EINVAL, "data dir: bad path '%s'", path);
    memcpy(tmp, path, len + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return sh_err_set(err, SH_EIO, "data dir: mkdir %s: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return sh_err_set(err, SH_EIO, "data dir: mkdir %s: %s", tmp, strerror(errno));
    return 0;
}

/* GET /health: liveness for load balancers and tests; reachable without the
 * API key. */
static void health_route(struct api_request *r, void *arg)
{
    const struct agent *a = arg;
    cJSON *j = cJSON_CreateObject();

    if (!j) {
        api_request_abort(r);
        return;
    }
    cJSON_AddStringToObject(j, "status", a->stopping ? "stopping" : "ok");
    cJSON_AddStringToObject(j, "version", SHOAL_VERSION);
    cJSON_AddStringToObject(j, "name", a->opts->name);
    cJSON_AddNumberToObject(j, "uptime_s", (double)(sh_now_ns() - a->start_ns) / 1e9);
    if (a->cluster)
        cluster_health(a->cluster, j);
    serve_health(a->serve, j);
    api_reply_json(r, a->stopping ? 503 : 200, j);
    cJSON_Delete(j);
}

static int start_api(struct agent *a, struct sh_err *err)
{
    struct api_config cfg = {
        .address = a->opts->bind,
        .port = a->opts->api_port,
        .api_key = a->opts->api_key,
        .cors_origin = a->opts->cors_origin,
    };
    struct api_route health = {
        .methods = API_GET,
        .path = "/health",
        .dialect = API_DIALECT_PLAIN,
        .flags = API_ROUTE_NO_AUTH,
        .fn = health_route,
        .arg = a,
    };
    int rc;

    rc = api_server_new(a->base, &cfg, serve_backend(a->serve), &a->api, err);
    if (rc)
        return sh_err_wrap(err, "api on %s:%u", cfg.address, (unsigned)cfg.port);
    rc = api_server_add_route(a->api, &health, err);
    if (rc)
        return rc;
    return 0;
}

void agent_shutdown(struct agent *a)
{
    struct timeval grace;

    if (a->stopping)
        return;
    a->stopping = true;
    SH_LOG(SH_LOG_INFO, MOD, "shutting down");
    if (a->cluster)
        cluster_shutdown(a->cluster); /* a leader hands over first: raises grace_ms */
    grace.tv_sec = a->grace_ms / 1000;
    grace.tv_usec = (a->grace_ms % 1000) * 1000;
    /* Parts with goodbyes to send start them here and raise grace_ms; the
     * loop keeps running that long so they can be delivered. */
    event_base_loopexit(a->base, a->grace_ms > 0 ? &grace : NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct agent *a = arg;
    (void)what;
    SH_LOG(SH_LOG_INFO, MOD, "received %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    if (a->stopping) {
        /* A second signal: stop now. */
        event_base_loopbreak(a->base);
        return;
    }
    agent_shutdown(a);
}

int agent_run(const struct agent_opts *opts)
{
    struct agent_opts o = *opts;
    struct agent a;
    struct sh_err err;
    struct event *ev_term = NULL, *ev_int = NULL;
    int status = 1;

    memset(&a, 0, sizeof a);
    sh_err_clear(&err);
    a.opts = &o;
    a.start_ns = sh_now_ns();
    /* A write to a client that went away must not kill the node (api.h). */
    signal(SIGPIPE, SIG_IGN);

    if (o.data_dir[0] == '\0' && agent_default_data_dir(o.data_dir, sizeof o.data_dir, &err)) {
        SH_LOG(SH_LOG_ERROR, MOD, "%s (use --data-dir)", sh_err_msg(&err));
        return 1;
    }
    if (make_dir(o.data_dir, &err)) {
        SH_LOG(SH_LOG_ERROR, MOD, "%s", sh_err_msg(&err));
        return 1;
    }
    a.base = event_base_new();
    if (!a.base) {
        SH_LOG(SH_LOG_ERROR, MOD, "event_base_new failed");
        return 1;
    }
    ev_term = evsignal_new(a.base, SIGTERM, on_signal, &a);
    ev_int = evsignal_new(a.base, SIGINT, on_signal, &a);
    if (!ev_term || !ev_int || evsignal_add(ev_term, NULL) || evsignal_add(ev_int, NULL)) {
        SH_LOG(SH_LOG_ERROR, MOD, "cannot install signal handlers");
        goto out;
    }
    SH_LOG(SH_LOG_INFO, MOD, "shoal %s starting: name %s, data dir %s", SHOAL_VERSION, o.name,
           o.data_dir);
    /* Runners first: the API's backend is theirs. They load in the
     * background; requests queue until a model is ready. */
    if (serve_new(a.base, &o.serve, agent_default_model(), &a.serve, &err)) {
        SH_LOG(SH_LOG_ERROR, MOD, "%s", sh_err_msg(&err));
        goto out;
    }
    if (start_api(&a, &err) || cluster_new(&a, &a.cluster, &err)) {
        SH_LOG(SH_LOG_ERROR, MOD, "%s", sh_err_msg(&err));
        goto out;
    }
    /* The cluster reports the models this node serves in its node info. */
    cluster_set_models_hook(a.cluster, serve_model_ids, a.serve);
    if (event_base_dispatch(a.base) < 0) {
        SH_LOG(SH_LOG_ERROR, MOD, "event loop failed");
        goto out;
    }
    status = 0;
    SH_LOG(SH_LOG_INFO, MOD, "stopped");
out:
    cluster_free(a.cluster); /* before the API: it ends its event streams */
    api_server_free(a.api);  /* cancels what runs, through serve's backend */
    serve_free(a.serve);
    if (ev_term)
        event_free(ev_term);
    if (ev_int)
        event_free(ev_int);
    event_base_free(a.base);
    return status;
}
