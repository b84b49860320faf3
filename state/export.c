/* state/export.c: the state and log rows as JSON (cJSON trees) for
 * `GET /state`, `GET /events` and `shoal replay --json`. Pure: no I/O.
 * Node ids are 16-hex strings; counts and byte sizes are JSON integers (all
 * below 2^53 by the schema's rules, so they survive a double). */
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "state/internal.h"
#include "state/state.h"

static cJSON *node_str(uint64_t id)
{
    char hex[STATE_NODE_HEX_LEN + 1];
    if (id == STATE_NODE_NONE)
        return cJSON_CreateNull();
    state_node_id_format(id, hex);
    return cJSON_CreateString(hex);
}

/* Adds item to obj, or frees it; false when either step failed. */
static bool put(cJSON *obj, const char *key, cJSON *item)
{
    if (!item)
        return false;
    if (!cJSON_AddItemToObject(obj, key, item)) {
        cJSON_Delete(item);
        return false;
    }
    return true;
}

static bool push(cJSON *arr, cJSON *item)
{
    if (!item)
        return false;
    if (!cJSON_AddItemToArray(arr, item)) {
        cJSON_Delete(item);
        return false;
    }
    return true;
}

static bool num(cJSON *obj, const char *key, double v)
{
    return cJSON_AddNumberToObject(obj, key, v) != NULL;
}

static cJSON *id_array(const uint64_t *ids, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < n; i++) {
        if (!push(arr, node_str(ids[i]))) {
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

int state_resources_json(const struct state_resources *res, cJSON **out)
{
    cJSON *o = cJSON_CreateObject(), *models;
    bool ok = o && num(o, "ram_total", (double)res->ram_total) &&
              num(o, "ram_free", (double)res->ram_free) && num(o, "cores", res->cores) &&
              (models = cJSON_AddArrayToObject(o, "models"));
    for (uint32_t i = 0; ok && i < res->n_models && i < STATE_MAX_MODELS; i++)
        ok = push(models, cJSON_CreateString(res->models[i]));
    if (!ok) {
        cJSON_Delete(o);
        return SH_ENOMEM;
    }
    *out = o;
    return 0;
}

static cJSON *node_json(const struct state *st, const struct state_node *n)
{
    cJSON *o = cJSON_CreateObject(), *res = NULL;
    bool in_epoch = false;
    bool ok;

    for (uint32_t i = 0; i < st->n_members; i++)
        in_epoch |= st->members[i] == n->id;
    ok = o && put(o, "node", node_str(n->id)) && cJSON_AddStringToObject(o, "name", n->name) &&
         cJSON_AddStringToObject(o, "addr", n->addr) && num(o, "api_port", n->api_port) &&
         state_resources_json(&n->res, &res) == 0 && put(o, "resources", res) &&
         num(o, "joined_index", (double)n->joined_index) &&
         num(o, "joined_time_ms", (double)n->joined_time_ms) &&
         num(o, "updated_index", (double)n->updated_index) &&
         num(o, "updated_time_ms", (double)n->updated_time_ms) && num(o, "rejoins", n->rejoins) &&
         cJSON_AddBoolToObject(o, "in_epoch", in_epoch);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

int state_export_json(const struct state *st, cJSON **out)
{
    cJSON *o = cJSON_CreateObject(), *ep = NULL, *ld = NULL, *nodes = NULL;
    bool ok;

    ok = o && num(o, "applied_index", (double)st->applied_index) &&
         num(o, "time_ms", (double)st->time_ms) && (ep = cJSON_AddObjectToObject(o, "epoch")) &&
         num(ep, "number", (double)st->epoch) && put(ep, "started_by", node_str(st->epoch_node)) &&
         put(ep, "members", id_array(st->members, st->n_members));
    if (ok && st->leader != STATE_NODE_NONE) {
        ok = (ld = cJSON_AddObjectToObject(o, "leader")) && put(ld, "node", node_str(st->leader)) &&
             num(ld, "term", (double)st->term) && num(ld, "index", (double)st->leader_index);
    } else if (ok) {
        ok = cJSON_AddNullToObject(o, "leader") != NULL;
    }
    ok = ok && (nodes = cJSON_AddArrayToObject(o, "nodes"));
    for (uint32_t i = 0; ok && i < st->n_nodes; i++)
        ok = push(nodes, node_json(st, &st->nodes[i]));
    if (!ok) {
        cJSON_Delete(o);
        return SH_ENOMEM;
    }
    *out = o;
    return 0;
}

int state_row_json(const struct state_row *row, cJSON **out)
{
    cJSON *o = cJSON_CreateObject(), *ev = NULL;
    bool ok;

    ok = o && num(o, "index", (double)row->index) && num(o, "term", (double)row->term) &&
         cJSON_AddStringToObject(o, "kind", state_row_kind_name(row->kind)) &&
         num(o, "time_ms", (double)row->time_ms) &&
         put(o, "members", id_array(row->members, row->n_members));
    if (!ok)
        goto fail;
    /* The payload as a JSON object when it is one, else as text (or a note
     * when it is not even UTF-8, so the document itself stays valid). */
    if (row->payload_len > 0 &&
        sh_json_parse(row->payload, row->payload_len, "payload", &ev, NULL) == 0 &&
        cJSON_IsObject(ev)) {
        ok = put(o, "event", ev);
    } else {
        cJSON_Delete(ev);
        if (!row->payload || row->payload_len == 0) {
            ok = cJSON_AddStringToObject(o, "payload", "") != NULL;
        } else if (state_utf8_ok(row->payload, row->payload_len, true) &&
                   !memchr(row->payload, '\0', row->payload_len)) {
            ok = cJSON_AddStringToObject(o, "payload", row->payload) != NULL;
        } else {
            char note[64];
            snprintf(note, sizeof note, "(%zu bytes, not UTF-8 text)", row->payload_len);
            ok = cJSON_AddStringToObject(o, "payload", note) != NULL;
        }
    }
    if (!ok)
        goto fail;
    *out = o;
    return 0;
fail:
    cJSON_Delete(o);
    return SH_ENOMEM;
}

const char *state_row_kind_name(int kind)
{
    switch (kind) {
    case STATE_ROW_EVENT:
        return "event";
    case STATE_ROW_CONFIG:
        return "config";
    case STATE_ROW_EPOCH:
        return "epoch";
    case STATE_ROW_LEADER:
        return "leader";
    default:
        return "?";
    }
}
