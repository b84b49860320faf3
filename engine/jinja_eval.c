/* engine/jinja_eval.c: evaluates the AST: expressions, statements with
 * Jinja's scoping (a for body gets a fresh scope per iteration; if does not
 * scope; macros close over the scope they were defined in), macro/caller
 * calls, the globals transformers provides, and the public compile/render
 * entry points. Operators live in jinja_ops.c, filters in jinja_filters.c. */
#include <stdlib.h>
#include <string.h>

#include "engine/jinja_internal.h"

#define JX_BREAK    1
#define JX_CONTINUE 2

enum builtin {
    B_NAMESPACE,
    B_RANGE,
    B_DICT,
    B_RAISE,
    B_STRFTIME,
    B_COUNT,
};

static const char *const builtin_names[B_COUNT] = {"namespace", "range", "dict",
                                                   "raise_exception", "strftime_now"};

struct eng_jinja {
    struct jarena ar;
    struct jnode *root;
};

static int eval(struct jrender *r, struct jscope *sc, const struct jnode *nd, struct jv *out);
static int exec(struct jrender *r, struct jscope *sc, const struct jnode *nd);

static int enter(struct jrender *r, const struct jnode *at)
{
    if (++r->depth > r->max_depth)
        return jr_fail(r, at, SH_ETOOBIG, "template recursion deeper than %zu", r->max_depth);
    return 0;
}

static struct jscope *scope_new(struct jrender *r, struct jscope *parent)
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

static int assign(struct jrender *r, const struct jnode *at, struct jscope *sc, const char *name,
                  struct jv v)
{
    if (jv_dict_set(r->ar, sc->vars, jv_strn(name, strlen(name)), v))
        return jr_oom(r, at);
    return 0;
}

/* Binds names to v, unpacking a sequence when unpack is set. */
static int bind(struct jrender *r, const struct jnode *at, struct jscope *sc,
                const char *const *names, size_t n, bool unpack, const struct jv *v)
{
    struct jv_list *items;
    if (!unpack)
        return assign(r, at, sc, names[0], *v);
    if (jr_iterate(r, at, v, &items))
        return -1;
    if (items->n != n)
        return jr_fail(r, at, SH_EINVAL, "cannot unpack %zu values into %zu names", items->n, n);
    for (size_t i = 0; i < n; i++)
        if (assign(r, at, sc, names[i], items->items[i]))
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
    rc = exec(r, scope, body);
    r->out = saved;
    if (rc >= 0)
        rc = jr_str(r, body, cap.p ? cap.p : "", cap.n, out);
    jout_free(&cap);
    return rc < 0 ? -1 : 0;
}

/* ---- calls ------------------------------------------------------------------ */
static bool body_uses(const struct jnode *nd, const char *name, int depth)
{
    if (!nd || depth > 400)
        return false;
    if (nd->kind == JN_NAME && !strcmp(nd->name, name))
        return true;
    if (nd->kind == JN_MACRO && depth > 0)
        return false; /* a nested macro has its own varargs */
    if (body_uses(nd->a, name, depth + 1) || body_uses(nd->b, name, depth + 1) ||
        body_uses(nd->c, name, depth + 1) || body_uses(nd->d, name, depth + 1))
        return true;
    for (size_t i = 0; i < nd->n; i++)
        if (body_uses(nd->items[i], name, depth + 1))
            return true;
    for (size_t i = 0; i < nd->nkw; i++)
        if (body_uses(nd->kwvals[i], name, depth + 1))
            return true;
    for (size_t i = 0; nd->defaults && i < nd->ntargets; i++)
        if (body_uses(nd->defaults[i], name, depth + 1))
            return true;
    return false;
}

/* Macros and callers: bind parameters in a scope over the closure and render
 * the body to a string. */
