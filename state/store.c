/* state/store.c: the event log on disk: DATA_DIR/events.db (SQLite).
 *
 * Holds the Raft log (which *is* the event log), the rows truncated out of it
 * (archived, never deleted) and the persistent scalars (term, vote, epoch,
 * commit index). It knows rows, not Raft: what a row means is apply.c's
 * business and when to write is the election driver's. This file opens,
 * checks and writes; store_read.c reads back. Together they are the only
 * code in shoal that touches SQLite.
 *
 * NOTES ON THE DESIGN
 *
 * (1) One database, journal_mode=WAL, synchronous=FULL. With FULL in WAL mode
 *     SQLite syncs the WAL (fdatasync) at the end of every commit, so when
 *     the COMMIT step returns SQLITE_DONE the transaction is on disk. Both
 *     pragmas are read back at open; a build or file system that refuses
 *     them fails the open instead of passing as durable. No function here
 *     returns 0 before that point, and the caller acknowledges anything (a
 *     vote, an AppendEntries success) only after a 0: "persist before
 *     acknowledge" holds by construction.
 *
 * (2) Every mutation is exactly one transaction, begun IMMEDIATE (the write
 *     lock is taken before the first read, so the checks inside see what the
 *     writes will follow): append = n rows; truncate = copy the suffix into
 *     archive + delete it + lower commit_index; set_persist = term, vote and
 *     epoch together; update = all of these at once, the Raft driver's whole
 *     step (election.h R2: nothing is sent before it is durable). A WAL transaction is valid only
 * up to its commit frame (frames carry checksums; recovery ignores frames after the last valid
 *     commit), so a crash anywhere leaves either all of a mutation or none
 *     of it: no partial row, no half-archived suffix, no term without the
 *     vote that goes with it.
 *
 * (3) The log is always 1..last_index without gaps: append checks, inside
 *     its transaction, that its first index is MAX(idx)+1 and that its rows
 *     are contiguous; truncate removes only suffixes. Nothing else writes
 *     the log table. Load re-checks it (count == max, min == 1) because the
 *     file may come from elsewhere: a violation is SH_EMALFORMED, not trust.
 *
 * (4) A row leaves the log only in the transaction that copies it into the
 *     archive (INSERT ... SELECT then DELETE, same transaction), so history
 *     is never lost, whichever side of a crash we land on.
 *
 * (5) commit_index <= last_index: set_commit checks it, and truncate lowers
 *     it in the same transaction that removes rows.
 *
 * (6) One writer per data dir: a WRITE handle holds flock(LOCK_EX) on
 *     DATA_DIR/events.lock for its lifetime (released by the kernel even on
 *     kill -9), so two agents never interleave terms in one log. Readers
 *     (shoal replay, tests) open with SQLITE_OPEN_READONLY and read inside
 *     one transaction, i.e. one WAL snapshot: they see the last commit and
 *     never a mix of two.
 *
 * (7) The directory entries: after opening for WRITE (events.db and its
 *     -wal now exist), the data dir itself is fsynced once, so the files,
 *     not only their contents, survive a power loss. (A process crash is
 *     what tests/state/test_store_kill.c checks; a power loss additionally
 *     relies on the disk honouring flushes.)
 *
 * (8) A file from elsewhere is judged before anything is written to it: its
 *     application_id (0x73686f6c, "shol") and tables are checked first, so a
 *     foreign database is refused untouched (not even switched to WAL); the
 *     schema is probed column by column; SQLite runs in defensive mode with
 *     an untrusted schema, so a crafted file cannot run triggers in us.
 *
 * Handle states (transitions by the function named):
 *
 *   CLOSED --state_store_open(WRITE)----> OPEN_RW --append/truncate/set_*--+
 *     ^    --state_store_open(READONLY)-> OPEN_RO    (each: IDLE -> IN_TXN  |
 *     |                                     |         -> IDLE; an error    |
 *     +------------state_store_close--------+         rolls back)   <-----+
 *
 *   OPEN_RO allows meta/load/read/archived only (writes: SH_EINVAL).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/file.h"
#include "common/json.h"
#include "state/internal.h"
#include "state/state.h"
#include "state/store_int.h"

#define APP_ID  0x73686f6c /* "shol" in the SQLite header: marks our files */
#define BUSY_MS 5000       /* a reader may wait out a checkpoint */

