/* state/state.h: the cluster's replicated state and its event log.
 *
 * Owns: the event schema (JSON events and their typed form), struct state and
 * the pure fold state_apply, the telemetry rate limiter, JSON export (for
 * `GET /state`, `GET /events` and replay), the SQLite log store and the replay
 * formatter. Does not own Raft (election/): the store has its own row type and
 * the agent maps Raft entries to rows and back.
 *
 * Pure parts (events.c, apply.c, export.c, replay.c) include only libc,
 * cJSON and common/; store.c is the only file that touches SQLite or the disk.
 *
 * ---- Event schema (version 1) -------------------------------------------
 * An event is one JSON object, at most STATE_EVENT_MAX bytes, with a string
 * "type" and the fields below, all required unless marked optional. Unknown
 * fields and duplicate keys are rejected (a typo never passes silently; a new
 * field comes with a new type). Common field rules:
 *   node id   16 lowercase hex digits ("3fa1c2d4e5f60718"); 0 is reserved
 *             (STATE_NODE_NONE) and rejected.
 *   integers  JSON numbers with an integral value in the stated range; the
 *             upper bound is at most 2^53 because larger values are not exact
 *             in JSON doubles.
 *   text      UTF-8, no control characters, length in bytes within the cap.
 *   "time"    optional on every event: ms since the Unix epoch, [0, 2^53],
 *             stamped by the leader that proposed it. It travels inside the
 *             payload so every node replays the same time; the store's row
 *             time_ms is only when *this* node appended the row.
 *
 *   {"type":"node_joined","node":ID,"name":TEXT(1..63),"addr":"host:port",
 *    "api_port":1..65535,"resources":RES}
 *       addr: host (1..255 bytes, an IPv6 literal in brackets) ':' port
 *       1..65535. A node_joined for a node already present is accepted as a
 *       re-join: name, addr, api_port and resources are replaced, joined_index
 *       is kept (a restarted agent may come back on a new port before it was
 *       declared gone).
 *   {"type":"node_left","node":ID,"reason":TEXT(1..255)}
 *       e.g. "silent for 10.0 s", "shutdown". Rejected for an unknown node.
 *   {"type":"leader_elected","term":1..2^53,"node":ID,"epoch":0..2^53}
 *       epoch must equal the current epoch; term must be greater than the
 *       term of the previous leader of this epoch (one leader per term).
 *       The node need not have joined yet (the first leader logs itself).
 *   {"type":"epoch_started","epoch":1..2^53,"node":ID,
 *    "members":[ID,...] (1..STATE_MAX_NODES, distinct, includes "node"),
 *    "base":0..2^53,"term":1..2^53}   (base and term: both or neither)
 *       epoch must be greater than the current one. The Raft core writes it
 *       (with base, the log length the epoch forked from, and term): the
 *       starter leads the new epoch at once, so with a term it becomes the
 *       leader (leader_index = this entry); without one the leader is
 *       cleared. members become the current members.
 *   {"type":"member_added","node":ID,"epoch":1..2^53,"term":1..2^53,
 *    "members":[ID,...]}
 *   {"type":"member_removed","node":ID,"epoch":1..2^53,"term":1..2^53,
 *    "members":[ID,...],"reason":TEXT(1..255)}
 *       Written by the Raft core (a CONFIG entry: one member added or
 *       removed). epoch must be the current one, and members must be the
 *       current members plus (minus) node: a log that skips a change is
 *       rejected, never papered over. Membership only: what a node is
 *       (name, address, resources) comes with node_joined, which the
 *       leader's agent writes once it knows them.
 *   {"type":"node_info_updated","node":ID,"resources":RES}
 *       Rejected for an unknown node.
 *   RES = {"ram_total":0..2^53 bytes,"ram_free":0..ram_total bytes,
 *          "cores":1..STATE_MAX_CORES,
 *          "models":[TEXT(1..STATE_MODEL_ID_MAX),...] (0..STATE_MAX_MODELS,
 *          distinct; kept sorted, so the order given does not matter)}
 *
 * Reject codes: SH_ETOOBIG (payload or cluster too large), SH_EMALFORMED (bad
 * JSON, missing or wrong-typed field: the message names the field),
 * SH_EUNSUPPORTED (unknown type), SH_ENOTFOUND (node not in the state),
 * SH_ERANGE (stale index, term or epoch), SH_EINVAL (other semantic rejects).
 * Tokens, progress ticks and samples never go through the log.
 */
