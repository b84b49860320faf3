/* state/events.c: the event schema: JSON -> typed event (state_event_parse),
 * typed event -> canonical JSON (state_event_encode), and the field rules
 * both share (validate_event). Semantic checks against a state live in
 * apply.c. Pure: libc, cJSON and common/ only.
 *
 * Parsing is two steps so every path checks the same rules: the JSON layer
 * only extracts fields of the right JSON type (naming the field when one is
 * missing or wrongly typed), then validate_event checks ranges, text and
 * lists on the typed struct. Encode and apply_event run validate_event too,
 * so an event built in C obeys exactly the rules of one read from the log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "state/internal.h"
#include "state/state.h"

/* One row per type: its name and the fields it may carry besides "type" and
 * "time". Fixed order = canonical encoding order. */
struct ev_spec {
    enum state_event_type type;
    const char *name;
    const char *fields[6];
};

static const struct ev_spec specs[] = {
    {STATE_EV_NODE_JOINED, "node_joined", {"node", "name", "addr", "api_port", "resources", NULL}},
    {STATE_EV_NODE_LEFT, "node_left", {"node", "reason", NULL}},
    {STATE_EV_LEADER_ELECTED, "leader_elected", {"term", "node", "epoch", NULL}},
    {STATE_EV_EPOCH_STARTED, "epoch_started", {"epoch", "node", "members", "base", "term", NULL}},
    {STATE_EV_NODE_INFO_UPDATED, "node_info_updated", {"node", "resources", NULL}},
    {STATE_EV_MEMBER_ADDED, "member_added", {"node", "epoch", "term", "members", NULL}},
    {STATE_EV_MEMBER_REMOVED,
     "member_removed",
     {"node", "epoch", "term", "members", "reason", NULL}},
};

static const char *const res_fields[] = {"ram_total", "ram_free", "cores", "models", NULL};

#define NSPECS (sizeof specs / sizeof specs[0])

static const struct ev_spec *spec_of(enum state_event_type type)
{
    for (size_t i = 0; i < NSPECS; i++)
        if (specs[i].type == type)
            return &specs[i];
    return NULL;
}

const char *state_event_type_name(enum state_event_type type)
{
    const struct ev_spec *sp = spec_of(type);
    return sp ? sp->name : "?";
}

/* ---- node ids ------------------------------------------------------------ */

bool state_node_id_parse(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (!s)
        return false;
    for (int i = 0; i < STATE_NODE_HEX_LEN; i++) {
        char c = s[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else
            return false; /* also catches a short string (NUL) and uppercase */
        v = v << 4 | (uint64_t)d;
    }
    if (s[STATE_NODE_HEX_LEN] != '\0' || v == STATE_NODE_NONE)
        return false;
    *out = v;
    return true;
}

void state_node_id_format(uint64_t id, char out[STATE_NODE_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < STATE_NODE_HEX_LEN; i++)
        out[i] = hex[(id >> (4 * (STATE_NODE_HEX_LEN - 1 - i))) & 0xf];
    out[STATE_NODE_HEX_LEN] = '\0';
}

/* ---- text rules ---------------------------------------------------------- */

/* True when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing past U+10FFFF) and, unless controls are allowed, without C0/C1
 * control characters or DEL: text we print on a terminal and embed in JSON
 * must be safe to show. */
bool state_utf8_ok(const char *s, size_t len, bool controls)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        unsigned c = p[i];
        uint32_t cp;
        size_t n;
        if (!controls && (c < 0x20 || c == 0x7f))
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false; /* continuation byte first, 0xc0/0xc1, 0xf5+ */
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff) || (!controls && cp >= 0x80 && cp <= 0x9f))
            return false;
        i += n + 1;
    }
    return true;
}

bool state_text_ok(const char *s, size_t len)
{
    return state_utf8_ok(s, len, false);
}

/* A NUL-terminated text field of a typed event: 1..max bytes, text_ok.
 * buf is the field's storage (cap = max + 1), so an unterminated buffer from
 * a caller is caught by memchr rather than read past. */
