/* election/election.h: a pure Raft core with epochs (events in, updates out).
 *
 * The core owns terms, votes, the in-memory log, replication, commit,
 * membership changes that follow discovery, leadership transfer and epochs.
 * It never touches a socket, a clock, a file or rand(): the driver (agent/)
 * feeds it events carrying the current time and performs what each update
 * says, in the order of rule R2. Same seed + same events = same updates.
 *
 * Shape (cowsql/raft's raft_step): elect_step(core, event, update).
 *
 *     START ---> follower --(election timeout: pre-vote, vote)--> candidate
 *                  ^   ^                                              |
 *                  |   +--(higher term/epoch, leader seen)------------+
 *                  |                                                  | majority
 *                  +--(higher term/epoch, lost quorum for T)-- leader <+
 *     fresh (no epoch) --(bootstrap grace, nobody called)--> leader of epoch 1
 *     no leader for the epoch timeout, >= half reachable --(epoch vote)--> leads a new epoch
 *     any --(message of a higher epoch)--> follower of that epoch (pending until caught up)
 *
 * RULES (numbered; the simulator in tests/election checks the guarantees G*).
 * T is the election timeout (struct elect_params); "tag" of an entry is the
 * (epoch, term) of the leader that created it.
 *
 * Driving
 *  R1  Time arrives only in events (ms, monotonic per node); randomness only
 *      from the RNG seeded by elect_params.seed.
 *  R2  The driver handles an update in this order: (a) archive the entries
 *      archived[] (indexes truncate_from..) and delete them from the log, (b)
 *      append entries[] at append_from, (c) write the hard state (term, vote,
 *      epoch, commit) -- (a)..(c) in one transaction; then (d) send msgs, (e)
 *      arm a TICK at next_tick, (f) if ELECT_UPD_REWIND, rebuild the applied
 *      state from the log, else apply entries up to hard.commit. A crash
 *      before (c) completes must lose the whole update: nothing was sent, so
 *      no vote grant or ack can outlive the state it promised.
 *  R3  Core-written payloads (CONFIG, EPOCH, LEADER) are JSON built with
 *      snprintf; EVENT payloads come from SUBMIT and are opaque here. They
 *      are events of state/state.h: EPOCH "epoch_started" {node, epoch,
 *      base, term, members}; CONFIG "member_added" {node, epoch, term,
 *      members} or "member_removed" {..., reason: "silent for S s"}; LEADER
 *      "leader_elected" {term, node, epoch}. Members only: what a node *is*
 *      (name, address, resources) is the driver's node_joined event.
 *
 * Log
 *  R4  Two entries are the same iff index and tag match (Raft §3.5 Log
 *      Matching, generalised to epochs). Tags never decrease along a log:
 *      compare epochs (R15) first, then terms. (epoch, term) is the
 *      "generalised term" used everywhere Raft compares terms.
 *  R5  AppendEntries carries the tag of the entry before its batch; a follower
 *      whose entry there differs rejects with a hint (its last index, or the
 *      index before the run of the conflicting tag). The first conflicting
 *      entry and everything after it are removed and reported in
 *      update.archived -- never silently deleted. Entries past the leader's
 *      last index that belong to another epoch are archived the same way.
 *
 * Elections (Raft §3.4, §9.6 pre-vote, §4.2.3 disruptive servers)
 *  R6  Election timeout uniform in [T, 2T). On expiry a follower runs a
 *      pre-vote (no state changes anywhere), and only on a majority of
 *      pre-votes increments its term, votes for itself and asks for votes.
 *  R7  Only a node that is a member of its latest config and "in sync" (its
 *      log holds the EPOCH entry of its current epoch, R17) campaigns.
 *  R8  A voter grants iff same epoch, the request's term >= its own, it has
 *      not voted for another node in that term, the candidate's last (tag,
 *      index) >= its own, and it is not sticky: a node that heard from a
 *      leader less than T ago (or is the leader) refuses (pre-)votes without
 *      taking the term, unless the request carries the transfer flag.
 *
 * Replication and commit (Raft §3.5, §3.6)
 *  R9  Commit: the leader commits the highest index held by a majority of its
 *      latest config (itself included) whose entry carries the leader's own
 *      tag (§3.6.2: older entries commit only indirectly). While the latest
 *      config is a CONFIG entry not yet committed, that index must also be
 *      held by a majority of the previous config. This is stricter than §4.1
 *      and is what makes R16's half quorums safe across changes.
 *  R10 Check quorum: a leader that has had no AppendEntries result from a
 *      majority of its config for T steps down (so followers can tell "no
 *      leader with a majority" and R16 can start).
 *
 * Membership (Raft §4.1 single-server changes, driven by discovery)
 *  R11 The config is the latest CONFIG or EPOCH entry in the log, committed or
 *      not; a change takes effect when appended.
 *  R12 A leader proposes at most one change, and only when its latest config
 *      and the first entry of its term are committed and no transfer runs:
 *      first it adds the lowest linked non-member it has heard from in its
 *      own epoch since the link came up (one it removed is re-added only
 *      after its link came back up or the removal timeout passed), else it
 *      removes the lowest member that sent no AppendEntries result for the
 *      removal timeout. It never removes itself; at most ELECT_MAX_MEMBERS.
 *      Leaders probe linked non-members with an empty AppendEntries on each
 *      heartbeat: the lower lineage adopts the higher one (R19) before anyone
 *      is added, so a node is never added across lineages.
 *  R13 A leader alone in its config grows only through a new epoch (num+1,
 *      base = its last index, itself): a one-node lineage cannot be told from
 *      a fresh bootstrap, so every lineage with two or more nodes must outrank
 *      every one-node lineage of the same number (R15).
 *  R14 Transfer (TRANSFER event, leader only): stop accepting submits and
 *      changes, bring the target (given, or the member with the highest match
 *      index) up to the leader's last index, send TimeoutNow; the target
 *      campaigns at once with the transfer flag. Abandoned after T.
 *
 * Epochs
 *  R15 An epoch is (num, base, starter): base is the log length it forked
 *      from. Order: num, then base, then starter id -- all fixed at creation,
 *      so every node ranks any two lineages the same way and a node moves only
 *      upwards (a committed-length tie-break would change over time and could
 *      make nodes flip between lineages). num 0 means "none yet" (fresh).
 *  R16 Epoch start: a node that is in sync, a member of its latest config,
 *      knows that config is committed, has heard from no leader for the epoch
 *      timeout, and is linked to at least half of that config (itself
 *      included) runs an epoch pre-vote, then an epoch vote, under R8's
 *      rules. With grants from at least half of the config (a strict
 *      minority never starts one: an isolated node of three just waits) AND
 *      from every member it has a link to, it starts (num+1, its last index,
 *      itself), appends an EPOCH entry after its WHOLE log with members =
 *      itself + the granters, and leads. The second condition makes two
 *      candidates that can reach each other (directly or through a common
 *      member, which grants only one of them, R18) unable to both fork: only
 *      sides that cannot see each other fork -- an exact-half split.
 *      Keeping the whole log (instead of cutting at its own commit index): a
 *      half quorum meets every majority, and voters grant only to logs at
 *      least as up to date, so the starter holds every entry the old epoch
 *      committed, including ones whose commit it had not heard of yet.
 *  R17 A node in an epoch whose EPOCH entry is not in its log yet is
 *      "pending": it follows and votes but never campaigns (its config would
 *      be another lineage's).
 *  R18 Freeze: granting an epoch vote (persisted as hard.vote_epoch) makes a
 *      node refuse, for the epoch timeout, normal votes and AppendEntries of
 *      its old epoch at higher terms, and epoch votes for anyone else (a
 *      candidate frozen by its own vote may still give way to a later
 *      candidate): the old epoch cannot commit behind the new one's back while
 *      the starter's first message is on its way, and one voter never helps
 *      two forks.
 *  R19 Merge: every message carries the sender's epoch and term. A node that
 *      sees a higher epoch adopts it (term := sender's, no vote, follower,
 *      pending) even if its own term is larger; a lower-epoch request is
 *      rejected with our epoch, lower-epoch replies are dropped. The adopting
 *      node then reconciles through R5: everything past the common prefix is
 *      archived, and if that reaches below its commit index the commit index
 *      goes down (ELECT_UPD_REWIND).
 *  R20 Bootstrap: a fresh node waits the bootstrap grace plus a random [0, T);
 *      if no leader reached it, it starts (1, 0, itself) with members {itself}
 *      and leads. A fresh node called by a leader adopts its epoch (R19) and
 *      is added by that leader (R12). Whoever starts an epoch (here, R13 and
 *      R16) leads it at once; its EPOCH entry is its term's first entry
 *      (§3.6.2), so no LEADER entry follows it.
 *
 * Guarantees (checked at every simulated step)
 *  G1  At most one leader per (epoch, term).
 *  G2  Within an epoch, a committed index never changes entry. A new epoch
 *      holds every entry its parent had committed when it started (R16).
 *  G3  While a majority of the config stays up and connected, nothing it
 *      committed is ever archived (an epoch started inside it keeps it all,
 *      R16). Weakened for epochs: when two lineages meet, the loser's entries
 *      after the fork -- including ones it committed -- are archived (kept for
 *      replay), not kept in the log. R18's freeze is time-limited: if an
 *      epoch starter's first message cannot reach a voter for the whole epoch
 *      timeout, the old epoch may go on, and what it commits then is archived
 *      at the merge (never seen in the simulator; documented, not excluded).
 *  G4  Every entry removed from a log is reported in update.archived.
 *  G5  After links heal, one lineage, one leader, identical committed logs.
 */
