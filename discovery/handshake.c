/* discovery/handshake.c: the link handshake as a pure state machine (the
 * message sequence is documented in discovery.h). It reads records handed
 * in and writes the records to send; link.c moves them over TCP. Its only
 * outside input is libsodium's randomness for the ephemeral key.
 *
 *   dialer:   START --step(NULL)/msg1--> WAIT_HELLO --step(msg2)/msg3--> WAIT_AUTH
 *             --step(msg4)--> DONE
 *   acceptor: WAIT_HELLO --step(msg1)/msg2--> WAIT_AUTH --step(msg3)/msg4--> DONE
 *   any error --> FAILED (final)
 *
 * Checks on the AUTH record run cheapest-and-most-telling first: the cluster
 * key MAC (a stranger is dropped before we decrypt or verify anything), then
 * decryption, then the Ed25519 signature, then the expected node id. */
#include <string.h>

#include <sodium.h>

#include "common/util.h"
#include "discovery/internal.h"

#define MAGIC     "SHOL"
#define MAC_BYTES 32
/* AUTH plaintext: pk | sig | incarnation | api port | peer port | name len | name */
#define AUTH_FIXED (DISC_PUBKEY_BYTES + crypto_sign_BYTES + 8 + 2 + 2 + 1)
#define AUTH_MAX   (MAC_BYTES + AUTH_FIXED + DISC_NAME_MAX + DISC_TAG_BYTES)

_Static_assert(AUTH_MAX <= DISC_HS_MAX_MSG, "AUTH record fits the handshake limit");
_Static_assert(crypto_kx_PUBLICKEYBYTES == 32 && crypto_kx_SESSIONKEYBYTES == 32, "kx sizes");

/* BLAKE2b-256 of label | a | b, keyed with key (NULL: unkeyed). */
static void hash3(uint8_t out[32],
                  const uint8_t *key,
                  const char *label,
                  const uint8_t *a,
                  size_t alen,
                  const uint8_t *b,
                  size_t blen)
{
    crypto_generichash_state st;

    crypto_generichash_init(&st, key, key ? 32 : 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)label, strlen(label));
    if (alen)
        crypto_generichash_update(&st, a, alen);
    if (blen)
        crypto_generichash_update(&st, b, blen);
    crypto_generichash_final(&st, out, 32);
    sodium_memzero(&st, sizeof st);
}

void disc_hs_init(struct disc_hs *hs,
                  enum disc_hs_role role,
                  const struct disc_hs_self *self,
                  uint64_t expected_id)
{
    memset(hs, 0, sizeof *hs);
    hs->role = role;
    hs->state = role == DISC_HS_DIALER ? DISC_HS_START : DISC_HS_WAIT_HELLO;
    hs->self = *self;
    hs->expected_id = expected_id;
    if (self->cluster_key)
        memcpy(hs->ck, self->cluster_key, sizeof hs->ck);
    crypto_kx_keypair(hs->e_pk, hs->e_sk);
}

void disc_hs_wipe(struct disc_hs *hs)
{
    sodium_memzero(hs->e_sk, sizeof hs->e_sk);
    sodium_memzero(hs->ck, sizeof hs->ck);
    sodium_memzero(&hs->tx, sizeof hs->tx);
    sodium_memzero(&hs->rx, sizeof hs->rx);
}

static int fail(struct disc_hs *hs, struct sh_err *err, int code, const char *msg)
{
    hs->state = DISC_HS_FAILED;
    return sh_err_set(err, code, "handshake: %s", msg);
}

static void write_hello(const struct disc_hs *hs, uint8_t *out)
{
    memcpy(out, MAGIC, 4);
    out[4] = (uint8_t)(DISC_PROTO_VERSION & 0xff);
    out[5] = (uint8_t)(DISC_PROTO_VERSION >> 8);
    out[6] = 0; /* flags: none defined */
    out[7] = 0;
    memcpy(out + 8, hs->e_pk, 32);
}