static int
check_text(const char *buf, size_t max, const char *type, const char *field, struct sh_err *err)
{
    const char *nul = memchr(buf, '\0', max + 1);
    size_t len;

    if (!nul)
        return sh_err_set(err, SH_EMALFORMED, "%s: \"%s\": longer than %zu bytes", type, field,
                          max);
    len = (size_t)(nul - buf);
    if (len == 0)
        return sh_err_set(err, SH_EMALFORMED, "%s: \"%s\": empty", type, field);
    if (!state_text_ok(buf, len))
        return sh_err_set(err, SH_EMALFORMED,
                          "%s: \"%s\": not UTF-8 text (control characters or bad bytes)", type,
                          field);
    return 0;
}

static bool host_char(char c, bool bracketed)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.')
        return true;
    if (bracketed)
        return c == ':' || c == '%';
    return (c >= 'g' && c <= 'z') || (c >= 'G' && c <= 'Z') || c == '-' || c == '_';
}

/* "host:port": hostname / IPv4 (letters, digits, '.', '-', '_') or an IPv6
 * literal in brackets, then ':' and a decimal port 1..65535. */
static int check_addr(const char *addr, const char *type, struct sh_err *err)
{
    const char *colon;
    size_t hlen;
    bool br;
    int64_t port;
    int rc;

    rc = check_text(addr, STATE_ADDR_MAX, type, "addr", err);
    if (rc)
        return rc;
    colon = strrchr(addr, ':');
    if (!colon || colon == addr)
        return sh_err_set(err, SH_EMALFORMED, "%s: \"addr\": expected host:port, got \"%s\"", type,
                          addr);
    hlen = (size_t)(colon - addr);
    br = addr[0] == '[';
    if (br && (hlen < 3 || addr[hlen - 1] != ']'))
        return sh_err_set(err, SH_EMALFORMED, "%s: \"addr\": unbalanced '[' in \"%s\"", type, addr);
    for (size_t i = br ? 1 : 0; i < (br ? hlen - 1 : hlen); i++)
        if (!host_char(addr[i], br))
            return sh_err_set(err, SH_EMALFORMED,
                              "%s: \"addr\": bad host character '%c' in \"%s\"%s", type, addr[i],
                              addr, addr[i] == ':' ? " (IPv6 needs [brackets])" : "");
    if (hlen - (br ? 2 : 0) > 255)
        return sh_err_set(err, SH_EMALFORMED, "%s: \"addr\": host longer than 255 bytes", type);
    if (strlen(colon + 1) > 5 || !sh_parse_i64(colon + 1, 1, 65535, &port) || colon[1] == '-')
        return sh_err_set(err, SH_EMALFORMED, "%s: \"addr\": port \"%s\" not in 1..65535", type,
                          colon + 1);
    return 0;
}

static int check_resources(const struct state_resources *r, const char *type, struct sh_err *err)
{
    if (r->ram_total > (uint64_t)STATE_JSON_INT_MAX)
        return sh_err_set(err, SH_EMALFORMED, "%s: \"resources.ram_total\": above 2^53", type);
    if (r->ram_free > r->ram_total)
        return sh_err_set(err, SH_EMALFORMED,
                          "%s: \"resources.ram_free\": %llu exceeds ram_total %llu", type,
                          (unsigned long long)r->ram_free, (unsigned long long)r->ram_total);
    if (r->cores < 1 || r->cores > STATE_MAX_CORES)
        return sh_err_set(err, SH_EMALFORMED, "%s: \"resources.cores\": %u not in 1..%d", type,
                          r->cores, STATE_MAX_CORES);
    if (r->n_models > STATE_MAX_MODELS)
        return sh_err_set(err, SH_EMALFORMED,
                          "%s: \"resources.models\": more than %d models (STATE_MAX_MODELS)", type,
                          STATE_MAX_MODELS);
    for (uint32_t i = 0; i < r->n_models; i++) {
        int rc = check_text(r->models[i], STATE_MODEL_ID_MAX, type, "resources.models[]", err);
        if (rc)
            return rc;
        if (i > 0 && strcmp(r->models[i - 1], r->models[i]) >= 0)
            return sh_err_set(err, SH_EMALFORMED,
                              "%s: \"resources.models\": \"%s\" listed twice or out of order", type,
                              r->models[i]);
    }
    return 0;
}

