/* engine/jinja_value.c: the Jinja engine's arena, its value type with
 * Python's semantics (truth, equality, ordering, str, repr, json.dumps) and
 * the UTF-8 helpers that make lengths and slices count code points. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jinja_internal.h"

/* ---- arena -------------------------------------------------------------- */
struct ja_chunk {
    struct ja_chunk *next;
    size_t used;
    size_t cap;
    _Alignas(max_align_t) unsigned char data[];
};

#define JA_CHUNK (64u * 1024u)

void ja_init(struct jarena *a, size_t max)
{
    a->head = NULL;
    a->total = 0;
    a->max = max;
}

void ja_release(struct jarena *a)
{
    struct ja_chunk *c = a->head;
    while (c) {
        struct ja_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->total = 0;
}

void *ja_alloc(struct jarena *a, size_t n)
{
    struct ja_chunk *c = a->head;
    size_t need, cap, total;

    if (n == 0)
        n = 1;
    if (!sh_add_size(n, _Alignof(max_align_t) - 1, &need))
        return NULL;
    need &= ~(size_t)(_Alignof(max_align_t) - 1);
    if (c && c->cap - c->used >= need) {
        void *p = c->data + c->used;
        c->used += need;
        return p;
    }
    cap = need > JA_CHUNK ? need : JA_CHUNK;
    if (!sh_add_size(cap, sizeof *c, &total) || !sh_add_size(a->total, total, &total) ||
        total > a->max)
        return NULL;
    c = malloc(sizeof *c + cap);
    if (!c)
        return NULL;
    a->total = total;
    c->cap = cap;
    c->used = need;
    /* A big allocation gets its own chunk behind the current one, so the
     * current chunk's free space stays usable. */
    if (a->head && need > JA_CHUNK) {
        c->next = a->head->next;
        a->head->next = c;
    } else {
        c->next = a->head;
        a->head = c;
    }
    return c->data;
}

char *ja_strndup(struct jarena *a, const char *s, size_t n)
{
    size_t m;
    char *p;
    if (!sh_add_size(n, 1, &m))
        return NULL;
    p = ja_alloc(a, m);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* ---- output buffer ------------------------------------------------------- */
int jout_put(struct jout *o, size_t max, const char *p, size_t n)
{
    size_t need;
    if (n == 0)
        return 0;
    if (!sh_add_size(o->n, n, &need) || need > max)
        return SH_ETOOBIG;
    if (need + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        char *np;
        while (cap < need + 1)
            cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
        np = realloc(o->p, cap);
        if (!np)
            return SH_ENOMEM;
        o->p = np;
        o->cap = cap;
    }
    memcpy(o->p + o->n, p, n);
    o->n = need;
    o->p[o->n] = '\0';
    return 0;
}

void jout_free(struct jout *o)
{
    free(o->p);
    o->p = NULL;
    o->n = o->cap = 0;
}

/* ---- UTF-8 --------------------------------------------------------------- */
uint32_t ju_decode(const char *p, size_t n, size_t *len)
{
    const unsigned char *s = (const unsigned char *)p;
    uint32_t cp;
    size_t need, i;

    if (s[0] < 0x80) {
        *len = 1;
        return s[0];
    }
    if ((s[0] & 0xE0) == 0xC0) {
        need = 2;
        cp = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        need = 3;
        cp = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        need = 4;
        cp = s[0] & 0x07;
    } else {
        *len = 1;
        return 0xFFFD;
    }
    if (need > n) {
        *len = 1;
        return 0xFFFD;
    }
    for (i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *len = 1;
            return 0xFFFD;
        }
        cp = cp << 6 | (s[i] & 0x3F);
    }
    *len = need;
    return cp;
}

size_t ju_encode(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t ju_cplen(const char *p, size_t n)
{
    size_t count = 0, i = 0, l;
    while (i < n) {
        ju_decode(p + i, n - i, &l);
        i += l;
        count++;
    }
    return count;
}

size_t ju_cpoff(const char *p, size_t n, size_t idx)
{
    size_t i = 0, l;
    while (idx > 0 && i < n) {
        ju_decode(p + i, n - i, &l);
        i += l;
        idx--;
    }
    return i;
}

bool ju_isspace(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 ||
           cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* Case mapping for ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic: the
 * scripts chat templates meet. Other letters map to themselves (documented
 * limit: no Unicode database in a pure core). */
uint32_t ju_upper(uint32_t c)
{
    if (c >= 'a' && c <= 'z')
        return c - 32;
    if (c < 0x80)
        return c;
    if ((c >= 0xE0 && c <= 0xFE && c != 0xF7))
        return c - 32;
    if (c == 0xFF)
        return 0x178;
    if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 &&
        c != 0x17F) {
        bool odd_lower = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
        if (odd_lower ? (c % 2 == 0) : (c % 2 == 1))
            return c - 1;
        return c;
    }
    if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2)
        return c - 32;
    if (c == 0x3C2)
        return 0x3A3;
    if (c >= 0x430 && c <= 0x44F)
        return c - 32;
    if (c >= 0x450 && c <= 0x45F)
        return c - 80;
    return c;
}

uint32_t ju_lower(uint32_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c + 32;
    if (c < 0x80)
        return c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7)
        return c + 32;
    if (c == 0x178)
        return 0xFF;
    if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 &&
        c != 0x17F) {
        bool odd_lower = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
        if (odd_lower ? (c % 2 == 1) : (c % 2 == 0))
            return c + 1;
        return c;
    }
    if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2)
        return c + 32;
    if (c >= 0x410 && c <= 0x42F)
        return c + 32;
    if (c >= 0x400 && c <= 0x40F)
        return c + 80;
    return c;
}

