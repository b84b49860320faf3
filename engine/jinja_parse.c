/* engine/jinja_parse.c: tokens -> AST for statements, following
 * jinja2/parser.py (expressions are in jinja_expr.c). Statements: if,
 * for (else, loop filter, recursive), set (incl. namespace attributes and
 * block set), macro, call, filter, with, break/continue (loopcontrols) and
 * transformers' {% generation %}. Everything else is refused by name. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/jinja_parser.h"

/* ---- statements ------------------------------------------------------------ */
static int parse_body(struct parser *p, const char *const *ends, struct jnode **out);

static int set_targets(struct parser *p, struct jnode *nd, const char **names, size_t n)
{
    nd->targets = ja_alloc(p->a, (n ? n : 1) * sizeof *nd->targets);
    if (!nd->targets)
        return jp_oom(p);
    memcpy(nd->targets, names, n * sizeof *names);
    nd->ntargets = n;
    return 0;
}

/* name [, name]... up to `stop` (a name like "in") or '=' / block end. */
static int parse_names(struct parser *p, struct jnode *nd, const char *stop, bool *unpack)
{
    const char *names[32];
    size_t n = 0;
    *unpack = false;
    for (;;) {
        if (jp_cur(p)->type != JT_NAME || (stop && jp_is_name(jp_cur(p), stop)))
            return jp_unexpected(p, "a variable name");
        if (n == 32)
            return jp_fail(p, jp_cur(p), SH_ETOOBIG, "more than 32 assignment targets");
        names[n++] = jp_cur(p)->s;
        p->i++;
        if (!jp_is_op(jp_cur(p), JO_COMMA))
            break;
        *unpack = true;
        p->i++;
        if ((stop && jp_is_name(jp_cur(p), stop)) || jp_is_op(jp_cur(p), JO_ASSIGN))
            break;
    }
    return set_targets(p, nd, names, n);
}

/* (a, b=default, ...) for macros and call blocks */
static int parse_signature(struct parser *p, struct jnode *nd)
{
    const char *names[64];
    struct jnode *defs[64];
    size_t n = 0;
    int rc;

    if ((rc = jp_expect_op(p, JO_LPAREN, "'('")) != 0)
        return rc;
    while (!jp_is_op(jp_cur(p), JO_RPAREN)) {
        if (n && (rc = jp_expect_op(p, JO_COMMA, "','")) != 0)
            return rc;
        if (jp_is_op(jp_cur(p), JO_RPAREN))
            break;
        if (jp_cur(p)->type != JT_NAME)
            return jp_unexpected(p, "a parameter name");
        if (n == 64)
            return jp_fail(p, jp_cur(p), SH_ETOOBIG, "more than 64 parameters");
        names[n] = jp_cur(p)->s;
        defs[n] = NULL;
        p->i++;
        if (jp_is_op(jp_cur(p), JO_ASSIGN)) {
            p->i++;
            if ((rc = jp_expression(p, true, &defs[n])) != 0)
                return rc;
        } else if (n && defs[n - 1]) {
            return jp_fail(p, jp_cur(p), SH_EMALFORMED,
                           "non-default argument follows default argument");
        }
        n++;
    }
    p->i++;
    if ((rc = set_targets(p, nd, names, n)) != 0)
        return rc;
    if (!(nd->defaults = ja_alloc(p->a, (n ? n : 1) * sizeof *nd->defaults)))
        return jp_oom(p);
    memcpy(nd->defaults, defs, n * sizeof *defs);
    return 0;
}

static int parse_if(struct parser *p, const struct jtoken *at, struct jnode **out)
{
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    static const char *const endonly[] = {"endif", NULL};
    struct jnode *nd = jp_node(p, JN_IF, at);
    int rc;
    if (!nd)
        return jp_oom(p);
    if ((rc = jp_tuple(p, false, false, NULL, false, &nd->a)) != 0 ||
        (rc = jp_expect_block_end(p)) != 0 || (rc = parse_body(p, ends, &nd->b)) != 0)
        return rc;
    *out = nd;
    if (jp_is_name(jp_cur(p), "elif")) {
        const struct jtoken *t = jp_cur(p);
        p->i++;
        /* each elif nests one level: long chains are bounded like nesting */
        if ((rc = jp_enter(p)) != 0 || (rc = parse_if(p, t, &nd->c)) != 0)
            return rc;
        p->depth--;
        return 0;
    }
    if (jp_is_name(jp_cur(p), "else")) {
        p->i++;
        if ((rc = jp_expect_block_end(p)) != 0 || (rc = parse_body(p, endonly, &nd->c)) != 0)
            return rc;
    }
    p->i++; /* endif */
    return jp_expect_block_end(p);
}

