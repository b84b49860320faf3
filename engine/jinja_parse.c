/* engine/jinja_parse.c: tokens -> AST, following jinja2/parser.py's grammar
 * and precedence (ternary < or < and < not < comparisons < + - < ~ < * / // %
 * < ** < unary - + < postfix . [] () < filters and tests). Statements: if,
 * for (else, loop filter, recursive), set (incl. namespace attributes and
 * block set), macro, call, filter, with, break/continue (loopcontrols) and
 * transformers' {% generation %}. Everything else is refused by name. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/jinja_internal.h"

#define MAX_PARSE_DEPTH 200

struct parser {
    struct jarena *a;
    const struct jtoken *t;
    size_t n;
    size_t i;
    size_t depth;
    struct sh_err *err;
};

/* A growable array of node pointers in the arena. */
struct nvec {
    struct jnode **v;
    size_t n;
    size_t cap;
};

static const struct jtoken *cur(const struct parser *p)
{
    return &p->t[p->i];
}

static const struct jtoken *peek(const struct parser *p, size_t k)
{
    return p->i + k < p->n ? &p->t[p->i + k] : &p->t[p->n - 1];
}

static const char *tok_desc(const struct jtoken *t, char *buf, size_t cap)
{
    static const char *const opnames[] = {
        "", "+", "-", "*", "/", "//", "%", "**", "~", "[", "]", "(", ")", "{", "}",
        "==", "!=", ">", ">=", "<", "<=", "in", "not in", "=", ".", ":", "|", ",", ";"};
    switch (t->type) {
    case JT_TEXT:
        return "template data";
    case JT_VAR_BEGIN:
        return "'{{'";
    case JT_VAR_END:
        return "end of print statement";
    case JT_BLOCK_BEGIN:
        return "'{%'";
    case JT_BLOCK_END:
        return "end of statement block";
    case JT_NAME:
        snprintf(buf, cap, "'%.40s'", t->s);
        return buf;
    case JT_STRING:
        return "string";
    case JT_INT:
        return "integer";
    case JT_FLOAT:
        return "float";
    case JT_OP:
        snprintf(buf, cap, "'%s'", t->op < sizeof opnames / sizeof opnames[0] ? opnames[t->op] : "?");
        return buf;
    default:
        return "end of template";
    }
}

static int fail_at(struct parser *p, const struct jtoken *t, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_at(struct parser *p, const struct jtoken *t, int code, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sh_err_set(p->err, code, "line %u col %u: %s", t->line, t->col, msg);
}

static int unexpected(struct parser *p, const char *want)
{
    char buf[64];
    return fail_at(p, cur(p), SH_EMALFORMED, "expected %s, got %s", want,
                   tok_desc(cur(p), buf, sizeof buf));
}

static int oom(struct parser *p)
{
    return sh_err_set(p->err, SH_ENOMEM, "out of memory");
}

static struct jnode *node(struct parser *p, uint8_t kind, const struct jtoken *at)
{
    struct jnode *nd = ja_alloc(p->a, sizeof *nd);
    if (!nd)
        return NULL;
    memset(nd, 0, sizeof *nd);
    nd->kind = kind;
    nd->line = at->line;
    nd->col = at->col;
    return nd;
}

static int vpush(struct parser *p, struct nvec *v, struct jnode *nd)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        struct jnode **nv = ja_alloc(p->a, cap * sizeof *nv);
        if (!nv)
            return oom(p);
        if (v->n)
            memcpy(nv, v->v, v->n * sizeof *nv);
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = nd;
    return 0;
}

static bool is_op(const struct jtoken *t, uint8_t op)
{
    return t->type == JT_OP && t->op == op;
}

static bool is_name(const struct jtoken *t, const char *name)
{
    return t->type == JT_NAME && strcmp(t->s, name) == 0;
}

static int expect_op(struct parser *p, uint8_t op, const char *desc)
{
    if (!is_op(cur(p), op))
        return unexpected(p, desc);
    p->i++;
    return 0;
}

static int expect_name(struct parser *p, const char *name)
{
    char want[48];
    if (!is_name(cur(p), name)) {
        snprintf(want, sizeof want, "'%s'", name);
        return unexpected(p, want);
    }
    p->i++;
    return 0;
}

static int expect_block_end(struct parser *p)
{
    if (cur(p)->type != JT_BLOCK_END)
        return unexpected(p, "end of statement block");
    p->i++;
    return 0;
}

static int parse_expression(struct parser *p, bool condexpr, struct jnode **out);
static int parse_unary(struct parser *p, bool with_filter, struct jnode **out);
static int parse_primary(struct parser *p, struct jnode **out);
static int parse_postfix(struct parser *p, struct jnode **nd);

