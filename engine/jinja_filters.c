/* engine/jinja_filters.c: Jinja's built-in filters and tests as jinja2/
 * filters.py and tests.py define them, with transformers' tojson (json.dumps
 * with ensure_ascii=False and optional indent/separators/sort_keys). A name
 * outside the set fails with SH_EUNSUPPORTED naming it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jinja_internal.h"

/* Keyword or positional argument `pos` named `name`, or NULL. */
static struct jv *arg(struct jv *args,
                      size_t nargs,
                      const char **kwn,
                      struct jv *kwv,
                      size_t nkw,
                      size_t pos,
                      const char *name)
{
    for (size_t k = 0; k < nkw; k++)
        if (!strcmp(kwn[k], name))
            return &kwv[k];
    return pos < nargs ? &args[pos] : NULL;
}

static int to_str(struct jrender *r, const struct jnode *at, const struct jv *v, struct jv *out)
{
    if (jv_to_str(r->ar, r->ar->max, v, out))
        return jr_oom(r, at);
    return 0;
}

static int do_tojson(struct jrender *r,
                     const struct jnode *at,
                     struct jv *v,
                     struct jv *args,
                     size_t nargs,
                     const char **kwn,
                     struct jv *kwv,
                     size_t nkw,
                     struct jv *out)
{
    /* transformers: tojson(x, ensure_ascii=False, indent=None, separators=None,
     * sort_keys=False) */
    struct jv *ea = arg(args, nargs, kwn, kwv, nkw, 0, "ensure_ascii");
    struct jv *ind = arg(args, nargs, kwn, kwv, nkw, 1, "indent");
    struct jv *sep = arg(args, nargs, kwn, kwv, nkw, 2, "separators");
    struct jv *sk = arg(args, nargs, kwn, kwv, nkw, 3, "sort_keys");
    struct jjson_opts op = {.indent = -1};
    struct jout o = {0};
    struct sh_err e;
    char *spaces = NULL;
    int rc;

    op.ensure_ascii = ea && jv_truthy(ea);
    op.sort_keys = sk && jv_truthy(sk);
    if (ind && ind->type != JV_NONE) {
        if (ind->type == JV_STR) {
            op.indent_str = ind->u.s.p;
            op.indent_len = ind->u.s.n;
        } else if (ind->type == JV_INT || ind->type == JV_BOOL) {
            int64_t w = ind->type == JV_BOOL ? ind->u.b : ind->u.i;
            if (w > 64)
                return jr_fail(r, at, SH_EUNSUPPORTED, "tojson indent above 64");
            w = w < 0 ? 0 : w;
            if (!(spaces = ja_alloc(r->ar, (size_t)w + 1)))
                return jr_oom(r, at);
            memset(spaces, ' ', (size_t)w);
            op.indent_str = spaces;
            op.indent_len = (size_t)w;
        } else {
            return jr_fail(r, at, SH_EINVAL, "tojson indent must be an int or a string");
        }
    }
    op.item_sep = op.indent_str ? "," : ", ";
    op.item_sep_len = op.indent_str ? 1 : 2;
    op.key_sep = ": ";
    op.key_sep_len = 2;
    if (sep && sep->type != JV_NONE) {
        if (sep->type != JV_LIST || sep->u.l->n != 2 || sep->u.l->items[0].type != JV_STR ||
            sep->u.l->items[1].type != JV_STR)
            return jr_fail(r, at, SH_EINVAL, "tojson separators must be two strings");
        op.item_sep = sep->u.l->items[0].u.s.p;
        op.item_sep_len = sep->u.l->items[0].u.s.n;
        op.key_sep = sep->u.l->items[1].u.s.p;
        op.key_sep_len = sep->u.l->items[1].u.s.n;
    }
    sh_err_clear(&e);
    rc = jv_tojson(r->ar, &o, r->ar->max, v, &op, 0, &e);
    if (rc) {
        jout_free(&o);
        if (rc == SH_ETOOBIG || rc == SH_ENOMEM)
            return e.code ? jr_fail(r, at, rc, "%s", e.msg) : jr_oom(r, at);
        return jr_fail(r, at, rc, "tojson: %s", e.msg);
    }
    return js_new(r, at, &o, out);
}