static int parse_for(struct parser *p, const struct jtoken *at, struct jnode **out)
{
    static const char *const ends[] = {"endfor", "else", NULL};
    static const char *const endonly[] = {"endfor", NULL};
    struct jnode *nd = jp_node(p, JN_FOR, at);
    bool unpack;
    int rc;
    if (!nd)
        return jp_oom(p);
    if ((rc = parse_names(p, nd, "in", &unpack)) != 0 || (rc = jp_expect_name(p, "in")) != 0 ||
        (rc = jp_tuple(p, false, false, "recursive", false, &nd->a)) != 0)
        return rc;
    if (unpack)
        nd->op = 1;
    if (jp_is_name(jp_cur(p), "if")) {
        p->i++;
        if ((rc = jp_expression(p, true, &nd->d)) != 0)
            return rc;
    }
    if (jp_is_name(jp_cur(p), "recursive")) {
        p->i++;
        nd->flags |= JN_F_RECURSIVE;
    }
    if ((rc = jp_expect_block_end(p)) != 0 || (rc = parse_body(p, ends, &nd->b)) != 0)
        return rc;
    if (jp_is_name(jp_cur(p), "else")) {
        p->i++;
        if ((rc = jp_expect_block_end(p)) != 0 || (rc = parse_body(p, endonly, &nd->c)) != 0)
            return rc;
    }
    p->i++;
    *out = nd;
    return jp_expect_block_end(p);
}

static int parse_filters_chain(struct parser *p, struct jnode *nd)
{
    struct nvec fs = {0};
    int rc;
    while (jp_is_op(jp_cur(p), JO_PIPE) || (!fs.n && jp_cur(p)->type == JT_NAME)) {
        struct jnode *f;
        if (jp_is_op(jp_cur(p), JO_PIPE))
            p->i++;
        if ((rc = jp_filter(p, NULL, &f)) != 0 || (rc = jp_vpush(p, &fs, f)) != 0)
            return rc;
    }
    nd->items = fs.v;
    nd->n = fs.n;
    return 0;
}

static int parse_set(struct parser *p, const struct jtoken *at, struct jnode **out)
{
    static const char *const ends[] = {"endset", NULL};
    struct jnode *nd = jp_node(p, JN_SET, at);
    bool unpack;
    int rc;
    if (!nd)
        return jp_oom(p);
    if (jp_cur(p)->type == JT_NAME && jp_is_op(jp_peek(p, 1), JO_DOT) &&
        jp_peek(p, 2)->type == JT_NAME) {
        /* namespace attribute: set ns.attr = value */
        if (!(nd->a = jp_node(p, JN_GETATTR, jp_cur(p))) ||
            !(nd->a->a = jp_node(p, JN_NAME, jp_cur(p))))
            return jp_oom(p);
        nd->a->a->name = jp_cur(p)->s;
        nd->a->name = jp_peek(p, 2)->s;
        p->i += 3;
    } else if ((rc = parse_names(p, nd, NULL, &unpack)) != 0) {
        return rc;
    } else if (unpack) {
        nd->op = 1;
    }
    if (jp_is_op(jp_cur(p), JO_ASSIGN)) {
        p->i++;
        if ((rc = jp_tuple(p, false, true, NULL, false, &nd->b)) != 0)
            return rc;
        *out = nd;
        return jp_expect_block_end(p);
    }
    if (nd->a || nd->ntargets != 1)
        return jp_unexpected(p, "'='");
    nd->kind = JN_SETBLOCK;
    if ((rc = parse_filters_chain(p, nd)) != 0 || (rc = jp_expect_block_end(p)) != 0 ||
        (rc = parse_body(p, ends, &nd->b)) != 0)
        return rc;
    p->i++;
    *out = nd;
    return jp_expect_block_end(p);
}

