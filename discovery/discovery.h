/* discovery/discovery.h: finding peers (mDNS via avahi, static host:port
 * list) and keeping one encrypted, authenticated TCP link to each of them.
 *
 * Owns: the peer listener, dialing with backoff, the link handshake, framed
 * encrypted messages, heartbeats, mDNS publish/browse. Does not own: what the
 * messages mean (election/, state/, api/ register their types below), the
 * node's key files (agent/identity.c), cluster membership (election/).
 *
 * Everything runs on the caller's libevent loop; nothing here blocks on the
 * network, except that avahi-client's own calls are synchronous D-Bus round
 * trips to the local avahi-daemon (avahi 0.8 offers no asynchronous API).
 * The process must ignore SIGPIPE: libevent writes with writev(2).
 *
 * Link handshake (protocol version DISC_PROTO_VERSION; D = the side that
 * dialed, A = the side that accepted; every record on the wire is a u32
 * little-endian length followed by that many bytes; handshake records are at
 * most 512 bytes, and the whole handshake must finish within the handshake
 * timeout):
 *
 *   1. D -> A  HELLO  "SHOL" | u16 version | u16 flags (0) | eD (X25519 ephemeral)
 *   2. A -> D  HELLO  "SHOL" | u16 version | u16 flags (0) | eA
 *        h   = BLAKE2b-256("shoal handshake v1" | msg1 | msg2)   (transcript)
 *        ck  = the cluster key, or 32 zero bytes without one
 *        kD2A, kA2D = BLAKE2b-256(key=ck, "shoal key d2a"/"a2d" | h | crypto_kx
 *                      session key of that direction (X25519(eD, eA)))
 *   3. D -> A  AUTH   macD | AEAD_kD2A(n=0, ad=h)(pkD | sigD | info)
 *        macD = BLAKE2b-256(key=ck, "shoal mac d" | h)   (proves D holds ck)
 *        sigD = Ed25519(skD, "shoal sig d" | h)        (proves D's identity,
 *               bound to this session's ephemeral keys: no replay)
 *        info = u64 incarnation | u16 api port | u16 peer port | u8 len | name
 *      A checks macD first, then decrypts, then checks sigD; any failure closes
 *      the connection without a reply. Until here A has sent nothing but a
 *      random ephemeral key, so a peer without the cluster key learns nothing
 *      about A (not even its identity) and no application byte is ever parsed.
 *   4. A -> D  AUTH   macA | AEAD_kA2D(n=0, ad=h)(pkA | sigA | info)
 *        macA = BLAKE2b-256(key=ck, "shoal mac a" | h)
 *        sigA = Ed25519(skA, "shoal sig a" | h | pkD)
 *      D checks the same, and that A's node id is the one mDNS advertised.
 *   5. Both ways: frames = u32 length L | XChaCha20-Poly1305(key of that
 *      direction, nonce = u64 counter (1, 2, ...; implicit, never sent),
 *      ad = the 4 length bytes)(u8 type | payload). A replayed, reordered,
 *      truncated or altered frame fails to decrypt and kills the link.
 *
 * A node id is the first 8 bytes of BLAKE2b-256(Ed25519 public key), read
 * big-endian, so its 16 hex digits are those bytes in order.
 */
#ifndef DISC_DISCOVERY_H
#define DISC_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct event_base;
struct disc;

#define DISC_PROTO_VERSION     1
#define DISC_DEFAULT_PEER_PORT 52416 /* the API is 52415 */
#define DISC_SERVICE_TYPE      "_shoal._tcp"
#define DISC_NAME_MAX          63 /* one DNS label */
#define DISC_ADDR_MAX          46 /* INET6_ADDRSTRLEN */
#define DISC_PUBKEY_BYTES      32
#define DISC_SECKEY_BYTES      64 /* libsodium Ed25519 secret key (seed | public key) */
#define DISC_CLUSTER_KEY_BYTES 32
#define DISC_MAX_FRAME_LIMIT   (64u << 20) /* hard ceiling for max_frame */

/* Message types on a link. Values are on the wire: append only. Types 1..15
 * belong to the link itself and are never delivered or accepted by
 * disc_send; 16..127 are the agent's. A peer sending any other value is
 * dropped. */
enum disc_msg_type {
    DISC_MSG_PING = 1,    /* u64 sender time; answered by PONG */
    DISC_MSG_PONG = 2,    /* the PING's u64, echoed */
    DISC_MSG_GOODBYE = 3, /* u8 code | reason text; the sender closes next */
    DISC_MSG_APP_MIN = 16,
    DISC_MSG_RAFT = 16,    /* election/: Raft RPCs */
    DISC_MSG_STATE = 17,   /* state/: snapshot and log catch-up */
    DISC_MSG_FORWARD = 18, /* api/: a request forwarded to the leader */
    DISC_MSG_WORKER = 19,  /* worker: downloads and runner coordination */
    DISC_MSG_INFO = 20,    /* agent/cluster: the sender describes itself (node_joined JSON) */
    DISC_MSG_APP_MAX = 127,
};

/* What the caller knows about a peer with a link up. Strings are
 * NUL-terminated. */