#ifndef STATE_STATE_H
#define STATE_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "common/util.h"

/* ---- limits (named so every reject can say which one was hit) ---------- */
#define STATE_EVENT_MAX    (64 * 1024) /* bytes of one event's JSON */
#define STATE_MAX_NODES    64          /* nodes in the state, members in an epoch */
#define STATE_MAX_MODELS   64          /* models listed per node */
#define STATE_MODEL_ID_MAX 128         /* bytes of a model id */
#define STATE_NAME_MAX     63          /* bytes of a node name */
#define STATE_ADDR_MAX     263         /* bytes of "host:port" */
#define STATE_REASON_MAX   255         /* bytes of a node_left reason */
#define STATE_MAX_CORES    65536
#define STATE_JSON_INT_MAX (INT64_C(1) << 53)
#define STATE_NODE_NONE    UINT64_C(0) /* "no node": no vote, no leader */
#define STATE_NODE_HEX_LEN 16

/* ---- typed events --------------------------------------------------------
 * Values are stable (they may be stored by callers); append only. */
enum state_event_type {
    STATE_EV_NODE_JOINED = 1,
    STATE_EV_NODE_LEFT = 2,
    STATE_EV_LEADER_ELECTED = 3,
    STATE_EV_EPOCH_STARTED = 4,
    STATE_EV_NODE_INFO_UPDATED = 5,
    STATE_EV_MEMBER_ADDED = 6,
    STATE_EV_MEMBER_REMOVED = 7,
};

struct state_resources {
    uint64_t ram_total; /* bytes */
    uint64_t ram_free;  /* bytes, <= ram_total */
    uint32_t cores;
    uint32_t n_models; /* sorted, distinct */
    char models[STATE_MAX_MODELS][STATE_MODEL_ID_MAX + 1];
};

/* One event, flat: only the fields of its type are meaningful, the rest are
 * zero. Built by state_event_parse or by a caller for state_event_encode. */
struct state_event {
    enum state_event_type type;
    bool has_time;
    int64_t time_ms;   /* when has_time */
    uint64_t node;     /* every type */
    uint64_t term;     /* leader_elected, member_*; epoch_started (0 = absent) */
    uint64_t epoch;    /* leader_elected, epoch_started, member_* */
    uint64_t base;     /* epoch_started (with term) */
    uint32_t api_port; /* node_joined */
    uint32_t n_members;
    uint64_t members[STATE_MAX_NODES]; /* epoch_started, member_*: sorted ascending */
    char name[STATE_NAME_MAX + 1];     /* node_joined */
    char addr[STATE_ADDR_MAX + 1];     /* node_joined */
    char reason[STATE_REASON_MAX + 1]; /* node_left, member_removed */
    struct state_resources res;        /* node_joined, node_info_updated */
};

/* "node_joined"...; "?" for a value outside the enum. */
const char *state_event_type_name(enum state_event_type type);

/* Parses and validates the syntax of one event (len bytes, need not be
 * NUL-terminated) into *out (fully overwritten on success, untouched on
 * error). Semantic checks against a state happen in state_apply_event.
 * Errors: SH_ETOOBIG, SH_EMALFORMED, SH_EUNSUPPORTED, SH_ENOMEM; err names
 * the type and field ("node_joined: \"resources.cores\": ..."). */
int state_event_parse(const char *json, size_t len, struct state_event *out, struct sh_err *err);

/* Encodes ev as canonical JSON (the form state_event_parse accepts).
 * *out is returned; the caller frees it with free(). ev is validated first,
 * exactly as parsing would. Errors: as state_event_parse, SH_ENOMEM. */
