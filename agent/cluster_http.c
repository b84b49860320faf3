/* agent/cluster_http.c: the control-plane routes on the agent's API server:
 *   GET /state                  the folded state, plus this node's view
 *   GET /nodes                  every node known here: member, link, resources
 *   GET /events?since=N         committed log entries after N (one page)
 *   GET /events?since=N&stream=1   the same as server-sent events, then
 *                               every entry as it commits
 * Every node answers from its own log; each answer carries "node", "role",
 * "term", "epoch" and "leader" ({id, name, api} or null), so a client
 * talking to a follower knows where the leader is.
 *
 * Streams: a client gets at most STREAM_BATCH rows per turn of the loop, so
 * a long replay cannot starve the node; one that stops reading is dropped
 * when its queue passes API_MAX_PENDING_OUT (api_stream_write says
 * SH_ECLOSED), one that leaves is noticed through the close callback. A
 * commit index that goes back (an epoch merge) is announced with a
 * "rewind" event, after which entries are sent again from there.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "agent/agent.h"
#include "agent/cluster_int.h"
#include "api/api.h"
#include "common/log.h"
#include "common/util.h"

#define MOD            "cluster"
#define PAGE_DEFAULT   256
#define PAGE_MAX       1000
#define STREAM_BATCH   256
#define STREAM_AGAIN   10 /* ms before the next batch */
#define KEEPALIVE_S    15 /* comment line on an idle stream */
#define STREAM_CLIENTS 64 /* at most this many streams at once */

static void hexid(uint64_t id, char out[17])
{
    state_node_id_format(id, out);
}

static bool add_id(cJSON *o, const char *key, uint64_t id)
{
    char hex[17];
    if (id == 0)
        return cJSON_AddNullToObject(o, key) != NULL;
    hexid(id, hex);
    return cJSON_AddStringToObject(o, key, hex) != NULL;
}