static int enter(struct parser *p)
{
    if (++p->depth > MAX_PARSE_DEPTH)
        return fail_at(p, cur(p), SH_ETOOBIG, "template nested deeper than %d levels",
                       MAX_PARSE_DEPTH);
    return 0;
}

/* tuple end: }} %} ) or one of the extra names */
static bool tuple_end(const struct parser *p, const char *extra)
{
    const struct jtoken *t = cur(p);
    return t->type == JT_VAR_END || t->type == JT_BLOCK_END || t->type == JT_EOF ||
           is_op(t, JO_RPAREN) || (extra && is_name(t, extra));
}

static int parse_tuple(struct parser *p, bool simplified, bool condexpr, const char *extra,
                       bool explicit_parens, struct jnode **out)
{
    const struct jtoken *start = cur(p);
    struct nvec items = {0};
    bool is_tuple = false;
    int rc;

    for (;;) {
        struct jnode *e;
        if (items.n && (rc = expect_op(p, JO_COMMA, "','")) != 0)
            return rc;
        if (tuple_end(p, extra))
            break;
        rc = simplified ? parse_primary(p, &e) : parse_expression(p, condexpr, &e);
        if (rc || (rc = vpush(p, &items, e)) != 0)
            return rc;
        if (is_op(cur(p), JO_COMMA))
            is_tuple = true;
        else
            break;
    }
    if (!is_tuple) {
        if (items.n) {
            *out = items.v[0];
            return 0;
        }
        if (!explicit_parens)
            return unexpected(p, "an expression");
    }
    if (!(*out = node(p, JN_TUPLE, start)))
        return oom(p);
    (*out)->items = items.v;
    (*out)->n = items.n;
    return 0;
}

/* (args, name=value) after '(' has been seen at cur. */
static int parse_call_args(struct parser *p, struct jnode *call)
{
    struct nvec args = {0}, kwv = {0};
    const char **kwn = NULL;
    size_t kwcap = 0;
    int rc;

    if ((rc = expect_op(p, JO_LPAREN, "'('")) != 0)
        return rc;
    while (!is_op(cur(p), JO_RPAREN)) {
        struct jnode *e;
        if (args.n + kwv.n && (rc = expect_op(p, JO_COMMA, "','")) != 0)
            return rc;
        if (is_op(cur(p), JO_RPAREN))
            break;
        if (is_op(cur(p), JO_MUL) || is_op(cur(p), JO_POW))
            return fail_at(p, cur(p), SH_EUNSUPPORTED, "*args / **kwargs in calls are not supported");
        if (cur(p)->type == JT_NAME && is_op(peek(p, 1), JO_ASSIGN)) {
            const char *name = cur(p)->s;
            p->i += 2;
            if ((rc = parse_expression(p, true, &e)) != 0)
                return rc;
            if (kwv.n == kwcap) {
                size_t cap = kwcap ? kwcap * 2 : 4;
                const char **nk = ja_alloc(p->a, cap * sizeof *nk);
                if (!nk)
                    return oom(p);
                if (kwv.n)
                    memcpy(nk, kwn, kwv.n * sizeof *nk);
                kwn = nk;
                kwcap = cap;
            }
            kwn[kwv.n] = name;
            if ((rc = vpush(p, &kwv, e)) != 0)
                return rc;
            continue;
        }
        if (kwv.n)
            return fail_at(p, cur(p), SH_EMALFORMED, "positional argument after keyword argument");
        if ((rc = parse_expression(p, true, &e)) != 0 || (rc = vpush(p, &args, e)) != 0)
            return rc;
    }
    p->i++;
    call->items = args.v;
    call->n = args.n;
    call->kwnames = kwn;
    call->kwvals = kwv.v;
    call->nkw = kwv.n;
    return 0;
}

/* filter or test name, possibly dotted (a.b) */
static int parse_dotted_name(struct parser *p, const char **out)
{
    const char *name;
    if (cur(p)->type != JT_NAME)
        return unexpected(p, "a name");
    name = cur(p)->s;
    p->i++;
    while (is_op(cur(p), JO_DOT) && peek(p, 1)->type == JT_NAME) {
        size_t n = strlen(name), m = strlen(peek(p, 1)->s);
        char *joined = ja_alloc(p->a, n + m + 2);
        if (!joined)
            return oom(p);
        memcpy(joined, name, n);
        joined[n] = '.';
        memcpy(joined + n + 1, peek(p, 1)->s, m + 1);
        name = joined;
        p->i += 2;
    }
    *out = name;
    return 0;
}

/* '|' name [(args)] with operand (NULL for block filters) */
static int parse_filter(struct parser *p, struct jnode *operand, struct jnode **out)
{
    const struct jtoken *at = cur(p);
    struct jnode *f = node(p, JN_FILTER, at);
    int rc;
    if (!f)
        return oom(p);
    f->a = operand;
    if ((rc = parse_dotted_name(p, &f->name)) != 0)
        return rc;
    if (is_op(cur(p), JO_LPAREN) && (rc = parse_call_args(p, f)) != 0)
        return rc;
    *out = f;
    return 0;
}

