/* tests/election/sim.h: a deterministic cluster of election cores -- fake
 * clock, in-memory network (drop, delay/reorder, duplicate, partitions),
 * crash and restart from what each node "persisted" -- and the checker that
 * runs after every step (the guarantees G1..G5 of election/election.h).
 *
 * The simulator is the driver the core expects (rule R2): it persists an
 * update (truncate+archive, append, hard state) and only then sends the
 * update's messages, encoded and decoded through election/wire.c. A crash
 * may hit before an update is persisted (the update and its messages are
 * lost, as on a real machine) or after it while sending. Everything comes
 * from one seed, so a failing scenario re-runs alone from its seed. */
#ifndef SIM_H
#define SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "election/election.h"

#define SIM_MAX_NODES 7

struct sim_config {
    int n;         /* nodes, ids 1..n */
    uint64_t seed; /* everything random derives from it */
    uint64_t T;    /* election timeout (heartbeat T/5, epoch 6T, removal 20T, grace 3T) */
    uint64_t delay_min, delay_max; /* one-way delay in ms, uniform */
    unsigned drop_pm, dup_pm;      /* per mille of messages dropped / duplicated */
    unsigned crash_pm;             /* per mille of steps ending in a crash */
    FILE *trace_out;               /* print the trace as it happens (or NULL) */
    bool golden;                   /* keep the trace for sim_expect */
};

struct sim;

struct sim *sim_new(const struct sim_config *c);
void sim_free(struct sim *s);

/* Writes the same "static bootstrap" to every node's disk: epoch (2, 0, 1)
 * with all nodes as members, committed -- numbered 2 when there are several
 * members, as a grown lineage would be (R13). Call before starting nodes. */
void sim_preload(struct sim *s);
void sim_preload_members(struct sim *s, int n_members);

/* ---- faults and control (i, j are node indexes 0..n-1) */
void sim_start(struct sim *s, int i);
void sim_crash(struct sim *s, int i);
/* Restart i at `at` (absolute ms) when it is down. */
void sim_restart_at(struct sim *s, int i, uint64_t at);
bool sim_up(const struct sim *s, int i);
void sim_connect(struct sim *s, int i, int j, bool up);
/* Cut every link between the nodes in mask and the others. */
void sim_partition(struct sim *s, unsigned mask);
/* All links up, no loss, every node up. */
void sim_heal(struct sim *s);
void sim_set_net(struct sim *s, uint64_t dmin, uint64_t dmax, unsigned drop_pm, unsigned dup_pm);
void sim_set_crash(struct sim *s, unsigned crash_pm);
/* The strict G3 check: no entry committed by a node of `majority` (a
 * majority that stays up and connected) is ever archived by anyone. 0 = off. */
void sim_set_stable(struct sim *s, unsigned majority);
/* Only nodes in mask may crash by crash_pm (default: all). */
void sim_set_crashable(struct sim *s, unsigned mask);

void sim_run_until(struct sim *s, uint64_t t);
void sim_run_for(struct sim *s, uint64_t dt);
uint64_t sim_now(const struct sim *s);

int sim_submit(struct sim *s, int i, const char *payload);
int sim_transfer(struct sim *s, int i, uint64_t target);

/* ---- views */
struct elect *sim_core(struct sim *s, int i);
/* The one leader among up nodes with the highest (epoch, term), or -1. */
int sim_leader(const struct sim *s);
/* True when every node is up, one leader leads them all in one epoch, its
 * config is every node and all logs and commits are identical; else why. */
bool sim_converged(const struct sim *s, char *why, size_t cap);
/* The same over the nodes in mask only. */
bool sim_converged_among(const struct sim *s, unsigned mask, char *why, size_t cap);
/* Number of entries node i archived so far. */
size_t sim_archived(const struct sim *s, int i);
/* Archived entry k (0-based) of node i. */
const struct elect_entry *sim_archived_entry(const struct sim *s, int i, size_t k);
/* Leaders seen (distinct (epoch, term) pairs) and epochs created. */
size_t sim_leaders_seen(const struct sim *s);
size_t sim_epochs_seen(const struct sim *s);
unsigned long sim_steps(const struct sim *s);
/* Updates that archived entries, and those that rewound a commit index. */
unsigned long sim_archives(const struct sim *s);
unsigned long sim_rewinds(const struct sim *s);

/* First invariant violation (with time and node), or NULL. */
const char *sim_failure(const struct sim *s);

/* Golden traces (cowsql's CLUSTER_TRACE): runs until the trace collected
 * since the last call is at least as long as `expected` (or `limit` ms pass),
 * then compares that prefix and consumes it. On mismatch prints both and
 * returns false. */
bool sim_expect(struct sim *s, const char *expected, uint64_t limit);
/* The trace collected since the last take/expect/clear (valid until the
 * next step). */
const char *sim_trace_take(struct sim *s);
/* Drops the trace collected so far. */
void sim_trace_clear(struct sim *s);

#endif
