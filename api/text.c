/* api/text.c: small pure text helpers of the HTTP layer: UTF-8 cleaning of
 * model output, Go-style RFC 3339 timestamps, Ollama's human numbers, SSE
 * and NDJSON framing, and model-name resolution (api_model_resolve).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/internal.h"

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, <= U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp;

    if (c < 0x80)
        return c ? 1 : 0;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

char *api_utf8_clean(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t cap, o = 0;
    char *out;

    /* Worst case: every byte becomes the 3-byte U+FFFD. */
    if (!sh_mul_size(len, 3, &cap) || !sh_add_size(cap, 1, &cap) || !(out = malloc(cap)))
        return NULL;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i);
        if (n) {
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    out[o] = '\0';
    return out;
}

void api_rfc3339_nano(int64_t sec, long nsec, char out[API_RFC3339_LEN])
{
    time_t t = (time_t)sec;
    struct tm tm;
    size_t n;

    if (!gmtime_r(&t, &tm)) {
        snprintf(out, API_RFC3339_LEN, "1970-01-01T00:00:00Z");
        return;
    }
    n = strftime(out, API_RFC3339_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
    if (nsec > 0 && nsec < 1000000000L) {
        char frac[16];
        int len = snprintf(frac, sizeof frac, ".%09ld", nsec);
        while (len > 1 && frac[len - 1] == '0') /* Go trims trailing zeros */
            frac[--len] = '\0';
        snprintf(out + n, API_RFC3339_LEN - n, "%sZ", frac);
    } else {
        snprintf(out + n, API_RFC3339_LEN - n, "Z");
    }
}

void api_human_number(uint64_t b, char *out, size_t cap)
{
    double x;

    if (b >= 1000000000ull) {
        x = (double)b / 1e9;
        snprintf(out, cap, x == (double)(uint64_t)x ? "%.0fB" : "%.1fB", x);
    } else if (b >= 1000000ull) {
        x = (double)b / 1e6;
        snprintf(out, cap, x == (double)(uint64_t)x ? "%.0fM" : "%.2fM", x);
    } else if (b >= 1000ull) {
        snprintf(out, cap, "%.0fK", (double)b / 1e3);
    } else {
        snprintf(out, cap, "%llu", (unsigned long long)b);
    }
}

/* Appends pre + obj + post in one append, so a frame is whole or absent. */
static int frame(struct sh_strbuf *out, const char *pre, const cJSON *obj, const char *post)
{
    char *s = cJSON_PrintUnformatted(obj), *all;
    size_t n;
    int rc;

    if (!s)
        return SH_ENOMEM;
    n = strlen(pre) + strlen(s) + strlen(post);
    if (!(all = malloc(n + 1))) {
        free(s);
        return SH_ENOMEM;
    }
    snprintf(all, n + 1, "%s%s%s", pre, s, post);
    rc = sh_strbuf_append(out, all, n);
    free(all);
    free(s);
    return rc;
}

int api_sse_frame(struct sh_strbuf *out, const cJSON *obj)
{
    return frame(out, "data: ", obj, "\n\n");
}

int api_sse_done(struct sh_strbuf *out)
{
    return sh_strbuf_puts(out, "data: [DONE]\n\n");
}

int api_ndjson_line(struct sh_strbuf *out, const cJSON *obj)
{
    return frame(out, "", obj, "\n");
}

/* ---- model names --------------------------------------------------------- */

bool api_name_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

void api_ollama_name(const char *id, char *out, size_t cap)
{
    const char *slash = strrchr(id, '/');
    const char *tail = slash ? slash + 1 : id;

    snprintf(out, cap, strchr(tail, ':') ? "%s" : "%s:latest", id);
}

static bool matches(const struct api_model_info *m, const char *name, size_t len)
{
    if (api_name_eq(m->id, strlen(m->id), name, len))
        return true;
    for (size_t i = 0; i < m->n_aliases; i++)
        if (m->aliases[i] && api_name_eq(m->aliases[i], strlen(m->aliases[i]), name, len))
            return true;
    return false;
}

static bool name_syntax_ok(const char *name, size_t len)
{
    if (len == 0 || len > API_MAX_MODEL_NAME)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("._:/@+-", c)))
            return false;
    }
    return true;
}

int api_model_resolve(const struct api_model_info *models,
                      size_t n,
                      const char *name,
                      size_t *index)
{
    static const char latest[] = ":latest";
    size_t len = strlen(name), found = SIZE_MAX, hits = 0;
    const size_t ll = sizeof latest - 1;

    if (!name_syntax_ok(name, len))
        return SH_EINVAL;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            if (matches(&models[i], name, len)) {
                *index = i;
                return 0;
            }
        }
        /* "name:latest" is Ollama's spelling of the untagged name. */
        if (len > ll && api_name_eq(name + len - ll, ll, latest, ll))
            len -= ll;
        else
            break;
    }
    if (memchr(name, '/', len))
        return SH_ENOTFOUND;
    /* "qwen3-0.6b" for "Qwen/Qwen3-0.6B", when only one model has it. */
    for (size_t i = 0; i < n; i++) {
        const char *slash = strrchr(models[i].id, '/');
        if (slash && api_name_eq(slash + 1, strlen(slash + 1), name, len)) {
            found = i;
            hits++;
        }
    }
    if (hits != 1)
        return SH_ENOTFOUND;
    *index = found;
    return 0;
}