static int check_hello(struct disc_hs *hs, const uint8_t *in, size_t len, struct sh_err *err)
{
    unsigned version;

    if (len != DISC_HS_HELLO_LEN)
        return fail(hs, err, SH_EPROTO, "HELLO has the wrong size (not a shoal peer?)");
    if (memcmp(in, MAGIC, 4) != 0)
        return fail(hs, err, SH_EPROTO, "bad magic (not a shoal peer)");
    version = (unsigned)in[4] | (unsigned)in[5] << 8;
    if (version != DISC_PROTO_VERSION) {
        hs->state = DISC_HS_FAILED;
        return sh_err_set(err, SH_EPROTO, "handshake: peer speaks protocol version %u, we speak %u",
                          version, (unsigned)DISC_PROTO_VERSION);
    }
    if (in[6] || in[7])
        return fail(hs, err, SH_EPROTO, "unknown HELLO flags");
    return 0;
}

/* Both HELLOs known: transcript hash and the two directions' keys. */
static int
derive(struct disc_hs *hs, const uint8_t *msg2, const uint8_t *peer_e, struct sh_err *err)
{
    uint8_t rx[32], tx[32], k[32];
    int rc;

    hash3(hs->h, NULL, "shoal handshake v1", hs->msg1, DISC_HS_HELLO_LEN, msg2, DISC_HS_HELLO_LEN);
    if (hs->role == DISC_HS_DIALER)
        rc = crypto_kx_client_session_keys(rx, tx, hs->e_pk, hs->e_sk, peer_e);
    else
        rc = crypto_kx_server_session_keys(rx, tx, hs->e_pk, hs->e_sk, peer_e);
    sodium_memzero(hs->e_sk, sizeof hs->e_sk);
    if (rc != 0)
        return fail(hs, err, SH_EUNAUTH, "peer's ephemeral key is invalid");
    /* Mixing the cluster key into the traffic keys as well as the MACs: even a
     * bug in the MAC check could not let a stranger read or write frames. */
    bool dialer = hs->role == DISC_HS_DIALER;
    hash3(k, hs->ck, dialer ? "shoal key d2a" : "shoal key a2d", hs->h, 32, tx, 32);
    memcpy(hs->tx.key, k, 32);
    hash3(k, hs->ck, dialer ? "shoal key a2d" : "shoal key d2a", hs->h, 32, rx, 32);
    memcpy(hs->rx.key, k, 32);
    hs->tx.counter = 0;
    hs->rx.counter = 0;
    sodium_memzero(rx, sizeof rx);
    sodium_memzero(tx, sizeof tx);
    sodium_memzero(k, sizeof k);
    return 0;
}

/* Two separate reads: the order of operands of | is unspecified in C. */
static uint16_t read_u16(struct sh_cursor *c)
{
    uint16_t lo = sh_cursor_u8(c);
    uint16_t hi = sh_cursor_u8(c);
    return (uint16_t)(lo | hi << 8);
}

static void mac_for(const struct disc_hs *hs, bool dialer, uint8_t out[MAC_BYTES])
{
    hash3(out, hs->ck, dialer ? "shoal mac d" : "shoal mac a", hs->h, 32, NULL, 0);
}

