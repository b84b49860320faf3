/* engine/jinja_ops.c: Python's operators on Jinja values (arithmetic with
 * int64 overflow checks, comparisons, `in`), Jinja's tests (`is defined`...),
 * and the sandbox's attribute and item access, iteration and Undefined
 * errors. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/jinja_internal.h"

int jr_fail(struct jrender *r, const struct jnode *at, int code, const char *fmt, ...)
{
    char msg[220];
    va_list ap;
    if (r->code)
        return -1; /* keep the first error */
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->code = code;
    if (at)
        sh_err_set(r->err, code, "line %u col %u: %s", at->line, at->col, msg);
    else
        sh_err_set(r->err, code, "%s", msg);
    return -1;
}

int jr_oom(struct jrender *r, const struct jnode *at)
{
    return jr_fail(r, at, SH_ETOOBIG, "template render used more than %zu bytes of memory",
                   r->ar->max);
}

int jr_step(struct jrender *r, const struct jnode *at, uint64_t n)
{
    if (n > r->max_steps - r->steps || r->steps + n > r->max_steps)
        return jr_fail(r, at, SH_ETOOBIG, "template ran more than %llu loop iterations and calls",
                       (unsigned long long)r->max_steps);
    r->steps += n;
    return 0;
}

int jr_str(struct jrender *r, const struct jnode *at, const char *p, size_t n, struct jv *out)
{
    char *s = ja_strndup(r->ar, p, n);
    if (!s)
        return jr_oom(r, at);
    *out = jv_strn(s, n);
    return 0;
}

/* "dict object", "None", "list object"... as Jinja's object_type_repr. */
static const char *owner_name(const struct jv *v)
{
    switch (v->type) {
    case JV_NONE:
        return "None";
    case JV_DICT:
        return "dict object";
    case JV_LIST:
        return (v->flags & JV_F_TUPLE) ? "tuple object" : "list object";
    case JV_STR:
        return "str object";
    case JV_INT:
        return "int object";
    case JV_FLOAT:
        return "float object";
    case JV_BOOL:
        return "bool object";
    case JV_NS:
        return "jinja2.utils.Namespace object";
    case JV_LOOP:
        return "jinja2.runtime.LoopContext object";
    default:
        return "object";
    }
}

int jr_need_defined(struct jrender *r, const struct jnode *at, const struct jv *v)
{
    const struct jundef *u;
    if (v->type != JV_UNDEF)
        return 0;
    u = v->u.undef;
    if (!u)
        return jr_fail(r, at, SH_EINVAL, "undefined value");
    if (!u->owner)
        return jr_fail(r, at, SH_EINVAL, "'%s' is undefined", u->name);
    if (u->name[0] == '#')
        return jr_fail(r, at, SH_EINVAL, "%s has no element %s", u->owner, u->name + 1);
    return jr_fail(r, at, SH_EINVAL, "'%s' has no attribute '%s'", u->owner, u->name);
}

static int undef_attr(struct jrender *r,
                      const struct jnode *at,
                      const struct jv *obj,
                      const char *name,
                      size_t n,
                      struct jv *out)
{
    *out = jv_undef(r->ar, name, n, owner_name(obj));
    return out->u.undef ? 0 : jr_oom(r, at);
}

static int method_value(struct jrender *r,
                        const struct jnode *at,
                        const struct jv *obj,
                        const char *name,
                        struct jv *out)
{
    struct jfunc *fn = ja_alloc(r->ar, sizeof *fn);
    if (!fn)
        return jr_oom(r, at);
    memset(fn, 0, sizeof *fn);
    fn->kind = JF_METHOD;
    fn->self = *obj;
    fn->name = name;
    out->type = JV_FUNC;
    out->flags = 0;
    out->u.fn = fn;
    return 0;
}

