/* discovery/internal.h: what the files of discovery/ (and its tests) share:
 * the pure cipher/frame and handshake cores, the AvahiPoll adapter, the mDNS
 * seam, and the link manager's structs. Not for other modules. */
#ifndef DISC_INTERNAL_H
#define DISC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <avahi-common/watch.h>
#include <event2/util.h>

#include "common/err.h"
#include "discovery/discovery.h"

struct event;
struct event_base;
struct bufferevent;
struct evconnlistener;
struct evdns_base;
struct sockaddr;

/* ---- cipher and frames (frame.c, pure) ---------------------------------- */

#define DISC_KEY_BYTES      32
#define DISC_TAG_BYTES      16
#define DISC_FRAME_HDR      4                                     /* u32 LE body length */
#define DISC_FRAME_OVERHEAD (DISC_FRAME_HDR + 1 + DISC_TAG_BYTES) /* hdr + type + tag */

/* One direction of a link: key and the counter that is the next nonce. */
struct disc_cipher {
    uint8_t key[DISC_KEY_BYTES];
    uint64_t counter;
};

/* AEAD with nonce = counter (then counter++). out has mlen + DISC_TAG_BYTES
 * bytes. Errors: SH_ERANGE (counter exhausted). */
int disc_cipher_seal(struct disc_cipher *c,
                     const uint8_t *ad,
                     size_t adlen,
                     const uint8_t *m,
                     size_t mlen,
                     uint8_t *out);
/* Opens ct (ctlen >= DISC_TAG_BYTES) into out (ctlen - 16 bytes; out == ct is
 * allowed). The counter advances only on success, so a replayed or reordered
 * message can never open. Errors: SH_EUNAUTH, SH_ERANGE. */
int disc_cipher_open(struct disc_cipher *c,
                     const uint8_t *ad,
                     size_t adlen,
                     const uint8_t *ct,
                     size_t ctlen,
                     uint8_t *out);

/* Wire size of a frame carrying len payload bytes (len <= DISC_MAX_FRAME_LIMIT). */
size_t disc_frame_size(size_t len);
/* Writes a whole frame (header + sealed type|payload) into out, which has
 * disc_frame_size(len) bytes. Errors: SH_ERANGE. */
int disc_frame_seal(
    struct disc_cipher *c, uint8_t type, const void *payload, size_t len, uint8_t *out);
/* Reads a frame header: *body_len is the number of bytes that follow it.
 * Errors: SH_EMALFORMED (shorter than type + tag), SH_ETOOBIG (payload over
 * max_payload), both before anything is allocated or read. */
int disc_frame_body_len(const uint8_t hdr[DISC_FRAME_HDR],
                        uint32_t max_payload,
                        size_t *body_len,
                        struct sh_err *err);
/* Decrypts body in place. On success *type, *payload (pointing into body) and
 * *plen describe the message. Errors: SH_EUNAUTH (altered, replayed,
 * reordered or foreign), SH_ERANGE. */
int disc_frame_open(struct disc_cipher *c,
                    const uint8_t hdr[DISC_FRAME_HDR],
                    uint8_t *body,
                    size_t body_len,
                    uint8_t *type,
                    const uint8_t **payload,
                    size_t *plen,
                    struct sh_err *err);

/* ---- handshake (handshake.c, pure but for randomness) -------------------- */

#define DISC_HS_MAX_MSG   512 /* largest handshake record body */
#define DISC_HS_HELLO_LEN 40

enum disc_hs_role {
    DISC_HS_DIALER,
    DISC_HS_ACCEPTOR,
};

/* Our side. Pointers are borrowed for the life of the handshake. pk and sk
 * are normally one keypair; tests pass mismatched ones to play an impostor. */
struct disc_hs_self {
    const uint8_t *pk;          /* DISC_PUBKEY_BYTES */
    const uint8_t *sk;          /* DISC_SECKEY_BYTES */
    const uint8_t *cluster_key; /* DISC_CLUSTER_KEY_BYTES or NULL */
    uint64_t incarnation;
    uint16_t api_port;
    uint16_t peer_port;
    const char *name; /* at most DISC_NAME_MAX bytes */
};

/* What the peer proved and told. Valid once the handshake is done. */
struct disc_hs_peer {
    uint64_t node_id;
    uint8_t pk[DISC_PUBKEY_BYTES];
    uint64_t incarnation;
    uint16_t api_port;
    uint16_t peer_port;
    char name[DISC_NAME_MAX + 1];
};

