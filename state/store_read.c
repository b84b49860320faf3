/* state/store_read.c: reading the event log back: rows (checked one by one,
 * since the file may come from elsewhere), the meta scalars and the
 * archive. Writes, and the design notes on durability, are in store.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/json.h"
#include "common/util.h"
#include "state/internal.h"
#include "state/state.h"
#include "state/store_int.h"

/* ---- rows ---------------------------------------------------------------- */

/* Frees what one row owns (members, payload) and forgets it. */
static void row_clear(struct state_row *r)
{
    free(r->members);
    free(r->payload);
    r->members = NULL;
    r->payload = NULL;
}

void state_rows_free(struct state_row *rows, size_t n)
{
    if (!rows)
        return;
    for (size_t i = 0; i < n; i++)
        row_clear(&rows[i]);
    free(rows);
}

void state_archived_free(struct state_archived *rows, size_t n)
{
    if (!rows)
        return;
    for (size_t i = 0; i < n; i++) {
        free(rows[i].reason);
        row_clear(&rows[i].row);
    }
    free(rows);
}

static int parse_members(const char *text, int len, struct state_row *r)
{
    cJSON *arr = NULL;
    const cJSON *m;
    size_t n = 0;

    if (len < 0 || len > MEMBERS_TEXT_MAX ||
        sh_json_parse(text, (size_t)len, "members", &arr, NULL) || !cJSON_IsArray(arr) ||
        cJSON_GetArraySize(arr) > STATE_MAX_NODES)
        goto bad;
    if (cJSON_GetArraySize(arr) > 0) {
        r->members = calloc((size_t)cJSON_GetArraySize(arr), sizeof *r->members);
        if (!r->members) {
            cJSON_Delete(arr);
            return SH_ENOMEM;
        }
    }
    cJSON_ArrayForEach(m, arr)
    {
        if (!cJSON_IsString(m) || !state_node_id_parse(m->valuestring, &r->members[n]))
            goto bad;
        n++;
    }
    r->n_members = n;
    cJSON_Delete(arr);
    return 0;
bad:
    cJSON_Delete(arr);
    return SH_EMALFORMED;
}

/* Reads columns col..col+8 (STATE_ROW_COLUMNS) into r, checking every
 * value: the file may not be ours. On error r holds nothing to free. */
static int read_row(
    const struct state_store *s, sqlite3_stmt *st, int col, struct state_row *r, struct sh_err *err)
{
    const char *payload;
    int64_t idx, term, kind;
    int len, rc;

    memset(r, 0, sizeof *r);
    idx = sqlite3_column_int64(st, col);
    term = sqlite3_column_int64(st, col + 1);
    kind = sqlite3_column_int64(st, col + 2);
    if (sqlite3_column_type(st, col) != SQLITE_INTEGER || idx < 1)
        return sh_err_set(err, SH_EMALFORMED, "%s: a row has a bad index", s->path);
    if (sqlite3_column_type(st, col + 1) != SQLITE_INTEGER || term < 0 ||
        sqlite3_column_type(st, col + 2) != SQLITE_INTEGER || kind < 0 ||
        kind > STATE_ROW_KIND_MAX || sqlite3_column_type(st, col + 3) != SQLITE_TEXT ||
        sqlite3_column_type(st, col + 4) != SQLITE_TEXT ||
        sqlite3_column_type(st, col + 5) != SQLITE_INTEGER)
        return sh_err_set(err, SH_EMALFORMED,
                          "%s: row %lld: bad term, kind, members, payload or time_ms", s->path,
                          (long long)idx);
    if (sqlite3_column_type(st, col + 6) != SQLITE_INTEGER ||
        sqlite3_column_int64(st, col + 6) < 0 ||
        sqlite3_column_type(st, col + 7) != SQLITE_INTEGER ||
        sqlite3_column_int64(st, col + 7) < 0 ||
        (sqlite3_column_type(st, col + 8) != SQLITE_NULL &&
         (sqlite3_column_type(st, col + 8) != SQLITE_TEXT ||
          !state_node_id_parse((const char *)sqlite3_column_text(st, col + 8), &r->epoch_node))))
        return sh_err_set(err, SH_EMALFORMED, "%s: row %lld: bad epoch tag", s->path,
                          (long long)idx);
    r->epoch = (uint64_t)sqlite3_column_int64(st, col + 6);
    r->epoch_base = (uint64_t)sqlite3_column_int64(st, col + 7);
    r->index = (uint64_t)idx;
    r->term = (uint64_t)term;
    r->kind = (int)kind;
    r->time_ms = sqlite3_column_int64(st, col + 5);
    rc = parse_members((const char *)sqlite3_column_text(st, col + 3),
                       sqlite3_column_bytes(st, col + 3), r);
    if (rc) {
        row_clear(r);
        return rc == SH_ENOMEM ? sh_err_set(err, rc, "out of memory")
                               : sh_err_set(err, SH_EMALFORMED, "%s: row %lld: bad members",
                                            s->path, (long long)idx);
    }
    payload = (const char *)sqlite3_column_text(st, col + 4);
    len = sqlite3_column_bytes(st, col + 4);
    if (len < 0 || len > STATE_ROW_PAYLOAD_MAX) {
        row_clear(r);
        return sh_err_set(err, SH_EMALFORMED, "%s: row %lld: payload of %d bytes", s->path,
                          (long long)idx, len);
    }
    r->payload = malloc((size_t)len + 1);
    if (!r->payload) {
        row_clear(r);
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    }
    if (len > 0)
        memcpy(r->payload, payload, (size_t)len);
    r->payload[len] = '\0';
    r->payload_len = (size_t)len;
    return 0;
}