static int loop_attr(struct jrender *r,
                     const struct jnode *at,
                     const struct jv *obj,
                     const char *name,
                     struct jv *out)
{
    const struct jloop *l = obj->u.loop;
    size_t len = l->items->n, i = l->index0;
    if (!strcmp(name, "index"))
        *out = jv_int((int64_t)i + 1);
    else if (!strcmp(name, "index0"))
        *out = jv_int((int64_t)i);
    else if (!strcmp(name, "revindex"))
        *out = jv_int((int64_t)(len - i));
    else if (!strcmp(name, "revindex0"))
        *out = jv_int((int64_t)(len - i - 1));
    else if (!strcmp(name, "first"))
        *out = jv_bool(i == 0);
    else if (!strcmp(name, "last"))
        *out = jv_bool(i + 1 == len);
    else if (!strcmp(name, "length"))
        *out = jv_int((int64_t)len);
    else if (!strcmp(name, "depth"))
        *out = jv_int((int64_t)l->depth0 + 1);
    else if (!strcmp(name, "depth0"))
        *out = jv_int((int64_t)l->depth0);
    else if (!strcmp(name, "previtem")) {
        if (i == 0)
            return undef_attr(r, at, obj, name, 8, out);
        *out = l->items->items[i - 1];
    } else if (!strcmp(name, "nextitem")) {
        if (i + 1 >= len)
            return undef_attr(r, at, obj, name, 8, out);
        *out = l->items->items[i + 1];
    } else if (!strcmp(name, "cycle") || !strcmp(name, "changed")) {
        return method_value(r, at, obj, name, out);
    } else {
        return undef_attr(r, at, obj, name, strlen(name), out);
    }
    return 0;
}

int jr_getattr(struct jrender *r,
               const struct jnode *at,
               const struct jv *obj,
               const char *name,
               struct jv *out)
{
    const struct jv *v;
    size_t n = strlen(name);

    switch (obj->type) {
    case JV_UNDEF:
        return jr_need_defined(r, at, obj);
    case JV_DICT:
    case JV_NS:
        if (obj->type == JV_DICT && jf_has_method(obj, name))
            return method_value(r, at, obj, name, out);
        v = jv_dict_get(obj->u.d, name, n);
        if (v) {
            *out = *v;
            return 0;
        }
        return undef_attr(r, at, obj, name, n, out);
    case JV_LOOP:
        return loop_attr(r, at, obj, name, out);
    default:
        if (jf_has_method(obj, name))
            return method_value(r, at, obj, name, out);
        return undef_attr(r, at, obj, name, n, out);
    }
}

static bool index_of(const struct jv *key, size_t len, size_t *idx)
{
    int64_t i;
    if (key->type != JV_INT && key->type != JV_BOOL)
        return false;
    i = key->type == JV_BOOL ? key->u.b : key->u.i;
    if (i < 0)
        i += (int64_t)len;
    if (i < 0 || (uint64_t)i >= len)
        return false;
    *idx = (size_t)i;
    return true;
}

int jr_getitem(struct jrender *r,
               const struct jnode *at,
               const struct jv *obj,
               const struct jv *key,
               struct jv *out)
{
    size_t idx;
    char buf[64];

    if (obj->type == JV_UNDEF)
        return jr_need_defined(r, at, obj);
    if (obj->type == JV_DICT || obj->type == JV_NS) {
        const struct jv *v = jv_dict_getv(obj->u.d, *key);
        if (v) {
            *out = *v;
            return 0;
        }
    } else if (obj->type == JV_LIST) {
        if (index_of(key, obj->u.l->n, &idx)) {
            *out = obj->u.l->items[idx];
            return 0;
        }
    } else if (obj->type == JV_STR) {
        size_t len = ju_cplen(obj->u.s.p, obj->u.s.n);
        if (index_of(key, len, &idx)) {
            size_t off = ju_cpoff(obj->u.s.p, obj->u.s.n, idx), l;
            ju_decode(obj->u.s.p + off, obj->u.s.n - off, &l);
            *out = jv_strn(obj->u.s.p + off, l);
            return 0;
        }
    }
    if (key->type == JV_STR) {
        char *name = ja_strndup(r->ar, key->u.s.p, key->u.s.n);
        if (!name)
            return jr_oom(r, at);
        if (obj->type == JV_LOOP ||
            (obj->type != JV_DICT && obj->type != JV_NS && jf_has_method(obj, name)))
            return jr_getattr(r, at, obj, name, out);
        if (obj->type == JV_DICT && jf_has_method(obj, name))
            return jr_getattr(r, at, obj, name, out);
        return undef_attr(r, at, obj, key->u.s.p, key->u.s.n, out);
    }
    /* a non-string key: Jinja's "X has no element K" */
    buf[0] = '#';
    {
        struct jout o = {0};
        int rc = jv_repr(r->ar, &o, 40, key);
        snprintf(buf + 1, sizeof buf - 1, "%s", rc ? "?" : o.p);
        jout_free(&o);
    }
    *out = jv_undef(r->ar, buf, strlen(buf), owner_name(obj));
    return out->u.undef ? 0 : jr_oom(r, at);
}

