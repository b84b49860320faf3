/* tests/discovery/harness.h: helpers for the loop-level discovery tests:
 * disc instances on loopback that record their events, a bounded way to
 * run the loop until something happens, and a "raw" peer that speaks the
 * wire protocol by hand (through the pure handshake and frame cores) so a
 * test can misbehave in exact ways. */
#ifndef TEST_DISC_HARNESS_H
#define TEST_DISC_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "discovery/internal.h"

struct event_base;

/* A disc instance and what its callbacks saw. */
struct tnode {
    struct disc *d;
    uint8_t pk[DISC_PUBKEY_BYTES];
    uint8_t sk[DISC_SECKEY_BYTES];
    uint64_t id;
    int ups, downs, msgs;
    uint64_t last_up_id, last_down_id;
    char last_reason[128];
    uint8_t last_type;
    char last_msg[256];
    struct disc_link_info last_info;
};

/* Config with fresh keys and test-friendly timings; the caller may change
 * fields before tnode_start. */
void tnode_keys(struct tnode *n);
void tnode_config(struct tnode *n,
                  struct disc_config *cfg,
                  const uint8_t *cluster_key,
                  const char *name);
/* disc_new with the recording callbacks; asserts success. */
void tnode_start(struct tnode *n, struct event_base *b, const struct disc_config *cfg);
void tnode_stop(struct tnode *n);

/* Runs the loop until pred(arg) is true or ms pass; returns pred's value. */
bool run_until(struct event_base *b, bool (*pred)(void *), void *arg, int ms);
/* Runs the loop for ms. */
void run_for(struct event_base *b, int ms);

/* A peer speaking the protocol by hand over a blocking-free TCP socket. */
struct raw {
    int fd;
    uint8_t pk[DISC_PUBKEY_BYTES];
    uint8_t sk[DISC_SECKEY_BYTES];
    struct disc_hs_self self;
    struct disc_hs hs;
    uint8_t in[1 << 16]; /* bytes received, not yet consumed */
    size_t in_len;
    bool eof;
};

/* Connects to 127.0.0.1:port with fresh keys (cluster_key may be NULL). */
void raw_connect(struct raw *r, uint16_t port, const uint8_t *cluster_key);
void raw_close(struct raw *r);
/* Writes all of data (pumping the loop while the socket is full). */
void raw_write(struct raw *r, struct event_base *b, const void *data, size_t len);
void raw_send_record(struct raw *r, struct event_base *b, const uint8_t *body, size_t len);
/* Waits up to ms for one whole record (u32 length + body); 0 and the body on
 * success, -1 if the peer closed first, -2 on timeout. */
int raw_recv_record(
    struct raw *r, struct event_base *b, uint8_t *body, size_t cap, size_t *len, int ms);
/* Waits up to ms for the peer to close; true if it did (data before the
 * close is discarded and counted in *extra when not NULL). */
bool raw_wait_closed(struct raw *r, struct event_base *b, int ms, size_t *extra);
/* The whole dialer handshake; asserts it succeeds. */
void raw_handshake(struct raw *r, struct event_base *b);
/* Seals a frame with the raw peer's tx cipher into out (cap bytes); returns
 * its size. */
size_t
raw_seal(struct raw *r, uint8_t type, const void *payload, size_t len, uint8_t *out, size_t cap);

#endif
