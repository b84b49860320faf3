/* engine/jinja_eval.c: evaluates the AST: expressions and statements with
 * Jinja's scoping (a for body gets a fresh scope per iteration; if does not
 * scope; macros close over the scope they were defined in). Calls, globals
 * and the public entry points are in jinja_call.c, operators in
 * jinja_ops.c, filters in jinja_filters.c. */
#include <stdlib.h>
#include <string.h>

#include "engine/jinja_internal.h"

int jr_enter(struct jrender *r, const struct jnode *at)
{
    if (++r->depth > r->max_depth)
        return jr_fail(r, at, SH_ETOOBIG, "template recursion deeper than %zu", r->max_depth);
    return 0;
}

struct jscope *jr_scope_new(struct jrender *r, struct jscope *parent)
{
    struct jscope *sc = ja_alloc(r->ar, sizeof *sc);
    if (!sc)
        return NULL;
    sc->parent = parent;
    sc->vars = jv_dict_new(r->ar, 0);
    return sc->vars ? sc : NULL;
}

static struct jv *lookup(struct jscope *sc, const char *name)
{
    size_t n = strlen(name);
    for (; sc; sc = sc->parent) {
        struct jv *v = jv_dict_get(sc->vars, name, n);
        if (v)
            return v;
    }
    return NULL;
}

int jr_assign(
    struct jrender *r, const struct jnode *at, struct jscope *sc, const char *name, struct jv v)
{
    if (jv_dict_set(r->ar, sc->vars, jv_strn(name, strlen(name)), v))
        return jr_oom(r, at);
    return 0;
}

/* Binds names to v, unpacking a sequence when unpack is set. */
static int bind(struct jrender *r,
                const struct jnode *at,
                struct jscope *sc,
                const char *const *names,
                size_t n,
                bool unpack,
                const struct jv *v)
{
    struct jv_list *items;
    if (!unpack)
        return jr_assign(r, at, sc, names[0], *v);
    if (jr_iterate(r, at, v, &items))
        return -1;
    if (items->n != n)
        return jr_fail(r, at, SH_EINVAL, "cannot unpack %zu values into %zu names", items->n, n);
    for (size_t i = 0; i < n; i++)
        if (jr_assign(r, at, sc, names[i], items->items[i]))
            return -1;
    return 0;
}

static int emit(struct jrender *r, const struct jnode *at, const char *p, size_t n)
{
    int rc = jout_put(r->out, r->max_output, p, n);
    if (rc == SH_ETOOBIG)
        return jr_fail(r, at, SH_ETOOBIG, "template output exceeds %zu bytes", r->max_output);
    if (rc)
        return jr_fail(r, at, SH_ENOMEM, "out of memory");
    return 0;
}

int jr_capture(struct jrender *r, struct jscope *scope, const struct jnode *body, struct jv *out)
{
    struct jout cap = {0}, *saved = r->out;
    int rc;
    r->out = &cap;
    rc = jr_exec(r, scope, body);
    r->out = saved;
    if (rc >= 0)
        rc = jr_str(r, body, cap.p ? cap.p : "", cap.n, out);
    jout_free(&cap);
    return rc < 0 ? -1 : 0;
}

static int eval_args(
    struct jrender *r, struct jscope *sc, const struct jnode *nd, struct jv **args, struct jv **kwv)
{
    size_t na = nd->n ? nd->n : 1, nk = nd->nkw ? nd->nkw : 1;
    *args = ja_alloc(r->ar, na * sizeof **args);
    *kwv = ja_alloc(r->ar, nk * sizeof **kwv);
    if (!*args || !*kwv)
        return jr_oom(r, nd);
    for (size_t i = 0; i < nd->n; i++)
        if (jr_eval(r, sc, nd->items[i], &(*args)[i]))
            return -1;
    for (size_t i = 0; i < nd->nkw; i++)
        if (jr_eval(r, sc, nd->kwvals[i], &(*kwv)[i]))
            return -1;
    return 0;
}