/* Python len(); -1 with error for values without one. */
static int do_len(struct jrender *r, const struct jnode *at, const struct jv *v, int64_t *n)
{
    switch (v->type) {
    case JV_STR:
        *n = (int64_t)ju_cplen(v->u.s.p, v->u.s.n);
        return 0;
    case JV_LIST:
        *n = (int64_t)v->u.l->n;
        return 0;
    case JV_DICT:
        *n = (int64_t)v->u.d->n;
        return 0;
    case JV_UNDEF:
        *n = 0;
        return 0;
    case JV_LOOP:
        *n = (int64_t)v->u.loop->items->n;
        return 0;
    default:
        return jr_fail(r, at, SH_EINVAL, "object of type '%s' has no len()", jv_type_name(v));
    }
}

/* environment.getitem with a dotted path ("a.b.0"), as map/selectattr/sort
 * use it. */
static int attr_path(struct jrender *r,
                     const struct jnode *at,
                     const struct jv *v,
                     const struct jv *path,
                     struct jv *out)
{
    const char *p = path->u.s.p, *end = p + path->u.s.n;
    *out = *v;
    while (p <= end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        size_t n = dot ? (size_t)(dot - p) : (size_t)(end - p);
        struct jv key = jv_strn(p, n), res;
        int64_t idx;
        char buf[24];
        if (n && n < sizeof buf) {
            memcpy(buf, p, n);
            buf[n] = '\0';
            if (sh_parse_i64(buf, INT64_MIN, INT64_MAX, &idx))
                key = jv_int(idx);
        }
        if (out->type == JV_UNDEF)
            return 0;
        if (jr_getitem(r, at, out, &key, &res))
            return -1;
        *out = res;
        if (!dot)
            break;
        p = dot + 1;
    }
    return 0;
}

/* selectattr/rejectattr/select/reject */
static int do_select(struct jrender *r,
                     const struct jnode *at,
                     struct jv *v,
                     struct jv *args,
                     size_t nargs,
                     bool by_attr,
                     bool keep,
                     struct jv *out)
{
    struct jv_list *items, *res;
    size_t first = by_attr ? 1 : 0;
    if (jr_iterate(r, at, v, &items) || !(res = jv_list_new(r->ar, items->n)))
        return r->code ? -1 : jr_oom(r, at);
    if (by_attr && (nargs < 1 || args[0].type != JV_STR))
        return jr_fail(r, at, SH_EINVAL, "selectattr/rejectattr need an attribute name");
    for (size_t i = first; i < nargs && i <= first; i++)
        if (args[i].type != JV_STR)
            return jr_fail(r, at, SH_EINVAL, "test name must be a string");
    for (size_t i = 0; i < items->n; i++) {
        struct jv item = items->items[i];
        int t;
        if (by_attr && attr_path(r, at, &items->items[i], &args[0], &item))
            return -1;
        if (nargs > first) {
            char *tname = ja_strndup(r->ar, args[first].u.s.p, args[first].u.s.n);
            if (!tname)
                return jr_oom(r, at);
            t = jf_test(r, at, tname, &item, args + first + 1, nargs - first - 1);
            if (t < 0)
                return -1;
        } else {
            t = jv_truthy(&item);
        }
        if ((t != 0) == keep)
            res->items[res->n++] = items->items[i];
    }
    *out = jv_list_val(res, false);
    return 0;
}

static int do_map(struct jrender *r,
                  const struct jnode *at,
                  struct jv *v,
                  struct jv *args,
                  size_t nargs,
                  const char **kwn,
                  struct jv *kwv,
                  size_t nkw,
                  struct jv *out)
{
    struct jv_list *items, *res;
    struct jv *attr = arg(NULL, 0, kwn, kwv, nkw, 0, "attribute");
    struct jv *def = arg(NULL, 0, kwn, kwv, nkw, 0, "default");
    if (jr_iterate(r, at, v, &items) || !(res = jv_list_new(r->ar, items->n)))
        return r->code ? -1 : jr_oom(r, at);
    if (!attr && (nargs < 1 || args[0].type != JV_STR))
        return jr_fail(r, at, SH_EINVAL, "map needs a filter name or attribute=");
    if (attr && attr->type != JV_STR)
        return jr_fail(r, at, SH_EINVAL, "map attribute must be a string");
    for (size_t i = 0; i < items->n; i++) {
        struct jv *dst = &res->items[res->n++];
        if (attr) {
            if (attr_path(r, at, &items->items[i], attr, dst))
                return -1;
            if (dst->type == JV_UNDEF && def)
                *dst = *def;
        } else {
            char *fname = ja_strndup(r->ar, args[0].u.s.p, args[0].u.s.n);
            if (!fname)
                return jr_oom(r, at);
            if (jf_filter(r, at, fname, &items->items[i], args + 1, nargs - 1, kwn, kwv, nkw, dst))
                return -1;
        }
    }
    *out = jv_list_val(res, false);
    return 0;
}