static int parse_macro(struct parser *p, const struct jtoken *at, struct jnode **out)
{
    static const char *const ends[] = {"endmacro", NULL};
    struct jnode *nd = jp_node(p, JN_MACRO, at);
    int rc;
    if (!nd)
        return jp_oom(p);
    if (jp_cur(p)->type != JT_NAME)
        return jp_unexpected(p, "a macro name");
    nd->name = jp_cur(p)->s;
    p->i++;
    if ((rc = parse_signature(p, nd)) != 0 || (rc = jp_expect_block_end(p)) != 0 ||
        (rc = parse_body(p, ends, &nd->b)) != 0)
        return rc;
    p->i++;
    *out = nd;
    return jp_expect_block_end(p);
}

static int parse_call_block(struct parser *p, const struct jtoken *at, struct jnode **out)
{
    static const char *const ends[] = {"endcall", NULL};
    struct jnode *nd = jp_node(p, JN_CALLBLOCK, at);
    int rc;
    if (!nd)
        return jp_oom(p);
    if (jp_is_op(jp_cur(p), JO_LPAREN)) {
        if ((rc = parse_signature(p, nd)) != 0)
            return rc;
    } else if (!(nd->defaults = ja_alloc(p->a, sizeof *nd->defaults)) ||
               !(nd->targets = ja_alloc(p->a, sizeof *nd->targets))) {
        return jp_oom(p);
    }
    if ((rc = jp_expression(p, true, &nd->a)) != 0)
        return rc;
    if (nd->a->kind != JN_CALL)
        return jp_fail(p, at, SH_EMALFORMED, "expected a call after {%% call %%}");
    if ((rc = jp_expect_block_end(p)) != 0 || (rc = parse_body(p, ends, &nd->b)) != 0)
        return rc;
    p->i++;
    *out = nd;
    return jp_expect_block_end(p);
}

static int parse_with(struct parser *p, const struct jtoken *at, struct jnode **out)
{
    static const char *const ends[] = {"endwith", NULL};
    struct jnode *nd = jp_node(p, JN_WITH, at);
    const char *names[32];
    struct nvec vals = {0};
    int rc;
    if (!nd)
        return jp_oom(p);
    while (jp_cur(p)->type != JT_BLOCK_END) {
        struct jnode *v;
        if (vals.n && (rc = jp_expect_op(p, JO_COMMA, "','")) != 0)
            return rc;
        if (jp_cur(p)->type != JT_NAME)
            return jp_unexpected(p, "a variable name");
        if (vals.n == 32)
            return jp_fail(p, jp_cur(p), SH_ETOOBIG, "more than 32 with-assignments");
        names[vals.n] = jp_cur(p)->s;
        p->i++;
        if ((rc = jp_expect_op(p, JO_ASSIGN, "'='")) != 0 ||
            (rc = jp_expression(p, true, &v)) != 0 || (rc = jp_vpush(p, &vals, v)) != 0)
            return rc;
    }
    if ((rc = set_targets(p, nd, names, vals.n)) != 0)
        return rc;
    nd->items = vals.v;
    nd->n = vals.n;
    p->i++;
    if ((rc = parse_body(p, ends, &nd->b)) != 0)
        return rc;
    p->i++;
    *out = nd;
    return jp_expect_block_end(p);
}

