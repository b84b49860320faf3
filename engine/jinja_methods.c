/* engine/jinja_methods.c: methods called on values (str.split, dict.get...)
 * with Python's semantics, the string primitives the filters share, and
 * Python's two formatting languages (`fmt % args`, str.format). Methods that
 * would mutate a list or dict fail as in transformers' immutable sandbox. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/jinja_internal.h"

static const char *const str_methods[] = {
    "capitalize",   "casefold",    "center",    "count",      "encode",       "endswith",
    "expandtabs",   "find",        "format",    "format_map", "index",        "isalnum",
    "isalpha",      "isascii",     "isdecimal", "isdigit",    "isidentifier", "islower",
    "isnumeric",    "isprintable", "isspace",   "istitle",    "isupper",      "join",
    "ljust",        "lower",       "lstrip",    "maketrans",  "partition",    "removeprefix",
    "removesuffix", "replace",     "rfind",     "rindex",     "rjust",        "rpartition",
    "rsplit",       "rstrip",      "split",     "splitlines", "startswith",   "strip",
    "swapcase",     "title",       "translate", "upper",      "zfill",        NULL};
static const char *const dict_methods[] = {"clear",      "copy",   "fromkeys", "get",
                                           "items",      "keys",   "pop",      "popitem",
                                           "setdefault", "update", "values",   NULL};
static const char *const list_methods[] = {"append", "clear",   "copy",   "count",
                                           "extend", "index",   "insert", "pop",
                                           "remove", "reverse", "sort",   NULL};
/* mutators the immutable sandbox refuses */
static const char *const unsafe[] = {"clear",  "pop",     "popitem", "setdefault",
                                     "update", "append",  "extend",  "insert",
                                     "remove", "reverse", "sort",    NULL};

bool jf_has_method(const struct jv *self, const char *name)
{
    switch (self->type) {
    case JV_STR:
        return ju_in_list(str_methods, name);
    case JV_DICT:
        return ju_in_list(dict_methods, name);
    case JV_LIST:
        return (self->flags & JV_F_TUPLE) ? (!strcmp(name, "count") || !strcmp(name, "index"))
                                          : ju_in_list(list_methods, name);
    default:
        return false;
    }
}

/* ---- string primitives ---------------------------------------------------- */
int js_new(struct jrender *r, const struct jnode *at, struct jout *o, struct jv *out)
{
    int rc = jr_str(r, at, o->p ? o->p : "", o->n, out);
    jout_free(o);
    return rc;
}

int js_put(struct jrender *r, const struct jnode *at, struct jout *o, const char *p, size_t n)
{
    int rc = jout_put(o, r->ar->max, p, n);
    if (rc) {
        jout_free(o);
        return jr_oom(r, at);
    }
    return 0;
}

int js_case(struct jrender *r,
            const struct jnode *at,
            const struct jv *s,
            enum js_case mode,
            struct jv *out)
{
    struct jout o = {0};
    size_t i = 0, l;
    bool prev_cased = false, first = true;
    while (i < s->u.s.n) {
        uint32_t cp = ju_decode(s->u.s.p + i, s->u.s.n - i, &l), m = cp;
        char buf[4];
        bool cased = ju_isalpha(cp);
        switch (mode) {
        case JS_UPPER:
            m = ju_upper(cp);
            break;
        case JS_LOWER:
            m = ju_lower(cp);
            break;
        case JS_CAPITALIZE:
            m = first ? ju_upper(cp) : ju_lower(cp);
            break;
        case JS_TITLE:
            m = cased ? (prev_cased ? ju_lower(cp) : ju_upper(cp)) : cp;
            break;
        case JS_WORDTITLE: /* Jinja's title filter: words split at [-\s({[<]+ */
            m = prev_cased ? ju_lower(cp) : ju_upper(cp);
            cased =
                !(cp == '-' || ju_isspace(cp) || cp == '(' || cp == '{' || cp == '[' || cp == '<');
            break;
        }
        prev_cased = cased;
        first = false;
        if (cp == 0xFFFD && l == 1) {
            if (js_put(r, at, &o, s->u.s.p + i, 1))
                return -1;
        } else if (js_put(r, at, &o, buf, ju_encode(m, buf))) {
            return -1;
        }
        i += l;
    }
    return js_new(r, at, &o, out);
}