static int eval_call(struct jrender *r,
                     struct jscope *sc,
                     const struct jnode *nd,
                     const struct jv *caller,
                     struct jv *out)
{
    struct jv fn, *args, *kwv;
    const struct jnode *callee = nd->a;

    if (callee->kind == JN_GETATTR) {
        /* obj.method(...): a method of the object's type wins, as in Python */
        struct jv obj;
        if (jr_eval(r, sc, callee->a, &obj))
            return -1;
        if (jr_getattr(r, callee, &obj, callee->name, &fn))
            return -1;
    } else if (jr_eval(r, sc, callee, &fn)) {
        return -1;
    }
    if (eval_args(r, sc, nd, &args, &kwv))
        return -1;
    if (caller) {
        if (fn.type != JV_FUNC || fn.u.fn->kind != JF_MACRO)
            return jr_fail(r, nd, SH_EINVAL, "{%% call %%} needs a macro");
        return jr_call_macro(r, nd, fn.u.fn, args, nd->n, nd->kwnames, kwv, nd->nkw, caller, out);
    }
    return jr_call(r, nd, &fn, args, nd->n, nd->kwnames, kwv, nd->nkw, out);
}

/* ---- expressions ------------------------------------------------------------ */
static int eval_slice(struct jrender *r, struct jscope *sc, const struct jnode *nd, struct jv *out)
{
    struct jv obj, bound[3];
    int64_t len, start = 0, stop = 0, step = 1, count;
    const struct jnode *parts[3] = {nd->b, nd->c, nd->d};

    if (jr_eval(r, sc, nd->a, &obj))
        return -1;
    if (jr_need_defined(r, nd, &obj))
        return -1;
    for (int k = 0; k < 3; k++) {
        bound[k] = jv_none();
        if (parts[k] && jr_eval(r, sc, parts[k], &bound[k]))
            return -1;
        if (bound[k].type != JV_NONE && bound[k].type != JV_INT && bound[k].type != JV_BOOL)
            return jr_fail(r, nd, SH_EINVAL, "slice indices must be integers or None");
    }
    if (obj.type == JV_LIST)
        len = (int64_t)obj.u.l->n;
    else if (obj.type == JV_STR)
        len = (int64_t)ju_cplen(obj.u.s.p, obj.u.s.n);
    else
        return jr_fail(r, nd, SH_EINVAL, "'%s' object is not subscriptable", jv_type_name(&obj));
    if (bound[2].type != JV_NONE)
        step = bound[2].type == JV_BOOL ? bound[2].u.b : bound[2].u.i;
    if (step == 0)
        return jr_fail(r, nd, SH_EINVAL, "slice step cannot be zero");
    /* PySlice_AdjustIndices */
    for (int k = 0; k < 2; k++) {
        int64_t def = k == 0 ? (step < 0 ? len - 1 : 0) : (step < 0 ? -1 : len);
        int64_t v = def;
        if (bound[k].type != JV_NONE) {
            v = bound[k].type == JV_BOOL ? bound[k].u.b : bound[k].u.i;
            if (v < 0) {
                v += len;
                if (v < 0)
                    v = step < 0 ? -1 : 0;
            } else if (v >= len) {
                v = step < 0 ? len - 1 : len;
            }
        }
        if (k == 0)
            start = v;
        else
            stop = v;
    }
    if (step < 0)
        count = stop < start ? (start - stop - 1) / (-step) + 1 : 0;
    else
        count = start < stop ? (stop - start - 1) / step + 1 : 0;
    if (obj.type == JV_LIST) {
        struct jv_list *l = jv_list_new(r->ar, (size_t)count);
        if (!l)
            return jr_oom(r, nd);
        for (int64_t i = 0; i < count; i++)
            l->items[l->n++] = obj.u.l->items[start + i * step];
        *out = jv_list_val(l, obj.flags & JV_F_TUPLE);
        return 0;
    }
    {
        /* strings: by code point */
        size_t *offs, nb = obj.u.s.n, o = 0;
        char *p;
        if (!(offs = ja_alloc(r->ar, ((size_t)len + 1) * sizeof *offs)) ||
            !(p = ja_alloc(r->ar, nb + 1)))
            return jr_oom(r, nd);
        for (int64_t i = 0, b = 0; i <= len; i++) {
            size_t l;
            offs[i] = (size_t)b;
            if (i < len) {
                ju_decode(obj.u.s.p + b, nb - (size_t)b, &l);
                b += (int64_t)l;
            }
        }
        for (int64_t i = 0; i < count; i++) {
            int64_t c = start + i * step;
            size_t l = offs[c + 1] - offs[c];
            memcpy(p + o, obj.u.s.p + offs[c], l);
            o += l;
        }
        p[o] = '\0';
        *out = jv_strn(p, o);
        return 0;
    }
}

