/* common/log.c: the log sink. Its three settings are written once by main()
 * before threads or loops start and only read afterwards. */
#include "common/log.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

static enum sh_log_level log_level = SH_LOG_INFO;
static char log_tag[16] = "-";
static FILE *log_out;

void sh_log_init(enum sh_log_level level, const char *node_tag, FILE *out)
{
    log_level = level;
    log_out = out;
    sh_log_set_tag(node_tag);
}

void sh_log_set_tag(const char *node_tag)
{
    snprintf(log_tag, sizeof log_tag, "%s", node_tag ? node_tag : "-");
}

enum sh_log_level sh_log_level(void)
{
    return log_level;
}

int sh_log_parse_level(const char *s)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

void sh_log_write(enum sh_log_level level, const char *module, const char *fmt, ...)
{
    static const char *const names[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};
    char line[1024];
    struct timespec ts;
    struct tm tm;
    size_t n;
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, ".%03ldZ %s %s %s: ", ts.tv_nsec / 1000000L,
                          names[level <= SH_LOG_DEBUG ? level : SH_LOG_DEBUG], log_tag, module);
    if (n < sizeof line) {
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof line - n, fmt, ap);
        va_end(ap);
    }
    /* One fputs per record so concurrent writers do not interleave lines. */
    n = strlen(line);
    if (n + 1 < sizeof line) {
        line[n] = '\n';
        line[n + 1] = '\0';
    } else {
        line[sizeof line - 2] = '\n';
    }
    fputs(line, log_out ? log_out : stderr);
}
