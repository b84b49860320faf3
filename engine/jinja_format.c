/* engine/jinja_format.c: values as Python prints them: str() and repr()
 * (what {{ }} shows for numbers, lists and dicts), the shortest-round-trip
 * float repr, json.dumps as transformers' tojson calls it, and Python's two
 * formatting languages (`fmt % args`, str.format). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jinja_internal.h"

/* ---- formatting ------------------------------------------------------------ */
/* Python's float repr: the shortest digits that read back to the same double,
 * fixed notation for exponents in [-4, 16), else d.ddde+XX. */
void jv_fmt_float(double f, char *buf, size_t cap)
{
    char tmp[40], digits[24];
    int prec, exp10, nd = 0, pos = 0;
    const char *e;

    if (isnan(f)) {
        snprintf(buf, cap, "nan");
        return;
    }
    if (isinf(f)) {
        snprintf(buf, cap, f < 0 ? "-inf" : "inf");
        return;
    }
    if (f == 0.0) {
        snprintf(buf, cap, signbit(f) ? "-0.0" : "0.0");
        return;
    }
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f)
            break;
    }
    /* tmp: [-]d[.ddd]e[+-]XX */
    e = strchr(tmp, 'e');
    exp10 = atoi(e + 1);
    for (const char *p = tmp; p < e; p++)
        if (*p >= '0' && *p <= '9' && nd < (int)sizeof digits - 1)
            digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    if (f < 0)
        tmp[pos++] = '-';
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 >= 0) {
            for (int i = 0; i <= exp10; i++)
                tmp[pos++] = i < nd ? digits[i] : '0';
            tmp[pos++] = '.';
            if (nd > exp10 + 1)
                for (int i = exp10 + 1; i < nd; i++)
                    tmp[pos++] = digits[i];
            else
                tmp[pos++] = '0';
        } else {
            tmp[pos++] = '0';
            tmp[pos++] = '.';
            for (int i = 0; i < -exp10 - 1; i++)
                tmp[pos++] = '0';
            for (int i = 0; i < nd; i++)
                tmp[pos++] = digits[i];
        }
        tmp[pos] = '\0';
        snprintf(buf, cap, "%s", tmp);
        return;
    }
    tmp[pos++] = digits[0];
    if (nd > 1) {
        tmp[pos++] = '.';
        for (int i = 1; i < nd; i++)
            tmp[pos++] = digits[i];
    }
    tmp[pos] = '\0';
    snprintf(buf, cap, "%se%c%02d", tmp, exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
}

static int put(struct jout *o, size_t max, const char *s)
{
    return jout_put(o, max, s, strlen(s));
}