static int call_macro(struct jrender *r, const struct jnode *at, const struct jfunc *fn,
                      struct jv *args, size_t nargs, const char **kwn, struct jv *kwv,
                      size_t nkw, const struct jv *caller, struct jv *out)
{
    const struct jnode *def = fn->node;
    const char *what = fn->kind == JF_MACRO ? def->name : "caller";
    struct jscope *sc;
    struct jv_list *varargs;
    struct jv_dict *kwargs;
    int rc;

    if (jr_step(r, at, 1) || enter(r, at))
        return -1;
    if (!(sc = scope_new(r, fn->closure)) || !(varargs = jv_list_new(r->ar, 0)) ||
        !(kwargs = jv_dict_new(r->ar, 0)))
        return jr_oom(r, at);
    for (size_t i = 0; i < def->ntargets; i++) {
        struct jv v;
        bool found = false;
        if (i < nargs) {
            v = args[i];
            found = true;
        }
        for (size_t k = 0; k < nkw; k++)
            if (!strcmp(kwn[k], def->targets[i])) {
                if (found)
                    return jr_fail(r, at, SH_EINVAL, "macro '%s' got multiple values for "
                                   "argument '%s'", what, def->targets[i]);
                v = kwv[k];
                found = true;
            }
        if (!found && def->defaults[i]) {
            if (eval(r, sc, def->defaults[i], &v))
                return -1;
            found = true;
        }
        if (!found) {
            v = jv_undef(r->ar, def->targets[i], strlen(def->targets[i]), NULL);
            if (!v.u.undef)
                return jr_oom(r, at);
        }
        if (assign(r, at, sc, def->targets[i], v))
            return -1;
    }
    for (size_t i = def->ntargets; i < nargs; i++)
        if (jv_list_push(r->ar, varargs, args[i]))
            return jr_oom(r, at);
    for (size_t k = 0; k < nkw; k++) {
        bool is_param = false;
        for (size_t i = 0; i < def->ntargets; i++)
            is_param |= !strcmp(kwn[k], def->targets[i]);
        if (!is_param && jv_dict_set(r->ar, kwargs, jv_strn(kwn[k], strlen(kwn[k])), kwv[k]))
            return jr_oom(r, at);
    }
    if (varargs->n && !body_uses(def->b, "varargs", 0))
        return jr_fail(r, at, SH_EINVAL, "macro '%s' takes not more than %zu argument(s)", what,
                       def->ntargets);
    if (kwargs->n && !body_uses(def->b, "kwargs", 0))
        return jr_fail(r, at, SH_EINVAL, "macro '%s' takes no keyword argument '%s'", what,
                       (const char *)kwargs->keys[0].u.s.p);
    {
        struct jv va = jv_list_val(varargs, true), kw = {.type = JV_DICT, .u.d = kwargs};
        if (assign(r, at, sc, "varargs", va) || assign(r, at, sc, "kwargs", kw))
            return -1;
    }
    if (caller && assign(r, at, sc, "caller", *caller))
        return -1;
    rc = jr_capture(r, sc, def->b, out);
    r->depth--;
    return rc;
}

