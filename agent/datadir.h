/* agent/datadir.h: where a node keeps its state (node key, events.db, runner
 * logs) when --data-dir is not given. Internal to agent/. */
#ifndef AGENT_DATADIR_H
#define AGENT_DATADIR_H

#include <stddef.h>

#include "common/err.h"

/* The default data dir, following the XDG base-directory spec:
 * "$XDG_DATA_HOME/shoal" when XDG_DATA_HOME is set to an absolute path, else
 * "$HOME/.local/share/shoal". xdg and home are the variables' values (NULL
 * when unset), passed in so the rule is testable. Errors: SH_ENOTFOUND
 * (neither gives an absolute path), SH_ETOOBIG (longer than cap - 1). */
int agent_data_dir_from(
    const char *xdg, const char *home, char *out, size_t cap, struct sh_err *err);

/* agent_data_dir_from with the process environment. */
int agent_default_data_dir(char *out, size_t cap, struct sh_err *err);

#endif