#ifndef ELECT_ELECTION_H
#define ELECT_ELECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* ---- limits (also the wire's: election/wire.c refuses anything past them) */
#define ELECT_MAX_MEMBERS     64          /* ids in a config or epoch */
#define ELECT_MAX_ENTRIES     64          /* entries in one AppendEntries */
#define ELECT_MAX_PAYLOAD     (64 * 1024) /* bytes of one entry's payload */
#define ELECT_MAX_BATCH_BYTES (1 << 20)   /* payload bytes per AppendEntries */
#define ELECT_MAX_LINKS       256         /* peers the core tracks links to */
#define ELECT_MAX_LOG         (1u << 24)  /* entries held in memory */

/* Entry kinds. Stored on disk and sent on the wire: append only. */
enum elect_entry_kind {
    ELECT_ENTRY_EVENT = 1,  /* application event from SUBMIT (opaque JSON) */
    ELECT_ENTRY_CONFIG = 2, /* membership change; members = new full list */
    ELECT_ENTRY_EPOCH = 3,  /* new epoch; members = its first config */
    ELECT_ENTRY_LEADER = 4, /* no-op a new leader appends (Raft §3.6.2) */
};

enum elect_role {
    ELECT_ROLE_FOLLOWER = 1,
    ELECT_ROLE_CANDIDATE = 2,
    ELECT_ROLE_LEADER = 3,
};

