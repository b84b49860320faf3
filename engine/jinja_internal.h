/* engine/jinja_internal.h: what the Jinja engine's files share (arena, values,
 * tokens, AST, evaluator state). Internal to engine/jinja_*.c and their tests.
 *
 * Memory: a compiled template owns one arena (source copy, tokens, AST,
 * constants); every render owns another (values, strings, scopes) and frees
 * it whole at the end, so no value is ever freed alone.
 */
#ifndef ENG_JINJA_INTERNAL_H
#define ENG_JINJA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/err.h"
#include "common/util.h"
#include "engine/jinja.h"

/* ---- arena: chunked bump allocator with a hard cap on the bytes it holds. */
struct ja_chunk;
struct jarena {
    struct ja_chunk *head;
    size_t total; /* bytes allocated from malloc, chunk headers included */
    size_t max;   /* allocation fails past this (SH_ETOOBIG for the caller) */
};

void ja_init(struct jarena *a, size_t max);
void ja_release(struct jarena *a);
/* n bytes, aligned for any value; NULL when out of memory or past max. */
void *ja_alloc(struct jarena *a, size_t n);
/* Copies n bytes and NUL-terminates; NULL as ja_alloc. */
char *ja_strndup(struct jarena *a, const char *s, size_t n);

/* ---- values ------------------------------------------------------------ */
enum jv_type {
    JV_UNDEF, /* Jinja's default Undefined; u.undef says what was missing */
    JV_NONE,
    JV_BOOL,
    JV_INT, /* Python int, kept in int64 (overflow is an error) */
    JV_FLOAT,
    JV_STR,  /* UTF-8 bytes, not NUL-terminated; len in bytes */
    JV_LIST, /* list or tuple (flag JV_F_TUPLE) */
    JV_DICT, /* insertion-ordered */
    JV_NS,   /* namespace(): a dict whose attributes may be set */
    JV_FUNC, /* builtin, macro, caller, bound method */
    JV_LOOP, /* the `loop` object of a for */
};

#define JV_F_TUPLE 1u

struct jv_list;
struct jv_dict;
struct jfunc;
struct jloop;

/* Why a value is undefined, for the error when it is used. */
struct jundef {
    const char *name;  /* missing variable or attribute/key, NUL-terminated */
    const char *owner; /* NULL for a variable, else the owner's type name */
};

struct jv {
    uint8_t type;
    uint8_t flags;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        struct jv_list *l;
        struct jv_dict *d;
        struct jfunc *fn;
        struct jloop *loop;
        const struct jundef *undef;
    } u;
};

struct jv_list {
    size_t n;
    size_t cap;
    struct jv *items;
};

struct jv_dict {
    size_t n;
    size_t cap;
    struct jv *keys;
    struct jv *vals;
};

/* ---- tokens ------------------------------------------------------------ */
enum jtok_type {
    JT_TEXT,
    JT_VAR_BEGIN,
    JT_VAR_END,
    JT_BLOCK_BEGIN,
    JT_BLOCK_END,
    JT_NAME,
    JT_STRING,
    JT_INT,
    JT_FLOAT,
    JT_OP,
    JT_EOF,
};

enum jop {
    JO_NONE,
    JO_ADD,
    JO_SUB,
    JO_MUL,
    JO_DIV,
    JO_FLOORDIV,
    JO_MOD,
    JO_POW,
    JO_TILDE,
    JO_LBRACKET,
    JO_RBRACKET,
    JO_LPAREN,
    JO_RPAREN,
    JO_LBRACE,
    JO_RBRACE,
    JO_EQ,
    JO_NE,
    JO_GT,
    JO_GE,
    JO_LT,
    JO_LE,
    JO_IN,    /* comparisons only, not lexed */
    JO_NOTIN, /* comparisons only, not lexed */
    JO_ASSIGN,
    JO_DOT,
    JO_COLON,
    JO_PIPE,
    JO_COMMA,
    JO_SEMICOLON,
};