static int eval_inner(struct jrender *r, struct jscope *sc, const struct jnode *nd, struct jv *out)
{
    struct jv a, b, *args, *kwv;
    int t;

    switch (nd->kind) {
    case JN_CONST:
        *out = nd->val;
        return 0;
    case JN_NAME: {
        const struct jv *v = lookup(sc, nd->name);
        if (v) {
            *out = *v;
            return 0;
        }
        *out = jv_undef(r->ar, nd->name, strlen(nd->name), NULL);
        return out->u.undef ? 0 : jr_oom(r, nd);
    }
    case JN_GETATTR:
        if (jr_eval(r, sc, nd->a, &a))
            return -1;
        return jr_getattr(r, nd, &a, nd->name, out);
    case JN_GETITEM:
        if (jr_eval(r, sc, nd->a, &a) || jr_eval(r, sc, nd->b, &b))
            return -1;
        return jr_getitem(r, nd, &a, &b, out);
    case JN_SLICE:
        return eval_slice(r, sc, nd, out);
    case JN_CALL:
        return eval_call(r, sc, nd, NULL, out);
    case JN_FILTER:
        if (jr_eval(r, sc, nd->a, &a) || eval_args(r, sc, nd, &args, &kwv))
            return -1;
        return jf_filter(r, nd, nd->name, &a, args, nd->n, nd->kwnames, kwv, nd->nkw, out);
    case JN_TEST:
        if (jr_eval(r, sc, nd->a, &a) || eval_args(r, sc, nd, &args, &kwv))
            return -1;
        if (nd->nkw)
            return jr_fail(r, nd, SH_EUNSUPPORTED, "keyword arguments to tests");
        t = jf_test(r, nd, nd->name, &a, args, nd->n);
        if (t < 0)
            return -1;
        *out = jv_bool((nd->flags & JN_F_NEGATED) ? !t : t);
        return 0;
    case JN_NOT:
        if (jr_eval(r, sc, nd->a, &a))
            return -1;
        *out = jv_bool(!jv_truthy(&a));
        return 0;
    case JN_NEG:
    case JN_POS:
        if (jr_eval(r, sc, nd->a, &a) || jr_need_defined(r, nd, &a))
            return -1;
        if (!jv_is_number(&a))
            return jr_fail(r, nd, SH_EINVAL, "bad operand type for unary %c: '%s'",
                           nd->kind == JN_NEG ? '-' : '+', jv_type_name(&a));
        if (a.type == JV_BOOL)
            a = jv_int(a.u.b);
        if (nd->kind == JN_POS) {
            *out = a;
        } else if (a.type == JV_FLOAT) {
            *out = jv_float(-a.u.f);
        } else {
            if (a.u.i == INT64_MIN)
                return jr_fail(r, nd, SH_EUNSUPPORTED, "integer result does not fit in 64 bits");
            *out = jv_int(-a.u.i);
        }
        return 0;
    case JN_BINOP:
        if (jr_eval(r, sc, nd->a, &a) || jr_eval(r, sc, nd->b, &b))
            return -1;
        return jr_binop(r, nd, nd->op, &a, &b, out);
    case JN_AND:
    case JN_OR:
        if (jr_eval(r, sc, nd->a, &a))
            return -1;
        if (jv_truthy(&a) == (nd->kind == JN_OR)) {
            *out = a;
            return 0;
        }
        return jr_eval(r, sc, nd->b, out);
    case JN_COMPARE:
        if (jr_eval(r, sc, nd->items[0], &a))
            return -1;
        for (size_t i = 1; i < nd->n; i++) {
            if (jr_eval(r, sc, nd->items[i], &b))
                return -1;
            t = jr_compare(r, nd, nd->ops[i - 1], &a, &b);
            if (t < 0)
                return -1;
            if (!t) {
                *out = jv_bool(false);
                return 0;
            }
            a = b;
        }
        *out = jv_bool(true);
        return 0;
    case JN_CONCAT: {
        struct jout o = {0};
        int rc = 0;
        for (size_t i = 0; !rc && i < nd->n; i++) {
            if (jr_eval(r, sc, nd->items[i], &a)) {
                jout_free(&o);
                return -1;
            }
            rc = jv_str(r->ar, &o, r->ar->max, &a);
        }
        if (!rc)
            rc = jr_str(r, nd, o.p ? o.p : "", o.n, out) ? SH_ENOMEM : 0;
        jout_free(&o);
        if (rc == SH_ERANGE)
            return jr_fail(r, nd, SH_ETOOBIG, "cannot print a value nested deeper than 200");
        return rc ? jr_oom(r, nd) : 0;
    }
    case JN_COND:
        if (jr_eval(r, sc, nd->b, &b))
            return -1;
        if (jv_truthy(&b))
            return jr_eval(r, sc, nd->a, out);
        if (nd->c)
            return jr_eval(r, sc, nd->c, out);
        *out = jv_undef(r->ar, "<conditional>", 13, NULL);
        return out->u.undef ? 0 : jr_oom(r, nd);
    case JN_LIST:
    case JN_TUPLE: {
        struct jv_list *l = jv_list_new(r->ar, nd->n);
        if (!l)
            return jr_oom(r, nd);
        for (size_t i = 0; i < nd->n; i++)
            if (jr_eval(r, sc, nd->items[i], &l->items[l->n++]))
                return -1;
        *out = jv_list_val(l, nd->kind == JN_TUPLE);
        return 0;
    }
    case JN_DICT: {
        struct jv_dict *d = jv_dict_new(r->ar, nd->n / 2);
        if (!d)
            return jr_oom(r, nd);
        for (size_t i = 0; i + 1 < nd->n; i += 2) {
            if (jr_eval(r, sc, nd->items[i], &a) || jr_eval(r, sc, nd->items[i + 1], &b))
                return -1;
            if (a.type == JV_LIST && !(a.flags & JV_F_TUPLE))
                return jr_fail(r, nd, SH_EINVAL, "unhashable type: 'list'");
            if (a.type == JV_DICT || a.type == JV_NS)
                return jr_fail(r, nd, SH_EINVAL, "unhashable type: 'dict'");
            if (jv_dict_set(r->ar, d, a, b))
                return jr_oom(r, nd);
        }
        *out = jv_dict_val(d, false);
        return 0;
    }
    default:
        return jr_fail(r, nd, SH_EINTERNAL, "statement used as an expression");
    }
}

