/* agent/datadir.c: the default data dir (XDG base-directory rules). */
#include "agent/datadir.h"

#include <stdio.h>
#include <stdlib.h>

int agent_data_dir_from(
    const char *xdg, const char *home, char *out, size_t cap, struct sh_err *err)
{
    int n;

    /* The spec says a relative XDG_DATA_HOME is invalid and to be ignored. */
    if (xdg && xdg[0] == '/')
        n = snprintf(out, cap, "%s/shoal", xdg);
    else if (home && home[0] == '/')
        n = snprintf(out, cap, "%s/.local/share/shoal", home);
    else
        return sh_err_set(err, SH_ENOTFOUND,
                          "no data dir: neither XDG_DATA_HOME nor HOME is an absolute path "
                          "(use --data-dir)");
    if (n < 0 || (size_t)n >= cap)
        return sh_err_set(err, SH_ETOOBIG, "data dir path longer than %zu bytes", cap - 1);
    return 0;
}

int agent_default_data_dir(char *out, size_t cap, struct sh_err *err)
{
    return agent_data_dir_from(getenv("XDG_DATA_HOME"), getenv("HOME"), out, cap, err);
}