struct jtoken {
    uint8_t type; /* enum jtok_type */
    uint8_t op;   /* enum jop for JT_OP */
    uint32_t line;
    uint32_t col;
    const char *s; /* TEXT/NAME/STRING bytes (arena), not NUL-terminated for TEXT */
    size_t n;
    int64_t i;
    double f;
};

struct jtokens {
    struct jtoken *t;
    size_t n;
};

/* Tokenizes a template (newlines already normalized by the caller). Errors
 * carry line:col. */
int jlex(struct jarena *a, const char *src, size_t len, struct jtokens *out, struct sh_err *err);

/* ---- AST --------------------------------------------------------------- */
enum jn_kind {
    /* statements */
    JN_BODY,        /* items[n]: statements */
    JN_TEXT,        /* val: string */
    JN_OUTPUT,      /* a: expression */
    JN_IF,          /* a: cond, b: body, c: else (BODY or IF) or NULL */
    JN_FOR,         /* targets[n]: names, a: iter, b: body, c: else, d: filter; flag recursive */
    JN_SET,         /* targets[n] names (or a: GETATTR of NAME for ns.x), b: value */
    JN_SETBLOCK,    /* targets[1], b: body, filters in items[n] (FILTER with a == NULL) */
    JN_MACRO,       /* name, params[n] (names) with defaults[n] (NULL = none), b: body */
    JN_CALLBLOCK,   /* a: CALL expression, params/defaults: caller's, b: body */
    JN_FILTERBLOCK, /* items[n]: FILTER nodes (a == NULL), b: body */
    JN_BREAK,
    JN_CONTINUE,
    JN_WITH, /* targets[n] names, items[n] values, b: body */
    /* expressions */
    JN_CONST,   /* val */
    JN_NAME,    /* name */
    JN_GETATTR, /* a: object, name */
    JN_GETITEM, /* a: object, b: key */
    JN_SLICE,   /* a: object, b: start, c: stop, d: step (each may be NULL) */
    JN_CALL,    /* a: callee, items[n]: args, kwnames/kwvals[nkw] */
    JN_FILTER,  /* a: operand, name, items/kw: extra args */
    JN_TEST,    /* a: operand, name, items: args; flag negated */
    JN_NOT,     /* a */
    JN_NEG,     /* a */
    JN_POS,     /* a */
    JN_BINOP,   /* op, a, b: + - * / // % ** */
    JN_AND,     /* a, b */
    JN_OR,      /* a, b */
    JN_COMPARE, /* items[n] operands, ops[n-1] */
    JN_CONCAT,  /* items[n] joined with ~ */
    JN_COND,    /* a: value, b: condition, c: else value (NULL: undefined) */
    JN_LIST,    /* items[n] */
    JN_TUPLE,   /* items[n] */
    JN_DICT,    /* items[2k] key, items[2k+1] value */
};

#define JN_F_RECURSIVE 1u
#define JN_F_NEGATED   2u

struct jnode {
    uint8_t kind;
    uint8_t op;
    uint8_t flags;
    uint32_t line;
    uint32_t col;
    struct jnode *a, *b, *c, *d;
    struct jnode **items;
    size_t n;
    const char **kwnames; /* call keyword arguments */
    struct jnode **kwvals;
    size_t nkw;
    const char **targets; /* for/set/with names, macro/caller params */
    struct jnode **defaults;
    size_t ntargets;
    uint8_t *ops; /* JN_COMPARE */
    const char *name;
    struct jv val;
};

int jparse(struct jarena *a, const struct jtokens *toks, struct jnode **root, struct sh_err *err);

/* ---- evaluator state --------------------------------------------------- */
struct jscope {
    struct jscope *parent;
    struct jv_dict *vars;
};

enum jfunc_kind {
    JF_BUILTIN, /* global function: index into builtin table */
    JF_MACRO,
    JF_CALLER,
    JF_METHOD, /* bound method: self + name */
};

struct jfunc {
    uint8_t kind;
    int builtin;              /* JF_BUILTIN */
    const struct jnode *node; /* JF_MACRO: MACRO node; JF_CALLER: CALLBLOCK node */
    struct jscope *closure;   /* JF_MACRO/JF_CALLER: scope it was defined in */
    struct jv caller;         /* JF_MACRO bound in a call block: its caller */
    struct jv self;           /* JF_METHOD */
    const char *name;         /* macro or method name */
};