enum disc_hs_state {
    DISC_HS_START,      /* dialer: nothing sent yet */
    DISC_HS_WAIT_HELLO, /* dialer: sent msg1; acceptor: waiting for msg1 */
    DISC_HS_WAIT_AUTH,  /* dialer: sent msg3; acceptor: sent msg2 */
    DISC_HS_DONE,
    DISC_HS_FAILED,
};

struct disc_hs {
    enum disc_hs_role role;
    enum disc_hs_state state;
    struct disc_hs_self self;
    uint64_t expected_id; /* dialer: the id mDNS advertised; 0 = any */
    uint8_t e_pk[32];     /* our ephemeral X25519 key */
    uint8_t e_sk[32];
    uint8_t msg1[DISC_HS_HELLO_LEN]; /* the dialer's HELLO, for the transcript */
    uint8_t h[32];                   /* transcript hash once both HELLOs are known */
    uint8_t ck[DISC_CLUSTER_KEY_BYTES];
    struct disc_cipher tx; /* after DONE: the link's ciphers, counters at 1 */
    struct disc_cipher rx;
    struct disc_hs_peer peer;
};

/* Prepares a handshake. Never fails. */
void disc_hs_init(struct disc_hs *hs,
                  enum disc_hs_role role,
                  const struct disc_hs_self *self,
                  uint64_t expected_id);

/* Feeds one received record body (in = NULL for the dialer's first call) and
 * writes the record body to send next into out (DISC_HS_MAX_MSG bytes, not
 * overlapping in), *out_len = 0 when there is none. After an error the state is FAILED and
 * stays so. Errors: SH_EPROTO (wrong step, size, magic or version),
 * SH_EUNAUTH (cluster key proof, decryption, signature, or an unexpected node
 * id), SH_EINVAL (our own config: name too long). */
int disc_hs_step(struct disc_hs *hs,
                 const uint8_t *in,
                 size_t in_len,
                 uint8_t *out,
                 size_t *out_len,
                 struct sh_err *err);

/* Wipes keys and secrets. */
void disc_hs_wipe(struct disc_hs *hs);

/* ---- AvahiPoll on libevent (avahi_poll.c) -------------------------------- */

struct disc_avahi_poll;

/* NULL on out of memory. base is borrowed until the poll is freed. */
struct disc_avahi_poll *disc_avahi_poll_new(struct event_base *base);
/* The AvahiPoll to hand to avahi_client_new; lives as long as p. */
const AvahiPoll *disc_avahi_poll_api(struct disc_avahi_poll *p);
/* Frees p and any watch or timeout avahi left behind. NULL allowed. Not from
 * inside one of p's callbacks. */
void disc_avahi_poll_free(struct disc_avahi_poll *p);

/* ---- mDNS (mdns.c) ------------------------------------------------------- */

struct disc_mdns;

struct disc_mdns_config {
    uint64_t self_id;
    const char *fingerprint; /* 16 hex digits or "none" */
    const char *name;        /* service name wanted */
    uint16_t api_port;
    uint16_t peer_port;
};

/* A service of our cluster was resolved (again) to addr:port; key stands for
 * the service until lost is called for it. */
typedef void (*disc_mdns_found_fn)(
    void *arg, const void *key, uint64_t node_id, const char *addr, uint16_t port);
typedef void (*disc_mdns_lost_fn)(void *arg, const void *key);

/* Publishes and browses through avahi. Never fails for a missing daemon or
 * bus (it waits and retries). Errors: SH_ENOMEM. */
int disc_mdns_new(struct event_base *base,
                  const struct disc_mdns_config *cfg,
                  disc_mdns_found_fn found,
                  disc_mdns_lost_fn lost,
                  void *arg,
                  struct disc_mdns **out,
                  struct sh_err *err);
/* Withdraws the service (peers see it go within ~1 s) and frees. NULL allowed. */
void disc_mdns_free(struct disc_mdns *m);

/* ---- link manager (disc.c, link.c) --------------------------------------- */

enum disc_target_kind {
    DISC_TARGET_STATIC,
    DISC_TARGET_MDNS,
};