int jr_iterate(struct jrender *r, const struct jnode *at, const struct jv *v, struct jv_list **out)
{
    struct jv_list *l;
    switch (v->type) {
    case JV_LIST:
        *out = v->u.l;
        return 0;
    case JV_UNDEF:
        if (!(*out = jv_list_new(r->ar, 0)))
            return jr_oom(r, at);
        return 0;
    case JV_DICT:
        if (!(l = jv_list_new(r->ar, v->u.d->n)))
            return jr_oom(r, at);
        if (v->u.d->n)
            memcpy(l->items, v->u.d->keys, v->u.d->n * sizeof *l->items);
        l->n = v->u.d->n;
        *out = l;
        return 0;
    case JV_STR: {
        size_t i = 0, len;
        if (!(l = jv_list_new(r->ar, v->u.s.n)))
            return jr_oom(r, at);
        while (i < v->u.s.n) {
            ju_decode(v->u.s.p + i, v->u.s.n - i, &len);
            l->items[l->n++] = jv_strn(v->u.s.p + i, len);
            i += len;
        }
        *out = l;
        return 0;
    }
    default:
        return jr_fail(r, at, SH_EINVAL, "'%s' object is not iterable", jv_type_name(v));
    }
}

/* ---- arithmetic ------------------------------------------------------------ */
static int type_error(struct jrender *r,
                      const struct jnode *at,
                      const char *op,
                      const struct jv *a,
                      const struct jv *b)
{
    return jr_fail(r, at, SH_EINVAL, "unsupported operand type(s) for %s: '%s' and '%s'", op,
                   jv_type_name(a), jv_type_name(b));
}

static bool is_intlike(const struct jv *v)
{
    return v->type == JV_INT || v->type == JV_BOOL;
}

static int overflow(struct jrender *r, const struct jnode *at)
{
    return jr_fail(r, at, SH_EUNSUPPORTED, "integer result does not fit in 64 bits");
}

static int concat_seq(struct jrender *r,
                      const struct jnode *at,
                      const struct jv *a,
                      const struct jv *b,
                      struct jv *out)
{
    if (a->type == JV_STR) {
        size_t n;
        char *p;
        if (!sh_add_size(a->u.s.n, b->u.s.n, &n) || !(p = ja_alloc(r->ar, n + 1)))
            return jr_oom(r, at);
        memcpy(p, a->u.s.p, a->u.s.n);
        memcpy(p + a->u.s.n, b->u.s.p, b->u.s.n);
        p[n] = '\0';
        *out = jv_strn(p, n);
        return 0;
    } else {
        size_t n;
        struct jv_list *l;
        if (!sh_add_size(a->u.l->n, b->u.l->n, &n) || !(l = jv_list_new(r->ar, n)))
            return jr_oom(r, at);
        if (a->u.l->n)
            memcpy(l->items, a->u.l->items, a->u.l->n * sizeof *l->items);
        if (b->u.l->n)
            memcpy(l->items + a->u.l->n, b->u.l->items, b->u.l->n * sizeof *l->items);
        l->n = n;
        *out = jv_list_val(l, a->flags & JV_F_TUPLE);
        return 0;
    }
}