cJSON *cluster_leader_json(const struct cluster *c)
{
    uint64_t id = elect_role(c->core) == ELECT_ROLE_LEADER ? c->id.node_id : elect_leader(c->core);
    char api[STATE_ADDR_MAX + 16];
    cJSON *o;

    if (!id || !(o = cJSON_CreateObject()))
        return NULL;
    if (!add_id(o, "id", id) || !cJSON_AddStringToObject(o, "name", cluster_node_name(c, id)) ||
        !(cluster_api_addr(c, id, api, sizeof api) ? cJSON_AddStringToObject(o, "api", api) != NULL
                                                   : cJSON_AddNullToObject(o, "api") != NULL) ||
        !cJSON_AddBoolToObject(o, "self", id == c->id.node_id)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* "node", "name", "role", "term", "epoch", "commit_index", "last_index",
 * "leader": this node's view, on every answer. */
static bool add_view(const struct cluster *c, cJSON *o)
{
    struct elect_epoch ep = elect_current_epoch(c->core);
    cJSON *e = cJSON_CreateObject(), *l = cluster_leader_json(c);
    bool ok = e && add_id(o, "node", c->id.node_id) &&
              cJSON_AddStringToObject(o, "name", c->self->name) &&
              cJSON_AddStringToObject(o, "role", elect_role_name(elect_role(c->core))) &&
              cJSON_AddNumberToObject(o, "term", (double)elect_term(c->core)) &&
              cJSON_AddNumberToObject(e, "number", (double)ep.num) &&
              cJSON_AddNumberToObject(e, "base", (double)ep.base) &&
              add_id(e, "started_by", ep.starter);
    if (ok && cJSON_AddItemToObject(o, "epoch", e))
        e = NULL;
    else
        ok = false;
    ok = ok && cJSON_AddNumberToObject(o, "commit_index", (double)c->applied) &&
         cJSON_AddNumberToObject(o, "last_index", (double)elect_last_index(c->core));
    if (ok && l && cJSON_AddItemToObject(o, "leader", l))
        l = NULL;
    else if (ok && !l)
        ok = cJSON_AddNullToObject(o, "leader") != NULL;
    else
        ok = false;
    cJSON_Delete(e);
    cJSON_Delete(l);
    return ok;
}

void cluster_health(const struct cluster *c, cJSON *body)
{
    struct elect_epoch ep = elect_current_epoch(c->core);
    cJSON *l = cluster_leader_json(c);
    char hex[17];

    hexid(c->id.node_id, hex);
    cJSON_AddStringToObject(body, "node_id", hex);
    cJSON_AddStringToObject(body, "role", elect_role_name(elect_role(c->core)));
    cJSON_AddNumberToObject(body, "term", (double)elect_term(c->core));
    cJSON_AddNumberToObject(body, "epoch", (double)ep.num);
    if (!l || !cJSON_AddItemToObject(body, "leader", l)) {
        cJSON_Delete(l);
        cJSON_AddNullToObject(body, "leader");
    }
}

static void reply(struct api_request *r, cJSON *j, bool ok)
{
    if (!ok) {
        cJSON_Delete(j);
        api_request_abort(r); /* out of memory: nothing sensible to say */
        return;
    }
    api_reply_json(r, 200, j);
    cJSON_Delete(j);
}

/* ---- GET /state --------------------------------------------------------- */

static void state_route(struct api_request *r, void *arg)
{
    struct cluster *c = arg;
    cJSON *j = cJSON_CreateObject(), *st = NULL;
    bool ok = j && add_view(c, j) && state_export_json(c->st, &st) == 0;
    if (ok && !cJSON_AddItemToObject(j, "state", st)) {
        cJSON_Delete(st);
        ok = false;
    }
    reply(r, j, ok);
}

/* ---- GET /nodes --------------------------------------------------------- */

static void add_unique(uint64_t *ids, size_t *n, size_t cap, uint64_t id)
{
    for (size_t i = 0; i < *n; i++)
        if (ids[i] == id)
            return;
    if (*n < cap)
        ids[(*n)++] = id;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static cJSON *node_json(const struct cluster *c, uint64_t id, const uint64_t *conf, size_t n_conf)
{
    const struct state_node *sn = state_find_node(c->st, id);
    const struct cluster_peer *p = NULL;
    const struct state_resources *res = sn ? &sn->res : NULL;
    char api[STATE_ADDR_MAX + 16];
    const char *addr = sn ? sn->addr : NULL, *link = "down";
    bool member = false, ok;
    cJSON *o = cJSON_CreateObject(), *rj = NULL;

    for (size_t i = 0; i < c->n_peers && !p; i++)
        if (c->peers[i]->id == id)
            p = c->peers[i];
    for (size_t i = 0; i < n_conf; i++)
        member |= conf[i] == id;
    if (id == c->id.node_id) {
        link = "self";
        res = &c->self->res;
        addr = c->self->addr;
    } else if (p) {
        link = p->linked ? "up" : "down";
        if (p->info) {
            res = &p->info->res; /* fresher than the log: telemetry is rate limited */
            addr = addr ? addr : p->info->addr;
        }
    }
    ok = o && add_id(o, "id", id) && cJSON_AddStringToObject(o, "name", cluster_node_name(c, id));
    ok = ok && (addr ? cJSON_AddStringToObject(o, "addr", addr) : cJSON_AddNullToObject(o, "addr"));
    ok = ok && (cluster_api_addr(c, id, api, sizeof api) ? cJSON_AddStringToObject(o, "api", api)
                                                         : cJSON_AddNullToObject(o, "api"));
    ok = ok && cJSON_AddBoolToObject(o, "member", member) &&
         cJSON_AddBoolToObject(o, "registered", sn != NULL) &&
         cJSON_AddBoolToObject(o, "leader",
                               elect_role(c->core) == ELECT_ROLE_LEADER
                                   ? id == c->id.node_id
                                   : id == elect_leader(c->core)) &&
         cJSON_AddBoolToObject(o, "self", id == c->id.node_id) &&
         cJSON_AddStringToObject(o, "link", link);
    if (ok && p && p->linked && p->link.rtt_us >= 0)
        ok = cJSON_AddNumberToObject(o, "rtt_ms", (double)p->link.rtt_us / 1000.0) != NULL;
    if (ok && res && state_resources_json(res, &rj) == 0 &&
        cJSON_AddItemToObject(o, "resources", rj))
        rj = NULL;
    else if (ok && !res)
        ok = cJSON_AddNullToObject(o, "resources") != NULL;
    else
        ok = false;
    if (ok && sn)
        ok = cJSON_AddNumberToObject(o, "joined_index", (double)sn->joined_index) &&
             cJSON_AddNumberToObject(o, "updated_index", (double)sn->updated_index);
    cJSON_Delete(rj);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static void nodes_route(struct api_request *r, void *arg)
{
    struct cluster *c = arg;
    uint64_t ids[STATE_MAX_NODES + CLUSTER_MAX_PEERS + ELECT_MAX_MEMBERS + 1];
    size_t n = 0, n_conf = 0, cap = sizeof ids / sizeof ids[0];
    const uint64_t *conf = elect_members(c->core, &n_conf);
    cJSON *j = cJSON_CreateObject(), *arr = NULL;
    bool ok;

    add_unique(ids, &n, cap, c->id.node_id);
    for (size_t i = 0; i < n_conf; i++)
        add_unique(ids, &n, cap, conf[i]);
    for (uint32_t i = 0; i < c->st->n_nodes; i++)
        add_unique(ids, &n, cap, c->st->nodes[i].id);
    for (size_t i = 0; i < c->n_peers; i++)
        if (c->peers[i]->linked || c->peers[i]->info)
            add_unique(ids, &n, cap, c->peers[i]->id);
    qsort(ids, n, sizeof ids[0], cmp_u64);
    ok = j && add_view(c, j) && (arr = cJSON_AddArrayToObject(j, "nodes"));
    for (size_t i = 0; ok && i < n; i++) {
        cJSON *o = node_json(c, ids[i], conf, n_conf);
        ok = o && cJSON_AddItemToArray(arr, o);
        if (!ok)
            cJSON_Delete(o);
    }
    reply(r, j, ok);
}

/* ---- GET /events -------------------------------------------------------- */

static bool query_u64(struct api_request *r, const char *key, uint64_t max, uint64_t *out)
{
    const char *v = api_request_query(r, key);
    struct api_error e;
    if (!v)
        return true;
    if (sh_parse_u64(v, max, out))
        return true;
    api_error_set(&e, 400, NULL, key, "\"%s\": expected an integer in 0..%" PRIu64 ", got '%.32s'",
                  key, max, v);
    api_reply_error(r, &e);
    return false;
}

/* Committed rows from..(at most max), as returned by the store. */
static int read_rows(struct cluster *c,
                     uint64_t from,
                     size_t max,
                     struct state_row **rows,
                     size_t *n,
                     struct sh_err *err)
{
    *rows = NULL;
    *n = 0;
    if (from > c->applied)
        return 0;
    if ((uint64_t)max > c->applied - from + 1)
        max = (size_t)(c->applied - from + 1);
    return state_store_read(c->store, from, max, rows, n, err);
}

static void stream_start(struct cluster *c, struct api_request *r, uint64_t since);

static void events_route(struct api_request *r, void *arg)
{
    struct cluster *c = arg;
    uint64_t since = 0, limit = PAGE_DEFAULT, stream = 0;
    struct state_row *rows = NULL;
    struct sh_err err;
    struct api_error e;
    cJSON *j = NULL, *arr = NULL;
    size_t n = 0;
    bool ok;

    if (!query_u64(r, "since", (uint64_t)STATE_JSON_INT_MAX, &since) ||
        !query_u64(r, "limit", PAGE_MAX, &limit) || !query_u64(r, "stream", 1, &stream))
        return;
    if (stream) {
        stream_start(c, r, since);
        return;
    }
    if (limit == 0)
        limit = PAGE_DEFAULT;
    sh_err_clear(&err);
    if (read_rows(c, since + 1, (size_t)limit, &rows, &n, &err)) {
        api_error_set(&e, 500, NULL, NULL, "event log: %s", sh_err_msg(&err));
        api_reply_error(r, &e);
        return;
    }
    j = cJSON_CreateObject();
    ok = j && add_view(c, j) && cJSON_AddNumberToObject(j, "since", (double)since) &&
         (arr = cJSON_AddArrayToObject(j, "events"));
    for (size_t i = 0; ok && i < n; i++) {
        cJSON *row = NULL;
        ok = state_row_json(&rows[i], &row) == 0 && cJSON_AddItemToArray(arr, row);
        if (!ok)
            cJSON_Delete(row);
    }
    ok = ok && cJSON_AddNumberToObject(j, "next", (double)(n ? rows[n - 1].index : since)) &&
         cJSON_AddBoolToObject(j, "more", (n ? rows[n - 1].index : since) < c->applied);
    state_rows_free(rows, n);
    reply(r, j, ok);
}

/* ---- streams ------------------------------------------------------------ */

static void stream_unlink(struct cluster *c, struct cluster_sse *s)
{
    for (struct cluster_sse **pp = &c->sse; *pp; pp = &(*pp)->next_client)
        if (*pp == s) {
            *pp = s->next_client;
            c->n_sse--;
            break;
        }
    free(s);
}

static void stream_closed(struct api_request *r, void *arg)
{
    struct cluster *c = arg;
    for (struct cluster_sse *s = c->sse; s; s = s->next_client)
        if (s->req == r) {
            SH_LOG(SH_LOG_DEBUG, MOD, "event stream client left");
            stream_unlink(c, s);
            return;
        }
}

/* Writes text to a stream; on failure drops the client (s is freed). */
static bool stream_write(struct cluster *c, struct cluster_sse *s, const char *text, size_t len)
{
    if (api_stream_write(s->req, text, len) == 0) {
        s->last_send_ns = sh_now_ns();
        return true;
    }
    SH_LOG(SH_LOG_INFO, MOD, "event stream client is not reading (%u bytes queued): dropped",
           API_MAX_PENDING_OUT);
    api_request_abort(s->req);
    stream_unlink(c, s);
    return false;
}

/* Sends up to STREAM_BATCH rows; false when s was dropped. *more tells
 * whether committed rows remain for it. */
static bool stream_pump(struct cluster *c, struct cluster_sse *s, bool *more)
{
    struct state_row *rows = NULL;
    struct sh_err err;
    size_t n = 0;
    bool alive = true;

    *more = false;
    sh_err_clear(&err);
    if (read_rows(c, s->next, STREAM_BATCH, &rows, &n, &err)) {
        SH_LOG(SH_LOG_WARN, MOD, "event stream: %s", sh_err_msg(&err));
        return true;
    }
    for (size_t i = 0; i < n && alive; i++) {
        cJSON *row = NULL;
        char *text = NULL, *frame = NULL;
        int len;
        if (state_row_json(&rows[i], &row) == 0)
            text = cJSON_PrintUnformatted(row);
        cJSON_Delete(row);
        len = text ? asprintf(&frame, "id: %" PRIu64 "\nevent: entry\ndata: %s\n\n", rows[i].index,
                              text)
                   : -1;
        free(text);
        if (len < 0)
            break; /* out of memory: the next turn tries again */
        alive = stream_write(c, s, frame, (size_t)len);
        free(frame);
        if (alive)
            s->next = rows[i].index + 1;
    }
    state_rows_free(rows, n);
    if (alive)
        *more = s->next <= c->applied;
    return alive;
}

static void stream_tick(evutil_socket_t fd, short what, void *arg)
{
    struct cluster *c = arg;
    struct cluster_sse *s = c->sse, *next;
    struct timeval again_tv = {0, STREAM_AGAIN * 1000};
    bool again = false;
    (void)fd;
    (void)what;
    for (; s; s = next) {
        bool more = false;
        next = s->next_client;
        if (stream_pump(c, s, &more))
            again |= more;
    }
    if (again)
        evtimer_add(c->sse_ev, &again_tv);
}

void cluster_sse_commit(struct cluster *c, bool rewound)
{
    struct cluster_sse *s, *next;
    struct timeval now_tv = {0, 0};
    char frame[96];

    if (!c->sse)
        return;
    for (s = c->sse; rewound && s; s = next) {
        int len;
        next = s->next_client;
        if (s->next <= c->applied + 1)
            continue;
        s->next = c->applied + 1;
        len = snprintf(frame, sizeof frame,
                       "event: rewind\ndata: {\"commit_index\":%" PRIu64 "}\n\n", c->applied);
        stream_write(c, s, frame, (size_t)len);
    }
    if (!evtimer_pending(c->sse_ev, NULL))
        evtimer_add(c->sse_ev, &now_tv);
}

static void stream_start(struct cluster *c, struct api_request *r, uint64_t since)
{
    static const char hello[] = ": shoal event stream\nretry: 1000\n\n";
    struct cluster_sse *s;
    struct api_error e;

    if (api_request_method(r) == API_HEAD) {
        api_reply_data(r, 200, "text/event-stream", "", 0);
        return;
    }
    if (c->n_sse >= STREAM_CLIENTS || !(s = calloc(1, sizeof *s))) {
        api_error_set(&e, 503, NULL, NULL, "too many event streams (%d)", STREAM_CLIENTS);
        e.retry_after_s = 5;
        api_reply_error(r, &e);
        return;
    }
    s->req = r;
    s->next = since + 1;
    s->next_client = c->sse;
    c->sse = s;
    c->n_sse++;
    api_request_on_close(r, stream_closed, c);
    api_stream_start(r, 200, "text/event-stream");
    if (stream_write(c, s, hello, sizeof hello - 1))
        cluster_sse_commit(c, false);
}

/* Keep-alive comments on idle streams (called every second). */
static void stream_keepalive(struct cluster *c)
{
    struct cluster_sse *s, *next;
    uint64_t now = sh_now_ns();
    for (s = c->sse; s; s = next) {
        next = s->next_client;
        if (now - s->last_send_ns > (uint64_t)KEEPALIVE_S * 1000000000u)
            stream_write(c, s, ": keepalive\n\n", 13);
    }
}

void cluster_sse_close_all(struct cluster *c)
{
    while (c->sse) {
        struct cluster_sse *s = c->sse;
        api_stream_end(s->req);
        stream_unlink(c, s);
    }
}

static void keepalive_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    stream_keepalive(arg);
}

int cluster_http_init(struct cluster *c, struct sh_err *err)
{
    const struct api_route routes[] = {
        {API_GET, "/state", API_DIALECT_PLAIN, 0, state_route, c},
        {API_GET, "/nodes", API_DIALECT_PLAIN, 0, nodes_route, c},
        {API_GET, "/events", API_DIALECT_PLAIN, 0, events_route, c},
    };
    struct timeval second = {1, 0};
    struct event *ka;
    int rc;

    c->sse_ev = evtimer_new(c->base, stream_tick, c);
    ka = event_new(c->base, -1, EV_PERSIST, keepalive_tick, c);
    if (!c->sse_ev || !ka || event_add(ka, &second) != 0) {
        if (ka)
            event_free(ka);
        return sh_err_set(err, SH_ENOMEM, "cannot create the stream timers");
    }
    c->keepalive_ev = ka;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if ((rc = api_server_add_route(c->a->api, &routes[i], err)))
            return sh_err_wrap(err, "route %s", routes[i].path);
    return 0;
}