bool ju_isalpha(uint32_t c)
{
    return ju_upper(c) != c || ju_lower(c) != c || c == 0xDF;
}

/* ---- constructors -------------------------------------------------------- */
struct jv jv_undef(struct jarena *a, const char *name, size_t name_len, const char *owner)
{
    struct jv v = {.type = JV_UNDEF};
    struct jundef *u = ja_alloc(a, sizeof *u);
    if (u) {
        u->name = ja_strndup(a, name, name_len);
        u->owner = owner;
        if (!u->name)
            u = NULL;
    }
    v.u.undef = u;
    return v;
}

struct jv_list *jv_list_new(struct jarena *a, size_t cap)
{
    struct jv_list *l = ja_alloc(a, sizeof *l);
    size_t bytes;
    if (!l)
        return NULL;
    l->n = 0;
    l->cap = cap;
    l->items = NULL;
    if (cap) {
        if (!sh_mul_size(cap, sizeof *l->items, &bytes))
            return NULL;
        l->items = ja_alloc(a, bytes);
        if (!l->items)
            return NULL;
    }
    return l;
}

int jv_list_push(struct jarena *a, struct jv_list *l, struct jv v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8, bytes;
        struct jv *ni;
        if (!sh_mul_size(cap, sizeof *ni, &bytes))
            return SH_ENOMEM;
        ni = ja_alloc(a, bytes);
        if (!ni)
            return SH_ENOMEM;
        if (l->n)
            memcpy(ni, l->items, l->n * sizeof *ni);
        l->items = ni;
        l->cap = cap;
    }
    l->items[l->n++] = v;
    return 0;
}

struct jv jv_list_val(struct jv_list *l, bool tuple)
{
    struct jv v = {.type = JV_LIST, .flags = tuple ? JV_F_TUPLE : 0, .u.l = l};
    return v;
}

struct jv_dict *jv_dict_new(struct jarena *a, size_t cap)
{
    struct jv_dict *d = ja_alloc(a, sizeof *d);
    if (!d)
        return NULL;
    d->n = 0;
    d->cap = 0;
    d->keys = d->vals = NULL;
    (void)cap;
    return d;
}

struct jv *jv_dict_getv(const struct jv_dict *d, struct jv key)
{
    for (size_t i = 0; i < d->n; i++)
        if (jv_equal(&d->keys[i], &key))
            return &d->vals[i];
    return NULL;
}

struct jv *jv_dict_get(const struct jv_dict *d, const char *key, size_t n)
{
    for (size_t i = 0; i < d->n; i++) {
        const struct jv *k = &d->keys[i];
        if (k->type == JV_STR && k->u.s.n == n && memcmp(k->u.s.p, key, n) == 0)
            return &d->vals[i];
    }
    return NULL;
}

int jv_dict_set(struct jarena *a, struct jv_dict *d, struct jv key, struct jv val)
{
    struct jv *slot = jv_dict_getv(d, key);
    if (slot) {
        *slot = val;
        return 0;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8, bytes;
        struct jv *nk, *nv;
        if (!sh_mul_size(cap, sizeof *nk, &bytes))
            return SH_ENOMEM;
        nk = ja_alloc(a, bytes);
        nv = ja_alloc(a, bytes);
        if (!nk || !nv)
            return SH_ENOMEM;
        if (d->n) {
            memcpy(nk, d->keys, d->n * sizeof *nk);
            memcpy(nv, d->vals, d->n * sizeof *nv);
        }
        d->keys = nk;
        d->vals = nv;
        d->cap = cap;
    }
    d->keys[d->n] = key;
    d->vals[d->n] = val;
    d->n++;
    return 0;
}

/* ---- Python semantics --------------------------------------------------- */
bool jv_truthy(const struct jv *v)
{
    switch (v->type) {
    case JV_UNDEF:
    case JV_NONE:
        return false;
    case JV_BOOL:
        return v->u.b;
    case JV_INT:
        return v->u.i != 0;
    case JV_FLOAT:
        return v->u.f != 0.0;
    case JV_STR:
        return v->u.s.n != 0;
    case JV_LIST:
        return v->u.l->n != 0;
    case JV_DICT:
        return v->u.d->n != 0;
    default:
        return true;
    }
}

bool jv_is_number(const struct jv *v)
{
    return v->type == JV_INT || v->type == JV_FLOAT || v->type == JV_BOOL;
}