static int
check_int(uint64_t v, uint64_t min, const char *type, const char *field, struct sh_err *err)
{
    if (v < min || v > (uint64_t)STATE_JSON_INT_MAX)
        return sh_err_set(err, SH_EMALFORMED, "%s: \"%s\": %llu not in %llu..2^53", type, field,
                          (unsigned long long)v, (unsigned long long)min);
    return 0;
}

/* members[0..n): 1..STATE_MAX_NODES ids, sorted, distinct, not 0; node must
 * be one of them (want > 0), must not (want < 0), or either (want == 0). */
static int check_members(const struct state_event *ev, const char *t, int want, struct sh_err *err)
{
    bool found = false;

    if (ev->n_members < 1 || ev->n_members > STATE_MAX_NODES)
        return sh_err_set(err, SH_EMALFORMED, "%s: \"members\": %u members, expected 1..%d", t,
                          ev->n_members, STATE_MAX_NODES);
    for (uint32_t i = 0; i < ev->n_members; i++) {
        if (ev->members[i] == STATE_NODE_NONE)
            return sh_err_set(err, SH_EMALFORMED, "%s: \"members\": node id 0 is reserved", t);
        if (i > 0 && ev->members[i - 1] >= ev->members[i])
            return sh_err_set(err, SH_EMALFORMED,
                              "%s: \"members\": %016llx listed twice or out of order", t,
                              (unsigned long long)ev->members[i]);
        found |= ev->members[i] == ev->node;
    }
    if (want > 0 && !found)
        return sh_err_set(err, SH_EMALFORMED,
                          "%s: \"members\": the %s node %016llx is not a member", t,
                          ev->type == STATE_EV_EPOCH_STARTED ? "starting" : "added",
                          (unsigned long long)ev->node);
    if (want < 0 && found)
        return sh_err_set(err, SH_EMALFORMED,
                          "%s: \"members\": the removed node %016llx is still listed", t,
                          (unsigned long long)ev->node);
    return 0;
}

int state_event_validate(const struct state_event *ev, struct sh_err *err)
{
    const struct ev_spec *sp = spec_of(ev->type);
    const char *t;
    int rc = 0;

    if (!sp)
        return sh_err_set(err, SH_EUNSUPPORTED, "event type %d unknown", (int)ev->type);
    t = sp->name;
    if (ev->has_time && (ev->time_ms < 0 || ev->time_ms > STATE_JSON_INT_MAX))
        return sh_err_set(err, SH_EMALFORMED, "%s: \"time\": not in 0..2^53 ms", t);
    if (ev->node == STATE_NODE_NONE)
        return sh_err_set(err, SH_EMALFORMED, "%s: \"node\": node id 0 is reserved", t);
    switch (ev->type) {
    case STATE_EV_NODE_JOINED:
        if ((rc = check_text(ev->name, STATE_NAME_MAX, t, "name", err)) ||
            (rc = check_addr(ev->addr, t, err)))
            return rc;
        if (ev->api_port < 1 || ev->api_port > 65535)
            return sh_err_set(err, SH_EMALFORMED, "%s: \"api_port\": %u not in 1..65535", t,
                              ev->api_port);
        return check_resources(&ev->res, t, err);
    case STATE_EV_NODE_LEFT:
        return check_text(ev->reason, STATE_REASON_MAX, t, "reason", err);
    case STATE_EV_LEADER_ELECTED:
        if ((rc = check_int(ev->term, 1, t, "term", err)))
            return rc;
        return check_int(ev->epoch, 0, t, "epoch", err);
    case STATE_EV_EPOCH_STARTED:
        if ((rc = check_int(ev->epoch, 1, t, "epoch", err)) ||
            (rc = check_int(ev->term, 0, t, "term", err)) ||
            (rc = check_int(ev->base, 0, t, "base", err)))
            return rc;
        if (ev->term == 0 && ev->base != 0)
            return sh_err_set(err, SH_EMALFORMED, "%s: \"base\" without \"term\"", t);
        return check_members(ev, t, 1, err);
    case STATE_EV_MEMBER_ADDED:
    case STATE_EV_MEMBER_REMOVED:
        if ((rc = check_int(ev->epoch, 1, t, "epoch", err)) ||
            (rc = check_int(ev->term, 1, t, "term", err)))
            return rc;
        if (ev->type == STATE_EV_MEMBER_REMOVED &&
            (rc = check_text(ev->reason, STATE_REASON_MAX, t, "reason", err)))
            return rc;
        return check_members(ev, t, ev->type == STATE_EV_MEMBER_ADDED ? 1 : -1, err);
    case STATE_EV_NODE_INFO_UPDATED:
        return check_resources(&ev->res, t, err);
    }
    return sh_err_set(err, SH_EINTERNAL, "unreachable event type");
}