/* Sort key comparison with Jinja's case-insensitive default for strings. */
struct sort_ctx {
    struct jrender *r;
    const struct jnode *at;
    bool case_sensitive;
    int failed;
};

static int key_cmp(struct sort_ctx *c, const struct jv *a, const struct jv *b)
{
    struct jv la = *a, lb = *b;
    int cmp;
    if (!c->case_sensitive) {
        if (a->type == JV_STR && js_case(c->r, c->at, a, JS_LOWER, &la))
            c->failed = 1;
        if (b->type == JV_STR && js_case(c->r, c->at, b, JS_LOWER, &lb))
            c->failed = 1;
    }
    if (!jv_order(&la, &lb, &cmp)) {
        if (!c->failed)
            jr_fail(c->r, c->at, SH_EINVAL, "'<' not supported between instances of '%s' and '%s'",
                    jv_type_name(a), jv_type_name(b));
        c->failed = 1;
        return 0;
    }
    return cmp == 2 ? 0 : cmp;
}

/* Stable insertion sort of items by keys (parallel arrays). */
static int
stable_sort(struct sort_ctx *c, struct jv *items, struct jv *keys, size_t n, bool reverse)
{
    for (size_t i = 1; i < n && !c->failed; i++) {
        struct jv it = items[i], k = keys[i];
        size_t j = i;
        while (j > 0) {
            int cmp = key_cmp(c, &keys[j - 1], &k);
            if (c->failed || (reverse ? cmp >= 0 : cmp <= 0))
                break;
            items[j] = items[j - 1];
            keys[j] = keys[j - 1];
            j--;
        }
        items[j] = it;
        keys[j] = k;
    }
    return c->failed ? -1 : 0;
}

static int do_sort(struct jrender *r,
                   const struct jnode *at,
                   struct jv *v,
                   bool reverse,
                   bool case_sensitive,
                   struct jv *attr,
                   bool dictsort_by_value,
                   struct jv *out)
{
    struct jv_list *items, *res;
    struct jv *keys;
    struct sort_ctx c = {r, at, case_sensitive, 0};
    if (v->type == JV_DICT) {
        /* dictsort: (key, value) pairs */
        if (!(items = jv_list_new(r->ar, v->u.d->n)))
            return jr_oom(r, at);
        for (size_t i = 0; i < v->u.d->n; i++) {
            struct jv_list *pair = jv_list_new(r->ar, 2);
            if (!pair)
                return jr_oom(r, at);
            pair->items[0] = v->u.d->keys[i];
            pair->items[1] = v->u.d->vals[i];
            pair->n = 2;
            items->items[items->n++] = jv_list_val(pair, true);
        }
    } else if (jr_iterate(r, at, v, &items)) {
        return -1;
    }
    if (items->n > 100000)
        return jr_fail(r, at, SH_EUNSUPPORTED, "sort of more than 100000 items");
    if (!(res = jv_list_new(r->ar, items->n)) ||
        !(keys = ja_alloc(r->ar, (items->n ? items->n : 1) * sizeof *keys)))
        return jr_oom(r, at);
    for (size_t i = 0; i < items->n; i++) {
        res->items[i] = items->items[i];
        if (v->type == JV_DICT)
            keys[i] = items->items[i].u.l->items[dictsort_by_value ? 1 : 0];
        else if (attr) {
            if (attr_path(r, at, &items->items[i], attr, &keys[i]))
                return -1;
        } else
            keys[i] = items->items[i];
    }
    res->n = items->n;
    if (jr_step(r, at, (uint64_t)items->n * items->n / 4 + 1) ||
        stable_sort(&c, res->items, keys, res->n, reverse))
        return -1;
    *out = jv_list_val(res, false);
    return 0;
}

