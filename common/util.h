/* common/util.h: checked size math, whole-string number parsing, a bounded
 * string buffer and a little-endian byte cursor.
 *
 * Everything derived from a file, a peer or an HTTP body goes through the
 * checked helpers; nothing here logs or allocates behind the caller's back
 * except sh_strbuf, which owns its buffer (freed by sh_strbuf_free).
 */
#ifndef SH_UTIL_H
#define SH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- checked arithmetic: true on success, false on overflow (out untouched) */
static inline bool sh_mul_size(size_t a, size_t b, size_t *out)
{
    size_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return false;
    *out = r;
    return true;
}

static inline bool sh_add_size(size_t a, size_t b, size_t *out)
{
    size_t r;
    if (__builtin_add_overflow(a, b, &r))
        return false;
    *out = r;
    return true;
}

static inline bool sh_mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return false;
    *out = r;
    return true;
}

static inline bool sh_add_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    uint64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return false;
    *out = r;
    return true;
}

/* ---- number parsing: the whole string must be the number (no leading space,
 * no trailing junk, no empty string), within [min, max]. */
bool sh_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
bool sh_parse_u64(const char *s, uint64_t max, uint64_t *out);
bool sh_parse_double(const char *s, double min, double max, double *out);

/* ---- bounded string buffer. buf is always NUL-terminated once non-NULL. */
struct sh_strbuf {
    char *buf;  /* owned; NULL until the first append */
    size_t len; /* bytes used, excluding the NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* hard cap on len; appends past it fail with SH_ETOOBIG */
};

void sh_strbuf_init(struct sh_strbuf *sb, size_t max);
/* Grows the byte buffer *buf (*cap bytes allocated, NULL/0 at first) to hold
 * at least need bytes: the capacity starts at first and doubles, or becomes
 * exactly need where doubling would overflow. The growth behind
 * sh_strbuf_append, for buffers that keep their own length. Errors:
 * SH_ENOMEM (*buf and *cap unchanged). */
int sh_buf_grow(char **buf, size_t *cap, size_t need, size_t first);
/* Appends n bytes. Errors: SH_ETOOBIG (would pass max), SH_ENOMEM. On error
 * the buffer is unchanged. */
int sh_strbuf_append(struct sh_strbuf *sb, const void *data, size_t n);
int sh_strbuf_puts(struct sh_strbuf *sb, const char *s);
int sh_strbuf_printf(struct sh_strbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Returns the buffer (caller frees with free(); "" allocated if empty, NULL on
 * ENOMEM) and resets sb to empty. */
char *sh_strbuf_take(struct sh_strbuf *sb);
void sh_strbuf_reset(struct sh_strbuf *sb);
void sh_strbuf_free(struct sh_strbuf *sb);

/* ---- byte cursor over borrowed memory with a sticky error flag: once a read
 * would pass the end, every later read returns zeros and err stays true. */
struct sh_cursor {
    const uint8_t *p;
    const uint8_t *end;
    bool err;
};

static inline void sh_cursor_init(struct sh_cursor *c, const void *data, size_t len)
{
    c->p = (const uint8_t *)data;
    c->end = c->p + len;
    c->err = false;
}

static inline size_t sh_cursor_left(const struct sh_cursor *c)
{
    return c->err ? 0 : (size_t)(c->end - c->p);
}

/* Returns a pointer to the next n bytes and advances, or NULL (and sets err). */
static inline const uint8_t *sh_cursor_take(struct sh_cursor *c, size_t n)
{
    const uint8_t *r;
    if (c->err || (size_t)(c->end - c->p) < n) {
        c->err = true;
        return NULL;
    }
    r = c->p;
    c->p += n;
    return r;
}

static inline uint8_t sh_cursor_u8(struct sh_cursor *c)
{
    const uint8_t *b = sh_cursor_take(c, 1);
    return b ? b[0] : 0;
}

static inline uint32_t sh_cursor_u32(struct sh_cursor *c)
{
    const uint8_t *b = sh_cursor_take(c, 4);
    if (!b)
        return 0;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static inline uint64_t sh_cursor_u64(struct sh_cursor *c)
{
    const uint8_t *b = sh_cursor_take(c, 8);
    uint64_t v = 0;
    if (!b)
        return 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static inline void sh_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void sh_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Monotonic clock in nanoseconds / seconds (for drivers and CLIs; pure cores
 * get time passed in). */
uint64_t sh_now_ns(void);
double sh_now_s(void);

#endif