/* ---- JSON -> struct ------------------------------------------------------ */

#define SHOWN_MAX 40

/* A bounded, printable rendering of a string from outside for an error
 * message (a key or type name may hold anything, terminal escapes too). */
static const char *shown(const char *s, char buf[SHOWN_MAX])
{
    size_t n = strlen(s);
    snprintf(buf, SHOWN_MAX, "%.32s%s", s, n > 32 ? "..." : "");
    return state_text_ok(buf, strlen(buf)) ? buf : "(not text)";
}

/* Rejects keys outside allowed[] (plus "type"/"time" at top level) and
 * duplicates: cJSON keeps both copies of a duplicate and lookups would
 * silently take the first. */
static int check_keys(const cJSON *obj,
                      const char *const *allowed,
                      bool top,
                      const char *type,
                      const char *where,
                      struct sh_err *err)
{
    char shown_buf[SHOWN_MAX];

    for (const cJSON *c = obj->child; c; c = c->next) {
        bool ok = top && (strcmp(c->string, "type") == 0 || strcmp(c->string, "time") == 0);
        for (size_t i = 0; !ok && allowed[i]; i++)
            ok = strcmp(c->string, allowed[i]) == 0;
        if (!ok)
            return sh_err_set(err, SH_EMALFORMED, "%s: unknown field \"%s%s\"", type, where,
                              shown(c->string, shown_buf));
        for (const cJSON *d = obj->child; d != c; d = d->next)
            if (strcmp(d->string, c->string) == 0)
                return sh_err_set(err, SH_EMALFORMED, "%s: duplicate field \"%s%s\"", type, where,
                                  c->string);
    }
    return 0;
}

static const cJSON *
need(const cJSON *obj, const char *key, const char *type, const char *where, struct sh_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        sh_err_set(err, SH_EMALFORMED, "%s: missing \"%s%s\"", type, where, key);
    return v;
}

static int get_u64(const cJSON *obj,
                   const char *key,
                   uint64_t min,
                   uint64_t max,
                   uint64_t *out,
                   const char *type,
                   const char *where,
                   struct sh_err *err)
{
    const cJSON *v = need(obj, key, type, where, err);
    if (!v)
        return SH_EMALFORMED;
    if (!sh_json_is_int(v, (int64_t)min, (int64_t)max))
        return sh_err_set(err, SH_EMALFORMED, "%s: \"%s%s\": expected an integer in %llu..%llu",
                          type, where, key, (unsigned long long)min, (unsigned long long)max);
    *out = (uint64_t)v->valuedouble;
    return 0;
}

/* Copies a JSON string into a fixed field of cap bytes (cap = max + 1). */
static int get_str(
    const cJSON *v, char *dst, size_t cap, const char *type, const char *field, struct sh_err *err)
{
    size_t len;

    if (!cJSON_IsString(v) || !v->valuestring)
        return sh_err_set(err, SH_EMALFORMED, "%s: \"%s\": expected a string", type, field);
    len = strlen(v->valuestring);
    if (len >= cap)
        return sh_err_set(err, SH_EMALFORMED, "%s: \"%s\": longer than %zu bytes", type, field,
                          cap - 1);
    memcpy(dst, v->valuestring, len + 1);
    return 0;
}

static int
get_node(const cJSON *v, uint64_t *out, const char *type, const char *field, struct sh_err *err)
{
    if (!cJSON_IsString(v) || !state_node_id_parse(v->valuestring, out))
        return sh_err_set(err, SH_EMALFORMED,
                          "%s: \"%s\": expected a node id (16 lowercase hex digits, not 0)", type,
                          field);
    return 0;
}