int state_event_encode(const struct state_event *ev, char **out, struct sh_err *err);

/* Node ids: 16 lowercase hex digits. parse accepts exactly that (not 0). */
bool state_node_id_parse(const char *s, uint64_t *out);
void state_node_id_format(uint64_t id, char out[STATE_NODE_HEX_LEN + 1]);

/* ---- the folded state ----------------------------------------------------
 * Fixed-size, no pointers: copying is memcpy, comparing is memcmp, and
 * applying an event never allocates, so it cannot fail half-way. Nodes are
 * kept sorted by id, unused slots zeroed, so equal histories give equal bytes.
 * About 0.6 MB: allocate with state_new or embed in a heap object. */
struct state_node {
    uint64_t id;
    uint64_t joined_index;  /* log index of the first node_joined */
    uint64_t updated_index; /* log index of the last join/info update */
    int64_t joined_time_ms; /* event "time", 0 when absent */
    int64_t updated_time_ms;
    uint32_t api_port;
    uint32_t rejoins; /* node_joined events after the first */
    char name[STATE_NAME_MAX + 1];
    char addr[STATE_ADDR_MAX + 1];
    struct state_resources res;
};

struct state {
    uint64_t applied_index; /* log index of the last applied event, 0 = none */
    int64_t time_ms;        /* "time" of the last applied event that had one */
    uint64_t epoch;         /* 0 until the first epoch_started */
    uint64_t epoch_node;    /* who started it */
    uint64_t leader;        /* STATE_NODE_NONE when unknown */
    uint64_t term;          /* the leader's term; 0 when none this epoch */
    uint64_t leader_index;  /* log index of that leader_elected */
    uint32_t n_members;     /* current members (epoch_started, member_*), sorted */
    uint32_t n_nodes;       /* nodes[0..n_nodes), sorted by id */
    uint64_t members[STATE_MAX_NODES];
    struct state_node nodes[STATE_MAX_NODES];
};

/* Zeroes a caller-owned state (the empty cluster). */
void state_init(struct state *st);
/* Returns a zeroed state (free with state_free) or NULL on ENOMEM. */
struct state *state_new(void);
void state_free(struct state *st);

/* The node with this id, or NULL. Borrowed: valid until the next apply. */
const struct state_node *state_find_node(const struct state *st, uint64_t id);

/* Applies a parsed event at log index `index`. Pure and total: checks
 * everything first and mutates only when the event is valid; on reject st
 * is byte-identical to before and err holds the reason.
 * Errors: SH_ERANGE (index <= applied_index, stale term or epoch),
 * SH_ENOTFOUND (unknown node), SH_ETOOBIG (STATE_MAX_NODES reached),
 * SH_EINVAL (other semantic rejects), SH_EMALFORMED (ev itself invalid). */
int state_apply_event(struct state *st,
                      uint64_t index,
                      const struct state_event *ev,
                      struct sh_err *err);

/* state_event_parse + state_apply_event: the fold step the agent and replay
 * use on a log row's payload. Same contract; also the parse errors. */
int state_apply(struct state *st, uint64_t index, const char *json, size_t len, struct sh_err *err);

/* ---- telemetry rate limiting (pure; used by the leader's driver) ----------
 * Decides whether a node's fresh resources justify a node_info_updated
 * event compared with the last *logged* ones. Significant: the model set,
 * cores or ram_total changed, or ram_free moved by more than
 * ram_free_permille of the logged ram_free or by more than ram_free_abs
 * bytes. Even then, nothing is logged until min_interval_ms has passed since
 * the last logged update, so telemetry never floods the log. */
struct state_info_policy {
    int64_t min_interval_ms;
    uint32_t ram_free_permille; /* 100 = 10% */
    uint64_t ram_free_abs;      /* bytes */
};

#define STATE_INFO_POLICY_DEFAULT                                                                  \
    {                                                                                              \
        5000, 100, UINT64_C(256) << 20                                                             \
    }