/* Writes our AUTH record (msg3 or msg4) into out. */
static int write_auth(struct disc_hs *hs, uint8_t *out, size_t *out_len, struct sh_err *err)
{
    bool dialer = hs->role == DISC_HS_DIALER;
    uint8_t plain[AUTH_FIXED + DISC_NAME_MAX];
    uint8_t signed_msg[16 + 32 + DISC_PUBKEY_BYTES];
    size_t name_len = strlen(hs->self.name ? hs->self.name : "");
    size_t n = 0, slen;

    if (name_len > DISC_NAME_MAX)
        return fail(hs, err, SH_EINVAL, "our node name is longer than 63 bytes");
    /* Signature over a role label, the transcript and (acceptor) the dialer's
     * identity: it cannot be lifted into another session or direction. */
    slen = 0;
    memcpy(signed_msg, dialer ? "shoal sig d" : "shoal sig a", 11);
    slen += 11;
    memcpy(signed_msg + slen, hs->h, 32);
    slen += 32;
    if (!dialer) {
        memcpy(signed_msg + slen, hs->peer.pk, DISC_PUBKEY_BYTES);
        slen += DISC_PUBKEY_BYTES;
    }
    memcpy(plain, hs->self.pk, DISC_PUBKEY_BYTES);
    n += DISC_PUBKEY_BYTES;
    crypto_sign_detached(plain + n, NULL, signed_msg, slen, hs->self.sk);
    n += crypto_sign_BYTES;
    sh_put_u64(plain + n, hs->self.incarnation);
    n += 8;
    plain[n++] = (uint8_t)(hs->self.api_port & 0xff);
    plain[n++] = (uint8_t)(hs->self.api_port >> 8);
    plain[n++] = (uint8_t)(hs->self.peer_port & 0xff);
    plain[n++] = (uint8_t)(hs->self.peer_port >> 8);
    plain[n++] = (uint8_t)name_len;
    memcpy(plain + n, hs->self.name ? hs->self.name : "", name_len);
    n += name_len;

    mac_for(hs, dialer, out);
    if (disc_cipher_seal(&hs->tx, hs->h, 32, plain, n, out + MAC_BYTES) != 0)
        return fail(hs, err, SH_EINTERNAL, "cipher counter");
    *out_len = MAC_BYTES + n + DISC_TAG_BYTES;
    sodium_memzero(plain, sizeof plain);
    return 0;
}

/* Checks the peer's AUTH record and fills hs->peer. */
static int read_auth(struct disc_hs *hs, const uint8_t *in, size_t len, struct sh_err *err)
{
    bool peer_is_dialer = hs->role == DISC_HS_ACCEPTOR;
    uint8_t mac[MAC_BYTES];
    uint8_t plain[AUTH_FIXED + DISC_NAME_MAX];
    uint8_t signed_msg[16 + 32 + DISC_PUBKEY_BYTES];
    struct sh_cursor cur;
    const uint8_t *pk, *sig, *name;
    size_t plen, slen = 0, name_len;
    uint64_t id;

    if (len < MAC_BYTES + AUTH_FIXED + DISC_TAG_BYTES || len > AUTH_MAX)
        return fail(hs, err, SH_EPROTO, "AUTH has the wrong size");
    mac_for(hs, peer_is_dialer, mac);
    if (sodium_memcmp(mac, in, MAC_BYTES) != 0)
        return fail(hs, err, SH_EUNAUTH,
                    "peer did not prove our cluster key (different or no cluster key, "
                    "or the handshake was altered)");
    plen = len - MAC_BYTES - DISC_TAG_BYTES;
    if (disc_cipher_open(&hs->rx, hs->h, 32, in + MAC_BYTES, len - MAC_BYTES, plain) != 0)
        return fail(hs, err, SH_EUNAUTH, "AUTH failed to decrypt (altered)");

    sh_cursor_init(&cur, plain, plen);
    pk = sh_cursor_take(&cur, DISC_PUBKEY_BYTES);
    sig = sh_cursor_take(&cur, crypto_sign_BYTES);
    hs->peer.incarnation = sh_cursor_u64(&cur);
    hs->peer.api_port = read_u16(&cur);
    hs->peer.peer_port = read_u16(&cur);
    name_len = sh_cursor_u8(&cur);
    name = sh_cursor_take(&cur, name_len);
    if (cur.err || sh_cursor_left(&cur) != 0 || name_len > DISC_NAME_MAX)
        return fail(hs, err, SH_EPROTO, "AUTH body is malformed");
    for (size_t i = 0; i < name_len; i++)
        if (name[i] < 0x20 || name[i] == 0x7f)
            return fail(hs, err, SH_EPROTO, "peer name has control characters");

    memcpy(signed_msg, peer_is_dialer ? "shoal sig d" : "shoal sig a", 11);
    slen += 11;
    memcpy(signed_msg + slen, hs->h, 32);
    slen += 32;
    if (!peer_is_dialer) {
        memcpy(signed_msg + slen, hs->self.pk, DISC_PUBKEY_BYTES);
        slen += DISC_PUBKEY_BYTES;
    }
    if (crypto_sign_verify_detached(sig, signed_msg, slen, pk) != 0)
        return fail(hs, err, SH_EUNAUTH,
                    "peer's identity signature is invalid (it does not hold the key it claims)");
    id = disc_node_id(pk);
    if (hs->expected_id && id != hs->expected_id) {
        char got[17], want[17];
        disc_node_id_str(id, got);
        disc_node_id_str(hs->expected_id, want);
        hs->state = DISC_HS_FAILED;
        return sh_err_set(err, SH_EUNAUTH, "handshake: peer proved node id %s but advertised %s",
                          got, want);
    }
    hs->peer.node_id = id;
    memcpy(hs->peer.pk, pk, DISC_PUBKEY_BYTES);
    memcpy(hs->peer.name, name, name_len);
    hs->peer.name[name_len] = '\0';
    return 0;
}