static bool cp_in(uint32_t cp, const struct jv *chars)
{
    size_t i = 0, l;
    if (!chars)
        return ju_isspace(cp);
    while (i < chars->u.s.n) {
        if (ju_decode(chars->u.s.p + i, chars->u.s.n - i, &l) == cp)
            return true;
        i += l;
    }
    return false;
}

void js_strip(const struct jv *s, const struct jv *chars, bool left, bool right, struct jv *out)
{
    size_t b = 0, e = s->u.s.n, l;
    while (left && b < e && cp_in(ju_decode(s->u.s.p + b, e - b, &l), chars))
        b += l;
    while (right && e > b) {
        size_t k = 1;
        while (k < e - b && k < 4 && ((unsigned char)s->u.s.p[e - k] & 0xC0) == 0x80)
            k++;
        if (!cp_in(ju_decode(s->u.s.p + e - k, k, &l), chars) || l != k)
            break;
        e -= k;
    }
    *out = jv_strn(s->u.s.p + b, e - b);
}

int js_replace(struct jrender *r,
               const struct jnode *at,
               const struct jv *s,
               const struct jv *old,
               const struct jv *new,
               int64_t count,
               struct jv *out)
{
    struct jout o = {0};
    size_t i = 0, l;
    if (old->u.s.n == 0) {
        /* Python inserts `new` before every character and at the end */
        while (count != 0) {
            if (js_put(r, at, &o, new->u.s.p, new->u.s.n))
                return -1;
            count--;
            if (i >= s->u.s.n)
                break;
            ju_decode(s->u.s.p + i, s->u.s.n - i, &l);
            if (js_put(r, at, &o, s->u.s.p + i, l))
                return -1;
            i += l;
        }
        if (js_put(r, at, &o, s->u.s.p + i, s->u.s.n - i))
            return -1;
        return js_new(r, at, &o, out);
    }
    while (count != 0 && i <= s->u.s.n) {
        const char *hit = memmem(s->u.s.p + i, s->u.s.n - i, old->u.s.p, old->u.s.n);
        if (!hit)
            break;
        if (js_put(r, at, &o, s->u.s.p + i, (size_t)(hit - s->u.s.p) - i) ||
            js_put(r, at, &o, new->u.s.p, new->u.s.n))
            return -1;
        i = (size_t)(hit - s->u.s.p) + old->u.s.n;
        count--;
    }
    if (js_put(r, at, &o, s->u.s.p + i, s->u.s.n - i))
        return -1;
    return js_new(r, at, &o, out);
}