int jr_eval(struct jrender *r, struct jscope *sc, const struct jnode *nd, struct jv *out)
{
    int rc;
    if (jr_enter(r, nd))
        return -1;
    rc = eval_inner(r, sc, nd, out);
    r->depth--;
    return rc;
}

/* ---- statements ------------------------------------------------------------- */
int jr_run_for(struct jrender *r,
               struct jscope *sc,
               const struct jnode *nd,
               const struct jv *iter,
               size_t depth0)
{
    struct jv_list *items;
    struct jloop *loop;
    bool unpack = nd->op == 1;

    if (jr_iterate(r, nd, iter, &items))
        return -1;
    if (nd->d) {
        /* loop filter: applied before loop.index/length are computed */
        struct jv_list *kept = jv_list_new(r->ar, items->n);
        if (!kept)
            return jr_oom(r, nd);
        for (size_t i = 0; i < items->n; i++) {
            struct jscope *fs = jr_scope_new(r, sc);
            struct jv c;
            if (!fs)
                return jr_oom(r, nd);
            if (jr_step(r, nd, 1) ||
                bind(r, nd, fs, nd->targets, nd->ntargets, unpack, &items->items[i]) ||
                jr_eval(r, fs, nd->d, &c))
                return -1;
            if (jv_truthy(&c))
                kept->items[kept->n++] = items->items[i];
        }
        items = kept;
    }
    if (!(loop = ja_alloc(r->ar, sizeof *loop)))
        return jr_oom(r, nd);
    loop->items = items;
    loop->depth0 = depth0;
    loop->node = nd;
    loop->scope = sc;
    for (size_t i = 0; i < items->n; i++) {
        struct jscope *it = jr_scope_new(r, sc);
        struct jv lv = {.type = JV_LOOP};
        int rc;
        if (!it)
            return jr_oom(r, nd);
        loop->index0 = i;
        lv.u.loop = loop;
        if (jr_step(r, nd, 1) || jr_assign(r, nd, it, "loop", lv) ||
            bind(r, nd, it, nd->targets, nd->ntargets, unpack, &items->items[i]))
            return -1;
        rc = jr_exec(r, it, nd->b);
        if (rc < 0)
            return -1;
        if (rc == JX_BREAK)
            break;
        /* the loop object may have been copied out: later iterations get
         * their own so a saved `loop` keeps its index */
        if (i + 1 < items->n) {
            struct jloop *next = ja_alloc(r->ar, sizeof *next);
            if (!next)
                return jr_oom(r, nd);
            *next = *loop;
            loop = next;
        }
    }
    if (items->n == 0 && nd->c) {
        struct jscope *es = jr_scope_new(r, sc);
        if (!es)
            return jr_oom(r, nd);
        return jr_exec(r, es, nd->c) < 0 ? -1 : 0;
    }
    return 0;
}

