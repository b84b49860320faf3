/* agent/identity.h: the node's identity and the cluster key, as files.
 *
 * The node key is <data_dir>/node.key: libsodium's 64-byte Ed25519 secret
 * key (seed | public key), binary, mode 0600, created on first start and
 * kept across restarts; the node id is derived from its public key
 * (disc_node_id). The cluster key file (`shoal keygen FILE`) holds 32 random
 * bytes as 64 hex digits and a newline, so it can be copied between
 * machines as text. Both files are refused when group or others can read
 * them, or when malformed; nothing is changed on error.
 */
#ifndef AGENT_IDENTITY_H
#define AGENT_IDENTITY_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "discovery/discovery.h"

#define AGENT_NODE_KEY_FILE "node.key"

struct agent_identity {
    uint8_t pk[DISC_PUBKEY_BYTES];
    uint8_t sk[DISC_SECKEY_BYTES];
    uint64_t node_id;
    char node_hex[17]; /* node id as 16 lowercase hex digits */
};

/* Loads <data_dir>/node.key into *id, creating data_dir (0700) and a new key
 * (0600) if there is none. *created (may be NULL) says which. Two agents
 * starting at once on one data dir end up with the same key.
 * Errors: SH_EUNAUTH (key file readable by group/others), SH_EMALFORMED
 * (wrong size, or its halves disagree), SH_EIO, SH_ETOOBIG (path). */
int agent_identity_load(const char *data_dir,
                        struct agent_identity *id,
                        bool *created,
                        struct sh_err *err);

/* Wipes the secret key. NULL allowed. */
void agent_identity_wipe(struct agent_identity *id);

/* Writes a new random cluster key to path (mode 0600). Refuses to replace an
 * existing file unless overwrite. fingerprint (may be NULL) gets its
 * disc_cluster_fingerprint. Errors: SH_EEXIST, SH_EIO. */
int agent_cluster_key_create(const char *path,
                             bool overwrite,
                             char fingerprint[17],
                             struct sh_err *err);

/* Reads a cluster key file: 64 hex digits, optionally followed by a newline.
 * Errors: SH_ENOTFOUND, SH_EUNAUTH (readable by group/others), SH_EMALFORMED,
 * SH_EIO. */
int agent_cluster_key_load(const char *path,
                           uint8_t key[DISC_CLUSTER_KEY_BYTES],
                           struct sh_err *err);

#endif