/* str.split / str.rsplit (sep NULL: runs of whitespace). */
static int js_split(struct jrender *r,
                    const struct jnode *at,
                    const struct jv *s,
                    const struct jv *sep,
                    int64_t maxsplit,
                    bool from_right,
                    struct jv *out)
{
    struct jv_list *l = jv_list_new(r->ar, 0);
    const char *p = s->u.s.p;
    size_t n = s->u.s.n;
    if (!l)
        return jr_oom(r, at);
    if (sep && sep->u.s.n == 0)
        return jr_fail(r, at, SH_EINVAL, "empty separator");
    if (!from_right) {
        size_t i = 0, cl;
        for (;;) {
            size_t start;
            if (!sep) {
                while (i < n && ju_isspace(ju_decode(p + i, n - i, &cl)))
                    i += cl;
                if (i >= n)
                    break;
                if (maxsplit == 0) {
                    size_t e = n;
                    struct jv t = jv_strn(p + i, e - i);
                    js_strip(&t, NULL, false, true, &t);
                    if (jv_list_push(r->ar, l, t))
                        return jr_oom(r, at);
                    break;
                }
                start = i;
                while (i < n && !ju_isspace(ju_decode(p + i, n - i, &cl)))
                    i += cl;
                if (jv_list_push(r->ar, l, jv_strn(p + start, i - start)))
                    return jr_oom(r, at);
                maxsplit--;
            } else {
                const char *hit =
                    maxsplit != 0 ? memmem(p + i, n - i, sep->u.s.p, sep->u.s.n) : NULL;
                size_t e = hit ? (size_t)(hit - p) : n;
                if (jv_list_push(r->ar, l, jv_strn(p + i, e - i)))
                    return jr_oom(r, at);
                if (!hit)
                    break;
                i = e + sep->u.s.n;
                maxsplit--;
            }
        }
    } else {
        /* collect from the right, then reverse */
        size_t e = n;
        for (;;) {
            if (!sep) {
                size_t k;
                while (e > 0 && ju_isspace((unsigned char)p[e - 1]))
                    e--;
                if (e == 0)
                    break;
                if (maxsplit == 0) {
                    struct jv t = jv_strn(p, e);
                    js_strip(&t, NULL, true, false, &t);
                    if (jv_list_push(r->ar, l, t))
                        return jr_oom(r, at);
                    break;
                }
                k = e;
                while (k > 0 && !ju_isspace((unsigned char)p[k - 1]))
                    k--;
                if (jv_list_push(r->ar, l, jv_strn(p + k, e - k)))
                    return jr_oom(r, at);
                e = k;
                maxsplit--;
            } else {
                size_t k = e, found = SIZE_MAX;
                while (maxsplit != 0 && k >= sep->u.s.n) {
                    if (memcmp(p + k - sep->u.s.n, sep->u.s.p, sep->u.s.n) == 0) {
                        found = k - sep->u.s.n;
                        break;
                    }
                    k--;
                }
                if (found == SIZE_MAX) {
                    if (jv_list_push(r->ar, l, jv_strn(p, e)))
                        return jr_oom(r, at);
                    break;
                }
                if (jv_list_push(r->ar, l, jv_strn(p + found + sep->u.s.n, e - found - sep->u.s.n)))
                    return jr_oom(r, at);
                e = found;
                maxsplit--;
            }
        }
        for (size_t a = 0, b = l->n ? l->n - 1 : 0; a < b; a++, b--) {
            struct jv t = l->items[a];
            l->items[a] = l->items[b];
            l->items[b] = t;
        }
    }
    *out = jv_list_val(l, false);
    return 0;
}

int js_splitlines(struct jrender *r,
                  const struct jnode *at,
                  const struct jv *s,
                  struct jv_list **out)
{
    struct jv_list *l = jv_list_new(r->ar, 0);
    size_t i = 0, start = 0, cl;
    if (!l)
        return jr_oom(r, at);
    while (i < s->u.s.n) {
        uint32_t cp = ju_decode(s->u.s.p + i, s->u.s.n - i, &cl);
        if (cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || (cp >= 0x1C && cp <= 0x1E) ||
            cp == 0x85 || cp == 0x2028 || cp == 0x2029) {
            if (jv_list_push(r->ar, l, jv_strn(s->u.s.p + start, i - start)))
                return jr_oom(r, at);
            i += cl;
            if (cp == '\r' && i < s->u.s.n && s->u.s.p[i] == '\n')
                i++;
            start = i;
            continue;
        }
        i += cl;
    }
    if (start < s->u.s.n && jv_list_push(r->ar, l, jv_strn(s->u.s.p + start, s->u.s.n - start)))
        return jr_oom(r, at);
    *out = l;
    return 0;
}

/* ---- methods ------------------------------------------------------------------ */
static int need_str(struct jrender *r, const struct jnode *at, const char *m, const struct jv *v)
{
    if (v->type != JV_STR)
        return jr_fail(r, at, SH_EINVAL, "%s() argument must be str, not %s", m, jv_type_name(v));
    return 0;
}

static bool affix(const struct jv *s, const struct jv *a, bool end)
{
    if (a->u.s.n > s->u.s.n)
        return false;
    return memcmp(s->u.s.p + (end ? s->u.s.n - a->u.s.n : 0), a->u.s.p, a->u.s.n) == 0;
}

