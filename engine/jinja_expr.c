/* engine/jinja_expr.c: the expression half of the parser, with jinja2's
 * precedence: ternary < or < and < not < comparisons (== != < <= > >= in,
 * not in) < + - < ~ < * / // % < ** < unary - + < postfix (. [] () slices)
 * < filters (|) and tests (is); plus the error helpers both halves use. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/jinja_parser.h"

static const char *tok_desc(const struct jtoken *t, char *buf, size_t cap)
{
    static const char *const opnames[] = {
        "",   "+",  "-", "*",  "/", "//", "%",  "**",     "~", "[", "]", "(", ")", "{", "}",
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
        snprintf(buf, cap, "'%s'",
                 t->op < sizeof opnames / sizeof opnames[0] ? opnames[t->op] : "?");
        return buf;
    default:
        return "end of template";
    }
}

int jp_fail(struct parser *p, const struct jtoken *t, int code, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sh_err_set(p->err, code, "line %u col %u: %s", t->line, t->col, msg);
}

int jp_unexpected(struct parser *p, const char *want)
{
    char buf[64];
    return jp_fail(p, jp_cur(p), SH_EMALFORMED, "expected %s, got %s", want,
                   tok_desc(jp_cur(p), buf, sizeof buf));
}

int jp_oom(struct parser *p)
{
    return sh_err_set(p->err, SH_ENOMEM, "out of memory");
}

struct jnode *jp_node(struct parser *p, uint8_t kind, const struct jtoken *at)
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

int jp_vpush(struct parser *p, struct nvec *v, struct jnode *nd)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        struct jnode **nv = ja_alloc(p->a, cap * sizeof *nv);
        if (!nv)
            return jp_oom(p);
        if (v->n)
            memcpy(nv, v->v, v->n * sizeof *nv);
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = nd;
    return 0;
}

int jp_expect_op(struct parser *p, uint8_t op, const char *desc)
{
    if (!jp_is_op(jp_cur(p), op))
        return jp_unexpected(p, desc);
    p->i++;
    return 0;
}

int jp_expect_name(struct parser *p, const char *name)
{
    char want[48];
    if (!jp_is_name(jp_cur(p), name)) {
        snprintf(want, sizeof want, "'%s'", name);
        return jp_unexpected(p, want);
    }
    p->i++;
    return 0;
}

int jp_expect_block_end(struct parser *p)
{
    if (jp_cur(p)->type != JT_BLOCK_END)
        return jp_unexpected(p, "end of statement block");
    p->i++;
    return 0;
}

static int parse_unary(struct parser *p, bool with_filter, struct jnode **out);
static int parse_primary(struct parser *p, struct jnode **out);
static int parse_postfix(struct parser *p, struct jnode **nd);

int jp_enter(struct parser *p)
{
    if (++p->depth > MAX_PARSE_DEPTH)
        return jp_fail(p, jp_cur(p), SH_ETOOBIG, "template nested deeper than %d levels",
                       MAX_PARSE_DEPTH);
    return 0;
}

/* tuple end: }} %} ) or one of the extra names */
static bool tuple_end(const struct parser *p, const char *extra)
{
    const struct jtoken *t = jp_cur(p);
    return t->type == JT_VAR_END || t->type == JT_BLOCK_END || t->type == JT_EOF ||
           jp_is_op(t, JO_RPAREN) || (extra && jp_is_name(t, extra));
}

int jp_tuple(struct parser *p,
             bool simplified,
             bool condexpr,
             const char *extra,
             bool explicit_parens,
             struct jnode **out)
{
    const struct jtoken *start = jp_cur(p);
    struct nvec items = {0};
    bool is_tuple = false;
    int rc;

    for (;;) {
        struct jnode *e;
        if (items.n && (rc = jp_expect_op(p, JO_COMMA, "','")) != 0)
            return rc;
        if (tuple_end(p, extra))
            break;
        rc = simplified ? parse_primary(p, &e) : jp_expression(p, condexpr, &e);
        if (rc || (rc = jp_vpush(p, &items, e)) != 0)
            return rc;
        if (jp_is_op(jp_cur(p), JO_COMMA))
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
            return jp_unexpected(p, "an expression");
    }
    if (!(*out = jp_node(p, JN_TUPLE, start)))
        return jp_oom(p);
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