/* A lineage (R15). Compare with elect_epoch_cmp. */
struct elect_epoch {
    uint64_t num;     /* 0 = none yet (fresh node) */
    uint64_t base;    /* log length the epoch forked from */
    uint64_t starter; /* node id that started it */
};

/* One log entry. In an update or a message handed out by the core, every
 * pointer is a view owned by the core (see elect_step). Entries the driver
 * passes in (START) are copied. */
struct elect_entry {
    uint64_t term;            /* tag: term ... */
    struct elect_epoch epoch; /* ... and epoch of the leader that created it */
    uint8_t kind;             /* enum elect_entry_kind */
    uint32_t n_members;       /* CONFIG/EPOCH: >= 1, sorted, unique; else 0 */
    const uint64_t *members;  /* n_members ids, NULL when 0 */
    const char *payload;      /* payload_len bytes; the core's copies end with a NUL */
    uint32_t payload_len;     /* <= ELECT_MAX_PAYLOAD */
};

/* ---- messages (encoded by election/wire.c) */
enum elect_msg_type {
    ELECT_MSG_REQUEST_VOTE = 1,
    ELECT_MSG_REQUEST_VOTE_RESULT = 2,
    ELECT_MSG_APPEND_ENTRIES = 3,
    ELECT_MSG_APPEND_ENTRIES_RESULT = 4,
    ELECT_MSG_TIMEOUT_NOW = 5,
};

/* RequestVote flags (also echoed in results). */
#define ELECT_VOTE_PRE      0x01u /* pre-vote: nobody changes state (R6) */
#define ELECT_VOTE_EPOCH    0x02u /* vote to start a new epoch (R16) */
#define ELECT_VOTE_TRANSFER 0x04u /* after TimeoutNow: ignore stickiness (R14) */
#define ELECT_VOTE_ALL      0x07u

struct elect_msg {
    uint8_t type; /* enum elect_msg_type */
    uint64_t from, to;
    /* The sender's view, on every message (R19). */
    struct elect_epoch epoch;
    uint64_t term;
    uint64_t commit;
    union {
        struct {
            uint64_t last_index; /* candidate's last entry */
            uint64_t last_term;
            struct elect_epoch last_epoch;
            uint8_t flags; /* ELECT_VOTE_* */
        } rv;
        struct {
            uint64_t req_term; /* term of the request answered */
            uint8_t flags;     /* flags of the request answered */
            uint8_t granted;   /* 0 or 1 */
        } rvr;
        struct {
            uint64_t prev_index; /* entry before entries[] */
            uint64_t prev_term;
            struct elect_epoch prev_epoch;
            uint64_t leader_last; /* leader's last index when sent (R5) */
            uint32_t n_entries;   /* <= ELECT_MAX_ENTRIES */
            const struct elect_entry *entries;
        } ae;
        struct {
            uint8_t success;     /* 0 or 1 */
            uint64_t index;      /* success: match index; else: retry hint */
            uint64_t last_index; /* follower's last index */
        } aer;
    };
};

