/* engine/jinja_call.c: calling things (macros with caller(), the globals
 * transformers provides: namespace, range, dict, raise_exception,
 * strftime_now; bound methods; loop() of a recursive for) and the public
 * compile/render entry points with the cJSON -> value conversion. */
#include <stdlib.h>
#include <string.h>

#include "engine/jinja_internal.h"

enum builtin {
    B_NAMESPACE,
    B_RANGE,
    B_DICT,
    B_RAISE,
    B_STRFTIME,
    B_COUNT,
};

static const char *const builtin_names[B_COUNT] = {"namespace", "range", "dict", "raise_exception",
                                                   "strftime_now"};

struct eng_jinja {
    struct jarena ar;
    struct jnode *root;
};

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
int jr_call_macro(struct jrender *r,
                  const struct jnode *at,
                  const struct jfunc *fn,
                  struct jv *args,
                  size_t nargs,
                  const char **kwn,
                  struct jv *kwv,
                  size_t nkw,
                  const struct jv *caller,
                  struct jv *out)
{
    const struct jnode *def = fn->node;
    const char *what = fn->kind == JF_MACRO ? def->name : "caller";
    struct jscope *sc;
    struct jv_list *varargs;
    struct jv_dict *kwargs;
    int rc;

    if (jr_step(r, at, 1) || jr_enter(r, at))
        return -1;
    if (!(sc = jr_scope_new(r, fn->closure)) || !(varargs = jv_list_new(r->ar, 0)) ||
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
                    return jr_fail(r, at, SH_EINVAL,
                                   "macro '%s' got multiple values for "
                                   "argument '%s'",
                                   what, def->targets[i]);
                v = kwv[k];
                found = true;
            }
        if (!found && def->defaults[i]) {
            if (jr_eval(r, sc, def->defaults[i], &v))
                return -1;
            found = true;
        }
        if (!found) {
            v = jv_undef(r->ar, def->targets[i], strlen(def->targets[i]), NULL);
            if (!v.u.undef)
                return jr_oom(r, at);
        }
        if (jr_assign(r, at, sc, def->targets[i], v))
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
        struct jv va = jv_list_val(varargs, true), kw = jv_dict_val(kwargs, false);
        if (jr_assign(r, at, sc, "varargs", va) || jr_assign(r, at, sc, "kwargs", kw))
            return -1;
    }
    if (caller && jr_assign(r, at, sc, "caller", *caller))
        return -1;
    rc = jr_capture(r, sc, def->b, out);
    r->depth--;
    return rc;
}

static int builtin_call(struct jrender *r,
                        const struct jnode *at,
                        int which,
                        struct jv *args,
                        size_t nargs,
                        const char **kwn,
                        struct jv *kwv,
                        size_t nkw,
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
        if (jv_dict_set_kwargs(r->ar, d, kwn, kwv, nkw))
            return jr_oom(r, at);
        *out = jv_dict_val(d, which == B_NAMESPACE);
        return 0;
    }
    case B_RANGE: {
        int64_t start = 0, stop, step = 1, count;
        struct jv_list *l;
        if (nkw || nargs < 1 || nargs > 3)
            return jr_fail(r, at, SH_EINVAL, "range() takes 1 to 3 integer arguments");
        for (size_t i = 0; i < nargs; i++)
            if (args[i].type != JV_INT && args[i].type != JV_BOOL)
                return jr_fail(r, at, SH_EINVAL,
                               "'%s' object cannot be interpreted as an "
                               "integer",
                               jv_type_name(&args[i]));
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

int jr_call(struct jrender *r,
            const struct jnode *at,
            struct jv *fn,
            struct jv *args,
            size_t nargs,
            const char **kwn,
            struct jv *kwv,
            size_t nkw,
            struct jv *out)
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
        if (jr_enter(r, at))
            return -1;
        r->out = &cap;
        rc = jr_run_for(r, l->scope, l->node, &args[0], l->depth0 + 1);
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
        return jr_call_macro(r, at, fn->u.fn, args, nargs, kwn, kwv, nkw, NULL, out);
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
        *out = jv_dict_val(d, false);
    } else {
        return jr_fail(r, NULL, SH_EINVAL, "unsupported JSON value");
    }
    return 0;
}

int eng_jinja_render(const struct eng_jinja *t,
                     const cJSON *vars,
                     const struct tm *now,
                     const struct eng_jinja_limits *limits,
                     char **out,
                     size_t *len,
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
    if (!(globals = jr_scope_new(&r, NULL))) {
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
        if (jr_assign(&r, NULL, globals, builtin_names[b], v))
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
            if (!c->string || from_json(&r, c, &v, 0) || jr_assign(&r, NULL, globals, c->string, v))
                goto done;
        }
    }
    if (!(top = jr_scope_new(&r, globals))) {
        jr_oom(&r, NULL);
        goto done;
    }
    r.globals = globals;
    rc = jr_exec(&r, top, t->root);
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
