/* state/store_int.h: what store.c (open, schema, writes) and store_read.c
 * (reading rows and meta) share: the handle and a few SQLite helpers. Only
 * those two files include it; nothing else in shoal sees SQLite. */
#ifndef STATE_STORE_INT_H
#define STATE_STORE_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

#include "common/err.h"
#include "state/state.h"

#define REASON_MAX 1024 /* bytes of a truncation reason */
/* A row's columns in log and archive, in the order read_row expects. */
#define STATE_ROW_COLUMNS                                                                          \
    "idx, term, kind, members, payload, time_ms, epoch, epoch_base, epoch_node"
#define MEMBERS_TEXT_MAX (2 + STATE_MAX_NODES * (STATE_NODE_HEX_LEN + 3))

struct state_store {
    sqlite3 *db;
    int lock_fd; /* -1 for READONLY */
    bool readonly;
    sqlite3_stmt *ins_log; /* cached: the append hot path */
    char path[PATH_MAX];   /* DATA_DIR/events.db, for messages */
};

/* Sets err from SQLite's state: "PATH: what: sqlite message", with the
 * code mapped (NOTADB/CORRUPT -> SH_EMALFORMED, BUSY -> SH_EBUSY, NOMEM ->
 * SH_ENOMEM, the rest SH_EIO). Returns the code. */
int state_db_err(const struct state_store *s, int rc, const char *what, struct sh_err *err);
/* Runs SQL without results. Errors: as state_db_err. */
int state_db_exec(struct state_store *s, const char *sql, struct sh_err *err);
/* Ends the open transaction, if any; used on error paths and to end reads. */
void state_db_rollback(struct state_store *s);
/* *st is returned (sqlite3_finalize). Errors: as state_db_err. */
int state_db_prepare(struct state_store *s, const char *sql, sqlite3_stmt **st, struct sh_err *err);
/* The first column of the first row of sql. Errors: as state_db_err. */
int state_db_query_int(struct state_store *s, const char *sql, int64_t *out, struct sh_err *err);

#endif
