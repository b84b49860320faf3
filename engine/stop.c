/* engine/stop.c: stop strings over streamed text (sampler.h, eng_stop_*).
 *
 * The matcher keeps the text not yet emitted in one buffer: the held tail of
 * earlier feeds, then the new text. It emits everything up to the longest
 * suffix that is still a proper prefix of some stop string (that suffix may
 * yet become a stop) and holds the rest. A stop counts where it is completed
 * first (earliest end; among stops ending together, the longest), which is
 * what a token-by-token stream sees, so the result does not depend on how
 * the text was cut into pieces.
 */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "engine/sampler.h"

/* The buffer starts with room for a stop string and a generous token piece,
 * so feeding token pieces never allocates. */
#define STOP_FEED_ROOM 4096

struct eng_stop {
    char **stops; /* owned copies */
    size_t *lens;
    size_t n;
    size_t max_len;
    char *buf; /* [held tail][new text] */
    size_t len;
    size_t cap;
    size_t emitted; /* bytes at the front of buf handed out by the last call */
    bool stopped;
    bool failed; /* a feed could not grow the buffer */
};

int eng_stop_new(const char *const *stops, size_t n, struct eng_stop **out, struct sh_err *err)
{
    struct eng_stop *st = calloc(1, sizeof *st);

    if (!st)
        return sh_err_set(err, SH_ENOMEM, "stop strings: out of memory");
    if (n) {
        st->stops = calloc(n, sizeof *st->stops);
        st->lens = calloc(n, sizeof *st->lens);
        if (!st->stops || !st->lens)
            goto nomem;
    }
    for (size_t i = 0; i < n; i++) {
        if (!stops[i] || !stops[i][0]) {
            eng_stop_free(st);
            return sh_err_set(err, SH_EINVAL, "stop string %zu is empty", i);
        }
        st->lens[i] = strlen(stops[i]);
        st->stops[i] = malloc(st->lens[i] + 1);
        if (!st->stops[i])
            goto nomem;
        memcpy(st->stops[i], stops[i], st->lens[i] + 1);
        st->n = i + 1;
        if (st->lens[i] > st->max_len)
            st->max_len = st->lens[i];
    }
    st->cap = st->max_len + STOP_FEED_ROOM;
    st->buf = malloc(st->cap);
    if (!st->buf)
        goto nomem;
    *out = st;
    return 0;
nomem:
    eng_stop_free(st);
    return sh_err_set(err, SH_ENOMEM, "stop strings: out of memory");
}

void eng_stop_free(struct eng_stop *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n; i++)
        free(st->stops[i]);
    free(st->stops);
    free(st->lens);
    free(st->buf);
    free(st);
}

bool eng_stop_failed(const struct eng_stop *st)
{
    return st->failed;
}

/* Drops what the last call emitted, so buf holds only the held tail. */
static void drop_emitted(struct eng_stop *st)
{
    if (st->emitted) {
        memmove(st->buf, st->buf + st->emitted, st->len - st->emitted);
        st->len -= st->emitted;
        st->emitted = 0;
    }
}

/* Length of the longest suffix of buf that is a proper prefix of a stop. */
static size_t held_suffix(const struct eng_stop *st)
{
    size_t best = 0;

    for (size_t i = 0; i < st->n; i++) {
        size_t k = st->lens[i] - 1;
        if (k > st->len)
            k = st->len;
        for (; k > best; k--) {
            if (memcmp(st->buf + st->len - k, st->stops[i], k) == 0) {
                best = k;
                break;
            }
        }
    }
    return best;
}

bool eng_stop_feed(
    struct eng_stop *st, const char *text, size_t len, const char **emit, size_t *emit_len)
{
    size_t need, stop_at = SIZE_MAX, stop_end = SIZE_MAX;

    *emit = st->buf;
    *emit_len = 0;
    if (st->stopped)
        return true;
    drop_emitted(st);
    if (!sh_add_size(st->len, len, &need)) {
        st->failed = st->stopped = true;
        return true;
    }
    if (need > st->cap) {
        size_t ncap = need + STOP_FEED_ROOM;
        char *nb = ncap > need ? realloc(st->buf, ncap) : NULL;
        if (!nb) {
            /* Nothing safe can be said about text we could not keep. */
            st->failed = st->stopped = true;
            return true;
        }
        st->buf = nb;
        st->cap = ncap;
        *emit = st->buf;
    }
    if (len)
        memcpy(st->buf + st->len, text, len);
    st->len = need;

    /* Every stop's first occurrence; the held tail holds no complete stop,
     * so any match ends in the new text. */
    for (size_t i = 0; i < st->n; i++) {
        const char *hit = memmem(st->buf, st->len, st->stops[i], st->lens[i]);
        size_t at, end;
        if (!hit)
            continue;
        at = (size_t)(hit - st->buf);
        end = at + st->lens[i];
        if (end < stop_end || (end == stop_end && at < stop_at)) {
            stop_at = at;
            stop_end = end;
        }
    }
    if (stop_at != SIZE_MAX) {
        st->stopped = true;
        *emit_len = stop_at;
        return true;
    }
    st->emitted = st->len - held_suffix(st);
    *emit_len = st->emitted;
    return false;
}

void eng_stop_flush(struct eng_stop *st, const char **emit, size_t *emit_len)
{
    *emit = st->buf;
    *emit_len = 0;
    if (st->stopped)
        return;
    drop_emitted(st);
    *emit_len = st->len;
    st->emitted = st->len;
}