static int do_indent(struct jrender *r,
                     const struct jnode *at,
                     struct jv *s,
                     struct jv *width,
                     bool first,
                     bool blank,
                     struct jv *out)
{
    struct jout o = {0};
    struct jv_list *lines;
    struct jv ind = jv_strn("    ", 4), withnl;
    if (width && width->type == JV_STR) {
        ind = *width;
    } else if (width && (width->type == JV_INT || width->type == JV_BOOL)) {
        int64_t w = width->type == JV_BOOL ? width->u.b : width->u.i;
        char *sp;
        if (w > 256)
            return jr_fail(r, at, SH_EUNSUPPORTED, "indent width above 256");
        w = w < 0 ? 0 : w;
        if (!(sp = ja_alloc(r->ar, (size_t)w + 1)))
            return jr_oom(r, at);
        memset(sp, ' ', (size_t)w);
        ind = jv_strn(sp, (size_t)w);
    }
    /* s += "\n" then splitlines(), as jinja2's do_indent */
    {
        struct jv nl = jv_strn("\n", 1);
        if (jr_binop(r, at, JO_ADD, s, &nl, &withnl) || js_splitlines(r, at, &withnl, &lines))
            return -1;
    }
    if (first && js_put(r, at, &o, ind.u.s.p, ind.u.s.n))
        return -1;
    for (size_t i = 0; i < lines->n; i++) {
        const struct jv *ln = &lines->items[i];
        if (i && js_put(r, at, &o, "\n", 1))
            return -1;
        if (i && (blank || ln->u.s.n) && js_put(r, at, &o, ind.u.s.p, ind.u.s.n))
            return -1;
        if (js_put(r, at, &o, ln->u.s.p, ln->u.s.n))
            return -1;
    }
    return js_new(r, at, &o, out);
}

static int do_round(struct jrender *r,
                    const struct jnode *at,
                    struct jv *v,
                    struct jv *precv,
                    struct jv *methodv,
                    struct jv *out)
{
    int64_t prec = precv && precv->type == JV_INT ? precv->u.i : 0;
    double x, scale;
    char buf[400];
    if (!jv_is_number(v))
        return jr_fail(r, at, SH_EINVAL, "round() of a %s", jv_type_name(v));
    if (methodv && methodv->type == JV_STR && methodv->u.s.n &&
        strncmp(methodv->u.s.p, "common", methodv->u.s.n)) {
        bool up = methodv->u.s.n == 4 && !memcmp(methodv->u.s.p, "ceil", 4);
        if (!up && !(methodv->u.s.n == 5 && !memcmp(methodv->u.s.p, "floor", 5)))
            return jr_fail(r, at, SH_EINVAL, "method must be common, ceil or floor");
        scale = pow(10.0, (double)prec);
        x = jv_as_double(v) * scale;
        *out = jv_float((up ? ceil(x) : floor(x)) / scale);
        return 0;
    }
    if (v->type != JV_FLOAT) {
        *out = v->type == JV_BOOL ? jv_int(v->u.b) : *v; /* round(int, n) stays an int */
        return 0;
    }
    if (prec < 0 || prec > 300)
        return jr_fail(r, at, SH_EUNSUPPORTED, "round precision outside 0..300");
    /* correctly rounded, ties to even on the exact binary value, as Python */
    snprintf(buf, sizeof buf, "%.*f", (int)prec, v->u.f);
    *out = jv_float(strtod(buf, NULL));
    return 0;
}

