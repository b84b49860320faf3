/* tests/election/sim.c: the simulated cluster and its invariant checker
 * (see sim.h). Uses only the public election API. */
#include "sim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

struct disk {
    struct elect_hard hard;
    struct elect_entry *log; /* deep copies, index i at log[i - 1] */
    size_t n, cap;
    struct elect_entry *arch; /* every entry ever archived, in order */
    size_t n_arch, cap_arch;
};

struct node {
    uint64_t id;
    struct elect *core; /* NULL while down */
    struct disk disk;
    uint64_t next_tick;
    uint64_t restart_at;        /* 0 = stays down */
    bool linked[SIM_MAX_NODES]; /* what its driver told it */
    unsigned boots;
    /* G2 bookkeeping: commits verified up to checked_upto in checked_epoch. */
    bool checked_valid;
    struct elect_epoch checked_epoch;
    uint64_t checked_upto;
    uint64_t strict_upto; /* G3 strict: commits recorded up to here */
};

struct qmsg {
    uint64_t at, seq;
    int from, to;
    uint8_t *buf;
    size_t len;
};

/* Committed digests per epoch: dig[i] for index i, 0 = not known yet. */
struct ep_table {
    struct elect_epoch key;
    uint64_t *dig;
    size_t cap;
};

struct lead_rec {
    struct elect_epoch ep;
    uint64_t term, id;
};

struct sim {
    struct sim_config c;
    uint64_t rng, now, seq;
    struct node nodes[SIM_MAX_NODES];
    bool conn[SIM_MAX_NODES][SIM_MAX_NODES];
    uint64_t dmin, dmax;
    unsigned drop_pm, dup_pm, crash_pm;
    unsigned crashable;     /* mask of nodes crash_pm may hit */
    unsigned stable;        /* G3 strict: the majority that stays (0 = off) */
    struct ep_table strict; /* index -> entry committed by a node of `stable` */
    struct qmsg *q;         /* binary heap on (at, seq) */
    size_t nq, capq;
    struct ep_table *eps;
    size_t n_eps;
    struct lead_rec *leads;
    size_t n_leads;
    bool links_dirty;
    bool failed;
    char fail[768];
    unsigned long steps, archives, rewinds;
    struct sh_strbuf trace;
    size_t trace_pos;
};

/* ---- small helpers */
static void *xrealloc(void *p, size_t n)
{
    void *r = realloc(p, n ? n : 1);
    if (!r) {
        fprintf(stderr, "sim: out of memory\n");
        abort();
    }
    return r;
}