    if ((rc = jp_expect_op(p, JO_LPAREN, "'('")) != 0)
        return rc;
    while (!jp_is_op(jp_cur(p), JO_RPAREN)) {
        struct jnode *e;
        if (args.n + kwv.n && (rc = jp_expect_op(p, JO_COMMA, "','")) != 0)
            return rc;
        if (jp_is_op(jp_cur(p), JO_RPAREN))
            break;
        if (jp_is_op(jp_cur(p), JO_MUL) || jp_is_op(jp_cur(p), JO_POW))
            return jp_fail(p, jp_cur(p), SH_EUNSUPPORTED,
                           "*args / **kwargs in calls are not supported");
        if (jp_cur(p)->type == JT_NAME && jp_is_op(jp_peek(p, 1), JO_ASSIGN)) {
            const char *name = jp_cur(p)->s;
            p->i += 2;
            if ((rc = jp_expression(p, true, &e)) != 0)
                return rc;
            if (kwv.n == kwcap) {
                size_t cap = kwcap ? kwcap * 2 : 4;
                const char **nk = ja_alloc(p->a, cap * sizeof *nk);
                if (!nk)
                    return jp_oom(p);
                if (kwv.n)
                    memcpy(nk, kwn, kwv.n * sizeof *nk);
                kwn = nk;
                kwcap = cap;
            }
            kwn[kwv.n] = name;
            if ((rc = jp_vpush(p, &kwv, e)) != 0)
                return rc;
            continue;
        }
        if (kwv.n)
            return jp_fail(p, jp_cur(p), SH_EMALFORMED,
                           "positional argument after keyword argument");
        if ((rc = jp_expression(p, true, &e)) != 0 || (rc = jp_vpush(p, &args, e)) != 0)
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
    if (jp_cur(p)->type != JT_NAME)
        return jp_unexpected(p, "a name");
    name = jp_cur(p)->s;
    p->i++;
    while (jp_is_op(jp_cur(p), JO_DOT) && jp_peek(p, 1)->type == JT_NAME) {
        size_t n = strlen(name), m = strlen(jp_peek(p, 1)->s);
        char *joined = ja_alloc(p->a, n + m + 2);
        if (!joined)
            return jp_oom(p);
        memcpy(joined, name, n);
        joined[n] = '.';
        memcpy(joined + n + 1, jp_peek(p, 1)->s, m + 1);
        name = joined;
        p->i += 2;
    }
    *out = name;
    return 0;
}

/* '|' name [(args)] with operand (NULL for block filters) */
int jp_filter(struct parser *p, struct jnode *operand, struct jnode **out)
{
    const struct jtoken *at = jp_cur(p);
    struct jnode *f = jp_node(p, JN_FILTER, at);
    int rc;
    if (!f)
        return jp_oom(p);
    f->a = operand;
    if ((rc = parse_dotted_name(p, &f->name)) != 0)
        return rc;
    if (jp_is_op(jp_cur(p), JO_LPAREN) && (rc = parse_call_args(p, f)) != 0)
        return rc;
    *out = f;
    return 0;
}

static int parse_test(struct parser *p, struct jnode *operand, struct jnode **out)
{
    const struct jtoken *at = jp_cur(p), *t;
    struct jnode *nd = jp_node(p, JN_TEST, at);
    int rc;
    if (!nd)
        return jp_oom(p);
    nd->a = operand;
    if (jp_is_name(jp_cur(p), "not")) {
        nd->flags |= JN_F_NEGATED;
        p->i++;
    }
    if ((rc = parse_dotted_name(p, &nd->name)) != 0)
        return rc;
    t = jp_cur(p);
    if (jp_is_op(t, JO_LPAREN)) {
        if ((rc = parse_call_args(p, nd)) != 0)
            return rc;
    } else if ((t->type == JT_NAME || t->type == JT_STRING || t->type == JT_INT ||
                t->type == JT_FLOAT || jp_is_op(t, JO_LBRACKET) || jp_is_op(t, JO_LBRACE)) &&
               !jp_is_name(t, "else") && !jp_is_name(t, "or") && !jp_is_name(t, "and")) {
        struct jnode *arg;
        if (jp_is_name(t, "is"))
            return jp_fail(p, t, SH_EMALFORMED, "You cannot chain multiple tests with is");
        if ((rc = parse_primary(p, &arg)) != 0 || (rc = parse_postfix(p, &arg)) != 0)
            return rc;
        nd->items = ja_alloc(p->a, sizeof *nd->items);
        if (!nd->items)
            return jp_oom(p);
        nd->items[0] = arg;
        nd->n = 1;
    }
    *out = nd;
    return 0;
}

static int parse_subscript(struct parser *p, struct jnode **nd)
{
    const struct jtoken *at = jp_cur(p);
    struct jnode *parts[3] = {NULL, NULL, NULL}, *r;
    int nparts = 0, rc;
    bool slice = false;

    if (jp_is_op(at, JO_DOT)) {
        const struct jtoken *t = jp_peek(p, 1);
        p->i += 2;
        if (t->type == JT_NAME) {
            if (!(r = jp_node(p, JN_GETATTR, at)))
                return jp_oom(p);
            r->a = *nd;
            r->name = t->s;
        } else if (t->type == JT_INT) {
            if (!(r = jp_node(p, JN_GETITEM, at)) || !(r->b = jp_node(p, JN_CONST, t)))
                return jp_oom(p);
            r->a = *nd;
            r->b->val = jv_int(t->i);
        } else {
            p->i--;
            return jp_unexpected(p, "a name or number after '.'");
        }
        *nd = r;
        return 0;
    }
    p->i++; /* '[' */
    for (;;) {
        if (jp_is_op(jp_cur(p), JO_COLON)) {
            slice = true;
            p->i++;
            if (++nparts > 2)
                return jp_fail(p, jp_cur(p), SH_EMALFORMED, "too many ':' in a slice");
            continue;
        }
        if (jp_is_op(jp_cur(p), JO_RBRACKET))
            break;
        if (parts[nparts])
            return jp_unexpected(p, "']'");
        if ((rc = jp_expression(p, true, &parts[nparts])) != 0)
            return rc;
        if (!slice && jp_is_op(jp_cur(p), JO_COMMA))
            return jp_fail(p, jp_cur(p), SH_EUNSUPPORTED, "tuple subscripts are not supported");
    }
    p->i++;
    if (!slice && !parts[0])
        return jp_fail(p, at, SH_EMALFORMED, "expected an expression in '[]'");
    if (!(r = jp_node(p, slice ? JN_SLICE : JN_GETITEM, at)))
        return jp_oom(p);
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
        const struct jtoken *t = jp_cur(p);
        if (jp_is_op(t, JO_DOT) || jp_is_op(t, JO_LBRACKET)) {
            if ((rc = parse_subscript(p, nd)) != 0)
                return rc;
        } else if (jp_is_op(t, JO_LPAREN)) {
            struct jnode *c = jp_node(p, JN_CALL, t);
            if (!c)
                return jp_oom(p);
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
        const struct jtoken *t = jp_cur(p);
        if (jp_is_op(t, JO_PIPE)) {
            p->i++;
            rc = jp_filter(p, *nd, nd);
        } else if (jp_is_name(t, "is")) {
            p->i++;
            rc = parse_test(p, *nd, nd);
        } else if (jp_is_op(t, JO_LPAREN)) {
            struct jnode *c = jp_node(p, JN_CALL, t);
            if (!c)
                return jp_oom(p);
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
    const struct jtoken *at = jp_cur(p);
    uint8_t close = dict ? JO_RBRACE : JO_RBRACKET;
    struct nvec items = {0};
    int rc;

    p->i++;
    while (!jp_is_op(jp_cur(p), close)) {
        struct jnode *k, *v;
        if (items.n && (rc = jp_expect_op(p, JO_COMMA, "','")) != 0)
            return rc;
        if (jp_is_op(jp_cur(p), close))
            break;
        if ((rc = jp_expression(p, true, &k)) != 0 || (rc = jp_vpush(p, &items, k)) != 0)
            return rc;
        if (dict) {
            if ((rc = jp_expect_op(p, JO_COLON, "':'")) != 0 ||
                (rc = jp_expression(p, true, &v)) != 0 || (rc = jp_vpush(p, &items, v)) != 0)
                return rc;
        }
    }
    p->i++;
    if (!(*out = jp_node(p, dict ? JN_DICT : JN_LIST, at)))
        return jp_oom(p);
    (*out)->items = items.v;
    (*out)->n = items.n;
    return 0;
}

static int parse_primary(struct parser *p, struct jnode **out)
{
    const struct jtoken *t = jp_cur(p);
    struct jnode *nd;
    int rc;

    if ((rc = jp_enter(p)) != 0)
        return rc;
    switch (t->type) {
    case JT_NAME:
        if (!(nd = jp_node(p, JN_CONST, t)))
            return jp_oom(p);
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
        if (!(nd = jp_node(p, JN_CONST, t)) || !(s = ja_alloc(p->a, total + 1)))
            return jp_oom(p);
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
        if (!(nd = jp_node(p, JN_CONST, t)))
            return jp_oom(p);
        nd->val = t->type == JT_INT ? jv_int(t->i) : jv_float(t->f);
        p->i++;
        break;
    case JT_OP:
        if (t->op == JO_LPAREN) {
            p->i++;
            if ((rc = jp_tuple(p, false, true, NULL, true, &nd)) != 0 ||
                (rc = jp_expect_op(p, JO_RPAREN, "')'")) != 0)
                return rc;
            break;
        }
        if (t->op == JO_LBRACKET || t->op == JO_LBRACE) {
            if ((rc = parse_list_or_dict(p, t->op == JO_LBRACE, &nd)) != 0)
                return rc;
            break;
        }
        return jp_unexpected(p, "an expression");
    default:
        return jp_unexpected(p, "an expression");
    }
    p->depth--;
    *out = nd;
    return 0;
}

static int parse_unary(struct parser *p, bool with_filter, struct jnode **out)
{
    const struct jtoken *t = jp_cur(p);
    struct jnode *nd;
    int rc;

    if ((rc = jp_enter(p)) != 0)
        return rc;
    if (jp_is_op(t, JO_SUB) || jp_is_op(t, JO_ADD)) {
        p->i++;
        if (!(nd = jp_node(p, jp_is_op(t, JO_SUB) ? JN_NEG : JN_POS, t)))
            return jp_oom(p);
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

static int binop(struct parser *p,
                 const struct jtoken *at,
                 uint8_t kind,
                 uint8_t op,
                 struct jnode *a,
                 struct jnode *b,
                 struct jnode **out)
{
    struct jnode *nd = jp_node(p, kind, at);
    if (!nd)
        return jp_oom(p);
    nd->op = op;
    nd->a = a;
    nd->b = b;
    *out = nd;
    return 0;
}

static int parse_pow(struct parser *p, struct jnode **out)
{
    int rc = parse_unary(p, true, out);
    while (!rc && jp_is_op(jp_cur(p), JO_POW)) {
        const struct jtoken *at = jp_cur(p);
        struct jnode *r = NULL;
        p->i++;
        if ((rc = parse_unary(p, true, &r)) == 0)
            rc = binop(p, at, JN_BINOP, JO_POW, *out, r, out);
    }
    return rc;
}

static int parse_math2(struct parser *p, struct jnode **out)
{
    int rc = parse_pow(p, out);
    while (!rc && jp_cur(p)->type == JT_OP &&
           (jp_cur(p)->op == JO_MUL || jp_cur(p)->op == JO_DIV || jp_cur(p)->op == JO_FLOORDIV ||
            jp_cur(p)->op == JO_MOD)) {
        const struct jtoken *at = jp_cur(p);
        struct jnode *r = NULL;
        p->i++;
        if ((rc = parse_pow(p, &r)) == 0)
            rc = binop(p, at, JN_BINOP, at->op, *out, r, out);
    }
    return rc;
}

static int parse_concat(struct parser *p, struct jnode **out)
{
    const struct jtoken *at = jp_cur(p);
    struct nvec args = {0};
    struct jnode *e;
    int rc = parse_math2(p, &e);
    if (rc)
        return rc;
    if (!jp_is_op(jp_cur(p), JO_TILDE)) {
        *out = e;
        return 0;
    }
    if ((rc = jp_vpush(p, &args, e)) != 0)
        return rc;
    while (jp_is_op(jp_cur(p), JO_TILDE)) {
        p->i++;
        if ((rc = parse_math2(p, &e)) != 0 || (rc = jp_vpush(p, &args, e)) != 0)
            return rc;
    }
    if (!(*out = jp_node(p, JN_CONCAT, at)))
        return jp_oom(p);
    (*out)->items = args.v;
    (*out)->n = args.n;
    return 0;
}

static int parse_math1(struct parser *p, struct jnode **out)
{
    int rc = parse_concat(p, out);
    while (!rc && (jp_is_op(jp_cur(p), JO_ADD) || jp_is_op(jp_cur(p), JO_SUB))) {
        const struct jtoken *at = jp_cur(p);
        struct jnode *r = NULL;
        p->i++;
        if ((rc = parse_concat(p, &r)) == 0)
            rc = binop(p, at, JN_BINOP, at->op, *out, r, out);
    }
    return rc;
}

static int parse_compare(struct parser *p, struct jnode **out)
{
    const struct jtoken *at = jp_cur(p);
    struct nvec operands = {0};
    uint8_t ops[64];
    size_t nops = 0;
    struct jnode *e;
    int rc = parse_math1(p, &e);

    if (rc || (rc = jp_vpush(p, &operands, e)) != 0)
        return rc;
    for (;;) {
        const struct jtoken *t = jp_cur(p);
        uint8_t op;
        if (t->type == JT_OP && (t->op == JO_EQ || t->op == JO_NE || t->op == JO_LT ||
                                 t->op == JO_LE || t->op == JO_GT || t->op == JO_GE)) {
            op = t->op;
            p->i++;
        } else if (jp_is_name(t, "in")) {
            op = JO_IN;
            p->i++;
        } else if (jp_is_name(t, "not") && jp_is_name(jp_peek(p, 1), "in")) {
            op = JO_NOTIN;
            p->i += 2;
        } else {
            break;
        }
        if (nops == sizeof ops)
            return jp_fail(p, t, SH_ETOOBIG, "comparison chain longer than 64");
        ops[nops++] = op;
        if ((rc = parse_math1(p, &e)) != 0 || (rc = jp_vpush(p, &operands, e)) != 0)
            return rc;
    }
    if (!nops) {
        *out = operands.v[0];
        return 0;
    }
    if (!(*out = jp_node(p, JN_COMPARE, at)) || !((*out)->ops = ja_alloc(p->a, nops)))
        return jp_oom(p);
    memcpy((*out)->ops, ops, nops);
    (*out)->items = operands.v;
    (*out)->n = operands.n;
    return 0;
}

static int parse_not(struct parser *p, struct jnode **out)
{
    const struct jtoken *t = jp_cur(p);
    int rc;
    if (jp_is_name(t, "not")) {
        struct jnode *nd = jp_node(p, JN_NOT, t);
        if (!nd)
            return jp_oom(p);
        p->i++;
        if ((rc = jp_enter(p)) != 0 || (rc = parse_not(p, &nd->a)) != 0)
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
    while (!rc && jp_is_name(jp_cur(p), "and")) {
        const struct jtoken *at = jp_cur(p);
        struct jnode *r = NULL;
        p->i++;
        if ((rc = parse_not(p, &r)) == 0)
            rc = binop(p, at, JN_AND, 0, *out, r, out);
    }
    return rc;
}

static int parse_or(struct parser *p, struct jnode **out)
{
    int rc = parse_and(p, out);
    while (!rc && jp_is_name(jp_cur(p), "or")) {
        const struct jtoken *at = jp_cur(p);
        struct jnode *r = NULL;
        p->i++;
        if ((rc = parse_and(p, &r)) == 0)
            rc = binop(p, at, JN_OR, 0, *out, r, out);
    }
    return rc;
}

int jp_expression(struct parser *p, bool condexpr, struct jnode **out)
{
    int rc;
    if ((rc = jp_enter(p)) != 0 || (rc = parse_or(p, out)) != 0)
        return rc;
    while (condexpr && jp_is_name(jp_cur(p), "if")) {
        const struct jtoken *at = jp_cur(p);
        struct jnode *nd = jp_node(p, JN_COND, at);
        if (!nd)
            return jp_oom(p);
        p->i++;
        nd->a = *out;
        if ((rc = parse_or(p, &nd->b)) != 0)
            return rc;
        if (jp_is_name(jp_cur(p), "else")) {
            p->i++;
            if ((rc = jp_expression(p, true, &nd->c)) != 0)
                return rc;
        }
        *out = nd;
    }
    p->depth--;
    return 0;
}