static int parse_test(struct parser *p, struct jnode *operand, struct jnode **out)
{
    const struct jtoken *at = cur(p), *t;
    struct jnode *nd = node(p, JN_TEST, at);
    int rc;
    if (!nd)
        return oom(p);
    nd->a = operand;
    if (is_name(cur(p), "not")) {
        nd->flags |= JN_F_NEGATED;
        p->i++;
    }
    if ((rc = parse_dotted_name(p, &nd->name)) != 0)
        return rc;
    t = cur(p);
    if (is_op(t, JO_LPAREN)) {
        if ((rc = parse_call_args(p, nd)) != 0)
            return rc;
    } else if ((t->type == JT_NAME || t->type == JT_STRING || t->type == JT_INT ||
                t->type == JT_FLOAT || is_op(t, JO_LBRACKET) || is_op(t, JO_LBRACE)) &&
               !is_name(t, "else") && !is_name(t, "or") && !is_name(t, "and")) {
        struct jnode *arg;
        if (is_name(t, "is"))
            return fail_at(p, t, SH_EMALFORMED, "You cannot chain multiple tests with is");
        if ((rc = parse_primary(p, &arg)) != 0 || (rc = parse_postfix(p, &arg)) != 0)
            return rc;
        nd->items = ja_alloc(p->a, sizeof *nd->items);
        if (!nd->items)
            return oom(p);
        nd->items[0] = arg;
        nd->n = 1;
    }
    *out = nd;
    return 0;
}

static int parse_subscript(struct parser *p, struct jnode **nd)
{
    const struct jtoken *at = cur(p);
    struct jnode *parts[3] = {NULL, NULL, NULL}, *r;
    int nparts = 0, rc;
    bool slice = false;

    if (is_op(at, JO_DOT)) {
        const struct jtoken *t = peek(p, 1);
        p->i += 2;
        if (t->type == JT_NAME) {
            if (!(r = node(p, JN_GETATTR, at)))
                return oom(p);
            r->a = *nd;
            r->name = t->s;
        } else if (t->type == JT_INT) {
            if (!(r = node(p, JN_GETITEM, at)) || !(r->b = node(p, JN_CONST, t)))
                return oom(p);
            r->a = *nd;
            r->b->val = jv_int(t->i);
        } else {
            p->i--;
            return unexpected(p, "a name or number after '.'");
        }
        *nd = r;
        return 0;
    }
    p->i++; /* '[' */
    for (;;) {
        if (is_op(cur(p), JO_COLON)) {
            slice = true;
            p->i++;
            if (++nparts > 2)
                return fail_at(p, cur(p), SH_EMALFORMED, "too many ':' in a slice");
            continue;
        }
        if (is_op(cur(p), JO_RBRACKET))
            break;
        if (parts[nparts])
            return unexpected(p, "']'");
        if ((rc = parse_expression(p, true, &parts[nparts])) != 0)
            return rc;
        if (!slice && is_op(cur(p), JO_COMMA))
            return fail_at(p, cur(p), SH_EUNSUPPORTED, "tuple subscripts are not supported");
    }
    p->i++;
    if (!slice && !parts[0])
        return fail_at(p, at, SH_EMALFORMED, "expected an expression in '[]'");
    if (!(r = node(p, slice ? JN_SLICE : JN_GETITEM, at)))
        return oom(p);
    r->a = *nd;
    r->b = parts[0];
    r->c = parts[1];
    r->d = parts[2];
    *nd = r;
    return 0;
}

static int parse_postfix(struct parser *p, struct jnode **nd)
{
    int rc;
    for (;;) {
        const struct jtoken *t = cur(p);
        if (is_op(t, JO_DOT) || is_op(t, JO_LBRACKET)) {
            if ((rc = parse_subscript(p, nd)) != 0)
                return rc;
        } else if (is_op(t, JO_LPAREN)) {
            struct jnode *c = node(p, JN_CALL, t);
            if (!c)
                return oom(p);
            c->a = *nd;
            if ((rc = parse_call_args(p, c)) != 0)
                return rc;
            *nd = c;
        } else {
            return 0;
        }
    }
}

static int parse_filter_expr(struct parser *p, struct jnode **nd)
{
    int rc;
    for (;;) {
        const struct jtoken *t = cur(p);
        if (is_op(t, JO_PIPE)) {
            p->i++;
            rc = parse_filter(p, *nd, nd);
        } else if (is_name(t, "is")) {
            p->i++;
            rc = parse_test(p, *nd, nd);
        } else if (is_op(t, JO_LPAREN)) {
            struct jnode *c = node(p, JN_CALL, t);
            if (!c)
                return oom(p);
            c->a = *nd;
            rc = parse_call_args(p, c);
            *nd = c;
        } else {
            return 0;
        }
        if (rc)
            return rc;
    }
}