static int repeat_seq(
    struct jrender *r, const struct jnode *at, const struct jv *seq, int64_t times, struct jv *out)
{
    size_t unit = seq->type == JV_STR ? seq->u.s.n : seq->u.l->n, total, k;
    if (times < 0)
        times = 0;
    if (!sh_mul_size(unit, (size_t)times, &total) || total > r->ar->max)
        return jr_oom(r, at);
    if (seq->type == JV_STR) {
        char *p = ja_alloc(r->ar, total + 1);
        if (!p)
            return jr_oom(r, at);
        for (k = 0; unit && k < (size_t)times; k++)
            memcpy(p + k * unit, seq->u.s.p, unit);
        p[total] = '\0';
        *out = jv_strn(p, total);
    } else {
        struct jv_list *l = jv_list_new(r->ar, total);
        if (!l)
            return jr_oom(r, at);
        for (k = 0; unit && k < (size_t)times; k++)
            memcpy(l->items + k * unit, seq->u.l->items, unit * sizeof *l->items);
        l->n = total;
        *out = jv_list_val(l, seq->flags & JV_F_TUPLE);
    }
    return 0;
}

static const char *op_text(uint8_t op)
{
    switch (op) {
    case JO_ADD:
        return "+";
    case JO_SUB:
        return "-";
    case JO_MUL:
        return "*";
    case JO_DIV:
        return "/";
    case JO_FLOORDIV:
        return "//";
    case JO_MOD:
        return "%";
    default:
        return "** or pow()";
    }
}