/* Version 1 as created then; a new file gets it and is migrated to the
 * current version at once, so there is one path to every version. */
static const char schema_v1_sql[] =
    "CREATE TABLE schema_version(version INTEGER NOT NULL);"
    "CREATE TABLE log(idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, kind INTEGER NOT NULL,"
    " members TEXT NOT NULL, payload TEXT NOT NULL, time_ms INTEGER NOT NULL);"
    "CREATE TABLE archive(id INTEGER PRIMARY KEY AUTOINCREMENT, archived_at_ms INTEGER NOT NULL,"
    " reason TEXT NOT NULL, idx INTEGER NOT NULL, term INTEGER NOT NULL, kind INTEGER NOT NULL,"
    " members TEXT NOT NULL, payload TEXT NOT NULL, time_ms INTEGER NOT NULL);"
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value);"
    "INSERT INTO schema_version VALUES(1);"
    "INSERT INTO meta VALUES('term',0),('voted_for',NULL),('epoch',0),('epoch_node',NULL),"
    "('commit_index',0);"
    "PRAGMA application_id=1936224108;"; /* APP_ID in decimal */

/* 1 -> 2: each entry's epoch tag (the Raft core compares (epoch, term)),
 * the current epoch's base and whether the vote was an epoch vote. Rows
 * written by version 1 get epoch 0 ("not recorded"). */
static const char migrate_v2_sql[] =
    "ALTER TABLE log ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE log ADD COLUMN epoch_base INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE log ADD COLUMN epoch_node TEXT;"
    "ALTER TABLE archive ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE archive ADD COLUMN epoch_base INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE archive ADD COLUMN epoch_node TEXT;"
    "INSERT OR IGNORE INTO meta VALUES('epoch_base',0),('vote_epoch',0);"
    "UPDATE schema_version SET version = 2;";

/* A query per table naming every column we use: a foreign or damaged schema
 * fails to prepare and is reported instead of being half-read. */
static const char *const probe_sql[] = {
    "SELECT version FROM schema_version",
    "SELECT " STATE_ROW_COLUMNS " FROM log",
    "SELECT id, archived_at_ms, reason, " STATE_ROW_COLUMNS " FROM archive",
    "SELECT key, value FROM meta",
};

/* ---- errors and transactions -------------------------------------------- */

static int code_of(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
    case SQLITE_SCHEMA:
        return SH_EMALFORMED;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return SH_EBUSY;
    case SQLITE_NOMEM:
        return SH_ENOMEM;
    default:
        return SH_EIO;
    }
}

int state_db_err(const struct state_store *s, int rc, const char *what, struct sh_err *err)
{
    return sh_err_set(err, code_of(rc), "%s: %s: %s", s->path, what,
                      s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
}

int state_db_exec(struct state_store *s, const char *sql, struct sh_err *err)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : state_db_err(s, rc, sql, err);
}

/* Ends the open transaction, if any: a failed write (the caller's error
 * already says what failed) or a finished read snapshot. */
void state_db_rollback(struct state_store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

static int begin_write(struct state_store *s, const char *what, struct sh_err *err)
{
    if (s->readonly)
        return sh_err_set(err, SH_EINVAL, "%s: %s: store opened read-only", s->path, what);
    return state_db_exec(s, "BEGIN IMMEDIATE", err);
}

/* COMMIT: returns 0 only once the transaction is durable (note 1). */
static int commit(struct state_store *s, struct sh_err *err)
{
    int rc = state_db_exec(s, "COMMIT", err);
    if (rc)
        state_db_rollback(s);
    return rc;
}

int state_db_prepare(struct state_store *s, const char *sql, sqlite3_stmt **st, struct sh_err *err)
{
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    return rc == SQLITE_OK ? 0 : state_db_err(s, rc, sql, err);
}

/* Steps a statement expected to finish without rows. */
static int step_done(struct state_store *s, sqlite3_stmt *st, const char *what, struct sh_err *err)
{
    int rc = sqlite3_step(st);
    return rc == SQLITE_DONE ? 0 : state_db_err(s, rc, what, err);
}

/* ---- open / close -------------------------------------------------------- */

static int fsync_dir(const char *dir, struct sh_err *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return sh_err_set(err, SH_EIO, "%s: %s", dir, strerror(errno));
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return sh_err_set(err, SH_EIO, "%s: fsync: %s", dir, strerror(e));
    }
    close(fd);
    return 0;
}