static int apply_filters(struct jrender *r, const struct jnode *nd, struct jscope *sc, struct jv *v)
{
    for (size_t i = 0; i < nd->n; i++) {
        const struct jnode *f = nd->items[i];
        struct jv *args, *kwv, res;
        if (eval_args(r, sc, f, &args, &kwv) ||
            jf_filter(r, f, f->name, v, args, f->n, f->kwnames, kwv, f->nkw, &res))
            return -1;
        *v = res;
    }
    return 0;
}

static int exec_set(struct jrender *r, struct jscope *sc, const struct jnode *nd)
{
    struct jv v;
    if (nd->kind == JN_SETBLOCK) {
        if (jr_capture(r, sc, nd->b, &v) || apply_filters(r, nd, sc, &v))
            return -1;
        return jr_assign(r, nd, sc, nd->targets[0], v);
    }
    if (jr_eval(r, sc, nd->b, &v))
        return -1;
    if (nd->a) {
        const struct jv *ns = lookup(sc, nd->a->a->name);
        if (!ns || ns->type != JV_NS)
            return jr_fail(r, nd, SH_EINVAL, "cannot assign attribute on non-namespace object");
        if (jv_dict_set(r->ar, ns->u.d, jv_strn(nd->a->name, strlen(nd->a->name)), v))
            return jr_oom(r, nd);
        return 0;
    }
    return bind(r, nd, sc, nd->targets, nd->ntargets, nd->op == 1, &v);
}