static int builtin_call(struct jrender *r, const struct jnode *at, int which, struct jv *args,
                        size_t nargs, const char **kwn, struct jv *kwv, size_t nkw,
                        struct jv *out)
{
    switch (which) {
    case B_NAMESPACE:
    case B_DICT: {
        struct jv_dict *d = jv_dict_new(r->ar, nkw);
        if (!d)
            return jr_oom(r, at);
        if (nargs > 1)
            return jr_fail(r, at, SH_EINVAL, "%s() takes at most 1 positional argument",
                           builtin_names[which]);
        if (nargs == 1) {
            if (args[0].type != JV_DICT)
                return jr_fail(r, at, SH_EUNSUPPORTED, "%s() of a %s is not supported",
                               builtin_names[which], jv_type_name(&args[0]));
            for (size_t i = 0; i < args[0].u.d->n; i++)
                if (jv_dict_set(r->ar, d, args[0].u.d->keys[i], args[0].u.d->vals[i]))
                    return jr_oom(r, at);
        }
        for (size_t k = 0; k < nkw; k++)
            if (jv_dict_set(r->ar, d, jv_strn(kwn[k], strlen(kwn[k])), kwv[k]))
                return jr_oom(r, at);
        out->type = which == B_NAMESPACE ? JV_NS : JV_DICT;
        out->flags = 0;
        out->u.d = d;
        return 0;
    }
    case B_RANGE: {
        int64_t start = 0, stop, step = 1, count;
        struct jv_list *l;
        if (nkw || nargs < 1 || nargs > 3)
            return jr_fail(r, at, SH_EINVAL, "range() takes 1 to 3 integer arguments");
        for (size_t i = 0; i < nargs; i++)
            if (args[i].type != JV_INT && args[i].type != JV_BOOL)
                return jr_fail(r, at, SH_EINVAL, "'%s' object cannot be interpreted as an "
                               "integer", jv_type_name(&args[i]));
#define IV(k) (args[k].type == JV_BOOL ? (int64_t)args[k].u.b : args[k].u.i)
        stop = IV(0);
        if (nargs >= 2) {
            start = IV(0);
            stop = IV(1);
        }
        if (nargs == 3)
            step = IV(2);
#undef IV
        if (step == 0)
            return jr_fail(r, at, SH_EINVAL, "range() arg 3 must not be zero");
        if ((step > 0 && start >= stop) || (step < 0 && start <= stop))
            count = 0;
        else if (step > 0)
            count = (int64_t)(((uint64_t)stop - (uint64_t)start - 1) / (uint64_t)step + 1);
        else
            count = (int64_t)(((uint64_t)start - (uint64_t)stop - 1) / (uint64_t)(-step) + 1);
        if (jr_step(r, at, (uint64_t)count))
            return -1;
        if (!(l = jv_list_new(r->ar, (size_t)count)))
            return jr_oom(r, at);
        for (int64_t i = 0; i < count; i++)
            l->items[l->n++] = jv_int(start + i * step);
        *out = jv_list_val(l, false);
        return 0;
    }
    case B_RAISE: {
        struct jv msg;
        if (nargs != 1 || nkw)
            return jr_fail(r, at, SH_EINVAL, "raise_exception() takes one argument");
        if (jv_to_str(r->ar, r->max_output, &args[0], &msg))
            return jr_oom(r, at);
        if (!r->code) {
            r->code = SH_EINVAL;
            r->raised = true;
            sh_err_set(r->err, SH_EINVAL, "%.*s", (int)(msg.u.s.n > 250 ? 250 : msg.u.s.n),
                       msg.u.s.p);
        }
        return -1;
    }
    case B_STRFTIME: {
        char buf[256];
        char *fmt;
        size_t n;
        if (nargs != 1 || nkw || args[0].type != JV_STR)
            return jr_fail(r, at, SH_EINVAL, "strftime_now() takes one string argument");
        if (!r->now)
            return jr_fail(r, at, SH_EINVAL, "strftime_now: no time was given to the renderer");
        if (!(fmt = ja_strndup(r->ar, args[0].u.s.p, args[0].u.s.n)))
            return jr_oom(r, at);
        n = strftime(buf, sizeof buf, fmt, r->now);
        if (n == 0 && args[0].u.s.n != 0)
            return jr_fail(r, at, SH_ETOOBIG, "strftime_now: result longer than 255 bytes");
        return jr_str(r, at, buf, n, out);
    }
    default:
        return jr_fail(r, at, SH_EINTERNAL, "bad builtin");
    }
}

static int run_for(struct jrender *r, struct jscope *sc, const struct jnode *nd,
                   const struct jv *iter, size_t depth0);

