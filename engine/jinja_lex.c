/* engine/jinja_lex.c: template text -> tokens, following Jinja2 3.1's lexer
 * (jinja2/lexer.py) with transformers' settings: trim_blocks (one newline
 * after a block or comment tag is dropped), lstrip_blocks (spaces and tabs
 * before a block or comment tag on its own line are dropped), `-` and `+`
 * whitespace control, {% raw %}, and the rule that `}}`/`%}` only close a
 * tag when brackets inside it are balanced. The caller has already turned
 * \r\n and \r into \n and dropped one trailing newline, as Jinja does. */
#include <stdio.h>
#include <string.h>

#include "engine/jinja_internal.h"

#define MAX_BRACKETS 64

struct lexer {
    struct jarena *a;
    const char *src;
    size_t len;
    size_t pos;
    /* line/col of offset `at`, advanced lazily */
    size_t at;
    uint32_t line;
    uint32_t col;
    struct jtoken *t;
    size_t n;
    size_t cap;
    struct sh_err *err;
};

static void locate(struct lexer *lx, size_t off, uint32_t *line, uint32_t *col)
{
    size_t i;
    if (off < lx->at) {
        lx->at = 0;
        lx->line = 1;
        lx->col = 1;
    }
    for (i = lx->at; i < off && i < lx->len; i++) {
        if (lx->src[i] == '\n') {
            lx->line++;
            lx->col = 1;
        } else if (((unsigned char)lx->src[i] & 0xC0) != 0x80) {
            lx->col++;
        }
    }
    lx->at = i;
    *line = lx->line;
    *col = lx->col;
}

static int fail(struct lexer *lx, size_t off, int code, const char *fmt, const char *arg)
{
    uint32_t line, col;
    char msg[160];
    locate(lx, off, &line, &col);
    snprintf(msg, sizeof msg, fmt, arg);
    return sh_err_set(lx->err, code, "line %u col %u: %s", line, col, msg);
}

static struct jtoken *emit(struct lexer *lx, uint8_t type, size_t off)
{
    struct jtoken *tk;
    if (lx->n == lx->cap) {
        size_t cap = lx->cap ? lx->cap * 2 : 256, bytes;
        struct jtoken *nt;
        if (!sh_mul_size(cap, sizeof *nt, &bytes) || !(nt = ja_alloc(lx->a, bytes)))
            return NULL;
        if (lx->n)
            memcpy(nt, lx->t, lx->n * sizeof *nt);
        lx->t = nt;
        lx->cap = cap;
    }
    tk = &lx->t[lx->n++];
    memset(tk, 0, sizeof *tk);
    tk->type = type;
    locate(lx, off, &tk->line, &tk->col);
    return tk;
}

/* Python whitespace (str.isspace) at p, or 0. */
static size_t space_at(const char *p, size_t n)
{
    size_t l;
    uint32_t cp;
    if (n == 0)
        return 0;
    cp = ju_decode(p, n, &l);
    return ju_isspace(cp) ? l : 0;
}

/* Length of s[0..n) with trailing Python whitespace removed. */
static size_t rstrip_len(const char *s, size_t n)
{
    while (n > 0) {
        size_t k = 1;
        /* step back over one code point */
        while (k < n && k < 4 && ((unsigned char)s[n - k] & 0xC0) == 0x80)
            k++;
        if (space_at(s + n - k, k) != k)
            break;
        n -= k;
    }
    return n;
}

static size_t skip_space(const char *s, size_t n, size_t pos)
{
    size_t l;
    while (pos < n && (l = space_at(s + pos, n - pos)) > 0)
        pos += l;
    return pos;
}

static int emit_text(struct lexer *lx, size_t off, size_t n)
{
    struct jtoken *tk;
    if (n == 0)
        return 0;
    tk = emit(lx, JT_TEXT, off);
    if (!tk)
        return sh_err_set(lx->err, SH_ENOMEM, "out of memory");
    tk->s = lx->src + off;
    tk->n = n;
    return 0;
}