/* int()/float() conversions as jinja's do_int / do_float */
static int do_number(struct jrender *r,
                     const struct jnode *at,
                     struct jv *v,
                     bool want_int,
                     struct jv *def,
                     struct jv *out)
{
    double d;
    int64_t i;
    if (v->type == JV_INT || v->type == JV_BOOL) {
        int64_t x = v->type == JV_BOOL ? v->u.b : v->u.i;
        *out = want_int ? jv_int(x) : jv_float((double)x);
        return 0;
    }
    if (v->type == JV_FLOAT) {
        if (!want_int) {
            *out = *v;
            return 0;
        }
        if (isfinite(v->u.f) && fabs(v->u.f) < 9.2e18) {
            *out = jv_int((int64_t)v->u.f);
            return 0;
        }
    } else if (v->type == JV_STR) {
        struct jv t;
        char *s;
        js_strip(v, NULL, true, true, &t);
        if (!(s = ja_alloc(r->ar, t.u.s.n + 1)))
            return jr_oom(r, at);
        {
            size_t o = 0;
            for (size_t k = 0; k < t.u.s.n; k++)
                if (t.u.s.p[k] != '_')
                    s[o++] = t.u.s.p[k];
            s[o] = '\0';
        }
        if (sh_parse_i64(s, INT64_MIN, INT64_MAX, &i)) {
            *out = want_int ? jv_int(i) : jv_float((double)i);
            return 0;
        }
        if (sh_parse_double(s, -INFINITY, INFINITY, &d) || !strcasecmp(s, "inf") ||
            !strcasecmp(s, "nan") || !strcasecmp(s, "-inf") || !strcasecmp(s, "infinity") ||
            !strcasecmp(s, "+inf")) {
            d = strtod(s, NULL);
            if (!want_int) {
                *out = jv_float(d);
                return 0;
            }
            if (isfinite(d) && fabs(d) < 9.2e18) {
                *out = jv_int((int64_t)d);
                return 0;
            }
        }
    }
    *out = def ? *def : want_int ? jv_int(0) : jv_float(0.0);
    return 0;
}

int jf_filter(struct jrender *r,
              const struct jnode *at,
              const char *f,
              struct jv *v,
              struct jv *args,
              size_t nargs,
              const char **kwn,
              struct jv *kwv,
              size_t nkw,
              struct jv *out)
{
    struct jv s, *a0 = nargs ? &args[0] : NULL;
    struct jv_list *items;
    int64_t n = 0;

