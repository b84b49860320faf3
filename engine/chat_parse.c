/* engine/chat_parse.c: the incremental output parser behind chat_parse.h.
 *
 * All input goes into one pending buffer; process() decides as much of it as
 * it can and keeps the rest: a tail that may still become a marker, newlines
 * that are dropped if a marker follows them, an incomplete UTF-8 character,
 * or the body of a tool call until its end marker. States:
 *
 *   CONTENT --<think>--> REASONING --</think>--> CONTENT
 *   CONTENT --<tool_call>--> CALL --</tool_call>--> CONTENT          (hermes)
 *   CONTENT --"{" first--> LLAMA_JSON (to the end)                   (llama31)
 *   CONTENT --<|python_tag|>--> PYTAG (to the end)                   (llama31)
 *   CONTENT --calls_begin--> DS_CALLS --call_begin--> DS_CALL
 *           DS_CALL --call_end--> DS_CALLS --calls_end--> CONTENT    (deepseek)
 */
#include "engine/chat_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/json.h"
#include "common/util.h"

#define M_THINK     "<think>"
#define M_THINK_END "</think>"
#define M_CALL      "<tool_call>"
#define M_CALL_END  "</tool_call>"
#define M_PYTAG     "<|python_tag|>"
#define M_DS_CALLS                                                                                 \
    "<\xef\xbd\x9ctool\xe2\x96\x81"                                                                \
    "calls\xe2\x96\x81"                                                                            \
    "begin\xef\xbd\x9c>"
#define M_DS_CALLS_END                                                                             \
    "<\xef\xbd\x9ctool\xe2\x96\x81"                                                                \
    "calls\xe2\x96\x81"                                                                            \
    "end\xef\xbd\x9c>"
#define M_DS_CALL                                                                                  \
    "<\xef\xbd\x9ctool\xe2\x96\x81"                                                                \
    "call\xe2\x96\x81"                                                                             \
    "begin\xef\xbd\x9c>"
#define M_DS_CALL_END                                                                              \
    "<\xef\xbd\x9ctool\xe2\x96\x81"                                                                \
    "call\xe2\x96\x81"                                                                             \
    "end\xef\xbd\x9c>"
#define M_DS_SEP                                                                                   \
    "<\xef\xbd\x9ctool\xe2\x96\x81"                                                                \
    "sep\xef\xbd\x9c>"

enum state {
    S_CONTENT,
    S_REASONING,
    S_CALL,
    S_LLAMA_JSON,
    S_PYTAG,
    S_DS_CALLS,
    S_DS_CALL,
};

struct eng_chat_parser {
    struct eng_chat_parse_opts o;
    enum state st;
    struct sh_strbuf buf; /* undecided input */
    bool at_start;        /* nothing but whitespace seen in content yet */
    bool skip_nl;         /* drop newlines at the start of the next text */
    unsigned ncalls;
    eng_chat_event_fn fn;
    void *arg;
    struct sh_err *err;
};

void eng_chat_parse_detect(const char *src,
                           const char *prompt,
                           bool tools,
                           struct eng_chat_parse_opts *out)
{
    memset(out, 0, sizeof *out);
    out->tools = tools;
    src = src ? src : "";
    if (strstr(src, M_CALL))
        out->format = ENG_CHAT_FMT_HERMES;
    else if (strstr(src, M_DS_CALLS))
        out->format = ENG_CHAT_FMT_DEEPSEEK_V3;
    else if (strstr(src, M_PYTAG))
        out->format = ENG_CHAT_FMT_LLAMA31;
    out->reasoning = strstr(src, M_THINK) != NULL;
    if (out->reasoning && prompt) {
        /* the prompt's last <think> not closed after it */
        const char *open = NULL, *p = prompt;
        while ((p = strstr(p, M_THINK)) != NULL)
            open = p++;
        out->starts_in_reasoning = open && !strstr(open, M_THINK_END);
    }
}