static int take_lock(struct state_store *s, const char *dir, struct sh_err *err)
{
    char path[PATH_MAX];
    int rc = sh_path_join(path, sizeof path, dir, "events.lock", err);
    if (rc)
        return rc;
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0)
        return sh_err_set(err, SH_EIO, "%s: %s", path, strerror(errno));
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        return sh_err_set(err, e == EWOULDBLOCK ? SH_EBUSY : SH_EIO, "%s: %s", path,
                          e == EWOULDBLOCK ? "in use by another shoal process (one writer per "
                                             "data dir)"
                                           : strerror(e));
    }
    return 0;
}

int state_db_query_int(struct state_store *s, const char *sql, int64_t *out, struct sh_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = state_db_prepare(s, sql, &st, err);
    if (rc)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = 0;
    } else {
        rc = state_db_err(s, rc, sql, err);
    }
    sqlite3_finalize(st);
    return rc;
}

/* Versions are 1.. and this build writes STATE_STORE_SCHEMA_VERSION. A
 * migration from N to N+1 is one transaction; a read-only handle cannot
 * migrate and says so; anything else is refused by name, never guessed at. */
static int migrate(struct state_store *s, int64_t *version, struct sh_err *err)
{
    int rc;

    if (*version == 1 && s->readonly)
        return sh_err_set(err, SH_EUNSUPPORTED,
                          "%s: schema version 1; start a shoal agent of this version on the data "
                          "dir once to upgrade it to %d",
                          s->path, STATE_STORE_SCHEMA_VERSION);
    if (*version == 1) {
        if ((rc = begin_write(s, "migrate to schema 2", err)))
            return rc;
        if ((rc = state_db_exec(s, migrate_v2_sql, err)) || (rc = commit(s, err))) {
            state_db_rollback(s);
            return rc;
        }
        *version = 2;
    }
    if (*version == STATE_STORE_SCHEMA_VERSION)
        return 0;
    if (*version > STATE_STORE_SCHEMA_VERSION)
        return sh_err_set(err, SH_EUNSUPPORTED,
                          "%s: schema version %lld is newer than this shoal supports (%d); "
                          "use a newer shoal",
                          s->path, (long long)*version, STATE_STORE_SCHEMA_VERSION);
    return sh_err_set(err, SH_EMALFORMED, "%s: schema version %lld is not valid (expected %d)",
                      s->path, (long long)*version, STATE_STORE_SCHEMA_VERSION);
}

/* Refuses a file that is not ours before anything is written to it (a
 * foreign database must not even be switched to WAL). */
static int check_foreign(struct state_store *s, int64_t *tables, struct sh_err *err)
{
    int64_t app = 0;
    int rc;

    if ((rc = state_db_query_int(s, "PRAGMA application_id", &app, err)) ||
        (rc = state_db_query_int(s, "SELECT count(*) FROM sqlite_master", tables, err))) {
        if (rc == SH_EMALFORMED)
            sh_err_set(err, rc, "%s: not a shoal event log: not an SQLite database (%s)", s->path,
                       sqlite3_errmsg(s->db));
        return rc;
    }
    if (*tables == 0 && app == 0)
        return 0; /* empty: ours to initialise */
    if (app != APP_ID)
        return sh_err_set(err, SH_EMALFORMED,
                          "%s: not a shoal event log (an SQLite database with application_id "
                          "0x%llx and %lld tables)",
                          s->path, (unsigned long long)app, (long long)*tables);
    return 0;
}

