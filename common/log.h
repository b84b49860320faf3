/* common/log.h: one-line log records on stderr.
 *
 * A line is: time (UTC, ms), level, short node id, module, message. The sink
 * is configured once by a main() before any loop starts (sh_log_init); the
 * level check happens before the arguments are evaluated, so a debug line
 * costs nothing when debug is off. Pure cores never log: they return reasons.
 */
#ifndef SH_LOG_H
#define SH_LOG_H

#include <stdio.h>

enum sh_log_level {
    SH_LOG_ERROR = 0,
    SH_LOG_WARN = 1,
    SH_LOG_INFO = 2,
    SH_LOG_DEBUG = 3,
};

/* Set once at start-up: level, the node tag printed on every line ("-" or a
 * short node id; copied, at most 15 chars) and the stream (NULL = stderr). */
void sh_log_init(enum sh_log_level level, const char *node_tag, FILE *out);
void sh_log_set_tag(const char *node_tag);
enum sh_log_level sh_log_level(void);

/* Parses "error", "warn", "info", "debug"; returns -1 for anything else. */
int sh_log_parse_level(const char *s);

void sh_log_write(enum sh_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define SH_LOG(level, module, ...)                                                                 \
    do {                                                                                           \
        if ((level) <= sh_log_level())                                                             \
            sh_log_write((level), (module), __VA_ARGS__);                                          \
    } while (0)

#endif
