/* agent/cmd_keygen.c: `shoal keygen FILE`: make a new cluster key. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "agent/cli.h"
#include "agent/identity.h"

int agent_cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    const struct agent_cmd *self = agent_cmd_find("keygen");
    struct sh_err err;
    char fp[17];
    bool force = false;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
        if (c == 'f')
            force = true;
        else
            return agent_usage_error(self, "unknown option");
    }
    if (argc - optind != 1)
        return agent_usage_error(self, "want exactly one FILE");
    sh_err_clear(&err);
    if (agent_cluster_key_create(argv[optind], force, fp, &err) != 0) {
        fprintf(stderr, "shoal keygen: %s%s\n", sh_err_msg(&err),
                err.code == SH_EEXIST ? " (use --force to replace it)" : "");
        return AGENT_EXIT_FAIL;
    }
    printf("wrote a new cluster key to %s (fingerprint %s)\n", argv[optind], fp);
    return AGENT_EXIT_OK;
}