/* Creates the schema in an empty file (WRITE), then checks the one there. */
static int check_schema(struct state_store *s, int64_t tables, struct sh_err *err)
{
    int64_t version = 0, rows = 0;
    int rc;

    if (tables == 0) {
        if (s->readonly)
            return sh_err_set(err, SH_EMALFORMED,
                              "%s: empty database, not yet initialised by a shoal agent", s->path);
        if ((rc = begin_write(s, "create schema", err)))
            return rc;
        if ((rc = state_db_exec(s, schema_v1_sql, err)) || (rc = commit(s, err))) {
            state_db_rollback(s);
            return rc;
        }
    }
    if ((rc = state_db_query_int(s, "SELECT count(*) FROM schema_version", &rows, err)) ||
        (rc = state_db_query_int(s, "SELECT max(version) FROM schema_version", &version, err))) {
        if (rc == SH_EIO)
            rc = sh_err_set(err, SH_EMALFORMED, "%s: damaged schema: %s", s->path,
                            sqlite3_errmsg(s->db));
        return rc;
    }
    if (rows != 1)
        return sh_err_set(err, SH_EMALFORMED, "%s: schema_version holds %lld rows, expected 1",
                          s->path, (long long)rows);
    if ((rc = migrate(s, &version, err)))
        return rc;
    for (size_t i = 0; i < sizeof probe_sql / sizeof probe_sql[0]; i++) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(s->db, probe_sql[i], -1, &st, NULL) != SQLITE_OK)
            return sh_err_set(err, SH_EMALFORMED, "%s: damaged schema: %s", s->path,
                              sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
    }
    return 0;
}

/* WAL + synchronous=FULL (note 1), read back: a build or file system that
 * silently refuses them must not pass as durable. */
static int set_durable(struct state_store *s, struct sh_err *err)
{
    sqlite3_stmt *jm = NULL;
    const unsigned char *mode;
    int64_t sync = 0;
    int rc;

    if ((rc = state_db_prepare(s, "PRAGMA journal_mode=WAL", &jm, err)))
        return rc;
    rc = sqlite3_step(jm);
    if (rc != SQLITE_ROW) {
        rc = state_db_err(s, rc, "PRAGMA journal_mode", err);
        sqlite3_finalize(jm);
        return rc;
    }
    mode = sqlite3_column_text(jm, 0);
    rc = mode && strcmp((const char *)mode, "wal") == 0
             ? 0
             : sh_err_set(err, SH_EIO, "%s: cannot switch to WAL mode", s->path);
    sqlite3_finalize(jm);
    if (rc || (rc = state_db_exec(s, "PRAGMA synchronous=FULL", err)) ||
        (rc = state_db_query_int(s, "PRAGMA synchronous", &sync, err)))
        return rc;
    if (sync != 2)
        return sh_err_set(err, SH_EIO, "%s: synchronous=FULL not in force (%lld)", s->path,
                          (long long)sync);
    return 0;
}

int state_store_open(const char *data_dir,
                     enum state_store_mode mode,
                     struct state_store **out,
                     struct sh_err *err)
{
    struct state_store *s;
    struct stat st;
    int64_t tables = 0;
    int flags, rc;