static int cmp_model(const void *a, const void *b)
{
    return strcmp(a, b);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int
parse_resources(const cJSON *obj, struct state_resources *r, const char *type, struct sh_err *err)
{
    static const char *w = "resources.";
    const cJSON *models, *m;
    uint64_t cores = 0;
    int rc;

    if (!cJSON_IsObject(obj))
        return sh_err_set(err, SH_EMALFORMED, "%s: \"resources\": expected an object", type);
    if ((rc = check_keys(obj, res_fields, false, type, w, err)) ||
        (rc = get_u64(obj, "ram_total", 0, (uint64_t)STATE_JSON_INT_MAX, &r->ram_total, type, w,
                      err)) ||
        (rc = get_u64(obj, "ram_free", 0, (uint64_t)STATE_JSON_INT_MAX, &r->ram_free, type, w,
                      err)) ||
        (rc = get_u64(obj, "cores", 1, STATE_MAX_CORES, &cores, type, w, err)))
        return rc;
    r->cores = (uint32_t)cores;
    if (!(models = need(obj, "models", type, w, err)))
        return SH_EMALFORMED;
    if (!cJSON_IsArray(models))
        return sh_err_set(err, SH_EMALFORMED, "%s: \"resources.models\": expected an array", type);
    cJSON_ArrayForEach(m, models)
    {
        if (r->n_models == STATE_MAX_MODELS)
            return sh_err_set(err, SH_EMALFORMED,
                              "%s: \"resources.models\": more than %d models (STATE_MAX_MODELS)",
                              type, STATE_MAX_MODELS);
        if ((rc = get_str(m, r->models[r->n_models], sizeof r->models[0], type,
                          "resources.models[]", err)))
            return rc;
        r->n_models++;
    }
    qsort(r->models, r->n_models, sizeof r->models[0], cmp_model);
    return 0;
}

/* "members": an array of node ids, sorted into ev->members. */
static int
parse_members(const cJSON *root, struct state_event *ev, const char *t, struct sh_err *err)
{
    const cJSON *v, *m;
    int rc;

    if (!(v = need(root, "members", t, "", err)))
        return SH_EMALFORMED;
    if (!cJSON_IsArray(v))
        return sh_err_set(err, SH_EMALFORMED, "%s: \"members\": expected an array", t);
    cJSON_ArrayForEach(m, v)
    {
        if (ev->n_members == STATE_MAX_NODES)
            return sh_err_set(err, SH_EMALFORMED,
                              "%s: \"members\": more than %d members (STATE_MAX_NODES)", t,
                              STATE_MAX_NODES);
        if ((rc = get_node(m, &ev->members[ev->n_members], t, "members[]", err)))
            return rc;
        ev->n_members++;
    }
    qsort(ev->members, ev->n_members, sizeof ev->members[0], cmp_u64);
    return 0;
}

static int
parse_fields(const cJSON *root, struct state_event *ev, const char *t, struct sh_err *err)
{
    const cJSON *v;
    uint64_t u = 0;
    int rc;

    if (!(v = need(root, "node", t, "", err)))
        return SH_EMALFORMED;
    if ((rc = get_node(v, &ev->node, t, "node", err)))
        return rc;
    switch (ev->type) {
    case STATE_EV_NODE_JOINED:
        if (!(v = need(root, "name", t, "", err)) ||
            (rc = get_str(v, ev->name, sizeof ev->name, t, "name", err)))
            return rc ? rc : SH_EMALFORMED;
        if (!(v = need(root, "addr", t, "", err)) ||
            (rc = get_str(v, ev->addr, sizeof ev->addr, t, "addr", err)))
            return rc ? rc : SH_EMALFORMED;
        if ((rc = get_u64(root, "api_port", 1, 65535, &u, t, "", err)))
            return rc;
        ev->api_port = (uint32_t)u;
        if (!(v = need(root, "resources", t, "", err)))
            return SH_EMALFORMED;
        return parse_resources(v, &ev->res, t, err);
    case STATE_EV_NODE_LEFT:
        if (!(v = need(root, "reason", t, "", err)))
            return SH_EMALFORMED;
        return get_str(v, ev->reason, sizeof ev->reason, t, "reason", err);
    case STATE_EV_LEADER_ELECTED:
        if ((rc = get_u64(root, "term", 1, (uint64_t)STATE_JSON_INT_MAX, &ev->term, t, "", err)))
            return rc;
        return get_u64(root, "epoch", 0, (uint64_t)STATE_JSON_INT_MAX, &ev->epoch, t, "", err);
    case STATE_EV_EPOCH_STARTED:
        if ((rc = get_u64(root, "epoch", 1, (uint64_t)STATE_JSON_INT_MAX, &ev->epoch, t, "", err)))
            return rc;
        /* base and term come together (the Raft core writes both). */
        if (cJSON_GetObjectItemCaseSensitive(root, "base") ||
            cJSON_GetObjectItemCaseSensitive(root, "term")) {
            if ((rc = get_u64(root, "base", 0, (uint64_t)STATE_JSON_INT_MAX, &ev->base, t, "",
                              err)) ||
                (rc =
                     get_u64(root, "term", 1, (uint64_t)STATE_JSON_INT_MAX, &ev->term, t, "", err)))
                return rc;
        }
        return parse_members(root, ev, t, err);
    case STATE_EV_MEMBER_ADDED:
    case STATE_EV_MEMBER_REMOVED:
        if ((rc =
                 get_u64(root, "epoch", 1, (uint64_t)STATE_JSON_INT_MAX, &ev->epoch, t, "", err)) ||
            (rc = get_u64(root, "term", 1, (uint64_t)STATE_JSON_INT_MAX, &ev->term, t, "", err)) ||
            (rc = parse_members(root, ev, t, err)))
            return rc;
        if (ev->type == STATE_EV_MEMBER_ADDED)
            return 0;
        if (!(v = need(root, "reason", t, "", err)))
            return SH_EMALFORMED;
        return get_str(v, ev->reason, sizeof ev->reason, t, "reason", err);
    case STATE_EV_NODE_INFO_UPDATED:
        if (!(v = need(root, "resources", t, "", err)))
            return SH_EMALFORMED;
        return parse_resources(v, &ev->res, t, err);
    }
    return sh_err_set(err, SH_EINTERNAL, "unreachable event type");
}

int state_event_parse(const char *json, size_t len, struct state_event *out, struct sh_err *err)
{
    struct state_event *ev = NULL;
    const struct ev_spec *sp = NULL;
    const cJSON *tv;
    cJSON *root = NULL;
    uint64_t time_ms = 0;
    int rc;

    if (len > STATE_EVENT_MAX)
        return sh_err_set(err, SH_ETOOBIG, "event: %zu bytes, limit %d (STATE_EVENT_MAX)", len,
                          STATE_EVENT_MAX);
    if ((rc = sh_json_parse(json, len, "event", &root, err)))
        return rc;
    if (!cJSON_IsObject(root)) {
        rc = sh_err_set(err, SH_EMALFORMED, "event: expected a JSON object");
        goto out;
    }
    tv = cJSON_GetObjectItemCaseSensitive(root, "type");
    if (!tv || !cJSON_IsString(tv)) {
        rc = sh_err_set(err, SH_EMALFORMED, "event: %s \"type\"",
                        tv ? "expected a string in" : "missing");
        goto out;
    }
    for (size_t i = 0; i < NSPECS && !sp; i++)
        if (strcmp(specs[i].name, tv->valuestring) == 0)
            sp = &specs[i];
    if (!sp) {
        char buf[SHOWN_MAX];
        rc = sh_err_set(err, SH_EUNSUPPORTED, "event: unknown type \"%s\"",
                        shown(tv->valuestring, buf));
        goto out;
    }
    /* The event is ~10 KB; keep it off small stacks. */
    ev = calloc(1, sizeof *ev);
    if (!ev) {
        rc = sh_err_set(err, SH_ENOMEM, "event: out of memory");
        goto out;
    }
    ev->type = sp->type;
    if ((rc = check_keys(root, sp->fields, true, sp->name, "", err)))
        goto out;
    if (cJSON_GetObjectItemCaseSensitive(root, "time")) {
        if ((rc = get_u64(root, "time", 0, (uint64_t)STATE_JSON_INT_MAX, &time_ms, sp->name, "",
                          err)))
            goto out;
        ev->has_time = true;
        ev->time_ms = (int64_t)time_ms;
    }
    if ((rc = parse_fields(root, ev, sp->name, err)) || (rc = state_event_validate(ev, err)))
        goto out;
    memcpy(out, ev, sizeof *ev);
out:
    free(ev);
    cJSON_Delete(root);
    return rc;
}

/* ---- struct -> JSON ------------------------------------------------------ */

static bool add_node(cJSON *obj, const char *key, uint64_t id)
{
    char hex[STATE_NODE_HEX_LEN + 1];
    state_node_id_format(id, hex);
    return cJSON_AddStringToObject(obj, key, hex) != NULL;
}

static bool add_resources(cJSON *obj, const struct state_resources *res)
{
    cJSON *v = NULL;
    if (state_resources_json(res, &v) != 0)
        return false;
    if (!cJSON_AddItemToObject(obj, "resources", v)) {
        cJSON_Delete(v);
        return false;
    }
    return true;
}

static bool add_members(cJSON *obj, const struct state_event *ev)
{
    cJSON *v = cJSON_AddArrayToObject(obj, "members");
    bool ok = v != NULL;
    for (uint32_t i = 0; ok && i < ev->n_members; i++) {
        char hex[STATE_NODE_HEX_LEN + 1];
        cJSON *s;
        state_node_id_format(ev->members[i], hex);
        s = cJSON_CreateString(hex);
        ok = s && cJSON_AddItemToArray(v, s);
        if (!ok)
            cJSON_Delete(s);
    }
    return ok;
}

int state_event_encode(const struct state_event *ev, char **out, struct sh_err *err)
{
    cJSON *root = NULL;
    char *text = NULL;
    bool ok;
    int rc;

    if ((rc = state_event_validate(ev, err)))
        return rc;
    root = cJSON_CreateObject();
    ok = root && cJSON_AddStringToObject(root, "type", state_event_type_name(ev->type));
    if (ok && ev->has_time)
        ok = cJSON_AddNumberToObject(root, "time", (double)ev->time_ms) != NULL;
    switch (ev->type) {
    case STATE_EV_NODE_JOINED:
        ok = ok && add_node(root, "node", ev->node) &&
             cJSON_AddStringToObject(root, "name", ev->name) &&
             cJSON_AddStringToObject(root, "addr", ev->addr) &&
             cJSON_AddNumberToObject(root, "api_port", ev->api_port) &&
             add_resources(root, &ev->res);
        break;
    case STATE_EV_NODE_INFO_UPDATED:
        ok = ok && add_node(root, "node", ev->node) && add_resources(root, &ev->res);
        break;
    case STATE_EV_NODE_LEFT:
        ok = ok && add_node(root, "node", ev->node) &&
             cJSON_AddStringToObject(root, "reason", ev->reason);
        break;
    case STATE_EV_LEADER_ELECTED:
        ok = ok && cJSON_AddNumberToObject(root, "term", (double)ev->term) &&
             add_node(root, "node", ev->node) &&
             cJSON_AddNumberToObject(root, "epoch", (double)ev->epoch);
        break;
    case STATE_EV_EPOCH_STARTED:
        ok = ok && cJSON_AddNumberToObject(root, "epoch", (double)ev->epoch) &&
             add_node(root, "node", ev->node);
        if (ok && ev->term != 0)
            ok = cJSON_AddNumberToObject(root, "base", (double)ev->base) &&
                 cJSON_AddNumberToObject(root, "term", (double)ev->term);
        ok = ok && add_members(root, ev);
        break;
    case STATE_EV_MEMBER_ADDED:
    case STATE_EV_MEMBER_REMOVED:
        ok = ok && add_node(root, "node", ev->node) &&
             cJSON_AddNumberToObject(root, "epoch", (double)ev->epoch) &&
             cJSON_AddNumberToObject(root, "term", (double)ev->term) && add_members(root, ev);
        if (ok && ev->type == STATE_EV_MEMBER_REMOVED)
            ok = cJSON_AddStringToObject(root, "reason", ev->reason) != NULL;
        break;
    }
    if (ok)
        text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text)
        return sh_err_set(err, SH_ENOMEM, "%s: out of memory encoding",
                          state_event_type_name(ev->type));
    *out = text;
    return 0;
}