/* The data before a tag, with `-` and lstrip_blocks applied. */
static size_t strip_before(const char *text, size_t n, char sign, bool lstrip, bool line_starting)
{
    if (sign == '-')
        return rstrip_len(text, n);
    if (sign != '+' && lstrip) {
        size_t l_pos = 0, i;
        for (i = n; i > 0; i--)
            if (text[i - 1] == '\n') {
                l_pos = i;
                break;
            }
        if ((l_pos > 0 || line_starting) && l_pos < n) {
            size_t end = skip_space(text, n, l_pos);
            if (end == n)
                return l_pos;
        }
    }
    return n;
}

/* Python string literal escapes (what unicode-escape decodes). */
static int lex_string(struct lexer *lx, size_t start, size_t *pos)
{
    const char *s = lx->src;
    char q = s[start], *out;
    size_t i = start + 1, o = 0;
    struct jtoken *tk;

    while (i < lx->len && s[i] != q) {
        if (s[i] == '\\' && i + 1 < lx->len)
            i++;
        i++;
    }
    if (i >= lx->len)
        return fail(lx, start, SH_EMALFORMED, "unterminated string%s", "");
    out = ja_alloc(lx->a, i - start + 1);
    if (!out)
        return sh_err_set(lx->err, SH_ENOMEM, "out of memory");
    for (size_t j = start + 1; j < i; j++) {
        char c = s[j];
        uint32_t cp = 0;
        int digits = 0;
        if (c != '\\') {
            out[o++] = c;
            continue;
        }
        c = s[++j];
        switch (c) {
        case '\n':
            continue;
        case '\\':
        case '\'':
        case '"':
            out[o++] = c;
            continue;
        case 'n':
            out[o++] = '\n';
            continue;
        case 't':
            out[o++] = '\t';
            continue;
        case 'r':
            out[o++] = '\r';
            continue;
        case 'a':
            out[o++] = '\a';
            continue;
        case 'b':
            out[o++] = '\b';
            continue;
        case 'f':
            out[o++] = '\f';
            continue;
        case 'v':
            out[o++] = '\v';
            continue;
        case 'x':
            digits = 2;
            break;
        case 'u':
            digits = 4;
            break;
        case 'U':
            digits = 8;
            break;
        case 'N':
            return fail(lx, j - 1, SH_EUNSUPPORTED, "string escape \\N{...} is not supported%s",
                        "");
        default:
            if (c >= '0' && c <= '7') {
                int k = 0;
                while (k < 3 && j < i && s[j] >= '0' && s[j] <= '7') {
                    cp = cp * 8 + (uint32_t)(s[j] - '0');
                    j++;
                    k++;
                }
                j--;
                o += ju_encode(cp, out + o);
                continue;
            }
            out[o++] = '\\';
            out[o++] = c;
            continue;
        }
        for (int k = 0; k < digits; k++) {
            char h = j + 1 < i ? s[j + 1] : '\0';
            int v = (h >= '0' && h <= '9')   ? h - '0'
                    : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                    : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                             : -1;
            if (v < 0)
                return fail(lx, j, SH_EMALFORMED, "truncated \\%s escape in string", "x/u/U");
            cp = cp * 16 + (uint32_t)v;
            j++;
        }
        if (cp > 0x10FFFF)
            return fail(lx, j, SH_EMALFORMED, "escape past U+10FFFF in string%s", "");
        o += ju_encode(cp, out + o);
    }
    out[o] = '\0';
    tk = emit(lx, JT_STRING, start);
    if (!tk)
        return sh_err_set(lx->err, SH_ENOMEM, "out of memory");
    tk->s = out;
    tk->n = o;
    *pos = i + 1;
    return 0;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* digits with single underscores between them: (\d+_)*\d+ */
static size_t digit_run(const char *s, size_t n, size_t p)
{
    size_t start = p;
    while (p < n && is_digit(s[p])) {
        p++;
        if (p + 1 < n && s[p] == '_' && is_digit(s[p + 1]))
            p++;
    }
    return p > start ? p : start;
}

static int lex_number(struct lexer *lx, size_t start, size_t *pos)
{
    const char *s = lx->src;
    size_t p = digit_run(s, lx->len, start), e;
    bool is_float = false;
    char buf[64];
    size_t bn = 0;
    struct jtoken *tk;

    if (s[start] == '0' && start + 2 < lx->len && strchr("xXoObB", s[start + 1]) &&
        s[start + 1] != '\0') {
        /* 0x.., 0o.., 0b.. with optional single underscores */
        int base = (s[start + 1] | 0x20) == 'x' ? 16 : (s[start + 1] | 0x20) == 'o' ? 8 : 2;
        uint64_t v = 0;
        size_t q = start + 2, digits = 0;
        for (; q < lx->len; q++) {
            int d = -1;
            char c = s[q];
            if (c == '_' && digits && q + 1 < lx->len && s[q + 1] != '_')
                continue;
            if (c >= '0' && c <= '9')
                d = c - '0';
            else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
                d = (c | 0x20) - 'a' + 10;
            if (d < 0 || d >= base)
                break;
            if (v > (uint64_t)INT64_MAX / (uint64_t)base)
                return fail(lx, start, SH_EUNSUPPORTED, "integer literal does not fit in 64 bits%s",
                            "");
            v = v * (uint64_t)base + (uint64_t)d;
            digits++;
        }
        if (digits && v <= (uint64_t)INT64_MAX) {
            if (!(tk = emit(lx, JT_INT, start)))
                return sh_err_set(lx->err, SH_ENOMEM, "out of memory");
            tk->i = (int64_t)v;
            *pos = q;
            return 0;
        }
    }
    if (start == 0 || s[start - 1] != '.') {
        if (p + 1 < lx->len && s[p] == '.' && is_digit(s[p + 1])) {
            p = digit_run(s, lx->len, p + 1);
            is_float = true;
        }
        e = p;
        if (e < lx->len && (s[e] == 'e' || s[e] == 'E')) {
            e++;
            if (e < lx->len && (s[e] == '+' || s[e] == '-'))
                e++;
            if (e < lx->len && is_digit(s[e])) {
                p = digit_run(s, lx->len, e);
                is_float = true;
            }
        }
    }
    if (!is_float)
        p = digit_run(s, lx->len, start);
    for (size_t i = start; i < p; i++) {
        if (s[i] == '_')
            continue;
        if (bn + 1 >= sizeof buf)
            return fail(lx, start, SH_EMALFORMED, "number literal too long%s", "");
        buf[bn++] = s[i];
    }
    buf[bn] = '\0';
    tk = emit(lx, is_float ? JT_FLOAT : JT_INT, start);
    if (!tk)
        return sh_err_set(lx->err, SH_ENOMEM, "out of memory");
    if (is_float) {
        if (!sh_parse_double(buf, -1e308 * 10, 1e308 * 10, &tk->f))
            return fail(lx, start, SH_EMALFORMED, "bad float literal '%s'", buf);
    } else if (!sh_parse_i64(buf, 0, INT64_MAX, &tk->i)) {
        return fail(lx, start, SH_EUNSUPPORTED, "integer literal '%s' does not fit in 64 bits",
                    buf);
    }
    *pos = p;
    return 0;
}

struct opdef {
    const char *s;
    uint8_t op;
};

static const struct opdef ops[] = {
    {"//", JO_FLOORDIV}, {"**", JO_POW},   {"==", JO_EQ},      {"!=", JO_NE},      {">=", JO_GE},
    {"<=", JO_LE},       {"+", JO_ADD},    {"-", JO_SUB},      {"/", JO_DIV},      {"*", JO_MUL},
    {"%", JO_MOD},       {"~", JO_TILDE},  {"[", JO_LBRACKET}, {"]", JO_RBRACKET}, {"(", JO_LPAREN},
    {")", JO_RPAREN},    {"{", JO_LBRACE}, {"}", JO_RBRACE},   {">", JO_GT},       {"<", JO_LT},
    {"=", JO_ASSIGN},    {".", JO_DOT},    {":", JO_COLON},    {"|", JO_PIPE},     {",", JO_COMMA},
    {";", JO_SEMICOLON},
};

static bool starts(const struct lexer *lx, size_t p, const char *s)
{
    size_t n = strlen(s);
    return p + n <= lx->len && memcmp(lx->src + p, s, n) == 0;
}

/* Tokens inside {{ }} or {% %} up to the closing tag; *line_starting tells
 * whether the closing match ended in a newline. */
static int lex_tag(struct lexer *lx, bool block, bool *line_starting)
{
    const char *s = lx->src;
    char stack[MAX_BRACKETS];
    size_t depth = 0, p = lx->pos;
    const char *close = block ? "%}" : "}}";

    for (;;) {
        size_t l;
        if (p >= lx->len)
            return fail(lx, p, SH_EMALFORMED, "unexpected end of template, expected '%s'", close);
        if (depth == 0) {
            size_t end = 0;
            bool ws = false, trim = false;
            if (block && starts(lx, p, "+%}")) {
                end = p + 3;
            } else if (s[p] == '-' && starts(lx, p + 1, close)) {
                end = p + 3;
                ws = true;
            } else if (starts(lx, p, close)) {
                end = p + 2;
                trim = block;
            }
            if (end) {
                struct jtoken *tk = emit(lx, block ? JT_BLOCK_END : JT_VAR_END, p);
                if (!tk)
                    return sh_err_set(lx->err, SH_ENOMEM, "out of memory");
                if (ws)
                    end = skip_space(s, lx->len, end);
                else if (trim && end < lx->len && s[end] == '\n')
                    end++;
                *line_starting = s[end - 1] == '\n';
                lx->pos = end;
                return 0;
            }
        }
        if ((l = space_at(s + p, lx->len - p)) > 0) {
            p += l;
            continue;
        }
        if (is_digit(s[p])) {
            int rc = lex_number(lx, p, &p);
            if (rc)
                return rc;
            continue;
        }
        if ((s[p] >= 'a' && s[p] <= 'z') || (s[p] >= 'A' && s[p] <= 'Z') || s[p] == '_') {
            size_t e = p;
            struct jtoken *tk;
            while (e < lx->len && ((s[e] >= 'a' && s[e] <= 'z') || (s[e] >= 'A' && s[e] <= 'Z') ||
                                   s[e] == '_' || is_digit(s[e])))
                e++;
            tk = emit(lx, JT_NAME, p);
            if (!tk || !(tk->s = ja_strndup(lx->a, s + p, e - p)))
                return sh_err_set(lx->err, SH_ENOMEM, "out of memory");
            tk->n = e - p;
            p = e;
            continue;
        }
        if (s[p] == '\'' || s[p] == '"') {
            int rc = lex_string(lx, p, &p);
            if (rc)
                return rc;
            continue;
        }
        {
            const struct opdef *od = NULL;
            struct jtoken *tk;
            for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
                if (starts(lx, p, ops[i].s)) {
                    od = &ops[i];
                    break;
                }
            if (!od) {
                char c[8] = {0};
                size_t cl;
                ju_decode(s + p, lx->len - p, &cl);
                memcpy(c, s + p, cl);
                return fail(lx, p, SH_EMALFORMED, "unexpected character '%s'", c);
            }
            if (od->op == JO_LPAREN || od->op == JO_LBRACKET || od->op == JO_LBRACE) {
                if (depth == MAX_BRACKETS)
                    return fail(lx, p, SH_ETOOBIG, "brackets nested deeper than %s", "64");
                stack[depth++] = od->op == JO_LPAREN ? ')' : od->op == JO_LBRACKET ? ']' : '}';
            } else if (od->op == JO_RPAREN || od->op == JO_RBRACKET || od->op == JO_RBRACE) {
                if (depth == 0)
                    return fail(lx, p, SH_EMALFORMED, "unexpected '%s'", od->s);
                if (stack[depth - 1] != od->s[0]) {
                    char want[2] = {stack[depth - 1], 0};
                    char msg[64];
                    snprintf(msg, sizeof msg, "unexpected '%s', expected '%s'", od->s, want);
                    return fail(lx, p, SH_EMALFORMED, "%s", msg);
                }
                depth--;
            }
            tk = emit(lx, JT_OP, p);
            if (!tk)
                return sh_err_set(lx->err, SH_ENOMEM, "out of memory");
            tk->op = od->op;
            p += strlen(od->s);
        }
    }
}

/* `{%[-+]?\s*raw\s*(-%}\s*|%})` at p: returns the end offset, or 0. */
static size_t raw_begin(const struct lexer *lx, size_t p)
{
    const char *s = lx->src;
    size_t q = p + 2;
    if (q < lx->len && (s[q] == '-' || s[q] == '+'))
        q++;
    q = skip_space(s, lx->len, q);
    if (!starts(lx, q, "raw"))
        return 0;
    q = skip_space(s, lx->len, q + 3);
    if (starts(lx, q, "-%}"))
        return skip_space(s, lx->len, q + 3);
    if (starts(lx, q, "%}"))
        return q + 2;
    return 0;
}

/* The raw body up to {% endraw %}: emitted as text. */
static int lex_raw(struct lexer *lx, size_t start, bool *line_starting)
{
    const char *s = lx->src;
    for (size_t p = start; p + 1 < lx->len; p++) {
        size_t q;
        char sign = 0;
        if (s[p] != '{' || s[p + 1] != '%')
            continue;
        q = p + 2;
        if (q < lx->len && (s[q] == '-' || s[q] == '+'))
            sign = s[q++];
        q = skip_space(s, lx->len, q);
        if (!starts(lx, q, "endraw"))
            continue;
        q = skip_space(s, lx->len, q + 6);
        if (starts(lx, q, "+%}")) {
            q += 3;
        } else if (starts(lx, q, "-%}")) {
            q = skip_space(s, lx->len, q + 3);
        } else if (starts(lx, q, "%}")) {
            q += 2;
            if (q < lx->len && s[q] == '\n')
                q++;
        } else {
            continue;
        }
        {
            int rc = emit_text(lx, start, strip_before(s + start, p - start, sign, true, false));
            if (rc)
                return rc;
        }
        *line_starting = s[q - 1] == '\n';
        lx->pos = q;
        return 0;
    }
    return fail(lx, start, SH_EMALFORMED, "missing end of raw directive%s", "");
}

int jlex(struct jarena *a, const char *src, size_t len, struct jtokens *out, struct sh_err *err)
{
    struct lexer lx = {.a = a, .src = src, .len = len, .line = 1, .col = 1, .err = err};
    bool line_starting = true;
    int rc;

    while (lx.pos < len) {
        size_t p = lx.pos, tag, data_end;
        char kind = 0, sign = 0;
        /* the next tag start */
        for (tag = p; tag + 1 < len; tag++)
            if (src[tag] == '{' &&
                (src[tag + 1] == '{' || src[tag + 1] == '%' || src[tag + 1] == '#'))
                break;
        if (tag + 1 >= len) {
            rc = emit_text(&lx, p, len - p);
            if (rc)
                return rc;
            break;
        }
        kind = src[tag + 1];
        if (tag + 2 < len && (src[tag + 2] == '-' || src[tag + 2] == '+'))
            sign = src[tag + 2];
        data_end = p + strip_before(src + p, tag - p, sign, kind != '{', line_starting);
        if ((rc = emit_text(&lx, p, data_end - p)) != 0)
            return rc;
        if (kind == '#') {
            size_t q = tag + 2, end = 0;
            for (; q + 1 < len; q++) {
                if ((src[q] == '-' || src[q] == '+') && starts(&lx, q + 1, "#}")) {
                    end = q + 3;
                    if (src[q] == '-')
                        end = skip_space(src, len, end);
                    break;
                }
                if (src[q] == '#' && src[q + 1] == '}') {
                    end = q + 2;
                    if (end < len && src[end] == '\n')
                        end++;
                    break;
                }
            }
            if (!end)
                return fail(&lx, tag, SH_EMALFORMED, "missing end of comment tag%s", "");
            line_starting = src[end - 1] == '\n';
            lx.pos = end;
            continue;
        }
        if (kind == '%') {
            size_t rb = raw_begin(&lx, tag);
            if (rb) {
                if ((rc = lex_raw(&lx, rb, &line_starting)) != 0)
                    return rc;
                continue;
            }
        }
        if (!emit(&lx, kind == '%' ? JT_BLOCK_BEGIN : JT_VAR_BEGIN, tag))
            return sh_err_set(err, SH_ENOMEM, "out of memory");
        lx.pos = tag + 2 + (sign ? 1 : 0);
        if ((rc = lex_tag(&lx, kind == '%', &line_starting)) != 0)
            return rc;
    }
    if (!emit(&lx, JT_EOF, len))
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    out->t = lx.t;
    out->n = lx.n;
    return 0;
}