int eng_chat_parser_new(const struct eng_chat_parse_opts *opts,
                        struct eng_chat_parser **out,
                        struct sh_err *err)
{
    struct eng_chat_parser *p = calloc(1, sizeof *p);
    if (!p)
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    p->o = *opts;
    p->st = opts->reasoning && opts->starts_in_reasoning ? S_REASONING : S_CONTENT;
    p->skip_nl = p->st == S_REASONING;
    p->at_start = true;
    sh_strbuf_init(&p->buf, ENG_CHAT_MAX_CALL);
    /* the buffer always exists, so scanning never meets NULL */
    if (sh_strbuf_append(&p->buf, "", 0)) {
        free(p);
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    }
    *out = p;
    return 0;
}

void eng_chat_parser_free(struct eng_chat_parser *p)
{
    if (!p)
        return;
    sh_strbuf_free(&p->buf);
    free(p);
}

/* ---- events ----------------------------------------------------------------- */
static int
emit_text(struct eng_chat_parser *p, enum eng_chat_event_type type, const char *s, size_t n)
{
    struct eng_chat_event ev = {.type = type, .text = s, .len = n};
    if (p->skip_nl) {
        while (n > 0 && *s == '\n') {
            s++;
            n--;
        }
        if (n == 0)
            return 0;
        p->skip_nl = false;
        ev.text = s;
        ev.len = n;
    }
    if (n == 0)
        return 0;
    if (type == ENG_CHAT_EV_CONTENT)
        p->at_start = false;
    return p->fn(p->arg, &ev);
}

static int emit_call(struct eng_chat_parser *p, const char *name, const char *args)
{
    char id[32];
    struct eng_chat_event ev = {
        .type = ENG_CHAT_EV_TOOL_CALL, .name = name, .arguments = args, .id = id};
    snprintf(id, sizeof id, "call_%u", p->ncalls++);
    return p->fn(p->arg, &ev);
}

static int emit_error(struct eng_chat_parser *p, const char *raw, size_t n, const char *why)
{
    char id[32];
    struct eng_chat_event ev = {
        .type = ENG_CHAT_EV_TOOL_ERROR, .text = raw, .len = n, .error = why, .id = id};
    snprintf(id, sizeof id, "call_%u", p->ncalls++);
    return p->fn(p->arg, &ev);
}

