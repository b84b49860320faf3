/* common/util.c: number parsing, the bounded string buffer, clocks. */
#include "common/util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"

bool sh_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;

    if (!s || *s == '\0' || *s == ' ' || *s == '\t' || *s == '\n' || *s == '+')
        return false;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool sh_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    /* strtoull accepts "-1" and wraps it; refuse any sign outright. */
    if (!s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

bool sh_parse_double(const char *s, double min, double max, double *out)
{
    char *end;
    double v;

    if (!s || *s == '\0' || *s == ' ' || *s == '\t' || *s == '\n')
        return false;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || isnan(v) || v < min || v > max)
        return false;
    *out = v;
    return true;
}

void sh_strbuf_init(struct sh_strbuf *sb, size_t max)
{
    sb->buf = NULL;
    sb->len = 0;
    sb->cap = 0;
    sb->max = max;
}

int sh_buf_grow(char **buf, size_t *cap, size_t need, size_t first)
{
    size_t c = *cap ? *cap : first;
    char *nb;

    if (need <= *cap)
        return 0;
    while (c < need)
        c = c > SIZE_MAX / 2 ? need : c * 2;
    nb = realloc(*buf, c);
    if (!nb)
        return SH_ENOMEM;
    *buf = nb;
    *cap = c;
    return 0;
}

int sh_strbuf_append(struct sh_strbuf *sb, const void *data, size_t n)
{
    size_t need;

    if (!sh_add_size(sb->len, n, &need) || need > sb->max)
        return SH_ETOOBIG;
    if (sh_buf_grow(&sb->buf, &sb->cap, need + 1, 64))
        return SH_ENOMEM;
    if (n)
        memcpy(sb->buf + sb->len, data, n);
    sb->len = need;
    sb->buf[sb->len] = '\0';
    return 0;
}

int sh_strbuf_puts(struct sh_strbuf *sb, const char *s)
{
    return sh_strbuf_append(sb, s, strlen(s));
}

int sh_strbuf_printf(struct sh_strbuf *sb, const char *fmt, ...)
{
    char small[256];
    char *big = NULL;
    int n, rc;
    va_list ap;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return SH_EINVAL;
    if ((size_t)n < sizeof small)
        return sh_strbuf_append(sb, small, (size_t)n);
    big = malloc((size_t)n + 1);
    if (!big)
        return SH_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    rc = sh_strbuf_append(sb, big, (size_t)n);
    free(big);
    return rc;
}

char *sh_strbuf_take(struct sh_strbuf *sb)
{
    char *r = sb->buf;
    if (!r)
        r = calloc(1, 1);
    sb->buf = NULL;
    sb->len = 0;
    sb->cap = 0;
    return r;
}

void sh_strbuf_reset(struct sh_strbuf *sb)
{
    sb->len = 0;
    if (sb->buf)
        sb->buf[0] = '\0';
}

void sh_strbuf_free(struct sh_strbuf *sb)
{
    if (!sb)
        return;
    free(sb->buf);
    sb->buf = NULL;
    sb->len = 0;
    sb->cap = 0;
}

uint64_t sh_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double sh_now_s(void)
{
    return (double)sh_now_ns() / 1e9;
}