int jr_call(struct jrender *r, const struct jnode *at, struct jv *fn, struct jv *args,
            size_t nargs, const char **kwn, struct jv *kwv, size_t nkw, struct jv *out)
{
    if (fn->type == JV_UNDEF)
        return jr_need_defined(r, at, fn);
    if (fn->type == JV_LOOP) {
        /* loop(children) inside a recursive for */
        const struct jloop *l = fn->u.loop;
        struct jout cap = {0}, *saved = r->out;
        int rc;
        if (!(l->node->flags & JN_F_RECURSIVE))
            return jr_fail(r, at, SH_EINVAL, "'LoopContext' object is not callable");
        if (nargs != 1 || nkw)
            return jr_fail(r, at, SH_EINVAL, "loop() takes one iterable");
        if (enter(r, at))
            return -1;
        r->out = &cap;
        rc = run_for(r, l->scope, l->node, &args[0], l->depth0 + 1);
        r->out = saved;
        if (rc >= 0)
            rc = jr_str(r, at, cap.p ? cap.p : "", cap.n, out);
        jout_free(&cap);
        r->depth--;
        return rc < 0 ? -1 : 0;
    }
    if (fn->type != JV_FUNC)
        return jr_fail(r, at, SH_EINVAL, "'%s' object is not callable", jv_type_name(fn));
    switch (fn->u.fn->kind) {
    case JF_BUILTIN:
        return builtin_call(r, at, fn->u.fn->builtin, args, nargs, kwn, kwv, nkw, out);
    case JF_MACRO:
    case JF_CALLER:
        return call_macro(r, at, fn->u.fn, args, nargs, kwn, kwv, nkw, NULL, out);
    case JF_METHOD: {
        struct jv self = fn->u.fn->self;
        if (self.type == JV_LOOP && !strcmp(fn->u.fn->name, "cycle")) {
            if (nargs == 0)
                return jr_fail(r, at, SH_EINVAL, "no items for cycling given");
            *out = args[self.u.loop->index0 % nargs];
            return 0;
        }
        if (self.type == JV_LOOP)
            return jr_fail(r, at, SH_EUNSUPPORTED, "loop.%s() is not supported", fn->u.fn->name);
        return jf_method(r, at, &self, fn->u.fn->name, args, nargs, kwn, kwv, nkw, out);
    }
    default:
        return jr_fail(r, at, SH_EINTERNAL, "bad callable");
    }
}

/* Evaluates positional and keyword arguments of a call/filter/test node. */
static int eval_args(struct jrender *r, struct jscope *sc, const struct jnode *nd,
                     struct jv **args, struct jv **kwv)
{
    size_t na = nd->n ? nd->n : 1, nk = nd->nkw ? nd->nkw : 1;
    *args = ja_alloc(r->ar, na * sizeof **args);
    *kwv = ja_alloc(r->ar, nk * sizeof **kwv);
    if (!*args || !*kwv)
        return jr_oom(r, nd);
    for (size_t i = 0; i < nd->n; i++)
        if (eval(r, sc, nd->items[i], &(*args)[i]))
            return -1;
    for (size_t i = 0; i < nd->nkw; i++)
        if (eval(r, sc, nd->kwvals[i], &(*kwv)[i]))
            return -1;
    return 0;
}

static int eval_call(struct jrender *r, struct jscope *sc, const struct jnode *nd,
                     const struct jv *caller, struct jv *out)
{
    struct jv fn, *args, *kwv;
    const struct jnode *callee = nd->a;

    if (callee->kind == JN_GETATTR) {
        /* obj.method(...): a method of the object's type wins, as in Python */
        struct jv obj;
        if (eval(r, sc, callee->a, &obj))
            return -1;
        if (jr_getattr(r, callee, &obj, callee->name, &fn))
            return -1;
    } else if (eval(r, sc, callee, &fn)) {
        return -1;
    }
    if (eval_args(r, sc, nd, &args, &kwv))
        return -1;
    if (caller) {
        if (fn.type != JV_FUNC || fn.u.fn->kind != JF_MACRO)
            return jr_fail(r, nd, SH_EINVAL, "{%% call %%} needs a macro");
        return call_macro(r, nd, fn.u.fn, args, nd->n, nd->kwnames, kwv, nd->nkw, caller, out);
    }
    return jr_call(r, nd, &fn, args, nd->n, nd->kwnames, kwv, nd->nkw, out);
}