/* ---- JSON calls ------------------------------------------------------------ */
static const char *skip_ws(const char *s, const char *end)
{
    while (s < end && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
        s++;
    return s;
}

/* End of the JSON value at s (the text is known to be valid JSON). */
static const char *skip_value(const char *s, const char *end)
{
    int depth = 0;
    while (s < end) {
        char c = *s;
        if (c == '"') {
            for (s++; s < end && *s != '"'; s++)
                if (*s == '\\')
                    s++;
            s++;
        } else if (c == '{' || c == '[') {
            depth++;
            s++;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                return s;
            depth--;
            s++;
        } else if (depth == 0 && (c == ',' || c == ' ' || c == '\n' || c == '\t' || c == '\r')) {
            return s;
        } else {
            s++;
        }
        if (depth == 0 && (c == '"' || c == '}' || c == ']'))
            return s < end ? s : end;
    }
    return end;
}

/* [*b, *e) = the raw text of top-level key `key` of the object in [s, end). */
static bool
raw_member(const char *s, const char *end, const char *key, const char **b, const char **e)
{
    size_t kl = strlen(key);
    s = skip_ws(s, end);
    if (s >= end || *s != '{')
        return false;
    s++;
    for (;;) {
        const char *k, *ke, *v;
        s = skip_ws(s, end);
        if (s >= end || *s != '"')
            return false;
        k = s + 1;
        ke = skip_value(s, end) - 1;
        s = skip_ws(ke + 1, end);
        if (s >= end || *s != ':')
            return false;
        v = skip_ws(s + 1, end);
        s = skip_value(v, end);
        if ((size_t)(ke - k) == kl && !memcmp(k, key, kl)) {
            *b = v;
            *e = s;
            return true;
        }
        s = skip_ws(s, end);
        if (s >= end || *s != ',')
            return false;
        s++;
    }
}

/* {"name": ..., "arguments"|"parameters": {...}} -> a call event or an error. */
static int json_call(struct eng_chat_parser *p, const char *raw, size_t n)
{
    struct sh_err jerr;
    cJSON *root = NULL;
    const cJSON *name, *args;
    const char *akey = "arguments", *b, *e;
    char *argtext = NULL;
    int rc;

    if (sh_json_parse(raw, n, "tool call", &root, &jerr))
        return emit_error(p, raw, n, jerr.msg);
    name = cJSON_GetObjectItemCaseSensitive(root, "name");
    args = cJSON_GetObjectItemCaseSensitive(root, "arguments");
    if (!args) {
        args = cJSON_GetObjectItemCaseSensitive(root, "parameters");
        akey = "parameters";
    }
    if (!cJSON_IsObject(root) || !cJSON_IsString(name)) {
        cJSON_Delete(root);
        return emit_error(p, raw, n, "tool call: expected an object with a string \"name\"");
    }
    if (!args) {
        argtext = strdup("{}");
    } else if (cJSON_IsString(args)) {
        /* arguments given as a JSON string holding the object */
        argtext = strdup(args->valuestring);
    } else if (raw_member(raw, raw + n, akey, &b, &e)) {
        argtext = strndup(b, (size_t)(e - b));
    } else {
        argtext = cJSON_PrintUnformatted(args);
    }
    if (!argtext) {
        cJSON_Delete(root);
        return sh_err_set(p->err, SH_ENOMEM, "out of memory");
    }
    rc = emit_call(p, name->valuestring, argtext);
    free(argtext);
    cJSON_Delete(root);
    return rc;
}

/* Llama's builtin form: name.call(key="value", n=1) */
static int python_call(struct eng_chat_parser *p, const char *raw, size_t n)
{
    const char *s = raw, *end = raw + n, *dot;
    char *name = NULL, *args = NULL;
    cJSON *obj = cJSON_CreateObject();
    int rc;

    if (!obj)
        return sh_err_set(p->err, SH_ENOMEM, "out of memory");
    dot = memchr(s, '.', n);
    if (!dot || end - dot < 7 || memcmp(dot, ".call(", 6) != 0 || end[-1] != ')')
        goto bad;
    for (const char *q = s; q < dot; q++)
        if (!(*q == '_' || (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
              (*q >= '0' && *q <= '9')))
            goto bad;
    s = dot + 6;
    end--; /* the ')' */
    while ((s = skip_ws(s, end)) < end) {
        const char *k = s, *ke;
        char key[128];
        while (s < end && (*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                           (*s >= '0' && *s <= '9')))
            s++;
        ke = s;
        s = skip_ws(s, end);
        if (ke == k || (size_t)(ke - k) >= sizeof key || s >= end || *s != '=')
            goto bad;
        memcpy(key, k, (size_t)(ke - k));
        key[ke - k] = '\0';
        s = skip_ws(s + 1, end);
        if (s < end && (*s == '"' || *s == '\'')) {
            char q = *s++;
            const char *vb = s;
            char *val;
            while (s < end && *s != q)
                s++;
            if (s >= end)
                goto bad;
            val = strndup(vb, (size_t)(s - vb));
            if (!val || !cJSON_AddStringToObject(obj, key, val)) {
                free(val);
                goto bad;
            }
            free(val);
            s++;
        } else {
            const char *vb = s;
            char num[64];
            double d;
            while (s < end && *s != ',' && *s != ' ')
                s++;
            if (s == vb || (size_t)(s - vb) >= sizeof num)
                goto bad;
            memcpy(num, vb, (size_t)(s - vb));
            num[s - vb] = '\0';
            if (!sh_parse_double(num, -1e308, 1e308, &d) || !cJSON_AddNumberToObject(obj, key, d))
                goto bad;
        }
        s = skip_ws(s, end);
        if (s < end && *s == ',')
            s++;
    }
    name = strndup(raw, (size_t)(dot - raw));
    args = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (!name || !args) {
        free(name);
        free(args);
        return sh_err_set(p->err, SH_ENOMEM, "out of memory");
    }
    rc = emit_call(p, name, args);
    free(name);
    free(args);
    return rc;
bad:
    cJSON_Delete(obj);
    return emit_error(p, raw, n, "python_tag: expected JSON or name.call(key=value, ...)");
}

/* DeepSeek V3: TYPE<｜tool▁sep｜>NAME\n```json\nARGS\n``` */
static int ds_call(struct eng_chat_parser *p, const char *raw, size_t n)
{
    const char *end = raw + n, *sep = memmem(raw, n, M_DS_SEP, strlen(M_DS_SEP)), *nl, *a, *ae;
    struct sh_err jerr;
    cJSON *root = NULL;
    char *name, *args;
    int rc;

    if (!sep)
        return emit_error(p, raw, n, "deepseek tool call: missing tool separator");
    sep += strlen(M_DS_SEP);
    nl = memchr(sep, '\n', (size_t)(end - sep));
    if (!nl)
        return emit_error(p, raw, n, "deepseek tool call: missing arguments");
    a = skip_ws(nl, end);
    if ((size_t)(end - a) >= 7 && !memcmp(a, "```json", 7))
        a += 7;
    else if ((size_t)(end - a) >= 3 && !memcmp(a, "```", 3))
        a += 3;
    ae = end;
    while (ae > a && (ae[-1] == '\n' || ae[-1] == ' ' || ae[-1] == '\r'))
        ae--;
    if (ae - a >= 3 && !memcmp(ae - 3, "```", 3))
        ae -= 3;
    a = skip_ws(a, ae);
    while (ae > a && (ae[-1] == '\n' || ae[-1] == ' ' || ae[-1] == '\r'))
        ae--;
    if (sh_json_parse(a, (size_t)(ae - a), "tool call arguments", &root, &jerr))
        return emit_error(p, raw, n, jerr.msg);
    cJSON_Delete(root);
    name = strndup(sep, (size_t)(nl - sep));
    args = strndup(a, (size_t)(ae - a));
    if (!name || !args) {
        free(name);
        free(args);
        return sh_err_set(p->err, SH_ENOMEM, "out of memory");
    }
    rc = emit_call(p, name, args);
    free(name);
    free(args);
    return rc;
}

static int finish_llama(struct eng_chat_parser *p, const char *raw, size_t n, bool pytag)
{
    const char *b = skip_ws(raw, raw + n), *e = raw + n;
    while (e > b && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\t' || e[-1] == '\r'))
        e--;
    if (b < e && *b == '{') {
        cJSON *root = NULL;
        struct sh_err jerr;
        bool named;
        /* a JSON message is a call when it names one; other JSON is content */
        if (sh_json_parse(b, (size_t)(e - b), "tool call", &root, &jerr) == 0) {
            named = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "name"));
            cJSON_Delete(root);
            if (named || pytag)
                return json_call(p, b, (size_t)(e - b));
        } else if (pytag || (size_t)(e - b) < 8 || !memcmp(skip_ws(b + 1, e), "\"name\"", 6)) {
            return emit_error(p, b, (size_t)(e - b), jerr.msg);
        }
        return emit_text(p, ENG_CHAT_EV_CONTENT, raw, n);
    }
    if (pytag)
        return python_call(p, b, (size_t)(e - b));
    return emit_text(p, ENG_CHAT_EV_CONTENT, raw, n);
}

/* ---- scanning --------------------------------------------------------------- */
struct marker {
    const char *s;
    int next; /* state after it */
};

/* Markers active in a state (at most 4). */
static size_t markers(const struct eng_chat_parser *p, struct marker *m)
{
    size_t k = 0;
    bool tools = p->o.tools;
    switch (p->st) {
    case S_CONTENT:
        if (p->o.reasoning)
            m[k++] = (struct marker){M_THINK, S_REASONING};
        if (tools && p->o.format == ENG_CHAT_FMT_HERMES)
            m[k++] = (struct marker){M_CALL, S_CALL};
        if (tools && p->o.format == ENG_CHAT_FMT_DEEPSEEK_V3)
            m[k++] = (struct marker){M_DS_CALLS, S_DS_CALLS};
        if (tools && p->o.format == ENG_CHAT_FMT_LLAMA31)
            m[k++] = (struct marker){M_PYTAG, S_PYTAG};
        break;
    case S_REASONING:
        m[k++] = (struct marker){M_THINK_END, S_CONTENT};
        break;
    case S_CALL:
        m[k++] = (struct marker){M_CALL_END, S_CONTENT};
        break;
    case S_DS_CALLS:
        m[k++] = (struct marker){M_DS_CALL, S_DS_CALL};
        m[k++] = (struct marker){M_DS_CALLS_END, S_CONTENT};
        break;
    case S_DS_CALL:
        m[k++] = (struct marker){M_DS_CALL_END, S_DS_CALLS};
        break;
    default:
        break;
    }
    return k;
}

/* Length of the longest tail of s[0..n) that is a proper prefix of a marker. */
static size_t partial_tail(const char *s, size_t n, const struct marker *m, size_t nm)
{
    size_t best = 0;
    for (size_t i = 0; i < nm; i++) {
        size_t ml = strlen(m[i].s);
        for (size_t l = ml - 1 < n ? ml - 1 : n; l > best; l--)
            if (!memcmp(s + n - l, m[i].s, l)) {
                best = l;
                break;
            }
    }
    return best;
}

/* Bytes of an incomplete UTF-8 character at the end of s[0..n). */
static size_t utf8_tail(const char *s, size_t n)
{
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        unsigned char c = (unsigned char)s[n - k];
        if ((c & 0xC0) == 0x80)
            continue;
        if (c >= 0xC0) {
            size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            return need > k ? k : 0;
        }
        return 0;
    }
    return 0;
}