struct disc_link_info {
    uint64_t peer_id;
    char name[DISC_NAME_MAX + 1]; /* the peer's node name */
    char addr[DISC_ADDR_MAX];     /* the peer's IP address as we see it */
    uint16_t peer_port;           /* the peer's listening (peer link) port */
    uint16_t api_port;            /* the peer's HTTP API port */
    uint8_t pubkey[DISC_PUBKEY_BYTES];
    uint64_t incarnation; /* random per start of the peer's discovery module */
    bool dialed;          /* true if we dialed this link */
    uint64_t up_since_ns; /* sh_now_ns() when it came up */
    int64_t rtt_us;       /* last heartbeat round trip, -1 before the first */
};

/* Events, all called from the event loop (never from inside a disc_* call).
 * They must not call disc_free. Pointers are borrowed for the call only. */
struct disc_callbacks {
    /* A peer became reachable: exactly one link per peer is up at a time.
     * When two links to one peer race, the duplicate is closed silently. */
    void (*link_up)(void *arg, uint64_t peer_id, const struct disc_link_info *info);
    /* The peer's link went away (timeout, error, goodbye, restart); no more
     * messages reach it until the next link_up. */
    void (*link_down)(void *arg, uint64_t peer_id, const char *reason);
    /* An application message (type in DISC_MSG_APP_MIN..APP_MAX). */
    void (*message)(void *arg, uint64_t peer_id, uint8_t type, const uint8_t *data, size_t len);
};

struct disc_config {
    uint64_t node_id;           /* must equal disc_node_id(public_key) */
    const uint8_t *public_key;  /* DISC_PUBKEY_BYTES */
    const uint8_t *secret_key;  /* DISC_SECKEY_BYTES; copied, wiped on free */
    const uint8_t *cluster_key; /* DISC_CLUSTER_KEY_BYTES, or NULL: open cluster */
    const char *name;           /* node name: mDNS service name, shown to peers */
    uint16_t api_port;
    uint16_t peer_port; /* listen port on all interfaces; 0 = pick one (see disc_peer_port) */
    const char *const *static_peers; /* "host:port", "host" (default port), "[v6]:port" */
    size_t n_static_peers;
    bool mdns; /* publish and browse DISC_SERVICE_TYPE through avahi */
    /* Timing; 0 picks the default in brackets. */
    uint32_t heartbeat_ms;         /* [500] PING interval on an idle link */
    uint32_t link_timeout_ms;      /* [3000] no frame for this long: link down */
    uint32_t handshake_timeout_ms; /* [5000] connect + handshake */
    uint32_t reconnect_min_ms;     /* [250] first retry; doubles ... */
    uint32_t reconnect_max_ms;     /* [8000] ... up to this, with jitter */
    uint32_t max_frame;            /* [8 MiB] largest payload; <= DISC_MAX_FRAME_LIMIT */
    size_t max_output; /* [4 x max_frame + 1 MiB] queued bytes per link before it is dropped */
};

/* Starts listening, dialing the static peers and (if cfg->mdns) publishing
 * and browsing through avahi. A missing avahi-daemon or D-Bus is a logged
 * warning, and discovery through it starts whenever it appears.
 * base, cbs and arg are borrowed until disc_free; cfg is copied.
 * *out is returned; free with disc_free.
 * Errors: SH_EINVAL (bad config: names the field), SH_EIO (cannot listen),
 * SH_ENOMEM. */
int disc_new(struct event_base *base,
             const struct disc_config *cfg,
             const struct disc_callbacks *cbs,
             void *arg,
             struct disc **out,
             struct sh_err *err);

/* Says GOODBYE on every link (best effort, without blocking), withdraws the
 * mDNS service and frees everything. No callback runs during or after it.
 * NULL allowed. Not from inside a disc callback. */
void disc_free(struct disc *d);

/* Queues one message to a peer with a link up. data is copied.
 * Errors: SH_EINVAL (type outside the application range), SH_ETOOBIG (len >
 * max_frame), SH_ENOTFOUND (no link to peer_id), SH_ECLOSED (the peer is not
 * reading and its queue passed max_output: the link is being dropped, and
 * link_down follows from the loop), SH_ENOMEM. */
int disc_send(struct disc *d,
              uint64_t peer_id,
              uint8_t type,
              const void *data,
              size_t len,
              struct sh_err *err);

/* Fills out[0..cap) with the links that are up, ordered by peer id, and
 * returns how many are up (may exceed cap). */
size_t disc_links(const struct disc *d, struct disc_link_info *out, size_t cap);

/* The port the peer listener is bound to (the real one when 0 was asked). */
uint16_t disc_peer_port(const struct disc *d);

/* ---- identities and keys (pure helpers, no I/O) ------------------------- */

/* Node id of an Ed25519 public key (see the top of this file). */
uint64_t disc_node_id(const uint8_t pubkey[DISC_PUBKEY_BYTES]);

/* Writes the 16 lowercase hex digits of id and a NUL into out. */
void disc_node_id_str(uint64_t id, char out[17]);

/* Parses exactly 16 hex digits (either case). False on anything else. */
bool disc_parse_node_id(const char *s, uint64_t *out);

/* The short public fingerprint of a cluster key advertised in mDNS TXT:
 * 16 hex digits of BLAKE2b keyed with the cluster key (not invertible, and
 * says nothing about the key beyond "same or different"). */
void disc_cluster_fingerprint(const uint8_t key[DISC_CLUSTER_KEY_BYTES], char out[17]);

#endif