static int parse_list_or_dict(struct parser *p, bool dict, struct jnode **out)
{
    const struct jtoken *at = cur(p);
    uint8_t close = dict ? JO_RBRACE : JO_RBRACKET;
    struct nvec items = {0};
    int rc;

    p->i++;
    while (!is_op(cur(p), close)) {
        struct jnode *k, *v;
        if (items.n && (rc = expect_op(p, JO_COMMA, "','")) != 0)
            return rc;
        if (is_op(cur(p), close))
            break;
        if ((rc = parse_expression(p, true, &k)) != 0 || (rc = vpush(p, &items, k)) != 0)
            return rc;
        if (dict) {
            if ((rc = expect_op(p, JO_COLON, "':'")) != 0 ||
                (rc = parse_expression(p, true, &v)) != 0 || (rc = vpush(p, &items, v)) != 0)
                return rc;
        }
    }
    p->i++;
    if (!(*out = node(p, dict ? JN_DICT : JN_LIST, at)))
        return oom(p);
    (*out)->items = items.v;
    (*out)->n = items.n;
    return 0;
}

static int parse_primary(struct parser *p, struct jnode **out)
{
    const struct jtoken *t = cur(p);
    struct jnode *nd;
    int rc;

    if ((rc = enter(p)) != 0)
        return rc;
    switch (t->type) {
    case JT_NAME:
        if (!(nd = node(p, JN_CONST, t)))
            return oom(p);
        if (!strcmp(t->s, "true") || !strcmp(t->s, "True")) {
            nd->val = jv_bool(true);
        } else if (!strcmp(t->s, "false") || !strcmp(t->s, "False")) {
            nd->val = jv_bool(false);
        } else if (!strcmp(t->s, "none") || !strcmp(t->s, "None")) {
            nd->val = jv_none();
        } else {
            nd->kind = JN_NAME;
            nd->name = t->s;
        }
        p->i++;
        break;
    case JT_STRING: {
        size_t total = 0, k = p->i;
        char *s;
        while (p->t[k].type == JT_STRING)
            total += p->t[k++].n;
        if (!(nd = node(p, JN_CONST, t)) || !(s = ja_alloc(p->a, total + 1)))
            return oom(p);
        total = 0;
        for (; p->i < k; p->i++) {
            memcpy(s + total, p->t[p->i].s, p->t[p->i].n);
            total += p->t[p->i].n;
        }
        s[total] = '\0';
        nd->val = jv_strn(s, total);
        break;
    }
    case JT_INT:
    case JT_FLOAT:
        if (!(nd = node(p, JN_CONST, t)))
            return oom(p);
        nd->val = t->type == JT_INT ? jv_int(t->i) : jv_float(t->f);
        p->i++;
        break;
    case JT_OP:
        if (t->op == JO_LPAREN) {
            p->i++;
            if ((rc = parse_tuple(p, false, true, NULL, true, &nd)) != 0 ||
                (rc = expect_op(p, JO_RPAREN, "')'")) != 0)
                return rc;
            break;
        }
        if (t->op == JO_LBRACKET || t->op == JO_LBRACE) {
            if ((rc = parse_list_or_dict(p, t->op == JO_LBRACE, &nd)) != 0)
                return rc;
            break;
        }
        return unexpected(p, "an expression");
    default:
        return unexpected(p, "an expression");
    }
    p->depth--;
    *out = nd;
    return 0;
}

static int parse_unary(struct parser *p, bool with_filter, struct jnode **out)
{
    const struct jtoken *t = cur(p);
    struct jnode *nd;
    int rc;

    if ((rc = enter(p)) != 0)
        return rc;
    if (is_op(t, JO_SUB) || is_op(t, JO_ADD)) {
        p->i++;
        if (!(nd = node(p, is_op(t, JO_SUB) ? JN_NEG : JN_POS, t)))
            return oom(p);
        if ((rc = parse_unary(p, false, &nd->a)) != 0)
            return rc;
    } else if ((rc = parse_primary(p, &nd)) != 0) {
        return rc;
    }
    if ((rc = parse_postfix(p, &nd)) != 0)
        return rc;
    if (with_filter && (rc = parse_filter_expr(p, &nd)) != 0)
        return rc;
    p->depth--;
    *out = nd;
    return 0;
}

static int binop(struct parser *p, const struct jtoken *at, uint8_t kind, uint8_t op,
                 struct jnode *a, struct jnode *b, struct jnode **out)
{
    struct jnode *nd = node(p, kind, at);
    if (!nd)
        return oom(p);
    nd->op = op;
    nd->a = a;
    nd->b = b;
    *out = nd;
    return 0;
}