int disc_hs_step(struct disc_hs *hs,
                 const uint8_t *in,
                 size_t in_len,
                 uint8_t *out,
                 size_t *out_len,
                 struct sh_err *err)
{
    int rc;

    *out_len = 0;
    if (in && in_len > DISC_HS_MAX_MSG)
        return fail(hs, err, SH_EPROTO, "record over the handshake size limit");
    switch (hs->state) {
    case DISC_HS_START: /* dialer, first call: msg1 */
        if (in)
            return fail(hs, err, SH_EPROTO, "peer spoke before our HELLO");
        write_hello(hs, hs->msg1);
        memcpy(out, hs->msg1, DISC_HS_HELLO_LEN);
        *out_len = DISC_HS_HELLO_LEN;
        hs->state = DISC_HS_WAIT_HELLO;
        return 0;
    case DISC_HS_WAIT_HELLO:
        if (!in)
            return fail(hs, err, SH_EPROTO, "no HELLO");
        if ((rc = check_hello(hs, in, in_len, err)) != 0)
            return rc;
        if (hs->role == DISC_HS_ACCEPTOR) {
            /* msg1 in, msg2 out: only our ephemeral key leaves before the
             * dialer has proved the cluster key. */
            memcpy(hs->msg1, in, DISC_HS_HELLO_LEN);
            write_hello(hs, out);
            *out_len = DISC_HS_HELLO_LEN;
            if ((rc = derive(hs, out, in + 8, err)) != 0)
                return rc;
        } else {
            if ((rc = derive(hs, in, in + 8, err)) != 0)
                return rc;
            if ((rc = write_auth(hs, out, out_len, err)) != 0)
                return rc;
        }
        hs->state = DISC_HS_WAIT_AUTH;
        return 0;
    case DISC_HS_WAIT_AUTH:
        if (!in)
            return fail(hs, err, SH_EPROTO, "no AUTH");
        if ((rc = read_auth(hs, in, in_len, err)) != 0)
            return rc;
        if (hs->role == DISC_HS_ACCEPTOR && (rc = write_auth(hs, out, out_len, err)) != 0)
            return rc;
        hs->state = DISC_HS_DONE;
        return 0;
    case DISC_HS_DONE:
        return fail(hs, err, SH_EPROTO, "record after the handshake finished");
    case DISC_HS_FAILED:
        break;
    }
    return sh_err_set(err, SH_EPROTO, "handshake: already failed");
}