static int parse_statement(struct parser *p, struct jnode **out)
{
    const struct jtoken *at = jp_cur(p);
    const char *name = at->s;
    int rc;

    if (at->type != JT_NAME)
        return jp_unexpected(p, "a statement name");
    p->i++;
    if ((rc = jp_enter(p)) != 0)
        return rc;
    if (!strcmp(name, "if"))
        rc = parse_if(p, at, out);
    else if (!strcmp(name, "for"))
        rc = parse_for(p, at, out);
    else if (!strcmp(name, "set"))
        rc = parse_set(p, at, out);
    else if (!strcmp(name, "macro"))
        rc = parse_macro(p, at, out);
    else if (!strcmp(name, "call"))
        rc = parse_call_block(p, at, out);
    else if (!strcmp(name, "with"))
        rc = parse_with(p, at, out);
    else if (!strcmp(name, "filter")) {
        static const char *const ends[] = {"endfilter", NULL};
        struct jnode *nd = jp_node(p, JN_FILTERBLOCK, at);
        if (!nd)
            return jp_oom(p);
        if ((rc = parse_filters_chain(p, nd)) != 0 || (rc = jp_expect_block_end(p)) != 0 ||
            (rc = parse_body(p, ends, &nd->b)) != 0)
            return rc;
        p->i++;
        *out = nd;
        rc = jp_expect_block_end(p);
    } else if (!strcmp(name, "generation")) {
        /* transformers' AssistantTracker: marks assistant text, renders as is */
        static const char *const ends[] = {"endgeneration", NULL};
        if ((rc = jp_expect_block_end(p)) != 0 || (rc = parse_body(p, ends, out)) != 0)
            return rc;
        p->i++;
        rc = jp_expect_block_end(p);
    } else if (!strcmp(name, "break") || !strcmp(name, "continue")) {
        if (!(*out = jp_node(p, name[0] == 'b' ? JN_BREAK : JN_CONTINUE, at)))
            return jp_oom(p);
        rc = jp_expect_block_end(p);
    } else if (!strcmp(name, "extends") || !strcmp(name, "include") || !strcmp(name, "import") ||
               !strcmp(name, "from") || !strcmp(name, "block") || !strcmp(name, "autoescape") ||
               !strcmp(name, "do") || !strcmp(name, "trans") || !strcmp(name, "print")) {
        return jp_fail(p, at, SH_EUNSUPPORTED, "the '%s' statement is not supported", name);
    } else {
        return jp_fail(p, at, SH_EMALFORMED, "Encountered unknown tag '%.40s'.", name);
    }
    p->depth--;
    return rc;
}

/* Statements up to a block whose name is in `ends` (left as the current
 * token) or, with ends == NULL, to the end of the template. */
static int parse_body(struct parser *p, const char *const *ends, struct jnode **out)
{
    struct jnode *body = jp_node(p, JN_BODY, jp_cur(p));
    struct nvec items = {0};
    int rc;

    if (!body)
        return jp_oom(p);
    for (;;) {
        const struct jtoken *t = jp_cur(p);
        struct jnode *nd = NULL;
        if (t->type == JT_EOF) {
            if (ends) {
                char want[120] = "";
                size_t off = 0;
                for (const char *const *e = ends; *e; e++)
                    off += (size_t)snprintf(want + off, sizeof want - off, "%s'%s'",
                                            e == ends ? "" : " or ", *e);
                return jp_fail(p, t, SH_EMALFORMED,
                               "Unexpected end of template. Jinja was looking for the "
                               "following tags: %s.",
                               want);
            }
            break;
        }
        if (t->type == JT_TEXT) {
            if (!(nd = jp_node(p, JN_TEXT, t)))
                return jp_oom(p);
            nd->val = jv_strn(t->s, t->n);
            p->i++;
        } else if (t->type == JT_VAR_BEGIN) {
            p->i++;
            if (!(nd = jp_node(p, JN_OUTPUT, t)))
                return jp_oom(p);
            if ((rc = jp_tuple(p, false, true, NULL, false, &nd->a)) != 0)
                return rc;
            if (jp_cur(p)->type != JT_VAR_END)
                return jp_unexpected(p, "end of print statement");
            p->i++;
        } else if (t->type == JT_BLOCK_BEGIN) {
            const struct jtoken *nt = jp_peek(p, 1);
            if (nt->type == JT_NAME && ju_in_list(ends, nt->s)) {
                p->i++;
                break;
            }
            p->i++;
            if ((rc = parse_statement(p, &nd)) != 0)
                return rc;
        } else {
            return jp_unexpected(p, "template data or a tag");
        }
        if ((rc = jp_vpush(p, &items, nd)) != 0)
            return rc;
    }
    body->items = items.v;
    body->n = items.n;
    *out = body;
    return 0;
}

int jparse(struct jarena *a, const struct jtokens *toks, struct jnode **root, struct sh_err *err)
{
    struct parser p = {.a = a, .t = toks->t, .n = toks->n, .err = err};
    return parse_body(&p, NULL, root);
}