/* ---- expressions ------------------------------------------------------------ */
static int eval_slice(struct jrender *r, struct jscope *sc, const struct jnode *nd,
                      struct jv *out)
{
    struct jv obj, bound[3];
    int64_t len, start, stop, step = 1, count;
    const struct jnode *parts[3] = {nd->b, nd->c, nd->d};

    if (eval(r, sc, nd->a, &obj))
        return -1;
    if (jr_need_defined(r, nd, &obj))
        return -1;
    for (int k = 0; k < 3; k++) {
        bound[k] = jv_none();
        if (parts[k] && eval(r, sc, parts[k], &bound[k]))
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

static int eval_inner(struct jrender *r, struct jscope *sc, const struct jnode *nd,
                      struct jv *out)
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
        if (eval(r, sc, nd->a, &a))
            return -1;
        return jr_getattr(r, nd, &a, nd->name, out);
    case JN_GETITEM:
        if (eval(r, sc, nd->a, &a) || eval(r, sc, nd->b, &b))
            return -1;
        return jr_getitem(r, nd, &a, &b, out);
    case JN_SLICE:
        return eval_slice(r, sc, nd, out);
    case JN_CALL:
        return eval_call(r, sc, nd, NULL, out);
    case JN_FILTER:
        if (eval(r, sc, nd->a, &a) || eval_args(r, sc, nd, &args, &kwv))
            return -1;
        return jf_filter(r, nd, nd->name, &a, args, nd->n, nd->kwnames, kwv, nd->nkw, out);
    case JN_TEST:
        if (eval(r, sc, nd->a, &a) || eval_args(r, sc, nd, &args, &kwv))
            return -1;
        if (nd->nkw)
            return jr_fail(r, nd, SH_EUNSUPPORTED, "keyword arguments to tests");
        t = jf_test(r, nd, nd->name, &a, args, nd->n);
        if (t < 0)
            return -1;
        *out = jv_bool((nd->flags & JN_F_NEGATED) ? !t : t);
        return 0;
    case JN_NOT:
        if (eval(r, sc, nd->a, &a))
            return -1;
        *out = jv_bool(!jv_truthy(&a));
        return 0;
    case JN_NEG:
    case JN_POS:
        if (eval(r, sc, nd->a, &a) || jr_need_defined(r, nd, &a))
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
        if (eval(r, sc, nd->a, &a) || eval(r, sc, nd->b, &b))
            return -1;
        return jr_binop(r, nd, nd->op, &a, &b, out);
    case JN_AND:
    case JN_OR:
        if (eval(r, sc, nd->a, &a))
            return -1;
        if (jv_truthy(&a) == (nd->kind == JN_OR)) {
            *out = a;
            return 0;
        }
        return eval(r, sc, nd->b, out);
    case JN_COMPARE:
        if (eval(r, sc, nd->items[0], &a))
            return -1;
        for (size_t i = 1; i < nd->n; i++) {
            if (eval(r, sc, nd->items[i], &b))
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
            if (eval(r, sc, nd->items[i], &a)) {
                jout_free(&o);
                return -1;
            }
            rc = jv_str(r->ar, &o, r->ar->max, &a);
        }
        if (!rc)
            rc = jr_str(r, nd, o.p ? o.p : "", o.n, out) ? SH_ENOMEM : 0;
        jout_free(&o);
        return rc ? jr_oom(r, nd) : 0;
    }
    case JN_COND:
        if (eval(r, sc, nd->b, &b))
            return -1;
        if (jv_truthy(&b))
            return eval(r, sc, nd->a, out);
        if (nd->c)
            return eval(r, sc, nd->c, out);
        *out = jv_undef(r->ar, "<conditional>", 13, NULL);
        return out->u.undef ? 0 : jr_oom(r, nd);
    case JN_LIST:
    case JN_TUPLE: {
        struct jv_list *l = jv_list_new(r->ar, nd->n);
        if (!l)
            return jr_oom(r, nd);
        for (size_t i = 0; i < nd->n; i++)
            if (eval(r, sc, nd->items[i], &l->items[l->n++]))
                return -1;
        *out = jv_list_val(l, nd->kind == JN_TUPLE);
        return 0;
    }
    case JN_DICT: {
        struct jv_dict *d = jv_dict_new(r->ar, nd->n / 2);
        if (!d)
            return jr_oom(r, nd);
        for (size_t i = 0; i + 1 < nd->n; i += 2) {
            if (eval(r, sc, nd->items[i], &a) || eval(r, sc, nd->items[i + 1], &b))
                return -1;
            if (a.type == JV_LIST && !(a.flags & JV_F_TUPLE))
                return jr_fail(r, nd, SH_EINVAL, "unhashable type: 'list'");
            if (a.type == JV_DICT || a.type == JV_NS)
                return jr_fail(r, nd, SH_EINVAL, "unhashable type: 'dict'");
            if (jv_dict_set(r->ar, d, a, b))
                return jr_oom(r, nd);
        }
        out->type = JV_DICT;
        out->flags = 0;
        out->u.d = d;
        return 0;
    }
    default:
        return jr_fail(r, nd, SH_EINTERNAL, "statement used as an expression");
    }
}