/* Python's str repr: single quotes unless the text has ' and no ". */
static int repr_str(struct jout *o, size_t max, const char *p, size_t n)
{
    bool has_sq = memchr(p, '\'', n) != NULL, has_dq = memchr(p, '"', n) != NULL;
    char q = (has_sq && !has_dq) ? '"' : '\'';
    size_t i = 0, l;
    int rc = jout_put(o, max, &q, 1);

    while (!rc && i < n) {
        uint32_t cp = ju_decode(p + i, n - i, &l);
        char esc[16];
        const char *e = NULL;
        if (cp == (uint32_t)q || cp == '\\') {
            esc[0] = '\\';
            esc[1] = (char)cp;
            esc[2] = '\0';
            e = esc;
        } else if (cp == '\n') {
            e = "\\n";
        } else if (cp == '\r') {
            e = "\\r";
        } else if (cp == '\t') {
            e = "\\t";
        } else if (cp < 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD) {
            snprintf(esc, sizeof esc, "\\x%02x", cp);
            e = esc;
        } else if (cp == 0x2028 || cp == 0x2029 || (cp >= 0x200B && cp <= 0x200F) ||
                   (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x2064) ||
                   cp == 0xFEFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0x1680 ||
                   (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F || cp == 0x205F || cp == 0x3000) {
            snprintf(esc, sizeof esc, "\\u%04x", cp);
            e = esc;
        }
        rc = e ? put(o, max, e) : jout_put(o, max, p + i, l);
        i += l;
    }
    return rc ? rc : jout_put(o, max, &q, 1);
}

static int fmt_scalar(struct jout *o, size_t max, const struct jv *v, bool repr)
{
    char buf[48];
    switch (v->type) {
    case JV_UNDEF:
        return repr ? put(o, max, "Undefined") : 0;
    case JV_NONE:
        return put(o, max, "None");
    case JV_BOOL:
        return put(o, max, v->u.b ? "True" : "False");
    case JV_INT:
        snprintf(buf, sizeof buf, "%lld", (long long)v->u.i);
        return put(o, max, buf);
    case JV_FLOAT:
        jv_fmt_float(v->u.f, buf, sizeof buf);
        return put(o, max, buf);
    case JV_STR:
        return repr ? repr_str(o, max, v->u.s.p, v->u.s.n) : jout_put(o, max, v->u.s.p, v->u.s.n);
    case JV_FUNC:
        return put(o, max, "<function>");
    case JV_LOOP:
        return put(o, max, "<LoopContext>");
    default:
        return SH_EINVAL;
    }
}

static int repr_depth(struct jout *o, size_t max, const struct jv *v, size_t depth)
{
    int rc;
    if (depth > 200)
        return SH_ERANGE; /* nesting; SH_ETOOBIG means the output cap */
    if (v->type == JV_LIST) {
        bool tup = v->flags & JV_F_TUPLE;
        rc = put(o, max, tup ? "(" : "[");
        for (size_t i = 0; !rc && i < v->u.l->n; i++) {
            if (i)
                rc = put(o, max, ", ");
            if (!rc)
                rc = repr_depth(o, max, &v->u.l->items[i], depth + 1);
        }
        if (!rc && tup && v->u.l->n == 1)
            rc = put(o, max, ",");
        return rc ? rc : put(o, max, tup ? ")" : "]");
    }
    if (v->type == JV_DICT || v->type == JV_NS) {
        rc = put(o, max, v->type == JV_NS ? "<Namespace {" : "{");
        for (size_t i = 0; !rc && i < v->u.d->n; i++) {
            if (i)
                rc = put(o, max, ", ");
            if (!rc)
                rc = repr_depth(o, max, &v->u.d->keys[i], depth + 1);
            if (!rc)
                rc = put(o, max, ": ");
            if (!rc)
                rc = repr_depth(o, max, &v->u.d->vals[i], depth + 1);
        }
        return rc ? rc : put(o, max, v->type == JV_NS ? "}>" : "}");
    }
    return fmt_scalar(o, max, v, true);
}

int jv_repr(struct jarena *a, struct jout *o, size_t max, const struct jv *v)
{
    (void)a;
    return repr_depth(o, max, v, 0);
}

int jv_str(struct jarena *a, struct jout *o, size_t max, const struct jv *v)
{
    if (v->type == JV_LIST || v->type == JV_DICT || v->type == JV_NS)
        return jv_repr(a, o, max, v);
    return fmt_scalar(o, max, v, false);
}

int jv_to_str(struct jarena *a, size_t max, const struct jv *v, struct jv *out)
{
    struct jout o = {0};
    char *p;
    int rc;
    if (v->type == JV_STR) {
        *out = *v;
        return 0;
    }
    rc = jv_str(a, &o, max, v);
    if (rc) {
        jout_free(&o);
        return rc;
    }
    p = ja_strndup(a, o.p ? o.p : "", o.n);
    *out = jv_strn(p, o.n);
    jout_free(&o);
    return p ? 0 : SH_ENOMEM;
}

/* ---- json.dumps ------------------------------------------------------------- */
static int json_str(struct jout *o, size_t max, const char *p, size_t n, bool ensure_ascii)
{
    size_t i = 0, l;
    int rc = put(o, max, "\"");
    while (!rc && i < n) {
        uint32_t cp = ju_decode(p + i, n - i, &l);
        char esc[16];
        const char *e = NULL;
        switch (cp) {
        case '"':
            e = "\\\"";
            break;
        case '\\':
            e = "\\\\";
            break;
        case '\n':
            e = "\\n";
            break;
        case '\r':
            e = "\\r";
            break;
        case '\t':
            e = "\\t";
            break;
        case '\b':
            e = "\\b";
            break;
        case '\f':
            e = "\\f";
            break;
        default:
            if (cp < 0x20 || (ensure_ascii && cp == 0x7F)) {
                snprintf(esc, sizeof esc, "\\u%04x", cp);
                e = esc;
            } else if (ensure_ascii && cp > 0x7F) {
                if (cp >= 0x10000) {
                    uint32_t c = cp - 0x10000;
                    snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xD800 + (c >> 10),
                             0xDC00 + (c & 0x3FF));
                } else {
                    snprintf(esc, sizeof esc, "\\u%04x", cp);
                }
                e = esc;
            }
        }
        rc = e ? put(o, max, e) : jout_put(o, max, p + i, l);
        i += l;
    }
    return rc ? rc : put(o, max, "\"");
}