static int parse_pow(struct parser *p, struct jnode **out)
{
    int rc = parse_unary(p, true, out);
    while (!rc && is_op(cur(p), JO_POW)) {
        const struct jtoken *at = cur(p);
        struct jnode *r;
        p->i++;
        if ((rc = parse_unary(p, true, &r)) == 0)
            rc = binop(p, at, JN_BINOP, JO_POW, *out, r, out);
    }
    return rc;
}

static int parse_math2(struct parser *p, struct jnode **out)
{
    int rc = parse_pow(p, out);
    while (!rc && cur(p)->type == JT_OP &&
           (cur(p)->op == JO_MUL || cur(p)->op == JO_DIV || cur(p)->op == JO_FLOORDIV ||
            cur(p)->op == JO_MOD)) {
        const struct jtoken *at = cur(p);
        struct jnode *r;
        p->i++;
        if ((rc = parse_pow(p, &r)) == 0)
            rc = binop(p, at, JN_BINOP, at->op, *out, r, out);
    }
    return rc;
}

static int parse_concat(struct parser *p, struct jnode **out)
{
    const struct jtoken *at = cur(p);
    struct nvec args = {0};
    struct jnode *e;
    int rc = parse_math2(p, &e);
    if (rc)
        return rc;
    if (!is_op(cur(p), JO_TILDE)) {
        *out = e;
        return 0;
    }
    if ((rc = vpush(p, &args, e)) != 0)
        return rc;
    while (is_op(cur(p), JO_TILDE)) {
        p->i++;
        if ((rc = parse_math2(p, &e)) != 0 || (rc = vpush(p, &args, e)) != 0)
            return rc;
    }
    if (!(*out = node(p, JN_CONCAT, at)))
        return oom(p);
    (*out)->items = args.v;
    (*out)->n = args.n;
    return 0;
}

static int parse_math1(struct parser *p, struct jnode **out)
{
    int rc = parse_concat(p, out);
    while (!rc && (is_op(cur(p), JO_ADD) || is_op(cur(p), JO_SUB))) {
        const struct jtoken *at = cur(p);
        struct jnode *r;
        p->i++;
        if ((rc = parse_concat(p, &r)) == 0)
            rc = binop(p, at, JN_BINOP, at->op, *out, r, out);
    }
    return rc;
}

static int parse_compare(struct parser *p, struct jnode **out)
{
    const struct jtoken *at = cur(p);
    struct nvec operands = {0};
    uint8_t ops[64];
    size_t nops = 0;
    struct jnode *e;
    int rc = parse_math1(p, &e);

    if (rc || (rc = vpush(p, &operands, e)) != 0)
        return rc;
    for (;;) {
        const struct jtoken *t = cur(p);
        uint8_t op;
        if (t->type == JT_OP && (t->op == JO_EQ || t->op == JO_NE || t->op == JO_LT ||
                                 t->op == JO_LE || t->op == JO_GT || t->op == JO_GE)) {
            op = t->op;
            p->i++;
        } else if (is_name(t, "in")) {
            op = JO_IN;
            p->i++;
        } else if (is_name(t, "not") && is_name(peek(p, 1), "in")) {
            op = JO_NOTIN;
            p->i += 2;
        } else {
            break;
        }
        if (nops == sizeof ops)
            return fail_at(p, t, SH_ETOOBIG, "comparison chain longer than 64");
        ops[nops++] = op;
        if ((rc = parse_math1(p, &e)) != 0 || (rc = vpush(p, &operands, e)) != 0)
            return rc;
    }
    if (!nops) {
        *out = operands.v[0];
        return 0;
    }
    if (!(*out = node(p, JN_COMPARE, at)) || !((*out)->ops = ja_alloc(p->a, nops)))
        return oom(p);
    memcpy((*out)->ops, ops, nops);
    (*out)->items = operands.v;
    (*out)->n = operands.n;
    return 0;
}

static int parse_not(struct parser *p, struct jnode **out)
{
    const struct jtoken *t = cur(p);
    int rc;
    if (is_name(t, "not")) {
        struct jnode *nd = node(p, JN_NOT, t);
        if (!nd)
            return oom(p);
        p->i++;
        if ((rc = enter(p)) != 0 || (rc = parse_not(p, &nd->a)) != 0)
            return rc;
        p->depth--;
        *out = nd;
        return 0;
    }
    return parse_compare(p, out);
}

static int parse_and(struct parser *p, struct jnode **out)
{
    int rc = parse_not(p, out);
    while (!rc && is_name(cur(p), "and")) {
        const struct jtoken *at = cur(p);
        struct jnode *r;
        p->i++;
        if ((rc = parse_not(p, &r)) == 0)
            rc = binop(p, at, JN_AND, 0, *out, r, out);
    }
    return rc;
}

