/* discovery/keys.c: node ids and cluster-key fingerprints, derived from keys
 * with libsodium's BLAKE2b. Pure: no I/O, no state. */
#include <string.h>

#include <sodium.h>

#include "discovery/discovery.h"

uint64_t disc_node_id(const uint8_t pubkey[DISC_PUBKEY_BYTES])
{
    uint8_t h[32];
    uint64_t id = 0;

    crypto_generichash(h, sizeof h, pubkey, DISC_PUBKEY_BYTES, NULL, 0);
    /* Big-endian, so that printing the id in hex shows the hash bytes in order. */
    for (int i = 0; i < 8; i++)
        id = id << 8 | h[i];
    return id;
}

void disc_node_id_str(uint64_t id, char out[17])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        out[i] = hex[id & 0xf];
        id >>= 4;
    }
    out[16] = '\0';
}

bool disc_parse_node_id(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; i < 16; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return false; /* also stops at a NUL before 16 digits */
        v = v << 4 | d;
    }
    if (s[i] != '\0')
        return false;
    *out = v;
    return true;
}

void disc_cluster_fingerprint(const uint8_t key[DISC_CLUSTER_KEY_BYTES], char out[17])
{
    static const char label[] = "shoal cluster fingerprint v1";
    uint8_t h[32];
    uint64_t v = 0;

    /* Keyed with the secret: equal keys give equal fingerprints, and the
     * fingerprint is a MAC of a public label, which reveals nothing else. */
    crypto_generichash(h, sizeof h, (const uint8_t *)label, sizeof label - 1, key,
                       DISC_CLUSTER_KEY_BYTES);
    for (int i = 0; i < 8; i++)
        v = v << 8 | h[i];
    disc_node_id_str(v, out);
}