enum state_info_decision {
    STATE_INFO_SAME = 0,     /* nothing significant changed: don't log */
    STATE_INFO_TOO_SOON = 1, /* significant, but within min_interval_ms */
    STATE_INFO_LOG = 2,      /* emit node_info_updated now */
};

/* `why` (optional) gets a static string naming the first significant change
 * ("models changed", "cores changed", "ram_total changed", "ram_free moved")
 * or "no significant change". A clock that went backwards counts as too soon. */
enum state_info_decision state_info_decide(const struct state_resources *logged,
                                           int64_t logged_ms,
                                           const struct state_resources *now,
                                           int64_t now_ms,
                                           const struct state_info_policy *policy,
                                           const char **why);

/* ---- log rows (the store's view of a Raft entry) ------------------------ */
/* Values are stable: stored on disk and produced by the Raft core. */
enum state_row_kind {
    STATE_ROW_EVENT = 0,
    STATE_ROW_CONFIG = 1,
    STATE_ROW_EPOCH = 2,
    STATE_ROW_LEADER = 3,
};
#define STATE_ROW_KIND_MAX    3
#define STATE_ROW_PAYLOAD_MAX (1024 * 1024) /* bytes; events are far smaller */

struct state_row {
    uint64_t index; /* 1-based, contiguous in the log */
    uint64_t term;
    /* The epoch of the leader that wrote it (Raft's entry tag is (epoch,
     * term)): number, base and starter; all 0 in rows of schema version 1. */
    uint64_t epoch;
    uint64_t epoch_base;
    uint64_t epoch_node;
    int kind;        /* enum state_row_kind */
    int64_t time_ms; /* when this node appended it (local clock) */
    size_t n_members;
    uint64_t *members; /* CONFIG/EPOCH members; NULL when n_members == 0 */
    char *payload;     /* NUL-terminated JSON event text, may be "" */
    size_t payload_len;
};

/* A row moved out of the log by a truncation, never deleted. */
struct state_archived {
    int64_t id; /* archive row id, ascending in archive order */
    int64_t archived_at_ms;
    char *reason;
    struct state_row row;
};

/* "event", "config", "epoch", "leader"; "?" otherwise. */
const char *state_row_kind_name(int kind);
/* Frees what the store returned. NULL allowed. */
void state_rows_free(struct state_row *rows, size_t n);
void state_archived_free(struct state_archived *rows, size_t n);

/* ---- JSON export (pure) --------------------------------------------------
 * state_export_json: the document `GET /state` serves and replay prints:
 *   {"applied_index":N,"time_ms":N,
 *    "epoch":{"number":N,"started_by":ID|null,"members":[ID,...]},
 *    "leader":{"node":ID,"term":N,"index":N}|null,
 *    "nodes":[{"node":ID,"name":..,"addr":..,"api_port":N,
 *              "resources":RES,"joined_index":N,"joined_time_ms":N,
 *              "updated_index":N,"updated_time_ms":N,"rejoins":N,
 *              "in_epoch":bool},...]}   (nodes sorted by id)
 * state_row_json: {"index","term","kind":"event"|..,"time_ms",
 *    "members":[ID,...],"event":{..}} with "payload":"text" instead of
 *    "event" when the payload is not a JSON object.
 * Both return a new cJSON tree (cJSON_Delete) in *out. Errors: SH_ENOMEM. */
int state_export_json(const struct state *st, cJSON **out);
int state_row_json(const struct state_row *row, cJSON **out);
/* RES as a cJSON object (used by the two above). Errors: SH_ENOMEM. */
int state_resources_json(const struct state_resources *res, cJSON **out);

/* ---- SQLite log store (store.c) -------------------------------------------
 * One file, DATA_DIR/events.db, WAL mode, synchronous=FULL: every function
 * that writes returns only after its transaction is durable, so the caller
 * may acknowledge (vote, reply to AppendEntries) right after. A writer holds
 * an exclusive lock on DATA_DIR/events.lock; readers (replay, a second
 * process) open read-only and see the last committed transaction. */
struct state_store;

#define STATE_STORE_SCHEMA_VERSION 2 /* 2: entry epoch tags, epoch base, epoch vote */