static int parse_or(struct parser *p, struct jnode **out)
{
    int rc = parse_and(p, out);
    while (!rc && is_name(cur(p), "or")) {
        const struct jtoken *at = cur(p);
        struct jnode *r;
        p->i++;
        if ((rc = parse_and(p, &r)) == 0)
            rc = binop(p, at, JN_OR, 0, *out, r, out);
    }
    return rc;
}

static int parse_expression(struct parser *p, bool condexpr, struct jnode **out)
{
    int rc;
    if ((rc = enter(p)) != 0 || (rc = parse_or(p, out)) != 0)
        return rc;
    while (condexpr && is_name(cur(p), "if")) {
        const struct jtoken *at = cur(p);
        struct jnode *nd = node(p, JN_COND, at);
        if (!nd)
            return oom(p);
        p->i++;
        nd->a = *out;
        if ((rc = parse_or(p, &nd->b)) != 0)
            return rc;
        if (is_name(cur(p), "else")) {
            p->i++;
            if ((rc = parse_expression(p, true, &nd->c)) != 0)
                return rc;
        }
        *out = nd;
    }
    p->depth--;
    return 0;
}

/* ---- statements ------------------------------------------------------------ */
static int parse_body(struct parser *p, const char *const *ends, struct jnode **out);

static int set_targets(struct parser *p, struct jnode *nd, const char **names, size_t n)
{
    nd->targets = ja_alloc(p->a, (n ? n : 1) * sizeof *nd->targets);
    if (!nd->targets)
        return oom(p);
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
        if (cur(p)->type != JT_NAME || (stop && is_name(cur(p), stop)))
            return unexpected(p, "a variable name");
        if (n == 32)
            return fail_at(p, cur(p), SH_ETOOBIG, "more than 32 assignment targets");
        names[n++] = cur(p)->s;
        p->i++;
        if (!is_op(cur(p), JO_COMMA))
            break;
        *unpack = true;
        p->i++;
        if ((stop && is_name(cur(p), stop)) || is_op(cur(p), JO_ASSIGN))
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

    if ((rc = expect_op(p, JO_LPAREN, "'('")) != 0)
        return rc;
    while (!is_op(cur(p), JO_RPAREN)) {
        if (n && (rc = expect_op(p, JO_COMMA, "','")) != 0)
            return rc;
        if (is_op(cur(p), JO_RPAREN))
            break;
        if (cur(p)->type != JT_NAME)
            return unexpected(p, "a parameter name");
        if (n == 64)
            return fail_at(p, cur(p), SH_ETOOBIG, "more than 64 parameters");
        names[n] = cur(p)->s;
        defs[n] = NULL;
        p->i++;
        if (is_op(cur(p), JO_ASSIGN)) {
            p->i++;
            if ((rc = parse_expression(p, true, &defs[n])) != 0)
                return rc;
        } else if (n && defs[n - 1]) {
            return fail_at(p, cur(p), SH_EMALFORMED, "non-default argument follows default argument");
        }
        n++;
    }
    p->i++;
    if ((rc = set_targets(p, nd, names, n)) != 0)
        return rc;
    if (!(nd->defaults = ja_alloc(p->a, (n ? n : 1) * sizeof *nd->defaults)))
        return oom(p);
    memcpy(nd->defaults, defs, n * sizeof *defs);
    return 0;
}

static int parse_if(struct parser *p, const struct jtoken *at, struct jnode **out)
{
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    static const char *const endonly[] = {"endif", NULL};
    struct jnode *nd = node(p, JN_IF, at);
    int rc;
    if (!nd)
        return oom(p);
    if ((rc = parse_tuple(p, false, false, NULL, false, &nd->a)) != 0 ||
        (rc = expect_block_end(p)) != 0 || (rc = parse_body(p, ends, &nd->b)) != 0)
        return rc;
    *out = nd;
    if (is_name(cur(p), "elif")) {
        const struct jtoken *t = cur(p);
        p->i++;
        return parse_if(p, t, &nd->c);
    }
    if (is_name(cur(p), "else")) {
        p->i++;
        if ((rc = expect_block_end(p)) != 0 || (rc = parse_body(p, endonly, &nd->c)) != 0)
            return rc;
    }
    p->i++; /* endif */
    return expect_block_end(p);
}