/* Grows *arr (of elem-size items) to hold at least need; checked math. */
static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    size_t ncap = *cap ? *cap : 64, bytes;
    void *p;
    if (need <= *cap)
        return 0;
    while (ncap < need)
        if (!sh_mul_size(ncap, 2, &ncap))
            return SH_ENOMEM;
    if (!sh_mul_size(ncap, elem, &bytes) || !(p = realloc(*arr, bytes)))
        return SH_ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

int state_store_read(struct state_store *s,
                     uint64_t from,
                     size_t max,
                     struct state_row **rows,
                     size_t *n,
                     struct sh_err *err)
{
    sqlite3_stmt *st = NULL;
    struct state_row *arr = NULL;
    size_t cnt = 0, cap = 0;
    int rc;

    if ((rc = state_db_prepare(s,
                               "SELECT " STATE_ROW_COLUMNS " FROM log "
                               "WHERE idx >= ? ORDER BY idx LIMIT ?",
                               &st, err)))
        return rc;
    sqlite3_bind_int64(st, 1, from > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)from);
    sqlite3_bind_int64(st, 2, max == 0 || max > (size_t)INT64_MAX ? -1 : (int64_t)max);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (grow((void **)&arr, &cap, cnt + 1, sizeof *arr)) {
            rc = sh_err_set(err, SH_ENOMEM, "out of memory reading %s", s->path);
            goto fail;
        }
        if ((rc = read_row(s, st, 0, &arr[cnt], err)))
            goto fail;
        cnt++;
        /* Contiguous within what we return (note 3). */
        if (cnt > 1 && arr[cnt - 1].index != arr[cnt - 2].index + 1) {
            rc = sh_err_set(err, SH_EMALFORMED, "%s: log has a gap after index %llu", s->path,
                            (unsigned long long)arr[cnt - 2].index);
            goto fail;
        }
    }
    if (rc != SQLITE_DONE) {
        rc = state_db_err(s, rc, "read log", err);
        goto fail;
    }
    sqlite3_finalize(st);
    *rows = arr;
    *n = cnt;
    return 0;
fail:
    sqlite3_finalize(st);
    state_rows_free(arr, cnt);
    return rc;
}

/* ---- meta ---------------------------------------------------------------- */