    if (!strcmp(f, "tojson"))
        return do_tojson(r, at, v, args, nargs, kwn, kwv, nkw, out);
    if (!strcmp(f, "default") || !strcmp(f, "d")) {
        struct jv *def = arg(args, nargs, kwn, kwv, nkw, 0, "default_value");
        struct jv *boolean = arg(args, nargs, kwn, kwv, nkw, 1, "boolean");
        bool use = v->type == JV_UNDEF || (boolean && jv_truthy(boolean) && !jv_truthy(v));
        *out = use ? (def ? *def : jv_strn("", 0)) : *v;
        return 0;
    }
    if (!strcmp(f, "length") || !strcmp(f, "count")) {
        if (do_len(r, at, v, &n))
            return -1;
        *out = jv_int(n);
        return 0;
    }
    if (!strcmp(f, "safe")) {
        *out = *v;
        return 0;
    }
    if (!strcmp(f, "string"))
        return to_str(r, at, v, out);
    if (!strcmp(f, "trim") || !strcmp(f, "upper") || !strcmp(f, "lower") ||
        !strcmp(f, "capitalize") || !strcmp(f, "title") || !strcmp(f, "replace") ||
        !strcmp(f, "indent") || !strcmp(f, "format") || !strcmp(f, "escape") || !strcmp(f, "e") ||
        !strcmp(f, "wordcount") || !strcmp(f, "center")) {
        if (to_str(r, at, v, &s))
            return -1;
        if (!strcmp(f, "trim")) {
            struct jv *chars = arg(args, nargs, kwn, kwv, nkw, 0, "chars");
            if (chars && chars->type != JV_NONE && chars->type != JV_STR)
                return jr_fail(r, at, SH_EINVAL, "trim chars must be a string");
            js_strip(&s, chars && chars->type == JV_STR ? chars : NULL, true, true, out);
            return 0;
        }
        if (!strcmp(f, "upper") || !strcmp(f, "lower") || !strcmp(f, "capitalize") ||
            !strcmp(f, "title"))
            return js_case(r, at, &s,
                           f[0] == 'u'   ? JS_UPPER
                           : f[0] == 'l' ? JS_LOWER
                           : f[0] == 'c' ? JS_CAPITALIZE
                                         : JS_WORDTITLE,
                           out);
        if (!strcmp(f, "replace")) {
            struct jv *cnt = arg(args, nargs, kwn, kwv, nkw, 2, "count"), o, nw;
            if (nargs < 2)
                return jr_fail(r, at, SH_EINVAL, "replace needs old and new strings");
            if (to_str(r, at, &args[0], &o) || to_str(r, at, &args[1], &nw))
                return -1;
            return js_replace(r, at, &s, &o, &nw, cnt && cnt->type == JV_INT ? cnt->u.i : -1, out);
        }
        if (!strcmp(f, "indent")) {
            struct jv *first = arg(args, nargs, kwn, kwv, nkw, 1, "first");
            struct jv *blank = arg(args, nargs, kwn, kwv, nkw, 2, "blank");
            return do_indent(r, at, &s, arg(args, nargs, kwn, kwv, nkw, 0, "width"),
                             first && jv_truthy(first), blank && jv_truthy(blank), out);
        }
        if (!strcmp(f, "format")) {
            struct jv tup;
            struct jv_list *l;
            if (nkw) {
                struct jv_dict *d = jv_dict_new(r->ar, nkw);
                if (!d || jv_dict_set_kwargs(r->ar, d, kwn, kwv, nkw))
                    return jr_oom(r, at);
                tup = jv_dict_val(d, false);
                return jpy_format(r, at, &s, &tup, out);
            }
            if (!(l = jv_list_new(r->ar, nargs)))
                return jr_oom(r, at);
            for (size_t k = 0; k < nargs; k++)
                l->items[l->n++] = args[k];
            tup = jv_list_val(l, true);
            return jpy_format(r, at, &s, &tup, out);
        }
        if (!strcmp(f, "escape") || !strcmp(f, "e")) {
            struct jout o = {0};
            for (size_t k = 0; k < s.u.s.n; k++) {
                const char *rep = NULL;
                switch (s.u.s.p[k]) {
                case '&':
                    rep = "&amp;";
                    break;
                case '<':
                    rep = "&lt;";
                    break;
                case '>':
                    rep = "&gt;";
                    break;
                case '"':
                    rep = "&#34;";
                    break;
                case '\'':
                    rep = "&#39;";
                    break;
                default:
                    break;
                }
                if (js_put(r, at, &o, rep ? rep : s.u.s.p + k, rep ? strlen(rep) : 1))
                    return -1;
            }
            return js_new(r, at, &o, out);
        }
        return jr_fail(r, at, SH_EUNSUPPORTED, "filter '%s' is not supported", f);
    }
    if (!strcmp(f, "items")) {
        struct jv items_args;
        if (v->type == JV_UNDEF) {
            if (!(items = jv_list_new(r->ar, 0)))
                return jr_oom(r, at);
            *out = jv_list_val(items, false);
            return 0;
        }
        if (v->type != JV_DICT)
            return jr_fail(r, at, SH_EINVAL, "Can only get item pairs from a mapping.");
        return jf_method(r, at, v, "items", &items_args, 0, NULL, NULL, 0, out);
    }
    if (!strcmp(f, "list")) {
        struct jv_list *copy;
        if (jr_iterate(r, at, v, &items) || !(copy = jv_list_new(r->ar, items->n)))
            return r->code ? -1 : jr_oom(r, at);
        if (items->n)
            memcpy(copy->items, items->items, items->n * sizeof *copy->items);
        copy->n = items->n;
        *out = jv_list_val(copy, false);
        return 0;
    }
    if (!strcmp(f, "first") || !strcmp(f, "last")) {
        if (v->type == JV_DICT && f[0] == 'l')
            return jr_fail(r, at, SH_EUNSUPPORTED, "last of a dict");
        if (jr_iterate(r, at, v, &items))
            return -1;
        if (!items->n) {
            const char *msg = f[0] == 'f' ? "No first item, sequence was empty."
                                          : "No last item, sequence was empty.";
            *out = jv_undef(r->ar, msg, strlen(msg), NULL);
            return out->u.undef ? 0 : jr_oom(r, at);
        }
        *out = items->items[f[0] == 'f' ? 0 : items->n - 1];
        return 0;
    }
    if (!strcmp(f, "reverse")) {
        struct jv_list *rev;
        if (v->type == JV_STR) {
            struct jout o = {0};
            if (jr_iterate(r, at, v, &items))
                return -1;
            for (size_t k = items->n; k-- > 0;)
                if (js_put(r, at, &o, items->items[k].u.s.p, items->items[k].u.s.n))
                    return -1;
            return js_new(r, at, &o, out);
        }
        if (jr_iterate(r, at, v, &items) || !(rev = jv_list_new(r->ar, items->n)))
            return r->code ? -1 : jr_oom(r, at);
        for (size_t k = items->n; k-- > 0;)
            rev->items[rev->n++] = items->items[k];
        *out = jv_list_val(rev, false);
        return 0;
    }
    if (!strcmp(f, "join")) {
        struct jv *d = arg(args, nargs, kwn, kwv, nkw, 0, "d");
        struct jv *attr = arg(args, nargs, kwn, kwv, nkw, 1, "attribute");
        struct jout o = {0};
        struct jv sep = jv_strn("", 0);
        if (d && to_str(r, at, d, &sep))
            return -1;
        if (jr_iterate(r, at, v, &items))
            return -1;
        for (size_t k = 0; k < items->n; k++) {
            struct jv it = items->items[k];
            if (attr && attr->type == JV_STR && attr_path(r, at, &items->items[k], attr, &it))
                return jout_free(&o), -1;
            if (to_str(r, at, &it, &s))
                return jout_free(&o), -1;
            if ((k && js_put(r, at, &o, sep.u.s.p, sep.u.s.n)) ||
                js_put(r, at, &o, s.u.s.p, s.u.s.n))
                return -1;
        }
        return js_new(r, at, &o, out);
    }
    if (!strcmp(f, "int") || !strcmp(f, "float"))
        return do_number(r, at, v, f[0] == 'i', arg(args, nargs, kwn, kwv, nkw, 0, "default"), out);
    if (!strcmp(f, "abs")) {
        if (!jv_is_number(v))
            return jr_fail(r, at, SH_EINVAL, "bad operand type for abs(): '%s'", jv_type_name(v));
        if (v->type == JV_FLOAT)
            *out = jv_float(fabs(v->u.f));
        else {
            int64_t x = v->type == JV_BOOL ? v->u.b : v->u.i;
            if (x == INT64_MIN)
                return jr_fail(r, at, SH_EUNSUPPORTED, "integer result does not fit in 64 bits");
            *out = jv_int(x < 0 ? -x : x);
        }
        return 0;
    }
    if (!strcmp(f, "round"))
        return do_round(r, at, v, arg(args, nargs, kwn, kwv, nkw, 0, "precision"),
                        arg(args, nargs, kwn, kwv, nkw, 1, "method"), out);
    if (!strcmp(f, "map"))
        return do_map(r, at, v, args, nargs, kwn, kwv, nkw, out);
    if (!strcmp(f, "selectattr") || !strcmp(f, "rejectattr") || !strcmp(f, "select") ||
        !strcmp(f, "reject"))
        return do_select(r, at, v, args, nargs, strstr(f, "attr") != NULL, f[0] == 's', out);
    if (!strcmp(f, "unique")) {
        struct jv *cs = arg(args, nargs, kwn, kwv, nkw, 0, "case_sensitive");
        struct jv *attr = arg(args, nargs, kwn, kwv, nkw, 1, "attribute");
        struct jv_list *res, *seen;
        if (jr_iterate(r, at, v, &items) || !(res = jv_list_new(r->ar, items->n)) ||
            !(seen = jv_list_new(r->ar, items->n)))
            return r->code ? -1 : jr_oom(r, at);
        if (jr_step(r, at, (uint64_t)items->n * items->n / 4 + 1))
            return -1;
        for (size_t k = 0; k < items->n; k++) {
            struct jv key = items->items[k];
            bool dup = false;
            if (attr && attr->type == JV_STR && attr_path(r, at, &items->items[k], attr, &key))
                return -1;
            if (key.type == JV_STR && !(cs && jv_truthy(cs)) &&
                js_case(r, at, &key, JS_LOWER, &key))
                return -1;
            for (size_t j = 0; j < seen->n && !dup; j++)
                dup = jv_equal(&seen->items[j], &key);
            if (!dup) {
                seen->items[seen->n++] = key;
                res->items[res->n++] = items->items[k];
            }
        }
        *out = jv_list_val(res, false);
        return 0;
    }
    if (!strcmp(f, "sort")) {
        struct jv *rev = arg(args, nargs, kwn, kwv, nkw, 0, "reverse");
        struct jv *cs = arg(args, nargs, kwn, kwv, nkw, 1, "case_sensitive");
        struct jv *attr = arg(args, nargs, kwn, kwv, nkw, 2, "attribute");
        if (v->type == JV_DICT && jr_iterate(r, at, v, &items) == 0) {
            struct jv keys = jv_list_val(items, false);
            return do_sort(r, at, &keys, rev && jv_truthy(rev), cs && jv_truthy(cs),
                           attr && attr->type == JV_STR ? attr : NULL, false, out);
        }
        return do_sort(r, at, v, rev && jv_truthy(rev), cs && jv_truthy(cs),
                       attr && attr->type == JV_STR ? attr : NULL, false, out);
    }
    if (!strcmp(f, "dictsort")) {
        struct jv *cs = arg(args, nargs, kwn, kwv, nkw, 0, "case_sensitive");
        struct jv *by = arg(args, nargs, kwn, kwv, nkw, 1, "by");
        struct jv *rev = arg(args, nargs, kwn, kwv, nkw, 2, "reverse");
        if (v->type != JV_DICT)
            return jr_fail(r, at, SH_EINVAL, "dictsort needs a mapping");
        return do_sort(r, at, v, rev && jv_truthy(rev), cs && jv_truthy(cs), NULL,
                       by && by->type == JV_STR && by->u.s.n == 5 && !memcmp(by->u.s.p, "value", 5),
                       out);
    }
    if (!strcmp(f, "sum")) {
        struct jv *attr = arg(args, nargs, kwn, kwv, nkw, 0, "attribute");
        struct jv *start = arg(args, nargs, kwn, kwv, nkw, 1, "start");
        struct jv acc = start ? *start : jv_int(0);
        if (jr_iterate(r, at, v, &items))
            return -1;
        for (size_t k = 0; k < items->n; k++) {
            struct jv it = items->items[k];
            if (attr && attr->type == JV_STR && attr_path(r, at, &items->items[k], attr, &it))
                return -1;
            if (jr_binop(r, at, JO_ADD, &acc, &it, &acc))
                return -1;
        }
        *out = acc;
        return 0;
    }
    if (!strcmp(f, "min") || !strcmp(f, "max")) {
        struct jv *cs = arg(args, nargs, kwn, kwv, nkw, 0, "case_sensitive");
        struct jv *attr = arg(args, nargs, kwn, kwv, nkw, 1, "attribute");
        struct jv sorted;
        if (do_sort(r, at, v, f[1] == 'a', cs && jv_truthy(cs),
                    attr && attr->type == JV_STR ? attr : NULL, false, &sorted))
            return -1;
        if (!sorted.u.l->n) {
            *out = jv_undef(r->ar, "No aggregated item, sequence was empty.", 39, NULL);
            return out->u.undef ? 0 : jr_oom(r, at);
        }
        *out = sorted.u.l->items[0];
        return 0;
    }
    if (!strcmp(f, "attr")) {
        char *name;
        if (!a0 || a0->type != JV_STR)
            return jr_fail(r, at, SH_EINVAL, "attr needs a name");
        if (!(name = ja_strndup(r->ar, a0->u.s.p, a0->u.s.n)))
            return jr_oom(r, at);
        /* Python getattr only: a dict's keys are not attributes */
        if (v->type == JV_DICT && !jf_has_method(v, name)) {
            *out = jv_undef(r->ar, name, strlen(name), "dict object");
            return out->u.undef ? 0 : jr_oom(r, at);
        }
        return jr_getattr(r, at, v, name, out);
    }
    return jr_fail(r, at, SH_EUNSUPPORTED, "filter '%s' is not supported", f);
}
