/* tests/discovery/test_frame.c: encrypted frames on their own: round trip,
 * replay, reordering, tampering, and header lengths at the boundaries. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/util.h"
#include "discovery/internal.h"
#include "lib/test.h"

static void pair(struct disc_cipher *tx, struct disc_cipher *rx)
{
    randombytes_buf(tx->key, sizeof tx->key);
    tx->counter = 1;
    *rx = *tx;
}

/* Seals one frame into a fresh buffer (caller frees). */
static uint8_t *seal(struct disc_cipher *tx, uint8_t type, const char *text, size_t *size)
{
    size_t len = strlen(text);
    uint8_t *f = malloc(disc_frame_size(len));
    assert_non_null(f);
    assert_int_equal(disc_frame_seal(tx, type, text, len, f), 0);
    *size = disc_frame_size(len);
    return f;
}

static int open_copy(struct disc_cipher *rx,
                     const uint8_t *frame,
                     size_t size,
                     uint8_t *type,
                     char *text,
                     size_t cap)
{
    uint8_t *copy = malloc(size);
    const uint8_t *payload;
    size_t body_len, plen;
    int rc;

    assert_non_null(copy);
    memcpy(copy, frame, size);
    rc = disc_frame_body_len(copy, 1u << 20, &body_len, NULL);
    if (rc == 0 && body_len != size - DISC_FRAME_HDR)
        rc = SH_EMALFORMED;
    if (rc == 0)
        rc =
            disc_frame_open(rx, copy, copy + DISC_FRAME_HDR, body_len, type, &payload, &plen, NULL);
    if (rc == 0) {
        assert_true(plen < cap);
        memcpy(text, payload, plen);
        text[plen] = '\0';
    }
    free(copy);
    return rc;
}

static void round_trip(void **state)
{
    struct disc_cipher tx, rx;
    uint8_t *f, type = 0;
    size_t n;
    char text[64];

    (void)state;
    pair(&tx, &rx);
    f = seal(&tx, DISC_MSG_RAFT, "hello", &n);
    assert_int_equal(n, 4 + 1 + 5 + 16);
    assert_null(memmem(f, n, "hello", 5)); /* encrypted */
    assert_int_equal(open_copy(&rx, f, n, &type, text, sizeof text), 0);
    assert_int_equal(type, DISC_MSG_RAFT);
    assert_string_equal(text, "hello");
    assert_int_equal(rx.counter, 2);
    free(f);
    /* empty payload */
    f = seal(&tx, DISC_MSG_STATE, "", &n);
    assert_int_equal(open_copy(&rx, f, n, &type, text, sizeof text), 0);
    assert_int_equal(type, DISC_MSG_STATE);
    assert_string_equal(text, "");
    free(f);
}

static void replay_and_reorder_rejected(void **state)
{
    struct disc_cipher tx, rx;
    uint8_t *f1, *f2, type;
    size_t n1, n2;
    char text[64];

    (void)state;
    pair(&tx, &rx);
    f1 = seal(&tx, DISC_MSG_RAFT, "one", &n1);
    f2 = seal(&tx, DISC_MSG_RAFT, "two", &n2);
    /* reordered: two before one */
    assert_int_equal(open_copy(&rx, f2, n2, &type, text, sizeof text), SH_EUNAUTH);
    assert_int_equal(rx.counter, 1); /* a failure does not advance */
    assert_int_equal(open_copy(&rx, f1, n1, &type, text, sizeof text), 0);
    /* replayed */
    assert_int_equal(open_copy(&rx, f1, n1, &type, text, sizeof text), SH_EUNAUTH);
    assert_int_equal(open_copy(&rx, f2, n2, &type, text, sizeof text), 0);
    assert_string_equal(text, "two");
    free(f1);
    free(f2);
}

static void every_altered_byte_rejected(void **state)
{
    struct disc_cipher tx, rx;
    uint8_t *f, type;
    size_t n;
    char text[64];

    (void)state;
    pair(&tx, &rx);
    f = seal(&tx, DISC_MSG_RAFT, "some payload", &n);
    for (size_t i = 0; i < n; i++) {
        struct disc_cipher r = rx;
        f[i] ^= 0x01;
        assert_int_not_equal(open_copy(&r, f, n, &type, text, sizeof text), 0);
        f[i] ^= 0x01;
    }
    assert_int_equal(open_copy(&rx, f, n, &type, text, sizeof text), 0);
    /* a frame for the other direction (other key) does not open */
    struct disc_cipher other;
    pair(&other, &other);
    other.counter = 2;
    assert_int_not_equal(open_copy(&other, f, n, &type, text, sizeof text), 0);
    free(f);
}

static void header_lengths(void **state)
{
    static const struct {
        uint32_t len;
        int rc;
    } cases[] = {
        {0, SH_EMALFORMED},
        {1, SH_EMALFORMED},
        {16, SH_EMALFORMED},
        {17, 0}, /* type + tag, empty payload */
        {1000 + 17, 0},
        {1000 + 18, SH_ETOOBIG},
        {0x7fffffffu, SH_ETOOBIG},
        {0x80000000u, SH_ETOOBIG},
        {0xffffffffu, SH_ETOOBIG},
    };
    uint8_t hdr[4];
    size_t body = 0;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sh_err err;
        sh_err_clear(&err);
        sh_put_u32(hdr, cases[i].len);
        assert_int_equal(disc_frame_body_len(hdr, 1000, &body, &err), cases[i].rc);
        if (cases[i].rc == 0)
            assert_int_equal(body, cases[i].len);
        else
            assert_true(err.msg[0] != '\0');
    }
}

static void counter_exhaustion(void **state)
{
    struct disc_cipher tx, rx;
    uint8_t f[64];

    (void)state;
    pair(&tx, &rx);
    tx.counter = UINT64_MAX;
    assert_int_equal(disc_frame_seal(&tx, DISC_MSG_RAFT, "x", 1, f), SH_ERANGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(replay_and_reorder_rejected),
        cmocka_unit_test(every_altered_byte_rejected),
        cmocka_unit_test(header_lengths),
        cmocka_unit_test(counter_exhaustion),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
