/* state/internal.h: helpers shared by the files of state/ and its tests;
 * not part of the module's public interface. */
#ifndef STATE_INTERNAL_H
#define STATE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "state/state.h"

/* True when s[0..len) is UTF-8 text without control characters (events.c). */
bool state_text_ok(const char *s, size_t len);
/* Well-formed UTF-8; controls (C0, C1, DEL) allowed only when asked. */
bool state_utf8_ok(const char *s, size_t len, bool controls);

/* The field rules of the schema on a typed event, without looking at any
 * state (events.c). Errors: SH_EUNSUPPORTED, SH_EMALFORMED naming the field. */
int state_event_validate(const struct state_event *ev, struct sh_err *err);

#endif