static void consume(struct eng_chat_parser *p, size_t n)
{
    memmove(p->buf.buf, p->buf.buf + n, p->buf.len - n);
    p->buf.len -= n;
    p->buf.buf[p->buf.len] = '\0';
}

/* Text of a content/reasoning state: up to a marker, or as far as decidable. */
static int scan_text(struct eng_chat_parser *p, bool final, bool *progress)
{
    struct marker m[4];
    size_t nm = markers(p, m), n = p->buf.len, best = n, bl = 0, emit_n, trail;
    const char *s = p->buf.buf;
    int next = -1, rc;
    enum eng_chat_event_type type =
        p->st == S_REASONING ? ENG_CHAT_EV_REASONING : ENG_CHAT_EV_CONTENT;

    if (p->st == S_CONTENT && p->at_start && p->o.tools && p->o.format == ENG_CHAT_FMT_LLAMA31) {
        const char *b = skip_ws(s, s + n);
        if (b < s + n && *b == '{') {
            p->st = S_LLAMA_JSON;
            *progress = true;
            return 0;
        }
        if (b == s + n && !final)
            return 0; /* only whitespace so far: undecided */
    }
    for (size_t i = 0; i < nm; i++) {
        const char *hit = memmem(s, n, m[i].s, strlen(m[i].s));
        if (hit && (size_t)(hit - s) < best) {
            best = (size_t)(hit - s);
            bl = strlen(m[i].s);
            next = m[i].next;
        }
    }
    if (next >= 0) {
        /* newlines before a marker belong to the template's layout */
        emit_n = best;
        while (emit_n > 0 && s[emit_n - 1] == '\n')
            emit_n--;
        if ((rc = emit_text(p, type, s, emit_n)) != 0)
            return rc;
        consume(p, best + bl);
        p->st = (enum state)next;
        p->skip_nl = p->st != S_LLAMA_JSON;
        *progress = true;
        return 0;
    }
    if (final) {
        rc = emit_text(p, type, s, n);
        consume(p, n);
        return rc;
    }
    emit_n = n - partial_tail(s, n, m, nm);
    emit_n -= utf8_tail(s, emit_n);
    trail = 0;
    while (trail < emit_n && s[emit_n - 1 - trail] == '\n')
        trail++;
    emit_n -= trail;
    if (emit_n == 0)
        return 0;
    if ((rc = emit_text(p, type, s, emit_n)) != 0)
        return rc;
    consume(p, emit_n);
    *progress = true;
    return 0;
}