static int parse_for(struct parser *p, const struct jtoken *at, struct jnode **out)
{
    static const char *const ends[] = {"endfor", "else", NULL};
    static const char *const endonly[] = {"endfor", NULL};
    struct jnode *nd = node(p, JN_FOR, at);
    bool unpack;
    int rc;
    if (!nd)
        return oom(p);
    if ((rc = parse_names(p, nd, "in", &unpack)) != 0 || (rc = expect_name(p, "in")) != 0 ||
        (rc = parse_tuple(p, false, false, "recursive", false, &nd->a)) != 0)
        return rc;
    if (unpack)
        nd->op = 1;
    if (is_name(cur(p), "if")) {
        p->i++;
        if ((rc = parse_expression(p, true, &nd->d)) != 0)
            return rc;
    }
    if (is_name(cur(p), "recursive")) {
        p->i++;
        nd->flags |= JN_F_RECURSIVE;
    }
    if ((rc = expect_block_end(p)) != 0 || (rc = parse_body(p, ends, &nd->b)) != 0)
        return rc;
    if (is_name(cur(p), "else")) {
        p->i++;
        if ((rc = expect_block_end(p)) != 0 || (rc = parse_body(p, endonly, &nd->c)) != 0)
            return rc;
    }
    p->i++;
    *out = nd;
    return expect_block_end(p);
}

static int parse_filters_chain(struct parser *p, struct jnode *nd)
{
    struct nvec fs = {0};
    int rc;
    while (is_op(cur(p), JO_PIPE) || (!fs.n && cur(p)->type == JT_NAME)) {
        struct jnode *f;
        if (is_op(cur(p), JO_PIPE))
            p->i++;
        if ((rc = parse_filter(p, NULL, &f)) != 0 || (rc = vpush(p, &fs, f)) != 0)
            return rc;
    }
    nd->items = fs.v;
    nd->n = fs.n;
    return 0;
}

static int parse_set(struct parser *p, const struct jtoken *at, struct jnode **out)
{
    static const char *const ends[] = {"endset", NULL};
    struct jnode *nd = node(p, JN_SET, at);
    bool unpack;
    int rc;
    if (!nd)
        return oom(p);
    if (cur(p)->type == JT_NAME && is_op(peek(p, 1), JO_DOT) && peek(p, 2)->type == JT_NAME) {
        /* namespace attribute: set ns.attr = value */
        if (!(nd->a = node(p, JN_GETATTR, cur(p))) || !(nd->a->a = node(p, JN_NAME, cur(p))))
            return oom(p);
        nd->a->a->name = cur(p)->s;
        nd->a->name = peek(p, 2)->s;
        p->i += 3;
    } else if ((rc = parse_names(p, nd, NULL, &unpack)) != 0) {
        return rc;
    } else if (unpack) {
        nd->op = 1;
    }
    if (is_op(cur(p), JO_ASSIGN)) {
        p->i++;
        if ((rc = parse_tuple(p, false, true, NULL, false, &nd->b)) != 0)
            return rc;
        *out = nd;
        return expect_block_end(p);
    }
    if (nd->a || nd->ntargets != 1)
        return unexpected(p, "'='");
    nd->kind = JN_SETBLOCK;
    if ((rc = parse_filters_chain(p, nd)) != 0 || (rc = expect_block_end(p)) != 0 ||
        (rc = parse_body(p, ends, &nd->b)) != 0)
        return rc;
    p->i++;
    *out = nd;
    return expect_block_end(p);
}

static int parse_macro(struct parser *p, const struct jtoken *at, struct jnode **out)
{
    static const char *const ends[] = {"endmacro", NULL};
    struct jnode *nd = node(p, JN_MACRO, at);
    int rc;
    if (!nd)
        return oom(p);
    if (cur(p)->type != JT_NAME)
        return unexpected(p, "a macro name");
    nd->name = cur(p)->s;
    p->i++;
    if ((rc = parse_signature(p, nd)) != 0 || (rc = expect_block_end(p)) != 0 ||
        (rc = parse_body(p, ends, &nd->b)) != 0)
        return rc;
    p->i++;
    *out = nd;
    return expect_block_end(p);
}

static int parse_call_block(struct parser *p, const struct jtoken *at, struct jnode **out)
{
    static const char *const ends[] = {"endcall", NULL};
    struct jnode *nd = node(p, JN_CALLBLOCK, at);
    int rc;
    if (!nd)
        return oom(p);
    if (is_op(cur(p), JO_LPAREN)) {
        if ((rc = parse_signature(p, nd)) != 0)
            return rc;
    } else if (!(nd->defaults = ja_alloc(p->a, sizeof *nd->defaults)) ||
               !(nd->targets = ja_alloc(p->a, sizeof *nd->targets))) {
        return oom(p);
    }
    if ((rc = parse_expression(p, true, &nd->a)) != 0)
        return rc;
    if (nd->a->kind != JN_CALL)
        return fail_at(p, at, SH_EMALFORMED, "expected a call after {%% call %%}");
    if ((rc = expect_block_end(p)) != 0 || (rc = parse_body(p, ends, &nd->b)) != 0)
        return rc;
    p->i++;
    *out = nd;
    return expect_block_end(p);
}