enum state_store_mode {
    STATE_STORE_READONLY = 0, /* must exist; never writes the log (SQLite may
                                 create the -wal/-shm files it reads through) */
    STATE_STORE_WRITE = 1,    /* creates events.db if missing; one writer */
};

/* Persistent scalars written together (Raft's hard state plus the epoch). */
struct state_persist {
    uint64_t term;
    uint64_t voted_for; /* STATE_NODE_NONE when no vote this term */
    uint64_t epoch;
    uint64_t epoch_node; /* who started the epoch; NONE before the first */
    uint64_t epoch_base; /* the log length it forked from */
    bool vote_epoch;     /* voted_for was an epoch vote (Raft core rule R18) */
};

struct state_store_meta {
    struct state_persist persist;
    uint64_t commit_index; /* <= last_index; 0 when never set */
    uint64_t last_index;   /* 0 when the log is empty */
    uint64_t last_term;
};

/* Opens DATA_DIR/events.db (DATA_DIR must exist). *out is returned; close
 * with state_store_close. Errors: SH_ENOTFOUND (no such dir, or no events.db
 * for READONLY), SH_EBUSY (another writer holds the lock), SH_EUNSUPPORTED
 * (schema newer than this build), SH_EMALFORMED (not a shoal event log:
 * random bytes, foreign tables, bad rows), SH_EIO (with SQLite's message),
 * SH_ENOMEM. */
int state_store_open(const char *data_dir,
                     enum state_store_mode mode,
                     struct state_store **out,
                     struct sh_err *err);
/* Closes (NULL allowed); cannot fail: committed data is already durable. */
void state_store_close(struct state_store *s);

/* Reads the scalars and checks the log's shape without reading its rows:
 * indexes contiguous from 1 (count == max, min == 1), commit_index <=
 * last_index, every meta key present and well typed. One read snapshot.
 * Errors: SH_EMALFORMED (names the key or the shape), SH_EIO, SH_ENOMEM. */
int state_store_meta(struct state_store *s, struct state_store_meta *out, struct sh_err *err);

/* Startup load: meta plus every row, both from one read snapshot, each row
 * checked (kind known, members well formed, payload within bounds). *rows
 * is returned (state_rows_free). Errors: as state_store_meta, and
 * SH_EMALFORMED naming a bad row. */
int state_store_load(struct state_store *s,
                     struct state_store_meta *meta,
                     struct state_row **rows,
                     size_t *n,
                     struct sh_err *err);

/* Appends n rows in one transaction. rows[0].index must be last_index + 1
 * and the rest contiguous; members and payload are copied. Errors: SH_EINVAL
 * (not contiguous, index gap or overlap: truncate first; bad kind),
 * SH_ETOOBIG (payload > STATE_ROW_PAYLOAD_MAX, members > STATE_MAX_NODES),
 * SH_EIO. On error nothing was appended. */
int state_store_append(struct state_store *s,
                       const struct state_row *rows,
                       size_t n,
                       struct sh_err *err);

/* Moves rows with index >= from into the archive (with now_ms and reason,
 * e.g. "conflict with leader X term T", "lost epoch merge to epoch N") in
 * one transaction, and lowers commit_index to from - 1 if it was higher:
 * whether committed rows may go is the caller's (Raft's) decision.
 * *archived (optional) gets the count; from > last_index archives nothing.
 * Errors: SH_EINVAL (from == 0; reason empty, over 1024 bytes or not text;
 * a READONLY handle), SH_EIO. */
int state_store_truncate(struct state_store *s,
                         uint64_t from,
                         const char *reason,
                         int64_t now_ms,
                         size_t *archived,
                         struct sh_err *err);

/* Writes term, vote and epoch in one transaction. Errors: SH_EINVAL (values
 * above INT64_MAX), SH_EIO. */
int state_store_set_persist(struct state_store *s,
                            const struct state_persist *p,
                            struct sh_err *err);

/* Errors: SH_EINVAL (commit > last_index), SH_EIO. */
int state_store_set_commit(struct state_store *s, uint64_t commit_index, struct sh_err *err);