    if (stat(data_dir, &st) != 0)
        return sh_err_set(err, errno == ENOENT ? SH_ENOTFOUND : SH_EIO, "data dir %s: %s", data_dir,
                          strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return sh_err_set(err, SH_ENOTFOUND, "data dir %s: not a directory", data_dir);
    s = calloc(1, sizeof *s);
    if (!s)
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    s->lock_fd = -1;
    s->readonly = mode == STATE_STORE_READONLY;
    if ((rc = sh_path_join(s->path, sizeof s->path, data_dir, "events.db", err)))
        goto fail;
    if (s->readonly && !sh_path_exists(s->path)) {
        rc = sh_err_set(err, SH_ENOTFOUND, "%s: no event log here", s->path);
        goto fail;
    }
    if (!s->readonly && (rc = take_lock(s, data_dir, err)))
        goto fail;
    flags = (s->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
            SQLITE_OPEN_NOMUTEX;
    rc = sqlite3_open_v2(s->path, &s->db, flags, NULL);
    if (rc != SQLITE_OK) {
        rc = state_db_err(s, rc, "open", err);
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_MS);
    /* A file from elsewhere must not run code in our process: no triggers or
     * views with side effects, no writes to the schema by SQL. */
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    if ((rc = check_foreign(s, &tables, err)) || (!s->readonly && (rc = set_durable(s, err))) ||
        (rc = check_schema(s, tables, err)))
        goto fail;
    if (!s->readonly) {
        if ((rc = fsync_dir(data_dir, err)))
            goto fail;
        if ((rc = state_db_prepare(s,
                                   "INSERT INTO log(" STATE_ROW_COLUMNS ") "
                                   "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                   &s->ins_log, err)))
            goto fail;
    }
    *out = s;
    return 0;
fail:
    state_store_close(s);
    return rc;
}

void state_store_close(struct state_store *s)
{
    if (!s)
        return;
    sqlite3_finalize(s->ins_log);
    sqlite3_close_v2(s->db); /* NULL is a no-op */
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    free(s);
}

/* Members as stored: a JSON array of node-id strings ("[]" when none). */
static int members_text(const uint64_t *ids, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    out[o++] = '[';
    for (size_t i = 0; i < n; i++) {
        char hex[STATE_NODE_HEX_LEN + 1];
        if (o + STATE_NODE_HEX_LEN + 4 > cap)
            return SH_ETOOBIG;
        state_node_id_format(ids[i], hex);
        o += (size_t)snprintf(out + o, cap - o, "%s\"%s\"", i ? "," : "", hex);
    }
    out[o++] = ']';
    out[o] = '\0';
    return 0;
}

/* ---- writes --------------------------------------------------------------
 * Each public write is one transaction (note 2) around the do_* steps
 * below, which run inside the caller's transaction; state_store_update
 * runs several of them in one. Arguments are checked before BEGIN. */

static int check_append(const struct state_store *s,
                        const struct state_row *rows,
                        size_t n,
                        struct sh_err *err)
{
    for (size_t i = 0; i < n; i++) {
        const struct state_row *r = &rows[i];
        if (i > 0 && r->index != rows[i - 1].index + 1)
            return sh_err_set(err, SH_EINVAL, "%s: append: index %llu after %llu is not contiguous",
                              s->path, (unsigned long long)r->index,
                              (unsigned long long)rows[i - 1].index);
        if (r->index > (uint64_t)INT64_MAX || r->term > (uint64_t)INT64_MAX ||
            r->epoch > (uint64_t)INT64_MAX || r->epoch_base > (uint64_t)INT64_MAX)
            return sh_err_set(err, SH_EINVAL, "%s: append: index, term or epoch above 2^63",
                              s->path);
        if (r->kind < 0 || r->kind > STATE_ROW_KIND_MAX)
            return sh_err_set(err, SH_EINVAL, "%s: append: row %llu: kind %d unknown", s->path,
                              (unsigned long long)r->index, r->kind);
        if (r->payload_len > STATE_ROW_PAYLOAD_MAX)
            return sh_err_set(err, SH_ETOOBIG, "%s: append: row %llu: payload %zu bytes, limit %d",
                              s->path, (unsigned long long)r->index, r->payload_len,
                              STATE_ROW_PAYLOAD_MAX);
        if (r->payload_len > 0 && !r->payload)
            return sh_err_set(err, SH_EINVAL, "%s: append: row %llu: NULL payload", s->path,
                              (unsigned long long)r->index);
        if (r->n_members > STATE_MAX_NODES)
            return sh_err_set(err, SH_ETOOBIG, "%s: append: row %llu: %zu members, limit %d",
                              s->path, (unsigned long long)r->index, r->n_members, STATE_MAX_NODES);
        if (r->n_members > 0 && !r->members)
            return sh_err_set(err, SH_EINVAL, "%s: append: row %llu: NULL members", s->path,
                              (unsigned long long)r->index);
        for (size_t k = 0; k < r->n_members; k++)
            if (r->members[k] == STATE_NODE_NONE)
                return sh_err_set(err, SH_EINVAL, "%s: append: row %llu: member id 0", s->path,
                                  (unsigned long long)r->index);
    }
    return 0;
}

static int check_reason(const struct state_store *s, const char *reason, struct sh_err *err)
{
    if (!reason || !*reason || strlen(reason) > REASON_MAX ||
        !state_text_ok(reason, strlen(reason)))
        return sh_err_set(err, SH_EINVAL, "%s: truncate: the reason must be 1..%d bytes of text",
                          s->path, REASON_MAX);
    return 0;
}

static int
do_append(struct state_store *s, const struct state_row *rows, size_t n, struct sh_err *err)
{
    char members[MEMBERS_TEXT_MAX + 1];
    char node[STATE_NODE_HEX_LEN + 1];
    int64_t last = 0;
    int rc;

    if ((rc = state_db_query_int(s, "SELECT coalesce(max(idx), 0) FROM log", &last, err)))
        return rc;
    if (rows[0].index != (uint64_t)last + 1)
        return sh_err_set(err, SH_EINVAL,
                          "%s: append: first index %llu, the log ends at %llu (truncate first)",
                          s->path, (unsigned long long)rows[0].index, (unsigned long long)last);
    for (size_t i = 0; i < n; i++) {
        const struct state_row *r = &rows[i];
        sqlite3_stmt *st = s->ins_log;
        members_text(r->members, r->n_members, members, sizeof members); /* bounded above */
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, (int64_t)r->index);
        sqlite3_bind_int64(st, 2, (int64_t)r->term);
        sqlite3_bind_int(st, 3, r->kind);
        sqlite3_bind_text(st, 4, members, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, r->payload ? r->payload : "", (int)r->payload_len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, r->time_ms);
        sqlite3_bind_int64(st, 7, (int64_t)r->epoch);
        sqlite3_bind_int64(st, 8, (int64_t)r->epoch_base);
        if (r->epoch_node == STATE_NODE_NONE) {
            sqlite3_bind_null(st, 9);
        } else {
            state_node_id_format(r->epoch_node, node);
            sqlite3_bind_text(st, 9, node, -1, SQLITE_STATIC);
        }
        rc = step_done(s, st, "append", err);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc)
            return rc;
    }
    return 0;
}

static int do_truncate(struct state_store *s,
                       uint64_t from,
                       const char *reason,
                       int64_t now_ms,
                       int64_t *moved,
                       struct sh_err *err)
{
    sqlite3_stmt *st = NULL;
    int64_t from64 = from > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)from;
    int rc;

    /* Copy first, delete second, one transaction (note 4). */
    if ((rc = state_db_prepare(s,
                               "INSERT INTO archive(archived_at_ms, reason, " STATE_ROW_COLUMNS
                               ") SELECT ?, ?, " STATE_ROW_COLUMNS
                               " FROM log WHERE idx >= ? ORDER BY idx",
                               &st, err)))
        return rc;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_text(st, 2, reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, from64);
    if ((rc = step_done(s, st, "archive", err)))
        goto out;
    *moved = sqlite3_changes(s->db);
    sqlite3_finalize(st);
    st = NULL;
    if ((rc = state_db_prepare(s, "DELETE FROM log WHERE idx >= ?", &st, err)))
        goto out;
    sqlite3_bind_int64(st, 1, from64);
    if ((rc = step_done(s, st, "truncate", err)))
        goto out;
    if (sqlite3_changes(s->db) != *moved) {
        rc = sh_err_set(err, SH_EINTERNAL, "%s: truncate: archived %lld rows but deleted %d",
                        s->path, (long long)*moved, sqlite3_changes(s->db));
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    /* Note 5: the commit index never points past the log. */
    if ((rc = state_db_prepare(
             s, "UPDATE meta SET value = ? WHERE key = 'commit_index' AND value >= ?", &st, err)))
        goto out;
    sqlite3_bind_int64(st, 1, from64 - 1);
    sqlite3_bind_int64(st, 2, from64);
    rc = step_done(s, st, "lower commit index", err);
out:
    sqlite3_finalize(st);
    return rc;
}

static int
put_meta(struct state_store *s, const char *key, bool is_node, uint64_t v, struct sh_err *err)
{
    sqlite3_stmt *st = NULL;
    char hex[STATE_NODE_HEX_LEN + 1];
    int rc;

    if ((rc = state_db_prepare(s, "REPLACE INTO meta(key, value) VALUES(?, ?)", &st, err)))
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (is_node && v == STATE_NODE_NONE) {
        sqlite3_bind_null(st, 2);
    } else if (is_node) {
        state_node_id_format(v, hex);
        sqlite3_bind_text(st, 2, hex, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_int64(st, 2, (int64_t)v);
    }
    rc = step_done(s, st, key, err);
    sqlite3_finalize(st);
    return rc;
}

static int
check_persist(const struct state_store *s, const struct state_persist *p, struct sh_err *err)
{
    if (p->term > (uint64_t)INT64_MAX || p->epoch > (uint64_t)INT64_MAX ||
        p->epoch_base > (uint64_t)INT64_MAX)
        return sh_err_set(err, SH_EINVAL, "%s: term or epoch above 2^63", s->path);
    return 0;
}

static int do_persist(struct state_store *s, const struct state_persist *p, struct sh_err *err)
{
    int rc;
    if ((rc = put_meta(s, "term", false, p->term, err)) ||
        (rc = put_meta(s, "voted_for", true, p->voted_for, err)) ||
        (rc = put_meta(s, "epoch", false, p->epoch, err)) ||
        (rc = put_meta(s, "epoch_node", true, p->epoch_node, err)) ||
        (rc = put_meta(s, "epoch_base", false, p->epoch_base, err)) ||
        (rc = put_meta(s, "vote_epoch", false, p->vote_epoch ? 1 : 0, err)))
        return rc;
    return 0;
}

static int do_set_commit(struct state_store *s, uint64_t commit_index, struct sh_err *err)
{
    int64_t last = 0;
    int rc;

    if ((rc = state_db_query_int(s, "SELECT coalesce(max(idx), 0) FROM log", &last, err)))
        return rc;
    if (commit_index > (uint64_t)last)
        return sh_err_set(err, SH_EINVAL, "%s: commit index %llu past the last index %lld", s->path,
                          (unsigned long long)commit_index, (long long)last);
    return put_meta(s, "commit_index", false, commit_index, err);
}

/* Ends a write transaction: COMMIT after rc == 0, else ROLLBACK. */
static int finish_write(struct state_store *s, int rc, struct sh_err *err)
{
    if (rc) {
        state_db_rollback(s);
        return rc;
    }
    return commit(s, err);
}

int state_store_append(struct state_store *s,
                       const struct state_row *rows,
                       size_t n,
                       struct sh_err *err)
{
    int rc;

    if (n == 0)
        return 0;
    if ((rc = check_append(s, rows, n, err)) || (rc = begin_write(s, "append", err)))
        return rc;
    return finish_write(s, do_append(s, rows, n, err), err);
}

int state_store_truncate(struct state_store *s,
                         uint64_t from,
                         const char *reason,
                         int64_t now_ms,
                         size_t *archived,
                         struct sh_err *err)
{
    int64_t moved = 0;
    int rc;

    if (from == 0)
        return sh_err_set(err, SH_EINVAL, "%s: truncate: index 0 (indexes start at 1)", s->path);
    if ((rc = check_reason(s, reason, err)) || (rc = begin_write(s, "truncate", err)))
        return rc;
    if ((rc = finish_write(s, do_truncate(s, from, reason, now_ms, &moved, err), err)))
        return rc;
    if (archived)
        *archived = (size_t)moved;
    return 0;
}

int state_store_set_persist(struct state_store *s,
                            const struct state_persist *p,
                            struct sh_err *err)
{
    int rc;

    if ((rc = check_persist(s, p, err)) || (rc = begin_write(s, "set term/vote", err)))
        return rc;
    return finish_write(s, do_persist(s, p, err), err);
}

int state_store_set_commit(struct state_store *s, uint64_t commit_index, struct sh_err *err)
{
    int rc;

    if ((rc = begin_write(s, "set commit index", err)))
        return rc;
    return finish_write(s, do_set_commit(s, commit_index, err), err);
}

int state_store_update(struct state_store *s,
                       const struct state_store_update *u,
                       size_t *archived,
                       struct sh_err *err)
{
    int64_t moved = 0;
    int rc;

    if ((u->truncate_from && (rc = check_reason(s, u->reason, err))) ||
        (u->n_rows && (rc = check_append(s, u->rows, u->n_rows, err))) ||
        (u->persist && (rc = check_persist(s, u->persist, err))))
        return rc;
    if ((rc = begin_write(s, "update", err)))
        return rc;
    if (u->truncate_from)
        rc = do_truncate(s, u->truncate_from, u->reason, u->now_ms, &moved, err);
    if (!rc && u->n_rows)
        rc = do_append(s, u->rows, u->n_rows, err);
    if (!rc && u->persist)
        rc = do_persist(s, u->persist, err);
    if (!rc && u->set_commit)
        rc = do_set_commit(s, u->commit_index, err);
    if ((rc = finish_write(s, rc, err)))
        return rc;
    if (archived)
        *archived = (size_t)moved;
    return 0;
}