int jr_binop(struct jrender *r,
             const struct jnode *at,
             uint8_t op,
             const struct jv *a,
             const struct jv *b,
             struct jv *out)
{
    if (jr_need_defined(r, at, a) || jr_need_defined(r, at, b))
        return -1;
    if (op == JO_ADD && a->type == b->type && (a->type == JV_STR || a->type == JV_LIST) &&
        (a->type == JV_STR || (a->flags & JV_F_TUPLE) == (b->flags & JV_F_TUPLE)))
        return concat_seq(r, at, a, b, out);
    if (op == JO_MUL && (a->type == JV_STR || a->type == JV_LIST) && is_intlike(b))
        return repeat_seq(r, at, a, jv_as_i64(b), out);
    if (op == JO_MUL && (b->type == JV_STR || b->type == JV_LIST) && is_intlike(a))
        return repeat_seq(r, at, b, jv_as_i64(a), out);
    if (op == JO_MOD && a->type == JV_STR)
        return jpy_format(r, at, a, b, out);
    if (!jv_is_number(a) || !jv_is_number(b))
        return type_error(r, at, op_text(op), a, b);
    if (is_intlike(a) && is_intlike(b) && op != JO_DIV) {
        int64_t x = jv_as_i64(a), y = jv_as_i64(b), z = 0;
        switch (op) {
        case JO_ADD:
            if (__builtin_add_overflow(x, y, &z))
                return overflow(r, at);
            break;
        case JO_SUB:
            if (__builtin_sub_overflow(x, y, &z))
                return overflow(r, at);
            break;
        case JO_MUL:
            if (__builtin_mul_overflow(x, y, &z))
                return overflow(r, at);
            break;
        case JO_FLOORDIV:
        case JO_MOD:
            if (y == 0)
                return jr_fail(r, at, SH_EINVAL, "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1)
                return overflow(r, at);
            z = op == JO_FLOORDIV ? x / y : x % y;
            if (op == JO_FLOORDIV && (x % y != 0) && ((x < 0) != (y < 0)))
                z--;
            if (op == JO_MOD && z != 0 && ((z < 0) != (y < 0)))
                z += y;
            break;
        case JO_POW:
            if (y < 0) {
                *out = jv_float(pow((double)x, (double)y));
                return 0;
            }
            z = 1;
            for (int64_t k = 0; k < y; k++) {
                if (__builtin_mul_overflow(z, x, &z))
                    return overflow(r, at);
                if (z == 0 || z == 1)
                    break;
                if (z == -1) {
                    z = ((y - k - 1) % 2 == 0) ? -1 : 1;
                    break;
                }
            }
            break;
        default:
            return jr_fail(r, at, SH_EINTERNAL, "bad operator");
        }
        *out = jv_int(z);
        return 0;
    }
    {
        double x = jv_as_double(a), y = jv_as_double(b), z;
        switch (op) {
        case JO_ADD:
            z = x + y;
            break;
        case JO_SUB:
            z = x - y;
            break;
        case JO_MUL:
            z = x * y;
            break;
        case JO_DIV:
            if (y == 0)
                return jr_fail(r, at, SH_EINVAL, "division by zero");
            z = x / y;
            break;
        case JO_FLOORDIV:
            if (y == 0)
                return jr_fail(r, at, SH_EINVAL, "float floor division by zero");
            z = floor(x / y);
            break;
        case JO_MOD:
            if (y == 0)
                return jr_fail(r, at, SH_EINVAL, "float modulo");
            z = fmod(x, y);
            if (z != 0 && ((z < 0) != (y < 0)))
                z += y;
            break;
        default:
            z = pow(x, y);
            break;
        }
        *out = jv_float(z);
        return 0;
    }
}

int jr_contains(struct jrender *r,
                const struct jnode *at,
                const struct jv *needle,
                const struct jv *hay)
{
    switch (hay->type) {
    case JV_STR:
        if (needle->type != JV_STR)
            return jr_fail(r, at, SH_EINVAL,
                           "'in <string>' requires string as left operand, not %s",
                           jv_type_name(needle));
        if (needle->u.s.n == 0)
            return 1;
        if (needle->u.s.n > hay->u.s.n)
            return 0;
        return memmem(hay->u.s.p, hay->u.s.n, needle->u.s.p, needle->u.s.n) != NULL;
    case JV_LIST:
        for (size_t i = 0; i < hay->u.l->n; i++)
            if (jv_equal(&hay->u.l->items[i], needle))
                return 1;
        return 0;
    case JV_DICT:
        return jv_dict_getv(hay->u.d, *needle) != NULL;
    case JV_UNDEF:
        return 0;
    default:
        return jr_fail(r, at, SH_EINVAL, "argument of type '%s' is not iterable",
                       jv_type_name(hay));
    }
}

int jr_compare(
    struct jrender *r, const struct jnode *at, uint8_t op, const struct jv *a, const struct jv *b)
{
    int c, rc;
    const char *sym;
    switch (op) {
    case JO_EQ:
        return jv_equal(a, b);
    case JO_NE:
        return !jv_equal(a, b);
    case JO_IN:
        return jr_contains(r, at, a, b);
    case JO_NOTIN:
        rc = jr_contains(r, at, a, b);
        return rc < 0 ? rc : !rc;
    default:
        break;
    }
    sym = op == JO_LT ? "<" : op == JO_LE ? "<=" : op == JO_GT ? ">" : ">=";
    if (jr_need_defined(r, at, a) || jr_need_defined(r, at, b))
        return -1;
    if (!jv_order(a, b, &c))
        return jr_fail(r, at, SH_EINVAL, "'%s' not supported between instances of '%s' and '%s'",
                       sym, jv_type_name(a), jv_type_name(b));
    if (c == 2)
        return 0;
    switch (op) {
    case JO_LT:
        return c < 0;
    case JO_LE:
        return c <= 0;
    case JO_GT:
        return c > 0;
    default:
        return c >= 0;
    }
}

/* ---- tests ------------------------------------------------------------------- */
int jf_test(struct jrender *r,
            const struct jnode *at,
            const char *t,
            struct jv *v,
            struct jv *args,
            size_t nargs)
{
    static const char *const unary[] = {"defined",  "undefined", "none",   "string",   "mapping",
                                        "iterable", "sequence",  "number", "integer",  "float",
                                        "boolean",  "true",      "false",  "callable", "escaped",
                                        "lower",    "upper",     "odd",    "even"};
    struct jv *a0 = nargs ? &args[0] : NULL;
    for (size_t k = 0; nargs && k < sizeof unary / sizeof unary[0]; k++)
        if (!strcmp(t, unary[k]))
            return jr_fail(r, at, SH_EINVAL,
                           "test_%s() takes 1 positional argument but %zu were "
                           "given",
                           t, nargs + 1);
    if (!strcmp(t, "defined"))
        return v->type != JV_UNDEF;
    if (!strcmp(t, "undefined"))
        return v->type == JV_UNDEF;
    if (!strcmp(t, "none"))
        return v->type == JV_NONE;
    if (!strcmp(t, "string"))
        return v->type == JV_STR;
    if (!strcmp(t, "mapping"))
        return v->type == JV_DICT;
    if (!strcmp(t, "iterable"))
        return v->type == JV_STR || v->type == JV_LIST || v->type == JV_DICT || v->type == JV_UNDEF;
    if (!strcmp(t, "sequence"))
        return v->type == JV_STR || v->type == JV_LIST || v->type == JV_DICT || v->type == JV_UNDEF;
    if (!strcmp(t, "number"))
        return jv_is_number(v);
    if (!strcmp(t, "integer"))
        return v->type == JV_INT;
    if (!strcmp(t, "float"))
        return v->type == JV_FLOAT;
    if (!strcmp(t, "boolean"))
        return v->type == JV_BOOL;
    if (!strcmp(t, "true"))
        return v->type == JV_BOOL && v->u.b;
    if (!strcmp(t, "false"))
        return v->type == JV_BOOL && !v->u.b;
    if (!strcmp(t, "callable"))
        return v->type == JV_FUNC;
    if (!strcmp(t, "escaped"))
        return 0;
    if (!strcmp(t, "lower") || !strcmp(t, "upper")) {
        struct jv s, res;
        if (jv_to_str(r->ar, r->ar->max, v, &s))
            return jr_oom(r, at);
        if (jf_method(r, at, &s, t[0] == 'l' ? "islower" : "isupper", NULL, 0, NULL, NULL, 0, &res))
            return -1;
        return res.u.b;
    }
    if (!strcmp(t, "odd") || !strcmp(t, "even") || !strcmp(t, "divisibleby")) {
        int64_t x, d = 2;
        if (v->type != JV_INT && v->type != JV_BOOL)
            return jr_fail(r, at, SH_EINVAL, "test '%s' needs an integer", t);
        x = v->type == JV_BOOL ? v->u.b : v->u.i;
        if (t[0] == 'd') {
            if (!a0 || a0->type != JV_INT || a0->u.i == 0)
                return jr_fail(r, at, SH_EINVAL, "divisibleby needs a non-zero integer");
            d = a0->u.i;
            return d == -1 || x % d == 0;
        }
        return (x % 2 != 0) == (t[0] == 'o');
    }
    if (!strcmp(t, "sameas")) {
        if (!a0)
            return jr_fail(r, at, SH_EINVAL, "sameas needs an argument");
        if (v->type != a0->type)
            return 0;
        if (v->type == JV_LIST || v->type == JV_DICT || v->type == JV_NS)
            return v->u.l == a0->u.l;
        return jv_equal(v, a0);
    }
    {
        static const struct {
            const char *name;
            uint8_t op;
        } cmp[] = {{"equalto", JO_EQ}, {"eq", JO_EQ}, {"==", JO_EQ},       {"ne", JO_NE},
                   {"!=", JO_NE},      {"lt", JO_LT}, {"lessthan", JO_LT}, {"<", JO_LT},
                   {"le", JO_LE},      {"<=", JO_LE}, {"gt", JO_GT},       {"greaterthan", JO_GT},
                   {">", JO_GT},       {"ge", JO_GE}, {">=", JO_GE},       {"in", JO_IN}};
        for (size_t k = 0; k < sizeof cmp / sizeof cmp[0]; k++)
            if (!strcmp(t, cmp[k].name)) {
                if (!a0)
                    return jr_fail(r, at, SH_EINVAL, "test '%s' needs an argument", t);
                return jr_compare(r, at, cmp[k].op, v, a0);
            }
    }
    if (!strcmp(t, "filter") || !strcmp(t, "test"))
        return jr_fail(r, at, SH_EUNSUPPORTED, "test '%s' is not supported", t);
    return jr_fail(r, at, SH_EUNSUPPORTED, "test '%s' is not supported", t);
}