static int meta_u64(const struct state_store *s,
                    sqlite3_stmt *st,
                    const char *key,
                    uint64_t *out,
                    struct sh_err *err)
{
    if (sqlite3_column_type(st, 1) != SQLITE_INTEGER || sqlite3_column_int64(st, 1) < 0)
        return sh_err_set(err, SH_EMALFORMED, "%s: meta \"%s\": expected an integer >= 0", s->path,
                          key);
    *out = (uint64_t)sqlite3_column_int64(st, 1);
    return 0;
}

static int meta_node(const struct state_store *s,
                     sqlite3_stmt *st,
                     const char *key,
                     uint64_t *out,
                     struct sh_err *err)
{
    if (sqlite3_column_type(st, 1) == SQLITE_NULL) {
        *out = STATE_NODE_NONE;
        return 0;
    }
    if (sqlite3_column_type(st, 1) != SQLITE_TEXT ||
        !state_node_id_parse((const char *)sqlite3_column_text(st, 1), out))
        return sh_err_set(err, SH_EMALFORMED, "%s: meta \"%s\": expected a node id or NULL",
                          s->path, key);
    return 0;
}

/* Reads meta in the caller's transaction (so it matches the rows read next). */
static int read_meta(struct state_store *s, struct state_store_meta *m, struct sh_err *err)
{
    sqlite3_stmt *st = NULL;
    unsigned seen = 0;
    int64_t cnt = 0, min = 0, max = 0;
    int rc;

    memset(m, 0, sizeof *m);
    if ((rc = state_db_prepare(s, "SELECT key, value FROM meta", &st, err)))
        return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        int r = 0;
        if (!k)
            continue;
        if (strcmp(k, "term") == 0) {
            r = meta_u64(s, st, k, &m->persist.term, err);
            seen |= 1;
        } else if (strcmp(k, "voted_for") == 0) {
            r = meta_node(s, st, k, &m->persist.voted_for, err);
            seen |= 2;
        } else if (strcmp(k, "epoch") == 0) {
            r = meta_u64(s, st, k, &m->persist.epoch, err);
            seen |= 4;
        } else if (strcmp(k, "epoch_node") == 0) {
            r = meta_node(s, st, k, &m->persist.epoch_node, err);
            seen |= 8;
        } else if (strcmp(k, "commit_index") == 0) {
            r = meta_u64(s, st, k, &m->commit_index, err);
            seen |= 16;
        } else if (strcmp(k, "epoch_base") == 0) {
            r = meta_u64(s, st, k, &m->persist.epoch_base, err);
            seen |= 32;
        } else if (strcmp(k, "vote_epoch") == 0) {
            uint64_t v = 0;
            r = meta_u64(s, st, k, &v, err);
            if (!r && v > 1)
                r = sh_err_set(err, SH_EMALFORMED, "%s: meta \"vote_epoch\": expected 0 or 1",
                               s->path);
            m->persist.vote_epoch = v == 1;
            seen |= 64;
        }
        if (r) {
            sqlite3_finalize(st);
            return r;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return state_db_err(s, rc, "read meta", err);
    if (seen != 127)
        return sh_err_set(err, SH_EMALFORMED, "%s: meta table lacks a key (have mask %u of 127)",
                          s->path, seen);
    if ((rc = state_db_prepare(
             s, "SELECT count(*), coalesce(min(idx), 0), coalesce(max(idx), 0) FROM log", &st,
             err)))
        return rc;
    if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
        rc = state_db_err(s, rc, "count log", err);
        sqlite3_finalize(st);
        return rc;
    }
    cnt = sqlite3_column_int64(st, 0);
    min = sqlite3_column_int64(st, 1);
    max = sqlite3_column_int64(st, 2);
    sqlite3_finalize(st);
    /* With a unique integer key, count == max and min == 1 means 1..max. */
    if (cnt != max || (cnt > 0 && min != 1))
        return sh_err_set(err, SH_EMALFORMED,
                          "%s: log indexes not contiguous from 1 (%lld rows, %lld..%lld)", s->path,
                          (long long)cnt, (long long)min, (long long)max);
    m->last_index = (uint64_t)max;
    if (max > 0) {
        int64_t t = 0;
        if ((rc = state_db_query_int(s, "SELECT term FROM log ORDER BY idx DESC LIMIT 1", &t, err)))
            return rc;
        m->last_term = t < 0 ? 0 : (uint64_t)t;
    }
    if (m->commit_index > m->last_index)
        return sh_err_set(err, SH_EMALFORMED, "%s: commit index %llu past the last index %llu",
                          s->path, (unsigned long long)m->commit_index,
                          (unsigned long long)m->last_index);
    return 0;
}