static int parse_with(struct parser *p, const struct jtoken *at, struct jnode **out)
{
    static const char *const ends[] = {"endwith", NULL};
    struct jnode *nd = node(p, JN_WITH, at);
    const char *names[32];
    struct nvec vals = {0};
    int rc;
    if (!nd)
        return oom(p);
    while (cur(p)->type != JT_BLOCK_END) {
        struct jnode *v;
        if (vals.n && (rc = expect_op(p, JO_COMMA, "','")) != 0)
            return rc;
        if (cur(p)->type != JT_NAME)
            return unexpected(p, "a variable name");
        if (vals.n == 32)
            return fail_at(p, cur(p), SH_ETOOBIG, "more than 32 with-assignments");
        names[vals.n] = cur(p)->s;
        p->i++;
        if ((rc = expect_op(p, JO_ASSIGN, "'='")) != 0 ||
            (rc = parse_expression(p, true, &v)) != 0 || (rc = vpush(p, &vals, v)) != 0)
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
    return expect_block_end(p);
}

static int parse_statement(struct parser *p, struct jnode **out)
{
    const struct jtoken *at = cur(p);
    const char *name = at->s;
    int rc;

    if (at->type != JT_NAME)
        return unexpected(p, "a statement name");
    p->i++;
    if ((rc = enter(p)) != 0)
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
        struct jnode *nd = node(p, JN_FILTERBLOCK, at);
        if (!nd)
            return oom(p);
        if ((rc = parse_filters_chain(p, nd)) != 0 || (rc = expect_block_end(p)) != 0 ||
            (rc = parse_body(p, ends, &nd->b)) != 0)
            return rc;
        p->i++;
        *out = nd;
        rc = expect_block_end(p);
    } else if (!strcmp(name, "generation")) {
        /* transformers' AssistantTracker: marks assistant text, renders as is */
        static const char *const ends[] = {"endgeneration", NULL};
        if ((rc = expect_block_end(p)) != 0 || (rc = parse_body(p, ends, out)) != 0)
            return rc;
        p->i++;
        rc = expect_block_end(p);
    } else if (!strcmp(name, "break") || !strcmp(name, "continue")) {
        if (!(*out = node(p, name[0] == 'b' ? JN_BREAK : JN_CONTINUE, at)))
            return oom(p);
        rc = expect_block_end(p);
    } else if (!strcmp(name, "extends") || !strcmp(name, "include") || !strcmp(name, "import") ||
               !strcmp(name, "from") || !strcmp(name, "block") || !strcmp(name, "autoescape") ||
               !strcmp(name, "do") || !strcmp(name, "trans") || !strcmp(name, "print")) {
        return fail_at(p, at, SH_EUNSUPPORTED, "the '%s' statement is not supported", name);
    } else {
        return fail_at(p, at, SH_EMALFORMED, "Encountered unknown tag '%.40s'.", name);
    }
    p->depth--;
    return rc;
}

static bool in_list(const char *const *list, const char *name)
{
    for (; list && *list; list++)
        if (!strcmp(*list, name))
            return true;
    return false;
}

/* Statements up to a block whose name is in `ends` (left as the current
 * token) or, with ends == NULL, to the end of the template. */
static int parse_body(struct parser *p, const char *const *ends, struct jnode **out)
{
    struct jnode *body = node(p, JN_BODY, cur(p));
    struct nvec items = {0};
    int rc;

    if (!body)
        return oom(p);
    for (;;) {
        const struct jtoken *t = cur(p);
        struct jnode *nd = NULL;
        if (t->type == JT_EOF) {
            if (ends) {
                char want[120] = "";
                size_t off = 0;
                for (const char *const *e = ends; *e; e++)
                    off += (size_t)snprintf(want + off, sizeof want - off, "%s'%s'",
                                            e == ends ? "" : " or ", *e);
                return fail_at(p, t, SH_EMALFORMED,
                               "Unexpected end of template. Jinja was looking for the "
                               "following tags: %s.",
                               want);
            }
            break;
        }
        if (t->type == JT_TEXT) {
            if (!(nd = node(p, JN_TEXT, t)))
                return oom(p);
            nd->val = jv_strn(t->s, t->n);
            p->i++;
        } else if (t->type == JT_VAR_BEGIN) {
            p->i++;
            if (!(nd = node(p, JN_OUTPUT, t)))
                return oom(p);
            if ((rc = parse_tuple(p, false, true, NULL, false, &nd->a)) != 0)
                return rc;
            if (cur(p)->type != JT_VAR_END)
                return unexpected(p, "end of print statement");
            p->i++;
        } else if (t->type == JT_BLOCK_BEGIN) {
            const struct jtoken *nt = peek(p, 1);
            if (nt->type == JT_NAME && in_list(ends, nt->s)) {
                p->i++;
                break;
            }
            p->i++;
            if ((rc = parse_statement(p, &nd)) != 0)
                return rc;
        } else {
            return unexpected(p, "template data or a tag");
        }
        if ((rc = vpush(p, &items, nd)) != 0)
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