static int str_method(struct jrender *r,
                      const struct jnode *at,
                      struct jv *s,
                      const char *m,
                      struct jv *args,
                      size_t nargs,
                      const char **kwn,
                      struct jv *kwv,
                      size_t nkw,
                      struct jv *out)
{
    if (!strcmp(m, "format"))
        return jpy_str_format(r, at, s, args, nargs, kwn, kwv, nkw, out);
    if (nkw && strcmp(m, "split") && strcmp(m, "rsplit"))
        return jr_fail(r, at, SH_EUNSUPPORTED, "keyword arguments to str.%s()", m);
    if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
        bool end = m[0] == 'e', hit = false;
        if (nargs != 1)
            return jr_fail(r, at, SH_EUNSUPPORTED, "str.%s() with start/end arguments", m);
        if (args[0].type == JV_LIST && (args[0].flags & JV_F_TUPLE)) {
            for (size_t i = 0; i < args[0].u.l->n; i++) {
                if (need_str(r, at, m, &args[0].u.l->items[i]))
                    return -1;
                hit |= affix(s, &args[0].u.l->items[i], end);
            }
        } else {
            if (args[0].type != JV_STR)
                return jr_fail(r, at, SH_EINVAL,
                               "%s first arg must be str or a tuple of str, "
                               "not %s",
                               m, jv_type_name(&args[0]));
            hit = affix(s, &args[0], end);
        }
        *out = jv_bool(hit);
        return 0;
    }
    if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip")) {
        const struct jv *chars = nargs && args[0].type != JV_NONE ? &args[0] : NULL;
        if (chars && need_str(r, at, m, chars))
            return -1;
        js_strip(s, chars, m[0] != 'r', m[0] != 'l', out);
        return 0;
    }
    if (!strcmp(m, "split") || !strcmp(m, "rsplit")) {
        const struct jv *sep = nargs > 0 && args[0].type != JV_NONE ? &args[0] : NULL;
        int64_t maxsplit = -1;
        if (nargs > 1 && args[1].type == JV_INT)
            maxsplit = args[1].u.i;
        for (size_t k = 0; k < nkw; k++) {
            if (!strcmp(kwn[k], "sep"))
                sep = kwv[k].type != JV_NONE ? &kwv[k] : NULL;
            else if (!strcmp(kwn[k], "maxsplit") && kwv[k].type == JV_INT)
                maxsplit = kwv[k].u.i;
        }
        if (sep && need_str(r, at, m, sep))
            return -1;
        return js_split(r, at, s, sep, maxsplit, m[0] == 'r', out);
    }
    if (!strcmp(m, "upper") || !strcmp(m, "lower") || !strcmp(m, "title") ||
        !strcmp(m, "capitalize") || !strcmp(m, "casefold"))
        return js_case(r, at, s,
                       m[0] == 'u'                  ? JS_UPPER
                       : m[0] == 't'                ? JS_TITLE
                       : m[1] == 'a' && m[2] == 'p' ? JS_CAPITALIZE
                                                    : JS_LOWER,
                       out);
    if (!strcmp(m, "replace")) {
        if (nargs < 2 || need_str(r, at, m, &args[0]) || need_str(r, at, m, &args[1]))
            return nargs < 2 ? jr_fail(r, at, SH_EINVAL, "replace() takes 2 or 3 arguments") : -1;
        return js_replace(r, at, s, &args[0], &args[1],
                          nargs > 2 && args[2].type == JV_INT ? args[2].u.i : -1, out);
    }
    if (!strcmp(m, "find") || !strcmp(m, "rfind") || !strcmp(m, "count") || !strcmp(m, "index") ||
        !strcmp(m, "rindex")) {
        const char *hit = NULL;
        int64_t count = 0;
        if (nargs != 1 || need_str(r, at, m, &args[0]))
            return nargs != 1 ? jr_fail(r, at, SH_EUNSUPPORTED, "str.%s() with start/end", m) : -1;
        if (m[0] == 'c') {
            if (args[0].u.s.n == 0) {
                count = (int64_t)ju_cplen(s->u.s.p, s->u.s.n) + 1;
            } else {
                size_t i = 0;
                while ((hit = memmem(s->u.s.p + i, s->u.s.n - i, args[0].u.s.p, args[0].u.s.n))) {
                    count++;
                    i = (size_t)(hit - s->u.s.p) + args[0].u.s.n;
                }
            }
            *out = jv_int(count);
            return 0;
        }
        if (m[0] == 'r') {
            for (size_t k = s->u.s.n + 1; k-- > 0;)
                if (k + args[0].u.s.n <= s->u.s.n &&
                    !memcmp(s->u.s.p + k, args[0].u.s.p, args[0].u.s.n)) {
                    hit = s->u.s.p + k;
                    break;
                }
        } else {
            hit =
                args[0].u.s.n ? memmem(s->u.s.p, s->u.s.n, args[0].u.s.p, args[0].u.s.n) : s->u.s.p;
        }
        if (!hit && strstr(m, "index"))
            return jr_fail(r, at, SH_EINVAL, "substring not found");
        *out = jv_int(hit ? (int64_t)ju_cplen(s->u.s.p, (size_t)(hit - s->u.s.p)) : -1);
        return 0;
    }
    if (!strcmp(m, "join")) {
        struct jv_list *items;
        struct jout o = {0};
        if (nargs != 1 || jr_iterate(r, at, &args[0], &items))
            return nargs != 1 ? jr_fail(r, at, SH_EINVAL, "join() takes one argument") : -1;
        for (size_t i = 0; i < items->n; i++) {
            if (items->items[i].type != JV_STR)
                return jout_free(&o), jr_fail(r, at, SH_EINVAL,
                                              "sequence item %zu: expected "
                                              "str instance, %s found",
                                              i, jv_type_name(&items->items[i]));
            if ((i && js_put(r, at, &o, s->u.s.p, s->u.s.n)) ||
                js_put(r, at, &o, items->items[i].u.s.p, items->items[i].u.s.n))
                return -1;
        }
        return js_new(r, at, &o, out);
    }
    if (!strcmp(m, "splitlines")) {
        struct jv_list *l;
        if (js_splitlines(r, at, s, &l))
            return -1;
        *out = jv_list_val(l, false);
        return 0;
    }
    if (!strncmp(m, "is", 2) && nargs == 0) {
        size_t i = 0, l;
        bool all = s->u.s.n > 0, any_cased = false;
        while (i < s->u.s.n) {
            uint32_t cp = ju_decode(s->u.s.p + i, s->u.s.n - i, &l);
            bool ok;
            if (!strcmp(m, "isdigit") || !strcmp(m, "isdecimal") || !strcmp(m, "isnumeric"))
                ok = cp >= '0' && cp <= '9';
            else if (!strcmp(m, "isalpha"))
                ok = ju_isalpha(cp);
            else if (!strcmp(m, "isalnum"))
                ok = ju_isalpha(cp) || (cp >= '0' && cp <= '9');
            else if (!strcmp(m, "isspace"))
                ok = ju_isspace(cp);
            else if (!strcmp(m, "islower") || !strcmp(m, "isupper")) {
                bool lower = ju_upper(cp) != cp, upper = ju_lower(cp) != cp;
                any_cased |= lower || upper;
                ok = m[2] == 'l' ? !upper : !lower;
            } else
                return jr_fail(r, at, SH_EUNSUPPORTED, "method str.%s() is not supported", m);
            all &= ok;
            i += l;
        }
        if (!strcmp(m, "islower") || !strcmp(m, "isupper"))
            all = all && any_cased;
        *out = jv_bool(all);
        return 0;
    }
    if (!strcmp(m, "removeprefix") || !strcmp(m, "removesuffix")) {
        bool end = m[6] == 's';
        if (nargs != 1 || need_str(r, at, m, &args[0]))
            return nargs != 1 ? jr_fail(r, at, SH_EINVAL, "%s() takes one argument", m) : -1;
        *out = *s;
        if (affix(s, &args[0], end)) {
            out->u.s.n -= args[0].u.s.n;
            if (!end)
                out->u.s.p += args[0].u.s.n;
        }
        return 0;
    }
    return jr_fail(r, at, SH_EUNSUPPORTED, "method str.%s() is not supported", m);
}