static int json_newline(struct jout *o, size_t max, const struct jjson_opts *op, size_t level)
{
    int rc = put(o, max, "\n");
    for (size_t i = 0; !rc && i < level; i++)
        rc = jout_put(o, max, op->indent_str, op->indent_len);
    return rc;
}

/* A dict key as json.dumps converts it: str as is, numbers/bools/None to
 * their JSON text; anything else is a TypeError. */
static int json_key(
    struct jout *o, size_t max, const struct jv *k, const struct jjson_opts *op, struct sh_err *err)
{
    char buf[48];
    switch (k->type) {
    case JV_STR:
        return json_str(o, max, k->u.s.p, k->u.s.n, op->ensure_ascii);
    case JV_INT:
        snprintf(buf, sizeof buf, "\"%lld\"", (long long)k->u.i);
        return put(o, max, buf);
    case JV_FLOAT: {
        char f[40];
        jv_fmt_float(k->u.f, f, sizeof f);
        snprintf(buf, sizeof buf, "\"%s\"", f);
        return put(o, max, buf);
    }
    case JV_BOOL:
        return put(o, max, k->u.b ? "\"true\"" : "\"false\"");
    case JV_NONE:
        return put(o, max, "\"null\"");
    default:
        return sh_err_set(err, SH_EINVAL, "keys must be str, int, float, bool or None, not %s",
                          jv_type_name(k));
    }
}

static int
json_sorted_order(struct jarena *a, const struct jv_dict *d, size_t **order, struct sh_err *err)
{
    size_t *ix, bytes;
    if (!sh_mul_size(d->n ? d->n : 1, sizeof *ix, &bytes) || !(ix = ja_alloc(a, bytes)))
        return SH_ENOMEM;
    for (size_t i = 0; i < d->n; i++) {
        if (d->keys[i].type != JV_STR)
            return sh_err_set(err, SH_EINVAL, "tojson(sort_keys=true) needs string keys");
        ix[i] = i;
    }
    /* insertion sort: dicts in templates are small */
    for (size_t i = 1; i < d->n; i++) {
        size_t x = ix[i], j = i;
        int c;
        while (j > 0 && jv_order(&d->keys[ix[j - 1]], &d->keys[x], &c) && c > 0) {
            ix[j] = ix[j - 1];
            j--;
        }
        ix[j] = x;
    }
    *order = ix;
    return 0;
}

int jv_tojson(struct jarena *a,
              struct jout *o,
              size_t max,
              const struct jv *v,
              const struct jjson_opts *op,
              size_t depth,
              struct sh_err *err)
{
    char buf[48];
    int rc = 0;
    bool nl = op->indent_str != NULL;

