/* tests/state/test_store.c: the SQLite log store on real files: round trips,
 * refused appends, truncation into the archive, term/vote persistence, a
 * reader beside the writer, the one-writer lock, and files that are not
 * (or no longer) ours. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "lib/test.h"
#include "state/state.h"
#include "tests/state/tmpdir.h"

struct fx {
    char dir[256];
    char db[300];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    tmpdir_make(f->dir, sizeof f->dir);
    snprintf(f->db, sizeof f->db, "%s/events.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static struct state_store *open_or_fail(const char *dir, enum state_store_mode mode)
{
    struct state_store *s = NULL;
    struct sh_err err;
    sh_err_clear(&err);
    if (state_store_open(dir, mode, &s, &err) != 0)
        fail_msg("open %s: %s", dir, err.msg);
    return s;
}

/* Row i: deterministic content, some with members, some without payload. */
static char payload_buf[64][128];
static uint64_t members_buf[3] = {0x3fa1c2d4e5f60718, 0x77b2000000000001, 0xc0c};

static struct state_row mkrow(uint64_t idx, uint64_t term)
{
    struct state_row r;
    memset(&r, 0, sizeof r);
    r.index = idx;
    r.term = term;
    r.kind = (int)(idx % 4);
    r.time_ms = (int64_t)(1795375860000 + idx);
    r.epoch = 1 + term / 2; /* the entry's tag travels with it */
    r.epoch_base = idx / 7;
    r.epoch_node = term % 2 ? members_buf[term % 3] : STATE_NODE_NONE;
    if (r.kind == STATE_ROW_CONFIG || r.kind == STATE_ROW_EPOCH) {
        r.n_members = 1 + idx % 3;
        r.members = members_buf;
    }
    if (idx % 5 != 0) {
        snprintf(payload_buf[idx % 64], sizeof payload_buf[0],
                 "{\"type\":\"node_left\",\"node\":\"3fa1c2d4e5f60718\",\"reason\":\"r%llu\"}",
                 (unsigned long long)idx);
        r.payload = payload_buf[idx % 64];
        r.payload_len = strlen(r.payload);
    }
    return r;
}

static void append_range(struct state_store *s, uint64_t from, uint64_t to, uint64_t term)
{
    struct state_row rows[64];
    struct sh_err err;
    size_t n = 0;
    for (uint64_t i = from; i <= to; i++)
        rows[n++] = mkrow(i, term);
    sh_err_clear(&err);
    if (state_store_append(s, rows, n, &err) != 0)
        fail_msg("append %llu..%llu: %s", (unsigned long long)from, (unsigned long long)to,
                 err.msg);
}

static void assert_row(const struct state_row *got, uint64_t idx, uint64_t term)
{
    struct state_row want = mkrow(idx, term);
    assert_true(got->index == idx);
    assert_true(got->term == term);
    assert_int_equal(got->kind, want.kind);
    assert_true(got->time_ms == want.time_ms);
    assert_true(got->epoch == want.epoch && got->epoch_base == want.epoch_base);
    assert_true(got->epoch_node == want.epoch_node);
    assert_int_equal(got->n_members, want.n_members);
    if (want.n_members)
        assert_memory_equal(got->members, want.members, want.n_members * sizeof(uint64_t));
    assert_int_equal(got->payload_len, want.payload_len);
    assert_non_null(got->payload);
    assert_string_equal(got->payload, want.payload ? want.payload : "");
}