static int eval(struct jrender *r, struct jscope *sc, const struct jnode *nd, struct jv *out)
{
    int rc;
    if (enter(r, nd))
        return -1;
    rc = eval_inner(r, sc, nd, out);
    r->depth--;
    return rc;
}

/* ---- statements ------------------------------------------------------------- */
static int run_for(struct jrender *r, struct jscope *sc, const struct jnode *nd,
                   const struct jv *iter, size_t depth0)
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
            struct jscope *fs = scope_new(r, sc);
            struct jv c;
            if (!fs)
                return jr_oom(r, nd);
            if (jr_step(r, nd, 1) ||
                bind(r, nd, fs, nd->targets, nd->ntargets, unpack, &items->items[i]) ||
                eval(r, fs, nd->d, &c))
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
        struct jscope *it = scope_new(r, sc);
        struct jv lv = {.type = JV_LOOP};
        int rc;
        if (!it)
            return jr_oom(r, nd);
        loop->index0 = i;
        lv.u.loop = loop;
        if (jr_step(r, nd, 1) || assign(r, nd, it, "loop", lv) ||
            bind(r, nd, it, nd->targets, nd->ntargets, unpack, &items->items[i]))
            return -1;
        rc = exec(r, it, nd->b);
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
        struct jscope *es = scope_new(r, sc);
        if (!es)
            return jr_oom(r, nd);
        return exec(r, es, nd->c) < 0 ? -1 : 0;
    }
    return 0;
}