int state_store_meta(struct state_store *s, struct state_store_meta *out, struct sh_err *err)
{
    struct state_store_meta m;
    int rc;

    if ((rc = state_db_exec(s, "BEGIN", err)))
        return rc;
    rc = read_meta(s, &m, err);
    state_db_rollback(s); /* read-only transaction: nothing to keep */
    if (rc == 0)
        *out = m;
    return rc;
}

int state_store_load(struct state_store *s,
                     struct state_store_meta *meta,
                     struct state_row **rows,
                     size_t *n,
                     struct sh_err *err)
{
    struct state_store_meta m;
    struct state_row *arr = NULL;
    size_t cnt = 0;
    int rc;

    /* One read transaction = one WAL snapshot: meta and rows agree even while
     * a writer commits (note 6). */
    if ((rc = state_db_exec(s, "BEGIN", err)))
        return rc;
    rc = read_meta(s, &m, err);
    if (rc == 0)
        rc = state_store_read(s, 1, 0, &arr, &cnt, err);
    state_db_rollback(s);
    if (rc)
        return rc;
    if (cnt != m.last_index) {
        state_rows_free(arr, cnt);
        return sh_err_set(err, SH_EMALFORMED, "%s: read %zu rows, expected %llu", s->path, cnt,
                          (unsigned long long)m.last_index);
    }
    *meta = m;
    *rows = arr;
    *n = cnt;
    return 0;
}

/* ---- archive ------------------------------------------------------------- */

int state_store_archived(struct state_store *s,
                         struct state_archived **rows,
                         size_t *n,
                         struct sh_err *err)
{
    sqlite3_stmt *st = NULL;
    struct state_archived *arr = NULL;
    size_t cnt = 0, cap = 0;
    int rc;

    if ((rc = state_db_prepare(
             s, "SELECT id, archived_at_ms, reason, " STATE_ROW_COLUMNS " FROM archive ORDER BY id",
             &st, err)))
        return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct state_archived *a;
        const char *reason = (const char *)sqlite3_column_text(st, 2);
        if (grow((void **)&arr, &cap, cnt + 1, sizeof *arr)) {
            rc = sh_err_set(err, SH_ENOMEM, "out of memory reading %s", s->path);
            goto fail;
        }
        a = &arr[cnt];
        memset(a, 0, sizeof *a);
        if (!reason || sqlite3_column_bytes(st, 2) > REASON_MAX) {
            rc = sh_err_set(err, SH_EMALFORMED, "%s: archive row %lld: bad reason", s->path,
                            (long long)sqlite3_column_int64(st, 0));
            goto fail;
        }
        if ((rc = read_row(s, st, 3, &a->row, err)))
            goto fail;
        a->id = sqlite3_column_int64(st, 0);
        a->archived_at_ms = sqlite3_column_int64(st, 1);
        a->reason = strdup(reason);
        cnt++;
        if (!a->reason) {
            rc = sh_err_set(err, SH_ENOMEM, "out of memory reading %s", s->path);
            goto fail;
        }
    }
    if (rc != SQLITE_DONE) {
        rc = state_db_err(s, rc, "read archive", err);
        goto fail;
    }
    sqlite3_finalize(st);
    *rows = arr;
    *n = cnt;
    return 0;
fail:
    sqlite3_finalize(st);
    state_archived_free(arr, cnt);
    return rc;
}
