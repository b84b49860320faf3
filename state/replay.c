/* state/replay.c: the story a log tells, as text or JSON (`shoal replay`).
 *
 * Pure over rows: folds them into a fresh state with state_apply exactly as
 * an agent does, and formats each entry with the state as it was just
 * before it (so names resolve as they were then). A row that does not apply
 * is shown with its reason and the fold goes on: replay is for debugging
 * logs, bad ones included. Reading the rows is store.c's job.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "state/internal.h"
#include "state/state.h"

#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)

/* ---- small formatters ---------------------------------------------------- */

/* Days since 1970-01-01 -> civil date (H. Hinnant's days_from_civil inverse),
 * exact for any int64 day count we can be handed; no libc time zone state. */
static void civil(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

void state_format_time(int64_t ms, char out[32])
{
    int64_t days, secs, y;
    unsigned mo, d;
    char wide[128];

    /* 2^53 ms is year ~287396: beyond that (or <= 0) there is no time. */
    if (ms <= 0 || ms > STATE_JSON_INT_MAX) {
        snprintf(out, 32, "-");
        return;
    }
    days = ms / 86400000;
    secs = (ms / 1000) % 86400;
    civil(days, &y, &mo, &d);
    /* The compiler cannot see the ranges (year <= 287396), hence the wide
     * scratch buffer and the bounded copy. */
    snprintf(wide, sizeof wide, "%04" PRId64 "-%02u-%02uT%02d:%02d:%02d.%03dZ", y, mo, d,
             (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60), (int)(ms % 1000));
    snprintf(out, 32, "%.31s", wide);
}

static void fmt_bytes(uint64_t b, char out[24])
{
    if (b >= GIB)
        snprintf(out, 24, "%.1f GiB", (double)b / (double)GIB);
    else
        snprintf(out, 24, "%.0f MiB", (double)b / (double)MIB);
}

/* Appends s with anything unprintable replaced by '?': names and reasons
 * come from files and peers, and a terminal must not execute them. */
static int put_text(struct sh_strbuf *sb, const char *s)
{
    size_t n = strlen(s);
    int rc;
    if (state_text_ok(s, n))
        return sh_strbuf_append(sb, s, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char ch = c >= 0x20 && c < 0x7f ? (char)c : '?';
        if ((rc = sh_strbuf_append(sb, &ch, 1)))
            return rc;
    }
    return 0;
}

/* "3fa1c2d4… (lab1)", or "3fa1c2d4…" for a node the state does not know. */
static int put_node(struct sh_strbuf *sb, const struct state *st, uint64_t id)
{
    const struct state_node *n = st ? state_find_node(st, id) : NULL;
    char hex[STATE_NODE_HEX_LEN + 1];
    int rc;

    state_node_id_format(id, hex);
    if ((rc = sh_strbuf_printf(sb, "%.8s\xe2\x80\xa6", hex)))
        return rc;
    return n ? sh_strbuf_printf(sb, " (%s)", n->name) : 0;
}

static int put_resources(struct sh_strbuf *sb, const struct state_resources *r)
{
    char total[24], fr[24];
    int rc;

    fmt_bytes(r->ram_total, total);
    fmt_bytes(r->ram_free, fr);
    if ((rc = sh_strbuf_printf(sb, "%u core%s, %s RAM (%s free), ", r->cores,
                               r->cores == 1 ? "" : "s", total, fr)))
        return rc;
    if (r->n_models == 0)
        return sh_strbuf_puts(sb, "no models");
    if ((rc = sh_strbuf_puts(sb, "models: ")))
        return rc;
    for (uint32_t i = 0; i < r->n_models; i++)
        if ((rc = sh_strbuf_printf(sb, "%s%s", i ? ", " : "", r->models[i])))
            return rc;
    return 0;
}

static bool has_model(const struct state_resources *r, const char *m)
{
    for (uint32_t i = 0; i < r->n_models; i++)
        if (strcmp(r->models[i], m) == 0)
            return true;
    return false;
}

/* What changed between two resource reports, "" when nothing did. */
static int
put_res_diff(struct sh_strbuf *sb, const struct state_resources *a, const struct state_resources *b)
{
    char x[24], y[24];
    const char *sep = "";
    int rc = 0;

    if (a->cores != b->cores) {
        rc = sh_strbuf_printf(sb, "cores %u -> %u", a->cores, b->cores);
        sep = ", ";
    }
    if (!rc && a->ram_total != b->ram_total) {
        fmt_bytes(a->ram_total, x);
        fmt_bytes(b->ram_total, y);
        rc = sh_strbuf_printf(sb, "%sRAM %s -> %s", sep, x, y);
        sep = ", ";
    }
    if (!rc && a->ram_free != b->ram_free) {
        fmt_bytes(a->ram_free, x);
        fmt_bytes(b->ram_free, y);
        rc = sh_strbuf_printf(sb, "%sfree %s -> %s", sep, x, y);
        sep = ", ";
    }
    for (uint32_t i = 0; !rc && i < b->n_models; i++)
        if (!has_model(a, b->models[i])) {
            rc = sh_strbuf_printf(sb, "%smodel +%s", sep, b->models[i]);
            sep = ", ";
        }
    for (uint32_t i = 0; !rc && i < a->n_models; i++)
        if (!has_model(b, a->models[i])) {
            rc = sh_strbuf_printf(sb, "%smodel -%s", sep, a->models[i]);
            sep = ", ";
        }
    if (!rc && !*sep)
        rc = sh_strbuf_puts(sb, "no change");
    return rc;
}

int state_event_summary(const struct state *st, const struct state_event *ev, struct sh_strbuf *out)
{
    const struct state_node *known = st ? state_find_node(st, ev->node) : NULL;
    int rc;

    if ((rc = sh_strbuf_puts(out, "node ")) || (rc = put_node(out, NULL, ev->node)))
        return rc;
    switch (ev->type) {
    case STATE_EV_NODE_JOINED:
        if ((rc = sh_strbuf_printf(out, " (%s, %s) %s: ", ev->name, ev->addr,
                                   known ? "rejoined" : "joined")))
            return rc;
        return put_resources(out, &ev->res);
    case STATE_EV_NODE_LEFT:
        if (known && (rc = sh_strbuf_printf(out, " (%s)", known->name)))
            return rc;
        return sh_strbuf_printf(out, " left: %s", ev->reason);
    case STATE_EV_LEADER_ELECTED:
        if (known && (rc = sh_strbuf_printf(out, " (%s)", known->name)))
            return rc;
        return sh_strbuf_printf(out, " elected leader for term %" PRIu64 " (epoch %" PRIu64 ")",
                                ev->term, ev->epoch);
    case STATE_EV_EPOCH_STARTED:
        if (known && (rc = sh_strbuf_printf(out, " (%s)", known->name)))
            return rc;
        if ((rc = sh_strbuf_printf(out, " started epoch %" PRIu64, ev->epoch)))
            return rc;
        if (ev->term &&
            (rc = sh_strbuf_printf(out, " at #%" PRIu64 " and leads it (term %" PRIu64 ")",
                                   ev->base + 1, ev->term)))
            return rc;
        if ((rc = sh_strbuf_printf(out, " with %u member%s: ", ev->n_members,
                                   ev->n_members == 1 ? "" : "s")))
            return rc;
        for (uint32_t i = 0; i < ev->n_members; i++)
            if ((rc = sh_strbuf_puts(out, i ? ", " : "")) ||
                (rc = put_node(out, st, ev->members[i])))
                return rc;
        return 0;
    case STATE_EV_MEMBER_ADDED:
    case STATE_EV_MEMBER_REMOVED:
        if (known && (rc = sh_strbuf_printf(out, " (%s)", known->name)))
            return rc;
        if (ev->type == STATE_EV_MEMBER_ADDED)
            rc = sh_strbuf_puts(out, " added to the members: ");
        else
            rc = sh_strbuf_printf(out, " removed from the members (%s): ", ev->reason);
        for (uint32_t i = 0; !rc && i < ev->n_members; i++)
            if (!(rc = sh_strbuf_puts(out, i ? ", " : "")))
                rc = put_node(out, st, ev->members[i]);
        return rc;
    case STATE_EV_NODE_INFO_UPDATED:
        if (!known)
            return (rc = sh_strbuf_puts(out, " updated: ")) ? rc : put_resources(out, &ev->res);
        if ((rc = sh_strbuf_printf(out, " (%s) updated: ", known->name)))
            return rc;
        return put_res_diff(out, &known->res, &ev->res);
    }
    return sh_strbuf_puts(out, "?");
}

/* ---- one row ------------------------------------------------------------- */

struct row_view {
    char type[40];     /* event type, kind name for a row without payload, "?" */
    char time[32];     /* formatted */
    bool applied;      /* folded into the state */
    bool has_event;    /* payload parsed as an event */
    struct sh_err why; /* the reject reason when !applied && payload present */
    struct sh_strbuf summary;
};

/* Best effort type and time for a row whose payload did not parse as an
 * event: a rejected row still sits at its place in the story. */
static void raw_info(const struct state_row *r, char type[40], int64_t *time_ms)
{
    cJSON *root = NULL;
    const cJSON *t;
    int64_t ms = 0;

    snprintf(type, 40, "?");
    if (r->payload_len == 0 ||
        sh_json_parse(r->payload, r->payload_len, "payload", &root, NULL) != 0)
        return;
    t = cJSON_GetObjectItemCaseSensitive(root, "type");
    if (cJSON_IsString(t) && strlen(t->valuestring) < 40 &&
        state_text_ok(t->valuestring, strlen(t->valuestring)))
        snprintf(type, 40, "%s", t->valuestring);
    if (cJSON_IsObject(root) && sh_json_int(root, "time", 1, STATE_JSON_INT_MAX, &ms, NULL) == 0)
        *time_ms = ms;
    cJSON_Delete(root);
}

/* Describes r in v and, when fold is set, folds it into st (a row without
 * payload has nothing to fold). */
static int view_row(struct state *st,
                    struct state_event *ev,
                    const struct state_row *r,
                    bool fold,
                    struct row_view *v)
{
    int rc;

    memset(v, 0, sizeof *v);
    sh_strbuf_init(&v->summary, 64 * 1024);
    if (r->payload_len == 0 && r->kind != STATE_ROW_EVENT) {
        /* A Raft entry with no event (a no-op or a bare membership change). */
        snprintf(v->type, sizeof v->type, "%s", state_row_kind_name(r->kind));
        state_format_time(r->time_ms, v->time);
        if ((rc = sh_strbuf_puts(&v->summary, r->n_members ? "members: " : "no event")))
            return rc;
        for (size_t i = 0; i < r->n_members; i++)
            if ((rc = sh_strbuf_puts(&v->summary, i ? ", " : "")) ||
                (rc = put_node(&v->summary, st, r->members[i])))
                return rc;
        return 0;
    }
    if (state_event_parse(r->payload ? r->payload : "", r->payload_len, ev, &v->why) != 0) {
        int64_t ms = r->time_ms;
        raw_info(r, v->type, &ms);
        state_format_time(ms, v->time);
        return 0;
    }
    v->has_event = true;
    snprintf(v->type, sizeof v->type, "%s", state_event_type_name(ev->type));
    state_format_time(ev->has_time ? ev->time_ms : r->time_ms, v->time);
    if ((rc = state_event_summary(st, ev, &v->summary)))
        return rc;
    if (fold)
        v->applied = state_apply_event(st, r->index, ev, &v->why) == 0;
    return 0;
}

/* ---- text ---------------------------------------------------------------- */

/* A row is "rejected" when it carried an event (or should have) that did
 * not fold; a bare Raft entry (no payload, not an EVENT) is not. */
static bool is_rejected(const struct state_row *r, const struct row_view *v)
{
    return !v->applied && (r->payload_len > 0 || r->kind == STATE_ROW_EVENT);
}

static int
text_row(struct sh_strbuf *out, const struct state_row *r, struct row_view *v, const char *mark)
{
    int rc;
    bool rejected = is_rejected(r, v);

    if ((rc = sh_strbuf_printf(out, "#%-5" PRIu64 " term %-3" PRIu64 "  %-24s  %-17s  ", r->index,
                               r->term, v->time, v->type)) ||
        (rc = put_text(out, v->summary.buf ? v->summary.buf : "")))
        return rc;
    if (rejected) {
        if ((rc = sh_strbuf_puts(out, v->has_event ? "  -- REJECTED: " : "REJECTED: ")) ||
            (rc = put_text(out, sh_err_msg(&v->why))))
            return rc;
    }
    return sh_strbuf_printf(out, "%s\n", mark);
}

static int text_archived(struct sh_strbuf *out,
                         const struct state_archived *a,
                         const struct row_view *v,
                         const char *when)
{
    int rc;

    if ((rc = sh_strbuf_printf(out, "  #%-5" PRIu64 " term %-3" PRIu64 "  %-24s  %-17s  ",
                               a->row.index, a->row.term, v->time, v->type)) ||
        (rc = put_text(out, v->summary.buf ? v->summary.buf : "")) ||
        (rc = sh_strbuf_printf(out, "\n         archived %s: ", when)) ||
        (rc = put_text(out, a->reason ? a->reason : "")))
        return rc;
    return sh_strbuf_puts(out, "\n");
}

static int text_state(struct sh_strbuf *out, const struct state *st)
{
    int rc;

    if ((rc = sh_strbuf_printf(out, "  epoch %" PRIu64, st->epoch)))
        return rc;
    if (st->epoch_node != STATE_NODE_NONE &&
        ((rc = sh_strbuf_puts(out, ", started by ")) || (rc = put_node(out, st, st->epoch_node))))
        return rc;
    if ((rc = sh_strbuf_printf(out, "; %u member%s", st->n_members, st->n_members == 1 ? "" : "s")))
        return rc;
    for (uint32_t i = 0; i < st->n_members; i++)
        if ((rc = sh_strbuf_puts(out, i ? ", " : ": ")) || (rc = put_node(out, st, st->members[i])))
            return rc;
    if ((rc = sh_strbuf_puts(out, "\n  leader: ")))
        return rc;
    if (st->leader == STATE_NODE_NONE)
        rc = sh_strbuf_puts(out, "none");
    else if (!(rc = put_node(out, st, st->leader)))
        rc = sh_strbuf_printf(out, ", term %" PRIu64 " (elected at #%" PRIu64 ")", st->term,
                              st->leader_index);
    if (rc || (rc = sh_strbuf_printf(out, "\n  nodes: %u\n", st->n_nodes)))
        return rc;
    for (uint32_t i = 0; i < st->n_nodes; i++) {
        const struct state_node *n = &st->nodes[i];
        char hex[STATE_NODE_HEX_LEN + 1];
        state_node_id_format(n->id, hex);
        if ((rc = sh_strbuf_printf(out, "    %s  %s  %s  api port %u  ", hex, n->name, n->addr,
                                   n->api_port)) ||
            (rc = put_resources(out, &n->res)) ||
            (rc = sh_strbuf_printf(out, "  (joined #%" PRIu64 ", updated #%" PRIu64 ")\n",
                                   n->joined_index, n->updated_index)))
            return rc;
    }
    return 0;
}

static int text_header(struct sh_strbuf *out,
                       const struct state_store_meta *m,
                       size_t n,
                       const struct state_replay_opts *o)
{
    char v[STATE_NODE_HEX_LEN + 1] = "none";
    int rc;

    if (!m)
        return sh_strbuf_printf(out, "event log: %zu entries\n\n", n);
    if (m->persist.voted_for != STATE_NODE_NONE)
        state_node_id_format(m->persist.voted_for, v);
    rc = sh_strbuf_printf(
        out,
        "event log: %" PRIu64 " entries (last term %" PRIu64 "), commit index %" PRIu64 "%s\n"
        "node: current term %" PRIu64 ", voted for %s, epoch %" PRIu64 "\n",
        m->last_index, m->last_term, m->commit_index, m->commit_index ? "" : " (not recorded)",
        m->persist.term, v, m->persist.epoch);
    if (!rc && o->to_index)
        rc = sh_strbuf_printf(out, "replaying up to index %" PRIu64 "\n", o->to_index);
    return rc ? rc : sh_strbuf_puts(out, "\n");
}

/* ---- JSON ---------------------------------------------------------------- */

/* An entry of "entries" (m, when given, adds "committed"), or of "archived"
 * (a, when given: no "applied", the archive's fields instead). */
static int json_row(cJSON *arr,
                    const struct state_row *r,
                    const struct row_view *v,
                    const struct state_store_meta *m,
                    const struct state_archived *a)
{
    cJSON *o = NULL;
    bool ok;

    if (state_row_json(r, &o))
        return SH_ENOMEM;
    ok = cJSON_AddStringToObject(o, "type", v->type) &&
         cJSON_AddStringToObject(o, "summary", v->summary.buf ? v->summary.buf : "");
    if (ok && a)
        ok = cJSON_AddNumberToObject(o, "archive_id", (double)a->id) &&
             cJSON_AddNumberToObject(o, "archived_at_ms", (double)a->archived_at_ms) &&
             cJSON_AddStringToObject(o, "reason", a->reason ? a->reason : "");
    if (ok && !a)
        ok = cJSON_AddBoolToObject(o, "applied", v->applied) != NULL;
    if (ok && !a && is_rejected(r, v))
        ok = cJSON_AddStringToObject(o, "reject", sh_err_msg(&v->why)) != NULL;
    if (ok && m && m->commit_index)
        ok = cJSON_AddBoolToObject(o, "committed", r->index <= m->commit_index) != NULL;
    if (!ok || !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        return SH_ENOMEM;
    }
    return 0;
}

static cJSON *json_meta(const struct state_store_meta *m, const struct state_replay_opts *o)
{
    cJSON *j = cJSON_CreateObject();
    char hex[STATE_NODE_HEX_LEN + 1];
    bool ok = j != NULL;

    if (ok && m) {
        ok = cJSON_AddNumberToObject(j, "last_index", (double)m->last_index) &&
             cJSON_AddNumberToObject(j, "last_term", (double)m->last_term) &&
             cJSON_AddNumberToObject(j, "commit_index", (double)m->commit_index) &&
             cJSON_AddNumberToObject(j, "term", (double)m->persist.term) &&
             cJSON_AddNumberToObject(j, "epoch", (double)m->persist.epoch);
        state_node_id_format(m->persist.voted_for, hex);
        ok = ok && (m->persist.voted_for == STATE_NODE_NONE
                        ? cJSON_AddNullToObject(j, "voted_for") != NULL
                        : cJSON_AddStringToObject(j, "voted_for", hex) != NULL);
        state_node_id_format(m->persist.epoch_node, hex);
        ok = ok && (m->persist.epoch_node == STATE_NODE_NONE
                        ? cJSON_AddNullToObject(j, "epoch_node") != NULL
                        : cJSON_AddStringToObject(j, "epoch_node", hex) != NULL);
    }
    ok = ok && (o->to_index ? cJSON_AddNumberToObject(j, "to_index", (double)o->to_index)
                            : cJSON_AddNullToObject(j, "to_index")) != NULL;
    if (!ok) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

/* ---- the report ---------------------------------------------------------- */

struct replay {
    struct state *st; /* the fold */
    struct state_event *ev;
    struct row_view v;
    cJSON *doc; /* json only */
    cJSON *entries, *archived;
};

static int do_archived(struct replay *R,
                       const struct state_archived *a,
                       size_t na,
                       const struct state_replay_opts *o,
                       struct sh_strbuf *out)
{
    int rc = 0;

    if (!o->json && (rc = sh_strbuf_printf(out,
                                           "\narchived entries (%zu): truncated out of the "
                                           "log, kept for the record\n",
                                           na)))
        return rc;
    for (size_t i = 0; i < na; i++) {
        /* Not folded (they left the log); names come from the final state. */
        const struct row_view *v = &R->v;
        char when[32];
        if ((rc = view_row(R->st, R->ev, &a[i].row, false, &R->v)))
            break;
        state_format_time(a[i].archived_at_ms, when);
        if (o->json)
            rc = json_row(R->archived, &a[i].row, v, NULL, &a[i]);
        else
            rc = text_archived(out, &a[i], v, when);
        sh_strbuf_free(&R->v.summary);
        if (rc)
            break;
    }
    sh_strbuf_free(&R->v.summary);
    return rc;
}

static int run(struct replay *R,
               const struct state_row *rows,
               size_t n,
               const struct state_archived *arch,
               size_t na,
               const struct state_store_meta *m,
               const struct state_replay_opts *o,
               struct sh_strbuf *out)
{
    size_t shown = 0, rejected = 0;
    cJSON *sj = NULL;
    char *text;
    int rc = 0;

    if (o->json) {
        R->doc = cJSON_CreateObject();
        if (!R->doc || !cJSON_AddItemToObject(R->doc, "log", json_meta(m, o)) ||
            !(R->entries = cJSON_AddArrayToObject(R->doc, "entries")) ||
            !(R->archived = cJSON_AddArrayToObject(R->doc, "archived")))
            return SH_ENOMEM;
    } else if ((rc = text_header(out, m, n, o))) {
        return rc;
    }
    for (size_t i = 0; i < n && !rc; i++) {
        const struct state_row *r = &rows[i];
        const char *mark =
            m && m->commit_index && r->index > m->commit_index ? "  [uncommitted]" : "";
        if (o->to_index && r->index > o->to_index)
            break;
        if ((rc = view_row(R->st, R->ev, r, true, &R->v)))
            break;
        shown++;
        rejected += is_rejected(r, &R->v);
        rc = o->json ? json_row(R->entries, r, &R->v, m, NULL) : text_row(out, r, &R->v, mark);
        sh_strbuf_free(&R->v.summary);
    }
    sh_strbuf_free(&R->v.summary);
    if (!rc)
        rc = do_archived(R, arch, na, o, out);
    if (rc)
        return rc;
    if (!o->json)
        return (rc = sh_strbuf_printf(out,
                                      "\nstate at index %" PRIu64 " (%zu entries replayed, %zu "
                                      "rejected):\n",
                                      R->st->applied_index, shown, rejected))
                   ? rc
                   : text_state(out, R->st);
    if (state_export_json(R->st, &sj) || !cJSON_AddItemToObject(R->doc, "state", sj)) {
        cJSON_Delete(sj);
        return SH_ENOMEM;
    }
    text = cJSON_Print(R->doc);
    if (!text)
        return SH_ENOMEM;
    rc = sh_strbuf_puts(out, text);
    if (!rc)
        rc = sh_strbuf_puts(out, "\n");
    free(text);
    return rc;
}

int state_replay_format(const struct state_row *rows,
                        size_t n,
                        const struct state_archived *archived,
                        size_t n_archived,
                        const struct state_store_meta *meta,
                        const struct state_replay_opts *opts,
                        struct sh_strbuf *out,
                        struct sh_err *err)
{
    struct replay R;
    int rc;

    memset(&R, 0, sizeof R);
    R.st = state_new();
    R.ev = malloc(sizeof *R.ev);
    if (!R.st || !R.ev)
        rc = SH_ENOMEM;
    else
        rc = run(&R, rows, n, archived, n_archived, meta, opts, out);
    sh_strbuf_free(&R.v.summary);
    cJSON_Delete(R.doc);
    free(R.ev);
    state_free(R.st);
    if (rc == SH_ETOOBIG)
        return sh_err_set(err, rc, "replay: output larger than %zu bytes", out->max);
    if (rc)
        return sh_err_set(err, rc, "replay: %s", sh_strerror(rc));
    return 0;
}