int jf_method(struct jrender *r,
              const struct jnode *at,
              struct jv *self,
              const char *name,
              struct jv *args,
              size_t nargs,
              const char **kwn,
              struct jv *kwv,
              size_t nkw,
              struct jv *out)
{
    if (ju_in_list(unsafe, name) && (self->type == JV_DICT || self->type == JV_LIST))
        return jr_fail(r, at, SH_EINVAL, "access to attribute '%s' of '%s' object is unsafe.", name,
                       jv_type_name(self));
    if (self->type == JV_STR)
        return str_method(r, at, self, name, args, nargs, kwn, kwv, nkw, out);
    if (nkw)
        return jr_fail(r, at, SH_EUNSUPPORTED, "keyword arguments to %s.%s()", jv_type_name(self),
                       name);
    if (self->type == JV_DICT) {
        const struct jv_dict *d = self->u.d;
        if (!strcmp(name, "get")) {
            const struct jv *v;
            if (nargs < 1 || nargs > 2)
                return jr_fail(r, at, SH_EINVAL, "get expected 1 or 2 arguments");
            v = jv_dict_getv(d, args[0]);
            *out = v ? *v : nargs == 2 ? args[1] : jv_none();
            return 0;
        }
        if (!strcmp(name, "items") || !strcmp(name, "keys") || !strcmp(name, "values")) {
            struct jv_list *l = jv_list_new(r->ar, d->n);
            if (!l)
                return jr_oom(r, at);
            for (size_t i = 0; i < d->n; i++) {
                if (name[0] == 'i') {
                    struct jv_list *pair = jv_list_new(r->ar, 2);
                    if (!pair)
                        return jr_oom(r, at);
                    pair->items[0] = d->keys[i];
                    pair->items[1] = d->vals[i];
                    pair->n = 2;
                    l->items[i] = jv_list_val(pair, true);
                } else {
                    l->items[i] = name[0] == 'k' ? d->keys[i] : d->vals[i];
                }
            }
            l->n = d->n;
            *out = jv_list_val(l, false);
            return 0;
        }
        if (!strcmp(name, "copy")) {
            struct jv_dict *c = jv_dict_new(r->ar, d->n);
            if (!c)
                return jr_oom(r, at);
            for (size_t i = 0; i < d->n; i++)
                if (jv_dict_set(r->ar, c, d->keys[i], d->vals[i]))
                    return jr_oom(r, at);
            *out = jv_dict_val(c, false);
            return 0;
        }
    }
    if (self->type == JV_LIST) {
        const struct jv_list *l = self->u.l;
        if ((!strcmp(name, "count") || !strcmp(name, "index")) && nargs == 1) {
            int64_t c = 0;
            for (size_t i = 0; i < l->n; i++)
                if (jv_equal(&l->items[i], &args[0])) {
                    if (name[0] == 'i') {
                        *out = jv_int((int64_t)i);
                        return 0;
                    }
                    c++;
                }
            if (name[0] == 'i')
                return jr_fail(r, at, SH_EINVAL, "value is not in list");
            *out = jv_int(c);
            return 0;
        }
        if (!strcmp(name, "copy")) {
            struct jv_list *c = jv_list_new(r->ar, l->n);
            if (!c)
                return jr_oom(r, at);
            if (l->n)
                memcpy(c->items, l->items, l->n * sizeof *c->items);
            c->n = l->n;
            *out = jv_list_val(c, false);
            return 0;
        }
    }
    return jr_fail(r, at, SH_EUNSUPPORTED, "method %s.%s() is not supported", jv_type_name(self),
                   name);
}