/* One durable step of the Raft driver (election.h rule R2), in ONE
 * transaction: (a) archive and delete rows >= truncate_from (0 = none), with
 * reason and now_ms, lowering commit_index as state_store_truncate does;
 * (b) append rows[0..n_rows) (rows[0].index must then be last_index + 1);
 * (c) write *persist when non-NULL; (d) set commit_index when set_commit.
 * Either all of it is durable when this returns 0, or none of it happened:
 * a crash in between loses the whole step, never half of it.
 * *archived (optional) gets the archived count. Errors: those of the four
 * functions it stands for; nothing is changed on error. */
struct state_store_update {
    uint64_t truncate_from;
    const char *reason; /* required with truncate_from */
    int64_t now_ms;
    const struct state_row *rows;
    size_t n_rows;
    const struct state_persist *persist;
    bool set_commit;
    uint64_t commit_index;
};
int state_store_update(struct state_store *s,
                       const struct state_store_update *u,
                       size_t *archived,
                       struct sh_err *err);

/* Rows with from <= index, at most max of them (0 = no limit), ascending.
 * *rows is returned (state_rows_free); *n may be 0. Errors: SH_EMALFORMED
 * (a bad row), SH_EIO, SH_ENOMEM. */
int state_store_read(struct state_store *s,
                     uint64_t from,
                     size_t max,
                     struct state_row **rows,
                     size_t *n,
                     struct sh_err *err);

/* Every archived row, oldest archive first (state_archived_free). */
int state_store_archived(struct state_store *s,
                         struct state_archived **rows,
                         size_t *n,
                         struct sh_err *err);

/* ---- replay (pure over rows) ----------------------------------------------
 * Folds rows into a fresh state with state_apply_event, exactly as an agent
 * does, and formats the story:
 *   text: a header (entries, commit index, the node's term/vote/epoch when
 *     meta is given), one line per row
 *       #3     term 1    2026-11-22T21:11:00.123Z  node_joined        node
 *       3fa1c2d4… (lab1, 198.18.0.1:52416) joined: 2 cores, 3.8 GiB RAM
 *       (2.1 GiB free), models: kjv-llama-16m
 *     (on one line; time: the event's "time", else the row's time_ms; a row
 *     that does not apply ends in "REJECTED: <reason>" and replay goes on;
 *     rows past a known commit index end in "[uncommitted]"), the archived
 *     rows with each truncation's reason, then the folded state.
 *   json: {"log":{last_index,last_term,commit_index,term,voted_for,epoch,
 *     epoch_node,to_index},"entries":[ROW+{"type","summary","applied",
 *     "reject"?,"committed"?}],"archived":[ROW+{"type","summary",
 *     "archive_id","archived_at_ms","reason"}],"state":STATE}
 *     (ROW = state_row_json, STATE = state_export_json).
 * Rows past opts->to_index (0 = all) are neither shown nor folded; archived
 * rows are shown, never folded. Untrusted text (names, reasons) is printed
 * with control characters replaced, so a log cannot drive the terminal. */
struct state_replay_opts {
    uint64_t to_index;
    bool json;
};

/* Appends the whole report to out (caller-owned, its max bounds the size).
 * meta may be NULL. Errors: SH_ETOOBIG (out's max), SH_ENOMEM. */
int state_replay_format(const struct state_row *rows,
                        size_t n,
                        const struct state_archived *archived,
                        size_t n_archived,
                        const struct state_store_meta *meta,
                        const struct state_replay_opts *opts,
                        struct sh_strbuf *out,
                        struct sh_err *err);

/* "2026-11-22T21:11:00.123Z" (UTC) into out; "-" for ms <= 0. */
void state_format_time(int64_t ms, char out[32]);

/* One human-readable line for an event, naming nodes by the state *before*
 * it is applied (st may be NULL). Errors: SH_ETOOBIG, SH_ENOMEM. */
int state_event_summary(const struct state *st,
                        const struct state_event *ev,
                        struct sh_strbuf *out);

#endif