double jv_as_double(const struct jv *v)
{
    if (v->type == JV_INT)
        return (double)v->u.i;
    if (v->type == JV_BOOL)
        return v->u.b ? 1.0 : 0.0;
    return v->u.f;
}

static int64_t as_i64(const struct jv *v)
{
    return v->type == JV_BOOL ? (int64_t)v->u.b : v->u.i;
}

bool jv_equal(const struct jv *a, const struct jv *b)
{
    if (jv_is_number(a) && jv_is_number(b)) {
        if (a->type != JV_FLOAT && b->type != JV_FLOAT)
            return as_i64(a) == as_i64(b);
        return jv_as_double(a) == jv_as_double(b);
    }
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case JV_UNDEF:
    case JV_NONE:
        return true;
    case JV_STR:
        return a->u.s.n == b->u.s.n && memcmp(a->u.s.p, b->u.s.p, a->u.s.n) == 0;
    case JV_LIST:
        if ((a->flags & JV_F_TUPLE) != (b->flags & JV_F_TUPLE) || a->u.l->n != b->u.l->n)
            return false;
        for (size_t i = 0; i < a->u.l->n; i++)
            if (!jv_equal(&a->u.l->items[i], &b->u.l->items[i]))
                return false;
        return true;
    case JV_DICT:
        if (a->u.d->n != b->u.d->n)
            return false;
        for (size_t i = 0; i < a->u.d->n; i++) {
            const struct jv *o = jv_dict_getv(b->u.d, a->u.d->keys[i]);
            if (!o || !jv_equal(&a->u.d->vals[i], o))
                return false;
        }
        return true;
    case JV_NS:
        return a->u.d == b->u.d;
    case JV_FUNC:
        return a->u.fn == b->u.fn;
    case JV_LOOP:
        return a->u.loop == b->u.loop;
    default:
        return false;
    }
}

bool jv_order(const struct jv *a, const struct jv *b, int *cmp)
{
    if (jv_is_number(a) && jv_is_number(b)) {
        if (a->type != JV_FLOAT && b->type != JV_FLOAT) {
            int64_t x = as_i64(a), y = as_i64(b);
            *cmp = x < y ? -1 : x > y;
        } else {
            double x = jv_as_double(a), y = jv_as_double(b);
            if (isnan(x) || isnan(y)) {
                *cmp = 2; /* unordered: every comparison is false */
                return true;
            }
            *cmp = x < y ? -1 : x > y;
        }
        return true;
    }
    if (a->type == JV_STR && b->type == JV_STR) {
        size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
        int c = n ? memcmp(a->u.s.p, b->u.s.p, n) : 0;
        if (c == 0)
            c = a->u.s.n < b->u.s.n ? -1 : a->u.s.n > b->u.s.n;
        *cmp = c < 0 ? -1 : c > 0;
        return true;
    }
    if (a->type == JV_LIST && b->type == JV_LIST &&
        (a->flags & JV_F_TUPLE) == (b->flags & JV_F_TUPLE)) {
        size_t n = a->u.l->n < b->u.l->n ? a->u.l->n : b->u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (jv_equal(&a->u.l->items[i], &b->u.l->items[i]))
                continue;
            return jv_order(&a->u.l->items[i], &b->u.l->items[i], cmp);
        }
        *cmp = a->u.l->n < b->u.l->n ? -1 : a->u.l->n > b->u.l->n;
        return true;
    }
    return false;
}

const char *jv_type_name(const struct jv *v)
{
    switch (v->type) {
    case JV_UNDEF:
        return "Undefined";
    case JV_NONE:
        return "NoneType";
    case JV_BOOL:
        return "bool";
    case JV_INT:
        return "int";
    case JV_FLOAT:
        return "float";
    case JV_STR:
        return "str";
    case JV_LIST:
        return (v->flags & JV_F_TUPLE) ? "tuple" : "list";
    case JV_DICT:
        return "dict";
    case JV_NS:
        return "Namespace";
    case JV_FUNC:
        return "function";
    case JV_LOOP:
        return "LoopContext";
    default:
        return "object";
    }
}

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
                   (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F || cp == 0x205F ||
                   cp == 0x3000) {
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
        return SH_ETOOBIG;
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
static int json_key(struct jout *o, size_t max, const struct jv *k, const struct jjson_opts *op,
                    struct sh_err *err)
{
    char buf[48];
    switch (k->type) {
    case JV_STR:
        return json_str(o, max, k->u.s.p, k->u.s.n, op->ensure_ascii);
    case JV_INT:
        snprintf(buf, sizeof buf, "\"%lld\"", (long long)k->u.i);
        return put(o, max, buf);
    case JV_FLOAT:
    {
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
        return sh_err_set(err, SH_EINVAL,
                          "keys must be str, int, float, bool or None, not %s", jv_type_name(k));
    }
}

static int json_sorted_order(struct jarena *a, const struct jv_dict *d, size_t **order,
                             struct sh_err *err)
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

int jv_tojson(struct jarena *a, struct jout *o, size_t max, const struct jv *v,
              const struct jjson_opts *op, size_t depth, struct sh_err *err)
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
