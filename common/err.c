/* common/err.c: error code names and the sh_err message buffer. */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *sh_strerror(int code)
{
    switch (code) {
#define SH_ERR_CASE(name, value, text)                                                             \
    case value:                                                                                    \
        return text;
        SH_ERROR_LIST(SH_ERR_CASE)
#undef SH_ERR_CASE
    default:
        return "unknown error";
    }
}

void sh_err_clear(struct sh_err *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

int sh_err_set(struct sh_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int sh_err_wrap(struct sh_err *err, const char *fmt, ...)
{
    char prefix[SH_ERR_MSG_LEN];
    char old[SH_ERR_MSG_LEN];
    va_list ap;

    if (!err)
        return SH_EINTERNAL;
    if (err->code == 0)
        err->code = SH_EINTERNAL;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    if (old[0] == '\0')
        snprintf(old, sizeof old, "%s", sh_strerror(err->code));
    /* Truncation is wanted here (messages are bounded), so assemble by hand
     * rather than through a snprintf the compiler warns about. */
    {
        size_t pl = strlen(prefix), ol = strlen(old), cap = sizeof err->msg - 1, n = 0;
        memcpy(err->msg, prefix, pl < cap ? pl : cap);
        n = pl < cap ? pl : cap;
        if (n + 2 <= cap) {
            memcpy(err->msg + n, ": ", 2);
            n += 2;
        }
        if (n < cap) {
            size_t take = ol < cap - n ? ol : cap - n;
            memcpy(err->msg + n, old, take);
            n += take;
        }
        err->msg[n] = '\0';
    }
    return err->code;
}

const char *sh_err_msg(const struct sh_err *err)
{
    if (!err)
        return "";
    if (err->msg[0] == '\0')
        return sh_strerror(err->code);
    return err->msg;
}