static int process(struct eng_chat_parser *p, bool final)
{
    bool progress = true;
    int rc = 0;
    while (progress && !rc) {
        struct marker m[4];
        size_t nm;
        progress = false;
        switch (p->st) {
        case S_CONTENT:
        case S_REASONING:
            rc = scan_text(p, final, &progress);
            break;
        case S_CALL:
        case S_DS_CALL: {
            const char *end;
            nm = markers(p, m);
            end = memmem(p->buf.buf, p->buf.len, m[0].s, strlen(m[0].s));
            if (!end && !final)
                break;
            {
                size_t n = end ? (size_t)(end - p->buf.buf) : p->buf.len;
                const char *b = skip_ws(p->buf.buf, p->buf.buf + n);
                size_t bn = n - (size_t)(b - p->buf.buf);
                while (bn > 0 && (b[bn - 1] == '\n' || b[bn - 1] == ' '))
                    bn--;
                if (p->st == S_CALL)
                    rc = bn ? json_call(p, b, bn) : emit_error(p, b, 0, "empty tool call");
                else
                    rc = ds_call(p, b, bn);
                consume(p, end ? n + strlen(m[0].s) : n);
                p->st = (enum state)m[0].next;
                p->skip_nl = true;
                progress = end != NULL;
            }
            break;
        }
        case S_DS_CALLS: {
            const char *s = p->buf.buf, *hit = NULL;
            int next = -1;
            nm = markers(p, m);
            for (size_t i = 0; i < nm; i++) {
                const char *h = memmem(s, p->buf.len, m[i].s, strlen(m[i].s));
                if (h && (!hit || h < hit)) {
                    hit = h;
                    next = m[i].next;
                }
            }
            if (hit) {
                /* text between calls is layout */
                consume(p,
                        (size_t)(hit - s) + strlen(next == S_DS_CALL ? M_DS_CALL : M_DS_CALLS_END));
                p->st = (enum state)next;
                p->skip_nl = true;
                progress = true;
            } else if (final) {
                consume(p, p->buf.len);
            }
            break;
        }
        case S_LLAMA_JSON:
        case S_PYTAG:
            if (final) {
                rc = finish_llama(p, p->buf.buf, p->buf.len, p->st == S_PYTAG);
                consume(p, p->buf.len);
            }
            break;
        }
    }
    return rc;
}

int eng_chat_parser_feed(struct eng_chat_parser *p,
                         const char *text,
                         size_t n,
                         eng_chat_event_fn fn,
                         void *arg,
                         struct sh_err *err)
{
    int rc = sh_strbuf_append(&p->buf, text, n);
    if (rc == SH_ETOOBIG)
        return sh_err_set(err, rc,
                          "model output: more than %u undecided bytes (an unterminated "
                          "tool call?)",
                          ENG_CHAT_MAX_CALL);
    if (rc)
        return sh_err_set(err, rc, "out of memory");
    p->fn = fn;
    p->arg = arg;
    p->err = err;
    return process(p, false);
}

int eng_chat_parser_finish(struct eng_chat_parser *p,
                           eng_chat_event_fn fn,
                           void *arg,
                           struct sh_err *err)
{
    p->fn = fn;
    p->arg = arg;
    p->err = err;
    return process(p, true);
}
