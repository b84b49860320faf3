/* discovery/frame.c: the encrypted framing of an established link, and the
 * AEAD it is built on (XChaCha20-Poly1305 with an implicit counter nonce).
 * Pure: works on caller buffers, no I/O.
 *
 * Frame on the wire: u32 LE L | ciphertext of L bytes, where the plaintext is
 * u8 type | payload and the 4 length bytes are the associated data, so a
 * changed length is caught too. The nonce is the direction's counter: it is
 * never sent, so the receiver only ever accepts the next frame in order. */
#include <string.h>

#include <sodium.h>

#include "common/util.h"
#include "discovery/internal.h"

_Static_assert(DISC_TAG_BYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES, "tag size");
_Static_assert(DISC_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "key size");

static void make_nonce(uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES],
                       uint64_t counter)
{
    memset(nonce, 0, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    sh_put_u64(nonce, counter);
}

int disc_cipher_seal(struct disc_cipher *c,
                     const uint8_t *ad,
                     size_t adlen,
                     const uint8_t *m,
                     size_t mlen,
                     uint8_t *out)
{
    uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];

    if (c->counter == UINT64_MAX)
        return SH_ERANGE;
    make_nonce(nonce, c->counter);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out, NULL, m, mlen, ad, adlen, NULL, nonce, c->key);
    c->counter++;
    return 0;
}

int disc_cipher_open(struct disc_cipher *c,
                     const uint8_t *ad,
                     size_t adlen,
                     const uint8_t *ct,
                     size_t ctlen,
                     uint8_t *out)
{
    uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];

    if (c->counter == UINT64_MAX)
        return SH_ERANGE;
    if (ctlen < DISC_TAG_BYTES)
        return SH_EUNAUTH;
    make_nonce(nonce, c->counter);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, ct, ctlen, ad, adlen, nonce,
                                                   c->key) != 0)
        return SH_EUNAUTH;
    c->counter++;
    return 0;
}

size_t disc_frame_size(size_t len)
{
    return DISC_FRAME_OVERHEAD + len;
}

int disc_frame_seal(
    struct disc_cipher *c, uint8_t type, const void *payload, size_t len, uint8_t *out)
{
    uint8_t *body = out + DISC_FRAME_HDR;

    if (len > DISC_MAX_FRAME_LIMIT)
        return SH_ERANGE;
    sh_put_u32(out, (uint32_t)(1 + len + DISC_TAG_BYTES));
    /* Build the plaintext where the ciphertext goes: libsodium encrypts in place. */
    body[0] = type;
    if (len)
        memmove(body + 1, payload, len);
    return disc_cipher_seal(c, out, DISC_FRAME_HDR, body, 1 + len, body);
}

int disc_frame_body_len(const uint8_t hdr[DISC_FRAME_HDR],
                        uint32_t max_payload,
                        size_t *body_len,
                        struct sh_err *err)
{
    struct sh_cursor cur;
    uint32_t l;

    sh_cursor_init(&cur, hdr, DISC_FRAME_HDR);
    l = sh_cursor_u32(&cur);
    if (l < 1 + DISC_TAG_BYTES)
        return sh_err_set(err, SH_EMALFORMED, "frame of %u bytes is shorter than its envelope",
                          (unsigned)l);
    if (l - 1 - DISC_TAG_BYTES > max_payload)
        return sh_err_set(err, SH_ETOOBIG, "frame of %u bytes exceeds the limit of %u", (unsigned)l,
                          (unsigned)max_payload);
    *body_len = l;
    return 0;
}

int disc_frame_open(struct disc_cipher *c,
                    const uint8_t hdr[DISC_FRAME_HDR],
                    uint8_t *body,
                    size_t body_len,
                    uint8_t *type,
                    const uint8_t **payload,
                    size_t *plen,
                    struct sh_err *err)
{
    int rc;

    if (body_len < 1 + DISC_TAG_BYTES)
        return sh_err_set(err, SH_EMALFORMED, "frame of %zu bytes is too short", body_len);
    rc = disc_cipher_open(c, hdr, DISC_FRAME_HDR, body, body_len, body);
    if (rc == SH_ERANGE)
        return sh_err_set(err, rc, "frame counter exhausted");
    if (rc)
        return sh_err_set(err, rc,
                          "frame %llu failed authentication "
                          "(altered, replayed or out of order)",
                          (unsigned long long)c->counter);
    *type = body[0];
    *payload = body + 1;
    *plen = body_len - 1 - DISC_TAG_BYTES;
    return 0;
}