    if (depth > 200)
        return sh_err_set(err, SH_ETOOBIG, "tojson: nesting deeper than 200");
    switch (v->type) {
    case JV_NONE:
        return put(o, max, "null");
    case JV_BOOL:
        return put(o, max, v->u.b ? "true" : "false");
    case JV_INT:
        snprintf(buf, sizeof buf, "%lld", (long long)v->u.i);
        return put(o, max, buf);
    case JV_FLOAT:
        if (isnan(v->u.f))
            return put(o, max, "NaN");
        if (isinf(v->u.f))
            return put(o, max, v->u.f < 0 ? "-Infinity" : "Infinity");
        jv_fmt_float(v->u.f, buf, sizeof buf);
        return put(o, max, buf);
    case JV_STR:
        return json_str(o, max, v->u.s.p, v->u.s.n, op->ensure_ascii);
    case JV_LIST:
        if (v->u.l->n == 0)
            return put(o, max, "[]");
        rc = put(o, max, "[");
        for (size_t i = 0; !rc && i < v->u.l->n; i++) {
            if (i)
                rc = jout_put(o, max, op->item_sep, op->item_sep_len);
            if (!rc && nl)
                rc = json_newline(o, max, op, depth + 1);
            if (!rc)
                rc = jv_tojson(a, o, max, &v->u.l->items[i], op, depth + 1, err);
        }
        if (!rc && nl)
            rc = json_newline(o, max, op, depth);
        return rc ? rc : put(o, max, "]");
    case JV_DICT: {
        size_t *order = NULL;
        const struct jv_dict *d = v->u.d;
        if (d->n == 0)
            return put(o, max, "{}");
        if (op->sort_keys && (rc = json_sorted_order(a, d, &order, err)) != 0)
            return rc;
        rc = put(o, max, "{");
        for (size_t i = 0; !rc && i < d->n; i++) {
            size_t k = order ? order[i] : i;
            if (i)
                rc = jout_put(o, max, op->item_sep, op->item_sep_len);
            if (!rc && nl)
                rc = json_newline(o, max, op, depth + 1);
            if (!rc)
                rc = json_key(o, max, &d->keys[k], op, err);
            if (!rc)
                rc = jout_put(o, max, op->key_sep, op->key_sep_len);
            if (!rc)
                rc = jv_tojson(a, o, max, &d->vals[k], op, depth + 1, err);
        }
        if (!rc && nl)
            rc = json_newline(o, max, op, depth);
        return rc ? rc : put(o, max, "}");
    }
    default:
        return sh_err_set(err, SH_EINVAL, "Object of type %s is not JSON serializable",
                          jv_type_name(v));
    }
}

