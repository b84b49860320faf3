/* election/internal.h: the core's state and the functions its files share.
 * Only election/ and tests/election include it. */
#ifndef ELECT_INTERNAL_H
#define ELECT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "election/election.h"

/* Messages one step can emit, worst case: a pre-vote and a vote round, a
 * new leader's AppendEntries to every member plus a probe to every linked
 * non-member, a membership change's broadcast, a reply and a TimeoutNow.
 * Bounded by construction (members and links are capped), so running out is
 * a programmer error (asserted). */
#define ELECT_MAX_MSGS (4 * ELECT_MAX_MEMBERS + ELECT_MAX_LINKS + 8)
/* Bytes of the trace one step can return (longer traces end in "..."). */
#define ELECT_TRACE_MAX 4096
/* Core-written payloads (R3) fit here: 64 members x 19 bytes + fields. */
#define ELECT_CORE_PAYLOAD_MAX 2048
/* Entries a step may create itself (bootstrap/epoch/leader + one change). */
#define ELECT_SPARES 3

/* ---- log.c: the in-memory log, indexes 1..n. */
struct elect_log {
    struct elect_entry *e; /* e[i - 1] is index i; each entry owns one block */
    size_t n, cap;
};

/* ---- leader's view of one member */
struct elect_progress {
    uint64_t id;
    uint64_t next;         /* next index to send */
    uint64_t match;        /* highest index known replicated */
    uint64_t last_contact; /* time of the last AppendEntries result (R10, R12) */
};

/* ---- a peer link reported by the driver */
struct elect_link {
    uint64_t id;
    bool up;
    uint64_t removed_at; /* when this leader removed it for silence; 0 = not (R12) */
    bool heard;          /* a message of our epoch came from it since the link came up */
};

/* A spare block for an entry the core writes itself (so a step that creates
 * one cannot fail half way: the block is reserved before anything changes). */
struct elect_spare {
    void *mem; /* ELECT_MAX_MEMBERS ids + ELECT_CORE_PAYLOAD_MAX bytes */
};

enum elect_cand_phase {
    ELECT_PHASE_NONE = 0,
    ELECT_PHASE_PRE = 1,  /* pre-vote round (R6) */
    ELECT_PHASE_VOTE = 2, /* real vote round */
};

struct elect {
    struct elect_params p;
    uint64_t rng; /* xorshift64* state */
    uint64_t now;
    bool started;

    /* Persistent state (mirrors struct elect_hard). */
    uint64_t term;
    uint64_t vote;
    bool vote_epoch;
    struct elect_epoch epoch;
    uint64_t commit;

    struct elect_log log;
    uint64_t conf_idx;      /* latest CONFIG/EPOCH entry, 0 = none (R11) */
    uint64_t prev_conf_idx; /* config before it when conf_idx is a CONFIG (R9) */
    uint64_t epoch_idx;     /* latest EPOCH entry, 0 = none (R17) */

    /* Volatile state. */
    enum elect_role role;
    uint64_t leader;
    uint64_t leader_seen;  /* last time a leader of our epoch spoke (or we had quorum) */
    uint64_t election_at;  /* next election timeout (follower/candidate) */
    uint64_t epoch_at;     /* next time the epoch rule (R16) is checked */
    uint64_t bootstrap_at; /* fresh node: when to bootstrap (R20), 0 = not fresh */
    uint64_t burned_until; /* R18: refuse old-epoch traffic at higher terms until */
    uint64_t burned_for;   /* whose epoch vote froze us (ourselves when we ran) */

    /* Candidate. */
    enum elect_cand_phase phase;
    bool cand_epoch;    /* running for a new epoch (R16) */
    bool cand_transfer; /* campaign started by TimeoutNow */
    uint64_t cand_term; /* term asked for (pre-vote: term + 1) */
    uint64_t granted[ELECT_MAX_MEMBERS];
    size_t n_granted;