/* ---- persisted state */
struct elect_hard {
    uint64_t term;
    uint64_t vote;      /* node voted for in (epoch, term); 0 = none */
    uint8_t vote_epoch; /* 1 when that vote was an epoch vote (R18) */
    struct elect_epoch epoch;
    uint64_t commit; /* persisted so the driver knows what it applied */
};

/* ---- parameters */
struct elect_params {
    uint64_t id;                  /* this node, != 0 */
    uint64_t seed;                /* RNG seed (R1) */
    uint64_t election_timeout_ms; /* T */
    uint64_t heartbeat_ms;        /* < T */
    uint64_t epoch_timeout_ms;    /* > 2T: "several election timeouts" */
    uint64_t removal_timeout_ms;  /* > epoch timeout, see membership.c */
    uint64_t bootstrap_grace_ms;  /* >= T */
    /* Optional allocator (tests inject failures): realloc semantics, size 0
     * frees and returns NULL. NULL means libc. */
    void *(*realloc_fn)(void *ctx, void *ptr, size_t size);
    void *alloc_ctx;
};

/* Defaults for a LAN: T = 1000, heartbeat 100, epoch 6000, removal 30000,
 * grace 3000 ms. */
void elect_params_default(struct elect_params *p, uint64_t id, uint64_t seed);

/* ---- events */
enum elect_event_type {
    ELECT_EV_START = 1, /* first event: the persisted state */
    ELECT_EV_TICK,      /* time passed (at or after update.next_tick) */
    ELECT_EV_RECEIVE,   /* a decoded message from a peer */
    ELECT_EV_SUBMIT,    /* leader: append an EVENT entry */
    ELECT_EV_LINK_UP,   /* authenticated peer link up */
    ELECT_EV_LINK_DOWN, /* peer link down */
    ELECT_EV_TRANSFER,  /* leader: hand leadership over (clean shutdown) */
};

struct elect_event {
    uint8_t type;    /* enum elect_event_type */
    uint64_t now_ms; /* current time, never decreasing */
    union {
        struct {
            struct elect_hard hard;
            const struct elect_entry *entries; /* indexes 1..n_entries, copied */
            size_t n_entries;
        } start;
        struct {
            const struct elect_msg *msg; /* borrowed for the call */
        } receive;
        struct {
            const char *payload; /* copied */
            size_t len;
        } submit;
        struct {
            uint64_t id;
        } link;
        struct {
            uint64_t target; /* 0: the most up-to-date member */
        } transfer;
    };
};

/* ---- update: what the driver must do (R2) */
#define ELECT_UPD_HARD        (1u << 0) /* write hard (term, vote, epoch) */
#define ELECT_UPD_COMMIT      (1u << 1) /* hard.commit changed */
#define ELECT_UPD_LOG         (1u << 2) /* truncate and/or append */
#define ELECT_UPD_REWIND      (1u << 3) /* commit went down: rebuild applied state */
#define ELECT_UPD_ROLE        (1u << 4) /* role or known leader changed */
#define ELECT_UPD_TRANSFERRED (1u << 5) /* TimeoutNow sent: safe to shut down after msgs */

struct elect_update {
    unsigned flags;
    struct elect_hard hard; /* always the full current values */
    /* Log changes, applied in this order (R2). */
    uint64_t truncate_from;             /* 0 = none; else archive+delete [truncate_from..] */
    const struct elect_entry *archived; /* the removed entries, in index order */
    size_t n_archived;
    uint64_t append_from; /* index of entries[0] (0 when none) */
    const struct elect_entry *entries;
    size_t n_entries;
    /* Messages to send after persisting (views: encode them before the next step). */
    const struct elect_msg *msgs;
    size_t n_msgs;
    uint64_t submitted_index; /* SUBMIT: index of the new entry */
    uint8_t role;             /* enum elect_role after the step */
    uint64_t leader;          /* known leader, 0 if none */
    uint64_t next_tick;       /* absolute ms at which to TICK */
    const char *trace;        /* decisions, one per line ("" if none); log at info */
};