static int apply_filters(struct jrender *r, const struct jnode *nd, struct jscope *sc,
                         struct jv *v)
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
        return assign(r, nd, sc, nd->targets[0], v);
    }
    if (eval(r, sc, nd->b, &v))
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
            rc = exec(r, sc, nd->items[i]);
            if (rc)
                return rc;
        }
        return 0;
    case JN_TEXT:
        return emit(r, nd, nd->val.u.s.p, nd->val.u.s.n) ? -1 : 0;
    case JN_OUTPUT: {
        if (eval(r, sc, nd->a, &v))
            return -1;
        if (v.type == JV_STR)
            return emit(r, nd, v.u.s.p, v.u.s.n) ? -1 : 0;
        rc = jv_str(r->ar, r->out, r->max_output, &v);
        if (rc == SH_ETOOBIG)
            return jr_fail(r, nd, SH_ETOOBIG, "template output exceeds %zu bytes",
                           r->max_output);
        return rc ? jr_fail(r, nd, SH_EINVAL, "cannot print a %s", jv_type_name(&v)) : 0;
    }
    case JN_IF:
        for (;;) {
            if (eval(r, sc, nd->a, &v))
                return -1;
            if (jv_truthy(&v))
                return exec(r, sc, nd->b);
            if (!nd->c)
                return 0;
            if (nd->c->kind != JN_IF)
                return exec(r, sc, nd->c);
            nd = nd->c;
        }
    case JN_FOR:
        if (eval(r, sc, nd->a, &v))
            return -1;
        return run_for(r, sc, nd, &v, 0);
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
        return assign(r, nd, sc, nd->name, v);
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
        struct jscope *ws = scope_new(r, sc);
        if (!ws)
            return jr_oom(r, nd);
        for (size_t i = 0; i < nd->n; i++)
            if (eval(r, sc, nd->items[i], &v) || assign(r, nd, ws, nd->targets[i], v))
                return -1;
        return exec(r, ws, nd->b);
    }
    case JN_BREAK:
        return JX_BREAK;
    case JN_CONTINUE:
        return JX_CONTINUE;
    default:
        return jr_fail(r, nd, SH_EINTERNAL, "expression used as a statement");
    }
}

static int exec(struct jrender *r, struct jscope *sc, const struct jnode *nd)
{
    int rc;
    if (enter(r, nd))
        return -1;
    rc = exec_inner(r, sc, nd);
    r->depth--;
    return rc;
}

/* ---- public API -------------------------------------------------------------- */
int eng_jinja_compile(const char *src, size_t len, struct eng_jinja **out, struct sh_err *err)
{
    struct eng_jinja *t;
    struct jtokens toks;
    char *norm;
    size_t n = 0;
    int rc;

    if (len > ENG_JINJA_MAX_SOURCE)
        return sh_err_set(err, SH_ETOOBIG, "template source is %zu bytes, more than %u", len,
                          ENG_JINJA_MAX_SOURCE);
    t = calloc(1, sizeof *t);
    if (!t)
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    /* tokens and nodes are a small multiple of the source */
    ja_init(&t->ar, 64 * (size_t)len + (1u << 20));
    norm = ja_alloc(&t->ar, len + 1);
    if (!norm) {
        rc = sh_err_set(err, SH_ENOMEM, "out of memory");
        goto fail;
    }
    /* Jinja: \r\n and \r become \n, one trailing newline is dropped */
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            norm[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n')
                i++;
        } else {
            norm[n++] = src[i];
        }
    }
    if (n > 0 && norm[n - 1] == '\n')
        n--;
    norm[n] = '\0';
    if ((rc = jlex(&t->ar, norm, n, &toks, err)) != 0 ||
        (rc = jparse(&t->ar, &toks, &t->root, err)) != 0)
        goto fail;
    *out = t;
    return 0;
fail:
    if (rc == SH_ENOMEM && t->ar.total >= t->ar.max)
        rc = sh_err_set(err, SH_ETOOBIG, "template too large to compile");
    eng_jinja_free(t);
    return rc;
}

void eng_jinja_free(struct eng_jinja *t)
{
    if (!t)
        return;
    ja_release(&t->ar);
    free(t);
}

/* cJSON -> value, keeping key order. Integral numbers become ints (cJSON does
 * not keep whether the text was "1" or "1.0"). */