struct jloop {
    struct jv_list *items;
    size_t index0;
    size_t depth0;
    const struct jnode *node; /* for recursive loops */
    struct jscope *scope;     /* scope the recursive loop re-runs in */
};

struct jout {
    char *p;
    size_t n;
    size_t cap;
};

struct jrender {
    struct jarena *ar;
    struct jout *out; /* where output goes now (captures swap it) */
    size_t max_output;
    size_t max_depth;
    uint64_t max_steps;
    size_t depth;
    uint64_t steps;
    const struct tm *now;
    struct jscope *globals;
    struct sh_err *err;
    int code; /* first error's code */
};

/* Sets the render error at a node (line:col prefix) and returns -1. */
int jr_fail(struct jrender *r, const struct jnode *at, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int jr_oom(struct jrender *r, const struct jnode *at);

/* ---- value helpers (jinja_value.c) ------------------------------------- */
static inline struct jv jv_none(void)
{
    struct jv v = {.type = JV_NONE};
    return v;
}
static inline struct jv jv_bool(bool b)
{
    struct jv v = {.type = JV_BOOL, .u.b = b};
    return v;
}
static inline struct jv jv_int(int64_t i)
{
    struct jv v = {.type = JV_INT, .u.i = i};
    return v;
}
static inline struct jv jv_float(double f)
{
    struct jv v = {.type = JV_FLOAT, .u.f = f};
    return v;
}
static inline struct jv jv_strn(const char *p, size_t n)
{
    struct jv v = {.type = JV_STR, .u.s = {p, n}};
    return v;
}
struct jv jv_undef(struct jarena *a, const char *name, size_t name_len, const char *owner);

struct jv_list *jv_list_new(struct jarena *a, size_t cap);
int jv_list_push(struct jarena *a, struct jv_list *l, struct jv v);
struct jv_dict *jv_dict_new(struct jarena *a, size_t cap);
/* Sets key (replacing an equal key's value in place, keeping its position). */
int jv_dict_set(struct jarena *a, struct jv_dict *d, struct jv key, struct jv val);
/* Sets every keyword argument kwn[k]=kwv[k] in d (names borrowed). */
int jv_dict_set_kwargs(
    struct jarena *a, struct jv_dict *d, const char **kwn, const struct jv *kwv, size_t nkw);
/* Value for a string key, or NULL. */
struct jv *jv_dict_get(const struct jv_dict *d, const char *key, size_t n);
struct jv *jv_dict_getv(const struct jv_dict *d, struct jv key);
struct jv jv_list_val(struct jv_list *l, bool tuple);
/* A dict value over d; ns: a namespace() object (JV_NS) instead. */
struct jv jv_dict_val(struct jv_dict *d, bool ns);

bool jv_truthy(const struct jv *v);
bool jv_equal(const struct jv *a, const struct jv *b);
/* Python ordering for <, <=...: ints/floats/bools, strings, lists. *cmp gets
 * -1/0/1. Returns false when the types cannot be ordered. */
bool jv_order(const struct jv *a, const struct jv *b, int *cmp);
const char *jv_type_name(const struct jv *v);
bool jv_is_number(const struct jv *v); /* bool counts, as in Python */
double jv_as_double(const struct jv *v);
int64_t jv_as_i64(const struct jv *v); /* v an int or a bool */

/* str(v) and repr(v) appended to out. */
int jv_str(struct jarena *a, struct jout *o, size_t max, const struct jv *v);
int jv_repr(struct jarena *a, struct jout *o, size_t max, const struct jv *v);
/* str(v) as a string value (no copy for strings). NULL p on OOM. */
int jv_to_str(struct jarena *a, size_t max, const struct jv *v, struct jv *out);
/* Python float repr (shortest round trip) into buf (>= 32 bytes). */
void jv_fmt_float(double f, char *buf, size_t cap);

/* json.dumps(v, ensure_ascii, indent, separators, sort_keys). indent < 0:
 * none; indent_str overrides when non-NULL. Returns 0, or an SH_E* code with
 * msg naming a value JSON cannot hold. */
struct jjson_opts {
    bool ensure_ascii;
    bool sort_keys;
    int indent; /* -1: no newlines */
    const char *indent_str;
    size_t indent_len;
    const char *item_sep;
    size_t item_sep_len;
    const char *key_sep;
    size_t key_sep_len;
};
int jv_tojson(struct jarena *a,
              struct jout *o,
              size_t max,
              const struct jv *v,
              const struct jjson_opts *opts,
              size_t depth,
              struct sh_err *err);

/* Growable output; appends fail with SH_ETOOBIG past max or SH_ENOMEM. */
int jout_put(struct jout *o, size_t max, const char *p, size_t n);
void jout_free(struct jout *o);

/* ---- UTF-8 and Python string helpers (jinja_value.c) -------------------- */
size_t ju_cplen(const char *p, size_t n); /* code points, invalid bytes count 1 each */
/* Byte offset of code point index i (clamped to n). */
size_t ju_cpoff(const char *p, size_t n, size_t i);
/* Decodes one code point at p (n > 0); *len gets its byte length. */
uint32_t ju_decode(const char *p, size_t n, size_t *len);
size_t ju_encode(uint32_t cp, char *out);
bool ju_isspace(uint32_t cp); /* Python str.isspace */
uint32_t ju_upper(uint32_t cp);
uint32_t ju_lower(uint32_t cp);
bool ju_isalpha(uint32_t cp); /* cased letter as far as ju_upper/lower know */
/* name is one of the NULL-terminated list (a NULL list is empty). */
bool ju_in_list(const char *const *list, const char *name);

/* ---- filters, tests, methods (jinja_filters.c) ------------------------- */
int jf_filter(struct jrender *r,
              const struct jnode *at,
              const char *name,
              struct jv *self,
              struct jv *args,
              size_t nargs,
              const char **kwn,
              struct jv *kwv,
              size_t nkw,
              struct jv *out);
/* Returns 1/0 for the test result, -1 on error. */
int jf_test(struct jrender *r,
            const struct jnode *at,
            const char *name,
            struct jv *self,
            struct jv *args,
            size_t nargs);
/* Method call self.name(args). */
int jf_method(struct jrender *r,
              const struct jnode *at,
              struct jv *self,
              const char *name,
              struct jv *args,
              size_t nargs,
              const char **kwn,
              struct jv *kwv,
              size_t nkw,
              struct jv *out);
/* True when `name` is a method of self's type (attribute lookup finds it first). */
bool jf_has_method(const struct jv *self, const char *name);

/* String primitives shared by methods and filters (jinja_methods.c). */
enum js_case {
    JS_UPPER,
    JS_LOWER,
    JS_TITLE,      /* str.title() */
    JS_CAPITALIZE, /* str.capitalize() */
    JS_WORDTITLE,  /* Jinja's |title: words split at [-\s({[<]+ */
};
int js_case(struct jrender *r,
            const struct jnode *at,
            const struct jv *s,
            enum js_case mode,
            struct jv *out);
/* str.strip/lstrip/rstrip; chars NULL strips whitespace. No allocation. */
void js_strip(const struct jv *s, const struct jv *chars, bool left, bool right, struct jv *out);
int js_replace(struct jrender *r,
               const struct jnode *at,
               const struct jv *s,
               const struct jv *old,
               const struct jv *new,
               int64_t count,
               struct jv *out);
int js_splitlines(struct jrender *r,
                  const struct jnode *at,
                  const struct jv *s,
                  struct jv_list **out);
/* Append to a scratch buffer (freed on failure) / turn it into a value. */
int js_put(struct jrender *r, const struct jnode *at, struct jout *o, const char *p, size_t n);
int js_new(struct jrender *r, const struct jnode *at, struct jout *o, struct jv *out);

/* Iteration: materializes v as a list (dict: keys, string: characters,
 * undefined: empty). -1 with error set for non-iterables. */
int jr_iterate(struct jrender *r, const struct jnode *at, const struct jv *v, struct jv_list **out);
/* Calls a callable value with evaluated arguments (macros, builtins, methods). */
int jr_call(struct jrender *r,
            const struct jnode *at,
            struct jv *fn,
            struct jv *args,
            size_t nargs,
            const char **kwn,
            struct jv *kwv,
            size_t nkw,
            struct jv *out);
/* Attribute / item access with Jinja's sandboxed getattr/getitem rules. */
int jr_getattr(struct jrender *r,
               const struct jnode *at,
               const struct jv *obj,
               const char *name,
               struct jv *out);
int jr_getitem(struct jrender *r,
               const struct jnode *at,
               const struct jv *obj,
               const struct jv *key,
               struct jv *out);
/* Fails with the UndefinedError message when v is undefined. */
int jr_need_defined(struct jrender *r, const struct jnode *at, const struct jv *v);
/* A new string value of n bytes (NUL added) in the render arena. */
int jr_str(struct jrender *r, const struct jnode *at, const char *p, size_t n, struct jv *out);
/* Python operators (jinja_ops.c): + - * / // % ** on two values. */
int jr_binop(struct jrender *r,
             const struct jnode *at,
             uint8_t op,
             const struct jv *a,
             const struct jv *b,
             struct jv *out);
/* `needle in hay`: 1/0, -1 on error. */
int jr_contains(struct jrender *r,
                const struct jnode *at,
                const struct jv *needle,
                const struct jv *hay);
/* One link of a comparison chain (== != < <= > >= in, not in): 1/0, -1. */
int jr_compare(
    struct jrender *r, const struct jnode *at, uint8_t op, const struct jv *a, const struct jv *b);
/* Python's printf-style `fmt % args` (args a tuple or one value). */
int jpy_format(struct jrender *r,
               const struct jnode *at,
               const struct jv *fmt,
               const struct jv *args,
               struct jv *out);
/* Evaluator core (jinja_eval.c). jr_exec returns 0, JX_BREAK/JX_CONTINUE,
 * or -1 with the render error set; the others 0 or -1. */
#define JX_BREAK    1
#define JX_CONTINUE 2
int jr_eval(struct jrender *r, struct jscope *sc, const struct jnode *nd, struct jv *out);
int jr_exec(struct jrender *r, struct jscope *sc, const struct jnode *nd);
/* Counts one level of nesting; fails past max_depth (caller decrements). */
int jr_enter(struct jrender *r, const struct jnode *at);
struct jscope *jr_scope_new(struct jrender *r, struct jscope *parent);
int jr_assign(
    struct jrender *r, const struct jnode *at, struct jscope *sc, const char *name, struct jv v);
/* Runs a for node over iter at loop depth depth0 (loop() recursion). */
int jr_run_for(struct jrender *r,
               struct jscope *sc,
               const struct jnode *nd,
               const struct jv *iter,
               size_t depth0);
/* Calls a macro (or a call block's caller) with arguments; caller is the
 * `caller` to bind inside, or NULL (jinja_call.c). */
int jr_call_macro(struct jrender *r,
                  const struct jnode *at,
                  const struct jfunc *fn,
                  struct jv *args,
                  size_t nargs,
                  const char **kwn,
                  struct jv *kwv,
                  size_t nkw,
                  const struct jv *caller,
                  struct jv *out);
/* str.format with {} {0} {name} and !r/!s (jinja_format.c). */
int jpy_str_format(struct jrender *r,
                   const struct jnode *at,
                   const struct jv *fmt,
                   struct jv *args,
                   size_t nargs,
                   const char **kwn,
                   struct jv *kwv,
                   size_t nkw,
                   struct jv *out);
/* Renders a body into a string (used by macros, block set, caller). */
int jr_capture(struct jrender *r, struct jscope *scope, const struct jnode *body, struct jv *out);
/* Counts one step (loop iteration, call); fails past max_steps. */
int jr_step(struct jrender *r, const struct jnode *at, uint64_t n);

#endif