/* ---- Python formatting ------------------------------------------------------ */
static int fmt_one(struct jrender *r,
                   const struct jnode *at,
                   struct jout *o,
                   char conv,
                   const char *flags,
                   int width,
                   int prec,
                   const struct jv *v)
{
    char cfmt[32], buf[512];
    if (conv == 's' || conv == 'r' || conv == 'a') {
        struct jout t = {0};
        size_t cps, pad;
        int rc = conv == 's' ? jv_str(r->ar, &t, r->ar->max, v) : jv_repr(r->ar, &t, r->ar->max, v);
        if (rc) {
            jout_free(&t);
            return jr_oom(r, at);
        }
        if (prec >= 0 && t.p)
            t.n = ju_cpoff(t.p, t.n, (size_t)prec);
        cps = t.p ? ju_cplen(t.p, t.n) : 0;
        pad = width > 0 && (size_t)width > cps ? (size_t)width - cps : 0;
        for (size_t k = 0; !strchr(flags, '-') && k < pad; k++)
            if (js_put(r, at, o, " ", 1))
                return jout_free(&t), -1;
        if (t.n && js_put(r, at, o, t.p, t.n))
            return jout_free(&t), -1;
        for (size_t k = 0; strchr(flags, '-') && k < pad; k++)
            if (js_put(r, at, o, " ", 1))
                return jout_free(&t), -1;
        jout_free(&t);
        return 0;
    }
    if (!jv_is_number(v))
        return jr_fail(r, at, SH_EINVAL, "%%%c format: a real number is required, not %s", conv,
                       jv_type_name(v));
    if (width > 400 || prec > 300)
        return jr_fail(r, at, SH_EUNSUPPORTED, "format width/precision above 400");
    if (strchr("diuxXoc", conv)) {
        long long iv = v->type == JV_FLOAT  ? (long long)v->u.f
                       : v->type == JV_BOOL ? v->u.b
                                            : (long long)v->u.i;
        if (conv == 'c') {
            char cb[4];
            return js_put(r, at, o, cb, ju_encode((uint32_t)iv & 0x1FFFFF, cb));
        }
        snprintf(cfmt, sizeof cfmt, "%%%s%s%sll%c", flags, width >= 0 ? "*" : "",
                 prec >= 0 ? ".*" : "", conv == 'u' || conv == 'i' ? 'd' : conv);
    } else if (strchr("eEfFgG", conv)) {
        snprintf(cfmt, sizeof cfmt, "%%%s%s%s%c", flags, width >= 0 ? "*" : "",
                 prec >= 0 ? ".*" : "", conv);
    } else {
        return jr_fail(r, at, SH_EUNSUPPORTED, "format conversion '%%%c' is not supported", conv);
    }
    {
        int n;
        bool isint = strchr("diuxXo", conv) != NULL;
        long long iv = v->type == JV_FLOAT  ? (long long)v->u.f
                       : v->type == JV_BOOL ? v->u.b
                                            : (long long)v->u.i;
        double dv = jv_as_double(v);
        if (width >= 0 && prec >= 0)
            n = isint ? snprintf(buf, sizeof buf, cfmt, width, prec, iv)
                      : snprintf(buf, sizeof buf, cfmt, width, prec, dv);
        else if (width >= 0)
            n = isint ? snprintf(buf, sizeof buf, cfmt, width, iv)
                      : snprintf(buf, sizeof buf, cfmt, width, dv);
        else if (prec >= 0)
            n = isint ? snprintf(buf, sizeof buf, cfmt, prec, iv)
                      : snprintf(buf, sizeof buf, cfmt, prec, dv);
        else
            n = isint ? snprintf(buf, sizeof buf, cfmt, iv) : snprintf(buf, sizeof buf, cfmt, dv);
        if (n < 0 || (size_t)n >= sizeof buf)
            return jr_fail(r, at, SH_EUNSUPPORTED, "formatted number too long");
        return js_put(r, at, o, buf, (size_t)n);
    }
}

int jpy_format(struct jrender *r,
               const struct jnode *at,
               const struct jv *fmt,
               const struct jv *args,
               struct jv *out)
{
    struct jout o = {0};
    const char *p = fmt->u.s.p, *end = p + fmt->u.s.n;
    size_t argi = 0;
    bool tuple = args->type == JV_LIST && (args->flags & JV_F_TUPLE);
    size_t nargs = tuple ? args->u.l->n : 1;