static int exec_inner(struct jrender *r, struct jscope *sc, const struct jnode *nd)
{
    struct jv v;
    int rc;

    switch (nd->kind) {
    case JN_BODY:
        for (size_t i = 0; i < nd->n; i++) {
            rc = jr_exec(r, sc, nd->items[i]);
            if (rc)
                return rc;
        }
        return 0;
    case JN_TEXT:
        return emit(r, nd, nd->val.u.s.p, nd->val.u.s.n) ? -1 : 0;
    case JN_OUTPUT: {
        if (jr_eval(r, sc, nd->a, &v))
            return -1;
        if (v.type == JV_STR)
            return emit(r, nd, v.u.s.p, v.u.s.n) ? -1 : 0;
        rc = jv_str(r->ar, r->out, r->max_output, &v);
        if (rc == SH_ETOOBIG)
            return jr_fail(r, nd, SH_ETOOBIG, "template output exceeds %zu bytes", r->max_output);
        if (rc == SH_ERANGE)
            return jr_fail(r, nd, SH_ETOOBIG, "cannot print a value nested deeper than 200");
        return rc ? jr_fail(r, nd, SH_EINVAL, "cannot print a %s", jv_type_name(&v)) : 0;
    }
    case JN_IF:
        for (;;) {
            if (jr_eval(r, sc, nd->a, &v))
                return -1;
            if (jv_truthy(&v))
                return jr_exec(r, sc, nd->b);
            if (!nd->c)
                return 0;
            if (nd->c->kind != JN_IF)
                return jr_exec(r, sc, nd->c);
            nd = nd->c;
        }
    case JN_FOR:
        if (jr_eval(r, sc, nd->a, &v))
            return -1;
        return jr_run_for(r, sc, nd, &v, 0);
    case JN_SET:
    case JN_SETBLOCK:
        return exec_set(r, sc, nd);
    case JN_MACRO: {
        struct jfunc *fn = ja_alloc(r->ar, sizeof *fn);
        if (!fn)
            return jr_oom(r, nd);
        memset(fn, 0, sizeof *fn);
        fn->kind = JF_MACRO;
        fn->node = nd;
        fn->closure = sc;
        fn->name = nd->name;
        v.type = JV_FUNC;
        v.flags = 0;
        v.u.fn = fn;
        return jr_assign(r, nd, sc, nd->name, v);
    }
    case JN_CALLBLOCK: {
        struct jfunc *fn = ja_alloc(r->ar, sizeof *fn);
        struct jv caller, res;
        if (!fn)
            return jr_oom(r, nd);
        memset(fn, 0, sizeof *fn);
        fn->kind = JF_CALLER;
        fn->node = nd;
        fn->closure = sc;
        caller.type = JV_FUNC;
        caller.flags = 0;
        caller.u.fn = fn;
        if (eval_call(r, sc, nd->a, &caller, &res))
            return -1;
        return emit(r, nd, res.u.s.p, res.u.s.n) ? -1 : 0;
    }
    case JN_FILTERBLOCK:
        if (jr_capture(r, sc, nd->b, &v) || apply_filters(r, nd, sc, &v))
            return -1;
        if (v.type != JV_STR && jv_to_str(r->ar, r->ar->max, &v, &v))
            return jr_oom(r, nd);
        return emit(r, nd, v.u.s.p, v.u.s.n) ? -1 : 0;
    case JN_WITH: {
        struct jscope *ws = jr_scope_new(r, sc);
        if (!ws)
            return jr_oom(r, nd);
        for (size_t i = 0; i < nd->n; i++)
            if (jr_eval(r, sc, nd->items[i], &v) || jr_assign(r, nd, ws, nd->targets[i], v))
                return -1;
        return jr_exec(r, ws, nd->b);
    }
    case JN_BREAK:
        return JX_BREAK;
    case JN_CONTINUE:
        return JX_CONTINUE;
    default:
        return jr_fail(r, nd, SH_EINTERNAL, "expression used as a statement");
    }
}

int jr_exec(struct jrender *r, struct jscope *sc, const struct jnode *nd)
{
    int rc;
    if (jr_enter(r, nd))
        return -1;
    rc = exec_inner(r, sc, nd);
    r->depth--;
    return rc;
}
