/* common/err.h: error codes and messages shared by every module.
 *
 * Functions return int: 0 on success, else a positive SH_E* code. The human
 * readable message travels in an optional struct sh_err out-parameter, filled
 * at the origin with specifics and wrapped with context on the way up
 * ("load kjv: shard 2: tensor x: offsets past end of file"). Every function
 * here accepts a NULL err and then only returns the code.
 */
#ifndef SH_ERR_H
#define SH_ERR_H

#include <stddef.h>

/* One X-macro so codes and their names cannot drift. Values are stable:
 * append only (they may reach logs and the wire). */
#define SH_ERROR_LIST(X)                                                                           \
    X(SH_OK, 0, "ok")                                                                              \
    X(SH_ENOMEM, 1, "out of memory")                                                               \
    X(SH_EINVAL, 2, "invalid argument")                                                            \
    X(SH_EMALFORMED, 3, "malformed input")                                                         \
    X(SH_EIO, 4, "i/o error")                                                                      \
    X(SH_ENOTFOUND, 5, "not found")                                                                \
    X(SH_EBUSY, 6, "busy")                                                                         \
    X(SH_ETOOBIG, 7, "too big")                                                                    \
    X(SH_ENOTLEADER, 8, "not the leader")                                                          \
    X(SH_EUNAUTH, 9, "unauthorized")                                                               \
    X(SH_EUNSUPPORTED, 10, "unsupported")                                                          \
    X(SH_ERANGE, 11, "out of range")                                                               \
    X(SH_EPROTO, 12, "protocol error")                                                             \
    X(SH_ETIMEOUT, 13, "timed out")                                                                \
    X(SH_ECLOSED, 14, "closed")                                                                    \
    X(SH_EEXIST, 15, "already exists")                                                             \
    X(SH_ECANCELLED, 16, "cancelled")                                                              \
    X(SH_EINTERNAL, 17, "internal error")

enum sh_error {
#define SH_ERR_ENUM(name, value, text) name = value,
    SH_ERROR_LIST(SH_ERR_ENUM)
#undef SH_ERR_ENUM
};

#define SH_ERR_MSG_LEN 256

struct sh_err {
    int code;                  /* last SH_E* set, 0 when none */
    char msg[SH_ERR_MSG_LEN]; /* NUL-terminated, truncated to fit */
};

/* Text for a code ("out of memory"); never NULL, "unknown error" for others. */
const char *sh_strerror(int code);

/* Clears err (code 0, empty message). NULL allowed. */
void sh_err_clear(struct sh_err *err);

/* Sets code and a printf-formatted message; returns code so callers can
 * `return sh_err_set(err, SH_EINVAL, "...")`. */
int sh_err_set(struct sh_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the current message with context: "ctx: old message". Keeps the
 * code (sets SH_EINTERNAL if none was set) and returns it. */
int sh_err_wrap(struct sh_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The message, or sh_strerror(code) when the message is empty. NULL err gives "". */
const char *sh_err_msg(const struct sh_err *err);

#endif