static uint64_t rnd(struct sim *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static bool roll(struct sim *s, unsigned pm)
{
    return pm && rnd(s) % 1000 < pm;
}

static void failf(struct sim *s, int i, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void failf(struct sim *s, int i, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (s->failed)
        return;
    s->failed = true;
    n = snprintf(s->fail, sizeof s->fail, "t=%" PRIu64 " node %d: ", s->now, i + 1);
    va_start(ap, fmt);
    vsnprintf(s->fail + n, sizeof s->fail - (size_t)n, fmt, ap);
    va_end(ap);
    if (s->c.trace_out)
        fprintf(s->c.trace_out, "FAIL %s\n", s->fail);
}

static uint64_t digest(const struct elect_entry *x)
{
    uint64_t h = 0xcbf29ce484222325ull;
    uint64_t w[6] = {x->term, x->epoch.num, x->epoch.base, x->epoch.starter, x->kind, x->n_members};
    const uint8_t *b = (const uint8_t *)w;
    for (size_t i = 0; i < sizeof w; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    b = (const uint8_t *)x->members;
    for (size_t i = 0; i < 8 * (size_t)x->n_members; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    b = (const uint8_t *)x->payload;
    for (size_t i = 0; i < x->payload_len; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h ? h : 1;
}

static bool ep_eq(const struct elect_epoch *a, const struct elect_epoch *b)
{
    return elect_epoch_cmp(a, b) == 0;
}

static void copy_entry(struct elect_entry *d, const struct elect_entry *x)
{
    uint64_t *m = NULL;
    char *p = xrealloc(NULL, (size_t)x->payload_len + 1);
    if (x->n_members) {
        m = xrealloc(NULL, 8 * (size_t)x->n_members);
        memcpy(m, x->members, 8 * (size_t)x->n_members);
    }
    if (x->payload_len)
        memcpy(p, x->payload, x->payload_len);
    p[x->payload_len] = '\0';
    *d = *x;
    d->members = m;
    d->payload = p;
}

static void free_entry(struct elect_entry *x)
{
    free((void *)(uintptr_t)x->members);
    free((void *)(uintptr_t)x->payload);
}

/* ---- lifecycle */
struct sim *sim_new(const struct sim_config *c)
{
    struct sim *s = xrealloc(NULL, sizeof *s);
    memset(s, 0, sizeof *s);
    s->c = *c;
    if (s->c.n < 1 || s->c.n > SIM_MAX_NODES)
        s->c.n = 3;
    if (!s->c.T)
        s->c.T = 100;
    s->rng = c->seed * 0x9e3779b97f4a7c15ull + 12345;
    s->dmin = c->delay_min;
    s->dmax = c->delay_max < c->delay_min ? c->delay_min : c->delay_max;
    s->drop_pm = c->drop_pm;
    s->dup_pm = c->dup_pm;
    s->crash_pm = c->crash_pm;
    s->crashable = ~0u;
    for (int i = 0; i < s->c.n; i++) {
        s->nodes[i].id = (uint64_t)i + 1;
        for (int j = 0; j < s->c.n; j++)
            s->conn[i][j] = i != j;
    }
    sh_strbuf_init(&s->trace, 64u << 20);
    return s;
}

void sim_free(struct sim *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->c.n; i++) {
        struct node *nd = &s->nodes[i];
        elect_free(nd->core);
        for (size_t k = 0; k < nd->disk.n; k++)
            free_entry(&nd->disk.log[k]);
        for (size_t k = 0; k < nd->disk.n_arch; k++)
            free_entry(&nd->disk.arch[k]);
        free(nd->disk.log);
        free(nd->disk.arch);
    }
    for (size_t k = 0; k < s->nq; k++)
        free(s->q[k].buf);
    free(s->q);
    for (size_t k = 0; k < s->n_eps; k++)
        free(s->eps[k].dig);
    free(s->eps);
    free(s->strict.dig);
    free(s->leads);
    sh_strbuf_free(&s->trace);
    free(s);
}

/* ---- checker tables */
static struct ep_table *ep_find(struct sim *s, const struct elect_epoch *k)
{
    for (size_t i = 0; i < s->n_eps; i++)
        if (ep_eq(&s->eps[i].key, k))
            return &s->eps[i];
    return NULL;
}

static struct ep_table *ep_add(struct sim *s, const struct elect_epoch *k)
{
    struct ep_table *t;
    s->eps = xrealloc(s->eps, (s->n_eps + 1) * sizeof *s->eps);
    t = &s->eps[s->n_eps++];
    memset(t, 0, sizeof *t);
    t->key = *k;
    return t;
}

static void ep_set(struct ep_table *t, uint64_t idx, uint64_t d)
{
    if (idx >= t->cap) {
        size_t cap = t->cap ? t->cap : 64;
        while (cap <= idx)
            cap *= 2;
        t->dig = xrealloc(t->dig, cap * sizeof *t->dig);
        memset(t->dig + t->cap, 0, (cap - t->cap) * sizeof *t->dig);
        t->cap = cap;
    }
    t->dig[idx] = d;
}

static uint64_t ep_get(const struct ep_table *t, uint64_t idx)
{
    return idx < t->cap ? t->dig[idx] : 0;
}

/* G1: one leader per (epoch, term). */
static void check_leader(struct sim *s, int i, const struct elect_hard *h)
{
    for (size_t k = 0; k < s->n_leads; k++) {
        struct lead_rec *r = &s->leads[k];
        if (r->term == h->term && ep_eq(&r->ep, &h->epoch)) {
            if (r->id != s->nodes[i].id)
                failf(s, i,
                      "G1: two leaders in epoch %" PRIu64 "/%" PRIu64 " term %" PRIu64 ": %" PRIu64
                      " and %" PRIu64,
                      h->epoch.num, h->epoch.base, h->term, r->id, s->nodes[i].id);
            return;
        }
    }
    s->leads = xrealloc(s->leads, (s->n_leads + 1) * sizeof *s->leads);
    s->leads[s->n_leads].ep = h->epoch;
    s->leads[s->n_leads].term = h->term;
    s->leads[s->n_leads].id = s->nodes[i].id;
    s->n_leads++;
}

/* ---- persistence + checks (R2, G2..G4) */
static void persist(struct sim *s, int i, const struct elect_update *up)
{
    struct node *nd = &s->nodes[i];
    struct disk *d = &nd->disk;
    struct elect_hard old = d->hard;
    uint64_t tf = up->truncate_from;
    bool rewind = up->flags & ELECT_UPD_REWIND;

    if (tf) {
        s->archives++;
        s->rewinds += rewind;
        if (tf < 1 || tf > d->n || up->n_archived != d->n - tf + 1) {
            failf(s, i, "G4: truncate from %" PRIu64 " with %zu archived, disk has %zu", tf,
                  up->n_archived, d->n);
            return;
        }
        for (size_t k = 0; k < up->n_archived; k++) {
            uint64_t dg = digest(&up->archived[k]);
            if (dg != digest(&d->log[tf - 1 + k])) {
                failf(s, i, "G4: archived entry %" PRIu64 " is not what was on disk", tf + k);
                return;
            }
            if (s->stable && ep_get(&s->strict, tf + k) == dg) {
                failf(s, i, "G3: committed entry %" PRIu64 " archived while a majority stayed",
                      tf + k);
                return;
            }
        }
        if (tf <= old.commit && nd->checked_valid && ep_eq(&nd->checked_epoch, &up->hard.epoch)) {
            failf(s, i, "G2: committed entries from %" PRIu64 " truncated within their epoch", tf);
            return;
        }
        if (d->n_arch + up->n_archived > d->cap_arch) {
            d->cap_arch = (d->n_arch + up->n_archived) * 2;
            d->arch = xrealloc(d->arch, d->cap_arch * sizeof *d->arch);
        }
        memcpy(&d->arch[d->n_arch], &d->log[tf - 1], up->n_archived * sizeof *d->log);
        d->n_arch += up->n_archived;
        d->n = tf - 1;
    }
    if (rewind && (!tf || tf > old.commit))
        failf(s, i, "REWIND without archiving committed entries");
    if (up->hard.commit < old.commit && !rewind)
        failf(s, i, "commit went down %" PRIu64 " -> %" PRIu64 " without REWIND", old.commit,
              up->hard.commit);
    if (up->n_entries) {
        if (up->append_from != d->n + 1) {
            failf(s, i, "append at %" PRIu64 " to a log of %zu", up->append_from, d->n);
            return;
        }
        if (d->n + up->n_entries > d->cap) {
            d->cap = (d->n + up->n_entries) * 2;
            d->log = xrealloc(d->log, d->cap * sizeof *d->log);
        }
        for (size_t k = 0; k < up->n_entries; k++)
            copy_entry(&d->log[d->n++], &up->entries[k]);
    }
    d->hard = up->hard;
    if (d->hard.commit > d->n)
        failf(s, i, "commit %" PRIu64 " past the log (%zu)", d->hard.commit, d->n);
    if (elect_last_index(nd->core) != d->n)
        failf(s, i, "core log %" PRIu64 " != disk log %zu", elect_last_index(nd->core), d->n);
    if (up->role == ELECT_ROLE_LEADER)
        check_leader(s, i, &up->hard);

    /* A new epoch this node started: it inherits what its parent committed. */
    if (!ep_eq(&old.epoch, &up->hard.epoch) && up->hard.epoch.starter == nd->id) {
        for (size_t k = 0; k < up->n_entries; k++) {
            const struct elect_entry *x = &up->entries[k];
            struct ep_table *parent, *t;
            if (x->kind != ELECT_ENTRY_EPOCH || !ep_eq(&x->epoch, &up->hard.epoch))
                continue;
            if (ep_find(s, &up->hard.epoch)) {
                failf(s, i, "epoch %" PRIu64 "/%" PRIu64 " created twice", up->hard.epoch.num,
                      up->hard.epoch.base);
                return;
            }
            t = ep_add(s, &up->hard.epoch);
            parent = old.epoch.num ? ep_find(s, &old.epoch) : NULL;
            if (parent) {
                size_t cap = parent->cap;
                uint64_t *dig = parent->dig;
                for (size_t j = 0; j < cap; j++)
                    if (dig[j])
                        ep_set(t, j, dig[j]);
            }
        }
    }
    /* G2: within an epoch a committed index never changes entry. */
    if (elect_in_sync(nd->core) && d->hard.commit > 0 && !s->failed) {
        struct ep_table *t = ep_find(s, &d->hard.epoch);
        if (!t)
            t = ep_add(s, &d->hard.epoch);
        if (!nd->checked_valid || !ep_eq(&nd->checked_epoch, &d->hard.epoch) || rewind ||
            (tf && tf <= nd->checked_upto)) {
            nd->checked_valid = true;
            nd->checked_epoch = d->hard.epoch;
            nd->checked_upto = 0;
        }
        for (uint64_t idx = nd->checked_upto + 1; idx <= d->hard.commit; idx++) {
            uint64_t dg = digest(&d->log[idx - 1]), have = ep_get(t, idx);
            if (!have) {
                ep_set(t, idx, dg);
            } else if (have != dg) {
                failf(s, i,
                      "G2: epoch %" PRIu64 "/%" PRIu64 "/%" PRIu64 " index %" PRIu64
                      " committed as two different entries",
                      d->hard.epoch.num, d->hard.epoch.base, d->hard.epoch.starter, idx);
                return;
            }
        }
        nd->checked_upto = d->hard.commit;
    }
    /* G3 strict: remember what the stable majority committed. */
    if ((s->stable >> i) & 1) {
        if (nd->strict_upto > d->hard.commit)
            nd->strict_upto = 0;
        for (uint64_t idx = nd->strict_upto + 1; idx <= d->hard.commit; idx++)
            if (!ep_get(&s->strict, idx))
                ep_set(&s->strict, idx, digest(&d->log[idx - 1]));
        nd->strict_upto = d->hard.commit;
    }
}

/* ---- network */
static void heap_push(struct sim *s, struct qmsg m)
{
    size_t k;
    if (s->nq == s->capq) {
        s->capq = s->capq ? 2 * s->capq : 256;
        s->q = xrealloc(s->q, s->capq * sizeof *s->q);
    }
    k = s->nq++;
    while (k > 0) {
        size_t p = (k - 1) / 2;
        if (s->q[p].at < m.at || (s->q[p].at == m.at && s->q[p].seq < m.seq))
            break;
        s->q[k] = s->q[p];
        k = p;
    }
    s->q[k] = m;
}

static struct qmsg heap_pop(struct sim *s)
{
    struct qmsg top = s->q[0], last = s->q[--s->nq];
    size_t k = 0;
    for (;;) {
        size_t c = 2 * k + 1;
        if (c >= s->nq)
            break;
        if (c + 1 < s->nq && (s->q[c + 1].at < s->q[c].at ||
                              (s->q[c + 1].at == s->q[c].at && s->q[c + 1].seq < s->q[c].seq)))
            c++;
        if (last.at < s->q[c].at || (last.at == s->q[c].at && last.seq < s->q[c].seq))
            break;
        s->q[k] = s->q[c];
        k = c;
    }
    if (s->nq)
        s->q[k] = last;
    return top;
}

static void send_msg(struct sim *s, int i, const struct elect_msg *m)
{
    uint8_t *buf;
    size_t len;
    struct sh_err err;
    int j = (int)m->to - 1, copies;
    if (j < 0 || j >= s->c.n || j == i) {
        failf(s, i, "message to unknown node %" PRIu64, m->to);
        return;
    }
    if (elect_msg_encode(m, &buf, &len, &err)) {
        failf(s, i, "encode %s: %s", elect_msg_type_name(m->type), sh_err_msg(&err));
        return;
    }
    if (!s->conn[i][j] || !s->nodes[j].core || roll(s, s->drop_pm)) {
        free(buf);
        return;
    }
    copies = roll(s, s->dup_pm) ? 2 : 1;
    for (int k = 0; k < copies; k++) {
        struct qmsg q;
        q.at = s->now + s->dmin + (s->dmax > s->dmin ? rnd(s) % (s->dmax - s->dmin + 1) : 0);
        q.seq = s->seq++;
        q.from = i;
        q.to = j;
        q.len = len;
        q.buf = k == 0 ? buf : xrealloc(NULL, len);
        if (k)
            memcpy(q.buf, buf, len);
        heap_push(s, q);
    }
}

/* ---- driving one node */
static void trace_update(struct sim *s, int i, const char *t)
{
    char prefix[32];
    int w;
    if (!t || !*t)
        return;
    w = snprintf(prefix, sizeof prefix, "[%5" PRIu64 "] %d > ", s->now, i + 1);
    for (bool first = true; *t; first = false) {
        const char *nl = strchr(t, '\n');
        size_t len = nl ? (size_t)(nl - t) : strlen(t);
        if (s->c.trace_out)
            fprintf(s->c.trace_out, "%*s%.*s\n", first ? 0 : w, first ? prefix : "", (int)len, t);
        if (s->c.golden) {
            if (first)
                sh_strbuf_puts(&s->trace, prefix);
            else
                sh_strbuf_printf(&s->trace, "%*s", w, "");
            sh_strbuf_append(&s->trace, t, len);
            sh_strbuf_puts(&s->trace, "\n");
        }
        t += len + (nl ? 1 : 0);
    }
}

static void
apply_update(struct sim *s, int i, const struct elect_update *up, bool may_crash, bool tick)
{
    struct node *nd = &s->nodes[i];
    size_t send = up->n_msgs;
    bool crash_after = false;
    trace_update(s, i, up->trace);
    may_crash = may_crash && ((s->crashable >> i) & 1);
    if (may_crash && roll(s, s->crash_pm / 2 + (s->crash_pm & 1))) {
        /* Crash before the update reached the disk: it is lost with its
         * messages; the restart starts from the previous state. */
        if (s->c.trace_out)
            fprintf(s->c.trace_out, "[%5" PRIu64 "] %d > (crash before persisting)\n", s->now,
                    i + 1);
        sim_crash(s, i);
        sim_restart_at(s, i, s->now + 1 + rnd(s) % (10 * s->c.T));
        return;
    }
    persist(s, i, up);
    if (may_crash && roll(s, s->crash_pm / 2)) {
        send = (size_t)(rnd(s) % (up->n_msgs + 1));
        crash_after = true;
    }
    for (size_t k = 0; k < send; k++)
        send_msg(s, i, &up->msgs[k]);
    /* After a TICK the core must want a later one (else it would spin);
     * after other events an expired deadline just means "tick now". */
    if (up->next_tick <= s->now && tick)
        failf(s, i, "core asked for a tick in the past (%" PRIu64 ")", up->next_tick);
    nd->next_tick = up->next_tick;
    if (crash_after) {
        if (s->c.trace_out)
            fprintf(s->c.trace_out, "[%5" PRIu64 "] %d > (crash after %zu/%zu messages)\n", s->now,
                    i + 1, send, up->n_msgs);
        sim_crash(s, i);
        sim_restart_at(s, i, s->now + 1 + rnd(s) % (10 * s->c.T));
    }
}

/* Runs one event on node i; returns the core's code (updates applied on 0). */
static int node_event(struct sim *s, int i, struct elect_event *ev, bool may_crash, bool must_ok)
{
    struct node *nd = &s->nodes[i];
    struct elect_update up;
    struct sh_err err;
    int rc;
    sh_err_clear(&err);
    ev->now_ms = s->now;
    rc = elect_step(nd->core, ev, &up, &err);
    if (rc) {
        if (must_ok)
            failf(s, i, "step (event %u) failed: %s", (unsigned)ev->type, sh_err_msg(&err));
        nd->next_tick = up.next_tick > s->now ? up.next_tick : s->now + 1;
        return rc;
    }
    apply_update(s, i, &up, may_crash, ev->type == ELECT_EV_TICK);
    return 0;
}

void sim_start(struct sim *s, int i)
{
    struct node *nd = &s->nodes[i];
    struct elect_params p;
    struct elect_event ev;
    struct sh_err err;
    uint64_t T = s->c.T;
    if (nd->core)
        return;
    elect_params_default(&p, nd->id, s->c.seed * 1000003 + (uint64_t)i * 7919 + nd->boots);
    p.election_timeout_ms = T;
    p.heartbeat_ms = T / 5 ? T / 5 : 1;
    p.epoch_timeout_ms = 6 * T;
    p.removal_timeout_ms = 20 * T;
    p.bootstrap_grace_ms = 3 * T;
    if (elect_new(&p, &nd->core, &err)) {
        failf(s, i, "elect_new: %s", sh_err_msg(&err));
        return;
    }
    nd->boots++;
    nd->restart_at = 0;
    memset(nd->linked, 0, sizeof nd->linked);
    memset(&ev, 0, sizeof ev);
    ev.type = ELECT_EV_START;
    ev.start.hard = nd->disk.hard;
    ev.start.entries = nd->disk.log;
    ev.start.n_entries = nd->disk.n;
    node_event(s, i, &ev, false, true);
    s->links_dirty = true;
}

static void note(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct sim *s, const char *fmt, ...)
{
    va_list ap;
    if (!s->c.trace_out)
        return;
    fprintf(s->c.trace_out, "[%5" PRIu64 "] -- ", s->now);
    va_start(ap, fmt);
    vfprintf(s->c.trace_out, fmt, ap);
    va_end(ap);
    fputc('\n', s->c.trace_out);
}

void sim_crash(struct sim *s, int i)
{
    struct node *nd = &s->nodes[i];
    if (!nd->core)
        return;
    note(s, "crash %d", i + 1);
    elect_free(nd->core);
    nd->core = NULL;
    nd->restart_at = 0;
    memset(nd->linked, 0, sizeof nd->linked);
    s->links_dirty = true;
}

void sim_restart_at(struct sim *s, int i, uint64_t at)
{
    if (!s->nodes[i].core)
        s->nodes[i].restart_at = at ? at : 1;
}

bool sim_up(const struct sim *s, int i)
{
    return s->nodes[i].core != NULL;
}

/* Tells every driver about links that came up or went down. */
static void sync_links(struct sim *s)
{
    s->links_dirty = false;
    for (int i = 0; i < s->c.n; i++) {
        struct node *nd = &s->nodes[i];
        for (int j = 0; j < s->c.n; j++) {
            bool want;
            struct elect_event ev;
            if (j == i || !nd->core)
                continue;
            want = s->nodes[j].core && s->conn[i][j];
            if (want == nd->linked[j])
                continue;
            nd->linked[j] = want;
            memset(&ev, 0, sizeof ev);
            ev.type = want ? ELECT_EV_LINK_UP : ELECT_EV_LINK_DOWN;
            ev.link.id = s->nodes[j].id;
            node_event(s, i, &ev, false, true);
        }
    }
}

void sim_connect(struct sim *s, int i, int j, bool up)
{
    if (i == j || s->conn[i][j] == up)
        return;
    note(s, "link %d-%d %s", i + 1, j + 1, up ? "up" : "down");
    s->conn[i][j] = s->conn[j][i] = up;
    s->links_dirty = true;
}

void sim_partition(struct sim *s, unsigned mask)
{
    note(s, "partition mask 0x%x", mask);
    for (int i = 0; i < s->c.n; i++)
        for (int j = 0; j < s->c.n; j++)
            if (i != j && (((mask >> i) & 1) != ((mask >> j) & 1)))
                s->conn[i][j] = false;
    s->links_dirty = true;
}

void sim_heal(struct sim *s)
{
    note(s, "heal");
    for (int i = 0; i < s->c.n; i++)
        for (int j = 0; j < s->c.n; j++)
            s->conn[i][j] = i != j;
    s->drop_pm = s->dup_pm = s->crash_pm = 0;
    for (int i = 0; i < s->c.n; i++)
        if (!s->nodes[i].core)
            sim_start(s, i);
    s->links_dirty = true;
}

void sim_set_net(struct sim *s, uint64_t dmin, uint64_t dmax, unsigned drop_pm, unsigned dup_pm)
{
    s->dmin = dmin;
    s->dmax = dmax < dmin ? dmin : dmax;
    s->drop_pm = drop_pm;
    s->dup_pm = dup_pm;
}

void sim_set_crash(struct sim *s, unsigned crash_pm)
{
    s->crash_pm = crash_pm;
}

void sim_set_stable(struct sim *s, unsigned majority)
{
    s->stable = majority;
}

void sim_set_crashable(struct sim *s, unsigned mask)
{
    s->crashable = mask;
}

/* ---- the event loop */
static bool step_once(struct sim *s, uint64_t limit)
{
    uint64_t t = UINT64_MAX;
    int who = -1, kind = 0; /* 1 restart, 2 message, 3 tick */
    if (s->links_dirty)
        sync_links(s);
    for (int i = 0; i < s->c.n; i++) {
        const struct node *nd = &s->nodes[i];
        if (!nd->core && nd->restart_at && nd->restart_at < t) {
            t = nd->restart_at;
            who = i;
            kind = 1;
        }
    }
    if (s->nq && s->q[0].at < t) {
        t = s->q[0].at;
        kind = 2;
    }
    for (int i = 0; i < s->c.n; i++) {
        const struct node *nd = &s->nodes[i];
        if (nd->core && nd->next_tick < t) {
            t = nd->next_tick;
            who = i;
            kind = 3;
        }
    }
    if (t > limit || kind == 0)
        return false;
    if (t > s->now)
        s->now = t;
    s->steps++;
    if (kind == 1) {
        sim_start(s, who);
    } else if (kind == 2) {
        struct qmsg q = heap_pop(s);
        struct elect_msg *m;
        struct sh_err err;
        if (s->nodes[q.to].core && s->conn[q.from][q.to]) {
            if (elect_msg_decode(q.buf, q.len, &m, &err)) {
                failf(s, q.to, "decode: %s", sh_err_msg(&err));
            } else {
                struct elect_event ev;
                memset(&ev, 0, sizeof ev);
                ev.type = ELECT_EV_RECEIVE;
                ev.receive.msg = m;
                node_event(s, q.to, &ev, true, true);
                elect_msg_free(m);
            }
        }
        free(q.buf);
    } else {
        struct elect_event ev;
        memset(&ev, 0, sizeof ev);
        ev.type = ELECT_EV_TICK;
        node_event(s, who, &ev, true, true);
    }
    return true;
}

void sim_run_until(struct sim *s, uint64_t t)
{
    while (!s->failed && step_once(s, t))
        ;
    if (s->links_dirty && !s->failed)
        sync_links(s);
    if (s->now < t)
        s->now = t;
}

void sim_run_for(struct sim *s, uint64_t dt)
{
    sim_run_until(s, s->now + dt);
}

uint64_t sim_now(const struct sim *s)
{
    return s->now;
}

int sim_submit(struct sim *s, int i, const char *payload)
{
    struct elect_event ev;
    if (!s->nodes[i].core)
        return SH_ECLOSED;
    memset(&ev, 0, sizeof ev);
    ev.type = ELECT_EV_SUBMIT;
    ev.submit.payload = payload;
    ev.submit.len = strlen(payload);
    return node_event(s, i, &ev, false, false);
}

int sim_transfer(struct sim *s, int i, uint64_t target)
{
    struct elect_event ev;
    if (!s->nodes[i].core)
        return SH_ECLOSED;
    memset(&ev, 0, sizeof ev);
    ev.type = ELECT_EV_TRANSFER;
    ev.transfer.target = target;
    return node_event(s, i, &ev, false, false);
}

/* ---- preload: a static bootstrap written straight to every disk */
void sim_preload_members(struct sim *s, int n_members)
{
    uint64_t members[SIM_MAX_NODES];
    char payload[256];
    struct elect_entry x;
    /* A lineage of several nodes has grown out of a one-node bootstrap, so
     * its number is at least 2 (R13); one node alone is epoch 1. */
    struct elect_epoch ep = {n_members > 1 ? 2 : 1, 0, 1};
    int len;
    for (int k = 0; k < n_members; k++)
        members[k] = (uint64_t)k + 1;
    len = snprintf(payload, sizeof payload,
                   "{\"type\":\"epoch_started\",\"node\":\"%016x\",\"epoch\":%d}", 1, (int)ep.num);
    memset(&x, 0, sizeof x);
    x.term = 1;
    x.epoch = ep;
    x.kind = ELECT_ENTRY_EPOCH;
    x.n_members = (uint32_t)n_members;
    x.members = members;
    x.payload = payload;
    x.payload_len = (uint32_t)len;
    for (int i = 0; i < s->c.n; i++) {
        struct disk *d = &s->nodes[i].disk;
        if (i >= n_members)
            continue;
        d->log = xrealloc(d->log, 16 * sizeof *d->log);
        d->cap = 16;
        copy_entry(&d->log[0], &x);
        d->n = 1;
        memset(&d->hard, 0, sizeof d->hard);
        d->hard.term = 1;
        d->hard.epoch = ep;
        d->hard.commit = 1;
    }
    ep_set(ep_add(s, &ep), 1, digest(&x));
}

void sim_preload(struct sim *s)
{
    sim_preload_members(s, s->c.n);
}

/* ---- views */
struct elect *sim_core(struct sim *s, int i)
{
    return s->nodes[i].core;
}

int sim_leader(const struct sim *s)
{
    int best = -1;
    for (int i = 0; i < s->c.n; i++) {
        const struct elect *c = s->nodes[i].core;
        struct elect_epoch e, b;
        if (!c || elect_role(c) != ELECT_ROLE_LEADER)
            continue;
        if (best >= 0) {
            e = elect_current_epoch(c);
            b = elect_current_epoch(s->nodes[best].core);
            if (elect_tag_cmp(&e, elect_term(c), &b, elect_term(s->nodes[best].core)) <= 0)
                continue;
        }
        best = i;
    }
    return best;
}

bool sim_converged_among(const struct sim *s, unsigned mask, char *why, size_t cap)
{
    int l = -1, leaders = 0, want = 0;
    const struct elect *lc;
    struct elect_epoch le;
    const uint64_t *mem;
    size_t nm;
    for (int i = 0; i < s->c.n; i++) {
        if (!((mask >> i) & 1))
            continue;
        want++;
        if (!s->nodes[i].core) {
            snprintf(why, cap, "node %d down", i + 1);
            return false;
        }
        if (elect_role(s->nodes[i].core) == ELECT_ROLE_LEADER) {
            l = i;
            leaders++;
        }
    }
    if (leaders != 1) {
        snprintf(why, cap, "%d leaders", leaders);
        return false;
    }
    lc = s->nodes[l].core;
    le = elect_current_epoch(lc);
    mem = elect_members(lc, &nm);
    if (nm != (size_t)want) {
        snprintf(why, cap, "leader %d has %zu members, want %d", l + 1, nm, want);
        return false;
    }
    for (int i = 0, k = 0; i < s->c.n; i++) {
        const struct elect *c = s->nodes[i].core;
        struct elect_epoch e;
        if (!((mask >> i) & 1))
            continue;
        e = elect_current_epoch(c);
        if (mem[k++] != (uint64_t)i + 1) {
            snprintf(why, cap, "member list is not the expected nodes");
            return false;
        }
        if (!ep_eq(&e, &le) || elect_term(c) != elect_term(lc) ||
            elect_leader(c) != s->nodes[l].id) {
            snprintf(why, cap, "node %d not following %d in its epoch/term", i + 1, l + 1);
            return false;
        }
        if (elect_last_index(c) != elect_last_index(lc) ||
            elect_commit(c) != elect_last_index(lc)) {
            snprintf(why, cap, "node %d log %" PRIu64 "/commit %" PRIu64 " vs leader %" PRIu64,
                     i + 1, elect_last_index(c), elect_commit(c), elect_last_index(lc));
            return false;
        }
        for (uint64_t x = 1; x <= elect_last_index(lc); x++) {
            if (digest(elect_entry_at(c, x)) != digest(elect_entry_at(lc, x))) {
                snprintf(why, cap, "node %d entry %" PRIu64 " differs", i + 1, x);
                return false;
            }
        }
    }
    return true;
}

bool sim_converged(const struct sim *s, char *why, size_t cap)
{
    return sim_converged_among(s, (1u << s->c.n) - 1, why, cap);
}

size_t sim_archived(const struct sim *s, int i)
{
    return s->nodes[i].disk.n_arch;
}

const struct elect_entry *sim_archived_entry(const struct sim *s, int i, size_t k)
{
    return k < s->nodes[i].disk.n_arch ? &s->nodes[i].disk.arch[k] : NULL;
}

size_t sim_leaders_seen(const struct sim *s)
{
    return s->n_leads;
}

size_t sim_epochs_seen(const struct sim *s)
{
    return s->n_eps;
}

unsigned long sim_steps(const struct sim *s)
{
    return s->steps;
}

unsigned long sim_archives(const struct sim *s)
{
    return s->archives;
}

unsigned long sim_rewinds(const struct sim *s)
{
    return s->rewinds;
}

const char *sim_failure(const struct sim *s)
{
    return s->failed ? s->fail : NULL;
}

/* ---- golden traces */
const char *sim_trace_take(struct sim *s)
{
    const char *t = s->trace.buf ? s->trace.buf + s->trace_pos : "";
    s->trace_pos = s->trace.len;
    return t;
}

bool sim_expect(struct sim *s, const char *expected, uint64_t limit)
{
    size_t n = strlen(expected);
    uint64_t until = s->now + limit;
    const char *got;
    while (!s->failed && s->trace.len - s->trace_pos < n && s->now <= until)
        if (!step_once(s, until))
            break;
    got = s->trace.buf ? s->trace.buf + s->trace_pos : "";
    if (s->trace.len - s->trace_pos < n || strncmp(got, expected, n) != 0) {
        fprintf(stderr, "# trace mismatch\n# expected:\n%s# got:\n%.*s\n", expected,
                (int)(s->trace.len - s->trace_pos), got);
        if (s->failed)
            fprintf(stderr, "# failure: %s\n", s->fail);
        return false;
    }
    s->trace_pos += n;
    return true;
}

void sim_trace_clear(struct sim *s)
{
    s->trace_pos = s->trace.len;
}