static int from_json(struct jrender *r, const cJSON *j, struct jv *out, int depth)
{
    if (depth > 200)
        return jr_fail(r, NULL, SH_ETOOBIG, "input JSON nested deeper than 200");
    if (cJSON_IsNull(j)) {
        *out = jv_none();
    } else if (cJSON_IsBool(j)) {
        *out = jv_bool(cJSON_IsTrue(j));
    } else if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == (double)(int64_t)d && d >= -9007199254740992.0 && d <= 9007199254740992.0)
            *out = jv_int((int64_t)d);
        else
            *out = jv_float(d);
    } else if (cJSON_IsString(j)) {
        *out = jv_strn(j->valuestring, strlen(j->valuestring));
    } else if (cJSON_IsArray(j)) {
        struct jv_list *l = jv_list_new(r->ar, (size_t)cJSON_GetArraySize(j));
        const cJSON *c;
        if (!l)
            return jr_oom(r, NULL);
        cJSON_ArrayForEach(c, j)
        {
            if (from_json(r, c, &l->items[l->n], depth + 1))
                return -1;
            l->n++;
        }
        *out = jv_list_val(l, false);
    } else if (cJSON_IsObject(j)) {
        struct jv_dict *d = jv_dict_new(r->ar, 0);
        const cJSON *c;
        if (!d)
            return jr_oom(r, NULL);
        cJSON_ArrayForEach(c, j)
        {
            struct jv v;
            if (!c->string)
                continue;
            if (from_json(r, c, &v, depth + 1) ||
                jv_dict_set(r->ar, d, jv_strn(c->string, strlen(c->string)), v))
                return r->code ? -1 : jr_oom(r, NULL);
        }
        out->type = JV_DICT;
        out->flags = 0;
        out->u.d = d;
    } else {
        return jr_fail(r, NULL, SH_EINVAL, "unsupported JSON value");
    }
    return 0;
}

int eng_jinja_render(const struct eng_jinja *t, const cJSON *vars, const struct tm *now,
                     const struct eng_jinja_limits *limits, char **out, size_t *len,
                     struct sh_err *err)
{
    struct jarena ar;
    struct jout o = {0};
    struct jrender r = {0};
    struct jscope *globals, *top;
    int rc = 0;

    ja_init(&ar, limits && limits->max_memory ? limits->max_memory : 256u << 20);
    r.ar = &ar;
    r.out = &o;
    r.max_output = limits && limits->max_output ? limits->max_output : 16u << 20;
    r.max_depth = limits && limits->max_depth ? limits->max_depth : 500;
    r.max_steps = limits && limits->max_steps ? limits->max_steps : 10000000;
    r.now = now;
    r.err = err;
    if (!(globals = scope_new(&r, NULL))) {
        jr_oom(&r, NULL);
        goto done;
    }
    for (int b = 0; b < B_COUNT; b++) {
        struct jfunc *fn = ja_alloc(&ar, sizeof *fn);
        struct jv v = {.type = JV_FUNC};
        if (!fn) {
            jr_oom(&r, NULL);
            goto done;
        }
        memset(fn, 0, sizeof *fn);
        fn->kind = JF_BUILTIN;
        fn->builtin = b;
        fn->name = builtin_names[b];
        v.u.fn = fn;
        if (assign(&r, NULL, globals, builtin_names[b], v))
            goto done;
    }
    if (vars) {
        const cJSON *c;
        if (!cJSON_IsObject(vars)) {
            jr_fail(&r, NULL, SH_EINVAL, "template variables must be a JSON object");
            goto done;
        }
        cJSON_ArrayForEach(c, vars)
        {
            struct jv v;
            if (!c->string || from_json(&r, c, &v, 0) || assign(&r, NULL, globals, c->string, v))
                goto done;
        }
    }
    if (!(top = scope_new(&r, globals))) {
        jr_oom(&r, NULL);
        goto done;
    }
    r.globals = globals;
    rc = exec(&r, top, t->root);
    if (rc > 0 && !r.code)
        jr_fail(&r, NULL, SH_EMALFORMED, "'break' or 'continue' outside a loop");
done:
    rc = r.code;
    if (rc) {
        jout_free(&o);
    } else {
        if (!o.p && jout_put(&o, 1, "", 0) == 0 && !(o.p = calloc(1, 1)))
            rc = sh_err_set(err, SH_ENOMEM, "out of memory");
        if (!rc) {
            *out = o.p;
            *len = o.n;
        }
    }
    ja_release(&ar);
    return rc;
}