/* Somewhere to dial: a static peer or a resolved mDNS service. */
struct disc_target {
    struct disc_target *next;
    struct disc *d;
    enum disc_target_kind kind;
    char host[256]; /* host name or address literal */
    uint16_t port;
    const void *key;      /* mDNS: the service it came from */
    uint64_t expected_id; /* mDNS: from TXT (checked in the handshake) */
    uint64_t learned_id;  /* static: the id it turned out to have */
    bool self;            /* it turned out to be ourselves: never dialed again */
    uint32_t backoff_ms;  /* the next retry delay before jitter */
    struct event *timer;
    struct disc_link *link; /* our connection for it, if any */
    char last_error[96];    /* why the last attempt failed, logged once per change */
};

enum disc_link_state {
    DISC_LINK_CONNECTING, /* dialing */
    DISC_LINK_HANDSHAKE,
    DISC_LINK_UP,
    DISC_LINK_CLOSING, /* flushing a GOODBYE, then freed */
};

struct disc_link {
    struct disc_link *next;
    struct disc_link *prev;
    struct disc *d;
    enum disc_link_state state;
    bool dialed;
    bool active;                /* the one link of its peer that callbacks refer to */
    bool was_up;                /* finished its handshake at some point */
    struct disc_target *target; /* dialed links only; NULL once the target is gone */
    struct bufferevent *bev;
    struct event *hs_timer; /* connect + handshake deadline, then the closing deadline */
    struct event *hb_timer; /* heartbeat, once up */
    struct event *close_ev; /* deferred close requested outside the loop */
    char close_reason[96];
    char remote[272]; /* "host:port" for log lines */
    struct disc_hs hs;
    uint64_t last_rx_ns;
    struct disc_link_info info; /* once up */
};

struct disc {
    struct event_base *base;
    struct disc_callbacks cbs;
    void *arg;
    uint64_t self_id;
    char self_hex[17];
    uint8_t pk[DISC_PUBKEY_BYTES];
    uint8_t sk[DISC_SECKEY_BYTES];
    bool has_cluster_key;
    uint8_t cluster_key[DISC_CLUSTER_KEY_BYTES];
    char fingerprint[17];
    char name[DISC_NAME_MAX + 1];
    uint16_t api_port;
    uint16_t port;
    uint64_t incarnation;
    uint32_t heartbeat_ms;
    uint32_t link_timeout_ms;
    uint32_t hs_timeout_ms;
    uint32_t backoff_min_ms;
    uint32_t backoff_max_ms;
    uint32_t max_frame;
    size_t max_output;
    struct evconnlistener *listener;
    struct event *listen_retry; /* re-enables the listener after EMFILE */
    struct evdns_base *dns;     /* made on the first static peer given by name */
    struct disc_mdns *mdns;
    struct disc_link *links;
    size_t n_handshaking;
    struct disc_target *targets;
    bool freeing;
};

/* link.c: connections. */
struct disc_link *
disc_link_accept(struct disc *d, evutil_socket_t fd, const struct sockaddr *sa, int salen);
/* Starts dialing t; NULL (logged) if it could not even start. */
struct disc_link *disc_link_dial(struct disc *d, struct disc_target *t);
/* Closes l: the peer's link_down first if it was active (unless it was
 * replaced), then a GOODBYE with goodbye_code when >= 0 and the link is up.
 * l may be freed at once: do not touch it afterwards. */
void disc_link_close(struct disc_link *l, const char *reason, int goodbye_code);
/* Asks the loop to close l soon (for use inside disc_send). */
void disc_link_close_later(struct disc_link *l, const char *reason);
/* Frees l right away after a best-effort non-blocking GOODBYE (disc_free). */
void disc_link_destroy(struct disc_link *l, bool goodbye);
int disc_link_send(
    struct disc_link *l, uint8_t type, const void *data, size_t len, struct sh_err *err);

#define DISC_GOODBYE_SHUTDOWN  0
#define DISC_GOODBYE_DUPLICATE 1
#define DISC_GOODBYE_SELF      2

/* disc.c: what link.c reports. */
/* The handshake of l is done: pick the one link per peer. Returns false if
 * it closed l (a duplicate, or ourselves). */
bool disc_on_established(struct disc_link *l);
/* l is closing: if it was active, the peer's link_down (with reason) runs
 * and l stops being active; its target, if any, is scheduled to redial. */
void disc_on_closed(struct disc_link *l, const char *reason);

#endif