    while (p < end) {
        const char *pct = memchr(p, '%', (size_t)(end - p));
        char flags[8] = {0};
        int nf = 0, width = -1, prec = -1;
        const struct jv *v;
        if (!pct)
            pct = end;
        if (js_put(r, at, &o, p, (size_t)(pct - p)))
            return -1;
        if (pct == end)
            break;
        p = pct + 1;
        if (p < end && *p == '%') {
            if (js_put(r, at, &o, "%", 1))
                return -1;
            p++;
            continue;
        }
        if (p < end && *p == '(') {
            const char *close = memchr(p, ')', (size_t)(end - p));
            if (!close || args->type != JV_DICT)
                return jout_free(&o), jr_fail(r, at, SH_EINVAL, "format requires a mapping");
            v = jv_dict_get(args->u.d, p + 1, (size_t)(close - p - 1));
            if (!v)
                return jout_free(&o), jr_fail(r, at, SH_EINVAL, "format key '%.*s' missing",
                                              (int)(close - p - 1), p + 1);
            p = close + 1;
        } else {
            v = NULL;
        }
        while (p < end && strchr("-+ #0", *p) && nf < 6)
            flags[nf++] = *p++;
        while (p < end && *p >= '0' && *p <= '9' && width < 1000)
            width = (width < 0 ? 0 : width * 10) + (*p++ - '0');
        if (p < end && *p == '.') {
            p++;
            prec = 0;
            while (p < end && *p >= '0' && *p <= '9' && prec < 1000)
                prec = prec * 10 + (*p++ - '0');
        }
        while (p < end && (*p == 'h' || *p == 'l' || *p == 'L'))
            p++;
        if (p >= end)
            return jout_free(&o), jr_fail(r, at, SH_EINVAL, "incomplete format");
        if (!v) {
            if (argi >= nargs)
                return jout_free(&o),
                       jr_fail(r, at, SH_EINVAL, "not enough arguments for format string");
            v = tuple ? &args->u.l->items[argi] : args;
            argi++;
        }
        if (fmt_one(r, at, &o, *p, flags, width, prec, v))
            return jout_free(&o), -1;
        p++;
    }
    if (args->type != JV_DICT && argi < nargs)
        return jout_free(&o),
               jr_fail(r, at, SH_EINVAL, "not all arguments converted during string formatting");
    return js_new(r, at, &o, out);
}

/* str.format: {} {0} {name} with optional !r/!s; format specs are refused. */
int jpy_str_format(struct jrender *r,
                   const struct jnode *at,
                   const struct jv *fmt,
                   struct jv *args,
                   size_t nargs,
                   const char **kwn,
                   struct jv *kwv,
                   size_t nkw,
                   struct jv *out)
{
    struct jout o = {0};
    const char *p = fmt->u.s.p, *end = p + fmt->u.s.n;
    size_t autoi = 0;
    while (p < end) {
        if ((*p == '{' || *p == '}') && p + 1 < end && p[1] == *p) {
            if (js_put(r, at, &o, p, 1))
                return -1;
            p += 2;
            continue;
        }
        if (*p == '}')
            return jout_free(&o), jr_fail(r, at, SH_EINVAL, "Single '}' encountered in format");
        if (*p == '{') {
            const char *close = memchr(p, '}', (size_t)(end - p)), *f = p + 1, *fe;
            const struct jv *v = NULL;
            char conv = 's';
            if (!close)
                return jout_free(&o), jr_fail(r, at, SH_EINVAL, "Single '{' encountered in format");
            fe = close;
            if (memchr(f, ':', (size_t)(fe - f)))
                return jout_free(&o), jr_fail(r, at, SH_EUNSUPPORTED,
                                              "str.format specs (':') are "
                                              "not supported");
            if (fe - f >= 2 && fe[-2] == '!') {
                conv = fe[-1];
                fe -= 2;
            }
            if (f == fe) {
                if (autoi < nargs)
                    v = &args[autoi++];
            } else if (*f >= '0' && *f <= '9') {
                size_t idx = 0;
                for (const char *q = f; q < fe; q++)
                    idx = idx * 10 + (size_t)(*q - '0');
                if (idx < nargs)
                    v = &args[idx];
            } else {
                for (size_t k = 0; k < nkw; k++)
                    if (strlen(kwn[k]) == (size_t)(fe - f) && !memcmp(kwn[k], f, (size_t)(fe - f)))
                        v = &kwv[k];
            }
            if (!v)
                return jout_free(&o), jr_fail(r, at, SH_EINVAL, "format field '%.*s' has no value",
                                              (int)(fe - f), f);
            if (fmt_one(r, at, &o, conv == 'r' ? 'r' : 's', "", -1, -1, v))
                return jout_free(&o), -1;
            p = close + 1;
            continue;
        }
        {
            const char *q = p;
            while (q < end && *q != '{' && *q != '}')
                q++;
            if (js_put(r, at, &o, p, (size_t)(q - p)))
                return -1;
            p = q;
        }
    }
    return js_new(r, at, &o, out);
}