static void round_trip(void **state)
{
    struct fx *f = *state;
    struct state_store *s = open_or_fail(f->dir, STATE_STORE_WRITE);
    struct state_store_meta m;
    struct state_row *rows = NULL;
    struct sh_err err;
    size_t n = 0;

    assert_int_equal(state_store_load(s, &m, &rows, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_true(m.last_index == 0 && m.persist.term == 0 && m.commit_index == 0);
    assert_true(m.persist.voted_for == STATE_NODE_NONE);
    state_rows_free(rows, n);
    append_range(s, 1, 10, 1);
    append_range(s, 11, 12, 3);
    state_store_close(s);

    s = open_or_fail(f->dir, STATE_STORE_WRITE);
    assert_int_equal(state_store_load(s, &m, &rows, &n, &err), 0);
    assert_int_equal(n, 12);
    assert_true(m.last_index == 12 && m.last_term == 3);
    for (size_t i = 0; i < n; i++)
        assert_row(&rows[i], i + 1, i < 10 ? 1 : 3);
    state_rows_free(rows, n);

    /* paging: from 5, at most 3; from past the end: nothing */
    assert_int_equal(state_store_read(s, 5, 3, &rows, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_row(&rows[0], 5, 1);
    assert_row(&rows[2], 7, 1);
    state_rows_free(rows, n);
    assert_int_equal(state_store_read(s, 13, 0, &rows, &n, &err), 0);
    assert_int_equal(n, 0);
    state_rows_free(rows, n);
    state_store_close(s);
}

static void refused_appends(void **state)
{
    struct fx *f = *state;
    struct state_store *s = open_or_fail(f->dir, STATE_STORE_WRITE);
    struct state_store_meta m;
    struct state_row rows[3];
    struct sh_err err;
    static char big[STATE_ROW_PAYLOAD_MAX + 2];

    append_range(s, 1, 3, 1);
    rows[0] = mkrow(5, 1); /* gap */
    assert_int_equal(state_store_append(s, rows, 1, &err), SH_EINVAL);
    assert_non_null(strstr(err.msg, "first index 5, the log ends at 3"));
    rows[0] = mkrow(3, 2); /* overlap */
    assert_int_equal(state_store_append(s, rows, 1, &err), SH_EINVAL);
    rows[0] = mkrow(4, 1); /* gap inside the batch: none of it lands */
    rows[1] = mkrow(5, 1);
    rows[2] = mkrow(7, 1);
    assert_int_equal(state_store_append(s, rows, 3, &err), SH_EINVAL);
    assert_non_null(strstr(err.msg, "not contiguous"));
    rows[2] = mkrow(6, 1);
    rows[2].kind = 4;
    assert_int_equal(state_store_append(s, rows, 3, &err), SH_EINVAL);
    assert_non_null(strstr(err.msg, "kind 4 unknown"));
    rows[2] = mkrow(6, 1);
    rows[2].term = (uint64_t)INT64_MAX + 1;
    assert_int_equal(state_store_append(s, rows, 3, &err), SH_EINVAL);
    rows[2] = mkrow(6, 1);
    memset(big, 'x', sizeof big - 1);
    rows[2].payload = big;
    rows[2].payload_len = sizeof big - 1;
    assert_int_equal(state_store_append(s, rows, 3, &err), SH_ETOOBIG);
    rows[2] = mkrow(6, 1);
    rows[2].n_members = STATE_MAX_NODES + 1;
    assert_int_equal(state_store_append(s, rows, 3, &err), SH_ETOOBIG);
    assert_int_equal(state_store_meta(s, &m, &err), 0);
    assert_true(m.last_index == 3);
    /* the same batch, fixed, goes in whole */
    rows[2] = mkrow(6, 1);
    assert_int_equal(state_store_append(s, rows, 3, &err), 0);
    assert_int_equal(state_store_meta(s, &m, &err), 0);
    assert_true(m.last_index == 6);
    state_store_close(s);
}

static void truncate_archives(void **state)
{
    struct fx *f = *state;
    struct state_store *s = open_or_fail(f->dir, STATE_STORE_WRITE);
    struct state_store_meta m;
    struct state_archived *arch = NULL;
    struct state_row *rows = NULL;
    struct sh_err err;
    size_t n = 0, na = 0, moved = 99;

    append_range(s, 1, 10, 1);
    assert_int_equal(state_store_set_commit(s, 8, &err), 0);
    assert_int_equal(state_store_truncate(s, 7, "conflict with leader 77b2000000000001 term 2",
                                          5000, &moved, &err),
                     0);
    assert_int_equal(moved, 4);
    assert_int_equal(state_store_meta(s, &m, &err), 0);
    assert_true(m.last_index == 6 && m.commit_index == 6); /* lowered with the rows */
    append_range(s, 7, 9, 2);
    assert_int_equal(state_store_truncate(s, 9, "lost epoch merge to epoch 3", 6000, &moved, &err),
                     0);
    assert_int_equal(moved, 1);
    assert_int_equal(state_store_truncate(s, 50, "nothing there", 7000, &moved, &err), 0);
    assert_int_equal(moved, 0);
    assert_int_equal(state_store_truncate(s, 0, "x", 0, NULL, &err), SH_EINVAL);
    assert_int_equal(state_store_truncate(s, 3, "", 0, NULL, &err), SH_EINVAL);
    assert_int_equal(state_store_truncate(s, 3, "bad\nreason", 0, NULL, &err), SH_EINVAL);
    state_store_close(s);

    /* nothing deleted: log + archive hold every row ever appended */
    s = open_or_fail(f->dir, STATE_STORE_READONLY);
    assert_int_equal(state_store_load(s, &m, &rows, &n, &err), 0);
    assert_int_equal(n, 8);
    assert_row(&rows[6], 7, 2);
    assert_row(&rows[7], 8, 2);
    assert_int_equal(state_store_archived(s, &arch, &na, &err), 0);
    assert_int_equal(na, 5);
    for (size_t i = 0; i < 4; i++) {
        assert_row(&arch[i].row, 7 + i, 1);
        assert_string_equal(arch[i].reason, "conflict with leader 77b2000000000001 term 2");
        assert_true(arch[i].archived_at_ms == 5000);
        if (i)
            assert_true(arch[i].id > arch[i - 1].id);
    }
    assert_row(&arch[4].row, 9, 2);
    assert_string_equal(arch[4].reason, "lost epoch merge to epoch 3");
    state_archived_free(arch, na);
    state_rows_free(rows, n);
    state_store_close(s);
}

static void term_vote_persist(void **state)
{
    struct fx *f = *state;
    struct state_store *s = open_or_fail(f->dir, STATE_STORE_WRITE);
    struct state_persist p = {7, 0x77b2000000000001, 3, 0x3fa1c2d4e5f60718, 41, true};
    struct state_store_meta m;
    struct sh_err err;

    assert_int_equal(state_store_set_persist(s, &p, &err), 0);
    append_range(s, 1, 4, 7);
    assert_int_equal(state_store_set_commit(s, 4, &err), 0);
    assert_int_equal(state_store_set_commit(s, 5, &err), SH_EINVAL);
    assert_non_null(strstr(err.msg, "commit index 5 past the last index 4"));
    p.term = (uint64_t)INT64_MAX + 1;
    assert_int_equal(state_store_set_persist(s, &p, &err), SH_EINVAL);
    state_store_close(s);

    s = open_or_fail(f->dir, STATE_STORE_WRITE);
    assert_int_equal(state_store_meta(s, &m, &err), 0);
    assert_true(m.persist.term == 7 && m.persist.voted_for == 0x77b2000000000001);
    assert_true(m.persist.epoch == 3 && m.persist.epoch_node == 0x3fa1c2d4e5f60718);
    assert_true(m.persist.epoch_base == 41 && m.persist.vote_epoch);
    assert_true(m.commit_index == 4 && m.last_index == 4 && m.last_term == 7);
    /* a new term clears the vote */
    p.term = 8;
    p.voted_for = STATE_NODE_NONE;
    assert_int_equal(state_store_set_persist(s, &p, &err), 0);
    state_store_close(s);
    s = open_or_fail(f->dir, STATE_STORE_READONLY);
    assert_int_equal(state_store_meta(s, &m, &err), 0);
    assert_true(m.persist.term == 8 && m.persist.voted_for == STATE_NODE_NONE);
    state_store_close(s);
}

static void reader_beside_writer(void **state)
{
    struct fx *f = *state;
    struct state_store *w = open_or_fail(f->dir, STATE_STORE_WRITE), *r, *w2 = NULL;
    struct state_persist p = {2, 0, 0, 0, 0, false};
    struct state_store_meta m;
    struct state_row *rows = NULL;
    struct sh_err err;
    size_t n = 0;

    append_range(w, 1, 5, 1);
    r = open_or_fail(f->dir, STATE_STORE_READONLY);
    assert_int_equal(state_store_load(r, &m, &rows, &n, &err), 0);
    assert_int_equal(n, 5);
    state_rows_free(rows, n);
    /* the writer goes on; the reader sees each commit on its next read */
    append_range(w, 6, 9, 2);
    assert_int_equal(state_store_set_persist(w, &p, &err), 0);
    assert_int_equal(state_store_load(r, &m, &rows, &n, &err), 0);
    assert_int_equal(n, 9);
    assert_true(m.persist.term == 2);
    state_rows_free(rows, n);
    /* a reader cannot write */
    assert_int_equal(state_store_set_persist(r, &p, &err), SH_EINVAL);
    assert_non_null(strstr(err.msg, "read-only"));
    assert_int_equal(state_store_truncate(r, 1, "x", 0, NULL, &err), SH_EINVAL);
    /* one writer per data dir */
    assert_int_equal(state_store_open(f->dir, STATE_STORE_WRITE, &w2, &err), SH_EBUSY);
    assert_non_null(strstr(err.msg, "in use by another shoal process"));
    assert_null(w2);
    state_store_close(w);
    w2 = open_or_fail(f->dir, STATE_STORE_WRITE); /* the lock went with the handle */
    state_store_close(w2);
    /* the reader still reads after the writer closed (WAL checkpointed) */
    assert_int_equal(state_store_meta(r, &m, &err), 0);
    assert_true(m.last_index == 9);
    state_store_close(r);
}

/* Runs SQL on the file behind the store's back (tampering). */
static void tamper(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    char *msg = NULL;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    if (sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("tamper: %s: %s", sql, msg);
    sqlite3_close(h);
}

static void
expect_open_error(const char *dir, enum state_store_mode mode, int code, const char *msg)
{
    struct state_store *s = NULL;
    struct sh_err err;
    int rc;
    sh_err_clear(&err);
    rc = state_store_open(dir, mode, &s, &err);
    if (rc == 0) {
        struct state_store_meta m;
        rc = state_store_meta(s, &m, &err);
        state_store_close(s);
    }
    if (rc != code || !strstr(err.msg, msg))
        fail_msg("got %d '%s', want %d '%s'", rc, err.msg, code, msg);
}

static void schema_version_refused(void **state)
{
    struct fx *f = *state;
    state_store_close(open_or_fail(f->dir, STATE_STORE_WRITE));
    tamper(f->db, "UPDATE schema_version SET version = 3");
    expect_open_error(f->dir, STATE_STORE_WRITE, SH_EUNSUPPORTED,
                      "schema version 3 is newer than this shoal supports (2)");
    expect_open_error(f->dir, STATE_STORE_READONLY, SH_EUNSUPPORTED, "newer");
    tamper(f->db, "UPDATE schema_version SET version = 0");
    expect_open_error(f->dir, STATE_STORE_WRITE, SH_EMALFORMED, "schema version 0 is not valid");
    tamper(f->db, "INSERT INTO schema_version VALUES(1)");
    expect_open_error(f->dir, STATE_STORE_WRITE, SH_EMALFORMED, "holds 2 rows");
}

/* state_store_update: the Raft driver's whole step in one transaction. */
static void update_is_one_step(void **state)
{
    struct fx *f = *state;
    struct state_store *s = open_or_fail(f->dir, STATE_STORE_WRITE);
    struct state_persist p = {9, 0x77b2000000000001, 4, 0xc0c, 5, false};
    struct state_store_meta m;
    struct state_archived *arch = NULL;
    struct state_row rows[3];
    struct sh_err err;
    size_t moved = 0, na = 0;

    append_range(s, 1, 8, 1);
    assert_int_equal(state_store_set_commit(s, 7, &err), 0);
    rows[0] = mkrow(6, 9);
    rows[1] = mkrow(7, 9);
    {
        struct state_store_update u = {.truncate_from = 6,
                                       .reason = "lost epoch merge",
                                       .now_ms = 77,
                                       .rows = rows,
                                       .n_rows = 2,
                                       .persist = &p,
                                       .set_commit = true,
                                       .commit_index = 6};
        assert_int_equal(state_store_update(s, &u, &moved, &err), 0);
    }
    assert_int_equal(moved, 3);
    assert_int_equal(state_store_meta(s, &m, &err), 0);
    assert_true(m.last_index == 7 && m.last_term == 9 && m.commit_index == 6);
    assert_true(m.persist.term == 9 && m.persist.epoch == 4 && m.persist.epoch_base == 5);
    assert_int_equal(state_store_archived(s, &arch, &na, &err), 0);
    assert_int_equal(na, 3);
    assert_row(&arch[0].row, 6, 1);
    assert_string_equal(arch[2].reason, "lost epoch merge");
    state_archived_free(arch, na);
    /* A step that fails half-way (its commit index past the log) leaves no
     * trace: not the truncation, not the rows, not the term. */
    rows[0] = mkrow(7, 10);
    p.term = 10;
    {
        struct state_store_update u = {.truncate_from = 7,
                                       .reason = "conflict",
                                       .rows = rows,
                                       .n_rows = 1,
                                       .persist = &p,
                                       .set_commit = true,
                                       .commit_index = 9};
        assert_int_equal(state_store_update(s, &u, NULL, &err), SH_EINVAL);
        assert_non_null(strstr(err.msg, "commit index 9 past the last index 7"));
        u.commit_index = 7;
        u.reason = "";
        assert_int_equal(state_store_update(s, &u, NULL, &err), SH_EINVAL);
    }
    assert_int_equal(state_store_meta(s, &m, &err), 0);
    assert_true(m.last_index == 7 && m.last_term == 9 && m.persist.term == 9);
    assert_int_equal(state_store_archived(s, &arch, &na, &err), 0);
    assert_int_equal(na, 3);
    state_archived_free(arch, na);
    state_store_close(s);
}

/* A version-1 file (no epoch tags) is upgraded by a writer, refused (with
 * what to do) by a reader. */
static void migrates_version_1(void **state)
{
    struct fx *f = *state;
    struct state_store *s = open_or_fail(f->dir, STATE_STORE_WRITE);
    struct state_store_meta m;
    struct state_row *rows = NULL;
    struct sh_err err;
    size_t n = 0;

    append_range(s, 1, 3, 1);
    state_store_close(s);
    tamper(f->db, "CREATE TABLE log1 AS SELECT idx, term, kind, members, payload, time_ms FROM log;"
                  "DROP TABLE log;"
                  "CREATE TABLE log(idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, kind INTEGER "
                  "NOT NULL, members TEXT NOT NULL, payload TEXT NOT NULL, time_ms INTEGER NOT "
                  "NULL);"
                  "INSERT INTO log SELECT * FROM log1; DROP TABLE log1;"
                  "CREATE TABLE a1 AS SELECT id, archived_at_ms, reason, idx, term, kind, members, "
                  "payload, time_ms FROM archive; DROP TABLE archive;"
                  "CREATE TABLE archive(id INTEGER PRIMARY KEY AUTOINCREMENT, archived_at_ms "
                  "INTEGER NOT NULL, reason TEXT NOT NULL, idx INTEGER NOT NULL, term INTEGER NOT "
                  "NULL, kind INTEGER NOT NULL, members TEXT NOT NULL, payload TEXT NOT NULL, "
                  "time_ms INTEGER NOT NULL); DROP TABLE a1;"
                  "DELETE FROM meta WHERE key IN ('epoch_base', 'vote_epoch');"
                  "UPDATE schema_version SET version = 1");
    expect_open_error(f->dir, STATE_STORE_READONLY, SH_EUNSUPPORTED, "schema version 1; start");
    s = open_or_fail(f->dir, STATE_STORE_WRITE);
    assert_int_equal(state_store_load(s, &m, &rows, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_true(rows[0].epoch == 0 && rows[0].epoch_node == STATE_NODE_NONE);
    assert_true(m.persist.epoch_base == 0 && !m.persist.vote_epoch);
    state_rows_free(rows, n);
    state_store_close(s);
    s = open_or_fail(f->dir, STATE_STORE_READONLY);
    state_store_close(s);
}

static void damaged_contents(void **state)
{
    struct fx *f = *state;
    struct state_store *s = open_or_fail(f->dir, STATE_STORE_WRITE);
    append_range(s, 1, 6, 1);
    state_store_close(s);

    tamper(f->db, "DELETE FROM log WHERE idx = 3");
    expect_open_error(f->dir, STATE_STORE_READONLY, SH_EMALFORMED,
                      "log indexes not contiguous from 1 (5 rows, 1..6)");
    tamper(f->db, "INSERT INTO log SELECT 3, term, 9, members, payload, time_ms, epoch, "
                  "epoch_base, epoch_node FROM log WHERE idx = 2");
    {
        struct state_store *r = open_or_fail(f->dir, STATE_STORE_READONLY);
        struct state_store_meta m;
        struct state_row *rows = NULL;
        struct sh_err err;
        size_t n = 0;
        assert_int_equal(state_store_load(r, &m, &rows, &n, &err), SH_EMALFORMED);
        assert_non_null(strstr(err.msg, "row 3: bad term, kind"));
        assert_null(rows);
        state_store_close(r);
    }
    tamper(f->db, "UPDATE log SET kind = 0, members = '[\"nothex\"]' WHERE idx = 3");
    {
        struct state_store *r = open_or_fail(f->dir, STATE_STORE_READONLY);
        struct state_store_meta m;
        struct state_row *rows = NULL;
        struct sh_err err;
        size_t n = 0;
        assert_int_equal(state_store_load(r, &m, &rows, &n, &err), SH_EMALFORMED);
        assert_non_null(strstr(err.msg, "row 3: bad members"));
        state_store_close(r);
    }
    tamper(f->db, "UPDATE log SET members = '[]' WHERE idx = 3;"
                  "UPDATE meta SET value = 'x' WHERE key = 'term'");
    expect_open_error(f->dir, STATE_STORE_READONLY, SH_EMALFORMED, "meta \"term\"");
    tamper(f->db, "UPDATE meta SET value = 1 WHERE key = 'term';"
                  "UPDATE meta SET value = 99 WHERE key = 'commit_index'");
    expect_open_error(f->dir, STATE_STORE_READONLY, SH_EMALFORMED, "commit index 99 past");
    tamper(f->db, "UPDATE meta SET value = 0 WHERE key = 'commit_index';"
                  "DELETE FROM meta WHERE key = 'voted_for'");
    expect_open_error(f->dir, STATE_STORE_READONLY, SH_EMALFORMED, "meta table lacks a key");
    tamper(f->db, "DROP TABLE archive");
    expect_open_error(f->dir, STATE_STORE_WRITE, SH_EMALFORMED, "damaged schema");
}

static void foreign_files(void **state)
{
    struct fx *f = *state;
    unsigned char junk[8192];
    unsigned seed = 42;
    int fd;

    /* random bytes */
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(rand_r(&seed) >> 7);
    fd = open(f->db, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);
    expect_open_error(f->dir, STATE_STORE_READONLY, SH_EMALFORMED, "not an SQLite database");
    expect_open_error(f->dir, STATE_STORE_WRITE, SH_EMALFORMED, "not an SQLite database");
    /* the refused file was not touched */
    {
        unsigned char back[sizeof junk];
        fd = open(f->db, O_RDONLY);
        assert_int_equal(read(fd, back, sizeof back), (ssize_t)sizeof back);
        close(fd);
        assert_memory_equal(junk, back, sizeof junk);
    }
    /* somebody else's SQLite database */
    unlink(f->db);
    tamper(f->db, "CREATE TABLE t(x); INSERT INTO t VALUES(1)");
    expect_open_error(f->dir, STATE_STORE_WRITE, SH_EMALFORMED,
                      "not a shoal event log (an SQLite database with application_id 0x0 and "
                      "1 tables)");
    /* an empty file is ours to initialise for a writer, not for a reader */
    unlink(f->db);
    fd = open(f->db, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    close(fd);
    expect_open_error(f->dir, STATE_STORE_READONLY, SH_EMALFORMED, "not yet initialised");
    state_store_close(open_or_fail(f->dir, STATE_STORE_WRITE));
    /* no dir, no file */
    expect_open_error("/nonexistent/shoal", STATE_STORE_WRITE, SH_ENOTFOUND,
                      "data dir /nonexistent/shoal");
    unlink(f->db);
    expect_open_error(f->dir, STATE_STORE_READONLY, SH_ENOTFOUND, "no event log here");
    expect_open_error(f->db, STATE_STORE_READONLY, SH_ENOTFOUND, "data dir");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(truncate_archives, setup, teardown),
        cmocka_unit_test_setup_teardown(term_vote_persist, setup, teardown),
        cmocka_unit_test_setup_teardown(reader_beside_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(schema_version_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(update_is_one_step, setup, teardown),
        cmocka_unit_test_setup_teardown(migrates_version_1, setup, teardown),
        cmocka_unit_test_setup_teardown(damaged_contents, setup, teardown),
        cmocka_unit_test_setup_teardown(foreign_files, setup, teardown),
    };
    return cmocka_run_group_tests_name("state/store", tests, NULL, NULL);
}
