/* engine/jinja_parser.h: what the statement parser (jinja_parse.c) and the
 * expression parser (jinja_expr.c) share. Internal to those two files. */
#ifndef ENG_JINJA_PARSER_H
#define ENG_JINJA_PARSER_H

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

static inline const struct jtoken *jp_cur(const struct parser *p)
{
    return &p->t[p->i];
}

static inline const struct jtoken *jp_peek(const struct parser *p, size_t k)
{
    return p->i + k < p->n ? &p->t[p->i + k] : &p->t[p->n - 1];
}

static inline bool jp_is_op(const struct jtoken *t, uint8_t op)
{
    return t->type == JT_OP && t->op == op;
}

static inline bool jp_is_name(const struct jtoken *t, const char *name)
{
    return t->type == JT_NAME && strcmp(t->s, name) == 0;
}

/* Errors: set the message with line:col of t and return code. */
int jp_fail(struct parser *p, const struct jtoken *t, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "expected WANT, got <current token>" */
int jp_unexpected(struct parser *p, const char *want);
int jp_oom(struct parser *p);
/* A zeroed node at a token's position, or NULL (out of memory). */
struct jnode *jp_node(struct parser *p, uint8_t kind, const struct jtoken *at);
int jp_vpush(struct parser *p, struct nvec *v, struct jnode *nd);
int jp_expect_op(struct parser *p, uint8_t op, const char *desc);
int jp_expect_name(struct parser *p, const char *name);
int jp_expect_block_end(struct parser *p);
/* Counts one nesting level; fails past MAX_PARSE_DEPTH (caller decrements). */
int jp_enter(struct parser *p);

/* Expressions (jinja_expr.c), as jinja2's parse_tuple / parse_expression /
 * parse_filter (operand NULL for a filter block or {% set x | f %}). */
int jp_tuple(struct parser *p,
             bool simplified,
             bool condexpr,
             const char *extra,
             bool explicit_parens,
             struct jnode **out);
int jp_expression(struct parser *p, bool condexpr, struct jnode **out);
int jp_filter(struct parser *p, struct jnode *operand, struct jnode **out);

#endif
