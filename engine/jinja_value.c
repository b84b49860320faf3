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
    if (sh_buf_grow(&o->p, &o->cap, need + 1, 256))
        return SH_ENOMEM;
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
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
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

bool ju_in_list(const char *const *list, const char *name)
{
    for (; list && *list; list++)
        if (!strcmp(*list, name))
            return true;
    return false;
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

struct jv jv_dict_val(struct jv_dict *d, bool ns)
{
    struct jv v = {.type = ns ? JV_NS : JV_DICT, .flags = 0, .u.d = d};
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

int jv_dict_set_kwargs(
    struct jarena *a, struct jv_dict *d, const char **kwn, const struct jv *kwv, size_t nkw)
{
    for (size_t k = 0; k < nkw; k++)
        if (jv_dict_set(a, d, jv_strn(kwn[k], strlen(kwn[k])), kwv[k]))
            return SH_ENOMEM;
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

int64_t jv_as_i64(const struct jv *v)
{
    return v->type == JV_BOOL ? (int64_t)v->u.b : v->u.i;
}

/* Containers nested deeper than this compare unequal (and unordered) rather
 * than recurse without bound: a namespace can build any depth at run time. */
#define JV_CMP_DEPTH 200

static bool equal_depth(const struct jv *a, const struct jv *b, int depth);

bool jv_equal(const struct jv *a, const struct jv *b)
{
    return equal_depth(a, b, 0);
}

static bool equal_depth(const struct jv *a, const struct jv *b, int depth)
{
    if (jv_is_number(a) && jv_is_number(b)) {
        if (a->type != JV_FLOAT && b->type != JV_FLOAT)
            return jv_as_i64(a) == jv_as_i64(b);
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
            if (depth >= JV_CMP_DEPTH ||
                !equal_depth(&a->u.l->items[i], &b->u.l->items[i], depth + 1))
                return false;
        return true;
    case JV_DICT:
        if (a->u.d->n != b->u.d->n)
            return false;
        for (size_t i = 0; i < a->u.d->n; i++) {
            const struct jv *o = jv_dict_getv(b->u.d, a->u.d->keys[i]);
            if (!o || depth >= JV_CMP_DEPTH || !equal_depth(&a->u.d->vals[i], o, depth + 1))
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

static bool order_depth(const struct jv *a, const struct jv *b, int *cmp, int depth);

bool jv_order(const struct jv *a, const struct jv *b, int *cmp)
{
    return order_depth(a, b, cmp, 0);
}

static bool order_depth(const struct jv *a, const struct jv *b, int *cmp, int depth)
{
    if (jv_is_number(a) && jv_is_number(b)) {
        if (a->type != JV_FLOAT && b->type != JV_FLOAT) {
            int64_t x = jv_as_i64(a), y = jv_as_i64(b);
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
            if (depth >= JV_CMP_DEPTH)
                return false;
            return order_depth(&a->u.l->items[i], &b->u.l->items[i], cmp, depth + 1);
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