struct elect;

/* Creates a core (not started: the first event must be START). Returns 0 and
 * *out (free with elect_free), or SH_EINVAL (inconsistent params: message in
 * err) or SH_ENOMEM. */
int elect_new(const struct elect_params *p, struct elect **out, struct sh_err *err);

/* Frees the core and every view it handed out. NULL allowed. */
void elect_free(struct elect *e);

/* Feeds one event. The update is filled on success; every pointer in it (and
 * in its messages) is a view valid until the next elect_step or elect_free.
 * The event's pointers are borrowed for the call (copied where kept).
 * Errors (core unchanged, update empty except role/leader/next_tick/hard):
 *   SH_EINVAL     event out of order (not started, START twice, time going
 *                 back), or bad arguments;
 *   SH_EMALFORMED START state or a received message that breaks the rules
 *                 (wrong recipient, bad entry kind, tags decreasing...);
 *   SH_ENOTLEADER SUBMIT/TRANSFER on a non-leader (update.leader = known one);
 *   SH_EBUSY      SUBMIT/TRANSFER during a transfer;
 *   SH_ETOOBIG    payload over ELECT_MAX_PAYLOAD, or the log is full;
 *   SH_ENOTFOUND  TRANSFER with no other member to hand over to;
 *   SH_ENOMEM. */
int elect_step(struct elect *e,
               const struct elect_event *ev,
               struct elect_update *up,
               struct sh_err *err);

/* ---- getters (const; views valid until the next elect_step/elect_free) */
uint64_t elect_id(const struct elect *e);
enum elect_role elect_role(const struct elect *e);
uint64_t elect_leader(const struct elect *e);
uint64_t elect_term(const struct elect *e);
struct elect_epoch elect_current_epoch(const struct elect *e);
uint64_t elect_commit(const struct elect *e);
uint64_t elect_last_index(const struct elect *e);
/* Entry at index (1..last), or NULL. */
const struct elect_entry *elect_entry_at(const struct elect *e, uint64_t index);
/* The latest config's members (count in *n); NULL with *n = 0 when none. */
const uint64_t *elect_members(const struct elect *e, size_t *n);
/* True when the node's log holds its epoch's EPOCH entry (R17). */
bool elect_in_sync(const struct elect *e);

/* -1, 0, 1 by rule R15. */
int elect_epoch_cmp(const struct elect_epoch *a, const struct elect_epoch *b);
/* Compares generalised terms (epoch, term) (R4). */
int elect_tag_cmp(const struct elect_epoch *ea,
                  uint64_t ta,
                  const struct elect_epoch *eb,
                  uint64_t tb);

const char *elect_role_name(enum elect_role r);
const char *elect_kind_name(uint8_t kind);
const char *elect_msg_type_name(uint8_t type);

/* ---- wire (election/wire.c): little-endian, version 1 */
#define ELECT_WIRE_VERSION 1
/* Largest valid frame: header + ELECT_MAX_ENTRIES maximal entries. */
#define ELECT_WIRE_HEADER_BYTES 58 /* every message */
#define ELECT_WIRE_AE_BYTES     52 /* AppendEntries before its entries */
#define ELECT_WIRE_ENTRY_BYTES  41 /* one entry before members and payload */
#define ELECT_WIRE_MAX_BYTES                                                                       \
    ((size_t)ELECT_WIRE_HEADER_BYTES + ELECT_WIRE_AE_BYTES +                                       \
     (size_t)ELECT_MAX_ENTRIES *                                                                   \
         (ELECT_WIRE_ENTRY_BYTES + 8 * (size_t)ELECT_MAX_MEMBERS + (size_t)ELECT_MAX_PAYLOAD))

/* Encodes m. Returns 0 and *buf (caller frees with free()) / *len, or
 * SH_ETOOBIG / SH_EINVAL (a field past the limits or not valid: message in
 * err) or SH_ENOMEM. */
int elect_msg_encode(const struct elect_msg *m, uint8_t **buf, size_t *len, struct sh_err *err);

/* Decodes and validates a frame: every count against the bytes left and the
 * limits, kinds and flags known, booleans 0/1, no trailing bytes. Returns 0
 * and *out (free with elect_msg_free; entries live inside it), or
 * SH_EMALFORMED (message names the field) or SH_ENOMEM. Never reads past
 * buf + len. */
int elect_msg_decode(const void *buf, size_t len, struct elect_msg **out, struct sh_err *err);

/* Frees a decoded message. NULL allowed. */
void elect_msg_free(struct elect_msg *m);

#endif