    /* Leader. */
    struct elect_progress prog[ELECT_MAX_MEMBERS];
    size_t n_prog;
    uint64_t heartbeat_at;
    uint64_t quorum_at;   /* next check-quorum (R10) */
    uint64_t term_start;  /* index of this leader's first entry */
    uint64_t transfer_to; /* R14: 0 = none */
    uint64_t transfer_until;
    bool transfer_sent;

    struct elect_link links[ELECT_MAX_LINKS];
    size_t n_links;

    /* Per-step scratch, handed out as views in the update. */
    struct elect_update *up;
    struct elect_msg msgs[ELECT_MAX_MSGS];
    size_t n_msgs;
    struct elect_entry *archived; /* entries removed this step (owned until next step) */
    size_t n_archived, cap_archived;
    uint64_t trunc_from; /* first index removed this step, 0 = none */
    uint64_t dirty_from; /* first index written this step, 0 = none */
    uint64_t step_commit;
    unsigned step_flags;
    char trace[ELECT_TRACE_MAX];
    size_t trace_len;
    bool trace_full;
    struct elect_spare spares[ELECT_SPARES];
    /* Copies of a received AppendEntries' entries, made before anything
     * changes; a taken one has payload NULL, the rest are freed at the end. */
    struct elect_entry incoming[ELECT_MAX_ENTRIES];
    uint32_t n_incoming;
};

/* ---- election.c: allocation, RNG, trace, role changes, timers */
void *elect_alloc(struct elect *e, size_t n);
void *elect_realloc(struct elect *e, void *p, size_t n);
void elect_dealloc(struct elect *e, void *p);
uint64_t elect_rand(struct elect *e);
void elect_tracef(struct elect *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Next message slot (the array is sized for the worst step; asserts). */
struct elect_msg *elect_msg_new(struct elect *e, uint8_t type, uint64_t to);
void elect_reset_election_timer(struct elect *e);
/* Adopts a higher (epoch, term) or a higher term: follower, no vote. */
void elect_set_term(struct elect *e, const struct elect_epoch *ep, uint64_t term);
void elect_become_follower(struct elect *e, uint64_t leader);
void elect_become_leader(struct elect *e);
void elect_mark_hard(struct elect *e);
void elect_set_commit(struct elect *e, uint64_t commit);
bool elect_is_member(const struct elect *e, uint64_t id);
bool elect_link_up(const struct elect *e, uint64_t id);
struct elect_link *elect_link_find(struct elect *e, uint64_t id);
/* Takes a spare block for a core-written entry (reserved at step start). */
void *elect_spare_take(struct elect *e);
/* Appends an entry the core built in a spare block (cannot fail: capacity was
 * reserved at step start). */
uint64_t elect_append_core(struct elect *e,
                           uint8_t kind,
                           const uint64_t *members,
                           uint32_t n_members,
                           const char *payload,
                           uint32_t payload_len);

/* ---- log.c */
void elect_log_init(struct elect_log *l);
void elect_log_close(struct elect *e, struct elect_log *l);
uint64_t elect_log_last(const struct elect_log *l);
const struct elect_entry *elect_log_get(const struct elect_log *l, uint64_t index);
/* Tag of index (index 0 is the empty prefix: term 0, epoch 0). */
void elect_log_tag(const struct elect_log *l,
                   uint64_t index,
                   uint64_t *term,
                   struct elect_epoch *ep);
bool elect_log_matches(const struct elect_log *l,
                       uint64_t index,
                       uint64_t term,
                       const struct elect_epoch *ep);
/* Ensures room for `more` appends. Errors: SH_ENOMEM, SH_ETOOBIG (log full). */
int elect_log_reserve(struct elect *e, struct elect_log *l, size_t more);
/* Deep copy of src into *dst (one block). Errors: SH_ENOMEM. */
int elect_entry_copy(struct elect *e, struct elect_entry *dst, const struct elect_entry *src);
void elect_entry_free(struct elect *e, struct elect_entry *x);
/* Appends an entry whose block the log takes. Capacity must be reserved. */
void elect_log_push(struct elect_log *l, const struct elect_entry *x);
/* Moves entries [from..] to the step's archive (capacity reserved by
 * elect_archive_reserve). */
void elect_log_truncate(struct elect *e, uint64_t from);
int elect_archive_reserve(struct elect *e, size_t more);
/* Recomputes conf_idx / prev_conf_idx / epoch_idx from the log. */
void elect_log_scan_configs(struct elect *e);
/* Entry validation shared by START, RECEIVE and wire.c. */
int elect_entry_check(const struct elect_entry *x, struct sh_err *err);

/* ---- recv.c: checks, prepares and dispatches a received message. */
int elect_step_receive(struct elect *e, const struct elect_msg *m, struct sh_err *err);

/* ---- vote.c */
void elect_campaign(struct elect *e, bool epoch_mode, bool transfer);
int elect_recv_request_vote(struct elect *e, const struct elect_msg *m);
int elect_recv_vote_result(struct elect *e, const struct elect_msg *m);
int elect_recv_timeout_now(struct elect *e, const struct elect_msg *m);
bool elect_sticky(const struct elect *e);
bool elect_burned(const struct elect *e);

/* ---- replication.c */
void elect_send_append(struct elect *e, struct elect_progress *pr);
void elect_broadcast_append(struct elect *e, bool heartbeat);
/* R12: an empty AppendEntries to a linked non-member, so whichever lineage
 * is lower adopts the other before anyone is added. */
void elect_send_probe(struct elect *e, uint64_t to);
/* RECEIVE AppendEntries: may reserve memory first (Errors: SH_ENOMEM). */
int elect_recv_append(struct elect *e, const struct elect_msg *m);
int elect_recv_append_result(struct elect *e, const struct elect_msg *m);
void elect_advance_commit(struct elect *e);
int elect_submit(struct elect *e, const char *payload, size_t len, struct sh_err *err);

/* ---- membership.c */
const struct elect_entry *elect_config(const struct elect *e);
void elect_progress_rebuild(struct elect *e);
struct elect_progress *elect_progress_find(struct elect *e, uint64_t id);
bool elect_has_quorum(const struct elect *e, const uint64_t *ids, size_t n);
void elect_membership_tick(struct elect *e);
int elect_transfer(struct elect *e, uint64_t target, struct sh_err *err);
void elect_transfer_progress(struct elect *e, struct elect_progress *pr);
/* Core-written payloads (R3): return bytes written, or 0 when it did not fit.
 * type: "epoch_started" (adds "base"), "member_added", "member_removed"
 * (adds "reason": silent for silent_ms). */
size_t elect_payload_members(char *buf,
                             size_t cap,
                             const char *type,
                             uint64_t node,
                             const struct elect_epoch *ep,
                             uint64_t term,
                             const uint64_t *members,
                             uint32_t n,
                             uint64_t silent_ms);
size_t elect_payload_leader(
    char *buf, size_t cap, uint64_t term, uint64_t node, const struct elect_epoch *ep);

/* ---- epoch.c */
bool elect_pending(const struct elect *e);
/* R19: handles the epoch of an incoming message. Returns 1 when the message
 * should be processed (same epoch, possibly after adopting), 0 when it was
 * handled (lower epoch: rejected or dropped). */
int elect_epoch_gate(struct elect *e, const struct elect_msg *m);
void elect_epoch_tick(struct elect *e);
void elect_bootstrap_tick(struct elect *e);
/* R16: called when an epoch vote round reached its quorum. */
void elect_epoch_start(struct elect *e);
/* R13: a lone leader adds `id` through a new epoch. */
void elect_epoch_regrow(struct elect *e, uint64_t id);
bool elect_can_campaign(const struct elect *e);
size_t elect_reachable(const struct elect *e, const struct elect_entry *conf);

/* ---- formatting helpers for traces */
#define ELECT_ID_FMT    "%016" PRIx64
#define ELECT_EPOCH_STR 64
/* "num/base/starter" into buf (ELECT_EPOCH_STR bytes); returns buf. */
const char *elect_epoch_str(char *buf, const struct elect_epoch *ep);

#endif
